"""Server selection, fed times and outcomes directly: no sockets, no sleeps."""

from __future__ import annotations

import random
import time

import pytest
from hypothesis import given, settings as hyp_settings, strategies as st

from dnslab.core.clock import FakeClock
from dnslab.core.errors import ConfigError
from dnslab.resolution.infra import (
    Breaker,
    Choice,
    Failure,
    Infra,
    InfraSettings,
    Reason,
    ServerView,
)

A, B, C, D = "192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.4"
NO_EXPLORE = InfraSettings(explore_probability=0.0)


def make(settings: InfraSettings = NO_EXPLORE, seed: int = 1) -> tuple[Infra, FakeClock]:
    clock = FakeClock()
    return Infra(clock, settings, random.Random(seed)), clock


def hold(infra: Infra, address: str, kind: Failure = Failure.TIMEOUT) -> None:
    for _ in range(infra.settings.failures_to_hold):
        infra.failure(address, kind)


# -- choosing -----------------------------------------------------------------


def test_untried_server_is_tried_before_a_slow_known_one() -> None:
    infra, _ = make()
    infra.success(A, 0.5)  # slower than the 376 ms an untried server is credited with
    choice = infra.choose([A, B])
    assert choice == Choice(B, Reason.UNTRIED, 0.376, ())


def test_fast_known_server_beats_untried_ones() -> None:
    infra, _ = make()
    infra.success(B, 0.010)
    choice = infra.choose([A, B, C])
    assert choice is not None
    assert (choice.address, choice.reason) == (B, Reason.FASTEST)


def test_all_untried_goes_to_the_first_candidate() -> None:
    infra, _ = make()
    choice = infra.choose([C, A, B])
    assert choice is not None
    assert (choice.address, choice.reason) == (C, Reason.UNTRIED)


def test_fastest_is_chosen_after_samples() -> None:
    infra, _ = make()
    for address, rtt in ((A, 0.080), (B, 0.020), (C, 0.050)):
        for _ in range(3):
            infra.success(address, rtt)
    choice = infra.choose([A, B, C])
    assert choice is not None
    assert (choice.address, choice.reason) == (B, Reason.FASTEST)
    assert choice.timeout == pytest.approx(infra.timeout(B))


def test_a_server_that_just_timed_out_drops_behind_a_similar_one() -> None:
    # Its estimate doubles like Unbound's rto, so it is not "fastest" until its
    # breaker finally opens.
    infra, _ = make()
    infra.success(A, 0.010)
    infra.success(B, 0.015)
    assert infra.choose([A, B]).address == A  # type: ignore[union-attr]
    infra.failure(A, Failure.TIMEOUT)
    assert infra.choose([A, B]).address == B  # type: ignore[union-attr]
    infra.success(A, 0.010)
    assert infra.choose([A, B]).address == A  # type: ignore[union-attr]


def test_duplicate_candidates_count_once() -> None:
    infra, _ = make()
    choice = infra.choose([A, A, A])
    assert choice is not None
    assert (choice.address, choice.reason) == (A, Reason.ONLY_ONE_LEFT)


def test_only_one_left_when_the_others_are_excluded_or_held() -> None:
    infra, _ = make()
    infra.success(A, 0.5)
    hold(infra, C)
    choice = infra.choose([A, B, C], exclude={B})
    assert choice == Choice(A, Reason.ONLY_ONE_LEFT, infra.timeout(A), (C,))


def test_exclude_skips_servers_already_tried() -> None:
    infra, _ = make()
    infra.success(A, 0.010)
    infra.success(B, 0.020)
    infra.success(C, 0.030)
    choice = infra.choose([A, B, C], exclude=[A])
    assert choice is not None
    assert (choice.address, choice.reason, choice.held_down) == (B, Reason.FASTEST, ())
    assert infra.choose([A, B, C], exclude=(A, B, C)) is None
    assert infra.choose([]) is None


def test_excluded_servers_are_not_listed_as_held_down() -> None:
    infra, _ = make()
    hold(infra, A)
    hold(infra, B)
    choice = infra.choose([A, B, C], exclude=[A])
    assert choice is not None
    assert (choice.address, choice.held_down) == (C, (B,))


