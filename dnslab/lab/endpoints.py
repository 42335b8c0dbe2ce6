"""The lab's steered names at run time: endpoints' observed state, each rule's health, and its answers.

The policies and the health checks are sans-I/O (`dnslab.authority.steering`);
this keeps their state for a running lab: what each endpoint was observed to
be (`dnslab endpoint ADDR down|up`, and real TCP connects for endpoints that
name a loopback port), each rule's seeded generator and rotation, the last
decision per rule (for `dnslab endpoints` and the trace), and the hook the
authoritative servers of steered zones call for every matching question.
"""

from __future__ import annotations

import asyncio
import random
from typing import Any, Callable

import dns.name
import dns.rdatatype
import dns.rrset

from dnslab.authority.steering import ClientSubnet, Decision, Health, Policy, Rule, Timeline, choose
from dnslab.core.clock import Clock
from dnslab.core.errors import DnslabError
from dnslab.lab.anycast import Geography

PROBE_EVERY = 0.5  # real seconds between looks at the TCP checks that are due (a check waits at most 1 s)
CONNECT_TIMEOUT = 1.0


class Steering:
    """Every steered RRset of a lab, answered by policy from its endpoints' health."""

    def __init__(self, rules: list[Rule], geography: Geography, clock: Clock,
                 sign: Callable[[Rule, dns.rrset.RRset], dns.rrset.RRset | None] | None = None) -> None:
        """*sign* makes the RRSIG of a chosen RRset in a signed zone (None: it is not signed)."""
        self.sign = sign
        self.rules = {(rule.name, rule.rdtype): rule for rule in rules}
        self.geography = geography
        self.clock = clock
        now = clock.now()
        self.manual: dict[str, bool] = {}   # address -> up, as `dnslab endpoint` last said
        self.connects: dict[str, bool] = {}  # address -> the last TCP check's result
        self.timelines: dict[str, Timeline] = {}
        self.health: dict[tuple[Rule, str], Health] = {}
        self._rngs = {rule: random.Random(f"dnslab-steering:{rule.name}") for rule in rules}  # seeded, per rule
        self._turns = {rule: 0 for rule in rules}
        self.last: dict[Rule, Decision] = {}
        self.listeners: list[Callable[[Decision], None]] = []  # the trace, while one runs
        for rule in rules:
            for endpoint in rule.endpoints:
                self.manual.setdefault(endpoint.address, True)
                self.timelines.setdefault(endpoint.address, Timeline(now))
                self.health[(rule, endpoint.address)] = Health(now, rule.interval, rule.threshold)

    @property
    def names(self) -> set[dns.name.Name]:
        return {name for name, _ in self.rules}

    # --- what the authoritative server asks -------------------------------------------------

    def steer(self, qname: dns.name.Name, qtype: int, client: str | None, ecs: ClientSubnet | None,
              dnssec: bool = False) -> tuple[dns.rrset.RRset, int, dns.rrset.RRset | None] | None:
        """The steered RRset for this question, the ECS scope it was chosen for, and with *dnssec* (DO=1)
        its RRSIG made now in a signed zone (online signing, as PowerDNS); None: not a steered name."""
        rule = self.rules.get((qname, qtype))
        if rule is None:
            return None
        if ecs is not None:
            location = self.geography.location_of_subnet(ecs.network)
        else:
            location = self.geography.location_of(client)
        addresses, reason = choose(rule, self.healthy(rule), location, self._rngs[rule], self._turns[rule])
        self._turns[rule] += 1
        decision = Decision(rule, addresses, reason, location, str(ecs.network) if ecs is not None else "")
        self.last[rule] = decision
        for listener in list(self.listeners):
            listener(decision)
        scope = ecs.source if ecs is not None and rule.policy is Policy.NEAREST else 0
        rrset = decision.rrset()
        rrsig = self.sign(rule, rrset) if dnssec and self.sign is not None else None
        rrset.name = qname  # the question's spelling (case), as every other answer keeps it
        if rrsig is not None:
            rrsig.name = qname
        return rrset, scope, rrsig

    def healthy(self, rule: Rule) -> dict[str, bool]:
        """Each endpoint's health as this rule's checks see it now (the due checks are run first)."""
        now = self.clock.now()
        found = {}
        for endpoint in rule.endpoints:
            health = self.health[(rule, endpoint.address)]
            health.catch_up(self.timelines[endpoint.address], now)
            found[endpoint.address] = health.healthy
        return found

    # --- what people do ---------------------------------------------------------------------

    def set_endpoint(self, address: str, up: bool) -> None:
        """`dnslab endpoint ADDR down|up`: the service at ADDR stops (starts) answering now; each rule's
        checks notice it at their next check (after `threshold` of them)."""
        if address not in self.manual:
            known = ", ".join(sorted(self.manual)) or "none (lab.toml has no [steering])"
            raise DnslabError(f"no endpoint {address!r} (endpoints: {known})")
        self.manual[address] = up
        self._observe(address)

    def _observe(self, address: str) -> None:
        self.timelines[address].set(self.manual[address] and self.connects.get(address, True), self.clock.now())

    def listing(self) -> list[dict[str, Any]]:
        """`dnslab endpoints`: every rule, its endpoints' health and the last answer with its reason."""
        rows = []
        now = self.clock.now()
        for rule in self.rules.values():
            healthy = self.healthy(rule)
            endpoints = []
            for endpoint in rule.endpoints:
                health = self.health[(rule, endpoint.address)]
                check = f"tcp {endpoint.tcp[0]}:{endpoint.tcp[1]}" if endpoint.tcp else "manual"
                endpoints.append({"address": endpoint.address, "healthy": healthy[endpoint.address],
                                  "observed_up": self.timelines[endpoint.address].up,
                                  "since_s": round(now - health.since, 1), "weight": endpoint.weight,
                                  "location": endpoint.location, "check": check})
            last = self.last.get(rule)
            rows.append({"name": rule.name.to_text(), "type": dns.rdatatype.to_text(rule.rdtype),
                         "policy": rule.policy.value, "ttl": rule.ttl, "interval_s": rule.interval,
                         "threshold": rule.threshold, "endpoints": endpoints,
                         "last": last.to_json() if last is not None else None})
        return rows

    # --- real TCP checks ---------------------------------------------------------------------

    async def probe_forever(self) -> None:
        """Connect to every endpoint that names a TCP port, for ever: each result is what the rules'
        next checks see.  Bounded: one connect per endpoint per PROBE_EVERY, each within CONNECT_TIMEOUT."""
        targets = {e.address: e.tcp for rule in self.rules.values() for e in rule.endpoints if e.tcp}
        if not targets:
            return
        while True:
            results = await asyncio.gather(*(_connects(*target) for target in targets.values()))
            for address, ok in zip(targets, results):
                if self.connects.get(address) != ok:
                    self.connects[address] = ok
                    self._observe(address)
            await asyncio.sleep(PROBE_EVERY)


async def _connects(host: str, port: int) -> bool:
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), CONNECT_TIMEOUT)
    except (OSError, asyncio.TimeoutError):
        return False
    writer.close()
    try:
        await writer.wait_closed()
    except OSError:
        pass
    return True
