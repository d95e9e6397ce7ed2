"""The Motion view in a real browser: sliders to an impingement, a limit button, the table.

One Panel server for the module serves :func:`hipviz.app.main.create_app`;
each test opens its own page. Expected limits come from
:class:`hipviz.app.state.HipSession` and :mod:`hipviz.motion` run in the
test, never from numbers read off the app.
"""

from __future__ import annotations

import io
import math
import threading
import time

import numpy as np
import pytest

pytest.importorskip("panel")
pytest.importorskip("pytest_playwright")

pytestmark = [pytest.mark.browser]

FIRST_PICTURE = "window.__hipvizTimes && window.__hipvizTimes.firstPicture != null"
CARD = "Motion: range of motion"
#: One PageUp on a slider: 5 steps of 0.5°.
PAGE_DEG = 2.5


def build_app() -> dict:
    from hipviz.app.main import create_app

    app = create_app()
    return {"app": app}


@pytest.fixture(scope="module")
def served(serve_with):
    return serve_with(build_app)


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args: dict) -> dict:
    return {**browser_context_args, "viewport": {"width": 1400, "height": 900}}


@pytest.fixture(scope="module")
def rom():
    """``rom(**plan)``: (before, after) rom_dict of a plan, computed here."""
    import inspect

    from hipviz import motion
    from hipviz.app.main import create_app
    from hipviz.app.state import HipSession, Plan

    subdivisions = inspect.signature(create_app).parameters["subdivisions"].default
    sessions: list[HipSession] = []

    def compute(**values):
        session = HipSession(subdivisions=subdivisions)
        sessions.append(session)
        session.update(Plan(**values))
        sim, out = session.sim, session.outcome
        base, model = sim.motion(None), sim.motion(out)
        return (
            motion.rom_dict(base.limits(), base.landmarks),
            motion.rom_dict(model.limits(), model.landmarks),
        )

    yield compute
    for session in sessions:
        session.close()


def on_server(session: dict, fn, timeout: float = 10.0):
    done, out = threading.Event(), {}

    def call() -> None:
        try:
            out["value"] = fn()
        except BaseException as err:
            out["error"] = err
        finally:
            done.set()

    session["doc"].add_next_tick_callback(call)
    assert done.wait(timeout), "the server did not run the callback"
    if "error" in out:
        raise out["error"]
    return out.get("value")


def wait_for(fn, timeout: float = 30.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:g} s waiting for {what} (last: {value!r})")
        time.sleep(0.05)


def open_motion(page, served, query: str = "") -> dict:
    """Open the app, open the Motion card, wait for its limits; the server session."""
    n = len(served.sessions)
    page.goto(served.url + (f"?{query}" if query else ""))
    page.wait_for_function(FIRST_PICTURE, timeout=60_000)
    session = served.sessions[n]
    page.get_by_text(CARD).click()
    app = session["app"]
    wait_for(lambda: on_server(session, lambda: app.motion.rom_after is not None), 60, "limits")
    return session


def slider_handle(page, title: str):
    return page.locator(".bk-input-group", has_text=title).locator(".noUi-handle")


def press(page, title: str, key: str, n: int) -> None:
    handle = slider_handle(page, title)
    handle.focus()
    for _ in range(n):
        page.keyboard.press(key)


def red_pixels(page) -> int:
    """Pixels of the 3D view in the contact colour (hue and saturation near it)."""
    from PIL import Image

    from hipviz.app.motion_view import CONTACT

    png = page.locator(".hipviz-scene").screenshot()
    with Image.open(io.BytesIO(png)) as img:
        rgb = np.asarray(img.convert("RGB")).astype(int)
    want = np.array([int(CONTACT[i : i + 2], 16) for i in (1, 3, 5)])
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    # shaded: the red channel dominates as in the contact colour, any brightness
    reddish = (r > 90) & (r > 2.2 * g) & (r > 2.2 * b)
    assert want[0] > 2.2 * want[1]  # the test's idea of red fits the colour used
    return int(reddish.sum())


