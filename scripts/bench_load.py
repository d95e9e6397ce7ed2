#!/usr/bin/env python
"""Speed of the app's Load view: a fragment move with contact pressure, server and browser.

A script, not a test. On the dysplastic teaching case with a PAO, one-legged
stance, 70 kg:

1. **server** (no browser): per "Lateral turn" move, the measure alone
   (``HipSession.measure_moves``), the Load view's work on it
   (``LoadView.compute``: springs moved, load in the new pose, solve, colours;
   target: measure + pressure <= 25 ms), the DEA solve alone, and the
   pressure colours computed on the event loop for the move's picture;
2. **browser** (headless Chromium, software WebGL, as ``bench_app.py``): the
   "Lateral turn" slider (PageUp/PageDown, 2.5° a press) -> the frame that
   draws the new pressure colours (target <= 60 ms median), with a load and,
   back to back, without one (the frame that draws the head's coverage
   colours, which wait for the measure). With a load the pressure colours
   go with the move's matrices (computed on the event loop from the cut's
   springs), so they are drawn in the move's first frame.

Usage::

    python scripts/bench_load.py              # 20 moves of each
    python scripts/bench_load.py --repeats 8 --no-browser
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

PLAN = {"case": "dysplastic", "procedure": "pao"}
LOAD = "one-leg-stance"
#: Keys that walk the slider 0 -> +10 -> 0 degrees in 2.5 degree steps.
WALK = ["PageUp"] * 4 + ["PageDown"] * 4
TARGETS = {"server": 25.0, "browser": 60.0}


def med(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def p90(values: list[float]) -> float:
    return statistics.quantiles(values, n=10)[-1] if len(values) > 1 else float("nan")


def bench_server(repeats: int) -> dict[str, list[float]]:
    """ms per move: measure, pressure (LoadView.compute), and the solve alone."""
    from hipviz import contact
    from hipviz.app.main import HipApp
    from hipviz.app.state import Plan

    app = HipApp(Plan(**PLAN, load=LOAD))
    session, view = app.session, app.load_view
    out: dict[str, list[float]] = {
        "measure": [],
        "pressure": [],
        "solve": [],
        "total": [],
        "move colours (event loop)": [],
    }
    angles = [2.5 * (i % 9) for i in range(repeats + 1)]
    for i, angle in enumerate(angles):
        app.plan.pao_lateral = angle
        moves = session.moves(app.plan)
        t0 = time.perf_counter()
        outcome = session.measure_moves(*moves)
        t1 = time.perf_counter()
        state = view.compute(outcome)
        t2 = time.perf_counter()
        after = state.after
        contact.solve_contact(
            after.surface, after.head_center_mm, after.load.force_n, axes=session.sim.analysis.axes
        )
        t3 = time.perf_counter()
        # the pressure colours sent with the move's matrices, before it is measured
        if hasattr(view, "_move_colors"):  # (the app before they were)
            view._move_colors(session.sim, session.transforms(app.plan), app.plan)
        t4 = time.perf_counter()
        if i == 0:
            continue  # warm-up
        out["measure"].append(1e3 * (t1 - t0))
        out["pressure"].append(1e3 * (t2 - t1))
        out["solve"].append(1e3 * (t3 - t2))
        out["total"].append(1e3 * (t2 - t0))
        out["move colours (event loop)"].append(1e3 * (t4 - t3))
    out["springs"] = [len(after.surface)]
    app.close()
    return out


def bench_browser(repeats: int) -> dict[str, list[float]]:
    """ms from the keydown to the frame that draws the measure's colours, with and without load."""
    import panel as pn  # noqa: TID251
    from bench_app import ROTATE, app_factory, open_app
    from bench_viewer import CHROMIUM, CHROMIUM_ARGS, free_port
    from playwright.sync_api import sync_playwright

    sessions: list = []
    port = free_port()
    server = pn.serve(
        {"/": app_factory(sessions)}, port=port, address="127.0.0.1", threaded=True, show=False
    )
    query = "&".join(f"{k}={v}" for k, v in PLAN.items())
    res: dict[str, list[float]] = {}
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(
                executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
            )
            for label, extra, n_colors in (("with load", f"&load={LOAD}", 2), ("no load", "", 1)):
                page, _ = open_app(browser, f"http://127.0.0.1:{port}/?{query}{extra}")
                times, matrices = [], []
                for i in range(repeats + 1):
                    page.settle(0.3)
                    t0 = page.press(ROTATE, WALK[i % len(WALK)])
                    # the measure's colours: pressure on fragment and head (2 pieces) with a
                    # load, the head's coverage (1) without
                    page.page.wait_for_function(
                        "([t0, n]) => window.__hipvizTimes.events.filter("
                        "(e) => e.recv > t0 && e.kind === 'colors' && e.frame != null"
                        ").length >= n",
                        arg=[t0, n_colors],
                        timeout=30_000,
                    )
                    page.settle(0.3)
                    events = page.page.evaluate(
                        "(t0) => window.__hipvizTimes.events.filter((e) => e.recv > t0)", t0
                    )
                    if i == 0:
                        continue  # warm-up
                    colors = [e["frame"] for e in events if e["kind"] == "colors"]
                    moved = [e["frame"] for e in events if e["kind"] == "matrices"]
                    times.append(max(colors) - t0)
                    matrices.append(min(moved) - t0 if moved else float("nan"))
                res[f"colours, {label}"] = times
                res[f"picture, {label}"] = matrices
                page.close()
            browser.close()
    finally:
        server.stop()
    return res


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=20, help="moves of each kind")
    parser.add_argument("--no-browser", dest="browser", action="store_false")
    args = parser.parse_args(argv)
    print(f"load average at start: {os.getloadavg()[0]:.1f}", file=sys.stderr)
    server = bench_server(args.repeats)
    print(f"\nServer, per move ({args.repeats} moves, {server.pop('springs')[0]} springs):\n")
    print("| step | median ms | p90 ms | min–max ms |\n|---|---|---|---|")
    for key, values in server.items():
        target = f" (target ≤ {TARGETS['server']:g})" if key == "total" else ""
        print(
            f"| {key}{target} | {med(values):.1f} | {p90(values):.1f} | "
            f"{min(values):.1f}–{max(values):.1f} |"
        )
    if args.browser:
        browser = bench_browser(args.repeats)
        print(f"\nBrowser, keydown -> frame ({args.repeats} moves):\n")
        print("| | median ms | p90 ms | min–max ms |\n|---|---|---|---|")
        for key, values in browser.items():
            print(
                f"| {key} | {med(values):.0f} | {p90(values):.0f} | "
                f"{min(values):.0f}–{max(values):.0f} |"
            )
    print(f"\nload average at end: {os.getloadavg()[0]:.1f}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
