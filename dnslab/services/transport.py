"""UDP and TCP listeners that hand each DNS message to a handler.

The handler is sans-I/O (`wire, via_tcp, peer -> wire | None`), or a coroutine
of the same shape when answering needs to wait (the recursive resolver); this
module owns the sockets, the RFC 7766 framing, the idle timeout and the bound
on TCP connections, and turns bind failures into one clear sentence.
"""

from __future__ import annotations

import asyncio
import errno
import inspect
import logging
import socket
import struct
import types
from dataclasses import dataclass
from typing import Awaitable, Callable

import dns.message

from dnslab.core.errors import BindError
from dnslab.core.wire import header_only_reply

log = logging.getLogger(__name__)
SERVFAIL = 2

Peer = tuple[str, int]
# A TCP reply may be a list of messages (a zone transfer), sent one after the other.
Handler = Callable[[bytes, bool, Peer], "bytes | list[bytes] | None | Awaitable[bytes | None]"]
_LENGTH = struct.Struct("!H")
UDP_RECEIVE_BUFFER = 1 << 20
FREE_PORT_ATTEMPTS = 20  # for port 0: how many free UDP ports to try for TCP too


class Several(list):  # type: ignore[type-arg]
    """Several messages for one query, as a handler may return them: a zone transfer's stream
    (RFC 5936 §2.2; the authoritative side returns a plain list of messages, which is the same
    thing), or a scripted server's forged reply and then the real one.  One datagram each over
    UDP, each framed over TCP."""


class Unframed(bytes):
    """Bytes a TCP client gets exactly as they are, without the RFC 7766 length prefix, after
    which the connection is closed: how a scripted server sends a truncated TCP stream.  Over
    UDP, one datagram like any reply."""


@dataclass(frozen=True)
class TcpLimits:
    """NSD's defaults are tcp-count 100 and tcp-timeout 120 s; a lab needs fewer and shorter."""

    max_connections: int = 100
    idle_timeout: float = 10.0


class _UdpProtocol(asyncio.DatagramProtocol):
    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.transport: asyncio.DatagramTransport | None = None
        self.pending: set[asyncio.Future[None]] = set()  # replies still being worked out
        self.loop = asyncio.get_running_loop()
        # Set once asyncio has really closed the socket, a loop turn after close().
        self.closed: asyncio.Future[None] = self.loop.create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # The selector loop's UDP transport is not a DatagramTransport subclass.
        self.transport = transport  # type: ignore[assignment]
        # asyncio reads with a 256 KiB buffer that glibc serves by mmap per call;
        # a DNS message is at most 64 KiB (see shared/DESIGN.md, performance facts).
        try:
            transport.max_size = 65535  # type: ignore[attr-defined]
        except AttributeError:
            pass  # uvloop's transport reads into a buffer of its own
        sock = transport.get_extra_info("socket")
        if sock is not None:
            # The default 208 KiB receive buffer overflows with a few hundred queries in
            # flight (dnsperf -q 200 lost ~40 per run); NSD uses 2 MiB, 1 MiB is plenty here.
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, UDP_RECEIVE_BUFFER)
            except OSError:
                pass

    def datagram_received(self, data: bytes, addr: Peer) -> None:
        try:
            reply = self.handler(data, False, addr)
        except Exception:  # noqa: BLE001 - the handler should not raise, but never die for it
            log.exception("handler failed for a datagram from %s", addr)
            reply = _servfail(data)  # a bug of ours: the client hears so, not silence
        # A ready reply (most of them, from the fast paths) is sent at once, before any other check.
        if type(reply) is bytes:
            if self.transport is not None:
                self.transport.sendto(reply, addr)
        elif type(reply) is types.CoroutineType or inspect.isawaitable(reply):  # (the type test is cheaper)
            task = self.loop.create_task(self._reply_later(reply, addr, data))  # type: ignore[arg-type]
            self.pending.add(task)
            task.add_done_callback(self.pending.discard)
        elif reply is not None and self.transport is not None:
            self._send(reply, addr)

    def _send(self, reply: bytes, addr: Peer) -> None:
        if isinstance(reply, list):  # Several, or a transfer's list of messages
            for message in reply:
                self.transport.sendto(message, addr)  # type: ignore[union-attr]
        else:
            self.transport.sendto(reply, addr)  # type: ignore[union-attr]

    async def _reply_later(self, reply: Awaitable[bytes | None], addr: Peer, data: bytes) -> None:
        try:
            wire = await reply
        except Exception:  # noqa: BLE001 - one query must never stop the server
            log.exception("handler failed for a datagram from %s", addr)
            wire = _servfail(data)
        if wire is not None and self.transport is not None:
            self._send(wire, addr)

    def error_received(self, exc: Exception) -> None:
        log.debug("UDP error: %s", exc)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)


