"""Range of motion and impingement: how far the femur turns before bone meets bone.

The femur turns about the head centre, which stays fixed in the pelvis (as in
Tannast 2007; Puls' equidistant centre is a refinement not made here). A pose
is three angles in the ISB order (Wu 2002), applied to the femur as it stands
in the input:

1. flexion about the pelvic medio-lateral axis (patient's left to right, so
   that positive flexion brings the knee forward on either side);
2. adduction about the anterior axis carried along by the flexion (positive:
   the knee toward the midline);
3. rotation about the femur's mechanical axis, head centre to knee centre,
   carried along by both (positive: internal, the front of the femur turning
   toward the midline).

As a matrix: ``R = R(ml, flexion) @ R(sign * ap, adduction) @ R(sign * u, rotation)``
with ``ml`` the patient's right, ``ap`` anterior, ``u`` the mechanical axis
(knee to head) in the starting pose and ``sign`` +1 for a right hip, -1 for a
left one, so that a mirrored hip gives the same angles.

Contact is bone against bone, tested on the triangle meshes with FCL (the
Flexible Collision Library, through ``python-fcl``): one pose query of the
built-in hip costs about 0.2-0.3 ms, so the nine limits take some hundred
milliseconds and a slider pose a fraction of a millisecond. The articular
head - the femoral surface within ``r + head_tolerance`` of the head centre -
is left out of the test, since its contact with the socket is the joint
itself (the cartilage lies there), not impingement; every other part of the
femur is tested against every part of the pelvis. Bone only: no labrum,
cartilage, capsule or muscle.

A limit is found by stepping the motion (``step_deg``, default 2 degrees) until
the bones meet, then bisecting the last step to within ``tolerance_deg``
(default 0.1 degrees). No contact within ``max_deg`` (150 degrees) is ``None``
with a note. Stepping could in principle pass through bone thinner than the
distance a femoral point travels in one step (about 2 mm at 60 mm from the
head centre); pelvic bone at the hip is thicker.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import trimesh

from . import measures as ms
from ._typing import FloatArray, Transform, Vector
from .errors import HipvizError
from .geometry import apply, invert, rigid, rotation, unit

#: The limits reported, in order: key -> (title, short title).
LIMITS: dict[str, tuple[str, str]] = {
    "flexion": ("Flexion", "Flex"),
    "extension": ("Extension", "Ext"),
    "abduction": ("Abduction", "Abd"),
    "adduction": ("Adduction", "Add"),
    "internal_rotation": ("Internal rotation at 0° flexion", "IR 0°"),
    "external_rotation": ("External rotation at 0° flexion", "ER 0°"),
    "internal_rotation_90": ("Internal rotation at 90° flexion", "IR 90°"),
    "external_rotation_90": ("External rotation at 90° flexion", "ER 90°"),
    "fadir": ("FADIR: 90° flexion, 15° adduction, internal rotation", "FADIR"),
}
#: Adduction of the FADIR position, degrees (the test uses 10-20).
FADIR_ADDUCTION_DEG = 15.0
#: A motion with no contact within this many degrees has no limit.
MAX_DEG = 150.0
#: Default search step and bisection tolerance, degrees.
STEP_DEG = 2.0
TOLERANCE_DEG = 0.1
#: The articular head left out of the contact test: femoral surface within
#: head radius + this of the head centre, mm (at least 3x the head fit's rms).
HEAD_TOLERANCE_MM = 0.5
#: Pelvic bone within socket radius + this of the socket centre is the rim, mm.
RIM_BAND_MM = 6.0
#: Femoral regions, in head radii r along the neck axis from the head centre
#: (s) and down the mechanical axis (h): see :func:`femoral_region`.
HEAD_END_R = 0.5
JUNCTION_END_R = 1.1
NECK_END_R = 2.2
NECK_RADIUS_R = 1.2
SHAFT_START_R = 4.0

METHOD = (
    "femur turned about the fixed head centre in the pelvic frame, ISB order "
    "(flexion about the medio-lateral axis, adduction, rotation about the mechanical "
    "axis head centre to knee centre); first bone-to-bone contact of the triangle meshes "
    "(FCL), articular head excluded, by stepping and bisection"
)
BONE_ONLY = (
    "bone only: no labrum (which cuts internal rotation by a median 18°), cartilage, "
    "capsule or muscle; fixed centre of rotation"
)


def _bvh(mesh: trimesh.Trimesh):
    import fcl

    model = fcl.BVHModel()
    model.beginModel(len(mesh.vertices), len(mesh.faces))
    model.addSubModel(
        np.ascontiguousarray(mesh.vertices, dtype=float),
        np.ascontiguousarray(mesh.faces, dtype=np.int32),
    )
    model.endModel()
    return model


def _fcl_transform(tf: Transform):
    import fcl

    return fcl.Transform(np.ascontiguousarray(tf[:3, :3]), np.ascontiguousarray(tf[:3, 3]))


@dataclass(frozen=True)
class MotionLandmarks:
    """Where the hip turns and how its parts are named, measurement frame (mm).

    Attributes
    ----------
    center_mm : (3,) float
        Head centre: the fixed centre of rotation.
    head_radius_mm : float
    toward_neck : (3,) float
        Unit neck axis from the head centre down the neck.
    knee_mm : (3,) float
        Knee centre; the mechanical axis runs from it to the head centre.
    socket_center_mm : (3,) float
    socket_radius_mm : float
    axes : hipviz.measures.HipAxes
        Lateral, anterior and superior unit axes of the pelvis.
    side : {"left", "right"}
    head_tolerance_mm : float
        The articular head left out of the test reaches this far past
        ``head_radius_mm``.
    """

    center_mm: Vector
    head_radius_mm: float
    toward_neck: Vector
    knee_mm: Vector
    socket_center_mm: Vector
    socket_radius_mm: float
    axes: ms.HipAxes
    side: str
    head_tolerance_mm: float = HEAD_TOLERANCE_MM

    @property
    def sign(self) -> float:
        """+1 for a right hip, -1 for a left one (from the axes, not the label)."""
        right = np.cross(self.axes.anterior, self.axes.superior)
        return 1.0 if float(right @ self.axes.lateral) > 0 else -1.0

    @property
    def mechanical_axis(self) -> Vector:
        """Unit axis from the knee centre to the head centre (starting pose)."""
        return unit(np.asarray(self.center_mm) - np.asarray(self.knee_mm))

    def moved(
        self, tf_socket: Transform, tf_knee: Transform, tf_head: Transform | None = None
    ) -> MotionLandmarks:
        """Landmarks after the socket moves by ``tf_socket``, the knee by ``tf_knee``.

        The head centre follows the socket (as in :meth:`hipviz.simulate.Simulation.move`);
        the neck axis turns with ``tf_head``, the move of the piece that carries the head
        (default: a translation, which leaves it as it is).
        """
        neck = self.toward_neck if tf_head is None else tf_head[:3, :3] @ self.toward_neck
        return replace(
            self,
            center_mm=apply(tf_socket, self.center_mm),
            knee_mm=apply(tf_knee, self.knee_mm),
            socket_center_mm=apply(tf_socket, self.socket_center_mm),
            toward_neck=np.asarray(neck, dtype=float),
        )


def pose_rotation(
    lm: MotionLandmarks, flexion_deg: float, adduction_deg: float, rotation_deg: float
) -> FloatArray:
    """(3, 3) rotation of the femur about its head centre for one pose (module docstring)."""
    right = np.cross(lm.axes.anterior, lm.axes.superior)
    s = lm.sign
    return (
        rotation(right, flexion_deg)
        @ rotation(s * np.asarray(lm.axes.anterior), adduction_deg)
        @ rotation(s * lm.mechanical_axis, rotation_deg)
    )


def pose_transform(
    lm: MotionLandmarks, flexion_deg: float, adduction_deg: float, rotation_deg: float
) -> Transform:
    """(4, 4) move of the femur, measurement frame, for one pose (turns about the head centre)."""
    r = pose_rotation(lm, flexion_deg, adduction_deg, rotation_deg)
    c = np.asarray(lm.center_mm, dtype=float)
    return rigid(r, c - r @ c)


def femoral_region(point_mm: Vector, lm: MotionLandmarks) -> str:
    """Name the part of the femur at ``point_mm`` (femur in its starting pose).

    With r the head radius, s the distance from the head centre along the
    neck axis, q the distance from the neck axis and h the depth below the
    head centre along the mechanical axis:

    * ``shaft`` h > 4 r (below the lesser trochanter);
    * ``head`` s < 0.5 r;
    * ``head-neck junction`` 0.5 r <= s < 1.1 r;
    * ``neck`` 1.1 r <= s < 2.2 r and q < 1.2 r;
    * ``trochanter`` the rest (greater and lesser trochanters, the
      intertrochanteric region).
    """
    v = np.asarray(point_mm, dtype=float) - lm.center_mm
    r = lm.head_radius_mm
    s = float(v @ lm.toward_neck)
    q = float(np.linalg.norm(v - s * np.asarray(lm.toward_neck)))
    h = float(-v @ lm.mechanical_axis)
    if h > SHAFT_START_R * r:
        return "shaft"
    if s < HEAD_END_R * r:
        return "head"
    if s < JUNCTION_END_R * r:
        return "head-neck junction"
    if s < NECK_END_R * r and q < NECK_RADIUS_R * r:
        return "neck"
    return "trochanter"


def pelvic_region(point_mm: Vector, lm: MotionLandmarks) -> str:
    """Name the part of the pelvis at ``point_mm`` (measurement frame).

    ``rim``: within the socket radius + 6 mm of the socket centre (the
    acetabular rim and lunate surface). Farther away, by direction from the
    socket centre: ``ilium`` above it, ``pubis`` below and in front,
    ``ischium`` below and behind (the three bones meet at the socket).
    """
    v = np.asarray(point_mm, dtype=float) - lm.socket_center_mm
    if np.linalg.norm(v) <= lm.socket_radius_mm + RIM_BAND_MM:
        return "rim"
    if v @ lm.axes.superior >= 0:
        return "ilium"
    return "pubis" if v @ lm.axes.anterior >= 0 else "ischium"


def clock_face(point_mm: Vector, lm: MotionLandmarks) -> float:
    """Clock position of a pelvic point around the socket, hours in (0, 12].

    Seen from the side (the direction from the socket centre projected on
    the sagittal plane): 12 superior, 3 anterior, on either side, as the
    cam position of :mod:`hipviz.cases` and the alpha clock of
    :func:`hipviz.measures.alpha_angle`.
    """
    v = np.asarray(point_mm, dtype=float) - lm.socket_center_mm
    return ms.clock_hours(float(v @ lm.axes.superior), float(v @ lm.axes.anterior))


@dataclass(frozen=True)
class PoseContact:
    """One pose of the femur and the bone contact there.

    Attributes
    ----------
    tf_femur : (4, 4) float
        Move of the femur (every femoral piece) for the pose, measurement
        frame; the pieces' own placements come before it.
    touching : bool
    points_mm : (k, 3) float
        Contact points, measurement frame (empty when not touching).
    femur_faces, pelvis_faces : dict
        Piece name -> (k_piece,) int face indices of that piece's mesh
        (its input faces, for highlighting) that take part in the contact.
    depth_mm : (k,) float
        Penetration depth of each contact point (FCL's estimate).
    """

    tf_femur: Transform
    touching: bool
    points_mm: FloatArray
    femur_faces: dict[str, np.ndarray] = field(default_factory=dict)
    pelvis_faces: dict[str, np.ndarray] = field(default_factory=dict)
    depth_mm: FloatArray = field(default_factory=lambda: np.zeros(0))


@dataclass(frozen=True)
class Limit:
    """The end of one motion: angle (degrees, None if free), where and what meets.

    ``angle_deg`` is the middle of the last bisection bracket (free below,
    touching above); ``point_mm`` the deepest contact point just past it,
    measurement frame; ``clock``, ``femur_part``, ``pelvis_part`` as
    :func:`clock_face`, :func:`femoral_region`, :func:`pelvic_region`.
    """

    key: str
    angle_deg: float | None
    clock: float | None = None
    femur_part: str | None = None
    pelvis_part: str | None = None
    point_mm: Vector | None = None
    note: str | None = None


@dataclass
class _Piece:
    mesh: trimesh.Trimesh
    model: Any  # fcl.BVHModel
    faces: np.ndarray  # face indices of ``mesh`` in ``model``
    tf: Transform
    obj: Any = None  # fcl.CollisionObject


class MotionModel:
    """Bones ready to be turned and tested for contact, pose by pose.

    Parameters
    ----------
    pelvis : mapping
        Piece name -> (mesh, (4, 4) placement) of the pelvic bones, meshes in
        their own coordinates, placements into the measurement frame (mm).
    femur : mapping
        The same for the femur (one piece, or the pieces of a cut femur).
    landmarks : MotionLandmarks
        Measurement frame.
    bvh_cache : dict, optional
        Shared store of collision structures, keyed by mesh identity and the
        part left out; a moved fragment or femur reuses them (no rebuild).

    Examples
    --------
    >>> model = MotionModel.from_analysis(pelvis, femur, analysis)  # doctest: +SKIP
    >>> model.query(30.0, 0.0, 10.0).touching  # doctest: +SKIP
    False
    >>> model.limits()["internal_rotation_90"].angle_deg  # doctest: +SKIP
    30.3

    A model places its collision objects for every query, so it is not
    safe to share between threads: give each session its own (they can
    share ``bvh_cache``).
    """

    def __init__(
        self,
        pelvis: Mapping[str, tuple[trimesh.Trimesh, Transform]],
        femur: Mapping[str, tuple[trimesh.Trimesh, Transform]],
        landmarks: MotionLandmarks,
        *,
        bvh_cache: dict | None = None,
    ):
        try:
            import fcl
        except ImportError as exc:  # pragma: no cover - a dependency
            msg = f"range of motion needs python-fcl (pip install python-fcl): {exc}"
            raise HipvizError(msg) from exc
        self._fcl = fcl
        self.landmarks = landmarks
        self.cache = {} if bvh_cache is None else bvh_cache
        self.pelvis = {
            name: self._piece(mesh, np.asarray(tf, float), None)
            for name, (mesh, tf) in pelvis.items()
        }
        self.femur = {
            name: self._piece(mesh, np.asarray(tf, float), landmarks)
            for name, (mesh, tf) in femur.items()
        }
        for p in self.pelvis.values():
            p.obj = fcl.CollisionObject(p.model, _fcl_transform(p.tf))
        for p in self.femur.values():
            p.obj = fcl.CollisionObject(p.model, _fcl_transform(p.tf))
        self._request = fcl.CollisionRequest()
        self._contact_request = fcl.CollisionRequest(num_max_contacts=200, enable_contact=True)

    # ---------------------------------------------------------------- set-up

    def _piece(self, mesh: trimesh.Trimesh, tf: Transform, lm: MotionLandmarks | None) -> _Piece:
        """A piece's collision structure, the articular head left out of a femoral piece."""
        faces = np.arange(len(mesh.faces))
        key: tuple = (id(mesh), None)
        if lm is not None:
            # The head centre in the piece's own coordinates: the part left
            # out depends only on it, so a piece that follows the socket
            # keeps its structure.
            c_local = apply(invert(tf), lm.center_mm)
            reach = lm.head_radius_mm + lm.head_tolerance_mm
            dist = np.linalg.norm(np.asarray(mesh.vertices) - c_local, axis=1)
            head = (dist[mesh.faces] <= reach).all(axis=1)
            faces = np.flatnonzero(~head)
            key = (id(mesh), tuple(np.round(c_local, 6)), round(reach, 6))
        if key not in self.cache:
            sub = trimesh.Trimesh(
                np.asarray(mesh.vertices), np.asarray(mesh.faces)[faces], process=False
            )
            # Keep the mesh alive with its structure: ids are only unique while it lives.
            self.cache[key] = (_bvh(sub), faces, mesh)
        model, faces, _ = self.cache[key]
        return _Piece(mesh, model, faces, tf)

    @classmethod
    def from_analysis(
        cls,
        pelvis: trimesh.Trimesh,
        femur: trimesh.Trimesh,
        analysis,
        *,
        knee_mm: Vector | None = None,
        head_tolerance_mm: float | None = None,
    ) -> MotionModel:
        """The model of an analysed hip (:func:`hipviz.hip.analyze`); meshes in input coords."""
        from . import landmarks as lmk
        from .hip import _moved

        tf = analysis.tf_ras_input
        femur_r = _moved(femur, tf)
        if knee_mm is None:
            knee_mm = lmk.knee_center(femur_r, analysis.femur.shaft)
        lm = landmarks_of(analysis, knee_mm, head_tolerance_mm=head_tolerance_mm)
        return cls({"pelvis": (pelvis, tf)}, {"femur": (femur, tf)}, lm)

    def moved(
        self,
        pelvis_tfs: Mapping[str, Transform] | None = None,
        femur_tfs: Mapping[str, Transform] | None = None,
        landmarks: MotionLandmarks | None = None,
    ) -> MotionModel:
        """The same bones with new placements (e.g. after a PAO move), sharing structures."""
        pelvis_tfs, femur_tfs = pelvis_tfs or {}, femur_tfs or {}
        return MotionModel(
            {n: (p.mesh, pelvis_tfs.get(n, p.tf)) for n, p in self.pelvis.items()},
            {n: (p.mesh, femur_tfs.get(n, p.tf)) for n, p in self.femur.items()},
            landmarks or self.landmarks,
            bvh_cache=self.cache,
        )

    # ---------------------------------------------------------------- poses

    def _place(self, tf_move: Transform) -> None:
        for p in self.femur.values():
            p.obj.setTransform(_fcl_transform(tf_move @ p.tf))

    def _touching(self, tf_move: Transform) -> bool:
        fcl = self._fcl
        self._place(tf_move)
        for f in self.femur.values():
            for p in self.pelvis.values():
                if fcl.collide(f.obj, p.obj, self._request, fcl.CollisionResult()):
                    return True
        return False

    def _contact(self, tf_move: Transform) -> PoseContact:
        fcl = self._fcl
        self._place(tf_move)
        points, depth = [], []
        femur_faces: dict[str, list] = {}
        pelvis_faces: dict[str, list] = {}
        for fn, f in self.femur.items():
            for pn, p in self.pelvis.items():
                res = fcl.CollisionResult()
                if not fcl.collide(f.obj, p.obj, self._contact_request, res):
                    continue
                for con in res.contacts:
                    fb, pb = (con.b1, con.b2) if con.o1 is f.model else (con.b2, con.b1)
                    points.append(np.asarray(con.pos, dtype=float))
                    depth.append(float(con.penetration_depth))
                    femur_faces.setdefault(fn, []).append(int(f.faces[fb]))
                    pelvis_faces.setdefault(pn, []).append(int(p.faces[pb]))
        pts = np.asarray(points, dtype=float).reshape(-1, 3)
        return PoseContact(
            tf_move,
            bool(len(pts)),
            pts,
            {k: np.unique(v) for k, v in femur_faces.items()},
            {k: np.unique(v) for k, v in pelvis_faces.items()},
            np.asarray(depth, dtype=float),
        )

    def query(
        self, flexion_deg: float, adduction_deg: float = 0.0, rotation_deg: float = 0.0
    ) -> PoseContact:
        """The femur at one pose (ISB angles, degrees) and the bone contact there.

        About a millisecond on the built-in hip; meant for a slider.
        """
        tf = pose_transform(self.landmarks, flexion_deg, adduction_deg, rotation_deg)
        return self._contact(tf)

    # ---------------------------------------------------------------- limits

    def _paths(self) -> dict[str, tuple[Callable[[float], Transform], Transform | None]]:
        """Limit key -> (angle -> femur move, the base pose the motion starts from)."""
        lm = self.landmarks

        def tf(f: float, a: float, r: float) -> Transform:
            return pose_transform(lm, f, a, r)

        fa = FADIR_ADDUCTION_DEG
        return {
            "flexion": (lambda t: tf(t, 0.0, 0.0), None),
            "extension": (lambda t: tf(-t, 0.0, 0.0), None),
            "abduction": (lambda t: tf(0.0, -t, 0.0), None),
            "adduction": (lambda t: tf(0.0, t, 0.0), None),
            "internal_rotation": (lambda t: tf(0.0, 0.0, t), None),
            "external_rotation": (lambda t: tf(0.0, 0.0, -t), None),
            "internal_rotation_90": (lambda t: tf(90.0, 0.0, t), tf(90.0, 0.0, 0.0)),
            "external_rotation_90": (lambda t: tf(90.0, 0.0, -t), tf(90.0, 0.0, 0.0)),
            "fadir": (lambda t: tf(90.0, fa, t), tf(90.0, fa, 0.0)),
        }

    def first_contact(
        self,
        path: Callable[[float], Transform],
        *,
        step_deg: float = STEP_DEG,
        tolerance_deg: float = TOLERANCE_DEG,
        max_deg: float = MAX_DEG,
    ) -> tuple[float | None, float | None]:
        """(last free angle, first touching angle) along ``path``, degrees.

        Steps of ``step_deg`` from 0, then bisection to within
        ``tolerance_deg``. ``(None, None)`` when nothing touches up to
        ``max_deg``; ``(0, 0)`` when the bones touch at the start.
        """
        if self._touching(path(0.0)):
            return 0.0, 0.0
        lo, t = 0.0, 0.0
        while t < max_deg:
            t = min(t + step_deg, max_deg)
            if self._touching(path(t)):
                hi = t
                while hi - lo > tolerance_deg:
                    mid = 0.5 * (lo + hi)
                    if self._touching(path(mid)):
                        hi = mid
                    else:
                        lo = mid
                return lo, hi
            lo = t
        return None, None

    def limit(self, key: str, **search: float) -> Limit:
        """One limit of :data:`LIMITS` (``search``: as :meth:`first_contact`)."""
        path, base = self._paths()[key]
        if base is not None:
            if self._touching(base):
                at = "90° flexion" if key != "fadir" else "the FADIR start (90° flexion, 15° add.)"
                return Limit(key, None, note=f"the bones meet before {at}: no rotation from there")
        lo, hi = self.first_contact(path, **search)
        if lo is None:
            note = f"no bone contact within {search.get('max_deg', MAX_DEG):g}°"
            return Limit(key, None, note=note)
        contact = self._contact(path(hi))
        angle = 0.5 * (lo + hi)
        note = "the bones already touch at the start pose" if hi == 0.0 else None
        if not contact.touching:  # pragma: no cover - FCL reported the pair above
            return Limit(key, angle, note=note)
        i = int(np.argmax(contact.depth_mm))
        point = contact.points_mm[i]
        # The femur's part is named in its starting pose.
        point_femur = apply(invert(contact.tf_femur), point)
        return Limit(
            key,
            angle,
            clock_face(point, self.landmarks),
            femoral_region(point_femur, self.landmarks),
            pelvic_region(point, self.landmarks),
            point,
            note,
        )

    def limits(self, **search: float) -> dict[str, Limit]:
        """Every limit of :data:`LIMITS`, in order."""
        return {key: self.limit(key, **search) for key in LIMITS}


def landmarks_of(
    analysis, knee_mm: Vector, *, head_tolerance_mm: float | None = None
) -> MotionLandmarks:
    """:class:`MotionLandmarks` of an analysis (:class:`hipviz.hip.HipAnalysis`).

    The head left out of the contact test reaches ``head_tolerance_mm`` past
    the head radius: by default 0.5 mm or three times the head fit's rms,
    whichever is larger, so a slightly uneven head does not meet its socket.
    """
    head = analysis.head
    tol = (
        max(HEAD_TOLERANCE_MM, 3.0 * float(head.rms_mm))
        if head_tolerance_mm is None
        else float(head_tolerance_mm)
    )
    socket = analysis.socket
    return MotionLandmarks(
        center_mm=np.asarray(head.center_mm, float),
        head_radius_mm=float(head.radius_mm),
        toward_neck=np.asarray(analysis.femur.toward_neck, float),
        knee_mm=np.asarray(knee_mm, float),
        socket_center_mm=np.asarray(socket.center_mm if socket else head.center_mm, float),
        socket_radius_mm=float(socket.radius_mm if socket else head.radius_mm),
        axes=analysis.axes,
        side=analysis.side,
        head_tolerance_mm=tol,
    )


def rom_dict(
    limits: Mapping[str, Limit], landmarks: MotionLandmarks, tf_input_ras: Transform | None = None
) -> dict[str, Any]:
    """The ``rom_deg``, ``impingement`` and ``rom_notes`` entries of the JSON contract.

    Contact points are given in the input coordinates when ``tf_input_ras``
    (measurement frame to input) is given, as ``head_center_mm`` is.
    """
    rom: dict[str, float | None] = {}
    imp: dict[str, dict[str, Any] | None] = {}
    notes: dict[str, str] = {}
    for key, lim in limits.items():
        rom[key] = None if lim.angle_deg is None else round(float(lim.angle_deg), 1)
        if lim.point_mm is None:
            imp[key] = None
        else:
            point = lim.point_mm if tf_input_ras is None else apply(tf_input_ras, lim.point_mm)
            imp[key] = {
                "clock": round(float(lim.clock), 1),
                "parts": {"femur": lim.femur_part, "pelvis": lim.pelvis_part},
                "point_mm": [round(float(v), 2) for v in point],
            }
        if lim.note:
            notes[key] = lim.note
    tol = landmarks.head_tolerance_mm
    return {
        "rom_deg": rom,
        "impingement": imp,
        "rom_notes": notes,
        "rom_method": METHOD,
        "rom_bone_only": BONE_ONLY,
        "rom_head_tolerance_mm": round(float(tol), 2),
        "rom_tolerance_deg": TOLERANCE_DEG,
    }


__all__ = [
    "BONE_ONLY",
    "LIMITS",
    "Limit",
    "MotionLandmarks",
    "MotionModel",
    "PoseContact",
    "clock_face",
    "femoral_region",
    "landmarks_of",
    "pelvic_region",
    "pose_rotation",
    "pose_transform",
    "rom_dict",
]
