"""The address bar's link is written at a bounded rate and always ends on the final plan.

:class:`hipviz.app.pacing.Pacer` on a fake clock, then a served page (its
document a stand-in whose callbacks run on an asyncio loop in the test's
thread, as in ``test_app_workers.py``) given a burst of slider moves.
"""

from __future__ import annotations

import asyncio
import math

import pytest

from hipviz.app.pacing import Pacer


class FakeLoop:
    """A clock and a timer queue: ``schedule`` adds, ``advance`` runs what falls due."""

    def __init__(self):
        self.now = 0.0
        self.timers: list[tuple[float, object]] = []

    def clock(self) -> float:
        return self.now

    def schedule(self, delay: float, callback) -> None:
        assert delay > 0
        self.timers.append((self.now + delay, callback))

    def advance(self, seconds: float) -> None:
        end = self.now + seconds
        while True:
            due = [t for t in self.timers if t[0] <= end]
            if not due:
                break
            first = min(due, key=lambda t: t[0])
            self.timers.remove(first)
            self.now = first[0]
            first[1]()
        self.now = end


def pacer_on(loop: FakeLoop, value: dict, period: float, written=None) -> tuple[Pacer, list]:
    out: list = []
    pacer = Pacer(
        lambda: value["v"], out.append, loop.schedule, period, written=written, clock=loop.clock
    )
    return pacer, out


def test_a_burst_is_written_at_most_once_per_period_and_ends_on_its_last_value():
    loop, value = FakeLoop(), {"v": 0}
    pacer, out = pacer_on(loop, value, period=1.0)
    # 50 changes, one every 0.1 s, each poked (as each slider move is)
    for i in range(1, 51):
        value["v"] = i
        pacer.poke()
        loop.advance(0.1)
    loop.advance(2.0)  # the sliders rest
    assert out[-1] == 50
    assert not pacer.pending
    # 5 s of changes: the first at once, then one per period
    assert len(out) <= math.ceil(5.0 / 1.0) + 1
    assert len(out) >= 4, out
    assert out == sorted(out)  # never an older value after a newer one


def test_an_unchanged_value_is_not_written_again():
    loop, value = FakeLoop(), {"v": "a=1"}
    pacer, out = pacer_on(loop, value, period=1.0, written="a=1")
    pacer.poke()
    loop.advance(5)
    assert out == []
    value["v"] = "a=2"
    pacer.poke()
    pacer.poke()
    assert out == ["a=2"]
    loop.advance(5)
    pacer.poke()
    assert out == ["a=2"]


def test_a_change_back_within_the_period_writes_nothing_more():
    loop, value = FakeLoop(), {"v": 1}
    pacer, out = pacer_on(loop, value, period=1.0, written=0)
    pacer.poke()  # written at once
    value["v"] = 2
    pacer.poke()  # scheduled
    value["v"] = 1  # back to what the browser has
    loop.advance(1.5)
    assert out == [1]


def test_period_zero_writes_every_change():
    loop, value = FakeLoop(), {"v": 0}
    pacer, out = pacer_on(loop, value, period=0.0)
    for i in range(1, 6):
        value["v"] = i
        pacer.poke()
    assert out == [1, 2, 3, 4, 5] and loop.timers == []


@pytest.mark.parametrize("period", [-1.0, math.nan, math.inf])
def test_a_bad_period_is_refused(period):
    with pytest.raises(ValueError, match="period"):
        Pacer(lambda: 0, print, lambda d, c: None, period)


# --- the served page ------------------------------------------------------------

pytest.importorskip("panel")

from test_app_workers import SUBDIVISIONS, LoopDocument, run, settled  # noqa: E402

from hipviz.app import main  # noqa: E402
from hipviz.app.state import Plan  # noqa: E402


class TimedLoopDocument(LoopDocument):
    """A :class:`LoopDocument` whose timeout callbacks run on its loop too."""

    def add_timeout_callback(self, callback, timeout_milliseconds):
        self.loop.call_later(timeout_milliseconds / 1000, callback)
        return callback


def test_the_link_after_a_burst_of_moves_is_the_final_plan():
    async def scenario():
        app = main.HipApp(Plan(case="dysplastic", procedure="pao"), subdivisions=SUBDIVISIONS)
        app._doc = TimedLoopDocument(asyncio.get_running_loop())
        writes = []
        app._address.param.watch(lambda e: writes.append(e.new), "query")
        try:
            await settled(app)
            # a student stepping a slider: 20 moves, 0.1 s apart, for 2 s
            for i in range(20):
                app.plan.param.update(pao_lateral=1.0 + i, pao_anterior=0.5 * i)
                await asyncio.sleep(0.1)
            during = list(writes)
            # the sliders rest: the settle time, then the link's period at most
            await asyncio.sleep(main.SETTLE_MS / 1000 + main.LINK_PERIOD_S + 0.5)
            await settled(app)
            return app._address.query, app.plan.url_query(), during, writes
        finally:
            app.close()

    shown, final, during, writes = run(scenario())
    assert shown == final
    assert "pao_lateral=20" in final and "pao_anterior=9.5" in final
    # while moving: at most one write per period (2 s of moves), not one per move
    assert len(during) <= 2.0 / main.LINK_PERIOD_S + 2, during
    assert len(set(writes)) == len(writes)  # never the same link twice in a row
