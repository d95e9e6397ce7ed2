"""Bounded inputs: every file is checked against :class:`hipviz.io.Limits` before its data.

Header bombs, gzip bombs and files whose headers lie about their size are
built small in a temporary folder (``tests/bombs.py``); each must be refused
with one line naming the file, the limit and the option that raises it, in
milliseconds, without the process growing (peak RSS measured in a forked
child of a fresh interpreter).
"""

from __future__ import annotations

import dataclasses
import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import bombs
import numpy as np
import pytest
import trimesh

from hipviz.cli import main
from hipviz.errors import InputError
from hipviz.io import LIMIT_OPTIONS, Limits, _open_data, load_label_map, load_mesh

REPO = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent
#: A refused bomb may grow the process by no more than this (imports are done before).
MAX_GROWTH_MB = 40.0
MAX_SECONDS = 1.0
#: Peak RSS is read from Linux's /proc (VmHWM, reset by /proc/self/clear_refs).
needs_proc = pytest.mark.skipif(
    not Path("/proc/self/clear_refs").exists(), reason="peak RSS is read from Linux's /proc"
)


def assert_refusal(message: str, file_name: str, option: str) -> None:
    """One line that starts with the file's name and names the option raising the limit."""
    assert message.startswith(f"{file_name}: "), message
    assert "\n" not in message, message
    assert f"(raise it with {option})" in message, message


def sphere(subdivisions: int = 3) -> trimesh.Trimesh:
    return trimesh.creation.icosphere(subdivisions=subdivisions, radius=50.0)


# --------------------------------------------------------------------------
# the Limits value
# --------------------------------------------------------------------------


def test_limits_defaults_are_documented_values():
    limits = Limits()
    assert (limits.max_file_mb, limits.max_triangles) == (200.0, 5_000_000)
    assert (limits.max_voxels, limits.max_data_mb) == (256_000_000, 1000.0)
    assert limits.max_points == 15_000_000
    assert set(LIMIT_OPTIONS) == {f.name for f in dataclasses.fields(Limits)}
    with pytest.raises(dataclasses.FrozenInstanceError):
        limits.max_triangles = 1  # type: ignore[misc]


@pytest.mark.parametrize(
    "field, value",
    [
        ("max_file_mb", 0),
        ("max_file_mb", -1.0),
        ("max_file_mb", float("nan")),
        ("max_data_mb", float("inf")),
        ("max_data_mb", "10"),
        ("max_triangles", 0),
        ("max_triangles", 2.5),
        ("max_voxels", True),
    ],
)
def test_limits_refuse_bad_values(field, value):
    with pytest.raises(InputError, match=field):
        Limits(**{field: value})


def test_load_mesh_refuses_a_non_limits_value(tmp_path):
    path = tmp_path / "s.stl"
    sphere().export(path)
    with pytest.raises(InputError, match="hipviz.io.Limits"):
        load_mesh(path, limits={"max_triangles": 10})  # type: ignore[arg-type]


# --------------------------------------------------------------------------
# the bombs: refused fast, in one line, without the process growing
# --------------------------------------------------------------------------

# Runs in a fresh interpreter: imports everything a load needs, then forks a
# child per file (each starts from the same memory) whose peak RSS (Linux
# VmHWM) is reset just before the load.
_PROBE = r"""
import json, os, sys, time
import nibabel, skimage.measure, trimesh, pyvista
from hipviz.io import Limits, load_mesh
from hipviz.errors import InputError

def status_mb(key):
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024

def reset_peak():
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")

for spec in json.loads(sys.argv[1]):
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        reset_peak()
        base = status_mb("VmRSS")
        start = time.perf_counter()
        try:
            load_mesh(spec["path"], limits=Limits(**spec["limits"]))
            message = None
        except InputError as exc:
            message = str(exc)
        out = {"message": message, "seconds": time.perf_counter() - start,
               "growth_mb": status_mb("VmHWM") - base, "base_mb": base}
        os.write(write, json.dumps(out).encode())
        os._exit(0)
    os.close(write)
    chunks = []
    while chunk := os.read(read, 65536):
        chunks.append(chunk)
    os.waitpid(pid, 0)
    print(b"".join(chunks).decode())
"""


