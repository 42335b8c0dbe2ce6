"""An authoritative server's request handling: wire in, wire out, no sockets.

dnslib parses the request and packs the reply; `authority` decides the
content.  Everything a hostile or broken client can send ends here as FORMERR,
NOTIMP, BADVERS, REFUSED or silence, never as an exception, because one bad
packet must not stop a server that a whole lab depends on.  The header checks
and reply shapes follow NSD 4 (docs/SERVERS.md lists the few deliberate
differences).
"""

from __future__ import annotations

import logging
import struct
import weakref
from dataclasses import dataclass
from typing import Any, Callable, Iterable

import dns.exception
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import dnslib

from dnslab.authority import tsig
from dnslab.authority.lookup import Authority, Outcome, Response
from dnslab.authority.operations import NOTIFY, UPDATE, Operations
from dnslab.authority.transfer import TransferQuery
from dnslab.authority import identity as ident
from dnslab.authority.steering import ECS, ClientSubnet, client_subnet
from dnslab.core.fastpath import ReplyCache
from dnslab.core.wire import (EDNS_UDP_SIZE, HEADER, MAX_MESSAGE, OPCODE_MASK, PLAIN_UDP_SIZE, QR, TC, TCP_PREFIX,
                         header_only_reply, query_key)
from dnslab.core.zone import Zone

log = logging.getLogger(__name__)

OPCODE_QUERY = 0
BADVERS = 16
# RFC 8914 Extended DNS Errors, sent where NSD sends them (always without text).
EDE = 15
EDE_PROHIBITED = 18
EDE_NOT_AUTHORITATIVE = 20
EDE_NOT_SUPPORTED = 21
# NSD fills the additional section with every A RRset, then every AAAA, then the rest.
_ADDITIONAL_ORDER = {dnslib.QTYPE.A: 0, dnslib.QTYPE.AAAA: 1}

# The RFC 1035 types whose RDATA names may be compressed (RFC 3597 §4), built
# from their fields; every other type is sent exactly as stored, as NSD does.
_COMPRESSIBLE: dict[int, Callable[[Any], dnslib.RD]] = {
    dns.rdatatype.NS: lambda rd: dnslib.NS(_label(rd.target)),
    dns.rdatatype.CNAME: lambda rd: dnslib.CNAME(_label(rd.target)),
    dns.rdatatype.PTR: lambda rd: dnslib.PTR(_label(rd.target)),
    dns.rdatatype.MX: lambda rd: dnslib.MX(_label(rd.exchange), rd.preference),
    dns.rdatatype.SOA: lambda rd: dnslib.SOA(
        _label(rd.mname), _label(rd.rname), (rd.serial, rd.refresh, rd.retry, rd.expire, rd.minimum)
    ),
}


# A zone's records as dnslib records, by id() of its RRsets (the Zone keeps them alive, and a changed
# zone is a new Zone): shared by every server of the zone.
_ZONE_RECORDS: "weakref.WeakKeyDictionary[Zone, dict[int, tuple[dns.rrset.RRset, list[dnslib.RR]]]]" = \
    weakref.WeakKeyDictionary()


@dataclass(frozen=True)
class Request:
    """What the server needs from a parsed query."""

    record: dnslib.DNSRecord
    qname: dns.name.Name
    qtype: int
    edns_size: int | None  # None: the client sent no OPT record
    dnssec_ok: bool
    nsid: bool = False  # the query asked for the server's identity (RFC 5001)
    ecs: ClientSubnet | None = None  # the query's EDNS Client Subnet (RFC 7871), read for steered answers


