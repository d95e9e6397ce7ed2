"""What each measure means, its normal band, its possible range and its source, as data.

The CLI table, the app's measures panel and ``docs/measures.md`` are all
generated from :data:`MEASURES`, so a definition or a band is written once.
Bands are for display only: they colour a value, they do not diagnose.

Beside the bands, every measure has a *possible* range: values a human hip
can have at all, pathology included (wide, not normal). A value outside it
is a misreading (a mirrored bone, a wrong frame, a cut-off bone, two bones
in one file), never a finding: :func:`implausible` names such values and
the likely cause, and every view shows them flagged instead of banded.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Band:
    """Values in ``[low, high)`` get ``label`` and a traffic-light ``level``."""

    low: float
    high: float
    label: str
    level: str  # "normal" (green), "borderline" (amber), "abnormal" (red)


@dataclass(frozen=True)
class MeasureInfo:
    """Metadata of one measure (a key of ``hipviz measure --json``)."""

    key: str
    short: str
    name: str
    unit: str
    meaning: str
    definition: str
    source: str
    bands: tuple[Band, ...] = ()
    note: str = ""
    #: Physiologically possible values ``[low, high]`` (pathology included).
    possible: tuple[float, float] = (-float("inf"), float("inf"))
    #: Why those bounds: the literature range they widen, or the geometry.
    possible_source: str = ""
    #: Where it is read: a CT plane, in 3D, or emulating a radiograph.
    plane: str = "3D"

    def classify(self, value: float | None) -> Band | None:
        """The band holding ``value``, or None (no value, or no bands)."""
        if value is None or not np.isfinite(value):
            return None
        for band in self.bands:
            if band.low <= value < band.high:
                return band
        return None

    def is_possible(self, value: float | None) -> bool:
        """False only for a finite value outside :attr:`possible` (a missing value is no claim)."""
        if value is None or not np.isfinite(value):
            return True
        return bool(self.possible[0] <= value <= self.possible[1])

    def possible_text(self) -> str:
        """The possible range with its unit, e.g. ``-60…80°`` or ``14…36 mm``."""
        low, high = self.possible
        return f"{low:g}…{high:g}{_unit_suffix(self.unit)}"


INF = float("inf")

MEASURES: tuple[MeasureInfo, ...] = (
    MeasureInfo(
        "lcea_deg",
        "LCEA",
        "Lateral centre-edge angle",
        "°",
        "How far the socket roof reaches over the top of the ball; low means a shallow socket.",
        "Coronal plane through the head centre c: angle from superior to the line from c to the "
        "lateral bony rim edge, positive when the edge is lateral of the vertical. The rim edge "
        "is where rays from c stop meeting bone within r + margin.",
        "Wiberg 1939; bands after Tannast et al. 2015 (Clin Orthop Relat Res 473:1234) and "
        "Werner et al. 2012 (mean 33.6°). Bony rim reads about 4° above sourcil LCEA.",
        (
            Band(-INF, 20, "dysplastic", "abnormal"),
            Band(20, 25, "borderline", "borderline"),
            Band(25, 39, "normal", "normal"),
            Band(39, INF, "overcovered", "borderline"),
        ),
        "bony rim",
        plane="CT coronal plane",
        possible=(-40, 75),
        possible_source=(
            "Reported LCEA runs from -22° in severe dysplasia (Murphy et al. 1995; Li & Ganz "
            "2003) to 65° (Jacobsen et al. 2005) and 59° in protrusio (Steppacher et al. 2008), "
            "as tabulated by Tannast et al. 2015; the bony rim reads about 4° higher. Wide "
            "margins either side."
        ),
    ),
    MeasureInfo(
        "acea_deg",
        "ACEA",
        "Anterior centre-edge angle",
        "°",
        "How far the socket reaches over the front of the ball.",
        "Sagittal plane through c: angle from superior to the line from c to the anterior bony "
        "rim edge.",
        "CT sagittal construction (cf. Lequesne 1961 false-profile VCA); no agreed band for this "
        "plane, so none is shown.",
        note="CT sagittal plane",
        plane="CT sagittal plane",
        possible=(-30, 110),
        possible_source=(
            "The anterior sector angle averages 58-60° (SD 7-9°; Mechlenburg et al. 2019, CT) and "
            "the false-profile angle turns negative in severe dysplasia (Lequesne 1961); past "
            "110° the edge lies 20° below the horizontal, on the pubis rather than the wall."
        ),
    ),
    MeasureInfo(
        "pcea_deg",
        "PCEA",
        "Posterior centre-edge angle",
        "°",
        "How far the socket reaches over the back of the ball.",
        "Sagittal plane through c: angle from superior to the line from c to the posterior bony "
        "rim edge (often above 90°).",
        "CT sagittal construction; no agreed band for this plane, so none is shown.",
        note="CT sagittal plane",
        plane="CT sagittal plane",
        possible=(30, 155),
        possible_source=(
            "The posterior sector angle averages 94-95° (SD 7°; Mechlenburg et al. 2019, CT), "
            "lower with a deficient posterior wall. In the sagittal plane the posterior horn of "
            "the lunate surface, still on the socket sphere, reaches about 125° in the LLP26 "
            "mean hip; beyond 155° the edge would lie on the ischium, never the wall."
        ),
    ),
    MeasureInfo(
        "false_profile_acea_deg",
        "VCA",
        "False-profile anterior centre-edge angle",
        "°",
        "The front coverage a false-profile X-ray shows; low means a short front of the socket.",
        "Emulates Lequesne's false-profile radiograph on CT: in the plane through c turned 25° "
        "from sagittal toward lateral (the picture plane of a view 65° from frontal), the angle "
        "from superior to the line from c to the anterior bony edge of the roof.",
        "Lequesne & de Sèze 1961 (false profile, VCA); CT emulation after Needell et al. 1996 "
        "(AJR 167:1025); bands after Tannast et al. 2015.",
        (
            Band(-INF, 20, "dysplastic", "abnormal"),
            Band(20, 25, "borderline", "borderline"),
            Band(25, INF, "normal", "normal"),
        ),
        "emulates a radiograph",
        plane="emulates the false-profile radiograph (CT plane 25° oblique)",
        possible=(-30, 95),
        possible_source=(
            "False-profile VCA below 0° in severe dysplasia and about 30-40° normal (Lequesne "
            "1961; Tannast 2015); the roof edge cannot pass the horizontal anteriorly."
        ),
    ),
    MeasureInfo(
        "aasa_deg",
        "AASA",
        "Anterior acetabular sector angle",
        "°",
        "How far the front wall of the socket reaches around the ball, seen from above.",
        "Transverse plane through c: angle between the medial direction (toward the other hip) "
        "and the line from c to the anterior rim point.",
        "Anda et al. 1986 (Acta Radiol Diagn 27:443; normal adults about 64°) and 1991 "
        "(J Pediatr Orthop 11:219; dysplasia below 50°).",
        (
            Band(-INF, 50, "deficient", "abnormal"),
            Band(50, INF, "normal", "normal"),
        ),
        "CT axial plane",
        plane="CT axial plane",
        possible=(15, 130),
        possible_source=(
            "Anda et al. report about 64° normal and below 50° in dysplasia; with the version "
            "range (-40…60°) and a rim near 90° from the opening, 15-130° bounds every hip."
        ),
    ),
    MeasureInfo(
        "pasa_deg",
        "PASA",
        "Posterior acetabular sector angle",
        "°",
        "How far the back wall of the socket reaches around the ball, seen from above.",
        "Transverse plane through c: angle between the medial direction (toward the other hip) "
        "and the line from c to the posterior rim point.",
        "Anda et al. 1986 (normal adults about 102°) and 1991 (dysplasia below 90°).",
        (
            Band(-INF, 90, "deficient", "abnormal"),
            Band(90, INF, "normal", "normal"),
        ),
        "CT axial plane",
        plane="CT axial plane",
        possible=(45, 165),
        possible_source=(
            "Anda et al. report about 102° normal and below 90° in dysplasia; 45-165° bounds "
            "every hip for the same reason as AASA."
        ),
    ),
    MeasureInfo(
        "acetabular_version_deg",
        "Version",
        "Acetabular version (central)",
        "°",
        "Which way the socket faces: forward (anteversion) is normal; backward (retroversion) "
        "can pinch the hip.",
        "Transverse plane through c: anterior and posterior rim points A and P; version = "
        "atan2(L(P) - L(A), A(A) - A(P)), positive = anteversion.",
        "Klasan et al. 2019 (404 CTs, central ≈ 16-20°); Tannast et al. 2015.",
        (
            Band(-INF, 0, "retroverted", "abnormal"),
            Band(0, 10, "low", "borderline"),
            Band(10, 25, "normal", "normal"),
            Band(25, INF, "high", "borderline"),
        ),
        plane="CT axial plane",
        possible=(-40, 60),
        possible_source=(
            "CT version averages 16-20° with SD about 5° (Klasan et al. 2019; Mechlenburg et al. "
            "2019); retroverted sockets read below 0°, dysplastic ones high. -40…60° is more than "
            "8 SD either side."
        ),
    ),
    MeasureInfo(
        "acetabular_version_cranial_deg",
        "Cranial version",
        "Acetabular version (cranial)",
        "°",
        "Socket facing near its roof; retroversion shows here first.",
        "As central version, on the cone of directions 30° above the transverse plane through c.",
        "Reynolds et al. 1999; Tannast et al. 2015.",
        (
            Band(-INF, 0, "retroverted", "abnormal"),
            Band(0, 10, "low", "borderline"),
            Band(10, 25, "normal", "normal"),
            Band(25, INF, "high", "borderline"),
        ),
        plane="CT cone 30° above axial",
        possible=(-40, 60),
        possible_source=(
            "Cranial version reads lower than central and turns negative first in retroversion "
            "(Reynolds et al. 1999); the same wide range as central version."
        ),
    ),
    MeasureInfo(
        "tonnis_deg",
        "Tönnis",
        "Tönnis angle (acetabular index)",
        "°",
        "Slope of the weight-bearing roof; steep means the ball is pushed outwards.",
        "Coronal plane through c: angle to the horizontal of the line from the medial end of "
        "the roof (where the fossa begins) to the lateral rim edge. Approximate: a bone surface "
        "has no sclerotic sourcil to mark the medial end. None when no fossa begins within 75° "
        "of the vertical (a roof without a fossa notch, e.g. on shape-model hips).",
        "Tönnis 1976; bands after Tannast et al. 2015.",
        (
            Band(-INF, 0, "overcovered", "borderline"),
            Band(0, 10, "normal", "normal"),
            Band(10, INF, "dysplastic", "abnormal"),
        ),
        "approximate",
        plane="CT coronal plane",
        possible=(-30, 50),
        possible_source=(
            "25 ± 10° in dysplasia (Murphy et al. 1995), 3-13° normal and below 0° with "
            "overcoverage (Tannast et al. 2015). Wide margins either side."
        ),
    ),
    MeasureInfo(
        "extrusion_index_pct",
        "Extrusion",
        "Extrusion index",
        "%",
        "Share of the ball's width that sticks out beyond the roof.",
        "(L(c) + r - L(rim)) / 2r, with L the lateral coordinate and rim the lateral rim edge.",
        "Tannast et al. 2015 (normal 17-27 %).",
        (
            Band(-INF, 17, "overcovered", "borderline"),
            Band(17, 27, "normal", "normal"),
            Band(27, INF, "undercovered", "abnormal"),
        ),
        plane="CT coronal plane",
        possible=(-25, 100),
        possible_source=(
            "100 % puts the whole head lateral of the rim (a dislocated hip); only a bony rim "
            "flaring past the head (protrusio) gives values below 0, about -15 % at LCEA 75° with "
            "the edge 6 mm beyond the head surface (geometry)."
        ),
    ),
    MeasureInfo(
        "coverage_pct.upper_hemisphere",
        "Coverage",
        "Femoral head coverage (upper hemisphere)",
        "%",
        "How much of the top half of the ball has bone over it.",
        "Share of evenly spread directions from c with a positive superior component whose ray "
        "meets the pelvis within r + margin (5 mm). Only comparable within this method.",
        "Method-specific (cf. Tannast 2015 3D coverage); no band is shown.",
        possible=(0, 100),
        possible_source=("A share of directions: 0-100 % by definition."),
    ),
    MeasureInfo(
        "neck_shaft_deg",
        "NSA",
        "Neck-shaft angle (3D)",
        "°",
        "Angle between the thigh bone's neck and its shaft.",
        "Angle between the neck axis (toward the head) and the proximal shaft axis (toward the "
        "knee).",
        "Typical adult 125-135° (e.g. Boese et al. 2016).",
        (
            Band(-INF, 120, "varus", "abnormal"),
            Band(120, 125, "low", "borderline"),
            Band(125, 135, "normal", "normal"),
            Band(135, 140, "high", "borderline"),
            Band(140, INF, "valgus", "abnormal"),
        ),
        possible=(90, 170),
        possible_source=(
            "1070 CT femora span 100-146° (Hartel et al. 2016); 628 hips average 125 ± 6° "
            "(Carmona et al. 2022). Coxa vara and neuromuscular coxa valga go beyond, hence "
            "90-170°."
        ),
    ),
    MeasureInfo(
        "neck_shaft_projected_deg",
        "NSA (coronal)",
        "Neck-shaft angle, projected",
        "°",
        "The neck-shaft angle as an AP X-ray of the femur shows it.",
        "Both axes projected on the femoral coronal plane (through the shaft axis, parallel to "
        "the posterior condylar axis).",
        "Typical adult 125-135°.",
        (
            Band(-INF, 120, "varus", "abnormal"),
            Band(120, 125, "low", "borderline"),
            Band(125, 135, "normal", "normal"),
            Band(135, 140, "high", "borderline"),
            Band(140, INF, "valgus", "abnormal"),
        ),
        plane="femoral coronal plane (as an AP radiograph of the femur)",
        possible=(90, 170),
        possible_source=(
            "As the 3D neck-shaft angle: 100-146° in 1070 CT femora (Hartel et al. 2016), widened "
            "for coxa vara and valga."
        ),
    ),
    MeasureInfo(
        "femoral_version_deg",
        "Femoral version",
        "Femoral version (antetorsion)",
        "°",
        "Twist of the thigh bone between hip and knee.",
        "Neck axis vs posterior condylar axis, both projected on the plane normal to the "
        "proximal shaft axis; positive = anteversion. Methods differ by up to 18° (Lee vs "
        "Murphy): compare only within one method.",
        "Tönnis & Heinecke 1999 (normal about 10-25° by CT).",
        (
            Band(-INF, 0, "retroverted", "abnormal"),
            Band(0, 10, "low", "borderline"),
            Band(10, 25, "normal", "normal"),
            Band(25, 35, "high", "borderline"),
            Band(35, INF, "antetorsion", "abnormal"),
        ),
        plane="3D, projected on the plane normal to the shaft",
        possible=(-60, 80),
        possible_source=(
            "1070 CT femora span -24° to 49° (Hartel et al. 2016); 628 hips average 15 ± 8° "
            "(Carmona et al. 2022). Pathological femora go further, hence -60…80°. A value near "
            "±180° minus a normal one is a femur read back to front."
        ),
    ),
    MeasureInfo(
        "alpha_deg",
        "Alpha",
        "Alpha angle (maximum)",
        "°",
        "Shape of the ball where it meets the neck; high means a bump (cam) that can pinch.",
        "In radial planes about the neck axis: angle at c between the neck axis and the point "
        "where the head-neck contour, followed from the neck, comes back within 1 mm of the "
        "head sphere, averaged over a 15° wedge of planes so that the facets of a mesh do not "
        "show; the maximum and its clock position (12 superior, 3 anterior). The head sphere "
        "is fitted to the surface (area-weighted), not to mesh vertices.",
        "Nötzli et al. 2002; cam at 60° or more.",
        (
            Band(-INF, 55, "normal", "normal"),
            Band(55, 60, "borderline", "borderline"),
            Band(60, INF, "cam", "abnormal"),
        ),
        plane="radial planes about the neck axis",
        possible=(20, 120),
        possible_source=(
            "A round head on its neck reads about 40° (Nötzli et al. 2002: 42 ± 2°; adolescents "
            "38-41°, Jamali et al.), cam hips about 74 ± 9°; nothing human reaches 120°."
        ),
    ),
    MeasureInfo(
        "sphericity_mm",
        "Sphericity",
        "Head sphericity (maximum outward deviation)",
        "mm",
        "How round the ball is.",
        "Largest outward distance of the head and head-neck junction (more than 50° off the "
        "neck axis) from the fitted sphere, over points spread evenly on the surface (0.5 mm "
        "apart) and the mesh vertices; the fovea does not count.",
        "≤ 2.5 mm normal, 4-5 mm in cam deformity.",
        (
            Band(-INF, 2.5, "spherical", "normal"),
            Band(2.5, 4.0, "borderline", "borderline"),
            Band(4.0, INF, "aspherical", "abnormal"),
        ),
        possible=(0, 15),
        possible_source=(
            "Outward deviation only, so never below 0; cam bumps measure 4-5 mm; a rise of 15 mm "
            "is no longer a head."
        ),
    ),
    MeasureInfo(
        "mckibbin_deg",
        "McKibbin",
        "McKibbin instability index",
        "°",
        "Combined forward facing of socket and femur.",
        "Acetabular version (central) + femoral version.",
        "McKibbin 1970. No band shown: thresholds are not verified for this construction.",
        possible=(-100, 140),
        possible_source=(
            "The sum of the possible acetabular and femoral versions; flagged too whenever either "
            "part is impossible."
        ),
    ),
    MeasureInfo(
        "head_radius_mm",
        "Head radius",
        "Femoral head radius",
        "mm",
        "Size of the ball.",
        "Least-squares sphere on the head surface, excluding the fovea and the neck.",
        "Adult heads are about 20-27 mm in radius.",
        possible=(14, 36),
        possible_source=(
            "Adult head diameters measure 41-53 mm (radius 20-27 mm) and adolescent radii 22-25 "
            "mm (Jamali et al.); 14-36 mm admits every age from adolescence and rejects a sphere "
            "fitted in the wrong units."
        ),
    ),
)

#: Contact pressure and joint load under a chosen load (``--load``; the app's
#: Load view): rows of their own, shown only when a load is chosen, so they
#: are not in :data:`MEASURES`. No bands: the model's numbers come from bone
#: surfaces, not cartilage, and are for comparing before with after
#: (docs/mechanics.md).
LOAD_MEASURES: tuple[MeasureInfo, ...] = (
    MeasureInfo(
        "contact_peak_mpa",
        "Peak pressure",
        "Peak contact pressure",
        "MPa",
        "The highest pressure on the socket's joint surface under the load.",
        "Largest face pressure of the discrete element model (compression-only springs on the "
        "socket, thickness from the bone-to-bone gap) under the chosen load.",
        "Genda et al. 2001 (rigid body spring model); docs/mechanics.md.",
        possible=(0, INF),
    ),
    MeasureInfo(
        "contact_mean_mpa",
        "Mean pressure",
        "Mean contact pressure",
        "MPa",
        "The average pressure where the head presses on the socket.",
        "Area-weighted mean pressure over the faces in contact.",
        "Genda et al. 2001; docs/mechanics.md.",
        possible=(0, INF),
    ),
    MeasureInfo(
        "contact_area_mm2",
        "Contact area",
        "Contact area",
        "mm²",
        "How much of the socket carries the weight.",
        "Area of the socket faces with positive pressure.",
        "Genda et al. 2001; docs/mechanics.md.",
        possible=(0, INF),
    ),
    MeasureInfo(
        "joint_force_bw",
        "Joint force",
        "Joint force",
        "×BW",
        "The force of the head on the socket, in body weights.",
        "Magnitude of the chosen load (OrthoLoad average or Pauwels' one-legged stance) divided "
        "by the body weight.",
        "Bergmann et al. 2016 (OrthoLoad); Pauwels 1965; docs/mechanics.md.",
        possible=(0, INF),
    ),
)

BY_KEY: dict[str, MeasureInfo] = {m.key: m for m in MEASURES}


def lookup(values: dict, key: str) -> float | None:
    """Value of a possibly dotted key (``coverage_pct.upper_hemisphere``) in a result dict."""
    cur = values
    for part in key.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return None
        cur = cur[part]
    return cur


# --------------------------------------------------------------------------- #
# Impossible values: outside the possible range, flagged with a likely cause
# --------------------------------------------------------------------------- #

#: Frames in which the file's own axes are taken as patient axes (``--frame``).
PATIENT_FRAMES = ("ras", "lps")

#: Which part of the hip a measure reads, to name the likely cause; the
#: measures not listed read the acetabulum.
_PART = {
    "femoral_version_deg": "version",
    "mckibbin_deg": "version",
    "neck_shaft_deg": "axes",
    "neck_shaft_projected_deg": "axes",
    "head_radius_mm": "head",
    "alpha_deg": "head",
    "sphericity_mm": "head",
}

#: What to check, in a few words, for a table's status cell.
_HINTS = {
    "version": "check side/frame",
    "axes": "check the femur file",
    "head": "check units/femur file",
    "acetabulum": "check frame/pelvis",
}

#: The parts of the McKibbin index: an impossible part makes the sum impossible.
_MCKIBBIN_PARTS = ("acetabular_version_deg", "femoral_version_deg")


@dataclass(frozen=True)
class Finding:
    """One impossible value: its measure, the value and the likely cause in words."""

    info: MeasureInfo
    value: float
    cause: str
    parts: tuple[str, ...] = ()  # impossible parts it is made from (McKibbin)

    @property
    def message(self) -> str:
        """``outside the possible -60…80° (163.6°): likely ...`` (the JSON text)."""
        value = value_text(self.value, self.info.unit)
        if self.info.is_possible(self.value):
            names = " and ".join(BY_KEY[k].name.lower() for k in self.parts)
            return f"made from an impossible {names} ({value}): likely {self.cause}"
        return f"outside the possible {self.info.possible_text()} ({value}): likely {self.cause}"


def value_text(value: float, unit: str) -> str:
    """``163.6°``, ``55.0%``, ``2.1 mm``: one decimal and the unit."""
    return f"{value:.1f}{_unit_suffix(unit)}"


def _unit_suffix(unit: str) -> str:
    return unit if unit in ("°", "%", "") else f" {unit}"


def _finite(x: Any) -> float | None:
    if x is None or isinstance(x, (bool, str, dict, list)):
        return None
    x = float(x)
    return x if np.isfinite(x) else None


def _cause(
    key: str, value: float, values: Mapping[str, Any], femur_bodies: int, femur_side: str | None
) -> str:
    """The likely cause of an impossible ``value`` of ``key``, from the options and context."""
    part = _PART.get(key, "acetabulum")
    frame, side = values.get("frame"), values.get("side")
    femoral = part != "acetabulum"
    sides_differ = femur_side in ("left", "right") and side in ("left", "right")
    sides_differ = sides_differ and femur_side != side
    causes = []
    if femoral and femur_bodies > 1:
        causes.append(
            f"two bones in one file (the femur file holds {femur_bodies} separate bodies; "
            "give one femur per file)"
        )
    if frame in PATIENT_FRAMES and part in ("version", "acetabulum"):
        if sides_differ:
            other = "lps" if frame == "ras" else "ras"
            causes.append(
                f"a wrong frame: with --frame {frame} this measures as a {side} hip, yet the "
                f"femur's own anatomy is a {femur_side} one, so the file's axes are not "
                f"{frame.upper()} patient axes (try --frame auto, or --frame {other} if the "
                f"file is {other.upper()})"
            )
        else:
            causes.append(
                f"a wrong frame: the file's axes may not be {frame.upper()} patient axes "
                "(try --frame auto)"
            )
    elif sides_differ and part == "version":
        causes.append(
            f"a wrong side: the femur's own anatomy is a {femur_side} one, yet this measures as "
            f"a {side} hip (a mirrored femur, or the other side's)"
        )
    if causes:
        return "; or ".join(causes)
    if part == "version":
        if abs(value) >= 90.0:
            return (
                "a femur read back to front (near ±180° minus a usual version): a mirrored "
                "femur, a femur of the other side, or condyles of another bone"
            )
        return "the condyles or the neck axis misread: an incomplete distal femur?"
    if part == "axes":
        return (
            "the neck or shaft axis misread: a cut-off femur with too little shaft, or a bone "
            "that is not a femur"
        )
    if key == "head_radius_mm":
        return (
            "no femoral head is this size: wrong units (centimetres or inches? pass --units) "
            "or a sphere fitted to other bone"
        )
    if part == "head":
        return (
            "the head-neck contour misread: a cut-off or damaged head, or a neck axis pulled "
            "off by other bone"
        )
    return (
        "the rim read off bone that is not the socket wall: an incomplete pelvis (cut off "
        "near the socket), or a femur not seated in this pelvis"
    )


#: The cause of a value that a planned move takes out of the possible range.
MOVE_CAUSE = "the planned move takes it beyond any human hip (a smaller move?)"


def findings(
    values: Mapping[str, Any],
    *,
    femur_bodies: int = 1,
    femur_side: str | None = None,
    before: Mapping[str, Any] | None = None,
) -> list[Finding]:
    """Every impossible value of an analysis dict, in the order of :data:`MEASURES`.

    Parameters
    ----------
    values : mapping
        Measures as ``hipviz measure --json`` gives them (``frame`` and
        ``side`` are read too, when present).
    femur_bodies : int
        Separate bodies in the femur mesh (more than one: two bones in one
        file, a likely cause of impossible femoral values).
    femur_side : {"left", "right"} or None
        The side the femur's own anatomy shows (condyles behind, head
        medial), when known; a mismatch with ``values["side"]`` points at a
        mirrored femur or a wrong frame.
    before : mapping, optional
        The measures before a planned move, when ``values`` are those after
        it: a value possible before and impossible after is the move's doing
        (:data:`MOVE_CAUSE`).

    Returns
    -------
    list of Finding
        Values outside :attr:`MeasureInfo.possible`, and the McKibbin index
        whenever one of its parts is impossible.
    """
    values = dict(values)
    bad_before = (
        set()
        if before is None
        else {
            f.info.key for f in findings(before, femur_bodies=femur_bodies, femur_side=femur_side)
        }
    )
    out: list[Finding] = []
    bad: set[str] = set()
    for info in MEASURES:
        x = _finite(lookup(values, info.key))
        if x is None:
            continue
        parts = tuple(k for k in _MCKIBBIN_PARTS if k in bad) if info.key == "mckibbin_deg" else ()
        if info.is_possible(x) and not parts:
            continue
        cause_key = parts[-1] if parts else info.key
        cause_value = _finite(lookup(values, cause_key)) if parts else x
        if before is not None and cause_key not in bad_before:
            cause = MOVE_CAUSE
        else:
            cause = _cause(cause_key, cause_value, values, femur_bodies, femur_side)
        out.append(Finding(info, x, cause, parts))
        bad.add(info.key)
    return out


def implausible(
    values: Mapping[str, Any],
    *,
    femur_bodies: int = 1,
    femur_side: str | None = None,
    before: Mapping[str, Any] | None = None,
) -> dict[str, str]:
    """Impossible values of an analysis dict: measure key -> message naming the likely cause.

    Pure: the same dict and context give the same answer. See :func:`findings`
    for the parameters. For example a femoral version of 163.6° gives
    ``{"femoral_version_deg": "outside the possible -60…80° (163.6°): likely a
    femur read back to front ...", "mckibbin_deg": ...}``.
    """
    found = findings(values, femur_bodies=femur_bodies, femur_side=femur_side, before=before)
    return {f.info.key: f.message for f in found}


def implausible_warning(
    values: Mapping[str, Any],
    *,
    femur_bodies: int = 1,
    femur_side: str | None = None,
    before: Mapping[str, Any] | None = None,
) -> str:
    """One warning line for every impossible value of ``values`` ("" when there is none).

    Parameters as :func:`findings`.
    """
    found = findings(values, femur_bodies=femur_bodies, femur_side=femur_side, before=before)
    by_cause: dict[str, list[Finding]] = {}
    for f in found:
        by_cause.setdefault(f.cause, []).append(f)
    groups = [
        _and(
            [
                f"{f.info.short} {value_text(f.value, f.info.unit)} "
                f"(possible {f.info.possible_text()})"
                for f in group
            ]
        )
        + f": likely {cause}"
        for cause, group in by_cause.items()
    ]
    if not groups:
        return ""
    return "impossible values, shown flagged and not to be read as measures: " + "; ".join(groups)


def _and(items: list[str]) -> str:
    """``a``, ``a and b``, ``a, b and c``."""
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def flagged(values: Mapping[str, Any]) -> dict[str, str]:
    """The impossible values of ``values``, with the messages it carries when it has them.

    Whether a value is impossible depends on the value alone, so the check
    is repeated here; the dict's own ``implausible`` messages (written where
    the meshes were at hand, naming causes such as two bodies in a file)
    are kept for the keys it flags.
    """
    given = values.get("implausible")
    given = given if isinstance(given, Mapping) else {}
    return {k: str(given.get(k, msg)) for k, msg in implausible(values).items()}


def impossible_status(key: str, message: str = "") -> str:
    """The status cell of an impossible value: ``impossible — check side/frame``.

    ``message`` is the value's :func:`implausible` text; one that blames a
    planned move (:data:`MOVE_CAUSE`) gives ``impossible — too large a move``.
    """
    if MOVE_CAUSE in message:
        return "impossible — too large a move"
    return f"impossible — {_HINTS[_PART.get(key, 'acetabulum')]}"


def markdown() -> str:
    """The measure reference page (``docs/measures.md``), generated from :data:`MEASURES`."""
    lines = [
        "# Measure reference",
        "",
        "Generated from `hipviz/reference.py` by `python scripts/gen_docs.py`; do not edit by "
        "hand. Every measure is computed in the measurement frame (RAS aligned to the anterior "
        "pelvic plane unless `--frame ras|lps` is given), with c the femoral head centre and r "
        "its radius. Bands colour a value for display; they are not a diagnosis. Bony-surface "
        "measures differ from radiographic ones (no cartilage, labrum or sclerotic sourcil).",
        "",
        "The *possible* range is wider than any band: the values a human hip can have at all, "
        "pathology included. A value outside it is a misreading, never a finding (a mirrored "
        "femur, a file whose axes are not the declared `--frame`, a cut-off bone, two bones in "
        "one file). Such a value is never shown with a band: the table marks it `!` with the "
        "status *impossible*, the JSON lists it under `implausible` with the likely cause, and "
        "a warning names the cause. The value itself stays in the JSON for scripts.",
        "",
        "The *read in* column says where each number is taken: in a CT plane through the head "
        "centre, in 3D, or emulating a radiograph (the false-profile VCA). CT-plane angles are "
        "not radiographic ones: a radiograph projects the whole rim, a plane cuts it.",
        "",
        "| key | short name | unit | normal | bands | possible | read in |",
        "|---|---|---|---|---|---|---|",
    ]
    for m in MEASURES:
        normal = next((f"{b.low:g} to {b.high:g}" for b in m.bands if b.level == "normal"), "-")
        bands = "; ".join(
            f"{b.label} ({b.level}): {_fmt(b.low)} to {_fmt(b.high)}" for b in m.bands
        )
        possible = f"{_fmt(m.possible[0])} to {_fmt(m.possible[1])}"
        lines.append(
            f"| `{m.key}` | {m.short} | {m.unit} | {normal} | {bands or '-'} | {possible} "
            f"| {m.plane} |"
        )
    lines += ["", *_LANDMARK_NOTES]
    for m in MEASURES:
        lines += ["", f"## {m.name} (`{m.key}`)", "", f"*{m.meaning}*", "", m.definition, ""]
        lines.append(f"Source: {m.source}")
        if m.note:
            lines += ["", f"Note: reported as {m.note}."]
        lines += ["", f"Possible: {m.possible_text()}. {m.possible_source}"]
    return "\n".join(lines) + "\n"


#: How the rim edges and the neck axis are found; part of the generated reference page.
_LANDMARK_NOTES = (
    "## Where the rim is",
    "",
    "Every centre-edge angle turns a ray about the head centre c from superior toward its "
    "side until it stops meeting acetabular wall. Above the head's equator (rays with a "
    "superior part) any bone within the rim reach (socket radius + 6 mm, never less than r + "
    "margin) counts, so the rounded bony rim is the edge, as in Wiberg's bony-rim angle. "
    "Below the equator the wall is the socket sphere itself (bone within 2 mm of it, or "
    "three times the socket fit's residual), and the rim's own rounding: where a ray leaves "
    "the sphere and the bone ends within 4° more, that end is the edge. Bone that carries on "
    "further off the sphere is the ischium or the pubis, and the edge is where the sphere "
    "was left. The posterior horn of the lunate surface lies on the socket sphere, so a "
    "sagittal PCEA can exceed 90°, and reads about 125° on the LLP26 mean hip; version and "
    "the sector angles start from the open, lateral side and stop at the first wall they "
    "meet.",
    "",
    "![Rim edges on coronal and sagittal sections of every teaching case, the built-in hip "
    "and both validation specimens](images/rim_edges.png)",
    "",
    "(`python scripts/render_rim_edges.py` redraws this figure: section outline in grey, "
    "head sphere blue, socket sphere dashed green, the edges and their rays in colour.)",
    "",
    "## The neck axis",
    "",
    "From the head centre to the area centroid of the narrowest section of the neck (its "
    "waist), the section normal to the axis itself; each section keeps only the outline that "
    "surrounds the axis, so a greater trochanter or intertrochanteric crest beside the neck "
    "base never enters (Boese et al. 2016, BioMed Res Int 2016:8645027; Bonneau et al. 2012, "
    "J Anat 221:465). The femur's anterior (the condyles lie behind the proximal shaft axis) "
    "and its side (the head medial of the shaft) come from its own anatomy, so no declared "
    "frame or side changes a femoral measure; a contradiction is a warning.",
)


def _fmt(x: float) -> str:
    return "-∞" if x == -INF else ("∞" if x == INF else f"{x:g}")
