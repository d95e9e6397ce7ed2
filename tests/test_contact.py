"""Contact pressure by discrete element analysis: exact answers, invariance, real anatomy."""

import json

import numpy as np
import pytest
from scipy.optimize import root
from scipy.spatial.transform import Rotation

from hipviz import contact as ct
from hipviz.errors import InputError, LandmarkError
from hipviz.geometry import Sphere, apply, rigid, rotation
from hipviz.measures import HipAxes

K_DEFAULT = 12.0 * 0.55 / (1.45 * 0.1)  # E 12 MPa, nu 0.45


def cap_scene(r_mm: float, alpha_deg: float, h_mm: float, center=(0.0, 0.0, 0.0)):
    """(surface, head centre): a cap of radius r about +z with a head sphere of radius r - h."""
    c = np.asarray(center, dtype=float)
    mesh = ct.spherical_cap(r_mm, alpha_deg)
    mesh.apply_translation(c)
    return ct.articular_surface(mesh, Sphere(c, r_mm - h_mm, 0.0, 0)), c


def tilted(f_n: float, tilt_deg: float) -> np.ndarray:
    """A load of f_n newtons tilted from +z toward +x."""
    t = np.radians(tilt_deg)
    return f_n * np.array([np.sin(t), 0.0, np.cos(t)])


def test_spring_modulus_matches_design_value():
    assert ct.spring_modulus_mpa() == pytest.approx(45.52, abs=0.01)
    assert ct.spring_modulus_mpa(10.0, 0.0) == pytest.approx(10.0)


@pytest.mark.parametrize("alpha_deg", [30.0, 45.0, 60.0, 75.0, 90.0])
@pytest.mark.parametrize(("f_n", "r_mm", "h_mm"), [(1750.0, 25.0, 3.0), (600.0, 21.0, 2.0)])
def test_axial_load_on_cap_is_exact(alpha_deg, f_n, r_mm, h_mm):
    surface, c = cap_scene(r_mm, alpha_deg, h_mm)
    res = ct.solve_contact(surface, c, np.array([0.0, 0.0, f_n]))
    exact = ct.cap_pressure_exact(f_n, r_mm, alpha_deg)
    assert res.peak_mpa == pytest.approx(exact["peak_mpa"], rel=0.01)
    assert res.mean_mpa == pytest.approx(exact["mean_mpa"], rel=0.01)
    assert res.area_mm2 == pytest.approx(exact["area_mm2"], rel=0.01)
    # Springs' force balance, and the head moves straight along the load.
    force = -(surface.normals.T @ (res.pressure_mpa * surface.areas))
    np.testing.assert_allclose(force, [0.0, 0.0, f_n], atol=1e-3 * f_n)
    assert np.linalg.norm(res.displacement_mm[:2]) < 1e-9
    assert res.displacement_mm[2] == pytest.approx(exact["peak_mpa"] * h_mm / K_DEFAULT, rel=0.01)


def test_design_numbers():
    """DESIGN.md §8.2: F 1750 N, r 25 mm, K 45.5 MPa, h 3 mm."""
    hemi = ct.cap_pressure_exact(1750.0, 25.0, 90.0)
    assert hemi["peak_mpa"] == pytest.approx(1.337, abs=5e-4)
    assert hemi["peak_mpa"] * 3.0 / 45.5 == pytest.approx(0.088, abs=5e-4)
    cap = ct.cap_pressure_exact(1750.0, 25.0, 60.0)
    assert (cap["peak_mpa"], cap["mean_mpa"]) == pytest.approx((1.528, 1.146), abs=5e-4)
    assert cap["area_mm2"] == pytest.approx(1963.5, abs=0.5)
    surface, c = cap_scene(25.0, 90.0, 3.0)
    res = ct.solve_contact(surface, c, [0.0, 0.0, 1750.0])
    assert np.linalg.norm(res.displacement_mm) == pytest.approx(0.088, abs=1e-3)


