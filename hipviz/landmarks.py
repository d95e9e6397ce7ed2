"""Anatomical landmarks found on bone surfaces in any pose.

Nothing here assumes how the mesh is oriented: the femoral head is found by
letting every surface patch vote for the centre of the sphere it could belong
to, axes come from centroids of cross-sections, and the posterior condylar
line is the supporting line that touches both condyles. Everything works in
the mesh's own coordinates, in millimetres.

Definitions (see ``docs/measures.md`` for sources):

* femoral head: least-squares sphere on the head surface, excluding the fovea
  and the neck (points off the sphere or with non-radial normals are dropped);
* neck axis: the line from the head centre to the area centroid of the
  narrowest neck cross-section (the waist), counting only the neck's own
  outline in each section;
* proximal shaft axis: the line through the area centroids of shaft
  cross-sections below the lesser trochanter;
* posterior condylar axis: the line touching the posterior surfaces of both
  condyles, in the plane normal to the shaft axis.
"""

from __future__ import annotations

import threading
import weakref
from collections import OrderedDict
from dataclasses import dataclass
from functools import cached_property
from typing import ClassVar

import numpy as np
import trimesh

from ._typing import FloatArray, Points, Vector
from .errors import LandmarkError
from .geometry import Sphere, cross3, fit_sphere, norms, principal_axes, project_onto_plane, unit

#: Radii (mm) a femoral head may have; adult heads are 19-30 mm.
HEAD_RADIUS_RANGE_MM = (14.0, 36.0)
#: Least share of its sphere's directions a femoral head covers (see :func:`head_support`).
HEAD_SUPPORT_MIN = 0.55


# --------------------------------------------------------------------------- sections


def _plane_basis(normal: Vector) -> tuple[Vector, Vector]:
    n = unit(normal)
    helper = np.eye(3)[np.argmin(np.abs(n))]
    u = unit(cross3(n, helper))
    return u, cross3(n, u)


def section_centroid(
    mesh: trimesh.Trimesh,
    origin: Vector,
    normal: Vector,
    *,
    max_radius_mm: float | None = None,
    faces: np.ndarray | None = None,
) -> tuple[Vector, float]:
    """Area centroid and area of the cross-section of a closed mesh by a plane.

    Segments are oriented with the face normals, so the polygon sums need no
    loop assembly and holes subtract themselves.

    Parameters
    ----------
    mesh : trimesh.Trimesh
        Closed surface with outward normals, mm.
    origin, normal : (3,) float
        The cutting plane.
    max_radius_mm : float, optional
        Only segments whose midpoints lie within this distance of ``origin``
        count, to keep one bone part (the neck, not the trochanter).
    faces : (k,) int, optional
        Restrict the search to these faces (faster on big meshes).

    Returns
    -------
    centroid : (3,) float
        NaN when the plane misses the mesh.
    area_mm2 : float
    """
    n = unit(normal)
    segs, face_idx = trimesh.intersections.mesh_plane(
        mesh, n, origin, return_faces=True, local_faces=faces
    )
    if len(segs) == 0:
        return np.full(3, np.nan), 0.0
    a, b = segs[:, 0], segs[:, 1]
    if max_radius_mm is not None:
        keep = np.linalg.norm((a + b) / 2 - origin, axis=1) <= max_radius_mm
        a, b, face_idx = a[keep], b[keep], face_idx[keep]
        if len(a) == 0:
            return np.full(3, np.nan), 0.0
    fn = mesh.face_normals[face_idx]
    flip = np.einsum("ij,ij->i", cross3(b - a, n), fn) < 0
    a, b = np.where(flip[:, None], b, a), np.where(flip[:, None], a, b)
    u, v = _plane_basis(n)
    o = np.asarray(origin, dtype=float)
    au, av = (a - o) @ u, (a - o) @ v
    bu, bv = (b - o) @ u, (b - o) @ v
    cross = au * bv - av * bu
    area = cross.sum() / 2
    if abs(area) < 1e-9:
        return np.full(3, np.nan), 0.0
    cu = ((au + bu) * cross).sum() / (6 * area)
    cv = ((av + bv) * cross).sum() / (6 * area)
    return o + cu * u + cv * v, float(area)


def _fit_line(points: Points) -> tuple[Vector, Vector]:
    """Least-squares line through points: (centroid, unit direction)."""
    mean, axes, _ = principal_axes(points)
    return mean, axes[0]


# --------------------------------------------------------------------------- spheres


def _outward_sign(mesh: trimesh.Trimesh) -> float:
    """+1, or -1 for a closed mesh whose faces all point inward.

    Files read by :func:`hipviz.io.load_mesh` are already wound outward,
    body by body; this guards meshes handed in directly.
    """
    return FaceSet.of(mesh).outward_sign


def _outward_normals(mesh: trimesh.Trimesh) -> np.ndarray:
    """Unit vertex normals (n_vertices, 3), pointing out of the bone."""
    # An inside-out file would make every vote point away from the centre.
    return _outward_sign(mesh) * np.asarray(mesh.vertex_normals)


#: Spacing of the surface samples the head-sphere fit uses, mm.
FIT_SPACING_MM = 1.0
#: Spacing of the surface samples head sphericity is read on, mm.
SPHERICITY_SPACING_MM = 0.5
#: Most samples one call of :func:`surface_samples` makes (the spacing grows beyond).
MAX_SAMPLES = 2_000_000
#: Extra width of the band of candidate points :func:`refine_sphere` keeps, mm.
BAND_MARGIN_MM = 6.0

# Barycentric centroids of the k*k triangles of a k-fold split of a triangle, by k.
_SPLIT_CACHE: dict[int, np.ndarray] = {}


