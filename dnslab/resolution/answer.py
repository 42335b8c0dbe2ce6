"""The client's reply, built from a lookup's Result and the query's flags (sans-I/O).

What a recursive resolver puts in its reply is policy, not I/O: which queries it
refuses before any lookup, the flags (RA=1, AA=0, RD/CD/DO echoed, AD for a
secure answer asked with DO or AD), the Extended DNS Error of a failure, the
RRSIGs right after their RRset, a wildcard's proof, the negative answer's SOA,
TTLs counted down from the cache and round-robin order.  Here it is a function
of the query, the Result and the cache, tested without sockets; the service
only renders the message and sends it.

A reply made entirely of live cache data can be replayed later by the wire fast
path (`dnslab.core.fastpath`): `Reply.replay` says when, and `fast_answer` turns
the reply into the fast path's templates, one per round-robin step.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import dns.edns
import dns.exception
import dns.flags
import dns.message
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from dnslab.core.edns import opt_rdata, use_edns0
from dnslab.core.reader import header_flags, read_plain_query
from dnslab.core.writer import write_reply
from dnslab.core.fastpath import MAX_VARIANTS, RoundRobin, WireAnswer
from dnslab.core.wire import (DO_BIT, EDNS_UDP_SIZE, OPCODE_MASK, OPT, PLAIN_UDP_SIZE, header_only_reply,
                              record_spans, ttl_offsets)
from dnslab.resolution.cache import Cache, CacheHit, Rotation
from dnslab.resolution.iterator import Result, chain_end
from dnslab.resolution.validator import Security


@dataclass(frozen=True)
class Replay:
    """What the fast path needs to replay a reply: when each record expires, and its round-robin turn."""

    sources: tuple[tuple[float, int], ...]  # (expires_at, original TTL) per record, in the reply's order
    rotation: RoundRobin | None             # the cache entry whose turn picks the order (None: one order)
    turn: int                               # that entry's turn for this reply (0 without one)


@dataclass(frozen=True)
class Reply:
    """The reply to send; `replay` is None when it must not be replayed (stale data, RD=0, errors, proofs)."""

    message: dns.message.Message
    replay: Replay | None = None


def refusal(query: dns.message.Message) -> int | None:
    """The rcode for a query answered without any lookup, or None to resolve it.

    FORMERR (not one question) goes back as a bare header, as no question can be echoed.
    """
    if int(query.flags) & OPCODE_MASK:  # opcode() without its enum: not a QUERY (0)
        return dns.rcode.NOTIMP
    if len(query.question) != 1:
        return dns.rcode.FORMERR
    if query.edns > 0:
        return dns.rcode.BADVERS  # RFC 6891 §6.1.3: we speak EDNS version 0 only
    question = query.question[0]
    if question.rdclass != dns.rdataclass.IN:
        return dns.rcode.REFUSED
    if dns.rdatatype.is_metatype(question.rdtype) and question.rdtype != dns.rdatatype.ANY:
        return dns.rcode.NOTIMP
    return None


def error_reply(query: dns.message.Message, rcode: int) -> dns.message.Message:
    """An empty reply with our flags: RA=1, AA=0, RD and CD echoed, our EDNS if the client used it.

    A QUERY without EDNS padding (nearly every one) gets the Message make_response would make, built
    directly (make_response's enum arithmetic cost a third of building a cold name's reply), with the
    header word set_rcode would leave, in plain ints.
    """
    flags = int(query.flags)
    opt = opt_rdata(query)
    if not flags & OPCODE_MASK and (opt is None or not opt.options) and not query.had_tsig:
        reply = dns.message.QueryMessage(id=query.id)
        reply.question = list(query.question)
        if opt is not None:
            use_edns0(reply, query.ednsflags & DO_BIT, EDNS_UDP_SIZE, opt.payload)
        if 0 <= rcode < 16:
            # set_rcode's arithmetic when the rcode fits the header (its EDNS bits stay 0)
            reply.flags = header_flags(_QR_RA | (flags & _RD_CD) | rcode)
        else:
            reply.flags = header_flags(_QR_RA | (flags & _RD_CD))
            reply.set_rcode(rcode)
        return reply
    return _made_response(query, rcode)


def _made_response(query: dns.message.Message, rcode: int) -> dns.message.Message:
    """error_reply by dnspython's make_response: any opcode, TSIG, EDNS padding (RFC 8467)."""
    reply = dns.message.make_response(query, our_payload=EDNS_UDP_SIZE)
    reply.flags = dns.flags.QR | dns.flags.RA | (query.flags & (dns.flags.RD | dns.flags.CD))
    reply.set_opcode(query.opcode())  # the opcode lives in the flags word: echo it (NOTIMP for NOTIFY)
    if query.edns >= 0 and query.ednsflags & dns.flags.DO:
        reply.ednsflags |= dns.flags.DO  # RFC 3225 §3: the DO bit is copied into the response
    reply.set_rcode(rcode)
    return reply


