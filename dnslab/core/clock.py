"""Time as an input: the resolver's cache and server state read it only through a Clock.

That lets a test say "300 seconds pass" in one line, with no sleep, and lets
`dnslab up --fake-clock` and `dnslab clock advance SECONDS` move TTLs forward on demand.
Network timeouts stay on the event loop's real clock.
"""

from __future__ import annotations

import math
import time
from typing import Callable, Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Seconds on a monotonic scale; only differences matter."""
        ...

    def wall(self) -> float:
        """Unix time as this clock sees it, for what is dated absolutely (DNSSEC signatures)."""
        ...


class MonotonicClock:
    """Real time, immune to wall-clock jumps."""

    def now(self) -> float:
        return time.monotonic()

    def wall(self) -> float:
        return time.time()


class WallClock:
    """The system time, as Unbound counts TTLs: a step of the clock (or a harness faking
    time with libfaketime) ages the cache and server state with it."""

    def now(self) -> float:
        return time.time()

    def wall(self) -> float:
        return time.time()


class FakeClock:
    """A clock that moves only when told to."""

    def __init__(self, start: float = 1_000_000.0, wall_start: float | None = None) -> None:
        self._now = start
        self._start = start
        # Wall time starts as the real time (read when first needed) and moves with the
        # clock: advance 30 days, and signatures expire as they would in 30 days.
        self._wall_start = wall_start

    def now(self) -> float:
        return self._now

    def wall(self) -> float:
        if self._wall_start is None:
            self._wall_start = time.time() - (self._now - self._start)
        return self._wall_start + (self._now - self._start)

    @property
    def advanced(self) -> float:
        """Seconds this clock has been moved forward in all (its offset from where it started)."""
        return self._now - self._start

    def advance(self, seconds: float) -> None:
        if not math.isfinite(seconds):  # NaN would stop every TTL comparison for good
            raise ValueError(f"a clock moves by a finite number of seconds, not {seconds}")
        if seconds < 0:
            raise ValueError("a clock cannot go backwards")
        self._now += seconds


def reader(clock: Clock) -> Callable[[], float]:
    """A function giving *clock*'s now(): the real clocks' own C function, else the method.

    For the paths every query takes (the fast paths, a signed lab's freshness check):
    a method call around time.monotonic() costs more there than the rest of a lookup.
    """
    kind = type(clock)
    if kind is MonotonicClock:
        return time.monotonic
    if kind is WallClock:
        return time.time
    return clock.now
