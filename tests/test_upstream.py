"""dnslab.services.upstream: the query bytes, strict reply matching, the UDP exchange, and merging in flight."""

from __future__ import annotations

import asyncio
import socket
import struct
from collections import Counter

import dns.asyncquery
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest

from dnslab.resolution.iterator import Query
from dnslab.testing import DnsLab
from dnslab.services.poller import Poller
from dnslab.services.upstream import Exchange, Upstream, build_query, reply_matches, udp_exchange

WWW = dns.name.from_text("www.Example.com.")
A = dns.rdatatype.A


def parsed_query(wire: bytes) -> dns.message.Message:
    return dns.message.from_wire(wire)


# --- the query and what counts as its reply ---------------------------------------------------


@pytest.mark.parametrize("edns", [True, False])
def test_query_is_what_dnspython_would_send(edns: bool) -> None:
    wire, question = build_query(WWW, A, 0x1234, edns)
    message = parsed_query(wire)
    expected = dns.message.make_query(WWW, A, use_edns=0 if edns else False, payload=1232)
    assert message.id == 0x1234 and not message.flags & dns.flags.RD and not message.flags & dns.flags.QR
    assert message.question == expected.question and message.question[0].name.labels == WWW.labels
    assert message.edns == expected.edns and (not edns or message.payload == 1232)
    assert wire[12:12 + len(question)] == question



def test_request_nsid_adds_an_empty_nsid_option() -> None:
    """BIND's request-nsid: every EDNS query asks the server who it is (RFC 5001); DO is kept."""
    wire, _ = build_query(WWW, A, 7, True, dnssec=True, nsid=True)
    message = parsed_query(wire)
    assert [(int(o.otype), o.to_wire()) for o in message.options] == [(3, b"")]
    assert message.ednsflags & dns.flags.DO and message.payload == 1232
    assert build_query(WWW, A, 7, False, nsid=True)[0] == build_query(WWW, A, 7, False)[0]  # no EDNS: no option

def reply_to(wire: bytes, *, qid: int | None = None, name: str | None = None, rdtype: int = A,
             rcode: int = dns.rcode.NOERROR, question: bool = True) -> bytes:
    query = parsed_query(wire)
    if name is not None or rdtype != A:
        query = dns.message.make_query(name or query.question[0].name, rdtype)
        query.id = parsed_query(wire).id
    reply = dns.message.make_response(query)
    reply.set_rcode(rcode)
    if qid is not None:
        reply.id = qid
    if not question:
        reply.question = []
    return reply.to_wire()


def test_reply_matching_is_strict() -> None:
    wire, question = build_query(WWW, A, 7, True)
    assert reply_matches(reply_to(wire), 7, question)
    assert reply_matches(reply_to(wire, name="WWW.EXAMPLE.COM."), 7, question)  # case may change (RFC 4343)
    assert not reply_matches(reply_to(wire, qid=8), 7, question)
    assert not reply_matches(reply_to(wire, name="www.example.org."), 7, question)
    assert not reply_matches(reply_to(wire, name="ww.example.com."), 7, question)
    assert not reply_matches(reply_to(wire, rdtype=dns.rdatatype.AAAA), 7, question)
    assert not reply_matches(wire, 7, question)  # our own query (QR=0) reflected back
    assert not reply_matches(b"\x00\x07garbage", 7, question)
    # An error reply may leave the question out (as dnspython accepts); an answer may not.
    assert reply_matches(reply_to(wire, rcode=dns.rcode.REFUSED, question=False), 7, question)
    assert not reply_matches(reply_to(wire, question=False), 7, question)


# --- the UDP exchange against a scripted server on loopback ----------------------------------------

# Each exchange test runs with the socket as the loop's own reader and through an epoll set (services/poller.py).
WATCHED = ["loop", pytest.param("epoll", marks=pytest.mark.skipif(not Poller.available, reason="no epoll here"))]


def watcher(way: str) -> Poller | None:
    return Poller(asyncio.get_running_loop()) if way == "epoll" else None


