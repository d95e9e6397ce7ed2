"""The app's model without a browser: Plan (the URL) and HipSession (compute, files)."""

from __future__ import annotations

import base64
import os

import numpy as np
import pytest

pytest.importorskip("param")

from hipviz import osteotomy as ost  # noqa: E402
from hipviz.app import state  # noqa: E402
from hipviz.app.state import (  # noqa: E402
    CUT_PARAMS,
    MOVE_PARAMS,
    URL_PARAMS,
    HipSession,
    Plan,
    Upload,
    check_upload_name,
    parse_labels,
)
from hipviz.errors import HipvizError, InputError  # noqa: E402

#: Coarse bones keep the module quick; the measures below still behave.
SUBDIVISIONS = 6


@pytest.fixture(scope="module")
def dysplastic():
    """A session already holding the dysplastic teaching case (its anatomy built once)."""
    session = HipSession(subdivisions=SUBDIVISIONS)
    session.update(Plan(case="dysplastic"))
    yield session
    session.close()


@pytest.fixture
def session():
    s = HipSession(subdivisions=SUBDIVISIONS)
    yield s
    s.close()


def files(session: HipSession) -> list[str]:
    """Names of the files a session keeps (its folder's marker aside)."""
    return sorted(p.name for p in session.folder.iterdir() if p.name != state.MARKER)


def one_line(err: pytest.ExceptionInfo) -> str:
    text = str(err.value)
    assert text and "\n" not in text, repr(text)
    return text


# --- Plan ------------------------------------------------------------------


def test_plan_defaults():
    plan = Plan()
    assert (plan.case, plan.side, plan.procedure) == ("normal", "left", "none")
    assert (plan.mode, plan.view, plan.tilt, plan.fem_level) == ("surgeon", "anterior", 0, 0)
    for name in (*MOVE_PARAMS, *CUT_PARAMS):
        assert getattr(plan, name) == 0, name
    assert plan.shape_modes() == (0.0,) * state.N_SHAPE_SLIDERS
    assert plan.acetabular_move().is_identity
    assert plan.femoral_move().is_identity


def test_url_params_are_exactly_the_plan_parameters():
    assert len(set(URL_PARAMS)) == len(URL_PARAMS), "a URL parameter is listed twice"
    assert set(URL_PARAMS) == set(Plan.param) - {"name"}


def test_plan_bounds_refuse_absurd_values():
    plan = Plan()
    lo, hi = plan.param.pao_lateral.bounds
    assert (lo, hi) == (-ost.MAX_ANGLE_DEG, ost.MAX_ANGLE_DEG)
    assert hi < 90
    with pytest.raises(ValueError):
        Plan(pao_lateral=90)
    with pytest.raises(ValueError):
        plan.pao_lateral = 90
    with pytest.raises(ValueError):
        plan.fem_varus = -90
    with pytest.raises(ValueError):
        plan.pao_medial = 100
    with pytest.raises(ValueError):
        plan.case = "no-such-case"
    with pytest.raises(ValueError):
        plan.procedure = "hip replacement"
    assert plan.pao_lateral == 0 and plan.case == "normal"  # refused values leave no trace
    plan.pao_lateral = hi  # the bound itself is allowed
    assert plan.pao_lateral == hi


def test_query_lists_only_non_defaults():
    plan = Plan()
    assert plan.query() == {}
    plan.param.update(case="dysplastic", procedure="pao", pao_lateral=20.0, pao_medial=3.0)
    assert plan.query() == {
        "case": "dysplastic",
        "procedure": "pao",
        "pao_lateral": 20.0,
        "pao_medial": 3.0,
    }
    plan.pao_medial = 0.0
    assert "pao_medial" not in plan.query()
    assert set(Plan(**plan.query()).query()) == set(plan.query())  # the link round-trips


def test_link_round_trips_through_the_query_string():
    from urllib.parse import parse_qsl

    plan = Plan(case="dysplastic", procedure="pao", pao_lateral=20.0, pao_medial=2.5)
    assert plan.url_query() == "case=dysplastic&procedure=pao&pao_lateral=20&pao_medial=2.5"
    again = Plan()
    assert again.apply_query(dict(parse_qsl(plan.url_query()))) == []
    assert again.query() == plan.query()


