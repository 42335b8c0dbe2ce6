"""The iteration state machine against in-process servers, scripted faults and a fake clock.

Every test drives a `Resolution` through `Harness.resolve` (tests/iterfake.py):
the servers are dnslab's own AuthoritativeServer over the sample zones or small
zone sets written inline, `net.faults` scripts misbehaviour, and `net.sent`
records each query the iterator asked for, so a test can assert what was sent,
to whom, in which order: the visible part of the behaviour.

Server choice is made deterministic by turning off infra's random exploration:
between equally good servers the first NS listed wins.
"""

from __future__ import annotations

import dataclasses
import inspect
from pathlib import Path
from typing import Callable

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest

from dnslab.resolution.cache import NegativeKind, Rank
from dnslab.resolution.infra import Breaker, Failure, InfraSettings
from dnslab.resolution.iterator import (HANDLERS, TRANSITIONS, Evidence, IteratorSettings, Query, Resolution, Result,
                                       State)
from dnslab.lab.hierarchy import zone_files
from dnslab.core.zone import load_zones

from iterfake import BROKEN, TIMEOUT, FakeNet, Harness, answer_text, chain_text, make_reply, zones

SAMPLE = Path(__file__).resolve().parent.parent / "dnslab" / "zones"
NO_EXPLORE = InfraSettings(explore_probability=0.0)
A, AAAA, NS = dns.rdatatype.A, dns.rdatatype.AAAA, dns.rdatatype.NS

ROOT_LETTERS = "abcdefghijklm"      # the sample's 13 root servers, at 127.0.1.1 to 127.0.1.13
ROOT_HINT = "127.0.1.1"          # a.root-servers.net in the sample, a.root. in the inline worlds
COM1, COM2 = "127.0.2.1", "127.0.2.2"
EXAMPLE_COM1, EXAMPLE_COM2 = "127.0.3.1", "127.0.3.2"
FAILOVER1, FAILOVER2 = "127.0.3.20", "127.0.3.21"


def n(text: str) -> dns.name.Name:
    return dns.name.from_text(text)


def harness(zone_list: list, **overrides: object) -> Harness:
    overrides.setdefault("infra_settings", NO_EXPLORE)
    return Harness(FakeNet(zone_list), **overrides)  # type: ignore[arg-type]


@pytest.fixture
def sample() -> Harness:
    loaded, _ = load_zones(zone_files(SAMPLE))
    return harness(loaded)


def sample_with(**overrides: object) -> Harness:
    loaded, _ = load_zones(zone_files(SAMPLE))
    return harness(loaded, **overrides)


# --- small worlds written as zone text -----------------------------------------------


def root(*lines: str) -> str:
    """A root zone served at 127.0.1.1 (a.root.), with the given delegations."""
    return "\n".join([
        "$ORIGIN .", "$TTL 86400",
        ". SOA a.root. hostmaster.root. 1 1800 900 604800 300",
        ". NS a.root.", "a.root. A 127.0.1.1", *lines]) + "\n"


def zone(origin: str, *lines: str, soa: str = "3600", minimum: int = 300) -> str:
    """A zone whose apex NS lines (and glue) come in `lines`."""
    return "\n".join([
        f"$ORIGIN {origin}", "$TTL 3600",
        f"@ {soa} SOA ns hostmaster 1 7200 3600 1209600 {minimum}", *lines]) + "\n"


def world(*texts: str, **overrides: object) -> Harness:
    return harness(zones(*texts), **overrides)


# The TLD test. on 127.0.2.1, with children written by each test.
def tld(*lines: str) -> str:
    return zone("test.", "@ NS ns", "ns A 127.0.2.1", *lines)


TEST_ROOT = root("test. NS ns.test.", "ns.test. A 127.0.2.1")


def servers_asked(h: Harness, start: int = 0) -> list[str]:
    return [q.address for q in h.net.sent[start:]]


def soa_ttl(result: Result) -> int:
    soas = [rrset for rrset in result.authority if rrset.rdtype == dns.rdatatype.SOA]
    assert len(soas) == 1, result.authority
    return soas[0].ttl


# --- walking the tree: priming, referrals, glue, the closest cached delegation -------


def test_walks_root_tld_authoritative(sample: Harness) -> None:
    result = sample.resolve("www.example.com.")
    assert result.rcode == dns.rcode.NOERROR
    assert answer_text(result) == [f"www.example.com. 300 IN A 192.0.2.{i}" for i in (1, 2, 3)]
    assert not result.from_cache
    assert sample.net.log() == [
        (ROOT_HINT, ".", "NS", "priming"),
        (ROOT_HINT, "com.", "A", "minimised"),
        (COM1, "example.com.", "A", "minimised"),
        (EXAMPLE_COM1, "www.example.com.", "A", "resolve"),
    ]
    assert all(q.edns and not q.tcp for q in sample.net.sent)


def test_priming_caches_the_root_ns_set_and_happens_once(sample: Harness) -> None:
    sample.resolve("www.example.com.")
    root_ns = sample.cache.get(dns.name.root, NS)
    assert root_ns is not None and root_ns.rank is Rank.AUTH_ANSWER
    assert sorted(r.target.to_text() for r in root_ns.rrset) == [
        f"{letter}.root-servers.net." for letter in ROOT_LETTERS]
    glue = sample.cache.get(n("b.root-servers.net."), A)
    assert glue is not None and glue.rank is Rank.ADDITIONAL
    start = len(sample.net.sent)
    sample.resolve("www.example.org.")
    assert "priming" not in [q.purpose for q in sample.net.sent[start:]]
    assert sample.net.sent[start].qname == n("org.")


def test_without_root_priming_the_hints_are_asked_the_question_itself() -> None:
    """Unbound's stub-prime: no (and Knot with its priming module unloaded), as harnesses expect."""
    h = sample_with(settings=IteratorSettings(root_priming=False))
    result = h.resolve("www.example.com.")
    assert result.rcode == dns.rcode.NOERROR and result.answer
    assert "priming" not in [q.purpose for q in h.net.sent]
    assert (h.net.sent[0].qname, h.net.sent[0].zone) == (n("com."), dns.name.root)


def test_priming_survives_a_dead_root_server(sample: Harness) -> None:
    sample.net.faults[ROOT_HINT] = lambda q, m: TIMEOUT
    result = sample.resolve("www.example.com.")
    assert result.rcode == dns.rcode.NOERROR
    assert sample.net.log()[:2] == [(ROOT_HINT, ".", "NS", "priming"), ("127.0.1.2", ".", "NS", "priming")]


def test_priming_with_every_root_server_dead_is_servfail(sample: Harness) -> None:
    for index, _ in enumerate(ROOT_LETTERS, start=1):
        sample.net.faults[f"127.0.1.{index}"] = lambda q, m: TIMEOUT
    result = sample.resolve("www.example.com.")
    assert result.rcode == dns.rcode.SERVFAIL
    assert result.reason == "every name server of . failed"
    assert len(sample.net.sent) == 2 * len(ROOT_LETTERS)  # each once, then each once more: a timeout may be one lost packet


def test_root_ns_set_without_addresses_reprimes_from_the_hints(sample: Harness) -> None:
    """The root servers' addresses flushed (or evicted) while the root NS set stays cached."""
    sample.resolve("www.example.com.")
    for letter in ROOT_LETTERS:
        sample.cache.flush_name(n(f"{letter}.root-servers.net."))
    start = len(sample.net.sent)
    result = sample.resolve("www.example.org.")
    assert result.rcode == dns.rcode.NOERROR
    assert sample.net.log(start)[:2] == [(ROOT_HINT, ".", "NS", "priming"), (ROOT_HINT, "org.", "A", "minimised")]


def test_starts_at_the_closest_cached_delegation(sample: Harness) -> None:
    sample.resolve("www.example.com.")
    start = len(sample.net.sent)
    assert sample.resolve("api.example.com.").rcode == dns.rcode.NOERROR
    assert sample.net.log(start) == [(EXAMPLE_COM1, "api.example.com.", "A", "resolve")]
    start = len(sample.net.sent)
    assert sample.resolve("wiki.eng.example.com.").rcode == dns.rcode.NOERROR
    assert sample.net.log(start) == [
        (EXAMPLE_COM1, "eng.example.com.", "A", "minimised"),
        ("127.0.3.3", "wiki.eng.example.com.", "A", "resolve"),
    ]
    start = len(sample.net.sent)
    sample.resolve("www.failover.com.")
    assert sample.net.sent[start].address in (COM1, COM2)  # com. is known: no root query


def test_second_lookup_is_answered_from_the_cache(sample: Harness) -> None:
    sample.resolve("www.example.com.")
    start = len(sample.net.sent)
    sample.clock.advance(100)
    result = sample.resolve("www.example.com.")
    assert result.from_cache and len(sample.net.sent) == start
    assert {rrset.ttl for rrset in result.answer} == {200}


def test_referral_ns_and_glue_are_cached_with_their_ranks(sample: Harness) -> None:
    sample.resolve("www.example.com.")
    ranks = {(e.name.to_text(), dns.rdatatype.to_text(e.rdtype)): e.rank for e in sample.cache.entries()}
    assert ranks[("example.com.", "NS")] is Rank.AUTHORITY
    assert ranks[("ns1.example.com.", "A")] is Rank.ADDITIONAL
    assert ranks[("com.", "NS")] is Rank.AUTHORITY
    assert ranks[("www.example.com.", "A")] is Rank.AUTH_ANSWER


def test_glue_inside_the_bailiwick_is_used_without_lookups(sample: Harness) -> None:
    """org. gives ns1.example.org's address for ttl-demo.org (a sibling name, still inside org.)."""
    sample.resolve("t5.ttl-demo.org.")
    assert sample.net.log() == [
        (ROOT_HINT, ".", "NS", "priming"),
        (ROOT_HINT, "org.", "A", "minimised"),
        ("127.0.2.3", "ttl-demo.org.", "A", "minimised"),
        ("127.0.3.4", "t5.ttl-demo.org.", "A", "resolve"),
    ]


GLUE_WORLD = (
    root("test. NS ns.test.", "ns.test. A 127.0.2.1", "example. NS ns.example.", "ns.example. A 127.0.2.2"),
    tld("shop NS ns.hoster.example."),
    zone("example.", "@ NS ns", "ns A 127.0.2.2", "hoster NS ns.hoster", "ns.hoster A 127.0.3.5"),
    zone("hoster.example.", "@ NS ns", "ns A 127.0.3.5"),
    zone("shop.test.", "@ NS ns.hoster.example.", "www A 192.0.2.8"),
)


