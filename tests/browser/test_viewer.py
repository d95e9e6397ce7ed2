"""SceneView in a real browser: what reaches the screen after each kind of change.

The scene: a red ball at the origin, a blue box toward the patient's right
(+x) and a green cube in front (+y), all mm, RAS. Pictures are read back as
pixels and classified by colour.
"""

from __future__ import annotations

import io
import threading

import numpy as np
import pytest
import trimesh

pytest.importorskip("panel")
pytest.importorskip("pytest_playwright")

# Skipped by conftest.py where /usr/bin/chromium is absent.
pytestmark = pytest.mark.browser

BOX_AT = np.array([45.0, 0.0, 0.0])  # patient right
CUBE_AT = np.array([0.0, 45.0, 0.0])  # anterior


def translation(x=0.0, y=0.0, z=0.0) -> np.ndarray:
    tf = np.eye(4)
    tf[:3, 3] = (x, y, z)
    return tf


def build_scene() -> dict:
    from hipviz.app.viewer import SceneView

    view = SceneView(width=480, height=360, side="left")
    ball = trimesh.creation.icosphere(subdivisions=3, radius=20.0)
    box = trimesh.creation.box(extents=(20, 20, 20))
    cube = trimesh.creation.box(extents=(12, 12, 12))
    view.set_mesh("ball", ball.vertices, ball.faces, color="#ff0000")
    view.set_mesh("box", box.vertices + BOX_AT, box.faces, color="#0000ff", smooth=False)
    view.set_mesh("cube", cube.vertices + CUBE_AT, cube.faces, color="#00ff00", smooth=False)
    return {"app": view, "view": view}


@pytest.fixture(scope="module")
def served(serve):
    return serve(build_scene)


# --- helpers ---------------------------------------------------------------


def png_pixels(png: bytes) -> np.ndarray:
    """(h, w, 3) uint8 of a PNG."""
    from PIL import Image

    with Image.open(io.BytesIO(png)) as img:
        return np.asarray(img.convert("RGB"))


def frames(page) -> int:
    return page.evaluate("window.__hipvizTimes ? window.__hipvizTimes.frames : 0")


def open_scene(page, served):
    page.goto(served.url)
    page.wait_for_function(
        "window.__hipvizTimes && window.__hipvizTimes.firstPicture != null", timeout=30_000
    )
    return served.last["view"]


def change(page, served, fn) -> None:
    """Run ``fn`` on the server, then wait until the browser has drawn a new frame."""
    n = frames(page)
    served.on_server(fn)
    page.wait_for_function(f"window.__hipvizTimes.frames > {n}", timeout=10_000)
    page.wait_for_timeout(50)


def picture(page) -> np.ndarray:
    return png_pixels(page.locator(".hipviz-scene").screenshot())


def mask(img: np.ndarray, color: str) -> np.ndarray:
    r, g, b = (img[..., i].astype(int) for i in range(3))
    lo = lambda a, *others: np.all([a > 2 * o + 20 for o in others], axis=0)  # noqa: E731
    return {
        "red": (r > 60) & lo(r, g, b),
        "green": (g > 60) & lo(g, r, b),
        "blue": (b > 60) & lo(b, r, g),
        "cyan": (g > 60) & (b > 60) & (r * 2 + 20 < np.minimum(g, b)),
        "magenta": (r > 60) & (b > 60) & (g * 2 + 20 < np.minimum(r, b)),
        "yellow": (r > 200) & (g > 200) & (b < 90),
        "drawn": img.min(axis=2) < 235,
    }[color]


def centroid(img: np.ndarray, color: str) -> np.ndarray:
    """(column, row) of the pixels of ``color``; fails when there are too few."""
    m = mask(img, color)
    assert m.sum() > 30, f"no {color} in the picture ({m.sum()} pixels)"
    rows, cols = np.nonzero(m)
    return np.array([cols.mean(), rows.mean()])


# --- tests -----------------------------------------------------------------


def test_scene_is_drawn(page, served):
    open_scene(page, served)
    img = picture(page)
    assert img.shape[:2] == (360, 480)
    assert mask(img, "drawn").mean() > 0.03, "the canvas is (nearly) blank"
    for color in ("red", "blue", "green"):
        assert mask(img, color).sum() > 100, f"{color} actor missing"
    # Anterior view: the patient's right (+x, the box) is on the viewer's left.
    assert centroid(img, "blue")[0] < centroid(img, "red")[0] - 50


def test_matrix_moves_the_actor_and_sends_no_geometry(page, served):
    received = []
    page.on("websocket", lambda ws: ws.on("framereceived", lambda p: received.append(len(p))))
    view = open_scene(page, served)
    before = picture(page)
    n0 = len(received)
    change(page, served, lambda: view.set_matrix("box", translation(z=40)))
    after = picture(page)
    # The box moved up on screen (+z is up in the anterior view); the ball stayed.
    assert centroid(after, "blue")[1] < centroid(before, "blue")[1] - 30
    assert np.allclose(centroid(after, "red"), centroid(before, "red"), atol=2)
    assert sum(received[n0:]) < 4000, f"{sum(received[n0:])} bytes sent for a matrix"
    change(page, served, lambda: view.set_matrix("box", None))
    assert np.allclose(centroid(picture(page), "blue"), centroid(before, "blue"), atol=2)


