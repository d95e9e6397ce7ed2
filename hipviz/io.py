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

What one file may make hipviz read or allocate is bounded by a
:class:`Limits` value, checked before the work it bounds: the size on disk
first, then the counts a format's header declares (triangles, points,
voxels, bytes of voxel data), and gzip data is decompressed through a
stream with a hard ceiling. A file over a limit is refused with one line
naming the file, the limit and the option that raises it.

Heavy optional readers are imported only when needed: ``pyvista``/VTK for
``.vtp``/``.vtk``, ``nibabel`` and ``scikit-image`` for NIfTI.
"""

from __future__ import annotations

import io
import os
import re
import warnings
import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Literal

import numpy as np
import trimesh
from numpy.typing import ArrayLike, NDArray

from .errors import InputError

__all__ = [
    "LIMIT_OPTIONS",
    "SUPPORTED_SUFFIXES",
    "Limits",
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


#: Bytes in the megabyte of the limits (the unit file managers show).
_MB = 1_000_000


@dataclass(frozen=True)
class Limits:
    """Ceilings on what one input file may make hipviz read or allocate.

    Each is checked before the work it bounds, from the file's size on disk
    or its header, so a file that claims more than the limits is refused in
    milliseconds, without reading its data. A refusal is one line naming the
    file, the limit and the command-line option that raises it.

    Attributes
    ----------
    max_file_mb : float, default 200
        Size of an input file on disk, MB (10^6 bytes). ``--max-file-mb``.
    max_triangles : int, default 5_000_000
        Triangles of one surface (50x the 95,000 of a CT pelvis surface):
        from the header where the format has a count (binary STL, PLY, OFF,
        VTP, legacy VTK), from a count of face records before parsing
        (ASCII STL, OBJ), and after parsing for every format. A surface may
        have at most 3 points per allowed triangle. ``--max-triangles``.
    max_voxels : int, default 256_000_000
        Voxels of a NIfTI label map, the product of the header's dimensions
        (a 512 x 512 x 976 CT). ``--max-voxels``.
    max_data_mb : float, default 1000
        Bytes a file's data may take once read, MB: a NIfTI image's voxel
        data (voxels x bytes per voxel, plus the header and extensions
        before it), and everything decompressed from a gzip file (checked as
        it streams, so a decompression bomb stops at this size).
        ``--max-data-mb``.

    Raises
    ------
    InputError
        If a value is not a positive finite number (a whole one for counts).

    Examples
    --------
    >>> Limits(max_file_mb=50).max_triangles
    5000000
    """

    max_file_mb: float = 200.0
    max_triangles: int = 5_000_000
    max_voxels: int = 256_000_000
    max_data_mb: float = 1000.0

    def __post_init__(self) -> None:
        for name in ("max_file_mb", "max_data_mb"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
                raise InputError(f"{name} must be a number of MB, not {value!r}")
            if not (np.isfinite(value) and value > 0):
                raise InputError(f"{name} must be a positive number of MB, not {value!r}")
        for name in ("max_triangles", "max_voxels"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise InputError(f"{name} must be a positive whole number, not {value!r}")

    @property
    def max_points(self) -> int:
        """Points (vertices) a surface may declare: 3 per allowed triangle."""
        return 3 * int(self.max_triangles)


#: The command-line option that raises each limit (named in refusals).
LIMIT_OPTIONS = {
    "max_file_mb": "--max-file-mb",
    "max_triangles": "--max-triangles",
    "max_voxels": "--max-voxels",
    "max_data_mb": "--max-data-mb",
}


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
    limits: Limits | None = None,
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
    limits : Limits, optional
        Ceilings on file size, triangles, voxels and data read; the
        defaults of :class:`Limits` when None.

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
        extent, labels that are absent from a label map, or a file over
        one of the ``limits`` (checked before its data is read).
    """
    if units not in ("auto", "mm", "cm", "m"):
        raise InputError(f"units must be 'auto', 'mm', 'cm' or 'm', not {units!r}")
    limits = _check_limits(limits)
    file_path, labels = _resolve_spec(path, labels)
    display = name if name else file_path.name
    suffix = _check_file(file_path, display, limits)
    label_tuple = _check_labels(labels, display)

    notes: list[str] = []
    if suffix in _NIFTI_SUFFIXES:
        vertices, faces, read_notes, header_units = _read_nifti(
            file_path, label_tuple, 1, display, limits
        )
    else:
        if label_tuple is not None:
            shown = ", ".join(str(label) for label in label_tuple)
            raise InputError(
                f"{display}: labels ({shown}) apply only to NIfTI label maps, "
                f"not to {suffix} meshes"
            )
        header_units = None
        _check_mesh_header(file_path, suffix, display, limits)
        if suffix in _VTK_SUFFIXES:
            vertices, faces, read_notes = _read_vtk(file_path, suffix, display)
        else:
            vertices, faces, read_notes = _read_trimesh(file_path, suffix, display)
    _check_triangle_count(len(faces), display, limits)
    notes.extend(read_notes)

    vertices, faces, clean_notes, edges = _clean(vertices, faces, display)
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

    topo = _topology(vertices, faces, edges)
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
    limits: Limits | None = None,
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
    limits : Limits, optional
        Ceilings on file size, voxels, data read and triangles; the
        defaults of :class:`Limits` when None.

    Returns
    -------
    trimesh.Trimesh
        The closed surface in mm, in the image's world coordinates.

    Raises
    ------
    InputError
        If the file is not a readable 3D integer NIfTI image, a label is
        absent (the message lists the labels found), no voxel is labelled,
        or the file is over one of the ``limits``.
    """
    limits = _check_limits(limits)
    file_path = Path(os.fspath(path))
    display = file_path.name
    suffix = _check_file(file_path, display, limits)
    if suffix not in _NIFTI_SUFFIXES:
        raise InputError(f"{display}: not a NIfTI label map; expected a .nii or .nii.gz file")
    if isinstance(step_size, bool) or not isinstance(step_size, (int, np.integer)):
        raise InputError(f"step_size must be a positive integer, not {step_size!r}")
    if step_size < 1:
        raise InputError(f"step_size must be a positive integer, not {step_size}")
    label_tuple = _check_labels(labels, display)
    vertices, faces, _, header_units = _read_nifti(
        file_path, label_tuple, int(step_size), display, limits
    )
    _check_triangle_count(len(faces), display, limits)
    vertices, faces, _, _ = _clean(vertices, faces, display)
    if header_units == "m":
        vertices = vertices * 1000.0
    return trimesh.Trimesh(vertices=vertices, faces=faces, process=False, validate=False)


# --------------------------------------------------------------------------
# checks on the file and arguments
# --------------------------------------------------------------------------


#: A URL: ``scheme://...`` (``file://``, ``http://``, ``https://``, ``s3://``, ``memory://``...).
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
#: Seconds an ``http(s)://`` read may wait for the server before it fails.
URL_TIMEOUT_S = 30.0


def is_url(spec: str | os.PathLike[str]) -> bool:
    """True for a ``scheme://...`` string (a URL), False for a path.

    Examples
    --------
    >>> is_url("https://example.org/femur.stl"), is_url("scans/femur.stl")
    (True, False)
    """
    return isinstance(spec, str) and bool(_URL.match(spec))


def split_url_labels(spec: str) -> tuple[str, tuple[int, ...] | None]:
    """``"https://h/seg.nii.gz:77"`` -> (``"https://h/seg.nii.gz"``, (77,)); labels as
    :func:`parse_path_spec` reads them (a ``host:port`` is not a label list).

    Examples
    --------
    >>> split_url_labels("http://127.0.0.1:8000/seg.nii.gz:77,25")
    ('http://127.0.0.1:8000/seg.nii.gz', (77, 25))
    >>> split_url_labels("http://127.0.0.1:8000/femur.stl")
    ('http://127.0.0.1:8000/femur.stl', None)
    """
    head, sep, tail = spec.rpartition(":")
    if not sep or not _LABEL_SPEC.match(tail) or not is_url(head):
        return spec, None
    return head, tuple(dict.fromkeys(int(part) for part in tail.split(",")))


def _url_name(url: str) -> str:
    """The file name at the end of a URL's path (for its format suffix)."""
    from urllib.parse import unquote, urlsplit

    return unquote(urlsplit(url).path.rstrip("/").rpartition("/")[2])


