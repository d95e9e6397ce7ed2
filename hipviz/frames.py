"""Anatomical frames: the anterior pelvic plane (APP) found on any pelvis.

Convention (one for the whole package): the measurement frame is RAS,
+x patient right, +y anterior, +z superior, mm, right-handed. Transforms are
``tf_<to>_<from>`` (4, 4) with ``p_to = apply(tf_to_from, p_from)``.

The APP is the plane through both anterior superior iliac spines (ASIS) and
the pubic tubercles: the plane a pelvis rests on when laid face down. It is
found in steps that need no assumption about the pose:

1. a similarity registration of the built-in LLP26 pelvis (whose landmark
   nodes are known) onto the input, from the 24 axis-aligned starts of the
   principal axes and restarts turned about the best one, tells roughly
   where each landmark is;
2. the "tripod" iteration (:func:`tripod_app`) then finds the exact
   supporting plane: in each landmark region take the point furthest along
   the current plane normal, put a plane through the three points, repeat
   until it stops moving; a region whose best point lies on its edge
   follows it uphill.
3. Should that find no plausible plane, the fallback (:func:`hull_app`)
   takes the face of the pelvis's convex hull in front of it: the same
   supporting plane, found without landmark regions. The frame records
   which method was used (:attr:`PelvisFrame.method`).

Steps 2 and 3 only depend on the bone surface, so the frame moves exactly
with the bone; step 1 only has to land within the regions.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
from scipy.spatial import ConvexHull, QhullError, cKDTree

from ._typing import Points, Transform, Vector
from .errors import LandmarkError
from .geometry import apply, frame_from_axes, principal_axes, rotation, unit

#: RAS -> LPS and back (x and y negated); its own inverse.
TF_LPS_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])

#: Radius (mm, at template scale) of the search region around each landmark.
REGION_MM = 30.0
#: A region's best point beyond this fraction of its radius from the centre is
#: on a slope at the region's edge: the region moves to it.
EDGE_FRACTION = 0.8
#: A region may move at most this many radii from where it started.
MAX_DRIFT_REGIONS = 2.0
#: Turn (degrees) of the restarts tried around the best registration start,
#: and most rounds of them.
HOP_DEG = 30.0
HOP_ROUNDS = 3
#: Largest angle between a found APP and the registered template's, degrees.
MAX_APP_TILT_DEG = 40.0

#: How each kind of frame is found: ``PelvisFrame.method`` -> the text that
#: ``hipviz measure`` reports as ``frame_method``.
FRAME_METHODS = {
    "tripod": (
        "anterior pelvic plane: the plane resting on both ASIS and the pubis, "
        "searched near landmarks placed by registering the built-in pelvis"
    ),
    "hull": (
        "anterior pelvic plane (fallback): the convex-hull face in front of the pelvis, "
        "resting on both ASIS and the pubis"
    ),
    "axes": "the file's axes taken as patient axes (no landmarks)",
    "femur": "the femur's own axes (shaft and condyles; no pelvis)",
}


@dataclass(frozen=True)
class PelvisFrame:
    """A measurement frame for a pelvis.

    Attributes
    ----------
    name : {"app", "ras", "lps"}
    tf_ras_input : (4, 4) float
        Input (file) coordinates -> RAS measurement frame.
    landmarks_input : dict
        APP landmark points (3,) in input coordinates, mm: ``asis_left``,
        ``asis_right``, ``pubis`` (the APP contact on the pubic symphysis
        region); empty for ``ras``/``lps``.
    fit_mm : float
        Median surface distance of the template registration (NaN if none).
    method : str
        How the frame was found, a key of :data:`FRAME_METHODS`: ``tripod``
        (landmark regions) or ``hull`` (the fallback) for ``app``, ``axes``
        for ``ras``/``lps``, ``femur`` for a femur alone.
    fallback_reason : str
        Why the first APP method failed when ``method`` is ``hull``; else "".
    """

    name: str
    tf_ras_input: Transform
    landmarks_input: dict[str, Vector] = field(default_factory=dict)
    fit_mm: float = float("nan")
    method: str = "axes"
    fallback_reason: str = ""

    @property
    def method_text(self) -> str:
        """Readable description of :attr:`method` (the ``frame_method`` value)."""
        return FRAME_METHODS.get(self.method, self.method)


def axis_frame(name: str) -> PelvisFrame:
    """The frame for data whose axes already are patient axes (``ras`` or ``lps``)."""
    if name == "ras":
        return PelvisFrame("ras", np.eye(4))
    if name == "lps":
        return PelvisFrame("lps", TF_LPS_RAS.copy())
    msg = f"unknown axis frame {name!r}; expected 'ras' or 'lps'"
    raise ValueError(msg)


# --------------------------------------------------------------------------- template


@dataclass(frozen=True)
class _Template:
    points: Points  # template surface points, mm, template RAS/APP frame
    tree: cKDTree
    landmarks: dict[str, Vector]  # in the same frame
    scale_mm: float  # rms radius


@lru_cache(maxsize=1)
def _template() -> _Template:
    from . import atlas

    geo = atlas.evaluate(subdivisions=4)
    lm = geo.landmarks
    pts = np.asarray(geo.pelvis.vertices, dtype=float)
    tf = app_from_points(
        lm["asis_left"],
        lm["asis_right"],
        0.5 * (lm["pubic_tubercle_left"] + lm["pubic_tubercle_right"]),
        pts.mean(axis=0),
    )
    pts = apply(tf, pts)
    lms = {k: apply(tf, v) for k, v in lm.items()}
    scale = float(np.sqrt(((pts - pts.mean(axis=0)) ** 2).sum(axis=1).mean()))
    return _Template(pts, cKDTree(pts), lms, scale)


def app_from_points(asis_a: Vector, asis_b: Vector, pubis: Vector, inside: Vector) -> Transform:
    """``tf_ras_input`` of the APP frame through two ASIS points and a pubic point.

    Parameters
    ----------
    asis_a, asis_b : (3,) float
        The two ASIS, in either order.
    pubis : (3,) float
        The pubic contact point (or the mid-point of the pubic tubercles).
    inside : (3,) float
        Any point behind the plane (e.g. the pelvis centroid); fixes which way
        is anterior.

    Returns
    -------
    (4, 4) float
        Origin at the mid-point of the ASIS; +y the plane normal pointing
        anteriorly; +x along the inter-ASIS line toward the patient's right;
        +z = x cross y, superior. Handedness comes from the anatomy alone, so
        a mirrored pelvis gets the mirrored frame and its sides swap.
    """
    a, b, p = (np.asarray(v, dtype=float) for v in (asis_a, asis_b, pubis))
    y = unit(np.cross(b - a, p - a))
    mid = 0.5 * (a + b)
    if (np.asarray(inside) - mid) @ y > 0:
        y = -y
    z0 = mid - p
    x0 = np.cross(y, z0)
    right, left = (a, b) if (a - mid) @ x0 > 0 else (b, a)
    x = unit(right - left)
    x = unit(x - (x @ y) * y)
    z = np.cross(x, y)
    return frame_from_axes(x, y, z, mid)


def _umeyama(src: np.ndarray, dst: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, ...]:
    """Weighted similarities (s, R, t) minimising sum w |s R src + t - dst|^2 (Umeyama 1991).

    Batched: ``src``, ``dst`` (B, n, 3), weights ``w`` (B, n) >= 0; returns
    s (B,), R (B, 3, 3), t (B, 3). Weights 0/1 fit the kept pairs only.
    """
    wn = w / w.sum(axis=1, keepdims=True)
    mu_s = np.einsum("bn,bnd->bd", wn, src)
    mu_d = np.einsum("bn,bnd->bd", wn, dst)
    a = src - mu_s[:, None, :]
    b = dst - mu_d[:, None, :]
    cov = np.einsum("bn,bni,bnj->bij", wn, b, a)
    u, sig, vt = np.linalg.svd(cov)
    d = np.ones((len(src), 3))
    d[np.linalg.det(u) * np.linalg.det(vt) < 0, 2] = -1.0
    r = u @ (d[:, :, None] * vt)
    var_s = np.einsum("bn,bn->b", wn, np.einsum("bnd,bnd->bn", a, a))
    s = (sig * d).sum(axis=1) / var_s
    return s, r, mu_d - s[:, None] * np.einsum("bij,bj->bi", r, mu_s), mu_s, mu_d


def _percentile_rows(values: np.ndarray, q: float) -> np.ndarray:
    """``np.percentile(values, q, axis=1)`` (linear) of (B, n) rows, by partial sorting."""
    n = values.shape[1]
    k = q / 100.0 * (n - 1)
    lo = int(np.floor(k))
    hi = min(lo + 1, n - 1)
    part = np.partition(values, [lo, hi], axis=1)
    return part[:, lo] + (k - lo) * (part[:, hi] - part[:, lo])


def _proper_axis_maps() -> list[np.ndarray]:
    out = []
    for perm in itertools.permutations(range(3)):
        for signs in itertools.product((1.0, -1.0), repeat=3):
            m = np.zeros((3, 3))
            m[range(3), perm] = signs
            if np.linalg.det(m) > 0:
                out.append(m)
    return out


def _icp(tpl: _Template, sub: Points, s, r, t, iterations: int, *, with_scale: bool):
    """Trimmed two-way ICP of ``sub`` onto the template from B starts at once.

    Pairs run both ways (input -> template and template -> input), each
    trimmed: one-way pairs let a similarity fit shrink the input onto a part
    of the template, and trimming drops a missing sacrum. The starts are
    independent; running them as one batch shares each step's overhead.

    Parameters
    ----------
    sub : (n, 3) float
        Input points, input mm.
    s, r, t : (B,), (B, 3, 3), (B, 3)
        Starting similarities, ``template ~ s R p + t``.

    Returns
    -------
    s, r, t as above, and the median point-to-template distance (B,), mm.
    """
    tree_in = cKDTree(sub)
    tpl_sub = tpl.points[:: max(1, len(tpl.points) // len(sub))]
    n_b = len(s)
    s, r, t = np.array(s, float), np.array(r, float), np.array(t, float)
    n_in = len(sub)
    # Pair arrays of each step: the points' own halves never change, so they
    # are written once and only the nearest points are filled in a step.
    src = np.empty((n_b, n_in + len(tpl_sub), 3))
    dst = np.empty_like(src)
    w = np.empty(src.shape[:2])
    src[:, :n_in] = sub
    dst[:, n_in:] = tpl_sub
    previous = None
    for _ in range(iterations):
        moved = s[:, None, None] * np.einsum("nj,bij->bni", sub, r) + t[:, None, :]
        d_f, i_f = tpl.tree.query(moved.reshape(-1, 3))
        d_f, i_f = d_f.reshape(n_b, -1), i_f.reshape(n_b, -1)
        keep_f = d_f <= _percentile_rows(d_f, 85)[:, None]
        # Template points in input coordinates.
        back = np.einsum("bni,bij->bnj", tpl_sub[None] - t[:, None, :], r) / s[:, None, None]
        d_b, i_b = tree_in.query(back.reshape(-1, 3))
        d_b, i_b = d_b.reshape(n_b, -1), i_b.reshape(n_b, -1)
        keep_b = d_b <= _percentile_rows(d_b, 80)[:, None]
        pairs = (i_f, keep_f, i_b, keep_b)
        if previous is not None and all(map(np.array_equal, pairs, previous)):
            break  # a fixed point: the same pairs give the same fit
        previous = pairs
        src[:, n_in:] = sub[i_b]
        dst[:, :n_in] = tpl.points[i_f]
        w[:, :n_in], w[:, n_in:] = keep_f, keep_b
        s_new, r, t_new, mu_s, mu_d = _umeyama(src, dst, w)
        if with_scale:
            s, t = s_new, t_new
        else:
            t = mu_d - s[:, None] * np.einsum("bij,bj->bi", r, mu_s)
    moved = s[:, None, None] * np.einsum("nj,bij->bni", sub, r) + t[:, None, :]
    dist, _ = tpl.tree.query(moved.reshape(-1, 3))
    return s, r, t, np.median(dist.reshape(n_b, -1), axis=1)


def _best_start(
    tpl: _Template, sub: Points, s, r, t, *, iterations=10, screen=3, keep=4, screen_every=2
):
    """The best of B ICP starts after ``iterations`` steps: (s, R, t, median_mm).

    Every start takes ``screen`` steps on every ``screen_every``-th point of
    ``sub``; only the ``keep`` closest go on, on all of ``sub``. On a whole
    pelvis the start that ends best ranks first or second after three steps
    (shape-model draws and both specimens, in any pose: the same fit as
    running every start to the end, for a third of the work). Most starts
    are turned far from the template, where each nearest-point query costs
    most; ranking them needs no more than half the points (the same anterior
    pelvic plane, to the last digit, on every input tried). On a pelvis
    missing a quarter of its bone the basins are shallow and the screen can
    settle in another, usually near the fit limit of :func:`find_app`.
    """
    s, r, t, fit = _icp(tpl, sub[::screen_every], s, r, t, screen, with_scale=False)
    top = np.argsort(fit, kind="stable")[:keep]
    s, r, t, fit = _icp(tpl, sub, s[top], r[top], t[top], iterations - screen, with_scale=False)
    i = int(np.argmin(fit))
    return float(s[i]), r[i], t[i], float(fit[i])


#: Most steps of the final (scaled) registration on the coarse subsample.
SCALED_ITERATIONS = 60


def register_template(points: Points, *, coarse: int = 500, fine: int = 2500):
    """Similarity transform of input points onto the template pelvis.

    The starts are searched and the scaled fit run on about ``coarse``
    input points; the fit is then measured on about ``fine`` of them.

    Returns
    -------
    s, R, t, median_mm
        ``template ~ s R p + t`` for input points p; ``median_mm`` is the
        median point-to-template distance of the ``fine`` points after the
        fit, in template mm.
    """
    tpl = _template()
    pts = np.asarray(points, dtype=float)
    # Index-based subsampling is independent of the pose.
    sub_c = pts[:: max(1, len(pts) // coarse)]
    sub_f = pts[:: max(1, len(pts) // fine)]
    mean_i, axes_i, _ = principal_axes(pts)
    mean_t, axes_t, _ = principal_axes(tpl.points)
    rms_i = np.sqrt(((pts - mean_i) ** 2).sum(axis=1).mean())
    s0 = tpl.scale_mm / rms_i

    maps = _proper_axis_maps()
    r0 = np.array([axes_t.T @ m @ axes_i for m in maps])
    t0 = mean_t - s0 * r0 @ mean_i
    best = _best_start(tpl, sub_c, np.full(len(maps), s0), r0, t0)
    # Principal axes are ill-defined when two spreads are alike (a pelvis
    # about as tall as it is wide), so the best axis start can lie in a
    # wrong basin, turned 10-20 degrees: hop out of it by restarting from
    # the best fit turned about each template axis, while that improves it.
    turns = np.array([rotation(axis, HOP_DEG) for axis in (*np.eye(3), *-np.eye(3))])
    for _ in range(HOP_ROUNDS):
        s, r, t, fit_mm = best
        hop = _best_start(
            tpl,
            sub_c,
            np.full(len(turns), s),
            turns @ r,
            mean_t + np.einsum("bij,j->bi", turns, t - mean_t),
        )
        if hop[3] < best[3]:
            best = hop
        if best[3] >= fit_mm:
            break
    s, r, t, _ = best
    # The scaled fit runs to its fixed point on the coarse points: the frame
    # only needs the landmarks to land inside their search regions (30 mm),
    # which it did in every case tried, with the same APP to the last digit
    # as 30 steps on the fine points, for a third of the cost. (Those did
    # not reach a fixed point, still creeping by ~0.02 % in scale a step.)
    s, r, t, _ = _icp(tpl, sub_c, [s], [r], [t], SCALED_ITERATIONS, with_scale=True)
    return float(s[0]), r[0], t[0], _median_mm(tpl, sub_f, float(s[0]), r[0], t[0])


def _median_mm(tpl: _Template, points: Points, s: float, r: np.ndarray, t: Vector) -> float:
    """Median distance (template mm) of ``s R p + t`` over ``points`` to the template."""
    dist, _ = tpl.tree.query(s * np.asarray(points) @ np.asarray(r).T + t)
    return float(np.median(dist))


class AppSearchError(LandmarkError):
    """One APP method found no plausible plane (the message says why).

    :func:`find_app` turns to the next method on it; it only reaches the
    caller from :func:`tripod_app` or :func:`hull_app` called directly.
    """


@dataclass(frozen=True)
class TemplatePrior:
    """What the registered template says about the APP of an input pelvis.

    Attributes
    ----------
    landmarks : dict of str to (3,) float
        The template's landmarks carried into input coordinates, mm.
    anterior : (3,) float
        The template's APP normal (anterior) in input coordinates, unit.
    radius_mm : float
        Landmark search radius, mm (:data:`REGION_MM` at input scale).
    asis_mm, height_mm : float
        The template's inter-ASIS distance and pubis-to-ASIS-line distance,
        at input scale, mm.
    """

    landmarks: dict[str, Vector]
    anterior: Vector
    radius_mm: float
    asis_mm: float
    height_mm: float


def template_prior(s: float, r: np.ndarray, t: Vector) -> TemplatePrior:
    """The :class:`TemplatePrior` of a registration ``template ~ s R p + t``."""
    tpl = _template()
    lm = {k: np.asarray(r).T @ (np.asarray(v) - t) / s for k, v in tpl.landmarks.items()}
    al, ar = tpl.landmarks["asis_left"], tpl.landmarks["asis_right"]
    pub = 0.5 * (tpl.landmarks["pubic_tubercle_left"] + tpl.landmarks["pubic_tubercle_right"])
    return TemplatePrior(
        landmarks=lm,
        anterior=unit(np.asarray(r).T @ np.array([0.0, 1.0, 0.0])),
        radius_mm=REGION_MM / s,
        asis_mm=float(np.linalg.norm(al - ar)) / s,
        height_mm=_height(al, ar, pub) / s,
    )


def _height(a: Vector, b: Vector, p: Vector) -> float:
    """Distance of ``p`` from the line through ``a`` and ``b``."""
    return float(np.linalg.norm(np.cross(unit(b - a), np.asarray(p) - a)))


def _check_plausible(a: Vector, b: Vector, p: Vector, exp: TemplatePrior) -> None:
    """Raise :class:`AppSearchError` unless ASIS-ASIS-pubis look like an APP of this pelvis.

    The bounds are wide (a pelvis may be half as wide again as the
    template, or a third narrower, in proportion): they only catch a plane
    resting on the wrong bone.
    """
    normal = unit(np.cross(b - a, p - a))
    tilt = float(np.degrees(np.arccos(min(1.0, abs(normal @ exp.anterior)))))
    width = float(np.linalg.norm(b - a))
    height = _height(a, b, p)
    along = float((p - a) @ (b - a)) / width**2 if width > 0 else -1.0
    if not 0.6 * exp.asis_mm <= width <= 1.6 * exp.asis_mm:
        msg = f"ASIS {width:.0f} mm apart, expected about {exp.asis_mm:.0f} mm"
        raise AppSearchError(msg)
    if not 0.5 * exp.height_mm <= height <= 1.8 * exp.height_mm:
        msg = f"pubis {height:.0f} mm below the ASIS line, expected about {exp.height_mm:.0f} mm"
        raise AppSearchError(msg)
    if not 0.1 <= along <= 0.9:
        raise AppSearchError("the pubic point does not lie between the two ASIS")
    if tilt > MAX_APP_TILT_DEG:
        msg = f"the plane is {tilt:.0f} deg off the registered pelvis's front"
        raise AppSearchError(msg)


def _ball(pts_tree: cKDTree, centres: list[Vector], radius: float) -> np.ndarray:
    return np.asarray(
        sorted(set().union(*(pts_tree.query_ball_point(c, radius) for c in centres))), dtype=int
    )


def tripod_app(
    points: Points, exp: TemplatePrior, *, iterations: int = 30
) -> tuple[Vector, Vector, Vector]:
    """Both ASIS and the pubic point by the supporting-plane ("tripod") iteration.

    Each landmark's search region is a ball of ``exp.radius_mm`` about the
    surface point nearest the registered template landmark (both pubic
    tubercles for the pubic region). In each region the point furthest
    along the current plane normal is taken; a plane is put through the
    three and the step repeated until the points stop changing. A point on
    the edge of its region lies on a slope, not on the summit the APP
    rests on: the region is then moved to it and the climb goes on (up to
    :data:`MAX_DRIFT_REGIONS` region radii from where it started).

    Returns
    -------
    asis_a, asis_b, pubis : (3,) float
        Input coordinates, mm; the two ASIS in no particular order.

    Raises
    ------
    AppSearchError
        A region has no surface near it, the climb ran off, or the
        iteration did not settle.
    """
    pts = np.asarray(points, dtype=float)
    tree = cKDTree(pts)
    radius = exp.radius_mm
    seeds = {
        "asis_1": [exp.landmarks["asis_left"]],
        "asis_2": [exp.landmarks["asis_right"]],
        "pubis": [exp.landmarks["pubic_tubercle_left"], exp.landmarks["pubic_tubercle_right"]],
    }
    centres: dict[str, list[Vector]] = {}
    for key, seed in seeds.items():
        dist, near = tree.query(np.asarray(seed))
        if np.min(dist) > radius:
            name = "pubic tubercles" if key == "pubis" else "ASIS"
            msg = f"no bone within {radius:.0f} mm of the registered {name}"
            raise AppSearchError(msg)
        near, dist = np.atleast_1d(near), np.atleast_1d(dist)
        centres[key] = [pts[i] for i in near[dist <= radius]]
    start = {k: list(v) for k, v in centres.items()}
    idx = {k: _ball(tree, v, radius) for k, v in centres.items()}
    normal = exp.anterior
    chosen = None
    for _ in range(iterations):
        pick = {k: int(v[np.argmax(pts[v] @ normal)]) for k, v in idx.items()}
        a, b, p = pts[pick["asis_1"]], pts[pick["asis_2"]], pts[pick["pubis"]]
        new = unit(np.cross(b - a, p - a))
        new = new if new @ normal > 0 else -new
        moved = False
        for key, i in pick.items():
            q = pts[i]
            if min(np.linalg.norm(q - c) for c in centres[key]) <= EDGE_FRACTION * radius:
                continue
            if min(np.linalg.norm(q - c) for c in start[key]) > MAX_DRIFT_REGIONS * radius:
                reach = MAX_DRIFT_REGIONS * radius
                msg = f"the {key.split('_')[0]} search ran more than {reach:.0f} mm uphill"
                raise AppSearchError(msg)
            centres[key] = [q]
            idx[key] = _ball(tree, [q], radius)
            moved = True
        if pick == chosen and not moved:
            break
        chosen, normal = pick, new
    else:
        raise AppSearchError(f"the supporting plane did not settle in {iterations} steps")
    return pts[chosen["asis_1"]], pts[chosen["asis_2"]], pts[chosen["pubis"]]


def hull_app(points: Points, exp: TemplatePrior) -> tuple[Vector, Vector, Vector]:
    """Both ASIS and the pubic point as the convex-hull facet in front of the pelvis.

    A pelvis laid face down rests on both ASIS and the pubis: the APP is the
    face of the pelvis's convex hull that the line from the centroid along
    the registered anterior direction leaves through. Of the hull vertices
    on that plane the two farthest apart are the ASIS, the one farthest from
    their line the pubic point. Where the region search converges, the two
    give the same three points; this needs no landmark region, only the
    anterior direction.

    Raises
    ------
    AppSearchError
        No hull facet in front, or one with fewer than three vertices.
    """
    pts = np.asarray(points, dtype=float)
    try:
        hull = ConvexHull(pts)
    except QhullError as exc:
        raise AppSearchError(f"no convex hull ({str(exc).splitlines()[0]})") from None
    normals, offsets = hull.equations[:, :3], hull.equations[:, 3]
    centre = pts.mean(axis=0)
    along = normals @ exp.anterior
    ahead = along > 1e-9
    if not ahead.any():  # pragma: no cover - a closed hull always has a front
        raise AppSearchError("no hull facet in front of the centroid")
    reach = np.full(len(normals), np.inf)
    reach[ahead] = -(normals[ahead] @ centre + offsets[ahead]) / along[ahead]
    face = int(np.argmin(reach))
    n, off = normals[face], offsets[face]
    tol = 1e-6 * float(np.ptp(pts, axis=0).max())
    verts = pts[hull.vertices[np.abs(pts[hull.vertices] @ n + off) <= tol]]
    if len(verts) < 3:  # pragma: no cover - a facet has three vertices
        raise AppSearchError("the hull facet in front has fewer than three vertices")
    gaps = np.linalg.norm(verts[:, None] - verts[None], axis=2)
    i, j = np.unravel_index(int(np.argmax(gaps)), gaps.shape)
    a, b = verts[i], verts[j]
    heights = np.linalg.norm(np.cross(unit(b - a), verts - a), axis=1)
    return a, b, verts[int(np.argmax(heights))]


def find_app(
    pelvis_points: Points, *, max_fit_mm: float = 6.0, iterations: int = 30
) -> PelvisFrame:
    """Find the anterior pelvic plane frame on a whole pelvis in any pose.

    The region search (:func:`tripod_app`) is tried first; when it finds no
    plausible plane, the convex-hull facet (:func:`hull_app`) is used and
    the frame says so (``method``, ``fallback_reason``).

    Parameters
    ----------
    pelvis_points : (n, 3) float
        Pelvis surface vertices, mm, input coordinates. Both hemipelves must
        be present (the sacrum may be missing).
    max_fit_mm : float
        Largest median template distance accepted as a pelvis, mm.
    iterations : int
        Most steps of the supporting-plane iteration.

    Raises
    ------
    LandmarkError
        The surface does not match a pelvis well enough to place the
        landmarks (partial pelvis, wrong bone, or noise), or neither method
        finds a plausible plane.
    """
    pts = np.asarray(pelvis_points, dtype=float)
    s, r, t, fit = register_template(pts)
    if not np.isfinite(fit) or fit > max_fit_mm:
        msg = (
            f"could not find the anterior pelvic plane (template fit {fit:.1f} mm); "
            "is this a whole pelvis? For a partial pelvis in patient axes pass --frame ras or lps"
        )
        raise LandmarkError(msg)
    exp = template_prior(s, r, t)
    method, reason = "tripod", ""
    try:
        a, b, p = tripod_app(pts, exp, iterations=iterations)
        _check_plausible(a, b, p, exp)
    except AppSearchError as first:
        method, reason = "hull", str(first)
        try:
            a, b, p = hull_app(pts, exp)
            _check_plausible(a, b, p, exp)
        except AppSearchError as second:
            msg = (
                "could not find both ASIS and the pubic tubercles on the pelvis "
                f"(region search: {first}; convex hull: {second})"
            )
            raise LandmarkError(msg) from None
    tf = app_from_points(a, b, p, pts.mean(axis=0))
    right, left = (a, b) if apply(tf, a)[0] > 0 else (b, a)
    return PelvisFrame(
        "app",
        tf,
        {"asis_right": right, "asis_left": left, "pubis": p},
        fit,
        method=method,
        fallback_reason=reason,
    )