def _split_centroids(k: int) -> np.ndarray:
    """(k*k, 3) barycentric coordinates of the centroids of a k-fold triangle split."""
    if k not in _SPLIT_CACHE:
        i, j = np.meshgrid(np.arange(k), np.arange(k), indexing="ij")
        up = (i + j) <= k - 1  # triangles pointing like the parent
        down = (i + j) <= k - 2  # the ones between them
        ij = np.vstack(
            [
                np.column_stack([i[up] + 1 / 3, j[up] + 1 / 3]),
                np.column_stack([i[down] + 2 / 3, j[down] + 2 / 3]),
            ]
        ) / float(k)
        _SPLIT_CACHE[k] = np.column_stack([1.0 - ij.sum(axis=1), ij[:, 0], ij[:, 1]])
    return _SPLIT_CACHE[k]


class FaceSet:
    """Per-face arrays of a surface, gathered once for many regional queries.

    Searches that sample or select faces around several candidate points
    (:func:`find_spheres`, the head and neck searches) share one per mesh,
    instead of re-reading the mesh each time: :meth:`of` keeps the sets of
    the last few meshes, checked against the mesh's data hash so an edited
    mesh gets a new one.

    Attributes
    ----------
    triangles : (m, 3, 3) float
        Vertex coordinates of each face, mm.
    centroids : (m, 3) float
        Face centroids, mm.
    sizes : (m,) float
        Largest centroid-to-vertex distance of each face, mm.
    normals : (m, 3) float
        Outward unit face normals (flipped for a closed mesh wound inward).
    areas : (m,) float
        Face areas, mm^2.
    """

    _recent: ClassVar[OrderedDict[int, tuple[weakref.ref, int, FaceSet]]] = OrderedDict()
    _lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, triangles: np.ndarray, *, watertight: bool | np.ndarray) -> None:
        """``watertight``: the surface is closed; or its (m, 3) int faces, to tell when asked."""
        self.triangles = triangles
        self._watertight = watertight

    @cached_property
    def closed(self) -> bool:
        """True when every edge is shared by exactly two faces (trimesh's ``is_watertight``)."""
        if isinstance(self._watertight, np.ndarray):
            return closed_faces(self._watertight)
        return bool(self._watertight)

    @classmethod
    def of(cls, mesh: trimesh.Trimesh | FaceSet) -> FaceSet:
        """The face set of ``mesh`` (mm); a FaceSet is returned as is."""
        if isinstance(mesh, FaceSet):
            return mesh
        key, data = id(mesh), hash(mesh)
        with cls._lock:  # the app measures in several threads
            hit = cls._recent.get(key)
            if hit is not None and hit[0]() is mesh and hit[1] == data:
                cls._recent.move_to_end(key)
                return hit[2]
        faces = np.asarray(mesh.faces)
        tri = np.asarray(mesh.vertices, dtype=float)[faces]
        # Whether it is closed matters only for a surface wound inward
        # (:attr:`outward_sign`); a surface read by hipviz is wound outward,
        # so the edge count is left until asked.
        out = cls(tri, watertight=faces.copy())
        with cls._lock:
            cls._recent[key] = (weakref.ref(mesh), data, out)
            while len(cls._recent) > 8:
                cls._recent.popitem(last=False)
        return out

    @cached_property
    def centroids(self) -> np.ndarray:
        return self.triangles.mean(axis=1)

    @cached_property
    def sizes(self) -> np.ndarray:
        return norms(self.triangles - self.centroids[:, None, :]).max(axis=1)

    @cached_property
    def _cross(self) -> np.ndarray:
        tri = self.triangles
        return np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])

    @cached_property
    def areas(self) -> np.ndarray:
        return 0.5 * norms(self._cross)

    @cached_property
    def outward_sign(self) -> float:
        """+1, or -1 for a closed surface wound inward (negative signed volume)."""
        # 6 x the signed volume: the tetrahedra from the origin to each face.
        six_volume = np.einsum("ij,ij->", self.triangles[:, 0], self._cross)
        return -1.0 if six_volume < 0 and self.closed else 1.0

    @cached_property
    def normals(self) -> np.ndarray:
        unit_normals = self._cross / np.maximum(2.0 * self.areas, 1e-300)[:, None]
        return self.outward_sign * unit_normals


def closed_faces(faces: np.ndarray) -> bool:
    """True when every edge of the (m, 3) int faces is used by exactly two faces.

    The test of trimesh's ``is_watertight``, from one sort of integer edge
    keys instead of grouping rows.
    """
    f = np.asarray(faces, dtype=np.int64)
    if len(f) == 0:
        return False
    edges = f[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2)
    low, high = edges.min(axis=1), edges.max(axis=1)
    key = np.sort(low * (int(f.max()) + 1) + high)
    if len(key) % 2:
        return False
    # Sorted, each key must come as one pair: equal within a pair, unequal across pairs.
    return bool(np.all(key[0::2] == key[1::2]) and np.all(key[1:-1:2] != key[2::2]))


def _split_counts(longest_edges: np.ndarray, spacing_mm: float) -> np.ndarray:
    """(m,) int: how many ways :func:`surface_samples` splits each face's edges.

    ``ceil(longest edge / spacing)``, at least 1, so every piece's edges are at
    most ``spacing_mm``; a huge surface gets a coarser spacing, never more
    than :data:`MAX_SAMPLES` samples (or one per face, when it has more faces).
    """
    spacing = float(spacing_mm)
    while True:
        k = np.maximum(1, np.ceil(longest_edges / spacing)).astype(np.int64)
        if (k * k).sum() <= MAX_SAMPLES or k.max(initial=1) == 1:
            return k
        spacing *= 1.5


