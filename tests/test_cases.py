"""Teaching cases: measured in their targets, mirror-symmetric, closed, unfolded, apart."""

import numpy as np
import pytest
import trimesh
from scipy.spatial.transform import Rotation

from hipviz import cases, hip
from hipviz.anatomy import builtin_hip, ream_to_head
from hipviz.errors import InputError
from hipviz.geometry import unit
from hipviz.measures import HipAxes
from hipviz.proximity import min_gap_mm

NAMES = list(cases.CASES)
SIDES = ("left", "right")


@pytest.fixture(scope="module")
def measured():
    """Measures of every case and side, by :func:`hipviz.hip.analyze` in its default frame."""
    return {
        (name, side): hip.analyze(h.pelvis, h.femur).values
        for name in NAMES
        for side in SIDES
        for h in [cases.case_hip(name, side=side)]
    }


def jacobian(fn, points, h_mm=0.01):
    """(n, 3, 3) Jacobian of the point map ``fn`` at ``points`` (n, 3), central differences."""
    cols = [(fn(points + e) - fn(points - e)) / (2.0 * h_mm) for e in np.eye(3) * h_mm]
    return np.stack(cols, axis=-1)


def jacobian_det(fn, points):
    """(n,) determinant of the Jacobian of ``fn`` at ``points`` (n, 3)."""
    return np.linalg.det(jacobian(fn, points))


def ball_grid(center, radius_mm, step_mm):
    """Grid points (n, 3) with spacing ``step_mm`` inside the ball, offset off the centre."""
    ticks = np.arange(-radius_mm, radius_mm + step_mm, step_mm) + 0.37 * step_mm
    g = np.stack(np.meshgrid(ticks, ticks, ticks, indexing="ij"), axis=-1).reshape(-1, 3)
    return center + g[np.linalg.norm(g, axis=1) <= radius_mm]


# --------------------------------------------------------------------------- the cases


@pytest.mark.parametrize("name", NAMES)
def test_case_measures_in_its_targets(measured, name):
    values = measured[(name, "left")]
    for key, (lo, hi) in cases.CASES[name].targets.items():
        assert lo <= values[key] <= hi, (name, key, values[key], (lo, hi))


@pytest.mark.parametrize("name", NAMES)
def test_right_case_measures_like_the_left(measured, name):
    left, right = measured[(name, "left")], measured[(name, "right")]
    assert left["side"] == "left" and right["side"] == "right"
    keys = set(cases.CASES[name].targets) | {"lcea_deg", "acetabular_version_deg", "alpha_deg"}
    for key in sorted(keys):
        assert right[key] == pytest.approx(left[key], abs=0.5), (name, key)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("side", SIDES)
def test_case_is_closed_with_the_same_triangles(name, side):
    base = builtin_hip(side=side)
    case = cases.case_hip(name, side=side)
    for bone in ("pelvis", "femur"):
        b, c = getattr(base, bone), getattr(case, bone)
        assert c.is_watertight and c.is_winding_consistent, (name, bone)
        assert len(c.faces) == len(b.faces), (name, bone)
        assert c.volume > 0, (name, bone)
    assert case.pelvis.body_count == base.pelvis.body_count


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("side", SIDES)
def test_case_bones_do_not_overlap(name, side):
    case = cases.case_hip(name, side=side)
    gap = min_gap_mm(case.pelvis, case.femur, near_mm=case.head.center_mm, radius_mm=60.0)
    assert gap > 0, (name, gap)


@pytest.mark.parametrize("name", NAMES)
def test_case_maps_are_what_was_applied(name):
    """The case is the maps applied to the built-in hip, its socket then reamed to the head."""
    base, case = builtin_hip(side="left"), cases.case_hip(name, side="left")
    maps = cases.case_maps(name)
    femur = maps.femur(base.femur.vertices)
    np.testing.assert_allclose(femur, case.femur.vertices, atol=1e-9)
    mapped = trimesh.Trimesh(maps.pelvis(base.pelvis.vertices), base.pelvis.faces, process=False)
    femur_mesh = trimesh.Trimesh(femur, base.femur.faces, process=False)
    reamed, _ = ream_to_head(mapped, femur_mesh, base.head)
    np.testing.assert_allclose(reamed.vertices, case.pelvis.vertices, atol=1e-9)
    # Reaming moves bone only along rays from the head centre.
    d0 = unit(mapped.vertices - base.head.center_mm)
    d1 = unit(case.pelvis.vertices - base.head.center_mm)
    np.testing.assert_allclose(d0, d1, atol=1e-9)


