"""Analytic hips whose measures are known exactly.

A head sphere sits in a spherical socket shell cut by one plane through the
head centre, so every rim edge, coverage fraction and version follows in
closed form from the socket's opening axis. A "stick" femur (sphere head,
cylinder neck and shaft, two cylindrical condyles) has a known neck-shaft
angle, version and head-neck junction. Tests, docstrings and notebooks share
these shapes the way pyvista's ``examples`` are shared.

Everything is built for a right hip in RAS coordinates (+x right = lateral,
+y anterior, +z superior), in mm; a left hip is its mirror image about x = 0.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import trimesh

from ._manifold import affine34, from_manifold
from ._typing import ArrayLike, Side, Vector
from .geometry import rigid, rotation_z_to, unit


@dataclass(frozen=True)
class SyntheticHip:
    """An analytic hip: meshes plus the parameters that fix its exact answers.

    Attributes
    ----------
    pelvis : trimesh.Trimesh
        The socket shell, mm, RAS (mirrored for a left hip).
    femur : trimesh.Trimesh
        The stick femur, mm, same frame.
    side : {"left", "right"}
    head_center_mm : (3,) float
        Head (and socket) centre, mm, same frame.
    params : dict
        The construction parameters (opening axis in lateral/anterior/superior
        components, radii, angles), for computing expected values.
    """

    pelvis: trimesh.Trimesh
    femur: trimesh.Trimesh
    side: Side
    head_center_mm: Vector
    params: dict = field(default_factory=dict)


def _manifold_to_trimesh(m) -> trimesh.Trimesh:
    mesh, _ = from_manifold(m)
    mesh.process()  # merge the seams manifold3d leaves at property boundaries
    return mesh


def _cylinder(start: ArrayLike, direction: ArrayLike, length: float, radius: float, segs: int):
    import manifold3d

    cyl = manifold3d.Manifold.cylinder(length, radius, radius, segs)
    return cyl.transform(affine34(rigid(rotation_z_to(direction), start)))


def socket_hip(
    *,
    side: Side = "right",
    opening_las: ArrayLike = (0.78, 0.30, -0.55),
    head_radius_mm: float = 23.0,
    gap_mm: float = 1.5,
    wall_mm: float = 8.0,
    fossa_half_angle_deg: float = 35.0,
    fossa_depth_mm: float = 5.0,
    center_mm: ArrayLike = (85.0, -10.0, -40.0),
    neck_shaft_deg: float = 130.0,
    version_deg: float = 15.0,
    neck_radius_mm: float = 14.0,
    columns: bool = False,
    segments: int = 256,
) -> SyntheticHip:
    """A head in a hemispherical socket with a deeper fossa, plus a stick femur.

    The socket shell spans radii ``head_radius + gap`` to that plus ``wall``
    around the head centre and keeps the directions ``d`` with
    ``d . opening < 0``: a hemisphere bounded by the great circle normal to the
    opening axis. Around the socket pole (``-opening``) a cone of half-angle
    ``fossa_half_angle_deg`` is hollowed ``fossa_depth_mm`` deeper, as the
    acetabular fossa is. The femur comes from :func:`stick_femur`.

    Parameters
    ----------
    side : {"right", "left"}
        A left hip is the mirror image of the right one about x = 0.
    opening_las : (3,) float
        Opening axis as (lateral, anterior, superior) components; normalised.
    center_mm : (3,) float
        Head centre of the right hip, mm, RAS.
    columns : bool
        Add blocks of bone outside the shell, as the ilium above, the
        ischium below, the pubic ramus toward medial-anterior and the
        posterior column behind, so osteotomy cuts have bone to cut. They lie
        beyond the shell's outer radius, farther from the head centre than
        any rim or coverage reach, so every measure keeps its exact value.
    """
    import manifold3d

    o = unit(opening_las)
    c = np.asarray(center_mm, dtype=float)
    r_in = head_radius_mm + gap_mm
    r_out = r_in + wall_mm
    if not 0 < fossa_depth_mm < wall_mm:
        msg = "fossa_depth_mm must be between 0 and wall_mm"
        raise ValueError(msg)

    shell = manifold3d.Manifold.sphere(r_out, segments) - manifold3d.Manifold.sphere(r_in, segments)
    # Keep the half-space d . o <= 0: a big box below the plane through the centre.
    big = 4 * r_out
    box = manifold3d.Manifold.cube([2 * big, 2 * big, big]).translate([-big, -big, -big])
    shell = shell ^ box.transform(affine34(rigid(rotation_z_to(o), [0, 0, 0])))
    if fossa_half_angle_deg > 0:
        reach = r_in + fossa_depth_mm
        cone_len = 2 * r_out
        cone = manifold3d.Manifold.cylinder(
            cone_len, 0.0, cone_len * np.tan(np.radians(fossa_half_angle_deg)), segments
        ).transform(affine34(rigid(rotation_z_to(-o), [0, 0, 0])))
        shell = shell - (cone ^ manifold3d.Manifold.sphere(reach, segments))
    if columns:
        # (lateral, anterior, superior) box corners about the head centre, mm.
        boxes = (
            ((-15.0, -25.0, 20.0), (20.0, 20.0, 85.0)),  # ilium
            ((-30.0, -35.0, -110.0), (0.0, -5.0, -20.0)),  # ischium
            ((-75.0, 0.0, -30.0), (-20.0, 22.0, -8.0)),  # pubic ramus
            ((-12.0, -65.0, -60.0), (14.0, -24.0, 40.0)),  # posterior column
        )
        blocks = [
            manifold3d.Manifold.cube((np.subtract(hi, lo)).tolist()).translate(list(lo))
            for lo, hi in boxes
        ]
        bone = manifold3d.Manifold.batch_boolean(blocks, manifold3d.OpType.Add)
        # Right hip: (lateral, anterior, superior) = (+x, +y, +z).
        bone = bone - manifold3d.Manifold.sphere(r_out - 0.3, segments)
        shell = shell + bone
    pelvis = _manifold_to_trimesh(shell.translate(c.tolist()))

    femur = stick_femur(
        center_mm=c,
        head_radius_mm=head_radius_mm,
        neck_shaft_deg=neck_shaft_deg,
        version_deg=version_deg,
        neck_radius_mm=neck_radius_mm,
        segments=segments,
    )
    params = dict(
        opening_las=o,
        head_radius_mm=head_radius_mm,
        socket_radius_mm=r_in,
        wall_mm=wall_mm,
        fossa_half_angle_deg=fossa_half_angle_deg,
        fossa_depth_mm=fossa_depth_mm,
        neck_shaft_deg=neck_shaft_deg,
        version_deg=version_deg,
        neck_radius_mm=neck_radius_mm,
        columns=columns,
    )
    hip = SyntheticHip(pelvis, femur, "right", c, params)
    return mirrored(hip) if side == "left" else hip


def _toward_head(neck_shaft_deg: float, version_deg: float) -> Vector:
    """Unit neck direction toward the head of a right stick femur, RAS."""
    nsa, v = np.radians(neck_shaft_deg), np.radians(version_deg)
    return np.array([-np.sin(nsa) * np.cos(v), np.sin(nsa) * np.sin(v), -np.cos(nsa)])


@dataclass(frozen=True)
class Trochanter:
    """A greater-trochanter block beside the neck base of a stick femur, mm.

    An upright cylinder of ``radius_mm`` on the shaft axis line, its centre
    moved ``lateral_mm`` lateral and ``anterior_mm`` anterior of the
    neck-shaft junction, reaching ``height_mm`` above the junction. Placed
    close to the neck (small ``lateral_mm``) it merges with the neck's lower
    part, the bone that pulls a section-centroid neck axis toward itself.
    """

    radius_mm: float = 16.0
    height_mm: float = 30.0
    lateral_mm: float = 14.0
    anterior_mm: float = 0.0

    @classmethod
    def beside_neck(
        cls,
        *,
        neck_shaft_deg: float,
        version_deg: float,
        neck_length_mm: float,
        radius_mm: float = 16.0,
        top_fraction: float = 0.8,
        free_fraction: float = 0.5,
        clearance_mm: float = 1.0,
        anterior_mm: float = 0.0,
        neck_radius_mm: float = 14.0,
    ) -> Trochanter:
        """A trochanter that merges with the neck only near its base.

        Its top reaches ``top_fraction`` of the head centre's height above
        the neck-shaft junction, and it is moved laterally just enough to
        stay ``clearance_mm`` clear of the neck's last ``free_fraction``
        toward the head (the neck's waist lies there); nearer the base it
        merges with the neck. Arguments as in :func:`stick_femur`.
        """
        u = _toward_head(neck_shaft_deg, version_deg)
        height = top_fraction * neck_length_mm * u[2]
        s = np.linspace((1.0 - free_fraction) * neck_length_mm, neck_length_mm, 60)
        neck = s[:, None] * u  # neck axis points, relative to the junction
        z = np.linspace(-40.0, height, 80)

        def gap(lateral: float) -> float:
            axis = np.column_stack([np.full_like(z, lateral), np.full_like(z, anterior_mm), z])
            d = np.linalg.norm(neck[:, None] - axis[None], axis=2).min()
            return float(d - radius_mm - neck_radius_mm - clearance_mm)

        from scipy.optimize import brentq

        lateral = 0.0 if gap(0.0) >= 0 else float(brentq(gap, 0.0, 200.0))
        return cls(radius_mm, float(height), lateral, anterior_mm)

    def solid(self, junction: Vector, segments: int):
        """The block as a manifold3d solid, right hip, RAS."""
        base = np.asarray(junction, float) + [self.lateral_mm, self.anterior_mm, -40.0]
        return _cylinder(base, [0.0, 0.0, 1.0], 40.0 + self.height_mm, self.radius_mm, segments)


def stick_femur(
    *,
    center_mm: ArrayLike = (85.0, -10.0, -40.0),
    head_radius_mm: float = 23.0,
    neck_shaft_deg: float = 130.0,
    version_deg: float = 15.0,
    neck_radius_mm: float = 14.0,
    neck_length_mm: float = 55.0,
    shaft_radius_mm: float = 13.0,
    shaft_length_mm: float = 400.0,
    condyle_radius_mm: float = 22.0,
    medial_condyle_drop_mm: float = 0.0,
    trochanter: Trochanter | None = None,
    segments: int = 256,
) -> trimesh.Trimesh:
    """A right femur of spheres and cylinders with an exact neck-shaft angle and version.

    In RAS (+x lateral for a right hip): the shaft runs straight down (-z)
    from the neck-shaft junction; the neck leaves the head centre toward the
    junction so that the angle between the neck axis (toward the head) and
    the shaft axis (toward the knee) is ``neck_shaft_deg``, and its horizontal
    part is turned from medial toward anterior by ``version_deg``. Two
    condyle cylinders lie along x with their axes 6 mm posterior of the shaft
    axis, so the posterior condylar axis is the x axis. ``medial_condyle_drop_mm``
    sets the medial condyle that much lower (along -z), as the medial condyle
    reaches further down the anatomical shaft axis of a real femur; seen along
    the shaft, the condylar axis stays the x axis.

    A ``trochanter`` adds a block of bone that rises beside the neck base and
    merges with it there, as a greater trochanter and intertrochanteric crest
    do; it changes no exact answer, since the neck stays a cylinder about the
    same axis and the head and shaft are untouched.
    """
    import manifold3d

    c = np.asarray(center_mm, dtype=float)
    toward_head = _toward_head(neck_shaft_deg, version_deg)
    junction = c - neck_length_mm * toward_head
    down = np.array([0.0, 0.0, -1.0])

    parts = [
        manifold3d.Manifold.sphere(head_radius_mm, segments).translate(c.tolist()),
        _cylinder(junction, toward_head, neck_length_mm, neck_radius_mm, segments),
        _cylinder(junction - 20 * down, down, shaft_length_mm + 20, shaft_radius_mm, segments),
    ]
    if trochanter is not None:
        parts.append(trochanter.solid(junction, segments))
    knee = junction + shaft_length_mm * down
    for sign in (-1.0, 1.0):  # medial (-x), lateral
        drop = medial_condyle_drop_mm if sign < 0 else 0.0
        start = knee + np.array([sign * 4.0, -6.0, -drop])
        parts.append(_cylinder(start, [sign, 0.0, 0.0], 26.0, condyle_radius_mm, segments))
    return _manifold_to_trimesh(manifold3d.Manifold.batch_boolean(parts, manifold3d.OpType.Add))


def mirror_x(mesh: trimesh.Trimesh) -> trimesh.Trimesh:
    """Mirror a mesh about x = 0, flipping the winding so normals stay outward."""
    vertices = np.asarray(mesh.vertices) * [-1.0, 1.0, 1.0]
    return trimesh.Trimesh(vertices, np.asarray(mesh.faces)[:, ::-1], process=False)


def mirrored(hip: SyntheticHip) -> SyntheticHip:
    """The mirror image of a synthetic hip about x = 0 (right <-> left)."""
    side: Side = "left" if hip.side == "right" else "right"
    return SyntheticHip(
        mirror_x(hip.pelvis),
        mirror_x(hip.femur),
        side,
        hip.head_center_mm * [-1.0, 1.0, 1.0],
        hip.params,
    )