def surface_samples(
    mesh: trimesh.Trimesh | FaceSet, spacing_mm: float, *, faces: np.ndarray | None = None
) -> tuple[Points, Points, np.ndarray]:
    """Points spread evenly over a surface, whatever its triangulation.

    Every triangle is split k-fold, k = ceil(longest edge / ``spacing_mm``),
    into k^2 equal triangles, and their centroids are the samples. A surface
    meshed finer, coarser or differently gives nearly the same samples
    (same density, same weights per area), unlike its vertices: fits and
    maxima on them do not depend on the meshing. Deterministic.

    Parameters
    ----------
    mesh : trimesh.Trimesh or FaceSet
        The surface, mm, wound outward (or inside-out, if closed).
    spacing_mm : float
        Largest sample spacing, mm; triangles smaller than it give one sample.
    faces : (m,) int, optional
        Sample only these faces.

    Returns
    -------
    points : (n, 3) float
        Samples on the surface, mm.
    normals : (n, 3) float
        Outward unit normals of their faces.
    weights : (n,) float
        Surface area each sample stands for, mm^2 (they sum to the area).
    """
    fs = FaceSet.of(mesh)
    idx = slice(None) if faces is None else np.asarray(faces, dtype=np.int64)
    tri, normals, area = fs.triangles[idx], fs.normals[idx], fs.areas[idx]
    edges = norms(tri - np.roll(tri, 1, axis=1)).max(axis=1)
    k = _split_counts(edges, spacing_mm)
    pts, nrm, wts = [], [], []
    for kk in np.unique(k):
        sel = np.flatnonzero(k == kk)
        bary = _split_centroids(int(kk))
        pts.append(np.einsum("sb,fbd->fsd", bary, tri[sel]).reshape(-1, 3))
        nrm.append(np.repeat(normals[sel], len(bary), axis=0))
        wts.append(np.repeat(area[sel] / len(bary), len(bary)))
    if not pts:
        return np.zeros((0, 3)), np.zeros((0, 3)), np.zeros(0)
    return np.vstack(pts), np.vstack(nrm), np.concatenate(wts)


def _faces_near(mesh: trimesh.Trimesh | FaceSet, center: Vector, reach_mm: float) -> np.ndarray:
    """Indices of the faces that may come within ``reach_mm`` of ``center``.

    A face counts when its bounding sphere (about its centroid) does, so a
    large triangle crossing the region is kept even with no vertex in it.
    """
    fs = FaceSet.of(mesh)
    return np.flatnonzero(norms(fs.centroids - center) - fs.sizes <= reach_mm)


def head_surface_points(
    mesh: trimesh.Trimesh,
    head: Sphere,
    *,
    reach_mm: float = 12.0,
    spacing_mm: float = SPHERICITY_SPACING_MM,
) -> Points:
    """Surface points around a head sphere, for :func:`hipviz.measures.head_sphericity_mm`.

    Evenly spread samples (see :func:`surface_samples`) of the faces within
    ``r + reach_mm`` of the centre, plus those faces' vertices (on a
    faceted surface the farthest points from the centre are vertices).

    Returns
    -------
    (n, 3) float
        Points on the surface, mm.
    """
    fs = FaceSet.of(mesh)
    faces = _faces_near(fs, head.center_mm, head.radius_mm + reach_mm)
    pts, _, _ = surface_samples(fs, spacing_mm, faces=faces)
    verts = np.asarray(mesh.vertices)[np.unique(np.asarray(mesh.faces)[faces])]
    return np.vstack([pts, verts])


def refine_sphere(
    points: Points,
    normals: Points,
    center: Vector,
    radius: float,
    *,
    inward: bool = False,
    max_normal_deg: float = 25.0,
    iterations: int = 30,
    weights: np.ndarray | None = None,
) -> tuple[Sphere, np.ndarray]:
    """Refit a sphere on the points that lie on it and face along its radius.

    Parameters
    ----------
    points, normals : (n, 3) float
        Surface points (mm) and unit outward normals.
    center, radius : initial sphere.
    inward : bool
        True for a socket (normals face the centre), False for a head.
    weights : (n,) float, optional
        Area each point stands for (see :func:`surface_samples`); equal when
        None.

    Returns
    -------
    sphere : Sphere
    inliers : (n,) bool
    """
    cos_max = np.cos(np.radians(max_normal_deg))
    tol = 3.0
    facing = -normals if inward else normals
    sphere = Sphere(np.asarray(center, float), float(radius), np.inf, 0)
    idx = np.zeros(0, np.int64)
    # Only points in a band about a reference sphere can be inliers while the
    # sphere stays near it: iterate on the band, not on every point, and
    # renew it when the sphere has moved too far for that to hold.
    ref, ref_band, cand = None, 0.0, idx
    for _ in range(iterations):
        if ref is None or tol + _sphere_shift(sphere, ref) > ref_band:
            ref, ref_band = sphere, tol + BAND_MARGIN_MM
            dist = norms(points - ref.center_mm)
            cand = np.flatnonzero(np.abs(dist - ref.radius_mm) < ref_band)
            cand_p, cand_f = points[cand], facing[cand]  # gathered once per band
        new = cand[_on_sphere(cand_p, cand_f, sphere, tol, cos_max)]
        if len(new) < 20:
            break
        if np.array_equal(new, idx):
            break  # a fixed point: the same inliers give the same sphere
        idx = new
        sphere = fit_sphere(points[idx], None if weights is None else weights[idx])
        tol = max(0.75, 3.0 * sphere.rms_mm)
    inl = np.zeros(len(points), bool)
    inl[idx] = True
    return sphere, inl


def _sphere_shift(a: Sphere, b: Sphere) -> float:
    """Bound on how far any point's distance to sphere ``a`` differs from that to ``b``, mm."""
    return float(np.linalg.norm(a.center_mm - b.center_mm) + abs(a.radius_mm - b.radius_mm))


def _on_sphere(
    points: Points, normals: Points, sphere: Sphere, tol_mm: float, cos_max: float
) -> np.ndarray:
    """(n,) bool: within ``tol_mm`` of the sphere, normal within ``acos(cos_max)`` of its radius."""
    d = points - sphere.center_mm
    dist = norms(d)
    radial = d / np.maximum(dist, 1e-9)[:, None]
    facing = np.einsum("ij,ij->i", radial, normals) > cos_max
    return (np.abs(dist - sphere.radius_mm) < tol_mm) & facing


def _centre_votes(points: Points, normals: Points, radii: FloatArray) -> Points:
    """(len(radii) * n, 3) centre votes ``p - rho n``, radius by radius, mm."""
    return (points[None, :, :] - radii[:, None, None] * normals[None, :, :]).reshape(-1, 3)


