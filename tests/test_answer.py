"""The client's reply from a Result and the query's flags (dnslab.resolution.answer): no sockets."""

from __future__ import annotations

import random

import dns.edns
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from dnslab.core.clock import FakeClock
from dnslab.core.fastpath import AnswerCache
from dnslab.core.reader import read_plain_query
from dnslab.resolution.answer import (
    _made_response,
    build_reply,
    error_reply,
    fast_answer,
    refusal,
    render,
    size_limit,
)
from dnslab.resolution.cache import Cache, CacheSettings, NegativeKind, Rank, Rotation
from dnslab.resolution.iterator import Evidence, Result

A = dns.rdatatype.A
NOERROR, SERVFAIL = dns.rcode.NOERROR, dns.rcode.SERVFAIL


def rrset(owner: str, ttl: int, rdtype: str, *rdatas: str) -> dns.rrset.RRset:
    return dns.rrset.from_text(owner, ttl, "IN", rdtype, *rdatas)


def query(name: str = "www.example.", rdtype: str = "A", **kwargs: object) -> dns.message.Message:
    return dns.message.make_query(name, rdtype, **kwargs)  # type: ignore[arg-type]


def cache(rotation: Rotation = Rotation.CYCLIC) -> tuple[Cache, FakeClock]:
    clock = FakeClock()
    return Cache(clock, CacheSettings(rotation=rotation), random.Random(1)), clock


def test_queries_refused_before_any_lookup() -> None:
    assert refusal(query()) is None
    notify = query()
    notify.set_opcode(dns.opcode.NOTIFY)
    assert refusal(notify) == dns.rcode.NOTIMP
    two = query()
    two.question.append(query("other.example.").question[0])
    assert refusal(two) == dns.rcode.FORMERR
    assert refusal(query(use_edns=1)) == dns.rcode.BADVERS
    assert refusal(dns.message.make_query("www.example.", "A", rdclass=dns.rdataclass.CH)) == dns.rcode.REFUSED
    assert refusal(query(rdtype="AXFR")) == dns.rcode.NOTIMP
    assert refusal(query(rdtype="ANY")) is None  # ANY is answered, as Unbound does


def test_an_error_reply_keeps_question_flags_and_the_do_bit() -> None:
    asked = query(want_dnssec=True)
    asked.flags |= dns.flags.CD
    reply = error_reply(asked, SERVFAIL)
    assert reply.rcode() == SERVFAIL and reply.question == asked.question and reply.id == asked.id
    assert reply.flags & dns.flags.RA and reply.flags & dns.flags.RD and reply.flags & dns.flags.CD
    assert not reply.flags & dns.flags.AA
    assert reply.ednsflags & dns.flags.DO
    assert error_reply(query(), NOERROR).edns < 0  # no EDNS from a client without it


def test_the_direct_error_reply_is_the_one_make_response_gives() -> None:
    """error_reply builds a plain QUERY's reply itself: the same Message as dnspython's make_response
    path (flags, EDNS, extended rcodes, bytes), which every other query (options, padding) still takes."""
    rng = random.Random(8)
    for index in range(600):
        asked = dns.message.make_query(rng.choice(["a.example.", "WwW.Example.COM."]), rng.choice(["A", "MX", "DS"]),
                                       use_edns=rng.choice([False, 0]), want_dnssec=rng.random() < 0.5,
                                       payload=rng.choice([512, 1232, 4096]))
        asked.id = index
        asked.flags = dns.flags.Flag(rng.choice([0, 0x0100, 0x0110, 0x0130, 0x05B0]))
        read = read_plain_query(asked.to_wire())  # the resolver's own reading, as parse_query gives it
        asked = dns.message.from_wire(asked.to_wire())
        for rcode in (NOERROR, SERVFAIL, dns.rcode.NXDOMAIN, dns.rcode.REFUSED, dns.rcode.BADVERS):
            direct, made = error_reply(asked, rcode), _made_response(asked, rcode)
            assert direct.to_wire() == made.to_wire() == error_reply(read, rcode).to_wire()
            assert type(direct.flags) is type(made.flags)
            assert (direct.flags, direct.edns, direct.ednsflags, direct.payload, direct.request_payload,
                    direct.pad, direct.rcode()) == (made.flags, made.edns, made.ednsflags, made.payload,
                                                    made.request_payload, made.pad, made.rcode())
    padded = dns.message.from_wire(dns.message.make_query("a.example.", "A", use_edns=0, pad=128).to_wire())
    assert error_reply(padded, SERVFAIL).pad == _made_response(padded, SERVFAIL).pad == 468  # RFC 8467


