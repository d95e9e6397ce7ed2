"""What holds the bone while it heals: screws in the pelvis, a blade plate in the femur.

Simple shapes in the right places, for showing a patient or a student; not
implant planning. All in the measurement frame (RAS, mm), built in the
moved (after) pose.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import trimesh

from ._manifold import affine34, from_manifold
from ._typing import ArrayLike, Points, Transform, Vector
from .geometry import apply, fibonacci_directions, rigid, rotation_z_to, unit
from .measures import HipAxes
from .osteotomy import FemoralCutGeometry

#: Cortical screw radius (4.5 mm screws), mm.
SCREW_RADIUS_MM = 2.25
#: Screws run from the iliac crest within this angle of the superior axis.
SCREW_CONE_DEG = 35.0


@dataclass(frozen=True)
class Screw:
    """A screw from ``entry_mm`` (on the bone surface) to ``tip_mm``, with its mesh.

    ``in_bone`` is the fraction of its length that lies inside bone.
    """

    entry_mm: Vector
    tip_mm: Vector
    radius_mm: float
    in_bone: float
    mesh: trimesh.Trimesh


def screw_mesh(entry: ArrayLike, tip: ArrayLike, radius_mm: float = SCREW_RADIUS_MM):
    """A screw: shaft from ``entry`` to ``tip`` and a round head just outside ``entry``."""
    import manifold3d

    entry, tip = np.asarray(entry, dtype=float), np.asarray(tip, dtype=float)
    d = unit(tip - entry)
    length = float(np.linalg.norm(tip - entry))
    place = affine34(rigid(rotation_z_to(d), entry))
    shaft = manifold3d.Manifold.cylinder(length, radius_mm, radius_mm * 0.6, 24).transform(place)
    head = manifold3d.Manifold.cylinder(3.0, radius_mm * 1.8, radius_mm * 1.8, 24).transform(
        affine34(rigid(rotation_z_to(d), entry - 3.0 * d))
    )
    return from_manifold(shaft + head)[0]


def _inside(meshes: list[trimesh.Trimesh], points: Points) -> np.ndarray:
    out = np.zeros(len(points), bool)
    for m in meshes:
        out |= m.contains(points)
    return out


def pao_screws(
    rest: trimesh.Trimesh,
    fragment: trimesh.Trimesh,
    center_mm: ArrayLike,
    radius_mm: float,
    axes: HipAxes,
    *,
    n: int = 3,
) -> list[Screw]:
    """Screws from the iliac crest down into the turned acetabular fragment.

    Targets lie in the fragment's roof, ``r + 8`` mm from the head centre,
    one straight above and the others tilted 25 degrees to the front and
    back. For each, the direction within 35 degrees of superior that keeps
    the longest run inside bone is chosen; the screw enters where that run
    reaches the surface.

    Parameters
    ----------
    rest, fragment : trimesh.Trimesh
        The two pelvic pieces after the move, closed, measurement frame.
    center_mm : (3,) float
        Head centre after the move.
    """
    c = np.asarray(center_mm, dtype=float)
    S, A = axes.superior, axes.anterior
    tilts = [0.0, 25.0, -25.0][:n]
    dirs = fibonacci_directions(400)
    cone = dirs[dirs[:, 2] >= np.cos(np.radians(SCREW_CONE_DEG))]
    cone = axes.from_las(cone)  # components were (lateral, anterior, superior)
    steps = np.arange(0.0, 110.0, 2.5)
    screws = []
    for tilt in tilts:
        u = unit(np.cos(np.radians(tilt)) * S + np.sin(np.radians(tilt)) * A)
        radial = c + np.outer(np.arange(radius_mm + 3.0, radius_mm + 20.0, 1.0), u)
        inside = fragment.contains(radial)
        if not inside.any():
            continue
        target = radial[np.flatnonzero(inside)[len(np.flatnonzero(inside)) // 2]]
        pts = target[None, None, :] + steps[None, :, None] * cone[:, None, :]
        ins = _inside([rest, fragment], pts.reshape(-1, 3)).reshape(len(cone), len(steps))
        # Longest run inside bone starting at the target (gaps under 5 mm allowed).
        run = np.zeros(len(cone), int)
        for i, row in enumerate(ins):
            last, gap = 0, 0
            for j, v in enumerate(row):
                if v:
                    last, gap = j, 0
                else:
                    gap += 1
                    if gap * 2.5 > 5.0:
                        break
            run[i] = last
        best = int(np.argmax(run))
        if run[best] * 2.5 < 30.0:
            continue
        entry = target + steps[run[best]] * cone[best]
        frac = float(ins[best, : run[best] + 1].mean())
        screws.append(Screw(entry, target, SCREW_RADIUS_MM, frac, screw_mesh(entry, target)))
    return screws


def _box(center: ArrayLike, x: ArrayLike, y: ArrayLike, size: tuple[float, float, float]):
    """Box of ``size`` (along x, y, x cross y), centred at ``center``."""
    import manifold3d

    x, y = unit(x), unit(y)
    y = unit(y - (y @ x) * x)
    z = np.cross(x, y)
    rot = np.column_stack([x, y, z])
    return manifold3d.Manifold.cube(list(size), center=True).transform(
        affine34(rigid(rot, np.asarray(center, dtype=float)))
    )


@dataclass(frozen=True)
class BladePlate:
    """An angled blade plate: blade in the neck, plate on the lateral shaft, shaft screws."""

    blade_entry_mm: Vector
    blade_tip_mm: Vector
    mesh: trimesh.Trimesh
    screws: list[trimesh.Trimesh]


def blade_plate(
    geometry: FemoralCutGeometry,
    tf_proximal: Transform,
    tf_distal: Transform,
    center_mm: ArrayLike,
    radius_mm: float,
    *,
    plate_length_mm: float = 90.0,
) -> BladePlate:
    """Blade plate fixing an intertrochanteric osteotomy, in the moved pose.

    The blade enters the lateral cortex 15 mm above the cut and runs toward
    the lower half of the head, stopping short of it; the plate lies on the
    lateral cortex of the shaft below the cut with three screws across it.

    Parameters
    ----------
    geometry : FemoralCutGeometry
        The cut, in the unmoved measurement frame.
    tf_proximal, tf_distal : (4, 4) float
        Moves of the proximal and distal pieces.
    center_mm : (3,) float
        Head centre after the move.
    """
    import manifold3d

    g = geometry
    k = -g.plane.normal  # toward the knee
    medial = unit(g.hinge_medial_mm - g.hinge_lateral_mm)
    anterior = unit(np.cross(k, medial))
    c = np.asarray(center_mm, dtype=float)

    # Blade (moves with the proximal piece).
    entry = apply(tf_proximal, g.hinge_lateral_mm - 15.0 * k)
    aim = c + 0.35 * radius_mm * (tf_proximal[:3, :3] @ k)  # lower half of the head
    b = unit(aim - entry)
    length = max(float(np.linalg.norm(aim - entry)) - 0.3 * radius_mm, 20.0)
    a_p = tf_proximal[:3, :3] @ anterior
    blade = _box(entry + 0.5 * length * b, b, a_p, (length, 12.0, 2.5))

    # Plate and screws (move with the distal piece).
    rot_d = tf_distal[:3, :3]
    k_d, m_d, a_d = rot_d @ k, rot_d @ medial, rot_d @ anterior
    top = apply(tf_distal, g.hinge_lateral_mm) - 3.0 * m_d
    plate = _box(top + 0.5 * plate_length_mm * k_d, k_d, a_d, (plate_length_mm, 14.0, 4.0))
    shoulder_len = float(np.linalg.norm(top - entry))
    shoulder_dir = unit(top - entry) if shoulder_len > 1e-6 else k_d
    shoulder = _box(
        0.5 * (entry + top), shoulder_dir, a_d, (max(shoulder_len, 4.0) + 4.0, 14.0, 4.0)
    )
    mesh, _ = from_manifold(
        manifold3d.Manifold.batch_boolean([blade, plate, shoulder], manifold3d.OpType.Add)
    )
    screws = []
    width = float(np.linalg.norm(g.hinge_medial_mm - g.hinge_lateral_mm))
    for s in (25.0, 50.0, 75.0):
        p = top + s * k_d - 2.0 * m_d
        screws.append(screw_mesh(p, p + (width + 2.0) * m_d, 2.0))
    return BladePlate(entry, entry + length * b, mesh, screws)


__all__ = ["BladePlate", "Screw", "blade_plate", "pao_screws", "screw_mesh"]
