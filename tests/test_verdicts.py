"""Validation verdicts for a client's answer (dnslab.resolution.verdicts): a generator of lookups, no sockets.

Each test plays the service: it answers the generator's lookups from signed
fixtures (or from a list of canned results) and checks what the client gets.
"""

from __future__ import annotations

import random
from dataclasses import replace
from typing import Callable, Generator, TypeVar

import dns.name
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest

from dnslab.core.clock import FakeClock
from dnslab.core.events import Done, Event, QuerySent
from dnslab.resolution.cache import Cache, CacheSettings, Rank
from dnslab.resolution.iterator import Result
from dnslab.resolution.validator import EDE_DNSSEC_BOGUS, Fetch, Security, Validator
from dnslab.resolution.verdicts import MAX_BOGUS_RETRIES, AnswerLast, Lookup, Step, client_answer, judge
from tests.dnssec_fixtures import NOW, Hierarchy, build

A = dns.rdatatype.A
N = dns.name.from_text
WWW = N("www.example.com.")
T = TypeVar("T")


@pytest.fixture(scope="module")
def signed() -> Hierarchy:
    return build()


def setup(signed: Hierarchy) -> tuple[Validator, Cache]:
    clock = FakeClock(wall_start=NOW)
    return Validator([signed.anchor()], clock), Cache(clock, CacheSettings(), random.Random(1))


def from_server(result: Result, address: str) -> Result:
    return replace(result, evidence=[replace(e, source=address) for e in result.evidence])


def tampered(signed: Hierarchy, address: str) -> Result:
    """www.example.com's signed answer with one address changed: its RRSIG no longer matches."""
    good = signed.answer(WWW, A)
    forged = dns.rrset.from_text(WWW, 3600, "IN", "A", "192.0.2.66", "192.0.2.2")
    return Result(dns.rcode.NOERROR, [forged], evidence=[replace(good.evidence[0], rrset=forged, source=address)])


def play(steps: Generator[Lookup, Result, T], signed: Hierarchy,
         client: Callable[[Lookup], Result], fetches: bool = False) -> tuple[T, list[Lookup]]:
    """Run the generator as the service would: DS/DNSKEY fetches from the fixtures (or *client* too, with
    *fetches*), the rest from *client*."""
    asked: list[Lookup] = []
    try:
        need = next(steps)
        for _ in range(100):
            asked.append(need)
            fetched = (signed.fetch(Fetch(need.qname, need.qtype)) if need.step is Step.FETCH and not fetches
                       else client(need))
            need = steps.send(fetched)
        raise AssertionError("the generator kept asking")
    except StopIteration as done:
        return done.value, asked


def test_a_secure_answer_is_kept_as_secure_in_the_cache(signed: Hierarchy) -> None:
    validator, cache = setup(signed)
    answer = signed.answer(WWW, A)
    cache.put(answer.answer[0], Rank.ANSWER)
    answered, asked = play(client_answer(validator, cache, WWW, A), signed, lambda need: answer)
    assert answered.result.rcode == dns.rcode.NOERROR and answered.security == Security.SECURE
    assert answered.result.security == Security.SECURE
    assert asked[0] == Lookup(Step.ASK, WWW, A) and {n.step for n in asked[1:]} == {Step.FETCH}
    hit = cache.get(WWW, A)
    assert hit is not None and hit.security == Security.SECURE  # a later hit is not judged again


def test_checking_disabled_or_rd0_asks_once_and_judges_nothing(signed: Hierarchy) -> None:
    validator, cache = setup(signed)
    bad = tampered(signed, "127.0.0.5")
    for flags in ({"checking_disabled": True}, {"cache_only": True}):
        answered, asked = play(client_answer(validator, cache, WWW, A, **flags), signed, lambda need: bad)
        assert answered.result is bad and answered.security is None  # RFC 4035 §3.2.2: the data as it is
        assert [n.step for n in asked] == [Step.ASK]
        assert asked[0].cache_only == bool(flags.get("cache_only"))


