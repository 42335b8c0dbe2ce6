"""The control endpoint's `capture`: a lab's packets streamed to the client, within bounds.

Every capture ends by itself: after *count* packets or *seconds*, whichever
comes first (both bounded here, whatever the client asks), or when the client
goes away.  Packets go out as `{"event": "packet", ...}` lines (Packet.to_json);
the client (`dnslab capture`, faces/capture.py) writes the pcap.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Any, Callable

from dnslab.core import validate
from dnslab.services.capture import Packet

if TYPE_CHECKING:
    from dnslab.lab.runtime import Lab

MAX_PACKETS = 1_000_000
MAX_SECONDS = 24 * 3600.0
DEFAULT_PACKETS = 10_000
DEFAULT_SECONDS = 60.0


def bounds(args: dict[str, Any]) -> tuple[str, int, float]:
    """(target, count, seconds) from a request, checked: one line for a bad number."""
    target = str(args.get("target") or "all").strip()
    count = validate.whole(args.get("count", DEFAULT_PACKETS), "--count", 1, MAX_PACKETS)
    seconds = validate.amount(args.get("seconds", DEFAULT_SECONDS), "--seconds", 0.001, MAX_SECONDS, "s")
    return target, count, seconds


async def capture(lab: "Lab", args: dict[str, Any], send: Callable[[dict[str, Any]], None]) -> Any:
    """Stream the target's packets until a bound is reached; the result says how many and why it ended."""
    target, count, seconds = bounds(args)
    done: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    sent = 0

    def sink(packet: Packet) -> None:
        nonlocal sent
        if done.done():
            return
        try:
            send({"event": "packet", **packet.to_json()})
        except ConnectionError:  # control.ClientGone: the client left (Ctrl-C, a closed pipe)
            done.set_result("client gone")
            return
        sent += 1
        if sent >= count:
            done.set_result("count")

    stop = lab.capture(target, sink)
    try:
        send({"event": "started", "target": target, "count": count, "seconds": seconds})
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.shield(done), seconds)
    finally:
        stop()
    return {"packets": sent, "ended": done.result() if done.done() else "seconds"}