def probe(specs: list[dict]) -> list[dict]:
    """Load each ``{"path", "limits"}`` in a forked child; message, seconds, RSS growth."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run(
        [sys.executable, "-c", _PROBE, json.dumps(specs)],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return [json.loads(line) for line in result.stdout.splitlines()]


@pytest.fixture(scope="module")
def bomb_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bombs")
    files = bombs.all_bombs(folder)
    files["oversize STL (limit 1 MB)"] = bombs.sphere_stl(folder, "big.stl", subdivisions=5)
    return files


EXPECTED = {
    "lying NIfTI header (2048³ int16)": ("--max-voxels", "2048×2048×2048 = 8,589,934,592 voxels"),
    "NIfTI gzip bomb (4 GiB of zeros)": ("--max-voxels", "2048×2048×1024"),
    "NIfTI extension bomb (2 GB)": ("--max-data-mb", "at byte 2,000,000,000"),
    "binary PLY claiming 2^31 faces": ("--max-triangles", "2,147,483,647 triangles"),
    "legacy VTK claiming 10^9 points": ("--max-triangles", "1,000,000,000 points"),
    "oversize STL (limit 1 MB)": ("--max-file-mb", "1.02 MB on disk"),
}


@needs_proc
def test_bombs_are_refused_fast_without_growing(bomb_folder):
    specs = [
        {
            "path": str(path),
            "limits": {"max_file_mb": 1.0} if "limit 1 MB" in name else {},
        }
        for name, path in bomb_folder.items()
    ]
    results = dict(zip(bomb_folder, probe(specs), strict=True))
    for name, result in results.items():
        path = bomb_folder[name]
        message = result["message"]
        assert message is not None, f"{name} was loaded"
        assert "\n" not in message and message.startswith(f"{path.name}: "), message
        if name in EXPECTED:
            option, fragment = EXPECTED[name]
            assert_refusal(message, path.name, option)
            assert fragment in message, message
        assert result["seconds"] < MAX_SECONDS, (name, result)
        assert result["growth_mb"] < MAX_GROWTH_MB, (name, result)
    stl = results["binary STL claiming 2^31 triangles"]["message"]
    assert "declares 2,147,483,648 triangles, which need 107,374,182,484 bytes, not 134" in stl
    assert "no NIfTI-1 or NIfTI-2 header" in results["gzip of zeros, no header (4 GiB)"]["message"]


def test_the_gzip_bomb_really_is_one(bomb_folder):
    """The bomb is its header and 64 gzip members of 64 MiB of zeros: 4 GiB in ~4 MB."""
    path = bomb_folder["NIfTI gzip bomb (4 GiB of zeros)"]
    data = path.read_bytes()
    header = gzip.compress(bombs.nifti_header((2048, 2048, 1024), "uint8"), mtime=0)
    member = bombs._zeros_gzip_member()
    assert data == header + member * 64
    assert len(gzip.decompress(member)) == 64 << 20
    assert len(data) < 5_000_000


@needs_proc
def test_probe_sees_a_real_load_grow(tmp_path):
    """The RSS probe can fail: a 200 MB label map that is read makes the child grow."""
    import nibabel as nib

    data = np.zeros((400, 400, 200), dtype=np.int16)  # 64 MB of voxels
    data[100:300, 100:300, 50:150] = 1
    path = tmp_path / "cube.nii.gz"
    nib.save(nib.Nifti1Image(data, np.eye(4)), str(path))
    (result,) = probe([{"path": str(path), "limits": {}}])
    assert result["message"] is None
    assert result["growth_mb"] > 64


# --------------------------------------------------------------------------
# gzip: a hard cap on what is decompressed
# --------------------------------------------------------------------------


def test_gzip_stream_stops_at_the_cap(tmp_path):
    path = bombs.zeros_gzip(tmp_path, mib=256)  # 268 MB of zeros in 260 KB
    read = 0
    with (
        pytest.raises(InputError) as excinfo,
        _open_data(path, "z.gz", Limits(max_data_mb=50)) as f,
    ):
        while step := f.read(1 << 20):
            read += len(step)
    message = str(excinfo.value)
    assert_refusal(message, "z.gz", "--max-data-mb")
    assert "decompresses to more than the limit of 50 MB of data" in message
    assert read <= 50_000_000 and read > 45_000_000


def test_gzip_stream_at_the_cap_is_read_whole(tmp_path):
    path = bombs.zeros_gzip(tmp_path, mib=128)  # two concatenated members
    exact = Limits(max_data_mb=(128 << 20) / 1e6)
    with _open_data(path, "z.gz", exact) as f:
        data = f.read()
    assert len(data) == 128 << 20 and not any(data[:: 1 << 16])
    with pytest.raises(InputError, match="decompresses to more than"):
        with _open_data(path, "z.gz", Limits(max_data_mb=exact.max_data_mb - 1e-6)) as f:
            f.read()


def test_gzip_stream_seeks(tmp_path):
    payload = np.arange(3_000_000, dtype="<u4").tobytes()
    path = tmp_path / "n.gz"
    first, rest = payload[:5_000_000], payload[5_000_000:]
    path.write_bytes(gzip.compress(first, compresslevel=1) + gzip.compress(rest, compresslevel=1))
    with _open_data(path, "n.gz", Limits()) as f:
        f.seek(7_000_000)
        assert f.read(8) == payload[7_000_000:7_000_008]
        f.seek(16)  # backward: starts again
        assert f.read(8) == payload[16:24]
        assert f.tell() == 24


def test_truncated_gzip_is_one_line(tmp_path):
    import nibabel as nib

    data = np.zeros((40, 40, 40), dtype=np.uint8)
    data[10:30, 10:30, 10:30] = 1
    whole = tmp_path / "whole.nii.gz"
    nib.save(nib.Nifti1Image(data, np.eye(4)), str(whole))
    cut = tmp_path / "cut.nii.gz"
    cut.write_bytes(whole.read_bytes()[:300])
    with pytest.raises(InputError) as excinfo:
        load_mesh(cut)
    message = str(excinfo.value)
    assert message.startswith("cut.nii.gz: ") and "\n" not in message
    assert excinfo.value.__cause__ is None


def test_a_nifti_under_a_data_cap_loads_and_over_it_is_refused(tmp_path):
    import nibabel as nib

    data = np.zeros((60, 60, 60), dtype=np.int32)  # 864,000 bytes of voxels
    data[20:40, 20:40, 20:40] = 3
    path = tmp_path / "seg.nii.gz"
    nib.save(nib.Nifti1Image(data, np.eye(4)), str(path))
    assert load_mesh(path, limits=Limits(max_data_mb=1.0)).watertight
    with pytest.raises(InputError) as excinfo:
        load_mesh(path, limits=Limits(max_data_mb=0.8))
    message = str(excinfo.value)
    assert_refusal(message, "seg.nii.gz", "--max-data-mb")
    assert "60×60×60 int32 voxels = 0.864 MB of voxel data, over the limit of 0.8 MB" in message
    with pytest.raises(InputError) as excinfo:
        load_label_map(path, limits=Limits(max_voxels=100_000))
    assert_refusal(str(excinfo.value), "seg.nii.gz", "--max-voxels")


def test_uncompressed_nifti_whose_header_lies_is_refused_before_reading(tmp_path):
    path = tmp_path / "lie.nii"
    path.write_bytes(bombs.nifti_header((512, 512, 300), "int16") + bytes(1000))
    with pytest.raises(InputError) as excinfo:
        load_mesh(path)
    message = str(excinfo.value)
    assert message.startswith("lie.nii: ") and "truncated, or the header lies" in message
    assert "157,286,752 bytes" in message  # 352 + 512*512*300*2


def test_gzip_compressed_mesh_is_refused(tmp_path):
    plain = tmp_path / "plain.stl"
    sphere().export(plain)
    path = tmp_path / "packed.stl"
    path.write_bytes(gzip.compress(plain.read_bytes()))
    with pytest.raises(InputError, match=r"^packed.stl: is gzip-compressed"):
        load_mesh(path)


# --------------------------------------------------------------------------
# triangle counts, from headers before parsing, and after parsing
# --------------------------------------------------------------------------


def _write(mesh: trimesh.Trimesh, path: Path) -> Path:
    if path.suffix in (".vtp", ".vtk"):
        import pyvista as pv

        poly = pv.PolyData.from_regular_faces(np.asarray(mesh.vertices), np.asarray(mesh.faces))
        poly.save(path, binary=path.name != "ascii.vtk")
    elif path.name == "ascii.stl":
        path.write_bytes(trimesh.exchange.stl.export_stl_ascii(mesh).encode())
    else:
        mesh.export(path)
    return path


@pytest.mark.parametrize(
    "name, source",
    [
        ("binary.stl", "its binary header declares 1,280 triangles"),
        ("ascii.stl", "it has 1,280 triangles"),
        ("mesh.ply", "its header declares at least 1,280 triangles"),
        ("mesh.off", "its header declares at least 1,280 triangles"),
        ("mesh.obj", "it has at least 1,280 triangles"),
        ("mesh.vtp", "its pieces declare at least 1,280 triangles"),
        ("binary.vtk", "it declares at least 1,280 triangles"),
        ("ascii.vtk", "it declares at least 1,280 triangles"),
        ("mesh.glb", "1,280 triangles"),
    ],
)
def test_triangle_limit_in_every_format(tmp_path, name, source):
    mesh = sphere(subdivisions=3)
    assert len(mesh.faces) == 1280
    path = _write(mesh, tmp_path / name)
    assert len(load_mesh(path, limits=Limits(max_triangles=1280)).mesh.faces) == 1280
    with pytest.raises(InputError) as excinfo:
        load_mesh(path, limits=Limits(max_triangles=1279))
    message = str(excinfo.value)
    assert_refusal(message, name, "--max-triangles")
    assert f"{source}, over the limit of 1,279 triangles" in message


def test_a_label_map_surface_over_the_triangle_limit(tmp_path):
    import nibabel as nib

    data = np.zeros((30, 30, 30), dtype=np.uint8)
    data[5:25, 5:25, 5:25] = 1
    path = tmp_path / "cube.nii.gz"
    nib.save(nib.Nifti1Image(data, np.eye(4)), str(path))
    with pytest.raises(InputError) as excinfo:
        load_mesh(path, limits=Limits(max_triangles=500))
    assert_refusal(str(excinfo.value), "cube.nii.gz", "--max-triangles")


@pytest.mark.parametrize(
    "name, text, fragment",
    [
        (
            "lie.off",
            "OFF\n4000000 4000000 0\n0 0 0\n1 0 0\n0 1 0\n3 0 1 2\n",
            "declares 4,000,000 vertices and 4,000,000 faces, which need at least 56,000,000 bytes",
        ),
        (
            "lie.ply",
            "ply\nformat ascii 1.0\nelement vertex 4000000\nproperty float x\nproperty float y\n"
            "property float z\nelement face 1\nproperty list uchar int vertex_indices\n"
            "end_header\n0 0 0\n1 0 0\n0 1 0\n3 0 1 2\n",
            "declares 4,000,000 vertex, 1 face, which need at least 24,000,002 bytes",
        ),
        (
            "lie.vtk",
            "# vtk DataFile Version 3.0\nx\nASCII\nDATASET POLYDATA\nPOINTS 4 float\n"
            "0 0 0 1 0 0 0 1 0 0 0 1\nPOLYGONS 1 400000000\n3 0 1 2\n",
            "declares POLYGONS 400,000,000",
        ),
        (
            "field.vtk",
            "# vtk DataFile Version 3.0\nx\nASCII\nDATASET POLYDATA\nPOINTS 4 float\n"
            "0 0 0 1 0 0 0 1 0 0 0 1\nFIELD FieldData 1\nbig 3 90000000 float\n0 0 0\n",
            "declares a field array of 90,000,000 x 3",
        ),
    ],
)
def test_headers_whose_counts_do_not_fit_the_file_are_refused(tmp_path, name, text, fragment):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(InputError) as excinfo:
        load_mesh(path)
    message = str(excinfo.value)
    assert message.startswith(f"{name}: not a readable mesh (its header"), message
    assert fragment in message and "truncated, or the header lies" in message


def test_ply_without_end_of_header_is_refused(tmp_path):
    path = tmp_path / "long.ply"
    path.write_bytes(b"ply\nformat ascii 1.0\n" + b"comment " + b"x" * 70_000 + b"\n")
    with pytest.raises(InputError, match=r"^long.ply: not a readable mesh \(no end_header"):
        load_mesh(path)


def test_gltf_with_a_large_external_buffer(tmp_path):
    mesh = sphere(subdivisions=3)
    path = tmp_path / "mesh.gltf"
    files = trimesh.exchange.gltf.export_gltf(trimesh.Scene(mesh))
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    buffers = [n for n in files if n != "model.gltf"]
    (tmp_path / "model.gltf").rename(path)
    assert buffers, "the export wrote no external buffer"
    total = sum(len(files[n]) for n in files)
    assert len(load_mesh(path).mesh.faces) == 1280
    with pytest.raises(InputError) as excinfo:
        load_mesh(path, limits=Limits(max_file_mb=(total - 1) / 1e6))
    assert_refusal(str(excinfo.value), "mesh.gltf", "--max-file-mb")
    assert "with the files it refers to" in str(excinfo.value)


def test_file_size_limit(tmp_path):
    path = bombs.sphere_stl(tmp_path, subdivisions=4)  # 5,120 triangles, 256,084 bytes
    assert load_mesh(path, limits=Limits(max_file_mb=0.257)).watertight
    with pytest.raises(InputError) as excinfo:
        load_mesh(path, limits=Limits(max_file_mb=0.256))
    assert str(excinfo.value) == (
        "sphere.stl: 256,084 bytes on disk, over the limit of 0.256 MB per file "
        "(raise it with --max-file-mb)"
    )


# --------------------------------------------------------------------------
# the command line
# --------------------------------------------------------------------------


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("command", ["measure", "simulate"])
@pytest.mark.parametrize(
    "flag, value, fragment",
    [
        ("--max-file-mb", "0.1", "over the limit of 0.1 MB per file"),
        ("--max-triangles", "1000", "over the limit of 1,000 triangles"),
    ],
)
def test_cli_limits_are_configurable(capsys, tmp_path, command, flag, value, fragment):
    femur = bombs.sphere_stl(tmp_path, "femur.stl", subdivisions=4)
    extra = ["--pao", "lateral=10"] if command == "simulate" else []
    code, out, err = run(capsys, command, "--femur", str(femur), flag, value, *extra)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and fragment in err and f"(raise it with {flag})" in err


def test_cli_voxel_limit(capsys, tmp_path):
    path = bombs.lying_nifti_gz(tmp_path, shape=(100, 100, 100))
    code, _, err = run(capsys, "measure", "--femur", f"{path}:1", "--max-voxels", "999999")
    assert code == 2 and "over the limit of 999,999 voxels (raise it with --max-voxels)" in err
    code, _, err = run(capsys, "measure", "--femur", f"{path}:1", "--max-data-mb", "1")
    assert code == 2 and "(raise it with --max-data-mb)" in err


@pytest.mark.parametrize("flag", list(LIMIT_OPTIONS.values()))
@pytest.mark.parametrize("value", ["0", "-5", "nan", "inf", "lots"])
def test_cli_refuses_bad_limit_values(capsys, flag, value):
    if flag in ("--max-triangles", "--max-voxels") and value == "inf":
        value = "1.5"
    with pytest.raises(SystemExit) as excinfo:
        main(["measure", flag, value])
    out, err = capsys.readouterr()
    assert excinfo.value.code == 2 and out == ""
    assert err.count("\n") == 1 and flag in err and "Traceback" not in err
