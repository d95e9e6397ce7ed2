"""The ``hipviz`` command line: ``measure``, ``simulate`` and ``export``.

Every failure the user can fix ends with one line on stderr and exit code 2;
nothing prints a traceback. ``hipviz measure --json`` and
``hipviz simulate --json`` print one JSON object whose keys are a contract
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

    sim = sub.add_parser(
        "simulate",
        help="cut and turn the bones (PAO, femoral osteotomies, presets) and measure again",
    )
    _add_input_options(sim)
    sim.add_argument(
        "--pao",
        metavar="KEY=VALUE,...",
        help="turn the acetabular fragment: lateral=DEG (raises LCEA), anterior=DEG "
        "(raises ACEA), version=DEG (raises version), medial=MM (shift toward the midline)",
    )
    sim.add_argument(
        "--femoral",
        metavar="KEY=VALUE,...",
        help="intertrochanteric osteotomy: varus=DEG (negative: valgus), flexion=DEG, "
        "rotation=DEG (raises femoral version), level=MM (cut below the head centre)",
    )
    sim.add_argument(
        "--preset",
        choices=tuple(_procedures()),
        help="pelvic osteotomy and its usual move: " + ", ".join(_procedures()),
    )
    sim.add_argument(
        "--cuts",
        metavar="KEY=VALUE,...",
        help="adjust the cuts: iliac|retro|ischial|pubic=MM (away from the head), "
        "<cut>_tilt=DEG, sphere=MM (rotational osteotomy radius change)",
    )
    sim.add_argument(
        "--export-dir", metavar="DIR", help="write the moved bones and the fixation as STL"
    )
    sim.add_argument(
        "--no-fixation", action="store_true", help="leave the screws and plate out of the export"
    )
    _add_output_options(sim)

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


def _load(path_spec: str, units: str, limits=None):
    from . import io

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

    if args.margin < 0 or args.margin > 20:
        raise InputError(f"--margin {args.margin} mm is outside 0-20 mm")
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


def _measure(args: argparse.Namespace) -> int:
    from . import hip

    inp = _inputs(args)
    try:
        result = hip.analyze(
            inp.pelvis,
            inp.femur,
            side=inp.side,
            frame=args.frame,
            coverage_margin_mm=args.margin,
            tilt_deg=args.tilt,
        )
    except LandmarkError as exc:
        raise _located(exc, inp.sources) from None
    out = result.as_dict()
    out["units"] = inp.units
    out["sources"] = inp.sources
    out["warnings"] = inp.warnings + out["warnings"]
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


def _simulate(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from . import osteotomy as ost
    from .simulate import Simulation

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
    if not procedure and not fem:
        raise InputError("nothing to simulate: give --pao, --femoral or --preset")
    if args.export_dir:  # before the work, not after it
        _check_output_dir(args.export_dir, "--export-dir")

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

    inp = _inputs(args)
    if inp.pelvis is None:
        raise InputError("hipviz simulate needs the pelvis (--pelvis) as well as the femur")
    t0 = time.perf_counter()
    try:
        sim = Simulation(
            inp.pelvis,
            inp.femur,
            side=inp.side,
            frame=args.frame,
            coverage_margin_mm=args.margin,
            tilt_deg=args.tilt,
        )
    except LandmarkError as exc:
        raise _located(exc, inp.sources) from None
    if procedure:
        sim.cut(procedure, adjust)
    if fem:
        sim.cut_femur(fem.get("level"))
    outcome = sim.move(move, fmove)

    extra = {} if args.no_fixation else sim.fixation(outcome)
    out = outcome.as_dict()
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
    if args.json:
        print(json.dumps(out, indent=2, ensure_ascii=False))
    else:
        print(format_simulation(out))
    return 0


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
    if out.get("fixation"):
        lines.append(f"  fixation: {', '.join(out['fixation'])}")
    for path in out.get("exported", []):
        lines.append(f"  wrote {path}")
    for w in out.get("warnings", []):
        lines.append(f"  warning: {w}")
    return "\n".join(lines)


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
    for w in out.get("warnings", []):
        lines.append(f"  warning: {w}")
    return "\n".join(lines)


def _band_text(band) -> str:
    if band.low == float("-inf"):
        return f"< {band.high:g}"
    if band.high == float("inf"):
        return f"> {band.low:g}"
    return f"{band.low:g}-{band.high:g}"


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
    commands = {"measure": _measure, "simulate": _simulate, "export": _export, "serve": _serve}
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


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``hipviz`` console script."""
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