class AuthoritativeServer:
    """Turns request bytes into reply bytes for the zones of one server."""

    def __init__(self, zones: Iterable[Zone], identity: str | None = None, version: str | None = None) -> None:
        """*identity* answers NSID and CHAOS hostname.bind/id.server, *version* version.bind and
        version.server (None: the identity); with no identity both are refused, as NSD's hide-identity."""
        self.authority = Authority(zones)
        self.identity = identity
        self.version = version if version is not None else identity
        # Steered names (lab.toml [steering]): an object whose steer(qname, qtype, client address, ECS)
        # gives (RRset, ECS scope) or None; see dnslab.lab.endpoints.  Its answers vary: no fast path.
        self.steering: Any = None
        # The fast path: a reply depends only on the query's key and the zone data.
        self.replies = ReplyCache()
        self._converted: dict[dns.name.Name, tuple[Zone, dict[int, tuple[dns.rrset.RRset, list[dnslib.RR]]]]] = {}
        self._convert()
        # Transfers, NOTIFY, UPDATE and TSIG: policy and journals (authority.operations).
        self.ops = Operations()

    def _convert(self) -> None:
        """Zone data is converted to dnslib records once, when a reply first needs it; only
        synthesised RRsets (wildcards, DNAME) are converted for every reply that has them.

        Servers of one zone share its records (the 13 root letters serve the same root and
        arpa.), kept while the Zone lives.  Converting every RRset as a server started cost
        about 0.9 KB per name of a big lab, most of it for names nobody asks for.
        """
        self._converted = {origin: (zone, _ZONE_RECORDS.setdefault(zone, {}))
                           for origin, zone in self.authority.zones.items()}
        self._seen: dict[int, tuple[dns.rrset.RRset, list[dnslib.RR]]] = {}  # what this server used, by id

    def _records(self, rrset: dns.rrset.RRset) -> list[dnslib.RR]:
        """*rrset* as dnslib records: from its zone's shared store, converted there on first ask.

        A zone's RRset (glue too) is named inside the zone, so only the zones at the name and
        above it are looked at: a server of many zones pays per label, not per zone."""
        key = id(rrset)
        seen = self._seen.get(key)
        if seen is not None and seen[0] is rrset:
            return seen[1]
        converted = self._converted
        name: dns.name.Name | None = rrset.name
        owner: tuple[Zone, dict[int, tuple[dns.rrset.RRset, list[dnslib.RR]]]] | None = None
        while name is not None:
            found = converted.get(name)
            if found is not None:
                entry = found[1].get(key)
                if entry is not None and entry[0] is rrset:  # an id is only reused once its RRset is gone
                    self._seen[key] = entry
                    return entry[1]
                if owner is None and _owns(found[0], rrset):
                    owner = found
            name = name.parent() if name != dns.name.root else None
        records = to_dnslib(rrset)
        if owner is not None:
            owner[1][key] = self._seen[key] = (rrset, records)
        return records

    def replace_zone(self, zone: Zone) -> None:
        """Serve a new version of one of our zones from the next query on."""
        if zone.origin in self.ops.secondary:
            return  # a secondary serves what it transferred, not the lab's files
        self.ops.changed(self.authority.zones.get(zone.origin), zone)
        self.authority.zones[zone.origin] = zone
        self._convert()
        self.replies.clear()

    def set_zones(self, zones: Iterable[Zone]) -> None:
        """Serve exactly these zones from the next query on (the lab's hierarchy changed)."""
        fresh = {zone.origin: zone for zone in zones if zone.origin not in self.ops.secondary}
        fresh.update({origin: zone for origin, zone in self.authority.zones.items() if origin in self.ops.secondary})
        for origin, zone in fresh.items():
            self.ops.changed(self.authority.zones.get(origin), zone)
        self.authority.zones = fresh
        self._convert()
        self.replies.clear()

    def serve_transferred(self, origin: dns.name.Name, zone: Zone | None) -> None:
        """A secondary's copy of *origin*: serve *zone*, or None: SERVFAIL for it (empty or expired)."""
        self.ops.secondary.add(origin)
        if zone is None:
            self.authority.zones.pop(origin, None)
        else:
            self.ops.changed(self.authority.zones.get(origin), zone)
            self.authority.zones[origin] = zone
        self._convert()
        self.replies.clear()

    def _unavailable(self, qname: dns.name.Name) -> bool:
        """The closest zone for *qname* is one we are a secondary of but hold no valid copy of."""
        served = max((o for o in self.authority.zones if qname.is_subdomain(o)), key=len, default=None)
        missing = max((o for o in self.ops.secondary if qname.is_subdomain(o) and o not in self.authority.zones),
                      key=len, default=None)
        return missing is not None and (served is None or len(missing) > len(served))

    @property
    def zones(self) -> list[Zone]:
        return list(self.authority.zones.values())

    def handle(self, wire: bytes, via_tcp: bool = False, peer: tuple[str, int] | None = None,
               identity: str | None = None, signer: tsig.Signer | None = None) -> Any:
        """The reply to send, or None to stay silent (unreadable header, or not a query).

        A zone transfer's reply is a list of messages; an UPDATE's, an awaitable
        (the lab applies it).  *peer* matters to transfers, NOTIFY and steered names
        (where the client is): queries are answered for everyone, as NSD does.
        *signer* is set when the request came TSIG-signed (the call for its unsigned
        remainder, see `_signed`).  *identity* overrides the server's own for this
        reply (the anycast site that answers).
        """
        # The same datagram as before (all but its ID), answered as this server: its reply at once.
        if not via_tcp and identity is None and signer is None and self.steering is None:
            ready = self.replies.replay(wire)
            if ready is not None:
                return ready
        parsed = query_key(wire)
        key = None
        if parsed is not None and self.steering is None:
            key = TCP_PREFIX + parsed[0] if via_tcp else parsed[3]
            if self.identity is not None:
                # A reply that names the server (NSID asked, or a CHAOS question) is kept under the name
                # it gives (an anycast site's); a query with other EDNS options is answered afresh.
                key = ident.identity_key(wire, parsed[0], key, identity or self.identity)
        # Only this server's own answers are remembered by datagram: an anycast site's (identity) is its own.
        datagram = not via_tcp and identity is None and signer is None and self.steering is None
        if key is not None:
            ready = self.replies.get(key, wire, datagram)
            if ready is not None:
                return ready  # asked before: the same reply, with this query's ID
        if len(wire) < HEADER.size:
            return None
        _, flags, *_ = HEADER.unpack_from(wire)
        if flags & QR:
            return None  # a response sent to us: answering could start a loop
        if parsed is None and signer is None and (start := tsig.find(wire)) is not None:
            return self._signed(wire, start, via_tcp, peer)
        if flags & OPCODE_MASK != OPCODE_QUERY << 11:
            opcode = (flags & OPCODE_MASK) >> 11
            if opcode == NOTIFY:
                return self.ops.notify(wire, peer)
            if opcode == UPDATE:
                return self.ops.update(wire, self.authority.zones, signer)
            return header_only_reply(wire, dns.rcode.NOTIMP)
        try:
            request = _parse(wire)
        except _FormatError as exc:
            log.debug("FORMERR: %s", exc)
            return header_only_reply(wire, dns.rcode.FORMERR)
        if request.qtype in _TRANSFER_TYPES:
            stream = self._stream(request, via_tcp, peer, signer)
            if stream is not None:
                return stream
            key = None  # a refusal depends on who asks: never replayed to another client
        try:
            reply = self._respond(request, via_tcp, identity or self.identity, peer)
        except Exception:  # noqa: BLE001 - one packet must never stop the server
            log.exception("internal error answering %s %s", request.qname, request.qtype)
            return header_only_reply(wire, dns.rcode.SERVFAIL)
        if key is not None:
            self.replies.put(key, reply, wire if datagram else None)
        return reply

    def _respond(self, request: Request, via_tcp: bool, identity: str | None = None,
                 peer: tuple[str, int] | None = None) -> bytes:
        header = request.record.header
        # CD is not copied: RFC 4035 §3.1.6 has authoritative responses clear it, as NSD does.
        reply = dnslib.DNSRecord(
            dnslib.DNSHeader(id=header.id, qr=1, opcode=OPCODE_QUERY, rd=header.rd),
            q=request.record.q,
        )
        version = _edns_version(request.record)
        if version:
            # The flags of an EDNS version we do not implement mean nothing to us: no DO (NSD).
            reply.header.rcode = BADVERS & 0xF
            reply.add_ar(dnslib.EDNS0(udp_len=EDNS_UDP_SIZE, ext_rcode=BADVERS >> 4))
            return _pack(reply)
        cut = None
        ede = None
        scope = 0  # the ECS scope of a steered answer (RFC 7871 §7.2.1)
        qclass = request.record.q.qclass
        text = (ident.chaos_text(request.qname, request.qtype, identity, self.version or identity)
                if qclass == ident.CHAOS and identity is not None else None)
        if text is not None:  # hostname.bind, id.server, version.bind, version.server (NSD's reply)
            reply.add_answer(dnslib.RR(request.record.q.qname, dnslib.QTYPE.TXT, ident.CHAOS, 0,
                                       dnslib.TXT(text.encode())))
        elif qclass not in (dns.rdataclass.IN, dns.rdataclass.ANY):
            reply.header.rcode = dns.rcode.REFUSED
            ede = EDE_NOT_SUPPORTED
        elif request.qtype in (dns.rdatatype.AXFR, dns.rdatatype.IXFR):
            reply.header.rcode, ede = self._transfer(request, via_tcp)
        elif self.ops.secondary and self._unavailable(request.qname):
            reply.header.rcode = dns.rcode.SERVFAIL  # a secondary's zone not (or no longer) loaded, as NSD
        else:
            response = self.authority.lookup(request.qname, request.qtype, dnssec=request.dnssec_ok)
            if self.steering is not None:
                scope = self._steer(request, response, peer)
            self._fill(reply, response, any_class=qclass == dns.rdataclass.ANY)
            if response.outcome is Outcome.REFERRAL:
                cut = response.authority[0].name  # the NS RRset; DS or NSEC(3) proofs follow it
            if response.outcome is Outcome.REFUSED:
                ede = EDE_NOT_AUTHORITATIVE
        nsid = identity if request.nsid else None
        ecs = (request.ecs.reply_option(scope) if self.steering is not None and request.ecs is not None
               and version == 0 else None)
        opt = _opt(request, ede, nsid, ecs) if request.edns_size is not None else None
        limit = MAX_MESSAGE if via_tcp else _udp_limit(request.edns_size)
        return _pack_within(reply, opt, limit, cut)

    def _signed(self, wire: bytes, start: int, via_tcp: bool, peer: tuple[str, int] | None) -> Any:
        """A TSIG-signed request: checked (RFC 8945 §5.2), answered as if unsigned, the reply signed."""
        checked = tsig.check(wire, start, self.ops.keyring, self.ops.clock.wall())
        if checked.reply is not None:
            log.info("TSIG %s from %s", dns.rcode.to_text(checked.error), peer)
            return checked.reply
        signer = checked.signer
        assert signer is not None
        reply = self.handle(checked.unsigned, via_tcp, peer, signer=signer)
        if reply is None:
            return None
        if isinstance(reply, bytes):
            signed = signer.sign([reply])[0]
            limit = None if via_tcp else (query_key(checked.unsigned) or (b"", 0, PLAIN_UDP_SIZE))[2]
            if limit is not None and len(signed) > limit:
                # The signature pushed it past the client's size: the question alone, TC=1, signed
                # (RFC 8945 §5.3), and the client asks again over TCP.
                signed = signer.sign([tsig.error_reply(checked.unsigned, 0, TC)])[0]
            return signed
        if isinstance(reply, list):
            return signer.sign(reply)
        return _sign_later(reply, signer)

    def _stream(self, request: Request, via_tcp: bool, peer: tuple[str, int] | None,
                signer: tsig.Signer | None) -> list[bytes] | bytes | None:
        """The messages of an AXFR or IXFR we may send, or None for `_transfer`'s refusal."""
        record = request.record
        zone = self.authority.zones.get(request.qname)
        if (zone is None or record.q.qclass != dns.rdataclass.IN or _edns_version(record)
                or (request.qtype == dns.rdatatype.AXFR and not via_tcp)
                or not self.ops.may_transfer(peer, signer)):
            return None
        client_serial = None
        if request.qtype == dns.rdatatype.IXFR:
            soa = [rr for rr in record.auth if rr.rtype == dnslib.QTYPE.SOA]
            if len(soa) != 1 or len(record.auth) != 1:
                return _formerr(record)
            client_serial = soa[0].rdata.times[0]
        query = TransferQuery(record.header.id, bool(record.header.rd), request.qname, request.qtype,
                              request.edns_size is not None, request.dnssec_ok)
        messages = self.ops.stream(query, zone, client_serial, via_tcp, _udp_limit(request.edns_size))
        return messages if via_tcp else messages[0]

    def _steer(self, request: Request, response: Response, peer: tuple[str, int] | None) -> int:
        """Put a steered name's chosen RRset in place of the zone's; returns the ECS scope it was chosen for."""
        if response.outcome is not Outcome.ANSWER or not all(
                rrset.name == request.qname and rrset.rdtype in (request.qtype, dns.rdatatype.RRSIG)
                for rrset in response.answer):
            return 0  # (a CNAME answer: the name it leads to is asked for separately)
        steered = self.steering.steer(request.qname, request.qtype, peer[0] if peer else None, request.ecs,
                                      dnssec=request.dnssec_ok)
        if steered is None:
            return 0
        rrset, scope, rrsig = steered
        response.answer = [rrset] if rrsig is None else [rrset, rrsig]
        return int(scope)

    def _transfer(self, request: Request, via_tcp: bool) -> tuple[int, int | None]:
        """The refusal of an AXFR or IXFR `_stream` will not send, as NSD words it."""
        if request.qtype == dns.rdatatype.AXFR and not via_tcp:
            return dns.rcode.NOTIMP, None  # AXFR is defined over TCP only (RFC 5936 §4.2)
        if request.qname in self.authority.zones:
            return dns.rcode.REFUSED, EDE_PROHIBITED  # our zone, but not for transfer
        return dns.rcode.NOTAUTH, None  # not a zone we serve (RFC 5936 §2.2.1)

    def _fill(self, reply: dnslib.DNSRecord, response: Response, any_class: bool = False) -> None:
        reply.header.rcode = int(response.rcode)
        # QCLASS * (RFC 1035 §3.2.5) is answered from our class IN data, but never
        # authoritatively (RFC 6895 §3.2: other classes may exist), so negative
        # answers carry no SOA, as NSD does.
        reply.header.aa = int(response.authoritative and not any_class)
        reply.rr = self._rrs(response.answer)
        negative = response.outcome in (Outcome.NXDOMAIN, Outcome.NODATA)
        # (NSD still sends the NSEC proofs then: only the SOA, and its RRSIG, go.)
        authority = response.authority
        if any_class and negative:
            authority = [r for r in authority if r.rdtype != dns.rdatatype.SOA and r.covers != dns.rdatatype.SOA]
        reply.auth = self._rrs(authority)
        reply.ar = self._rrs(response.additional)

    def _rrs(self, rrsets: list[dns.rrset.RRset]) -> list[dnslib.RR]:
        out: list[dnslib.RR] = []
        for rrset in rrsets:
            out.extend(self._records(rrset))
        return out


