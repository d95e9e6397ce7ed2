"""Measure one hip: landmarks, frame, side and every measure, in one call.

:func:`analyze` is what ``hipviz measure``, the notebooks and the app call.
It takes meshes in millimetres (see :mod:`hipviz.io` for files) in their own
coordinates, finds the frame and landmarks, and returns a
:class:`HipAnalysis` whose :meth:`~HipAnalysis.as_dict` is the JSON contract.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import trimesh

from . import frames as fr
from . import landmarks as lmk
from . import measures as ms
from . import reference
from ._typing import Transform, Vector
from .bodies import select_femur
from .errors import InputError, LandmarkError
from .geometry import (
    Sphere,
    apply,
    fibonacci_directions,
    invert,
    project_onto_plane,
    rotation_about,
    unit,
)
from .raycast import RayCaster

FRAMES = ("auto", "app", "ras", "lps")
#: Largest pelvic tilt accepted, degrees either way.
MAX_TILT_DEG = 30.0
SIDES = ("auto", "left", "right")

#: Method names reported with the measures whose methods differ in the literature.
FEMORAL_VERSION_METHOD = (
    "3D: neck axis (head centre to the centroid of the neck's narrowest section) vs "
    "posterior condylar axis, projected on the plane normal to the proximal shaft axis"
)
#: How the femur's anterior and side are fixed: by its own anatomy, never by the frame.
FEMORAL_FRAME_METHOD = (
    "the femur's own anatomy: the condyles lie behind the proximal shaft axis (posterior), "
    "the head medial of the shaft (side); a declared frame or side only gets checked against it"
)
#: Rim edges count bone up to this far outside the socket sphere, mm.
RIM_MARGIN_MM = 6.0
#: Bone deeper than the socket sphere by this much is the acetabular fossa, mm.
FOSSA_DEPTH_MM = 2.5
#: Below the head's equator, wall bone lies this close to the socket sphere, mm
#: (four times the fit residual of real sockets; see ``measures.wall_hit``).
SOCKET_TOLERANCE_MM = 2.0
#: A rounded rim ends within this many degrees after leaving the socket sphere;
#: bone that carries on further is the ischium or pubis (``measures.rim_edges``).
RIM_ROUNDING_DEG = 4.0
#: Cranial version is read on the cone this far above the transverse plane, degrees.
CRANIAL_ELEVATION_DEG = 30.0

COVERAGE_METHOD = "radial rays from the head centre, covered if bone lies within r + margin"


@dataclass(frozen=True)
class FemurLandmarks:
    """Femoral landmarks in the measurement frame (mm, unit vectors)."""

    head: Sphere
    toward_neck: Vector  # unit, from the head centre down the neck
    shaft: lmk.ShaftAxis
    condyles: tuple[Vector, Vector] | None  # posterior contact points (medial, lateral)
    medial: Vector | None  # condylar axis toward the medial condyle
    anterior: Vector | None  # femoral anterior (away from the posterior condylar line)
    side: str | None  # from the femur alone, when the distal femur is present
    #: False when the declared posterior points to the femur's front; None without condyles.
    hint_agrees: bool | None = None


@dataclass
class HipAnalysis:
    """Everything measured on one hip.

    Points and vectors are in the measurement frame (``frame``, RAS, mm)
    unless named ``*_input``. ``values`` holds the contract keys of
    ``hipviz measure --json``; ``notes`` explains every null.
    """

    side: str
    frame: str
    tf_ras_input: Transform
    head: Sphere
    socket: Sphere | None
    femur: FemurLandmarks
    pelvis_landmarks: dict[str, Vector]
    values: dict[str, Any]
    notes: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    edges: dict[str, ms.Edge] = field(default_factory=dict)
    coverage: ms.Coverage | None = None
    alpha: ms.AlphaAngle | None = None

    @property
    def axes(self) -> ms.HipAxes:
        """Lateral/anterior/superior unit axes of this hip in the measurement frame."""
        return ms.HipAxes.from_side(self.side)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready result: the ``hipviz measure --json`` object."""
        out = dict(self.values)
        out["notes"] = dict(self.notes)
        out["warnings"] = list(self.warnings)
        return _jsonable(out)


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {k: _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple, np.ndarray)):
        return [_jsonable(v) for v in x]
    if isinstance(x, (np.floating, float)):
        return None if not np.isfinite(x) else round(float(x), 3)
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, np.bool_):
        return bool(x)
    return x


