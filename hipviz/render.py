"""State -> scene: the 3D picture of a planned hip, as PyVista objects.

One place builds what every view of hipviz draws - the web app, notebooks
and the pictures in reports: the bone pieces (:func:`bone_meshes`), where
each one stands after a move (:func:`poses`), the femoral head coloured by
coverage (:func:`coverage_colors`), every angle drawn in the plane where it
is measured (:func:`measure_lines`) and the landmarks (:func:`landmark_labels`).
:func:`scene` gathers them; :func:`plot` and :func:`picture` draw a scene off
screen.

Conventions
-----------
Everything is in the measurement frame of the :class:`hipviz.simulate.Simulation`
(RAS, mm: +x the patient's right, +y anterior, +z superior). A pose is
``tf_world_piece`` (4, 4): it takes the piece's unmoved points to where they
are drawn. Colours are ``'#rrggbb'``.

This is the only module of the library that imports PyVista.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pyvista as pv
import trimesh
from numpy.typing import ArrayLike
from scipy.spatial import cKDTree

from . import measures as ms
from ._typing import FloatArray, Transform, Vector
from .geometry import apply, unit
from .simulate import Outcome, Simulation

#: Bone, moved fragment, femur and metal colours.
BONE = "#e8dcc8"
FRAGMENT = "#e0a96d"
FEMUR = "#d9cbb3"
METAL = "#9aa4b1"
GHOST = "#8fb3d9"
#: Head colours: covered by the socket, uncovered.
COVERED = np.array([46, 139, 87], dtype=np.uint8)
UNCOVERED = np.array([214, 96, 77], dtype=np.uint8)

#: Colours of the measure drawings, one per measure family.
LINE_COLORS = {
    "reference": "#555555",
    "lcea": "#1f77b4",
    "acea": "#9467bd",
    "tonnis": "#17becf",
    "version": "#d62728",
    "nsa": "#2ca02c",
    "femoral_version": "#ff7f0e",
}

VIEWS = ("anterior", "lateral", "superior", "false_profile")
#: Lequesne's false profile: the anterior view turned this far toward the hip's side.
FALSE_PROFILE_DEG = 65.0


@dataclass(frozen=True)
class Piece:
    """One mesh of the scene: geometry in its unmoved place, and how it looks."""

    mesh: pv.PolyData
    color: str
    opacity: float = 1.0
    smooth: bool = True


@dataclass(frozen=True)
class Line:
    """A polyline (n, 3) mm, drawn on top of the bones when ``on_top``."""

    points: FloatArray
    color: str
    label: str = ""
    width: float = 3.0
    on_top: bool = True


@dataclass(frozen=True)
class Label:
    """Text pinned to a point (3,) mm."""

    position: Vector
    text: str
    color: str = "#222222"


@dataclass
class Scene:
    """Everything a view draws for one state of a plan."""

    pieces: dict[str, Piece]
    poses: dict[str, Transform]
    colors: dict[str, np.ndarray] = field(default_factory=dict)
    lines: dict[str, Line] = field(default_factory=dict)
    labels: dict[str, Label] = field(default_factory=dict)
    focal_point: Vector = field(default_factory=lambda: np.zeros(3))
    side: str = "left"


def polydata(mesh: trimesh.Trimesh) -> pv.PolyData:
    """A triangle mesh as :class:`pyvista.PolyData` (points copied, float32)."""
    faces = np.column_stack([np.full(len(mesh.faces), 3), mesh.faces]).astype(np.int64)
    return pv.PolyData(np.asarray(mesh.vertices, dtype=np.float32), faces.ravel())


def triangles(poly: pv.PolyData) -> tuple[np.ndarray, np.ndarray]:
    """``(points (n, 3) float32, triangles (m, 3) int32)`` of an all-triangle PolyData."""
    faces = np.asarray(poly.faces).reshape(-1, 4)
    if faces.size and not np.all(faces[:, 0] == 3):
        msg = "expected a triangle mesh"
        raise ValueError(msg)
    return np.asarray(poly.points, dtype=np.float32), faces[:, 1:].astype(np.int32)


def decimate(poly: pv.PolyData, max_triangles: int) -> pv.PolyData:
    """``poly`` with at most about ``max_triangles`` triangles (quadric decimation).

    A mesh already small enough comes back unchanged. The shape is kept
    (volume-preserving quadric error); point data is not carried over.

    Parameters
    ----------
    poly : pyvista.PolyData
        An all-triangle surface.
    max_triangles : int
        Triangle budget, at least 4.
    """
    n = poly.n_cells
    if n <= max_triangles:
        return poly
    target = 1.0 - max(4, max_triangles) / n
    out = poly.decimate(target, volume_preservation=True)
    return pv.PolyData(out.points, out.faces)


def split_far(
    points: ArrayLike, triangles: ArrayLike, center: ArrayLike, radius_mm: float
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Split a triangle mesh into the part near ``center`` and the part beyond ``radius_mm``.

    A triangle is far when all three of its vertices are. A cut about the hip
    changes only the near part, so a view need not send the far part again.

    Parameters
    ----------
    points : (n, 3) float
    triangles : (m, 3) int
    center : (3,) float
        Same frame and units (mm) as ``points``.

    Returns
    -------
    (near_points, near_triangles), (far_points, far_triangles)
        Each with only its own vertices, re-indexed.
    """
    pts = np.asarray(points)
    tri = np.asarray(triangles)
    beyond = np.linalg.norm(pts - np.asarray(center, dtype=float), axis=1) > radius_mm
    far = beyond[tri].all(axis=1)

    def part(keep: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        used, inverse = np.unique(tri[keep], return_inverse=True)
        return pts[used], inverse.reshape(-1, 3).astype(tri.dtype)

    return part(~far), part(far)


# ------------------------------------------------------------------ pieces


def bone_meshes(sim: Simulation, *, fragment_color: str = FRAGMENT) -> dict[str, Piece]:
    """The pieces of a hip in their unmoved place: whole or cut, pelvis and femur."""
    out: dict[str, Piece] = {}
    if sim.pelvis_cut is None:
        out["pelvis"] = Piece(polydata(sim.pelvis), BONE)
    else:
        out["pelvis_rest"] = Piece(polydata(sim.pelvis_cut.rest), BONE)
        out["acetabular_fragment"] = Piece(polydata(sim.pelvis_cut.fragment), fragment_color)
    if sim.femur_cut is None:
        out["femur"] = Piece(polydata(sim.femur), FEMUR)
    else:
        out["femur_proximal"] = Piece(polydata(sim.femur_cut.proximal), FEMUR)
        out["femur_distal"] = Piece(polydata(sim.femur_cut.distal), FEMUR)
    return out


def poses(
    sim: Simulation, outcome: Outcome | Mapping[str, Transform] | None
) -> dict[str, Transform]:
    """``tf_world_piece`` of every piece of :func:`bone_meshes` (identity without a move).

    ``outcome`` is an :class:`~hipviz.simulate.Outcome` or its ``transforms``
    (as :meth:`hipviz.simulate.Simulation.transforms` gives them, unmeasured).
    """
    eye = np.eye(4)
    if outcome is None:
        tf = {}
    elif isinstance(outcome, Outcome):
        tf = outcome.transforms
    else:
        tf = outcome
    out = {}
    if sim.pelvis_cut is None:
        out["pelvis"] = eye
    else:
        out["pelvis_rest"] = eye
        out["acetabular_fragment"] = tf.get("fragment", eye)
    if sim.femur_cut is None:
        out["femur"] = tf.get("femur_proximal", eye)
    else:
        out["femur_proximal"] = tf.get("femur_proximal", eye)
        out["femur_distal"] = tf.get("femur_distal", eye)
    return out


# ------------------------------------------------------------------ coverage


class HeadColoring:
    """Colours the femoral head by which of its directions the socket covers.

    Vertices of the (unmoved) proximal femur within ``band_mm`` of the head
    sphere take the colour of the nearest coverage direction; the rest keep
    the bone colour. The proximal femur only translates in a move, so the
    directions of its vertices from the head centre never change.

    Parameters
    ----------
    points : (n, 3) float
        Femur (or proximal femur) vertices, unmoved, mm.
    center_mm, radius_mm
        Head sphere.
    directions : (k, 3) float
        Unit coverage directions in the measurement frame.
    """

    def __init__(
        self,
        points: ArrayLike,
        center_mm: ArrayLike,
        radius_mm: float,
        directions: ArrayLike,
        *,
        band_mm: float = 2.0,
        base: str = FEMUR,
    ):
        p = np.asarray(points, dtype=float) - np.asarray(center_mm, dtype=float)
        d = np.linalg.norm(p, axis=1)
        self.on_head = np.flatnonzero(np.abs(d - radius_mm) <= band_mm)
        _, self.nearest = cKDTree(np.asarray(directions, dtype=float)).query(
            p[self.on_head] / d[self.on_head, None]
        )
        rgb = np.array([int(base[i : i + 2], 16) for i in (1, 3, 5)], dtype=np.uint8)
        self.base = np.tile(rgb, (len(p), 1))

    def __call__(self, covered: ArrayLike) -> np.ndarray:
        """(n, 3) uint8 vertex colours for a (k,) bool covered mask."""
        out = self.base.copy()
        hit = np.asarray(covered, dtype=bool)[self.nearest]
        out[self.on_head] = np.where(hit[:, None], COVERED, UNCOVERED)
        return out


def coverage_colors(
    points: ArrayLike, center_mm: ArrayLike, radius_mm: float, coverage: ms.Coverage, axes
) -> np.ndarray:
    """(n, 3) uint8 colours of femur ``points``: the head green where covered, red where not."""
    dirs = axes.from_las(coverage.directions_las)
    return HeadColoring(points, center_mm, radius_mm, dirs)(coverage.covered)


# ------------------------------------------------------------------ angles


def _finite(p) -> bool:
    return p is not None and bool(np.all(np.isfinite(p)))


def _arc(center: Vector, a: Vector, b: Vector, radius: float, n: int = 24) -> FloatArray:
    """(n, 3) points of the arc of ``radius`` about ``center`` from direction a to b."""
    a, b = unit(a), unit(b)
    t = np.linspace(0.0, 1.0, n)
    angle = np.arccos(np.clip(a @ b, -1.0, 1.0))
    if angle < 1e-6:
        return np.array([center + radius * a] * 2)
    w = (np.sin((1 - t) * angle)[:, None] * a + np.sin(t * angle)[:, None] * b) / np.sin(angle)
    return center + radius * w


def _angle_lines(
    key: str,
    c: Vector,
    reference: Vector,
    edge_point: Vector,
    value: float | None,
    short: str,
    length: float,
) -> dict[str, Line]:
    """Reference ray, edge ray and the arc between them, all from ``c``."""
    if not _finite(edge_point):
        return {}
    color = LINE_COLORS[key]
    to_edge = unit(np.asarray(edge_point) - c)
    text = short if value is None else f"{short} {value:.0f}°"
    arc_r = 0.55 * length
    return {
        f"{key}_reference": Line(
            np.array([c, c + length * unit(reference)]), LINE_COLORS["reference"], width=2
        ),
        f"{key}_edge": Line(np.array([c, c + length * to_edge]), color),
        f"{key}_arc": Line(_arc(c, reference, to_edge, arc_r), color, label=text, width=2),
    }


def measure_lines(
    sim: Simulation, outcome: Outcome | None = None, *, only: tuple[str, ...] | None = None
) -> dict[str, Line]:
    """Each angle drawn where it is measured, before or after a move.

    * LCEA in the coronal plane and ACEA in the sagittal plane through the
      head centre: the vertical, the line to the rim edge, and the arc;
    * Tönnis: the sourcil from its medial end to the lateral rim edge;
    * version: the line joining the anterior and posterior rim edges in the
      axial plane, with the antero-posterior reference through its middle;
    * neck-shaft angle: the neck axis and the shaft axis;
    * femoral version: the neck axis and the posterior condylar line.

    ``only`` picks families (keys of :data:`LINE_COLORS`).
    """
    axes, r = sim.axes, sim.radius_mm
    if outcome is None:
        c = sim.center_mm
        edges = sim.analysis.edges
        values = sim.before
        tf_distal = np.eye(4)
    else:
        c = outcome.head_center_after_mm
        edges = outcome.edges_after
        values = outcome.after
        tf_distal = outcome.transforms["femur_distal"]
    want = set(only or LINE_COLORS)
    length = r + 22.0
    out: dict[str, Line] = {}

    def edge(name: str):
        e = edges.get(name)
        return None if e is None else e.point_mm

    if "lcea" in want:
        out.update(
            _angle_lines(
                "lcea",
                c,
                axes.superior,
                edge("lateral_rim"),
                values.get("lcea_deg"),
                "LCEA",
                length,
            )
        )
    if "acea" in want:
        out.update(
            _angle_lines(
                "acea",
                c,
                axes.superior,
                edge("anterior_rim"),
                values.get("acea_deg"),
                "ACEA",
                length,
            )
        )
    if "tonnis" in want:
        medial, lateral = edge("sourcil_medial_end"), edge("lateral_rim")
        if _finite(medial) and _finite(lateral):
            t = values.get("tonnis_deg")
            text = "Tönnis" if t is None else f"Tönnis {t:.0f}°"
            mid = 0.5 * (np.asarray(medial) + np.asarray(lateral))
            half = 0.6 * np.linalg.norm(np.asarray(lateral) - np.asarray(medial))
            out["tonnis_sourcil"] = Line(
                np.array([medial, lateral]), LINE_COLORS["tonnis"], label=text
            )
            out["tonnis_reference"] = Line(
                np.array([mid - half * axes.lateral, mid + half * axes.lateral]),
                LINE_COLORS["reference"],
                width=2,
            )
    if "version" in want:
        front, back = edge("version_anterior_rim"), edge("version_posterior_rim")
        if _finite(front) and _finite(back):
            v = values.get("acetabular_version_deg")
            text = "Version" if v is None else f"Version {v:.0f}°"
            front, back = np.asarray(front), np.asarray(back)
            mid = 0.5 * (front + back)
            half = 0.6 * np.linalg.norm(front - back)
            out["version_rim"] = Line(np.array([back, front]), LINE_COLORS["version"], label=text)
            out["version_reference"] = Line(
                np.array([mid - half * axes.anterior, mid + half * axes.anterior]),
                LINE_COLORS["reference"],
                width=2,
            )
    fl = sim.analysis.femur
    neck_end = c + (2.6 * r) * fl.toward_neck
    if "nsa" in want:
        shaft = unit(tf_distal[:3, :3] @ fl.shaft.direction)  # points down the shaft
        nsa = values.get("neck_shaft_deg")
        out["nsa_neck"] = Line(np.array([c, neck_end]), LINE_COLORS["nsa"])
        out["nsa_shaft"] = Line(
            np.array([neck_end - 1.5 * r * shaft, neck_end + 5.0 * r * shaft]),
            LINE_COLORS["nsa"],
            label="NSA" if nsa is None else f"NSA {nsa:.0f}°",
        )
    if "femoral_version" in want and fl.condyles is not None:
        medial_c, lateral_c = (apply(tf_distal, p) for p in fl.condyles)
        fv = values.get("femoral_version_deg")
        out["femoral_version_condyles"] = Line(
            np.array([medial_c, lateral_c]),
            LINE_COLORS["femoral_version"],
            label="Femoral version" if fv is None else f"Femoral version {fv:.0f}°",
        )
    return out


def landmark_labels(sim: Simulation, outcome: Outcome | None = None) -> dict[str, Label]:
    """Named landmarks for student mode: APP points, head centre, rim edges, knee."""
    an = sim.analysis
    names = {
        "asis_left": "left ASIS (front of the pelvis)",
        "asis_right": "right ASIS (front of the pelvis)",
        "pubis": "pubic tubercle (APP)",
    }
    out = {
        k: Label(np.asarray(p, dtype=float), text)
        for k, p in an.pelvis_landmarks.items()
        if (text := names.get(k)) and _finite(p)
    }
    c = sim.center_mm if outcome is None else outcome.head_center_after_mm
    edges = an.edges if outcome is None else outcome.edges_after
    out["head_center"] = Label(np.asarray(c, dtype=float), "femoral head centre")
    for key, text in (
        ("lateral_rim", "lateral edge of the socket roof"),
        ("anterior_rim", "front edge of the socket"),
        ("posterior_rim", "back edge of the socket"),
    ):
        e = edges.get(key)
        if e is not None and _finite(e.point_mm):
            out[key] = Label(np.asarray(e.point_mm, dtype=float), text)
    tf_distal = np.eye(4) if outcome is None else outcome.transforms["femur_distal"]
    if an.femur.condyles is not None:
        out["knee"] = Label(apply(tf_distal, sim.knee_mm), "knee (femoral condyles)")
    shaft_point = apply(tf_distal, an.femur.shaft.point_mm)
    out["shaft"] = Label(shaft_point, "femoral shaft axis")
    return out


# ------------------------------------------------------------------ scene


def scene(
    sim: Simulation,
    outcome: Outcome | None = None,
    *,
    angles: bool = True,
    labels: bool = False,
    fixation: bool = False,
    head_coverage: bool = True,
) -> Scene:
    """The whole picture of one state: pieces, poses, head colours, angles, labels."""
    pieces = bone_meshes(sim)
    tfs = poses(sim, outcome)
    colors = {}
    if head_coverage:
        cov = sim.analysis.coverage if outcome is None else outcome.coverage_after
        if cov is not None:
            femur_key = "femur" if "femur" in pieces else "femur_proximal"
            colors[femur_key] = coverage_colors(
                pieces[femur_key].mesh.points, sim.center_mm, sim.radius_mm, cov, sim.axes
            )
    if fixation and outcome is not None:
        for name, mesh in sim.fixation(outcome).items():
            pieces[name] = Piece(polydata(mesh), METAL, smooth=False)
            tfs[name] = np.eye(4)
    return Scene(
        pieces=pieces,
        poses=tfs,
        colors=colors,
        lines=measure_lines(sim, outcome) if angles else {},
        labels=landmark_labels(sim, outcome) if labels else {},
        focal_point=np.asarray(sim.center_mm, dtype=float),
        side=sim.analysis.side,
    )


def camera(view: str, side: str, focal_point: ArrayLike, distance_mm: float = 650.0):
    """``(position, focal_point, view_up)`` of a standard view (as the app's view buttons)."""
    if view not in VIEWS:
        msg = f"unknown view {view!r}; expected one of {', '.join(VIEWS)}"
        raise ValueError(msg)
    lateral = 1.0 if side == "right" else -1.0  # +x is the patient's right
    up = (0.0, 0.0, 1.0)
    if view == "lateral":
        direction = np.array([lateral, 0.0, 0.0])
    elif view == "superior":
        direction, up = np.array([0.0, 0.0, 1.0]), (0.0, 1.0, 0.0)
    elif view == "false_profile":
        t = np.radians(FALSE_PROFILE_DEG)
        direction = np.array([lateral * np.sin(t), np.cos(t), 0.0])
    else:
        direction = np.array([0.0, 1.0, 0.0])
    f = np.asarray(focal_point, dtype=float)
    return tuple(f + distance_mm * direction), tuple(f), up


def add_scene(plotter: pv.Plotter, sc: Scene, *, ghost: Scene | None = None) -> None:
    """Add a scene's pieces, lines and labels to ``plotter`` (``ghost``: faint, behind)."""
    if ghost is not None:
        for name, piece in ghost.pieces.items():
            if name in sc.pieces and np.allclose(ghost.poses[name], sc.poses[name]):
                continue
            mesh = piece.mesh.transform(ghost.poses[name], inplace=False)
            plotter.add_mesh(mesh, color=GHOST, opacity=0.3, smooth_shading=True)
    for name, piece in sc.pieces.items():
        mesh = piece.mesh.transform(sc.poses.get(name, np.eye(4)), inplace=False)
        kwargs = {"color": piece.color}
        if name in sc.colors:
            mesh.point_data["rgb"] = sc.colors[name]
            kwargs = {"scalars": "rgb", "rgb": True}
        plotter.add_mesh(mesh, opacity=piece.opacity, smooth_shading=piece.smooth, **kwargs)
    for line in sc.lines.values():
        plotter.add_mesh(pv.lines_from_points(line.points), color=line.color, line_width=line.width)
    texts = [(ln.points[-1], ln.label) for ln in sc.lines.values() if ln.label]
    texts += [(lab.position, lab.text) for lab in sc.labels.values()]
    if texts:
        plotter.add_point_labels(
            np.array([p for p, _ in texts], dtype=float),
            [t for _, t in texts],
            font_size=14,
            point_size=6,
            shape_opacity=0.6,
            always_visible=True,
        )


def plot(
    sc: Scene,
    *,
    view: str = "anterior",
    window_size: tuple[int, int] = (900, 700),
    ghost: Scene | None = None,
    off_screen: bool = True,
    zoom: float = 1.0,
    camera_position: tuple | None = None,
) -> pv.Plotter:
    """A plotter showing ``sc`` from a standard ``view``; call ``.show()`` or ``.screenshot()``.

    ``camera_position`` ``(position, focal_point, view_up)`` (mm, measurement
    frame; as :func:`camera` gives) replaces the standard view, e.g. with the
    camera a user turned to.
    """
    pl = pv.Plotter(off_screen=off_screen, window_size=list(window_size))
    pl.set_background("white")
    add_scene(pl, sc, ghost=ghost)
    pl.camera_position = (
        camera(view, sc.side, sc.focal_point) if camera_position is None else camera_position
    )
    pl.camera.view_angle = 30.0
    pl.camera.zoom(zoom)
    return pl


def picture(
    sc: Scene,
    *,
    view: str = "anterior",
    window_size: tuple[int, int] = (900, 700),
    ghost: Scene | None = None,
    zoom: float = 1.0,
    camera_position: tuple | None = None,
) -> np.ndarray:
    """(h, w, 3) uint8 off-screen rendering of ``sc`` from a standard ``view`` (or a camera).

    ``camera_position`` as for :func:`plot`.
    """
    pl = plot(
        sc,
        view=view,
        window_size=window_size,
        ghost=ghost,
        zoom=zoom,
        camera_position=camera_position,
    )
    try:
        return pl.screenshot(return_img=True)
    finally:
        pl.close()


def png_bytes(image: np.ndarray) -> bytes:
    """PNG file contents of an (h, w, 3|4) uint8 image."""
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.asarray(image, dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


__all__ = [
    "BONE",
    "FRAGMENT",
    "HeadColoring",
    "Label",
    "Line",
    "Piece",
    "Scene",
    "VIEWS",
    "add_scene",
    "bone_meshes",
    "camera",
    "coverage_colors",
    "decimate",
    "landmark_labels",
    "measure_lines",
    "picture",
    "plot",
    "png_bytes",
    "polydata",
    "poses",
    "scene",
    "split_far",
    "triangles",
]
