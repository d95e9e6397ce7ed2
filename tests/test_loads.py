"""The joint load: Pauwels by hand, OrthoLoad through poses and sides, the trochanter tip.

Expected values are written out from the construction (trigonometry in the
test, never the module's own helpers); real meshes get plausible ranges.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import trimesh

from hipviz import datasets, hip, loads
from hipviz import landmarks as lmk
from hipviz.cli import main
from hipviz.geometry import Sphere, rotation_about, translation
from hipviz.measures import HipAxes

G = 9.81
RIGHT = np.array([1.0, 0.0, 0.0])  # lateral of a right hip, RAS
UP = np.array([0.0, 0.0, 1.0])


def _by_hand(c, gt, origin, midline_x, bw_kg):
    """Pauwels in the frontal (x, z) plane of a right hip, from first principles.

    Returns a, h, abductor force M, joint force (x, z) on the socket, all in mm and N.
    """
    s5 = 5.0 / 6.0 * bw_kg * G
    a = c[0] - midline_x
    gx, gz = gt[0] - c[0], gt[2] - c[2]
    ox, oz = origin[0] - c[0], origin[2] - c[2]
    length = math.hypot(ox - gx, oz - gz)
    dx, dz = (ox - gx) / length, (oz - gz) / length
    # Distance of the head centre from the line through the tip along (dx, dz).
    h = abs(gx * dz - gz * dx)
    m = s5 * a / h
    return a, h, m, (m * dx, s5 + m * dz)


def _origin(point):
    return loads.AbductorOrigin(np.asarray(point, float), 100.0, 100.0, "given")


# ---------------------------------------------------------------- Pauwels by hand

C = np.array([90.0, -5.0, -70.0])
GT = C + [50.0, -20.0, -10.0]
ORIGIN = C + [20.0, 3.0, 110.0]


def test_pauwels_exact_on_a_constructed_hip():
    load = loads.pauwels(C, GT, _origin(ORIGIN), np.zeros(3), RIGHT, UP, 80.0)
    # a = 90; line from (50, -10) to (20, 110): direction (-30, 120)/123.69;
    # h = |50*120 - (-10)(-30)| / 123.69 = 5700/123.69 = 46.08 mm.
    a, h, m, (fx, fz) = _by_hand(C, GT, ORIGIN, 0.0, 80.0)
    assert a == pytest.approx(90.0)
    assert h == pytest.approx(5700.0 / math.hypot(30.0, 120.0))
    d = load.details
    assert d["body_weight_lever_arm_mm"] == pytest.approx(a, rel=1e-12)
    assert d["abductor_lever_arm_mm"] == pytest.approx(h, rel=1e-12)
    assert d["abductor_force_n"] == pytest.approx(m, rel=1e-12)
    assert d["abductor_force_bw"] == pytest.approx(m / (80.0 * G), rel=1e-12)
    np.testing.assert_allclose(load.force_n, [fx, 0.0, fz], rtol=1e-12, atol=1e-9)
    assert load.force_bw == pytest.approx(math.hypot(fx, fz) / (80.0 * G), rel=1e-12)
    # The head pushes the socket up and medially: medial is -x for a right hip.
    assert fx < 0 < fz
    assert d["joint_force_angle_deg"] == pytest.approx(math.degrees(math.atan2(-fx, fz)))
    assert d["abductor_angle_deg"] == pytest.approx(math.degrees(math.atan2(30.0, 120.0)))


def test_pauwels_mirrored_hip_gives_the_mirrored_force():
    mirror = np.array([-1.0, 1.0, 1.0])
    right = loads.pauwels(C, GT, _origin(ORIGIN), np.zeros(3), RIGHT, UP, 70.0)
    left = loads.pauwels(
        C * mirror, GT * mirror, _origin(ORIGIN * mirror), np.zeros(3), -RIGHT, UP, 70.0
    )
    np.testing.assert_allclose(left.force_n, right.force_n * mirror, atol=1e-9)
    for key in ("body_weight_lever_arm_mm", "abductor_lever_arm_mm", "joint_force_angle_deg"):
        assert left.details[key] == pytest.approx(right.details[key], rel=1e-12)


def test_pauwels_textbook_proportions():
    """Pauwels' own figure: a = 3h, abductors 21 deg from vertical -> about 4 x S5 at 16 deg."""
    h_mm = 40.0
    gt = C + [h_mm / math.cos(math.radians(21.0)), 0.0, 0.0]  # line through it, 21 deg
    load = loads.pauwels(
        C, gt, loads.AbductorOrigin(None, 0.0, 0.0, "none"), C - 3 * h_mm * RIGHT, RIGHT, UP
    )
    d = load.details
    assert d["abductor_lever_arm_mm"] == pytest.approx(h_mm)
    assert d["abductor_force_n"] == pytest.approx(3.0 * d["stance_weight_n"])
    # R = S5 (0, 1) + 3 S5 (-sin 21, cos 21): |R| = 3.95 S5 = 3.29 BW, 15.8 deg.
    t = math.radians(21.0)
    expected = math.hypot(3 * math.sin(t), 1 + 3 * math.cos(t)) * 5 / 6
    assert load.force_bw == pytest.approx(expected)
    assert d["joint_force_angle_deg"] == pytest.approx(
        math.degrees(math.atan2(3 * math.sin(t), 1 + 3 * math.cos(t)))
    )
    assert 15.0 < d["joint_force_angle_deg"] < 16.5


