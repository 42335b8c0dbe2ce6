"""The lab's traffic: anycast sites (docs/ANYCAST.md) and steered names (docs/STEERING.md), as Lab methods.

Kept out of runtime.py so the Lab's core (servers, resolver, changes) stays readable: `Lab`
inherits these.  They work on what the Lab built from lab.toml: `geography` and each running
server's `router` (its sites), and `steering` (the steered names, dnslab.lab.endpoints).
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any, Callable, Iterator

import dns.name
import dns.rdatatype

from dnslab.authority.steering import Decision, Rule
from dnslab.core.errors import ConfigError, DnslabError
from dnslab.core.events import Event, SteeringChoice
from dnslab.lab import fault_kinds
from dnslab.lab.anycast import Geography
from dnslab.lab.endpoints import Steering
from dnslab.lab.fault_kinds import Entry

if TYPE_CHECKING:
    from dnslab.core.zone import Zone
    from dnslab.lab.runtime import RunningServer


class Traffic:
    """Anycast sites and steered names: the part of `Lab` that lab.toml's location, [locations],
    [sites] and [steering] give."""

    geography: Geography
    steering: Steering | None
    zones: list[Zone]
    servers: list[RunningServer]
    server: Callable[[str], RunningServer]  # Lab.server

    def site(self, name_or_address: str, site: str) -> tuple[RunningServer, str]:
        """An anycast server and the name of one of its sites (a DnslabError names what is wrong)."""
        running = self.server(name_or_address)
        if running.router is None:
            raise DnslabError(f"{name_or_address} is served from one place, not from sites "
                              f"(lab.toml's [sites] declares them; servers with sites: "
                              f"{', '.join(r.plan.address for r in self.servers if r.router) or 'none'})")
        return running, running.router.site(site).name

    def site_fault(self, target: str, kind: Entry | str) -> RunningServer:
        """`ADDR@SITE down` withdraws a site's route (the next nearest site answers); `up` or `clear`
        announces it again.  Other faults break the whole address, so they are given to ADDR."""
        entry = kind if isinstance(kind, (fault_kinds.FaultKind, fault_kinds.Verb)) else fault_kinds.order(kind)[0]
        server, _, site = target.rpartition("@")
        running, name = self.site(server, site)
        assert running.router is not None
        if entry is fault_kinds.DOWN:
            running.router.withdraw(name)
        elif entry in (fault_kinds.UP, fault_kinds.CLEAR):
            running.router.announce(name)
        else:
            raise DnslabError(f"a site is withdrawn (down) or announced again (up, clear); {entry.name} "
                              f"breaks the whole address: dnslab fault {server} {entry.usage}")
        return running

    def _closest_origin(self, name: dns.name.Name) -> dns.name.Name | None:
        origins = [zone.origin for zone in self.zones if name.is_subdomain(zone.origin)]
        return max(origins, key=len) if origins else None

    def _check_steered(self, rule: Rule) -> None:
        """A steered name needs a zone that holds it: its RRset is what the lab serves without steering,
        what NSD is compared with, and (signed) what proves the name exists."""
        where = f'[steering."{rule.name}"]'
        origin = self._closest_origin(rule.name)
        zone = next((z for z in self.zones if z.origin == origin), None)
        if zone is None:
            raise ConfigError(f"{where}: {rule.name} is in no zone of this lab")
        if zone.get(rule.name, rule.rdtype) is None:
            raise ConfigError(f"{where}: zone {origin} has no {dns.rdatatype.to_text(rule.rdtype)} records at "
                              f"{rule.name}; give it the RRset served without steering")

    def endpoint(self, address: str, up: bool) -> None:
        """`dnslab endpoint ADDR down|up`: the service at ADDR stops or starts answering its health checks."""
        if self.steering is None:
            raise DnslabError("this lab has no steered names (lab.toml's [steering]), so no endpoints")
        self.steering.set_endpoint(address, up)

    @contextlib.contextmanager
    def steering_watched(self, sink: Callable[[Event], None]) -> Iterator[Callable[[Event], None]]:
        """While the block runs (a trace), every steered answer is told to *sink* as a `steering` event,
        at the depth of the resolver's last event; the block gives the resolver the sink it yields."""
        steering = self.steering
        if steering is None:
            yield sink
            return
        last: list[Event | None] = [None]

        def passed(event: Event) -> None:
            last[0] = event
            sink(event)

        def told(decision: Decision) -> None:  # under the query the resolver sent last
            event = last[0]
            sink(SteeringChoice(depth=event.depth if event else 0, zone=str(getattr(event, "zone", "")),
                                **decision.to_json()))
        steering.listeners.append(told)
        try:
            yield passed
        finally:
            steering.listeners.remove(told)

    def endpoints(self) -> list[dict[str, Any]]:
        return self.steering.listing() if self.steering is not None else []