@pytest.mark.parametrize("name", NAMES)
def test_case_maps_do_not_fold(name):
    """det J > 0 on the support and rigid outside it: a diffeomorphism, so no surface folds."""
    maps = cases.case_maps(name)
    grid = ball_grid(maps.center_mm, maps.support_mm + 2.0, 3.0)
    for bone in ("pelvis", "femur"):
        det = jacobian_det(getattr(maps, bone), grid)
        assert det.min() > 0.0, (name, bone, det.min())
    rng = np.random.default_rng(0)
    d = rng.normal(size=(200, 3))
    far = maps.center_mm + (d / np.linalg.norm(d, axis=1, keepdims=True)) * rng.uniform(
        maps.support_mm + 0.5, maps.support_mm + 300.0, size=(200, 1)
    )
    np.testing.assert_allclose(maps.pelvis(far), far, atol=1e-9)
    moved = maps.femur(far)
    np.testing.assert_allclose(
        np.linalg.norm(moved[1:] - moved[:-1], axis=1),
        np.linalg.norm(far[1:] - far[:-1], axis=1),
        atol=1e-9,
    )


@pytest.mark.parametrize("name", NAMES)
def test_no_triangle_turns_over(name):
    """Each deformed triangle faces where the map's cofactor sends its old normal."""
    base, case, maps = builtin_hip(side="left"), cases.case_hip(name), cases.case_maps(name)
    for bone in ("pelvis", "femur"):
        before, after = getattr(base, bone), getattr(case, bone)
        jac = jacobian(getattr(maps, bone), before.triangles_center)
        # cof(J) n = det(J) J^-T n: where a surface normal goes under the map.
        expected = np.einsum(
            "nij,nj->ni",
            np.linalg.det(jac)[:, None, None] * np.linalg.inv(jac).transpose(0, 2, 1),
            before.face_normals,
        )
        assert np.einsum("ij,ij->i", expected, after.face_normals).min() > 0, (name, bone)


def test_jacobian_check_sees_a_fold():
    """The check above fails on a map that folds space over on itself."""

    def fold(p):
        # Pulls points toward the x = 0 plane harder than they are spread: det < 0 at 0.
        return p - 1.5 * p[:, :1] * np.exp(-np.sum(p * p, axis=1, keepdims=True) / 100.0) * [
            1.0,
            0.0,
            0.0,
        ]

    assert jacobian_det(fold, ball_grid(np.zeros(3), 20.0, 3.0)).min() < 0


def test_dysplastic_case_is_corrected_by_a_pao(measured):
    """Lateral 20, anterior 5, medial 3 mm about the head centre gives normal cover again."""
    case = cases.case_hip("dysplastic", side="left")
    c = case.head.center_mm
    axes = HipAxes.from_side("left")
    pelvis = np.array(case.pelvis.vertices)
    fragment = np.linalg.norm(pelvis - c, axis=1) < 45.0
    turn = Rotation.from_rotvec(np.radians(5.0) * np.cross(axes.superior, axes.anterior)) * (
        Rotation.from_rotvec(np.radians(20.0) * np.cross(axes.superior, axes.lateral))
    )
    shift = -3.0 * axes.lateral
    pelvis[fragment] = c + turn.apply(pelvis[fragment] - c) + shift
    after_p = trimesh.Trimesh(pelvis, case.pelvis.faces, process=False)
    after_f = trimesh.Trimesh(case.femur.vertices + shift, case.femur.faces, process=False)
    after = hip.analyze(after_p, after_f, frame="ras").values
    before = measured[("dysplastic", "left")]
    assert after["lcea_deg"] == pytest.approx(before["lcea_deg"] + 20.0, abs=2.0)
    assert 30.0 <= after["lcea_deg"] <= 38.0
    assert 0.0 <= after["tonnis_deg"] <= 10.0
    assert 10.0 <= after["acetabular_version_deg"] <= 25.0
    assert min_gap_mm(after_p, after_f, near_mm=c + shift, radius_mm=60.0) > 0


