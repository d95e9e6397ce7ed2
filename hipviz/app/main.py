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

The page is made of components, each in its own module, sharing one
:class:`~hipviz.app.state.PageState` (plan, session, document, loading):
:class:`~hipviz.app.controls.Controls` (left column),
:class:`~hipviz.app.scene.SceneDriver` (the 3D view and what is sent to it),
:class:`~hipviz.app.measures_table.MeasuresTable`,
:class:`~hipviz.app.modes.Modes` (Plan / Learn / Explain),
:class:`~hipviz.app.exports.Exports` and
:class:`~hipviz.app.motion_view.MotionView`. :class:`HipApp` lays them out and
runs the work between them: it watches the plan, builds and measures in
worker threads, and hands each result to the components that show it.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import gc
import logging
import os
import secrets
import signal
import sys
import threading
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import panel as pn
import param
from bokeh.util.warnings import BokehUserWarning
from panel.io.state import set_curdoc

from hipviz import cases
from hipviz.errors import HipvizError, InputError
from hipviz.io import Limits

from . import procs, web, workers

# CASE_LABELS and PROCEDURE_LABELS are imported from here by tests and scripts
from .controls import CASE_LABELS, PROCEDURE_LABELS, Controls  # noqa: F401
from .exports import Exports
from .load_view import LoadView
from .measures_table import MeasuresTable
from .modes import Modes
from .motion_view import MotionView
from .pacing import Pacer
from .scene import Pieces, SceneDriver, prepare_pieces
from .state import (
    BUILTIN,
    INCOMING_PREFIX,
    MAX_UPLOAD_MB,
    UPLOAD,
    URL_PARAMS,
    HipSession,
    PageState,
    Plan,
    Upload,
    new_session_folder,
    remove_live_folders,
    remove_session_folder,
    remove_stale_folders,
    upload_bytes,
    websocket_max_message_bytes,
)
from .text import inert
from .widgets import CSS, LAYOUT_CSS, AddressBar, LiveSlider, UploadGuard, UploadInput
from .workers import BUILD_POOL as _BUILD_POOL
from .workers import MEASURE_POOL as _MEASURE_POOL

log = logging.getLogger("hipviz.app")
#: Quiet time after the last slider move before fixation is placed again, ms.
SETTLE_MS = 250
#: The address bar's link is written at most this often per page, s (see HipApp._write_link).
LINK_PERIOD_S = 1.0


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


