"""The resolver cache, driven by a FakeClock: no sockets, no sleeps."""

from __future__ import annotations

import itertools
import random

import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dnslab.resolution.cache import (
    EXPIRED_MEMORY,
    Cache,
    CacheSettings,
    EntryView,
    NegativeKind,
    Rank,
    Rotation,
)
from dnslab.core.clock import FakeClock
from dnslab.core.errors import ConfigError

A = dns.rdatatype.A
AAAA = dns.rdatatype.AAAA
MX = dns.rdatatype.MX
NS = dns.rdatatype.NS


def n(text: str) -> dns.name.Name:
    return dns.name.from_text(text)


def rrset(owner: str, ttl: int, rdtype: str, *rdatas: str) -> dns.rrset.RRset:
    return dns.rrset.from_text(owner, ttl, "IN", rdtype, *rdatas)


def a(owner: str = "www.example.", ttl: int = 300, *addresses: str) -> dns.rrset.RRset:
    return rrset(owner, ttl, "A", *(addresses or ("192.0.2.1",)))


def soa(ttl: int = 3600, minimum: int = 900, owner: str = "example.") -> dns.rrset.RRset:
    return rrset(owner, ttl, "SOA", f"ns1.example. hostmaster.example. 1 7200 900 1209600 {minimum}")


def make(**overrides: object) -> tuple[Cache, FakeClock]:
    clock = FakeClock()
    return Cache(clock, CacheSettings(**overrides)), clock  # type: ignore[arg-type]


def addresses(rr: dns.rrset.RRset) -> list[str]:
    return [rd.to_text() for rd in rr]


# -- TTL countdown ------------------------------------------------------------------


def test_ttl_counts_down_and_expires_exactly_at_the_ttl() -> None:
    cache, clock = make()
    assert cache.put(a(ttl=300), Rank.AUTH_ANSWER)

    hit = cache.get(n("www.example."), A)
    assert hit is not None
    assert (hit.remaining, hit.original_ttl, hit.rrset.ttl, hit.stale) == (300, 300, 300, False)
    assert hit.rank is Rank.AUTH_ANSWER

    clock.advance(1)
    hit = cache.get(n("www.example."), A)
    assert hit is not None and (hit.remaining, hit.rrset.ttl) == (299, 299)

    clock.advance(298.5)  # 299.5 s after the store
    hit = cache.get(n("www.example."), A)
    assert hit is not None and (hit.remaining, hit.rrset.ttl) == (1, 1)

    clock.advance(0.5)  # exactly 300 s
    assert cache.get(n("www.example."), A) is None
    # Remembered as expired for a while (a trace says "expired", not "miss"), never served.
    assert cache.expired_since(n("www.example."), A) == 0
    assert list(cache.entries()) == []
    clock.advance(EXPIRED_MEMORY)
    assert cache.expired_since(n("www.example."), A) is None
    assert len(cache) == 0


@settings(max_examples=200, deadline=None)
@given(
    start=st.floats(min_value=0, max_value=1e9, allow_nan=False, allow_infinity=False),
    ttl=st.integers(min_value=1, max_value=200_000),
    steps=st.lists(
        st.floats(min_value=0, max_value=5000, allow_nan=False, allow_infinity=False),
        max_size=20,
    ),
)
def test_remaining_never_exceeds_the_original_ttl_nor_goes_below_one(
    start: float, ttl: int, steps: list[float]
) -> None:
    clock = FakeClock(start)
    cache = Cache(clock, CacheSettings(max_ttl=200_000))
    cache.put(a(ttl=ttl), Rank.ANSWER)
    stored_at = clock.now()
    for step in [0.0, *steps]:
        clock.advance(step)
        hit = cache.get(n("www.example."), A)
        if clock.now() >= stored_at + ttl:
            assert hit is None
        else:
            assert hit is not None
            assert 1 <= hit.remaining <= ttl
            assert hit.rrset.ttl == hit.remaining
            assert hit.original_ttl == ttl