def _owns(zone: Zone, rrset: dns.rrset.RRset) -> bool:
    """Whether *rrset* is one of *zone*'s own, which live as long as the zone (not one made for a reply)."""
    if rrset.rdtype == dns.rdatatype.RRSIG:
        return zone.signature(rrset.name, rrset.covers) is rrset or rrset is zone.negative_soa_sig
    if rrset.rdtype == dns.rdatatype.NSEC3:
        return zone.nsec3.get(rrset.name) is rrset
    return zone.get(rrset.name, rrset.rdtype) is rrset or rrset is zone.negative_soa


_TRANSFER_TYPES = (dns.rdatatype.AXFR, dns.rdatatype.IXFR)


async def _sign_later(reply: Any, signer: tsig.Signer) -> bytes | None:
    wire = await reply
    return None if wire is None else signer.sign([wire])[0]


def _formerr(record: dnslib.DNSRecord) -> bytes:
    """FORMERR keeping the question (an IXFR without the client's SOA, RFC 1995 §3)."""
    reply = dnslib.DNSRecord(dnslib.DNSHeader(id=record.header.id, qr=1, rd=record.header.rd,
                                              rcode=dns.rcode.FORMERR), q=record.q)
    return _pack(reply)


class _FormatError(Exception):
    """A request we can read the header of but not understand."""


