"""`dnslab trace NAME --via LEVEL`: the question's path down the levels, then the resolver's walk.

Each level is looked at in turn as a query would meet it: a fresh answer in
its cache ends the path there (with the time the level still keeps it); a
miss sends the question to its first upstream that is up (an upstream that is
down shows as the stub waiting out its timeout); a further resolver or the
lab's resolver then resolves with its own trace.  Last, the question is asked
for real through LEVEL, so every cache on the way fills exactly as a client's
query fills it, and the reply's answer closes the trace.  Every event carries
a `level` field: the level that did the step.
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any, Callable

import dns.name
import dns.rcode
import dns.rdatatype

from dnslab.core.errors import DnslabError
from dnslab.core.events import Event, lines
from dnslab.lab.level_plan import RESOLVER
from dnslab.resolution.levels.cache import State
from dnslab.resolution.levels.events import LevelStep

EventSink = Callable[[Event, str], None]  # an event and the level that made it
MAX_HOPS = 16  # a chain is checked for loops at load; this only bounds the walk


async def trace_via(lab: Any, via: str, qname: dns.name.Name, qtype: int, emit: EventSink) -> dict[str, Any]:
    """Walk from level *via* down to an answer, emitting events; then ask through *via* for real."""
    from dnslab.services.query import send_query  # the dig-like client, as `dnslab query --via`

    start = lab.levels.get(via)
    name_text, type_text = qname.to_text(), dns.rdatatype.to_text(qtype)
    current: str = start.name
    for _ in range(MAX_HOPS):
        if current == RESOLVER:
            if lab.resolver is None:
                raise DnslabError("this lab runs without a resolver")
            await lab.resolver.trace(qname, qtype, functools.partial(_tagged, emit, RESOLVER))
            break
        running = lab.levels.get(current)
        spec = running.spec
        if running.resolver is not None:
            await running.resolver.trace(qname, qtype, functools.partial(_tagged, emit, spec.name))
            break
        level = running.level
        found = level.cache.get(qname, qtype)
        step = functools.partial(LevelStep, 0, spec.name, spec.kind, spec.address, name_text, type_text,
                                 policy=level.policy.name)
        if found is not None:
            entry = found.entry
            emit(step("hit" if found.state is State.FRESH else "grace", ttl=found.remaining,
                      kept_for=entry.keep.fresh, rcode=dns.rcode.to_text(entry.rcode),
                      records=lines(_counted_down(entry.answer or entry.authority, found.remaining))), spec.name)
            break
        addresses = lab.levels.upstream_addresses(spec, lab.resolver_address or "")
        chosen = None
        for upstream, address in zip(spec.upstream, addresses):
            if _is_up(lab, upstream):
                chosen = (upstream, address)
                break
            emit(step("down", next=upstream, next_address=address), spec.name)
        if chosen is None:
            emit(step("miss", next=None), spec.name)
            break
        emit(step("miss", next=chosen[0], next_address=chosen[1]), spec.name)
        current = chosen[0]
    ask = functools.partial(send_query, name_text, type_text, start.address, lab.actual_port,
                            timeout=_patience(start))
    result = await asyncio.get_running_loop().run_in_executor(None, ask)
    reply = result.reply
    emit(LevelStep(0, start.name, start.spec.kind, start.address, name_text, type_text, "answered",
                   ttl=min((rrset.ttl for rrset in reply.answer), default=None),
                   rcode=dns.rcode.to_text(reply.rcode()), records=lines(reply.answer or reply.authority)),
         start.name)
    return {"rcode": dns.rcode.to_text(reply.rcode()), "upstream_queries": 0}


def _counted_down(rrsets: list[Any], remaining: int) -> list[Any]:
    """The kept records with the TTL this level would give them now (as in its replies)."""
    copies = []
    for rrset in rrsets:
        copy = rrset.copy()
        copy.ttl = remaining
        copies.append(copy)
    return copies


def _tagged(emit: EventSink, level: str, event: Event) -> None:
    emit(event, level)


def _is_up(lab: Any, name: str) -> bool:
    if name == RESOLVER:
        return lab.resolver is not None
    return bool(lab.levels.get(name).up)


def _patience(running: Any) -> float:
    """How long the client waits for the level: long enough for every try its stubs may make."""
    options = running.spec.options
    return 30.0 + options.timeout * options.attempts * 3
