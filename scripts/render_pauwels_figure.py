#!/usr/bin/env python
"""Draw Pauwels' one-legged stance on the normal teaching case: docs/images/pauwels.png.

A script, not a test. It measures ``--case normal`` (left hip), finds the
greater-trochanter tip and Debrunner's abductor origin, and draws the frontal
plane (measurement frame, seen from the front: the patient's left on the
right of the picture) with the bone outlines, the body midline, both lever
arms, the abductor line and the forces, before and after a 5 mm medial shift
of the head centre (the femur following).

Usage::

    python scripts/render_pauwels_figure.py [--out docs/images/pauwels.png]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from hipviz import cases, hip, loads  # noqa: E402
from hipviz.geometry import translation  # noqa: E402


def _outline(ax, mesh, colour: str) -> None:
    """Frontal-plane silhouette of a mesh as a cloud of its vertices."""
    v = np.asarray(mesh.vertices)
    ax.scatter(v[:, 0], v[:, 2], s=0.3, c=colour, alpha=0.35, linewidths=0)


def _draw(ax, load: loads.JointLoad, geo: loads.LoadGeometry, title: str) -> None:
    d = load.details
    c = geo.head_center_mm
    g = d["gt_tip_mm"]
    o = d["abductor_origin_mm"]
    ax.plot([0, 0], [c[2] - 120, c[2] + 190], "k--", lw=1)
    ax.text(2, c[2] + 180, "midline", fontsize=8)
    ax.plot(*c[[0, 2]], "ko", ms=4)
    ax.plot([g[0], o[0]], [g[2], o[2]], color="tab:red", lw=2, label="abductor line")
    ax.plot(*g[[0, 2]], "o", color="tab:red", ms=5)
    ax.plot(*o[[0, 2]], "s", color="tab:red", ms=5)
    # Lever arms: a to the midline, h the perpendicular to the abductor line.
    ax.annotate("", (0, c[2] - 20), (c[0], c[2] - 20), arrowprops={"arrowstyle": "<->"})
    ax.text(c[0] / 2, c[2] - 32, f"a = {d['body_weight_lever_arm_mm']:.1f} mm", ha="center")
    u = (o - g)[[0, 2]] / np.linalg.norm((o - g)[[0, 2]])
    foot = g[[0, 2]] + ((c - g)[[0, 2]] @ u) * u
    ax.plot([c[0], foot[0]], [c[2], foot[1]], color="tab:blue", lw=1.5)
    ax.text(
        foot[0] - 4,
        foot[1] - 14,
        f"h = {d['abductor_lever_arm_mm']:.1f} mm",
        color="tab:blue",
        ha="left",
    )
    scale = 0.04  # mm per N
    f = load.force_n[[0, 2]] * scale
    ax.arrow(c[0], c[2], f[0], f[1], width=1.2, color="tab:green", length_includes_head=True)
    ax.text(
        c[0] + f[0] + 30,
        c[2] + f[1],
        f"R = {load.force_bw:.2f} BW\n{d['joint_force_angle_deg']:.1f}° from vertical",
        color="tab:green",
        fontsize=8,
    )
    ax.set_title(
        f"{title}\nM = {d['abductor_force_bw']:.2f} BW, R = {d['joint_force_bw']:.2f} BW",
        fontsize=9,
    )
    ax.set_aspect("equal")
    ax.set_xlim(150, -190)
    ax.set_ylim(-230, 130)  # seen from the front: the patient's left (-x) on the right
    ax.set_xlabel("x (mm, patient right to the left)")
    ax.set_ylabel("z (mm, superior)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="docs/images/pauwels.png")
    args = parser.parse_args()

    h = cases.case_hip("normal", side="left")
    an = hip.analyze(h.pelvis, h.femur)
    pelvis = hip._moved(h.pelvis, an.tf_ras_input)
    femur = hip._moved(h.femur, an.tf_ras_input)
    geo = loads.hip_load_geometry(an, pelvis, femur)
    shift = translation(5.0 * an.axes.lateral * -1.0)
    moved = geo.moved(shift, shift)

    fig, axes = plt.subplots(1, 2, figsize=(12, 6.5), sharey=True)
    for ax, g, title in ((axes[0], geo, "normal case"), (axes[1], moved, "head 5 mm medial")):
        _outline(ax, pelvis, "0.4")
        _outline(ax, femur.copy().apply_transform(np.eye(4) if g is geo else shift), "0.6")
        _draw(ax, loads.joint_load("pauwels", g), g, title)
    fig.suptitle("Pauwels' one-legged stance, left hip, 70 kg (frontal plane, front view)")
    fig.tight_layout(rect=(0, 0.02, 1, 0.95))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
