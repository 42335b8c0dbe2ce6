"""Running a scenario: a fresh lab on a fake clock, real lookups from every simulated client.

Each variant gets its own lab (same zones, same seed), so variants differ only
by what they say.  The run jumps the lab clock from one moment where something
happens to the next (a client's lookup, a timeline step, a bucket boundary), so
a simulated day takes as long as its lookups do, not a day.  Every client
query is a real UDP packet to a resolver (or level) of the lab, which answers
from its cache or walks the hierarchy as it would for `dig`: the figures are
what the lab did, not a formula.
"""

from __future__ import annotations

import asyncio
import random
import secrets
import struct
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import dns.exception
import dns.asyncquery
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype

from dnslab.core.clock import FakeClock
from dnslab.core.errors import DnslabError
from dnslab.core.zone import Zone
from dnslab.lab.level_plan import parse_levels
from dnslab.lab.runtime import SAMPLE_ZONES, Lab, LabSettings, shared_zones
from dnslab.lab.scenario.population import Answer, Client, Population, answer_of
from dnslab.lab.scenario.series import Series
from dnslab.lab.scenario.spec import Event, Scenario, ScenarioError, Variant
from dnslab.resolution.options import resolver_settings
from dnslab.services.upstream import build_query

QUERY_TIMEOUT = 3.0  # real seconds: a lab answers in milliseconds, so this only catches a silent server
MAX_IN_FLIGHT = 512  # client queries outstanding at once, per run
RD = 0x0100

Progress = Callable[[str], None]


@dataclass
class VariantResult:
    variant: Variant
    series: Series
    applied: list[dict[str, Any]] = field(default_factory=list)  # the timeline as it ran
    wall_seconds: float = 0.0
    targets: frozenset[str] = frozenset()  # the resolvers/levels clients asked (the rest of `upstream`: servers)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.variant.name, "title": self.variant.title, "timeline": self.applied,
                "wall_seconds": round(self.wall_seconds, 3), **self.series.to_json()}


@dataclass
class ScenarioResult:
    scenario: Scenario
    variants: list[VariantResult]

    def to_json(self) -> dict[str, Any]:
        scenario = self.scenario
        return {"name": scenario.name, "title": scenario.title, "lesson": scenario.lesson, "seed": scenario.seed,
                "duration": scenario.duration, "clients": scenario.population,
                "variants": [variant.to_json() for variant in self.variants]}


class _StubSocket(asyncio.DatagramProtocol):
    """One UDP socket per target, shared by every client asking it; replies matched by ID (and question).

    A socket per query (what the resolver does upstream, for RFC 5452's random
    ports) would cost more than the lookup being measured; the clients here are
    simulated, not attacked, so one socket with random IDs is enough.
    """

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.pending: dict[int, tuple[bytes, asyncio.Future[bytes | None]]] = {}
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: Any) -> None:
        if len(data) < 12:
            return
        (ident,) = struct.unpack_from("!H", data)
        waiting = self.pending.get(ident)
        if waiting is None:
            return
        question, future = waiting
        if data[12:12 + len(question)].lower() != question.lower() or future.done():
            return
        future.set_result(data)

    def error_received(self, exc: Exception) -> None:
        pass  # an ICMP error for one query: its wait times out, as a stub's does

    async def ask(self, name: dns.name.Name, rdtype: int) -> bytes | None:
        loop = asyncio.get_running_loop()
        ident = self.rng.randrange(65536)
        while ident in self.pending:
            ident = self.rng.randrange(65536)
        wire, question = build_query(name, rdtype, ident, edns=True)
        wire = wire[:2] + struct.pack("!H", RD) + wire[4:]
        future: asyncio.Future[bytes | None] = loop.create_future()
        self.pending[ident] = (question, future)
        expiry = loop.call_later(QUERY_TIMEOUT, _expire, future)
        try:
            assert self.transport is not None
            self.transport.sendto(wire)
            return await future
        finally:
            expiry.cancel()
            del self.pending[ident]


def _expire(future: "asyncio.Future[bytes | None]") -> None:
    if not future.done():
        future.set_result(None)  # no reply in time: the lookup times out


class _Target:
    """A resolver or level the clients ask, and how to read what it received."""

    def __init__(self, name: str, address: str, port: int, received: Callable[[], int]) -> None:
        self.name = name
        self.address = address
        self.port = port
        self.received = received
        self.socket: _StubSocket | None = None
        self.transport: asyncio.DatagramTransport | None = None

    async def open(self, rng: random.Random) -> None:
        loop = asyncio.get_running_loop()
        transport, protocol = await loop.create_datagram_endpoint(
            lambda: _StubSocket(rng), remote_addr=(self.address, self.port))
        self.transport, self.socket = transport, protocol  # type: ignore[assignment]

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    async def lookup(self, name: dns.name.Name, rdtype: int) -> Answer:
        assert self.socket is not None
        data = await self.socket.ask(name, rdtype)
        if data is None:
            return Answer("timeout")
        try:
            reply = dns.message.from_wire(data)
            if reply.flags & dns.flags.TC:  # as a stub does: the whole answer over TCP
                query = dns.message.make_query(name, rdtype, use_edns=0)
                reply = await dns.asyncquery.tcp(query, self.address, timeout=QUERY_TIMEOUT, port=self.port)
        except (dns.exception.DNSException, OSError, ValueError):
            return Answer("error")
        return answer_of(reply, rdtype)


