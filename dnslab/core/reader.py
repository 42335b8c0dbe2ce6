"""Reading an upstream reply into dnspython RRsets, without dns.message.

The resolver reads one reply per upstream query.  dns.message.from_wire
built a whole Message for each (enum conversions, an RRset index, a Parser
object per name, every name built and validated afresh): about a quarter of
a cold name's CPU.  This reader does the same reading for what the resolver
looks at (header flags, the rcode with its EDNS bits, the EDNS options and the
three record sections, each a list of `dns.rrset.RRset` merged as dnspython
merges them) and keeps the records in the forms the cache, the classifier and
the validator already use: dnspython RRsets, names and rdata (RRSIG, NSEC,
DNSKEY and every other type are still read by dnspython's own rdata parsers).

What it saves: names are read straight from the bytes and interned (the
same NS names, glue and zone names come back in reply after reply), A, AAAA,
NS and CNAME rdata are interned too (they are immutable) and carry the hash of
the bytes they came in (`core.plain_records.wire_address`: dnspython's hash
writes the record out again each time it is put in a set or compared in an
RRset), and records are grouped into RRsets by their bytes rather than by
hashing Name objects.

It is as strict as dnspython: a name with a bad label type, a pointer that
does not point backwards (or a chain of more than 16), a name over 255
octets, a record running past the message or its RDLENGTH, rdata that does
not fill its RDLENGTH exactly, an OPT outside the additional section, at a
name other than the root or twice, any TSIG (we send no keys), or bytes after
the last record: each raises `BadReply`, and nothing else escapes.  The
differential test (tests/test_reader.py) holds it to dnspython's reading of
every reply the sample lab gives and of mangled ones.
"""

from __future__ import annotations

import struct

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import dns.wire

from dnslab.core.names import wire_name
from dnslab.core.plain_records import wire_address, wire_target
from dnslab.core.edns import use_edns0
from dnslab.core.wire import query_key

_HEADER = struct.Struct("!HHHHHH")
_OPT_FIXED = struct.Struct("!BHHIH")
_RR = struct.Struct("!HHIH")
_QUESTION_TAIL = 4
_MAX_NAME = 255
_MAX_HOPS = 16  # dnspython's MAX_COMPRESSION_POINTER_CHAIN
_OPT, _TSIG, _RRSIG, _SIG = 41, 250, 46, 24
_IN = 1
_A, _NS, _CNAME, _AAAA = 1, 2, 5, 28
_INTERNED = 4096  # names and rdata remembered; the tables start afresh when full

_names: dict[bytes, dns.name.Name] = {}
_rdata: dict[tuple[int, bytes], dns.rdata.Rdata] = {}
_TYPES: dict[int, dns.rdatatype.RdataType] = {}
_CLASSES: dict[int, dns.rdataclass.RdataClass] = {}
_FLAGS: dict[int, dns.flags.Flag] = {}


class BadReply(ValueError):
    """The bytes are not a well-formed DNS message (the sender is broken, or not a DNS server)."""


class Reply:
    """What the resolver reads of an upstream reply, with dns.message.Message's names for it.

    `flags` is the 16-bit header flags word; `rcode()` includes the extended
    bits from the OPT record, as dnspython's does.
    """

    __slots__ = ("id", "flags", "ednsflags", "edns", "payload", "options", "question", "answer", "authority",
                 "additional")

    def __init__(self, ident: int, flags: int) -> None:
        self.id = ident
        self.flags = flags
        self.ednsflags = 0
        self.edns = -1
        self.payload = 0
        self.options: tuple[object, ...] = ()
        self.question: list[tuple[dns.name.Name, int, int]] = []
        self.answer: list[dns.rrset.RRset] = []
        self.authority: list[dns.rrset.RRset] = []
        self.additional: list[dns.rrset.RRset] = []

    def rcode(self) -> int:
        """dns.rcode.from_flags as a plain int (its enum costs more than the rest of classifying)."""
        return (self.flags & 0x000F) | ((self.ednsflags >> 20) & 0xFF0)


def read_reply(wire: bytes) -> Reply:
    """The message in *wire*, or BadReply: never another exception, whatever the bytes."""
    try:
        return _read(wire)
    except BadReply:
        raise
    except Exception as exc:  # noqa: BLE001 - whatever bytes came, the caller sees only BadReply
        raise BadReply(f"malformed message: {exc.__class__.__name__}") from None