def test_a_bare_string_is_not_taken_for_a_list() -> None:
    infra, _ = make()
    with pytest.raises(TypeError):
        infra.choose(A)
    with pytest.raises(TypeError):
        infra.choose([A, B], exclude=A)


# -- exploration --------------------------------------------------------------


def explore_run(seed: int, draws: int, probability: float = 0.1) -> list[Choice]:
    infra, _ = make(InfraSettings(explore_probability=probability), seed)
    infra.success(A, 0.010)
    infra.success(B, 0.050)  # within 400 ms of A: similar
    infra.success(C, 0.900)  # far outside the band
    return [c for c in (infra.choose([A, B, C, D]) for _ in range(draws)) if c is not None]


def test_exploration_happens_at_about_the_set_rate_among_similar_servers() -> None:
    draws = 4000
    choices = explore_run(seed=7, draws=draws)
    explored = [c for c in choices if c.reason is Reason.EXPLORE]
    # Binomial(4000, 0.1): mean 400, sd 19; +-100 is over 5 sd.
    assert 300 <= len(explored) <= 500
    # Only the similar servers (B, and untried D at 376 ms) are explored; never
    # the fastest itself, never C.
    assert {c.address for c in explored} == {B, D}
    assert all(c.address == A for c in choices if c.reason is Reason.FASTEST)
    assert len(choices) == draws
    assert {c.reason for c in choices} == {Reason.FASTEST, Reason.EXPLORE}


def test_exploration_is_reproducible_from_the_seed() -> None:
    assert explore_run(seed=3, draws=200) == explore_run(seed=3, draws=200)
    assert explore_run(seed=3, draws=200) != explore_run(seed=4, draws=200)


def test_exploration_bounds() -> None:
    never = explore_run(seed=5, draws=300, probability=0.0)
    assert {c.reason for c in never} == {Reason.FASTEST}
    always = explore_run(seed=5, draws=300, probability=1.0)
    assert {c.reason for c in always} == {Reason.EXPLORE}
    assert {c.address for c in always} == {B, D}


def test_no_exploration_when_nothing_is_similar() -> None:
    infra, _ = make(InfraSettings(explore_probability=1.0))
    infra.success(A, 0.010)
    infra.success(B, 0.600)
    for _ in range(50):
        choice = infra.choose([A, B])
        assert choice is not None
        assert (choice.address, choice.reason) == (A, Reason.FASTEST)


# -- RTT and timeouts ---------------------------------------------------------


def test_rtt_smoothing_follows_rfc6298() -> None:
    infra, _ = make()
    infra.success(A, 0.100)
    view = infra.view(A)
    assert (view.srtt, view.rttvar) == (pytest.approx(0.100), pytest.approx(0.050))
    infra.success(A, 0.200)
    view = infra.view(A)
    # rttvar = 3/4 * 0.05 + 1/4 * |0.1 - 0.2|; srtt = 7/8 * 0.1 + 1/8 * 0.2
    assert view.rttvar == pytest.approx(0.0625)
    assert view.srtt == pytest.approx(0.1125)
    infra.success(A, 0.040)
    view = infra.view(A)
    assert view.rttvar == pytest.approx(0.75 * 0.0625 + 0.25 * abs(0.1125 - 0.040))
    assert view.srtt == pytest.approx(0.875 * 0.1125 + 0.125 * 0.040)


def test_unknown_server_timeout_doubles_per_timeout_and_is_capped() -> None:
    infra, _ = make()
    assert infra.timeout(A) == pytest.approx(0.376)
    seen = []
    for _ in range(5):
        infra.failure(A, Failure.TIMEOUT)
        seen.append(infra.timeout(A))
    assert seen == pytest.approx([0.752, 1.504, 1.6, 1.6, 1.6])