def _file_url_path(url: str) -> Path:
    from urllib.parse import urlsplit
    from urllib.request import url2pathname

    parts = urlsplit(url)
    if parts.netloc not in ("", "localhost"):
        raise InputError(f"{url}: a file:// URL must name a file on this computer")
    return Path(url2pathname(parts.path))


@contextmanager
def _url_stream(url: str, timeout_s: float) -> Iterator[BinaryIO]:
    """A binary stream of the URL's bytes: urllib for http(s), fsspec for other schemes.

    Every failure is an :class:`InputError` of one line naming the URL.
    """
    scheme = url.split("://", 1)[0].lower()
    if scheme in ("http", "https"):
        import urllib.error
        import urllib.request

        try:
            handle = urllib.request.urlopen(url, timeout=timeout_s)  # noqa: S310 - scheme checked
        except urllib.error.HTTPError as exc:
            raise InputError(f"{url}: cannot read (HTTP {exc.code} {exc.reason})") from None
        except urllib.error.URLError as exc:
            raise InputError(f"{url}: cannot read ({exc.reason})") from None
        except TimeoutError:
            raise InputError(f"{url}: cannot read (no answer in {timeout_s:g} s)") from None
        except (OSError, ValueError) as exc:
            raise InputError(f"{url}: cannot read ({exc})") from None
        with handle:
            yield handle
        return
    try:
        import fsspec
    except ImportError:
        raise InputError(
            f"{url}: reading {scheme}:// URLs needs fsspec (pip install fsspec)"
        ) from None
    try:
        opened = fsspec.open(url, "rb").open()
    except FileNotFoundError:
        raise InputError(f"{url}: no such file") from None
    except (ImportError, ValueError, OSError) as exc:  # unknown scheme, backend missing, I/O
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(f"{url}: cannot read ({reason})") from None
    with opened:
        yield opened


