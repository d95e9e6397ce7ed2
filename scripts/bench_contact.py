#!/usr/bin/env python
"""Speed of the contact-pressure solve (:mod:`hipviz.contact`), and how it fits a move.

A script, not a test. It times, with ``time.perf_counter``, the median and
90th percentile of ``--reps`` runs after ``--warmup`` untimed ones:

1. an analytic cap with about 10k springs (``spherical_cap(25, 90)``, 10 112
   faces): ``articular_surface()``, then ``surface.moved(tf) + solve_contact``
   (a new random rigid move and load each run) with the linear and the log law;
2. the built-in hip at its default resolution (``builtin_hip()``, left, one-leg
   stance 2.6 BW, 70 kg): ``articular_surface()`` with the gap to the head
   sphere and to the femur mesh, and ``moved + solve``;
3. a PAO on the dysplastic teaching case: ``Simulation.move`` alone, and the
   move plus the contact path used while the fragment turns: the springs are
   found once on the unmoved fragment, then every move costs
   ``surface.moved(tf_fragment).with_head_gap(head after the move)`` and a
   solve. The femoral head follows the socket centre (``Simulation``'s
   ``tf_follow``), so the gap to the head sphere is the same as before the
   move; the load stays fixed in the pelvic frame. It also prints the
   before/after numbers of ``--pao lateral=20,anterior=5,medial=3`` and a
   sweep of lateral turns 0-40 degrees.

Usage::

    python scripts/bench_contact.py              # about a minute

On a machine shared with other work the medians and 90th percentiles swing
with the load; the minimum is then the better estimate of the cost itself.
    python scripts/bench_contact.py --reps 50 --json-out bench_contact.json
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from typing import Any

import numpy as np
from scipy.spatial.transform import Rotation

from hipviz import contact as ct
from hipviz import osteotomy as ost
from hipviz.geometry import Sphere, rigid
from hipviz.measures import HipAxes

BODY_WEIGHT_N = 70.0 * 9.81
#: One-leg stance (OrthoLoad mean, DESIGN.md §8.1): 2.6 BW, about 16.5 degrees medial
#: of superior (a little anterior is left out).
STANCE_BW, STANCE_MEDIAL_DEG = 2.6, 16.5
PAO = {"lateral_deg": 20.0, "anterior_deg": 5.0, "medial_mm": 3.0}
TARGETS_MS = {"solve_10k": 5.0, "move_with_contact": 25.0}


def summary(seconds: list[float]) -> dict[str, Any]:
    ms = np.asarray(seconds) * 1e3
    return {
        "median_ms": round(float(np.median(ms)), 3),
        "p90_ms": round(float(np.percentile(ms, 90)), 3),
        "min_ms": round(float(ms.min()), 3),
        "n": len(ms),
    }


def row(t: dict[str, Any]) -> str:
    return f"{t['median_ms']} | {t['p90_ms']} | {t['min_ms']}"


def timed(fn, reps: int, warmup: int) -> dict[str, Any]:
    for i in range(warmup):
        fn(i)
    out = []
    for i in range(reps):
        t = time.perf_counter()
        fn(warmup + i)
        out.append(time.perf_counter() - t)
    return summary(out)


def stance_load(axes: HipAxes) -> np.ndarray:
    t = np.radians(STANCE_MEDIAL_DEG)
    return STANCE_BW * BODY_WEIGHT_N * (np.cos(t) * axes.superior - np.sin(t) * axes.lateral)


def bench_cap(reps: int, warmup: int) -> dict[str, Any]:
    mesh = ct.spherical_cap(25.0, 90.0)
    head = Sphere(np.zeros(3), 22.0, 0.0, 0)
    surface = ct.articular_surface(mesh, head)
    rng = np.random.default_rng(0)
    tfs = [
        rigid(Rotation.random(random_state=rng).as_matrix(), rng.uniform(-50, 50, 3))
        for _ in range(reps + warmup)
    ]
    loads = [1750.0 * np.array([rng.uniform(-0.3, 0.3), rng.uniform(-0.3, 0.3), 1.0]) for _ in tfs]

    def solve(i, spring):
        tf = tfs[i]
        ct.solve_contact(surface.moved(tf), tf[:3, 3], tf[:3, :3] @ loads[i], spring=spring)

    return {
        "springs": len(surface),
        "articular_surface": timed(lambda i: ct.articular_surface(mesh, head), reps, warmup),
        "moved_solve_linear": timed(lambda i: solve(i, "linear"), reps, warmup),
        "moved_solve_log": timed(lambda i: solve(i, "log"), reps, warmup),
    }


def bench_builtin(reps: int, warmup: int) -> dict[str, Any]:
    from hipviz.anatomy import builtin_hip
    from hipviz.hip import _moved, analyze

    hip = builtin_hip(side="left")
    an = analyze(hip.pelvis, hip.femur)
    pelvis = _moved(hip.pelvis, an.tf_ras_input)
    femur = _moved(hip.femur, an.tf_ras_input)
    f = stance_load(an.axes)
    surface = ct.articular_surface(pelvis, an.head, an.socket)
    res = ct.solve_contact(surface, an.head.center_mm, f, axes=an.axes)
    rng = np.random.default_rng(1)
    tfs = [rigid(Rotation.from_rotvec(rng.normal(0, 0.05, 3)).as_matrix()) for _ in range(reps + 5)]

    def moved_solve(i):
        ct.solve_contact(surface.moved(tfs[i]), an.head.center_mm, f, axes=an.axes)

    return {
        "pelvis_faces": len(pelvis.faces),
        "springs": len(surface),
        "articular_surface_sphere_gap": timed(
            lambda i: ct.articular_surface(pelvis, an.head, an.socket), reps, warmup
        ),
        "articular_surface_femur_gap": timed(
            lambda i: ct.articular_surface(pelvis, an.head, an.socket, femur=femur),
            max(3, reps // 4),
            1,
        ),
        "moved_solve": timed(moved_solve, reps, warmup),
        "one_leg_stance": res.as_dict(),
    }


def bench_pao(reps: int, warmup: int) -> dict[str, Any]:
    from hipviz.cases import case_hip
    from hipviz.simulate import Simulation

    hip = case_hip("dysplastic", side="left")
    sim = Simulation(hip.pelvis, hip.femur)
    sim.cut("pao")
    an = sim.analysis
    f = stance_load(sim.axes)
    # Springs on the fragment, found once in its unmoved pose.
    surface = ct.articular_surface(sim.pelvis_cut.fragment, an.head, an.socket)
    head_r = an.head.radius_mm

    def contact_after(outcome):
        tf = outcome.transforms["fragment"]
        c_after = outcome.head_center_after_mm
        moved = surface.moved(tf).with_head_gap(Sphere(c_after, head_r, 0.0, 0))
        return ct.solve_contact(moved, c_after, f, axes=sim.axes)

    laterals = np.linspace(10.0, 30.0, reps + warmup)

    def move_only(i):
        sim.move(ost.AcetabularMove(lateral_deg=float(laterals[i]), medial_mm=3.0))

    def move_contact(i):
        out = sim.move(ost.AcetabularMove(lateral_deg=float(laterals[i]), medial_mm=3.0))
        contact_after(out)

    outs = {}

    def contact_only(i):
        key = i % len(laterals)
        if key not in outs:
            outs[key] = sim.move(ost.AcetabularMove(lateral_deg=float(laterals[key])))
        contact_after(outs[key])

    # Fill the outcome cache untimed, so the contact timing is the contact alone.
    for i in range(reps + warmup):
        contact_only(i)
    before = ct.solve_contact(surface, an.head.center_mm, f, axes=sim.axes)
    after = contact_after(sim.move(ost.AcetabularMove(**PAO)))
    sweep = []
    for lat in range(0, 41, 5):
        out = sim.move(ost.AcetabularMove(lateral_deg=float(lat)))
        res = contact_after(out)
        sweep.append(
            {
                "lateral_deg": lat,
                "lcea_deg": round(float(out.after["lcea_deg"]), 1),
                "peak_mpa": round(res.peak_mpa, 2),
                "mean_mpa": round(res.mean_mpa, 2),
                "area_mm2": round(res.area_mm2),
                "lateral_roof_share": round(res.lateral_roof_share, 2),
                "center_lateral_mm": round(
                    float(sim.axes.to_las(res.center_mm - out.head_center_after_mm)[0]), 1
                ),
            }
        )
    return {
        "fragment_springs": len(surface),
        "move_only": timed(move_only, reps, warmup),
        "contact_only": timed(contact_only, reps, warmup),
        "move_with_contact": timed(move_contact, reps, warmup),
        "before": before.as_dict(),
        "after_pao_20_5_3": after.as_dict(),
        "sweep": sweep,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--json-out")
    args = ap.parse_args(argv)
    out = {
        "machine": {"python": platform.python_version(), "cpu": platform.processor()},
        "cap_10k": bench_cap(args.reps, args.warmup),
        "builtin_default": bench_builtin(args.reps, args.warmup),
        "pao_dysplastic": bench_pao(args.reps, args.warmup),
    }
    print("| what | springs | median ms | p90 ms | min ms |")
    print("|---|---|---|---|---|")
    cap = out["cap_10k"]
    for key in ("articular_surface", "moved_solve_linear", "moved_solve_log"):
        print(f"| cap: {key} | {cap['springs']} | {row(cap[key])} |")
    b = out["builtin_default"]
    for key in ("articular_surface_sphere_gap", "articular_surface_femur_gap", "moved_solve"):
        print(f"| built-in: {key} | {b['springs']} | {row(b[key])} |")
    p = out["pao_dysplastic"]
    for key in ("move_only", "contact_only", "move_with_contact"):
        print(f"| dysplastic PAO: {key} | {p['fragment_springs']} | {row(p[key])} |")
    print(f"\ntargets (median, ms): {TARGETS_MS}")
    # Not the CLI's --load one-leg-stance (OrthoLoad, carried through the femur's pose):
    # a fixed load for timing, so its numbers differ from `hipviz simulate --load ...`.
    load = f"{STANCE_BW} BW at {STANCE_MEDIAL_DEG}° medial of superior, pelvic frame, 70 kg"
    print(f"\nbuilt-in hip, {load}:", b["one_leg_stance"])
    print(f"\ndysplastic case, {load}")
    for name in ("before", "after_pao_20_5_3"):
        d = p[name]
        print(
            f"  {name}: peak {d['contact_peak_mpa']:.2f} MPa, mean {d['contact_mean_mpa']:.2f} MPa,"
            f" area {d['contact_area_mm2']:.0f} mm2, lateral roof "
            f"{d['contact_lateral_roof_share']:.2f}"
        )
    print(
        "\n| lateral turn deg | LCEA deg | peak MPa | mean MPa | area mm2 | lateral roof share "
        "| contact centre lateral of head centre, mm |"
    )
    print("|---|---|---|---|---|---|---|")
    for line in p["sweep"]:
        print("| " + " | ".join(str(v) for v in line.values()) + " |")
    if args.json_out:
        with open(args.json_out, "w") as fh:
            json.dump(out, fh, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
