"""The listeners on real loopback sockets: framing, limits, and surviving bad clients.

Each test runs its own event loop with `asyncio.run` and a listener on an
ephemeral port of 127.0.0.1.  Every network wait is bounded by `TIMEOUT`, and
silence is never inferred from a wait: on UDP, a probe query sent after the bad
packet must be the first thing answered, which it can only be if the bad packet
got no reply (the server handles datagrams from one socket in order).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import socket
import struct
from typing import AsyncIterator, Awaitable, Callable, TypeVar

import dns.asyncquery
import dns.flags
import dns.message
import dns.rcode
import pytest

from dnslab.core.errors import BindError
from dnslab.authority.server import AuthoritativeServer
from dnslab.services.transport import DnsListener, Handler, TcpLimits
from dnslab.core.zone import load_zone_text

HOST = "127.0.0.1"
TIMEOUT = 3.0  # the bound on any single network wait
TEST_BOUND = 20.0  # the bound on a whole test's event loop
LENGTH = struct.Struct("!H")
HEADER = struct.Struct("!HHHHHH")

BIG_STRINGS = [chr(ord("a") + i) * 250 for i in range(6)]  # > 1232 bytes in any packing
ZONE = "\n".join(
    [
        "$ORIGIN lab.test.",
        "$TTL 3600",
        "@ SOA ns1 hostmaster 1 3600 900 604800 300",
        "@ NS ns1",
        "ns1 A 127.0.0.1",
        "www A 192.0.2.1",
        "mail A 192.0.2.25",
        *(f"host{i} A 192.0.2.{100 + i}" for i in range(10)),
        *(f'big TXT "{s}"' for s in BIG_STRINGS),
    ]
)
_loaded = load_zone_text(ZONE)
assert _loaded.zone is not None, _loaded.problems
SERVER = AuthoritativeServer([_loaded.zone])

T = TypeVar("T")


def run(test: Callable[[], Awaitable[T]]) -> T:
    """Run one async test body on a fresh loop, bounded as a whole."""

    async def bounded() -> T:
        return await asyncio.wait_for(test(), TEST_BOUND)

    return asyncio.run(bounded())


@contextlib.asynccontextmanager
async def serving(handler: Handler = SERVER.handle, limits: TcpLimits | None = None) -> AsyncIterator[DnsListener]:
    listener = DnsListener(HOST, 0, handler, tcp_limits=limits)
    await listener.start()
    assert listener.port != 0
    try:
        yield listener
    finally:
        await listener.stop()


def query(name: str, rdtype: str = "A", *, qid: int, edns: int | bool = False) -> dns.message.Message:
    message = dns.message.make_query(name, rdtype, use_edns=edns)
    message.id = qid
    return message


def addresses(reply: dns.message.Message) -> list[str]:
    return sorted(rdata.to_text() for rrset in reply.answer for rdata in rrset)


# --- UDP client ------------------------------------------------------------------------


class _Datagrams(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.received: asyncio.Queue[bytes] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.received.put_nowait(data)


class UdpClient:
    """One client socket, so the server sees every datagram from the same peer."""

    def __init__(self, transport: asyncio.DatagramTransport, protocol: _Datagrams) -> None:
        self.transport = transport
        self.protocol = protocol

    def send(self, wire: bytes) -> None:
        self.transport.sendto(wire)

    async def receive(self) -> bytes:
        return await asyncio.wait_for(self.protocol.received.get(), TIMEOUT)

    async def ask(self, message: dns.message.Message) -> dns.message.Message:
        self.send(message.to_wire())
        reply = dns.message.from_wire(await self.receive())
        assert reply.id == message.id
        return reply

    async def assert_silent_then_answers(self, wire: bytes, probe_id: int) -> None:
        """Send *wire*, then a probe: the first reply must be the probe's."""
        self.send(wire)
        reply = await self.ask(query("www.lab.test", qid=probe_id))
        assert addresses(reply) == ["192.0.2.1"]


@contextlib.asynccontextmanager
async def udp_client(port: int) -> AsyncIterator[UdpClient]:
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_datagram_endpoint(_Datagrams, remote_addr=(HOST, port))
    try:
        yield UdpClient(transport, protocol)  # type: ignore[arg-type]
    finally:
        transport.close()


# --- TCP client ------------------------------------------------------------------------


