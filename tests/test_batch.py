"""``hipviz batch``: manifests, Dask runs, the results table, resume, Ctrl+C and the summary.

The hips are few and coarse (built-in anatomy at 4 subdivisions) so the file
runs in about a minute or two on 2 shared cores; each Dask run starts real
worker processes on 127.0.0.1.
"""

import argparse
import hashlib
import json
import math
import os
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hipviz import batch
from hipviz.errors import InputError

ROOT = Path(__file__).resolve().parents[1]
SUB = 4  # built-in anatomy resolution for every hip here
GOOD = ("mean", "dys", "files")
FAILING = ("broken", "missing", "nan", "label", "<script>alert(1)</script>")


def _binary_stl(path: Path, triangles: np.ndarray) -> None:
    with open(path, "wb") as fh:
        fh.write(b"\0" * 80 + struct.pack("<I", len(triangles)))
        for tri in triangles:
            fh.write(struct.pack("<12fH", 0, 0, 0, *tri.ravel(), 0))


def _label_map(path: Path) -> None:
    import nibabel as nib

    data = np.zeros((12, 12, 12), dtype=np.uint8)
    data[2:5, 2:5, 2:5] = 1
    data[7:10, 7:10, 7:10] = 2
    nib.save(nib.Nifti1Image(data, np.diag([2.0, 2.0, 2.0, 1.0])), path)


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    """A manifest of good hips (modes, a teaching case, files) and every kind of bad one."""
    from hipviz.anatomy import export_stl

    d = tmp_path_factory.mktemp("cohort")
    export_stl(d, [0.0] * 26, sides=("left",), subdivisions=SUB)
    (d / "broken.stl").write_bytes(b"solid nothing\nthis is not an stl\n")
    tri = np.array([[[0, 0, 0], [1, 0, 0], [0, 1, 0]]] * 4, dtype=float)
    tri[1, 1, 2] = np.nan
    _binary_stl(d / "nan.stl", tri)
    _label_map(d / "seg.nii.gz")
    rows = [
        ("mean", "", "", "", "1=0.5", "a"),
        ("dys", "", "", "dysplastic", "", "b"),
        ("files", "pelvis.stl", "femur_left.stl", "", "", "c"),
        ("broken", "pelvis.stl", "broken.stl", "", "", "d"),
        ("missing", "pelvis.stl", "no_such_femur<img src=x>.stl", "", "", "e"),
        ("nan", "pelvis.stl", "nan.stl", "", "", "f"),
        ("label", "seg.nii.gz:hip_left", "seg.nii.gz:femur_left", "", "", "g"),
        ("<script>alert(1)</script>", "", "", "", "1=9", "h"),
    ]
    lines = ["id,pelvis,femur,case,modes,group"]
    lines += [",".join(f'"{v}"' for v in row) for row in rows]
    (d / "manifest.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return d


@pytest.fixture(scope="module")
def client():
    """One Dask worker process on 127.0.0.1 (the LocalCluster ``hipviz batch`` starts)."""
    c, cluster = batch._connect(1, None)
    yield c
    batch._close(c, cluster)


@pytest.fixture(scope="module")
def first_run(cohort, client, tmp_path_factory):
    out = tmp_path_factory.mktemp("out")
    res = batch.run(
        cohort / "manifest.csv", out, options={"subdivisions": SUB}, client=client, progress=False
    )
    return res, out


def _row(df: pd.DataFrame, hip_id: str) -> pd.Series:
    return df.set_index("id").loc[hip_id]


@pytest.mark.slow
def test_every_hip_is_a_row_and_failures_say_why(first_run):
    res, out = first_run
    df = pd.read_parquet(out / "results.parquet")
    assert list(df["id"]) == [*GOOD[:3], *FAILING[:4], FAILING[4]]
    assert res.failed == len(FAILING) and res.submitted == len(GOOD) + len(FAILING)
    for hip in GOOD:
        row = _row(df, hip)
        assert row["error"] == "", row["error"]
        assert 0 < row["lcea_deg"] < 70 and 30 < row["head_radius_mm"] * 2 < 70
    errors = {hip: _row(df, hip)["error"] for hip in FAILING}
    assert "broken.stl" in errors["broken"]
    assert "no_such_femur<img src=x>.stl" in errors["missing"]
    assert "nan.stl" in errors["nan"] and "nan" in errors["nan"].lower()
    # femur_left is label 75 of TotalSegmentator's "total", absent from this map
    assert "seg.nii.gz:75: label 75 not present; labels found: 1, 2" in errors["label"]
    assert "outside -3 to 3 SD" in errors["<script>alert(1)</script>"]
    assert all("internal error" not in e and "Traceback" not in e for e in errors.values())


@pytest.mark.slow
def test_the_teaching_case_is_dysplastic_and_the_csv_matches_the_parquet(first_run):
    _, out = first_run
    df = pd.read_parquet(out / "results.parquet")
    assert _row(df, "dys")["lcea_deg"] < 20 < _row(df, "mean")["lcea_deg"]
    csv = pd.read_csv(out / "results.csv", keep_default_na=False, na_values=[""])
    assert list(csv["id"]) == list(df["id"])
    np.testing.assert_allclose(csv["lcea_deg"], df["lcea_deg"])


@pytest.mark.slow
def test_a_row_equals_hipviz_measure_json_for_the_same_hip(first_run, cohort):
    _, out = first_run
    cmd = [sys.executable, "-m", "hipviz.cli", "measure", "--json"]
    cmd += ["--pelvis", str(cohort / "pelvis.stl"), "--femur", str(cohort / "femur_left.stl")]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    expected = batch.flatten(json.loads(done.stdout))
    row = _row(pd.read_parquet(out / "results.parquet"), "files")
    assert "coverage_upper_hemisphere_pct" in expected
    for key, value in expected.items():
        got = row[key]
        if isinstance(value, float) or value is None:
            assert (value is None and pd.isna(got)) or math.isclose(got, value), key
        else:
            assert got == value, key


@pytest.mark.slow
def test_rows_carry_user_columns_version_options_and_input_hashes(first_run, cohort):
    _, out = first_run
    df = pd.read_parquet(out / "results.parquet")
    row = _row(df, "files")
    assert row["group"] == "c" and _row(df, "nan")["group"] == "f"
    sha = hashlib.sha256((cohort / "femur_left.stl").read_bytes()).hexdigest()
    assert row["femur_sha256"] == sha
    assert row["hipviz_version"]
    assert json.loads(row["options"])["measure"]["margin"] == 5.0
    assert _row(df, "missing")["femur_sha256"] == "missing"


@pytest.mark.slow
def test_the_summary_is_self_contained_and_escapes_what_users_wrote(first_run):
    _, out = first_run
    page = (out / "summary.html").read_text(encoding="utf-8")
    assert "<script>alert(1)</script>" not in page and "<img src=x>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "no_such_femur&lt;img src=x&gt;.stl" in page
    assert "http://" not in page and "https://" not in page
    assert page.count('src="data:image/png;base64,') == 1
    assert (out / "distributions.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"{len(GOOD)} measured, {len(FAILING)} failed" in page


@pytest.mark.slow
def test_a_second_run_skips_every_hip_done_and_failed(first_run, cohort):
    res, out = first_run
    journal = (out / "results.jsonl").read_text(encoding="utf-8")
    again = batch.run(
        cohort / "manifest.csv", out, options={"subdivisions": SUB}, progress=False, summary=False
    )
    assert again.submitted == 0 and again.skipped == len(GOOD) + len(FAILING)
    assert (out / "results.jsonl").read_text(encoding="utf-8") == journal
    pd.testing.assert_frame_equal(again.table, res.table)


@pytest.mark.slow
def test_retry_failed_runs_only_the_failures(first_run, cohort, client):
    _, out = first_run
    again = batch.run(
        cohort / "manifest.csv",
        out,
        options={"subdivisions": SUB},
        retry_failed=True,
        client=client,
        progress=False,
        summary=False,
    )
    assert again.submitted == len(FAILING) and again.skipped == len(GOOD)
    lines = (out / "results.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == len(GOOD) + 2 * len(FAILING)
    assert len(again.table) == len(GOOD) + len(FAILING)


def test_a_side_frame_or_units_a_row_cannot_have_fails_that_row():
    hips = [{"id": "a", "modes": "1=1", "side": "Middle"}, {"id": "b", "modes": "1=1"}]
    a, b = batch.make_tasks(hips, {"side": "right"})
    assert a.error == "side 'Middle': expected auto, left, right"
    assert b.error == "" and b.measure["side"] == "right"


def test_a_body_weight_needs_the_option_to_take_it():
    hips = [{"id": "a", "modes": "1=1", "body_weight_kg": "80"}]
    (task,) = batch.make_tasks(hips, {})
    # whether or not hipviz measure has a --body-weight option, the row does the right thing
    dest = next((d for d in ("body_weight", "body_weight_kg") if d in task.measure), None)
    if dest is not None:
        assert task.error == "" and task.measure[dest] == 80.0
    else:
        assert task.error == "body_weight_kg: this hipviz has no --body-weight option"


def test_other_options_or_other_files_make_another_task():
    hips = [{"id": "a", "modes": "1=1"}]
    same = batch.make_tasks(hips, {"margin": 5.0})[0].key
    assert batch.make_tasks(hips, {"margin": 5.0})[0].key == same
    assert batch.make_tasks(hips, {"margin": 4.0})[0].key != same
    assert batch.make_tasks([{"id": "a", "modes": "1=1.5"}], {"margin": 5.0})[0].key != same
    sim = batch.parse_simulate("--pao lateral=10")
    assert batch.make_tasks(hips, {"margin": 5.0}, simulate=sim)[0].key != same


@pytest.mark.slow
def test_two_workers_give_the_rows_of_one(first_run, cohort, tmp_path):
    res, _ = first_run
    client, cluster = batch._connect(2, None)
    try:
        assert client.scheduler.address.startswith("tcp://127.0.0.1:")
        assert cluster.scheduler.http_server.address == "127.0.0.1"
        rules = cluster.scheduler.http_application.wildcard_router.rules
        assert [r.matcher.regex.pattern for r in rules] == ["/health$"]
        assert len(client.scheduler_info()["workers"]) == 2
        pair = ("dys", "files")  # one hip per worker
        hips = [h for h in batch.read_manifest(cohort / "manifest.csv") if h["id"] in pair]
        two = batch.run(
            hips, tmp_path, options={"subdivisions": SUB}, client=client, progress=False
        )
    finally:
        batch._close(client, cluster)
    assert two.table["worker"].nunique() == 2
    one = res.table.set_index("id").loc[list(pair)]
    two_t = two.table.set_index("id")
    bookkeeping = ("seconds", "worker_rss_mb", "worker_peak_rss_mb")  # of the run, not the hip
    numeric = [c for c in one.columns if one[c].dtype.kind == "f" and c not in bookkeeping]
    assert "lcea_deg" in numeric
    pd.testing.assert_frame_equal(one[numeric], two_t[numeric])


@pytest.mark.slow
def test_ctrl_c_leaves_a_consistent_table_and_no_process(tmp_path):
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "hipviz.cli", "batch", "--sample", "4", "--seed", "1"]
    cmd += ["--subdivisions", str(SUB), "--workers", "1", "--out", str(out), "--no-summary"]
    proc = subprocess.Popen(
        cmd,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, as a terminal's Ctrl+C reaches
    )
    journal = out / "results.jsonl"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        if journal.exists() and journal.read_text(encoding="utf-8").strip():
            break
        time.sleep(0.2)
    assert proc.poll() is None, proc.communicate()
    os.killpg(proc.pid, signal.SIGINT)  # Ctrl+C: to every process of the group
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "interrupted" in err
    lines = journal.read_text(encoding="utf-8").splitlines()
    df = pd.read_parquet(out / "results.parquet")
    assert 1 <= len(df) < 4 and len(df) == len(lines)
    assert list(df["id"]) == [json.loads(line)["id"] for line in lines]
    assert df["lcea_deg"].notna().all()
    assert not list(out.glob(".*.tmp"))
    time.sleep(2)
    with pytest.raises(ProcessLookupError):  # the workers went with it
        os.killpg(proc.pid, 0)
    # the same command would go on: the hips done are done
    tasks = batch.make_tasks(batch.sample_manifest(4, 1), {"subdivisions": SUB})
    store = batch.ResultStore(out)
    store.load()
    assert sum(store.done(t, retry_failed=False) for t in tasks) == len(df)


@pytest.mark.slow
def test_target_search_and_simulate_on_one_hip():
    sim = batch.parse_simulate("--pao lateral=10")
    hips = [{"id": "d", "case": "dysplastic"}]
    (task,) = batch.make_tasks(hips, {"subdivisions": SUB}, simulate=sim, target=("lcea", 30.0))
    row = batch.process_hip(task)
    assert row["error"] == ""
    assert row["after_lcea_deg"] == pytest.approx(row["lcea_deg"] + 10, abs=0.01)
    assert row["target_reached_lcea_deg"] == pytest.approx(30, abs=batch.TARGET_TOL_DEG)
    assert row["target_pao_lateral_deg"] == pytest.approx(30 - row["lcea_deg"], abs=0.1)
    # every measure after the turn found: the target's own, and the others it moves
    assert row["target_after_lcea_deg"] == row["target_reached_lcea_deg"]
    assert row["target_after_tonnis_deg"] < row["tonnis_deg"]  # a lateral turn levels the roof
    (far,) = batch.make_tasks(hips, {"subdivisions": SUB}, target=("lcea", 100.0))
    row = batch.process_hip(far)
    assert row["error"] == "" and row["target_pao_lateral_deg"] is None
    assert "not reachable" in row["target_note"]


@pytest.mark.parametrize(
    ("nested", "column"),
    [
        ({"coverage_pct": {"upper_hemisphere": 63.8}}, "coverage_upper_hemisphere_pct"),
        ({"hip_center_shift_mm": {"lateral": 1.5}}, "hip_center_shift_lateral_mm"),
        ({"cut_contact": {"pelvis": {"area_mm2": 3.0}}}, "cut_contact_pelvis_area_mm2"),
        ({"lcea_deg": 30.0}, "lcea_deg"),
    ],
)
def test_flatten_moves_the_unit_last(nested, column):
    flat = batch.flatten(nested)
    assert list(flat) == [column]


def test_flatten_vectors_lists_and_nulls():
    flat = batch.flatten(
        {"head_center_mm": [1.0, 2.0, 3.0], "warnings": ["a", "b"], "tonnis_deg": None}
    )
    assert flat == {
        "head_center_x_mm": 1.0,
        "head_center_y_mm": 2.0,
        "head_center_z_mm": 3.0,
        "warnings": "a | b",
        "tonnis_deg": None,
    }


def test_virtual_cohort_draws_are_the_sweep_scripts():
    from hipviz.cli import _parse_modes

    expected = np.clip(np.random.default_rng(7).standard_normal((5, 26)), -2.5, 2.5)
    np.testing.assert_array_equal(batch.sample_weights(5, 7), expected)
    rows = batch.sample_manifest(5, 7)
    assert [r["id"] for r in rows] == [f"sample-7-{i}" for i in range(5)]
    for row, w in zip(rows, expected, strict=True):
        assert _parse_modes(row["modes"]) == list(w)


def test_totalsegmentator_class_names_become_labels():
    assert batch.resolve_classes("seg.nii.gz:hip_left,sacrum") == "seg.nii.gz:77,25"
    assert batch.resolve_classes("seg.nii.gz:femur_right", "total_mr") == "seg.nii.gz:37"
    assert batch.resolve_classes("seg.nii.gz:3,4") == "seg.nii.gz:3,4"
    assert batch.resolve_classes("seg.nii.gz:25,hip_right") == "seg.nii.gz:25,78"
    assert batch.resolve_classes("C:bone.stl") == "C:bone.stl"
    with pytest.raises(InputError, match="'hip_middle' is not a class"):
        batch.resolve_classes("seg.nii.gz:hip_middle")


def test_folder_manifest_finds_the_files_and_names_what_it_cannot(tmp_path):
    (tmp_path / "a").mkdir()
    for name in ("pelvis.stl", "femur_left.stl", "femur_right.stl"):
        (tmp_path / "a" / name).write_bytes(b"x")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "notes.txt").write_text("x")
    _label_map(tmp_path / "c.nii.gz")
    hips = batch.read_manifest(tmp_path, side="right")
    assert [h["id"] for h in hips] == ["a", "b", "c"]
    assert hips[0]["femur"].endswith("femur_right.stl")
    assert hips[0]["pelvis"].endswith("pelvis.stl")
    assert "cannot tell the pelvis and femur apart" in hips[1]["error"]
    assert hips[2]["pelvis"].endswith("c.nii.gz:hip_right")
    with pytest.raises(InputError, match="--side left|right"):
        batch.read_manifest(tmp_path)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("pelvis,femur\na.stl,b.stl\n", "no 'id' column"),
        ("id,femur\na,b.stl\na,c.stl\n", "line 3: id 'a' appears twice"),
        ("id,femur\n,b.stl\n", "line 2: empty id"),
    ],
)
def test_bad_manifests_are_one_line(tmp_path, text, message):
    path = tmp_path / "m.csv"
    path.write_text(text)
    with pytest.raises(InputError, match=message):
        batch.read_manifest(path)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["missing.csv"], "missing.csv: no such manifest file or folder"),
        (["--sample", "2", "--simulate", "--margin 3"], "give --margin to hipviz batch itself"),
        (["--sample", "2", "--target", "tonnis=5"], "expected one of lcea, acea=DEG"),
        ([], "give a MANIFEST"),
    ],
)
def test_cli_refuses_bad_batches_in_one_line(tmp_path, args, message):
    cmd = [sys.executable, "-m", "hipviz.cli", "batch", *args, "--out", str(tmp_path / "o")]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 2
    assert message in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_batch_takes_every_measure_option_but_those_naming_a_hip():
    measure = batch.subparser("measure")
    batch_parser = batch.subparser("batch")
    mine = {a.dest for a in batch_parser._actions}
    for action in measure._actions:
        if action.dest == "help":
            continue
        assert (action.dest in mine) == (action.dest not in batch.NOT_BATCH_OPTIONS)
    ns = batch_parser.parse_args(["m.csv", "--out", "o", "--margin", "3", "--tilt", "2"])
    assert isinstance(ns, argparse.Namespace) and ns.margin == 3 and ns.tilt == 2


