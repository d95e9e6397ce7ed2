"""Cartilage contact pressure in the hip by discrete element analysis (DEA).

Bone meshes carry no cartilage. As in the rigid body spring model (Genda et
al. 2001), the joint space between the socket and the femoral head bone stands
for both cartilage layers: a bed of independent, compression-only springs sits
on the socket's articular surface, one per mesh face, along the face normal,
with a rest thickness ``h`` equal to the local bone-to-bone gap. The femoral
head is rigid and translates by ``u``; a spring anchored at a face with unit
normal ``n`` (pointing from the socket toward the head centre) is compressed by

    d = -n . u        (mm; only d > 0 presses)

and presses with

    linear:       p = K d / h
    logarithmic:  p = -K ln(1 - d / h)        (Bei & Fregly 2004)

    K = E (1 - nu) / ((1 + nu) (1 - 2 nu))    (the confined-compression modulus)

The head is in equilibrium when the springs carry the joint force ``F`` (the
force the head exerts on the socket): ``sum_i p_i A_i (-n_i) = F``. That is
the stationary point of the convex energy

    W(u) = sum_i A_i w(d_i) - F . u,    w(d) = int_0^max(d, 0) p(s) ds,

which :func:`solve_contact` minimises by Newton's method on the active set
(springs with d > 0) with a backtracking line search; for the logarithmic law
the line search also keeps every spring at d < h.

Frames: every point, normal and force is in one frame (the measurement frame
of :class:`hipviz.hip.HipAnalysis`, RAS, mm); results come back in it.
Pressures are in MPa (N/mm^2), forces in N, areas in mm^2.

Exact answer used by the tests (DESIGN.md §8.2): concentric spheres, uniform
h, linear springs, load F along the axis of a covered spherical cap of radius
r and half-angle alpha: peak ``p0 = 3 F / (2 pi r^2 (1 - cos^3 alpha))``, mean
over the contact ``p0 (1 + cos alpha) / 2``, contact area
``2 pi r^2 (1 - cos alpha)`` and ``|u| = p0 h / K``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import trimesh

from ._typing import ArrayLike, FloatArray, Transform, Vector
from .errors import InputError, LandmarkError
from .geometry import Sphere, unit
from .measures import HipAxes

#: Default Young's modulus of hip cartilage, MPa: the middle of the 8-15 MPa used by
#: hip DEA and FE studies (DESIGN.md §8.2).
MODULUS_MPA = 12.0
#: Default Poisson's ratio of cartilage: 0.45, within the 0.40-0.45 of DESIGN.md §8.2.
#: With E = 12 MPa this gives K = 45.5 MPa.
POISSON = 0.45
#: Accepted Young's modulus, MPa: far beyond any cartilage (about 1-30 MPa) on both sides.
MODULUS_RANGE_MPA = (0.1, 1000.0)
SPRING_LAWS = ("linear", "log")

#: A face carries a spring only if its bone lies at most this far from the femoral
#: head surface along its normal, mm. Farther is the acetabular fossa or bone beyond
#: the joint. Measured here: the CT specimen's joint space is 1-4 mm, the built-in
#: hip's (LLP26 mean, reamed) 2-7 mm with its widest under the lateral roof, and the
#: teaching cases' fossa lies 9-10 mm from the head.
MAX_GAP_MM = 8.0
#: Rest thickness h = the local gap clamped to this range, mm. The lower bound
#: keeps a spring finite where the meshes touch or overlap (segmentation or seating
#: error); the upper bound is :data:`MAX_GAP_MM` (wider gaps carry no spring).
THICKNESS_RANGE_MM = (1.0, MAX_GAP_MM)
#: Bone deeper than the socket sphere by more than this is the acetabular fossa, mm
#: (as :data:`hipviz.hip.FOSSA_DEPTH_MM`).
FOSSA_DEPTH_MM = 2.5
#: A face carries a spring only if its normal is within this angle of the direction
#: to the head centre, degrees: the articular surface faces the head; the rounded
#: rim and the outside of the bone do not.
MAX_FACING_DEG = 60.0

#: Newton stops when the force residual |sum p A (-n) - F| is below this fraction of |F|.
FORCE_TOLERANCE = 1e-6
MAX_ITERATIONS = 40
#: The log law keeps every spring at d <= (1 - this) h.
LOG_MARGIN = 1e-6
#: A head displaced by more than this many largest rest thicknesses has left the
#: joint space: the model (small displacements of a seated head) no longer holds,
#: and a load near or past the edge of the socket's opening has no equilibrium in it.
RUNAWAY_THICKNESSES = 2.0


def spring_modulus_mpa(modulus_mpa: float = MODULUS_MPA, poisson: float = POISSON) -> float:
    """Confined-compression (aggregate) modulus ``K = E (1 - nu) / ((1 + nu) (1 - 2 nu))``, MPa.

    Raises
    ------
    InputError
        E outside :data:`MODULUS_RANGE_MPA`, or nu outside [0, 0.5).
    """
    e, nu = float(modulus_mpa), float(poisson)
    lo, hi = MODULUS_RANGE_MPA
    if not (np.isfinite(e) and lo <= e <= hi):
        msg = f"cartilage modulus {modulus_mpa} MPa is outside {lo:g}-{hi:g} MPa"
        raise InputError(msg)
    if not (np.isfinite(nu) and 0.0 <= nu < 0.5):
        msg = f"Poisson's ratio {poisson} is outside [0, 0.5) (0.5 is incompressible: K infinite)"
        raise InputError(msg)
    return e * (1.0 - nu) / ((1.0 + nu) * (1.0 - 2.0 * nu))


@dataclass(frozen=True, eq=False)
class ArticularSurface:
    """The springs on the socket's articular surface.

    Attributes
    ----------
    faces : (n,) int
        Indices of the pelvis (or fragment) faces that carry springs.
    points : (n, 3) float
        Spring anchors (face centroids), mm, measurement frame.
    normals : (n, 3) float
        Unit face normals, pointing from the socket surface toward the head centre.
    areas : (n,) float
        Face areas, mm^2.
    thickness : (n,) float
        Rest thickness h of each spring, mm: the local bone-to-bone gap,
        clamped to :data:`THICKNESS_RANGE_MM`.
    gap_source : str
        What the gap was measured to: ``"femur"`` (rays along the normals
        against the femur mesh) or ``"head sphere"`` (``|x - c| - r``).
    """

    faces: np.ndarray
    points: np.ndarray
    normals: np.ndarray
    areas: np.ndarray
    thickness: np.ndarray
    gap_source: str = "head sphere"

    def __len__(self) -> int:
        return len(self.faces)

    @property
    def area_mm2(self) -> float:
        """Total area of the spring faces, mm^2."""
        return float(self.areas.sum())

    def moved(self, tf: Transform) -> ArticularSurface:
        """The same springs after a rigid move ``tf`` (4, 4) of the bone that carries them.

        Used for an acetabular fragment: anchors and normals move with it,
        areas and rest thicknesses stay (the cartilage moves with the bone).
        To measure the gap again against the femoral head where it is after
        the move, follow with :meth:`with_head_gap`.
        """
        tf = np.asarray(tf, dtype=float)
        if tf.shape != (4, 4) or not np.all(np.isfinite(tf)):
            msg = f"a move must be a finite (4, 4) transform, got shape {tf.shape}"
            raise InputError(msg)
        rot = tf[:3, :3]
        return ArticularSurface(
            self.faces,
            _rotate(self.points, rot) + tf[:3, 3],
            _rotate(self.normals, rot),
            self.areas,
            self.thickness,
            self.gap_source,
        )

    def with_head_gap(self, head: Sphere) -> ArticularSurface:
        """The same springs with rest thickness ``|x - c| - r`` to a head sphere, clamped.

        ``head`` is the femoral head sphere where it is now (measurement
        frame). In :class:`hipviz.simulate.Simulation` the femur follows the
        socket centre (``tf_follow``), so a head sphere moved with it gives
        the same gaps as before the move: a PAO changes the pressure by turning
        the surface under a load that stays put, not by changing the gap.
        """
        return ArticularSurface(
            self.faces,
            self.points,
            self.normals,
            self.areas,
            _clamp_thickness(_sphere_gap(self.points, head)),
            "head sphere",
        )


def _rotate(v: np.ndarray, rot: np.ndarray) -> FloatArray:
    """``v @ rot.T`` for (n, 3) v, written out per column.

    A BLAS product would do the same, but multithreaded BLAS spends longer
    handing a 10k x 3 product to its threads than computing it, and on a busy
    machine far longer (tens of milliseconds).
    """
    return v[:, :1] * rot[:, 0] + v[:, 1:2] * rot[:, 1] + v[:, 2:] * rot[:, 2]


def _dot(a: np.ndarray, b: np.ndarray) -> float:
    """``a @ b`` for 1-D arrays without BLAS (see :func:`_rotate`).

    OpenBLAS splits a dot product of more than 10 000 elements over its
    threads; ``einsum`` (unoptimised) never calls BLAS.
    """
    return float(np.einsum("i,i->", a, b))


def _dot3(v: np.ndarray, w: ArrayLike) -> FloatArray:
    """``v @ w`` for (n, 3) v and (3,) w, per column (see :func:`_rotate`)."""
    w = np.asarray(w, dtype=float)
    return v[:, 0] * w[0] + v[:, 1] * w[1] + v[:, 2] * w[2]


def _sphere_gap(points: np.ndarray, head: Sphere) -> FloatArray:
    return np.linalg.norm(points - np.asarray(head.center_mm, dtype=float), axis=1) - float(
        head.radius_mm
    )


def _clamp_thickness(gap: np.ndarray) -> FloatArray:
    lo, hi = THICKNESS_RANGE_MM
    return np.clip(gap, lo, hi)


def articular_surface(
    pelvis: trimesh.Trimesh,
    head: Sphere,
    socket: Sphere | None = None,
    *,
    femur: trimesh.Trimesh | None = None,
    max_gap_mm: float = MAX_GAP_MM,
    fossa_depth_mm: float = FOSSA_DEPTH_MM,
    max_facing_deg: float = MAX_FACING_DEG,
) -> ArticularSurface:
    """Select the socket faces that carry springs and measure their rest thickness.

    A face carries a spring when (all in the mesh's frame):

    * its outward normal turns toward the head centre, within ``max_facing_deg``
      of the direction to it (bone facing the head; the mesh must be closed
      and outward-oriented, as every loaded mesh is);
    * its gap to the head is at most ``max_gap_mm``;
    * with ``socket``, it lies no deeper than ``fossa_depth_mm`` beyond the
      socket sphere (deeper is the fossa, which carries no load).

    The gap of a face is measured from its centroid along its normal: to the
    femur mesh (first hit of a ray, Embree) when ``femur`` is given, else to
    the head sphere as ``|x - c| - r``. Faces whose ray misses the femur carry
    no spring. The rest thickness is the gap clamped to
    :data:`THICKNESS_RANGE_MM` (bones that touch or overlap get the lower bound).

    Parameters
    ----------
    pelvis : trimesh.Trimesh
        Pelvis or acetabular piece, mm, outward normals.
    head : Sphere
        Femoral head sphere, same frame.
    socket : Sphere, optional
        Socket (acetabular) sphere, same frame, to exclude the fossa.
    femur : trimesh.Trimesh, optional
        The femur, same frame, to measure the gap to its surface.
    max_gap_mm, fossa_depth_mm, max_facing_deg : float
        Selection limits (defaults :data:`MAX_GAP_MM`, :data:`FOSSA_DEPTH_MM`,
        :data:`MAX_FACING_DEG`).

    Returns
    -------
    ArticularSurface

    Raises
    ------
    LandmarkError
        No face of the pelvis qualifies (the head is not in this socket).
    """
    c = np.asarray(head.center_mm, dtype=float)
    r = float(head.radius_mm)
    if not (np.all(np.isfinite(c)) and np.isfinite(r) and r > 0):
        msg = f"head sphere centre {c} / radius {r} mm is not a usable sphere"
        raise InputError(msg)
    centroids = np.asarray(pelvis.triangles_center)
    v = centroids - c
    dist = np.linalg.norm(v, axis=1)
    # Cheap cut first: only bone within the gap of the head sphere can qualify
    # (a ray gap is never shorter than the radial one).
    near = (dist <= r + max_gap_mm) & (dist > 0.5 * r)
    idx = np.flatnonzero(near)
    normals = np.asarray(pelvis.face_normals)[idx]
    to_c = -v[idx] / dist[idx, None]
    facing = np.einsum("ij,ij->i", normals, to_c) >= np.cos(np.radians(max_facing_deg))
    if socket is not None:
        cs = np.asarray(socket.center_mm, dtype=float)
        depth = np.linalg.norm(centroids[idx] - cs, axis=1) - float(socket.radius_mm)
        facing &= depth <= fossa_depth_mm
    idx, normals = idx[facing], normals[facing]
    points = centroids[idx]
    if femur is not None and len(idx):
        from .raycast import RayCaster

        gap, cos = RayCaster(femur).first_hit_facing(points, normals)
        # A ray that leaves the femur first started inside it: the bones overlap.
        gap = np.where(cos > 0, 0.0, gap)
        source = "femur"
    else:
        gap = _sphere_gap(points, head)
        source = "head sphere"
    keep = np.isfinite(gap) & (gap <= max_gap_mm)
    if not keep.any():
        msg = (
            f"no socket surface faces the femoral head within {max_gap_mm:g} mm of it "
            "(is the femur seated in this pelvis?)"
        )
        raise LandmarkError(msg, bone="pelvis")
    idx, normals, points, gap = idx[keep], normals[keep], points[keep], gap[keep]
    areas = np.asarray(pelvis.area_faces)[idx]
    return ArticularSurface(
        idx.astype(np.int64), points, normals, areas, _clamp_thickness(gap), source
    )


@dataclass(frozen=True, eq=False)
class ContactResult:
    """Pressure on the articular surface under one load.

    Attributes
    ----------
    pressure_mpa : (n,) float
        Pressure of each spring face, MPa, >= 0 (0: not in contact).
    displacement_mm : (3,) float
        Translation u of the femoral head, mm, same frame as the surface.
    peak_mpa : float
        Largest face pressure, MPa.
    mean_mpa : float
        Area-weighted mean pressure over the faces in contact, MPa (0 with no contact).
    area_mm2 : float
        Area of the faces in contact (p > 0), mm^2.
    center_mm : (3,) float
        Pressure-weighted centre of the contact (sum p A x / sum p A), mm;
        NaN with no contact.
    lateral_roof_share : float
        Fraction (0-1) of the summed spring forces ``sum p A`` carried by the
        lateral roof: the springs whose anchor lies lateral of the head centre
        and above its equator (``(x - c) . lateral > 0`` and
        ``(x - c) . superior > 0`` in the hip's axes). No standard published
        definition was found; this one follows the radiographic picture of a
        dysplastic hip, whose load concentrates on the lateral rim. NaN
        without axes or without contact.
    residual_n : float
        |sum p A (-n) - F| at the solution, N.
    iterations : int
        Newton iterations.
    method : str
        Spring law, K and solver, in words.
    spring : str
        ``"linear"`` or ``"log"``.
    modulus_mpa, poisson, k_mpa : float
        E, nu and K used.
    force_n : (3,) float
        The load solved for, N.
    """

    pressure_mpa: np.ndarray
    displacement_mm: Vector
    peak_mpa: float
    mean_mpa: float
    area_mm2: float
    center_mm: Vector
    lateral_roof_share: float
    iterations: int
    method: str
    residual_n: float = 0.0
    spring: str = "linear"
    modulus_mpa: float = MODULUS_MPA
    poisson: float = POISSON
    k_mpa: float = 0.0
    force_n: Vector | None = None

    @property
    def in_contact(self) -> np.ndarray:
        """(n,) bool: faces with positive pressure."""
        return self.pressure_mpa > 0

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready summary (no per-face arrays); keys carry their units; NaN -> None."""
        return {
            "contact_peak_mpa": _finite(self.peak_mpa),
            "contact_mean_mpa": _finite(self.mean_mpa),
            "contact_area_mm2": _finite(self.area_mm2),
            "contact_center_mm": [_finite(x) for x in self.center_mm],
            "contact_lateral_roof_share": _finite(self.lateral_roof_share),
            "contact_displacement_mm": [_finite(x) for x in self.displacement_mm],
            "contact_spring": self.spring,
            "contact_modulus_mpa": float(self.modulus_mpa),
            "contact_poisson": float(self.poisson),
            "contact_method": self.method,
        }


def _finite(x: float) -> float | None:
    x = float(x)
    return x if np.isfinite(x) else None


def _law(spring: str, k_mpa: float, d: np.ndarray, h: np.ndarray):
    """(pressure, d pressure / d d, energy per area) of springs at compression d >= 0."""
    if spring == "linear":
        kh = k_mpa / h
        return kh * d, kh, 0.5 * kh * d * d
    log1 = np.log1p(-d / h)
    return -k_mpa * log1, k_mpa / (h - d), k_mpa * (d + (h - d) * log1)


class _Springs:
    """The springs as contiguous columns, for a solve without BLAS matrix products.

    Each product here is a few thousand multiply-adds; multithreaded BLAS calls
    for them cost more in thread hand-offs than they save, and far more on a
    busy machine, so they are written out per column.
    """

    def __init__(self, normals, areas, thickness, spring, k_mpa):
        self.nx, self.ny, self.nz = (np.ascontiguousarray(normals[:, i]) for i in range(3))
        self.a, self.h, self.spring, self.k = areas, thickness, spring, k_mpa

    def with_law(self, spring: str) -> _Springs:
        out = object.__new__(_Springs)
        out.__dict__.update(self.__dict__, spring=spring)
        return out

    def compression(self, u) -> FloatArray:
        """d = -n . u, mm, clipped at 0 (springs do not pull)."""
        d = -(self.nx * u[0] + self.ny * u[1] + self.nz * u[2])
        return np.maximum(d, 0.0, out=d)

    def pressure(self, d) -> FloatArray:
        return _law(self.spring, self.k, d, self.h)[0]

    def force(self, p) -> FloatArray:
        """sum p A (-n): the force the springs take from the head, N."""
        pa = p * self.a
        return -np.array([_dot(self.nx, pa), _dot(self.ny, pa), _dot(self.nz, pa)])

    def energy(self, u, f) -> float:
        d = self.compression(u)
        if self.spring == "log" and np.any(d >= self.h):
            return np.inf
        return _dot(self.a, _law(self.spring, self.k, d, self.h)[2]) - float(f @ u)

    def hessian(self, d) -> FloatArray:
        """sum over compressed springs of A p'(d) n n^T, (3, 3) N/mm."""
        w = np.where(d > 0, self.a * _law(self.spring, self.k, d, self.h)[1], 0.0)
        cols = (self.nx, self.ny, self.nz)
        wc = [w * c for c in cols]
        return np.array([[_dot(wc[i], cols[j]) for j in range(3)] for i in range(3)])


def _validate_force(force_n: ArrayLike) -> FloatArray:
    f = np.asarray(force_n, dtype=float)
    if f.shape != (3,):
        msg = f"joint force must be 3 values (N), got shape {f.shape}"
        raise InputError(msg)
    if not np.all(np.isfinite(f)):
        msg = f"joint force {f.tolist()} N is not finite"
        raise InputError(msg)
    return f


def solve_contact(
    surface: ArticularSurface,
    head_center: Vector,
    force_n: Vector,
    *,
    modulus_mpa: float = MODULUS_MPA,
    poisson: float = POISSON,
    spring: str = "linear",
    axes: HipAxes | None = None,
    tolerance: float = FORCE_TOLERANCE,
) -> ContactResult:
    """Pressure on the articular surface when the head presses on it with ``force_n``.

    Parameters
    ----------
    surface : ArticularSurface
        The springs (measurement frame).
    head_center : (3,) float
        Femoral head centre, mm, same frame (for the lateral-roof share).
    force_n : (3,) float
        Force the femoral head exerts on the socket, N, same frame.
    modulus_mpa, poisson : float
        Cartilage E (MPa) and nu; defaults :data:`MODULUS_MPA`, :data:`POISSON`.
    spring : {"linear", "log"}
        Spring law (module docstring).
    axes : HipAxes, optional
        The hip's axes in this frame, for :attr:`ContactResult.lateral_roof_share`.
    tolerance : float
        Stop when the force residual is below ``tolerance * |F|``.

    Returns
    -------
    ContactResult

    Raises
    ------
    InputError
        Bad force, E, nu or spring law; or no equilibrium: the load pushes
        the head out of the socket (toward its opening).
    LandmarkError
        An empty surface.
    """
    if spring not in SPRING_LAWS:
        msg = f"unknown spring law {spring!r}; expected one of {', '.join(SPRING_LAWS)}"
        raise InputError(msg)
    k = spring_modulus_mpa(modulus_mpa, poisson)
    f = _validate_force(force_n)
    c = np.asarray(head_center, dtype=float)
    if len(surface) == 0:
        msg = "no articular surface: no socket faces carry springs"
        raise LandmarkError(msg, bone="pelvis")
    springs = _Springs(surface.normals, surface.areas, surface.thickness, spring, k)
    u = np.zeros(3)
    it = 0
    residual = float(np.linalg.norm(f))
    if residual > 0:
        u, it, residual = _newton(springs, f, tolerance)
    p = springs.pressure(springs.compression(u))
    return _summary(surface, c, p, u, f, axes, it, residual, spring, modulus_mpa, poisson, k)


def _no_equilibrium(f: np.ndarray) -> InputError:
    msg = (
        f"no equilibrium: the load {np.round(f, 1).tolist()} N pushes the femoral head out of "
        "the socket (toward or past the edge of its opening, farther than the joint space "
        "allows); check the load direction"
    )
    return InputError(msg)


def _newton(springs: _Springs, f: np.ndarray, tolerance: float):
    """Minimise the spring energy minus F.u: (u, iterations, residual N)."""
    f_norm = float(np.linalg.norm(f))
    facing = -(springs.nx * f[0] + springs.ny * f[1] + springs.nz * f[2])
    if not np.any(facing > 0):
        raise _no_equilibrium(f)
    # Start from the linear solution with every spring that faces the load bonded
    # (``facing`` > 0 marks them; the linear stiffness does not depend on d).
    u = np.linalg.lstsq(springs.with_law("linear").hessian(facing), f, rcond=None)[0]
    if springs.spring == "log":
        # A feasible start: no spring past d = h / 2.
        worst = float(np.max(springs.compression(u) / springs.h))
        if worst > 0.5:
            u *= 0.5 / worst
    limit = RUNAWAY_THICKNESSES * float(springs.h.max())
    e_u = springs.energy(u, f)
    for it in range(1, MAX_ITERATIONS + 1):
        d = springs.compression(u)
        g = springs.force(springs.pressure(d)) - f  # gradient of the energy = force residual
        res = float(np.linalg.norm(g))
        if res <= tolerance * f_norm:
            return u, it - 1, res
        step = _newton_step(springs.hessian(d), g)
        t = 1.0
        if springs.spring == "log":
            # Never step past d = h on any spring (the log law is infinite there).
            dd = -(springs.nx * step[0] + springs.ny * step[1] + springs.nz * step[2])
            grow = dd > 0
            if grow.any():
                room = ((1.0 - LOG_MARGIN) * springs.h[grow] - d[grow]) / dd[grow]
                t = min(1.0, 0.99 * float(room.min()))
        slope = float(g @ step)
        for _ in range(40):
            e_new = springs.energy(u + t * step, f)
            if e_new <= e_u + 1e-4 * t * slope:
                break
            t *= 0.5
        else:
            raise _no_equilibrium(f)
        u = u + t * step
        e_u = e_new
        if not np.all(np.isfinite(u)) or np.linalg.norm(u) > limit:
            raise _no_equilibrium(f)
    res = float(np.linalg.norm(springs.force(springs.pressure(springs.compression(u))) - f))
    if res <= 1e3 * tolerance * f_norm:
        return u, MAX_ITERATIONS, res
    if not _in_cone(springs, f):
        raise _no_equilibrium(f)
    msg = (
        f"contact solve did not converge in {MAX_ITERATIONS} iterations (force residual "
        f"{res:.3g} N of {f_norm:.3g} N)"
    )
    raise InputError(msg)


def _in_cone(springs: _Springs, f: np.ndarray, *, sample: int = 3000) -> bool:
    """Whether the springs' push directions (-n) can add up to f at all (nnls, slow).

    Only asked after a failed solve, to tell a load out of the socket's opening
    from a solve that merely did not converge; on at most ``sample`` springs.
    """
    from scipy.optimize import nnls

    step = max(1, len(springs.a) // sample)
    v = -np.vstack([springs.nx[::step], springs.ny[::step], springs.nz[::step]])
    _, rnorm = nnls(v, f / np.linalg.norm(f))
    return bool(rnorm < 1e-3)


def _newton_step(hess: np.ndarray, g: np.ndarray) -> FloatArray:
    """Solve hess @ step = -g; along directions no spring resists, step along -g."""
    w, v = np.linalg.eigh(hess)
    scale = max(float(w.max()), 1e-300)
    gv = v.T @ (-g)
    # Free directions (no active spring resists): take a gradient step of a size
    # comparable with the stiff ones, so the line search and the active set decide.
    step = np.where(w > 1e-10 * scale, gv / np.maximum(w, 1e-300), gv / scale * 1e3)
    return v @ step


def _summary(surface, c, p, u, f, axes, it, residual, spring, modulus, poisson, k):
    a = surface.areas
    act = p > 0
    load = p * a
    total = float(load.sum())
    area = float(a[act].sum())
    if total > 0:
        center = np.array([_dot(load, surface.points[:, i]) for i in range(3)]) / total
        mean = total / area
    else:
        center = np.full(3, np.nan)
        mean = 0.0
    share = float("nan")
    if axes is not None and total > 0:
        rel = surface.points - c
        roof = (_dot3(rel, axes.lateral) > 0) & (_dot3(rel, axes.superior) > 0)
        share = float(load[roof].sum() / total)
    law = "linear p = K d/h" if spring == "linear" else "logarithmic p = -K ln(1 - d/h)"
    method = (
        f"DEA, {len(p)} compression-only springs, {law}, K = {k:.1f} MPa "
        f"(E {modulus:g} MPa, nu {poisson:g}), gap to the {surface.gap_source}; "
        "Newton on the active set"
    )
    return ContactResult(
        pressure_mpa=p,
        displacement_mm=u,
        peak_mpa=float(p.max()) if len(p) else 0.0,
        mean_mpa=float(mean),
        area_mm2=area,
        center_mm=center,
        lateral_roof_share=share,
        iterations=int(it),
        method=method,
        residual_n=float(residual),
        spring=spring,
        modulus_mpa=float(modulus),
        poisson=float(poisson),
        k_mpa=float(k),
        force_n=f,
    )


def pressure_on_vertices(
    mesh: trimesh.Trimesh, surface: ArticularSurface, pressure_mpa: ArrayLike
) -> FloatArray:
    """Face pressures spread to the vertices of the mesh that carries the springs.

    For colouring the socket with one value per vertex (a compact array to
    send to a viewer instead of a new mesh).

    Parameters
    ----------
    mesh : trimesh.Trimesh
        The pelvis or fragment whose faces ``surface.faces`` index.
    surface : ArticularSurface
    pressure_mpa : (n,) float
        One value per spring (:attr:`ContactResult.pressure_mpa`).

    Returns
    -------
    (n_vertices,) float
        Area-weighted mean pressure of the spring faces around each vertex,
        MPa; 0 at vertices that touch no spring face.
    """
    p = np.asarray(pressure_mpa, dtype=float)
    tri = np.asarray(mesh.faces)[surface.faces]
    n_v = len(mesh.vertices)
    w = np.repeat(surface.areas, 3)
    num = np.bincount(tri.ravel(), weights=w * np.repeat(p, 3), minlength=n_v)
    den = np.bincount(tri.ravel(), weights=w, minlength=n_v)
    out = np.zeros(n_v)
    np.divide(num, den, out=out, where=den > 0)
    return out


def pressure_toward(
    points: ArrayLike,
    head_center: Vector,
    surface: ArticularSurface,
    pressure_mpa: ArrayLike,
    *,
    max_angle_deg: float = 4.0,
) -> FloatArray:
    """The pressure each point of the femoral head faces, for colouring the head.

    Each point takes the pressure of the spring nearest to it in direction
    seen from the head centre (the spring the head presses on there), or 0
    when no spring lies within ``max_angle_deg`` of that direction.

    Parameters
    ----------
    points : (m, 3) float
        Points on the femoral head (e.g. its vertices), mm, same frame as
        ``surface``.
    head_center : (3,) float
        Head centre, mm.
    surface : ArticularSurface
    pressure_mpa : (n,) float
        One value per spring.
    max_angle_deg : float
        Largest angle between a point and its spring, seen from the centre.

    Returns
    -------
    (m,) float
        MPa.
    """
    from scipy.spatial import cKDTree

    c = np.asarray(head_center, dtype=float)
    pts = np.atleast_2d(np.asarray(points, dtype=float))
    p = np.asarray(pressure_mpa, dtype=float)
    if len(surface) == 0:
        return np.zeros(len(pts))
    spring_dirs = unit(surface.points - c)
    dirs = unit(pts - c)
    ok = np.all(np.isfinite(dirs), axis=1)
    out = np.zeros(len(pts))
    chord = 2.0 * np.sin(np.radians(max_angle_deg) / 2.0)
    dist, idx = cKDTree(spring_dirs).query(dirs[ok], distance_upper_bound=chord)
    hit = np.isfinite(dist)
    vals = np.zeros(int(ok.sum()))
    vals[hit] = p[idx[hit]]
    out[ok] = vals
    return out


def spherical_cap(
    radius_mm: float,
    alpha_deg: float,
    *,
    rings: int = 40,
    segments: int = 128,
) -> trimesh.Trimesh:
    """A triangulated spherical cap about +z, centred at the origin, normals inward.

    The open surface ``|x| = radius_mm``, polar angle <= ``alpha_deg``, as
    ``rings`` rings of equal polar step and ``segments`` vertices per ring
    (a fan at the pole). Every vertex lies on the sphere and the rim ring
    lies exactly at ``alpha_deg``. Its normals point toward the centre, as the
    outward normals of a socket's bone do: it stands for the articular
    surface of an analytic socket.
    """
    theta = np.radians(alpha_deg) * np.arange(1, rings + 1) / rings
    phi = 2.0 * np.pi * np.arange(segments) / segments
    st, ct = np.sin(theta)[:, None], np.cos(theta)[:, None]
    ring = np.stack(
        [st * np.cos(phi), st * np.sin(phi), np.broadcast_to(ct, (rings, segments))], axis=-1
    )
    vertices = float(radius_mm) * np.vstack([[0.0, 0.0, 1.0], ring.reshape(-1, 3)])
    k = np.arange(segments)
    k1 = (k + 1) % segments
    # Wound clockwise seen from outside, so the normals point to the centre.
    faces = [np.stack([np.zeros(segments, int), 1 + k1, 1 + k], axis=1)]
    for j in range(rings - 1):
        a, b = 1 + j * segments, 1 + (j + 1) * segments
        faces.append(np.stack([a + k, a + k1, b + k], axis=1))
        faces.append(np.stack([a + k1, b + k1, b + k], axis=1))
    return trimesh.Trimesh(vertices, np.vstack(faces), process=False)


def cap_pressure_exact(force_n: float, radius_mm: float, alpha_deg: float) -> dict[str, float]:
    """The exact answer on a spherical cap (DESIGN.md §8.2), for tests and docs.

    Concentric spheres, uniform rest thickness, linear springs, load
    ``force_n`` along the axis of a cap of radius ``radius_mm`` (the surface
    that carries the springs) and half-angle ``alpha_deg`` <= 90.

    Returns
    -------
    dict
        ``peak_mpa`` (p0), ``mean_mpa``, ``area_mm2``.
    """
    ca = np.cos(np.radians(alpha_deg))
    r2 = float(radius_mm) ** 2
    p0 = 3.0 * float(force_n) / (2.0 * np.pi * r2 * (1.0 - ca**3))
    return {
        "peak_mpa": p0,
        "mean_mpa": p0 * (1.0 + ca) / 2.0,
        "area_mm2": 2.0 * np.pi * r2 * (1.0 - ca),
    }


__all__ = [
    "FORCE_TOLERANCE",
    "MAX_GAP_MM",
    "MODULUS_MPA",
    "POISSON",
    "SPRING_LAWS",
    "THICKNESS_RANGE_MM",
    "ArticularSurface",
    "ContactResult",
    "articular_surface",
    "cap_pressure_exact",
    "pressure_on_vertices",
    "pressure_toward",
    "solve_contact",
    "spherical_cap",
    "spring_modulus_mpa",
]
