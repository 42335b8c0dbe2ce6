"""An authoritative server's request handling: wire in, wire out, no sockets.

dnslib parses the request and packs the reply; `authority` decides the
content.  Everything a hostile or broken client can send ends here as FORMERR,
NOTIMP, BADVERS, REFUSED or silence, never as an exception, because one bad
packet must not stop a server that a whole lab depends on.  The header checks
and reply shapes follow NSD 4 (see the README for the few deliberate
differences).
"""

from __future__ import annotations

import logging
import struct
from dataclasses import dataclass
from typing import Iterable

import dns.name
import dns.rcode
import dns.rdatatype
import dns.rrset
import dnslib

from dnslab.authority import Authority, Outcome, Response
from dnslab.zone import Zone

log = logging.getLogger(__name__)

# RFC 1035 §4.2.1 without EDNS; 1232 is the DNS Flag Day 2020 size NSD also uses.
PLAIN_UDP_SIZE = 512
EDNS_UDP_SIZE = 1232
MAX_MESSAGE = 65535
OPCODE_QUERY = 0
HEADER = struct.Struct("!HHHHHH")
QR = 0x8000
RD = 0x0100
OPCODE_MASK = 0x7800
BADVERS = 16

# The RFC 1035 types whose RDATA names may be compressed (RFC 3597 §4); every
# other type is sent exactly as stored, as NSD does.
_COMPRESSIBLE = {
    dns.rdatatype.NS: dnslib.NS,
    dns.rdatatype.CNAME: dnslib.CNAME,
    dns.rdatatype.PTR: dnslib.PTR,
    dns.rdatatype.MX: dnslib.MX,
    dns.rdatatype.SOA: dnslib.SOA,
}


@dataclass(frozen=True)
class Request:
    """What the server needs from a parsed query."""

    record: dnslib.DNSRecord
    qname: dns.name.Name
    qtype: int
    edns_size: int | None  # None: the client sent no OPT record
    dnssec_ok: bool


class AuthoritativeServer:
    """Turns request bytes into reply bytes for the zones of one server."""

    def __init__(self, zones: Iterable[Zone]) -> None:
        self.authority = Authority(zones)
        # Zone data is converted to dnslib records once; only synthesised
        # RRsets (wildcards, DNAME) are converted per reply.
        self._converted: dict[int, list[dnslib.RR]] = {}
        for zone in self.authority.zones.values():
            for rrset in (*zone.rrsets(), zone.negative_soa):
                self._converted[id(rrset)] = to_dnslib(rrset)

    @property
    def zones(self) -> list[Zone]:
        return list(self.authority.zones.values())

    def handle(self, wire: bytes, via_tcp: bool = False) -> bytes | None:
        """The reply to send, or None to stay silent (unreadable header, or not a query)."""
        if len(wire) < HEADER.size:
            return None
        ident, flags, *_ = HEADER.unpack_from(wire)
        if flags & QR:
            return None  # a response sent to us: answering could start a loop
        if flags & OPCODE_MASK != OPCODE_QUERY << 11:
            return _header_only(ident, flags, dns.rcode.NOTIMP)
        try:
            request = _parse(wire)
        except _FormatError as exc:
            log.debug("FORMERR: %s", exc)
            return _header_only(ident, flags, dns.rcode.FORMERR)
        try:
            return self._respond(request, via_tcp)
        except Exception:  # noqa: BLE001 - one packet must never stop the server
            log.exception("internal error answering %s %s", request.qname, request.qtype)
            return _header_only(ident, flags, dns.rcode.SERVFAIL)

    def _respond(self, request: Request, via_tcp: bool) -> bytes:
        header = request.record.header
        reply = dnslib.DNSRecord(
            dnslib.DNSHeader(id=header.id, qr=1, opcode=OPCODE_QUERY, rd=header.rd, cd=header.cd),
            q=request.record.q,
        )
        opt = _opt(request) if request.edns_size is not None else None
        version = _edns_version(request.record)
        if version:
            reply.header.rcode = BADVERS & 0xF
            assert opt is not None
            opt.ttl |= (BADVERS >> 4) << 24
            reply.add_ar(opt)
            return _pack(reply)
        glue_required = False
        if request.record.q.qclass != dnslib.CLASS.IN:
            reply.header.rcode = dns.rcode.REFUSED
        else:
            response = self.authority.lookup(request.qname, request.qtype)
            self._fill(reply, response)
            glue_required = response.outcome is Outcome.REFERRAL
        limit = MAX_MESSAGE if via_tcp else _udp_limit(request.edns_size)
        return _pack_within(reply, opt, limit, glue_required)

    def _fill(self, reply: dnslib.DNSRecord, response: Response) -> None:
        reply.header.rcode = int(response.rcode)
        reply.header.aa = int(response.authoritative)
        reply.rr = self._rrs(response.answer)
        reply.auth = self._rrs(response.authority)
        reply.ar = self._rrs(response.additional)

    def _rrs(self, rrsets: list[dns.rrset.RRset]) -> list[dnslib.RR]:
        out: list[dnslib.RR] = []
        for rrset in rrsets:
            converted = self._converted.get(id(rrset))
            out.extend(converted if converted is not None else to_dnslib(rrset))
        return out