def test_glue_outside_the_delegating_zone_is_not_used_or_cached() -> None:
    h = world(*GLUE_WORLD)

    def forge_glue(query: Query, reply: dns.message.Message) -> None:
        extra = make_reply(dns.message.make_query(query.qname, query.qtype),
                           additional=("ns.hoster.example. 86400 IN A 127.0.9.9",))
        reply.additional.extend(extra.additional)

    h.net.faults["127.0.2.1"] = h.net.tampered("127.0.2.1", forge_glue)
    result = h.resolve("www.shop.test.")
    assert answer_text(result) == ["www.shop.test. 3600 IN A 192.0.2.8"]
    assert "127.0.9.9" not in servers_asked(h)
    ns_address = h.cache.get(n("ns.hoster.example."), A)
    assert ns_address is not None and [r.address for r in ns_address.rrset] == ["127.0.3.5"]
    assert not any("127.0.9.9" in (e.rrset.to_text() if e.rrset else "") for e in h.cache.entries())


def test_glueless_ns_name_is_resolved_and_only_its_ipv4_address(sample: Harness) -> None:
    result = sample.resolve("www.example.net.")
    assert answer_text(result) == ["www.example.net. 3600 IN A 192.0.2.50"]
    assert sample.net.log() == [
        (ROOT_HINT, ".", "NS", "priming"),
        (ROOT_HINT, "net.", "A", "minimised"),
        ("127.0.2.4", "example.net.", "A", "minimised"),
        # example.net's servers are named under org. without glue: find one, A only.
        (ROOT_HINT, "org.", "A", "minimised"),
        ("127.0.2.3", "dns-host.org.", "A", "minimised"),
        ("127.0.3.10", "ns1.dns-host.org.", "A", "glueless NS"),
        ("127.0.3.10", "www.example.net.", "A", "resolve"),
    ]
    assert AAAA not in [q.qtype for q in sample.net.sent]


def test_reverse_lookup_through_empty_non_terminals_and_a_glueless_delegation(sample: Harness) -> None:
    result = sample.resolve("1.2.0.192.in-addr.arpa.", "PTR")
    assert answer_text(result) == ["1.2.0.192.in-addr.arpa. 3600 IN PTR www.example.com."]
    sent = sample.net.log()
    minimised = [qname for _, qname, qtype, purpose in sent if purpose == "minimised" and qname.endswith("arpa.")]
    assert minimised == ["arpa.", "in-addr.arpa.", "192.in-addr.arpa.", "0.192.in-addr.arpa.",
                         "2.0.192.in-addr.arpa."]
    assert sent[-1] == ("127.0.3.10", "1.2.0.192.in-addr.arpa.", "PTR", "resolve")


# --- QNAME minimisation ----------------------------------------------------------------


def test_qname_minimisation_reveals_one_label_per_zone_cut(sample: Harness) -> None:
    sample.resolve("wiki.eng.example.com.")
    assert [(qname, qtype, purpose) for _, qname, qtype, purpose in sample.net.log()[1:]] == [
        ("com.", "A", "minimised"),
        ("example.com.", "A", "minimised"),
        ("eng.example.com.", "A", "minimised"),
        ("wiki.eng.example.com.", "A", "resolve"),
    ]


def test_qname_minimisation_off_sends_the_full_name_everywhere() -> None:
    h = sample_with(settings=IteratorSettings(qname_minimisation=False))
    h.resolve("wiki.eng.example.com.", "TXT")
    assert h.net.log() == [
        (ROOT_HINT, ".", "NS", "priming"),
        (ROOT_HINT, "wiki.eng.example.com.", "TXT", "resolve"),
        (COM1, "wiki.eng.example.com.", "TXT", "resolve"),
        (EXAMPLE_COM1, "wiki.eng.example.com.", "TXT", "resolve"),
        ("127.0.3.3", "wiki.eng.example.com.", "TXT", "resolve"),
    ]


def test_minimised_queries_use_type_a_and_the_last_one_the_real_type(sample: Harness) -> None:
    sample.resolve("example.com.", "MX")
    assert sample.net.log()[1:] == [
        (ROOT_HINT, "com.", "A", "minimised"),
        (COM1, "example.com.", "MX", "resolve"),          # the full name: a referral
        (EXAMPLE_COM1, "example.com.", "MX", "resolve"),
    ]


DEEP_WORLD = (TEST_ROOT, tld("deep NS ns.deep", "ns.deep A 127.0.3.1"),
              zone("deep.test.", "@ NS ns", "ns A 127.0.3.1", "a.b.c.d A 192.0.2.4"))


def test_minimisation_walks_empty_non_terminals_label_by_label() -> None:
    h = world(*DEEP_WORLD)
    assert answer_text(h.resolve("a.b.c.d.deep.test.")) == ["a.b.c.d.deep.test. 3600 IN A 192.0.2.4"]
    asked_deep = [qname for address, qname, _, _ in h.net.log() if address == "127.0.3.1"]
    assert asked_deep == ["d.deep.test.", "c.d.deep.test.", "b.c.d.deep.test.", "a.b.c.d.deep.test."]


def test_minimisation_steps_are_bounded() -> None:
    h = world(*DEEP_WORLD, settings=IteratorSettings(max_minimise_steps=2))
    assert h.resolve("a.b.c.d.deep.test.").rcode == dns.rcode.NOERROR
    asked_deep = [qname for address, qname, _, _ in h.net.log() if address == "127.0.3.1"]
    assert asked_deep == ["d.deep.test.", "c.d.deep.test.", "a.b.c.d.deep.test."]


ENT_WORLD = (TEST_ROOT, tld("sub.ent NS ns.sub.ent", "ns.sub.ent A 127.0.3.1"),
             zone("sub.ent.test.", "@ NS ns", "ns A 127.0.3.1", "y.x A 192.0.2.5"))


def _nxdomain_for_ents(h: Harness, address: str) -> None:
    """A server that (wrongly) answers NXDOMAIN for empty non-terminals, as some still do."""
    def behave(query: Query, message: dns.message.Message) -> dns.message.Message | None:
        if query.qname == n("ent.test."):
            return make_reply(message, rcode=dns.rcode.NXDOMAIN,
                              authority=("test. 300 IN SOA ns.test. hostmaster.test. 1 7200 3600 1209600 300",))
        return h.net.ask(address, query, message)
    h.net.faults[address] = behave


def test_nxdomain_for_a_minimised_name_falls_back_to_the_full_name_then_minimises_again() -> None:
    """RFC 9156 relaxed mode; as Unbound does, the fallback holds for that zone only."""
    h = world(*ENT_WORLD)
    _nxdomain_for_ents(h, "127.0.2.1")
    result = h.resolve("y.x.sub.ent.test.")
    assert answer_text(result) == ["y.x.sub.ent.test. 3600 IN A 192.0.2.5"]
    assert h.net.log()[1:] == [
        (ROOT_HINT, "test.", "A", "minimised"),
        ("127.0.2.1", "ent.test.", "A", "minimised"),
        ("127.0.2.1", "y.x.sub.ent.test.", "A", "resolve"),
        ("127.0.3.1", "x.sub.ent.test.", "A", "minimised"),
        ("127.0.3.1", "y.x.sub.ent.test.", "A", "resolve"),
    ]


def test_ds_is_asked_in_full_at_the_parent(sample: Harness) -> None:
    sample.resolve("www.example.com.")
    start = len(sample.net.sent)
    sample.resolve("example.com.", "DS")
    assert sample.net.log(start) == [(COM1, "example.com.", "DS", "resolve")]


# --- CNAME and DNAME -------------------------------------------------------------------


def test_cname_inside_one_zone_comes_in_one_reply(sample: Harness) -> None:
    result = sample.resolve("ftp.example.com.")
    assert chain_text(result) == ["ftp.example.com. 3600 CNAME www.example.com.",
                                  "www.example.com. 300 A 192.0.2.1 192.0.2.2 192.0.2.3"]
    assert sample.net.log()[-1] == (EXAMPLE_COM1, "ftp.example.com.", "A", "resolve")


def test_cname_query_gets_the_cname_not_its_target(sample: Harness) -> None:
    result = sample.resolve("www.example.org.", "CNAME")
    assert chain_text(result) == ["www.example.org. 3600 CNAME www.example.com."]
    assert "www.example.com." not in [qname for _, qname, _, _ in sample.net.log()]


def test_names_compare_without_case(sample: Harness) -> None:
    assert sample.resolve("WWW.Example.COM.").rcode == dns.rcode.NOERROR
    start = len(sample.net.sent)
    assert sample.resolve("www.example.com.").from_cache and len(sample.net.sent) == start


def test_cname_into_another_tld_is_chased(sample: Harness) -> None:
    result = sample.resolve("www.example.org.")
    assert result.rcode == dns.rcode.NOERROR
    assert chain_text(result) == ["www.example.org. 3600 CNAME www.example.com.",
                                  "www.example.com. 300 A 192.0.2.1 192.0.2.2 192.0.2.3"]
    assert [(qname, purpose) for _, qname, _, purpose in sample.net.log()[1:]] == [
        ("org.", "minimised"), ("example.org.", "minimised"), ("www.example.org.", "resolve"),
        ("com.", "minimised"), ("example.com.", "minimised"), ("www.example.com.", "resolve"),
    ]
    # The CNAME is now cached: a second lookup costs nothing.
    start = len(sample.net.sent)
    again = sample.resolve("www.example.org.")
    assert again.from_cache and len(sample.net.sent) == start
    assert chain_text(again)[0] == "www.example.org. 3600 CNAME www.example.com."


def test_wildcard_cname_in_one_zone_to_another(sample: Harness) -> None:
    result = sample.resolve("anything.apps.pages.net.")
    assert chain_text(result) == ["anything.apps.pages.net. 3600 CNAME www.example.com.",
                                  "www.example.com. 300 A 192.0.2.1 192.0.2.2 192.0.2.3"]


DNAME_WORLD = (
    TEST_ROOT,
    tld("a NS ns.a", "ns.a A 127.0.3.1", "b NS ns.b", "ns.b A 127.0.3.2"),
    zone("a.test.", "@ NS ns", "ns A 127.0.3.1", "old 600 DNAME b.test.", "loop DNAME loop.b.test.",
         "grow DNAME x.grow.a.test."),
    zone("b.test.", "@ NS ns", "ns A 127.0.3.2", "www A 192.0.2.99", "loop DNAME loop.a.test."),
)


def test_dname_into_another_zone_is_chased_with_the_whole_chain() -> None:
    h = world(*DNAME_WORLD)
    result = h.resolve("www.old.a.test.")
    assert result.rcode == dns.rcode.NOERROR
    assert chain_text(result) == ["old.a.test. 600 DNAME b.test.",
                                  "www.old.a.test. 600 CNAME www.b.test.",
                                  "www.b.test. 3600 A 192.0.2.99"]
    assert h.net.log()[-2:] == [("127.0.2.1", "b.test.", "A", "minimised"),
                                ("127.0.3.2", "www.b.test.", "A", "resolve")]


