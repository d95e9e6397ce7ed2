"""The built-in hip: the LLP26 pelvis with a femur seated in its socket.

The raw shape model does not seat the femur (on the mean its head centre is
9 mm off the socket centre and 5 mm through the roof). Here each femur is
seated: its head-sphere centre onto the socket-sphere centre, its axes
(mechanical axis, posterior condylar axis) onto the pelvic axes, i.e.
neutral stance; the socket is reamed to the head and the bone-to-bone gap
checked. Where the bones still touch (a socket much smaller than its head,
or the lesser trochanter against the ischium: some shape-mode combinations),
the femur backs out along the socket's axis until they clear.

Everything is returned in the anterior pelvic plane frame (RAS, mm, origin
at the mid-point of the two ASIS), computed from the model's landmark nodes.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import trimesh

from . import atlas
from . import landmarks as lmk
from ._typing import ArrayLike, FloatArray, Side, Transform, Vector
from .errors import InputError, LandmarkError
from .frames import app_from_points
from .geometry import Sphere, apply, rigid, translation, unit
from .proximity import min_gap_mm

#: Radial clearance (mm) between the seated head sphere and the reamed socket.
SOCKET_CLEARANCE_MM = 2.0
SIDES = ("left", "right")
#: Reamed bone is pressed into a shell this thick outside the clearance, mm.
REAM_BLEND_MM = 3.0
#: The head surface is followed this far off its sphere when reaming; beyond,
#: the ray runs along the neck, mm.
HEAD_BULGE_MAX_MM = 8.0
#: Resolution at which the femurs are seated (the result serves every resolution).
SEATING_SUBDIVISIONS = 8
#: A socket found farther than this from its seed is the other one: it is then
#: looked for on bone within this distance of the seed only, mm (the seed lies
#: 10-20 mm from its socket's centre, the other socket 150 mm away).
SOCKET_SEARCH_MM = 60.0
#: The socket a head is seated in has a radius within these bounds of the head's, mm
#: (the model's mean: 21.5-23.9 mm under a 22.7 mm head).
SOCKET_RADIUS_FROM_HEAD_MM = (-3.0, 6.0)
#: The range searched when none of the first fits: a socket much larger than its head (a
#: shallow dysplastic shape), still excluding fossa-sized pits, mm about the head radius.
SOCKET_RADIUS_WIDER_MM = (-5.0, 12.0)
#: A seated femur closer to the (reamed) pelvis than this backs out of its socket, mm.
MIN_SEATED_GAP_MM = 0.5
#: ... aiming at a gap of this, mm ...
BACK_OUT_GAP_MM = 1.0
#: ... in at most this many steps, and never farther than this from the socket centre, mm.
MAX_BACK_OUT_STEPS = 8
MAX_BACK_OUT_MM = 8.0


@dataclass(frozen=True)
class BuiltinHip:
    """One side of the built-in anatomy, in the APP frame (RAS, mm).

    Attributes
    ----------
    pelvis : trimesh.Trimesh
        Whole pelvis with sacrum (three closed bodies).
    femur : trimesh.Trimesh
        The femur of ``side``, seated in its socket.
    side : {"left", "right"}
    landmarks : dict
        Pelvic landmark points (3,) from the model's nodes.
    head : Sphere
        Femoral head after seating.
    socket : Sphere
        Socket sphere it was seated on.
    gap_mm : float
        Smallest femur-to-pelvis distance after seating (> 0: no contact).
    weights_sd : (26,) float
    tf_app_raw : (4, 4) float
        Raw model frame -> APP frame.
    """

    pelvis: trimesh.Trimesh
    femur: trimesh.Trimesh
    side: Side
    landmarks: dict[str, Vector]
    head: Sphere
    socket: Sphere
    gap_mm: float
    weights_sd: np.ndarray
    tf_app_raw: Transform


def ream_socket(
    pelvis: trimesh.Trimesh,
    center_mm: ArrayLike,
    clear_radius_mm: float | ArrayLike,
    *,
    blend_mm: float = REAM_BLEND_MM,
) -> tuple[trimesh.Trimesh, float]:
    """Push bone near ``center_mm`` radially outward so none lies within ``clear_radius_mm``.

    A radial map ``p -> c + f(|p - c|) (p - c)/|p - c|``, as a reamer cuts:
    bone nearer than ``clear_radius_mm + blend_mm`` is pressed into the shell
    between ``clear_radius_mm`` and ``clear_radius_mm + blend_mm`` (``f``
    linear and strictly increasing there, so the surface cannot fold and
    stacked layers keep their order); bone farther out does not move at all.
    Every direction seen from the centre is kept (so rim edges, and with them
    the centre-edge angles and version, do not change), and so is the shape
    of the bone beyond the clearance: the ischium or pubis past the rim is
    never pressed onto the socket's sphere, where a rim sweep would take it
    for acetabular wall. Used to give the model's socket, which is smaller
    than its head, a cartilage-like clearance.

    Parameters
    ----------
    pelvis : trimesh.Trimesh
        mm.
    center_mm : (3,) float
        Reaming centre (the seated head centre).
    clear_radius_mm : float or (n_vertices,) float
        Clearance radius, one for all directions or one per vertex (along the
        vertex's direction from the centre: the head surface there plus the
        clearance).
    blend_mm : float
        Thickness of the shell the reamed bone is pressed into, mm.

    Returns
    -------
    pelvis, shift_mm
        The reamed copy and the largest radial shift applied.
    """
    c = np.asarray(center_mm, dtype=float)
    v = np.asarray(pelvis.vertices, dtype=float) - c
    d = np.linalg.norm(v, axis=1)
    clear = np.broadcast_to(np.asarray(clear_radius_mm, dtype=float), d.shape)
    inside = (d < clear) & (d > 0)
    if not inside.any():
        return pelvis.copy(), 0.0
    d_lo = float(d[inside].min())
    outer = clear + blend_mm
    # f(d_lo) = clear, f(outer) = outer, linear between: slope blend / (outer - d_lo) > 0.
    moving = (d < outer) & (d > 0)
    f = clear + blend_mm * (d - d_lo) / np.maximum(outer - d_lo, 1e-9)
    f = np.where(moving, np.maximum(f, d), d)
    moved = c + v * (f / np.maximum(d, 1e-12))[:, None]
    return trimesh.Trimesh(moved, pelvis.faces.copy(), process=False), float(np.max(f - d))


def _socket_near(
    pelvis: trimesh.Trimesh, seed_mm: ArrayLike, head_radius_mm: float
) -> tuple[Sphere, Vector]:
    """The socket sphere nearest ``seed_mm`` and the unit axis out of it.

    The concave sphere of the whole pelvis that is best supported near the
    seed, among radii that can hold the head
    (:data:`SOCKET_RADIUS_FROM_HEAD_MM` about ``head_radius_mm``): a smaller
    concave patch (the acetabular fossa, the quadrilateral plate behind it)
    can fit a sphere better than the lunate surface does, and a head seated
    on its centre would sit through the medial wall. Should the sphere found
    be the other socket (a right femur was seen seated in the left one),
    the search is repeated on the bone within :data:`SOCKET_SEARCH_MM` of
    the seed only.
    """
    seed = np.asarray(seed_mm, dtype=float)
    socket, inliers = _concave_sphere(pelvis, seed, head_radius_mm)
    if np.linalg.norm(socket.center_mm - seed) <= SOCKET_SEARCH_MM:
        return socket, lmk.socket_opening(pelvis, inliers, socket.center_mm)
    near = np.linalg.norm(np.asarray(pelvis.vertices) - seed, axis=1) <= SOCKET_SEARCH_MM
    local = pelvis.submesh([np.flatnonzero(near[pelvis.faces].all(axis=1))], append=True)
    socket, inliers = _concave_sphere(local, seed, head_radius_mm)
    return socket, lmk.socket_opening(local, inliers, socket.center_mm)


def _concave_sphere(
    mesh: trimesh.Trimesh, seed: Vector, head_radius_mm: float
) -> tuple[Sphere, np.ndarray]:
    """The best concave sphere near ``seed`` that could hold the head, and its inliers.

    Radii within :data:`SOCKET_RADIUS_FROM_HEAD_MM` of the head's first, then
    within :data:`SOCKET_RADIUS_WIDER_MM`.

    Raises
    ------
    LandmarkError
        No such sphere in either range.
    """
    for lo, hi in (SOCKET_RADIUS_FROM_HEAD_MM, SOCKET_RADIUS_WIDER_MM):
        radii = (head_radius_mm + lo, head_radius_mm + hi)
        try:
            return lmk.find_head(mesh, near_mm=seed, concave=True, radius_range_mm=radii)
        except LandmarkError:
            continue
    msg = (
        f"no socket that could hold the femoral head (radius {head_radius_mm:.1f} mm) "
        f"was found on the pelvis: no concave sphere of radius {radii[0]:.1f}-{radii[1]:.1f} mm"
    )
    raise LandmarkError(msg, bone="pelvis")


def _sockets_near(
    pelvis: trimesh.Trimesh, seeds_mm: list[Vector], head_radius_mm: float
) -> list[Sphere]:
    """The socket sphere of :func:`_socket_near` for each seed, from one shared search."""
    lo, hi = SOCKET_RADIUS_FROM_HEAD_MM
    radii = (head_radius_mm + lo, head_radius_mm + hi)
    try:
        found = lmk.find_spheres(pelvis, list(seeds_mm), radius_range_mm=radii, concave=True)
    except LandmarkError:  # each seed searched on its own, in the wider range too
        found = [None] * len(seeds_mm)
    out = []
    for seed, socket in zip(seeds_mm, found, strict=True):
        if socket is None or np.linalg.norm(socket.center_mm - seed) > SOCKET_SEARCH_MM:
            socket = _socket_near(pelvis, seed, head_radius_mm)[0]  # the search on local bone
        out.append(socket)
    return out


def seat_femur(
    pelvis: trimesh.Trimesh,
    femur: trimesh.Trimesh,
    socket_seed_mm: ArrayLike,
    *,
    head: Sphere | None = None,
    socket: Sphere | None = None,
) -> tuple[Transform, Sphere, Sphere]:
    """Move a femur so it stands in neutral in the socket nearest ``socket_seed_mm``.

    Both meshes are in an RAS frame. The femoral frame (z: knee centre to head
    centre; y: anterior, away from the posterior condylar line) is turned onto
    the pelvic axes and the head centre put on the socket centre.

    Parameters
    ----------
    head : Sphere, optional
        The femur's head sphere, when the caller has fitted it already
        (:func:`hipviz.landmarks.find_head`, the costliest step).
    socket : Sphere, optional
        The socket sphere near ``socket_seed_mm``, when the caller has found it
        already (:func:`_sockets_near`).

    Returns
    -------
    tf_seated_femur, head, socket
        The (4, 4) rigid move of the femur, its head sphere after the move and
        the socket sphere.
    """
    if head is None:
        head = lmk.head_sphere(femur)
    shaft = lmk.shaft_axis(femur, head)
    cond = lmk.posterior_condylar_axis(femur, shaft, posterior_hint=np.array([0.0, -1.0, 0.0]))
    if cond is None:  # pragma: no cover - the atlas femur is whole
        msg = "the built-in femur has no condyles"
        raise InputError(msg)
    z = unit(head.center_mm - lmk.knee_center(femur, shaft))
    y = unit(-cond[2] - (-cond[2] @ z) * z)
    x = np.cross(y, z)
    r = np.vstack([x, y, z])
    if socket is None:
        socket, _ = _socket_near(pelvis, socket_seed_mm, head.radius_mm)
    tf = rigid(r, socket.center_mm - r @ head.center_mm)
    head_moved = Sphere(socket.center_mm.copy(), head.radius_mm, head.rms_mm, head.n)
    return tf, head_moved, socket


def _clearance_radii(pelvis: trimesh.Trimesh, femur: trimesh.Trimesh, head: Sphere) -> FloatArray:
    """Per pelvis vertex, the head surface along its direction from the head centre plus clearance.

    The head is not a sphere (it bulges a few mm off its fitted sphere in
    places), so the socket is reamed to its real surface where that lies
    outside the sphere: the first exit of the ray from the centre through
    the femur, between the sphere and :data:`HEAD_BULGE_MAX_MM` off it
    (beyond, the ray runs along the neck), plus :data:`SOCKET_CLEARANCE_MM`. Vertices too far out
    to be reached get the largest radius without a ray cast.

    Returns
    -------
    (n_vertices,) float
        mm.
    """
    from .raycast import RayCaster

    r_max = head.radius_mm + HEAD_BULGE_MAX_MM
    v = np.asarray(pelvis.vertices, dtype=float) - head.center_mm
    d = np.linalg.norm(v, axis=1)
    radii = np.full(len(v), r_max + SOCKET_CLEARANCE_MM)
    near = np.flatnonzero((d < r_max + SOCKET_CLEARANCE_MM + REAM_BLEND_MM) & (d > 0))
    if len(near):
        surface = RayCaster(femur).first_hit(head.center_mm, v[near] / d[near, None])
        # Never less than the sphere: following the foveal pit would leave a
        # ridge that a teaching case's roof turn carries onto the round head.
        radii[near] = np.clip(surface, head.radius_mm, r_max) + SOCKET_CLEARANCE_MM
    return radii


def ream_to_head(
    pelvis: trimesh.Trimesh, femur: trimesh.Trimesh, head: Sphere
) -> tuple[trimesh.Trimesh, float]:
    """Ream ``pelvis`` about ``head`` to :data:`SOCKET_CLEARANCE_MM` off the femur's real head.

    :func:`ream_socket` with the per-direction radii of :func:`_clearance_radii`:
    only bone closer than that to the head surface moves.

    Returns
    -------
    pelvis, shift_mm
        As :func:`ream_socket`.
    """
    return ream_socket(pelvis, head.center_mm, _clearance_radii(pelvis, femur, head))


def _app_geometry(weights: tuple[float, ...], subdivisions: int):
    """Pelvis, left femur and landmarks of the model, in its APP frame."""
    geo = atlas.evaluate(np.asarray(weights), subdivisions=subdivisions)
    lm = geo.landmarks
    tf = app_from_points(
        lm["asis_left"],
        lm["asis_right"],
        0.5 * (lm["pubic_tubercle_left"] + lm["pubic_tubercle_right"]),
        np.asarray(geo.pelvis.vertices).mean(axis=0),
    )
    pelvis = trimesh.Trimesh(apply(tf, geo.pelvis.vertices), geo.pelvis.faces.copy(), process=False)
    left = trimesh.Trimesh(
        apply(tf, geo.femur_left.vertices), geo.femur_left.faces.copy(), process=False
    )
    return pelvis, left, {k: apply(tf, v) for k, v in lm.items()}, tf


def _seated_gaps(
    pelvis: trimesh.Trimesh, femurs: dict[str, trimesh.Trimesh], seats: dict
) -> tuple[trimesh.Trimesh, dict[str, tuple[trimesh.Trimesh, float]]]:
    """Ream ``pelvis`` about both seated heads; each seated femur and its gap, mm."""
    moved = {
        side: trimesh.Trimesh(
            apply(tf, femurs[side].vertices), femurs[side].faces.copy(), process=False
        )
        for side, (tf, _, _) in seats.items()
    }
    # The model's bony socket is smaller than its head (mean: 21.5 vs 22.9 mm),
    # so ream each socket to a cartilage-like clearance around the real head
    # surface, which bulges up to a few mm off its sphere.
    for side, (_, head, _) in seats.items():
        pelvis, _ = ream_to_head(pelvis, moved[side], head)
    out = {}
    for side, (_, head, _) in seats.items():
        gap = min_gap_mm(
            pelvis, moved[side], near_mm=head.center_mm, radius_mm=2.5 * head.radius_mm
        )
        out[side] = (moved[side], gap)
    return pelvis, out


def _back_out(
    pelvis: trimesh.Trimesh, femurs: dict[str, trimesh.Trimesh], seats: dict
) -> tuple[dict, trimesh.Trimesh, dict[str, tuple[trimesh.Trimesh, float]]]:
    """Move each femur out of its socket, along the socket's opening, until the bones clear.

    With the head centre on the socket centre, a socket much smaller than its
    head (a combination the shape modes can make: socket radius 16 mm under a
    23 mm head) holds the head too deep: reaming clears the socket, but the
    femoral neck still runs into the rim, or the lesser trochanter into the
    ischium. A femur closer than :data:`MIN_SEATED_GAP_MM` moves straight out
    of the socket in steps until its gap reaches :data:`BACK_OUT_GAP_MM` (at
    most :data:`MAX_BACK_OUT_MM` from the socket centre); any other femur is
    not moved.

    Returns
    -------
    seats, reamed, gaps
        The seats as :func:`seat_femur` gives them, and
        :func:`_seated_gaps` of the final seats.
    """
    seats = dict(seats)
    backing: set[str] = set()
    for _ in range(MAX_BACK_OUT_STEPS):
        reamed, gaps = _seated_gaps(pelvis, femurs, seats)
        backing |= {side for side, (_, gap) in gaps.items() if gap < MIN_SEATED_GAP_MM}
        short = {side: gaps[side][1] for side in backing if gaps[side][1] < BACK_OUT_GAP_MM}
        moved_any = False
        for side, gap in short.items():
            tf, head, socket = seats[side]
            out = _socket_near(pelvis, socket.center_mm, head.radius_mm)[1]
            depth = float((head.center_mm - socket.center_mm) @ out)
            step = min(BACK_OUT_GAP_MM - gap, MAX_BACK_OUT_MM - depth) * out
            if step @ out <= 1e-3:  # as far out as it may go
                continue
            moved = Sphere(head.center_mm + step, head.radius_mm, head.rms_mm, head.n)
            seats[side] = (translation(step) @ tf, moved, socket)
            moved_any = True
        if not moved_any:
            return seats, reamed, gaps
    return (seats, *_seated_gaps(pelvis, femurs, seats))


def _mirror_x(s: Sphere) -> Sphere:
    """The sphere mirrored about x = 0, as :func:`hipviz.atlas.mirror_x` mirrors a mesh."""
    return Sphere(s.center_mm * [-1.0, 1.0, 1.0], s.radius_mm, s.rms_mm, s.n)


@lru_cache(maxsize=8)
def _seating(weights: tuple[float, ...]) -> tuple[dict, tuple]:
    """Seating moves of both femurs, found once per shape at a fixed resolution.

    Seating is a property of the shape, not of its tessellation: sphere fits
    on different tessellations of the same socket can settle on different
    parts of it, so every resolution reuses these moves.

    Returns
    -------
    seats, built
        Per side ``(tf_seated_femur, head, socket)``; and at
        :data:`SEATING_SUBDIVISIONS` the reamed pelvis, per side (seated femur,
        gap), the landmarks and ``tf_app_raw``, for :func:`_builtin_pair`.
    """
    pelvis, left, landmarks, tf = _app_geometry(weights, SEATING_SUBDIVISIONS)
    # The raw left femur sits near its socket (10-20 mm off along the modes):
    # it picks the left socket among the pelvis's concave spheres; its mirror
    # image picks the right one.
    # The right femur is the left one's mirror image, and so is its head sphere.
    head = lmk.head_sphere(left)
    femurs = {"left": left, "right": atlas.mirror_x(left)}
    heads = {"left": head, "right": _mirror_x(head)}
    seeds = [heads[side].center_mm for side in SIDES]
    sockets = dict(zip(SIDES, _sockets_near(pelvis, seeds, head.radius_mm), strict=True))
    seats = {
        side: seat_femur(
            pelvis, femurs[side], heads[side].center_mm, head=heads[side], socket=sockets[side]
        )
        for side in SIDES
    }
    seats, reamed, gaps = _back_out(pelvis, femurs, seats)
    return seats, (reamed, gaps, landmarks, tf)


def _sides(seats: dict, gaps: dict) -> dict:
    """Per side (femur, head, socket, gap); a gap <= 0 is refused by :func:`builtin_hip`."""
    sides = {}
    for side, (femur, gap) in gaps.items():
        _, head, socket = seats[side]
        sides[side] = (femur, head, socket, gap)
    return sides


@lru_cache(maxsize=4)
def _builtin_pair(weights: tuple[float, ...], subdivisions: int):
    """Pelvis (both sockets reamed), and per side (femur, head, socket, gap); APP frame."""
    seats, built = _seating(weights)
    if subdivisions == SEATING_SUBDIVISIONS:
        pelvis, gaps, landmarks, tf = built
    else:
        raw, left, landmarks, tf = _app_geometry(weights, subdivisions)
        femurs = {"left": left, "right": atlas.mirror_x(left)}
        pelvis, gaps = _seated_gaps(raw, femurs, seats)
        if any(gap <= 0 for _, gap in gaps.values()):
            # A coarser surface's chords can cross where the seating's finer ones
            # did not (by up to 0.4 mm at 4 subdivisions): back out at this one.
            seats, pelvis, gaps = _back_out(raw, femurs, seats)
    return pelvis, _sides(seats, gaps), landmarks, tf


def builtin_hip(
    weights_sd: ArrayLike | None = None, *, side: Side = "left", subdivisions: int = 8
) -> BuiltinHip:
    """The built-in hip for shape-mode weights ``weights_sd`` (SD, 26 modes; default mean).

    Cached: the same weights, side and resolution return the same object.

    Raises
    ------
    InputError
        Bad weights, side or resolution.
    """
    if side not in ("left", "right"):
        msg = f"side must be 'left' or 'right', got {side!r}"
        raise InputError(msg)
    w = np.zeros(atlas.N_MODES) if weights_sd is None else np.asarray(weights_sd, dtype=float)
    w = atlas._validate_weights(w)
    w = np.pad(w, (0, atlas.N_MODES - len(w)))
    pelvis, sides, landmarks, tf = _builtin_pair(tuple(float(v) for v in w), int(subdivisions))
    femur, head, socket, gap = sides[side]
    if gap <= 0:  # the other side's femur may fit: only this side is refused
        msg = f"the seated {side} femur overlaps the pelvis by {-gap:.1f} mm"
        raise InputError(msg)
    return BuiltinHip(pelvis, femur, side, landmarks, head, socket, gap, w, tf)


def export_stl(
    folder: str | Path,
    weights_sd: ArrayLike | None = None,
    *,
    sides: tuple[str, ...] = ("left", "right"),
    subdivisions: int = 10,
) -> list[tuple[Path, trimesh.Trimesh]]:
    """Write ``pelvis.stl`` and ``femur_<side>.stl`` (binary STL, mm, APP frame).

    Returns
    -------
    list of (path, mesh)
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i, side in enumerate(sides):
        hip = builtin_hip(weights_sd, side=side, subdivisions=subdivisions)  # type: ignore[arg-type]
        if i == 0:
            path = folder / "pelvis.stl"
            hip.pelvis.export(path)
            out.append((path, hip.pelvis))
        path = folder / f"femur_{side}.stl"
        hip.femur.export(path)
        out.append((path, hip.femur))
    return out
