"""Faults a lab server can be given at runtime, and the count of what it was asked.

One implementation behind `dnslab fault`, the control endpoint and the Python
API (the pytest plugin): each lab server's handler is wrapped by a
`FaultyServer`, which counts every query it receives and then answers as the
fault in force says: not at all, late, sometimes, with SERVFAIL or REFUSED,
always truncated over UDP, or lamely (no authority).  Like CoreDNS's `erratic`
plugin, but switchable while the lab runs.  One fault is not the handler's to
play: `unreachable` (nothing listens at the address) is the kernel's ICMP port
unreachable, so the lab closes the server's sockets when told (`on_reachable`); on the shared
sockets (services/shared_sockets.py) it drops the server's datagrams and resets its connections.
The faults' names, arguments and help are declared once, in fault_kinds.
"""

from __future__ import annotations

import asyncio
import inspect
import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Awaitable, Callable

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype

from dnslab.core.errors import DnslabError
from dnslab.core.wire import QUESTION_IN_KEY, query_key
from dnslab.lab import fault_kinds as kinds
from dnslab.lab.fault_kinds import Entry, FaultKind, Selector
from dnslab.services.transport import Handler, Peer


# Distinct questions counted one by one per server; older ones are summed up together.  Without
# a bound the counter grew with every new name a server was asked (the soak: ~110 bytes each,
# for ever); as many as a server's reply cache holds keeps every count a test or a learner reads.
MAX_COUNTED_QUESTIONS = 4096
# Datagrams counted as they came (all but the ID) before their questions are read out
# and counted (`FaultyServer._fold`): bounds that table, and the work of one fold.
FOLD_DATAGRAMS = 512
OLDER_QUESTIONS = ("<older questions>", "")

# The faults that replace the answer; at most one is in force at a time.
ANSWER_FAULTS = (kinds.SERVFAIL, kinds.REFUSED, kinds.TRUNCATE, kinds.LAME)


