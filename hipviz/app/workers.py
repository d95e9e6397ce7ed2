"""The server's worker threads and reader processes, shared by every page.

The event loop, which every session shares, only does the quick parts of a
change; measures, new bones, cuts, uploads and exports run here. Reading an
upload (seconds of Python for a big mesh) runs in a child process
(:func:`run_in_child`): in a thread it would hold the interpreter's lock in
turns with the event loop, and every other page's slider would wait.
"""

from __future__ import annotations

import multiprocessing
import signal
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from hipviz.errors import HipvizError

#: Measures run here, off the server's event loop, one at a time per session
#: and in all: a measure is mostly Python holding the interpreter's lock, so a
#: second thread would measure no faster and take that lock from the event
#: loop more often (the loop, not the measures, sends every session its
#: picture). Pages queue for it in turn; each is measured at its latest plan.
MEASURE_POOL = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hipviz-measure")
#: New bones, cuts, uploads and exports are built here: seconds each, so
#: apart from the measures, which must not queue behind them.
BUILD_POOL = ThreadPoolExecutor(max_workers=2, thread_name_prefix="hipviz-build")
#: The Motion view's model and limits (some hundred ms per plan): one at a
#: time, apart from the measures and the builds.
MOTION_POOL = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hipviz-motion")
#: One export renders at a time.
EXPORT_LOCK = threading.Lock()

#: Modules the reader processes start with (imported once, by the fork server).
CHILD_PRELOAD = ["hipviz.app.state"]
_CONTEXT: list[Any] = []
_CONTEXT_LOCK = threading.Lock()


def child_context() -> Any:
    """The multiprocessing context of the reader processes (made on first use).

    "forkserver": each child is forked from a small server process that has
    imported :data:`CHILD_PRELOAD` and runs no threads, so a child starts in
    milliseconds and safely (forking the web server itself, with its
    threads, is not safe).
    """
    with _CONTEXT_LOCK:
        if not _CONTEXT:
            ctx = multiprocessing.get_context("forkserver")
            ctx.set_forkserver_preload(CHILD_PRELOAD)
            _CONTEXT.append(ctx)
        return _CONTEXT[0]


def start_children() -> None:
    """Start the fork server now (about 2 s), not when the first upload arrives."""
    from multiprocessing import forkserver

    child_context()
    forkserver.ensure_running()


def run_in_child(
    fn: Callable[..., Any],
    *args: Any,
    progress: Callable[[str], Any] | None = None,
    **kwargs: Any,
) -> Any:
    """``fn(*args, **kwargs)`` run in a new child process; its result.

    Blocks the calling (worker) thread, not the interpreter: the child has its
    own. ``fn``, its arguments and its result must pickle. What the child
    passes to ``progress`` is handed to ``progress`` here as it comes; an
    exception the child raises is raised here. With ``progress``, ``fn`` is
    given a ``progress`` keyword: a function of one string. The child is gone when this
    returns (its memory with it).

    Raises
    ------
    HipvizError
        If the child ended without an answer (killed, out of memory).
    """
    ctx = child_context()
    receive, send = ctx.Pipe(duplex=False)
    child = ctx.Process(
        target=_child_main,
        args=(send, fn, args, kwargs, progress is not None),
        name="hipviz-reader",
        daemon=True,
    )
    child.start()
    send.close()  # the child holds the only sending end: its exit ends recv()
    try:
        while True:
            try:
                kind, value = receive.recv()
            except EOFError:
                child.join(5)
                msg = (
                    f"the process reading your files stopped without an answer "
                    f"(exit code {child.exitcode}); the files may be too large for this server"
                )
                raise HipvizError(msg) from None
            if kind == "progress":
                if progress is not None:
                    progress(value)
            elif kind == "error":
                raise value
            else:
                return value
    finally:
        receive.close()
        child.join(5)
        if child.is_alive():
            child.kill()
            child.join()


def _child_main(send: Any, fn: Callable[..., Any], args: tuple, kwargs: dict, tell: bool) -> None:
    """A reader process: run ``fn``, send its progress (``tell``), then its result or error."""
    # The terminal's Ctrl+C reaches the whole process group: the server stops
    # its children itself.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        if tell:
            kwargs = {**kwargs, "progress": lambda text: send.send(("progress", text))}
        result = fn(*args, **kwargs)
        send.send(("done", result))
    except BaseException as exc:  # noqa: BLE001 - every failure goes back to the server
        try:
            send.send(("error", exc))
        except Exception:  # an exception that does not pickle: its words
            send.send(("error", HipvizError(f"{type(exc).__name__}: {exc}")))
    finally:
        send.close()
