"""Reading bone surfaces from disk.

This is the only module of hipviz that reads geometry files. It turns a
surface mesh (STL, PLY, OBJ, OFF, GLB/GLTF, VTP, legacy VTK) or a NIfTI
label map into one :class:`trimesh.Trimesh` in millimetres, in the file's
own axes, and says what it found: units, number of separate bodies,
watertightness and one-line notes for the user.

Every problem with an input file is raised as :class:`~hipviz.errors.InputError`
with a one-line message that starts with the file's name, e.g.
``"pelvis.stl: file is empty (0 bytes)"``. Exceptions of the parsing
libraries never escape for a bad file.

Heavy optional readers are imported only when needed: ``pyvista``/VTK for
``.vtp``/``.vtk``, ``nibabel`` and ``scikit-image`` for NIfTI.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import trimesh
from numpy.typing import ArrayLike, NDArray

from .errors import InputError

__all__ = [
    "SUPPORTED_SUFFIXES",
    "LoadedMesh",
    "detect_units",
    "load_label_map",
    "load_mesh",
    "parse_path_spec",
]

Units = Literal["mm", "cm", "m"]

#: Factor from each unit to millimetres.
SCALE_TO_MM: dict[str, float] = {"mm": 1.0, "cm": 10.0, "m": 1000.0}

#: File name endings :func:`load_mesh` accepts (compared case-insensitively).
SUPPORTED_SUFFIXES: tuple[str, ...] = (
    ".stl",
    ".ply",
    ".obj",
    ".off",
    ".glb",
    ".gltf",
    ".vtp",
    ".vtk",
    ".nii",
    ".nii.gz",
)

_TRIMESH_SUFFIXES = (".stl", ".ply", ".obj", ".off", ".glb", ".gltf")
_VTK_SUFFIXES = (".vtp", ".vtk")
_NIFTI_SUFFIXES = (".nii", ".nii.gz")
_FORMAT_HINT = "use STL, PLY, OBJ, OFF, GLB, GLTF, VTP, VTK or NIfTI (.nii, .nii.gz)"

# Largest bounding-box extent below which a hip bone must be in metres, and
# up to which it is implausible in both mm and m (a pelvis is ~150-300 mm).
_METRES_BELOW = 1.0
_IMPLAUSIBLE_UP_TO = 30.0
_LARGE_MM = 1000.0
# Up to this extent a file read as mm may well be a femur in cm (40-50 cm long).
_SMALL_MM = 70.0

_MIN_VERTICES = 4
_MIN_FACES = 4
_REASON_MAX = 160
_LABEL_SPEC = re.compile(r"^\s*-?\d+(?:\s*,\s*-?\d+)*\s*$")


@dataclass(frozen=True)
class LoadedMesh:
    """A bone surface read from a file, with what was found out about it.

    Attributes
    ----------
    mesh : trimesh.Trimesh
        The surface in millimetres, in the file's own axes (not reoriented).
        Exactly duplicated vertices are merged, degenerate, zero-area and
        duplicate faces dropped, and every body's faces wound consistently
        and outward; otherwise vertex order is the file's.
    path : str
        Display name: the ``name`` passed to :func:`load_mesh`, else the
        file's name (with ``:labels`` appended for a NIfTI label selection).
    units : {"mm", "cm", "m"}
        Units of the file's coordinates, as detected or as forced.
    scale_to_mm : float
        Factor applied to the file's coordinates: 1.0, 10.0 or 1000.0.
    n_bodies : int
        Number of connected components (faces connected through shared edges).
    watertight : bool
        True when every edge is shared by exactly two faces.
    warnings : tuple of str
        One-line notes for the user, e.g. ``"not watertight: 34 open edges"``,
        ``"3 separate bodies"``, ``"converted from metres (extent 0.25 m)"``,
        ``"12,345 triangles were inside-out; fixed"``.
    """

    mesh: trimesh.Trimesh
    path: str
    units: Units
    scale_to_mm: float
    n_bodies: int
    watertight: bool
    warnings: tuple[str, ...]


# --------------------------------------------------------------------------
# public functions
# --------------------------------------------------------------------------


def parse_path_spec(spec: str) -> tuple[Path, tuple[int, ...] | None]:
    """Split ``"file:1,2"`` into a path and a tuple of labels.

    The text after the last ``':'`` is taken as labels only when it is a
    comma-separated list of integers, so Windows drive letters
    (``"C:\\\\data\\\\bone.stl"``) and plain paths pass through unchanged.

    Parameters
    ----------
    spec : str
        A path, optionally followed by ``:label[,label...]``.

    Returns
    -------
    path : pathlib.Path
        The file part.
    labels : tuple of int or None
        The labels, without repeats and in the given order, or None when the
        spec has no label list.

    Raises
    ------
    InputError
        If there is a label list but no file name before it.

    Examples
    --------
    >>> parse_path_spec("seg.nii.gz:1,2")
    (PosixPath('seg.nii.gz'), (1, 2))
    >>> parse_path_spec("pelvis.stl")
    (PosixPath('pelvis.stl'), None)
    """
    text = os.fspath(spec)
    head, sep, tail = text.rpartition(":")
    if not sep or not _LABEL_SPEC.match(tail):
        return Path(text), None
    if not head.strip():
        raise InputError(f"{text!r}: no file name before the label list")
    labels = tuple(dict.fromkeys(int(part) for part in tail.split(",")))
    return Path(head), labels


def detect_units(mesh_or_points: trimesh.Trimesh | ArrayLike) -> Units:
    """Guess whether hip-bone coordinates are in millimetres or metres.

    The decision uses the largest extent of the axis-aligned bounding box:
    below 1.0 the coordinates are metres, from 1.0 to 30.0 they are neither
    (a hip bone is 1-30 mm or 1-30 m in no plausible file; centimetres are
    the likely cause, and the message says to pass ``--units cm``), above
    30.0 they are millimetres. Centimetres are never assumed: a whole femur
    in cm (40-50) reads as mm, so :func:`load_mesh` adds a hint for extents
    up to 70.

    Parameters
    ----------
    mesh_or_points : trimesh.Trimesh or array_like
        A mesh (its vertices are used) or an (n, 3) array of points.

    Returns
    -------
    {"mm", "m"}
        The detected units.

    Raises
    ------
    InputError
        If the points are empty, not finite, all coincide, or their extent
        is between 1.0 and 30.0.
    """
    vertices = getattr(mesh_or_points, "vertices", mesh_or_points)
    try:
        points = np.asarray(vertices, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InputError(f"points must be an (n, 3) array of numbers ({exc})") from None
    if points.ndim != 2 or points.shape[1] != 3 or len(points) == 0:
        raise InputError(f"points must be a non-empty (n, 3) array, got shape {points.shape}")
    if not np.isfinite(points).all():
        raise InputError("points have NaN or infinite coordinates")
    extent = float(np.max(points.max(axis=0) - points.min(axis=0)))
    if extent <= 0.0:
        raise InputError("all points coincide (zero extent)")
    if extent < _METRES_BELOW:
        return "m"
    if extent <= _IMPLAUSIBLE_UP_TO:
        raise InputError(
            f"extent {extent:.3g} is implausible for a hip bone in mm or m; it looks like "
            "centimetres: pass --units cm (or --units mm to keep it as it is)"
        )
    return "mm"


def load_mesh(
    path: str | os.PathLike[str],
    *,
    units: Literal["auto", "mm", "cm", "m"] = "auto",
    labels: Sequence[int] | None = None,
    name: str | None = None,
) -> LoadedMesh:
    """Read a bone surface from a mesh file or a NIfTI label map.

    Parameters
    ----------
    path : str or os.PathLike
        The file: STL, PLY, OBJ, OFF, GLB, GLTF, VTP, legacy VTK, or a NIfTI
        label map (``.nii``, ``.nii.gz``). A string ``"seg.nii.gz:1,2"``
        naming no existing file is read as a path with labels (see
        :func:`parse_path_spec`).
    units : {"auto", "mm", "cm", "m"}, default "auto"
        Units of the file's coordinates. ``"auto"`` decides from the extent
        (see :func:`detect_units`); NIfTI files are in mm from their affine
        (or metres when their header says so) unless forced.
    labels : sequence of int, optional
        NIfTI only: the labels whose union is the bone; all non-zero voxels
        when None.
    name : str, optional
        Name used in messages and in :attr:`LoadedMesh.path` instead of the
        file's name (e.g. the original name of an uploaded file).

    Returns
    -------
    LoadedMesh
        The surface in mm with its units, body count, watertightness and
        notes for the user. Watertightness and bodies are reported, not
        fixed; face winding is fixed body by body (consistent and outward),
        and degenerate, zero-area and duplicate faces are dropped, each
        with a note.

    Raises
    ------
    InputError
        With a one-line message naming the file, for a missing, empty,
        unreadable or unsupported file, a file with no triangles, fewer than
        4 vertices or faces, non-finite coordinates, zero or implausible
        extent, or labels that are absent from a label map.
    """
    if units not in ("auto", "mm", "cm", "m"):
        raise InputError(f"units must be 'auto', 'mm', 'cm' or 'm', not {units!r}")
    file_path, labels = _resolve_spec(path, labels)
    display = name if name else file_path.name
    suffix = _check_file(file_path, display)
    label_tuple = _check_labels(labels, display)

    notes: list[str] = []
    if suffix in _NIFTI_SUFFIXES:
        vertices, faces, read_notes, header_units = _read_nifti(file_path, label_tuple, 1, display)
    else:
        if label_tuple is not None:
            shown = ", ".join(str(label) for label in label_tuple)
            raise InputError(
                f"{display}: labels ({shown}) apply only to NIfTI label maps, "
                f"not to {suffix} meshes"
            )
        header_units = None
        if suffix in _VTK_SUFFIXES:
            vertices, faces, read_notes = _read_vtk(file_path, suffix, display)
        else:
            vertices, faces, read_notes = _read_trimesh(file_path, suffix, display)
    notes.extend(read_notes)

    vertices, faces, clean_notes = _clean(vertices, faces, display)
    notes.extend(clean_notes)
    extent = float(np.max(np.ptp(vertices, axis=0)))

    if units != "auto":
        file_units: Units = units
    elif header_units is not None:
        file_units = header_units
    else:
        try:
            file_units = detect_units(vertices)
        except InputError as exc:
            raise InputError(f"{display}: {exc}") from None
    scale = SCALE_TO_MM[file_units]
    if scale != 1.0:
        name_of = {"m": "metres", "cm": "centimetres"}[file_units]
        notes.append(f"converted from {name_of} (extent {extent:.3g} {file_units})")
        vertices = vertices * scale
    elif units == "auto" and header_units is None and extent <= _SMALL_MM:
        notes.append(
            f"extent {extent:.3g} mm is small for a hip bone (a femur is 400-500 mm): "
            "if the file is in centimetres, pass --units cm"
        )
    if extent * scale > _LARGE_MM:
        notes.append(f"extent {extent * scale:.4g} mm is large for a hip bone; check the units")

    topo = _topology(vertices, faces)
    notes.extend(topo.notes)
    mesh = trimesh.Trimesh(vertices=vertices, faces=faces, process=False, validate=False)
    shown_path = display
    if name is None and label_tuple is not None:
        shown_path = f"{display}:{','.join(str(label) for label in label_tuple)}"
    return LoadedMesh(
        mesh=mesh,
        path=shown_path,
        units=file_units,
        scale_to_mm=scale,
        n_bodies=topo.n_bodies,
        watertight=topo.watertight,
        warnings=tuple(notes),
    )


def load_label_map(
    path: str | os.PathLike[str],
    labels: Sequence[int] | None = None,
    *,
    step_size: int = 1,
) -> trimesh.Trimesh:
    """Extract the surface of labelled voxels from a NIfTI label map.

    The binary mask of the selected labels, padded by one voxel so the
    surface is closed, goes through marching cubes at level 0.5; vertices
    are mapped to world (RAS+, mm) coordinates by the image affine
    (sform, else qform), and faces point outward whatever the affine's
    handedness.

    Parameters
    ----------
    path : str or os.PathLike
        A ``.nii`` or ``.nii.gz`` file holding a 3D integer label map.
    labels : sequence of int, optional
        Labels whose union is the bone; all non-zero voxels when None.
    step_size : int, default 1
        Marching-cubes step in voxels; larger is faster and coarser.

    Returns
    -------
    trimesh.Trimesh
        The closed surface in mm, in the image's world coordinates.

    Raises
    ------
    InputError
        If the file is not a readable 3D integer NIfTI image, a label is
        absent (the message lists the labels found) or no voxel is labelled.
    """
    file_path = Path(os.fspath(path))
    display = file_path.name
    suffix = _check_file(file_path, display)
    if suffix not in _NIFTI_SUFFIXES:
        raise InputError(f"{display}: not a NIfTI label map; expected a .nii or .nii.gz file")
    if isinstance(step_size, bool) or not isinstance(step_size, (int, np.integer)):
        raise InputError(f"step_size must be a positive integer, not {step_size!r}")
    if step_size < 1:
        raise InputError(f"step_size must be a positive integer, not {step_size}")
    label_tuple = _check_labels(labels, display)
    vertices, faces, _, header_units = _read_nifti(file_path, label_tuple, int(step_size), display)
    vertices, faces, _ = _clean(vertices, faces, display)
    if header_units == "m":
        vertices = vertices * 1000.0
    return trimesh.Trimesh(vertices=vertices, faces=faces, process=False, validate=False)


# --------------------------------------------------------------------------
# checks on the file and arguments
# --------------------------------------------------------------------------


def _resolve_spec(
    path: str | os.PathLike[str], labels: Sequence[int] | None
) -> tuple[Path, Sequence[int] | None]:
    """Return the file path and labels, reading a ``file:labels`` string."""
    try:
        text = os.fspath(path)
    except TypeError:
        raise InputError(f"path must be a file name, not {type(path).__name__}") from None
    if isinstance(text, bytes):
        text = os.fsdecode(text)
    if isinstance(path, str) and not os.path.exists(text):
        file_path, spec_labels = parse_path_spec(text)
        if spec_labels is not None:
            if labels is not None and tuple(labels) != spec_labels:
                raise InputError(
                    f"{file_path.name}: labels given both in the path ({spec_labels}) "
                    f"and as an argument ({tuple(labels)})"
                )
            return file_path, spec_labels
    return Path(text), labels


def _suffix_of(file_name: str) -> str:
    """Lower-case format suffix of a file name (``.nii.gz`` counts as one)."""
    lower = file_name.lower()
    if lower.endswith(".nii.gz"):
        return ".nii.gz"
    suffixes = Path(lower).suffixes
    if not suffixes:
        return ""
    if suffixes[-1] == ".gz" and len(suffixes) > 1:
        return "".join(suffixes[-2:])
    return suffixes[-1]


def _check_file(path: Path, display: str) -> str:
    """Check that ``path`` is a readable, non-empty file of a supported format.

    Returns the lower-case format suffix.
    """
    try:
        if not path.exists():
            raise InputError(f"{display}: no such file")
        if path.is_dir():
            raise InputError(f"{display}: is a directory, not a mesh file")
        if not path.is_file():
            raise InputError(f"{display}: is not a regular file")
        size = path.stat().st_size
    except OSError as exc:
        raise InputError(f"{display}: cannot be read ({_one_line(exc.strerror or exc)})") from None
    suffix = _suffix_of(path.name)
    if suffix not in SUPPORTED_SUFFIXES:
        shown = f"unsupported format '{suffix}'" if suffix else "no file extension"
        raise InputError(f"{display}: {shown}; {_FORMAT_HINT}")
    if size == 0:
        raise InputError(f"{display}: file is empty (0 bytes)")
    try:
        with open(path, "rb") as handle:
            handle.read(1)
    except OSError as exc:
        raise InputError(f"{display}: cannot be read ({_one_line(exc.strerror or exc)})") from None
    return suffix


def _check_labels(labels: Sequence[int] | None, display: str) -> tuple[int, ...] | None:
    """Validate a label selection; return it as a tuple of unique ints."""
    if labels is None:
        return None
    if isinstance(labels, (int, np.integer, str, bytes)):
        labels = [labels]  # type: ignore[list-item]
    values: list[int] = []
    for label in labels:
        if isinstance(label, (bool, np.bool_)) or not isinstance(label, (int, np.integer)):
            raise InputError(f"{display}: labels must be integers, got {label!r}")
        if label == 0:
            raise InputError(f"{display}: label 0 is the background; choose labels other than 0")
        values.append(int(label))
    if not values:
        raise InputError(f"{display}: empty label list; pass None to use all non-zero voxels")
    return tuple(dict.fromkeys(values))


def _one_line(reason: object, path: Path | None = None, display: str | None = None) -> str:
    """Squash a third-party message to one short line, naming the file by ``display``."""
    text = str(reason)
    if path is not None and display is not None:
        for form in {str(path), str(path.absolute()), os.path.abspath(path)}:
            text = text.replace(form, display)
    text = " ".join(text.split())
    if not text and isinstance(reason, BaseException):
        text = type(reason).__name__
    if len(text) > _REASON_MAX:
        text = text[: _REASON_MAX - 1].rstrip() + "…"
    return text


# --------------------------------------------------------------------------
# readers: each returns float vertices, integer faces and notes
# --------------------------------------------------------------------------


def _read_trimesh(
    path: Path, suffix: str, display: str
) -> tuple[NDArray[np.float64], NDArray[np.int64], list[str]]:
    """Read STL/PLY/OBJ/OFF/GLB/GLTF with trimesh, concatenating scene geometry."""
    notes: list[str] = []
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if suffix == ".stl":
                vertices, faces = _read_stl(path, display)
                return vertices, faces, notes
            if suffix == ".gltf":
                with open(path, "rb") as handle:
                    if not handle.read(64).lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"{"):
                        raise InputError(f"{display}: not a readable mesh (not a glTF JSON file)")
            scene = trimesh.load_scene(str(path), file_type=suffix[1:], process=False)
            parts_v: list[NDArray[np.float64]] = []
            parts_f: list[NDArray[np.int64]] = []
            offset = 0
            skipped = 0
            for node in scene.graph.nodes_geometry:
                transform, geometry_name = scene.graph[node]
                geometry = scene.geometry.get(geometry_name)
                if not isinstance(geometry, trimesh.Trimesh) or len(geometry.faces) == 0:
                    skipped += 1
                    continue
                v = np.asarray(geometry.vertices, dtype=np.float64)
                f = np.asarray(geometry.faces, dtype=np.int64)
                matrix = np.asarray(transform, dtype=np.float64)
                if not np.array_equal(matrix, np.eye(4)):
                    v = v @ matrix[:3, :3].T + matrix[:3, 3]
                    if np.linalg.det(matrix[:3, :3]) < 0:
                        f = f[:, ::-1]  # a mirroring transform turns faces inside out
                parts_v.append(v)
                parts_f.append(f + offset)
                offset += len(v)
    except InputError:
        raise
    except Exception as exc:  # any parser failure means a bad file
        raise InputError(
            f"{display}: not a readable mesh (trimesh: {_one_line(exc, path, display)})"
        ) from None
    if not parts_v:
        if skipped:
            raise InputError(f"{display}: contains no triangles (only points or lines)")
        raise InputError(f"{display}: not a readable mesh (no geometry found in it)")
    if skipped:
        notes.append(f"ignored {skipped} part(s) without triangles (points or lines)")
    return np.concatenate(parts_v), np.concatenate(parts_f), notes


def _read_stl(path: Path, display: str) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    """Read a binary or ASCII STL with trimesh's parser (much faster than a Scene)."""
    from trimesh.exchange.stl import load_stl

    with open(path, "rb") as handle:
        loaded = load_stl(handle)
    # an ASCII file with several solids gives one entry per solid
    solids = loaded["geometry"].values() if "geometry" in loaded else [loaded]
    parts_v = [np.asarray(solid["vertices"], np.float64).reshape(-1, 3) for solid in solids]
    parts_f = [np.asarray(solid["faces"], np.int64).reshape(-1, 3) for solid in solids]
    if not parts_v:
        with open(path, "rb") as handle:
            head = handle.read(84)
        size = path.stat().st_size
        count = int.from_bytes(head[80:84], "little") if len(head) == 84 else -1
        if not head.lstrip().lower().startswith(b"solid") and size != 84 + 50 * count:
            if count < 0:
                reason = f"only {size} bytes: shorter than a binary STL header"
            else:
                reason = (
                    f"its binary header declares {count:,} triangles, which needs "
                    f"{84 + 50 * count:,} bytes, not {size:,}; truncated, or not an STL file"
                )
            raise InputError(f"{display}: not a readable mesh ({reason})")
        return np.zeros((0, 3)), np.zeros((0, 3), dtype=np.int64)
    offsets = np.cumsum([0] + [len(v) for v in parts_v[:-1]])
    faces = np.concatenate([f + offset for f, offset in zip(parts_f, offsets, strict=True)])
    return np.concatenate(parts_v), faces