def integral_solution(f_vec, r_mm, alpha_deg, h_mm, k_mpa, n_theta=600, n_phi=1200):
    """Head displacement and pressure stats by quadrature on the exact sphere (no mesh).

    Solves  int_cap (K/h) max(0, u.w) w dA = F  for u with a midpoint rule in
    (theta, phi), w the outward radial direction.
    """
    th = (np.arange(n_theta) + 0.5) * np.radians(alpha_deg) / n_theta
    ph = (np.arange(n_phi) + 0.5) * 2 * np.pi / n_phi
    tt, pp = np.meshgrid(th, ph, indexing="ij")
    w = np.stack([np.sin(tt) * np.cos(pp), np.sin(tt) * np.sin(pp), np.cos(tt)], -1).reshape(-1, 3)
    da = (r_mm**2 * np.sin(tt) * (np.radians(alpha_deg) / n_theta) * (2 * np.pi / n_phi)).ravel()

    def residual(u):
        p = k_mpa / h_mm * np.maximum(w @ u, 0.0)
        return (w.T @ (p * da) - f_vec) / np.linalg.norm(f_vec)

    u = root(residual, np.asarray(f_vec) * 1e-4, tol=1e-12).x
    p = k_mpa / h_mm * np.maximum(w @ u, 0.0)
    on = p > 0
    return u, p.max(), (p * da).sum() / da[on].sum(), da[on].sum()


@pytest.mark.parametrize(("alpha_deg", "tilt_deg"), [(60.0, 20.0), (60.0, 45.0), (90.0, 60.0)])
def test_tilted_load_matches_independent_integral(alpha_deg, tilt_deg):
    f = tilted(1750.0, tilt_deg)
    surface, c = cap_scene(25.0, alpha_deg, 3.0)
    res = ct.solve_contact(surface, c, f)
    u, peak, mean, area = integral_solution(f, 25.0, alpha_deg, 3.0, K_DEFAULT)
    np.testing.assert_allclose(res.displacement_mm, u, rtol=0.01, atol=1e-3 * np.linalg.norm(u))
    # A tilted load turns u past the rim, where the pressure is steepest: a face
    # reads it at its centroid, half a ring (0.75 degrees) inside the rim, so its
    # peak sits up to 1.5 % under the continuous one, never above it.
    assert res.peak_mpa == pytest.approx(peak, rel=0.02)
    assert res.peak_mpa <= peak * (1 + 1e-3)
    assert res.mean_mpa == pytest.approx(mean, rel=0.01)
    assert res.area_mm2 == pytest.approx(area, rel=0.01)


def test_load_toward_open_edge_leaves_part_unloaded():
    surface, c = cap_scene(25.0, 60.0, 3.0)
    f = tilted(1750.0, 45.0)
    res = ct.solve_contact(surface, c, f)
    cap_area = ct.cap_pressure_exact(1750.0, 25.0, 60.0)["area_mm2"]
    assert np.all(res.pressure_mpa >= 0)
    assert res.area_mm2 < 0.9 * cap_area
    # The head slides toward the open edge (past the rim): the whole far side of the
    # cap, and even its pole, is left unloaded.
    off = res.pressure_mpa == 0
    assert np.all(off[surface.points[:, 0] < 0])
    assert np.all(off[np.linalg.norm(surface.points[:, :2], axis=1) < 2.0])
    assert res.residual_n <= ct.FORCE_TOLERANCE * 1750.0
    # The contact centre moves toward the load.
    assert res.center_mm[0] > 0


def test_load_out_of_the_opening_has_no_equilibrium():
    surface, c = cap_scene(25.0, 60.0, 3.0)
    for spring in ct.SPRING_LAWS:
        with pytest.raises(InputError, match="no equilibrium"):
            ct.solve_contact(surface, c, tilted(1750.0, 75.0), spring=spring)
        # Just inside the edge: the head would slide far past its joint space first.
        with pytest.raises(InputError, match="no equilibrium"):
            ct.solve_contact(surface, c, tilted(1750.0, 57.0), spring=spring)
    with pytest.raises(InputError, match="no equilibrium"):
        ct.solve_contact(surface, c, [0.0, 0.0, -1000.0])


def test_rigid_motion_gives_the_same_pressures(rng):
    surface, c = cap_scene(25.0, 75.0, 3.0)
    f = tilted(1750.0, 30.0) + [0.0, 300.0, 0.0]
    axes = HipAxes.from_side("right")
    base = ct.solve_contact(surface, c, f, axes=axes)
    for _ in range(3):
        rot = Rotation.random(random_state=rng).as_matrix()
        tf = rigid(rot, rng.uniform(-200, 200, 3))
        moved = surface.moved(tf)
        ax = HipAxes(rot @ axes.lateral, rot @ axes.anterior, rot @ axes.superior)
        res = ct.solve_contact(moved, apply(tf, c), rot @ f, axes=ax)
        np.testing.assert_allclose(res.pressure_mpa, base.pressure_mpa, atol=1e-9)
        np.testing.assert_allclose(res.displacement_mm, rot @ base.displacement_mm, atol=1e-9)
        np.testing.assert_allclose(res.center_mm, apply(tf, base.center_mm), atol=1e-9)
        assert res.lateral_roof_share == pytest.approx(base.lateral_roof_share, abs=1e-12)
        # The same scene built from the moved mesh (not by moving the surface).
        mesh = ct.spherical_cap(25.0, 75.0)
        mesh.apply_transform(tf)
        rebuilt = ct.articular_surface(mesh, Sphere(apply(tf, c), 22.0, 0.0, 0))
        res2 = ct.solve_contact(rebuilt, apply(tf, c), rot @ f)
        np.testing.assert_allclose(res2.pressure_mpa, base.pressure_mpa, atol=1e-6)


