"""The cohort summary of a batch: ``summary.html`` (self-contained) and PNGs.

``distributions.png`` shows each measure of :data:`hipviz.reference.MEASURES`
across the cohort against its normal band; with ``--simulate``,
``shift.png`` shows each measure before and after the planned move.
``summary.html`` holds counts, a per-measure table, the figures inline (as
``data:`` URIs: no network, no other file) and every failure with its error.
Every text that comes from the user (ids, paths, errors, column names) is
escaped with :func:`html.escape`.

Figures are drawn with matplotlib's object API on an Agg canvas, so nothing
global (no pyplot state, no backend switch) is touched.
"""

from __future__ import annotations

import base64
import html
import io
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

__all__ = ["column_of", "measure_columns", "write_summary"]

_LEVEL_COLOURS = {"normal": "#2e7d32", "borderline": "#f9a825", "abnormal": "#c62828"}


def column_of(key: str) -> str:
    """The results column of a (possibly dotted) measure key (:func:`hipviz.batch.flatten`).

    >>> column_of("coverage_pct.upper_hemisphere")
    'coverage_upper_hemisphere_pct'
    """
    from .batch import flatten

    value: Any = 0.0
    for part in reversed(key.split(".")):
        value = {part: value}
    (name,) = flatten(value)
    return name


def measure_columns(df: pd.DataFrame, prefix: str = "") -> list[tuple[Any, str]]:
    """(MeasureInfo, column) of every reference measure with at least one value in ``df``."""
    from .reference import MEASURES

    out = []
    for info in MEASURES:
        col = prefix + column_of(info.key)
        if col in df and _values(df[col]).size:
            out.append((info, col))
    return out


def _values(series: pd.Series) -> np.ndarray:
    v = np.asarray(series.to_numpy(dtype=float, na_value=np.nan), dtype=float)
    return v[np.isfinite(v)]


def _in_range(info: Any, v: np.ndarray) -> np.ndarray:
    """Whether each value lies in the measure's possible range (False for NaN)."""
    return (info.possible[0] <= v) & (v <= info.possible[1])


def _possible(info: Any, series: pd.Series) -> tuple[np.ndarray, int]:
    """The values of ``series`` a human hip can have, and how many others there are.

    A value outside the measure's possible range (``MeasureInfo.possible``) is a
    flagged failure of the input or of a landmark, not a finding: it is counted
    and listed, never plotted or summarised with the others.
    """
    v = _values(series)
    ok = _in_range(info, v)
    return v[ok], int((~ok).sum())


def _png(fig) -> bytes:  # type: ignore[no-untyped-def]
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    return buf.getvalue()


def _grid(n: int) -> tuple[int, int]:
    cols = min(4, max(1, n))
    return math.ceil(n / cols), cols


