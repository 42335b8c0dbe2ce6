"""The trace event of a caching level: what one level did with the question (`dnslab trace --via`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from dnslab.core.events import Event


@dataclass(frozen=True)
class LevelStep(Event):
    """One level's part: answered from its cache (with the time it has left), or passed the question on.

    *result*: "hit" (fresh in this level's cache), "grace" (expired, served while fetched
    again), "miss" (asked *next*), "down" (an upstream that does not answer: the stub waits
    out its timeout and tries the next), "answered" (the reply the client got through the chain).
    """

    kind: ClassVar[str] = "level"
    level: str
    level_kind: str
    address: str
    name: str
    type: str
    result: str
    ttl: int | None = None           # seconds this level keeps the answer from now (hit, answered)
    kept_for: float | None = None    # how long it keeps it in all, by its policy
    next: str | None = None          # the level (or "resolver") the question goes to next
    next_address: str | None = None
    policy: str = ""
    rcode: str | None = None
    records: list[str] = field(default_factory=list)