_QR_RA = int(dns.flags.QR | dns.flags.RA)
_RD_CD = int(dns.flags.RD | dns.flags.CD)


def build_reply(query: dns.message.Message, result: Result, cache: Cache) -> Reply:
    """The reply to *query* carrying *result*.

    Records still live in *cache* are taken from it with their remaining TTL, and
    each multi-record RRset takes its next round-robin turn there (the cache's
    `get(rotate=True)`; the fast path advances the same counter), so a reply
    built here and one replayed later rotate as one.
    """
    reply = error_reply(query, result.rcode)  # the empty reply with our flags (an error's whole reply); filled below
    dnssec_ok = bool(query.ednsflags & DO_BIT)
    if result.security == Security.SECURE and (dnssec_ok or query.flags & dns.flags.AD):
        reply.flags |= dns.flags.AD  # RFC 6840 §5.7: AD for a client that asks with DO or AD
    if result.ede is not None and query.edns >= 0:
        reply.use_edns(0, reply.ednsflags, EDNS_UDP_SIZE,
                       options=[dns.edns.EDEOption(result.ede, result.reason[:200] or None)])
    sources: list[tuple[float, int]] | None = [] if not result.stale else None
    rotating = []
    signatures = ({(e.rrset.name, e.rrset.rdtype): e.sigs for e in result.evidence if e.sigs is not None}
                  if dnssec_ok else {})
    synthesised = {id(e.rrset) for e in result.evidence if e.synthesised}
    dname: CacheHit | None = None  # the DNAME hit a synthesised CNAME that follows derives from
    for rrset in result.answer:
        hit = None if id(rrset) in synthesised else cache.get(rrset.name, rrset.rdtype, rotate=True)
        if hit is not None and hit.rrset == rrset:
            reply.answer.append(hit.rrset)
            if sources is not None:
                sources.extend([(hit.expires_at, hit.original_ttl)] * len(hit.rrset))
            if len(hit.rrset) > 1:
                rotating.append(hit.entry)
            dname = hit if rrset.rdtype == dns.rdatatype.DNAME else None
        elif dname is not None and id(rrset) in synthesised:
            # RFC 6672 §3.4: the synthesised CNAME has the DNAME's TTL, and counts down with it.
            reply.answer.append(with_ttl(rrset, dname.rrset.ttl))
            if sources is not None:
                sources.append((dname.expires_at, dname.original_ttl))
            dname = None
        else:
            reply.answer.append(rrset)
            sources = None
        sigs = signatures.get((rrset.name, rrset.rdtype)) if signatures else None
        if sigs is not None:
            # RRSIGs go right after their RRset, with its TTL (RFC 4035 §3.1.1).
            answered = reply.answer[-1]
            reply.answer.append(with_ttl(sigs, answered.ttl))
            if sources is not None and hit is not None and hit.rrset == rrset:
                sources.extend([(hit.expires_at, hit.original_ttl)] * len(sigs))
            else:
                sources = None
    if len(rotating) > 1:
        sources = None  # two round-robin counters: the replay could not follow both
    if dnssec_ok and any(e.proof for e in result.evidence):
        # A wildcard expansion: the NSEC/NSEC3 proof that no closer name exists (RFC 4035 §3.1.3.3).
        reply.authority = []
        for rrset in (r for e in result.evidence for r in e.proof):
            if rrset not in reply.authority:  # RRsets are not hashable; a proof is a few of them
                reply.authority.append(rrset)
        if sources is None or result.rcode == dns.rcode.SERVFAIL or not sources:
            return Reply(reply)
        # The cache hands the proof out with the TTLs it was stored with (they do not count
        # down): replayed as they are for as long as the answer itself lives.
        lives = min(expires for expires, _ in sources)
        sources.extend((lives + rrset.ttl, rrset.ttl) for rrset in reply.authority for _ in rrset)
        return _replayable(reply, sources, rotating)
    if result.rcode == dns.rcode.SERVFAIL:
        return Reply(reply)
    reply.authority = list(result.authority)
    denial = result.denial
    if dnssec_ok and denial is not None and (denial.sigs is not None or denial.proof):
        # The signed denial as it came (SOA RRSIG, NSEC/NSEC3 and their RRSIGs); it is
        # rebuilt each time, so the wire fast path leaves it alone.
        soa_signed = denial.sigs is not None and denial.rrset.rdtype == dns.rdatatype.SOA
        extra = [with_ttl(denial.sigs, denial.rrset.ttl)] if soa_signed else []  # type: ignore[arg-type]
        reply.authority += extra + list(denial.proof)
        negative = (cache.get_negative(chain_end(query.question[0].name, result.answer), query.question[0].rdtype)
                    if sources is not None and soa_signed and result.authority == [denial.rrset] else None)
        if (negative is None or negative.ns is not None or negative.sigs is None or negative.soa != denial.rrset
                or len(negative.proof) != len(denial.proof)):
            return Reply(reply)
        # The signed denial as the cache holds it (SOA, its RRSIGs, the NSEC/NSEC3 proof):
        # every TTL is min(its own, what is left of the entry), so the replay counts them down.
        reply.authority = [negative.soa, with_ttl(negative.sigs, negative.soa.ttl), *negative.proof]
        assert sources is not None
        sources.extend((negative.expires_at, rrset.ttl) for rrset in reply.authority for _ in rrset)
        return _replayable(reply, sources, rotating)
    if result.authority:
        negative = None
        if result.authority[0].rdtype == dns.rdatatype.SOA:
            negative = cache.get_negative(chain_end(query.question[0].name, result.answer), query.question[0].rdtype)
        if negative is None:
            sources = None  # a referral (RD=0) or an uncached SOA: not replayed
        else:
            reply.authority = [negative.soa] + ([negative.ns] if negative.ns is not None else [])
            if sources is not None:
                records = sum(len(rrset) for rrset in reply.authority)
                sources.extend([(negative.expires_at, negative.original_ttl)] * records)
    elif not result.answer:
        sources = None
    if sources is None:
        return Reply(reply)
    return _replayable(reply, sources, rotating)


