"""The Load view: the load on the hip and the cartilage contact pressure, live.

:class:`LoadView` adds to the page a *Load* control (the plan's ``load`` case
and ``body_weight``), and, when a load is chosen:

- the socket and the femoral head coloured by contact pressure on a fixed
  scale (:data:`PRESSURE_SCALE_MPA`, so before and after compare), with a
  colour bar in MPa that marks the peak before and after;
- the load as an arrow from the head centre (the force the head exerts on the
  socket, 10 mm per body weight);
- rows in the measures table (peak, mean, contact area, joint force), before
  -> after;
- a step of the Explain walk-through that says, in plain words, how the
  pressure changed (:func:`hipviz.explain.pressure_step`);
- the pressure pictures and numbers in the report.

The library does the work (:mod:`hipviz.loads`, :mod:`hipviz.contact`), as
``hipviz simulate --load`` does: once per cut, the socket's articular surface
on the piece that carries it (and the hip's load landmarks once per hip); per
move, only :meth:`~hipviz.contact.ArticularSurface.moved`, the load in the new
pose and the solve. :meth:`LoadView.compute` does it in the measure worker
thread, right after the move is measured (:attr:`HipApp.after_measure`); the
scene layer then only picks up the colours, sent as one array per piece.
"""

from __future__ import annotations

import dataclasses
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import panel as pn
import param
from scipy.spatial import cKDTree

from hipviz import contact, explain, loads, render, report
from hipviz.errors import HipvizError
from hipviz.geometry import Sphere, apply, unit

from . import scene as scene_mod
from .state import PageState
from .text import inert
from .widgets import CSS

LOAD_LABELS = {
    "none": "No load",
    "walking": "Walking (peak)",
    "one-leg-stance": "One-leg stance",
    "standing-up": "Standing up (peak)",
    "pauwels": "Pauwels (this hip)",
}
#: Colour scale of the pressure, MPa: fixed, so pictures before and after compare.
PRESSURE_SCALE_MPA = (0.0, 10.0)
#: Colours of the scale, from a touch of pressure (blue) to its top and beyond (red); where
#: the bones do not press, the bone keeps its own colour, so the coloured patch is the contact.
PRESSURE_STOPS = ("#4575b4", "#91bfdb", "#fee090", "#fc8d59", "#d73027")
#: Length of the load arrow per body weight, mm.
ARROW_MM_PER_BW = 10.0
ARROW_COLOR = "#1f4e9c"
#: Rows of the measures table.
LOAD_KEYS = ("contact_peak_mpa", "contact_mean_mpa", "contact_area_mm2", "joint_force_bw")
#: A head vertex takes the pressure of the spring within this angle (seen from the centre).
HEAD_MATCH_DEG = 4.0
#: Head vertices coloured: within this distance of the head sphere, mm.
HEAD_SHELL_MM = 3.0
#: Outcomes whose pressure is kept (the latest measured, and the few the view may still draw).
CACHE_SIZE = 8


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


