"""A lame server, end to end: real packets to a running lab on the fake clock.

After ``ns2.example.com`` answers lamely once, the resolver must stop asking it
for example.com while ns1 is there (Unbound's infra-lame-ttl), show the mark
with its time left, and lift it on `fault ... clear`, a cache flush, or when
lame_ttl has passed.
"""

from __future__ import annotations

from typing import Any, Callable

import dns.message
import dns.query
import dns.rcode
import pytest

from dnslab.testing import DnsLab

ZONE = "example.com."
MAX_WARM_UP = 10  # distinct questions tried until ns2 has been asked once; bounded


def _sent(server: Any) -> int:
    return sum(server.queries.values())


def _lame_marks(lab: DnsLab, address: str) -> tuple[tuple[str, float], ...]:
    return lab.call(lambda: lab.lab.resolver.infra.view(address).lame)  # type: ignore[union-attr]


def _ask(lab: DnsLab, name: str) -> None:
    # NXDOMAIN is a fine answer here: every name is a fresh question for example.com's servers.
    address, port = lab.resolver_address
    reply = dns.query.udp(dns.message.make_query(name, "A"), address, port=port, timeout=10)
    assert reply.rcode() in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN), reply


def _learn_lameness(lab: DnsLab, ns2: Any, tag: str) -> None:
    """Ask fresh names until ns2 has been asked (and found lame) once; ns1 answers every one."""
    before = _sent(ns2)
    for i in range(MAX_WARM_UP):
        _ask(lab, f"{tag}{i}.{ZONE}")
        if _sent(ns2) > before:
            return
    pytest.fail(f"ns2 was not asked once in {MAX_WARM_UP} questions")


@pytest.fixture
def lab(make_dns_lab: Callable[..., DnsLab]) -> DnsLab:
    lab = make_dns_lab()
    ns1, ns2 = lab.server("ns1.example.com"), lab.server("ns2.example.com")
    # Make ns2 the known, fast server (refused replies carry no RTT, so the warm-up's RTT is ns2's).
    ns1.refused()
    _ask(lab, f"warm.{ZONE}")
    ns1.clear()
    infra = lab.lab.resolver.infra  # type: ignore[union-attr]
    assert lab.call(lambda: infra.view(ns2.address).srtt) is not None
    # And ns1 known to be slow, far outside the band the resolver explores within (similar_band), so the
    # next question goes to ns2 for certain: an untried ns1 (376 ms) was inside it, and one exploring
    # pick of ns1 could make it the faster of the two, leaving ns2 unasked in all ten warm-up questions.
    lab.call(lambda: infra.success(ns1.address, 5.0))
    return lab


def test_a_lame_server_is_not_asked_again_for_the_zone(lab: DnsLab) -> None:
    ns2 = lab.server("ns2.example.com")
    ns2.lame()
    _learn_lameness(lab, ns2, "first")
    assert [zone for zone, _ in _lame_marks(lab, ns2.address)] == [ZONE]
    asked = _sent(ns2)
    for i in range(6):  # without the lame memory ns2, the fastest, gets nearly all of these
        _ask(lab, f"then{i}.{ZONE}")
    assert _sent(ns2) == asked


def test_the_mark_counts_down_and_ends_after_lame_ttl(lab: DnsLab) -> None:
    ns2 = lab.server("ns2.example.com")
    ns2.lame()
    _learn_lameness(lab, ns2, "first")
    ttl = lab.lab.resolver_settings.infra.lame_ttl
    lab.advance(100)
    ((zone, left),) = _lame_marks(lab, ns2.address)
    assert (zone, left) == (ZONE, pytest.approx(ttl - 100))
    lab.advance(ttl - 100)
    assert _lame_marks(lab, ns2.address) == ()


def test_clearing_the_fault_lifts_the_mark(lab: DnsLab) -> None:
    ns2 = lab.server("ns2.example.com")
    ns2.lame()
    _learn_lameness(lab, ns2, "first")
    ns2.clear()
    assert _lame_marks(lab, ns2.address) == ()
    # ns2 is usable again: asked within a few questions, not after 900 s. ns1 is made slow so that
    # selection by SRTT turns to ns2 whatever the machine's load made of the RTTs measured so far
    # (with the mark still in force ns2 would be passed over all the same: ns1 stays usable).
    lab.server("ns1.example.com").delay(20)
    before = _sent(ns2)
    for i in range(MAX_WARM_UP):
        _ask(lab, f"mended{i}.{ZONE}")
        if _sent(ns2) > before:
            break
    assert _sent(ns2) > before


def test_a_cache_flush_lifts_every_mark(lab: DnsLab) -> None:
    ns2 = lab.server("ns2.example.com")
    ns2.lame()
    _learn_lameness(lab, ns2, "first")
    lab.cache.flush()
    assert _lame_marks(lab, ns2.address) == ()