def _parse(wire: bytes) -> Request:
    try:
        record = dnslib.DNSRecord.parse(wire)
    except Exception as exc:  # noqa: BLE001 - dnslib raises several kinds on garbage
        raise _FormatError(str(exc)) from None
    if len(record.questions) != 1:
        raise _FormatError(f"{len(record.questions)} questions")
    # As NSD: a query carries no RCODE and no records but an OPT (and, for
    # IXFR, the client's SOA in authority, RFC 1995 §3).
    if record.header.rcode:
        raise _FormatError(f"RCODE {record.header.rcode} in a query")
    if record.rr or (record.auth and record.q.qtype != dnslib.QTYPE.IXFR):
        raise _FormatError("records in the answer or authority section")
    if any(rr.rtype != dnslib.QTYPE.OPT for rr in record.ar):
        raise _FormatError("additional records other than OPT")
    opts = [rr for rr in record.ar if rr.rtype == dnslib.QTYPE.OPT]
    if len(opts) > 1:
        raise _FormatError("more than one OPT record")
    if opts and opts[0].rname.label != ():
        raise _FormatError("OPT owner is not the root")
    question = record.q
    try:
        qname = dns.name.Name(question.qname.label + (b"",))
    except dns.exception.DNSException as exc:  # a name or a label too long (dnslib reads both)
        raise _FormatError(f"bad question name: {exc}") from None
    edns_size = max(opts[0].rclass, PLAIN_UDP_SIZE) if opts else None
    dnssec_ok = bool(opts and opts[0].ttl & 0x8000)
    options = ident.edns_options(wire) if opts else []
    return Request(record, qname, question.qtype, edns_size, dnssec_ok, ident.asks_for_nsid(options),
                   client_subnet(options))


