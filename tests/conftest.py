"""Shared fixtures: analytic hips, the built-in hip, the validation specimens."""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

VALIDATION = Path(__file__).resolve().parents[2] / "shared" / "validation"
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True, scope="session")
def _session_folders(tmp_path_factory):
    """App sessions (and servers the tests start) keep files in this run's temporary folder.

    So no test makes or removes ``hipviz-session-*`` folders of other runs in
    the system's temporary folder.
    """
    folder = tmp_path_factory.mktemp("session-folders")
    before = os.environ.get("HIPVIZ_SESSION_DIR")
    os.environ["HIPVIZ_SESSION_DIR"] = str(folder)
    yield folder
    if before is None:
        os.environ.pop("HIPVIZ_SESSION_DIR", None)
    else:
        os.environ["HIPVIZ_SESSION_DIR"] = before


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture(scope="session")
def builtin_left():
    from hipviz.anatomy import builtin_hip

    return builtin_hip(side="left", subdivisions=8)


def _specimen(name: str):
    """(pelvis, femur) meshes of a validation specimen, or skip when absent."""
    import trimesh

    folder = VALIDATION / name
    if not (folder / "pelvis_no_sacrum.ply").exists():
        pytest.skip(
            f"validation specimen {name} not found at {folder} (test data kept beside the "
            "repository, under a non-commercial licence, not shipped with it)"
        )
    return (
        trimesh.load(folder / "pelvis_no_sacrum.ply", process=False),
        trimesh.load(folder / "femur_r.ply", process=False),
    )


@pytest.fixture
def specimen():
    """Loader of the validation specimens: ``specimen("lhdl_ct_staple")``."""
    return _specimen


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def hipviz_serve(tmp_path_factory):
    """``hipviz serve`` itself, in its own process, on a free port: its URL."""
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    log = tmp_path_factory.mktemp("serve") / "stderr.txt"
    with open(log, "wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "hipviz.cli", "serve", "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"hipviz serve did not start on port {port}: {log.read_text()[-2000:]}")
            time.sleep(0.1)
        yield f"http://127.0.0.1:{port}/"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
