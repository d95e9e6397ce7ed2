"""Osteotomies: where the cuts go, the cuts themselves, and how the pieces move.

Everything here works in the measurement frame of one hip (RAS, mm; see
:func:`hipviz.hip.analyze`) and in that hip's own axes
(:class:`hipviz.measures.HipAxes`: lateral, anterior, superior), so a number
means the same thing on a left and on a right hip.

Acetabular osteotomies (PAO, triple, Salter, Chiari, rotational) free a
*fragment* of the hemipelvis around the socket. The fragment is the bone
inside a region bounded by cut planes (and, for the rotational osteotomy, a
sphere concentric with the head), keeping the one connected piece that holds
the socket; everything else is the *rest*. Both pieces are closed surfaces
(cut with manifold3d). The fragment turns about a pivot and shifts; the femur
follows the socket.

Femoral osteotomies cut the femur by one plane across the shaft below the
neck. The head stays in the socket; the shaft (the *distal* piece) turns
about a hinge.

Sign conventions (DESIGN section 5): positive ``lateral`` raises the lateral
centre-edge angle, positive ``anterior`` raises the anterior centre-edge
angle, positive ``version`` raises acetabular version, positive ``medial``
moves the fragment toward the midline. Positive ``varus`` lowers the
neck-shaft angle (negative is valgus), positive ``rotation`` raises femoral
version, positive ``flexion`` flexes the head and neck relative to the shaft
(with the head held in the socket, the shaft turns into extension).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from functools import cached_property

import numpy as np
import trimesh

from ._manifold import from_manifold, to_manifold
from ._typing import ArrayLike, Points, Transform, Vector
from .errors import InputError
from .geometry import apply, rotation, rotation_about, translation, unit
from .measures import HipAxes

#: Largest rotation a slider or flag may ask for, degrees.
MAX_ANGLE_DEG = 45.0
#: Range of the fragment shift, mm (Chiari moves >= 20 mm medially).
SHIFT_RANGE_MM = (-15.0, 40.0)
#: Range of the cut adjustments.
MAX_CUT_OFFSET_MM = 25.0
MAX_CUT_TILT_DEG = 40.0
#: Cut-face samples used for the contact area, per cut.
CONTACT_SAMPLES = 1500
#: One cut-face sample in this many anchors the search for the deepest overlap.
ANCHOR_STEP = 8


# --------------------------------------------------------------------------- definitions


@dataclass(frozen=True)
class Plane:
    """A cut plane. The fragment (or the moving piece) lies where ``normal . (x - point) <= 0``.

    ``point_mm`` (3,) and unit ``normal`` (3,) in the measurement frame.
    """

    name: str
    point_mm: Vector
    normal: Vector

    def signed_distance(self, points: ArrayLike) -> np.ndarray:
        """(n,) mm: positive on the side away from the fragment."""
        return (np.asarray(points, dtype=float) - self.point_mm) @ self.normal


@dataclass(frozen=True)
class CutAdjust:
    """User adjustment of one cut, on top of its automatic placement.

    ``offset_mm`` moves the plane along its normal, away from the head
    (a larger fragment) when positive; ``tilt_deg`` turns it about the cut's
    hinge line (see :func:`place_cuts` for each cut's axis).
    """

    offset_mm: float = 0.0
    tilt_deg: float = 0.0


@dataclass(frozen=True)
class CutAdjustments:
    """Adjustments of the four acetabular cuts (and the rotational osteotomy's radius)."""

    iliac: CutAdjust = CutAdjust()
    retro: CutAdjust = CutAdjust()
    ischial: CutAdjust = CutAdjust()
    pubic: CutAdjust = CutAdjust()
    sphere_mm: float = 0.0  # added to the spherical cut's radius

    def validate(self) -> CutAdjustments:
        """Return self; raise InputError for absurd values."""
        for f in ("iliac", "retro", "ischial", "pubic"):
            a = getattr(self, f)
            _check_range(
                f"{f} cut offset", a.offset_mm, -MAX_CUT_OFFSET_MM, MAX_CUT_OFFSET_MM, "mm"
            )
            _check_range(f"{f} cut tilt", a.tilt_deg, -MAX_CUT_TILT_DEG, MAX_CUT_TILT_DEG, "deg")
        _check_range("sphere radius change", self.sphere_mm, -8.0, 15.0, "mm")
        return self


@dataclass(frozen=True)
class AcetabularMove:
    """Turn and shift of the acetabular fragment (degrees, mm).

    Rotations are applied in the order lateral, anterior, version, each about
    an axis fixed in the pelvis through the procedure's pivot; then the shift.
    """

    lateral_deg: float = 0.0
    anterior_deg: float = 0.0
    version_deg: float = 0.0
    medial_mm: float = 0.0

    def validate(self) -> AcetabularMove:
        """Return self; raise InputError for absurd values."""
        for name in ("lateral", "anterior", "version"):
            v = getattr(self, f"{name}_deg")
            _check_range(f"acetabular {name}", v, -MAX_ANGLE_DEG, MAX_ANGLE_DEG, "deg")
        _check_range("acetabular medial shift", self.medial_mm, *SHIFT_RANGE_MM, "mm")
        return self

    @property
    def is_identity(self) -> bool:
        return not any(getattr(self, f.name) for f in fields(self))


@dataclass(frozen=True)
class FemoralMove:
    """Intertrochanteric osteotomy: turn of the shaft below the cut (degrees).

    Applied in the order rotation (about the shaft axis), varus/valgus (about
    the femoral anterior axis through the hinge at the medial cortex for
    varus, the lateral cortex for valgus), flexion (about the femoral
    medio-lateral axis through the shaft axis).
    """

    varus_deg: float = 0.0
    flexion_deg: float = 0.0
    rotation_deg: float = 0.0

    def validate(self) -> FemoralMove:
        """Return self; raise InputError for absurd values."""
        for name in ("varus", "flexion", "rotation"):
            v = getattr(self, f"{name}_deg")
            _check_range(f"femoral {name}", v, -MAX_ANGLE_DEG, MAX_ANGLE_DEG, "deg")
        return self

    @property
    def is_identity(self) -> bool:
        return not any(getattr(self, f.name) for f in fields(self))


def _check_range(what: str, value: float, lo: float, hi: float, unit_: str) -> None:
    if not np.isfinite(value) or not lo <= value <= hi:
        msg = f"{what} {value:g} {unit_} is outside {lo:g} to {hi:g} {unit_}"
        raise InputError(msg)


@dataclass(frozen=True)
class Procedure:
    """An acetabular osteotomy: which cuts, where it turns, and a plain description."""

    name: str
    title: str
    description: str
    cuts: tuple[str, ...]
    sphere: bool
    pivot: str  # "head" or "salter" (the sciatic notch, turning toward the symphysis)
    shift: str  # "medial" (straight) or "along_cut" (slides on the iliac cut)
    default_move: AcetabularMove
    midline: bool = False  # bounded by the midline (the fragment reaches the symphysis)


PROCEDURES: dict[str, Procedure] = {
    p.name: p
    for p in (
        Procedure(
            "pao",
            "Periacetabular osteotomy (Bernese, Ganz)",
            "Four cuts free the socket from the rest of the pelvis while the back "
            "column of the pelvis stays whole. The freed socket is turned over the "
            "ball of the thigh bone so it covers more of it, then held with screws.",
            ("iliac", "retro", "ischial", "pubic"),
            False,
            "head",
            "medial",
            AcetabularMove(20.0, 5.0, 0.0, 3.0),
        ),
        Procedure(
            "triple",
            "Triple pelvic osteotomy (Steel / Tönnis)",
            "Three cuts, through the hip bone above the socket and through the two "
            "thin bones below it, free a large piece holding the socket. It is "
            "turned to cover the ball better; used when the growth plates are "
            "nearly closed.",
            ("salter_iliac", "ischial_ramus", "pubic"),
            False,
            "head",
            "medial",
            AcetabularMove(15.0, 10.0, 0.0, 0.0),
        ),
        Procedure(
            "salter",
            "Salter innominate osteotomy",
            "One cut through the hip bone just above the socket, from the notch at "
            "the back to the front. The whole lower part, socket included, is "
            "swung forward and outward, hinging on the joint at the front of the "
            "pelvis; a wedge of bone keeps the opening. Used in children.",
            ("salter_iliac",),
            False,
            "salter",
            "medial",
            AcetabularMove(0.0, 20.0, 0.0, 0.0),
            midline=True,
        ),
        Procedure(
            "chiari",
            "Chiari pelvic osteotomy",
            "One cut just above the hip joint, rising toward the middle. The lower "
            "part with the socket and the thigh bone slides toward the middle, so "
            "the bone above the cut becomes a roof over the ball. Used when the "
            "socket cannot be turned to cover the ball.",
            ("chiari",),
            False,
            "head",
            "along_cut",
            AcetabularMove(0.0, 0.0, 0.0, 20.0),
            midline=True,
        ),
        Procedure(
            "rao",
            "Rotational acetabular osteotomy",
            "A curved cut, like a bowl around the socket at an even distance from "
            "the ball, frees the socket with a shell of bone. The shell is turned "
            "over the ball along the curved cut.",
            (),
            True,
            "head",
            "medial",
            AcetabularMove(20.0, 5.0, 0.0, 0.0),
        ),
    )
}


@dataclass(frozen=True)
class CutGeometry:
    """Where an acetabular osteotomy cuts and how its fragment turns (measurement frame).

    Attributes
    ----------
    procedure : str
    planes : tuple of Plane
    sphere_radius_mm : float or None
        Spherical cut about the head centre (rotational osteotomy).
    center_mm : (3,) float
        Head centre the cuts were placed around.
    pivot_mm : (3,) float
        Point the fragment turns about.
    rotation_axes : dict
        ``lateral``, ``anterior``, ``version`` -> unit axis (3,), oriented so a
        positive angle raises that measure.
    shift_direction : (3,) float
        Unit direction of a positive ``medial_mm``.
    placed_from : str
        ``"landmarks"`` or ``"distances"`` (fallback around the head centre).
    """

    procedure: str
    planes: tuple[Plane, ...]
    sphere_radius_mm: float | None
    center_mm: Vector
    pivot_mm: Vector
    rotation_axes: dict[str, Vector]
    shift_direction: Vector
    placed_from: str


def _tilted(normal: Vector, axis: Vector, tilt_deg: float) -> Vector:
    return unit(rotation(axis, tilt_deg) @ normal)


def _plane_through(name: str, a: Vector, b: Vector, along: Vector, toward: Vector) -> Plane:
    """Plane through points ``a``, ``b`` containing ``along``; normal toward ``toward``."""
    n = unit(np.cross(b - a, along))
    if n @ toward < 0:
        n = -n
    return Plane(name, np.asarray(a, dtype=float), n)


def _adjusted(plane: Plane, adj: CutAdjust, hinge_axis: Vector) -> Plane:
    n = _tilted(plane.normal, hinge_axis, adj.tilt_deg)
    return Plane(plane.name, plane.point_mm + adj.offset_mm * plane.normal, n)


def place_cuts(
    procedure: str,
    center_mm: ArrayLike,
    radius_mm: float,
    axes: HipAxes,
    landmarks: dict[str, Vector] | None = None,
    adjust: CutAdjustments | None = None,
) -> CutGeometry:
    """Place an osteotomy's cuts around a hip.

    Automatic placement (Ganz 1988; Salter 1961; Steel 1973; Chiari 1974;
    Ninomiya 1984), in the hip's lateral (L), anterior (A) and superior (S)
    axes about the head centre c with head radius r:

    * ``iliac`` (PAO, supra-acetabular): through c + (r + 12) S, rising
      toward the front so that it passes 25 mm below the anterior superior
      iliac spine (ASIS) when that landmark is known (else 15 degrees);
      tilt turns it about L.
    * ``retro`` (PAO, retro-acetabular): through c - (r + 10) A, leaning
      20 degrees so it runs down and back, keeping the posterior column;
      tilt about L.
    * ``ischial`` (PAO): through c - (r + 8) S, across the ischium below the
      socket; tilt about L.
    * ``pubic``: through c + (r + 12) m, across the superior pubic ramus,
      where m is the direction from c toward the pubic symphysis in the
      transverse plane (else 30 degrees from medial toward anterior); tilt
      about S.
    * ``salter_iliac`` (Salter, triple): from the anterior inferior iliac
      spine region, c + (r + 10) S + 20 A, to the sciatic notch,
      c + (r + 2) S - (r + 22) A.
    * ``ischial_ramus`` (triple): through c - (r + 22) S.
    * ``chiari``: through c + (r + 6) S, rising 15 degrees toward medial.
    * sphere (rotational): radius r + 12 about c.

    Without landmarks (a partial pelvis, or the scanner frame) every cut
    falls back to these distances in the hip's axes.

    Parameters
    ----------
    procedure : str
        A key of :data:`PROCEDURES`.
    center_mm : (3,) float
        Head centre, measurement frame.
    radius_mm : float
        Head radius.
    axes : HipAxes
    landmarks : dict, optional
        ``asis_left``, ``asis_right`` and ``pubis`` (points (3,), measurement
        frame), as found by :func:`hipviz.frames.find_app`.
    adjust : CutAdjustments, optional
    """
    if procedure not in PROCEDURES:
        msg = f"unknown procedure {procedure!r}; expected one of {', '.join(PROCEDURES)}"
        raise InputError(msg)
    proc = PROCEDURES[procedure]
    adj = (adjust or CutAdjustments()).validate()
    c = np.asarray(center_mm, dtype=float)
    r = float(radius_mm)
    L, A, S = axes.lateral, axes.anterior, axes.superior
    lm = landmarks or {}
    side = "right" if L[0] > 0 else "left"
    asis = lm.get(f"asis_{side}")
    pubis = lm.get("pubis")
    placed_from = "landmarks" if asis is not None and pubis is not None else "distances"

    # Iliac (PAO): rising anteriorly toward a point 25 mm below the ASIS.
    tilt = np.radians(15.0)
    if asis is not None:
        rel = axes.to_las(asis - c)
        rise = rel[2] - 25.0 - (r + 12.0)
        if rel[1] > 10.0:
            tilt = float(np.clip(np.arctan2(rise, rel[1]), 0.0, np.radians(40.0)))
    # Pubic: toward the symphysis in the transverse plane.
    m = unit(np.cos(np.radians(30.0)) * -L + np.sin(np.radians(30.0)) * A)
    if pubis is not None:
        rel = axes.to_las(pubis - c)
        ang = np.clip(np.arctan2(rel[1], -rel[0]), 0.0, np.radians(60.0))
        m = unit(np.cos(ang) * -L + np.sin(ang) * A)

    builders = {
        "iliac": lambda: Plane(
            "iliac", c + (r + 12.0) * S, unit(np.cos(tilt) * S - np.sin(tilt) * A)
        ),
        "retro": lambda: Plane(
            "retro",
            c - (r + 10.0) * A,
            unit(-np.cos(np.radians(20.0)) * A + np.sin(np.radians(20.0)) * S),
        ),
        "ischial": lambda: Plane("ischial", c - (r + 8.0) * S, -S),
        "pubic": lambda: Plane("pubic", c + (r + 12.0) * m, m),
        "salter_iliac": lambda: _plane_through(
            "iliac", c + (r + 10.0) * S + 20.0 * A, c + (r + 2.0) * S - (r + 22.0) * A, L, S
        ),
        "ischial_ramus": lambda: Plane("ischial", c - (r + 22.0) * S, -S),
        "chiari": lambda: Plane(
            "iliac",
            c + (r + 6.0) * S,
            unit(np.cos(np.radians(15.0)) * S + np.sin(np.radians(15.0)) * L),
        ),
    }
    # Adjustments act on the cut of the same role; hinge axes per role.
    role = {"salter_iliac": "iliac", "chiari": "iliac", "ischial_ramus": "ischial"}
    hinge = {"iliac": L, "retro": L, "ischial": L, "pubic": S}
    planes = []
    for key in proc.cuts:
        name = role.get(key, key)
        planes.append(_adjusted(builders[key](), getattr(adj, name), hinge[name]))
    midline_pt = pubis if pubis is not None else c - (r + 60.0) * L
    if proc.midline:
        planes.append(Plane("midline", midline_pt, -L))

    rot_axes = {
        "lateral": unit(np.cross(S, L)),
        "anterior": unit(np.cross(S, A)),
        "version": unit(np.cross(L, A)),
    }
    pivot = c
    if proc.pivot == "salter":
        notch = c + (r + 2.0) * S - (r + 22.0) * A
        symphysis = pubis if pubis is not None else c - (r + 60.0) * L - 15.0 * S + 45.0 * A
        hinge_axis = unit(symphysis - notch)
        if hinge_axis @ rot_axes["anterior"] < 0:
            hinge_axis = -hinge_axis
        pivot = notch
        rot_axes["anterior"] = hinge_axis
    shift = -L
    if proc.shift == "along_cut" and planes:
        shift = unit(-L - (-L @ planes[0].normal) * planes[0].normal)
    sphere = r + 12.0 + adj.sphere_mm if proc.sphere else None
    return CutGeometry(procedure, tuple(planes), sphere, c, pivot, rot_axes, shift, placed_from)


def acetabular_transform(move: AcetabularMove, geometry: CutGeometry) -> Transform:
    """(4, 4) transform of the fragment (measurement frame, fragment -> moved)."""
    tf = np.eye(4)
    for angle, key in (
        (move.lateral_deg, "lateral"),
        (move.anterior_deg, "anterior"),
        (move.version_deg, "version"),
    ):
        if angle:
            tf = rotation_about(geometry.rotation_axes[key], angle, geometry.pivot_mm) @ tf
    if move.medial_mm:
        tf = translation(move.medial_mm * geometry.shift_direction) @ tf
    return tf


# --------------------------------------------------------------------------- cutting


def _cutter(geometry: CutGeometry, size_mm: float = 600.0):
    """Convex (or ball-shaped) manifold of the fragment region."""
    import manifold3d

    c = geometry.center_mm
    if geometry.sphere_radius_mm is not None:
        region = manifold3d.Manifold.sphere(geometry.sphere_radius_mm, 96).translate(c.tolist())
    else:
        region = manifold3d.Manifold.cube([size_mm] * 3, center=True).translate(c.tolist())
    for p in geometry.planes:
        # trim_by_plane keeps the side the normal points to: keep n.x <= n.p.
        region = region.trim_by_plane((-p.normal).tolist(), float(-p.normal @ p.point_mm))
    return region.as_original()


@dataclass(frozen=True)
class CutFace:
    """Samples of a moving piece's cut surface, in the piece's unmoved coordinates.

    ``points_mm`` (n, 3), ``normals`` (n, 3) unit, pointing out of the piece
    toward the bone it was cut from; ``cut`` (n,) index into ``names``; each
    sample stands for ``area_mm2 / n`` of the surface.
    """

    points_mm: Points
    normals: Points
    cut: np.ndarray
    names: tuple[str, ...]
    area_mm2: float

    @property
    def n(self) -> int:
        return len(self.points_mm)

    @cached_property
    def anchors(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every :data:`ANCHOR_STEP`-th sample, and each sample's nearest of them.

        Distances between samples do not change when the piece moves, so
        :func:`cut_contact` can bound each sample's depth from its anchor's.

        Returns
        -------
        anchors : (m,) int
            Indices of the anchor samples.
        owner : (n,) int
            Index into ``anchors`` of each sample's nearest anchor.
        reach_mm : (n,) float
            Distance from each sample to that anchor.
        """
        from scipy.spatial import cKDTree

        idx = np.arange(0, self.n, ANCHOR_STEP)
        if len(idx) == 0:
            return idx, np.zeros(0, int), np.zeros(0)
        reach, owner = cKDTree(self.points_mm[idx]).query(self.points_mm)
        return idx, np.asarray(owner), np.asarray(reach)


def _cut_face(
    mesh: trimesh.Trimesh, on_cut: np.ndarray, names: tuple[str, ...], label, n: int
) -> CutFace:
    """Area-uniform samples on the faces ``on_cut`` (bool per face) of ``mesh``."""
    area = np.asarray(mesh.area_faces)[on_cut]
    total = float(area.sum())
    if total <= 0:
        empty = np.zeros((0, 3))
        return CutFace(empty, empty, np.zeros(0, int), names, 0.0)
    sub = mesh.submesh([np.flatnonzero(on_cut)], append=True)
    rng = np.random.default_rng(0)
    pts, fidx = trimesh.sample.sample_surface(sub, n, seed=rng)
    normals = np.asarray(sub.face_normals)[fidx]
    return CutFace(np.asarray(pts), normals, label(np.asarray(pts)), names, total)


@dataclass(frozen=True)
class PelvisCut:
    """The two pieces of a cut pelvis (measurement frame, unmoved, closed)."""

    geometry: CutGeometry
    fragment: trimesh.Trimesh
    rest: trimesh.Trimesh
    face: CutFace  # the fragment's cut surface


def cut_pelvis(pelvis_manifold, geometry: CutGeometry) -> PelvisCut:
    """Cut the fragment out of the pelvis.

    Parameters
    ----------
    pelvis_manifold : manifold3d.Manifold
        The pelvis in the measurement frame (:func:`to_manifold`).
    geometry : CutGeometry

    Raises
    ------
    InputError
        The cuts miss the bone around the socket.
    """
    cutter = _cutter(geometry)
    inside, outside = pelvis_manifold.split(cutter)
    c, cid = geometry.center_mm, cutter.original_id()
    pieces = inside.decompose()
    if not pieces:
        msg = "the cuts do not enclose any bone around the socket; check the cut settings"
        raise InputError(msg)

    # The piece that holds the socket: most surface close around the head.
    meshes = [from_manifold(p) for p in pieces]
    scores = [
        float(np.asarray(m.area_faces)[np.linalg.norm(m.triangles_center - c, axis=1) < 45.0].sum())
        for m, _ in meshes
    ]
    keep = int(np.argmax(scores))
    if scores[keep] <= 0:
        msg = "no bone around the socket lies inside the cuts; check the cut settings"
        raise InputError(msg)
    others = [p for i, p in enumerate(pieces) if i != keep]
    if others:
        import manifold3d

        outside = manifold3d.Manifold.batch_boolean([outside, *others], manifold3d.OpType.Add)
    fragment, ids = meshes[keep]
    rest, _ = from_manifold(outside)
    on_cut = ids == cid
    names = tuple(p.name for p in geometry.planes) + (
        ("sphere",) if geometry.sphere_radius_mm is not None else ()
    )

    def label(points: np.ndarray) -> np.ndarray:
        dist = [np.abs(p.signed_distance(points)) for p in geometry.planes]
        if geometry.sphere_radius_mm is not None:
            dist.append(np.abs(np.linalg.norm(points - c, axis=1) - geometry.sphere_radius_mm))
        return np.argmin(np.vstack(dist), axis=0)

    n = CONTACT_SAMPLES * max(1, len(names))
    return PelvisCut(geometry, fragment, rest, _cut_face(fragment, on_cut, names, label, n))


# --------------------------------------------------------------------------- femur


@dataclass(frozen=True)
class FemoralCutGeometry:
    """An intertrochanteric cut and the axes the shaft turns about (measurement frame).

    Attributes
    ----------
    plane : Plane
        Across the shaft, normal along the shaft toward the head (the distal
        piece lies on the ``<= 0`` side).
    level_mm : float
        Distance of the cut below the head centre along the shaft axis.
    hinge_medial_mm, hinge_lateral_mm : (3,) float
        Points on the medial and lateral cortex in the cut plane.
    shaft_point_mm : (3,) float
        Shaft axis at the cut.
    axes : dict
        ``varus``, ``flexion``, ``rotation`` -> unit axis (3,), oriented so a
        positive angle acts as named.
    """

    plane: Plane
    level_mm: float
    hinge_medial_mm: Vector
    hinge_lateral_mm: Vector
    shaft_point_mm: Vector
    axes: dict[str, Vector]


#: Default level of the intertrochanteric cut below the head centre, in head radii.
FEMORAL_LEVEL_RADII = 2.6


def femoral_cut_geometry(
    femur: trimesh.Trimesh,
    head_center_mm: ArrayLike,
    head_radius_mm: float,
    toward_neck: ArrayLike,
    shaft_point_mm: ArrayLike,
    shaft_direction: ArrayLike,
    medial: ArrayLike,
    anterior: ArrayLike,
    *,
    level_mm: float | None = None,
) -> FemoralCutGeometry:
    """Place the intertrochanteric cut and its hinge axes.

    The cut is normal to the shaft axis, ``level_mm`` below the head centre
    (default 2.6 head radii, about the top of the lesser trochanter). The
    varus axis is the femoral anterior axis (normal to the femoral coronal
    plane spanned by the shaft and condylar axes); the rotation axis is the
    shaft axis; the flexion axis is their common normal.

    Parameters
    ----------
    femur : trimesh.Trimesh
        The femur, measurement frame (for the cortex points).
    toward_neck : (3,) float
        Unit neck axis from the head centre down the neck.
    shaft_point_mm, shaft_direction : (3,) float
        Proximal shaft axis, direction toward the knee.
    medial, anterior : (3,) float
        Posterior condylar axis toward the medial condyle, and the femoral
        anterior direction (both normal to the shaft); for a femur without
        condyles pass the hip's medial and anterior axes.
    """
    c = np.asarray(head_center_mm, dtype=float)
    k = unit(shaft_direction)
    p0 = np.asarray(shaft_point_mm, dtype=float)
    a = unit(np.asarray(anterior, dtype=float) - (np.asarray(anterior) @ k) * k)
    level = FEMORAL_LEVEL_RADII * head_radius_mm if level_mm is None else float(level_mm)
    _check_range("femoral cut level", level, 1.2 * head_radius_mm, 8.0 * head_radius_mm, "mm")
    s_head = (c - p0) @ k
    point = p0 + (s_head + level) * k
    plane = Plane("femoral", point, -k)
    to_head = unit(-np.asarray(toward_neck, dtype=float))
    h = unit(to_head - (to_head @ k) * k - (to_head @ a) * a)  # medial, in the coronal plane
    # Cortex points: where the cut plane's line toward medial/lateral leaves the bone.
    from .raycast import RayCaster

    caster = RayCaster(femur)
    back = 80.0
    hits = caster.first_hit(np.vstack([point + back * h, point - back * h]), np.vstack([-h, h]))
    width = np.where(np.isfinite(hits), back - hits, 15.0)
    hinge_medial = point + width[0] * h
    hinge_lateral = point - width[1] * h
    varus = unit(np.cross(k, h))  # turns the shaft toward the neck: lowers the angle
    flexion = unit(np.cross(a, k))  # turns the shaft toward posterior
    med = unit(np.asarray(medial, dtype=float) - (np.asarray(medial) @ k) * k)
    rot = unit(np.cross(a, med))  # turns the condyles from anterior toward medial
    return FemoralCutGeometry(
        plane,
        level,
        hinge_medial,
        hinge_lateral,
        point,
        {"varus": varus, "flexion": flexion, "rotation": rot},
    )


def femoral_transform(move: FemoralMove, geometry: FemoralCutGeometry) -> Transform:
    """(4, 4) transform of the distal femur relative to the proximal piece."""
    g = geometry
    tf = np.eye(4)
    if move.rotation_deg:
        tf = rotation_about(g.axes["rotation"], move.rotation_deg, g.shaft_point_mm) @ tf
    if move.varus_deg:
        hinge = g.hinge_medial_mm if move.varus_deg > 0 else g.hinge_lateral_mm
        tf = rotation_about(g.axes["varus"], move.varus_deg, hinge) @ tf
    if move.flexion_deg:
        tf = rotation_about(g.axes["flexion"], move.flexion_deg, g.shaft_point_mm) @ tf
    return tf


@dataclass(frozen=True)
class FemurCut:
    """The two pieces of a cut femur (measurement frame, unmoved, closed)."""

    geometry: FemoralCutGeometry
    proximal: trimesh.Trimesh
    distal: trimesh.Trimesh
    face: CutFace  # the distal piece's cut surface


def cut_femur(femur_manifold, geometry: FemoralCutGeometry) -> FemurCut:
    """Split the femur at the cut plane into proximal (head) and distal (shaft) pieces."""
    p = geometry.plane
    proximal_m, distal_m = femur_manifold.split_by_plane(
        p.normal.tolist(), float(p.normal @ p.point_mm)
    )
    if proximal_m.is_empty() or distal_m.is_empty():
        msg = f"the femoral cut at {geometry.level_mm:.0f} mm below the head misses the bone"
        raise InputError(msg)
    proximal, _ = from_manifold(proximal_m)
    distal, _ = from_manifold(distal_m)
    on_cut = np.abs(p.signed_distance(np.asarray(distal.triangles_center))) < 1e-3
    on_cut &= np.asarray(distal.face_normals) @ p.normal > 0.99
    face = _cut_face(distal, on_cut, ("femoral",), lambda x: np.zeros(len(x), int), CONTACT_SAMPLES)
    return FemurCut(geometry, proximal, distal, face)


# --------------------------------------------------------------------------- contact


@dataclass(frozen=True)
class Contact:
    """Bone contact across cut surfaces after a move.

    ``area_mm2`` of the moving cut surface lying within ``tolerance_mm`` of
    (or pressed into) the other piece, ``fraction`` of the whole cut surface,
    and the deepest overlap ``overlap_mm`` (0 when none) with the cut where
    it happens.
    """

    area_mm2: float
    fraction: float
    overlap_mm: float
    overlap_cut: str | None
    tolerance_mm: float

    def as_dict(self) -> dict:
        return {
            "area_mm2": self.area_mm2,
            "fraction": self.fraction,
            "overlap_mm": self.overlap_mm,
            "overlap_cut": self.overlap_cut,
        }


def cut_contact(
    face: CutFace,
    tf_other_moving: Transform,
    hit_other_facing,
    nearest_other,
    *,
    tolerance_mm: float = 1.0,
) -> Contact:
    """Contact between a moved piece's cut surface and the piece it was cut from.

    Each sample of the cut surface is moved by ``tf_other_moving`` into the
    other piece's coordinates and a ray runs from it along its outward
    normal. Meeting the other piece from outside at distance t means a gap
    t; meeting it from inside means the sample lies inside the other piece,
    by its distance to the other piece's surface.

    Parameters
    ----------
    face : CutFace
    tf_other_moving : (4, 4) float
        Moving piece's own coordinates -> the other piece's coordinates.
    hit_other_facing : callable
        ``hit(origins (n, 3), directions (n, 3)) -> (distances (n,), cos (n,))``
        against the other piece (see
        :meth:`hipviz.raycast.RayCaster.first_hit_facing`).
    nearest_other : callable
        ``nearest(points (n, 3)) -> (n,)`` distance to the other piece's
        surface, in its coordinates.
    """
    if face.n == 0:
        return Contact(0.0, 0.0, 0.0, None, tolerance_mm)
    nudge = 0.05  # start just inside the moving piece, off the shared surface
    pts = apply(tf_other_moving, face.points_mm)
    nrm = face.normals @ tf_other_moving[:3, :3].T
    t, cos = hit_other_facing(pts - nudge * nrm, nrm)
    t = t - nudge
    inside = cos > 0
    depth = _deepest_candidates(face, pts, inside, nearest_other)
    touching = inside | (t <= tolerance_mm)
    worst = int(np.argmax(depth))
    deepest = float(depth[worst])
    return Contact(
        area_mm2=float(face.area_mm2 * touching.mean()),
        fraction=float(touching.mean()),
        overlap_mm=deepest,
        overlap_cut=face.names[face.cut[worst]] if deepest > tolerance_mm else None,
        tolerance_mm=tolerance_mm,
    )


def _deepest_candidates(
    face: CutFace, pts: Points, inside: np.ndarray, nearest_other
) -> np.ndarray:
    """(n,) depth of the samples inside the other piece that may be the deepest, else 0.

    The deepest sample and its depth come out as if every inside sample were
    measured (the same query, so the same numbers), with a few hundred
    nearest-point queries instead of thousands: the distance to a surface
    changes no faster than the point moves, so a sample lies at most its
    distance to its anchor deeper than the anchor. Samples that cannot reach
    the deepest depth already found are left at 0.
    """
    depth = np.zeros(len(pts))
    if not inside.any():
        return depth
    anchors, owner, reach = face.anchors
    # The anchors of the inside samples (an anchor may lie outside, where its
    # distance to the surface still bounds its samples' depths).
    used = np.unique(owner[inside])
    at_anchor = np.full(len(anchors), np.inf)
    at_anchor[used] = nearest_other(pts[anchors[used]])
    bound = np.where(inside, at_anchor[owner] + reach, -np.inf)  # no sample is deeper
    known = np.zeros(len(pts), bool)
    known[anchors[used]] = True
    depth[anchors[used]] = np.where(inside[anchors[used]], at_anchor[used], 0.0)
    # The samples that may be deeper than the deepest found, likeliest first, in
    # growing batches: each batch raises the deepest found and rules out more.
    batch = 32
    while True:
        # 1e-6 mm: room for rounding in the moved points' distances.
        open_ = np.flatnonzero(~known & (bound >= depth.max() - 1e-6))
        if len(open_) == 0:
            return depth
        if len(open_) > batch:
            open_ = open_[np.argsort(-bound[open_], kind="stable")[:batch]]
        depth[open_] = nearest_other(pts[open_])
        known[open_] = True
        batch *= 4


__all__ = [
    "PROCEDURES",
    "AcetabularMove",
    "Contact",
    "CutAdjust",
    "CutAdjustments",
    "CutFace",
    "CutGeometry",
    "FemoralCutGeometry",
    "FemoralMove",
    "FemurCut",
    "PelvisCut",
    "Plane",
    "Procedure",
    "acetabular_transform",
    "cut_contact",
    "cut_femur",
    "cut_pelvis",
    "femoral_cut_geometry",
    "femoral_transform",
    "place_cuts",
    "to_manifold",
]
