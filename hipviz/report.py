"""Measures as tables and a one-page report: HTML, CSV and rows for any view.

The web app's measures panel, its CSV export and the printable report all
come from :func:`measure_rows`, so they always agree. Values are the
``hipviz measure --json`` keys; bands, meanings, definitions and sources come
from :data:`hipviz.reference.MEASURES`.

A value outside the measure's possible range (:func:`hipviz.reference.flagged`)
never gets a band: its row is marked ``impossible``, the value carries a ``!``
and the reason goes in the chip's title, the CSV and the report's warnings.
"""

from __future__ import annotations

import base64
import csv
import html
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .reference import LOAD_MEASURES, MEASURES, MeasureInfo, flagged, lookup

#: Traffic-light colours of band levels (and of a value with no band).
LEVEL_COLORS = {
    "normal": "#2e8b57",
    "borderline": "#d99a00",
    "abnormal": "#c0392b",
    "impossible": "#5b2c6f",
    None: "#888888",
}

#: Band label and level of a row whose value is impossible.
IMPOSSIBLE = "impossible"


@dataclass(frozen=True)
class Row:
    """One measure for display: short name, values before/after, band of the current value.

    ``impossible_before`` and ``impossible_after`` say why a value is
    impossible ("" when it is possible or missing); an impossible current
    value has the band label and level ``"impossible"``.
    """

    info: MeasureInfo
    before: float | None
    after: float | None
    band_label: str
    level: str | None  # normal | borderline | abnormal | impossible | None (no band or value)
    normal: str  # the normal band as text, "" when the measure has none
    impossible_before: str = ""
    impossible_after: str = ""

    @property
    def current(self) -> float | None:
        return self.after if self.after is not None or self.before is None else self.before

    @property
    def impossible(self) -> str:
        """Why the current value is impossible, "" when it is not."""
        return self.impossible_after if self.after is not None else self.impossible_before

    @property
    def changed(self) -> bool:
        return (
            self.before is not None
            and self.after is not None
            and abs(self.after - self.before) >= 0.05
        )


def _number(x: Any) -> float | None:
    if x is None or isinstance(x, (dict, list, str)):
        return None
    x = float(x)
    return x if np.isfinite(x) else None


def _normal_text(info: MeasureInfo) -> str:
    band = next((b for b in info.bands if b.level == "normal"), None)
    if band is None:
        return ""
    if band.low == -np.inf:
        return f"< {band.high:g}{info.unit}"
    if band.high == np.inf:
        return f"≥ {band.low:g}{info.unit}"
    return f"{band.low:g}–{band.high:g}{info.unit}"


def measure_rows(
    before: Mapping[str, Any],
    after: Mapping[str, Any] | None = None,
    *,
    keys: Sequence[str] | None = None,
) -> list[Row]:
    """One :class:`Row` per measure of :data:`MEASURES` (or of ``keys``), in that order.

    ``keys`` may also name the load measures (:data:`~hipviz.reference.LOAD_MEASURES`).

    ``after`` is the same dict after a move (None: nothing moved); the band
    is that of the value after, else before. An impossible value gets no
    band: label and level are ``"impossible"``.
    """
    known = (*MEASURES, *LOAD_MEASURES)
    infos = MEASURES if keys is None else [m for k in keys for m in known if m.key == k]
    flags_before = flagged(dict(before))
    flags_after = {} if after is None else flagged(dict(after))
    rows = []
    for info in infos:
        b = _number(lookup(dict(before), info.key))
        a = None if after is None else _number(lookup(dict(after), info.key))
        why_b = flags_before.get(info.key, "") if b is not None else ""
        why_a = flags_after.get(info.key, "") if a is not None else ""
        if why_a if a is not None else why_b:
            label, level = IMPOSSIBLE, IMPOSSIBLE
        else:
            band = info.classify(a if a is not None else b)
            label, level = (band.label, band.level) if band else ("", None)
        rows.append(Row(info, b, a, label, level, _normal_text(info), why_b, why_a))
    return rows


