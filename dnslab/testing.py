"""A running lab as a Python object, for test suites (the pytest plugin hands these out).

The lab's servers and resolver run on an asyncio loop in a background thread;
every method here hops onto that loop and waits, so tests stay plain blocking
code.  Faults, records and the clock go through the same Lab methods as the
CLI and the control endpoint.  Labs bind one free port shared by all their
addresses, so any number of labs (and pytest-xdist workers) never collide.
"""

from __future__ import annotations

import asyncio
import os
import re
import threading
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Coroutine, TypeVar

import dns.name
import dns.rdatatype
import dns.resolver

from dnslab.core.clock import FakeClock
from dnslab.core.errors import DnslabError
from dnslab.core.events import Recording
from dnslab.lab import fault_kinds, programs
from dnslab.lab.fault_kinds import Entry
from dnslab.lab.control import LabState
from dnslab.lab.runner import RunOptions, Runner
from dnslab.lab.scenario.run import VariantResult, run_variant_on
from dnslab.lab.scenario.shipped import find as find_scenario
from dnslab.lab.scenario.spec import parse as parse_scenario
from dnslab.lab.runtime import (SAMPLE_ZONES, Change, Lab, LabSettings, RunningServer, apply_handlers,
                                dnssec_settings, shared_zones)
from dnslab.lab.scripted import ZONE, ScriptedQuery, ScriptHandler  # noqa: F401 - for handlers to import
from dnslab.lab.level_plan import LevelSpec, parse_levels
from dnslab.lab.levels import RunningLevel
from dnslab.lab.processes import find_binary
from dnslab.resolution.settings import ResolverSettings

T = TypeVar("T")
START_TIMEOUT = 30.0



class ServerHandle:
    """One lab server, as a test breaks and inspects it."""

    def __init__(self, lab: "DnsLab", running: RunningServer) -> None:
        self._lab = lab
        self._running = running
        self.address = running.plan.address
        self.names = [name.to_text() for name in running.plan.names]

    def fault(self, kind: Entry | str, *args: float, name: str | list[str] | None = None,
              type: str | list[str] | None = None, every: int | None = None,
              pct: float | None = None) -> "ServerHandle":
        """Any server fault or verb of the registry (dnslab.lab.fault_kinds) by name, with its
        numbers: `fault("delay", 200, 50)`.  The methods below are the same, by name.
        *name*, *type*, *every* and *pct* narrow it to some queries, as `dnslab fault --name ...`:
        `fault("down", name="*.example.com", type="AAAA", every=3)`."""
        select = fault_kinds.selector([name] if isinstance(name, str) else name,
                                      [type] if isinstance(type, str) else type, every, pct)

        async def apply() -> None:
            self._lab.lab.fault(self.address, kind, *args, select=select)
            await self._lab.lab.settled()  # an unreachable server's sockets are closed before we return
        self._lab.run(apply())
        return self

    def down(self) -> "ServerHandle":
        """Silent: queries are counted and never answered, so the resolver waits out its (real) timeout."""
        return self.fault(fault_kinds.DOWN)

    def unreachable(self) -> "ServerHandle":
        """Nothing listens at the address: the kernel answers ICMP port unreachable (UDP) or RST (TCP),
        and the resolver fails over at once, without waiting.  The fast way to test an outage; queries
        sent meanwhile are not counted, as nothing receives them.  `up()` or `clear()` undoes it."""
        return self.fault(fault_kinds.UNREACHABLE)

    def up(self) -> "ServerHandle":
        return self.fault(fault_kinds.UP)

    def delay(self, ms: float, jitter: float = 0.0) -> "ServerHandle":
        return self.fault(fault_kinds.DELAY, ms, jitter)

    def loss(self, pct: float) -> "ServerHandle":
        return self.fault(fault_kinds.LOSS, pct)

    def servfail(self) -> "ServerHandle":
        return self.fault(fault_kinds.SERVFAIL)

    def refused(self) -> "ServerHandle":
        return self.fault(fault_kinds.REFUSED)

    def truncate(self) -> "ServerHandle":
        return self.fault(fault_kinds.TRUNCATE)

    def lame(self) -> "ServerHandle":
        return self.fault(fault_kinds.LAME)

    def clear(self) -> "ServerHandle":
        return self.fault(fault_kinds.CLEAR)

    # Replication (docs/ZONE_OPERATIONS.md).
    def notify_lost(self) -> "ServerHandle":
        """As a primary, its NOTIFYs are lost: secondaries catch up at their SOA refresh (lab.advance)."""
        return self.fault(fault_kinds.NOTIFY_LOST)

    def xfr_refused(self) -> "ServerHandle":
        """As a primary, it refuses zone transfers: secondaries retry, then expire."""
        return self.fault(fault_kinds.XFR_REFUSED)

    def xfr_delay(self, ms: float) -> "ServerHandle":
        """As a secondary, it starts every refresh *ms* milliseconds late."""
        return self.fault(fault_kinds.XFR_DELAY, ms)

    def secondary(self, zone: str) -> dict[str, Any]:
        """This server's copy of *zone* as a secondary: serial, state (empty/current/retrying/expired), timers."""
        return self._lab.call(lambda: self._lab.lab.replication.secondaries.describe(self.address, zone))

    @property
    def faults(self) -> list[str]:
        return self._lab.call(self._running.faulty.state.describe)

    @property
    def handler(self) -> ScriptHandler | None:
        """The function scripting this server's answers (docs/TESTING-SOFTWARE.md), or None."""
        return self._running.handler

    @handler.setter
    def handler(self, script: ScriptHandler | None) -> None:
        """`server.handler = f`: f(query) answers each query (bytes, a dnslib record, None for
        silence, ZONE for the zone's answer); None gives the server back to its zone data."""
        self._lab.call(lambda: self._lab.lab.set_handler(self.address, script))

    @property
    def queries(self) -> Counter[tuple[str, str]]:
        """Queries received, by (lowercased name with the final dot, type): `queries["www.example.com.", "A"]`."""
        return self._lab.call(lambda: Counter(self._running.faulty.queries))

    def reset_queries(self) -> None:
        self._lab.call(self._running.faulty.reset_counts)

    def __repr__(self) -> str:
        return f"ServerHandle({self.address}, {', '.join(self.names)})"


