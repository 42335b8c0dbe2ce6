"""Signed zones for validator tests: real keys and signatures, no network.

A three-level hierarchy (root, com, example.com and an unsigned insecure.com)
is signed with dnspython and answered by brute force, the way a test can be
sure of: every NSEC/NSEC3 in a proof is found by checking every record.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field

import dns.dnssec
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rdata
import dns.rdtypes.ANY.NSEC3PARAM
import dns.rrset
import dns.zone
from cryptography.hazmat.primitives.asymmetric import ec

from dnslab.resolution.cache import NegativeKind
from dnslab.resolution.iterator import Evidence, Result
from dnslab.resolution.validator import Fetch

NOW = 1_800_000_000  # a fixed "now" for the signatures' validity window
Name = dns.name.Name
T = dns.rdatatype.RdataType

ZONES = {
    ".": """
$TTL 3600
@ SOA a.root. admin. 1 7200 3600 1209600 300
@ NS a.root.
a.root. A 127.0.0.1
com. NS ns.com.
ns.com. A 127.0.0.2
""",
    "com.": """
$TTL 3600
@ SOA ns.com. admin.com. 1 7200 3600 1209600 300
@ NS ns.com.
ns A 127.0.0.2
example NS ns.example.com.
ns.example A 127.0.0.3
insecure NS ns.insecure.com.
ns.insecure A 127.0.0.4
""",
    "example.com.": """
$TTL 3600
@ SOA ns.example.com. admin.example.com. 1 7200 3600 1209600 300
@ NS ns
ns A 127.0.0.3
www A 192.0.2.1
www A 192.0.2.2
alias CNAME www
*.wild A 192.0.2.9
a.b.deep A 192.0.2.5
old DNAME www.example.com.
""",
    "insecure.com.": """
