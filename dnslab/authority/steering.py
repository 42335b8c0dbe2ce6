"""Traffic steering: which addresses a steered name answers with, by policy, health and client location.

Operators spread and fail over services through DNS: PowerDNS LUA records
(`ifportup`, `pickwrandom`, `pickclosest`), gdnsd's plugins, Route 53's routing
policies.  A steered name here has a static RRset in its zone (what NSD, and a
lab without steering, serve) and a rule in lab.toml's `[steering]` table:

- `failover` (Route 53's failover): the first healthy endpoint in the order given;
  none healthy: the first (Route 53 answers the primary then);
- `weighted` (Route 53's weighted, PowerDNS's `pickwrandom`): one healthy endpoint,
  at random by weight, from a seeded generator;
- `nearest` (Route 53's latency and geolocation, PowerDNS's `pickclosest`): the
  healthy endpoint at the client's location, the client being the EDNS Client
  Subnet (RFC 7871) when the query carries one, else the querier's address;
  none there: every healthy endpoint;
- `all-healthy` (PowerDNS's `ifportup` with its default `all` selector, gdnsd's
  multifo): every healthy endpoint, rotated one step per answer.

Every policy answers every endpoint when none is healthy (PowerDNS's
`ifportup`: better a dead address than none), but `failover` (the primary).

Health is checked, not told: each rule's checks run on a grid of its `interval`
on the lab clock and see what each endpoint's *observed* state was at that
moment (set by `dnslab endpoint ADDR down|up`, or by real TCP connects); an
endpoint turns unhealthy after `threshold` failed checks in a row and healthy
again after as many good ones (Route 53's failure threshold).  The checks are
evaluated lazily when someone asks, exactly as if they had run on time, so a
fake clock needs no timer.  Sans-I/O: time and chance are given, no sockets.
"""

from __future__ import annotations

import enum
import ipaddress
import math
import random
import struct
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import dns.name
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from dnslab.core import validate
from dnslab.core.errors import ConfigError

ECS = 8  # the EDNS option code of Client Subnet (RFC 7871 §6)
MAX_TIMELINE = 1000  # observed changes kept per endpoint; older ones are folded into the first


class Policy(enum.Enum):
    FAILOVER = "failover"
    WEIGHTED = "weighted"
    NEAREST = "nearest"
    ALL_HEALTHY = "all-healthy"


@dataclass(frozen=True)
class Endpoint:
    """A service address a steered name can answer with."""

    address: str
    weight: float = 1.0
    location: str = ""
    tcp: tuple[str, int] | None = None  # a real TCP connect check to this loopback address and port


@dataclass(frozen=True)
class Rule:
    """One steered RRset (lab.toml `[steering."NAME"]`)."""

    name: dns.name.Name
    rdtype: int
    policy: Policy
    endpoints: tuple[Endpoint, ...]
    ttl: int = 30
    interval: float = 10.0  # seconds of lab clock between health checks
    threshold: int = 1      # failed (or good) checks in a row that change an endpoint's health


@dataclass(frozen=True)
class Decision:
    """What a rule answered, and why: the trace and `dnslab endpoints` say it."""

    rule: Rule
    addresses: tuple[str, ...]
    reason: str
    location: str = ""
    ecs: str = ""  # the client subnet it was chosen for, when the query carried one

    def rrset(self) -> dns.rrset.RRset:
        return dns.rrset.from_text_list(self.rule.name, self.rule.ttl, dns.rdataclass.IN, self.rule.rdtype,
                                        list(self.addresses))

    def to_json(self) -> dict[str, Any]:
        return {"name": self.rule.name.to_text(), "type": dns.rdatatype.to_text(self.rule.rdtype),
                "policy": self.rule.policy.value, "answer": list(self.addresses), "why": self.reason,
                "location": self.location, "ecs": self.ecs}


class Timeline:
    """What an endpoint was observed to be (up or down) and since when, on the lab clock."""

    def __init__(self, start: float) -> None:
        self.changes: list[tuple[float, bool]] = [(start, True)]

    def set(self, up: bool, now: float) -> None:
        if self.changes[-1][1] != up:
            self.changes.append((max(now, self.changes[-1][0]), up))
            if len(self.changes) > MAX_TIMELINE:
                del self.changes[1]

    def up_at(self, when: float) -> bool:
        state = self.changes[0][1]
        for time, up in self.changes:
            if time > when:
                break
            state = up
        return state

    @property
    def up(self) -> bool:
        return self.changes[-1][1]


