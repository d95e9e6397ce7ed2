"""Draw the rim edge points on sections of every teaching case, the built-in hip and the specimens.

Each hip gets two panels: the coronal section through the head centre (lateral
edge: LCEA) and the sagittal one (anterior and posterior edges: ACEA, PCEA),
with the head and socket circles and the rays to the edges. Bone below the
head's equator counts as acetabular wall only on the socket sphere (see
``docs/measures.md``, "Where the rim is").

    python scripts/render_rim_edges.py [--out docs/images/rim_edges.png]

The validation specimens are read from ../shared/validation when present
(they are never copied into the repository).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.collections import LineCollection  # noqa: E402

from hipviz import cases, hip, io  # noqa: E402
from hipviz.landmarks import _plane_segments  # noqa: E402

VALIDATION = Path(__file__).resolve().parents[2] / "shared" / "validation"


def hips():
    for name in cases.CASES:
        h = cases.case_hip(name, side="left")
        yield f"case {name}", h.pelvis, h.femur, "auto"
    from hipviz.anatomy import builtin_hip

    h = builtin_hip()
    yield "built-in hip", h.pelvis, h.femur, "auto"
    for folder, frame in (("lhdl_ct_staple", "auto"), ("icl_mri_staple", "auto")):
        if (VALIDATION / folder).exists():
            p = io.load_mesh(str(VALIDATION / folder / "pelvis_no_sacrum.ply")).mesh
            f = io.load_mesh(str(VALIDATION / folder / "femur_r.ply")).mesh
            yield f"specimen {folder}", p, f, frame


def panel(ax, pelvis_r, a, normal, u, v, keys, title):
    c = a.head.center_mm
    tri = np.asarray(pelvis_r.vertices)[np.asarray(pelvis_r.faces)]
    s0, s1 = _plane_segments(tri, c, normal)
    to2 = (
        np.stack([(s0 - c) @ u, (s0 - c) @ v], axis=1),
        np.stack([(s1 - c) @ u, (s1 - c) @ v], axis=1),
    )
    ax.add_collection(LineCollection(np.stack(to2, axis=1), colors="0.35", linewidths=0.8))
    t = np.linspace(0, 2 * np.pi, 200)
    ax.plot(a.head.radius_mm * np.cos(t), a.head.radius_mm * np.sin(t), color="tab:blue", lw=0.8)
    sc = a.socket.center_mm - c
    ax.plot(
        sc @ u + a.socket.radius_mm * np.cos(t),
        sc @ v + a.socket.radius_mm * np.sin(t),
        color="tab:green",
        lw=0.6,
        ls="--",
    )
    for key, label, color in keys:
        e = a.edges[key]
        if not np.isfinite(e.point_mm).all():
            continue
        p = e.point_mm - c
        ax.plot([0, p @ u], [0, p @ v], color=color, lw=1.0)
        ax.plot(p @ u, p @ v, "o", color=color, ms=5)
        ax.annotate(f"{label} {e.angle_deg:.0f}°", (p @ u, p @ v), fontsize=7, color=color)
    ax.plot(0, 0, "k+", ms=6)
    ax.set_xlim(-60, 60)
    ax.set_ylim(-60, 60)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize=8)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="docs/images/rim_edges.png")
    args = ap.parse_args()
    rows = list(hips())
    fig, axes = plt.subplots(len(rows), 2, figsize=(6.4, 3.1 * len(rows)))
    for row, (name, pelvis, femur, frame) in zip(axes, rows, strict=True):
        a = hip.analyze(pelvis, femur, frame=frame)
        pelvis_r = pelvis.copy()
        pelvis_r.apply_transform(a.tf_ras_input)
        ax = a.axes
        panel(
            row[0],
            pelvis_r,
            a,
            ax.anterior,
            ax.lateral,
            ax.superior,
            [("lateral_rim", "LCEA", "tab:red")],
            f"{name}: coronal (lateral to the right)",
        )
        panel(
            row[1],
            pelvis_r,
            a,
            ax.lateral,
            ax.anterior,
            ax.superior,
            [("anterior_rim", "ACEA", "tab:orange"), ("posterior_rim", "PCEA", "tab:purple")],
            f"{name}: sagittal (anterior to the right)",
        )
        print(
            f"{name}: LCEA {a.values['lcea_deg']:.1f} ACEA {a.values['acea_deg']:.1f} "
            f"PCEA {a.values['pcea_deg']:.1f} VCA {a.values['false_profile_acea_deg']:.1f} "
            f"AASA {a.values['aasa_deg']:.1f} PASA {a.values['pasa_deg']:.1f}"
        )
    fig.tight_layout()
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
