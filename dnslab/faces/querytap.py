"""Which client queries the web view sees: a sample, each with its trace, in a bounded ring.

At 1,000 queries a second nobody reads every line, and recording the trace of
every lookup would cost the resolver more than answering it.  So the resolver
asks the tap, per query, whether to record it: a budget refilled a few times a
second (by the web view's ticker) says yes to at most `rate` queries a second
and counts the rest as skipped.  A query answered by the fast path costs one
method call and one comparison when it is not sampled, so the tap never slows
the hot path it watches.  A question someone is waiting to see (the web page's
own query) is always recorded, whatever the budget says.

Recorded queries keep their trace events as values (turned into JSON only when
someone looks), stamped with milliseconds since the query arrived; the ring
holds the last `size` of them, so memory is bounded whatever the traffic.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass
from typing import Any

import dns.message
import dns.name
import dns.rcode
import dns.rdatatype

from dnslab.core.events import CacheLookup, Done, Event, Failed, Recording as _Recording, Start, lines, stamped
from dnslab.resolution.iterator import Result
from dnslab.services.observers import QueryLog

DEFAULT_RATE = 20   # queries a second recorded with their traces
DEFAULT_SIZE = 500  # recorded queries kept


@dataclass
class Watch:
    """A question someone waits to see recorded; `id` is set by the first client query that asks it."""

    name: str     # lowercased, with the final dot
    rdtype: int
    id: int | None = None


@dataclass
class Recording(_Recording):
    """A client query being recorded: its events, stamped with ms since it arrived."""

    watch: Watch | None = None


@dataclass
class Tapped:
    """One recorded client query, as the web view's stream shows it."""

    id: int
    when: float              # wall-clock time it was answered
    client: str
    name: str
    type: str
    rcode: str
    how: str                 # "fast" (ready reply replayed), "cache", "upstream", "merged", "stale"
    upstream_queries: int
    ms: float | None         # None for the fast path: it is not timed, to stay fast
    tcp: bool
    watched: bool            # asked for by someone waiting (the web page's own query)
    events: list[tuple[float, Event]]

    def summary(self) -> dict[str, Any]:
        return {"id": self.id, "when": self.when, "client": self.client, "name": self.name, "type": self.type,
                "rcode": self.rcode, "how": self.how, "upstream_queries": self.upstream_queries,
                "ms": None if self.ms is None else round(self.ms, 1), "tcp": self.tcp, "watched": self.watched,
                "failed": sum(1 for _, event in self.events if isinstance(event, Failed))}

    def trace(self) -> list[dict[str, Any]]:
        """The events as `dnslab trace --json` prints them (t_ms first, total_ms on the answer)."""
        return [stamped(t_ms, event) for t_ms, event in list(self.events)]