def lab_for(scenario: Scenario, variant: Variant) -> tuple[Lab, FakeClock]:
    """A fresh lab of the scenario's zones on a fake clock, with the variant's resolver options."""
    folder = scenario.zones or SAMPLE_ZONES
    settings = LabSettings.load(folder / "lab.toml")
    zones: list[Zone] = shared_zones(folder)
    options = resolver_settings(variant.resolver, f"{scenario.source} [variants.{variant.name}.resolver]",
                                base=settings.resolver)
    levels = settings.levels
    if scenario.levels:
        levels = parse_levels(scenario.levels, f"{scenario.source} [levels]", base=options)
    clock = FakeClock()
    lab = Lab(zones, port=0, start_down=settings.start_down, resolver_address=settings.resolver_address,
              resolver_settings=options, clock=clock, levels=levels)
    lab.zones_dir = folder
    lab.resolver_rng = random.Random(scenario.seed)
    return lab, clock


def _targets(lab: Lab) -> dict[str, _Target]:
    """Every resolver (and level) clients may be pointed at, by the name `via` uses."""
    targets: dict[str, _Target] = {}
    resolver = lab.resolver
    if resolver is not None and lab.resolver_address is not None:
        targets["resolver"] = _Target("resolver", lab.resolver_address, lab.actual_port,
                                      lambda: resolver.stats.queries)
    for level in lab.levels:
        targets[level.name] = _Target(level.name, level.address, lab.actual_port,
                                      lambda level=level: level.faulty.total)  # type: ignore[misc]
    return targets


class _Run:
    """One variant's run: the clock, the population, the timeline and the measurements."""

    def __init__(self, scenario: Scenario, variant: Variant, lab: Lab, clock: FakeClock,
                 progress: Progress | None) -> None:
        self.scenario = scenario
        self.variant = variant
        self.lab = lab
        self.clock = clock
        self.origin = clock.now()
        self.progress = progress
        if variant.ask is not None:
            name, rdtype = variant.ask
            scenario = replace(scenario, clients=tuple(replace(group, name=name, rdtype=rdtype)
                                                       for group in scenario.clients))
        self.population = Population(scenario)
        self.endpoints = dict(scenario.endpoints)
        self.series = Series(scenario.duration, scenario.bucket, scenario.population, scenario.new_answer,
                             scenario.since)
        self.applied: list[dict[str, Any]] = []
        self.targets: dict[str, _Target] = {}
        self.limit = asyncio.Semaphore(MAX_IN_FLIGHT)
        self.now = 0.0  # lab time reached, from the run's start
        self.started = time.perf_counter()
        self._counted: dict[str, int] = {}

    async def run(self) -> VariantResult:
        started = time.perf_counter()
        self.targets = _targets(self.lab)
        for group in self.scenario.clients:
            for name in group.via:
                if name not in self.targets:
                    raise ScenarioError(f"{self.scenario.source}: clients via {name!r}: no such resolver or level "
                                        f"in this lab (known: {', '.join(sorted(self.targets))})")
        rng = random.Random(self.scenario.seed + 1)
        for target in self.targets.values():
            await target.open(rng)
        try:
            self._count_upstream(0.0)  # the baseline: nothing asked yet
            await self._loop()
        finally:
            for target in self.targets.values():
                target.close()
        self.series.close()
        return VariantResult(self.variant, self.series, self.applied, time.perf_counter() - started,
                             frozenset(self.targets))

    async def _loop(self) -> None:
        events = list(self.variant.timeline)
        duration = self.scenario.duration
        bucket = self.scenario.bucket
        now = 0.0
        next_bucket = bucket
        reported = 0.0
        while True:
            moments = [duration, next_bucket]
            if events:
                moments.append(events[0].at)
            upcoming = self.population.next_time()
            if upcoming is not None:
                moments.append(upcoming)
            moment = max(now, min(moments))
            if moment > now:
                self.clock.advance(moment - now)
                self.lab.refresh_signatures()
                now = self.now = moment
            while events and events[0].at <= now:
                await self._apply(events.pop(0), now)
            due = self.population.due(now) if now < duration else []
            asking = [client for client in due if Population.needs_query(client, now)]
            if asking:
                await asyncio.gather(*(self._query(client, now) for client in asking))
            queried = {client.number for client in asking}
            for client in due:
                self._use(client, now, client.number in queried)
            if now >= next_bucket or now >= duration:
                # Upstream counts are read at bucket ends: they belong to the bucket just closed.
                self._count_upstream(now - 1e-9)
                next_bucket += bucket
            if now >= duration:
                break
            if self.progress is not None and now - reported >= duration / 10:
                reported = now
                self.progress(f"{self.variant.name}: {now / duration:.0%} of the simulated time")

    def partial(self) -> VariantResult:
        """The run so far (the web view draws it while it fills)."""
        return VariantResult(self.variant, self.series, list(self.applied), time.perf_counter() - self.started,
                             frozenset(self.targets))

    async def _query(self, client: Client, now: float) -> None:
        target = self.targets[client.target]
        async with self.limit:
            answer = await target.lookup(client.group.name, client.group.rdtype)
        Population.take(client, answer, now)

    def _use(self, client: Client, now: float, queried: bool) -> None:
        """The client has its answer (fresh or from its own cache) and connects with it."""
        assert client.answer is not None
        connection = Population.connect(client, self.endpoints)
        self.series.lookup(now, client, client.answer, queried, connection)

    def _count_upstream(self, now: float) -> None:
        totals: dict[str, int] = {}
        for running in self.lab.servers:
            totals[running.plan.names[0].to_text() if running.plan.names else running.plan.address] = \
                running.faulty.total
        for name, target in self.targets.items():
            totals[name] = target.received()
        deltas = {where: count - self._counted.get(where, 0) for where, count in totals.items()}
        self._counted = totals
        if now >= 0:
            self.series.upstream(now, deltas)

    async def _apply(self, event: Event, now: float) -> None:
        outcome = "done"
        try:
            if event.action in ("set", "add"):
                change = await self.lab.record_set(event.name, event.rdtype, list(event.values), event.ttl,
                                                   zone=event.zone, add=event.action == "add")
                outcome = _change_text(change.to_json())
            elif event.action == "delete":
                change = await self.lab.record_delete(event.name, event.rdtype, zone=event.zone)
                outcome = _change_text(change.to_json())
            elif event.action == "endpoint":
                self.endpoints[event.target] = event.state == "up"
            elif event.action == "fault":
                self.lab.fault(event.target, event.state, *event.args[:2])
                await self.lab.settled()
        except DnslabError as exc:
            raise ScenarioError(f"{self.scenario.source}: at {event.at:g}s ({event.describe()}): {exc}") from None
        self.applied.append({"at": now, "event": event.describe(), "outcome": outcome})