def _replayable(reply: dns.message.Message, sources: list[tuple[float, int]], rotating: list[RoundRobin]) -> Reply:
    """*reply* with what the fast path needs to replay it: each record's expiry and TTL, and its turn."""
    rotation = rotating[0] if rotating else None
    # The entry's turn was just taken for this reply: the one before its counter now.
    return Reply(reply, Replay(tuple(sources), rotation, rotation.turn - 1 if rotation is not None else 0))


def size_limit(query: dns.message.Message, via_tcp: bool, max_udp_size: int) -> int:
    """How large our reply may be: TCP's 64 KiB, else the client's EDNS size within our own limit."""
    if via_tcp:
        return 65535
    opt = opt_rdata(query)
    return PLAIN_UDP_SIZE if opt is None else min(max(opt.payload, PLAIN_UDP_SIZE), max_udp_size)


def render(reply: dns.message.Message, limit: int) -> bytes:
    """The reply on the wire; too large, it goes empty with TC=1 (the client asks again over TCP)."""
    written = write_reply(reply, limit)  # the common reply, dnspython's bytes without its renderer
    if written is not None:
        return written
    # want_shuffle=False: dnspython shuffles records when rendering by default,
    # which would undo the cache's round-robin order.
    try:
        return reply.to_wire(max_size=limit, want_shuffle=False)
    except dns.exception.TooBig:
        reply.answer, reply.authority, reply.additional = [], [], []
        reply.flags |= dns.flags.TC
        return reply.to_wire(max_size=limit, want_shuffle=False)