class SiteHandle:
    """One site of an anycast server (lab.toml's [sites]): withdraw its route, announce it, count its queries."""

    def __init__(self, lab: "DnsLab", server: str, site: str) -> None:
        self._lab = lab
        running, self.name = lab.call(lambda: lab.lab.site(server, site))
        self.address = running.plan.address
        self._router = running.router

    def down(self) -> "SiteHandle":
        """Withdraw the site's route: the next nearest site answers on the same address."""
        self._lab.call(lambda: self._lab.lab.site_fault(f"{self.address}@{self.name}", fault_kinds.DOWN))
        return self

    def up(self) -> "SiteHandle":
        self._lab.call(lambda: self._lab.lab.site_fault(f"{self.address}@{self.name}", fault_kinds.UP))
        return self

    @property
    def identity(self) -> str:
        """What the site says in NSID and hostname.bind (`ams.a.root-servers.net`)."""
        assert self._router is not None
        return self._router.identity(self._router.site(self.name))

    @property
    def queries(self) -> int:
        """Queries this site received (reached it as the nearest announced site)."""
        return self._lab.call(lambda: self._router.counts[self.name] if self._router else 0)

    def __repr__(self) -> str:
        return f"SiteHandle({self.address}@{self.name})"


class EndpointHandle:
    """An endpoint of the lab's steered names (lab.toml [steering]): the service at an address."""

    def __init__(self, lab: "DnsLab", address: str) -> None:
        self._lab = lab
        self.address = address
        if lab.lab.steering is None or address not in lab.lab.steering.manual:
            lab.call(lambda: lab.lab.endpoint(address, True))  # the lab's own error, naming the endpoints

    def down(self) -> "EndpointHandle":
        """The service stops answering: health checks see it from their next check (advance the clock)."""
        self._lab.call(lambda: self._lab.lab.endpoint(self.address, False))
        return self

    def up(self) -> "EndpointHandle":
        self._lab.call(lambda: self._lab.lab.endpoint(self.address, True))
        return self

    @property
    def healthy(self) -> dict[str, bool]:
        """Its health as each steered name that lists it sees it now, by name."""
        rows = self._lab.call(self._lab.lab.endpoints)
        return {row["name"]: endpoint["healthy"] for row in rows for endpoint in row["endpoints"]
                if endpoint["address"] == self.address}

    def __repr__(self) -> str:
        return f"EndpointHandle({self.address})"


