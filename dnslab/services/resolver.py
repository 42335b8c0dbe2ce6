"""The recursive service: sockets, merging identical questions in flight, timers.

Everything that decides is in dnslab.resolution, sans-I/O: the iterator (one
lookup), the cache and server state, the answer policy before and after a
lookup (`policy`: who may ask, serve-stale, the SERVFAIL cache), validation
verdicts (`verdicts`: a generator of lookups, like the iterator) and the
client's reply (`answer`).  This module parses client queries, runs the
lookups those ask for, handing the iterator's queries to
dnslab.services.upstream (which merges identical upstream questions in
flight and sends each with a fresh random ID and source port, accepting
replies only from the address and port asked and for the same question),
waits with the timers, renders the reply and replays ready wire replies on
the fast path.  Whoever watches its client queries subscribes as a
`QueryObserver` (dnslab.services.observers).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from dataclasses import dataclass, field
from typing import Awaitable, Generator, TypeVar

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype

from dnslab.core.clock import Clock, MonotonicClock, WallClock
from dnslab.core.events import Event, Sink
from dnslab.core.fastpath import AnswerCache
from dnslab.core.wire import TCP_PREFIX, header_only_reply, query_key
from dnslab.resolution import policy
from dnslab.resolution.aggressive import DEFAULT_MAX_RECORDS, NsecStore
from dnslab.resolution.answer import build_reply, error_reply, fast_answer, parse_query, refusal, render, size_limit
from dnslab.resolution.cache import Cache
from dnslab.resolution.hints import RootHints
from dnslab.resolution.infra import Failure, Infra
from dnslab.resolution.iterator import Resolution, Result
from dnslab.resolution.settings import ResolverSettings
from dnslab.resolution.validator import KeyCache, Security, Validator
from dnslab.resolution.verdicts import AnswerLast, Lookup, Step, client_answer, judge, validates
from dnslab.services.observers import QueryLog, QueryObserver
from dnslab.services.upstream import Upstream

log = logging.getLogger(__name__)
_RD, _CD = int(dns.flags.RD), int(dns.flags.CD)  # plain ints: `flags & dns.flags.RD` makes an enum member
T = TypeVar("T")


@dataclass
class Stats:
    """Counters for `dnslab stats`, in the spirit of `unbound-control stats`.

    Replies replayed by the fast path are counted by their ready answers themselves, one
    shared counter per (type, rcode) (`replay_counter`): a hit then adds one to a list
    item instead of updating four counters, and `queries`, `cache_hits`, `by_type` and
    `by_rcode` add those counters in when they are read.
    """

    started: float
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
    # Answered by the full path; the replays are in _replays.
    _answered: int = 0
    _hits: int = 0
    # By type and rcode as numbers: their texts (dnspython's enum lookups) are made when read.
    _by_type: dict[int, int] = field(default_factory=dict)
    _by_rcode: dict[int, int] = field(default_factory=dict)
    _replays: dict[tuple[str, str], list[int]] = field(default_factory=dict)

    def replay_counter(self, type_text: str, rcode_text: str) -> list[int]:
        """The counter a ready answer of this type and rcode adds each replay to (`WireAnswer.replays`)."""
        counter = self._replays.get((type_text, rcode_text))
        if counter is None:
            counter = self._replays[(type_text, rcode_text)] = [0]
        return counter

    def answered(self, rdtype: int, result: Result) -> None:
        """A reply from the full path."""
        self._answered += 1
        rcode = result.rcode
        self._by_type[rdtype] = self._by_type.get(rdtype, 0) + 1
        self._by_rcode[rcode] = self._by_rcode.get(rcode, 0) + 1
        if result.from_cache:
            self._hits += 1
        else:
            self.cache_misses += 1
        self.servfails += rcode == dns.rcode.SERVFAIL

    @property
    def replayed(self) -> int:
        """Replies from the fast path (every one a cache hit)."""
        return sum(counter[0] for counter in self._replays.values())

    @property
    def queries(self) -> int:
        return self._answered + self.replayed

    @property
    def cache_hits(self) -> int:
        return self._hits + self.replayed

    @property
    def by_type(self) -> dict[str, int]:
        return self._tally({dns.rdatatype.to_text(t): n for t, n in self._by_type.items()}, 0)

    @property
    def by_rcode(self) -> dict[str, int]:
        return self._tally({dns.rcode.to_text(r): n for r, n in self._by_rcode.items()}, 1)

    def _tally(self, full: dict[str, int], which: int) -> dict[str, int]:
        counts = full
        for pair, counter in self._replays.items():
            if counter[0]:
                counts[pair[which]] = counts.get(pair[which], 0) + counter[0]
        return counts

    def to_json(self) -> dict[str, object]:
        counters = {name: value for name, value in vars(self).items() if name != "started" and name[0] != "_"}
        return {"queries": self.queries, "by_type": self.by_type, "by_rcode": self.by_rcode,
                "cache_hits": self.cache_hits, **counters, "uptime_s": round(time.monotonic() - self.started, 1)}


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
        self.acl = policy.Acl(settings.allow)
        self.infra = Infra(self.clock, settings.infra, rng)
        self.cache.on_flush.append(self.infra.forget_lame)  # a flush starts the resolver's memory afresh
        # DNSSEC validation is on when a trust anchor is configured, as in Unbound.
        self.validator = Validator(settings.trust_anchors, self.clock) if settings.trust_anchors else None
        if self.validator is not None:
            self.cache.on_flush.append(self.validator.keys.clear)
        # RFC 8198: validated NSEC/NSEC3 spans answer later questions in them (Unbound's aggressive-nsec).
        self.nsec = (NsecStore(self.clock, min(DEFAULT_MAX_RECORDS, settings.cache.max_entries),
                               settings.cache.max_ttl, settings.cache.negative_max_ttl)
                     if self.validator is not None and settings.aggressive_nsec else None)
        if self.nsec is not None:
            self.cache.on_flush.append(self.nsec.clear)
        self.upstream = Upstream(settings.upstream_port, dnssec=self.validator is not None, nsid=settings.request_nsid)
        # Questions being resolved; the future exists once a second client's question joins one.
        self._in_flight: dict[tuple[dns.name.Name, int, bool], asyncio.Future[Result] | None] = {}
        self._tasks: set[asyncio.Future[Result]] = set()  # lookups refreshing stale data
        self.stats = Stats(started=time.monotonic())
        self.observers: tuple[QueryObserver, ...] = ()
        self._every_query = False  # an observer needs every query: no fast path

    # --- observers -----------------------------------------------------------------------

    def subscribe(self, observer: QueryObserver) -> None:
        """Tell *observer* about client queries from now on (see dnslab.services.observers)."""
        if observer not in self.observers:
            self.observers += (observer,)
            self._every_query = any(o.every_query for o in self.observers)

    def unsubscribe(self, observer: QueryObserver) -> None:
        self.observers = tuple(o for o in self.observers if o is not observer)
        self._every_query = any(o.every_query for o in self.observers)

    # --- resolving -----------------------------------------------------------------------

    async def resolve(self, qname: dns.name.Name, qtype: int, cache_only: bool = False,
                      trace: Sink | None = None) -> Result:
        """Resolve once per distinct question in flight; every waiter gets the same result.

        *trace* receives the lookup's events (a waiter that joins a lookup already
        in flight sees none: it started no lookup of its own).  The lookup runs in
        this coroutine, not a task of its own, unless serve-stale needs its timer:
        one client question is then one task, from the datagram to the reply.
        """
        key = (qname, qtype, cache_only)
        in_flight = self._in_flight
        size = len(in_flight)
        running = in_flight.setdefault(key, None)  # one hash of the key, whether ours or another's
        if len(in_flight) == size:  # already in flight: join it
            if running is None:  # the first waiter to join makes the future the others wait on
                running = in_flight[key] = asyncio.get_running_loop().create_future()
            return await asyncio.shield(running)
        try:
            if cache_only:
                result = await self._drive(self._resolution(qname, qtype, cache_only=True, trace=trace))
            else:
                plan = policy.plan(self.cache, qname, qtype)
                self.stats.cache_expired += plan.expired
                if plan.now is not None:
                    result = plan.now
                elif plan.timer is None:
                    result = policy.settle(self.cache, qname, qtype,
                                           await self._drive(self._resolution(qname, qtype, trace=trace)))
                else:
                    result = await self._serve_stale(qname, qtype, trace, plan)
        except Exception:  # noqa: BLE001 - a client must get SERVFAIL, never silence
            log.exception("resolving %s %s failed", qname, dns.rdatatype.to_text(qtype))
            result = Result(dns.rcode.SERVFAIL, reason="internal error")
        finally:
            future = in_flight.pop(key)
        if future is not None:
            future.set_result(result)
        return result

    async def answer(self, qname: dns.name.Name, qtype: int, cache_only: bool = False, checking_disabled: bool = False,
                     trace: Sink | None = None) -> Result:
        """A client's answer: resolved, then validated unless the client set CD=1 (RFC 4035 §3.2.2)."""
        if not validates(self.validator, cache_only, checking_disabled):
            # client_answer would ask for this one lookup and pass its result on: run it directly.
            return await self.resolve(qname, qtype, cache_only=cache_only, trace=trace)
        answered = await self._run(client_answer(self.validator, self.cache, qname, qtype, trace, cache_only,
                                                 checking_disabled, nsec=self.nsec), self.cache)
        self.stats.bogus += answered.security == Security.BOGUS
        self.stats.secure += answered.security == Security.SECURE
        return answered.result

    async def _run(self, steps: Generator[Lookup, Result, T], cache: Cache, count: bool = True) -> T:
        """Run the lookups a sans-I/O generator (verdicts.client_answer, verdicts.judge) asks for.

        *cache* is where its lookups look (a private one for a cold trace); *count* False
        keeps a trace out of the statistics.
        """
        try:
            need = next(steps)
            while True:
                need = steps.send(await self._lookup(need, cache, count))
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]

    async def _lookup(self, need: Lookup, cache: Cache, count: bool) -> Result:
        if need.step is Step.ASK:
            return await self.resolve(need.qname, need.qtype, cache_only=need.cache_only, trace=need.trace)
        if need.step is Step.FETCH:
            # A DS or DNSKEY RRset for the validator, found by the iterator like any other data.
            resolution = Resolution(need.qname, need.qtype, cache=cache, infra=self.infra, hints=self.hints,
                                    settings=self.settings.iterator, trace=need.trace, depth=1,
                                    why=f"DNSSEC: the {dns.rdatatype.to_text(need.qtype)} of {need.qname}",
                                    purpose="DNSSEC", avoid=need.avoid,
                                    nsec=self.nsec if cache is self.cache else None)  # a cold trace: its own
        else:
            resolution = self._resolution(need.qname, need.qtype, trace=need.trace, avoid=need.avoid)
        return await self._drive(resolution, count=count)

    async def _serve_stale(self, qname: dns.name.Name, qtype: int, trace: Sink | None, plan: policy.Plan) -> Result:
        """The lookup as a task of its own, raced against the client response timer (RFC 8767 §5)."""
        lookup = asyncio.ensure_future(self._drive(self._resolution(qname, qtype, trace=trace)))
        done, _ = await asyncio.wait({lookup}, timeout=plan.timer)
        if not done:  # the stale data answers now; the lookup goes on refreshing the cache
            self._tasks.add(lookup)
            lookup.add_done_callback(lambda task: self._finished_in_background(task, qname, qtype))
            return plan.stale  # type: ignore[return-value]
        return policy.settle(self.cache, qname, qtype, await lookup, plan.stale)

    def _resolution(self, qname: dns.name.Name, qtype: int, cache_only: bool = False,
                    trace: Sink | None = None, avoid: frozenset[str] = frozenset()) -> Resolution:
        return Resolution(qname, qtype, cache=self.cache, infra=self.infra, hints=self.hints,
                          settings=self.settings.iterator, cache_only=cache_only, trace=trace, avoid=avoid,
                          nsec=self.nsec)

    def _finished_in_background(self, task: asyncio.Future[Result], qname: dns.name.Name, qtype: int) -> None:
        self._tasks.discard(task)  # type: ignore[arg-type]
        if not task.cancelled() and task.exception() is None:
            policy.settle(self.cache, qname, qtype, task.result())

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
            query, reply, error, rtt, shared = await self.upstream.exchange(
                action, min(action.timeout, remaining), remaining, merge)
            if count:
                if shared:
                    self.stats.merged_queries += 1
                else:
                    self.stats.upstream_queries += 1
            if error is None:
                assert reply is not None
                resolution.on_reply(query, reply, rtt, shared=shared)
            elif isinstance(error, dns.exception.Timeout):
                self.stats.timeouts += count and not shared
                resolution.on_timeout(query, shared=shared)
            elif isinstance(error, (OSError, EOFError, ConnectionError)):
                self.stats.network_errors += count and not shared
                resolution.on_failure(query, Failure.NETWORK, shared=shared)
            else:
                resolution.on_failure(query, Failure.BROKEN, shared=shared)

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
        if fast is not None and not self._every_query:
            try:
                if peer is not None and not (self.acl.known.get(peer[0]) or self.acl.allows(peer[0])):
                    return self._handle(wire, via_tcp, peer, None)  # refused there
                # The same datagram again (all but its ID): no key to compute (AnswerCache.replay).
                reply = None if via_tcp else fast.replay(wire, self.cache.version)
                if reply is None:
                    parsed = query_key(wire)
                    if parsed is not None:
                        key = TCP_PREFIX + parsed[0] if via_tcp else parsed[3]
                        answer = fast.get(key, wire, self.cache.version, datagram=not via_tcp)
                        if answer is not None:
                            reply = fast.render(answer, wire)
                if reply is not None:
                    if self.observers:
                        for observer in self.observers:  # the web view's sampler: one call, one comparison
                            observer.replayed(wire, reply, peer, via_tcp)
                    return reply
            except Exception:  # noqa: BLE001 - a bug of ours in the fast path: the full path answers
                log.exception("the fast path failed; answering on the full path")
                key = None
        return self._handle(wire, via_tcp, peer, key)

    async def _handle(self, wire: bytes, via_tcp: bool, peer: tuple[str, int] | None,
                      key: bytes | None) -> bytes | None:
        query, instead = parse_query(wire)
        if query is None:
            return instead
        try:
            refused = self._refused(query, wire, via_tcp, peer)
            if refused is not None:
                return refused
            question = query.question[0]
            flags = int(query.flags)  # a plain int: IntFlag's & is Python code
            cache_only = not flags & _RD
            checking_disabled = bool(flags & _CD)
            if self.observers:
                result = await self._observed(question.name, question.rdtype, cache_only, checking_disabled,
                                              via_tcp, peer)
            elif validates(self.validator, cache_only, checking_disabled):
                result = await self.answer(question.name, question.rdtype, cache_only, checking_disabled)
            else:  # what `answer` would do, one coroutine fewer
                result = await self.resolve(question.name, question.rdtype, cache_only)
            self.stats.answered(question.rdtype, result)
            return self._reply(query, result, via_tcp, key)
        except Exception:  # noqa: BLE001 - a bug of ours: the client still gets a proper SERVFAIL
            log.exception("answering %s failed", query.question[0] if query.question else "a query")
            return self._render(error_reply(query, dns.rcode.SERVFAIL), query, via_tcp)

    def _refused(self, query: dns.message.Message, wire: bytes, via_tcp: bool,
                 peer: tuple[str, int] | None) -> bytes | None:
        """The reply to a query we do not resolve (a client not allowed, or a query we cannot
        answer), or None."""
        refused = dns.rcode.REFUSED if peer is not None and not self.acl.allows(peer[0]) else refusal(query)
        if refused == dns.rcode.FORMERR:
            return header_only_reply(wire, dns.rcode.FORMERR, recursion_available=True)
        if refused is not None:
            return self._render(error_reply(query, refused), query, via_tcp)
        return None

    async def _observed(self, qname: dns.name.Name, qtype: int, cache_only: bool, checking_disabled: bool,
                        via_tcp: bool, peer: tuple[str, int] | None) -> Result:
        """`answer`, with the observers told of the question and of its answer."""
        started = time.monotonic()
        observers = self.observers
        recordings = [observer.begin(qname, qtype) for observer in observers]
        sinks = [recording.sink for recording in recordings if recording is not None]
        merged = (qname, qtype, cache_only) in self._in_flight
        result = await self.answer(qname, qtype, cache_only=cache_only, checking_disabled=checking_disabled,
                                   trace=_all(sinks))
        entry = QueryLog(time.time(), peer[0] if peer else "", qname.to_text(),
                         dns.rdatatype.to_text(qtype), dns.rcode.to_text(result.rcode),
                         result.from_cache, result.upstream_queries, (time.monotonic() - started) * 1000,
                         via_tcp, merged)
        for observer, recording in zip(observers, recordings):
            observer.answered(entry, result, recording)
        return result

    def _reply(self, query: dns.message.Message, result: Result, via_tcp: bool, key: bytes | None) -> bytes:
        """The client's reply as wire bytes; kept ready for the fast path when the question comes again."""
        reply = build_reply(query, result, self.cache)
        wire_reply = self._render(reply.message, query, via_tcp)
        if (key is not None and reply.replay is not None
                and self.fast is not None and self.fast.asked_before(key)):
            limit = size_limit(query, via_tcp, self.settings.max_udp_size)
            ready = fast_answer(reply, wire_reply, self.settings.cache.rotation, lambda m: render(m, limit))
            if ready is not None:
                ready.replays = self.stats.replay_counter(ready.type_text, ready.rcode_text)
                self.fast.put(key, ready, self.cache.version)
        return wire_reply

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
        held = AnswerLast(sink) if self.validator is not None else None
        resolution = Resolution(qname, qtype, cache=cache, infra=self.infra, hints=self.hints,
                                settings=self.settings.iterator, trace=held or sink, nsec=None if cold else self.nsec)
        result = await self._drive(resolution, count=False)
        if held is None or self.validator is None:
            return result
        judged = await self._run(judge(self.validator, cache, result, qname, qtype, held,
                                       keys=KeyCache(self.clock) if cold else None, nsec=None if cold else self.nsec),
                                 cache, count=False)
        held.release(result, judged.result)
        return judged.result

    def _render(self, reply: dns.message.Message, query: dns.message.Message, via_tcp: bool) -> bytes:
        return render(reply, size_limit(query, via_tcp, self.settings.max_udp_size))


def _all(sinks: list[Sink]) -> Sink | None:
    """One sink for the observers' recordings (None when none records)."""
    if not sinks:
        return None
    if len(sinks) == 1:
        return sinks[0]

    def sink(event: Event) -> None:
        for each in sinks:
            each(event)
    return sink