def fast_answer(reply: Reply, first: bytes, policy: Rotation,
                render_again: Callable[[dns.message.Message], bytes]) -> WireAnswer | None:
    """The fast path's ready answer for a replayable *reply* (sent as *first*): one template per
    round-robin step; None when it cannot be replayed faithfully."""
    replay = reply.replay
    if replay is None or policy is Rotation.RANDOM:
        return None  # a replayed random order would not be random
    rotation = None if policy is Rotation.FIXED else replay.rotation
    steps = 1 if rotation is None else len(rotation.rdatas)
    message = reply.message
    expires = min(expires for expires, _ in replay.sources)
    rcode_text, type_text = dns.rcode.to_text(message.rcode()), dns.rdatatype.to_text(message.question[0].rdtype)
    turn = replay.turn if rotation is not None else 0
    if first[2] & 0x02:
        # Truncated: no records, so every order looks the same; the counter still turns.
        return WireAnswer([(first, [])], expires, rcode_text, type_text, rotation, turn)
    if steps > MAX_VARIANTS:
        spin = _spin(message, first)
        offsets = [offset for offset, rtype in ttl_offsets(first) if rtype != OPT]
        if spin is None or len(offsets) != len(replay.sources):
            return None  # too many orders to keep, and no way to rotate the one template
        patches = [(offset, expires_at, ttl) for offset, (expires_at, ttl) in zip(offsets, replay.sources)]
        return WireAnswer([(first, patches)], expires, rcode_text, type_text, rotation, turn, spin=spin)
    variants = []
    for step in range(steps):
        if step:
            message.answer = [rotated(rrset, 1) if len(rrset) > 1 else rrset for rrset in message.answer]
            wire = render_again(message)
        else:
            wire = first
        offsets = [offset for offset, rtype in ttl_offsets(wire) if rtype != OPT]
        if len(offsets) != len(replay.sources):
            return None  # the reply is not the records we think it is: keep to the full path
        variants.append((wire, [(offset, expires, ttl) for offset, (expires, ttl) in zip(offsets, replay.sources)]))
    # The first template is the order just sent, the cache entry's turn before this reply.
    return WireAnswer(variants, expires, rcode_text, type_text, rotation, turn)


# Types whose data holds no names, so records of one size can move without breaking compression.
_NAMELESS = frozenset({dns.rdatatype.A, dns.rdatatype.AAAA})


def _spin(message: dns.message.Message, wire: bytes) -> tuple[int, int, int] | None:
    """The byte span (after the ID) of the reply's one rotating RRset and its record size, when its
    records can be rotated as bytes: addresses (no names in the data), all of one size and owner
    bytes, the same TTL (one RRset); else None."""
    first = 0
    found = None
    for rrset in message.answer:
        if len(rrset) > 1 and rrset.rdtype != dns.rdatatype.RRSIG:
            if found is not None or rrset.rdtype not in _NAMELESS:
                return None
            found = (first, first + len(rrset))
        first += len(rrset)
    if found is None:
        return None
    spans = record_spans(wire)[found[0]:found[1]]
    start, ttl, end, _ = spans[0]
    size, owner = end - start, wire[start:ttl]  # owner name, type and class
    if any(e - s != size or wire[s:t] != owner for s, t, e, _ in spans):
        return None
    return start - 2, spans[-1][2] - 2, size


def rotated(rrset: dns.rrset.RRset, step: int) -> dns.rrset.RRset:
    items = list(rrset)
    copy = rrset.copy()
    copy.items = dict.fromkeys(items[step:] + items[:step])
    return copy


def with_ttl(rrset: dns.rrset.RRset, ttl: int) -> dns.rrset.RRset:
    copy = rrset.copy()
    copy.ttl = ttl
    return copy


def parse_query(wire: bytes) -> tuple[dns.message.Message | None, bytes | None]:
    """A client's query parsed, or what to send instead: (query, None), or (None, reply) where the
    reply is None (silence: no full header, or a response sent to us, which answering could loop)
    or a FORMERR that keeps the header (anything else unparsable). The resolver and every caching
    level read their clients' queries so."""
    plain = read_plain_query(wire)  # most queries, without dnspython's parser
    if plain is not None:
        return plain, None
    try:
        query = dns.message.from_wire(wire)
    except dns.message.ShortHeader:
        return None, None
    except Exception:  # noqa: BLE001 - any unparsable query is a FORMERR, never a crash
        return None, header_only_reply(wire, dns.rcode.FORMERR)
    if query.flags & dns.flags.QR:
        return None, None
    return query, None
