"""Contact pressure of a planned move, per vertex, as colours: the app's and the report's.

The pressure pictures of the app's Load view and of ``hipviz report --load``
come from here (numpy only; the app adds the live view around it):

- :func:`cut_model`: what a cut fixes - the socket piece, its springs
  (:func:`hipviz.contact.articular_surface`) and the hip's load landmarks;
- :func:`pressure_of`: the load and the pressure of one pose (the springs
  moved, the load in the femur's new pose, the solve: milliseconds);
- :func:`piece_colors`: per-vertex colours of the socket piece and the
  femoral head on a fixed scale (:data:`PRESSURE_SCALE_MPA`), so pictures
  before and after compare;
- :func:`pressure_scenes`: render scenes of the socket before and after,
  coloured, with the load as an arrow, for pictures (:func:`hipviz.render.picture`).

Frames: the measurement frame (RAS, mm); pressures in MPa.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from scipy.spatial import cKDTree

from hipviz import contact, loads, render
from hipviz.errors import HipvizError
from hipviz.geometry import Sphere, apply, unit

#: Colour scale of the pressure, MPa: fixed, so pictures before and after compare.
PRESSURE_SCALE_MPA = (0.0, 10.0)
#: Colours of the scale, from a touch of pressure (blue) to its top and beyond (red); where
#: the bones do not press, the bone keeps its own colour, so the coloured patch is the contact.
PRESSURE_STOPS = ("#4575b4", "#91bfdb", "#fee090", "#fc8d59", "#d73027")
#: A head vertex takes the pressure of the spring within this angle (seen from the centre).
HEAD_MATCH_DEG = 4.0
#: Head vertices coloured: within this distance of the head sphere, mm.
HEAD_SHELL_MM = 3.0
#: Rows of the measures table.
LOAD_KEYS = ("contact_peak_mpa", "contact_mean_mpa", "contact_area_mm2", "joint_force_bw")
#: Length of the load arrow per body weight, mm.
ARROW_MM_PER_BW = 10.0
ARROW_COLOR = "#1f4e9c"


def _rgb(color: str) -> np.ndarray:
    return np.array([int(color[i : i + 2], 16) for i in (1, 3, 5)], dtype=float)


def scalar_colors(
    values: ArrayLike,
    *,
    vmin: float,
    vmax: float,
    stops: tuple[str, ...] = ("#ffffff", "#fdd49e", "#fc8d59", "#b30000"),
    missing: str = render.BONE,
) -> np.ndarray:
    """Per-vertex colours for one value per vertex, on a linear colour scale.

    Parameters
    ----------
    values : (n,) float
        One value per vertex (e.g. contact pressure, MPa); NaN: no value.
    vmin, vmax : float
        Values drawn in the first and the last colour of ``stops``; values
        beyond them take those colours.
    stops : tuple of '#rrggbb'
        At least two colours, evenly spaced from ``vmin`` to ``vmax``.
    missing : '#rrggbb'
        Colour of vertices whose value is NaN.

    Returns
    -------
    (n, 3) uint8
    """
    v = np.asarray(values, dtype=float)
    if v.ndim != 1:
        msg = f"expected `values` to have shape (n,), got {v.shape}"
        raise ValueError(msg)
    if not (np.isfinite(vmin) and np.isfinite(vmax) and vmax > vmin):
        msg = f"expected finite vmin < vmax, got vmin={vmin!r}, vmax={vmax!r}"
        raise ValueError(msg)
    if len(stops) < 2:
        msg = f"expected at least two colour stops, got {len(stops)}"
        raise ValueError(msg)
    palette = np.array([_rgb(c) for c in stops])
    t = np.clip((v - vmin) / (vmax - vmin), 0.0, 1.0) * (len(stops) - 1)
    t = np.nan_to_num(t)  # NaN vertices are overwritten below
    i = np.minimum(t.astype(int), len(stops) - 2)
    w = (t - i)[:, None]
    out = (1 - w) * palette[i] + w * palette[i + 1]
    out[np.isnan(v)] = _rgb(missing)
    return np.rint(out).astype(np.uint8)


@dataclass(frozen=True)
class Pressure:
    """The load and the contact pressure of one pose of the hip.

    Attributes
    ----------
    load : hipviz.loads.JointLoad or None
        The force of the head on the socket (None: it could not be computed).
    result : hipviz.contact.ContactResult or None
        Pressure per spring (None: no equilibrium, or no load).
    surface : hipviz.contact.ArticularSurface or None
        The springs where they are in this pose, measurement frame.
    head_center_mm : (3,) float
        The head centre in this pose, measurement frame.
    note : str
        Why there is no pressure ("" when there is).
    """

    load: Any
    result: Any
    surface: Any
    head_center_mm: np.ndarray
    note: str = ""

    def values(self) -> dict[str, float | None]:
        """The table's keys (:data:`LOAD_KEYS`); None where there is no value."""
        out: dict[str, float | None] = dict.fromkeys(LOAD_KEYS)
        if self.load is not None:
            out["joint_force_bw"] = float(self.load.force_bw)
        if self.result is not None:
            out["contact_peak_mpa"] = float(self.result.peak_mpa)
            out["contact_mean_mpa"] = float(self.result.mean_mpa)
            out["contact_area_mm2"] = float(self.result.area_mm2)
        return out