def distributions_png(df: pd.DataFrame) -> bytes | None:
    """Histogram of each measure with its bands shaded (green: normal); None with no values."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    cols = measure_columns(df)
    if not cols:
        return None
    rows, ncols = _grid(len(cols))
    fig = Figure(figsize=(3.2 * ncols, 2.4 * rows), layout="constrained")
    for i, (info, col) in enumerate(cols):
        ax = fig.add_subplot(rows, ncols, i + 1)
        v, flagged = _possible(info, df[col])
        title = f"{info.short} ({info.unit}) n={v.size}"
        if flagged:
            title += f", {flagged} impossible left out"
        ax.set_title(title, fontsize=9 if not flagged else 8)
        if not v.size:
            continue
        lo, hi = float(v.min()), float(v.max())
        pad = max(1.0, 0.1 * (hi - lo))
        for band in info.bands:
            a, b = max(band.low, lo - pad), min(band.high, hi + pad)
            if a < b:
                ax.axvspan(a, b, color=_LEVEL_COLOURS[band.level], alpha=0.15, lw=0)
        ax.hist(v, bins=min(30, max(5, v.size // 3)), color="#37474f")
        ax.set_xlim(lo - pad, hi + pad)
        ax.xaxis.set_major_locator(MaxNLocator(5))
        ax.yaxis.set_major_locator(MaxNLocator(4, integer=True))
        ax.tick_params(labelsize=7)
    return _png(fig)


def shift_png(df: pd.DataFrame) -> bytes | None:
    """Before -> after of each measure a planned move changes; None when none does."""
    from matplotlib.figure import Figure

    pairs = []
    for info, col in measure_columns(df):
        after = "after_" + col
        if after in df:
            b = df[col].to_numpy(dtype=float, na_value=np.nan)
            a = df[after].to_numpy(dtype=float, na_value=np.nan)
            ok = _in_range(info, a) & _in_range(info, b)
            if ok.any() and np.nanmax(np.abs(a[ok] - b[ok])) > 1e-6:
                pairs.append((info, b[ok], a[ok]))
    if not pairs:
        return None
    rows, ncols = _grid(len(pairs))
    fig = Figure(figsize=(3.2 * ncols, 2.6 * rows), layout="constrained")
    for i, (info, b, a) in enumerate(pairs):
        ax = fig.add_subplot(rows, ncols, i + 1)
        normal = next((x for x in info.bands if x.level == "normal"), None)
        if normal is not None:
            ax.axhspan(max(normal.low, -1e3), min(normal.high, 1e3), color="#2e7d32", alpha=0.15)
        for y0, y1 in zip(b, a, strict=True):
            ax.plot([0, 1], [y0, y1], color="#37474f", alpha=0.4, lw=0.8)
        ax.set_ylim(min(b.min(), a.min()) - 2, max(b.max(), a.max()) + 2)
        ax.set_xticks([0, 1], ["before", "after"], fontsize=8)
        ax.set_title(f"{info.short} ({info.unit})", fontsize=9)
        ax.tick_params(labelsize=7)
    return _png(fig)


def _stats_rows(df: pd.DataFrame) -> list[str]:
    rows = []
    for info, col in measure_columns(df):
        v, flagged = _possible(info, df[col])
        if not v.size:
            rows.append(
                "<tr>"
                + "".join(f"<td>{html.escape(c)}</td>" for c in (info.short, col, "0"))
                + '<td colspan="5"></td>'
                + f"<td>{flagged}</td></tr>"
            )
            continue
        normal = next((b for b in info.bands if b.level == "normal"), None)
        if normal is not None:
            inside = np.mean((v >= normal.low) & (v < normal.high)) * 100
            band = f"{_band(normal.low, normal.high)}"
            frac = f"{inside:.0f} %"
        else:
            band, frac = "", ""
        q1, med, q3 = np.percentile(v, [25, 50, 75])
        cells = [
            html.escape(info.short),
            html.escape(col),
            str(v.size),
            f"{med:.1f}",
            f"{q1:.1f} to {q3:.1f}",
            f"{v.min():.1f} to {v.max():.1f}",
            html.escape(band),
            frac,
            str(flagged),
        ]
        rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    return rows


def _band(low: float, high: float) -> str:
    if math.isinf(low):
        return f"< {high:g}"
    if math.isinf(high):
        return f"> {low:g}"
    return f"{low:g} to {high:g}"


def _img(data: bytes, alt: str) -> str:
    b64 = base64.b64encode(data).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{b64}">'


def summary_html(df: pd.DataFrame, figures: dict[str, bytes]) -> str:
    """The self-contained summary page of a results table (figures as data URIs)."""
    from . import __version__

    errors = df[df["error"] != ""] if "error" in df else df.iloc[0:0]
    n, failed = len(df), len(errors)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        "<title>hipviz cohort summary</title>",
        "<style>body{font-family:sans-serif;margin:2em;max-width:70em}"
        "table{border-collapse:collapse;font-size:90%}td,th{border:1px solid #ccc;"
        "padding:2px 6px;text-align:left}img{max-width:100%}</style>",
        "</head><body>",
        "<h1>hipviz cohort summary</h1>",
        f"<p>{n} hips: {n - failed} measured, {failed} failed. hipviz "
        f"{html.escape(__version__)}. Bands are for display; they do not diagnose.</p>",
    ]
    stats = _stats_rows(df)
    if stats:
        head = [
            "measure",
            "column",
            "n",
            "median",
            "IQR",
            "range",
            "normal",
            "in normal",
            "impossible",
        ]
        parts.append("<h2>Measures</h2><table><tr>")
        parts.append("".join(f"<th>{h}</th>" for h in head) + "</tr>")
        parts.extend(stats)
        parts.append("</table>")
    if "distributions" in figures:
        parts.append("<h2>Distributions against the normal bands</h2>")
        parts.append(
            "<p>Green: normal band, amber: borderline, red: abnormal "
            "(<code>docs/measures.md</code>).</p>"
        )
        parts.append(_img(figures["distributions"], "distribution of each measure"))
    if "shift" in figures:
        parts.append("<h2>Before and after the planned move</h2>")
        parts.append(_img(figures["shift"], "each measure before and after the move"))
    if "target_note" in df:
        parts.append(_target_section(df))
    parts.append(_impossible_section(df))
    parts.append(f"<h2>Failures ({failed})</h2>")
    if failed:
        parts.append("<table><tr><th>id</th><th>error</th></tr>")
        for _, row in errors.iterrows():
            parts.append(
                f"<tr><td>{html.escape(str(row['id']))}</td>"
                f"<td>{html.escape(str(row['error']))}</td></tr>"
            )
        parts.append("</table>")
    else:
        parts.append("<p>None.</p>")
    parts.append("</body></html>")
    return "\n".join(parts)


#: Impossible values listed one by one on the summary page; the rest are counted.
MAX_LISTED = 100


def _impossible_section(df: pd.DataFrame) -> str:
    """Every value outside its measure's possible range: which hip, which measure."""
    from .reference import _unit_suffix

    found = []
    for info, col in measure_columns(df):
        v = df[col].to_numpy(dtype=float, na_value=np.nan)
        bad = np.isfinite(v) & ~_in_range(info, v)
        for i in np.flatnonzero(bad):
            found.append((str(df["id"].iloc[i]), info, float(v[i])))
    out = [f"<h2>Impossible values ({len(found)})</h2>"]
    if not found:
        out.append("<p>None.</p>")
        return "\n".join(out)
    out.append(
        "<p>Values no human hip can have, as <code>hipviz measure</code> flags them: a wrong "
        "side, a mirrored or mixed-up file, or a landmark the surface misled. They are left "
        "out of the table and the figures above.</p>"
    )
    out.append("<table><tr><th>id</th><th>measure</th><th>value</th><th>possible</th></tr>")
    for hip_id, info, value in found[:MAX_LISTED]:
        cells = (hip_id, info.short, f"{value:.1f}{_unit_suffix(info.unit)}", info.possible_text())
        out.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>")
    out.append("</table>")
    if len(found) > MAX_LISTED:
        out.append(f"<p>and {len(found) - MAX_LISTED} more (the results table has them all).</p>")
    return "\n".join(out)