def _copy_capped(src: BinaryIO, dst: BinaryIO, url: str, limits: Limits) -> str:
    """Copy ``src`` to ``dst`` up to ``limits.max_file_mb``; the sha256 of the bytes copied."""
    import hashlib

    cap = int(limits.max_file_mb * 1e6)
    digest = hashlib.sha256()
    total = 0
    while True:
        try:
            block = src.read(1 << 20)
        except (OSError, ValueError) as exc:
            raise InputError(f"{url}: reading stopped ({exc})") from None
        if not block:
            return digest.hexdigest()
        total += len(block)
        if total > cap:
            raise _over_limit(url, f"more than {_mb(cap)} to read", _mb(cap), "max_file_mb")
        digest.update(block)
        dst.write(block)


@contextmanager
def fetched(
    url: str, *, limits: Limits | None = None, timeout_s: float = URL_TIMEOUT_S
) -> Iterator[tuple[Path, str]]:
    """The file a URL names, as a local path, for as long as the ``with`` block lasts.

    A ``file://`` URL is the file itself; any other is copied into a
    temporary file with the same name (so its format suffix counts), removed
    when the block ends. ``http(s)://`` is read with the standard library
    (``timeout_s`` seconds for the server to answer); other schemes
    (``memory://``, ``s3://``, ...) through fsspec, with the backend fsspec
    needs for them. The copy stops at ``limits.max_file_mb``.

    Parameters
    ----------
    url : str
        ``scheme://...`` naming one file (no label list: see
        :func:`split_url_labels`).
    limits : Limits, optional
        The size ceiling (``max_file_mb``); :class:`Limits` defaults when None.
    timeout_s : float
        Seconds an http(s) server may take to answer.

    Yields
    ------
    path : pathlib.Path
        The local file.
    sha256 : str
        Hex sha256 of its bytes.

    Raises
    ------
    InputError
        One line naming the URL: unreachable, refused, missing, over the
        size limit, or a scheme no installed package reads.
    """
    import hashlib
    import tempfile

    limits = _check_limits(limits)
    if url.split("://", 1)[0].lower() == "file":
        path = _file_url_path(url)
        try:
            with open(path, "rb") as fh:
                digest = hashlib.file_digest(fh, "sha256").hexdigest()
        except OSError as exc:
            raise InputError(f"{url}: cannot read ({exc.strerror or exc})") from None
        yield path, digest
        return
    name = _url_name(url) or "download"
    with tempfile.TemporaryDirectory(prefix="hipviz-url-") as tmp:
        local = Path(tmp) / name
        with _url_stream(url, timeout_s) as src, open(local, "wb") as dst:
            digest = _copy_capped(src, dst, url, limits)
        yield local, digest


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