def test_mirror_image_gives_the_same_pressures():
    """A left hip is the mirror of a right one: same pressures and lateral-roof share."""
    surface, c = cap_scene(25.0, 80.0, 3.0, center=(60.0, -20.0, 10.0))
    # The cap axis tilted laterally (+x for a right hip) so the roof share is not trivial.
    tf = rigid(rotation([0.0, 1.0, 0.0], 25.0))
    surface = surface.moved(tf)
    c = apply(tf, c)
    f = 1800.0 * np.array([-0.28, 0.05, 0.96])
    right = ct.solve_contact(surface, c, f, axes=HipAxes.from_side("right"))
    m = np.diag([-1.0, 1.0, 1.0])
    mirrored = ct.ArticularSurface(
        surface.faces,
        surface.points @ m,
        surface.normals @ m,
        surface.areas,
        surface.thickness,
    )
    left = ct.solve_contact(mirrored, c @ m, m @ f, axes=HipAxes.from_side("left"))
    np.testing.assert_allclose(left.pressure_mpa, right.pressure_mpa, atol=1e-9)
    assert 0.05 < right.lateral_roof_share < 0.95
    assert left.lateral_roof_share == pytest.approx(right.lateral_roof_share, abs=1e-12)
    # Reading the right hip with the left hip's axes gives another share: the axes matter.
    wrong = ct.solve_contact(surface, c, f, axes=HipAxes.from_side("left"))
    assert abs(wrong.lateral_roof_share - right.lateral_roof_share) > 0.05


def test_log_law_equals_linear_for_small_strain_and_is_stiffer_for_large():
    surface, c = cap_scene(25.0, 60.0, 3.0)
    small = [0.0, 20.0, 20.0]  # d/h about 1e-3
    lin = ct.solve_contact(surface, c, small)
    log = ct.solve_contact(surface, c, small, spring="log")
    assert log.peak_mpa == pytest.approx(lin.peak_mpa, rel=2e-3)
    np.testing.assert_allclose(log.pressure_mpa, lin.pressure_mpa, atol=2e-3 * lin.peak_mpa)
    big = [0.0, 0.0, 60000.0]  # linear springs would squeeze to d > h here
    lin = ct.solve_contact(surface, c, big)
    log = ct.solve_contact(surface, c, big, spring="log")
    d_lin = -(surface.normals @ lin.displacement_mm) / surface.thickness
    d_log = -(surface.normals @ log.displacement_mm) / surface.thickness
    assert d_lin.max() > 1.0 > d_log.max()
    assert np.linalg.norm(log.displacement_mm) < 0.8 * np.linalg.norm(lin.displacement_mm)
    for res in (lin, log):
        force = -(surface.normals.T @ (res.pressure_mpa * surface.areas))
        np.testing.assert_allclose(force, big, atol=1e-4 * 60000.0)


def test_thinner_springs_carry_more():
    """Linear law: pressure goes with K/h, so a thin half of the cap carries more."""
    surface, c = cap_scene(25.0, 60.0, 3.0)
    thin = surface.points[:, 0] > 0
    h = np.where(thin, 1.5, 3.0)
    uneven = ct.ArticularSurface(surface.faces, surface.points, surface.normals, surface.areas, h)
    res = ct.solve_contact(uneven, c, [0.0, 0.0, 1750.0])
    load = res.pressure_mpa * surface.areas
    assert load[thin].sum() > 1.2 * load[~thin].sum()
    # Stiffer springs on +x push the head toward the softer side.
    assert res.displacement_mm[0] < -1e-3 * np.linalg.norm(res.displacement_mm)
    even = ct.solve_contact(surface, c, [0.0, 0.0, 1750.0])
    even_load = even.pressure_mpa * surface.areas
    assert even_load[thin].sum() == pytest.approx(even_load[~thin].sum(), rel=1e-3)


