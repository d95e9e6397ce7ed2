"""Distances between bones: the smallest gap, negative when they overlap."""

from __future__ import annotations

import numpy as np
import trimesh
from scipy.spatial import cKDTree

from ._typing import ArrayLike
from .landmarks import _faces_near


def _one_way(src: trimesh.Trimesh, dst: trimesh.Trimesh, sel: np.ndarray) -> float:
    pts = np.asarray(src.vertices)[sel]
    if len(pts) == 0:
        return float("inf")
    inside = dst.contains(pts) if dst.is_watertight else np.zeros(len(pts), bool)
    if inside.any():  # the deepest vertex inside gives the overlap
        _, dist, _ = trimesh.proximity.closest_point(dst, pts[inside])
        return -float(dist.max())
    # A surface point lies within one edge length of a vertex, so a vertex of
    # `src` whose nearest `dst` vertex is farther than (the smallest such
    # distance + the longest edge) cannot be the closest: only the rest need
    # the exact (slow) closest-point query.
    to_vertex, _ = cKDTree(dst.vertices).query(pts)
    reach = float(dst.edges_unique_length.max())
    near = to_vertex <= to_vertex.min() + reach
    # The closest surface point of each queried vertex lies within its
    # nearest-vertex distance: only faces that come that close to one of them
    # take part, which spares building a search tree over the whole bone.
    pts = pts[near]
    middle = 0.5 * (pts.min(axis=0) + pts.max(axis=0))
    span = 0.5 * float(np.linalg.norm(pts.max(axis=0) - pts.min(axis=0)))
    faces = _faces_near(dst, middle, span + float(to_vertex[near].max()))
    part = trimesh.Trimesh(dst.vertices, np.asarray(dst.faces)[faces], process=False)
    _, dist, _ = trimesh.proximity.closest_point(part, pts)
    return float(dist.min())


def min_gap_mm(
    a: trimesh.Trimesh,
    b: trimesh.Trimesh,
    *,
    near_mm: ArrayLike | None = None,
    radius_mm: float = 60.0,
) -> float:
    """Smallest distance between two bone surfaces, mm; negative = depth of overlap.

    Vertices of each mesh are tested against the other surface (closest
    point, and inside/outside for closed meshes), so the result is exact to
    the mesh resolution.

    Parameters
    ----------
    a, b : trimesh.Trimesh
        Bones in the same coordinates, mm.
    near_mm : (3,) float, optional
        Only vertices within ``radius_mm`` of this point take part (e.g. the
        head centre), which keeps the query fast.
    """

    def select(m: trimesh.Trimesh) -> np.ndarray:
        if near_mm is None:
            return np.ones(len(m.vertices), bool)
        return np.linalg.norm(np.asarray(m.vertices) - near_mm, axis=1) <= radius_mm

    return min(_one_way(a, b, select(a)), _one_way(b, a, select(b)))
