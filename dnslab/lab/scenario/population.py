"""The simulated clients: when each asks, what it keeps, and whether its connection works.

Sans-I/O: a `Population` says which clients are due at a moment of the lab
clock and takes the answers they got; the runner does the asking, with real
packets, through the lab's resolvers.  All chance comes from one seeded
`random.Random`, so a scenario with the same seed makes the same traffic.

Two client habits decide how fast a change spreads, so both are explicit:
- `cache = "ttl"`: a client keeps its answer for the TTL it was given (what an
  operating-system cache or a long-lived program does); with `"none"` every
  lookup is a query.
- `connect = "first"`: a client connects to the first address of its answer
  and fails if that endpoint is down (a plain `connect()` after
  `getaddrinfo`); `"any"` tries the addresses in order, as browsers do.
"""

from __future__ import annotations

import heapq
import random
from dataclasses import dataclass, field

import dns.message
import dns.rcode
import dns.rdatatype

from dnslab.lab.scenario.spec import Clients, Scenario

# Outcomes that are not answers a client can connect with.
FAILED_LOOKUPS = frozenset({"SERVFAIL", "REFUSED", "timeout", "error"})


@dataclass(frozen=True)
class Answer:
    """What one lookup gave a client: the records' values in the order received, and for how long."""

    label: str  # the values sorted and joined ("192.0.2.10 192.0.2.11"), or an outcome: NXDOMAIN, NODATA, SERVFAIL...
    values: tuple[str, ...] = ()
    ttl: int = 0

    @property
    def failed(self) -> bool:
        return self.label in FAILED_LOOKUPS

    @classmethod
    def of(cls, values: list[str], ttl: int) -> "Answer":
        return cls(" ".join(sorted(values)), tuple(values), ttl)


def answer_of(reply: dns.message.Message, rdtype: int) -> Answer:
    """What a stub makes of a reply: the values of the asked type (after any CNAME chain), the
    smallest TTL on the way (RFC 2181 §5.2), and for a negative answer the SOA's negative-caching
    time (RFC 2308 §5: the smaller of the SOA's TTL and its MINIMUM)."""
    rcode = reply.rcode()
    if rcode not in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
        return Answer(dns.rcode.to_text(rcode))
    values = [rdata.to_text() for rrset in reply.answer if rrset.rdtype == rdtype for rdata in rrset]
    if rcode == dns.rcode.NOERROR and values:
        return Answer.of(values, min(rrset.ttl for rrset in reply.answer))
    negative = 0
    for rrset in reply.authority:
        if rrset.rdtype == dns.rdatatype.SOA:
            negative = min(rrset.ttl, rrset[0].minimum)  # type: ignore[attr-defined]
    return Answer("NXDOMAIN" if rcode == dns.rcode.NXDOMAIN else "NODATA", (), negative)


@dataclass
class Client:
    number: int
    group: Clients
    target: str
    answer: Answer | None = None
    cached_until: float = -1.0
    sees_new: bool = False


@dataclass(frozen=True)
class Connection:
    """A client's attempt to use its answer: which endpoints it tried, and whether one worked."""

    tried: tuple[str, ...]
    ok: bool


@dataclass
class Population:
    """Every client of a scenario, with the heap of who asks next."""

    scenario: Scenario
    rng: random.Random = field(init=False)
    clients: list[Client] = field(init=False)
    _due: list[tuple[float, int]] = field(init=False)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.scenario.seed)
        self.clients = []
        self._due = []
        for group in self.scenario.clients:
            for index in range(group.count):
                client = Client(len(self.clients), group, group.via[index % len(group.via)])
                self.clients.append(client)
                # Spread the first lookups over one interval, so the population does not ask in step.
                heapq.heappush(self._due, (group.start + self.rng.uniform(0, group.every), client.number))

    def next_time(self) -> float | None:
        return self._due[0][0] if self._due else None

    def due(self, now: float) -> list[Client]:
        """The clients whose lookup time has come (each then scheduled for its next one)."""
        ready: list[Client] = []
        while self._due and self._due[0][0] <= now:
            _, number = heapq.heappop(self._due)
            client = self.clients[number]
            ready.append(client)
            group = client.group
            gap = group.every * (1 + self.rng.uniform(-group.jitter, group.jitter))
            heapq.heappush(self._due, (now + max(1.0, gap), number))
        return ready

    @staticmethod
    def needs_query(client: Client, now: float) -> bool:
        """False when the client's own cache still holds its answer."""
        return client.group.cache == "none" or client.answer is None or now >= client.cached_until

    @staticmethod
    def take(client: Client, answer: Answer, now: float) -> None:
        """Record a fresh answer; failures are not kept (a stub retries them next time)."""
        client.answer = answer
        client.cached_until = now + answer.ttl if not answer.failed else now

    @staticmethod
    def connect(client: Client, endpoints: dict[str, bool]) -> Connection | None:
        """None when the answer has no address to connect to (NXDOMAIN, SERVFAIL...).  An address the
        scenario does not list as an endpoint is taken as up: only declared endpoints go down."""
        answer = client.answer
        if answer is None or not answer.values:
            return None
        tried: list[str] = []
        for value in answer.values if client.group.connect == "any" else answer.values[:1]:
            tried.append(value)
            if endpoints.get(value, True):
                return Connection(tuple(tried), True)
        return Connection(tuple(tried), False)
