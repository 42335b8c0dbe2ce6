"""Faults a lab server can be given at runtime, and the count of what it was asked.

One implementation behind `dnslab fault`, the control endpoint and the Python
API (the pytest plugin): each lab server's handler is wrapped by a
`FaultyServer`, which counts every query it receives and then answers as the
fault in force says: not at all, late, sometimes, with SERVFAIL or REFUSED,
always truncated over UDP, or lamely (no authority).  Like CoreDNS's `erratic`
plugin, but switchable while the lab runs.  One fault is not the handler's to
play: `unreachable` (nothing listens at the address) is the kernel's ICMP port
unreachable, so the lab closes the server's sockets when told (`on_reachable`).
"""

from __future__ import annotations

import asyncio
import enum
import inspect
import random
from collections import Counter
from dataclasses import dataclass
from typing import Awaitable, Callable

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype

from dnslab.core.errors import DnslabError
from dnslab.services.transport import Handler, Peer
from dnslab.core.wire import QUESTION_IN_KEY, query_key


class FaultKind(enum.Enum):
    DOWN = "down"            # no answer at all: the resolver waits out its timeout
    UNREACHABLE = "unreachable"  # nothing listens: ICMP port unreachable (UDP), RST (TCP), at once
    UP = "up"                # undo down and unreachable
    DELAY = "delay"          # answer MS milliseconds late (optional jitter)
    LOSS = "loss"            # drop PCT percent of queries (seeded)
    SERVFAIL = "servfail"
    REFUSED = "refused"
    TRUNCATE = "truncate"    # TC=1 with no records over UDP, every time
    LAME = "lame"            # answers, but without authority for its zones
    CLEAR = "clear"          # no fault at all
    # DNSSEC faults act on a zone's data, not on a server (dnslab/lab/signed_zones.py, README "DNSSEC"):
    DNSSEC_BAD_SIG = "dnssec-bad-sig"
    DNSSEC_EXPIRED = "dnssec-expired"
    DNSSEC_MISSING_DS = "dnssec-missing-ds"
    DNSSEC_WRONG_DS = "dnssec-wrong-ds"


ZONE_FAULT_KINDS = (FaultKind.DNSSEC_BAD_SIG, FaultKind.DNSSEC_EXPIRED, FaultKind.DNSSEC_MISSING_DS,
                    FaultKind.DNSSEC_WRONG_DS)
# Distinct questions counted one by one per server; older ones are summed up together.  Without
# a bound the counter grew with every new name a server was asked (the soak: ~110 bytes each,
# for ever); as many as a server's reply cache holds keeps every count a test or a learner reads.
MAX_COUNTED_QUESTIONS = 4096
OLDER_QUESTIONS = ("<older questions>", "")

# The faults that replace the answer; at most one is in force at a time.
_ANSWER_FAULTS = (FaultKind.SERVFAIL, FaultKind.REFUSED, FaultKind.TRUNCATE, FaultKind.LAME)


@dataclass
class FaultState:
    down: bool = False
    unreachable: bool = False  # the server's sockets are closed (see FaultyServer.on_reachable)
    delay_ms: float = 0.0
    jitter_ms: float = 0.0
    loss_pct: float = 0.0
    answer: FaultKind | None = None

    def describe(self) -> list[str]:
        """The faults in force, as `dnslab faults` lists them."""
        found = ["down"] if self.down else []
        if self.unreachable:
            found.append("unreachable")
        if self.delay_ms or self.jitter_ms:
            found.append(f"delay {self.delay_ms:g} ms" + (f" ± {self.jitter_ms:g} ms" if self.jitter_ms else ""))
        if self.loss_pct:
            found.append(f"loss {self.loss_pct:g}%")
        if self.answer is not None:
            found.append(self.answer.value)
        return found


