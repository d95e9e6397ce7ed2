"""Measures as rows, the HTML table, the CSV export and the one-page report."""

from __future__ import annotations

import base64
import csv
import html
import io
import re
from html.parser import HTMLParser

import pytest

from hipviz import report
from hipviz.reference import MEASURES

NSA = "neck_shaft_deg"


class Cells(HTMLParser):
    """Rows of a measures table: data-key -> {"level": ..., "value": text of td.hv-value}."""

    def __init__(self):
        super().__init__()
        self.rows: dict[str, dict[str, str]] = {}
        self.tags: list[str] = []
        self._key: str | None = None
        self._in_value = 0

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        a = dict(attrs)
        if tag == "tr" and "data-key" in a:
            self._key = a["data-key"]
            self.rows[self._key] = {"level": a.get("data-level", ""), "value": ""}
        elif tag == "td" and a.get("class") == "hv-value":
            self._in_value = 1
        elif self._in_value:
            self._in_value += 1

    def handle_endtag(self, tag):
        if self._in_value:
            self._in_value -= 1
        if tag == "tr":
            self._key = None

    def handle_data(self, data):
        if self._in_value and self._key:
            self.rows[self._key]["value"] += data


def parse(text: str) -> Cells:
    cells = Cells()
    cells.feed(text)
    return cells


def row(rows, key):
    return next(r for r in rows if r.info.key == key)


# --- rows -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lcea", "label", "level"),
    [
        # Tannast et al. 2015 (bony rim): < 20 dysplastic, 20-25 borderline, 25-39 normal.
        (14.0, "dysplastic", "abnormal"),
        (19.99, "dysplastic", "abnormal"),
        (20.0, "borderline", "borderline"),
        (30.0, "normal", "normal"),
        (45.0, "overcovered", "borderline"),
    ],
)
def test_lcea_bands(lcea, label, level):
    r = row(report.measure_rows({"lcea_deg": lcea}), "lcea_deg")
    assert (r.band_label, r.level) == (label, level)
    assert (r.before, r.after, r.current) == (lcea, None, lcea)
    assert r.normal == "25–39°"


def test_rows_follow_the_reference_in_order():
    rows = report.measure_rows({})
    assert [r.info.key for r in rows] == [m.key for m in MEASURES]
    assert all(r.before is None and r.level is None and r.band_label == "" for r in rows)
    picked = report.measure_rows({}, keys=[NSA, "lcea_deg"])
    assert [r.info.key for r in picked] == [NSA, "lcea_deg"]


def test_band_of_the_value_after_and_nested_keys():
    before = {"lcea_deg": 14.0, "coverage_pct": {"upper_hemisphere": 60.0}, NSA: 150.0}
    after = {"lcea_deg": 30.0, "coverage_pct": {"upper_hemisphere": 80.0}, NSA: 130.0}
    rows = report.measure_rows(before, after)
    lcea = row(rows, "lcea_deg")
    assert (lcea.before, lcea.after, lcea.level, lcea.changed) == (14.0, 30.0, "normal", True)
    nsa = row(rows, NSA)
    assert (nsa.band_label, nsa.level) == ("normal", "normal")
    cover = row(rows, "coverage_pct.upper_hemisphere")
    assert (cover.before, cover.after, cover.level) == (60.0, 80.0, None)  # no band


@pytest.mark.parametrize("missing", [None, float("nan"), float("inf"), "n/a", {"a": 1}])
def test_missing_values_have_no_band(missing):
    r = row(report.measure_rows({"lcea_deg": missing}, {"lcea_deg": missing}), "lcea_deg")
    assert (r.before, r.after, r.level, r.band_label, r.changed) == (None, None, None, "", False)


# --- table -----------------------------------------------------------------


def test_table_shows_before_to_after_only_for_changed_rows():
    before = {"lcea_deg": 14.0, "acea_deg": 40.0, NSA: 130.0, "sphericity_mm": 1.2}
    after = {"lcea_deg": 30.0, "acea_deg": 40.0, NSA: 130.01, "sphericity_mm": 1.2}
    cells = parse(report.table_html(report.measure_rows(before, after))).rows
    assert set(cells) == {m.key for m in MEASURES}
    assert " ".join(cells["lcea_deg"]["value"].split()) == "14.0° → 30.0°"
    assert cells["lcea_deg"]["level"] == "normal"
    assert cells["acea_deg"]["value"] == "40.0°"
    assert cells[NSA]["value"] == "130.0°"  # a 0.01° change is no change
    assert cells["sphericity_mm"]["value"] == "1.2 mm"
    arrows = [k for k, c in cells.items() if "→" in c["value"]]
    assert arrows == ["lcea_deg"]