def test_pauwels_refuses_a_hip_without_balance():
    medial_gt = C + [0.0, 0.0, 60.0]  # line through the head centre: no lever arm
    with pytest.raises(loads.InputError, match="no abductor lever arm"):
        loads.pauwels(C, medial_gt, _origin(C + [0.0, 0.0, 120.0]), np.zeros(3), RIGHT, UP)
    with pytest.raises(loads.InputError, match="no higher than the greater-trochanter tip"):
        loads.pauwels(C, GT, _origin(GT + [-20.0, 0.0, -5.0]), np.zeros(3), RIGHT, UP)
    with pytest.raises(loads.InputError, match="medial of the body midline"):
        loads.pauwels(C, GT, _origin(ORIGIN), C + 10 * RIGHT, RIGHT, UP)


# ---------------------------------------------------------------- moves change Pauwels


def _geometry(c=C, gt=GT, origin=ORIGIN) -> loads.LoadGeometry:
    return loads.LoadGeometry(
        side="right",
        lateral=RIGHT,
        superior=UP,
        anterior=np.array([0.0, 1.0, 0.0]),
        head_center_mm=np.asarray(c, float),
        neck_shaft_point_mm=np.asarray(c, float) + [40.0, 0.0, -35.0],
        shaft_direction=-UP,
        notch_mm=None,
        condylar_medial=None,
        femoral_anterior=None,
        gt_tip_mm=np.asarray(gt, float),
        gt_note="",
        abductor=_origin(origin),
        midline_mm=np.zeros(3),
        midline_method="x = 0",
    )


def test_medial_shift_shortens_the_body_weight_arm_by_the_shift():
    geo = _geometry()
    before = loads.joint_load("pauwels", geo)
    shift = translation(-5.0 * RIGHT)  # the femur follows the socket medially
    after = loads.joint_load("pauwels", geo.moved(shift, shift))
    # By hand: the head and trochanter move 5 mm medially, the ilium stays.
    a0, h0, m0, r0 = _by_hand(C, GT, ORIGIN, 0.0, 70.0)
    a1, h1, m1, r1 = _by_hand(C - 5 * RIGHT, GT - 5 * RIGHT, ORIGIN, 0.0, 70.0)
    assert a1 == pytest.approx(a0 - 5.0)
    for out, (a, h, m, r) in ((before, (a0, h0, m0, r0)), (after, (a1, h1, m1, r1))):
        assert out.details["body_weight_lever_arm_mm"] == pytest.approx(a)
        assert out.details["abductor_lever_arm_mm"] == pytest.approx(h)
        assert out.details["abductor_force_n"] == pytest.approx(m)
        assert out.details["joint_force_n"] == pytest.approx(math.hypot(*r))
    assert after.details["abductor_force_n"] < before.details["abductor_force_n"]
    assert after.force_bw < before.force_bw