# --------------------------------------------------------------------------- the library


def test_cases_are_labelled_and_their_targets_are_measures(measured):
    values = measured[("normal", "left")]
    for name, info in cases.CASES.items():
        assert info.name == name and info.synthetic
        assert info.title and 2 <= info.description.count(". ") + 1 <= 3, name
        for key, (lo, hi) in info.targets.items():
            assert key in values and lo < hi, (name, key)


def test_unknown_case_names_the_valid_ones():
    with pytest.raises(InputError) as exc:
        cases.case_hip("dysplasia")
    msg = str(exc.value)
    assert "\n" not in msg and "'dysplasia'" in msg
    assert all(name in msg for name in cases.CASES)
    with pytest.raises(InputError, match="side must be"):
        cases.case_hip("normal", side="middle")


def test_case_hip_is_cached():
    assert cases.case_hip("cam") is cases.case_hip("cam")


# --------------------------------------------------------------------------- the primitives


def test_shell_rotation_is_rigid_inside_and_still_outside(rng):
    c = np.array([1.0, -2.0, 3.0])
    p = c + rng.normal(size=(500, 3)) * 40.0
    out = cases.shell_rotation(p, c, [0.0, 0.0, 30.0], 20.0, 60.0)
    dist = np.linalg.norm(p - c, axis=1)
    np.testing.assert_allclose(np.linalg.norm(out - c, axis=1), dist, atol=1e-9)
    inner, outer = dist < 20.0, dist > 60.0
    expected = c + Rotation.from_rotvec([0.0, 0.0, np.radians(30.0)]).apply(p[inner] - c)
    np.testing.assert_allclose(out[inner], expected, atol=1e-9)
    np.testing.assert_allclose(out[outer], p[outer], atol=1e-12)


def test_radial_push_keeps_directions_and_refuses_to_fold(rng):
    p = rng.normal(size=(500, 3)) * 20.0
    out = cases.radial_push(
        p,
        np.zeros(3),
        [1.0, 0.0, 0.0],
        depth_mm=3.0,
        radii_mm=(5.0, 10.0, 20.0, 30.0),
        half_angle_deg=30.0,
        falloff_deg=20.0,
    )
    r0, r1 = np.linalg.norm(p, axis=1), np.linalg.norm(out, axis=1)
    np.testing.assert_allclose(out / r1[:, None], p / r0[:, None], atol=1e-12)
    assert np.all(r1 >= r0 - 1e-12) and (r1 - r0).max() == pytest.approx(3.0, abs=0.3)
    assert np.all(r1[p[:, 0] <= 0] == pytest.approx(r0[p[:, 0] <= 0]))
    with pytest.raises(InputError, match="fold"):
        cases.radial_push(
            p,
            np.zeros(3),
            [1.0, 0.0, 0.0],
            depth_mm=5.0,
            radii_mm=(5.0, 10.0, 20.0, 24.0),
            half_angle_deg=30.0,
            falloff_deg=20.0,
        )


def test_elliptic_cone_is_wider_along_its_major_axis():
    def at(deg, toward):
        t = np.radians(deg)
        return np.cos(t) * np.array([1.0, 0.0, 0.0]) + np.sin(t) * np.asarray(toward)

    w = cases.cone_weight(
        np.array(
            [
                at(0, [0, 0, 1]),
                at(39, [0, 0, 1]),
                at(39, [0, 1, 0]),
                at(60, [0, 0, 1]),
                -at(0, [0, 0, 1]),
            ]
        ),
        [1.0, 0.0, 0.0],
        half_angle_deg=40.0,
        falloff_deg=10.0,
        major=[0.0, 0.0, 1.0],
        minor_half_angle_deg=20.0,
    )
    np.testing.assert_allclose(w, [1.0, 1.0, 0.0, 0.0, 0.0], atol=1e-12)