def _read_vtk(
    path: Path, suffix: str, display: str
) -> tuple[NDArray[np.float64], NDArray[np.int64], list[str]]:
    """Read a ``.vtp`` (XML PolyData) or legacy ``.vtk`` file through pyvista/VTK."""
    with open(path, "rb") as handle:
        head = handle.read(256).lstrip(b"\xef\xbb\xbf \t\r\n")
    if suffix == ".vtk" and not head.startswith(b"# vtk DataFile"):
        raise InputError(
            f"{display}: not a readable mesh (not a legacy VTK file: "
            "it does not start with '# vtk DataFile')"
        )
    if suffix == ".vtp" and not (head.startswith(b"<?xml") or head.startswith(b"<VTKFile")):
        raise InputError(f"{display}: not a readable mesh (not a VTK XML file)")

    import pyvista as pv
    from vtkmodules.vtkCommonCore import vtkLogger
    from vtkmodules.vtkIOLegacy import vtkDataSetReader
    from vtkmodules.vtkIOXML import vtkXMLPolyDataReader

    # keep VTK quiet: its errors are collected and reported in one line
    verbosity = vtkLogger.GetCurrentVerbosityCutoff()
    vtkLogger.SetStderrVerbosity(vtkLogger.VERBOSITY_OFF)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with pv.VtkErrorCatcher(raise_errors=False, send_to_logging=False) as catcher:
                reader = vtkXMLPolyDataReader() if suffix == ".vtp" else vtkDataSetReader()
                reader.SetFileName(str(path))
                reader.Update()
                output = reader.GetOutputDataObject(0)
            errors = [event.alert for event in catcher.error_events]
            if errors or output is None:
                reason = errors[0] if errors else "no data set in file"
                raise InputError(
                    f"{display}: not a readable mesh (VTK: {_one_line(reason, path, display)})"
                )
            data = pv.wrap(output)
            if isinstance(data, (pv.ImageData, pv.RectilinearGrid)):
                raise InputError(
                    f"{display}: holds a {type(data).__name__} volume, not a surface mesh"
                )
            if not isinstance(data, pv.PolyData):
                data = data.extract_surface()
            surface = data.triangulate()
            vertices = np.array(surface.points, dtype=np.float64).reshape(-1, 3)
            if surface.n_faces_strict == 0:
                faces = np.zeros((0, 3), dtype=np.int64)
            else:
                faces = np.asarray(surface.regular_faces, dtype=np.int64).reshape(-1, 3)
    except InputError:
        raise
    except Exception as exc:  # any parser failure means a bad file
        raise InputError(
            f"{display}: not a readable mesh (VTK: {_one_line(exc, path, display)})"
        ) from None
    finally:
        vtkLogger.SetStderrVerbosity(verbosity)
    return vertices, faces, []


