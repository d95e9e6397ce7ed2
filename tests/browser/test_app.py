"""The whole web app in a real browser: picture, sliders, links, uploads, sessions.

One Panel server for the module serves :func:`hipviz.app.main.create_app`;
each test opens its own page (a new session). Expected measures come from a
:class:`hipviz.app.state.HipSession` run in the test for the same plan, never
from numbers read off the app.
"""

from __future__ import annotations

import colorsys
import html
import io
import re
import threading
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import numpy as np
import pytest

pytest.importorskip("panel")
pytest.importorskip("pytest_playwright")

# Skipped by conftest.py where /usr/bin/chromium is absent.
pytestmark = [pytest.mark.browser]

#: A closed page's session is destroyed this long after its websocket closes
#: (plus up to one check period); Bokeh's defaults are 15 s and 17 s.
UNUSED_LIFETIME_MS = 4000
CHECK_UNUSED_MS = 500
FIRST_PICTURE = "window.__hipvizTimes && window.__hipvizTimes.firstPicture != null"


def build_app() -> dict:
    from hipviz.app.main import create_app

    app = create_app()
    return {"app": app, "hip": app}


@pytest.fixture(scope="module")
def served(serve_with):
    return serve_with(
        build_app,
        check_unused_sessions_milliseconds=CHECK_UNUSED_MS,
        unused_session_lifetime_milliseconds=UNUSED_LIFETIME_MS,
    )


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args: dict) -> dict:
    """A desktop-sized window: controls, 3D view and measures side by side."""
    return {**browser_context_args, "viewport": {"width": 1400, "height": 900}}


@pytest.fixture(scope="module")
def expected():
    """``expected(**plan)``: the outcome of a plan, computed here with HipSession."""
    import inspect

    from hipviz.app.main import create_app
    from hipviz.app.state import HipSession, Plan

    subdivisions = inspect.signature(create_app).parameters["subdivisions"].default

    sessions: dict[str, HipSession] = {}

    def compute(upload=None, **values):
        plan = Plan(**values)
        key = plan.case if upload is None else f"upload:{upload.pelvis}"
        if key not in sessions:
            sessions[key] = HipSession(subdivisions=subdivisions)
            if upload is not None:
                sessions[key].load_upload(upload)
        session = sessions[key]
        session.update(plan)
        out = session.outcome
        return {"before": dict(out.before), "after": dict(out.after)}

    yield compute
    for session in sessions.values():
        session.close()


# --- helpers ---------------------------------------------------------------


def on_server(session: dict, fn, timeout: float = 10.0):
    """Run ``fn`` on ``session``'s event loop (holding its document) and return its value."""
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
    """Poll ``fn`` until it returns something truthy; fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:g} s waiting for {what} (last: {value!r})")
        time.sleep(0.05)


def address(page) -> str:
    """The page's address now (``page.url`` is only refreshed by other Playwright calls)."""
    return page.evaluate("window.location.href")


def open_app(page, served, query: str = "") -> dict:
    """Open the app at ``?query``; wait for its first picture; return its server session."""
    n = len(served.sessions)
    page.goto(served.url + (f"?{query}" if query else ""))
    page.wait_for_function(FIRST_PICTURE, timeout=30_000)
    assert len(served.sessions) > n, "no new server session for the page"
    return served.sessions[n]


def frames(page) -> int:
    return page.evaluate("window.__hipvizTimes ? window.__hipvizTimes.frames : 0")


def deg(value: float) -> str:
    return f"{value:.1f}°"


def value_text(page, key: str) -> str:
    """The Value cell of a measure row, whitespace collapsed."""
    cell = page.locator(f'tr[data-key="{key}"] td.hv-value')
    return " ".join(cell.inner_text().split())


def wait_value(page, key: str, text: str, timeout: float = 20.0) -> None:
    wait_for(
        lambda: value_text(page, key) == text,
        timeout,
        f"{key} to read {text!r} (reads {value_text(page, key)!r})",
    )


def slider_handle(page, title: str):
    return page.locator(".bk-input-group", has_text=title).locator(".noUi-handle")


