"""Possible ranges beside the bands, and no impossible value ever shown as a plain number.

A value outside its measure's possible range is a misreading (a wrong frame, a
mirrored or cut-off bone, two bones in one file), never a finding: the JSON
lists it under ``implausible`` with a likely cause, a warning names the cause,
and every table marks it instead of giving it a band.
"""

from __future__ import annotations

import csv
import dataclasses
import html
import io
import json
import re
from pathlib import Path

import numpy as np
import pytest
import trimesh

from hipviz import cases, hip, report
from hipviz.cli import format_table, main
from hipviz.reference import (
    MEASURES,
    MOVE_CAUSE,
    flagged,
    implausible,
    implausible_warning,
    impossible_status,
    lookup,
)

FV, MCK, NSA = "femoral_version_deg", "mckibbin_deg", "neck_shaft_deg"

VALIDATION = Path(__file__).resolve().parents[2] / "shared" / "validation"

#: Every band label of the reference: none may stand beside an impossible value.
BAND_LABELS = {b.label for m in MEASURES for b in m.bands}


def nested(key: str, value) -> dict:
    """``{"a": {"b": value}}`` for the dotted key ``a.b``."""
    head, _, rest = key.partition(".")
    return {head: nested(rest, value) if rest else value}


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


# --- the ranges, as data ------------------------------------------------------


def test_every_measure_has_a_finite_possible_range_and_a_reason():
    for m in MEASURES:
        low, high = m.possible
        assert np.isfinite(low) and np.isfinite(high) and low < high, m.key
        assert len(m.possible_source) > 30 and m.possible_source.endswith("."), m.key


def test_possible_ranges_contain_the_bands():
    for m in MEASURES:
        low, high = m.possible
        for band in m.bands:
            for edge in (band.low, band.high):
                if np.isfinite(edge):
                    assert low < edge < high, (m.key, band.label, edge)
            # Every band can hold a possible value.
            assert max(band.low, low) < min(band.high, high), (m.key, band.label)
            if band.level == "normal" and np.isfinite(band.low) and np.isfinite(band.high):
                assert low <= band.low and band.high <= high, m.key


def test_teaching_case_targets_are_possible():
    for case in cases.CASES.values():
        for key, (low, high) in case.targets.items():
            info = next(m for m in MEASURES if m.key == key)
            assert info.is_possible(low) and info.is_possible(high), (case.name, key)


def test_every_head_the_search_accepts_is_possible():
    from hipviz.landmarks import HEAD_RADIUS_RANGE_MM

    info = next(m for m in MEASURES if m.key == "head_radius_mm")
    assert all(info.is_possible(r) for r in HEAD_RADIUS_RANGE_MM)


# --- the checker on crafted dicts ----------------------------------------------


@pytest.mark.parametrize("info", MEASURES, ids=lambda m: m.key)
def test_each_range_is_closed_and_flagged_just_outside(info):
    low, high = info.possible
    for inside in (low, high, (low + high) / 2):
        assert implausible(nested(info.key, inside)) == {}, inside
    for outside in (low - 0.1, high + 0.1):
        flags = implausible(nested(info.key, outside))
        assert list(flags) == [info.key], outside
        assert f"outside the possible {info.possible_text()}" in flags[info.key]


@pytest.mark.parametrize("missing", [None, float("nan"), float("inf"), "n/a", True])
def test_missing_values_are_no_claim(missing):
    assert implausible({FV: missing, NSA: missing, MCK: missing}) == {}


def test_version_near_180_minus_normal_is_a_femur_read_back_to_front():
    # What a file with both femurs measured (issue 11): version 163.6, McKibbin 183.6.
    values = {"frame": "app", "side": "right", FV: 163.6, MCK: 183.6}
    values |= {"acetabular_version_deg": 20.0, NSA: 131.1, "lcea_deg": 30.0}
    flags = implausible(values)
    assert set(flags) == {FV, MCK}
    assert flags[FV].startswith("outside the possible -60…80° (163.6°)")
    assert "mirrored" in flags[FV] and "other side" in flags[FV]
    assert flags[MCK].startswith("outside the possible -100…140° (183.6°)")
    # With the femur's own anatomy and its bodies known, the cause gets specific.
    two = implausible(values, femur_bodies=2, femur_side="left")[FV]
    assert "two bones in one file" in two and "2 separate bodies" in two
    assert "wrong side" in two and "a left one" in two
    assert impossible_status(FV) == "impossible — check side/frame"


