"""Tests of hipviz.atlas: the LLP26 shape model evaluated into watertight meshes."""

import io
import json
import pickle
import time

import numpy as np
import pytest
from scipy.spatial import cKDTree

from hipviz import atlas
from hipviz.errors import HipvizError, InputError

# Measured on the mean shape at 8 subdivisions (mm^3): hemipelves ~3.1e5 each, sacrum ~2.3e5,
# left femur ~4.8e5. The bounds leave room for resolution and for moderate shape weights.
HEMIPELVIS_VOLUME = (2.0e5, 4.5e5)
SACRUM_VOLUME = (1.5e5, 3.5e5)
FEMUR_VOLUME = (3.0e5, 6.5e5)


def _bodies(mesh):
    return sorted(mesh.split(only_watertight=False), key=lambda b: b.centroid[0])


def _geof_nodes(sub_path):
    with open(atlas._model_path(sub_path)) as fh:
        params = json.load(fh)["field_parameters"]
    return np.array(
        [[float(params[f"node {i:08d}"][f"dim {d}"]) for d in range(3)] for i in range(len(params))]
    )


def test_node_numbering_reproduces_node_counts():
    for body, expected in (("pelvis", 1946), ("femur_left", 634)):
        nodes = np.concatenate([b.nodes.ravel() for b in atlas._mesh_topology(body)])
        assert np.unique(nodes).size == expected
        assert nodes.min() == 0 and nodes.max() == expected - 1
    coords = atlas.node_coordinates()
    assert coords["pelvis"].shape == (1946, 3)
    assert coords["femur_left"].shape == (634, 3)


def test_element_types_and_bases():
    pelvis = {b.basis: len(b.element_ids) for b in atlas._mesh_topology("pelvis")}
    femur = {b.basis: len(b.element_ids) for b in atlas._mesh_topology("femur_left")}
    assert pelvis == {"quad_L3_L3": 172, "simplex_L3_L3": 88}
    assert femur == {"quad_L4_L3": 6, "quad_L4_L4": 22, "simplex_L4_L4": 26}
    # Lagrange bases: partition of unity, and each basis function is 1 at its own node
    for basis, n in (("quad_L4_L3", 12), ("simplex_L4_L4", 4), ("simplex_L3_L3", 3)):
        mat = atlas._sampling(basis, n)[0]
        np.testing.assert_allclose(mat.sum(axis=1), 1.0, atol=1e-12)
    tri = atlas._sampling("simplex_L3_L3", 3)[0]
    np.testing.assert_allclose(tri, np.eye(10), atol=1e-12)


def test_pickle_mean_matches_geof_mean_shape():
    coords = atlas.node_coordinates()
    pelvis = _geof_nodes("atlas_meshes/pelvis_combined_cubic_mean_rigid_LLP26.geof")
    femur = _geof_nodes("atlas_meshes/femur_left_mean_rigid_LLP26.geof")
    assert np.abs(coords["pelvis"] - pelvis).max() < 1e-9
    assert np.abs(coords["femur_left"] - femur).max() < 1e-9


def test_shape_model_is_cached_readonly_and_orthonormal():
    model = atlas.shape_model()
    assert atlas.shape_model() is model
    assert model.mean.shape == (9675,)
    assert model.modes.shape == (9675, atlas.N_MODES)
    assert model.variances.shape == (atlas.N_MODES,)
    assert not model.mean.flags.writeable and not model.modes.flags.writeable
    np.testing.assert_allclose(model.modes.T @ model.modes, np.eye(atlas.N_MODES), atol=1e-10)
    assert np.all(np.diff(model.variances) <= 0)
    assert model.variances[0] > 1e4  # mode 1 SD ~ 246 mm over all coordinates