def _edns_version(record: dnslib.DNSRecord) -> int:
    for rr in record.ar:
        if rr.rtype == dnslib.QTYPE.OPT:
            return (rr.ttl >> 16) & 0xFF
    return 0


def _opt(request: Request, ede: int | None = None, nsid: str | None = None, ecs: bytes | None = None) -> dnslib.RR:
    """Our OPT: our own UDP size, DO echoed as RFC 3225 asks, our NSID if asked (before the EDE,
    as NSD), and an Extended DNS Error if any."""
    options = [dnslib.EDNSOption(ident.NSID, nsid.encode())] if nsid is not None else []
    options += [dnslib.EDNSOption(ECS, ecs)] if ecs is not None else []
    options += [dnslib.EDNSOption(EDE, struct.pack("!H", ede))] if ede is not None else []
    return dnslib.EDNS0(udp_len=EDNS_UDP_SIZE, flags="do" if request.dnssec_ok else "", opts=options)


def _udp_limit(edns_size: int | None) -> int:
    if edns_size is None:
        return PLAIN_UDP_SIZE
    return min(edns_size, EDNS_UDP_SIZE)


def _pack_within(reply: dnslib.DNSRecord, opt: dnslib.RR | None, limit: int, cut: dns.name.Name | None) -> bytes:
    """Pack, leaving out what does not fit as NSD 4 does.

    Only whole RRsets go in, in order.  One that does not fit in the answer or
    authority section ends the reply there, with TC=1.  Additional data is
    optional: the A RRsets that fit go in, then, if all of them did, the AAAA
    RRsets that fit.  A referral (to *cut*) that loses glue for a name server
    inside the child also says TC=1, as RFC 9471 requires; NSD 4.6 sets it
    only when no A record fits (and so does dnslab).
    """
    if opt is not None:
        reply.ar.append(opt)
    wire = _pack(reply)
    if len(wire) <= limit:
        return wire
    additional = reply.ar[:-1] if opt is not None else reply.ar
    fitter = _Fitter(reply, limit - (_size(opt) if opt is not None else 0))
    kept: list[list[dnslib.RR]] = [[], [], []]
    truncated = False
    for index, section in enumerate((reply.rr, reply.auth)):
        for rrset in _rrsets(section):
            if truncated or not fitter.add(rrset):
                truncated = True
            else:
                kept[index] += rrset
    if not truncated:
        # NSD skips what does not fit, and tries the next group (AAAA after A)
        # only if nothing was skipped.
        groups: dict[int, list[list[dnslib.RR]]] = {}
        for rrset in _rrsets(additional):
            groups.setdefault(_ADDITIONAL_ORDER.get(rrset[0].rtype, 2), []).append(rrset)
        stop = False
        for _, group in sorted(groups.items()):
            missed = False
            for rrset in group:
                if not stop and fitter.add(rrset):
                    kept[2] += rrset
                else:
                    missed = True
                    truncated = truncated or _in_domain(rrset, cut)
            stop = stop or missed
        if cut is not None and 0 in groups and not any(rr.rtype == dnslib.QTYPE.A for rr in kept[2]):
            truncated = True  # NSD's own rule: a referral without a single A record
    reply.rr, reply.auth = kept[0], kept[1]
    reply.ar = kept[2] + ([opt] if opt is not None else [])
    reply.header.tc = int(truncated)
    return _pack(reply)


