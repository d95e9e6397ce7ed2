"""The app's Load view: load and contact pressure in the plan, the table, the view, Explain.

A page outside a server (everything in the test's thread) on the dysplastic
teaching case; its numbers are checked against the library path that
``hipviz simulate --load`` takes on the same hip and move.
"""

from __future__ import annotations

import html

import numpy as np
import pytest

pytest.importorskip("panel")

from hipviz import explain, render  # noqa: E402
from hipviz.app.load_view import (  # noqa: E402
    ARROW_MM_PER_BW,
    LOAD_KEYS,
    PRESSURE_SCALE_MPA,
    colorbar_html,
)
from hipviz.app.state import Plan  # noqa: E402

PAO = {"pao_lateral": 20.0, "pao_anterior": 5.0, "pao_medial": 3.0}


@pytest.fixture(scope="module")
def app():
    from hipviz.app.main import HipApp

    plan = Plan(case="dysplastic", procedure="pao", load="one-leg-stance")
    app = HipApp(plan)  # the default resolution, as `hipviz simulate`
    yield app
    app.close()


@pytest.fixture
def moved(app):
    """The module's page with the PAO moved, back to its start afterwards."""
    app.plan.param.update(load="one-leg-stance", body_weight=70.0, **PAO)
    yield app
    app.plan.param.update(load="one-leg-stance", body_weight=70.0)
    app.plan.reset_moves()


def _cli_values(app) -> dict:
    """The load keys before and after the page's move, as ``hipviz simulate`` computes them."""
    from hipviz.cli import _simulated_loads
    from hipviz.loads import LoadOptions

    out = {"before": {}, "after": {}}
    options = LoadOptions(load=app.plan.load, body_weight_kg=app.plan.body_weight)
    _simulated_loads(out, app.session.sim, app.session.outcome, options, {})
    return out


def test_table_rows_carry_the_same_numbers_as_simulate(moved):
    lv, out = moved.load_view, moved.session.outcome
    want = _cli_values(moved)
    state = lv.state(out)
    for when, pressure in (("before", state.before), ("after", state.after)):
        got = pressure.values()
        for key in LOAD_KEYS:
            # the JSON keeps 3 decimals
            assert got[key] == pytest.approx(want[when][key], abs=6e-4), (when, key)
    # a PAO on the dysplastic hip spreads the load: larger area, lower peak
    assert state.after.values()["contact_area_mm2"] > state.before.values()["contact_area_mm2"]
    assert state.after.values()["contact_peak_mpa"] < state.before.values()["contact_peak_mpa"]
    table = moved.measures.table.object
    for key in LOAD_KEYS:
        assert f'data-key="{key}"' in table
    before, after = state.before.values(), state.after.values()
    assert (
        f"{before['contact_peak_mpa']:.1f} MPa</span> → <b>{after['contact_peak_mpa']:.1f} MPa"
        in (html.unescape(table))
    )


def test_peak_scales_with_body_weight(moved):
    """Linear springs: twice the weight, twice every pressure, the same contact area."""
    lv = moved.load_view
    light = lv.state(moved.session.outcome).after.values()
    moved.plan.body_weight = 140.0
    heavy = lv.state(moved.session.outcome).after.values()
    assert heavy["contact_peak_mpa"] == pytest.approx(2 * light["contact_peak_mpa"], rel=1e-6)
    assert heavy["contact_mean_mpa"] == pytest.approx(2 * light["contact_mean_mpa"], rel=1e-6)
    assert heavy["contact_area_mm2"] == pytest.approx(light["contact_area_mm2"], rel=1e-9)
    assert heavy["joint_force_bw"] == pytest.approx(light["joint_force_bw"], rel=1e-12)