def test_known_server_timeout_follows_srtt_and_rttvar() -> None:
    infra, _ = make()
    infra.success(A, 0.100)
    assert infra.timeout(A) == pytest.approx(0.100 + 4 * 0.050)
    infra.failure(A, Failure.TIMEOUT)
    assert infra.timeout(A) == pytest.approx(0.6)
    infra.failure(A, Failure.TIMEOUT)
    assert infra.timeout(A) == pytest.approx(1.2)
    infra.success(A, 0.100)  # srtt stays 0.1, rttvar shrinks to 0.0375
    assert infra.timeout(A) == pytest.approx(0.100 + 4 * 0.0375)


def test_timeout_never_below_the_floor() -> None:
    infra, _ = make()
    infra.success(A, 0.001)
    assert infra.timeout(A) == pytest.approx(InfraSettings().min_timeout)
    infra.failure(A, Failure.TIMEOUT)
    assert infra.timeout(A) == pytest.approx(2 * InfraSettings().min_timeout)


def test_other_failures_do_not_double_the_timeout_and_end_the_timeout_run() -> None:
    infra, _ = make(InfraSettings(failures_to_hold=100))
    for kind in Failure:
        if kind is not Failure.TIMEOUT:
            infra.failure(A, kind)
            assert infra.timeout(A) == pytest.approx(0.376)
    infra.failure(A, Failure.TIMEOUT)
    assert infra.timeout(A) == pytest.approx(0.752)
    infra.failure(A, Failure.REFUSED)  # the server answered: the run is over
    assert infra.timeout(A) == pytest.approx(0.376)
    assert infra.view(A).last_failure is Failure.REFUSED


def test_rtt_must_be_a_real_duration() -> None:
    infra, _ = make()
    for bad in (-0.1, float("nan"), float("inf")):
        with pytest.raises(ValueError):
            infra.success(A, bad)


# -- circuit breaker ----------------------------------------------------------


ZONE_BOUND = (Failure.LAME, Failure.REFUSED)


@pytest.mark.parametrize("kind", [kind for kind in Failure if kind not in ZONE_BOUND])
def test_breaker_opens_after_consecutive_failures_of_any_kind(kind: Failure) -> None:
    infra, clock = make()
    infra.failure(A, kind)
    infra.failure(A, kind)
    assert infra.view(A).breaker is Breaker.CLOSED
    infra.failure(A, kind)
    view = infra.view(A)
    assert view.breaker is Breaker.OPEN
    assert view.held_until == pytest.approx(clock.now() + 5.0)
    assert view.consecutive_failures == 3
    assert view.last_failure is kind


@pytest.mark.parametrize("kind", ZONE_BOUND)
def test_lame_and_refused_never_hold_an_address_down(kind: Failure) -> None:
    """Lameness is about one zone (Unbound keeps it per zone): the address stays usable."""
    infra, _ = make()
    for _ in range(10):
        infra.failure(A, kind, "lame.test.")
    view = infra.view(A)
    assert view.breaker is Breaker.CLOSED and view.last_failure is kind
    assert infra.choose([A]) is not None


def test_success_resets_the_failure_count() -> None:
    infra, _ = make()
    infra.failure(A, Failure.SERVFAIL)
    infra.failure(A, Failure.SERVFAIL)
    infra.success(A, 0.02)
    infra.failure(A, Failure.SERVFAIL)
    infra.failure(A, Failure.SERVFAIL)
    view = infra.view(A)
    assert (view.breaker, view.consecutive_failures) == (Breaker.CLOSED, 2)


def test_held_down_server_is_skipped_while_others_are_usable() -> None:
    infra, clock = make()
    infra.success(A, 0.005)  # the fastest, until it dies
    infra.success(B, 0.050)
    hold(infra, A)
    for _ in range(3):
        choice = infra.choose([A, B, C])
        assert choice is not None
        assert choice.address != A
        assert choice.held_down == (A,)
        clock.advance(1.0)


def test_choose_returns_none_when_every_candidate_is_held_down() -> None:
    infra, clock = make()
    hold(infra, A)
    clock.advance(1.0)
    hold(infra, B)
    assert infra.choose([A, B]) is None
    clock.advance(3.9)
    assert infra.choose([A, B]) is None


