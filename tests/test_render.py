"""The scene builder: angles drawn where they are measured, head colours, pictures."""

import numpy as np
import pytest

from hipviz import datasets, render
from hipviz import osteotomy as ost
from hipviz.geometry import unit
from hipviz.simulate import Simulation


@pytest.fixture(scope="module")
def sim():
    h = datasets.socket_hip(columns=True, segments=120)
    s = Simulation(h.pelvis, h.femur, frame="ras", n_directions=4000)
    s.cut("pao")
    return s


def angle_between(a, b) -> float:
    return float(np.degrees(np.arccos(np.clip(unit(a) @ unit(b), -1, 1))))


@pytest.mark.parametrize("lateral", [0.0, 12.0])
def test_centre_edge_lines_show_the_measured_angles(sim, lateral):
    out = sim.move(ost.AcetabularMove(lateral_deg=lateral))
    lines = render.measure_lines(sim, out)
    c = out.head_center_after_mm
    for key, value in (("lcea", out.after["lcea_deg"]), ("acea", out.after["acea_deg"])):
        ref = lines[f"{key}_reference"].points
        edge = lines[f"{key}_edge"].points
        np.testing.assert_allclose(ref[0], c)
        np.testing.assert_allclose(edge[0], c)
        assert angle_between(ref[1] - c, sim.axes.superior) < 1e-9
        # the edge line lies in the measuring plane, at the measured angle
        normal = sim.axes.anterior if key == "lcea" else sim.axes.lateral
        assert abs(unit(edge[1] - c) @ normal) < 1e-6
        assert angle_between(ref[1] - c, edge[1] - c) == pytest.approx(abs(value), abs=1e-6)
        assert f"{value:.0f}°" in lines[f"{key}_arc"].label


def test_version_line_joins_the_rim_edges_in_the_axial_plane(sim):
    out = sim.move()
    line = render.measure_lines(sim, out, only=("version",))["version_rim"].points
    back, front = line
    assert abs((front - back) @ sim.axes.superior) < 1e-6
    d = unit(front - back)
    # version: the rim line's angle from the sagittal (anterior) direction
    version = np.degrees(np.arctan2(d @ sim.axes.lateral, d @ sim.axes.anterior))
    assert abs(version) == pytest.approx(abs(out.after["acetabular_version_deg"]), abs=1e-6)


def test_head_colouring_follows_the_covered_directions(sim):
    femur = sim.femur
    dirs = sim.axes.from_las(sim._las)
    coloring = render.HeadColoring(femur.vertices, sim.center_mm, sim.radius_mm, dirs)
    covered = dirs @ sim.axes.superior > 0  # the upper half only
    rgb = coloring(covered)
    on = coloring.on_head
    assert len(on) > 100
    up = (femur.vertices[on] - sim.center_mm) @ sim.axes.superior
    clear = np.abs(up) > 0.05 * sim.radius_mm  # away from the dividing circle
    is_green = np.all(rgb[on] == render.COVERED, axis=1)
    is_red = np.all(rgb[on] == render.UNCOVERED, axis=1)
    assert np.all(is_green[clear] == (up[clear] > 0))
    assert np.all(is_red[clear] == (up[clear] < 0))
    off = np.setdiff1d(np.arange(len(femur.vertices)), on)
    assert np.all(rgb[off] == rgb[off][0])  # the rest keeps the bone colour


def test_scene_poses_and_picture(sim):
    out = sim.move(ost.AcetabularMove(lateral_deg=15, medial_mm=2))
    sc = render.scene(sim, out, labels=True)
    assert set(sc.pieces) == {"pelvis_rest", "acetabular_fragment", "femur"}
    np.testing.assert_allclose(sc.poses["acetabular_fragment"], out.transforms["fragment"])
    assert "head_center" in sc.labels
    img = render.picture(sc, view="anterior", window_size=(320, 240), zoom=1.5)
    assert img.shape == (240, 320, 3)
    background = np.all(img > 245, axis=2)
    assert 0.05 < 1 - background.mean() < 0.95  # bone drawn, not filling everything
    colours = img[~background].reshape(-1, 3)
    assert np.any(np.abs(colours.astype(int) - render.UNCOVERED).sum(axis=1) < 90)


def test_camera_presets():
    pos, focal, up = render.camera("lateral", "left", (1, 2, 3), distance_mm=100)
    np.testing.assert_allclose(np.subtract(pos, focal), [-100, 0, 0])
    pos, focal, up = render.camera("false_profile", "right", (0, 0, 0), distance_mm=1)
    assert pos[0] > 0 and pos[1] > 0 and up == (0.0, 0.0, 1.0)
    with pytest.raises(ValueError, match="unknown view"):
        render.camera("oblique", "left", (0, 0, 0))


def test_split_far_partitions_the_triangles():
    import trimesh

    mesh = trimesh.creation.icosphere(subdivisions=3, radius=50.0)
    pts, tri = np.asarray(mesh.vertices), np.asarray(mesh.faces)
    centre = np.array([50.0, 0.0, 0.0])
    (near_p, near_t), (far_p, far_t) = render.split_far(pts, tri, centre, 40.0)
    assert len(near_t) + len(far_t) == len(tri) and len(near_t) and len(far_t)
    near_corners, far_corners = near_p[near_t], far_p[far_t]
    assert np.all(np.linalg.norm(far_corners - centre, axis=2) > 40.0)
    assert np.all((np.linalg.norm(near_corners - centre, axis=2) <= 40.0).any(axis=1))

    # together they are the triangles we started from
    def triangle_set(corners):
        return sorted(map(tuple, corners.round(6).reshape(-1, 9)))

    assert triangle_set(np.vstack([near_corners, far_corners])) == triangle_set(pts[tri])