@dataclass
class FaultState:
    down: bool = False
    unreachable: bool = False  # the server's sockets are closed (see FaultyServer.on_reachable)
    delay_ms: float = 0.0
    jitter_ms: float = 0.0
    loss_pct: float = 0.0
    answer: FaultKind | None = None
    # The faults narrowed to some queries, by kind name (fault_kinds.Selector); the others hit every query.
    selectors: dict[str, Selector] = field(default_factory=dict)
    # Replication: read by the lab's NOTIFY sender, the server's transfer policy and the secondary driver.
    notify_lost: bool = False
    xfr_refused: bool = False
    xfr_delay_ms: float = 0.0

    def describe(self) -> list[str]:
        """The faults in force, as `dnslab faults` lists them."""
        found = [kinds.DOWN.name] if self.down else []
        if self.unreachable:
            found.append(kinds.UNREACHABLE.name)
        if self.delay_ms or self.jitter_ms:
            found.append(f"delay {self.delay_ms:g} ms" + (f" ± {self.jitter_ms:g} ms" if self.jitter_ms else ""))
        if self.loss_pct:
            found.append(f"loss {self.loss_pct:g}%")
        if self.answer is not None:
            found.append(self.answer.name)
        found += [kind.name for kind, on in ((kinds.NOTIFY_LOST, self.notify_lost),
                                             (kinds.XFR_REFUSED, self.xfr_refused)) if on]
        if self.xfr_delay_ms:
            found.append(f"xfr-delay {self.xfr_delay_ms:g} ms")
        return [self._narrowed(text) for text in found]

    def _narrowed(self, text: str) -> str:
        select = self.selectors.get(text.split(" ", 1)[0])
        return text if select is None else f"{text} [{select.describe()}]"


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
        self._received: dict[bytes, int] = {}  # a plain dict: a Counter subclass is slower to index
        self._older = 0
        # Each query is first counted by its bytes after the ID, one dict update and no
        # reading; the questions are read out of them (`_fold`) when counts are read or
        # the table is full.  Busy clients repeat those bytes exactly.
        self._datagrams: dict[bytes, int] = {}
        # Made on first use: a Mersenne Twister holds 2.5 KB, and most servers of a big lab
        # never draw (only loss, jitter and a selector's percentage do).
        self._seed = seed
        self._random: random.Random | None = None
        self._matched: Counter[str] = Counter()  # queries a narrowed fault's selector matched, for --every
        # Told when `unreachable` comes or goes: the lab closes or reopens the server's
        # sockets, so the kernel itself refuses (a fault in the handler could only stay silent).
        self.on_reachable: Callable[[bool], None] | None = None

    @property
    def _rng(self) -> random.Random:
        if self._random is None:
            self._random = random.Random(self._seed)
        return self._random

    @property
    def down(self) -> bool:
        return self.state.down

    def apply(self, kind: Entry | str, value: float | None = None, jitter: float | None = None,
              select: Selector | None = None) -> None:
        """Put a fault in force (or lift it); the one entry point for every interface.

        The name and its arguments are checked against the registry (fault_kinds); what each
        server fault does is decided here and in `handle`.  *select* narrows the fault to the
        queries it matches; applying a fault again replaces its selector (None: every query).
        """
        entry, args = kinds.order(kind, (value, jitter))
        if kinds.Target.SERVER not in entry.targets:
            raise DnslabError(f"{entry.name} breaks a zone, not a server: dnslab fault ZONE {entry.name}")
        kinds.check_selectable(entry, select)
        state = self.state
        if isinstance(entry, FaultKind):
            state.selectors.pop(kinds.DOWN.name if entry is kinds.UNREACHABLE else entry.name, None)
            if entry in ANSWER_FAULTS:
                for other in ANSWER_FAULTS:  # one answer fault at a time: the one it replaces goes
                    state.selectors.pop(other.name, None)
            if select is not None:
                state.selectors[entry.name] = select
            self._matched.pop(entry.name, None)
        was_unreachable = state.unreachable
        if entry is kinds.DOWN:  # silent and refusing are two ways of being out: one at a time
            state.down, state.unreachable = True, False
        elif entry is kinds.UNREACHABLE:
            state.down, state.unreachable = False, True
        elif entry is kinds.UP:
            state.down = state.unreachable = False
            state.selectors.pop(kinds.DOWN.name, None)
        elif entry is kinds.DELAY:
            state.delay_ms, state.jitter_ms = args[0], args[1] if len(args) > 1 else 0.0
        elif entry is kinds.LOSS:
            state.loss_pct = args[0]
        elif entry is kinds.CLEAR:
            self.state = FaultState()
            self._matched.clear()
        elif entry is kinds.NOTIFY_LOST:
            state.notify_lost = True
        elif entry is kinds.XFR_REFUSED:
            state.xfr_refused = True
        elif entry is kinds.XFR_DELAY:
            state.xfr_delay_ms = args[0]
        elif entry in ANSWER_FAULTS:
            state.answer = entry  # type: ignore[assignment]
        else:
            raise DnslabError(f"fault {entry.name} is declared (fault_kinds) but a lab server cannot play it yet")
        in_force = {name for name, on in ((kinds.DOWN.name, self.state.down), (kinds.LOSS.name, self.state.loss_pct),
                                          (kinds.DELAY.name, self.state.delay_ms or self.state.jitter_ms)) if on}
        if self.state.answer is not None:
            in_force.add(self.state.answer.name)
        self.state.selectors = {name: sel for name, sel in self.state.selectors.items() if name in in_force}
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
        self._fold()
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

    @property
    def total(self) -> int:
        """Every query received since the start (or the last reset), without decoding a name."""
        return self._older + sum(self._received.values()) + sum(self._datagrams.values())

    def reset_counts(self) -> None:
        self._received.clear()
        self._datagrams.clear()
        self._older = 0

    @property
    def counted_questions(self) -> int:
        """Distinct questions counted one by one now (at most max_questions)."""
        self._fold()
        return len(self._received)

    def handle(self, wire: bytes, via_tcp: bool, peer: Peer | None = None) -> bytes | None | Awaitable[bytes | None]:
        datagrams = self._datagrams
        tail = wire[2:]
        count = datagrams.get(tail)
        if count is not None:
            datagrams[tail] = count + 1
        else:
            if len(datagrams) >= FOLD_DATAGRAMS:
                self._fold()
                datagrams = self._datagrams  # a fresh table
            datagrams[tail] = 1
        if self._faultless:
            return self.inner(wire, via_tcp, peer)  # type: ignore[return-value]
        state = self.state
        hits = self._hits(_questions(wire)[0]) if state.selectors else None
        if state.unreachable or (state.down and (hits is None or kinds.DOWN.name in hits)):
            return None  # (unreachable: a query already on an open TCP connection)
        if state.loss_pct and (hits is None or kinds.LOSS.name in hits) and self._rng.random() * 100 < state.loss_pct:
            return None
        answer = state.answer if state.answer is not None and (hits is None or state.answer.name in hits) else None
        if (state.delay_ms or state.jitter_ms) and (hits is None or kinds.DELAY.name in hits):
            return self._late(wire, via_tcp, peer, answer)
        return self._answer(wire, via_tcp, peer, answer)

    def _hits(self, question: bytes) -> set[str]:
        """The faults in force that apply to this query: those without a selector, and those whose
        selector matches it (each matching query counted, for --every, then --pct drawn)."""
        # The type is the question's 4th- and 3rd-last bytes; the name is decoded only if a selector names one.
        rdtype = int.from_bytes(question[-4:-2], "big") if len(question) >= 5 else -1
        text: str | None = None
        state = self.state
        hits = set()
        for kind in (kinds.DOWN, kinds.LOSS, kinds.DELAY, state.answer):
            if kind is None:
                continue
            select = state.selectors.get(kind.name)
            if select is None:
                hits.add(kind.name)
                continue
            if select.types and rdtype not in select.types:
                continue
            if select.names:
                text = _question_name(question) if text is None else text
                if not select.name_matches(text):
                    continue
            seen = self._matched[kind.name]
            self._matched[kind.name] = seen + 1
            if select.every and seen % select.every:
                continue
            if select.pct and self._rng.random() * 100 >= select.pct:
                continue
            hits.add(kind.name)
        return hits

    async def _late(self, wire: bytes, via_tcp: bool, peer: Peer | None,
                    answer: FaultKind | None) -> bytes | None:
        state = self.state
        delay = state.delay_ms + (self._rng.uniform(-state.jitter_ms, state.jitter_ms) if state.jitter_ms else 0)
        await asyncio.sleep(max(0.0, delay) / 1000)  # network time stays real, even on a fake clock
        reply = self._answer(wire, via_tcp, peer, answer)
        return await reply if inspect.isawaitable(reply) else reply

    def _answer(self, wire: bytes, via_tcp: bool, peer: Peer | None,
                fault: FaultKind | None) -> bytes | None | Awaitable[bytes | None]:
        if fault is None or (fault is kinds.TRUNCATE and via_tcp):
            return self.inner(wire, via_tcp, peer)  # type: ignore[arg-type]
        try:
            query = dns.message.from_wire(wire)
        except dns.exception.DNSException:
            return self.inner(wire, via_tcp, peer)  # type: ignore[arg-type]
        reply = dns.message.make_response(query)
        reply.flags &= ~dns.flags.RA
        if fault is kinds.SERVFAIL:
            reply.set_rcode(dns.rcode.SERVFAIL)
        elif fault is kinds.REFUSED:
            reply.set_rcode(dns.rcode.REFUSED)
        elif fault is kinds.TRUNCATE:
            reply.flags |= dns.flags.TC
        # LAME: NOERROR, no AA, nothing in any section: a server not configured for the zone.
        return reply.to_wire()

    def _fold(self) -> None:
        """Count the questions of the datagrams counted so far, and start that table afresh."""
        datagrams, self._datagrams = self._datagrams, {}
        for tail, count in datagrams.items():
            for question in _questions(b"\x00\x00" + tail):
                self._add(question, count)

    def _add(self, question: bytes, count: int) -> None:
        received = self._received
        counted = received.get(question)
        if counted is not None:
            received[question] = counted + count
            return
        if len(received) >= self.max_questions:
            oldest = next(iter(received))  # dicts keep insertion order: the first one counted
            self._older += received.pop(oldest)
        received[question] = count


