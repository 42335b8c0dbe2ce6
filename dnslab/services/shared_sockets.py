"""Every lab server address served from one UDP and one TCP socket on the wildcard address.

A listener per address (transport.DnsListener) costs two descriptors per server, so a lab of
10,000 zones (about 18,000 server addresses) does not fit a 20,000-descriptor limit.  Here one
UDP socket bound to 0.0.0.0 on the lab port reads every datagram with IP_PKTINFO, which says
the address it was sent to; the datagram goes to that address's handler, and the reply leaves
with IP_PKTINFO naming the same address as its source, as a resolver checks.  One TCP socket
listens on 0.0.0.0 too: an accepted connection's local address (getsockname) says which server
was asked.  Only loopback clients are served; anything for an address that is not a lab server
is dropped (UDP) or reset (TCP), never answered.

Sockets bound to a specific address on the same port (the resolver on 127.0.0.1, the caching
levels) keep their traffic: Linux delivers to the most specific bound socket.  For TCP the
kernel lets a specific and a wildcard socket listen on one port only when both set
SO_REUSEPORT, so the lab's own listeners set it in this mode (lab/sockets.py says when a
program of the lab cannot).

`unreachable` cannot close an address's sockets here (there are none of its own), and the
kernel's ICMP port unreachable comes only when no socket matches, which the wildcard always
does.  So an unreachable address's datagrams are dropped (the client times out instead of
hearing "connection refused") and its TCP connections are reset as soon as they are accepted
(SO_LINGER 0: a RST after the handshake, not at the SYN).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
import sys
from typing import Any, Iterable

from dnslab.core.errors import BindError
from dnslab.services.transport import (FREE_PORT_ATTEMPTS, UDP_RECEIVE_BUFFER, Handler, Peer, TcpLimits,
                                       _UdpProtocol, bind_error, serve_tcp)

log = logging.getLogger(__name__)

WILDCARD = "0.0.0.0"
# Python has the name from 3.12 on; Linux's value is 8 on every architecture (<linux/in.h>).
PKTINFO: int | None = getattr(socket, "IP_PKTINFO", 8 if sys.platform.startswith("linux") else None)
# struct in_pktinfo (Linux ip(7)): interface index, the local address to send from, the header's destination.
_IN_PKTINFO = struct.Struct("=i4s4s")
_ANCILLARY = socket.CMSG_SPACE(_IN_PKTINFO.size) if hasattr(socket, "CMSG_SPACE") else 0
_LINGER_RESET = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() sends RST
_READ_BATCH = 64  # datagrams read per wake-up at most, so the rest of the loop gets its turn

Cmsg = tuple[int, int, bytes]


def supported() -> bool:
    """Linux has IP_PKTINFO for both reading the destination and choosing the source of a reply;
    elsewhere (BSDs, macOS: IP_RECVDSTADDR and IP_SENDSRCADDR) the lab keeps a socket per address."""
    return PKTINFO is not None and sys.platform.startswith("linux") and hasattr(socket.socket, "recvmsg")


def destination_bytes(ancillary: Iterable[Cmsg]) -> bytes | None:
    """The address a datagram was sent to, as its 4 bytes, from recvmsg's ancillary data (None: not said)."""
    for level, kind, data in ancillary:
        if level == socket.IPPROTO_IP and kind == PKTINFO and len(data) >= _IN_PKTINFO.size:
            return data[8:12]  # ipi_addr, the header's destination (ipi_spec_dst is the route's local address)
    return None


def source(address: str) -> list[Cmsg]:
    """Ancillary data for sendmsg that makes *address* the datagram's source (ifindex 0: any)."""
    return [(socket.IPPROTO_IP, PKTINFO or 0, _IN_PKTINFO.pack(0, socket.inet_aton(address), bytes(4)))]


def loopback(host: str) -> bool:
    """127.0.0.0/8: the lab serves nobody else, though the wildcard socket hears every interface."""
    return host.startswith("127.")


class _Sender:
    """What _UdpProtocol sends through: the shared socket, with the server's address as source."""

    def __init__(self, owner: "SharedListener", address: str) -> None:
        self.owner = owner
        self.cmsg = source(address)

    def sendto(self, data: bytes, addr: Peer) -> None:
        sock = self.owner.udp
        if sock is None:
            return
        try:
            sock.sendmsg([data], self.cmsg, 0, addr)
        except (BlockingIOError, InterruptedError):
            self.owner.send_dropped += 1  # the send buffer is full: dropped, as a busy server's reply is
        except OSError as exc:
            log.debug("UDP send to %s failed: %s", addr, exc)


class SharedAddress:
    """One lab server address on the shared sockets, with a DnsListener's face (port, stop,
    set_listening, settled), so the lab treats both kinds alike."""

    def __init__(self, owner: "SharedListener", address: str, handler: Handler) -> None:
        self.owner = owner
        self.host = address
        self.handler = handler
        self.reachable = True
        self.tcp_clients: set[asyncio.StreamWriter] = set()
        self.udp = _UdpProtocol(handler)
        self.udp.transport = _Sender(owner, address)  # type: ignore[assignment]

    def set_udp_handler(self, handler: Handler) -> None:
        """As `DnsListener.set_udp_handler`."""
        self.udp.handler = handler

    @property
    def port(self) -> int:
        return self.owner.port

    @property
    def tcp_limits(self) -> TcpLimits:
        return self.owner.tcp_limits

    def set_listening(self, listening: bool) -> None:
        """`unreachable` and back: datagrams dropped and connections reset while not listening."""
        self.reachable = listening
        if not listening:
            self._drop_everything()

    async def settled(self) -> None:
        """Nothing to wait for: set_listening takes effect at once."""

    async def stop(self, settle: bool = True) -> None:
        """No longer a lab server (stopped, or gone from the zones): closed as a DnsListener closes."""
        self.owner.detach(self.host)
        self._drop_everything(reset_tcp=False)

    def _drop_everything(self, reset_tcp: bool = True) -> None:
        for task in list(self.udp.pending):
            task.cancel()
        for writer in list(self.tcp_clients):
            if reset_tcp:
                reset(writer)
            else:
                writer.close()


