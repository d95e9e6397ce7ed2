"""Range-of-motion timings on the built-in hip (medians): the limits table, after a move, a pose.

PYTHONPATH=. python scripts/bench_rom.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import statistics
import time

from hipviz import osteotomy as ost
from hipviz.anatomy import builtin_hip
from hipviz.simulate import Simulation


def _median(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    hip = builtin_hip(side="left")
    sim = Simulation(hip.pelvis, hip.femur)
    t0 = time.perf_counter()
    model = sim.motion()
    print(f"collision structures, first build: {1e3 * (time.perf_counter() - t0):.0f} ms")
    print(f"limits table, built-in hip: {1e3 * _median(model.limits, args.repeat):.0f} ms")
    sim.cut("pao")
    outcome = sim.move(ost.AcetabularMove(lateral_deg=20, anterior_deg=5))
    sim.motion(outcome)  # builds the fragment's and the rest's structures once

    def after_move():
        out = sim.move(ost.AcetabularMove(lateral_deg=25, anterior_deg=10))
        sim.motion(out).limits()

    print(f"move + limits table after it: {1e3 * _median(after_move, args.repeat):.0f} ms")
    moved = sim.motion(outcome)
    print(
        "one pose query (slider): "
        f"{1e3 * _median(lambda: moved.query(60.0, 5.0, 20.0), 50 * args.repeat):.2f} ms"
    )


if __name__ == "__main__":
    main()