def test_sliders_to_an_impingement_light_the_contact(page, served, rom):
    session = open_motion(page, served)
    app = session["app"]
    _, after = rom(case="normal")
    limit = after["rom_deg"]["internal_rotation_90"]
    assert limit is not None
    on_server(session, lambda: app.plan.param.update(view="lateral"))
    press(page, "Flexion + / extension", "PageUp", round(90 / PAGE_DEG))
    wait_for(
        lambda: math.isclose(on_server(session, lambda: app.motion.angles[0]), 90.0, abs_tol=1e-6),
        20,
        "90° flexion",
    )
    # just short of the limit: no contact, nothing red
    short = math.floor((limit - 1.0) / PAGE_DEG)
    press(page, "Rotation internal", "PageUp", short)
    wait_for(
        lambda: math.isclose(
            on_server(session, lambda: app.motion.angles[2]), short * PAGE_DEG, abs_tol=1e-6
        ),
        20,
        "rotation",
    )
    page.wait_for_timeout(300)
    assert not on_server(session, lambda: app.motion.contact.touching)
    free = red_pixels(page)
    # two more steps: past the limit, the spot lit on both bones
    press(page, "Rotation internal", "PageUp", 2)
    past = (short + 2) * PAGE_DEG
    assert past > limit
    # a slider that stepped in 0.5° sends its sum (42.49999999999997 for 42.5)
    wait_for(
        lambda: math.isclose(on_server(session, lambda: app.motion.angles[2]), past, abs_tol=1e-6),
        20,
        "rotation",
    )
    assert on_server(session, lambda: app.motion.contact.touching)
    lit = wait_for(lambda: (n := red_pixels(page)) > free + 30 and n, 10, "red contact pixels")
    assert lit > free + 30
    colors = on_server(
        session,
        lambda: {n: app.scene.view3d._meshes[n]["colors"] is not None for n in ("femur", "pelvis")},
    )
    assert colors == {"femur": True, "pelvis": True}


def test_a_limit_button_animates_the_leg_to_it(page, served, rom):
    from hipviz.app.motion_view import PAST_LIMIT_DEG, limit_pose

    session = open_motion(page, served)
    app = session["app"]
    _, after = rom(case="normal")
    angle = after["rom_deg"]["fadir"]
    want = limit_pose("fadir", angle + PAST_LIMIT_DEG)
    page.get_by_role("button", name="FADIR", exact=True).click()
    seen = set()

    def arrived():
        angles = on_server(session, lambda: app.motion.angles)
        seen.add(angles)
        return all(abs(a - b) <= 0.25 for a, b in zip(angles, want, strict=True))

    wait_for(arrived, 10, f"the leg at {want}")
    assert len(seen) > 2, "the leg jumped instead of moving"  # frames in between
    assert on_server(session, lambda: app.motion.contact.touching)


def _shown(value, res: dict, key: str) -> str:
    """A limit as the table writes it; None says why (no room to start, or no contact)."""
    if value is not None:
        return f"{value:.1f}°"
    note = res.get("rom_notes", {}).get(key, "")
    return "no room to start" if "meet before" in note else "none within 150°"


def test_the_table_shows_before_and_after_the_plan(page, served, rom):
    plan = {"case": "dysplastic", "procedure": "pao", "pao_lateral": 35, "pao_anterior": 20}
    query = "&".join(f"{k}={v}" for k, v in plan.items())
    open_motion(page, served, query)
    before, after = rom(**plan)
    for key in ("internal_rotation_90", "flexion", "fadir"):
        b, a = before["rom_deg"][key], after["rom_deg"][key]
        cell = page.locator(f'table.hv-rom tr[data-key="{key}"] td.hv-value')
        want = f"{_shown(b, before, key)} → {_shown(a, after, key)}"
        wait_for(lambda cell=cell, want=want: cell.inner_text().strip() == want, 10, want)
    assert after["rom_deg"]["internal_rotation_90"] < before["rom_deg"]["internal_rotation_90"]
    assert "bone only" in page.locator("table.hv-rom + div").inner_text()
