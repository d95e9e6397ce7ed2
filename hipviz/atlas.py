"""The LLP26 lower-limb shape model, evaluated into watertight triangle meshes.

The data come from the ``musculoskeletal-models`` package (GIAS "LLP26" rigid
model): a Lagrange finite-element surface mesh per bone (``*.mesh`` topology,
``*.ens`` bases, ``*.geof`` mean node coordinates) and a principal-component
shape model (``shape_models/LLP26_rigid.pc``) over the node coordinates of
pelvis, left femur, patella and tibia-fibula. This module evaluates the model
with plain numpy; gias3 is not needed.

Frame and units
---------------
Everything here is in the *raw model frame*: millimetres, CT-like axes with
+x towards the subject's left, +y posterior and +z superior. The frame is not
centred on the body: the pelvic mid-sagittal plane lies near x = +25 to +40 mm
(ASIS midpoint 32.7 mm, sacrum centroid 37 mm in the mean shape), not at x = 0,
and the mean pelvis is slightly oblique (right ASIS ~20 mm higher and ~7 mm more
posterior than the left). Build an anatomical frame from the landmarks before
measuring anything side-dependent.

The femur is in its atlas position with the head in the left acetabulum; the
two surfaces interpenetrate (up to ~5.5 mm in the mean shape: the model has no
joint space), and the sacrum overlaps each hemipelvis by ~1 mm at the
sacroiliac joints.

Pipeline
--------
1. ``node_coordinates``: shape = mean + sum_k mode_k * w_k * sqrt(variance_k),
   with the weights ``w_k`` in standard deviations.
2. ``evaluate``: every element is sampled on a regular parameter grid with
   cached basis matrices (one matrix product per element type), sample points
   shared between elements are welded *topologically* (a point on an element
   edge is identified by the global nodes of that edge and its position along
   it, so welding never depends on a distance tolerance), and each closed body
   is oriented so its normals point outward.
"""

from __future__ import annotations

import functools
import importlib
import json
import pickle
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import trimesh
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from hipviz._typing import ArrayLike, FloatArray, Points
from hipviz.errors import HipvizError, InputError

__all__ = [
    "LANDMARK_NODES",
    "MAX_ABS_WEIGHT_SD",
    "MAX_SUBDIVISIONS",
    "N_MODES",
    "AtlasGeometry",
    "ShapeModel",
    "evaluate",
    "mirror_x",
    "node_coordinates",
    "shape_model",
]

N_MODES = 26
"""Number of principal components in the LLP26 shape model."""

MAX_ABS_WEIGHT_SD = 5.0
"""Largest accepted absolute shape-mode weight, in standard deviations."""

MAX_SUBDIVISIONS = 40
"""Largest accepted number of sampling steps per element edge."""

LANDMARK_NODES: Mapping[str, int] = {
    "asis_left": 1004,
    "asis_right": 466,
    "psis_left": 924,
    "psis_right": 384,
    "pubic_tubercle_left": 642,
    "pubic_tubercle_right": 103,
}
"""Pelvis node numbers (GIAS convention) of the pelvic landmarks."""

_SHAPE_MODEL_FILE = "shape_models/LLP26_rigid.pc"
_N_NODES_TOTAL = 3225  # pelvis | left femur | patella | tibia-fibula


@dataclass(frozen=True)
class _BodySpec:
    mesh_file: str
    geof_file: str
    n_nodes: int
    first_node: int  # offset of this bone's nodes in the shape-model vector


_BODIES: dict[str, _BodySpec] = {
    "pelvis": _BodySpec(
        "atlas_meshes/pelvis_combined_cubic_flat.mesh",
        "atlas_meshes/pelvis_combined_cubic_mean_rigid_LLP26.geof",
        1946,
        0,
    ),
    "femur_left": _BodySpec(
        "atlas_meshes/femur_left_quartic_flat.mesh",
        "atlas_meshes/femur_left_mean_rigid_LLP26.geof",
        634,
        1946,
    ),
}


