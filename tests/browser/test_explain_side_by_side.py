"""Explain's side by side: the hip before and after in two views that turn together.

Turning either view (a mouse drag on it) turns the other: both report the same
camera to the server, and both pictures change.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("panel")
pytest.importorskip("pytest_playwright")

from test_app import FIRST_PICTURE, checkbox, on_server, png_pixels, wait_for  # noqa: E402

pytestmark = [pytest.mark.browser]


def build_app() -> dict:
    from hipviz.app.main import create_app

    return {"app": create_app()}


@pytest.fixture(scope="module")
def served(serve_with):
    return serve_with(build_app)


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args: dict) -> dict:
    return {**browser_context_args, "viewport": {"width": 1400, "height": 900}}


def _same(a, b, tol: float = 1e-3) -> bool:
    return (
        a is not None
        and b is not None
        and all(np.allclose(u, v, atol=tol) for u, v in zip(a, b, strict=False))
    )


def _drag(page, scene) -> None:
    box = scene.bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + 100, y + 15, steps=8)
    page.mouse.up()


def test_before_and_after_turn_together(page, served):
    n = len(served.sessions)
    page.goto(served.url + "?case=dysplastic&procedure=pao&pao_lateral=20&mode=explain")
    page.wait_for_function(FIRST_PICTURE, timeout=60_000)
    session = served.sessions[n]
    app = session["app"]
    wait_for(lambda: not on_server(session, lambda: app._loading), 30, "the hip")
    checkbox(page, "Before and after side by side").check()
    scenes = page.locator(".hipviz-scene")
    wait_for(lambda: scenes.count() == 2, 20, "two views")
    before3d = on_server(session, lambda: app.scene.before3d)
    after3d = app.scene.view3d
    assert page.locator(".hv-caption", has_text="Before").is_visible()
    assert page.locator(".hv-caption", has_text="After").is_visible()
    # the before view has the pieces, unmoved, once it has drawn
    wait_for(lambda: on_server(session, lambda: before3d.camera) is not None, 20, "its camera")

    def cameras():
        return on_server(session, lambda: (before3d.camera, after3d.camera))

    wait_for(lambda: _same(*cameras()), 10, "the two views to share a camera")

    def bone_shown(i: int) -> bool:  # the pieces arrive after the view: wait for them
        img = png_pixels(scenes.nth(i).screenshot())
        return (img.min(axis=2) < 235).mean() > 0.15

    wait_for(lambda: bone_shown(0) and bone_shown(1), 30, "bone in both views")
    # the two pictures differ: the fragment is turned 20° in one only
    a, b = (png_pixels(scenes.nth(i).screenshot()) for i in (0, 1))
    assert a.shape == b.shape
    assert (np.abs(a.astype(int) - b.astype(int)).max(axis=2) > 30).mean() > 0.002
    for turned in (0, 1):  # the before view (left), then the after view
        first = cameras()
        shots = [png_pixels(scenes.nth(i).screenshot()) for i in (0, 1)]
        _drag(page, scenes.nth(turned))
        wait_for(
            lambda first=first: not _same(cameras()[0], first[0]) and _same(*cameras()),
            10,
            f"both cameras to follow a drag on view {turned}",
        )
        now = cameras()
        assert not np.allclose(now[1][0], first[1][0], atol=1.0)  # the other one moved
        for i in (0, 1):
            again = png_pixels(scenes.nth(i).screenshot())
            changed = np.abs(again.astype(int) - shots[i].astype(int)).max(axis=2) > 30
            assert changed.mean() > 0.02, f"view {i} did not turn with view {turned}"
    # leaving Explain hides the before view
    page.get_by_role("button", name="Plan", exact=True).click()
    wait_for(lambda: scenes.count() == 1, 10, "one view again")