def test_periacetabular_turns_follow_the_pao_directions():
    """Lateral turns superior toward lateral; anterior turns superior toward anterior."""
    axes = HipAxes.from_side("right")
    up = axes.superior[None] * 10.0
    lat = cases.periacetabular_rotation(up, np.zeros(3), axes, lateral_deg=10.0)[0]
    ant = cases.periacetabular_rotation(up, np.zeros(3), axes, anterior_deg=10.0)[0]
    assert lat @ axes.lateral > 1.0 and abs(lat @ axes.anterior) < 1e-9
    assert ant @ axes.anterior > 1.0 and abs(ant @ axes.lateral) < 1e-9
    front = axes.lateral[None] * 10.0
    ver = cases.periacetabular_rotation(front, np.zeros(3), axes, version_deg=10.0)[0]
    assert ver @ axes.anterior > 1.0


def test_polar_weight_is_full_in_its_cap_and_gone_past_it():
    axis = np.array([0.0, 0.0, 1.0])
    beta = np.radians([0.0, 59.0, 105.0, 151.0, 180.0])
    d = np.c_[np.sin(beta), np.zeros_like(beta), np.cos(beta)]
    np.testing.assert_allclose(cases.polar_weight(d, axis, 60.0, 150.0), [1, 1, 0.5, 0, 0])
    with pytest.raises(InputError, match="full_deg"):
        cases.polar_weight(d, axis, 150.0, 60.0)


def test_capped_shell_rotation_turns_only_its_cap(rng):
    c = np.array([2.0, 1.0, -3.0])
    up = np.array([0.0, 0.0, 1.0])
    p = c + rng.normal(size=(2000, 3)) * 25.0
    rotvec = [0.0, -30.0, 0.0]  # degrees, an axis across the cap's
    out = cases.shell_rotation(p, c, rotvec, 40.0, 60.0, cap_axis=up, cap_deg=(60.0, 150.0))
    q = p - c
    dist = np.linalg.norm(q, axis=1)
    beta = np.degrees(np.arccos(q[:, 2] / dist))
    np.testing.assert_allclose(np.linalg.norm(out - c, axis=1), dist, atol=1e-9)
    cap, below = (beta < 60.0) & (dist < 40.0), beta > 150.0
    rigid = c + Rotation.from_rotvec(np.radians(rotvec)).apply(q[cap])
    np.testing.assert_allclose(out[cap], rigid, atol=1e-9)
    np.testing.assert_allclose(out[below], p[below], atol=1e-12)
    # fading over 90 degrees of direction, a turn of 60 degrees or more could fold
    with pytest.raises(InputError, match="fold"):
        cases.shell_rotation(p, c, [0.0, 61.0, 0.0], 40.0, 60.0, cap_axis=up, cap_deg=(60, 150))


def test_roof_turn_leaves_the_inferior_socket():
    """Opening the roof does not swing the inferior rim over the neck; a rigid turn does."""
    axes = HipAxes.from_side("left")
    # superior, inferior, and 20 degrees posterior of inferior (past the cap's 150 degrees)
    back = -np.cos(np.radians(20.0)) * axes.superior - np.sin(np.radians(20.0)) * axes.anterior
    pts = 30.0 * np.stack([axes.superior, -axes.superior, back])
    capped = cases.periacetabular_rotation(pts, np.zeros(3), axes, lateral_deg=-32.0)
    rigid = cases.periacetabular_rotation(
        pts, np.zeros(3), axes, lateral_deg=-32.0, roof_cap_deg=None
    )
    # the roof opens the same way (superior turns medially by 32 degrees) ...
    np.testing.assert_allclose(capped[0], rigid[0], atol=1e-9)
    assert capped[0] @ axes.lateral == pytest.approx(-30.0 * np.sin(np.radians(32.0)))
    # ... but the inferior and posterior-inferior socket stay where they were
    np.testing.assert_allclose(capped[1:], pts[1:], atol=1e-9)
    assert rigid[1] @ axes.lateral == pytest.approx(30.0 * np.sin(np.radians(32.0)))