class _FormatError(Exception):
    """A request we can read the header of but not understand."""


def _parse(wire: bytes) -> Request:
    try:
        record = dnslib.DNSRecord.parse(wire)
    except Exception as exc:  # noqa: BLE001 - dnslib raises several kinds on garbage
        raise _FormatError(str(exc)) from None
    if len(record.questions) != 1:
        raise _FormatError(f"{len(record.questions)} questions")
    opts = [rr for rr in record.ar if rr.rtype == dnslib.QTYPE.OPT]
    if len(opts) > 1:
        raise _FormatError("more than one OPT record")
    if opts and opts[0].rname.label != ():
        raise _FormatError("OPT owner is not the root")
    question = record.q
    try:
        qname = dns.name.Name(question.qname.label + (b"",))
    except dns.name.NameTooLong:
        raise _FormatError("name too long") from None
    edns_size = max(opts[0].rclass, PLAIN_UDP_SIZE) if opts else None
    dnssec_ok = bool(opts and opts[0].ttl & 0x8000)
    return Request(record, qname, question.qtype, edns_size, dnssec_ok)


def _edns_version(record: dnslib.DNSRecord) -> int:
    for rr in record.ar:
        if rr.rtype == dnslib.QTYPE.OPT:
            return (rr.ttl >> 16) & 0xFF
    return 0


def _opt(request: Request) -> dnslib.RR:
    """Our OPT: our own UDP size, and DO echoed as RFC 3225 asks."""
    return dnslib.EDNS0(udp_len=EDNS_UDP_SIZE, flags="do" if request.dnssec_ok else "")


def _udp_limit(edns_size: int | None) -> int:
    if edns_size is None:
        return PLAIN_UDP_SIZE
    return min(edns_size, EDNS_UDP_SIZE)


def _pack_within(reply: dnslib.DNSRecord, opt: dnslib.RR | None, limit: int, glue_required: bool) -> bytes:
    """Pack, dropping what does not fit as NSD does.

    Optional additional data is dropped silently; if the answer, the authority
    or a referral's glue (RFC 9471) does not fit, the reply goes out with TC=1
    and only the question, so the client retries over TCP.
    """
    if opt is not None:
        reply.ar.append(opt)
    wire = _pack(reply)
    if len(wire) <= limit:
        return wire
    if reply.ar and not glue_required:
        reply.ar = [opt] if opt is not None else []
        wire = _pack(reply)
        if len(wire) <= limit:
            return wire
    reply.rr, reply.auth = [], []
    reply.ar = [opt] if opt is not None else []
    reply.header.tc = 1
    return _pack(reply)


def _pack(reply: dnslib.DNSRecord) -> bytes:
    """dnslib packs into a bytearray; callers are promised bytes (dnspython's
    from_wire, for one, cannot read names out of a bytearray)."""
    return bytes(reply.pack())


def _header_only(ident: int, flags: int, rcode: int) -> bytes:
    """A reply with no sections, for requests we cannot or will not process."""
    reply_flags = QR | (flags & (OPCODE_MASK | RD)) | (rcode & 0xF)
    return HEADER.pack(ident, reply_flags, 0, 0, 0, 0)


def to_dnslib(rrset: dns.rrset.RRset) -> list[dnslib.RR]:
    """dnspython RRset -> dnslib records, keeping names' case and RFC 3597 semantics."""
    rname = dnslib.DNSLabel(list(rrset.name.labels[:-1]))
    records: list[dnslib.RR] = []
    for rdata in rrset:
        wire = rdata.to_wire()
        rd_class = _COMPRESSIBLE.get(rrset.rdtype)
        if rd_class is None:
            rd: dnslib.RD = dnslib.RD(wire)
        else:
            rd = rd_class.parse(dnslib.DNSBuffer(wire), len(wire))
        records.append(dnslib.RR(rname, int(rrset.rdtype), int(rrset.rdclass), rrset.ttl, rd))
    return records