def test_a_bogus_answer_is_asked_again_avoiding_the_server_that_sent_it(signed: Hierarchy) -> None:
    validator, cache = setup(signed)
    first = tampered(signed, "127.0.0.5")
    cache.put(first.answer[0], Rank.ANSWER)
    good = from_server(signed.answer(WWW, A), "127.0.0.6")

    def client(need: Lookup) -> Result:
        return first if need.step is Step.ASK else good

    answered, asked = play(client_answer(validator, cache, WWW, A), signed, client)
    again = [n for n in asked if n.step is Step.AGAIN]
    assert again == [Lookup(Step.AGAIN, WWW, A, avoid=frozenset({"127.0.0.5"}))]
    assert cache.get(WWW, A) is None  # the bad copy was forgotten before asking again
    assert answered.result.rcode == dns.rcode.NOERROR and answered.security == Security.SECURE


def test_bogus_everywhere_ends_in_servfail_with_the_reason_after_bounded_retries(signed: Hierarchy) -> None:
    validator, cache = setup(signed)
    servers = iter(f"127.0.0.{n}" for n in range(10, 30))
    answered, asked = play(client_answer(validator, cache, WWW, A), signed,
                           lambda need: tampered(signed, next(servers)))
    assert [n.step for n in asked].count(Step.AGAIN) == MAX_BOGUS_RETRIES
    assert asked[-1].avoid == frozenset(f"127.0.0.{n}" for n in range(10, 10 + MAX_BOGUS_RETRIES))
    result = answered.result
    assert result.rcode == dns.rcode.SERVFAIL and answered.security == Security.BOGUS
    assert result.reason.startswith("DNSSEC validation failed: ") and result.ede == EDE_DNSSEC_BOGUS


def test_a_bogus_answer_from_the_same_server_again_is_not_asked_a_third_time(signed: Hierarchy) -> None:
    validator, cache = setup(signed)
    answered, asked = play(client_answer(validator, cache, WWW, A), signed,
                           lambda need: tampered(signed, "127.0.0.5"))
    assert [n.step for n in asked].count(Step.AGAIN) == 1  # nothing fresh to avoid after that
    assert answered.result.rcode == dns.rcode.SERVFAIL


def test_when_the_retry_fails_the_first_verdict_stands(signed: Hierarchy) -> None:
    validator, cache = setup(signed)

    def client(need: Lookup) -> Result:
        return tampered(signed, "127.0.0.5") if need.step is Step.ASK else Result(dns.rcode.SERVFAIL, reason="down")

    answered, _ = play(client_answer(validator, cache, WWW, A), signed, client)
    assert answered.result.reason.startswith("DNSSEC validation failed")


def test_failures_and_stale_data_are_not_judged(signed: Hierarchy) -> None:
    validator, cache = setup(signed)
    for result in (Result(dns.rcode.SERVFAIL), replace(tampered(signed, "127.0.0.5"), stale=True)):
        judged, asked = play(judge(validator, cache, result, WWW, A), signed, lambda need: result)
        assert judged.result is result and judged.verdict is None and asked == []


def test_the_trace_says_what_the_client_gets_last() -> None:
    seen: list[Event] = []
    held = AnswerLast(seen.append)
    sent = QuerySent(1, "com.", "a.gtld", "127.0.0.2", "example.com.", "DS", "DNSSEC", False, True)
    done = Done(0, "www.example.com.", "A", "NOERROR", ["www.example.com. 3600 IN A 192.0.2.66"], [], "", 1)
    held(done)
    held(sent)
    assert seen == [sent]  # the answer is held back
    bogus = Result(dns.rcode.SERVFAIL, reason="DNSSEC validation failed: bad signature")
    held.release(Result(dns.rcode.NOERROR), bogus)
    assert seen[-1] == replace(done, rcode="SERVFAIL", records=[], reason=bogus.reason, upstream_queries=1)


