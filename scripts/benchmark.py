#!/usr/bin/env python
"""Timing benchmark of hipviz: the command line and the measures alone.

A script, not a test: it prints markdown tables (median and min of N
repeats after a warm-up, ``time.perf_counter``) of

a. ``hipviz measure`` on the built-in anatomy, wall time of a fresh process
   (Python start-up and imports included);
b. the same on the LHDL validation meshes, when present;
c. on built-in pelvises of about 50k, 100k and 300k triangles
   (``builtin_hip(subdivisions=n)``, pelvis triangles = 432 n^2):
   the whole ``hip.analyze`` call, the ray-cast measures alone on an
   existing caster (what re-measuring after a move costs), building a
   ``RayCaster``, and finding the landmarks and the frame.

Usage::

    python scripts/benchmark.py            # full run, about 2 minutes
    python scripts/benchmark.py --quick    # fewer repeats, no 300k pelvis
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

LHDL = Path("/work/shared/validation/lhdl_ct_staple")
LHDL_PELVIS = LHDL / "pelvis_no_sacrum.ply"
LHDL_FEMUR = LHDL / "femur_r.ply"

#: (label, subdivisions): pelvis triangles = 432 n^2.
SIZES = (("~50k", 11), ("~100k", 15), ("~300k", 26))


def bench(fn: Callable[[], object], repeats: int, warmup: int = 1) -> list[float]:
    """Seconds per call of ``fn``, ``repeats`` times after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def fmt(seconds: float) -> str:
    """Human time: ms below 1 s, else s."""
    if seconds < 1e-4:
        return f"{seconds * 1e6:.1f} µs"
    if seconds < 1.0:
        return f"{seconds * 1e3:.1f} ms" if seconds >= 0.01 else f"{seconds * 1e3:.2f} ms"
    return f"{seconds:.2f} s"


def med_min(ts: list[float]) -> str:
    return f"{fmt(statistics.median(ts))} ({fmt(min(ts))})"


def run_process(cmd: list[str]) -> Callable[[], None]:
    def call() -> None:
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            msg = f"{' '.join(cmd)} exited {proc.returncode}: {proc.stderr.strip()[-500:]}"
            raise RuntimeError(msg)

    return call