def _moved(mesh: trimesh.Trimesh, tf: Transform) -> trimesh.Trimesh:
    out = trimesh.Trimesh(apply(tf, mesh.vertices), mesh.faces.copy(), process=False)
    if np.linalg.det(tf[:3, :3]) < 0:
        out.invert()
    return out


def femur_landmarks(
    femur: trimesh.Trimesh, *, near_mm: Vector | None = None, posterior_hint: Vector | None = None
) -> FemurLandmarks:
    """Head sphere, neck and shaft axes and the posterior condylar line of a femur.

    Parameters
    ----------
    femur : trimesh.Trimesh
        mm, any coordinates; results come back in the same coordinates.
    near_mm : (3,) float, optional
        Prefer a head near this point.
    posterior_hint : (3,) float, optional
        The posterior direction the caller's frame declares. It is only
        checked (``hint_agrees``): the femur's anterior, its side and every
        femoral angle come from its own anatomy, so no declared frame can
        change them.
    """
    head = lmk.head_sphere(femur, near_mm=near_mm)
    toward_neck = lmk.neck_axis(femur, head)
    shaft = lmk.shaft_axis(femur, head)
    cond = lmk.posterior_condylar_axis(femur, shaft)
    if cond is None:
        return FemurLandmarks(head, toward_neck, shaft, None, None, None, None)
    p1, p2, posterior = cond
    agrees = None
    if posterior_hint is not None:
        agrees = bool(project_onto_plane(posterior_hint, shaft.direction) @ posterior > 0)
    # Across the shaft only: along it the contact points can differ by more than
    # the head's medial offset times their spacing (each lies anywhere on its
    # condyle's posterior line), which would swap the condyles.
    to_head = project_onto_plane(head.center_mm - shaft.point_mm, shaft.direction)
    across = project_onto_plane(p1 - p2, shaft.direction)
    medial_pt, lateral_pt = (p1, p2) if across @ to_head > 0 else (p2, p1)
    # In the plane normal to the shaft, as the version definition needs.
    medial = unit(project_onto_plane(medial_pt - lateral_pt, shaft.direction))
    superior = -shaft.direction
    # Right femur in RAS: medial (-x) x posterior (-y) = +z (superior).
    side = "right" if np.cross(medial, posterior) @ superior > 0 else "left"
    return FemurLandmarks(
        head, toward_neck, shaft, (medial_pt, lateral_pt), medial, -posterior, side, agrees
    )


def _femur_contradictions(fl: FemurLandmarks, side: str, frame: str) -> list[str]:
    """Warnings where the declared frame or the hip's side disagree with the femur's anatomy."""
    out = []
    if fl.hint_agrees is False:
        out.append(
            f"the {frame} frame's posterior points to the front of the femur (its condyles lie "
            "the other way): are the file's axes what --frame says? Femoral measures use the "
            "femur's own anatomy"
        )
    if fl.side is not None and fl.side != side:
        out.append(
            f"the femur's anatomy is a {fl.side} femur but the hip is measured as {side}: "
            "check --frame and that the femur belongs to this hip"
        )
    return out


def _on_bone(bone: str, fn, *args, **kwargs):
    """Call ``fn``, tagging a LandmarkError with the bone it concerns."""
    try:
        return fn(*args, **kwargs)
    except LandmarkError as exc:
        raise LandmarkError(str(exc), bone=bone) from None


def _side_from_geometry(
    frame: fr.PelvisFrame, head_ras: Vector, opening: Vector | None, femur: FemurLandmarks
) -> tuple[str, str]:
    """(side, how it was found)."""
    if frame.name == "app":
        return ("right" if head_ras[0] > 0 else "left"), "head centre relative to the midline"
    if opening is not None:
        return ("right" if opening[0] > 0 else "left"), "direction the socket opens"
    if femur.side is not None:
        return femur.side, "femoral geometry"
    # Neck points medially: head medial of the shaft.
    return ("right" if -femur.toward_neck[0] < 0 else "left"), "femoral neck direction"


