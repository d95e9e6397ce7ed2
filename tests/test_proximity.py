"""The bone-to-bone gap: exact on spheres, and the same as a brute-force search."""

import numpy as np
import pytest
import trimesh

from hipviz.proximity import min_gap_mm


def _ball(radius, centre, subdivisions=4):
    return trimesh.creation.icosphere(subdivisions=subdivisions, radius=radius).apply_translation(
        centre
    )


@pytest.mark.parametrize(("distance", "gap"), [(25.0, 5.0), (20.5, 0.5), (15.0, -5.0)])
def test_two_balls(distance, gap):
    a = _ball(10.0, [0, 0, 0])
    b = _ball(10.0, [distance, 0, 0])
    # flat facets sit up to 0.06 mm inside a radius-10 icosphere of this resolution
    assert min_gap_mm(a, b) == pytest.approx(gap, abs=0.15)


def test_matches_brute_force(rng):
    a = _ball(12.0, [0, 0, 0], subdivisions=3)
    b = trimesh.creation.box(extents=[30.0, 8.0, 5.0])
    for _ in range(5):
        tf = trimesh.transformations.random_rotation_matrix(rng.random(3))
        tf[:3, 3] = rng.normal(0.0, 4.0, 3) + [22.0, 0.0, 0.0]
        moved = b.copy().apply_transform(tf)
        brute = []
        for src, dst in ((a, moved), (moved, a)):
            _, dist, _ = trimesh.proximity.closest_point(dst, src.vertices)
            inside = dst.contains(src.vertices)
            brute.append(np.where(inside, -dist, dist).min())
        assert min_gap_mm(a, moved) == pytest.approx(min(brute), abs=1e-9)
