"""The app's own widgets and page styles, shared by its components.

Panel's widgets with the few changes a live 3D page needs (a slider that
reaches the server at once, a file input that leaves decoding to a worker),
two small browser-side components (the address bar; the upload guard, which
checks a chosen file's size and sends it in pieces), and the CSS of the
page's HTML panes.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import panel as pn
import param

from hipviz import report
from hipviz.errors import InputError

from .state import Incoming, Plan
from .text import NAME_CHARS, byte_amount, clamp
from .viewer import PlainUpdates

#: Styles of the page's HTML panes (each pane has its own shadow root).
CSS = (
    """
.hv-header { display: flex; flex-wrap: wrap; align-items: baseline; column-gap: 14px;
  padding: 4px 4px; }
.hv-title { font-size: 24px; font-weight: 700; color: #2f4f6f; letter-spacing: 0.5px; }
.hv-sub { color: #667; font-size: 13px; }
.hv-status { font-size: 13px; color: #333; }
@media (max-width: 599px) {
  .hv-title { font-size: 20px; }
  .hv-header .hv-sub { font-size: 11px; }
}
.hv-step-title { font-size: 28px; font-weight: 700; margin: 4px 0 10px; color: #2f4f6f; }
.hv-step-text { font-size: 22px; line-height: 1.55; }
.hv-step-count { color: #778; font-size: 15px; }
ol.hv-steps { color: #889; font-size: 15px; margin-top: 18px; line-height: 1.6; }
ol.hv-steps li.hv-now { color: #2f4f6f; font-weight: 700; }
"""
    + report.TABLE_CSS
)

log = logging.getLogger(__name__)

#: Size of the pieces the browser sends an uploaded file in, bytes: each
#: costs the server's event loop well under a millisecond.
PIECE_BYTES = 1 << 20
#: Pieces sent ahead of their acknowledgement: two keep the connection busy.
PIECES_IN_FLIGHT = 2
#: How often the upload's progress line is rewritten at most, s.
PROGRESS_EVERY_S = 0.25

#: Widest screen (CSS px) given the narrow, stacked layout: tablet portrait, phones.
NARROW_MAX_PX = 999
#: Widest screen given the medium layout (narrower side columns): tablet landscape.
MEDIUM_MAX_PX = 1279

#: How the page adapts to the screen: a stylesheet of the page (css class
#: hv-page), its body (hv-body), and the body's centre (hv-centre) and measures
#: (hv-measures) columns, each finding what is in its shadow root by css class.
#: Desktop: controls | 3D view | measures, each column scrolling on its own.
#: Tablet landscape: the same with narrower side columns. Tablet portrait and
#: phone: one column that scrolls, the 3D view first and kept at the top
#: (sticky) while the controls and measures scroll under it; the view takes
#: what the screen can spare and still leaves room to reach a slider, and the
#: notes under it (joint gap, warnings) scroll inside its box.
LAYOUT_CSS = f"""
@media (max-width: {MEDIUM_MAX_PX}px) {{
  /* the page and its body would keep the desktop's columns' widths as a minimum */
  :host(.hv-page), :host(.hv-body) {{ min-width: 0 !important; max-width: 100vw; }}
  /* a card would keep the widest of its contents' widths (the Motion card's buttons) */
  .card {{ min-width: 0 !important; max-width: 100% !important; }}
}}
@media (max-width: {MEDIUM_MAX_PX}px) and (min-width: {NARROW_MAX_PX + 1}px) {{
  .hv-controls {{
    flex: 0 0 300px !important; width: 300px !important; min-width: 300px !important;
  }}
  .hv-measures, .hv-explain {{
    flex: 0 0 390px !important; width: 390px !important; min-width: 390px !important;
  }}
}}
@media (max-width: {NARROW_MAX_PX}px) {{
  :host(.hv-body) {{
    flex-direction: column !important; flex-wrap: nowrap !important;
    overflow-x: hidden !important; overflow-y: auto !important;
  }}
  .hv-centre {{
    order: -1; flex: none !important; width: 100% !important;
    height: 62vh !important; min-height: 320px !important;
    position: sticky; top: 0; z-index: 2; background: #ffffff;
    border-bottom: 1px solid #dde; overflow-y: auto !important;
  }}
  .hv-controls, .hv-measures, .hv-explain {{
    flex: none !important; width: 100% !important; min-width: 0 !important;
    max-width: 100% !important; height: auto !important; max-height: none !important;
    overflow: visible !important;
  }}
  .hv-view3d {{ flex: 0 0 calc(100% - 78px) !important; min-height: 240px !important; }}
}}
@media (max-width: 599px) {{
  .hv-centre {{ height: 56vh !important; }}
  .hv-view3d {{ flex-basis: calc(100% - 110px) !important; }}
}}
"""


class AddressBar(PlainUpdates, pn.custom.JSComponent):
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
    """Checks and sends, from the browser, the files chosen in the page's upload inputs.

    Panel's file input reads a chosen file whole and sends it as base64
    text in one websocket message: the server's event loop then spends
    most of a second taking a 60 MB file in (every other page waits), and
    a message over the server's limit closes the page's connection with no
    word to the user. This listens, ahead of the inputs' own handlers, for
    the files chosen in every file input of the page:

    * a file larger than ``max_bytes`` is cleared there and named in
      ``refused`` (name and size), which the app shows as its one-line error;
    * with a ``receiver`` (the page's :class:`~hipviz.app.state.HipSession`),
      a file chosen in an input marked ``hv-file-pelvis`` or ``hv-file-femur``
      is sent in pieces of ``piece_bytes`` (binary, at most
      :data:`PIECES_IN_FLIGHT` unacknowledged) into the session's folder
      (:class:`~hipviz.app.state.Incoming`), and the input's own handler never
      sees it; :meth:`take` hands the files that arrived whole to the app.

    Inputs that appear later are found by a check each second. Without a
    receiver, files go by the inputs' own way.
    """

    max_bytes = param.Integer(default=0, doc="Largest file the page may send, bytes.")
    refused = param.String(default="", doc="The last refused file: 'name<TAB>bytes<TAB>n'.")
    piece_bytes = param.Integer(
        default=PIECE_BYTES,
        bounds=(1024, None),
        doc="""
        Size of the pieces a file is sent in, bytes.""",
    )
    sends = param.Boolean(
        default=False,
        doc="""
        Whether the browser sends chosen files itself (set when a receiver is given).""",
    )
    progress = param.String(
        default="",
        doc="""
        What has arrived of the files being sent, in words (shown under the inputs).""",
    )
    failed = param.String(default="", doc="The last file refused by the server, in one line.")

    _esm = """
    export function render({model}) {
      const seen = new WeakSet()
      const jobs = {}  // role -> the file being sent for it
      let count = 0
      let next = 0
      const roleOf = (input) => {
        const host = input.getRootNode().host
        for (const role of ["pelvis", "femur"]) {
          if (host && host.classList.contains("hv-file-" + role)) return role
        }
        return null
      }
      const pump = async (job) => {
        if (job.busy) return
        job.busy = true
        try {
          while (jobs[job.role] === job && job.inflight < PIECES_IN_FLIGHT
                 && job.offset < job.file.size) {
            const start = job.offset
            const end = Math.min(start + model.piece_bytes, job.file.size)
            job.offset = end
            job.inflight += 1
            const data = await job.file.slice(start, end).arrayBuffer()
            if (jobs[job.role] !== job) return
            model.send_msg({kind: "piece", id: job.id, offset: start, data: data})
          }
          if (jobs[job.role] === job && job.offset >= job.file.size && job.inflight === 0
              && !job.ended) {
            job.ended = true
            model.send_msg({kind: "end", id: job.id})
          }
        } catch (err) {
          // the file could not be read (moved or deleted since it was chosen)
          if (jobs[job.role] === job) {
            delete jobs[job.role]
            model.send_msg({kind: "lost", id: job.id})
          }
        } finally {
          job.busy = false
        }
      }
      const send = (role, file, input) => {
        next += 1
        const job = {
          id: next, role: role, file: file, input: input, offset: 0, inflight: 0, busy: false,
        }
        jobs[role] = job
        model.send_msg({kind: "start", id: job.id, role: role, name: file.name, size: file.size})
        pump(job)
      }
      model.on("msg:custom", (msg) => {
        for (const job of Object.values(jobs)) {
          if (job.id !== msg.id) continue
          if (msg.kind === "ack") {
            job.inflight -= 1
            pump(job)
          } else {
            delete jobs[job.role]  // arrived whole, or refused
            if (msg.kind === "error") {
              job.input.value = ""  // so that choosing the same file again sends it again
            }
          }
        }
      })
      const guard = (event) => {
        const input = event.target
        if (!(input instanceof HTMLInputElement) || input.type !== "file" || !input.files) {
          return
        }
        const role = roleOf(input)
        for (const file of input.files) {
          if (model.max_bytes > 0 && file.size > model.max_bytes) {
            event.stopImmediatePropagation()
            input.value = ""
            count += 1
            model.refused = file.name + "\t" + file.size + "\t" + count
            if (model.sends && role !== null) {
              // the input is empty now: so is what the server holds for it
              delete jobs[role]
              model.send_msg({kind: "clear", role: role})
            }
            return
          }
        }
        if (model.sends && role !== null && input.files.length === 1) {
          event.stopImmediatePropagation()  // the input itself would send it whole
          send(role, input.files[0], input)
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
    """.replace("PIECES_IN_FLIGHT", str(PIECES_IN_FLIGHT))

    def __init__(self, *, receiver: Any = None, **params: Any):
        super().__init__(sends=receiver is not None, **params)
        self._receiver = receiver
        self._incoming: dict[str, tuple[int, Incoming]] = {}  # role -> (job id, file)
        self._arrived: dict[str, tuple[str, Path]] = {}  # role -> (name, path)
        self._failures = 0
        self._shown = 0.0  # when progress was last written (time.monotonic)

    # ------------------------------------------------------------ server side

    def _handle_msg(self, msg: Any) -> None:
        """One message of the browser's sending (on the event loop: quick, no lock)."""
        if self._receiver is None or not isinstance(msg, dict):
            return
        kind, job = msg.get("kind"), msg.get("id")
        if kind == "start":
            self._start(job, msg.get("role"), msg.get("name"), msg.get("size"))
            return
        if kind == "clear":  # a file refused in the browser replaces the one held
            if msg.get("role") in ("pelvis", "femur"):
                self._drop(msg["role"])
                self._show_progress(force=True)
            return
        role = next((r for r, (j, _) in self._incoming.items() if j == job), None)
        if role is None:
            return  # replaced by a newer choice, or refused already
        incoming = self._incoming[role][1]
        try:
            if kind == "piece":
                offset = msg.get("offset")
                if isinstance(offset, bool) or not isinstance(offset, int):
                    offset = -1
                incoming.write(offset, msg.get("data"))
                self._send_msg({"kind": "ack", "id": job, "offset": offset})
                self._show_progress()
            elif kind == "end":
                path = incoming.finish()
                del self._incoming[role]
                self._arrived[role] = (incoming.name, path)
                self._send_msg({"kind": "done", "id": job})
                self._show_progress(force=True)
            elif kind == "lost":
                msg_ = f"{clamp(incoming.name, NAME_CHARS)}: the browser could not read the file"
                raise InputError(msg_)
        except InputError as exc:
            self._fail(role, job, str(exc))
        except Exception as exc:  # a full disk, say: one line, and the page goes on
            log.exception("receiving an upload failed")
            self._fail(role, job, f"{clamp(incoming.name, NAME_CHARS)}: could not be kept ({exc})")

    def _start(self, job: Any, role: Any, name: Any, size: Any) -> None:
        if role not in ("pelvis", "femur") or not isinstance(name, str):
            return
        if isinstance(job, bool) or not isinstance(job, int):
            return  # the page numbers its files 1, 2, ...
        self._drop(role)
        try:
            incoming = self._receiver.receive(role, name, size)
        except Exception as exc:  # InputError; or a full disk, say
            if not isinstance(exc, InputError):
                log.exception("receiving an upload failed")
                exc = f"{clamp(name, NAME_CHARS)}: could not be kept ({exc})"
            self._send_msg({"kind": "error", "id": job})
            self._report_failure(str(exc))
            return
        self._incoming[role] = (job, incoming)
        self._show_progress(force=True)

    def _fail(self, role: str, job: Any, message: str) -> None:
        self._drop(role)
        self._send_msg({"kind": "error", "id": job})
        self._report_failure(message)
        self._show_progress(force=True)

    def _report_failure(self, message: str) -> None:
        self._failures += 1
        self.failed = f"{message}\t{self._failures}"

    def _drop(self, role: str) -> None:
        """Forget (and delete) what was sent for ``role``: a new file is chosen for it."""
        _, incoming = self._incoming.pop(role, (None, None))
        if incoming is not None:
            incoming.discard()
        _, path = self._arrived.pop(role, ("", None))
        if path is not None:
            path.unlink(missing_ok=True)

    def _show_progress(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._shown < PROGRESS_EVERY_S:
            return
        self._shown = now
        lines = []
        for role in ("pelvis", "femur"):
            if role in self._incoming:
                inc = self._incoming[role][1]
                lines.append(
                    f"{clamp(inc.name, NAME_CHARS)}: {byte_amount(inc.received, inc.size)} sent"
                )
            elif role in self._arrived:
                name, path = self._arrived[role]
                size = path.stat().st_size if path.exists() else 0
                lines.append(f"{clamp(name, NAME_CHARS)}: {byte_amount(size)}, arrived")
        self.progress = "\n".join(lines)

    def still_arriving(self) -> list[str]:
        """What is still being sent, one line each (name, MB so far)."""
        return [
            f"{clamp(inc.name, NAME_CHARS)} is still arriving "
            f"({100 * inc.received / max(inc.size, 1):.0f} % of {byte_amount(inc.size)})"
            for _, inc in self._incoming.values()
        ]

    def take(self) -> dict[str, tuple[str, Path]]:
        """The files that arrived whole (role -> (name, path)), handed over and forgotten."""
        arrived, self._arrived = self._arrived, {}
        self._show_progress(force=True)
        return arrived

    def arrived(self) -> dict[str, str]:
        """Names of the files that arrived whole and are not yet taken (role -> name)."""
        return {role: name for role, (name, _) in self._arrived.items()}


class LiveSlider(pn.widgets.FloatSlider):
    """A float slider whose changes reach the server at once.

    Panel holds widget events for 50 ms to merge bursts; a move costs the
    server about 3 ms, so the wait would be most of the slider-to-picture
    time. 2 ms remain: the server first finishes acknowledging the event,
    else the socket is still busy when the new matrices are ready and Panel
    retries their sending 10 ms later.
    """

    _debounce = 2
    # Panel counts every widget event as "busy" (a shared flag for loading
    # indicators, set and cleared around each event); nothing on the page
    # shows it for a move, and counting cost the event loop about 7 % of
    # its time with 20 pages moving.
    _busy__ignore = ["value", "value_throttled"]


class UploadInput(pn.widgets.FileInput):
    """A file input that keeps the file as it arrived: base64 text, not bytes.

    On a page whose :class:`UploadGuard` has a receiver, chosen files go in
    pieces and this input never sees them; otherwise (a page without the
    guard's script) the browser sends a chosen file as base64 text in one
    websocket message.
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


def live_slider(plan: Plan, name: str, **kwargs: Any) -> pn.widgets.FloatSlider:
    """A :class:`LiveSlider` bound to ``plan.<name>``: for moves, drawn as it slides."""
    p = plan.param[name]
    lo, hi = p.bounds
    return LiveSlider.from_param(
        p, start=lo, end=hi, step=p.step, sizing_mode="stretch_width", **kwargs
    )


def throttled_slider(plan: Plan, name: str) -> pn.widgets.FloatSlider:
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
