"""The load on the hip joint: measured OrthoLoad cases and Pauwels' one-legged stance.

Every force here is the force the femoral head exerts **on the socket**, in
newtons, in the measurement frame (RAS, +x right, +y anterior, +z superior;
see :mod:`hipviz.frames`). Two kinds of load:

* **measured averages** (:data:`ORTHOLOAD_CASES`): the OrthoLoad mean of 10
  patients with instrumented hip implants (Bergmann et al. 2016), given as
  the force on the femoral head in the femoral frame of OrthoLoad
  (:func:`femoral_load_frame`) in percent of body weight. The force on the
  socket is the opposite vector, carried into the measurement frame through
  the femur's pose and scaled by the body weight (g = 9.81 m/s^2).
* **this hip's own geometry** (:func:`pauwels`): Pauwels' (1965) one-legged
  stance in the frontal plane, with the abductor line from the tip of the
  greater trochanter (:func:`greater_trochanter_tip`) to its origin on the
  ilium (:func:`abductor_origin`, after Debrunner 1975).

Both are static, quasi-2D or averaged models: they miss the loads measured
in patients by 22-33 %BW RMSE (Fischer et al. 2021). ``docs/mechanics.md``
has every number, frame and source.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import trimesh

from . import landmarks as lmk
from ._typing import ArrayLike, Transform, Vector
from .bodies import select_femur
from .errors import InputError, LandmarkError
from .geometry import Sphere, apply, project_onto_plane, unit
from .hip import HipAnalysis

#: Standard gravity, m/s^2.
G = 9.81
#: Body weight when none is given, kg.
DEFAULT_BODY_WEIGHT_KG = 70.0
#: Body weights accepted, kg.
BODY_WEIGHT_RANGE_KG = (20.0, 300.0)
#: Largest custom joint force accepted, N (about 15 times a 100 kg body weight).
MAX_FORCE_N = 15000.0

ORTHOLOAD_SOURCE = (
    "OrthoLoad mean of 10 patients with instrumented hip implants "
    "(Bergmann et al. 2016, PLoS One 11:e0155612)"
)


@dataclass(frozen=True)
class LoadCase:
    """A measured average load, as OrthoLoad publishes it.

    Attributes
    ----------
    name : str
        The ``--load`` name.
    title : str
    force_pct_bw : (3,) float
        Mean force **on the femoral head**, %BW, OrthoLoad femoral frame
        (+x lateral, +y anterior, +z superior along the femur).
    magnitude_pct_bw, sd_pct_bw : float
        Mean and standard deviation of the force's magnitude over the
        patients, %BW.
    source : str
    """

    name: str
    title: str
    force_pct_bw: tuple[float, float, float]
    magnitude_pct_bw: float
    sd_pct_bw: float
    source: str = ORTHOLOAD_SOURCE


#: The named OrthoLoad cases (Bergmann et al. 2016; docs/mechanics.md).
ORTHOLOAD_CASES: dict[str, LoadCase] = {
    "walking": LoadCase("walking", "level walking, peak", (67.7, -23.6, -235.8), 247.0, 20.0),
    "one-leg-stance": LoadCase(
        "one-leg-stance", "one-legged stance", (73.6, -15.0, -248.8), 261.0, 29.0
    ),
    "standing-up": LoadCase("standing-up", "standing up, peak", (86.1, -23.4, -194.5), 215.0, 68.0),
}
#: Every name ``--load`` accepts (or three numbers: a force in newtons).
LOAD_NAMES = (*ORTHOLOAD_CASES, "pauwels")

# ---- Pauwels

#: Share of the body weight above the stance hip: all but the stance leg (Pauwels 1965).
STANCE_SHARE = 5.0 / 6.0
#: Abductor line from vertical when the ilium is not found, degrees (Debrunner 1975).
DEFAULT_ABDUCTOR_DEG = 21.0
#: Head centre to the body midline when the frame has none, mm: 0.36 of a 250 mm
#: inter-ASIS distance (the hip centre lies 14 % of it medial of the ASIS; Bell et al. 1989).
DEFAULT_MIDLINE_MM = 90.0
#: Debrunner's abductor origin: this share of the iliac height above the roof ...
ILIAC_HEIGHT_SHARE = 2.0 / 3.0
#: ... and this share of the iliac width in from its lateral edge.
ILIAC_WIDTH_SHARE = 2.0 / 5.0
#: Least height of ilium above the socket roof that counts as an ilium, mm.
MIN_ILIUM_MM = 40.0

PAUWELS_SOURCE = (
    "Pauwels 1965 one-legged stance (5/6 BW at the body midline, abductors balancing it "
    "about the head centre, frontal plane); abductor origin after Debrunner 1975"
)
GT_TIP_METHOD = (
    "greater-trochanter tip: the area centroid of the femur's surface within 1 mm of the "
    "highest point (along the proximal shaft axis) lateral of the saddle between the head "
    "and the trochanter, in the plane of the shaft axis and the head centre"
)

# ---- the OrthoLoad femoral frame


@dataclass(frozen=True)
class FemoralFrame:
    """The femoral frame of OrthoLoad, as unit axes in the measurement frame.

    ``lateral``, ``anterior``, ``superior`` are orthonormal; for a right
    femur they form a right-handed frame, for a left one the mirror image
    (so a force given for a right hip means the same anatomically on both).
    ``origin_mm`` is the head centre. ``method`` says how ``superior`` and
    ``anterior`` were found; ``note`` explains a fallback ("" when none).
    """

    origin_mm: Vector
    lateral: Vector
    anterior: Vector
    superior: Vector
    method: str
    note: str = ""

    def to_measurement(self, v_femoral: ArrayLike) -> Vector:
        """A vector's (lateral, anterior, superior) components -> measurement frame (3,)."""
        x, y, z = np.asarray(v_femoral, dtype=float)
        return x * self.lateral + y * self.anterior + z * self.superior

    def to_femoral(self, v: ArrayLike) -> Vector:
        """A measurement-frame vector (3,) -> its (lateral, anterior, superior) components."""
        v = np.asarray(v, dtype=float)
        return np.array([v @ self.lateral, v @ self.anterior, v @ self.superior])


