"""RFC 8198 on the signed sample lab: a second name in a denied span never reaches the zone's servers.

Real servers on loopback, real signatures; the servers count the queries they get.
"""

from __future__ import annotations

import base64
from dataclasses import replace
from pathlib import Path
from typing import Iterator

import dns.dnssec
import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest

from dnslab.lab.runtime import SAMPLE_ZONES, LabSettings
from dnslab.testing import DnsLab

T = dns.rdatatype.RdataType
# example.com's servers; its apex NSEC (example.com. -> api.example.com.) covers both names below,
# and the wildcard *.example.com. too.
EXAMPLE_COM = ("ns1.example.com", "ns2.example.com")
FIRST, SECOND = "aaa.example.com", "aab.example.com"


def start(tmp: Path, nsec3: bool = False, **options: object) -> DnsLab:
    settings = replace(LabSettings.load(SAMPLE_ZONES / "lab.toml").resolver, **options)
    return DnsLab(dnssec=True, nsec3=nsec3, keys_dir=tmp, resolver_settings=settings).start()


@pytest.fixture(scope="module")
def signed_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DnsLab]:
    lab = start(tmp_path_factory.mktemp("keys"))
    yield lab
    lab.stop()


@pytest.fixture
def lab(signed_lab: DnsLab) -> Iterator[DnsLab]:
    signed_lab.cache.flush()
    yield signed_lab
    signed_lab.cache.flush()


def ask(lab: DnsLab, name: str, rdtype: str = "A") -> dns.message.Message:
    query = dns.message.make_query(name, rdtype, use_edns=0, want_dnssec=True)
    address, port = lab.resolver_address
    return dns.query.udp(query, address, port=port, timeout=5)


def asked(lab: DnsLab, servers: tuple[str, ...] = EXAMPLE_COM) -> int:
    return sum(sum(lab.server(name).queries.values()) for name in servers)


def reset(lab: DnsLab, servers: tuple[str, ...] = EXAMPLE_COM) -> None:
    for name in servers:
        lab.server(name).reset_queries()


def denial(reply: dns.message.Message) -> tuple[int, bool, list[tuple[str, int]]]:
    """What a client checks of a denial: the rcode, AD, and the authority section's RRsets."""
    return (reply.rcode(), bool(reply.flags & dns.flags.AD),
            sorted((r.name.to_text(), r.rdtype) for r in reply.authority))


def test_a_second_name_in_the_span_is_denied_from_the_cache(lab: DnsLab) -> None:
    first = ask(lab, FIRST)
    assert first.rcode() == dns.rcode.NXDOMAIN and first.flags & dns.flags.AD
    reset(lab)
    second = ask(lab, SECOND)
    assert asked(lab) == 0  # answered from the validated NSEC, no query to example.com's servers
    assert second.rcode() == dns.rcode.NXDOMAIN and second.flags & dns.flags.AD
    types = {r.rdtype for r in second.authority}
    assert {T.SOA, T.NSEC, T.RRSIG} <= types
    soa = next(r for r in second.authority if r.rdtype == T.SOA)
    assert soa.ttl <= soa[0].minimum  # RFC 9077: the negative TTL at most
    # The same question again (now from the cache) gets the same answer; names below it too.
    assert denial(ask(lab, SECOND)) == denial(second)
    deeper = ask(lab, "x." + SECOND, "MX")
    assert deeper.rcode() == dns.rcode.NXDOMAIN and deeper.flags & dns.flags.AD
    assert asked(lab) == 0


def test_nodata_for_another_type_at_a_name_comes_from_its_nsec(lab: DnsLab) -> None:
    first = ask(lab, "api.example.com", "TXT")
    assert first.rcode() == dns.rcode.NOERROR and not first.answer and first.flags & dns.flags.AD
    reset(lab)
    second = ask(lab, "api.example.com", "SSHFP")
    assert second.rcode() == dns.rcode.NOERROR and not second.answer and second.flags & dns.flags.AD
    assert any(r.rdtype == T.NSEC for r in second.authority)
    assert asked(lab) == 0
    # A type the NSEC lists is asked for: the span proves nothing about it.
    address = ask(lab, "api.example.com", "A")
    assert address.answer and asked(lab) > 0