def test_bad_link_values_are_reported_and_the_rest_applies():
    plan = Plan()
    events = []
    plan.param.watch(lambda *e: events.append(e), list(URL_PARAMS))
    problems = plan.apply_query(
        {
            "case": "dysplastic",
            "pao_lateral": "12.5",
            "pao_anterior": "nan",
            "fem_varus": "1e9",
            "pao_medial": "three",
            "side": "middle",
            "bogus": "1",
        }
    )
    assert (plan.case, plan.pao_lateral) == ("dysplastic", 12.5)
    assert (plan.pao_anterior, plan.fem_varus, plan.pao_medial, plan.side) == (0, 0, 0, "left")
    assert len(events) == 1, "the good values should arrive as one batch"
    assert len(problems) == 5
    joined = "\n".join(problems)
    for word in ("pao_anterior", "fem_varus", "pao_medial", "side", "bogus", "left, right"):
        assert word in joined
    assert all("\n" not in p for p in problems)


def test_a_move_does_not_wait_for_a_running_measure(dysplastic):
    """prepare() for a pure move must not take the lock a worker's measure holds."""
    import threading
    import time

    plan = Plan(case="dysplastic")
    dysplastic.update(plan)
    plan.pao_lateral = 5.0  # no cut: a move only
    taken, release = threading.Event(), threading.Event()

    def hold():
        with dysplastic.lock:
            taken.set()
            release.wait(5)  # a prepare() that takes the lock waits this long

    worker = threading.Thread(target=hold)
    worker.start()
    taken.wait(10)
    try:
        start = time.perf_counter()
        assert dysplastic.prepare(plan) == set()
        tfs = dysplastic.transforms(plan)
        waited = time.perf_counter() - start
    finally:
        release.set()
        worker.join()
    assert waited < 2.0, f"a move waited {waited:.1f} s for the measure's lock"
    assert tfs and all(np.shape(tf) == (4, 4) for tf in tfs.values())


def test_pending_names_what_prepare_builds(session):
    """pending() predicts prepare() without building: what goes to a worker thread."""
    plan = Plan(case="dysplastic")
    assert session.pending(plan) == {"anatomy", "cut", "femur"}
    assert session.sim is None, "pending() built something"
    steps = [
        {},  # the first build
        {"pao_lateral": 5.0},  # a move only: nothing to build
        {"procedure": "pao"},  # a new pelvic cut
        {"cut_iliac": 4.0},  # the cut moved
        {"pao_lateral": -5.0, "pao_medial": 2.0},  # moves only
        {"fem_varus": 5.0},  # the first femoral move cuts the femur
        {"fem_varus": 10.0},  # later ones only move it
        {"side": "right"},  # new bones
    ]
    for change in steps:
        plan.param.update(change)
        predicted = session.pending(plan)
        assert session.prepare(plan) == predicted, change
        assert session.pending(plan) == set(), change


def test_plan_copy_is_detached():
    plan = Plan(case="borderline", procedure="pao", pao_lateral=12.5, mode="student")
    seen = []
    plan.param.watch(lambda e: seen.append(e.name), list(URL_PARAMS))
    copy = plan.copy()
    assert copy is not plan and copy.query() == plan.query()
    copy.param.update(case="upload", pao_lateral=-3.0)
    assert plan.case == "borderline" and plan.pao_lateral == 12.5
    assert seen == [], "changing the copy reached the plan's watchers"


def test_upload_bytes_decodes_what_the_browser_sends():
    data = bytes(range(256)) * 50
    assert state.upload_bytes(base64.b64encode(data).decode()) == data
    assert state.upload_bytes(data) is data  # bytes pass through
    assert state.upload_bytes(None) is None
    with pytest.raises(InputError, match="choose it again") as err:
        state.upload_bytes("not base64 at all!")
    one_line(err)


