"""The served page's slow work runs in worker threads and comes back on its event loop.

A served page hands new bones, cuts and uploads to worker threads and gets
their results back through its Bokeh document's next-tick callbacks. Here
the document is a stand-in whose callbacks run on an asyncio loop in the
test's thread, as a server's do on its own; expected measures come from a
:class:`hipviz.app.state.HipSession` run in the test.
"""

from __future__ import annotations

import asyncio
import base64
import html
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

pytest.importorskip("panel")

from bokeh.document import Document  # noqa: E402

from hipviz import cases  # noqa: E402
from hipviz.app import main  # noqa: E402
from hipviz.app.state import MARKER, HipSession, Plan  # noqa: E402

SUBDIVISIONS = 6


class LoopDocument(Document):
    """A Bokeh document whose next-tick callbacks run on ``loop`` (thread-safe)."""

    def __init__(self, loop: asyncio.AbstractEventLoop):
        super().__init__()
        self.loop = loop

    def add_next_tick_callback(self, callback):
        self.loop.call_soon_threadsafe(callback)
        return callback


def served_app(loop: asyncio.AbstractEventLoop, **plan) -> main.HipApp:
    """A page built as outside a server, then switched to a served page's worker threads."""
    app = main.HipApp(Plan(**plan), subdivisions=SUBDIVISIONS)
    app._doc = LoopDocument(loop)
    shown = []
    show = app._show_status

    def record(message: str) -> None:
        shown.append(message)
        show(message)

    app._show_status = record
    app.statuses = shown
    return app


async def settled(app: main.HipApp, timeout: float = 120) -> None:
    """Wait until the page builds, measures and draws nothing more."""
    deadline = time.monotonic() + timeout
    quiet = 0
    while quiet < 5:
        await asyncio.sleep(0.05)
        busy = app._loading or app._measuring or app in main._DRAWS or main._drawing[0]
        quiet = 0 if busy else quiet + 1
        assert time.monotonic() < deadline, "the page never settled"


def expected(**plan) -> dict:
    session = HipSession(subdivisions=SUBDIVISIONS)
    try:
        session.update(Plan(**plan))
        return dict(session.outcome.after)
    finally:
        session.close()


def run(coro):
    """Run a scenario on a fresh event loop in a thread of its own.

    Another test (a browser test's driver) may leave an event loop set in
    this thread, where ``asyncio.run`` refuses to start a second one.
    """
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


def test_a_new_hip_is_built_in_a_worker_while_the_page_says_so():
    async def scenario():
        app = served_app(asyncio.get_running_loop(), case="dysplastic")
        try:
            app.plan.case = "borderline"
            # asked for, not built: the event loop is free at once
            assert app._loading
            title = cases.CASES["borderline"].title.lower()
            assert app.statuses[-1] == f"building the {title} hip…"
            assert app._status.visible
            assert app.controls.w_case.disabled and app.controls.w_load.disabled
            assert all(w.disabled for w in app.exports.buttons)
            assert "borderline" not in app.session.source.lower()
            await settled(app)
            assert not app._status.visible and not app.controls.w_case.disabled
            assert not any(w.disabled for w in app.exports.buttons)
            assert "borderline" in app.session.source.lower()
            return dict(app.session.outcome.after)
        finally:
            app.close()

    got = run(scenario())
    assert got["lcea_deg"] == pytest.approx(expected(case="borderline")["lcea_deg"], abs=1e-9)


def test_changes_made_during_a_build_are_caught_up():
    async def scenario():
        app = served_app(asyncio.get_running_loop(), case="dysplastic")
        try:
            app.plan.case = "retroverted"
            assert app._loading
            # meanwhile: a procedure (a new cut) and a move
            app.plan.param.update(procedure="pao", pao_lateral=10.0)
            await settled(app)
            return dict(app.session.outcome.after), app.session.source
        finally:
            app.close()

    after, source = run(scenario())
    want = expected(case="retroverted", procedure="pao", pao_lateral=10.0)
    assert cases.CASES["retroverted"].title in source
    assert after["lcea_deg"] == pytest.approx(want["lcea_deg"], abs=1e-9)


def test_moves_of_two_pages_are_measured_and_drawn_each_at_its_latest():
    async def scenario():
        loop = asyncio.get_running_loop()
        a = served_app(loop, case="dysplastic", procedure="pao")
        b = served_app(loop, case="dysplastic", procedure="pao")
        try:
            await settled(a)
            await settled(b)
            for value in (2.5, 5.0, 7.5):  # a burst: only the latest need be drawn
                a.plan.pao_lateral = value
                b.plan.pao_lateral = -value
            await settled(a)
            await settled(b)
            return (
                a.session.outcome.after["lcea_deg"],
                b.session.outcome.after["lcea_deg"],
                a.measures.table.object,
                b.measures.table.object,
            )
        finally:
            a.close()
            b.close()

    lcea_a, lcea_b, table_a, table_b = run(scenario())
    plan = {"case": "dysplastic", "procedure": "pao"}
    want_a = expected(**plan, pao_lateral=7.5)["lcea_deg"]
    want_b = expected(**plan, pao_lateral=-7.5)["lcea_deg"]
    assert lcea_a == pytest.approx(want_a, abs=1e-9)
    assert lcea_b == pytest.approx(want_b, abs=1e-9)
    assert f"{want_a:.1f}°" in table_a and f"{want_b:.1f}°" in table_b