def _sphere_votes(points, normals, weights, radii, bin_mm, offset_mm=0.0, *, votes=None):
    """Bin the centre votes ``p - rho n`` of every point for every radius ``rho``.

    The bins are cubes of ``bin_mm`` whose corners lie on a grid shifted by
    ``offset_mm`` on every axis. Returns the occupied bins' centres (k, 3)
    mm, radii (k,) and summed weights (k,); with ``weights`` None every vote
    counts 1 (the same sums, counted from a plain sort, several times
    faster than the argsort weighted sums need). ``votes``, when given, are
    :func:`_centre_votes` of the same points, normals and radii.
    """
    if votes is None:
        votes = _centre_votes(points, normals, radii)
    keys = np.floor((votes - offset_mm) / bin_mm).astype(np.int64)
    ridx = np.repeat(np.arange(len(radii)), len(points))
    # Column by column: numpy reduces an (n, 3) array over its rows several
    # times slower than three strided columns.
    lo = np.array([keys[:, j].min() for j in range(3)])
    span = np.array([keys[:, j].max() for j in range(3)]) - lo + 1
    packed = (
        ((keys[:, 0] - lo[0]) * span[1] + keys[:, 1] - lo[1]) * span[2] + keys[:, 2] - lo[2]
    ) * len(radii) + ridx
    if weights is None:
        uniq, counts = np.unique(packed, return_counts=True)
        score = counts.astype(float)
    else:
        uniq, inv = np.unique(packed, return_inverse=True)
        score = np.bincount(inv, weights=np.tile(weights, len(radii)))
    r_i = uniq % len(radii)
    rest = uniq // len(radii)
    kz = rest % span[2]
    rest //= span[2]
    ky = rest % span[1]
    kx = rest // span[1]
    idx = np.column_stack([kx + lo[0], ky + lo[1], kz + lo[2]])
    return (idx + 0.5) * bin_mm + offset_mm, radii[r_i], score


def _vote_candidates(points, normals, radii, bin_mm, *, top=None):
    """Sphere candidates (centre (3,), radius) by vote, best first, from two grids.

    The second grid is shifted by half a bin on every axis, so a centre on a
    corner of one grid (its votes split over eight bins) is in the middle of
    a bin of the other: which candidates win does not depend on the pose.
    Equal votes rank the later bin first. ``top``: only the first ``top``
    candidates of that order (the same ones, without sorting every bin).
    """
    votes = _centre_votes(points, normals, radii)  # the same votes, binned on both grids
    grids = [
        _sphere_votes(points, normals, None, radii, bin_mm, off, votes=votes)
        for off in (0.0, bin_mm / 2)
    ]
    centres = np.vstack([g[0] for g in grids])
    rads = np.concatenate([g[1] for g in grids])
    score = np.concatenate([g[2] for g in grids])
    pick = np.arange(len(score))
    if top is not None and len(score) > top:
        # The bins scoring at least the top-th best score hold the first `top` of
        # the full order (ties at that score rank by index there too).
        pick = np.flatnonzero(score >= np.partition(score, len(score) - top)[len(score) - top])
    order = pick[np.argsort(score[pick], kind="stable")[::-1][:top]]
    return centres[order], rads[order]


def head_sphere(
    mesh: trimesh.Trimesh,
    *,
    near_mm: Vector | None = None,
    radius_range_mm: tuple[float, float] = HEAD_RADIUS_RANGE_MM,
    max_points: int = 12000,
    concave: bool = False,
) -> Sphere:
    """The sphere of :func:`find_head`, without its inlier vertices.

    The inliers need the mesh's vertex normals, which nothing else on a
    femur does (a tenth of a femur's landmark time).

    Raises
    ------
    LandmarkError
        No sphere of head size is supported by the surface.
    """
    found = find_spheres(
        mesh,
        [near_mm],
        radius_range_mm=radius_range_mm,
        max_points=max_points,
        concave=concave,
    )[0]
    if found is None:
        raise LandmarkError(_no_head_message(mesh, radius_range_mm))
    # Flat or cylindrical patches can fit a sphere too; a head covers most of its own.
    if not concave and head_support(mesh, found) < HEAD_SUPPORT_MIN:
        raise LandmarkError(_no_head_message(mesh, radius_range_mm))
    return found


def find_head(
    mesh: trimesh.Trimesh,
    *,
    near_mm: Vector | None = None,
    radius_range_mm: tuple[float, float] = HEAD_RADIUS_RANGE_MM,
    max_points: int = 12000,
    concave: bool = False,
) -> tuple[Sphere, np.ndarray]:
    """Find the femoral head sphere on a femur in any pose.

    Surface samples vote for the centres ``p - rho n`` they would have on
    spheres of plausible radii; head samples agree on one centre. The
    best-supported candidates are refitted with :func:`refine_sphere` on
    evenly spread, area-weighted surface samples (:func:`surface_samples`,
    ``FIT_SPACING_MM`` apart), so the sphere is a property of the surface,
    not of its triangulation, and the one covering the largest share of its
    sphere wins.

    Parameters
    ----------
    mesh : trimesh.Trimesh
        The femur, mm, any pose.
    near_mm : (3,) float, optional
        Prefer candidates near this point (e.g. the socket centre).
    max_points : int
        Number of surface samples that vote (area-weighted, fixed seed).
    concave : bool
        Look for a socket (surface facing the centre) instead of a head.

    Returns
    -------
    sphere : Sphere
    inliers : (n_vertices,) bool
        Vertices on the head sphere.

    Raises
    ------
    LandmarkError
        No sphere of head size is supported by the surface.
    """
    sphere = head_sphere(
        mesh,
        near_mm=near_mm,
        radius_range_mm=radius_range_mm,
        max_points=max_points,
        concave=concave,
    )
    flip = -1.0 if concave else 1.0
    normals = flip * _outward_normals(mesh)
    tol = max(0.75, 3.0 * sphere.rms_mm)
    inliers = _on_sphere(np.asarray(mesh.vertices), normals, sphere, tol, np.cos(np.radians(25)))
    return sphere, inliers