def marked(wire: bytes, address: str) -> bytes:
    """A real reply to *wire* whose answer says which datagram it was."""
    query = parsed_query(wire)
    reply = dns.message.make_response(query)
    reply.answer.append(dns.rrset.from_text(query.question[0].name, 60, "IN", "A", address))
    return reply.to_wire()


async def scripted_server(sends: list[str]) -> tuple[socket.socket, socket.socket, asyncio.Task[None]]:
    """A server on 127.0.0.1 that answers one query with the datagrams *sends* names, in order.

    "garbage", "wrong id", "wrong question": forged or broken, from the server's own port;
    "other port": a perfect reply from another port of the same address; "real": the reply.
    """
    loop = asyncio.get_running_loop()
    server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    server.bind(("127.0.0.1", 0))
    server.setblocking(False)
    other = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    other.bind(("127.0.0.1", 0))

    async def serve() -> None:
        wire, client = await loop.sock_recvfrom(server, 65535)
        (qid,) = struct.unpack_from("!H", wire)
        for what in sends:
            if what == "garbage":
                server.sendto(struct.pack("!H", qid) + b"\x80\x00not dns at all", client)
            elif what == "wrong id":
                server.sendto(marked(struct.pack("!H", qid ^ 1) + wire[2:], "192.0.2.66"), client)
            elif what == "wrong question":
                other_query = dns.message.make_query("evil.example.", A)
                other_query.id = qid
                server.sendto(marked(other_query.to_wire(), "192.0.2.66"), client)
            elif what == "other port":
                other.sendto(marked(wire, "192.0.2.66"), client)
            else:
                server.sendto(marked(wire, "192.0.2.1"), client)

    return server, other, asyncio.ensure_future(serve())


@pytest.mark.parametrize("way", WATCHED)
@pytest.mark.parametrize("sends", [["real"], ["garbage", "wrong id", "wrong question", "other port", "real"]])
def test_only_the_real_reply_is_accepted(sends: list[str], way: str) -> None:
    async def run() -> dns.message.Message:
        server, other, task = await scripted_server(sends)
        try:
            return await udp_exchange("127.0.0.1", server.getsockname()[1], WWW, A, True, timeout=5.0,
                                      poller=watcher(way))
        finally:
            await task
            server.close()
            other.close()

    reply = asyncio.run(run())
    assert [rdata.to_text() for rdata in reply.answer[0]] == ["192.0.2.1"]


@pytest.mark.parametrize("way", WATCHED)
def test_forged_replies_alone_end_in_a_timeout(way: str) -> None:
    async def run() -> None:
        server, other, task = await scripted_server(["garbage", "wrong id", "wrong question", "other port"])
        try:
            with pytest.raises(dns.exception.Timeout):
                await udp_exchange("127.0.0.1", server.getsockname()[1], WWW, A, True, timeout=0.5,
                                   poller=watcher(way))
        finally:
            await task
            server.close()
            other.close()

    asyncio.run(run())


@pytest.mark.parametrize("way", WATCHED)
def test_each_query_has_its_own_source_port_and_id(way: str) -> None:
    async def run() -> list[tuple[int, int]]:
        loop = asyncio.get_running_loop()
        server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        server.bind(("127.0.0.1", 0))
        server.setblocking(False)
        poller = watcher(way)
        seen = []
        try:
            for _ in range(8):
                ask = asyncio.ensure_future(udp_exchange("127.0.0.1", server.getsockname()[1], WWW, A, True, 5.0,
                                                         poller=poller))
                wire, client = await loop.sock_recvfrom(server, 65535)
                seen.append((client[1], struct.unpack_from("!H", wire)[0]))
                server.sendto(marked(wire, "192.0.2.1"), client)
                await ask
        finally:
            server.close()
        return seen

    seen = asyncio.run(run())
    assert len({port for port, _ in seen}) > 1 and len({qid for _, qid in seen}) > 1


@pytest.mark.parametrize("way", WATCHED)
def test_a_port_unreachable_ends_the_exchange_at_once(way: str) -> None:
    """The kernel's ICMP error on the connected socket reaches the exchange as an OSError, not a timeout."""
    async def run() -> None:
        closed = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
        closed.close()  # nothing listens there now: the kernel answers with port unreachable
        with pytest.raises(ConnectionRefusedError):
            await udp_exchange("127.0.0.1", port, WWW, A, True, timeout=30.0, poller=watcher(way))

    asyncio.run(asyncio.wait_for(run(), 10.0))