def test_forged_cname_beside_a_dname_is_not_followed() -> None:
    h = world(*DNAME_WORLD)

    def forge(query: Query, reply: dns.message.Message) -> None:
        for rrset in reply.answer:
            if rrset.rdtype == dns.rdatatype.CNAME:
                reply.answer.remove(rrset)
                reply.answer.extend(make_reply(dns.message.make_query(query.qname, A),
                                               answer=(f"{query.qname} 600 IN CNAME evil.test.",)).answer)
                return

    h.net.faults["127.0.3.1"] = h.net.tampered("127.0.3.1", forge)
    result = h.resolve("www.old.a.test.")
    assert chain_text(result)[1] == "www.old.a.test. 600 CNAME www.b.test."
    assert "evil.test." not in [qname for _, qname, _, _ in h.net.log()]


@pytest.mark.parametrize("name", ["www.loop.a.test.", "www.grow.a.test."])
def test_dname_loops_are_servfail_at_once(name: str) -> None:
    h = world(*DNAME_WORLD)
    result = h.resolve(name)
    assert result.rcode == dns.rcode.SERVFAIL
    assert "loop" in result.reason or "CNAME" in result.reason
    assert len(h.net.sent) <= 8
    assert h.elapsed < 0.2  # no timeouts were waited for


CHAIN_WORLD = (
    TEST_ROOT,
    tld("x NS ns.x", "ns.x A 127.0.3.1", "y NS ns.y", "ns.y A 127.0.3.2"),
    # c0.x -> c1.y -> c2.x -> ... -> c11.y (11 CNAMEs) -> A;  d0.x ... d12.x (12 CNAMEs).
    zone("x.test.", "@ NS ns", "ns A 127.0.3.1",
         *[f"c{i} CNAME c{i + 1}.y.test." for i in range(0, 11, 2)],
         *[f"d{i} CNAME d{i + 1}.y.test." for i in range(0, 12, 2)], "d12 A 192.0.2.12",
         "loop CNAME loop.y.test.", "self CNAME self", "inzone CNAME in1", "in1 CNAME in2", "in2 CNAME in3",
         "in3 A 192.0.2.3"),
    zone("y.test.", "@ NS ns", "ns A 127.0.3.2",
         *[f"c{i} CNAME c{i + 1}.x.test." for i in range(1, 11, 2)], "c11 A 192.0.2.11",
         *[f"d{i} CNAME d{i + 1}.x.test." for i in range(1, 12, 2)],
         "loop CNAME loop.x.test."),
)


def test_cname_chain_of_eleven_across_zones_is_followed() -> None:
    h = world(*CHAIN_WORLD)
    result = h.resolve("c0.x.test.")
    assert result.rcode == dns.rcode.NOERROR
    assert [line.split()[0] for line in chain_text(result)] == [f"c{i}.{'xy'[i % 2]}.test." for i in range(12)]
    assert chain_text(result)[-1] == "c11.y.test. 3600 A 192.0.2.11"


def test_cname_chain_of_twelve_is_servfail() -> None:
    h = world(*CHAIN_WORLD)
    result = h.resolve("d0.x.test.")
    assert result.rcode == dns.rcode.SERVFAIL
    assert result.reason == "CNAME chain longer than 11"
    assert "d12.x.test." not in [qname for _, qname, _, _ in h.net.log()]


def test_cname_chain_limit_is_configurable_and_counts_in_zone_steps() -> None:
    h = world(*CHAIN_WORLD, settings=IteratorSettings(max_cname_chain=2))
    result = h.resolve("inzone.x.test.")
    assert result.rcode == dns.rcode.SERVFAIL
    assert result.reason == "CNAME chain longer than 2"
    assert h.net.log()[-1] == ("127.0.3.1", "inzone.x.test.", "A", "resolve")  # one reply held the chain
    ok = world(*CHAIN_WORLD, settings=IteratorSettings(max_cname_chain=3))
    assert ok.resolve("inzone.x.test.").rcode == dns.rcode.NOERROR


@pytest.mark.parametrize("name", ["loop.x.test.", "self.x.test."])
def test_cname_loops_are_servfail_at_once(name: str) -> None:
    h = world(*CHAIN_WORLD)
    result = h.resolve(name)
    assert result.rcode == dns.rcode.SERVFAIL
    assert "loop" in result.reason
    to_zones = [q for q in h.net.sent if q.address in ("127.0.3.1", "127.0.3.2")]
    assert len(to_zones) <= 3
    assert h.elapsed < 0.2


def test_cname_loop_found_in_the_cache_is_servfail_without_queries() -> None:
    h = world(*CHAIN_WORLD)
    h.resolve("loop.x.test.")
    start = len(h.net.sent)
    result = h.resolve("loop.x.test.")
    assert result.rcode == dns.rcode.SERVFAIL and len(h.net.sent) == start


# --- TCP and EDNS ----------------------------------------------------------------------


def test_truncated_reply_is_asked_again_over_tcp_at_the_same_server(sample: Harness) -> None:
    result = sample.resolve("big.example.com.", "TXT")
    assert result.rcode == dns.rcode.NOERROR
    assert len(result.answer) == 1 and len(result.answer[0]) == 10
    last_two = sample.net.sent[-2:]
    assert [(q.address, q.qname.to_text(), q.tcp) for q in last_two] == [
        (EXAMPLE_COM1, "big.example.com.", False), (EXAMPLE_COM1, "big.example.com.", True)]
    assert not any(q.tcp for q in sample.net.sent[:-1])


def test_a_reply_truncated_over_tcp_is_not_used(sample: Harness) -> None:
    # An RRset over 64 KB cannot come whole even over TCP: the server sends TC=1 and what fits.
    # That part is not the RRset (Knot Resolver marks the server broken); the next server is asked.
    def truncate_tcp(query: Query, message: dns.message.Message) -> dns.message.Message | None:
        reply = sample.net.ask(EXAMPLE_COM1, query, message)
        if reply is not None and query.tcp:
            reply.flags |= dns.flags.TC
            reply.answer = []
        return reply
    sample.net.faults[EXAMPLE_COM1] = truncate_tcp
    sample.net.faults[EXAMPLE_COM2] = truncate_tcp
    result = sample.resolve("big.example.com.", "TXT")
    assert result.rcode == dns.rcode.SERVFAIL and not result.answer
    assert {(q.address, q.tcp) for q in sample.net.sent if q.qname.to_text() == "big.example.com."} >= {
        (EXAMPLE_COM1, True), (EXAMPLE_COM2, True)}


def _formerr_to_edns(h: Harness, address: str) -> None:
    def behave(query: Query, message: dns.message.Message) -> dns.message.Message | None:
        if message.edns >= 0:
            return make_reply(message, rcode=dns.rcode.FORMERR, aa=False)
        return h.net.ask(address, query, message)
    h.net.faults[address] = behave


def test_formerr_to_edns_is_retried_without_it_and_remembered(sample: Harness) -> None:
    _formerr_to_edns(sample, EXAMPLE_COM1)
    result = sample.resolve("www.example.com.")
    assert result.rcode == dns.rcode.NOERROR
    assert [(q.address, q.edns) for q in sample.net.sent[-2:]] == [(EXAMPLE_COM1, True), (EXAMPLE_COM1, False)]
    assert not sample.infra.edns_supported(EXAMPLE_COM1)
    assert sample.infra.edns_supported(EXAMPLE_COM2)
    start = len(sample.net.sent)
    sample.resolve("api.example.com.")
    assert [(q.address, q.edns) for q in sample.net.sent[start:]] == [(EXAMPLE_COM1, False)]


def test_formerr_without_edns_moves_to_the_next_server(sample: Harness) -> None:
    sample.net.faults[EXAMPLE_COM1] = lambda q, m: make_reply(m, rcode=dns.rcode.FORMERR, aa=False)
    result = sample.resolve("www.example.com.")
    assert result.rcode == dns.rcode.NOERROR
    assert [(q.address, q.edns) for q in sample.net.sent[-3:]] == [
        (EXAMPLE_COM1, True), (EXAMPLE_COM1, False), (EXAMPLE_COM2, True)]


def test_a_name_a_server_cannot_parse_does_not_turn_edns_off(sample: Harness) -> None:
    # FORMERR with and without EDNS: the question is the problem, not EDNS.
    sample.net.faults[EXAMPLE_COM1] = lambda q, m: make_reply(m, rcode=dns.rcode.FORMERR, aa=False)
    sample.resolve("www.example.com.")
    assert sample.infra.edns_supported(EXAMPLE_COM1)


def test_edns_can_be_turned_off() -> None:
    h = sample_with(settings=IteratorSettings(edns=False))
    assert h.resolve("www.example.com.").rcode == dns.rcode.NOERROR
    assert not any(q.edns for q in h.net.sent)


# --- scrubbing and ranking ---------------------------------------------------------------


def test_out_of_bailiwick_records_are_never_cached(sample: Harness) -> None:
    def poison(query: Query, reply: dns.message.Message) -> None:
        extra = make_reply(dns.message.make_query(query.qname, query.qtype),
                           answer=("www.example.org. 300 IN A 6.6.6.6",),
                           authority=("example.org. 300 IN NS ns.evil.test.",),
                           additional=("ns.evil.test. 300 IN A 6.6.6.6", "ns1.example.org. 300 IN A 6.6.6.6"))
        reply.answer.extend(extra.answer)
        reply.authority.extend(extra.authority)
        reply.additional.extend(extra.additional)

    sample.net.faults[EXAMPLE_COM1] = sample.net.tampered(EXAMPLE_COM1, poison)
    result = sample.resolve("www.example.com.")
    assert answer_text(result) == [f"www.example.com. 300 IN A 192.0.2.{i}" for i in (1, 2, 3)]
    held = [e.rrset.to_text() for e in sample.cache.entries() if e.rrset is not None]
    assert not any("6.6.6.6" in text or "evil" in text for text in held)
    assert sample.cache.get(n("www.example.org."), A) is None
    assert sample.cache.get(n("example.org."), NS) is None
    # The real data is still reachable.
    assert chain_text(sample.resolve("www.example.org."))[0] == "www.example.org. 3600 CNAME www.example.com."


def test_cname_target_data_from_the_wrong_zone_is_re_resolved(sample: Harness) -> None:
    def poison(query: Query, reply: dns.message.Message) -> None:
        if query.qname == n("www.example.org."):
            reply.answer.extend(make_reply(dns.message.make_query(query.qname, A),
                                           answer=("www.example.com. 300 IN A 6.6.6.6",)).answer)

    sample.net.faults["127.0.3.4"] = sample.net.tampered("127.0.3.4", poison)
    result = sample.resolve("www.example.org.")
    assert "6.6.6.6" not in " ".join(chain_text(result))
    assert (EXAMPLE_COM1, "www.example.com.", "A", "resolve") in sample.net.log()


