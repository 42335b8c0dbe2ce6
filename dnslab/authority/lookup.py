"""The authoritative lookup of RFC 1034 §4.3.2, with RFC 2308, 4592 and 6672, and RFC 4035 §3.1.

With the query's DO bit set and a signed zone, every RRset goes out with its
RRSIGs and every denial with its NSEC (or NSEC3, RFC 5155 §7.2) proofs; the
proofs are laid out in NSD's order, which decides what a truncated reply keeps.

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

from dnslab.core.zone import Zone

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
    dnssec: bool = False  # the query said DO=1: sign what is signed, prove what is denied

    def add(self, section: list[dns.rrset.RRset], zone: Zone, rrset: dns.rrset.RRset,
            signed_as: dns.name.Name | None = None) -> None:
        """An RRset and, with DO=1, the RRSIGs the zone holds for it, each RRset at most once.

        *signed_as* is the owner the signatures are stored under when it differs
        from the RRset's (a wildcard's, for a synthesised answer: the RRSIG's
        labels field then tells a validator so, RFC 4035 §5.3.4).
        """
        if any(rrset is other for other in section):
            return
        section.append(rrset)
        if self.dnssec and zone.signatures:
            rrsig = zone.signature(signed_as or rrset.name, rrset.rdtype)
            if rrsig is not None:
                section.append(_owned_by(rrset.name, rrsig))


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

    def lookup(self, qname: dns.name.Name, qtype: int, dnssec: bool = False) -> Response:
        """The answer; *dnssec* (the query's DO bit) adds RRSIGs and denial proofs (RFC 4035 §3.1)."""
        zone = self.zone_for(qname, qtype)
        if zone is None:
            return Response(Outcome.REFUSED, dns.rcode.REFUSED)
        response = Response(Outcome.ANSWER, authoritative=True, dnssec=dnssec)
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
                return _substitute(zone, dname, qname, qtype, response)

    node = zone.node(qname)
    if node is not None:
        return _answer_from(zone, qname, qname, node, qtype, response)
    if zone.exists(qname):  # an empty non-terminal: the name exists, the type does not
        _deny(zone, Outcome.NODATA, response)
        _prove_nodata(zone, qname, response)
        return None
    closest_encloser = qname.parent()
    while not zone.exists(closest_encloser):
        closest_encloser = closest_encloser.parent()
    wildcard_name = dns.name.Name((b"*",) + closest_encloser.labels)
    wildcard = zone.node(wildcard_name)
    if wildcard is not None:
        # RFC 4035 §3.1.3.3: prove that no closer name exists, so the wildcard applied.
        _prove_no_closer(zone, qname, closest_encloser, response)
        return _answer_from(zone, qname, wildcard_name, wildcard, qtype, response)
    # The proofs go before the SOA, as NSD lays them out: what fits of a truncated
    # reply is then the same.
    _prove_nxdomain(zone, qname, closest_encloser, wildcard_name, response)
    _deny(zone, Outcome.NXDOMAIN, response)
    return None


def _answer_from(zone: Zone, owner: dns.name.Name, node_name: dns.name.Name, node: dict[int, dns.rrset.RRset],
                 qtype: int, response: Response) -> dns.name.Name | None:
    """Answer from a node; *owner* differs from the node's name (*node_name*) when a wildcard matched."""
    response.outcome = Outcome.ANSWER
    response.rcode = dns.rcode.NOERROR
    if qtype == RdataType.ANY:
        for rrset in node.values():
            response.add(response.answer, zone, _owned_by(owner, rrset), node_name)
        if not response.dnssec:
            # Without DO the signatures are data like any other, as NSD sends them.
            response.answer.extend(_owned_by(owner, rrsig) for (name, _), rrsig in zone.signatures.items()
                                   if name == node_name)
        return None
    if qtype == RdataType.RRSIG:
        # The signatures as stored (RFC 4035 §3.1.5 asks nothing more): every RRSIG at the name.
        found = [_owned_by(owner, rrsig) for (name, _), rrsig in zone.signatures.items() if name == node_name]
        if found:
            response.answer.extend(found)
            return None
    rrset = node.get(qtype) if qtype != RdataType.NSEC3 else None
    if rrset is not None:
        response.add(response.answer, zone, _owned_by(owner, rrset), node_name)
        if qtype == RdataType.NS:
            for glue in _glue(zone, rrset):
                response.add(response.additional, zone, glue)
        return None
    cname = node.get(RdataType.CNAME)
    if cname is not None:
        response.add(response.answer, zone, _owned_by(owner, cname), node_name)
        return cname[0].target  # type: ignore[attr-defined,no-any-return]
    _deny(zone, Outcome.NODATA, response)
    if qtype == RdataType.DS:
        _prove_nodata(zone, node_name, response)  # NSD puts the DS proof first (it matters when truncating)
    if node_name.labels[0] == b"*" and zone.nsec3param is not None and _proving(zone, response):
        # A wildcard NODATA with NSEC3 also needs the closest encloser's own NSEC3 (RFC 5155 §7.2.5);
        # NSD adds it also when the query named the wildcard itself.
        encloser, _ = zone.nsec3_for(node_name.parent())
        if encloser is not None:
            response.add(response.authority, zone, encloser)
    _prove_nodata(zone, node_name, response)  # (added once: RRsets are never repeated)
    return None


def _substitute(zone: Zone, dname: dns.rrset.RRset, qname: dns.name.Name, qtype: int,
                response: Response) -> dns.name.Name | None:
    """RFC 6672 §2.2: the DNAME, then a CNAME synthesised from it with the DNAME's TTL.

    A chain that meets the same DNAME again must not repeat it in the answer;
    if that DNAME points below itself, every further substitution would meet
    it once more, so the chase stops there, as NSD's does.  A CNAME query is
    answered by the synthesised CNAME itself (RFC 1034 §4.3.2 step 3a), so its
    target is not chased.  The synthesised CNAME is never signed (RFC 6672 §5.3.1).
    """
    if dname in response.answer:
        if dname[0].target.is_subdomain(dname.name):  # type: ignore[attr-defined]
            return None
    else:
        response.add(response.answer, zone, dname)
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
    """A referral: the child's NS set in authority and the glue we hold for it.

    With DO=1 (RFC 4035 §3.1.4) also the DS RRset and its RRSIG, or the signed
    NSEC (NSEC3) proving that there is no DS: the child is then insecure.
    """
    ns = zone.get(cut, RdataType.NS)
    assert ns is not None
    response.outcome = Outcome.REFERRAL
    response.rcode = dns.rcode.NOERROR
    response.authority.append(ns)
    if response.dnssec and zone.signed:
        ds = zone.get(cut, RdataType.DS)
        if ds is not None:
            response.add(response.authority, zone, ds)
        else:
            _prove_nodata(zone, cut, response)
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
    if response.dnssec and zone.negative_soa_sig is not None:
        response.authority.append(zone.negative_soa_sig)


# --- denial of existence (RFC 4035 §3.1.3, RFC 5155 §7.2), only with DO=1 in signed zones ----


def _proving(zone: Zone, response: Response) -> bool:
    return response.dnssec and zone.signed


def _prove_nodata(zone: Zone, name: dns.name.Name, response: Response) -> None:
    """The name exists without the type: the NSEC (NSEC3) at the name says which types it has.

    For an empty non-terminal, which owns no NSEC, the NSEC that covers it
    proves it owns nothing (its next name lies below it).  For a wildcard
    NODATA, *name* is the wildcard and the no-closer-match proof is already in.
    """
    if _proving(zone, response):
        _add_denial(zone, name, name, response)


def _prove_no_closer(zone: Zone, qname: dns.name.Name, closest_encloser: dns.name.Name,
                     response: Response) -> None:
    """No name closer to *qname* than the closest encloser exists (the wildcard answer's proof)."""
    if _proving(zone, response):
        _add_denial(zone, qname.split(len(closest_encloser) + 1)[1], qname, response)


def _add_denial(zone: Zone, nsec3_name: dns.name.Name, nsec_name: dns.name.Name, response: Response) -> None:
    """The NSEC3 matching or covering *nsec3_name*, or the NSEC at or covering *nsec_name*."""
    if zone.nsec3param is not None:
        nsec3, _ = zone.nsec3_for(nsec3_name)
        if nsec3 is not None:
            response.add(response.authority, zone, nsec3)
        return
    nsec = zone.covering_nsec(nsec_name)
    if nsec is not None:
        response.add(response.authority, zone, nsec)


def _prove_nxdomain(zone: Zone, qname: dns.name.Name, closest_encloser: dns.name.Name,
                    wildcard: dns.name.Name, response: Response) -> None:
    """NXDOMAIN: no such name, and no wildcard at the closest encloser that could have made one.

    With NSEC3 (RFC 5155 §7.2.2) the closest encloser proof: the NSEC3 matching
    the closest encloser and the one covering the next closer name, then the
    one covering the wildcard.
    """
    if not _proving(zone, response):
        return
    if zone.nsec3param is not None:
        encloser, _ = zone.nsec3_for(closest_encloser)
        if encloser is not None:
            response.add(response.authority, zone, encloser)
    _prove_no_closer(zone, qname, closest_encloser, response)
    _add_denial(zone, wildcard, wildcard, response)


def _owned_by(owner: dns.name.Name, rrset: dns.rrset.RRset) -> dns.rrset.RRset:
    """The RRset itself, or a copy renamed to the query name for wildcard synthesis."""
    if rrset.name == owner:
        return rrset
    copy = dns.rrset.RRset(owner, rrset.rdclass, rrset.rdtype, rrset.covers)
    copy.update(rrset)
    return copy
