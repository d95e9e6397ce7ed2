"""The leaner copies of two Panel functions do what Panel's do, without their costs."""

from __future__ import annotations

import difflib

import pytest

pn = pytest.importorskip("panel")
panel_document = pytest.importorskip("panel.io.document")
panel_reactive = pytest.importorskip("panel.reactive")

from bokeh.document import Document  # noqa: E402
from bokeh.models import Div, Row  # noqa: E402

from hipviz.app import lean  # noqa: E402

ORIGINAL_UPDATE = panel_reactive.Reactive._update_properties
ORIGINAL_FREEZE = panel_document.freeze_doc


def test_panel_is_as_the_copies_expect():
    # if this fails, Panel changed: install() leaves it alone, and the copies need a look
    assert lean._as_expected()


def _plain(properties):
    """Properties with each Bokeh model as its type and content (new models get new ids)."""

    def plain(v):
        if isinstance(v, list):
            return [plain(x) for x in v]
        if hasattr(v, "properties_with_values"):
            values = v.properties_with_values(include_defaults=False)
            return (type(v).__name__, sorted((k, repr(x)) for k, x in values.items()))
        return v

    return {k: plain(v) for k, v in properties.items()}


class _Event:
    def __init__(self, name, new):
        self.name, self.new = name, new


@pytest.mark.parametrize(
    "events",
    [
        [("value", 3)],
        [("name", "Lateral turn"), ("value", 1.5)],
        [("stylesheets", [":host { color: red; }"])],
        [("stylesheets", []), ("visible", False)],
    ],
    ids=["value", "two", "stylesheets", "stylesheets-and-more"],
)
def test_update_properties_is_panels(events, monkeypatch):
    widget = pn.widgets.FloatSlider(start=0, end=10, value=1)
    doc = Document()
    widget.get_root(doc)
    evs = [_Event(n, v) for n, v in events]
    expected = ORIGINAL_UPDATE(widget, *evs, doc=doc)
    asked = []
    design_params = type(widget._design).params
    monkeypatch.setattr(
        type(widget._design),
        "params",
        lambda self, *a, **k: asked.append(1) or design_params(self, *a, **k),
    )
    got = lean._update_properties(widget, *evs, doc=doc)
    assert repr(_plain(got)) == repr(_plain(expected))
    # the design is asked only for a change of stylesheets
    assert bool(asked) == any(n == "stylesheets" for n, _ in events)


def _freezes(freeze, model, properties, force=False):
    doc = Document()
    doc.add_root(model)
    pushed = []
    real_push = doc.models._push_freeze
    doc.models._push_freeze = lambda: pushed.append(1) or real_push()
    with freeze(doc, model, properties, force=force):
        pass
    return bool(pushed)


@pytest.mark.parametrize(
    ("properties", "force"),
    [
        ({"children": [Div(text="new")]}, False),  # a model in: the document must freeze
        ({"styles": {"color": "red"}}, False),
        ({"matrices": [1.0, 2.0]}, False),  # not a property of the model
        ({"matrices": Div(text="a model, not a property of the model")}, False),
        ({}, True),
    ],
    ids=["model-value", "plain-value", "missing-name", "missing-name-model", "forced"],
)
def test_freeze_doc_decides_as_panels_does(properties, force):
    expected = _freezes(ORIGINAL_FREEZE, Row(children=[Div(text="a")]), properties, force)
    got = _freezes(lean.freeze_doc, Row(children=[Div(text="a")]), properties, force)
    assert got == expected


def test_freeze_doc_builds_no_suggestions(monkeypatch):
    def no(*args, **kwargs):
        raise AssertionError("asked difflib for 'did you mean'")

    monkeypatch.setattr(difflib, "get_close_matches", no)
    assert not _freezes(lean.freeze_doc, Row(children=[Div(text="a")]), {"matrices": [1.0]})
    with pytest.raises(AssertionError, match="difflib"):  # Panel's own does
        _freezes(ORIGINAL_FREEZE, Row(children=[Div(text="a")]), {"matrices": [1.0]})
