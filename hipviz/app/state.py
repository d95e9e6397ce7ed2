"""The app's model: a plan as parameters, and the session that computes it.

:class:`Plan` holds everything a user sets - case, side, procedure, slider
values, posture, display mode - as ``param`` parameters whose names are the
URL query names (``?case=dysplastic&pao_lateral=20``), so a link reopens the
same plan. :class:`HipSession` turns a plan into a :class:`hipviz.simulate.Simulation`
and an :class:`hipviz.simulate.Outcome`, redoing only what a change needs:
a new anatomy (about 1 s), a new cut (about 60 ms), or only a move (about
15 ms). Neither imports Panel; the page (:mod:`hipviz.app.main`) watches them.

Uploaded files are patients' data: each session keeps them in its own
folder (``hipviz-session-*`` in :func:`session_base_dir`), marked as
hipviz's by a file holding the server's process id. The folder goes when
the session closes, every live one when the process exits
(:func:`remove_live_folders`, also registered with :mod:`atexit`), and
folders a crashed run left behind when the next server starts
(:func:`remove_stale_folders`).
"""

from __future__ import annotations

import atexit
import base64
import itertools
import json
import math
import os
import shutil
import socket
import stat
import tempfile
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus, urlencode

import param

from hipviz import cases, io, loads
from hipviz import osteotomy as ost
from hipviz.anatomy import builtin_hip
from hipviz.errors import HipvizError, InputError
from hipviz.simulate import Outcome, Simulation

from . import workers
from .text import NAME_CHARS, clamp, quoted, size_over

#: Built-in anatomy choices besides the teaching cases.
BUILTIN = "builtin"
UPLOAD = "upload"
CASE_CHOICES = (*cases.CASES, BUILTIN, UPLOAD)
PROCEDURE_CHOICES = ("none", *ost.PROCEDURES)
MODES = ("surgeon", "student", "explain")
VIEWS = ("anterior", "lateral", "superior", "false_profile")
#: Shape-mode sliders offered for the built-in anatomy (the first, largest modes).
N_SHAPE_SLIDERS = 5
#: Standing posture: a typical posterior pelvic tilt from lying to standing, degrees.
STANDING_TILT_DEG = 5.0
#: Upload cap per file, megabytes (10**6 bytes); ``hipviz serve --max-file-mb`` sets another.
MAX_UPLOAD_MB = 60
#: Room in a websocket message that carries an uploaded file whole (a page
#: without its script sends it so) besides the file itself (the patch's JSON:
#: model id, file name, MIME type), bytes.
UPLOAD_MESSAGE_OVERHEAD = 64 * 1024
#: Session folders are ``<base>/hipviz-session-<random>``; the base is this
#: environment variable when set, else the system's temporary folder.
SESSION_PREFIX = "hipviz-session-"
SESSION_DIR_ENV = "HIPVIZ_SESSION_DIR"
#: The file in each session folder that marks it as hipviz's (JSON: owner process).
MARKER = ".hipviz-session"
UPLOAD_SUFFIXES = (".stl", ".ply", ".obj", ".off", ".vtp", ".vtk", ".glb", ".nii", ".nii.gz")

CUTS = ("iliac", "retro", "ischial", "pubic")
MOVE_PARAMS = (
    "pao_lateral",
    "pao_anterior",
    "pao_version",
    "pao_medial",
    "fem_varus",
    "fem_flexion",
    "fem_rotation",
)
CUT_PARAMS = (*(f"cut_{c}" for c in CUTS), *(f"cut_{c}_tilt" for c in CUTS), "cut_sphere")
ANATOMY_PARAMS = ("case", "side", "tilt", *(f"mode{i + 1}" for i in range(N_SHAPE_SLIDERS)))
#: The load on the hip (the Load view, :mod:`hipviz.app.load_view`): a case and a body weight.
LOAD_CHOICES = ("none", *loads.LOAD_NAMES)
LOAD_PARAMS = ("load", "body_weight")
#: Parameters that travel in the URL (documented in docs/app.md).
URL_PARAMS = (
    *ANATOMY_PARAMS,
    "procedure",
    *MOVE_PARAMS,
    "fem_level",
    *CUT_PARAMS,
    "mode",
    "view",
    *LOAD_PARAMS,
)

#: Fields of a link's query that are read; the rest are counted, not read (a
#: full plan has len(URL_PARAMS) fields).
MAX_LINK_FIELDS = 5000
#: Unknown link parameter names quoted in the message about them.
SHOWN_UNKNOWN = 3

ANGLE = ost.MAX_ANGLE_DEG
OFFSET = ost.MAX_CUT_OFFSET_MM
CUT_TILT = ost.MAX_CUT_TILT_DEG


def _angle(label: str, doc: str) -> param.Number:
    return param.Number(0.0, bounds=(-ANGLE, ANGLE), step=0.5, label=label, doc=doc)


