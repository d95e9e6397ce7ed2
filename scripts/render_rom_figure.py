#!/usr/bin/env python
"""Render ``docs/images/rom_fadir.png``: where the femur meets the pelvis at the FADIR limit.

Two panels, the built-in left hip seen from the side and from the front (femur
see-through), the femur turned to 90° flexion, 15° adduction and the internal rotation at
which bone first meets bone (:mod:`hipviz.motion`); the triangles in contact (2° past the
limit) are red on both bones, the pelvic contact point is a red ball.

Usage::

    PYTHONPATH=. python scripts/render_rom_figure.py [--out docs/images/rom_fadir.png]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pyvista as pv

from hipviz import render
from hipviz.anatomy import builtin_hip
from hipviz.motion import FADIR_ADDUCTION_DEG
from hipviz.simulate import Simulation

RED = np.array([214, 40, 40], dtype=np.uint8)


def _colored(mesh, faces, base: str) -> pv.PolyData:
    poly = render.polydata(mesh)
    rgb = np.tile(np.array(pv.Color(base).int_rgb, dtype=np.uint8), (poly.n_cells, 1))
    rgb[faces] = RED
    poly.cell_data["rgb"] = rgb
    return poly


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="docs/images/rom_fadir.png")
    args = parser.parse_args()
    hip = builtin_hip(side="left")
    sim = Simulation(hip.pelvis, hip.femur)
    model = sim.motion()
    lim = model.limit("fadir")
    # a little past the limit, so the touching triangles make a visible patch
    contact = model.query(90.0, FADIR_ADDUCTION_DEG, lim.angle_deg + 2.0)
    pelvis = _colored(sim.pelvis, contact.pelvis_faces.get("pelvis", []), render.BONE)
    femur = _colored(sim.femur, contact.femur_faces.get("femur", []), render.FEMUR)
    femur = femur.transform(contact.tf_femur, inplace=False)
    c = model.landmarks.center_mm
    pl = pv.Plotter(off_screen=True, shape=(1, 2), window_size=[1400, 650])
    pl.set_background("white")
    where = f"{lim.clock:.1f} o'clock, {lim.femur_part} against {lim.pelvis_part}"
    for col, view in enumerate(("lateral", "anterior")):
        pl.subplot(0, col)
        pl.add_mesh(pelvis, scalars="rgb", rgb=True, smooth_shading=True)
        pl.add_mesh(femur, scalars="rgb", rgb=True, smooth_shading=True, opacity=(1.0, 0.45)[col])
        pl.add_mesh(pv.Sphere(2.0, lim.point_mm), color="red")
        pl.add_text(
            f"{view} view: FADIR limit {lim.angle_deg:.1f}° internal rotation\n"
            f"{where} (bone only; red: in contact)",
            font_size=11,
            color="black",
        )
        pl.camera_position = render.camera(view, "left", c, (260.0, 330.0)[col])
        pl.camera.view_angle = 30.0
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    pl.screenshot(args.out)
    pl.close()
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