def test_varus_osteotomy_turns_the_trochanter_about_the_head():
    """A 15 deg varus wedge, the leg standing as before: the trochanter turns by -15 deg."""
    geo = _geometry()
    before = loads.joint_load("pauwels", geo)
    # Varus for a right femur: the distal piece swings its knee medially, a turn
    # about +y (anterior) of +15 deg about a hinge on the shaft.
    hinge = C + [40.0, 0.0, -60.0]
    tf_distal = rotation_about([0.0, 1.0, 0.0], 15.0, hinge)
    after = loads.joint_load("pauwels", geo.moved(np.eye(4), tf_distal))
    # Standing again turns the proximal femur by -15 deg about the head centre
    # (about +y: x' = x cos t + z sin t, z' = -x sin t + z cos t, t = -15 deg).
    t = math.radians(-15.0)
    gx, gz = GT[0] - C[0], GT[2] - C[2]
    gt_after = C + [
        gx * math.cos(t) + gz * math.sin(t),
        GT[1] - C[1],
        -gx * math.sin(t) + gz * math.cos(t),
    ]
    a1, h1, m1, r1 = _by_hand(C, gt_after, ORIGIN, 0.0, 70.0)
    np.testing.assert_allclose(after.details["gt_tip_mm"], gt_after, atol=1e-9)
    assert after.details["body_weight_lever_arm_mm"] == pytest.approx(a1)
    assert after.details["abductor_lever_arm_mm"] == pytest.approx(h1)
    assert after.details["abductor_force_n"] == pytest.approx(m1)
    assert after.details["joint_force_n"] == pytest.approx(math.hypot(*r1))
    # The trochanter rises (varus: relative trochanteric overgrowth), the abductor arm grows,
    # the abductor force and the joint force fall.
    assert gt_after[2] > GT[2]
    assert after.details["abductor_lever_arm_mm"] > before.details["abductor_lever_arm_mm"] + 3.0
    assert after.details["abductor_force_n"] < before.details["abductor_force_n"]
    assert after.force_bw < before.force_bw


def test_a_rigid_turn_of_the_whole_femur_leaves_pauwels_unchanged():
    geo = _geometry()
    tf = rotation_about([0.3, 1.0, 0.2], 25.0, C)
    before, after = loads.joint_load("pauwels", geo), loads.joint_load("pauwels", geo.moved(tf, tf))
    np.testing.assert_allclose(after.force_n, before.force_n, rtol=1e-12)


# ---------------------------------------------------------------- OrthoLoad


def _stick(side: str, nsa: float = 130.0, ver: float = 15.0):
    block = datasets.Trochanter.beside_neck(
        neck_shaft_deg=nsa, version_deg=ver, neck_length_mm=55.0, radius_mm=16.0, top_fraction=0.9
    )
    femur = datasets.stick_femur(
        neck_shaft_deg=nsa, version_deg=ver, neck_length_mm=55.0, trochanter=block, segments=64
    )
    return (datasets.mirror_x(femur) if side == "left" else femur), block


def _random_pose(rng) -> np.ndarray:
    q = rng.normal(size=4)
    q /= np.linalg.norm(q)
    w, x, y, z = q
    rot = np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )
    tf = np.eye(4)
    tf[:3, :3] = rot
    tf[:3, 3] = rng.uniform(-200.0, 200.0, 3)
    return tf


def _femur_geometry(femur, side: str) -> loads.LoadGeometry:
    fl = hip.femur_landmarks(femur)
    axes = HipAxes.from_side(side)
    return loads.load_geometry(
        femur,
        None,
        side=side,
        frame="ras",
        head=fl.head,
        socket=None,
        toward_neck=fl.toward_neck,
        shaft=fl.shaft,
        condylar_medial=fl.medial,
        femoral_anterior=fl.anterior,
        lateral=axes.lateral,
        anterior=axes.anterior,
        superior=axes.superior,
        need_trochanter=False,
    )


@pytest.fixture(scope="module")
def right_stick():
    femur, _ = _stick("right")
    return femur, _femur_geometry(femur, "right")