def reset(writer: asyncio.StreamWriter) -> None:
    """Close a connection with RST (SO_LINGER 0), as a closed port's kernel would answer."""
    sock = writer.get_extra_info("socket")
    try:
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
    except OSError:
        pass
    writer.transport.abort()


class SharedListener:
    """The wildcard UDP and TCP sockets on the lab port, and the lab addresses they serve."""

    def __init__(self, port: int, tcp_limits: TcpLimits | None = None, reuse_port: bool = False) -> None:
        """*reuse_port*: worker processes (dnslab up --workers) share these sockets too."""
        self.port = port
        self.tcp_limits = tcp_limits or TcpLimits()
        self.reuse_port = reuse_port
        self.addresses: dict[str, SharedAddress] = {}
        self._by_bytes: dict[bytes, SharedAddress] = {}  # the same, keyed as IP_PKTINFO gives the address
        self.udp: socket.socket | None = None
        self._tcp: asyncio.base_events.Server | None = None
        self.dropped = 0       # datagrams not for a lab server, from outside loopback, or to an unreachable one
        self.send_dropped = 0  # replies the full send buffer refused

    def attach(self, address: str, handler: Handler) -> SharedAddress:
        served = self.addresses[address] = self._by_bytes[socket.inet_aton(address)] = \
            SharedAddress(self, address, handler)
        return served

    def detach(self, address: str) -> None:
        self.addresses.pop(address, None)
        self._by_bytes.pop(socket.inet_aton(address), None)

    async def start(self) -> None:
        """Bind UDP (port 0 picks a free one), then TCP on the same port.

        Both carry SO_REUSEPORT, so that the lab's own listeners on specific addresses can share
        the port; to still refuse a port someone else holds (another lab), a plain socket
        first tries the port with no sharing allowed (skipped when workers share it on purpose).
        """
        wanted = self.port
        for attempt in range(FREE_PORT_ATTEMPTS if wanted == 0 else 1):
            udp = self._bind(socket.SOCK_DGRAM, wanted)
            port = udp.getsockname()[1]
            try:
                tcp = self._bind(socket.SOCK_STREAM, port)
            except BindError:
                udp.close()
                if wanted != 0 or attempt == FREE_PORT_ATTEMPTS - 1:
                    raise
                continue
            self.port, self.udp = port, udp
            loop = asyncio.get_running_loop()
            loop.add_reader(udp.fileno(), self._readable)
            try:
                self._tcp = await asyncio.start_server(self._serve_tcp, sock=tcp, backlog=1024)
            except BaseException:
                tcp.close()
                await self.stop()
                raise
            return

    def _bind(self, kind: int, port: int) -> socket.socket:
        protocol = "UDP" if kind == socket.SOCK_DGRAM else "TCP"
        if port and not self.reuse_port:
            probe = socket.socket(socket.AF_INET, kind)
            try:
                if kind == socket.SOCK_STREAM:  # only a listener conflicts, not a connection in TIME_WAIT
                    probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                probe.bind((WILDCARD, port))
            except OSError as exc:
                raise bind_error(WILDCARD, port, protocol, exc) from None
            finally:
                probe.close()
        sock = socket.socket(socket.AF_INET, kind)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            if kind == socket.SOCK_DGRAM:
                sock.setsockopt(socket.IPPROTO_IP, PKTINFO, 1)  # type: ignore[arg-type]
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, UDP_RECEIVE_BUFFER)
            sock.bind((WILDCARD, port))
            if kind == socket.SOCK_STREAM:
                sock.listen(1024)
            sock.setblocking(False)
        except OSError as exc:
            sock.close()
            raise bind_error(WILDCARD, port, protocol, exc) from None
        return sock

    def _readable(self) -> None:
        sock = self.udp
        if sock is None:
            return
        for _ in range(_READ_BATCH):
            try:
                data, ancillary, _flags, peer = sock.recvmsg(65535, _ANCILLARY)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                log.debug("UDP receive failed: %s", exc)
                return
            served = self._by_bytes.get(destination_bytes(ancillary) or b"")
            if served is None or not served.reachable or not loopback(peer[0]):
                self.dropped += 1
                continue
            served.udp.datagram_received(data, peer)

    async def _serve_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        local: Any = writer.get_extra_info("sockname")
        peer: Any = writer.get_extra_info("peername")
        served = self.addresses.get(local[0]) if local else None
        if served is None or not served.reachable or not peer or not loopback(peer[0]):
            reset(writer)
            return
        await serve_tcp(reader, writer, served.handler, self.tcp_limits, served.tcp_clients)

    async def stop(self) -> None:
        if self.udp is not None:
            try:
                asyncio.get_running_loop().remove_reader(self.udp.fileno())
            finally:
                self.udp.close()
                self.udp = None
        for served in list(self.addresses.values()):
            await served.stop()
        if self._tcp is not None:
            self._tcp.close()
            await self._tcp.wait_closed()
            self._tcp = None
