"""A server's identity, as the root servers give it: NSID (RFC 5001) and CHAOS TXT names.

Which instance of an anycast address answered is invisible in an ordinary reply;
operators therefore let a server say who it is, two ways (RFC 4892):

- NSID (RFC 5001): a query carrying an empty NSID option (code 3) gets the
  server's identity in its reply's OPT record, whatever else the reply says;
- CHAOS class TXT queries for `hostname.bind.` and `id.server.` (identity) and
  `version.bind.` and `version.server.` (software version).

The replies copy NSD 4's byte for byte (checked with `nsd` 4.6.1, `identity:`,
`nsid:` and `version:` set): NOERROR, AA clear, one TXT record of class CH with
TTL 0; qtype TXT or ANY only; any other CHAOS question is REFUSED (with EDE 21
under EDNS); NSID in every reply to a query that asked, except BADVERS, and before
an Extended DNS Error.  Sans-I/O: a few pure functions over wire facts.
"""

from __future__ import annotations

import dns.name

from dnslab.core.wire import skip_name

NSID = 3  # the EDNS option code (RFC 5001 §2.3)
CHAOS = 3  # the class (RFC 1035 §3.2.4)

_IDENTITY_NAMES = frozenset({dns.name.from_text("hostname.bind."), dns.name.from_text("id.server.")})
_VERSION_NAMES = frozenset({dns.name.from_text("version.bind."), dns.name.from_text("version.server.")})
_TXT, _ANY = 16, 255


def chaos_text(qname: dns.name.Name, qtype: int, identity: str, version: str) -> str | None:
    """The TXT string a CHAOS question is answered with, or None: refuse it (as NSD does)."""
    if qtype not in (_TXT, _ANY):
        return None
    if qname in _IDENTITY_NAMES:  # dns.name compares case-insensitively
        return identity
    if qname in _VERSION_NAMES:
        return version
    return None


def asks_for_nsid(options: list[tuple[int, bytes]]) -> bool:
    """Whether a query's EDNS options ask for NSID (the option's content is ignored, as NSD does)."""
    return any(code == NSID for code, _ in options)


def has_options(wire: bytes, key: bytes) -> bool:
    """Whether a query the fast path keyed (`core.wire.query_key`) carries EDNS options at all.

    The key leaves the options out (they seldom change an answer), but NSID does: a
    query with options is answered afresh, never from or into the ready replies.  One
    length comparison, so the fast path loses nothing for queries without options.
    The key is 5 bytes of flags and EDNS facts, then the question, which ends 11 bytes
    (the OPT record's fixed part) before the options in an EDNS query.
    """
    return key[2:3] != b"-" and len(wire) > 12 + len(key) - 5 + 11


def identity_key(wire: bytes, key: bytes, full_key: bytes, identity: str) -> bytes | None:
    """The fast path's key for a reply that may name the server, or None: answer it afresh.

    No options and not CHAOS: the key as it is.  Only an empty NSID option (what resolvers with
    BIND's request-nsid, and dig +nsid, send), or a CHAOS question: the key plus the identity given,
    since the reply carries it.  Any other option: None (it is not part of the key).
    """
    chaos = is_chaos(key)
    if has_options(wire, key):
        if wire[12 + len(key) - 5 + 11:] != _NSID_ONLY:
            return None
        return full_key + b"N" + identity.encode()
    return full_key + b"C" + identity.encode() if chaos else full_key


_NSID_ONLY = b"\x00\x03\x00\x00"


def is_chaos(key: bytes) -> bool:
    """Whether a keyed query asks a CHAOS-class question (its last two bytes are the class)."""
    return key[-2:] == b"\x00\x03"


def edns_options(wire: bytes) -> list[tuple[int, bytes]]:
    """The (code, data) options of a query's OPT record, read from the wire.

    dnslib's reader drops an option with no data (an empty NSID request is exactly
    that), so the options are read here.  Only called for a query the parser has
    already accepted; anything short or odd gives no options rather than an error.
    """
    try:
        counts = [int.from_bytes(wire[i:i + 2], "big") for i in (4, 6, 8, 10)]
        offset = 12
        for _ in range(counts[0]):
            offset = skip_name(wire, offset) + 4
        for _ in range(sum(counts[1:])):
            offset = skip_name(wire, offset)
            rtype = int.from_bytes(wire[offset:offset + 2], "big")
            rdlength = int.from_bytes(wire[offset + 8:offset + 10], "big")
            start, offset = offset + 10, offset + 10 + rdlength
            if rtype == 41:
                return _options(wire[start:offset])
    except IndexError:
        return []
    return []


def _options(rdata: bytes) -> list[tuple[int, bytes]]:
    found = []
    offset = 0
    while offset + 4 <= len(rdata):
        code = int.from_bytes(rdata[offset:offset + 2], "big")
        length = int.from_bytes(rdata[offset + 2:offset + 4], "big")
        found.append((code, rdata[offset + 4:offset + 4 + length]))
        offset += 4 + length
    return found

