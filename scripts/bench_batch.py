#!/usr/bin/env python
"""Hips per minute: ``hipviz batch`` at 1 and 2 Dask workers vs a shell loop of ``hipviz measure``.

The hips are a virtual cohort (``--sample N --seed S``: built-in hips with
random shape modes, the draws of ``scripts/sweep_shapes.py``). Every run is
a fresh command, timed on the wall clock from start to exit, so each one
pays its own start-up: interpreter and imports for every ``hipviz measure``
of the loop, the cluster once for a batch. Each hip's own seconds (inside
its worker) are read from the results too.

Usage::

    python scripts/bench_batch.py --n 8 --seed 0
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _hipviz(*args: str) -> list[str]:
    return [sys.executable, "-m", "hipviz.cli", *args]


def time_batch(n: int, seed: int, workers: int) -> tuple[float, float]:
    """(wall seconds, median seconds per hip inside its worker) of one batch command."""
    import pandas as pd

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        cmd = _hipviz("batch", "--sample", str(n), "--seed", str(seed), "--workers", str(workers))
        subprocess.run([*cmd, "--out", tmp, "--no-summary"], check=True, cwd=ROOT)
        wall = time.perf_counter() - t0
        df = pd.read_parquet(Path(tmp) / "results.parquet")
        assert (df["error"] == "").all(), df["error"].tolist()
        return wall, float(df["seconds"].median())


def time_loop(n: int, seed: int) -> float:
    """Wall seconds of ``hipviz measure --modes ... --json`` once per hip, one after another."""
    from hipviz.batch import sample_manifest

    t0 = time.perf_counter()
    for row in sample_manifest(n, seed):
        subprocess.run(
            _hipviz("measure", "--modes", row["modes"], "--json"),
            check=True,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
        )
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=8, help="virtual hips (default 8)")
    p.add_argument("--seed", type=int, default=0, help="seed of the cohort (default 0)")
    args = p.parse_args(argv)
    results = {}
    for workers in (1, 2):
        wall, per_hip = time_batch(args.n, args.seed, workers)
        results[f"batch, {workers} worker(s)"] = wall
        print(
            f"batch {workers} worker(s): {wall:.1f} s, median {per_hip:.1f} s per hip in its worker"
        )
    results["shell loop of hipviz measure"] = time_loop(args.n, args.seed)
    print(f"\n{args.n} virtual hips (seed {args.seed}), wall clock per command:")
    for name, wall in results.items():
        print(f"  {name:32s} {wall:7.1f} s  {60 * args.n / wall:6.1f} hips/min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