# --------------------------------------------------------------------------------------------
# Data files and the restricted unpickler
# --------------------------------------------------------------------------------------------


def _model_path(sub_path: str) -> Path:
    """Absolute path of a file inside ``musculoskeletal.models``."""
    try:
        from musculoskeletal.models import get_model_path
    except ImportError as exc:  # pragma: no cover - dependency of the package
        raise HipvizError(
            "the LLP26 atlas needs the 'musculoskeletal-models' package: "
            "pip install musculoskeletal-models"
        ) from exc
    path = get_model_path(sub_path)
    if path is None:
        raise HipvizError(
            f"atlas file {sub_path!r} is missing from musculoskeletal-models; "
            "reinstall musculoskeletal-models>=0.2.4"
        )
    return Path(path)


def _numpy_multiarray(name: str) -> Callable[..., Any]:
    """``numpy._core.multiarray.<name>`` (numpy 2) or ``numpy.core.multiarray.<name>``."""
    for module in ("numpy._core.multiarray", "numpy.core.multiarray"):
        try:
            return getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError):  # pragma: no cover - depends on numpy version
            continue
    raise pickle.UnpicklingError(f"numpy has no multiarray.{name}")  # pragma: no cover


_PICKLE_GLOBALS: dict[tuple[str, str], Callable[[], Any]] = {
    ("numpy.core.multiarray", "_reconstruct"): lambda: _numpy_multiarray("_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"): lambda: _numpy_multiarray("_reconstruct"),
    ("numpy.core.multiarray", "scalar"): lambda: _numpy_multiarray("scalar"),
    ("numpy._core.multiarray", "scalar"): lambda: _numpy_multiarray("scalar"),
    ("numpy", "ndarray"): lambda: np.ndarray,
    ("numpy", "dtype"): lambda: np.dtype,
}


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that can rebuild numpy arrays and nothing else.

    Any global other than numpy's array-reconstruction helpers raises
    ``pickle.UnpicklingError`` before it is imported, so a tampered model file
    cannot run code.
    """

    def find_class(self, module: str, name: str) -> Any:
        factory = _PICKLE_GLOBALS.get((module, name))
        if factory is None:
            raise pickle.UnpicklingError(
                f"refusing to load global {module}.{name}: the shape-model pickle may only "
                "contain numpy arrays"
            )
        return factory()


def _load_pickle(path: Path) -> Any:
    """Unpickle ``path`` with :class:`_RestrictedUnpickler`."""
    with open(path, "rb") as fh:
        return _RestrictedUnpickler(fh).load()


@dataclass(frozen=True, eq=False)
class ShapeModel:
    """The LLP26 principal-component shape model.

    Attributes
    ----------
    mean : ndarray, shape (9675,)
        Mean shape in mm, raw model frame, laid out as all x, then all y, then
        all z of the 3225 model nodes (pelvis 0-1945, left femur 1946-2579,
        patella, tibia-fibula).
    modes : ndarray, shape (9675, 26)
        Orthonormal principal directions (unitless), same layout as ``mean``.
    variances : ndarray, shape (26,)
        Variance of each mode in mm^2 (the pickle's ``weights``), decreasing.
        The last one is numerically zero (26 modes from a small training set).

    All arrays are read-only.
    """

    mean: FloatArray
    modes: FloatArray
    variances: FloatArray

    @property
    def sd(self) -> FloatArray:
        """Standard deviation of each mode, shape (26,), mm."""
        return np.sqrt(np.clip(self.variances, 0.0, None))


@functools.lru_cache(maxsize=1)
def shape_model() -> ShapeModel:
    """The parsed LLP26 shape model (cached; arrays are read-only).

    Returns
    -------
    ShapeModel
        Mean (9675,) mm, modes (9675, 26), variances (26,) mm^2.

    Raises
    ------
    HipvizError
        If the model file is missing or does not have the expected content.
    """
    path = _model_path(_SHAPE_MODEL_FILE)
    try:
        raw = _load_pickle(path)
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as exc:
        raise HipvizError(f"cannot read the shape model {path}: {exc}") from exc
    if not isinstance(raw, dict) or not {"mean", "modes", "weights"} <= raw.keys():
        raise HipvizError(f"shape model {path} is not a dict with mean, modes and weights")
    mean = np.array(raw["mean"], dtype=np.float64)
    modes = np.array(raw["modes"], dtype=np.float64)
    variances = np.array(raw["weights"], dtype=np.float64)
    n_coords = 3 * _N_NODES_TOTAL
    if (
        mean.shape != (n_coords,)
        or modes.shape != (n_coords, N_MODES)
        or variances.shape != (N_MODES,)
    ):
        raise HipvizError(
            f"shape model {path} has mean {mean.shape}, modes {modes.shape}, weights "
            f"{variances.shape}; expected ({n_coords},), ({n_coords}, {N_MODES}), ({N_MODES},)"
        )
    for arr in (mean, modes, variances):
        arr.flags.writeable = False
    return ShapeModel(mean=mean, modes=modes, variances=variances)


# --------------------------------------------------------------------------------------------
# Element bases
# --------------------------------------------------------------------------------------------

# element type -> ("quad", nodes along xi1, nodes along xi2) or ("tri", degree, degree)
_ELEMENT_SHAPES: dict[str, tuple[str, int, int]] = {
    "quad_L3_L3": ("quad", 4, 4),
    "quad_L4_L3": ("quad", 5, 4),
    "quad_L4_L4": ("quad", 5, 5),
    "simplex_L3_L3": ("tri", 3, 3),
    "simplex_L4_L4": ("tri", 4, 4),
}


def _lagrange_1d(n_nodes: int, x: FloatArray) -> FloatArray:
    """Lagrange polynomials on ``n_nodes`` equispaced nodes in [0, 1], shape (len(x), n_nodes)."""
    nodes = np.linspace(0.0, 1.0, n_nodes)
    out = np.ones((x.size, n_nodes))
    for k in range(n_nodes):
        for m in range(n_nodes):
            if m != k:
                out[:, k] *= (x - nodes[m]) / (nodes[k] - nodes[m])
    return out


def _tri_grid(n: int) -> FloatArray:
    """Points (i/n, j/n), i + j <= n, rows of constant j, i fastest; shape ((n+1)(n+2)/2, 2)."""
    return np.array([(i / n, j / n) for j in range(n + 1) for i in range(n + 1 - j)])


def _tri_monomials(degree: int, pts: FloatArray) -> FloatArray:
    """Monomials u^a v^b, a + b <= degree, evaluated at ``pts`` (m, 2); shape (m, n_mono)."""
    return np.stack(
        [pts[:, 0] ** a * pts[:, 1] ** b for b in range(degree + 1) for a in range(degree + 1 - b)],
        axis=1,
    )


@functools.lru_cache(maxsize=64)
def _sampling(basis: str, n: int) -> tuple[FloatArray, FloatArray, np.ndarray, np.ndarray]:
    """Basis matrix and grid triangulation of one element type at ``n`` steps per edge.

    Returns
    -------
    basis_matrix : ndarray, shape (n_samples, n_element_nodes)
        Value of each element basis function at each sample point.
    uv : ndarray, shape (n_samples, 2)
        Sample points in element coordinates (xi1, xi2).
    faces : ndarray of int, shape (n_faces, 3)
        Triangles over the samples, counter-clockwise in (xi1, xi2).
    edge_pos : ndarray of int, shape (n_samples, 2)
        For a sample on the element boundary, (local edge index, steps from that
        edge's start); (-1, -1) for interior samples. Corners sit at step 0 of
        the edge they start.
    """
    kind, a, b = _ELEMENT_SHAPES[basis]
    if kind == "quad":
        t = np.arange(n + 1) / n
        lu, lv = _lagrange_1d(a, t), _lagrange_1d(b, t)
        # sample (j, i) -> row j*(n+1)+i ; node (q, p) -> column q*a+p (xi1 fastest)
        mat = np.einsum("ip,jq->jiqp", lu, lv).reshape((n + 1) ** 2, a * b)
        ii, jj = np.meshgrid(np.arange(n + 1), np.arange(n + 1))
        ii, jj = ii.ravel(), jj.ravel()
        uv = np.stack([ii / n, jj / n], axis=1)
        idx = np.arange((n + 1) ** 2).reshape(n + 1, n + 1)
        s00, s10 = idx[:-1, :-1].ravel(), idx[:-1, 1:].ravel()
        s01, s11 = idx[1:, :-1].ravel(), idx[1:, 1:].ravel()
        faces = np.concatenate(
            [np.stack([s00, s10, s11], axis=1), np.stack([s00, s11, s01], axis=1)]
        )
        edge_pos = np.full((uv.shape[0], 2), -1)
        # counter-clockwise edges: 0 bottom (+xi1), 1 right (+xi2), 2 top (-xi1), 3 left (-xi2)
        for edge, on_edge, step in (
            (3, ii == 0, n - jj),
            (2, jj == n, n - ii),
            (1, ii == n, jj),
            (0, jj == 0, ii),
        ):
            start_here = on_edge & (step < n)
            edge_pos[start_here] = np.stack([np.full(start_here.sum(), edge), step[start_here]], 1)
    else:
        degree = a
        uv = _tri_grid(n)
        mat = _tri_monomials(degree, uv) @ np.linalg.inv(_tri_monomials(degree, _tri_grid(degree)))
        ii = np.rint(uv[:, 0] * n).astype(int)
        jj = np.rint(uv[:, 1] * n).astype(int)
        lookup = -np.ones((n + 1, n + 1), dtype=int)
        lookup[ii, jj] = np.arange(uv.shape[0])
        faces_list = []
        for j in range(n):
            for i in range(n - j):
                faces_list.append((lookup[i, j], lookup[i + 1, j], lookup[i, j + 1]))
                if i < n - j - 1:
                    faces_list.append((lookup[i + 1, j], lookup[i + 1, j + 1], lookup[i, j + 1]))
        faces = np.array(faces_list)
        edge_pos = np.full((uv.shape[0], 2), -1)
        # counter-clockwise edges: 0 xi2=0 (+xi1), 1 hypotenuse (towards xi2), 2 xi1=0 (-xi2)
        for edge, on_edge, step in (
            (2, ii == 0, n - jj),
            (1, ii + jj == n, jj),
            (0, jj == 0, ii),
        ):
            start_here = on_edge & (step < n)
            edge_pos[start_here] = np.stack([np.full(start_here.sum(), edge), step[start_here]], 1)
    mat[np.abs(mat) < 1e-14] = 0.0
    for arr in (mat, uv, faces, edge_pos):
        arr.flags.writeable = False
    return mat, uv, faces, edge_pos


@functools.lru_cache(maxsize=8)
def _edge_nodes(basis: str) -> tuple[np.ndarray, ...]:
    """Local node indices along each element edge, counter-clockwise, start to end."""
    kind, a, b = _ELEMENT_SHAPES[basis]
    if kind == "quad":
        idx = np.arange(a * b).reshape(b, a)  # [xi2 index, xi1 index]
        return (idx[0, :], idx[:, -1], idx[-1, ::-1], idx[::-1, 0])
    degree = a
    local = {}
    for j in range(degree + 1):
        for i in range(degree + 1 - j):
            local[i, j] = len(local)
    return (
        np.array([local[i, 0] for i in range(degree + 1)]),
        np.array([local[degree - j, j] for j in range(degree + 1)]),
        np.array([local[0, j] for j in range(degree, -1, -1)]),
    )


# --------------------------------------------------------------------------------------------
# Mesh topology: global node numbering and welding
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class _ElementBlock:
    basis: str  # e.g. "quad_L4_L3"
    element_ids: np.ndarray  # (n_elem,) ids from the .mesh file
    nodes: np.ndarray  # (n_elem, n_element_nodes) global node numbers


@functools.lru_cache(maxsize=4)
def _mesh_topology(body: str) -> tuple[_ElementBlock, ...]:
    """Elements of ``body`` grouped by basis, with global node numbers.

    Global node numbers are not stored in the .mesh file. As GIAS does, the
    (element, local node) pairs are walked in numeric order; each pair not yet
    numbered gets the next number, which is also given to every pair it is
    connected to.
    """
    spec = _BODIES[body]
    mesh_path = _model_path(spec.mesh_file)
    with open(mesh_path) as fh:
        mesh = json.load(fh)
    with open(mesh_path.with_suffix(".ens")) as fh:
        type_to_basis = json.load(fh)["basis"]

    def pair(key: str) -> tuple[int, int]:
        e, p = key.split("_")
        return int(e), int(p)

    connectivity = {pair(k): [pair(x) for x in v.split()] for k, v in mesh["connectivity"].items()}
    number: dict[tuple[int, int], int] = {}
    counter = 0
    for key in sorted(connectivity):
        if key in number:
            continue
        number[key] = counter
        for other in connectivity[key]:
            number[other] = counter
        counter += 1
    if counter != spec.n_nodes:
        raise HipvizError(
            f"{mesh_path.name}: node numbering gave {counter} nodes, expected {spec.n_nodes}"
        )

    by_basis: dict[str, list[int]] = {}
    for elem, descr in mesh["elements"].items():
        basis = type_to_basis[descr.split()[-1]]
        if basis not in _ELEMENT_SHAPES:
            raise HipvizError(f"{mesh_path.name}: unsupported element basis {basis!r}")
        by_basis.setdefault(basis, []).append(int(elem))
    blocks = []
    for basis in sorted(by_basis):
        ids = np.array(sorted(by_basis[basis]))
        n_local = _sampling(basis, 1)[0].shape[1]
        nodes = np.array([[number[e, p] for p in range(n_local)] for e in ids])
        ids.flags.writeable = False
        nodes.flags.writeable = False
        blocks.append(_ElementBlock(basis=basis, element_ids=ids, nodes=nodes))
    return tuple(blocks)


@dataclass(frozen=True, eq=False)
class _Tessellation:
    """Shape-independent part of a body's triangulation at one resolution."""

    sample_to_vertex: np.ndarray  # (n_samples_total,) welded vertex of each sample
    n_vertices: int
    faces: np.ndarray  # (n_faces, 3) vertex indices, element orientation
    face_body: np.ndarray  # (n_faces,) closed body (connected component) of each face
    n_bodies: int


@functools.lru_cache(maxsize=16)
def _tessellation(body: str, n: int) -> _Tessellation:
    """Cached :func:`_weld` of the elements of ``body`` at ``n`` steps per element edge."""
    return _weld(_mesh_topology(body), n, body)


def _weld(blocks: tuple[_ElementBlock, ...], n: int, name: str) -> _Tessellation:
    """Weld the element grids of ``blocks`` at ``n`` steps per element edge.

    A sample inside an element edge is keyed by the edge (its sequence of
    global nodes, read in the lexicographically smaller direction) and its step
    along the edge in that direction; a corner by its global node; an interior
    sample by its element and grid position.
    Shared edges are evaluated from the same nodes with the same basis values,
    so welded samples coincide exactly (up to rounding) for every shape. Every
    element edge must be shared by exactly one other element with the same
    nodes (a conforming, closed mesh); an edge collapsed to one node welds to
    that node.
    """
    keys, faces = [], []
    sample_offset = 0
    elem_offset = 0
    edge_ids: dict[tuple[int, ...], int] = {}  # canonical node sequence -> edge number
    edge_uses: list[int] = []  # number of element sides on each edge
    for block in blocks:
        _, _, grid_faces, edge_pos = _sampling(block.basis, n)
        n_elem, n_samples = block.nodes.shape[0], edge_pos.shape[0]
        block_keys = np.zeros((n_elem, n_samples, 5), dtype=np.int64)
        # interior samples: unique per element
        block_keys[:, :, 0] = 2
        block_keys[:, :, 1] = (elem_offset + np.arange(n_elem))[:, None]
        block_keys[:, :, 2] = np.arange(n_samples)[None, :]
        edges = _edge_nodes(block.basis)
        for k, local in enumerate(edges):
            g = block.nodes[:, local]  # (n_elem, degree+1) global nodes along edge k
            collapsed = np.all(g == g[:, :1], axis=1)
            partial = ~collapsed & np.array([len(set(row)) < len(row) for row in g])
            if partial.any():
                raise HipvizError(
                    f"{name}: element edge partly collapsed (element "
                    f"{block.element_ids[partial][0]}); cannot weld it"
                )
            forward = np.array([tuple(row) <= tuple(row[::-1]) for row in g])
            canon = np.where(forward[:, None], g, g[:, ::-1])
            on_edge = np.flatnonzero(edge_pos[:, 0] == k)
            step = edge_pos[on_edge, 1]
            corner, inner = on_edge[step == 0], on_edge[step > 0]
            for e in range(n_elem):
                if collapsed[e]:  # the whole side is one point
                    block_keys[e, on_edge] = [0, g[e, 0], 0, 0, 0]
                    continue
                edge = edge_ids.setdefault(tuple(canon[e]), len(edge_ids))
                if edge == len(edge_uses):
                    edge_uses.append(0)
                edge_uses[edge] += 1
                block_keys[e, corner] = [0, g[e, 0], 0, 0, 0]
                block_keys[e, inner, 0] = 1
                block_keys[e, inner, 1] = edge
                block_keys[e, inner, 2] = step[step > 0] if forward[e] else n - step[step > 0]
                block_keys[e, inner, 3:] = 0
        keys.append(block_keys.reshape(-1, 5))
        elem_faces = (
            grid_faces[None, :, :] + (sample_offset + n_samples * np.arange(n_elem))[:, None, None]
        )
        faces.append(elem_faces.reshape(-1, 3))
        sample_offset += n_elem * n_samples
        elem_offset += n_elem
    unmatched = [nodes for nodes, edge in edge_ids.items() if edge_uses[edge] != 2]
    if unmatched:
        raise HipvizError(
            f"{name}: {len(unmatched)} element edges are not shared by exactly two elements "
            f"(e.g. global nodes {unmatched[0]}); the mesh is not closed and conforming"
        )
    all_keys = np.concatenate(keys)
    _, first, inverse = np.unique(all_keys, axis=0, return_index=True, return_inverse=True)
    inverse = inverse.ravel()
    # number welded vertices in order of first appearance (stable, element order)
    order = np.argsort(first, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    sample_to_vertex = rank[inverse]
    tri = sample_to_vertex[np.concatenate(faces)]
    # triangles with a repeated vertex lie on collapsed element edges: zero area, dropped
    # (their neighbours already share the collapsed point, so no hole opens)
    keep = (tri[:, 0] != tri[:, 1]) & (tri[:, 1] != tri[:, 2]) & (tri[:, 0] != tri[:, 2])
    tri = tri[keep]
    n_vertices = int(order.size)
    # closed bodies = connected components of the vertex graph
    rows = np.concatenate([tri[:, 0], tri[:, 1], tri[:, 2]])
    cols = np.concatenate([tri[:, 1], tri[:, 2], tri[:, 0]])
    graph = coo_matrix((np.ones(rows.size), (rows, cols)), shape=(n_vertices, n_vertices))
    n_bodies, vertex_body = connected_components(graph, directed=False)
    face_body = vertex_body[tri[:, 0]]
    for arr in (sample_to_vertex, tri, face_body):
        arr.flags.writeable = False
    return _Tessellation(
        sample_to_vertex=sample_to_vertex,
        n_vertices=n_vertices,
        faces=tri,
        face_body=face_body,
        n_bodies=int(n_bodies),
    )


# --------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------


def _validate_weights(weights_sd: ArrayLike | None) -> FloatArray:
    """Weights as a (26,) float array, zero-padded; raise InputError when unusable."""
    if weights_sd is None:
        return np.zeros(N_MODES)
    try:
        w = np.asarray(weights_sd, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InputError(
            f"weights_sd must be a sequence of numbers (standard deviations), got {weights_sd!r}"
        ) from exc
    if w.ndim != 1:
        raise InputError(f"weights_sd must be one-dimensional, got shape {w.shape}")
    if w.size > N_MODES:
        raise InputError(f"weights_sd has {w.size} values; the LLP26 model has {N_MODES} modes")
    if not np.all(np.isfinite(w)):
        raise InputError("weights_sd contains NaN or infinite values; give finite numbers")
    if np.any(np.abs(w) > MAX_ABS_WEIGHT_SD):
        worst = int(np.argmax(np.abs(w)))
        raise InputError(
            f"weights_sd[{worst}] = {w[worst]:g} is outside +-{MAX_ABS_WEIGHT_SD:g} standard "
            "deviations; shapes that far from the mean are not plausible"
        )
    return np.concatenate([w, np.zeros(N_MODES - w.size)])


def node_coordinates(weights_sd: ArrayLike | None = None) -> dict[str, Points]:
    """Node coordinates of pelvis and left femur for given shape-mode weights.

    Parameters
    ----------
    weights_sd : array_like, shape (k,), k <= 26, optional
        Weights of the first ``k`` shape modes in standard deviations (missing
        ones are 0). Must be finite with ``|w| <= 5``. ``None`` gives the mean
        shape.

    Returns
    -------
    dict
        ``"pelvis"``: (1946, 3) and ``"femur_left"``: (634, 3) node
        coordinates in mm, raw model frame (+x subject left, +y posterior,
        +z superior).

    Raises
    ------
    InputError
        If ``weights_sd`` is not a finite 1-D sequence of at most 26 values
        within +-5.
    """
    w = _validate_weights(weights_sd)
    model = shape_model()
    shape = model.mean + model.modes @ (w * model.sd)
    xyz = shape.reshape(3, _N_NODES_TOTAL).T
    return {
        name: np.ascontiguousarray(xyz[spec.first_node : spec.first_node + spec.n_nodes])
        for name, spec in _BODIES.items()
    }


@dataclass(frozen=True, eq=False)
class AtlasGeometry:
    """Pelvis and left femur of one LLP26 shape, as watertight meshes.

    All coordinates are in mm in the raw model frame (+x subject left,
    +y posterior, +z superior; not centred on the pelvis).

    Attributes
    ----------
    pelvis : trimesh.Trimesh
        Watertight, outward-wound mesh of three closed bodies: left and right
        hemipelvis and sacrum.
    femur_left : trimesh.Trimesh
        Watertight, outward-wound mesh of the left femur (one body). Use
        :func:`mirror_x` for a right femur.
    landmarks : dict of str to ndarray, shape (3,)
        Pelvic landmarks on the surface, mm: ``asis_left``, ``asis_right``,
        ``psis_left``, ``psis_right``, ``pubic_tubercle_left``,
        ``pubic_tubercle_right``.
    weights_sd : ndarray, shape (26,)
        Shape-mode weights used, in standard deviations.
    """

    pelvis: trimesh.Trimesh
    femur_left: trimesh.Trimesh
    landmarks: dict[str, np.ndarray]
    weights_sd: np.ndarray


def _body_mesh(body: str, nodes: Points, n: int) -> trimesh.Trimesh:
    """Evaluate ``body`` from its node coordinates (n_nodes, 3) into a welded, outward mesh."""
    return _surface(_mesh_topology(body), _tessellation(body, n), nodes, n)


def _surface(
    blocks: tuple[_ElementBlock, ...], tess: _Tessellation, nodes: Points, n: int
) -> trimesh.Trimesh:
    """Sample ``blocks`` with node coordinates ``nodes`` (n_nodes, 3) mm on the welded grid."""
    samples = []
    for block in blocks:
        mat = _sampling(block.basis, n)[0]
        n_elem, n_local = block.nodes.shape
        # (n_local, n_elem*3) -> (n_samples, n_elem*3): one product per element type
        coords = nodes[block.nodes].transpose(1, 0, 2).reshape(n_local, n_elem * 3)
        pts = (mat @ coords).reshape(-1, n_elem, 3).transpose(1, 0, 2)
        samples.append(pts.reshape(-1, 3))
    all_samples = np.concatenate(samples)
    vertices = np.empty((tess.n_vertices, 3))
    vertices[tess.sample_to_vertex] = all_samples
    faces = np.array(tess.faces)
    # orient each closed body outward: its signed volume must be positive
    v0, v1, v2 = (vertices[faces[:, i]] for i in range(3))
    signed = np.einsum("ij,ij->i", v0, np.cross(v1, v2))
    body_volume = np.bincount(tess.face_body, weights=signed, minlength=tess.n_bodies)
    flip = body_volume[tess.face_body] < 0
    faces[flip] = faces[flip][:, ::-1]
    return trimesh.Trimesh(vertices=vertices, faces=faces, process=False, validate=False)


def evaluate(weights_sd: ArrayLike | None = None, *, subdivisions: int = 8) -> AtlasGeometry:
    """Evaluate the LLP26 model into watertight pelvis and left-femur meshes.

    Parameters
    ----------
    weights_sd : array_like, shape (k,), k <= 26, optional
        Shape-mode weights in standard deviations (see :func:`node_coordinates`).
        ``None`` gives the mean shape.
    subdivisions : int, default 8
        Sampling steps per element edge, 1 to 40. Each quadrilateral element
        gives ``2 * subdivisions**2`` triangles and each triangular element
        ``subdivisions**2`` (at 8: pelvis 27 648, femur 5 248 triangles).

    Returns
    -------
    AtlasGeometry
        Meshes in mm, raw model frame, plus the pelvic landmarks and the
        weights used.

    Raises
    ------
    InputError
        If ``weights_sd`` or ``subdivisions`` is out of range.
    """
    if (
        isinstance(subdivisions, bool)
        or not isinstance(subdivisions, (int, np.integer))
        or not 1 <= subdivisions <= MAX_SUBDIVISIONS
    ):
        raise InputError(
            f"subdivisions must be an integer from 1 to {MAX_SUBDIVISIONS}, got {subdivisions!r}"
        )
    n = int(subdivisions)
    w = _validate_weights(weights_sd)
    nodes = node_coordinates(w)
    pelvis = _body_mesh("pelvis", nodes["pelvis"], n)
    femur = _body_mesh("femur_left", nodes["femur_left"], n)
    landmarks = {name: nodes["pelvis"][node].copy() for name, node in LANDMARK_NODES.items()}
    w.flags.writeable = False
    return AtlasGeometry(pelvis=pelvis, femur_left=femur, landmarks=landmarks, weights_sd=w)


def mirror_x(mesh: trimesh.Trimesh, *, x0: float = 0.0) -> trimesh.Trimesh:
    """Mirror a mesh about the plane x = ``x0``, keeping normals outward.

    Parameters
    ----------
    mesh : trimesh.Trimesh
        Mesh in mm (any frame whose x axis is the mirror normal).
    x0 : float, default 0.0
        Position of the mirror plane along x, mm. In the raw model frame the
        pelvic mid-sagittal plane is *not* at x = 0 (it lies near x = +25 to
        +40 mm), so mirroring the left femur about x = 0 gives a right femur
        about 65 mm too far to the right of the right acetabulum unless ``x0``
        is chosen accordingly.

    Returns
    -------
    trimesh.Trimesh
        New mesh with x -> 2 * x0 - x and every face's winding reversed, so a
        watertight outward mesh stays watertight and outward (positive volume).
    """
    vertices = np.array(mesh.vertices, dtype=np.float64)
    vertices[:, 0] = 2.0 * x0 - vertices[:, 0]
    faces = np.array(mesh.faces)[:, ::-1]
    return trimesh.Trimesh(vertices=vertices, faces=faces, process=False, validate=False)
