"""The validating resolver against the signed sample lab: secure, insecure, bogus (each fault), CD=1.

Real servers on loopback, real signatures; every check is a query a learner could send with dig.
"""

from __future__ import annotations

from pathlib import Path

import dns.edns
import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import pytest

from dnslab.lab import fault_kinds
from dnslab.testing import DnsLab

T = dns.rdatatype.RdataType


@pytest.fixture(scope="module")
def signed_lab(tmp_path_factory: pytest.TempPathFactory):
    with DnsLab(dnssec=True, keys_dir=tmp_path_factory.mktemp("keys")) as lab:
        yield lab


@pytest.fixture
def lab(signed_lab: DnsLab):
    """The module's lab with a clean cache and no zone faults, so each test starts cold."""
    signed_lab.cache.flush()
    yield signed_lab
    for zone in ("example.com.", "example.org.", "com."):
        signed_lab.zone_fault(zone, "clear")
    signed_lab.cache.flush()


def ask(lab: DnsLab, name: str, rdtype: str = "A", *, do: bool = False, cd: bool = False,
        ad: bool = True) -> dns.message.Message:
    query = dns.message.make_query(name, rdtype, use_edns=0, want_dnssec=do)
    if ad:
        query.flags |= dns.flags.AD
    if cd:
        query.flags |= dns.flags.CD
    address, port = lab.resolver_address
    return dns.query.udp(query, address, port=port, timeout=5)


def ede(reply: dns.message.Message) -> list[tuple[int, str | None]]:
    return [(o.code, o.text) for o in reply.options if isinstance(o, dns.edns.EDEOption)]


def test_a_signed_answer_is_secure(lab: DnsLab) -> None:
    reply = ask(lab, "www.example.com")
    assert reply.rcode() == dns.rcode.NOERROR and reply.flags & dns.flags.AD
    assert not any(r.rdtype == T.RRSIG for r in reply.answer)  # no DO: no RRSIGs
    signed = ask(lab, "www.example.com", do=True)
    assert signed.flags & dns.flags.AD
    assert any(r.rdtype == T.RRSIG and r.covers == T.A for r in signed.answer)


def test_ad_only_for_clients_that_ask(lab: DnsLab) -> None:
    assert not ask(lab, "www.example.com", ad=False).flags & dns.flags.AD


def test_an_unsigned_delegation_is_insecure(lab: DnsLab) -> None:
    reply = ask(lab, "www.example.net")
    assert reply.rcode() == dns.rcode.NOERROR and reply.answer and not reply.flags & dns.flags.AD


def test_denials_are_proven(lab: DnsLab) -> None:
    nx = ask(lab, "nope.example.com", do=True)
    assert nx.rcode() == dns.rcode.NXDOMAIN and nx.flags & dns.flags.AD
    assert any(r.rdtype in (T.NSEC, T.NSEC3) for r in nx.authority)
    nodata = ask(lab, "www.example.com", "SSHFP")
    assert nodata.rcode() == dns.rcode.NOERROR and not nodata.answer and nodata.flags & dns.flags.AD


def test_a_wildcard_answer_is_secure(lab: DnsLab) -> None:
    reply = ask(lab, "anything.pages.net", do=True)
    assert reply.rcode() == dns.rcode.NOERROR and reply.answer and reply.flags & dns.flags.AD


def test_a_wildcard_cname_into_another_zone_is_secure(lab: DnsLab) -> None:
    # *.apps.pages.net CNAME www.example.com: the expansion's proof comes in a CNAME reply.
    reply = ask(lab, "q.apps.pages.net", do=True)
    assert reply.rcode() == dns.rcode.NOERROR and reply.flags & dns.flags.AD
    assert any(r.rdtype == T.NSEC for r in reply.authority)
    assert ask(lab, "q.apps.pages.net").flags & dns.flags.AD  # and again from the cache


def test_a_cname_across_zones_is_secure_when_every_link_is(lab: DnsLab) -> None:
    reply = ask(lab, "www.example.org")
    assert reply.rcode() == dns.rcode.NOERROR and reply.flags & dns.flags.AD