def test_returned_rrsets_are_copies_both_ways() -> None:
    cache, _ = make()
    original = a(ttl=300)
    cache.put(original, Rank.ANSWER)
    original.add(dns.rdata.from_text("IN", "A", "192.0.2.99"))
    hit = cache.get(n("www.example."), A)
    assert hit is not None and addresses(hit.rrset) == ["192.0.2.1"]
    hit.rrset.add(dns.rdata.from_text("IN", "A", "192.0.2.98"))
    hit.rrset.ttl = 5
    again = cache.get(n("www.example."), A)
    assert again is not None and addresses(again.rrset) == ["192.0.2.1"]
    assert again.rrset.ttl == 300


# -- clamps -------------------------------------------------------------------------


def test_min_ttl_raises_short_ttls() -> None:
    cache, _ = make(min_ttl=60)
    cache.put(a(ttl=10), Rank.ANSWER)
    hit = cache.get(n("www.example."), A)
    assert hit is not None and (hit.remaining, hit.original_ttl, hit.rrset.ttl) == (60, 60, 60)


def test_max_ttl_lowers_long_ttls() -> None:
    cache, clock = make(max_ttl=3600)
    cache.put(a(ttl=86400 * 7), Rank.ANSWER)
    hit = cache.get(n("www.example."), A)
    assert hit is not None and (hit.remaining, hit.original_ttl) == (3600, 3600)
    clock.advance(3600)
    assert cache.get(n("www.example."), A) is None


def test_ttl_zero_is_not_stored() -> None:
    cache, _ = make()
    assert cache.put(a(ttl=0), Rank.AUTH_ANSWER) is False
    assert cache.get(n("www.example."), A) is None
    assert len(cache) == 0


def test_ttl_zero_is_stored_when_min_ttl_makes_it_positive() -> None:
    cache, _ = make(min_ttl=5)
    assert cache.put(a(ttl=0), Rank.AUTH_ANSWER) is True
    hit = cache.get(n("www.example."), A)
    assert hit is not None and hit.remaining == 5


def test_only_class_in_is_cached() -> None:
    cache, _ = make()
    chaos = dns.rrset.from_text("version.bind.", 60, "CH", "TXT", '"x"')
    assert cache.put(chaos, Rank.AUTH_ANSWER) is False
    assert len(cache) == 0


@pytest.mark.parametrize(
    "overrides",
    [{"min_ttl": 100, "max_ttl": 50}, {"max_entries": 0}, {"servfail_ttl": -1}],
)
def test_nonsense_settings_are_refused(overrides: dict[str, int]) -> None:
    with pytest.raises(ConfigError):
        CacheSettings(**overrides)  # type: ignore[arg-type]


# -- RFC 2181 ranking ---------------------------------------------------------------


@pytest.mark.parametrize("old, new", list(itertools.product(Rank, Rank)))
def test_lower_rank_never_overwrites_live_higher_rank(old: Rank, new: Rank) -> None:
    cache, _ = make()
    assert cache.put(a("www.example.", 300, "192.0.2.1"), old)
    stored = cache.put(a("www.example.", 600, "192.0.2.2"), new)
    assert stored is (new >= old)
    hit = cache.get(n("www.example."), A)
    assert hit is not None
    if new >= old:
        assert (addresses(hit.rrset), hit.rank, hit.original_ttl) == (["192.0.2.2"], new, 600)
    else:
        assert (addresses(hit.rrset), hit.rank, hit.original_ttl) == (["192.0.2.1"], old, 300)


def test_after_expiry_any_rank_may_be_stored() -> None:
    cache, clock = make()
    cache.put(a("www.example.", 300, "192.0.2.1"), Rank.AUTH_ANSWER)
    clock.advance(299)
    assert cache.put(a("www.example.", 300, "192.0.2.2"), Rank.ADDITIONAL) is False
    clock.advance(1)
    assert cache.put(a("www.example.", 300, "192.0.2.2"), Rank.ADDITIONAL) is True
    hit = cache.get(n("www.example."), A)
    assert hit is not None and hit.rank is Rank.ADDITIONAL and addresses(hit.rrset) == ["192.0.2.2"]


