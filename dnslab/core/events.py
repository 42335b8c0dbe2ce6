"""Trace events: what one lookup did, step by step, as plain values.

The iterator emits them through an optional callback, so tracing costs nothing
when nobody listens and never changes a decision.  Each event turns into one
JSON object whose field names are part of dnslab's interface (the "Trace events"
table of docs/REFERENCE.md): `dnslab trace --json`, the HTML picture and the web view
all read the same fields.  Time is added by whoever records the events.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, ClassVar


@dataclass(frozen=True)
class Event:
    """Base of all events; `kind` names the event in JSON."""

    kind: ClassVar[str] = "event"
    depth: int  # 0 for the client's question, 1+ inside sub-lookups of NS names

    def to_json(self) -> dict[str, Any]:
        return {"event": self.kind, **asdict(self)}


@dataclass(frozen=True)
class Start(Event):
    """A lookup begins: the client's question, or a sub-lookup for an NS name's address."""

    kind: ClassVar[str] = "start"
    name: str
    type: str
    why: str = ""  # "" for the client's question; "address of ns1.example.net. for zone example.net." otherwise


@dataclass(frozen=True)
class CacheLookup(Event):
    """The cache asked for (name, type) before going out."""

    kind: ClassVar[str] = "cache"
    name: str
    type: str
    result: str  # "hit", "miss", "expired", "negative" (NXDOMAIN/NODATA cached), "servfail"
    ttl: int | None = None           # remaining TTL of a hit or negative hit
    original_ttl: int | None = None  # the TTL it was stored with
    expired_ago: float | None = None  # seconds since an expired entry ran out
    rcode: str | None = None         # for negative hits: "NXDOMAIN" or "NOERROR" (NODATA)
    records: list[str] = field(default_factory=list)  # presentation lines of a hit


@dataclass(frozen=True)
class Delegation(Event):
    """Where the walk starts or continues: a zone and its name servers."""

    kind: ClassVar[str] = "delegation"
    zone: str
    servers: list[str]      # NS names
    source: str             # "cache", "hints" (priming), "referral"


@dataclass(frozen=True)
class ServerChoice(Event):
    """The server picked for the next query, and why."""

    kind: ClassVar[str] = "choose"
    zone: str
    server: str             # NS name ("" if unknown)
    address: str
    reason: str             # "fastest", "untried", "explore", "only one left", "probe", "only lame left"
    srtt_ms: float | None   # the smoothed RTT it was chosen on, None if untried
    timeout_ms: float
    held_down: list[str]    # addresses skipped because they are held down
    lame: list[str] = field(default_factory=list)  # addresses skipped because they are lame for the zone


@dataclass(frozen=True)
class QuerySent(Event):
    kind: ClassVar[str] = "query"
    zone: str
    server: str
    address: str
    name: str
    type: str
    purpose: str            # "resolve", "minimised", "priming", "glueless NS", "DNSSEC"
    tcp: bool
    edns: bool


@dataclass(frozen=True)
class Reply(Event):
    """A reply arrived, and what the iterator made of it."""

    kind: ClassVar[str] = "reply"
    zone: str
    server: str
    address: str
    rtt_ms: float
    rcode: str
    aa: bool
    tc: bool
    meaning: str            # "answer", "referral", "cname", "nxdomain", "nodata", "lame", "error",
                            # "formerr", "truncated", "no cut here" (minimised query answered)
    child_zone: str | None = None                     # referral: the zone delegated to
    ns: list[str] = field(default_factory=list)       # referral: its NS names
    glue: list[str] = field(default_factory=list)     # referral: "name address" pairs kept
    records: list[str] = field(default_factory=list)  # answer/chain lines, SOA of a negative answer
    target: str | None = None                         # cname: where the walk restarts
    dropped: int = 0                                  # records scrubbed as out of bailiwick
    nsid: str | None = None                           # the server's NSID (RFC 5001), if asked and given


@dataclass(frozen=True)
class SteeringChoice(Event):
    """A steered name answered by the lab's authoritative side (lab.toml [steering]): which policy chose
    which addresses, and why (endpoint health, weights, the client's location).  Not the resolver's
    own step: the trace adds it, while it runs, for the query the resolver sent."""

    kind: ClassVar[str] = "steering"
    name: str
    type: str
    policy: str             # "failover", "weighted", "nearest", "all-healthy"
    answer: list[str]
    why: str
    location: str = ""      # the client's location (ECS's, else the querier's)
    ecs: str = ""           # the client subnet (RFC 7871), if the query carried one
    zone: str = ""          # the zone of the query that got the answer (for the trace's indentation)


@dataclass(frozen=True)
class Failed(Event):
    """A try that brought no usable reply: the next server gets the question."""

    kind: ClassVar[str] = "failed"
    zone: str
    server: str
    address: str
    failure: str            # "timeout", "network", "broken", and for replies "refused", "servfail", "lame", ...
    after_ms: float | None  # the timeout waited, or the reply's RTT; None for an immediate network error


@dataclass(frozen=True)
class Restart(Event):
    """A CNAME or DNAME sends the walk to another name."""

    kind: ClassVar[str] = "restart"
    name: str
    target: str
    via: str                # "CNAME" or "DNAME"


@dataclass(frozen=True)
class Done(Event):
    """A lookup ended (for depth 0: the client's answer)."""

    kind: ClassVar[str] = "done"
    name: str
    type: str
    rcode: str
    records: list[str]      # answer lines, with the TTLs the client sees
    authority: list[str]
    reason: str             # why it failed, "" otherwise
    upstream_queries: int
    total_ms: float = 0.0   # filled by the recorder for depth 0


@dataclass(frozen=True)
class Validation(Event):
    """One DNSSEC step: a link of the chain of trust, a signature, a denial proof, or the verdict."""

    kind: ClassVar[str] = "dnssec"
    step: str               # "ds", "dnskey", "rrsig", "denial", "insecure", "verdict"
    zone: str               # whose keys are used (or established)
    name: str               # the owner of what was checked
    type: str
    security: str           # "secure", "insecure", "bogus", "indeterminate"
    key_tags: list[int] = field(default_factory=list)
    algorithm: str | None = None  # of the RRSIG checked, e.g. "ECDSAP256SHA256"
    detail: str = ""        # what was proven, or why it failed


Sink = Callable[[Event], None]


def lines(rrsets: Any) -> list[str]:
    """Presentation-format lines of RRsets, one record per line."""
    return [line for rrset in rrsets for line in rrset.to_text().splitlines()]


def to_ms(seconds: float) -> float:
    """Seconds as the milliseconds every event field holds: to the microsecond.

    A loopback exchange takes a few hundred microseconds and a cache hit a few
    dozen; rounded to a tenth of a millisecond they read "in 0 ms".
    """
    return round(seconds * 1000, 3)


def ms_text(value: Any) -> str:
    """A millisecond figure for people: sub-millisecond ones honestly ("0.42", "0.035"), others to 0.1 ms."""
    if value is None:
        return "?"
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    if 0 < abs(number) < 1:
        return f"{number:.2g}"
    number = round(number, 1)
    return str(int(number)) if number == int(number) else f"{number:.1f}"


def stamped(t_ms: float, event: Event) -> dict[str, Any]:
    """One event as `dnslab trace --json` prints it: `t_ms` first, and `total_ms` on the client's answer."""
    record = {"t_ms": t_ms, **event.to_json()}
    if isinstance(event, Done) and event.depth == 0 and not record.get("total_ms"):
        record["total_ms"] = t_ms
    return record


@dataclass
class Recording:
    """A lookup's events, each stamped with milliseconds since the recording began.

    The one recorder behind `dnslab trace`, the web view's traces and the pytest
    API's `lab.last_trace` and `lab.trace()`, so all of them carry the same fields.
    """

    started: float = field(default_factory=time.monotonic)
    events: list[tuple[float, Event]] = field(default_factory=list)

    def elapsed_ms(self) -> float:
        return to_ms(time.monotonic() - self.started)

    def sink(self, event: Event) -> None:
        self.events.append((self.elapsed_ms(), event))

    def to_json(self) -> list[dict[str, Any]]:
        return [stamped(t_ms, event) for t_ms, event in list(self.events)]