def test_the_span_is_forgotten_when_its_ttl_runs_out(lab: DnsLab) -> None:
    first = ask(lab, FIRST)
    soa = next(r for r in first.authority if r.rdtype == T.SOA)
    lab.advance(soa.ttl + 1)  # the negative TTL (RFC 9077: also the NSEC's) has passed
    reset(lab)
    second = ask(lab, SECOND)
    assert second.rcode() == dns.rcode.NXDOMAIN and second.flags & dns.flags.AD
    assert asked(lab) > 0


def test_insecure_denials_are_not_used(lab: DnsLab) -> None:
    # example.net is unsigned (lab.toml): its NXDOMAIN answers prove nothing, each is asked.
    servers = ("ns1.dns-host.org", "ns2.dns-host.org")
    first = ask(lab, "aaa.example.net")
    assert first.rcode() == dns.rcode.NXDOMAIN and not first.flags & dns.flags.AD
    reset(lab, servers)
    second = ask(lab, "aab.example.net")
    assert second.rcode() == dns.rcode.NXDOMAIN and asked(lab, servers) > 0


def test_the_option_turns_it_off(tmp_path: Path) -> None:
    lab = start(tmp_path, aggressive_nsec=False)
    try:
        assert ask(lab, FIRST).rcode() == dns.rcode.NXDOMAIN
        reset(lab)
        second = ask(lab, SECOND)
        assert second.rcode() == dns.rcode.NXDOMAIN and second.flags & dns.flags.AD
        assert asked(lab) > 0
    finally:
        lab.stop()


def test_nsec3_spans_deny_too(tmp_path: Path) -> None:
    lab = start(tmp_path, nsec3=True)
    try:
        first = ask(lab, FIRST)
        assert first.rcode() == dns.rcode.NXDOMAIN and first.flags & dns.flags.AD
        spans = [r for r in first.authority if r.rdtype == T.NSEC3]
        assert spans
        # A second name whose hash falls in a span the first answer brought (a bounded search, no traffic).
        covering = next(r for r in spans if _covers(r, dns.name.from_text(FIRST)))
        second = next(name for name in (f"n{i}.example.com" for i in range(2000))
                      if _covers(covering, dns.name.from_text(name)))
        reset(lab)
        reply = ask(lab, second)
        assert reply.rcode() == dns.rcode.NXDOMAIN and reply.flags & dns.flags.AD
        assert any(r.rdtype == T.NSEC3 for r in reply.authority)
        assert asked(lab) == 0
    finally:
        lab.stop()


def _covers(nsec3: dns.rrset.RRset, name: dns.name.Name) -> bool:
    rd = nsec3[0]
    hashed = dns.dnssec.nsec3_hash(name, rd.salt, rd.iterations, rd.algorithm).lower()
    owner = nsec3.name.labels[0].decode().lower()
    after = base64.b32encode(rd.next).translate(bytes.maketrans(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567",
                                                                 b"0123456789ABCDEFGHIJKLMNOPQRSTUV")).decode().lower()
    return (owner < hashed < after) if owner < after else (hashed > owner or hashed < after)


def test_the_trace_shows_the_span_that_answered(lab: DnsLab) -> None:
    ask(lab, FIRST)
    events = lab.trace(SECOND)
    cache = [e for e in events if e["event"] == "cache" and e["result"] == "negative"]
    assert cache and any(" NSEC " in line for line in cache[0]["records"])
    assert not any(e["event"] == "query" for e in events)  # nothing was sent
    assert events[-1]["event"] == "done" and events[-1]["upstream_queries"] == 0
    # A cold trace starts from nothing: no span, so the walk is seen down to example.com's servers.
    cold = lab.trace(SECOND, cold=True)
    assert any(e["event"] == "query" and e["zone"] == "example.com." for e in cold)