class _Fitter:
    """Packs a reply RRset by RRset, as NSD does, taking back one that does not fit."""

    def __init__(self, reply: dnslib.DNSRecord, room: int) -> None:
        self.buffer = _Buffer()
        reply.header.pack(self.buffer)
        for question in reply.questions:
            question.pack(self.buffer)
        self.room = room

    def add(self, rrset: list[dnslib.RR]) -> bool:
        buffer = self.buffer
        mark, names = len(buffer.data), dict(buffer.names)  # names: dnslib's compression table
        for rr in rrset:
            rr.pack(buffer)
        if len(buffer.data) <= self.room:
            return True
        del buffer.data[mark:]
        buffer.offset, buffer.names = mark, names
        return False


def _rrsets(records: list[dnslib.RR]) -> list[list[dnslib.RR]]:
    """Consecutive records of one owner and type: the RRsets as `_rrs` laid them out.

    The RRSIGs that follow an RRset and cover it belong to it: NSD packs an
    RRset and its signatures together or not at all, since a validator can use
    neither without the other.
    """
    rrsets: list[list[dnslib.RR]] = []
    for rr in records:
        if rrsets and rrsets[-1][0].rname == rr.rname and (
                rrsets[-1][-1].rtype == rr.rtype
                or (rr.rtype == _RRSIG and rrsets[-1][0].rtype == _covered(rr))):
            rrsets[-1].append(rr)
        else:
            rrsets.append([rr])
    return rrsets


