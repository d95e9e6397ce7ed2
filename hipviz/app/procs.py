"""``hipviz serve --num-procs N``: N server processes, each page in one of them.

A Bokeh page is two connections: the page request, which builds the session
(the whole page: widgets, plan, hip) and hands the browser a token naming
it, then the websocket, which brings the token back. With processes that
share a listening socket (Tornado's ``num_procs``) the system gives each
connection to whichever process accepts it first, so the websocket often
reaches a process that has never seen the session: Bokeh builds the page a
second time there, from the websocket's request, without the page's link
(its plan is lost), and the first copy waits 15 s to be dropped.

Here the parent process accepts every connection itself and hands it to a
child before anything is read from it: it peeks at the request's head
(``MSG_PEEK``: the bytes stay for the child to read) and

* a websocket whose Bokeh token names a child (each child writes its index
  into the tokens of the sessions it builds, :data:`PROCESS_KEY`) goes to
  that child, where its session lives;
* anything else (a page, a script, a picture) goes to the children in turn;
  the child that builds a page's session is the one its websocket reaches.

The connection's socket itself is passed (``SCM_RIGHTS`` over a Unix stream
socket pair per child); the child serves it as if it had accepted it. So each
session is built once, in one process, with its link.

Stopping: the parent handles Ctrl+C, SIGTERM and SIGHUP; it stops accepting,
sends each child SIGTERM and waits for it. A child deletes its sessions'
folders, tells the parent how many, and exits (a second SIGTERM: at once,
after deleting them). Children ignore SIGINT and SIGHUP, which a terminal
sends the whole process group, so that they stop once, when told; on Linux
a child also gets SIGTERM if the parent dies without telling it
(``PR_SET_PDEATHSIG``), so a killed parent leaves no server behind.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import selectors
import signal
import socket
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

#: Key of a session token's payload naming the process that built the session.
PROCESS_KEY = "hipviz_process"
#: Most of a request's head the parent reads to route it, bytes (Tornado's own
#: limit on a request's header).
MAX_HEAD_BYTES = 65_536
#: A connection whose head has not arrived after this long goes to a child
#: anyway (which times it out as it would any slow client), s.
HEAD_WAIT_S = 10.0
#: How long a child may take to stop before the parent kills it, s.
STOP_WAIT_S = 60.0


def token_payload_process(token: str) -> int | None:
    """The process index a Bokeh session token names, or None.

    Parameters
    ----------
    token : str
        As the page sends it in ``Sec-WebSocket-Protocol: bokeh, <token>``.
    """
    from bokeh.util.token import get_token_payload

    try:
        payload = get_token_payload(token)
    except Exception:  # noqa: BLE001 - any malformed token: no route, the child refuses it
        return None
    index = payload.get(PROCESS_KEY) if isinstance(payload, dict) else None
    if isinstance(index, bool) or not isinstance(index, int):
        return None
    return index


def route(head: bytes, n: int) -> int | None:
    """The child a request must go to, from its head; None: any child.

    Parameters
    ----------
    head : bytes
        The start of the request as received (request line and headers).
    n : int
        Number of children.

    Returns
    -------
    int or None
        The index (``0 <= index < n``) named by a websocket request's Bokeh
        token; None for any other request, a token that names no child, or
        a head that cannot be read.
    """
    text = head.split(b"\r\n\r\n", 1)[0].decode("latin-1")
    for line in text.split("\r\n")[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() != "sec-websocket-protocol":
            continue
        parts = [p.strip() for p in value.split(",")]
        if len(parts) == 2 and parts[0] == "bokeh":
            index = token_payload_process(parts[1])
            if index is not None and 0 <= index < n:
                return index
    return None


def head_complete(head: bytes) -> bool:
    """Whether ``head`` holds a request's whole head (or as much as is read)."""
    return b"\r\n\r\n" in head or len(head) >= MAX_HEAD_BYTES