def find_spheres(
    mesh: trimesh.Trimesh,
    near_mm: list[Vector | None],
    *,
    radius_range_mm: tuple[float, float] = HEAD_RADIUS_RANGE_MM,
    max_points: int = 12000,
    concave: bool = False,
) -> list[Sphere | None]:
    """The best-supported sphere near each of several points, sharing one search.

    The candidates of :func:`find_head` (votes, and the quick refits that
    tell them apart) do not depend on where the sphere is wanted, only their
    ranking does; two sockets of one pelvis are found for the cost of one
    search plus a final refit each.

    Parameters
    ----------
    near_mm : list of (3,) float or None
        Prefer candidates near each point (None: no preference).

    Returns
    -------
    list of Sphere or None
        Per point, the sphere refined to its fixed point, or None when no
        candidate of the radius range is supported.
    """
    flip = -1.0 if concave else 1.0
    fs = FaceSet.of(mesh)
    vote_p, vote_f = trimesh.sample.sample_surface(mesh, max_points, seed=0)
    vote_n = flip * fs.normals[vote_f]
    radii = np.arange(np.floor(radius_range_mm[0]), np.ceil(radius_range_mm[1]) + 1, 1.0)
    centres, rads = _vote_candidates(vote_p, vote_n, radii, bin_mm=3.0, top=80)

    fits: list[tuple[float, Sphere, tuple]] = []
    tried: list[np.ndarray] = []
    for c0, r0 in zip(centres[:80], rads[:80], strict=True):
        if any(np.linalg.norm(c0 - t) < 8.0 for t in tried):
            continue
        tried.append(c0)
        if len(tried) > 6:
            break
        r0 = float(r0)
        faces = _faces_near(fs, c0, r0 + 15.0)
        pts, nrm, wts = surface_samples(fs, FIT_SPACING_MM, faces=faces)
        # A few steps on every 4th sample tell the candidates apart; the winner is
        # refined on all of them, to its fixed point.
        few = slice(None, None, 4)
        sphere, inl = refine_sphere(
            pts[few], flip * nrm[few], c0, r0, weights=4.0 * wts[few], iterations=8
        )
        r = sphere.radius_mm
        if not (radius_range_mm[0] <= r <= radius_range_mm[1]) or 4.0 * wts[few][inl].sum() < 150.0:
            continue
        # Share of the sphere's directions that have inlier support.
        dirs = unit(pts[few][inl] - sphere.center_mm)
        cells = np.unique(np.floor((dirs + 1) * 6).astype(int), axis=0)
        support = len(cells) / 260.0  # ~ cells a full sphere occupies at this size
        fits.append((support / (1.0 + sphere.rms_mm), sphere, (pts, flip * nrm, wts)))

    out: list[Sphere | None] = []
    for near in near_mm:
        best: tuple[float, Sphere, tuple] | None = None
        for quality, sphere, samples in fits:
            if near is not None:
                quality /= 1.0 + np.linalg.norm(sphere.center_mm - near) / 30.0
            if best is None or quality > best[0]:
                best = (quality, sphere, samples)
        if best is None:
            out.append(None)
            continue
        pts, nrm, wts = best[2]
        out.append(refine_sphere(pts, nrm, best[1].center_mm, best[1].radius_mm, weights=wts)[0])
    return out


def head_support(mesh: trimesh.Trimesh, head: Sphere, *, max_normal_deg: float = 25.0) -> float:
    """Share of a sphere's directions where the surface lies on it, 0-1.

    Surface samples within ``max(0.75, 3 rms)`` of the sphere whose normals
    are within ``max_normal_deg`` of radial count; a direction from the
    centre is supported when such a sample lies within 0.06 rad of it
    (2,000 directions). A femoral head reads about 0.8; spheres fitted to
    the flat sides of a box or the round side of a cylinder 0.3-0.4.
    """
    from scipy.spatial import cKDTree

    from .geometry import fibonacci_directions

    fs = FaceSet.of(mesh)
    faces = _faces_near(fs, head.center_mm, head.radius_mm + 5.0)
    pts, nrm, _ = surface_samples(fs, FIT_SPACING_MM, faces=faces)
    tol = max(0.75, 3.0 * head.rms_mm)
    on = _on_sphere(pts, nrm, head, tol, np.cos(np.radians(max_normal_deg)))
    if not on.any():
        return 0.0
    gap, _ = cKDTree(unit(pts[on] - head.center_mm)).query(fibonacci_directions(2000))
    return float(np.mean(gap < 0.06))


#: Largest extent (file units) of a bone that may be a femur in centimetres.
_CM_FEMUR_EXTENT = (10.0, 70.0)


def _no_head_message(mesh: trimesh.Trimesh, radius_range_mm: tuple[float, float]) -> str:
    """Why no head was found, with a units hint for a bone that is centimetre-sized."""
    lo, hi = radius_range_mm
    msg = f"no head-like sphere found (radius {lo:g}-{hi:g} mm)"
    extent = float(np.max(mesh.extents))
    if _CM_FEMUR_EXTENT[0] <= extent <= _CM_FEMUR_EXTENT[1]:
        msg += (
            f"; the bone is only {extent:.3g} mm long, as a femur in centimetres "
            "would be: pass --units cm if the file is in cm"
        )
    return msg


