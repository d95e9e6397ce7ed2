"""The app's Motion view outside a server: poses and contact reach the scene, the table is
``hipviz rom``'s, bad values are refused.

The page runs in the test's thread (no server): limits are computed at once.
Expected values come from :mod:`hipviz.motion` and the CLI run here, never
from numbers read off the app.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("panel")

from hipviz import explain, motion  # noqa: E402
from hipviz.app.motion_view import (  # noqa: E402
    CONTACT,
    PAST_LIMIT_DEG,
    SPOT_MM,
    limit_pose,
)
from hipviz.geometry import apply, invert  # noqa: E402

RED = [int(CONTACT[i : i + 2], 16) for i in (1, 3, 5)]


@pytest.fixture(scope="module")
def app():
    """The normal teaching case at the CLI's resolution (8), left side."""
    from hipviz.app.main import HipApp
    from hipviz.app.state import Plan

    app = HipApp(Plan(case="normal", side="left"), subdivisions=8)
    app.motion.card.collapsed = False  # opening the view computes the limits
    yield app
    app.close()


def cli_json(capsys, argv: list[str]) -> dict:
    from hipviz.cli import main

    capsys.readouterr()
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out)


def red_rows(app, name: str) -> np.ndarray:
    colors = app.scene.view3d._meshes[name]["colors"]
    if colors is None:
        return np.zeros(0, dtype=int)
    return np.flatnonzero((colors.reshape(-1, 3) == RED).all(axis=1))


def test_the_table_is_hipviz_rom_for_the_same_hip(app, capsys):
    want = cli_json(capsys, ["rom", "--case", "normal", "--side", "left", "--json"])
    m = app.motion
    assert m.rom_before is not None
    assert m.rom_before["rom_deg"] == want["rom_deg"]
    for key, imp in want["impingement"].items():
        got = m.rom_before["impingement"][key]
        assert (got is None) == (imp is None), key
        if imp is not None:
            assert got["clock"] == imp["clock"] and got["parts"] == imp["parts"], key
    # the table shows them, with "bone only" beside the numbers
    html = m.table.object
    for key, value in want["rom_deg"].items():
        row = html.split(f'data-key="{key}"')[1].split("</tr>")[0]
        text = "none within 150°" if value is None else f"{value:.1f}°"
        assert text.replace(".", "&#46;") in row, (key, row)
    assert "bone only" in html


def test_the_leg_goes_to_the_pose_and_the_contact_is_lit_on_both_bones(app):
    m, view = app.motion, app.scene.view3d
    sim, out = app.session.sim, app.session.outcome
    lim = m._limits["internal_rotation_90"]
    assert lim.angle_deg is not None

    # just before the limit: the leg is placed, nothing is lit
    m.go_to(limit_pose("internal_rotation_90", lim.angle_deg - 1.0))
    f, a, r = m.angles
    assert (f, a) == (90.0, 0.0) and abs(r - (lim.angle_deg - 1.0)) <= 0.25
    model = sim.motion(out)
    want = motion.pose_transform(model.landmarks, f, a, r) @ model.femur["femur"].tf
    np.testing.assert_allclose(np.reshape(view.matrices["femur"], (4, 4)), want, atol=1e-9)
    assert not m.contact.touching
    assert len(red_rows(app, "femur")) == 0 and len(red_rows(app, "pelvis")) == 0
    assert not view.lines  # the angle lines belong to the standing pose

    # the limit button: just past the limit, touching, red on both bones near the contact
    m.go_to_limit("internal_rotation_90")
    f, a, r = m.angles
    assert (f, a) == (90.0, 0.0)
    assert abs(r - (lim.angle_deg + PAST_LIMIT_DEG)) <= 0.25
    assert m.contact.touching
    pts = m.contact.points_mm
    tf_femur = np.reshape(view.matrices["femur"], (4, 4))
    for name, tf in (("femur", tf_femur), ("pelvis", np.eye(4))):
        rows = red_rows(app, name)
        assert len(rows) > 0, name
        local = apply(invert(tf), pts)
        verts = app.scene.mesh_points(name)[rows].astype(float)
        d = np.linalg.norm(verts[:, None] - local[None], axis=2).min(axis=1)
        assert d.max() <= SPOT_MM + 1e-3, name
    # the contact is where hipviz.motion says the limit's contact is (the same rim)
    assert np.linalg.norm(pts - lim.point_mm, axis=1).min() < 10.0

    # a plan slider's quick picture leaves the turned leg where it is
    posed = list(view.matrices["femur"])
    app.scene.move(app.session.transforms(app.plan))
    assert view.matrices["femur"] == posed

    # back to standing: the plan's pose, the angle lines and the head's coverage colours
    m.go_to((0.0, 0.0, 0.0))
    np.testing.assert_allclose(np.reshape(view.matrices["femur"], (4, 4)), np.eye(4), atol=1e-12)
    assert view.lines
    assert len(red_rows(app, "pelvis")) == 0
    coverage = app.scene._coloring(out.coverage_after.covered)
    np.testing.assert_array_equal(view._meshes["femur"]["colors"].reshape(-1, 3), coverage)