def checkbox(page, label: str):
    boxes = page.locator("input[type=checkbox]")
    for i in range(boxes.count()):
        if boxes.nth(i).evaluate("e => e.nextElementSibling?.textContent") == label:
            return boxes.nth(i)
    pytest.fail(f"no checkbox labelled {label!r}")


def case_select(page):
    return page.locator("select:has(option[value*='teaching case'])")


def png_pixels(png: bytes) -> np.ndarray:
    from PIL import Image

    with Image.open(io.BytesIO(png)) as img:
        return np.asarray(img.convert("RGB"))


def hsv(img: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Hue (degrees), saturation and value of (h, w, 3) uint8 pixels."""
    rgb = img.astype(float) / 255
    hi, lo = rgb.max(axis=2), rgb.min(axis=2)
    span = np.where(hi > lo, hi - lo, 1.0)
    r, g, b = (rgb[..., i] for i in range(3))
    hue = np.select(
        [hi == r, hi == g], [(g - b) / span % 6, (b - r) / span + 2], (r - g) / span + 4
    )
    sat = np.where(hi > 0, (hi - lo) / np.where(hi > 0, hi, 1.0), 0.0)
    return 60 * hue, sat, hi


def hue_of(rgb) -> tuple[float, float]:
    """Hue (degrees) and saturation of an (r, g, b) in 0..255 or '#rrggbb'."""
    if isinstance(rgb, str):
        rgb = [int(rgb[i : i + 2], 16) for i in (1, 3, 5)]
    h, s, _ = colorsys.rgb_to_hsv(*(float(c) / 255 for c in rgb))
    return 360 * h, s


def near_hue(hue: np.ndarray, target: float, tol: float) -> np.ndarray:
    return np.abs((hue - target + 180) % 360 - 180) < tol


def alert_text(page) -> str:
    return page.locator(".alert-danger p").inner_text().strip()


def upload_files(
    page, session, pelvis: tuple[str, bytes], femur: tuple[str, bytes], *, load: bool = True
) -> None:
    """Choose two files in the browser, wait until the server has them, press Load."""
    app = session["app"]
    card = page.get_by_text("Your own meshes", exact=True)
    if not load_button(page).is_visible():
        card.click()
    inputs = page.locator("input[type=file]")
    for i, (name, data) in enumerate((pelvis, femur)):
        inputs.nth(i).set_input_files(
            files=[{"name": name, "mimeType": "application/octet-stream", "buffer": data}]
        )
    want = {"pelvis": pelvis[0], "femur": femur[0]}
    wait_for(
        lambda: on_server(session, app.controls.received) == want,
        10,
        "the server to receive both files",
    )
    if load:
        load_button(page).click()


def load_button(page):
    return page.get_by_role("button", name="Load my meshes")


def kept_files(folder: Path) -> list[str]:
    """The files a session keeps in its folder, hipviz's marker aside."""
    from hipviz.app.state import MARKER

    return sorted(p.name for p in folder.iterdir() if p.name != MARKER)


# --- tests -----------------------------------------------------------------


def test_view_shows_bone_and_head_coverage(page, served):
    from hipviz import render
    from hipviz.app.viewer import BONE_COLOR

    open_app(page, served)  # the default plan: a normal hip, front view
    n = frames(page)
    checkbox(page, "Angles").uncheck()  # angle lines have colours of their own
    page.wait_for_function(f"window.__hipvizTimes.frames > {n}", timeout=10_000)
    page.wait_for_timeout(100)
    img = png_pixels(page.locator(".hipviz-scene").screenshot())
    hue, sat, val = hsv(img)
    assert img.shape[0] > 300 and img.shape[1] > 300, img.shape

    background = img.min(axis=2) >= 250
    bone_hue, bone_sat = hue_of(BONE_COLOR)
    bone = near_hue(hue, bone_hue, 15) & (sat > 0.3 * bone_sat) & (sat < 3 * bone_sat)
    bone &= (val > 0.15) & ~background
    assert background.mean() < 0.9, "the view is (nearly) blank"
    assert bone.mean() > 0.10, f"only {bone.mean():.1%} of the view is bone-coloured"

    for name, color, at_least in (
        ("uncovered (red)", render.UNCOVERED, 300),
        ("covered (green)", render.COVERED, 15),
    ):
        h, s = hue_of(color)
        found = near_hue(hue, h, 12) & (sat > 0.6 * s) & (val > 0.15)
        assert found.sum() >= at_least, f"{found.sum()} head pixels coloured {name}"


def test_slider_in_browser_updates_measures(page, served, expected):
    session = open_app(page, served, "case=dysplastic&procedure=pao")
    app = session["app"]
    plan = {"case": "dysplastic", "procedure": "pao"}
    before = expected(**plan)["before"]["lcea_deg"]
    wait_value(page, "lcea_deg", deg(before))  # nothing moved yet: one value

    step = app.plan.param["pao_lateral"].step
    presses = 10
    handle = slider_handle(page, "Lateral turn")
    handle.focus()
    for _ in range(presses):
        page.keyboard.press("ArrowRight")

    turn = presses * step
    wait_for(
        lambda: on_server(session, lambda: app.plan.pao_lateral) == turn,
        10,
        f"the server-side plan to have pao_lateral={turn}",
    )
    after = expected(**plan, pao_lateral=turn)["after"]["lcea_deg"]
    wait_value(page, "lcea_deg", f"{deg(before)} → {deg(after)}")
    got = re.fullmatch(r"(-?[\d.]+)° → (-?[\d.]+)°", value_text(page, "lcea_deg"))
    assert got and float(got[2]) > float(got[1]), value_text(page, "lcea_deg")
    assert float(handle.get_attribute("aria-valuenow")) == turn
    wait_for(
        lambda: parse_qs(urlsplit(address(page)).query).get("pao_lateral") == [f"{turn:g}"],
        5,
        "the URL to carry pao_lateral",
    )


def test_url_reproduces_plan(page, served, expected):
    from hipviz.app.main import CASE_LABELS, PROCEDURE_LABELS

    values = {"pao_lateral": 20.0, "pao_anterior": 5.0, "pao_medial": 3.0}
    query = "case=dysplastic&procedure=pao&" + "&".join(f"{k}={v:g}" for k, v in values.items())
    session = open_app(page, served, query)
    app = session["app"]
    out = expected(case="dysplastic", procedure="pao", **values)
    lcea, acea = (
        f"{deg(out['before'][k])} → {deg(out['after'][k])}" for k in ("lcea_deg", "acea_deg")
    )
    wait_value(page, "lcea_deg", lcea)
    assert value_text(page, "acea_deg") == acea

    plan = on_server(session, lambda: {k: getattr(app.plan, k) for k in app.plan.query()})
    assert plan == {"case": "dysplastic", "procedure": "pao", **values}
    for title, key in (
        ("Lateral turn", "pao_lateral"),
        ("Anterior turn", "pao_anterior"),
        ("Medial shift", "pao_medial"),
        ("Version turn", "pao_version"),
    ):
        shown = float(slider_handle(page, title).get_attribute("aria-valuenow"))
        assert shown == values.get(key, 0.0), (title, shown)
    assert case_select(page).input_value() == CASE_LABELS["dysplastic"]
    assert (
        page.locator("select:has(option[value*='Periacetabular'])").input_value()
        == PROCEDURE_LABELS["pao"]
    )
    query_now = {k: v[0] for k, v in parse_qs(urlsplit(address(page)).query).items()}
    assert query_now.pop("case") == "dysplastic" and query_now.pop("procedure") == "pao"
    assert {k: float(v) for k, v in query_now.items()} == values


def test_a_link_with_moves_and_no_procedure_opens_the_pao(page, served, expected):
    # the link a surgeon shares by hand: the PAO is implied by its fragment move
    session = open_app(page, served, "case=dysplastic&pao_lateral=20")
    out = expected(case="dysplastic", procedure="pao", pao_lateral=20.0)
    wait_value(
        page, "lcea_deg", f"{deg(out['before']['lcea_deg'])} → {deg(out['after']['lcea_deg'])}"
    )
    assert on_server(session, lambda: session["app"].plan.procedure) == "pao"
    assert not page.locator(".alert-danger").is_visible()
    wait_for(
        lambda: parse_qs(urlsplit(address(page)).query).get("procedure") == ["pao"],
        5,
        "the URL to name the procedure",
    )
    # a link that contradicts itself: one escaped line, the rest of it applies
    session = open_app(page, served, "case=dysplastic&procedure=none&pao_lateral=20")
    text = _assert_one_line_error(page, session, "pao_lateral not applied: procedure=none")
    assert "choose a procedure" in text
    lcea = expected(case="dysplastic")["before"]["lcea_deg"]
    wait_value(page, "lcea_deg", deg(lcea))


def test_the_browser_tells_the_server_its_camera(page, served):
    """The exports draw from the camera the user turned to: it reaches the server."""
    session = open_app(page, served, "case=dysplastic")
    view3d = session["app"].scene.view3d
    wait_for(lambda: on_server(session, lambda: view3d.camera) is not None, 10, "a camera")
    first = on_server(session, lambda: view3d.camera)
    box = page.locator(".hipviz-scene").bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + 120, y + 10, steps=8)
    page.mouse.up()
    wait_for(lambda: on_server(session, lambda: view3d.camera) != first, 10, "the turned camera")
    turned = on_server(session, lambda: view3d.camera)
    # an orbit keeps the focal point and the distance to it
    assert np.allclose(turned[1], first[1], atol=1e-6)
    dist = [np.linalg.norm(np.subtract(c[0], c[1])) for c in (first, turned)]
    assert dist[1] == pytest.approx(dist[0], rel=1e-3)
    assert not np.allclose(turned[0], first[0], atol=1.0)
    assert page.get_by_role("button", name="Handout (HTML)").is_visible()
    assert page.get_by_role("button", name="Report (PDF)").is_visible()