def _read(wire: bytes) -> Reply:
    if len(wire) < _HEADER.size:
        raise BadReply("shorter than a header")
    ident, flags, qdcount, ancount, nscount, arcount = _HEADER.unpack_from(wire)
    reply = Reply(ident, flags)
    offset = _HEADER.size
    size = len(wire)
    for _ in range(qdcount):
        name, _raw, offset = _name(wire, offset, size)
        if offset + _QUESTION_TAIL > size:
            raise BadReply("question past the end")
        rdtype, rdclass = struct.unpack_from("!HH", wire, offset)
        offset += _QUESTION_TAIL
        reply.question.append((name, rdtype, rdclass))
    parser: dns.wire.Parser | None = None
    for count, section in ((ancount, reply.answer), (nscount, reply.authority), (arcount, reply.additional)):
        groups: dict[tuple[bytes, int, int, int], dns.rrset.RRset] = {}
        for _ in range(count):
            owner, raw, offset = _name(wire, offset, size)
            rdtype, rdclass, ttl, rdlength = _RR.unpack_from(wire, offset)
            start = offset + _RR.size
            end = start + rdlength
            if end > size:
                raise BadReply("record past the end")
            offset = end
            if rdtype == _OPT:
                if section is not reply.additional or reply.edns >= 0 or raw:
                    raise BadReply("misplaced OPT record")
                reply.ednsflags, reply.edns, reply.payload = ttl, (ttl >> 16) & 0xFF, rdclass
                if rdlength:  # options (NSID, say) are rare: dnspython reads them
                    parser = parser or dns.wire.Parser(wire)
                    opt = _generic(parser, rdclass, rdtype, start, rdlength)
                    reply.options = opt.options  # type: ignore[attr-defined]
                continue
            if rdtype == _TSIG:
                raise BadReply("a TSIG record, and we sent no key")
            if rdclass == _IN and rdtype in _FAST:
                rdata = _FAST[rdtype](wire, start, end)
                covers = 0
            else:
                parser = parser or dns.wire.Parser(wire)
                rdata = _generic(parser, rdclass, rdtype, start, rdlength)
                covers = rdata.covers()
            if ttl > 0x7FFFFFFF:
                ttl = 0
            group = (raw.lower(), rdclass, rdtype, covers)
            rrset = groups.get(group)
            if rrset is None:
                rrset = groups[group] = dns.rrset.RRset(owner, _enum(_CLASSES, dns.rdataclass.RdataClass, rdclass),
                                                        _enum(_TYPES, dns.rdatatype.RdataType, rdtype),
                                                        _enum(_TYPES, dns.rdatatype.RdataType, covers))
                section.append(rrset)
            rrset.add(rdata, ttl)
    if offset != size:
        raise BadReply("bytes after the last record")
    return reply


def header_flags(value: int) -> dns.flags.Flag:
    """dns.flags.Flag(value), remembered: the enum's constructor costs about a microsecond,
    and a resolver sees the same few header words again and again."""
    flag = _FLAGS.get(value)
    if flag is None:
        if len(_FLAGS) >= _INTERNED:
            _FLAGS.clear()
        flag = _FLAGS[value] = dns.flags.Flag(value)
    return flag


def _enum(memo: dict[int, object], kind: type, value: int):  # type: ignore[no-untyped-def]
    """dnspython's enum for a type or class number (made once per number: `make` is slow)."""
    found = memo.get(value)
    if found is None:
        found = memo[value] = kind.make(value)
    return found


def _name(wire: bytes, offset: int, bound: int) -> tuple[dns.name.Name, bytes, int]:
    """(the name at *offset*, its uncompressed wire form without the root byte, the offset after it).

    As dnspython reads names: labels of at most 63 octets, nothing read at or past
    *bound*, pointers only backwards (each before the part of the name read so far,
    which also bounds what follows it; at most 16 of them), 255 octets in all.
    """
    runs: list[bytes] = []  # the name's bytes between pointers: one slice per run, not per label
    begin = offset
    after = -1
    hops = 0
    limit = offset  # where the part read last began: a pointer must point before it
    while True:
        if offset >= bound:
            raise BadReply("name past the end")
        length = wire[offset]
        if length == 0:
            break
        if length < 64:
            offset += 1 + length
            if offset > bound:
                raise BadReply("label past the end")
        elif length >= 0xC0:
            if offset + 1 >= bound:
                raise BadReply("pointer past the end")
            pointer = ((length & 0x3F) << 8) | wire[offset + 1]
            if after < 0:
                after = offset + 2
            hops += 1
            if pointer >= limit or hops > _MAX_HOPS:
                raise BadReply("bad compression pointer")
            runs.append(wire[begin:offset])
            bound = limit
            limit = offset = begin = pointer
        else:
            raise BadReply("bad label type")
    if runs:
        runs.append(wire[begin:offset])
        raw = b"".join(runs)
    else:
        raw = wire[begin:offset]
    offset += 1
    if len(raw) >= _MAX_NAME:  # with the root label's byte, over 255 octets
        raise BadReply("name too long")
    name = _names.get(raw)
    if name is None:
        if len(_names) >= _INTERNED:
            _names.clear()
        name = _names[raw] = wire_name(_labels(raw))
    return name, raw, after if after >= 0 else offset


