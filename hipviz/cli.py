"""The ``hipviz`` command line: measure, simulate, rom, batch, handout, report, export, serve.

Every failure the user can fix ends with one line on stderr and exit code 2;
nothing prints a traceback. ``hipviz measure --json``, ``hipviz simulate --json``
and ``hipviz rom --json`` print one JSON object whose keys are a contract
(see ``docs/cli.md``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from .errors import HipvizError, InputError, LandmarkError

EXIT_USAGE = 2
#: Built-in anatomy resolution (subdivisions per model element edge) when none is given.
MEASURE_SUBDIVISIONS = 8
EXPORT_SUBDIVISIONS = 10
#: ``hipviz serve``'s default upload limit, MB (``hipviz.app.state.MAX_UPLOAD_MB``).
SERVE_FILE_MB = 60


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (no usage dump) and exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        if message.startswith("argument --load: expected one argument"):
            # argparse takes "-100,0,1500" for an option, not a value.
            message += "; write a force whose first number is negative as --load=-100,0,1500"
        sys.stderr.write(f"{self.prog}: error: {message} (see --help)\n")
        sys.exit(EXIT_USAGE)


def _parse_modes(text: str) -> list[float]:
    """``"1=2,3=-1.5"`` -> shape-mode weights in SD, mode numbers from 1."""
    from .atlas import N_MODES

    weights = [0.0] * N_MODES
    if not text:
        return weights
    for item in text.split(","):
        try:
            k, v = item.split("=")
            k_i, v_f = int(k), float(v)
        except ValueError:
            msg = f"--modes: cannot read {item!r}; expected MODE=SD pairs like 1=2,3=-1.5"
            raise InputError(msg) from None
        if not 1 <= k_i <= N_MODES:
            msg = f"--modes: mode {k_i} does not exist; modes are 1 to {N_MODES}"
            raise InputError(msg)
        if not -3.0 <= v_f <= 3.0:
            msg = f"--modes: weight {v_f} SD for mode {k_i} is outside -3 to 3 SD"
            raise InputError(msg)
        weights[k_i - 1] = v_f
    return weights


def _add_shape_options(p: argparse.ArgumentParser, *, subdivisions: int, prefix: str = "") -> None:
    """``--modes`` and ``--subdivisions``: which built-in shape, at what resolution."""
    p.add_argument(
        "--modes",
        default="",
        metavar="K=SD,...",
        help=f"{prefix}shape-mode weights in SD, e.g. 1=2,3=-1 (default: the mean)",
    )
    p.add_argument(
        "--subdivisions",
        type=int,
        default=None,
        metavar="N",
        help=f"{prefix}mesh subdivisions per element edge (default {subdivisions})",
    )


def _positive_mb(text: str) -> float:
    """An argparse type: a positive, finite number of MB."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a positive number of MB, not {text!r}")
    return value


