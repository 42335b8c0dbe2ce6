"""Which upstream server to ask next, and how long to wait for it.

The resolver's memory of each authoritative server, modelled on Unbound's
infra cache (``services/cache/infra.c``, selection in ``iterator/iter_utils.c``)
and Knot Resolver's three verbs (``lib/selection.c``): *choose* a server,
*update* its RTT on a reply, *report* an error.  One state per server address
(an IP string; the port is not part of it, all lab servers share one).

- RTT is smoothed as in RFC 6298, and the timeout of a try follows it, so a
  fast server is given up on quickly and a slow one is not abandoned early.
- Untried servers get a neutral estimate (Unbound's 376 ms), so a fast known
  server wins over them but a slow one does not, and every server gets tried.
- A little random exploration among servers of similar speed keeps the
  estimates of the runners-up fresh.
- A server that keeps failing is held down by a circuit breaker (closed ->
  open -> half-open probe -> closed), so a dead zone costs one quick SERVFAIL
  instead of a full timeout per query.
- The hold-down backs off (doubling per failed probe) but never beyond the
  *probe interval*: a server that comes back after an outage of any length is
  probed, and in use again, within one probe interval (see `Infra`).
- A server that answered lamely for a zone is remembered as lame *for that
  zone* for ``lame_ttl`` (Unbound's ``infra-lame-ttl``, 900 s) and is not chosen
  for it while another server of the zone can be; it stays in use for its other
  zones, since lameness says nothing about them.

Layer 1: no sockets, no asyncio; time comes only from the injected clock and
chance only from the injected ``random.Random``, so a test can say "this
server timed out three times, then 5 s passed" without waiting.
"""

from __future__ import annotations

import enum
import math
import operator
import random
from dataclasses import dataclass, field
from typing import Collection, NamedTuple, Sequence

import cachetools

from dnslab.core.clock import Clock, reader
from dnslab.core.errors import ConfigError

# RFC 6298 §2 gains.
ALPHA = 1 / 8
BETA = 1 / 4

# Doublings beyond this change nothing once capped, and 2.0 ** 1024 overflows.
_MAX_DOUBLINGS = 64


class Failure(enum.Enum):
    """Why a try gave no usable answer; each one makes the caller move on."""

    TIMEOUT = "timeout"
    REFUSED = "refused"
    SERVFAIL = "servfail"
    LAME = "lame"
    FORMERR = "formerr"
    BROKEN = "broken"  # unparsable or mismatched reply
    NETWORK = "network"  # ICMP unreachable, connection refused


class Breaker(enum.Enum):
    """The circuit-breaker state of one server."""

    CLOSED = "closed"  # in normal use
    OPEN = "open"  # held down: not tried while the hold-down lasts
    HALF_OPEN = "half-open"  # hold-down over: one probe decides


class Reason(enum.Enum):
    """Why `Infra.choose` picked a server; recorded in the trace for the learner."""

    UNTRIED = "untried"  # no RTT yet, tried to learn it
    FASTEST = "fastest"  # lowest smoothed RTT
    EXPLORE = "explore"  # random pick among servers within the similar-speed band
    ONLY_ONE_LEFT = "only one left"  # every other candidate excluded or held down
    PROBE = "probe"  # held down, hold-down expired: one half-open probe
    ONLY_LAME_LEFT = "only lame left"  # every other candidate tried or held down: a lame one, as a last resort


class Choice(NamedTuple):
    """The server to try next, for how long, and why (a named tuple: one is made per query sent)."""

    address: str
    reason: Reason
    timeout: float  # seconds to wait for this try
    held_down: tuple[str, ...]  # candidates skipped because they are held down
    lame: tuple[str, ...] = ()  # candidates skipped because they are lame for the zone


