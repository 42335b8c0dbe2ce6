"""Answer policy before and after a lookup (dnslab.resolution.policy): the fake clock, no sockets."""

from __future__ import annotations

import ipaddress
import random

import dns.name
import dns.rcode
import dns.rdatatype
import dns.rrset

from dnslab.core.clock import FakeClock
from dnslab.resolution import policy
from dnslab.resolution.cache import Cache, CacheSettings, Rank
from dnslab.resolution.iterator import Result

A = dns.rdatatype.A
WWW = dns.name.from_text("www.example.")


def setup(**settings: object) -> tuple[Cache, FakeClock]:
    clock = FakeClock()
    return Cache(clock, CacheSettings(**settings), random.Random(1)), clock  # type: ignore[arg-type]


def a(ttl: int = 60) -> dns.rrset.RRset:
    return dns.rrset.from_text(WWW, ttl, "IN", "A", "192.0.2.1")


def test_the_acl_allows_listed_networks_only_and_remembers_in_bounded_memory() -> None:
    acl = policy.Acl((ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128")))
    assert acl.allows("127.0.0.1") and acl.allows("::1") and acl.allows("::1%lo")
    assert not acl.allows("192.0.2.1") and not acl.allows("not an address")
    for n in range(policy.ACL_MEMORY + 10):
        acl.allows(f"10.0.{n // 256}.{n % 256}")
    assert len(acl.known) <= policy.ACL_MEMORY


def test_no_stale_data_without_serve_stale_or_before_expiry() -> None:
    cache, clock = setup(serve_stale=True)
    cache.put(a(), Rank.ANSWER)
    assert policy.plan(cache, WWW, A) == policy.Plan()  # live data: the lookup finds it
    off, off_clock = setup()
    off.put(a(), Rank.ANSWER)
    off_clock.advance(61)
    plan = policy.plan(off, WWW, A)
    assert plan.stale is None and plan.timer is None and plan.expired


def test_expired_data_waits_for_the_lookup_the_client_response_timer_long() -> None:
    cache, clock = setup(serve_stale=True, stale_answer_ttl=30)
    cache.put(a(), Rank.ANSWER)
    clock.advance(61)
    plan = policy.plan(cache, WWW, A)
    assert plan.now is None and plan.expired and plan.timer == policy.STALE_CLIENT_TIMER
    assert plan.stale is not None and plan.stale.stale and plan.stale.answer[0].ttl == 30  # RFC 8767 §4


def test_glue_is_never_served_stale() -> None:
    cache, clock = setup(serve_stale=True)
    cache.put(a(), Rank.ADDITIONAL)
    clock.advance(61)
    assert policy.plan(cache, WWW, A).stale is None


def test_a_servfail_is_remembered_and_answers_at_once_until_it_expires() -> None:
    cache, clock = setup(servfail_ttl=5)
    failed = Result(dns.rcode.SERVFAIL, reason="no server answered")
    assert policy.settle(cache, WWW, A, failed) is failed
    plan = policy.plan(cache, WWW, A)
    assert plan.now is not None and plan.now.rcode == dns.rcode.SERVFAIL and plan.now.from_cache
    clock.advance(5)
    assert policy.plan(cache, WWW, A).now is None  # asked again after servfail_ttl


def test_stale_data_beats_a_failure_and_a_cached_servfail() -> None:
    cache, clock = setup(serve_stale=True)
    cache.put(a(), Rank.ANSWER)
    clock.advance(61)
    stale = policy.plan(cache, WWW, A).stale
    assert policy.settle(cache, WWW, A, Result(dns.rcode.SERVFAIL), stale) is stale
    assert policy.plan(cache, WWW, A).now == stale  # the SERVFAIL is cached, the stale data answers it
    fresh = Result(dns.rcode.NOERROR, [a()])
    assert policy.settle(cache, WWW, A, fresh, stale) is fresh