def _labels(raw: bytes) -> tuple[bytes, ...]:
    """The labels of a name's uncompressed wire form without its root byte, and the root label."""
    labels = []
    at = 0
    while at < len(raw):
        stop = at + 1 + raw[at]
        labels.append(raw[at + 1:stop])
        at = stop
    labels.append(b"")
    return tuple(labels)


def _address(wire: bytes, start: int, end: int, rdtype: int, size: int) -> dns.rdata.Rdata:
    raw = wire[start:end]
    if len(raw) != size:
        raise BadReply("address of the wrong length")
    key = (rdtype, raw)
    rdata = _rdata.get(key)
    if rdata is None:
        rdata = _intern(key, wire_address(rdtype, raw))
    return rdata


def _target(wire: bytes, start: int, end: int, rdtype: int) -> dns.rdata.Rdata:
    if start >= end:
        raise BadReply("empty rdata")
    name, raw, after = _name(wire, start, end)
    if after != end:
        raise BadReply("rdata does not fill its length")
    key = (rdtype, raw)  # by the bytes as sent: the target's case is kept
    rdata = _rdata.get(key)
    if rdata is None:
        rdata = _intern(key, wire_target(rdtype, name, raw))
    return rdata


def _intern(key: tuple[int, bytes], rdata: dns.rdata.Rdata) -> dns.rdata.Rdata:
    """Remember the one record of this type and these rdata bytes (records are immutable)."""
    if len(_rdata) >= _INTERNED:
        _rdata.clear()
    _rdata[key] = rdata
    return rdata


# The records read here, hashed from the bytes they came in (core.plain_records' Wire classes).
_FAST = {
    _A: lambda wire, start, end: _address(wire, start, end, _A, 4),
    _AAAA: lambda wire, start, end: _address(wire, start, end, _AAAA, 16),
    _NS: lambda wire, start, end: _target(wire, start, end, _NS),
    _CNAME: lambda wire, start, end: _target(wire, start, end, _CNAME),
}


def _generic(parser: dns.wire.Parser, rdclass: int, rdtype: int, start: int, rdlength: int) -> dns.rdata.Rdata:
    """Any other type, by dnspython's own rdata parser, held to exactly RDLENGTH bytes."""
    parser.seek(start)
    parser.end = len(parser.wire)
    with parser.restrict_to(rdlength):
        return dns.rdata.from_wire_parser(rdclass, rdtype, parser)


def read_plain_query(wire: bytes) -> dns.message.QueryMessage | None:
    """A plain query as dns.message.from_wire reads it, or None for anything else (then dnspython reads it).

    Plain is what `core.wire.query_key` keys (a QUERY with one uncompressed question,
    nothing else but an EDNS0 OPT, no trailing bytes) whose OPT, if any, carries no
    options (one, padding, would change the reply).  Most clients' queries are so, and
    dnspython spends about 36 µs reading one, most of it on machinery such a query
    does not need; this builds the same Message in a third of that.
    """
    parsed = query_key(wire)
    if parsed is None:
        return None
    size = len(wire)
    try:
        name, _raw, offset = _name(wire, _HEADER.size, size)
    except BadReply:
        return None  # a name dnspython would refuse too (over 255 octets): its FORMERR
    rdclass = (wire[offset + 2] << 8) | wire[offset + 3]
    offset += _QUESTION_TAIL
    edns = offset < size
    if edns and (wire[offset + 9] or wire[offset + 10]):
        return None  # EDNS options
    query = dns.message.QueryMessage(id=(wire[0] << 8) | wire[1])
    query.flags = header_flags((wire[2] << 8) | wire[3])
    query.question = [dns.rrset.RRset(name, _enum(_CLASSES, dns.rdataclass.RdataClass, rdclass),
                                      _enum(_TYPES, dns.rdatatype.RdataType, parsed[1]))]
    if edns:
        _, _, payload, ttl, _ = _OPT_FIXED.unpack_from(wire, offset)
        use_edns0(query, ttl, payload)
    return query


# An upstream reply as the resolver reads it: ours over UDP, dnspython's over TCP (and in sans-I/O tests).
AnyReply = Reply | dns.message.Message