class Health:
    """One rule's view of one endpoint: checks on a grid of *interval*, *threshold* in a row to flip."""

    def __init__(self, start: float, interval: float, threshold: int) -> None:
        self.interval = interval
        self.threshold = threshold
        self.start = start
        self.checks = 0          # checks done (the next one is due at start + (checks + 1) * interval)
        self.healthy = True
        self.streak = 0          # checks in a row that disagreed with `healthy`
        self.last_check: float | None = None
        self.since = start       # when `healthy` last changed

    def catch_up(self, timeline: Timeline, now: float) -> None:
        """Run every check due by *now*, each seeing what the timeline says at its moment.

        Bounded: within a stretch where the observation does not change, more than
        *threshold* checks change nothing, so the rest of the stretch is skipped.
        """
        due = math.floor((now - self.start) / self.interval) if self.interval > 0 else 0
        while self.checks < due:
            self.checks += 1
            moment = self.start + self.checks * self.interval
            up = timeline.up_at(moment)
            self.last_check = moment
            if up == self.healthy:
                self.streak = 0
            else:
                self.streak += 1
                if self.streak >= self.threshold:
                    self.healthy, self.streak, self.since = up, 0, moment
            if self.streak == 0:  # settled: skip to the next change of the observation, if any
                following = [time for time, _ in timeline.changes if time > moment]
                skip_to = due if not following else min(due, math.ceil((following[0] - self.start) / self.interval) - 1)
                if skip_to > self.checks:
                    self.checks, self.last_check = skip_to, self.start + skip_to * self.interval


def choose(rule: Rule, healthy: Mapping[str, bool], location: str, rng: random.Random, turn: int) -> tuple[tuple[str, ...], str]:
    """The addresses a rule answers with now, and why (sans-I/O: health, location and chance are given)."""
    alive = [e for e in rule.endpoints if healthy.get(e.address, True)]
    down = [e.address for e in rule.endpoints if not healthy.get(e.address, True)]
    unhealthy = f"; unhealthy: {', '.join(down)}" if down else ""
    if not alive:
        if rule.policy is Policy.FAILOVER:
            return (rule.endpoints[0].address,), "no endpoint is healthy: the primary, as Route 53 does"
        return tuple(e.address for e in rule.endpoints), "no endpoint is healthy: all of them, as PowerDNS's ifportup"
    if rule.policy is Policy.FAILOVER:
        chosen = alive[0]
        rank = rule.endpoints.index(chosen)
        what = "the primary is healthy" if rank == 0 else f"endpoint {rank + 1} in order, the first healthy one"
        return (chosen.address,), what + unhealthy
    if rule.policy is Policy.WEIGHTED:
        total = sum(e.weight for e in alive)
        pick = rng.random() * total
        for endpoint in alive:
            pick -= endpoint.weight
            if pick < 0:
                break
        weights = ", ".join(f"{e.address} {e.weight:g}" for e in alive)
        return (endpoint.address,), f"at random by weight ({weights}){unhealthy}"
    if rule.policy is Policy.NEAREST:
        near = [e.address for e in alive if e.location == location]
        if near:
            return tuple(near), f"the client is at {location}{unhealthy}"
        return tuple(e.address for e in alive), f"no healthy endpoint at {location or 'an unknown location'}: all healthy{unhealthy}"
    turned = turn % len(alive)
    order = alive[turned:] + alive[:turned]
    return tuple(e.address for e in order), f"every healthy endpoint, rotated {turned}{unhealthy}"


# --- EDNS Client Subnet (RFC 7871) ------------------------------------------------------------


@dataclass(frozen=True)
class ClientSubnet:
    family: int
    source: int
    scope: int
    address: bytes  # as sent: the prefix's bytes only

    @property
    def network(self) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
        size = 4 if self.family == 1 else 16
        raw = self.address.ljust(size, b"\0")
        return ipaddress.ip_network((ipaddress.ip_address(raw), self.source), strict=False)

    def reply_option(self, scope: int) -> bytes:
        """The option echoed in the reply: family, source and address copied, SCOPE set (RFC 7871 §7.2.1)."""
        return struct.pack("!HBB", self.family, self.source, scope) + self.address


def client_subnet(options: Sequence[tuple[int, bytes]]) -> ClientSubnet | None:
    """The query's ECS option, or None (absent, or malformed: then it is ignored)."""
    for code, data in options:
        if code != ECS or len(data) < 4:
            continue
        family, source, scope = struct.unpack("!HBB", data[:4])
        address = data[4:]
        if family not in (1, 2) or source > (32 if family == 1 else 128) or len(address) != (source + 7) // 8:
            return None
        return ClientSubnet(family, source, scope, address)
    return None