def _read_nifti(
    path: Path, labels: tuple[int, ...] | None, step_size: int, display: str
) -> tuple[NDArray[np.float64], NDArray[np.int64], list[str], Units | None]:
    """Marching cubes on the label mask of a NIfTI image, in world coordinates.

    Returns vertices in the header's spatial units, faces, notes and the units
    the header declares (``"m"`` for metres, else ``"mm"``).
    """
    import nibabel as nib
    from skimage.measure import marching_cubes

    notes: list[str] = []
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            image = nib.load(str(path))
            if not isinstance(image, (nib.Nifti1Image, nib.Nifti2Image)):
                raise InputError(f"{display}: not a NIfTI image ({type(image).__name__})")
            shape = tuple(int(n) for n in image.shape)
            while len(shape) > 3 and shape[-1] == 1:
                shape = shape[:-1]
            if len(shape) != 3:
                dims = "×".join(str(n) for n in image.shape)
                raise InputError(
                    f"{display}: is {len(shape)}D (shape {dims}); expected a 3D label map"
                )
            data = np.asanyarray(image.dataobj).reshape(shape)
            affine = np.asarray(image.affine, dtype=np.float64)
            header = image.header
            space_units = header.get_xyzt_units()[0]
            coded = int(header["sform_code"]) > 0 or int(header["qform_code"]) > 0
    except InputError:
        raise
    except Exception as exc:  # any parser failure means a bad file
        raise InputError(
            f"{display}: not a readable NIfTI image (nibabel: {_one_line(exc, path, display)})"
        ) from None

    if data.dtype.kind == "f":
        if not np.isfinite(data).all():
            raise InputError(f"{display}: not a label map: it has NaN or infinite voxel values")
        fractional = data != np.rint(data)
        if fractional.any():
            example = float(data[fractional][0])
            raise InputError(
                f"{display}: not a label map: voxel values are not integers "
                f"(e.g. {example:.3g}); pass a segmentation, not an intensity image"
            )
    elif data.dtype.kind not in "biu":
        raise InputError(f"{display}: not a label map: voxel type {data.dtype} is not integer")
    if not np.isfinite(affine).all():
        raise InputError(f"{display}: the image affine has NaN or infinite entries")
    determinant = float(np.linalg.det(affine[:3, :3]))
    if determinant == 0.0:
        raise InputError(f"{display}: the image affine is singular (zero voxel size?)")
    if not coded:
        notes.append("no sform/qform in the NIfTI header: orientation unknown, voxel sizes used")

    if labels is None:
        if data.dtype.kind != "b" and data.min() < 0:
            raise InputError(
                f"{display}: has negative values (min {data.min():.6g}); this looks like an "
                "intensity image (e.g. CT in HU), not a label map; select labels if it is one"
            )
        mask = data != 0
        if not mask.any():
            raise InputError(f"{display}: contains no labelled voxels (all voxels are 0)")
    else:
        mask = np.isin(data, labels)
        present = set(np.unique(data[mask]).tolist())
        missing = [label for label in labels if label not in present]
        if missing:
            shown = ", ".join(str(label) for label in missing)
            word = "label" if len(missing) == 1 else "labels"
            raise InputError(
                f"{display}: {word} {shown} not present; labels found: {_labels_found(data)}"
            )

    # crop to the mask, pad by one voxel so the surface is closed
    lower = np.zeros(3, dtype=np.int64)
    upper = np.zeros(3, dtype=np.int64)
    for axis in range(3):
        others = tuple(a for a in range(3) if a != axis)
        occupied = np.flatnonzero(mask.any(axis=others))
        lower[axis], upper[axis] = occupied[0], occupied[-1] + 1
    cropped = mask[lower[0] : upper[0], lower[1] : upper[1], lower[2] : upper[2]]
    volume = np.pad(cropped, 1).astype(np.float32)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ijk, faces, _, _ = marching_cubes(
                volume,
                level=0.5,
                step_size=step_size,
                gradient_direction="ascent",
                allow_degenerate=False,
            )
    except Exception as exc:
        raise InputError(
            f"{display}: surface extraction failed (marching cubes: {_one_line(exc)})"
        ) from None
    ijk = ijk.astype(np.float64) + (lower - 1)
    vertices = ijk @ affine[:3, :3].T + affine[:3, 3]
    faces = np.asarray(faces, dtype=np.int64)
    if determinant < 0:  # a mirroring affine turns the surface inside out
        faces = faces[:, ::-1]
    if _signed_volume(vertices, faces) < 0:  # should not happen; never return inward faces
        faces = faces[:, ::-1]
    header_units: Units = "mm"
    if space_units == "meter":
        header_units = "m"
    elif space_units == "micron":
        notes.append("NIfTI header declares micrometres; coordinates taken as mm")
    return vertices, faces, notes, header_units


