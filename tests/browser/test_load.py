"""The Load view in a real browser: choose a load, turn the fragment, see the pressure change.

Expected numbers come from the library path ``hipviz simulate --load`` takes
(:func:`hipviz.cli._simulated_loads`) on a :class:`~hipviz.app.state.HipSession`
run in the test for the same plan, never from numbers read off the app.
Screenshots go to ``$HIPVIZ_SCREENSHOTS`` when it is set (for the docs).
"""

from __future__ import annotations

import os
import re
import threading
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("panel")
pytest.importorskip("pytest_playwright")

pytestmark = [pytest.mark.browser]

FIRST_PICTURE = "window.__hipvizTimes && window.__hipvizTimes.firstPicture != null"
PLAN = {"case": "dysplastic", "procedure": "pao"}


def build_app() -> dict:
    from hipviz.app.main import create_app

    app = create_app()
    return {"app": app}


@pytest.fixture(scope="module")
def served(serve):
    return serve(build_app)


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args: dict) -> dict:
    return {**browser_context_args, "viewport": {"width": 1400, "height": 900}}


@pytest.fixture(scope="module")
def expected():
    """``expected(**plan)``: the load keys before and after, as ``hipviz simulate`` has them."""
    import inspect

    from hipviz.app.main import create_app
    from hipviz.app.state import HipSession, Plan
    from hipviz.cli import _simulated_loads
    from hipviz.loads import LoadOptions

    session = HipSession(
        subdivisions=inspect.signature(create_app).parameters["subdivisions"].default
    )

    def compute(**values):
        plan = Plan(**values)
        session.update(plan)
        out = {"before": {}, "after": {}}
        options = LoadOptions(load=plan.load, body_weight_kg=plan.body_weight)
        _simulated_loads(out, session.sim, session.outcome, options, {})
        return out

    yield compute
    session.close()


def on_server(session: dict, fn, timeout: float = 10.0):
    done = threading.Event()
    out: dict = {}

    def call() -> None:
        try:
            out["value"] = fn()
        except BaseException as err:  # handed back to the test thread
            out["error"] = err
        finally:
            done.set()

    session["doc"].add_next_tick_callback(call)
    assert done.wait(timeout), "the server did not run the callback"
    if "error" in out:
        raise out["error"]
    return out.get("value")


def wait_for(fn, timeout: float = 20.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:g} s waiting for {what} (last: {value!r})")
        time.sleep(0.05)


def open_app(page, served, query: str = "") -> dict:
    n = len(served.sessions)
    page.goto(served.url + (f"?{query}" if query else ""))
    page.wait_for_function(FIRST_PICTURE, timeout=30_000)
    return served.sessions[n]


def value_text(page, key: str) -> str:
    cell = page.locator(f'tr[data-key="{key}"] td.hv-value')
    if cell.count() == 0:
        return ""
    return " ".join(cell.inner_text().split())


def mark(page, which: str) -> str | None:
    """The MPa a colour bar mark ('before' or 'after') stands at, None without one."""
    marks = page.locator(f'.hv-cbar-mark[data-which="{which}"]')
    return marks.first.get_attribute("data-mpa") if marks.count() else None


def label_boxes(page) -> list[dict]:
    """Text and screen box of every label shown over the 3D view."""
    return page.evaluate(
        """() => {
          const found = [], stack = [document]
          while (stack.length) {
            const root = stack.pop()
            for (const el of root.querySelectorAll("*")) {
              if (el.shadowRoot) stack.push(el.shadowRoot)
            }
            found.push(...root.querySelectorAll(".hipviz-scene > div > div"))
          }
          return found
            .filter((d) => d.style.display !== "none" && d.textContent && d.offsetParent)
          .map((d) => {
            const r = d.getBoundingClientRect()
            return {text: d.textContent, left: r.left, right: r.right, top: r.top,
                    bottom: r.bottom}
            })
        }"""
    )


def shoot(page, name: str, clip: dict | None = None) -> None:
    folder = os.environ.get("HIPVIZ_SCREENSHOTS")
    if folder:
        page.screenshot(path=str(Path(folder) / name), clip=clip)