def test_probe_after_the_hold_down_expires() -> None:
    infra, clock = make()
    hold(infra, A)
    clock.advance(4.999)
    assert infra.choose([A]) is None
    clock.advance(0.001)
    assert infra.view(A).breaker is Breaker.HALF_OPEN
    probe = infra.choose([A])
    assert probe == Choice(A, Reason.PROBE, 1.6, ())  # after three timeouts: 0.376 * 2**3, capped
    # One probe at a time: not chosen again while it is outstanding.
    assert infra.choose([A]) is None


def test_an_unreported_probe_does_not_block_the_server_forever() -> None:
    infra, clock = make()
    hold(infra, A, Failure.SERVFAIL)
    clock.advance(5.0)
    probe = infra.choose([A])
    assert probe is not None and probe.reason is Reason.PROBE
    clock.advance(probe.timeout - 0.01)
    assert infra.choose([A]) is None
    clock.advance(0.01)
    again = infra.choose([A])
    assert again is not None and again.reason is Reason.PROBE


def test_probe_success_closes_the_breaker() -> None:
    infra, clock = make()
    hold(infra, A)
    clock.advance(5.0)
    assert infra.choose([A]).reason is Reason.PROBE  # type: ignore[union-attr]
    infra.success(A, 0.030)
    view = infra.view(A)
    assert (view.breaker, view.held_until, view.consecutive_failures) == (Breaker.CLOSED, None, 0)
    assert infra.timeout(A) == pytest.approx(max(InfraSettings().min_timeout, 0.030 + 4 * 0.015))
    choice = infra.choose([A, B])
    assert choice is not None
    assert (choice.address, choice.reason, choice.held_down) == (A, Reason.FASTEST, ())


def test_probe_failure_doubles_the_hold_down_up_to_the_probe_interval() -> None:
    infra, clock = make(InfraSettings(explore_probability=0.0, hold_down=5.0, probe_interval=60.0))
    hold(infra, A)
    periods = []
    for _ in range(6):
        held_until = infra.view(A).held_until
        assert held_until is not None
        clock.advance(held_until - clock.now())
        started = clock.now()
        probe = infra.choose([A])
        assert probe is not None and probe.reason is Reason.PROBE
        clock.advance(probe.timeout)  # the probe times out
        infra.failure(A, Failure.TIMEOUT, waited=probe.timeout)
        view = infra.view(A)
        assert view.breaker is Breaker.OPEN
        assert view.held_until is not None
        periods.append(view.held_until - started)  # counted from the probe's start
    assert periods == pytest.approx([10.0, 20.0, 40.0, 60.0, 60.0, 60.0])
    # ...and a later success still closes it and resets the backoff.
    clock.advance(60.0)
    infra.choose([A])
    infra.success(A, 0.02)
    hold(infra, A)
    assert infra.view(A).held_until == pytest.approx(clock.now() + 5.0)


def test_the_default_probe_interval_caps_the_hold_down_at_ten_seconds() -> None:
    infra, clock = make()
    assert (infra.settings.hold_down, infra.settings.probe_interval) == (5.0, 10.0)
    hold(infra, A)
    for _ in range(20):  # twenty failed probes: still no more than 10 s between probe starts
        clock.advance(infra.view(A).held_until - clock.now())  # type: ignore[operator]
        started = clock.now()
        probe = infra.choose([A])
        assert probe is not None and probe.reason is Reason.PROBE
        clock.advance(probe.timeout)
        infra.failure(A, Failure.TIMEOUT, waited=probe.timeout)
        assert infra.view(A).held_until == pytest.approx(started + 10.0)


def _outage(settings: InfraSettings, down_for: float, step: float) -> float:
    """One zone, one server, a query every *step* s; the server is down for *down_for* s.

    Plays the resolver's side against the fake clock: every query asks `choose`;
    a try sent while the server is down times out after its timeout, one sent
    after it has returned succeeds.  Returns how long after its return the first
    query was answered.
    """
    infra, clock = make(settings)
    up_at = clock.now() + down_for
    pending: list[tuple[float, float]] = []  # (sent, timeout) of tries to a dead server
    while True:
        now = clock.now()
        for sent, timeout in [p for p in pending if p[0] + p[1] <= now]:
            pending.remove((sent, timeout))
            infra.failure(A, Failure.TIMEOUT, waited=now - sent)
        choice = infra.choose([A])
        if choice is not None:
            if now >= up_at:
                infra.success(A, 0.001)
                return now - up_at
            pending.append((now, choice.timeout))
        assert now < up_at + 10 * settings.probe_interval, "no recovery"
        clock.advance(step)


