#!/usr/bin/env python
"""Does one user wait on another? How many can one server take?

A script, not a test. It starts ``hipviz serve`` as its own process on
127.0.0.1 (so its memory and CPU are its own) and drives sessions with the
thin Bokeh-protocol client of ``bokeh_driver.py`` (no browsers eating the
same cores). A round trip is a "Lateral turn (°)" slider change sent by a
session until the server's message with the fragment's new matrices arrives
(what the browser draws the moved piece from).

``busy``: one session B moves its slider every 100 ms while it is alone
(idle), then while another session A uploads a 60 MB femur (a binary STL of
the built-in femur, subdivided: 1.18 M triangles, made in a temporary
folder) with the built-in pelvis and presses "Load my meshes", then while A
switches between teaching cases (each a new hip), then while A opens new
pages one after the other (each page built by the server). Round trips of B: median,
90th percentile and maximum in each phase; A's own times.

``room``: N sessions (1, 10, 20, 40) open the same plan and each moves its
slider every ``--period`` seconds (random phase) for ``--seconds``, and
at least until they have made ``--min-moves`` moves in all (a 90th percentile
of one page's 20 moves is its second slowest, too noisy to compare); round
trip p50/p90/max, server CPU per move (all threads, and the event loops'
own: their main threads' CPU time, which depends little on what else the
machine runs, unlike the round trips), server memory (RSS, and PSS summed
over processes with ``--num-procs``) when they are open, at the peak, and
after they have closed and the server has dropped their sessions.

Usage::

    python scripts/bench_concurrency.py busy
    python scripts/bench_concurrency.py room --sessions 1,10,20,40
    python scripts/bench_concurrency.py room --sessions 40 --num-procs 2
    python scripts/bench_concurrency.py busy --source /path/to/other/checkout   # before/after
    python scripts/bench_concurrency.py busy --what open      # while A opens new pages
    python scripts/bench_concurrency.py room --sessions 20 --profile-loop /tmp/loop.txt
    python scripts/bench_concurrency.py busy --what upload --profile-loop /tmp/loop.txt
        # samples the server with py-spy (pip install py-spy): where the event loop's time goes
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bokeh_driver import ThinSession  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SLIDER = "Lateral turn (°)"
QUERY = "case=dysplastic&procedure=pao"
#: Teaching cases A switches through (each a hip the server has not built yet).
CASES = ("borderline", "retroverted", "valga-antetorsion", "cam", "normal")
#: New pages A opens, one after the other (each built by the server).
OPENS = 4
#: Bokeh drops a closed page's session after 15 s, checking every 17 s.
SESSION_DROP_S = 40


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- the server ----------------------------------------------------------------


class Server:
    """``hipviz serve`` from ``source`` in its own process (group)."""

    def __init__(self, source: Path, extra: list[str], launcher: Path | None = None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.log = tempfile.NamedTemporaryFile(prefix="hipviz-bench-", suffix=".log", delete=False)
        self.proc = subprocess.Popen(
            [
                sys.executable,
                *(["-m", "hipviz.cli"] if launcher is None else [str(launcher)]),
                "serve",
                "--port",
                str(self.port),
                *extra,
            ],
            cwd=source,
            env={**os.environ, "PYTHONPATH": str(source)},
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.ps = psutil.Process(self.proc.pid)

    def page_url(self) -> str:
        return self.url

    def wait_ready(self, timeout: float = 120) -> None:
        import urllib.request

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited; see {self.log.name}")
            try:
                urllib.request.urlopen(self.url + "static/extensions/panel/panel.min.js", timeout=2)
            except OSError:
                time.sleep(0.5)
                continue
            return
        raise TimeoutError(f"the server did not answer in {timeout} s")

    def procs(self) -> list[psutil.Process]:
        try:
            return [self.ps, *self.ps.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def rss_mb(self) -> float:
        return sum(p.memory_info().rss for p in self.procs()) / 1e6

    def pss_mb(self) -> float:
        """Proportional set size summed over the processes (forked pages counted once)."""
        return sum(p.memory_full_info().pss for p in self.procs()) / 1e6

    def cpu_s(self) -> float:
        return sum(sum(p.cpu_times()[:2]) for p in self.procs())

    def loop_cpu_s(self) -> float:
        """CPU time of the processes' main threads (their event loops), s.

        Unlike round trips, it hardly depends on what else the machine runs:
        the event loop's own cost of the moves it served.
        """
        total = 0.0
        for p in self.procs():
            try:
                total += sum(t.user_time + t.system_time for t in p.threads() if t.id == p.pid)
            except psutil.NoSuchProcess:
                continue
        return total

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGINT)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


class Servers:
    """``k`` independent single-process servers, as behind a proxy that keeps
    each page on one of them (sticky sessions): page ``i`` goes to server
    ``i % k``; memory and CPU are their sums."""

    def __init__(self, k: int, source: Path, extra: list[str], launcher: Path | None = None):
        self.servers = [Server(source, extra, launcher) for _ in range(k)]
        self.url = self.servers[0].url
        self.log = self.servers[0].log
        self._next = 0

    def page_url(self) -> str:
        url = self.servers[self._next % len(self.servers)].url
        self._next += 1
        return url

    def wait_ready(self) -> None:
        for s in self.servers:
            s.wait_ready()

    def rss_mb(self) -> float:
        return sum(s.rss_mb() for s in self.servers)

    def pss_mb(self) -> float:
        return sum(s.pss_mb() for s in self.servers)

    def cpu_s(self) -> float:
        return sum(s.cpu_s() for s in self.servers)

    def loop_cpu_s(self) -> float:
        return sum(s.loop_cpu_s() for s in self.servers)

    def stop(self) -> None:
        for s in self.servers:
            s.stop()


def settle(server: Server, seconds: float = 3.0) -> None:
    """Wait until the server has been idle (< 5 % CPU) for ``seconds`` (at most a minute)."""
    deadline = time.monotonic() + 60
    quiet = 0.0
    while quiet < seconds and time.monotonic() < deadline:
        c0 = server.cpu_s()
        time.sleep(0.5)
        quiet = quiet + 0.5 if server.cpu_s() - c0 < 0.025 else 0.0


# --- statistics ----------------------------------------------------------------


def stats_ms(rtts: list[float]) -> dict[str, float]:
    a = np.asarray(rtts, dtype=float) * 1000
    if not len(a):
        return {"n": 0, "p50": float("nan"), "p90": float("nan"), "max": float("nan")}
    return {
        "n": len(a),
        "p50": float(np.percentile(a, 50)),
        "p90": float(np.percentile(a, 90)),
        "max": float(a.max()),
    }


def fmt(s: dict[str, float]) -> str:
    return f"{s['p50']:.0f} / {s['p90']:.0f} / {s['max']:.0f} ms (n={s['n']})"


# --- sessions --------------------------------------------------------------------


async def mover(
    session: ThinSession,
    stop: asyncio.Event,
    period: float,
    rtts: list,
    phase: float = 0.0,
    starts: list | None = None,
) -> None:
    """Move the slider every ``period`` s until ``stop``; append each round trip
    (and, to ``starts``, when each move was sent: ``time.perf_counter()``)."""
    slider = session.slider(SLIDER)
    await asyncio.sleep(phase)
    i = 0
    while not stop.is_set():
        i += 1
        value = 2.5 * (i % 4 + 1)
        if value == session.values.get(slider):
            continue
        t0 = time.perf_counter()
        if starts is not None:
            starts.append(t0)
        rtts.append(await session.move(slider, value))
        await asyncio.sleep(max(0.0, period - (time.perf_counter() - t0)))


def files_shown(content: str) -> bool:
    """Whether a message's JSON content shows the page's source line "your files: …".

    The line is escaped as text, its colon too (``&#58;``, itself escaped
    once more inside the HTML pane's text); "saving your files…" is not it.
    """
    return any(f"your files{c}" in content for c in (":", "&#58;", "&amp;#58;"))


def big_femur(folder: Path) -> tuple[Path, Path]:
    """A 59 MB binary STL femur (1.18 M triangles) and the built-in pelvis."""
    from hipviz.anatomy import builtin_hip

    femur = builtin_hip(side="left", subdivisions=30).femur.subdivide().subdivide()
    pelvis = builtin_hip(side="left").pelvis
    paths = folder / "pelvis.stl", folder / "femur.stl"
    pelvis.export(paths[0])
    femur.export(paths[1])
    return paths


async def busy(args: argparse.Namespace) -> None:
    files_dir = Path(tempfile.mkdtemp(prefix="hipviz-bench-files-"))
    server = Server(args.source, args.serve_args, args.launcher)
    try:
        pelvis, femur = big_femur(files_dir)
        print(
            f"femur.stl {femur.stat().st_size / 1e6:.1f} MB, pelvis.stl "
            f"{pelvis.stat().st_size / 1e6:.1f} MB",
            flush=True,
        )
        server.wait_ready()
        b = ThinSession(server.url)
        await b.open(QUERY)
        a = ThinSession(server.url)
        await a.open("")
        settle(server)
        slider = b.slider(SLIDER)
        for i in range(10):  # warm
            await b.move(slider, 0.5 * (i + 1))
        phases: dict[str, dict] = {}

        async def observe(name: str, work) -> None:
            stop, rtts, starts = asyncio.Event(), [], []
            task = asyncio.create_task(mover(b, stop, 0.1, rtts, starts=starts))
            t0 = time.perf_counter()
            try:
                extra = await work()
            finally:
                stop.set()
                await task
            if args.slowest:  # when B's slowest moves were sent, from the phase's start
                slow = sorted(zip(rtts, starts, strict=False), reverse=True)[: args.slowest]
                when = ", ".join(f"{1e3 * r:.0f} ms at {t - t0:.2f} s" for r, t in slow)
                print(f"{name}: B's slowest moves: {when}", flush=True)
            phases[name] = {"rtt": stats_ms(rtts), "s": time.perf_counter() - t0, **(extra or {})}
            print(
                f"{name}: B round trip p50/p90/max {fmt(phases[name]['rtt'])}; "
                f"{phases[name]['s']:.1f} s; {extra or ''}",
                flush=True,
            )

        async def idle():
            await asyncio.sleep(5)

        async def upload():
            done = a.wait_for(lambda c: files_shown(c) or a.error_shown(c))
            table = a.wait_for(lambda c: "hv-measures" in c)  # drawn after the source line
            t0 = time.perf_counter()
            spy = None
            if args.profile_loop:
                spy = spy_on(server.proc.pid, args, 12, timeline=True)
            await a.upload(
                {
                    "Pelvis": ("pelvis.stl", pelvis.read_bytes()),
                    "Femur": ("femur.stl", femur.read_bytes()),
                },
                whole=args.whole,
            )
            sent = time.perf_counter() - t0
            await a.click("Load my meshes")
            content = await asyncio.wait_for(done, 600)
            shown = time.perf_counter() - t0
            ok = files_shown(content)
            if not ok:
                print("A's upload failed:", content[:300], flush=True)
            if ok:  # the hip is drawn, its measures shown
                await asyncio.wait_for(table, 600)
            if spy is not None:
                spy.wait()
                print(loop_blocks(args.profile_loop), flush=True)
            return {
                "A sent files s": round(sent, 2),
                "A hip shown s": round(shown, 2),
                "A loaded": ok,
                "A total s": round(time.perf_counter() - t0, 1),
            }

        async def opens():
            times = []
            for _ in range(OPENS):
                page = ThinSession(server.url)
                times.append(round(await page.open(QUERY, timeout=300), 2))
                await page.close()
            return {"A page opens s": times}

        async def cases():
            (select,) = a.find("Select", title="Hip")
            times = []
            for case in CASES:
                t0 = time.perf_counter()
                drawn = a.wait_for(lambda c: "hv-measures" in c)
                await a.set(select, value=case)
                await asyncio.wait_for(drawn, 300)
                times.append(round(time.perf_counter() - t0, 2))
            return {"A case switches s": times}

        await observe("idle", idle)
        if args.what in ("upload", "both"):
            await observe("upload 60 MB", upload)
            settle(server)
            await observe("idle again", idle)
        if args.what in ("case", "both"):
            await observe("case switches", cases)
        if args.what in ("open", "both"):
            await observe("page opens", opens)
        await a.close()
        await b.close()
        idle_p50, idle_p90 = phases["idle"]["rtt"]["p50"], phases["idle"]["rtt"]["p90"]
        print("\n| phase | B round trip p50 / p90 / max | p90 ÷ idle p90 | A |")
        print("|---|---|---|---|")
        for name, ph in phases.items():
            extra = {k: v for k, v in ph.items() if k not in ("rtt", "s")}
            print(
                f"| {name} | {fmt(ph['rtt'])} | {ph['rtt']['p90'] / idle_p90:.1f} | {extra or ''} |"
            )
        print(
            f"\n(idle p50 {idle_p50:.0f} ms; load average {os.getloadavg()[0]:.1f} on "
            f"{os.cpu_count()} cores; server log {server.log.name})"
        )
    finally:
        server.stop()
        shutil.rmtree(files_dir, ignore_errors=True)


def spy_on(
    pid: int, args: argparse.Namespace, seconds: float, *, timeline: bool = False
) -> subprocess.Popen:
    """Sample a server's threads with py-spy while the sessions move (``--profile-loop``).

    ``timeline``: every sample in order, idle ones too (speedscope's format),
    for :func:`loop_blocks`; else counts of stacks (raw), for :func:`loop_profile`.
    """
    fmt = ["--format", "speedscope", "--idle"] if timeline else ["--format", "raw"]
    return subprocess.Popen(
        [
            "py-spy",
            "record",
            "--pid",
            str(pid),
            "--duration",
            str(max(1, int(seconds) - 1)),
            "--rate",
            "250",
            "--threads",
            "--nonblocking",
            *fmt,
            "--output",
            str(args.profile_loop),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def loop_profile(path: Path, n: int, top: int = 25) -> str:
    """Where the event loop's thread spent its busy samples: the frames most often on its stack.

    py-spy's raw format: ``thread (0x..): "Name";frame;frame... count`` per stack
    (idle samples left out). Each frame counts once per sample it appears in.
    """
    busy, frames = 0, {}
    for line in Path(path).read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        parts = stack.split(";")
        if not parts[0].startswith("thread") or "MainThread" not in parts[0]:
            continue
        k = int(count)
        busy += k
        for frame in set(parts[1:]):
            frames[frame] = frames.get(frame, 0) + k
    rows = sorted(frames.items(), key=lambda kv: -kv[1])[:top]
    out = [f"\nevent loop busy samples ({n} sessions): {busy}; frames on the stack, share of busy:"]
    out += [f"  {100 * v / max(1, busy):5.1f} %  {f}" for f, v in rows]
    return "\n".join(out)


def loop_blocks(path: Path, top: int = 8, rate_hz: float = 250) -> str:
    """The longest stretches the event loop's thread worked without a break, and what in.

    Reads py-spy's speedscope output (samples in order, idle ones included):
    a stretch is a run of samples whose stack is not waiting in the loop's
    ``select``; it is named by its innermost hipviz frame (else its innermost
    frame) most often sampled.
    """
    data = json.loads(Path(path).read_text())
    frames = [
        f"{f['name']} ({f.get('file', '').rpartition('site-packages/')[2]}:{f.get('line')})"
        for f in data["shared"]["frames"]
    ]
    (profile,) = [p for p in data["profiles"] if "MainThread" in p["name"]]
    runs, current = [], []
    for stack in profile["samples"]:
        idle = not stack or any("select" in frames[i] and "selectors" in frames[i] for i in stack)
        if idle:
            if current:
                runs.append(current)
            current = []
        else:
            current.append(stack)
    if current:
        runs.append(current)
    runs.sort(key=len, reverse=True)
    out = [f"\nlongest stretches of event-loop work (1 sample = {1000 / rate_hz:.0f} ms):"]
    for run in runs[:top]:
        names: dict[str, int] = {}
        for stack in run:
            mine = [frames[i] for i in stack if "hipviz" in frames[i]] or [frames[stack[-1]]]
            names[mine[-1]] = names.get(mine[-1], 0) + 1
        what = ", ".join(f"{k} ×{v}" for k, v in sorted(names.items(), key=lambda kv: -kv[1])[:3])
        out.append(f"  {len(run) * 1000 / rate_hz:6.0f} ms  {what}")
    return "\n".join(out)


async def level(server: Server, n: int, args: argparse.Namespace) -> dict:
    """``n`` sessions open, move, close; what they cost the server."""
    sessions = [ThinSession(server.page_url()) for _ in range(n)]
    sem = asyncio.Semaphore(4)  # open a few at a time, like a class arriving

    async def opened(s: ThinSession) -> float:
        async with sem:
            return await s.open(QUERY, timeout=600)

    open_s = await asyncio.gather(*(opened(s) for s in sessions))
    settle(server, 1.0)
    rss_open = server.rss_mb()
    stop, rtts, peak = asyncio.Event(), [], [rss_open]

    async def sample() -> None:
        while not stop.is_set():
            peak.append(server.rss_mb())
            await asyncio.sleep(0.5)

    cpu0, loop0, t0 = server.cpu_s(), server.loop_cpu_s(), time.perf_counter()
    tasks = [
        asyncio.create_task(mover(s, stop, args.period, rtts, random.uniform(0, args.period)))
        for s in sessions
    ]
    sampler = asyncio.create_task(sample())
    # a p90 needs enough round trips: one page moving for 10 s makes only 20
    moving_s = max(args.seconds, args.min_moves * args.period / n)
    # the first server (and only one, by default)
    spy = spy_on(server.servers[0].proc.pid, args, moving_s) if args.profile_loop else None
    await asyncio.sleep(moving_s)
    if spy is not None:
        spy.wait()
        print(loop_profile(args.profile_loop, n), flush=True)
    stop.set()
    await asyncio.gather(*tasks, sampler)
    wall, cpu = time.perf_counter() - t0, server.cpu_s() - cpu0
    loop_cpu = server.loop_cpu_s() - loop0
    for s in sessions:
        await s.close()
    await asyncio.sleep(SESSION_DROP_S)
    settle(server)
    return {
        "sessions": n,
        "rtt": stats_ms(rtts),
        "moves/s": len(rtts) / wall,
        "cpu ms/move": 1000 * cpu / max(1, len(rtts)),
        "loop ms/move": 1000 * loop_cpu / max(1, len(rtts)),
        "open s": float(np.median(open_s)),
        "rss open": rss_open,
        "rss peak": max(peak),
        "rss after": server.rss_mb(),
        "pss after": server.pss_mb(),
    }


async def room(args: argparse.Namespace) -> None:
    server = Servers(args.instances, args.source, args.serve_args, args.launcher)
    rows = []
    try:
        server.wait_ready()
        # the first page builds the plan's hip (shared analysis): not part of the burst
        for s in server.servers:
            first = ThinSession(s.url)
            await first.open(QUERY)
            await first.close()
        await asyncio.sleep(SESSION_DROP_S)
        settle(server)
        start_rss, start_pss = server.rss_mb(), server.pss_mb()
        print(f"server at start: RSS {start_rss:.0f} MB, PSS {start_pss:.0f} MB", flush=True)
        for n in args.sessions:
            row = await level(server, n, args)
            rows.append(row)
            print(
                f"{n} sessions: round trip p50/p90/max {fmt(row['rtt'])}, "
                f"{row['moves/s']:.0f} moves/s, {row['cpu ms/move']:.1f} ms CPU/move ("
                f"{row['loop ms/move']:.1f} ms on the event loop), RSS open "
                f"{row['rss open']:.0f} / peak {row['rss peak']:.0f} / after close "
                f"{row['rss after']:.0f} MB",
                flush=True,
            )
        print(
            f"\n{args.instances} × server {' '.join(args.serve_args) or '(defaults)'}; "
            "each session moves every "
            f"{args.period:g} s for at least {args.seconds:g} s and {args.min_moves} moves in "
            f"all; start RSS {start_rss:.0f} MB; load "
            f"average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores, "
            f"Python {platform.python_version()}"
        )
        print(
            "\n| sessions | round trip p50 | p90 | max | moves/s | server CPU per move "
            "| event loop per move | page open (median) | RSS open | RSS peak | RSS after close |"
        )
        print("|---|---|---|---|---|---|---|---|---|---|---|")
        for r in rows:
            print(
                f"| {r['sessions']} | {r['rtt']['p50']:.0f} ms | {r['rtt']['p90']:.0f} ms | "
                f"{r['rtt']['max']:.0f} ms | {r['moves/s']:.0f} | {r['cpu ms/move']:.1f} ms | "
                f"{r['loop ms/move']:.1f} ms | "
                f"{r['open s']:.1f} s | "
                f"{r['rss open']:.0f} MB | {r['rss peak']:.0f} MB | {r['rss after']:.0f} MB |"
            )
    finally:
        server.stop()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("scenario", choices=("busy", "room"))
    p.add_argument("--source", type=Path, default=ROOT, help="checkout whose hipviz is served")
    p.add_argument("--what", choices=("upload", "case", "open", "both"), default="both")
    p.add_argument(
        "--slowest",
        type=int,
        default=0,
        help="busy: print B's N slowest moves of each phase, and when they were sent",
    )
    p.add_argument(
        "--whole",
        action="store_true",
        help="busy: A sends each file whole, in one message, as Panel's file input does "
        "(the way before pieces; for a --source checkout from before them)",
    )
    p.add_argument(
        "--sessions", default="1,10,20,40", type=lambda s: [int(v) for v in s.split(",")]
    )
    p.add_argument("--period", type=float, default=0.5, help="seconds between a session's moves")
    p.add_argument("--seconds", type=float, default=10.0, help="moving time per level")
    p.add_argument(
        "--min-moves",
        type=int,
        default=100,
        help="each level moves until its sessions have made at least this many moves in all "
        "(one session moving every 0.5 s: 50 s)",
    )
    p.add_argument("--num-procs", type=int, default=None, help="pass --num-procs to the server")
    p.add_argument(
        "--instances",
        type=int,
        default=1,
        help="room: this many separate servers, pages shared out in turn (a sticky proxy)",
    )
    p.add_argument(
        "--profile-loop",
        type=Path,
        help="room: sample the server with py-spy while sessions move; write its raw "
        "stacks here and print where the event loop's thread was busy",
    )
    p.add_argument(
        "--launcher",
        type=Path,
        help="a script run instead of `python -m hipviz.cli` (same arguments): a profiling wrapper",
    )
    args = p.parse_args()
    args.serve_args = [] if args.num_procs is None else ["--num-procs", str(args.num_procs)]
    random.seed(0)
    asyncio.run(busy(args) if args.scenario == "busy" else room(args))


if __name__ == "__main__":
    main()