class Plan(param.Parameterized):
    """Everything a user sets; parameter names are the URL query names."""

    case = param.Selector(default="normal", objects=list(CASE_CHOICES), doc="The hip shown.")
    side = param.Selector(default="left", objects=["left", "right"], doc="The hip's side.")
    tilt = param.Number(
        0.0,
        bounds=(-30.0, 30.0),
        step=0.5,
        label="Pelvic tilt (°, + posterior)",
        doc="Sagittal pelvic tilt of the measuring frame: 0 supine, a few degrees posterior "
        "standing.",
    )
    procedure = param.Selector(
        default="none", objects=list(PROCEDURE_CHOICES), doc="The pelvic osteotomy."
    )
    pao_lateral = _angle("Lateral turn (°)", "Turn of the fragment over the head: raises LCEA.")
    pao_anterior = _angle("Anterior turn (°)", "Turn forward: raises ACEA, lowers version.")
    pao_version = _angle("Version turn (°)", "Turn about the vertical axis: changes version.")
    pao_medial = param.Number(
        0.0, bounds=(-15.0, 40.0), step=0.5, label="Medial shift (mm)", doc="Shift of the fragment."
    )
    fem_varus = _angle("Varus (+) / valgus (−) (°)", "Intertrochanteric wedge: NSA changes by −α.")
    fem_flexion = _angle("Flexion (°)", "Turn of the shaft about the medio-lateral axis.")
    fem_rotation = _angle("Derotation (°)", "Turn of the shaft about its axis: femoral version.")
    fem_level = param.Number(
        0.0,
        bounds=(0.0, 150.0),
        step=1.0,
        label="Femoral cut level (mm below head centre, 0 = auto)",
        doc="0 places the cut 2.6 head radii below the head centre.",
    )
    cut_iliac = param.Number(0.0, bounds=(-OFFSET, OFFSET), step=0.5, label="Iliac cut offset (mm)")
    cut_retro = param.Number(
        0.0, bounds=(-OFFSET, OFFSET), step=0.5, label="Retro-acetabular offset (mm)"
    )
    cut_ischial = param.Number(
        0.0, bounds=(-OFFSET, OFFSET), step=0.5, label="Ischial cut offset (mm)"
    )
    cut_pubic = param.Number(0.0, bounds=(-OFFSET, OFFSET), step=0.5, label="Pubic cut offset (mm)")
    cut_iliac_tilt = param.Number(
        0.0, bounds=(-CUT_TILT, CUT_TILT), step=1.0, label="Iliac cut tilt (°)"
    )
    cut_retro_tilt = param.Number(
        0.0, bounds=(-CUT_TILT, CUT_TILT), step=1.0, label="Retro-acetabular tilt (°)"
    )
    cut_ischial_tilt = param.Number(
        0.0, bounds=(-CUT_TILT, CUT_TILT), step=1.0, label="Ischial cut tilt (°)"
    )
    cut_pubic_tilt = param.Number(
        0.0, bounds=(-CUT_TILT, CUT_TILT), step=1.0, label="Pubic cut tilt (°)"
    )
    cut_sphere = param.Number(
        0.0, bounds=(-8.0, 15.0), step=0.5, label="Spherical cut radius change (mm)"
    )
    mode1 = param.Number(0.0, bounds=(-3.0, 3.0), step=0.1, label="Shape mode 1 (SD)")
    mode2 = param.Number(0.0, bounds=(-3.0, 3.0), step=0.1, label="Shape mode 2 (SD)")
    mode3 = param.Number(0.0, bounds=(-3.0, 3.0), step=0.1, label="Shape mode 3 (SD)")
    mode4 = param.Number(0.0, bounds=(-3.0, 3.0), step=0.1, label="Shape mode 4 (SD)")
    mode5 = param.Number(0.0, bounds=(-3.0, 3.0), step=0.1, label="Shape mode 5 (SD)")
    mode = param.Selector(default="surgeon", objects=list(MODES), doc="What the page is for.")
    view = param.Selector(default="anterior", objects=list(VIEWS), doc="Camera preset.")
    load = param.Selector(
        default="none",
        objects=list(LOAD_CHOICES),
        doc="The load on the hip (hipviz --load names): contact pressure is shown when set.",
    )
    body_weight = param.Number(
        loads.DEFAULT_BODY_WEIGHT_KG,
        bounds=loads.BODY_WEIGHT_RANGE_KG,
        step=1.0,
        label="Body weight (kg)",
        doc="Scales the load.",
    )

    def reset_moves(self) -> None:
        """Every move, cut adjustment and the femoral level back to zero (one event batch)."""
        self.param.update(
            {k: self.param[k].default for k in (*MOVE_PARAMS, *CUT_PARAMS, "fem_level")}
        )

    def acetabular_move(self) -> ost.AcetabularMove:
        return ost.AcetabularMove(
            lateral_deg=self.pao_lateral,
            anterior_deg=self.pao_anterior,
            version_deg=self.pao_version,
            medial_mm=self.pao_medial,
        )

    def femoral_move(self) -> ost.FemoralMove:
        return ost.FemoralMove(
            varus_deg=self.fem_varus, flexion_deg=self.fem_flexion, rotation_deg=self.fem_rotation
        )

    def adjustments(self) -> ost.CutAdjustments:
        return ost.CutAdjustments(
            **{
                c: ost.CutAdjust(getattr(self, f"cut_{c}"), getattr(self, f"cut_{c}_tilt"))
                for c in CUTS
            },
            sphere_mm=self.cut_sphere,
        )

    def copy(self) -> Plan:
        """A detached copy (no watchers): the plan a worker thread builds while this one changes."""
        return type(self)(**{name: getattr(self, name) for name in URL_PARAMS})

    def shape_modes(self) -> tuple[float, ...]:
        return tuple(float(getattr(self, f"mode{i + 1}")) for i in range(N_SHAPE_SLIDERS))

    def query(self) -> dict[str, Any]:
        """The URL query of this plan: only values that differ from the defaults.

        One exception: ``procedure=none`` is written when fragment moves are
        set with no osteotomy, since a link whose moves have no ``procedure``
        opens the PAO (:func:`implied_procedure`).
        """
        out = {}
        for name in URL_PARAMS:
            value = getattr(self, name)
            if value != self.param[name].default:
                out[name] = value
        if self.procedure == "none" and any(k in out for k in PAO_PARAMS):
            out = {"procedure": "none", **out}
        return out

    def url_query(self) -> str:
        """:meth:`query` as the text after ``?`` in a link (``case=dysplastic&pao_lateral=20``)."""
        return urlencode(
            {k: f"{v:g}" if isinstance(v, float) else v for k, v in self.query().items()}
        )

    def apply_query(self, query: str | Mapping[str, Any] | Iterable[tuple[str, Any]]) -> list[str]:
        """Set the plan from a link's query; one short line per thing left out.

        Parameters
        ----------
        query : str or mapping or iterable of (name, value)
            The text after ``?`` in a link (``"case=dysplastic&pao_lateral=20"``,
            a leading ``?`` is allowed), or its fields already split.

        Returns
        -------
        list of str
            One line each, values quoted at most :data:`~hipviz.app.text.QUOTE_CHARS`
            characters long: an unknown name (more than :data:`SHOWN_UNKNOWN`
            of them: one line with their count), a value that is not a number
            where one belongs, not finite, out of a slider's range or not one
            of the choices, a name given more than once (its first value is
            the one read), and the fields after the first :data:`MAX_LINK_FIELDS`
            (counted, not read). What is left out does not stop the rest of
            the link applying, in one batch of events.
        """
        fields, unread = _link_fields(query)
        values, problems, unknown = {}, [], {}
        seen: dict[str, int] = {}
        for name, text in fields:
            if name not in URL_PARAMS:
                unknown.setdefault(name, None)
                continue
            seen[name] = seen.get(name, 0) + 1
            if seen[name] > 1:
                continue  # the first value is the one read
            p = self.param[name]
            try:
                value = float(text) if isinstance(p, param.Number) else str(text)
                if isinstance(value, float) and not math.isfinite(value):
                    raise ValueError("not a finite number")
                type(self)(**{name: value})  # param checks bounds and choices
            except (TypeError, ValueError, OverflowError):
                problems.append(f"link parameter {name}={quoted(text)} ignored: {_expected(p)}")
                continue
            values[name] = value
        if 0 < len(unknown) <= SHOWN_UNKNOWN:
            problems.extend(f"unknown link parameter {quoted(name)}" for name in unknown)
        elif unknown:
            names = ", ".join(quoted(name) for name in list(unknown)[:SHOWN_UNKNOWN])
            problems.append(f"{len(unknown)} unknown link parameters ignored ({names}, …)")
        problems.extend(
            f"link parameter {name} given {n} times: only the first is read"
            for name, n in seen.items()
            if n > 1
        )
        if unread:
            problems.append(
                f"{unread} more link parameters not read (a link is read up to its first "
                f"{MAX_LINK_FIELDS})"
            )
        given = {name for name, _ in fields}
        implied = implied_procedure(given, values)
        if implied is not None:
            values["procedure"] = implied
        self.param.update(values)
        problems.extend(link_conflicts(self, given))
        return problems