@pytest.mark.slow
def test_an_existing_scheduler_with_a_worker_started_as_processes(tmp_path):
    file = tmp_path / "scheduler.json"
    dask = [sys.executable, "-m"]  # the dask scheduler / dask worker commands
    scheduler = subprocess.Popen(
        [*dask, "distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", "0"]
        + ["--no-dashboard", "--scheduler-file", str(file)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    procs = [scheduler]
    try:
        deadline = time.monotonic() + 60
        while not file.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        address = json.loads(file.read_text())["address"]
        assert address.startswith("tcp://127.0.0.1:")
        procs.append(
            subprocess.Popen(
                [*dask, "distributed.cli.dask_worker", address, "--nthreads", "1"]
                + ["--host", "127.0.0.1", "--no-dashboard", "--no-nanny"],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                cwd=ROOT,
            )
        )
        hips = [{"id": "gone", "femur": str(tmp_path / "gone.stl")}, {"id": "m", "modes": "2=7"}]
        res = batch.run(hips, tmp_path / "out", scheduler=address, progress=False, summary=False)
    finally:
        for p in procs[::-1]:
            p.terminate()
            p.wait(timeout=30)
    assert list(res.table["id"]) == ["gone", "m"]
    assert "gone.stl" in res.table["error"][0] and "outside -3 to 3 SD" in res.table["error"][1]
    assert set(res.table["worker"].str.split(":").str[1]) == {str(procs[1].pid)}


def test_a_ctrl_c_during_a_write_waits_for_the_write():
    finished = []
    with pytest.raises(KeyboardInterrupt):
        with batch._no_sigint():
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)  # the signal has arrived; the block still runs to its end
            finished.append(True)
    assert finished == [True]
    with batch._no_sigint(deliver=False):
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.05)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