FEMORAL_FRAME_METHOD = (
    "OrthoLoad femoral frame (Bergmann 2016): origin the head centre, +z from the "
    "intercondylar notch (the centroid of the distal 5 % of the femur) up to where the "
    "shaft axis meets the neck axis, +y anterior normal to z and the posterior condylar "
    "axis, +x lateral (mirrored for a left femur)"
)
FEMORAL_FRAME_FALLBACK = (
    "the distal femur (condyles) is missing: +z is the proximal shaft axis and +y the "
    "measurement frame's anterior made normal to it"
)


def neck_shaft_point(
    head_center_mm: Vector, toward_neck: Vector, shaft_point_mm: Vector, shaft_direction: Vector
) -> Vector:
    """The point of the shaft axis nearest the neck axis (where they meet), mm.

    The two lines are skew when the femur has version; the point of the
    shaft axis closest to the neck axis is where "the femoral midline meets
    the neck axis".
    """
    c, n = np.asarray(head_center_mm, float), unit(toward_neck)
    p, k = np.asarray(shaft_point_mm, float), unit(shaft_direction)
    w = p - c
    b = n @ k
    denom = 1.0 - b * b
    if denom < 1e-9:  # parallel: no neck-shaft angle at all
        return p
    t = (b * (n @ w) - (k @ w)) / denom
    return p + t * k


def femoral_load_frame(
    head_center_mm: Vector,
    neck_shaft_point_mm: Vector,
    *,
    notch_mm: Vector | None,
    condylar_medial: Vector | None,
    femoral_anterior: Vector | None,
    shaft_direction: Vector,
    fallback_anterior: Vector,
) -> FemoralFrame:
    """The OrthoLoad femoral frame of one femur (Bergmann et al. 2016), measurement frame.

    Parameters
    ----------
    head_center_mm : (3,) float
        Head centre: the origin.
    neck_shaft_point_mm : (3,) float
        Where the shaft axis meets the neck axis (:func:`neck_shaft_point`).
    notch_mm : (3,) float or None
        The intercondylar notch (None without the distal femur). hipviz takes
        the centroid of the distal 5 % of the femur
        (:func:`hipviz.landmarks.knee_center`), which lies between the
        condyles as the notch does.
    condylar_medial : (3,) float or None
        Unit posterior condylar axis toward the medial condyle.
    femoral_anterior : (3,) float or None
        The femur's anterior (away from the condylar line), only to choose the
        sign of +y.
    shaft_direction : (3,) float
        Unit proximal shaft axis toward the knee (used without the condyles).
    fallback_anterior : (3,) float
        The measurement frame's anterior (used without the condyles).

    Returns
    -------
    FemoralFrame
    """
    c = np.asarray(head_center_mm, float)
    top = np.asarray(neck_shaft_point_mm, float)
    if notch_mm is not None and condylar_medial is not None and femoral_anterior is not None:
        z = unit(top - np.asarray(notch_mm, float))
        y = unit(np.cross(z, condylar_medial))
        y = y if y @ femoral_anterior > 0 else -y
        method, note = "notch", ""
    else:
        z = -unit(shaft_direction)
        y = unit(project_onto_plane(fallback_anterior, z))
        method, note = "shaft", FEMORAL_FRAME_FALLBACK
    x = np.cross(y, z)
    # Lateral is away from the head: the head lies medial of the shaft.
    x = x if (c - top) @ x < 0 else -x
    return FemoralFrame(c, x, y, z, method, note)


# ---- the greater trochanter