#: The moves of the pelvic fragment (they act only when an osteotomy is chosen).
PAO_PARAMS = tuple(k for k in MOVE_PARAMS if k.startswith("pao_"))
#: The cut roles each procedure's cuts are adjusted through (``cut_<role>``,
#: ``cut_<role>_tilt``; the rotational osteotomy's sphere through ``cut_sphere``).
_CUT_ROLE = {"salter_iliac": "iliac", "chiari": "iliac", "ischial_ramus": "ischial"}


def implied_procedure(given: Iterable[str], values: Mapping[str, Any]) -> str | None:
    """The procedure a link means without naming it: ``"pao"`` or None.

    A link with a fragment move (a non-zero ``pao_*``) and no ``procedure``
    field opens the PAO, so ``?case=dysplastic&pao_lateral=20`` shows the
    turn its author set. A ``procedure`` field, even one that could not be
    read, is never overridden.
    """
    if "procedure" in set(given):
        return None
    if any(values.get(k, 0.0) != 0.0 for k in PAO_PARAMS):
        return "pao"
    return None


def _cut_names(procedure: str) -> set[str]:
    """The ``cut_*`` link names that adjust ``procedure``'s cuts (none for ``"none"``)."""
    proc = ost.PROCEDURES.get(procedure)
    if proc is None:
        return set()
    roles = {_CUT_ROLE.get(c, c) for c in proc.cuts}
    names = {f"cut_{r}" for r in roles} | {f"cut_{r}_tilt" for r in roles}
    return names | ({"cut_sphere"} if proc.sphere else set())


def link_conflicts(plan: Plan, given: Iterable[str]) -> list[str]:
    """One line per group of a link's non-zero settings that the plan's procedure ignores.

    Parameters
    ----------
    plan : Plan
        The plan after the link applied.
    given : iterable of str
        The names the link carried (only those are reported: a setting the
        user made on the page is not the link's).

    Returns
    -------
    list of str
        At most two lines: fragment moves with no osteotomy
        (``procedure=none``), and cut adjustments the procedure has no cut for.
        Femoral moves act with any procedure (or none): never reported.
    """
    given = set(given)

    def nonzero(names: Iterable[str]) -> list[str]:
        return [k for k in names if k in given and getattr(plan, k) != 0.0]

    out = []
    moves = nonzero(PAO_PARAMS)
    if plan.procedure == "none" and moves:
        out.append(
            f"link parameters {', '.join(moves)} not applied: procedure=none (no pelvic "
            "osteotomy); choose a procedure to move the fragment"
        )
    cuts = [k for k in nonzero(CUT_PARAMS) if k not in _cut_names(plan.procedure)]
    if cuts:
        out.append(
            f"link parameters {', '.join(cuts)} not applied: procedure={plan.procedure} "
            "has no such cut"
        )
    return out