@pytest.mark.parametrize("down_for", [30.0, 600.0, 3600.0, 86_400.0 + 0.37])
def test_recovery_within_one_probe_interval_after_a_long_outage(down_for: float) -> None:
    settings = InfraSettings(explore_probability=0.0)
    # Before the cap, an hour's outage left a 120 s hold-down: recovery took up to two minutes.
    assert _outage(settings, down_for, step=0.05) <= settings.probe_interval + 0.05


@hyp_settings(max_examples=60, deadline=None)
@given(
    down_for=st.floats(1.0, 5_000.0),
    step=st.floats(0.01, 2.0),
    hold_down=st.floats(0.5, 20.0),
    extra=st.floats(0.0, 60.0),
)
def test_recovery_never_takes_more_than_one_probe_interval(down_for: float, step: float, hold_down: float,
                                                          extra: float) -> None:
    settings = InfraSettings(explore_probability=0.0, hold_down=hold_down,
                             probe_interval=max(hold_down + extra, InfraSettings.max_timeout))
    # One probe interval after the return, plus the wait for the next query that needs the server.
    assert _outage(settings, down_for, step) <= settings.probe_interval + step + 1e-9


def test_held_down_servers_are_not_hammered_during_a_long_outage() -> None:
    infra, clock = make()
    hold(infra, A)
    tries = 0
    end = clock.now() + 3600.0
    while clock.now() < end:  # an hour of queries, ten a second, all for a zone whose only server is dead
        choice = infra.choose([A])
        if choice is not None:
            tries += 1
            clock.advance(choice.timeout)
            infra.failure(A, Failure.TIMEOUT, waited=choice.timeout)
        clock.advance(0.1)
    # One probe per probe interval (3600 s / 10 s), not one try per query.
    assert 355 <= tries <= 361


def test_a_hold_down_counts_from_the_start_of_the_failed_try() -> None:
    infra, clock = make()
    for _ in range(3):
        timeout = infra.timeout(A)  # 0.376, 0.752, 1.504 s
        clock.advance(timeout)
        infra.failure(A, Failure.TIMEOUT, waited=timeout)
    assert infra.view(A).held_until == pytest.approx(clock.now() - 1.504 + 5.0)
    with pytest.raises(ValueError):
        infra.failure(A, Failure.TIMEOUT, waited=-1.0)


def test_tries_cut_off_together_count_as_one_timeout() -> None:
    infra, clock = make()
    infra.success(A, 0.010)
    first = infra.timeout(A)
    clock.advance(first)
    for _ in range(5):  # five tries in flight when the server (or our own loop) stalled
        infra.failure(A, Failure.TIMEOUT, waited=first)
    view = infra.view(A)
    assert (view.breaker, view.consecutive_failures, view.timeouts) == (Breaker.CLOSED, 1, 5)
    assert infra.timeout(A) == pytest.approx(2 * first)
    # A try that had the doubled timeout and still got nothing is new evidence.
    infra.failure(A, Failure.TIMEOUT, waited=2 * first)
    assert infra.view(A).consecutive_failures == 2
    # So a dead server is still held down, after three timeouts one after the other.
    infra.failure(A, Failure.TIMEOUT, waited=infra.timeout(A))
    assert infra.view(A).breaker is Breaker.OPEN


def test_a_late_failure_while_open_does_not_extend_the_hold_down() -> None:
    infra, clock = make()
    hold(infra, A)
    held_until = infra.view(A).held_until
    clock.advance(1.0)
    infra.failure(A, Failure.TIMEOUT)  # from a try sent before the breaker opened
    view = infra.view(A)
    assert (view.breaker, view.held_until, view.consecutive_failures) == (Breaker.OPEN, held_until, 4)