def _labels_found(data: NDArray[np.generic], limit: int = 20) -> str:
    """List the non-zero values of a label map, shortened when there are many."""
    values = np.unique(data)
    values = values[values != 0]
    if len(values) == 0:
        return "none (all voxels are 0)"
    shown = ", ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in values[:limit].tolist())
    if len(values) > limit:
        shown += f", … ({len(values)} labels)"
    return shown


# --------------------------------------------------------------------------
# cleaning and topology
# --------------------------------------------------------------------------


def _clean(
    vertices: ArrayLike, faces: ArrayLike, display: str
) -> tuple[NDArray[np.float64], NDArray[np.int64], list[str]]:
    """Validate a triangle mesh; merge identical vertices, drop bad faces, wind outward.

    Only bit-identical vertices are merged (no tolerance), so distinct points
    are never welded. Faces using a vertex twice, faces whose corners lie on
    one line (:func:`_drop_slivers` keeps the surface closed) and repeated
    faces are dropped, then vertices no face uses; last, every body is wound
    consistently and outward (:func:`_orient_outward`). Each change adds a
    note. Vertex order is kept otherwise.
    """
    notes: list[str] = []
    v = np.array(vertices, dtype=np.float64).reshape(-1, 3)
    f = np.asarray(faces)
    if f.size == 0:
        extra = f" (only {len(v):,} points)" if len(v) else ""
        raise InputError(f"{display}: contains no triangles{extra}")
    if f.dtype.kind not in "iu":
        raise InputError(f"{display}: face indices are not integers")
    f = f.astype(np.int64, copy=False).reshape(-1, 3)
    if f.min() < 0 or f.max() >= len(v):
        bad = int(f.max()) if f.max() >= len(v) else int(f.min())
        raise InputError(
            f"{display}: a face refers to vertex {bad:,} but there are {len(v):,} vertices"
        )
    bad_rows = ~np.isfinite(v).all(axis=1)
    if bad_rows.any():
        raise InputError(
            f"{display}: {int(bad_rows.sum()):,} vertices have NaN or infinite coordinates"
        )

    v += 0.0  # -0.0 -> 0.0 so that equal coordinates have equal bits
    kept, inverse = _unique_rows_first(v)
    if len(kept) < len(v):
        v = v[kept]
        f = inverse[f]

    degenerate = (f[:, 0] == f[:, 1]) | (f[:, 1] == f[:, 2]) | (f[:, 0] == f[:, 2])
    if degenerate.any():
        notes.append(f"dropped {int(degenerate.sum()):,} degenerate faces")
        f = f[~degenerate]
    flat = _zero_area(v, f)
    if flat.any():
        notes.append(f"dropped {int(flat.sum()):,} zero-area faces (corners on one line)")
        f = _drop_slivers(v, f, flat)
    if len(f):
        ordered = np.sort(f, axis=1)
        if len(v) < 2**21:  # three 21-bit indices fit one int64 key
            key = (ordered[:, 0] << 42) | (ordered[:, 1] << 21) | ordered[:, 2]
        else:
            key = np.ascontiguousarray(ordered).view(np.dtype((np.void, 24))).ravel()
        _, first = np.unique(key, return_index=True)
        if len(first) < len(f):
            notes.append(f"dropped {len(f) - len(first):,} duplicate faces")
            f = f[np.sort(first)]

    used = np.zeros(len(v), dtype=bool)
    used[f.ravel()] = True
    if not used.all():
        unused = int((~used).sum())
        if len(f):
            notes.append(f"ignored {unused:,} vertices not used by any face")
        remap = np.cumsum(used) - 1
        v = v[used]
        f = remap[f]

    if len(f) == 0:
        raise InputError(f"{display}: contains no triangles (all faces are degenerate)")
    if len(v) < _MIN_VERTICES or len(f) < _MIN_FACES:
        raise InputError(
            f"{display}: only {len(v):,} vertices and {len(f):,} faces; "
            f"a closed surface needs at least {_MIN_VERTICES} of each"
        )
    if float(np.max(np.ptp(v, axis=0))) <= 0.0:
        raise InputError(f"{display}: all vertices coincide (zero extent)")
    f, flipped = _orient_outward(v, f)
    if flipped:
        were = "triangle was" if flipped == 1 else "triangles were"
        notes.append(f"{flipped:,} {were} inside-out; fixed")
    return v, f, notes