@dataclass(eq=False)
class _CutModel:
    """What a cut fixes: the socket piece, its springs unmoved, the load landmarks."""

    socket_piece: str  # "pelvis" or "acetabular_fragment"
    socket_mesh: Any
    surface: Any  # ArticularSurface, unmoved
    femur_piece: str  # "femur" or "femur_proximal"
    femur_mesh: Any
    geometry: Any  # LoadGeometry or None
    geometry_note: str
    spring_vertices: np.ndarray  # (n_vertices,) bool: socket vertices that touch a spring
    befores: dict = field(default_factory=dict)  # (load, body weight) -> Pressure
    vertex_maps: dict = field(default_factory=dict)  # (piece, n points) -> index into mesh


def _load_geometry(sim: Any) -> tuple[Any, str]:
    """The hip's load landmarks, with the greater trochanter if it can be found."""
    an = sim.analysis
    try:
        return loads.hip_load_geometry(an, sim.pelvis, sim.femur, need_trochanter=True), ""
    except HipvizError as exc:
        try:
            geometry = loads.hip_load_geometry(an, sim.pelvis, sim.femur, need_trochanter=False)
        except HipvizError as exc2:
            return None, str(exc2)
        return geometry, str(exc)


def cut_model(sim: Any) -> _CutModel:
    """The per-cut part of the contact model of ``sim``'s hip (tens of ms: once per cut)."""
    an = sim.analysis
    if sim.pelvis_cut is None:
        socket_piece, socket_mesh = "pelvis", sim.pelvis
    else:
        socket_piece, socket_mesh = "acetabular_fragment", sim.pelvis_cut.fragment
    if sim.femur_cut is None:
        femur_piece, femur_mesh = "femur", sim.femur
    else:
        femur_piece, femur_mesh = "femur_proximal", sim.femur_cut.proximal
    surface = contact.articular_surface(socket_mesh, an.head, an.socket)
    touched = np.zeros(len(socket_mesh.vertices), dtype=bool)
    touched[np.asarray(socket_mesh.faces)[surface.faces].ravel()] = True
    geometry, note = _load_geometry(sim)
    return _CutModel(
        socket_piece, socket_mesh, surface, femur_piece, femur_mesh, geometry, note, touched
    )


def pressure_of(
    model: _CutModel,
    sim: Any,
    transforms: dict,
    load: Any,
    body_weight_kg: float,
    solver: dict[str, Any] | None = None,
) -> Pressure:
    """Load and contact pressure in one pose (``transforms``: an outcome's), milliseconds.

    Only the springs' move, the load in the femur's new pose and the solve:
    the articular surface is the cut's (:func:`cut_model`). ``load`` is a
    load name or a (3,) force (N, on the socket); ``solver`` are keywords of
    :func:`hipviz.contact.solve_contact` (``modulus_mpa``, ``poisson``,
    ``spring``), its defaults when None.
    """
    an = sim.analysis
    eye = np.eye(4)
    tf_frag = transforms.get("fragment", eye)
    tf_prox = transforms.get("femur_proximal", eye)
    tf_dist = transforms.get("femur_distal", eye)
    c = apply(tf_prox, an.head.center_mm)
    head = Sphere(c, an.head.radius_mm, an.head.rms_mm, an.head.n)
    surface = model.surface.moved(tf_frag).with_head_gap(head)
    if model.geometry is None:
        return Pressure(None, None, surface, c, f"no load: {model.geometry_note}")
    try:
        geometry = model.geometry.moved(tf_prox, tf_dist)
        joint = loads.joint_load(load, geometry, body_weight_kg)
    except HipvizError as exc:
        note = f"{exc}" + (f" ({model.geometry_note})" if model.geometry_note else "")
        return Pressure(None, None, surface, c, f"no load: {note}")
    try:
        result = contact.solve_contact(surface, c, joint.force_n, axes=an.axes, **(solver or {}))
    except HipvizError as exc:
        return Pressure(joint, None, surface, c, f"no contact pressure: {exc}")
    return Pressure(joint, result, surface, c)