def _still_works(page, session, expected) -> None:
    """After an error: another case loads, its measures show and the error goes."""
    from hipviz.app.main import CASE_LABELS

    case_select(page).select_option(CASE_LABELS["normal"])
    lcea = expected(case="normal")["before"]["lcea_deg"]
    wait_value(page, "lcea_deg", deg(lcea))
    assert on_server(session, lambda: session["app"].plan.case) == "normal"
    wait_for(lambda: not page.locator(".alert-danger").is_visible(), 5, "the error to go")


def _assert_one_line_error(page, session, name: str) -> str:
    alert = page.locator(".alert-danger")
    wait_for(alert.is_visible, 10, "the error alert")
    text = alert_text(page)
    assert name in text, text
    assert "\n" not in text and "Traceback" not in text and 'File "' not in text, text
    # the pane holds the line as inert text (character references): the same text
    assert html.unescape(on_server(session, lambda: session["app"]._error.object)) == text
    return text


def test_garbage_upload_shows_one_line_error(page, served, expected):
    session = open_app(page, served, "case=dysplastic")
    lcea = expected(case="dysplastic")["before"]["lcea_deg"]
    wait_value(page, "lcea_deg", deg(lcea))
    garbage = b"solid bad\nthis is not a mesh\n" + bytes(range(256)) * 4
    upload_files(page, session, ("bad.stl", garbage), ("bad.stl", garbage))
    _assert_one_line_error(page, session, "bad.stl")
    # The hip shown and its measures are untouched; the session holds no upload.
    assert value_text(page, "lcea_deg") == deg(lcea)
    assert on_server(session, lambda: session["app"].session.upload) is None
    _still_works(page, session, expected)