class DnsListener:
    """One address and port, served over UDP and TCP by the same handler."""

    def __init__(self, host: str, port: int, handler: Handler, tcp_limits: TcpLimits | None = None,
                 reuse_port: bool = False) -> None:
        """*reuse_port* lets several worker processes share the address (SO_REUSEPORT)."""
        self.reuse_port = reuse_port
        self.host = host
        self.port = port
        self.handler = handler
        self.udp_handler = handler  # what datagrams go to (`set_udp_handler`)
        self.tcp_limits = tcp_limits or TcpLimits()
        self._udp: asyncio.DatagramTransport | None = None
        self._udp_protocol: _UdpProtocol | None = None
        self._tcp: asyncio.base_events.Server | None = None
        self._tcp_clients: set[asyncio.StreamWriter] = set()
        self._switching: asyncio.Future[None] | None = None  # the last close or reopen asked for

    def set_udp_handler(self, handler: Handler) -> None:
        """Hand datagrams to *handler* from now on (TCP keeps the first): a lab's capture tap
        stands in front of the server only while someone captures, one call less a query."""
        self.udp_handler = handler
        if self._udp_protocol is not None:
            self._udp_protocol.handler = handler

    def set_listening(self, listening: bool) -> None:
        """Close the sockets (the kernel then refuses: ICMP port unreachable, TCP RST) or open them again.

        Called from plain code (a fault switched on the loop's thread); the work
        runs as a task, one switch after the other, and `settled` waits for it.
        """
        previous = self._switching

        async def switch() -> None:
            if previous is not None:
                await asyncio.gather(previous, return_exceptions=True)
            if listening and self._udp is None:
                await self.start()
            elif not listening:
                await self.stop(settle=False)

        self._switching = asyncio.ensure_future(switch())

    async def settled(self) -> None:
        """Wait until the last `set_listening` is done; raises BindError if the address could not be had back."""
        if self._switching is not None:
            await self._switching

    async def start(self) -> None:
        """Bind UDP first (port 0 picks a free one), then TCP on the same port.

        A port that is free for UDP may be taken for TCP, often by an outgoing
        connection (both draw from the same ephemeral range), so with port 0
        a few ports are tried before giving up.
        """
        loop = asyncio.get_running_loop()
        wanted = self.port
        attempts = FREE_PORT_ATTEMPTS if wanted == 0 else 1
        for attempt in range(attempts):
            try:
                transport, protocol = await loop.create_datagram_endpoint(
                    lambda: _UdpProtocol(self.udp_handler), local_addr=(self.host, wanted),
                    reuse_port=self.reuse_port or None,
                )
            except OSError as exc:
                raise bind_error(self.host, wanted, "UDP", exc) from None
            self._udp = transport  # type: ignore[assignment]
            self._udp_protocol = protocol
            self.port = transport.get_extra_info("sockname")[1]
            try:
                self._tcp = await asyncio.start_server(self._serve_tcp, self.host, self.port, reuse_address=True,
                                                       reuse_port=self.reuse_port or None)
                return
            except OSError as exc:
                await self._close_udp()
                if exc.errno != errno.EADDRINUSE or attempt == attempts - 1:
                    raise bind_error(self.host, self.port, "TCP", exc) from None

    async def stop(self, settle: bool = True) -> None:
        if settle and self._switching is not None:
            await asyncio.gather(self._switching, return_exceptions=True)
        await self._close_udp()
        if self._tcp is not None:
            self._tcp.close()
            for writer in list(self._tcp_clients):
                writer.close()
            await self._tcp.wait_closed()
            self._tcp = None

    async def _close_udp(self) -> None:
        """Close the UDP socket and wait until the port is free again.

        asyncio releases a datagram socket only on the loop turn after close();
        returning before that made stopping and at once restarting on the same
        port (a server taken down and brought back) fail with "already in use".
        """
        if self._udp is None:
            return
        self._udp.close()
        self._udp = None
        if self._udp_protocol is not None:
            for task in list(self._udp_protocol.pending):
                task.cancel()
            await self._udp_protocol.closed
            self._udp_protocol = None

    async def _serve_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await serve_tcp(reader, writer, self.handler, self.tcp_limits, self._tcp_clients)