def find_socket(
    pelvis: trimesh.Trimesh, head: Sphere, *, search_mm: float = 12.0
) -> tuple[Sphere, np.ndarray]:
    """Fit the acetabular (lunate) surface facing a femoral head.

    Parameters
    ----------
    pelvis : trimesh.Trimesh
        mm, same coordinates as the head.
    head : Sphere
        The femoral head, used to seed the search.

    Returns
    -------
    sphere : Sphere
        Socket sphere.
    inliers : (n_vertices,) bool

    Raises
    ------
    LandmarkError
        No bone faces the head within ``search_mm`` of its surface.
    """
    pts = np.asarray(pelvis.vertices, dtype=float)
    nrm = _outward_normals(pelvis)
    d = norms(pts - head.center_mm)
    near = (d > head.radius_mm - 2) & (d < head.radius_mm + search_mm)
    if near.sum() < 30:
        msg = (
            f"no pelvic bone within {search_mm:.0f} mm of the femoral head surface: "
            "are the pelvis and femur articulated, in the same coordinates and units?"
        )
        raise LandmarkError(msg)
    facing = np.einsum("ij,ij->i", unit(head.center_mm - pts), nrm) > 0.8
    idx = np.flatnonzero(near & facing)
    if len(idx) < 30:
        msg = "the bone near the femoral head does not form a socket"
        raise LandmarkError(msg)
    # The lunate surface is the nearest bone; the fossa lies deeper.
    r0 = float(np.percentile(d[idx], 15))
    sphere, inl = refine_sphere(pts[idx], nrm[idx], head.center_mm, r0, inward=True)
    if inl.sum() < 30:
        msg = "the bone near the femoral head does not form a socket"
        raise LandmarkError(msg)
    full = np.zeros(len(pts), bool)
    full[idx[inl]] = True
    return sphere, full


# --------------------------------------------------------------------------- femur axes


#: Neck sections are searched this far from the head centre, in head radii.
NECK_SEARCH_RADII = (0.6, 2.0)
#: Method name reported with the neck axis (and so with every femoral angle).
NECK_AXIS_METHOD = (
    "head centre to the area centroid of the narrowest neck section (the neck's waist), "
    "the section normal to the axis and holding only the neck's own outline"
)


def _loop_labels(a: Points, b: Points) -> np.ndarray:
    """(n,) int: which closed loop each section segment ``a[i] -> b[i]`` belongs to.

    Loops are numbered in the order of their first segment (as
    ``scipy.sparse.csgraph.connected_components`` numbers them on the graph
    of segments and their end points).
    """
    n = len(a)
    if n == 0:
        return np.zeros(0, dtype=np.intp)
    # Neighbouring faces compute a shared crossing from the same edge, so
    # endpoints agree to rounding; a 1e-5 mm grid joins them.
    ends = np.round(np.vstack([a, b]) / 1e-5).astype(np.int64)
    order = np.lexsort(ends.T)
    new = np.r_[True, np.any(ends[order[1:]] != ends[order[:-1]], axis=1)]
    point = np.empty(2 * n, dtype=np.intp)
    point[order] = np.cumsum(new) - 1
    pa, pb = point[:n], point[n:]
    n_points = int(point.max()) + 1
    label = _chain_labels(pa, pb, n_points)
    if label is not None:
        return np.unique(label, return_inverse=True)[1]
    # Each segment takes the smallest segment number it is joined to, through
    # its end points; jumping along the labels found so far makes this a few
    # rounds even on long loops. Ends in the smallest segment of its loop.
    label = np.arange(n)
    low = np.empty(n_points, dtype=np.intp)
    while True:
        low.fill(n)
        np.minimum.at(low, pa, label)
        np.minimum.at(low, pb, label)
        new_label = np.minimum(low[pa], low[pb])
        new_label = new_label[new_label]
        if np.array_equal(new_label, label):
            break
        label = new_label
    return np.unique(label, return_inverse=True)[1]


def _chain_labels(pa: np.ndarray, pb: np.ndarray, n_points: int) -> np.ndarray | None:
    """Smallest segment number on each segment's loop, when the segments chain.

    A closed, consistently wound surface cuts into loops in which every end
    point starts one segment and ends one: "the segment starting where this
    one ends" is then a permutation whose cycles are the loops, and the
    minimum over a cycle is found by doubling, in about log2(n) rounds (the
    general search in :func:`_loop_labels` takes some 25 on a neck section).

    Returns
    -------
    (n,) int, or None when some point does not start exactly one segment and
    end exactly one (an open or non-manifold section).
    """
    if n_points != len(pa):
        return None
    next_of = np.full(n_points, -1, dtype=np.intp)
    next_of[pa] = np.arange(len(pa))
    if (next_of < 0).any() or len(np.unique(pb)) != n_points:
        return None
    step = next_of[pb]  # the segment that follows each one
    label = np.arange(len(pa))
    span = 1  # label[i]: the smallest of the `span` segments from i on
    while span < len(pa):
        label = np.minimum(label, label[step])
        step = step[step]
        span *= 2
    return label


def section_through(
    mesh: trimesh.Trimesh,
    origin: Vector,
    normal: Vector,
    *,
    faces: np.ndarray | None = None,
) -> tuple[Vector, float]:
    """Area centroid and area of the part of a section that surrounds ``origin``.

    The plane through ``origin`` with ``normal`` cuts the closed mesh in one
    or more loops; only the loops that wind around ``origin`` count (the
    outline holding it, and any hole around it), so bone that is separate in
    this plane (a trochanter beside the neck) never enters. When no loop
    holds ``origin``, the loop whose centroid lies nearest is taken.

    Parameters
    ----------
    mesh : trimesh.Trimesh
        Closed surface with outward normals, mm.
    origin, normal : (3,) float
        The plane, and the point the section must surround.
    faces : (k,) int, optional
        Restrict the search to these faces.

    Returns
    -------
    centroid : (3,) float
        NaN when the plane misses the mesh.
    area_mm2 : float
    """
    f = np.asarray(mesh.faces) if faces is None else np.asarray(mesh.faces)[faces]
    tri = np.asarray(mesh.vertices)[f]
    return _section_of_triangles(tri, origin, normal)


