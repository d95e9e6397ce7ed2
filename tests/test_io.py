"""Tests of hipviz.io: reading bone surfaces from mesh files and NIfTI label maps."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import trimesh
from scipy.spatial import cKDTree

from hipviz.errors import InputError
from hipviz.io import (
    SUPPORTED_SUFFIXES,
    LoadedMesh,
    detect_units,
    load_label_map,
    load_mesh,
    parse_path_spec,
)

REPO = Path(__file__).resolve().parents[1]
VALIDATION = Path(__file__).resolve().parents[2] / "shared" / "validation"


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------


def sphere(radius: float = 50.0, subdivisions: int = 2) -> trimesh.Trimesh:
    return trimesh.creation.icosphere(subdivisions=subdivisions, radius=radius)


def box(extents=(60.0, 40.0, 80.0), centre=(0.0, 0.0, 0.0)) -> trimesh.Trimesh:
    mesh = trimesh.creation.box(extents=extents)
    mesh.apply_translation(centre)
    return mesh


def write_ascii_ply(path: Path, vertices, faces=None) -> Path:
    """Write an ASCII PLY with float64 ('double') coordinates, full precision."""
    vertices = np.asarray(vertices, dtype=np.float64)
    lines = ["ply", "format ascii 1.0", f"element vertex {len(vertices)}"]
    lines += ["property double x", "property double y", "property double z"]
    if faces is not None:
        lines += [f"element face {len(faces)}", "property list uchar int vertex_indices"]
    lines.append("end_header")
    lines += [" ".join(repr(float(c)) for c in row) for row in vertices]
    if faces is not None:
        lines += ["3 " + " ".join(str(int(i)) for i in face) for face in faces]
    path.write_text("\n".join(lines) + "\n")
    return path


def write_pyvista(mesh: trimesh.Trimesh, path: Path, binary: bool = True) -> Path:
    import pyvista as pv

    poly = pv.PolyData.from_regular_faces(np.asarray(mesh.vertices), np.asarray(mesh.faces))
    poly.save(path, binary=binary)
    return path


def assert_same_surface(loaded: trimesh.Trimesh, original: trimesh.Trimesh, tol: float) -> None:
    """Same vertex positions (as sets, both ways) and same enclosed volume."""
    assert len(loaded.vertices) == len(original.vertices)
    assert len(loaded.faces) == len(original.faces)
    d_lo, _ = cKDTree(original.vertices).query(loaded.vertices)
    d_ol, _ = cKDTree(loaded.vertices).query(original.vertices)
    assert d_lo.max() < tol
    assert d_ol.max() < tol
    assert loaded.volume == pytest.approx(original.volume, rel=1e-5)


def assert_clear_error(excinfo: pytest.ExceptionInfo, file_name: str, *fragments: str) -> None:
    """An InputError whose single-line message starts with the file name."""
    error = excinfo.value
    message = str(error)
    assert isinstance(error, InputError)
    assert isinstance(error, ValueError)
    assert message.startswith(f"{file_name}: "), message
    assert "\n" not in message and "\r" not in message, message
    assert error.__cause__ is None, "a third-party exception is chained to the error"
    for fragment in fragments:
        assert fragment in message, message


def nifti_affine(spacing, translation, flip_x: bool) -> np.ndarray:
    affine = np.diag([*spacing, 1.0])
    if flip_x:
        affine[0, 0] = -affine[0, 0]
    # a small rotation about z so the affine is not diagonal
    angle = np.deg2rad(10.0)
    rotation = np.array(
        [[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]]
    )
    affine[:3, :3] = rotation @ affine[:3, :3]
    affine[:3, 3] = translation
    return affine


ELLIPSOID_AXES = np.array([30.0, 20.0, 15.0])  # semi-axes, mm


def write_label_map(
    path: Path, affine: np.ndarray, centre, shape=(90, 70, 40), dtype=np.uint8
) -> Path:
    """Ellipsoid (label 2) around ``centre`` plus a small cube (label 5) in a corner."""
    import nibabel as nib

    ijk = np.indices(shape).reshape(3, -1).T.astype(np.float64)
    world = ijk @ affine[:3, :3].T + affine[:3, 3]
    inside = (((world - centre) / ELLIPSOID_AXES) ** 2).sum(axis=1) <= 1.0
    data = np.zeros(shape, dtype=dtype)
    data.reshape(-1)[inside] = 2
    data[1:5, 1:5, 1:5] = 5
    assert (data == 2)[[0, -1]].sum() == 0  # the ellipsoid does not touch the border
    image = nib.Nifti1Image(data, affine)
    image.header.set_xyzt_units("mm")
    nib.save(image, str(path))
    return path


# --------------------------------------------------------------------------
# round trips through every mesh format
# --------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".stl", ".ply", ".obj", ".off", ".glb", ".gltf"])
def test_round_trip_trimesh_formats(tmp_path: Path, suffix: str) -> None:
    original = sphere()
    path = tmp_path / f"bone{suffix}"
    if suffix == ".gltf":  # a .gltf file with its buffers in separate .bin files
        files = trimesh.exchange.gltf.export_gltf(trimesh.Scene(original))
        assert any(file_name.endswith(".bin") for file_name in files)
        for file_name, data in files.items():
            target = path if file_name.endswith(".gltf") else tmp_path / file_name
            target.write_bytes(data)
    else:
        original.export(path)
    loaded = load_mesh(path)
    assert isinstance(loaded, LoadedMesh)
    assert_same_surface(loaded.mesh, original, tol=1e-4)
    assert loaded.mesh.volume > 0
    assert loaded.units == "mm"
    assert loaded.scale_to_mm == 1.0
    assert loaded.n_bodies == 1
    assert loaded.watertight
    assert loaded.mesh.is_watertight and loaded.mesh.is_winding_consistent
    assert loaded.warnings == ()
    assert loaded.path == f"bone{suffix}"


def test_round_trip_ascii_stl(tmp_path: Path) -> None:
    original = box()
    path = tmp_path / "box.stl"
    path.write_text(trimesh.exchange.stl.export_stl_ascii(original))
    loaded = load_mesh(path)
    assert_same_surface(loaded.mesh, original, tol=1e-6)
    assert loaded.watertight and loaded.n_bodies == 1


def test_ascii_stl_with_several_solids(tmp_path: Path) -> None:
    left = box(centre=(-100.0, 0.0, 0.0))
    right = box(centre=(100.0, 0.0, 0.0))
    text = trimesh.exchange.stl.export_stl_ascii(left).replace("solid ", "solid left", 1)
    text += "\n" + trimesh.exchange.stl.export_stl_ascii(right)
    path = tmp_path / "pair.stl"
    path.write_text(text)
    loaded = load_mesh(path)
    assert loaded.n_bodies == 2 and loaded.watertight
    assert len(loaded.mesh.vertices) == 16
    assert loaded.mesh.volume == pytest.approx(left.volume + right.volume)


@pytest.mark.parametrize(("suffix", "binary"), [(".vtp", True), (".vtk", True), (".vtk", False)])
def test_round_trip_vtk_formats(tmp_path: Path, suffix: str, binary: bool) -> None:
    original = sphere()
    path = write_pyvista(original, tmp_path / f"bone{suffix}", binary=binary)
    loaded = load_mesh(path)
    assert_same_surface(loaded.mesh, original, tol=1e-4)
    assert loaded.watertight and loaded.n_bodies == 1 and loaded.warnings == ()


def test_vtk_unstructured_grid_gives_its_surface(tmp_path: Path) -> None:
    import pyvista as pv

    grid = pv.ImageData(dimensions=(4, 3, 5), spacing=(20.0, 30.0, 25.0))
    path = tmp_path / "cells.vtk"
    grid.cast_to_unstructured_grid().save(path)
    loaded = load_mesh(path)
    assert loaded.watertight
    assert loaded.mesh.volume == pytest.approx(60.0 * 60.0 * 100.0)
    np.testing.assert_allclose(loaded.mesh.extents, [60.0, 60.0, 100.0])


def test_vtk_image_data_is_not_a_surface(tmp_path: Path) -> None:
    import pyvista as pv

    path = tmp_path / "volume.vtk"
    pv.ImageData(dimensions=(4, 4, 4), spacing=(20.0, 20.0, 20.0)).save(path)
    with pytest.raises(InputError) as excinfo:
        load_mesh(path)
    assert_clear_error(excinfo, "volume.vtk", "not a surface")


def test_ply_vertex_order_is_kept(tmp_path: Path) -> None:
    original = sphere(subdivisions=3)
    rng = np.random.default_rng(1)
    permutation = rng.permutation(len(original.vertices))
    inverse = np.argsort(permutation)
    shuffled = trimesh.Trimesh(
        original.vertices[permutation], inverse[original.faces], process=False
    )
    path = write_ascii_ply(tmp_path / "order.ply", shuffled.vertices, shuffled.faces)
    loaded = load_mesh(path)
    np.testing.assert_array_equal(loaded.mesh.vertices, shuffled.vertices)
    np.testing.assert_array_equal(loaded.mesh.faces, shuffled.faces)


def test_stl_vertices_are_merged_in_first_seen_order(tmp_path: Path) -> None:
    original = box()
    path = tmp_path / "box.stl"
    original.export(path)
    loaded = load_mesh(path)
    # every corner of the triangle soup maps to the first copy of it
    soup = original.vertices[original.faces].reshape(-1, 3)
    _, first = np.unique(soup, axis=0, return_index=True)
    np.testing.assert_allclose(loaded.mesh.vertices, soup[np.sort(first)], atol=1e-6)
    assert len(loaded.mesh.vertices) == 8
    assert loaded.watertight


def test_distinct_close_points_are_not_welded(tmp_path: Path) -> None:
    first = sphere()
    # a copy shifted by 1e-9 mm: far below any tolerance-based merge
    vertices = np.vstack([first.vertices, first.vertices + [1e-9, 0.0, 0.0]])
    faces = np.vstack([first.faces, first.faces + len(first.vertices)])
    assert len(np.unique(vertices, axis=0)) == len(vertices)
    path = write_ascii_ply(tmp_path / "twins.ply", vertices, faces)
    loaded = load_mesh(path)
    assert len(loaded.mesh.vertices) == 2 * len(first.vertices)
    assert len(loaded.mesh.faces) == 2 * len(first.faces)
    assert loaded.n_bodies == 2
    assert loaded.watertight


def test_glb_scene_is_concatenated_with_transforms(tmp_path: Path) -> None:
    scene = trimesh.Scene()
    scene.add_geometry(
        box(), node_name="a", transform=trimesh.transformations.translation_matrix([200, 0, 0])
    )
    mirror = np.diag([-1.0, 1.0, 1.0, 1.0])
    mirror[:3, 3] = [-200.0, 0.0, 0.0]
    scene.add_geometry(sphere(), node_name="b", transform=mirror)
    path = tmp_path / "scene.glb"
    scene.export(path)
    loaded = load_mesh(path)
    assert loaded.n_bodies == 2
    assert "2 separate bodies" in loaded.warnings
    assert loaded.watertight
    # faces stay outward although one instance is mirrored
    assert loaded.mesh.volume == pytest.approx(box().volume + sphere().volume, rel=1e-5)
    bodies = loaded.mesh.split(only_watertight=False)
    centres = sorted(b.bounds.mean(axis=0)[0] for b in bodies)
    assert centres == pytest.approx([-200.0, 200.0], abs=1e-3)
    for body in bodies:
        assert body.volume > 0


def test_obj_with_two_objects(tmp_path: Path) -> None:
    a = box(centre=(-100.0, 0.0, 0.0))
    b = box(centre=(100.0, 0.0, 0.0))
    lines = []
    offset = 1
    for name, mesh in (("left", a), ("right", b)):
        lines.append(f"o {name}")
        lines += [f"v {x!r} {y!r} {z!r}" for x, y, z in mesh.vertices.tolist()]
        lines += [f"f {i + offset} {j + offset} {k + offset}" for i, j, k in mesh.faces.tolist()]
        offset += len(mesh.vertices)
    path = tmp_path / "two.obj"
    path.write_text("\n".join(lines) + "\n")
    loaded = load_mesh(path)
    assert loaded.n_bodies == 2
    assert loaded.mesh.volume == pytest.approx(2 * a.volume)


# --------------------------------------------------------------------------
# units
# --------------------------------------------------------------------------


def test_metres_are_detected_and_converted(tmp_path: Path) -> None:
    original = sphere(radius=100.0)
    in_metres = original.copy()
    in_metres.apply_scale(0.001)
    path = tmp_path / "pelvis_m.stl"
    in_metres.export(path)
    loaded = load_mesh(path)
    assert loaded.units == "m"
    assert loaded.scale_to_mm == 1000.0
    assert loaded.mesh.volume == pytest.approx(original.volume, rel=1e-4)
    assert "converted from metres (extent 0.2 m)" in loaded.warnings


def test_units_can_be_forced(tmp_path: Path) -> None:
    small = sphere(radius=0.1)
    path = tmp_path / "small.ply"
    small.export(path)
    forced_mm = load_mesh(path, units="mm")
    assert forced_mm.units == "mm" and forced_mm.scale_to_mm == 1.0
    assert forced_mm.mesh.extents.max() == pytest.approx(0.2, rel=1e-5)
    big = sphere(radius=100.0)
    big_path = tmp_path / "big.ply"
    big.export(big_path)
    forced_m = load_mesh(big_path, units="m")
    assert forced_m.units == "m" and forced_m.scale_to_mm == 1000.0
    assert forced_m.mesh.extents.max() == pytest.approx(200_000.0, rel=1e-5)


def test_centimetre_extent_is_refused_unless_forced(tmp_path: Path) -> None:
    mesh = sphere(radius=6.0)  # extent 12: a hip bone in centimetres
    path = tmp_path / "hip_cm.stl"
    mesh.export(path)
    with pytest.raises(InputError) as excinfo:
        load_mesh(path)
    assert_clear_error(
        excinfo, "hip_cm.stl", "extent 12 is implausible", "centimetres", "--units cm", "--units mm"
    )
    forced = load_mesh(path, units="mm")
    assert forced.units == "mm"
    assert forced.mesh.extents.max() == pytest.approx(12.0, rel=1e-5)
    in_cm = load_mesh(path, units="cm")
    assert in_cm.units == "cm" and in_cm.scale_to_mm == 10.0
    assert in_cm.mesh.extents.max() == pytest.approx(120.0, rel=1e-5)
    assert "converted from centimetres (extent 12 cm)" in in_cm.warnings


def test_femur_sized_in_centimetres_gets_a_hint(tmp_path: Path) -> None:
    """A whole femur in cm (extent ~45) reads as mm, with a hint to pass --units cm."""
    mesh = box(extents=(8.0, 6.0, 45.0))
    path = tmp_path / "femur_cm.stl"
    mesh.export(path)
    loaded = load_mesh(path)
    assert loaded.units == "mm"
    assert any("--units cm" in w and "45 mm is small" in w for w in loaded.warnings)
    assert not any("--units cm" in w for w in load_mesh(path, units="mm").warnings)
    big = tmp_path / "femur_mm.stl"
    box(extents=(80.0, 60.0, 450.0)).export(big)
    assert not any("--units cm" in w for w in load_mesh(big).warnings)


@pytest.mark.parametrize(
    ("extent", "expected"),
    [(0.25, "m"), (0.999, "m"), (30.001, "mm"), (250.0, "mm"), (5000.0, "mm")],
)
def test_detect_units(extent: float, expected: str) -> None:
    points = np.array([[0.0, 0.0, 0.0], [extent, extent / 2, 0.0]])
    assert detect_units(points) == expected
    assert detect_units(trimesh.PointCloud(points)) == expected


@pytest.mark.parametrize("extent", [1.0, 12.3, 30.0])
def test_detect_units_refuses_centimetre_scale(extent: float) -> None:
    with pytest.raises(InputError, match="implausible for a hip bone"):
        detect_units(np.array([[0.0, 0.0, 0.0], [0.0, extent, 0.0]]))


@pytest.mark.parametrize(
    "points",
    [np.zeros((0, 3)), np.ones((5, 3)), np.array([[0.0, 0, 0], [np.nan, 1, 1]]), np.ones((4, 2))],
)
def test_detect_units_refuses_bad_points(points: np.ndarray) -> None:
    with pytest.raises(InputError):
        detect_units(points)


def test_detect_units_uses_mesh_vertices() -> None:
    assert detect_units(sphere(radius=0.1)) == "m"
    assert detect_units(sphere(radius=100.0)) == "mm"


# --------------------------------------------------------------------------
# what is reported about the surface
# --------------------------------------------------------------------------


def test_two_separate_boxes_are_two_bodies(tmp_path: Path) -> None:
    both = trimesh.util.concatenate([box(centre=(-100, 0, 0)), box(centre=(100, 0, 0))])
    path = tmp_path / "two.stl"
    both.export(path)
    loaded = load_mesh(path)
    assert loaded.n_bodies == 2
    assert "2 separate bodies" in loaded.warnings
    assert loaded.watertight


def test_bodies_touching_at_one_vertex_are_separate(tmp_path: Path) -> None:
    # two tetrahedra sharing only a vertex: connected by vertices, not by faces
    vertices = np.array(
        [[0, 0, 0], [50, 0, 0], [0, 50, 0], [0, 0, 50], [-50, 0, 0], [0, -50, 0], [0, 0, -50]],
        dtype=float,
    )
    faces = np.array(
        [[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3], [0, 4, 5], [0, 6, 4], [0, 5, 6], [4, 6, 5]]
    )
    path = write_ascii_ply(tmp_path / "bowtie.ply", vertices, faces)
    loaded = load_mesh(path)
    assert loaded.n_bodies == 2
    assert loaded.watertight


def test_open_mesh_is_reported(tmp_path: Path) -> None:
    mesh = sphere()
    # remove two faces: each leaves a triangular hole
    opened = trimesh.Trimesh(mesh.vertices, mesh.faces[[*range(1, 100), *range(101, 320)]])
    expected_open = int(
        np.count_nonzero(np.unique(opened.edges_sorted, axis=0, return_counts=True)[1] == 1)
    )
    path = tmp_path / "open.ply"
    opened.export(path)
    loaded = load_mesh(path)
    assert not loaded.watertight
    assert f"not watertight: {expected_open} open edges" in loaded.warnings
    assert loaded.n_bodies == 1
    assert expected_open == 6
    assert len(loaded.mesh.faces) == len(mesh.faces) - 2


def test_degenerate_and_duplicate_faces_are_dropped(tmp_path: Path) -> None:
    mesh = box()
    faces = np.vstack([mesh.faces, mesh.faces[:2], [[0, 0, 1]], mesh.faces[:1, ::-1]])
    path = write_ascii_ply(tmp_path / "messy.ply", mesh.vertices, faces)
    loaded = load_mesh(path)
    assert len(loaded.mesh.faces) == len(mesh.faces)
    assert "dropped 1 degenerate faces" in loaded.warnings
    assert "dropped 3 duplicate faces" in loaded.warnings
    assert loaded.watertight


def test_unused_vertices_are_dropped(tmp_path: Path) -> None:
    mesh = box()
    vertices = np.vstack([mesh.vertices, [[1e4, 1e4, 1e4]]])  # would change the extent
    path = write_ascii_ply(tmp_path / "extra.ply", vertices, mesh.faces)
    loaded = load_mesh(path)
    assert len(loaded.mesh.vertices) == 8
    np.testing.assert_allclose(loaded.mesh.extents, [60.0, 40.0, 80.0])
    assert "ignored 1 vertices not used by any face" in loaded.warnings


def test_inward_faces_are_turned_outward(tmp_path: Path) -> None:
    mesh = sphere()
    path = tmp_path / "inside_out.ply"
    trimesh.Trimesh(mesh.vertices, mesh.faces[:, ::-1], process=False).export(path)
    loaded = load_mesh(path)
    assert f"{len(mesh.faces):,} triangles were inside-out; fixed" in loaded.warnings
    assert loaded.mesh.volume == pytest.approx(mesh.volume)
    np.testing.assert_array_equal(loaded.mesh.faces, mesh.faces)
    assert not any("inward" in w or "inconsistent" in w for w in loaded.warnings)


def test_one_face_wound_the_wrong_way_is_fixed(tmp_path: Path) -> None:
    mesh = sphere()
    faces = mesh.faces.copy()
    faces[0] = faces[0, ::-1]
    path = write_ascii_ply(tmp_path / "flipped_one.ply", mesh.vertices, faces)
    loaded = load_mesh(path)
    assert loaded.watertight
    assert "1 triangle was inside-out; fixed" in loaded.warnings
    np.testing.assert_array_equal(loaded.mesh.faces, mesh.faces)
    assert loaded.mesh.is_winding_consistent and loaded.mesh.volume > 0


def test_winding_is_fixed_body_by_body(tmp_path: Path, rng: np.random.Generator) -> None:
    """One body inside out, another with a random half of its faces turned, a third clean."""
    parts = [sphere(), box(centre=(200, 0, 0)), sphere(radius=30.0, subdivisions=3)]
    parts[2].apply_translation((0, 200, 0))
    clean = trimesh.util.concatenate(parts)
    faces = clean.faces.copy()
    n0, n1 = len(parts[0].faces), len(parts[1].faces)
    faces[:n0] = faces[:n0, ::-1]  # body 1 all inward
    half = np.flatnonzero(rng.random(len(parts[2].faces)) < 0.5) + n0 + n1
    faces[half] = faces[half, ::-1]  # body 3: a random half inward
    path = write_ascii_ply(tmp_path / "three.ply", clean.vertices, faces)
    loaded = load_mesh(path)
    assert f"{n0 + len(half):,} triangles were inside-out; fixed" in loaded.warnings
    np.testing.assert_array_equal(loaded.mesh.faces, clean.faces)
    assert loaded.n_bodies == 3 and loaded.watertight


def test_open_inward_surface_is_turned_outward(tmp_path: Path) -> None:
    mesh = sphere()
    kept = np.arange(1, len(mesh.faces))  # one hole
    path = write_ascii_ply(tmp_path / "open.ply", mesh.vertices, mesh.faces[kept][:, ::-1])
    loaded = load_mesh(path)
    assert not loaded.watertight
    np.testing.assert_array_equal(loaded.mesh.faces, mesh.faces[kept])


def test_non_orientable_surface_is_left_and_reported(tmp_path: Path) -> None:
    """A Moebius strip has no consistent winding: kept as read, reported."""
    n = 24
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    centre = np.column_stack([100 * np.cos(t), 100 * np.sin(t), np.zeros(n)])
    across = np.column_stack([np.cos(t / 2) * np.cos(t), np.cos(t / 2) * np.sin(t), np.sin(t / 2)])
    vertices = np.vstack([centre - 20 * across, centre + 20 * across])
    faces = []
    for i in range(n):
        j = (i + 1) % n
        a, b = i, i + n
        c, d = (j, j + n) if j else (j + n, j)  # the half twist joins the edges crosswise
        faces += [[a, c, b], [b, c, d]]
    path = write_ascii_ply(tmp_path / "moebius.ply", vertices, np.array(faces))
    loaded = load_mesh(path)
    assert any(w.startswith("inconsistent face winding") for w in loaded.warnings)
    assert not any("inside-out" in w for w in loaded.warnings)


def test_zero_area_faces_are_dropped(tmp_path: Path) -> None:
    """A face whose corners lie on one line (a sliver at a T-junction) goes, with a note."""
    mesh = box()
    a, b, c = mesh.faces[0]
    v = np.vstack([mesh.vertices, (mesh.vertices[a] + mesh.vertices[b]) / 2])
    m = len(mesh.vertices)
    faces = np.vstack([[[a, m, c], [m, b, c], [a, b, m]], mesh.faces[1:]])
    path = write_ascii_ply(tmp_path / "sliver.ply", v, faces)
    loaded = load_mesh(path)
    assert "dropped 1 zero-area faces (corners on one line)" in loaded.warnings
    # the face across the sliver's long edge is split at its middle corner: still closed
    assert len(loaded.mesh.faces) == len(mesh.faces) + 2
    assert loaded.watertight and loaded.mesh.is_winding_consistent
    assert loaded.mesh.area == pytest.approx(mesh.area)
    assert loaded.mesh.volume == pytest.approx(mesh.volume)
    assert not any("inside-out" in w for w in loaded.warnings)


def test_name_is_used_for_display_and_errors(tmp_path: Path) -> None:
    path = tmp_path / "upload_3f9a.stl"
    sphere().export(path)
    assert load_mesh(path, name="left hip.stl").path == "left hip.stl"
    empty = tmp_path / "upload_0000.stl"
    empty.write_bytes(b"")
    with pytest.raises(InputError) as excinfo:
        load_mesh(empty, name="right hip.stl")
    assert_clear_error(excinfo, "right hip.stl", "file is empty (0 bytes)")


def test_loaded_mesh_is_frozen(tmp_path: Path) -> None:
    path = tmp_path / "ball.stl"
    sphere().export(path)
    loaded = load_mesh(str(path))
    with pytest.raises(dataclasses.FrozenInstanceError):
        loaded.units = "m"  # type: ignore[misc]


# --------------------------------------------------------------------------
# bad input: one line, naming the file
# --------------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputError) as excinfo:
        load_mesh(tmp_path / "bone.stl")
    assert_clear_error(excinfo, "bone.stl", "no such file")


def test_directory(tmp_path: Path) -> None:
    folder = tmp_path / "scans.stl"
    folder.mkdir()
    with pytest.raises(InputError) as excinfo:
        load_mesh(folder)
    assert_clear_error(excinfo, "scans.stl", "is a directory")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs os.mkfifo")
def test_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.stl"
    os.mkfifo(fifo)
    with pytest.raises(InputError) as excinfo:
        load_mesh(fifo)
    assert_clear_error(excinfo, "pipe.stl", "not a regular file")


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "pelvis.stl"
    path.write_bytes(b"")
    with pytest.raises(InputError) as excinfo:
        load_mesh(path)
    assert_clear_error(excinfo, "pelvis.stl", "file is empty (0 bytes)")


@pytest.mark.parametrize(
    ("file_name", "fragment"),
    [
        ("x.foo", "unsupported format '.foo'; use STL, PLY, OBJ, OFF, GLB"),
        ("x.stl.gz", "unsupported format '.stl.gz'"),
        ("x", "no file extension"),
    ],
)
def test_unsupported_format(tmp_path: Path, file_name: str, fragment: str) -> None:
    path = tmp_path / file_name
    path.write_bytes(b"solid x\nendsolid x\n")
    with pytest.raises(InputError) as excinfo:
        load_mesh(path)
    assert_clear_error(excinfo, file_name, fragment, "NIfTI (.nii, .nii.gz)")


def test_suffix_is_case_insensitive(tmp_path: Path) -> None:
    path = tmp_path / "PELVIS.STL"
    sphere().export(path, file_type="stl")
    assert load_mesh(path).watertight


@pytest.mark.parametrize("suffix", SUPPORTED_SUFFIXES)
def test_garbage_fails_fast(tmp_path: Path, suffix: str, capfd: pytest.CaptureFixture) -> None:
    rng = np.random.default_rng(abs(hash(suffix)) % 2**32)
    path = tmp_path / f"scan{suffix}"
    path.write_bytes(rng.integers(0, 256, 50_000, dtype=np.uint8).tobytes())
    start = time.perf_counter()
    with pytest.raises(InputError) as excinfo:
        load_mesh(path)
    elapsed = time.perf_counter() - start
    assert_clear_error(excinfo, f"scan{suffix}")
    assert "no triangles" not in str(excinfo.value)  # says the file is unreadable
    assert elapsed < 2.0
    captured = capfd.readouterr()
    assert captured.err == "", f"the reader printed to stderr: {captured.err[:200]}"


@pytest.mark.parametrize("suffix", [".stl", ".ply", ".obj", ".glb", ".vtp", ".vtk"])
def test_truncated_file(tmp_path: Path, suffix: str, capfd: pytest.CaptureFixture) -> None:
    whole = tmp_path / f"whole{suffix}"
    if suffix in (".vtp", ".vtk"):
        write_pyvista(sphere(subdivisions=4), whole)
    else:
        sphere(subdivisions=4).export(whole)
    data = whole.read_bytes()
    path = tmp_path / f"cut{suffix}"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError) as excinfo:
        load_mesh(path)
    assert_clear_error(excinfo, f"cut{suffix}")
    assert capfd.readouterr().err == ""


def test_binary_stl_with_no_triangles(tmp_path: Path) -> None:
    path = tmp_path / "hollow.stl"
    path.write_bytes(b"\0" * 80 + np.uint32(0).tobytes())
    with pytest.raises(InputError) as excinfo:
        load_mesh(path)
    assert_clear_error(excinfo, "hollow.stl", "contains no triangles")


def test_point_cloud_has_no_triangles(tmp_path: Path) -> None:
    path = write_ascii_ply(tmp_path / "cloud.ply", sphere().vertices)
    with pytest.raises(InputError) as excinfo:
        load_mesh(path)
    assert_clear_error(excinfo, "cloud.ply", "contains no triangles")


def test_nan_coordinates(tmp_path: Path) -> None:
    mesh = sphere()
    vertices = mesh.vertices.copy()
    vertices[[3, 10, 20]] = [np.nan, 0.0, np.inf]
    path = write_ascii_ply(tmp_path / "femur.ply", vertices, mesh.faces)
    with pytest.raises(InputError) as excinfo:
        load_mesh(path)
    assert_clear_error(excinfo, "femur.ply", "3 vertices have NaN or infinite coordinates")


def test_thousands_separator_in_counts(tmp_path: Path) -> None:
    mesh = sphere(subdivisions=4)
    vertices = mesh.vertices.copy()
    vertices[:1204] = np.nan
    path = write_ascii_ply(tmp_path / "femur.ply", vertices, mesh.faces)
    with pytest.raises(InputError) as excinfo:
        load_mesh(path)
    assert_clear_error(excinfo, "femur.ply", "1,204 vertices have NaN or infinite coordinates")


def test_too_few_faces(tmp_path: Path) -> None:
    path = write_ascii_ply(
        tmp_path / "tri.ply", [[0, 0, 0], [100, 0, 0], [0, 100, 0], [0, 0, 100]], [[0, 1, 2]]
    )
    with pytest.raises(InputError) as excinfo:
        load_mesh(path)
    assert_clear_error(excinfo, "tri.ply", "at least 4")


def test_all_vertices_coincide(tmp_path: Path) -> None:
    mesh = box()
    path = write_ascii_ply(tmp_path / "point.ply", np.zeros_like(mesh.vertices), mesh.faces)
    with pytest.raises(InputError) as excinfo:
        load_mesh(path)
    assert_clear_error(excinfo, "point.ply", "no triangles")


def test_face_index_out_of_range(tmp_path: Path) -> None:
    mesh = box()
    faces = mesh.faces.copy()
    faces[5, 1] = 99
    path = write_ascii_ply(tmp_path / "broken.ply", mesh.vertices, faces)
    with pytest.raises(InputError) as excinfo:
        load_mesh(path)
    assert_clear_error(excinfo, "broken.ply")


def test_labels_for_a_mesh_file(tmp_path: Path) -> None:
    path = tmp_path / "bone.stl"
    sphere().export(path)
    with pytest.raises(InputError) as excinfo:
        load_mesh(path, labels=[1])
    assert_clear_error(excinfo, "bone.stl", "only to NIfTI")


def test_bad_units_argument(tmp_path: Path) -> None:
    path = tmp_path / "bone.stl"
    sphere().export(path)
    with pytest.raises(InputError, match="units must be"):
        load_mesh(path, units="inch")  # type: ignore[arg-type]


# --------------------------------------------------------------------------
# NIfTI label maps
# --------------------------------------------------------------------------


@pytest.mark.parametrize("flip_x", [True, False])
def test_nifti_ellipsoid_round_trip(tmp_path: Path, flip_x: bool) -> None:
    affine = nifti_affine((0.8, 1.0, 1.5), (-40.0, 25.0, 60.0), flip_x=flip_x)
    assert (np.linalg.det(affine[:3, :3]) < 0) == flip_x
    centre = affine[:3, :3] @ np.array([44.0, 34.0, 20.0]) + affine[:3, 3]
    path = write_label_map(tmp_path / "seg.nii.gz", affine, centre)
    loaded = load_mesh(path, labels=[2])
    mesh = loaded.mesh
    analytic = 4.0 / 3.0 * np.pi * np.prod(ELLIPSOID_AXES)
    assert mesh.volume > 0  # outward faces, also for a mirroring affine
    assert mesh.volume == pytest.approx(analytic, rel=0.03)
    assert loaded.watertight and mesh.is_watertight and mesh.is_winding_consistent
    assert loaded.n_bodies == 1
    assert loaded.units == "mm" and loaded.scale_to_mm == 1.0
    assert loaded.warnings == ()
    assert loaded.path == "seg.nii.gz:2"
    np.testing.assert_allclose(mesh.center_mass, centre, atol=0.3)
    # the ellipsoid's axes are the world axes: its extent says the affine was applied
    np.testing.assert_allclose(mesh.extents, 2 * ELLIPSOID_AXES, atol=2.0)


def test_nifti_label_selection(tmp_path: Path) -> None:
    affine = nifti_affine((1.0, 1.0, 1.5), (0.0, 0.0, 0.0), flip_x=True)
    centre = affine[:3, :3] @ np.array([44.0, 34.0, 20.0]) + affine[:3, 3]
    path = write_label_map(tmp_path / "seg.nii.gz", affine, centre)
    everything = load_mesh(path)
    assert everything.n_bodies == 2
    assert "2 separate bodies" in everything.warnings
    cube = load_mesh(path, labels=[5])
    assert cube.n_bodies == 1
    # a 4x4x4-voxel cube: marching cubes cuts its corners a little
    assert 0.6 * 64 * 1.5 < cube.mesh.volume < 64 * 1.5
    both = load_mesh(path, labels=(2, 5))
    assert both.mesh.volume == pytest.approx(everything.mesh.volume)
    assert load_mesh(f"{path}:2,5").mesh.volume == pytest.approx(both.mesh.volume)


def test_nifti_missing_label_lists_labels_found(tmp_path: Path) -> None:
    affine = nifti_affine((1.0, 1.0, 1.0), (0.0, 0.0, 0.0), flip_x=False)
    path = write_label_map(tmp_path / "seg.nii.gz", affine, affine[:3, :3] @ [44, 34, 20])
    with pytest.raises(InputError) as excinfo:
        load_mesh(path, labels=[7])
    assert_clear_error(excinfo, "seg.nii.gz", "label 7 not present; labels found: 2, 5")
    with pytest.raises(InputError) as excinfo:
        load_mesh(path, labels=[2, 7, 8])
    assert_clear_error(excinfo, "seg.nii.gz", "labels 7, 8 not present; labels found: 2, 5")
    with pytest.raises(InputError) as excinfo:
        load_label_map(path, labels=[0])
    assert_clear_error(excinfo, "seg.nii.gz", "background")


def test_nifti_empty_label_map(tmp_path: Path) -> None:
    import nibabel as nib

    path = tmp_path / "blank.nii"
    nib.save(nib.Nifti1Image(np.zeros((8, 8, 8), np.uint8), np.eye(4)), str(path))
    with pytest.raises(InputError) as excinfo:
        load_mesh(path)
    assert_clear_error(excinfo, "blank.nii", "no labelled voxels")


def test_nifti_4d_is_refused(tmp_path: Path) -> None:
    import nibabel as nib

    path = tmp_path / "series.nii.gz"
    nib.save(nib.Nifti1Image(np.ones((6, 6, 6, 3), np.uint8), np.eye(4)), str(path))
    with pytest.raises(InputError) as excinfo:
        load_mesh(path)
    assert_clear_error(excinfo, "series.nii.gz", "4D", "expected a 3D label map")


def test_nifti_non_integer_is_refused(tmp_path: Path) -> None:
    import nibabel as nib

    data = np.zeros((10, 10, 10), np.float32)
    data[3:7, 3:7, 3:7] = 0.37
    path = tmp_path / "prob.nii.gz"
    nib.save(nib.Nifti1Image(data, np.eye(4)), str(path))
    with pytest.raises(InputError) as excinfo:
        load_mesh(path)
    assert_clear_error(excinfo, "prob.nii.gz", "not a label map", "not integers")


def test_nifti_intensity_image_is_refused(tmp_path: Path) -> None:
    import nibabel as nib

    data = np.full((10, 10, 10), -1000, np.int16)
    data[3:7, 3:7, 3:7] = 700
    path = tmp_path / "ct.nii.gz"
    nib.save(nib.Nifti1Image(data, np.eye(4)), str(path))
    with pytest.raises(InputError) as excinfo:
        load_mesh(path)
    assert_clear_error(excinfo, "ct.nii.gz", "intensity image")
    # with explicit labels the user knows what the values mean
    cube = load_mesh(path, labels=[700], units="mm")
    assert cube.watertight


def test_nifti_float_labels_with_integer_values(tmp_path: Path) -> None:
    import nibabel as nib

    data = np.zeros((40, 40, 40), np.float32)
    data[5:35, 5:35, 5:35] = 3.0
    path = tmp_path / "float_labels.nii"
    nib.save(nib.Nifti1Image(data, np.diag([2.0, 2.0, 2.0, 1.0])), str(path))
    loaded = load_mesh(path, labels=[3])
    assert loaded.watertight
    np.testing.assert_allclose(loaded.mesh.extents, [60.0, 60.0, 60.0], atol=2.0)


def test_nifti_in_metres(tmp_path: Path) -> None:
    import nibabel as nib

    data = np.zeros((40, 40, 40), np.uint8)
    data[5:35, 5:35, 5:35] = 1
    image = nib.Nifti1Image(data, np.diag([0.002, 0.002, 0.002, 1.0]))
    image.header.set_xyzt_units("meter")
    path = tmp_path / "metres.nii.gz"
    nib.save(image, str(path))
    loaded = load_mesh(path)
    assert loaded.units == "m" and loaded.scale_to_mm == 1000.0
    np.testing.assert_allclose(loaded.mesh.extents, [60.0, 60.0, 60.0], atol=2.0)
    np.testing.assert_allclose(load_label_map(path).extents, [60.0, 60.0, 60.0], atol=2.0)


def test_load_label_map_step_size(tmp_path: Path) -> None:
    affine = nifti_affine((0.8, 1.0, 1.5), (10.0, -20.0, 5.0), flip_x=True)
    centre = affine[:3, :3] @ np.array([44.0, 34.0, 20.0]) + affine[:3, 3]
    path = write_label_map(tmp_path / "seg.nii", affine, centre)
    fine = load_label_map(path, labels=[2])
    coarse = load_label_map(path, labels=[2], step_size=2)
    assert isinstance(fine, trimesh.Trimesh)
    assert len(coarse.faces) < len(fine.faces) / 2
    for mesh in (fine, coarse):
        assert mesh.is_watertight and mesh.volume > 0
    analytic = 4.0 / 3.0 * np.pi * np.prod(ELLIPSOID_AXES)
    assert fine.volume == pytest.approx(analytic, rel=0.03)
    assert coarse.volume == pytest.approx(analytic, rel=0.10)
    with pytest.raises(InputError, match="step_size"):
        load_label_map(path, step_size=0)


def test_load_label_map_refuses_meshes(tmp_path: Path) -> None:
    path = tmp_path / "bone.stl"
    sphere().export(path)
    with pytest.raises(InputError) as excinfo:
        load_label_map(path)
    assert_clear_error(excinfo, "bone.stl", "not a NIfTI label map")


# --------------------------------------------------------------------------
# path specs
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "path", "labels"),
    [
        ("seg.nii.gz:1,2", "seg.nii.gz", (1, 2)),
        ("seg.nii.gz:7", "seg.nii.gz", (7,)),
        ("seg.nii.gz: 1, 2", "seg.nii.gz", (1, 2)),
        ("seg.nii.gz:2,2,1", "seg.nii.gz", (2, 1)),
        ("dir/seg.nii:3", "dir/seg.nii", (3,)),
        ("seg.nii.gz", "seg.nii.gz", None),
        ("pelvis.stl", "pelvis.stl", None),
        ("C:\\data\\pelvis.stl", "C:\\data\\pelvis.stl", None),
        ("C:\\data\\seg.nii.gz:4,5", "C:\\data\\seg.nii.gz", (4, 5)),
        ("a:b/seg.nii.gz", "a:b/seg.nii.gz", None),
        ("seg.nii.gz:1,x", "seg.nii.gz:1,x", None),
        ("seg.nii.gz:", "seg.nii.gz:", None),
    ],
)
def test_parse_path_spec(spec: str, path: str, labels: tuple[int, ...] | None) -> None:
    assert parse_path_spec(spec) == (Path(path), labels)


def test_parse_path_spec_without_file() -> None:
    with pytest.raises(InputError):
        parse_path_spec(":1,2")


# --------------------------------------------------------------------------
# imports and speed
# --------------------------------------------------------------------------


def test_import_does_not_load_heavy_readers() -> None:
    code = (
        "import sys, hipviz.io\n"
        "heavy = [m for m in ('pyvista', 'vtkmodules', 'nibabel', 'skimage') if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=REPO, check=True
    )
    assert result.stdout.strip() == ""


def test_large_binary_stl_loads_quickly(tmp_path: Path) -> None:
    parts = [sphere(radius=60.0, subdivisions=6), sphere(radius=20.0, subdivisions=4)]
    parts[1].apply_translation([150.0, 0.0, 0.0])
    mesh = trimesh.util.concatenate(parts)
    assert len(mesh.faces) > 85_000
    path = tmp_path / "big.stl"
    mesh.export(path)
    load_mesh(path)  # warm up imports
    timings = []
    for _ in range(3):
        start = time.perf_counter()
        loaded = load_mesh(path)
        timings.append(time.perf_counter() - start)
    assert len(loaded.mesh.vertices) == len(mesh.vertices)
    assert loaded.n_bodies == 2 and loaded.watertight
    assert min(timings) < 0.5, f"best of 3 loads took {min(timings):.3f} s"


# --------------------------------------------------------------------------
# real bone meshes (licence-restricted, read in place, never copied)
# --------------------------------------------------------------------------

VALIDATION_PLYS = sorted(VALIDATION.glob("*/*.ply")) if VALIDATION.is_dir() else []


@pytest.mark.validation
@pytest.mark.parametrize(
    "path",
    VALIDATION_PLYS or [None],
    ids=[f"{p.parent.name}/{p.name}" for p in VALIDATION_PLYS] or ["absent"],
)
def test_validation_meshes_load_as_mm(path: Path | None) -> None:
    if path is None:
        pytest.skip(f"validation meshes not found in {VALIDATION}")
    loaded = load_mesh(path)
    raw = trimesh.load_mesh(path, process=False)
    assert loaded.units == "mm" and loaded.scale_to_mm == 1.0
    assert 50.0 < loaded.mesh.extents.max() < 600.0
    assert isinstance(loaded.watertight, bool)
    assert loaded.watertight == raw.is_watertight
    # the files have shared vertices already: nothing is reordered
    np.testing.assert_array_equal(loaded.mesh.vertices, raw.vertices)
    np.testing.assert_array_equal(loaded.mesh.faces, raw.faces)
    expected_bodies = 2 if path.name.startswith("pelvis") else 1  # left+right hip bones
    assert loaded.n_bodies == expected_bodies
    assert (f"{expected_bodies} separate bodies" in loaded.warnings) == (expected_bodies > 1)
    assert loaded.mesh.volume > 0
