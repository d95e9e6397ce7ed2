"""Send a changing value to the browser at a bounded rate, always ending on its last value.

A served page shares one event loop with every other page, and each
message to a browser costs that loop a few milliseconds of Panel's and
Bokeh's work. Some values change with every slider step but are read by the
user only now and then: the link in the address bar is copied once the plan
is done. :class:`Pacer` writes such a value at most once per period, only
when it differs from what was written last, and never leaves the browser
on an old value: a change that arrives inside the period is written when
the period ends, as the value is then.

No Panel here: the page gives it functions to read, write and schedule.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Pacer(Generic[T]):
    """Write the latest value of ``read()`` at most once per ``period`` s, and always the last.

    Parameters
    ----------
    read : callable
        ``() -> value``: the value now (read when it is written, so a burst
        of changes is written as it stands at the end).
    write : callable
        ``(value) -> None``: send it (e.g. set the address bar's query).
    schedule : callable
        ``(delay_s, callback) -> None``: run ``callback`` once, after
        ``delay_s`` seconds, on the same event loop as :meth:`poke`.
    period : float
        Shortest time between two writes, s (>= 0).
    written : optional
        The value the browser has already (nothing is written while
        ``read()`` equals it).
    clock : callable, default: time.monotonic
        Seconds, monotonic.

    Examples
    --------
    >>> later = []
    >>> plan = {"q": "a=1"}
    >>> pacer = Pacer(lambda: plan["q"], print, lambda s, cb: later.append(cb), 1.0)
    >>> pacer.poke()
    a=1
    >>> plan["q"] = "a=2"; pacer.poke()  # within the period: scheduled
    >>> plan["q"] = "a=3"; pacer.poke()  # already scheduled: nothing more
    >>> later.pop()()                    # the period ends: the latest is written
    a=3
    """

    def __init__(
        self,
        read: Callable[[], T],
        write: Callable[[T], None],
        schedule: Callable[[float, Callable[[], None]], None],
        period: float,
        *,
        written: T | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        if not (period >= 0 and math.isfinite(period)):
            msg = f"expected a finite `period` >= 0 s, got {period!r}"
            raise ValueError(msg)
        self._read, self._write, self._schedule = read, write, schedule
        self.period = float(period)
        self._clock = clock
        #: The value written last (or given as the browser's).
        self.written = written
        #: Number of writes made.
        self.writes = 0
        self._last = -math.inf  # when the last write was made, s
        self._due = False  # a write is scheduled

    @property
    def pending(self) -> bool:
        """Whether a change waits for its period to end."""
        return self._due

    def poke(self) -> None:
        """The value may have changed: write it now, or when the period ends."""
        if self._due:
            return  # the scheduled write reads the value as it is then
        value = self._read()
        if value == self.written:
            return
        wait = self._last + self.period - self._clock()
        if wait > 0:
            self._due = True
            self._schedule(wait, self._end_of_period)
            return
        self.written = value
        self._last = self._clock()
        self.writes += 1
        self._write(value)

    def _end_of_period(self) -> None:
        self._due = False
        self.poke()


__all__ = ["Pacer"]