def greater_trochanter_tip(
    femur: trimesh.Trimesh,
    head: Sphere,
    shaft_point_mm: Vector,
    shaft_direction: Vector,
    *,
    bin_mm: float = 2.0,
    cap_mm: float = 1.0,
    spacing_mm: float = 1.0,
) -> Vector:
    """Tip of the greater trochanter, found on the femur's own axes.

    Definition: heights are taken along the proximal shaft axis (toward the
    hip), lateral distances from the head centre along the normal to the
    shaft axis that points from the head toward the axis (away from the
    head). Seen from the front or back along the third direction, going
    laterally from the head centre, the femur's upper outline (the highest
    surface point in each ``bin_mm`` strip) falls over the head and the neck
    to a saddle and rises again to the trochanter. The tip is the area
    centroid of the surface within ``cap_mm`` of the highest point lateral
    of that saddle.

    Only the femur's own landmarks enter (head, shaft axis), never the frame
    or the side, and the surface is sampled evenly
    (:func:`hipviz.landmarks.surface_samples`), so neither pose, side nor
    meshing moves the tip beyond the sampling spacing.

    Parameters
    ----------
    femur : trimesh.Trimesh
        mm, any frame (the result is in the same one).
    head : Sphere
        The femoral head.
    shaft_point_mm, shaft_direction : (3,) float
        The proximal shaft axis (a point, and the unit direction toward the knee).

    Returns
    -------
    (3,) float
        The tip, mm.

    Raises
    ------
    LandmarkError
        No bone rises lateral of the neck (no greater trochanter).
    """
    c, r = head.center_mm, head.radius_mm
    up = -unit(shaft_direction)
    lat = -unit(project_onto_plane(c - np.asarray(shaft_point_mm, float), up))
    fs = lmk.FaceSet.of(femur)
    faces = lmk._faces_near(fs, c, 5.0 * r)
    pts, _, wts = lmk.surface_samples(fs, spacing_mm, faces=faces)
    h = (pts - c) @ up
    lc = (pts - c) @ lat  # lateral of the head centre
    keep = (lc >= 0) & (h > -3.0 * r)
    pts, h, lc, wts = pts[keep], h[keep], lc[keep], wts[keep]
    if len(pts) == 0:
        raise LandmarkError("no bone lateral of the femoral head", bone="femur")
    strip = np.floor(lc / bin_mm).astype(np.int64)
    n = int(strip.max()) + 1
    outline = np.full(n, -np.inf)
    np.maximum.at(outline, strip, h)
    filled = np.isfinite(outline)
    profile = np.where(filled, outline, np.inf)
    low = np.minimum.accumulate(profile)  # lowest outline so far, going lateral
    rise = np.where(filled, outline - low, -np.inf)
    peak = int(np.argmax(rise))
    if rise[peak] < 1.0:
        msg = "no greater trochanter: no bone rises lateral of the femoral neck"
        raise LandmarkError(msg, bone="femur")
    saddle = int(np.argmin(profile[: peak + 1]))
    beyond = strip > saddle
    top = h[beyond].max()
    cap = beyond & (h >= top - cap_mm)
    return (pts[cap] * wts[cap, None]).sum(axis=0) / wts[cap].sum()


# ---- the abductor origin on the ilium


@dataclass(frozen=True)
class AbductorOrigin:
    """Where the abductors pull from on the ilium (Debrunner 1975).

    ``point_mm`` (3,) is in the measurement frame (None when no ilium was
    found: the abductor line then rises at :data:`DEFAULT_ABDUCTOR_DEG` from
    vertical). ``iliac_height_mm`` and ``iliac_width_mm`` are the ilium's
    height above the socket roof and its width in the frontal plane;
    ``method`` says what was done.
    """

    point_mm: Vector | None
    iliac_height_mm: float
    iliac_width_mm: float
    method: str


def _hip_bone(pelvis: trimesh.Trimesh, near_mm: Vector) -> np.ndarray:
    """Vertices (n, 3) of the body of ``pelvis`` (hip bone) nearest ``near_mm``."""
    verts = np.asarray(pelvis.vertices)
    labels = trimesh.graph.connected_component_labels(
        pelvis.face_adjacency, node_count=len(pelvis.faces)
    )
    face = int(np.argmin(np.linalg.norm(pelvis.triangles_center - near_mm, axis=1)))
    used = np.unique(np.asarray(pelvis.faces)[labels == labels[face]])
    return verts[used]


def abductor_origin(
    pelvis: trimesh.Trimesh | None,
    socket: Sphere | None,
    lateral: Vector,
    superior: Vector,
    *,
    midline_mm: Vector | None = None,
) -> AbductorOrigin:
    """Debrunner's abductor origin on this hip's ilium, in the frontal plane.

    The hip bone is the body of the pelvis mesh around the socket (a sacrum
    or the other hip bone, when separate bodies, never enters); with a
    midline, bone across it is dropped as well. Above the socket roof (the
    top of the socket sphere), the ilium's height H is from the roof to the
    crest's highest point, its width W from its most lateral to its most
    medial point, both in the frontal plane. The origin lies
    ``2/3 H`` above the roof and ``2/5 W`` in from the lateral edge
    (Debrunner 1975), at the socket centre's depth (Pauwels' model is
    planar, so depth plays no part).

    Parameters
    ----------
    pelvis : trimesh.Trimesh or None
        Measurement frame, mm.
    socket : Sphere or None
        The socket sphere.
    lateral, superior : (3,) float
        This hip's lateral and the frame's superior unit axes.
    midline_mm : (3,) float, optional
        A point of the mid-sagittal plane (normal ``lateral``).
    """
    if pelvis is None or socket is None:
        return AbductorOrigin(
            None,
            math.nan,
            math.nan,
            f"no pelvis: abductor line {DEFAULT_ABDUCTOR_DEG:g}° from vertical",
        )
    c = socket.center_mm
    pts = _hip_bone(pelvis, c)
    if midline_mm is not None:
        pts = pts[(pts - midline_mm) @ lateral > 0]
    u = (pts - c) @ lateral
    v = (pts - c) @ superior
    roof = socket.radius_mm
    above = v > roof
    height = float(v[above].max() - roof) if above.any() else 0.0
    if height < MIN_ILIUM_MM:
        return AbductorOrigin(
            None,
            height,
            math.nan,
            f"no ilium above the socket (bone reaches {height:.0f} mm above the roof, "
            f"less than {MIN_ILIUM_MM:g}): abductor line {DEFAULT_ABDUCTOR_DEG:g}° from vertical",
        )
    width = float(u[above].max() - u[above].min())
    u_o = float(u[above].max()) - ILIAC_WIDTH_SHARE * width
    v_o = roof + ILIAC_HEIGHT_SHARE * height
    return AbductorOrigin(
        c + u_o * np.asarray(lateral) + v_o * np.asarray(superior),
        height,
        width,
        "Debrunner 1975: 2/3 of the iliac height above the socket roof, 2/5 of the iliac "
        "width in from its lateral edge (frontal plane)",
    )


