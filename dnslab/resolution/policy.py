"""Answer policy before and after a lookup (sans-I/O): who may ask, serve-stale and the SERVFAIL cache.

The service asks `plan` before it starts a lookup and `settle` once the lookup
ended; it only waits (with the plan's timer) and sends.  Time comes from the
cache's injected clock, so every decision here is tested without sockets.

- Serve-stale (RFC 8767): expired data still within the stale window is kept
  aside before the lookup; it is answered when the lookup fails, or, when the
  lookup is slower than the client response timer (§5 suggests 1.8 s), at
  once while the lookup goes on refreshing the cache.
- The SERVFAIL cache (RFC 2308 §7.1, Unbound's 5 s): a question that just
  failed fails again at once, without asking the servers, unless stale data
  can answer it.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Sequence

import dns.name
import dns.rcode

from dnslab.resolution.cache import Cache, Rank
from dnslab.resolution.iterator import Result

# RFC 8767 §5 suggests 1.8 s: how long a client waits before stale data is answered.
STALE_CLIENT_TIMER = 1.8
ACL_MEMORY = 4096  # client addresses whose verdict is remembered


class Acl:
    """Which client addresses may use the resolver (`allow`); decided once per address, in bounded memory."""

    def __init__(self, allow: Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network]) -> None:
        self.allow = allow
        # What each client address was told, read first by the resolver's fast path.
        self.known: dict[str, bool] = {}

    def allows(self, address: str) -> bool:
        known = self.known.get(address)
        if known is not None:
            return known
        try:
            ip = ipaddress.ip_address(address.split("%")[0])  # a scoped IPv6 address: the scope is no part of it
            allowed = any(ip in network for network in self.allow)
        except ValueError:
            allowed = False
        if len(self.known) >= ACL_MEMORY:
            self.known.clear()
        self.known[address] = allowed
        return allowed


@dataclass(frozen=True)
class Plan:
    """What to do for a client's question, decided before any lookup."""

    now: Result | None = None    # answer this without a lookup (a cached SERVFAIL, or stale data in its place)
    stale: Result | None = None  # expired data to fall back on (serve-stale)
    expired: bool = False        # the question's data had been cached and ran out (a cache_expired statistic)

    @property
    def timer(self) -> float | None:
        """How long the client waits for the lookup before the stale data answers (None: until it ends)."""
        return STALE_CLIENT_TIMER if self.stale is not None else None


_LOOKUP = Plan()  # look it up: nothing to answer now, nothing to fall back on


def stale_answer(cache: Cache, qname: dns.name.Name, qtype: int) -> Result | None:
    """RFC 8767: expired data (within the stale window) beats no data when servers fail."""
    if not cache.settings.serve_stale:
        return None
    hit = cache.get_stale(qname, qtype)
    if hit is None or not hit.stale or hit.rank < Rank.ANSWER:  # glue is never an answer (RFC 2181 §5.4.1)
        return None
    return Result(dns.rcode.NOERROR, [hit.rrset], reason="stale data served (RFC 8767)", from_cache=True, stale=True)


def plan(cache: Cache, qname: dns.name.Name, qtype: int) -> Plan:
    """Before a client's lookup: stale data to keep aside, and whether a cached SERVFAIL answers now."""
    if not cache.settings.serve_stale and not cache.remembers(qname, qtype):
        return _LOOKUP  # nothing stale to keep, nothing expired, no SERVFAIL: one look says so
    stale = stale_answer(cache, qname, qtype)
    expired = cache.expired_since(qname, qtype) is not None
    if cache.is_servfail(qname, qtype):
        return Plan(stale or Result(dns.rcode.SERVFAIL, reason="a recent SERVFAIL for this question is cached",
                                    from_cache=True), stale, expired)
    if stale is None and not expired:
        return _LOOKUP  # (most questions: a frozen dataclass costs a microsecond to make)
    return Plan(None, stale, expired)


def settle(cache: Cache, qname: dns.name.Name, qtype: int, result: Result, stale: Result | None = None) -> Result:
    """After a client's lookup: a SERVFAIL is remembered, and stale data, if any, answers in its place.

    Also for a lookup that went on after stale data answered (then *stale* is None:
    the client has its answer)."""
    if result.rcode != dns.rcode.SERVFAIL:
        return result
    cache.put_servfail(qname, qtype)
    return stale if stale is not None else result
