"""Osteotomies: exact deltas on analytic hips, closed pieces, gaps, contact and errors."""

import numpy as np
import pytest

from hipviz import osteotomy as ost
from hipviz.datasets import socket_hip
from hipviz.errors import InputError
from hipviz.hip import analyze
from hipviz.simulate import Simulation

TOL_DEG = 0.3


@pytest.fixture(scope="module", params=["right", "left"])
def analytic(request):
    """A socket hip with bone beyond the shell, cut for a PAO (fallback placement)."""
    hip = socket_hip(side=request.param, columns=True, segments=128)
    sim = Simulation(hip.pelvis, hip.femur, frame="ras")
    sim.cut("pao")
    sim.cut_femur()
    return hip, sim


def _delta(out, key):
    return out.after[key] - out.before[key]


@pytest.mark.parametrize("angle", [-10.0, 12.0, 25.0])
def test_pao_lateral_raises_lcea_by_the_angle(analytic, angle):
    _, sim = analytic
    out = sim.move(ost.AcetabularMove(lateral_deg=angle))
    assert _delta(out, "lcea_deg") == pytest.approx(angle, abs=TOL_DEG)


@pytest.mark.parametrize("angle", [-12.0, 8.0, 20.0])
def test_pao_anterior_raises_acea_by_the_angle(analytic, angle):
    _, sim = analytic
    out = sim.move(ost.AcetabularMove(anterior_deg=angle))
    assert _delta(out, "acea_deg") == pytest.approx(angle, abs=TOL_DEG)


@pytest.mark.parametrize("angle", [-15.0, 10.0])
def test_pao_version_raises_version_by_the_angle(analytic, angle):
    _, sim = analytic
    out = sim.move(ost.AcetabularMove(version_deg=angle))
    assert _delta(out, "acetabular_version_deg") == pytest.approx(angle, abs=TOL_DEG)
    assert _delta(out, "acetabular_version_cranial_deg") == pytest.approx(angle, abs=TOL_DEG)


@pytest.mark.parametrize("angle", [-20.0, 15.0])
def test_femoral_rotation_raises_version_by_the_angle(analytic, angle):
    _, sim = analytic
    out = sim.move(femoral=ost.FemoralMove(rotation_deg=angle))
    assert _delta(out, "femoral_version_deg") == pytest.approx(angle, abs=TOL_DEG)


@pytest.mark.parametrize("angle", [-10.0, 12.0])
def test_varus_lowers_projected_neck_shaft_angle(analytic, angle):
    _, sim = analytic
    out = sim.move(femoral=ost.FemoralMove(varus_deg=angle))
    assert _delta(out, "neck_shaft_projected_deg") == pytest.approx(-angle, abs=TOL_DEG)
    # Varus shortens the femur (the shaft turns about the medial cortex), valgus lengthens.
    assert np.sign(out.leg_length_change_mm) == -np.sign(angle)


def test_no_move_changes_nothing(analytic):
    _, sim = analytic
    out = sim.move()
    for key in ("lcea_deg", "acea_deg", "acetabular_version_deg", "tonnis_deg", "neck_shaft_deg"):
        assert out.after[key] == pytest.approx(out.before[key], abs=1e-6)
    assert out.contact["pelvis"].fraction == pytest.approx(1.0)
    assert out.contact["pelvis"].overlap_mm == pytest.approx(0.0, abs=0.05)
    assert out.leg_length_change_mm == pytest.approx(0.0, abs=1e-9)


def test_joint_gap_is_the_socket_clearance_and_follows_the_socket(analytic):
    hip, sim = analytic
    clearance = hip.params["socket_radius_mm"] - hip.params["head_radius_mm"]
    assert sim.move().min_gap_mm == pytest.approx(clearance, abs=0.1)
    out = sim.move(ost.AcetabularMove(lateral_deg=15, medial_mm=5))
    assert out.min_gap_mm == pytest.approx(clearance, abs=0.1)
    assert out.hip_center_shift_mm == pytest.approx([-5.0, 0.0, 0.0], abs=1e-9)
    assert not out.overlap


