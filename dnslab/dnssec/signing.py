"""Sign a zone: DNSKEY, RRSIGs, and an NSEC or NSEC3 chain, as a new Zone value.

No I/O and no clock: the caller gives the time (POSIX seconds) that the
signatures' validity window is measured from, so the lab can sign by its own
clock (a fake one moves signatures' expiry with `dnslab clock advance`).
dnspython's ``dns.dnssec.sign`` makes each signature; the chain is built
here, because dnspython's ``sign_zone`` has no NSEC3 and no way to leave a
zone's data out of the chain on purpose (the lab's DNSSEC faults do).

What is signed follows RFC 4035 §2: every authoritative RRset, with the
DNSKEY RRset signed by the KSK and everything else by the ZSK; at a zone cut
only the DS and NSEC RRsets (the NS there and glue below it are the child's
data, not ours).  NSEC3 uses the parameters RFC 9276 asks for: SHA-1, no
extra iterations, no salt, no opt-out.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Iterable

import dns.dnssec
import dns.name
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.DS
import dns.rdtypes.ANY.NSEC
import dns.rdtypes.ANY.NSEC3
import dns.rdtypes.ANY.NSEC3PARAM
import dns.rrset

from dnslab.dnssec.keys import DEFAULT_ALGORITHM, Algorithm, ZoneKeys
from dnslab.core.zone import Zone, nsec3_label

RdataType = dns.rdatatype.RdataType
IN = dns.rdataclass.IN
DAY = 86400
EXPIRED_AGO = 7 * DAY  # how long ago the dnssec-expired fault's signatures ran out
# Records a signer makes; a zone's own copies of them are replaced on signing.
SIGNER_TYPES = frozenset({RdataType.RRSIG, RdataType.NSEC, RdataType.NSEC3, RdataType.NSEC3PARAM,
                          RdataType.DNSKEY})
_BASE32HEX = str.maketrans("0123456789ABCDEFGHIJKLMNOPQRSTUV", "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")


@dataclass(frozen=True)
class SigningPolicy:
    """How signatures are made and when they are made again.

    Inception lies an hour in the past, so a validator whose clock is a little
    behind still accepts them; signatures are remade when less than
    *refresh* of their validity remains (a quarter of 14 days: 3.5 days ahead),
    as OpenDNSSEC's and BIND's re-signing intervals do.
    """

    algorithm: Algorithm = DEFAULT_ALGORITHM
    nsec3: bool = False
    validity: int = 14 * DAY
    inception_offset: int = 3600
    refresh: float = 0.25

    def refresh_after(self) -> float:
        """Seconds after signing when the signatures should be made again."""
        return self.validity * (1 - self.refresh)


@dataclass(frozen=True)
class SigningFaults:
    """Ways to sign a zone wrongly on purpose (the `dnslab fault ZONE dnssec-*` kinds).

    *bad_sig* corrupts every signature but the DNSKEY RRset's, so a validator
    gets as far as the zone's keys and then fails; *expired* signs with a
    window that ended a week ago.  *claim_ds* names children whose DS records
    are left out while the denial chain still says they exist (missing-ds);
    *wrong_ds* children get a DS whose digest matches none of their keys.
    """

    bad_sig: bool = False
    expired: bool = False
    claim_ds: frozenset[dns.name.Name] = field(default_factory=frozenset)
    wrong_ds: frozenset[dns.name.Name] = field(default_factory=frozenset)


NO_FAULTS = SigningFaults()


def make_ds(keys: ZoneKeys) -> dns.rdtypes.ANY.DS.DS:
    """The DS of a zone's KSK, SHA-256 (RFC 4509), as its parent publishes it."""
    return dns.dnssec.make_ds(keys.origin, keys.ksk.dnskey, "SHA256")


def wrong_ds(ds: dns.rdtypes.ANY.DS.DS) -> dns.rdtypes.ANY.DS.DS:
    """The same key tag and algorithm, a digest that matches nothing."""
    return ds.replace(digest=bytes(b ^ 0xFF for b in ds.digest))  # type: ignore[attr-defined,no-any-return]