def test_after_expiry_lower_rank_replaces_stale_data_too() -> None:
    cache, clock = make(serve_stale=True)
    cache.put(a("www.example.", 300, "192.0.2.1"), Rank.AUTH_ANSWER)
    clock.advance(400)  # expired, still held for serve-stale
    assert cache.put(a("www.example.", 300, "192.0.2.2"), Rank.ADDITIONAL) is True


# -- negative caching (RFC 2308) ----------------------------------------------------------


def test_nxdomain_covers_every_type_of_the_name_only() -> None:
    cache, _ = make()
    cache.put_negative(n("nope.example."), A, NegativeKind.NXDOMAIN, soa())
    for rdtype in (A, AAAA, MX, NS):
        hit = cache.get_negative(n("nope.example."), rdtype)
        assert hit is not None and hit.kind is NegativeKind.NXDOMAIN
    assert cache.get_negative(n("other.example."), A) is None
    assert cache.get_negative(n("sub.nope.example."), A) is None
    assert cache.get(n("nope.example."), A) is None


def test_nodata_covers_only_its_type() -> None:
    cache, _ = make()
    cache.put_negative(n("www.example."), AAAA, NegativeKind.NODATA, soa())
    hit = cache.get_negative(n("www.example."), AAAA)
    assert hit is not None and hit.kind is NegativeKind.NODATA
    assert cache.get_negative(n("www.example."), A) is None
    assert cache.get_negative(n("www.example."), MX) is None


def test_nxdomain_is_reported_before_nodata() -> None:
    cache, _ = make()
    cache.put_negative(n("x.example."), A, NegativeKind.NODATA, soa(ttl=300, minimum=300))
    cache.put_negative(n("x.example."), A, NegativeKind.NXDOMAIN, soa(ttl=100, minimum=100))
    hit = cache.get_negative(n("x.example."), A)
    assert hit is not None and hit.kind is NegativeKind.NXDOMAIN and hit.remaining == 100


@pytest.mark.parametrize(
    "soa_ttl, minimum, cap, expected",
    [
        (3600, 900, 3600, 900),  # MINIMUM is the smallest
        (300, 900, 3600, 300),  # the SOA's own TTL is the smallest
        (86400, 86400, 3600, 3600),  # the cap is the smallest
        (60, 60, 3600, 60),
    ],
)
def test_negative_ttl_is_the_least_of_soa_ttl_minimum_and_cap(
    soa_ttl: int, minimum: int, cap: int, expected: int
) -> None:
    cache, clock = make(negative_max_ttl=cap)
    cache.put_negative(n("nope.example."), A, NegativeKind.NXDOMAIN, soa(soa_ttl, minimum))
    hit = cache.get_negative(n("nope.example."), A)
    assert hit is not None and hit.remaining == expected and hit.soa.ttl == expected
    clock.advance(expected - 0.5)
    assert cache.get_negative(n("nope.example."), A) is not None
    clock.advance(0.5)
    assert cache.get_negative(n("nope.example."), A) is None


def test_negative_soa_copy_counts_down_and_keeps_the_zone_owner() -> None:
    cache, clock = make()
    original = soa(ttl=3600, minimum=900)
    cache.put_negative(n("www.example."), AAAA, NegativeKind.NODATA, original)
    clock.advance(100)
    hit = cache.get_negative(n("www.example."), AAAA)
    assert hit is not None
    assert (hit.remaining, hit.soa.ttl) == (800, 800)
    assert hit.soa.name == n("example.") and hit.soa.rdtype == dns.rdatatype.SOA
    hit.soa.ttl = 1
    assert original.ttl == 3600
    again = cache.get_negative(n("www.example."), AAAA)
    assert again is not None and again.soa.ttl == 800