def test_table_without_after_has_no_arrows_and_levels_of_before():
    before = {"lcea_deg": 14.0, "tonnis_deg": 5.0, "alpha_deg": 70.0}
    cells = parse(report.table_html(report.measure_rows(before))).rows
    assert not any("→" in c["value"] for c in cells.values())
    assert cells["lcea_deg"] == {"level": "abnormal", "value": "14.0°"}
    assert cells["tonnis_deg"]["level"] == "normal"
    assert cells["alpha_deg"]["level"] == "abnormal"


def test_missing_values_show_a_dash():
    before = {"lcea_deg": 14.0, "acea_deg": None}
    after = {"lcea_deg": None, "acea_deg": None}
    cells = parse(report.table_html(report.measure_rows(before, after))).rows
    assert cells["acea_deg"] == {"level": "", "value": "—"}
    assert cells[NSA]["value"] == "—"  # absent from both dicts
    # Nothing after: the value before is shown, with its band.
    assert cells["lcea_deg"] == {"level": "abnormal", "value": "14.0°"}
    assert report.fmt(None, "°") == "—"


def test_table_details_can_be_left_out():
    rows = report.measure_rows({"lcea_deg": 14.0})
    assert "<details>" in report.table_html(rows)
    assert "<details>" not in report.table_html(rows, details=False)


# --- CSV -------------------------------------------------------------------


def test_csv_has_a_header_and_one_row_per_measure():
    before = {"lcea_deg": 14.0, "acea_deg": 40.0, "coverage_pct": {"upper_hemisphere": 55.5}}
    after = {"lcea_deg": 30.0, "acea_deg": None}
    text = report.measures_csv(report.measure_rows(before, after))
    lines = list(csv.reader(io.StringIO(text)))
    assert lines[0] == [
        *("key", "measure", "unit", "before", "after", "band", "level", "normal"),
        "impossible",  # added after the first eight: old readers keep their columns
    ]
    records = list(csv.DictReader(io.StringIO(text)))
    assert [r["key"] for r in records] == [m.key for m in MEASURES]
    assert all(len(line) == 9 for line in lines)
    assert all(r["impossible"] == "" for r in records)  # every value here is possible
    by_key = {r["key"]: r for r in records}
    lcea = by_key["lcea_deg"]
    assert (float(lcea["before"]), float(lcea["after"])) == (14.0, 30.0)
    assert (lcea["measure"], lcea["unit"], lcea["band"], lcea["level"]) == (
        "LCEA",
        "°",
        "normal",
        "normal",
    )
    assert (by_key["acea_deg"]["before"], by_key["acea_deg"]["after"]) == ("40.00", "")
    assert float(by_key["coverage_pct.upper_hemisphere"]["before"]) == 55.5
    assert by_key[NSA]["before"] == by_key[NSA]["after"] == by_key[NSA]["level"] == ""


# --- report ----------------------------------------------------------------


def tiny_png(color=(200, 30, 30)) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (4, 3), color).save(buf, format="PNG")
    return buf.getvalue()


def test_report_embeds_pictures_and_every_measure():
    pictures = {"Before": tiny_png(), "After & more": tiny_png((30, 200, 30))}
    rows = report.measure_rows({"lcea_deg": 14.0}, {"lcea_deg": 30.0})
    text = report.report_html(
        title="hipviz plan",
        subtitle="case=dysplastic",
        rows=rows,
        pictures=pictures,
        facts=[("Joint gap", "2.0 mm")],
    )
    embedded = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', text)
    assert [base64.b64decode(e) for e in embedded] == list(pictures.values())
    assert "After &amp; more" in text
    for info in MEASURES:
        assert f'<div class="hv-name">{html.escape(info.short)}</div>' in text, info.short
    cells = parse(text).rows
    assert " ".join(cells["lcea_deg"]["value"].split()) == "14.0° → 30.0°"
    assert "<details>" not in text
    assert "<th>Joint gap</th><td>2.0 mm</td>" in text


