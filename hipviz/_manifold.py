"""The bridge between trimesh meshes and manifold3d solids (cuts, unions, shapes)."""

from __future__ import annotations

import numpy as np
import trimesh

from ._typing import ArrayLike
from .errors import InputError


def to_manifold(mesh: trimesh.Trimesh):
    """manifold3d.Manifold of a closed mesh, with a fresh original id.

    Raises
    ------
    InputError
        The mesh is not a closed 2-manifold (holes, non-manifold edges).
    """
    import manifold3d

    m = manifold3d.Manifold(
        manifold3d.Mesh(
            vert_properties=np.asarray(mesh.vertices, dtype=np.float32),
            tri_verts=np.asarray(mesh.faces, dtype=np.uint32),
        )
    )
    if m.status() != manifold3d.Error.NoError or m.is_empty():
        msg = (
            "the bone surface is not closed (holes or non-manifold edges), so it cannot "
            f"be cut ({m.status().name}); repair it, e.g. fill holes, and try again"
        )
        raise InputError(msg)
    return m.as_original()


def from_manifold(m) -> tuple[trimesh.Trimesh, np.ndarray]:
    """(mesh, (n_faces,) original id of the solid each face came from) of a manifold."""
    mesh = m.to_mesh()
    faces = np.asarray(mesh.tri_verts, dtype=np.int64).reshape(-1, 3)
    ids = np.zeros(len(faces), dtype=np.int64)
    run_index = np.asarray(mesh.run_index, dtype=np.int64) // 3
    for k, oid in enumerate(np.asarray(mesh.run_original_id)):
        ids[run_index[k] : run_index[k + 1]] = oid
    verts = np.asarray(mesh.vert_properties, dtype=float)[:, :3]
    return trimesh.Trimesh(verts, faces, process=False), ids


def affine34(tf: ArrayLike) -> list[list[float]]:
    """The (3, 4) affine part of a (4, 4) transform, as manifold3d takes it."""
    return np.asarray(tf, dtype=float)[:3, :].tolist()
