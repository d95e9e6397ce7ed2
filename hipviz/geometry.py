"""Small vectorised geometry: unit vectors, angles, rotations, sphere fits.

Conventions used throughout hipviz:

* points are ``(n, 3) float`` arrays in millimetres; a single point is ``(3,)``;
* transforms are ``(4, 4)`` homogeneous matrices named ``tf_<to>_<from>`` so
  that ``p_to = apply(tf_to_from, p_from)``; rotations are right-handed;
* angles leave public functions in degrees.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._typing import ArrayLike, FloatArray, Points, Transform, Vector


def norms(v: ArrayLike) -> FloatArray:
    """Lengths of vectors along the last axis: ``np.linalg.norm(v, axis=-1)``, to the last bit.

    numpy sums the squares of each short row in a loop of its own, which on
    (n, 3) arrays costs several times the arithmetic; three whole-array sums
    in the same order, ``(x^2 + y^2) + z^2``, give the same floats.

    Parameters
    ----------
    v : (..., d) float
        Vectors (any d; d = 3 takes the fast path).

    Returns
    -------
    (...) float
    """
    v = np.asarray(v, dtype=float)
    if v.shape[-1:] != (3,):
        return np.linalg.norm(v, axis=-1)
    x, y, z = v[..., 0], v[..., 1], v[..., 2]
    return np.sqrt(x * x + y * y + z * z)


def cross3(a: ArrayLike, b: ArrayLike) -> FloatArray:
    """``np.cross(a, b)`` of float 3-vectors along the last axis, to the last bit.

    The same products and differences as numpy's, without its axis handling,
    which costs more than the arithmetic for the few vectors of a section.

    Parameters
    ----------
    a, b : (..., 3) float
        Broadcast against each other.

    Returns
    -------
    (..., 3) float
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    a0, a1, a2 = a[..., 0], a[..., 1], a[..., 2]
    b0, b1, b2 = b[..., 0], b[..., 1], b[..., 2]
    return np.stack([a1 * b2 - a2 * b1, a2 * b0 - a0 * b2, a0 * b1 - a1 * b0], axis=-1)


def unit(v: ArrayLike) -> FloatArray:
    """Return ``v`` scaled to unit length along its last axis.

    Parameters
    ----------
    v : (..., 3) float
        Vectors; zero vectors come back as NaN.
    """
    v = np.asarray(v, dtype=float)
    norm = norms(v)[..., None]
    with np.errstate(invalid="ignore", divide="ignore"):
        return v / norm


def angle_deg(a: ArrayLike, b: ArrayLike) -> FloatArray:
    """Unsigned angle between vectors ``a`` and ``b``, degrees in [0, 180].

    Uses ``atan2(|a x b|, a . b)``, which stays accurate near 0 and 180 degrees.
    """
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    cross = np.linalg.norm(np.cross(a, b), axis=-1)
    dot = np.sum(a * b, axis=-1)
    return np.degrees(np.arctan2(cross, dot))


def project_onto_plane(v: ArrayLike, normal: ArrayLike) -> FloatArray:
    """Component of vectors ``v`` (..., 3) perpendicular to ``normal`` (3,)."""
    n = unit(normal)
    v = np.asarray(v, dtype=float)
    return v - np.sum(v * n, axis=-1, keepdims=True) * n


def rigid(rotation: ArrayLike | None = None, translation: ArrayLike | None = None) -> Transform:
    """(4, 4) transform ``x -> R x + t``."""
    tf = np.eye(4)
    if rotation is not None:
        tf[:3, :3] = rotation
    if translation is not None:
        tf[:3, 3] = translation
    return tf


def rotation(axis: ArrayLike, angle_deg: float) -> FloatArray:
    """(3, 3) right-handed rotation by ``angle_deg`` about ``axis`` (3,) (Rodrigues)."""
    k = unit(axis)
    t = np.radians(angle_deg)
    kx = np.array([[0.0, -k[2], k[1]], [k[2], 0.0, -k[0]], [-k[1], k[0], 0.0]])
    return np.eye(3) + np.sin(t) * kx + (1.0 - np.cos(t)) * (kx @ kx)


def rotation_z_to(direction: ArrayLike) -> FloatArray:
    """(3, 3) rotation taking +z onto the unit vector along ``direction`` (3,)."""
    d = unit(direction)
    z = np.array([0.0, 0.0, 1.0])
    v = np.cross(z, d)
    s, c = np.linalg.norm(v), float(z @ d)
    if s < 1e-12:
        return np.eye(3) if c > 0 else np.diag([1.0, -1.0, -1.0])
    k = np.array([[0, -v[2], v[1]], [v[2], 0, -v[0]], [-v[1], v[0], 0]])
    return np.eye(3) + k + k @ k * ((1 - c) / s**2)


def rotation_about(axis: ArrayLike, angle_deg: float, point: ArrayLike) -> Transform:
    """(4, 4) rotation by ``angle_deg`` about the line through ``point`` along ``axis``."""
    r = rotation(axis, angle_deg)
    p = np.asarray(point, dtype=float)
    return rigid(r, p - r @ p)


