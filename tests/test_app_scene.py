"""The scene driver's seams for other views: layers, per-vertex value colours, arrows.

Exact answers on chosen numbers; the layer tests run a page outside a server
(everything in the test's thread) and read what the 3D view would send.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("panel")

from hipviz import render  # noqa: E402
from hipviz.app.scene import Overlay, arrow, scalar_colors  # noqa: E402


def test_scalar_colors_interpolate_between_stops_and_clip():
    values = [0.0, 0.5, 1.0, 1.5, 2.0, 3.0, -1.0]
    got = scalar_colors(values, vmin=0.0, vmax=2.0, stops=("#000000", "#ff0000", "#ffffff"))
    want = [
        [0, 0, 0],
        [128, 0, 0],  # halfway to the middle stop (127.5 rounds to even)
        [255, 0, 0],  # the middle stop itself
        [255, 128, 128],
        [255, 255, 255],
        [255, 255, 255],  # above vmax: the last colour
        [0, 0, 0],  # below vmin: the first
    ]
    assert got.dtype == np.uint8
    np.testing.assert_array_equal(got, want)


def test_scalar_colors_give_missing_values_the_missing_colour():
    got = scalar_colors([np.nan, 1.0], vmin=0.0, vmax=1.0, missing="#123456")
    np.testing.assert_array_equal(got[0], [0x12, 0x34, 0x56])
    np.testing.assert_array_equal(got[1], [0xB3, 0x00, 0x00])  # the default scale's last stop


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"values": [[1.0, 2.0]], "vmin": 0.0, "vmax": 1.0}, r"shape \(n,\), got \(1, 2\)"),
        ({"values": [1.0], "vmin": 1.0, "vmax": 1.0}, "vmin < vmax"),
        ({"values": [1.0], "vmin": 0.0, "vmax": np.nan}, "vmin < vmax"),
        ({"values": [1.0], "vmin": 0.0, "vmax": 1.0, "stops": ("#000000",)}, "two colour stops"),
    ],
)
def test_scalar_colors_refuse_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        scalar_colors(**kwargs)


@pytest.mark.parametrize("direction", [[0, 0, 1], [1, 0, 0], [0.3, -0.5, 0.8]])
def test_arrow_points_from_start_to_end_with_a_symmetric_head(direction):
    start = np.array([10.0, -4.0, 7.0])
    u = np.asarray(direction, dtype=float) / np.linalg.norm(direction)
    end = start + 50.0 * u
    lines = arrow(start, end, color="#0055ff", label="1850 N", head_fraction=0.2)
    shaft, head = lines["shaft"], lines["head"]
    np.testing.assert_allclose(shaft.points, [start, end], atol=1e-12)
    assert shaft.label == "1850 N" and shaft.color == head.color == "#0055ff"
    left, tip, right = head.points
    np.testing.assert_allclose(tip, end, atol=1e-12)
    for barb in (left, right):
        back = barb - end
        np.testing.assert_allclose(back @ u, -10.0, atol=1e-9)  # 0.2 of 50 mm behind the tip
        np.testing.assert_allclose(np.linalg.norm(back - (back @ u) * u), 5.0, atol=1e-9)
    np.testing.assert_allclose((left + right) / 2, end - 10.0 * u, atol=1e-9)


def test_arrow_refuses_a_zero_length():
    with pytest.raises(ValueError, match="two different finite points"):
        arrow([1.0, 2.0, 3.0], [1.0, 2.0, 3.0], color="#000000")


@pytest.fixture(scope="module")
def app():
    from hipviz.app.main import HipApp

    app = HipApp(subdivisions=4)
    yield app
    app.close()


def test_a_layer_draws_its_lines_labels_and_colours_with_the_picture(app):
    scene, out = app.scene, app.session.outcome
    femur = scene._femur_key
    center = np.asarray(app.session.sim.center_mm, dtype=float)
    n_femur = len(scene.mesh_points(femur))
    n_pelvis = len(scene.mesh_points("pelvis"))
    red = np.tile(np.array([200, 0, 0], dtype=np.uint8), (n_femur, 1))
    seen = []

    def layer(sim, outcome, plan):
        seen.append((sim, outcome, plan))
        return Overlay(
            lines=arrow(center, center + [0, 0, -40], color="#0055ff", label="load"),
            labels={"peak": render.Label(center, "peak")},
            colors={femur: red, "pelvis": scalar_colors(np.ones(n_pelvis), vmin=0, vmax=1)},
        )

    scene.add_layer("load", layer)
    try:
        scene.pose(out)
    finally:
        scene.remove_layer("load")
    view = scene.view3d
    assert seen == [(app.session.sim, out, app.plan)]
    assert {"load:shaft", "load:head"} <= set(view.lines)
    tip = view.lines["load:shaft"]["points"][1]
    np.testing.assert_allclose(tip, center + [0, 0, -40], atol=5e-4)  # sent to 0.001 mm
    assert view.labels["line:load:shaft"]["text"] == "load"
    assert view.labels["landmark:load:peak"]["text"] == "peak"
    assert any(k.startswith("line:") and not k.startswith("line:load:") for k in view.labels)
    np.testing.assert_array_equal(view._meshes[femur]["colors"].reshape(-1, 3), red)
    np.testing.assert_array_equal(view._meshes["pelvis"]["colors"].reshape(-1, 3)[0], [179, 0, 0])

    # gone with the next picture: the head's coverage colours come back, the pelvis is plain
    scene.pose(out)
    assert not any(k.startswith("load:") for k in view.lines)
    assert not any(":load:" in k for k in view.labels)
    coverage = scene._coloring(out.coverage_after.covered)
    np.testing.assert_array_equal(view._meshes[femur]["colors"].reshape(-1, 3), coverage)
    assert view._meshes["pelvis"]["colors"] is None


def test_a_layer_colours_only_pieces_in_the_view(app):
    scene = app.scene
    scene.add_layer("x", lambda sim, out, plan: Overlay(colors={"no_such_piece": np.zeros((3, 3))}))
    try:
        scene.pose(app.session.outcome)  # no error: the unknown piece is left out
    finally:
        scene.remove_layer("x")
    assert "no_such_piece" not in scene.view3d.mesh_names


def test_a_view_asking_again_for_its_meshes_is_answered_once():
    """The browser repeats "ready" until answered; a repeat crossed in flight sends nothing."""
    from hipviz.app.viewer import SceneView

    view = SceneView()
    view.set_mesh("a", np.eye(3), [[0, 1, 2]])
    sent = []
    view._send_msg = sent.append
    view._handle_msg({"type": "ready", "view": "v1"})
    assert [m["type"] for m in sent] == ["mesh", "synced"]
    view._handle_msg({"type": "ready", "view": "v1"})  # the same view: already answered
    assert len(sent) == 2
    view._handle_msg({"type": "ready", "view": "v2"})  # a new view of it (shown again)
    assert [m["type"] for m in sent[2:]] == ["mesh", "synced"]


def test_explain_side_by_side_shows_the_unmoved_pieces_beside_the_plan(app):
    """The before view gets the main view's pieces (no faint copies), unmoved, linked."""
    from hipviz import render as rnd

    app.__panel__()  # the layout, which the modes show and hide
    app.plan.param.update(procedure="pao", pao_lateral=20.0)
    app.plan.mode = "explain"
    try:
        app.modes.side_by_side = True
        scene = app.scene
        before = scene.before3d
        assert before is not None and scene.views.objects == [before, scene.view3d]
        assert before.camera_link == scene.view3d.camera_link != ""
        assert (before.caption, scene.view3d.caption) == ("Before", "After")
        pieces = [n for n in scene.view3d.mesh_names if not n.startswith(("ghost:", "fix:"))]
        assert sorted(before.mesh_names) == sorted(pieces)
        sim = app.session.sim
        unmoved = rnd.poses(sim, sim.move())
        moved = rnd.poses(sim, app.session.outcome)
        frag = "acetabular_fragment"
        assert np.allclose(np.reshape(before.matrices[frag], (4, 4)), unmoved[frag])
        assert not np.allclose(unmoved[frag], moved[frag])  # the plan does move it
        app.modes.side_by_side = False
        assert scene.views.objects == [scene.view3d] and scene.view3d.caption == ""
    finally:
        app.modes.side_by_side = False
        app.plan.mode = "surgeon"
        app.plan.param.update(procedure="none", pao_lateral=0.0)