def test_rest_thickness_is_the_gap_clamped():
    mesh = ct.spherical_cap(25.0, 60.0)
    lo, hi = ct.THICKNESS_RANGE_MM
    s = ct.articular_surface(mesh, Sphere(np.zeros(3), 24.5, 0.0, 0))  # gap 0.5 mm
    np.testing.assert_allclose(s.thickness, lo)
    s = ct.articular_surface(mesh, Sphere(np.zeros(3), 21.0, 0.0, 0))  # gap 4 mm
    np.testing.assert_allclose(s.thickness, 4.0, atol=0.02)
    assert s.area_mm2 == pytest.approx(ct.cap_pressure_exact(1.0, 25.0, 60.0)["area_mm2"], 0.01)
    # A gap beyond the articular joint space carries no spring at all.
    with pytest.raises(LandmarkError, match="no socket surface"):
        ct.articular_surface(mesh, Sphere(np.zeros(3), 25.0 - hi - 1.0, 0.0, 0))


def test_head_gap_after_a_move():
    surface, c = cap_scene(25.0, 60.0, 3.0)
    tf = rigid(rotation([1.0, 0.0, 0.0], 20.0), [0.0, 0.0, 0.0])
    moved = surface.moved(tf)
    # The head follows the socket centre (here the centre stays): same gaps.
    same = moved.with_head_gap(Sphere(c, 22.0, 0.0, 0))
    np.testing.assert_allclose(same.thickness, surface.thickness, atol=1e-9)
    with pytest.raises(InputError, match="4, 4"):
        surface.moved(np.eye(3))
    # A head left 1 mm lower: every gap grows, by 1 mm at the pole.
    lower = moved.with_head_gap(Sphere(c - [0.0, 0.0, 1.0], 22.0, 0.0, 0))
    assert np.all(lower.thickness > surface.thickness - 1e-9)


def test_fossa_and_back_faces_carry_no_springs():
    import trimesh

    cap = ct.spherical_cap(25.0, 70.0)
    # A fossa: a patch 5 mm deeper, and the cap's back side (facing away from the head).
    fossa = ct.spherical_cap(30.0, 15.0)
    back = ct.spherical_cap(27.0, 70.0)
    back.invert()
    mesh = trimesh.util.concatenate([cap, fossa, back])
    head = Sphere(np.zeros(3), 22.0, 0.0, 0)
    s = ct.articular_surface(mesh, head, Sphere(np.zeros(3), 25.0, 0.0, 0))
    assert np.all(s.faces < len(cap.faces))
    assert len(s) == len(cap.faces)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"modulus_mpa": 0.0}, "modulus"),
        ({"modulus_mpa": float("nan")}, "modulus"),
        ({"poisson": 0.5}, "Poisson"),
        ({"poisson": -0.1}, "Poisson"),
        ({"spring": "cubic"}, "spring law"),
    ],
)
def test_bad_parameters_raise_one_line(kwargs, match):
    surface, c = cap_scene(25.0, 60.0, 3.0)
    with pytest.raises(InputError, match=match) as exc:
        ct.solve_contact(surface, c, [0.0, 0.0, 1000.0], **kwargs)
    assert "\n" not in str(exc.value)


def test_bad_head_sphere_or_empty_pelvis():
    import trimesh

    mesh = ct.spherical_cap(25.0, 60.0)
    with pytest.raises(InputError, match="not a usable sphere"):
        ct.articular_surface(mesh, Sphere(np.zeros(3), float("nan"), 0.0, 0))
    with pytest.raises(LandmarkError, match="no socket surface"):
        ct.articular_surface(trimesh.Trimesh(), Sphere(np.zeros(3), 22.0, 0.0, 0))
    # A head far from this socket: nothing faces it within the joint space.
    with pytest.raises(LandmarkError, match="no socket surface"):
        ct.articular_surface(mesh, Sphere(np.array([0.0, 0.0, -100.0]), 22.0, 0.0, 0))


