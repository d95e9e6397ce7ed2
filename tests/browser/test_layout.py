"""The app on any screen: tablet portrait and landscape, a phone; touch on the 3D view.

Each size opens the app in its own browser context (touch enabled; the phone
also as a mobile browser, which honours the page's viewport tag) and checks
that every visible control, the measures table and the mode buttons can be
reached (scrolled to, not covered, inside the screen), that nothing makes the
page wider than the screen, and that a finger turns the view and two fingers
pinch it closer (the browser's camera, as the server receives it).
"""

from __future__ import annotations

import time

import numpy as np
import pytest

pytest.importorskip("panel")
pytest.importorskip("pytest_playwright")

from test_app import FIRST_PICTURE, on_server, wait_for  # noqa: E402

pytestmark = [pytest.mark.browser]

SIZES = {
    "phone": {"viewport": {"width": 390, "height": 844}, "is_mobile": True},
    "tablet-portrait": {"viewport": {"width": 820, "height": 1180}, "is_mobile": False},
    "tablet-landscape": {"viewport": {"width": 1180, "height": 820}, "is_mobile": False},
}
#: Controls of the left column, the measures and the exports: what a user must reach.
REACHABLE = (
    ".hv-controls select, .hv-controls input, .hv-controls button, "
    ".hv-controls .noUi-handle, .hv-measures button"
)


def build_app() -> dict:
    from hipviz.app.main import create_app

    app = create_app()
    return {"app": app}


@pytest.fixture(scope="module")
def served(serve_with):
    return serve_with(build_app)


@pytest.fixture(params=list(SIZES))
def screen(request, browser, served):
    """A page of the app at one screen size, touch enabled; yields (name, page, session)."""
    options = SIZES[request.param]
    context = browser.new_context(has_touch=True, **options)
    try:
        page = context.new_page()
        n = len(served.sessions)
        page.goto(served.url + "?case=dysplastic&procedure=pao&pao_lateral=10")
        page.wait_for_function(FIRST_PICTURE, timeout=60_000)
        session = served.sessions[n]
        # the controls are disabled while the hip is built
        wait_for(lambda: not on_server(session, lambda: session["app"]._loading), 30, "the hip")
        yield request.param, page, session
    finally:
        context.close()


def _inside(box: dict, width: int, height: int) -> bool:
    return (
        box["x"] >= -0.5
        and box["y"] >= -0.5
        and box["x"] + box["width"] <= width + 0.5
        and box["y"] + box["height"] <= height + 0.5
    )


def test_nothing_is_wider_than_the_screen(screen):
    name, page, _ = screen
    width = SIZES[name]["viewport"]["width"]
    assert page.evaluate("window.innerWidth") == width  # the viewport tag is honoured
    for _ in range(2):  # before and after scrolling to the bottom of the page
        widths = page.evaluate("[document.documentElement.scrollWidth, document.body.scrollWidth]")
        assert max(widths) <= width, f"{name}: the page is {widths} px wide on a {width} px screen"
        page.locator(".hv-measures button").last.scroll_into_view_if_needed()


def test_every_control_the_table_and_the_modes_can_be_reached(screen):
    name, page, _ = screen
    size = SIZES[name]["viewport"]
    targets = page.locator(REACHABLE)
    visible = [targets.nth(i) for i in range(targets.count()) if targets.nth(i).is_visible()]
    # hip, side, posture, tilt, load, weight, the socket box, procedure, eight sliders,
    # reset, the cut card's header... and the seven downloads
    assert len(visible) >= 20, f"{name}: only {len(visible)} controls found"
    visible += [
        page.locator('tr[data-key="lcea_deg"]'),
        page.locator('tr[data-key="neck_shaft_deg"]'),
        *(
            page.get_by_role("button", name=mode, exact=True)
            for mode in ("Plan", "Learn", "Explain")
        ),
    ]
    unreachable = []
    for item in visible:
        try:
            # Playwright's checks for a click: scrolled to, visible, stable and not
            # covered by another element (the sticky 3D view, for one)
            item.click(trial=True, timeout=5000)
        except Exception as exc:  # named in the failure below
            unreachable.append(f"{item}: {' / '.join(str(exc).splitlines()[:12])}")
            continue
        box = item.bounding_box()
        if box is None or not _inside(box, size["width"], size["height"]):
            what = item.evaluate("e => (e.getRootNode().host || e).innerText.slice(0, 60)")
            unreachable.append(f"{what!r}: {box} is off the {size} screen")
    assert not unreachable, f"{name}: " + "\n".join(unreachable)


def _touch(client, kind: str, points) -> None:
    client.send(
        "Input.dispatchTouchEvent",
        {"type": kind, "touchPoints": [{"x": x, "y": y} for x, y in points]},
    )


def _resting_camera(session, quiet_s: float = 1.0):
    """The camera the server has once it has not changed for ``quiet_s`` seconds.

    The browser sends its camera each time it rests for 0.3 s, which on a
    loaded machine can happen between two steps of a gesture.
    """
    view3d = session["app"].scene.view3d
    wait_for(lambda: on_server(session, lambda: view3d.camera) is not None, 10, "a camera")
    last, since = on_server(session, lambda: view3d.camera), time.monotonic()
    while time.monotonic() - since < quiet_s:
        time.sleep(0.1)
        now = on_server(session, lambda: view3d.camera)
        if now != last:
            last, since = now, time.monotonic()
    return last


def _camera_after(page, session, gesture):
    """The resting camera before and after ``gesture(client, x, y)`` at the view's centre."""
    first = _resting_camera(session)
    box = page.locator(".hipviz-scene").bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    client = page.context.new_cdp_session(page)
    gesture(client, x, y)
    view3d = session["app"].scene.view3d
    wait_for(lambda: on_server(session, lambda: view3d.camera) != first, 10, "a new camera")
    return first, _resting_camera(session)


def test_a_finger_turns_the_view_and_two_pinch_it(screen):
    name, page, session = screen

    def drag(client, x, y):
        _touch(client, "touchStart", [(x, y)])
        for i in range(1, 9):
            _touch(client, "touchMove", [(x + 12 * i, y + 2 * i)])
        _touch(client, "touchEnd", [])

    first, turned = _camera_after(page, session, drag)
    # an orbit: the focal point and the distance stay, the position moves
    assert np.allclose(turned[1], first[1], atol=1e-6), name
    dist = [np.linalg.norm(np.subtract(c[0], c[1])) for c in (first, turned)]
    assert dist[1] == pytest.approx(dist[0], rel=1e-3), name
    assert not np.allclose(turned[0], first[0], atol=1.0), name

    def pinch(client, x, y):
        _touch(client, "touchStart", [(x - 20, y), (x + 20, y)])
        for i in range(1, 9):
            _touch(client, "touchMove", [(x - 20 - 10 * i, y), (x + 20 + 10 * i, y)])
        _touch(client, "touchEnd", [])

    before, pinched = _camera_after(page, session, pinch)
    dist = [np.linalg.norm(np.subtract(c[0], c[1])) for c in (before, pinched)]
    # fingers apart: closer to the hip (vtk.js dollies a perspective camera)
    assert dist[1] < 0.9 * dist[0], f"{name}: distance {dist[0]:.0f} -> {dist[1]:.0f} mm"