# Each zone fault with the EDE code a validating resolver gives for it (RFC 8914; None: any reason).
ZONE_FAULT_CASES = [("dnssec-bad-sig", 6), ("dnssec-expired", 7), ("dnssec-wrong-ds", 9), ("dnssec-missing-ds", None)]


def test_the_cases_below_are_every_zone_fault_of_the_registry() -> None:
    """A zone fault declared in dnslab.lab.fault_kinds is not done until a resolver finds it bogus below."""
    assert sorted(name for name, _ in ZONE_FAULT_CASES) == sorted(
        kind.name for kind in fault_kinds.kinds(fault_kinds.Target.ZONE))


@pytest.mark.parametrize("fault, code", ZONE_FAULT_CASES)
def test_each_fault_makes_the_zone_bogus(lab: DnsLab, fault: str, code: int | None) -> None:
    lab.zone_fault("example.com.", fault)
    reply = ask(lab, "www.example.com")
    assert reply.rcode() == dns.rcode.SERVFAIL, fault
    reasons = ede(reply)
    assert reasons and (code is None or reasons[0][0] == code), reasons
    # CD=1: the data, unvalidated (RFC 4035 §3.2.2), without AD.
    unchecked = ask(lab, "www.example.com", cd=True)
    assert unchecked.rcode() == dns.rcode.NOERROR and unchecked.answer and not unchecked.flags & dns.flags.AD
    # Zones that do not depend on example.com stay secure.
    assert ask(lab, "t10.ttl-demo.org").flags & dns.flags.AD


def test_the_trace_shows_the_chain_of_trust(lab: DnsLab) -> None:
    events = lab.trace("www.example.com", "A", cold=True)
    steps = [(e["step"], e["zone"], e["security"]) for e in events if e["event"] == "dnssec"]
    assert ("dnskey", ".", "secure") in steps
    assert ("ds", ".", "secure") in steps  # the DS of com. signed by the root
    assert ("ds", "com.", "secure") in steps
    assert steps[-1][0] == "verdict" and steps[-1][2] == "secure"
    assert all(e["algorithm"] in (None, "ECDSAP256SHA256") for e in events if e["event"] == "dnssec")


def test_bogus_is_explained_in_the_trace(lab: DnsLab) -> None:
    lab.zone_fault("example.com.", "dnssec-bad-sig")
    events = lab.trace("www.example.com", "A", cold=True)
    verdict = [e for e in events if e["event"] == "dnssec"][-1]
    assert verdict["security"] == "bogus" and "crypto" in verdict["detail"]


def test_validated_answers_are_cached_with_their_status(lab: DnsLab) -> None:
    ask(lab, "www.example.com")
    entry = lab.cache.get("www.example.com", "A")
    assert entry is not None
    server = lab.server("a.root-servers.net")
    server.reset_queries()
    assert ask(lab, "www.example.com").flags & dns.flags.AD
    assert sum(server.queries.values()) == 0


def test_signatures_are_refreshed_as_the_lab_clock_moves(lab: DnsLab) -> None:
    lab.advance(20 * 86400)  # beyond a 14-day signature lifetime: the lab re-signs
    reply = ask(lab, "www.example.com")
    assert reply.rcode() == dns.rcode.NOERROR and reply.flags & dns.flags.AD


def test_the_anchor_file_configures_a_resolver(signed_lab: DnsLab, tmp_path: Path) -> None:
    from dnslab.resolution.options import resolver_settings
    from dnslab.core.errors import ConfigError

    assert signed_lab.trust_anchor_file is not None
    settings = resolver_settings({"trust_anchor_file": str(signed_lab.trust_anchor_file)}, "flags")
    assert [a.rdtype for a in settings.trust_anchors] == [T.DS]
    assert settings.trust_anchors[0] == signed_lab.trust_anchor
    broken = tmp_path / "anchor"
    broken.write_text("; the root\n. 86400 IN A 192.0.2.1\n")
    with pytest.raises(ConfigError, match=r"anchor:2: a trust anchor is a DS or DNSKEY record"):
        resolver_settings({"trust_anchor_file": str(broken)}, "flags")
    broken.write_text(". 86400 IN DS 1 2\n")
    with pytest.raises(ConfigError, match=r"anchor:1: not a DS or DNSKEY record"):
        resolver_settings({"trust_anchor_file": str(broken)}, "flags")