def test_variances_and_sd_scaling():
    model = atlas.shape_model()
    raw = atlas._load_pickle(atlas._model_path("shape_models/LLP26_rigid.pc"))
    # projectedWeights[k, s]: training subject s on mode k (mm); its variance is weights[k]
    scores = raw["projectedWeights"]
    np.testing.assert_allclose(
        np.var(scores, axis=1, ddof=1), model.variances, rtol=1e-8, atol=1e-9
    )  # mode 26 is null: 26 training shapes span 25 modes
    # one SD of mode 1 moves pelvis node i by modes[[i, 3225 + i, 6450 + i], 0] * sqrt(var)
    moved = atlas.node_coordinates([1.0])["pelvis"] - atlas.node_coordinates()["pelvis"]
    for i in (0, 1004, 1945):
        expected = model.modes[[i, 3225 + i, 6450 + i], 0] * np.sqrt(model.variances[0])
        np.testing.assert_allclose(moved[i], expected, atol=1e-9)
    femur = (
        atlas.node_coordinates([0.0, -2.0])["femur_left"] - atlas.node_coordinates()["femur_left"]
    )
    i = 1946 + 100
    expected = model.modes[[i, 3225 + i, 6450 + i], 1] * -2.0 * np.sqrt(model.variances[1])
    np.testing.assert_allclose(femur[100], expected, atol=1e-9)


@pytest.mark.parametrize("subdivisions", [4, 12])
def test_meshes_are_closed_and_outward(subdivisions):
    geom = atlas.evaluate(subdivisions=subdivisions)
    for mesh in (geom.pelvis, geom.femur_left):
        assert mesh.is_watertight
        assert mesh.is_winding_consistent
        assert mesh.volume > 0
    pelvis_bodies = _bodies(geom.pelvis)
    assert len(pelvis_bodies) == 3
    assert len(geom.femur_left.split(only_watertight=False)) == 1
    assert all(b.is_watertight and b.volume > 0 for b in pelvis_bodies)
    # hemipelves have the obturator foramen (genus 1), the sacrum and femur are spheres
    assert [b.euler_number for b in pelvis_bodies] == [0, 2, 0]
    assert geom.femur_left.euler_number == 2
    n = subdivisions
    assert len(geom.pelvis.faces) == 172 * 2 * n**2 + 88 * n**2
    assert len(geom.femur_left.faces) == 28 * 2 * n**2 + 26 * n**2


def test_volumes_in_plausible_range():
    geom = atlas.evaluate(subdivisions=8)
    right, sacrum, left = _bodies(geom.pelvis)
    for body in (right, left):
        assert HEMIPELVIS_VOLUME[0] < body.volume < HEMIPELVIS_VOLUME[1]
    assert SACRUM_VOLUME[0] < sacrum.volume < SACRUM_VOLUME[1]
    assert FEMUR_VOLUME[0] < geom.femur_left.volume < FEMUR_VOLUME[1]
    # left and right hemipelvis of the mean shape are close to symmetric
    assert abs(right.volume - left.volume) / left.volume < 0.05
    # resolution changes the volume only slightly (curved elements, chordal error)
    fine = atlas.evaluate(subdivisions=16)
    assert abs(fine.femur_left.volume - geom.femur_left.volume) / fine.femur_left.volume < 0.02


def test_welding_is_complete_and_exact():
    geom = atlas.evaluate(subdivisions=12)
    coords = atlas.node_coordinates()
    for mesh, nodes in ((geom.pelvis, coords["pelvis"]), (geom.femur_left, coords["femur_left"])):
        tree = cKDTree(mesh.vertices)
        # no two distinct vertices coincide: nothing was left unwelded
        assert len(tree.query_pairs(1e-6)) == 0
        # 12 is a multiple of both degrees (3, 4): every model node is a mesh vertex
        dist, _ = tree.query(nodes)
        assert dist.max() < 1e-9
        # and no degenerate triangles
        assert mesh.area_faces.min() > 1e-6