def test_a_declared_frame_that_contradicts_the_femur_is_named():
    # The CT specimen (an LPS file) measured with --frame ras.
    values = {"frame": "ras", "side": "left", FV: -142.2, MCK: -165.8, "acea_deg": 112.5}
    values["acetabular_version_deg"] = -23.6
    flags = implausible(values, femur_side="right")
    assert set(flags) == {"acea_deg", FV, MCK}
    for msg in flags.values():
        assert "wrong frame" in msg and "not RAS patient axes" in msg and "--frame lps" in msg
    plain = implausible({"frame": "lps", "side": "left", "lcea_deg": -59.8})["lcea_deg"]
    assert "may not be LPS patient axes" in plain and "--frame auto" in plain


@pytest.mark.parametrize(
    ("key", "value", "words"),
    [
        ("head_radius_mm", 2.3, "units"),
        (NSA, 60.0, "cut-off femur"),
        ("alpha_deg", 150.0, "head-neck contour"),
        ("lcea_deg", 80.0, "incomplete pelvis"),
        ("pcea_deg", 160.0, "not the socket wall"),
        (FV, 85.0, "incomplete distal femur"),
    ],
)
def test_the_cause_follows_the_measure(key, value, words):
    msg = implausible({"frame": "app", "side": "left", **nested(key, value)})[key]
    assert words in msg


def test_mckibbin_made_of_an_impossible_version_is_flagged_too():
    values = {FV: 100.0, "acetabular_version_deg": 15.0, MCK: 115.0}  # 115 alone is possible
    flags = implausible(values)
    assert set(flags) == {FV, MCK}
    assert flags[MCK].startswith("made from an impossible femoral version (antetorsion) (115.0°)")


def test_a_value_only_the_move_makes_impossible_blames_the_move():
    before = {"frame": "app", "side": "left", NSA: 126.7, "lcea_deg": -59.8}
    after = {**before, NSA: 82.9, "lcea_deg": -50.0}
    flags = implausible(after, before=before)
    assert MOVE_CAUSE in flags[NSA]
    assert MOVE_CAUSE not in flags["lcea_deg"]  # impossible before the move already
    assert impossible_status(NSA, flags[NSA]) == "impossible — too large a move"


def test_flagged_rechecks_and_keeps_the_messages_a_dict_carries():
    values = {FV: 163.6, "lcea_deg": 30.0}
    values["implausible"] = {FV: "carried cause", "lcea_deg": "stale: 30 is possible"}
    assert flagged(values) == {FV: "carried cause"}
    assert set(flagged({FV: -142.0})) == {FV}  # a dict without the key is checked too


def test_one_warning_line_names_every_impossible_value():
    values = {"frame": "app", FV: 163.6, MCK: 183.6, "lcea_deg": -59.8}
    line = implausible_warning(values)
    assert line.startswith("impossible values")
    for text in ("Femoral version 163.6°", "McKibbin 183.6°", "LCEA -59.8°", "-40…75°"):
        assert text in line
    assert "\n" not in line
    assert implausible_warning({FV: 15.0}) == ""


# --- rows, table, CSV, report -------------------------------------------------


def row_html(table: str, key: str) -> str:
    return re.search(rf'<tr data-key="{re.escape(key)}".*?</tr>', table).group(0)


def test_rows_give_an_impossible_value_no_band():
    r = next(r for r in report.measure_rows({FV: 163.6}) if r.info.key == FV)
    assert (r.band_label, r.level) == ("impossible", "impossible")  # not "antetorsion"
    assert "-60…80°" in r.impossible == r.impossible_before and r.impossible_after == ""
    fine = next(r for r in report.measure_rows({FV: 40.0}) if r.info.key == FV)
    assert (fine.band_label, fine.impossible) == ("antetorsion", "")


def test_rows_before_and_after_carry_their_own_flags():
    rows = report.measure_rows({NSA: 126.7, FV: 163.6}, {NSA: 82.9, FV: 15.0})
    nsa = next(r for r in rows if r.info.key == NSA)
    assert nsa.impossible_before == "" and "90…170°" in nsa.impossible_after
    assert nsa.level == "impossible"
    fv = next(r for r in rows if r.info.key == FV)
    assert fv.impossible_before and not fv.impossible_after
    assert (fv.band_label, fv.level) == ("normal", "normal")  # the value after is fine


def test_table_marks_the_value_and_replaces_the_chip():
    rows = report.measure_rows({FV: 163.6, "lcea_deg": 30.0})
    table = report.table_html(rows)
    tr = row_html(table, FV)
    assert 'data-level="impossible"' in tr
    assert re.search(r"<b>163\.6°</b> <span class=\"hv-bang\" title=\"[^\"]+\">!</span>", tr)
    chip = re.search(r'<span class="hv-chip"[^>]*title="([^"]+)">impossible</span>', tr)
    assert chip and "outside the possible -60…80°" in html.unescape(chip.group(1))
    assert "possible -60…80°" in tr
    assert not any(f">{label}<" in tr for label in BAND_LABELS)
    assert "hv-bang" not in row_html(table, "lcea_deg")  # a possible value stays plain
    moved = report.table_html(report.measure_rows({NSA: 126.7}, {NSA: 82.9}))
    value = re.search(r'<td class="hv-value">(.*?)</td>', row_html(moved, NSA)).group(1)
    assert re.sub(r"<[^>]+>", "", value) == "126.7° → 82.9° !"


