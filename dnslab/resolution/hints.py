"""Root hints in named.root format: where a resolver starts when its cache is empty."""

from __future__ import annotations

from pathlib import Path

import dns.name
import dns.rdatatype

from dnslab.core.errors import ZoneError
from dnslab.core.zone import read_records

RootHints = list[tuple[dns.name.Name, str]]


def load_root_hints(path: str | Path) -> RootHints:
    """(name server, address) pairs for the root's NS names, as BIND and Unbound read them.

    The file is master-file syntax (IANA's named.root, or the lab's own), so the
    zone reader parses it and errors name file and line.
    """
    records = read_records(path, dns.name.root)
    ns_names = [r.rdata.target for r in records  # type: ignore[attr-defined]
                if r.name == dns.name.root and r.rdata.rdtype == dns.rdatatype.NS]
    if not ns_names:
        raise ZoneError(str(path), 1, "no NS records for the root ('.') in the root hints")
    hints: RootHints = []
    for name in dict.fromkeys(ns_names):
        for record in records:
            if record.name == name and record.rdata.rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
                hints.append((name, record.rdata.address))  # type: ignore[attr-defined]
    if not hints:
        raise ZoneError(str(path), 1, "the root hints give no address for any root name server")
    return hints


# Root hints carry the TTL of the real named.root file (RFC 8109 priming).
HINTS_TTL = 3600000


def root_hints_text(hints: list[tuple[dns.name.Name, str]]) -> str:
    """The root hints in the layout of named.root, which BIND, Unbound and dnslab read."""
    lines = ["; Root hints for this dnslab lab, in the format of named.root.",
             "; Give this file to a resolver instead of the real root hints."]
    for name in dict.fromkeys(name for name, _ in hints):
        lines.append(f"{'.':<27} {HINTS_TTL:<10} IN  NS    {name}")
    for name, address in hints:
        rdtype = "AAAA" if ":" in address else "A"
        lines.append(f"{name.to_text():<27} {HINTS_TTL:<10} IN  {rdtype:<5} {address}")
    return "\n".join(lines) + "\n"