def test_a_shaft_swung_into_the_ischium_is_flagged(analytic):
    _, sim = analytic
    assert not sim.move(femoral=ost.FemoralMove(varus_deg=5)).overlap
    out = sim.move(femoral=ost.FemoralMove(varus_deg=40))
    assert out.overlap
    assert any("overlap" in w for w in out.warnings)


def test_turning_the_fragment_opens_some_cuts_and_closes_others(analytic):
    _, sim = analytic
    out = sim.move(ost.AcetabularMove(lateral_deg=20))
    con = out.contact["pelvis"]
    assert 0.1 < con.fraction < 0.95
    assert con.overlap_mm > 1.0  # turning about the head presses the fragment into the rest
    assert con.overlap_cut in ("iliac", "retro", "ischial", "pubic")


def test_moved_measures_match_a_fresh_analysis(analytic):
    """The fast path (rays moved into the fragment) equals measuring the moved meshes."""
    hip, sim = analytic
    out = sim.move(ost.AcetabularMove(lateral_deg=12, anterior_deg=6, medial_mm=2))
    meshes = sim.meshes(out)
    import trimesh

    pelvis = trimesh.util.concatenate([meshes["pelvis_rest"], meshes["acetabular_fragment"]])
    femur = trimesh.util.concatenate([meshes["femur_proximal"], meshes["femur_distal"]])
    fresh = analyze(pelvis, femur, frame="ras").values
    for key in ("lcea_deg", "acea_deg", "pcea_deg", "acetabular_version_deg"):
        assert out.after[key] == pytest.approx(fresh[key], abs=0.5), key


def test_every_procedure_gives_two_closed_pieces_of_the_same_volume(builtin_left):
    sim = Simulation(builtin_left.pelvis, builtin_left.femur)
    volume = sim.pelvis.volume
    for name in ost.PROCEDURES:
        cut = sim.cut(name)
        assert cut.geometry.placed_from == "landmarks"
        assert cut.fragment.is_watertight and cut.rest.is_watertight, name
        assert cut.fragment.body_count == 1, name
        assert cut.fragment.volume + cut.rest.volume == pytest.approx(volume, rel=1e-6)
        # the fragment holds the socket: rays from the head centre upward meet it first
        out = sim.move(ost.PROCEDURES[name].default_move)
        assert not out.overlap, name
        assert cut.face.area_mm2 > 200.0


def test_cuts_fall_back_to_distances_without_landmarks():
    hip = socket_hip(side="right", columns=True, segments=96)
    sim = Simulation(hip.pelvis, hip.femur, frame="ras")
    cut = sim.cut("pao")
    assert cut.geometry.placed_from == "distances"
    names = {p.name for p in cut.geometry.planes}
    assert names == {"iliac", "retro", "ischial", "pubic"}


def test_cut_adjustments_move_the_planes():
    hip = socket_hip(side="right", columns=True, segments=96)
    sim = Simulation(hip.pelvis, hip.femur, frame="ras")
    small = sim.cut("pao").fragment.volume
    adj = ost.CutAdjustments(iliac=ost.CutAdjust(offset_mm=10.0))
    assert sim.cut("pao", adj).fragment.volume > small
    base = ost.place_cuts("pao", hip.head_center_mm, 23.0, sim.axes)
    tilted = ost.place_cuts(
        "pao",
        hip.head_center_mm,
        23.0,
        sim.axes,
        adjust=ost.CutAdjustments(pubic=ost.CutAdjust(tilt_deg=20.0)),
    )
    n0 = next(p.normal for p in base.planes if p.name == "pubic")
    n1 = next(p.normal for p in tilted.planes if p.name == "pubic")
    assert np.degrees(np.arccos(np.clip(n0 @ n1, -1, 1))) == pytest.approx(20.0, abs=1e-6)


