"""What the page's 3D view shows: the scene driver.

:class:`SceneDriver` owns the :class:`~hipviz.app.viewer.SceneView` and the
toolbar over it, and turns the session's hip into what the browser draws:
the pieces (sent once per new cut, as binary), their poses (16 numbers per
moved piece), the head's coverage colours, the angle lines and landmark
labels, the faint "before" copies, the screws and plate, and the explain-mode
animation.

Other views add to each picture through *layers* (:meth:`SceneDriver.add_layer`):
a layer is a function of the simulation, the outcome shown and the plan that
returns an :class:`Overlay` - lines (an arrow is one, see :func:`arrow`),
labels and per-vertex colours for named pieces (:func:`scalar_colors` maps a
value per vertex, e.g. a pressure, to colours; :meth:`SceneDriver.mesh_points`
gives the vertices as sent). The driver sends them with the rest of the
picture, in the same message.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import panel as pn
import param
from numpy.typing import ArrayLike

from hipviz import osteotomy as ost
from hipviz import render
from hipviz.errors import HipvizError
from hipviz.pressure import arrow, scalar_colors  # noqa: F401 (the app's names for them)

from .state import PageState
from .viewer import SceneView

VIEW_LABELS = {
    "anterior": "Front",
    "lateral": "Side",
    "superior": "Top",
    "false_profile": "False profile",
}
#: Frames of the explain-mode turn animation, and ms between them.
ANIMATION_FRAMES = 24
ANIMATION_PERIOD_MS = 60
#: Half-size of the region the standard views frame about the head centre, mm.
VIEW_RADIUS_MM = 110.0
#: The pelvis beyond this distance from the head centre is drawn as its own
#: piece (FAR_PIECE), which no cut changes: a cut re-sends only the near part.
FAR_MM = 100.0
FAR_PIECE = "pelvis_far"


@dataclass(frozen=True)
class Overlay:
    """What one layer adds to a picture of the hip.

    Attributes
    ----------
    lines : dict of str to render.Line
        Polylines, mm, scene frame (as the pieces are drawn, after their
        moves); a line's ``label`` is shown at its last point.
    labels : dict of str to render.Label
        Text pinned to points, mm, scene frame.
    colors : dict of str to (n, 3) uint8
        Per-vertex colours of named pieces (``"femur"``, ``"pelvis"``, ...),
        one per vertex of :meth:`SceneDriver.mesh_points`; they replace the
        piece's own colours (the head's coverage colours included).
    poses : dict of str to (4, 4) float
        Placements of named pieces (``tf_world_piece``, mm) that replace the
        plan's, e.g. the leg turned by the Motion view. While a layer places
        a piece, the angle lines are left out: they belong to the pose the
        hip was measured in.
    hide_angles : bool
        Leave the hip's angle lines (and their labels) out of this picture:
        the layer's own picture says what it shows (the Load view's Explain
        step, looking into the socket from the side, where the roof-cover
        angle lies edge-on under the load arrow).
    """

    lines: Mapping[str, render.Line] = field(default_factory=dict)
    labels: Mapping[str, render.Label] = field(default_factory=dict)
    colors: Mapping[str, np.ndarray] = field(default_factory=dict)
    poses: Mapping[str, np.ndarray] = field(default_factory=dict)
    hide_angles: bool = False


#: A layer: (simulation, outcome shown, plan) -> what it adds to the picture.
Layer = Callable[[Any, Any, Any], Overlay]
#: A move layer: (simulation, the move's transforms, plan) -> per-vertex colours of named
#: pieces for a move not yet measured (milliseconds, on the event loop).
MoveLayer = Callable[[Any, Mapping[str, np.ndarray], Any], Mapping[str, np.ndarray]]


def _lines_spec(lines: Mapping[str, render.Line]) -> dict[str, dict]:
    return {
        k: {
            "points": np.asarray(ln.points, dtype=float).round(3).tolist(),
            "color": ln.color,
            "width": float(ln.width),
            "actor": None,
            "on_top": bool(ln.on_top),
        }
        for k, ln in lines.items()
    }


def _labels_spec(
    lines: Mapping[str, render.Line], labels: Mapping[str, render.Label]
) -> dict[str, dict]:
    out = {}
    for k, ln in lines.items():
        if ln.label:
            out[f"line:{k}"] = {
                "position": np.asarray(ln.points[-1], dtype=float).round(3).tolist(),
                "text": ln.label,
                "color": ln.color,
                "actor": None,
            }
    for k, lab in labels.items():
        out[f"landmark:{k}"] = {
            "position": np.asarray(lab.position, dtype=float).round(3).tolist(),
            "text": lab.text,
            "color": lab.color,
            "actor": None,
        }
    return out


@dataclass(frozen=True)
class Pieces:
    """A hip's pieces made ready to send to the browser (:func:`prepare_pieces`).

    Attributes
    ----------
    names : frozenset of str
        Every piece of the hip now (:func:`hipviz.render.bone_meshes`).
    meshes : dict
        The pieces to send again: name -> (points (n, 3) float32 mm,
        triangles (m, 3) int32, colour, opacity); the pelvis's only within
        :data:`FAR_MM` of the head.
    far : dict
        For the pelvis's pieces: name -> (points, triangles, colour, key) of
        the part beyond :data:`FAR_MM`, ``key`` telling one such part from
        another whatever the order of its vertices and triangles.
    coloring : (str, HeadColoring) or None
        The femur's piece and its head colouring, when that piece is sent again.
    """

    names: frozenset[str]
    meshes: dict[str, tuple[np.ndarray, np.ndarray, str, float]]
    far: dict[str, tuple[np.ndarray, np.ndarray, str, tuple]]
    coloring: tuple[str, render.HeadColoring] | None


def prepare_pieces(sim: Any, changed: set[str]) -> Pieces:
    """The pieces of ``sim`` (a :class:`~hipviz.simulate.Simulation`) that ``changed`` renews.

    ``changed`` holds "anatomy" (every piece), "cut" (the pelvis's pieces)
    and/or "femur" (the femur's). Pure: call it from any thread (the app
    makes a new hip's pieces in the thread that built it).
    """
    pieces = render.bone_meshes(sim)
    pelvic = {"pelvis", "pelvis_rest", "acetabular_fragment"}
    resend = set(pieces)
    if "anatomy" not in changed:
        if "cut" not in changed:
            resend -= pelvic
        if "femur" not in changed:
            resend &= pelvic
    meshes, far = {}, {}
    for name in sorted(resend, key=lambda n: n != "acetabular_fragment"):
        piece = pieces[name]
        pts, tri = render.triangles(piece.mesh)
        if name in ("pelvis", "pelvis_rest"):
            (pts, tri), (far_pts, far_tri) = render.split_far(pts, tri, sim.center_mm, FAR_MM)
            corners = far_pts[far_tri]  # a key that ignores vertex and triangle order
            key = (
                len(far_tri),
                corners.sum(axis=(0, 1)).round(3).tobytes(),
                float(np.square(corners, dtype=np.float64).sum().round(1)),
            )
            far[name] = (far_pts, far_tri, piece.color, key)
        meshes[name] = (pts, tri, piece.color, piece.opacity)
    femur_key = "femur" if "femur" in pieces else "femur_proximal"
    coloring = None
    if femur_key in resend:
        coloring = (
            femur_key,
            render.HeadColoring(
                pieces[femur_key].mesh.points,
                sim.center_mm,
                sim.radius_mm,
                sim.axes.from_las(sim.analysis.coverage.directions_las),
            ),
        )
    return Pieces(frozenset(pieces), meshes, far, coloring)


class SceneDriver(pn.viewable.Viewer):
    """The 3D view of one page and everything sent to it.

    Parameters
    ----------
    page : PageState
        The page's plan, session and loading flag.
    on_warning : callable
        Shows one warning line (fixation that cannot be placed).
    """

    angles = param.Boolean(default=True, doc="Draw each angle where it is measured.")
    fixation = param.Boolean(default=False, doc="Show screws and plates.")
    ghost = param.Boolean(default=True, doc="Show the moved pieces' starting place, faint.")

    def __init__(self, page: PageState, *, on_warning: Callable[[str], None], **params: Any):
        super().__init__(**params)
        self.page = page
        self._on_warning = on_warning
        plan = page.plan
        self.view3d = SceneView(
            sizing_mode="stretch_both",
            min_height=240,
            side=plan.side,
            view=plan.view,
            # turns with the "before" view of Explain's side by side, when shown
            camera_link=f"hipviz-{id(self):x}",
        )
        #: Explain's "before" view beside :attr:`view3d` (made when first shown).
        self.before3d: SceneView | None = None
        self._before_sent: dict[str, int] = {}  # piece -> id of the points sent to before3d
        #: The 3D view, and Explain's "before" view left of it when shown.
        self.views = pn.Row(
            self.view3d,
            sizing_mode="stretch_both",
            min_height=480,
            css_classes=["hv-view3d"],  # the page's layout sizes it on narrow screens
        )
        self._far_key: tuple | None = None
        self._femur_key: str | None = None
        self._coloring: render.HeadColoring | None = None
        self._animation: Any = None
        self._layers: dict[str, Layer] = {}
        self._move_layers: dict[str, MoveLayer] = {}
        self._layer_colored: set[str] = set()
        self._layer_posed = False
        self._layer_poses: dict[str, np.ndarray] = {}  # pieces the layers placed last
        self._hide_angles = False  # a layer asked to leave the angle lines out
        self._coverage: np.ndarray | None = None  # the head's coverage colours last sent
        self.w_view = pn.widgets.RadioButtonGroup.from_param(
            plan.param.view, options={v: k for k, v in VIEW_LABELS.items()}, label=""
        )
        self.w_angles = pn.widgets.Checkbox.from_param(self.param.angles, label="Angles")
        self.w_fixation = pn.widgets.Checkbox.from_param(self.param.fixation, label="Screws/plate")
        self.w_ghost = pn.widgets.Checkbox.from_param(self.param.ghost, label="Before (faint)")
        self.w_fit = pn.widgets.Button(label="Fit", width=60)
        self.w_fit.on_click(lambda _: self.view3d.reset_camera())
        plan.param.watch(self._on_view, ["view"])

    def toolbar(self) -> pn.Row:
        """View presets, Fit, and the Angles / Screws / Before toggles."""
        return pn.Row(
            self.w_view,
            self.w_fit,
            self.w_angles,
            self.w_fixation,
            self.w_ghost,
            sizing_mode="stretch_width",
            styles={"flex-wrap": "wrap"},  # on a narrow screen the toggles go to a second line
        )

    def __panel__(self) -> pn.viewable.Viewable:
        return pn.Column(self.toolbar(), self.views, sizing_mode="stretch_both")

    def _on_view(self, event: param.parameterized.Event) -> None:
        self.view3d.view = event.new

    # ------------------------------------------------------------------ layers

    def add_layer(self, name: str, layer: Layer) -> None:
        """Add (or replace) a layer; it draws from the next picture on.

        Its lines and labels are named ``<name>:<key>`` in the view.
        """
        self._layers[name] = layer

    def remove_layer(self, name: str) -> None:
        """Remove a layer; what it drew goes with the next picture."""
        self._layers.pop(name, None)
        self._move_layers.pop(name, None)

    def add_move_layer(self, name: str, layer: MoveLayer) -> None:
        """Colours a layer can give a move before it is measured (e.g. the contact pressure).

        :meth:`move` sends them with the pieces' matrices, in one message (one
        frame in the browser); the measured picture (:meth:`pose`) follows
        with the layer's own :class:`Overlay`. ``layer`` runs on the event
        loop, while a measure may run: it must be quick and must not wait for
        the session's lock.
        """
        self._move_layers[name] = layer

    def _hold(self) -> Any:
        """Changes made inside leave in one message (a no-op outside a server)."""
        doc = self.page.doc
        return contextlib.nullcontext() if doc is None else pn.io.hold(doc)

    def mesh_points(self, name: str) -> np.ndarray:
        """The vertices of piece ``name`` as sent to the browser, (n, 3) float32 mm, unmoved."""
        return self.view3d._get(name)["points"].reshape(-1, 3)

    def _overlays(self, out: Any) -> tuple[dict, dict, dict, dict]:
        self._hide_angles = False
        lines: dict[str, render.Line] = {}
        labels: dict[str, render.Label] = {}
        colors: dict[str, np.ndarray] = {}
        poses: dict[str, np.ndarray] = {}
        names = set(self.view3d.mesh_names)
        for name, layer in self._layers.items():
            overlay = layer(self.page.session.sim, out, self.page.plan)
            lines |= {f"{name}:{k}": v for k, v in overlay.lines.items()}
            labels |= {f"{name}:{k}": v for k, v in overlay.labels.items()}
            colors |= {k: v for k, v in overlay.colors.items() if k in names}
            poses |= {k: v for k, v in overlay.poses.items() if k in names}
            self._hide_angles |= overlay.hide_angles
        return lines, labels, colors, poses

    def refresh_layers(self) -> None:
        """Send only what the layers draw now: a layer's slider step (e.g. the leg turned).

        The pieces' matrices, the layers' colours (those that changed) and
        their lines and labels go in one message; the hip's own angle lines
        and colours are left as they are. When a layer starts or stops placing
        a piece, the whole picture is sent again (:meth:`pose`), as the angle
        lines then go or come back.
        """
        out, view = self.page.session.outcome, self.view3d
        if out is None or self.page.loading or self.page.plan.mode == "explain":
            return
        lines, labels, colors, poses = self._overlays(out)
        if bool(poses) != self._layer_posed:
            self.pose(out)
            return
        own = tuple(f"{name}:" for name in self._layers)
        kept_lines = {k: v for k, v in view.lines.items() if not k.startswith(own)}
        kept_labels = {
            k: v
            for k, v in view.labels.items()
            if not k.removeprefix("line:").removeprefix("landmark:").startswith(own)
        }
        tfs = render.poses(self.page.session.sim, out)
        dropped = {k: np.eye(4) for k in self._layer_poses if k not in tfs and k not in poses}
        self._layer_poses = poses
        tfs = {**dropped, **tfs, **poses}
        # matrices, lines and colours in one message: the browser draws them in one frame
        # (a second message would wait for the frame of the first)
        with self._hold():
            view.param.update(
                matrices=self.matrices(tfs),
                lines={**kept_lines, **_lines_spec(lines)},
                labels={**kept_labels, **_labels_spec(lines, labels)},
            )
            self._send_layer_colors(colors, coverage=False)

    def _send_layer_colors(self, colors: dict[str, np.ndarray], *, coverage: bool) -> None:
        """The layers' per-vertex colours; pieces a layer no longer colours get their own back.

        Colours equal to those the browser has are not sent again.
        """
        view = self.view3d
        for name in self._layer_colored - set(colors):  # a layer stopped colouring it
            if name != self._femur_key:
                view.set_colors(name, None)
            elif not coverage:  # (with ``coverage`` the head's colours were just sent)
                view.set_colors(name, self._coverage)
        for name, rgb in colors.items():
            self._send_colors(name, rgb)
        self._layer_colored = set(colors)

    # ------------------------------------------------------------------ pieces

    def frame_hip(self, *, reset_camera: bool) -> None:
        """Point the views at a new hip's head centre, on its side."""
        sim = self.page.session.sim
        self.view3d.param.update(
            side=sim.analysis.side,
            focal_point=tuple(float(v) for v in sim.center_mm),
            view_radius_mm=VIEW_RADIUS_MM,
        )
        if reset_camera:
            self.view3d.reset_camera()

    def send_meshes(self, changed: set[str], prepared: Pieces | None = None) -> None:
        """Send the pieces that changed (and their faint 'before' copies) to the browser.

        ``prepared``: the same pieces made beforehand by :func:`prepare_pieces`,
        in a worker thread (a million-triangle upload takes a quarter of a
        second to make ready, which the event loop would otherwise spend);
        by default they are made here.
        """
        if prepared is None:
            prepared = prepare_pieces(self.page.session.sim, changed)
        with self.view3d.hold():  # one frame shows all the new pieces
            self._send_pieces(prepared)

    def _send_pieces(self, prepared: Pieces) -> None:
        view = self.view3d
        wanted = set(prepared.names) | {FAR_PIECE}
        for name, (pts, tri, color, opacity) in prepared.meshes.items():
            if name in prepared.far:
                self._send_far(*prepared.far[name])
            view.set_mesh(name, pts, tri, color=color, opacity=opacity)
        for name in ("acetabular_fragment", "femur_distal"):
            if name in prepared.names:
                wanted.add(f"ghost:{name}")
                if name in prepared.meshes:
                    view.copy_mesh(
                        f"ghost:{name}", name, color=render.GHOST, opacity=0.3, visible=False
                    )
        for name in set(view.mesh_names) - wanted:
            if not name.startswith("fix:"):
                view.remove_mesh(name)
        # new pieces come uncoloured
        self._layer_colored &= set(view.mesh_names) - set(prepared.meshes)
        if prepared.coloring is not None:
            self._femur_key, self._coloring = prepared.coloring
            self._coverage = None

    def _send_far(self, points: np.ndarray, triangles: np.ndarray, color: str, key: tuple) -> None:
        """The pelvis beyond FAR_MM from the head, unless the browser has it already."""
        if key != self._far_key or FAR_PIECE not in self.view3d.mesh_names:
            self.view3d.set_mesh(FAR_PIECE, points, triangles, color=color)
            self._far_key = key

    # ------------------------------------------------------------------ poses

    def matrices(self, tfs: Mapping[str, ArrayLike]) -> dict[str, list[float]]:
        """The view's matrices with ``tfs`` (name -> (4, 4)) placed."""
        matrices = dict(self.view3d.matrices)
        for k, tf in tfs.items():
            matrices[k] = [float(v) for v in np.asarray(tf).ravel()]
        return matrices

    def move(self, tfs: Any) -> None:
        """The pieces' new places, and the move layers' colours: a slider move's picture.

        ``tfs`` are the moves' transforms (:meth:`HipSession.transforms`).
        Matrices and colours go in one message, drawn in one frame.
        """
        sim, view = self.page.session.sim, self.view3d
        colors = self._move_colors(sim, tfs)
        poses = render.poses(sim, tfs)
        # pieces a layer places (the Motion view's leg) stay where it put them
        kept = {k: v for k, v in self._layer_poses.items() if k in poses}
        with self._hold():
            view.matrices = self.matrices({**poses, **kept})
            for name, rgb in colors.items():
                self._send_colors(name, rgb)
                self._layer_colored.add(name)

    def _move_colors(self, sim: Any, tfs: Any) -> dict[str, np.ndarray]:
        """The move layers' colours of the pieces in view (not those a layer places)."""
        out: dict[str, np.ndarray] = {}
        if not self._move_layers or self.page.plan.mode == "explain":
            return out
        names = set(self.view3d.mesh_names) - set(self._layer_poses)
        for layer in self._move_layers.values():
            out |= {k: v for k, v in layer(sim, tfs, self.page.plan).items() if k in names}
        return out

    def _send_colors(self, name: str, rgb: np.ndarray | None) -> None:
        """Per-vertex colours of piece ``name``, unless the browser has these already."""
        view = self.view3d
        sent = view._meshes[name]["colors"]
        if rgb is None:
            if sent is not None:
                view.set_colors(name, None)
            return
        flat = np.ascontiguousarray(rgb, dtype=np.uint8).ravel()
        if sent is None or not np.array_equal(sent, flat):
            view.set_colors(name, rgb)

    def pose(self, out: Any, *, fixation: bool | None = None, matrices: bool = True) -> None:
        """Matrices, head colours, angles and labels of one outcome, in one message.

        ``matrices=False`` keeps the pieces where they are (the outcome is older
        than the pose on screen).
        """
        sim, view, plan = self.page.session.sim, self.view3d, self.page.plan
        tfs = render.poses(sim, out)
        moved = {k for k, tf in tfs.items() if not np.allclose(tf, np.eye(4), atol=1e-9)}
        styles = {}
        for name in ("acetabular_fragment", "femur_distal"):
            ghost = f"ghost:{name}"
            if ghost in view.mesh_names:
                styles[ghost] = {
                    **view.actors.get(ghost, {}),
                    "visible": bool(self.ghost and name in moved),
                }
        student = plan.mode == "student"
        if not self.angles:
            lines = {}
        elif plan.mode == "explain":  # one angle, in plain words
            lines = {
                k: dataclasses.replace(ln, label=ln.label.replace("LCEA", "roof cover"))
                for k, ln in render.measure_lines(sim, out, only=("lcea",)).items()
            }
        else:
            lines = render.measure_lines(sim, out)
        labels = render.landmark_labels(sim, out) if student else {}
        colors: dict[str, np.ndarray] = {}
        poses: dict[str, np.ndarray] = {}
        if self._layers:
            more_lines, more_labels, colors, poses = self._overlays(out)
            # the angle lines belong to the measured pose, not to a turned bone
            if poses or self._hide_angles:
                lines, labels = {}, {}
            lines, labels = {**lines, **more_lines}, {**labels, **more_labels}
        # pieces a layer placed and no longer does go back where they are drawn as sent
        dropped = {k: np.eye(4) for k in self._layer_poses if k not in tfs and k not in poses}
        self._layer_posed, self._layer_poses = bool(poses), poses
        tfs = {**dropped, **tfs, **poses}
        coverage = out.coverage_after is not None and self._femur_key not in colors
        if coverage:
            self._coverage = self._coloring(out.coverage_after.covered)
            view.set_colors(self._femur_key, self._coverage)
        if colors or self._layer_colored:
            self._send_layer_colors(colors, coverage=coverage)
        # param sends only the values that differ (an unchanged ghost style costs nothing)
        update = {
            "actors": {**view.actors, **styles},
            "lines": _lines_spec(lines),
            "labels": _labels_spec(lines, labels),
        }
        if matrices:
            update["matrices"] = self.matrices(tfs)
        view.param.update(**update)
        if self.fixation if fixation is None else fixation:
            self.place_fixation(out)
        else:
            self.remove_fixation()

    def style_pieces(self, fragment_color: str) -> None:
        """Colour the pieces an osteotomy moves (explain mode highlights them)."""
        view = self.view3d
        actors = dict(view.actors)
        for name in ("acetabular_fragment", "femur_proximal"):
            if name in actors:
                actors[name] = {**actors[name], "color": fragment_color}
        view.actors = actors

    # ------------------------------------------------------------------ before | after

    def show_before(self, shown: bool) -> None:
        """Show (or hide) the unmoved hip in a second view left of the main one.

        The two views turn together (their cameras are linked in the
        browser). The pieces are those of the main view, unmoved, with the
        roof-cover angle of the hip before; a piece is sent to the second view
        only when the main view's copy of it is new.
        """
        if not shown:
            if self.before3d is not None and self.before3d in self.views.objects:
                self.views.remove(self.before3d)
            self.view3d.caption = ""
            return
        sim = self.page.session.sim
        if self.before3d is None:
            self.before3d = SceneView(
                sizing_mode="stretch_both",
                min_height=240,
                camera_link=self.view3d.camera_link,
                caption="Before",
            )
        before, view = self.before3d, self.view3d
        before.param.update(
            side=view.side,
            view=view.view,
            focal_point=view.focal_point,
            view_radius_mm=view.view_radius_mm,
        )
        if sim is not None:
            self._send_before(sim)
        if before not in self.views.objects:
            self.views.insert(0, before)
        view.caption = "After"

    def _send_before(self, sim: Any) -> None:
        before, view = self.before3d, self.view3d
        names = [n for n in view.mesh_names if not n.startswith(("ghost:", "fix:"))]
        with before.hold():
            for name in names:
                mesh = view._meshes[name]
                if self._before_sent.get(name) != id(mesh["points"]):
                    before.set_mesh(
                        name,
                        mesh["points"].reshape(-1, 3),
                        mesh["triangles"].reshape(-1, 3),
                        smooth=mesh["smooth"],
                    )
                    self._before_sent[name] = id(mesh["points"])
            for name in set(before.mesh_names) - set(names):
                before.remove_mesh(name)
                self._before_sent.pop(name, None)
        unmoved = sim.move()
        lines = {
            k: dataclasses.replace(ln, label=ln.label.replace("LCEA", "roof cover"))
            for k, ln in render.measure_lines(sim, unmoved, only=("lcea",)).items()
        }
        before.param.update(
            actors={n: view.actors[n] for n in names if n in view.actors},
            matrices={
                k: [float(v) for v in np.asarray(tf).ravel()]
                for k, tf in render.poses(sim, unmoved).items()
                if k in names
            },
            lines=_lines_spec(lines) if self.angles else {},
            labels=_labels_spec(lines, {}) if self.angles else {},
        )

    # ------------------------------------------------------------------ fixation

    def place_fixation(self, out: Any) -> None:
        """Screws and plate of ``out``'s moves (a warning line if they cannot be placed)."""
        sim, view = self.page.session.sim, self.view3d
        try:
            meshes = sim.fixation(out)
        except HipvizError as exc:
            self._on_warning(f"fixation not shown: {exc}")
            meshes = {}
        with view.hold():  # screws and plate appear in one frame
            self._set_fixation(meshes)

    def _set_fixation(self, meshes: dict) -> None:
        view = self.view3d
        names = {f"fix:{name}" for name in meshes}
        for name, mesh in meshes.items():
            view.set_mesh(
                f"fix:{name}",
                np.asarray(mesh.vertices, dtype=np.float32),
                np.asarray(mesh.faces, dtype=np.int32),
                color=render.METAL,
                smooth=False,
            )
        for name in view.mesh_names:
            if name.startswith("fix:") and name not in names:
                view.remove_mesh(name)

    def remove_fixation(self) -> None:
        """Take the screws and plate out of the view."""
        for name in self.view3d.mesh_names:
            if name.startswith("fix:"):
                self.view3d.remove_mesh(name)

    # ------------------------------------------------------------------ animation

    def play(self, frame: Callable[[float], None]) -> None:
        """Run ``frame(s)`` for s eased from 0 to 1 over ANIMATION_FRAMES frames (about 1.5 s).

        The animation before it, if any, stops first; ``frame`` may call
        :meth:`stop_animation` to end early.
        """
        self.stop_animation()
        count = {"i": 0}

        def tick():
            count["i"] += 1
            t = min(1.0, count["i"] / ANIMATION_FRAMES)
            frame(t * t * (3 - 2 * t))  # ease in and out

        self._animation = pn.state.add_periodic_callback(
            tick, period=ANIMATION_PERIOD_MS, count=ANIMATION_FRAMES
        )

    def animate(self, out: Any) -> None:
        """Turn the pieces from where they were to the plan, over about 1.5 s."""
        plan, sim = self.page.plan, self.page.session.sim
        acet, fem = plan.acetabular_move(), plan.femoral_move()
        if plan.procedure == "none":
            acet = ost.AcetabularMove()

        def tick(s: float) -> None:
            a = ost.AcetabularMove(
                acet.lateral_deg * s,
                acet.anterior_deg * s,
                acet.version_deg * s,
                acet.medial_mm * s,
            )
            f = ost.FemoralMove(fem.varus_deg * s, fem.flexion_deg * s, fem.rotation_deg * s)
            if self.page.loading:  # the pieces are being rebuilt
                self.stop_animation()
                return
            try:
                self.pose(sim.move(a, f), fixation=False)
            except HipvizError:
                self.stop_animation()

        self.play(tick)

    def stop_animation(self) -> None:
        """Stop the explain-mode animation, where the pieces are."""
        if self._animation is not None:
            self._animation.stop()
            self._animation = None

    def close(self) -> None:
        """The page closed: stop, and let go of the meshes."""
        self.stop_animation()
        self.view3d._meshes.clear()
        self._coloring = None