@pytest.mark.parametrize("case", list(loads.ORTHOLOAD_CASES))
def test_orthoload_on_a_stick_femur_is_the_published_vector(right_stick, case):
    _, geo = right_stick
    frame = geo.femoral_frame()
    assert frame.method == "notch"
    # The stick femur stands upright in RAS, its condyles along x: the frame is
    # RAS itself, but for the notch lying 6 mm behind the shaft 400 mm below
    # (z tilts forward by atan(6/400)) and the 15 deg version, which does not enter.
    np.testing.assert_allclose(frame.lateral, [1, 0, 0], atol=0.03)
    np.testing.assert_allclose(frame.anterior, [0, 1, 0], atol=0.03)
    np.testing.assert_allclose(frame.superior, [0, 0, 1], atol=0.03)
    load = loads.joint_load(case, geo, 80.0)
    published = np.array(loads.ORTHOLOAD_CASES[case].force_pct_bw) / 100.0 * 80.0 * G
    assert np.linalg.norm(load.force_n) == pytest.approx(np.linalg.norm(published), rel=1e-12)
    # On the socket: the opposite of the force on the head, in the femur's frame.
    np.testing.assert_allclose(frame.to_femoral(load.force_n), -published, rtol=1e-9)
    np.testing.assert_allclose(load.force_n, -published, atol=0.04 * np.linalg.norm(published))


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_orthoload_turns_with_the_femur_in_any_pose(right_stick, seed):
    femur, geo = right_stick
    tf = _random_pose(np.random.default_rng(seed))
    moved = femur.copy()
    moved.apply_transform(tf)
    geo_moved = _femur_geometry(moved, "right")
    for case in loads.ORTHOLOAD_CASES:
        f0 = loads.joint_load(case, geo).force_n
        f1 = loads.joint_load(case, geo_moved).force_n
        np.testing.assert_allclose(f1, tf[:3, :3] @ f0, atol=1e-4 * np.linalg.norm(f0))
        # The same holds for the frame carried by a move (simulate's "after").
        carried = loads.joint_load(case, geo.moved(tf, tf)).force_n
        np.testing.assert_allclose(carried, f1, atol=1e-4 * np.linalg.norm(f0))


def test_orthoload_on_a_mirrored_femur_is_the_mirrored_force(right_stick):
    femur, geo = right_stick
    left = datasets.mirror_x(femur)
    geo_left = _femur_geometry(left, "left")
    mirror = np.array([-1.0, 1.0, 1.0])
    for case in loads.ORTHOLOAD_CASES:
        f_right = loads.joint_load(case, geo).force_n
        f_left = loads.joint_load(case, geo_left).force_n
        np.testing.assert_allclose(f_left, f_right * mirror, atol=1e-4 * np.linalg.norm(f_right))
        # Medially upward on the socket on both sides.
        assert f_left[0] > 0 > f_right[0] and f_left[2] > 0 and f_right[2] > 0


def test_orthoload_without_condyles_uses_the_shaft_and_says_so():
    fl_frame = loads.femoral_load_frame(
        C,
        C + [40.0, 0.0, -35.0],
        notch_mm=None,
        condylar_medial=None,
        femoral_anterior=None,
        shaft_direction=-UP,
        fallback_anterior=np.array([0.0, 1.0, 0.0]),
    )
    assert fl_frame.method == "shaft" and "condyles" in fl_frame.note
    geo = loads.LoadGeometry(**{**_geometry().__dict__, "gt_tip_mm": None})
    load = loads.joint_load("walking", geo)
    assert load.fallbacks == [fl_frame.note]
    np.testing.assert_allclose(
        fl_frame.to_femoral(load.force_n), -np.array([67.7, -23.6, -235.8]) * 0.7 * G, rtol=1e-12
    )
    np.testing.assert_allclose(
        np.vstack([fl_frame.lateral, fl_frame.anterior]), [[1, 0, 0], [0, 1, 0]], atol=1e-12
    )


def test_custom_force_is_taken_as_is():
    load = loads.custom_load([100.0, -200.0, 1500.0], 70.0)
    np.testing.assert_array_equal(load.force_n, [100.0, -200.0, 1500.0])
    assert load.force_bw == pytest.approx(math.sqrt(100**2 + 200**2 + 1500**2) / (70 * G))
    for bad in ([0.0, 0.0, 0.0], [1e6, 0.0, 0.0], [np.nan, 1.0, 1.0]):
        with pytest.raises(loads.InputError):
            loads.custom_load(bad)


# ---------------------------------------------------------------- the trochanter tip


#: (nsa, version, trochanter radius, top fraction, anterior offset)
TIP_CASES = [
    (125.0, 10.0, 16.0, 0.9, 0.0),
    (135.0, 25.0, 12.0, 0.9, 4.0),
    (145.0, -5.0, 20.0, 0.8, -6.0),
]