def test_websocket_limit_fits_the_largest_upload_and_not_more():
    """The server's message limit and the page's size check are one constant."""
    import json

    limit = state.websocket_max_message_bytes(state.MAX_UPLOAD_MB)
    largest = int(state.MAX_UPLOAD_MB * 1e6)

    def message(n_bytes: int) -> int:
        """Length of the PATCH-DOC content a browser sends for a file of n_bytes."""
        text = "A" * (4 * -(-n_bytes // 3))  # base64 length, padding included
        events = [
            {"kind": "ModelChanged", "model": {"id": "p1234"}, "attr": "value", "new": text},
            {
                "kind": "ModelChanged",
                "model": {"id": "p1234"},
                "attr": "mime_type",
                "new": "x" * 255,
            },
            {
                "kind": "ModelChanged",
                "model": {"id": "p1234"},
                "attr": "filename",
                "new": "é" * 255,
            },
        ]
        return len(json.dumps({"events": events}).encode())

    assert message(largest) <= limit
    assert message(largest + 100_000) > limit  # 0.1 MB over the cap does not fit
    assert state.websocket_max_message_bytes(10) < limit


def test_load_upload_says_which_file_it_reads(session):
    from hipviz.anatomy import builtin_hip

    hip = builtin_hip(side="left", subdivisions=SUBDIVISIONS)
    paths = {
        role: session.store(role, f"my_{role}.stl", getattr(hip, role).export(file_type="stl"))
        for role in ("pelvis", "femur")
    }
    said = []
    upload = Upload(paths["pelvis"], paths["femur"], "my_pelvis.stl", "my_femur.stl")
    session.load_upload(upload, progress=said.append)
    sizes = [paths[r].stat().st_size / 1e6 for r in ("pelvis", "femur")]
    assert said == [
        f"reading my_pelvis.stl ({sizes[0]:.1f} MB)…",
        f"reading my_femur.stl ({sizes[1]:.1f} MB)…",
        "finding the landmarks and frame of your hip…",
    ]


def test_an_upload_read_in_a_child_process_is_the_same_hip(session, tmp_path):
    """A served page reads an upload in a child process (the server's other pages
    go on meanwhile): the same words as it reads, and the same hip, measured the
    same to the last digit, as when read in this process."""
    from hipviz.anatomy import builtin_hip

    hip = builtin_hip(side="right", subdivisions=SUBDIVISIONS)
    paths = {
        role: session.store(role, f"my_{role}.stl", getattr(hip, role).export(file_type="stl"))
        for role in ("pelvis", "femur")
    }
    upload = Upload(paths["pelvis"], paths["femur"], "my_pelvis.stl", "my_femur.stl")
    plan = Plan(case="upload", procedure="pao", pao_lateral=18.0, tilt=5.0)
    results = {}
    for in_child in (False, True):
        s = HipSession(subdivisions=SUBDIVISIONS)
        try:
            said = []
            read = s.load_upload(upload, progress=said.append, tilt_deg=5.0, in_child=in_child)
            assert (read.reader_pid != os.getpid()) is in_child
            assert read.analysis is not None and read.tilt_deg == 5.0
            assert said[-1] == "finding the landmarks and frame of your hip…", said
            s.update(plan)
            results[in_child] = (said, s.outcome.as_dict())
            # the analysis made as the files were read is the one the hip is built on
            assert s.sim.analysis is s._upload_analysis[1]
            # and so are the femur's exit distances: its rays are not cast again
            assert s.sim._whole_femur_exit is not None
            assert s.sim.femur_exit_mm() is s.sim._whole_femur_exit
            np.testing.assert_array_equal(s.sim.femur_exit_mm(), read.femur_exit_mm)
        finally:
            s.close()
    assert results[True] == results[False]


def test_an_upload_that_kills_its_reader_gets_one_line():
    """A reader process that dies (out of memory, killed) is one clear line, not a hang."""
    from hipviz.app import workers

    with pytest.raises(HipvizError, match="stopped without an answer"):
        workers.run_in_child(os._exit, 3)


def test_closing_a_session_lets_go_of_its_hip():
    s = HipSession(subdivisions=SUBDIVISIONS)
    s.update(Plan(case="dysplastic"))
    assert s.sim is not None and s.outcome is not None
    s.close()
    assert s.sim is None and s.outcome is None and s.upload is None
    assert s.pending(Plan(case="dysplastic")) == {"anatomy", "cut", "femur"}


def test_sessions_share_the_analysis_of_builtin_bones(dysplastic):
    other = HipSession(subdivisions=SUBDIVISIONS)
    try:
        other.prepare(Plan(case="dysplastic"))
        assert other.sim.analysis is dysplastic.sim.analysis
        assert other.sim is not dysplastic.sim  # but cut and moved on their own
    finally:
        other.close()


def test_reset_moves_zeroes_moves_and_cuts_only():
    plan = Plan(case="dysplastic", procedure="pao", tilt=5.0, view="lateral")
    plan.param.update(
        pao_lateral=15.0, pao_version=-4.0, fem_varus=10.0, cut_iliac=2.0, fem_level=60.0
    )
    events = []
    plan.param.watch(lambda *e: events.append(e), list(URL_PARAMS))
    plan.reset_moves()
    assert len(events) == 1, "reset_moves should be one batch of events"
    assert plan.query() == {
        "case": "dysplastic",
        "procedure": "pao",
        "tilt": 5.0,
        "view": "lateral",
    }


# --- HipSession: what an update redoes ------------------------------------


def test_update_reports_what_changed(session):
    plan = Plan(case="dysplastic")
    assert session.update(plan) == {"anatomy", "cut", "femur", "move"}
    assert session.update(plan) == {"move"}
    plan.procedure = "pao"
    assert session.update(plan) == {"cut", "move"}
    plan.pao_lateral = 10.0
    assert session.update(plan) == {"move"}
    plan.cut_iliac = 2.0
    assert session.update(plan) == {"cut", "move"}
    plan.fem_varus = 10.0
    assert session.update(plan) == {"femur", "move"}
    plan.fem_varus = 12.0
    assert session.update(plan) == {"move"}
    assert "teaching case" in session.source


def test_lateral_turn_raises_lcea_by_the_turn(dysplastic):
    plan = Plan(case="dysplastic", procedure="pao")
    dysplastic.update(plan)
    before = dysplastic.outcome.before["lcea_deg"]
    assert before < 20, "the dysplastic case should have a low LCEA"
    plan.pao_lateral = 15.0
    assert dysplastic.update(plan) == {"move"}
    out = dysplastic.outcome
    assert out.before["lcea_deg"] == pytest.approx(before)
    assert out.after["lcea_deg"] - before == pytest.approx(15.0, abs=0.5)
    plan.pao_lateral = -5.0
    dysplastic.update(plan)
    assert dysplastic.outcome.after["lcea_deg"] - before == pytest.approx(-5.0, abs=0.5)


def test_femoral_varus_lowers_nsa_by_the_varus(dysplastic):
    plan = Plan(case="dysplastic", procedure="pao", pao_lateral=10.0)
    dysplastic.update(plan)
    nsa = dysplastic.outcome.before["neck_shaft_deg"]
    lcea = dysplastic.outcome.after["lcea_deg"]
    plan.fem_varus = 10.0
    assert "femur" in dysplastic.update(plan)
    out = dysplastic.outcome
    assert out.after["neck_shaft_deg"] - nsa == pytest.approx(-10.0, abs=1.0)
    assert out.after["lcea_deg"] == pytest.approx(lcea, abs=0.5)  # the socket did not move
    plan.fem_varus = -10.0  # valgus
    dysplastic.update(plan)
    assert dysplastic.outcome.after["neck_shaft_deg"] - nsa == pytest.approx(10.0, abs=1.0)


def test_reset_moves_restores_the_before_values(dysplastic):
    plan = Plan(case="dysplastic", procedure="pao")
    plan.param.update(pao_lateral=15.0, pao_anterior=5.0, fem_varus=10.0, cut_iliac=2.0)
    dysplastic.update(plan)
    moved = dysplastic.outcome
    assert abs(moved.after["lcea_deg"] - moved.before["lcea_deg"]) > 5
    plan.reset_moves()
    dysplastic.update(plan)
    out = dysplastic.outcome
    for key in ("lcea_deg", "acea_deg", "tonnis_deg", "extrusion_index_pct", "neck_shaft_deg"):
        assert out.after[key] == pytest.approx(out.before[key], abs=1e-4), key
        assert out.before[key] == pytest.approx(moved.before[key], abs=1e-9), key
    assert out.leg_length_change_mm == pytest.approx(0.0, abs=1e-6)
    assert np.allclose(out.hip_center_shift_mm, 0.0, atol=1e-6)


def test_upload_case_without_files_is_refused_and_keeps_the_hip(dysplastic):
    plan = Plan(case="dysplastic")
    dysplastic.update(plan)
    sim, outcome = dysplastic.sim, dysplastic.outcome
    with pytest.raises(InputError) as err:
        dysplastic.update(Plan(case="upload"))
    assert "upload" in one_line(err)
    assert dysplastic.sim is sim and dysplastic.outcome is outcome
    assert dysplastic.update(plan) == {"move"}  # the dysplastic hip is still there


# --- HipSession: files ------------------------------------------------------


def test_garbage_upload_names_the_file(session):
    junk = b"solid junk\nthis is not a mesh\n" + bytes(range(256))
    pelvis = session.store("pelvis", "x.stl", junk)
    femur = session.store("femur", "y.stl", junk)
    assert pelvis.parent == session.folder and pelvis.read_bytes() == junk
    with pytest.raises(InputError) as err:
        session.load_upload(Upload(pelvis, femur, "x.stl", "y.stl"))
    assert "x.stl" in one_line(err)
    assert session.upload is None


def test_open_surface_is_refused(session, tmp_path):
    import trimesh

    box = trimesh.creation.box(extents=(40, 40, 40))
    open_box = trimesh.Trimesh(box.vertices, box.faces[:-2])  # one side missing
    assert box.is_watertight and not open_box.is_watertight
    pelvis = session.store("pelvis", "open.stl", open_box.export(file_type="stl"))
    femur = session.store("femur", "box.stl", box.export(file_type="stl"))
    with pytest.raises(InputError) as err:
        session.load_upload(Upload(pelvis, femur, "open.stl", "box.stl"))
    text = one_line(err)
    assert "open.stl" in text and "closed" in text


@pytest.mark.parametrize(
    ("name", "data", "words"),
    [
        ("x.stl", b"", ("x.stl", "empty")),
        ("x.txt", b"solid x\nendsolid x\n", ("x.txt", ".stl")),
        ("x", b"solid x\nendsolid x\n", ("x",)),
    ],
)
def test_store_refuses_empty_and_wrong_suffix(session, name, data, words):
    with pytest.raises(InputError) as err:
        session.store("pelvis", name, data)
    text = one_line(err)
    for word in words:
        assert word in text
    assert not files(session), "a refused file was written"


def test_store_refuses_oversize(session, monkeypatch):
    monkeypatch.setattr(state, "MAX_UPLOAD_MB", 0.001)  # 1000 bytes
    assert session.store("femur", "small.stl", b"0" * 999).exists()
    with pytest.raises(InputError) as err:
        session.store("pelvis", "big.stl", b"0" * 1001)
    text = one_line(err)
    assert "big.stl" in text and "limit" in text
    assert files(session) == ["femur.stl"]


def test_store_checks_role_and_replaces_the_previous_file(session):
    with pytest.raises(InputError):
        session.store("skull", "x.stl", b"data")
    session.store("pelvis", "a.stl", b"first")
    session.store("pelvis", "b.PLY", b"second")
    assert files(session) == ["pelvis.ply"]
    assert (session.folder / "pelvis.ply").read_bytes() == b"second"


def test_uploaded_hip_measures_like_the_same_builtin_hip(session, tmp_path):
    from hipviz.anatomy import builtin_hip

    hip = builtin_hip(side="left", subdivisions=SUBDIVISIONS)
    paths = {}
    for role in ("pelvis", "femur"):
        data = getattr(hip, role).export(file_type="stl")
        paths[role] = session.store(role, f"my_{role}.stl", data)
    session.load_upload(Upload(paths["pelvis"], paths["femur"], "my_pelvis.stl", "my_femur.stl"))
    assert session.update(Plan(case="upload")) == {"anatomy", "cut", "femur", "move"}
    assert "my_pelvis.stl" in session.source and "my_femur.stl" in session.source
    mine = session.outcome.before
    builtin = HipSession(subdivisions=SUBDIVISIONS)
    try:
        builtin.update(Plan(case="builtin"))
        ref = builtin.outcome.before
    finally:
        builtin.close()
    for key in ("lcea_deg", "acea_deg", "neck_shaft_deg"):
        assert mine[key] == pytest.approx(ref[key], abs=0.5), key


def test_sessions_have_private_folders_removed_on_close():
    a, b = HipSession(), HipSession()
    try:
        assert a.folder != b.folder
        assert a.folder.is_dir() and b.folder.is_dir()
        a.store("pelvis", "a.stl", b"mine")
        assert not files(b)
        folder = a.folder
        a.close()
        assert not folder.exists()
        assert a.upload is None
        a.close()  # twice is harmless
        assert b.folder.is_dir(), "closing one session removed another's folder"
    finally:
        a.close()
        b.close()


# --- helpers ----------------------------------------------------------------


def test_parse_labels():
    assert parse_labels("1, 2", "pelvis") == (1, 2)
    assert parse_labels(" 3 ", "femur") == (3,)
    assert parse_labels("1,,2", "pelvis") == (1, 2)
    assert parse_labels("", "pelvis") is None
    assert parse_labels("   ", "pelvis") is None
    for bad in ("a", "0", "-1", "1, x", "1.5"):
        with pytest.raises(InputError) as err:
            parse_labels(bad, "pelvis")
        text = one_line(err)
        assert "pelvis" in text and bad in text


def test_check_upload_name():
    assert check_upload_name("Hip.STL") == ".stl"
    assert check_upload_name("seg.nii.gz") == ".nii.gz"
    assert check_upload_name("seg.nii") == ".nii"
    with pytest.raises(InputError) as err:
        check_upload_name("notes.docx")
    assert "notes.docx" in one_line(err)


# --- session folders: marked, removed on stop, stale ones removed at start ---


def test_session_folder_is_private_marked_and_in_the_base_folder(tmp_path, monkeypatch):
    import json
    import os
    import stat

    monkeypatch.setenv(state.SESSION_DIR_ENV, str(tmp_path / "base"))
    session = HipSession()
    try:
        assert session.folder.parent == tmp_path / "base"
        assert session.folder.name.startswith(state.SESSION_PREFIX)
        assert stat.S_IMODE(session.folder.stat().st_mode) == 0o700
        owner = json.loads((session.folder / state.MARKER).read_text())
        assert owner["app"] == "hipviz" and owner["pid"] == os.getpid()
    finally:
        session.close()
    assert not session.folder.exists()


def test_remove_live_folders_removes_every_open_session(tmp_path, monkeypatch):
    monkeypatch.setenv(state.SESSION_DIR_ENV, str(tmp_path))
    sessions = [HipSession() for _ in range(3)]
    for s in sessions:
        s.store("pelvis", "p.stl", b"patient")
    assert state.remove_live_folders() >= 3
    assert not any(s.folder.exists() for s in sessions)
    assert state.remove_live_folders() == 0
    sessions[0].close()  # closing after the stop is harmless


def _dead_pid() -> int:
    import subprocess
    import sys

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def _marked(base, name, **owner):
    import json
    import os
    import socket

    folder = base / f"{state.SESSION_PREFIX}{name}"
    folder.mkdir()
    info = {"app": "hipviz", "pid": os.getpid(), "start": None, "host": socket.gethostname()}
    (folder / state.MARKER).write_text(json.dumps({**info, **owner}))
    (folder / "femur.stl").write_bytes(b"patient")
    return folder


def test_stale_folders_only_hipvizs_of_dead_processes_are_removed(tmp_path):
    import subprocess
    import sys

    dead = _dead_pid()
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        crashed = _marked(tmp_path, "crashed", pid=dead)
        reused = _marked(tmp_path, "reused", pid=alive.pid, start=1)  # a later process's pid
        running = _marked(tmp_path, "running", pid=alive.pid, start=state._process_start(alive.pid))
        mine = _marked(tmp_path, "mine")  # this very process
        other_host = _marked(tmp_path, "elsewhere", pid=dead, host="another-host")
        not_hipviz = _marked(tmp_path, "other-app", pid=dead, app="something")
        unmarked = tmp_path / f"{state.SESSION_PREFIX}unmarked"
        unmarked.mkdir()
        garbled = tmp_path / f"{state.SESSION_PREFIX}garbled"
        garbled.mkdir()
        (garbled / state.MARKER).write_text("{not json")
        other_name = tmp_path / "not-a-session"
        other_name.mkdir()
        (other_name / state.MARKER).write_text((crashed / state.MARKER).read_text())
        target = tmp_path / "linked"  # reachable only through the link
        _marked(tmp_path, "target", pid=dead).rename(target)
        link = tmp_path / f"{state.SESSION_PREFIX}link"
        link.symlink_to(target.name)
        marker_dir = tmp_path / f"{state.SESSION_PREFIX}marker-dir"
        (marker_dir / state.MARKER).mkdir(parents=True)

        removed = state.remove_stale_folders(tmp_path)
    finally:
        alive.kill()
        alive.wait()

    assert sorted(p.name for p in removed) == sorted([crashed.name, reused.name])
    assert not crashed.exists() and not reused.exists()
    kept = (running, mine, other_host, not_hipviz, unmarked, garbled, other_name, marker_dir)
    for folder in (*kept, target):
        assert folder.is_dir(), folder.name
    assert (target / "femur.stl").exists() and link.is_symlink()  # a link is never followed


def test_upload_limits_follow_the_serve_options(tmp_path):
    import trimesh

    from hipviz.cli import SERVE_FILE_MB
    from hipviz.io import Limits

    assert SERVE_FILE_MB == state.MAX_UPLOAD_MB  # the --max-file-mb default of hipviz serve
    session = HipSession(limits=Limits(max_file_mb=0.02, max_triangles=100))
    try:
        assert session.store("femur", "ok.stl", b"0" * 20_000).exists()
        with pytest.raises(InputError) as err:
            session.store("pelvis", "big.stl", b"0" * 20_001)
        text = one_line(err)
        assert "over the 0.02 MB upload limit (raise it with hipviz serve --max-file-mb)" in text
        mesh = tmp_path / "sphere.stl"
        trimesh.creation.icosphere(subdivisions=2, radius=50.0).export(mesh)  # 320 triangles
        path = session.store("pelvis", "sphere.stl", mesh.read_bytes())  # 16,084 bytes
        with pytest.raises(InputError) as err:
            session.load_upload(Upload(path, path, "sphere.stl", "sphere.stl"))
        assert one_line(err) == (
            "sphere.stl: its binary header declares 320 triangles, over the limit of "
            "100 triangles (raise it with --max-triangles)"
        )
    finally:
        session.close()


def test_an_upload_whose_hip_cannot_be_found_says_why_without_searching_again(session, monkeypatch):
    """The reader's failed search is the message when the hip is built; the bones
    are not searched a second time (seconds of work for a big upload)."""
    from hipviz import simulate
    from hipviz.anatomy import builtin_hip

    hip = builtin_hip(side="left", subdivisions=SUBDIVISIONS)
    femur = hip.femur.export(file_type="stl")
    paths = {role: session.store(role, f"{role}.stl", femur) for role in ("pelvis", "femur")}
    upload = Upload(paths["pelvis"], paths["femur"], "pelvis.stl", "femur.stl")
    read = session.load_upload(upload)
    assert isinstance(read.analysis, HipvizError), read.analysis

    def searched_again(*args, **kwargs):
        raise AssertionError("the bones were searched again")

    monkeypatch.setattr(simulate, "analyze", searched_again)
    with pytest.raises(HipvizError) as failed:
        session.prepare(Plan(case="upload"))
    assert str(failed.value) == str(read.analysis)
    assert type(failed.value) is type(read.analysis)