@pytest.mark.parametrize("way", WATCHED)
def test_many_exchanges_at_once_each_get_their_own_reply(way: str) -> None:
    """Sockets closed and their descriptors reused while others still wait: every exchange ends
    with the reply to its own question, answered in reverse order of asking."""
    names = [dns.name.from_text(f"n{index}.example.") for index in range(40)]

    async def run() -> list[str]:
        loop = asyncio.get_running_loop()
        server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        server.bind(("127.0.0.1", 0))
        server.setblocking(False)
        poller = watcher(way)
        try:
            asks = [asyncio.ensure_future(udp_exchange("127.0.0.1", server.getsockname()[1], name, A, True, 5.0,
                                                       poller=poller)) for name in names]
            queries = [await loop.sock_recvfrom(server, 65535) for _ in names]
            for wire, client in reversed(queries):
                server.sendto(marked(wire, "192.0.2.1"), client)
            replies = await asyncio.gather(*asks)
        finally:
            server.close()
            if poller is not None:
                assert not poller.busy  # every socket forgotten
                poller.close()
        return [reply.answer[0].name.to_text() for reply in replies]

    assert asyncio.run(run()) == [name.to_text() for name in names]


# --- merging identical questions in flight ------------------------------------------------------


def query(address: str, zone: str = "com.", name: str = "example.com.", purpose: str = "minimised") -> Query:
    return Query(address, dns.name.from_text(name), A, dns.name.from_text(zone), 1.0, purpose=purpose)


def test_identical_questions_in_flight_are_sent_once_whatever_server_each_chose() -> None:
    sent: list[Query] = []

    class Recording(Upstream):
        async def send(self, query: Query, timeout: float) -> dns.message.Message:
            sent.append(query)
            await asyncio.sleep(0.01)
            return dns.message.make_response(dns.message.make_query(query.qname, query.qtype))

    async def run() -> list[Exchange]:
        upstream = Recording(53)
        return await asyncio.gather(
            upstream.exchange(query("127.0.2.1"), 1.0, 5.0),
            upstream.exchange(query("127.0.2.2", purpose="resolve"), 1.0, 5.0),
            upstream.exchange(query("127.0.2.1", zone="."), 1.0, 5.0),  # another zone: its own question
            upstream.exchange(query("127.0.2.1"), 1.0, 5.0, merge=False),  # a traced lookup sends its own
        )

    first, joined, other_zone, unmerged = asyncio.run(run())
    assert len(sent) == 3
    assert not first.shared and not other_zone.shared and not unmerged.shared
    # The joiner reads the shared reply as an answer to its own query, from the server that sent it.
    assert joined.shared and joined.reply is first.reply
    assert joined.query.address == "127.0.2.1" and joined.query.purpose == "resolve"


def test_a_failure_is_shared_too() -> None:
    class Silent(Upstream):
        async def send(self, query: Query, timeout: float) -> dns.message.Message:
            await asyncio.sleep(0.01)
            raise dns.exception.Timeout()

    async def run() -> list[Exchange]:
        upstream = Silent(53)
        return await asyncio.gather(upstream.exchange(query("127.0.2.1"), 1.0, 5.0),
                                    upstream.exchange(query("127.0.2.2"), 1.0, 5.0))

    first, joined = asyncio.run(run())
    assert isinstance(first.error, dns.exception.Timeout) and not first.shared
    assert isinstance(joined.error, dns.exception.Timeout) and joined.shared
    assert joined.query.address == "127.0.2.1"


async def ask_all(host: str, port: int, names: list[str]) -> list[dns.message.Message]:
    """Every name asked of the resolver at once, as many clients would."""
    return await asyncio.gather(*(dns.asyncquery.udp(dns.message.make_query(name, A), host, port=port, timeout=10.0)
                            for name in names))


