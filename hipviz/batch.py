"""Cohorts: measure (and simulate) many hips on Dask, one table row per hip.

:func:`run` reads a manifest (a CSV file or a folder of cases) or draws a
virtual cohort from the shape model, sends each hip to a Dask cluster as one
task, and streams the rows into ``DIR/results.jsonl`` the moment each hip is
done; ``DIR/results.parquet`` and ``DIR/results.csv`` are rewritten from it
(atomically: a reader sees the old table or the new one, never half of one)
every few seconds, at the end and on Ctrl+C. A hip that fails is a row whose
``error`` says why; the batch goes on. Running again with the same ``DIR``
skips the hips already done with the same inputs and options.

Each hip is measured by :func:`hipviz.cli.measure_json` (and simulated by
:func:`hipviz.cli.simulate_json`) from the same options ``hipviz measure``
and ``hipviz simulate`` parse, so a row holds exactly what
``hipviz measure --json`` prints for that hip, flattened by :func:`flatten`.

Dask is the only engine: a :class:`distributed.LocalCluster` on 127.0.0.1
with no dashboard, or an existing scheduler; no process pool of our own.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import math
import os
import re
import shlex
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import numpy as np

from .errors import HipvizError, InputError

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

__all__ = [
    "MANIFEST_COLUMNS",
    "TARGETS",
    "class_map",
    "flatten",
    "local_client",
    "read_manifest",
    "resolve_classes",
    "run",
    "sample_manifest",
    "sample_weights",
]

#: Manifest columns hipviz reads; any other column is carried through to the results.
MANIFEST_COLUMNS = (
    "id",
    "pelvis",
    "femur",
    "side",
    "frame",
    "units",
    "body_weight_kg",
    "case",
    "modes",
)
#: Measure options that a manifest row gives for its own hip (not batch-wide).
_PER_HIP = ("pelvis", "femur", "case", "modes", "side", "frame", "units")
#: ``hipviz measure`` options ``hipviz batch`` does not take: the manifest names the hips.
NOT_BATCH_OPTIONS = ("pelvis", "femur", "case", "modes", "json", "help")

#: ``--target`` keys: the measure reached and the PAO turn searched (``hipviz simulate --pao`` key).
TARGETS: dict[str, tuple[str, str]] = {
    "lcea": ("lcea_deg", "lateral"),
    "acea": ("acea_deg", "anterior"),
}
#: Largest PAO turn the target search tries, degrees (the limit of ``--pao``).
TARGET_RANGE_DEG = 45.0
#: A target is reached when the measure is within this many degrees of it.
TARGET_TOL_DEG = 0.05

#: Bone classes of TotalSegmentator's ``total`` (CT, v2) and ``total_mr`` tasks, used when the
#: ``totalsegmentator`` package is not installed. Source: ``class_map`` in
#: ``totalsegmentator/map_to_binary.py`` of https://github.com/wasserth/TotalSegmentator
#: (Apache-2.0); only the classes a hip needs are copied.
TOTALSEG_CLASSES: dict[str, dict[str, int]] = {
    "total": {
        "sacrum": 25,
        "vertebrae_S1": 26,
        "vertebrae_L5": 27,
        "femur_left": 75,
        "femur_right": 76,
        "hip_left": 77,
        "hip_right": 78,
    },
    "total_mr": {
        "sacrum": 18,
        "femur_left": 36,
        "femur_right": 37,
        "hip_left": 38,
        "hip_right": 39,
    },
}

#: Input hash of a URL this process does not read (the worker hashes it).
REMOTE = "remote"
#: Seconds between rewrites of the Parquet and CSV tables while a batch runs.
TABLE_EVERY_S = 5.0
_UNIT_SUFFIXES = ("_pct", "_mm2", "_mm", "_deg", "_mpa", "_n", "_kg", "_s")
_CLASS_NAMES = re.compile(r"^\s*\w+(\s*,\s*\w+)*\s*$")
_MESH_SUFFIXES = (".stl", ".ply", ".obj", ".off", ".glb", ".gltf", ".vtp", ".vtk")
_NIFTI_SUFFIXES = (".nii", ".nii.gz")


# --------------------------------------------------------------------------
# label maps: TotalSegmentator class names
# --------------------------------------------------------------------------


def class_map(task: str = "total") -> dict[str, int]:
    """TotalSegmentator class name -> label number for ``task``.

    Read from the ``totalsegmentator`` package where it is installed (its
    class map needs no model weights), else from :data:`TOTALSEG_CLASSES`.

    Raises
    ------
    InputError
        For a task with no class map.
    """
    try:
        from totalsegmentator.map_to_binary import class_map as ts_map  # type: ignore
    except Exception:  # noqa: BLE001 - absent or broken: the table kept here serves
        ts_map = None
    if ts_map is not None and task in ts_map:
        return {name: int(k) for k, name in ts_map[task].items()}
    if task not in TOTALSEG_CLASSES:
        known = ", ".join(TOTALSEG_CLASSES)
        raise InputError(f"--classes {task}: unknown TotalSegmentator task; known: {known}")
    return dict(TOTALSEG_CLASSES[task])


def resolve_classes(spec: str, task: str = "total") -> str:
    """``"seg.nii.gz:hip_left,sacrum"`` -> ``"seg.nii.gz:77,25"``; other specs unchanged.

    Parameters
    ----------
    spec : str
        A path, optionally ``:LABEL[,LABEL]`` where a label is a number or a
        TotalSegmentator class name of ``task``.
    task : str, default "total"
        The TotalSegmentator task whose class map names the labels.

    Raises
    ------
    InputError
        For a class name the task does not have (the message names the spec).
    """
    head, sep, tail = spec.rpartition(":")
    if not sep or not head or not _CLASS_NAMES.match(tail) or len(head) == 1:
        return spec  # no label list (or a Windows drive letter)
    if all(p.strip().isdigit() for p in tail.split(",")):
        return spec  # numbers only
    names = class_map(task)
    labels = []
    for part in (p.strip() for p in tail.split(",")):
        if part.isdigit():
            labels.append(part)
        elif part in names:
            labels.append(str(names[part]))
        else:
            near = [n for n in names if part.split("_")[0] in n][:6]
            hint = f"; e.g. {', '.join(near)}" if near else ""
            raise InputError(f"{spec}: {part!r} is not a class of TotalSegmentator {task}{hint}")
    return f"{head}:{','.join(labels)}"


# --------------------------------------------------------------------------
# manifests
# --------------------------------------------------------------------------


def sample_weights(n: int, seed: int, clip: float = 2.5) -> np.ndarray:
    """(n, 26) shape-mode weights in SD: seeded standard normal, clipped at +-clip.

    The draws of ``scripts/sweep_shapes.py`` and notebook 04: row ``i`` is draw ``i``.
    """
    from .atlas import N_MODES

    return np.clip(np.random.default_rng(seed).standard_normal((n, N_MODES)), -clip, clip)


def sample_manifest(n: int, seed: int, clip: float = 2.5) -> list[dict[str, str]]:
    """A virtual cohort: ``n`` built-in hips whose ``modes`` are :func:`sample_weights`.

    Ids are ``sample-S-I`` (seed S, draw I); the weights are written with every digit
    (``repr``), so a row rebuilds exactly its draw.
    """
    if n < 1:
        raise InputError(f"--sample {n}: must be 1 or more")
    if not 0 < clip <= 3:
        raise InputError(f"--clip {clip}: must be above 0 and at most 3 SD")
    weights = sample_weights(n, seed, clip)
    width = len(str(n - 1))
    return [
        {
            "id": f"sample-{seed}-{i:0{width}d}",
            "modes": ",".join(f"{k + 1}={float(v)!r}" for k, v in enumerate(w) if v != 0),
            "draw": str(i),
            "seed": str(seed),
        }
        for i, w in enumerate(weights)
    ]


def read_manifest(
    path: str | os.PathLike[str],
    *,
    side: str = "auto",
    pelvis_labels: str | None = None,
    femur_labels: str | None = None,
) -> list[dict[str, str]]:
    """The hips a manifest names: one dict per hip with the manifest columns.

    Parameters
    ----------
    path : str or os.PathLike
        A CSV file (columns :data:`MANIFEST_COLUMNS`, of which ``id`` and a
        femur, ``case`` or ``modes`` are needed; relative paths are relative to
        the CSV's folder; any other column is carried through), or a folder
        (see :func:`_folder_hips`).
    side : {"auto", "left", "right"}
        Picks the files of that side in a folder, and TotalSegmentator's
        ``hip_<side>``/``femur_<side>`` in a folder of label maps.
    pelvis_labels, femur_labels : str, optional
        Labels (numbers or class names) of the bones in a folder's label maps.

    Raises
    ------
    InputError
        For a manifest that cannot be read, has no ``id`` column, repeats an
        id or names no hip (one line naming the file and the row).
    """
    p = Path(path)
    if p.is_dir():
        return _folder_hips(p, side, pelvis_labels, femur_labels)
    if not p.is_file():
        raise InputError(f"{p}: no such manifest file or folder")
    try:
        with open(p, newline="", encoding="utf-8-sig") as fh:
            rows = list(csv.DictReader(fh))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InputError(f"{p}: cannot read the manifest ({exc})") from None
    if not rows:
        raise InputError(f"{p}: the manifest has no rows")
    columns = set(rows[0])
    if "id" not in columns:
        raise InputError(f"{p}: the manifest has no 'id' column (columns: id, pelvis, femur, ...)")
    if not columns & {"femur", "case", "modes"}:
        raise InputError(f"{p}: the manifest needs a 'femur' column (or 'case' or 'modes')")
    seen: set[str] = set()
    out = []
    for n, row in enumerate(rows, start=2):  # line 1 is the header
        if None in row:
            raise InputError(f"{p}, line {n}: more values than columns")
        hip = {k.strip(): (v or "").strip() for k, v in row.items()}
        if not hip["id"]:
            raise InputError(f"{p}, line {n}: empty id")
        if hip["id"] in seen:
            raise InputError(f"{p}, line {n}: id {hip['id']!r} appears twice")
        seen.add(hip["id"])
        for role in ("pelvis", "femur"):
            if hip.get(role):
                hip[role] = _relative_to(hip[role], p.parent)
        out.append(hip)
    return out


def _relative_to(spec: str, folder: Path) -> str:
    """A manifest path made relative to the manifest's folder (URLs and absolute paths kept)."""
    if "://" in spec or Path(spec).is_absolute():
        return spec
    return str(folder / spec)


def _folder_hips(
    root: Path, side: str, pelvis_labels: str | None, femur_labels: str | None
) -> list[dict[str, str]]:
    """One hip per sub-folder of ``root`` (its two files, or one label map) or per label map.

    A sub-folder's mesh or mask files are told apart by name: ``pelvis`` or
    ``hip`` in the pelvis's, ``femur`` in the femur's (with ``--side``, the
    names holding ``left``/``right`` are preferred). A sub-folder with one
    label map, or a label map directly in ``root``, is one hip whose bones
    are ``pelvis_labels`` and ``femur_labels`` (default: TotalSegmentator's
    ``hip_<side>`` and ``femur_<side>``). A sub-folder that fits none of
    these is still a hip: its row fails with the reason.
    """
    hips = []
    for entry in sorted(root.iterdir()):
        if entry.name.startswith("."):
            continue
        if entry.is_file():
            if _suffix(entry.name) in _NIFTI_SUFFIXES:
                hips.append(_label_hip(entry, _stem(entry.name), side, pelvis_labels, femur_labels))
            continue
        files = sorted(f for f in entry.iterdir() if f.is_file())
        meshes = [f for f in files if _suffix(f.name) in _MESH_SUFFIXES + _NIFTI_SUFFIXES]
        pelvis = _pick(meshes, ("pelvis", "hip"), side)
        femur = _pick(meshes, ("femur",), side)
        if femur is not None:
            hip = {"id": entry.name, "femur": str(femur)}
            if pelvis is not None:
                hip["pelvis"] = str(pelvis)
            hips.append(hip)
            continue
        maps = [f for f in files if _suffix(f.name) in _NIFTI_SUFFIXES]
        if len(maps) == 1:
            hips.append(_label_hip(maps[0], entry.name, side, pelvis_labels, femur_labels))
            continue
        found = ", ".join(f.name for f in files) or "no files"
        hips.append(
            {
                "id": entry.name,
                "error": f"{entry}: cannot tell the pelvis and femur apart ({found}); name "
                "them *pelvis*/*hip* and *femur*, or give one label map",
            }
        )
    if not hips:
        raise InputError(f"{root}: no cases in the folder (one sub-folder or label map per hip)")
    return hips


def _label_hip(
    path: Path, hip_id: str, side: str, pelvis_labels: str | None, femur_labels: str | None
) -> dict[str, str]:
    if (pelvis_labels is None or femur_labels is None) and side not in ("left", "right"):
        raise InputError(
            f"{path}: a folder of label maps needs --side left|right "
            "(for TotalSegmentator's hip_<side>, femur_<side>) or --pelvis-labels and "
            "--femur-labels"
        )
    pl = pelvis_labels or f"hip_{side}"
    fl = femur_labels or f"femur_{side}"
    return {"id": hip_id, "pelvis": f"{path}:{pl}", "femur": f"{path}:{fl}"}


def _pick(files: Sequence[Path], words: tuple[str, ...], side: str) -> Path | None:
    """The one file whose name holds one of ``words`` (the one of ``side`` if several)."""
    hits = [f for f in files if any(w in f.name.lower() for w in words)]
    if len(hits) > 1 and side in ("left", "right"):
        hits = [f for f in hits if side in f.name.lower()] or hits
    if words == ("pelvis", "hip"):  # "hip" must not catch a femur file named e.g. hip_femur
        hits = [f for f in hits if "femur" not in f.name.lower()]
    return hits[0] if len(hits) == 1 else None


def _suffix(name: str) -> str:
    lower = name.lower()
    return ".nii.gz" if lower.endswith(".nii.gz") else Path(lower).suffix


def _stem(name: str) -> str:
    return name[: -len(_suffix(name))] if _suffix(name) else name


# --------------------------------------------------------------------------
# flattening
# --------------------------------------------------------------------------


def _split_unit(key: str) -> tuple[str, str]:
    """``"coverage_pct"`` -> (``"coverage"``, ``"_pct"``); no unit -> (key, "")."""
    for suffix in _UNIT_SUFFIXES:
        if key.endswith(suffix) and len(key) > len(suffix):
            return key[: -len(suffix)], suffix
    return key, ""


def flatten(obj: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """A result dict as flat columns, the unit kept last.

    Nested keys join with ``_`` and the outer key's unit moves to the end:
    ``coverage_pct.upper_hemisphere`` -> ``coverage_upper_hemisphere_pct``,
    ``hip_center_shift_mm.lateral`` -> ``hip_center_shift_lateral_mm``; a
    vector of 3 numbers gets ``_x``, ``_y``, ``_z`` (``head_center_mm`` ->
    ``head_center_x_mm``); lists of text join with `` | ``; ``None`` stays.

    Parameters
    ----------
    obj : mapping
        E.g. the ``hipviz measure --json`` object.
    prefix : str
        Put in front of every column name (e.g. ``"after_"``).

    Returns
    -------
    dict
        Column -> number, bool, str or None.
    """
    out: dict[str, Any] = {}
    for key, value in obj.items():
        base, unit = _split_unit(str(key))
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(_with_unit(value, unit), f"{prefix}{base}_"))
        elif isinstance(value, (list, tuple)):
            if len(value) == 3 and all(isinstance(v, (int, float)) for v in value):
                for axis, v in zip("xyz", value, strict=True):
                    out[f"{prefix}{base}_{axis}{unit}"] = float(v)
            else:
                out[name] = " | ".join(str(v) for v in value)
        else:
            out[name] = value
    return out


def _with_unit(value: Mapping[str, Any], unit: str) -> dict[str, Any]:
    """Children of a unit-suffixed key, each given the unit (unless it has one)."""
    if not unit:
        return dict(value)
    return {
        (k if _split_unit(str(k))[1] or isinstance(v, Mapping) else f"{k}{unit}"): v
        for k, v in value.items()
    }


# --------------------------------------------------------------------------
# tasks
# --------------------------------------------------------------------------


@dataclass
class Task:
    """One hip to process: plain data, sent to a Dask worker.

    ``measure`` and ``simulate`` are the ``vars()`` of the namespaces
    ``hipviz measure`` and ``hipviz simulate`` would have parsed for this hip.
    """

    id: str
    index: int
    measure: dict[str, Any]
    simulate: dict[str, Any] | None
    target: tuple[str, float] | None
    carry: dict[str, str]
    meta: dict[str, Any]
    key: str
    error: str = ""
    rom: bool = False


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _file_of(spec: str) -> Path:
    head, sep, tail = spec.rpartition(":")
    if sep and head and len(head) > 1 and re.fullmatch(r"[\d,\s]+", tail):
        return Path(head)
    return Path(spec)


def _input_hash(spec: str) -> str:
    """sha256 of the file a spec names, or ``missing`` when this process cannot read it.

    A URL other than ``file://`` is ``remote``: the worker that reads it
    hashes it (:func:`_remote_hashes`).
    """
    from .io import _file_url_path, is_url, split_url_labels

    if is_url(spec):
        url, _ = split_url_labels(spec)
        if not url.lower().startswith("file://"):
            return REMOTE
        try:
            return _sha256(_file_url_path(url))
        except (OSError, InputError):
            return "missing"
    path = _file_of(spec)
    try:
        return _sha256(path)
    except OSError:
        return "missing"


def parser_defaults(command: str) -> dict[str, Any]:
    """Defaults of every option of ``hipviz COMMAND`` (``measure`` or ``simulate``)."""
    return vars(subparser(command).parse_args([]))


def subparser(command: str) -> argparse.ArgumentParser:
    """The argparse parser of ``hipviz COMMAND``."""
    from .cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices[command]


def parse_simulate(text: str) -> dict[str, Any]:
    """``--simulate "--pao lateral=20"`` -> the ``vars()`` of ``hipviz simulate``'s namespace.

    Only the simulate-only options may be given there; the hip comes from the
    manifest and the measure options from the batch.

    Raises
    ------
    InputError
        For text that is not ``hipviz simulate`` options, or that holds input,
        measure or output options.
    """
    try:
        words = shlex.split(text)
    except ValueError as exc:
        raise InputError(f"--simulate {text!r}: {exc}") from None
    defaults = parser_defaults("simulate")
    parser = subparser("simulate")
    try:
        ns, extra = parser.parse_known_args(words, argparse.Namespace(**defaults))
    except SystemExit:
        raise InputError(f"--simulate {text!r}: not options of hipviz simulate") from None
    if extra:
        raise InputError(f"--simulate: {' '.join(extra)} is not an option of hipviz simulate")
    got = vars(ns)
    measure = set(parser_defaults("measure"))
    shared = sorted(k for k in got if k in measure and got[k] != defaults[k])
    if shared:
        flags = ", ".join("--" + k.replace("_", "-") for k in shared)
        raise InputError(f"--simulate: give {flags} to hipviz batch itself, not in --simulate")
    if got.get("export_dir"):
        raise InputError("--simulate: --export-dir is not available in a batch")
    return got


def parse_target(text: str | None) -> tuple[str, float] | None:
    """``"lcea=30"`` -> ("lcea", 30.0)."""
    if not text:
        return None
    key, sep, value = text.partition("=")
    key = key.strip().lower()
    if not sep or key not in TARGETS:
        raise InputError(f"--target {text!r}: expected one of {', '.join(TARGETS)}=DEG")
    try:
        v = float(value)
    except ValueError:
        raise InputError(f"--target {text!r}: {value!r} is not a number") from None
    if not math.isfinite(v):
        raise InputError(f"--target {text!r}: not a finite number")
    return key, v


def make_tasks(
    hips: Sequence[Mapping[str, str]],
    options: Mapping[str, Any],
    *,
    simulate: Mapping[str, Any] | None = None,
    target: tuple[str, float] | None = None,
    classes: str = "total",
    rom: bool = False,
) -> list[Task]:
    """One :class:`Task` per hip, its key a hash of its input files and every option.

    ``options`` are the batch-wide values of ``hipviz measure``'s options
    (dest -> value); a hip's own ``side``, ``frame``, ``units`` and
    ``body_weight_kg`` columns win where not empty. ``rom`` adds the range
    of motion (with ``simulate``, before and after the move).
    """
    from . import __version__

    base = parser_defaults("measure")
    choices = {a.dest: a.choices for a in subparser("measure")._actions if a.choices}
    unknown = sorted(set(options) - set(base))
    if unknown:
        raise InputError(f"not options of hipviz measure: {', '.join(unknown)}")
    base.update(options)
    base["json"] = True
    batch_opts = {k: v for k, v in base.items() if k not in _PER_HIP and k != "json"}
    tasks = []
    for index, hip in enumerate(hips):
        ns = dict(base)
        carry = {k: v for k, v in hip.items() if k not in MANIFEST_COLUMNS and k != "error"}
        inputs: dict[str, Any] = {}
        error = hip.get("error", "")
        for role in ("pelvis", "femur"):
            spec = hip.get(role) or None
            if spec and not error:
                try:
                    spec = resolve_classes(spec, classes)
                except InputError as exc:
                    error = str(exc)
            ns[role] = spec
            inputs[role] = spec
            inputs[f"{role}_sha256"] = _input_hash(spec) if spec else None
        for col in ("case", "modes"):
            ns[col] = hip.get(col) or (None if col == "case" else "")
            inputs[col] = ns[col]
        if ns["pelvis"] or ns["femur"]:
            ns["subdivisions"] = None  # a batch-wide --subdivisions is for built-in hips only
        for col in ("side", "frame", "units"):
            if hip.get(col):
                ns[col] = hip[col].lower()
                if ns[col] not in choices[col] and not error:
                    error = f"{col} {hip[col]!r}: expected {', '.join(choices[col])}"
            inputs[col] = ns[col]
        weight = hip.get("body_weight_kg", "")
        if weight:
            dest = next((d for d in ("body_weight", "body_weight_kg") if d in base), None)
            if dest is None:
                error = error or "body_weight_kg: this hipviz has no --body-weight option"
            else:
                try:
                    ns[dest] = float(weight)
                except ValueError:
                    error = error or f"body_weight_kg {weight!r} is not a number"
            inputs["body_weight_kg"] = weight
        if not (ns["femur"] or ns["pelvis"] or ns["case"] or ns["modes"]) and not error:
            error = "no hip: give a femur (and pelvis), a case or modes"
        sim = None
        if simulate is not None:
            sim = dict(simulate)
            sim.update({k: v for k, v in ns.items() if k in sim})
            sim["rom"] = bool(sim.get("rom") or rom)
        everything = {
            "inputs": inputs,
            "options": batch_opts,
            "simulate": _opts_of(simulate),
            "target": target,
        }
        if rom:  # only when asked: the keys of the runs before --rom existed stay valid
            everything["rom"] = True
        key = hashlib.sha256(
            json.dumps(everything, sort_keys=True, default=str).encode()
        ).hexdigest()[:32]
        meta = {
            "hipviz_version": __version__,
            "options": json.dumps(
                {
                    "measure": batch_opts,
                    "simulate": _opts_of(simulate),
                    "target": target,
                    "rom": rom,
                },
                sort_keys=True,
                default=str,
            ),
            "pelvis_file": inputs["pelvis"],
            "femur_file": inputs["femur"],
            "pelvis_sha256": inputs["pelvis_sha256"],
            "femur_sha256": inputs["femur_sha256"],
            "task_key": key,
        }
        tasks.append(
            Task(
                id=hip["id"],
                index=index,
                measure=ns,
                simulate=sim,
                target=target,
                carry=carry,
                meta=meta,
                key=key,
                error=error,
                rom=rom,
            )
        )
    return tasks


def _opts_of(simulate: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The simulate-only options (what is not a measure option) of a parsed ``--simulate``."""
    if simulate is None:
        return None
    measure = set(parser_defaults("measure"))
    return {k: v for k, v in simulate.items() if k not in measure and k != "json"}


def process_hip(task: Task) -> dict[str, Any]:
    """Measure (and simulate) one hip: its table row. Runs on a Dask worker.

    Never raises for a bad hip: the row's ``error`` says what went wrong, as
    ``hipviz measure`` would have said it; a bug is ``internal error: ...``.
    """
    import socket
    import warnings

    t0 = time.perf_counter()
    row: dict[str, Any] = {"id": task.id}
    row.update({k if k not in row else f"user_{k}": v for k, v in task.carry.items()})
    row["error"] = task.error
    result: dict[str, Any] = {}
    if not task.error:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # a hip's notes are in its warnings column
                result = _results(task)
        except HipvizError as exc:
            row["error"] = str(exc)
        except MemoryError:
            row["error"] = "out of memory on the worker"
        except Exception as exc:  # noqa: BLE001 - a bug on one hip never stops the batch
            row["error"] = f"internal error: {type(exc).__name__}: {exc}"
    for k, v in result.items():
        row[k if k not in row else f"result_{k}"] = v
    row.update(task.meta)
    row.update(_remote_hashes(task, measured=not row["error"]))
    row["seconds"] = round(time.perf_counter() - t0, 3)
    row["worker"] = f"{socket.gethostname()}:{os.getpid()}"
    del result
    _release_memory()
    row["worker_rss_mb"], row["worker_peak_rss_mb"] = _memory_mb()
    row["finished_at"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    return row


def _remote_hashes(task: Task, *, measured: bool) -> dict[str, str]:
    """sha256 of the hip's URL inputs, read here where the hip was read (a second read).

    ``missing`` for a URL that cannot be read now, or whose hip failed.
    """
    out: dict[str, str] = {}
    for role in ("pelvis", "femur"):
        if task.meta.get(f"{role}_sha256") != REMOTE:
            continue
        out[f"{role}_sha256"] = "missing"
        if not measured:
            continue
        from .cli import _limits
        from .io import fetched, split_url_labels

        url, _ = split_url_labels(task.measure[role])
        try:
            with fetched(url, limits=_limits(argparse.Namespace(**task.measure))) as (_, sha):
                out[f"{role}_sha256"] = sha
        except HipvizError:
            pass
    return out


#: Whether :func:`_release_memory` has frozen the objects alive after the first hip.
_gc_frozen = False


def _release_memory() -> None:
    """Hand the memory a finished hip freed back to the system.

    A hip allocates and frees hundreds of MB of arrays. In a Dask worker the
    hip runs in a task thread with its own glibc arena, and glibc kept what
    was freed there: a worker grew by about 10 MB a hip (1.1 GB after 80
    virtual hips), where the same hips in a plain loop stayed flat. One
    ``malloc_trim`` per hip (a few ms) returns it, without the per-free cost of
    a low ``MALLOC_TRIM_THRESHOLD_`` (:func:`_worker_environ`).
    """
    import gc

    global _gc_frozen
    gc.collect()  # meshes and their caches hold reference cycles
    if not _gc_frozen:
        # What outlives the first hip is the process's own: modules, the
        # template, caches. Frozen, it is no longer scanned by every later
        # collection (15-35 ms a hip, against well under 1 ms for what one
        # hip leaves); each hip's own cycles are still collected.
        gc.freeze()
        _gc_frozen = True
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            ctypes.CDLL("libc.so.6").malloc_trim(0)
        except (OSError, AttributeError):  # not glibc (e.g. musl): nothing to trim
            pass


def _memory_mb() -> tuple[float | None, float | None]:
    """(resident, peak resident) memory of this process in MB, after a hip; None where unknown.

    A worker's peak over the rows of a long batch shows whether its memory
    stays flat (it should: a hip keeps nothing once its row is made).
    """
    try:
        import psutil

        rss = psutil.Process().memory_info().rss / 2**20
    except Exception:  # noqa: BLE001 - psutil comes with distributed; absent: no number
        rss = None
    try:
        import resource

        # ru_maxrss is in KiB on Linux (bytes on macOS)
        scale = 2**20 if sys.platform == "darwin" else 2**10
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / scale
    except (ImportError, OSError):  # pragma: no cover - not POSIX
        peak = None
    return (
        None if rss is None else round(rss, 1),
        None if peak is None else round(peak, 1),
    )


def _results(task: Task) -> dict[str, Any]:
    """A hip's columns: its measures, then its simulation, range of motion and target.

    The hip is read and analysed once; the simulation, the range of motion
    and the target search start from that analysis (``hipviz measure`` and
    ``hipviz simulate`` in a row would each read and analyse it again).
    """
    from .cli import _inputs, _load_options, analyze_inputs, measure_json, simulate_json

    ns = argparse.Namespace(**task.measure)
    _load_options(ns)  # a bad option fails the row before the hip is read
    inp = _inputs(ns)
    analysis = analyze_inputs(ns, inp)
    out = measure_json(ns, inputs=inp, analysis=analysis)
    row = flatten(out)
    # A hip measured is kept when its simulation fails (e.g. no pelvis): the reason has a column.
    if task.simulate is not None:
        row["sim_error"] = ""
        try:
            sim = simulate_json(argparse.Namespace(**task.simulate), inputs=inp, analysis=analysis)
        except HipvizError as exc:
            row["sim_error"] = str(exc)
        else:
            if task.simulate.get("rom"):  # the range of motion before the move, as measured
                row["rom_error"] = ""
                row.update(flatten(_rom_keys(sim["before"])))
            row.update(flatten(sim["after"], "after_"))
            rest = {
                k: v
                for k, v in sim.items()
                if k not in ("before", "after", "units", "sources", "seconds")
            }
            row.update(flatten(rest, "sim_"))
    if task.rom and (task.simulate is None or row.get("sim_error")):
        row.update(_rom_columns(inp, analysis))
    if task.target is not None:
        try:
            row.update(search_target(task, out, inputs=inp, analysis=analysis))
        except HipvizError as exc:
            key = task.target[0]
            row.update({f"target_{key}_deg": task.target[1], "target_note": str(exc)})
    return row


#: Keys of ``hipviz rom --json`` that a batch row takes (flattened): the range and its notes.
ROM_KEYS = (
    "rom_deg",
    "impingement",
    "rom_notes",
    "rom_method",
    "rom_bone_only",
    "rom_head_tolerance_mm",
    "rom_tolerance_deg",
)


def _rom_keys(obj: Mapping[str, Any]) -> dict[str, Any]:
    return {k: obj[k] for k in ROM_KEYS if k in obj}


def _rom_columns(inp: Any, analysis: Any) -> dict[str, Any]:
    """The range-of-motion columns of a measured hip (``hipviz rom --json``, flattened).

    A hip without a pelvis has none: ``rom_error`` says so, the measures stay.
    """
    from . import motion
    from .geometry import invert
    from .hip import _jsonable

    if inp.pelvis is None:
        return {"rom_error": "the range of motion needs the pelvis as well as the femur"}
    model = motion.MotionModel.from_analysis(inp.pelvis, inp.femur, analysis)
    keys = motion.rom_dict(model.limits(), model.landmarks, invert(analysis.tf_ras_input))
    return {"rom_error": "", **flatten(_jsonable(keys))}


def search_target(
    task: Task, before: Mapping[str, Any], *, inputs: Any = None, analysis: Any = None
) -> dict[str, Any]:
    """The PAO turn that brings a measure to a target: a 1-D root search on a Simulation.

    The turn named by :data:`TARGETS` (``lcea``: lateral) varies within
    +-:data:`TARGET_RANGE_DEG`; the other ``--pao`` values of ``--simulate``
    stay. Brent's method on ``after(turn) - target`` from a bracket around
    the first guess ``target - before`` (exact when the turn moves the
    measure one for one).

    Returns
    -------
    dict
        ``target_<key>_deg`` (the target), ``target_pao_<turn>_deg`` (the turn,
        None when unreachable), ``target_reached_<key>_deg``,
        ``target_note`` (why it is unreachable, or "") and, when reached,
        ``target_after_<measure>``: every measure after that turn (as the
        ``after_`` columns of ``--simulate``).

    ``inputs`` and ``analysis`` are the hip already read and analysed with
    the task's options (``hipviz.cli._inputs``, ``hipviz.cli.analyze_inputs``);
    without them the hip is read and analysed here.
    """
    from scipy.optimize import brentq

    from . import osteotomy as ost
    from .cli import _inputs, _parse_pairs
    from .simulate import Simulation

    key, goal = task.target  # type: ignore[misc]
    measure_key, turn = TARGETS[key]
    out: dict[str, Any] = {
        f"target_{key}_deg": goal,
        f"target_pao_{turn}_deg": None,
        f"target_reached_{key}_deg": None,
        "target_note": "",
    }
    now = before.get(measure_key)
    if now is None:
        out["target_note"] = f"no {key} to start from"
        return out
    ns = argparse.Namespace(**(task.simulate or task.measure))
    pao = _parse_pairs(
        getattr(ns, "pao", None),
        "--pao",
        {"lateral": "DEG", "anterior": "DEG", "version": "DEG", "medial": "MM"},
    )
    inp = inputs if inputs is not None else _inputs(ns)
    if inp.pelvis is None:
        out["target_note"] = "a target needs the pelvis"
        return out
    sim = Simulation(
        inp.pelvis,
        inp.femur,
        side=inp.side,
        frame=ns.frame,
        coverage_margin_mm=ns.margin,
        tilt_deg=ns.tilt,
        analysis=analysis,
    )
    sim.cut("pao")
    fixed = {f"{k}_deg" if k != "medial" else "medial_mm": v for k, v in pao.items()}

    def after(x: float) -> dict[str, Any]:
        return sim.move(ost.AcetabularMove(**{**fixed, f"{turn}_deg": float(x)})).after

    def reached(x: float) -> float:
        value = after(x).get(measure_key)
        return math.nan if value is None else float(value)

    lim = TARGET_RANGE_DEG
    guess = float(np.clip(goal - now, -lim, lim))
    at_guess = reached(guess)
    if abs(at_guess - goal) <= TARGET_TOL_DEG:
        best = guess
    else:
        lo, hi = reached(-lim), reached(lim)
        if not (min(lo, hi) <= goal <= max(lo, hi)):
            out["target_note"] = (
                f"{key} {goal:g} deg is not reachable with a {turn} turn within +-{lim:g} deg "
                f"({key} {min(lo, hi):.1f} to {max(lo, hi):.1f} deg)"
            )
            return out
        best = brentq(lambda x: reached(x) - goal, -lim, lim, xtol=0.01)
    from .hip import _jsonable

    final = _jsonable(after(best))
    out[f"target_pao_{turn}_deg"] = round(float(best), 3)
    out[f"target_reached_{key}_deg"] = final.get(measure_key)
    out.update(flatten(final, "target_after_"))
    return out


# --------------------------------------------------------------------------
# the results: a journal of rows, and tables made from it
# --------------------------------------------------------------------------


@dataclass
class ResultStore:
    """``DIR/results.jsonl`` (every row, appended as it comes) and the tables made from it.

    The journal is the record: one JSON line per finished hip, flushed and
    synced before the next. A line cut short by a crash is ignored on reading.
    ``results.parquet`` and ``results.csv`` hold the latest row of each hip of
    the current run, in manifest order, and are replaced atomically.
    """

    out: Path
    latest: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def journal(self) -> Path:
        return self.out / "results.jsonl"

    def load(self) -> None:
        """Read the rows earlier runs left in the journal."""
        if not self.journal.exists():
            return
        with open(self.journal, encoding="utf-8") as fh:
            for line in fh:
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a line an interrupted write cut short
                if isinstance(row, dict) and "id" in row:
                    self.latest[str(row["id"])] = row

    def done(self, task: Task, retry_failed: bool) -> bool:
        """True when the hip has a row for the same inputs and options (and no error to retry)."""
        row = self.latest.get(task.id)
        if row is None or row.get("task_key") != task.key:
            return False
        return not (retry_failed and row.get("error"))

    def append(self, row: dict[str, Any]) -> None:
        """Add a finished hip's row to the journal, on disk before returning."""
        line = json.dumps(row, default=_json_default, ensure_ascii=False) + "\n"
        with _no_sigint(), open(self.journal, "a", encoding="utf-8") as fh:
            fh.write(line)  # whole lines only: a Ctrl+C waits for the line to be written
            fh.flush()
            os.fsync(fh.fileno())
        self.latest[str(row["id"])] = row

    def frame(self, ids: Sequence[str]) -> pd.DataFrame:
        """The table: the latest row of each of ``ids`` that has one, in that order."""
        import pandas as pd

        rows = [self.latest[i] for i in ids if i in self.latest]
        df = pd.DataFrame(rows)
        if df.empty:
            return pd.DataFrame({"id": pd.Series([], dtype=str), "error": []})
        first = ["id"]
        last = [
            "hipviz_version",
            "options",
            "pelvis_file",
            "femur_file",
            "pelvis_sha256",
            "femur_sha256",
            "task_key",
            "seconds",
            "worker",
            "worker_rss_mb",
            "worker_peak_rss_mb",
            "finished_at",
        ]
        middle = [c for c in df.columns if c not in first + last]
        middle = [c for c in middle if c == "error"] + [c for c in middle if c != "error"]
        df = df[first + middle + [c for c in last if c in df.columns]]
        df["error"] = df["error"].fillna("").astype(str)
        return df

    def write_tables(self, ids: Sequence[str]) -> pd.DataFrame:
        """Replace ``results.parquet`` and ``results.csv`` with the table of ``ids``."""
        df = self.frame(ids)
        table = _arrow_table(df)
        import pyarrow.parquet as pq

        _atomic(self.out / "results.parquet", lambda p: pq.write_table(table, p))
        _atomic(self.out / "results.csv", lambda p: df.to_csv(p, index=False))
        return df


def _json_default(x: Any) -> Any:
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    return str(x)


def _arrow_table(df: pd.DataFrame):  # type: ignore[no-untyped-def]
    """``df`` as a pyarrow Table; a column of mixed Python types becomes text."""
    import pyarrow as pa

    try:
        return pa.Table.from_pandas(df, preserve_index=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        fixed = df.copy()
        for col in fixed.columns:
            if fixed[col].dtype == object:
                try:
                    pa.array(fixed[col])
                except (pa.ArrowInvalid, pa.ArrowTypeError):
                    fixed[col] = [None if v is None else str(v) for v in fixed[col]]
        return pa.Table.from_pandas(fixed, preserve_index=False)


def _atomic(path: Path, write: Callable[[Path], Any]) -> None:
    """Write ``path`` through a temporary file and a rename: readers see old or new, whole."""
    tmp = path.with_name(f".{path.name}.tmp")
    with _no_sigint():  # a Ctrl+C now would only leave the temporary file behind
        write(tmp)
        os.replace(tmp, path)


@contextmanager
def _no_sigint(deliver: bool = True) -> Iterator[None]:
    """Hold Ctrl+C (SIGINT) off while a file is written or the cluster closed.

    A Ctrl+C pressed meanwhile is delivered when the block ends
    (``deliver``) or dropped. Only in the main thread, where Python handles
    signals.
    """
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held: list[int] = []
    old = signal.signal(signal.SIGINT, lambda signum, frame: held.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)
        if held and deliver and callable(old):
            old(signal.SIGINT, None)  # the default handler raises KeyboardInterrupt


# --------------------------------------------------------------------------
# progress
# --------------------------------------------------------------------------


@dataclass
class Progress:
    """``[ 12/100] 12% 3 failed  0.8 hips/s  ETA 1m50s`` on stderr.

    On a terminal the line is redrawn at most 5 times a second; elsewhere
    (a log file, a pipe) only the final line is written.
    """

    total: int
    skipped: int = 0
    stream: TextIO = field(default_factory=lambda: sys.stderr)
    enabled: bool = True
    done: int = 0
    failed: int = 0
    start: float = field(default_factory=time.perf_counter)
    _last: float = 0.0

    @property
    def tty(self) -> bool:
        return bool(getattr(self.stream, "isatty", lambda: False)())

    def update(self, row: Mapping[str, Any]) -> None:
        self.done += 1
        self.failed += bool(row.get("error"))
        now = time.perf_counter()
        if self.enabled and self.tty and (now - self._last > 0.2 or self.done == self.total):
            self._last = now
            self.stream.write("\r" + self.line() + "\x1b[K")
            self.stream.flush()

    def line(self) -> str:
        elapsed = time.perf_counter() - self.start
        rate = self.done / elapsed if elapsed > 0 else 0.0
        left = self.total - self.done
        eta = _duration(left / rate) if rate > 0 else "?"
        pct = 100 * self.done / self.total if self.total else 100.0
        skipped = f", {self.skipped} already done" if self.skipped else ""
        return (
            f"[{self.done:>{len(str(self.total))}}/{self.total}] {pct:3.0f}% "
            f"{self.failed} failed  {rate * 60:.1f} hips/min  ETA {eta}{skipped}"
        )

    def finish(self, note: str = "") -> None:
        if not self.enabled:
            return
        start, clear = ("\r", "\x1b[K") if self.tty else ("", "")
        elapsed = _duration(time.perf_counter() - self.start)
        self.stream.write(f"{start}{self.line().split('  ETA')[0]}  in {elapsed}{note}{clear}\n")
        self.stream.flush()


def _duration(seconds: float) -> str:
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


# --------------------------------------------------------------------------
# running
# --------------------------------------------------------------------------


@dataclass
class BatchResult:
    """What :func:`run` did: the table and the counts."""

    table: pd.DataFrame
    submitted: int
    skipped: int
    failed: int
    interrupted: bool
    seconds: float


def default_workers() -> int:
    """Worker processes for this machine: its usable cores."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def _connect(workers: int | None, scheduler: str | None):  # type: ignore[no-untyped-def]
    """A Dask client: on ``scheduler``, or on a new LocalCluster on 127.0.0.1, no dashboard."""
    import logging

    from distributed import Client, LocalCluster

    if scheduler:
        try:
            return Client(scheduler, timeout="10s"), None
        except (OSError, TimeoutError) as exc:
            raise InputError(f"--scheduler {scheduler}: cannot connect ({exc})") from None
    import dask

    n = workers or default_workers()
    config = {
        # Only the health route: no pages, metrics or proxy to the workers, even on 127.0.0.1.
        "distributed.scheduler.http.routes": ["distributed.http.health"],
        # No one reads the task profiles without a dashboard, and sampling the stack every
        # 10 ms slows pure-Python work.
        "distributed.worker.profile.enabled": False,
        "distributed.nanny.pre-spawn-environ": _worker_environ(),
    }
    # The workers start with Ctrl+C ignored (a disposition a new process keeps): a terminal's
    # Ctrl+C reaches the whole process group, and only this process should act on it (it
    # closes the cluster), not each worker with a traceback of its own.
    main = threading.current_thread() is threading.main_thread()  # signals: main thread only
    before = signal.signal(signal.SIGINT, signal.SIG_IGN) if main else None
    try:
        with dask.config.set(config), _one_line("cannot start a local Dask cluster"):
            cluster = _local_cluster(LocalCluster, n, logging.ERROR)
    finally:
        if main:
            signal.signal(signal.SIGINT, before)
    return Client(cluster), cluster


@contextmanager
def local_client(workers: int | None = None) -> Iterator[Any]:
    """A Dask client on a LocalCluster set up as ``hipviz batch`` sets up its own.

    For several :func:`run` calls on one cluster (``run(..., client=c)``), e.g.
    in a notebook: ``workers`` one-thread processes (default
    :func:`default_workers`) on 127.0.0.1, no dashboard; closed when the
    block ends.
    """
    client, cluster = _connect(workers, None)
    try:
        client.run(_warm)
        yield client
    finally:
        _close(client, cluster)


def _local_cluster(local_cluster: Any, n: int, log_level: int) -> Any:
    """A LocalCluster of ``n`` one-thread worker processes on 127.0.0.1 without dashboards."""
    return local_cluster(
        n_workers=n,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
        worker_dashboard_address=None,
        silence_logs=log_level,
        # The scheduler serves a few HTTP routes (health, metrics) even without the
        # dashboard: on 127.0.0.1 at a free port, not on every interface at 8787.
        scheduler_kwargs={"dashboard": False, "dashboard_address": "127.0.0.1:0"},
    )


def _worker_environ() -> dict[str, Any]:
    """Environment of the local workers: Dask's, less what makes a hip slower than at home.

    Dask sets ``MALLOC_TRIM_THRESHOLD_`` so that freed memory goes back to the
    system at once; with it a hip took about 30 % longer (a hip allocates and
    frees many large arrays), so glibc's own adaptive threshold is kept. BLAS
    runs one thread per worker, however many there are, as in the ``hipviz`` command
    (:data:`hipviz.cli.SINGLE_THREAD_BLAS`): hipviz's products are on
    (n, 3) arrays and long dot products, where BLAS threads cost more than
    they save; a lone worker spreading them over the cores was slower, not
    faster.
    """
    import dask

    env = dict(dask.config.get("distributed.nanny.pre-spawn-environ", None) or {})
    env.pop("MALLOC_TRIM_THRESHOLD_", None)
    env.update(dict.fromkeys(("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"), 1))
    return env


@contextmanager
def _one_line(what: str) -> Iterator[None]:
    """A failure of Dask to start, as one line (e.g. workers that cannot import hipviz)."""
    try:
        yield
    except (RuntimeError, OSError) as exc:
        raise HipvizError(f"{what}: {exc}") from None


def _warm() -> str:
    """Import the measuring code once per worker, before the first hip."""
    import importlib

    for name in ("hipviz.cli", "hipviz.hip", "hipviz.io", "hipviz.anatomy", "hipviz.simulate"):
        importlib.import_module(name)
    return "ok"


def run(
    manifest: str | os.PathLike[str] | Iterable[Mapping[str, str]] | None,
    out: str | os.PathLike[str],
    *,
    options: Mapping[str, Any] | None = None,
    simulate: str | None = None,
    target: str | None = None,
    rom: bool = False,
    sample: int | None = None,
    seed: int = 0,
    clip: float = 2.5,
    workers: int | None = None,
    scheduler: str | None = None,
    retry_failed: bool = False,
    classes: str = "total",
    pelvis_labels: str | None = None,
    femur_labels: str | None = None,
    summary: bool = True,
    progress: bool = True,
    client: Any = None,
) -> BatchResult:
    """Measure every hip of a manifest (or a virtual cohort) on Dask, into ``out``.

    Parameters
    ----------
    manifest : path, iterable of dict, or None
        A CSV file or folder (:func:`read_manifest`), or rows as dicts; None with ``sample``.
    out : path
        Folder of ``results.jsonl``, ``results.parquet``, ``results.csv``,
        ``summary.html`` and the PNGs; made if missing. Rows already in it for
        the same inputs and options are kept and not recomputed.
    options : mapping, optional
        ``hipviz measure`` options by argparse dest, e.g. ``{"margin": 3, "tilt": 5}``.
    simulate : str, optional
        ``hipviz simulate`` options for every hip, e.g. ``"--pao lateral=20"``.
    target : str, optional
        ``"lcea=30"``: search the PAO turn reaching it (:func:`search_target`).
    rom : bool
        Add the range of motion (``hipviz rom``; with ``simulate``, before and
        after the move, as ``hipviz simulate --rom``).
    sample, seed, clip : int, int, float
        A virtual cohort of ``sample`` built-in hips (:func:`sample_manifest`).
    workers : int, optional
        LocalCluster worker processes (default :func:`default_workers`).
    scheduler : str, optional
        ``tcp://HOST:PORT`` of a running Dask scheduler to use instead.
    retry_failed : bool
        Run hips whose earlier row holds an error again.
    classes : str
        TotalSegmentator task naming label-map classes (``total``, ``total_mr``).
    pelvis_labels, femur_labels : str, optional
        Bones in a folder of label maps.
    summary : bool
        Write ``summary.html`` and the PNGs at the end.
    progress : bool
        Show the progress line on stderr (:class:`Progress`).
    client : distributed.Client, optional
        Use this client (and leave it open).

    Returns
    -------
    BatchResult
        ``table`` is the results as a pandas DataFrame (one row per hip).

    Raises
    ------
    InputError
        For a manifest or option that cannot be used, before any hip is run.
    KeyboardInterrupt
        Never: Ctrl+C stops the batch, writes the tables of the rows done
        and returns with ``interrupted`` set.
    """
    _check_installed()
    out_dir = Path(out)
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"--out {out}: is a file, not a folder")
    options = dict(options or {})
    sim = parse_simulate(simulate) if simulate is not None else None
    goal = parse_target(target)
    if sample is not None:
        if manifest is not None:
            raise InputError("give a MANIFEST or --sample, not both")
        hips: list[Mapping[str, str]] = list(sample_manifest(sample, seed, clip))
    elif manifest is None:
        raise InputError("give a MANIFEST (CSV file or folder) or --sample N")
    elif isinstance(manifest, (str, os.PathLike)):
        side = str(options.get("side", "auto"))
        hips = list(read_manifest(manifest, side=side, pelvis_labels=pelvis_labels,
                                  femur_labels=femur_labels))  # fmt: skip
    else:
        hips = [dict(h) for h in manifest]
    tasks = make_tasks(hips, options, simulate=sim, target=goal, classes=classes, rom=rom)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"--out {out}: cannot write ({exc.strerror})") from None

    # Imported now, not at the first table write: a Ctrl+C inside an import would leave the
    # module half made, and the tables could not be written after it.
    import pandas  # noqa: F401
    import pyarrow.parquet  # noqa: F401

    store = ResultStore(out_dir)
    store.load()
    ids = [t.id for t in tasks]
    todo = [t for t in tasks if not store.done(t, retry_failed)]
    bar = Progress(total=len(todo), skipped=len(tasks) - len(todo), enabled=progress)
    t0 = time.perf_counter()
    interrupted = False
    own = client is None and bool(todo)
    cluster = None
    try:
        if own:
            client, cluster = _connect(workers, scheduler)
            client.run(_warm)
        if todo:
            _submit_all(client, todo, store, bar, ids)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        if own:
            _close(client, cluster)
    df = store.write_tables(ids)
    note = "; interrupted: run the same command again to go on" if interrupted else ""
    bar.finish(note)
    if summary and not df.empty:
        from .batch_summary import write_summary

        write_summary(df, out_dir, simulated=sim is not None)
    return BatchResult(
        table=df,
        submitted=bar.done,
        skipped=bar.skipped,
        failed=int((df["error"] != "").sum()) if "error" in df else 0,
        interrupted=interrupted,
        seconds=time.perf_counter() - t0,
    )


def _check_installed() -> None:
    """One line naming the extra when the cohort packages are missing."""
    import importlib.util

    missing = [
        name
        for name in ("distributed", "pyarrow", "pandas", "matplotlib")
        if importlib.util.find_spec(name) is None
    ]
    if missing:
        raise HipvizError(f"hipviz batch needs {', '.join(missing)}: pip install 'hipviz[cohort]'")


def _submit_all(client, todo: Sequence[Task], store: ResultStore, bar: Progress, ids) -> None:  # type: ignore[no-untyped-def]
    """One Dask task per hip; each row to the journal as it arrives."""
    from distributed import as_completed

    futures = {
        client.submit(process_hip, t, key=f"hip-{t.index}-{t.key}", pure=False): t for t in todo
    }
    last = time.perf_counter()
    try:
        for fut in as_completed(futures):
            task = futures.pop(fut)  # let the worker forget the row once we have it
            try:
                row = fut.result()
            except Exception as exc:  # noqa: BLE001 - the worker died (memory, a crash)
                row = process_hip(Task(**{**task.__dict__, "error": f"worker lost: {exc}"}))
            store.append(row)
            bar.update(row)
            if time.perf_counter() - last > TABLE_EVERY_S:
                store.write_tables(ids)
                last = time.perf_counter()
    except BaseException:  # Ctrl+C: stop the hips still queued or running
        client.cancel(list(futures), force=True)
        raise


def _close(client, cluster) -> None:  # type: ignore[no-untyped-def]
    """Close the client and the cluster we started, quietly, a second Ctrl+C included."""
    with _no_sigint(deliver=False):
        try:
            client.close(timeout=10)
        except Exception:  # noqa: BLE001, S110 - closing is best effort
            pass
        if cluster is not None:
            try:
                cluster.close(timeout=10)
            except Exception:  # noqa: BLE001, S110
                pass
