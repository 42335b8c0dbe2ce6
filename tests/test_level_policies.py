"""The levels' cache policies, cache and stub failover, without sockets, on a fake clock (sans-I/O)."""

from __future__ import annotations

import dns.flags
import dns.message
import dns.rcode
import dns.rrset
import pytest

from dnslab.core.clock import FakeClock
from dnslab.resolution.levels import chromium, dnsmasq, firefox, systemd
from dnslab.resolution.levels.cache import LevelCache, State, reply_from, shape_of
from dnslab.resolution.levels.failover import StubOptions, moves_on, tries
from dnslab.resolution.levels.policy import AnswerKind, Keep, Shape

POSITIVE_300 = Shape(AnswerKind.POSITIVE, 300)
POSITIVE_5 = Shape(AnswerKind.POSITIVE, 5)
NXDOMAIN_SOA = Shape(AnswerKind.NXDOMAIN, None, soa_ttl=3600, soa_minimum=300)
NODATA_NO_SOA = Shape(AnswerKind.NODATA)


def test_chromium_system_path_keeps_every_success_60_s_whatever_the_ttl() -> None:
    policy = chromium.Chromium()
    assert policy.keep(POSITIVE_300) == Keep(60)
    assert policy.keep(POSITIVE_5) == Keep(60)     # kCacheEntryTTLSeconds: not less either
    assert policy.keep(NXDOMAIN_SOA) is None        # kNegativeCacheEntryTTLSeconds = 0
    assert policy.max_entries == 1000


def test_chromium_builtin_client_keeps_at_least_60_s() -> None:
    policy = chromium.Chromium(resolver="builtin")
    assert policy.keep(POSITIVE_300) == Keep(300)
    assert policy.keep(POSITIVE_5) == Keep(60)      # kMinimumTTLSeconds
    assert policy.keep(NXDOMAIN_SOA) == Keep(300)   # min(SOA TTL, MINIMUM)
    with pytest.raises(ValueError):
        chromium.Chromium(resolver="nss")


def test_firefox_60_s_then_a_60_s_grace_and_failures_60_s() -> None:
    policy = firefox.Firefox()
    assert policy.keep(POSITIVE_300) == Keep(60, 60)
    assert policy.keep(NXDOMAIN_SOA) == Keep(60)
    assert firefox.Firefox(use_ttl=True).keep(POSITIVE_300) == Keep(300, 60)
    assert policy.max_entries == 400


def test_systemd_resolved_honours_the_ttl_under_its_2_h_cap_and_negative_from_the_soa() -> None:
    policy = systemd.SystemdResolved()
    assert policy.keep(POSITIVE_300) == Keep(300)
    assert policy.keep(Shape(AnswerKind.POSITIVE, 86400)) == Keep(7200)
    assert policy.keep(NXDOMAIN_SOA) == Keep(300)
    assert policy.keep(NODATA_NO_SOA) is None
    assert policy.keep(Shape(AnswerKind.POSITIVE, 0)) is None
    assert systemd.SystemdResolved(max_ttl=120).keep(POSITIVE_300) == Keep(120)


def test_dnsmasq_clamps_and_neg_ttl() -> None:
    assert dnsmasq.Dnsmasq().keep(POSITIVE_300) == Keep(300)
    assert dnsmasq.Dnsmasq(min_cache_ttl=600).keep(POSITIVE_300) == Keep(600)
    assert dnsmasq.Dnsmasq(max_cache_ttl=100).keep(POSITIVE_300) == Keep(100)
    assert dnsmasq.Dnsmasq().keep(NODATA_NO_SOA) is None
    assert dnsmasq.Dnsmasq(neg_ttl=30).keep(NODATA_NO_SOA) == Keep(30)
    assert dnsmasq.Dnsmasq().keep(NXDOMAIN_SOA) == Keep(300)
    assert dnsmasq.Dnsmasq().max_entries == 150
    with pytest.raises(ValueError, match="3600"):
        dnsmasq.Dnsmasq(min_cache_ttl=3601)