ROM_AFTER_PAO = ("--pao", "lateral=10")


@pytest.mark.slow
def test_rom_columns_equal_hipviz_rom_json_for_the_same_hip(cohort):
    hips = [
        {
            "id": "files",
            "pelvis": str(cohort / "pelvis.stl"),
            "femur": str(cohort / "femur_left.stl"),
        }
    ]
    (task,) = batch.make_tasks(hips, {}, rom=True)
    row = batch.process_hip(task)
    assert row["error"] == "" and row["rom_error"] == ""
    cmd = [sys.executable, "-m", "hipviz.cli", "rom", "--json"]
    cmd += ["--pelvis", str(cohort / "pelvis.stl"), "--femur", str(cohort / "femur_left.stl")]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    expected = batch.flatten({k: out[k] for k in batch.ROM_KEYS})
    assert "rom_flexion_deg" in expected and "rom_internal_rotation_90_deg" in expected
    for key, value in expected.items():
        if isinstance(value, float):
            assert math.isclose(row[key], value, abs_tol=1e-9), key
        else:
            assert row[key] == value, key
    assert json.loads(row["options"])["rom"] is True


def _count_calls(monkeypatch, module, name):
    calls = []
    real = getattr(module, name)

    def counted(*args, **kwargs):
        calls.append(name)
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, counted)
    return calls


