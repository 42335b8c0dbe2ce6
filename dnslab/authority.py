"""The authoritative lookup of RFC 1034 §4.3.2, with RFC 2308, 4592 and 6672.

This decides *what* an authoritative server answers; it knows nothing about
wire format or sockets, so every case can be tested as a table of zone text,
question and expected sections.  The behaviour follows NSD 4 with
``minimal-responses: yes`` wherever the RFCs leave a choice, because the lab
must answer as the servers people run on the internet do.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Iterable

import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.CNAME
import dns.rrset

from dnslab.zone import Zone

RdataType = dns.rdatatype.RdataType

# CNAME and DNAME steps followed inside our own zones before giving up; NSD
# stops chasing after a similar small bound, and a resolver restarts anyway.
MAX_CHAIN = 12


class Outcome(enum.Enum):
    """What the server found, named as the RFCs and CoreDNS name the cases."""

    ANSWER = "answer"
    REFERRAL = "referral"
    NODATA = "nodata"
    NXDOMAIN = "nxdomain"
    REFUSED = "refused"
    YXDOMAIN = "yxdomain"


@dataclass
class Response:
    """The sections of an authoritative reply, before they become wire format."""

    outcome: Outcome
    rcode: dns.rcode.Rcode = dns.rcode.NOERROR
    authoritative: bool = False
    answer: list[dns.rrset.RRset] = field(default_factory=list)
    authority: list[dns.rrset.RRset] = field(default_factory=list)
    additional: list[dns.rrset.RRset] = field(default_factory=list)


class Authority:
    """The data of every zone one server is authoritative for."""

    def __init__(self, zones: Iterable[Zone]) -> None:
        self.zones: dict[dns.name.Name, Zone] = {zone.origin: zone for zone in zones}

    def zone_for(self, qname: dns.name.Name, qtype: int) -> Zone | None:
        """The closest enclosing zone, except that DS at a cut is the parent's to answer."""
        zone = self._closest(qname)
        if zone is not None and qtype == RdataType.DS and qname == zone.origin and qname != dns.name.root:
            parent = self._closest(qname.parent())
            if parent is not None:
                return parent
        return zone

    def _closest(self, qname: dns.name.Name) -> Zone | None:
        name = qname
        while True:
            zone = self.zones.get(name)
            if zone is not None:
                return zone
            if name == dns.name.root:
                return None
            name = name.parent()

    def lookup(self, qname: dns.name.Name, qtype: int) -> Response:
        zone = self.zone_for(qname, qtype)
        if zone is None:
            return Response(Outcome.REFUSED, dns.rcode.REFUSED)
        response = Response(Outcome.ANSWER, authoritative=True)
        name: dns.name.Name | None = qname
        seen: set[dns.name.Name] = set()
        first = True
        while name is not None and zone is not None and len(seen) < MAX_CHAIN:
            seen.add(name)
            name = _lookup_in_zone(zone, name, qtype, response)
            if first:
                # AA describes the owner of the first answer (RFC 1035 §4.1.1).
                response.authoritative = response.outcome is not Outcome.REFERRAL
                first = False
            if name is None or name in seen:
                break
            zone = self.zone_for(name, qtype)
        return response


def _lookup_in_zone(zone: Zone, qname: dns.name.Name, qtype: int, response: Response) -> dns.name.Name | None:
    """One step of §4.3.2 in one zone; returns the next name to chase, if any."""
    origin_depth = len(zone.origin)
    for depth in range(origin_depth, len(qname) + 1):
        _, ancestor = qname.split(depth)
        if ancestor in zone.cuts and not (ancestor == qname and qtype == RdataType.DS):
            _refer(zone, ancestor, response)
            return None
        if ancestor != qname:
            dname = zone.get(ancestor, RdataType.DNAME)
            if dname is not None:
                return _substitute(dname, qname, qtype, response)

    node = zone.node(qname)
    if node is not None:
        return _answer_from(zone, qname, node, qtype, response)
    if zone.exists(qname):  # an empty non-terminal: the name exists, the type does not
        _deny(zone, Outcome.NODATA, response)
        return None
    closest_encloser = qname.parent()
    while not zone.exists(closest_encloser):
        closest_encloser = closest_encloser.parent()
    wildcard = zone.node(dns.name.Name((b"*",) + closest_encloser.labels))
    if wildcard is not None:
        return _answer_from(zone, qname, wildcard, qtype, response)
    _deny(zone, Outcome.NXDOMAIN, response)
    return None


