"""Observers of the resolver service (dnslab.services.observers): what they are told, and the fast path.

No sockets: the questions are RD=0, answered from a filled cache, straight
through `RecursiveResolver.handle`.
"""

from __future__ import annotations

import asyncio
import inspect
import random
from typing import Any

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rrset

from dnslab.core.clock import FakeClock
from dnslab.core.events import Recording
from dnslab.resolution.cache import Rank
from dnslab.resolution.iterator import Result
from dnslab.services.observers import QueryLog, QueryLogger
from dnslab.services.resolver import RecursiveResolver

PEER = ("127.0.0.1", 5353)


class Sampler:
    """Like the web view's tap: records every full-path query, sees replayed ones."""

    every_query = False

    def __init__(self) -> None:
        self.recordings: list[Recording] = []
        self.answered_with: list[tuple[QueryLog, Recording | None]] = []
        self.replays: list[bytes] = []

    def begin(self, name: dns.name.Name, rdtype: int) -> Recording:
        self.recordings.append(Recording())
        return self.recordings[-1]

    def answered(self, entry: QueryLog, result: Result, recording: Recording | None) -> None:
        self.answered_with.append((entry, recording))

    def replayed(self, wire: bytes, reply: bytes, peer: Any, via_tcp: bool) -> None:
        self.replays.append(reply)


def resolver() -> RecursiveResolver:
    service = RecursiveResolver([], clock=FakeClock(), rng=random.Random(1))
    service.cache.put(dns.rrset.from_text("www.example.", 300, "IN", "A", "192.0.2.1"), Rank.AUTH_ANSWER)
    return service


def ask(service: RecursiveResolver) -> tuple[dns.message.Message, bool]:
    """One RD=0 question; whether the fast path answered it (no coroutine)."""
    query = dns.message.make_query("www.example.", "A")
    query.flags &= ~dns.flags.RD
    reply = service.handle(query.to_wire(), False, PEER)
    fast = not inspect.isawaitable(reply)
    if not fast:
        reply = asyncio.run(reply)  # type: ignore[arg-type]
    assert isinstance(reply, bytes)
    return dns.message.from_wire(reply), fast


def test_a_sampler_keeps_the_fast_path_and_sees_full_and_replayed_queries() -> None:
    service = resolver()
    sampler = Sampler()
    service.subscribe(sampler)
    paths = [ask(service)[1] for _ in range(4)]
    assert paths == [False, False, True, True]  # the second answer is kept, the third replayed
    assert len(sampler.replays) == 2
    assert [recording for _, recording in sampler.answered_with] == sampler.recordings  # its own, given back
    entry = sampler.answered_with[0][0]
    assert (entry.client, entry.name, entry.type, entry.rcode, entry.from_cache) == (
        "127.0.0.1", "www.example.", "A", "NOERROR", True)
    events = [event.kind for _, event in sampler.recordings[0].events]
    assert events[0] == "start" and events[-1] == "done"


def test_an_observer_of_every_query_turns_the_fast_path_off_until_it_leaves() -> None:
    service = resolver()
    logged: list[QueryLog] = []
    logger = QueryLogger(logged.append)
    service.subscribe(logger)
    assert [ask(service)[1] for _ in range(3)] == [False, False, False]
    assert len(logged) == 3 and "www.example. A NOERROR cache" in logged[-1].line()
    service.unsubscribe(logger)
    assert [ask(service)[1] for _ in range(3)] == [False, False, True]  # kept anew, then replayed
    assert len(logged) == 3


def test_without_observers_nothing_is_recorded() -> None:
    service = resolver()
    reply, _ = ask(service)
    assert reply.rcode() == dns.rcode.NOERROR and service.observers == ()