def test_concurrent_cold_lookups_under_one_zone_ask_the_root_and_tld_once() -> None:
    """20 names under example.com at once, cache empty: one priming query, one referral
    question to the root and one to com, counted by the lab servers themselves."""
    names = [f"n{i}.example.com." for i in range(20)]
    with DnsLab(keep_traces=False) as lab:
        roots = [s for s in lab.servers if any("root-servers" in n for n in s.names)]
        tlds = [s for s in lab.servers if any(n.endswith("nic.com.") for n in s.names)]
        assert roots and tlds
        for server in roots:
            server.delay(200)  # every client question is in before the priming reply comes back
        host, port = lab.resolver_address

        replies = asyncio.run(ask_all(host, port, names))
        assert all(reply.rcode() == dns.rcode.NXDOMAIN for reply in replies)
        to_root = sum((server.queries for server in roots), start=Counter())
        to_com = sum((server.queries for server in tlds), start=Counter())
        assert to_root == {(".", "NS"): 1, ("com.", "A"): 1}
        assert to_com == {("example.com.", "A"): 1}
        stats = lab.call(lambda: lab.lab.resolver.stats)  # type: ignore[union-attr]
        assert stats.merged_queries >= 3 * (len(names) - 1)


def test_a_dead_server_met_by_many_merged_lookups_counts_one_timeout() -> None:
    """The lookups that joined the timed-out exchange move on to the other server without
    each charging the dead one a timeout of its own (which would hold it down at once)."""
    names = [f"d{i}.example.com." for i in range(20)]
    with DnsLab(keep_traces=False) as lab:
        for server in lab.servers:
            if any("root-servers" in n for n in server.names):
                server.delay(200)
        dead = lab.server("a.nic.com.").down()
        host, port = lab.resolver_address

        replies = asyncio.run(ask_all(host, port, names))
        assert all(reply.rcode() == dns.rcode.NXDOMAIN for reply in replies)
        resolver = lab.lab.resolver
        assert resolver is not None
        view = lab.call(lambda: resolver.infra.view(dead.address))
        assert view.timeouts <= 1
        assert sum(dead.queries.values()) <= 1


def test_round_trips_are_timed_to_the_microsecond_also_on_uvloop() -> None:
    """uvloop's loop.time() ticks in whole milliseconds; `dnslab up` runs on it, and timing an exchange
    with it gave "0 ms" for every quick loopback reply (issue 15, item 8)."""
    uvloop = pytest.importorskip("uvloop")
    with DnsLab() as lab:
        upstream = Upstream(lab.port)
        query = Query("127.0.3.1", dns.name.from_text("www.example.com."), A, dns.name.from_text("example.com."), 2.0)

        async def times() -> list[float]:
            return [(await upstream.exchange(query, 2.0, 2.0, merge=False)).rtt for _ in range(5)]

        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            rtts = runner.run(times())
    assert all(rtt > 0 for rtt in rtts)
    assert any(round(rtt * 1000, 6) % 1 for rtt in rtts)  # not whole milliseconds, as uv_now() would give


@pytest.mark.parametrize("epoll", [True, False])
def test_one_upstream_serves_one_loop_after_another(epoll: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """The epoll set belongs to the loop it was made on: a resolver used from a second loop (each test's
    asyncio.run) gets a new one; without epoll (macOS, BSD) each socket is the loop's own reader."""
    if not epoll:
        monkeypatch.setattr(Poller, "available", False)
    elif not Poller.available:
        pytest.skip("no epoll here")
    with DnsLab() as lab:
        upstream = Upstream(lab.port)
        query = Query("127.0.3.1", dns.name.from_text("www.example.com."), A, dns.name.from_text("example.com."), 2.0)

        async def ask() -> tuple[list[str], Poller | None]:
            exchange = await upstream.exchange(query, 2.0, 2.0, merge=False)
            assert exchange.error is None and exchange.reply is not None
            return [rdata.to_text() for rdata in exchange.reply.answer[0]], upstream._poller

        first, first_poller = asyncio.run(ask())
        second, second_poller = asyncio.run(ask())
    assert first == second and first
    if epoll:
        assert first_poller is not None and second_poller is not None and first_poller is not second_poller
    else:
        assert first_poller is None and second_poller is None
