"""Anycast in the lab: where clients are, where each server's sites are, and which site answers.

A real root address (198.41.0.4, a.root-servers.net) is announced by BGP from
dozens of sites; a packet reaches the site nearest in routing terms, and when a
site is withdrawn the next nearest answers on the same address.  The lab plays
this on one loopback address per server: `lab.toml` names the client
*locations*, and for a server its *sites*, each with a latency (ms) from every
location.  A query's location comes from its source address (`[locations]`;
any other source is at the lab's own `location`, where its resolver sits), the
nearest site still announced answers, after that site's latency, naming itself
in NSID and hostname.bind.  A server with one site is simply placed somewhere:
unicast, but still near some clients and far from others.

    location = "ams"                     # the lab resolver's location (and any unlisted source's)
    [locations]
    nyc = ["127.0.8.1", "198.51.100.0/24"]  # `dig -b 127.0.8.1` asks from nyc; so does that network
    [sites."a.root-servers.net"]         # an address or an NS name
    ams = { ams = 2, nyc = 40 }          # site = { location = latency in ms, ... }
    nyc = { ams = 40, nyc = 2 }

Sans-I/O: parsing and the choice are plain functions, tested without sockets;
the runtime piece that delays and answers is `dnslab.lab.sites`.
"""

from __future__ import annotations

import ipaddress
import math
from dataclasses import dataclass, field
from typing import Any, Collection, Mapping

from dnslab.core import validate
from dnslab.core.errors import ConfigError

MAX_LATENCY_MS = 10_000.0  # beyond any resolver's patience: a typo, not a distance


@dataclass(frozen=True)
class Site:
    """One place an address is announced from, with its distance (latency, ms) from each location."""

    name: str
    latency_ms: Mapping[str, float]

    def latency(self, location: str) -> float:
        return self.latency_ms.get(location, math.inf)


@dataclass(frozen=True)
class Geography:
    """The lab's locations, which source address is where, and the sites of each anycast server."""

    location: str = ""                                   # the lab resolver's; "" when no sites are declared
    clients: Mapping[str, str] = field(default_factory=dict)  # source address -> location
    sites: Mapping[str, tuple[Site, ...]] = field(default_factory=dict)  # server (address or NS name) -> sites

    @property
    def locations(self) -> list[str]:
        found = dict.fromkeys([self.location, *self.clients.values()])
        for sites in self.sites.values():
            for site in sites:
                found.update(dict.fromkeys(site.latency_ms))
        return [name for name in found if name]

    def location_of(self, source: str | None) -> str:
        """Where a query from *source* comes from: its listed location (an address, else the longest
        listed network holding it), else the lab's own."""
        found = self.clients.get(source or "")
        if found is not None or not source or "/" not in "".join(self.clients):
            return found if found is not None else self.location
        try:
            address = ipaddress.ip_address(source)
        except ValueError:
            return self.location
        best: tuple[int, str] | None = None
        for listed, location in self.clients.items():
            if "/" in listed:
                network = ipaddress.ip_network(listed)
                if address in network and (best is None or network.prefixlen > best[0]):
                    best = (network.prefixlen, location)
        return best[1] if best is not None else self.location

    def location_of_subnet(self, subnet: ipaddress.IPv4Network | ipaddress.IPv6Network) -> str:
        """Where an EDNS Client Subnet (RFC 7871) is: as its address, else where a listed client
        address inside it is, else the lab's own location."""
        found = self.location_of(str(subnet.network_address))
        if found != self.location:
            return found
        for listed, location in self.clients.items():
            if "/" not in listed and ipaddress.ip_address(listed) in subnet:
                return location
        return self.location


def nearest(sites: tuple[Site, ...], location: str, withdrawn: Collection[str] = ()) -> Site | None:
    """The site a query from *location* reaches: the nearest one still announced (ties: the first
    declared, as a router keeps its first best path), or None when every site is withdrawn."""
    best: Site | None = None
    for site in sites:
        if site.name not in withdrawn and (best is None or site.latency(location) < best.latency(location)):
            best = site
    return best


def parse(data: Mapping[str, Any], where: str) -> Geography:
    """`location`, `[locations]` and `[sites]` of lab.toml; a ConfigError names what is wrong."""
    location = data.get("location", "")
    if not isinstance(location, str):
        raise ConfigError(f"{where}: location must be a name, like location = \"ams\"")
    clients: dict[str, str] = {}
    table = data.get("locations", {})
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: [locations] must be a table: name = [\"127.0.0.2\", ...]")
    for name, addresses in table.items():
        if not isinstance(addresses, list) or not all(isinstance(a, str) for a in addresses):
            raise ConfigError(f"{where}: [locations] {name} must be a list of client addresses")
        for address in addresses:
            try:
                address = str(ipaddress.ip_network(address, strict=False)) if "/" in address \
                    else str(ipaddress.ip_address(address))
            except ValueError:
                raise ConfigError(f"{where}: [locations] {name}: {address!r} is not an IP address "
                                  "or network") from None
            if clients.setdefault(address, name) != name:
                raise ConfigError(f"{where}: [locations]: {address} is in both {clients[address]} and {name}")
    sites: dict[str, tuple[Site, ...]] = {}
    table = data.get("sites", {})
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: [sites] must hold one table per server: [sites.\"a.root-servers.net\"]")
    for server, declared in table.items():
        if not isinstance(declared, dict) or not declared:
            raise ConfigError(f"{where}: [sites.\"{server}\"] must name one or more sites: ams = {{ ams = 2 }}")
        sites[server] = tuple(_site(name, distances, f"{where}: [sites.\"{server}\"] {name}")
                              for name, distances in declared.items())
    geography = Geography(location, clients, sites)
    if sites and not location:
        raise ConfigError(f"{where}: [sites] needs the lab's own location: location = \"...\" "
                          "(where its resolver sits)")
    known = geography.locations
    for server, server_sites in sites.items():
        for site in server_sites:
            missing = [name for name in known if name not in site.latency_ms]
            if missing:
                raise ConfigError(f"{where}: [sites.\"{server}\"] {site.name} gives no latency from "
                                  f"{', '.join(missing)} (every site needs one from every location)")
    return geography


def _site(name: str, distances: object, where: str) -> Site:
    if not isinstance(distances, dict) or not distances:
        raise ConfigError(f"{where} must be a table of latencies by location: {{ ams = 2, nyc = 40 }}")
    if not name.replace("-", "").isalnum():
        raise ConfigError(f"{where}: a site name is letters, digits and '-' (it becomes part of the identity)")
    latency = {location: validate.amount(value, f"{where}: latency from {location}", 0, MAX_LATENCY_MS, "ms")
               for location, value in distances.items()}
    return Site(name, latency)


def site_identity(site: Site, server_name: str) -> str:
    """What a site says in NSID and hostname.bind: `ams.a.root-servers.net`, after the K-root style
    (`ns1.nl-ams.k.ripe.net`) of naming the site and the letter."""
    return f"{site.name}.{server_name}"
