"""Zone transfer replies: AXFR (RFC 5936) and IXFR (RFC 1995) as a stream of messages, no sockets.

A zone is sent as NSD sends it: the SOA first, every other RRset (DNSSEC data
included), the SOA again, packed into as few messages as fit the size limit,
the question in the first message only (RFC 5936 §2.2.1 allows either), AA=1
in every one.  IXFR sends the journal's steps from the client's serial
(SOA new, then per step: old SOA, deletions, new SOA, additions, then SOA new);
a client already up to date (or ahead) gets the single current SOA; a serial
the journal does not reach back to gets the whole zone in the IXFR reply.
Over UDP (RFC 1995 §2) an IXFR reply that does not fit one datagram is
replaced by the single SOA, which tells the client to come back over TCP.

Whether a client may transfer at all is decided by the server (transfer ACL, TSIG).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Iterator


import dns.exception
import dns.flags
import dns.name
import dns.rdataclass
import dns.rdatatype
import dns.renderer
import dns.rrset

from dnslab.authority.journal import Journal, newer, serial_of
from dnslab.core.wire import EDNS_UDP_SIZE
from dnslab.core.zone import Zone

# NSD fills transfer messages up to 16 KiB; a message must also leave room for a TSIG record.
TRANSFER_MESSAGE_SIZE = 16384
TSIG_ROOM = 256
_OPT_SIZE = 11  # an OPT record without options


@dataclass(frozen=True)
class TransferQuery:
    """What a transfer reply echoes from its query."""

    id: int
    rd: bool
    qname: dns.name.Name  # as the client wrote it (case kept)
    qtype: int
    edns: bool
    dnssec_ok: bool = False


def axfr(query: TransferQuery, zone: Zone, limit: int = TRANSFER_MESSAGE_SIZE) -> list[bytes]:
    """The whole zone, SOA to SOA, as a list of messages."""
    return _pack(query, _whole(zone), limit)


def ixfr(query: TransferQuery, zone: Zone, journal: Journal | None, client_serial: int,
         limit: int = TRANSFER_MESSAGE_SIZE, udp: bool = False) -> tuple[list[bytes], str]:
    """The IXFR reply messages and what kind of reply they are ("up to date", "incremental", "full", "tcp")."""
    serial = serial_of(zone.soa)
    if client_serial == serial or newer(client_serial, serial):
        return _pack(query, [zone.soa], limit), "up to date"
    steps = journal.since(client_serial) if journal is not None else None
    if steps is None or steps[-1].new_serial != serial:
        rrsets, kind = _whole(zone), "full"
    else:
        rrsets = [zone.soa]
        for step in steps:
            rrsets += [step.old_soa, *step.deleted, step.new_soa, *step.added]
        rrsets.append(zone.soa)
        kind = "incremental"
    messages = _pack(query, rrsets, limit)
    if udp and len(messages) > 1:
        return _pack(query, [zone.soa], limit), "tcp"  # RFC 1995 §2: "use TCP"
    return messages, kind


def _whole(zone: Zone) -> list[dns.rrset.RRset]:
    middle = [r for r in zone.rrsets() if not (r.rdtype == dns.rdatatype.SOA and r.name == zone.origin)]
    return [zone.soa, *middle, zone.soa]


def _pack(query: TransferQuery, rrsets: Iterable[dns.rrset.RRset], limit: int) -> list[bytes]:
    """RRsets into messages of at most *limit* bytes; an RRset too big for one message is split."""
    packer = _Packer(query, limit)
    for rrset in rrsets:
        if not packer.add(rrset):
            for single in _split(rrset):  # an RRset larger than a message: record by record
                if not packer.add(single):
                    raise dns.exception.TooBig(f"{rrset.name} {dns.rdatatype.to_text(rrset.rdtype)} "
                                               f"does not fit a {limit}-byte message")
    return packer.done()


class _Packer:
    """Fills one message after the other."""

    def __init__(self, query: TransferQuery, limit: int) -> None:
        self.query, self.limit = query, limit
        self.messages: list[bytes] = []
        self.renderer, self.count = _start(query, limit, first=True), 0

    def add(self, rrset: dns.rrset.RRset) -> bool:
        """Add to this message, else to a new one; False if it fits not even an empty message."""
        for _ in range(2):
            try:
                self.renderer.add_rrset(dns.renderer.ANSWER, rrset)
                self.count += 1
                return True
            except dns.exception.TooBig:
                if self.count == 0:
                    return False
                self.messages.append(_finish(self.query, self.renderer))
                self.renderer, self.count = _start(self.query, self.limit, first=False), 0
        return False

    def done(self) -> list[bytes]:
        return [*self.messages, _finish(self.query, self.renderer)]


def _split(rrset: dns.rrset.RRset) -> Iterator[dns.rrset.RRset]:
    for rdata in rrset:
        single = dns.rrset.RRset(rrset.name, rrset.rdclass, rrset.rdtype, rrset.covers)
        single.add(rdata, rrset.ttl)
        yield single


def _start(query: TransferQuery, limit: int, first: bool) -> dns.renderer.Renderer:
    flags = dns.flags.QR | dns.flags.AA | (dns.flags.RD if query.rd else 0)
    renderer = dns.renderer.Renderer(query.id, flags, limit - TSIG_ROOM)
    if first:
        renderer.add_question(query.qname, query.qtype, dns.rdataclass.IN)
    if query.edns:
        renderer.reserve(_OPT_SIZE)
    return renderer


def _finish(query: TransferQuery, renderer: dns.renderer.Renderer) -> bytes:
    if query.edns:
        renderer.release_reserved()
        renderer.add_edns(0, dns.flags.DO if query.dnssec_ok else 0, EDNS_UDP_SIZE)
    renderer.write_header()
    return renderer.get_wire()