# ---- the result


@dataclass(frozen=True)
class JointLoad:
    """A joint load: the force the femoral head exerts on the socket.

    Attributes
    ----------
    force_n : (3,) float
        The force on the socket, N, measurement frame.
    force_bw : float
        Its magnitude in body weights.
    model : str
        ``walking``, ``one-leg-stance``, ``standing-up``, ``pauwels`` or ``custom``.
    source : str
        What was used, and its source (the ``load_model`` text).
    body_weight_kg : float
    details : dict
        Model specifics (Pauwels' lever arms and forces, the femoral frame).
    fallbacks : list of str
        Each landmark the model had to do without, and what it took instead
        (no condyles, no midline, no ilium); empty when none.
    """

    force_n: Vector
    force_bw: float
    model: str
    source: str
    body_weight_kg: float
    details: dict[str, Any] = field(default_factory=dict)
    fallbacks: list[str] = field(default_factory=list)

    def as_dict(self, tf_input_ras: Transform | None = None) -> dict[str, Any]:
        """The JSON keys a load adds to ``hipviz measure --json``.

        Parameters
        ----------
        tf_input_ras : (4, 4) float, optional
            Measurement frame -> input coordinates: the points of
            ``details`` (``*_mm``) are reported in the input coordinates, as
            ``head_center_mm`` is. The forces stay in the measurement frame.
        """
        details = dict(self.details)
        if tf_input_ras is not None:
            for key in ("gt_tip_mm", "abductor_origin_mm"):
                if details.get(key) is not None:
                    details[key] = apply(tf_input_ras, details[key])
        out: dict[str, Any] = {
            "joint_force_n": [float(x) for x in self.force_n],
            "joint_force_bw": float(self.force_bw),
            "load_model": self.source,
            "body_weight_kg": float(self.body_weight_kg),
        }
        if self.model == "pauwels":
            out["pauwels"] = details
        elif details:
            out["load_frame"] = details
        return out


def body_weight_n(body_weight_kg: float) -> float:
    """Body weight in newtons (g = :data:`G`), after checking the range."""
    check_body_weight(body_weight_kg)
    return float(body_weight_kg) * G


def check_body_weight(body_weight_kg: float) -> None:
    """Raise InputError unless the body weight is a number within the accepted range."""
    lo, hi = BODY_WEIGHT_RANGE_KG
    if not (math.isfinite(body_weight_kg) and lo <= body_weight_kg <= hi):
        msg = f"body weight {body_weight_kg:g} kg is outside {lo:g}-{hi:g} kg"
        raise InputError(msg)


def orthoload(
    name: str, frame: FemoralFrame, body_weight_kg: float = DEFAULT_BODY_WEIGHT_KG
) -> JointLoad:
    """A named OrthoLoad case as the force on the socket, N, measurement frame.

    Parameters
    ----------
    name : str
        A key of :data:`ORTHOLOAD_CASES`.
    frame : FemoralFrame
        The femur's OrthoLoad frame in the measurement frame (its pose).
    body_weight_kg : float

    Returns
    -------
    JointLoad
        ``force_n = -BW * force_pct_bw / 100`` turned into the measurement
        frame: the socket receives the opposite of the force on the head.
    """
    if name not in ORTHOLOAD_CASES:
        msg = f"unknown load case {name!r}; expected one of {', '.join(LOAD_NAMES)} or FX,FY,FZ"
        raise InputError(msg)
    case = ORTHOLOAD_CASES[name]
    bw = body_weight_n(body_weight_kg)
    on_head = frame.to_measurement(np.asarray(case.force_pct_bw) / 100.0 * bw)
    force = -on_head
    text = (
        f"{name}: {case.title}, {ORTHOLOAD_SOURCE}; |F| {case.magnitude_pct_bw:g} ± "
        f"{case.sd_pct_bw:g} %BW (the mean vector's own length "
        f"{np.linalg.norm(case.force_pct_bw):.0f} %BW), femoral frame to measurement frame "
        f"through the femur's pose; body weight {body_weight_kg:g} kg"
    )
    details = {
        "force_on_head_pct_bw": list(case.force_pct_bw),
        "magnitude_pct_bw": case.magnitude_pct_bw,
        "sd_pct_bw": case.sd_pct_bw,
        "frame_method": FEMORAL_FRAME_METHOD if frame.method == "notch" else FEMORAL_FRAME_FALLBACK,
        "lateral": frame.lateral,
        "anterior": frame.anterior,
        "superior": frame.superior,
    }
    return JointLoad(force, float(np.linalg.norm(force) / bw), name, text, body_weight_kg, details)


