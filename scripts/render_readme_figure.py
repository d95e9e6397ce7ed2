#!/usr/bin/env python
"""Render the README figure ``docs/images/builtin_hip.png`` off-screen.

The built-in left hip (LLP26 mean pelvis and seated femur) measured by
:func:`hipviz.hip.analyze`, in two panels:

* left: anterior view of the whole pelvis and proximal femur with the
  lateral centre-edge angle drawn on the left hip (vertical through the head
  centre, line to the lateral rim point, the angle's arc and its value);
* right: lateral view of the left acetabulum with the femur hidden: the
  socket, the rim contour the measures see from the head centre, and the
  anterior, lateral and posterior rim points.

Everything is drawn in the measurement frame (the input meshes are mapped by
``tf_ras_input``). The scene is rendered at twice the size and downsampled,
which anti-aliases meshes, lines and text alike, then palette-quantized to keep
the PNG small.

Usage::

    python scripts/render_readme_figure.py [--out docs/images/builtin_hip.png] [--no-quantize]
"""

from __future__ import annotations

import argparse
import io
import os
import sys
from pathlib import Path

if not os.environ.get("DISPLAY"):
    # Headless: ask VTK for an EGL window instead of trying X first.
    os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")

import numpy as np  # noqa: E402
import pyvista as pv  # noqa: E402
import trimesh
import vtk
from PIL import Image

from hipviz import hip  # noqa: E402
from hipviz import measures as ms
from hipviz.anatomy import builtin_hip
from hipviz.geometry import apply
from hipviz.raycast import RayCaster

pv.OFF_SCREEN = True

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "images" / "builtin_hip.png"
SIZE = (1600, 900)
SUPERSAMPLE = 2

CAPTION = "hipviz \u2014 built-in LLP26 hip, anterior pelvic plane frame"
BONE = "#e8dcc4"
FEMUR = "#d9c49b"
LINE = "#1f5fa8"
ACCENT = "#d1495b"
TEXT = "#222222"


def _font(bold: bool = False) -> str | None:
    """A TrueType font with the em dash and degree sign (VTK's built-in Arial lacks the dash)."""
    candidates = [
        f"/usr/share/fonts/truetype/dejavu/DejaVuSans{'-Bold' if bold else ''}.ttf",
    ]
    try:
        import matplotlib

        mpl = Path(matplotlib.__file__).parent / "mpl-data" / "fonts" / "ttf"
        candidates.append(str(mpl / f"DejaVuSans{'-Bold' if bold else ''}.ttf"))
    except ImportError:
        pass
    return next((c for c in candidates if Path(c).is_file()), None)


def to_frame(mesh: trimesh.Trimesh, tf: np.ndarray) -> pv.PolyData:
    """Mesh in input coordinates -> PyVista surface in the measurement frame."""
    faces = np.asarray(mesh.faces)
    if np.linalg.det(tf[:3, :3]) < 0:  # a mirroring frame flips the winding
        faces = faces[:, ::-1]
    poly = pv.PolyData.from_regular_faces(apply(tf, mesh.vertices), faces)
    return poly.compute_normals(auto_orient_normals=False, split_vertices=False)


def overlay(plotter: pv.Plotter) -> vtk.vtkRenderer:
    """A renderer drawn on top of the active subplot (same viewport and camera)."""
    base = plotter.renderer
    over = vtk.vtkRenderer()
    over.SetLayer(1)
    over.SetViewport(*base.GetViewport())
    over.SetActiveCamera(base.GetActiveCamera())
    over.InteractiveOff()
    plotter.ren_win.SetNumberOfLayers(2)
    plotter.ren_win.AddRenderer(over)
    return over


def add_to(
    renderer: vtk.vtkRenderer, mesh: pv.PolyData, color: str, *, ambient: float = 0.35
) -> None:
    mapper = pv.DataSetMapper(mesh)
    mapper.scalar_visibility = False
    actor = pv.Actor(mapper=mapper)
    actor.prop.color = color
    actor.prop.ambient = ambient
    actor.prop.diffuse = 0.75
    actor.prop.interpolation = "phong"
    renderer.AddActor(actor)


def tube(a: np.ndarray, b: np.ndarray, radius: float) -> pv.PolyData:
    return pv.Line(a, b).tube(radius=radius, n_sides=24, capping=True)


def arc(
    center: np.ndarray, u: np.ndarray, v: np.ndarray, radius: float, deg: float, tube_r: float
) -> pv.PolyData:
    """Arc of ``deg`` degrees from unit ``u`` toward unit ``v`` (orthogonal) around ``center``."""
    t = np.radians(np.linspace(0.0, deg, 64))[:, None]
    pts = center + radius * (np.cos(t) * u + np.sin(t) * v)
    return pv.lines_from_points(pts).tube(radius=tube_r, n_sides=16)