def test_negative_with_zero_ttl_is_not_stored() -> None:
    cache, _ = make()
    cache.put_negative(n("nope.example."), A, NegativeKind.NXDOMAIN, soa(ttl=0))
    cache.put_negative(n("www.example."), A, NegativeKind.NODATA, soa(minimum=0))
    assert cache.get_negative(n("nope.example."), A) is None
    assert cache.get_negative(n("www.example."), A) is None
    assert len(cache) == 0


def test_negative_needs_an_soa() -> None:
    cache, _ = make()
    with pytest.raises(ValueError):
        cache.put_negative(n("x.example."), A, NegativeKind.NXDOMAIN, a())


def test_positive_put_clears_nodata_for_its_type() -> None:
    cache, _ = make()
    cache.put_negative(n("www.example."), A, NegativeKind.NODATA, soa())
    cache.put_negative(n("www.example."), MX, NegativeKind.NODATA, soa())
    assert cache.put(a(), Rank.AUTH_ANSWER)
    assert cache.get_negative(n("www.example."), A) is None
    assert cache.get_negative(n("www.example."), MX) is not None


def test_positive_put_clears_nxdomain_of_the_name() -> None:
    cache, _ = make()
    cache.put_negative(n("www.example."), AAAA, NegativeKind.NXDOMAIN, soa())
    assert cache.put(a(), Rank.ANSWER)
    assert cache.get_negative(n("www.example."), AAAA) is None
    assert cache.get_negative(n("www.example."), A) is None


def test_refused_positive_put_leaves_negative_entries_alone() -> None:
    cache, _ = make()
    cache.put(a(), Rank.AUTH_ANSWER)
    cache.put_negative(n("www.example."), A, NegativeKind.NODATA, soa())
    assert cache.put(a(), Rank.ADDITIONAL) is False
    assert cache.get_negative(n("www.example."), A) is not None


# -- SERVFAIL -----------------------------------------------------------------------


def test_servfail_is_remembered_for_exactly_servfail_ttl() -> None:
    cache, clock = make(servfail_ttl=5)
    cache.put_servfail(n("broken.example."), A)
    assert cache.is_servfail(n("broken.example."), A)
    assert not cache.is_servfail(n("broken.example."), AAAA)
    assert not cache.is_servfail(n("other.example."), A)
    clock.advance(4.999)
    assert cache.is_servfail(n("broken.example."), A)
    clock.advance(0.001)
    assert not cache.is_servfail(n("broken.example."), A)


def test_servfail_ttl_zero_remembers_nothing() -> None:
    cache, _ = make(servfail_ttl=0)
    cache.put_servfail(n("broken.example."), A)
    assert not cache.is_servfail(n("broken.example."), A)


# -- size bound ---------------------------------------------------------------------


def test_eviction_is_least_recently_used() -> None:
    cache, _ = make(max_entries=3)
    for label in "abc":
        cache.put(a(f"{label}.example."), Rank.ANSWER)
    assert cache.get(n("a.example."), A) is not None  # a is now the most recent
    cache.put(a("d.example."), Rank.ANSWER)
    assert len(cache) == 3
    assert cache.get(n("b.example."), A) is None
    for label in "acd":
        assert cache.get(n(f"{label}.example."), A) is not None


def test_bound_holds_for_all_kinds_together() -> None:
    cache, _ = make(max_entries=4)
    for i in range(10):
        cache.put(a(f"p{i}.example."), Rank.ANSWER)
        cache.put_negative(n(f"x{i}.example."), A, NegativeKind.NXDOMAIN, soa())
        cache.put_negative(n(f"y{i}.example."), A, NegativeKind.NODATA, soa())
        cache.put_servfail(n(f"s{i}.example."), A)
        assert len(cache) <= 4
    assert len(cache) == 4
    assert len(list(cache.entries())) == 4


def test_expired_entries_do_not_count_against_the_bound() -> None:
    cache, clock = make(max_entries=2)
    cache.put(a("short.example.", 10), Rank.ANSWER)
    cache.put(a("long.example.", 1000), Rank.ANSWER)
    clock.advance(10)
    cache.put(a("new.example.", 1000), Rank.ANSWER)
    assert cache.get(n("long.example."), A) is not None
    assert cache.get(n("new.example."), A) is not None


