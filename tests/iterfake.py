"""A network in a dictionary: drives the iterator against in-process authoritative servers.

No sockets and no sleeps: each lab address maps to a dnslab AuthoritativeServer
(or a scripted behaviour), and time is a FakeClock that the driver advances by
the simulated round trip or timeout.  This is Unbound's testbound idea: canned
servers, a client question, an expected answer.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Callable

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import dns.rrset

from dnslab.resolution.cache import Cache, CacheSettings
from dnslab.core.clock import FakeClock
from dnslab.resolution.infra import Failure, Infra, InfraSettings
from dnslab.resolution.iterator import IteratorSettings, Query, Resolution, Result, State
from dnslab.lab.hierarchy import derive_hierarchy
from dnslab.authority.server import AuthoritativeServer
from dnslab.core.zone import Zone, load_zone_text


class Broken:
    """What a behaviour returns for a reply the driver could not use (unparsable,
    mismatched ID or question): the driver reports Failure.BROKEN, as resolver.py does."""

    def __repr__(self) -> str:
        return "BROKEN"


BROKEN = Broken()
Behaviour = Callable[[Query, dns.message.Message], "dns.message.Message | Broken | None"]
TIMEOUT = None


def zones(*texts: str) -> list[Zone]:
    loaded = [load_zone_text(text) for text in texts]
    problems = [p for z in loaded for p in z.errors]
    assert not problems, problems
    return [z.zone for z in loaded if z.zone is not None]


@dataclass
class FakeNet:
    """Lab servers by address; `faults` overrides an address with a scripted behaviour."""

    zones: list[Zone]
    rtt: float = 0.01
    faults: dict[str, Behaviour] = field(default_factory=dict)
    sent: list[Query] = field(default_factory=list)

    def __post_init__(self) -> None:
        hierarchy = derive_hierarchy(self.zones)
        self.servers = {plan.address: AuthoritativeServer(plan.zones) for plan in hierarchy.servers}
        self.hints = hierarchy.root_hints

    def reply(self, query: Query) -> dns.message.Message | Broken | None:
        message = dns.message.make_query(query.qname, query.qtype, use_edns=0 if query.edns else False)
        message.flags &= ~dns.flags.RD
        fault = self.faults.get(query.address)
        if fault is not None:
            return fault(query, message)
        return self.ask(query.address, query, message)

    def ask(self, address: str, query: Query, message: dns.message.Message) -> dns.message.Message | None:
        """What the lab server at `address` answers, ignoring faults (behaviours build on it)."""
        server = self.servers.get(address)
        if server is None:
            return TIMEOUT
        wire = server.handle(message.to_wire(), query.tcp)
        return None if wire is None else dns.message.from_wire(wire)

    def served_as(self, address: str) -> Behaviour:
        """Answer as the lab server at `address` does: gives it a second (say IPv6) address."""
        return lambda query, message: self.ask(address, query, message)

    def tampered(self, address: str, change: Callable[[Query, dns.message.Message], None]) -> Behaviour:
        """The real server's reply, edited in place by `change` before the resolver sees it."""
        def behave(query: Query, message: dns.message.Message) -> dns.message.Message | None:
            reply = self.ask(address, query, message)
            if reply is not None:
                change(query, reply)
            return reply
        return behave

    def log(self, start: int = 0) -> list[tuple[str, str, str, str]]:
        """The queries sent since `start` as (address, qname, qtype, purpose): the trace tests read."""
        return [(q.address, q.qname.to_text(), dns.rdatatype.to_text(q.qtype), q.purpose) for q in self.sent[start:]]


@dataclass
class Harness:
    net: FakeNet
    clock: FakeClock = field(default_factory=FakeClock)
    settings: IteratorSettings = field(default_factory=IteratorSettings)
    cache_settings: CacheSettings = field(default_factory=CacheSettings)
    infra_settings: InfraSettings = field(default_factory=InfraSettings)
    seed: int = 1

    def __post_init__(self) -> None:
        rng = random.Random(self.seed)
        self.cache = Cache(self.clock, self.cache_settings, rng)
        self.infra = Infra(self.clock, self.infra_settings, rng)
        self.started = self.clock.now()

    @property
    def elapsed(self) -> float:
        """Simulated seconds so far: round trips and timeouts waited for."""
        return self.clock.now() - self.started

    def resolve(self, name: str, rdtype: str = "A", cache_only: bool = False, max_steps: int = 500,
                states: list[State] | None = None) -> Result:
        """Drive one lookup to its result; *states*, when given, receives every state it entered."""
        resolution = Resolution(dns.name.from_text(name), dns.rdatatype.from_text(rdtype), cache=self.cache,
                                infra=self.infra, hints=self.net.hints, settings=self.settings,
                                cache_only=cache_only, states=states)
        for _ in range(max_steps):
            action = resolution.next_action()
            if isinstance(action, Result):
                return action
            self.net.sent.append(action)
            reply = self.net.reply(action)
            if reply is None:
                self.clock.advance(action.timeout)
                resolution.on_timeout(action)
            elif isinstance(reply, Broken):
                self.clock.advance(self.net.rtt)
                resolution.on_failure(action, Failure.BROKEN)
            else:
                self.clock.advance(self.net.rtt)
                resolution.on_reply(action, reply, self.net.rtt)
        raise AssertionError(f"no result after {max_steps} steps")


def answer_text(result: Result) -> list[str]:
    return sorted(line for rrset in result.answer for line in rrset.to_text().splitlines())


def chain_text(result: Result) -> list[str]:
    """The answer section in order, one line per RRset (records of an RRset sorted):
    for asserting that a CNAME/DNAME chain comes in chain order."""
    out = []
    for rrset in result.answer:
        records = sorted(rdata.to_text() for rdata in rrset)
        out.append(f"{rrset.name} {rrset.ttl} {dns.rdatatype.to_text(rrset.rdtype)} {' '.join(records)}")
    return out


def make_reply(message: dns.message.Message, *, rcode: int = dns.rcode.NOERROR, aa: bool = True,
               answer: tuple[str, ...] = (), authority: tuple[str, ...] = (),
               additional: tuple[str, ...] = ()) -> dns.message.Message:
    """A scripted reply to `message`: records given as master-file lines ("owner ttl IN type rdata")."""
    reply = dns.message.make_response(message)
    reply.flags &= ~dns.flags.AA
    if aa:
        reply.flags |= dns.flags.AA
    reply.set_rcode(rcode)
    for section, texts in ((reply.answer, answer), (reply.authority, authority), (reply.additional, additional)):
        for text in texts:
            owner, ttl, rdclass, rdtype, rdata = text.split(None, 4)
            new = dns.rrset.from_text(owner, int(ttl), rdclass, rdtype, rdata)
            same = next((r for r in section if r.name == new.name and r.rdtype == new.rdtype), None)
            if same is None:
                section.append(new)
            else:
                same.update(new)
    return reply
