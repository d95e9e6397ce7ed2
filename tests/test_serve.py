"""``hipviz serve`` as a process: patients' files go when it stops, however it stops.

Each test starts the real command on a free 127.0.0.1 port with its session
folders in a temporary folder (``HIPVIZ_SESSION_DIR``), opens sessions with
plain page requests (each builds a page and its private folder, as a browser
tab does), puts a file in each as an upload would, then stops the server.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytest.importorskip("panel")

REPO = Path(__file__).resolve().parents[1]
PREFIX = "hipviz-session-"
MARKER = ".hipviz-session"

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``hipviz serve`` in a subprocess, its stderr in a file."""

    def __init__(self, base: Path, log: Path, *args: str):
        self.port = free_port()
        self.log = log
        env = {**os.environ, "PYTHONPATH": str(REPO), "HIPVIZ_SESSION_DIR": str(base)}
        with open(log, "wb") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "hipviz.cli", "serve", "--port", str(self.port), *args],
                stdout=subprocess.DEVNULL,
                stderr=err,
                env=env,
                cwd=REPO,
            )

    @property
    def stderr(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_ready(self, timeout: float = 120.0) -> None:
        end = time.monotonic() + timeout
        while "serving on" not in self.stderr:
            assert self.proc.poll() is None, f"the server exited: {self.stderr}"
            assert time.monotonic() < end, f"the server did not start: {self.stderr}"
            time.sleep(0.2)

    def open_page(self) -> None:
        """One page request: the server builds a session (and its folder) for it."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/", timeout=120) as reply:
            assert reply.status == 200

    def stop(self, sig: int, timeout: float = 60.0) -> int:
        self.proc.send_signal(sig)
        return self.proc.wait(timeout=timeout)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)


@pytest.fixture
def servers(tmp_path):
    started: list[Server] = []

    def start(base: Path, *args: str) -> Server:
        server = Server(base, tmp_path / f"serve{len(started)}.log", *args)
        started.append(server)
        server.wait_ready()
        return server

    yield start
    for server in started:
        server.kill()


def session_folders(base: Path, pid: int | None = None) -> list[Path]:
    """The session folders in ``base`` (of the process ``pid`` only, when given)."""
    found = []
    for folder in sorted(base.glob(f"{PREFIX}*")):
        if pid is not None:
            try:
                owner = json.loads((folder / MARKER).read_text())
            except (OSError, ValueError):
                continue
            if owner.get("pid") != pid:
                continue
        found.append(folder)
    return found


def open_sessions(server: Server, base: Path, n: int) -> list[Path]:
    """Open ``n`` sessions; put a patient's file in each folder as an upload would."""
    before = set(session_folders(base, server.proc.pid))
    for _ in range(n):
        server.open_page()
    end = time.monotonic() + 60
    while len(set(session_folders(base, server.proc.pid)) - before) < n:
        assert time.monotonic() < end, "the sessions made no folders"
        time.sleep(0.2)
    folders = sorted(set(session_folders(base, server.proc.pid)) - before)
    for folder in folders:
        (folder / "pelvis.stl").write_bytes(b"solid patient\nendsolid patient\n")
    return folders


@pytest.mark.parametrize(
    "sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP], ids=["SIGTERM", "SIGINT", "SIGHUP"]
)
def test_stopping_the_server_removes_every_session_folder(tmp_path, servers, sig):
    base = tmp_path / "sessions"
    server = servers(base)
    folders = open_sessions(server, base, 3)
    assert len(folders) == 3 and all((f / "pelvis.stl").exists() for f in folders)
    assert server.stop(sig) == 0, server.stderr
    assert session_folders(base) == [], "patients' files were left on disk"
    assert "Traceback" not in server.stderr
    removed = server.stderr.strip().splitlines()[-1]
    assert removed.startswith("hipviz: stopped; removed ") and int(removed.split()[3]) >= 3


def test_folders_of_a_killed_server_are_removed_when_the_next_starts(tmp_path, servers):
    base = tmp_path / "sessions"
    first = servers(base)
    folders = open_sessions(first, base, 2)
    first.stop(signal.SIGKILL)  # a crash: no chance to clean up
    assert all(f.is_dir() for f in folders), "the folders are the crash's leftovers"
    foreign = base / f"{PREFIX}not-ours"  # no marker: never hipviz's to delete
    foreign.mkdir()
    (foreign / "keep.txt").write_text("someone else's")

    second = servers(base)  # ready: the stale folders are gone before it serves
    assert not any(f.exists() for f in folders)
    assert (foreign / "keep.txt").read_text() == "someone else's"
    mine = open_sessions(second, base, 1)
    assert second.stop(signal.SIGTERM) == 0
    assert not mine[0].exists() and foreign.is_dir()


@pytest.mark.parametrize("procs", [[], ["--num-procs", "2"]], ids=["one-process", "two-processes"])
def test_a_port_in_use_is_one_line_before_serving(tmp_path, procs):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {**os.environ, "PYTHONPATH": str(REPO), "HIPVIZ_SESSION_DIR": str(tmp_path)}
        result = subprocess.run(
            [sys.executable, "-m", "hipviz.cli", "serve", "--port", str(port), *procs],
            capture_output=True,
            text=True,
            env=env,
            cwd=REPO,
            timeout=120,
        )
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"hipviz serve: error: cannot listen on 127.0.0.1:{port} (")
    assert "in use" in lines[0] and "--port" in lines[0]
    assert "serving on" not in result.stderr and "internal error" not in result.stderr
    assert session_folders(tmp_path) == []