class QueryTap:
    """The sampler and the ring; a `QueryObserver` of the resolver (`begin`, `answered`, `replayed`)."""

    every_query = False  # a sample: the fast path stays on, and its replies are sampled too

    def __init__(self, rate: int = DEFAULT_RATE, size: int = DEFAULT_SIZE) -> None:
        self.rate = rate
        self.budget = rate
        self.skipped = 0          # client queries not recorded, since the start
        self.recorded = 0         # client queries recorded, since the start
        self.ring: deque[Tapped] = deque(maxlen=size)
        self.watching: list[Watch] = []
        self._next_id = 1

    def refill(self, fraction: float = 1.0) -> None:
        """A new slice of time: at most rate × fraction more queries may be recorded (no saving up)."""
        self.budget = max(1, round(self.rate * fraction))

    def watch(self, name: dns.name.Name, rdtype: int) -> Watch:
        """Record the next client query for this question, whatever the budget."""
        watch = Watch(name.to_text().lower(), int(rdtype))
        self.watching.append(watch)
        return watch

    def unwatch(self, watch: Watch) -> None:
        if watch in self.watching:
            self.watching.remove(watch)

    def _claim(self, name: dns.name.Name, rdtype: int) -> Watch | None:
        text = name.to_text().lower()
        for watch in self.watching:
            if watch.name == text and watch.rdtype == rdtype:
                self.watching.remove(watch)
                return watch
        return None

    # --- the resolver's side -------------------------------------------------------------

    def begin(self, name: dns.name.Name, rdtype: int) -> Recording | None:
        """Whether to record a query on the full path; if so, where its events go."""
        watch = self._claim(name, rdtype) if self.watching else None
        if watch is None:
            if self.budget <= 0:
                self.skipped += 1
                return None
            self.budget -= 1
        return Recording(watch=watch)

    def answered(self, entry: QueryLog, result: Result, recording: _Recording | None) -> None:
        """A full-path query was answered: kept if `begin` chose to record it."""
        if isinstance(recording, Recording):
            self.finish(recording, entry, result, entry.merged)

    def finish(self, recording: Recording, entry: QueryLog, result: Result, merged: bool) -> Tapped:
        how = ("merged" if merged else "stale" if result.stale else "cache" if result.from_cache else "upstream")
        events = recording.events
        if not events and not merged and result.rcode == dns.rcode.SERVFAIL and result.from_cache:
            # The resolver answered from a remembered SERVFAIL before any lookup began.
            events = [(0.0, Start(0, entry.name, entry.type)),
                      (0.0, CacheLookup(0, entry.name, entry.type, "servfail")),
                      (0.0, Done(0, entry.name, entry.type, "SERVFAIL", [], [], result.reason, 0))]
        return self._keep(recording.watch, entry.when, entry.client, entry.name, entry.type, entry.rcode, how,
                          result.upstream_queries, entry.ms, entry.tcp, events)

    def replayed(self, wire: bytes, reply: bytes, peer: Any, via_tcp: bool) -> None:
        """A query the fast path answered from a ready reply: sampled like any other."""
        if self.budget <= 0 and not self.watching:
            self.skipped += 1
            return
        try:
            question = dns.message.from_wire(wire, question_only=True).question[0]
            answer = dns.message.from_wire(reply)
        except Exception:  # noqa: BLE001 - the tap must never break an answer
            return
        watch = self._claim(question.name, question.rdtype) if self.watching else None
        if watch is None:
            if self.budget <= 0:
                self.skipped += 1
                return
            self.budget -= 1
        name, kind = question.name.to_text(), dns.rdatatype.to_text(question.rdtype)
        rcode = dns.rcode.to_text(answer.rcode())
        records, authority = lines(answer.answer), lines(answer.authority)
        # No lookup ran: the picture is the truth, a question answered from the cache.
        if records:
            lookup = CacheLookup(0, name, kind, "hit", ttl=answer.answer[0].ttl, records=records)
        else:
            lookup = CacheLookup(0, name, kind, "negative", ttl=answer.authority[0].ttl if answer.authority else None,
                                 rcode=rcode)
        events: list[tuple[float, Event]] = [
            (0.0, Start(0, name, kind)), (0.0, lookup),
            (0.0, Done(0, name, kind, rcode, records, authority, "", 0)),
        ]
        client = str(peer[0]) if peer else ""
        self._keep(watch, time.time(), client, name, kind, rcode, "fast", 0, None, via_tcp, events)

    def traced(self, recording: Recording, name: dns.name.Name, rdtype: int, result: Result,
               cold: bool) -> Tapped:
        """A trace started from the web page (`dnslab trace [--cold]`): kept with the page's own queries.

        It is no client's query (no client asked over the network, and a cold one used a private,
        empty cache), so its `how` says what it was: "trace", or "cold" for a walk from the root."""
        return self._keep(Watch(name.to_text().lower(), int(rdtype)), time.time(), "this page", name.to_text(),
                          dns.rdatatype.to_text(rdtype), dns.rcode.to_text(result.rcode),
                          "cold" if cold else "trace", result.upstream_queries, recording.elapsed_ms(),
                          False, recording.events)

    def _keep(self, watch: Watch | None, when: float, client: str, name: str, kind: str, rcode: str, how: str,
              upstream: int, ms: float | None, tcp: bool, events: list[tuple[float, Event]]) -> Tapped:
        tapped = Tapped(self._next_id, when, client, name, kind, rcode, how, upstream, ms, tcp, watch is not None,
                        events)
        self._next_id += 1
        self.recorded += 1
        if watch is not None:
            watch.id = tapped.id
        self.ring.append(tapped)
        return tapped

    # --- the web view's side --------------------------------------------------------------

    def since(self, last_id: int) -> list[Tapped]:
        """Recorded queries newer than *last_id*, oldest first."""
        out = []
        for tapped in reversed(self.ring):
            if tapped.id <= last_id:
                break
            out.append(tapped)
        out.reverse()
        return out

    def get(self, query_id: int) -> Tapped | None:
        for tapped in reversed(self.ring):
            if tapped.id == query_id:
                return tapped
            if tapped.id < query_id:
                break
        return None
