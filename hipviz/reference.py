"""What each measure means, its normal band and its source, as data.

The CLI table, the app's measures panel and ``docs/measures.md`` are all
generated from :data:`MEASURES`, so a definition or a band is written once.
Bands are for display only: they colour a value, they do not diagnose.
"""

from __future__ import annotations

from dataclasses import dataclass

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

    def classify(self, value: float | None) -> Band | None:
        """The band holding ``value``, or None (no value, or no bands)."""
        if value is None or not np.isfinite(value):
            return None
        for band in self.bands:
            if band.low <= value < band.high:
                return band
        return None


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
    ),
    MeasureInfo(
        "tonnis_deg",
        "Tönnis",
        "Tönnis angle (acetabular index)",
        "°",
        "Slope of the weight-bearing roof; steep means the ball is pushed outwards.",
        "Coronal plane through c: angle to the horizontal of the line from the medial end of "
        "the roof (where the fossa begins) to the lateral rim edge. Approximate: a bone surface "
        "has no sclerotic sourcil to mark the medial end.",
        "Tönnis 1976; bands after Tannast et al. 2015.",
        (
            Band(-INF, 0, "overcovered", "borderline"),
            Band(0, 10, "normal", "normal"),
            Band(10, INF, "dysplastic", "abnormal"),
        ),
        "approximate",
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
    ),
    MeasureInfo(
        "mckibbin_deg",
        "McKibbin",
        "McKibbin instability index",
        "°",
        "Combined forward facing of socket and femur.",
        "Acetabular version (central) + femoral version.",
        "McKibbin 1970. No band shown: thresholds are not verified for this construction.",
    ),
    MeasureInfo(
        "head_radius_mm",
        "Head radius",
        "Femoral head radius",
        "mm",
        "Size of the ball.",
        "Least-squares sphere on the head surface, excluding the fovea and the neck.",
        "Adult heads are about 20-27 mm in radius.",
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
        "| key | short name | unit | normal | bands |",
        "|---|---|---|---|---|",
    ]
    for m in MEASURES:
        normal = next((f"{b.low:g} to {b.high:g}" for b in m.bands if b.level == "normal"), "-")
        bands = "; ".join(
            f"{b.label} ({b.level}): {_fmt(b.low)} to {_fmt(b.high)}" for b in m.bands
        )
        lines.append(f"| `{m.key}` | {m.short} | {m.unit} | {normal} | {bands or '-'} |")
    for m in MEASURES:
        lines += ["", f"## {m.name} (`{m.key}`)", "", f"*{m.meaning}*", "", m.definition, ""]
        lines.append(f"Source: {m.source}")
        if m.note:
            lines += ["", f"Note: reported as {m.note}."]
    return "\n".join(lines) + "\n"


def _fmt(x: float) -> str:
    return "-∞" if x == -INF else ("∞" if x == INF else f"{x:g}")