def test_landmarks_on_expected_sides():
    geom = atlas.evaluate(subdivisions=12)
    lm = geom.landmarks
    assert set(lm) == set(atlas.LANDMARK_NODES)
    assert all(v.shape == (3,) for v in lm.values())
    # +x is subject left
    for name in ("asis", "psis", "pubic_tubercle"):
        assert lm[f"{name}_left"][0] > lm[f"{name}_right"][0] + 40.0
    # +z superior: ASIS well above the pubic tubercles
    for side in ("left", "right"):
        assert lm[f"asis_{side}"][2] > lm[f"pubic_tubercle_{side}"][2] + 50.0
        # +y posterior: ASIS and pubic tubercle anterior of the PSIS
        assert lm[f"asis_{side}"][1] < lm[f"psis_{side}"][1] - 80.0
        assert lm[f"pubic_tubercle_{side}"][1] < lm[f"psis_{side}"][1] - 80.0
    # the landmarks are surface points (node positions), vertices at this resolution
    dist, _ = cKDTree(geom.pelvis.vertices).query(np.array(list(lm.values())))
    assert dist.max() < 1e-9
    # left landmarks on the left hemipelvis (largest x centroid), right ones on the right
    right, _, left = _bodies(geom.pelvis)
    for name, point in lm.items():
        body = left if name.endswith("_left") else right
        assert cKDTree(body.vertices).query(point)[0] < 1e-9


def test_mode_one_changes_size_and_stays_closed():
    lengths = {}
    for w in (-3.0, 3.0):
        geom = atlas.evaluate([w])
        assert geom.pelvis.is_watertight and geom.femur_left.is_watertight
        assert len(geom.pelvis.split(only_watertight=False)) == 3
        assert geom.femur_left.volume > 0
        lengths[w] = np.ptp(geom.femur_left.vertices[:, 2])
        assert geom.weights_sd[0] == w and geom.weights_sd.shape == (atlas.N_MODES,)
    assert abs(lengths[-3.0] - lengths[3.0]) > 50.0  # ~92 mm measured


def test_random_shapes_stay_closed():
    rng = np.random.default_rng(7)
    for _ in range(3):
        geom = atlas.evaluate(rng.uniform(-3.0, 3.0, atlas.N_MODES), subdivisions=6)
        for mesh in (geom.pelvis, geom.femur_left):
            assert mesh.is_watertight and mesh.is_winding_consistent
        assert [b.volume > 0 for b in _bodies(geom.pelvis)] == [True] * 3
        assert geom.femur_left.volume > 0


def test_evaluate_is_fast():
    atlas.evaluate(subdivisions=8)  # fills the caches
    start = time.perf_counter()
    atlas.evaluate([1.0, -1.0, 0.5], subdivisions=8)
    assert time.perf_counter() - start < 1.0


def test_mirror_x():
    femur = atlas.evaluate(subdivisions=6).femur_left
    right = atlas.mirror_x(femur)
    assert right.is_watertight and right.is_winding_consistent
    assert right.volume == pytest.approx(femur.volume, rel=1e-9)
    np.testing.assert_allclose(right.bounds[:, 0], -femur.bounds[::-1, 0])
    np.testing.assert_allclose(right.bounds[:, 1:], femur.bounds[:, 1:])
    shifted = atlas.mirror_x(femur, x0=30.0)
    np.testing.assert_allclose(shifted.bounds[:, 0], 60.0 - femur.bounds[::-1, 0])
    assert shifted.volume > 0
    # the input is untouched
    assert femur.bounds[0, 0] > 0


@pytest.mark.parametrize(
    ("weights", "message"),
    [
        ([np.nan], "NaN or infinite"),
        ([0.0, np.inf], "NaN or infinite"),
        ([6.0], "outside"),
        ([0.0, -5.5], r"weights_sd\[1\]"),
        (np.zeros(27), "27 values"),
        (np.zeros((2, 3)), "one-dimensional"),
        (["a"], "sequence of numbers"),
    ],
)
def test_bad_weights_raise_input_error(weights, message):
    with pytest.raises(InputError, match=message):
        atlas.node_coordinates(weights)
    with pytest.raises(InputError, match=message):
        atlas.evaluate(weights)


@pytest.mark.parametrize("subdivisions", [0, 41, 2.5, True, "8"])
def test_bad_subdivisions_raise_input_error(subdivisions):
    with pytest.raises(InputError, match="subdivisions must be an integer from 1 to 40"):
        atlas.evaluate(subdivisions=subdivisions)


def test_short_weights_are_zero_padded():
    coords = atlas.node_coordinates([0.0] * 5)
    mean = atlas.node_coordinates()
    np.testing.assert_array_equal(coords["pelvis"], mean["pelvis"])
    assert atlas.evaluate([1.0], subdivisions=2).weights_sd.tolist() == [1.0] + [0.0] * 25