def test_a_parent_zones_bad_dnskey_is_forgotten_and_fetched_again_avoiding_its_server(signed: Hierarchy) -> None:
    # Deckard's black_ent: the answer is in example.com, but the DNSKEY set that fails is com's, from a
    # bad server (127.0.0.66), and the service keeps it in its cache like any fetched RRset. The retry
    # must forget it too (not only the answer's zone) and fetch it again avoiding that server.
    validator, cache = setup(signed)
    cache.on_flush.append(validator.keys.clear)  # as the service wires it
    com = N("com.")
    good = signed.fetch(Fetch(com, dns.rdatatype.DNSKEY)).evidence[0]
    forged = dns.rrset.RRset(com, good.rrset.rdclass, dns.rdatatype.DNSKEY)
    forged.update(good.rrset)
    forged.add(signed.fetch(Fetch(N("example.com."), dns.rdatatype.DNSKEY)).evidence[0].rrset[0], good.rrset.ttl)
    fetched_from: list[str] = []

    def fetch(need: Lookup) -> Result:
        if need.qname != com or need.qtype != dns.rdatatype.DNSKEY:
            return from_server(signed.fetch(Fetch(need.qname, need.qtype)), "127.0.0.2")
        hit = cache.get(com, dns.rdatatype.DNSKEY)
        if hit is not None:  # the service's fetch is answered from the cache when it can be
            return Result(dns.rcode.NOERROR, [hit.rrset], evidence=[replace(
                good, rrset=hit.rrset, sigs=hit.sigs, source=hit.entry.source)])
        server = "127.0.0.2" if "127.0.0.66" in need.avoid else "127.0.0.66"
        keys = good.rrset if server == "127.0.0.2" else forged
        fetched_from.append(server)
        cache.put(keys, Rank.ANSWER, source=server, sigs=good.sigs)
        return Result(dns.rcode.NOERROR, [keys], evidence=[replace(good, rrset=keys, source=server)])

    answer = from_server(signed.answer(WWW, A), "127.0.0.3")
    answered, asked = play(client_answer(validator, cache, WWW, A), signed,
                           lambda need: fetch(need) if need.step is Step.FETCH else answer, fetches=True)
    assert [n.avoid for n in asked if n.step is Step.AGAIN] == [frozenset({"127.0.0.66"})]
    assert fetched_from == ["127.0.0.66", "127.0.0.2"]
    assert answered.result.rcode == dns.rcode.NOERROR and answered.security == Security.SECURE


def test_a_signed_dnames_contradicting_cname_makes_the_answer_bogus_but_the_dname_stays(signed: Hierarchy) -> None:
    # Deckard's val_dname_bogus, as Knot Resolver judges it (RFC 6672 §3.2, §5.3.3): the server's CNAME
    # below a signed DNAME points elsewhere than the DNAME's synthesis. The iterator replaced it with
    # the synthesis (and says what the server claimed); validated, the answer is bogus. The DNAME itself
    # was proven, so it stays in the cache for the next question; unvalidated (CD=1), nothing changes.
    from dnslab.resolution.classify import synthesise_cname
    from dnslab.resolution.iterator import Evidence

    validator, cache = setup(signed)
    zone = signed.zones[N("example.com.")]
    owner, qname = N("old.example.com."), N("x.old.example.com.")
    dname = zone.find_rrset(owner, dns.rdatatype.DNAME)
    sigs = zone.get_rrset(owner, dns.rdatatype.RRSIG, dns.rdatatype.DNAME)
    cname = synthesise_cname(qname, N("x.www.example.com."), dname.ttl)
    cache.put(dname, Rank.ANSWER, "127.0.0.3", sigs, zone.origin)
    result = Result(dns.rcode.NOERROR, [dname, cname], evidence=[
        Evidence(dname, sigs, zone.origin, source="127.0.0.3"),
        Evidence(cname, None, zone.origin, synthesised=True, source="127.0.0.3", forged=N("evil.example."))])
    answered, asked = play(client_answer(validator, cache, qname, dns.rdatatype.CNAME), signed,
                           lambda need: result if need.step is Step.ASK else Result(dns.rcode.SERVFAIL))
    assert answered.result.rcode == dns.rcode.SERVFAIL and answered.security == Security.BOGUS
    assert answered.result.ede == EDE_DNSSEC_BOGUS
    assert "x.old.example.com. -> evil.example." in answered.result.reason
    assert "contradicts its synthesis" in answered.result.reason
    assert [n.avoid for n in asked if n.step is Step.AGAIN] == [frozenset({"127.0.0.3"})]
    hit = cache.get(owner, dns.rdatatype.DNAME)
    assert hit is not None and hit.security == Security.SECURE
    unchecked, _ = play(client_answer(validator, cache, qname, dns.rdatatype.CNAME, checking_disabled=True),
                        signed, lambda need: result)
    assert unchecked.result is result
    # The same answer without a contradicting CNAME from the server is secure.
    honest = replace(result, evidence=[result.evidence[0], replace(result.evidence[1], forged=None)])
    answered, _ = play(client_answer(validator, cache, qname, dns.rdatatype.CNAME), signed, lambda need: honest)
    assert answered.result.rcode == dns.rcode.NOERROR and answered.security == Security.SECURE