@pytest.mark.slow
def test_simulate_rom_and_target_read_and_analyse_the_hip_once(monkeypatch):
    from hipviz import cli, hip

    hips = [{"id": "d", "case": "dysplastic"}]
    opts = {"subdivisions": SUB}
    (plain,) = batch.make_tasks(hips, opts, rom=True)
    alone = batch.process_hip(plain)
    analyses = _count_calls(monkeypatch, hip, "analyze")
    reads = _count_calls(monkeypatch, cli, "_inputs")
    sim = batch.parse_simulate(" ".join(ROM_AFTER_PAO))
    (task,) = batch.make_tasks(hips, opts, simulate=sim, target=("lcea", 30.0), rom=True)
    row = batch.process_hip(task)
    assert row["error"] == "" and row["sim_error"] == "" and row["rom_error"] == ""
    assert analyses == ["analyze"] and reads == ["_inputs"]
    # the shared analysis changes nothing: measures and the range before are those of the hip alone
    for key in ("lcea_deg", "coverage_upper_hemisphere_pct", "rom_flexion_deg", "rom_fadir_deg"):
        assert row[key] == alone[key], key
    assert row["after_lcea_deg"] == pytest.approx(row["lcea_deg"] + 10, abs=0.01)
    # a lateral turn of the socket brings the rim nearer the neck in flexion and internal rotation
    assert row["after_rom_internal_rotation_90_deg"] < row["rom_internal_rotation_90_deg"]
    assert row["target_reached_lcea_deg"] == pytest.approx(30, abs=batch.TARGET_TOL_DEG)


