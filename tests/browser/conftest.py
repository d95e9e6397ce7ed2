"""Real-browser fixtures: Debian's Chromium (software WebGL) and a Panel server in a thread.

Needs ``playwright`` and ``pytest-playwright`` (never ``playwright install``:
the browser is the system's ``/usr/bin/chromium``). Tests skip where it is absent.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--enable-unsafe-swiftshader",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
NO_CHROMIUM = f"{CHROMIUM} not found (apt-get install chromium); browser tests need it"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if CHROMIUM.exists():
        return
    here = Path(__file__).parent
    for item in items:
        if here in item.path.parents:
            item.add_marker(pytest.mark.skip(reason=NO_CHROMIUM))


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict) -> dict:
    """pytest-playwright launches the system Chromium; each launch gets a fresh profile."""
    return {
        **browser_type_launch_args,
        "executable_path": str(CHROMIUM),
        "args": CHROMIUM_ARGS,
        "headless": True,
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Served:
    """A Panel app served on 127.0.0.1, and what each session built."""

    url: str
    sessions: list[dict[str, Any]] = field(default_factory=list)

    @property
    def last(self) -> dict[str, Any]:
        return self.sessions[-1]

    def on_server(self, fn: Callable[[], Any], timeout: float = 10.0) -> Any:
        """Run ``fn`` on the last session's event loop (holding its document) and wait."""
        done = threading.Event()
        out: dict[str, Any] = {}

        def call() -> None:
            try:
                out["value"] = fn()
            except BaseException as err:  # handed back to the test thread
                out["error"] = err
            finally:
                done.set()

        self.last["doc"].add_next_tick_callback(call)
        assert done.wait(timeout), "the server did not run the callback"
        if "error" in out:
            raise out["error"]
        return out.get("value")


@pytest.fixture(scope="module")
def serve() -> Iterator[Callable[[Callable[[], Any]], Served]]:
    """``serve(factory)``: serve ``factory()`` (returns a dict with key "app") per session."""
    import panel as pn

    servers = []

    def start(factory: Callable[[], dict[str, Any]]) -> Served:
        port = free_port()
        served = Served(url=f"http://127.0.0.1:{port}/")

        def session():
            built = factory()
            built["doc"] = pn.state.curdoc
            served.sessions.append(built)
            return built["app"]

        server = pn.serve(
            {"/": session},
            port=port,
            address="127.0.0.1",
            threaded=True,
            show=False,
            start=True,
        )
        servers.append(server)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    return served
            time.sleep(0.05)
        pytest.fail(f"the Panel server did not start on port {port}")

    yield start
    for server in servers:
        server.stop()


@pytest.fixture(scope="module")
def serve_with(serve) -> Callable[..., Served]:
    """``serve_with(factory, **server_options)``: ``serve`` with Bokeh server options.

    For example ``check_unused_sessions_milliseconds=500,
    unused_session_lifetime_milliseconds=3000`` destroys the session of a closed
    page within a few seconds (Bokeh's defaults take 15 to 32 s).
    """
    import panel as pn

    def start(factory: Callable[[], dict[str, Any]], **options: Any) -> Served:
        original = pn.serve

        def with_options(*args: Any, **kwargs: Any) -> Any:
            return original(*args, **options, **kwargs)

        pn.serve = with_options
        try:
            return serve(factory)
        finally:
            pn.serve = original

    return start
