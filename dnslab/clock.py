"""Time as an input: the resolver's cache and server state read it only through a Clock.

That lets a test say "300 seconds pass" in one line, with no sleep, and lets
`dnslab up --fake-clock` (a later feature) move TTLs forward on demand.
Network timeouts stay on the event loop's real clock.
"""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Seconds on a monotonic scale; only differences matter."""
        ...


class MonotonicClock:
    """Real time, immune to wall-clock jumps."""

    def now(self) -> float:
        return time.monotonic()


class FakeClock:
    """A clock that moves only when told to."""

    def __init__(self, start: float = 1_000_000.0) -> None:
        self._now = start

    def now(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("a clock cannot go backwards")
        self._now += seconds