@pytest.mark.parametrize(
    "make",
    [
        lambda: ost.AcetabularMove(lateral_deg=90).validate(),
        lambda: ost.AcetabularMove(medial_mm=np.nan).validate(),
        lambda: ost.FemoralMove(rotation_deg=-60).validate(),
        lambda: ost.CutAdjustments(iliac=ost.CutAdjust(offset_mm=100)).validate(),
        lambda: ost.place_cuts("shelf", np.zeros(3), 23.0, None),
    ],
)
def test_absurd_values_are_refused(make):
    with pytest.raises(InputError):
        make()


def test_moving_an_uncut_fragment_is_refused(builtin_left):
    sim = Simulation(builtin_left.pelvis, builtin_left.femur)
    with pytest.raises(InputError, match="choose a pelvic osteotomy"):
        sim.move(ost.AcetabularMove(lateral_deg=10))


def test_an_open_surface_cannot_be_cut():
    import trimesh

    open_box = trimesh.creation.box()
    open_box.update_faces(np.arange(len(open_box.faces)) > 0)
    with pytest.raises(InputError, match="not closed"):
        ost.to_manifold(open_box)


def test_dysplastic_case_after_a_pao_lands_in_the_target_ranges():
    """The must-show plan: lateral 20, anterior 5, medial 3 mm on the dysplastic case."""
    from hipviz.cases import case_hip

    hip = case_hip("dysplastic", side="left")
    sim = Simulation(hip.pelvis, hip.femur)
    sim.cut("pao")
    out = sim.move(ost.AcetabularMove(lateral_deg=20, anterior_deg=5, medial_mm=3))
    assert out.before["lcea_deg"] < 20 and out.before["tonnis_deg"] > 12
    assert 30 <= out.after["lcea_deg"] <= 38
    assert 0 <= out.after["tonnis_deg"] <= 10
    assert 10 <= out.after["acetabular_version_deg"] <= 25
    assert not out.overlap
    assert out.hip_center_shift_mm[0] == pytest.approx(-3.0, abs=1e-9)


def _contact_measuring_every_sample(face, tf, hit_facing, nearest, tolerance_mm=1.0):
    """Cut contact with the depth of every sample inside the other piece measured."""
    nudge = 0.05
    pts = face.points_mm @ tf[:3, :3].T + tf[:3, 3]
    nrm = face.normals @ tf[:3, :3].T
    t, cos = hit_facing(pts - nudge * nrm, nrm)
    inside = cos > 0
    depth = np.zeros(len(t))
    depth[inside] = nearest(pts[inside])
    touching = inside | (t - nudge <= tolerance_mm)
    worst = int(np.argmax(depth))
    deep = float(depth[worst])
    cut = face.names[face.cut[worst]] if deep > tolerance_mm else None
    contact = ost.Contact(
        float(face.area_mm2 * touching.mean()), float(touching.mean()), deep, cut, tolerance_mm
    )
    return contact, int(inside.sum())


@pytest.mark.parametrize(
    "move",
    [
        ost.AcetabularMove(lateral_deg=2.0),
        ost.AcetabularMove(lateral_deg=20, anterior_deg=5),
        ost.AcetabularMove(lateral_deg=-10, medial_mm=4),
        ost.AcetabularMove(version_deg=15),
    ],
)
def test_cut_contact_finds_the_deepest_overlap_of_all_samples(analytic, move):
    """Measuring only the samples that can be deepest gives the same contact, exactly."""
    _, sim = analytic
    cut, tf = sim.pelvis_cut, sim.transforms(move)["fragment"]
    nearest = sim._surface_distance("rest", cut.rest, cut.face)
    asked = []

    def counted(points):
        asked.append(len(points))
        return nearest(points)

    got = ost.cut_contact(cut.face, tf, sim._rest_caster.first_hit_facing, counted)
    want, n_inside = _contact_measuring_every_sample(
        cut.face, tf, sim._rest_caster.first_hit_facing, nearest
    )
    assert got == want
    if n_inside > 200:
        assert sum(asked) < n_inside  # fewer depths measured than samples inside
    if want.overlap_mm > 2.0:  # a deep overlap: most samples are ruled out
        assert sum(asked) < n_inside / 2
