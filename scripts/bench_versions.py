#!/usr/bin/env python
"""``hipviz measure`` in two or more checkouts, run in turn: CPU and wall time.

On a shared machine one version timed now and another later are not
comparable; runs interleaved (A, B, A, B, ...) share the same load. CPU time
(user + system of the child process) is the steadier figure under load; wall
time is what a user waits for on a quiet machine.

Usage::

    git worktree add --detach /tmp/old <commit>
    python scripts/bench_versions.py /tmp/old . --repeats 5
    python scripts/bench_versions.py /tmp/old . -- --pelvis P.ply --femur F.ply

Everything after ``--`` is passed to ``hipviz measure``. BLAS is pinned to
one thread in every run, as the ``hipviz`` command does, so older versions
that did not pin it are not charged for its idle threads.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path


def run_once(tree: Path, measure_args: list[str]) -> tuple[float, float]:
    """(CPU s, wall s) of one ``hipviz measure --json`` in ``tree``."""
    env = dict(os.environ, PYTHONPATH=str(tree), OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "hipviz.cli", "measure", "--json", *measure_args]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(cmd, env=env, cwd=tree, stdout=subprocess.DEVNULL, check=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return cpu, wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("trees", nargs="+", type=Path, help="checkouts of hipviz to compare")
    parser.add_argument("--repeats", type=int, default=5)
    argv = sys.argv[1:]
    cut = argv.index("--") if "--" in argv else len(argv)
    args = parser.parse_args(argv[:cut])
    extra = argv[cut + 1 :]
    trees = [t.resolve() for t in args.trees]
    times: dict[Path, list[tuple[float, float]]] = {t: [] for t in trees}
    for tree in trees:  # warm the file cache and the byte-code of each
        run_once(tree, extra)
    for _ in range(args.repeats):
        for tree in trees:
            times[tree].append(run_once(tree, extra))
    with open("/proc/loadavg") as f:
        load = f.read().split()[0]
    print(f"| checkout | CPU median (min) | wall median (min) |   load average {load}")
    print("|---|---|---|")
    for tree in trees:
        cpu = [c for c, _ in times[tree]]
        wall = [w for _, w in times[tree]]
        print(
            f"| {tree} | {statistics.median(cpu):.2f} s ({min(cpu):.2f}) "
            f"| {statistics.median(wall):.2f} s ({min(wall):.2f}) |"
        )


if __name__ == "__main__":
    main()