def impossible_warnings(rows: Sequence[Row]) -> list[str]:
    """One line per impossible value before any move: ``<measure name>: <why>``.

    The values after a move that turn impossible come with the move's own
    warnings (:attr:`hipviz.simulate.Outcome.warnings`).
    """
    return [f"{r.info.name}: {r.impossible_before}" for r in rows if r.impossible_before]


def fmt(value: float | None, unit: str = "") -> str:
    """One decimal with its unit, '—' when missing."""
    if value is None:
        return "—"
    return f"{value:.1f}{unit}" if unit in ("°", "%", "") else f"{value:.1f} {unit}"


def table_html(rows: Sequence[Row], *, details: bool = True) -> str:
    """An HTML table: name, value (before → after), band chip, meaning; details on click.

    Every text in it, attributes included, is escaped (``html.escape``).
    """
    esc = html.escape
    moved = any(r.after is not None for r in rows)
    head = "<th>Measure</th><th>Value</th><th>Normal</th>"
    out = [f'<table class="hv-measures"><thead><tr>{head}</tr></thead><tbody>']
    for r in rows:
        info = r.info
        if moved and r.changed:
            value = (
                f'<span class="hv-before">{esc(fmt(r.before, info.unit))}'
                f"{_bang(r.impossible_before)}</span> → "
                f"<b>{esc(fmt(r.after, info.unit))}</b>{_bang(r.impossible_after)}"
            )
        else:
            value = f"<b>{esc(fmt(r.current, info.unit))}</b>{_bang(r.impossible)}"
        color = LEVEL_COLORS[r.level]
        title = f' title="{html.escape(r.impossible)}"' if r.impossible else ""
        chip = (
            f'<span class="hv-chip" style="background:{color}"{title}>'
            f"{html.escape(r.band_label)}</span>"
            if r.band_label
            else ""
        )
        normal = html.escape(r.normal) or "—"
        if r.impossible_before or r.impossible_after:
            normal += f"<br>possible {html.escape(info.possible_text())}"
        meaning = html.escape(info.meaning)
        if details:
            meaning = (
                f"<details><summary>{meaning}</summary>"
                f'<div class="hv-def"><b>{html.escape(info.name)}.</b> '
                f"{html.escape(info.definition)}<br><i>Source:</i> {html.escape(info.source)}"
                + (f"<br><i>Note:</i> {html.escape(info.note)}" if info.note else "")
                + "</div></details>"
            )
        out.append(
            f'<tr data-key="{esc(info.key)}" data-level="{esc(r.level or "")}">'
            f'<td><div class="hv-name">{html.escape(info.short)}</div>'
            f'<div class="hv-meaning">{meaning}</div></td>'
            f'<td class="hv-value">{value}</td>'
            f"<td>{chip}<div class='hv-normal'>{normal}</div></td></tr>"
        )
    out.append("</tbody></table>")
    return "".join(out)


def _bang(why: str) -> str:
    """The mark after an impossible value, its reason in the title ("" when possible)."""
    return f' <span class="hv-bang" title="{html.escape(why)}">!</span>' if why else ""


TABLE_CSS = """
table.hv-measures { border-collapse: collapse; width: 100%; font-size: 14px; }
table.hv-measures th { text-align: left; font-weight: 600; color: #555;
  border-bottom: 2px solid #ddd; padding: 4px 6px; }
table.hv-measures td { border-bottom: 1px solid #eee; padding: 4px 6px; vertical-align: top; }
div.hv-name { font-weight: 600; font-size: 15px; }
div.hv-meaning { color: #666; font-size: 12px; }
td.hv-value { white-space: nowrap; }
span.hv-before { color: #888; }
span.hv-chip { color: white; border-radius: 9px; padding: 1px 8px; font-size: 12px;
  white-space: nowrap; }
div.hv-normal { color: #777; font-size: 11px; }
span.hv-bang { color: #5b2c6f; font-weight: 700; cursor: help; }
div.hv-meaning details summary { cursor: pointer; }
div.hv-def { color: #444; font-size: 12px; margin-top: 4px; }
"""


