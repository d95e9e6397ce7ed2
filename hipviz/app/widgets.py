"""The app's own widgets and page styles, shared by its components.

Panel's widgets with the few changes a live 3D page needs (a slider that
reaches the server at once, a file input that leaves decoding to a worker),
two small browser-side components (the address bar, the upload size guard),
and the CSS of the page's HTML panes.
"""

from __future__ import annotations

from typing import Any

import panel as pn
import param

from hipviz import report

from .state import Plan
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
    # Panel counts every widget event as "busy" (a shared flag for loading
    # indicators, set and cleared around each event); nothing on the page
    # shows it for a move, and counting cost the event loop about 7 % of
    # its time with 20 pages moving.
    _busy__ignore = ["value", "value_throttled"]


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
