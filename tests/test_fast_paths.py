"""Faster ways to the same answers: each checked against the computation it replaced."""

from __future__ import annotations

import functools
import gc
import weakref

import numpy as np
import pytest
import trimesh
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from hipviz import atlas, batch, frames, io
from hipviz import landmarks as lmk
from hipviz.geometry import cross3, fit_sphere, norms, unit


def _meshes() -> dict[str, trimesh.Trimesh]:
    ball = trimesh.creation.icosphere(3)
    box = trimesh.creation.box()
    out = {"ball": ball, "box": box}
    out["open"] = trimesh.Trimesh(ball.vertices, ball.faces[5:], process=False)
    out["edge used 3 times"] = trimesh.Trimesh(
        ball.vertices, np.vstack([ball.faces, [[*ball.faces[0][:2], 7]]]), process=False
    )
    out["face twice"] = trimesh.Trimesh(
        box.vertices, np.vstack([box.faces, box.faces[:1]]), process=False
    )
    out["face three times"] = trimesh.Trimesh(
        box.vertices, np.vstack([box.faces, box.faces[:1], box.faces[:1]]), process=False
    )
    return out


@pytest.mark.parametrize("name", list(_meshes()))
def test_closed_faces_is_trimesh_watertight(name: str) -> None:
    mesh = _meshes()[name]
    assert lmk.closed_faces(mesh.faces) == bool(mesh.is_watertight)


def test_inward_closed_surface_still_gets_outward_normals() -> None:
    ball = trimesh.creation.icosphere(2)
    inside_out = trimesh.Trimesh(ball.vertices, ball.faces[:, ::-1], process=False)
    fs = lmk.FaceSet.of(inside_out)
    assert fs.outward_sign == -1.0
    radial = fs.centroids / np.linalg.norm(fs.centroids, axis=1, keepdims=True)
    assert np.all(np.einsum("ij,ij->i", fs.normals, radial) > 0.9)
    # An open inside-out patch is not turned: it has no inside.
    cap = trimesh.Trimesh(ball.vertices, ball.faces[::-1][:40, ::-1], process=False)
    assert lmk.FaceSet.of(cap).outward_sign == 1.0


