"""Mesh faults change no measure: winding, duplicate and zero-area faces, extra bodies.

Faults are written into real files and read back through :func:`hipviz.io.load_mesh`,
the one place meshes are cleaned, then measured like the clean meshes.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import trimesh

from hipviz import hip
from hipviz.bodies import split_bodies
from hipviz.errors import LandmarkError
from hipviz.io import load_mesh

REPO = Path(__file__).resolve().parents[1]

ANGLES = (
    "lcea_deg",
    "acea_deg",
    "pcea_deg",
    "acetabular_version_deg",
    "acetabular_version_cranial_deg",
    "tonnis_deg",
    "neck_shaft_deg",
    "neck_shaft_projected_deg",
    "femoral_version_deg",
    "alpha_deg",
    "mckibbin_deg",
)
LENGTHS = ("head_radius_mm", "sphericity_mm")


def same_numbers(a: dict, b: dict, *, deg: float = 0.1, mm: float = 0.05) -> None:
    """Every angle within ``deg``, every length within ``mm``, nulls where the other has them."""
    for key in ANGLES:
        if b[key] is None:
            assert a[key] is None, key
        else:
            assert a[key] == pytest.approx(b[key], abs=deg), key
    for key in LENGTHS:
        assert a[key] == pytest.approx(b[key], abs=mm), key
    for key, value in b["coverage_pct"].items():
        assert a["coverage_pct"][key] == pytest.approx(value, abs=deg), key


def write_ply(path: Path, vertices: np.ndarray, faces: np.ndarray) -> Path:
    trimesh.Trimesh(vertices, faces, process=False).export(path)
    return path


def flipped(faces: np.ndarray, which: np.ndarray | slice = slice(None)) -> np.ndarray:
    out = np.array(faces, copy=True)
    out[which] = out[which][:, ::-1]
    return out


def with_duplicates_and_slivers(mesh: trimesh.Trimesh, rng: np.random.Generator):
    """Repeat 50 faces (some reversed) and split 50 faces at an edge midpoint, leaving a
    zero-area sliver across the edge (a T-junction): the surface itself is unchanged."""
    v = np.asarray(mesh.vertices)
    f = np.asarray(mesh.faces)
    picks = rng.choice(len(f), 100, replace=False)
    dup, split = picks[:50], picks[50:]
    extra = [f[dup[:25]], f[dup[25:], ::-1]]
    new_v = []
    keep = np.ones(len(f), dtype=bool)
    keep[split] = False
    for k, face in enumerate(f[split]):
        a, b, c = face
        m = len(v) + k
        new_v.append((v[a] + v[b]) / 2)
        extra.append(np.array([[a, m, c], [m, b, c], [a, b, m]]))
    return np.vstack([v, new_v]), np.vstack([f[keep], *extra])


def measure_files(tmp_path: Path, pelvis, femur, **kwargs) -> tuple[dict, list[str]]:
    """Write (vertices, faces) pairs to PLY, read them back, measure; also the io notes."""
    p = load_mesh(write_ply(tmp_path / "pelvis.ply", *pelvis))
    f = load_mesh(write_ply(tmp_path / "femur.ply", *femur))
    return hip.analyze(p.mesh, f.mesh, **kwargs).as_dict(), list(p.warnings + f.warnings)


def vf(mesh: trimesh.Trimesh) -> tuple[np.ndarray, np.ndarray]:
    return np.asarray(mesh.vertices), np.asarray(mesh.faces)


# --------------------------------------------------------------------------- winding


@pytest.fixture(scope="module")
def builtin_clean(builtin_left):
    return hip.analyze(builtin_left.pelvis, builtin_left.femur).as_dict()


def test_inside_out_hip_measures_as_the_clean_one(tmp_path, builtin_left, builtin_clean):
    pv, pf = vf(builtin_left.pelvis)
    fv, ff = vf(builtin_left.femur)
    values, notes = measure_files(tmp_path, (pv, flipped(pf)), (fv, flipped(ff)))
    same_numbers(values, builtin_clean)
    assert f"{len(pf):,} triangles were inside-out; fixed" in notes
    assert f"{len(ff):,} triangles were inside-out; fixed" in notes


def test_half_of_one_body_flipped_measures_as_the_clean_one(
    tmp_path, builtin_left, builtin_clean, rng
):
    pv, pf = vf(builtin_left.pelvis)
    fv, ff = vf(builtin_left.femur)
    # one hemipelvis (the largest body) and the femur each get a random half turned
    hemi = split_bodies(builtin_left.pelvis)[0]
    in_hemi = np.isin(pf, np.flatnonzero(np.isin(pv, hemi.vertices).all(axis=1))).all(axis=1)
    half_p = np.flatnonzero(in_hemi)[rng.random(int(in_hemi.sum())) < 0.5]
    half_f = np.flatnonzero(rng.random(len(ff)) < 0.5)
    values, notes = measure_files(tmp_path, (pv, flipped(pf, half_p)), (fv, flipped(ff, half_f)))
    same_numbers(values, builtin_clean)
    assert f"{len(half_p):,} triangles were inside-out; fixed" in notes
    assert f"{len(half_f):,} triangles were inside-out; fixed" in notes


def test_duplicate_and_zero_area_faces_change_nothing(tmp_path, builtin_left, builtin_clean, rng):
    values, notes = measure_files(
        tmp_path,
        with_duplicates_and_slivers(builtin_left.pelvis, rng),
        with_duplicates_and_slivers(builtin_left.femur, rng),
    )
    same_numbers(values, builtin_clean)
    assert notes.count("dropped 50 duplicate faces") == 2
    assert notes.count("dropped 50 zero-area faces (corners on one line)") == 2


def test_inside_out_specimen_measures_as_the_clean_one(tmp_path, specimen, rng):
    pelvis, femur = specimen("lhdl_ct_staple")
    clean = hip.analyze(pelvis, femur).as_dict()
    pv, pf = vf(pelvis)
    fv, ff = vf(femur)
    values, _ = measure_files(tmp_path, (pv, flipped(pf)), (fv, flipped(ff)))
    same_numbers(values, clean)
    half = np.flatnonzero(rng.random(len(ff)) < 0.5)
    values, notes = measure_files(tmp_path, (pv, pf), (fv, flipped(ff, half)))
    same_numbers(values, clean)
    assert f"{len(half):,} triangles were inside-out; fixed" in notes


# --------------------------------------------------------------------------- bodies


@pytest.fixture(scope="module")
def both_femurs(tmp_path_factory):
    """Left and right built-in femurs in one STL file, read back."""
    from hipviz.anatomy import builtin_hip

    left, right = builtin_hip(side="left"), builtin_hip(side="right")
    path = tmp_path_factory.mktemp("both") / "femurs.stl"
    trimesh.util.concatenate([left.femur, right.femur]).export(path)
    return path, load_mesh(path), left, right


def test_both_femurs_without_pelvis_are_refused(both_femurs):
    _, loaded, _, _ = both_femurs
    assert loaded.n_bodies == 2
    with pytest.raises(LandmarkError, match="2 femur-like bodies") as excinfo:
        hip.analyze(None, loaded.mesh)
    assert excinfo.value.bone == "femur"


def test_both_femurs_with_whole_pelvis_are_refused(both_femurs):
    _, loaded, left, _ = both_femurs
    with pytest.raises(LandmarkError, match="2 sit in sockets of the pelvis"):
        hip.analyze(left.pelvis, loaded.mesh)


def test_both_femurs_with_one_hemipelvis_measure_the_seated_one(both_femurs):
    _, loaded, left, _ = both_femurs
    hemipelves = split_bodies(left.pelvis)[:2]
    hemi = min(hemipelves, key=lambda m: m.vertices[:, 0].mean())  # RAS: left is -x
    alone = hip.analyze(hemi, left.femur, frame="ras").as_dict()
    picked = hip.analyze(hemi, loaded.mesh, frame="ras").as_dict()
    assert picked["side"] == "left"
    same_numbers(picked, alone, deg=1e-6, mm=1e-6)
    assert any("measured the one seated in the socket" in w for w in picked["warnings"])


def test_cli_refuses_both_femurs_in_one_line(both_femurs):
    path, _, _, _ = both_femurs
    run = subprocess.run(
        [sys.executable, "-m", "hipviz.cli", "measure", "--femur", str(path)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
    )
    assert run.returncode == 2
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1, run.stderr
    assert str(path) in lines[0] and "2 femur-like bodies" in lines[0]


@pytest.mark.parametrize(
    ("extra", "note"),
    [
        (trimesh.creation.icosphere(subdivisions=3, radius=20.0), "ignored 1 separate body"),
        (trimesh.creation.box(extents=(60.0, 60.0, 380.0)), "ignored 1 separate body"),
    ],
    ids=["patella-sized", "tibia-sized"],
)
def test_femur_with_another_bone_measures_the_femur(builtin_left, builtin_clean, extra, note):
    extra = extra.copy()
    shaft = builtin_left.femur.vertices[:, 2].min()
    extra.apply_translation(builtin_left.femur.centroid * [1, 1, 0] + [0, 0, shaft - 250.0])
    combined = trimesh.util.concatenate([builtin_left.femur, extra])
    values = hip.analyze(builtin_left.pelvis, combined).as_dict()
    same_numbers(values, builtin_clean, deg=1e-6, mm=1e-6)
    assert any(note in w for w in values["warnings"]), values["warnings"]


# --------------------------------------------------------------------------- units


def test_femur_in_centimetres_gets_a_units_hint(tmp_path, builtin_left):
    in_cm = builtin_left.femur.copy()
    in_cm.apply_scale(0.1)
    path = tmp_path / "femur_cm.stl"
    in_cm.export(path)
    run = subprocess.run(
        [sys.executable, "-m", "hipviz.cli", "measure", "--femur", str(path)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
    )
    assert run.returncode == 2
    assert len(run.stderr.strip().splitlines()) == 1, run.stderr
    assert "--units cm" in run.stderr
    loaded = load_mesh(path, units="cm")
    assert loaded.scale_to_mm == 10.0
    assert loaded.mesh.volume == pytest.approx(builtin_left.femur.volume, rel=1e-4)
    np.testing.assert_allclose(loaded.mesh.bounds, builtin_left.femur.bounds, atol=1e-3)