def _plane_segments(tri: np.ndarray, origin: Vector, n: Vector) -> tuple[Points, Points]:
    """Segments where a plane cuts triangles (k, 3, 3), oriented by the triangles' winding.

    Each returned segment ``a -> b`` runs so that ``(b - a) x n`` points out
    of the solid, as the face normal does; a vertex exactly on the plane
    counts as above it, so shared edges give shared endpoints.
    """
    d = (tri - origin) @ n  # (k, 3)
    above = d >= 0
    count = above.sum(axis=1)
    cut = (count == 1) | (count == 2)
    tri, d, above = tri[cut], d[cut], above[cut]
    if len(tri) == 0:
        return np.zeros((0, 3)), np.zeros((0, 3))
    # The lone vertex is the one on its own side of the plane.
    lone = np.where(count[cut] == 1, np.argmax(above, axis=1), np.argmin(above, axis=1))
    rows = np.arange(len(tri))
    i0, i1, i2 = lone, (lone + 1) % 3, (lone + 2) % 3
    p0, p1, p2 = tri[rows, i0], tri[rows, i1], tri[rows, i2]
    d0, d1, d2 = d[rows, i0], d[rows, i1], d[rows, i2]
    a = p0 + (p1 - p0) * (d0 / (d0 - d1))[:, None]
    b = p0 + (p2 - p0) * (d0 / (d0 - d2))[:, None]
    face_n = cross3(p1 - p0, p2 - p0)
    flip = np.einsum("ij,ij->i", cross3(b - a, n), face_n) < 0
    return np.where(flip[:, None], b, a), np.where(flip[:, None], a, b)


def _section_of_triangles(tri: np.ndarray, origin: Vector, normal: Vector) -> tuple[Vector, float]:
    """:func:`section_through` on a triangle soup (k, 3, 3), mm."""
    n = unit(normal)
    o = np.asarray(origin, dtype=float)
    a, b = _plane_segments(tri, o, n)
    if len(a) == 0:
        return np.full(3, np.nan), 0.0
    u, v = _plane_basis(n)
    au, av = (a - o) @ u, (a - o) @ v
    bu, bv = (b - o) @ u, (b - o) @ v
    cross = au * bv - av * bu
    # Winding number of each loop about the origin: the summed signed angle
    # each segment subtends, over 2 pi.
    turn = np.arctan2(cross, au * bu + av * bv)
    labels = _loop_labels(a, b)
    k = labels.max() + 1
    winding = np.bincount(labels, weights=turn, minlength=k) / (2 * np.pi)
    area = np.bincount(labels, weights=cross, minlength=k) / 2
    mu = np.bincount(labels, weights=(au + bu) * cross, minlength=k)
    mv = np.bincount(labels, weights=(av + bv) * cross, minlength=k)
    keep = np.abs(winding) > 0.5
    if not keep.any():
        with np.errstate(invalid="ignore", divide="ignore"):
            dist = np.hypot(mu / (6 * area), mv / (6 * area))
        dist[~np.isfinite(dist) | (area <= 0)] = np.inf
        if not np.isfinite(dist).any():
            return np.full(3, np.nan), 0.0
        keep = np.arange(k) == np.argmin(dist)
    total = area[keep].sum()
    if abs(total) < 1e-9:
        return np.full(3, np.nan), 0.0
    cu, cv = mu[keep].sum() / (6 * total), mv[keep].sum() / (6 * total)
    return o + cu * u + cv * v, float(total)


def neck_axis(
    femur: trimesh.Trimesh, head: Sphere, *, iterations: int = 8, step_radii: float = 0.025
) -> Vector:
    """Unit direction of the neck axis from the head centre toward the neck.

    The axis is the line from the head centre to the area centroid of the
    narrowest section of the neck (its waist), the section being normal to
    the axis itself (Boese et al. 2016, BioMed Res Int 2016:8645027, who
    define the neck axis by the centre of rotation and the waist of the
    neck; Bonneau et al. 2012, J Anat 221:465, for why the waist and not
    the base). Each section keeps only the outline around the axis
    (:func:`section_through`), and the waist lies away from where the
    greater trochanter and the intertrochanteric crest join the neck, so
    bone at the neck base does not pull the axis.

    Starting from the centroid of the surface 2-12 mm outside the head
    sphere, sections normal to the current axis every ``step_radii`` head
    radii between :data:`NECK_SEARCH_RADII` give the waist; the axis moves
    to its centroid, until it turns less than 0.001 degrees.

    Raises
    ------
    LandmarkError
        Nothing of the neck is found next to the head.
    """
    # Surface samples rather than vertices: CAD-like meshes have long triangles.
    pts, _ = trimesh.sample.sample_surface(femur, 30000, seed=0)
    c, r = head.center_mm, head.radius_mm
    d = norms(pts - c)
    ring = (d > r + 2) & (d < r + 12)
    if ring.sum() < 10:
        msg = "no femoral neck found next to the head"
        raise LandmarkError(msg)
    axis = unit(pts[ring].mean(axis=0) - c)
    lo, hi = NECK_SEARCH_RADII
    fs = FaceSet.of(femur)
    tri = fs.triangles[_faces_near(fs, c, (hi + 1.0) * r)]  # (k, 3, 3)

    def waist(axis: Vector, levels: FloatArray) -> tuple[float, float, Vector]:
        # Only faces that straddle a level can be cut by it.
        s = (tri - c) @ axis
        s_lo, s_hi = s.min(axis=1), s.max(axis=1)
        best = (np.inf, np.nan, np.full(3, np.nan))
        for t in levels:
            crossing = (s_lo <= t) & (s_hi >= t)
            if not crossing.any():
                continue
            cen, area = _section_of_triangles(tri[crossing], c + t * axis, axis)
            if 0 < area < best[0] and np.isfinite(cen).all():
                best = (area, t, cen)
        return best

    # A coarse pass over the whole search range, then fine passes near the waist.
    _, t_min, _ = waist(axis, np.arange(lo, hi + 0.05, 0.1) * r)
    if not np.isfinite(t_min):
        return unit(axis)
    for _ in range(iterations):
        fine = t_min + np.arange(-0.15, 0.151, step_radii) * r
        _, t_min, cen = waist(axis, fine[(fine >= lo * r) & (fine <= hi * r)])
        if not np.isfinite(t_min):
            break
        new = unit(cen - c)
        turned = angle_deg_between(new, axis)
        axis = new
        if turned < 1e-3:
            break
    return unit(axis)


def angle_deg_between(a: Vector, b: Vector) -> float:
    """Angle between two unit vectors, degrees (stable near 0)."""
    return float(np.degrees(2 * np.arctan2(np.linalg.norm(a - b), np.linalg.norm(a + b))))


