"""Wire-format facts shared by the authoritative server and the resolver."""

from __future__ import annotations

import struct

# RFC 1035 §4.2.1 without EDNS; 1232 is the DNS Flag Day 2020 size NSD and Unbound use.
PLAIN_UDP_SIZE = 512
EDNS_UDP_SIZE = 1232
MAX_MESSAGE = 65535

HEADER = struct.Struct("!HHHHHH")
QR = 0x8000
OPCODE_MASK = 0x7800
TC = 0x0200
RD = 0x0100
RA = 0x0080


def header_only_reply(wire: bytes, rcode: int, recursion_available: bool = False) -> bytes | None:
    """A reply with no sections, for requests that cannot or will not be processed.

    Only the ID, opcode and RD are echoed (as NSD does for FORMERR and NOTIMP);
    nothing can be echoed from a packet shorter than a header, so it is dropped.
    A resolver says *recursion_available* (RA) in every reply, errors included.
    """
    if len(wire) < HEADER.size:
        return None
    ident, flags, *_ = HEADER.unpack_from(wire)
    reply_flags = QR | (flags & (OPCODE_MASK | RD)) | (RA if recursion_available else 0) | (rcode & 0xF)
    return HEADER.pack(ident, reply_flags, 0, 0, 0, 0)


OPT = 41
_U16 = struct.Struct("!H")
_OPT_FIXED = struct.Struct("!BHHIH")  # root name, TYPE, CLASS (UDP size), TTL (ext-rcode, version, flags), RDLENGTH
DO_BIT = 0x8000
# Distinct queries whose keys are remembered (each about 300 B): far more than a
# lab or a load test repeats, and bounded against a flood of distinct ones.
KEY_MEMORY = 8192


def query_key(wire: bytes) -> tuple[bytes, int, int, bytes] | None:
    """The parts of a plain query that decide its answer, read without parsing the message.

    Returns (key, qtype, udp_limit, UDP_PREFIX + key) for a query with one uncompressed question and
    at most an EDNS0 OPT record, or None for anything else (the full parser then
    decides).  The key holds the question bytes exactly as sent (so a reply can
    echo them), the header bits that change an answer (opcode, RD, AD, CD), and the
    EDNS facts (present or not, DO, the UDP size that decides truncation).
    Options such as cookies do not change an answer and are left out.

    Everything after the ID decides the result, and busy clients repeat those
    bytes exactly, so results are remembered by them: reading the labels in
    Python costs about 1.4 µs, the remembered result about 0.15 µs.  The fast paths key
    UDP and TCP apart (their size limits differ); the UDP key, by far the commoner, is
    remembered ready-made too.

    The memory is a plain dict, emptied when full: functools.lru_cache keys a bytes
    argument by a tuple around it, whose hashing and comparison cost more than the
    lookup itself, and keeping recency order is not worth its price here.
    """
    tail = wire[2:]
    found = _REMEMBERED.get(tail, _UNKNOWN)
    if found is not _UNKNOWN:
        return found  # type: ignore[return-value]
    if len(_REMEMBERED) >= KEY_MEMORY:
        _REMEMBERED.clear()  # a flood of distinct queries: start again (no per-entry upkeep)
    found = _REMEMBERED[tail] = _key_after_id(tail)
    return found


_REMEMBERED: dict[bytes, tuple[bytes, int, int, bytes] | None] = {}
_UNKNOWN = object()


def remembered_keys() -> int:
    """How many queries' keys `query_key` holds now (at most KEY_MEMORY)."""
    return len(_REMEMBERED)


def _key_after_id(tail: bytes) -> tuple[bytes, int, int, bytes] | None:
    """query_key for a message without its first two bytes (offsets below are shifted by 2)."""
    size = len(tail)
    if size < HEADER.size - 2 + 5:
        return None
    flags = (tail[0] << 8) | tail[1]
    if flags & (QR | OPCODE_MASK | 0x000F) or tail[2:10] not in (b"\x00\x01\x00\x00\x00\x00\x00\x00",
                                                       b"\x00\x01\x00\x00\x00\x00\x00\x01"):
        return None
    start = HEADER.size - 2
    offset = start
    while True:
        if offset >= size:
            return None
        length = tail[offset]
        if length == 0:
            break
        if length > 63:  # a compression pointer or a reserved label type
            return None
        offset += length + 1
    end = offset + 5
    if end > size or end - start > 260:
        return None
    qtype = _U16.unpack_from(tail, offset + 1)[0]
    edns = b"-"
    limit = PLAIN_UDP_SIZE
    if tail[9]:
        if end + _OPT_FIXED.size > size:
            return None
        root, rtype, udp, ttl, rdlength = _OPT_FIXED.unpack_from(tail, end)
        if root != 0 or rtype != OPT or (ttl >> 16) & 0xFF or end + _OPT_FIXED.size + rdlength != size:
            return None  # not an EDNS0 OPT, a version we do not speak, or trailing bytes
        limit = min(max(udp, PLAIN_UDP_SIZE), EDNS_UDP_SIZE)
        edns = b"D" if ttl & DO_BIT else b"E"
    elif end != size:
        return None
    key = bytes((tail[0] & 0x79, tail[1] & 0x30)) + edns + _U16.pack(limit) + tail[start:end]
    return key, qtype, limit, UDP_PREFIX + key


# What the fast paths put before a query_key: a reply over TCP may be larger than over UDP.
UDP_PREFIX, TCP_PREFIX = b"U", b"T"


QUESTION_IN_KEY = 5  # where the question's bytes start in a query_key


def ttl_offsets(wire: bytes) -> list[tuple[int, int]]:
    """(offset of the TTL field, TYPE) of every record in a message we rendered, in order.

    Used to patch TTLs in a ready reply; only our own well-formed replies are read.
    """
    return [(ttl, rtype) for _, ttl, _, rtype in record_spans(wire)]


def record_spans(wire: bytes) -> list[tuple[int, int, int, int]]:
    """(start, offset of the TTL field, end, TYPE) of every record in a message we rendered, in order.

    The spans let a ready reply move whole records (round-robin order) without
    rendering it again; only our own well-formed replies are read.
    """
    count = sum(_U16.unpack_from(wire, position)[0] for position in (6, 8, 10))
    offset = HEADER.size
    for _ in range(_U16.unpack_from(wire, 4)[0]):
        offset = skip_name(wire, offset) + 4
    found = []
    for _ in range(count):
        start = offset
        offset = skip_name(wire, offset)
        rtype, _, _, rdlength = struct.unpack_from("!HHIH", wire, offset)
        end = offset + 10 + rdlength
        found.append((start, offset + 4, end, rtype))
        offset = end
    return found


def skip_name(wire: bytes, offset: int) -> int:
    """The offset just past the (possibly compressed) name at *offset*: its labels, its root byte or
    its two-byte pointer.  Readers that walk a message's records without parsing them use it."""
    while True:
        length = wire[offset]
        if length >= 0xC0:
            return offset + 2
        if length == 0:
            return offset + 1
        offset += length + 1
