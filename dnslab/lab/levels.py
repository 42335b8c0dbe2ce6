"""The lab's caching levels, running: each on its own loopback address, started and stopped with the lab.

A level is a `CachingLevel` (browser, os, forwarder: dnslab.services.level) or
a further `RecursiveResolver` (an "ISP"), each behind the same `FaultyServer`
as a lab server (so `dnslab fault browser down` works as it does for a name
server, and `dnslab queries os` counts what reached the stub) and the same
`DnsListener`.  What levels there are comes from dnslab.lab.level_plan.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from dnslab.core.clock import Clock
from dnslab.core.errors import DnslabError
from dnslab.lab.faults import FaultyServer
from dnslab.lab.level_plan import RESOLVER, LevelSpec
from dnslab.resolution.hints import RootHints
from dnslab.resolution.settings import ResolverSettings
from dnslab.services.level import CachingLevel
from dnslab.services.resolver import RecursiveResolver
from dnslab.services.transport import DnsListener


@dataclass
class RunningLevel:
    spec: LevelSpec
    faulty: FaultyServer
    level: CachingLevel | None = None          # browser, os, forwarder
    resolver: RecursiveResolver | None = None  # a further recursive resolver
    listener: DnsListener | None = None

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def address(self) -> str:
        return self.spec.address

    @property
    def up(self) -> bool:
        return self.listener is not None and not self.faulty.down and not self.faulty.state.unreachable

    def stats(self) -> dict[str, Any]:
        if self.level is not None:
            return {**self.level.stats.to_json(), "cache_entries": len(self.level.cache)}
        assert self.resolver is not None
        return {**self.resolver.stats.to_json(), "cache_entries": len(self.resolver.cache)}

    def describe(self) -> str:
        if self.level is not None:
            return self.level.policy.describe()
        return "recursive resolver: its own cache and server selection, walking the lab's hierarchy"


class Levels:
    """Every level of a lab; `start` binds them on the lab's port once the resolver listens."""

    def __init__(self, specs: tuple[LevelSpec, ...], clock: Clock) -> None:
        self.specs = specs
        self.clock = clock
        self.running: list[RunningLevel] = []

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self.running)

    def find(self, name_or_address: str) -> RunningLevel | None:
        return next((r for r in self.running if name_or_address in (r.name, r.address)), None)

    def get(self, name_or_address: str) -> RunningLevel:
        found = self.find(name_or_address)
        if found is None:
            known = ", ".join(f"{r.name} ({r.address})" for r in self.running) or "none: the lab runs no levels"
            raise DnslabError(f"no level {name_or_address!r} (levels: {known})")
        return found

    def upstream_addresses(self, spec: LevelSpec, resolver_address: str) -> list[str]:
        addresses = {s.name: s.address for s in self.specs}
        return [resolver_address if name == RESOLVER else addresses[name] for name in spec.upstream]

    async def start(self, port: int, resolver_address: str, settings: ResolverSettings, hints: RootHints,
                    reuse_port: bool = False) -> None:
        """Make and bind every level (all or none: a failure releases those already bound)."""
        try:
            for spec in self.specs:
                running = self._make(spec, port, resolver_address, settings, hints)
                self.running.append(running)
                listener = DnsListener(spec.address, port, running.faulty.handle, reuse_port=reuse_port)
                await listener.start()
                running.listener = listener
                running.faulty.on_reachable = listener.set_listening
        except BaseException:
            await self.stop()
            raise

    def _make(self, spec: LevelSpec, port: int, resolver_address: str, settings: ResolverSettings,
              hints: RootHints) -> RunningLevel:
        if spec.kind == "resolver":
            own = replace(spec.resolver or settings, upstream_port=port)
            resolver = RecursiveResolver(hints, own, clock=self.clock)
            return RunningLevel(spec, FaultyServer(resolver.handle, seed=spec.address), resolver=resolver)
        assert spec.policy is not None
        upstreams = [(address, port) for address in self.upstream_addresses(spec, resolver_address)]
        level = CachingLevel(spec.name, spec.policy, upstreams, self.clock, spec.options)
        return RunningLevel(spec, FaultyServer(level.handle, seed=spec.address), level=level)

    async def stop(self) -> None:
        for running in self.running:
            running.faulty.on_reachable = None
            if running.listener is not None:
                await running.listener.stop()
                running.listener = None
            if running.level is not None:
                await running.level.close()
        self.running = []

    def set_hints(self, hints: RootHints) -> None:
        """The root servers changed (a reload): further resolvers prime from the new hints, as the lab's does."""
        for running in self.running:
            if running.resolver is not None:
                running.resolver.hints = list(hints)

    def listing(self, port: int, resolver_address: str | None) -> list[dict[str, Any]]:
        """`dnslab levels --json`: level, kind, address, port, upstream, policy, up."""
        rows = []
        for running in self.running:
            spec = running.spec
            upstream = [f"{name} ({address})" for name, address in
                        zip(spec.upstream, self.upstream_addresses(spec, resolver_address or "?"))]
            rows.append({"level": spec.name, "kind": spec.kind, "address": spec.address, "port": port,
                         "upstream": list(spec.upstream), "upstream_addresses": upstream,
                         "policy": running.describe(), "up": running.up,
                         "faults": running.faulty.state.describe()})
        return rows
