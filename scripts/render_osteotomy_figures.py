#!/usr/bin/env python
"""Render before/after pictures of every osteotomy preset and teaching case, off-screen.

For each preset, the built-in left hip (or ``--case``) is cut, moved by the
preset's usual move and shown from the front and from the side, before and
after, with the fragment in orange, the fixation in steel and the LCEA /
coverage change in the caption. ``--docs`` also writes the documentation
figure ``docs/images/pao_before_after.png`` (the dysplastic case before and
after a PAO of lateral 20, anterior 5, medial 3 mm).

Usage::

    python scripts/render_osteotomy_figures.py [--out /tmp/hipviz_figures] [--cases] [--docs]
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

if not os.environ.get("DISPLAY"):
    os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")

import pyvista as pv  # noqa: E402

from hipviz import osteotomy as ost  # noqa: E402
from hipviz.anatomy import builtin_hip  # noqa: E402
from hipviz.simulate import Simulation  # noqa: E402

pv.OFF_SCREEN = True
ROOT = Path(__file__).resolve().parents[1]
BONE, FRAGMENT, FEMUR, METAL = "#e8dcc4", "#e8923a", "#cbb58c", "#9aa4ad"


def _hip(case: str | None):
    if case is None:
        return builtin_hip(side="left")
    from hipviz import cases

    return cases.case_hip(case, side="left")


def _scene(pl: pv.Plotter, sim: Simulation, outcome, *, after: bool, fixation: bool) -> None:
    meshes = sim.meshes(outcome) if after else {}
    if sim.pelvis_cut is None:
        pl.add_mesh(pv.wrap(meshes.get("pelvis", sim.pelvis)), color=BONE, smooth_shading=True)
    else:
        cut = sim.pelvis_cut
        frag = meshes.get("acetabular_fragment", cut.fragment)
        pl.add_mesh(pv.wrap(cut.rest), color=BONE, smooth_shading=True)
        pl.add_mesh(pv.wrap(frag), color=FRAGMENT, smooth_shading=True)
    for key in ("femur", "femur_proximal", "femur_distal"):
        if key in meshes:
            pl.add_mesh(pv.wrap(meshes[key]), color=FEMUR, smooth_shading=True)
    if not after:
        pl.add_mesh(pv.wrap(sim.femur), color=FEMUR, smooth_shading=True)
    if after and fixation:
        for mesh in sim.fixation(outcome).values():
            pl.add_mesh(pv.wrap(mesh), color=METAL, specular=0.8)


def _camera(pl: pv.Plotter, sim: Simulation, view: str) -> None:
    c, ax = sim.center_mm, sim.axes
    if view == "front":
        eye = c + 330 * ax.anterior + 60 * ax.lateral + 40 * ax.superior
    else:
        eye = c + 330 * ax.lateral + 40 * ax.superior
    pl.camera_position = [eye, c + 20 * ax.superior, ax.superior]


def render(sim: Simulation, outcome, path: Path, title: str, *, fixation: bool = True) -> None:
    """Four panels: front and side, before and after."""
    pl = pv.Plotter(window_size=(1400, 1000), shape=(2, 2), border=False)
    b, a = outcome.before, outcome.after
    for row, view in enumerate(("front", "side")):
        for col, after in enumerate((False, True)):
            pl.subplot(row, col)
            pl.set_background("white")
            _scene(pl, sim, outcome, after=after, fixation=fixation)
            _camera(pl, sim, view)
            if row == 0:
                v = a if after else b
                cov = v["coverage_pct"]["upper_hemisphere"]
                label = (
                    f"{'after' if after else 'before'}: LCEA {v['lcea_deg']:.0f}°, "
                    f"ACEA {v['acea_deg']:.0f}°, upper coverage {cov:.0f} %"
                )
                pl.add_text(label, font_size=11, color="black")
    pl.subplot(1, 0)
    pl.add_text(title, position="lower_left", font_size=10, color="black")
    pl.screenshot(path)
    pl.close()


def render_case(name: str, path: Path) -> None:
    """Two panels of a teaching case, front and side, with its key measures."""
    from hipviz import cases

    hip = cases.case_hip(name, side="left")
    sim = Simulation(hip.pelvis, hip.femur)
    outcome = sim.move()
    v = outcome.before
    pl = pv.Plotter(window_size=(1400, 560), shape=(1, 2), border=False)
    for col, view in enumerate(("front", "side")):
        pl.subplot(0, col)
        pl.set_background("white")
        _scene(pl, sim, outcome, after=False, fixation=False)
        _camera(pl, sim, view)
    pl.subplot(0, 0)
    pl.add_text(
        f"{cases.CASES[name].title} (synthetic): LCEA {v['lcea_deg']:.0f}°, "
        f"Tönnis {v['tonnis_deg']:.0f}°, version {v['acetabular_version_deg']:.0f}°, "
        f"NSA {v['neck_shaft_deg']:.0f}°, femoral version {v['femoral_version_deg']:.0f}°, "
        f"alpha {v['alpha_deg']:.0f}°",
        font_size=10,
        color="black",
    )
    pl.screenshot(path)
    pl.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="/tmp/hipviz_figures", type=Path)
    parser.add_argument("--docs", action="store_true", help="also write the docs figure")
    parser.add_argument("--case", default=None, help="teaching case to cut (default: mean)")
    parser.add_argument("--cases", action="store_true", help="also picture every teaching case")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    hip = _hip(args.case)
    sim = Simulation(hip.pelvis, hip.femur)
    for name, proc in ost.PROCEDURES.items():
        sim.cut(name)
        outcome = sim.move(proc.default_move)
        path = args.out / f"preset_{name}.png"
        render(sim, outcome, path, proc.title)
        print(
            f"wrote {path}: LCEA {outcome.before['lcea_deg']:.1f} -> "
            f"{outcome.after['lcea_deg']:.1f}, gap {outcome.min_gap_mm:.1f} mm"
        )
    if args.cases:
        from hipviz.cases import CASES

        for name in CASES:
            path = args.out / f"case_{name}.png"
            render_case(name, path)
            print(f"wrote {path}")
    if args.docs:
        hip = _hip("dysplastic")
        sim = Simulation(hip.pelvis, hip.femur)
        sim.cut("pao")
        outcome = sim.move(ost.AcetabularMove(20.0, 5.0, 0.0, 3.0))
        path = ROOT / "docs" / "images" / "pao_before_after.png"
        render(
            sim,
            outcome,
            path,
            "Dysplastic teaching case, PAO: lateral 20°, anterior 5°, medial 3 mm",
        )
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