def test_glue_is_never_an_answer_and_the_authoritative_answer_replaces_it(sample: Harness) -> None:
    """RFC 2181 §5.4.1: additional-section data is not returned as an answer."""
    sample.resolve("www.example.com.")
    glue = sample.cache.get(n("ns1.example.com."), A)
    assert glue is not None and glue.rank is Rank.ADDITIONAL and glue.original_ttl == 86400
    start = len(sample.net.sent)
    result = sample.resolve("ns1.example.com.")
    assert sample.net.log(start) == [(EXAMPLE_COM1, "ns1.example.com.", "A", "resolve")]
    assert answer_text(result) == ["ns1.example.com. 3600 IN A 127.0.3.1"]
    better = sample.cache.get(n("ns1.example.com."), A)
    assert better is not None and better.rank is Rank.AUTH_ANSWER and better.original_ttl == 3600


def test_referral_ns_set_is_not_an_answer(sample: Harness) -> None:
    sample.resolve("www.example.com.")
    start = len(sample.net.sent)
    result = sample.resolve("example.com.", "NS")
    assert sample.net.log(start) == [(EXAMPLE_COM1, "example.com.", "NS", "resolve")]
    assert answer_text(result) == ["example.com. 3600 IN NS ns1.example.com.", "example.com. 3600 IN NS ns2.example.com."]
    ns = sample.cache.get(n("example.com."), NS)
    assert ns is not None and ns.rank is Rank.AUTH_ANSWER


def test_glue_never_overwrites_an_authoritative_answer(sample: Harness) -> None:
    sample.resolve("ns1.example.com.")
    before = sample.cache.get(n("ns1.example.com."), A)
    assert before is not None and before.rank is Rank.AUTH_ANSWER
    sample.cache.flush_name(n("example.com."))  # forget the delegation: com. refers us again, with glue
    sample.clock.advance(10)
    start = len(sample.net.sent)
    sample.resolve("api.example.com.")
    assert (COM1, "example.com.", "A", "minimised") in sample.net.log(start)
    after = sample.cache.get(n("ns1.example.com."), A)
    assert after is not None and after.rank is Rank.AUTH_ANSWER
    assert after.original_ttl == 3600 and after.remaining == 3590


# --- limits ------------------------------------------------------------------------------


def test_query_budget_per_client_query() -> None:
    h = sample_with(settings=IteratorSettings(max_queries=5))
    result = h.resolve("www.example.net.")  # needs 7 queries from a cold cache
    assert result.rcode == dns.rcode.SERVFAIL
    assert result.reason == "more than 5 upstream queries for one question"
    assert len(h.net.sent) == 5


def test_query_budget_counts_the_tcp_retry() -> None:
    h = sample_with(settings=IteratorSettings(max_queries=4))
    result = h.resolve("big.example.com.", "TXT")
    assert result.rcode == dns.rcode.SERVFAIL
    assert len(h.net.sent) == 4 and not h.net.sent[-1].tcp


def test_default_budget_stops_a_lookup_that_would_take_many_more_queries() -> None:
    """Sixty glueless NS names (limit lifted), each in its own zone whose server is dead:
    two queries per name, so the default budget of 50 ends it at the 25th."""
    h = world(root("test. NS ns.test.", "ns.test. A 127.0.2.1", "example. NS ns.example.", "ns.example. A 127.0.2.2"),
              tld(*[f"victim NS ns.h{i}.example." for i in range(60)]),
              zone("example.", "@ NS ns", "ns A 127.0.2.2",
                   *[f"h{i} NS ns.h{i}" for i in range(60)], *[f"ns.h{i} A 127.0.4.{i + 1}" for i in range(60)]),
              settings=IteratorSettings(max_glueless_per_delegation=100))
    result = h.resolve("www.victim.test.")
    assert result.rcode == dns.rcode.SERVFAIL
    assert result.reason == "more than 50 upstream queries for one question"
    assert len(h.net.sent) == 50


def test_referral_depth_is_bounded() -> None:
    h = sample_with(settings=IteratorSettings(max_referrals=2))
    assert h.resolve("www.example.com.").rcode == dns.rcode.NOERROR
    deep = sample_with(settings=IteratorSettings(max_referrals=2))
    result = deep.resolve("wiki.eng.example.com.")
    assert result.rcode == dns.rcode.SERVFAIL
    assert result.reason == "more than 2 referrals"


NXNS_WORLD = (
    root("test. NS ns.test.", "ns.test. A 127.0.2.1", "example. NS ns.example.", "ns.example. A 127.0.2.2"),
    tld(*[f"victim NS ns{i}.attacker.example." for i in range(10)]),
    zone("example.", "@ NS ns", "ns A 127.0.2.2", "attacker NS ns.attacker", "ns.attacker A 127.0.3.9"),
    zone("attacker.example.", "@ NS ns", "ns A 127.0.3.9"),
)


@pytest.mark.parametrize("limit", [5, 2])
def test_glueless_ns_names_per_delegation_are_bounded(limit: int) -> None:
    """NXNSAttack: a referral to many glueless NS names must not fan out into as many lookups."""
    h = world(*NXNS_WORLD, settings=IteratorSettings(max_glueless_per_delegation=limit))
    result = h.resolve("www.victim.test.")
    assert result.rcode == dns.rcode.SERVFAIL
    assert result.reason == "every name server of victim.test. failed"
    looked_up = [qname for _, qname, _, purpose in h.net.log() if purpose == "glueless NS"]
    assert looked_up == [f"ns{i}.attacker.example." for i in range(limit)]
    assert len(h.net.sent) == 3 + 2 + limit


LOOP_WORLD = (
    root("com. NS ns.com.", "ns.com. A 127.0.2.1", "net. NS ns.net.", "ns.net. A 127.0.2.2"),
    zone("com.", "@ NS ns", "ns A 127.0.2.1", "x NS ns.y.net."),
    zone("net.", "@ NS ns", "ns A 127.0.2.2", "y NS ns.x.com."),
    zone("x.com.", "@ NS ns.y.net.", "www A 192.0.2.1", "ns A 127.0.4.2"),
    zone("y.net.", "@ NS ns.x.com.", "ns A 127.0.4.1"),
)


def test_delegation_loop_is_servfail_at_once() -> None:
    """x.com is served by ns.y.net, y.net by ns.x.com, and neither has glue."""
    h = world(*LOOP_WORLD)
    result = h.resolve("www.x.com.")
    assert result.rcode == dns.rcode.SERVFAIL
    assert result.reason == "every name server of x.com. failed"
    assert h.net.log() == [
        (ROOT_HINT, ".", "NS", "priming"),
        (ROOT_HINT, "com.", "A", "minimised"),
        ("127.0.2.1", "x.com.", "A", "minimised"),
        (ROOT_HINT, "net.", "A", "minimised"),
        ("127.0.2.2", "y.net.", "A", "minimised"),
    ]
    assert h.elapsed < 0.2


def test_dependency_depth_is_bounded() -> None:
    """NS names that need NS names that need NS names...: stop at max_dependency_depth.

    z0.a is served by ns.z1.b, z1.b by ns.z2.a, ... and only z7.b has glue.
    """
    tlds = {"a": "127.0.2.1", "b": "127.0.2.2"}
    texts = [root(*[line for t, address in tlds.items() for line in (f"{t}. NS ns.{t}.", f"ns.{t}. A {address}")])]
    for t, address in tlds.items():
        cuts = [f"z{i} NS ns.z{i + 1}.{'ab'[(i + 1) % 2]}." for i in range(7) if "ab"[i % 2] == t]
        if t == "b":
            cuts += ["z7 NS ns.z7", "ns.z7 A 127.0.3.7"]
        texts.append(zone(f"{t}.", "@ NS ns", f"ns A {address}", *cuts))
    for i in range(8):
        apex = f"@ NS ns.z{i + 1}.{'ab'[(i + 1) % 2]}." if i < 7 else "@ NS ns"
        texts.append(zone(f"z{i}.{'ab'[i % 2]}.", apex, f"ns A 127.0.3.{i}", "www A 192.0.2.1"))
    deep = world(*texts)
    result = deep.resolve("www.z0.a.")
    assert result.rcode == dns.rcode.SERVFAIL
    assert result.reason == "every name server of z0.a. failed"
    glueless = [qname for _, qname, _, purpose in deep.net.log() if purpose == "glueless NS"]
    assert glueless == []  # the chain of NS names is cut before any of them reaches a server
    assert len(deep.net.sent) < 15
    ok = world(*texts, settings=IteratorSettings(max_dependency_depth=8))
    assert answer_text(ok.resolve("www.z0.a.")) == ["www.z0.a. 3600 IN A 192.0.2.1"]


# --- negative answers ----------------------------------------------------------------------


def test_nxdomain_is_cached_and_counted_down(sample: Harness) -> None:
    result = sample.resolve("nx.example.com.")
    assert result.rcode == dns.rcode.NXDOMAIN
    assert [rrset.to_text() for rrset in result.authority] == [
        "example.com. 300 IN SOA ns1.example.com. hostmaster.example.com. 2026112801 7200 3600 1209600 300"]
    assert sample.cache.get_negative(n("nx.example.com."), A).kind is NegativeKind.NXDOMAIN  # type: ignore[union-attr]
    start = len(sample.net.sent)
    sample.clock.advance(100)
    again = sample.resolve("nx.example.com.", "MX")  # NXDOMAIN covers every type
    assert again.rcode == dns.rcode.NXDOMAIN and again.from_cache
    assert len(sample.net.sent) == start
    assert soa_ttl(again) == 200
    sample.clock.advance(200)
    sample.resolve("nx.example.com.")
    assert len(sample.net.sent) == start + 1


def test_nodata_is_cached_per_type(sample: Harness) -> None:
    result = sample.resolve("v6only.example.com.")
    assert result.rcode == dns.rcode.NOERROR and result.answer == []
    assert soa_ttl(result) == 300
    start = len(sample.net.sent)
    sample.clock.advance(30)
    again = sample.resolve("v6only.example.com.")
    assert again.rcode == dns.rcode.NOERROR and again.answer == [] and again.from_cache
    assert soa_ttl(again) == 270 and len(sample.net.sent) == start
    sample.resolve("v6only.example.com.", "AAAA")
    assert len(sample.net.sent) == start + 1


