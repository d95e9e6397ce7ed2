"""Two of Panel's costs per model update that ``hipviz serve`` does without.

Sampled on the event loop's thread while 20 pages each moved a slider every
0.5 s (``scripts/bench_concurrency.py room --profile-loop``), two pieces of
Panel's (1.9) work on every update of every widget or view took about a
seventh of the loop's busy time, and neither changes what is sent:

* **The design's stylesheets, looked up for nothing.** ``Reactive._update_properties``
  asks the page's design for the widget's stylesheets on every update (each
  time resolving the theme's CSS paths on disk, through param's
  ``resolve_path``) and uses them only when the update changes the widget's
  ``stylesheets``: 10 % of the loop's busy time. :func:`_update_properties`
  asks only then.
* **Misses that build "did you mean" messages.** ``freeze_doc`` reads each
  updated property from the model with ``getattr(model, name, None)``; a
  custom component's update names properties of its data model, which the
  component's own model lacks, and each miss makes Bokeh compare the name
  with every property of the model (``difflib``) to suggest one for an
  error nobody sees: 4 %. :func:`freeze_doc` looks the name up on the
  model's class first.

:func:`install` applies both when the installed Panel has the functions as
expected (each is a copy of Panel's with that one change), and leaves Panel
as it is otherwise.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from typing import Any

log = logging.getLogger(__name__)


def _update_properties(self: Any, *events: Any, doc: Any) -> dict[str, Any]:
    """Panel's ``Reactive._update_properties``, the design consulted only for stylesheets."""
    changes = {event.name: event.new for event in events}
    if "stylesheets" in changes and self._design:
        params, _ = self._design.params(self, doc)
        if "stylesheets" in params:
            changes["stylesheets"] = params["stylesheets"] + changes["stylesheets"]
    return self._process_param_change(changes)


@contextmanager
def freeze_doc(doc: Any, model: Any, properties: dict[str, Any], force: bool = False):
    """Panel's ``freeze_doc``, reading only the properties the model has."""
    from bokeh.model.util import visit_immediate_value_references

    if not hasattr(doc, "_roots"):
        dirty_count = 0
    elif force:
        dirty_count = 1
    else:
        dirty_count = 0

        def mark_dirty(_: Any) -> None:
            nonlocal dirty_count
            dirty_count += 1

        cls = type(model)
        for key, value in properties.items():
            # on the class: a miss there costs nothing (on the model, Bokeh's error text)
            old = getattr(model, key, None) if hasattr(cls, key) else None
            visit_immediate_value_references(old, mark_dirty)
            visit_immediate_value_references(value, mark_dirty)
    if dirty_count:
        doc.models._push_freeze()
    yield
    if dirty_count:
        doc.models._pop_freeze()


def _as_expected() -> bool:
    """Whether Panel's originals are the ones these copies follow."""
    import panel.io.document
    import panel.reactive

    original = getattr(panel.reactive.Reactive, "_update_properties", None)
    code = getattr(original, "__code__", None)
    if code is None or not {"_design", "params", "_process_param_change"} <= set(code.co_names):
        return False
    freeze = getattr(panel.io.document, "freeze_doc", None)
    wrapped = getattr(freeze, "__wrapped__", None)
    names = getattr(getattr(wrapped, "__code__", None), "co_varnames", ())
    return names[:4] == ("doc", "model", "properties", "force")


def install() -> bool:
    """Use the leaner copies in this process; False (and Panel untouched) if Panel differs."""
    import panel.custom
    import panel.io.document
    import panel.layout.base
    import panel.layout.grid
    import panel.reactive

    if not _as_expected():
        log.info("Panel's update functions are not as expected: left as they are")
        return False
    panel.reactive.Reactive._update_properties = _update_properties
    for module in (panel.io.document, panel.custom, panel.layout.base, panel.layout.grid):
        if getattr(module, "freeze_doc", None) is not None:
            module.freeze_doc = freeze_doc
    return True


__all__ = ["freeze_doc", "install"]