def custom_load(force_n: ArrayLike, body_weight_kg: float = DEFAULT_BODY_WEIGHT_KG) -> JointLoad:
    """A force given in newtons, measurement frame, on the socket, taken as is."""
    f = np.asarray(force_n, dtype=float)
    if f.shape != (3,) or not np.isfinite(f).all():
        msg = f"a joint force needs three finite numbers FX,FY,FZ in newtons, got {f.tolist()}"
        raise InputError(msg)
    size = float(np.linalg.norm(f))
    if not 0.0 < size <= MAX_FORCE_N:
        msg = f"joint force |F| = {size:g} N is outside 0-{MAX_FORCE_N:g} N"
        raise InputError(msg)
    bw = body_weight_n(body_weight_kg)
    text = (
        f"custom: ({f[0]:g}, {f[1]:g}, {f[2]:g}) N on the socket, measurement frame, as given; "
        f"body weight {body_weight_kg:g} kg for the ×BW figure"
    )
    return JointLoad(f, size / bw, "custom", text, body_weight_kg)


def pauwels(
    head_center_mm: Vector,
    gt_tip_mm: Vector,
    origin: AbductorOrigin,
    midline_mm: Vector,
    lateral: Vector,
    superior: Vector,
    body_weight_kg: float = DEFAULT_BODY_WEIGHT_KG,
    *,
    midline_method: str = "",
) -> JointLoad:
    """Pauwels' one-legged stance from this hip's geometry, in the frontal plane.

    The body above the stance hip (all but the stance leg, S5 = 5/6 BW)
    hangs at the body midline, a lever arm ``a`` medial of the head
    centre; the abductors pull along the line from the greater-trochanter
    tip to their iliac origin, at a lever arm ``h`` (the distance of the
    head centre from that line). Moments about the head centre balance,
    ``M = S5 a / h``, and the head pushes on the socket with
    ``R = S5 (up) + M (along the abductor line, toward the ilium)``.

    Parameters
    ----------
    head_center_mm, gt_tip_mm : (3,) float
        Measurement frame, mm; only their frontal-plane coordinates count.
    origin : AbductorOrigin
        Where the abductors pull from (its ``point_mm`` None: a line at
        :data:`DEFAULT_ABDUCTOR_DEG` from vertical, leaning medially upward).
    midline_mm : (3,) float
        A point of the mid-sagittal plane (normal ``lateral``).
    lateral, superior : (3,) float
        This hip's lateral axis and the vertical, unit, measurement frame.
    body_weight_kg : float

    Returns
    -------
    JointLoad
        ``details`` holds both lever arms (mm), the abductor force (N, ×BW),
        the joint force (N, ×BW) and its angle from vertical in the frontal
        plane (degrees, positive when the force on the socket points
        medially upward, as in Pauwels' figures).

    Raises
    ------
    InputError
        The head centre is not lateral of the midline, the abductor origin
        is not above the trochanter tip, or the abductor line passes less
        than 1 mm lateral of the head centre or medial of it (no abductor
        lever arm).
    """
    lat, sup = unit(lateral), unit(superior)
    c = np.asarray(head_center_mm, float)

    def frontal(p: Vector) -> np.ndarray:
        d = np.asarray(p, float) - c
        return np.array([d @ lat, d @ sup])

    bw = body_weight_n(body_weight_kg)
    s5 = STANCE_SHARE * bw
    a = -float(frontal(midline_mm)[0])
    if a <= 0:
        msg = f"the head centre lies {-a:.0f} mm medial of the body midline: no Pauwels balance"
        raise InputError(msg)
    g = frontal(gt_tip_mm)
    if origin.point_mm is not None:
        d = unit(frontal(origin.point_mm) - g)
        if d[1] <= 0:
            msg = "the abductor origin lies no higher than the greater-trochanter tip"
            raise InputError(msg)
    else:
        t = math.radians(DEFAULT_ABDUCTOR_DEG)
        d = np.array([-math.sin(t), math.cos(t)])
    h = float(g[0] * d[1] - g[1] * d[0])  # moment arm of a pull along d through g
    if h <= 1.0:
        msg = (
            f"the abductor line passes {abs(h):.1f} mm {'medial' if h < 0 else 'lateral'} of "
            "the head centre: no abductor lever arm"
        )
        raise InputError(msg)
    m = s5 * a / h
    r2 = np.array([0.0, s5]) + m * d
    force = r2[0] * lat + r2[1] * sup
    size = float(np.hypot(*r2))
    angle = math.degrees(math.atan2(-r2[0], r2[1]))
    details = {
        "body_weight_lever_arm_mm": a,
        "abductor_lever_arm_mm": h,
        "lever_arm_ratio": a / h,
        "stance_weight_n": s5,
        "abductor_force_n": m,
        "abductor_force_bw": m / bw,
        "abductor_angle_deg": math.degrees(math.atan2(-d[0], d[1])),
        "joint_force_n": size,
        "joint_force_bw": size / bw,
        "joint_force_angle_deg": angle,
        "gt_tip_mm": np.asarray(gt_tip_mm, float),
        "gt_tip_method": GT_TIP_METHOD,
        "abductor_origin_mm": origin.point_mm,
        "abductor_origin_method": origin.method,
        "midline_method": midline_method,
    }
    text = (
        f"pauwels: {PAUWELS_SOURCE}; lever arms a {a:.1f} mm (body weight), h {h:.1f} mm "
        f"(abductors); body weight {body_weight_kg:g} kg"
    )
    return JointLoad(force, size / bw, "pauwels", text, body_weight_kg, details)


