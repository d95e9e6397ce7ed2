"""The ``hipviz`` command line: ``measure`` and ``export``.

Every failure the user can fix ends with one line on stderr and exit code 2;
nothing prints a traceback. ``hipviz measure --json`` prints one JSON object
whose keys are a contract (see ``docs/cli.md``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from .errors import HipvizError, InputError, LandmarkError

EXIT_USAGE = 2
#: Built-in anatomy resolution (subdivisions per model element edge) when none is given.
MEASURE_SUBDIVISIONS = 8
EXPORT_SUBDIVISIONS = 10


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


def _add_input_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--pelvis",
        metavar="FILE",
        help="pelvis mesh (STL/PLY/OBJ/OFF/GLB/VTP/VTK) or NIfTI label map "
        "(FILE.nii.gz:LABEL[,LABEL]); default: the built-in anatomy",
    )
    p.add_argument("--femur", metavar="FILE", help="femur mesh or label map, as --pelvis")
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
        choices=("auto", "mm", "m"),
        default="auto",
        help="units of the files; auto detects metres (default)",
    )
    _add_shape_options(p, subdivisions=MEASURE_SUBDIVISIONS, prefix="built-in anatomy only: ")


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
    m.add_argument("--json", action="store_true", help="print one JSON object")
    m.add_argument(
        "--margin",
        type=float,
        default=5.0,
        metavar="MM",
        help="coverage margin: bone within head radius + MM covers (default 5)",
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
    return parser


def _load(path_spec: str, units: str):
    from . import io

    path, labels = io.parse_path_spec(path_spec)
    return io.load_mesh(path, units=units, labels=labels, name=path_spec)


def _measure(args: argparse.Namespace) -> int:
    from . import anatomy, hip

    if args.margin < 0 or args.margin > 20:
        raise InputError(f"--margin {args.margin} mm is outside 0-20 mm")
    sources: dict[str, str] = {}
    warnings: list[str] = []
    units = "mm"
    if args.pelvis is None and args.femur is None:
        if args.units != "auto" or args.frame not in ("auto", "app"):
            raise InputError(
                "--units and --frame ras/lps apply to files; "
                "the built-in anatomy is in mm with its own frame"
            )
        side = "left" if args.side == "auto" else args.side
        subdivisions = MEASURE_SUBDIVISIONS if args.subdivisions is None else args.subdivisions
        builtin = anatomy.builtin_hip(
            _parse_modes(args.modes), side=side, subdivisions=subdivisions
        )
        pelvis, femur = builtin.pelvis, builtin.femur
        sources = {"pelvis": "built-in LLP26 mean pelvis", "femur": f"built-in {side} femur"}
        if any(_parse_modes(args.modes)):
            sources["shape_modes_sd"] = args.modes
    else:
        if args.femur is None:
            raise InputError("--femur is needed: the femoral head centre anchors every measure")
        if args.modes or args.subdivisions is not None:
            raise InputError("--modes and --subdivisions apply to the built-in anatomy only")
        f = _load(args.femur, args.units)
        femur, sources["femur"] = f.mesh, args.femur
        warnings += [f"{args.femur}: {w}" for w in f.warnings]
        units = f.units
        pelvis = None
        if args.pelvis is not None:
            p = _load(args.pelvis, args.units)
            pelvis, sources["pelvis"] = p.mesh, args.pelvis
            warnings += [f"{args.pelvis}: {w}" for w in p.warnings]
            if p.units != f.units:
                raise InputError(
                    f"{args.pelvis} looks like {p.units} but {args.femur} like {f.units}; "
                    "pass --units to say which"
                )
        side = args.side
    try:
        result = hip.analyze(
            pelvis, femur, side=side, frame=args.frame, coverage_margin_mm=args.margin
        )
    except LandmarkError as exc:
        where = sources.get(exc.bone or "", "")
        raise LandmarkError(f"{where}: {exc}" if where else str(exc)) from None
    out = result.as_dict()
    out["units"] = units
    out["sources"] = sources
    out["warnings"] = warnings + out["warnings"]
    if args.json:
        print(json.dumps(out, indent=2, ensure_ascii=False))
    else:
        print(format_table(out))
    return 0


def format_table(out: dict) -> str:
    """Readable multi-line report of a ``measure`` result."""
    from .reference import MEASURES, lookup

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
        lines.append(f"{head}{v:>7.1f} {info.unit:<2} {normal:<11}{status}")
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

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    weights = _parse_modes(args.modes)
    t0 = time.perf_counter()
    sides = ("left", "right") if args.side == "both" else (args.side,)
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


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``hipviz`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "measure":
            return _measure(args)
        if args.command == "export":
            return _export(args)
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
    return EXIT_USAGE


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
