"""Hip measures as pure functions of landmarks, axes and ray distances.

This module imports numpy only. Where bone has to be "seen" from the head
centre, a function receives ``hit(origins, directions) -> distances`` (the
first-hit distance along each ray, ``inf`` on a miss; see
:class:`hipviz.raycast.RayCaster`), so the geometry kernel stays outside.

All inputs share one frame (normally RAS aligned to the anterior pelvic
plane) and are in mm; the side enters only through the ``lateral`` unit
vector of :class:`HipAxes`, so a mirrored hip gives the same numbers.
Definitions and sources are in :mod:`hipviz.reference` and
``docs/measures.md``.

Covered
    A direction ``d`` from the head centre ``c`` is *covered* when the ray
    ``c + t d`` meets the pelvis at ``t <= r + margin`` (r the head radius,
    margin 5 mm by default): bone lies over the head there, within a
    cartilage-thick gap.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass

import numpy as np

from ._typing import ArrayLike, FloatArray, Vector
from .geometry import angle_deg, fibonacci_directions, project_onto_plane, unit

HitFn = Callable[[ArrayLike, ArrayLike], FloatArray]


@dataclass(frozen=True)
class HipAxes:
    """Anatomical unit axes of one hip, in the measurement frame.

    ``lateral`` points away from the midline on this hip's side (+x for a
    right hip in RAS, -x for a left one); ``anterior`` and ``superior`` are
    the frame's +y and +z.
    """

    lateral: Vector
    anterior: Vector
    superior: Vector

    @classmethod
    def from_side(cls, side: str) -> HipAxes:
        """Axes of the ``"left"`` or ``"right"`` hip in an RAS frame."""
        sign = 1.0 if side == "right" else -1.0
        return cls(np.array([sign, 0.0, 0.0]), np.array([0.0, 1.0, 0.0]), np.eye(3)[2])

    def to_las(self, v: ArrayLike) -> FloatArray:
        """Components (lateral, anterior, superior) of vectors (..., 3)."""
        return (
            np.asarray(v, dtype=float) @ np.vstack([self.lateral, self.anterior, self.superior]).T
        )

    def from_las(self, v: ArrayLike) -> FloatArray:
        """Vectors (..., 3) from (lateral, anterior, superior) components."""
        return np.asarray(v, dtype=float) @ np.vstack([self.lateral, self.anterior, self.superior])


@dataclass(frozen=True)
class Edge:
    """Where a scan of directions from the head centre leaves covered bone.

    ``angle_deg`` is measured from the scan's start direction toward its
    ``toward`` direction (negative when the start itself is uncovered and the
    edge lies behind it); ``point_mm`` (3,) is the bone surface at the edge.
    Both are NaN when no edge exists within the scan.
    """

    angle_deg: float
    point_mm: Vector


_NO_EDGE = Edge(float("nan"), np.full(3, np.nan))


def covered(hit: HitFn, center: ArrayLike, directions: ArrayLike, reach_mm: float) -> np.ndarray:
    """(n,) bool: rays from ``center`` along ``directions`` (n, 3) meet bone within ``reach_mm``."""
    return hit(center, directions) <= reach_mm


def scan_edge(
    hit: HitFn,
    center: ArrayLike,
    start: ArrayLike,
    toward: ArrayLike,
    reach_mm: float,
    *,
    elevation_axis: ArrayLike | None = None,
    elevation_deg: float = 0.0,
    step_deg: float = 1.0,
    max_gap_deg: float = 2.0,
    limit_deg: float = 179.0,
) -> Edge:
    """Edge of the covered arc met when turning from ``start`` toward ``toward``.

    Directions ``cos(t) start + sin(t) toward`` (t in degrees) are sampled
    every ``step_deg``. If ``start`` is covered, the edge is the first
    uncovered direction for t > 0; otherwise it is the first covered one for
    t < 0 (so the angle comes out negative). Uncovered gaps narrower than
    ``max_gap_deg`` (mesh holes, vascular foramina) are bridged. The edge is
    refined to ~0.0003 degrees (the first uncovered direction of two finer
    sweeps).

    With ``elevation_axis`` the scan runs on a cone tilted ``elevation_deg``
    toward that axis instead of in the plane of ``start`` and ``toward``.

    Parameters
    ----------
    hit : callable
        ``hit(origin (3,), directions (n, 3)) -> (n,) distances``.
    center : (3,) float
        Ray origin, mm.
    start, toward : (3,) float
        Orthogonal unit vectors spanning the scan.
    reach_mm : float
        Covered means bone within this distance.
    """
    scan = EdgeScan(
        center,
        start,
        toward,
        reach_mm,
        elevation_axis=elevation_axis,
        elevation_deg=elevation_deg,
        step_deg=step_deg,
        max_gap_deg=max_gap_deg,
        limit_deg=limit_deg,
    )
    return scan_edges(hit, [scan])[0]


Restrict = Callable[[FloatArray, FloatArray, FloatArray], FloatArray]


@dataclass(frozen=True, eq=False)
class EdgeScan:
    """One sweep of :func:`scan_edges`: the arguments of :func:`scan_edge` after ``hit``.

    ``restrict(origin (3,), directions (n, 3), distances (n,)) -> (n,)``, when
    given, rewrites the distances the sweep sees (see :func:`wall_restriction`),
    so sweeps that count different bone share one cast of the same rays.
    """

    center: ArrayLike
    start: ArrayLike
    toward: ArrayLike
    reach_mm: float
    elevation_axis: ArrayLike | None = None
    elevation_deg: float = 0.0
    step_deg: float = 1.0
    max_gap_deg: float = 2.0
    limit_deg: float = 179.0
    restrict: Restrict | None = None


class _Sweep:
    """The directions of one :class:`EdgeScan`, as functions of the turn angle."""

    def __init__(self, scan: EdgeScan):
        self.scan = scan
        self.center = np.asarray(scan.center, dtype=float)
        self.a, self.b = unit(scan.start), unit(scan.toward)
        self.e = None if scan.elevation_axis is None else unit(scan.elevation_axis)
        self.cos_e = np.cos(np.radians(scan.elevation_deg))
        self.sin_e = np.sin(np.radians(scan.elevation_deg))
        # Two sweeps with the same key cast the same rays for the same angles.
        self.key = (
            self.center.tobytes(),
            self.a.tobytes(),
            self.b.tobytes(),
            None if self.e is None else self.e.tobytes(),
            np.array([self.cos_e, self.sin_e]).tobytes(),
        )

    def dirs(self, t_deg: ArrayLike) -> FloatArray:
        """(n, 3) unit directions at turn angles ``t_deg`` (n,) degrees."""
        t = np.radians(np.atleast_1d(t_deg))[:, None]
        d = np.cos(t) * self.a + np.sin(t) * self.b
        return d if self.e is None else self.cos_e * d + self.sin_e * self.e

    def seen(self, dirs: FloatArray, raw: FloatArray) -> FloatArray:
        """Distances as this sweep counts bone (``restrict`` applied to the raw hits)."""
        r = self.scan.restrict
        return raw if r is None else np.asarray(r(self.center, dirs, raw), dtype=float)


def _cast_together(
    hit: HitFn, requests: list[tuple[_Sweep, FloatArray, Hashable]]
) -> list[FloatArray]:
    """Raw distances for each request ``(sweep, directions (n, 3), key)``, in few casts.

    All requests from one origin go to ``hit`` in one call (their rays
    stacked); requests with the same key (the same rays) are cast once. Each
    ray's distance does not depend on the rays cast with it, so the numbers
    are those of one call per request.
    """
    out: list[FloatArray | None] = [None] * len(requests)
    first: dict[Hashable, int] = {}
    by_origin: dict[bytes, list[int]] = {}
    for i, (sweep, _, key) in enumerate(requests):
        if key not in first:
            first[key] = i
            by_origin.setdefault(sweep.center.tobytes(), []).append(i)
    for idx in by_origin.values():
        d = np.concatenate([requests[i][1] for i in idx])
        dist = np.asarray(hit(requests[idx[0]][0].center, d), dtype=float)
        ends = np.cumsum([len(requests[i][1]) for i in idx])
        for i, lo, hi in zip(idx, np.r_[0, ends[:-1]], ends, strict=True):
            out[i] = dist[lo:hi]
    return [
        out[i] if out[i] is not None else out[first[key]] for i, (_, _, key) in enumerate(requests)
    ]


def _bracket(t: FloatArray, cov: np.ndarray, gap: int) -> tuple[float, float] | None:
    """Coarse angles ``(lo, hi)`` around the edge (lo covered, hi not), None without one.

    From the sample nearest 0: if it is covered, the first uncovered sample
    after it that is not followed by a covered one within ``gap`` samples
    (narrower gaps are bridged); otherwise the sample just after the last
    covered one before it.
    """
    k0 = int(np.argmin(np.abs(t)))
    if cov[k0]:
        covered_ahead = np.zeros(len(cov), bool)  # a covered sample within `gap` after
        for j in range(1, gap + 1):
            covered_ahead[:-j] |= cov[j:]
        open_ = np.flatnonzero(~cov[k0 + 1 :] & ~covered_ahead[k0 + 1 :])
        if len(open_) == 0:
            return None
        k = k0 + int(open_[0])  # the last covered sample
        return t[k], t[k + 1]
    before = np.flatnonzero(cov[:k0])
    if len(before) == 0:
        return None
    k = int(before[-1]) + 1
    return t[k - 1], t[k]


def scan_edges(hit: HitFn, scans: list[EdgeScan]) -> list[Edge]:
    """:func:`scan_edge` for many sweeps at once, each step's rays cast together.

    The same rays as one :func:`scan_edge` per sweep, and the same edges, in
    four calls of ``hit`` (per ray origin) instead of four per sweep: the
    coarse samples of every sweep, then each of the two fine sweeps, then
    the edge points. Sweeps that differ only in ``restrict`` share their rays.

    Parameters
    ----------
    hit : callable
        ``hit(origin (3,), directions (n, 3)) -> (n,) distances``, raw (before
        any sweep's ``restrict``).
    scans : list of EdgeScan

    Returns
    -------
    list of Edge
        One per scan, in order.
    """
    sweeps = [_Sweep(s) for s in scans]
    grids = [np.arange(-s.limit_deg, s.limit_deg + s.step_deg / 2, s.step_deg) for s in scans]
    dirs = [sw.dirs(t) for sw, t in zip(sweeps, grids, strict=True)]
    raw = _cast_together(
        hit, [(sw, d, (sw.key, t.tobytes())) for sw, d, t in zip(sweeps, dirs, grids, strict=True)]
    )
    brackets: list[tuple[float, float] | None] = []
    for sw, t, d, r in zip(sweeps, grids, dirs, raw, strict=True):
        cov = sw.seen(d, r) <= sw.scan.reach_mm
        gap = max(1, int(round(sw.scan.max_gap_deg / sw.scan.step_deg)))
        brackets.append(_bracket(t, cov, gap))
    live = [i for i, b in enumerate(brackets) if b is not None]
    # Two sweeps of 63 directions each narrow the step 4096-fold (as 12
    # bisections would) in two ray casts instead of twelve.
    for _ in range(2):
        ts = {i: np.linspace(*brackets[i], 65)[1:-1] for i in live}
        fine = {i: sweeps[i].dirs(ts[i]) for i in live}
        raw = _cast_together(
            hit, [(sweeps[i], fine[i], (sweeps[i].key, ts[i].tobytes())) for i in live]
        )
        for i, r in zip(live, raw, strict=True):
            lo, hi = brackets[i]
            open_ = np.flatnonzero(sweeps[i].seen(fine[i], r) > sweeps[i].scan.reach_mm)
            if len(open_) == 0:
                lo = ts[i][-1]
            else:
                k = int(open_[0])
                lo, hi = (ts[i][k - 1] if k > 0 else lo), ts[i][k]
            brackets[i] = (lo, hi)
    # A ray along the edge grazes the rim, so its hit may land anywhere on the
    # rim's face; the wall a hair (0.002 degrees) inside gives a steady distance.
    along = {}
    for i in live:
        lo = brackets[i][0]
        d_edge = sweeps[i].dirs(lo)[0]
        along[i] = (d_edge, np.vstack([sweeps[i].dirs(lo - 0.002)[0], d_edge]))
    raw = _cast_together(
        hit,
        [
            (sweeps[i], along[i][1], (sweeps[i].key, np.float64(brackets[i][0]).tobytes()))
            for i in live
        ],
    )
    edges = [_NO_EDGE] * len(scans)
    for i, r in zip(live, raw, strict=True):
        sw, lo = sweeps[i], brackets[i][0]
        dist = sw.seen(along[i][1], r)
        t_edge = dist[0] if dist[0] <= sw.scan.reach_mm else dist[1]
        edges[i] = Edge(float(lo), sw.center + t_edge * along[i][0])
    return edges


# --------------------------------------------------------------------------- acetabulum


def wall_hit(
    hit: HitFn,
    superior: ArrayLike,
    socket_center_mm: ArrayLike,
    socket_radius_mm: float,
    tolerance_mm: float,
) -> HitFn:
    """``hit`` restricted to the acetabular wall, for the centre-edge sweeps.

    Where the wall ends (see ``docs/measures.md``, "Where the rim is"):
    above the head's equator (directions with a positive superior part) any
    bone within the rim reach counts, so the rounded bony rim is the edge
    as in Wiberg's bony-rim angle. Below it, only bone on the socket sphere
    (within ``tolerance_mm`` of ``socket_radius_mm`` about
    ``socket_center_mm``) is wall: bone there that is off the socket's own
    surface is the ischium or the pubis, which a sweep must not run on to.

    Returns
    -------
    callable
        ``hit(origins, directions) -> distances`` with ``inf`` for rays
        whose first hit below the equator is not on the socket sphere.
    """
    restrict = wall_restriction(superior, socket_center_mm, socket_radius_mm, tolerance_mm)

    def restricted(origins: ArrayLike, directions: ArrayLike) -> FloatArray:
        o = np.asarray(origins, dtype=float)
        d = np.atleast_2d(np.asarray(directions, dtype=float))
        return restrict(o, d, hit(o, d))

    return restricted


def wall_restriction(
    superior: ArrayLike, socket_center_mm: ArrayLike, socket_radius_mm: float, tolerance_mm: float
) -> Restrict:
    """The rule of :func:`wall_hit` as a filter of distances already cast.

    For :attr:`EdgeScan.restrict`: sweeps on the wall and sweeps on any bone
    then share the same cast rays.

    Returns
    -------
    callable
        ``restrict(origin (3,), directions (n, 3), distances (n,)) -> (n,)``
        distances, ``inf`` where the first hit below the equator is off the
        socket sphere.
    """
    up = unit(superior)
    sc = np.asarray(socket_center_mm, dtype=float)

    def restrict(origins: ArrayLike, directions: ArrayLike, distances: ArrayLike) -> FloatArray:
        o = np.asarray(origins, dtype=float)
        d = np.atleast_2d(np.asarray(directions, dtype=float))
        t = np.asarray(distances, dtype=float)
        below = (d @ up < 0) & np.isfinite(t)
        if not below.any():
            return t
        p = o + np.where(below, t, 0.0)[:, None] * d
        off = np.abs(np.linalg.norm(p - sc, axis=1) - socket_radius_mm) > tolerance_mm
        return np.where(below & off, np.inf, t)

    return restrict


def center_edge_angles(
    hit: HitFn, center: ArrayLike, axes: HipAxes, reach_mm: float
) -> dict[str, Edge]:
    """Lateral, anterior and posterior centre-edge angles (Wiberg; CT sagittal).

    LCEA: in the coronal plane through the head centre, the angle from
    superior to the line to the lateral bony rim edge, positive when the edge
    is lateral of the vertical. ACEA / PCEA: the same in the sagittal plane
    toward the anterior / posterior edge.

    Returns
    -------
    dict
        ``{"lateral": Edge, "anterior": Edge, "posterior": Edge}``.
    """
    scans = center_edge_scans(center, axes, reach_mm)
    return dict(zip(scans, scan_edges(hit, list(scans.values())), strict=True))


def center_edge_scans(
    center: ArrayLike, axes: HipAxes, reach_mm: float, *, restrict: Restrict | None = None
) -> dict[str, EdgeScan]:
    """The sweeps of :func:`center_edge_angles`, for :func:`scan_edges` with others."""
    s = axes.superior
    return {
        "lateral": EdgeScan(center, s, axes.lateral, reach_mm, restrict=restrict),
        "anterior": EdgeScan(center, s, axes.anterior, reach_mm, restrict=restrict),
        "posterior": EdgeScan(center, s, -axes.anterior, reach_mm, restrict=restrict),
    }


def rim_version(
    hit: HitFn,
    center: ArrayLike,
    axes: HipAxes,
    reach_mm: float,
    *,
    elevation_deg: float = 0.0,
) -> tuple[float, Edge, Edge]:
    """Acetabular version from the anterior and posterior rim points.

    Scanning from the lateral direction (the socket's opening) toward
    anterior and toward posterior, the first covered directions give the
    anterior and posterior rim points A and P; then
    ``version = atan2(L(P) - L(A), A(A) - A(P))``, positive for anteversion
    (Klasan 2019; Tannast 2015). ``elevation_deg = 0`` scans the transverse
    plane through the head centre (central version); a positive elevation
    scans a cone toward superior (cranial version).

    Returns
    -------
    version_deg, anterior_rim, posterior_rim
        NaN version when the scan finds the socket closed laterally.
    """
    front, back = scan_edges(hit, list(rim_version_scans(center, axes, reach_mm, elevation_deg)))
    return version_from_rims(axes, front, back), front, back


def rim_version_scans(
    center: ArrayLike, axes: HipAxes, reach_mm: float, elevation_deg: float = 0.0
) -> tuple[EdgeScan, EdgeScan]:
    """The anterior and posterior sweeps of :func:`rim_version`."""
    kw = dict(elevation_axis=axes.superior, elevation_deg=elevation_deg)
    return (
        EdgeScan(center, axes.lateral, -axes.anterior, reach_mm, **kw),
        EdgeScan(center, axes.lateral, axes.anterior, reach_mm, **kw),
    )


def version_from_rims(axes: HipAxes, front: Edge, back: Edge) -> float:
    """Version (degrees) of :func:`rim_version` from its two rim edges; NaN when open laterally."""
    if not (front.angle_deg < 0 and back.angle_deg < 0):
        return float("nan")
    pa, pp = axes.to_las(front.point_mm), axes.to_las(back.point_mm)
    return float(np.degrees(np.arctan2(pp[0] - pa[0], pa[1] - pp[1])))


def rim_edges(
    reach: dict[str, Edge], wall: dict[str, Edge], rounding_deg: float
) -> dict[str, Edge]:
    """Choose, edge by edge, where the acetabular wall ends.

    ``reach`` holds the edges of sweeps that count any bone within the rim
    reach, ``wall`` those of sweeps restricted by :func:`wall_hit`. Where a
    sweep leaves the socket sphere below the head's equator and the bone
    ends within ``rounding_deg`` (the rim's own rounding), the bone's end
    is the edge (``reach``); where the bone carries on further, it is the
    ischium or the pubis and the edge is where the sphere was left
    (``wall``).
    """
    out = {}
    for key, edge in wall.items():
        far = reach[key]
        rounded = np.isfinite(far.angle_deg) and far.angle_deg - edge.angle_deg <= rounding_deg
        out[key] = far if rounded or not np.isfinite(edge.angle_deg) else edge
    return out


def sector_angles_deg(
    center: ArrayLike, axes: HipAxes, anterior_rim: Edge, posterior_rim: Edge
) -> tuple[float, float]:
    """Anterior and posterior acetabular sector angles (Anda 1986, 1991), degrees.

    In the transverse plane through the head centre, the angle between the
    medial direction (the line to the other hip's centre, for a level
    pelvis) and the line from the centre to the anterior / posterior rim
    point of :func:`rim_version`. A CT axial measure.

    Returns
    -------
    aasa_deg, pasa_deg
        NaN where the rim point is missing.
    """
    c = np.asarray(center, dtype=float)
    out = []
    for rim in (anterior_rim, posterior_rim):
        if not np.isfinite(rim.point_mm).all():
            out.append(float("nan"))
            continue
        v = project_onto_plane(rim.point_mm - c, axes.superior)
        out.append(float(angle_deg(v, -axes.lateral)))
    return out[0], out[1]


#: The false-profile view looks at the hip 65 degrees from the frontal plane,
#: so its picture plane lies 25 degrees from the sagittal plane, turned laterally.
FALSE_PROFILE_OBLIQUITY_DEG = 25.0


def false_profile_acea_deg(hit: HitFn, center: ArrayLike, axes: HipAxes, reach_mm: float) -> Edge:
    """Anterior centre-edge angle of the false-profile view (Lequesne), emulated on CT.

    Lequesne's VCA angle is read on a radiograph taken with the pelvis
    turned 65 degrees from the film. Its CT emulation (Needell et al. 1996)
    reads it in the oblique sagittal plane through the head centre turned
    :data:`FALSE_PROFILE_OBLIQUITY_DEG` from the sagittal plane toward
    lateral: the angle from superior to the line from the centre to the
    anterior bony edge of the roof. Lequesne bands apply (< 20 degrees
    dysplastic, 20-25 borderline).
    """
    return scan_edges(hit, [false_profile_scan(center, axes, reach_mm)])[0]


def false_profile_scan(
    center: ArrayLike, axes: HipAxes, reach_mm: float, *, restrict: Restrict | None = None
) -> EdgeScan:
    """The sweep of :func:`false_profile_acea_deg`."""
    t = np.radians(FALSE_PROFILE_OBLIQUITY_DEG)
    toward = np.cos(t) * axes.anterior + np.sin(t) * axes.lateral
    return EdgeScan(center, axes.superior, toward, reach_mm, restrict=restrict)


def tonnis_angle_deg(
    hit: HitFn, center: ArrayLike, axes: HipAxes, lunate_reach_mm: float, lateral_edge: Edge
) -> tuple[float, Edge]:
    """Tönnis angle of the weight-bearing roof, bony-surface approximation.

    In the coronal plane through the head centre, the roof runs from its
    medial end M (scanning from superior toward medial, the first direction
    where bone lies deeper than ``lunate_reach_mm``: the acetabular fossa) to
    the lateral rim edge E; the
    angle is ``atan2(S(E) - S(M), L(E) - L(M))``: 0-10 degrees normal, more
    when the roof slopes up laterally (dysplasia), negative when it slopes
    down (overcoverage). Radiographs use the sclerotic sourcil, which a bone
    surface does not show, so the medial end is approximate.

    Returns
    -------
    angle_deg, medial_end
        NaN when no fossa is found within :data:`SOURCIL_MEDIAL_LIMIT_DEG`
        of the vertical.
    """
    medial = scan_edges(hit, [tonnis_scan(center, axes, lunate_reach_mm)])[0]
    return tonnis_from_edges(axes, medial, lateral_edge), medial


def tonnis_scan(center: ArrayLike, axes: HipAxes, lunate_reach_mm: float) -> EdgeScan:
    """The sweep of :func:`tonnis_angle_deg` toward the roof's medial end."""
    return EdgeScan(center, axes.superior, -axes.lateral, lunate_reach_mm, limit_deg=90.0)


#: Farthest from the vertical (degrees, coronal plane through the head centre) that
#: the weight-bearing roof's medial end may lie. The sourcil ends at the top of the
#: fossa, 20-55° medial of vertical on the analytic sockets, the teaching cases and
#: the CT specimen; a "fossa" found within 15° of the horizontal is the fossa's lower
#: part on a surface whose roof shows no fossa notch (shape-model hips), and a roof
#: line drawn to it reads 20-30° on hips with a normal LCEA.
SOURCIL_MEDIAL_LIMIT_DEG = 75.0


def tonnis_from_edges(axes: HipAxes, medial_end: Edge, lateral_edge: Edge) -> float:
    """Tönnis angle (degrees) of :func:`tonnis_angle_deg` from the roof's two ends.

    NaN without either end, or with the medial end farther than
    :data:`SOURCIL_MEDIAL_LIMIT_DEG` from the vertical.
    """
    if not (0.0 < medial_end.angle_deg < SOURCIL_MEDIAL_LIMIT_DEG) or not np.isfinite(
        lateral_edge.angle_deg
    ):
        return float("nan")
    e, m = axes.to_las(lateral_edge.point_mm), axes.to_las(medial_end.point_mm)
    return float(np.degrees(np.arctan2(e[2] - m[2], e[0] - m[0])))


def extrusion_index_pct(
    center: ArrayLike, radius_mm: float, lateral_edge: Edge, axes: HipAxes
) -> float:
    """Extrusion index: uncovered lateral head width over head diameter, %.

    ``(L(c) + r - L(rim)) / (2 r)``, with L the lateral coordinate and rim the
    lateral rim edge point (Tannast 2015; normal 17-27 %).
    """
    lc = axes.to_las(center)[0]
    lr = axes.to_las(lateral_edge.point_mm)[0]
    return float(100.0 * (lc + radius_mm - lr) / (2.0 * radius_mm))


@dataclass(frozen=True)
class Coverage:
    """Femoral head coverage, % of ray directions from the head centre that are covered.

    ``sphere`` over all directions, ``upper_hemisphere`` over those with a
    positive superior component, and four regions split by the direction's
    angle in the sagittal (anterior-superior) plane, 90 degrees each:
    ``anterior``, ``superior``, ``posterior``, ``inferior``.
    """

    sphere: float
    upper_hemisphere: float
    anterior: float
    superior: float
    posterior: float
    inferior: float
    margin_mm: float
    n_directions: int
    directions_las: FloatArray
    covered: np.ndarray

    def as_dict(self) -> dict[str, float]:
        """The six percentages, keyed as in ``hipviz measure --json``."""
        keys = ("sphere", "upper_hemisphere", "anterior", "superior", "posterior", "inferior")
        return {k: getattr(self, k) for k in keys}


def head_coverage(
    hit: HitFn,
    center: ArrayLike,
    radius_mm: float,
    axes: HipAxes,
    *,
    margin_mm: float = 5.0,
    n_directions: int = 10000,
) -> Coverage:
    """Femoral head coverage by the pelvis (radial rays from the head centre).

    Parameters
    ----------
    hit : callable
        Ray distances against the pelvis.
    center : (3,) float
        Head centre, mm.
    radius_mm : float
        Head radius.
    margin_mm : float
        A direction is covered when bone lies within ``radius + margin``.
    n_directions : int
        Directions spread evenly (golden spiral) in the hip's own
        lateral/anterior/superior axes, so a mirrored hip samples the same
        anatomical directions.
    """
    las = fibonacci_directions(n_directions)
    dist = hit(center, axes.from_las(las))
    return coverage_from_distances(dist, las, radius_mm, margin_mm=margin_mm)


def coverage_from_distances(
    distances: ArrayLike, directions_las: ArrayLike, radius_mm: float, *, margin_mm: float = 5.0
) -> Coverage:
    """Coverage from ray distances already cast from the head centre.

    Parameters
    ----------
    distances : (n,) float
        First-hit distance to the pelvis along each direction, mm.
    directions_las : (n, 3) float
        The unit directions as (lateral, anterior, superior) components,
        evenly spread (see :func:`hipviz.geometry.fibonacci_directions`).
    """
    las = np.asarray(directions_las, dtype=float)
    cov = np.asarray(distances, dtype=float) <= radius_mm + margin_mm
    phi = np.degrees(np.arctan2(las[:, 2], las[:, 1]))  # from anterior toward superior

    def pct(mask: np.ndarray) -> float:
        return float(100.0 * cov[mask].mean()) if mask.any() else float("nan")

    return Coverage(
        sphere=pct(np.ones(len(las), bool)),
        upper_hemisphere=pct(las[:, 2] > 0),
        anterior=pct(np.abs(phi) <= 45),
        superior=pct((phi > 45) & (phi <= 135)),
        posterior=pct(np.abs(phi) > 135),
        inferior=pct((phi < -45) & (phi >= -135)),
        margin_mm=margin_mm,
        n_directions=len(las),
        directions_las=las,
        covered=cov,
    )


# --------------------------------------------------------------------------- femur


def neck_shaft_deg(neck_to_head: ArrayLike, shaft_to_knee: ArrayLike) -> float:
    """Neck-shaft angle in 3D: neck axis (toward the head) vs shaft axis (toward the knee)."""
    return float(angle_deg(neck_to_head, shaft_to_knee))


def neck_shaft_projected_deg(
    neck_to_head: ArrayLike, shaft_to_knee: ArrayLike, coronal_normal: ArrayLike
) -> float:
    """Neck-shaft angle projected on the femoral coronal plane (normal ``coronal_normal``)."""
    return float(
        angle_deg(
            project_onto_plane(neck_to_head, coronal_normal),
            project_onto_plane(shaft_to_knee, coronal_normal),
        )
    )


def femoral_version_deg(neck_to_head: ArrayLike, medial: ArrayLike, anterior: ArrayLike) -> float:
    """Femoral version: neck axis vs posterior condylar axis, degrees.

    ``medial`` and ``anterior`` are orthogonal unit vectors of the plane
    normal to the proximal shaft axis: the posterior condylar axis oriented
    toward the medial condyle, and the in-plane direction facing away from
    the posterior condylar line. The neck axis is projected on that plane
    (the "3D condylar" method, cf. Murphy 1987 and Lee 2006 for 2D methods
    that differ by up to 18 degrees). Positive = anteversion.
    """
    n = np.asarray(neck_to_head, dtype=float)
    return float(np.degrees(np.arctan2(n @ unit(anterior), n @ unit(medial))))


def clock_from_deg(angle_deg: float) -> float:
    """Clock hours in (0, 12] of an angle from 12 o'clock toward 3 o'clock, degrees."""
    return float(angle_deg / 30.0) % 12.0 or 12.0


def clock_hours(up: float, front: float) -> float:
    """Clock hours in (0, 12] of a direction with components ``up`` (12) and ``front`` (3).

    The hipviz clock face for either side: 12 o'clock superior, 3 o'clock
    anterior, 6 inferior, 9 posterior.
    """
    return clock_from_deg(np.degrees(np.arctan2(front, up)) % 360.0)


@dataclass(frozen=True)
class AlphaAngle:
    """Alpha angle around the head-neck junction.

    ``max_deg`` and its ``clock`` position (hours, 12 = superior, 3 =
    anterior, for either side), plus the per-plane values ``per_plane_deg``
    at ``clock_hours`` (each the mean over its wedge, see :func:`alpha_angle`).
    """

    max_deg: float
    clock: float
    clock_hours: FloatArray
    per_plane_deg: FloatArray
    threshold_mm: float


#: Radial planes per alpha wedge and their spacing: 7 planes 2.5 degrees apart span 15 degrees.
ALPHA_WEDGE_PLANES = 7
ALPHA_PLANE_STEP_DEG = 2.5


def _alpha_per_plane(
    hit_femur: HitFn,
    c: Vector,
    radius_mm: float,
    n: Vector,
    up: Vector,
    ant: Vector,
    phis: FloatArray,
    threshold_mm: float,
) -> FloatArray:
    """Alpha angle (degrees, NaN where undefined) in each half-plane at clock angle ``phis``."""
    thetas = np.arange(15.0, 120.01, 0.5)  # from the neck toward the head
    radial = np.cos(np.radians(phis))[:, None] * up + np.sin(np.radians(phis))[:, None] * ant
    t_r = np.radians(thetas)[None, :, None]
    dirs = np.cos(t_r) * n + np.sin(t_r) * radial[:, None, :]  # (phi, theta, 3)
    dist = hit_femur(c, dirs.reshape(-1, 3)).reshape(len(phis), len(thetas))
    on_sphere = dist <= radius_mm + threshold_mm
    first = np.where(on_sphere.any(axis=1), np.argmax(on_sphere, axis=1), -1)
    ok = first > 0  # back on the sphere, and off it at the start
    alpha = np.full(len(phis), np.nan)
    if not ok.any():
        return alpha
    lo, hi = thetas[first[ok] - 1], thetas[first[ok]]  # lo off the sphere, hi on it
    rad = radial[ok]
    for _ in range(10):  # bisection, all planes at once
        mid = 0.5 * (lo + hi)
        d = np.cos(np.radians(mid))[:, None] * n + np.sin(np.radians(mid))[:, None] * rad
        off = hit_femur(c, d) > radius_mm + threshold_mm
        lo, hi = np.where(off, mid, lo), np.where(off, hi, mid)
    alpha[ok] = lo
    return alpha


def alpha_angle(
    hit_femur: HitFn,
    center: ArrayLike,
    radius_mm: float,
    toward_neck: ArrayLike,
    superior: ArrayLike,
    anterior: ArrayLike,
    *,
    threshold_mm: float = 1.0,
    step_clock_deg: float = 5.0,
) -> AlphaAngle:
    """Alpha angle (Nötzli 2002) in radial planes about the neck axis.

    In each half-plane through the neck axis, the alpha angle is the angle at
    the head centre between the neck axis and the point where the head-neck
    contour, followed from the neck toward the head, comes back within
    ``threshold_mm`` of the head sphere: a cam bump at the junction keeps the
    contour outside longer and raises it. Found with rays from the centre
    against the femur surface.

    The value at a clock position is the mean over a 15-degree wedge of
    ``ALPHA_WEDGE_PLANES`` half-planes (radial MRI slices are 15-30 degrees
    apart): the contour of a triangulated surface ripples with its facets,
    and a single plane would read that ripple, so the result would change
    when the same surface is meshed differently. The maximum is taken over
    wedges centred every ``ALPHA_PLANE_STEP_DEG``.

    Parameters
    ----------
    hit_femur : callable
        Ray distances against the femur.
    toward_neck : (3,) float
        Neck axis, unit, from the head centre toward the neck.
    superior, anterior : (3,) float
        Define 12 and 3 o'clock around the neck axis.
    step_clock_deg : float
        Spacing of the reported per-plane values, degrees.
    """
    c = np.asarray(center, dtype=float)
    n = unit(toward_neck)
    up = unit(project_onto_plane(superior, n))
    ant = unit(project_onto_plane(anterior, n))
    ant = unit(ant - (ant @ up) * up)
    fine = np.arange(0.0, 360.0, ALPHA_PLANE_STEP_DEG)
    per_plane = _alpha_per_plane(hit_femur, c, radius_mm, n, up, ant, fine, threshold_mm)
    half = ALPHA_WEDGE_PLANES // 2
    window = np.stack([np.roll(per_plane, -k) for k in range(-half, half + 1)])
    finite = np.isfinite(window)
    count = finite.sum(axis=0)
    total = np.where(finite, window, 0.0).sum(axis=0)
    wedge = np.full(len(fine), np.nan)
    enough = count > half  # most of the wedge has a junction
    wedge[enough] = total[enough] / count[enough]
    phis = np.arange(0.0, 360.0, step_clock_deg)
    reported = np.interp(phis, np.append(fine, 360.0), np.append(wedge, wedge[0]))
    if np.all(np.isnan(wedge)):
        return AlphaAngle(float("nan"), float("nan"), phis / 30.0, reported, threshold_mm)
    i_max = int(np.nanargmax(wedge))
    clock = clock_from_deg(fine[i_max])
    return AlphaAngle(float(wedge[i_max]), float(clock), phis / 30.0, reported, threshold_mm)


def head_sphericity_mm(
    points: ArrayLike,
    center: ArrayLike,
    radius_mm: float,
    toward_neck: ArrayLike,
    *,
    min_angle_deg: float = 50.0,
    max_rise_mm: float = 10.0,
) -> float:
    """Largest outward deviation of the head surface from its fitted sphere, mm.

    Over surface points more than ``min_angle_deg`` off the neck axis (the
    head and its junction, not the neck) and less than ``max_rise_mm``
    outside the sphere. The fovea, a normal pit, is an inward deviation and
    does not count.

    Parameters
    ----------
    points : (n, 3) float
        Points spread evenly over the head surface, mm (see
        :func:`hipviz.landmarks.head_surface_points`). Mesh vertices alone
        would make the maximum depend on the meshing: a finer mesh of the
        same surface puts points nearer the edge of the region.
    center, radius_mm : the head sphere.
    toward_neck : (3,) float
        Neck axis, unit, from the head centre toward the neck.
    """
    p = np.asarray(points, dtype=float) - np.asarray(center, dtype=float)
    dist = np.linalg.norm(p, axis=1)
    off_axis = angle_deg(p, np.broadcast_to(unit(toward_neck), p.shape))
    rise = dist - radius_mm
    sel = (off_axis >= min_angle_deg) & (rise < max_rise_mm)
    return float(max(rise[sel].max(), 0.0)) if sel.any() else float("nan")