def test_rom_is_a_batch_option_and_part_of_the_key():
    ns = batch.subparser("batch").parse_args(["m.csv", "--out", "o", "--rom"])
    assert ns.rom is True
    hips = [{"id": "a", "modes": "1=1"}]
    without = batch.make_tasks(hips, {})[0]
    with_rom = batch.make_tasks(hips, {}, rom=True)[0]
    assert with_rom.key != without.key and with_rom.rom and not without.rom
    sim = batch.parse_simulate("--pao lateral=10")
    assert batch.make_tasks(hips, {}, simulate=sim, rom=True)[0].simulate["rom"] is True


@pytest.fixture
def http_folder(cohort):
    """The cohort folder served over http on 127.0.0.1 (a thread of this test process)."""
    import functools
    import http.server
    import threading

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):  # no request log on the test's stderr
            pass

    handler = functools.partial(Quiet, directory=str(cohort))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_hips_read_from_urls_measure_as_from_files(cohort, http_folder):
    import fsspec

    pelvis, femur = cohort / "pelvis.stl", cohort / "femur_left.stl"
    mem = fsspec.filesystem("memory")
    mem.pipe("/cohort/femur_left.stl", femur.read_bytes())
    dead = f"http://127.0.0.1:{_closed_port()}/femur_left.stl"
    hips = [
        {"id": "path", "pelvis": str(pelvis), "femur": str(femur)},
        {
            "id": "http",
            "pelvis": f"{http_folder}/pelvis.stl",
            "femur": f"{http_folder}/femur_left.stl",
        },
        {"id": "file", "pelvis": pelvis.as_uri(), "femur": femur.as_uri()},
        {"id": "memory", "pelvis": str(pelvis), "femur": "memory://cohort/femur_left.stl"},
        {"id": "404", "pelvis": str(pelvis), "femur": f"{http_folder}/no_such.stl"},
        {"id": "dead", "pelvis": str(pelvis), "femur": dead},
        {"id": "scheme", "pelvis": str(pelvis), "femur": "nosuchscheme://x/femur.stl"},
    ]
    tasks = batch.make_tasks(hips, {})
    assert tasks[1].meta["femur_sha256"] == batch.REMOTE
    assert tasks[2].meta["femur_sha256"] == hashlib.sha256(femur.read_bytes()).hexdigest()
    rows = {t.id: batch.process_hip(t) for t in tasks}
    sha = hashlib.sha256(femur.read_bytes()).hexdigest()
    for hip in ("http", "file", "memory"):
        row = rows[hip]
        assert row["error"] == "", row["error"]
        for key in (
            "lcea_deg",
            "coverage_upper_hemisphere_pct",
            "head_radius_mm",
            "neck_shaft_deg",
        ):
            assert row[key] == rows["path"][key], (hip, key)
        assert row["femur_sha256"] == sha, hip
    assert rows["http"]["sources_femur"] == f"{http_folder}/femur_left.stl"
    assert (
        rows["404"]["error"] == f"{http_folder}/no_such.stl: cannot read (HTTP 404 File not found)"
    )
    assert (
        rows["dead"]["error"].startswith(f"{dead}: cannot read (")
        and rows["dead"]["femur_sha256"] == "missing"
    )
    assert rows["scheme"]["error"].startswith("nosuchscheme://x/femur.stl: cannot read (")
    for hip in ("404", "dead", "scheme"):
        assert "\n" not in rows[hip]["error"] and "Traceback" not in rows[hip]["error"]


