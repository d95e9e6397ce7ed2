"""Teaching cases: the built-in hip, smoothly deformed into typical hip shapes.

Every case starts from the built-in mean anatomy
(:func:`hipviz.anatomy.builtin_hip`) and changes it with smooth, seam-free
maps of space rather than cuts, so the meshes stay closed and keep their
triangles. The cases are **synthetic**: they show what a condition looks
like and how it is measured; they are not patients and their numbers are not
norms. Each case lists the ranges its measures were built to fall in
(:attr:`CaseInfo.targets`); the tests measure every case to check them.

All maps work in the APP frame (RAS, mm) of the built-in left hip, with c
the femoral head centre, and are built from two kinds of move:

Shell rotation (:func:`shell_rotation`)
    ``p -> c + R(w(|p - c|) theta) (p - c)``: rotation about an axis through
    c by an angle that is full near c and fades smoothly to zero farther
    out. Distance from c is kept and every sphere about c is turned
    rigidly, so the map is invertible with Jacobian determinant exactly 1:
    it cannot tear or fold the surface, and bone never moves closer to the
    head centre. Turning the periacetabular bone this way changes the cover
    of the head (:func:`periacetabular_rotation`; its roof turn fades with
    direction too, so the inferior socket stays put); turning the femoral
    head and neck about their own centre bends the neck against the shaft
    (:func:`neck_rotation`).
Radial push (:func:`radial_push`)
    ``p -> c + (rho + delta(rho, u)) u`` with ``rho = |p - c|``, ``u`` the
    direction from c: bone moves straight away from c by a smooth bump
    ``delta``. The determinant is ``((rho + delta) / rho)**2 (1 + d delta /
    d rho)``, positive while the bump falls off more gently than 1 mm per
    mm. It digs the acetabular fossa (:func:`socket_fossa`) and raises a
    cam bump on the head-neck junction (:func:`cam_bump`).

A right-side case is the mirror image of the left one (pelvis and femur),
so both sides measure the same.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import trimesh
from scipy.spatial.transform import Rotation

from . import atlas
from . import landmarks as lmk
from ._typing import ArrayLike, FloatArray, Points, Side, Vector
from .anatomy import BuiltinHip, builtin_hip, ream_to_head
from .errors import HipvizError, InputError
from .geometry import Sphere, project_onto_plane, unit
from .hip import femur_landmarks
from .measures import HipAxes
from .proximity import min_gap_mm

PointMap = Callable[[Points], Points]

#: The socket turns rigidly out to here, mm from c: past the rim edges that the
#: measures read (socket radius + 6 mm, about 33 mm on the built-in hip).
ROOF_INNER_MM = 36.0
#: ... and not at all beyond here (ilium, pubis and ischium stay put), mm from c.
ROOF_OUTER_MM = 70.0
#: The lateral (roof) turn is full in directions from c within the first angle
#: of superior (the roof, where the centre-edge and Tönnis angles read it) and
#: fades to nothing at the second, degrees: a shallow roof does not push the inferior rim, the
#: notch and the ischium over the femoral neck, as a rigid turn of the whole
#: socket would (by as much as it opens the roof).
ROOF_CAP_DEG = (60.0, 150.0)
#: The head and neck turn rigidly out to here, mm from c: past the neck sections
#: that define the neck axis (up to 1.5 head radii along it).
NECK_INNER_MM = 40.0
#: ... and the femur does not move beyond here: above the shaft sections that
#: define the shaft axis (from 22 % of the femur's length, about 92 mm, down).
NECK_OUTER_MM = 80.0

#: Fossa: axis in the coronal plane, this far from superior toward medial, degrees.
FOSSA_AXIS_DEG = 105.0
#: Half-widths of the fossa about its axis, degrees: along the coronal plane (so
#: the Tönnis angle finds its upper edge about 25 degrees medial of superior on
#: the built-in hip, 35-37 degrees on the ``normal`` case, which puts that case's
#: Tönnis angle near 5 degrees) and across it (clear of the anterior and
#: posterior horns of the lunate surface).
FOSSA_HALF_ANGLES_DEG = (78.0, 40.0)
#: Width of the fossa's smooth edge, degrees.
FOSSA_FALLOFF_DEG = 15.0
#: How far the fossa floor is pushed away from c, mm: well past the Tönnis
#: angle's fossa criterion (2.5 mm deeper than the socket sphere).
FOSSA_DEPTH_MM = 5.0

#: Cam bump centre: clock position (12 superior, 3 anterior, either side) and
#: angle from the neck axis, degrees: on the anterosuperior head-neck junction,
#: where the head's sphere meets the neck (about 41 degrees from the neck axis
#: on the built-in femur) and a little onto the head.
CAM_CLOCK = 1.75
CAM_FROM_NECK_DEG = 50.0
#: Angular size of the bump (full height within, then a smooth edge), degrees:
#: along the neck (from the junction well onto the head, so the alpha angle
#: reads as a cam's) and across it.
CAM_HALF_ANGLES_DEG = (16.0, 10.0)
CAM_FALLOFF_DEG = 12.0
#: The bump is full on bone from this far inside the head sphere to this far
#: outside it, mm, and gone this far outside: it lifts the junction's surface
#: (up to about r + 8 mm from c where it meets the neck) past the socket radius
#: (r + 4.8 mm on the built-in hip), so the bump can meet the rim.
CAM_BAND_MM = (-10.0, -4.0, 8.0, 16.0)


# --------------------------------------------------------------------------- weights


def _smoothstep(u: ArrayLike) -> FloatArray:
    """C1 ramp: 0 for u <= 0, 1 for u >= 1, ``3u^2 - 2u^3`` between."""
    u = np.clip(np.asarray(u, dtype=float), 0.0, 1.0)
    return u * u * (3.0 - 2.0 * u)


def shell_weight(dist_mm: ArrayLike, inner_mm: float, outer_mm: float) -> FloatArray:
    """Weight 1 within ``inner_mm``, 0 beyond ``outer_mm``, smoothstep between."""
    if not 0.0 <= inner_mm < outer_mm:
        msg = f"expected 0 <= inner_mm < outer_mm, got {inner_mm} and {outer_mm}"
        raise InputError(msg)
    return _smoothstep((outer_mm - np.asarray(dist_mm, dtype=float)) / (outer_mm - inner_mm))


def band_weight(dist_mm: ArrayLike, radii_mm: tuple[float, float, float, float]) -> FloatArray:
    """Trapezoid in distance: 0 up to r0, rising to 1 at r1, 1 to r2, falling to 0 at r3.

    Both ramps are smoothstep; ``radii_mm = (r0, r1, r2, r3)`` must increase.
    """
    r0, r1, r2, r3 = radii_mm
    if not 0.0 <= r0 < r1 <= r2 < r3:
        msg = f"expected radii 0 <= r0 < r1 <= r2 < r3, got {radii_mm}"
        raise InputError(msg)
    d = np.asarray(dist_mm, dtype=float)
    return _smoothstep((d - r0) / (r1 - r0)) * _smoothstep((r3 - d) / (r3 - r2))


def cone_weight(
    directions: ArrayLike,
    axis: ArrayLike,
    *,
    half_angle_deg: float,
    falloff_deg: float,
    major: ArrayLike | None = None,
    minor_half_angle_deg: float | None = None,
) -> FloatArray:
    """Weight of unit ``directions`` (n, 3) in a cone about ``axis``: 1 inside, 0 outside.

    The weight is 1 within ``half_angle_deg`` of the axis and falls to 0 over
    ``falloff_deg`` more with a half cosine (C1). With ``major`` (a direction
    not along the axis) and ``minor_half_angle_deg`` the cone is elliptic:
    ``half_angle_deg`` toward ``major``, the smaller ``minor_half_angle_deg``
    across it, the fall-off scaled alike.
    """
    d = np.atleast_2d(np.asarray(directions, dtype=float))
    a = unit(axis)
    cos_g = np.clip(d @ a, -1.0, 1.0)
    gamma = np.arccos(cos_g)
    if major is None or minor_half_angle_deg is None:
        t = np.degrees(gamma)
    else:
        if not 0.0 < minor_half_angle_deg <= half_angle_deg:
            msg = (
                f"expected 0 < minor_half_angle_deg <= half_angle_deg, got "
                f"{minor_half_angle_deg} and {half_angle_deg}"
            )
            raise InputError(msg)
        e1 = unit(project_onto_plane(major, a))
        e2 = np.cross(a, e1)
        k = half_angle_deg / minor_half_angle_deg
        sin_g = np.sin(gamma)
        # gamma / sin(gamma) turns the tangent components into angles (1 on
        # the axis). With k >= 1, t >= gamma exactly; taking the larger keeps
        # that true where sin(gamma) vanishes opposite the axis.
        ratio = np.divide(gamma, sin_g, out=np.ones_like(gamma), where=sin_g > 1e-12)
        t = np.degrees(np.maximum(ratio * np.hypot(d @ e1, k * (d @ e2)), gamma))
    u = np.clip((t - half_angle_deg) / falloff_deg, 0.0, 1.0)
    return 0.5 * (1.0 + np.cos(np.pi * u))


# --------------------------------------------------------------------------- maps


def polar_weight(
    directions: ArrayLike, axis: ArrayLike, full_deg: float, zero_deg: float
) -> FloatArray:
    """Weight of unit ``directions`` (n, 3) by their angle from ``axis``.

    1 within ``full_deg`` of the axis, 0 beyond ``zero_deg``, smoothstep in
    the angle between (its steepest slope: 1.5 per ``zero_deg - full_deg``).
    """
    if not 0.0 <= full_deg < zero_deg <= 180.0:
        msg = f"expected 0 <= full_deg < zero_deg <= 180, got {full_deg} and {zero_deg}"
        raise InputError(msg)
    d = np.atleast_2d(np.asarray(directions, dtype=float))
    beta = np.degrees(np.arccos(np.clip(d @ unit(axis), -1.0, 1.0)))
    return _smoothstep((zero_deg - beta) / (zero_deg - full_deg))


def shell_rotation(
    points: ArrayLike,
    center_mm: ArrayLike,
    rotvec_deg: ArrayLike,
    inner_mm: float,
    outer_mm: float,
    *,
    cap_axis: ArrayLike | None = None,
    cap_deg: tuple[float, float] = ROOF_CAP_DEG,
) -> Points:
    """Rotate points about ``center_mm`` by an angle that fades with distance.

    ``p -> c + R(w(|p - c|) * rotvec) (p - c)`` with ``w`` =
    :func:`shell_weight`: a rigid rotation within ``inner_mm`` of c, the
    identity beyond ``outer_mm``. Distances from c are kept, so the map is a
    volume-preserving diffeomorphism (Jacobian determinant 1) whatever the
    angle.

    With ``cap_axis`` the angle is also weighted by direction,
    ``w(|p - c|) * g(u)`` with ``g`` = :func:`polar_weight` of the direction
    ``u`` from c about ``cap_axis`` over ``cap_deg``: only a cap of
    directions turns. The rotation axis is still fixed, so in cylindrical
    coordinates about it only the azimuth changes, by ``theta * w * g``, and
    the Jacobian determinant is ``1 + theta * w * dg/dazimuth``; ``g``
    changes by at most ``1.5 / (cap_deg[1] - cap_deg[0])`` per radian of
    azimuth, so the map stays one-to-one while ``|theta|`` is below
    ``(cap_deg[1] - cap_deg[0]) / 1.5``, which is checked. Distances from c
    are still kept.

    Parameters
    ----------
    points : (n, 3) float
        mm, any frame.
    center_mm : (3,) float
        Centre of rotation, same frame.
    rotvec_deg : (3,) float
        Rotation vector (axis times right-handed angle), degrees, same frame.
    inner_mm, outer_mm : float
        Where the weight starts to fall and where it reaches 0, mm from c.
    cap_axis : (3,) float, optional
        Centre of the cap of directions that turns (default: all turn).
    cap_deg : (2,) float
        Angles from ``cap_axis`` where the turn starts to fade and where it
        is gone, degrees.

    Returns
    -------
    (n, 3) float
        Moved points.

    Raises
    ------
    InputError
        A cap too narrow for the angle: the map would fold.
    """
    c = np.asarray(center_mm, dtype=float)
    q = np.atleast_2d(np.asarray(points, dtype=float)) - c
    dist = np.linalg.norm(q, axis=1)
    w = shell_weight(dist, inner_mm, outer_mm)
    rv = np.radians(np.asarray(rotvec_deg, dtype=float))
    if cap_axis is not None:
        full_deg, zero_deg = cap_deg
        if 1.5 * np.degrees(np.linalg.norm(rv)) >= zero_deg - full_deg:
            msg = (
                f"a {np.degrees(np.linalg.norm(rv)):.1f} degree turn fading over "
                f"{zero_deg - full_deg} degrees of direction would fold the surface; "
                "use a wider cap edge or a smaller turn"
            )
            raise InputError(msg)
        u = np.divide(q, dist[:, None], out=np.zeros_like(q), where=dist[:, None] > 0)
        w = w * polar_weight(u, cap_axis, full_deg, zero_deg)
    return c + Rotation.from_rotvec(w[:, None] * rv).apply(q)


def radial_push(
    points: ArrayLike,
    center_mm: ArrayLike,
    axis: ArrayLike,
    *,
    depth_mm: float,
    radii_mm: tuple[float, float, float, float],
    half_angle_deg: float,
    falloff_deg: float,
    major: ArrayLike | None = None,
    minor_half_angle_deg: float | None = None,
) -> Points:
    """Push points straight away from ``center_mm`` by a smooth bump.

    ``p -> c + (rho + depth * a(u) * b(rho)) u`` with ``rho = |p - c|``,
    ``u`` the unit direction from c, ``a`` = :func:`cone_weight` about
    ``axis`` and ``b`` = :func:`band_weight` over ``radii_mm``. Directions
    are kept; the map is one-to-one (and cannot fold a surface) while
    ``depth * max|b'| < 1``, which is checked.

    Parameters
    ----------
    points : (n, 3) float
        mm, any frame.
    center_mm : (3,) float
        Centre the push points away from, same frame.
    axis : (3,) float
        Centre of the pushed cone of directions.
    depth_mm : float
        Largest push, mm (negative pulls toward c).
    radii_mm : (4,) float
        Trapezoid ``(r0, r1, r2, r3)`` of the push in distance from c, mm.
    half_angle_deg, falloff_deg, major, minor_half_angle_deg
        Cone shape, see :func:`cone_weight`.

    Returns
    -------
    (n, 3) float
        Moved points.

    Raises
    ------
    InputError
        A bump too steep for the map to stay one-to-one.
    """
    r0, r1, r2, r3 = radii_mm
    # Only the ramp on which the push shrinks with distance can fold: the
    # outer one for a push, the inner one for a pull. Smoothstep's steepest
    # slope is 1.5 per ramp width.
    ramp = r3 - r2 if depth_mm > 0 else r1 - r0
    if 1.5 * abs(depth_mm) >= ramp:
        msg = (
            f"a {depth_mm} mm push falling off over {ramp} mm would fold the surface; "
            "use a wider ramp or a smaller depth"
        )
        raise InputError(msg)
    c = np.asarray(center_mm, dtype=float)
    q = np.atleast_2d(np.asarray(points, dtype=float)) - c
    rho = np.linalg.norm(q, axis=1)
    u = np.divide(q, rho[:, None], out=np.zeros_like(q), where=rho[:, None] > 0)
    a = cone_weight(
        u,
        axis,
        half_angle_deg=half_angle_deg,
        falloff_deg=falloff_deg,
        major=major,
        minor_half_angle_deg=minor_half_angle_deg,
    )
    return c + q + (depth_mm * a * band_weight(rho, radii_mm))[:, None] * u


def periacetabular_rotation(
    points: ArrayLike,
    center_mm: ArrayLike,
    axes: HipAxes,
    *,
    lateral_deg: float = 0.0,
    anterior_deg: float = 0.0,
    version_deg: float = 0.0,
    inner_mm: float = ROOF_INNER_MM,
    outer_mm: float = ROOF_OUTER_MM,
    roof_cap_deg: tuple[float, float] | None = ROOF_CAP_DEG,
) -> Points:
    """Turn the bone around the socket about the head centre, fading out with distance.

    The moves of a periacetabular osteotomy (DESIGN §5), without cuts:
    ``lateral_deg`` about the anterior axis (positive raises LCEA, negative
    opens the roof as in dysplasia), then ``anterior_deg`` about the
    medio-lateral axis (positive raises ACEA), then ``version_deg`` about
    the superior axis (positive anteverts), each applied with
    :func:`shell_rotation`. The lateral turn moves only the roof side of the
    socket (``roof_cap_deg`` from superior, see :data:`ROOF_CAP_DEG`): a
    rigid turn of the whole socket would swing its inferior rim by the same
    angle the other way, over the femoral neck. ``roof_cap_deg=None`` turns
    the whole socket rigidly, as a PAO does.

    Parameters
    ----------
    points : (n, 3) float
        Pelvis vertices, mm, in the frame of ``axes`` (RAS).
    center_mm : (3,) float
        Femoral head centre, mm.
    axes : HipAxes
        Lateral, anterior and superior unit axes of the hip.
    lateral_deg, anterior_deg, version_deg : float
        The three turns, degrees.
    roof_cap_deg : (2,) float or None
        Angles from superior where the lateral turn starts to fade and where
        it is gone, degrees; None: no fading by direction.

    Returns
    -------
    (n, 3) float
        Moved vertices.

    Raises
    ------
    InputError
        A lateral turn too large for the cap's edge (it would fold the bone).
    """
    s, lat, ant = axes.superior, axes.lateral, axes.anterior
    # A rotation about axis a turns v toward a x v: s x lat turns superior toward lateral.
    lateral = np.degrees(np.radians(lateral_deg) * np.cross(s, lat))
    if roof_cap_deg is None:
        p = shell_rotation(points, center_mm, lateral, inner_mm, outer_mm)
    else:
        p = shell_rotation(
            points, center_mm, lateral, inner_mm, outer_mm, cap_axis=s, cap_deg=roof_cap_deg
        )
    rot = Rotation.from_rotvec(np.radians(version_deg) * np.cross(lat, ant)) * (
        Rotation.from_rotvec(np.radians(anterior_deg) * np.cross(s, ant))
    )
    return shell_rotation(p, center_mm, np.degrees(rot.as_rotvec()), inner_mm, outer_mm)


def neck_rotation(
    points: ArrayLike,
    center_mm: ArrayLike,
    shaft_to_knee: ArrayLike,
    medial: ArrayLike,
    anterior: ArrayLike,
    *,
    valgus_deg: float = 0.0,
    antetorsion_deg: float = 0.0,
    inner_mm: float = NECK_INNER_MM,
    outer_mm: float = NECK_OUTER_MM,
) -> Points:
    """Bend the femoral neck against the shaft by turning the head and neck about c.

    The head and neck turn rigidly about the head centre (so the head stays
    in its socket), the shaft and condyles do not move, and the trochanteric
    region between blends the two (:func:`shell_rotation`). ``valgus_deg``
    turns the neck from medial toward superior in the femoral coronal plane
    (raises the neck-shaft angle); ``antetorsion_deg`` then turns it from
    medial toward anterior about the shaft axis (raises femoral version).

    Parameters
    ----------
    points : (n, 3) float
        Femur vertices, mm.
    center_mm : (3,) float
        Femoral head centre, mm.
    shaft_to_knee, medial, anterior : (3,) float
        Femoral axes: shaft axis toward the knee; posterior condylar axis
        toward the medial condyle; anterior (away from the condylar line).
        ``medial`` and ``anterior`` are made normal to the shaft axis here.

    Returns
    -------
    (n, 3) float
        Moved vertices.
    """
    k = unit(shaft_to_knee)
    m = unit(project_onto_plane(medial, k))
    a = unit(project_onto_plane(anterior, k) - (np.asarray(anterior, float) @ m) * m)
    rot = Rotation.from_rotvec(np.radians(antetorsion_deg) * np.cross(m, a)) * (
        Rotation.from_rotvec(np.radians(valgus_deg) * np.cross(m, -k))
    )
    return shell_rotation(points, center_mm, np.degrees(rot.as_rotvec()), inner_mm, outer_mm)


def leg_rotation(
    points: ArrayLike, center_mm: ArrayLike, axes: HipAxes, *, internal_deg: float
) -> Points:
    """Turn the whole femur about the vertical through the head centre (its stance).

    A rigid move, not a deformation: positive ``internal_deg`` turns the knee
    inward (internal rotation), as people with much femoral antetorsion
    often stand to keep the head centred in the socket.

    Parameters
    ----------
    points : (n, 3) float
        Femur vertices, mm, in the frame of ``axes``.
    center_mm : (3,) float
        Femoral head centre, mm.
    axes : HipAxes
        Lateral, anterior and superior unit axes of the hip.

    Returns
    -------
    (n, 3) float
        Moved vertices.
    """
    c = np.asarray(center_mm, dtype=float)
    # Internal rotation turns anterior toward medial: about lateral x anterior.
    rotvec = np.radians(internal_deg) * np.cross(axes.lateral, axes.anterior)
    return c + Rotation.from_rotvec(rotvec).apply(np.atleast_2d(np.asarray(points, float)) - c)


def socket_fossa(
    points: ArrayLike,
    center_mm: ArrayLike,
    axes: HipAxes,
    socket_radius_mm: float,
    *,
    depth_mm: float = FOSSA_DEPTH_MM,
) -> Points:
    """Dig a smooth acetabular fossa into the medial-inferior floor of the socket.

    The built-in socket is a smooth cup with no fossa, so the medial end of
    the weight-bearing roof (and with it the Tönnis angle) is undefined. The
    fossa is a :func:`radial_push` of the socket floor away from the head
    centre by ``depth_mm``, in an elliptic cone about a medial, slightly
    inferior axis (:data:`FOSSA_AXIS_DEG`, :data:`FOSSA_HALF_ANGLES_DEG`),
    on bone within ``socket_radius_mm + 10`` mm of c. Bone only moves away
    from the head, so no new contact with the femur can appear.

    Parameters
    ----------
    points : (n, 3) float
        Pelvis vertices, mm, in the frame of ``axes``.
    center_mm : (3,) float
        Femoral head centre, mm.
    axes : HipAxes
        Lateral, anterior and superior unit axes of the hip.
    socket_radius_mm : float
        Radius of the lunate (socket) surface about c, mm.

    Returns
    -------
    (n, 3) float
        Moved vertices.
    """
    t = np.radians(FOSSA_AXIS_DEG)
    axis = np.cos(t) * axes.superior - np.sin(t) * axes.lateral
    r = socket_radius_mm
    return radial_push(
        points,
        center_mm,
        axis,
        depth_mm=depth_mm,
        radii_mm=(r - 12.0, r - 6.0, r, r + 10.0),
        half_angle_deg=FOSSA_HALF_ANGLES_DEG[0],
        minor_half_angle_deg=FOSSA_HALF_ANGLES_DEG[1],
        major=axes.superior,
        falloff_deg=FOSSA_FALLOFF_DEG,
    )


def cam_bump(
    points: ArrayLike,
    center_mm: ArrayLike,
    head_radius_mm: float,
    toward_neck: ArrayLike,
    superior: ArrayLike,
    anterior: ArrayLike,
    *,
    height_mm: float,
    clock: float = CAM_CLOCK,
    from_neck_deg: float = CAM_FROM_NECK_DEG,
) -> Points:
    """Raise a smooth bump on the head-neck junction (a cam deformity).

    A :func:`radial_push` away from the head centre of the junction's
    surface, centred ``from_neck_deg`` from the neck axis at ``clock`` (12
    superior, 3 anterior, as the alpha angle reports it) and longer along
    the neck than across it (:data:`CAM_HALF_ANGLES_DEG`): the contour stays
    off the head sphere longer, so the alpha angle rises, and the junction
    rises past the socket radius (:data:`CAM_BAND_MM`), so in flexion and
    internal rotation it meets the anterosuperior rim before the neck would.

    Parameters
    ----------
    points : (n, 3) float
        Femur vertices, mm.
    center_mm : (3,) float
        Femoral head centre, mm.
    head_radius_mm : float
        Radius of the head sphere, mm.
    toward_neck : (3,) float
        Neck axis, unit, from the head centre toward the neck.
    superior, anterior : (3,) float
        Define 12 and 3 o'clock around the neck axis.
    height_mm : float
        Height of the bump, mm (the head's asphericity of a cam is 4-5 mm).

    Returns
    -------
    (n, 3) float
        Moved vertices.
    """
    n = unit(toward_neck)
    up = unit(project_onto_plane(superior, n))
    front = unit(project_onto_plane(anterior, n))
    front = unit(front - (front @ up) * up)
    phi, theta = np.radians(30.0 * clock), np.radians(from_neck_deg)
    axis = np.cos(theta) * n + np.sin(theta) * (np.cos(phi) * up + np.sin(phi) * front)
    r = head_radius_mm
    r0, r1, r2, r3 = CAM_BAND_MM
    return radial_push(
        points,
        center_mm,
        axis,
        depth_mm=height_mm,
        radii_mm=(r + r0, r + r1, r + r2, r + r3),
        half_angle_deg=CAM_HALF_ANGLES_DEG[0],
        minor_half_angle_deg=CAM_HALF_ANGLES_DEG[1],
        major=n,
        falloff_deg=CAM_FALLOFF_DEG,
    )


# --------------------------------------------------------------------------- cases


@dataclass(frozen=True)
class Recipe:
    """How a case is made from the built-in hip; angles in degrees, heights in mm.

    Attributes
    ----------
    roof_lateral_deg, roof_anterior_deg, roof_version_deg : float
        :func:`periacetabular_rotation` of the socket region.
    neck_valgus_deg, neck_antetorsion_deg : float
        :func:`neck_rotation` of the femoral head and neck.
    leg_internal_deg : float
        :func:`leg_rotation`: the femur's stance, turned knee-inward.
    cam_mm : float
        :func:`cam_bump` height (0: none).
    fossa : bool
        Dig the acetabular fossa (:func:`socket_fossa`) first.
    """

    roof_lateral_deg: float = 0.0
    roof_anterior_deg: float = 0.0
    roof_version_deg: float = 0.0
    neck_valgus_deg: float = 0.0
    neck_antetorsion_deg: float = 0.0
    leg_internal_deg: float = 0.0
    cam_mm: float = 0.0
    fossa: bool = True


@dataclass(frozen=True)
class CaseInfo:
    """One teaching case.

    Attributes
    ----------
    name : str
        Key in :data:`CASES`, as :func:`case_hip` takes it.
    title : str
        Short display title.
    description : str
        Two or three plain-language sentences for patients and students.
    recipe : Recipe
        The deformations that make it.
    targets : dict
        Measure key (of :attr:`hipviz.hip.HipAnalysis.values`) -> ``(low,
        high)``: the range the case was built to measure in, with
        :func:`hipviz.hip.analyze` in its default frame.
    synthetic : bool
        Always True: a made-up shape, not a patient.
    """

    name: str
    title: str
    description: str
    recipe: Recipe
    targets: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    synthetic: bool = True


# The normal roof: the built-in socket's bony lip flares (LCEA 45 degrees), so
# every case starts from it opened by 12 degrees; LCEA + Tönnis then stays near
# 38 degrees under any further lateral turn (the roof is close to a sphere).
_NORMAL_ROOF_DEG = -12.0
#: The LLP26 mean femur's neck-shaft angle reads 124.6° at its neck's waist, just under
#: the normal band: every case opens the neck by this much so that "normal" is normal.
_NORMAL_VALGUS_DEG = 2.5

CASES: dict[str, CaseInfo] = {
    "normal": CaseInfo(
        "normal",
        "Normal hip",
        "The socket covers the top of the ball well, and the thigh bone's neck meets the "
        "shaft at a usual angle. Use it as the reference for the other cases.",
        Recipe(roof_lateral_deg=_NORMAL_ROOF_DEG, neck_valgus_deg=_NORMAL_VALGUS_DEG),
        {
            "lcea_deg": (25.0, 39.0),
            "tonnis_deg": (0.0, 10.0),
            "acetabular_version_deg": (10.0, 25.0),
            "neck_shaft_deg": (125.0, 135.0),
            "femoral_version_deg": (10.0, 25.0),
            "alpha_deg": (30.0, 55.0),
        },
    ),
    "dysplastic": CaseInfo(
        "dysplastic",
        "Hip dysplasia",
        "The socket is shallow and its roof slopes upward, so it covers too little of the "
        "ball and the load rests on a small rim of bone. A periacetabular osteotomy turns "
        "the socket over the ball to share the load again.",
        Recipe(roof_lateral_deg=_NORMAL_ROOF_DEG - 20.0, neck_valgus_deg=_NORMAL_VALGUS_DEG),
        {
            "lcea_deg": (10.0, 15.0),
            "tonnis_deg": (12.0, 35.0),
            "acetabular_version_deg": (10.0, 25.0),
        },
    ),
    "borderline": CaseInfo(
        "borderline",
        "Borderline dysplasia",
        "The socket covers a little less of the ball than usual: between a normal and a "
        "dysplastic hip. Whether it causes trouble depends on more than this one angle.",
        Recipe(roof_lateral_deg=_NORMAL_ROOF_DEG - 10.0, neck_valgus_deg=_NORMAL_VALGUS_DEG),
        {
            "lcea_deg": (20.0, 25.0),
            "tonnis_deg": (10.0, 20.0),
            "acetabular_version_deg": (10.0, 25.0),
        },
    ),
    "retroverted": CaseInfo(
        "retroverted",
        "Acetabular retroversion",
        "The socket faces backward instead of slightly forward, most at its top. Its front "
        "edge then reaches too far over the ball and can pinch the neck when the hip bends.",
        Recipe(
            roof_lateral_deg=_NORMAL_ROOF_DEG,
            roof_anterior_deg=10.0,
            roof_version_deg=-12.0,
            neck_valgus_deg=_NORMAL_VALGUS_DEG,
        ),
        {
            "acetabular_version_cranial_deg": (-12.0, 0.0),
            "acetabular_version_deg": (0.0, 8.0),
            "lcea_deg": (25.0, 39.0),
        },
    ),
    "valga-antetorsion": CaseInfo(
        "valga-antetorsion",
        "Coxa valga with femoral antetorsion",
        "The neck of the thigh bone is steeper than usual and twisted forward, so the ball "
        "points up and forward out of the socket. It is shown standing with the knee turned "
        "slightly inward, as people with this shape often stand to keep the ball centred.",
        Recipe(
            roof_lateral_deg=_NORMAL_ROOF_DEG,
            neck_valgus_deg=_NORMAL_VALGUS_DEG + 13.0,
            neck_antetorsion_deg=16.0,
            leg_internal_deg=10.0,
        ),
        {
            "neck_shaft_deg": (136.0, 144.0),
            "femoral_version_deg": (30.0, 40.0),
            "lcea_deg": (25.0, 39.0),
        },
    ),
    "cam": CaseInfo(
        "cam",
        "Cam deformity",
        "Extra bone at the front and top of the junction between ball and neck makes the "
        "ball less round. When the hip bends, this bump can jam into the socket rim and "
        "damage the cartilage there (femoroacetabular impingement).",
        Recipe(roof_lateral_deg=_NORMAL_ROOF_DEG, neck_valgus_deg=_NORMAL_VALGUS_DEG, cam_mm=4.0),
        {
            "alpha_deg": (65.0, 85.0),
            "lcea_deg": (25.0, 39.0),
        },
    ),
}
"""The teaching cases by name."""


def _check_name(name: str) -> CaseInfo:
    if name not in CASES:
        msg = f"unknown case {name!r}; expected one of {', '.join(CASES)}"
        raise InputError(msg)
    return CASES[name]


@dataclass(frozen=True)
class CaseMaps:
    """The deformations of one case as point maps, in the case's APP frame (mm).

    Attributes
    ----------
    pelvis, femur : callable
        ``(n, 3) float -> (n, 3) float``, applied to the built-in meshes.
    center_mm : (3,) float
        Femoral head centre.
    support_mm : float
        Farther than this from ``center_mm`` the pelvis map is the identity
        and the femur map rigid (the identity, or the stance turn of
        :func:`leg_rotation`).
    """

    pelvis: PointMap
    femur: PointMap
    center_mm: Vector
    support_mm: float


@lru_cache(maxsize=4)
def _base_landmarks(subdivisions: int) -> tuple[float, lmk.ShaftAxis, Vector, Vector, Vector]:
    """Socket radius, shaft axis, medial, anterior and neck axes of the built-in left hip."""
    base = builtin_hip(side="left", subdivisions=subdivisions)
    socket, _ = lmk.find_socket(base.pelvis, base.head)
    fl = femur_landmarks(base.femur, near_mm=base.head.center_mm, posterior_hint=[0.0, -1.0, 0.0])
    return socket.radius_mm, fl.shaft, fl.medial, fl.anterior, fl.toward_neck


def case_maps(name: str, *, subdivisions: int = 8) -> CaseMaps:
    """The pelvis and femur maps that turn the built-in left hip into case ``name``.

    A right case is the mirror image of the left one, so it needs no maps of
    its own.

    Raises
    ------
    InputError
        Unknown case name.
    """
    recipe = _check_name(name).recipe
    base = builtin_hip(side="left", subdivisions=subdivisions)
    c, r = base.head.center_mm, base.head.radius_mm
    axes = HipAxes.from_side("left")
    socket_r, shaft, medial, anterior, toward_neck = _base_landmarks(subdivisions)

    def pelvis(p: Points) -> Points:
        if recipe.fossa:
            p = socket_fossa(p, c, axes, socket_r)
        return periacetabular_rotation(
            p,
            c,
            axes,
            lateral_deg=recipe.roof_lateral_deg,
            anterior_deg=recipe.roof_anterior_deg,
            version_deg=recipe.roof_version_deg,
        )

    def femur(p: Points) -> Points:
        # The bump first, on the neck where it was found; the bend then carries it along.
        if recipe.cam_mm:
            p = cam_bump(
                p, c, r, toward_neck, axes.superior, axes.anterior, height_mm=recipe.cam_mm
            )
        p = neck_rotation(
            p,
            c,
            shaft.direction,
            medial,
            anterior,
            valgus_deg=recipe.neck_valgus_deg,
            antetorsion_deg=recipe.neck_antetorsion_deg,
        )
        return leg_rotation(p, c, axes, internal_deg=recipe.leg_internal_deg)

    support = max(ROOF_OUTER_MM, NECK_OUTER_MM, socket_r + 10.0, r + 10.0)
    return CaseMaps(pelvis, femur, c.copy(), support)


def _mirror_landmarks(landmarks: Mapping[str, Vector]) -> dict[str, Vector]:
    """Mirror about x = 0: a left landmark becomes the right one."""
    swap = {"_left": "_right", "_right": "_left"}
    out = {}
    for key, p in landmarks.items():
        for old, new in swap.items():
            if key.endswith(old):
                key = key[: -len(old)] + new
                break
        out[key] = np.asarray(p, dtype=float) * [-1.0, 1.0, 1.0]
    return out


def _mirror_sphere(s: Sphere) -> Sphere:
    return Sphere(s.center_mm * [-1.0, 1.0, 1.0], s.radius_mm, s.rms_mm, s.n)


@lru_cache(maxsize=16)
def _case_hip(name: str, side: Side, subdivisions: int) -> BuiltinHip:
    base = builtin_hip(side="left", subdivisions=subdivisions)
    maps = case_maps(name, subdivisions=subdivisions)
    pelvis = trimesh.Trimesh(
        maps.pelvis(base.pelvis.vertices), base.pelvis.faces.copy(), process=False
    )
    femur = trimesh.Trimesh(maps.femur(base.femur.vertices), base.femur.faces.copy(), process=False)
    head, socket, landmarks, tf = base.head, base.socket, dict(base.landmarks), base.tf_app_raw
    # Turning the periacetabular bone about the head centre keeps its distance
    # from the centre but can carry the posterior-inferior wall onto the neck
    # (the dysplastic roof turns 32 degrees), so the built-in reamer clears the
    # case's socket again; it moves bone only along rays from the centre, so
    # the rim edges stay where the maps put them.
    pelvis, _ = ream_to_head(pelvis, femur, head)
    if side == "right":
        pelvis, femur = atlas.mirror_x(pelvis), atlas.mirror_x(femur)
        head, socket = _mirror_sphere(head), _mirror_sphere(socket)
        landmarks = _mirror_landmarks(landmarks)
        tf = np.diag([-1.0, 1.0, 1.0, 1.0]) @ tf
    gap = min_gap_mm(pelvis, femur, near_mm=head.center_mm, radius_mm=2.5 * head.radius_mm)
    if gap <= 0:  # pragma: no cover - guarded by the tests of every case
        msg = f"case {name!r}: the femur overlaps the pelvis by {-gap:.1f} mm"
        raise HipvizError(msg)
    return BuiltinHip(pelvis, femur, side, landmarks, head, socket, gap, base.weights_sd, tf)


def case_hip(name: str, *, side: Side = "left", subdivisions: int = 8) -> BuiltinHip:
    """The built-in hip deformed into teaching case ``name`` (see :data:`CASES`).

    Cached: the same arguments return the same object, so copy the meshes
    before changing them. A right case is the mirror image of the left one
    (pelvis and femur, about the APP mid-sagittal plane); its ``tf_app_raw``
    includes that mirror.

    Parameters
    ----------
    name : str
        A key of :data:`CASES`.
    side : {"left", "right"}
    subdivisions : int
        Mesh resolution, as for :func:`hipviz.anatomy.builtin_hip`.

    Returns
    -------
    BuiltinHip
        Meshes in the APP frame (RAS, mm); ``head`` and ``socket`` are the
        built-in spheres (every map keeps the head centre), ``gap_mm`` the
        smallest bone-to-bone distance after the deformation.

    Raises
    ------
    InputError
        Unknown name, side or resolution.
    """
    _check_name(name)
    if side not in ("left", "right"):
        msg = f"side must be 'left' or 'right', got {side!r}"
        raise InputError(msg)
    return _case_hip(name, side, int(subdivisions))


__all__ = [
    "CASES",
    "CaseInfo",
    "CaseMaps",
    "Recipe",
    "band_weight",
    "cam_bump",
    "case_hip",
    "case_maps",
    "cone_weight",
    "neck_rotation",
    "periacetabular_rotation",
    "polar_weight",
    "radial_push",
    "shell_rotation",
    "shell_weight",
    "socket_fossa",
]
