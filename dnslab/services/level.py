"""A caching level on the wire: a browser, an operating-system stub or a forwarder in front of a resolver.

The level answers from its own cache (dnslab.resolution.levels.cache, under
its policy) and sends what it does not have to its upstreams, one after the
other as glibc's stub does (dnslab.resolution.levels.failover: timeout,
attempts, rotate).  Its handler has the transport's shape
(`wire, via_tcp, peer -> wire | None | awaitable`), so it listens through the
same `DnsListener` as every lab server, and the lab's fault switch goes in
front of it like any server's.  A hit is answered at once; a miss becomes a
coroutine, merged with the same question already on its way upstream.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import secrets
import time
from dataclasses import dataclass, field
from typing import Awaitable

import dns.asyncquery
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode

from dnslab.core.clock import Clock
from dnslab.core.wire import EDNS_UDP_SIZE, header_only_reply
from dnslab.resolution.answer import error_reply, parse_query, refusal, render, size_limit
from dnslab.resolution.levels.cache import Found, Key, LevelCache, State, relay, reply_from
from dnslab.resolution.levels.failover import StubOptions, moves_on, tries
from dnslab.resolution.levels.policy import LevelPolicy

log = logging.getLogger(__name__)

Address = tuple[str, int]
MAX_UDP_SIZE = 1232


@dataclass
class LevelStats:
    """A level's counters, for `dnslab stats` and the tests: was it asked, did it answer, did it go on."""

    started: float = field(default_factory=time.monotonic)
    queries: int = 0
    hits: int = 0            # answered from this level's cache, fresh
    grace_hits: int = 0      # answered with an expired entry in its grace period (and fetched again)
    misses: int = 0
    forwards: int = 0        # queries sent upstream (each try counts)
    merged: int = 0          # misses that joined the same question already on its way upstream
    timeouts: int = 0
    failovers: int = 0       # tries that failed and went on to the next (the next upstream, or the next round)
    servfails: int = 0       # SERVFAIL given to a client because no upstream answered

    def to_json(self) -> dict[str, object]:
        fields = {name: value for name, value in vars(self).items() if name != "started"}
        return {**fields, "uptime_s": round(time.monotonic() - self.started, 1)}