def measures_csv(rows: Sequence[Row]) -> str:
    """CSV text: key, short name, unit, before, after, band, level, normal range, impossible.

    ``impossible`` says which values are impossible and why ("" when none);
    their band and level read ``impossible``.
    """
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(
        ["key", "measure", "unit", "before", "after", "band", "level", "normal", "impossible"]
    )
    for r in rows:
        w.writerow(
            [
                r.info.key,
                r.info.short,
                r.info.unit,
                "" if r.before is None else f"{r.before:.2f}",
                "" if r.after is None else f"{r.after:.2f}",
                r.band_label,
                r.level or "",
                r.normal,
                _impossible_cell(r),
            ]
        )
    return buf.getvalue()


def _impossible_cell(r: Row) -> str:
    """Which values of a row are impossible, and why."""
    b, a = r.impossible_before, r.impossible_after
    if r.after is None:
        return b
    if b and b == a:
        return f"before and after: {b}"
    return "; ".join(f"{when}: {why}" for when, why in (("before", b), ("after", a)) if why)


def report_html(
    *,
    title: str,
    subtitle: str,
    rows: Sequence[Row],
    pictures: Mapping[str, bytes],
    facts: Sequence[tuple[str, str]] = (),
    warnings: Sequence[str] = (),
    notes: Sequence[str] = (),
    pictures_below: Mapping[str, bytes] | None = None,
) -> str:
    """A self-contained one-page HTML report (pictures inlined as PNG) that prints on A4.

    ``pictures`` maps captions to PNG bytes (one row); ``pictures_below``, a
    second row under them (e.g. contact pressure before and after); ``facts`` are (label, value)
    lines such as the plan's moves and the joint gap. Impossible values of
    ``rows`` head the warnings (:func:`impossible_warnings`). ``notes`` are
    paragraphs of method notes printed under the table (:data:`METHOD_NOTES`).
    """
    warnings = [*impossible_warnings(rows), *warnings]

    def row(pics: Mapping[str, bytes]) -> str:
        return "".join(
            f'<figure><img src="data:image/png;base64,{base64.b64encode(png).decode()}">'
            f"<figcaption>{html.escape(cap)}</figcaption></figure>"
            for cap, png in pics.items()
        )

    figs = row(pictures)
    below = f'<div class="figs">{row(pictures_below)}</div>' if pictures_below else ""
    fact_html = "".join(
        f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in facts
    )
    warn = "".join(f"<li>{html.escape(w)}</li>" for w in warnings)
    note_html = "".join(f"<p>{html.escape(n)}</p>" for n in notes)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