@pytest.mark.parametrize(("soa_ttl_sent", "minimum", "expected"), [(3600, 120, 120), (50, 300, 50)])
def test_negative_ttl_is_the_smaller_of_soa_ttl_and_minimum(sample: Harness, soa_ttl_sent: int, minimum: int,
                                                            expected: int) -> None:
    def rewrite_soa(query: Query, reply: dns.message.Message) -> None:
        for rrset in reply.authority:
            if rrset.rdtype == dns.rdatatype.SOA:
                rrset.ttl = soa_ttl_sent
                rdata = rrset[0]
                rrset.clear()
                rrset.add(rdata.replace(minimum=minimum), soa_ttl_sent)

    sample.net.faults[EXAMPLE_COM1] = sample.net.tampered(EXAMPLE_COM1, rewrite_soa)
    result = sample.resolve("nx.example.com.")
    assert soa_ttl(result) == expected
    sample.clock.advance(expected - 1)
    start = len(sample.net.sent)
    assert soa_ttl(sample.resolve("nx.example.com.")) == 1 and len(sample.net.sent) == start
    sample.clock.advance(1)
    sample.resolve("nx.example.com.")
    assert len(sample.net.sent) == start + 1


def test_short_negative_ttl_of_the_ttl_demo_zone(sample: Harness) -> None:
    result = sample.resolve("missing.ttl-demo.org.")
    assert result.rcode == dns.rcode.NXDOMAIN and soa_ttl(result) == 10


def test_nxdomain_through_a_cname_keeps_the_chain_and_caches_the_target() -> None:
    h = world(TEST_ROOT, tld("x NS ns.x", "ns.x A 127.0.3.1"),
              zone("x.test.", "@ NS ns", "ns A 127.0.3.1", "alias CNAME gone"))
    result = h.resolve("alias.x.test.")
    assert result.rcode == dns.rcode.NXDOMAIN
    assert chain_text(result) == ["alias.x.test. 3600 CNAME gone.x.test."]
    assert h.cache.get_negative(n("gone.x.test."), A) is not None
    assert h.cache.get_negative(n("alias.x.test."), A) is None
    start = len(h.net.sent)
    again = h.resolve("alias.x.test.")
    assert again.rcode == dns.rcode.NXDOMAIN and chain_text(again) == chain_text(result)
    assert len(h.net.sent) == start


def test_nodata_through_a_cname(sample: Harness) -> None:
    result = sample.resolve("ftp.example.com.", "MX")
    assert result.rcode == dns.rcode.NOERROR
    assert chain_text(result) == ["ftp.example.com. 3600 CNAME www.example.com."]
    assert soa_ttl(result) == 300


# --- failover, hold-down and failure -------------------------------------------------------


def test_timeout_fails_over_to_the_next_server() -> None:
    h = sample_with()
    h.net.faults[FAILOVER1] = lambda q, m: TIMEOUT
    result = h.resolve("www.failover.com.")
    assert answer_text(result) == ["www.failover.com. 3600 IN A 192.0.2.70"]
    assert servers_asked(h)[-2:] == [FAILOVER1, FAILOVER2]
    assert h.net.sent[-2].timeout == pytest.approx(0.376)
    assert h.infra.view(FAILOVER1).last_failure is Failure.TIMEOUT
    start = len(h.net.sent)
    h.resolve("failover.com.", "SOA")
    assert servers_asked(h, start) == [FAILOVER2]  # the dead one is now the slow one


def _refused(q: Query, m: dns.message.Message) -> dns.message.Message:
    return make_reply(m, rcode=dns.rcode.REFUSED, aa=False)


def _servfail(q: Query, m: dns.message.Message) -> dns.message.Message:
    return make_reply(m, rcode=dns.rcode.SERVFAIL, aa=False)


def _lame_empty(q: Query, m: dns.message.Message) -> dns.message.Message:
    return make_reply(m, aa=False)


def _lame_upward(q: Query, m: dns.message.Message) -> dns.message.Message:
    return make_reply(m, aa=False, authority=("com. 172800 IN NS a.nic.com.",),
                      additional=("a.nic.com. 172800 IN A 127.0.2.1",))


def _lame_sideways(q: Query, m: dns.message.Message) -> dns.message.Message:
    return make_reply(m, aa=False, authority=("example.org. 172800 IN NS ns1.example.org.",))


def _broken(q: Query, m: dns.message.Message) -> object:
    return BROKEN


@pytest.mark.parametrize(("behaviour", "failure"), [
    (_refused, Failure.REFUSED), (_servfail, Failure.SERVFAIL), (_lame_empty, Failure.LAME),
    (_lame_upward, Failure.LAME), (_lame_sideways, Failure.LAME), (_broken, Failure.BROKEN),
    (lambda q, m: TIMEOUT, Failure.TIMEOUT),
], ids=["refused", "servfail", "lame-empty", "lame-upward-referral", "lame-sideways-referral", "broken",
        "timeout"])
def test_a_failing_server_is_skipped_for_the_next(sample: Harness, behaviour, failure: Failure) -> None:
    sample.net.faults[EXAMPLE_COM1] = behaviour
    result = sample.resolve("www.example.com.")
    assert result.rcode == dns.rcode.NOERROR
    assert answer_text(result) == [f"www.example.com. 300 IN A 192.0.2.{i}" for i in (1, 2, 3)]
    assert sample.net.log()[-2:] == [(EXAMPLE_COM1, "www.example.com.", "A", "resolve"),
                                     (EXAMPLE_COM2, "www.example.com.", "A", "resolve")]
    assert sample.infra.view(EXAMPLE_COM1).last_failure is failure
    assert "6.6.6.6" not in str(list(sample.cache.entries()))


def test_lame_upward_referral_does_not_replace_the_cached_delegation(sample: Harness) -> None:
    sample.net.faults[EXAMPLE_COM1] = _lame_upward
    sample.resolve("www.example.com.")
    com_ns = sample.cache.get(n("com."), NS)
    assert com_ns is not None and sorted(r.target.to_text() for r in com_ns.rrset) == ["a.nic.com.", "b.nic.com."]
    assert not any(q.address == COM1 and q.qname == n("www.example.com.") for q in sample.net.sent)


def test_every_server_failing_is_servfail_with_a_reason_and_few_queries(sample: Harness) -> None:
    sample.net.faults[EXAMPLE_COM1] = lambda q, m: TIMEOUT
    sample.net.faults[EXAMPLE_COM2] = _servfail
    result = sample.resolve("www.example.com.")
    assert result.rcode == dns.rcode.SERVFAIL
    assert result.reason == "every name server of example.com. failed"
    # The one that timed out is tried once more (a timeout may be one lost packet); the one
    # that answered SERVFAIL is not.
    assert [q.address for q in sample.net.sent if q.zone == n("example.com.")] == [EXAMPLE_COM1, EXAMPLE_COM2,
                                                                                    EXAMPLE_COM1]
    assert len(sample.net.sent) == 6


def test_the_last_live_server_is_tried_again_after_one_lost_reply(sample: Harness) -> None:
    sample.net.faults[EXAMPLE_COM1] = lambda q, m: TIMEOUT  # down
    lost = []

    def once(q: object, m: dns.message.Message) -> object:  # one reply lost, then all well
        if not lost:
            lost.append(q)
            return TIMEOUT
        return sample.net.served_as(EXAMPLE_COM2)(q, m)

    sample.net.faults[EXAMPLE_COM2] = once
    result = sample.resolve("www.example.com.")
    assert result.rcode == dns.rcode.NOERROR
    asked = [q.address for q in sample.net.sent if q.zone == n("example.com.")]
    assert asked.count(EXAMPLE_COM2) == 2 and asked[-1] == EXAMPLE_COM2


def test_a_failing_server_is_held_down_and_not_tried_while_another_can_be(sample: Harness) -> None:
    state = {"replies": 0}

    def fine_then_servfail(query: Query, message: dns.message.Message) -> dns.message.Message | None:
        state["replies"] += 1
        if state["replies"] == 1:
            return sample.net.ask(EXAMPLE_COM1, query, message)
        return _servfail(query, message)

    sample.net.faults[EXAMPLE_COM1] = fine_then_servfail
    sample.resolve("www.example.com.")  # ns1 answers and becomes the fast one
    asked = {}
    for name in ("api", "vpn", "mail", "ftp", "v6only"):
        start = len(sample.net.sent)
        assert sample.resolve(f"{name}.example.com.").rcode == dns.rcode.NOERROR
        asked[name] = servers_asked(sample, start)
    assert asked == {
        "api": [EXAMPLE_COM1, EXAMPLE_COM2],
        "vpn": [EXAMPLE_COM1, EXAMPLE_COM2],
        "mail": [EXAMPLE_COM1, EXAMPLE_COM2],      # third failure in a row: the breaker opens
        "ftp": [EXAMPLE_COM2],
        "v6only": [EXAMPLE_COM2],
    }
    assert sample.infra.view(EXAMPLE_COM1).breaker is Breaker.OPEN
    sample.clock.advance(60)  # past the hold-down: half-open, but still only probed when nothing else is left
    start = len(sample.net.sent)
    sample.resolve("example.com.", "TXT")
    assert servers_asked(sample, start) == [EXAMPLE_COM2]


def test_every_server_held_down_is_servfail_without_queries(sample: Harness) -> None:
    # SERVFAIL, not REFUSED: refusals are lameness for one zone and never hold an address down.
    sample.net.faults[EXAMPLE_COM1] = _servfail
    sample.net.faults[EXAMPLE_COM2] = _servfail
    for name in ("www", "api", "vpn"):
        assert sample.resolve(f"{name}.example.com.").rcode == dns.rcode.SERVFAIL
    start = len(sample.net.sent)
    result = sample.resolve("mail.example.com.")
    assert result.rcode == dns.rcode.SERVFAIL
    assert result.reason == "every name server of example.com. held down after failures"
    assert len(sample.net.sent) == start


def test_held_down_servers_are_probed_after_the_hold_down(sample: Harness) -> None:
    sample.net.faults[EXAMPLE_COM1] = _servfail
    sample.net.faults[EXAMPLE_COM2] = _servfail
    for name in ("www", "api", "vpn"):
        sample.resolve(f"{name}.example.com.")
    del sample.net.faults[EXAMPLE_COM1], sample.net.faults[EXAMPLE_COM2]
    sample.clock.advance(6)
    start = len(sample.net.sent)
    assert sample.resolve("mail.example.com.").rcode == dns.rcode.NOERROR
    assert servers_asked(sample, start) == [EXAMPLE_COM1]
    assert sample.net.sent[start].reason is not None and sample.net.sent[start].reason.value == "probe"


