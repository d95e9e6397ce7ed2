"""First-hit ray distances against a triangle mesh.

Coverage, rim edges and the alpha angle are all "how far does a ray from the
head centre travel before it meets bone". That one question is answered here,
by Embree through trimesh (``embreex``): some milliseconds for 10k rays on a
100k-triangle pelvis, where trimesh's pure-numpy fallback takes seconds and
gigabytes. hipviz therefore refuses to fall back silently.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable

import numpy as np
import trimesh

from ._typing import ArrayLike, FloatArray
from .errors import HipvizError


class RayCaster:
    """Answer first-hit distances for one mesh, in the mesh's own coordinates.

    Embree builds its acceleration structure on the first query (about 50 ms
    for a 100k-triangle mesh, 150 ms for 300k, 0.2 s for a million, plus
    filling the scene: 0.1 s for 100k triangles, 1 s for a million); keep one
    caster per mesh and reuse it.
    """

    def __init__(self, mesh: trimesh.Trimesh):
        try:
            from embreex import rtcore_scene  # noqa: F401 - checked here, used in _EmbreeScene
        except ImportError as exc:  # pragma: no cover - depends on the platform
            msg = (
                "Embree ray casting is not available (pip install embreex); "
                f"hipviz needs it for coverage and rim measures ({exc})"
            )
            raise HipvizError(msg) from exc
        self.mesh = mesh
        self._scene: _EmbreeScene | None = None  # built on the first query
        self._planes: tuple[FloatArray, FloatArray] = (np.zeros((0, 3)), np.zeros((0, 3)))

    def first_hit(self, origins: ArrayLike, directions: ArrayLike) -> FloatArray:
        """Distance along each ray to the first surface it meets, ``inf`` on a miss.

        Parameters
        ----------
        origins : (n, 3) or (3,) float
            Ray starts, mm, in the mesh's coordinates.
        directions : (n, 3) float
            Unit ray directions in the same coordinates.

        Returns
        -------
        (n,) float
            Distances in mm.
        """
        return self._cast(origins, directions, facing=False)[0]

    def first_hit_facing(
        self, origins: ArrayLike, directions: ArrayLike
    ) -> tuple[FloatArray, FloatArray]:
        """First-hit distances, and whether each ray meets the surface from outside.

        Returns
        -------
        distances : (n,) float
            As :meth:`first_hit`.
        cos : (n,) float
            Cosine between the ray and the outward normal of the triangle hit:
            negative when the ray enters the solid, positive when it leaves it
            (its origin was inside); NaN on a miss.
        """
        return self._cast(origins, directions, facing=True)

    def _cast(self, origins, directions, *, facing: bool):
        d = np.atleast_2d(np.asarray(directions, dtype=float))
        o = np.broadcast_to(np.asarray(origins, dtype=float), d.shape)
        dist = np.full(len(d), np.inf)
        cos = np.full(len(d), np.nan) if facing else None
        if len(d) == 0:
            return dist, cos
        tri, ray, loc = self._first_hits(o, d)
        if len(ray):
            dist[ray] = np.einsum("ij,ij->i", loc - o[ray], d[ray])
            if facing:
                cos[ray] = np.einsum("ij,ij->i", self._planes[1][tri], d[ray])
        return dist, cos

    def _first_hits(self, o: FloatArray, d: FloatArray):
        """(triangles, rays, points) of the rays that hit, as trimesh's ``intersects_id``.

        The same arithmetic as trimesh's ``RayMeshIntersector.intersects_id(...,
        multiple_hits=False, return_locations=True)`` (the same numbers), without its
        per-call cost: trimesh checks the mesh's cache hash (hashing every
        array) and rebuilds the triangle planes on each call, which is most
        of the time of the few-hundred-ray casts a measure makes (about 100
        per fragment move). The mesh is not changed after the caster is made.
        """
        if self._scene is None:
            self._scene = _EmbreeScene(self.mesh.vertices, self.mesh.faces, 100.0 / self.mesh.scale)
            self._planes = (
                np.ascontiguousarray(self.mesh.triangles[:, 0, :], dtype=np.float64),
                np.ascontiguousarray(self.mesh.face_normals, dtype=np.float64),
            )
        ray_o = np.array(o, dtype=np.float64)
        ray_d = trimesh.util.unitize(np.array(d, dtype=np.float64))
        query = self._scene.first_triangles(ray_o, ray_d)
        rays = np.flatnonzero(query != -1)
        tris = query[rays]
        plane_o, plane_n = self._planes[0][tris], self._planes[1][tris]
        lo, ld = ray_o[rays], ray_d[rays]
        # trimesh.intersections.planes_lines: rays (nearly) parallel to the
        # triangle's plane are dropped
        ori = trimesh.util.diagonal_dot(plane_o - lo, plane_n)
        dirs = trimesh.util.diagonal_dot(ld, plane_n)
        valid = np.abs(dirs) > 1e-5
        t = np.divide(ori[valid], dirs[valid])
        loc = ld[valid] * t.reshape((-1, 1))
        loc += lo[valid]
        return tris[valid], rays[valid], loc


#: Triangles per Embree geometry of a scene. embreex copies a mesh into
#: Embree element by element while holding the interpreter's lock (about 1 s
#: for a million triangles, during which no other thread runs: a server's
#: event loop stops). Given in pieces, the lock is free between them (each
#: about 15 ms); the scene is one, so its queries cost the same.
SCENE_PIECE_TRIANGLES = 16_384


class _EmbreeScene:
    """An Embree scene of one triangle mesh, filled in pieces, and its first-hit query.

    Scaled as trimesh's ray intersector scales it (origin at the lowest
    corner, ``scale`` times), so the float32 numbers Embree sees, and the
    triangles it reports, are those of trimesh's.

    Parameters
    ----------
    vertices : (n, 3) float
    faces : (m, 3) int
    scale : float
        Factor applied after moving the lowest corner to the origin.
    """

    def __init__(self, vertices: ArrayLike, faces: ArrayLike, scale: float):
        from embreex import rtcore_scene
        from embreex.mesh_construction import TriangleMesh

        v = np.asarray(vertices, dtype=np.float64)
        f = np.asarray(faces)
        self.origin = v.min(axis=0)
        self.scale = float(scale)
        scaled = ((v - self.origin) * self.scale).astype(np.float32)
        self.scene = rtcore_scene.EmbreeScene()
        starts = range(0, len(f), SCENE_PIECE_TRIANGLES)
        for start in starts:
            piece = f[start : start + SCENE_PIECE_TRIANGLES]
            used, inverse = np.unique(piece, return_inverse=True)
            TriangleMesh(
                scene=self.scene,
                vertices=scaled[used],
                indices=inverse.reshape(-1, 3).astype(np.int32),
            )
        #: First triangle of each geometry (Embree numbers geometries 0, 1, ... as added).
        self.starts = np.asarray(starts, dtype=np.int64)

    def first_triangles(self, origins: FloatArray, directions: FloatArray) -> np.ndarray:
        """(n,) int: the triangle each ray meets first, -1 on a miss.

        ``origins`` and unit ``directions`` (n, 3) are in the mesh's coordinates.
        The first query builds Embree's structure (about 0.2 s for a million
        triangles, holding the interpreter's lock).
        """
        scaled = ((origins - self.origin) * self.scale).astype(np.float32)
        hit = self.scene.run(scaled, directions.astype(np.float32), output=1)
        geom = hit["geomID"].astype(np.int64)
        out = np.full(len(geom), -1, dtype=np.int64)
        ok = (geom >= 0) & (geom < len(self.starts))
        out[ok] = self.starts[geom[ok]] + hit["primID"][ok]
        return out


class RecentRays:
    """First-hit distances that remember the last few large ray sets cast.

    A bone that does not move is asked the same rays move after move (the
    coverage directions and the coarse rim sweeps from the head centre,
    which a turn of the fragment about that centre leaves in place). The
    answers are kept for the last ``size`` ray sets of at least ``min_rays``
    rays, and given again only for the very same origins and directions
    (bytewise), so they are the numbers a new cast would give.

    Parameters
    ----------
    first_hit : callable
        ``first_hit(origins (3,) or (n, 3), directions (n, 3)) -> (n,)``
        against a mesh that is not changed afterwards (e.g.
        :meth:`RayCaster.first_hit`).
    """

    def __init__(
        self,
        first_hit: Callable[[ArrayLike, ArrayLike], FloatArray],
        *,
        min_rays: int = 1000,
        size: int = 4,
    ):
        self._first_hit = first_hit
        self.min_rays, self.size = min_rays, size
        self._kept: OrderedDict[bytes, tuple[bytes, FloatArray]] = OrderedDict()
        self._lock = threading.Lock()

    def __call__(self, origins: ArrayLike, directions: ArrayLike) -> FloatArray:
        """As ``first_hit``; distances in mm, ``inf`` on a miss."""
        d = np.atleast_2d(np.asarray(directions, dtype=float))
        if len(d) < self.min_rays:
            return self._first_hit(origins, d)
        o = np.asarray(origins, dtype=float)
        rays = o.tobytes() + d.tobytes()
        key = repr((o.shape, d.shape)).encode() + o.tobytes() + d[:: max(1, len(d) // 64)].tobytes()
        with self._lock:
            kept = self._kept.get(key)
            if kept is not None and kept[0] == rays:
                self._kept.move_to_end(key)
                return kept[1].copy()
        dist = self._first_hit(origins, d)
        with self._lock:
            self._kept[key] = (rays, dist.copy())
            while len(self._kept) > self.size:
                self._kept.popitem(last=False)
        return dist