# ---- one hip's load geometry


@dataclass(frozen=True)
class LoadGeometry:
    """The landmarks of one hip that its loads need, measurement frame (mm, unit vectors).

    Proximal landmarks (``head_center_mm``, ``neck_shaft_point_mm``,
    ``gt_tip_mm``) move with the proximal femur, distal ones
    (``notch_mm``, ``condylar_medial``, ``femoral_anterior``,
    ``shaft_direction``) with the distal femur, and the pelvic ones
    (``abductor``, ``midline_mm``) stay: see :meth:`moved`.
    """

    side: str
    lateral: Vector
    superior: Vector
    anterior: Vector
    head_center_mm: Vector
    neck_shaft_point_mm: Vector
    shaft_direction: Vector
    notch_mm: Vector | None
    condylar_medial: Vector | None
    femoral_anterior: Vector | None
    gt_tip_mm: Vector | None
    gt_note: str
    abductor: AbductorOrigin
    midline_mm: Vector
    midline_method: str
    midline_found: bool = True

    def femoral_frame(self) -> FemoralFrame:
        """The OrthoLoad frame of the femur in this pose."""
        return femoral_load_frame(
            self.head_center_mm,
            self.neck_shaft_point_mm,
            notch_mm=self.notch_mm,
            condylar_medial=self.condylar_medial,
            femoral_anterior=self.femoral_anterior,
            shaft_direction=self.shaft_direction,
            fallback_anterior=self.anterior,
        )

    def moved(self, tf_proximal: Transform, tf_distal: Transform) -> LoadGeometry:
        """The landmarks after the femur's pieces moved (pelvic landmarks stay).

        For Pauwels the leg stands as it did before the operation (as the
        leg-length figure of :meth:`hipviz.simulate.Simulation.move`
        assumes): after a femoral osteotomy, the proximal femur turns about
        the head centre by the inverse of the distal piece's turn relative to
        it, so the greater trochanter moves as the wedge makes it (a varus
        wedge carries it laterally). The OrthoLoad frame, built from the
        moved notch, condyles and neck-shaft point, turns with the femur's
        pose as the simulation places it. A rigid move of the whole femur
        (the same turn for both pieces) thus leaves Pauwels' load as it was.
        """
        rot_d = tf_distal[:3, :3]
        c_after = apply(tf_proximal, self.head_center_mm)
        gt = None
        if self.gt_tip_mm is not None:
            # Standing again turns the whole leg about the head centre until the
            # distal femur is as it was: by the inverse of the distal turn.
            offset = tf_proximal[:3, :3] @ (self.gt_tip_mm - self.head_center_mm)
            gt = c_after + rot_d.T @ offset
        return replace(
            self,
            head_center_mm=c_after,
            neck_shaft_point_mm=apply(tf_proximal, self.neck_shaft_point_mm),
            shaft_direction=rot_d @ self.shaft_direction,
            notch_mm=None if self.notch_mm is None else apply(tf_distal, self.notch_mm),
            condylar_medial=None if self.condylar_medial is None else rot_d @ self.condylar_medial,
            femoral_anterior=None
            if self.femoral_anterior is None
            else rot_d @ self.femoral_anterior,
            gt_tip_mm=gt,
        )