def machine_info() -> list[str]:
    import numpy as np
    import trimesh

    try:
        from importlib.metadata import version

        embree = version("embreex")
    except Exception:  # noqa: BLE001
        embree = "?"
    import hipviz

    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next(ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    return [
        f"python {platform.python_version()} ({platform.python_implementation()}) "
        f"on {platform.system()} {platform.machine()}",
        f"cpu: {cpu or '?'}; os.cpu_count() = {os.cpu_count()}"
        + (f", usable = {affinity}" if affinity is not None else ""),
        f"hipviz {getattr(hipviz, '__version__', '?')}, numpy {np.__version__}, "
        f"trimesh {trimesh.__version__}, embreex {embree}",
    ]


def cli_section(repeats: int) -> None:
    print("## a/b. `hipviz measure`, fresh process (Python start-up included)\n")
    print(f"median (min) of {repeats} runs after 1 warm-up run\n")
    print("| command | median (min) |")
    print("|---|---|")
    py = sys.executable
    rows: list[tuple[str, list[str]]] = [
        ("`python -c pass` (interpreter start-up only)", [py, "-c", "pass"]),
        (
            "`python -c 'import hipviz.hip, hipviz.anatomy, hipviz.cli'` (imports only)",
            [py, "-c", "import hipviz.hip, hipviz.anatomy, hipviz.cli"],
        ),
        ("`python -m hipviz.cli measure` (built-in)", [py, "-m", "hipviz.cli", "measure"]),
    ]
    script = shutil.which("hipviz")
    if script:
        rows.append(("`hipviz measure` (built-in, console script)", [script, "measure"]))
    notes = []
    lhdl = LHDL_PELVIS.is_file() and LHDL_FEMUR.is_file()
    if lhdl:
        files = ["--pelvis", str(LHDL_PELVIS), "--femur", str(LHDL_FEMUR)]
        rows.append(
            (
                "`python -m hipviz.cli measure --pelvis LHDL --femur LHDL`",
                [py, "-m", "hipviz.cli", "measure", *files],
            )
        )
        if script:
            rows.append(
                (
                    "`hipviz measure --pelvis LHDL --femur LHDL` (console script)",
                    [script, "measure", *files],
                )
            )
    else:
        notes.append(f"b. skipped: LHDL meshes not found in {LHDL}")
    for label, cmd in rows:
        try:
            ts = bench(run_process(cmd), repeats)
            cell = med_min(ts)
        except RuntimeError as exc:
            cell = "failed"
            notes.append(f"{label}: {exc}")
        print(f"| {label} | {cell} |", flush=True)
    if lhdl:
        import trimesh

        p = trimesh.load(LHDL_PELVIS, process=False)
        f = trimesh.load(LHDL_FEMUR, process=False)
        notes.append(f"LHDL: pelvis {len(p.faces)} triangles, femur {len(f.faces)} triangles")
    if not script:
        notes.append("the `hipviz` console script is not on PATH: only `python -m` was timed")
    print()
    for n in notes:
        print(f"- {n}")
    print()


def measure_size(label: str, n: int, repeats_slow: int, repeats_fast: int) -> dict[str, str]:
    """Time the steps of section c on ``builtin_hip(subdivisions=n)``; table cells."""
    import numpy as np

    from hipviz import frames, hip
    from hipviz import measures as ms
    from hipviz.anatomy import builtin_hip
    from hipviz.raycast import RayCaster

    t0 = time.perf_counter()
    b = builtin_hip(subdivisions=n)
    build_s = time.perf_counter() - t0
    pelvis, femur = b.pelvis, b.femur

    # (i) the whole analyze call (frame, landmarks, every measure).
    ts_analyze = bench(lambda: hip.analyze(pelvis, femur), repeats_slow)
    a = hip.analyze(pelvis, femur)
    d = a.as_dict()
    c, r, axes, reach = a.head.center_mm, a.head.radius_mm, a.axes, d["rim_reach_mm"]

    # (iii) RayCaster on the pelvis in the measurement frame. The constructor
    # is lazy: Embree builds its BVH on the first query.
    pelvis_r = hip._moved(pelvis, a.tf_ras_input)
    probe_d = axes.superior[None]
    ts_ctor = bench(lambda: RayCaster(pelvis_r), repeats_fast)
    ts_ctor_ray = bench(lambda: RayCaster(pelvis_r).first_hit(c, probe_d), repeats_slow)

    # (ii) measures alone on one caster built (and warmed) outside the timing.
    hit = RayCaster(pelvis_r).first_hit
    hit(c, probe_d)
    ts_ce = bench(lambda: ms.center_edge_angles(hit, c, axes, reach), repeats_fast)
    ts_ver = bench(lambda: ms.rim_version(hit, c, axes, reach), repeats_fast)
    ts_cov = bench(lambda: ms.head_coverage(hit, c, r, axes, n_directions=10000), repeats_fast)
    ts_sum = [x + y + z for x, y, z in zip(ts_ce, ts_ver, ts_cov, strict=True)]
    ce = ms.center_edge_angles(hit, c, axes, reach)
    ver = ms.rim_version(hit, c, axes, reach)[0]
    cov = ms.head_coverage(hit, c, r, axes, n_directions=10000).as_dict()
    check = (
        np.isclose(ce["lateral"].angle_deg, d["lcea_deg"], atol=1e-2)
        and np.isclose(ver, d["acetabular_version_deg"], atol=1e-2)
        and np.isclose(cov["sphere"], d["coverage_pct"]["sphere"], atol=1e-2)
    )

    # (iv) landmarks and frame.
    ts_app = bench(lambda: frames.find_app(pelvis.vertices), repeats_slow)
    ts_fl = bench(lambda: hip.femur_landmarks(femur), repeats_slow)

    return {
        "label": f"{label} (n={n})",
        "tri": f"{len(pelvis.faces):,} / {len(femur.faces):,}",
        "build": fmt(build_s),
        "analyze": med_min(ts_analyze),
        "ce": med_min(ts_ce),
        "ver": med_min(ts_ver),
        "cov": med_min(ts_cov),
        "sum": f"**{med_min(ts_sum)}**",
        "ctor": med_min(ts_ctor),
        "ctor_ray": med_min(ts_ctor_ray),
        "app": med_min(ts_app),
        "fl": med_min(ts_fl),
        "lm_sum": fmt(statistics.median(ts_app) + statistics.median(ts_fl)),
        "values": f"LCEA {d['lcea_deg']:.1f}°, version {d['acetabular_version_deg']:.1f}°, "
        f"coverage {d['coverage_pct']['sphere']:.1f}%",
        "check": "yes" if check else "NO",
    }


def measures_section(sizes, repeats_slow: int, repeats_fast: int) -> None:
    cols = []
    for label, n in sizes:
        cols.append(measure_size(label, n, repeats_slow, repeats_fast))
        print(f"  ... {label} done", file=sys.stderr, flush=True)

    print("## c. Measures alone, built-in anatomy at three resolutions\n")
    print(
        f"median (min) after 1 warm-up; {repeats_slow} repeats for analyze, landmarks and "
        f"caster+first ray, {repeats_fast} for the ray-cast measures\n"
    )
    print("| step | " + " | ".join(c["label"] for c in cols) + " |")
    print("|---|" + "---|" * len(cols))
    rows = [
        ("pelvis / femur triangles", "tri"),
        ("build `builtin_hip(subdivisions=n)` (once, cold; not a measure)", "build"),
        ("(i) `hip.analyze` whole call", "analyze"),
        ("(ii) `center_edge_angles` (LCEA/ACEA/PCEA)", "ce"),
        ("(ii) `rim_version` (central)", "ver"),
        ("(ii) `head_coverage` (10k directions)", "cov"),
        ("(ii) **sum: re-measure after a move**", "sum"),
        ("(iii) `RayCaster(pelvis)` constructor alone", "ctor"),
        ("(iii) `RayCaster(pelvis)` + first ray (Embree BVH build)", "ctor_ray"),
        ("(iv) `frames.find_app(pelvis.vertices)`", "app"),
        ("(iv) `hip.femur_landmarks(femur)`", "fl"),
        ("(iv) sum of medians", "lm_sum"),
        ("values (from analyze)", "values"),
        ("(ii) reproduces analyze's values", "check"),
    ]
    for name, key in rows:
        print(f"| {name} | " + " | ".join(c[key] for c in cols) + " |")
    print()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="fewer repeats and no 300k-triangle pelvis")
    args = p.parse_args(argv)
    t_start = time.perf_counter()
    cli_repeats = 3 if args.quick else 5
    slow, fast = (3, 10) if args.quick else (5, 30)
    sizes = SIZES[:2] if args.quick else SIZES

    print("# hipviz benchmark" + (" (--quick)" if args.quick else "") + "\n")
    for line in machine_info():
        print(f"- {line}")
    print()
    cli_section(cli_repeats)
    measures_section(sizes, slow, fast)
    if args.quick:
        print("- --quick: the ~300k-triangle pelvis was skipped")
    print(f"- total benchmark time {time.perf_counter() - t_start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