#: Analyses of the built-in bones, shared by the sessions (the landmark and
#: frame search is most of the second a new hip takes): key -> HipAnalysis.
_ANALYSES: dict[tuple, Any] = {}
_MAX_ANALYSES = 32


def _remember_analysis(key: tuple, analysis: Any) -> None:
    _ANALYSES.pop(key, None)
    _ANALYSES[key] = analysis  # newest last
    while len(_ANALYSES) > _MAX_ANALYSES:
        _ANALYSES.pop(next(iter(_ANALYSES)))


def _link_fields(
    query: str | Mapping[str, Any] | Iterable[tuple[str, Any]],
) -> tuple[list[tuple[str, Any]], int]:
    """The first MAX_LINK_FIELDS (name, value) fields of a query, and how many more it has.

    A query text is split on ``&`` and each side of ``=`` percent-decoded
    (``+`` is a space), keeping empty values; empty fields are skipped.
    """
    if isinstance(query, str):
        head = query[1:] if query.startswith("?") else query
        pieces = head.split("&", MAX_LINK_FIELDS)
        unread = 0
        if len(pieces) > MAX_LINK_FIELDS:
            rest = pieces.pop()
            unread = rest.count("&") + 1
        fields = []
        for piece in pieces:
            if piece:
                name, _, value = piece.partition("=")
                fields.append((unquote_plus(name), unquote_plus(value)))
        return fields, unread
    items = iter(query.items() if isinstance(query, Mapping) else query)
    fields = list(itertools.islice(items, MAX_LINK_FIELDS))
    return fields, sum(1 for _ in items)


def _expected(p: param.Parameter) -> str:
    if isinstance(p, param.Selector):
        return "one of " + ", ".join(map(str, p.objects))
    lo, hi = p.bounds
    return f"a number from {lo:g} to {hi:g}"


# --------------------------------------------------------------------------
# session folders: patients' files never outlive their session
# --------------------------------------------------------------------------

#: Folders of the sessions alive in this process.
_LIVE_FOLDERS: set[Path] = set()
# Re-entrant: a second stop signal may arrive while the first clean-up holds it.
_LIVE_LOCK = threading.RLock()


def session_base_dir() -> Path:
    """Where session folders are made: ``$HIPVIZ_SESSION_DIR``, else the temporary folder."""
    return Path(os.environ.get(SESSION_DIR_ENV) or tempfile.gettempdir())


