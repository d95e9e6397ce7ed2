"""The hipviz web app: ``hipviz serve``.

One :class:`HipApp` per browser session: its own :class:`~hipviz.app.state.Plan`
(read from the URL query, written back when the sliders rest), its own
:class:`~hipviz.app.state.HipSession` (bones, cuts, uploaded files in a private
temporary folder) and its own 3D view. A slider change sends the browser the
moved pieces' 4x4 matrices at once, then re-measures (about 15 ms, in a
worker thread) and sends head colours, angle lines and the measures table;
a new cut sends the new pieces once, as binary. Anything slower than a move
(new bones, a new cut, an upload) is built in a worker thread too, so the
server's event loop, which every session shares, only ever does the quick
parts.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import dataclasses
import gc
import io
import json
import logging
import os
import secrets
import signal
import sys
import threading
import time
import zipfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import panel as pn
import param
from panel.io.state import set_curdoc

from hipviz import cases, explain, render, report
from hipviz import osteotomy as ost
from hipviz.errors import HipvizError, InputError
from hipviz.io import Limits

from . import lean, procs, web
from .state import (
    ANATOMY_PARAMS,
    BUILTIN,
    CUT_PARAMS,
    MAX_UPLOAD_MB,
    STANDING_TILT_DEG,
    UPLOAD,
    UPLOAD_SUFFIXES,
    URL_PARAMS,
    HipSession,
    Plan,
    Upload,
    new_session_folder,
    parse_labels,
    remove_live_folders,
    remove_session_folder,
    remove_stale_folders,
    upload_bytes,
    websocket_max_message_bytes,
)
from .text import NAME_CHARS, clamp, inert, inert_join
from .viewer import SceneView

log = logging.getLogger("hipviz.app")
#: Measures run here, off the server's event loop, one at a time per session
#: and in all: a measure is mostly Python holding the interpreter's lock, so a
#: second thread would measure no faster and take that lock from the event
#: loop more often (the loop, not the measures, sends every session its
#: picture). Pages queue for it in turn; each is measured at its latest plan.
_MEASURE_POOL = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hipviz-measure")
#: New bones, cuts, uploads and exports are built here: seconds each, so
#: apart from the measures, which must not queue behind them.
_BUILD_POOL = ThreadPoolExecutor(max_workers=2, thread_name_prefix="hipviz-build")
#: One export renders at a time.
_EXPORT_LOCK = threading.Lock()

CASE_LABELS = {
    **{name: f"{info.title} (teaching case)" for name, info in cases.CASES.items()},
    BUILTIN: "Built-in mean shape (shape modes)",
    UPLOAD: "Your own meshes (upload)",
}
PROCEDURE_LABELS = {"none": "No pelvic osteotomy"} | {k: p.title for k, p in ost.PROCEDURES.items()}
VIEW_LABELS = {
    "anterior": "Front",
    "lateral": "Side",
    "superior": "Top",
    "false_profile": "False profile",
}
MODE_LABELS = {"surgeon": "Plan", "student": "Learn", "explain": "Explain"}
#: Frames of the explain-mode turn animation, and ms between them.
ANIMATION_FRAMES = 24
ANIMATION_PERIOD_MS = 60
#: Half-size of the region the standard views frame about the head centre, mm.
VIEW_RADIUS_MM = 110.0
#: The pelvis beyond this distance from the head centre is drawn as its own
#: piece (FAR_PIECE), which no cut changes: a cut re-sends only the near part.
FAR_MM = 100.0
FAR_PIECE = "pelvis_far"
#: Quiet time after the last slider move before fixation is placed again, ms.
SETTLE_MS = 250
#: Longest explain-mode step text shown, characters (the longest is about 400).
STEP_TEXT_CHARS = 2000

#: Styles of the page's HTML panes (each pane has its own shadow root).
CSS = (
    """
