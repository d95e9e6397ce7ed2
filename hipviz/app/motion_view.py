"""The Motion view: turn the leg, see where bone meets bone, and what the plan changes.

:class:`MotionView` holds three sliders (flexion, adduction, rotation, ISB
order as :mod:`hipviz.motion`), a button per limit that animates the leg to
it, and the range-of-motion table before -> after the current plan. It draws
through a layer of the scene driver (:meth:`SceneDriver.add_layer`): the
femoral pieces' placements (one matrix each, no new meshes per step) and the
contact spot in red on both bones.

A slider step is a pose query of a :class:`hipviz.motion.MotionModel`
(about 0.1-1 ms) on the event loop. The model and the nine limits before and
after the plan (some hundred milliseconds, and a new cut's collision
structures) are computed in a worker thread (:data:`workers.MOTION_POOL`),
one at a time per page, at the latest plan; meanwhile the table says
"computing…" and the sliders use the model of the plan before.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from typing import Any

import numpy as np
import panel as pn
import param

from hipviz import motion, render
from hipviz.geometry import apply, invert

from . import web
from .scene import Overlay, SceneDriver
from .state import PageState
from .text import inert
from .widgets import CSS, LiveSlider
from .workers import MOTION_POOL

log = logging.getLogger("hipviz.app")

#: Slider range of each angle, degrees (the limits search up to 150°).
ANGLE_RANGE = (-150.0, 150.0)
#: Vertices within this distance of a contact point are lit, mm.
SPOT_MM = 3.0
#: Colour of the contact spot.
CONTACT = "#d62728"
#: Half-length of the arms of the cross that marks the deepest contact point
#: through the bones (so it shows from any side), mm.
MARK_MM = 6.0
#: A limit button takes the leg this far past the limit, so the contact shows, degrees.
PAST_LIMIT_DEG = 1.0
#: The pose (flexion, adduction, rotation) at ``t`` degrees along each limit's motion.
LIMIT_POSES: dict[str, Callable[[float], tuple[float, float, float]]] = {
    "flexion": lambda t: (t, 0.0, 0.0),
    "extension": lambda t: (-t, 0.0, 0.0),
    "abduction": lambda t: (0.0, -t, 0.0),
    "adduction": lambda t: (0.0, t, 0.0),
    "internal_rotation": lambda t: (0.0, 0.0, t),
    "external_rotation": lambda t: (0.0, 0.0, -t),
    "internal_rotation_90": lambda t: (90.0, 0.0, t),
    "external_rotation_90": lambda t: (90.0, 0.0, -t),
    "fadir": lambda t: (90.0, motion.FADIR_ADDUCTION_DEG, t),
}
FEMORAL_PIECES = ("femur", "femur_proximal", "femur_distal")
#: What else turns with the leg: the femoral fixation (drawn where the plan put it) and the
#: femur's faint "before" copy.
FOLLOW_THE_LEG = ("fix:blade_plate", "fix:plate_screw_", "ghost:femur")


def _rgb(color: str) -> np.ndarray:
    return np.array([int(color[i : i + 2], 16) for i in (1, 3, 5)], dtype=np.uint8)


def limit_pose(key: str, angle_deg: float) -> tuple[float, float, float]:
    """(flexion, adduction, rotation), degrees, of limit ``key`` reached at ``angle_deg``.

    Raises
    ------
    ValueError
        For a key not in :data:`hipviz.motion.LIMITS` or a non-finite angle.
    """
    if key not in LIMIT_POSES:
        msg = f"unknown limit {key!r}; expected one of {', '.join(LIMIT_POSES)}"
        raise ValueError(msg)
    if not np.isfinite(angle_deg):
        msg = f"expected a finite angle for limit {key!r}, got {angle_deg!r}"
        raise ValueError(msg)
    return LIMIT_POSES[key](float(angle_deg))


def rom_rows_html(before: dict | None, after: dict | None, *, moved: bool) -> str:
    """The range-of-motion table as HTML: one row per limit, before -> after, contact.

    ``before`` and ``after`` are :func:`hipviz.motion.rom_dict` results (None:
    still being computed). Every text goes through :func:`text.inert`.
    """

    def cell(res: dict | None, key: str) -> str:
        if res is None:
            return "computing…"
        v = res["rom_deg"].get(key)
        if v is not None:
            return f"{v:.1f}°"
        # None is either no contact at all or no room to start the motion: say which
        note = res.get("rom_notes", {}).get(key, "")
        return "no room to start" if "meet before" in note else "none within 150°"

    rows = []
    for key, (title, _) in motion.LIMITS.items():
        b, a = cell(before, key), cell(after, key)
        value = f"{b} → {a}" if moved else b
        where = ""
        shown = after if moved else before
        if shown is not None:
            imp = shown["impingement"].get(key)
            if imp:
                parts = imp["parts"]
                where = f"{imp['clock']:.1f} o'clock, {parts['femur']} / {parts['pelvis']}"
            elif key in shown.get("rom_notes", {}):
                where = shown["rom_notes"][key]
        rows.append(
            f'<tr data-key="{key}"><td>{inert(title)}</td>'
            f'<td class="hv-value">{inert(value)}</td><td>{inert(where)}</td></tr>'
        )
    head = "before → after" if moved else "limit"
    where = "contact after (clock, femur / pelvis)" if moved else "contact (clock, femur / pelvis)"
    return (
        '<table class="hv-rom"><thead><tr><th>motion</th>'
        f"<th>{inert(head)}</th><th>{inert(where)}</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>"
        f'<div class="hv-status">{inert(motion.BONE_ONLY)}</div>'
    )


class MotionView(pn.viewable.Viewer):
    """Sliders that turn the leg, a button per limit, and the range-of-motion table.

    Parameters
    ----------
    page : PageState
        The page's plan, session and loading flag.
    scene : SceneDriver
        Draws the leg's pose and the contact (a layer named ``"motion"``).
    on_limits : callable, optional
        Called with ``(before, after, outcome)`` (:func:`hipviz.motion.rom_dict`
        results) when the limits of a new plan are known (Explain quotes them).

    Attributes
    ----------
    rom_before, rom_after : dict or None
        The limits of the hip before and after the plan (None while computing).
    contact : hipviz.motion.PoseContact or None
        The contact at the pose shown.
    """

    flexion = param.Number(default=0.0, bounds=ANGLE_RANGE, doc="Flexion (+) / extension (−), °.")
    adduction = param.Number(
        default=0.0, bounds=ANGLE_RANGE, doc="Adduction (+) / abduction (−), °."
    )
    rotation = param.Number(
        default=0.0, bounds=ANGLE_RANGE, doc="Internal (+) / external (−) rotation, °."
    )

    def __init__(
        self,
        page: PageState,
        scene: SceneDriver,
        *,
        on_limits: Callable[[dict, dict, Any], None] | None = None,
        **params: Any,
    ):
        super().__init__(**params)
        self.page, self.scene = page, scene
        self._on_limits = on_limits
        self.rom_before: dict | None = None
        self.rom_after: dict | None = None
        self.contact: motion.PoseContact | None = None
        self._model: motion.MotionModel | None = None
        self._model_for: tuple[Any, Any] = (None, None)  # (sim, outcome) of the model
        self._limits: dict[str, motion.Limit] = {}
        self._base: tuple[Any, Any, Any, Any] = (None, None, None, None)  # the hip as it is
        self._wanted: tuple[Any, Any] = (None, None)
        self._computing = False
        self._verts: dict[str, tuple[Any, Any]] = {}  # piece -> (points sent, as float)
        kw = {"start": ANGLE_RANGE[0], "end": ANGLE_RANGE[1], "step": 0.5, "width": 420}
        self.w_flexion = LiveSlider.from_param(
            self.param.flexion, name="Flexion + / extension − (°)", **kw
        )
        self.w_adduction = LiveSlider.from_param(
            self.param.adduction, name="Adduction + / abduction − (°)", **kw
        )
        self.w_rotation = LiveSlider.from_param(
            self.param.rotation, name="Rotation internal + / external − (°)", **kw
        )
        self.w_neutral = pn.widgets.Button(label="Standing (0, 0, 0)", width=150)
        self.w_neutral.on_click(lambda _: self.go_to((0.0, 0.0, 0.0)))
        self.buttons = {}
        for key, (_, short) in motion.LIMITS.items():
            button = pn.widgets.Button(label=short, width=80, disabled=True)
            button.on_click(lambda _, key=key: self.go_to_limit(key))
            self.buttons[key] = button
        self.table = pn.pane.HTML(
            rom_rows_html(None, None, moved=False),
            stylesheets=[CSS],
            sizing_mode="stretch_width",
            css_classes=["hv-table"],
        )
        self.status = pn.pane.HTML("", stylesheets=[CSS], css_classes=["hv-status"])
        self.card = pn.Card(
            self.w_flexion,
            self.w_adduction,
            self.w_rotation,
            pn.Row(self.w_neutral, self.status),
            pn.pane.HTML(
                '<div class="hv-status">Go to a limit (the leg stops just past it):</div>',
                stylesheets=[CSS],
            ),
            pn.FlexBox(*self.buttons.values()),
            self.table,
            title="Motion: range of motion (bone only)",
            collapsed=True,
            sizing_mode="stretch_width",
        )
        self.param.watch(self._on_pose, ["flexion", "adduction", "rotation"])
        self.card.param.watch(self._on_open, ["collapsed"])
        scene.add_layer("motion", self._layer)

    def __panel__(self) -> pn.viewable.Viewable:
        return self.card

    # ------------------------------------------------------------------ pose

    @property
    def angles(self) -> tuple[float, float, float]:
        """(flexion, adduction, rotation) shown, degrees."""
        return (float(self.flexion), float(self.adduction), float(self.rotation))

    def _on_pose(self, *events: param.parameterized.Event) -> None:
        self.scene.refresh_layers()

    def _layer(self, sim: Any, out: Any, plan: Any) -> Overlay:
        """The leg at the sliders' pose and the contact there (nothing at the standing pose)."""
        if plan.mode == "explain":
            return Overlay()
        if out is not self._wanted[1] and not self.card.collapsed:
            self.request_limits(sim, out)
        model = self._model if self._model_for[0] is sim else None
        if model is None or self.angles == (0.0, 0.0, 0.0):
            self.contact = None
            return Overlay()
        self.contact = contact = model.query(*self.angles)
        poses = {
            name: contact.tf_femur @ piece.tf
            for name, piece in model.femur.items()
            if name in FEMORAL_PIECES
        }
        # the plate and its screws are placed at the plan's pose, the faint copy where the
        # femur started: the leg's turn about the head centre carries them as it does the bone
        poses |= {
            name: contact.tf_femur
            for name in self.scene.view3d.mesh_names
            if name.startswith(FOLLOW_THE_LEG)
        }
        world = dict(poses)
        world |= {name: piece.tf for name, piece in model.pelvis.items()}
        touched = set(contact.femur_faces) | set(contact.pelvis_faces)  # pieces in contact
        colors = {}
        for name in world:
            if name not in self.scene.view3d.mesh_names:
                continue
            base = render.FEMUR if name in poses else render.BONE
            if name in touched:
                hit = self._spot(name, apply(invert(world[name]), contact.points_mm))
            else:
                hit = np.zeros(0, dtype=int)
            if name in poses or len(hit):  # the leg's own (coverage) colours go while it turns
                rgb = np.tile(_rgb(base), (len(self.scene.mesh_points(name)), 1))
                rgb[hit] = _rgb(CONTACT)
                colors[name] = rgb
        return Overlay(colors=colors, poses=poses, lines=self._mark(contact))

    @staticmethod
    def _mark(contact: motion.PoseContact) -> dict[str, render.Line]:
        """A red cross at the deepest contact point, drawn through the bones, labelled."""
        if not contact.touching:
            return {}
        p = contact.points_mm[int(np.argmax(contact.depth_mm))]
        arms = {
            f"mark{i}": render.Line(
                np.array([p - MARK_MM * e, p + MARK_MM * e]), CONTACT, width=4.0, on_top=True
            )
            for i, e in enumerate(np.eye(3))
        }
        arms["mark0"] = dataclasses.replace(arms["mark0"], label="contact")
        return arms

    def _spot(self, name: str, local_mm: np.ndarray) -> np.ndarray:
        """Vertices of piece ``name`` (as sent) within SPOT_MM of the contact points.

        The contact points are few and close together: a box around them
        picks the candidates, then exact distances (faster than a tree here).
        """
        points = self.scene.mesh_points(name)
        # the owner of the points the view holds: the same object until the piece is re-sent
        sent = points.base if points.base is not None else points
        cached = self._verts.get(name)
        if cached is None or cached[0] is not sent:
            cached = (sent, np.asarray(points, dtype=float))
            self._verts[name] = cached
        verts, pts = cached[1], np.asarray(local_mm, dtype=float).reshape(-1, 3)
        lo, hi = pts.min(axis=0) - SPOT_MM, pts.max(axis=0) + SPOT_MM
        cand = np.flatnonzero(((verts >= lo) & (verts <= hi)).all(axis=1))
        d2 = ((verts[cand, None, :] - pts[None, :, :]) ** 2).sum(axis=2).min(axis=1, initial=np.inf)
        return cand[d2 <= SPOT_MM**2]

    def go_to(self, target: tuple[float, float, float]) -> None:
        """Animate the leg from the pose shown to ``target`` (flexion, adduction, rotation)."""
        lo, hi = ANGLE_RANGE
        end = np.clip(np.asarray(target, dtype=float), lo, hi)
        if not np.all(np.isfinite(end)):
            msg = f"expected three finite angles, got {target!r}"
            raise ValueError(msg)
        start = np.asarray(self.angles)

        def frame(s: float) -> None:
            f, a, r = (np.round((start + s * (end - start)) * 2) / 2).tolist()
            self.param.update(flexion=f, adduction=a, rotation=r)

        if pn.state.curdoc is None or self.page.doc is None:
            frame(1.0)  # outside a server: at once
        else:
            self.scene.play(frame)

    def go_to_limit(self, key: str) -> None:
        """Animate the leg to just past limit ``key`` of the plan (nothing if it has none)."""
        lim = self._limits.get(key)
        if lim is None or lim.angle_deg is None:
            return
        self.go_to(limit_pose(key, lim.angle_deg + PAST_LIMIT_DEG))

    # ------------------------------------------------------------------ limits

    def _on_open(self, event: param.parameterized.Event) -> None:
        session = self.page.session
        if not event.new and session.sim is not None and session.outcome is not None:
            self.request_limits(session.sim, session.outcome)

    def request_limits(self, sim: Any, out: Any) -> None:
        """Compute the motion model and the limits of ``out``'s plan, off the event loop.

        One computation at a time; when it ends, the latest plan asked for
        is computed next. Outside a server, computed at once.
        """
        self._wanted = (sim, out)
        if sim is None or out is None:
            return
        if self._base[0] is not sim:  # a new hip: its own limits before
            self.rom_before = None
        if self.page.doc is None:
            self._show(sim, out, self._compute(sim, out))
            return
        if self._computing:
            return
        self._computing = True
        self.status.object = '<span class="hv-status">computing the limits…</span>'
        self._show_table(computing=True)
        doc = self.page.doc

        def work() -> None:
            try:
                result: Any = self._compute(sim, out)
            except Exception as exc:  # shown on the page by _done
                result = exc
            try:
                web.next_tick(doc, lambda: self._done(sim, out, result))
            except Exception:  # the page closed meanwhile
                log.debug("limits computed after their page closed")

        MOTION_POOL.submit(work)

    def _compute(self, sim: Any, out: Any) -> tuple[Any, dict, dict, dict]:
        """(model after, limits after, rom before, rom after); in a worker thread.

        The hip as it is is computed once per hip (its model answers the
        sliders while nothing is planned).
        """
        base_sim, base, base_limits, before = self._base
        if base_sim is not sim:
            base = sim.motion(None)
            base_limits = base.limits()
            before = motion.rom_dict(base_limits, base.landmarks)
            self._base = (sim, base, base_limits, before)
        moved = sim.pelvis_cut is not None or sim.femur_cut is not None
        moved = moved or any(not np.allclose(tf, np.eye(4)) for tf in out.transforms.values())
        if not moved:
            return base, base_limits, before, before
        model = sim.motion(out)
        limits = model.limits()
        return model, limits, before, motion.rom_dict(limits, model.landmarks)

    def _done(self, sim: Any, out: Any, result: Any) -> None:
        self._computing = False
        if self._wanted != (sim, out):
            self.request_limits(*self._wanted)
            if isinstance(result, Exception):
                return
        self._show(sim, out, result)

    def _show(self, sim: Any, out: Any, result: Any) -> None:
        if isinstance(result, Exception):
            log.error("range of motion failed", exc_info=result)
            self.status.object = f'<span class="hv-status">{inert(f"no limits: {result}")}</span>'
            return
        model, limits, before, after = result
        self._model, self._model_for, self._limits = model, (sim, out), limits
        self.rom_before, self.rom_after = before, after
        if not self._computing:
            self.status.object = ""
        self._show_table(computing=self._computing)
        for key, button in self.buttons.items():
            lim = limits.get(key)
            button.disabled = lim is None or lim.angle_deg is None
        if self._on_limits is not None:
            self._on_limits(before, after, out)
        if self.angles != (0.0, 0.0, 0.0):
            self.scene.refresh_layers()

    def _show_table(self, *, computing: bool) -> None:
        out = self._wanted[1]
        moved = out is not None and bool(
            out.plan.get("procedure") is not None or out.plan["femoral"]["level_mm"] is not None
        )
        after = None if computing else self.rom_after
        self.table.object = rom_rows_html(self.rom_before, after, moved=moved)

    def close(self) -> None:
        """The page closed: let go of the model."""
        self.scene.remove_layer("motion")
        self._model, self._model_for = None, (None, None)
        self._base = (None, None, None, None)
        self._verts.clear()