async def serve_tcp(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, handler: Handler,
                    limits: TcpLimits, clients: set[asyncio.StreamWriter]) -> None:
    """RFC 7766: length-prefixed messages, several per connection, answered in order.

    *clients* are the connections open to the same server, bounded by *limits*; shared by a
    listener of its own (DnsListener) and by a lab address served from the shared sockets."""
    if len(clients) >= limits.max_connections:
        writer.close()
        return
    clients.add(writer)
    timeout = limits.idle_timeout
    try:
        while True:
            prefix = await asyncio.wait_for(reader.readexactly(2), timeout)
            (length,) = _LENGTH.unpack(prefix)
            message = await asyncio.wait_for(reader.readexactly(length), timeout)
            try:
                reply = handler(message, True, writer.get_extra_info("peername"))
                if inspect.isawaitable(reply):
                    reply = await reply
            except Exception:  # noqa: BLE001 - a bug of ours: SERVFAIL, and the connection goes on
                log.exception("handler failed for a TCP query from %s", writer.get_extra_info("peername"))
                reply = _servfail(message)
            if reply is None:
                continue
            if type(reply) is Unframed:  # a scripted server's broken stream: as is, then closed
                writer.write(reply)
                await asyncio.wait_for(writer.drain(), timeout)
                break
            # Several messages (a zone transfer, RFC 5936 §2.2; a scripted server's) in one write.
            writer.writelines(_LENGTH.pack(len(part)) + part
                              for part in (reply if isinstance(reply, list) else (reply,)))
            await asyncio.wait_for(writer.drain(), timeout)
    except (asyncio.IncompleteReadError, asyncio.TimeoutError, ConnectionError):
        pass
    except Exception:  # noqa: BLE001 - one connection must never stop the server
        log.exception("TCP connection from %s failed", writer.get_extra_info("peername"))
    finally:
        clients.discard(writer)
        writer.close()


def _servfail(wire: bytes) -> bytes | None:
    """SERVFAIL for a query our handler failed on; never a reply to a reply (that could loop)."""
    if len(wire) < 3 or wire[2] & 0x80:
        return None
    try:
        # The question is echoed when it can be read, as every error reply should.
        query = dns.message.from_wire(wire, question_only=True)
        reply = dns.message.make_response(query)
        reply.set_rcode(SERVFAIL)
        return reply.to_wire()
    except Exception:  # noqa: BLE001 - not even a question: the header alone
        return header_only_reply(wire, SERVFAIL)


def bind_error(host: str, port: int, protocol: str, exc: OSError) -> BindError:
    """Say why an address cannot be served, in words a person can act on."""
    where = f"{host}:{port}"
    cause = exc.__cause__
    if exc.errno is None and isinstance(cause, OSError):
        exc = cause  # uvloop wraps the OSError that says why
    if exc.errno == errno.EADDRINUSE:
        return BindError(f"cannot listen on {where} ({protocol}): the address is already in use")
    if exc.errno == errno.EACCES:
        return BindError(f"cannot listen on {where} ({protocol}): ports below 1024 need root "
                         f"(or CAP_NET_BIND_SERVICE); choose a port of 1024 or above")
    if exc.errno == errno.EADDRNOTAVAIL:
        return BindError(f"cannot listen on {where} ({protocol}): that address is not on this machine")
    if isinstance(exc, socket.gaierror):
        return BindError(f"cannot listen on {where} ({protocol}): not an address ({exc.strerror})")
    return BindError(f"cannot listen on {where} ({protocol}): {exc.strerror or exc}")