@pytest.mark.parametrize("side", ["right", "left"])
@pytest.mark.parametrize(("nsa", "ver", "radius", "top", "anterior"), TIP_CASES)
def test_trochanter_tip_on_stick_femurs(side, nsa, ver, radius, top, anterior, rng):
    block = datasets.Trochanter.beside_neck(
        neck_shaft_deg=nsa,
        version_deg=ver,
        neck_length_mm=55.0,
        radius_mm=radius,
        top_fraction=top,
        anterior_mm=anterior,
    )
    centre = np.array([85.0, -10.0, -40.0])
    femur = datasets.stick_femur(
        center_mm=centre,
        neck_shaft_deg=nsa,
        version_deg=ver,
        neck_length_mm=55.0,
        trochanter=block,
        segments=64,
    )
    # The block's flat top: its centre lies lateral_mm lateral, anterior_mm
    # anterior and height_mm above the neck-shaft junction.
    n, v = math.radians(nsa), math.radians(ver)
    toward_head = np.array([-math.sin(n) * math.cos(v), math.sin(n) * math.sin(v), -math.cos(n)])
    junction = centre - 55.0 * toward_head
    expected = junction + [block.lateral_mm, block.anterior_mm, block.height_mm]
    if side == "left":
        femur = datasets.mirror_x(femur)
        expected = expected * [-1.0, 1.0, 1.0]
    tf = _random_pose(rng)
    femur.apply_transform(tf)
    expected = tf[:3, :3] @ expected + tf[:3, 3]
    head, _ = lmk.find_head(femur)
    shaft = lmk.shaft_axis(femur, head)
    tip = loads.greater_trochanter_tip(femur, head, shaft.point_mm, shaft.direction)
    # The cap takes in 1 mm of the block's side: the centroid sits < 0.1 mm low.
    np.testing.assert_allclose(tip, expected, atol=0.3)


def _tip_figures(pelvis, femur):
    """GT tip (height above the head centre along the shaft, lateral of it) and its geometry."""
    a = hip.analyze(pelvis, femur)
    femur_r = hip._moved(femur, a.tf_ras_input)
    fl = a.femur
    tip = loads.greater_trochanter_tip(femur_r, fl.head, fl.shaft.point_mm, fl.shaft.direction)
    d = tip - fl.head.center_mm
    height = float(d @ -fl.shaft.direction)
    lateral = float(d @ a.axes.lateral)
    return height, lateral, a, femur_r, tip


# Adult anatomy: the tip lies at about the level of the head centre (articulo-
# trochanteric distance 1-2 cm from the head's top), 40-60 mm lateral of it.
TIP_HEIGHT_MM = (-12.0, 20.0)
TIP_LATERAL_MM = (35.0, 65.0)


@pytest.mark.slow
@pytest.mark.parametrize("case", ["normal", "dysplastic", "valga-antetorsion", "cam"])
def test_trochanter_tip_on_the_teaching_cases(case):
    from hipviz import cases

    h = cases.case_hip(case, side="left")
    height, lateral, *_ = _tip_figures(h.pelvis, h.femur)
    assert TIP_HEIGHT_MM[0] < height < TIP_HEIGHT_MM[1]
    assert TIP_LATERAL_MM[0] < lateral < TIP_LATERAL_MM[1]


def test_trochanter_tip_on_the_builtin_femur(builtin_left):
    height, lateral, *_ = _tip_figures(builtin_left.pelvis, builtin_left.femur)
    assert TIP_HEIGHT_MM[0] < height < TIP_HEIGHT_MM[1]
    assert TIP_LATERAL_MM[0] < lateral < TIP_LATERAL_MM[1]


@pytest.mark.slow
@pytest.mark.parametrize("name", ["lhdl_ct_staple", "icl_mri_staple"])
def test_trochanter_tip_on_the_specimens_in_any_pose_and_meshing(specimen, name, rng):
    pelvis, femur = specimen(name)
    height, lateral, a, femur_r, tip = _tip_figures(pelvis, femur)
    assert TIP_HEIGHT_MM[0] < height < TIP_HEIGHT_MM[1]
    assert TIP_LATERAL_MM[0] < lateral < TIP_LATERAL_MM[1]
    # Another pose, and every triangle split in four: the same tip within 1 mm.
    fine = femur_r.subdivide()
    tf = _random_pose(rng)
    fine.apply_transform(tf)
    head, _ = lmk.find_head(fine)
    shaft = lmk.shaft_axis(fine, head)
    again = loads.greater_trochanter_tip(fine, head, shaft.point_mm, shaft.direction)
    assert np.linalg.norm(again - (tf[:3, :3] @ tip + tf[:3, 3])) < 1.0
    # Debrunner's construction on a real ilium lands near his 21 deg.
    load = loads.joint_load(
        "pauwels", loads.hip_load_geometry(a, hip._moved(pelvis, a.tf_ras_input), femur_r)
    )
    assert 12.0 < load.details["abductor_angle_deg"] < 30.0
    assert 1.8 < load.force_bw < 4.0