def _target_section(df: pd.DataFrame) -> str:
    turn_col = next((c for c in df.columns if c.startswith("target_pao_")), None)
    if turn_col is None:
        return ""
    ok = df[df["error"] == ""]
    turns = _values(ok[turn_col])
    unreachable = ok[ok["target_note"].fillna("") != ""]
    text = f"<h2>Target</h2><p>{turns.size} hips reach it"
    if turns.size:
        q1, med, q3 = np.percentile(turns, [25, 50, 75])
        text += f" with a turn of {med:.1f} deg (IQR {q1:.1f} to {q3:.1f})"
    text += f"; {len(unreachable)} do not.</p>"
    if len(unreachable):
        text += "<table><tr><th>id</th><th>why</th></tr>"
        for _, row in unreachable.iterrows():
            text += (
                f"<tr><td>{html.escape(str(row['id']))}</td>"
                f"<td>{html.escape(str(row['target_note']))}</td></tr>"
            )
        text += "</table>"
    return text


def write_summary(df: pd.DataFrame, out: Path, *, simulated: bool = False) -> list[Path]:
    """Write ``summary.html``, ``distributions.png`` and (``simulated``) ``shift.png`` into ``out``.

    Returns
    -------
    list of Path
        The files written.
    """
    ok = df[df["error"] == ""] if "error" in df else df
    figures: dict[str, bytes] = {}
    dist = distributions_png(ok)
    if dist is not None:
        figures["distributions"] = dist
    if simulated:
        shift = shift_png(ok)
        if shift is not None:
            figures["shift"] = shift
    written = []
    for name, data in figures.items():
        path = out / f"{name}.png"
        path.write_bytes(data)
        written.append(path)
    page = out / "summary.html"
    page.write_text(summary_html(df, figures), encoding="utf-8")
    written.append(page)
    return written