class CachingLevel:
    """One level: its cache, its upstreams, its counters."""

    def __init__(self, name: str, policy: LevelPolicy, upstreams: list[Address], clock: Clock,
                 options: StubOptions = StubOptions(), max_entries: int | None = None) -> None:
        self.name = name
        self.policy = policy
        self.upstreams = list(upstreams)
        self.options = options
        self.cache = LevelCache(policy, clock, max_entries)
        self.stats = LevelStats()
        self._rotation = itertools.count()  # glibc's per-process rotate counter
        self._in_flight: dict[Key, asyncio.Future[dns.message.Message | None]] = {}
        self._refreshing: set[asyncio.Task[object]] = set()

    # --- answering clients -------------------------------------------------------------

    def handle(self, wire: bytes, via_tcp: bool,
               peer: Address | None = None) -> bytes | None | Awaitable[bytes | None]:
        """A hit is answered now; a miss (or a malformed query) becomes a coroutine or an error reply."""
        query, instead = parse_query(wire)
        if query is None:
            return instead
        refused = refusal(query)
        if refused == dns.rcode.FORMERR:
            return header_only_reply(wire, dns.rcode.FORMERR, recursion_available=True)
        if refused is not None:
            return self._render(error_reply(query, refused), query, via_tcp)
        self.stats.queries += 1
        question = query.question[0]
        dnssec = bool(query.ednsflags & dns.flags.DO)
        found = self.cache.get(question.name, question.rdtype, dnssec)
        if found is not None:
            found.entry.hits += 1
            if found.state is State.GRACE:
                self.stats.grace_hits += 1
                self._refresh(query, (question.name, question.rdtype, dnssec))
            else:
                self.stats.hits += 1
            return self._render(reply_from(found, query), query, via_tcp)
        self.stats.misses += 1
        return self._miss(query, via_tcp)

    async def _miss(self, query: dns.message.Message, via_tcp: bool) -> bytes | None:
        question = query.question[0]
        key = (question.name, question.rdtype, bool(query.ednsflags & dns.flags.DO))
        # RD=0 (the upstream's cache only) and CD=1 (not validated) answers are passed on, never kept
        # or shared: kept, they would be served to every other client as a full, validated answer.
        keeps = bool(query.flags & dns.flags.RD) and not query.flags & dns.flags.CD
        upstream = await (self.fetch(query, key) if keeps else self._ask_upstreams(query))
        if upstream is None:
            self.stats.servfails += 1
            return self._render(error_reply(query, dns.rcode.SERVFAIL), query, via_tcp)
        entry = self.cache.put(key[0], key[1], upstream, key[2]) if keeps else None
        if entry is not None:
            reply = reply_from(Found(entry, State.FRESH, int(entry.keep.fresh)), query)
        else:
            reply = relay(upstream, query)
        return self._render(reply, query, via_tcp)

    def _refresh(self, query: dns.message.Message, key: Key) -> None:
        """Firefox's grace period: the old answer now, a fresh one fetched in the background."""
        if key in self._in_flight:
            return

        async def refresh() -> None:
            upstream = await self.fetch(query, key)
            if upstream is not None:
                self.cache.put(key[0], key[1], upstream, key[2])

        task = asyncio.ensure_future(refresh())
        self._refreshing.add(task)
        task.add_done_callback(self._refreshing.discard)

    # --- asking upstream -----------------------------------------------------------------

    async def fetch(self, query: dns.message.Message, key: Key) -> dns.message.Message | None:
        """The upstream reply to this question, once per question in flight; None: no upstream answered."""
        running = self._in_flight.get(key)
        if running is not None:
            self.stats.merged += 1
            return await asyncio.shield(running)
        future: asyncio.Future[dns.message.Message | None] = asyncio.get_running_loop().create_future()
        self._in_flight[key] = future
        result: dns.message.Message | None = None
        try:
            result = await self._ask_upstreams(query)
        except Exception:  # noqa: BLE001 - a client gets SERVFAIL, never silence
            log.exception("level %s: asking upstream failed", self.name)
        finally:
            del self._in_flight[key]
            future.set_result(result)
        return result

    async def _ask_upstreams(self, query: dns.message.Message) -> dns.message.Message | None:
        """glibc's res_send: each upstream in turn, `attempts` times round; a SERVFAIL, NOTIMP or
        REFUSED moves on like a timeout, and is what the client gets if nothing better comes."""
        question = query.question[0]
        outgoing = dns.message.make_query(question.name, question.rdtype, use_edns=0, payload=EDNS_UDP_SIZE,
                                          want_dnssec=bool(query.ednsflags & dns.flags.DO))
        outgoing.flags = query.flags & (dns.flags.RD | dns.flags.CD | dns.flags.AD)
        plan = tries(self.upstreams, self.options, next(self._rotation))
        last_error: dns.message.Message | None = None
        for index, step in enumerate(plan):
            if index:
                self.stats.failovers += 1
            self.stats.forwards += 1
            host, port = step.server
            outgoing.id = secrets.randbits(16)  # a fresh random ID for every try (RFC 5452)
            try:
                reply = await dns.asyncquery.udp(outgoing, host, timeout=step.timeout, port=port,
                                                 ignore_unexpected=True)
                if reply.flags & dns.flags.TC:
                    reply = await dns.asyncquery.tcp(outgoing, host, timeout=step.timeout, port=port)
            except dns.exception.Timeout:
                self.stats.timeouts += 1
                continue
            except (OSError, EOFError, dns.exception.DNSException) as exc:
                log.debug("level %s: %s:%s failed: %s", self.name, host, port, exc)
                continue
            if moves_on(reply.rcode()):
                last_error = reply
                continue
            return reply
        return last_error

    def _render(self, reply: dns.message.Message, query: dns.message.Message, via_tcp: bool) -> bytes:
        return render(reply, size_limit(query, via_tcp, MAX_UDP_SIZE))

    async def settled(self) -> None:
        """Wait for the background refreshes in flight (grace answers) to finish."""
        if self._refreshing:
            await asyncio.gather(*self._refreshing, return_exceptions=True)

    async def close(self) -> None:
        """Cancel background refreshes (the lab is stopping)."""
        for task in list(self._refreshing):
            task.cancel()
        if self._refreshing:
            await asyncio.gather(*self._refreshing, return_exceptions=True)