def test_no_trochanter_is_one_clear_error():
    femur = datasets.stick_femur(segments=48)  # head, neck, shaft: nothing rises beside the neck
    head, _ = lmk.find_head(femur)
    shaft = lmk.shaft_axis(femur, head)
    with pytest.raises(hip.LandmarkError, match="greater trochanter"):
        loads.greater_trochanter_tip(femur, head, shaft.point_mm, shaft.direction)


# ---------------------------------------------------------------- the command line


def _json(capsys, *argv):
    assert main(list(argv)) == 0
    return json.loads(capsys.readouterr().out)


LOAD_KEYS = {"joint_force_n", "joint_force_bw", "load_model", "body_weight_kg"}


@pytest.mark.slow
def test_measure_without_load_has_no_load_keys_and_with_it_adds_only(capsys):
    plain = _json(capsys, "measure", "--case", "normal", "--json")
    loaded = _json(capsys, "measure", "--case", "normal", "--json", "--load", "pauwels")
    assert not (LOAD_KEYS | {"pauwels"}) & set(plain)
    assert LOAD_KEYS | {"pauwels"} <= set(loaded)
    # Every key of today's output is there, with its value.
    for key, value in plain.items():
        if key == "notes":
            assert set(value) <= set(loaded["notes"])
        else:
            assert loaded[key] == value, key
    p = loaded["pauwels"]
    assert loaded["joint_force_bw"] == pytest.approx(p["joint_force_bw"], abs=1e-3)
    assert 1.5 < p["joint_force_bw"] < 4.0 and 0.0 < p["joint_force_angle_deg"] < 25.0
    assert len(loaded["joint_force_n"]) == 3
    try:
        import hipviz.contact  # noqa: F401
    except ImportError:
        assert loaded["notes"]["contact_pressure"] == loads.NO_CONTACT_NOTE
    else:
        assert "contact_peak_mpa" in loaded


@pytest.mark.slow
def test_simulate_medial_shift_and_varus_move_pauwels(capsys):
    shift = _json(
        capsys,
        "simulate",
        "--case",
        "normal",
        "--pao",
        "medial=5",
        "--load",
        "pauwels",
        "--no-fixation",
        "--json",
        "--body-weight",
        "80",
    )
    b, a = shift["before"]["pauwels"], shift["after"]["pauwels"]
    moved = shift["hip_center_shift_mm"]["lateral"]
    assert moved == pytest.approx(-5.0, abs=0.05)
    assert a["body_weight_lever_arm_mm"] == pytest.approx(
        b["body_weight_lever_arm_mm"] + moved, abs=0.01
    )
    assert a["abductor_force_n"] < b["abductor_force_n"]
    assert shift["after"]["joint_force_bw"] < shift["before"]["joint_force_bw"]
    assert shift["before"]["body_weight_kg"] == 80.0

    varus = _json(
        capsys,
        "simulate",
        "--case",
        "normal",
        "--femoral",
        "varus=15",
        "--load",
        "pauwels",
        "--no-fixation",
        "--json",
    )
    b, a = varus["before"]["pauwels"], varus["after"]["pauwels"]
    assert a["body_weight_lever_arm_mm"] == pytest.approx(b["body_weight_lever_arm_mm"], abs=0.01)
    # The trochanter turns 15 deg about the head centre in the frontal plane, up and out.
    g0 = np.array(b["gt_tip_mm"]) - varus["before"]["head_center_mm"]
    g1 = np.array(a["gt_tip_mm"]) - varus["after"]["head_center_mm"]
    assert np.linalg.norm(g1) == pytest.approx(np.linalg.norm(g0), abs=0.01)
    assert g1[2] > g0[2] + 5.0
    assert a["abductor_lever_arm_mm"] > b["abductor_lever_arm_mm"]
    assert a["abductor_force_n"] < b["abductor_force_n"]