ACETABULAR_KEYS = (
    "lcea_deg",
    "acea_deg",
    "pcea_deg",
    "false_profile_acea_deg",
    "aasa_deg",
    "pasa_deg",
    "acetabular_version_deg",
    "acetabular_version_cranial_deg",
    "tonnis_deg",
    "extrusion_index_pct",
)


@dataclass(frozen=True)
class AcetabularMeasures:
    """The acetabular part of an analysis: contract values, notes, edges, coverage.

    ``distances`` (n,) are the pelvis first-hit distances along
    ``coverage.directions_las`` from the head centre, mm (reused for the
    joint gap).
    """

    values: dict[str, Any]
    notes: dict[str, str]
    edges: dict[str, ms.Edge]
    coverage: ms.Coverage
    distances: np.ndarray


def acetabular_measures(
    hit: ms.HitFn,
    center_mm: Vector,
    radius_mm: float,
    socket_radius_mm: float,
    axes: ms.HipAxes,
    *,
    coverage_margin_mm: float = 5.0,
    n_directions: int = 10000,
    directions_las: np.ndarray | None = None,
    socket_center_mm: Vector | None = None,
    socket_tolerance_mm: float = SOCKET_TOLERANCE_MM,
) -> AcetabularMeasures:
    """Centre-edge angles, version, Tönnis, extrusion and coverage from ray distances.

    Parameters
    ----------
    hit : callable
        First-hit distances against the pelvis (whole, or pieces combined),
        measurement frame.
    center_mm : (3,) float
        Head centre, measurement frame.
    radius_mm, socket_radius_mm : float
        Head and socket sphere radii.
    axes : HipAxes
    directions_las : (n, 3) float, optional
        Coverage directions as (lateral, anterior, superior) components, when
        the caller keeps them (default: ``n_directions`` golden-spiral ones).
    socket_center_mm : (3,) float, optional
        Socket sphere centre, measurement frame (default: the head centre).
    socket_tolerance_mm : float
        How far off the socket sphere bone below the head's equator may lie
        and still be the acetabular wall (:func:`hipviz.measures.wall_hit`).
    """
    c, r = np.asarray(center_mm, dtype=float), float(radius_mm)
    values: dict[str, Any] = {}
    notes: dict[str, str] = {}
    edges: dict[str, ms.Edge] = {}
    # Rim edges: bone within RIM_MARGIN_MM of the socket sphere, so a wide
    # joint space (MRI, young hips) does not hide the rim; never less than
    # the coverage reach.
    reach = max(r + coverage_margin_mm, socket_radius_mm + RIM_MARGIN_MM)
    lunate_reach = socket_radius_mm + FOSSA_DEPTH_MM
    wall = ms.wall_restriction(
        axes.superior,
        c if socket_center_mm is None else socket_center_mm,
        socket_radius_mm,
        socket_tolerance_mm,
    )
    # Every rim sweep of the hip at once: each step of all twelve is one ray
    # cast (most of a move's time was the calls, not the rays).
    reach_scans = ms.center_edge_scans(c, axes, reach)
    wall_scans = ms.center_edge_scans(c, axes, reach, restrict=wall)
    scans = [
        *reach_scans.values(),
        *wall_scans.values(),
        *ms.rim_version_scans(c, axes, reach),
        *ms.rim_version_scans(c, axes, reach, CRANIAL_ELEVATION_DEG),
        ms.false_profile_scan(c, axes, reach, restrict=wall),
        ms.tonnis_scan(c, axes, lunate_reach),
    ]
    found = ms.scan_edges(hit, scans)
    ce = ms.rim_edges(
        dict(zip(reach_scans, found[0:3], strict=True)),
        dict(zip(wall_scans, found[3:6], strict=True)),
        RIM_ROUNDING_DEG,
    )
    front, back, f_c, b_c, vca, medial_end = found[6:]
    edges.update({f"{k}_rim": v for k, v in ce.items()})
    values["lcea_deg"] = ce["lateral"].angle_deg
    values["acea_deg"] = ce["anterior"].angle_deg
    values["pcea_deg"] = ce["posterior"].angle_deg
    ver = ms.version_from_rims(axes, front, back)
    values["acetabular_version_deg"] = ver
    edges["version_anterior_rim"], edges["version_posterior_rim"] = front, back
    values["acetabular_version_cranial_deg"] = ms.version_from_rims(axes, f_c, b_c)
    edges["cranial_anterior_rim"], edges["cranial_posterior_rim"] = f_c, b_c
    values["aasa_deg"], values["pasa_deg"] = ms.sector_angles_deg(c, axes, front, back)
    values["false_profile_acea_deg"] = vca.angle_deg
    edges["false_profile_anterior_rim"] = vca
    ton = ms.tonnis_from_edges(axes, medial_end, ce["lateral"])
    values["tonnis_deg"] = ton
    values["tonnis_approximate"] = True
    edges["sourcil_medial_end"] = medial_end
    values["extrusion_index_pct"] = (
        ms.extrusion_index_pct(c, r, ce["lateral"], axes)
        if np.isfinite(ce["lateral"].angle_deg)
        else float("nan")
    )
    las = fibonacci_directions(n_directions) if directions_las is None else directions_las
    dist = hit(c, axes.from_las(las))
    cov = ms.coverage_from_distances(dist, las, r, margin_mm=coverage_margin_mm)
    values["coverage_pct"] = cov.as_dict()
    values["coverage_margin_mm"] = coverage_margin_mm
    values["coverage_method"] = COVERAGE_METHOD
    values["rim_reach_mm"] = reach
    for key, label in (
        ("lcea_deg", "lateral rim edge"),
        ("acea_deg", "anterior rim edge"),
        ("pcea_deg", "posterior rim edge"),
    ):
        if not np.isfinite(values[key]):
            notes[key] = f"no {label} found in the plane through the head centre"
    if not np.isfinite(ver):
        notes["acetabular_version_deg"] = "anterior and posterior rims not both found"
    for key, label in (("aasa_deg", "anterior"), ("pasa_deg", "posterior")):
        if not np.isfinite(values[key]):
            notes[key] = f"no {label} rim point in the transverse plane through the head centre"
    if not np.isfinite(values["false_profile_acea_deg"]):
        notes["false_profile_acea_deg"] = "no anterior roof edge in the false-profile plane"
    if not np.isfinite(ton) and medial_end.angle_deg >= ms.SOURCIL_MEDIAL_LIMIT_DEG:
        notes["tonnis_deg"] = (
            f"medial end of the weight-bearing roof not found: the first fossa-deep bone "
            f"lies {medial_end.angle_deg:.0f}° from the vertical, below the roof (no fossa "
            f"notch within {ms.SOURCIL_MEDIAL_LIMIT_DEG:.0f}° of the vertical)"
        )
    elif not np.isfinite(ton):
        notes["tonnis_deg"] = (
            "medial end of the weight-bearing roof not found (no fossa above the "
            "horizontal through the head centre)"
        )
    return AcetabularMeasures(values, notes, edges, cov, dist)


