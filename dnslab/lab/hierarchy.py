"""The lab's hierarchy, derived from the zone files alone: which address serves which zones.

The zones are the single source of truth.  A zone is served at the addresses
of its apex NS names (glue in the parent, or address records in any loaded
zone), exactly the facts a resolver would follow; the root zone's NS names and
their addresses are the root hints.  Sans-I/O: zones in, a plan out; the
runtime (dnslab.lab.runtime) starts what this plans.
"""

from __future__ import annotations

import enum
import ipaddress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import dns.exception
import dns.name
import dns.rdatatype

from dnslab.core.errors import ConfigError
from dnslab.core.zone import Zone

_LOOPBACK = ipaddress.ip_network("127.0.0.0/8")


class Role(enum.Enum):
    ROOT = "root"
    TLD = "TLD"
    AUTHORITATIVE = "authoritative"


@dataclass
class ServerPlan:
    """One lab address: the NS names that point at it and the zones it serves."""

    address: str
    names: list[dns.name.Name] = field(default_factory=list)
    zones: list[Zone] = field(default_factory=list)

    @property
    def role(self) -> Role:
        depths = [len(zone.origin) for zone in self.zones]  # the root has one (empty) label
        if min(depths) == 1:
            return Role.ROOT
        if min(depths) == 2:
            return Role.TLD
        return Role.AUTHORITATIVE

    @property
    def name(self) -> dns.name.Name:
        return self.names[0]


@dataclass
class Hierarchy:
    """Which address serves which zones, and the root hints, as derived from the zones."""

    servers: list[ServerPlan]
    root_hints: list[tuple[dns.name.Name, str]]
    warnings: list[str]

    def server_at(self, address: str) -> ServerPlan | None:
        return next((plan for plan in self.servers if plan.address == address), None)

    def find(self, address_or_name: str) -> ServerPlan | None:
        plan = self.server_at(address_or_name)
        if plan is not None:
            return plan
        try:
            name = dns.name.from_text(address_or_name)
        except dns.exception.DNSException:
            return None
        return next((p for p in self.servers if name in p.names), None)


def _address_book(zones: list[Zone], names: Iterable[dns.name.Name]) -> dict[dns.name.Name, list[str]]:
    """The A and AAAA addresses the loaded zones give each of *names* (authoritative data or glue).

    A zone holds only names under its origin (the loader refuses others), so each name
    is looked up in the zones at or above it alone: a lab of a million names is not
    indexed (2.5 s and a dict of every address) for its servers' few thousand names.
    Addresses come in the order of the zones, then of each zone's records, first
    spelling of an address kept.
    """
    # By the origin's labels in lowercase, so each name's ancestors are looked up as slices of
    # one tuple (no Name made or hashed per ancestor).
    by_origin: dict[tuple[bytes, ...], list[tuple[int, Zone]]] = {}
    for index, zone in enumerate(zones):
        by_origin.setdefault(tuple(label.lower() for label in zone.origin.labels), []).append((index, zone))
    book: dict[dns.name.Name, list[str]] = {}
    for name in names:
        if name in book:
            continue
        labels = tuple(label.lower() for label in name.labels)
        holders = [held for start in range(len(labels)) for held in by_origin.get(labels[start:], ())]
        known: list[str] = []
        book[name] = known
        for _, zone in sorted(holders, key=lambda held: held[0]):
            for rdtype, rrset in (zone.node(name) or {}).items():
                if rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
                    known.extend(rdata.address for rdata in rrset if rdata.address not in known)  # type: ignore[attr-defined]
    return book


def derive_hierarchy(zones: Iterable[Zone]) -> Hierarchy:
    """Place every zone on the loopback addresses of its apex NS names."""
    zones = list(zones)
    root = next((zone for zone in zones if zone.origin == dns.name.root), None)
    apex_ns = [zone.get(zone.origin, dns.rdatatype.NS) or () for zone in zones]
    root_ns = root.get(dns.name.root, dns.rdatatype.NS) or () if root is not None else ()
    address_book = _address_book(zones, (rdata.target for rrset in [*apex_ns, root_ns] for rdata in rrset))  # type: ignore[attr-defined]
    plans: dict[str, ServerPlan] = {}
    warnings: list[str] = []
    for zone in sorted(zones, key=lambda z: (len(z.origin), z.origin)):
        ns = zone.get(zone.origin, dns.rdatatype.NS)
        assert ns is not None  # validated by the loader
        served = False
        for rdata in ns:
            target: dns.name.Name = rdata.target  # type: ignore[attr-defined]
            addresses = [a for a in address_book.get(target, []) if _is_loopback_v4(a)]
            if not addresses:
                warnings.append(f"zone {zone.origin}: name server {target} has no 127.x.y.z address "
                                "in any loaded zone, so the lab does not run it")
            for address in addresses:
                plan = plans.setdefault(address, ServerPlan(address))
                if target not in plan.names:
                    plan.names.append(target)
                if zone not in plan.zones:
                    plan.zones.append(zone)
                served = True
        if not served:
            warnings.append(f"zone {zone.origin} ({zone.filename}) is served by no lab address")
    root_hints: list[tuple[dns.name.Name, str]] = []
    if root is not None:
        for rdata in root_ns:
            for address in address_book.get(rdata.target, []):  # type: ignore[attr-defined]
                root_hints.append((rdata.target, address))  # type: ignore[attr-defined]
    servers = sorted(plans.values(), key=lambda p: (list(Role).index(p.role), ipaddress.ip_address(p.address)))
    return Hierarchy(servers, root_hints, warnings)


def lame_delegations(zones: Iterable[Zone], hierarchy: Hierarchy) -> list[str]:
    """Delegations to a lab zone naming a lab address that does not serve it (a lame delegation).

    The lab serves a zone where its own apex NS records say, not where the parent
    points; after a change that makes them differ, a resolver following the
    parent meets a server that does not answer for the zone: the change says so.
    """
    zones = list(zones)
    lab_origins = {zone.origin for zone in zones}
    delegations = [zone.get(cut, dns.rdatatype.NS) or () for zone in zones for cut in zone.cuts if cut in lab_origins]
    address_book = _address_book(zones, (rdata.target for rrset in delegations for rdata in rrset))  # type: ignore[attr-defined]
    found = []
    for zone in zones:
        for cut in sorted(zone.cuts):
            if cut not in lab_origins:
                continue
            for rdata in zone.get(cut, dns.rdatatype.NS) or []:
                target: dns.name.Name = rdata.target  # type: ignore[attr-defined]
                for address in address_book.get(target, []):
                    plan = hierarchy.server_at(address)
                    if _is_loopback_v4(address) and (plan is None or cut not in {z.origin for z in plan.zones}):
                        found.append(f"{zone.origin} delegates {cut} to {target} ({address}), but "
                                     f"{'no lab server runs there' if plan is None else 'the server there does not serve it'}"
                                     f" ({cut} has no apex NS {target}): a lame delegation")
    return found


def _is_loopback_v4(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return ip.version == 4 and ip in _LOOPBACK


def zone_files(zones_dir: Path) -> list[Path]:
    """The zone files of a lab folder: every *.zone file, in name order."""
    if not zones_dir.is_dir():
        raise ConfigError(f"{zones_dir}: no such folder of zone files")
    files = sorted(zones_dir.glob("*.zone"))
    if not files:
        raise ConfigError(f"{zones_dir}: no *.zone files in this folder")
    return files
