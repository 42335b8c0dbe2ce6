"""RFC 2136 dynamic update applied to a zone: prerequisites, the update prescan, the changes. No sockets.

The steps and rcodes are RFC 2136 §3.2 (prerequisites: NXDOMAIN, YXDOMAIN,
NXRRSET, YXRRSET, NOTZONE), §3.4.1 (prescan: FORMERR, NOTZONE) and §3.4.2
(apply), with the RFC's silent no-ops where it has them, as BIND applies them:
an SOA whose serial is not newer is ignored, the apex SOA and NS survive a
"delete all", the last apex NS is never deleted, a CNAME cannot be added
beside other data nor data beside a CNAME.  If anything changed and the update
did not set the SOA itself, the serial goes one up (§3.6), as `dnslab record set`
does.  Whether the sender may update at all (TSIG) is the server's decision.
"""

from __future__ import annotations

from dataclasses import dataclass

import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import dns.update

from dnslab.authority.journal import newer, serial_of
from dnslab.core.zone import Zone

RdataType = dns.rdatatype.RdataType
_META = frozenset({RdataType.ANY, RdataType.AXFR, RdataType.IXFR, RdataType.MAILA, RdataType.MAILB,
                   RdataType.OPT, RdataType.TSIG, RdataType.TKEY})
# Types that may share a name with a CNAME (as dnslab.core.zone checks when loading).
_CNAME_NEIGHBOURS = frozenset({RdataType.CNAME, RdataType.RRSIG, RdataType.NSEC, RdataType.KEY})

_Key = tuple[dns.name.Name, int]


class UpdateRefused(Exception):
    """The update fails with this rcode (nothing is changed)."""

    def __init__(self, rcode: int, why: str) -> None:
        super().__init__(why)
        self.rcode = rcode


@dataclass
class Outcome:
    """The zone after the update (None: nothing changed) and the changes, for the log."""

    zone: Zone | None
    changes: list[str]


def apply(zone: Zone, message: dns.update.UpdateMessage) -> Outcome:
    """The update of *message* made to *zone*; raises UpdateRefused with the rcode to answer."""
    origin = zone.origin
    data: dict[_Key, dns.rrset.RRset] = {}
    for rrset in zone.rrsets():
        if rrset.rdtype not in (RdataType.RRSIG, RdataType.NSEC3):  # the signer's, made anew after the update
            data[(rrset.name, int(rrset.rdtype))] = rrset
    _check_prerequisites(origin, data, message.prerequisite)
    _prescan(origin, message.update)
    changes: list[str] = []
    soa_set = False
    for rrset in message.update:
        soa_set |= _apply_one(origin, data, rrset, changes)
    if not changes:
        return Outcome(None, [])
    if not soa_set:
        data[(origin, int(RdataType.SOA))] = _next_serial(data[(origin, int(RdataType.SOA))])
    return Outcome(Zone(origin, zone.filename, list(data.values())), changes)


def bump_serial(zone: Zone) -> Zone:
    """*zone* with its SOA serial one up (RFC 1982 wraps): a new version, as a signer makes when it
    re-signs, so that secondaries, which compare serials only, transfer the new signatures."""
    rrsets = [_next_serial(r) if r is zone.soa else r for r in zone.rrsets()]
    return Zone(zone.origin, zone.filename, rrsets)


def _next_serial(soa: dns.rrset.RRset) -> dns.rrset.RRset:
    bumped = dns.rrset.RRset(soa.name, soa.rdclass, soa.rdtype)
    bumped.add(soa[0].replace(serial=(serial_of(soa) + 1) % 2**32), soa.ttl)  # type: ignore[attr-defined]
    return bumped


def _names(data: dict[_Key, dns.rrset.RRset]) -> set[dns.name.Name]:
    return {name for name, _ in data}


def _check_prerequisites(origin: dns.name.Name, data: dict[_Key, dns.rrset.RRset],
                         prerequisites: list[dns.rrset.RRset]) -> None:
    """RFC 2136 §3.2."""
    wanted: dict[_Key, dns.rrset.RRset] = {}
    for rrset in prerequisites:
        if rrset.ttl != 0:
            raise UpdateRefused(dns.rcode.FORMERR, f"prerequisite {rrset.name} with TTL {rrset.ttl}, not 0")
        if not rrset.name.is_subdomain(origin):
            raise UpdateRefused(dns.rcode.NOTZONE, f"prerequisite {rrset.name} is outside zone {origin}")
        key = (rrset.name, int(rrset.rdtype))
        if rrset.deleting == dns.rdataclass.ANY:
            if len(rrset):
                raise UpdateRefused(dns.rcode.FORMERR, "prerequisite of class ANY with data")
            if rrset.rdtype == RdataType.ANY:
                if rrset.name not in _names(data):
                    raise UpdateRefused(dns.rcode.NXDOMAIN, f"{rrset.name} does not exist")
            elif key not in data:
                raise UpdateRefused(dns.rcode.NXRRSET, f"no {dns.rdatatype.to_text(rrset.rdtype)} at {rrset.name}")
        elif rrset.deleting == dns.rdataclass.NONE:
            if len(rrset):
                raise UpdateRefused(dns.rcode.FORMERR, "prerequisite of class NONE with data")
            if rrset.rdtype == RdataType.ANY:
                if rrset.name in _names(data):
                    raise UpdateRefused(dns.rcode.YXDOMAIN, f"{rrset.name} exists")
            elif key in data:
                raise UpdateRefused(dns.rcode.YXRRSET, f"{dns.rdatatype.to_text(rrset.rdtype)} at {rrset.name} exists")
        elif rrset.rdclass == dns.rdataclass.IN and rrset.deleting is None:
            gathered = wanted.setdefault(key, dns.rrset.RRset(rrset.name, rrset.rdclass, rrset.rdtype))
            gathered.update(rrset)
        else:
            raise UpdateRefused(dns.rcode.FORMERR, "prerequisite of another class")
    for key, rrset in wanted.items():  # value-dependent: the whole RRset, exactly (§3.2.3)
        have = data.get(key)
        if have is None or set(have) != set(rrset):
            raise UpdateRefused(dns.rcode.NXRRSET, f"{dns.rdatatype.to_text(key[1])} at {key[0]} differs")