# -- rotation -----------------------------------------------------------------------

THREE = ("192.0.2.1", "192.0.2.2", "192.0.2.3")


def three(rotation: Rotation, rng: random.Random | None = None) -> Cache:
    cache = Cache(FakeClock(), CacheSettings(rotation=rotation), rng)
    cache.put(a("rr.example.", 300, *THREE), Rank.AUTH_ANSWER)
    return cache


def rotated(cache: Cache) -> list[str]:
    hit = cache.get(n("rr.example."), A, rotate=True)
    assert hit is not None
    return addresses(hit.rrset)


def test_cyclic_rotation_starts_one_record_later_each_time() -> None:
    cache = three(Rotation.CYCLIC)
    orders = [rotated(cache) for _ in range(4)]
    assert orders == [
        ["192.0.2.1", "192.0.2.2", "192.0.2.3"],
        ["192.0.2.2", "192.0.2.3", "192.0.2.1"],
        ["192.0.2.3", "192.0.2.1", "192.0.2.2"],
        ["192.0.2.1", "192.0.2.2", "192.0.2.3"],
    ]


def test_rotate_false_keeps_stored_order_and_leaves_the_counter_alone() -> None:
    cache = three(Rotation.CYCLIC)
    assert rotated(cache)[0] == "192.0.2.1"
    for _ in range(5):
        hit = cache.get(n("rr.example."), A)
        assert hit is not None and addresses(hit.rrset) == list(THREE)
    assert rotated(cache)[0] == "192.0.2.2"


def test_rotation_never_changes_the_stored_order() -> None:
    cache = three(Rotation.CYCLIC)
    rotated(cache)
    rotated(cache)
    view = next(iter(cache.entries()))
    assert view.rrset is not None and addresses(view.rrset) == list(THREE)


def test_random_rotation_is_a_permutation_and_reproducible_with_a_seed() -> None:
    first = three(Rotation.RANDOM, random.Random(7))
    second = three(Rotation.RANDOM, random.Random(7))
    orders = [rotated(first) for _ in range(30)]
    assert orders == [rotated(second) for _ in range(30)]
    for order in orders:
        assert sorted(order) == sorted(THREE)
    assert len({tuple(order) for order in orders}) > 1


def test_random_rotation_draws_only_when_rotating() -> None:
    rng = random.Random(7)
    cache = three(Rotation.RANDOM, rng)
    state = rng.getstate()
    hit = cache.get(n("rr.example."), A)
    assert hit is not None and addresses(hit.rrset) == list(THREE)
    assert rng.getstate() == state


def test_fixed_rotation_keeps_stored_order() -> None:
    cache = three(Rotation.FIXED)
    assert all(rotated(cache) == list(THREE) for _ in range(4))


def test_rotation_counter_starts_over_for_a_new_rrset() -> None:
    cache = three(Rotation.CYCLIC)
    rotated(cache)
    cache.put(a("rr.example.", 300, *THREE), Rank.AUTH_ANSWER)
    assert rotated(cache)[0] == "192.0.2.1"


# -- serve-stale (RFC 8767) ---------------------------------------------------------------


def test_serve_stale_off_gives_no_stale_hits() -> None:
    cache, clock = make(serve_stale=False)
    cache.put(a(ttl=300), Rank.ANSWER)
    hit = cache.get_stale(n("www.example."), A)
    assert hit is not None and hit.stale is False and hit.remaining == 300
    clock.advance(300)
    assert cache.get_stale(n("www.example."), A) is None
    clock.advance(EXPIRED_MEMORY)
    assert len(cache) == 0