def test_a_zone_down_for_an_hour_is_back_within_one_probe_interval(sample: Harness) -> None:
    for address in (EXAMPLE_COM1, EXAMPLE_COM2):
        sample.net.faults[address] = lambda q, m: TIMEOUT
    start, end = len(sample.net.sent), sample.clock.now() + 3600
    asked = 0
    while sample.clock.now() < end:  # a question a second for an hour, every server of the zone dead
        assert sample.resolve(f"q{asked}.example.com.").rcode == dns.rcode.SERVFAIL
        asked += 1
        sample.clock.advance(1.0)
    tries = [q for q in sample.net.sent[start:] if q.address in (EXAMPLE_COM1, EXAMPLE_COM2)]
    interval = sample.infra.settings.probe_interval
    # Held down, not hammered: about one probe per server per probe interval, not one try per question.
    assert len(tries) <= 2 * (3600 / interval + 2)
    del sample.net.faults[EXAMPLE_COM1], sample.net.faults[EXAMPLE_COM2]
    back = sample.clock.now()
    while sample.resolve(f"q{asked}.example.com.").rcode == dns.rcode.SERVFAIL:
        asked += 1
        sample.clock.advance(1.0)
        assert sample.clock.now() - back <= 10 * interval
    # One probe interval, plus the second until the next question came.
    assert sample.clock.now() - back <= interval + 1.0


# --- IPv6 upstream -------------------------------------------------------------------------


V6_WORLD = (
    root("test. NS ns.test.", "ns.test. A 127.0.2.1", "example. NS ns.example.", "ns.example. A 127.0.2.2"),
    tld("dual NS ns.dual", "ns.dual A 127.0.5.1", "ns.dual AAAA 2001:db8::5",
        "v6 NS ns6.hoster.example."),
    zone("example.", "@ NS ns", "ns A 127.0.2.2", "hoster NS ns.hoster", "ns.hoster A 127.0.3.5"),
    zone("hoster.example.", "@ NS ns", "ns A 127.0.3.5", "ns6 AAAA 2001:db8::6", "ns6 A 127.0.5.6"),
    zone("dual.test.", "@ NS ns", "ns A 127.0.5.1", "ns AAAA 2001:db8::5", "www A 192.0.2.5"),
    zone("v6.test.", "@ NS ns6.hoster.example.", "www A 192.0.2.6"),
)


@pytest.mark.parametrize("ipv6", [False, True])
def test_ipv6_glue_is_used_only_with_ipv6_upstream(ipv6: bool) -> None:
    h = world(*V6_WORLD, settings=IteratorSettings(ipv6_upstream=ipv6))
    h.net.faults["127.0.5.1"] = lambda q, m: TIMEOUT
    h.net.faults["2001:db8::5"] = h.net.served_as("127.0.5.1")
    result = h.resolve("www.dual.test.")
    if ipv6:
        assert answer_text(result) == ["www.dual.test. 3600 IN A 192.0.2.5"]
        assert servers_asked(h)[-2:] == ["127.0.5.1", "2001:db8::5"]
    else:
        assert result.rcode == dns.rcode.SERVFAIL
        assert "2001:db8::5" not in servers_asked(h)


@pytest.mark.parametrize("ipv6", [False, True])
def test_glueless_ns_name_v6_only_server(ipv6: bool) -> None:
    """ns6.hoster.example has A and AAAA; its IPv4 address is dead.  AAAA is asked only with ipv6_upstream,
    and only once the IPv4 address proved useless."""
    h = world(*V6_WORLD, settings=IteratorSettings(ipv6_upstream=ipv6))
    h.net.faults["2001:db8::6"] = h.net.served_as("127.0.5.6")
    h.net.faults["127.0.5.6"] = lambda q, m: TIMEOUT
    result = h.resolve("www.v6.test.")
    types = [qtype for _, qname, qtype, _ in h.net.log() if qname == "ns6.hoster.example."]
    if ipv6:
        assert types == ["A", "AAAA"]
        assert answer_text(result) == ["www.v6.test. 3600 IN A 192.0.2.6"]
        assert h.net.log()[-4:] == [
            ("127.0.3.5", "ns6.hoster.example.", "A", "glueless NS"),
            ("127.0.5.6", "www.v6.test.", "A", "resolve"),          # times out
            ("127.0.3.5", "ns6.hoster.example.", "AAAA", "glueless NS"),
            ("2001:db8::6", "www.v6.test.", "A", "resolve"),
        ]
    else:
        assert types == ["A"]
        assert result.rcode == dns.rcode.SERVFAIL


# --- RD=0: the cache only ------------------------------------------------------------------


def test_cache_only_answers_from_the_cache_without_queries(sample: Harness) -> None:
    sample.resolve("www.example.org.")
    sample.resolve("nx.example.com.")
    start = len(sample.net.sent)
    hit = sample.resolve("www.example.org.", cache_only=True)
    assert hit.rcode == dns.rcode.NOERROR and hit.from_cache
    assert chain_text(hit)[0] == "www.example.org. 3600 CNAME www.example.com."
    negative = sample.resolve("nx.example.com.", cache_only=True)
    assert negative.rcode == dns.rcode.NXDOMAIN and negative.from_cache
    miss = sample.resolve("api.example.com.", cache_only=True)
    # Not cached: a referral to the closest cached delegation, as BIND gives.
    assert miss.rcode == dns.rcode.NOERROR and miss.answer == []
    assert [rrset.name.to_text() for rrset in miss.authority] == ["example.com."]
    assert len(sample.net.sent) == start


def test_cache_only_with_an_empty_cache_sends_nothing(sample: Harness) -> None:
    result = sample.resolve("www.example.com.", cache_only=True)
    assert result.rcode == dns.rcode.SERVFAIL and sample.net.sent == []


# --- the state machine's interface -----------------------------------------------------------


def test_next_action_repeats_the_pending_query_until_told(sample: Harness) -> None:
    resolution = Resolution(n("www.example.com."), A, cache=sample.cache, infra=sample.infra,
                            hints=sample.net.hints)
    first = resolution.next_action()
    assert isinstance(first, Query) and first.purpose == "priming"
    assert resolution.next_action() is first
    resolution.on_timeout(first)
    second = resolution.next_action()
    assert isinstance(second, Query) and second.address != first.address


def test_result_is_final(sample: Harness) -> None:
    sample.resolve("www.example.com.")
    resolution = Resolution(n("www.example.com."), A, cache=sample.cache, infra=sample.infra,
                            hints=sample.net.hints)
    result = resolution.next_action()
    assert isinstance(result, Result) and result.from_cache
    assert resolution.next_action() is result


# --- replies shared between lookups (the driver merged identical queries) ----------------------


def test_a_shared_outcome_is_used_but_not_counted_against_the_server_again(sample: Harness) -> None:
    """Another lookup sent the query and its driver counted the RTT or failure once already."""
    resolution = Resolution(n("www.example.com."), A, cache=sample.cache, infra=sample.infra,
                            hints=sample.net.hints)
    first = resolution.next_action()
    assert isinstance(first, Query) and first.purpose == "priming"
    resolution.on_timeout(first, shared=True)
    view = sample.infra.view(first.address)
    assert view.consecutive_failures == 0 and view.timeouts == 0
    second = resolution.next_action()
    assert isinstance(second, Query) and second.purpose == "priming" and second.address != first.address
    reply = sample.net.reply(second)
    assert isinstance(reply, dns.message.Message)
    resolution.on_reply(second, reply, 0.01, shared=True)
    assert sample.infra.view(second.address).srtt is None
    assert sample.cache.get(dns.name.root, NS) is not None  # the reply itself was read as ours
    third = resolution.next_action()
    assert isinstance(third, Query) and third.qname == n("com.")


def test_a_denial_without_soa_keeps_its_nsec3_proof_for_the_validator(sample: Harness) -> None:
    """Some servers answer NODATA (a DS question, typically) with NSEC3 records and no SOA:
    the proof must reach the validator, or a proven unsigned delegation looks unproven."""
    nsec3 = ("v8i9g2n8g2e3kq0ah3vkuvvbmrgs3dqk.example.com. 300 IN NSEC3 1 0 0 - "
             "0P9MHAVEQVM6T7VBL5LOP2U3T2RP3TOM NS")
    sample.net.faults[EXAMPLE_COM1] = lambda q, m: (make_reply(m, authority=(nsec3,)) if q.qtype == dns.rdatatype.MX
                                                      else sample.net.served_as(EXAMPLE_COM1)(q, m))
    sample.net.faults[EXAMPLE_COM2] = sample.net.faults[EXAMPLE_COM1]
    result = sample.resolve("www.example.com.", "MX")
    assert result.rcode == dns.rcode.NOERROR and not result.answer
    assert result.denial is not None and result.denial.rrset.rdtype == dns.rdatatype.NSEC3
    assert result.denial.negative is NegativeKind.NODATA and result.denial.zone == n("example.com.")


def test_a_referral_without_ds_keeps_its_nsec_proof_for_the_validator(sample: Harness) -> None:
    nsec = "example.com. 300 IN NSEC www.example.com. NS RRSIG NSEC"

    def with_proof(query: Query, reply: dns.message.Message) -> None:
        if any(r.rdtype == NS and r.name == n("example.com.") for r in reply.authority):
            reply.authority.extend(make_reply(dns.message.make_query(query.qname, A), authority=(nsec,)).authority)

    sample.net.faults[COM1] = sample.net.tampered(COM1, with_proof)
    sample.net.faults[COM2] = sample.net.tampered(COM2, with_proof)
    result = sample.resolve("www.example.com.")
    denial = result.ds_denials[n("example.com.")]
    assert denial.rrset.rdtype == dns.rdatatype.NSEC and denial.zone == n("com.")


# --- replies Unbound's iter_resptype.c reads otherwise than a strict reading would (Deckard) --------


def test_a_referral_wrongly_marked_authoritative_is_followed() -> None:
    """AA=1 on a delegation (iter_ns_badaa): taken as NODATA, it would deny a name that exists."""
    h = world(TEST_ROOT, tld("sub NS ns.sub", "ns.sub A 127.0.4.1"), zone("sub.test.", "@ NS ns", "ns A 127.0.4.1",
                                                                          "www A 192.0.2.7"))

    def aa_referral(query: Query, reply: dns.message.Message) -> None:
        reply.flags |= dns.flags.AA
    h.net.faults["127.0.2.1"] = h.net.tampered("127.0.2.1", aa_referral)
    result = h.resolve("www.sub.test.")
    assert result.rcode == dns.rcode.NOERROR
    assert answer_text(result) == ["www.sub.test. 3600 IN A 192.0.2.7"]


def test_an_authoritative_referral_upwards_is_lame() -> None:
    """AA=1 and the root's NS set in authority (iter_lame_aaaa): lame, not NODATA."""
    h = world(TEST_ROOT, tld("www A 192.0.2.1"))

    def upward(query: Query, message: dns.message.Message) -> dns.message.Message:
        return make_reply(message, authority=(". 3600 IN NS a.root.",), additional=("a.root. 3600 IN A 127.0.1.1",))
    h.net.faults["127.0.2.1"] = upward
    result = h.resolve("www.test.", "AAAA")
    assert result.rcode == dns.rcode.SERVFAIL
    assert h.infra.view("127.0.2.1").last_failure is Failure.LAME