class CacheHandle:
    """The resolver's cache: look inside, or forget."""

    def __init__(self, lab: "DnsLab") -> None:
        self._lab = lab

    def entries(self, name: str | None = None) -> list[Any]:
        """EntryView values (name, rdtype, kind, remaining, original_ttl, rank, stale, rrset, source)."""
        self._lab.own_resolver("cache.entries")
        under = dns.name.from_text(name) if name else None
        return self._lab.call(lambda: [e for e in self._lab.lab.resolver.cache.entries()  # type: ignore[union-attr]
                                       if under is None or e.name.is_subdomain(under)])

    def get(self, name: str, rdtype: str = "A") -> Any:
        """The live CacheHit for (name, type), or None."""
        self._lab.own_resolver("cache.get")
        return self._lab.call(lambda: self._lab.lab.resolver.cache.get(  # type: ignore[union-attr]
            dns.name.from_text(name), dns.rdatatype.from_text(rdtype)))

    def flush(self, name: str | None = None, tree: bool = False) -> int:
        """Forget all, a name or a subtree; the entries forgotten (Unbound: the RRsets it says it removed)."""
        foreign = self._lab.lab.foreign_resolver
        if foreign is not None:  # Unbound through unbound-control; the others raise, saying so
            said = foreign.flush(dns.name.from_text(name).to_text() if name else None, tree)
            found = re.search(r"removed (\d+) rrsets", said)
            return int(found.group(1)) if found else 0
        self._lab.own_resolver("cache.flush")

        return self._lab.call(lambda: _flush_resolver_cache(self._lab.lab.resolver.cache,  # type: ignore[union-attr]
                                                            name, tree))


def _flush_resolver_cache(cache: Any, name: str | None, tree: bool) -> int:
    """Forget everything (the count of entries dropped) or one name, with *tree* everything below it."""
    if name is None:
        count = len(cache)
        cache.flush()
        return count
    return cache.flush_name(dns.name.from_text(name), subtree=tree)


class LevelCacheHandle:
    """A caching level's cache (browser, os, forwarder: whole answers; a further resolver: its RRsets)."""

    def __init__(self, lab: "DnsLab", running: RunningLevel) -> None:
        self._lab = lab
        self._running = running

    def entries(self) -> list[Any]:
        """EntryView values: name, type, kind, remaining, kept_for, original_ttl, state, hits, records."""
        running = self._running
        if running.level is None:
            return self._lab.call(lambda: list(running.resolver.cache.entries()))  # type: ignore[union-attr]
        return self._lab.call(running.level.cache.entries)

    def get(self, name: str, rdtype: str = "A") -> Any:
        """The kept answer for (name, type) as a `Found` (entry, state, remaining), or None."""
        running = self._running
        qname, qtype = dns.name.from_text(name), dns.rdatatype.from_text(rdtype)
        if running.level is None:
            return self._lab.call(lambda: running.resolver.cache.get(qname, qtype))  # type: ignore[union-attr]
        return self._lab.call(lambda: running.level.cache.get(qname, qtype))  # type: ignore[union-attr]

    def flush(self, name: str | None = None, tree: bool = False) -> int:
        def run() -> int:
            if self._running.level is not None:
                return self._running.level.cache.flush(dns.name.from_text(name) if name else None, tree)
            return _flush_resolver_cache(self._running.resolver.cache, name, tree)  # type: ignore[union-attr]
        return self._lab.call(run)