def test_serve_stale_on_serves_expired_data_within_the_window() -> None:
    cache, clock = make(serve_stale=True, stale_window=3600, stale_answer_ttl=30)
    cache.put(a(ttl=300), Rank.AUTH_ANSWER)
    clock.advance(100)
    live = cache.get_stale(n("www.example."), A)
    assert live is not None and (live.stale, live.remaining) == (False, 200)

    clock.advance(200)  # expired now
    assert cache.get(n("www.example."), A) is None
    stale = cache.get_stale(n("www.example."), A)
    assert stale is not None
    assert (stale.stale, stale.remaining, stale.rrset.ttl) == (True, 30, 30)
    assert (stale.original_ttl, stale.rank) == (300, Rank.AUTH_ANSWER)
    assert len(cache) == 1

    clock.advance(3599.5)
    assert cache.get_stale(n("www.example."), A) is not None
    clock.advance(0.5)  # exactly stale_window after expiry
    assert cache.get_stale(n("www.example."), A) is None
    assert len(cache) == 0


def test_stale_answers_rotate_too() -> None:
    clock = FakeClock()
    cache = Cache(clock, CacheSettings(serve_stale=True))
    cache.put(a("rr.example.", 10, *THREE), Rank.ANSWER)
    clock.advance(20)
    firsts = []
    for _ in range(3):
        hit = cache.get_stale(n("rr.example."), A, rotate=True)
        assert hit is not None and hit.stale
        firsts.append(addresses(hit.rrset)[0])
    assert firsts == list(THREE)


def test_negative_entries_are_never_stale() -> None:
    cache, clock = make(serve_stale=True)
    cache.put_negative(n("nope.example."), A, NegativeKind.NXDOMAIN, soa(minimum=60))
    clock.advance(60)
    assert cache.get_negative(n("nope.example."), A) is None
    assert len(cache) == 0


# -- flushing -----------------------------------------------------------------------


def populate(cache: Cache) -> None:
    cache.put(a("example."), Rank.AUTH_ANSWER)
    cache.put(a("www.example."), Rank.AUTH_ANSWER)
    cache.put(rrset("www.example.", 300, "AAAA", "2001:db8::1"), Rank.AUTH_ANSWER)
    cache.put(a("deep.www.example."), Rank.AUTH_ANSWER)
    cache.put_negative(n("www.example."), MX, NegativeKind.NODATA, soa())
    cache.put_servfail(n("www.example."), NS)
    cache.put(a("www.example.org."), Rank.AUTH_ANSWER)


def test_flush_forgets_everything() -> None:
    cache, _ = make()
    populate(cache)
    cache.flush()
    assert len(cache) == 0
    assert cache.get(n("www.example."), A) is None


def test_flush_name_removes_every_kind_at_the_name_only() -> None:
    cache, _ = make()
    populate(cache)
    assert cache.flush_name(n("WWW.example.")) == 4
    assert cache.get(n("www.example."), A) is None
    assert cache.get_negative(n("www.example."), MX) is None
    assert not cache.is_servfail(n("www.example."), NS)
    assert cache.get(n("deep.www.example."), A) is not None
    assert cache.get(n("example."), A) is not None
    assert cache.flush_name(n("www.example.")) == 0


def test_flush_name_subtree_removes_the_name_and_below() -> None:
    cache, _ = make()
    populate(cache)
    assert cache.flush_name(n("example."), subtree=True) == 6
    assert len(cache) == 1
    assert cache.get(n("www.example.org."), A) is not None


# -- inspection ---------------------------------------------------------------------


