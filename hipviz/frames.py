"""Anatomical frames: the anterior pelvic plane (APP) found on any pelvis.

Convention (one for the whole package): the measurement frame is RAS,
+x patient right, +y anterior, +z superior, mm, right-handed. Transforms are
``tf_<to>_<from>`` (4, 4) with ``p_to = apply(tf_to_from, p_from)``.

The APP is the plane through both anterior superior iliac spines (ASIS) and
the pubic tubercles: the plane a pelvis rests on when laid face down. It is
found in two steps that need no assumption about the pose:

1. a similarity registration of the built-in LLP26 pelvis (whose landmark
   nodes are known) onto the input, from the 24 axis-aligned starts of the
   principal axes, tells roughly where each landmark is;
2. the "tripod" iteration then finds the exact supporting plane: in each
   landmark region take the point furthest along the current plane normal,
   put a plane through the three points, repeat until it stops moving.

Step 2 only depends on the bone surface, so the frame moves exactly with the
bone; step 1 only has to land within the regions.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
from scipy.spatial import cKDTree

from ._typing import Points, Transform, Vector
from .errors import LandmarkError
from .geometry import frame_from_axes, principal_axes, unit

#: RAS -> LPS and back (x and y negated); its own inverse.
TF_LPS_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])

#: Radius (mm, at template scale) of the search region around each landmark.
REGION_MM = 30.0


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
    """

    name: str
    tf_ras_input: Transform
    landmarks_input: dict[str, Vector] = field(default_factory=dict)
    fit_mm: float = float("nan")


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
    from .geometry import apply

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


def _umeyama(src: Points, dst: Points) -> tuple[float, np.ndarray, Vector]:
    """Similarity (s, R, t) minimising |s R src + t - dst|^2 (Umeyama 1991)."""
    mu_s, mu_d = src.mean(axis=0), dst.mean(axis=0)
    a, b = src - mu_s, dst - mu_d
    cov = b.T @ a / len(src)
    u, sig, vt = np.linalg.svd(cov)
    d = np.ones(3)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        d[2] = -1.0
    r = u @ np.diag(d) @ vt
    var_s = (a**2).sum() / len(src)
    s = float((sig * d).sum() / var_s)
    return s, r, mu_d - s * r @ mu_s


def _proper_axis_maps() -> list[np.ndarray]:
    out = []
    for perm in itertools.permutations(range(3)):
        for signs in itertools.product((1.0, -1.0), repeat=3):
            m = np.zeros((3, 3))
            m[range(3), perm] = signs
            if np.linalg.det(m) > 0:
                out.append(m)
    return out


def register_template(points: Points, *, coarse: int = 500, fine: int = 2500):
    """Similarity transform of input points onto the template pelvis.

    Returns
    -------
    s, R, t, median_mm
        ``template ~ s R p + t`` for input points p; ``median_mm`` is the
        median point-to-template distance after the fit, in template mm.
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

    def icp(sub, s, r, t, iterations, *, with_scale):
        # Pairs both ways (input -> template and template -> input), each
        # trimmed: one-way pairs let a similarity fit shrink the input onto a
        # part of the template, and trimming drops a missing sacrum.
        tree_in = cKDTree(sub)
        tpl_sub = tpl.points[:: max(1, len(tpl.points) // len(sub))]
        for _ in range(iterations):
            moved = s * sub @ r.T + t
            d_f, i_f = tpl.tree.query(moved)
            keep_f = d_f <= np.percentile(d_f, 85)
            back = (tpl_sub - t) @ r / s  # template points in input coordinates
            d_b, i_b = tree_in.query(back)
            keep_b = d_b <= np.percentile(d_b, 80)
            src = np.vstack([sub[keep_f], sub[i_b[keep_b]]])
            dst = np.vstack([tpl.points[i_f[keep_f]], tpl_sub[keep_b]])
            s_new, r, t = _umeyama(src, dst)
            if with_scale:
                s = s_new
            else:
                t = dst.mean(axis=0) - s * r @ src.mean(axis=0)
        dist, _ = tpl.tree.query(s * sub @ r.T + t)
        return s, r, t, float(np.median(dist))

    best = None
    for m in _proper_axis_maps():
        r0 = axes_t.T @ m @ axes_i
        t0 = mean_t - s0 * r0 @ mean_i
        fit = icp(sub_c, s0, r0, t0, 10, with_scale=False)
        if best is None or fit[3] < best[3]:
            best = fit
    s, r, t, _ = best
    return icp(sub_f, s, r, t, 30, with_scale=True)


def find_app(
    pelvis_points: Points, *, max_fit_mm: float = 6.0, iterations: int = 30
) -> PelvisFrame:
    """Find the anterior pelvic plane frame on a whole pelvis in any pose.

    Parameters
    ----------
    pelvis_points : (n, 3) float
        Pelvis surface vertices, mm, input coordinates. Both hemipelves must
        be present (the sacrum may be missing).

    Raises
    ------
    LandmarkError
        The surface does not match a pelvis well enough to place the
        landmarks (partial pelvis, wrong bone, or noise).
    """
    pts = np.asarray(pelvis_points, dtype=float)
    tpl = _template()
    s, r, t, fit = register_template(pts)
    if not np.isfinite(fit) or fit > max_fit_mm:
        msg = (
            f"could not find the anterior pelvic plane (template fit {fit:.1f} mm); "
            "is this a whole pelvis? For a partial pelvis in patient axes pass --frame ras or lps"
        )
        raise LandmarkError(msg)

    # Landmarks of the template, carried into input coordinates.
    def to_input(p):
        return r.T @ (np.asarray(p) - t) / s

    lm_in = {k: to_input(v) for k, v in tpl.landmarks.items()}
    radius = REGION_MM / s
    tree = cKDTree(pts)
    regions = {
        "asis_1": tree.query_ball_point(lm_in["asis_left"], radius),
        "asis_2": tree.query_ball_point(lm_in["asis_right"], radius),
        "pubis": sorted(
            set(tree.query_ball_point(lm_in["pubic_tubercle_left"], radius))
            | set(tree.query_ball_point(lm_in["pubic_tubercle_right"], radius))
        ),
    }
    if any(len(v) < 3 for v in regions.values()):
        msg = "could not find both ASIS and the pubic tubercles on the pelvis"
        raise LandmarkError(msg)
    idx = {k: np.asarray(v) for k, v in regions.items()}
    # Template anterior, in input coordinates.
    normal = unit(r.T @ np.array([0.0, 1.0, 0.0]))
    chosen = None
    for _ in range(iterations):
        pick = {k: int(v[np.argmax(pts[v] @ normal)]) for k, v in idx.items()}
        a, b, p = pts[pick["asis_1"]], pts[pick["asis_2"]], pts[pick["pubis"]]
        new = unit(np.cross(b - a, p - a))
        new = new if new @ normal > 0 else -new
        if pick == chosen:
            break
        chosen, normal = pick, new
    a, b, p = pts[chosen["asis_1"]], pts[chosen["asis_2"]], pts[chosen["pubis"]]
    tf = app_from_points(a, b, p, pts.mean(axis=0))
    x_a = tf[:3, :3] @ a + tf[:3, 3]
    right, left = (a, b) if x_a[0] > 0 else (b, a)
    return PelvisFrame("app", tf, {"asis_right": right, "asis_left": left, "pubis": p}, fit)