def femoral_angles(
    neck_to_head: Vector,
    shaft_to_knee: Vector,
    anterior: Vector | None,
    medial: Vector | None,
    pelvic_axes: ms.HipAxes | None,
) -> tuple[dict[str, Any], dict[str, str]]:
    """Neck-shaft angles and femoral version, with notes for what cannot be had.

    Parameters
    ----------
    neck_to_head, shaft_to_knee : (3,) float
        Unit neck axis toward the head, shaft axis toward the knee.
    anterior, medial : (3,) float or None
        Femoral anterior and condylar medial directions (None without the
        condyles).
    pelvic_axes : HipAxes or None
        The hip's axes when the frame is pelvic (used without condyles).
    """
    values: dict[str, Any] = {}
    notes: dict[str, str] = {}
    values["neck_shaft_deg"] = ms.neck_shaft_deg(neck_to_head, shaft_to_knee)
    values["femoral_version_method"] = FEMORAL_VERSION_METHOD
    values["neck_axis_method"] = lmk.NECK_AXIS_METHOD
    values["femoral_frame_method"] = FEMORAL_FRAME_METHOD
    if anterior is not None and medial is not None:
        values["neck_shaft_projected_deg"] = ms.neck_shaft_projected_deg(
            neck_to_head, shaft_to_knee, anterior
        )
        values["neck_shaft_projected_plane"] = "femoral coronal (shaft and condylar axes)"
        values["femoral_version_deg"] = ms.femoral_version_deg(neck_to_head, medial, anterior)
        return values, notes
    reason = "the distal femur (condyles) is missing, so there is no posterior condylar axis"
    values["femoral_version_deg"] = None
    notes["femoral_version_deg"] = reason
    if pelvic_axes is not None:
        values["neck_shaft_projected_deg"] = ms.neck_shaft_projected_deg(
            neck_to_head, shaft_to_knee, pelvic_axes.anterior
        )
        values["neck_shaft_projected_plane"] = "pelvic coronal (condyles missing)"
    else:
        values["neck_shaft_projected_deg"] = None
        notes["neck_shaft_projected_deg"] = reason
    return values, notes