def load_geometry(
    femur: trimesh.Trimesh,
    pelvis: trimesh.Trimesh | None,
    *,
    side: str,
    frame: str,
    head: Sphere,
    socket: Sphere | None,
    toward_neck: Vector,
    shaft: lmk.ShaftAxis,
    condylar_medial: Vector | None,
    femoral_anterior: Vector | None,
    lateral: Vector,
    anterior: Vector,
    superior: Vector,
    need_trochanter: bool = True,
) -> LoadGeometry:
    """Find the landmarks a joint load needs on one hip (measurement frame).

    Parameters
    ----------
    femur, pelvis : trimesh.Trimesh
        In the measurement frame, mm (pelvis None: no pelvis).
    side : {"left", "right"}
    frame : str
        The frame's name: in ``app`` the mid-sagittal plane is x = 0 (the
        frame's origin is the mid-point of the ASIS); in any other frame
        the midline is taken :data:`DEFAULT_MIDLINE_MM` medial of the head
        centre.
    head, socket : Sphere
    toward_neck : (3,) float
        Unit neck axis from the head centre toward the neck.
    shaft : ShaftAxis
    condylar_medial, femoral_anterior : (3,) float or None
        From :func:`hipviz.hip.femur_landmarks` (None without condyles).
    lateral, anterior, superior : (3,) float
        This hip's axes.
    need_trochanter : bool
        Find the greater-trochanter tip (Pauwels); False skips it.
    """
    c = head.center_mm
    notch = lmk.knee_center(femur, shaft) if condylar_medial is not None else None
    point = neck_shaft_point(c, toward_neck, shaft.point_mm, shaft.direction)
    if frame == "app":
        midline = np.zeros(3)
        midline_method = "the mid-sagittal plane of the anterior pelvic plane frame (x = 0)"
    else:
        midline = c - DEFAULT_MIDLINE_MM * np.asarray(lateral, float)
        midline_method = (
            f"no pelvic midline in the {frame} frame: taken {DEFAULT_MIDLINE_MM:g} mm medial of "
            "the head centre (0.36 of a 250 mm inter-ASIS distance; Bell et al. 1989)"
        )
    gt, gt_note = None, ""
    if need_trochanter:
        gt = greater_trochanter_tip(femur, head, shaft.point_mm, shaft.direction)
        gt_note = GT_TIP_METHOD
    origin = abductor_origin(
        pelvis, socket, lateral, superior, midline_mm=midline if frame == "app" else None
    )
    return LoadGeometry(
        side=side,
        lateral=np.asarray(lateral, float),
        superior=np.asarray(superior, float),
        anterior=np.asarray(anterior, float),
        head_center_mm=c,
        neck_shaft_point_mm=point,
        shaft_direction=shaft.direction,
        notch_mm=notch,
        condylar_medial=condylar_medial,
        femoral_anterior=femoral_anterior,
        gt_tip_mm=gt,
        gt_note=gt_note,
        abductor=origin,
        midline_mm=midline,
        midline_method=midline_method,
        midline_found=frame == "app",
    )


def hip_load_geometry(
    analysis: HipAnalysis,
    pelvis: trimesh.Trimesh | None,
    femur: trimesh.Trimesh,
    *,
    need_trochanter: bool = True,
) -> LoadGeometry:
    """:func:`load_geometry` of an analysed hip; meshes in the measurement frame, mm.

    The femur mesh may hold other bodies (a patella, a tibia): the femur is
    picked as :func:`hipviz.hip.analyze` picks it
    (:func:`hipviz.bodies.select_femur`), so the knee end is the femur's.
    """
    fl, axes = analysis.femur, analysis.axes
    femur, _ = select_femur(femur, pelvis)
    return load_geometry(
        femur,
        pelvis,
        side=analysis.side,
        frame=analysis.frame,
        head=analysis.head,
        socket=analysis.socket,
        toward_neck=fl.toward_neck,
        shaft=fl.shaft,
        condylar_medial=fl.medial,
        femoral_anterior=fl.anterior,
        lateral=axes.lateral,
        anterior=axes.anterior,
        superior=axes.superior,
        need_trochanter=need_trochanter,
    )


def parse_load(text: str) -> str | Vector:
    """A ``--load`` value: a case name, or ``FX,FY,FZ`` newtons -> a (3,) force.

    Raises
    ------
    InputError
        Neither a known name nor three finite numbers.
    """
    name = text.strip().lower()
    if name in LOAD_NAMES:
        return name
    parts = [p.strip() for p in text.split(",")]
    try:
        values = [float(p) for p in parts]
    except ValueError:
        values = []
    if len(values) != 3 or not all(math.isfinite(v) for v in values):
        msg = (
            f"--load {text!r}: expected one of {', '.join(LOAD_NAMES)}, or a force "
            "FX,FY,FZ in newtons (on the socket, measurement frame)"
        )
        raise InputError(msg)
    return np.array(values)


def joint_load(
    spec: str | ArrayLike, geometry: LoadGeometry, body_weight_kg: float = DEFAULT_BODY_WEIGHT_KG
) -> JointLoad:
    """The load ``spec`` (a name of :data:`LOAD_NAMES` or a force, N) on one hip."""
    check_body_weight(body_weight_kg)
    if isinstance(spec, str):
        if spec == "pauwels":
            if geometry.gt_tip_mm is None:
                msg = "Pauwels' load needs the greater trochanter, which was not looked for"
                raise InputError(msg)
            load = pauwels(
                geometry.head_center_mm,
                geometry.gt_tip_mm,
                geometry.abductor,
                geometry.midline_mm,
                geometry.lateral,
                geometry.superior,
                body_weight_kg,
                midline_method=geometry.midline_method,
            )
            fallbacks = [] if geometry.midline_found else [geometry.midline_method]
            if geometry.abductor.point_mm is None:
                fallbacks.append(geometry.abductor.method)
            return replace(load, fallbacks=fallbacks)
        frame = geometry.femoral_frame()
        return replace(
            orthoload(spec, frame, body_weight_kg), fallbacks=[frame.note] if frame.note else []
        )
    return custom_load(spec, body_weight_kg)