def _vertex_map(model: _CutModel, piece: str, points: np.ndarray) -> np.ndarray:
    """Index of each sent point of ``piece`` in its mesh (len(mesh) where none matches).

    The view sends a piece's vertices re-indexed (the pelvis split near/far):
    matched once per cut by position.
    """
    key = (piece, len(points))
    if key not in model.vertex_maps:
        mesh = model.socket_mesh if piece == model.socket_piece else model.femur_mesh
        vertices = np.asarray(mesh.vertices, dtype=float)
        _, idx = cKDTree(vertices).query(np.asarray(points, float), distance_upper_bound=1e-3)
        model.vertex_maps[key] = idx
    return model.vertex_maps[key]


def socket_values(model: _CutModel, pressure: Pressure, points: np.ndarray) -> np.ndarray:
    """Pressure at the socket piece's points (unmoved, as sent), MPa; NaN off the springs."""
    idx = _vertex_map(model, model.socket_piece, points)
    per_vertex = contact.pressure_on_vertices(
        model.socket_mesh, model.surface, pressure.result.pressure_mpa
    )
    n = len(per_vertex)
    ok = idx < n
    out = np.full(len(points), np.nan)
    out[ok] = np.where(model.spring_vertices[idx[ok]], per_vertex[idx[ok]], np.nan)
    return out


def head_values(
    sim: Any, pressure: Pressure, points: np.ndarray, tf_piece: np.ndarray
) -> np.ndarray:
    """Pressure the femoral head's points face (points unmoved, as sent), MPa.

    NaN off the head, and where no spring faces the point (the head outside
    the socket).
    """
    an = sim.analysis
    pts = np.asarray(points, dtype=float)
    r = float(an.head.radius_mm)
    near = np.abs(np.linalg.norm(pts - an.head.center_mm, axis=1) - r) <= HEAD_SHELL_MM
    out = np.full(len(pts), np.nan)
    if not near.any():
        return out
    c = pressure.head_center_mm
    moved = apply(tf_piece, pts[near])
    springs = unit(pressure.surface.points - c)
    chord = 2.0 * np.sin(np.radians(HEAD_MATCH_DEG) / 2.0)
    dist, idx = cKDTree(springs).query(unit(moved - c), distance_upper_bound=chord)
    hit = np.isfinite(dist)
    vals = np.full(int(near.sum()), np.nan)
    vals[hit] = pressure.result.pressure_mpa[idx[hit]]
    out[near] = vals
    return out


def pressure_colors(values: np.ndarray, missing: str) -> np.ndarray:
    """(n, 3) uint8 on the fixed scale; NaN and 0 (no contact) in ``missing`` (the bone's)."""
    lo, hi = PRESSURE_SCALE_MPA
    values = np.where(np.asarray(values, dtype=float) > 0, values, np.nan)
    return scalar_colors(values, vmin=lo, vmax=hi, stops=PRESSURE_STOPS, missing=missing)


def piece_colors(
    model: _CutModel, sim: Any, pressure: Pressure, points: dict[str, np.ndarray], tfs: dict
) -> dict[str, np.ndarray]:
    """Pressure colours of the socket piece and the femur piece (given their unmoved points)."""
    if pressure.result is None:
        return {}
    out = {}
    if model.socket_piece in points:
        out[model.socket_piece] = pressure_colors(
            socket_values(model, pressure, points[model.socket_piece]),
            render.BONE,  # the fragment's own colour is too near the scale's to tell apart
        )
    if model.femur_piece in points:
        values = head_values(
            sim, pressure, points[model.femur_piece], tfs.get(model.femur_piece, np.eye(4))
        )
        out[model.femur_piece] = pressure_colors(values, render.FEMUR)
    return out