@dataclass(frozen=True)
class ShaftAxis:
    """Proximal shaft axis: ``point_mm`` (3,) on it, ``direction`` (3,) toward the knee,
    ``length_mm`` of the femur along it from the head centre, and the levels used."""

    point_mm: Vector
    direction: Vector
    length_mm: float
    levels_mm: tuple[float, float]


#: Slack (mm) of the face pre-selection for a section: far above the rounding
#: of a plane distance, far below a face, so no face the plane cuts is missed.
_SECTION_MARGIN_MM = 1e-3


def shaft_axis(femur: trimesh.Trimesh, head: Sphere) -> ShaftAxis:
    """Proximal shaft axis from section centroids below the lesser trochanter.

    Sections run from ``max(2.8 r, 0.22 L)`` to ``min(0.5 L, L - 15 mm)`` below
    the head centre (to ``L - 15 mm`` for a proximal femur shorter than
    250 mm), with L the femur's length along its long axis and r the head
    radius.

    Raises
    ------
    LandmarkError
        Less than 25 mm of shaft below the trochanters.
    """
    pts = np.asarray(femur.vertices)
    c, r = head.center_mm, head.radius_mm
    _, axes, _ = principal_axes(pts)
    u = axes[0] if (pts.mean(axis=0) - c) @ axes[0] > 0 else -axes[0]
    for _ in range(2):
        s = (pts - c) @ u
        length = float(s.max())
        s0 = max(2.8 * r, 0.22 * length)
        # A whole femur: its proximal half; a proximal femur: all of its shaft.
        s1 = min(0.5 * length, length - 15.0) if length >= 250.0 else length - 15.0
        if s1 - s0 < 25.0:
            msg = (
                f"femur too short for a shaft axis ({length:.0f} mm from the head centre; "
                "need about 25 mm of shaft below the lesser trochanter)"
            )
            raise LandmarkError(msg)
        # Only faces spanning a level can be cut by it: handing the section
        # those (a superset, in mesh order) gives the same segments in the
        # same order as the whole mesh, for a fraction of the work.
        span = (pts - c) @ u
        f_span = span[np.asarray(femur.faces)]
        f_lo, f_hi = (
            f_span.min(axis=1) - _SECTION_MARGIN_MM,
            f_span.max(axis=1) + _SECTION_MARGIN_MM,
        )
        cents = []
        for level in np.linspace(s0, s1, 8):
            near = np.flatnonzero((f_lo <= level) & (f_hi >= level))
            cen, area = section_centroid(femur, c + level * u, u, faces=near)
            if area > 0:
                cents.append(cen)
        if len(cents) < 3:
            msg = "could not section the femoral shaft"
            raise LandmarkError(msg)
        point, direction = _fit_line(np.asarray(cents))
        u = direction if direction @ u > 0 else -direction
    s = (pts - c) @ u
    return ShaftAxis(point, u, float(s.max()), (float(s0), float(s1)))


def knee_center(femur: trimesh.Trimesh, shaft: ShaftAxis) -> Vector:
    """Centroid of the distal 5 % of the femur's vertices along the shaft axis, mm."""
    pts = np.asarray(femur.vertices)
    s = (pts - shaft.point_mm) @ shaft.direction
    return pts[s > s.max() - 0.05 * shaft.length_mm].mean(axis=0)


def posterior_condylar_axis(
    femur: trimesh.Trimesh, shaft: ShaftAxis, *, posterior_hint: Vector | None = None
) -> tuple[Vector, Vector, Vector] | None:
    """The posterior condylar line, or None when the distal femur is missing.

    The distal 12 % of the femur is projected on the plane normal to the shaft
    axis; the line touching the posterior-most points of both condyles is
    found by alternating "most posterior point on each side" and "normal of
    the line through them" until it stops moving.

    Parameters
    ----------
    posterior_hint : (3,) float, optional
        Rough posterior direction (e.g. from the pelvic frame). Without it, the
        offset of the condyles behind the shaft axis gives one.

    Returns
    -------
    (p1, p2, posterior) or None
        The two contact points (mm, 3D, on the condyles) and the unit posterior
        direction (normal to the shaft axis and to the line).
    """
    pts = np.asarray(femur.vertices)
    k = shaft.direction
    s = (pts - shaft.point_mm) @ k
    s_end = s.max()
    distal = pts[s > s_end - max(0.12 * shaft.length_mm, 35.0)]
    if shaft.length_mm < 250.0 or len(distal) < 30:
        return None
    rel = project_onto_plane(distal - shaft.point_mm, k)
    _, mid_area = section_centroid(femur, shaft.point_mm, k)
    shaft_width = 2.0 * np.sqrt(max(mid_area, 0.0) / np.pi)
    if np.ptp(rel, axis=0).max() < 1.8 * shaft_width:
        return None
    if posterior_hint is None:
        hint = project_onto_plane(rel.mean(axis=0), k)
    else:
        hint = project_onto_plane(posterior_hint, k)
    p = unit(hint)
    centre = rel.mean(axis=0)
    for _ in range(20):
        across = unit(np.cross(k, p))
        side = (rel - centre) @ across
        i1 = np.flatnonzero(side < 0)[np.argmax(rel[side < 0] @ p)]
        i2 = np.flatnonzero(side >= 0)[np.argmax(rel[side >= 0] @ p)]
        line = rel[i2] - rel[i1]
        new = unit(np.cross(line, k))
        new = new if new @ p > 0 else -new
        if np.allclose(new, p, atol=1e-9):
            break
        p = new
    return distal[i1], distal[i2], p


# --------------------------------------------------------------------------- sides


def socket_opening(pelvis: trimesh.Trimesh, socket_inliers: np.ndarray, center: Vector) -> Vector:
    """Unit axis out of the socket: away from the mean direction of its surface."""
    pts = np.asarray(pelvis.vertices)[socket_inliers]
    return -unit(unit(pts - center).mean(axis=0))