def test_a_live_cached_answer_is_replayable_and_takes_its_round_robin_turn() -> None:
    store, clock = cache()
    store.put(rrset("www.example.", 300, "A", "192.0.2.1", "192.0.2.2", "192.0.2.3"), Rank.ANSWER)
    clock.advance(10)
    hit = store.get(dns.name.from_text("www.example."), A)
    assert hit is not None
    first = build_reply(query(), Result(NOERROR, [hit.rrset]), store)
    second = build_reply(query(), Result(NOERROR, [hit.rrset]), store)
    assert first.message.answer[0].ttl == 290
    assert [r.to_text() for r in first.message.answer[0]] == ["192.0.2.1", "192.0.2.2", "192.0.2.3"]
    assert [r.to_text() for r in second.message.answer[0]] == ["192.0.2.2", "192.0.2.3", "192.0.2.1"]
    assert first.replay is not None and second.replay is not None
    assert first.replay.sources == ((hit.expires_at, 300),) * 3
    assert (first.replay.turn, second.replay.turn) == (0, 1)  # the turn each reply took, returned
    assert first.replay.rotation is second.replay.rotation is hit.entry


def test_what_is_never_replayed() -> None:
    store, _ = cache()
    data = rrset("www.example.", 300, "A", "192.0.2.1")
    store.put(data, Rank.ANSWER)
    assert build_reply(query(), Result(NOERROR, [data], stale=True), store).replay is None
    assert build_reply(query(), Result(SERVFAIL), store).replay is None
    uncached = rrset("other.example.", 300, "A", "192.0.2.9")
    assert build_reply(query("other.example."), Result(NOERROR, [uncached]), store).replay is None
    referral = Result(NOERROR, authority=[rrset("example.", 300, "NS", "ns1.example.")])
    assert build_reply(query(), referral, store).replay is None  # an RD=0 referral
    assert build_reply(query(), Result(NOERROR), store).replay is None  # nothing at all


def test_a_negative_answer_carries_the_cached_soa_with_its_remaining_ttl() -> None:
    store, clock = cache()
    soa = rrset("example.", 3600, "SOA", "ns1.example. hostmaster.example. 1 7200 900 1209600 900")
    name = dns.name.from_text("nope.example.")
    store.put_negative(name, A, NegativeKind.NXDOMAIN, soa)
    clock.advance(100)
    reply = build_reply(query("nope.example."), Result(dns.rcode.NXDOMAIN, authority=[soa]), store)
    assert reply.message.rcode() == dns.rcode.NXDOMAIN
    assert reply.message.authority[0].ttl == 800 and reply.replay is not None


def test_ad_only_for_a_secure_answer_asked_with_do_or_ad() -> None:
    store, _ = cache()
    data = rrset("www.example.", 300, "A", "192.0.2.1")
    secure = Result(NOERROR, [data], security="secure")
    assert not build_reply(query(), secure, store).message.flags & dns.flags.AD
    assert build_reply(query(want_dnssec=True), secure, store).message.flags & dns.flags.AD
    ad = query()
    ad.flags |= dns.flags.AD
    assert build_reply(ad, secure, store).message.flags & dns.flags.AD  # RFC 6840 §5.7
    insecure = Result(NOERROR, [data], security="insecure")
    assert not build_reply(query(want_dnssec=True), insecure, store).message.flags & dns.flags.AD


def test_a_failure_carries_its_extended_dns_error_to_an_edns_client() -> None:
    store, _ = cache()
    failed = Result(SERVFAIL, reason="DNSSEC validation failed: no signatures", ede=10)
    reply = build_reply(query(use_edns=0), failed, store).message
    (option,) = reply.options
    assert isinstance(option, dns.edns.EDEOption) and option.code == 10
    assert option.text == "DNSSEC validation failed: no signatures"
    assert build_reply(query(), failed, store).message.edns < 0  # no EDNS: no EDE