class LevelHandle:
    """One caching level (browser, os, a forwarder, a further resolver), as a test asks through it and breaks it."""

    def __init__(self, lab: "DnsLab", running: RunningLevel) -> None:
        self._lab = lab
        self._running = running
        self.name = running.name
        self.kind = running.spec.kind
        self.address = running.address
        self.upstream = list(running.spec.upstream)

    @property
    def port(self) -> int:
        return self._lab.port

    @property
    def resolver(self) -> dns.resolver.Resolver:
        """A dnspython stub resolver pointed at this level (no cache of its own)."""
        stub = dns.resolver.Resolver(configure=False)
        stub.nameservers = [self.address]
        stub.port = self._lab.port
        stub.timeout = 6.0
        stub.lifetime = 12.0
        return stub

    def ask(self, name: str, rdtype: str = "A") -> list[str]:
        """The answer's data as text (sorted), asked through this level: `level.ask("www.example.com")`."""
        answer = self.resolver.resolve(name, rdtype, raise_on_no_answer=False)
        return sorted(rdata.to_text() for rdata in answer.rrset or [])

    @property
    def cache(self) -> LevelCacheHandle:
        return LevelCacheHandle(self._lab, self._running)

    @property
    def stats(self) -> dict[str, Any]:
        """queries, hits, grace_hits, misses, forwards, timeouts, failovers... (a resolver: its own counters)."""
        return self._lab.call(self._running.stats)

    @property
    def queries(self) -> Counter[tuple[str, str]]:
        """Queries that reached this level, by (name, type), as `ServerHandle.queries`."""
        return self._lab.call(lambda: Counter(self._running.faulty.queries))

    def fault(self, kind: Entry | str, *args: float) -> "LevelHandle":
        """Any server fault of the registry, on this level: `fault("delay", 200)`."""
        async def apply() -> None:
            self._lab.lab.fault(self.name, kind, *args)
            if self._running.listener is not None:
                await self._running.listener.settled()  # `unreachable`: the sockets are closed on return
        self._lab.run(apply())
        return self

    def down(self) -> "LevelHandle":
        """Silent: its clients wait out their timeout and go on to their next upstream."""
        return self.fault(fault_kinds.DOWN)

    def up(self) -> "LevelHandle":
        return self.fault(fault_kinds.UP)

    def __repr__(self) -> str:
        return f"LevelHandle({self.name}, {self.kind}, {self.address})"


class LastTrace:
    """Keeps the events of the last client lookup, for `DnsLab.last_trace` (a resolver's QueryObserver)."""

    every_query = True  # the last query must be the last one asked: no query skips the full path

    def __init__(self) -> None:
        self.recording = Recording()

    def begin(self, name: dns.name.Name, rdtype: int) -> Recording:
        self.recording = Recording()
        return self.recording

    def answered(self, entry: Any, result: Any, recording: Recording | None) -> None:
        pass

    def replayed(self, wire: bytes, reply: bytes, peer: Any, via_tcp: bool) -> None:
        pass


def _levels(levels: Any, settings: LabSettings, resolver: ResolverSettings | None) -> tuple[LevelSpec, ...]:
    """make_dns_lab(levels=...): lab.toml's levels, none, or tables like lab.toml's on top of the defaults
    (further resolvers start from the lab's resolver settings)."""
    if levels is None:
        return settings.levels
    if isinstance(levels, dict):
        return parse_levels(levels, "levels=", base=resolver or settings.resolver)
    return tuple(levels)