def test_url_specs_keep_their_labels_and_ports():
    from hipviz import io

    assert io.split_url_labels("https://h:8000/seg.nii.gz:77,25") == (
        "https://h:8000/seg.nii.gz",
        (77, 25),
    )
    assert io.split_url_labels("https://h:8000/femur.stl") == ("https://h:8000/femur.stl", None)
    assert (
        batch.resolve_classes("https://h:8000/seg.nii.gz:hip_left")
        == "https://h:8000/seg.nii.gz:77"
    )
    assert (
        io.is_url("file:///tmp/a.stl") and not io.is_url("/tmp/a.stl") and not io.is_url("C:a.stl")
    )


def test_a_url_over_the_size_limit_stops_reading(tmp_path):
    from hipviz import io

    big = tmp_path / "big.stl"
    big.write_bytes(b"\0" * 3_000_000)
    import fsspec

    fsspec.filesystem("memory").pipe("/big/big.stl", big.read_bytes())
    with pytest.raises(
        InputError, match=r"memory://big/big.stl: more than 1.* over the limit of 1"
    ):
        with io.fetched("memory://big/big.stl", limits=io.Limits(max_file_mb=1)):
            pass


def test_measure_names_an_unreachable_url_in_one_line():
    dead = f"http://127.0.0.1:{_closed_port()}/femur.stl"
    cmd = [sys.executable, "-m", "hipviz.cli", "measure", "--femur", dead]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and dead in lines[0] and "cannot read" in lines[0], done.stderr


