"""Hostile input files, built small in a folder: header bombs, gzip bombs, lying counts.

Used by ``tests/test_limits.py`` and ``scripts/bench_limits.py``. Each builder
writes one file and returns its path; none of them takes more than a second
or more than a few MB of disk.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

#: One gzip member of 64 MiB of zeros (about 65 KB), built once.
_ZEROS_MEMBER_MIB = 64
_zeros_member: bytes | None = None


def _zeros_gzip_member() -> bytes:
    global _zeros_member
    if _zeros_member is None:
        _zeros_member = gzip.compress(bytes(_ZEROS_MEMBER_MIB << 20), compresslevel=9, mtime=0)
    return _zeros_member


def nifti_header(shape: tuple[int, ...], dtype: str = "int16", vox_offset: int = 352) -> bytes:
    """A NIfTI-1 header (348 bytes) and the 4-byte extension flag, as in a ``.nii`` file."""
    import nibabel as nib

    header = nib.Nifti1Header()
    header.set_data_shape(shape)
    header.set_data_dtype(np.dtype(dtype))
    header["vox_offset"] = vox_offset
    header.set_sform(np.eye(4), code=1)
    flag = b"\x01\0\0\0" if vox_offset > 352 else b"\0\0\0\0"
    return header.binaryblock + flag


def lying_nifti_gz(folder: Path, shape: tuple[int, ...] = (2048, 2048, 2048)) -> Path:
    """A ``.nii.gz`` of about 90 bytes: a header claiming ``shape`` int16 voxels, no data."""
    path = folder / "lying_header.nii.gz"
    path.write_bytes(gzip.compress(nifti_header(shape), compresslevel=9, mtime=0))
    return path


def nifti_gzip_bomb(
    folder: Path, shape: tuple[int, ...] = (2048, 2048, 1024), dtype: str = "uint8"
) -> Path:
    """A ``.nii.gz`` of ~4 MB whose honest header is followed by all its voxels, zeros.

    2048 x 2048 x 1024 bytes = 4 GiB decompressed, stored as concatenated
    gzip members of 64 MiB each (valid gzip; ``gzip -d`` reads it whole).
    """
    path = folder / "gzip_bomb.nii.gz"
    data_bytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
    members = -(-data_bytes // (_ZEROS_MEMBER_MIB << 20))
    with open(path, "wb") as handle:
        handle.write(gzip.compress(nifti_header(shape, dtype), mtime=0))
        member = _zeros_gzip_member()
        for _ in range(members):
            handle.write(member)
    return path


def zeros_gzip(folder: Path, mib: int = 4096, name: str = "zeros.nii.gz") -> Path:
    """A gzip file of ``mib`` MiB of zeros and nothing else (no header): ~65 KB per 64 MiB."""
    path = folder / name
    member = _zeros_gzip_member()
    with open(path, "wb") as handle:
        for _ in range(-(-mib // _ZEROS_MEMBER_MIB)):
            handle.write(member)
    return path


def nifti_extension_bomb(folder: Path) -> Path:
    """A ``.nii.gz`` with a tiny image whose header puts the voxels 2 GB in (an extension bomb)."""
    path = folder / "extension_bomb.nii.gz"
    offset = 2_000_000_000
    with open(path, "wb") as handle:
        header = nifti_header((8, 8, 8), "uint8", vox_offset=offset)
        # an extension record: its size field claims all the room before the voxels
        record = np.array([offset - 352, 0], dtype="<i4").tobytes()
        handle.write(gzip.compress(header + record, mtime=0))
        for _ in range(-(-offset // (_ZEROS_MEMBER_MIB << 20))):
            handle.write(_zeros_gzip_member())
    return path


def lying_stl(folder: Path, count: int = 2**31) -> Path:
    """A binary STL whose header claims ``count`` triangles but that holds one."""
    path = folder / "lying_count.stl"
    triangle = np.zeros(12, dtype="<f4").tobytes() + b"\0\0"
    path.write_bytes(b"\0" * 80 + np.uint32(count).tobytes() + triangle)
    return path


def lying_ply(folder: Path, faces: int = 2**31 - 1) -> Path:
    """A binary PLY whose header claims ``faces`` faces and holds a tetrahedron."""
    path = folder / "lying_count.ply"
    head = (
        "ply\nformat binary_little_endian 1.0\nelement vertex 4\n"
        "property float x\nproperty float y\nproperty float z\n"
        f"element face {faces}\nproperty list uchar int vertex_indices\nend_header\n"
    ).encode()
    vertices = np.array([[0, 0, 0], [100, 0, 0], [0, 100, 0], [0, 0, 100]], "<f4").tobytes()
    face_rows = b"".join(
        np.uint8(3).tobytes() + np.array(f, "<i4").tobytes()
        for f in ([0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3])
    )
    path.write_bytes(head + vertices + face_rows)
    return path


def lying_vtk(folder: Path, points: int = 1_000_000_000) -> Path:
    """A legacy VTK file whose POINTS line claims ``points`` points and holds four."""
    path = folder / "lying_points.vtk"
    path.write_text(
        "# vtk DataFile Version 3.0\nbomb\nASCII\nDATASET POLYDATA\n"
        f"POINTS {points} float\n0 0 0 100 0 0 0 100 0 0 0 100\n"
        "POLYGONS 4 16\n3 0 2 1\n3 0 1 3\n3 0 3 2\n3 1 2 3\n"
    )
    return path


def sphere_stl(folder: Path, name: str = "sphere.stl", subdivisions: int = 4) -> Path:
    """An honest closed binary STL (a 60 mm sphere), ``20 * 4**subdivisions`` triangles."""
    import trimesh

    path = folder / name
    trimesh.creation.icosphere(subdivisions=subdivisions, radius=60.0).export(path)
    return path


def all_bombs(folder: Path) -> dict[str, Path]:
    """Every hostile file above, by a short name."""
    return {
        "lying NIfTI header (2048³ int16)": lying_nifti_gz(folder),
        "NIfTI gzip bomb (4 GiB of zeros)": nifti_gzip_bomb(folder),
        "NIfTI extension bomb (2 GB)": nifti_extension_bomb(folder),
        "gzip of zeros, no header (4 GiB)": zeros_gzip(folder),
        "binary STL claiming 2^31 triangles": lying_stl(folder),
        "binary PLY claiming 2^31 faces": lying_ply(folder),
        "legacy VTK claiming 10^9 points": lying_vtk(folder),
    }