def test_entries_shows_every_kind() -> None:
    cache, clock = make()
    cache.put(a("www.example.", 300), Rank.ANSWER)
    cache.put_negative(n("nope.example."), A, NegativeKind.NXDOMAIN, soa(minimum=600))
    cache.put_negative(n("www.example."), MX, NegativeKind.NODATA, soa(minimum=600))
    cache.put_servfail(n("bad.example."), A)
    clock.advance(1)
    views = {(v.name, v.kind): v for v in cache.entries()}
    assert set(views) == {
        (n("www.example."), "positive"),
        (n("nope.example."), "nxdomain"),
        (n("www.example."), "nodata"),
        (n("bad.example."), "servfail"),
    }
    pos = views[(n("www.example."), "positive")]
    assert isinstance(pos, EntryView)
    assert (pos.rdtype, pos.remaining, pos.original_ttl, pos.rank, pos.stale) == (
        A,
        299,
        300,
        Rank.ANSWER,
        False,
    )
    assert pos.rrset is not None and pos.rrset.ttl == 299
    nx = views[(n("nope.example."), "nxdomain")]
    assert (nx.rdtype, nx.remaining, nx.rank) == (dns.rdatatype.ANY, 599, None)
    assert nx.rrset is not None and nx.rrset.rdtype == dns.rdatatype.SOA
    nodata = views[(n("www.example."), "nodata")]
    assert nodata.rdtype == MX
    sf = views[(n("bad.example."), "servfail")]
    assert (sf.remaining, sf.original_ttl, sf.rrset) == (4, 5, None)


def test_entries_shows_stale_entries_only_with_serve_stale() -> None:
    cache, clock = make(serve_stale=True)
    cache.put(a(ttl=10), Rank.ANSWER)
    clock.advance(20)
    (view,) = list(cache.entries())
    assert (view.stale, view.remaining, view.original_ttl) == (True, 0, 10)

    plain, plain_clock = make()
    plain.put(a(ttl=10), Rank.ANSWER)
    plain_clock.advance(20)
    assert list(plain.entries()) == []


def test_entries_does_not_count_as_use_for_lru() -> None:
    cache, _ = make(max_entries=2)
    cache.put(a("old.example."), Rank.ANSWER)
    cache.put(a("new.example."), Rank.ANSWER)
    list(cache.entries())
    cache.put(a("newest.example."), Rank.ANSWER)
    assert cache.get(n("old.example."), A) is None
    assert cache.get(n("new.example."), A) is not None


# -- names --------------------------------------------------------------------------


def test_keys_are_case_insensitive_and_owner_case_is_preserved() -> None:
    cache, _ = make()
    cache.put(a("WWW.Example.COM."), Rank.ANSWER)
    hit = cache.get(n("www.example.com."), A)
    assert hit is not None
    assert hit.rrset.name.to_text() == "WWW.Example.COM."
    cache.put_negative(n("NoPe.Example.COM."), A, NegativeKind.NXDOMAIN, soa())
    assert cache.get_negative(n("nope.example.com."), AAAA) is not None
    cache.put_servfail(n("Bad.Example.COM."), A)
    assert cache.is_servfail(n("bad.example.com."), A)


def test_types_are_kept_apart() -> None:
    cache, _ = make()
    cache.put(a(), Rank.ANSWER)
    assert cache.get(n("www.example."), AAAA) is None
    assert cache.get(n("www.example."), dns.rdatatype.RdataType.A) is not None


def test_a_label_containing_a_dot_is_not_two_labels() -> None:
    cache, _ = make()
    cache.put(a(r"a\.b.example.", 300, "192.0.2.1"), Rank.ANSWER)
    assert cache.get(n("a.b.example."), A) is None
    hit = cache.get(n(r"A\.B.example."), A)
    assert hit is not None and hit.rrset.name.to_text() == r"a\.b.example."


# -- the compact stored form ---------------------------------------------------------
# Entries keep a tuple of rdatas, not an RRset, and build the caller's RRset on
# each get: these pin down that nothing of the RRset is lost on the way.


def test_the_callers_rrset_and_the_answers_are_independent_of_the_store() -> None:
    cache, _ = make()
    mine = a("www.example.", 300, "192.0.2.1", "192.0.2.2")
    cache.put(mine, Rank.ANSWER)
    mine.add(dns.rdata.from_text("IN", "A", "192.0.2.99"))
    mine.ttl = 5
    first = cache.get(n("www.example."), A)
    assert first is not None
    first.rrset.add(dns.rdata.from_text("IN", "A", "192.0.2.77"))
    again = cache.get(n("www.example."), A)
    assert again is not None and first.rrset is not again.rrset
    assert addresses(again.rrset) == ["192.0.2.1", "192.0.2.2"]
    assert again.rrset.ttl == 300