def test_the_summary_leaves_impossible_values_out_and_lists_them():
    """A flagged value (a femur read as the other side's) is not a finding to plot."""
    import pandas as pd

    from hipviz import batch_summary
    from hipviz.reference import MEASURES

    (info,) = [m for m in MEASURES if m.key == "femoral_version_deg"]
    df = pd.DataFrame(
        {
            "id": ["a", "b", "c<i>", "d"],
            "error": ["", "", "", ""],
            "femoral_version_deg": [12.0, 18.0, 166.7, None],
        }
    )
    values, flagged = batch_summary._possible(info, df["femoral_version_deg"])
    assert sorted(values) == [12.0, 18.0] and flagged == 1
    page = batch_summary.summary_html(df, {})
    stats = page.split("<h2>Measures</h2>")[1].split("</table>")[0]
    # n = 2, median 15.0, range 12.0 to 18.0, one impossible: 166.7 is in none of them
    assert "<td>2</td><td>15.0</td>" in stats and "12.0 to 18.0" in stats
    assert stats.rstrip().endswith("<td>1</td></tr>")
    listed = page.split("<h2>Impossible values (1)</h2>")[1].split("</table>")[0]
    assert "c&lt;i&gt;" in listed and "166.7°" in listed and "-60…80°" in listed
    assert batch_summary.distributions_png(df) is not None
