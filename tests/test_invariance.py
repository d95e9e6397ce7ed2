"""Measures move with the bone: rigid motions change nothing, a mirror swaps the side."""

import numpy as np
import pytest
import trimesh
from scipy.spatial.transform import Rotation

from hipviz import hip

ANGLES = (
    "lcea_deg",
    "acea_deg",
    "pcea_deg",
    "acetabular_version_deg",
    "acetabular_version_cranial_deg",
    "neck_shaft_deg",
    "neck_shaft_projected_deg",
    "femoral_version_deg",
    "alpha_deg",
)


def moved(mesh, tf):
    out = trimesh.Trimesh(
        mesh.vertices @ tf[:3, :3].T + tf[:3, 3], mesh.faces.copy(), process=False
    )
    if np.linalg.det(tf[:3, :3]) < 0:
        out.invert()
    return out


def random_transforms(count, *, mirror=False, seed=0):
    """Deterministic random rigid motions (and mirrors), large rotations and shifts."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        tf = np.eye(4)
        tf[:3, :3] = Rotation.random(random_state=rng).as_matrix()
        if mirror:
            tf[:3, :3] = tf[:3, :3] @ np.diag([-1.0, 1.0, 1.0])
        tf[:3, 3] = rng.uniform(-500, 500, 3)
        out.append(tf)
    return out


@pytest.fixture(scope="module")
def reference(builtin_left):
    return hip.analyze(builtin_left.pelvis, builtin_left.femur).as_dict()


def compare(a: dict, b: dict):
    for key in ANGLES:
        assert a[key] == pytest.approx(b[key], abs=0.5), key
    assert a["head_radius_mm"] == pytest.approx(b["head_radius_mm"], abs=0.2)
    assert a["extrusion_index_pct"] == pytest.approx(b["extrusion_index_pct"], abs=1.0)
    for k, v in b["coverage_pct"].items():
        assert a["coverage_pct"][k] == pytest.approx(v, abs=0.5), k


@pytest.mark.parametrize("tf", random_transforms(3), ids=lambda _: "rigid")
def test_rigid_motion_changes_no_measure(builtin_left, reference, tf):
    a = hip.analyze(moved(builtin_left.pelvis, tf), moved(builtin_left.femur, tf)).as_dict()
    assert a["side"] == reference["side"] == "left"
    compare(a, reference)
    # The head centre is reported in the input's own coordinates: it moves with the bone.
    np.testing.assert_allclose(
        a["head_center_mm"], tf[:3, :3] @ reference["head_center_mm"] + tf[:3, 3], atol=0.2
    )


@pytest.mark.parametrize("tf", random_transforms(2, mirror=True, seed=1), ids=lambda _: "mirror")
def test_mirror_swaps_side_only(builtin_left, reference, tf):
    a = hip.analyze(moved(builtin_left.pelvis, tf), moved(builtin_left.femur, tf)).as_dict()
    assert a["side"] == "right"
    compare(a, reference)