def test_a_second_signal_while_stopping_still_removes_the_folders(tmp_path, servers):
    base = tmp_path / "sessions"
    server = servers(base)
    open_sessions(server, base, 2)
    server.proc.send_signal(signal.SIGTERM)
    server.proc.send_signal(signal.SIGTERM)  # impatient: the second exits at once
    code = server.proc.wait(timeout=60)
    assert code in (0, 128 + signal.SIGTERM), server.stderr
    assert session_folders(base) == []


# --- several processes ------------------------------------------------------------


def _models(obj):
    """Every serialized Bokeh model in a pulled document."""
    stack = [obj]
    while stack:
        o = stack.pop()
        if isinstance(o, dict):
            if o.get("type") == "object" and "id" in o:
                yield o
            stack.extend(o.values())
        elif isinstance(o, list):
            stack.extend(o)


def _in_own_loop(make_coroutine):
    """Run ``make_coroutine()`` to its end on a new event loop in a thread of its own.

    An earlier test may leave an event loop running in this thread (a browser or
    server fixture), where :func:`asyncio.run` refuses to start another.
    """
    import asyncio
    import threading

    out: dict = {}

    def run() -> None:
        try:
            out["value"] = asyncio.run(make_coroutine())
        except BaseException as err:  # handed to the test's thread
            out["error"] = err

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    if "error" in out:
        raise out["error"]
    return out["value"]


async def _open_tab(port: int, query: str):
    """What a browser tab does: the page, then its websocket; the websocket and the case shown."""
    import re

    from tornado.httpclient import AsyncHTTPClient
    from tornado.websocket import websocket_connect

    page = await AsyncHTTPClient().fetch(f"http://127.0.0.1:{port}/?{query}", request_timeout=300)
    token = re.search(r'"token":"([^"]+)"', page.body.decode()).group(1)
    ws = await websocket_connect(
        f"ws://127.0.0.1:{port}/ws", subprotocols=["bokeh", token], max_message_size=1 << 30
    )

    async def receive():
        header = json.loads(await ws.read_message())
        await ws.read_message()  # metadata
        content = await ws.read_message()
        for _ in range(2 * header.get("num_buffers", 0)):
            await ws.read_message()
        return header, content

    assert (await receive())[0]["msgtype"] == "ACK"
    for part in ({"msgid": "pull", "msgtype": "PULL-DOC-REQ"}, {}, {}):
        await ws.write_message(json.dumps(part))
    header, content = await receive()
    while header["msgtype"] != "PULL-DOC-REPLY":  # e.g. a PATCH-DOC of the hip's build
        header, content = await receive()
    (case,) = [
        m["attributes"]["value"]
        for m in _models(json.loads(content))
        if m.get("name", "").endswith("Select") and m["attributes"].get("title") == "Hip"
    ]
    return ws, case


def _owner_pids(base: Path) -> set[int]:
    """The pids owning the session folders in ``base`` now.

    A folder is made a moment before its marker is written and may be removed between
    listing and reading: those in that moment are not counted.
    """
    pids = set()
    for folder in session_folders(base):
        try:
            pids.add(json.loads((folder / MARKER).read_text())["pid"])
        except (OSError, ValueError):
            continue
    return pids


