"""Which body of a femur file is the femur.

A femur file may hold more than one closed body: both femurs from one
segmentation, a femur with its patella or tibia, or specks of noise. Every
femoral measure needs exactly one femur, so :func:`select_femur` keeps one
body and says what it dropped, or refuses when it cannot tell which femur is
meant:

* bodies under ``SMALL_BODY_SHARE`` of the largest body's area (patella,
  specks) are dropped with a warning;
* of the large ones, those without a femoral head
  (:func:`hipviz.landmarks.find_head` finds none: a tibia) are dropped with
  a warning;
* more than one body with a head (both femurs): with a pelvis, the one whose
  head sits in a socket (head centre within ``SEATED_MM`` of the socket
  centre) is measured, with a warning; if none or several do (a whole pelvis
  holds both femurs), the file is refused with one line saying so.
"""

from __future__ import annotations

import numpy as np
import trimesh

from . import landmarks as lmk
from .errors import LandmarkError
from .geometry import Sphere

#: Bodies smaller than this share of the largest body's surface area are not femurs.
SMALL_BODY_SHARE = 0.2
#: A head centre this close to the centre of the socket it faces is seated in it, mm.
SEATED_MM = 5.0


def split_bodies(mesh: trimesh.Trimesh) -> list[trimesh.Trimesh]:
    """The mesh's connected bodies (faces linked through shared vertices), largest area first.

    Parameters
    ----------
    mesh : trimesh.Trimesh
        Any triangle mesh.

    Returns
    -------
    list of trimesh.Trimesh
        One mesh per body (``[mesh]`` itself when there is only one), same
        coordinates, face winding kept.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    faces = np.asarray(mesh.faces)
    n_v = len(mesh.vertices)
    edges = faces[:, [0, 1, 1, 2]].reshape(-1, 2)
    graph = coo_matrix((np.ones(len(edges), dtype=np.int8), (edges[:, 0], edges[:, 1])), (n_v, n_v))
    count, label = connected_components(graph, directed=False)
    face_label = label[faces[:, 0]]
    if len(np.unique(face_label)) <= 1:
        return [mesh]
    area = np.bincount(face_label, weights=mesh.area_faces, minlength=count)
    out = []
    for body in np.argsort(area)[::-1]:
        if area[body] <= 0:
            continue
        sel = faces[face_label == body]
        used, inverse = np.unique(sel, return_inverse=True)
        out.append(
            trimesh.Trimesh(np.asarray(mesh.vertices)[used], inverse.reshape(-1, 3), process=False)
        )
    return out


def select_femur(
    femur: trimesh.Trimesh, pelvis: trimesh.Trimesh | None = None
) -> tuple[trimesh.Trimesh, list[str]]:
    """The one femur in a femur mesh that may hold several bodies.

    Parameters
    ----------
    femur : trimesh.Trimesh
        What was given as the femur, mm.
    pelvis : trimesh.Trimesh, optional
        The pelvis in the same coordinates; picks the femur seated in it when
        the femur mesh holds more than one.

    Returns
    -------
    femur : trimesh.Trimesh
        The body to measure (``femur`` itself when it is one body).
    warnings : list of str
        One line per dropped body or choice made.

    Raises
    ------
    LandmarkError
        (``bone="femur"``) The mesh holds several femur-like bodies (each
        with a head) and no single one of them sits in the pelvis's socket.
    """
    bodies = split_bodies(femur)
    if len(bodies) == 1:
        return femur, []
    warnings: list[str] = []
    areas = np.array([b.area for b in bodies])
    large = areas >= SMALL_BODY_SHARE * areas[0]
    if not large.all():
        n_small = int((~large).sum())
        share = 100.0 * areas[~large].sum() / areas.sum()
        what = "body" if n_small == 1 else "bodies"
        warnings.append(
            f"ignored {n_small} small separate {what} ({share:.1f}% of the surface; "
            "a patella or loose fragments?)"
        )
    candidates = [b for b, keep in zip(bodies, large, strict=True) if keep]
    if len(candidates) == 1:
        return candidates[0], warnings

    heads = []
    for body in candidates:
        try:
            heads.append(lmk.find_head(body)[0])
        except LandmarkError:
            heads.append(None)
    with_head = [(b, h) for b, h in zip(candidates, heads, strict=True) if h is not None]
    headless = len(candidates) - len(with_head)
    if headless and with_head:
        what = "body" if headless == 1 else "bodies"
        warnings.append(f"ignored {headless} large separate {what} with no femoral head (a tibia?)")
    if len(with_head) == 1:
        return with_head[0][0], warnings
    if not with_head:  # no head anywhere: let the landmark search say so on the largest
        return candidates[0], warnings

    n = len(with_head)
    if pelvis is None:
        msg = (
            f"holds {n} femur-like bodies, each with a femoral head (both femurs?); "
            "give one femur per file, or the pelvis too so the one in its socket is measured"
        )
        raise LandmarkError(msg, bone="femur")
    seated = [(b, h) for b, h in with_head if _seated_mm(pelvis, h) <= SEATED_MM]
    if len(seated) != 1:
        how = "none sits in a socket" if not seated else f"{len(seated)} sit in sockets"
        msg = (
            f"holds {n} femur-like bodies, each with a femoral head (both femurs?), and "
            f"{how} of the pelvis; give one femur per file"
        )
        raise LandmarkError(msg, bone="femur")
    warnings.append(
        f"holds {n} femur-like bodies (both femurs?); measured the one seated in the socket"
    )
    return seated[0][0], warnings


def _seated_mm(pelvis: trimesh.Trimesh, head: Sphere) -> float:
    """Distance from the head centre to the centre of the socket facing it, mm (inf if none)."""
    try:
        socket, _ = lmk.find_socket(pelvis, head)
    except LandmarkError:
        return float("inf")
    return float(np.linalg.norm(socket.center_mm - head.center_mm))


__all__ = ["SEATED_MM", "SMALL_BODY_SHARE", "select_femur", "split_bodies"]
