"""The `hipviz` command line: the JSON contract, units, and one-line errors."""

import json
import os
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


def test_wrong_side_is_a_warning_and_the_geometry_side_is_measured(capsys, analytic_files):
    _, paths = analytic_files
    code, out, err = run(
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
        "--json",
    )
    assert code == 0, err
    v = json.loads(out)
    assert v["side"] == "right"
    assert any(
        "--side left contradicts the geometry: this is a right hip" in w for w in v["warnings"]
    )


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


# --------------------------------------------------------------------------- simulate


@pytest.fixture(scope="module")
def column_files(tmp_path_factory):
    """An analytic right hip with bone beyond the socket, as STL in mm."""
    h = datasets.socket_hip(segments=96, columns=True)
    folder = tmp_path_factory.mktemp("columns")
    paths = {}
    for bone, mesh in (("pelvis", h.pelvis), ("femur", h.femur)):
        paths[bone] = folder / f"{bone}.stl"
        mesh.export(paths[bone])
    return h, paths


def test_simulate_json_contract(capsys, column_files, tmp_path):
    _, paths = column_files
    code, out, err = run(
        capsys,
        "simulate",
        "--pelvis", str(paths["pelvis"]),
        "--femur", str(paths["femur"]),
        "--frame", "ras",
        "--pao", "lateral=15,medial=2",
        "--femoral", "varus=10,rotation=-5",
        "--export-dir", str(tmp_path / "out"),
        "--json",
    )  # fmt: skip
    assert code == 0, err
    res = json.loads(out)
    for part in ("before", "after"):
        for key in CONTRACT:
            if key != "units":
                assert key in res[part], (part, key)
    assert res["after"]["lcea_deg"] - res["before"]["lcea_deg"] == pytest.approx(15.0, abs=0.5)
    delta_nsa = res["after"]["neck_shaft_projected_deg"] - res["before"]["neck_shaft_projected_deg"]
    assert delta_nsa == pytest.approx(-10.0, abs=0.6)
    for key in ("min_gap_mm", "overlap", "cut_contact", "leg_length_change_mm"):
        assert key in res
    assert res["hip_center_shift_mm"]["lateral"] == pytest.approx(-2.0, abs=1e-6)
    assert res["plan"]["procedure"] == "pao"
    assert "blade_plate" in res["fixation"]
    written = {p.name for p in (tmp_path / "out").iterdir()}
    assert {"pelvis_rest.stl", "acetabular_fragment.stl", "femur_distal.stl"} <= written
    assert "blade_plate.stl" in written
    moved = trimesh.load(tmp_path / "out" / "acetabular_fragment.stl")
    assert moved.is_watertight


def test_simulate_preset_table(capsys):
    code, out, err = run(capsys, "simulate", "--preset", "rao")
    assert code == 0, err
    assert "Rotational acetabular osteotomy" in out
    assert out.splitlines()[0].startswith("hipviz simulate:")
    assert any(line.strip().startswith("LCEA") for line in out.splitlines())


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--pao", "lateral=95"], "outside"),
        (["--pao", "tilt=5"], "--pao"),
        (["--pao", "lateral=abc"], "not a number"),
        (["--femoral", "varus=10,varus=5"], "twice"),
        (["--femoral", "level=5"], "level"),
        (["--cuts", "iliac=80"], "outside"),
        (["--preset", "shelf"], "invalid choice"),
        ([], "nothing to simulate"),
        (["--case", "nonsense", "--pao", "lateral=5"], "nonsense"),
    ],
)
def test_simulate_bad_values_one_line(capsys, argv, needle):
    try:
        code, _, err = run(capsys, "simulate", *argv)
    except SystemExit as exc:  # argparse's own checks
        code, err = exc.code, capsys.readouterr()[1]
    assert code == 2
    assert needle in err
    assert len(err.strip().splitlines()) == 1
    assert "Traceback" not in err


def test_measure_tilt(capsys, analytic_files):
    h, paths = analytic_files
    files = ["--pelvis", str(paths["pelvis", "mm"]), "--femur", str(paths["femur", "mm"])]
    code, out, _ = run(capsys, "measure", *files, "--frame", "ras", "--json")
    flat = json.loads(out)
    code, out, _ = run(capsys, "measure", *files, "--frame", "ras", "--json", "--tilt", "8")
    assert code == 0
    tilted = json.loads(out)
    assert tilted["pelvic_tilt_deg"] == 8.0 and flat["pelvic_tilt_deg"] == 0.0
    assert tilted["acea_deg"] == pytest.approx(flat["acea_deg"] - 8.0, abs=0.5)
    code, out, err = run(capsys, "measure", *files, "--frame", "ras", "--tilt", "50")
    assert code == 2 and "pelvic tilt 50" in err and err.count("\n") == 1


@pytest.mark.parametrize("port", ["0", "70000"])
def test_serve_refuses_bad_ports(capsys, port):
    code, out, err = run(capsys, "serve", "--port", port)
    assert code == 2 and "not a port number" in err and err.count("\n") == 1


# --------------------------------------------------------------------------- pipes


def test_closed_stdout_ends_quietly():
    """A reader that has gone before anything is written: no message, exit 0 or 141."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "hipviz.cli", "measure", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    proc.stdout.close()  # computing takes seconds: the output meets a closed pipe
    err = proc.stderr.read()
    code = proc.wait(timeout=300)
    proc.stderr.close()
    assert err == b"", err
    assert code in (0, 141)


def test_reader_that_stops_after_one_line():
    """``hipviz measure | head -1``: the reader closes after a line, the command ends quietly."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "hipviz.cli", "measure"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    first = proc.stdout.readline()
    proc.stdout.close()
    err = proc.stderr.read()
    code = proc.wait(timeout=300)
    proc.stderr.close()
    assert first.startswith(b"hipviz measure:")
    assert err == b"", err
    assert code in (0, 141)