.hv-header { display: flex; align-items: baseline; gap: 14px; padding: 4px 4px; }
.hv-title { font-size: 24px; font-weight: 700; color: #2f4f6f; letter-spacing: 0.5px; }
.hv-sub { color: #667; font-size: 13px; }
.hv-status { font-size: 13px; color: #333; }
.hv-step-title { font-size: 28px; font-weight: 700; margin: 4px 0 10px; color: #2f4f6f; }
.hv-step-text { font-size: 22px; line-height: 1.55; }
.hv-step-count { color: #778; font-size: 15px; }
ol.hv-steps { color: #889; font-size: 15px; margin-top: 18px; line-height: 1.6; }
ol.hv-steps li.hv-now { color: #2f4f6f; font-weight: 700; }
"""
    + report.TABLE_CSS
)


class AddressBar(pn.custom.JSComponent):
    """Keeps the address bar's query equal to ``query`` (no reload, no new history entry).

    Panel's own ``Location`` pushes a history entry per change and holds
    changes until the whole page is idle, which a busy 3D page may not be;
    a change it held can land later and put back the address the page opened
    with. So the bar is set when the view starts, on each change, and checked
    each second (a change that arrives while Bokeh rebuilds the view has no
    listener).
    """

    query = param.String(default="", doc="The text after '?' in the page's address.")

    _esm = """
    export function render({model}) {
      const write = () => {
        if (window.location.search.replace(/^[?]/, "") === model.query) {
          return
        }
        const url = new URL(window.location.href)
        url.search = model.query
        window.history.replaceState(window.history.state, "", url)
      }
      write()
      model.on("query", write)
      const timer = setInterval(write, 1000)
      model.on("remove", () => clearInterval(timer))
      return document.createElement("span")
    }
    """


class UploadGuard(pn.custom.JSComponent):
    """Refuses, in the browser, a chosen file larger than ``max_bytes`` before it is sent.

    A file input sends the whole file as one websocket message, and a
    message over the server's limit closes the page's connection with no
    word to the user. This listens, ahead of the inputs' own handlers, for
    the files chosen in every file input of the page; a file too large is
    cleared there and named in ``refused`` (name and size), which the app
    shows as its one-line error. Inputs that appear later are found by a
    check each second.
    """

    max_bytes = param.Integer(default=0, doc="Largest file the page may send, bytes.")
    refused = param.String(default="", doc="The last refused file: 'name<TAB>bytes<TAB>n'.")

    _esm = """
    export function render({model}) {
      const seen = new WeakSet()
      let count = 0
      const guard = (event) => {
        const input = event.target
        if (!(input instanceof HTMLInputElement) || input.type !== "file" || !input.files) {
          return
        }
        for (const file of input.files) {
          if (model.max_bytes > 0 && file.size > model.max_bytes) {
            event.stopImmediatePropagation()
            input.value = ""
            count += 1
            model.refused = file.name + "\t" + file.size + "\t" + count
            return
          }
        }
      }
      const roots = (node, out) => {
        out.push(node)
        for (const el of node.querySelectorAll("*")) {
          if (el.shadowRoot) roots(el.shadowRoot, out)
        }
        return out
      }
      const attach = () => {
        for (const root of roots(document, [])) {
          for (const input of root.querySelectorAll("input[type=file]")) {
            const home = input.getRootNode()
            if (!seen.has(home)) {
              seen.add(home)
              // Capture on the input's own root runs before the input's listeners.
              home.addEventListener("change", guard, true)
            }
          }
        }
      }
      attach()
      const timer = setInterval(attach, 1000)
      model.on("remove", () => clearInterval(timer))
      return document.createElement("span")
    }
    """


class LiveSlider(pn.widgets.FloatSlider):
    """A float slider whose changes reach the server at once.

    Panel holds widget events for 50 ms to merge bursts; a move costs the
    server about 3 ms, so the wait would be most of the slider-to-picture
    time. 2 ms remain: the server first finishes acknowledging the event,
    else the socket is still busy when the new matrices are ready and Panel
    retries their sending 10 ms later.
    """

    _debounce = 2


def _when_loaded(doc: Any, callback: Callable[[], None]) -> None:
    """Run ``callback`` now if the page has finished loading, else once it has.

    Panel drops changes of a page's models made after the browser fetched
    the page's document but before the browser says it is ready: the first
    hip, built meanwhile by a worker, would never be drawn.
    """
    with set_curdoc(doc):
        if pn.state.loaded:
            callback()
        else:
            pn.state.onload(callback)


class UploadInput(pn.widgets.FileInput):
    """A file input that keeps the file as it arrived: base64 text, not bytes.

    The browser sends a chosen file as base64 text in one websocket message.
    Panel's own input decodes it as soon as it arrives, on the server's
    event loop (about 0.3 s for 60 MB, during which no session is served);
    this one leaves ``value`` as the text, and the app decodes it
    (:func:`hipviz.app.state.upload_bytes`) in the worker thread that saves
    and reads it. An empty file is None, as with Panel's input.
    """

    def _process_property_change(self, props: dict[str, Any]) -> dict[str, Any]:
        text = props.pop("value", None) if isinstance(props.get("value"), str) else None
        params = super()._process_property_change(props)
        if text is not None:
            params["value"] = text or None
        return params


def _slider(plan: Plan, name: str, **kwargs: Any) -> pn.widgets.FloatSlider:
    p = plan.param[name]
    lo, hi = p.bounds
    return LiveSlider.from_param(
        p, start=lo, end=hi, step=p.step, sizing_mode="stretch_width", **kwargs
    )


def _signed(x: float) -> str:
    """'+1.2' / '-0.4' / '0.0' (no '-0.0' for a rounding crumb)."""
    x = round(float(x), 1) + 0.0
    return f"{x:+.1f}" if x else "0.0"


def _throttled(plan: Plan, name: str) -> pn.widgets.FloatSlider:
    """A slider that sets ``plan.<name>`` only when released: for slow changes (new bones)."""
    p = plan.param[name]
    lo, hi = p.bounds
    w = pn.widgets.FloatSlider(
        label=p.label,
        start=lo,
        end=hi,
        step=p.step,
        value=getattr(plan, name),
        sizing_mode="stretch_width",
    )
    w.param.watch(lambda e: setattr(plan, name, e.new), "value_throttled")
    plan.param.watch(lambda e: setattr(w, "value", e.new), name)
    return w


def _lines_spec(lines: dict[str, render.Line]) -> dict[str, dict]:
    return {
        k: {
            "points": np.asarray(ln.points, dtype=float).round(3).tolist(),
            "color": ln.color,
            "width": float(ln.width),
            "actor": None,
            "on_top": bool(ln.on_top),
        }
        for k, ln in lines.items()
    }


def _labels_spec(lines: dict[str, render.Line], labels: dict[str, render.Label]) -> dict:
    out = {}
    for k, ln in lines.items():
        if ln.label:
            out[f"line:{k}"] = {
                "position": np.asarray(ln.points[-1], dtype=float).round(3).tolist(),
                "text": ln.label,
                "color": ln.color,
                "actor": None,
            }
    for k, lab in labels.items():
        out[f"landmark:{k}"] = {
            "position": np.asarray(lab.position, dtype=float).round(3).tolist(),
            "text": lab.text,
            "color": lab.color,
            "actor": None,
        }
    return out


class HipApp(pn.viewable.Viewer):
    """The whole page for one browser session."""

    angles = param.Boolean(default=True, doc="Draw each angle where it is measured.")
    fixation = param.Boolean(default=False, doc="Show screws and plates.")
    ghost = param.Boolean(default=True, doc="Show the moved pieces' starting place, faint.")
    step = param.Integer(default=0, bounds=(0, len(explain.STEP_KEYS) - 1))

    def __init__(
        self,
        plan: Plan | None = None,
        *,
        subdivisions: int = 8,
        limits: Limits | None = None,
        **params: Any,
    ):
        super().__init__(**params)
        self.plan = plan or Plan()
        self._address = AddressBar(query=self.plan.url_query(), width=0, height=0, margin=0)
        self.session = HipSession(subdivisions=subdivisions, limits=limits)
        self._guard = UploadGuard(
            max_bytes=int(self.session.limits.max_file_mb * 1e6), width=0, height=0, margin=0
        )
        self._guard.param.watch(self._on_refused, "refused")
        self.view3d = SceneView(
            sizing_mode="stretch_both", min_height=480, side=self.plan.side, view=self.plan.view
        )
        self._settle = 0
        self._ticket = 0
        self._measuring = False
        self._measure_result: tuple[int, Any] | None = None
        self._far_key: tuple | None = None
        self._animation = None
        self._explain_pose: str | None = None
        # Messages quote links and file names: shown through text.inert, no maths
        self._error = pn.pane.Alert(
            "", alert_type="danger", visible=False, margin=(4, 8), disable_math=True
        )
        self._status = pn.pane.Alert(
            "", alert_type="info", visible=False, margin=(4, 8), disable_math=True
        )
        self._warn = pn.pane.Alert(
            "", alert_type="warning", visible=False, margin=(4, 8), disable_math=True
        )
        self._table = pn.pane.HTML(
            "", stylesheets=[CSS], sizing_mode="stretch_width", css_classes=["hv-table"]
        )
        self._facts = pn.pane.HTML(
            "", stylesheets=[CSS], sizing_mode="stretch_width", css_classes=["hv-status"]
        )
        self._source = pn.pane.HTML(
            "", stylesheets=[CSS], sizing_mode="stretch_width", css_classes=["hv-sub"]
        )
        self._proc_text = pn.pane.HTML(
            "", stylesheets=[CSS], sizing_mode="stretch_width", css_classes=["hv-sub"]
        )
        self._step_pane = pn.pane.HTML("", stylesheets=[CSS], sizing_mode="stretch_width")
        self._build_widgets()
        self.plan.param.watch(self._on_plan, list(URL_PARAMS))
        self.param.watch(self._on_display, ["angles", "fixation", "ghost"])
        self.param.watch(self._on_step, ["step"])
        self._loading = False
        #: The served page's document: builds and measures run in worker
        #: threads and come back through it. None outside a server (a
        #: notebook, tests): everything runs in the caller's thread.
        self._doc = pn.state.curdoc
        if self._doc is not None and self._doc.session_context is None:
            self._doc = None
        # a served page builds its hip while the browser loads the page
        self._refresh(initial=True)

    # ------------------------------------------------------------------ widgets

    def _build_widgets(self) -> None:
        plan = self.plan
        self.w_case = pn.widgets.Select.from_param(
            plan.param.case,
            options={v: k for k, v in CASE_LABELS.items()},
            label="Hip",
            sizing_mode="stretch_width",
        )
        self.w_side = pn.widgets.RadioButtonGroup.from_param(
            plan.param.side, options={"Left hip": "left", "Right hip": "right"}, label=""
        )
        self.w_posture = pn.widgets.RadioButtonGroup(
            label="Posture", options=["Lying (supine)", "Standing"], value="Lying (supine)"
        )
        self.w_posture.param.watch(self._on_posture, "value")
        self.w_tilt = _throttled(plan, "tilt")
        self.w_tilt.param.watch(self._sync_posture, "value")
        self.w_modes = pn.Column(
            *[_throttled(plan, f"mode{i + 1}") for i in range(5)],
            visible=plan.case == BUILTIN,
        )
        self.w_procedure = pn.widgets.Select.from_param(
            plan.param.procedure,
            options={v: k for k, v in PROCEDURE_LABELS.items()},
            label="Pelvic osteotomy",
            sizing_mode="stretch_width",
        )
        self.pao_sliders = pn.Column(
            *[_slider(plan, k) for k in ("pao_lateral", "pao_anterior", "pao_version")],
            _slider(plan, "pao_medial"),
        )
        self.fem_sliders = pn.Column(
            *[_slider(plan, k) for k in ("fem_varus", "fem_flexion", "fem_rotation")],
            _throttled(plan, "fem_level"),
        )
        cut_widgets = [_slider(plan, k) for k in CUT_PARAMS]
        self.cut_card = pn.Card(
            *cut_widgets, title="Cut adjustments", collapsed=True, sizing_mode="stretch_width"
        )
        self.w_reset = pn.widgets.Button(label="Reset moves and cuts", color="default")
        self.w_reset.on_click(lambda _: self.plan.reset_moves())

        # uploads
        accept = ",".join(UPLOAD_SUFFIXES)
        self.w_pelvis_file = UploadInput(accept=accept, label="Pelvis")
        self.w_femur_file = UploadInput(accept=accept, label="Femur")
        self.w_pelvis_labels = pn.widgets.TextInput(
            label="Pelvis labels (label maps only)", placeholder="e.g. 1,2"
        )
        self.w_femur_labels = pn.widgets.TextInput(
            label="Femur labels (label maps only)", placeholder="e.g. 3"
        )
        self.w_load = pn.widgets.Button(label="Load my meshes", color="primary")
        self.w_load.on_click(self._on_upload)
        self.upload_card = pn.Card(
            pn.pane.Markdown(
                f"STL, PLY, OBJ, OFF, VTP, VTK, GLB or a NIfTI label map, up to "
                f"{self.session.limits.max_file_mb:g} MB each, in mm or m. Files stay in a "
                "private temporary folder for this browser tab and are deleted when it "
                "closes or the server stops.",
                css_classes=["hv-sub"],
            ),
            pn.Row(pn.pane.Markdown("**Pelvis**", width=60), self.w_pelvis_file),
            self.w_pelvis_labels,
            pn.Row(pn.pane.Markdown("**Femur**", width=60), self.w_femur_file),
            self.w_femur_labels,
            self.w_load,
            title="Your own meshes",
            collapsed=True,
            sizing_mode="stretch_width",
        )

        # display
        self.w_mode = pn.widgets.RadioButtonGroup.from_param(
            plan.param.mode,
            options={v: k for k, v in MODE_LABELS.items()},
            color="primary",
            variant="outline",
            label="",
        )
        self.w_view = pn.widgets.RadioButtonGroup.from_param(
            plan.param.view, options={v: k for k, v in VIEW_LABELS.items()}, label=""
        )
        self.w_angles = pn.widgets.Checkbox.from_param(self.param.angles, label="Angles")
        self.w_fixation = pn.widgets.Checkbox.from_param(self.param.fixation, label="Screws/plate")
        self.w_ghost = pn.widgets.Checkbox.from_param(self.param.ghost, label="Before (faint)")
        self.w_fit = pn.widgets.Button(label="Fit", width=60)
        self.w_fit.on_click(lambda _: self.view3d.reset_camera())

        # explain mode
        self.w_prev = pn.widgets.Button(label="◀ Back", width=110)
        self.w_next = pn.widgets.Button(label="Next ▶", width=110, color="primary")
        self.w_replay = pn.widgets.Button(label="↻ Play again", width=130)
        self.w_prev.on_click(lambda _: self._go(-1))
        self.w_next.on_click(lambda _: self._go(+1))
        self.w_replay.on_click(lambda _: self._show_step(replay=True))

        # export
        self.w_export = [
            pn.widgets.FileDownload(
                callback=self._in_worker(fn), filename=filename, label=label, color="light"
            )
            for fn, filename, label in (
                (self._png, "hipviz.png", "Picture (PNG)"),
                (self._csv, "hipviz-measures.csv", "Measures (CSV)"),
                (self._json, "hipviz-plan.json", "Plan + measures (JSON)"),
                (self._stl, "hipviz-meshes.zip", "Moved bones (STL, zip)"),
                (self._report, "hipviz-report.html", "Report (HTML)"),
            )
        ]

    # ------------------------------------------------------------------ layout

    def __panel__(self) -> pn.viewable.Viewable:
        header = pn.Row(
            pn.pane.HTML(
                '<div class="hv-header"><span class="hv-title">hipviz</span>'
                '<span class="hv-sub">hip osteotomy planner and teaching tool · '
                "bone only · not a medical device</span></div>",
                stylesheets=[CSS],
                sizing_mode="stretch_width",
            ),
            self.w_mode,
            self._address,
            self._guard,
            sizing_mode="stretch_width",
            styles={"border-bottom": "1px solid #dde", "background": "#f7f9fb"},
        )
        controls = pn.Column(
            pn.pane.Markdown("### Hip", margin=(0, 8)),
            self.w_case,
            self.w_side,
            self._source,
            pn.pane.Markdown("Posture", margin=(0, 8)),
            self.w_posture,
            self.w_tilt,
            self.w_modes,
            self.upload_card,
            pn.pane.Markdown("### Osteotomy", margin=(0, 8)),
            self.w_procedure,
            self._proc_text,
            pn.pane.Markdown("**Acetabular fragment**", margin=(0, 8)),
            self.pao_sliders,
            pn.pane.Markdown("**Femur (intertrochanteric)**", margin=(0, 8)),
            self.fem_sliders,
            self.cut_card,
            self.w_reset,
            width=330,
            scroll=True,
            sizing_mode="stretch_height",
            styles={"border-right": "1px solid #eee"},
        )
        toolbar = pn.Row(
            self.w_view,
            self.w_fit,
            self.w_angles,
            self.w_fixation,
            self.w_ghost,
            sizing_mode="stretch_width",
        )
        centre = pn.Column(
            toolbar, self.view3d, self._facts, self._warn, sizing_mode="stretch_both"
        )
        measures = pn.Column(
            pn.pane.Markdown("### Measures", margin=(0, 8)),
            self._table,
            pn.pane.Markdown("### Export", margin=(0, 8)),
            pn.FlexBox(*self.w_export),
            sizing_mode="stretch_height",
            width=470,
            scroll=True,
        )
        explain_panel = pn.Column(
            self._step_pane,
            pn.Row(self.w_prev, self.w_next, self.w_replay),
            sizing_mode="stretch_height",
            width=470,
            scroll=True,
            visible=False,
        )
        self._measures_panel, self._explain_panel = measures, explain_panel
        self._controls = controls
        self._apply_mode()
        body = pn.Row(controls, centre, measures, explain_panel, sizing_mode="stretch_both")
        return pn.Column(
            header, self._error, self._status, body, sizing_mode="stretch_both", stylesheets=[CSS]
        )

    # ------------------------------------------------------------------ updates

    def _build(
        self,
        pending: set[str],
        *,
        initial: bool = False,
        job: Callable[[Callable[[str], None]], None] | None = None,
        status: str = "",
        plan: Plan | None = None,
    ) -> None:
        """Build what the plan needs in a worker thread; :meth:`_built` shows it.

        New bones take about a second (an uploaded 60 MB mesh, tens of
        seconds), a new cut tens of ms: off the server's event loop, so every
        other session stays live, and, for a first page, its HTML and
        scripts go out meanwhile. The plan is copied first, so the worker
        builds one consistent plan while this one goes on changing; changes
        made meanwhile are caught up by :meth:`_built`. ``job`` (an upload)
        runs first in the same thread, given a function that shows the page
        what it is doing; ``plan`` is then the plan to build (by default the
        page's own).
        """
        self._loading = True
        slow = initial or job is not None or "anatomy" in pending
        asked = self.plan.query()
        plan, doc, session = plan or self.plan.copy(), self._doc, self.session
        if slow:
            self._set_busy(status or self._build_status(plan))

        def report(text: str) -> None:  # from the worker: shown on this page
            doc.add_next_tick_callback(lambda: self._loading and self._show_status(text))

        def work() -> None:
            try:
                if job is not None:
                    job(report)
                changed: Any = session.prepare(plan)
                if "anatomy" in changed or initial:
                    report(f"measuring {self._hip_name(plan)}…")
                    session.measure(plan)
                result = changed
            except Exception as exc:  # reported on the page by _built
                result = exc
            try:
                doc.add_next_tick_callback(
                    lambda: _when_loaded(
                        doc, lambda: self._built(plan, asked, result, initial=initial)
                    )
                )
            except Exception:  # the page closed meanwhile
                log.debug("a hip was built after its page closed")

        _BUILD_POOL.submit(work)

    def _built(self, plan: Plan, asked: str, result: Any, *, initial: bool = False) -> None:
        """Second half of :meth:`_build`, on the event loop: draw ``plan``'s hip, or its error.

        ``asked`` is the page's plan (its query) when the build was asked for.
        """
        if isinstance(result, Exception):
            self._loading = False
            self._set_busy("")
            if isinstance(result, HipvizError):
                self._show_error(str(result))
            else:
                log.error("building the hip failed", exc_info=result)
                self._show_error(f"could not build the hip: {result}")
            if self.plan.query() != asked:
                self._refresh()  # the plan moved on meanwhile: try that
            return
        # an upload was built as the uploaded case: the page's plan follows
        # (while still loading, so the change starts nothing)
        if plan.case != self.plan.case and plan.case == UPLOAD:
            self.plan.case = UPLOAD
        self._loading = False
        self._set_busy("")
        if not initial:
            self._show_error("")  # a first page keeps its link's one-line message
        if "anatomy" in result or initial:
            self._draw(result | {"anatomy"}, initial=initial)
            if self.plan.query() != plan.query():
                self._refresh()  # the plan changed while the hip was built
        else:
            if result:
                self._send_meshes(result)
                self._describe_procedure()
            self._refresh()  # the move, on the new pieces

    def _build_status(self, plan: Plan) -> str:
        return f"building {self._hip_name(plan)}…"

    @staticmethod
    def _hip_name(plan: Plan) -> str:
        if plan.case == UPLOAD:
            return "your hip"
        if plan.case == BUILTIN:
            return "the hip from the shape model"
        return f"the {cases.CASES[plan.case].title.lower()} hip"

    def _set_busy(self, message: str) -> None:
        """Say what is being built ("" when done), with a spinner over the view.

        Meanwhile the controls that would start another build (hip, side,
        posture, shape modes, uploads) and the exports, which read the hip
        being replaced, are disabled.
        """
        busy = bool(message)
        self._show_status(message)
        self.view3d.loading = busy
        for widget in self._build_controls():
            widget.disabled = busy

    def _build_controls(self) -> list:
        return [
            self.w_case,
            self.w_side,
            self.w_posture,
            self.w_tilt,
            *self.w_modes,
            self.w_pelvis_file,
            self.w_femur_file,
            self.w_pelvis_labels,
            self.w_femur_labels,
            self.w_load,
            *self.w_export,
        ]

    def _on_plan(self, *events: param.parameterized.Event) -> None:
        names = {e.name for e in events}
        self._schedule_settle()
        if "view" in names:
            self.view3d.view = self.plan.view
            names.discard("view")
            if not names:
                return
        if "mode" in names:
            self._apply_mode()
            names.discard("mode")
            if not names:
                return
        if names & set(ANATOMY_PARAMS):
            self.w_modes.visible = self.plan.case == BUILTIN
            self._sync_posture()
        if self._loading:
            return  # _built catches up
        self._refresh()

    def _refresh(self, *, initial: bool = False) -> None:
        """Bring session and view up to the plan; errors become one line on the page.

        Served, new bones or pieces are built in a worker thread
        (:meth:`_build`). A move takes two steps: the pieces' new matrices go
        to the browser at once (the picture), then the re-measured hip (head
        colours, angles, table), measured in a worker thread. Only the latest
        of a burst of slider events is measured.
        """
        try:
            pending = self.session.pending(self.plan)
            if self._doc is not None and (pending or initial):
                self._build(pending, initial=initial)
                return
            changed = self.session.prepare(self.plan)
            if initial or "anatomy" in changed or self._doc is None:
                self.session.measure(self.plan)
                self._show_error("")
                self._draw(changed, initial=initial)
                return
            tfs = self.session.transforms(self.plan)
        except HipvizError as exc:
            self._show_error(str(exc))
            return
        except Exception as exc:  # one bad request must not take the page down
            log.exception("update failed")
            self._show_error(f"could not update the plan: {exc}")
            return
        self._show_error("")
        if changed:
            self._send_meshes(changed)
            self._describe_procedure()
        if self.plan.mode != "explain":
            self.view3d.matrices = self._matrices(render.poses(self.session.sim, tfs))
        self._ticket += 1
        self._request_measure()

    def _request_measure(self) -> None:
        """Measure the plan in a worker thread; :meth:`_measured` draws the result.

        Off the event loop, so the matrices just set leave at once and the
        next slider event is read while the hip is measured. One measure at a
        time per session; a burst of changes is measured at its latest.
        """
        if self._measuring:
            return  # _measured asks again if the plan moved on meanwhile
        self._measuring = True
        doc, ticket = self._doc, self._ticket
        moves = self.session.moves(self.plan)

        def work() -> None:
            t0 = time.perf_counter()
            try:
                result: Any = self.session.measure_moves(*moves)
            except Exception as exc:  # reported on the page by _measured
                result = exc
            try:
                doc.add_next_tick_callback(lambda: self._measured(ticket, result))
            except Exception:  # the page closed meanwhile
                log.debug("measure finished after its page closed")
            # leave the interpreter's lock to the event loop for a while
            # before the next page's measure (see MEASURE_SHARE)
            time.sleep((time.perf_counter() - t0) * (1 / MEASURE_SHARE - 1))

        _MEASURE_POOL.submit(work)

    def _measured(self, ticket: int, result: Any) -> None:
        """A measure is done: measure again if the plan moved on, and queue the drawing."""
        self._measuring = False
        if self._loading:
            return  # new bones or pieces are on their way: _built draws them
        if ticket != self._ticket:
            self._request_measure()
        self._measure_result = (ticket, result)
        _queue_draw(self)

    def _draw_measured(self) -> None:
        """Second step of a move, on the event loop: colours, angles and table.

        Called by the server's draw queue (:func:`_queue_draw`), with this
        page's latest measure.
        """
        if self._measure_result is None or self._loading:
            return
        ticket, result = self._measure_result
        self._measure_result = None
        stale = ticket != self._ticket
        if isinstance(result, HipvizError):
            self._show_error(str(result))
        elif isinstance(result, Exception):
            log.error("measure failed", exc_info=result)
            self._show_error(f"could not measure the plan: {result}")
        else:
            # a stale result still updates colours and table, not the pose just sent
            self._draw(set(), pose=not stale)

    def _matrices(self, tfs: dict) -> dict[str, list[float]]:
        """The view's matrices with ``tfs`` (name -> (4, 4)) placed."""
        matrices = dict(self.view3d.matrices)
        for k, tf in tfs.items():
            matrices[k] = [float(v) for v in np.asarray(tf).ravel()]
        return matrices

    def _describe_procedure(self) -> None:
        proc = self.plan.procedure
        self._proc_text.object = "" if proc == "none" else inert(ost.PROCEDURES[proc].description)

    def _on_refused(self, event: param.parameterized.Event) -> None:
        name, size, _ = (event.new.split("\t") + ["", "", ""])[:3]
        if not name:
            return
        cap = self._guard.max_bytes / 1e6  # the limit the page checked against
        self._show_error(
            f"{clamp(name, NAME_CHARS)}: {int(size) / 1e6:.3g} MB is over the {cap:g} MB upload "
            "limit (raise it with hipviz serve --max-file-mb); it was not sent"
        )

    def _show_error(self, message: str) -> None:
        """One line above the view (or none for ""): as text, never as markup."""
        self._error.object = inert(message)
        self._error.visible = bool(message)

    def _show_status(self, message: str) -> None:
        """What the page is waiting for, in one line ("" hides it): as text, never as markup."""
        self._status.object = inert(message)
        self._status.visible = bool(message)

    def _draw(self, changed: set[str], *, initial: bool = False, pose: bool = True) -> None:
        sim, out = self.session.sim, self.session.outcome
        if sim is None or out is None:
            return
        view = self.view3d
        explain_pose = self.plan.mode == "explain"
        if changed & {"anatomy", "cut", "femur"}:
            self._send_meshes(changed)
        if changed & {"anatomy"}:
            view.param.update(
                side=sim.analysis.side,
                focal_point=tuple(float(v) for v in sim.center_mm),
                view_radius_mm=VIEW_RADIUS_MM,
            )
            if not initial:
                view.reset_camera()
            self._source.object = inert(self.session.source)
        self._describe_procedure()
        if explain_pose:
            self._show_step()
            return
        self._pose(out, matrices=pose)
        self._update_table(out)
        self._schedule_settle()

    def _send_meshes(self, changed: set[str]) -> None:
        """Send the pieces that changed (and their faint 'before' copies) to the browser.

        The pelvis is drawn as its part within FAR_MM of the head, which cuts
        change, and the rest ("pelvis_far"), sent again only when it differs.
        """
        with self.view3d.hold():  # one frame shows all the new pieces
            self._send_pieces(changed)

    def _send_pieces(self, changed: set[str]) -> None:
        sim, view = self.session.sim, self.view3d
        pieces = render.bone_meshes(sim)
        pelvic = {"pelvis", "pelvis_rest", "acetabular_fragment"}
        resend = set(pieces)
        if "anatomy" not in changed:
            if "cut" not in changed:
                resend -= pelvic
            if "femur" not in changed:
                resend &= pelvic
        wanted = set(pieces) | {FAR_PIECE}
        for name in sorted(resend, key=lambda n: n != "acetabular_fragment"):
            pts, tri = render.triangles(pieces[name].mesh)
            piece = pieces[name]
            if name in ("pelvis", "pelvis_rest"):
                (pts, tri), far = render.split_far(pts, tri, sim.center_mm, FAR_MM)
                self._send_far(*far, piece.color)
            view.set_mesh(name, pts, tri, color=piece.color, opacity=piece.opacity)
        for name in ("acetabular_fragment", "femur_distal"):
            if name in pieces:
                wanted.add(f"ghost:{name}")
                if name in resend:
                    view.copy_mesh(
                        f"ghost:{name}", name, color=render.GHOST, opacity=0.3, visible=False
                    )
        for name in set(view.mesh_names) - wanted:
            if not name.startswith("fix:"):
                view.remove_mesh(name)
        femur_key = "femur" if "femur" in pieces else "femur_proximal"
        if femur_key in resend:
            self._femur_key = femur_key
            self._coloring = render.HeadColoring(
                pieces[femur_key].mesh.points,
                sim.center_mm,
                sim.radius_mm,
                sim.axes.from_las(sim.analysis.coverage.directions_las),
            )

    def _send_far(self, points: np.ndarray, triangles: np.ndarray, color: str) -> None:
        """The pelvis beyond FAR_MM from the head, unless the browser has it already."""
        corners = points[triangles]  # a key that ignores vertex and triangle order
        key = (
            len(triangles),
            corners.sum(axis=(0, 1)).round(3).tobytes(),
            float(np.square(corners, dtype=np.float64).sum().round(1)),
        )
        if key != self._far_key or FAR_PIECE not in self.view3d.mesh_names:
            self.view3d.set_mesh(FAR_PIECE, points, triangles, color=color)
            self._far_key = key

    def _pose(self, out, *, fixation: bool | None = None, matrices: bool = True) -> None:
        """Matrices, head colours, angles and labels of one outcome, in one message.

        ``matrices=False`` keeps the pieces where they are (the outcome is older
        than the pose on screen).
        """
        sim, view = self.session.sim, self.view3d
        tfs = render.poses(sim, out)
        moved = {k for k, tf in tfs.items() if not np.allclose(tf, np.eye(4), atol=1e-9)}
        styles = {}
        for name in ("acetabular_fragment", "femur_distal"):
            ghost = f"ghost:{name}"
            if ghost in view.mesh_names:
                styles[ghost] = {
                    **view.actors.get(ghost, {}),
                    "visible": bool(self.ghost and name in moved),
                }
        student = self.plan.mode == "student"
        if not self.angles:
            lines = {}
        elif self.plan.mode == "explain":  # one angle, in plain words
            lines = {
                k: dataclasses.replace(ln, label=ln.label.replace("LCEA", "roof cover"))
                for k, ln in render.measure_lines(sim, out, only=("lcea",)).items()
            }
        else:
            lines = render.measure_lines(sim, out)
        labels = render.landmark_labels(sim, out) if student else {}
        if out.coverage_after is not None:
            view.set_colors(self._femur_key, self._coloring(out.coverage_after.covered))
        # param sends only the values that differ (an unchanged ghost style costs nothing)
        update = {
            "actors": {**view.actors, **styles},
            "lines": _lines_spec(lines),
            "labels": _labels_spec(lines, labels),
        }
        if matrices:
            update["matrices"] = self._matrices(tfs)
        view.param.update(**update)
        if self.fixation if fixation is None else fixation:
            self._place_fixation(out)
        else:
            self._remove_fixation()

    def _update_table(self, out) -> None:
        moved = out.plan["procedure"] is not None or out.plan["femoral"]["level_mm"] is not None
        rows = report.measure_rows(out.before, out.after if moved else None)
        self._table.object = report.table_html(rows)
        shift = out.hip_center_shift_mm
        gap = out.min_gap_mm
        gap_text = "—" if not np.isfinite(gap) else f"{gap:.1f} mm"
        facts = []
        if moved:
            facts.append(f"leg length {_signed(out.leg_length_change_mm)} mm")
            facts.append(
                f"hip centre {_signed(shift[0])} lateral, {_signed(shift[1])} anterior, "
                f"{_signed(shift[2])} superior (mm)"
            )
            for where, con in out.contact.items():
                facts.append(f"{where} cut contact {100 * con.fraction:.0f}%")
        gap_html = f"Joint gap <b>{inert(gap_text)}</b>" + (" (overlap!)" if out.overlap else "")
        self._facts.object = " · ".join([gap_html, *(inert(f) for f in facts)])
        # Impossible values first: the table flags them, these lines say why.
        warnings = [*report.impossible_warnings(rows), *out.warnings]
        self._warn.object = inert_join(warnings)
        self._warn.visible = bool(warnings)

    # ------------------------------------------------------------------ fixation

    def _schedule_settle(self) -> None:
        """After the sliders rest for SETTLE_MS: place the fixation, write the link."""
        if pn.state.curdoc is None:
            return
        self._settle += 1
        ticket = self._settle

        def settled():
            if ticket != self._settle or self._loading:
                return
            with pn.io.hold(self._doc):
                self._write_link()
                if self.fixation and self.session.outcome is not None:
                    self._place_fixation(self.session.outcome)

        pn.state.curdoc.add_timeout_callback(settled, SETTLE_MS)

    def _write_link(self) -> None:
        """The plan into the address bar: once the sliders rest, as every
        update of it costs the browser and the server a message each."""
        self._address.query = self.plan.url_query()

    def _place_fixation(self, out) -> None:
        sim, view = self.session.sim, self.view3d
        try:
            meshes = sim.fixation(out)
        except HipvizError as exc:
            self._warn.object = inert(f"fixation not shown: {exc}")
            self._warn.visible = True
            meshes = {}
        with view.hold():  # screws and plate appear in one frame
            self._set_fixation(meshes)

    def _set_fixation(self, meshes: dict) -> None:
        view = self.view3d
        names = {f"fix:{name}" for name in meshes}
        for name, mesh in meshes.items():
            view.set_mesh(
                f"fix:{name}",
                np.asarray(mesh.vertices, dtype=np.float32),
                np.asarray(mesh.faces, dtype=np.int32),
                color=render.METAL,
                smooth=False,
            )
        for name in view.mesh_names:
            if name.startswith("fix:") and name not in names:
                view.remove_mesh(name)

    def _remove_fixation(self) -> None:
        for name in self.view3d.mesh_names:
            if name.startswith("fix:"):
                self.view3d.remove_mesh(name)

    def _on_display(self, *events) -> None:
        if self.session.outcome is not None and not self._loading:  # else _built draws
            if self.plan.mode == "explain":
                self._show_step()
            else:
                self._pose(self.session.outcome)

    # ------------------------------------------------------------------ modes

    def _apply_mode(self) -> None:
        if not hasattr(self, "_measures_panel"):
            return
        explaining = self.plan.mode == "explain"
        self._measures_panel.visible = not explaining
        self._explain_panel.visible = explaining
        self._controls.visible = not explaining
        self._facts.visible = not explaining
        if explaining:
            self._warn.visible = False
        if explaining:
            self._enter_explain()
        elif self.session.outcome is not None and not self._loading:
            self._stop_animation()
            self._pose(self.session.outcome)
            self._update_table(self.session.outcome)

    def _explain_kind(self) -> str:
        if self.plan.procedure != "none":
            return self.plan.procedure
        if not self.plan.femoral_move().is_identity:
            return "femoral"
        return "pao"

    def _enter_explain(self) -> None:
        """Explain the plan; with nothing planned, a typical PAO on this hip."""
        plan = self.plan
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
        self._show_step(replay=True)

    def _go(self, delta: int) -> None:
        self.step = int(np.clip(self.step + delta, 0, len(explain.STEP_KEYS) - 1))

    def _on_step(self, *events) -> None:
        self._show_step(replay=True)

    def _show_step(self, replay: bool = False) -> None:
        sim, out = self.session.sim, self.session.outcome
        if sim is None or out is None or self._loading:  # _built shows it
            return
        kind = self._explain_kind()
        steps = explain.steps(kind, out.before)
        step = steps[self.step]
        long = STEP_TEXT_CHARS
        self._step_pane.object = (
            f'<div class="hv-step-count">Step {self.step + 1} of {len(steps)} · '
            f"{inert(explain.KIND_TITLES[kind])}</div>"
            f'<div class="hv-step-title">{inert(step.title)}</div>'
            f'<div class="hv-step-text">{inert(step.text, long)}</div>'
            '<ol class="hv-steps">'
            + "".join(
                f'<li class="{"hv-now" if i == self.step else ""}">{inert(s.title)}</li>'
                for i, s in enumerate(steps)
            )
            + "</ol>"
        )
        self.w_prev.disabled = self.step == 0
        self.w_next.disabled = self.step == len(steps) - 1
        self._stop_animation()
        identity = self.session.sim.move()  # the unmoved hip (cut pieces in place)
        if step.scene in ("before", "cuts"):
            self._pose(identity, fixation=False)
            highlight = render.FRAGMENT if step.scene == "cuts" else render.BONE
            self._style_pieces(highlight)
        elif step.scene == "turn" and replay and pn.state.curdoc is not None:
            self._style_pieces(render.FRAGMENT)
            self._animate(out)
        else:
            self._style_pieces(render.FRAGMENT)
            self._pose(out, fixation=step.scene in ("fixation", "after"))

    def _style_pieces(self, fragment_color: str) -> None:
        view = self.view3d
        actors = dict(view.actors)
        for name in ("acetabular_fragment", "femur_proximal"):
            if name in actors:
                actors[name] = {**actors[name], "color": fragment_color}
        view.actors = actors

    def _animate(self, out) -> None:
        """Turn the pieces from where they were to the plan, over about 1.5 s."""
        plan, sim = self.plan, self.session.sim
        acet, fem = plan.acetabular_move(), plan.femoral_move()
        if plan.procedure == "none":
            acet = ost.AcetabularMove()
        frame = {"i": 0}

        def tick():
            frame["i"] += 1
            t = min(1.0, frame["i"] / ANIMATION_FRAMES)
            s = t * t * (3 - 2 * t)  # ease in and out
            a = ost.AcetabularMove(
                acet.lateral_deg * s,
                acet.anterior_deg * s,
                acet.version_deg * s,
                acet.medial_mm * s,
            )
            f = ost.FemoralMove(fem.varus_deg * s, fem.flexion_deg * s, fem.rotation_deg * s)
            if self._loading:  # the pieces are being rebuilt
                self._stop_animation()
                return
            try:
                self._pose(sim.move(a, f), fixation=False)
            except HipvizError:
                self._stop_animation()

        self._animation = pn.state.add_periodic_callback(
            tick, period=ANIMATION_PERIOD_MS, count=ANIMATION_FRAMES
        )

    def _stop_animation(self) -> None:
        if self._animation is not None:
            self._animation.stop()
            self._animation = None

    # ------------------------------------------------------------------ posture

    def _on_posture(self, event) -> None:
        standing = event.new == "Standing"
        if standing and self.plan.tilt == 0:
            self.plan.tilt = STANDING_TILT_DEG
        elif not standing:
            self.plan.tilt = 0.0

    def _sync_posture(self, *events) -> None:
        self.w_posture.value = "Lying (supine)" if self.plan.tilt == 0 else "Standing"

    # ------------------------------------------------------------------ upload

    def _on_upload(self, event=None) -> None:
        """Read the chosen files in a worker thread and show them; errors in one line.

        The files are taken from the inputs (which are cleared) on the event
        loop; decoding, saving, reading and building the hip happen in the
        worker (:meth:`_build`), with the page saying which file it reads.
        """
        if self._loading:
            return  # the button is disabled meanwhile; a click may have crossed that
        try:
            chosen = {}
            pelvis_name = self.w_pelvis_file.filename or ""
            for role, widget in (("pelvis", self.w_pelvis_file), ("femur", self.w_femur_file)):
                name, data = widget.filename or role, widget.value
                if widget.filename and not data:  # Panel passes an empty file as None
                    data = b""
                if not widget.filename and role == "femur" and ".nii" in pelvis_name.lower():
                    # one label map holding both bones
                    name, data = pelvis_name, self.w_pelvis_file.value
                if data is None:
                    msg = f"choose a {role} file first"
                    raise InputError(msg)
                chosen[role] = (name, data)
            labels = (
                parse_labels(self.w_pelvis_labels.value, "pelvis"),
                parse_labels(self.w_femur_labels.value, "femur"),
            )
        except HipvizError as exc:
            self._show_error(str(exc))
            return
        finally:
            for widget in (self.w_pelvis_file, self.w_femur_file):
                widget.clear()  # in the browser
                # and here, now: a 60 MB file is 80 MB of text, held by the job alone
                widget.param.update(value=None, filename=None, mime_type=None)

        def job(report: Callable[[str], None]) -> None:
            files = {}
            for role, (name, data) in chosen.items():
                files[role] = (self.session.store(role, name, upload_bytes(data)), name)
            upload = Upload(
                files["pelvis"][0],
                files["femur"][0],
                files["pelvis"][1],
                files["femur"][1],
                *labels,
            )
            self.session.load_upload(upload, progress=report)
            report("finding the landmarks and frame of your hip…")

        if self._doc is not None:
            plan = self.plan.copy()
            plan.case = UPLOAD
            self._build({"anatomy"}, job=job, status="saving your files…", plan=plan)
            return
        try:
            job(lambda text: None)
        except HipvizError as exc:
            self._show_error(str(exc))
            return
        if self.plan.case == UPLOAD:
            self._refresh()
        else:
            self.plan.case = UPLOAD

    # ------------------------------------------------------------------ export

    def _in_worker(self, export: Callable[[], io.BytesIO]) -> Callable:
        """``export`` as a download callback that runs in a worker thread.

        A picture or a report takes seconds of rendering: off the event loop.
        The session's lock keeps a cut from changing the pieces meanwhile,
        and one rendering runs at a time (VTK's off-screen windows).
        """

        def run() -> io.BytesIO:
            with _EXPORT_LOCK, self.session.lock:
                return export()

        async def callback() -> io.BytesIO:
            if self._doc is None:
                return run()
            return await asyncio.wrap_future(_BUILD_POOL.submit(run))

        return callback

    def _rows(self):
        out = self.session.outcome
        return report.measure_rows(out.before, out.after)

    def _csv(self) -> io.BytesIO:
        return io.BytesIO(report.measures_csv(self._rows()).encode())

    def _json(self) -> io.BytesIO:
        out = self.session.outcome
        data = {"plan": self.plan.query(), "source": self.session.source, **out.as_dict()}
        return io.BytesIO(json.dumps(data, indent=2).encode())

    def _scene(self, after: bool, **kwargs: Any) -> render.Scene:
        sim, out = self.session.sim, self.session.outcome
        return render.scene(sim, out if after else None, **kwargs)

    def _png(self) -> io.BytesIO:
        img = render.picture(
            self._scene(True, fixation=self.fixation, labels=self.plan.mode == "student"),
            view=self.plan.view,
            window_size=(1200, 900),
            zoom=2.0,
        )
        return io.BytesIO(render.png_bytes(img))

    def _stl(self) -> io.BytesIO:
        sim, out = self.session.sim, self.session.outcome
        folder = self.session.folder / "export"
        for old in folder.glob("*.stl"):
            old.unlink()
        paths = sim.export(folder, out, sim.fixation(out) if self.fixation else None)
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
            for p in paths:
                zf.write(p, p.name)
        buf.seek(0)
        return buf

    def _report(self) -> io.BytesIO:
        out = self.session.outcome
        before = self._scene(False, angles=True)
        after = self._scene(True, angles=True, fixation=True)
        size, zoom = (700, 560), 2.2
        pictures = {
            "Before (front)": render.picture(before, view="anterior", window_size=size, zoom=zoom),
            "After (front), before faint": render.picture(
                after, view="anterior", window_size=size, zoom=zoom, ghost=before
            ),
            "After (false profile)": render.picture(
                after, view="false_profile", window_size=size, zoom=zoom
            ),
        }
        plan = out.plan
        facts = [("Hip", f"{self.session.source}, {self.session.sim.analysis.side} side")]
        if plan["procedure"]:
            p = plan["pao"]
            facts.append(
                (
                    PROCEDURE_LABELS[plan["procedure"]],
                    f"lateral {p['lateral']:+g}°, anterior {p['anterior']:+g}°, "
                    f"version {p['version']:+g}°, medial {p['medial']:+g} mm",
                )
            )
        f = plan["femoral"]
        if f["level_mm"] is not None:
            facts.append(
                (
                    "Femoral osteotomy",
                    f"varus {f['varus']:+g}°, flexion {f['flexion']:+g}°, "
                    f"rotation {f['rotation']:+g}°, cut {f['level_mm']:.0f} mm below the head",
                )
            )
        facts.append(("Joint gap", f"{out.min_gap_mm:.1f} mm"))
        facts.append(("Leg length change", f"{out.leg_length_change_mm:+.1f} mm"))
        html_text = report.report_html(
            title="hipviz plan",
            subtitle="Pelvic tilt "
            f"{self.plan.tilt:g}° · link parameters: "
            + "&".join(f"{k}={v}" for k, v in self.plan.query().items()),
            rows=self._rows(),
            pictures={k: render.png_bytes(v) for k, v in pictures.items()},
            facts=facts,
            warnings=out.warnings,
        )
        return io.BytesIO(html_text.encode())

    def close(self) -> None:
        """The page closed: delete its files, let go of its hip, give memory back soon."""
        self._stop_animation()
        self.session.close()
        self.view3d._meshes.clear()
        self._coloring = None
        if self._doc is not None:
            schedule_release_memory()


#: Share of the time the measure thread may run when many pages move: a
#: measure is mostly Python, and while it runs the event loop gets the
#: interpreter's lock only in turns, so every page's picture slows down.
#: With 20 pages moving, 1/3 took the picture's 90th percentile from about
#: 1 s (no pause) to 60-200 ms; the measures follow less often instead.
MEASURE_SHARE = 1 / 3
#: Share of the event loop's time that drawing measures may take when many
#: pages move at once; the rest reads slider events and sends pictures.
DRAW_SHARE = 0.5
#: Pages whose latest measure waits to be drawn, oldest first.
_DRAWS: dict[HipApp, None] = {}
_drawing = [False]


def _queue_draw(app: HipApp) -> None:
    """Draw ``app``'s latest measure when its turn comes.

    Drawing a measure (head colours, angle lines, table) costs the event
    loop more than a move's picture does. Drawn as they come, the measures
    of twenty moving pages would fill the loop and every page's next slider
    event would wait behind them; drawn in turn, one at a time and at most
    DRAW_SHARE of the loop's time, a slider event waits for at most one.
    A page waiting already keeps its place (and is drawn at its latest).
    """
    _DRAWS[app] = None
    if not _drawing[0]:
        _drawing[0] = True
        _next_draw(0.0)


def _next_draw(delay: float) -> None:
    asyncio.get_running_loop().call_later(delay, _draw_next)


def _draw_next() -> None:
    """Start drawing the oldest waiting page, on its own document (its lock held)."""
    while _DRAWS:
        app = next(iter(_DRAWS))
        del _DRAWS[app]
        try:
            app._doc.add_next_tick_callback(lambda app=app: _draw_one(app))
        except Exception:  # the page closed meanwhile
            continue
        return
    _drawing[0] = False


def _draw_one(app: HipApp) -> None:
    t0 = time.perf_counter()
    try:
        with pn.io.hold(app._doc):  # one message for the lot, not one per pane
            app._draw_measured()
    finally:
        spent = time.perf_counter() - t0
        _next_draw(spent * (1 / DRAW_SHARE - 1))


#: Memory is given back to the system this long after the last page closed, s
#: (a class leaving closes many pages within seconds: one release for all).
RELEASE_DELAY_S = 5.0
_release_due = [0.0]


def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim``, or None elsewhere (macOS, musl)."""
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name).malloc_trim if name else None
    except (OSError, AttributeError):
        return None


_MALLOC_TRIM = _malloc_trim()


def release_memory() -> None:
    """Collect garbage, then hand the heap's free memory back to the system.

    A session's bones and measures are many mid-sized arrays; freed, glibc
    keeps their memory in its heaps (one per thread that allocated) for
    reuse, so a burst of sessions would leave the server at its peak size
    for good. ``malloc_trim(0)`` returns every free page; it releases the
    interpreter's lock, so it runs in a worker thread beside the event loop.
    """
    gc.collect()
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)


def schedule_release_memory() -> None:
    """:func:`release_memory` in a worker thread once no page has closed for RELEASE_DELAY_S."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:  # not on the server's event loop
        return
    _release_due[0] = due = time.monotonic() + RELEASE_DELAY_S

    def release() -> None:
        if _release_due[0] == due:  # the last page of a burst
            _BUILD_POOL.submit(release_memory)

    loop.call_later(RELEASE_DELAY_S, release)


def create_app(subdivisions: int = 8, limits: Limits | None = None) -> pn.viewable.Viewable:
    """A new page for one browser session, its plan read from the URL query."""
    plan = Plan()
    # before the app exists, so a shared link computes its own hip only; the
    # raw query, so a repeated name or an empty value is seen and reported
    query = web.page_query()
    problems = plan.apply_query(query) if query is not None else []
    app = HipApp(plan, subdivisions=subdivisions, limits=limits)
    if problems:
        app._show_error("; ".join(problems))
    if pn.state.curdoc is not None:
        pn.state.on_session_destroyed(lambda ctx: app.close())
    return app


def warm_up(subdivisions: int = 8) -> None:
    """Build and analyse the default hip once, so the first page opens as fast as the next."""
    session = HipSession(subdivisions=subdivisions)
    try:
        session.prepare(Plan())
    except Exception:  # the page itself will report it
        log.exception("warming up the default hip failed")
    finally:
        session.close()


#: Signals that stop ``hipviz serve`` cleanly (session folders removed first).
STOP_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name)
)


def _start_warm_up() -> None:
    threading.Thread(target=warm_up, name="hipviz-warm-up", daemon=True).start()


def send_frames_at_once() -> None:
    """Serve the page's websockets with TCP_NODELAY (each frame leaves at once).

    A Bokeh message is several websocket frames (header, metadata, content,
    buffers). With Nagle's algorithm, the default, the second frame waits
    until the browser acknowledges the first, and browsers delay their
    acknowledgements by up to 40 ms: a slider move's matrices would often
    arrive 40 ms late. Bokeh and Panel leave the option unset; Panel's own
    websocket route is replaced by the same handler that sets it.
    """
    from bokeh.server.urls import per_app_patterns
    from panel.io.server import WSHandler

    class NoDelayWSHandler(WSHandler):
        def open(self, *args: Any, **kwargs: Any) -> None:
            self.set_nodelay(True)
            return super().open(*args, **kwargs)

    per_app_patterns[:] = [
        (route, NoDelayWSHandler if handler is WSHandler else handler)
        for route, handler in per_app_patterns
    ]


def _bokeh_server(
    *,
    port: int,
    address: str,
    show: bool,
    limits: Limits,
    prefix: str,
    origins: list[str],
    secret: str,
    **kwargs: Any,
) -> Any:
    """The app's Bokeh server, listening but not started (one per process)."""
    pn.extension(notifications=False)
    # A thread that wants the interpreter's lock waits up to this long for
    # the thread holding it; the event loop wants it back after every socket
    # write, so with a measure running each message would wait up to 5 ms
    # (Python's default) several times.
    sys.setswitchinterval(0.001)
    send_frames_at_once()
    web.build_pages_off_loop()  # a page opening does not stop the others
    lean.install()  # two of Panel's costs per update, not needed here
    web.allow_long_links()  # a long link gets its one-line message, not a blank page

    def page() -> pn.viewable.Viewable:  # a plain function: Panel calls it per session
        return create_app(limits=limits)

    return pn.serve(
        web.applications({"/": page}, title="hipviz"),
        port=port,
        address=address,
        show=show,
        start=False,
        allow_websocket_origin=origins,
        # a chosen file arrives as base64 in one websocket message: room for
        # the largest allowed, and the page checks sizes against the same limit
        websocket_max_message_size=websocket_max_message_bytes(limits.max_file_mb),
        transforms=[web.SecurityHeaders],  # CSP and friends on every response
        # Signed session ids and tokens: unsigned, Bokeh takes a session id
        # from the page's address (?bokeh-session-id=...), so a crafted link
        # would give its victim a session its author can join and watch.
        sign_sessions=True,
        secret_key=secret,
        prefix=prefix,
        **kwargs,
    )


def _run_until_stopped(
    server: Any, stop_signals: tuple[int, ...], report: Callable[[int], None] | None = None
) -> int:
    """Run ``server`` until one of ``stop_signals``; delete the live sessions' folders.

    A second signal while stopping (a long job holds the loop) deletes them,
    reports their number to ``report`` and exits at once. Returns the number
    of folders removed.
    """
    loop = server.io_loop
    signals: list[int] = []

    def stop(signum: int, frame: Any) -> None:
        signals.append(signum)
        if len(signals) > 1:  # asked again while stopping: go now
            removed = remove_live_folders()
            if report is not None:
                report(removed)
            os._exit(128 + signum)
        loop.asyncio_loop.call_soon_threadsafe(loop.stop)

    previous = {}
    if threading.current_thread() is threading.main_thread():  # only it may set handlers
        previous = {sig: signal.signal(sig, stop) for sig in stop_signals}
    try:
        server.start()
        loop.start()
    finally:
        removed = remove_live_folders()  # first: the patients' files
        try:
            server.stop()
        except Exception:  # stopping is best effort; the folders are gone already
            log.exception("stopping the server")
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return removed


def _serve_child(index: int, channel: Any, **options: Any) -> int:
    """One of ``--num-procs`` processes: serve the connections the parent passes on."""
    from tornado.ioloop import IOLoop
    from tornado.iostream import IOStream

    web.set_process_index(index)
    for sig in STOP_SIGNALS:  # the terminal's Ctrl+C and hang-up reach every process:
        if sig != signal.SIGTERM:  # only the parent's SIGTERM stops a child
            signal.signal(sig, signal.SIG_IGN)
    # verbose=False: its private address is of no use to anyone
    server = _bokeh_server(port=0, address="127.0.0.1", show=False, verbose=False, **options)
    http = server._http  # Bokeh's Tornado HTTPServer (no public accessor)
    http.stop()  # it listens on nothing: every connection comes from the parent
    loop = server.io_loop

    def serve_connection(sock: Any) -> None:
        try:
            address = sock.getpeername()
        except OSError:  # the client has gone already
            sock.close()
            return
        sock.setblocking(False)
        stream = IOStream(
            sock, max_buffer_size=http.max_buffer_size, read_chunk_size=http.read_chunk_size
        )
        http.handle_stream(stream, address)

    def on_channel(fd: int, events: int) -> None:
        if not procs.receive_connections(channel, serve_connection):
            loop.stop()  # the parent is gone

    def report(removed: int) -> None:
        try:
            channel.send(f"removed {removed}\n".encode())
        except OSError:
            pass

    channel.setblocking(False)
    loop.add_handler(channel.fileno(), on_channel, IOLoop.READ)
    _start_warm_up()  # after the fork: Embree's thread pool does not survive one
    report(_run_until_stopped(server, (signal.SIGTERM,), report))
    return 0


def serve(
    port: int = 5006,
    address: str = "127.0.0.1",
    show: bool = False,
    *,
    limits: Limits | None = None,
    on_ready: Callable[[str], None] | None = None,
    num_procs: int = 1,
    prefix: str = "",
    allow_websocket_origin: list[str] | None = None,
    **kwargs: Any,
) -> int:
    """Run the app until Ctrl+C, SIGTERM or SIGHUP (``hipviz serve``).

    Session folders a crashed earlier run left are removed first; the port
    is bound before ``on_ready`` is told the address, so a port in use is an
    :class:`InputError`, not a server that never answers. When a stop signal
    arrives the event loop stops and every live session's folder is deleted;
    a second signal while stopping deletes them and exits at once.

    Parameters
    ----------
    port, address : int, str
        Where to listen (127.0.0.1: this computer only).
    show : bool
        Open the app in the default browser.
    limits : hipviz.io.Limits, optional
        Limits on uploads; default: :class:`~hipviz.io.Limits` with
        :data:`~hipviz.app.state.MAX_UPLOAD_MB` MB per file.
    on_ready : callable, optional
        Called with the app's address once the port is bound.
    num_procs : int, default: 1
        Server processes (0: one per core). With more than one, this
        process accepts the connections and passes each to a child process
        (:mod:`hipviz.app.procs`): a page's websocket to the process that
        built its session, so each page is built once. Each child has its
        own sessions, event loop and worker threads and builds the default
        hip once forked; a stop signal to this process stops them all, and
        each deletes its sessions' folders. Not on Windows.
    prefix : str, default: ""
        URL path the app is served under (``hipviz`` -> ``/hipviz/``),
        for a reverse proxy that forwards such a path.
    allow_websocket_origin : list of str, optional
        More ``host[:port]`` the page may be opened from (the proxy's
        public name); this address, localhost and 127.0.0.1 always are.
    **kwargs
        Passed to :func:`panel.serve`.

    Returns
    -------
    int
        The number of session folders removed when the server stopped.

    Raises
    ------
    InputError
        If the address cannot be listened on (port in use, no such address,
        not permitted), no session folder can be made, or several processes
        are asked for where processes cannot be forked.
    """
    from tornado.netutil import bind_sockets

    num_procs = num_procs or os.cpu_count() or 1
    if num_procs > 1 and not hasattr(os, "fork"):
        raise InputError(f"--num-procs {num_procs}: several processes need os.fork (not Windows)")
    stale = remove_stale_folders()
    if stale:
        log.warning("removed %d session folder(s) left by an earlier run", len(stale))
    remove_session_folder(new_session_folder())  # sessions will be able to keep files
    options = {
        "limits": limits or Limits(max_file_mb=MAX_UPLOAD_MB),
        "prefix": prefix,
        "secret": secrets.token_urlsafe(32),  # shared by the processes forked below
        **kwargs,
    }
    path = f"/{prefix.strip('/')}/" if prefix.strip("/") else "/"
    try:
        if num_procs == 1:
            origins = [f"{address}:{port}", f"localhost:{port}", f"127.0.0.1:{port}"]
            server = _bokeh_server(
                port=port,
                address=address,
                show=show,
                origins=[*origins, *(allow_websocket_origin or [])],
                **options,
            )
        else:
            listeners = bind_sockets(port, address)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        msg = f"cannot listen on {address}:{port} ({reason}); choose another --port or --address"
        raise InputError(msg) from None
    if num_procs == 1:
        _start_warm_up()  # its session folder exists before the address is told
        if on_ready is not None:
            on_ready(f"http://{address}:{server.port}{path}")
        return _run_until_stopped(server, STOP_SIGNALS)

    port = listeners[0].getsockname()[1]  # the one bound, when 0 asked for any
    origins = [f"{address}:{port}", f"localhost:{port}", f"127.0.0.1:{port}"]
    options["origins"] = [*origins, *(allow_websocket_origin or [])]
    dispatcher = procs.fork_children(
        num_procs, listeners, lambda i, ch: _serve_child(i, ch, **options)
    )
    if on_ready is not None:
        on_ready(f"http://{address}:{port}{path}")
    previous = {}
    if threading.current_thread() is threading.main_thread():
        previous = {
            sig: signal.signal(sig, lambda signum, frame: dispatcher.signals.append(signum))
            for sig in STOP_SIGNALS
        }
    try:
        return dispatcher.run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


__all__ = [
    "HipApp",
    "LiveSlider",
    "UploadGuard",
    "UploadInput",
    "create_app",
    "release_memory",
    "send_frames_at_once",
    "serve",
    "warm_up",
]
