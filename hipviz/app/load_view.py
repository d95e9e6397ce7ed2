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

The library does the work (:mod:`hipviz.loads`, :mod:`hipviz.contact`,
:mod:`hipviz.pressure`), as
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

from hipviz import explain, render, report
from hipviz.errors import HipvizError
from hipviz.pressure import (
    ARROW_COLOR,
    ARROW_MM_PER_BW,
    LOAD_KEYS,
    PRESSURE_SCALE_MPA,
    PRESSURE_STOPS,
    Pressure,
    _CutModel,
    cut_model,
    load_arrow,
    piece_colors,
    pressure_of,
    socket_scene,
)

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
#: Outcomes whose pressure is kept (the latest measured, and the few the view may still draw).
CACHE_SIZE = 8


@dataclass(frozen=True)
class LoadState:
    """Before and after one move, and what the view draws of the after."""

    before: Pressure
    after: Pressure
    overlay: scene_mod.Overlay = field(default_factory=scene_mod.Overlay)


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
        self._pressure_step = False  # Explain shows its pressure step
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
        self._pressure_step = pressure
        if pressure and not self.see_socket:
            self._view_before = self.page.plan.view
            self.see_socket = True
        elif not pressure and self._view_before is not None:
            self.see_socket = False
            self.page.plan.view, self._view_before = self._view_before, None

    def _on_mode(self, event: param.parameterized.Event) -> None:
        if event.new != "explain":
            self._pressure_step = False
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
        if self._pressure_step and plan.mode == "explain":
            # seen from the side the roof-cover angle lies edge-on, its label on the load's
            return dataclasses.replace(state.overlay, hide_angles=True)
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
            coloured[caption] = socket_scene(sc, colors, lines)
        return coloured


def _moved(out: Any) -> bool:
    return out.plan["procedure"] is not None or out.plan["femoral"]["level_mm"] is not None


__all__ = [
    "ARROW_COLOR",
    "ARROW_MM_PER_BW",
    "LOAD_KEYS",
    "LOAD_LABELS",
    "PRESSURE_SCALE_MPA",
    "PRESSURE_STOPS",
    "LoadState",
    "LoadView",
    "Pressure",
    "colorbar_html",
    "cut_model",
    "load_arrow",
    "piece_colors",
    "pressure_of",
]
