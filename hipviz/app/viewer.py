"""The app's 3D view: a Panel component that drives vtk.js in the browser.

Meshes cross the websocket once, as binary arrays; after that a slider move
sends only the 4x4 matrices of the actors that moved (a few hundred bytes),
and the browser re-renders without touching the geometry. This is what makes
live sliders possible (see DESIGN.md section 7: ``pn.pane.VTK`` re-sends and
rebuilds the whole scene on every change).

Conventions
-----------
Coordinates are the scene's frame, RAS millimetres (+x patient right,
+y anterior, +z superior). An actor's matrix is ``tf_world_actor``: it takes
the actor's points, as sent, to where they are drawn; 16 floats, row-major.

Which state travels how
-----------------------
* parameters (JSON, re-sent whole on change, all small): ``matrices``,
  ``actors`` (colour, opacity, visibility), ``lines``, ``labels``, camera;
* messages (binary buffers, on demand): mesh points/triangles and per-vertex
  colours. A browser view asks for every mesh when it starts, so meshes set
  before the page opens are not lost; it asks again every 2 s until answered
  (a view added to an open page can ask before the server knows it), naming
  itself, so a repeat is answered once.

The vtk.js used is the copy Panel ships for its own VTK pane, served by the
Panel server from its static routes (no network access needed).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import math
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import panel as pn
import param
from numpy.typing import ArrayLike
from panel.io.resources import bundled_files
from panel.models.vtk import AbstractVTKPlot
from panel.util import classproperty

from hipviz.errors import InputError

VIEWS = ("anterior", "lateral", "superior", "false_profile")
#: Default bone colour, a light ivory.
BONE_COLOR = "#e8dcc8"


def _hex(color: Any, name: str = "color") -> str:
    """``'#rrggbb'`` from a hex string, a CSS colour name or an (r, g, b) in [0, 1]."""
    if isinstance(color, str):
        text = color.strip().lower()
        if text.startswith("#") and len(text) in (4, 7):
            if len(text) == 4:
                text = "#" + "".join(ch * 2 for ch in text[1:])
            try:
                int(text[1:], 16)
            except ValueError:
                pass
            else:
                return text
        from bokeh.colors import named

        if text in named.__all__:
            return getattr(named, text).to_hex()
        msg = f"`{name}` must be '#rrggbb', a CSS colour name or (r, g, b) in [0, 1], got {color!r}"
        raise InputError(msg)
    rgb = np.asarray(color, dtype=float)
    if rgb.shape != (3,) or not np.all((rgb >= 0) & (rgb <= 1)):
        msg = f"`{name}` must be '#rrggbb', a CSS colour name or (r, g, b) in [0, 1], got {color!r}"
        raise InputError(msg)
    return "#" + "".join(f"{round(v * 255):02x}" for v in rgb)


def _matrix16(tf: ArrayLike, name: str) -> list[float]:
    """A (4, 4) transform as 16 row-major floats, checked."""
    m = np.asarray(tf, dtype=float)
    if m.shape == (16,):
        m = m.reshape(4, 4)
    if m.shape != (4, 4):
        msg = f"expected the matrix of `{name}` to have shape (4, 4), got {m.shape}"
        raise InputError(msg)
    if not np.all(np.isfinite(m)):
        msg = f"the matrix of `{name}` has non-finite values"
        raise InputError(msg)
    return [float(v) for v in m.ravel()]


def _point3(p: ArrayLike, name: str) -> list[float]:
    v = np.asarray(p, dtype=float)
    if v.shape != (3,) or not np.all(np.isfinite(v)):
        msg = f"expected `{name}` to be a finite point of shape (3,), got shape {v.shape}"
        raise InputError(msg)
    return [float(c) for c in v]


def parse_camera(data: Any) -> tuple[tuple[tuple[float, ...], ...], float] | None:
    """A browser's camera message as ``((position, focal_point, view_up), view_angle)``.

    The message is the browser's to write: anything but three finite
    3-vectors (a non-zero ``view_up``, a position off the focal point) and a
    view angle in (0, 180) degrees gives None, and the camera is not changed.
    """
    try:
        vecs = tuple(
            tuple(float(v) for v in data[key]) for key in ("position", "focal_point", "view_up")
        )
        angle = float(data.get("view_angle", 30.0))
    except (TypeError, ValueError, KeyError, OverflowError):
        return None
    arr = np.array(vecs) if all(len(v) == 3 for v in vecs) else None
    if arr is None or not np.isfinite(arr).all() or not math.isfinite(angle):
        return None
    if not 0.0 < angle < 180.0 or not np.any(arr[2]) or np.allclose(arr[0], arr[1]):
        return None
    return vecs, angle


class PlainUpdates:
    """For the app's own JS components: a change that is not a stylesheet goes straight out.

    On every parameter change Panel asks the page's design for the
    component's stylesheets (resolving the theme's CSS files on disk) and
    uses them only if the stylesheets themselves changed. A slider move
    changes the view's matrices; with 20 pages moving, the lookup was some
    7 % of the event loop's time. Changes of ``stylesheets`` take Panel's
    own path.
    """

    def _update_properties(self, *events: param.parameterized.Event, doc: Any) -> dict[str, Any]:
        if any(event.name == "stylesheets" for event in events):
            return super()._update_properties(*events, doc=doc)  # type: ignore[misc]
        return self._process_param_change(  # type: ignore[attr-defined]
            {event.name: event.new for event in events}
        )


class SceneView(PlainUpdates, pn.custom.JSComponent):
    """Interactive 3D scene of named meshes, for live sliders.

    Examples
    --------
    >>> import numpy as np, trimesh
    >>> from hipviz.app.viewer import SceneView
    >>> view = SceneView(height=500, sizing_mode="stretch_width", side="left")
    >>> ball = trimesh.creation.icosphere(subdivisions=3, radius=20)
    >>> view.set_mesh("head", ball.vertices, ball.faces, color="#e8dcc8")
    >>> tf = np.eye(4); tf[0, 3] = 15.0          # 15 mm toward the patient's right
    >>> view.set_matrix("head", tf)              # only 16 numbers go to the browser
    >>> view.set_line("lcea", [[0, 0, 0], [0, 0, 30]], color="#d62728", width=3)
    >>> view.set_label("c", [0, 0, 0], "head centre")
    >>> view.view = "lateral"
    """

    matrices = param.Dict(
        default={},
        doc="""
        Rigid placement of each actor, ``name -> 16 floats`` (row-major 4x4,
        mm, tf_world_actor). Actors without an entry are drawn as sent.
        Prefer :meth:`set_matrix`, which checks its input.""",
    )

    actors = param.Dict(
        default={},
        doc="""
        Look of each actor, ``name -> {"color": "#rrggbb", "opacity": float,
        "visible": bool, "use_colors": bool}``. Set through :meth:`set_mesh`
        and :meth:`set_style`.""",
    )

    lines = param.Dict(
        default={},
        doc="""
        Polylines, ``name -> {"points": [[x, y, z], ...] (mm), "color": "#rrggbb",
        "width": px, "actor": name or None, "on_top": bool}``. With ``actor``
        the line moves with that actor; ``on_top`` draws it through bone.""",
    )

    labels = param.Dict(
        default={},
        doc="""
        Text labels anchored at 3D points, ``name -> {"position": [x, y, z] (mm),
        "text": str, "color": "#rrggbb", "actor": name or None}``.""",
    )

    show_labels = param.Boolean(default=True, doc="Whether the text labels are shown.")

    view = param.Selector(
        default="anterior",
        objects=list(VIEWS),
        doc="""
        Camera preset: from the front, from the hip's side, from above
        (anterior up), or Lequesne's false profile (the anterior view turned
        65 degrees about S toward the hip's side). Orbit, zoom and pan with
        the mouse afterwards; :meth:`reset_camera` returns to the preset.""",
    )

    side = param.Selector(
        default="left",
        objects=["left", "right"],
        doc="""
        Which hip the scene is about; sets where 'lateral' is.""",
    )

    focal_point = param.NumericTuple(
        default=None,
        length=3,
        allow_None=True,
        doc="""
        Point the camera presets look at (mm), e.g. the femoral head centre.
        None: the centre of the visible meshes' bounds.""",
    )

    view_radius_mm = param.Number(
        default=None,
        bounds=(0, None),
        allow_None=True,
        doc="""
        Half-size of the region the camera presets fit in view, about the
        focal point (mm). None: all visible meshes.""",
    )

    background_color = param.Color(default="#ffffff", doc="Background colour.")

    camera_link = param.String(
        default="",
        doc="""
        Views of one page with the same non-empty name turn together: a
        change of one's camera (a drag, a zoom, a preset) is copied to the
        others in the browser. "" links to none.""",
    )

    caption = param.String(default="", doc="One line of text over the view's top-left corner.")

    _esm = Path(__file__).with_name("viewer.js")

    @classproperty
    def __javascript__(cls) -> list[str]:
        # The vtk.js file Panel bundles for its VTK pane: a local static route
        # when served, the CDN only where Panel itself would use it.
        return bundled_files(AbstractVTKPlot)

    def __init__(self, **params: Any):
        if "height" not in params and "min_height" not in params:
            params["min_height"] = 300
        super().__init__(**params)
        self._meshes: dict[str, dict[str, np.ndarray | None]] = {}
        self._ready = False
        self._holding = 0
        self._sync_due = False
        self._answered: Any = None  # the browser view whose "ready" was answered last
        self._shot_ids = itertools.count()
        self._shot_callbacks: dict[int, Callable[[bytes], Any]] = {}
        #: The browser's camera once it has rested (``(position, focal_point,
        #: view_up)``, mm, scene frame), or None before it first reports it.
        self.camera: tuple[tuple[float, ...], ...] | None = None
        #: The browser camera's vertical view angle (degrees) with :attr:`camera`.
        self.view_angle: float = 30.0

    # --- meshes ---------------------------------------------------------------

    @property
    def mesh_names(self) -> list[str]:
        """Names of the meshes in the scene, in the order they were added."""
        return list(self._meshes)

    def set_mesh(
        self,
        name: str,
        points: ArrayLike,
        triangles: ArrayLike,
        *,
        colors: ArrayLike | None = None,
        color: Any = None,
        opacity: float | None = None,
        visible: bool | None = None,
        smooth: bool = True,
    ) -> None:
        """Add or replace the mesh ``name``; its geometry is sent once, as binary.

        Parameters
        ----------
        name : str
        points : (n, 3) float
            Vertices, mm, in the actor's own frame (``matrices[name]`` places them).
        triangles : (m, 3) int
            Vertex indices.
        colors : (n, 3) uint8, optional
            Per-vertex colours (e.g. head coverage), drawn instead of ``color``;
            floats in [0, 1] are accepted too.
        color, opacity, visible : optional
            Look of the actor (see :meth:`set_style`); unchanged when None, and
            for a new actor, ivory, opaque and visible.
        smooth : bool, default: True
            Smooth shading from vertex normals (computed in the browser);
            False shades each triangle flat (boxes, cut faces).
        """
        pts = np.asarray(points, dtype=np.float32)
        if pts.ndim != 2 or pts.shape[1] != 3 or len(pts) == 0:
            msg = f"expected `points` of mesh {name!r} to have shape (n, 3), got {pts.shape}"
            raise InputError(msg)
        if not np.all(np.isfinite(pts)):
            msg = f"`points` of mesh {name!r} has non-finite values"
            raise InputError(msg)
        tri = np.asarray(triangles)
        if tri.ndim != 2 or tri.shape[1] != 3 or not np.issubdtype(tri.dtype, np.integer):
            msg = (
                f"expected `triangles` of mesh {name!r} to be integers of shape (m, 3), "
                f"got {tri.dtype} {tri.shape}"
            )
            raise InputError(msg)
        if tri.size and (tri.min() < 0 or tri.max() >= len(pts)):
            msg = f"`triangles` of mesh {name!r} index vertices outside 0..{len(pts) - 1}"
            raise InputError(msg)
        style = dict(self.actors.get(name, {"color": BONE_COLOR, "opacity": 1.0, "visible": True}))
        style.update(self._style_updates(color, opacity, visible))
        self._meshes[name] = {
            "points": np.ascontiguousarray(pts.ravel()),
            "triangles": np.ascontiguousarray(tri.astype(np.int32).ravel()),
            "colors": self._check_colors(name, colors, len(pts)),
            "smooth": bool(smooth),
        }
        if style != self.actors.get(name):
            self.actors = {**self.actors, name: style}
        if self._ready:
            self._send_msg(self._mesh_msg(name))
            self._synced()

    def copy_mesh(
        self,
        name: str,
        source: str,
        *,
        color: Any = None,
        opacity: float | None = None,
        visible: bool | None = None,
    ) -> None:
        """Add or replace mesh ``name`` as a copy of mesh ``source``'s geometry now.

        The browser copies the geometry it already has, so nothing but the
        names travels (a faint "before" copy of a piece costs no bytes).
        Later changes of ``source`` leave the copy as it is.
        """
        mesh = self._get(source)
        style = dict(self.actors.get(name, {"color": BONE_COLOR, "opacity": 1.0, "visible": True}))
        style.update(self._style_updates(color, opacity, visible))
        # the arrays are shared, not copied: set_mesh replaces them, never writes into them
        self._meshes[name] = {**mesh, "colors": None, "copy_of": source}
        if style != self.actors.get(name):
            self.actors = {**self.actors, name: style}
        if self._ready:
            self._send_msg(self._mesh_msg(name))
            self._synced()

    @contextlib.contextmanager
    def hold(self) -> Iterator[None]:
        """Meshes set inside are drawn together, in one frame, when it ends.

        The browser draws on "synced"; without this, a cut's new fragment
        could be drawn a frame before the rest of the pelvis it came from.
        """
        self._holding += 1
        try:
            yield
        finally:
            self._holding -= 1
            if not self._holding and self._sync_due:
                self._sync_due = False
                self._send_msg({"type": "synced"})

    def _synced(self) -> None:
        if self._holding:
            self._sync_due = True
        else:
            self._send_msg({"type": "synced"})

    def set_colors(self, name: str, colors: ArrayLike | None) -> None:
        """Replace the per-vertex colours of mesh ``name`` (None: plain colour)."""
        mesh = self._get(name)
        mesh["colors"] = self._check_colors(name, colors, len(mesh["points"]) // 3)
        if self._ready:
            self._send_msg({"type": "colors", "name": name, "colors": mesh["colors"]})

    def remove_mesh(self, name: str) -> None:
        """Remove mesh ``name`` with its matrix and style."""
        self._get(name)
        del self._meshes[name]
        self.param.update(
            actors={k: v for k, v in self.actors.items() if k != name},
            matrices={k: v for k, v in self.matrices.items() if k != name},
        )
        if self._ready:
            self._send_msg({"type": "remove", "name": name})

    def set_style(
        self,
        name: str,
        *,
        color: Any = None,
        opacity: float | None = None,
        visible: bool | None = None,
        use_colors: bool | None = None,
    ) -> None:
        """Change the look of mesh ``name``; None leaves a property as it is.

        Parameters
        ----------
        color : str or (3,) float
            '#rrggbb', a CSS colour name or (r, g, b) in [0, 1].
        opacity : float
            0 (invisible) to 1 (opaque).
        visible : bool
        use_colors : bool
            Draw the per-vertex colours, when the mesh has some.
        """
        self._get(name)
        style = {**self.actors.get(name, {}), **self._style_updates(color, opacity, visible)}
        if use_colors is not None:
            style["use_colors"] = bool(use_colors)
        self.actors = {**self.actors, name: style}

    def set_matrix(self, name: str, tf_world_actor: ArrayLike | None) -> None:
        """Place actor ``name`` by a (4, 4) rigid transform, mm; None: as sent."""
        self.set_matrices({name: tf_world_actor})

    def set_matrices(self, tfs: Mapping[str, ArrayLike | None]) -> None:
        """Place several actors at once (one message, one frame)."""
        new = dict(self.matrices)
        for name, tf in tfs.items():
            if tf is None:
                new.pop(name, None)
            else:
                new[name] = _matrix16(tf, name)
        self.matrices = new

    # --- overlays -------------------------------------------------------------

    def set_line(
        self,
        name: str,
        points: ArrayLike,
        *,
        color: Any = "#d62728",
        width: float = 3.0,
        actor: str | None = None,
        on_top: bool = True,
    ) -> None:
        """Add or replace polyline ``name`` through ``points`` ((k, 3) float, mm, k >= 2).

        ``width`` is in screen pixels. With ``actor`` the points are in that
        actor's frame and follow its matrix. ``on_top`` keeps the line visible
        through bone (an angle drawn from the head centre, for instance).
        """
        pts = np.asarray(points, dtype=float)
        if pts.ndim != 2 or pts.shape[1] != 3 or len(pts) < 2:
            msg = (
                f"expected `points` of line {name!r} to have shape (k, 3), k >= 2, got {pts.shape}"
            )
            raise InputError(msg)
        spec = {
            "points": pts.round(4).tolist(),
            "color": _hex(color),
            "width": float(width),
            "actor": actor,
            "on_top": bool(on_top),
        }
        self.lines = {**self.lines, name: spec}

    def set_label(
        self,
        name: str,
        position: ArrayLike,
        text: str | None = None,
        *,
        color: Any = "#222222",
        actor: str | None = None,
    ) -> None:
        """Add or replace the text label ``name`` at ``position`` ((3,) float, mm).

        ``text`` defaults to ``name``. With ``actor`` the position is in that
        actor's frame and follows its matrix.
        """
        spec = {
            "position": _point3(position, name),
            "text": name if text is None else str(text),
            "color": _hex(color),
            "actor": actor,
        }
        self.labels = {**self.labels, name: spec}

    def clear_overlays(self) -> None:
        """Remove every line and label."""
        self.param.update(lines={}, labels={})

    # --- camera and pictures --------------------------------------------------

    def reset_camera(self) -> None:
        """Back to the current ``view`` preset, fitted to the visible meshes."""
        self._send_msg({"type": "reset_camera"})

    def request_screenshot(self, callback: Callable[[bytes], Any]) -> None:
        """Ask the browser for a PNG of the view; ``callback(png_bytes)`` gets it.

        The picture has the canvas' pixel size and includes the labels. The
        callback runs on the server's event loop; it is never called if no
        browser shows the component.
        """
        shot_id = next(self._shot_ids)
        self._shot_callbacks[shot_id] = callback
        self._send_msg({"type": "screenshot", "id": shot_id})

    async def screenshot(self, timeout: float = 10.0) -> bytes:
        """PNG bytes of the current view, awaited (e.g. in an async button callback).

        Raises
        ------
        TimeoutError
            No browser answered within ``timeout`` seconds.
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[bytes] = loop.create_future()

        def done(png: bytes) -> None:
            loop.call_soon_threadsafe(lambda: future.done() or future.set_result(png))

        self.request_screenshot(done)
        return await asyncio.wait_for(future, timeout)

    # --- browser messages -----------------------------------------------------

    def _handle_msg(self, data: Any) -> None:
        kind = data.get("type") if isinstance(data, dict) else None
        if kind == "ready":
            view = data.get("view")
            if view is not None and view == self._answered:
                return  # a repeat of a request already answered, crossed in flight
            self._answered = view
            self._ready = True
            for name in self._meshes:
                self._send_msg(self._mesh_msg(name))
            self._send_msg({"type": "synced"})
        elif kind == "camera":
            camera = parse_camera(data)
            if camera is not None:
                self.camera, self.view_angle = camera
        elif kind == "screenshot":
            callback = self._shot_callbacks.pop(data.get("id"), None)
            if callback is not None and "png" in data:
                callback(base64.b64decode(data["png"]))

    def _mesh_msg(self, name: str) -> dict[str, Any]:
        mesh = {k: v for k, v in self._meshes[name].items() if k != "copy_of"}
        source = self._meshes[name].get("copy_of")
        if source in self._meshes and self._meshes[source]["points"] is mesh["points"]:
            return {"type": "copy", "name": name, "source": source}
        return {"type": "mesh", "name": name, **mesh}

    def _get(self, name: str) -> dict[str, np.ndarray | None]:
        try:
            return self._meshes[name]
        except KeyError:
            msg = f"no mesh named {name!r}; the scene has {sorted(self._meshes)}"
            raise InputError(msg) from None

    @staticmethod
    def _check_colors(name: str, colors: ArrayLike | None, n: int) -> np.ndarray | None:
        if colors is None:
            return None
        c = np.asarray(colors)
        if c.shape != (n, 3):
            msg = f"expected `colors` of mesh {name!r} to have shape ({n}, 3), got {c.shape}"
            raise InputError(msg)
        if c.dtype != np.uint8:
            if np.issubdtype(c.dtype, np.floating) and c.min() >= 0 and c.max() <= 1:
                c = c * 255.0
            c = np.clip(np.round(c), 0, 255).astype(np.uint8)
        return np.ascontiguousarray(c.ravel())

    @staticmethod
    def _style_updates(color: Any, opacity: float | None, visible: bool | None) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if color is not None:
            out["color"] = _hex(color)
        if opacity is not None:
            if not 0 <= float(opacity) <= 1:
                msg = f"`opacity` must be within [0, 1], got {opacity}"
                raise InputError(msg)
            out["opacity"] = float(opacity)
        if visible is not None:
            out["visible"] = bool(visible)
        return out