def _children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # a zombie (exited, not yet reaped by its dead parent's adopter) counts as gone
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1].startswith("Z")
    except OSError:
        return True


CASES = ("cam", "retroverted", "borderline", "normal", "cam", "retroverted")


@pytest.mark.skipif(not hasattr(os, "fork"), reason="several processes need fork")
def test_each_page_is_built_once_in_one_of_several_processes(tmp_path, servers):
    """--num-procs 2: every tab's websocket reaches the process that built its page."""

    base = tmp_path / "sessions"
    server = servers(base, "--num-procs", "2")
    children = _children(server.proc.pid)
    assert len(children) == 2, server.stderr
    # each process warms up (builds the default hip) in a session of its own,
    # with its own folder: wait until both have come and gone
    end, warmed = time.monotonic() + 180, set()
    while True:
        now = _owner_pids(base)
        warmed |= now
        if warmed == set(children) and not session_folders(base):
            break
        assert time.monotonic() < end, "the warm-ups did not end"
        time.sleep(0.05)

    async def tabs():
        opened = [await _open_tab(server.port, f"case={c}") for c in CASES]
        folders = session_folders(base)  # while the tabs are open
        for ws, _ in opened:
            ws.close()
        return [case for _, case in opened], folders

    shown, folders = _in_own_loop(tabs)
    assert shown == list(CASES), "a page lost its link's plan (built again from its websocket)"
    # one folder per page: a page built a second time would make a second one
    assert len(folders) == len(CASES), [f.name for f in folders]
    owners = {json.loads((f / MARKER).read_text())["pid"] for f in folders}
    assert owners == set(children), "the pages were not shared out between the processes"
    assert "Launching server" not in server.stderr  # the children's private addresses


@pytest.mark.skipif(not hasattr(os, "fork"), reason="several processes need fork")
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_to_the_parent_alone_stops_every_process(tmp_path, servers, sig):
    base = tmp_path / "sessions"
    server = servers(base, "--num-procs", "2")
    children = _children(server.proc.pid)
    folders = open_sessions_of(server, base, 4)
    assert {json.loads((f / MARKER).read_text())["pid"] for f in folders} == set(children)
    assert server.stop(sig) == 0, server.stderr  # the parent only, not its group
    assert all(_gone(pid) for pid in children), "a server process outlived the parent"
    assert session_folders(base) == [], "patients' files were left on disk"
    last = server.stderr.strip().splitlines()[-1]  # 4, and any warm-up still running
    assert last.startswith("hipviz: stopped; removed ") and int(last.split()[3]) >= 4, last
    assert "Traceback" not in server.stderr


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_the_children_of_a_killed_parent_stop_and_clean_up(tmp_path, servers):
    base = tmp_path / "sessions"
    server = servers(base, "--num-procs", "2")
    children = _children(server.proc.pid)
    open_sessions_of(server, base, 2)
    server.stop(signal.SIGKILL)
    end = time.monotonic() + 60
    while not all(_gone(pid) for pid in children) or session_folders(base):
        assert time.monotonic() < end, "the children of a killed server kept running"
        time.sleep(0.2)


def open_sessions_of(server: Server, base: Path, n: int) -> list[Path]:
    """Open ``n`` sessions of a several-process server; a patient's file in each folder."""
    before = set(session_folders(base))
    for _ in range(n):
        server.open_page()
    end = time.monotonic() + 120
    while len(set(session_folders(base)) - before) < n:
        assert time.monotonic() < end, "the sessions made no folders"
        time.sleep(0.2)
    folders = sorted(set(session_folders(base)) - before)
    for folder in folders:
        (folder / "pelvis.stl").write_bytes(b"solid patient\nendsolid patient\n")
    return folders


def test_a_link_cannot_choose_its_session(tmp_path, servers):
    """Unsigned, Bokeh would take ``?bokeh-session-id=`` and let its author join that session."""
    import urllib.error

    base = tmp_path / "sessions"
    server = servers(base)
    url = f"http://127.0.0.1:{server.port}/?bokeh-session-id=chosen-by-the-link-author-000000"
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(url, timeout=120)
    refused.value.close()
    assert refused.value.code == 403