def test_a_late_success_while_open_closes_the_breaker() -> None:
    infra, clock = make()
    hold(infra, A)
    clock.advance(1.0)
    infra.success(A, 0.9)
    assert infra.view(A).breaker is Breaker.CLOSED
    assert infra.choose([A]).reason is Reason.ONLY_ONE_LEFT  # type: ignore[union-attr]


def test_a_due_probe_waits_while_a_closed_server_is_left() -> None:
    # The chosen probe policy: half-open servers are probed only when no
    # closed candidate remains.
    infra, clock = make()
    hold(infra, A)
    clock.advance(5.0)
    assert infra.view(A).breaker is Breaker.HALF_OPEN
    choice = infra.choose([A, B])
    assert choice is not None
    assert (choice.address, choice.reason, choice.held_down) == (B, Reason.ONLY_ONE_LEFT, (A,))
    # B is tried and fails; the resolver moves on and now A gets its probe.
    probe = infra.choose([A, B], exclude=[B])
    assert probe is not None
    assert (probe.address, probe.reason, probe.held_down) == (A, Reason.PROBE, ())


def test_the_longest_held_server_gets_the_probe() -> None:
    infra, clock = make()
    hold(infra, B)
    clock.advance(1.0)
    hold(infra, A)
    clock.advance(10.0)
    probe = infra.choose([A, B])
    assert probe is not None
    assert (probe.address, probe.reason, probe.held_down) == (B, Reason.PROBE, (A,))
    probe = infra.choose([A, B])  # B's probe is in flight; A may be probed too
    assert probe is not None
    assert (probe.address, probe.reason, probe.held_down) == (A, Reason.PROBE, (B,))
    assert infra.choose([A, B]) is None


# -- EDNS, memory, inspection -------------------------------------------------


def test_edns_is_remembered_per_server() -> None:
    infra, _ = make()
    assert infra.edns_supported(A) and infra.edns_supported(B)
    infra.mark_no_edns(A)
    assert not infra.edns_supported(A)
    assert infra.edns_supported(B)
    assert infra.view(A).edns is False
    infra.success(A, 0.01)  # a later good reply (sent without EDNS) changes nothing
    assert not infra.edns_supported(A)
    infra.forget(A)
    assert infra.edns_supported(A)


def test_server_states_are_bounded_by_lru() -> None:
    infra, _ = make(InfraSettings(max_servers=3, explore_probability=0.0))
    for address in (A, B, C):
        infra.success(address, 0.01)
    infra.view(A)  # looking is not using: A stays least recently used
    infra.views()
    infra.success(D, 0.01)
    assert [v.address for v in infra.views()] == [B, C, D]
    assert infra.view(A).srtt is None
    infra.choose([B])  # being a candidate is use: B becomes most recent
    infra.failure(A, Failure.LAME)
    assert [v.address for v in infra.views()] == [A, B, D]


def test_view_of_an_unknown_server_shows_defaults_without_storing_it() -> None:
    infra, _ = make()
    assert infra.view(A) == ServerView(
        address=A,
        srtt=None,
        rttvar=None,
        timeout=0.376,
        consecutive_failures=0,
        breaker=Breaker.CLOSED,
        held_until=None,
        edns=True,
        last_failure=None,
    )
    assert infra.views() == []


def test_views_lists_every_remembered_server_sorted() -> None:
    infra, clock = make()
    infra.success(C, 0.1)
    infra.failure(A, Failure.TIMEOUT)
    infra.mark_no_edns(B)
    views = infra.views()
    assert [v.address for v in views] == [A, B, C]
    a, b, c = views
    assert (a.consecutive_failures, a.last_failure, a.timeout) == (1, Failure.TIMEOUT, pytest.approx(0.752))
    assert b.edns is False
    assert (c.srtt, c.rttvar, c.breaker) == (pytest.approx(0.1), pytest.approx(0.05), Breaker.CLOSED)


def test_forget_one_or_all() -> None:
    infra, _ = make()
    hold(infra, A)
    infra.success(B, 0.01)
    infra.forget(A)
    assert infra.view(A).breaker is Breaker.CLOSED
    assert infra.choose([A]).reason is Reason.ONLY_ONE_LEFT  # type: ignore[union-attr]
    infra.forget(D)  # unknown: nothing to do
    infra.forget()
    assert infra.views() == []