def _change_text(change: dict[str, Any]) -> str:
    started = change.get("started") or []
    stopped = change.get("stopped") or []
    parts = []
    if started:
        parts.append(f"{len(started)} server(s) started")
    if stopped:
        parts.append(f"{len(stopped)} server(s) stopped")
    return ", ".join(parts) or "done"


async def run_variant_on(lab: Lab, clock: FakeClock, scenario: Scenario, variant: Variant | None = None,
                         progress: Progress | None = None) -> VariantResult:
    """One variant on a lab that is already running (a test's lab): its clock moves, its records change."""
    if variant is None:
        if len(scenario.variants) != 1:
            names = ", ".join(item.name for item in scenario.variants)
            raise ScenarioError(f"{scenario.source}: say which variant to run on this lab ({names})")
        variant = scenario.variants[0]
    return await _Run(scenario, variant, lab, clock, progress).run()


async def run_scenario(scenario: Scenario, progress: Progress | None = None) -> ScenarioResult:
    """Every variant of *scenario*, one after the other, each on its own fresh lab."""
    results: list[VariantResult] = []
    for variant in scenario.variants:
        lab, clock = lab_for(scenario, variant)
        await lab.start()
        try:
            results.append(await _Run(scenario, variant, lab, clock, progress).run())
        finally:
            await lab.stop()
    return ScenarioResult(scenario, results)


class LiveScenario:
    """A scenario running in the background of a lab process (the web view starts one), each variant
    on its own fresh lab, as `dnslab scenario run` does; `partial()` is what it measured so far."""

    def __init__(self, scenario: Scenario) -> None:
        self.scenario = scenario
        self.done: list[VariantResult] = []
        self.current: _Run | None = None
        self.error: str | None = None
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.task = asyncio.ensure_future(self._run())

    @property
    def running(self) -> bool:
        return self.task is not None and not self.task.done()

    def progress(self) -> float:
        """The share of the whole run's lab time already played, over every variant."""
        whole = len(self.scenario.variants) * self.scenario.duration
        now = self.current.now if self.current is not None and self.running else 0.0
        return min(1.0, (len(self.done) * self.scenario.duration + now) / whole) if whole else 1.0

    def partial(self) -> ScenarioResult:
        variants = list(self.done)
        if self.current is not None and self.running:
            variants.append(self.current.partial())
        return ScenarioResult(self.scenario, variants)

    async def stop(self) -> None:
        if self.task is not None and not self.task.done():
            self.task.cancel()
            try:
                await self.task
            except asyncio.CancelledError:
                pass

    async def _run(self) -> None:
        try:
            for variant in self.scenario.variants:
                lab, clock = lab_for(self.scenario, variant)
                await lab.start()
                try:
                    self.current = _Run(self.scenario, variant, lab, clock, None)
                    self.done.append(await self.current.run())
                finally:
                    await lab.stop()
        except DnslabError as exc:
            self.error = str(exc)