def _check_file(path: Path, display: str, limits: Limits) -> str:
    """Check that ``path`` is a readable, non-empty file of a supported format.

    Also checks its size against ``limits`` and refuses gzip-compressed
    meshes (only NIfTI images may be compressed). Returns the lower-case
    format suffix.
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
    if size > limits.max_file_mb * _MB:
        shown = _mb(size) if _mb(size) != _mb(limits.max_file_mb * _MB) else f"{size:,} bytes"
        raise _over_limit(
            display,
            f"{shown} on disk",
            f"{_mb(limits.max_file_mb * _MB)} per file",
            "max_file_mb",
        )
    try:
        with open(path, "rb") as handle:
            magic = handle.read(2)
    except OSError as exc:
        raise InputError(f"{display}: cannot be read ({_one_line(exc.strerror or exc)})") from None
    if magic == _GZIP_MAGIC and suffix not in _NIFTI_SUFFIXES:
        raise InputError(
            f"{display}: is gzip-compressed; only NIfTI images (.nii.gz) may be: "
            "decompress it first"
        )
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
# limits: sizes and header counts checked before a file's data is read
# --------------------------------------------------------------------------

_GZIP_MAGIC = b"\x1f\x8b"
#: Step of streamed reads and decompression, bytes.
_CHUNK = 1 << 20
#: Compressed bytes given to zlib at a time: it copies what it has not used on
#: every call, and 64 KiB of zeros already decompress to 64 MiB.
_GZIP_STEP = 1 << 16
#: The most of a PLY/OFF header read to find its counts, bytes.
_HEADER_MAX = 1 << 16


def _check_limits(limits: Limits | None) -> Limits:
    if limits is None:
        return Limits()
    if not isinstance(limits, Limits):
        raise InputError(f"limits must be a hipviz.io.Limits, not {type(limits).__name__}")
    return limits


def _mb(nbytes: float) -> str:
    """A byte count for a message: ``"1,000 MB"``, ``"1.02 MB"``, ``"900 bytes"``."""
    if nbytes >= 100 * _MB:
        return f"{nbytes / _MB:,.0f} MB"
    if nbytes >= _MB / 10:
        return f"{nbytes / _MB:.3g} MB"
    return f"{nbytes:,.0f} bytes"


def _over_limit(display: str, what: str, limit: str, field: str) -> InputError:
    """The one-line refusal: the file, what it holds, the limit, the option raising it."""
    return InputError(
        f"{display}: {what}, over the limit of {limit} (raise it with {LIMIT_OPTIONS[field]})"
    )


def _check_triangle_count(count: int, display: str, limits: Limits, source: str = "") -> None:
    """Refuse ``count`` triangles over the limit; ``source`` says where the count was read."""
    if count > limits.max_triangles:
        what = f"{source} {count:,} triangles" if source else f"{count:,} triangles"
        raise _over_limit(display, what, f"{limits.max_triangles:,} triangles", "max_triangles")


def _check_point_count(count: int, display: str, limits: Limits, source: str) -> None:
    """Refuse more points than 3 per allowed triangle (no surface uses more)."""
    if count > limits.max_points:
        raise _over_limit(
            display,
            f"{source} {count:,} points",
            f"{limits.max_points:,} points, 3 per triangle",
            "max_triangles",
        )


def _check_fits(display: str, declared: str, needed: int, size: int) -> None:
    """Refuse a header whose counts need more bytes than the file has."""
    if needed > size:
        raise InputError(
            f"{display}: not a readable mesh (its header declares {declared}, which need at "
            f"least {needed:,} bytes, but the file has {size:,}; truncated, or the header lies)"
        )


def _count_in_file(path: Path, needles: tuple[bytes, ...], *, lower: bool = False) -> int:
    """Occurrences of byte strings in a file, read in steps (memory: one step)."""
    total = 0
    keep = max(len(n) for n in needles) - 1
    carry = b""
    with open(path, "rb") as handle:
        while block := handle.read(8 * _CHUNK):
            text = carry + (block.lower() if lower else block)
            total += sum(text.count(n) for n in needles)
            # the carry is shorter than any needle: nothing in it was counted whole
            carry = text[-keep:] if keep else b""
    return total


def _check_mesh_header(path: Path, suffix: str, display: str, limits: Limits) -> None:
    """Check the counts a mesh file declares against ``limits`` and its size.

    Formats with counts in their header (binary STL, PLY, OFF, VTP, legacy
    VTK) are checked from it; ASCII STL and OBJ by counting their face
    records. A header whose counts need more bytes than the file holds is
    refused as lying (the parsers would allocate for the claimed counts).
    """
    size = path.stat().st_size
    checks = {
        ".stl": _check_stl,
        ".ply": _check_ply,
        ".off": _check_off,
        ".obj": _check_obj,
        ".vtk": _check_legacy_vtk,
        ".vtp": _check_vtp,
        ".gltf": _check_gltf,
    }
    check = checks.get(suffix)
    if check is not None:
        try:
            check(path, display, size, limits)
        except OSError as exc:
            raise InputError(
                f"{display}: cannot be read ({_one_line(exc.strerror or exc)})"
            ) from None


def _check_stl(path: Path, display: str, size: int, limits: Limits) -> None:
    """Binary STL: the uint32 count must match the file size exactly; ASCII: count facets."""
    with open(path, "rb") as handle:
        head = handle.read(84)
    count = int.from_bytes(head[80:84], "little") if len(head) == 84 else -1
    if count >= 0 and size == 84 + 50 * count:
        _check_triangle_count(count, display, limits, "its binary header declares")
        return
    if head.lstrip().lower().startswith(b"solid"):
        facets = _count_in_file(path, (b"endfacet",), lower=True)
        _check_triangle_count(facets, display, limits, "it has")
        return
    if count < 0:
        reason = f"only {size} bytes: shorter than a binary STL header"
    else:
        reason = (
            f"its binary header declares {count:,} triangles, which need "
            f"{84 + 50 * count:,} bytes, not {size:,}; truncated, or not an STL file"
        )
    raise InputError(f"{display}: not a readable mesh ({reason})")


_PLY_SIZES = {
    "char": 1, "uchar": 1, "int8": 1, "uint8": 1,
    "short": 2, "ushort": 2, "int16": 2, "uint16": 2,
    "int": 4, "uint": 4, "int32": 4, "uint32": 4, "float": 4, "float32": 4,
    "double": 8, "float64": 8,
}  # fmt: skip


def _check_ply(path: Path, display: str, size: int, limits: Limits) -> None:
    """PLY: ``element face N`` and ``element vertex N`` against the limits and the file size."""
    with open(path, "rb") as handle:
        head = handle.read(_HEADER_MAX)
    end = re.search(rb"end_header[ \t]*\r?\n", head)
    if not head.startswith(b"ply"):
        return  # not a PLY header: the parser says so in its own words
    if end is None:
        raise InputError(
            f"{display}: not a readable mesh (no end_header in its first {_HEADER_MAX:,} bytes)"
        )
    binary = b"format binary" in head[: end.start()]
    elements: list[tuple[str, int, int]] = []  # name, count, least bytes per record
    for line in head[: end.start()].decode("ascii", "replace").splitlines():
        words = line.split()
        if len(words) == 3 and words[0] == "element" and words[2].isdigit():
            elements.append((words[1], int(words[2]), 0))
        elif words[:1] == ["property"] and elements:
            name, count, least = elements[-1]
            if len(words) >= 5 and words[1] == "list":  # the count field; a list may be empty
                add = _PLY_SIZES.get(words[2], 1) if binary else 2
            else:
                add = _PLY_SIZES.get(words[1] if len(words) > 1 else "", 1) if binary else 2
            elements[-1] = (name, count, least + add)
    counts = {name: count for name, count, _ in elements}
    faces = counts.get("face", 0) + counts.get("tristrips", 0)
    _check_triangle_count(faces, display, limits, "its header declares at least")
    _check_point_count(counts.get("vertex", 0), display, limits, "its header declares")
    needed = sum(count * max(least, 1) for _, count, least in elements)
    declared = ", ".join(f"{count:,} {name}" for name, count, _ in elements)
    _check_fits(display, declared, needed, size - end.end())


def _check_off(path: Path, display: str, size: int, limits: Limits) -> None:
    """OFF: the vertex and face counts after the ``OFF`` keyword."""
    with open(path, "rb") as handle:
        head = handle.read(_HEADER_MAX)
    words: list[bytes] = []
    for line in head.splitlines()[:-1]:  # the last line may be cut
        words += line.split(b"#", 1)[0].split()
        if len(words) >= 4:
            break
    if len(words) < 3 or not words[0].endswith(b"OFF"):
        return  # not an OFF header: the parser says so
    try:
        n_vertices, n_faces = int(words[1]), int(words[2])
    except ValueError:
        return
    _check_triangle_count(n_faces, display, limits, "its header declares at least")
    _check_point_count(n_vertices, display, limits, "its header declares")
    # least text per record: "0 0 0\n" per vertex, "3 0 1 2\n" per face
    needed = 6 * n_vertices + 8 * n_faces
    _check_fits(display, f"{n_vertices:,} vertices and {n_faces:,} faces", needed, size)


def _check_obj(path: Path, display: str, size: int, limits: Limits) -> None:
    """OBJ has no counts: count its face lines (each is at least one triangle)."""
    faces = _count_in_file(path, (b"\nf ", b"\nf\t"))
    with open(path, "rb") as handle:
        faces += handle.read(2) in (b"f ", b"f\t")
    _check_triangle_count(faces, display, limits, "it has at least")


_VTK_SIZES = {
    "bit": 1, "char": 1, "unsigned_char": 1, "short": 2, "unsigned_short": 2,
    "int": 4, "unsigned_int": 4, "long": 8, "unsigned_long": 8, "float": 4, "double": 8,
    "vtkidtype": 4, "vtktypeint64": 8, "vtktypeuint64": 8,
}  # fmt: skip
_VTK_COUNTS = re.compile(
    rb"(?m)^[ \t]*(POINTS|[XYZ]_COORDINATES|POLYGONS|TRIANGLE_STRIPS|VERTICES|LINES|CELLS"
    rb"|CELL_TYPES|POINT_DATA|CELL_DATA)[ \t]+(\d+)(?:[ \t]+(\w+))?"
)
_VTK_FIELD_ARRAY = re.compile(
    rb"(?m)^[ \t]*\S+[ \t]+(\d+)[ \t]+(\d+)[ \t]+("
    + "|".join(_VTK_SIZES).encode()
    + rb")[ \t]*\r?$",
    re.IGNORECASE,
)


def _check_legacy_vtk(path: Path, display: str, size: int, limits: Limits) -> None:
    """Legacy VTK: every count a keyword line declares must fit in the file.

    VTK allocates each array for its declared count before reading it, so a
    count that the file's bytes cannot hold is refused first.
    """
    with open(path, "rb") as handle:
        head = handle.read(1024)
    binary = re.search(rb"(?m)^BINARY", head) is not None
    least = 1 if binary else 2  # bytes per number: a char, or a digit and a space
    version = re.match(rb"# vtk DataFile Version (\d+)", head)
    # from version 5 a cell line counts offsets: one more than the cells
    extra_offset = 1 if version is not None and int(version.group(1)) >= 5 else 0
    polygons = 0
    carry = b""
    with open(path, "rb") as handle:
        while block := handle.read(8 * _CHUNK):
            text = carry + block
            cut = text.rfind(b"\n") + 1  # whole lines only; the rest waits for the next step
            text, carry = text[:cut], text[cut:]
            for match in _VTK_COUNTS.finditer(text):
                keyword, count = match.group(1).decode(), int(match.group(2))
                third = (match.group(3) or b"").decode().lower()
                per = 3 if keyword == "POINTS" else 1
                if keyword == "POINTS":
                    _check_point_count(count, display, limits, "its POINTS line declares")
                if keyword in ("POLYGONS", "TRIANGLE_STRIPS"):
                    polygons += max(count - extra_offset, 0)
                number = _VTK_SIZES.get(third, least) if binary else least
                if third.isdigit():  # cells: "POLYGONS n size" holds size numbers
                    per, count = 1, int(third)
                    number = 4 if binary else least
                _check_fits(display, f"{keyword} {count:,}", count * per * number, size)
            for match in _VTK_FIELD_ARRAY.finditer(text):
                components, tuples = int(match.group(1)), int(match.group(2))
                number = _VTK_SIZES.get(match.group(3).decode().lower(), 1) if binary else least
                declared = f"a field array of {tuples:,} x {components:,}"
                _check_fits(display, declared, components * tuples * number, size)
    _check_triangle_count(polygons, display, limits, "it declares at least")


_XML_PIECE = re.compile(rb"<Piece\b([^>]*)>")
_XML_COMPONENTS = re.compile(rb"NumberOfComponents\s*=\s*[\"'](\d+)[\"']")
#: Components of one data array of a bone surface: 9 is a 3x3 tensor.
_MAX_COMPONENTS = 64


def _check_vtp(path: Path, display: str, size: int, limits: Limits) -> None:
    """VTK XML PolyData: the counts of every ``<Piece>`` against the limits.

    The data may be compressed, so the counts cannot be checked against the
    file size; VTK allocates arrays from them.
    """
    points = polygons = 0
    components = 0
    carry = b""
    with open(path, "rb") as handle:
        while block := handle.read(8 * _CHUNK):
            text = carry + block
            start = text.find(b"<AppendedData")
            cut = text.rfind(b">") + 1 if start < 0 else start
            xml, carry = text[:cut], text[cut:][-_HEADER_MAX:]  # a tag cut by the step waits
            for match in _XML_PIECE.finditer(xml):
                attributes = dict(
                    (key.decode(), int(value))
                    for key, value in re.findall(rb"(\w+)\s*=\s*[\"'](\d+)[\"']", match.group(1))
                )
                points += attributes.get("NumberOfPoints", 0)
                polygons += attributes.get("NumberOfPolys", 0) + attributes.get("NumberOfStrips", 0)
            found = [int(n) for n in _XML_COMPONENTS.findall(xml)]
            components = max([components, *found])
            if start >= 0:
                break  # binary data follows: no more headers
    _check_triangle_count(polygons, display, limits, "its pieces declare at least")
    _check_point_count(points, display, limits, "its pieces declare")
    if components > _MAX_COMPONENTS:
        raise InputError(
            f"{display}: not a readable mesh (a data array declares {components:,} components "
            f"per value; a surface's arrays have at most {_MAX_COMPONENTS})"
        )


def _check_gltf(path: Path, display: str, size: int, limits: Limits) -> None:
    """glTF: files the JSON refers to are regular files within the file size limit."""
    import json

    try:
        header = json.loads(path.read_bytes())
    except (ValueError, UnicodeDecodeError):
        return  # the parser says what is wrong
    if not isinstance(header, dict):
        return
    total = size
    for key in ("buffers", "images"):
        for entry in header.get(key) or []:
            uri = entry.get("uri") if isinstance(entry, dict) else None
            if not isinstance(uri, str) or uri.startswith("data:"):
                continue
            other = path.parent / uri
            try:
                if not other.exists():
                    continue  # the parser reports the missing file
                if not other.is_file():
                    raise InputError(f"{display}: refers to {uri!r}, which is not a regular file")
                total += other.stat().st_size
            except OSError:
                continue
    if total > limits.max_file_mb * _MB:
        raise _over_limit(
            display,
            f"{_mb(total)} with the files it refers to",
            f"{_mb(limits.max_file_mb * _MB)} per file",
            "max_file_mb",
        )


class _CappedGunzip(io.RawIOBase):
    """A gzip file read as a stream that never yields more than ``cap`` bytes.

    Decompresses with :meth:`zlib.Decompress.decompress` and its
    ``max_length``, one step (1 MiB) at a time, so nothing beyond the bytes
    asked for is held, and raises :class:`InputError` as soon as the output
    would pass ``cap``: a decompression bomb stops there. Seeks forward by
    decompressing and dropping; a seek backward starts again from the
    beginning. Concatenated gzip members are read as one stream.
    """

    def __init__(self, path: Path, cap: int, display: str) -> None:
        super().__init__()
        self._cap = cap
        self._display = display
        self._raw: BinaryIO = open(path, "rb")  # noqa: SIM115 - closed by close()
        self._restart()

    def _restart(self) -> None:
        self._raw.seek(0)
        self._zlib = zlib.decompressobj(16 + zlib.MAX_WBITS)
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def readinto(self, buffer) -> int:  # type: ignore[no-untyped-def]
        view = memoryview(buffer).cast("B")
        want = min(len(view), _CHUNK)
        if want == 0:
            return 0
        try:
            chunk = self._next(want)
        except zlib.error as exc:
            raise InputError(f"{self._display}: corrupt gzip data ({_one_line(exc)})") from None
        if self._pos + len(chunk) > self._cap:
            raise InputError(
                f"{self._display}: its gzip data decompresses to more than the limit of "
                f"{_mb(self._cap)} of data (raise it with {LIMIT_OPTIONS['max_data_mb']})"
            )
        view[: len(chunk)] = chunk
        self._pos += len(chunk)
        return len(chunk)

    def readall(self) -> bytes:
        parts = bytearray()
        step = bytearray(_CHUNK)
        while count := self.readinto(step):
            parts += memoryview(step)[:count]
        return bytes(parts)

    def _next(self, want: int) -> bytes:
        """Up to ``want`` more decompressed bytes; empty at the end of the data."""
        while True:
            if self._zlib.eof:  # first: a finished member may still show an unconsumed tail
                data = self._zlib.unused_data or self._raw.read(_GZIP_STEP)
                if data[:1] != _GZIP_MAGIC[:1]:
                    return b""  # the end, or padding after the last member
                self._zlib = zlib.decompressobj(16 + zlib.MAX_WBITS)
            elif self._zlib.unconsumed_tail:
                data = self._zlib.unconsumed_tail
            else:
                data = self._raw.read(_GZIP_STEP)
                if not data:  # zlib may still hold output; else the file is cut short
                    chunk = self._zlib.decompress(b"", want)
                    if chunk or self._zlib.eof:
                        return chunk or self._next(want)
                    raise InputError(f"{self._display}: the gzip data ends early (truncated file)")
            chunk = self._zlib.decompress(data, want)
            if chunk:
                return chunk

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_CUR:
            offset += self._pos
        elif whence != io.SEEK_SET:
            raise io.UnsupportedOperation("a gzip stream cannot seek from its end")
        if offset < self._pos:
            self._restart()
        scratch = bytearray(min(_CHUNK, max(offset - self._pos, 0)))
        while self._pos < offset:
            step = memoryview(scratch)[: min(len(scratch), offset - self._pos)]
            if self.readinto(step) == 0:
                break
        return self._pos

    def close(self) -> None:
        self._raw.close()
        super().close()


def _open_data(path: Path, display: str, limits: Limits) -> BinaryIO:
    """The file's bytes: gunzipped under the data limit when it is gzip, else as they are."""
    handle = open(path, "rb")  # noqa: SIM115 - returned to the caller, who closes it
    if handle.read(2) != _GZIP_MAGIC:
        handle.seek(0)
        return handle
    handle.close()
    stream = _CappedGunzip(path, int(limits.max_data_mb * _MB), display)
    # a small buffer: reading a header must not decompress far past it
    return io.BufferedReader(stream)  # type: ignore[return-value]