def _only_an_a_record(query: Query, message: dns.message.Message) -> dns.message.Message:
    """iter_unexpectedrrtype: a non-authoritative reply with a record of another type than asked."""
    return make_reply(message, aa=False, answer=(f"{query.qname} 0 IN A 192.0.2.2",))


def test_an_empty_reply_from_the_only_server_is_nodata_the_second_time() -> None:
    h = world(TEST_ROOT, tld("www A 192.0.2.1"))
    h.net.faults["127.0.2.1"] = _only_an_a_record
    result = h.resolve("www.test.", "AAAA")
    assert result.rcode == dns.rcode.NOERROR and result.answer == [] and result.authority == []
    assert [(q.address, q.qname.to_text()) for q in h.net.sent][-2:] == [("127.0.2.1", "www.test."),
                                                                          ("127.0.2.1", "www.test.")]


def test_an_empty_reply_to_a_minimised_query_is_asked_again_before_glueless_names() -> None:
    """The root's empty reply to a minimised name: ask it again (then take NODATA and go on),
    not first look up the root server's own missing AAAA address."""
    h = world(root("test. NS ns.test.", "ns.test. A 127.0.2.1", "ns.test. AAAA ::1"),
              tld("sub NS ns.sub", "ns.sub A 127.0.4.1"), zone("sub.test.", "@ NS ns", "ns A 127.0.4.1",
                                                              "www A 192.0.2.7"),
              settings=IteratorSettings(ipv6_upstream=True))
    h.net.faults["::1"] = h.net.served_as("127.0.2.1")
    empty = {"count": 0}

    def empty_once(query: Query, message: dns.message.Message) -> dns.message.Message | None:
        if query.purpose == "minimised" and not empty["count"]:
            empty["count"] += 1
            return make_reply(message, aa=False)
        return h.net.ask("127.0.1.1", query, message)
    h.net.faults["127.0.1.1"] = empty_once
    result = h.resolve("www.sub.test.")
    assert answer_text(result) == ["www.sub.test. 3600 IN A 192.0.2.7"]
    assert not any(q.purpose == "glueless NS" for q in h.net.sent)


def test_an_nxdomain_without_soa_for_a_minimised_name_falls_back_to_the_full_name() -> None:
    """iter_minim_a_nxdomain: a server that says NXDOMAIN (no AA, no SOA, its NS set) for an
    empty non-terminal: relaxed mode asks the full name rather than failing."""
    h = world(TEST_ROOT, tld("deep.er A 192.0.2.9"))

    def ent_nxdomain(query: Query, message: dns.message.Message) -> dns.message.Message | None:
        if query.purpose == "minimised":
            return make_reply(message, rcode=dns.rcode.NXDOMAIN, aa=False, authority=("test. 3600 IN NS ns.test.",))
        return h.net.ask("127.0.2.1", query, message)
    h.net.faults["127.0.2.1"] = ent_nxdomain
    result = h.resolve("deep.er.test.")
    assert answer_text(result) == ["deep.er.test. 3600 IN A 192.0.2.9"]


def test_minimised_queries_can_use_type_ns() -> None:
    h = world(TEST_ROOT, tld("sub NS ns.sub", "ns.sub A 127.0.4.1"), zone("sub.test.", "@ NS ns", "ns A 127.0.4.1",
                                                                          "www A 192.0.2.7"),
              settings=IteratorSettings(minimise_qtype=NS))
    result = h.resolve("www.sub.test.")
    assert answer_text(result) == ["www.sub.test. 3600 IN A 192.0.2.7"]
    assert [(name, rdtype) for _, name, rdtype, purpose in h.net.log() if purpose == "minimised"] == [
        ("test.", "NS"), ("sub.test.", "NS")]


# --- parent and child disagree (iter_pcdiff, iter_pcnamerec, iter_ns_badip) ------------------------

PCDIFF_WORLD = (
    root("test. NS ns.test.", "ns.test. A 127.0.2.1", "net. NS ns.net.", "ns.net. A 127.0.2.2"),
    tld("example NS ns.example.net."),
    zone("net.", "@ NS ns", "ns A 127.0.2.2", "example NS ns.example", "ns.example A 127.0.4.44"),
    # The child says its server is at .55, which fails; the parent's glue (.44) is right.
    zone("example.net.", "@ NS ns", "ns A 127.0.4.55"),
    zone("example.test.", "@ NS ns.example.net.", "www A 192.0.2.40"),
)


def _pcdiff() -> Harness:
    h = world(*PCDIFF_WORLD)
    h.net.faults["127.0.4.44"] = h.net.served_as("127.0.4.55")  # the real server, at the parent's address
    h.net.faults["127.0.4.55"] = lambda q, m: make_reply(m, rcode=dns.rcode.SERVFAIL, aa=False)
    return h


def test_parent_side_glue_is_the_last_resort_when_the_childs_address_fails() -> None:
    h = _pcdiff()
    result = h.resolve("www.example.test.")
    assert answer_text(result) == ["www.example.test. 3600 IN A 192.0.2.40"]
    assert [address for address, name, _, _ in h.net.log() if name == "www.example.test."][-1] == "127.0.4.44"
    # And again from the cache: the child's address fails again, the parent's glue still works.
    h.clock.advance(3601)
    assert answer_text(h.resolve("www.example.test.")) == ["www.example.test. 3600 IN A 192.0.2.40"]


def test_without_parent_side_glue_the_childs_failing_address_is_servfail() -> None:
    h = _pcdiff()
    h.net.faults["127.0.4.44"] = lambda q, m: make_reply(m, rcode=dns.rcode.SERVFAIL, aa=False)
    h.net.faults["127.0.2.2"] = h.net.tampered("127.0.2.2", lambda q, r: None)
    assert h.resolve("www.example.test.").rcode == dns.rcode.SERVFAIL


def test_expired_in_zone_glue_is_fetched_again_from_the_parent() -> None:
    """iter_ns_badip: ns1's glue (TTL 10) expires, ns2 fails: ask the parent for the delegation again."""
    h = world(TEST_ROOT, tld("example NS ns1.example", "example NS ns2.example", "ns1.example 10 A 127.0.4.1",
                             "ns2.example A 127.0.4.2"),
              zone("example.test.", "@ NS ns1", "@ NS ns2", "ns1 10 A 127.0.4.1", "ns2 A 127.0.4.2",
                   "www 10 A 192.0.2.10"))
    h.net.faults["127.0.4.2"] = lambda q, m: make_reply(m, rcode=dns.rcode.SERVFAIL, aa=False)
    assert answer_text(h.resolve("www.example.test.")) == ["www.example.test. 10 IN A 192.0.2.10"]
    h.clock.advance(20)
    result = h.resolve("www.example.test.")
    assert answer_text(result) == ["www.example.test. 10 IN A 192.0.2.10"]


# --- operator options: do-not-query-localhost, harden-glue ---------------------------------------


def test_do_not_query_localhost_skips_loopback_glue_but_not_the_hints() -> None:
    h = world(TEST_ROOT, tld("www A 192.0.2.1"), settings=IteratorSettings(do_not_query_localhost=True))
    result = h.resolve("www.test.")
    assert result.rcode == dns.rcode.SERVFAIL
    assert {q.address for q in h.net.sent} == {ROOT_HINT}  # the hint is on loopback, test.'s glue too


def test_harden_glue_off_uses_glue_outside_the_bailiwick() -> None:
    """iter_cycle_noh: x.test is served by ns.y.net and y.net by ns.x.test; each parent gives the
    other's address as (out-of-bailiwick) glue, which only harden_glue=False believes."""
    cycle = (
        root("test. NS ns.test.", "ns.test. A 127.0.2.1", "net. NS ns.net.", "ns.net. A 127.0.2.2"),
        tld("x NS ns.y.net."),
        zone("net.", "@ NS ns", "ns A 127.0.2.2", "y NS ns.x.test."),
        zone("x.test.", "@ NS ns.y.net.", "ns A 127.0.4.2", "www A 192.0.2.1"),
        zone("y.net.", "@ NS ns.x.test.", "ns A 127.0.4.1"),
    )

    def with_glue(address: str, glue: str) -> Callable[[Query, dns.message.Message], None]:
        def change(query: Query, reply: dns.message.Message) -> None:
            owner, ttl, rdclass, rdtype, rdata = glue.split()
            reply.additional.append(dns.rrset.from_text(owner, int(ttl), rdclass, rdtype, rdata))
        return change

    for harden, rcode in ((True, dns.rcode.SERVFAIL), (False, dns.rcode.NOERROR)):
        h = world(*cycle, settings=IteratorSettings(harden_glue=harden))
        h.net.faults["127.0.2.1"] = h.net.tampered("127.0.2.1", with_glue("127.0.2.1", "ns.y.net. 3600 IN A 127.0.4.1"))
        h.net.faults["127.0.2.2"] = h.net.tampered("127.0.2.2", with_glue("127.0.2.2", "ns.x.test. 3600 IN A 127.0.4.2"))
        assert h.resolve("www.x.test.").rcode == rcode


def test_a_negative_answer_passes_on_the_zones_ns_set_without_refreshing_the_delegation() -> None:
    """iter_domain_sale: the NXDOMAIN's authority (SOA and the zone's NS set) goes to the client,
    fresh and from the cache; the NS set never extends the cached delegation (ghost domains)."""
    h = world(TEST_ROOT, tld("example NS ns.example", "ns.example A 127.0.4.1"),
              zone("example.test.", "@ NS ns", "ns A 127.0.4.1", "www A 192.0.2.1"))

    def with_ns(query: Query, reply: dns.message.Message) -> None:
        if reply.rcode() == dns.rcode.NXDOMAIN:
            reply.authority.append(dns.rrset.from_text("example.test.", 3600, "IN", "NS", "ns.example.test."))
    h.net.faults["127.0.4.1"] = h.net.tampered("127.0.4.1", with_ns)
    h.resolve("www.example.test.")
    delegation = h.cache.get(n("example.test."), NS)
    assert delegation is not None
    h.clock.advance(100)
    for _ in range(2):  # fresh, then from the cache
        result = h.resolve("nx.example.test.")
        assert result.rcode == dns.rcode.NXDOMAIN
        assert [dns.rdatatype.to_text(rrset.rdtype) for rrset in result.authority] == ["SOA", "NS"]
        assert result.authority[1].ttl == result.authority[0].ttl  # the negative TTL
    assert result.from_cache
    after = h.cache.get(n("example.test."), NS)
    assert after is not None and after.expires_at == delegation.expires_at


# --- DNAME (Deckard's iter_dname_insec) -------------------------------------------------------------

