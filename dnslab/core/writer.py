"""Writing a resolver's reply to its client: dnspython's exact bytes, without dnspython's renderer.

`dns.message.Message.to_wire` makes a Name object for every suffix of every
name it writes (its compression table is keyed by Names, hashed and compared
in Python), goes through a Renderer, a BytesIO and a context manager per
RRset: about 32 µs for a one-record answer, a twentieth of a cold name's CPU.
This writes the same bytes (the same compression choices: each name's
suffixes looked up longest first and remembered at their first offset below
0x4000; names inside rdata compressed only where dnspython's rdata writers
compress them, since those writers still write every rdata but IPv4 addresses),
with the table keyed by lowercased label tuples.

Only the common reply is written here: a QUERY reply without TSIG, padding or
EDNS options, every RRset non-empty, that fits *limit*.  Anything else gets
None, and the caller renders it with dnspython (which truncates a reply too
large).  The differential test (tests/test_reader.py) holds it to dnspython's
bytes over every reply of the signed sample lab.
"""

from __future__ import annotations

import io
import struct

import dns.message
import dns.name
import dns.rdatatype

_HEADER = struct.Struct("!HHHHHH")
_RR = struct.Struct("!HHI")
_U16 = struct.Struct("!H")
_QUESTION = struct.Struct("!HH")
_OPT = struct.Struct("!BHHIH")  # root owner, TYPE, CLASS (UDP size), TTL (extended flags), RDLENGTH
_A = dns.rdatatype.A
_POINTER_LIMIT = 0x3FFF


class _Table(dict):  # type: ignore[type-arg]
    """The compression table, keyed by lowercased label tuples; dnspython's rdata writers use it too
    (they ask and store by Name, which is folded here)."""

    def get(self, name, default=None):  # type: ignore[no-untyped-def,override]
        return dict.get(self, tuple([label.lower() for label in name.labels]), default)

    def __setitem__(self, name, offset):  # type: ignore[no-untyped-def]
        dict.__setitem__(self, tuple([label.lower() for label in name.labels]), offset)


def write_reply(message: dns.message.Message, limit: int) -> bytes | None:
    """*message* as `message.to_wire(max_size=limit, want_shuffle=False)` writes it, or None (see above)."""
    if (message.tsig is not None or message.pad or message.opcode() != 0
            or (message.opt is not None and message.options)):
        return None
    out = io.BytesIO()
    out.write(bytes(12))
    table = _Table()
    for question in message.question:
        _name(out, question.name.labels, table)
        out.write(_QUESTION.pack(question.rdtype, question.rdclass))
    counts = [len(message.question), 0, 0, 0]
    for index, section in ((1, message.answer), (2, message.authority), (3, message.additional)):
        for rrset in section:
            if not rrset:
                return None  # an empty RRset (an UPDATE's "delete"): dnspython's business
            labels, rdtype, rdclass = rrset.name.labels, rrset.rdtype, rrset.rdclass
            header = _RR.pack(rdtype, rdclass, rrset.ttl)
            for rdata in rrset:
                _name(out, labels, table)
                out.write(header)
                if rdtype == _A and rdclass == 1:
                    # dnspython keeps an A record's address as a canonical dotted quad
                    out.write(b"\x00\x04" + bytes(map(int, rdata.address.split("."))))  # type: ignore[attr-defined]
                else:
                    start = out.tell()
                    out.write(b"\x00\x00")
                    rdata.to_wire(out, table, None)  # type: ignore[arg-type]
                    end = out.tell()
                    out.seek(start)
                    out.write(_U16.pack(end - start - 2))
                    out.seek(end)
            counts[index] += len(rrset)
    if message.opt is not None:
        out.write(_OPT.pack(0, dns.rdatatype.OPT, message.payload, message.ednsflags, 0))  # no options
        counts[3] += 1
    if out.tell() > limit:
        return None  # dnspython truncates it (TC=1, no records)
    out.seek(0)
    out.write(_HEADER.pack(message.id, message.flags, *counts))
    return out.getvalue()


def _name(out: io.BytesIO, labels: tuple[bytes, ...], table: _Table) -> None:
    """An owner name, compressed as dnspython's Name.to_wire compresses it."""
    folded = tuple([label.lower() for label in labels])
    for index in range(len(labels)):
        suffix = folded[index:]
        offset = dict.get(table, suffix)
        if offset is not None:
            out.write(_U16.pack(0xC000 + offset))
            return
        if len(suffix) > 1:
            here = out.tell()
            if here <= _POINTER_LIMIT:
                dict.__setitem__(table, suffix, here)
        label = labels[index]
        out.write(bytes((len(label),)) + label)
