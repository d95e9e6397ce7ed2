"""The same surface meshed differently measures the same.

Re-meshings that keep the surface: flat subdivision (each triangle into four, no
smoothing; once and twice), quadric decimation to half the triangles (VTK, through
pyvista), and a different triangulation of the same surface (a centroid in every
triangle, then every old edge flipped: a triangulation sharing no edge with the
original). Alpha must hold within 0.5 deg, sphericity within 0.2 mm, every other
angle within 0.5 deg, coverage within 1 percentage point.
"""

from __future__ import annotations

import numpy as np
import pytest
import trimesh

from hipviz import cases, hip

ALPHA_DEG = 0.5
SPHERICITY_MM = 0.2
ANGLE_DEG = 0.5
# Coverage counts directions whose first hit lies within r + 5 mm: where decimation moves
# the surface by a tenth of a millimetre near that reach, a few directions change side.
COVERAGE_PCT = 1.0
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
)


def subdivide(mesh: trimesh.Trimesh, times: int = 1) -> trimesh.Trimesh:
    v, f = np.asarray(mesh.vertices), np.asarray(mesh.faces)
    for _ in range(times):
        v, f = trimesh.remesh.subdivide(v, f)
    return trimesh.Trimesh(v, f, process=False)


def decimate(mesh: trimesh.Trimesh) -> trimesh.Trimesh:
    import pyvista as pv

    poly = pv.PolyData.from_regular_faces(np.asarray(mesh.vertices), np.asarray(mesh.faces))
    out = poly.decimate(0.5)  # vtkQuadricDecimation
    return trimesh.Trimesh(np.asarray(out.points), np.asarray(out.regular_faces), process=False)


def retriangulate(mesh: trimesh.Trimesh) -> trimesh.Trimesh:
    """Insert every triangle's centroid, then flip every old edge (between two centroids).

    The old edge (a, b) shared by faces i (a -> b) and j (b -> a) becomes the two
    triangles (a, c_j, c_i) and (b, c_i, c_j); open edges keep (a, b, c_i).
    """
    v, f = np.asarray(mesh.vertices), np.asarray(mesh.faces)
    n_v, n_f = len(v), len(f)
    centroid = n_v + np.arange(n_f)
    half = f[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2)
    owner = np.repeat(np.arange(n_f), 3)
    key = half[:, 0] * n_v + half[:, 1]
    order = np.argsort(key)
    twin_key = half[:, 1] * n_v + half[:, 0]
    pos = np.clip(np.searchsorted(key[order], twin_key), 0, len(key) - 1)
    has_twin = key[order][pos] == twin_key
    twin_owner = owner[order][pos]
    a, b, ci = half[:, 0], half[:, 1], centroid[owner]
    cj = centroid[twin_owner]
    once = has_twin & (a < b)  # each shared edge once
    faces = np.vstack(
        [
            np.column_stack([a[once], cj[once], ci[once]]),
            np.column_stack([b[once], ci[once], cj[once]]),
            np.column_stack([a[~has_twin], b[~has_twin], ci[~has_twin]]),
        ]
    )
    return trimesh.Trimesh(np.vstack([v, v[f].mean(axis=1)]), faces, process=False)


REMESHINGS = {
    "subdivided": subdivide,
    "subdivided twice": lambda m: subdivide(m, 2),
    "decimated to half": decimate,
    "retriangulated": retriangulate,
}


def test_retriangulation_keeps_the_surface_and_changes_every_edge():
    sphere = trimesh.creation.icosphere(subdivisions=3, radius=25.0)
    other = retriangulate(sphere)
    assert other.is_watertight and other.is_winding_consistent
    assert other.volume == pytest.approx(sphere.volume, rel=0.02)
    assert len(other.faces) == 3 * len(sphere.faces)
    old = {tuple(e) for e in sphere.edges_unique}
    assert not old & {tuple(e) for e in other.edges_unique}


def compare(a: dict, b: dict, label: str) -> None:
    for key in ANGLES:
        if b[key] is None:
            assert a[key] is None, (label, key)
        else:
            assert a[key] == pytest.approx(b[key], abs=ANGLE_DEG), (label, key)
    assert a["alpha_deg"] == pytest.approx(b["alpha_deg"], abs=ALPHA_DEG), label
    assert a["sphericity_mm"] == pytest.approx(b["sphericity_mm"], abs=SPHERICITY_MM), label
    assert a["head_radius_mm"] == pytest.approx(b["head_radius_mm"], abs=0.1), label
    for key, value in (b["coverage_pct"] or {}).items():
        assert a["coverage_pct"][key] == pytest.approx(value, abs=COVERAGE_PCT), (label, key)


def check(pelvis, femur, names, *, remesh_pelvis=True, **kwargs) -> None:
    reference = hip.analyze(pelvis, femur, **kwargs).as_dict()
    for name in names:
        remesh = REMESHINGS[name]
        pelvis_r = remesh(pelvis) if remesh_pelvis else pelvis
        compare(hip.analyze(pelvis_r, remesh(femur), **kwargs).as_dict(), reference, name)


@pytest.mark.parametrize("name", list(REMESHINGS))
def test_builtin_hip(builtin_left, name):
    check(builtin_left.pelvis, builtin_left.femur, [name])


@pytest.mark.parametrize("case", ["cam", "dysplastic"])
def test_teaching_cases(case):
    h = cases.case_hip(case)
    check(h.pelvis, h.femur, ["subdivided", "decimated to half", "retriangulated"])


def test_ct_specimen(specimen):
    pelvis, femur = specimen("lhdl_ct_staple")
    check(pelvis, femur, ["subdivided", "decimated to half", "retriangulated"])


def test_mri_specimen_femur(specimen):
    pelvis, femur = specimen("icl_mri_staple")
    check(pelvis, femur, ["subdivided", "decimated to half", "retriangulated"], remesh_pelvis=False)


def test_mri_specimen_pelvis_in_scanner_axes(specimen):
    """The pelvis re-meshed too, measured in its own axes (the APP search is vertex-based)."""
    pelvis, femur = specimen("icl_mri_staple")
    check(pelvis, femur, ["subdivided", "decimated to half", "retriangulated"], frame="lps")


def test_surface_samples_cap_ends_on_a_mesh_of_many_small_faces(monkeypatch):
    """Over the sample cap with every face already below the spacing: one sample per face."""
    from hipviz import landmarks

    sphere = trimesh.creation.icosphere(subdivisions=3, radius=20.0)  # 1280 faces, ~2 mm
    monkeypatch.setattr(landmarks, "MAX_SAMPLES", 100)
    pts, _, wts = landmarks.surface_samples(sphere, 0.5)
    assert len(pts) == len(sphere.faces)
    assert np.isclose(wts.sum(), sphere.area)


def test_face_set_follows_an_edited_mesh():
    """The shared per-mesh face arrays are rebuilt when the mesh's vertices change."""
    from hipviz import landmarks

    mesh = trimesh.creation.icosphere(subdivisions=2, radius=10.0)
    first = landmarks.FaceSet.of(mesh)
    assert landmarks.FaceSet.of(mesh) is first
    mesh.vertices[:, 0] += 5.0
    moved = landmarks.FaceSet.of(mesh)
    assert moved is not first
    assert np.allclose(moved.centroids.mean(axis=0), first.centroids.mean(axis=0) + [5, 0, 0])
    inside_out = mesh.copy()
    inside_out.invert()
    assert np.allclose(landmarks.FaceSet.of(inside_out).normals, moved.normals)
