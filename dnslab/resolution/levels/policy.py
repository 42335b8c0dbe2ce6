"""What a level policy decides: how long one answer is served fresh, and for how long after that stale.

A level caches whole answers to a question (as a browser's host cache or
systemd-resolved's cache do), not the resolver's RRsets; the policy sees the
facts of the answer that real programs look at (its kind, the smallest TTL of
its records, the SOA of a negative answer) and returns a `Keep`, or None when
that program would not keep it at all.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Protocol


class AnswerKind(enum.StrEnum):
    """The answers a level can keep; anything else (SERVFAIL, REFUSED, a timeout) is never kept."""

    POSITIVE = "positive"
    NXDOMAIN = "nxdomain"
    NODATA = "nodata"


@dataclass(frozen=True)
class Shape:
    """The facts of one answer a policy decides from.

    *ttl* is the smallest TTL of the answer section (None: the answer has no records);
    *soa_ttl* and *soa_minimum* come from the SOA in a negative answer's authority
    section (RFC 2308 §5), None when there is none.
    """

    kind: AnswerKind
    ttl: int | None = None
    soa_ttl: int | None = None
    soa_minimum: int | None = None

    @property
    def negative(self) -> bool:
        return self.kind is not AnswerKind.POSITIVE

    @property
    def soa_negative_ttl(self) -> int | None:
        """RFC 2308 §5: a negative answer is cached for min(SOA TTL, SOA MINIMUM)."""
        if self.soa_ttl is None or self.soa_minimum is None:
            return None
        return min(self.soa_ttl, self.soa_minimum)


@dataclass(frozen=True)
class Keep:
    """Seconds an answer is served as fresh, then seconds it may still be served while it is asked again."""

    fresh: float
    grace: float = 0.0

    def __post_init__(self) -> None:
        if self.fresh < 0 or self.grace < 0:
            raise ValueError("a level keeps an answer for a time of zero or more seconds")


class LevelPolicy(Protocol):
    """One program's caching rule."""

    name: str         # "chromium", "firefox", "systemd-resolved", "dnsmasq"
    max_entries: int  # that program's own bound on its cache

    def keep(self, shape: Shape) -> Keep | None:
        """How long to keep this answer; None: not kept (the next question goes upstream)."""
        ...

    def describe(self) -> str:
        """One line for `dnslab levels`: the rule with its numbers."""
        ...