def test_report_escapes_user_text():
    evil = "<script>alert(1)</script>"
    text = report.report_html(
        title=f"plan {evil}",
        subtitle=evil,
        rows=report.measure_rows({}),
        pictures={evil: tiny_png()},
        facts=[(evil, evil)],
        warnings=[f"cut {evil} & more"],
    )
    assert "<script" not in text.lower()
    assert "script" not in parse(text).tags
    assert "<li>cut &lt;script&gt;alert(1)&lt;/script&gt; &amp; more</li>" in text
    # <title> and <h1>, subtitle, caption, fact label and value, warning
    assert text.count("&lt;script&gt;alert(1)&lt;/script&gt;") == 7


def test_report_without_warnings_has_no_warning_list():
    text = report.report_html(title="t", subtitle="s", rows=[], pictures={})
    assert "li" not in parse(text).tags and 'class="warn"' not in text


def test_table_escapes_every_text_and_attribute():
    import dataclasses

    evil = '"><img src=x onerror=alert(1)>'
    info = dataclasses.replace(
        MEASURES[0], key=f"k{evil}", short=evil, unit=evil, meaning=evil, definition=evil
    )
    row = report.Row(info, 1.0, 2.0, evil, None, evil)
    text = report.table_html([row])
    parsed = parse(text)
    assert "img" not in parsed.tags
    assert list(parsed.rows) == [f"k{evil}"]  # the attribute holds the text itself
    assert "<img" not in text


def _figures(text: str) -> dict[str, bytes]:
    """caption -> PNG bytes of every figure of a report's HTML."""
    found = re.findall(
        r'<figure><img src="data:image/png;base64,([^"]+)"><figcaption>(.*?)</figcaption>', text
    )
    return {html.unescape(cap): base64.b64decode(data) for data, cap in found}


@pytest.mark.parametrize("load", [None, "one-leg-stance"])
def test_cli_report_carries_the_pressure_maps_with_a_load(tmp_path, monkeypatch, load):
    from contextlib import redirect_stdout

    import numpy as np

    from hipviz import render
    from hipviz.cli import main
    from hipviz.pressure import (
        PICTURE_CAPTIONS,
        PRESSURE_SCALE_MPA,
        PRESSURE_STOPS,
        scalar_colors,
    )

    drawn = []  # the scenes the report draws from the side (the pressure maps)
    picture = render.picture

    def recording(sc, **kwargs):
        if kwargs.get("view") == "lateral":
            drawn.append(sc)
        return picture(sc, **kwargs)

    monkeypatch.setattr(render, "picture", recording)
    path = tmp_path / "plan.html"
    argv = ["report", "--case", "dysplastic", "--preset", "pao", "--pao", "lateral=20"]
    argv += ["--load", load] if load else []
    with redirect_stdout(io.StringIO()):
        assert main([*argv, "--out", str(path)]) == 0
    figures = _figures(path.read_text(encoding="utf-8"))
    assert any(cap.startswith("Before") for cap in figures)
    maps = {k: figures.get(caption) for k, caption in PICTURE_CAPTIONS.items()}
    if load is None:
        assert maps == {"before": None, "after": None} and drawn == []
        return
    assert all(png is not None and png.startswith(b"\x89PNG") for png in maps.values())
    assert maps["before"] != maps["after"]
    assert len(drawn) == 2
    bone = np.array([int(render.BONE[i : i + 2], 16) for i in (1, 3, 5)])
    for sc in drawn:  # the socket coloured on the pressure scale, the femur left out
        assert not any(name.startswith("femur") for name in sc.pieces)
        assert {"load:shaft", "load:head"} <= set(sc.lines)
        rgb = np.asarray(sc.colors["acetabular_fragment"]).reshape(-1, 3)
        pressed = ~np.all(rgb == bone, axis=1)
        assert 50 < pressed.sum() < len(rgb) // 2
        # every coloured vertex takes a colour of the scale
        scale = scalar_colors(
            np.linspace(*PRESSURE_SCALE_MPA, 4001), vmin=0.0, vmax=10.0, stops=PRESSURE_STOPS
        ).astype(int)
        gap = np.abs(rgb[pressed, None, :].astype(int) - scale[None]).max(axis=2).min(axis=1)
        assert gap.max() <= 1