def test_bad_force_and_empty_surface():
    surface, c = cap_scene(25.0, 60.0, 3.0)
    with pytest.raises(InputError, match="not finite"):
        ct.solve_contact(surface, c, [0.0, np.nan, 1000.0])
    with pytest.raises(InputError, match="3 values"):
        ct.solve_contact(surface, c, [0.0, 1000.0])
    empty = ct.ArticularSurface(
        np.zeros(0, int), np.zeros((0, 3)), np.zeros((0, 3)), np.zeros(0), np.zeros(0)
    )
    with pytest.raises(LandmarkError, match="no articular surface"):
        ct.solve_contact(empty, c, [0.0, 0.0, 1000.0])
    zero = ct.solve_contact(surface, c, [0.0, 0.0, 0.0])
    assert zero.peak_mpa == 0.0 and zero.area_mm2 == 0.0


def test_pressure_for_display_on_socket_vertices_and_head():
    r, h, alpha = 25.0, 3.0, 60.0
    mesh = ct.spherical_cap(r, alpha)
    c = np.zeros(3)
    surface = ct.articular_surface(mesh, Sphere(c, r - h, 0.0, 0))
    res = ct.solve_contact(surface, c, [0.0, 0.0, 1750.0])
    p0 = ct.cap_pressure_exact(1750.0, r, alpha)["peak_mpa"]
    # Socket vertices: p0 cos(theta) at each vertex, to the mesh's resolution.
    pv = ct.pressure_on_vertices(mesh, surface, res.pressure_mpa)
    cos_v = np.asarray(mesh.vertices)[:, 2] / r
    rim = cos_v < np.cos(np.radians(alpha)) + 1e-9
    np.testing.assert_allclose(pv[~rim], p0 * cos_v[~rim], rtol=0.01)
    # The rim ring sees faces on one side only: their centroids, half a ring inside.
    np.testing.assert_allclose(pv[rim], p0 * cos_v[rim], rtol=0.03)
    # Head points: the pressure of the socket spring above them; none below the cap.
    rng = np.random.default_rng(3)
    dirs = rng.normal(size=(500, 3))
    dirs /= np.linalg.norm(dirs, axis=1)[:, None]
    head_pts = c + (r - h) * dirs
    ph = ct.pressure_toward(head_pts, c, surface, res.pressure_mpa)
    inside = dirs[:, 2] > np.cos(np.radians(alpha - 2.0))
    outside = dirs[:, 2] < np.cos(np.radians(alpha + 5.0))
    # Nearest spring: off by at most its angular spacing (1.5 degrees) times dp/dtheta.
    np.testing.assert_allclose(ph[inside], p0 * dirs[inside, 2], atol=0.03 * p0)
    assert np.all(ph[outside] == 0.0)


def test_as_dict_keys_and_units():
    surface, c = cap_scene(25.0, 60.0, 3.0)
    res = ct.solve_contact(surface, c, [0.0, 0.0, 1750.0], axes=HipAxes.from_side("right"))
    out = res.as_dict()
    assert out["contact_peak_mpa"] == pytest.approx(res.peak_mpa)
    assert out["contact_mean_mpa"] == pytest.approx(res.mean_mpa)
    assert out["contact_area_mm2"] == pytest.approx(res.area_mm2)
    assert len(out["contact_center_mm"]) == 3 and out["contact_spring"] == "linear"
    # Cap above its centre, load along its axis: the lateral (+x) half carries half.
    assert out["contact_lateral_roof_share"] == pytest.approx(0.5, abs=0.01)
    # Without the hip's axes there is no roof: null in JSON, not NaN.
    no_axes = ct.solve_contact(surface, c, [0.0, 0.0, 1750.0]).as_dict()
    assert no_axes["contact_lateral_roof_share"] is None
    json.dumps(no_axes, allow_nan=False)


# ---------------------------------------------------------------- real anatomy

ONE_LEG_STANCE_N = 2.6 * 70.0 * 9.81


def one_leg_stance(axes: HipAxes) -> np.ndarray:
    """2.6 body weights, 16.5 degrees medial of superior (OrthoLoad one-leg stance, DESIGN §8.1)."""
    t = np.radians(16.5)
    return ONE_LEG_STANCE_N * (np.cos(t) * axes.superior - np.sin(t) * axes.lateral)


@pytest.fixture(scope="module")
def anatomy_contact():
    from hipviz.anatomy import builtin_hip
    from hipviz.cases import case_hip
    from hipviz.hip import _moved, analyze

    out = {}
    for name, side in (("builtin", "left"), ("dysplastic", "left"), ("dysplastic", "right")):
        hip = builtin_hip(side=side) if name == "builtin" else case_hip(name, side=side)
        an = analyze(hip.pelvis, hip.femur)
        pelvis = _moved(hip.pelvis, an.tf_ras_input)
        femur = _moved(hip.femur, an.tf_ras_input)
        surface = ct.articular_surface(pelvis, an.head, an.socket, femur=femur)
        res = ct.solve_contact(surface, an.head.center_mm, one_leg_stance(an.axes), axes=an.axes)
        out[name if side == "left" else f"{name}_{side}"] = (surface, res, an, pelvis)
    return out