def rim_contour(
    hit, c: np.ndarray, axes: ms.HipAxes, reach: float, step_deg: float = 3.0
) -> list[np.ndarray]:
    """Socket rim seen from the head centre, as polylines (mm, measurement frame).

    For each direction u around the lateral axis, scan from medial (into the
    socket floor) toward u: the first uncovered direction is the rim there.
    Directions with no edge (the acetabular notch) split the contour.
    """
    medial = -axes.lateral
    runs: list[list[np.ndarray]] = [[]]
    for th in np.radians(np.arange(0.0, 360.0, step_deg)):
        u = np.cos(th) * axes.superior + np.sin(th) * axes.anterior
        e = ms.scan_edge(hit, c, medial, u, reach)
        if np.isfinite(e.angle_deg) and e.angle_deg > 0:
            runs[-1].append(e.point_mm)
        elif runs[-1]:
            runs.append([])
    runs = [r for r in runs if len(r) > 1]
    # Join the last run to the first when the contour wraps around 0 degrees.
    if len(runs) > 1 and len(runs[-1]) and np.linalg.norm(runs[-1][-1] - runs[0][0]) < 15:
        runs[0] = runs[-1] + runs[0]
        runs.pop()
    if len(runs) == 1 and np.linalg.norm(runs[0][-1] - runs[0][0]) < 15:
        runs[0].append(runs[0][0])
    return [np.asarray(r) for r in runs]


def label(
    renderer: vtk.vtkRenderer,
    point: np.ndarray,
    text: str,
    size: int,
    *,
    color: str = TEXT,
    bold: bool = True,
) -> None:
    """Text centred on a 3D point, on a white box, drawn on top of ``renderer``."""
    actor = vtk.vtkTextActor()
    actor.SetInput(f" {text} ")
    actor.GetPositionCoordinate().SetCoordinateSystemToWorld()
    actor.GetPositionCoordinate().SetValue(*map(float, point))
    prop = actor.GetTextProperty()
    font = _font(bold)
    if font:
        prop.SetFontFamily(vtk.VTK_FONT_FILE)
        prop.SetFontFile(font)
    prop.SetFontSize(size)
    prop.SetColor(pv.Color(color).float_rgb)
    prop.SetJustificationToCentered()
    prop.SetVerticalJustificationToCentered()
    prop.SetBackgroundColor(1.0, 1.0, 1.0)
    prop.SetBackgroundOpacity(0.8)
    prop.SetFrame(False)
    renderer.AddViewProp(actor)