class FaultyServer:
    """A server's handler with faults in front of it and a query counter."""

    def __init__(self, handler: Handler, seed: int | str = 0,
                 max_questions: int = MAX_COUNTED_QUESTIONS) -> None:
        self.inner = handler
        self.state = FaultState()
        self._faultless = True  # no fault in force: every query goes straight to the server
        # Raw question bytes -> queries received: counting must cost next to nothing on
        # the hot path; names are decoded (and case folded) only when someone looks.
        # Bounded: beyond max_questions distinct questions the least recently *new* one
        # is folded into `_older`, so the total stays exact and memory stays flat.
        self.max_questions = max_questions
        self._received: Counter[bytes] = Counter()
        self._older = 0
        self._rng = random.Random(seed)
        # Told when `unreachable` comes or goes: the lab closes or reopens the server's
        # sockets, so the kernel itself refuses (a fault in the handler could only stay silent).
        self.on_reachable: Callable[[bool], None] | None = None

    @property
    def down(self) -> bool:
        return self.state.down

    def apply(self, kind: FaultKind | str, value: float | None = None, jitter: float | None = None) -> None:
        """Put a fault in force (or lift it); the one entry point for every interface."""
        try:
            kind = FaultKind(kind)
        except ValueError:
            known = ", ".join(k.value for k in FaultKind)
            raise DnslabError(f"unknown fault {kind!r}; one of: {known}") from None
        if kind in ZONE_FAULT_KINDS:
            raise DnslabError(f"{kind.value} breaks a zone, not a server: dnslab fault ZONE {kind.value}")
        state = self.state
        was_unreachable = state.unreachable
        if kind is FaultKind.DOWN:  # silent and refusing are two ways of being out: one at a time
            state.down, state.unreachable = True, False
        elif kind is FaultKind.UNREACHABLE:
            state.down, state.unreachable = False, True
        elif kind is FaultKind.UP:
            state.down = state.unreachable = False
        elif kind is FaultKind.DELAY:
            state.delay_ms = _number(value, "delay needs milliseconds", 0, 60_000)
            state.jitter_ms = _number(jitter or 0.0, "jitter needs milliseconds", 0, 60_000)
        elif kind is FaultKind.LOSS:
            state.loss_pct = _number(value, "loss needs a percentage", 0, 100)
        elif kind is FaultKind.CLEAR:
            self.state = FaultState()
        else:
            state.answer = kind
        self._faultless = self.state == FaultState()
        if self.state.unreachable != was_unreachable and self.on_reachable is not None:
            self.on_reachable(not self.state.unreachable)

    @property
    def queries(self) -> Counter[tuple[str, str]]:
        """Queries received, by (lowercased name with its final dot, type).

        The last `max_questions` distinct questions one by one; queries for
        questions first seen before them are summed under OLDER_QUESTIONS.
        """
        counts: Counter[tuple[str, str]] = Counter()
        if self._older:
            counts[OLDER_QUESTIONS] = self._older
        for question, count in self._received.items():
            try:
                name, used = dns.name.from_wire(question, 0)
                rdtype = dns.rdatatype.to_text(int.from_bytes(question[used:used + 2], "big"))
                counts[(name.to_text().lower(), rdtype)] += count
            except (dns.exception.DNSException, ValueError):
                counts[("<unparsable>", "")] += count
        return counts

    def reset_counts(self) -> None:
        self._received.clear()
        self._older = 0

    @property
    def counted_questions(self) -> int:
        """Distinct questions counted one by one now (at most max_questions)."""
        return len(self._received)

    def handle(self, wire: bytes, via_tcp: bool, peer: Peer | None = None) -> bytes | None | Awaitable[bytes | None]:
        self._count(wire)
        if self._faultless:
            return self.inner(wire, via_tcp, peer)  # type: ignore[return-value]
        state = self.state
        if state.down or state.unreachable:  # (unreachable: a query already on an open TCP connection)
            return None
        if state.loss_pct and self._rng.random() * 100 < state.loss_pct:
            return None
        if state.delay_ms or state.jitter_ms:
            return self._late(wire, via_tcp, peer)
        return self._answer(wire, via_tcp, peer)

    async def _late(self, wire: bytes, via_tcp: bool, peer: Peer | None) -> bytes | None:
        state = self.state
        delay = state.delay_ms + (self._rng.uniform(-state.jitter_ms, state.jitter_ms) if state.jitter_ms else 0)
        await asyncio.sleep(max(0.0, delay) / 1000)  # network time stays real, even on a fake clock
        reply = self._answer(wire, via_tcp, peer)
        return await reply if inspect.isawaitable(reply) else reply

    def _answer(self, wire: bytes, via_tcp: bool, peer: Peer | None) -> bytes | None | Awaitable[bytes | None]:
        fault = self.state.answer
        if fault is None or (fault is FaultKind.TRUNCATE and via_tcp):
            return self.inner(wire, via_tcp, peer)  # type: ignore[arg-type]
        try:
            query = dns.message.from_wire(wire)
        except dns.exception.DNSException:
            return self.inner(wire, via_tcp, peer)  # type: ignore[arg-type]
        reply = dns.message.make_response(query)
        reply.flags &= ~dns.flags.RA
        if fault is FaultKind.SERVFAIL:
            reply.set_rcode(dns.rcode.SERVFAIL)
        elif fault is FaultKind.REFUSED:
            reply.set_rcode(dns.rcode.REFUSED)
        elif fault is FaultKind.TRUNCATE:
            reply.flags |= dns.flags.TC
        # LAME: NOERROR, no AA, nothing in any section: a server not configured for the zone.
        return reply.to_wire()

    def _count(self, wire: bytes) -> None:
        parsed = query_key(wire)
        if parsed is not None:
            self._add(parsed[0][QUESTION_IN_KEY:])
            return
        try:  # the rare query the quick reader leaves alone (compressed, odd sections)
            rrsets = dns.message.from_wire(wire, question_only=True).question
        except Exception:  # noqa: BLE001 - garbage is counted as such, never raised
            self._add(b"")
            return
        for rrset in rrsets:
            self._add(rrset.name.to_wire() + rrset.rdtype.to_bytes(2, "big") + b"\x00\x01")

    def _add(self, question: bytes) -> None:
        received = self._received
        count = received.get(question)  # one lookup: this runs for every query a lab server gets
        if count is not None:
            received[question] = count + 1
            return
        if len(received) >= self.max_questions:
            oldest = next(iter(received))  # dicts keep insertion order: the first one counted
            self._older += received.pop(oldest)
        received[question] = 1


def _number(value: float | None, message: str, low: float, high: float) -> float:
    if value is None:
        raise DnslabError(message)
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise DnslabError(f"{message}, not {value!r}") from None
    if not low <= number <= high:
        raise DnslabError(f"{message} from {low:g} to {high:g}, not {number:g}")
    return number