# ---- options of a loaded measurement, and the contact model's call


@dataclass(frozen=True)
class LoadOptions:
    """What ``--load`` and its companions ask for, checked.

    ``load`` is a name of :data:`LOAD_NAMES`, a (3,) force in newtons (on the
    socket, measurement frame) or None (no load: nothing is computed).
    ``modulus_mpa``, ``poisson`` and ``spring`` go to the contact model
    (:mod:`hipviz.contact`); None leaves its documented default.
    """

    load: str | Vector | None = None
    body_weight_kg: float = DEFAULT_BODY_WEIGHT_KG
    modulus_mpa: float | None = None
    poisson: float | None = None
    spring: str | None = None

    def validate(self) -> LoadOptions:
        """Raise InputError on a value out of range; return self."""
        check_body_weight(self.body_weight_kg)
        if self.modulus_mpa is not None:
            lo, hi = MODULUS_RANGE_MPA
            if not (math.isfinite(self.modulus_mpa) and lo <= self.modulus_mpa <= hi):
                msg = f"cartilage modulus {self.modulus_mpa:g} MPa is outside {lo:g}-{hi:g} MPa"
                raise InputError(msg)
        if self.poisson is not None and not (
            math.isfinite(self.poisson) and 0.0 <= self.poisson < 0.5
        ):
            msg = (
                f"Poisson's ratio {self.poisson:g} is outside [0, 0.5) "
                "(0.5 is incompressible: the spring stiffness is infinite)"
            )
            raise InputError(msg)
        if self.spring is not None and self.spring not in SPRING_LAWS:
            msg = f"spring law {self.spring!r} is not one of {', '.join(SPRING_LAWS)}"
            raise InputError(msg)
        if not isinstance(self.load, (str, type(None))):
            custom_load(self.load, self.body_weight_kg)  # checks the force
        return self

    @property
    def needs_trochanter(self) -> bool:
        """True for Pauwels' load, the one that needs the greater trochanter."""
        return isinstance(self.load, str) and self.load == "pauwels"

    def contact_kwargs(self) -> dict[str, Any]:
        """The contact model's keyword arguments that were given."""
        given = {"modulus_mpa": self.modulus_mpa, "poisson": self.poisson, "spring": self.spring}
        return {k: v for k, v in given.items() if v is not None}


#: Cartilage Young's modulus accepted, MPa (as :mod:`hipviz.contact`).
MODULUS_RANGE_MPA = (0.1, 1000.0)
#: Spring laws of the contact model: linear p = K d/h, logarithmic p = -K ln(1 - d/h).
SPRING_LAWS = ("linear", "log")
#: Why there are no contact keys when the contact model is missing.
NO_CONTACT_NOTE = "contact pressure: the contact model (hipviz.contact) is not installed"


def contact_keys(
    pelvis: trimesh.Trimesh,
    head: Sphere,
    socket: Sphere | None,
    force_n: Vector,
    options: LoadOptions,
    axes: Any,
) -> tuple[dict[str, Any], str]:
    """Contact pressure under a joint load: the JSON keys, or a note why there are none.

    **This is the one place hipviz calls the contact model.** It is guarded:
    without :mod:`hipviz.contact` the load is still reported, and the note
    says why the pressure is not.

    Parameters
    ----------
    pelvis : trimesh.Trimesh
        The pelvis, or the acetabular piece carrying the socket, measurement frame.
    head, socket : Sphere
        Head and socket spheres, measurement frame (socket None: no fossa cut).
    force_n : (3,) float
        Force of the head on the socket, N, measurement frame.
    options : LoadOptions
    axes : hipviz.measures.HipAxes
        For the lateral-roof share.

    Returns
    -------
    keys : dict
        ``contact_peak_mpa``, ``contact_mean_mpa``, ``contact_area_mm2`` and
        the rest of :meth:`hipviz.contact.ContactResult.as_dict`; empty
        without the contact model.
    note : str
        "" when solved.
    """
    try:
        from . import contact  # type: ignore[attr-defined]
    except ImportError:
        return {}, NO_CONTACT_NOTE
    surface = contact.articular_surface(pelvis, head, socket)
    result = contact.solve_contact(
        surface, head.center_mm, force_n, axes=axes, **options.contact_kwargs()
    )
    return result.as_dict(), ""


__all__ = [
    "BODY_WEIGHT_RANGE_KG",
    "LoadOptions",
    "contact_keys",
    "DEFAULT_BODY_WEIGHT_KG",
    "G",
    "LOAD_NAMES",
    "ORTHOLOAD_CASES",
    "AbductorOrigin",
    "FemoralFrame",
    "JointLoad",
    "LoadCase",
    "LoadGeometry",
    "abductor_origin",
    "custom_load",
    "femoral_load_frame",
    "greater_trochanter_tip",
    "hip_load_geometry",
    "joint_load",
    "load_geometry",
    "neck_shaft_point",
    "orthoload",
    "parse_load",
    "pauwels",
]
