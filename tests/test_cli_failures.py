"""Every failure path of every command ends with one line on stderr and exit status 2.

Each case is a command line that cannot be carried out: a bad value, a
missing or hostile file, an output path that cannot be written, a port that
cannot be listened on. None may print a traceback or the catch-all's
"internal error … please report it", which is left for real bugs.
"""

from __future__ import annotations

import gzip
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import trimesh

from hipviz.cli import main

REPO = Path(__file__).resolve().parents[1]


def fails_cleanly(capsys, argv: list[str], *fragments: str) -> str:
    """Run ``hipviz argv`` in this process; check exit 2 and one clean line; return it."""
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's own errors
        code = exc.code
    out, err = capsys.readouterr()
    assert code == 2, (argv, code, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "internal error" not in err and "Traceback" not in err, err
    assert out == "", out
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A folder of inputs: a mesh, a file, a gzipped mesh, an empty file."""
    folder = tmp_path_factory.mktemp("inputs")
    mesh = trimesh.creation.icosphere(subdivisions=3, radius=25.0)
    mesh.export(folder / "head.stl")
    (folder / "afile").write_text("not a folder")
    (folder / "packed.stl").write_bytes(gzip.compress((folder / "head.stl").read_bytes()))
    (folder / "empty.stl").write_bytes(b"")
    return folder


@pytest.fixture
def unwritable(tmp_path) -> Path:
    """A folder path that cannot be made, whoever runs the tests."""
    if os.geteuid() != 0:
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o555)
        return locked / "out"
    if not Path("/sys").is_dir():
        pytest.skip("no path is unwritable for root here")
    return Path("/sys/hipviz-cannot-write-here")  # sysfs refuses new entries, even to root


# --------------------------------------------------------------------------
# input files and values (measure and simulate share them)
# --------------------------------------------------------------------------

INPUT_CASES = {
    "missing file": (["--femur", "{d}/nope.stl"], ["nope.stl: no such file"]),
    "a folder": (["--femur", "{d}"], ["is a directory"]),
    "empty file": (["--femur", "{d}/empty.stl"], ["file is empty"]),
    "gzipped mesh": (["--femur", "{d}/packed.stl"], ["is gzip-compressed"]),
    "over the file size limit": (
        ["--femur", "{d}/head.stl", "--max-file-mb", "0.01"],
        ["raise it with --max-file-mb"],
    ),
    "over the triangle limit": (
        ["--femur", "{d}/head.stl", "--max-triangles", "100"],
        ["raise it with --max-triangles"],
    ),
    "bad limit value": (["--max-voxels", "-3"], ["--max-voxels", "positive whole number"]),
    "bad limit text": (["--max-data-mb", "lots"], ["--max-data-mb"]),
    "pelvis without femur": (["--pelvis", "{d}/head.stl"], ["--femur is needed"]),
    "case and files": (["--case", "normal", "--femur", "{d}/head.stl"], ["--case"]),
    "unknown case": (["--case", "nonsense"], ["unknown case 'nonsense'"]),
    "units on the built-in hip": (["--units", "mm"], ["--units"]),
    "margin not a number": (["--margin", "nan"], ["margin nan"]),
    "tilt out of range": (["--tilt", "100"], ["tilt 100"]),
    "subdivisions zero": (["--subdivisions", "0"], ["subdivisions"]),
    "bad modes": (["--modes", "99=1"], ["--modes"]),
    "unknown frame": (["--frame", "xyz"], ["--frame"]),
    "femur with no head": (["--femur", "{d}/afile.stl"], ["afile.stl"]),
    "unknown load": (["--load", "running"], ["--load 'running'", "one-leg-stance, standing-up"]),
    "load of two numbers": (["--load", "100,200"], ["--load '100,200'", "FX,FY,FZ"]),
    "load of no force": (["--load", "0,0,0"], ["--load: joint force |F| = 0 N is outside"]),
    "load too large": (["--load", "1e6,0,0"], ["--load: joint force", "0-15000 N"]),
    "load starting with a minus": (["--load", "-100,0,1500"], ["--load=-100,0,1500"]),
    "body weight out of range": (
        ["--load", "walking", "--body-weight", "5"],
        ["--body-weight: body weight 5 kg is outside 20-300 kg"],
    ),
    "body weight not a number": (
        ["--load", "pauwels", "--body-weight", "nan"],
        ["--body-weight: body weight nan kg"],
    ),
    "poisson incompressible": (
        ["--load", "walking", "--poisson", "0.5"],
        ["--poisson: Poisson's ratio 0.5 is outside [0, 0.5)"],
    ),
    "modulus negative": (
        ["--load", "walking", "--cartilage-modulus", "-1"],
        ["--cartilage-modulus: cartilage modulus -1 MPa is outside 0.1-1000 MPa"],
    ),
    "unknown spring law": (["--load", "walking", "--spring", "cubic"], ["--spring"]),
    "load options without a load": (
        ["--body-weight", "80", "--spring", "log"],
        ["--body-weight, --spring needs --load"],
    ),
}


@pytest.mark.parametrize("command", ["measure", "simulate", "rom"])
@pytest.mark.parametrize("case", list(INPUT_CASES))
def test_input_failures(capsys, files, command, case):
    argv, fragments = INPUT_CASES[case]
    argv = [a.format(d=files) for a in argv]
    if command == "simulate":
        argv += ["--pao", "lateral=10"]
    load_options = ("--load", "--body-weight", "--cartilage-modulus", "--poisson", "--spring")
    if command == "rom" and (
        case in ("margin not a number", "tilt out of range") or set(argv) & set(load_options)
    ):
        fragments = ["unrecognized arguments"]  # rom has no --margin, --tilt or load options
    if case == "femur with no head":  # a plate: a mesh, but no femoral head on it
        trimesh.creation.box(extents=(80, 60, 5)).export(files / "afile.stl")
        if command in ("simulate", "rom"):  # which need a pelvis first
            fragments = ["needs the pelvis (--pelvis)"]
    fails_cleanly(capsys, [command, *argv], *fragments)


# --------------------------------------------------------------------------
# simulate: what to do, and where to write
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv, fragment",
    [
        ([], "nothing to simulate"),
        (["--pao", "sideways=10"], "--pao: cannot read 'sideways=10'"),
        (["--pao", "lateral=nan"], "lateral nan deg is outside"),
        (["--pao", "lateral=1,lateral=2"], "lateral is given twice"),
        (["--femoral", "level=inf"], "femoral cut level inf mm is outside"),
        (["--cuts", "iliac=nan"], "iliac cut offset nan mm is outside"),
        (["--preset", "nonsense"], "--preset"),
    ],
)
def test_simulate_value_failures(capsys, argv, fragment):
    fails_cleanly(capsys, ["simulate", *argv], fragment)


def test_simulate_export_dir_is_a_file(capsys, files):
    fails_cleanly(
        capsys,
        ["simulate", "--preset", "pao", "--export-dir", str(files / "afile")],
        f"--export-dir {files / 'afile'}: is a file, not a folder",
    )


def test_simulate_export_dir_under_a_file(capsys, files):
    target = files / "afile" / "sub"
    fails_cleanly(
        capsys,
        ["simulate", "--preset", "pao", "--export-dir", str(target)],
        f"--export-dir {target}: cannot write (Not a directory",
    )


def test_simulate_export_dir_unwritable(capsys, unwritable):
    line = fails_cleanly(
        capsys, ["simulate", "--preset", "pao", "--export-dir", str(unwritable)], "cannot write"
    )
    assert line.startswith(f"hipviz simulate: error: --export-dir {unwritable}: ")


@pytest.mark.slow
def test_simulate_write_failing_after_the_work(capsys, tmp_path):
    """An output name taken by a folder: found only when writing, still one line."""
    out = tmp_path / "out"
    (out / "pelvis_rest.stl").mkdir(parents=True)
    fails_cleanly(
        capsys,
        ["simulate", "--preset", "pao", "--subdivisions", "4", "--export-dir", str(out)],
        "cannot write (Is a directory",
        "pelvis_rest.stl",
    )


# --------------------------------------------------------------------------
# export
# --------------------------------------------------------------------------


def test_export_out_is_an_existing_file(capsys, files):
    fails_cleanly(
        capsys, ["export", "--out", str(files / "afile")], "--out", "is a file, not a folder"
    )


def test_export_out_under_a_file(capsys, files):
    fails_cleanly(
        capsys, ["export", "--out", str(files / "afile" / "x")], "cannot write (Not a directory"
    )


def test_export_out_unwritable(capsys, unwritable):
    fails_cleanly(capsys, ["export", "--out", str(unwritable)], f"--out {unwritable}: cannot write")


def test_export_output_name_taken_by_a_folder(capsys, tmp_path):
    (tmp_path / "pelvis.stl").mkdir()
    fails_cleanly(
        capsys,
        ["export", "--out", str(tmp_path), "--side", "left", "--subdivisions", "5"],
        "cannot write (Is a directory",
    )


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["--subdivisions", "0"], "subdivisions"),
        (["--modes", "1=9"], "--modes"),
        (["--side", "middle"], "--side"),
    ],
)
def test_export_value_failures(capsys, tmp_path, argv, fragment):
    fails_cleanly(capsys, ["export", "--out", str(tmp_path), *argv], fragment)


# --------------------------------------------------------------------------
# the parser itself
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv, fragment",
    [
        ([], "required"),
        (["transmogrify"], "invalid choice"),
        (["measure", "--no-such-option"], "unrecognized arguments"),
        (["serve", "--port", "0"], "--port 0 is not a port number"),
        (["serve", "--port", "http"], "--port"),
        (["serve", "--max-file-mb", "0"], "--max-file-mb"),
    ],
)
def test_parser_failures(capsys, argv, fragment):
    fails_cleanly(capsys, argv, fragment)


# --------------------------------------------------------------------------
# serve, as the console command (it imports the web stack and binds a port)
# --------------------------------------------------------------------------


def run_serve(tmp_path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    environ = {**os.environ, "PYTHONPATH": str(REPO), "HIPVIZ_SESSION_DIR": str(tmp_path)}
    return subprocess.run(
        [sys.executable, "-m", "hipviz.cli", "serve", *args],
        capture_output=True,
        text=True,
        env={**environ, **(env or {})},
        cwd=REPO,
        timeout=180,
    )


def assert_serve_fails(result: subprocess.CompletedProcess, *fragments: str) -> None:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("hipviz serve: error: ")
    assert "serving on" not in result.stderr and "internal error" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_serve_port_in_use(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_serve(tmp_path, "--port", str(port))
    assert_serve_fails(result, f"cannot listen on 127.0.0.1:{port}", "in use")


def test_serve_unknown_address(tmp_path):
    assert_serve_fails(
        run_serve(tmp_path, "--address", "no-such-host.invalid", "--port", "5999"),
        "cannot listen on no-such-host.invalid:5999",
    )


def test_serve_session_folder_cannot_be_made(tmp_path, unwritable):
    result = run_serve(tmp_path, "--port", "5999", env={"HIPVIZ_SESSION_DIR": str(unwritable)})
    where = f"cannot make a session folder in {unwritable}"
    assert_serve_fails(result, where, "HIPVIZ_SESSION_DIR")