@dataclass(frozen=True)
class InfraSettings:
    """Tuning knobs; the defaults follow Unbound where it has an equivalent."""

    unknown_rtt: float = 0.376  # Unbound's UNKNOWN_SERVER_NICENESS; untried servers' estimate
    min_timeout: float = 0.15     # above Unbound's 50 ms: a Python loop on a busy machine answers late
    max_timeout: float = 1.6  # cap on one try, so a dead zone fails within a 5 s budget
    similar_band: float = 0.4  # Unbound's RTT_BAND: within this of the best is "similar"
    explore_probability: float = 0.1  # chance to pick another similar server than the fastest
    failures_to_hold: int = 3  # consecutive failures that open the breaker
    hold_down: float = 5.0  # first hold-down period; doubles per failed probe, up to probe_interval
    # The longest a held-down server waits for its next probe, counted from the start of the last
    # one: the cap on the back-off, so recovery after an outage of any length takes at most this.
    probe_interval: float = 10.0
    # Unbound's infra-lame-ttl: how long a server that answered lamely for a zone is passed over for it.
    lame_ttl: float = 900.0
    max_servers: int = 10_000  # bounded memory: LRU over server states

    def __post_init__(self) -> None:
        if not 0 < self.min_timeout <= self.max_timeout:
            raise ConfigError("infra: need 0 < min_timeout <= max_timeout")
        if self.unknown_rtt <= 0 or self.similar_band < 0:
            raise ConfigError("infra: unknown_rtt must be > 0 and similar_band >= 0")
        if not 0 <= self.explore_probability <= 1:
            raise ConfigError("infra: explore_probability must be within [0, 1]")
        if self.failures_to_hold < 1 or self.max_servers < 1:
            raise ConfigError("infra: failures_to_hold and max_servers must be >= 1")
        if not 0 < self.hold_down <= self.probe_interval:
            raise ConfigError("infra: need 0 < hold_down <= probe_interval")
        if self.probe_interval < self.max_timeout:
            # A probe waits up to max_timeout; probes cannot start more often than they end.
            raise ConfigError(f"infra: probe_interval must be at least max_timeout ({self.max_timeout:g} s)")
        if not (self.lame_ttl >= 0 and math.isfinite(self.lame_ttl)):
            raise ConfigError("infra: lame_ttl must be a finite number of seconds >= 0")


@dataclass(frozen=True)
class ServerView:
    """A snapshot of one server's state, for inspection and the trace."""

    address: str
    srtt: float | None
    rttvar: float | None
    timeout: float
    consecutive_failures: int
    breaker: Breaker
    held_until: float | None
    edns: bool
    last_failure: Failure | None
    timeouts: int = 0                      # all timeouts so far, for `dnslab servers`
    lame: tuple[tuple[str, float], ...] = ()  # (zone, seconds left) it is passed over for, oldest first

    @property
    def lame_zones(self) -> tuple[str, ...]:
        """The zones it is lame for now."""
        return tuple(zone for zone, _ in self.lame)


@dataclass
class _State:
    """Mutable per-server record; never leaves this module (see ServerView)."""

    srtt: float | None = None
    rttvar: float | None = None
    consecutive_failures: int = 0
    consecutive_timeouts: int = 0  # the run of TIMEOUTs that doubles the timeout
    failed_probes: int = 0  # doubles the hold-down
    held_until: float | None = None  # None while closed
    probe_until: float | None = None  # a probe is in flight until then
    edns: bool = True
    last_failure: Failure | None = None
    timeouts: int = 0
    lame_until: dict[str, float] = field(default_factory=dict)  # zone key -> end of its lameness, oldest first


# A server `choose` may pick: its address, its estimate (`_estimate`) and its state (None: never asked).
_Usable = tuple[str, float, "_State | None"]
_ESTIMATE = operator.itemgetter(1)

_MAX_LAME_ZONES = 16  # per server: bounded against a hostile referral flood; the oldest mark goes first


def _zone_key(zone: str) -> str:
    """Zone names compare case-insensitively (RFC 4343), with or without the final dot."""
    return zone.lower().rstrip(".") + "."