def test_style_hides_and_shows(page, served):
    view = open_scene(page, served)
    change(page, served, lambda: view.set_style("box", visible=False))
    assert mask(picture(page), "blue").sum() == 0
    change(page, served, lambda: view.set_style("box", visible=True, color="#00ff00"))
    img = picture(page)
    assert mask(img, "blue").sum() == 0
    assert centroid(img, "green")[0] < centroid(img, "red")[0]


def test_focal_point_zoom_and_background(page, served):
    view = open_scene(page, served)
    blue_before = mask(picture(page), "blue").sum()

    def zoom():
        view.param.update(
            focal_point=tuple(BOX_AT), view_radius_mm=15.0, background_color="#000000"
        )

    change(page, served, zoom)
    img = picture(page)
    h, w = img.shape[:2]
    assert mask(img, "blue").sum() > 5 * blue_before
    assert np.allclose(centroid(img, "blue"), [w / 2, h / 2], atol=15)  # box centred
    assert img[:10, :10].max() < 20  # black background


def test_mesh_replacement_shows_up_and_travels_as_binary(page, served):
    received = []
    page.on("websocket", lambda ws: ws.on("framereceived", lambda p: received.append(len(p))))
    view = open_scene(page, served)
    red_before = mask(picture(page), "red").sum()
    small = trimesh.creation.icosphere(subdivisions=5, radius=8.0)  # 20k triangles
    n0 = len(received)
    change(page, served, lambda: view.set_mesh("ball", small.vertices, small.faces))
    red_after = mask(picture(page), "red").sum()
    assert 0 < red_after < 0.4 * red_before, (red_before, red_after)
    # float32 points and int32 triangles as raw buffers: no base64 (+33 %), no JSON.
    raw = small.vertices.size * 4 + small.faces.size * 4
    assert raw < sum(received[n0:]) < 1.1 * raw


def test_vertex_colors_show_up(page, served):
    view = open_scene(page, served)
    ball = trimesh.creation.icosphere(subdivisions=3, radius=20.0)
    top = ball.vertices[:, 2] > 0
    colors = np.where(top[:, None], [0, 255, 255], [255, 0, 255]).astype(np.uint8)
    change(page, served, lambda: view.set_colors("ball", colors))
    img = picture(page)
    assert mask(img, "red").sum() < 50
    assert centroid(img, "cyan")[1] < centroid(img, "magenta")[1] - 10  # cyan above
    change(page, served, lambda: view.set_colors("ball", None))
    img = picture(page)
    assert mask(img, "cyan").sum() == 0
    assert mask(img, "red").sum() > 1000


@pytest.mark.parametrize(
    ("side", "view", "expect"),
    [
        # Lateral: the camera on the hip's side; anterior (green) faces that way.
        ("left", "lateral", lambda c: c["green"][0] < c["red"][0] - 20),
        ("right", "lateral", lambda c: c["green"][0] > c["red"][0] + 20),
        # Superior, anterior up: green above, the patient's right (blue) on the right.
        (
            "left",
            "superior",
            lambda c: c["green"][1] < c["red"][1] - 20 and c["blue"][0] > c["red"][0],
        ),
        # False profile of a left hip: between anterior and left lateral.
        ("left", "false_profile", lambda c: c["green"][0] < c["red"][0] - 5),
    ],
)
def test_view_presets(page, served, side, view, expect):
    scene = open_scene(page, served)
    before = picture(page)
    change(page, served, lambda: scene.param.update(side=side, view=view))
    img = picture(page)
    assert np.abs(img.astype(int) - before).max(axis=2).astype(bool).mean() > 0.01
    found = {
        c: centroid(img, c) for c in ("red", "green") + (("blue",) if view == "superior" else ())
    }
    assert expect(found), found


def test_overlays_line_on_top_and_labels(page, served):
    view = open_scene(page, served)

    def add():
        view.set_line("axis", [[0, 0, -30], [0, 0, 30]], color="#ffff00", width=4)
        view.set_label("c", [0, 0, 0], "head centre")

    change(page, served, add)
    img = picture(page)
    yellow = mask(img, "yellow")
    red = centroid(img, "red")
    # Drawn through the ball: yellow at the ball's centre.
    rows, cols = np.nonzero(yellow)
    assert yellow.sum() > 60
    assert np.abs(cols - red[0]).max() < 8
    assert rows.min() < red[1] - 20 < red[1] + 20 < rows.max()
    label = page.get_by_text("head centre")
    assert label.is_visible()
    box = label.bounding_box()
    canvas = page.locator(".hipviz-scene").bounding_box()
    # Anchored at the ball's centre, which the vertical line passes through.
    assert abs(box["x"] - 6 - (canvas["x"] + cols.mean())) < 3
    change(page, served, lambda: view.param.update(show_labels=False))
    assert not page.get_by_text("head centre").is_visible()


def test_screenshot_round_trip(page, served):
    view = open_scene(page, served)
    got: list[bytes] = []
    done = threading.Event()

    def on_png(png: bytes) -> None:
        got.append(png)
        done.set()

    served.on_server(lambda: view.request_screenshot(on_png))
    assert done.wait(10), "no screenshot came back"
    png = got[0]
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    img = png_pixels(png)
    scale = page.evaluate("window.devicePixelRatio")
    assert img.shape[:2] == (round(360 * scale), round(480 * scale))
    assert mask(img, "red").sum() > 100 and mask(img, "blue").sum() > 100