def test_choose_a_load_and_turn_the_fragment(page, served, expected):
    session = open_app(page, served, "&".join(f"{k}={v}" for k, v in PLAN.items()))
    app = session["app"]
    assert value_text(page, "contact_peak_mpa") == ""  # no load: no pressure rows
    assert page.locator(".hv-cbar").count() == 0 or not page.locator(".hv-cbar").is_visible()

    page.locator("select").filter(has_text="One-leg stance").select_option(label="One-leg stance")
    wait_for(lambda: on_server(session, lambda: app.plan.load) == "one-leg-stance", 10, "the load")
    want = expected(**PLAN, load="one-leg-stance")["before"]
    peak = f"{want['contact_peak_mpa']:.1f} MPa"
    wait_for(lambda: value_text(page, "contact_peak_mpa") == peak, 20, f"peak {peak}")
    assert value_text(page, "contact_area_mm2") == f"{want['contact_area_mm2']:.1f} mm²"
    assert value_text(page, "joint_force_bw") == f"{want['joint_force_bw']:.1f} ×BW"
    assert page.locator(".hv-cbar").is_visible()
    assert float(mark(page, "before")) == pytest.approx(want["contact_peak_mpa"], abs=6e-3)
    assert mark(page, "after") is None

    step = app.plan.param["pao_lateral"].step
    presses = 20
    handle = page.locator(".bk-input-group", has_text="Lateral turn").locator(".noUi-handle")
    handle.focus()
    for _ in range(presses):
        page.keyboard.press("ArrowRight")
    turn = presses * step
    wait_for(
        lambda: on_server(session, lambda: app.plan.pao_lateral) == turn,
        30,
        f"the turn (at {on_server(session, lambda: app.plan.pao_lateral)})",
    )
    got = expected(**PLAN, load="one-leg-stance", pao_lateral=turn)
    b, a = got["before"]["contact_peak_mpa"], got["after"]["contact_peak_mpa"]
    text = f"{b:.1f} MPa → {a:.1f} MPa"
    wait_for(lambda: value_text(page, "contact_peak_mpa") == text, 20, f"peak {text}")
    assert a < b
    wait_for(lambda: mark(page, "after") is not None, 10, "the colour bar's mark after")
    assert float(mark(page, "after")) == pytest.approx(a, abs=6e-3)
    cap = page.locator(".hv-cbar-caption").inner_text()
    assert re.search(rf"before {b:.1f} → now {a:.1f} MPa", cap), cap
    shoot(page, "app_pressure_front.png")

    # into the socket: the femur hidden, the side view
    boxes = page.locator("input[type=checkbox]")
    label = "See the socket (hide the femur)"
    found = [
        boxes.nth(i)
        for i in range(boxes.count())
        if boxes.nth(i).evaluate("e => e.nextElementSibling?.textContent") == label
    ]
    assert len(found) == 1, f"{len(found)} checkboxes labelled {label!r}"
    found[0].check()
    if os.environ.get("HIPVIZ_SCREENSHOTS"):  # a clear picture for the docs
        for other in ("Angles", "Before (faint)"):
            for i in range(boxes.count()):
                if boxes.nth(i).evaluate("e => e.nextElementSibling?.textContent") == other:
                    boxes.nth(i).uncheck()
        view = page.locator(".hipviz-scene").bounding_box()
        page.mouse.move(view["x"] + view["width"] / 2, view["y"] + view["height"] / 2)
        for _ in range(4):
            page.mouse.wheel(0, -300)
            page.wait_for_timeout(100)
    wait_for(lambda: on_server(session, lambda: app.plan.view) == "lateral", 10, "the side view")
    femur = on_server(session, lambda: app.scene.view3d.actors["femur"])
    assert femur["visible"] is False
    page.wait_for_timeout(800)
    page.locator('tr[data-key="joint_force_bw"]').scroll_into_view_if_needed()
    page.wait_for_timeout(300)
    shoot(page, "app_pressure.png")


def test_explain_step_on_the_pressure(page, served, expected):
    query = "case=dysplastic&procedure=pao&pao_lateral=20&pao_anterior=5&pao_medial=3"
    session = open_app(page, served, query + "&load=one-leg-stance&mode=explain")
    app = session["app"]
    want = expected(**PLAN, load="one-leg-stance", pao_lateral=20, pao_anterior=5, pao_medial=3)
    wait_for(lambda: page.locator(".hv-step-title").count() > 0, 20, "the first step")
    titles = [t.strip() for t in page.locator(".hv-steps li").all_inner_texts()]
    from hipviz import explain

    turn = next(s.title for s in explain.steps("pao") if s.key == "turn")
    assert titles[titles.index(turn) + 1] == "Where the weight presses"
    for _ in range(titles.index("Where the weight presses")):
        page.get_by_role("button", name="Next ▶").click()
    wait_for(
        lambda: page.locator(".hv-step-title").inner_text() == "Where the weight presses",
        10,
        "the pressure step",
    )
    text = page.locator(".hv-step-text").inner_text()
    b, a = want["before"]["contact_peak_mpa"], want["after"]["contact_peak_mpa"]
    fmt = lambda x: f"{x:.0f}" if x >= 10 else f"{x:.1f}"  # noqa: E731
    assert f"falls from {fmt(b)} to {fmt(a)} MPa" in text, text
    assert on_server(session, lambda: app.plan.mode) == "explain"

    def femur_colours_are_the_pressures():
        view, out = app.scene.view3d, app.session.outcome
        want = app.load_view.state(out).overlay.colors["femur"]
        return np.array_equal(view._meshes["femur"]["colors"].reshape(-1, 3), want)

    assert on_server(session, femur_colours_are_the_pressures)
    page.wait_for_timeout(500)
    boxes = label_boxes(page)
    assert any(b["text"].startswith("load ") for b in boxes), boxes
    for i, a in enumerate(boxes):  # no label covers another
        for b in boxes[i + 1 :]:
            apart = (
                a["right"] <= b["left"]
                or b["right"] <= a["left"]
                or a["bottom"] <= b["top"]
                or b["bottom"] <= a["top"]
            )
            assert apart, (a, b)
    shoot(page, "app_explain_pressure.png")


def test_bad_load_links_show_one_line_as_text(page, served):
    from urllib.parse import quote

    from hipviz.app.text import quoted

    evil = {"load": "<img src=x onerror=alert(1)>", "body_weight": "<b>9</b>"}
    query = "&".join(f"{k}={quote(v, safe='')}" for k, v in evil.items())
    session = open_app(page, served, f"case=dysplastic&{query}")
    alert = page.locator(".alert-danger p")
    wait_for(lambda: alert.count() and alert.first.inner_text().strip(), 20, "the error line")
    text = alert.first.inner_text().strip()
    for name, value in evil.items():
        assert f"link parameter {name}={quoted(value)} ignored" in text, text
    assert "\n" not in text
    assert alert.first.locator("img, b").count() == 0  # shown as text, never as markup
    app = session["app"]
    assert on_server(session, lambda: (app.plan.load, app.plan.body_weight)) == ("none", 70.0)
    assert value_text(page, "contact_peak_mpa") == ""
