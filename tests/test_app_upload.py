"""Uploads in pieces: what the server does with each message of the browser's sending.

The browser (:class:`hipviz.app.widgets.UploadGuard`) announces a chosen file,
sends it in binary pieces, each acknowledged, then says it has ended. These
tests play the browser's part, as a well-behaved page and as an attacker's:
pieces out of order or past the size announced, a size over the limit, a name
that is no mesh, messages of the wrong shape, a new file chosen halfway.
"""

from __future__ import annotations

import html

import pytest

pytest.importorskip("panel")

from hipviz.app.controls import Controls  # noqa: E402
from hipviz.app.state import HipSession, Incoming, Plan  # noqa: E402
from hipviz.app.widgets import UploadGuard  # noqa: E402
from hipviz.errors import InputError  # noqa: E402
from hipviz.io import Limits  # noqa: E402

PIECE = 1000


class Page:
    """A page's upload guard fed by hand, with what it answered and the errors it showed."""

    def __init__(self, max_file_mb: float = 1.0):
        self.session = HipSession(limits=Limits(max_file_mb=max_file_mb))
        self.errors: list[str] = []
        self.controls = Controls(
            Plan(),
            max_file_mb=max_file_mb,
            on_upload=lambda: None,
            on_error=self.errors.append,
            receiver=self.session,
        )
        self.guard: UploadGuard = self.controls.guard
        self.replies: list[dict] = []
        self.guard._send_msg = self.replies.append  # what would go to the browser
        self.jobs = 0

    def say(self, **msg) -> None:
        self.guard._handle_msg(msg)

    def send(self, role: str, name: str, data: bytes, *, end: bool = True) -> int:
        """Send a whole file as the browser does; its job id."""
        self.jobs += 1
        job = self.jobs
        self.say(kind="start", id=job, role=role, name=name, size=len(data))
        for offset in range(0, len(data), PIECE):
            self.say(kind="piece", id=job, offset=offset, data=data[offset : offset + PIECE])
        if end:
            self.say(kind="end", id=job)
        return job

    def kinds(self, job: int) -> list[str]:
        return [r["kind"] for r in self.replies if r.get("id") == job]

    def incoming(self) -> list[str]:
        return sorted(p.name for p in self.session.folder.glob("incoming-*"))

    def close(self) -> None:
        self.session.close()


@pytest.fixture
def page():
    p = Page()
    yield p
    p.close()


def test_a_file_sent_in_pieces_arrives_whole_and_is_handed_over_once(page):
    data = bytes(range(256)) * 30  # 7680 bytes: 8 pieces
    job = page.send("femur", "my femur.stl", data)
    assert page.kinds(job) == ["ack"] * 8 + ["done"]
    # each acknowledgement names the piece it acknowledges
    assert [r["offset"] for r in page.replies if r["kind"] == "ack"] == list(range(0, 7680, PIECE))
    assert page.controls.received() == {"femur": "my femur.stl"}
    assert "my femur.stl: 7,680 bytes, arrived" in page.guard.progress
    arrived = page.guard.take()
    assert arrived["femur"][0] == "my femur.stl"
    assert arrived["femur"][1].read_bytes() == data
    assert page.guard.take() == {}  # handed over once


def test_load_takes_the_files_that_arrived_and_stores_them_as_the_sessions(page):
    pelvis, femur = b"p" * 2500, b"f" * 1500
    page.send("pelvis", "p.stl", pelvis)
    page.send("femur", "f.stl", femur)
    chosen, labels = page.controls.take_upload()
    assert {r: n for r, (n, _) in chosen.items()} == {"pelvis": "p.stl", "femur": "f.stl"}
    assert labels == (None, None)
    stored = {r: page.session.store(r, n, path) for r, (n, path) in chosen.items()}
    assert stored["pelvis"].name == "pelvis.stl" and stored["pelvis"].read_bytes() == pelvis
    assert stored["femur"].read_bytes() == femur
    assert page.incoming() == []  # moved, not copied


def test_load_while_a_file_is_still_arriving_says_so_and_keeps_it(page):
    page.send("pelvis", "p.stl", b"p" * 2500)
    job = page.jobs + 1
    page.say(kind="start", id=job, role="femur", name="big femur.stl", size=5000)
    page.say(kind="piece", id=job, offset=0, data=b"f" * PIECE)
    with pytest.raises(
        InputError, match=r"big femur\.stl is still arriving \(20 % of 5,000 bytes\): press Load"
    ):
        page.controls.take_upload()
    # nothing was lost: the rest arrives and Load then works
    for offset in range(PIECE, 5000, PIECE):
        page.say(kind="piece", id=job, offset=offset, data=b"f" * PIECE)
    page.say(kind="end", id=job)
    chosen, _ = page.controls.take_upload()
    assert chosen["femur"][1].read_bytes() == b"f" * 5000