def _answer_from(zone: Zone, owner: dns.name.Name, node: dict[int, dns.rrset.RRset], qtype: int,
                 response: Response) -> dns.name.Name | None:
    """Answer from a node; *owner* differs from the node's name when a wildcard matched."""
    response.outcome = Outcome.ANSWER
    response.rcode = dns.rcode.NOERROR
    if qtype == RdataType.ANY:
        response.answer.extend(_owned_by(owner, rrset) for rrset in node.values())
        return None
    rrset = node.get(qtype)
    if rrset is not None:
        response.answer.append(_owned_by(owner, rrset))
        if qtype == RdataType.NS:
            response.additional.extend(_glue(zone, rrset))
        return None
    cname = node.get(RdataType.CNAME)
    if cname is not None:
        response.answer.append(_owned_by(owner, cname))
        return cname[0].target  # type: ignore[attr-defined,no-any-return]
    _deny(zone, Outcome.NODATA, response)
    return None


def _substitute(dname: dns.rrset.RRset, qname: dns.name.Name, qtype: int,
                response: Response) -> dns.name.Name | None:
    """RFC 6672 §2.2: the DNAME, then a CNAME synthesised from it with the DNAME's TTL.

    A chain that meets the same DNAME again must not repeat it in the answer;
    if that DNAME points below itself, every further substitution would meet
    it once more, so the chase stops there, as NSD's does.  A CNAME query is
    answered by the synthesised CNAME itself (RFC 1034 §4.3.2 step 3a), so its
    target is not chased.
    """
    if dname in response.answer:
        if dname[0].target.is_subdomain(dname.name):  # type: ignore[attr-defined]
            return None
    else:
        response.answer.append(dname)
    response.outcome = Outcome.ANSWER
    response.rcode = dns.rcode.NOERROR
    try:
        target = qname.relativize(dname.name).derelativize(dname[0].target)  # type: ignore[attr-defined]
    except dns.name.NameTooLong:
        response.outcome = Outcome.YXDOMAIN
        response.rcode = dns.rcode.YXDOMAIN
        return None
    synthesised = dns.rrset.RRset(qname, dns.rdataclass.IN, RdataType.CNAME)
    synthesised.add(dns.rdtypes.ANY.CNAME.CNAME(dns.rdataclass.IN, RdataType.CNAME, target), dname.ttl)
    response.answer.append(synthesised)
    return None if qtype == RdataType.CNAME else target


def _refer(zone: Zone, cut: dns.name.Name, response: Response) -> None:
    """A referral: the child's NS set in authority and the glue we hold for it."""
    ns = zone.get(cut, RdataType.NS)
    assert ns is not None
    response.outcome = Outcome.REFERRAL
    response.rcode = dns.rcode.NOERROR
    response.authority.append(ns)
    response.additional.extend(_glue(zone, ns))


def _glue(zone: Zone, ns: dns.rrset.RRset) -> list[dns.rrset.RRset]:
    """Addresses for NS names inside this zone; others a resolver must look up itself."""
    found: list[dns.rrset.RRset] = []
    for rdata in ns:
        target: dns.name.Name = rdata.target  # type: ignore[attr-defined]
        if not target.is_subdomain(zone.origin):
            continue
        for rdtype in (RdataType.A, RdataType.AAAA):
            rrset = zone.get(target, rdtype)
            if rrset is not None and rrset not in found:
                found.append(rrset)
    return found


def _deny(zone: Zone, outcome: Outcome, response: Response) -> None:
    """NXDOMAIN or NODATA with the SOA whose TTL bounds negative caching (RFC 2308 §3)."""
    response.outcome = outcome
    response.rcode = dns.rcode.NXDOMAIN if outcome is Outcome.NXDOMAIN else dns.rcode.NOERROR
    response.authority.append(zone.negative_soa)


def _owned_by(owner: dns.name.Name, rrset: dns.rrset.RRset) -> dns.rrset.RRset:
    """The RRset itself, or a copy renamed to the query name for wildcard synthesis."""
    if rrset.name == owner:
        return rrset
    copy = dns.rrset.RRset(owner, rrset.rdclass, rrset.rdtype, rrset.covers)
    copy.update(rrset)
    return copy
