"""Ready wire replies for repeated questions: the hot path that never parses a packet.

Measured here (shared/DESIGN.md): parsing and building a message with dnslib or
dnspython costs 70-145 µs, a dict lookup 0.03 µs.  So a question seen before is
answered from a stored reply with only its ID (and, for the resolver, its TTLs
and round-robin order) changed.  The key is `wire.query_key`: the exact question
bytes plus every header and EDNS bit that changes the answer.  Nothing here
decides an answer; it replays what the full path decided, under rules that make
the replay indistinguishable from asking again (tests compare both paths).
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass, field
from typing import Protocol, Sized, TypeVar

from dnslab.core.clock import Clock, reader

_TTL = struct.Struct("!I")
# A rendering is redone this long before its TTLs would tick, so float rounding in
# "expires_at - now" can never make a kept rendering differ from a fresh one.
_ROUNDING = 1e-6
MAX_VARIANTS = 12  # round-robin orders kept per reply; answers needing more take the full path


class RoundRobin(Protocol):
    """A cache entry's round-robin counter (the resolver's `cache._Entry`): its records and whose turn it is.

    The cache and the fast path advance the same counter, so replayed and rebuilt
    replies rotate as one.
    """

    rdatas: Sized
    turn: int


V = TypeVar("V")


def _keep(table: dict[bytes, V], key: bytes, value: V, limit: int) -> None:
    """table[key] = value, the oldest entry going first when *limit* are held: every table here
    forgets in the order it learnt, since what it forgets costs one more full answer at most."""
    if len(table) >= limit:
        del table[next(iter(table))]
    table[key] = value


class ReplyCache:
    """For authoritative servers: a question's reply never changes until the zone does."""

    def __init__(self, max_entries: int = 4096) -> None:
        # Per server, and a lab runs a dozen or more: a few thousand distinct questions
        # each covers any lab use and keeps the whole lab's memory small.
        self.max_entries = max_entries
        self._replies: dict[bytes, bytes] = {}
        # Datagrams (all but their ID) answered from a kept reply, and that reply after its
        # ID: the same bytes again need no key at all (`replay`), as the floor's dict of
        # ready replies needs none.  Emptied with the replies, so never older than them.
        self._datagrams: dict[bytes, bytes] = {}

    def get(self, key: bytes, wire: bytes, datagram: bool = False) -> bytes | None:
        """The kept reply for *key* with this query's ID; *datagram*: remember the query's bytes for `replay`."""
        reply = self._replies.get(key)
        if reply is None:
            return None
        if datagram:
            _keep(self._datagrams, wire[2:], reply[2:], self.max_entries)
        return wire[:2] + reply[2:]

    def replay(self, wire: bytes) -> bytes | None:
        """The reply to a UDP query whose bytes after the ID came before, or None (then `get` by key)."""
        body = self._datagrams.get(wire[2:])
        return None if body is None else wire[:2] + body

    def put(self, key: bytes, reply: bytes, wire: bytes | None = None) -> None:
        """Keep *reply* for *key*; *wire*: the UDP query it answers, remembered for `replay`."""
        _keep(self._replies, key, reply, self.max_entries)
        if wire is not None:
            _keep(self._datagrams, wire[2:], reply[2:], self.max_entries)

    def clear(self) -> None:
        self._replies.clear()
        self._datagrams.clear()

    def __len__(self) -> int:
        return len(self._replies)


@dataclass
class WireAnswer:
    """A resolver reply ready to replay: one template per round-robin step, and its TTL fields.

    Each step's patches are (offset, expires_at, original TTL) for every record:
    the TTL sent is min(original, ceil(expires_at - now)), as the RRset cache
    computes it.  The whole answer is void once its first RRset expires.

    An RRset of more records than MAX_VARIANTS templates would hold (a 100-record
    A set) keeps one template and a *spin*: the byte span of its records, all of
    one size, which each step rotates by whole records (as Unbound and NSD keep
    one wire form and rotate it), so a large answer costs what a small one does.
    A truncated reply (TC=1, no records) has one template and no patches, and
    still advances the counter, as its full-path rendering did.
    """

    variants: list[tuple[bytes, list[tuple[int, float, int]]]]  # (template, TTL patches) per step
    expires_at: float
    rcode_text: str
    type_text: str
    rotation: RoundRobin | None = None  # the cache entry whose `turn` counter picks the step (None: one step)
    base: int = 0         # that counter's value for the first template
    spin: tuple[int, int, int] | None = None  # (start, end, record size) after the ID: records rotated per step
    # Per step, the last rendering after the ID and the span of time its TTLs hold for:
    # (since, until, bytes).  TTLs change at most once a second, queries come far faster.
    rendered: list[tuple[float, float, bytes] | None] = field(init=False)
    steps: int = field(init=False)  # round-robin orders: one per template, or per record of the spin
    # False once the answer left its AnswerCache (replaced, expired, evicted, flushed): the
    # cache's memo of datagrams may still point at it, and must then not replay it.
    kept: bool = field(init=False, default=True)
    # Replays are counted here, one list item shared by the answers that count alike
    # (the resolver's statistics read it; `Stats.replay_counter`).
    replays: list[int] = field(init=False, default_factory=lambda: [0])

    def __post_init__(self) -> None:
        self.rendered = [None] * len(self.variants)
        spin = self.spin
        self.steps = len(self.variants) if spin is None else (spin[1] - spin[0]) // spin[2]