# --- lab.toml -------------------------------------------------------------------------------------


def parse(table: Mapping[str, Any], where: str) -> list[Rule]:
    """`[steering."NAME"]` tables of lab.toml; a ConfigError says what is wrong, in one line."""
    rules = []
    for name, spec in table.items():
        here = f'{where}: [steering."{name}"]'
        if not isinstance(spec, dict):
            raise ConfigError(f"{here} must be a table: policy = \"failover\", endpoints = [...]")
        unknown = set(spec) - {"policy", "type", "endpoints", "ttl", "interval", "threshold"}
        if unknown:
            raise ConfigError(f"{here}: unknown key(s) {', '.join(sorted(unknown))} "
                              "(known: policy, type, endpoints, ttl, interval, threshold)")
        try:
            owner = dns.name.from_text(name)
            policy = Policy(spec.get("policy"))
        except ValueError:
            raise ConfigError(f"{here}: policy must be one of {', '.join(p.value for p in Policy)}") from None
        except Exception as exc:  # noqa: BLE001 - dnspython's name errors
            raise ConfigError(f"{here}: not a domain name ({exc})") from None
        rdtype_text = spec.get("type", "A")
        if rdtype_text not in ("A", "AAAA"):
            raise ConfigError(f"{here}: type must be A or AAAA")
        rdtype = dns.rdatatype.from_text(rdtype_text)
        endpoints = tuple(_endpoint(item, rdtype_text, here) for item in _list(spec.get("endpoints"), here))
        if not endpoints:
            raise ConfigError(f"{here}: endpoints must list one or more addresses")
        if len({e.address for e in endpoints}) != len(endpoints):
            raise ConfigError(f"{here}: an endpoint is listed twice")
        ttl = validate.ttl(spec.get("ttl", 30), f"{here} ttl")
        interval = validate.amount(spec.get("interval", 10), f"{here} interval", 0.1, 86400, "seconds")
        threshold = validate.whole(spec.get("threshold", 1), f"{here} threshold", 1, 100)
        if policy is Policy.NEAREST and not all(e.location for e in endpoints):
            raise ConfigError(f"{here}: nearest needs a location for every endpoint")
        rules.append(Rule(owner, rdtype, policy, endpoints, int(ttl), float(interval), int(threshold)))
    return rules


def _list(value: object, here: str) -> list[object]:
    if not isinstance(value, list):
        raise ConfigError(f"{here}: endpoints must be a list: [\"192.0.2.80\", {{ address = \"192.0.2.81\", weight = 3 }}]")
    return value


def _endpoint(item: object, rdtype: str, here: str) -> Endpoint:
    spec: dict[str, Any] = {"address": item} if isinstance(item, str) else item if isinstance(item, dict) else {}
    unknown = set(spec) - {"address", "weight", "location", "tcp"}
    if unknown or "address" not in spec:
        raise ConfigError(f"{here}: an endpoint is an address or {{ address = ..., weight = N, location = \"ams\", "
                          f"tcp = \"127.0.0.1:8080\" }}, not {item!r}")
    try:
        address = ipaddress.ip_address(spec["address"])
    except ValueError:
        raise ConfigError(f"{here}: {spec['address']!r} is not an IP address") from None
    if (address.version == 4) != (rdtype == "A"):
        raise ConfigError(f"{here}: {address} is not an {rdtype} address")
    weight = validate.amount(spec.get("weight", 1), f"{here} weight of {address}", 0, 1_000_000)
    location = spec.get("location", "")
    if not isinstance(location, str):
        raise ConfigError(f"{here}: the location of {address} must be a name")
    return Endpoint(str(address), float(weight), location, _tcp(spec.get("tcp"), here))


def _tcp(value: object, here: str) -> tuple[str, int] | None:
    if value is None:
        return None
    host, _, port = str(value).rpartition(":")
    try:
        ip = ipaddress.ip_address(host)
        number = int(port)
    except ValueError:
        raise ConfigError(f"{here}: tcp must be a loopback ADDRESS:PORT, like \"127.0.0.1:8080\"") from None
    if not ip.is_loopback or not 0 < number < 65536:
        raise ConfigError(f"{here}: tcp checks go to loopback ports only (127.0.0.0/8 or ::1), not {value}")
    return str(ip), number