$TTL 3600
@ SOA ns.insecure.com. admin.insecure.com. 1 7200 3600 1209600 300
@ NS ns
ns A 127.0.0.4
www A 192.0.2.7
""",
}
SIGNED = (".", "com.", "example.com.")


@dataclass
class Hierarchy:
    zones: dict[Name, dns.zone.Zone] = field(default_factory=dict)
    ksk: dict[Name, object] = field(default_factory=dict)   # the KSK DNSKEY rdata by zone
    nsec3: bool = False

    def anchor(self) -> dns.rrset.RRset:
        """The root KSK's DS: what `dnslab up --dnssec` writes to its anchor file."""
        ds = dns.dnssec.make_ds(dns.name.root, self.ksk[dns.name.root], "SHA256")
        return dns.rrset.from_rdata(dns.name.root, 86400, ds)

    # --- answering like an authoritative server, by brute force -------------------------------

    def zone_of(self, name: Name) -> dns.zone.Zone:
        best = max((z for o, z in self.zones.items() if name.is_subdomain(o)), key=lambda z: len(z.origin))
        return best

    def rrset(self, zone: dns.zone.Zone, name: Name, rdtype: int) -> tuple[dns.rrset.RRset, dns.rrset.RRset | None]:
        data = zone.find_rrset(name, rdtype)
        sigs = zone.get_rrset(name, T.RRSIG, rdtype)
        return data, sigs

    def answer(self, name: Name, rdtype: int, zone: dns.zone.Zone | None = None) -> Result:
        zone = zone or self.zone_of(name)
        data, sigs = self.rrset(zone, name, rdtype)
        return Result(dns.rcode.NOERROR, [data], evidence=[Evidence(data, sigs, zone.origin)])

    def negative(self, name: Name, rdtype: int, zone: dns.zone.Zone | None = None,
                 kind: NegativeKind = NegativeKind.NODATA, proof: tuple[dns.rrset.RRset, ...] | None = None) -> Result:
        zone = zone or self.zone_of(name)
        soa, soa_sigs = self.rrset(zone, zone.origin, T.SOA)
        if proof is None:
            proof = self.proof(zone, name, kind)
        rcode = dns.rcode.NXDOMAIN if kind is NegativeKind.NXDOMAIN else dns.rcode.NOERROR
        return Result(rcode, [], [soa], denial=Evidence(soa, soa_sigs, zone.origin, proof, negative=kind))

    def proof(self, zone: dns.zone.Zone, name: Name, kind: NegativeKind) -> tuple[dns.rrset.RRset, ...]:
        """NSEC: the record at the name (NODATA) or covering it, and the one covering the wildcard."""
        found: list[dns.rrset.RRset] = []
        rdtype = T.NSEC3 if self.nsec3 else T.NSEC
        records = [zone.find_rrset(n, rdtype) for n, node in zone.nodes.items()
                   if node.get_rdataset(dns.rdataclass.IN, rdtype) is not None]
        wanted = [name]
        encloser = name
        while not _exists(zone, encloser):
            encloser = encloser.parent()
        wanted.append(dns.name.Name((b"*",) + encloser.labels))
        if self.nsec3:
            wanted = [encloser, name if kind is NegativeKind.NODATA else _next_closer(name, encloser),
                      dns.name.Name((b"*",) + encloser.labels)]
        for target in wanted:
            for record in records:
                if self._proves(record, target, zone) and record not in found:
                    found.append(record)
        sigs = [zone.get_rrset(r.name, T.RRSIG, rdtype) for r in found]
        return tuple(found) + tuple(s for s in sigs if s is not None)

    def _proves(self, record: dns.rrset.RRset, target: Name, zone: dns.zone.Zone) -> bool:
        if self.nsec3:
            rd = record[0]
            hashed = dns.dnssec.nsec3_hash(target, rd.salt, rd.iterations, rd.algorithm).lower()
            owner = record.name.labels[0].decode().lower()
            after = base64.b32encode(rd.next).translate(
                bytes.maketrans(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", b"0123456789ABCDEFGHIJKLMNOPQRSTUV")
            ).decode().lower()
            return hashed == owner or ((owner < hashed < after) if owner < after else
                                       (hashed > owner or hashed < after))
        owner, after = record.name, record[0].next
        if target == owner:
            return True
        return (owner < target < after) if owner < after else (target > owner or target < after)

    def fetch(self, need: Fetch) -> Result:
        """What the iterator would bring the validator: the RRset, or the signed denial."""
        if need.rdtype == T.DS:
            parent = self.zone_of(need.name.parent())
            if parent.get_rrset(need.name, T.DS) is not None:
                return self.answer(need.name, T.DS, parent)
            return self.negative(need.name, T.DS, parent)
        zone = self.zones[need.name]
        return self.answer(need.name, need.rdtype, zone)


def _exists(zone: dns.zone.Zone, name: Name) -> bool:
    return any(n.derelativize(zone.origin).is_subdomain(name) for n in zone.nodes) or name == zone.origin


def _next_closer(name: Name, encloser: Name) -> Name:
    return dns.name.Name(name.labels[len(name) - len(encloser) - 1:])


def build(nsec3: bool = False, tamper: str | None = None, inception: int = NOW - 3600,
          expiration: int = NOW + 14 * 86400, iterations: int = 0, optout: bool = False) -> Hierarchy:
    """Sign the hierarchy bottom-up (each parent publishes its child's DS).

    *tamper*: "wrong-ds" publishes a DS for example.com that matches no key.
    *iterations*: the NSEC3 hash iterations (RFC 9276 says 0); *optout*: set the NSEC3 Opt-Out flag.
    """
    hierarchy = Hierarchy(nsec3=nsec3)
    texts = dict(ZONES)
    keys: dict[str, list] = {}
    for origin in SIGNED:
        pairs = []
        for flags in (257, 256):
            private = ec.generate_private_key(ec.SECP256R1())
            dnskey = dns.dnssec.make_dnskey(private.public_key(), dns.dnssec.Algorithm.ECDSAP256SHA256, flags=flags)
            pairs.append((private, dnskey))
        keys[origin] = pairs
    for child, parent in (("example.com.", "com."), ("com.", ".")):
        ksk = keys[child][0][1]
        ds = dns.dnssec.make_ds(child, ksk, "SHA256")
        if tamper == "wrong-ds" and child == "example.com.":
            ds = ds.replace(digest=bytes(32))
        texts[parent] += f"{child} DS {ds.to_text()}\n"
    for origin, text in texts.items():
        zone = dns.zone.from_text(text, origin, relativize=False)
        if origin in SIGNED and nsec3:
            _sign_nsec3(zone, keys[origin], inception, expiration, iterations, optout)
        elif origin in SIGNED:
            dns.dnssec.sign_zone(zone, keys=keys[origin], inception=inception, expiration=expiration)
        if origin in SIGNED:
            hierarchy.ksk[zone.origin] = keys[origin][0][1]
        hierarchy.zones[zone.origin] = zone
    return hierarchy


def _sign_nsec3(zone: dns.zone.Zone, keys: list, inception: int, expiration: int, iterations: int = 0,
                optout: bool = False) -> None:
    """NSEC3 (RFC 5155, RFC 9276 parameters: SHA-1, no salt, 0 iterations unless asked) by hand:
    dnspython's sign_zone does not build NSEC3 chains."""
    origin = zone.origin
    (ksk_private, ksk), (zsk_private, zsk) = keys
    with zone.writer() as txn:
        for key in (ksk, zsk):
            txn.add(origin, 3600, key)
        txn.add(origin, 3600, dns.rdtypes.ANY.NSEC3PARAM.NSEC3PARAM(dns.rdataclass.IN, T.NSEC3PARAM, 1, 0, iterations, b""))
    cuts = {n for n, node in zone.nodes.items() if n != origin and node.get_rdataset(dns.rdataclass.IN, T.NS)}
    names: dict[Name, set[int]] = {}
    for name, node in zone.nodes.items():
        if any(name.is_subdomain(cut) and name != cut for cut in cuts):
            continue  # glue
        types = {rds.rdtype for rds in node}
        if name not in cuts or T.DS in types:
            types.add(T.RRSIG)
        names[name] = types
        parent = name
        while parent != origin:  # empty non-terminals get an NSEC3 with no types
            parent = parent.parent()
            names.setdefault(parent, set())
    hashed = sorted((dns.dnssec.nsec3_hash(n, b"", iterations, 1).lower(), n) for n in names)
    to_b32 = bytes.maketrans(b"0123456789ABCDEFGHIJKLMNOPQRSTUV", b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")
    with zone.writer() as txn:
        for index, (digest, name) in enumerate(hashed):
            following = hashed[(index + 1) % len(hashed)][0]
            next_hash = base64.b32decode(following.upper().translate(to_b32))
            text = f"1 {int(optout)} {iterations} - {following.upper()} " + " ".join(dns.rdatatype.to_text(t) for t in sorted(names[name]))
            rdata = dns.rdata.from_text("IN", "NSEC3", text)
            assert rdata.next == next_hash
            txn.add(dns.name.Name((digest.encode(),) + origin.labels), 300, rdata)
    with zone.writer() as txn:
        for name, node in list(zone.nodes.items()):
            if any(name.is_subdomain(cut) and name != cut for cut in cuts):
                continue
            for rdataset in list(node):
                if rdataset.rdtype == T.RRSIG or (name in cuts and rdataset.rdtype != T.DS):
                    continue
                rrset = dns.rrset.RRset(name, rdataset.rdclass, rdataset.rdtype)
                rrset.update(rdataset)
                private, public = (ksk_private, ksk) if rdataset.rdtype == T.DNSKEY else (zsk_private, zsk)
                sig = dns.dnssec.sign(rrset, private, origin, public, inception=inception, expiration=expiration)
                txn.add(name, rdataset.ttl, sig)
