"""Who watches the resolver service: one small interface the service owns, so it knows no watcher.

The web view's sampler (`dnslab.faces.querytap.QueryTap`), the keeper of the last
trace for test suites (`dnslab.testing`) and `dnslab up --log-queries` all want to
see client queries, each a little differently.  The service does not import them:
they subscribe (`RecursiveResolver.subscribe`) as `QueryObserver`s, and the service
tells each of them the same three things.  An observer that must see every query
says so (`every_query`); while one is subscribed the wire fast path is off, since a
replayed reply has no lookup, no timing and no trace to show.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable, Protocol

import dns.name

from dnslab.core.events import Recording
from dnslab.resolution.iterator import Result


@dataclass(frozen=True)
class QueryLog:
    """One client query answered on the full path, as observers are told it (`--log-queries` prints it)."""

    when: float
    client: str
    name: str
    type: str
    rcode: str
    from_cache: bool
    upstream_queries: int
    ms: float
    tcp: bool
    merged: bool = False   # the question was already in flight: this query joined that lookup

    def line(self) -> str:
        stamp = time.strftime("%H:%M:%S", time.localtime(self.when)) + f".{int(self.when % 1 * 1000):03d}"
        source = "cache" if self.from_cache else f"{self.upstream_queries} upstream"
        transport = " tcp" if self.tcp else ""
        return (f"{stamp} {self.client}{transport} {self.name} {self.type} {self.rcode} {source} "
                f"{self.ms:.1f} ms")


class QueryObserver(Protocol):
    """What the resolver service tells whoever watches its client queries.

    Calls come on the event loop, inside the answering of a query: keep them short.
    """

    # True: needs every client query on the full path (timed, traced), so the wire
    # fast path is off while this observer is subscribed.
    every_query: bool

    def begin(self, name: dns.name.Name, rdtype: int) -> Recording | None:
        """A full-path query starts: a Recording to fill with its lookup's events, or None for none."""

    def answered(self, entry: QueryLog, result: Result, recording: Recording | None) -> None:
        """A full-path query was answered; *recording* is what `begin` returned for it."""

    def replayed(self, wire: bytes, reply: bytes, peer: Any, via_tcp: bool) -> None:
        """A query the fast path answered from a ready reply (only for observers without `every_query`)."""


class QueryLogger:
    """Every client query to a callback, as `dnslab up --log-queries` prints them."""

    every_query = True

    def __init__(self, write: Callable[[QueryLog], None]) -> None:
        self.write = write

    def begin(self, name: dns.name.Name, rdtype: int) -> Recording | None:
        return None

    def answered(self, entry: QueryLog, result: Result, recording: Recording | None) -> None:
        self.write(entry)

    def replayed(self, wire: bytes, reply: bytes, peer: Any, via_tcp: bool) -> None:
        pass  # never called: every_query keeps the fast path off