def _questions(wire: bytes) -> list[bytes]:
    """A query's questions as wire bytes, for counting and the selectors ([b""]: none readable)."""
    parsed = query_key(wire)
    if parsed is not None:
        return [parsed[0][QUESTION_IN_KEY:]]
    try:  # the rare query the quick reader leaves alone (compressed, odd sections)
        rrsets = dns.message.from_wire(wire, question_only=True).question
    except Exception:  # noqa: BLE001 - garbage is counted as such, never raised
        return [b""]
    return [rrset.name.to_wire() + rrset.rdtype.to_bytes(2, "big") + b"\x00\x01" for rrset in rrsets] or [b""]


def _question_name(question: bytes) -> str:
    """The name lowercased, without its final dot, from an uncompressed question's bytes (as the
    counter keeps them); read by hand: dnspython's parser cost ~15 µs a query on the faulted path."""
    labels = []
    at = 0
    try:
        while question[at]:
            length = question[at]
            labels.append(question[at + 1:at + 1 + length])
            at += 1 + length
    except IndexError:
        return "\x00<unparsable>"  # matches no pattern: only faults without a name selector apply
    # ASCII-only case folding (RFC 4343), as bytes.lower does; other bytes kept one for one.
    return b".".join(labels).lower().decode("latin-1")