#: A face is zero-area when its height is below this times the largest coordinate: the
#: rounding of single-precision files (every STL) is ~6e-8 of it, so a face whose corners
#: were written on one line is still caught.
_ZERO_HEIGHT_REL = 1e-6


def _zero_area(v: NDArray[np.float64], f: NDArray[np.int64]) -> NDArray[np.bool_]:
    """(m,) bool: faces whose three distinct corners lie on one line (to file precision).

    The height of a face over its longest edge is compared with the
    coordinate magnitude, the scale of the rounding that may have moved a
    corner off the line.
    """
    if len(f) == 0:
        return np.zeros(0, dtype=bool)
    a, b, c = v[f[:, 0]], v[f[:, 1]], v[f[:, 2]]
    twice_area = np.linalg.norm(np.cross(b - a, c - a), axis=1)
    longest = np.sqrt(np.max([np.einsum("ij,ij->i", e, e) for e in (b - a, c - b, a - c)], axis=0))
    scale = float(np.max(np.abs(v))) + float(np.max(np.ptp(v, axis=0)))
    return twice_area <= _ZERO_HEIGHT_REL * scale * longest


def _drop_slivers(
    v: NDArray[np.float64], f: NDArray[np.int64], flat: NDArray[np.bool_]
) -> NDArray[np.int64]:
    """Drop zero-area faces, splitting the face across each one's long edge to keep it closed.

    A zero-area face (p, q, m) has its middle corner m on its longest edge
    p-q. Dropping it alone would leave a slit along p-q (a T-junction); the
    face on the other side of p-q, (q, p, x), is split at m into (q, m, x)
    and (m, p, x), which closes the slit and leaves the surface as it was.
    Where that face is missing, shared with another sliver, or itself a
    sliver, the sliver is only dropped.
    """
    n_v = np.int64(len(v))
    idx = np.flatnonzero(flat)
    ff = f[idx]
    length = np.stack(
        [np.linalg.norm(v[ff[:, (j + 1) % 3]] - v[ff[:, j]], axis=1) for j in range(3)], axis=1
    )
    k = np.argmax(length, axis=1)  # edge k runs from corner k to corner k + 1
    rows = np.arange(len(idx))
    p, q, m = ff[rows, k], ff[rows, (k + 1) % 3], ff[rows, (k + 2) % 3]
    # the face holding the half-edge q -> p
    half = f[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2)
    key = half[:, 0] * n_v + half[:, 1]
    order = np.argsort(key, kind="stable")
    sorted_key = key[order]
    want = q * n_v + p
    lo = np.searchsorted(sorted_key, want, side="left")
    hi = np.searchsorted(sorted_key, want, side="right")
    ok = hi - lo == 1  # exactly one face on the other side
    other = np.where(ok, order[np.minimum(lo, len(order) - 1)], 0)
    face, corner = other // 3, other % 3  # the half-edge starts at this corner of face
    ok &= ~flat[face]
    _, first = np.unique(np.where(ok, face, -1 - rows), return_index=True)
    unique = np.zeros(len(idx), dtype=bool)
    unique[first] = True
    ok &= unique  # a face split once only
    f = f.copy()
    fo, co = face[ok], corner[ok]
    x = f[fo, (co + 2) % 3]  # (q, p, x) in cyclic order from the half-edge's start
    mo = m[ok]
    f[fo] = np.column_stack([q[ok], mo, x])
    added = np.column_stack([mo, p[ok], x])
    return np.vstack([f[~flat], added])


