"""Range of motion on analytic hips with exact answers, and on the teaching cases.

The analytic hip (DESIGN.md §8.3): a head sphere of radius r with a neck
cylinder of radius rho, in a spherical cup (a shell of inner radius R) that
covers the polar angles 0..theta_rim around its pole; the neck starts along
the axis opposite the pole. The neck meets the inner rim edge when the neck
axis has tilted by

    A = 180° - theta_rim - asin(rho / R)

from the cup's axis, in any direction (a hemisphere, theta_rim = 90°, gives
90° - asin(rho/R): 53.13° for rho 15, R 25). A motion's limit is the first
angle at which the neck axis is A away from the cup's axis; the expected
values below come from that criterion with rotations composed here (scipy),
independently of the engine's own composition.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import trimesh
from scipy.optimize import brentq
from scipy.spatial.transform import Rotation

from hipviz import cases, io
from hipviz.cli import main
from hipviz.hip import analyze
from hipviz.measures import HipAxes
from hipviz.motion import LIMITS, MotionLandmarks, MotionModel, pose_transform

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

SECTIONS = 128
TOL_DEG = 0.5
X, Y, Z = np.eye(3)


def _revolve(profile: np.ndarray) -> trimesh.Trimesh:
    """Watertight solid of a closed counter-clockwise (radius, height) profile about z."""
    mesh = trimesh.creation.revolve(profile, sections=SECTIONS)
    assert mesh.is_watertight
    if mesh.volume < 0:
        mesh.invert()
    return mesh


def cup_mesh(radius: float, rim_deg: float, thickness: float = 8.0) -> trimesh.Trimesh:
    """Spherical shell around the pole +z, polar angles 0..rim_deg, conical rim face."""
    phi = np.radians(np.linspace(0.0, rim_deg, 61))
    inner = np.c_[radius * np.sin(phi), radius * np.cos(phi)]
    outer = np.c_[(radius + thickness) * np.sin(phi), (radius + thickness) * np.cos(phi)][::-1]
    profile = np.vstack([inner, outer, inner[:1]])
    # counter-clockwise in (radius, height): inner arc downward then outer upward is clockwise
    if _signed_area(profile) < 0:
        profile = profile[::-1]
    return _revolve(profile)


def femur_mesh(head_r: float, neck_r: float, neck_len: float = 60.0) -> trimesh.Trimesh:
    """Head sphere at the origin with a neck cylinder along +z."""
    z0 = np.sqrt(head_r**2 - neck_r**2)
    theta = np.linspace(-np.pi / 2, np.arcsin(z0 / head_r), 61)
    head = np.c_[head_r * np.cos(theta), head_r * np.sin(theta)]
    head[0, 0] = 0.0
    profile = np.vstack([head, [[neck_r, neck_len], [0.0, neck_len], [0.0, -head_r]]])
    if _signed_area(profile) < 0:
        profile = profile[::-1]
    return _revolve(profile)


def _signed_area(p: np.ndarray) -> float:
    x, y = p[:, 0], p[:, 1]
    return 0.5 * float(np.sum(x[:-1] * y[1:] - x[1:] * y[:-1]))


def free_arc(radius: float, neck_r: float, rim_deg: float = 90.0) -> float:
    return 180.0 - rim_deg - np.degrees(np.arcsin(neck_r / radius))


def _tf(rot: np.ndarray, t: np.ndarray) -> np.ndarray:
    out = np.eye(4)
    out[:3, :3], out[:3, 3] = rot, t
    return out


class AnalyticHip:
    """An analytic hip in RAS (head centre at the origin before ``pose``).

    ``cup_axis`` points out of the cup's opening (opposite its pole); the
    neck starts along ``neck`` (default: the cup axis); the knee lies
    ``knee_offset_deg`` from the neck axis, 400 mm away.
    """

    def __init__(
        self,
        radius=25.0,
        neck_r=15.0,
        rim_deg=90.0,
        head_r=22.0,
        cup_axis=-Z,
        neck=None,
        knee_dir=None,
        side="right",
    ):
        self.radius, self.neck_r, self.rim_deg = radius, neck_r, rim_deg
        self.cup_axis = np.asarray(cup_axis, float) / np.linalg.norm(cup_axis)
        self.neck = self.cup_axis if neck is None else np.asarray(neck, float)
        self.knee_dir = np.asarray(knee_dir if knee_dir is not None else -Z, float)
        self.knee_dir /= np.linalg.norm(self.knee_dir)
        cup = cup_mesh(radius, rim_deg)
        cup.apply_transform(_tf(_rot_z_to(-self.cup_axis), np.zeros(3)))
        femur = femur_mesh(head_r, neck_r)
        femur.apply_transform(_tf(_rot_z_to(self.neck), np.zeros(3)))
        self.cup, self.femur = cup, femur
        self.head_r = head_r
        self.side = side
        self.axes = HipAxes.from_side(side)
        self.center = np.zeros(3)
        self.knee = 400.0 * self.knee_dir

    def landmarks(self) -> MotionLandmarks:
        return MotionLandmarks(
            self.center,
            self.head_r,
            self.neck,
            self.knee,
            self.center,
            self.radius,
            self.axes,
            self.side,
        )

    def model(self) -> MotionModel:
        return MotionModel(
            {"cup": (self.cup, np.eye(4))}, {"femur": (self.femur, np.eye(4))}, self.landmarks()
        )

    def turn_cup(self, axis, delta_deg) -> None:
        rot = Rotation.from_rotvec(np.radians(delta_deg) * np.asarray(axis, float)).as_matrix()
        self.cup = self.cup.copy()
        self.cup.apply_transform(_tf(rot, np.zeros(3)))
        self.cup_axis = rot @ self.cup_axis

    def pose(self, tf: np.ndarray) -> None:
        """Move everything (meshes, landmarks, axes) rigidly or mirror it."""
        lin = tf[:3, :3]
        for name in ("cup", "femur"):
            mesh = getattr(self, name).copy()
            mesh.apply_transform(tf)  # trimesh re-winds a mirrored mesh
            setattr(self, name, mesh)
        self.center = tf[:3, :3] @ self.center + tf[:3, 3]
        self.knee = lin @ self.knee + tf[:3, 3]
        self.neck = lin @ self.neck
        self.cup_axis = lin @ self.cup_axis
        self.knee_dir = lin @ self.knee_dir
        self.axes = HipAxes(
            lin @ self.axes.lateral, lin @ self.axes.anterior, lin @ self.axes.superior
        )

    # -- expected limits from the rim criterion, rotations composed with scipy

    def rotation(self, flex, add, rot) -> np.ndarray:
        a = self.axes
        right = np.cross(a.anterior, a.superior)
        sign = 1.0 if right @ a.lateral > 0 else -1.0
        mech = (self.center - self.knee) / np.linalg.norm(self.center - self.knee)
        rv = Rotation.from_rotvec
        return (
            rv(np.radians(flex) * right)
            * rv(np.radians(add) * sign * a.anterior)
            * rv(np.radians(rot) * sign * mech)
        ).as_matrix()

    def tilt(self, flex, add, rot) -> float:
        n = self.rotation(flex, add, rot) @ self.neck
        return float(np.degrees(np.arccos(np.clip(n @ self.cup_axis, -1, 1))))

    def expected(self, key: str) -> float | None:
        arc = free_arc(self.radius, self.neck_r, self.rim_deg)
        path = {
            "flexion": lambda t: (t, 0, 0),
            "extension": lambda t: (-t, 0, 0),
            "abduction": lambda t: (0, -t, 0),
            "adduction": lambda t: (0, t, 0),
            "internal_rotation": lambda t: (0, 0, t),
            "external_rotation": lambda t: (0, 0, -t),
            "internal_rotation_90": lambda t: (90, 0, t),
            "external_rotation_90": lambda t: (90, 0, -t),
            "fadir": lambda t: (90, 15, t),
        }[key]
        f = lambda t: self.tilt(*path(t)) - arc  # noqa: E731
        if f(0.0) >= 0:
            return None
        ts = np.arange(0.0, 150.01, 0.5)
        vals = np.array([f(t) for t in ts])
        hit = np.flatnonzero(vals >= 0)
        if not len(hit):
            return None
        i = hit[0]
        return brentq(f, ts[i - 1], ts[i], xtol=1e-6)


def _rot_z_to(d) -> np.ndarray:
    d = np.asarray(d, float) / np.linalg.norm(d)
    rot, _ = Rotation.align_vectors([d], [Z])
    return rot.as_matrix()


def _rotation_limit(arc: float, beta: float) -> float:
    """Rotation about an axis beta from the neck that tilts the neck by ``arc``."""
    a, b = np.radians(arc), np.radians(beta)
    return float(np.degrees(np.arccos((np.cos(a) - np.cos(b) ** 2) / np.sin(b) ** 2)))


def _knee_at(beta_deg: float, toward=Y) -> np.ndarray:
    """Knee direction beta degrees from -z, toward ``toward``."""
    b = np.radians(beta_deg)
    return -np.cos(b) * Z + np.sin(b) * np.asarray(toward, float)


# ---------------------------------------------------------------- exact answers


def test_hemisphere_free_arc_is_53_13_in_every_direction():
    hip = AnalyticHip(radius=25.0, neck_r=15.0, knee_dir=_knee_at(60.0, X))
    limits = hip.model().limits()
    assert free_arc(25.0, 15.0) == pytest.approx(53.130, abs=1e-3)
    for key in ("flexion", "extension", "abduction", "adduction"):
        assert limits[key].angle_deg == pytest.approx(53.13, abs=TOL_DEG), key
        assert limits[key].pelvis_part == "rim"
    # rotation about an axis 60° from the neck: the neck sweeps a cone
    expected = _rotation_limit(53.13, 60.0)
    for key in ("internal_rotation", "external_rotation"):
        assert limits[key].angle_deg == pytest.approx(expected, abs=TOL_DEG), key
    # 90° flexion is far past the 53° arc: no rotation from there
    for key in ("internal_rotation_90", "external_rotation_90", "fadir"):
        assert limits[key].angle_deg is None
        assert "before" in limits[key].note


@pytest.mark.parametrize(
    ("radius", "neck_r", "rim_deg"),
    [
        (25.0, 15.0, 90.0),
        (30.0, 12.0, 90.0),
        (22.0, 10.0, 80.0),
        (25.0, 15.0, 100.0),
        (28.0, 18.0, 105.0),
        (24.0, 8.0, 70.0),
    ],
)
def test_free_arc_for_cups_and_necks(radius, neck_r, rim_deg):
    hip = AnalyticHip(
        radius=radius,
        neck_r=neck_r,
        rim_deg=rim_deg,
        head_r=radius - 3.0,
        knee_dir=_knee_at(70.0, X),
    )
    arc = free_arc(radius, neck_r, rim_deg)
    model = hip.model()
    for key in ("flexion", "extension", "abduction", "adduction"):
        got = model.limit(key).angle_deg
        assert got == pytest.approx(arc, abs=TOL_DEG), (key, arc, got)
    got = model.limit("internal_rotation").angle_deg
    assert got == pytest.approx(_rotation_limit(arc, 70.0), abs=TOL_DEG)


def _hip_at_90(**kw) -> AnalyticHip:
    """Cup axis where the neck points at 90° flexion, knee 50° off the neck toward lateral."""
    hip = AnalyticHip(knee_dir=_knee_at(50.0, X), **kw)
    hip.turn_cup(np.cross(hip.axes.anterior, hip.axes.superior), 90.0)
    return hip


@pytest.mark.parametrize("side", ["right", "left"])
def test_rotation_at_90_flexion_and_fadir(side):
    hip = _hip_at_90()
    if side == "left":
        hip.pose(np.diag([-1.0, 1.0, 1.0, 1.0]))
        hip.axes = HipAxes.from_side("left")
        hip.side = "left"
    model = hip.model()
    arc = free_arc(25.0, 15.0)
    limits = model.limits()
    for key in ("internal_rotation_90", "external_rotation_90"):
        assert limits[key].angle_deg == pytest.approx(_rotation_limit(arc, 50.0), abs=TOL_DEG)
    exp = hip.expected("fadir")
    assert exp is not None and abs(exp - _rotation_limit(arc, 50.0)) > 2.0  # adduction matters
    assert limits["fadir"].angle_deg == pytest.approx(exp, abs=TOL_DEG)
    # at 0° flexion the neck is 90° off the cup axis: the bones touch at the start
    assert limits["flexion"].angle_deg == 0.0
    assert limits["internal_rotation"].note == "the bones already touch at the start pose"


def _oblique_hip(side="right") -> AnalyticHip:
    """A socket opening lateral, down and forward, neck and knee off every axis."""
    s = 1.0 if side == "right" else -1.0
    cup_axis = np.array([s * 0.6, 0.3, -0.74])
    hip = AnalyticHip(
        radius=26.0,
        neck_r=13.0,
        rim_deg=95.0,
        cup_axis=cup_axis,
        knee_dir=np.array([s * 0.1, -0.05, -1.0]),
        side=side,
    )
    return hip


def test_oblique_cup_every_limit_matches_the_rim_criterion():
    hip = _oblique_hip()
    limits = hip.model().limits()
    checked = 0
    for key in LIMITS:
        exp = hip.expected(key)
        got = limits[key].angle_deg
        if exp is None:
            assert got in (None, 0.0), key
            continue
        assert got == pytest.approx(exp, abs=TOL_DEG), (key, exp, got)
        checked += 1
    assert checked >= 6


def test_both_sides_give_the_same_limits():
    right = _oblique_hip("right").model().limits()
    hip = _oblique_hip("right")
    hip.pose(np.diag([-1.0, 1.0, 1.0, 1.0]))
    hip.axes, hip.side = HipAxes.from_side("left"), "left"
    left = hip.model().limits()
    for key in LIMITS:
        r, lft = right[key].angle_deg, left[key].angle_deg
        assert (r is None) == (lft is None), key
        if r is not None:
            assert lft == pytest.approx(r, abs=0.2), key
            assert left[key].clock == pytest.approx(right[key].clock, abs=0.2), key


def test_random_rigid_poses_give_the_same_limits():
    base = _oblique_hip().model().limits()
    rng = np.random.default_rng(7)
    for _ in range(3):
        rot = Rotation.random(random_state=rng).as_matrix()
        hip = _oblique_hip()
        hip.pose(_tf(rot, rng.uniform(-300, 300, 3)))
        got = hip.model().limits()
        for key in LIMITS:
            b, g = base[key].angle_deg, got[key].angle_deg
            assert (b is None) == (g is None), key
            if b is not None:
                assert g == pytest.approx(b, abs=0.2), key


def test_metres_are_read_as_millimetres(tmp_path):
    hip = _oblique_hip()
    scale = np.diag([1e-3, 1e-3, 1e-3, 1.0])
    paths = {}
    for name in ("cup", "femur"):
        mesh = getattr(hip, name).copy()
        mesh.apply_transform(scale)
        paths[name] = tmp_path / f"{name}.stl"
        mesh.export(paths[name])
    loaded = {k: io.load_mesh(p) for k, p in paths.items()}
    assert all(v.units == "m" for v in loaded.values())
    model = MotionModel(
        {"cup": (loaded["cup"].mesh, np.eye(4))},
        {"femur": (loaded["femur"].mesh, np.eye(4))},
        hip.landmarks(),
    )
    got = model.limits()
    for key in LIMITS:
        exp = hip.expected(key)
        if exp is not None:
            assert got[key].angle_deg == pytest.approx(exp, abs=TOL_DEG), key


@pytest.mark.parametrize("delta", [-12.0, 7.0])
def test_turning_the_cup_shifts_each_limit_by_delta(delta):
    beta = 60.0
    hip = AnalyticHip(knee_dir=_knee_at(beta, X))
    base = hip.model().limits()
    right = np.cross(hip.axes.anterior, hip.axes.superior)
    mech = -hip.knee_dir
    for axis, plus, minus in (
        (right, "flexion", "extension"),
        (hip.axes.anterior, "adduction", "abduction"),
        (mech, "internal_rotation", "external_rotation"),
    ):
        turned = AnalyticHip(knee_dir=_knee_at(beta, X))
        turned.turn_cup(axis, delta)
        got = turned.model().limits()
        assert got[plus].angle_deg - base[plus].angle_deg == pytest.approx(delta, abs=TOL_DEG)
        assert got[minus].angle_deg - base[minus].angle_deg == pytest.approx(-delta, abs=TOL_DEG)


def test_pose_query_moves_the_femur_and_reports_contact_on_both_bones():
    hip = AnalyticHip(knee_dir=_knee_at(60.0, X))
    model = hip.model()
    free = model.query(40.0)
    assert not free.touching and len(free.points_mm) == 0
    hit = model.query(60.0)
    assert hit.touching
    assert len(hit.femur_faces["femur"]) and len(hit.pelvis_faces["cup"])
    # the contact lies on the rim edge, R from the centre, in front (flexion)
    dist = np.linalg.norm(hit.points_mm - hip.center, axis=1)
    assert np.all(np.abs(dist - 25.0) < 3.0)
    assert np.all(hit.points_mm @ hip.axes.anterior > 0)
    tf = pose_transform(hip.landmarks(), 60.0, 0.0, 0.0)
    assert np.allclose(hit.tf_femur, tf)
    assert np.allclose(
        tf[:3, :3] @ hip.neck, Rotation.from_rotvec(np.radians(60) * X).apply(hip.neck)
    )


def test_no_contact_within_150_is_none_with_a_note():
    # a shallow cup (rim 30° from the pole) lets the neck swing past 150° in rotation
    hip = AnalyticHip(rim_deg=30.0, neck_r=10.0, knee_dir=_knee_at(30.0, X))
    lim = hip.model().limit("internal_rotation")
    assert lim.angle_deg is None and "150" in lim.note
    assert hip.expected("internal_rotation") is None


def test_clock_and_parts_of_the_analytic_contact():
    hip = AnalyticHip(knee_dir=_knee_at(60.0, X))
    limits = hip.model().limits()
    # flexion hits the front of the rim (3 o'clock), extension the back (9)
    assert limits["flexion"].clock == pytest.approx(3.0, abs=0.3)
    assert limits["extension"].clock == pytest.approx(9.0, abs=0.3)
    # the neck meets the rim sqrt(R² - rho²) = 20 mm from the centre: 0.91 r
    assert limits["flexion"].femur_part == "head-neck junction"


# ---------------------------------------------------------------- teaching cases and the CLI


@pytest.fixture(scope="module")
def case_limits():
    out = {}
    for name in ("normal", "dysplastic", "retroverted", "cam", "valga-antetorsion"):
        hip = cases.case_hip(name, side="left")
        an = analyze(hip.pelvis, hip.femur)
        out[name] = MotionModel.from_analysis(hip.pelvis, hip.femur, an).limits()
    return out


def _ir90(limits) -> float:
    return limits["internal_rotation_90"].angle_deg


def test_retroverted_loses_internal_rotation_at_90_flexion(case_limits):
    assert _ir90(case_limits["retroverted"]) < _ir90(case_limits["normal"]) - 5.0


def test_dysplastic_has_more_internal_rotation_at_90_flexion(case_limits):
    assert _ir90(case_limits["dysplastic"]) > _ir90(case_limits["normal"]) + 5.0


def test_cam_loses_internal_rotation_at_90_flexion(case_limits):
    """The bump meets the anterosuperior rim first: Audenaert 2012 lose 6.8° (asymptomatic cam)."""
    cam, normal = case_limits["cam"], case_limits["normal"]
    assert _ir90(normal) - 15.0 < _ir90(cam) < _ir90(normal) - 5.0
    assert cam["fadir"].angle_deg < normal["fadir"].angle_deg - 5.0
    for key in ("internal_rotation_90", "fadir"):
        assert cam[key].pelvis_part == "rim" and cam[key].clock < 3.0, key
    # the bump changes nothing where it never faces the rim: extension, ER at 90°
    for key in ("extension", "external_rotation_90"):
        assert cam[key].angle_deg == pytest.approx(normal[key].angle_deg, abs=1.0), key
    # anterosuperior, it can only take motion away where the junction meets the rim (flexion,
    # abduction: cam hips lose abduction too), never add any
    for key in ("flexion", "abduction"):
        assert cam[key].angle_deg <= normal[key].angle_deg + 1.0, key


@pytest.mark.parametrize("name", ["dysplastic", "valga-antetorsion"])
def test_cases_do_not_start_against_the_posterior_inferior_rim(case_limits, name):
    """Extension, adduction and external rotation are not stopped after a few degrees."""
    lim, normal = case_limits[name], case_limits["normal"]
    for key in ("extension", "adduction", "external_rotation"):
        assert lim[key].angle_deg > 10.0, (key, lim[key].angle_deg)
    if name == "dysplastic":
        # a shallow roof opens the hip; it does not close its back
        for key in ("extension", "adduction", "external_rotation"):
            assert lim[key].angle_deg > normal[key].angle_deg - 5.0, key
        for key in ("flexion", "abduction", "internal_rotation_90", "fadir"):
            assert lim[key].angle_deg > normal[key].angle_deg + 5.0, key
    else:
        # antetorsion trades external for internal rotation
        assert lim["internal_rotation"].angle_deg > normal["internal_rotation"].angle_deg + 5.0
        assert lim["external_rotation"].angle_deg < normal["external_rotation"].angle_deg - 5.0


def test_normal_case_is_in_a_plausible_bony_range(case_limits):
    lim = case_limits["normal"]
    assert 100.0 < lim["flexion"].angle_deg < 140.0
    assert 20.0 < _ir90(lim) < 60.0  # Audenaert 2012: 27.9° healthy (3D, bone)
    assert lim["internal_rotation_90"].clock < 4.0  # anterosuperior rim
    assert lim["internal_rotation_90"].pelvis_part == "rim"


def test_cli_rom_json_contract(capsys):
    assert main(["rom", "--json", "--subdivisions", "4"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out["rom_deg"]) == set(LIMITS) == set(out["impingement"])
    assert out["side"] == "left" and out["frame"] == "app"
    imp = out["impingement"]["internal_rotation_90"]
    assert set(imp) >= {"clock", "parts"} and set(imp["parts"]) == {"femur", "pelvis"}
    assert 0.0 < out["rom_deg"]["internal_rotation_90"] < 90.0


def test_cli_simulate_rom_before_and_after(capsys):
    argv = ["simulate", "--case", "dysplastic", "--subdivisions", "4", "--no-fixation"]
    assert main([*argv, "--pao", "lateral=35,anterior=20", "--rom", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    before, after = out["before"]["rom_deg"], out["after"]["rom_deg"]
    assert set(before) == set(after) == set(LIMITS)
    # an over-corrected PAO catches the neck in flexion and internal rotation
    assert after["internal_rotation_90"] < before["internal_rotation_90"] - 10.0
    assert after["flexion"] < before["flexion"]


def test_cli_rom_needs_a_pelvis(capsys, tmp_path):
    hip = AnalyticHip()
    hip.femur.export(tmp_path / "femur.stl")
    assert main(["rom", "--femur", str(tmp_path / "femur.stl")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "needs the pelvis" in err[0]


def test_femoral_derotation_shifts_rotation_limits():
    from hipviz import osteotomy as ost
    from hipviz.anatomy import builtin_hip
    from hipviz.simulate import Simulation

    hip = builtin_hip(side="left", subdivisions=4)
    sim = Simulation(hip.pelvis, hip.femur)
    before = sim.motion().limits()
    sim.cut_femur()
    delta = -15.0  # less femoral version: the neck turns back, internal rotation is lost
    after = sim.motion(sim.move(femoral=ost.FemoralMove(rotation_deg=delta))).limits()
    for key, sign in (("internal_rotation", 1.0), ("external_rotation", -1.0)):
        change = after[key].angle_deg - before[key].angle_deg
        # the cut turns about the shaft axis, the leg about the mechanical axis: a few degrees apart
        assert change == pytest.approx(sign * delta, abs=3.0), key
    assert after["internal_rotation_90"].angle_deg < before["internal_rotation_90"].angle_deg - 10


# ---------------------------------------------------------------- real bone

#: Plausible bone-only limits of adult hips, degrees (wide: they catch a broken pipeline).
PLAUSIBLE_ROM = {
    "flexion": (95.0, 150.0),
    "abduction": (35.0, 110.0),
    "internal_rotation_90": (15.0, 70.0),
    "external_rotation_90": (50.0, 140.0),
    "fadir": (10.0, 60.0),
}


@pytest.mark.parametrize("name", ["lhdl_ct_staple", "icl_mri_staple"])
def test_specimens_have_plausible_bony_limits(specimen, name):
    pelvis, femur = specimen(name)
    an = analyze(pelvis, femur)
    limits = MotionModel.from_analysis(pelvis, femur, an).limits()
    for key, (lo, hi) in PLAUSIBLE_ROM.items():
        assert lo <= limits[key].angle_deg <= hi, (key, limits[key].angle_deg)
    # flexion with internal rotation catches the anterosuperior rim
    assert limits["internal_rotation_90"].pelvis_part == "rim"
    assert limits["internal_rotation_90"].clock < 3.0 or limits["internal_rotation_90"].clock > 11.0


# ---------------------------------------------------------------- regions and clock


def _lm(side: str = "right") -> MotionLandmarks:
    s = 1.0 if side == "right" else -1.0
    neck = np.array([s * 0.7, -0.2, -0.68])
    return MotionLandmarks(
        np.zeros(3), 20.0, neck / np.linalg.norm(neck), np.array([s * 30.0, 0.0, -420.0]),
        np.zeros(3), 25.0, HipAxes.from_side(side), side,
    )  # fmt: skip


@pytest.mark.parametrize("side", ["right", "left"])
def test_femoral_regions_follow_their_definitions(side):
    from hipviz.motion import femoral_region

    lm = _lm(side)
    n = lm.toward_neck
    off = np.cross(n, lm.axes.anterior)
    off /= np.linalg.norm(off)
    assert femoral_region(-20.0 * n, lm) == "head"
    assert femoral_region(0.4 * 20 * n + 20.0 * off, lm) == "head"
    assert femoral_region(0.8 * 20 * n + 15.0 * off, lm) == "head-neck junction"
    assert femoral_region(1.5 * 20 * n + 15.0 * off, lm) == "neck"
    assert femoral_region(1.5 * 20 * n + 30.0 * off, lm) == "trochanter"  # far off the axis
    assert femoral_region(2.5 * 20 * n, lm) == "trochanter"  # past the neck
    assert femoral_region(-100.0 * lm.mechanical_axis, lm) == "shaft"


@pytest.mark.parametrize("side", ["right", "left"])
def test_pelvic_regions_and_clock_face(side):
    from hipviz.motion import clock_face, pelvic_region

    lm = _lm(side)
    a = lm.axes
    assert pelvic_region(30.0 * a.lateral, lm) == "rim"  # within R + 6 mm
    assert pelvic_region(40.0 * a.superior, lm) == "ilium"
    assert pelvic_region(-40.0 * a.superior + 5.0 * a.anterior, lm) == "pubis"
    assert pelvic_region(-40.0 * a.superior - 5.0 * a.anterior, lm) == "ischium"
    # 12 superior, 3 anterior, 6 inferior, 9 posterior, on both sides; lateral offsets ignored
    for v, hours in ((a.superior, 12.0), (a.anterior, 3.0), (-a.superior, 6.0),
                     (-a.anterior, 9.0), (a.superior + a.anterior, 1.5)):  # fmt: skip
        assert clock_face(30.0 * v + 20.0 * a.lateral, lm) == pytest.approx(hours, abs=1e-9)