def test_the_views_model_gets_each_change_and_its_stylesheets_as_panel_gives_them():
    """SceneView and AddressBar skip Panel's design lookup for changes that are not
    stylesheets (viewer.PlainUpdates): the model must still get the same values."""
    from bokeh.document import Document

    from hipviz.app.viewer import PlainUpdates, SceneView
    from hipviz.app.widgets import AddressBar

    view, bar = SceneView(), AddressBar()
    doc = Document()
    model, bar_model = view.get_root(doc), bar.get_root(Document())
    events = []
    view.param.watch(events.append, "matrices")
    tf = np.eye(4)
    tf[0, 3] = 12.5
    view.set_matrix("femur", tf)
    bar.query = "case=cam&pao_lateral=10"
    assert model.data.matrices == {"femur": [float(v) for v in tf.ravel()]}
    assert bar_model.data.query == "case=cam&pao_lateral=10"
    # the same properties as Panel's own path (the next class after PlainUpdates)
    panels = super(PlainUpdates, view)._update_properties(*events, doc=doc)
    assert view._update_properties(*events, doc=doc) == panels == {"matrices": view.matrices}
    # a stylesheet change still takes Panel's path, with the design's sheets first
    view.stylesheets = [":host { outline: 1px solid red; }"]
    sheets = model.stylesheets
    assert sheets[-1] == ":host { outline: 1px solid red; }"
    assert any("bundled/theme/" in str(getattr(sheet, "url", "")) for sheet in sheets[:-1])