class HipApp(pn.viewable.Viewer):
    """The whole page for one browser session: its components, laid out and kept in step.

    Parameters
    ----------
    plan : Plan, optional
        The page's plan (a link's, read by :func:`create_app`); a new one by default.
    subdivisions : int, default: 8
        Mesh resolution of the built-in hips.
    limits : hipviz.io.Limits, optional
        Limits on uploads.

    Attributes
    ----------
    plan, session : Plan, HipSession
        The page's plan and hip.
    page : PageState
        Plan, session, document and loading flag, shared by the components.
    controls : Controls
        Hip, osteotomy and upload controls (left column).
    scene : SceneDriver
        The 3D view, its toolbar, and everything sent to it.
    measures : MeasuresTable
        The measures table, and the facts and warnings under the view.
    modes : Modes
        The Plan / Learn / Explain picker and the Explain walk-through.
    exports : Exports
        The downloads.
    motion : MotionView
        The Motion view: the leg turned by sliders, the limits before -> after.
    """

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
        self._link = Pacer(
            self.plan.url_query,
            lambda query: setattr(self._address, "query", query),
            self._later,
            LINK_PERIOD_S,
            written=self._address.query,
        )
        self.session = HipSession(subdivisions=subdivisions, limits=limits)
        self.page = PageState(self.plan, self.session)
        self._settle_at = 0.0  # when the sliders will have rested, time.monotonic() s
        self._settle_pending = False
        self._ticket = 0
        self._measuring = False
        self._measure_result: tuple[int, Any] | None = None
        # Messages quote links and file names: shown through text.inert, no maths
        self._error = pn.pane.Alert(
            "", alert_type="danger", visible=False, margin=(4, 8), disable_math=True
        )
        self._status = pn.pane.Alert(
            "", alert_type="info", visible=False, margin=(4, 8), disable_math=True
        )
        self.measures = MeasuresTable()
        self.scene = SceneDriver(self.page, on_warning=self.measures.warn)
        self.controls = Controls(
            self.plan,
            max_file_mb=self.session.limits.max_file_mb,
            on_upload=lambda: self._on_upload(),
            on_error=lambda message: self._show_error(message),
            receiver=self.session,
        )
        self.modes = Modes(self.page, self.scene)
        self.load_view = LoadView(self.page, self.scene)
        self.measures.more_rows.append(self.load_view.rows)
        self.modes.more_steps.append(self.load_view.explain_step)
        self.modes.on_show.append(self.load_view.explain_shown)
        self.exports = Exports(
            self.page,
            self.scene,
            load_view=self.load_view,
            on_error=lambda message: self._show_error(message),
        )
        #: Work done in the measure worker right after each measure (outcome -> None).
        self.after_measure: list[Callable[[Any], Any]] = [self.load_view.compute]
        self.motion = MotionView(self.page, self.scene, on_limits=self.modes.set_rom)
        self.modes.need_rom = self.motion.request_limits
        self.plan.param.watch(self._on_plan, list(URL_PARAMS))
        self.scene.param.watch(self._on_display, ["angles", "fixation", "ghost"])
        self.page.doc = pn.state.curdoc
        if self.page.doc is not None and self.page.doc.session_context is None:
            self.page.doc = None
        # a served page builds its hip while the browser loads the page
        self._refresh(initial=True)

    # The page's document and loading flag live in the shared PageState.
    @property
    def _doc(self) -> Any:
        return self.page.doc

    @_doc.setter
    def _doc(self, doc: Any) -> None:
        self.page.doc = doc

    @property
    def _loading(self) -> bool:
        return self.page.loading

    @_loading.setter
    def _loading(self, loading: bool) -> None:
        self.page.loading = loading

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
            self.modes.w_mode,
            self._address,
            self.controls.guard,
            sizing_mode="stretch_width",
            # a narrow screen puts the mode buttons under the title, not off the edge
            styles={
                "border-bottom": "1px solid #dde",
                "background": "#f7f9fb",
                "flex-wrap": "wrap",
            },
        )
        controls = self.controls.__panel__()
        # the Load card follows the hip's posture, before the osteotomy
        controls.insert(controls.objects.index(self.controls.upload_card) + 1, self.load_view)
        centre = pn.Column(
            self.scene.toolbar(),
            self.scene.views,
            self.load_view.colorbar,
            self.load_view.note,
            self.measures.facts,
            self.measures.warnings,
            sizing_mode="stretch_both",
            css_classes=["hv-centre"],
            stylesheets=[LAYOUT_CSS],
        )
        measures = pn.Column(
            self.motion,
            pn.pane.Markdown("### Measures", margin=(0, 8)),
            self.measures.table,
            pn.pane.Markdown("### Export", margin=(0, 8)),
            self.exports.__panel__(),
            sizing_mode="stretch_height",
            width=470,
            scroll=True,
            css_classes=["hv-measures"],
            stylesheets=[LAYOUT_CSS],
        )
        explain_panel = self.modes.__panel__()
        # the body's stylesheet (LAYOUT_CSS) finds its columns by these classes
        controls.css_classes = [*controls.css_classes, "hv-controls"]
        explain_panel.css_classes = [*explain_panel.css_classes, "hv-explain"]
        self._measures_panel, self._explain_panel = measures, explain_panel
        self._controls = controls
        self._apply_mode()
        body = pn.Row(
            controls,
            centre,
            measures,
            explain_panel,
            sizing_mode="stretch_both",
            css_classes=["hv-body"],
            stylesheets=[LAYOUT_CSS],
        )
        return pn.Column(
            header,
            self._error,
            self._status,
            body,
            sizing_mode="stretch_both",
            stylesheets=[CSS, LAYOUT_CSS],
            css_classes=["hv-page"],
        )

    def _apply_mode(self) -> None:
        """Show the panels of the plan's mode: Explain hides the controls and measures."""
        if not hasattr(self, "_measures_panel"):
            return
        explaining = self.plan.mode == "explain"
        if not explaining:
            self.scene.show_before(False)
        self._measures_panel.visible = not explaining
        self._explain_panel.visible = explaining
        self._controls.visible = not explaining
        self.measures.facts.visible = not explaining
        if explaining:
            self.measures.warnings.visible = False
        if explaining:
            self.modes.enter()
        elif self.session.outcome is not None and not self._loading:
            self.scene.stop_animation()
            self.scene.pose(self.session.outcome)
            self.measures.update(self.session.outcome)

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
            web.next_tick(doc, lambda: self._loading and self._show_status(text))

        def work() -> None:
            try:
                if job is not None:
                    job(report)
                changed: Any = session.prepare(plan)
                if "anatomy" in changed or initial:
                    report(f"measuring {self._hip_name(plan)}…")
                    self._after_measure(session.measure(plan))
                    changed = changed | {"anatomy"}
                # the pieces made ready here, not on the event loop (see send_meshes)
                pieces = prepare_pieces(session.sim, changed) if changed else None
                result = (changed, pieces)
            except Exception as exc:  # reported on the page by _built
                result = exc
            try:
                web.next_tick(
                    doc,
                    lambda: _when_loaded(
                        doc, lambda: self._built(plan, asked, result, initial=initial)
                    ),
                )
            except Exception:  # the page closed meanwhile
                log.debug("a hip was built after its page closed")

        if initial:
            # The page is still being built, off the event loop, and its Bokeh
            # session does not exist yet: a worker finishing now would reach the
            # document while the session is being made, and its callback could be
            # lost (1 page in 40 or so of 40 opening at once never drew its hip).
            # Start the worker from the event loop, once the session exists; its
            # result then comes back through the loop (web.next_tick).
            doc.add_next_tick_callback(lambda: _BUILD_POOL.submit(work))
            return
        _BUILD_POOL.submit(work)

    def _built(self, plan: Plan, asked: str, result: Any, *, initial: bool = False) -> None:
        """Second half of :meth:`_build`, on the event loop: draw ``plan``'s hip, or its error.

        ``asked`` is the page's plan (its query) when the build was asked for;
        ``result`` is what changed and its pieces made ready
        (:func:`~hipviz.app.scene.prepare_pieces`), or the build's exception.
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
        changed, pieces = result
        if "anatomy" in changed:
            self._draw(changed, initial=initial, pieces=pieces)
            if self.plan.query() != plan.query():
                self._refresh()  # the plan changed while the hip was built
        else:
            if changed:
                self.scene.send_meshes(changed, pieces)
                self.controls.describe_procedure()
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
        self.scene.view3d.loading = busy
        for widget in [*self.controls.build_widgets(), *self.exports.buttons]:
            widget.disabled = busy

    def _on_plan(self, *events: param.parameterized.Event) -> None:
        names = {e.name for e in events}
        self._schedule_settle()
        if "view" in names:  # the scene driver turns the view
            names.discard("view")
            if not names:
                return
        if "mode" in names:
            self._apply_mode()
            names.discard("mode")
            if not names:
                return
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
            self.scene.send_meshes(changed)
            self.controls.describe_procedure()
        if self.plan.mode != "explain":
            self.scene.move(tfs)
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
                self._after_measure(result)
            except Exception as exc:  # reported on the page by _measured
                result = exc
            try:
                web.next_tick(doc, lambda: self._measured(ticket, result))
            except Exception:  # the page closed meanwhile
                log.debug("measure finished after its page closed")
            # leave the interpreter's lock to the event loop for a while
            # before the next page's measure (see MEASURE_SHARE)
            time.sleep((time.perf_counter() - t0) * (1 / MEASURE_SHARE - 1))

        _MEASURE_POOL.submit(work)

    def _after_measure(self, out: Any) -> None:
        """Run :attr:`after_measure` on a new outcome, in the worker; a failure is logged only
        (the view that needs it computes again when it draws, and reports it there)."""
        for work in self.after_measure:
            try:
                work(out)
            except Exception:
                log.debug("work after a measure failed", exc_info=True)

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
            # the link rides in the same message when its period is over
            self._write_link()

    def _draw(
        self,
        changed: set[str],
        *,
        initial: bool = False,
        pose: bool = True,
        pieces: Pieces | None = None,
    ) -> None:
        """Show the session's hip and outcome: new pieces, then the mode's picture and text.

        ``pieces``: the new pieces, made ready off the event loop (else made here).
        """
        sim, out = self.session.sim, self.session.outcome
        if sim is None or out is None:
            return
        if changed & {"anatomy", "cut", "femur"}:
            self.scene.send_meshes(changed, pieces)
        if changed & {"anatomy"}:
            self.scene.frame_hip(reset_camera=not initial)
            self.controls.show_source(self.session.source)
        self.controls.describe_procedure()
        if self.plan.mode == "explain":
            self.modes.show_step()
            return
        self.scene.pose(out, matrices=pose)
        self.measures.update(out)
        self._schedule_settle()

    def _on_display(self, *events: param.parameterized.Event) -> None:
        if self.session.outcome is not None and not self._loading:  # else _built draws
            if self.plan.mode == "explain":
                self.modes.show_step()
            else:
                self.scene.pose(self.session.outcome)

    def _show_error(self, message: str) -> None:
        """One line above the view (or none for ""): as text, never as markup."""
        text = inert(message)
        if text == self._error.object and self._error.visible == bool(message):
            return  # every move clears it: no need to go through Panel when it is clear
        self._error.object = text
        self._error.visible = bool(message)

    def _show_status(self, message: str) -> None:
        """What the page is waiting for, in one line ("" hides it): as text, never as markup."""
        self._status.object = inert(message)
        self._status.visible = bool(message)

    # ------------------------------------------------------------------ settling

    def _schedule_settle(self) -> None:
        """After the sliders rest for SETTLE_MS: place the fixation, write the link.

        Every move and every drawing of measures pushes the moment back; one
        timer per page follows it (not a new one each time: each costs the
        event loop that all pages share).
        """
        if self._doc is None:
            return
        self._settle_at = time.monotonic() + SETTLE_MS / 1000
        if not self._settle_pending:
            self._settle_pending = True
            self._later(SETTLE_MS / 1000, self._settled)

    def _settled(self) -> None:
        wait = self._settle_at - time.monotonic()
        if wait > 0.001:  # moved meanwhile: wait for the rest
            self._later(wait, self._settled)
            return
        self._settle_pending = False
        if self._loading:
            return  # _built draws, and settles again
        with pn.io.hold(self._doc):
            self._write_link()
            if self.scene.fixation and self.session.outcome is not None:
                self.scene.place_fixation(self.session.outcome)

    def _later(self, delay_s: float, callback: Callable[[], None]) -> None:
        """Run ``callback`` on the page's event loop (its document locked) in ``delay_s`` s."""
        if self._doc is not None:
            self._doc.add_timeout_callback(callback, max(1, round(1000 * delay_s)))

    def _write_link(self) -> None:
        """The plan into the address bar, if it changed: at most once per LINK_PERIOD_S.

        Every write costs the event loop that all pages share a message; a
        link is copied once the plan is done, so a page whose sliders keep
        moving writes it at most once a period, and the plan as it is at the
        end of the period (:class:`~hipviz.app.pacing.Pacer`): the last
        change is always written.
        """
        self._link.poke()

    # ------------------------------------------------------------------ upload

    def _on_upload(self, event: Any = None) -> None:
        """Read the chosen files in a worker thread and show them; errors in one line.

        The files are taken from the inputs (which are cleared) on the event
        loop; decoding, saving, reading and building the hip happen in the
        worker (:meth:`_build`), with the page saying which file it reads.
        """
        if self._loading:
            return  # the button is disabled meanwhile; a click may have crossed that
        try:
            chosen, labels = self.controls.take_upload()
        except HipvizError as exc:
            self._show_error(str(exc))
            return

        tilt = self.plan.tilt  # the hip is analysed as it is read, for this posture

        def job(report: Callable[[str], None]) -> None:
            files = {}
            try:
                for role, (name, data) in chosen.items():  # both checked before either is kept
                    self.session.check_file(role, name, data)
                for role, (name, data) in chosen.items():
                    if role == "femur" and data is chosen["pelvis"][1]:
                        data = files["pelvis"][0]  # one label map for both: the pelvis's copy
                    if not isinstance(data, Path):
                        data = upload_bytes(data)
                    files[role] = (self.session.store(role, name, data), name)
            finally:  # what arrived and was not kept goes (a refused pair, tried again and again)
                for _, data in chosen.values():
                    if isinstance(data, Path) and data.name.startswith(INCOMING_PREFIX):
                        data.unlink(missing_ok=True)
            upload = Upload(
                files["pelvis"][0],
                files["femur"][0],
                files["pelvis"][1],
                files["femur"][1],
                *labels,
            )
            # served: read in a child process, so the other pages go on meanwhile
            self.session.load_upload(
                upload, progress=report, tilt_deg=tilt, in_child=self._doc is not None
            )

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

    def close(self) -> None:
        """The page closed: delete its files, let go of its hip, give memory back soon."""
        self.motion.close()
        self.scene.close()
        self.session.close()
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
        web.fit_to_screen(pn.state.curdoc)
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
    def run() -> None:
        try:  # the first upload need not wait for the readers' fork server
            workers.start_children()
        except Exception:  # the first upload will start it, or report why not
            log.exception("starting the upload readers' fork server failed")
        warm_up()

    threading.Thread(target=run, name="hipviz-warm-up", daemon=True).start()


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
    web.allow_long_links()  # a long link gets its one-line message, not a blank page
    # A view added to an open page (Explain's "before") names its model in full in
    # its first message; Bokeh uses the model it has and warns, each time.
    warnings.filterwarnings("ignore", "reference already known", BokehUserWarning)

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