def test_a_file_just_over_the_limit_says_by_how_much(page):
    page.say(kind="start", id=1, role="femur", name="f.stl", size=1_000_001)
    assert page.errors == [
        "f.stl: 1,000,001 bytes is over the 1 MB upload limit "
        "(raise it with hipviz serve --max-file-mb)"
    ]


def test_a_file_over_the_limit_is_refused_before_a_byte_is_written(page):
    page.say(kind="start", id=1, role="femur", name="huge.stl", size=2_000_000_000)
    assert page.kinds(1) == ["error"]
    assert page.errors == [
        "huge.stl: 2e+03 MB is over the 1 MB upload limit "
        "(raise it with hipviz serve --max-file-mb)"
    ]
    assert page.incoming() == []
    page.say(kind="piece", id=1, offset=0, data=b"x" * PIECE)  # pieces of it are ignored
    assert page.incoming() == [] and page.kinds(1) == ["error"]


@pytest.mark.parametrize(
    ("announce", "pieces", "expected"),
    [
        # a piece out of order
        (3000, [(0, PIECE), (2 * PIECE, PIECE)], "a piece came out of order or past its size"),
        # more than announced: the size announced bounds what is written
        (1500, [(0, PIECE), (PIECE, PIECE)], "a piece came out of order or past its size"),
        # fewer than announced, then the end
        (3000, [(0, PIECE)], "the file did not arrive whole (1000 of 3000 bytes)"),
    ],
    ids=["out-of-order", "past-its-size", "short"],
)
def test_a_file_that_does_not_arrive_as_announced_is_refused_and_deleted(
    page, announce, pieces, expected
):
    page.say(kind="start", id=7, role="pelvis", name="p.stl", size=announce)
    for offset, n in pieces:
        page.say(kind="piece", id=7, offset=offset, data=b"x" * n)
    page.say(kind="end", id=7)
    assert page.kinds(7)[-1] == "error"
    assert len(page.errors) == 1 and expected in page.errors[0], page.errors
    assert page.errors[0].startswith("p.stl: ")
    assert page.incoming() == []
    assert page.controls.received() == {}


@pytest.mark.parametrize(
    "msg",
    [
        {"kind": "start", "id": 1, "role": "skull", "name": "x.stl", "size": 10},
        {"kind": "start", "id": 1, "role": "pelvis", "name": ["x.stl"], "size": 10},
        {"kind": "start", "id": 1, "role": "pelvis", "name": "x.stl", "size": "10"},
        {"kind": "start", "id": 1, "role": "pelvis", "name": "x.stl", "size": -1},
        {"kind": "start", "id": 1, "role": "pelvis", "name": "x.stl", "size": True},
        {"kind": "start", "id": 1, "role": "pelvis", "name": "notes.txt", "size": 10},
        {"kind": "start", "id": "1", "role": "pelvis", "name": "x.stl", "size": 10},
        {"kind": "start", "id": None, "role": "pelvis", "name": "x.stl", "size": 10},
        {"kind": "start", "id": True, "role": "pelvis", "name": "x.stl", "size": 10},
        {"kind": "piece", "id": 99, "offset": 0, "data": b"x"},
        {"kind": "end", "id": 99},
        {"kind": "nonsense"},
        "not a message",
        None,
    ],
)
def test_messages_of_the_wrong_shape_write_nothing(page, msg):
    page.guard._handle_msg(msg)
    assert page.incoming() == []
    assert page.controls.received() == {}
    assert all(r["kind"] == "error" for r in page.replies)
    assert all("\n" not in e for e in page.errors)


def test_pieces_without_data_or_offset_are_refused(page):
    page.say(kind="start", id=1, role="femur", name="f.stl", size=2000)
    page.say(kind="piece", id=1, offset=0, data="not bytes")
    assert page.kinds(1) == ["error"] and "arrived without data" in page.errors[-1]
    page.say(kind="start", id=2, role="femur", name="f.stl", size=2000)
    page.say(kind="piece", id=2, offset="0", data=b"x" * PIECE)
    assert page.kinds(2) == ["error"] and page.incoming() == []