DNAME_CACHE_WORLD = (
    TEST_ROOT,
    tld("d NS ns.d", "ns.d A 127.0.4.1", "target NS ns.target", "ns.target A 127.0.4.2"),
    zone("d.test.", "@ NS ns", "ns A 127.0.4.1", "alias DNAME target.test."),
    zone("target.test.", "@ NS ns", "ns A 127.0.4.2", "a A 192.0.2.1", "b.c A 192.0.2.2"),
)


def test_a_cached_dname_answers_other_names_below_it_without_asking() -> None:
    h = world(*DNAME_CACHE_WORLD)
    first = h.resolve("a.alias.d.test.")
    assert answer_text(first) == ["a.alias.d.test. 3600 IN CNAME a.target.test.",
                                  "a.target.test. 3600 IN A 192.0.2.1", "alias.d.test. 3600 IN DNAME target.test."]
    sent = len(h.net.sent)
    second = h.resolve("b.c.alias.d.test.")
    assert chain_text(second) == ["alias.d.test. 3600 DNAME target.test.",
                                  "b.c.alias.d.test. 3600 CNAME b.c.target.test.",
                                  "b.c.target.test. 3600 A 192.0.2.2"]
    assert not any(q.address == "127.0.4.1" for q in h.net.sent[sent:])  # d.test's server not asked


def test_a_dname_loop_is_servfail_with_the_looping_records() -> None:
    h = world(TEST_ROOT, tld("d NS ns.d", "ns.d A 127.0.4.1"), zone("d.test.", "@ NS ns", "ns A 127.0.4.1"))

    def cycle(query: Query, message: dns.message.Message) -> dns.message.Message:
        return make_reply(message, answer=("d.test. 3600 IN DNAME d.test.", f"{query.qname} 3600 IN CNAME {query.qname}"))
    h.net.faults["127.0.4.1"] = cycle
    result = h.resolve("cyc.d.test.")
    assert result.rcode == dns.rcode.SERVFAIL
    assert chain_text(result) == ["d.test. 3600 DNAME d.test.", "cyc.d.test. 3600 CNAME cyc.d.test."]


def test_a_dname_met_twice_on_a_chain_is_answered_once() -> None:
    """x. DNAME . turns shortloop.x.x. into shortloop.x. and that into shortloop.: one DNAME in the answer."""
    h = world(root("x. NS ns.test.", "test. NS ns.test.", "ns.test. A 127.0.2.1", "shortloop. TXT end"),
              zone("x.", "@ NS ns.test.", "@ DNAME ."), tld())
    result = h.resolve("shortloop.x.x.", "TXT")
    assert chain_text(result) == ["x. 3600 DNAME .", "shortloop.x.x. 3600 CNAME shortloop.x.",
                                  "shortloop.x. 3600 CNAME shortloop.", 'shortloop. 86400 TXT "end"']


def test_yxdomain_for_a_too_long_dname_result_is_passed_on_with_the_dname() -> None:
    long_target = ".".join(["x" * 63] * 3 + ["x" * 50]) + "."  # 244 octets: the owner's 61 more are too many
    h = world(TEST_ROOT, tld("d NS ns.d", "ns.d A 127.0.4.1"), zone("d.test.", "@ NS ns", "ns A 127.0.4.1"))

    def yxdomain(query: Query, message: dns.message.Message) -> dns.message.Message:
        return make_reply(message, rcode=dns.rcode.YXDOMAIN, answer=(f"d.test. 3600 IN DNAME {long_target}",))
    h.net.faults["127.0.4.1"] = yxdomain
    name = "y" * 60 + ".d.test."
    for _ in range(2):  # from the server, then from the cached DNAME
        result = h.resolve(name)
        assert result.rcode == dns.rcode.YXDOMAIN
        assert chain_text(result) == [f"d.test. 3600 DNAME {long_target}"]


def test_the_zones_own_ns_set_for_a_minimised_name_means_no_cut_here() -> None:
    """A non-authoritative reply with only the asked zone's NS set: lame for a full question,
    but for a minimised one it says the name has no cut (iter_dname_insec's x.x. NS)."""
    h = world(TEST_ROOT, tld("deep.er A 192.0.2.9"))

    def own_ns(query: Query, message: dns.message.Message) -> dns.message.Message | None:
        if query.purpose == "minimised":
            return make_reply(message, aa=False, authority=("test. 3600 IN NS ns.test.",))
        return h.net.ask("127.0.2.1", query, message)
    h.net.faults["127.0.2.1"] = own_ns
    assert answer_text(h.resolve("deep.er.test.")) == ["deep.er.test. 3600 IN A 192.0.2.9"]


def test_ns_minimisation_asks_the_full_name_once_a_name_exists_without_a_cut() -> None:
    h = world(TEST_ROOT, tld("a.b.c.d A 192.0.2.9"), settings=IteratorSettings(minimise_qtype=NS))
    assert answer_text(h.resolve("a.b.c.d.test.")) == ["a.b.c.d.test. 3600 IN A 192.0.2.9"]
    assert [(name, rdtype) for _, name, rdtype, _ in h.net.log()[1:]] == [
        ("test.", "NS"), ("d.test.", "NS"), ("a.b.c.d.test.", "A")]


# --- the state machine itself -----------------------------------------------------------------

def _moves(states: list[State]) -> set[tuple[State, State]]:
    return set(zip(states, states[1:]))


def test_a_cold_lookup_walks_the_states_in_order(sample: Harness) -> None:
    """Priming, the referrals down (minimised), the answer: each step a named state, as in
    Unbound's iterator (INIT_REQUEST, QUERYTARGETS, QUERY_RESP, PRIME_RESP, FINISHED)."""
    S = State
    asked = [S.CHOOSE_SERVER, S.AWAIT_REPLY, S.QUERY_RESPONSE]
    states: list[State] = []
    sample.resolve("www.example.com.", states=states)
    assert states == [S.START, S.CACHE_LOOKUP, S.FIND_ZONE,
                      S.CHOOSE_SERVER, S.PRIME, S.AWAIT_REPLY, S.QUERY_RESPONSE, S.PRIME_RESPONSE, S.FIND_ZONE,
                      *asked, S.FOLLOW_REFERRAL,          # com. (minimised, from the root)
                      *asked, S.FOLLOW_REFERRAL,          # example.com. (minimised, from com.)
                      *asked, S.READ_ANSWER, S.DONE]      # www.example.com. A, from example.com.
    states.clear()
    sample.resolve("www.example.com.", states=states)
    assert states == [S.START, S.CACHE_LOOKUP, S.DONE]
    # ftp is a CNAME to www: its first answer carries both; from the cache, the CNAME restarts at www.
    sample.resolve("ftp.example.com.")
    states.clear()
    sample.resolve("ftp.example.com.", states=states)
    assert states == [S.START, S.CACHE_LOOKUP, S.RESTART, S.CACHE_LOOKUP, S.DONE]


def test_a_glueless_ns_name_is_a_sub_lookup_state(sample: Harness) -> None:
    states: list[State] = []
    sample.resolve("www.example.net.", states=states)
    at = states.index(State.RESOLVE_NS_ADDRESS)
    # The sub-lookup's queries go out as this lookup's (ns1.dns-host.org. A: org., dns-host.org., the name).
    assert states[at:at + 7] == [State.RESOLVE_NS_ADDRESS, State.AWAIT_REPLY] * 3 + [State.RESOLVE_NS_ADDRESS]
    assert states[at + 7:] == [State.CHOOSE_SERVER, State.AWAIT_REPLY, State.QUERY_RESPONSE, State.READ_ANSWER,
                               State.DONE]
    assert _moves(states) <= {(a, b) for a, targets in TRANSITIONS.items() for b in targets}


def test_every_state_has_a_handler_or_waits_and_every_move_is_in_the_table() -> None:
    waiting = {State.AWAIT_REPLY, State.DONE}  # moved on by the driver (on_reply/on_failure), or final
    assert set(HANDLERS) == set(State) - waiting
    assert set(TRANSITIONS) == set(State)
    assert TRANSITIONS[State.DONE] == frozenset()
    reached, todo = {State.START}, [State.START]
    while todo:
        for target in TRANSITIONS[todo.pop()]:
            if target not in reached:
                reached.add(target)
                todo.append(target)
    assert reached == set(State)  # no state the table cannot reach
    for state in set(State) - {State.DONE}:
        assert TRANSITIONS[state], f"{state} leads nowhere"


def test_a_priming_reply_without_the_root_ns_set_goes_on_from_the_hints(sample: Harness) -> None:
    """PRIME_RESPONSE with no NS set to cache: primed once, the hints stay the root's servers."""
    def nodata(query: Query, message: dns.message.Message) -> dns.message.Message | None:
        if query.purpose == "priming":
            return make_reply(message, authority=(". 86400 IN SOA a.root-servers.net. h. 1 1800 900 604800 86400",))
        return sample.net.ask(ROOT_HINT, query, message)
    sample.net.faults[ROOT_HINT] = nodata
    states: list[State] = []
    result = sample.resolve("www.example.com.", states=states)
    assert result.rcode == dns.rcode.NOERROR and answer_text(result) == [
        "www.example.com. 300 IN A 192.0.2.1", "www.example.com. 300 IN A 192.0.2.2",
        "www.example.com. 300 IN A 192.0.2.3"]
    at = states.index(State.PRIME_RESPONSE)
    assert states[at - 1:at + 3] == [State.QUERY_RESPONSE, State.PRIME_RESPONSE, State.CHOOSE_SERVER,
                                     State.AWAIT_REPLY]
    assert [(address, qname, purpose) for address, qname, _, purpose in sample.net.log()[:2]] == [
        (ROOT_HINT, ".", "priming"), (ROOT_HINT, "com.", "minimised")]
    assert sample.cache.get(dns.name.root, NS) is None


def test_evidence_init_is_the_dataclass_init():
    """Evidence's hand-written __init__ (one dict update, not one object.__setattr__ per field)
    takes exactly the fields, in order, with their defaults, and sets every one."""
    fields = dataclasses.fields(Evidence)
    parameters = list(inspect.signature(Evidence.__init__).parameters.values())[1:]
    assert [p.name for p in parameters] == [f.name for f in fields]
    for parameter, field in zip(parameters, fields):
        expected = inspect.Parameter.empty if field.default is dataclasses.MISSING else field.default
        assert parameter.default == expected, field.name
    owner = dns.name.from_text("example.")
    values = {f.name: object() for f in fields}
    made = Evidence(**values)  # type: ignore[arg-type]
    assert all(getattr(made, name) is value for name, value in values.items())
    assert dataclasses.replace(made, zone=owner).zone is owner and made == Evidence(**values)  # type: ignore[arg-type]
    with pytest.raises(dataclasses.FrozenInstanceError):
        made.zone = owner  # type: ignore[misc]