class Infra:
    """Per-server RTT, timeouts and circuit breakers; picks the server to try next.

    The caller (the iterator) reports the outcome of every try with `success`
    or `failure`, and passes the servers it already tried for this question
    as ``exclude``.

    Probe policy: a server whose hold-down has expired (half-open) is probed
    only when no closed candidate is left to try.  That keeps the promise
    "while held down it is not tried when any other server can be", never
    spends a client's query on a likely-dead server while a working one
    exists, and is deterministic.  It is also what Unbound does in effect: a
    server past its probe delay gets STILL_USEFUL_TIMEOUT as its selection RTT,
    far outside the RTT band of any working server.  The price is that a dead
    server which comes back is rediscovered only when the others fail, or
    after `forget` (Unbound's equivalent is infra-host-ttl expiry); the zone
    itself keeps resolving through the others all along.

    Probe interval: when every server of a zone is held down, the zone is
    unresolvable until one of them is probed, so the back-off must not outgrow
    the outage.  The hold-down starts at ``hold_down`` and doubles per failed
    probe, but never beyond ``probe_interval``, counted from the *start* of the
    failed probe.  So while queries need the zone, each of its servers gets one
    probe (one at a time, Unbound's probedelay) at least once per probe
    interval, and a server that returns after an outage of any length is in use
    again within one probe interval of its return (plus the wait for a query
    that needs it).  Unbound reaches the same shape with ``infra-keep-probing``
    (a down server stays in the one-probe-at-a-time regime instead of being
    blocked until infra-host-ttl), its back-off capped at RTT_MAX_TIMEOUT; BIND
    has no hold-down at all: a timeout only raises a server's SRTT, and the SRTT
    of a server passed over is aged by 2 % (at most once a second), so a lone
    server is always tried.  The interval keeps the benefit of the hold-down: in between, a dead
    zone costs one quick SERVFAIL per query and not a single packet upstream.
    """

    def __init__(
        self,
        clock: Clock,
        settings: InfraSettings = InfraSettings(),
        rng: random.Random | None = None,
    ) -> None:
        self.clock = clock
        self._now = reader(clock)  # clock.now, or time.monotonic itself for the real clock (no method call)
        self.settings = settings
        # Predictable server choice helps an off-path spoofer a little, so the
        # default is the OS source; tests inject a seeded Random.
        self.rng = rng if rng is not None else random.SystemRandom()
        self._states: cachetools.LRUCache[str, _State] = cachetools.LRUCache(maxsize=settings.max_servers)

    # -- choose ---------------------------------------------------------------

    def choose(self, candidates: Sequence[str], exclude: Collection[str] = (),
               zone: str | None = None) -> Choice | None:
        """The server to try next among ``candidates`` (the servers of ``zone``), or None if none may be tried.

        None means every candidate is excluded or held down (and no probe is
        due), so the resolver can answer SERVFAIL at once instead of waiting.
        Ties go to the earlier candidate, so given the rng seed the choice is
        reproducible.

        A server lame for ``zone`` is chosen only when no other candidate can
        be tried or probed.  Unbound drops it altogether (``iter_filter_unsuitable``);
        keeping it as the last resort costs one lame reply at worst and keeps a
        zone whose servers are all marked resolving once one of them is fixed.
        """
        if isinstance(candidates, str) or isinstance(exclude, str):
            _reject_str(candidates, "candidates")
            _reject_str(exclude, "exclude")
        now: float | None = None  # read when a server's breaker or lame marks need it (most choices: never)
        skip = exclude if type(exclude) is set or type(exclude) is frozenset else set(exclude)
        key = None  # the zone's key, made when a server has lame marks to look it up in
        usable: list[tuple[str, float, _State | None]] = []
        lame: list[tuple[str, float, _State | None]] = []
        held: list[str] = []
        due: list[tuple[float, str, _State]] = []
        states = self._states
        unknown = self.settings.unknown_rtt
        for address in dict.fromkeys(candidates):  # de-duplicated, order kept
            if address in skip:
                continue
            # A use, as `states.get(address)` (touches the LRU: in active use), one call less.
            state = states[address] if address in states else None
            if state is None:  # never asked: closed, with the neutral estimate (`_estimate`)
                usable.append((address, unknown, None))
                continue
            if state.held_until is None:
                breaker = Breaker.CLOSED
            else:
                now = self._now() if now is None else now
                breaker = _breaker(state, now)
            if breaker is Breaker.CLOSED:
                # `_estimate`, without the call for a server with no timeouts in a row.
                estimate = (state.srtt if state.srtt is not None else unknown) if not state.consecutive_timeouts \
                    else self._estimate(state)
                if zone is not None and state.lame_until:
                    key = key or _zone_key(zone)
                    now = self._now() if now is None else now
                    if state.lame_until.get(key, now) > now:
                        lame.append((address, estimate, state))
                        continue
                usable.append((address, estimate, state))
                continue
            held.append(address)
            if (
                breaker is Breaker.HALF_OPEN
                and state is not None  # a non-closed state always exists
                and state.held_until is not None
                and (state.probe_until is None or now >= state.probe_until)  # type: ignore[operator]
            ):
                due.append((state.held_until, address, state))

        passed_over = tuple([address for address, _, _ in lame]) if lame else ()
        if usable:
            (address, _, state), reason = self._pick(usable)
            return Choice(address, reason, self._timeout(state), tuple(held), passed_over)
        if due:
            # The server that has waited longest gets the probe; min() is stable.
            assert now is not None  # (read for the breakers that made `due`)
            _, address, state = min(due, key=lambda item: item[0])
            timeout = self.timeout(address)
            # Unbound's probedelay: no second probe until this one has surely
            # timed out, even if its outcome is never reported.
            state.probe_until = now + timeout
            rest = tuple(a for a in held if a != address)
            return Choice(address, Reason.PROBE, timeout, rest, passed_over)
        if lame:
            address = min(lame, key=lambda item: item[1])[0]
            rest = tuple(a for a in passed_over if a != address)
            return Choice(address, Reason.ONLY_LAME_LEFT, self.timeout(address), tuple(held), rest)
        return None

    def preferred(self, candidates: Sequence[str]) -> str | None:
        """The server `choose` would pick now without exploring (and without probing), or None.

        For showing a learner which server is in use; it changes nothing, not even the LRU
        order.  None when no candidate has answered yet, or every one is held down.
        """
        _reject_str(candidates, "candidates")
        now = self._now()
        usable = [(address, self._estimate(state)) for address in dict.fromkeys(candidates)
                  for state in [self._peek(address)] if _breaker(state, now) is Breaker.CLOSED]
        if not usable:
            return None
        address, _ = min(usable, key=lambda item: item[1])
        state = self._peek(address)
        return address if state is not None and state.srtt is not None else None

    def _pick(self, usable: list[_Usable]) -> tuple[_Usable, Reason]:
        if len(usable) == 1:
            return usable[0], Reason.ONLY_ONE_LEFT
        best = min(usable, key=_ESTIMATE)
        limit = best[1] + self.settings.similar_band
        others = [item for item in usable if item is not best and item[1] <= limit]
        # Explore only among the *other* similar servers, so EXPLORE in the
        # trace always means "not the fastest", and happens at exactly the
        # configured rate whenever there is an alternative.
        if others and self.rng.random() < self.settings.explore_probability:
            return self.rng.choice(others), Reason.EXPLORE
        state = best[2]
        if state is None or state.srtt is None:
            return best, Reason.UNTRIED
        return best, Reason.FASTEST

    def _estimate(self, state: _State | None) -> float:
        """Expected reply time used to rank servers.

        The smoothed RTT, or the neutral unknown_rtt for an untried server,
        doubled per consecutive timeout as Unbound's rto is: a server that just
        stopped answering should not stay "fastest" until its breaker opens.
        """
        if state is None:
            return self.settings.unknown_rtt
        base = self.settings.unknown_rtt if state.srtt is None else state.srtt
        if not state.consecutive_timeouts:
            return base
        return base * 2.0 ** min(state.consecutive_timeouts, _MAX_DOUBLINGS)

    # -- timeouts -------------------------------------------------------------

    def timeout(self, address: str) -> float:
        """Seconds to wait for a reply from ``address`` on the next try.

        RFC 6298's RTO (srtt + 4 rttvar), or unknown_rtt for an untried
        server, doubled per consecutive timeout and kept within
        [min_timeout, max_timeout] so one dead server cannot eat the budget.
        """
        return self._timeout(self._get(address))

    def _timeout(self, state: _State | None) -> float:
        s = self.settings
        if state is None or state.srtt is None or state.rttvar is None:
            base = s.unknown_rtt
        else:
            base = state.srtt + 4 * state.rttvar
        if state is None or not state.consecutive_timeouts:
            return min(s.max_timeout, max(s.min_timeout, base))
        return min(s.max_timeout, max(s.min_timeout, base) * 2.0 ** min(state.consecutive_timeouts, _MAX_DOUBLINGS))

    # -- reports --------------------------------------------------------------

    def success(self, address: str, rtt: float) -> None:
        """A usable reply arrived after ``rtt`` seconds: learn from it, close the breaker."""
        if not (rtt >= 0 and math.isfinite(rtt)):
            raise ValueError(f"rtt must be a finite number of seconds >= 0, not {rtt!r}")
        state = self._state(address)
        if state.srtt is None or state.rttvar is None:
            state.srtt, state.rttvar = rtt, rtt / 2
        else:
            # RFC 6298 §2.3: rttvar first, from the old srtt.
            state.rttvar = (1 - BETA) * state.rttvar + BETA * abs(state.srtt - rtt)
            state.srtt = (1 - ALPHA) * state.srtt + ALPHA * rtt
        state.consecutive_failures = 0
        state.consecutive_timeouts = 0
        state.failed_probes = 0
        state.held_until = None
        state.probe_until = None

    def failure(self, address: str, kind: Failure, zone: str | None = None, waited: float | None = None) -> None:
        """A try gave no usable answer; count it toward the breaker.

        ``waited`` is how long the try was out (its timeout, for a TIMEOUT;
        None if not known).  A hold-down counts from the try's start, so that a
        server is probed again at most probe_interval after the start of its
        last try, however long that try waited.  And a TIMEOUT of a try that was
        given less than the server's current timeout is counted only in the
        statistics (Unbound's ``infra_rtt_update`` doubles the rto only when
        the try's own timeout was at least the current one): several tries in
        flight together, cut off by one outage or one stall of our own event
        loop, are one piece of evidence, not three, and must not trip the
        breaker on a server that answers a moment later.

        Only a TIMEOUT lengthens the next timeout.  Any other outcome ends the
        run of consecutive timeouts, because the server (or the network) did
        respond.  A failure while half-open is a failed probe: the breaker
        re-opens for twice as long.  A failure reported while open comes from
        a try sent before the breaker opened; the running hold-down already
        covers it, so it does not extend it.
        """
        if waited is not None and not (waited >= 0 and math.isfinite(waited)):
            raise ValueError(f"waited must be a finite number of seconds >= 0, not {waited!r}")
        now = self._now()
        state = self._state(address)
        breaker = _breaker(state, now)
        timed_out = kind is Failure.TIMEOUT
        state.timeouts += timed_out
        if timed_out and waited is not None and waited < self._timeout(state) * (1 - 1e-9):
            return  # sent with an older, shorter timeout: already counted by the try that raised it
        state.last_failure = kind
        state.consecutive_failures += 1
        if kind is Failure.LAME and zone is not None:
            self._mark_lame(state, _zone_key(zone), now)
        state.consecutive_timeouts = state.consecutive_timeouts + 1 if timed_out else 0
        tripped = state.consecutive_failures >= self.settings.failures_to_hold
        if kind in (Failure.LAME, Failure.REFUSED):
            # The server is alive and answering: it is lame or refusing for one zone, which
            # says nothing about the others it serves (Unbound keeps lameness per zone).
            # The lookup already moves on; holding the whole address down would let a lame
            # delegation that names it take a third party's zones down.
            state.consecutive_failures -= 1
            tripped = False
        since = now - (waited or 0.0)
        if breaker is Breaker.HALF_OPEN:
            state.failed_probes += 1
            self._open(state, since, now)
        elif breaker is Breaker.CLOSED and tripped:
            state.failed_probes = 0
            self._open(state, since, now)

    def _mark_lame(self, state: _State, key: str, now: float) -> None:
        marks = state.lame_until
        for old in [k for k, until in marks.items() if until <= now]:
            del marks[old]  # expired: room for new marks, and `dnslab servers` shows only live ones
        marks.pop(key, None)  # re-marked: moves to the newest end
        if len(marks) >= _MAX_LAME_ZONES:
            del marks[next(iter(marks))]
        marks[key] = now + self.settings.lame_ttl

    def forget_lame(self, address: str | None = None) -> None:
        """Lift the lame marks of one server (or of all), as a fixed server or a cache flush calls for.

        Unlike `forget`, the RTT, breaker and EDNS memory stay: a lame mark
        lasts lame_ttl with no probe to end it, so only it needs lifting when
        the operator says the server is fixed.
        """
        addresses = list(self._states.keys()) if address is None else [address]
        for state in map(self._peek, addresses):
            if state is not None:
                state.lame_until.clear()

    def _open(self, state: _State, since: float, now: float) -> None:
        s = self.settings
        period = min(s.probe_interval, s.hold_down * 2.0 ** min(state.failed_probes, _MAX_DOUBLINGS))
        # Never in the past: a try that outlasted the period leaves the server due at once.
        state.held_until = max(now, since + period)
        state.probe_until = None

    # -- EDNS -----------------------------------------------------------------

    def edns_supported(self, address: str) -> bool:
        """Whether to send EDNS to ``address``; True until `mark_no_edns`."""
        state = self._get(address)
        return True if state is None else state.edns

    def mark_no_edns(self, address: str) -> None:
        """Remember that ``address`` answered FORMERR to EDNS, so later queries go without."""
        self._state(address).edns = False

    # -- inspection -----------------------------------------------------------

    def view(self, address: str) -> ServerView:
        """A snapshot of ``address``; an unknown server shows the fresh defaults.

        Looking does not count as use: the LRU order is left alone, so a trace
        dump cannot change which server is evicted next.
        """
        return self._view(address, self._peek(address))

    def views(self) -> list[ServerView]:
        """Snapshots of every remembered server, sorted by address."""
        return [self._view(a, self._peek(a)) for a in sorted(self._states.keys())]

    def forget(self, address: str | None = None) -> None:
        """Reset one server (or all): it is treated as never seen again."""
        if address is None:
            self._states.clear()
        else:
            self._states.pop(address, None)

    def _view(self, address: str, state: _State | None) -> ServerView:
        now = self._now()
        fresh = state if state is not None else _State()
        return ServerView(
            address=address,
            srtt=fresh.srtt,
            rttvar=fresh.rttvar,
            timeout=self._timeout(state),
            consecutive_failures=fresh.consecutive_failures,
            breaker=_breaker(state, now),
            held_until=fresh.held_until,
            edns=fresh.edns,
            last_failure=fresh.last_failure,
            timeouts=fresh.timeouts,
            lame=tuple((zone, until - now) for zone, until in fresh.lame_until.items() if until > now),
        )

    def _peek(self, address: str) -> _State | None:
        """A server's state, without moving it to the most recently used end."""
        # The base-class lookup reads without moving the key to the MRU end.
        if address not in self._states:
            return None
        return cachetools.Cache.__getitem__(self._states, address)  # type: ignore[no-any-return]

    def _get(self, address: str) -> _State | None:
        """A server's state, as a use: it moves to the most recently used end."""
        states = self._states
        return states[address] if address in states else None  # (`states.get`, one Python call less)

    def _state(self, address: str) -> _State:
        """A server's state, made (the LRUCache forgets the least recently used one when full) if there is none."""
        states = self._states
        if address in states:
            return states[address]  # type: ignore[no-any-return]
        state = states[address] = _State()
        return state


def _breaker(state: _State | None, now: float) -> Breaker:
    """Derived from the clock, so a hold-down ends without anyone calling in."""
    if state is None or state.held_until is None:
        return Breaker.CLOSED
    return Breaker.OPEN if now < state.held_until else Breaker.HALF_OPEN


def _reject_str(value: object, name: str) -> None:
    # A bare address passed where a collection belongs would be read as its
    # characters and silently match nothing.
    if isinstance(value, str):
        raise TypeError(f"{name} must be a collection of addresses, not a str")