def test_a_new_file_chosen_halfway_replaces_the_first(page):
    page.say(kind="start", id=100, role="femur", name="first.stl", size=3000)
    page.say(kind="piece", id=100, offset=0, data=b"1" * PIECE)
    page.send("femur", "second.stl", b"2" * 2000)
    page.say(kind="piece", id=100, offset=PIECE, data=b"1" * PIECE)  # late piece of the first
    assert page.kinds(100) == ["ack"]  # the late piece is not acknowledged, nor written
    assert page.controls.received() == {"femur": "second.stl"}
    assert len(page.incoming()) == 1
    (path,) = page.session.folder.glob("incoming-*")
    assert path.read_bytes() == b"2" * 2000
    # and a file that arrived whole is replaced, too, by the next choice
    page.send("femur", "third.stl", b"3" * 1000)
    assert len(page.incoming()) == 1
    assert page.guard.take()["femur"][1].read_bytes() == b"3" * 1000


def test_a_file_the_browser_could_not_read_is_one_line(page):
    page.say(kind="start", id=1, role="pelvis", name="gone.stl", size=3000)
    page.say(kind="lost", id=1)
    assert page.errors == ["gone.stl: the browser could not read the file"]
    assert page.incoming() == []


def test_a_name_made_to_look_like_markup_is_shown_as_text(page):
    name = "<img src=x onerror=alert(1)>.stl"
    page.say(kind="start", id=1, role="pelvis", name=name, size=10)
    assert "<img" not in page.controls.upload_progress.object
    assert "&#60;img" in page.controls.upload_progress.object


def test_closing_the_session_deletes_what_was_arriving(page):
    page.say(kind="start", id=1, role="pelvis", name="p.stl", size=3000)
    page.say(kind="piece", id=1, offset=0, data=b"x" * PIECE)
    folder = page.session.folder
    assert any(folder.glob("incoming-*"))
    page.session.close()
    assert not folder.exists()


def test_incoming_checks_its_own_bounds(tmp_path):
    inc = Incoming(tmp_path / "incoming-femur-1.stl", "f.stl", 4)
    inc.write(0, b"ab")
    with pytest.raises(InputError, match="out of order"):
        inc.write(0, b"ab")
    with pytest.raises(InputError, match="did not arrive whole"):
        inc.finish()
    inc.write(2, memoryview(b"cd"))
    assert inc.finish().read_bytes() == b"abcd"
    inc.discard()
    assert not (tmp_path / "incoming-femur-1.stl").exists()


def test_an_absurd_size_is_one_line(page):
    """Only a hand-made page can announce 10**400 bytes; it still gets one line."""
    page.say(kind="start", id=1, role="femur", name="f.stl", size=10**400)
    assert page.kinds(1) == ["error"]
    assert page.errors == [
        "f.stl: 1e+24 MB is over the 1 MB upload limit (raise it with hipviz serve --max-file-mb)"
    ]


def test_a_file_refused_in_the_browser_replaces_the_one_held(page):
    """The input is empty once the page refuses a file: Load must not use the one before."""
    page.send("pelvis", "first pelvis.stl", b"p" * 2000)
    page.say(kind="clear", role="pelvis")  # the page refused the next choice for its size
    assert page.controls.received() == {}
    assert page.incoming() == []
    assert "first pelvis" not in page.guard.progress
    page.send("femur", "f.stl", b"f" * 2000)
    with pytest.raises(InputError, match="choose a pelvis file first"):
        page.controls.take_upload()


def test_a_refused_pair_leaves_nothing_behind_however_often_it_is_tried():
    """An empty pelvis with a good femur, loaded five times: one line each time, and
    neither file stays in the session's folder (nor does the hip shown change)."""
    from hipviz.app.main import HipApp

    app = HipApp(Plan(case="dysplastic"), subdivisions=4)
    try:
        replies = []
        app.controls.guard._send_msg = replies.append
        lcea = app.session.outcome.before["lcea_deg"]
        folder = app.session.folder
        for job in range(1, 6):
            msgs = [
                {"kind": "start", "id": 2 * job, "role": "pelvis", "name": "empty.stl", "size": 0},
                {"kind": "end", "id": 2 * job},
                {"kind": "start", "id": 2 * job + 1, "role": "femur", "name": "f.stl", "size": 3},
                {"kind": "piece", "id": 2 * job + 1, "offset": 0, "data": b"abc"},
                {"kind": "end", "id": 2 * job + 1},
            ]
            for msg in msgs:
                app.controls.guard._handle_msg(msg)
            assert app.controls.received() == {"pelvis": "empty.stl", "femur": "f.stl"}
            app._on_upload()
            assert "empty.stl: the file is empty" in html.unescape(app._error.object)
            kept = sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))
            assert kept == [], kept
        assert app.session.upload is None
        assert app.session.outcome.before["lcea_deg"] == lcea
    finally:
        app.close()
