"""The page's modes: Plan, Learn and Explain.

:class:`Modes` owns the mode picker in the page's header and the Explain
walk-through: one step at a time in plain words (:mod:`hipviz.explain`),
each bone step shown on this hip by the scene driver (the freed piece
highlighted, turned into place, fixed). Learn mode is Plan mode with the
landmarks labelled, which the scene driver draws from the plan's mode.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import panel as pn
import param

from hipviz import explain, render
from hipviz import osteotomy as ost

from .scene import SceneDriver
from .state import PageState
from .text import inert
from .widgets import CSS

MODE_LABELS = {"surgeon": "Plan", "student": "Learn", "explain": "Explain"}
#: Longest explain-mode step text shown, characters (the longest is about 400).
STEP_TEXT_CHARS = 2000


class Modes(pn.viewable.Viewer):
    """The mode picker and the Explain walk-through of one page.

    Parameters
    ----------
    page : PageState
        The page's plan, session and loading flag.
    scene : SceneDriver
        Draws each step's scene.
    """

    # one more than the operation's steps: a view may add one (the pressure step)
    step = param.Integer(default=0, bounds=(0, len(explain.STEP_KEYS)))

    side_by_side = param.Boolean(
        default=False,
        doc="Show the hip before beside the step's view, the two turning together.",
    )

    def __init__(self, page: PageState, scene: SceneDriver, **params: Any):
        super().__init__(**params)
        self.page = page
        self.scene = scene
        self.w_mode = pn.widgets.RadioButtonGroup.from_param(
            page.plan.param.mode,
            options={v: k for k, v in MODE_LABELS.items()},
            color="primary",
            variant="outline",
            label="",
        )
        self.step_pane = pn.pane.HTML("", stylesheets=[CSS], sizing_mode="stretch_width")
        self.w_prev = pn.widgets.Button(label="◀ Back", width=110)
        self.w_next = pn.widgets.Button(label="Next ▶", width=110, color="primary")
        self.w_replay = pn.widgets.Button(label="↻ Play again", width=130)
        self.w_prev.on_click(lambda _: self.go(-1))
        self.w_next.on_click(lambda _: self.go(+1))
        self.w_replay.on_click(lambda _: self.show_step(replay=True))
        self.w_side_by_side = pn.widgets.Checkbox.from_param(
            self.param.side_by_side, label="Before and after side by side"
        )
        self.param.watch(self._on_side_by_side, ["side_by_side"])
        #: Steps other views add, each ``outcome -> Step or None``, shown after the move.
        self.more_steps: list = []
        #: Told each step as it is shown (``Step -> None``), before its scene is drawn.
        self.on_show: list = []
        self.param.watch(self._on_step, ["step"])
        #: Internal rotation at 90° flexion before and after the plan, and the
        #: outcome they belong to (set by the Motion view, quoted in a step).
        self._rom: tuple[Any, dict] | None = None
        #: Asks for the limits of (sim, outcome) when a step needs them.
        self.need_rom: Any = None

    def __panel__(self) -> pn.viewable.Viewable:
        """The Explain panel (hidden until the page is in Explain mode)."""
        return pn.Column(
            self.step_pane,
            # on a phone the third button goes to a second line, not off the edge
            pn.Row(self.w_prev, self.w_next, self.w_replay, styles={"flex-wrap": "wrap"}),
            self.w_side_by_side,
            sizing_mode="stretch_height",
            width=470,
            scroll=True,
            visible=False,
        )

    def _explain_kind(self) -> str:
        plan = self.page.plan
        if plan.procedure != "none":
            return plan.procedure
        if not plan.femoral_move().is_identity:
            return "femoral"
        return "pao"

    def enter(self) -> None:
        """Explain the plan; with nothing planned, a typical PAO on this hip."""
        plan = self.page.plan
        if plan.procedure == "none" and plan.femoral_move().is_identity:
            move = ost.PROCEDURES["pao"].default_move
            plan.param.update(
                procedure="pao",
                pao_lateral=move.lateral_deg,
                pao_anterior=move.anterior_deg,
                pao_version=move.version_deg,
                pao_medial=move.medial_mm,
            )
        self.step = 0
        self.show_step(replay=True)

    def go(self, delta: int) -> None:
        """Step ``delta`` steps on (back when negative), within the steps."""
        last = len(self.steps()) - 1 if self.page.session.outcome is not None else 0
        self.step = int(np.clip(self.step + delta, 0, max(last, 0)))

    def steps(self) -> list[explain.Step]:
        """The plan's steps on this hip, with those other views add after the move."""
        out = self.page.session.outcome
        rom = self._rom[1] if self._rom is not None and self._rom[0] is out else None
        steps = list(explain.steps(self._explain_kind(), out.before, rom))
        turn = next(i for i, s in enumerate(steps) if s.key == "turn")
        extra = [s for s in (more(out) for more in self.more_steps) if s is not None]
        return [*steps[: turn + 1], *extra, *steps[turn + 1 :]]

    def _on_step(self, *events: param.parameterized.Event) -> None:
        self.show_step(replay=True)

    def _on_side_by_side(self, *events: param.parameterized.Event) -> None:
        shown = self.side_by_side and self.page.plan.mode == "explain"
        if self.page.session.sim is not None and not self.page.loading:
            self.scene.show_before(shown)
        elif not shown:
            self.scene.show_before(False)

    def set_rom(self, before: dict, after: dict, out: Any) -> None:
        """The range of motion of ``out``'s plan (:func:`hipviz.motion.rom_dict` results)."""
        key = "internal_rotation_90"
        self._rom = (out, {"before": before["rom_deg"][key], "after": after["rom_deg"][key]})
        if self.page.plan.mode == "explain" and self.page.session.outcome is out:
            steps = self.steps()
            if steps[min(self.step, len(steps) - 1)].key == "too_far":
                self.show_step()

    def _rom_of(self, out: Any) -> dict | None:
        if self._rom is not None and self._rom[0] is out:
            return self._rom[1]
        if self.need_rom is not None:
            self.need_rom(self.page.session.sim, out)
        return None

    def show_step(self, replay: bool = False) -> None:
        """The current step's text, and its scene on this hip (animated when ``replay``)."""
        session = self.page.session
        sim, out = session.sim, session.outcome
        if sim is None or out is None or self.page.loading:  # the app shows it once built
            return
        kind = self._explain_kind()
        steps = self.steps()
        step = steps[min(self.step, len(steps) - 1)]
        if step.key == "too_far":
            self._rom_of(out)  # asks for the limits once; the step is shown again with them
        long = STEP_TEXT_CHARS
        self.step_pane.object = (
            f'<div class="hv-step-count">Step {steps.index(step) + 1} of {len(steps)} · '
            f"{inert(explain.KIND_TITLES[kind])}</div>"
            f'<div class="hv-step-title">{inert(step.title)}</div>'
            f'<div class="hv-step-text">{inert(step.text, long)}</div>'
            '<ol class="hv-steps">'
            + "".join(
                f'<li class="{"hv-now" if s is step else ""}">{inert(s.title)}</li>' for s in steps
            )
            + "</ol>"
        )
        self.w_prev.disabled = step is steps[0]
        self.w_next.disabled = step is steps[-1]
        for tell in self.on_show:
            tell(step)
        scene = self.scene
        scene.stop_animation()
        identity = sim.move()  # the unmoved hip (cut pieces in place)
        if step.scene in ("before", "cuts"):
            scene.pose(identity, fixation=False)
            highlight = render.FRAGMENT if step.scene == "cuts" else render.BONE
            scene.style_pieces(highlight)
        elif step.scene == "turn" and replay and pn.state.curdoc is not None:
            scene.style_pieces(render.FRAGMENT)
            scene.animate(out)
        else:
            scene.style_pieces(render.FRAGMENT)
            scene.pose(out, fixation=step.scene in ("fixation", "after"))
        if self.side_by_side:  # the hip before, beside, styled as this step (new pieces sent)
            scene.show_before(True)