def _positive_count(text: str) -> int:
    """An argparse type: a positive whole number (``5000000`` or ``5_000_000``)."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive whole number, not {text!r}")
    return value


def _add_limit_options(p: argparse.ArgumentParser, *, file_mb: float | None = None) -> None:
    """``--max-file-mb``, ``--max-triangles``, ``--max-voxels``, ``--max-data-mb``."""
    from .io import Limits

    default = Limits()
    file_mb = default.max_file_mb if file_mb is None else file_mb
    p.add_argument(
        "--max-file-mb",
        type=_positive_mb,
        metavar="MB",
        help=f"refuse input files larger than MB on disk (default {file_mb:g})",
    )
    p.add_argument(
        "--max-triangles",
        type=_positive_count,
        metavar="N",
        help=f"refuse surfaces of more than N triangles (default {default.max_triangles:_})",
    )
    p.add_argument(
        "--max-voxels",
        type=_positive_count,
        metavar="N",
        help=f"refuse label maps of more than N voxels (default {default.max_voxels:_})",
    )
    p.add_argument(
        "--max-data-mb",
        type=_positive_mb,
        metavar="MB",
        help="refuse label maps whose voxel data, or gzip files whose content, exceed MB "
        f"(default {default.max_data_mb:g})",
    )


def _limits(args: argparse.Namespace, **defaults: float):
    """The :class:`hipviz.io.Limits` the limit options give (``defaults`` for those not given)."""
    from .io import LIMIT_OPTIONS, Limits

    values = dict(defaults)
    for field in LIMIT_OPTIONS:
        given = getattr(args, field, None)
        if given is not None:
            values[field] = given
    return Limits(**values)


def _add_input_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--pelvis",
        metavar="FILE",
        help="pelvis mesh (STL/PLY/OBJ/OFF/GLB/VTP/VTK) or NIfTI label map "
        "(FILE.nii.gz:LABEL[,LABEL]); default: the built-in anatomy",
    )
    p.add_argument("--femur", metavar="FILE", help="femur mesh or label map, as --pelvis")
    p.add_argument(
        "--case",
        metavar="NAME",
        help="a synthetic teaching case built from the built-in anatomy "
        "(normal, dysplastic, borderline, retroverted, valga-antetorsion, cam)",
    )
    p.add_argument(
        "--side",
        choices=("auto", "left", "right"),
        default="auto",
        help="which hip; auto finds it from the geometry (default)",
    )
    p.add_argument(
        "--frame",
        choices=("auto", "app", "ras", "lps"),
        default="auto",
        help="app: align to the anterior pelvic plane; ras/lps: the file's axes "
        "already are patient axes; auto: app when found (default)",
    )
    p.add_argument(
        "--units",
        choices=("auto", "mm", "cm", "m"),
        default="auto",
        help="units of the files; auto detects metres and refuses or flags "
        "likely centimetres (default)",
    )
    _add_shape_options(p, subdivisions=MEASURE_SUBDIVISIONS, prefix="built-in anatomy only: ")
    _add_limit_options(p)


def _add_output_options(p: argparse.ArgumentParser) -> None:
    """``--json`` and the coverage ``--margin`` of the measuring commands."""
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument(
        "--margin",
        type=float,
        default=5.0,
        metavar="MM",
        help="coverage margin: bone within head radius + MM covers (default 5)",
    )
    p.add_argument(
        "--tilt",
        type=float,
        default=0.0,
        metavar="DEG",
        help="measure with the pelvis tilted DEG about its left-right axis, positive "
        "posterior (as from lying to standing); default 0 (the pelvic frame, supine)",
    )


def _add_load_options(p: argparse.ArgumentParser) -> None:
    """``--load`` and its companions: the joint load and the cartilage under it."""
    p.add_argument(
        "--load",
        metavar="NAME|FX,FY,FZ",
        help="compute the joint load: walking, one-leg-stance, standing-up (OrthoLoad "
        "averages), pauwels (one-legged stance from this hip's geometry), or the force "
        "of the head on the socket FX,FY,FZ in newtons, measurement frame (default: none)",
    )
    p.add_argument(
        "--body-weight",
        type=float,
        metavar="KG",
        help="body weight the load is scaled by, kg (default 70; needs --load)",
    )
    p.add_argument(
        "--cartilage-modulus",
        type=float,
        metavar="MPA",
        help="cartilage Young's modulus for the contact pressure, MPa (default 12; needs --load)",
    )
    p.add_argument(
        "--poisson",
        type=float,
        metavar="NU",
        help="cartilage Poisson's ratio for the contact pressure (default 0.45; needs --load)",
    )
    p.add_argument(
        "--spring",
        choices=("linear", "log"),
        help="contact spring law: linear or log (default linear; needs --load)",
    )


def _load_options(args: argparse.Namespace):
    """The checked :class:`hipviz.loads.LoadOptions` of the command line."""
    from .loads import DEFAULT_BODY_WEIGHT_KG, LoadOptions, custom_load, parse_load

    given = {
        "--body-weight": ("body_weight_kg", args.body_weight),
        "--cartilage-modulus": ("modulus_mpa", args.cartilage_modulus),
        "--poisson": ("poisson", args.poisson),
        "--spring": ("spring", args.spring),
    }
    if args.load is None:
        named = [flag for flag, (_, value) in given.items() if value is not None]
        if named:
            raise InputError(f"{', '.join(named)} needs --load (a load case or a force)")
        return LoadOptions()
    load = parse_load(args.load)
    values = {field: value for field, value in given.values() if value is not None}
    for flag, (field, value) in given.items():
        if value is not None:
            try:
                LoadOptions(**{field: value}).validate()
            except InputError as exc:
                raise InputError(f"{flag}: {exc}") from None
    weight = values.pop("body_weight_kg", DEFAULT_BODY_WEIGHT_KG)
    if not isinstance(load, str):
        try:
            custom_load(load, weight)
        except InputError as exc:
            raise InputError(f"--load: {exc}") from None
    return LoadOptions(load=load, body_weight_kg=weight, **values)


def _add_plan_options(p: argparse.ArgumentParser) -> None:
    """``--pao``, ``--femoral``, ``--preset`` and ``--cuts``: the planned move (:func:`_plan`)."""
    p.add_argument(
        "--pao",
        metavar="KEY=VALUE,...",
        help="turn the acetabular fragment: lateral=DEG (raises LCEA), anterior=DEG "
        "(raises ACEA), version=DEG (raises version), medial=MM (shift toward the midline)",
    )
    p.add_argument(
        "--femoral",
        metavar="KEY=VALUE,...",
        help="intertrochanteric osteotomy: varus=DEG (negative: valgus), flexion=DEG, "
        "rotation=DEG (raises femoral version), level=MM (cut below the head centre)",
    )
    p.add_argument(
        "--preset",
        choices=tuple(_procedures()),
        help="pelvic osteotomy and its usual move: " + ", ".join(_procedures()),
    )
    p.add_argument(
        "--cuts",
        metavar="KEY=VALUE,...",
        help="adjust the cuts: iliac|retro|ischial|pubic=MM (away from the head), "
        "<cut>_tilt=DEG, sphere=MM (rotational osteotomy radius change)",
    )


def build_parser() -> argparse.ArgumentParser:
    """The ``hipviz`` argument parser."""
    from . import __version__

    parser = _Parser(
        prog="hipviz",
        description="See and measure hip bones: centre-edge angles, coverage, version, "
        "neck-shaft angle and more, on the built-in anatomy or your own meshes.",
    )
    parser.add_argument("--version", action="version", version=f"hipviz {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    m = sub.add_parser("measure", help="measure one hip and print the results")
    _add_input_options(m)
    _add_output_options(m)
    _add_load_options(m)

    sim = sub.add_parser(
        "simulate",
        help="cut and turn the bones (PAO, femoral osteotomies, presets) and measure again",
    )
    _add_input_options(sim)
    _add_plan_options(sim)
    sim.add_argument(
        "--export-dir", metavar="DIR", help="write the moved bones and the fixation as STL"
    )
    sim.add_argument(
        "--no-fixation", action="store_true", help="leave the screws and plate out of the export"
    )
    sim.add_argument(
        "--rom",
        action="store_true",
        help="add the range of motion and impingement (as hipviz rom) before and after",
    )
    _add_output_options(sim)
    _add_load_options(sim)

    rom = sub.add_parser(
        "rom",
        help="range of motion and impingement: how far the femur turns before bone meets bone",
    )
    _add_input_options(rom)
    rom.add_argument("--json", action="store_true", help="print one JSON object")

    b = sub.add_parser(
        "batch", help="measure (and simulate) a cohort of hips on Dask, into one table"
    )
    _add_batch_options(b, m)

    ho = sub.add_parser(
        "handout",
        help="one self-contained HTML file for the patient: the hip before and after in 3D, "
        "the steps in plain words, the measures",
    )
    _add_input_options(ho)
    _add_plan_options(ho)
    _add_load_options(ho)
    ho.add_argument("--out", required=True, metavar="FILE.html", help="the handout file to write")
    ho.add_argument(
        "--title",
        default="Your hip plan",
        metavar="TEXT",
        help="page heading (default: Your hip plan)",
    )
    ho.add_argument(
        "--max-handout-triangles",
        type=_positive_count,
        default=None,
        metavar="N",
        help="triangles of the 3D view in all (default 120_000: a phone draws it smoothly)",
    )

    rep = sub.add_parser(
        "report",
        help="a printable A4 report (PDF or HTML): pictures before and after, table, plan, method",
    )
    _add_input_options(rep)
    _add_plan_options(rep)
    _add_load_options(rep)
    rep.add_argument(
        "--out",
        required=True,
        metavar="FILE.pdf|FILE.html",
        help="the report to write; .pdf needs WeasyPrint, .html prints from a browser",
    )
    rep.add_argument(
        "--title",
        default="hipviz plan",
        metavar="TEXT",
        help="report heading (default: hipviz plan)",
    )

    e = sub.add_parser("export", help="write the built-in anatomy as STL files")
    e.add_argument("--out", default="meshes", metavar="DIR", help="output folder (default meshes)")
    e.add_argument(
        "--side",
        choices=("left", "right", "both"),
        default="both",
        help="which femur(s) to write (default both)",
    )
    _add_shape_options(e, subdivisions=EXPORT_SUBDIVISIONS)

    srv = sub.add_parser(
        "serve", help="open the interactive app in a browser (plan, measure, explain)"
    )
    srv.add_argument("--port", type=int, default=5006, help="port to serve on (default 5006)")
    srv.add_argument(
        "--address",
        default="127.0.0.1",
        help="address to listen on (default 127.0.0.1: this computer only)",
    )
    srv.add_argument("--show", action="store_true", help="open the app in the default browser")
    _add_limit_options(srv, file_mb=SERVE_FILE_MB)
    srv.add_argument(
        "--num-procs",
        type=int,
        default=1,
        metavar="N",
        help="server processes, each page in one of them (default 1; 0: one per core)",
    )
    srv.add_argument(
        "--prefix",
        default="",
        help="URL path to serve the app under, e.g. hipviz for /hipviz/ (behind a reverse proxy)",
    )
    srv.add_argument(
        "--allow-websocket-origin",
        action="append",
        default=[],
        metavar="HOST[:PORT]",
        help="also accept pages opened from this host (a reverse proxy's public name); repeatable",
    )
    return parser


def _add_batch_options(b: argparse.ArgumentParser, measure: argparse.ArgumentParser) -> None:
    """``hipviz batch``: its own options, and every option of ``measure`` but those naming a hip.

    The measure options are ``measure``'s own argparse actions, so an option
    added to ``hipviz measure`` is an option of ``hipviz batch`` too.
    """
    from .batch import NOT_BATCH_OPTIONS

    b.add_argument(
        "manifest",
        nargs="?",
        metavar="MANIFEST",
        help="CSV (id,pelvis,femur[,side,frame,units,body_weight_kg,case,modes,...]) or a "
        "folder of cases (see docs/batch.md)",
    )
    b.add_argument("--out", required=True, metavar="DIR", help="folder of the results")
    for action in measure._actions:
        if action.dest not in NOT_BATCH_OPTIONS:
            b._add_action(action)
    b.add_argument(
        "--simulate",
        metavar='"OPTIONS"',
        help='hipviz simulate options for every hip, e.g. "--pao lateral=20"',
    )
    b.add_argument(
        "--target",
        metavar="KEY=DEG",
        help="search the PAO turn that brings lcea (lateral turn) or acea (anterior) to DEG",
    )
    b.add_argument(
        "--rom",
        action="store_true",
        help="add the range of motion and impingement (as hipviz rom); with --simulate, "
        "before and after",
    )
    b.add_argument(
        "--sample", type=_positive_count, metavar="N", help="a virtual cohort of N built-in hips"
    )
    b.add_argument("--seed", type=int, default=0, help="seed of --sample (default 0)")
    b.add_argument(
        "--clip", type=float, default=2.5, metavar="SD", help="clip --sample weights (default 2.5)"
    )
    b.add_argument(
        "--workers",
        type=_positive_count,
        metavar="N",
        help="local Dask worker processes (default: one per core)",
    )
    b.add_argument("--scheduler", metavar="tcp://HOST:PORT", help="use this running Dask scheduler")
    b.add_argument(
        "--retry-failed", action="store_true", help="run the hips that failed before again"
    )
    b.add_argument(
        "--classes",
        default="total",
        metavar="TASK",
        help="TotalSegmentator task naming label classes, e.g. total, total_mr (default total)",
    )
    b.add_argument(
        "--pelvis-labels", metavar="LABELS", help="pelvis labels in a folder of label maps"
    )
    b.add_argument(
        "--femur-labels", metavar="LABELS", help="femur labels in a folder of label maps"
    )
    b.add_argument("--no-summary", action="store_true", help="skip summary.html and the PNGs")


def _batch(args: argparse.Namespace) -> int:
    from .batch import NOT_BATCH_OPTIONS, parser_defaults, run

    _check_output_dir(args.out, "--out")
    options = {
        dest: getattr(args, dest)
        for dest in parser_defaults("measure")
        if dest not in NOT_BATCH_OPTIONS and hasattr(args, dest)
    }
    res = run(
        args.manifest,
        args.out,
        options=options,
        simulate=args.simulate,
        target=args.target,
        rom=args.rom,
        sample=args.sample,
        seed=args.seed,
        clip=args.clip,
        workers=args.workers,
        scheduler=args.scheduler,
        retry_failed=args.retry_failed,
        classes=args.classes,
        pelvis_labels=args.pelvis_labels,
        femur_labels=args.femur_labels,
        summary=not args.no_summary,
    )
    out = Path(args.out)
    print(
        f"{len(res.table)} hips ({res.failed} failed; {res.submitted} run now, "
        f"{res.skipped} done before): {out / 'results.parquet'}, {out / 'results.csv'}"
        + ("" if args.no_summary else f", {out / 'summary.html'}")
    )
    if res.interrupted:
        sys.stderr.write("hipviz batch: interrupted; the same command goes on from here\n")
        return 130
    return 0


def _load(path_spec: str, units: str, limits=None):
    """The mesh a path spec names: a file (``seg.nii.gz:77``) or a URL (``file://``, ``https://``...)."""
    from . import io

    if io.is_url(path_spec):  # read where this process runs, then loaded as a file
        url, labels = io.split_url_labels(path_spec)
        with io.fetched(url, limits=limits) as (local, _):
            return io.load_mesh(local, units=units, labels=labels, name=path_spec, limits=limits)
    path, labels = io.parse_path_spec(path_spec)
    return io.load_mesh(path, units=units, labels=labels, name=path_spec, limits=limits)


def _check_output_dir(text: str, flag: str) -> Path:
    """The folder ``flag`` names, made if missing and tried for writing, before any work.

    Raises
    ------
    InputError
        If the path is a file, lies under a file, or the folder cannot be
        made or written in.
    """
    import tempfile

    path = Path(text)
    if path.exists() and not path.is_dir():
        raise InputError(f"{flag} {text}: is a file, not a folder")
    with _writing(text, flag):
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    return path


@contextmanager
def _writing(text: str, flag: str) -> Iterator[None]:
    """Turn a failure to make or write files under the folder ``flag`` names into one line."""
    try:
        yield
    except OSError as exc:
        where = f": {exc.filename}" if exc.filename else ""
        reason = exc.strerror or type(exc).__name__
        raise InputError(f"{flag} {text}: cannot write ({reason}{where})") from None


def _procedures() -> list[str]:
    from .osteotomy import PROCEDURES

    return list(PROCEDURES)


@dataclass
class _Inputs:
    pelvis: object
    femur: object
    side: str
    units: str
    sources: dict[str, str]
    warnings: list[str]


def _inputs(args: argparse.Namespace) -> _Inputs:
    """The meshes the input options name: files, a teaching case, or the built-in anatomy."""
    from . import anatomy

    margin = getattr(args, "margin", 5.0)  # hipviz rom has no --margin
    if margin < 0 or margin > 20:
        raise InputError(f"--margin {margin} mm is outside 0-20 mm")
    sources: dict[str, str] = {}
    warnings: list[str] = []
    builtin = args.pelvis is None and args.femur is None
    if args.case is not None and not builtin:
        raise InputError("--case is a built-in teaching case; drop --pelvis/--femur or --case")
    if builtin:
        if args.units != "auto" or args.frame not in ("auto", "app"):
            raise InputError(
                "--units and --frame ras/lps apply to files; "
                "the built-in anatomy is in mm with its own frame"
            )
        side = "left" if args.side == "auto" else args.side
        subdivisions = MEASURE_SUBDIVISIONS if args.subdivisions is None else args.subdivisions
        if args.case is not None:
            from . import cases

            if args.modes:
                raise InputError("--modes applies to the built-in mean shape, not to --case")
            hip = cases.case_hip(args.case, side=side, subdivisions=subdivisions)
            sources = {
                "pelvis": f"synthetic teaching case '{args.case}' (built-in anatomy, deformed)",
                "femur": f"synthetic teaching case '{args.case}', {side} femur",
            }
        else:
            hip = anatomy.builtin_hip(
                _parse_modes(args.modes), side=side, subdivisions=subdivisions
            )
            sources = {"pelvis": "built-in LLP26 mean pelvis", "femur": f"built-in {side} femur"}
            if any(_parse_modes(args.modes)):
                sources["shape_modes_sd"] = args.modes
        return _Inputs(hip.pelvis, hip.femur, side, "mm", sources, warnings)
    if args.femur is None:
        raise InputError("--femur is needed: the femoral head centre anchors every measure")
    if args.modes or args.subdivisions is not None:
        raise InputError("--modes and --subdivisions apply to the built-in anatomy only")
    limits = _limits(args)
    f = _load(args.femur, args.units, limits)
    sources["femur"] = args.femur
    warnings += [f"{args.femur}: {w}" for w in f.warnings]
    pelvis = None
    if args.pelvis is not None:
        p = _load(args.pelvis, args.units, limits)
        pelvis, sources["pelvis"] = p.mesh, args.pelvis
        warnings += [f"{args.pelvis}: {w}" for w in p.warnings]
        if p.units != f.units:
            raise InputError(
                f"{args.pelvis} looks like {p.units} but {args.femur} like {f.units}; "
                "pass --units to say which"
            )
    return _Inputs(pelvis, f.mesh, args.side, f.units, sources, warnings)


def _located(exc: LandmarkError, sources: dict[str, str]) -> LandmarkError:
    """The error with the file it concerns in front."""
    where = sources.get(exc.bone or "", "")
    return LandmarkError(f"{where}: {exc}" if where else str(exc))


def _load_keys(values: dict, geometry, options, pelvis, socket, head, axes, tf_ras_input) -> None:
    """Add the load keys (and the contact keys, where the model is present) to ``values``.

    Forces stay in the measurement frame; points go to the input
    coordinates (as ``head_center_mm``).
    """
    from .geometry import invert
    from .hip import _jsonable
    from .loads import contact_keys, joint_load

    load = joint_load(options.load, geometry, options.body_weight_kg)
    values.update(_jsonable(load.as_dict(invert(tf_ras_input))))
    if load.fallbacks:
        values.setdefault("notes", {})["load_model"] = "; ".join(load.fallbacks)
    if pelvis is None:
        values.setdefault("notes", {})["contact_pressure"] = "no pelvis given"
        return
    keys, note = contact_keys(pelvis, head, socket, load.force_n, options, axes)
    values.update(_jsonable(keys))
    if note:
        values.setdefault("notes", {})["contact_pressure"] = note


def analyze_inputs(args: argparse.Namespace, inp: _Inputs):
    """The :class:`hipviz.hip.HipAnalysis` of the hip ``inp`` holds, with the measure options."""
    from . import hip

    try:
        return hip.analyze(
            inp.pelvis,
            inp.femur,
            side=inp.side,
            frame=args.frame,
            coverage_margin_mm=args.margin,
            tilt_deg=args.tilt,
        )
    except LandmarkError as exc:
        raise _located(exc, inp.sources) from None


def measure_json(args: argparse.Namespace, *, inputs: _Inputs | None = None, analysis=None) -> dict:
    """The ``hipviz measure --json`` object for parsed ``measure`` options.

    The one place that turns the options into the result, used by
    ``hipviz measure`` and, per hip, by ``hipviz batch``.

    Parameters
    ----------
    args : argparse.Namespace
        The options ``hipviz measure`` parses.
    inputs : _Inputs, optional
        The hip's meshes, already read (:func:`_inputs` of ``args``).
    analysis : HipAnalysis, optional
        Their analysis with these options (:func:`analyze_inputs`), so that a
        batch measuring and simulating one hip analyses it once.

    Raises
    ------
    HipvizError
        For inputs or options that cannot be used (one line, naming the file).
    """
    from . import hip

    options = _load_options(args)
    inp = inputs or _inputs(args)
    result = analysis if analysis is not None else analyze_inputs(args, inp)
    out = result.as_dict()
    if options.load is not None:
        from .loads import hip_load_geometry

        pelvis_r = None if inp.pelvis is None else hip._moved(inp.pelvis, result.tf_ras_input)
        femur_r = hip._moved(inp.femur, result.tf_ras_input)
        try:
            geometry = hip_load_geometry(
                result, pelvis_r, femur_r, need_trochanter=options.needs_trochanter
            )
        except LandmarkError as exc:
            raise _located(exc, inp.sources) from None
        _load_keys(
            out,
            geometry,
            options,
            pelvis_r,
            result.socket,
            result.head,
            result.axes,
            result.tf_ras_input,
        )
    out["units"] = inp.units
    out["sources"] = inp.sources
    out["warnings"] = inp.warnings + out["warnings"]
    return out


def _measure(args: argparse.Namespace) -> int:
    out = measure_json(args)
    if args.json:
        print(json.dumps(out, indent=2, ensure_ascii=False))
    else:
        print(format_table(out))
    return 0


def _parse_pairs(text: str | None, flag: str, keys: dict[str, str]) -> dict[str, float]:
    """``"a=1,b=-2"`` -> {"a": 1.0, "b": -2.0}, keys checked against ``keys`` (key -> unit)."""
    out: dict[str, float] = {}
    if not text:
        return out
    for item in text.split(","):
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or key not in keys:
            expected = ", ".join(f"{k}={u}" for k, u in keys.items())
            raise InputError(f"{flag}: cannot read {item!r}; expected {expected}")
        try:
            v = float(value)
        except ValueError:
            raise InputError(f"{flag}: {key}={value!r} is not a number") from None
        if key in out:
            raise InputError(f"{flag}: {key} is given twice")
        out[key] = v
    return out


@dataclass
class _Plan:
    """The move the plan options give (:func:`_plan`)."""

    procedure: str | None
    adjust: object
    move: object
    femoral: object
    femoral_level: float | None
    cut_femur: bool

    @property
    def empty(self) -> bool:
        return not self.procedure and not self.cut_femur


def _plan(args: argparse.Namespace) -> _Plan:
    """The checked move of ``--pao``, ``--femoral``, ``--preset`` and ``--cuts``."""
    from dataclasses import replace

    from . import osteotomy as ost

    pao = _parse_pairs(
        args.pao, "--pao", {"lateral": "DEG", "anterior": "DEG", "version": "DEG", "medial": "MM"}
    )
    fem = _parse_pairs(
        args.femoral,
        "--femoral",
        {"varus": "DEG", "flexion": "DEG", "rotation": "DEG", "level": "MM"},
    )
    cut_keys = {"sphere": "MM"}
    for name in ("iliac", "retro", "ischial", "pubic"):
        cut_keys[name] = "MM"
        cut_keys[f"{name}_tilt"] = "DEG"
    cuts = _parse_pairs(args.cuts, "--cuts", cut_keys)
    procedure = args.preset or ("pao" if pao or cuts else None)
    adjust = ost.CutAdjustments(
        **{
            name: ost.CutAdjust(cuts.get(name, 0.0), cuts.get(f"{name}_tilt", 0.0))
            for name in ("iliac", "retro", "ischial", "pubic")
        },
        sphere_mm=cuts.get("sphere", 0.0),
    ).validate()
    base = ost.PROCEDURES[args.preset].default_move if args.preset else ost.AcetabularMove()
    move = replace(
        base,
        **{f"{k}_deg" if k != "medial" else "medial_mm": v for k, v in pao.items()},
    ).validate()
    fmove = ost.FemoralMove(
        varus_deg=fem.get("varus", 0.0),
        flexion_deg=fem.get("flexion", 0.0),
        rotation_deg=fem.get("rotation", 0.0),
    ).validate()
    return _Plan(procedure, adjust, move, fmove, fem.get("level"), bool(fem))


def _run_plan(args: argparse.Namespace, inp: _Inputs, plan: _Plan, command: str, analysis=None):
    """``(simulation, outcome)``: the hip of ``inp`` cut and moved as ``plan`` says.

    ``analysis``, where given, is the hip's analysis with the same options
    (it is not measured again).
    """
    from .simulate import Simulation

    if inp.pelvis is None:
        raise InputError(f"hipviz {command} needs the pelvis (--pelvis) as well as the femur")
    try:
        sim = Simulation(
            inp.pelvis,
            inp.femur,
            side=inp.side,
            frame=args.frame,
            coverage_margin_mm=getattr(args, "margin", 5.0),
            tilt_deg=getattr(args, "tilt", 0.0),
            analysis=analysis,
        )
    except LandmarkError as exc:
        raise _located(exc, inp.sources) from None
    if plan.procedure:
        sim.cut(plan.procedure, plan.adjust)
    if plan.cut_femur:
        sim.cut_femur(plan.femoral_level)
    return sim, sim.move(plan.move, plan.femoral)


def simulate_json(
    args: argparse.Namespace, *, inputs: _Inputs | None = None, analysis=None
) -> dict:
    """The ``hipviz simulate --json`` object for parsed ``simulate`` options.

    Used by ``hipviz simulate`` and, per hip, by ``hipviz batch --simulate``.
    ``inputs`` and ``analysis`` are as for :func:`measure_json`: the hip
    already read and measured with the same options.

    Raises
    ------
    HipvizError
        For inputs or options that cannot be used (one line, naming the file).
    """
    from . import osteotomy as ost

    plan = _plan(args)
    procedure = plan.procedure
    if plan.empty:
        raise InputError("nothing to simulate: give --pao, --femoral or --preset")
    if args.export_dir:  # before the work, not after it
        _check_output_dir(args.export_dir, "--export-dir")

    options = _load_options(args)
    inp = inputs or _inputs(args)
    t0 = time.perf_counter()
    sim, outcome = _run_plan(args, inp, plan, "simulate", analysis)

    extra = {} if args.no_fixation else sim.fixation(outcome)
    out = outcome.as_dict()
    if args.rom:
        from . import motion
        from .geometry import invert
        from .hip import _jsonable

        before_model = sim.motion()
        after_model = sim.motion(outcome)
        back = invert(sim.tf_ras_input)
        for key, model in (("before", before_model), ("after", after_model)):
            out[key].update(_jsonable(motion.rom_dict(model.limits(), model.landmarks, back)))

    if options.load is not None:
        _simulated_loads(out, sim, outcome, options, inp.sources)
    out["units"] = inp.units
    out["sources"] = inp.sources
    out["fixation"] = sorted(extra)
    out["warnings"] = inp.warnings + sim.analysis.warnings + out["warnings"]
    if procedure:
        proc = ost.PROCEDURES[procedure]
        out["plan"]["title"] = proc.title
        out["plan"]["description"] = proc.description
    if args.export_dir:
        with _writing(args.export_dir, "--export-dir"):
            paths = sim.export(args.export_dir, outcome, extra)
        out["exported"] = [str(p) for p in paths]
    out["seconds"] = round(time.perf_counter() - t0, 3)
    return out


def _simulate(args: argparse.Namespace) -> int:
    out = simulate_json(args)
    if args.json:
        print(json.dumps(out, indent=2, ensure_ascii=False))
    else:
        print(format_simulation(out))
    return 0


def _rom(args: argparse.Namespace) -> int:
    from . import hip, motion
    from .geometry import invert

    inp = _inputs(args)
    if inp.pelvis is None:
        raise InputError("hipviz rom needs the pelvis (--pelvis) as well as the femur")
    t0 = time.perf_counter()
    try:
        an = hip.analyze(inp.pelvis, inp.femur, side=inp.side, frame=args.frame)
    except LandmarkError as exc:
        raise _located(exc, inp.sources) from None
    model = motion.MotionModel.from_analysis(inp.pelvis, inp.femur, an)
    t1 = time.perf_counter()
    limits = model.limits()
    out = {"side": an.side, "frame": an.frame, "units": inp.units, "sources": inp.sources}
    out.update(motion.rom_dict(limits, model.landmarks, invert(an.tf_ras_input)))
    out["head_center_mm"] = an.values["head_center_mm"]
    out["warnings"] = inp.warnings + an.warnings
    out["seconds"] = time.perf_counter() - t0
    out["rom_seconds"] = time.perf_counter() - t1
    out = hip._jsonable(out)
    if args.json:
        print(json.dumps(out, indent=2, ensure_ascii=False))
    else:
        print(format_rom(out))
    return 0


def format_rom(out: dict, before: dict | None = None) -> str:
    """Readable range-of-motion table of a ``rom`` result (or ``before`` -> ``out``)."""
    from .motion import LIMITS

    lines = []
    if before is None:
        lines.append(f"hipviz rom: {out['side']} hip, frame {out['frame']}, units {out['units']}")
        for role, src in out.get("sources", {}).items():
            lines.append(f"  {role}: {src}")
        lines.append("")
    head = f"  {'motion':<54}"
    if before is not None:
        head += f"{'before':>8}"
    lines.append(f"{head}{'limit':>8}  clock  parts (femur / pelvis)")

    def cell(res: dict, key: str) -> str:
        v = res["rom_deg"].get(key)
        return f"{'-':>8}" if v is None else f"{v:6.1f} °"

    for key, (title, _) in LIMITS.items():
        row = f"  {title:<54}"
        if before is not None:
            row += cell(before, key)
        row += cell(out, key)
        imp = out["impingement"].get(key)
        if imp:
            parts = imp["parts"]
            row += f"  {imp['clock']:4.1f}   {parts['femur']} / {parts['pelvis']}"
        elif key in out.get("rom_notes", {}):
            row += f"  {out['rom_notes'][key]}"
        lines.append(row)
    lines.append(f"  {out['rom_bone_only']}")
    lines.append("  clock: 12 superior, 3 anterior (either side), seen from the side")
    if before is None:
        for w in out.get("warnings", []):
            lines.append(f"  warning: {w}")
    return "\n".join(lines)


def _simulated_loads(out: dict, sim, outcome, options, sources: dict[str, str]) -> None:
    """The load (and contact) keys of ``before`` and ``after`` a simulated move."""
    from .geometry import Sphere, apply
    from .loads import hip_load_geometry

    an = sim.analysis
    try:
        geometry = hip_load_geometry(
            an, sim.pelvis, sim.femur, need_trochanter=options.needs_trochanter
        )
    except LandmarkError as exc:
        raise _located(exc, sources) from None
    tf_in = sim.tf_ras_input
    _load_keys(out["before"], geometry, options, sim.pelvis, an.socket, an.head, an.axes, tf_in)
    tf = outcome.transforms
    moved = geometry.moved(tf["femur_proximal"], tf["femur_distal"])
    pieces = sim.meshes(outcome)
    pelvis_after = pieces.get("acetabular_fragment", pieces.get("pelvis"))
    head = Sphere(outcome.head_center_after_mm, an.head.radius_mm, an.head.rms_mm, an.head.n)
    socket = Sphere(
        apply(tf["fragment"], an.socket.center_mm),
        an.socket.radius_mm,
        an.socket.rms_mm,
        an.socket.n,
    )
    _load_keys(out["after"], moved, options, pelvis_after, socket, head, an.axes, tf_in)


def format_simulation(out: dict) -> str:
    """Readable before/after report of a ``simulate`` result.

    An impossible value before or after (:func:`hipviz.reference.flagged`)
    is marked ``!`` and never gets a band: its status names what to check.
    """
    from .reference import MEASURES, flagged, impossible_status, lookup

    before, after, plan = out["before"], out["after"], out["plan"]
    flags_before, flags_after = flagged(before), flagged(after)
    title = plan.get("title") or "femoral osteotomy"
    lines = [f"hipviz simulate: {title}, {before['side']} hip, frame {before['frame']}"]
    for role, src in out.get("sources", {}).items():
        lines.append(f"  {role}: {src}")
    if plan.get("procedure"):
        p = plan["pao"]
        lines.append(
            f"  fragment: lateral {p['lateral']:g} deg, anterior {p['anterior']:g} deg, "
            f"version {p['version']:g} deg, medial {p['medial']:g} mm "
            f"(cuts placed from {plan['cuts_placed_from']})"
        )
    f = plan["femoral"]
    if f.get("level_mm") is not None:
        lines.append(
            f"  femur: varus {f['varus']:g} deg, flexion {f['flexion']:g} deg, rotation "
            f"{f['rotation']:g} deg, cut {f['level_mm']:.0f} mm below the head centre"
        )
    lines.append("")
    lines.append(
        f"  {'measure':<17}{'before':>8}  {'after':>8}  {'change':>7}   {'normal':<11}status"
    )
    for info in MEASURES:
        b, a = lookup(before, info.key), lookup(after, info.key)
        head = f"  {info.short:<17}"
        if a is None and b is None:
            continue
        bt = _cell(b, info.key in flags_before)
        at = _cell(a, info.key in flags_after)
        dt = f"{a - b:+7.1f}" if a is not None and b is not None else f"{'':>7}"
        band = info.classify(a) if a is not None else None
        status = band.label if band else ""
        if a is not None and info.key in flags_after:
            status = impossible_status(info.key, flags_after[info.key])
        normal = next((_band_text(x) for x in info.bands if x.level == "normal"), "")
        lines.append(f"{head}{bt}  {at}  {dt}   {normal:<11}{status}")
    lines.append("")
    gap = out["min_gap_mm"]
    lines.append(
        f"  bone-to-bone gap after: {gap:.1f} mm" + ("  OVERLAP" if out["overlap"] else "")
    )
    for where, con in out["cut_contact"].items():
        lines.append(
            f"  contact across the {where} cuts: {con['area_mm2']:.0f} mm2 "
            f"({100 * con['fraction']:.0f} % of the cut surface)"
        )
    lines.append(f"  leg length change: {out['leg_length_change_mm']:+.1f} mm")
    s = out["hip_center_shift_mm"]
    lines.append(
        f"  hip centre moved: lateral {s['lateral']:+.1f}, anterior {s['anterior']:+.1f}, "
        f"superior {s['superior']:+.1f} mm"
    )
    lines += [f"  {line}" for line in load_change_lines(before, after)]
    if out.get("fixation"):
        lines.append(f"  fixation: {', '.join(out['fixation'])}")
    if "rom_deg" in after:
        lines.append("")
        lines.append("  range of motion, before -> after:")
        lines.append(format_rom(after, before))
    for path in out.get("exported", []):
        lines.append(f"  wrote {path}")
    for w in out.get("warnings", []):
        lines.append(f"  warning: {w}")
    return "\n".join(lines)


def load_lines(values: dict) -> list[str]:
    """Readable lines of the load keys of a ``measure`` result (none without a load)."""
    if "joint_force_n" not in values:
        return []
    f = values["joint_force_n"]
    model = values["load_model"].split(":")[0]
    size = math.sqrt(sum(x * x for x in f))
    lines = [
        f"joint load ({model}, {values['body_weight_kg']:g} kg): {size:.0f} N = "
        f"{values['joint_force_bw']:.2f} x body weight on the socket, "
        f"({f[0]:.0f}, {f[1]:.0f}, {f[2]:.0f}) N in the measurement frame"
    ]
    p = values.get("pauwels")
    if p:
        lines.append(
            f"Pauwels: lever arms {p['body_weight_lever_arm_mm']:.1f} mm (body weight) and "
            f"{p['abductor_lever_arm_mm']:.1f} mm (abductors), abductor force "
            f"{p['abductor_force_n']:.0f} N ({p['abductor_force_bw']:.2f} BW), joint force "
            f"{p['joint_force_angle_deg']:.1f} deg from vertical"
        )
    if "contact_peak_mpa" in values:
        lines.append(
            f"contact pressure: peak {values['contact_peak_mpa']:.2f} MPa, mean "
            f"{values['contact_mean_mpa']:.2f} MPa over {values['contact_area_mm2']:.0f} mm2"
        )
    elif values.get("notes", {}).get("contact_pressure"):
        lines.append(values["notes"]["contact_pressure"])
    return lines


def load_change_lines(before: dict, after: dict) -> list[str]:
    """Readable before -> after lines of the load keys of a ``simulate`` result."""
    if "joint_force_n" not in before or "joint_force_n" not in after:
        return []
    model = before["load_model"].split(":")[0]
    lines = [
        f"joint load ({model}, {before['body_weight_kg']:g} kg): "
        f"{before['joint_force_bw']:.2f} -> {after['joint_force_bw']:.2f} x body weight"
    ]
    b, a = before.get("pauwels"), after.get("pauwels")
    if b and a:
        lines.append(
            f"Pauwels lever arms: body weight {b['body_weight_lever_arm_mm']:.1f} -> "
            f"{a['body_weight_lever_arm_mm']:.1f} mm, abductors "
            f"{b['abductor_lever_arm_mm']:.1f} -> {a['abductor_lever_arm_mm']:.1f} mm; "
            f"abductor force {b['abductor_force_bw']:.2f} -> {a['abductor_force_bw']:.2f} BW"
        )
    if "contact_peak_mpa" in before and "contact_peak_mpa" in after:
        lines.append(
            f"contact pressure: peak {before['contact_peak_mpa']:.2f} -> "
            f"{after['contact_peak_mpa']:.2f} MPa, area {before['contact_area_mm2']:.0f} -> "
            f"{after['contact_area_mm2']:.0f} mm2"
        )
    elif before.get("notes", {}).get("contact_pressure"):
        lines.append(before["notes"]["contact_pressure"])
    return lines


def _cell(value: float | None, impossible: bool) -> str:
    """A value in 8 characters, ``!`` last when it is impossible, ``-`` when missing."""
    if value is None:
        return f"{'-':>8}"
    return f"{value:7.1f}!" if impossible else f"{value:8.1f}"


def format_table(out: dict) -> str:
    """Readable multi-line report of a ``measure`` result.

    An impossible value (:func:`hipviz.reference.flagged`) is marked ``!``
    and its status names what to check instead of a band; the warnings
    below the table say why.
    """
    from .reference import MEASURES, flagged, impossible_status, lookup

    flags = flagged(out)

    lines = [
        f"hipviz measure: {out['side']} hip, frame {out['frame']}, units {out['units']}",
    ]
    for role, src in out.get("sources", {}).items():
        lines.append(f"  {role}: {src}")
    c = out["head_center_mm"]
    lines.append(
        f"  head centre ({c[0]:.1f}, {c[1]:.1f}, {c[2]:.1f}) mm in the input coordinates, "
        f"radius {out['head_radius_mm']:.1f} mm"
    )
    lines.append("")
    lines.append(f"  {'measure':<17}{'':<44}{'value':>9}   {'normal':<11}status")
    for info in MEASURES:
        v = lookup(out, info.key)
        head = f"  {info.short:<17}{info.name[:43]:<44}"
        if v is None:
            why = out["notes"].get(info.key.split(".")[0], "not available")
            lines.append(f"{head}{'-':>9}   {why}")
            continue
        band = info.classify(v)
        normal = next((_band_text(b) for b in info.bands if b.level == "normal"), "")
        status = band.label if band else ""
        if info.note:
            status = f"{status} ({info.note})" if status else f"({info.note})"
        mark = " "
        if info.key in flags:
            mark, status = "!", impossible_status(info.key)
        lines.append(f"{head}{v:>7.1f} {info.unit:<2}{mark} {normal:<10}{status}")
    cov = out.get("coverage_pct")
    if cov:
        parts = ", ".join(f"{k.replace('_', ' ')} {v:.0f}%" for k, v in cov.items())
        lines.append(f"  coverage (margin {out['coverage_margin_mm']:g} mm): {parts}")
    if out.get("alpha_clock") is not None:
        lines.append(
            f"  alpha maximum at {out['alpha_clock']:.1f} o'clock (12 superior, 3 anterior)"
        )
    if out.get("femoral_version_method"):
        lines.append(f"  femoral version method: {out['femoral_version_method']}")
    lines += [f"  {line}" for line in load_lines(out)]
    for w in out.get("warnings", []):
        lines.append(f"  warning: {w}")
    return "\n".join(lines)


def _band_text(band) -> str:
    if band.low == float("-inf"):
        return f"< {band.high:g}"
    if band.high == float("inf"):
        return f"> {band.low:g}"
    return f"{band.low:g}-{band.high:g}"


def _check_output_file(text: str, flag: str, suffixes: tuple[str, ...]) -> Path:
    """The file ``flag`` names, checked before any work: its suffix, and that it can be made."""
    path = Path(text)
    if path.suffix.lower() not in suffixes:
        raise InputError(f"{flag} {text}: expected a file ending in {' or '.join(suffixes)}")
    if path.is_dir():
        raise InputError(f"{flag} {text}: is a folder, not a file")
    if not path.parent.is_dir():
        raise InputError(f"{flag} {text}: folder {path.parent} does not exist")
    if not os.access(path if path.exists() else path.parent, os.W_OK):
        raise InputError(f"{flag} {text}: cannot write (permission denied)")
    return path


def _planned(args: argparse.Namespace, command: str):
    """``(sim, outcome, result)`` of the hip and plan options (``outcome`` None: no move)."""
    plan = _plan(args)
    options = _load_options(args)
    inp = _inputs(args)
    sim, outcome = _run_plan(args, inp, plan, command)
    if plan.empty:
        outcome_or_none = None
        result = {"before": dict(outcome.as_dict()["before"]), "plan": {}, "warnings": []}
        result["after"] = result["before"]
    else:
        outcome_or_none = outcome
        result = outcome.as_dict()
    if options.load is not None:
        _simulated_loads(result, sim, outcome, options, inp.sources)
    result["sources"] = inp.sources
    result["warnings"] = inp.warnings + sim.analysis.warnings + result["warnings"]
    return sim, outcome_or_none, result


def _handout(args: argparse.Namespace) -> int:
    from . import handout, report

    path = _check_output_file(args.out, "--out", (".html", ".htm"))
    t0 = time.perf_counter()
    sim, outcome, result = _planned(args, "handout")
    budget = args.max_handout_triangles or handout.HANDOUT_TRIANGLES
    text = handout.handout_html(
        sim,
        outcome,
        result=result,
        facts=report.plan_facts(result, side=sim.analysis.side),
        title=args.title,
        max_triangles=budget,
    )
    with _writing(args.out, "--out"):
        size = handout.write_handout(path, text)
    print(f"wrote {path} ({size / 1e6:.1f} MB)")
    print(f"done in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    return 0


def _report(args: argparse.Namespace) -> int:
    if not os.environ.get("DISPLAY"):
        # Headless: VTK renders through EGL rather than failing over from X with a warning.
        os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")
    from . import report

    path = _check_output_file(args.out, "--out", (".pdf", ".html", ".htm"))
    t0 = time.perf_counter()
    sim, outcome, result = _planned(args, "report")
    rows = report.measure_rows(result["before"], None if outcome is None else result["after"])
    options = _load_options(args)
    below = None
    if options.load is not None:  # the pressure maps, as the numbers were computed
        solver = {
            k: getattr(options, k)
            for k in ("modulus_mpa", "poisson", "spring")
            if getattr(options, k) is not None
        }
        below = report.pressure_pictures(
            sim, outcome, options.load, options.body_weight_kg, solver=solver
        )
    text = report.report_html(
        title=args.title,
        subtitle=f"{sim.analysis.side} hip · made {time.strftime('%Y-%m-%d')} with hipviz",
        rows=rows,
        pictures=report.plan_pictures(sim, outcome),
        facts=report.plan_facts(result, side=sim.analysis.side),
        warnings=result["warnings"],
        notes=report.METHOD_NOTES,
        pictures_below=below,
    )
    with _writing(args.out, "--out"):
        if path.suffix.lower() == ".pdf":
            report.write_pdf(text, path)
        else:
            path.write_text(text, encoding="utf-8")
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")
    print(f"done in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    return 0


def _export(args: argparse.Namespace) -> int:
    from . import anatomy

    out = _check_output_dir(args.out, "--out")
    weights = _parse_modes(args.modes)
    t0 = time.perf_counter()
    sides = ("left", "right") if args.side == "both" else (args.side,)
    with _writing(args.out, "--out"):
        written = anatomy.export_stl(
            out,
            weights,
            sides=sides,
            subdivisions=EXPORT_SUBDIVISIONS if args.subdivisions is None else args.subdivisions,
        )
    for path, mesh in written:
        print(f"wrote {path} ({len(mesh.faces)} triangles)")
    print(f"done in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    return 0


def _serve(args: argparse.Namespace) -> int:
    if not 0 < args.port < 65536:
        raise InputError(f"--port {args.port} is not a port number (1-65535)")
    if args.num_procs < 0:
        raise InputError(f"--num-procs {args.num_procs} must be 1 or more (0: one per core)")
    if args.show and args.num_procs != 1:
        raise InputError("--show opens one browser from one process: use it with --num-procs 1")
    limits = _limits(args, max_file_mb=SERVE_FILE_MB)
    from .app.main import serve

    def ready(url: str) -> None:  # the port is bound: the address works
        print(f"hipviz: serving on {url} (Ctrl+C to stop)", file=sys.stderr, flush=True)

    removed = serve(
        port=args.port,
        address=args.address,
        show=args.show,
        limits=limits,
        on_ready=ready,
        num_procs=args.num_procs,
        prefix=args.prefix.strip("/"),
        allow_websocket_origin=args.allow_websocket_origin,
    )
    print(f"hipviz: stopped; removed {removed} session folder(s)", file=sys.stderr)
    return 0


#: Exit code of a command whose reader went away (128 + SIGPIPE, as shells report it).
EXIT_PIPE = 141


def _run(args: argparse.Namespace) -> int:
    """Run the chosen command; its output is flushed before returning."""
    commands = {
        "measure": _measure,
        "simulate": _simulate,
        "rom": _rom,
        "batch": _batch,
        "export": _export,
        "serve": _serve,
        "handout": _handout,
        "report": _report,
    }
    if args.command not in commands:
        return EXIT_USAGE
    code = commands[args.command](args)
    sys.stdout.flush()  # a closed pipe shows here, not at interpreter exit
    return code


def _quiet_stdout() -> None:
    """Point stdout at the null device, so that exiting flushes nowhere and says nothing."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # no real stdout file descriptor: nothing to flush into
        pass


#: Environment variables that keep the BLAS library to one thread per process.
#: hipviz's linear algebra is on small (n, 3) arrays, where waking BLAS threads
#: costs more than it saves (measures take ~20 % more CPU time threaded, and
#: several times longer when a batch or the server already fills the cores).
#: Set by the command line before numpy loads; a value the user set is kept.
SINGLE_THREAD_BLAS = ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``hipviz`` console script."""
    for name in SINGLE_THREAD_BLAS:
        os.environ.setdefault(name, "1")
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except BrokenPipeError:  # ``hipviz --help | head -1``
        _quiet_stdout()
        return EXIT_PIPE
    try:
        return _run(args)
    except BrokenPipeError:
        # The reader (e.g. ``| head``) has what it wanted: stop quietly, as cat or grep do.
        _quiet_stdout()
        return EXIT_PIPE
    except HipvizError as exc:
        sys.stderr.write(f"hipviz {args.command}: error: {exc}\n")
        return EXIT_USAGE
    except KeyboardInterrupt:
        sys.stderr.write("hipviz: interrupted\n")
        return 130
    except Exception as exc:  # noqa: BLE001 - last line of defence: never a traceback
        sys.stderr.write(
            f"hipviz {args.command}: internal error: {type(exc).__name__}: {exc} "
            "(please report it with the command you ran)\n"
        )
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