# -- lameness (Unbound's infra-lame-ttl) -----------------------------------------


def test_a_lame_server_is_passed_over_for_that_zone_while_another_is_usable() -> None:
    infra, clock = make()
    infra.success(B, 0.001)  # the fastest by far, as ns2 is in the lab
    infra.success(A, 0.050)
    infra.failure(B, Failure.LAME, "Example.COM")  # zone names compare without case or final dot
    for _ in range(5):
        choice = infra.choose([B, A], zone="example.com.")
        assert choice == Choice(A, Reason.ONLY_ONE_LEFT, infra.timeout(A), (), (B,))
    # Lameness is per zone: B is still the fastest server for anything else it serves.
    assert infra.choose([B, A], zone="example.net.").address == B  # type: ignore[union-attr]
    assert infra.choose([B, A]).address == B  # type: ignore[union-attr]
    # And the mark is not a breaker: B is not held down, it answered.
    assert infra.view(B).breaker is Breaker.CLOSED


def test_a_lame_server_is_the_last_resort_not_dropped() -> None:
    infra, clock = make()
    infra.failure(B, Failure.LAME, "example.com.")
    # Every other server already tried for this question: the lame one is still better than SERVFAIL.
    choice = infra.choose([A, B], exclude={A}, zone="example.com.")
    assert choice == Choice(B, Reason.ONLY_LAME_LEFT, infra.timeout(B), (), ())
    # A held-down server that is due for its probe comes before a lame one.
    hold(infra, A)
    assert infra.choose([A, B], zone="example.com.").address == B  # type: ignore[union-attr]  # A held down
    clock.advance(infra.settings.hold_down)
    assert infra.choose([A, B], zone="example.com.").reason is Reason.PROBE  # type: ignore[union-attr]


def test_lameness_lasts_lame_ttl_and_the_view_counts_down() -> None:
    infra, clock = make(InfraSettings(explore_probability=0.0, lame_ttl=60.0))
    infra.success(B, 0.001)
    infra.success(A, 0.050)
    infra.failure(B, Failure.LAME, "example.com.")
    clock.advance(20)
    assert infra.view(B).lame == (("example.com.", pytest.approx(40.0)),)
    assert infra.view(B).lame_zones == ("example.com.",)
    assert infra.choose([B, A], zone="example.com.").address == A  # type: ignore[union-attr]
    clock.advance(40)
    assert infra.view(B).lame == ()
    assert infra.choose([B, A], zone="example.com.").address == B  # type: ignore[union-attr]


def test_lame_ttl_zero_remembers_nothing() -> None:
    infra, _ = make(InfraSettings(explore_probability=0.0, lame_ttl=0.0))
    infra.success(B, 0.001)
    infra.success(A, 0.050)
    infra.failure(B, Failure.LAME, "example.com.")
    assert infra.choose([B, A], zone="example.com.").address == B  # type: ignore[union-attr]


def test_forget_lame_lifts_the_marks_and_keeps_the_rest() -> None:
    infra, _ = make()
    infra.success(B, 0.001)
    infra.failure(B, Failure.LAME, "example.com.")
    infra.failure(C, Failure.LAME, "example.net.")
    infra.forget_lame(B)
    assert infra.view(B).lame == () and infra.view(B).srtt == pytest.approx(0.001)
    assert infra.view(C).lame_zones == ("example.net.",)
    infra.forget_lame(D)  # unknown: nothing to do, nothing stored
    assert D not in [v.address for v in infra.views()]
    infra.forget_lame()
    assert all(v.lame == () for v in infra.views())


def test_lame_marks_per_server_are_bounded_oldest_first() -> None:
    infra, _ = make()
    zones = [f"z{i}.example." for i in range(40)]
    for zone in zones:
        infra.failure(A, Failure.LAME, zone)
    assert infra.view(A).lame_zones == tuple(zones[-16:])