def _process_start(pid: int) -> int | None:
    """The start time of process ``pid`` in clock ticks since boot (Linux), else None.

    With the pid it tells a process from a later one that reused its number.
    """
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
        return int(text.rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def _owner() -> dict[str, Any]:
    """What the marker records about this process."""
    pid = os.getpid()
    return {
        "app": "hipviz",
        "pid": pid,
        "start": _process_start(pid),
        "host": socket.gethostname(),
        "uid": os.getuid() if hasattr(os, "getuid") else None,
    }


def new_session_folder() -> Path:
    """A private folder (mode 0700) for one session's files, marked and registered.

    Raises
    ------
    InputError
        If the folder cannot be made (e.g. ``$HIPVIZ_SESSION_DIR`` is not writable).
    """
    base = session_base_dir()
    try:
        base.mkdir(parents=True, exist_ok=True)
        folder = Path(tempfile.mkdtemp(prefix=SESSION_PREFIX, dir=base))
        (folder / MARKER).write_text(json.dumps(_owner()))
    except OSError as exc:
        msg = (
            f"cannot make a session folder in {base} ({exc.strerror or exc}); "
            f"set {SESSION_DIR_ENV} to a writable folder"
        )
        raise InputError(msg) from None
    with _LIVE_LOCK:
        _LIVE_FOLDERS.add(folder)
    return folder


def remove_session_folder(folder: Path) -> None:
    """Delete a session folder and forget it."""
    shutil.rmtree(folder, ignore_errors=True)
    with _LIVE_LOCK:
        _LIVE_FOLDERS.discard(folder)


def remove_live_folders() -> int:
    """Delete the folders of every session of this process; return how many there were.

    Called when ``hipviz serve`` stops (Ctrl+C, SIGTERM, SIGHUP) and at exit.
    """
    with _LIVE_LOCK:
        folders = list(_LIVE_FOLDERS)
    for folder in folders:
        shutil.rmtree(folder, ignore_errors=True)
        # Forgotten only once gone: a second signal that interrupts this loop
        # (and exits at once) still finds every folder not yet deleted.
        with _LIVE_LOCK:
            _LIVE_FOLDERS.discard(folder)
    return len(folders)


atexit.register(remove_live_folders)


def _process_alive(pid: int, start: int | None) -> bool:
    """Whether the process that wrote a marker still runs (a reused pid does not count)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # someone else's process: it exists
    except OSError:
        return True  # cannot tell: keep the folder
    now = _process_start(pid)
    return start is None or now is None or now == start


def _stale_owner(folder: Path) -> bool:
    """True when ``folder`` is a hipviz session folder whose process is gone.

    Only a real directory (not a link) owned by this user, holding a regular
    marker file that names a process of this host which no longer runs.
    """
    try:
        info = os.lstat(folder)
        if not stat.S_ISDIR(info.st_mode):
            return False
        if hasattr(os, "getuid") and info.st_uid != os.getuid():
            return False
        marker = folder / MARKER
        if not stat.S_ISREG(os.lstat(marker).st_mode):
            return False
        owner = json.loads(marker.read_text())
    except (OSError, ValueError):
        return False
    if not isinstance(owner, dict) or owner.get("app") != "hipviz":
        return False
    if owner.get("host") != socket.gethostname():
        return False  # a shared temporary folder: that host's processes are not visible here
    pid = owner.get("pid")
    if isinstance(pid, bool) or not isinstance(pid, int) or pid <= 0:
        return False
    start = owner.get("start")
    return not _process_alive(pid, start if isinstance(start, int) else None)


def remove_stale_folders(base: Path | None = None) -> list[Path]:
    """Delete session folders that a stopped or crashed hipviz process left behind.

    Only folders named ``hipviz-session-*`` holding hipviz's marker, owned by
    this user, whose process is no longer running; anything else is left as
    it is. Returns the folders removed.
    """
    base = session_base_dir() if base is None else Path(base)
    removed = []
    try:
        candidates = sorted(base.glob(f"{SESSION_PREFIX}*"))
    except OSError:
        return removed
    for folder in candidates:
        if _stale_owner(folder):
            shutil.rmtree(folder, ignore_errors=True)
            if not folder.exists():
                removed.append(folder)
    return removed


@dataclass
class Upload:
    """A user's pelvis and femur files, stored in the session's temporary folder."""

    pelvis: Path
    femur: Path
    pelvis_name: str
    femur_name: str
    pelvis_labels: tuple[int, ...] | None = None
    femur_labels: tuple[int, ...] | None = None


def websocket_max_message_bytes(max_upload_mb: float = MAX_UPLOAD_MB) -> int:
    """The largest websocket message the server accepts, bytes.

    The browser sends a chosen file in one message, as base64 text (4
    characters per 3 bytes) inside a small JSON patch: the limit is the
    largest allowed file so encoded, plus :data:`UPLOAD_MESSAGE_OVERHEAD`.
    A bigger message makes the server close the page's connection.
    """
    return 4 * math.ceil(max_upload_mb * 1e6 / 3) + UPLOAD_MESSAGE_OVERHEAD


def upload_bytes(data: bytes | str | None) -> bytes | None:
    """An uploaded file's content: ``data`` as received (bytes, or the base64 text
    the browser sends), decoded. Slow for a big file (about 0.3 s for 60 MB):
    call it in a worker thread, not on the server's event loop."""
    if data is None or isinstance(data, bytes):
        return data
    try:
        return base64.b64decode(data, validate=True)
    except ValueError:
        msg = "the file did not arrive whole (its encoding is broken); choose it again"
        raise InputError(msg) from None


def check_upload_name(name: str) -> str:
    """The lower-case suffix of an uploaded file's name, or InputError."""
    low = name.lower()
    for suffix in UPLOAD_SUFFIXES:
        if low.endswith(suffix):
            return suffix
    msg = (
        f"{clamp(name, NAME_CHARS)}: not a mesh or label map "
        f"(expected one of {', '.join(UPLOAD_SUFFIXES)})"
    )
    raise InputError(msg)


def parse_labels(text: str, what: str) -> tuple[int, ...] | None:
    """``"1, 2"`` -> (1, 2); empty -> None; anything else -> InputError."""
    text = (text or "").strip()
    if not text:
        return None
    try:
        labels = tuple(int(v) for v in text.replace(" ", "").split(",") if v)
    except ValueError:
        msg = f"{what} labels must be whole numbers separated by commas, got {quoted(text)}"
        raise InputError(msg) from None
    if not labels or any(v <= 0 for v in labels):
        msg = f"{what} labels must be positive, got {quoted(text)}"
        raise InputError(msg)
    return labels


@dataclass(eq=False)
class ReadHip:
    """An uploaded pelvis and femur, read and analysed (:func:`read_upload`).

    Attributes
    ----------
    pelvis, femur : trimesh.Trimesh
        Closed surfaces in mm, in the files' own axes.
    analysis : HipAnalysis or HipvizError
        Landmarks, frame and measures for ``tilt_deg``
        (:func:`hipviz.hip.analyze`, as :class:`hipviz.simulate.Simulation`
        calls it), or why they could not be found (building the hip raises it,
        rather than searching the same bones again).
    tilt_deg : float
        Pelvic tilt the analysis is for, degrees.
    femur_exit_mm : (n,) float or None
        The whole femur's :meth:`hipviz.simulate.Simulation.femur_exit_mm`
        with this analysis (a second of ray casting for a big femur, done here too).
    reader_pid : int
        The process that read them (the server's own, or a child's).
    """

    pelvis: Any
    femur: Any
    analysis: Any
    tilt_deg: float
    femur_exit_mm: Any
    reader_pid: int