def arrow(
    start: ArrayLike,
    end: ArrayLike,
    *,
    color: str,
    label: str = "",
    width: float = 4.0,
    head_fraction: float = 0.2,
) -> dict[str, render.Line]:
    """An arrow from ``start`` to ``end`` as two lines: the shaft and a V-shaped head.

    Parameters
    ----------
    start, end : (3,) float
        Tail and tip, mm, scene frame.
    color : '#rrggbb'
    label : str
        Shown at the tip.
    width : float
        Line width, px.
    head_fraction : float
        Length of the head's strokes as a fraction of the arrow's length.

    Returns
    -------
    dict
        ``"shaft"`` and ``"head"`` -> :class:`hipviz.render.Line`.
    """
    a, b = np.asarray(start, dtype=float), np.asarray(end, dtype=float)
    axis = b - a
    length = float(np.linalg.norm(axis))
    if a.shape != (3,) or b.shape != (3,) or not np.isfinite(length) or length == 0:
        msg = f"expected two different finite points of shape (3,), got {a!r} and {b!r}"
        raise ValueError(msg)
    u = axis / length
    # a side direction: any unit vector across the shaft
    side = np.cross(u, np.eye(3)[int(np.argmin(np.abs(u)))])
    side /= np.linalg.norm(side)
    h = head_fraction * length
    barbs = [b - h * u + 0.5 * h * side, b, b - h * u - 0.5 * h * side]
    return {
        "shaft": render.Line(np.array([a, b]), color, label=label, width=width),
        "head": render.Line(np.array(barbs), color, width=width),
    }


def load_arrow(pressure: Pressure) -> dict:
    """The load as an arrow from the head centre, :data:`ARROW_MM_PER_BW` mm per body weight."""
    if pressure.load is None or not pressure.load.force_bw > 0:
        return {}
    c = pressure.head_center_mm
    tip = c + ARROW_MM_PER_BW * pressure.load.force_bw * unit(pressure.load.force_n)
    label = f"load {pressure.load.force_bw:.1f}×BW"
    return arrow(c, tip, color=ARROW_COLOR, label=label, width=5.0)


def socket_scene(sc: Any, colors: dict, lines: dict) -> Any:
    """The scene with the pressure colours and the load arrow, the femur left out (it hides
    the socket's joint surface, where the pressure is)."""
    keep = {k: v for k, v in sc.pieces.items() if not k.startswith("femur")}
    return dataclasses.replace(
        sc,
        pieces=keep,
        poses={k: v for k, v in sc.poses.items() if k in keep},
        colors={k: v for k, v in {**sc.colors, **colors}.items() if k in keep},
        lines={**sc.lines, **lines},
    )


#: Captions of the pressure pictures of a report, before and after.
PICTURE_CAPTIONS = {
    "before": "Contact pressure before (side, femur hidden; blue 0 to red 10 MPa)",
    "after": "Contact pressure after (side, femur hidden; blue 0 to red 10 MPa)",
}


def pressure_scenes(
    sim: Any,
    outcome: Any,
    load: Any,
    body_weight_kg: float,
    solver: dict[str, Any] | None = None,
) -> dict[str, tuple[Any, Pressure]]:
    """The socket coloured by contact pressure, before and after ``outcome``, for pictures.

    Parameters
    ----------
    sim : hipviz.simulate.Simulation
    outcome : hipviz.simulate.Outcome or None
        The planned move; None: before only.
    load : str or (3,) float
        A load name of :func:`hipviz.loads.joint_load` (``"one-leg-stance"``...),
        or the force of the head on the socket, N, measurement frame.
    body_weight_kg : float
    solver : dict, optional
        Keywords of :func:`hipviz.contact.solve_contact` (modulus, Poisson's ratio, law).

    Returns
    -------
    dict
        ``"before"`` (and ``"after"``) -> (:class:`hipviz.render.Scene` without the
        femur, with the pressure colours and the load arrow; :class:`Pressure`).
    """
    model = cut_model(sim)
    shots = [("before", None, {})]
    if outcome is not None:
        shots.append(("after", outcome, outcome.transforms))
    out = {}
    for which, shown, transforms in shots:
        pressure = pressure_of(model, sim, transforms, load, body_weight_kg, solver)
        sc = render.scene(sim, shown, angles=False)
        points = {
            name: np.asarray(sc.pieces[name].mesh.points)
            for name in (model.socket_piece, model.femur_piece)
            if name in sc.pieces
        }
        colors = piece_colors(model, sim, pressure, points, sc.poses)
        lines = {f"load:{k}": v for k, v in load_arrow(pressure).items()}
        out[which] = (socket_scene(sc, colors, lines), pressure)
    return out