def test_empty_upload_shows_one_line_error(page, served, expected):
    session = open_app(page, served, "case=dysplastic")
    wait_value(page, "lcea_deg", deg(expected(case="dysplastic")["before"]["lcea_deg"]))
    upload_files(page, session, ("empty.stl", b""), ("empty.stl", b""), load=False)
    app = session["app"]
    # Both files reached the server whole, with no content.
    # pytest.fail, not assert: a surprise here must not count as the expected failure.
    folder = on_server(session, lambda: app.session.folder)
    sizes = sorted(p.stat().st_size for p in folder.glob("incoming-*"))
    if sizes != [0, 0]:
        pytest.fail(f"the server holds files of {sizes} bytes, not two empty files")
    load_button(page).click()
    try:
        _assert_one_line_error(page, session, "empty.stl")
    finally:
        _still_works(page, session, expected)


def test_sessions_are_private(browser, browser_context_args, served, expected, tmp_path):
    from hipviz.anatomy import builtin_hip
    from hipviz.app.main import CASE_LABELS
    from hipviz.app.state import Upload

    hip = builtin_hip(side="left")
    files = {}
    for role in ("pelvis", "femur"):
        files[role] = tmp_path / f"my_{role}.stl"
        getattr(hip, role).export(files[role])
    mine = expected(
        upload=Upload(files["pelvis"], files["femur"], "my_pelvis.stl", "my_femur.stl"),
        case="upload",
    )["before"]["lcea_deg"]
    theirs = expected(case="dysplastic")["before"]["lcea_deg"]
    assert deg(mine) != deg(theirs), "pick a case that differs from the uploaded hip"

    ctx_a = browser.new_context(**browser_context_args)
    ctx_b = browser.new_context(**browser_context_args)
    try:
        page_b = ctx_b.new_page()
        b1 = open_app(page_b, served, "case=dysplastic")
        page_a = ctx_a.new_page()
        a = open_app(page_a, served, "case=dysplastic")
        wait_value(page_a, "lcea_deg", deg(theirs))
        upload_files(
            page_a,
            a,
            ("my_pelvis.stl", files["pelvis"].read_bytes()),
            ("my_femur.stl", files["femur"].read_bytes()),
        )
        wait_value(page_a, "lcea_deg", deg(mine), timeout=30)
        assert case_select(page_a).input_value() == CASE_LABELS["upload"]
        wait_for(lambda: "case=upload" in address(page_a), 5, "case=upload in the address")
        app_a = a["app"]
        folder_a = Path(on_server(a, lambda: app_a.session.folder))
        assert on_server(a, lambda: app_a.plan.case) == "upload"
        assert "my_pelvis.stl" in on_server(a, lambda: app_a.session.source)
        assert kept_files(folder_a) == ["femur.stl", "pelvis.stl"]
        assert (folder_a / "pelvis.stl").read_bytes() == files["pelvis"].read_bytes()

        page_b2 = ctx_b.new_page()
        b2 = open_app(page_b2, served, "case=dysplastic")
        for page, b in ((page_b, b1), (page_b2, b2)):
            wait_value(page, "lcea_deg", deg(theirs))
            app_b = b["app"]
            assert app_b is not app_a
            assert on_server(b, lambda app_b=app_b: app_b.plan.case) == "dysplastic"
            assert on_server(b, lambda app_b=app_b: app_b.session.upload) is None
            folder_b = Path(on_server(b, lambda app_b=app_b: app_b.session.folder))
            assert folder_b != folder_a and folder_b.is_dir()
            assert not kept_files(folder_b), kept_files(folder_b)
        assert value_text(page_a, "lcea_deg") == deg(mine)

        # Closing A's page destroys its session and deletes its files; B's stay.
        ctx_a.close()
        wait_for(
            lambda: not folder_a.exists(),
            (UNUSED_LIFETIME_MS + 2 * CHECK_UNUSED_MS) / 1000 + 5,
            f"{folder_a} to be removed after A's page closed",
        )
        for b in (b1, b2):
            assert Path(on_server(b, lambda b=b: b["app"].session.folder)).is_dir()
    finally:
        ctx_a.close()
        ctx_b.close()