@dataclass(frozen=True)
class LoadState:
    """Before and after one move, and what the view draws of the after."""

    before: Pressure
    after: Pressure
    overlay: scene_mod.Overlay = field(default_factory=scene_mod.Overlay)


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
    model: _CutModel, sim: Any, transforms: dict, load: str, body_weight_kg: float
) -> Pressure:
    """Load and contact pressure in one pose (``transforms``: an outcome's), milliseconds.

    Only the springs' move, the load in the femur's new pose and the solve:
    the articular surface is the cut's (:func:`cut_model`).
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
        result = contact.solve_contact(surface, c, joint.force_n, axes=an.axes)
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
    return scene_mod.scalar_colors(values, vmin=lo, vmax=hi, stops=PRESSURE_STOPS, missing=missing)


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


def load_arrow(pressure: Pressure) -> dict:
    """The load as an arrow from the head centre, :data:`ARROW_MM_PER_BW` mm per body weight."""
    if pressure.load is None or not pressure.load.force_bw > 0:
        return {}
    c = pressure.head_center_mm
    tip = c + ARROW_MM_PER_BW * pressure.load.force_bw * unit(pressure.load.force_n)
    label = f"load {pressure.load.force_bw:.1f}×BW"
    return scene_mod.arrow(c, tip, color=ARROW_COLOR, label=label, width=5.0)


def colorbar_html(before: float | None = None, after: float | None = None) -> str:
    """The pressure colour bar, MPa, with the peak before and after marked."""
    lo, hi = PRESSURE_SCALE_MPA
    gradient = ", ".join(
        f"{c} {100 * i / (len(PRESSURE_STOPS) - 1):.0f}%" for i, c in enumerate(PRESSURE_STOPS)
    )
    ticks = "".join(
        f'<span style="position:absolute;left:{100 * (v - lo) / (hi - lo):.1f}%;'
        f'transform:translateX(-50%)">{v:g}</span>'
        for v in np.linspace(lo, hi, 6)
    )
    marks = ""
    for name, value, colour in (("before", before, "#888"), ("after", after, "#111")):
        if value is None or not np.isfinite(value):
            continue
        x = 100 * (min(max(value, lo), hi) - lo) / (hi - lo)
        marks += (
            f'<span class="hv-cbar-mark" data-which="{name}" data-mpa="{value:.2f}" '
            f'style="position:absolute;left:{x:.1f}%;top:-3px;height:20px;'
            f'border-left:2px solid {colour}"></span>'
        )
    peaks = []
    if before is not None and np.isfinite(before):
        peaks.append(f"before {before:.1f}")
    if after is not None and np.isfinite(after):
        peaks.append(f"now {after:.1f}")
    caption = "Contact pressure, MPa (fixed scale 0–10; red beyond)"
    if peaks:
        caption += " · peak " + " → ".join(peaks) + " MPa"
    return (
        f'<div class="hv-cbar"><div class="hv-cbar-caption">{inert(caption)}</div>'
        f'<div style="position:relative;height:14px;margin:4px 10px 0;border:1px solid #999;'
        f'background:linear-gradient(to right, {gradient})">{marks}</div>'
        f'<div style="position:relative;height:14px;margin:0 10px;font-size:11px;color:#555">'
        f"{ticks}</div></div>"
    )


class LoadView(pn.viewable.Viewer):
    """The Load control, the pressure layer of the 3D view, its rows and colour bar.

    Parameters
    ----------
    page : PageState
        The page's plan (``load``, ``body_weight``) and session.
    scene : SceneDriver
        Draws the pressure colours and the load arrow (a layer named ``load``).
    """

    see_socket = param.Boolean(
        default=False,
        doc="Hide the femur and look into the socket from the side, where the pressure is.",
    )

    def __init__(self, page: PageState, scene: Any, **params: Any):
        super().__init__(**params)
        self.page = page
        self.scene = scene
        plan = page.plan
        self.w_load = pn.widgets.Select.from_param(
            plan.param.load, options={v: k for k, v in LOAD_LABELS.items()}, name="Load"
        )
        self.w_body_weight = pn.widgets.FloatInput.from_param(
            plan.param.body_weight, name="Body weight (kg)", width=130
        )
        self.w_see_socket = pn.widgets.Checkbox.from_param(
            self.param.see_socket, label="See the socket (hide the femur)"
        )
        self.colorbar = pn.pane.HTML(
            colorbar_html(),
            stylesheets=[CSS],
            sizing_mode="stretch_width",
            css_classes=["hv-colorbar"],
            visible=plan.load != "none",
            margin=(0, 8),
        )
        self.note = pn.pane.HTML("", sizing_mode="stretch_width", visible=False, margin=(0, 8))
        self._view_before: str | None = None  # the view before Explain's pressure step
        self._lock = threading.Lock()
        self._models: dict[Any, _CutModel] = {}
        self._states: OrderedDict[int, tuple[Any, LoadState]] = OrderedDict()
        scene.add_layer("load", self._layer)
        scene.add_move_layer("load", self._move_colors)
        plan.param.watch(self._on_load, ["load"])
        plan.param.watch(self._on_mode, ["mode"])
        self.param.watch(self._on_see_socket, ["see_socket"])

    def __panel__(self) -> pn.viewable.Viewable:
        """The Load card of the left column."""
        return pn.Card(
            self.w_load,
            self.w_body_weight,
            self.w_see_socket,
            pn.pane.Markdown(
                "Contact pressure on the socket and the head, from the bone-to-bone gap "
                "(bone only: no cartilage is seen). See docs/mechanics.md.",
                styles={"font-size": "12px", "color": "#666"},
                disable_math=True,
            ),
            title="Load",
            sizing_mode="stretch_width",
        )

    def _on_load(self, event: param.parameterized.Event) -> None:
        self.colorbar.visible = event.new != "none"
        if event.new == "none":
            self.note.visible = False

    def explain_shown(self, step: explain.Step) -> None:
        """Explain mode shows ``step``: into the socket for the pressure step, back after."""
        pressure = step.key == explain.PRESSURE_STEP
        if pressure and not self.see_socket:
            self._view_before = self.page.plan.view
            self.see_socket = True
        elif not pressure and self._view_before is not None:
            self.see_socket = False
            self.page.plan.view, self._view_before = self._view_before, None

    def _on_mode(self, event: param.parameterized.Event) -> None:
        if event.new != "explain" and self._view_before is not None:  # left on the pressure step
            self.explain_shown(explain.Step("", "", "", "after"))

    def _on_see_socket(self, event: param.parameterized.Event) -> None:
        if event.new:
            self.page.plan.view = "lateral"  # into the socket
        self._show_femur()

    def _show_femur(self) -> None:
        """Hide the femur's pieces while :attr:`see_socket` is on (new pieces too)."""
        view = self.scene.view3d
        for name in view.mesh_names:
            if name.startswith("femur"):
                visible = view.actors.get(name, {}).get("visible", True)
                if visible == self.see_socket:
                    view.set_style(name, visible=not self.see_socket)

    # ---------------------------------------------------------------- model

    def _model(self, sim: Any) -> _CutModel:
        key = (id(sim), id(sim.pelvis_cut), id(sim.femur_cut))
        model = self._models.get(key)
        if model is None:
            model = cut_model(sim)
            self._models = {key: model}  # the previous cut's springs are no longer needed
        return model

    def compute(self, out: Any) -> LoadState | None:
        """Pressure before and after ``out``'s move and what it draws (None without a load).

        Called in the measure worker thread right after the move is measured
        (milliseconds); the layer then only picks the result up. Safe while
        the plan goes on changing: it reads the plan's load once.
        """
        plan, session = self.page.plan, self.page.session
        load, weight = plan.load, float(plan.body_weight)
        if load == "none" or out is None:
            return None
        with session.lock:
            sim = session.sim
            if sim is None:
                return None
            model = self._model(sim)
            before = model.befores.get((load, weight))
            if before is None:
                before = pressure_of(model, sim, {}, load, weight)
                model.befores = {(load, weight): before}
            after = pressure_of(model, sim, out.transforms, load, weight)
            tfs = render.poses(sim, out)
            points = {}
            for name in (model.socket_piece, model.femur_piece):
                if name in self.scene.view3d.mesh_names:
                    points[name] = self.scene.mesh_points(name)
            colors = piece_colors(model, sim, after, points, tfs)
        state = LoadState(before, after, scene_mod.Overlay(lines=load_arrow(after), colors=colors))
        with self._lock:
            self._states[id(out)] = (out, state)
            self._states.move_to_end(id(out))
            while len(self._states) > CACHE_SIZE:
                self._states.popitem(last=False)
        return state

    def _move_colors(self, sim: Any, transforms: Any, plan: Any) -> dict[str, np.ndarray]:
        """Pressure colours of a move not yet measured, sent with its matrices (milliseconds).

        On the event loop, without the session's lock (a measure may hold it):
        only the cut's springs moved, the load in the new pose and the solve,
        from the cut model the measures made (none before the first: the
        colours then come with the measure). The same numbers as
        :meth:`compute` gives the measured move.
        """
        load, weight = plan.load, float(plan.body_weight)
        model = self._models.get((id(sim), id(sim.pelvis_cut), id(sim.femur_cut)))
        if load == "none" or model is None:
            return {}
        view = self.scene.view3d
        try:
            pressure = pressure_of(model, sim, transforms, load, weight)
            points = {
                name: self.scene.mesh_points(name)
                for name in (model.socket_piece, model.femur_piece)
                if name in view.mesh_names
            }
            return piece_colors(model, sim, pressure, points, render.poses(sim, transforms))
        except HipvizError:  # the measured picture reports it
            return {}

    def state(self, out: Any) -> LoadState | None:
        """The pressure of ``out``: computed already in the worker, else now."""
        if self.page.plan.load == "none" or out is None:
            return None
        with self._lock:
            kept = self._states.get(id(out))
        if kept is not None and kept[0] is out and self._drawable(kept[1]):
            return kept[1]
        try:
            return self.compute(out)
        except HipvizError as exc:
            self._show_note(f"contact pressure not shown: {exc}")
            return None

    def _drawable(self, state: LoadState) -> bool:
        """True when ``state`` colours the pieces the view holds now, vertex for vertex.

        A state computed while the view had other pieces (the first hip is
        measured before its pieces are sent) is computed again.
        """
        if state.after.result is None:
            return True
        view = self.scene.view3d
        model = next(iter(self._models.values()), None)
        if model is None:
            return False
        for name in (model.socket_piece, model.femur_piece):
            if name in view.mesh_names:
                colors = state.overlay.colors.get(name)
                if colors is None or len(colors) != len(self.scene.mesh_points(name)):
                    return False
        return True

    def _layer(self, sim: Any, out: Any, plan: Any) -> scene_mod.Overlay:
        self._show_femur()
        state = self.state(out)
        if state is None:
            return scene_mod.Overlay()
        self._show(state, out)
        return state.overlay

    # ---------------------------------------------------------------- text

    def _show(self, state: LoadState, out: Any) -> None:
        peak_before = state.before.values()["contact_peak_mpa"]
        peak_after = state.after.values()["contact_peak_mpa"] if _moved(out) else None
        if peak_before is not None and peak_after is not None:
            if abs(peak_after - peak_before) < 0.05:  # as the table: no change, one value
                peak_after = None
        self.colorbar.object = colorbar_html(peak_before, peak_after)
        self._show_note(state.after.note or state.before.note)

    def _show_note(self, text: str) -> None:
        self.note.object = f'<div class="hv-status">{inert(text)}</div>' if text else ""
        self.note.visible = bool(text)

    def rows(self, out: Any) -> list[report.Row]:
        """The measures table's rows (:data:`LOAD_KEYS`), before -> after; none without a load."""
        state = self.state(out)
        if state is None:
            return []
        after = state.after.values() if _moved(out) else None
        return report.measure_rows(state.before.values(), after, keys=LOAD_KEYS)

    def explain_step(self, out: Any) -> explain.Step | None:
        """The Explain step on the pressure, from this plan's numbers (None without a load)."""
        state = self.state(out)
        if state is None:
            return None
        return explain.pressure_step(
            state.before.values(),
            state.after.values() if _moved(out) else None,
            self.page.plan.load,
        )

    # ---------------------------------------------------------------- report

    def report_pictures(self, scenes: dict[str, Any], out: Any) -> dict[str, Any]:
        """``scenes`` (caption -> (render.Scene, after?)) with pressure colours and arrow,
        without the femur (to be seen from the side, into the socket).

        Returns caption -> render.Scene; empty without a load.
        """
        state = self.state(out)
        if state is None:
            return {}
        sim = self.page.session.sim
        model = self._model(sim)
        coloured = {}
        for caption, (sc, after) in scenes.items():
            pressure = state.after if after else state.before
            tfs = sc.poses
            points = {
                name: np.asarray(sc.pieces[name].mesh.points)
                for name in (model.socket_piece, model.femur_piece)
                if name in sc.pieces
            }
            colors = piece_colors(model, sim, pressure, points, tfs)
            lines = {f"load:{k}": v for k, v in load_arrow(pressure).items()}
            coloured[caption] = _replace_scene(sc, colors, lines)
        return coloured


def _replace_scene(sc: Any, colors: dict, lines: dict) -> Any:
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


def _moved(out: Any) -> bool:
    return out.plan["procedure"] is not None or out.plan["femoral"]["level_mm"] is not None


__all__ = [
    "LOAD_KEYS",
    "LOAD_LABELS",
    "PRESSURE_SCALE_MPA",
    "LoadState",
    "LoadView",
    "Pressure",
    "colorbar_html",
    "cut_model",
    "pressure_of",
]
