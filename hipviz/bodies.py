"""Which body of a femur file is the femur.

A femur file may hold more than one closed body: both femurs from one
segmentation, a femur with its patella or tibia, specks of noise, or the two
pieces of a femur after an osteotomy. Every femoral measure needs one femur,
so :func:`select_femur` keeps it and says what it dropped, or refuses when it
cannot tell which femur is meant:

* a femur-like body is one with at least ``SMALL_BODY_SHARE`` of the largest
  body's area and a femoral head (:func:`hipviz.landmarks.find_head`);
* one femur-like body: it is the femur;
* more than one (both femurs): with a pelvis, the one whose head sits in a
  socket (head centre within ``SEATED_MM`` of the socket centre) is measured,
  with a warning; if none or several do (a whole pelvis holds both femurs),
  or without a pelvis, the file is refused with one line saying so;
* other bodies within ``CONTACT_MM`` of the femur are pieces of it (a
  femoral osteotomy) and are kept; the rest (a patella, a tibia, specks) are
  dropped with a warning.

A file with one body, or whose extra bodies all touch the femur, is
measured as given.
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
#: Bodies this close to the femur are pieces of it (an osteotomy), not other bones, mm.
CONTACT_MM = 1.0


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
        The bodies to measure: ``femur`` itself when nothing was dropped,
        else the femur with the bodies touching it (the pieces of a femoral
        osteotomy).
    warnings : list of str
        One line per choice made or group of bodies dropped.

    Raises
    ------
    LandmarkError
        (``bone="femur"``) The mesh holds several femur-like bodies (each
        with a head) and no single one of them sits in the pelvis's socket.
    """
    bodies = split_bodies(femur)
    if len(bodies) == 1:
        return femur, []
    areas = np.array([b.area for b in bodies])
    large = np.flatnonzero(areas >= SMALL_BODY_SHARE * areas[0])
    heads = {}
    for i in large:
        try:
            heads[int(i)] = lmk.head_sphere(bodies[i])
        except LandmarkError:
            pass
    if not heads:  # no head anywhere: let the landmark search say so
        return femur, []
    warnings: list[str] = []
    if len(heads) == 1:
        main = next(iter(heads))
    else:
        main = _seated_one(heads, bodies, pelvis)
        warnings.append(
            f"holds {len(heads)} femur-like bodies (both femurs?); "
            "measured the one seated in the socket"
        )
    # Pieces touching the femur belong to it (a femoral osteotomy); the rest do not.
    kept = [main]
    rest = [i for i in range(len(bodies)) if i != main and i not in heads]
    grown = True
    while grown:
        grown = False
        for i in list(rest):
            if any(_gap_mm(bodies[i], bodies[k]) <= CONTACT_MM for k in kept):
                kept.append(i)
                rest.remove(i)
                grown = True
    if rest:
        share = 100.0 * areas[rest].sum() / areas.sum()
        what = "body" if len(rest) == 1 else "bodies"
        warnings.append(
            f"ignored {len(rest)} separate {what} not touching the femur "
            f"({share:.1f}% of the surface; a patella, a tibia, loose fragments?)"
        )
    if not rest and len(heads) == 1:
        return femur, []
    chosen = [bodies[i] for i in sorted(kept)]
    out = chosen[0] if len(chosen) == 1 else trimesh.util.concatenate(chosen)
    return out, warnings


def _seated_one(heads: dict[int, Sphere], bodies: list[trimesh.Trimesh], pelvis) -> int:
    """Index of the one body whose head sits in a socket of the pelvis, or raise."""
    n = len(heads)
    if pelvis is None:
        msg = (
            f"holds {n} femur-like bodies, each with a femoral head (both femurs?); "
            "give one femur per file, or the pelvis too so the one in its socket is measured"
        )
        raise LandmarkError(msg, bone="femur")
    seated = [i for i, head in heads.items() if _seated_mm(pelvis, head) <= SEATED_MM]
    if len(seated) != 1:
        how = "none sits in a socket" if not seated else f"{len(seated)} sit in sockets"
        msg = (
            f"holds {n} femur-like bodies, each with a femoral head (both femurs?), and "
            f"{how} of the pelvis; give one femur per file"
        )
        raise LandmarkError(msg, bone="femur")
    return seated[0]


def _gap_mm(a: trimesh.Trimesh, b: trimesh.Trimesh) -> float:
    """Smallest vertex-to-vertex distance between two meshes, mm (an upper bound of the gap)."""
    from scipy.spatial import cKDTree

    lo = np.maximum(a.bounds[0], b.bounds[0]) - CONTACT_MM
    hi = np.minimum(a.bounds[1], b.bounds[1]) + CONTACT_MM
    if np.any(lo > hi):  # bounding boxes apart
        return float("inf")
    pa = np.asarray(a.vertices)
    pa = pa[np.all((pa >= lo) & (pa <= hi), axis=1)]
    if len(pa) == 0:
        return float("inf")
    d, _ = cKDTree(np.asarray(b.vertices)).query(pa, k=1)
    return float(d.min())


def _seated_mm(pelvis: trimesh.Trimesh, head: Sphere) -> float:
    """Distance from the head centre to the centre of the socket facing it, mm (inf if none)."""
    try:
        socket, _ = lmk.find_socket(pelvis, head)
    except LandmarkError:
        return float("inf")
    return float(np.linalg.norm(socket.center_mm - head.center_mm))


__all__ = ["CONTACT_MM", "SEATED_MM", "SMALL_BODY_SHARE", "select_femur", "split_bodies"]