def test_a_file_over_the_limit_is_refused_in_the_browser(page, served, expected):
    """Not sent at all: a message over the websocket limit would close the page silently."""
    session = open_app(page, served, "case=dysplastic")
    wait_value(page, "lcea_deg", deg(expected(case="dysplastic")["before"]["lcea_deg"]))
    app = session["app"]
    on_server(session, lambda: setattr(app.controls.guard, "max_bytes", 2000))
    wait_for(lambda: page.evaluate("1") == 1, 1, "the page")
    card = page.get_by_text("Your own meshes", exact=True)
    if not load_button(page).is_visible():
        card.click()
    big = b"solid big\n" + b"x" * 5000
    page.locator("input[type=file]").nth(0).set_input_files(
        files=[{"name": "big<b>.stl", "mimeType": "application/octet-stream", "buffer": big}]
    )
    text = _assert_one_line_error(page, session, "big<b>.stl")
    assert "over the 0.002 MB upload limit" in text and "not sent" in text, text
    assert on_server(
        session, lambda: (app.controls.w_pelvis_file.filename, app.controls.w_pelvis_file.value)
    ) in (
        (None, None),
        ("", None),
    )
    _still_works(page, session, expected)


def test_a_chosen_file_travels_in_pieces_and_arrives_exactly(page, served, expected):
    """A chosen file goes in binary pieces of about 1 MB, each acknowledged: no
    websocket message carries the whole file (one 60 MB message stopped every
    page while the server parsed it), its bytes arrive exactly, and the page says
    how much has arrived."""
    from hipviz.app.widgets import PIECE_BYTES

    # every message the page sends, by its size (the browser's tools do not report big ones)
    page.add_init_script(
        """
        window.__hvSent = []
        const send = WebSocket.prototype.send
        WebSocket.prototype.send = function (data) {
          const n = typeof data === "string" ? data.length : data.byteLength ?? data.size
          window.__hvSent.push(n)
          return send.call(this, data)
        }
        """
    )
    session = open_app(page, served, "case=dysplastic")
    wait_value(page, "lcea_deg", deg(expected(case="dysplastic")["before"]["lcea_deg"]))
    app = session["app"]
    if not load_button(page).is_visible():
        page.get_by_text("Your own meshes", exact=True).click()
    data = np.random.default_rng(5).bytes(5_500_000)
    page.locator("input[type=file]").nth(1).set_input_files(
        files=[{"name": "big femur.stl", "mimeType": "application/octet-stream", "buffer": data}]
    )
    wait_for(
        lambda: on_server(session, app.controls.received) == {"femur": "big femur.stl"},
        60,
        "the server to hold the whole file",
    )
    path = on_server(session, lambda: app.controls.guard._arrived["femur"][1])
    assert path.read_bytes() == data
    assert path.parent == on_server(session, lambda: app.session.folder)
    sizes = page.evaluate("window.__hvSent")
    assert sum(sizes) > len(data), "the file did not travel over the page's websocket"
    assert max(sizes) <= PIECE_BYTES + 4096, max(sizes)
    page.get_by_text("big femur.stl: 5.5 MB, arrived").wait_for(timeout=10_000)
    # Panel's own input never saw it (it would have sent it whole)
    assert on_server(session, lambda: app.controls.w_femur_file.value) is None
    _still_works(page, session, expected)


