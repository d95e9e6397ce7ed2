#!/usr/bin/env python
"""Measure many random LLP26 shapes, both sides, and summarise what fails.

Each draw is a set of 26 shape-mode weights from a seeded standard normal
(``numpy.random.default_rng(seed).standard_normal((n, 26))``, row ``i`` is
draw ``i``, as in notebooks/04_shape_variation.ipynb), clipped at
``--clip`` SD. Every draw is built, seated and measured on both sides the way
``hipviz measure --modes ...`` does it: :func:`hipviz.anatomy.builtin_hip`
(the right hip is the mirrored femur seated in the right socket of the same
pelvis) and :func:`hipviz.hip.analyze`. The bone gap is the built-in hip's
``gap_mm``: :func:`hipviz.proximity.min_gap_mm` between pelvis and femur
within 2.5 head radii of the head centre, negative for an overlap (read from
the error when the seating refuses an overlapping femur).

Writes one CSV row per draw and side (draw, side, largest |weight|, gap,
every numeric measure, the frame method when reported, the error text) and
prints the failures, the count of gaps <= 0 and min/median/max per measure.

Usage::

    python scripts/sweep_shapes.py --n 300 --seed 0 --out sweep.csv
    python scripts/sweep_shapes.py --n 20 --draws 19      # one draw only
"""

from __future__ import annotations

import argparse
import csv
import re
import sys
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

SIDES = ("left", "right")
#: Measures summarised (and written first); any other numeric value follows them.
KEYS = (
    "lcea_deg",
    "acea_deg",
    "pcea_deg",
    "acetabular_version_deg",
    "acetabular_version_cranial_deg",
    "tonnis_deg",
    "extrusion_index_pct",
    "coverage_pct.upper_hemisphere",
    "neck_shaft_deg",
    "neck_shaft_projected_deg",
    "femoral_version_deg",
    "mckibbin_deg",
    "alpha_deg",
    "sphericity_mm",
    "head_radius_mm",
    "socket_radius_mm",
)
_OVERLAP = re.compile(r"seated (left|right) femur overlaps the pelvis by ([0-9.]+) mm")


def draws(n: int, seed: int, clip: float) -> np.ndarray:
    """(n, 26) shape-mode weights in SD: seeded standard normal, clipped at +-clip."""
    from hipviz.atlas import N_MODES

    return np.clip(np.random.default_rng(seed).standard_normal((n, N_MODES)), -clip, clip)


def _flatten(values: dict, prefix: str = "") -> dict[str, float]:
    """Numeric scalars of an analysis' values, nested dicts as ``outer.inner``."""
    out: dict[str, float] = {}
    for key, v in values.items():
        name = f"{prefix}{key}"
        if isinstance(v, dict):
            out.update(_flatten(v, f"{name}."))
        elif isinstance(v, (bool, np.bool_)):
            continue
        elif isinstance(v, (int, float, np.integer, np.floating)):
            out[name] = float(v)
        elif v is None:
            out[name] = float("nan")
    return out


def measure_draw(args: tuple[int, np.ndarray, int]) -> list[dict]:
    """Rows (one per side) of draw ``index`` with weights ``w`` at ``subdivisions``."""
    from hipviz.anatomy import builtin_hip
    from hipviz.errors import HipvizError
    from hipviz.hip import analyze

    index, w, subdivisions = args
    rows = []
    for side in SIDES:
        row: dict = {"draw": index, "side": side, "max_abs_w": float(np.abs(w).max())}
        t0 = time.perf_counter()
        try:
            hip = builtin_hip(w, side=side, subdivisions=subdivisions)
            row["gap_mm"] = hip.gap_mm
            result = analyze(hip.pelvis, hip.femur)
            row.update(_flatten(result.values))
            row["frame_method"] = result.values.get("frame_method", "")
            row["warnings"] = " | ".join(result.warnings)
            row["error"] = ""
        except HipvizError as exc:
            m = _OVERLAP.search(str(exc))
            if m and m.group(1) == side:
                row["gap_mm"] = -float(m.group(2))
            row["error"] = f"{type(exc).__name__}: {exc}"
        row["seconds"] = time.perf_counter() - t0
        rows.append(row)
    return rows


def _tag(row: dict) -> str:
    """``"19L"``: draw index and side initial."""
    return f"{row['draw']}{row['side'][0].upper()}"