class LabRunner:
    """A Lab on an asyncio loop in a daemon thread, driven from blocking code through `run`/`call`.

    The lab is started and stopped by the same `dnslab.lab.runner.Runner` as `dnslab up` does it;
    *options* ask for what a test rarely wants: the root hints written to a file, a state file
    (lab-PORT.json, so `dnslab trace --port N` and the tools find the lab), the web view.
    Worker processes are `dnslab up --workers`' alone: a process with threads must not fork.
    """

    def __init__(self, lab: Lab, options: RunOptions | None = None) -> None:
        if options is not None and options.workers > 1:
            raise DnslabError("a lab in a test's thread runs one process: workers need dnslab up --workers")
        self.lab = lab
        self.runner = Runner(lab, options)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="dnslab-lab", daemon=True)

    @property
    def state(self) -> LabState | None:
        """What the state file says (also when none was written); None before the start."""
        return self.runner.state

    def start(self) -> None:
        self._thread.start()
        try:
            self.run(self.runner.start(), timeout=START_TIMEOUT)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Release every socket and the thread; safe to call twice, and after a failed start."""
        if self._loop.is_closed():
            return
        if self._thread.is_alive():
            try:
                self.run(self.runner.stop(), timeout=START_TIMEOUT)
            finally:
                self._loop.call_soon_threadsafe(self._loop.stop)
                self._thread.join(timeout=START_TIMEOUT)
        self._loop.close()

    def run(self, coroutine: Coroutine[Any, Any, T], timeout: float = 60.0) -> T:
        """Run a coroutine on the lab's loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout=timeout)

    def call(self, function: Callable[[], T]) -> T:
        """Run a plain function on the lab's loop (the lab is not thread-safe) and return its result."""
        async def wrapper() -> T:
            return function()
        return self.run(wrapper())