def _choose(app: main.HipApp, pelvis: tuple[str, bytes], femur: tuple[str, bytes]) -> None:
    """Files as a browser sends them: base64 text, decoded later (UploadInput)."""
    for widget, (name, data) in (
        (app.controls.w_pelvis_file, pelvis),
        (app.controls.w_femur_file, femur),
    ):
        widget.param.update(filename=name, value=base64.b64encode(data).decode())


def test_an_upload_is_read_in_a_worker_and_the_page_says_which_file():
    from hipviz.anatomy import builtin_hip

    hip = builtin_hip(side="left", subdivisions=SUBDIVISIONS)
    files = {role: getattr(hip, role).export(file_type="stl") for role in ("pelvis", "femur")}

    async def scenario():
        app = served_app(asyncio.get_running_loop(), case="dysplastic")
        try:
            _choose(app, ("my_pelvis.stl", files["pelvis"]), ("my_femur.stl", files["femur"]))
            app._on_upload()
            assert (
                app._loading
                and app.controls.w_load.disabled
                and app.controls.w_pelvis_file.disabled
            )
            assert app.controls.w_pelvis_file.value is None  # taken from the inputs at once
            await settled(app)
            stored = {
                p.name: p.read_bytes()
                for p in app.session.folder.iterdir()
                if p.name != MARKER  # hipviz's own mark on the folder
            }
            return (
                app.plan.case,
                app.session.source,
                app.statuses,
                stored,
                app.controls.w_load.disabled,
            )
        finally:
            app.close()

    case, source, statuses, stored, disabled = run(scenario())
    assert case == "upload" and "my_pelvis.stl" in source and "my_femur.stl" in source
    assert stored == {"pelvis.stl": files["pelvis"], "femur.stl": files["femur"]}
    size = len(files["femur"]) / 1e6
    assert f"reading my_femur.stl ({size:.1f} MB)…" in statuses, statuses
    assert statuses[-1] == "" and not disabled


def test_a_bad_upload_gives_one_line_and_keeps_the_hip():
    async def scenario():
        app = served_app(asyncio.get_running_loop(), case="dysplastic")
        try:
            before = dict(app.session.outcome.after)
            garbage = b"solid x\nnot a mesh\n" + bytes(range(256))
            _choose(app, ("bad.stl", garbage), ("bad.stl", garbage))
            app._on_upload()
            await settled(app)
            return (
                html.unescape(app._error.object),  # the pane holds it as inert text
                app.plan.case,
                before == dict(app.session.outcome.after),
                app.controls.w_case.disabled,
                app._status.visible,
            )
        finally:
            app.close()

    error, case, same, disabled, status = run(scenario())
    assert "bad.stl" in error and "\n" not in error and "Traceback" not in error
    assert case == "dysplastic" and same
    assert not disabled and not status


class _RecordingPool:
    """A stand-in worker pool: records what it is given, runs nothing."""

    def __init__(self):
        self.jobs = []

    def submit(self, fn):
        self.jobs.append(fn)


class _Context:
    """Enough of a Bokeh session context for a page to take its document as served."""

    id = "test-session"

    class request:  # noqa: N801 - as Bokeh names it
        arguments: dict = {}
        headers: dict = {}
        cookies: dict = {}
        path = "/"


def test_a_page_being_built_hands_its_hip_to_a_worker_only_from_the_event_loop(monkeypatch):
    """A served page is built before its Bokeh session exists. A worker that finished
    in the moment the session was made lost its callback to the document (about 1 page
    in 40 of 40 opened at once never drew its hip), so the first build starts from
    the page's first next-tick callback, which the new session runs on its event loop."""
    import weakref

    pool = _RecordingPool()
    monkeypatch.setattr(main, "_BUILD_POOL", pool)
    doc, context = Document(), _Context()
    doc._session_context = weakref.ref(context)
    with main.set_curdoc(doc):  # as the server does while it builds the page
        app = main.HipApp(Plan(case="dysplastic"), subdivisions=SUBDIVISIONS)
    try:
        assert app._doc is doc and app._loading  # a served page, waiting for its hip
        assert pool.jobs == [], "a worker was started before the page's session existed"
        waiting = list(doc.session_callbacks)
        assert waiting, "nothing left for the session to start"
        for callback in waiting:  # what the new session does first, on its event loop
            callback.callback()
        assert len(pool.jobs) == 1
    finally:
        app.close()


class _ThreadNotingDocument(Document):
    """A Bokeh document that notes the thread each next-tick callback is added from."""

    def __init__(self):
        super().__init__()
        self.added_from = []

    def add_next_tick_callback(self, callback):
        self.added_from.append(threading.get_ident())
        return super().add_next_tick_callback(callback)


def test_a_worker_reaches_a_served_page_only_through_its_event_loop():
    """Bokeh's add_next_tick_callback from a worker races with the event loop: a callback
    added just as the loop ends a hold of the document is dropped, and the page waits
    for ever (1 page in 100-300 of 40 opened at once). web.next_tick hands it to the
    loop, which adds it; a document not yet served takes it directly."""
    from hipviz.app import web

    async def scenario():
        loop = asyncio.get_running_loop()
        served, unserved = _ThreadNotingDocument(), _ThreadNotingDocument()
        web._PAGE_LOOPS[served] = loop
        with ThreadPoolExecutor(1) as pool:
            worker = pool.submit(threading.get_ident).result()
            pool.submit(web.next_tick, served, lambda: None).result()
            pool.submit(web.next_tick, unserved, lambda: None).result()
        await asyncio.sleep(0.05)  # the loop's turn
        return served.added_from, unserved.added_from, threading.get_ident(), worker

    served, unserved, loop_thread, worker = run(scenario())
    assert served == [loop_thread], "the worker touched a served page's document itself"
    assert unserved == [worker]
