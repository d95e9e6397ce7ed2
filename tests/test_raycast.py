"""RayCaster's first hits: exact on a sphere, and the same numbers as trimesh's own path."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh

from hipviz.raycast import RayCaster, RecentRays


@pytest.fixture(scope="module")
def ball():
    return trimesh.creation.icosphere(subdivisions=4, radius=20.0)


def trimesh_first_hit(mesh, origins, directions):
    """Distances and facing cosines through ``RayMeshIntersector.intersects_id``."""
    from trimesh.ray.ray_pyembree import RayMeshIntersector

    d = np.asarray(directions, dtype=float)
    o = np.broadcast_to(np.asarray(origins, dtype=float), d.shape)
    dist, cos = np.full(len(d), np.inf), np.full(len(d), np.nan)
    tri, ray, loc = RayMeshIntersector(mesh).intersects_id(
        o, d, multiple_hits=False, return_locations=True
    )
    dist[ray] = np.einsum("ij,ij->i", loc - o[ray], d[ray])
    cos[ray] = np.einsum("ij,ij->i", mesh.face_normals[tri], d[ray])
    return dist, cos


def test_from_the_centre_every_ray_meets_the_sphere(ball):
    rng = np.random.default_rng(1)
    d = rng.normal(size=(500, 3))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    dist, cos = RayCaster(ball).first_hit_facing(np.zeros(3), d)
    # an icosphere's faces lie inside the sphere, by at most the sagitta of an edge
    assert np.all((dist <= 20.0 + 1e-9) & (dist > 19.8))
    assert np.all(cos > 0.99)  # leaving the solid, along the outward normal


def test_rays_that_miss_are_inf_and_nan(ball):
    d = np.tile([1.0, 0.0, 0.0], (3, 1))
    dist, cos = RayCaster(ball).first_hit_facing([[0, 30, 0], [0, 0, 25], [-40, 0, 0]], d)
    assert np.isinf(dist[:2]).all() and np.isnan(cos[:2]).all()
    assert dist[2] == pytest.approx(20.0, abs=0.2) and cos[2] < -0.99  # enters the ball


@pytest.mark.parametrize("scale", [1.0, 2.5])  # unit and longer direction vectors
def test_same_numbers_as_trimesh(ball, scale):
    rng = np.random.default_rng(7)
    mesh = ball.copy()
    mesh.apply_transform(trimesh.transformations.random_rotation_matrix(rng.random(3)))
    d = rng.normal(size=(800, 3))
    d *= scale / np.linalg.norm(d, axis=1, keepdims=True)
    o = rng.normal(scale=15.0, size=(800, 3))
    caster = RayCaster(mesh)
    for _ in range(2):  # the first query builds the scene; the second reuses it
        dist, cos = caster.first_hit_facing(o, d)
        want_dist, want_cos = trimesh_first_hit(mesh, o, d)
        np.testing.assert_array_equal(dist, want_dist)
        np.testing.assert_array_equal(cos, want_cos)
    assert np.isfinite(dist).sum() > 300  # rays from inside, and those aimed at the ball
    assert caster.first_hit(o[0], np.zeros((0, 3))).shape == (0,)


@pytest.mark.parametrize("piece", [1000, None])  # pieces of 1000 triangles; the default size
def test_a_scene_filled_in_pieces_gives_trimesh_numbers(piece, monkeypatch):
    """Embree's scene is filled in pieces (embreex holds the interpreter's lock
    while it copies a piece): the triangles each ray meets, and so every
    distance and cosine, are those of trimesh's one-piece scene."""
    from hipviz import raycast

    if piece is not None:
        monkeypatch.setattr(raycast, "SCENE_PIECE_TRIANGLES", piece)
    mesh = trimesh.creation.icosphere(subdivisions=6, radius=20.0)  # 81,920 triangles
    rng = np.random.default_rng(11)
    d = rng.normal(size=(3000, 3))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    o = rng.normal(scale=12.0, size=(3000, 3))
    caster = RayCaster(mesh)
    dist, cos = caster.first_hit_facing(o, d)
    want_dist, want_cos = trimesh_first_hit(mesh, o, d)
    np.testing.assert_array_equal(dist, want_dist)
    np.testing.assert_array_equal(cos, want_cos)
    n = raycast.SCENE_PIECE_TRIANGLES
    assert len(caster._scene.starts) == -(-len(mesh.faces) // n) > 1
    assert np.isfinite(dist).sum() > 1500  # rays from inside, and those aimed at the ball


class CountedCaster:
    """``first_hit`` of a caster, counting the rays it casts."""

    def __init__(self, mesh):
        self.caster, self.rays, self.calls = RayCaster(mesh), 0, 0

    def __call__(self, origins, directions):
        self.calls += 1
        self.rays += len(directions)
        return self.caster.first_hit(origins, directions)


def test_recent_rays_give_the_numbers_of_a_new_cast(ball):
    rng = np.random.default_rng(3)
    d = rng.normal(size=(2000, 3))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    counted = CountedCaster(ball)
    recent = RecentRays(counted, min_rays=1000, size=2)
    fresh = RayCaster(ball)
    o = np.array([1.0, 2.0, -3.0])
    first = recent(o, d)
    np.testing.assert_array_equal(first, fresh.first_hit(o, d))
    first[:] = -1.0  # the caller's copy: the kept answer must not change with it
    np.testing.assert_array_equal(recent(o, d.copy()), fresh.first_hit(o, d))
    assert counted.calls == 1  # the same rays again: not cast again
    # One direction changed, off the rows the lookup key samples: a new cast, a new answer.
    d2 = d.copy()
    d2[1] = [0.0, 0.0, 1.0]
    got = recent(o, d2)
    assert counted.calls == 2
    np.testing.assert_array_equal(got, fresh.first_hit(o, d2))
    # Another origin: cast.
    np.testing.assert_array_equal(recent(o + 0.5, d), fresh.first_hit(o + 0.5, d))
    assert counted.calls == 3
    # Only `size` sets are kept: the first one (o, d) went when (o + 0.5, d) came.
    recent(o, d)
    assert counted.calls == 4
    # Small sets are always cast.
    recent(o, d[:10])
    recent(o, d[:10])
    assert counted.calls == 6