def _orient_outward(
    vertices: NDArray[np.float64], faces: NDArray[np.int64]
) -> tuple[NDArray[np.int64], int]:
    """Wind every body's faces consistently and outward; return faces and how many turned.

    Faces that share an edge (used by exactly two faces) must use it in
    opposite directions. On the graph of "face kept" and "face turned"
    states, an edge used twice the same way links kept to turned, one used
    both ways links kept to kept: each orientable patch then falls into two
    components, one per consistent winding, and the one with the lower label
    is taken. Each patch is then turned as a whole if it encloses a negative
    volume (an inside-out body). Non-orientable patches are left as they are
    (:func:`_topology` reports them).

    Parameters
    ----------
    vertices : (n, 3) float
    faces : (m, 3) int

    Returns
    -------
    faces : (m, 3) int
        The same triangles, some with their corner order reversed.
    flipped : int
        Number of faces reversed.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    n_f = len(faces)
    if n_f == 0:
        return faces, 0
    n_v = np.int64(len(vertices))
    directed = faces[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2)
    low = np.minimum(directed[:, 0], directed[:, 1])
    high = np.maximum(directed[:, 0], directed[:, 1])
    order = np.argsort(low * n_v + high, kind="stable")
    key = (low * n_v + high)[order]
    starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
    counts = np.diff(np.r_[starts, len(key)])
    pair = starts[counts == 2]  # manifold edges: two half-edges, at pair and pair + 1
    h1, h2 = order[pair], order[pair + 1]
    f1, f2 = h1 // 3, h2 // 3
    same_way = directed[h1, 0] == directed[h2, 0]  # both faces run the edge alike
    if same_way.any():
        # kept state of face i is node i, turned state is node i + n_f
        rows = np.concatenate([f1, f1 + n_f])
        cols = np.concatenate([np.where(same_way, f2 + n_f, f2), np.where(same_way, f2, f2 + n_f)])
        graph = coo_matrix(
            (np.ones(len(rows), dtype=np.int8), (rows, cols)), shape=(2 * n_f, 2 * n_f)
        )
        _, label = connected_components(graph, directed=False)
        kept, turned = label[:n_f], label[n_f:]
        orientable = kept != turned
        flip = orientable & (turned < kept)
        patch = np.minimum(kept, turned)
    else:  # already consistent (the usual case): only the patches are needed
        graph = coo_matrix((np.ones(len(f1), dtype=np.int8), (f1, f2)), shape=(n_f, n_f))
        _, patch = connected_components(graph, directed=False)
        orientable = np.ones(n_f, dtype=bool)
        flip = np.zeros(n_f, dtype=bool)
    out = faces.copy()
    out[flip] = out[flip][:, ::-1]

    # inside-out patches: negative enclosed volume about the patch's own centre
    _, patch = np.unique(patch, return_inverse=True)
    a = vertices[out[:, 0]]
    ab = vertices[out[:, 1]] - a
    ac = vertices[out[:, 2]] - a
    normal = np.empty_like(ab)  # ab x ac, written out: np.cross is slow on big arrays
    normal[:, 0] = ab[:, 1] * ac[:, 2] - ab[:, 2] * ac[:, 1]
    normal[:, 1] = ab[:, 2] * ac[:, 0] - ab[:, 0] * ac[:, 2]
    normal[:, 2] = ab[:, 0] * ac[:, 1] - ab[:, 1] * ac[:, 0]
    n_patch = int(patch.max()) + 1
    per_patch = np.bincount(patch, minlength=n_patch)
    centre = (
        np.column_stack([np.bincount(patch, weights=a[:, k], minlength=n_patch) for k in range(3)])
        / per_patch[:, None]
    )
    # six times the volume: the triple product of the corners about the centre
    volume = np.bincount(
        patch, weights=np.einsum("ij,ij->i", a - centre[patch], normal), minlength=n_patch
    )
    area = np.bincount(patch, weights=np.linalg.norm(normal, axis=1), minlength=n_patch)
    inward = volume < -1e-9 * area**1.5  # clearly negative, not a flat open patch
    turn = inward[patch] & orientable
    out[turn] = out[turn][:, ::-1]
    return out, int(np.count_nonzero(flip ^ turn))


def _mix64(x: NDArray[np.uint64]) -> NDArray[np.uint64]:
    """SplitMix64 finaliser, element-wise (wrapping uint64 arithmetic)."""
    x = x ^ (x >> np.uint64(30))
    x = x * np.uint64(0xBF58476D1CE4E5B9)
    x = x ^ (x >> np.uint64(27))
    x = x * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def _unique_rows_first(
    v: NDArray[np.float64],
) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
    """Exact duplicate rows of a float (n, 3) array, keeping first occurrences.

    Returns the indices of the kept rows in increasing order and, for every
    row, the index of its kept row in that order. Rows are compared by their
    bits: a 64-bit hash sorts them, and the rare hash collision falls back to
    an exact lexicographic sort.
    """
    n = len(v)
    if n == 0:
        return np.zeros(0, dtype=np.intp), np.zeros(0, dtype=np.intp)
    bits = np.ascontiguousarray(v).view(np.uint64)
    digest = _mix64(bits[:, 0])
    digest = _mix64(digest ^ bits[:, 1])
    digest = _mix64(digest ^ bits[:, 2])
    order = np.argsort(digest)
    sorted_bits = bits[order]
    starts = np.empty(n, dtype=bool)
    starts[0] = True
    np.any(sorted_bits[1:] != sorted_bits[:-1], axis=1, out=starts[1:])
    sorted_digest = digest[order]
    if np.any(starts[1:] & (sorted_digest[1:] == sorted_digest[:-1])):
        order = np.lexsort((bits[:, 2], bits[:, 1], bits[:, 0]))
        sorted_bits = bits[order]
        np.any(sorted_bits[1:] != sorted_bits[:-1], axis=1, out=starts[1:])
    group = np.cumsum(starts) - 1
    first = np.minimum.reduceat(order, np.flatnonzero(starts))
    rank = np.empty(len(first), dtype=np.intp)
    rank[np.argsort(first)] = np.arange(len(first))
    inverse = np.empty(n, dtype=np.intp)
    inverse[order] = rank[group]
    return np.sort(first), inverse


@dataclass(frozen=True)
class _Topology:
    watertight: bool
    n_bodies: int
    notes: tuple[str, ...]


def _topology(vertices: NDArray[np.float64], faces: NDArray[np.int64]) -> _Topology:
    """Edge-based checks: open/non-manifold edges, winding, bodies, orientation."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    n_v = np.int64(len(vertices))
    directed = faces[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2)
    low = np.minimum(directed[:, 0], directed[:, 1])
    high = np.maximum(directed[:, 0], directed[:, 1])
    edge_keys, edge_of, counts = np.unique(
        low * n_v + high, return_inverse=True, return_counts=True
    )
    open_edges = int(np.count_nonzero(counts == 1))
    nonmanifold = int(np.count_nonzero(counts > 2))
    # consistent winding: an edge shared by two faces is used once in each direction
    forward = np.bincount(edge_of.ravel(), weights=directed[:, 0] < directed[:, 1])
    repeated = int(np.count_nonzero(np.abs(2.0 * forward - counts) > counts % 2))
    watertight = open_edges == 0 and nonmanifold == 0

    n_f = len(faces)
    n_e = len(edge_keys)
    graph = coo_matrix(
        (
            np.ones(3 * n_f, dtype=np.int8),
            (np.repeat(np.arange(n_f), 3), n_f + edge_of.ravel()),
        ),
        shape=(n_f + n_e, n_f + n_e),
    )
    n_bodies, _ = connected_components(graph, directed=False)

    notes: list[str] = []
    if not watertight:
        parts = []
        if open_edges:
            parts.append(f"{open_edges:,} open edges")
        if nonmanifold:
            parts.append(f"{nonmanifold:,} non-manifold edges")
        notes.append("not watertight: " + ", ".join(parts))
    if n_bodies > 1:
        notes.append(f"{n_bodies} separate bodies")
    if repeated:
        notes.append(f"inconsistent face winding ({repeated:,} edges)")
    elif watertight and _signed_volume(vertices, faces) < 0:
        notes.append("faces point inward (negative volume)")
    return _Topology(watertight=watertight, n_bodies=int(n_bodies), notes=tuple(notes))


def _signed_volume(vertices: NDArray[np.float64], faces: NDArray[np.int64]) -> float:
    """Signed volume enclosed by a triangle mesh (positive for outward faces)."""
    if len(faces) == 0:
        return 0.0
    a = vertices[faces[:, 0]]
    b = vertices[faces[:, 1]]
    c = vertices[faces[:, 2]]
    centre = vertices.mean(axis=0)  # reduces round-off far from the origin
    return float(np.einsum("ij,ij->", a - centre, np.cross(b - centre, c - centre)) / 6.0)