def test_an_answer_is_an_rrset_like_the_one_stored() -> None:
    cache, _ = make()
    stored = a("www.example.", 300, "192.0.2.1")
    cache.put(stored, Rank.ANSWER)
    hit = cache.get(n("www.example."), A)
    assert hit is not None
    out = hit.rrset
    assert isinstance(out, dns.rrset.RRset)
    assert (out.name, out.rdclass, out.rdtype, out.covers, out.deleting) == (
        stored.name, stored.rdclass, stored.rdtype, stored.covers, None)
    assert out == stored and out.to_text() == stored.to_text()


def test_a_signature_rrset_keeps_the_type_it_covers() -> None:
    cache, _ = make()
    sig = rrset("www.example.", 300, "RRSIG",
                "A 13 2 300 20300101000000 20200101000000 12345 example. AAAA")
    assert sig.covers == A
    cache.put(sig, Rank.ANSWER)
    hit = cache.get(n("www.example."), dns.rdatatype.RRSIG)
    assert hit is not None
    assert hit.rrset.covers == A and hit.rrset == sig
    (view,) = list(cache.entries())
    assert view.rrset is not None and view.rrset.covers == A


@pytest.mark.parametrize("owner", ["www.example.", "WWW.Example."])
def test_lower_and_mixed_case_owners_are_found_either_way(owner: str) -> None:
    # A lower-case owner's key shares its labels; a mixed-case one gets a folded copy.
    cache, _ = make()
    cache.put(a(owner), Rank.ANSWER)
    for asked in ("www.example.", "WWW.EXAMPLE.", "wWw.eXample."):
        hit = cache.get(n(asked), A)
        assert hit is not None and hit.rrset.name.to_text() == owner
    assert cache.flush_name(n("www.EXAMPLE.")) == 1
    assert cache.get(n("www.example."), A) is None


# -- the iterator's cheaper reads ------------------------------------------------


def test_addresses_read_what_get_would_without_an_rrset() -> None:
    cache, clock = make()
    cache.put(a("ns1.example.", 10, "192.0.2.1", "192.0.2.2"), Rank.ADDITIONAL)
    cache.put(rrset("ns1.example.", 10, "AAAA", "2001:db8::1"), Rank.ADDITIONAL)
    assert cache.addresses(n("NS1.example."), A) == ["192.0.2.1", "192.0.2.2"]
    assert cache.addresses(n("ns1.example."), AAAA) == ["2001:db8::1"]
    assert cache.addresses(n("ns2.example."), A) == []
    clock.advance(10)  # expired: as `get`, nothing
    assert cache.get(n("ns1.example."), A) is None and cache.addresses(n("ns1.example."), A) == []


def test_get_above_finds_the_closest_ancestor_of_rank_enough() -> None:
    cache, clock = make()
    dname = dns.rdatatype.DNAME
    cache.put(rrset("example.", 300, "DNAME", "example.net."), Rank.ANSWER)
    cache.put(rrset("b.example.", 100, "DNAME", "example.org."), Rank.ADDITIONAL)
    hit = cache.get_above(n("a.B.example."), dname, Rank.ANSWER)
    assert hit is not None and hit.rrset.name == n("example.")  # b.example.'s rank is too low
    assert cache.get_above(n("example."), dname, Rank.ANSWER) is None  # proper ancestors only
    cache.put(rrset("b.example.", 100, "DNAME", "example.org."), Rank.ANSWER)
    hit = cache.get_above(n("x.a.b.example."), dname, Rank.ANSWER)
    assert hit is not None and hit.rrset.name == n("b.example.") and hit.remaining == 100
    clock.advance(100)  # the closer one expired: the next one up answers
    hit = cache.get_above(n("x.a.b.example."), dname, Rank.ANSWER)
    assert hit is not None and hit.rrset.name == n("example.")