def test_csv_says_which_values_are_impossible_and_why():
    rows = report.measure_rows({FV: 163.6, NSA: 126.7}, {FV: 163.6, NSA: 82.9})
    records = {r["key"]: r for r in csv.DictReader(io.StringIO(report.measures_csv(rows)))}
    fv, nsa = records[FV], records[NSA]
    assert fv["impossible"].startswith("before and after: outside the possible -60…80°")
    assert (fv["band"], fv["level"]) == ("impossible", "impossible")
    assert nsa["impossible"].startswith("after: outside the possible 90…170° (82.9°)")
    assert records["lcea_deg"]["impossible"] == ""
    alone = report.measures_csv(report.measure_rows({FV: 163.6}))
    assert next(r for r in csv.DictReader(io.StringIO(alone)) if r["key"] == FV)[
        "impossible"
    ].startswith("outside the possible")


def test_report_lists_the_reasons_first():
    rows = report.measure_rows({FV: 163.6})
    text = report.report_html(
        title="t", subtitle="s", rows=rows, pictures={}, warnings=["bones overlap"]
    )
    items = re.findall(r"<li>(.*?)</li>", text)
    assert items[0].startswith("Femoral version (antetorsion): outside the possible -60…80°")
    assert items[1] == "bones overlap"


# --- the real pipeline ------------------------------------------------------------


def measure_json(capsys, *argv) -> tuple[int, dict, str]:
    code, out, err = run(capsys, "measure", *argv, "--json")
    return code, (json.loads(out) if code == 0 else {}), err


def assert_never_plain(out: dict) -> int:
    """Every impossible value of a result is flagged in its JSON and in its table.

    Returns how many there were.
    """
    table = format_table(out).splitlines()
    n = 0
    for info in MEASURES:
        v = lookup(out, info.key)
        if v is None or info.is_possible(v):
            continue
        n += 1
        assert info.key in out["implausible"], info.key
        line = next(t for t in table if t.startswith(f"  {info.short:<17}{info.name[:43]}"))
        assert f"{v:.1f} {info.unit:<2}!" in line, line
        assert "impossible — check" in line and not BAND_LABELS & set(line.split()), line
    assert bool(n) == any(w.startswith("impossible values") for w in out["warnings"])
    return n


@pytest.fixture(scope="module")
def upside_down(tmp_path_factory):
    """The built-in hip turned upside down (180° about anterior), as STL files."""
    from hipviz.anatomy import builtin_hip
    from hipviz.geometry import rotation_about

    h = builtin_hip(side="left")
    folder = tmp_path_factory.mktemp("upside_down")
    tf = rotation_about((0.0, 1.0, 0.0), 180.0, (0.0, 0.0, 0.0))
    paths = {}
    for bone, mesh in (("pelvis", h.pelvis), ("femur", h.femur)):
        moved = mesh.copy()
        moved.apply_transform(tf)
        paths[bone] = str(folder / f"{bone}.stl")
        moved.export(paths[bone])
    return paths


def test_measure_flags_a_file_whose_axes_are_not_ras(capsys, upside_down):
    argv = ("--pelvis", upside_down["pelvis"], "--femur", upside_down["femur"], "--frame", "ras")
    code, out, err = run(capsys, "measure", *argv)
    assert code == 0, err
    lcea = next(line for line in out.splitlines() if line.startswith("  LCEA "))
    assert re.search(r"-\d+\.\d ° ! 25-39\s+impossible — check frame/pelvis$", lcea), lcea
    warning = next(line for line in out.splitlines() if "impossible values" in line)
    assert "wrong frame" in warning and "--frame auto" in warning
    code, v, err = measure_json(capsys, *argv)
    assert code == 0, err
    assert v["lcea_deg"] < -40.0  # the value stays for scripts, flagged
    assert {"lcea_deg", "extrusion_index_pct"} <= set(v["implausible"])
    assert "wrong frame" in v["implausible"]["lcea_deg"]
    assert assert_never_plain(v) >= 2


def test_simulate_flags_before_and_after(capsys, upside_down):
    code, out, err = run(
        capsys,
        "simulate",
        "--pelvis", upside_down["pelvis"],
        "--femur", upside_down["femur"],
        "--frame", "ras",
        "--femoral", "varus=10",
        "--no-fixation",
    )  # fmt: skip
    assert code == 0, err
    lcea = next(line for line in out.splitlines() if line.startswith("  LCEA "))
    assert re.search(r"-\d+\.\d!\s+-\d+\.\d!\s+\+0\.0\s+25-39\s+impossible — check", lcea), lcea