class DnsLab(LabRunner):
    """A started lab: hierarchy plus resolver, on a fake clock unless told otherwise."""

    def __init__(self, zones: str | Path | None = None, *, fake_clock: bool = True,
                 resolver_settings: ResolverSettings | None = None, start_down: list[str] | None = None,
                 keep_traces: bool = True, dnssec: bool | None = None, nsec3: bool | None = None,
                 keys_dir: str | Path | None = None, hints: str | Path | None = None,
                 state_dir: str | Path | None = None, levels: Any = None, resolver: str | None = None,
                 servers: dict[str, str] | None = None, shared_sockets: bool | None = None) -> None:
        """*dnssec* signs the zones (None: as lab.toml says); keys are kept in *keys_dir*
        (default: as `dnslab up --dnssec` keeps them: .keys in the zone folder; for the sample zones,
        which live inside the package, the per-user runtime folder).  *hints* is a file to write the
        root hints to; *state_dir* a folder to write the lab's state file (lab-PORT.json) in, as
        `dnslab up` does, so the command line (DNSLAB_STATE=FOLDER dnslab trace ...) reaches the lab.
        *levels* replaces the caching levels in front of the resolver (None: lab.toml's, which start
        from the default chain browser -> os -> resolver): a dict of `[levels.NAME]` tables as lab.toml
        writes them (docs/LEVELS.md), or () for none.
        *resolver* "unbound", "kresd" or "bind" runs that program as the lab's resolver (None: as
        lab.toml says, else dnslab's own); *servers* {"ns1.example.com": "nsd"} serves those servers'
        zones with that program (docs/FOREIGN.md).  Unbound and kresd need the lab on port 53.
        *shared_sockets* True serves every lab server from one UDP and one TCP socket on 0.0.0.0
        (None: as lab.toml says, else only when the open-files limit asks for it; docs/PERFORMANCE.md)."""
        folder = Path(zones) if zones is not None else SAMPLE_ZONES
        settings = LabSettings.load(folder / "lab.toml")
        self.clock = FakeClock() if fake_clock else None
        signing = dnssec_settings(settings, folder, dnssec, nsec3, Path(keys_dir) if keys_dir else None)
        program = settings.resolver_program if resolver is None else resolver
        chosen = programs.resolver_program(program, "resolver")
        lab = Lab(list(shared_zones(folder)), port=53 if chosen is not None and not chosen.any_port else 0,
                  start_down=settings.start_down if start_down is None else start_down,
                  resolver_address=settings.resolver_address,
                  resolver_settings=resolver_settings or settings.resolver, clock=self.clock,
                  dnssec=signing or False, levels=_levels(levels, settings, resolver_settings),
                  resolver_program=program,
                  server_programs=[*settings.server_programs, *(servers or {}).items()],
                  replication=settings.replication, geography=settings.geography,
                  steering=settings.steering,
                  shared_sockets=settings.shared_sockets if shared_sockets is None else shared_sockets)
        lab.zones_dir = folder
        apply_handlers(lab, settings, folder)
        super().__init__(lab, RunOptions(hints=Path(hints) if hints is not None else None,
                                         state_dir=Path(state_dir) if state_dir is not None else None))
        self._keep_traces = keep_traces
        self._last_trace = LastTrace()

    def start(self) -> "DnsLab":  # type: ignore[override]
        super().start()
        if self._keep_traces and self.lab.resolver is not None:
            self.lab.resolver.subscribe(self._last_trace)
        return self

    def __enter__(self) -> "DnsLab":
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # --- what a test uses ------------------------------------------------------------------

    @property
    def resolver_address(self) -> tuple[str, int]:
        if self.lab.resolver_address is None:
            raise DnslabError("this lab has no resolver")
        return self.lab.resolver_address, self.lab.actual_port

    @property
    def port(self) -> int:
        return self.lab.actual_port

    @property
    def resolver(self) -> dns.resolver.Resolver:
        """A dnspython stub resolver pointed at the lab's resolver (no cache of its own)."""
        host, port = self.resolver_address
        stub = dns.resolver.Resolver(configure=False)
        stub.nameservers = [host]
        stub.port = port
        stub.timeout = 6.0
        stub.lifetime = 12.0
        return stub

    def server(self, name_or_address: str) -> ServerHandle:
        return ServerHandle(self, self.call(lambda: self.lab.server(name_or_address)))

    def level(self, name_or_address: str) -> LevelHandle:
        """A caching level by name ("browser", "os", lab.toml's [levels.NAME]) or address."""
        return LevelHandle(self, self.call(lambda: self.lab.levels.get(name_or_address)))

    @property
    def levels(self) -> list[LevelHandle]:
        return [LevelHandle(self, running) for running in self.lab.levels]

    def endpoint(self, address: str) -> EndpointHandle:
        """An endpoint of the steered names: `lab.endpoint("192.0.2.100").down()`."""
        return EndpointHandle(self, address)

    def site(self, server: str, site: str) -> SiteHandle:
        """A site of an anycast server: `lab.site("a.root-servers.net", "ams").down()`."""
        return SiteHandle(self, server, site)

    @property
    def servers(self) -> list[ServerHandle]:
        return [ServerHandle(self, running) for running in self.lab.servers]

    def record_set(self, name: str, rtype: str, *values: str, ttl: int = 300, zone: str | None = None,
                   add: bool = False) -> Change:
        """Each value is one record's data ("10 mail.example.com."); *zone* picks the zone (a parent's
        delegation and glue); the Change says which servers started or stopped."""
        return self.run(self.lab.record_set(name, rtype, list(values), ttl, zone=zone, add=add))

    def record_delete(self, name: str, rtype: str, zone: str | None = None) -> Change:
        return self.run(self.lab.record_delete(name, rtype, zone=zone))

    def reload(self) -> Change:
        """Re-read the zone files; `.dropped` counts the record changes the files replaced."""
        return self.run(self.lab.reload())

    @property
    def cache(self) -> CacheHandle:
        return CacheHandle(self)

    @property
    def resolver_name(self) -> str:
        """"dnslab", or the program running as the resolver ("unbound", ...)."""
        return self.lab.foreign.name if self.lab.foreign is not None else programs.DNSLAB

    def own_resolver(self, what: str) -> Any:
        """dnslab's own resolver, or an error saying why *what* cannot be had (a foreign one, or none)."""
        if self.lab.foreign is not None:
            raise DnslabError(f"{what}: the lab's resolver is {self.lab.foreign.title}, not dnslab's; "
                              f"{what} looks inside dnslab's own resolver only (docs/FOREIGN.md)")
        if self.lab.resolver is None:
            raise DnslabError("this lab has no resolver")
        return self.lab.resolver

    def advance(self, seconds: float) -> None:
        """Move the fake clock (also available as lab.clock.advance)."""
        if self.lab.foreign is not None:
            raise DnslabError(f"advance: the lab clock does not reach {self.lab.foreign.title}, which keeps the "
                              "machine's time (docs/FOREIGN.md)")
        if self.clock is None:
            raise DnslabError("this lab runs on real time (fake_clock=False)")
        def move() -> None:
            self.clock.advance(seconds)  # type: ignore[union-attr]
            self.lab.refresh_signatures()
        self.call(move)

    def refresh_secondaries(self) -> None:
        """Run the secondaries' checks that are due now (say, after `advance` past a refresh) and wait
        for them; the lab also runs them by itself within a quarter of a second."""
        self.run(self.lab.replication.secondaries.poll())

    def trace(self, name: str, rdtype: str = "A", cold: bool = False) -> list[dict[str, Any]]:
        """Resolve with tracing on; the events as `dnslab trace --json` prints them (with `t_ms`)."""
        resolver = self.own_resolver("trace")

        async def traced() -> list[dict[str, Any]]:
            recording = Recording()
            with self.lab.steering_watched(recording.sink) as sink:  # a steered answer's reason, as `dnslab trace`
                await resolver.trace(dns.name.from_text(name), dns.rdatatype.from_text(rdtype), sink, cold)
            return [self.lab.replication.secondaries.annotate(event) for event in recording.to_json()]
        return self.run(traced())

    @property
    def stats(self) -> dict[str, Any]:
        """The resolver's counters, as `dnslab stats --json` shows them (queries, timeouts, network_errors...)."""
        resolver = self.own_resolver("stats")
        return self.call(resolver.stats.to_json)

    @property
    def last_trace(self) -> list[dict[str, Any]]:
        """The events of the last client lookup, as `dnslab trace --json` prints them (a cache hit
        shows as a `cache` event and `done`)."""
        return [] if self.lab.resolver is None else self.call(lambda: self._last_trace.recording.to_json())

    def faults(self) -> dict[str, list[str]]:
        return self.call(self.lab.faults)

    def scenario(self, source: str | Path | dict[str, Any], variant: str | None = None) -> VariantResult:
        """Run a scenario (a file, a shipped scenario's name, or the file's content as a dict) on this
        lab: its clients ask this lab's resolver, its timeline changes this lab's records and moves
        this lab's fake clock.  One variant per call (*variant* names it when the scenario has several);
        the result's `.series` holds the buckets, `.series.totals()` and `.series.milestones`."""
        if self.clock is None:
            raise DnslabError("a scenario runs on the lab clock: make the lab with fake_clock=True")
        if isinstance(source, dict):
            spec = parse_scenario(source, "scenario", self.lab.zones_dir)
        else:
            spec = find_scenario(str(source))
        chosen = None
        if variant is not None:
            chosen = next((item for item in spec.variants if item.name == variant), None)
            if chosen is None:
                raise DnslabError(f"{spec.source}: no variant {variant!r} "
                                  f"(variants: {', '.join(item.name for item in spec.variants)})")
        clock = self.clock
        return self.run(run_variant_on(self.lab, clock, spec, chosen), timeout=600)

    # --- DNSSEC (a lab made with dnssec=True) ------------------------------------------------

    def zone_fault(self, zone: str, kind: Entry | str) -> None:
        """Make a zone bogus with a zone fault of the registry (dnslab.lab.fault_kinds: the dnssec-*
        kinds), or `clear` it."""
        self.call(lambda: self.lab.zone_fault(zone, kind))

    @property
    def trust_anchor_file(self) -> Path | None:
        return self.lab.trust_anchor_file

    @property
    def trust_anchor(self) -> Any:
        """The root DS RRset the lab's resolver trusts (None: the lab is not signed)."""
        return None if self.lab.signer is None else self.lab.signer.root_ds()

    def wall_time(self) -> float:
        """POSIX seconds by the lab clock: validate signatures against this, not time.time()."""
        return self.call(self.lab.wall_time)


def unavailable(resolver: str | None = None, servers: dict[str, str] | None = None) -> str | None:
    """Why a lab with these programs cannot run on this machine (a program not installed, or port 53
    without root), or None: what the pytest plugin skips a test with."""
    wanted = [programs.server_program(name) for name in (servers or {}).values()]
    chosen = programs.resolver_program(resolver, "resolver") if resolver else None
    for program in ([chosen] if chosen is not None else []) + wanted:
        if find_binary(program.binary) is None:
            return program.missing()
    if chosen is not None and not chosen.any_port and os.geteuid() != 0:
        return f"{chosen.port_note}: the lab must run on port 53, which needs root"
    return None