def set_parent_death_signal(sig: int = signal.SIGTERM) -> None:
    """Ask Linux to send ``sig`` to this process when its parent dies (elsewhere: nothing)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        libc.prctl(1, int(sig), 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return


@dataclass
class _Child:
    index: int
    pid: int
    channel: socket.socket
    removed: int = 0
    alive: bool = True


@dataclass
class _Waiting:
    """An accepted connection whose request head has not all arrived."""

    conn: socket.socket
    since: float
    retry_at: float = 0.0


@dataclass
class Dispatcher:
    """The parent: accepts connections and passes each to its child (see the module notes)."""

    listeners: Sequence[socket.socket]
    children: list[_Child]
    signals: list[int] = field(default_factory=list)
    _turn: int = 0
    _waiting: dict[int, _Waiting] = field(default_factory=dict)

    def _live(self) -> list[_Child]:
        return [c for c in self.children if c.alive]

    def _pick(self, index: int | None) -> _Child | None:
        live = self._live()
        if not live:
            return None
        if index is not None and self.children[index].alive:
            return self.children[index]
        self._turn += 1
        return live[self._turn % len(live)]

    def _pass(self, conn: socket.socket, index: int | None) -> None:
        child = self._pick(index)
        try:
            if child is not None:
                try:
                    socket.send_fds(child.channel, [b"c"], [conn.fileno()])
                except BlockingIOError:  # its buffer is full: wait for the child a little
                    child.channel.settimeout(5.0)
                    try:
                        socket.send_fds(child.channel, [b"c"], [conn.fileno()])
                    finally:
                        child.channel.setblocking(False)
        except OSError as exc:  # the child is gone or stuck: drop the connection
            log.warning("could not pass a connection to server process %d: %s", child.index, exc)
        finally:
            conn.close()  # the child has its own copy of the socket

    def _peek(self, sel: selectors.BaseSelector, conn: socket.socket, now: float) -> None:
        """Pass ``conn`` on if its head is here (or it waited too long); else wait for more."""
        fd = conn.fileno()
        waiting = self._waiting.get(fd)
        try:
            head = conn.recv(MAX_HEAD_BYTES, socket.MSG_PEEK)
        except BlockingIOError:
            head = None
        except OSError:
            head = b""
        if head == b"":  # closed before saying anything
            self._forget(sel, conn)
            conn.close()
            return
        if head is not None and (head_complete(head) or now - waiting.since > HEAD_WAIT_S):
            self._forget(sel, conn)
            self._pass(conn, route(head, len(self.children)))
            return
        if waiting is not None and now - waiting.since > HEAD_WAIT_S:
            self._forget(sel, conn)
            self._pass(conn, None)
            return
        # part of the head: look again shortly (the socket stays readable,
        # so waiting on it would spin)
        if waiting is not None:
            waiting.retry_at = now + 0.005
            try:
                sel.unregister(conn)
            except (KeyError, ValueError):
                pass

    def _forget(self, sel: selectors.BaseSelector, conn: socket.socket) -> None:
        self._waiting.pop(conn.fileno(), None)
        try:
            sel.unregister(conn)
        except (KeyError, ValueError):
            pass

    def _accept(self, sel: selectors.BaseSelector, listener: socket.socket) -> None:
        for _ in range(64):  # a burst: take what is queued, then look at the rest
            try:
                conn, _ = listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # e.g. too many open files: try again later
                log.warning("accepting a connection: %s", exc)
                return
            conn.setblocking(False)
            self._waiting[conn.fileno()] = _Waiting(conn, time.monotonic())
            sel.register(conn, selectors.EVENT_READ, "conn")

    def _child_says(self, child: _Child) -> None:
        """Read a child's reports (``removed N`` lines), or see that it has exited."""
        while True:
            try:
                data = child.channel.recv(256)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if not data:
                child.alive = False
                return
            for line in data.decode("ascii", "replace").splitlines():
                words = line.split()  # each report counts folders not counted before
                if len(words) == 2 and words[0] == "removed" and words[1].isdigit():
                    child.removed += int(words[1])

    def _signal_children(self) -> None:
        for child in self._live():
            try:
                os.kill(child.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    def run(self) -> int:
        """Dispatch until a stop signal; stop the children; return the folders they removed."""
        sel = selectors.DefaultSelector()
        wake_r, wake_w = socket.socketpair()
        wake_r.setblocking(False)
        wake_w.setblocking(False)
        old_wakeup = signal.set_wakeup_fd(wake_w.fileno())
        sel.register(wake_r, selectors.EVENT_READ, "signal")
        for listener in self.listeners:
            listener.setblocking(False)
            sel.register(listener, selectors.EVENT_READ, "listen")
        for child in self.children:
            child.channel.setblocking(False)
            sel.register(child.channel, selectors.EVENT_READ, child)
        told = 0  # stop signals passed on to the children
        deadline = None
        try:
            while self._live():
                if self.signals and told < len(self.signals):
                    if told == 0:  # stop accepting; the children stop their sessions
                        for listener in self.listeners:
                            sel.unregister(listener)
                            listener.close()
                        for w in list(self._waiting.values()):
                            self._forget(sel, w.conn)
                            w.conn.close()
                        deadline = time.monotonic() + STOP_WAIT_S
                    self._signal_children()  # a second: they delete their folders and exit at once
                    told = len(self.signals)
                if deadline is not None and time.monotonic() > deadline:
                    for child in self._live():
                        os.kill(child.pid, signal.SIGKILL)
                        child.alive = False
                    break
                now = time.monotonic()
                retry = [w for w in self._waiting.values() if w.retry_at]
                timeout = 0.5
                if retry:
                    timeout = max(0.0, min(w.retry_at for w in retry) - now)
                for key, _ in sel.select(timeout):
                    what = key.data
                    if what == "signal":
                        try:
                            while wake_r.recv(512):
                                pass
                        except BlockingIOError:
                            pass
                    elif what == "listen":
                        self._accept(sel, key.fileobj)
                    elif what == "conn":
                        self._peek(sel, key.fileobj, time.monotonic())
                    else:
                        self._child_says(what)
                        if not what.alive:
                            sel.unregister(what.channel)
                            if not self.signals:
                                log.error(
                                    "server process %d (pid %d) stopped; its pages are lost",
                                    what.index,
                                    what.pid,
                                )
                now = time.monotonic()
                for w in list(self._waiting.values()):
                    if w.retry_at and w.retry_at <= now:
                        w.retry_at = 0.0
                        self._peek(sel, w.conn, now)  # still partial: polled again
        finally:
            signal.set_wakeup_fd(old_wakeup)
            for w in list(self._waiting.values()):
                w.conn.close()
            for listener in self.listeners:
                listener.close()
            for child in self.children:
                try:
                    os.waitpid(child.pid, 0)
                except ChildProcessError:
                    pass
                child.channel.close()
            sel.close()
            wake_r.close()
            wake_w.close()
        return sum(c.removed for c in self.children)


def receive_connections(channel: socket.socket, serve: Callable[[socket.socket], None]) -> bool:
    """In a child: serve every connection the parent has passed; False once it is gone.

    Parameters
    ----------
    channel : socket.socket
        The child's end of its Unix socket pair (non-blocking).
    serve : callable
        Called with each connection's socket (the child now owns it).
    """
    while True:
        try:
            msg, fds, _, _ = socket.recv_fds(channel, 64, 64)
        except BlockingIOError:
            return True
        except OSError:
            return False
        if not msg and not fds:
            return False
        for fd in fds:
            serve(socket.socket(fileno=fd))


def fork_children(
    n: int,
    listeners: Sequence[socket.socket],
    child_main: Callable[[int, socket.socket], int],
) -> Dispatcher:
    """Fork ``n`` children running ``child_main(index, channel)``; the parent's dispatcher.

    ``child_main`` returns the child's exit code; the child never returns
    from here (it exits with that code).
    """
    parent_pid = os.getpid()
    children: list[_Child] = []
    for index in range(n):
        # a stream: its buffer holds thousands of passed connections while a child
        # is busy (a datagram queue would refuse the eleventh on some systems)
        parent_end, child_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        pid = os.fork()
        if pid == 0:  # the child
            code = 1
            try:
                set_parent_death_signal()
                if os.getppid() != parent_pid:  # the parent died before that took effect
                    os._exit(1)
                for sock in (*listeners, parent_end, *(c.channel for c in children)):
                    sock.close()
                code = child_main(index, child_end)
            except BaseException:  # noqa: BLE001 - a child must never return into the parent's code
                log.exception("server process %d failed", index)
            finally:
                sys.stderr.flush()
                os._exit(code)
        child_end.close()
        children.append(_Child(index, pid, parent_end))
    return Dispatcher(listeners, children)


__all__ = [
    "PROCESS_KEY",
    "Dispatcher",
    "fork_children",
    "head_complete",
    "receive_connections",
    "route",
    "set_parent_death_signal",
    "token_payload_process",
]