@page {{ size: A4; margin: 12mm; }}
body {{ font-family: system-ui, sans-serif; color: #222; max-width: 190mm; margin: auto; }}
h1 {{ font-size: 20px; margin: 0 0 2px; }} .sub {{ color: #666; margin-bottom: 8px; }}
.figs {{ display: flex; flex-wrap: wrap; justify-content: space-between; row-gap: 4px; }}
figure {{ margin: 0; flex: 0 0 auto; width: 49%; text-align: center; }}
figure img {{ width: 100%; border: 1px solid #ddd; }} figcaption {{ font-size: 12px; }}
table.facts th {{ text-align: left; padding-right: 12px; font-weight: 600; }}
table.facts {{ font-size: 13px; margin: 6px 0; }}
.warn {{ color: #a04000; font-size: 13px; }}
.foot {{ color: #888; font-size: 11px; margin-top: 8px; }}
.notes {{ font-size: 11px; color: #444; }} .notes h2 {{ font-size: 13px; margin: 8px 0 2px; }}
.notes p {{ margin: 0 0 3px; }}
{TABLE_CSS}
</style></head><body>
<h1>{html.escape(title)}</h1><div class="sub">{html.escape(subtitle)}</div>
<div class="figs">{figs}</div>
{below}
<table class="facts">{fact_html}</table>
{f'<ul class="warn">{warn}</ul>' if warn else ""}
{table_html(rows, details=False)}
{f'<div class="notes"><h2>Method</h2>{note_html}</div>' if note_html else ""}
<div class="foot">hipviz: bone surfaces only (no cartilage or labrum); bands colour values for
orientation and are not a diagnosis. A teaching and planning aid, not a medical device.</div>
</body></html>
"""


#: Method notes printed under a report's table: what the numbers rest on.
METHOD_NOTES = (
    "Measures are taken on the bone surfaces in the anterior pelvic plane frame (supine unless a "
    "tilt is given): the femoral head and the socket are fitted as spheres, the rim edges are "
    "found by rays from the head centre, and the angles are measured in the planes where they "
    "are defined (docs/measures.md).",
    "A planned move turns the cut fragment about the head centre (or the femur about its cut); "
    "the same code measures the hip again after the move. The joint gap and the contact across "
    "the cuts are between bone surfaces.",
    "Colour bands follow the published ranges quoted for each measure; they orient, they do not "
    "diagnose. There is no cartilage, labrum or soft tissue in the model.",
)


def plan_facts(result: Mapping[str, Any], *, side: str = "") -> list[tuple[str, str]]:
    """(label, value) lines of a plan: hip and files, the moves, gap and leg length.

    ``result`` is a ``hipviz simulate --json`` object (``plan``, ``sources``,
    ``min_gap_mm``, ``leg_length_change_mm``); keys it lacks are left out.
    Values are plain text (escape them for HTML).
    """
    from .osteotomy import PROCEDURES

    facts: list[tuple[str, str]] = []
    sources = result.get("sources") or {}
    where = "; ".join(f"{k}: {v}" for k, v in sources.items() if k in ("pelvis", "femur"))
    if side or where:
        facts.append(("Hip", ", ".join(x for x in (f"{side} side" if side else "", where) if x)))
    plan = result.get("plan") or {}
    if plan.get("procedure"):
        p = plan["pao"]
        facts.append(
            (
                PROCEDURES[plan["procedure"]].title,
                f"lateral {p['lateral']:+g}°, anterior {p['anterior']:+g}°, "
                f"version {p['version']:+g}°, medial {p['medial']:+g} mm",
            )
        )
    f = plan.get("femoral") or {}
    if f.get("level_mm") is not None:
        facts.append(
            (
                "Femoral osteotomy",
                f"varus {f['varus']:+g}°, flexion {f['flexion']:+g}°, "
                f"rotation {f['rotation']:+g}°, cut {f['level_mm']:.0f} mm below the head",
            )
        )
    if not plan.get("procedure") and f.get("level_mm") is None:
        facts.append(("Plan", "no move: the hip as it is"))
    if result.get("min_gap_mm") is not None and plan:
        facts.append(("Joint gap after", f"{result['min_gap_mm']:.1f} mm"))
    if result.get("leg_length_change_mm") is not None and plan:
        facts.append(("Leg length change", f"{result['leg_length_change_mm']:+.1f} mm"))
    return facts


def plan_pictures(
    sim: Any,
    outcome: Any,
    *,
    views: Sequence[str] = ("anterior", "false_profile"),
    camera: tuple | None = None,
    window_size: tuple[int, int] = (700, 560),
    zoom: float = 2.2,
    camera_zoom: float | None = None,
) -> dict[str, bytes]:
    """Captioned PNG pictures of a plan, before and after, from standard views (and a camera).

    Parameters
    ----------
    sim : hipviz.simulate.Simulation
    outcome : hipviz.simulate.Outcome, optional
        None: the hip as it is (before pictures only).
    views : sequence of str
        Standard views of :data:`hipviz.render.VIEWS`.
    camera : (position, focal_point, view_up), optional
        A camera a user turned to (mm, measurement frame), drawn after the
        standard views.
    camera_zoom : float, optional
        Zoom of the ``camera`` pictures (default ``zoom``); 1 draws them with
        a 30 degree view angle, as the app's view shows them.
    """
    from . import render

    names = {
        "anterior": "front",
        "lateral": "side",
        "superior": "above",
        "false_profile": "false profile",
    }
    before = render.scene(sim, None)
    after = None if outcome is None else render.scene(sim, outcome, fixation=True)
    shots: list[tuple[str, dict[str, Any]]] = [(names[v], {"view": v}) for v in views]
    if camera is not None:
        z = zoom if camera_zoom is None else camera_zoom
        shots.append(("your view", {"camera_position": camera, "zoom": z}))
    out: dict[str, bytes] = {}
    for name, where in shots:
        for label, sc in (("Before", before), ("After", after)):
            if sc is not None:
                img = render.picture(sc, window_size=window_size, **{"zoom": zoom, **where})
                out[f"{label} ({name})"] = render.png_bytes(img)
    return out


def pressure_pictures(
    sim: Any,
    outcome: Any,
    load: Any,
    body_weight_kg: float,
    *,
    solver: dict[str, Any] | None = None,
    window_size: tuple[int, int] = (700, 560),
    zoom: float = 2.2,
) -> dict[str, bytes]:
    """Captioned PNG pictures of the contact pressure on the socket, before and after a plan.

    Seen from the hip's side with the femur hidden (it covers the joint
    surface), on the fixed scale of the app (:data:`hipviz.pressure.PRESSURE_SCALE_MPA`),
    with the load drawn as an arrow at the head centre: the app report's second row.

    Parameters
    ----------
    sim : hipviz.simulate.Simulation
    outcome : hipviz.simulate.Outcome, optional
        None: the hip as it is (the picture before only).
    load : str or (3,) float
        A load name (``"walking"``, ``"one-leg-stance"``, ``"standing-up"``, ``"pauwels"``)
        or the force of the head on the socket (N, measurement frame).
    body_weight_kg : float
    solver : dict, optional
        Keywords of :func:`hipviz.contact.solve_contact` (``modulus_mpa``, ``poisson``,
        ``spring``), as the numbers of the report's table were computed.
    """
    from . import pressure, render

    out: dict[str, bytes] = {}
    for which, (sc, _) in pressure.pressure_scenes(
        sim, outcome, load, body_weight_kg, solver
    ).items():
        img = render.picture(sc, view="lateral", window_size=window_size, zoom=zoom)
        out[pressure.PICTURE_CAPTIONS[which]] = render.png_bytes(img)
    return out


def write_pdf(html_text: str, path: Any) -> None:
    """Print a report's HTML to a PDF file at ``path`` (A4 from its ``@page`` rule; WeasyPrint).

    Raises
    ------
    hipviz.errors.InputError
        If WeasyPrint or the system libraries it needs (Pango) are missing.
    """
    from .errors import InputError

    try:
        import weasyprint
    except (ImportError, OSError) as exc:
        msg = (
            f"PDF output needs WeasyPrint and Pango ({type(exc).__name__}: {exc}); "
            "pip install weasyprint (and apt-get install libpango-1.0-0 libpangoft2-1.0-0), "
            "or write .html"
        )
        raise InputError(msg) from None
    weasyprint.HTML(string=html_text).write_pdf(str(path))


__all__ = [
    "METHOD_NOTES",
    "plan_facts",
    "plan_pictures",
    "write_pdf",
    "IMPOSSIBLE",
    "LEVEL_COLORS",
    "Row",
    "TABLE_CSS",
    "fmt",
    "impossible_warnings",
    "measure_rows",
    "measures_csv",
    "report_html",
    "table_html",
]