def test_simulate_blames_a_move_beyond_any_hip(capsys):
    code, out, err = run(capsys, "simulate", "--femoral", "varus=45", "--no-fixation", "--json")
    assert code == 0, err
    res = json.loads(out)
    assert res["before"]["implausible"] == {}
    assert res["after"][NSA] < 90.0 and MOVE_CAUSE in res["after"]["implausible"][NSA]
    assert any(w.startswith("after this move, impossible values") for w in res["warnings"])
    from hipviz.cli import format_simulation

    nsa = next(t for t in format_simulation(res).splitlines() if t.startswith("  NSA  "))
    assert re.search(r"1[23]\d\.\d\s+8\d\.\d!\s+-4\d\.\d\s+125-135\s+impossible — too large", nsa)


def test_two_femurs_in_one_file_are_never_shown_plain(capsys, tmp_path):
    """The file of issue 11 (both femurs): flagged, or refused in one line."""
    from hipviz.anatomy import builtin_hip

    left, right = builtin_hip(side="left"), builtin_hip(side="right")
    trimesh.util.concatenate([left.femur, right.femur]).export(tmp_path / "femurs.stl")
    left.pelvis.export(tmp_path / "pelvis.stl")
    argv = ("--pelvis", str(tmp_path / "pelvis.stl"), "--femur", str(tmp_path / "femurs.stl"))
    code, v, err = measure_json(capsys, *argv)
    if code != 0:  # refusing the file is the other honest answer
        assert code == 2 and len(err.strip().splitlines()) == 1 and "femur" in err
        return
    assert_never_plain(v)
    if FV in v["implausible"]:
        assert "two bones in one file" in v["implausible"][FV]


@pytest.mark.validation
@pytest.mark.parametrize("frame", ["ras", "lps"])
@pytest.mark.parametrize("name", ["lhdl_ct_staple", "icl_mri_staple"])
def test_specimens_in_declared_frames_are_never_shown_plain(capsys, name, frame):
    folder = VALIDATION / name
    if not (folder / "pelvis_no_sacrum.ply").exists():
        pytest.skip(f"validation specimen {name} not found at {folder} (kept beside the repo)")
    argv = (
        "--pelvis",
        str(folder / "pelvis_no_sacrum.ply"),
        "--femur",
        str(folder / "femur_r.ply"),
    )
    code, v, err = measure_json(capsys, *argv, "--frame", frame)
    assert code == 0, err
    assert_never_plain(v)


# --- nothing impossible on good hips ----------------------------------------------


@pytest.mark.parametrize("side", ["left", "right"])
def test_builtin_hip_has_nothing_impossible(side):
    from hipviz.anatomy import builtin_hip

    h = builtin_hip(side=side)
    a = hip.analyze(h.pelvis, h.femur)
    assert a.values["implausible"] == {} and a.as_dict()["implausible"] == {}
    assert not any("impossible" in w for w in a.warnings)


@pytest.mark.slow
@pytest.mark.parametrize("name", list(cases.CASES))
def test_teaching_cases_have_nothing_impossible(name):
    h = cases.case_hip(name)
    flags = hip.analyze(h.pelvis, h.femur).values["implausible"]
    assert flags == {}, flags


@pytest.mark.validation
@pytest.mark.parametrize("name", ["lhdl_ct_staple", "icl_mri_staple"])
def test_specimens_have_nothing_impossible(specimen, name):
    pelvis, femur = specimen(name)
    a = hip.analyze(pelvis, femur)
    assert a.values["implausible"] == {}, a.values["implausible"]


# --- the app ----------------------------------------------------------------------


def test_app_table_and_warnings_show_the_flag():
    pytest.importorskip("panel")
    from hipviz.app.main import HipApp

    app = HipApp(subdivisions=4)
    try:
        out = app.session.outcome
        before = {**out.before, FV: 163.6, "implausible": {}}
        app.measures.update(dataclasses.replace(out, before=before, after=dict(before)))
        tr = row_html(app.measures.table.object, FV)
        assert 'data-level="impossible"' in tr and ">impossible</span>" in tr
        assert "antetorsion</span>" not in tr
        assert app.measures.warnings.visible
        shown = html.unescape(app.measures.warnings.object)
        assert "Femoral version (antetorsion): outside the possible -60…80°" in shown
    finally:
        app.close()


def test_explain_never_tells_a_patient_an_impossible_number():
    from hipviz import explain

    lines = explain.condition_summary({FV: 163.6, "lcea_deg": 14.0})
    assert len(lines) == 1 and lines[0].startswith("Socket roof angle (LCEA) 14°")
    why = explain.steps("femoral", {FV: 163.6, NSA: 126.7})[0].text
    assert "164°" not in why and "127°" in why