def _mckibbin(values: dict[str, Any], notes: dict[str, str]) -> None:
    fv = values.get("femoral_version_deg")
    av = values.get("acetabular_version_deg")
    if fv is not None and av is not None and np.isfinite(fv) and np.isfinite(av):
        values["mckibbin_deg"] = av + fv
        notes.pop("mckibbin_deg", None)
    else:
        values["mckibbin_deg"] = None
        notes["mckibbin_deg"] = "needs both acetabular and femoral version"


def check_possible(
    values: dict[str, Any],
    femur: trimesh.Trimesh,
    femur_side: str | None,
    *,
    before: dict[str, Any] | None = None,
) -> tuple[dict[str, str], str]:
    """Impossible values of an analysis (:func:`hipviz.reference.implausible`) and a warning.

    Parameters
    ----------
    values : dict
        The contract values of an analysis (``frame`` and ``side`` included).
    femur : trimesh.Trimesh
        The femur mesh measured; its bodies are counted (to name two bones
        in one file as the cause) only when a value is impossible.
    femur_side : {"left", "right"} or None
        The side the femur's own anatomy shows (:attr:`FemurLandmarks.side`).
    before : dict, optional
        The values before a planned move, when ``values`` are after it.

    Returns
    -------
    flags : dict
        Measure key -> message naming the likely cause; empty when all is possible.
    warning : str
        One line for ``warnings``; "" when all is possible.
    """
    if not reference.implausible(values):
        return {}, ""
    context = {"femur_bodies": int(femur.body_count), "femur_side": femur_side, "before": before}
    return (
        reference.implausible(values, **context),
        reference.implausible_warning(values, **context),
    )