def read_upload(
    upload: Upload,
    limits: io.Limits,
    *,
    tilt_deg: float = 0.0,
    progress: Callable[[str], Any] | None = None,
) -> ReadHip:
    """Load an uploaded pair (mm, closed) and analyse it: the slow part of an upload.

    Seconds for a 60 MB mesh, all of it Python and numpy: the server runs it
    in a child process (:func:`hipviz.app.workers.run_in_child`); its
    arguments and result pickle.

    Raises
    ------
    HipvizError
        A file that cannot be read, is over a limit, or is not closed: one line
        naming the file.
    """
    meshes = {}
    for role in ("pelvis", "femur"):
        shown = clamp(getattr(upload, f"{role}_name"), NAME_CHARS)  # as messages quote it
        if progress is not None:
            size_mb = getattr(upload, role).stat().st_size / 1e6
            progress(f"reading {shown} ({size_mb:.1f} MB)…")
        loaded = io.load_mesh(
            getattr(upload, role),
            labels=getattr(upload, f"{role}_labels"),
            name=shown,
            limits=limits,
        )
        if not loaded.watertight:
            msg = (
                f"{shown}: the surface is not closed "
                "(watertight); an osteotomy needs closed bone surfaces"
            )
            raise InputError(msg)
        meshes[role] = loaded.mesh
    if progress is not None:
        progress("finding the landmarks and frame of your hip…")
    exits = None
    try:
        sim = Simulation(meshes["pelvis"], meshes["femur"], side="auto", tilt_deg=tilt_deg)
        analysis, exits = sim.analysis, sim.femur_exit_mm()
    except HipvizError as exc:  # building the hip says why
        analysis = exc
    return ReadHip(meshes["pelvis"], meshes["femur"], analysis, tilt_deg, exits, os.getpid())


def _check_role(role: str) -> None:
    if role not in ("pelvis", "femur"):
        msg = f"role must be 'pelvis' or 'femur', got {role!r}"
        raise InputError(msg)


#: Files still arriving are ``<session folder>/incoming-<role>-<n><suffix>``.
INCOMING_PREFIX = "incoming-"
_INCOMING_IDS = itertools.count(1)


class Incoming:
    """An uploaded file arriving in pieces, written as they come.

    The browser sends a chosen file in pieces of about a megabyte, each
    acknowledged before the next but one is sent: the server's event loop
    takes each in well under a millisecond, so a 60 MB upload never stops
    it for long, and no message is bigger than a piece. Pieces must come in
    order and add up to the size announced; anything else is refused.

    Parameters
    ----------
    path : Path
        Where the file is written (created empty now).
    name : str
        The file's name as the user gave it (for messages).
    size : int
        The size announced, bytes (checked against the upload limit by
        :meth:`HipSession.receive`).
    """

    def __init__(self, path: Path, name: str, size: int):
        self.path, self.name, self.size = path, name, size
        self.received = 0
        path.write_bytes(b"")

    def write(self, offset: int, data: bytes) -> None:
        """Append the piece that starts at byte ``offset``."""
        if not isinstance(data, bytes | bytearray | memoryview):
            msg = f"{clamp(self.name, NAME_CHARS)}: a piece of the file arrived without data"
            raise InputError(msg)
        if offset != self.received or self.received + len(data) > self.size:
            msg = (
                f"{clamp(self.name, NAME_CHARS)}: the file did not arrive whole "
                "(a piece came out of order or past its size); choose it again"
            )
            raise InputError(msg)
        with open(self.path, "ab") as f:
            f.write(data)
        self.received += len(data)

    def finish(self) -> Path:
        """The whole file's path; InputError if pieces are missing."""
        if self.received != self.size:
            msg = (
                f"{clamp(self.name, NAME_CHARS)}: the file did not arrive whole "
                f"({self.received} of {self.size} bytes); choose it again"
            )
            raise InputError(msg)
        return self.path

    def discard(self) -> None:
        """Delete what arrived (a new file was chosen, or an error)."""
        self.path.unlink(missing_ok=True)