class AnswerCache:
    """For the resolver: replies whose TTLs count down on the cache's clock."""

    def __init__(self, clock: Clock, max_entries: int = 20_000) -> None:
        self.clock = clock
        self._now = reader(clock)  # every hit reads the time
        self.max_entries = max_entries
        self._answers: dict[bytes, WireAnswer] = {}
        self.version = -1
        # Questions answered by the full path: a ready reply is kept from the second
        # time on only, so one-off questions (most of a cold start) cost neither the
        # templates' rendering nor their memory.
        self._seen: dict[bytes, None] = {}
        # Datagrams (all but their ID) that were answered from a kept answer, and that
        # answer: the same bytes again need no key (`core.wire.query_key`) at all, as
        # the floor's dict of ready replies needs none.  Busy clients repeat a
        # question's bytes exactly; a cookie or another option makes its own entry.
        self._datagrams: dict[bytes, WireAnswer] = {}

    def get(self, key: bytes, wire: bytes, version: int, datagram: bool = False) -> WireAnswer | None:
        """The entry for key if it is still good; None sends the query down the full path.

        *datagram*: the query came over UDP, so its bytes after the ID may be remembered
        for `replay`."""
        if version != self.version:
            self._forget_all()
            self.version = version
            return None
        answer = self._answers.get(key)
        if answer is None:
            return None
        if self._now() >= answer.expires_at:
            del self._answers[key]
            answer.kept = False
            return None
        if datagram:
            _keep(self._datagrams, wire[2:], answer, self.max_entries)
        return answer

    def replay(self, wire: bytes, version: int) -> bytes | None:
        """The reply to a UDP query whose bytes after the ID were answered before, or None.

        None says nothing about the question: `get` by its key decides then (and drops
        what expired).  The answer's checks are the same as `get`'s, its rendering `render`'s."""
        answer = self._datagrams.get(wire[2:])
        if answer is None or not answer.kept or version != self.version:
            return None
        now = self._now()
        if now >= answer.expires_at:
            return None
        last = answer.rendered[0]
        if answer.rotation is None and last is not None and last[0] <= now < last[1]:
            # One order and TTLs unchanged since the last rendering: `_render`'s first case, inlined.
            answer.replays[0] += 1
            return wire[:2] + last[2]
        return self._render(answer, wire, now)

    def render(self, answer: WireAnswer, wire: bytes) -> bytes:
        """The reply for this query: its ID, the next round-robin order, TTLs counted down."""
        return self._render(answer, wire, self._now())

    def _render(self, answer: WireAnswer, wire: bytes, now: float) -> bytes:
        answer.replays[0] += 1
        step = 0
        entry = answer.rotation
        if entry is not None:
            step = (entry.turn - answer.base) % answer.steps
            entry.turn += 1
        spin = answer.spin
        index = step if spin is None else 0  # a spin's one template, rotated below
        last = answer.rendered[index]
        if last is not None and last[0] <= now < last[1]:
            body = last[2]
        else:
            template, patches = answer.variants[index]
            out = bytearray(template)
            until = answer.expires_at
            for offset, expires_at, ttl in patches:
                sent = min(ttl, math.ceil(expires_at - now))
                _TTL.pack_into(out, offset, sent)
                # This record's TTL stays `sent` until expires_at - now drops to sent - 1.
                until = min(until, expires_at - sent + 1 - _ROUNDING)
            body = bytes(out[2:])
            answer.rendered[index] = (now, until, body)
        if spin is not None and step:
            # Whole records of one size and one TTL move from the front to the back.
            first, stop, size = spin
            cut = first + step * size
            body = body[:first] + body[cut:stop] + body[first:cut] + body[stop:]
        return wire[:2] + body

    def asked_before(self, key: bytes) -> bool:
        """Whether this question came down the full path before (and so is worth a ready reply)."""
        seen = self._seen
        if key in seen:
            return True  # kept: after its reply expires, the next full answer is kept at once
        _keep(seen, key, None, self.max_entries)
        return False

    def put(self, key: bytes, answer: WireAnswer, version: int) -> None:
        answers = self._answers
        if version != self.version:
            self._forget_all()
            self.version = version
        replaced = answers.pop(key, None)
        if replaced is not None:
            replaced.kept = False
        elif len(answers) >= self.max_entries:
            oldest = next(iter(answers))
            answers.pop(oldest).kept = False
        answers[key] = answer

    def _forget_all(self) -> None:
        """Every kept answer goes (the RRset cache changed, or a flush); the memo of datagrams with them."""
        self._answers.clear()
        self._datagrams.clear()

    def clear(self) -> None:
        self._forget_all()
        self._seen.clear()

    def __len__(self) -> int:
        return len(self._answers)
