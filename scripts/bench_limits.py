#!/usr/bin/env python
"""What hostile and oversized uploads cost the server: message, time, peak RSS.

A script, not a test. It builds the files of ``tests/bombs.py`` (a NIfTI
header claiming 2048³ voxels, a 4 MB gzip bomb of 4 GiB, a NIfTI extension
bomb, a headerless gzip of zeros, a binary STL claiming 2^31 triangles, a
PLY claiming 2^31 faces, a legacy VTK claiming 10^9 points) and an honest
131 MB, 2.6 M-triangle binary STL (tried under the app's default 60 MB
upload limit, with the limits raised to 200 MB and 2 M triangles, and with
only the file limit raised, when it loads). For each it starts a fresh
Python that imports the server (``hipviz.app.main``: Panel, Bokeh, the
library), opens a :class:`~hipviz.app.state.HipSession` as a browser tab
does, and stores and loads the file as an upload. It prints one markdown
row per file: the message the page shows, the seconds the store and load
took, the process's RSS before and its peak RSS during them (Linux
``VmHWM``, reset just before; the upload's own bytes are in it).

``--source DIR`` runs another source tree (e.g. an export of an earlier
commit) to compare; ``--max-gb`` caps each process's address space
(``RLIMIT_AS``) so a bomb that is not refused stops at the cap with a
MemoryError instead of taking the machine's memory (the row then says so).

Usage::

    python scripts/bench_limits.py                         # this tree
    git archive <commit> | tar -x -C /tmp/before
    python scripts/bench_limits.py --source /tmp/before --max-gb 4
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

import bombs  # noqa: E402

# Runs in a fresh interpreter; argv: path, display name, limits JSON or "", address cap in GB.
_PROBE = r"""
import json, resource, sys, time
path, name, limits, cap_gb = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
import hipviz.app.main  # the server's imports: Panel, Bokeh, the library
import nibabel, skimage.measure, pyvista  # the readers a load may import
from hipviz.app.state import HipSession, Upload
from hipviz.errors import HipvizError

def status_mb(key):
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024

def reset_peak():  # Linux: the peak (VmHWM) starts again from the current RSS
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")

if cap_gb > 0:
    cap = int(cap_gb * 2**30)
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
kwargs = {}
if limits:
    from hipviz.io import Limits
    kwargs["limits"] = Limits(**json.loads(limits))
session = HipSession(**kwargs)
reset_peak()
base = status_mb("VmRSS")
start = time.perf_counter()
try:
    data = open(path, "rb").read()
    stored = session.store("pelvis", name, data)
    del data
    upload = Upload(stored, stored, name, name)
    session.load_upload(upload)
    message = "loaded"
except HipvizError as exc:
    message = str(exc)
except MemoryError:
    message = f"MemoryError at the {cap_gb:g} GB address-space cap"
finally:
    session.close()
print(json.dumps({"message": message, "seconds": time.perf_counter() - start,
                  "base_mb": base, "peak_mb": status_mb("VmHWM")}))
"""


def files(folder: Path) -> list[tuple[str, Path, dict | None]]:
    """(label, path, limits or None for the app's defaults) of every file to try."""
    import trimesh

    out = [(label, path, None) for label, path in bombs.all_bombs(folder).items()]
    # an honest 131 MB binary STL: two finely subdivided spheres
    big = trimesh.creation.icosphere(subdivisions=8, radius=60.0)  # 1,310,720 triangles
    parts = [big.copy() for _ in range(2)]
    parts[1].apply_translation([200.0, 0.0, 0.0])
    mesh = trimesh.util.concatenate(parts)  # 2,621,440 triangles = 131 MB
    path = folder / "big_131MB.stl"
    mesh.export(path)
    out.append(("honest binary STL, 131 MB (app limit 60 MB)", path, None))
    out.append(
        (
            "the same, limits raised to 200 MB and 2 M triangles",
            path,
            {"max_file_mb": 200.0, "max_triangles": 2_000_000},
        )
    )
    # what an honest large file costs when the limits let it in (it loads)
    out.append(("the same, limits raised to 200 MB", path, {"max_file_mb": 200.0}))
    return out


def probe(source: Path, path: Path, limits: dict | None, cap_gb: float) -> dict:
    env = {**os.environ, "PYTHONPATH": str(source)}
    with tempfile.TemporaryDirectory() as sessions:
        env["HIPVIZ_SESSION_DIR"] = sessions
        result = subprocess.run(
            [
                sys.executable,
                "-c",
                _PROBE,
                str(path),
                path.name,
                json.dumps(limits) if limits else "",
                str(cap_gb),
            ],
            capture_output=True,
            text=True,
            env=env,
            cwd=source,  # ``python -c`` puts the working folder first on the path
            timeout=600,
        )
    if result.returncode != 0:
        tail = result.stderr.strip().splitlines()[-1:] or ["no output"]
        return {"message": f"process failed: {tail[0]}", "seconds": float("nan"), "peak_mb": 0}
    return json.loads(result.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=REPO, help="source tree to run")
    parser.add_argument(
        "--max-gb", type=float, default=0.0, help="address-space cap per process, GB (0: none)"
    )
    parser.add_argument("--json-out", type=Path, help="also write the rows as JSON")
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        print("| file | size | message shown | seconds | RSS before → peak (MB) |")
        print("|---|---|---|---|---|")
        for label, path, limits in files(folder):
            result = probe(args.source, path, limits, args.max_gb)
            size = path.stat().st_size
            shown = f"{size:,} B" if size < 10_000 else f"{size / 1e6:.1f} MB"
            print(
                f"| {label} | {shown} | {result['message']} | {result['seconds']:.3f} | "
                f"{result.get('base_mb', 0):.0f} → {result['peak_mb']:.0f} |",
                flush=True,
            )
            rows.append({"file": label, "bytes": size, **result})
    if args.json_out:
        args.json_out.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
