#!/usr/bin/env python
"""Speed of osteotomy planning: moves, re-cuts and the ``simulate`` command.

A script, not a test. On the built-in hip at several resolutions
(``builtin_hip(subdivisions=n)``, pelvis triangles = 432 n^2) it times, with
``time.perf_counter``, the median and 90th percentile of ``--reps`` runs
after ``--warmup`` untimed ones:

1. ``Simulation.move`` with a PAO move and every measure (the angles change a
   little at each run, so nothing can be reused);
2. the same with a femoral move as well (femur cut beforehand);
3. a pelvic re-cut, ``Simulation.cut("pao", adjust)`` with a slightly
   different iliac offset each time, and the first move after it (Embree
   builds the pieces' acceleration structures on their first query), apart
   and together;
4. a femoral re-cut, ``Simulation.cut_femur(level)``, and the first move after it;
5. building a ``Simulation`` (``--construct-reps`` runs), and the wall time of
   ``hipviz simulate --pao lateral=20,anterior=5,medial=3 --json`` in a fresh
   process (``--cli-runs`` runs after one warm-up).

It prints markdown tables and, with ``--json-out PATH``, writes the numbers
as JSON. ``--profile`` adds a profile of the re-cut (cut + first move) at
``--profile-sizes``: functions from cProfile, and line timings of the cut,
of a steady move and of a move with a femoral move, where time spent in
compiled extensions (manifold3d, Embree) shows up on the line that calls
them. Both profilers slow Python calls down; read their numbers as shares.

Usage::

    python scripts/bench_simulate.py --quick                  # smoke run, N=8 only
    python scripts/bench_simulate.py --json-out bench.json    # full run, about 2 minutes
    python scripts/bench_simulate.py --profile                # and the profile at N=8, 15
    python scripts/bench_simulate.py --cpus 0                 # on one CPU (busy machine)
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import json
import linecache
import os
import platform
import pstats
import shutil
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from pathlib import Path
from types import CodeType
from typing import Any

import numpy as np

#: (subdivisions, label): pelvis triangles = 432 n^2.
SIZES = {8: "default", 11: "~50k", 15: "~100k", 26: "~300k"}
#: The PAO move timed (degrees, mm), as in the ``simulate`` command below.
PAO = {"lateral_deg": 20.0, "anterior_deg": 5.0, "medial_mm": 3.0}
VARUS_DEG = 10.0
ILIAC_OFFSET_MM = 3.0
CLI_ARGS = ["simulate", "--pao", "lateral=20,anterior=5,medial=3", "--json"]
#: Targets at the default resolution, ms (median).
TARGETS_MS = {"move": 20.0, "cut_first_move": 150.0}


# --------------------------------------------------------------------------- timing helpers


def summary(seconds: list[float]) -> dict[str, Any]:
    """Median, 90th percentile, min and max (ms) of timings in seconds."""
    ms = np.asarray(seconds) * 1e3
    return {
        "median_ms": round(float(np.median(ms)), 3),
        "p90_ms": round(float(np.percentile(ms, 90)), 3),
        "min_ms": round(float(ms.min()), 3),
        "max_ms": round(float(ms.max()), 3),
        "n": len(ms),
        "samples_ms": [round(float(v), 3) for v in ms],
    }


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    """(seconds, result) of one call."""
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def repeat(step: Callable[[int], dict[str, float]], reps: int, warmup: int) -> dict[str, list]:
    """Run ``step(i)`` ``warmup`` + ``reps`` times; collect the timings of the last ``reps``.

    ``step`` returns named durations (s); run ``i`` of the timed ones gets
    ``i >= warmup`` so every call sees fresh arguments.
    """
    out: dict[str, list[float]] = defaultdict(list)
    gc.collect()
    for i in range(warmup + reps):
        times = step(i)
        if i >= warmup:
            for key, value in times.items():
                out[key].append(value)
    return out


def load() -> list[float]:
    """1, 5 and 15 minute load averages."""
    return [round(v, 2) for v in os.getloadavg()]


def cell(stats: dict[str, Any] | None) -> str:
    """Table cell: ``median (p90)`` in ms."""
    if stats is None:
        return "-"
    return f"{stats['median_ms']:.1f} ({stats['p90_ms']:.1f})"


# --------------------------------------------------------------------------- moves and cuts


def pao_move(i: int):
    """The timed PAO move, turned a little further at each run."""
    from hipviz import osteotomy as ost

    return ost.AcetabularMove(
        lateral_deg=PAO["lateral_deg"] + 0.01 * i,
        anterior_deg=PAO["anterior_deg"] + 0.005 * i,
        medial_mm=PAO["medial_mm"],
    )


def femoral_move(i: int):
    """The timed femoral move (varus), changed a little at each run."""
    from hipviz import osteotomy as ost

    return ost.FemoralMove(varus_deg=VARUS_DEG + 0.01 * i)


def iliac_adjust(i: int):
    """Cut adjustment: the iliac cut moved by a slightly different offset at each run."""
    from hipviz import osteotomy as ost

    return ost.CutAdjustments(iliac=ost.CutAdjust(offset_mm=ILIAC_OFFSET_MM + 0.02 * i))


def femoral_level(sim, i: int) -> float:
    """Femoral cut level near the default one, a little lower at each run, mm."""
    from hipviz import osteotomy as ost

    return ost.FEMORAL_LEVEL_RADII * sim.radius_mm + 0.05 * i


def bench_move(sim, reps: int, warmup: int, *, femoral: bool) -> dict[str, list]:
    """``move`` timings: a PAO move, and with ``femoral`` a varus move of the shaft too."""

    def step(i: int) -> dict[str, float]:
        fem = femoral_move(i) if femoral else None
        return {"move": timed(lambda: sim.move(pao_move(i), fem))[0]}

    return repeat(step, reps, warmup)


def bench_recut(sim, reps: int, warmup: int) -> dict[str, list]:
    """Pelvic re-cut timings: ``cut``, the first ``move`` after it, and both."""

    def step(i: int) -> dict[str, float]:
        t_cut, _ = timed(lambda: sim.cut("pao", iliac_adjust(i)))
        t_move, _ = timed(lambda: sim.move(pao_move(i)))
        return {"cut": t_cut, "first_move": t_move, "cut_first_move": t_cut + t_move}

    return repeat(step, reps, warmup)


def bench_femoral_recut(sim, reps: int, warmup: int) -> dict[str, list]:
    """Femoral re-cut timings: ``cut_femur``, and it plus the first (femoral) move."""

    def step(i: int) -> dict[str, float]:
        t_cut, _ = timed(lambda: sim.cut_femur(femoral_level(sim, i)))
        t_move, _ = timed(lambda: sim.move(pao_move(i), femoral_move(i)))
        return {"femoral_cut": t_cut, "femoral_cut_first_move": t_cut + t_move}

    return repeat(step, reps, warmup)


def bench_construct(pelvis, femur, reps: int) -> tuple[list[float], Any]:
    """``Simulation(pelvis, femur)`` timings (one untimed run first) and the last one built."""
    from hipviz.simulate import Simulation

    sim = Simulation(pelvis, femur)
    out = []
    for _ in range(reps):
        del sim
        gc.collect()
        t, sim = timed(lambda: Simulation(pelvis, femur))
        out.append(t)
    return out, sim


def reference_values(sim) -> dict[str, Any]:
    """Measures after the reference PAO move, to spot a benchmark that measures nonsense."""
    out = sim.move(pao_move(0))
    cut = sim.pelvis_cut
    return {
        "lcea_before_deg": round(float(out.before["lcea_deg"]), 2),
        "lcea_after_deg": round(float(out.after["lcea_deg"]), 2),
        "coverage_after_pct": round(float(out.after["coverage_pct"]["sphere"]), 2),
        "fragment_triangles": len(cut.fragment.faces),
        "rest_triangles": len(cut.rest.faces),
        "warnings": list(out.warnings),
    }


def bench_size(n: int, reps: int, warmup: int, construct_reps: int) -> dict[str, Any]:
    """Every in-process timing at one resolution (the order keeps the femur uncut for 1 and 3)."""
    from hipviz.anatomy import builtin_hip

    load_before = load()
    t_build, hip = timed(lambda: builtin_hip(side="left", subdivisions=n))
    t_construct, sim = bench_construct(hip.pelvis, hip.femur, construct_reps)
    sim.cut("pao", iliac_adjust(0))
    times: dict[str, list[float]] = {"construct": t_construct}
    times.update(bench_move(sim, reps, warmup, femoral=False))
    times.update(bench_recut(sim, reps, warmup))
    values = reference_values(sim)
    sim.cut_femur()
    times["move_femoral"] = bench_move(sim, reps, warmup, femoral=True)["move"]
    times.update(bench_femoral_recut(sim, reps, warmup))
    return {
        "subdivisions": n,
        "label": SIZES.get(n, f"n={n}"),
        "pelvis_triangles": len(hip.pelvis.faces),
        "femur_triangles": len(hip.femur.faces),
        "builtin_hip_s": round(t_build, 3),
        "load_before": load_before,
        "load_after": load(),
        "values": values,
        "timings": {key: summary(value) for key, value in times.items()},
    }


# --------------------------------------------------------------------------- command line


def cli_command() -> list[str]:
    """The ``hipviz`` console script next to this interpreter, else ``python -m hipviz.cli``."""
    script = Path(sys.executable).with_name("hipviz")
    if script.is_file():
        return [str(script)]
    found = shutil.which("hipviz")
    return [found] if found else [sys.executable, "-m", "hipviz.cli"]


def run_cli(cmd: list[str]) -> tuple[float, float]:
    """(wall seconds, the command's own ``seconds``) of one ``simulate`` run."""
    t, proc = timed(lambda: subprocess.run(cmd, capture_output=True, text=True, check=False))
    if proc.returncode != 0:
        msg = f"{' '.join(cmd)} exited {proc.returncode}: {proc.stderr.strip()[-500:]}"
        raise RuntimeError(msg)
    return t, float(json.loads(proc.stdout)["seconds"])


def bench_cli(runs: int) -> dict[str, Any]:
    """Wall time of ``hipviz simulate ... --json`` in fresh processes (one warm-up run)."""
    cmd = cli_command() + CLI_ARGS
    run_cli(cmd)
    wall, inner = zip(*(run_cli(cmd) for _ in range(runs)), strict=True)
    return {
        "command": " ".join(["hipviz", *CLI_ARGS]),
        "executable": cmd[0],
        "wall": summary(list(wall)),
        "reported_seconds": summary(list(inner)),
        "load_after": load(),
    }


# --------------------------------------------------------------------------- report


TABLE_COLUMNS = (
    ("move ms", "move"),
    ("move+femoral ms", "move_femoral"),
    ("cut ms", "cut"),
    ("first move ms", "first_move"),
    ("cut+first move ms", "cut_first_move"),
    ("femoral cut ms", "femoral_cut"),
    ("femoral cut+first move ms", "femoral_cut_first_move"),
    ("Simulation() ms", "construct"),
)


def results_table(sizes: list[dict[str, Any]]) -> list[str]:
    """Markdown table: one row per resolution, ``median (p90)`` cells."""
    head = ["resolution", "pelvis triangles", *(name for name, _ in TABLE_COLUMNS)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for s in sizes:
        cells = [cell(s["timings"].get(key)) for _, key in TABLE_COLUMNS]
        row = [f"N={s['subdivisions']} ({s['label']})", f"{s['pelvis_triangles']:,}", *cells]
        lines.append("| " + " | ".join(row) + " |")
    return lines


def size_notes(sizes: list[dict[str, Any]]) -> list[str]:
    """Per-resolution context: pieces, values after the move, load."""
    out = []
    for s in sizes:
        v = s["values"]
        out.append(
            f"- N={s['subdivisions']}: femur {s['femur_triangles']:,} triangles; fragment "
            f"{v['fragment_triangles']:,} / rest {v['rest_triangles']:,}; LCEA "
            f"{v['lcea_before_deg']:.1f} -> {v['lcea_after_deg']:.1f} deg; load "
            f"{s['load_before'][0]:.2f} -> {s['load_after'][0]:.2f}"
        )
    return out


def target_lines(sizes: list[dict[str, Any]]) -> list[str]:
    """Whether the default resolution meets the targets."""
    default = next((s for s in sizes if s["subdivisions"] == 8), None)
    if default is None:
        return []
    out = []
    for key, target in TARGETS_MS.items():
        got = default["timings"][key]["median_ms"]
        verdict = "met" if got <= target else "MISSED"
        out.append(f"- target {key} <= {target:.0f} ms at N=8: median {got:.1f} ms, {verdict}")
    return out


def cli_lines(cli: dict[str, Any] | None) -> list[str]:
    """The ``simulate`` command's wall time."""
    if cli is None:
        return []
    wall, inner = cli["wall"], cli["reported_seconds"]
    return [
        f"- `{cli['command']}` (fresh process, {wall['n']} runs): wall median "
        f"{wall['median_ms']:.0f} ms (p90 {wall['p90_ms']:.0f}); its own `seconds` "
        f"(Simulation + cut + move + fixation) median {inner['median_ms']:.0f} ms",
    ]


def git_commit() -> str | None:
    """Commit of the checkout this script lives in (``+dirty`` with local library changes)."""
    root = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no", "hipviz"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return head + ("+dirty" if dirty else "")


def machine_info() -> dict[str, Any]:
    """Python, CPU and library versions."""
    from importlib.metadata import PackageNotFoundError, version

    libs = {}
    for name in ("hipviz", "numpy", "trimesh", "embreex", "manifold3d", "scipy"):
        try:
            libs[name] = version(name)
        except PackageNotFoundError:
            libs[name] = None
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    return {
        "commit": git_commit(),
        "python": platform.python_version(),
        "platform": f"{platform.system()} {platform.machine()}",
        "cpu_count": os.cpu_count(),
        "usable_cpus": usable,
        "libraries": libs,
    }


# --------------------------------------------------------------------------- profile


def code_objects(functions: Iterable[Callable]) -> set[CodeType]:
    """Code objects of ``functions`` and of the functions defined inside them."""
    out: set[CodeType] = set()
    todo = [getattr(f, "__code__", None) for f in functions]
    while todo:
        code = todo.pop()
        if code is None or code in out:
            continue
        out.add(code)
        todo.extend(c for c in code.co_consts if isinstance(c, CodeType))
    return out


class LineTimer:
    """Inclusive wall time per source line of chosen functions (``sys.settrace``).

    Time spent in compiled code called from a line counts on that line, which
    cProfile cannot show for extension functions it does not see.
    """

    def __init__(self, functions: Iterable[Callable]):
        self.codes = code_objects(functions)
        self.totals: dict[tuple[str, int], float] = defaultdict(float)

    def _local(self) -> Callable:
        state: dict[str, Any] = {"line": None, "t": 0.0}

        def trace(frame, event, arg):
            now = time.perf_counter()
            if state["line"] is not None:
                self.totals[(frame.f_code.co_filename, state["line"])] += now - state["t"]
            state["line"] = frame.f_lineno if event == "line" else None
            state["t"] = time.perf_counter()
            return trace

        return trace

    def _global(self, frame, event, arg):
        return self._local() if event == "call" and frame.f_code in self.codes else None

    def __enter__(self) -> LineTimer:
        sys.settrace(self._global)
        return self

    def __exit__(self, *exc) -> None:
        sys.settrace(None)

    def top(self, count: int, per: int) -> list[dict[str, Any]]:
        """The ``count`` slowest lines, ms per run over ``per`` runs."""
        rows = sorted(self.totals.items(), key=lambda kv: -kv[1])[:count]
        return [
            {
                "where": f"{short_path(path)}:{line}",
                "ms": round(total * 1e3 / per, 2),
                "source": linecache.getline(path, line).strip(),
            }
            for (path, line), total in rows
        ]


def short_path(path: str) -> str:
    """``hipviz/x.py`` or ``trimesh/x.py`` instead of an absolute path."""
    parts = Path(path).parts
    for anchor in ("site-packages", "main"):
        if anchor in parts:
            return "/".join(parts[len(parts) - parts[::-1].index(anchor) :])
    return path


def function_rows(profile: cProfile.Profile, key: str, count: int, per: int) -> list[dict]:
    """Top functions of a cProfile run by ``key`` (``"tottime"`` or ``"cumtime"``), per run.

    This script's own functions (the loop around the re-cuts) are left out.
    """
    stats = pstats.Stats(profile).stats  # type: ignore[attr-defined]
    index = 2 if key == "tottime" else 3
    own = os.path.abspath(__file__)
    mine = [kv for kv in stats.items() if os.path.abspath(kv[0][0]) != own]
    rows = sorted(mine, key=lambda kv: -kv[1][index])[:count]
    return [
        {
            "function": f"{short_path(path)}:{line}({name})",
            "calls": round(nc / per, 1),
            "self_ms": round(tt * 1e3 / per, 2),
            "cumulative_ms": round(ct * 1e3 / per, 2),
        }
        for (path, line, name), (_cc, nc, tt, ct, _callers) in rows
    ]


def profiled_sim(n: int):
    """A simulation at resolution ``n``, cut and moved a few times (warm)."""
    from hipviz.anatomy import builtin_hip
    from hipviz.simulate import Simulation

    hip = builtin_hip(side="left", subdivisions=n)
    sim = Simulation(hip.pelvis, hip.femur)
    for i in range(3):
        recut(sim, i)
    return hip, sim


def recut(sim, i: int) -> None:
    """One re-cut as timed above: ``cut`` then the first move."""
    sim.cut("pao", iliac_adjust(i))
    sim.move(pao_move(i))


def femoral_move_lines(sim, runs: int) -> LineTimer:
    """Line timings of steady PAO + femoral moves (the femur cut, then 3 untimed moves)."""
    from hipviz.simulate import Simulation

    sim.cut_femur()
    for i in range(3):
        sim.move(pao_move(i), femoral_move(i))
    timer = LineTimer(
        f for f in (Simulation.move, getattr(Simulation, "_distal_gap", None)) if f is not None
    )
    with timer:
        for i in range(runs):
            sim.move(pao_move(i), femoral_move(i))
    return timer


def profile_size(n: int, runs: int, count: int) -> dict[str, Any]:
    """cProfile functions and line timings of ``runs`` re-cuts at resolution ``n``."""
    from hipviz import osteotomy as ost
    from hipviz import raycast
    from hipviz.hip import acetabular_measures
    from hipviz.simulate import Simulation

    hip, sim = profiled_sim(n)
    plain = repeat(lambda i: {"t": timed(lambda: recut(sim, i))[0]}, runs, 0)["t"]
    profile = cProfile.Profile()
    profile.runcall(lambda: [recut(sim, i) for i in range(runs)])
    lines = LineTimer(
        [
            Simulation.cut,
            Simulation.move,
            ost.cut_pelvis,
            ost._to_trimesh,
            ost._cut_face,
            raycast.RayCaster._cast,
        ]
    )
    with lines:
        for i in range(runs):
            recut(sim, i)
    moves = LineTimer([Simulation.move, acetabular_measures])
    with moves:
        for i in range(runs):
            sim.move(pao_move(i))
    femoral = femoral_move_lines(sim, runs)
    return {
        "subdivisions": n,
        "pelvis_triangles": len(hip.pelvis.faces),
        "runs": runs,
        "move_lines": moves.top(count, runs),
        "femoral_move_lines": femoral.top(count, runs),
        "unprofiled": summary(plain),
        "by_self_time": function_rows(profile, "tottime", count, runs),
        "by_cumulative_time": function_rows(profile, "cumtime", count, runs),
        "lines": lines.top(count, runs),
    }


def function_row(r: dict[str, Any]) -> str:
    """Markdown row of one profiled function."""
    return f"| `{r['function']}` | {r['calls']:g} | {r['self_ms']:.2f} | {r['cumulative_ms']:.2f} |"


def line_row(r: dict[str, Any]) -> str:
    """Markdown row of one timed source line."""
    return f"| `{r['where']}` | {r['ms']:.2f} | `{r['source']}` |"


def profile_lines(prof: dict[str, Any]) -> list[str]:
    """Markdown of one profile."""
    out = [
        f"### Re-cut profile, N={prof['subdivisions']} ({prof['pelvis_triangles']:,} pelvis "
        f"triangles): cut + first move, {prof['runs']} runs, unprofiled median "
        f"{prof['unprofiled']['median_ms']:.1f} ms\n",
    ]
    for title, key in (("self", "by_self_time"), ("cumulative", "by_cumulative_time")):
        out += [
            f"cProfile, by {title} time (ms per re-cut; cProfile adds overhead per Python call)\n",
            "| function | calls | self ms | cumulative ms |",
            "|---|---|---|---|",
        ]
        out += [function_row(r) for r in prof[key]]
        out.append("")
    out += [
        "Lines of the re-cut (inclusive ms per re-cut, compiled calls included)\n",
        "| line | ms | source |",
        "|---|---|---|",
    ]
    out += [line_row(r) for r in prof["lines"]]
    out += [
        "",
        "Lines of a steady move after the re-cuts (inclusive ms per move)\n",
        "| line | ms | source |",
        "|---|---|---|",
    ]
    out += [line_row(r) for r in prof["move_lines"]]
    out += [
        "",
        "Lines of a steady PAO + femoral move (inclusive ms per move)\n",
        "| line | ms | source |",
        "|---|---|---|",
    ]
    out += [line_row(r) for r in prof["femoral_move_lines"]]
    return [*out, ""]


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="smoke run: N=8 only, few repetitions")
    p.add_argument("--sizes", type=int, nargs="+", help="subdivisions (default 8 11 15 26)")
    p.add_argument("--reps", type=int, help="timed repetitions (default 30, quick 5)")
    p.add_argument("--warmup", type=int, default=3, help="untimed runs first (default 3)")
    p.add_argument("--construct-reps", type=int, help="Simulation() runs (default 5, quick 2)")
    p.add_argument("--cli-runs", type=int, help="simulate command runs (default 5, quick 2)")
    p.add_argument("--no-cli", action="store_true", help="skip the simulate command")
    p.add_argument("--json-out", type=Path, metavar="PATH", help="write the numbers as JSON")
    p.add_argument(
        "--cpus",
        type=int,
        nargs="+",
        metavar="CPU",
        help="run on these CPUs only (fewer threads in Embree and manifold3d; steadier "
        "numbers on a busy machine)",
    )
    p.add_argument("--profile", action="store_true", help="profile the re-cut as well")
    p.add_argument("--profile-sizes", type=int, nargs="+", default=[8, 15], metavar="N")
    p.add_argument("--profile-runs", type=int, default=10, help="re-cuts profiled (default 10)")
    p.add_argument("--profile-top", type=int, default=15, help="rows per profile table")
    args = p.parse_args(argv)
    args.sizes = args.sizes or ([8] if args.quick else list(SIZES))
    args.reps = args.reps or (5 if args.quick else 30)
    args.construct_reps = args.construct_reps or (2 if args.quick else 5)
    args.cli_runs = args.cli_runs or (2 if args.quick else 5)
    return args


def report(result: dict[str, Any]) -> list[str]:
    """Markdown of the timings."""
    cfg = result["config"]
    return [
        "# hipviz simulate benchmark" + (" (--quick)" if cfg["quick"] else "") + "\n",
        f"median (p90) in ms of {cfg['reps']} runs after {cfg['warmup']} warm-ups "
        f"(Simulation(): {cfg['construct_reps']} runs after 1); PAO move "
        f"lateral 20, anterior 5, medial 3 (+ varus {VARUS_DEG:g}), iliac offset "
        f"{ILIAC_OFFSET_MM:g} mm, each varied slightly per run; first move = the move "
        f"after a cut, Embree builds the new pieces' structures in it\n",
        *results_table(result["sizes"]),
        "",
        *target_lines(result["sizes"]),
        *cli_lines(result["cli"]),
        *size_notes(result["sizes"]),
        f"- machine: {json.dumps(result['machine'])}; CPUs used: {cfg['cpus'] or 'all'}",
        f"- load average (1, 5, 15 min) at start {result['load_start']}, at end "
        f"{result['load_end']}; total {result['total_s']:.0f} s",
        "",
    ]


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; print markdown; optionally write JSON."""
    args = parse_args(argv)
    if args.cpus:
        os.sched_setaffinity(0, set(args.cpus))  # before Embree and manifold3d start threads
    t_start = time.perf_counter()
    result: dict[str, Any] = {
        "config": {
            k: getattr(args, k)
            for k in ("quick", "sizes", "reps", "warmup", "construct_reps", "cpus")
        },
        "machine": machine_info(),
        "load_start": load(),
        "sizes": [],
        "cli": None,
        "profile": [],
    }
    for n in args.sizes:
        result["sizes"].append(bench_size(n, args.reps, args.warmup, args.construct_reps))
        print(f"  ... N={n} done", file=sys.stderr, flush=True)
    if not args.no_cli:
        result["cli"] = bench_cli(args.cli_runs)
    result["load_end"] = load()
    result["total_s"] = round(time.perf_counter() - t_start, 1)
    print("\n".join(report(result)), flush=True)
    if args.profile:
        for n in args.profile_sizes:
            result["profile"].append(profile_size(n, args.profile_runs, args.profile_top))
            print("\n".join(profile_lines(result["profile"][-1])), flush=True)
    if args.json_out:
        args.json_out.write_text(json.dumps(result, indent=1) + "\n")
        print(f"wrote {args.json_out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
