"""The recursive service: drives the iterator with real sockets and answers clients.

Everything that decides is elsewhere (iterator, classify, cache, infra); this
module parses client queries, applies access control, merges identical
questions in flight, hands the iterator's queries to dnslab.services.upstream (which
merges identical upstream questions in flight and sends each with a fresh
random ID and source port, accepting replies only from the address and port
asked and for the same question), and shapes the reply: minimal,
RA=1, AA=0, RD echoed, question case preserved, TTLs counted down and
multi-record RRsets rotated from the cache.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import random
import time
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Awaitable, Callable

import dns.edns
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from dnslab.resolution.cache import Cache, Rank, Rotation
from dnslab.core.fastpath import MAX_VARIANTS, AnswerCache, WireAnswer
from dnslab.core.clock import Clock, MonotonicClock, WallClock
from dnslab.core.events import Done, Event, QuerySent, Recording, Sink
from dnslab.resolution.hints import RootHints
from dnslab.resolution.infra import Failure, Infra
from dnslab.resolution.iterator import Resolution, Result, chain_end
from dnslab.services.upstream import Upstream
from dnslab.resolution.validator import Fetch, KeyCache, Security, Validator, Verdict
from dnslab.core.wire import EDNS_UDP_SIZE, OPT, PLAIN_UDP_SIZE, header_only_reply, query_key, ttl_offsets
from dnslab.resolution.settings import ResolverSettings

if TYPE_CHECKING:
    from dnslab.faces.querytap import QueryTap

log = logging.getLogger(__name__)

# RFC 8767 §5 suggests 1.8 s: how long a client waits before stale data is answered.
STALE_CLIENT_TIMER = 1.8
# Bogus answers asked again, each time avoiding the servers that sent the failing data
# (Unbound restarts a bogus lookup with those servers blacklisted, up to 5 times).
MAX_BOGUS_RETRIES = 3


@dataclass
class Stats:
    """Counters for `dnslab stats`, in the spirit of `unbound-control stats`."""

    started: float
    queries: int = 0
    by_type: dict[str, int] = field(default_factory=dict)
    by_rcode: dict[str, int] = field(default_factory=dict)
    cache_hits: int = 0
    cache_misses: int = 0
    cache_expired: int = 0           # misses for data that had been cached and ran out
    upstream_queries: int = 0
    merged_queries: int = 0          # queries that joined the same question already in flight
    secure: int = 0                  # answers validated secure (DNSSEC)
    bogus: int = 0                   # answers that failed validation (SERVFAIL to the client)
    timeouts: int = 0
    network_errors: int = 0
    failovers: int = 0               # tries that failed and went on to another server
    servfails: int = 0

    def fast_answered(self, type_text: str, rcode_text: str) -> None:
        """A reply replayed by the fast path: always a cache hit."""
        self._count(type_text, rcode_text, True)

    def answered(self, rdtype: int, result: Result) -> None:
        self._count(dns.rdatatype.to_text(rdtype), dns.rcode.to_text(result.rcode), result.from_cache)
        self.servfails += result.rcode == dns.rcode.SERVFAIL

    def _count(self, type_text: str, rcode_text: str, from_cache: bool) -> None:
        self.queries += 1
        self.by_type[type_text] = self.by_type.get(type_text, 0) + 1
        self.by_rcode[rcode_text] = self.by_rcode.get(rcode_text, 0) + 1
        if from_cache:
            self.cache_hits += 1
        else:
            self.cache_misses += 1

    def to_json(self) -> dict[str, object]:
        fields = {name: value for name, value in vars(self).items() if name != "started"}
        return {**fields, "uptime_s": round(time.monotonic() - self.started, 1)}


@dataclass(frozen=True)
class QueryLog:
    """One client query, for `dnslab up --log-queries`."""

    when: float
    client: str
    name: str
    type: str
    rcode: str
    from_cache: bool
    upstream_queries: int
    ms: float
    tcp: bool

    def line(self) -> str:
        stamp = time.strftime("%H:%M:%S", time.localtime(self.when)) + f".{int(self.when % 1 * 1000):03d}"
        source = "cache" if self.from_cache else f"{self.upstream_queries} upstream"
        transport = " tcp" if self.tcp else ""
        return (f"{stamp} {self.client}{transport} {self.name} {self.type} {self.rcode} {source} "
                f"{self.ms:.1f} ms")


class RecursiveResolver:
    """The resolver: a cache, server state, and the loop that runs each lookup."""

    def __init__(self, hints: RootHints, settings: ResolverSettings = ResolverSettings(),
                 clock: Clock | None = None, rng: random.Random | None = None) -> None:
        self.hints = hints
        self.settings = settings
        self.clock = clock or (WallClock() if settings.ttl_clock == "wall" else MonotonicClock())
        rng = rng or random.SystemRandom()
        self.cache = Cache(self.clock, settings.cache, rng)
        # Bounded like the RRset cache it replays, so cache_size bounds the resolver's memory.
        self.fast = (AnswerCache(self.clock, max_entries=min(20_000, settings.cache.max_entries))
                     if settings.fast_path else None)
        self._acl: dict[str, bool] = {}
        self.infra = Infra(self.clock, settings.infra, rng)
        self.cache.on_flush.append(self.infra.forget_lame)  # a flush starts the resolver's memory afresh
        # DNSSEC validation is on when a trust anchor is configured, as in Unbound.
        self.validator = Validator(settings.trust_anchors, self.clock) if settings.trust_anchors else None
        if self.validator is not None:
            self.cache.on_flush.append(self.validator.keys.clear)
        self.upstream = Upstream(settings.upstream_port, dnssec=self.validator is not None)
        self._in_flight: dict[tuple[dns.name.Name, int, bool], asyncio.Future[Result]] = {}
        self._tasks: set[asyncio.Future[Result]] = set()  # lookups refreshing stale data
        self.stats = Stats(started=time.monotonic())
        self.on_query: Callable[[QueryLog], None] | None = None  # `dnslab up --log-queries`
        # The web view's sample of client queries with their traces; unlike on_query it keeps the fast path.
        self.tap: QueryTap | None = None
        # For test suites (dnslab.testing): keep the events of the last client lookup.
        self.keep_last_trace = False
        self.last_trace = Recording()

    # --- resolving -----------------------------------------------------------------------

    async def resolve(self, qname: dns.name.Name, qtype: int, cache_only: bool = False,
                      trace: Sink | None = None) -> Result:
        """Resolve once per distinct question in flight; every waiter gets the same result.

        *trace* receives the lookup's events (a waiter that joins a lookup already
        in flight sees none: it started no lookup of its own).
        """
        key = (qname, qtype, cache_only)
        running = self._in_flight.get(key)
        if running is not None:
            return await asyncio.shield(running)
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._in_flight[key] = future
        try:
            result = await self._resolve(qname, qtype, cache_only, trace)
        except Exception:  # noqa: BLE001 - a client must get SERVFAIL, never silence
            log.exception("resolving %s %s failed", qname, dns.rdatatype.to_text(qtype))
            result = Result(dns.rcode.SERVFAIL, reason="internal error")
        finally:
            del self._in_flight[key]
        future.set_result(result)
        return result

    async def answer(self, qname: dns.name.Name, qtype: int, cache_only: bool = False, checking_disabled: bool = False,
                     trace: Sink | None = None) -> Result:
        """A client's answer: resolved, then validated unless the client set CD=1 (RFC 4035 §3.2.2)."""
        if self.keep_last_trace:  # for test suites: this lookup's steps, stamped as `dnslab trace --json` does
            self.last_trace = Recording()
            trace = self.last_trace.sink if trace is None else _both(self.last_trace.sink, trace)
        if self.validator is None or cache_only or checking_disabled:
            return await self.resolve(qname, qtype, cache_only=cache_only, trace=trace)
        held = _AnswerLast(trace) if trace is not None else None
        result = await self.resolve(qname, qtype, trace=held)
        validated, verdict = await self._judge(result, qname, qtype, held, tally=False)
        avoid: frozenset[str] = frozenset()
        for _ in range(MAX_BOGUS_RETRIES):
            # Like Unbound's validator: data that fails may be one bad server's (a stale or
            # tampered copy), so forget it and ask again, avoiding the servers that sent it.
            fresh = frozenset(verdict.sources if verdict is not None else ()) - avoid
            if verdict is None or verdict.security is not Security.BOGUS or not fresh:
                break
            avoid |= fresh
            self._forget(result, verdict, qname)
            retry = await self._drive(self._resolution(qname, qtype, trace=held, avoid=avoid))
            if retry.rcode not in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
                break  # nobody else answers: the first verdict stands
            result = retry
            validated, verdict = await self._judge(retry, qname, qtype, held, avoid=avoid, tally=False)
        # One verdict per client answer in the statistics, however many tries it took.
        self.stats.bogus += validated.security == Security.BOGUS
        self.stats.secure += validated.security == Security.SECURE
        if validated.security == Security.SECURE:
            miss = self.validator.sentinel_miss(qname, qtype)
            if miss:
                validated = Result(dns.rcode.SERVFAIL, reason=miss, from_cache=validated.from_cache,
                                   upstream_queries=validated.upstream_queries, security=Security.BOGUS.value)
        if held is not None:
            held.release(result, validated)
        return validated

    async def validate(self, result: Result, qname: dns.name.Name, qtype: int, trace: Sink | None = None,
                       cache: Cache | None = None, keys: KeyCache | None = None, count: bool = True) -> Result:
        """Judge a result; bogus becomes SERVFAIL with the reason as an Extended DNS Error.

        *cache* and *keys* replace the shared ones (a cold trace); *count* False keeps a
        trace out of the statistics, as in `_drive`.
        """
        judged, _ = await self._judge(result, qname, qtype, trace, cache, keys, count)
        return judged

    async def _judge(self, result: Result, qname: dns.name.Name, qtype: int, trace: Sink | None = None,
                     cache: Cache | None = None, keys: KeyCache | None = None, count: bool = True,
                     avoid: frozenset[str] = frozenset(), tally: bool = True) -> tuple[Result, Verdict | None]:
        """`validate`, with the verdict itself (None when there was nothing to judge).

        *tally* False leaves the secure/bogus counters to the caller (a client answer that
        may be tried again counts once).
        """
        assert self.validator is not None
        if result.rcode not in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN) or result.stale:
            return result, None
        check = self.validator.check(result, qname, qtype, trace, keys=keys)
        cache = cache or self.cache
        try:
            need = next(check)
            while True:
                fetched = await self._fetch(need, cache, trace, count, avoid)
                need = check.send(fetched)
        except StopIteration as done:
            verdict: Verdict = done.value
        self._remember_verdicts(cache, verdict, result, qname, qtype)
        if verdict.security is Security.BOGUS:
            self.stats.bogus += count and tally
            return Result(dns.rcode.SERVFAIL, reason=f"DNSSEC validation failed: {verdict.reason}",
                          from_cache=result.from_cache, upstream_queries=result.upstream_queries,
                          security=verdict.security.value, ede=verdict.ede), verdict
        if verdict.security is Security.SECURE:
            self.stats.secure += count and tally
        return replace(result, security=verdict.security.value), verdict

    def _forget(self, result: Result, verdict: Verdict, qname: dns.name.Name) -> None:
        """Drop what a bogus verdict rests on (the answer's names, the zone whose keys failed), so a
        retry fetches it again; the key cache goes with it (flush_name clears it)."""
        names = {evidence.rrset.name for evidence in result.evidence}
        if result.denial is not None:
            names.add(chain_end(qname, result.answer))
        if verdict.zone is not None:
            names.add(verdict.zone)
        for name in names:
            self.cache.flush_name(name)

    def _remember_verdicts(self, cache: Cache, verdict: Verdict, result: Result, qname: dns.name.Name,
                           qtype: int) -> None:
        """Keep each part's new verdict with its cache entry; secure ones only until their RRSIGs expire."""
        wall = self.clock.wall()
        for evidence, security in verdict.parts:
            if security not in (Security.SECURE, Security.INSECURE) or evidence.security is not None:
                continue
            expiring = [sig.expiration for sig in evidence.sigs or ()] if security is Security.SECURE else []
            valid_for = min(expiring) - wall if expiring else None
            if evidence.negative is None:
                cache.set_security(evidence.rrset.name, evidence.rrset.rdtype, evidence.rrset, security.value,
                                   valid_for=valid_for)
            else:
                cache.set_security(chain_end(qname, result.answer), qtype, None, security.value,
                                   negative=evidence.negative, valid_for=valid_for)

    async def _fetch(self, need: Fetch, cache: Cache, trace: Sink | None, count: bool,
                     avoid: frozenset[str] = frozenset()) -> Result:
        """A DS or DNSKEY RRset for the validator, found by the iterator like any other data."""
        resolution = Resolution(need.name, need.rdtype, cache=cache, infra=self.infra, hints=self.hints,
                                settings=self.settings.iterator, trace=trace, depth=1,
                                why=f"DNSSEC: the {dns.rdatatype.to_text(need.rdtype)} of {need.name}",
                                purpose="DNSSEC", avoid=avoid)
        return await self._drive(resolution, count=count)

    async def _resolve(self, qname: dns.name.Name, qtype: int, cache_only: bool, trace: Sink | None) -> Result:
        if cache_only:
            return await self._drive(self._resolution(qname, qtype, cache_only=True, trace=trace))
        stale = self._stale_answer(qname, qtype)
        if self.cache.expired_since(qname, qtype) is not None:
            self.stats.cache_expired += 1
        if self.cache.is_servfail(qname, qtype):
            return stale or Result(dns.rcode.SERVFAIL, reason="a recent SERVFAIL for this question is cached",
                                   from_cache=True)
        lookup = asyncio.ensure_future(self._drive(self._resolution(qname, qtype, trace=trace)))
        if stale is not None:
            # RFC 8767 §5: if fresh data is not in within the client response timer,
            # answer the stale data now and let the lookup go on refreshing the cache.
            done, _ = await asyncio.wait({lookup}, timeout=STALE_CLIENT_TIMER)
            if not done:
                self._tasks.add(lookup)
                lookup.add_done_callback(lambda task: self._finished_in_background(task, qname, qtype))
                return stale
        result = await lookup
        if result.rcode == dns.rcode.SERVFAIL:
            self.cache.put_servfail(qname, qtype)
            if stale is not None:
                return stale
        return result

    def _resolution(self, qname: dns.name.Name, qtype: int, cache_only: bool = False,
                    trace: Sink | None = None, avoid: frozenset[str] = frozenset()) -> Resolution:
        return Resolution(qname, qtype, cache=self.cache, infra=self.infra, hints=self.hints,
                          settings=self.settings.iterator, cache_only=cache_only, trace=trace, avoid=avoid)

    def _finished_in_background(self, task: asyncio.Future[Result], qname: dns.name.Name, qtype: int) -> None:
        self._tasks.discard(task)  # type: ignore[arg-type]
        if not task.cancelled() and task.exception() is None and task.result().rcode == dns.rcode.SERVFAIL:
            self.cache.put_servfail(qname, qtype)

    async def _drive(self, resolution: Resolution, count: bool = True, merge: bool = True) -> Result:
        """Send the lookup's queries until it is done or its time is up.

        *count* False keeps a trace out of the statistics a client's query feeds.
        *merge* lets a query join the same question already in flight (see
        dnslab.services.upstream); a traced lookup never joins, so each step it shows is
        its own exchange with the server it names.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.query_time_limit
        merge = merge and resolution.trace is None
        while True:
            action = resolution.next_action()
            if isinstance(action, Result):
                if count:
                    self.stats.failovers += resolution.budget.failed_tries
                return action
            remaining = deadline - loop.time()
            if remaining <= 0:
                return Result(dns.rcode.SERVFAIL,
                              reason=f"no answer within {self.settings.query_time_limit:g} s")
            done = await self.upstream.exchange(action, min(action.timeout, remaining), remaining, merge)
            query, error, shared = done.query, done.error, done.shared
            if count:
                if shared:
                    self.stats.merged_queries += 1
                else:
                    self.stats.upstream_queries += 1
            if error is None:
                assert done.reply is not None
                resolution.on_reply(query, done.reply, done.rtt, shared=shared)
            elif isinstance(error, dns.exception.Timeout):
                self.stats.timeouts += count and not shared
                resolution.on_timeout(query, shared=shared)
            elif isinstance(error, (OSError, EOFError, ConnectionError)):
                self.stats.network_errors += count and not shared
                resolution.on_failure(query, Failure.NETWORK, shared=shared)
            else:
                resolution.on_failure(query, Failure.BROKEN, shared=shared)

    def _stale_answer(self, qname: dns.name.Name, qtype: int) -> Result | None:
        """RFC 8767: expired data (within the stale window) beats no data when servers fail."""
        if not self.settings.cache.serve_stale:
            return None
        hit = self.cache.get_stale(qname, qtype)
        if hit is None or not hit.stale or hit.rank < Rank.ANSWER:  # glue is never an answer (RFC 2181 §5.4.1)
            return None
        return Result(dns.rcode.NOERROR, [hit.rrset], reason="stale data served (RFC 8767)", from_cache=True,
                      stale=True)

    # --- answering clients -------------------------------------------------------------

    def handle(self, wire: bytes, via_tcp: bool,
               peer: tuple[str, int] | None = None) -> bytes | None | Awaitable[bytes | None]:
        """A client's query in, our reply out (None: say nothing).

        A question answered before comes back at once from a ready wire reply (the
        fast path: no parsing, only ID, TTLs and round-robin order changed); anything
        else becomes a coroutine for the full path.
        """
        fast = self.fast
        key = None
        if fast is not None and self.on_query is None and not self.keep_last_trace:
            try:
                parsed = query_key(wire)
                if parsed is not None:
                    key = (b"T" if via_tcp else b"U") + parsed[0]
                    if peer is None or self._allowed(peer[0]):
                        answer = fast.get(key, wire, self.cache.version)
                        if answer is not None:
                            self.stats.fast_answered(answer.type_text, answer.rcode_text)
                            reply = fast.render(answer, wire)
                            tap = self.tap
                            if tap is not None:
                                if tap.budget > 0 or tap.watching:
                                    tap.fast(wire, reply, peer, via_tcp)
                                else:
                                    tap.skipped += 1  # the common case at high rates: no call at all
                            return reply
            except Exception:  # noqa: BLE001 - a bug of ours in the fast path: the full path answers
                log.exception("the fast path failed; answering on the full path")
                key = None
        return self._handle(wire, via_tcp, peer, key)

    async def _handle(self, wire: bytes, via_tcp: bool, peer: tuple[str, int] | None,
                      key: bytes | None) -> bytes | None:
        try:
            query = dns.message.from_wire(wire)
        except dns.message.ShortHeader:
            return None
        except Exception:  # noqa: BLE001 - any unparsable query is a FORMERR, never a crash
            return header_only_reply(wire, dns.rcode.FORMERR)
        if query.flags & dns.flags.QR:
            return None
        try:
            return await self._answer_query(query, wire, via_tcp, peer, key)
        except Exception:  # noqa: BLE001 - a bug of ours: the client still gets a proper SERVFAIL
            log.exception("answering %s failed", query.question[0] if query.question else "a query")
            return self._render(_error(query, dns.rcode.SERVFAIL), query, via_tcp)

    async def _answer_query(self, query: dns.message.Message, wire: bytes, via_tcp: bool,
                            peer: tuple[str, int] | None, key: bytes | None) -> bytes | None:
        if peer is not None and not self._allowed(peer[0]):
            return self._render(_error(query, dns.rcode.REFUSED), query, via_tcp)
        if query.opcode() != dns.opcode.QUERY:
            return self._render(_error(query, dns.rcode.NOTIMP), query, via_tcp)
        if len(query.question) != 1:
            return header_only_reply(wire, dns.rcode.FORMERR, recursion_available=True)
        if query.edns > 0:
            reply = _error(query, dns.rcode.BADVERS)
            return self._render(reply, query, via_tcp)
        question = query.question[0]
        if question.rdclass != dns.rdataclass.IN:
            return self._render(_error(query, dns.rcode.REFUSED), query, via_tcp)
        if dns.rdatatype.is_metatype(question.rdtype) and question.rdtype != dns.rdatatype.ANY:
            return self._render(_error(query, dns.rcode.NOTIMP), query, via_tcp)
        cache_only = not query.flags & dns.flags.RD
        started = time.monotonic()
        tap = self.tap
        recording = tap.begin(question.name, question.rdtype) if tap is not None else None
        merged = recording is not None and (question.name, question.rdtype, cache_only) in self._in_flight
        result = await self.answer(question.name, question.rdtype, cache_only=cache_only,
                                   checking_disabled=bool(query.flags & dns.flags.CD),
                                   trace=recording.sink if recording is not None else None)
        self.stats.answered(question.rdtype, result)
        if self.on_query is not None or recording is not None:
            entry = QueryLog(time.time(), peer[0] if peer else "", question.name.to_text(),
                             dns.rdatatype.to_text(question.rdtype), dns.rcode.to_text(result.rcode),
                             result.from_cache, result.upstream_queries, (time.monotonic() - started) * 1000,
                             via_tcp)
            if self.on_query is not None:
                self.on_query(entry)
            if tap is not None and recording is not None:
                tap.finish(recording, entry, result, merged)
        reply, sources, rotation = self._reply(query, result)
        wire_reply = self._render(reply, query, via_tcp)
        if (key is not None and sources is not None and not wire_reply[2] & 0x02  # not truncated
                and self.fast is not None and self.fast.asked_before(key)):
            self._remember(key, query, reply, sources, rotation, wire_reply, via_tcp)
        return wire_reply

    def _remember(self, key: bytes, query: dns.message.Message, reply: dns.message.Message,
                  sources: list[tuple[float, int]], rotation: Any, first: bytes, via_tcp: bool) -> None:
        """Keep a reply for the fast path, with one template per round-robin step."""
        assert self.fast is not None
        policy = self.settings.cache.rotation
        if policy is Rotation.RANDOM:
            return  # a replayed random order would not be random
        if policy is Rotation.FIXED:
            rotation = None
        steps = 1 if rotation is None else len(rotation.rdatas)
        if steps > MAX_VARIANTS:
            return
        variants = []
        for step in range(steps):
            if step:
                reply.answer = [_rotated(rrset, 1) if len(rrset) > 1 else rrset for rrset in reply.answer]
                wire = self._render(reply, query, via_tcp)
            else:
                wire = first
            offsets = [offset for offset, rtype in ttl_offsets(wire) if rtype != OPT]
            if len(offsets) != len(sources):
                return  # the reply is not the records we think it is: keep to the full path
            variants.append((wire, [(offset, expires, ttl) for offset, (expires, ttl) in zip(offsets, sources)]))
        # The first template is the order just sent, the cache entry's turn before this reply.
        answer = WireAnswer(variants, min(expires for expires, _ in sources),
                            dns.rcode.to_text(reply.rcode()), dns.rdatatype.to_text(query.question[0].rdtype),
                            rotation, rotation.turn - 1 if rotation is not None else 0)
        self.fast.put(key, answer, self.cache.version)

    # --- tracing ---------------------------------------------------------------------

    async def trace(self, qname: dns.name.Name, qtype: int, sink: Sink, cold: bool = False) -> Result:
        """Resolve with every step sent to *sink*, for `dnslab trace`.

        It runs its own lookup (never merged with other clients' questions) so
        each step is seen; it decides exactly as a client's lookup would, and other
        clients are served meanwhile as usual.  With *cold* it uses a private, empty
        cache so the walk is seen from the root without disturbing the shared cache;
        server state (RTTs, hold-downs) is shared, as it describes the real servers.
        """
        cache = Cache(self.clock, self.settings.cache, random.Random()) if cold else self.cache
        held = _AnswerLast(sink) if self.validator is not None else None
        resolution = Resolution(qname, qtype, cache=cache, infra=self.infra, hints=self.hints,
                                settings=self.settings.iterator, trace=held or sink)
        result = await self._drive(resolution, count=False)
        if held is None:
            return result
        verdict = await self.validate(result, qname, qtype, held, cache, KeyCache(self.clock) if cold else None,
                                      count=False)
        held.release(result, verdict)
        return verdict

    def _allowed(self, address: str) -> bool:
        """Whether a client address may use us; decided once per address (bounded memory)."""
        known = self._acl.get(address)
        if known is not None:
            return known
        try:
            ip = ipaddress.ip_address(address.split("%")[0])
            allowed = any(ip in network for network in self.settings.allow)
        except ValueError:
            allowed = False
        if len(self._acl) >= 4096:
            self._acl.clear()
        self._acl[address] = allowed
        return allowed

    def _reply(self, query: dns.message.Message,
               result: Result) -> tuple[dns.message.Message, list[tuple[float, int]] | None, Any]:
        """The reply, and for each record in it (expiry, TTL) when all of it is live cache data.

        The second part is what the fast path needs to replay the reply later; it is
        None for anything that must not be replayed (stale data, RD=0 answers, errors).
        """
        reply = _error(query, result.rcode)
        dnssec_ok = bool(query.ednsflags & dns.flags.DO)
        if result.security == Security.SECURE and (dnssec_ok or query.flags & dns.flags.AD):
            reply.flags |= dns.flags.AD  # RFC 6840 §5.7: AD for a client that asks with DO or AD
        if result.ede is not None and query.edns >= 0:
            reply.use_edns(0, reply.ednsflags, EDNS_UDP_SIZE,
                           options=[dns.edns.EDEOption(result.ede, result.reason[:200] or None)])
        sources: list[tuple[float, int]] | None = [] if not result.stale else None
        rotating = []
        signatures = ({(e.rrset.name, e.rrset.rdtype): e.sigs for e in result.evidence if e.sigs is not None}
                      if dnssec_ok else {})
        synthesised = {id(e.rrset) for e in result.evidence if e.synthesised}
        dname: Any = None  # the DNAME hit a synthesised CNAME that follows derives from
        for rrset in result.answer:
            hit = None if id(rrset) in synthesised else self.cache.get(rrset.name, rrset.rdtype, rotate=True)
            if hit is not None and hit.rrset == rrset:
                reply.answer.append(hit.rrset)
                if sources is not None:
                    sources.extend([(hit.expires_at, hit.original_ttl)] * len(hit.rrset))
                if len(hit.rrset) > 1:
                    rotating.append(hit.entry)
                dname = hit if rrset.rdtype == dns.rdatatype.DNAME else None
            elif dname is not None and id(rrset) in synthesised:
                # RFC 6672 §3.4: the synthesised CNAME has the DNAME's TTL, and counts down with it.
                reply.answer.append(_with_ttl(rrset, dname.rrset.ttl))
                if sources is not None:
                    sources.append((dname.expires_at, dname.original_ttl))
                dname = None
            else:
                reply.answer.append(rrset)
                sources = None
            sigs = signatures.get((rrset.name, rrset.rdtype)) if signatures else None
            if sigs is not None:
                # RRSIGs go right after their RRset, with its TTL (RFC 4035 §3.1.1).
                answered = reply.answer[-1]
                reply.answer.append(_with_ttl(sigs, answered.ttl))
                if sources is not None and hit is not None and hit.rrset == rrset:
                    sources.extend([(hit.expires_at, hit.original_ttl)] * len(sigs))
                else:
                    sources = None
        if dnssec_ok and any(e.proof for e in result.evidence):
            # A wildcard expansion: the NSEC/NSEC3 proof that no closer name exists (RFC 4035 §3.1.3.3).
            reply.authority = []
            for rrset in (r for e in result.evidence for r in e.proof):
                if rrset not in reply.authority:  # RRsets are not hashable; a proof is a few of them
                    reply.authority.append(rrset)
            return reply, None, rotating[0] if rotating else None
        if len(rotating) > 1:
            sources = None  # two round-robin counters: the replay could not follow both
        rotation = rotating[0] if rotating else None
        if result.rcode == dns.rcode.SERVFAIL:
            return reply, None, None
        reply.authority = list(result.authority)
        denial = result.denial
        if dnssec_ok and denial is not None and (denial.sigs is not None or denial.proof):
            # The signed denial as it came (SOA RRSIG, NSEC/NSEC3 and their RRSIGs); it is
            # rebuilt each time, so the wire fast path leaves it alone.
            soa_signed = denial.sigs is not None and denial.rrset.rdtype == dns.rdatatype.SOA
            extra = [_with_ttl(denial.sigs, denial.rrset.ttl)] if soa_signed else []  # type: ignore[arg-type]
            reply.authority += extra + list(denial.proof)
            return reply, None, rotation
        if result.authority:
            negative = None
            if result.authority[0].rdtype == dns.rdatatype.SOA:
                negative = self.cache.get_negative(chain_end(query.question[0].name, result.answer),
                                                   query.question[0].rdtype)
            if negative is None:
                sources = None  # a referral (RD=0) or an uncached SOA: not replayed
            else:
                reply.authority = [negative.soa] + ([negative.ns] if negative.ns is not None else [])
                if sources is not None:
                    records = sum(len(rrset) for rrset in reply.authority)
                    sources.extend([(negative.expires_at, negative.original_ttl)] * records)
        elif not result.answer:
            sources = None
        return reply, sources, rotation

    def _render(self, reply: dns.message.Message, query: dns.message.Message, via_tcp: bool) -> bytes:
        limit = 65535 if via_tcp else (PLAIN_UDP_SIZE if query.edns < 0 else
                                       min(max(query.payload, PLAIN_UDP_SIZE), self.settings.max_udp_size))
        # want_shuffle=False: dnspython shuffles records when rendering by default,
        # which would undo the cache's round-robin order.
        try:
            return reply.to_wire(max_size=limit, want_shuffle=False)
        except dns.exception.TooBig:
            reply.answer, reply.authority, reply.additional = [], [], []
            reply.flags |= dns.flags.TC
            return reply.to_wire(max_size=limit, want_shuffle=False)


class _AnswerLast:
    """A trace sink that holds back the client's answer (the depth-0 `done`) until validation has judged it.

    The iterator finishes before the validator starts; passed on at once, its
    answer line said "NOERROR" above the verdict that turns it into SERVFAIL.
    Held, the answer comes last and says what the client gets.
    """

    def __init__(self, sink: Sink) -> None:
        self.sink = sink
        self.done: Done | None = None
        self.queries = 0  # sent for this answer, the validator's DS and DNSKEY fetches included

    def __call__(self, event: Event) -> None:
        if isinstance(event, Done) and event.depth == 0:
            self.done = event  # a bogus answer asked again ends in a new one: the last is the client's
            return
        self.queries += isinstance(event, QuerySent)
        self.sink(event)

    def release(self, resolved: Result, verdict: Result) -> None:
        done = self.done
        if done is None:
            return
        done = replace(done, upstream_queries=max(done.upstream_queries, self.queries))
        if verdict.rcode != resolved.rcode:  # bogus: the client gets SERVFAIL, and none of the data
            done = replace(done, rcode=dns.rcode.to_text(verdict.rcode), records=[], authority=[],
                           reason=verdict.reason)
        self.sink(done)


def _both(first: Sink, second: Sink) -> Sink:
    def sink(event: Event) -> None:
        first(event)
        second(event)
    return sink


def _rotated(rrset: dns.rrset.RRset, step: int) -> dns.rrset.RRset:
    items = list(rrset)
    copy = rrset.copy()
    copy.items = dict.fromkeys(items[step:] + items[:step])
    return copy


def _with_ttl(rrset: dns.rrset.RRset, ttl: int) -> dns.rrset.RRset:
    copy = rrset.copy()
    copy.ttl = ttl
    return copy


def _error(query: dns.message.Message, rcode: int) -> dns.message.Message:
    """An empty reply with our flags: RA=1, AA=0, RD and CD echoed, our EDNS if the client used it."""
    reply = dns.message.make_response(query, our_payload=EDNS_UDP_SIZE)
    reply.flags = dns.flags.QR | dns.flags.RA | (query.flags & (dns.flags.RD | dns.flags.CD))
    reply.set_opcode(query.opcode())  # the opcode lives in the flags word: echo it (NOTIMP for NOTIFY)
    if query.edns >= 0 and query.ednsflags & dns.flags.DO:
        reply.ednsflags |= dns.flags.DO  # RFC 3225 §3: the DO bit is copied into the response
    reply.set_rcode(rcode)
    return reply