def _nifti_header(path: Path, display: str, limits: Limits):  # type: ignore[no-untyped-def]
    """The NIfTI image class and header, checked against ``limits`` before any voxel is read.

    Returns ``(image_class, header)``. The header's dimensions times the bytes
    per voxel, and the offset of the data, are checked against the voxel and
    data limits; in an uncompressed file they must also fit in the file.
    """
    import nibabel as nib

    try:
        with _open_data(path, display, limits) as stream:
            raw = stream.read(540)
    except OSError as exc:
        raise InputError(f"{display}: cannot be read ({_one_line(exc.strerror or exc)})") from None
    sizes = {int.from_bytes(raw[:4], order) for order in ("little", "big")} if raw else set()
    if 348 in sizes and len(raw) >= 348:
        klass, header_size = nib.Nifti1Image, 348
    elif 540 in sizes and len(raw) >= 540:
        klass, header_size = nib.Nifti2Image, 540
    else:
        raise InputError(
            f"{display}: not a readable NIfTI image (no NIfTI-1 or NIfTI-2 header at its start)"
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            header = klass.header_class(raw[:header_size], check=False)
            shape = tuple(int(n) for n in header.get_data_shape())
            dtype = np.dtype(header.get_data_dtype())
            offset = max(int(header.get_data_offset()), header_size + 4)
    except Exception as exc:  # any header the parser cannot use is a bad file
        raise InputError(
            f"{display}: not a readable NIfTI image (nibabel: {_one_line(exc, path, display)})"
        ) from None
    if any(n < 0 for n in shape):
        raise InputError(f"{display}: not a readable NIfTI image (negative dimensions {shape})")
    dims = "×".join(str(n) for n in shape) or "0"
    voxels = int(np.prod(shape, dtype=object)) if shape else 0
    if voxels > limits.max_voxels:
        raise _over_limit(
            display,
            f"its header declares {dims} = {voxels:,} voxels",
            f"{limits.max_voxels:,} voxels",
            "max_voxels",
        )
    data_bytes = voxels * dtype.itemsize
    cap = limits.max_data_mb * _MB
    if offset + data_bytes > cap:
        what = (
            f"its header declares {dims} {dtype.name} voxels = {_mb(data_bytes)} of voxel data"
            if data_bytes > cap
            else f"its header puts {_mb(data_bytes)} of voxel data at byte {offset:,}"
        )
        raise _over_limit(display, what, f"{_mb(cap)} of data", "max_data_mb")
    size = path.stat().st_size
    with open(path, "rb") as handle:
        gzipped = handle.read(2) == _GZIP_MAGIC
    if not gzipped and offset + data_bytes > size:
        raise InputError(
            f"{display}: not a readable NIfTI image (its header declares {dims} {dtype.name} "
            f"voxels from byte {offset:,}, which need {offset + data_bytes:,} bytes, but the file "
            f"has {size:,}; truncated, or the header lies)"
        )
    return klass, header


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
            # geometry only: textures are images a file could make large on decoding
            scene = trimesh.load_scene(
                str(path), file_type=suffix[1:], process=False, skip_materials=True
            )
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
    path: Path, labels: tuple[int, ...] | None, step_size: int, display: str, limits: Limits
) -> tuple[NDArray[np.float64], NDArray[np.int64], list[str], Units | None]:
    """Marching cubes on the label mask of a NIfTI image, in world coordinates.

    The header is read and checked against ``limits`` first; the voxels are
    then read through :func:`_open_data` (gzip under a decompression cap).
    Returns vertices in the header's spatial units, faces, notes and the units
    the header declares (``"m"`` for metres, else ``"mm"``).
    """
    import nibabel as nib
    from skimage.measure import marching_cubes

    notes: list[str] = []
    klass, _ = _nifti_header(path, display, limits)
    try:
        with warnings.catch_warnings(), _open_data(path, display, limits) as stream:
            warnings.simplefilter("ignore")
            holder = nib.FileHolder(filename=str(path), fileobj=stream)
            image = klass.from_file_map({"image": holder}, mmap=False)
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
) -> tuple[NDArray[np.float64], NDArray[np.int64], list[str], _Edges]:
    """Validate a triangle mesh; merge identical vertices, drop bad faces, wind outward.

    Only bit-identical vertices are merged (no tolerance), so distinct points
    are never welded. Faces using a vertex twice, faces whose corners lie on
    one line (:func:`_drop_slivers` keeps the surface closed) and repeated
    faces are dropped, then vertices no face uses; last, every body is wound
    consistently and outward (:func:`_orient_outward`). Each change adds a
    note. Vertex order is kept otherwise. Also returns the edges of the
    faces returned, for :func:`_topology`.
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
    f, flipped, edges = _orient_outward(v, f)
    if flipped:
        were = "triangle was" if flipped == 1 else "triangles were"
        notes.append(f"{flipped:,} {were} inside-out; fixed")
    return v, f, notes, edges


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


@dataclass(frozen=True)
class _Edges:
    """The edges of a face array, as :func:`_orient_outward` grouped them.

    ``edge_of`` (m, 3) int: the edge of each face's side k (corner k to
    k + 1), numbered in increasing key order; ``counts`` (e,) int: faces
    using each edge; ``n_patches``: patches of faces joined by edges used
    by exactly two faces (the bodies, when every edge is).
    """

    edge_of: NDArray[np.intp]
    counts: NDArray[np.intp]
    n_patches: int


def _orient_outward(
    vertices: NDArray[np.float64], faces: NDArray[np.int64]
) -> tuple[NDArray[np.int64], int, _Edges | None]:
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
    edges : _Edges or None
        The edges of the faces returned (None for no faces).
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    n_f = len(faces)
    if n_f == 0:
        return faces, 0, None
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
    reversed_ = flip ^ turn
    return out, int(np.count_nonzero(reversed_)), _edges_of(order, key, counts, reversed_, n_patch)


def _edges_of(
    order: NDArray[np.intp],
    sorted_key: NDArray[np.int64],
    counts: NDArray[np.intp],
    reversed_: NDArray[np.bool_],
    n_patches: int,
) -> _Edges:
    """:class:`_Edges` from the sorted half-edge keys of the faces before some were reversed.

    Reversing a face (a, b, c) -> (c, b, a) keeps its three edges but swaps
    the sides they are on: side 0 (a-b) becomes side 1 and side 1 (b-c)
    side 0; side 2 (c-a) stays.
    """
    group = np.cumsum(np.r_[True, sorted_key[1:] != sorted_key[:-1]]) - 1
    edge_of = np.empty(len(order), dtype=np.intp)
    edge_of[order] = group
    edge_of = edge_of.reshape(-1, 3)
    edge_of[reversed_] = edge_of[reversed_][:, [1, 0, 2]]
    return _Edges(edge_of, counts, n_patches)


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


def _topology(
    vertices: NDArray[np.float64], faces: NDArray[np.int64], edges: _Edges | None = None
) -> _Topology:
    """Edge-based checks: open/non-manifold edges, winding, bodies, orientation.

    ``edges``: those of ``faces`` from :func:`_clean`, which spares sorting
    them again; found here when None.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    n_v = np.int64(len(vertices))
    directed = faces[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2)
    if edges is None:
        low = np.minimum(directed[:, 0], directed[:, 1])
        high = np.maximum(directed[:, 0], directed[:, 1])
        _, edge_of, counts = np.unique(low * n_v + high, return_inverse=True, return_counts=True)
    else:
        edge_of, counts = edges.edge_of.ravel(), edges.counts
    open_edges = int(np.count_nonzero(counts == 1))
    nonmanifold = int(np.count_nonzero(counts > 2))
    # consistent winding: an edge shared by two faces is used once in each direction
    forward = np.bincount(edge_of.ravel(), weights=directed[:, 0] < directed[:, 1])
    repeated = int(np.count_nonzero(np.abs(2.0 * forward - counts) > counts % 2))
    watertight = open_edges == 0 and nonmanifold == 0

    n_f = len(faces)
    n_e = len(counts)
    if edges is not None and watertight:
        n_bodies = edges.n_patches  # every edge joins two faces: the patches are the bodies
    else:
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