class HipSession:
    """One browser session's hip: its files, its simulation, its last outcome.

    Files live in a private folder (:func:`new_session_folder`) removed by
    :meth:`close`, or with every other session's when the process stops.
    Uploads are checked against ``limits`` (file size, triangles, voxels,
    decompressed data); by default those of :class:`hipviz.io.Limits` with
    :data:`MAX_UPLOAD_MB` per file.
    """

    def __init__(self, subdivisions: int = 8, limits: io.Limits | None = None):
        self.subdivisions = subdivisions
        self._limits = limits
        self.folder = new_session_folder()
        self.upload: Upload | None = None
        self._uploaded: dict = {}
        # (tilt, analysis, femur exits) of the upload, as read
        self._upload_analysis: tuple[float, Any, Any] = (0.0, None, None)
        self.sim: Simulation | None = None
        self.outcome: Outcome | None = None
        self.source = ""
        self._anatomy_key: tuple | None = None
        self._cut_key: tuple | None = None
        self._femur_key: tuple | None = None
        #: Held while the bones change or are measured (measures run off the event loop).
        self.lock = threading.RLock()

    @property
    def limits(self) -> io.Limits:
        """The limits uploads are checked against."""
        return self._limits or io.Limits(max_file_mb=MAX_UPLOAD_MB)

    # ------------------------------------------------------------ files

    def receive(self, role: str, name: str, size: int) -> Incoming:
        """Start receiving an uploaded file of ``size`` bytes in pieces (:class:`Incoming`).

        Name, type and size are checked before a byte is written: a file
        over the limit is refused on the line that announces it.
        """
        _check_role(role)
        suffix = check_upload_name(name)
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            msg = f"{clamp(name, NAME_CHARS)}: the browser gave no usable file size"
            raise InputError(msg)
        self._check_size(name, size)
        path = self.folder / f"{INCOMING_PREFIX}{role}-{next(_INCOMING_IDS)}{suffix}"
        return Incoming(path, name, size)

    def check_file(self, role: str, name: str, data: bytes | str | Path | None) -> str:
        """What :meth:`store` checks (role, type, empty, size), without keeping anything;
        the name's suffix.

        ``data`` may also be the base64 text a browser sent (its size is then
        that of the bytes it holds, within 2 bytes) or None (no file: empty).
        """
        _check_role(role)
        suffix = check_upload_name(name)
        if isinstance(data, Path):
            size = data.stat().st_size
        elif isinstance(data, str):
            size = len(data) * 3 // 4
        else:
            size = len(data or b"")
        if not size:
            msg = f"{clamp(name, NAME_CHARS)}: the file is empty"
            raise InputError(msg)
        self._check_size(name, size)
        return suffix

    def store(self, role: str, name: str, data: bytes | Path) -> Path:
        """Make an uploaded file the session's ``role`` file; check size and type first.

        ``data`` is the file's content, or a file that arrived whole in this
        session's folder (:meth:`receive`; moved, not copied), or any other
        file (copied).
        """
        suffix = self.check_file(role, name, data)
        path = self.folder / f"{role}{suffix}"
        for old in self.folder.glob(f"{role}.*"):
            old.unlink()
        if not isinstance(data, Path):
            path.write_bytes(data)
        elif data.parent == self.folder and data.name.startswith(INCOMING_PREFIX):
            os.replace(data, path)
        else:
            shutil.copyfile(data, path)
        return path

    def _check_size(self, name: str, size: int) -> None:
        cap_mb = self.limits.max_file_mb
        if size > cap_mb * 1e6:
            msg = (
                f"{clamp(name, NAME_CHARS)}: {size_over(size, cap_mb)} is over the {cap_mb:g} MB "
                "upload limit (raise it with hipviz serve --max-file-mb)"
            )
            raise InputError(msg)

    def load_upload(
        self,
        upload: Upload,
        progress: Callable[[str], Any] | None = None,
        *,
        tilt_deg: float = 0.0,
        in_child: bool = False,
    ) -> ReadHip:
        """Check the uploaded pair loads (mm, closed) and make it this session's hip; what was read.

        The pair is also analysed (landmarks and frame, for ``tilt_deg``), so
        building the hip next (:meth:`prepare`) does not do it again.
        ``progress`` (optional) is told, in words, which file is being read.
        ``in_child``: read in a child process (:func:`~hipviz.app.workers.run_in_child`),
        as a served page does, so the server's other pages go on meanwhile.
        """
        if in_child:
            read = workers.run_in_child(
                read_upload, upload, self.limits, tilt_deg=tilt_deg, progress=progress
            )
        else:
            read = read_upload(upload, self.limits, tilt_deg=tilt_deg, progress=progress)
        self.upload = upload
        self._uploaded = {"pelvis": read.pelvis, "femur": read.femur}
        self._upload_analysis = (read.tilt_deg, read.analysis, read.femur_exit_mm)
        self._anatomy_key = None
        return read

    # ------------------------------------------------------------ compute

    def _meshes(self, plan: Plan):
        if plan.case == UPLOAD:
            if self.upload is None:
                msg = "upload a pelvis and a femur first"
                raise InputError(msg)
            pelvis, femur = (
                clamp(n, NAME_CHARS) for n in (self.upload.pelvis_name, self.upload.femur_name)
            )
            self.source = f"your files: {pelvis} + {femur}"
            return self._uploaded["pelvis"], self._uploaded["femur"], "auto"
        if plan.case == BUILTIN:
            modes = plan.shape_modes()
            hip = builtin_hip(modes, side=plan.side, subdivisions=self.subdivisions)
            shown = ", ".join(f"{v:+.1f}" for v in modes) if any(modes) else "mean shape"
            self.source = f"built-in anatomy (LLP26 shape model, {shown})"
        else:
            hip = cases.case_hip(plan.case, side=plan.side, subdivisions=self.subdivisions)
            self.source = f"teaching case: {cases.CASES[plan.case].title} (synthetic)"
        return hip.pelvis, hip.femur, plan.side

    def _keys(self, plan: Plan) -> tuple[tuple, tuple, tuple]:
        """What the bones, the pelvic cut and the femoral cut of ``plan`` depend on."""
        anatomy = (
            plan.case,
            plan.side,
            plan.tilt,
            plan.shape_modes() if plan.case == BUILTIN else (),
            id(self.upload) if plan.case == UPLOAD else None,
        )
        cut_key = (plan.procedure, plan.adjustments().validate())
        femoral = plan.femoral_move().validate()
        level = plan.fem_level or None
        femur_key = (not femoral.is_identity or level is not None, level)
        return anatomy, cut_key, femur_key

    def pending(self, plan: Plan) -> set[str]:
        """What :meth:`prepare` would build for ``plan``, without building it.

        Empty for a move only (fast: the view's event loop does it); else
        ``"anatomy"`` (new bones, seconds), ``"cut"`` or ``"femur"`` (new
        pieces, tens of ms), which the app builds in a worker thread.

        Raises
        ------
        HipvizError
            A cut adjustment or move out of range.
        """
        anatomy, cut_key, femur_key = self._keys(plan)
        if self.sim is None or anatomy != self._anatomy_key:
            return {"anatomy", "cut", "femur"}
        out = set()
        if cut_key != self._cut_key:
            out.add("cut")
        if femur_key != self._femur_key:
            out.add("femur")
        return out

    def prepare(self, plan: Plan) -> set[str]:
        """Bring the bones and cuts up to ``plan`` (not the move); return what changed.

        The set holds ``"anatomy"`` (new bones), ``"cut"`` (new pelvic pieces)
        and ``"femur"`` (new femoral pieces).

        Raises
        ------
        HipvizError
            With a one-line message for the user; the previous state is kept.
        """
        anatomy, cut_key, femur_key = self._keys(plan)
        if self.sim is not None and (anatomy, cut_key, femur_key) == (
            self._anatomy_key,
            self._cut_key,
            self._femur_key,
        ):
            return set()  # a move only: no lock, so a running measure does not hold it up
        level = femur_key[1]
        changed: set[str] = set()
        with self.lock:  # a measure may be reading the bones in another thread
            if anatomy != self._anatomy_key or self.sim is None:
                pelvis, femur, side = self._meshes(plan)
                shared = plan.case != UPLOAD  # the same bones for every session
                key = (*anatomy, self.subdivisions)
                analysis, exits = _ANALYSES.get(key), None
                if not shared:  # analysed as it was read, for the tilt of then
                    tilt, analysis, exits = self._upload_analysis
                    if tilt != plan.tilt:
                        analysis = exits = None
                    elif isinstance(analysis, HipvizError):
                        raise type(analysis)(str(analysis))
                self.sim = Simulation(
                    pelvis,
                    femur,
                    side=side,
                    tilt_deg=plan.tilt,
                    analysis=analysis,
                    femur_exit_mm=exits,
                )
                if shared:
                    _remember_analysis(key, self.sim.analysis)
                self._anatomy_key = anatomy
                self._cut_key = self._femur_key = None
                self.outcome = None
                changed |= {"anatomy", "cut", "femur"}
            sim = self.sim
            if cut_key != self._cut_key:
                if plan.procedure == "none":
                    sim.uncut()
                else:
                    sim.cut(plan.procedure, cut_key[1])
                self._cut_key = cut_key
                changed.add("cut")
            if femur_key != self._femur_key:
                if femur_key[0]:
                    sim.cut_femur(level)
                else:
                    sim.uncut_femur()
                self._femur_key = femur_key
                changed.add("femur")
        return changed

    def moves(self, plan: Plan) -> tuple[ost.AcetabularMove, ost.FemoralMove]:
        """The plan's pelvic and femoral moves (a still pelvis when nothing is cut)."""
        acetabular = plan.acetabular_move()
        if plan.procedure == "none":
            acetabular = ost.AcetabularMove()
        return acetabular, plan.femoral_move()

    def transforms(self, plan: Plan) -> dict[str, Any]:
        """Where the plan's move puts each piece (no measuring): the picture's fast path."""
        return self.sim.transforms(*self.moves(plan))

    def measure(self, plan: Plan) -> Outcome:
        """Move and re-measure everything (about 15-20 ms); the result is :attr:`outcome`."""
        return self.measure_moves(*self.moves(plan))

    def measure_moves(self, acetabular: ost.AcetabularMove, femoral: ost.FemoralMove) -> Outcome:
        """:meth:`measure` for moves taken from a plan earlier.

        Safe to run in a worker thread while the plan goes on changing: the
        moves are plain values, and the bones are locked against a new cut.
        """
        with self.lock:
            self.outcome = self.sim.move(acetabular, femoral)
            return self.outcome

    def update(self, plan: Plan) -> set[str]:
        """:meth:`prepare` then :meth:`measure`; the set also holds ``"move"``."""
        changed = self.prepare(plan)
        self.measure(plan)
        return changed | {"move"}

    def close(self) -> None:
        """Delete the session's files and let go of its bones (memory for other sessions)."""
        remove_session_folder(self.folder)
        self.upload = None
        self._uploaded = {}
        self._upload_analysis = (0.0, None, None)
        self.sim = self.outcome = None
        self._anatomy_key = self._cut_key = self._femur_key = None