_RRSIG = int(dns.rdatatype.RRSIG)


def _covered(rrsig: dnslib.RR) -> int:
    """The type an RRSIG record covers: the first two bytes of its RDATA."""
    data = rrsig.rdata.data if hasattr(rrsig.rdata, "data") else b""
    return int.from_bytes(data[:2], "big") if len(data) >= 2 else -1


def _in_domain(rrset: list[dnslib.RR], cut: dns.name.Name | None) -> bool:
    """Glue for a name server inside the delegated zone (RFC 9471 §2.1)."""
    return cut is not None and dns.name.Name(rrset[0].rname.label + (b"",)).is_subdomain(cut)


def _size(rr: dnslib.RR) -> int:
    buffer = _Buffer()
    rr.pack(buffer)
    return len(buffer.data)


def _pack(reply: dnslib.DNSRecord) -> bytes:
    """DNSRecord.pack with our _Buffer.  dnslib packs into a bytearray; callers
    are promised bytes (dnspython's from_wire, for one, cannot read names out
    of a bytearray)."""
    reply.set_header_qa()
    buffer = _Buffer()
    reply.header.pack(buffer)
    for section in (reply.questions, reply.rr, reply.auth, reply.ar):
        for item in section:
            item.pack(buffer)
    return bytes(buffer.data)


class _Buffer(dnslib.DNSBuffer):
    """dnslib's packing buffer, with compression pointers kept to their 14 bits.

    dnslib remembers the offset of every name it writes, also past 0x3FFF,
    where no pointer can reach (RFC 1035 §4.1.4): a reply over 16 KiB then
    pointed at the wrong place.  Names written that far are not pointed to,
    as in NSD.
    """

    def encode_name(self, name: Any) -> None:
        if not isinstance(name, dnslib.DNSLabel):
            name = dnslib.DNSLabel(name)
        if len(name) > 253:
            raise dnslib.DNSLabelError(f"Domain label too long: {name!r}")
        labels = list(name.label)
        while labels:
            pointer = self.names.get(tuple(labels))
            if pointer is not None:
                self.pack("!H", 0xC000 | pointer)
                return
            if self.offset <= 0x3FFF:
                self.names[tuple(labels)] = self.offset
            label = labels.pop(0)
            if len(label) > 63:
                raise dnslib.DNSLabelError(f"Label component too long: {label!r}")
            self.pack("!B", len(label))
            self.append(label)
        self.append(b"\x00")


def to_dnslib(rrset: dns.rrset.RRset) -> list[dnslib.RR]:
    """dnspython RRset -> dnslib records, keeping names' case and RFC 3597 semantics."""
    rname = _label(rrset.name)
    build = _COMPRESSIBLE.get(rrset.rdtype)
    records: list[dnslib.RR] = []
    for rdata in rrset:
        rd: dnslib.RD = dnslib.RD(rdata.to_wire()) if build is None else build(rdata)
        records.append(dnslib.RR(rname, int(rrset.rdtype), int(rrset.rdclass), rrset.ttl, rd))
    return records


def _label(name: dns.name.Name) -> dnslib.DNSLabel:
    """An absolute name as dnslib labels, byte for byte.

    Built from the labels rather than through dnslib's wire parser, which
    rejects any label that is not UTF-8 although RFC 2181 §11 allows every byte
    value; such a name in a zone's NS, CNAME, PTR, MX or SOA data used to make
    the server fail to start.
    """
    return dnslib.DNSLabel(list(name.labels[:-1]))
