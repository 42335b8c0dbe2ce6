"""Re-sign a Deckard scenario's DNSSEC records with a fresh RSASHA256 key, for comparing resolvers.

usage: python3 tools/deckard/resign_rpl.py IN.rpl OUT.rpl

Why: the scenarios taken from Unbound's testbound that sign with DSA (algorithm 3, key tag 2854)
carry 47-byte DER blobs as signatures, not RFC 2536's T|R|S form; no validator verifies them
(dnslab's SERVFAIL there is "signature crypto failed" for the zone's DNSKEY set), and Knot
Resolver 5.6 has no DSA at all. So neither resolver reaches what such a scenario means to test.
Re-signed with an algorithm every validator has, the scenario shows how a resolver walks it
(docs/RESOLVER.md, "Checked against Deckard": val_deleg_nons, val_nsec3_nods_badsig).

What changes: every DNSKEY becomes the new key, every DS (the trust anchor too) its SHA-256 DS,
and every live RRSIG a real signature over the records of the same entry, keeping its owner,
labels, original TTL, inception, expiration and signer (so an expired signature stays expired).
An RRSIG whose RRset is not in its entry keeps its bytes under the new algorithm and key tag
(it cannot verify). Commented lines are left alone. Not for the repository's tests: a tool to
look at resolvers with, like the rest of tools/deckard.
"""

from __future__ import annotations

import re
import sys

import dns.dnssec
import dns.exception
import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset
from cryptography.hazmat.primitives.asymmetric import rsa

RdataType = dns.rdatatype.RdataType
# Signs and makes SHA-1 DS records too, whatever dnspython's default policy says.
_POLICY = dns.dnssec.SimpleDeny(deny_sign=set(), deny_validate=set(), deny_create_ds=set(),
                                deny_validate_ds=set())
_ANCHOR = re.compile(r'(\s*trust-anchor:\s*")([^"]*)(".*)')
_NOT_RECORDS = ("SECTION", "MATCH", "ADJUST", "REPLY", "ENTRY_", "RANGE_", "STEP", "TIME_", "CONFIG_")


def _record(line: str) -> tuple[dns.name.Name, int, dns.rdata.Rdata] | None:
    """A record line of an ENTRY as (owner, TTL, rdata); None for a blank line, a comment or a question."""
    body = line.split(";", 1)[0].strip()
    if not body or body.startswith(_NOT_RECORDS):
        return None
    tokens = body.split()
    owner, i, ttl = dns.name.from_text(tokens[0]), 1, 3600
    if tokens[i].isdigit():
        ttl, i = int(tokens[i]), i + 1
    if tokens[i].upper() == "IN":
        i += 1
    if len(tokens) <= i + 1:
        return None  # a question: a name and a type, no data
    rdtype = dns.rdatatype.from_text(tokens[i])
    return owner, ttl, dns.rdata.from_text(dns.rdataclass.IN, rdtype, " ".join(tokens[i + 1:]))


def _line(owner: dns.name.Name, ttl: int, rdata: dns.rdata.Rdata) -> str:
    return f"{owner}\t{ttl}\tIN\t{dns.rdatatype.to_text(rdata.rdtype)}\t{rdata.to_text()}"


class Resigner:
    def __init__(self) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.dnskey = dns.dnssec.make_dnskey(self.key.public_key(), dns.dnssec.Algorithm.RSASHA256, flags=256)

    def replaced(self, owner: dns.name.Name, rdata: dns.rdata.Rdata) -> dns.rdata.Rdata:
        """The record as the re-signed zone has it (keys and DS records change, the rest stays)."""
        if rdata.rdtype == RdataType.DNSKEY:
            return self.dnskey
        if rdata.rdtype == RdataType.DS:
            return dns.dnssec.make_ds(owner, self.dnskey, "SHA256", policy=_POLICY)
        return rdata

    def entry(self, lines: list[str], indexes: list[int]) -> None:
        """Re-sign one ENTRY's records in place: each RRSIG signs the RRset of its entry."""
        parsed = {j: _record(lines[j]) for j in indexes}
        rrsets: dict[tuple[dns.name.Name, int], list[dns.rdata.Rdata]] = {}
        for record in parsed.values():
            if record is not None and record[2].rdtype != RdataType.RRSIG:
                rdata = self.replaced(record[0], record[2])
                kept = rrsets.setdefault((record[0], rdata.rdtype), [])
                if rdata not in kept:
                    kept.append(rdata)
        for j, record in parsed.items():
            if record is None:
                continue
            owner, ttl, rdata = record
            if rdata.rdtype != RdataType.RRSIG:
                if rdata.rdtype in (RdataType.DNSKEY, RdataType.DS):  # the rest stays as written
                    lines[j] = _line(owner, ttl, self.replaced(owner, rdata))
                continue
            covered = rrsets.get((owner, rdata.type_covered))  # type: ignore[attr-defined]
            if covered:
                rrset = dns.rrset.from_rdata_list(owner, rdata.original_ttl, covered)  # type: ignore[attr-defined]
                sig = dns.dnssec.sign(rrset, self.key, rdata.signer, self.dnskey,  # type: ignore[attr-defined]
                                      inception=rdata.inception, expiration=rdata.expiration,  # type: ignore[attr-defined]
                                      policy=_POLICY)
            else:
                sig = rdata.replace(algorithm=dns.dnssec.Algorithm.RSASHA256,
                                    key_tag=dns.dnssec.key_id(self.dnskey))
            lines[j] = _line(owner, ttl, sig)

    def scenario(self, text: str) -> str:
        lines: list[str] = []
        entry: list[int] | None = None
        for line in text.splitlines():
            anchor = _ANCHOR.match(line)
            if anchor:
                record = _record(anchor.group(2))
                if record is not None:
                    owner, ttl, rdata = record
                    line = anchor.group(1) + _line(owner, ttl, self.replaced(owner, rdata)) + anchor.group(3)
            lines.append(line)
            word = line.strip()
            if word.startswith("ENTRY_BEGIN"):
                entry = []
            elif word.startswith("ENTRY_END") and entry is not None:
                self.entry(lines, entry)
                entry = None
            elif entry is not None and word and not word.startswith(";"):
                entry.append(len(lines) - 1)
        return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print("usage: resign_rpl.py IN.rpl OUT.rpl", file=sys.stderr)
        return 2
    try:
        with open(argv[1], encoding="utf-8") as source:
            text = source.read()
        result = Resigner().scenario(text)
        with open(argv[2], "w", encoding="utf-8") as out:
            out.write(result)
    except (OSError, UnicodeDecodeError, dns.exception.DNSException, ValueError, IndexError) as error:
        print(f"resign_rpl.py: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