def test_the_view_gets_pressure_colours_and_the_load_arrow(moved):
    lv, view, out = moved.load_view, moved.scene.view3d, moved.session.outcome
    state = lv.state(out)
    colors = view._meshes["acetabular_fragment"]["colors"].reshape(-1, 3)
    np.testing.assert_array_equal(colors, state.overlay.colors["acetabular_fragment"])
    plain = np.array([int(render.BONE[i : i + 2], 16) for i in (1, 3, 5)])
    off = np.all(colors == plain, axis=1)
    assert 0 < (~off).sum() < len(colors)  # the articular surface is coloured, the rest not
    femur = view._meshes["femur"]["colors"].reshape(-1, 3)
    np.testing.assert_array_equal(femur, state.overlay.colors["femur"])
    # the arrow: from the head centre along the force, ARROW_MM_PER_BW mm per body weight
    shaft = np.asarray(view.lines["load:shaft"]["points"])
    load = state.after.load
    np.testing.assert_allclose(shaft[0], state.after.head_center_mm, atol=1e-3)
    direction = load.force_n / np.linalg.norm(load.force_n)
    np.testing.assert_allclose(
        shaft[1] - shaft[0], ARROW_MM_PER_BW * load.force_bw * direction, atol=2e-3
    )
    # the colour bar marks both peaks
    bar = lv.colorbar.object
    assert lv.colorbar.visible
    for which in ("before", "after"):
        peak = getattr(state, which).values()["contact_peak_mpa"]
        assert f'data-which="{which}" data-mpa="{peak:.2f}"' in bar


def test_a_move_sends_its_pressure_colours_with_its_matrices(moved):
    """Before a move is measured, its pressure colours go with the pieces' matrices, and
    they are the colours of the measured move (so the measured picture sends none again)."""
    from hipviz import osteotomy as ost

    view = moved.scene.view3d
    sent: list[dict] = []
    view._ready, original, view._send_msg = True, view._send_msg, sent.append
    try:
        move = ost.AcetabularMove(25.0, 5.0, 0.0, 3.0)  # not the plan's: new colours
        tfs = moved.session.sim.transforms(move)
        moved.scene.move(tfs)
        colored = {m["name"]: m["colors"] for m in sent if m["type"] == "colors"}
        assert set(colored) == {"acetabular_fragment", "femur"}
        assert view.matrices["acetabular_fragment"] == pytest.approx(
            np.ravel(tfs["fragment"]).tolist()
        )
        want = moved.load_view.compute(moved.session.sim.move(move)).overlay.colors
        for name, rgb in colored.items():
            np.testing.assert_array_equal(rgb.reshape(-1, 3), want[name])
        sent.clear()
        moved.scene.move(tfs)  # the browser has these colours already
        assert [m["type"] for m in sent] == []
    finally:
        view._ready, view._send_msg = False, original


def test_no_load_no_rows_no_colours(moved):
    moved.plan.load = "none"
    view = moved.scene.view3d
    assert "contact_peak_mpa" not in moved.measures.table.object
    assert not any(k.startswith("load:") for k in view.lines)
    assert view._meshes["acetabular_fragment"]["colors"] is None
    assert not moved.load_view.colorbar.visible


def test_colorbar_places_marks_on_the_fixed_scale():
    lo, hi = PRESSURE_SCALE_MPA
    bar = colorbar_html(hi / 2, 2 * hi)
    assert 'data-which="before"' in bar and "left:50.0%" in bar
    assert "left:100.0%" in bar  # beyond the scale: at its end
    assert "data-which" not in colorbar_html()


def test_link_round_trip_keeps_the_load():
    plan = Plan()
    assert plan.apply_query("load=pauwels&body_weight=82.5&case=dysplastic") == []
    query = plan.url_query()
    assert "load=pauwels" in query and "body_weight=82.5" in query
    again = Plan()
    assert again.apply_query(query) == []
    assert (again.load, again.body_weight) == ("pauwels", 82.5)
    assert "load" not in Plan().url_query()  # the default is left out


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("load=<script>alert(1)</script>", "one of none, walking, one-leg-stance"),
        ("load=", "one of none"),
        ("body_weight=5", "a number from 20 to 300"),
        ("body_weight=nan", "a number from 20 to 300"),
        ("body_weight=heavy", "a number from 20 to 300"),
    ],
)
def test_bad_link_values_give_one_line_and_change_nothing(query, expected):
    from hipviz.app.text import inert

    plan = Plan()
    problems = plan.apply_query(query)
    assert len(problems) == 1
    assert expected in problems[0]
    assert (plan.load, plan.body_weight) == ("none", 70.0)
    shown = inert(problems[0])
    assert "<" not in shown and "\n" not in shown