def sign_zone(zone: Zone, keys: ZoneKeys, now: float, policy: SigningPolicy = SigningPolicy(),
              child_ds: dict[dns.name.Name, list[dns.rdtypes.ANY.DS.DS]] | None = None,
              faults: SigningFaults = NO_FAULTS) -> Zone:
    """A signed copy of *zone* (any earlier DNSSEC data in it replaced).

    *child_ds* gives the DS records to publish at each delegation the signer
    knows about (an empty list: an insecure child, no DS); DS records the zone
    file holds for other delegations are kept.
    """
    child_ds = child_ds or {}
    origin = zone.origin
    soa = zone.soa
    rrsets = [r for r in zone.rrsets() if r.rdtype not in SIGNER_TYPES
              and not (r.rdtype == RdataType.DS and r.name in child_ds)]
    for cut, records in child_ds.items():
        ns = zone.get(cut, RdataType.NS)
        if ns is None or not records:
            continue
        if cut in faults.claim_ds:
            continue
        ds = dns.rrset.RRset(cut, IN, RdataType.DS)
        for record in records:
            ds.add(wrong_ds(record) if cut in faults.wrong_ds else record, ns.ttl)
        rrsets.append(ds)
    dnskey = dns.rrset.RRset(origin, IN, RdataType.DNSKEY)
    for key in keys.dnskeys:
        dnskey.add(key, soa.ttl)
    rrsets.append(dnskey)
    param = None
    if policy.nsec3:
        param = dns.rdtypes.ANY.NSEC3PARAM.NSEC3PARAM(IN, RdataType.NSEC3PARAM, 1, 0, 0, b"")
        rrsets.append(dns.rrset.from_rdata(origin, 0, param))
    unsigned = Zone(origin, zone.filename, rrsets)
    negative_ttl = min(soa.ttl, soa[0].minimum)  # type: ignore[attr-defined]  # RFC 9077
    if param is None:
        rrsets.extend(_nsec_chain(unsigned, negative_ttl, faults.claim_ds))
    else:
        rrsets.extend(_nsec3_chain(unsigned, param, negative_ttl, faults.claim_ds))

    if faults.expired:
        # A week ago: validators forgive clock skew of up to a tenth of the validity period
        # (Unbound: at most a day, val-sig-skew-max), so "a day ago" would still validate.
        inception, expiration = now - policy.validity - EXPIRED_AGO, now - EXPIRED_AGO
    else:
        inception, expiration = now - policy.inception_offset, now + policy.validity
    cuts = unsigned.cuts
    signatures = []
    for rrset in rrsets:
        if _occluded(rrset.name, origin, cuts):
            continue
        if rrset.name in cuts and rrset.rdtype not in (RdataType.DS, RdataType.NSEC):
            continue
        key = keys.ksk if rrset.rdtype == RdataType.DNSKEY else keys.zsk
        rrsig = dns.dnssec.sign(rrset, key.private, origin, key.dnskey,  # type: ignore[arg-type]
                                inception=int(inception), expiration=int(expiration))
        if faults.bad_sig and rrset.rdtype != RdataType.DNSKEY:
            rrsig = rrsig.replace(signature=_corrupt(rrsig.signature))  # type: ignore[attr-defined]
        signatures.append(dns.rrset.from_rdata(rrset.name, rrset.ttl, rrsig))
    return Zone(origin, zone.filename, rrsets + signatures)


def sign_rrset(rrset: dns.rrset.RRset, keys: ZoneKeys, now: float, policy: SigningPolicy = SigningPolicy(),
               faults: SigningFaults = NO_FAULTS) -> dns.rrset.RRset:
    """The RRSIG RRset of one RRset, made now with the zone's ZSK (and its faults, as sign_zone plays
    them): online signing, as PowerDNS signs the answers its LUA records choose per query (the
    steered names of docs/STEERING.md)."""
    if faults.expired:
        inception, expiration = now - policy.validity - EXPIRED_AGO, now - EXPIRED_AGO
    else:
        inception, expiration = now - policy.inception_offset, now + policy.validity
    rrsig = dns.dnssec.sign(rrset, keys.zsk.private, keys.origin, keys.zsk.dnskey,  # type: ignore[arg-type]
                            inception=int(inception), expiration=int(expiration))
    if faults.bad_sig:
        rrsig = rrsig.replace(signature=_corrupt(rrsig.signature))  # type: ignore[attr-defined]
    return dns.rrset.from_rdata(rrset.name, rrset.ttl, rrsig)


