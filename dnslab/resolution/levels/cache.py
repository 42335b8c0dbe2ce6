"""A level's cache: whole answers by question, kept as long as the level's policy says.

Unlike the resolver's RRset cache (dnslab.resolution.cache) a browser, an
operating system stub or a forwarder keeps the answer it was given to a
question and hands the same answer back, with the TTLs counted down.  Time
comes from the injected clock, so `dnslab clock advance` (or a test's fake
clock) expires every level by its own policy; the bound (the policy's
`max_entries`, least recently used out first) keeps memory flat.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

import cachetools
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import dns.rrset

from dnslab.core.clock import Clock
from dnslab.resolution.answer import error_reply
from dnslab.resolution.levels.policy import AnswerKind, Keep, LevelPolicy, Shape

Key = tuple[dns.name.Name, int, bool]  # name, type, DNSSEC records asked for (DO)


class State(enum.StrEnum):
    FRESH = "fresh"
    GRACE = "grace"  # past its time, still served while the level asks again (Firefox's grace period)


@dataclass
class Entry:
    qname: dns.name.Name
    qtype: int
    dnssec: bool
    rcode: int
    answer: list[dns.rrset.RRset]
    authority: list[dns.rrset.RRset]
    authenticated: bool  # AD from upstream
    shape: Shape
    keep: Keep
    stored_at: float
    hits: int = 0
    refreshing: bool = field(default=False)  # a refresh is on its way (grace)

    @property
    def fresh_until(self) -> float:
        return self.stored_at + self.keep.fresh

    @property
    def stale_until(self) -> float:
        return self.fresh_until + self.keep.grace


@dataclass(frozen=True)
class Found:
    entry: Entry
    state: State
    remaining: int  # whole seconds of freshness left (0 in grace)


@dataclass(frozen=True)
class EntryView:
    """One entry as `dnslab cache show --level` and the web view show it."""

    name: str
    type: str
    kind: str
    remaining: int
    kept_for: float
    original_ttl: int | None
    state: str
    hits: int
    records: list[str]


def shape_of(reply: dns.message.Message) -> Shape | None:
    """What a policy decides from; None for replies no cache keeps (SERVFAIL, REFUSED, truncated...)."""
    rcode = reply.rcode()
    if reply.flags & dns.flags.TC or rcode not in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
        return None
    soa = next((rrset for rrset in reply.authority if rrset.rdtype == dns.rdatatype.SOA), None)
    soa_ttl = soa.ttl if soa is not None else None
    soa_minimum = soa[0].minimum if soa is not None else None  # type: ignore[attr-defined]
    if rcode == dns.rcode.NXDOMAIN:
        return Shape(AnswerKind.NXDOMAIN, None, soa_ttl, soa_minimum)
    data = [rrset for rrset in reply.answer if rrset.rdtype != dns.rdatatype.RRSIG]
    if not data:
        return Shape(AnswerKind.NODATA, None, soa_ttl, soa_minimum)
    return Shape(AnswerKind.POSITIVE, min(rrset.ttl for rrset in reply.answer))


class LevelCache:
    """Answers by (name, type, DO), each with its own time to live from the policy."""

    def __init__(self, policy: LevelPolicy, clock: Clock, max_entries: int | None = None) -> None:
        self.policy = policy
        self.clock = clock
        self.max_entries = max_entries or policy.max_entries
        self._entries: cachetools.LRUCache[Key, Entry] = cachetools.LRUCache(maxsize=self.max_entries)

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, qname: dns.name.Name, qtype: int, dnssec: bool = False) -> Found | None:
        """The answer kept for this question, fresh or in grace; None (and forgotten) once past both."""
        key = (qname, qtype, dnssec)
        entry = self._entries.get(key)
        if entry is None:
            return None
        now = self.clock.now()
        if now < entry.fresh_until:
            return Found(entry, State.FRESH, int(entry.fresh_until - now))
        if now < entry.stale_until:
            return Found(entry, State.GRACE, 0)
        del self._entries[key]
        return None

    def put(self, qname: dns.name.Name, qtype: int, reply: dns.message.Message,
            dnssec: bool = False) -> Entry | None:
        """Keep *reply* if the policy keeps its kind of answer; the entry, or None."""
        shape = shape_of(reply)
        keep = self.policy.keep(shape) if shape is not None else None
        key = (qname, qtype, dnssec)
        if keep is None or keep.fresh + keep.grace <= 0:
            self._entries.pop(key, None)  # an answer not kept also ends the old one's grace
            return None
        entry = Entry(qname, qtype, dnssec, reply.rcode(), [r.copy() for r in reply.answer],
                      [r.copy() for r in reply.authority], bool(reply.flags & dns.flags.AD), shape,  # type: ignore[arg-type]
                      keep, self.clock.now())
        self._entries[key] = entry
        return entry

    def flush(self, name: dns.name.Name | None = None, tree: bool = False) -> int:
        """Forget everything, one name, or (*tree*) a name and all below it; how many entries went."""
        if name is None:
            count = len(self._entries)
            self._entries.clear()
            return count
        gone = [key for key in self._entries if key[0] == name or (tree and key[0].is_subdomain(name))]
        for key in gone:
            del self._entries[key]
        return len(gone)

    def entries(self) -> list[EntryView]:
        now = self.clock.now()
        views = []
        for entry in list(self._entries.values()):
            if now >= entry.stale_until:
                continue
            fresh = now < entry.fresh_until
            records = [line for rrset in (entry.answer or entry.authority) for line in rrset.to_text().splitlines()]
            views.append(EntryView(entry.qname.to_text(), dns.rdatatype.to_text(entry.qtype), str(entry.shape.kind),
                                   int(entry.fresh_until - now) if fresh else 0, entry.keep.fresh,
                                   entry.shape.ttl if not entry.shape.negative else entry.shape.soa_negative_ttl,
                                   str(State.FRESH if fresh else State.GRACE), entry.hits, records))
        views.sort(key=lambda v: (dns.name.from_text(v.name), v.type))
        return views


def reply_from(found: Found, query: dns.message.Message) -> dns.message.Message:
    """The client's reply from a kept answer: its records with the level's time left as their TTL.

    The TTL a client sees is how much longer this level keeps the answer (as
    systemd-resolved and dnsmasq count a cached TTL down): a browser's 60 s entry
    of a 300 s record shows 60, then 59...; an answer in grace shows 0.
    """
    entry = found.entry
    reply = error_reply(query, entry.rcode)  # RA, RD and CD echoed, EDNS if the client used it
    if entry.authenticated and (query.flags & dns.flags.AD or query.ednsflags & dns.flags.DO):
        reply.flags |= dns.flags.AD
    for section, rrsets in ((reply.answer, entry.answer), (reply.authority, entry.authority)):
        for rrset in rrsets:
            copy = rrset.copy()
            copy.ttl = found.remaining
            section.append(copy)
    return reply


def relay(upstream: dns.message.Message, query: dns.message.Message) -> dns.message.Message:
    """An upstream reply the level did not keep (SERVFAIL, a TTL of 0...), passed on to its client as it came."""
    reply = error_reply(query, upstream.rcode())
    if upstream.flags & dns.flags.AD and (query.flags & dns.flags.AD or query.ednsflags & dns.flags.DO):
        reply.flags |= dns.flags.AD
    reply.answer = [rrset.copy() for rrset in upstream.answer]
    reply.authority = [rrset.copy() for rrset in upstream.authority]
    return reply
