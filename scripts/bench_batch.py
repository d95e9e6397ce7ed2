#!/usr/bin/env python
"""Hips per second: a plain loop in one process, and ``hipviz batch`` on 1 and 2 Dask workers.

Three ways to measure the same hips, each after its start-up (imports, the
cluster) and after one warm-up hip, so that what is compared is the work per
hip and what Dask adds to it:

- ``loop``: :func:`hipviz.batch.process_hip` on each hip, one after another,
  in this process (no Dask at all);
- ``dask-1`` and ``dask-2``: :func:`hipviz.batch.run` on a local cluster of
  1 or 2 workers (:func:`hipviz.batch.local_client`), into a fresh folder:
  tasks, the results journal, the Parquet and CSV tables, no summary.

Dask's overhead is ``dask-1`` against ``loop`` (the same one core at work).
The hips are a virtual cohort (``--sample N --seed S`` of ``hipviz batch``)
or ``--files PELVIS FEMUR``, one pair measured N times. ``--commands`` also
times whole commands from start to exit (``hipviz batch`` and a shell loop of
``hipviz measure``), start-up included. ``--memory DIR`` reads a finished
batch's rows: each worker's resident memory after its 1st, 25th... hip.

Usage::

    python scripts/bench_batch.py --n 8 --seed 0
    python scripts/bench_batch.py --n 8 --files pelvis.ply femur.ply
    python scripts/bench_batch.py --memory results/
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# The loop runs as the `hipviz` command and the workers do: BLAS on one thread
# (hipviz.cli.SINGLE_THREAD_BLAS), set before numpy is first imported.
for _name in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")


def _load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def hips(n: int, seed: int, files: list[str] | None) -> list[dict[str, str]]:
    """``n + 1`` hips (the first is the warm-up): virtual, or one file pair again and again."""
    from hipviz.batch import sample_manifest

    if files:
        pelvis, femur = (str(Path(f).resolve()) for f in files)
        return [{"id": f"pair-{i}", "pelvis": pelvis, "femur": femur} for i in range(n + 1)]
    return sample_manifest(n + 1, seed)


def time_loop(rows: list[dict[str, str]]) -> tuple[float, list[float], float]:
    """(wall seconds, seconds per hip, CPU seconds) of process_hip on rows[1:] in this process.

    The CPU seconds (this process, all its threads) vary less than the wall
    clock on a machine shared with other work.
    """
    from hipviz import batch

    tasks = batch.make_tasks(rows, {})
    batch.process_hip(tasks[0])  # warm-up: imports and first-call caches
    t0, c0 = time.perf_counter(), time.process_time()
    per = [batch.process_hip(t)["seconds"] for t in tasks[1:]]
    return time.perf_counter() - t0, per, time.process_time() - c0


def time_dask(rows: list[dict[str, str]], workers: int) -> tuple[float, list[float], float]:
    """(wall seconds, seconds per hip in its worker, cluster start seconds) of batch.run."""
    from hipviz import batch

    t0 = time.perf_counter()
    with batch.local_client(workers) as client:
        start = time.perf_counter() - t0
        (warm,) = batch.make_tasks(rows[:1], {})
        client.run(batch.process_hip, warm)  # the same warm-up hip, in every worker
        with tempfile.TemporaryDirectory() as tmp:
            t1 = time.perf_counter()
            res = batch.run(rows[1:], tmp, client=client, summary=False, progress=False)
            wall = time.perf_counter() - t1
    assert (res.table["error"] == "").all(), res.table["error"].tolist()
    return wall, res.table["seconds"].tolist(), start


def time_commands(n: int, seed: int) -> dict[str, float]:
    """Wall seconds of whole commands, start-up included (virtual hips only)."""
    from hipviz.batch import sample_manifest

    def hipviz(*args: str) -> list[str]:
        return [sys.executable, "-m", "hipviz.cli", *args]

    out = {}
    for workers in (1, 2):
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            cmd = hipviz(
                "batch", "--sample", str(n), "--seed", str(seed), "--workers", str(workers)
            )
            subprocess.run([*cmd, "--out", tmp, "--no-summary"], check=True, cwd=ROOT)
            out[f"hipviz batch --workers {workers}"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    for row in sample_manifest(n, seed):
        subprocess.run(
            hipviz("measure", "--modes", row["modes"], "--json"),
            check=True,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
        )
    out["shell loop of hipviz measure"] = time.perf_counter() - t0
    return out


def memory(folder: Path, at: tuple[int, ...] = (1, 25, 50, 100, 250)) -> None:
    """Each worker's resident and peak memory after its hip number ``at`` (and its last)."""
    import pandas as pd

    df = pd.read_json(folder / "results.jsonl", lines=True)
    df = df.sort_values("finished_at", kind="stable")
    print(f"{len(df)} hips in {folder}")
    for worker, g in df.groupby("worker", sort=False):
        g = g.reset_index(drop=True)
        marks = [i for i in at if i <= len(g)] + [len(g)]
        cells = ", ".join(
            f"#{i}: {g.loc[i - 1, 'worker_rss_mb']:.0f}"
            f" (peak {g.loc[i - 1, 'worker_peak_rss_mb']:.0f})"
            for i in dict.fromkeys(marks)
        )
        print(f"  worker {worker}: MB after hip {cells}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=8, help="hips timed (default 8), after one warm-up")
    p.add_argument("--seed", type=int, default=0, help="seed of the virtual cohort (default 0)")
    p.add_argument("--files", nargs=2, metavar=("PELVIS", "FEMUR"), help="one pair, N times")
    p.add_argument("--commands", action="store_true", help="also time whole commands")
    p.add_argument(
        "--order",
        default="loop,dask-1,dask-2",
        help="order of the runs (default loop,dask-1,dask-2)",
    )
    p.add_argument("--memory", metavar="DIR", help="only: memory per worker of a finished batch")
    args = p.parse_args(argv)
    if args.memory:
        memory(Path(args.memory))
        return 0
    rows = hips(args.n, args.seed, args.files)
    what = f"the pair {args.files[0]}" if args.files else f"virtual hips, seed {args.seed}"
    print(f"{args.n} hips ({what}); load average before: {_load()}")
    results: dict[str, tuple[float, list[float]]] = {}
    for step in args.order.split(","):  # on a shared machine the load drifts: vary the order
        if step == "loop":
            wall, per, cpu = time_loop(rows)
            results["loop (one process, no Dask)"] = (wall, per)
            print(f"  loop done ({cpu / args.n:.2f} CPU s a hip), load {_load()}")
        else:
            workers = int(step.removeprefix("dask-"))
            wall, per, start = time_dask(rows, workers)
            results[f"dask, {workers} worker(s)"] = (wall, per)
            print(f"  dask {workers} done (cluster start {start:.1f} s), load {_load()}")
    print(f"\n{'':30s} {'wall s':>7s} {'hips/s':>7s} {'median s/hip':>13s}")
    for name, (wall, per) in sorted(results.items()):
        print(f"{name:30s} {wall:7.1f} {args.n / wall:7.3f} {statistics.median(per):13.2f}")
    loop = results.get("loop (one process, no Dask)", (None,))[0]
    one = results.get("dask, 1 worker(s)", (None,))[0]
    two = results.get("dask, 2 worker(s)", (None,))[0]
    if loop and one:  # --order may leave runs out
        print(f"\nDask overhead, 1 worker against the loop: {100 * (one - loop) / loop:+.1f} %")
    if one and two:
        print(f"2 workers against 1: {one / two:.2f}x")
    print(f"load average after: {_load()}")
    if args.commands:
        print("\nwhole commands, start-up included:")
        for name, wall in time_commands(args.n, args.seed).items():
            print(f"  {name:32s} {wall:7.1f} s  {args.n / wall:6.3f} hips/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