class TcpClient:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    async def send(self, *wires: bytes) -> None:
        """Several messages in one write: pipelined, as RFC 7766 §6.2.1.1 allows."""
        self.writer.write(b"".join(LENGTH.pack(len(w)) + w for w in wires))
        await asyncio.wait_for(self.writer.drain(), TIMEOUT)

    async def receive(self) -> bytes:
        (length,) = LENGTH.unpack(await asyncio.wait_for(self.reader.readexactly(2), TIMEOUT))
        return await asyncio.wait_for(self.reader.readexactly(length), TIMEOUT)

    async def ask(self, message: dns.message.Message) -> dns.message.Message:
        await self.send(message.to_wire())
        reply = dns.message.from_wire(await self.receive())
        assert reply.id == message.id
        return reply

    async def closed_by_server(self) -> bool:
        """Wait (bounded) for the server to close; True on EOF or reset, False on data."""
        try:
            data = await asyncio.wait_for(self.reader.read(1), TIMEOUT)
        except ConnectionError:
            return True
        return data == b""

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError):
            await asyncio.wait_for(self.writer.wait_closed(), TIMEOUT)


@contextlib.asynccontextmanager
async def tcp_client(port: int) -> AsyncIterator[TcpClient]:
    reader, writer = await asyncio.wait_for(asyncio.open_connection(HOST, port), TIMEOUT)
    client = TcpClient(reader, writer)
    try:
        yield client
    finally:
        await client.close()


async def assert_serving(listener: DnsListener, qid: int = 0x5151) -> None:
    """Both transports still answer a plain query correctly."""
    async with udp_client(listener.port) as udp:
        reply = await udp.ask(query("www.lab.test", qid=qid))
        assert reply.rcode() == dns.rcode.NOERROR and addresses(reply) == ["192.0.2.1"]
    async with tcp_client(listener.port) as tcp:
        reply = await tcp.ask(query("www.lab.test", qid=qid + 1))
        assert reply.rcode() == dns.rcode.NOERROR and addresses(reply) == ["192.0.2.1"]


# --- answering ---------------------------------------------------------------------------


def test_udp_query_and_answer() -> None:
    async def body() -> None:
        async with serving() as listener:
            reply = await dns.asyncquery.udp(query("www.lab.test", qid=1), HOST, timeout=TIMEOUT, port=listener.port)
            assert reply.rcode() == dns.rcode.NOERROR
            assert reply.flags & dns.flags.AA and not reply.flags & dns.flags.TC
            assert addresses(reply) == ["192.0.2.1"]
            nx = await dns.asyncquery.udp(query("nope.lab.test", qid=2), HOST, timeout=TIMEOUT, port=listener.port)
            assert nx.rcode() == dns.rcode.NXDOMAIN

    run(body)


def test_tcp_query_and_answer() -> None:
    async def body() -> None:
        async with serving() as listener:
            reply = await dns.asyncquery.tcp(query("mail.lab.test", qid=3), HOST, timeout=TIMEOUT, port=listener.port)
            assert reply.rcode() == dns.rcode.NOERROR
            assert addresses(reply) == ["192.0.2.25"]

    run(body)


def test_tcp_pipelined_queries_answered_in_order_on_one_connection() -> None:
    async def body() -> None:
        async with serving() as listener, tcp_client(listener.port) as tcp:
            queries = [query(f"host{i}.lab.test", qid=100 + i) for i in range(10)]
            await tcp.send(*(q.to_wire() for q in queries))
            for i, sent in enumerate(queries):
                reply = dns.message.from_wire(await tcp.receive())
                assert reply.id == sent.id
                assert addresses(reply) == [f"192.0.2.{100 + i}"]
            # The connection stays open for more (RFC 7766 §6.2.1).
            again = await tcp.ask(query("www.lab.test", qid=200))
            assert addresses(again) == ["192.0.2.1"]

    run(body)


def test_tcp_message_split_across_writes() -> None:
    async def body() -> None:
        async with serving() as listener, tcp_client(listener.port) as tcp:
            wire = query("www.lab.test", qid=7).to_wire()
            framed = LENGTH.pack(len(wire)) + wire
            for piece in (framed[:1], framed[1:5], framed[5:]):
                tcp.writer.write(piece)
                await asyncio.wait_for(tcp.writer.drain(), TIMEOUT)
                await asyncio.sleep(0)  # let the server see each piece on its own
            reply = dns.message.from_wire(await tcp.receive())
            assert reply.id == 7 and addresses(reply) == ["192.0.2.1"]

    run(body)


