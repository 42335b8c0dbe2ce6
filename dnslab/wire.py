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
RD = 0x0100


def header_only_reply(wire: bytes, rcode: int) -> bytes | None:
    """A reply with no sections, for requests that cannot or will not be processed.

    Only the ID, opcode and RD are echoed (as NSD does for FORMERR and NOTIMP);
    nothing can be echoed from a packet shorter than a header, so it is dropped.
    """
    if len(wire) < HEADER.size:
        return None
    ident, flags, *_ = HEADER.unpack_from(wire)
    reply_flags = QR | (flags & (OPCODE_MASK | RD)) | (rcode & 0xF)
    return HEADER.pack(ident, reply_flags, 0, 0, 0, 0)
