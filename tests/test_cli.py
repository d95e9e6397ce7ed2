"""The `hipviz` command line: the JSON contract, units, and one-line errors."""

import json
import subprocess
import sys

import numpy as np
import pytest
import trimesh

from hipviz import datasets
from hipviz.cli import main

CONTRACT = (
    "side",
    "frame",
    "units",
    "head_center_mm",
    "head_radius_mm",
    "lcea_deg",
    "acea_deg",
    "pcea_deg",
    "acetabular_version_deg",
    "tonnis_deg",
    "extrusion_index_pct",
    "coverage_pct",
    "neck_shaft_deg",
    "neck_shaft_projected_deg",
    "femoral_version_deg",
    "alpha_deg",
    "sphericity_mm",
    "mckibbin_deg",
)
COVERAGE = ("sphere", "upper_hemisphere", "anterior", "superior", "posterior", "inferior")


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def analytic_files(tmp_path_factory):
    """An analytic right hip written as STL in mm and in metres."""
    h = datasets.socket_hip(segments=160)
    folder = tmp_path_factory.mktemp("hip")
    paths = {}
    for unit, scale in (("mm", 1.0), ("m", 1e-3)):
        for bone, mesh in (("pelvis", h.pelvis), ("femur", h.femur)):
            m = trimesh.Trimesh(mesh.vertices * scale, mesh.faces, process=False)
            paths[bone, unit] = folder / f"{bone}_{unit}.stl"
            m.export(paths[bone, unit])
    return h, paths


@pytest.mark.parametrize("unit", ["mm", "m"])
def test_measure_json_contract_in_mm_and_m(capsys, analytic_files, unit):
    h, paths = analytic_files
    code, out, err = run(
        capsys,
        "measure",
        "--pelvis",
        str(paths["pelvis", unit]),
        "--femur",
        str(paths["femur", unit]),
        "--frame",
        "ras",
        "--json",
    )
    assert code == 0, err
    v = json.loads(out)
    for key in CONTRACT:
        assert key in v, key
    assert set(COVERAGE) <= set(v["coverage_pct"])
    assert v["units"] == unit and v["frame"] == "ras" and v["side"] == "right"
    np.testing.assert_allclose(v["head_center_mm"], h.head_center_mm, atol=0.2)
    assert v["head_radius_mm"] == pytest.approx(23.0, abs=0.2)
    o = h.params["opening_las"]
    assert v["lcea_deg"] == pytest.approx(np.degrees(np.arctan2(-o[2], o[0])), abs=0.5)
    assert v["femoral_version_deg"] == pytest.approx(15.0, abs=0.5)


def test_measure_builtin_table(capsys):
    code, out, err = run(capsys, "measure")
    assert code == 0, err
    assert "left hip, frame app" in out
    rows = [line[2:] for line in out.splitlines()]
    for name in ("LCEA", "ACEA", "Version", "Tönnis", "NSA", "Femoral version", "Alpha"):
        assert any(row.startswith(f"{name}  ") for row in rows), name


def test_measure_builtin_right_side_json(capsys):
    code, out, _ = run(capsys, "measure", "--side", "right", "--json")
    v = json.loads(out)
    assert code == 0 and v["side"] == "right" and v["head_center_mm"][0] > 0


def one_line_error(code, err, *needles):
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


def test_missing_file(capsys, tmp_path):
    code, _, err = run(capsys, "measure", "--femur", str(tmp_path / "nope.stl"))
    one_line_error(code, err, "nope.stl", "no such file")


def test_empty_and_garbage_files(capsys, tmp_path):
    empty = tmp_path / "empty.stl"
    empty.write_bytes(b"")
    code, _, err = run(capsys, "measure", "--femur", str(empty))
    one_line_error(code, err, "empty.stl", "empty")
    junk = tmp_path / "junk.ply"
    junk.write_bytes(np.random.default_rng(0).bytes(5000))
    code, _, err = run(capsys, "measure", "--femur", str(junk))
    one_line_error(code, err, "junk.ply")


def test_nan_mesh(capsys, tmp_path):
    m = trimesh.creation.icosphere()
    v = m.vertices * 100
    v[3] = np.nan
    path = tmp_path / "nan.ply"
    trimesh.Trimesh(v, m.faces, process=False).export(path)
    code, _, err = run(capsys, "measure", "--femur", str(path))
    one_line_error(code, err, "nan.ply", "NaN")


def test_femur_without_head(capsys, tmp_path):
    box = trimesh.creation.box([60.0, 40.0, 400.0])
    path = tmp_path / "box.stl"
    box.export(path)
    code, _, err = run(capsys, "measure", "--femur", str(path), "--frame", "ras")
    one_line_error(code, err, "box.stl", "head")


def test_unknown_option_values(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["measure", "--frame", "xyz"])
    _, err = capsys.readouterr()
    one_line_error(exc.value.code, err, "--frame", "xyz")
    with pytest.raises(SystemExit) as exc:
        main(["measure", "--side", "up"])
    _, err = capsys.readouterr()
    one_line_error(exc.value.code, err, "--side")


def test_wrong_side(capsys, analytic_files):
    _, paths = analytic_files
    code, _, err = run(
        capsys,
        "measure",
        "--pelvis",
        str(paths["pelvis", "mm"]),
        "--femur",
        str(paths["femur", "mm"]),
        "--frame",
        "ras",
        "--side",
        "left",
    )
    one_line_error(code, err, "--side left", "right hip")


def test_bad_modes(capsys):
    code, _, err = run(capsys, "measure", "--modes", "1=9")
    one_line_error(code, err, "--modes", "-3 to 3")
    code, _, err = run(capsys, "measure", "--modes", "banana")
    one_line_error(code, err, "--modes")


@pytest.mark.parametrize("command", ["measure", "export"])
def test_bad_subdivisions(capsys, tmp_path, command):
    extra = ["--out", str(tmp_path)] if command == "export" else []
    code, _, err = run(capsys, command, "--subdivisions", "0", *extra)
    one_line_error(code, err, "subdivisions")


def test_partial_pelvis_suggests_frame(capsys, analytic_files):
    _, paths = analytic_files
    code, _, err = run(
        capsys,
        "measure",
        "--pelvis",
        str(paths["pelvis", "mm"]),
        "--femur",
        str(paths["femur", "mm"]),
    )
    one_line_error(code, err, "pelvis_mm.stl", "--frame ras")


def test_console_script_no_traceback(tmp_path):
    """End to end in a fresh interpreter: exit 2, one line, no traceback."""
    junk = tmp_path / "junk.stl"
    junk.write_text("solid nothing here\n")
    res = subprocess.run(
        [sys.executable, "-m", "hipviz.cli", "measure", "--femur", str(junk)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    one_line_error(res.returncode, res.stderr, "junk.stl")


def test_export(capsys, tmp_path):
    code, out, err = run(capsys, "export", "--out", str(tmp_path), "--subdivisions", "4")
    assert code == 0, err
    assert {p.name for p in tmp_path.iterdir()} == {
        "pelvis.stl",
        "femur_left.stl",
        "femur_right.stl",
    }