def _prescan(origin: dns.name.Name, updates: list[dns.rrset.RRset]) -> None:
    """RFC 2136 §3.4.1.3: a bad record anywhere fails the whole update before anything changes."""
    for rrset in updates:
        if not rrset.name.is_subdomain(origin):
            raise UpdateRefused(dns.rcode.NOTZONE, f"{rrset.name} is outside zone {origin}")
        what = dns.rdatatype.to_text(rrset.rdtype)
        if rrset.deleting is None:
            if rrset.rdclass != dns.rdataclass.IN or rrset.rdtype in _META:
                raise UpdateRefused(dns.rcode.FORMERR, f"cannot add {what} records")
        elif rrset.deleting == dns.rdataclass.ANY:
            if rrset.ttl != 0 or len(rrset) or (rrset.rdtype in _META and rrset.rdtype != RdataType.ANY):
                raise UpdateRefused(dns.rcode.FORMERR, f"bad delete of {what} at {rrset.name}")
        elif rrset.deleting == dns.rdataclass.NONE:
            if rrset.ttl != 0 or rrset.rdtype in _META:
                raise UpdateRefused(dns.rcode.FORMERR, f"bad delete of a {what} record at {rrset.name}")
        else:
            raise UpdateRefused(dns.rcode.FORMERR, "an update record of another class")


def _apply_one(origin: dns.name.Name, data: dict[_Key, dns.rrset.RRset], rrset: dns.rrset.RRset,
               changes: list[str]) -> bool:
    """One update RRset (RFC 2136 §3.4.2); True if it set the SOA."""
    name, rdtype = rrset.name, int(rrset.rdtype)
    key = (name, rdtype)
    what = f"{name} {dns.rdatatype.to_text(rdtype)}"
    apex_kept = name == origin and rdtype in (RdataType.SOA, RdataType.NS)
    if rrset.deleting is None:
        if rdtype == RdataType.SOA:
            current = data[(origin, rdtype)]
            if name != origin or not newer(serial_of(rrset), serial_of(current)):
                return False  # §3.4.2.2: an older or equal serial is silently ignored
            data[key] = _copy(rrset)
            changes.append(f"set {what}")
            return True
        types = {t for n, t in data if n == name}
        if rdtype == RdataType.CNAME and types - _CNAME_NEIGHBOURS:
            return False  # §3.4.2.2: a CNAME beside other data is ignored
        if rdtype not in _CNAME_NEIGHBOURS and RdataType.CNAME in types:
            return False  # ...and so is data beside a CNAME
        have = data.get(key)
        merged = dns.rrset.RRset(name, rrset.rdclass, rdtype)
        if have is not None and rdtype != RdataType.CNAME:  # one CNAME per name: a new one replaces it
            merged.update(have)
        for rdata in rrset:
            merged.add(rdata, rrset.ttl)
        merged.ttl = rrset.ttl
        if have is None or set(merged) != set(have) or merged.ttl != have.ttl:
            data[key] = merged
            changes.append(f"add {what}")
        return False
    if rrset.deleting == dns.rdataclass.ANY:
        if rdtype == RdataType.ANY:
            gone = [k for k in data if k[0] == name and not (name == origin and k[1] in (RdataType.SOA, RdataType.NS))]
        else:
            gone = [key] if key in data and not apex_kept else []
        for k in gone:
            del data[k]
            changes.append(f"delete {k[0]} {dns.rdatatype.to_text(k[1])}")
        return False
    # Class NONE: delete these records from the RRset.
    have = data.get(key)
    if have is None or rdtype == RdataType.SOA:
        return False
    left = [rdata for rdata in have if rdata not in rrset]
    if len(left) == len(have) or (name == origin and rdtype == RdataType.NS and not left):
        return False  # nothing to delete, or the zone's last NS (§3.4.2.4)
    if left:
        kept = dns.rrset.RRset(name, have.rdclass, rdtype)
        for rdata in left:
            kept.add(rdata, have.ttl)
        data[key] = kept
    else:
        del data[key]
    changes.append(f"delete from {what}")
    return False


def _copy(rrset: dns.rrset.RRset) -> dns.rrset.RRset:
    out = dns.rrset.RRset(rrset.name, rrset.rdclass, rrset.rdtype)
    out.update(rrset)
    return out