def test_rrsigs_follow_their_rrset_with_its_ttl_only_for_do() -> None:
    store, clock = cache()
    data = rrset("www.example.", 300, "A", "192.0.2.1")
    sigs = rrset("www.example.", 300, "RRSIG",
                 "A 13 2 300 20300101000000 20200101000000 12345 example. "
                 "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
    store.put(data, Rank.ANSWER, sigs=sigs)
    clock.advance(20)
    hit = store.get(data.name, A)
    assert hit is not None
    result = Result(NOERROR, [hit.rrset], evidence=[Evidence(hit.rrset, sigs=sigs)])
    signed = build_reply(query(want_dnssec=True), result, store)
    assert [r.rdtype for r in signed.message.answer] == [A, dns.rdatatype.RRSIG]
    assert signed.message.answer[1].ttl == 280  # the RRset's remaining TTL (RFC 4035 §3.1.1)
    assert signed.replay is not None and len(signed.replay.sources) == 2
    assert [r.rdtype for r in build_reply(query(), result, store).message.answer] == [A]


def test_a_wildcard_proof_goes_in_the_authority_section_and_is_replayed_as_given() -> None:
    store, _ = cache()
    data = rrset("a.wild.example.", 300, "A", "192.0.2.1")
    store.put(data, Rank.ANSWER)
    hit = store.get(dns.name.from_text("a.wild.example."), A)
    assert hit is not None
    nsec = rrset("wild.example.", 200, "NSEC", "z.example. A RRSIG NSEC")
    result = Result(NOERROR, [data], evidence=[Evidence(data, proof=(nsec, nsec))])
    reply = build_reply(query("a.wild.example.", want_dnssec=True), result, store)
    assert reply.message.authority == [nsec]  # once, though proved twice
    # The data counts down from its expiry; the proof keeps the TTL the cache gives it while the data lives.
    assert reply.replay is not None
    assert reply.replay.sources == ((hit.expires_at, 300), (hit.expires_at + 200, 200))
    assert build_reply(query("a.wild.example."), result, store).message.authority == []


def test_a_reply_too_big_for_udp_goes_empty_with_tc() -> None:
    many = rrset("big.example.", 300, "TXT", *(f'"{"x" * 200} {i}"' for i in range(5)))
    asked = query("big.example.", "TXT")
    reply = error_reply(asked, NOERROR)
    reply.answer.append(many)
    limit = size_limit(asked, False, 1232)
    assert limit == 512  # no EDNS: RFC 1035's 512 bytes
    wire = render(reply, limit)
    parsed = dns.message.from_wire(wire)
    assert parsed.flags & dns.flags.TC and not parsed.answer
    assert size_limit(asked, True, 1232) == 65535
    assert size_limit(query(use_edns=0, payload=4096), False, 1232) == 1232
    assert size_limit(query(use_edns=0, payload=100), False, 1232) == 512


def test_fast_answer_keeps_one_template_per_round_robin_step() -> None:
    store, clock = cache()
    store.put(rrset("www.example.", 300, "A", "192.0.2.1", "192.0.2.2"), Rank.ANSWER)
    hit = store.get(dns.name.from_text("www.example."), A)
    assert hit is not None
    asked = query()
    reply = build_reply(asked, Result(NOERROR, [hit.rrset]), store)
    limit = size_limit(asked, False, 1232)
    first = render(reply.message, limit)
    ready = fast_answer(reply, first, Rotation.CYCLIC, lambda m: render(m, limit))
    assert ready is not None and len(ready.variants) == 2 and ready.variants[0][0] == first
    assert ready.rcode_text == "NOERROR" and ready.type_text == "A"
    # Replayed, the next query gets the order the cache would give next, TTLs counted down.
    fast = AnswerCache(clock)
    clock.advance(5)
    again = dns.message.from_wire(fast.render(ready, asked.to_wire()))
    assert [r.to_text() for r in again.answer[0]] == ["192.0.2.2", "192.0.2.1"] and again.answer[0].ttl == 295
    assert fast_answer(reply, first, Rotation.RANDOM, lambda m: render(m, limit)) is None
    fixed = fast_answer(reply, first, Rotation.FIXED, lambda m: render(m, limit))
    assert fixed is not None and len(fixed.variants) == 1 and fixed.rotation is None