def test_a_tibia_in_the_femur_file_does_not_move_the_notch(builtin_left):
    a = hip.analyze(builtin_left.pelvis, builtin_left.femur)
    pelvis = hip._moved(builtin_left.pelvis, a.tf_ras_input)
    femur = hip._moved(builtin_left.femur, a.tf_ras_input)
    alone = loads.hip_load_geometry(a, pelvis, femur, need_trochanter=False)
    tibia = trimesh.creation.cylinder(radius=25.0, height=300.0)
    tibia.apply_translation(alone.notch_mm - [0.0, 0.0, 180.0])
    both = loads.hip_load_geometry(
        a, pelvis, trimesh.util.concatenate([femur, tibia]), need_trochanter=False
    )
    np.testing.assert_allclose(both.notch_mm, alone.notch_mm, atol=1e-9)
    # ... while the same bodies taken whole would drag the knee end down the tibia.
    assert lmk.knee_center(trimesh.util.concatenate([femur, tibia]), a.femur.shaft)[2] < (
        alone.notch_mm[2] - 100.0
    )


@pytest.mark.slow
def test_measure_takes_a_custom_force_as_given(capsys):
    out = _json(capsys, "measure", "--case", "normal", "--json", "--load=-300,20,1700")
    assert out["joint_force_n"] == [-300.0, 20.0, 1700.0]
    assert out["joint_force_bw"] == pytest.approx(math.hypot(300, 20, 1700) / (70 * G), abs=1e-3)
    assert out["load_model"].startswith("custom:") and "pauwels" not in out


def test_debrunner_origin_on_a_box_ilium():
    """A block of ilium 100 mm wide and 150 mm high above the roof, a sacrum beside it."""
    socket = Sphere(np.array([90.0, 0.0, -80.0]), 25.0, 0.1, 100)
    roof = socket.center_mm[2] + socket.radius_mm
    ilium = trimesh.creation.box(extents=(100.0, 20.0, 150.0 + 60.0))
    # x from 40 to 140 mm; z from 60 mm below the roof to 150 mm above it.
    ilium.apply_translation([90.0, 0.0, roof + 45.0])
    sacrum = trimesh.creation.box(extents=(60.0, 40.0, 120.0))
    sacrum.apply_translation([0.0, -40.0, roof + 60.0])  # a separate body across the midline
    pelvis = trimesh.util.concatenate([ilium, sacrum])
    origin = loads.abductor_origin(pelvis, socket, RIGHT, UP)
    assert origin.iliac_height_mm == pytest.approx(150.0)
    assert origin.iliac_width_mm == pytest.approx(100.0)
    # 2/5 of the width in from the lateral edge (x 140), 2/3 of the height above the roof.
    np.testing.assert_allclose(origin.point_mm, [140.0 - 40.0, 0.0, roof + 100.0], atol=1e-9)
    # Mirrored: the left hip's ilium gives the mirrored origin.
    mirror = np.diag([-1.0, 1.0, 1.0, 1.0])
    left = pelvis.copy()
    left.apply_transform(mirror)
    left.invert()  # a mirror turns the faces inside out
    socket_left = Sphere(socket.center_mm * [-1, 1, 1], 25.0, 0.1, 100)
    origin_left = loads.abductor_origin(left, socket_left, -RIGHT, UP)
    np.testing.assert_allclose(origin_left.point_mm, origin.point_mm * [-1, 1, 1], atol=1e-9)


def test_no_ilium_means_debrunners_21_degrees():
    socket = Sphere(np.array([90.0, 0.0, -80.0]), 25.0, 0.1, 100)
    assert loads.abductor_origin(None, socket, RIGHT, UP).point_mm is None
    low = trimesh.creation.box(extents=(100.0, 20.0, 60.0))  # only 20 mm above the roof
    low.apply_translation([90.0, 0.0, -65.0])
    origin = loads.abductor_origin(low, socket, RIGHT, UP)
    assert origin.point_mm is None and "21°" in origin.method
    load = loads.pauwels(C, GT, origin, np.zeros(3), RIGHT, UP)
    assert load.details["abductor_angle_deg"] == pytest.approx(21.0)