def test_builtin_hip_one_leg_stance_is_plausible(anatomy_contact):
    surface, res, an, _ = anatomy_contact["builtin"]
    # The articular surface of an adult socket: some 2000-5000 mm^2 of bone.
    assert 2000 < surface.area_mm2 < 6000
    # Bone-only joint space taken as cartilage everywhere: contact spreads over most
    # of the roof and the pressure stays near the concentric-sphere answer (1.3-1.5
    # MPa for a hemisphere); the published DEA with cartilage models reads 2-3 MPa mean.
    assert 0.8 < res.peak_mpa < 10.0
    assert 0.4 < res.mean_mpa < 3.0
    assert 800 < res.area_mm2 < 4000
    # The pressure sits in the roof, above the head centre and medial of the socket's
    # lateral rim; the load is balanced.
    rel = an.axes.to_las(res.center_mm - an.head.center_mm)
    assert rel[2] > 0.7 * np.linalg.norm(rel)
    force = -(surface.normals.T @ (res.pressure_mpa * surface.areas))
    np.testing.assert_allclose(force, one_leg_stance(an.axes), atol=1e-3 * ONE_LEG_STANCE_N)


def test_dysplastic_hip_carries_the_load_on_less_area(anatomy_contact):
    _, normal, _, _ = anatomy_contact["builtin"]
    _, dys, _, _ = anatomy_contact["dysplastic"]
    # Published (DEA, walking): dysplastic mean 5.5 MPa vs normal 2.4, area 395 vs 1120 mm^2.
    assert dys.area_mm2 < 0.6 * normal.area_mm2
    assert dys.peak_mpa > 1.5 * normal.peak_mpa
    assert dys.mean_mpa > 1.5 * normal.mean_mpa


def test_real_anatomy_both_sides_agree(anatomy_contact):
    """The right teaching case is the mirror of the left one: same pressures."""
    _, left, _, _ = anatomy_contact["dysplastic"]
    _, right, _, _ = anatomy_contact["dysplastic_right"]
    for key in ("peak_mpa", "mean_mpa", "area_mm2", "lateral_roof_share"):
        assert getattr(right, key) == pytest.approx(getattr(left, key), rel=0.02), key


def test_real_anatomy_any_pose(anatomy_contact, rng):
    """Springs found on the dysplastic hip after a random rigid motion: same pressures."""
    surface, base, an, pelvis = anatomy_contact["dysplastic"]
    rot = Rotation.random(random_state=rng).as_matrix()
    tf = rigid(rot, rng.uniform(-300, 300, 3))
    moved_pelvis = pelvis.copy()
    moved_pelvis.apply_transform(tf)

    def moved(s):
        return Sphere(apply(tf, s.center_mm), s.radius_mm, s.rms_mm, s.n)

    # The gap to the head sphere here (the femur's ray gap is checked by the fixture).
    ref = ct.articular_surface(pelvis, an.head, an.socket)
    res_ref = ct.solve_contact(ref, an.head.center_mm, one_leg_stance(an.axes), axes=an.axes)
    s2 = ct.articular_surface(moved_pelvis, moved(an.head), moved(an.socket))
    axes = HipAxes(rot @ an.axes.lateral, rot @ an.axes.anterior, rot @ an.axes.superior)
    res = ct.solve_contact(
        s2, apply(tf, an.head.center_mm), rot @ one_leg_stance(an.axes), axes=axes
    )
    np.testing.assert_array_equal(s2.faces, ref.faces)
    np.testing.assert_allclose(res.pressure_mpa, res_ref.pressure_mpa, atol=1e-6)
    np.testing.assert_allclose(res.displacement_mm, rot @ res_ref.displacement_mm, atol=1e-8)
    assert res.lateral_roof_share == pytest.approx(res_ref.lateral_roof_share, abs=1e-9)
    assert res_ref.peak_mpa == pytest.approx(base.peak_mpa, rel=0.3)


def test_contact_imports_no_renderer_or_web_stack():
    import subprocess
    import sys

    code = "import sys, hipviz.contact; print(' '.join(sys.modules))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    ).stdout.split()
    assert not {"pyvista", "panel", "param", "bokeh", "vtk"} & set(out)