def test_the_root_ns_set_is_secure_after_priming(lab: DnsLab) -> None:
    # Priming caches the root's NS set; its RRSIGs must be kept with it (Unbound: ". NS" has AD).
    reply = ask(lab, ".", "NS")
    assert reply.rcode() == dns.rcode.NOERROR and reply.flags & dns.flags.AD


def test_the_picture_marks_each_link_of_the_chain(lab: DnsLab) -> None:
    import xml.etree.ElementTree as ET

    from dnslab.faces.trace_html import render_html

    page = render_html(lab.trace("www.example.com", "A", cold=True), "secure")
    svg = ET.fromstring(page[page.index("<svg class=\"diagram\""):page.index("</svg></figure>") + 6])
    classes = [g.get("class", "") for g in svg.iter("{http://www.w3.org/2000/svg}g")] + \
              [g.get("class", "") for g in svg.iter("g")]
    secure = [c for c in classes if "dnssec-secure" in c]
    assert len(secure) >= 5  # DNSKEY ., DS com., DNSKEY com., DS example.com., DNSKEY, RRSIG, verdict
    assert "DNSSEC: SECURE" in page and "key tag" in page
    lab.zone_fault("example.com.", "dnssec-wrong-ds")
    page = render_html(lab.trace("www.example.com", "A", cold=True), "bogus")
    assert "dnssec-bogus" in page and "DNSSEC: BOGUS → SERVFAIL to the client" in page
    page = render_html(lab.trace("www.example.net", "A", cold=True), "insecure")
    assert "dnssec-insecure" in page


def test_the_last_trace_holds_the_validation_and_only_clients_count(lab: DnsLab) -> None:
    stats = lab.lab.resolver.stats  # type: ignore[union-attr]
    secure = stats.secure
    ask(lab, "www.example.com")
    steps = [e for e in lab.last_trace if e["event"] == "dnssec"]
    assert steps and steps[-1]["step"] == "verdict" and steps[-1]["security"] == "secure"
    assert stats.secure == secure + 1
    lab.trace("www.example.com", "A", cold=True)  # a learner's trace is not a client's query
    assert stats.secure == secure + 1
    assert [e for e in lab.last_trace if e["event"] == "dnssec"][-1] == steps[-1]


def test_a_bogus_answer_is_told_last_as_the_servfail_the_client_gets(lab: DnsLab) -> None:
    """The iterator's NOERROR is not the answer: the verdict comes first, then what the client gets."""
    from dnslab.faces.trace import TextRenderer

    lab.zone_fault("example.com.", "dnssec-bad-sig")
    events = lab.trace("www.example.com", "A", cold=True)
    answers = [e for e in events if e["event"] == "done" and e["depth"] == 0]
    assert answers == [events[-1]]  # one answer, and it comes after every DNSSEC step
    assert events[-2]["event"] == "dnssec" and events[-2]["step"] == "verdict"
    assert events[-1]["rcode"] == "SERVFAIL" and events[-1]["records"] == []
    assert "DNSSEC validation failed" in events[-1]["reason"]
    # Its count of upstream queries includes the validator's DS and DNSKEY fetches shown above it.
    assert events[-1]["upstream_queries"] == len([e for e in events if e["event"] == "query"])
    text = [line for line in map(TextRenderer().line, events) if line]
    assert not any("answer: NOERROR" in line for line in text)
    assert "answer: SERVFAIL (DNSSEC validation failed" in text[-1]
    assert ask(lab, "www.example.com").rcode() == dns.rcode.SERVFAIL  # a client's lookup is told the same way
    client = [e for e in lab.last_trace if e["event"] == "done" and e["depth"] == 0]
    assert client == [lab.last_trace[-1]] and client[0]["rcode"] == "SERVFAIL"