def analyze(
    pelvis: trimesh.Trimesh | None,
    femur: trimesh.Trimesh,
    *,
    side: str = "auto",
    frame: str = "auto",
    coverage_margin_mm: float = 5.0,
    alpha_threshold_mm: float = 1.0,
    n_directions: int = 10000,
    tilt_deg: float = 0.0,
) -> HipAnalysis:
    """Find landmarks and frame, then compute every measure of one hip.

    Parameters
    ----------
    pelvis : trimesh.Trimesh or None
        Pelvis (whole, or the hemipelvis for ``frame="ras"|"lps"``), mm.
    femur : trimesh.Trimesh
        The femur of the same hip, articulated with the pelvis, mm.
    side : {"auto", "left", "right"}
        ``auto`` finds it from the geometry; a given side is checked against it.
    frame : {"auto", "app", "ras", "lps"}
        ``app`` aligns to the anterior pelvic plane found on the pelvis;
        ``ras``/``lps`` take the file's axes as patient axes unchanged;
        ``auto`` is ``app``, or, with no pelvis, the femur's own axes.
    coverage_margin_mm : float
        Margin delta of the coverage and rim definitions.
    tilt_deg : float
        Sagittal pelvic tilt of the measuring frame relative to the pelvic
        frame, degrees, positive posterior (the top of the pelvis goes back,
        as from lying to standing for most people): measures are taken in
        the pelvic frame turned by this about its medio-lateral axis.
        0 measures in the pelvic frame itself (supine). Needs a pelvic frame.

    Raises
    ------
    InputError
        Option values out of range. (A side that contradicts the geometry is
        a warning, and the geometry's side is measured.)
    LandmarkError
        A landmark or the frame cannot be found, or the femur mesh holds
        several femurs and none is singled out by the pelvis (see
        :func:`hipviz.bodies.select_femur`).
    """
    if frame not in FRAMES:
        msg = f"unknown frame {frame!r}; expected one of {', '.join(FRAMES)}"
        raise InputError(msg)
    if side not in SIDES:
        msg = f"unknown side {side!r}; expected one of {', '.join(SIDES)}"
        raise InputError(msg)
    if not (0.0 <= coverage_margin_mm <= 20.0):
        msg = f"coverage margin {coverage_margin_mm} mm is outside 0-20 mm"
        raise InputError(msg)
    if not (np.isfinite(tilt_deg) and abs(tilt_deg) <= MAX_TILT_DEG):
        msg = f"pelvic tilt {tilt_deg} deg is outside -{MAX_TILT_DEG:g}..{MAX_TILT_DEG:g} deg"
        raise InputError(msg)
    notes: dict[str, str] = {}
    warnings: list[str] = []
    # One femur: drop a patella, a tibia or specks; pick or refuse between two femurs.
    femur, body_warnings = select_femur(femur, pelvis)
    warnings.extend(f"femur: {w}" for w in body_warnings)

    # ---- frame
    if frame in ("ras", "lps"):
        pframe = fr.axis_frame(frame)
    elif pelvis is not None:
        try:
            pframe = fr.find_app(pelvis.vertices)
        except LandmarkError as exc:
            raise LandmarkError(str(exc), bone="pelvis") from None
    elif frame == "app":
        msg = "--frame app needs a pelvis (the anterior pelvic plane is found on it)"
        raise InputError(msg)
    else:
        pframe = None  # femur only: its own axes, set below

    if pframe is None:
        lm_in = _on_bone("femur", femur_landmarks, femur)
        if lm_in.anterior is None:
            msg = (
                "a proximal femur without a pelvis has no anatomical frame; "
                "pass --frame ras or --frame lps if the file is in patient axes"
            )
            raise LandmarkError(msg, bone="femur")
        z = -lm_in.shaft.direction
        y = unit(lm_in.anterior - (lm_in.anterior @ z) * z)
        x = np.cross(y, z)
        tf = np.eye(4)
        tf[:3, :3] = np.vstack([x, y, z])
        tf[:3, 3] = -tf[:3, :3] @ lm_in.head.center_mm
        pframe = fr.PelvisFrame("femur", tf, method="femur")
    tf = pframe.tf_ras_input
    if tilt_deg:
        if pframe.name not in ("app", "ras", "lps"):
            msg = "a pelvic tilt needs a pelvic frame (give the pelvis, or --frame ras|lps)"
            raise InputError(msg)
        # Posterior tilt turns superior toward posterior: about +x (RAS right).
        tf = rotation_about((1.0, 0.0, 0.0), tilt_deg, (0.0, 0.0, 0.0)) @ tf
    femur_r = _moved(femur, tf)
    pelvis_r = _moved(pelvis, tf) if pelvis is not None else None
    pelvic = pframe.name in ("app", "ras", "lps")
    hint = np.array([0.0, -1.0, 0.0]) if pelvic else None

    fl = _on_bone("femur", femur_landmarks, femur_r, posterior_hint=hint)
    head = fl.head
    c, r = head.center_mm, head.radius_mm

    socket = None
    opening = None
    if pelvis_r is not None:
        socket, inl = _on_bone("pelvis", lmk.find_socket, pelvis_r, head)
        opening = lmk.socket_opening(pelvis_r, inl, socket.center_mm)
        offset = np.linalg.norm(socket.center_mm - c)
        if offset > 5.0:
            warnings.append(
                f"head centre lies {offset:.1f} mm from the socket centre: "
                "is the femur articulated with this pelvis?"
            )

    if pframe.method == "hull":
        warnings.append(
            "the anterior pelvic plane was found by the fallback method, the convex-hull "
            f"face in front of the pelvis (the landmark-region search failed: "
            f"{pframe.fallback_reason}); check the ASIS and pubic points"
        )

    found_side, how = _side_from_geometry(pframe, c, opening, fl)
    if side not in ("auto", found_side):
        warnings.append(
            f"--side {side} contradicts the geometry: this is a {found_side} hip "
            f"(from the {how}); measured as {found_side}"
        )
    side = found_side
    warnings.extend(_femur_contradictions(fl, side, pframe.name))
    axes = ms.HipAxes.from_side(side)

    values: dict[str, Any] = {
        "side": side,
        "frame": pframe.name,
        "frame_method": pframe.method_text,
        "pelvic_tilt_deg": float(tilt_deg),
        "head_center_mm": apply(invert(tf), c),
        "head_radius_mm": r,
        "head_fit_rms_mm": head.rms_mm,
    }

    # ---- acetabulum
    edges: dict[str, ms.Edge] = {}
    cov = None
    if pelvis_r is not None:
        acet = acetabular_measures(
            RayCaster(pelvis_r).first_hit,
            c,
            r,
            socket.radius_mm,
            axes,
            coverage_margin_mm=coverage_margin_mm,
            n_directions=n_directions,
            socket_center_mm=socket.center_mm,
            socket_tolerance_mm=max(SOCKET_TOLERANCE_MM, 3.0 * socket.rms_mm),
        )
        values.update(acet.values)
        notes.update(acet.notes)
        edges, cov = acet.edges, acet.coverage
        values["socket_center_mm"] = apply(invert(tf), socket.center_mm)
        values["socket_radius_mm"] = socket.radius_mm
    else:
        for k in ACETABULAR_KEYS:
            values[k] = None
            notes[k] = "no pelvis given"
        values["coverage_pct"] = None
        notes["coverage_pct"] = "no pelvis given"

    # ---- femur
    fv_values, fv_notes = femoral_angles(
        -fl.toward_neck, fl.shaft.direction, fl.anterior, fl.medial, axes if pelvic else None
    )
    values.update(fv_values)
    notes.update(fv_notes)
    # Clock faces on the femur's own axes where it has them, so no frame moves them.
    k = fl.shaft.direction
    if fl.anterior is not None:
        up, front = -k, fl.anterior
    else:
        up, front = axes.superior, axes.anterior
    femur_caster = RayCaster(femur_r)
    alpha = ms.alpha_angle(
        femur_caster.first_hit,
        c,
        r,
        fl.toward_neck,
        up,
        front,
        threshold_mm=alpha_threshold_mm,
    )
    values["alpha_deg"] = alpha.max_deg
    values["alpha_clock"] = alpha.clock
    values["sphericity_mm"] = ms.head_sphericity_mm(
        lmk.head_surface_points(femur_r, head), c, r, fl.toward_neck
    )
    _mckibbin(values, notes)
    values["implausible"], warning = check_possible(values, femur, fl.side)
    if warning:
        warnings.append(warning)

    landmarks_ras = {k: apply(tf, v) for k, v in pframe.landmarks_input.items()}
    return HipAnalysis(
        side=side,
        frame=pframe.name,
        tf_ras_input=tf,
        head=head,
        socket=socket,
        femur=fl,
        pelvis_landmarks=landmarks_ras,
        values=values,
        notes=notes,
        warnings=warnings,
        edges=edges,
        coverage=cov,
        alpha=alpha,
    )


__all__ = [
    "ACETABULAR_KEYS",
    "FRAMES",
    "AcetabularMeasures",
    "SIDES",
    "FemurLandmarks",
    "HipAnalysis",
    "acetabular_measures",
    "analyze",
    "check_possible",
    "femoral_angles",
    "femur_landmarks",
]