def render(out: Path, *, quantize: bool = True) -> dict:
    b = builtin_hip(side="left")
    a = hip.analyze(b.pelvis, b.femur)
    d = a.as_dict()
    tf = a.tf_ras_input
    pelvis = to_frame(b.pelvis, tf)
    femur = to_frame(b.femur, tf)
    axes = a.axes
    c, r = a.head.center_mm, a.head.radius_mm
    lcea = d["lcea_deg"]
    rim = a.edges["lateral_rim"].point_mm
    caster = RayCaster(trimesh.Trimesh(pelvis.points, pelvis.regular_faces, process=False))
    reach = d["rim_reach_mm"]

    s = SUPERSAMPLE
    w, h = SIZE[0] * s, SIZE[1] * s
    pl = pv.Plotter(
        shape=(2, 2),
        row_weights=[0.075, 0.925],
        col_weights=[0.6, 0.4],
        groups=[(0, np.s_[:])],
        off_screen=True,
        window_size=(w, h),
        border=False,
        lighting="light_kit",
    )
    pl.set_background("white")

    # ------------------------------------------------------------ caption
    pl.subplot(0, 0)
    pl.add_text(
        CAPTION,
        position=(0.5 * w, 0.32 * 0.075 * h),
        font_size=int(16 * s),
        color=TEXT,
        font_file=_font(True),
    ).prop.justification_horizontal = "center"

    # ------------------------------------------------------------ anterior view
    pl.subplot(1, 0)
    over = overlay(pl)
    for mesh, color in ((pelvis, BONE), (femur, FEMUR)):
        pl.add_mesh(
            mesh,
            color=color,
            smooth_shading=True,
            specular=0.15,
            specular_power=20,
            ambient=0.12,
            diffuse=0.85,
        )
    # LCEA construction, on the overlay so the bone in front does not hide it.
    up = axes.superior
    to_rim = rim - c
    length = 1.35 * np.linalg.norm(to_rim)
    lat_dir = to_rim / np.linalg.norm(to_rim)
    add_to(over, tube(c, c + length * up, 1.3), LINE)
    add_to(over, tube(c, rim, 1.3), LINE)
    add_to(over, pv.Sphere(radius=3.4, center=c, theta_resolution=32, phi_resolution=32), ACCENT)
    add_to(over, pv.Sphere(radius=2.6, center=rim, theta_resolution=24, phi_resolution=24), LINE)
    # The arc from superior toward the rim (in the plane of the two lines).
    v = lat_dir - (lat_dir @ up) * up
    v /= np.linalg.norm(v)
    add_to(over, arc(c, up, v, 0.55 * length, lcea, 0.9), LINE)
    mid = np.radians(0.5 * lcea)
    label_at = c + 0.55 * length * (np.cos(mid) * up + np.sin(mid) * v) + 26.0 * v + 10.0 * up
    label(over, label_at, f"LCEA {lcea:.0f}\u00b0", 19 * s)
    pl.add_text(
        "anterior view (patient's left hip on the right)",
        position=(18 * s, 14 * s),
        font_size=11 * s,
        color="#555555",
        font_file=_font(),
    )
    # Camera: +y looking toward -y, +z up; frame the pelvis and proximal femur.
    pb = np.asarray(pelvis.bounds).reshape(3, 2)
    zmin = min(pb[2, 0], c[2] - 95.0)
    focal = np.array([pb[0].mean(), pb[1].mean(), 0.5 * (pb[2, 1] + zmin) + 4.0])
    pl.camera.focal_point = focal
    pl.camera.position = focal + np.array([0.0, 1400.0, 0.0])
    pl.camera.up = (0.0, 0.0, 1.0)
    pl.camera.view_angle = 14.0
    pl.camera.clipping_range = (800.0, 2000.0)
    pl.camera.zoom(1.1)

    # ------------------------------------------------------------ lateral view
    pl.subplot(1, 1)
    over = overlay(pl)
    pl.add_mesh(
        pelvis,
        color=BONE,
        smooth_shading=True,
        specular=0.15,
        specular_power=20,
        ambient=0.12,
        diffuse=0.85,
    )
    for run in rim_contour(caster.first_hit, c, axes, reach):
        add_to(over, pv.lines_from_points(run).tube(radius=0.8, n_sides=16), LINE)
    add_to(over, pv.Sphere(radius=2.4, center=c, theta_resolution=32, phi_resolution=32), ACCENT)
    for key, name, offset in (
        ("lateral_rim", "lateral rim", 14.0 * up),
        ("anterior_rim", "anterior rim", 20.0 * axes.anterior),
        ("posterior_rim", "posterior rim", -22.0 * axes.anterior),
    ):
        p = a.edges[key].point_mm
        if not np.all(np.isfinite(p)):
            continue
        add_to(
            over, pv.Sphere(radius=2.2, center=p, theta_resolution=24, phi_resolution=24), ACCENT
        )
        label(over, p + offset, name, 13 * s, bold=False)
    cov = d["coverage_pct"]["upper_hemisphere"]
    pl.add_text(
        f"lateral view, femur hidden\nversion {d['acetabular_version_deg']:.0f}\u00b0 \u00b7 "
        f"ACEA {d['acea_deg']:.0f}\u00b0 \u00b7 coverage {cov:.0f}%",
        position=(18 * s, 14 * s),
        font_size=11 * s,
        color="#555555",
        font_file=_font(),
    )
    # Camera: from the patient's left (-x) looking toward +x, +z up, on the socket.
    side = axes.lateral  # -x for a left hip
    focal = c + 8.0 * side + np.array([0.0, 0.0, 6.0])
    pl.camera.focal_point = focal
    pl.camera.position = focal + 1400.0 * side
    pl.camera.up = (0.0, 0.0, 1.0)
    pl.camera.view_angle = 11.0
    pl.camera.clipping_range = (900.0, 2000.0)

    pl.enable_anti_aliasing("msaa", multi_samples=8, all_renderers=True)
    img = pl.screenshot(return_img=True)
    pl.close()

    image = Image.fromarray(img).resize(SIZE, Image.LANCZOS)
    image = image.convert("RGB")
    if quantize:
        # A max-coverage palette keeps the small accent colours (median cut
        # drops them); dithering against it avoids banding on smooth shading.
        palette = image.quantize(colors=256, method=Image.Quantize.MAXCOVERAGE)
        image = image.quantize(palette=palette, dither=Image.Dither.FLOYDSTEINBERG)
    out.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    image.save(buf, format="PNG", optimize=True)
    out.write_bytes(buf.getvalue())
    return {
        "path": str(out),
        "bytes": len(buf.getvalue()),
        "lcea_deg": lcea,
        "head_center_mm": c.tolist(),
        "radius_mm": r,
        "rim_mm": rim.tolist(),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Render the README figure of the built-in hip.")
    p.add_argument("--out", type=Path, default=OUT, help=f"output PNG (default {OUT})")
    p.add_argument(
        "--no-quantize",
        action="store_true",
        help="keep full RGB (larger file) instead of a 256-colour palette",
    )
    args = p.parse_args(argv)
    info = render(args.out, quantize=not args.no_quantize)
    print(f"wrote {info['path']} ({info['bytes'] / 1024:.0f} kB), LCEA {info['lcea_deg']:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
