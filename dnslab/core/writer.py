"""Writing a resolver's reply to its client: dnspython's exact bytes, without dnspython's renderer.

`dns.message.Message.to_wire` makes a Name object for every suffix of every
name it writes (its compression table is keyed by Names, hashed and compared
in Python), goes through a Renderer, a BytesIO and a context manager per
RRset: about 32 µs for a one-record answer, a twentieth of a cold name's CPU.
This writes the same bytes (the same compression choices: each name's
suffixes looked up longest first and remembered at their first offset below
0x4000; names inside rdata compressed only where dnspython's rdata writers
compress them), with the table keyed by lowercased label tuples, into one
bytearray.  IPv4 addresses and the one name of an NS, CNAME or PTR record are
written here (dnspython's Name.to_wire makes a Name for every suffix it looks
up); every other rdata by dnspython's own rdata writer.

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
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.nsbase

from dnslab.core.edns import opt_rdata
from dnslab.core.names import folded
from dnslab.core.wire import OPCODE_MASK

_HEADER = struct.Struct("!HHHHHH")
_RR = struct.Struct("!HHI")
_U16 = struct.Struct("!H")
_QUESTION = struct.Struct("!HH")
_OPT = struct.Struct("!BHHIH")  # root owner, TYPE, CLASS (UDP size), TTL (extended flags), RDLENGTH
_A = int(dns.rdatatype.A)
_IN = int(dns.rdataclass.IN)
_POINTER_LIMIT = 0x3FFF
_A_LENGTH = b"\x00\x04"


class _Table(dict):  # type: ignore[type-arg]
    """The compression table, keyed by lowercased label tuples; dnspython's rdata writers use it too
    (they ask and store by Name, which is folded here)."""

    def get(self, name, default=None):  # type: ignore[no-untyped-def,override]
        return dict.get(self, folded(name.labels), default)

    def __setitem__(self, name, offset):  # type: ignore[no-untyped-def]
        dict.__setitem__(self, folded(name.labels), offset)


def _one_name_types() -> frozenset[int]:
    """The IN types whose rdata is one name, compressed as an owner name is (dnspython's NSBase: NS, CNAME, PTR)."""
    found = set()
    for rdtype in (dns.rdatatype.NS, dns.rdatatype.CNAME, dns.rdatatype.PTR):
        cls = dns.rdata.get_rdata_class(dns.rdataclass.IN, rdtype)
        if (issubclass(cls, dns.rdtypes.nsbase.NSBase) and cls._to_wire is dns.rdtypes.nsbase.NSBase._to_wire
                and {slot for kind in cls.__mro__ for slot in getattr(kind, "__slots__", ())}
                == {"rdclass", "rdtype", "rdcomment", "target"}):
            found.add(int(rdtype))
    return frozenset(found)


_ONE_NAME = _one_name_types()


def write_reply(message: dns.message.Message, limit: int) -> bytes | None:
    """*message* as `message.to_wire(max_size=limit, want_shuffle=False)` writes it, or None (see above)."""
    opt = opt_rdata(message)
    if (message.tsig is not None or message.pad or int(message.flags) & OPCODE_MASK
            or (opt is None and message.opt is not None) or (opt is not None and opt.options)):
        return None  # (an OPT RRset without its record: dnspython's business too)
    out = bytearray(12)
    table = _Table()
    for question in message.question:
        _name(out, question.name.labels, table)
        out += _QUESTION.pack(question.rdtype, question.rdclass)
    counts = [len(message.question), 0, 0, 0]
    for index, section in ((1, message.answer), (2, message.authority), (3, message.additional)):
        for rrset in section:
            if not rrset:
                return None  # an empty RRset (an UPDATE's "delete"): dnspython's business
            labels, rdtype, rdclass = rrset.name.labels, rrset.rdtype, rrset.rdclass
            header = _RR.pack(rdtype, rdclass, rrset.ttl)
            one_name = rdclass == _IN and rdtype in _ONE_NAME
            for rdata in rrset:
                _name(out, labels, table)
                out += header
                if rdtype == _A and rdclass == _IN:
                    # dnspython keeps an A record's address as a canonical dotted quad
                    out += _A_LENGTH
                    out += bytes(map(int, rdata.address.split(".")))  # type: ignore[attr-defined]
                    continue
                start = len(out)
                out += b"\x00\x00"
                target = rdata.target.labels if one_name else None  # type: ignore[attr-defined]
                if target and target[-1] == b"":
                    _name(out, target, table)
                else:
                    # dnspython's writer, on a file whose offsets are the message's (compression
                    # pointers and the table are by offset); some writers seek back in what they wrote
                    file = io.BytesIO()
                    file.seek(start + 2)
                    rdata.to_wire(file, table, None)  # type: ignore[arg-type]
                    out += file.getbuffer()[start + 2:]
                out[start:start + 2] = _U16.pack(len(out) - start - 2)
            counts[index] += len(rrset)
    if opt is not None:
        out += _OPT.pack(0, dns.rdatatype.OPT, opt.payload, message.ednsflags, 0)  # no options
        counts[3] += 1
    if len(out) > limit:
        return None  # dnspython truncates it (TC=1, no records)
    out[:12] = _HEADER.pack(message.id, message.flags, *counts)
    return bytes(out)


def _name(out: bytearray, labels: tuple[bytes, ...], table: _Table) -> None:
    """An absolute name, compressed as dnspython's Name.to_wire compresses it (each suffix but the
    root remembered at its first offset, the longest one already there written as a pointer)."""
    lower = folded(labels)
    index = 0
    for label in labels:
        suffix = lower[index:] if index else lower
        offset = _get(table, suffix)
        if offset is not None:
            out += _U16.pack(0xC000 + offset)
            return
        index += 1
        if label:  # not the root: an absolute name's only empty label is its last
            here = len(out)
            if here <= _POINTER_LIMIT:
                _put(table, suffix, here)
        out.append(len(label))
        out += label


_get = dict.get  # the table's own methods (its get and __setitem__ fold Names for dnspython's writers)
_put = dict.__setitem__
