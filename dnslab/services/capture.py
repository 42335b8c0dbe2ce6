"""Packet taps: what the lab's servers and resolver send and receive, as packets, for `dnslab capture`.

The lab owns no raw sockets (it runs without root), so a capture is taken
where the bytes pass through dnslab: a listener's handler (a lab server or the
resolver's client side: the query in, the replies out) and the resolver's own
UDP queries upstream (its TCP ones are taken at the lab server, services/upstream.py).  Each becomes a `Packet` with the real addresses and
ports and the exact bytes: a datagram, or for TCP the stream bytes with their
RFC 7766 length prefix.  Whoever wants them (the control endpoint's `capture`)
subscribes a sink; with none subscribed a tapped handler costs one attribute
test per query.  Turning packets into a pcap file is the face's (faces/pcap.py).
"""

from __future__ import annotations

import inspect
import logging
import struct
import time
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

from dnslab.services.transport import Handler, Peer, Unframed

log = logging.getLogger(__name__)
_LENGTH = struct.Struct("!H")


@dataclass(frozen=True)
class Packet:
    """One message on the wire, as a capture shows it."""

    when: float        # POSIX seconds, as a pcap stamps packets
    src: Peer
    dst: Peer
    tcp: bool
    payload: bytes     # the datagram, or the TCP stream bytes (length prefix included)
    at: str            # where it was seen: a lab server's address, or "resolver"

    def to_json(self) -> dict[str, Any]:
        return {"t": self.when, "src": list(self.src), "dst": list(self.dst), "tcp": self.tcp,
                "data": self.payload.hex(), "at": self.at}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Packet":
        return cls(float(data["t"]), (str(data["src"][0]), int(data["src"][1])),
                   (str(data["dst"][0]), int(data["dst"][1])), bool(data["tcp"]), bytes.fromhex(data["data"]),
                   str(data.get("at", "")))


Sink = Callable[[Packet], None]
RESOLVER = "resolver"            # seen at the resolver's listener: its clients' queries and its replies
UPSTREAM = "resolver-upstream"   # the resolver's own UDP queries to servers, and what came back


def framed(message: bytes, tcp: bool) -> bytes:
    """The bytes a message takes on the wire: over TCP, with its two-byte length first."""
    return _LENGTH.pack(len(message)) + message if tcp else message


class Taps:
    """The sinks a lab's packets go to; one per lab, shared by every tapped handler."""

    def __init__(self) -> None:
        self.sinks: list[Sink] = []
        self._routed: list[Tapped] = []  # handlers whose datagrams skip the tap while nobody listens

    def subscribe(self, sink: Sink) -> None:
        self.sinks.append(sink)
        self._reroute()

    def unsubscribe(self, sink: Sink) -> None:
        if sink in self.sinks:
            self.sinks.remove(sink)
            self._reroute()

    def route(self, tapped: "Tapped") -> None:
        """Tell *tapped* whenever a capture starts or stops (`Tapped.route_udp`)."""
        self._routed.append(tapped)

    def _reroute(self) -> None:
        for tapped in self._routed:
            tapped.reroute()

    def emit(self, packet: Packet) -> None:
        for sink in list(self.sinks):
            try:
                sink(packet)
            except Exception:  # noqa: BLE001 - a capture must never break the traffic it watches
                log.exception("capture sink failed; it is dropped")
                self.unsubscribe(sink)

    def wrap(self, handler: Handler, host: str, at: str) -> "Tapped":
        return Tapped(handler, host, at, self)


class Tapped:
    """A listener's handler whose traffic goes to the lab's taps while anyone listens.

    `port` is set once the listener is bound (port 0 picks one).
    """

    def __init__(self, handler: Handler, host: str, at: str, taps: Taps) -> None:
        self.handler = handler
        self.host = host
        self.port = 0
        self.at = at
        self.taps = taps
        self._routes: list[Callable[[Handler], None]] = []

    def route_udp(self, set_handler: Callable[[Handler], None]) -> None:
        """Let datagrams skip this tap while nobody captures (one call less a query on the busiest
        path): *set_handler*, a listener's `set_udp_handler`, is told whom to call now and
        whenever a capture starts or stops.  TCP keeps coming through here."""
        if not self._routes:
            self.taps.route(self)
        self._routes.append(set_handler)
        set_handler(self if self.taps.sinks else self.handler)

    def reroute(self) -> None:
        for set_handler in self._routes:
            set_handler(self if self.taps.sinks else self.handler)

    def __call__(self, wire: bytes, via_tcp: bool, peer: Peer) -> bytes | None | Awaitable[bytes | None]:
        if not self.taps.sinks:
            return self.handler(wire, via_tcp, peer)
        local = (self.host, self.port)
        peer = (str(peer[0]), int(peer[1])) if peer else ("0.0.0.0", 0)
        self.taps.emit(Packet(time.time(), peer, local, via_tcp, framed(wire, via_tcp), self.at))
        reply = self.handler(wire, via_tcp, peer)
        if type(reply) is not bytes and inspect.isawaitable(reply):
            return self._later(reply, via_tcp, peer, local)
        self._sent(reply, via_tcp, peer, local)
        return reply

    async def _later(self, reply: Awaitable[bytes | None], via_tcp: bool, peer: Peer, local: Peer) -> bytes | None:
        wire = await reply
        self._sent(wire, via_tcp, peer, local)
        return wire

    def _sent(self, reply: bytes | None, via_tcp: bool, peer: Peer, local: Peer) -> None:
        if reply is None:
            return
        if type(reply) is Unframed:
            messages: Any = [bytes(reply)]
            via = False  # already stream bytes: no prefix added
        else:
            messages = reply if isinstance(reply, list) else (reply,)  # Several, or a transfer's stream
            via = via_tcp
        for message in messages:
            self.taps.emit(Packet(time.time(), local, peer, via_tcp, framed(message, via), self.at))
