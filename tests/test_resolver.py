"""The recursive resolver through real packets: a started lab, dnspython clients, loopback only."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import threading
from dataclasses import replace

import dns.flags
import dns.asyncquery
import dns.message
import dns.name
import dns.opcode
import dns.query
import dns.rcode
import dns.rdatatype
import pytest

from dnslab.core.clock import FakeClock
from dnslab.lab.runtime import Lab, LabSettings
from dnslab.lab.hierarchy import zone_files
from dnslab.resolution.settings import ResolverSettings
from dnslab.services.resolver import Upstream
from dnslab.core.zone import load_zones

from conftest import SAMPLE_ZONES, LabThread

TIMEOUT = 10.0  # the client's patience; the resolver answers (at worst SERVFAIL) within 5 s


def ask(lab: Lab, name: str, rdtype: str = "A", tcp: bool = False, rd: bool = True,
        **make: object) -> dns.message.Message:
    query = dns.message.make_query(name, rdtype, **make)  # type: ignore[arg-type]
    if not rd:
        query.flags &= ~dns.flags.RD
    send = dns.query.tcp if tcp else dns.query.udp
    return send(query, lab.resolver_address, port=lab.actual_port, timeout=TIMEOUT)


def answer_of(reply: dns.message.Message) -> list[tuple[str, str, str]]:
    return [(rrset.name.to_text(), dns.rdatatype.to_text(rrset.rdtype), rdata.to_text())
            for rrset in reply.answer for rdata in rrset]


def counting_lab(monkeypatch: pytest.MonkeyPatch, **lab_options: object) -> tuple[Lab, list[object]]:
    """A lab from the sample zones whose resolver records every upstream query it sends."""
    sent: list[object] = []
    original = Upstream.send

    async def send(self: Upstream, query, timeout):  # type: ignore[no-untyped-def]
        sent.append(query)
        return await original(self, query, timeout)

    monkeypatch.setattr(Upstream, "send", send)
    settings = LabSettings.load(SAMPLE_ZONES / "lab.toml")
    zones, _ = load_zones(zone_files(SAMPLE_ZONES))
    options = {"start_down": settings.start_down, **lab_options}
    return Lab(zones, port=0, **options), sent  # type: ignore[arg-type]


# --- every scenario of the sample hierarchy ----------------------------------------------

SCENARIOS = [
    # name, type, rcode, expected answer records (owner, type, rdata) — order-insensitive
    ("www.example.com.", "A", "NOERROR", {("www.example.com.", "A", f"192.0.2.{i}") for i in (1, 2, 3)}),
    ("www.example.com.", "AAAA", "NOERROR", {("www.example.com.", "AAAA", "2001:db8:1::80")}),
    ("example.com.", "MX", "NOERROR", {("example.com.", "MX", "10 mail.example.com.")}),
    ("ftp.example.com.", "A", "NOERROR", {("ftp.example.com.", "CNAME", "www.example.com.")}
     | {("www.example.com.", "A", f"192.0.2.{i}") for i in (1, 2, 3)}),
    ("www.example.org.", "A", "NOERROR", {("www.example.org.", "CNAME", "www.example.com.")}
     | {("www.example.com.", "A", f"192.0.2.{i}") for i in (1, 2, 3)}),
    ("wiki.eng.example.com.", "A", "NOERROR", {("wiki.eng.example.com.", "A", "192.0.2.20")}),
    ("www.example.net.", "A", "NOERROR", {("www.example.net.", "A", "192.0.2.50")}),
    ("anything.pages.net.", "A", "NOERROR", {("anything.pages.net.", "A", "198.51.100.10")}),
    ("www.pages.net.", "A", "NOERROR", {("www.pages.net.", "A", "198.51.100.11")}),
    ("y.pages.net.", "A", "NOERROR", set()),  # an empty non-terminal blocks the wildcard: NODATA
    ("q.apps.pages.net.", "A", "NOERROR", {("q.apps.pages.net.", "CNAME", "www.example.com.")}
     | {("www.example.com.", "A", f"192.0.2.{i}") for i in (1, 2, 3)}),
    ("1.2.0.192.in-addr.arpa.", "PTR", "NOERROR", {("1.2.0.192.in-addr.arpa.", "PTR", "www.example.com.")}),
    ("www.failover.com.", "A", "NOERROR", {("www.failover.com.", "A", "192.0.2.70")}),
    ("t5.ttl-demo.org.", "A", "NOERROR", {("t5.ttl-demo.org.", "A", "192.0.2.80")}),
    ("nope.example.net.", "A", "NXDOMAIN", set()),
    ("www.example.com.", "TXT", "NOERROR", set()),
]


@pytest.mark.parametrize("name,rdtype,rcode,expected", SCENARIOS, ids=[f"{s[0]}{s[1]}" for s in SCENARIOS])
def test_sample_hierarchy_resolves_like_unbound(sample_lab: Lab, name: str, rdtype: str, rcode: str,
                                                 expected: set[tuple[str, str, str]]) -> None:
    reply = ask(sample_lab, name, rdtype, use_edns=0)
    assert dns.rcode.to_text(reply.rcode()) == rcode
    assert reply.flags & dns.flags.RA and not reply.flags & dns.flags.AA
    assert set(answer_of(reply)) == expected
    if not expected:
        # NXDOMAIN and NODATA carry the zone's SOA (RFC 2308), and nothing else.
        assert [dns.rdatatype.to_text(r.rdtype) for r in reply.authority] == ["SOA"]


def test_cname_chain_is_in_order(sample_lab: Lab) -> None:
    reply = ask(sample_lab, "www.example.org.")
    assert [dns.rdatatype.to_text(r.rdtype) for r in reply.answer] == ["CNAME", "A"]


def test_question_case_is_preserved_and_rd_echoed(sample_lab: Lab) -> None:
    reply = ask(sample_lab, "WwW.ExAmPlE.CoM.")
    assert reply.question[0].name.to_text() == "WwW.ExAmPlE.CoM."
    assert reply.flags & dns.flags.RD and reply.flags & dns.flags.QR


def test_big_answer_sets_tc_over_udp_and_comes_whole_over_tcp(sample_lab: Lab) -> None:
    udp = ask(sample_lab, "big.example.com.", "TXT", use_edns=0)
    assert udp.flags & dns.flags.TC and not udp.answer
    tcp = ask(sample_lab, "big.example.com.", "TXT", tcp=True)
    assert not tcp.flags & dns.flags.TC
    assert sum(len(rrset) for rrset in tcp.answer) == 10


def test_round_robin_rotates_on_every_response(sample_lab: Lab) -> None:
    firsts = [answer_of(ask(sample_lab, "www.example.com."))[0][2] for _ in range(6)]
    # Cyclic: each of the three addresses comes first in turn.
    assert firsts[:3] != firsts[1:4]
    assert sorted(set(firsts)) == ["192.0.2.1", "192.0.2.2", "192.0.2.3"]
    assert firsts[0:3] == firsts[3:6]


def test_ttl_counts_down_on_the_lab_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = FakeClock()
    lab, sent = counting_lab(monkeypatch, clock=clock)
    with LabThread(lab):
        assert ask(lab, "t10.ttl-demo.org.").answer[0].ttl == 10
        queries = len(sent)
        clock.advance(4)
        assert ask(lab, "t10.ttl-demo.org.").answer[0].ttl == 6
        assert len(sent) == queries  # answered from the cache
        clock.advance(6)  # exactly the TTL: the entry is gone
        assert ask(lab, "t10.ttl-demo.org.").answer[0].ttl == 10
        assert len(sent) > queries


def test_negative_answers_are_cached_per_rfc2308(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = FakeClock()
    lab, sent = counting_lab(monkeypatch, clock=clock)
    with LabThread(lab):
        first = ask(lab, "nothing.ttl-demo.org.")
        assert first.rcode() == dns.rcode.NXDOMAIN
        negative_ttl = first.authority[0].ttl
        queries = len(sent)
        clock.advance(3)
        second = ask(lab, "nothing.ttl-demo.org.", "TXT")  # NXDOMAIN covers every type
        assert second.rcode() == dns.rcode.NXDOMAIN and len(sent) == queries
        assert second.authority[0].ttl == negative_ttl - 3


def test_identical_questions_in_flight_are_resolved_once(monkeypatch: pytest.MonkeyPatch) -> None:
    lab, sent = counting_lab(monkeypatch)
    with LabThread(lab):
        async def many() -> list[dns.message.Message]:
            query = dns.message.make_query("www.example.net.", "A")
            return await asyncio.gather(*(dns.asyncquery.udp(query, lab.resolver_address, port=lab.actual_port,
                                                             timeout=TIMEOUT) for _ in range(30)))
        replies = asyncio.run(many())
        assert {tuple(answer_of(r)) for r in replies} == {(("www.example.net.", "A", "192.0.2.50"),)}
        full_queries = [q for q in sent if q.qname.to_text() == "www.example.net."]  # type: ignore[attr-defined]
        assert len(full_queries) == 1


def test_rd0_is_answered_from_the_cache_only(monkeypatch: pytest.MonkeyPatch) -> None:
    lab, sent = counting_lab(monkeypatch)
    with LabThread(lab):
        cold = ask(lab, "www.example.net.", rd=False)
        assert cold.rcode() == dns.rcode.SERVFAIL and not cold.answer and sent == []
        ask(lab, "www.example.net.")
        queries = len(sent)
        warm = ask(lab, "www.example.net.", rd=False)
        assert answer_of(warm) == [("www.example.net.", "A", "192.0.2.50")]
        assert not warm.flags & dns.flags.RD and len(sent) == queries
        # A name not cached under a known zone: a referral to the closest cached delegation (as BIND).
        near = ask(lab, "mail.example.net.", rd=False)
        assert near.rcode() == dns.rcode.NOERROR and not near.answer and len(sent) == queries
        assert [(r.name.to_text(), dns.rdatatype.to_text(r.rdtype)) for r in near.authority] == [
            ("example.net.", "NS")]


def test_one_server_down_still_answers_and_all_down_is_a_quick_servfail(monkeypatch: pytest.MonkeyPatch) -> None:
    lab, sent = counting_lab(monkeypatch, start_down=["127.0.3.20", "127.0.3.21"])
    with LabThread(lab):
        failed = ask(lab, "www.failover.com.")
        assert failed.rcode() == dns.rcode.SERVFAIL
        queries = len(sent)
        again = ask(lab, "www.failover.com.")
        assert again.rcode() == dns.rcode.SERVFAIL
        assert len(sent) == queries  # the SERVFAIL is cached briefly, no second walk
        # Other zones are unaffected.
        assert ask(lab, "www.example.com.").rcode() == dns.rcode.NOERROR


def test_clients_outside_the_allow_list_are_refused() -> None:
    zones, _ = load_zones(zone_files(SAMPLE_ZONES))
    settings = replace(ResolverSettings(), allow=(ipaddress.ip_network("10.0.0.0/8"),))
    lab = Lab(zones, port=0, resolver_settings=settings)
    with LabThread(lab):
        reply = ask(lab, "www.example.com.")
        assert reply.rcode() == dns.rcode.REFUSED and not reply.answer


def test_bad_client_input_never_stops_the_resolver(sample_lab: Lab) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.settimeout(TIMEOUT)
    target = (sample_lab.resolver_address, sample_lab.actual_port)
    try:
        # A readable header, then a question that is not a name: FORMERR.
        sock.sendto(b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\xff\xff", target)
        reply = dns.message.from_wire(sock.recv(65535))
        assert reply.id == 0x1234 and reply.rcode() == dns.rcode.FORMERR
        two = bytearray(dns.message.make_query("www.example.com.", "A").to_wire())
        two[5] = 2
        sock.sendto(bytes(two), target)
        assert dns.message.from_wire(sock.recv(65535), question_only=True).rcode() == dns.rcode.FORMERR
        notify = dns.message.make_query("www.example.com.", "A")
        notify.set_opcode(dns.opcode.NOTIFY)
        sock.sendto(notify.to_wire(), target)
        assert dns.message.from_wire(sock.recv(65535)).rcode() == dns.rcode.NOTIMP
        sock.sendto(b"\x00", target)  # not even a header: dropped
    finally:
        sock.close()
    assert ask(sample_lab, "www.example.com.").rcode() == dns.rcode.NOERROR
    badvers = ask(sample_lab, "www.example.com.", use_edns=1)
    assert badvers.rcode() == dns.rcode.BADVERS



def test_serve_stale_answers_expired_data_when_every_server_fails() -> None:
    clock = FakeClock()
    zones, _ = load_zones(zone_files(SAMPLE_ZONES))
    settings = ResolverSettings()
    settings = replace(settings, cache=replace(settings.cache, serve_stale=True))
    lab = Lab(zones, port=0, resolver_settings=settings, clock=clock)
    thread = LabThread(lab)
    with thread:
        fresh = ask(lab, "t5.ttl-demo.org.")
        assert fresh.answer[0].ttl == 5
        # Take ttl-demo.org's only server away, then let the record expire.
        server = next(r for r in lab.servers if r.plan.address == "127.0.3.4")
        assert server.listener is not None
        thread.run(server.listener.stop())
        clock.advance(60)
        stale = ask(lab, "t5.ttl-demo.org.")
        assert stale.rcode() == dns.rcode.NOERROR
        assert answer_of(stale) == [("t5.ttl-demo.org.", "A", "192.0.2.80")]
        assert stale.answer[0].ttl == 30  # RFC 8767's stale TTL
        # A name never seen has nothing stale to offer.
        assert ask(lab, "t10.ttl-demo.org.").rcode() == dns.rcode.SERVFAIL


def test_slow_refresh_answers_stale_then_refreshes_in_the_background(monkeypatch: pytest.MonkeyPatch) -> None:
    import dnslab.resolution.policy as policy_module

    monkeypatch.setattr(policy_module, "STALE_CLIENT_TIMER", 0.2)
    slow = {"on": False}
    original = Upstream.send

    async def send(self: Upstream, query, timeout):  # type: ignore[no-untyped-def]
        if slow["on"] and query.address == "127.0.3.4":
            await asyncio.sleep(1.0)  # longer than the (shortened) client response timer
        return await original(self, query, timeout)

    monkeypatch.setattr(Upstream, "send", send)
    clock = FakeClock()
    zones, _ = load_zones(zone_files(SAMPLE_ZONES))
    settings = ResolverSettings()
    settings = replace(settings, cache=replace(settings.cache, serve_stale=True))
    lab = Lab(zones, port=0, resolver_settings=settings, clock=clock)
    with LabThread(lab):
        assert ask(lab, "t5.ttl-demo.org.").answer[0].ttl == 5
        clock.advance(60)
        slow["on"] = True
        assert ask(lab, "t5.ttl-demo.org.").answer[0].ttl == 30  # stale, before the slow server answered
        assert lab.resolver is not None
        refreshed = None
        for _ in range(100):  # bounded: at most ~5 s for the background lookup to land
            refreshed = lab.resolver.cache.get(dns.name.from_text("t5.ttl-demo.org."), dns.rdatatype.A)
            if refreshed is not None:
                break
            threading.Event().wait(0.05)
        assert refreshed is not None and refreshed.remaining == 5


def test_max_udp_size_lets_a_big_answer_through_when_the_client_buffer_allows() -> None:
    """1232 bytes by default (DNS flag day 2020) even if the client offers 4096; max_udp_size raises it."""
    zones, _ = load_zones(zone_files(SAMPLE_ZONES))
    for size, truncated in ((1232, True), (4096, False)):
        lab = Lab(zones, port=0, resolver_settings=replace(ResolverSettings(), max_udp_size=size))
        with LabThread(lab):
            reply = ask(lab, "big.example.com.", "TXT", use_edns=0, payload=4096)
            assert bool(reply.flags & dns.flags.TC) is truncated, size
            assert truncated or sum(len(rrset) for rrset in reply.answer) == 10


def _error_reply_keeps_question_and_flags(reply: dns.message.Message, name: str, rcode: int,
                                          cd: bool = False) -> None:
    assert reply.rcode() == rcode
    assert [q.name.to_text() for q in reply.question] == [name]
    assert reply.flags & dns.flags.RA and reply.flags & dns.flags.RD
    assert bool(reply.flags & dns.flags.CD) is cd


def test_an_internal_error_is_a_servfail_that_keeps_the_question_and_flags(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A bug of ours (here: the lookup step every client question goes through raising, as a
    validator crash did) still gives the client the question, RA, RD and CD back, not a bare header."""
    from dnslab.services.resolver import RecursiveResolver

    async def broken(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        raise RuntimeError("a bug")

    monkeypatch.setattr(RecursiveResolver, "resolve", broken)
    zones, _ = load_zones(zone_files(SAMPLE_ZONES))
    lab = Lab(zones, port=0)
    with LabThread(lab):
        for tcp in (False, True):
            query = dns.message.make_query("WWW.example.com.", "A", use_edns=0)
            query.flags |= dns.flags.CD
            send = dns.query.tcp if tcp else dns.query.udp
            reply = send(query, lab.resolver_address, port=lab.actual_port, timeout=TIMEOUT)
            _error_reply_keeps_question_and_flags(reply, "WWW.example.com.", dns.rcode.SERVFAIL, cd=True)


def test_error_replies_keep_the_question_and_flags(sample_lab: Lab) -> None:
    notify = dns.message.make_query("www.example.com.", "SOA")
    notify.set_opcode(dns.opcode.NOTIFY)
    reply = dns.query.udp(notify, sample_lab.resolver_address, port=sample_lab.actual_port, timeout=TIMEOUT)
    _error_reply_keeps_question_and_flags(reply, "www.example.com.", dns.rcode.NOTIMP)
    chaos = dns.message.make_query("version.bind.", "TXT", rdclass="CH")
    reply = dns.query.udp(chaos, sample_lab.resolver_address, port=sample_lab.actual_port, timeout=TIMEOUT)
    _error_reply_keeps_question_and_flags(reply, "version.bind.", dns.rcode.REFUSED)


def test_a_failing_fast_path_falls_back_to_the_full_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """A bug in the wire fast path must not turn into a bare SERVFAIL: the full path answers."""
    from dnslab.core.fastpath import AnswerCache

    def broken(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        raise RuntimeError("a bug")

    monkeypatch.setattr(AnswerCache, "get", broken)
    zones, _ = load_zones(zone_files(SAMPLE_ZONES))
    lab = Lab(zones, port=0)
    with LabThread(lab):
        for _ in range(3):
            reply = ask(lab, "www.example.com.")
            assert reply.rcode() == dns.rcode.NOERROR and reply.flags & dns.flags.RA
            assert {r for _, _, r in answer_of(reply)} == {f"192.0.2.{i}" for i in (1, 2, 3)}
