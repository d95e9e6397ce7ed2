"""The app's downloads made from the current page: handout, PDF report, PNG from the camera.

A page outside a server (everything in the test's thread) on the dysplastic
teaching case with a PAO and a load chosen; the files are checked for the
page's own numbers.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

pytest.importorskip("panel")

from test_handout import MAX_BYTES, _Links, outside_vendored, pdf_text_runs  # noqa: E402

from hipviz import handout, render, report  # noqa: E402
from hipviz.app.state import Plan  # noqa: E402
from hipviz.app.viewer import parse_camera  # noqa: E402
from hipviz.errors import InputError  # noqa: E402

PAO = {"pao_lateral": 20.0, "pao_anterior": 5.0, "pao_medial": 3.0}


@pytest.fixture(scope="module")
def app():
    from hipviz.app.main import HipApp

    plan = Plan(case="dysplastic", procedure="pao", load="one-leg-stance", **PAO)
    app = HipApp(plan)
    yield app
    app.close()


def _camera_msg(camera, view_angle: float = 30.0) -> dict:
    position, focal_point, view_up = (list(map(float, v)) for v in camera)
    return {
        "type": "camera",
        "position": position,
        "focal_point": focal_point,
        "view_up": view_up,
        "view_angle": view_angle,
    }


def test_handout_button_gives_a_self_contained_page_with_the_plan(app):
    data = app.exports._handout().getvalue()
    assert 0 < len(data) <= MAX_BYTES
    text = data.decode("utf-8")
    assert text.startswith("<!DOCTYPE html>")
    parser = _Links()
    parser.feed(text)
    assert parser.links == []
    assert "http" not in outside_vendored(text).lower().replace(
        'http-equiv="content-security-policy"', ""
    )
    out = app.session.outcome
    for key in ("lcea_deg", "acea_deg"):
        assert f"{out.before[key]:.1f}°" in text and f"{out.after[key]:.1f}°" in text, key
    assert "lateral +20°" in text and "Periacetabular osteotomy" in text
    assert text.count("<th>Hip</th>") == 1 and "teaching case" in text
    # the chosen load's rows, with the page's numbers
    state = app.load_view.state(out)
    assert 'data-key="contact_peak_mpa"' in text
    assert report.fmt(state.after.values()["contact_peak_mpa"], "MPa") in text
    assert handout.DISCLAIMER in text


def test_report_button_gives_an_a4_pdf_with_the_plan_and_the_camera(app):
    view3d = app.scene.view3d
    sim = app.session.sim
    side = render.camera("lateral", sim.analysis.side, sim.center_mm)
    view3d._handle_msg(_camera_msg(side))
    try:
        pdf = app.exports._report_pdf().getvalue()
    finally:
        view3d.camera = None
    assert pdf.startswith(b"%PDF-") and pdf.rstrip().endswith(b"%%EOF")
    runs = " ".join(pdf_text_runs(pdf))
    out = app.session.outcome
    for key in ("lcea_deg", "tonnis_deg"):
        assert f"{out.before[key]:.1f}°" in runs and f"{out.after[key]:.1f}°" in runs, key
    assert "lateral +20°" in runs and "Method" in runs
    assert "Before (your view)" in runs and "After (your view)" in runs
    assert not list((app.session.folder / "export").glob("*.pdf"))  # not left behind


def _pixels(png: bytes) -> np.ndarray:
    import io

    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=int)


def test_png_is_drawn_from_the_browsers_camera(app):
    view3d = app.scene.view3d
    sim = app.session.sim
    assert view3d.camera is None
    preset = _pixels(app.exports._png().getvalue())  # the view preset, zoom 2
    front = render.camera(app.plan.view, sim.analysis.side, sim.center_mm)
    side = render.camera("lateral", sim.analysis.side, sim.center_mm)
    try:
        # the preset's own camera at half the view angle is the preset's picture
        view3d._handle_msg(_camera_msg(front, view_angle=15.0))
        same = _pixels(app.exports._png().getvalue())
        view3d._handle_msg(_camera_msg(side, view_angle=15.0))
        turned = _pixels(app.exports._png().getvalue())
        # a broken message leaves the camera as it was
        view3d._handle_msg({**_camera_msg(front), "position": [math.nan, 0, 0]})
        assert view3d.camera == tuple(tuple(map(float, v)) for v in side)
    finally:
        view3d.camera = None
    assert np.abs(same - preset).max() <= 2
    assert np.abs(turned - preset).mean() > 5


@pytest.mark.parametrize(
    "bad",
    [
        {"position": [0, 0, 1], "focal_point": [0, 0, 0]},
        {"position": [0, 0, 1], "focal_point": [0, 0, 0], "view_up": [0, 0]},
        {"position": [0, 0, 1], "focal_point": [0, 0, 0], "view_up": [0, 0, 0]},
        {"position": [0, 0, 0], "focal_point": [0, 0, 0], "view_up": [0, 1, 0]},
        {"position": ["x", 0, 1], "focal_point": [0, 0, 0], "view_up": [0, 1, 0]},
        {"position": [0, 0, 1], "focal_point": [0, 0, 0], "view_up": [0, 1, 0], "view_angle": 0},
        {"position": [1e400, 0, 1], "focal_point": [0, 0, 0], "view_up": [0, 1, 0]},
        {"position": 5, "focal_point": [0, 0, 0], "view_up": [0, 1, 0]},
    ],
)
def test_a_bad_camera_message_is_ignored(bad):
    assert parse_camera(bad) is None
    good = {"position": [0, 0, 1], "focal_point": [0, 0, 0], "view_up": [0, 1, 0]}
    assert parse_camera(good) == (((0.0, 0.0, 1.0), (0.0, 0.0, 0.0), (0.0, 1.0, 0.0)), 30.0)


@pytest.mark.parametrize(
    ("label", "target", "exc", "expected"),
    [
        (
            "Handout (HTML)",
            "handout_html",
            InputError("<b>too big</b>"),
            "Handout (HTML): <b>too big</b>",
        ),
        (
            "Report (PDF)",
            "write_pdf",
            OSError("disk <full>\nsecond line"),
            "Report (PDF) could not be made: disk <full> second line",
        ),
    ],
)
def test_a_failed_export_is_one_escaped_line_on_the_page(
    app, monkeypatch, label, target, exc, expected
):
    """Not only in the log: the page names the button and the reason, as inert text."""
    import asyncio
    import html
    from concurrent.futures import ThreadPoolExecutor

    from hipviz.app import exports

    def fail(*args, **kwargs):
        raise exc

    module = exports.handout if target == "handout_html" else exports.report
    monkeypatch.setattr(module, target, fail)
    button = next(b for b in app.exports.buttons if b.label == label)
    app._show_error("")
    with pytest.raises(type(exc)):
        # On a thread of its own: a browser test run before may leave an event loop
        # set in this one, where asyncio.run refuses to start another.
        with ThreadPoolExecutor(1) as pool:
            pool.submit(asyncio.run, button.callback()).result()
    assert app._error.visible
    shown = app._error.object
    assert "<" not in shown and "\n" not in shown, shown
    assert html.unescape(shown) == expected
    app._show_error("")