@dataclass(eq=False)
class PageState:
    """What the parts of one page share: its plan, its session, and where they stand.

    Each component of the page (controls, scene driver, modes, exports) is
    given this one object, so none holds a copy that could fall behind.

    Attributes
    ----------
    plan : Plan
        What the user set; the widgets write it, the page follows it.
    session : HipSession
        The hip the plan is computed on.
    doc : bokeh.document.Document or None
        The served page's document: builds and measures run in worker
        threads and come back through it. None outside a server (a notebook,
        tests): everything runs in the caller's thread.
    loading : bool
        New bones or pieces are being built: what the session holds is about
        to be replaced, so nothing is drawn from it meanwhile.
    """

    plan: Plan
    session: HipSession
    doc: Any = None
    loading: bool = False


__all__ = [
    "BUILTIN",
    "CASE_CHOICES",
    "LOAD_CHOICES",
    "HipSession",
    "MARKER",
    "MODES",
    "PROCEDURE_CHOICES",
    "PageState",
    "Plan",
    "UPLOAD",
    "URL_PARAMS",
    "Upload",
    "implied_procedure",
    "link_conflicts",
    "check_upload_name",
    "new_session_folder",
    "parse_labels",
    "remove_live_folders",
    "remove_session_folder",
    "remove_stale_folders",
    "session_base_dir",
    "upload_bytes",
    "websocket_max_message_bytes",
    "Incoming",
    "ReadHip",
    "read_upload",
]