def test_the_table_after_a_pao_is_hipviz_simulate_rom(app, capsys):
    want = cli_json(
        capsys,
        [
            "simulate",
            "--case",
            "normal",
            "--side",
            "left",
            "--pao",
            "lateral=20,anterior=5",
            "--rom",
            "--no-fixation",
            "--json",
        ],
    )
    app.plan.param.update(procedure="pao", pao_lateral=20.0, pao_anterior=5.0)
    try:
        m = app.motion
        assert m.rom_before["rom_deg"] == want["before"]["rom_deg"]
        assert m.rom_after["rom_deg"] == want["after"]["rom_deg"]
        assert m.rom_after["rom_deg"] != m.rom_before["rom_deg"]  # the turn changes the limits
        row = m.table.object.split('data-key="internal_rotation_90"')[1].split("</tr>")[0]
        b = want["before"]["rom_deg"]["internal_rotation_90"]
        a = want["after"]["rom_deg"]["internal_rotation_90"]
        assert f"{b:.1f}° → {a:.1f}°".replace(".", "&#46;") in row
        # Explain quotes the same numbers in its "too far" step
        app.plan.mode = "explain"
        app.modes.step = explain.STEP_KEYS.index("too_far")
        text = app.modes.step_pane.object
        assert f"{a:.0f}°" in text and f"{b:.0f}°" in text
    finally:
        app.plan.mode = "surgeon"
        app.plan.param.update(procedure="none", pao_lateral=0.0, pao_anterior=0.0)


@pytest.mark.parametrize(
    ("key", "angle", "match"),
    [
        ("flexon", 10.0, "unknown limit 'flexon'"),
        ("fadir", float("nan"), "finite angle"),
        ("fadir", float("inf"), "finite angle"),
    ],
)
def test_limit_pose_refuses_bad_values(key, angle, match):
    with pytest.raises(ValueError, match=match):
        limit_pose(key, angle)


@pytest.mark.parametrize("value", [151.0, -151.0, float("nan"), "10"])
def test_sliders_refuse_values_outside_their_range(app, value):
    before = app.motion.angles
    with pytest.raises(ValueError):
        app.motion.rotation = value
    assert app.motion.angles == before


def test_go_to_refuses_non_finite_angles(app):
    with pytest.raises(ValueError, match="three finite angles"):
        app.motion.go_to((float("nan"), 0.0, 0.0))


def test_the_femoral_plate_and_the_faint_femur_turn_with_the_leg(app):
    """After a femoral osteotomy the blade plate, its screws and the femur's faint starting
    copy turn with the leg (the plan's own placement, the leg's turn before it), and go
    back to where they are drawn when the leg stands again."""
    m, view, scene = app.motion, app.scene.view3d, app.scene
    app.plan.param.update(fem_varus=10.0)  # cuts the femur: proximal and distal pieces
    scene.param.update(fixation=True, ghost=True)
    try:
        m.request_limits(app.session.sim, app.session.outcome)  # the model of the new cut
        scene.pose(app.session.outcome)
        follow = [
            n for n in view.mesh_names if n.startswith(("fix:blade", "fix:plate", "ghost:fe"))
        ]
        assert "fix:blade_plate" in follow and "ghost:femur_distal" in follow
        assert any(n.startswith("fix:plate_screw_") for n in follow)
        m.go_to((40.0, 10.0, 15.0))
        tf_leg = m.contact.tf_femur
        assert not np.allclose(tf_leg, np.eye(4))
        for name in follow:
            np.testing.assert_allclose(np.reshape(view.matrices[name], (4, 4)), tf_leg, atol=1e-9)
        pelvic = [n for n in view.mesh_names if n.startswith("fix:screw_")]
        for name in pelvic:  # screws in the pelvis stay where they are
            assert name not in view.matrices or np.allclose(view.matrices[name], np.eye(4).ravel())
        m.go_to((0.0, 0.0, 0.0))
        for name in follow:
            np.testing.assert_allclose(np.reshape(view.matrices[name], (4, 4)), np.eye(4))
    finally:
        m.param.update(flexion=0.0, adduction=0.0, rotation=0.0)
        scene.param.update(fixation=False)
        app.plan.reset_moves()