def _reply(name: str, ttl: int, *addresses: str, rcode: int = dns.rcode.NOERROR) -> dns.message.Message:
    query = dns.message.make_query(name, "A")
    reply = dns.message.make_response(query)
    reply.set_rcode(rcode)
    if addresses:
        reply.answer.append(dns.rrset.from_text(name, ttl, "IN", "A", *addresses))
    else:
        reply.authority.append(dns.rrset.from_text("example.com.", 3600, "IN", "SOA",
                                                   "ns1.example.com. admin.example.com. 1 7200 900 1209600 300"))
    return reply


def test_shapes() -> None:
    assert shape_of(_reply("www.example.com.", 300, "192.0.2.1")) == POSITIVE_300
    assert shape_of(_reply("nx.example.com.", 0, rcode=dns.rcode.NXDOMAIN)) == NXDOMAIN_SOA
    assert shape_of(_reply("www.example.com.", 0, rcode=dns.rcode.SERVFAIL)) is None


def test_cache_serves_until_the_policy_says_then_forgets() -> None:
    clock = FakeClock()
    cache = LevelCache(chromium.Chromium(), clock)
    name = dns.name.from_text("www.example.com.")
    cache.put(name, 1, _reply("www.example.com.", 300, "192.0.2.1"))
    clock.advance(59.5)
    found = cache.get(name, 1)
    assert found is not None and found.state is State.FRESH and found.remaining == 0
    reply = reply_from(found, dns.message.make_query(name, "A"))
    assert reply.answer[0].ttl == 0 and reply.flags & dns.flags.RA
    clock.advance(0.5)
    assert cache.get(name, 1) is None and len(cache) == 0


def test_cache_grace_then_gone() -> None:
    clock = FakeClock()
    cache = LevelCache(firefox.Firefox(), clock)
    name = dns.name.from_text("www.example.com.")
    cache.put(name, 1, _reply("www.example.com.", 300, "192.0.2.1"))
    clock.advance(30)
    assert reply_from(cache.get(name, 1), dns.message.make_query(name, "A")).answer[0].ttl == 30  # type: ignore[arg-type]
    clock.advance(40)
    found = cache.get(name, 1)
    assert found is not None and found.state is State.GRACE
    clock.advance(50)
    assert cache.get(name, 1) is None


def test_cache_is_bounded_and_flushes() -> None:
    clock = FakeClock()
    cache = LevelCache(dnsmasq.Dnsmasq(max_entries=3), clock)
    for index in range(10):
        name = f"host{index}.example.com."
        cache.put(dns.name.from_text(name), 1, _reply(name, 300, "192.0.2.1"))
    assert len(cache) == 3
    assert [view.name for view in cache.entries()] == [f"host{i}.example.com." for i in (7, 8, 9)]
    assert cache.flush(dns.name.from_text("example.com."), tree=True) == 3


def test_cache_does_not_keep_what_the_policy_refuses() -> None:
    cache = LevelCache(chromium.Chromium(), FakeClock())
    name = dns.name.from_text("nx.example.com.")
    assert cache.put(name, 1, _reply("nx.example.com.", 0, rcode=dns.rcode.NXDOMAIN)) is None
    assert cache.get(name, 1) is None


def test_glibc_order_and_timeouts() -> None:
    plan = tries(["a", "b"], StubOptions(timeout=5, attempts=2))
    assert [(t.server, t.timeout) for t in plan] == [("a", 5), ("b", 5), ("a", 5), ("b", 5)]
    three = tries(["a", "b", "c"], StubOptions(timeout=6, attempts=1))
    assert [(t.server, t.timeout) for t in three] == [("a", 6), ("b", 4), ("c", 8)]  # (6 << i) / 3
    rotated = tries(["a", "b"], StubOptions(timeout=1, attempts=1, rotate=True), offset=1)
    assert [t.server for t in rotated] == ["b", "a"]
    assert [t.server for t in tries(["a", "b"], StubOptions(attempts=1), offset=1)] == ["a", "b"]
    assert moves_on(dns.rcode.SERVFAIL) and moves_on(dns.rcode.REFUSED) and not moves_on(dns.rcode.NXDOMAIN)
    with pytest.raises(ValueError):
        StubOptions(attempts=0)