def _labels_by_scipy(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    ends = np.round(np.vstack([a, b]) / 1e-5).astype(np.int64)
    _, point = np.unique(ends, axis=0, return_inverse=True)
    n = len(a)
    seg = np.tile(np.arange(n), 2)
    shape = (n + point.max() + 1,) * 2
    graph = coo_matrix((np.ones(2 * n), (seg, n + point.ravel())), shape=shape)
    return connected_components(graph, directed=False)[1][:n]


def _ring(centre: tuple[float, float], radius: float, k: int) -> tuple[np.ndarray, np.ndarray]:
    t = np.linspace(0.0, 2 * np.pi, k, endpoint=False)
    p = np.column_stack([centre[0] + radius * np.cos(t), centre[1] + radius * np.sin(t), 0 * t])
    return p, np.roll(p, -1, axis=0)


def test_loop_labels_number_loops_as_connected_components() -> None:
    rng = np.random.default_rng(5)
    rings = [_ring((0, 0), 20.0, 97), _ring((60, 0), 5.0, 12), _ring((0, 0), 8.0, 40)]
    a = np.vstack([r[0] for r in rings])
    b = np.vstack([r[1] for r in rings])
    for _ in range(5):
        order = rng.permutation(len(a))
        got = lmk._loop_labels(a[order], b[order])
        assert np.array_equal(got, _labels_by_scipy(a[order], b[order]))
        assert got.max() == 2
    assert lmk._loop_labels(np.zeros((0, 3)), np.zeros((0, 3))).shape == (0,)


def test_loop_labels_on_real_neck_sections() -> None:
    femur = trimesh.creation.capsule(height=60.0, radius=12.0, count=[48, 48])
    tri = np.asarray(femur.vertices)[femur.faces]
    for level in np.linspace(-30.0, 30.0, 7):
        a, b = lmk._plane_segments(tri, np.array([0.0, 0.0, level]), np.array([0.3, 0.1, 0.95]))
        assert len(a) > 10
        assert np.array_equal(lmk._loop_labels(a, b), _labels_by_scipy(a, b))


def _points_and_normals(seed: int, n: int, spread_mm: float) -> tuple[np.ndarray, np.ndarray]:
    """(n, 3) random points, mm, and (n, 3) random unit normals."""
    rng = np.random.default_rng(seed)
    pts = rng.normal(size=(n, 3)) * spread_mm
    nrm = rng.normal(size=(n, 3))
    return pts, nrm / np.linalg.norm(nrm, axis=1, keepdims=True)


def test_unweighted_votes_equal_votes_of_weight_one() -> None:
    pts, nrm = _points_and_normals(2, 3000, 20.0)
    radii = np.arange(14.0, 37.0)
    for offset in (0.0, 1.5):
        counted = lmk._sphere_votes(pts, nrm, None, radii, 3.0, offset)
        weighed = lmk._sphere_votes(pts, nrm, np.ones(len(pts)), radii, 3.0, offset)
        for x, y in zip(counted, weighed, strict=True):
            assert np.array_equal(x, y)
        assert counted[2].sum() == len(pts) * len(radii)


def test_sphere_fit_exact_on_a_sphere_of_many_points() -> None:
    """More than 10k points: the weighted sums no longer go through BLAS's threaded dot."""
    rng = np.random.default_rng(8)
    d = rng.normal(size=(30000, 3))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    centre, radius = np.array([12.0, -40.0, 300.0]), 23.5
    sphere = fit_sphere(centre + radius * d, rng.random(30000) + 0.1)
    assert np.allclose(sphere.center_mm, centre, atol=1e-9)
    assert sphere.radius_mm == pytest.approx(radius, abs=1e-9)
    assert sphere.rms_mm < 1e-9


def test_shaft_sections_on_preselected_faces_equal_whole_mesh() -> None:
    femur = trimesh.creation.cylinder(radius=14.0, height=300.0, sections=64)
    femur = femur.subdivide_to_size(4.0)
    tri_span = (np.asarray(femur.vertices) @ [0.0, 0.0, 1.0])[femur.faces]
    for level in (-100.0, 0.0, 37.3):
        origin, normal = np.array([0.0, 0.0, level]), np.array([0.0, 0.0, 1.0])
        near = np.flatnonzero(
            (tri_span.min(axis=1) <= level + 1e-3) & (tri_span.max(axis=1) >= level - 1e-3)
        )
        assert len(near) < len(femur.faces) / 20
        whole = lmk.section_centroid(femur, origin, normal)
        part = lmk.section_centroid(femur, origin, normal, faces=near)
        assert np.array_equal(whole[0], part[0]) and whole[1] == part[1]
        assert whole[1] == pytest.approx(np.pi * 14.0**2, rel=0.01)


@pytest.mark.parametrize("name", ["ball", "open", "edge used 3 times", "two bodies", "mixed"])
def test_topology_from_the_cleaned_edges_equals_a_fresh_count(name: str) -> None:
    meshes = _meshes()
    if name == "two bodies":
        other = meshes["box"].copy()
        other.apply_translation([5.0, 0.0, 0.0])
        mesh = trimesh.util.concatenate([meshes["ball"], other])
    elif name == "mixed":
        ball = meshes["ball"]
        faces = ball.faces.copy()
        faces[::7] = faces[::7, ::-1]
        mesh = trimesh.Trimesh(ball.vertices, faces, process=False)
    else:
        mesh = meshes[name]
    v, f, _, edges = io._clean(mesh.vertices, mesh.faces, name)
    assert io._topology(v, f, edges) == io._topology(v, f)
    assert np.array_equal(np.sort(edges.edge_of, axis=1), np.sort(_edge_ids(f), axis=1))


def _edge_ids(faces: np.ndarray) -> np.ndarray:
    pairs = np.sort(faces[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2), axis=1)
    _, inverse = np.unique(pairs[:, 0] * (faces.max() + 1) + pairs[:, 1], return_inverse=True)
    return inverse.reshape(-1, 3)


def test_registration_fit_is_measured_on_the_fine_points() -> None:
    tpl = frames._template()
    pts = tpl.points * 0.9 + [3.0, -2.0, 1.0]
    s, r, t, fit = frames.register_template(pts)
    sub_f = pts[:: max(1, len(pts) // 2500)]
    assert fit == frames._median_mm(tpl, sub_f, s, r, t)
    # The template scaled and moved is found again (to the trimming's bias):
    # scale 1/0.9, no turn, the surfaces a fraction of a mm apart.
    assert s == pytest.approx(1 / 0.9, rel=2e-3)
    assert np.degrees(np.arccos(min(1.0, (np.trace(r) - 1) / 2))) < 0.2
    assert fit < 0.5


@pytest.mark.parametrize("index", [19, 126, 3])
def test_screening_starts_on_half_the_points_finds_the_same_plane(
    index: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Shape-model draws (two that once failed registration): the same APP to the last digit."""
    weights = np.clip(np.random.default_rng(0).standard_normal((index + 1, 26)), -2.5, 2.5)
    pts = np.asarray(atlas.evaluate(weights[index], subdivisions=8).pelvis.vertices)
    fast = frames.find_app(pts)
    monkeypatch.setattr(
        frames, "_best_start", functools.partial(frames._best_start, screen_every=1)
    )
    whole = frames.find_app(pts)
    assert np.array_equal(fast.tf_ras_input, whole.tf_ras_input)
    assert fast.method == whole.method
    assert fast.fit_mm == pytest.approx(whole.fit_mm, abs=0.3)


class _Node:
    other: _Node | None = None


def test_release_memory_freezes_once_and_still_collects_each_hips_cycles(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(batch, "_gc_frozen", False)
    gc.unfreeze()
    enabled = gc.isenabled()
    gc.disable()  # no automatic collection between the steps below
    try:
        batch._release_memory()  # the first hip: what is left is frozen
        frozen = gc.get_freeze_count()
        assert frozen > 0
        # A later hip's reference cycle (as a mesh and its caches make) is still freed ...
        a, b = _Node(), _Node()
        a.other, b.other = b, a
        gone = weakref.ref(a)
        del a, b
        assert gone() is not None
        batch._release_memory()
        assert gone() is None
        # ... and nothing more is frozen: a cache entry dropped later stays collectable.
        assert gc.get_freeze_count() == frozen
    finally:
        gc.unfreeze()
        if enabled:
            gc.enable()


def test_votes_made_once_for_both_grids_equal_votes_made_per_grid() -> None:
    pts, nrm = _points_and_normals(3, 2000, 25.0)
    radii = np.arange(14.0, 37.0)
    votes = lmk._centre_votes(pts, nrm, radii)
    for offset in (0.0, 1.5):
        shared = lmk._sphere_votes(pts, nrm, None, radii, 3.0, offset, votes=votes)
        own = lmk._sphere_votes(pts, nrm, None, radii, 3.0, offset)
        for x, y in zip(shared, own, strict=True):
            assert np.array_equal(x, y)
    # Vote k * n + i is point i on radius k.
    assert np.array_equal(votes[5 * 2000 + 7], pts[7] - radii[5] * nrm[7])


def _refine_gathering_every_step(points, normals, center, radius, *, weights, iterations):
    """refine_sphere as it was: the band's points gathered again at every step."""
    cos_max = np.cos(np.radians(25.0))
    tol = 3.0
    sphere = lmk.Sphere(np.asarray(center, float), float(radius), np.inf, 0)
    idx = np.zeros(0, np.int64)
    ref, ref_band, cand = None, 0.0, idx
    for _ in range(iterations):
        if ref is None or tol + lmk._sphere_shift(sphere, ref) > ref_band:
            ref, ref_band = sphere, tol + lmk.BAND_MARGIN_MM
            dist = np.linalg.norm(points - ref.center_mm, axis=1)
            cand = np.flatnonzero(np.abs(dist - ref.radius_mm) < ref_band)
        new = cand[lmk._on_sphere(points[cand], normals[cand], sphere, tol, cos_max)]
        if len(new) < 20 or np.array_equal(new, idx):
            break
        idx = new
        sphere = fit_sphere(points[idx], weights[idx])
        tol = max(0.75, 3.0 * sphere.rms_mm)
    return sphere, idx


def test_refine_sphere_gathering_once_per_band_equals_gathering_every_step() -> None:
    head = trimesh.creation.icosphere(5, radius=24.0)
    neck = trimesh.creation.cylinder(radius=14.0, height=60.0, sections=48)
    neck.apply_translation([0.0, 0.0, -40.0])
    femur = trimesh.util.concatenate([head, neck.subdivide_to_size(2.0)])
    pts, nrm, wts = lmk.surface_samples(femur, 1.0)
    rng = np.random.default_rng(4)
    pts = pts + rng.normal(scale=0.2, size=pts.shape)
    # Starts far enough off for the band to be renewed on the way.
    for start, r0 in (((6.0, -3.0, 4.0), 19.0), ((0.5, 0.5, -0.5), 24.5), ((-9.0, 2.0, 0.0), 30.0)):
        got, inl = lmk.refine_sphere(pts, nrm, start, r0, weights=wts, iterations=30)
        want, idx = _refine_gathering_every_step(pts, nrm, start, r0, weights=wts, iterations=30)
        assert np.array_equal(got.center_mm, want.center_mm) and got.radius_mm == want.radius_mm
        assert np.array_equal(np.flatnonzero(inl), idx)
        assert len(idx) > 1000


@pytest.mark.parametrize("shape", [(3,), (1, 3), (200_000, 3), (5000, 3, 3), (7, 2)])
def test_norms_equal_numpy_norm_to_the_last_bit(shape: tuple[int, ...]) -> None:
    rng = np.random.default_rng(6)
    # Lengths from 1e-3 to 1e3 mm, and rows whose parts differ by 1e6.
    v = rng.normal(size=shape) * np.exp(rng.uniform(-7.0, 7.0, size=shape))
    assert np.array_equal(norms(v), np.linalg.norm(v, axis=-1))
    with np.errstate(invalid="ignore", divide="ignore"):
        assert np.array_equal(unit(v), v / np.linalg.norm(v, axis=-1, keepdims=True))
    assert norms(np.array([3.0, 4.0, 12.0])) == 13.0


def _candidates_by_full_sort(points, normals, radii, bin_mm):
    """_vote_candidates as it was: every bin of both grids sorted by its votes."""
    grids = [lmk._sphere_votes(points, normals, None, radii, bin_mm, o) for o in (0.0, 1.5)]
    centres = np.vstack([g[0] for g in grids])
    rads = np.concatenate([g[1] for g in grids])
    score = np.concatenate([g[2] for g in grids])
    order = np.argsort(score, kind="stable")[::-1]
    return centres[order], rads[order]


@pytest.mark.parametrize("top", [1, 80, 5000])
def test_top_vote_candidates_equal_the_head_of_the_full_order(top: int) -> None:
    head = trimesh.creation.icosphere(4, radius=22.0)
    head.apply_translation([30.0, -12.0, 400.0])
    shaft = trimesh.creation.cylinder(radius=13.0, height=200.0, sections=40)
    femur = trimesh.util.concatenate([head, shaft])
    pts, faces = trimesh.sample.sample_surface(femur, 6000, seed=1)
    nrm = np.asarray(femur.face_normals)[faces]
    radii = np.arange(14.0, 37.0)
    want_c, want_r = _candidates_by_full_sort(pts, nrm, radii, 3.0)
    # Counted votes tie a lot: the order among ties must hold too.
    score = lmk._sphere_votes(pts, nrm, None, radii, 3.0)[2]
    assert len(np.unique(score)) < len(score) / 10
    got_c, got_r = lmk._vote_candidates(pts, nrm, radii, 3.0, top=top)
    assert np.array_equal(got_c, want_c[:top]) and np.array_equal(got_r, want_r[:top])
    all_c, all_r = lmk._vote_candidates(pts, nrm, radii, 3.0)
    assert np.array_equal(all_c, want_c) and np.array_equal(all_r, want_r)
    # The best candidate is the head.
    assert np.linalg.norm(got_c[0] - [30.0, -12.0, 400.0]) < 3.0 and got_r[0] == 22.0


@pytest.mark.parametrize(
    "shapes", [((3,), (3,)), ((4000, 3), (3,)), ((3,), (50, 3)), ((9, 8, 3), (8, 3))]
)
def test_cross3_equals_numpy_cross_to_the_last_bit(shapes: tuple[tuple[int, ...], ...]) -> None:
    rng = np.random.default_rng(9)
    a, b = (rng.normal(size=s) * np.exp(rng.uniform(-5.0, 5.0, size=s)) for s in shapes)
    got = cross3(a, b)
    assert got.shape == np.cross(a, b).shape
    assert np.array_equal(got, np.cross(a, b))
    assert np.array_equal(cross3([1.0, 0.0, 0.0], [0.0, 1.0, 0.0]), [0.0, 0.0, 1.0])


def _point_ids(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    ends = np.round(np.vstack([a, b]) / 1e-5).astype(np.int64)
    _, point = np.unique(ends, axis=0, return_inverse=True)
    point = point.ravel()
    return point[: len(a)], point[len(a) :], int(point.max()) + 1


def test_chained_loops_take_the_doubling_path_and_others_the_general_one() -> None:
    rng = np.random.default_rng(11)
    rings = [_ring((0, 0), 20.0, 300), _ring((60, 0), 5.0, 3), _ring((0, 0), 8.0, 41)]
    a = np.vstack([r[0] for r in rings])
    b = np.vstack([r[1] for r in rings])
    order = rng.permutation(len(a))
    a, b = a[order], b[order]
    assert lmk._chain_labels(*_point_ids(a, b)) is not None
    assert np.array_equal(lmk._loop_labels(a, b), _labels_by_scipy(a, b))
    # One segment turned (a non-manifold point), and an open chain: no chaining.
    turned_a, turned_b = a.copy(), b.copy()
    turned_a[5], turned_b[5] = b[5], a[5]
    open_a, open_b = a[1:], b[1:]
    for aa, bb in ((turned_a, turned_b), (open_a, open_b)):
        assert lmk._chain_labels(*_point_ids(aa, bb)) is None
        assert np.array_equal(lmk._loop_labels(aa, bb), _labels_by_scipy(aa, bb))


def _ball_on_a_stick() -> trimesh.Trimesh:
    head = trimesh.creation.icosphere(4, radius=22.0)
    head.apply_translation([0.0, 0.0, 60.0])
    shaft = trimesh.creation.cylinder(radius=12.0, height=120.0, sections=48)
    return trimesh.util.concatenate([head, shaft.subdivide_to_size(3.0)])


def test_head_sphere_is_find_heads_sphere_without_vertex_normals() -> None:
    femur = _ball_on_a_stick()
    sphere = lmk.head_sphere(femur)
    assert "vertex_normals" not in femur._cache.cache
    other = _ball_on_a_stick()
    again, inliers = lmk.find_head(other)
    assert "vertex_normals" in other._cache.cache  # the inliers' normals
    assert np.array_equal(sphere.center_mm, again.center_mm)
    assert (sphere.radius_mm, sphere.rms_mm, sphere.n) == (again.radius_mm, again.rms_mm, again.n)
    assert np.allclose(sphere.center_mm, [0.0, 0.0, 60.0], atol=0.2)
    assert sphere.radius_mm == pytest.approx(22.0, abs=0.2)
    assert inliers.sum() > 500