def test_restricted_unpickler_refuses_code(tmp_path):
    marker = tmp_path / "pwned"
    payload = f"cos\nsystem\n(S'touch {marker}'\ntR.".encode()
    evil = tmp_path / "evil.pc"
    evil.write_bytes(payload)
    with pytest.raises(pickle.UnpicklingError, match=r"os\.system"):
        atlas._load_pickle(evil)
    assert not marker.exists()
    with pytest.raises(pickle.UnpicklingError, match="builtins.eval"):
        atlas._RestrictedUnpickler(io.BytesIO(b"cbuiltins\neval\n(S'1'\ntR.")).load()


def test_restricted_unpickler_loads_numpy_arrays(tmp_path):
    data = {"mean": np.arange(6.0), "modes": np.eye(3), "n": np.float64(2.5), "none": None}
    path = tmp_path / "ok.pc"
    path.write_bytes(pickle.dumps(data, protocol=4))
    loaded = atlas._load_pickle(path)
    np.testing.assert_array_equal(loaded["mean"], data["mean"])
    np.testing.assert_array_equal(loaded["modes"], data["modes"])
    assert loaded["n"] == 2.5 and loaded["none"] is None


def _tetrahedron_blocks(drop_last_triangle=False, inward=False):
    """Unit tetrahedron: face ABD a cubic quad with its top side collapsed onto D, the
    other three faces cubic triangles; global nodes numbered by position."""
    a, b, c, d = (np.array(p, dtype=float) for p in ((0, 0, 0), (1, 0, 0), (0, 1, 0), (0, 0, 1)))
    numbers: dict[tuple, int] = {}

    def node(point):
        return numbers.setdefault(tuple(np.round(point, 9)), len(numbers))

    quad = [
        node((1 - j / 3) * ((1 - i / 3) * a + i / 3 * b) + j / 3 * d)
        for j in range(4)
        for i in range(4)
    ]
    tris = []
    faces = [(a, d, c), (a, c, b), (b, c, d)]  # outward winding, like the quad (a, b, d)
    if inward:  # reverse every element: swapping the two parameter directions
        quad = [quad[4 * i + j] for j in range(4) for i in range(4)]
        faces = [(p0, p2, p1) for p0, p1, p2 in faces]
    for p0, p1, p2 in faces:
        tris.append(
            [
                node(p0 + i / 3 * (p1 - p0) + j / 3 * (p2 - p0))
                for j in range(4)
                for i in range(4 - j)
            ]
        )
    if drop_last_triangle:
        tris = tris[:-1]
    blocks = (
        atlas._ElementBlock("quad_L3_L3", np.array([0]), np.array([quad])),
        atlas._ElementBlock("simplex_L3_L3", np.arange(1, 1 + len(tris)), np.array(tris)),
    )
    coords = np.array(list(numbers))
    return blocks, coords


@pytest.mark.parametrize("inward", [False, True])
def test_weld_handles_collapsed_element_side(inward):
    blocks, coords = _tetrahedron_blocks(inward=inward)
    # 4 corners, 2 nodes inside each of 6 edges, 1 inside each triangle, 4 inside the quad
    assert coords.shape == (4 + 6 * 2 + 3 + 4, 3)
    n = 5
    tess = atlas._weld(blocks, n, "tetrahedron")
    mesh = atlas._surface(blocks, tess, coords, n)
    assert mesh.is_watertight and mesh.is_winding_consistent
    assert mesh.volume == pytest.approx(1.0 / 6.0, rel=1e-6)  # nodes rounded to 1e-9
    # the n triangles along the collapsed side are dropped, nothing else
    assert len(mesh.faces) == (2 * n**2 - n) + 3 * n**2
    assert mesh.area_faces.min() > 0


def test_weld_refuses_open_mesh():
    blocks, _ = _tetrahedron_blocks(drop_last_triangle=True)
    with pytest.raises(HipvizError, match="not shared by exactly two elements"):
        atlas._weld(blocks, 4, "open tetrahedron")