def test_pressure_step_says_the_numbers_in_plain_words():
    before = {"contact_peak_mpa": 19.2, "contact_area_mm2": 500.0, "joint_force_bw": 2.6}
    after = {"contact_peak_mpa": 2.04, "contact_area_mm2": 1000.0, "joint_force_bw": 2.6}
    step = explain.pressure_step(before, after, "one-leg-stance")
    assert step.key == explain.PRESSURE_STEP and step.scene in explain.SCENES
    assert "Standing on one leg presses the ball into the socket with about 2.6 times" in step.text
    assert "spreads over a roof twice as large" in step.text
    assert "falls from 19 to 2.0 MPa" in step.text
    worse = explain.pressure_step(after, before, "walking")
    assert "smaller part of the socket (50% of before)" in worse.text
    assert "rises from 2.0 to 19 MPa" in worse.text
    still = explain.pressure_step(before, None, "walking")
    assert "5 square centimetres" in still.text and "19 MPa" in still.text


def test_explain_shows_the_pressure_step_after_the_turn_only_with_a_load(moved):
    modes = moved.modes
    keys = [s.key for s in modes.steps()]
    assert keys[keys.index("turn") + 1] == explain.PRESSURE_STEP
    text = modes.steps()[keys.index("turn") + 1].text
    assert "falls from" in text
    moved.plan.load = "none"
    assert explain.PRESSURE_STEP not in [s.key for s in modes.steps()]


def test_exports_carry_the_pressure(moved):
    state = moved.load_view.state(moved.session.outcome)
    csv_lines = moved.exports._csv().getvalue().decode().splitlines()
    peak = next(line for line in csv_lines if line.startswith("contact_peak_mpa,"))
    b, a = state.before.values()["contact_peak_mpa"], state.after.values()["contact_peak_mpa"]
    assert peak.split(",")[3:5] == [f"{b:.2f}", f"{a:.2f}"]
    page = moved.exports._report().getvalue().decode()
    assert page.count("Contact pressure before") == 1 and page.count("Contact pressure after") == 1
    assert 'data-key="contact_area_mm2"' in page
    moved.plan.load = "none"
    assert "contact_peak_mpa" not in moved.exports._csv().getvalue().decode()


def test_explain_looks_into_the_socket_on_the_pressure_step_only(moved):
    modes, lv, plan = moved.modes, moved.load_view, moved.plan
    plan.view = "false_profile"
    plan.mode = "explain"
    try:
        keys = [s.key for s in modes.steps()]
        modes.step = keys.index(explain.PRESSURE_STEP)
        assert lv.see_socket and plan.view == "lateral"
        view = moved.scene.view3d
        assert view.actors["femur"]["visible"] is False
        # from the side the roof-cover angle lies under the load arrow: only the load is labelled
        assert [k for k in view.labels] == ["line:load:shaft"]
        assert not [k for k in view.lines if not k.startswith("load:")]
        modes.step = keys.index(explain.PRESSURE_STEP) + 1
        assert not lv.see_socket and plan.view == "false_profile"
        assert view.actors["femur"]["visible"] is True
        assert "line:lcea_arc" in view.labels  # the roof cover is back on the next step
        modes.step = keys.index(explain.PRESSURE_STEP)
        plan.mode = "surgeon"  # leaving Explain on the pressure step puts the view back
        assert not lv.see_socket and plan.view == "false_profile"
    finally:
        plan.param.update(mode="surgeon", view="anterior")
        modes.step = 0