def test_settings_that_make_no_sense_are_refused() -> None:
    for bad in (
        {"min_timeout": 0.0},
        {"min_timeout": 2.0, "max_timeout": 1.0},
        {"unknown_rtt": 0.0},
        {"similar_band": -0.1},
        {"explore_probability": 1.5},
        {"failures_to_hold": 0},
        {"max_servers": 0},
        {"hold_down": 200.0, "probe_interval": 120.0},
        {"hold_down": 0.0},
        {"hold_down": 1.0, "probe_interval": 1.5},  # shorter than one probe's longest wait
        {"lame_ttl": -1.0},
        {"lame_ttl": float("inf")},
    ):
        with pytest.raises(ConfigError):
            InfraSettings(**bad)  # type: ignore[arg-type]


def test_time_comes_only_from_the_injected_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_real_time() -> float:
        raise AssertionError("infra read the real clock")

    for name in ("time", "monotonic", "perf_counter"):
        monkeypatch.setattr(time, name, no_real_time)
    infra, clock = make(InfraSettings(explore_probability=0.5))
    infra.success(A, 0.01)
    hold(infra, B)
    clock.advance(5.0)
    infra.choose([A, B, C])
    infra.choose([B])
    infra.views()


# -- properties ---------------------------------------------------------------

ADDRESSES = [A, B, C, D]
operations = st.lists(
    st.one_of(
        st.tuples(st.just("success"), st.sampled_from(ADDRESSES), st.floats(0.0, 3.0)),
        st.tuples(st.just("failure"), st.sampled_from(ADDRESSES), st.sampled_from(list(Failure))),
        st.tuples(st.just("advance"), st.floats(0.0, 200.0)),
        st.tuples(st.just("choose"), st.sets(st.sampled_from(ADDRESSES))),
    ),
    max_size=60,
)


@hyp_settings(max_examples=200, deadline=None)
@given(operations, st.integers(0, 2**32))
def test_choices_respect_exclusion_and_hold_down(ops: list[tuple], seed: int) -> None:
    clock = FakeClock()
    s = InfraSettings(explore_probability=0.3)
    infra = Infra(clock, s, random.Random(seed))
    for op in ops:
        if op[0] == "success":
            infra.success(op[1], op[2])
        elif op[0] == "failure":
            infra.failure(op[1], op[2])
        elif op[0] == "advance":
            clock.advance(op[1])
        else:
            exclude = op[1]
            before = {a: infra.view(a) for a in ADDRESSES}
            choice = infra.choose(ADDRESSES, exclude)
            left = [a for a in ADDRESSES if a not in exclude]
            closed = [a for a in left if before[a].breaker is Breaker.CLOSED]
            if choice is None:
                assert not closed
                continue
            assert choice.address in left
            assert before[choice.address].breaker is not Breaker.OPEN
            assert (choice.reason is Reason.PROBE) == (not closed)
            assert choice.address not in choice.held_down
            assert set(choice.held_down) == set(left) - set(closed) - {choice.address}
            assert s.min_timeout <= choice.timeout <= s.max_timeout
    for view in infra.views():
        assert s.min_timeout <= view.timeout <= s.max_timeout
        assert (view.held_until is None) == (view.breaker is Breaker.CLOSED)


def test_preferred_names_the_server_choose_would_pick_without_exploring_and_changes_nothing() -> None:
    infra, clock = make(InfraSettings(explore_probability=1.0))   # choose() would always explore
    assert infra.preferred(["10.0.0.1", "10.0.0.2"]) is None       # nobody has answered yet
    infra.success("10.0.0.1", 0.004)
    infra.success("10.0.0.2", 0.001)
    assert infra.preferred(["10.0.0.1", "10.0.0.2"]) == "10.0.0.2"
    assert infra.choose(["10.0.0.1", "10.0.0.2"]).address == "10.0.0.1"  # type: ignore[union-attr]  # explored
    hold(infra, "10.0.0.2")
    assert infra.preferred(["10.0.0.1", "10.0.0.2"]) == "10.0.0.1"  # held down: not in use
    clock.advance(100)
    infra.preferred(["10.0.0.2"])
    assert infra.view("10.0.0.2").breaker is Breaker.HALF_OPEN  # no probe claimed by looking
    assert infra.choose(["10.0.0.2"]).reason is Reason.PROBE  # type: ignore[union-attr]