def translation(offset: ArrayLike) -> Transform:
    """(4, 4) pure translation by ``offset`` (3,), mm."""
    return rigid(None, offset)


def apply(tf: ArrayLike, points: ArrayLike) -> FloatArray:
    """Apply a (4, 4) transform to points (..., 3)."""
    tf = np.asarray(tf, dtype=float)
    pts = np.asarray(points, dtype=float)
    return pts @ tf[:3, :3].T + tf[:3, 3]


def invert(tf: ArrayLike) -> Transform:
    """Inverse of a rigid or mirror (4, 4) transform (orthogonal linear part)."""
    tf = np.asarray(tf, dtype=float)
    out = np.eye(4)
    out[:3, :3] = tf[:3, :3].T
    out[:3, 3] = -tf[:3, :3].T @ tf[:3, 3]
    return out


def frame_from_axes(x: ArrayLike, y: ArrayLike, z: ArrayLike, origin: ArrayLike) -> Transform:
    """``tf_frame_world`` for a frame whose axes, in world coordinates, are x, y, z.

    The axes must be orthonormal and right-handed (det = +1); this is checked.
    """
    r = np.vstack([x, y, z]).astype(float)
    if not np.allclose(r @ r.T, np.eye(3), atol=1e-6) or np.linalg.det(r) < 0:
        msg = "frame axes must be orthonormal and right-handed"
        raise ValueError(msg)
    return rigid(r, -r @ np.asarray(origin, dtype=float))


@dataclass(frozen=True)
class Sphere:
    """A fitted sphere: ``center_mm`` (3,), ``radius_mm``, ``rms_mm`` residual, ``n`` points."""

    center_mm: Vector
    radius_mm: float
    rms_mm: float
    n: int


def fit_sphere(points: Points, weights: ArrayLike | None = None) -> Sphere:
    """Least-squares sphere through ``points`` (n, 3), n >= 4.

    Solves the linear (algebraic) problem ``|p|^2 = 2 c.p + (r^2 - |c|^2)``
    on centred coordinates, which equals the geometric fit for points that lie
    close to a sphere, as head and socket points do.

    Parameters
    ----------
    points : (n, 3) float
        Points, mm.
    weights : (n,) float, optional
        Non-negative weight of each point, e.g. the surface area it stands
        for, so that a fit on surface samples does not depend on how the
        surface was triangulated. Equal weights when None.
    """
    pts = np.asarray(points, dtype=float)
    if pts.ndim != 2 or pts.shape[1] != 3 or len(pts) < 4:
        msg = f"expected `points` of shape (n >= 4, 3), got {pts.shape}"
        raise ValueError(msg)
    w = np.ones(len(pts)) if weights is None else np.asarray(weights, dtype=float)
    if w.shape != (len(pts),) or not np.all(w >= 0) or w.sum() <= 0:
        msg = f"expected `weights` of shape ({len(pts)},), non-negative, not all 0"
        raise ValueError(msg)
    w = w / w.sum()
    mean = w @ pts
    q = pts - mean
    b = np.einsum("ij,ij->i", q, q)
    # The normal equations of [2q, 1] [c; k] = |q|^2 with weights w. On
    # centred coordinates (sum w q = 0) they split: 4 C c = 2 sum w q |q|^2
    # with C = sum w q q^T, and k = sum w |q|^2. Moments are far cheaper than
    # forming the (n, 4) system.
    wq = q * w[:, None]
    cov = wq.T @ q
    center = np.linalg.solve(2.0 * cov, wq.T @ b)
    # Long dot products by einsum, not BLAS: OpenBLAS splits a dot of more
    # than 10k terms over its threads, which stalls for milliseconds when
    # the other cores are busy (a batch worker's usual state) and makes the
    # rounding depend on the thread count.
    k = float(np.einsum("i,i->", w, b))
    radius = float(np.sqrt(max(k + center @ center, 0.0)))
    resid = norms(q - center) - radius
    rms = float(np.sqrt(np.einsum("i,i,i->", w, resid, resid)))
    return Sphere(center + mean, radius, rms, len(pts))


def fibonacci_directions(n: int) -> Points:
    """``n`` unit vectors (n, 3) spread near-uniformly over the sphere (golden spiral)."""
    i = np.arange(n) + 0.5
    z = 1.0 - 2.0 * i / n
    rho = np.sqrt(1.0 - z * z)
    phi = np.pi * (1.0 + 5.0**0.5) * i
    return np.column_stack([rho * np.cos(phi), rho * np.sin(phi), z])


def principal_axes(points: Points) -> tuple[Vector, FloatArray, FloatArray]:
    """Centroid (3,), principal axes (3, 3) as rows (largest spread first), std devs (3,)."""
    pts = np.asarray(points, dtype=float)
    mean = pts.mean(axis=0)
    _, s, vt = np.linalg.svd(pts - mean, full_matrices=False)
    return mean, vt, s / np.sqrt(max(len(pts) - 1, 1))