def test_big_answer_truncated_over_udp_then_complete_over_tcp() -> None:
    async def body() -> None:
        async with serving() as listener:
            for qid, edns in ((10, False), (11, 0)):
                q = query("big.lab.test", "TXT", qid=qid, edns=edns)
                udp = await dns.asyncquery.udp(q, HOST, timeout=TIMEOUT, port=listener.port)
                assert udp.flags & dns.flags.TC
                assert udp.answer == []
                tcp = await dns.asyncquery.tcp(q, HOST, timeout=TIMEOUT, port=listener.port)
                assert not tcp.flags & dns.flags.TC
                strings = sorted(s.decode() for rrset in tcp.answer for rdata in rrset for s in rdata.strings)
                assert strings == BIG_STRINGS

    run(body)


def test_udp_with_fallback_follows_tc_to_tcp() -> None:
    async def body() -> None:
        async with serving() as listener:
            reply, used_tcp = await dns.asyncquery.udp_with_fallback(
                query("big.lab.test", "TXT", qid=12, edns=0), HOST, timeout=TIMEOUT, port=listener.port
            )
            assert used_tcp
            assert len(reply.answer[0]) == len(BIG_STRINGS)

    run(body)


# --- bad input ---------------------------------------------------------------------------


def test_garbage_over_udp_leaves_the_server_answering() -> None:
    async def body() -> None:
        async with serving() as listener, udp_client(listener.port) as udp:
            # QR set: a "response" from nowhere is dropped, not answered.
            await udp.assert_silent_then_answers(b"\xab\xcd" + b"\xff" * 40, probe_id=1)
            # Empty and short datagrams: no header to answer.
            await udp.assert_silent_then_answers(b"", probe_id=2)
            await udp.assert_silent_then_answers(b"\x00\x07\x01\x00\x00", probe_id=3)
            await udp.assert_silent_then_answers(b"\x00\x08" + b"\x00" * 9, probe_id=4)
            # A readable header over garbage: FORMERR, header only, ID echoed.
            udp.send(b"\xab\xcd\x01\x00" + b"\xff" * 40)
            formerr = await udp.receive()
            assert len(formerr) == 12
            ident, flags, *counts = HEADER.unpack(formerr)
            assert ident == 0xABCD and flags & 0x8000 and flags & 0xF == dns.rcode.FORMERR
            assert counts == [0, 0, 0, 0]
            await assert_serving(listener)

    run(body)


def test_two_questions_over_udp_get_formerr() -> None:
    async def body() -> None:
        async with serving() as listener, udp_client(listener.port) as udp:
            one = query("www.lab.test", qid=0x2222).to_wire()
            two = one[:4] + b"\x00\x02" + one[6:] + one[12:]
            udp.send(two)
            reply = dns.message.from_wire(await udp.receive())
            assert reply.id == 0x2222
            assert reply.rcode() == dns.rcode.FORMERR
            assert reply.question == [] and reply.answer == []
            ok = await udp.ask(query("www.lab.test", qid=0x2223))
            assert addresses(ok) == ["192.0.2.1"]

    run(body)


def test_truncated_header_over_tcp_is_ignored_and_connection_stays_usable() -> None:
    async def body() -> None:
        async with serving() as listener, tcp_client(listener.port) as tcp:
            await tcp.send(b"\x12\x34\x01")  # a whole frame holding 3 bytes: no reply
            reply = await tcp.ask(query("www.lab.test", qid=0x3333))
            assert addresses(reply) == ["192.0.2.1"]

    run(body)


def test_oversized_tcp_length_then_close_leaves_the_server_answering() -> None:
    async def body() -> None:
        async with serving() as listener:
            async with tcp_client(listener.port) as tcp:
                tcp.writer.write(LENGTH.pack(65535) + b"\x12\x34\x01\x00abc")
                await asyncio.wait_for(tcp.writer.drain(), TIMEOUT)
            # The client is gone mid-message; the server must shrug that off.
            await assert_serving(listener)

    run(body)


def test_idle_tcp_connection_is_closed_by_the_server() -> None:
    async def body() -> None:
        async with serving(limits=TcpLimits(idle_timeout=0.3)) as listener:
            async with tcp_client(listener.port) as silent:
                assert await silent.closed_by_server()
            # Half a length prefix, then nothing: also idle.
            async with tcp_client(listener.port) as half:
                half.writer.write(b"\x00")
                await asyncio.wait_for(half.writer.drain(), TIMEOUT)
                assert await half.closed_by_server()
            await assert_serving(listener)

    run(body)