def summarise(rows: list[dict]) -> str:
    """Failures, gaps <= 0, and min/median/max of each measure, as text."""
    lines = [f"{len(rows)} hips ({len({r['draw'] for r in rows})} draws x sides)"]
    failed = [r for r in rows if r["error"]]
    lines.append(f"failures: {len(failed)}")
    for msg, count in Counter(r["error"] for r in failed).most_common():
        which = ", ".join(_tag(r) for r in failed if r["error"] == msg)
        lines.append(f"  {count} x {msg}  [{which}]")
    gaps = np.array([r.get("gap_mm", np.nan) for r in rows], dtype=float)
    bad = ", ".join(_tag(r) for r, g in zip(rows, gaps, strict=True) if g <= 0)
    lines.append(f"gap <= 0: {int(np.sum(gaps <= 0))}" + (f"  [{bad}]" if bad else ""))
    methods = Counter(r.get("frame_method", "") for r in rows if not r["error"])
    for method, count in methods.items():
        if not method:
            continue
        which = ""
        if "fallback" in method:
            used = [_tag(r) for r in rows if r.get("frame_method") == method and not r["error"]]
            which = f"  [{', '.join(used)}]"
        lines.append(f"frame method x {count}: {method}{which}")
    lines.append(f"{'measure':34s} {'n':>4s} {'min':>8s} {'median':>8s} {'max':>8s}")
    for key in ("gap_mm", *KEYS):
        v = np.array([r.get(key, np.nan) for r in rows], dtype=float)
        v = v[np.isfinite(v)]
        if len(v):
            lines.append(f"{key:34s} {len(v):4d} {v.min():8.2f} {np.median(v):8.2f} {v.max():8.2f}")
    return "\n".join(lines)


def write_csv(path: Path, rows: list[dict]) -> None:
    """All rows, the fixed columns first, then every other measure alphabetically."""
    fixed = ["draw", "side", "max_abs_w", "gap_mm", *KEYS]
    tail = ["frame_method", "warnings", "error", "seconds"]
    others = sorted({k for r in rows for k in r} - set(fixed) - set(tail))
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=fixed + others + tail, restval="")
        writer.writeheader()
        writer.writerows(rows)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=300, help="number of draws (default 300)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--clip", type=float, default=2.5, help="clip weights at +-SD (default 2.5)")
    p.add_argument("--subdivisions", type=int, default=8, help="mesh resolution (default 8)")
    p.add_argument("--draws", default="", help="only these draw indices, e.g. 3,19 (default all)")
    p.add_argument("--jobs", type=int, default=1, help="worker processes (default 1)")
    p.add_argument("--out", default="sweep_shapes.csv", help="CSV file to write")
    args = p.parse_args(argv)

    weights = draws(args.n, args.seed, args.clip)
    indices = [int(i) for i in args.draws.split(",")] if args.draws else range(args.n)
    tasks = [(i, weights[i], args.subdivisions) for i in indices]
    rows: list[dict] = []
    start = time.perf_counter()
    if args.jobs > 1:
        with ProcessPoolExecutor(args.jobs) as pool:
            results = pool.map(measure_draw, tasks)
            for k, r in enumerate(results, 1):
                rows += r
                _progress(k, len(tasks), r, start)
    else:
        for k, task in enumerate(tasks, 1):
            r = measure_draw(task)
            rows += r
            _progress(k, len(tasks), r, start)
            if k % 10 == 0:  # an interrupted sweep still leaves its rows
                write_csv(Path(args.out), rows)
    write_csv(Path(args.out), rows)
    print(f"\nseed {args.seed}, clip +-{args.clip} SD, subdivisions {args.subdivisions}")
    print(summarise(rows))
    print(f"wrote {args.out} in {time.perf_counter() - start:.0f} s")
    return 0


def _progress(k: int, total: int, rows: list[dict], start: float) -> None:
    status = " ".join(
        f"{r['side'][0]}:{'FAIL' if r['error'] else 'ok'}({r.get('gap_mm', float('nan')):.1f})"
        for r in rows
    )
    elapsed = time.perf_counter() - start
    print(f"[{k}/{total}] draw {rows[0]['draw']} {status}  {elapsed:.0f} s", flush=True)
    for r in rows:
        if r["error"]:
            print(f"    {r['side']}: {r['error']}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