def _corrupt(signature: bytes) -> bytes:
    return bytes(b ^ 0x5A for b in signature[:8]) + signature[8:]


def _occluded(name: dns.name.Name, origin: dns.name.Name, cuts: frozenset[dns.name.Name]) -> bool:
    """True below a zone cut: glue and other data that is not this zone's to sign."""
    while name != origin and len(name) > len(origin):
        name = name.parent()
        if name in cuts:
            return True
    return False


def _authoritative_names(zone: Zone) -> list[dns.name.Name]:
    return sorted(name for name in zone.names if not _occluded(name, zone.origin, zone.cuts))


def _nsec_chain(zone: Zone, ttl: int, claim_ds: Iterable[dns.name.Name]) -> list[dns.rrset.RRset]:
    """RFC 4035 §2.3: one NSEC per name that owns records, in canonical order, the last pointing at the apex."""
    owners = [name for name in _authoritative_names(zone) if name in zone.nodes]
    claimed = set(claim_ds)
    chain = []
    for index, owner in enumerate(owners):
        types = set(zone.nodes[owner]) | {RdataType.NSEC, RdataType.RRSIG}
        if owner in claimed:
            types.add(RdataType.DS)
        nsec = dns.rdtypes.ANY.NSEC.NSEC(IN, RdataType.NSEC, owners[(index + 1) % len(owners)],
                                         dns.rdtypes.ANY.NSEC.Bitmap.from_rdtypes(sorted(types)))
        chain.append(dns.rrset.from_rdata(owner, ttl, nsec))
    return chain


def _nsec3_chain(zone: Zone, param: dns.rdtypes.ANY.NSEC3PARAM.NSEC3PARAM, ttl: int,
                 claim_ds: Iterable[dns.name.Name]) -> list[dns.rrset.RRset]:
    """RFC 5155 §7.1: one NSEC3 per authoritative name, empty non-terminals and insecure cuts included."""
    claimed = set(claim_ds)
    entries = []
    for name in _authoritative_names(zone):
        node = zone.nodes.get(name, {})
        types = set(node)
        if name in claimed:
            types.add(RdataType.DS)
        signed = node and (name not in zone.cuts or RdataType.DS in node or name in claimed)
        if signed:
            types.add(RdataType.RRSIG)
        entries.append((nsec3_label(name, param), types))
    entries.sort()
    chain = []
    for index, (label, types) in enumerate(entries):
        following = entries[(index + 1) % len(entries)][0]
        nsec3 = dns.rdtypes.ANY.NSEC3.NSEC3(
            IN, RdataType.NSEC3, param.algorithm, param.flags, param.iterations, param.salt,
            base64.b32decode(following.decode().upper().translate(_BASE32HEX)),
            dns.rdtypes.ANY.NSEC3.Bitmap.from_rdtypes(sorted(types)))
        chain.append(dns.rrset.from_rdata(dns.name.Name((label,)) + zone.origin, ttl, nsec3))
    return chain


def zone_text(zone: Zone) -> str:
    """The zone as a master file NSD, BIND and dnslab load: the SOA first, then by name."""
    rrsets = sorted(zone.rrsets(), key=lambda r: (r.name != zone.origin or r.rdtype != RdataType.SOA,
                                                   r.name, r.rdtype, r.covers))
    lines = [f"; zone {zone.origin} signed by dnslab", f"$ORIGIN {zone.origin}"]
    lines.extend(rrset.to_text() for rrset in rrsets)
    return "\n".join(lines) + "\n"