def test_tcp_connections_beyond_the_limit_are_closed() -> None:
    async def body() -> None:
        limits = TcpLimits(max_connections=2, idle_timeout=TEST_BOUND)
        async with serving(limits=limits) as listener:
            first = await _connect(listener.port)
            second = await _connect(listener.port)
            # A reply proves the server has taken each connection on.
            assert addresses(await first.ask(query("www.lab.test", qid=1))) == ["192.0.2.1"]
            assert addresses(await second.ask(query("www.lab.test", qid=2))) == ["192.0.2.1"]

            extra = await _connect(listener.port)
            assert await extra.closed_by_server()
            await extra.close()

            # The two within the limit are unaffected, and UDP is not limited at all.
            assert addresses(await first.ask(query("www.lab.test", qid=3))) == ["192.0.2.1"]
            async with udp_client(listener.port) as udp:
                assert addresses(await udp.ask(query("www.lab.test", qid=4))) == ["192.0.2.1"]

            await first.close()
            await second.close()
            await _eventually_served_over_tcp(listener.port)

    run(body)


async def _connect(port: int) -> TcpClient:
    reader, writer = await asyncio.wait_for(asyncio.open_connection(HOST, port), TIMEOUT)
    return TcpClient(reader, writer)


async def _eventually_served_over_tcp(port: int) -> None:
    """The server frees a slot when it reads the client's EOF, which may come a
    moment after our close returns; retry until served, within TIMEOUT."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + TIMEOUT
    while True:
        client = await _connect(port)
        try:
            await client.send(query("www.lab.test", qid=9).to_wire())
            reply = dns.message.from_wire(await client.receive())
            assert addresses(reply) == ["192.0.2.1"]
            return
        except (asyncio.IncompleteReadError, ConnectionError):
            if loop.time() > deadline:
                raise
            await asyncio.sleep(0.02)
        finally:
            await client.close()


def test_a_handler_that_raises_gets_the_client_servfail_and_the_listener_goes_on() -> None:
    def fragile(wire: bytes, via_tcp: bool, peer: tuple[str, int]) -> bytes | None:
        if wire[2:3] == b"\x7f":  # QR clear: a query our handler fails on
            raise RuntimeError("boom")
        return SERVER.handle(wire, via_tcp, peer)

    async def body() -> None:
        async with serving(handler=fragile) as listener:
            # A bug of ours is the server's failure: the client hears SERVFAIL, not silence.
            async with udp_client(listener.port) as udp:
                udp.send(b"\x00\x01\x7f" + b"\x00" * 20)
                reply = await udp.receive()
                assert reply[:2] == b"\x00\x01" and reply[3] & 0x0F == dns.rcode.SERVFAIL
            async with tcp_client(listener.port) as tcp:
                await tcp.send(b"\x00\x02\x7f" + b"\x00" * 20)
                reply = await tcp.receive()
                assert reply[:2] == b"\x00\x02" and reply[3] & 0x0F == dns.rcode.SERVFAIL
                answered = await tcp.ask(query("www.example.com", qid=7))  # the connection goes on
                assert answered.id == 7
            await assert_serving(listener)

    run(body)


def test_a_coroutine_handler_is_answered_when_it_ends_and_one_that_raises_gets_servfail() -> None:
    """The resolver's full path: the handler hands back a coroutine, run as a task, whose end sends
    the reply (or SERVFAIL, if it raised; nothing, if it said None)."""
    async def slow(wire: bytes, via_tcp: bool, peer: tuple[str, int]) -> bytes | None:
        await asyncio.sleep(0)
        if wire[2:3] == b"\x7f":
            raise RuntimeError("boom")
        if wire[2:3] == b"\x7e":
            return None
        return SERVER.handle(wire, via_tcp, peer)  # type: ignore[return-value]

    async def body() -> None:
        async with serving(handler=slow) as listener:
            async with udp_client(listener.port) as udp:
                udp.send(b"\x00\x01\x7f" + b"\x00" * 20)
                reply = await udp.receive()
                assert reply[:2] == b"\x00\x01" and reply[3] & 0x0F == dns.rcode.SERVFAIL
                await udp.assert_silent_then_answers(b"\x00\x03\x7e" + b"\x00" * 20, probe_id=9)
            await assert_serving(listener)
            assert not listener._udp_protocol.pending  # type: ignore[union-attr]  # every task let go

    run(body)


def test_stop_closes_open_tcp_connections() -> None:
    async def body() -> None:
        listener = DnsListener(HOST, 0, SERVER.handle)
        await listener.start()
        try:
            client = await _connect(listener.port)
            assert addresses(await client.ask(query("www.lab.test", qid=1))) == ["192.0.2.1"]
        finally:
            await asyncio.wait_for(listener.stop(), TIMEOUT)
        assert await client.closed_by_server()
        await client.close()

    run(body)


def test_restart_on_the_same_port_right_after_stop() -> None:
    """A server taken down and brought back gets its port again at once."""

    async def body() -> None:
        async with serving() as first:
            port = first.port
        for _ in range(3):
            again = DnsListener(HOST, port, SERVER.handle)
            await again.start()
            try:
                assert again.port == port
                await assert_serving(again)
            finally:
                await again.stop()

    run(body)


# --- bind errors -------------------------------------------------------------------------


def test_port_in_use_is_reported_in_words() -> None:
    async def body() -> None:
        async with serving() as first:
            second = DnsListener(HOST, first.port, SERVER.handle)
            with pytest.raises(BindError) as caught:
                await second.start()
            assert "already in use" in str(caught.value)
            assert f"{HOST}:{first.port}" in str(caught.value)
            await assert_serving(first)

    run(body)


def test_tcp_port_in_use_releases_the_udp_socket() -> None:
    async def body() -> None:
        # Hold only the TCP side of a port, so UDP binds and TCP fails.
        holder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            holder.bind((HOST, 0))
            holder.listen()
            port = holder.getsockname()[1]
            listener = DnsListener(HOST, port, SERVER.handle)
            with pytest.raises(BindError) as caught:
                await listener.start()
            assert "already in use" in str(caught.value) and "TCP" in str(caught.value)
        finally:
            holder.close()
        # The UDP socket bound on the way was closed again: the port is free.
        probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            probe.bind((HOST, port))
        finally:
            probe.close()

    run(body)


def test_port_zero_tries_another_port_when_tcp_is_taken(monkeypatch: pytest.MonkeyPatch) -> None:
    """With port 0 the UDP pick may be busy for TCP; the listener moves on."""
    real_start_server = asyncio.start_server
    refused: list[int] = []

    async def busy_once(*args: object, **kwargs: object) -> asyncio.AbstractServer:
        if not refused:
            refused.append(int(args[2]))  # type: ignore[call-overload]
            raise OSError(errno.EADDRINUSE, "Address already in use")
        return await real_start_server(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(asyncio, "start_server", busy_once)

    async def body() -> None:
        async with serving() as listener:
            assert refused and listener.port != 0
            await assert_serving(listener)

    run(body)


def _foreign_address() -> str:
    """A documentation address (RFC 5737) that this machine does not have."""
    for address in ("192.0.2.1", "198.51.100.1", "203.0.113.1"):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            try:
                probe.bind((address, 0))
            except OSError as exc:
                if exc.errno == errno.EADDRNOTAVAIL:
                    return address
    pytest.skip("every RFC 5737 test address is configured on this machine")


def test_address_not_on_this_machine_is_reported_in_words() -> None:
    address = _foreign_address()

    async def body() -> None:
        listener = DnsListener(address, 0, SERVER.handle)
        with pytest.raises(BindError) as caught:
            await listener.start()
        assert "not on this machine" in str(caught.value)
        assert address in str(caught.value)

    run(body)


def test_the_servfail_for_a_failing_handler_keeps_the_question() -> None:
    """The listener's last resort (a handler that raised) still echoes the question and RD."""
    from dnslab.services.transport import _servfail

    query = dns.message.make_query("Www.Example.com.", "AAAA")
    reply = dns.message.from_wire(_servfail(query.to_wire()))  # type: ignore[arg-type]
    assert reply.id == query.id and reply.rcode() == 2 and reply.flags & dns.flags.QR
    assert reply.flags & dns.flags.RD
    assert [(q.name.to_text(), q.rdtype) for q in reply.question] == [("Www.Example.com.", 28)]
    garbage = struct.pack("!HHHHHH", 7, 0x0100, 1, 0, 0, 0) + b"\xff\xff"
    header_only = dns.message.from_wire(_servfail(garbage), question_only=True)  # type: ignore[arg-type]
    assert header_only.id == 7 and header_only.rcode() == 2 and not header_only.question