def test_a_file_refused_in_the_browser_replaces_the_one_sent_before(page, served, expected):
    """Choosing a file over the limit empties the input: the file sent before for that
    bone goes too, so Load cannot quietly use it."""
    session = open_app(page, served, "case=dysplastic")
    wait_value(page, "lcea_deg", deg(expected(case="dysplastic")["before"]["lcea_deg"]))
    app = session["app"]
    on_server(session, lambda: setattr(app.controls.guard, "max_bytes", 6000))
    if not load_button(page).is_visible():
        page.get_by_text("Your own meshes", exact=True).click()
    pelvis = page.locator("input[type=file]").nth(0)
    pelvis.set_input_files(
        files=[{"name": "first.stl", "mimeType": "application/octet-stream", "buffer": b"x" * 500}]
    )
    wait_for(
        lambda: on_server(session, app.controls.received) == {"pelvis": "first.stl"},
        20,
        "the first file to arrive",
    )
    pelvis.set_input_files(
        files=[{"name": "big.stl", "mimeType": "application/octet-stream", "buffer": b"y" * 7000}]
    )
    _assert_one_line_error(page, session, "big.stl")
    wait_for(lambda: on_server(session, app.controls.received) == {}, 10, "the first to go")
    folder = on_server(session, lambda: app.session.folder)
    assert not list(folder.glob("incoming-*"))
    _still_works(page, session, expected)
