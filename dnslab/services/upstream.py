"""Sending the iterator's queries: one cheap socket per UDP query, and one exchange per question in flight.

Two things make a cold resolver fast, and both live here rather than in the
iterator (which only says what to ask) or the resolver (which drives lookups):

* **Merging** (Unbound attaches identical subqueries to one mesh state and
  identical outgoing queries to one serviced query): when many lookups under
  the same uncached zone start at once, each would ask the root and the TLD
  the same delegation question.  `Upstream.exchange` keys a flight by what the
  answer depends on, (zone, name, type, transport), not by the server chosen:
  the first lookup sends, later ones wait for that exchange and are handed the
  same reply (or failure), marked *shared* so the server's RTT and failures are
  counted once.  Priming (`. NS` to the root) is such a question too, so
  concurrent cold lookups prime once.

* **A cheap UDP exchange**: a fresh non-blocking socket per query, connected
  to the server, read straight from a reader callback (through one epoll set
  for all of them, services/poller.py, where Linux has it).  That
  keeps what RFC 5452 asks (a random source port, chosen by the kernel for
  each socket, and a random ID) and what dnspython checked (replies only from
  the address and port asked, with our ID, QR set and our question; anything
  else, garbage included, is dropped and the wait goes on), at a fraction of
  the cost of dnspython's asyncio datagram endpoint per query.  Replies are
  read by dnslab.core.reader into the dnspython RRsets the classifier and
  the cache work on, without building a dns.message.Message.  TCP (after
  TC=1) stays with dnspython: it is rare.
"""

from __future__ import annotations

import _socket
import asyncio
import os
import socket
import struct
import time
from typing import Awaitable, NamedTuple

import dns.asyncbackend
import dns.asyncquery
import dns.edns
import dns.exception
import dns.flags
import dns.inet
import dns.message
import dns.name
import dns.rcode

from dnslab.core.reader import BadReply, Reply, read_reply
from dnslab.core.wire import DO_BIT, EDNS_UDP_SIZE, HEADER, MAX_MESSAGE, OPT, QR
from dnslab.resolution.iterator import Query
from dnslab.services.capture import UPSTREAM, Packet, Sink
from dnslab.services.poller import Poller

_QUESTION_TAIL = struct.Struct("!HH")
_LENGTH_BYTE = [bytes((length,)) for length in range(256)]  # a label's length octet
_OPT_RR = struct.Struct("!BHHIH")
_NSID_REQUEST = b"\x00\x03\x00\x00"  # EDNS option 3 (NSID, RFC 5001), empty: "who are you?"
_OPCODE_MASK = 0x7800
# A reply to these may leave the question out (dnspython's Message.is_response accepts that too).
_QUESTIONLESS_RCODES = frozenset({dns.rcode.FORMERR, dns.rcode.SERVFAIL, dns.rcode.NOTIMP, dns.rcode.REFUSED})

FlightKey = tuple[dns.name.Name, dns.name.Name, int, bool]
# Linux creates the socket non-blocking in the same call; elsewhere it takes a second one.
_NONBLOCK = getattr(socket, "SOCK_NONBLOCK", 0)
_INET4, _INET6, _DGRAM = int(socket.AF_INET), int(socket.AF_INET6), int(socket.SOCK_DGRAM) | _NONBLOCK
_ID_BATCH = 512  # query IDs drawn from the OS's random source at a time

_ids: list[int] = []
# A forked worker draws its own: IDs left over from the parent would repeat in every child.
os.register_at_fork(after_in_child=_ids.clear)


def random_id() -> int:
    """A query ID from the OS's cryptographic random source (RFC 5452 §9.2), as secrets.randbits(16)
    gives one, but drawn 256 at a time: one getrandom call per 256 queries instead of one each."""
    if not _ids:
        _ids.extend(memoryview(os.urandom(_ID_BATCH)).cast("H").tolist())
    return _ids.pop()


def build_query(qname: dns.name.Name, qtype: int, qid: int, edns: bool,
                dnssec: bool = False, nsid: bool = False) -> tuple[bytes, bytes]:
    """An iterative query (RD=0) and its question section, as bytes.

    The same message dnspython's make_query builds (one question, class IN,
    EDNS0 with our 1232-byte UDP size when *edns*, DO=1 with *dnssec*, an empty NSID
    option with *nsid*), without building a Message.
    """
    labels = qname.labels
    if labels and not labels[-1]:  # absolute: its wire form, as Name.to_wire() writes it, at a third of the cost
        name_wire = b"".join([_LENGTH_BYTE[len(label)] + label for label in labels])
    else:
        name_wire = qname.to_wire()  # type: ignore[assignment]  # (raises for a relative name, as before)
    question = name_wire + _QUESTION_TAIL.pack(qtype, 1)
    header = HEADER.pack(qid, 0, 1, 0, 0, 1 if edns else 0)
    if edns:
        options = _NSID_REQUEST if nsid else b""
        return header + question + _OPT_RR.pack(0, OPT, EDNS_UDP_SIZE, DO_BIT if dnssec else 0,
                                                len(options)) + options, question
    return header + question, question


def reply_matches(data: bytes, qid: int, question: bytes) -> bool:
    """Whether a datagram is the reply to our query: our ID, QR set, opcode QUERY, our question.

    The name in the question is compared without regard to ASCII case (a server
    may change it, RFC 4343), the type and class exactly.  As dnspython does, an
    error reply (FORMERR, SERVFAIL, NOTIMP, REFUSED) may leave the question out.
    """
    if len(data) < HEADER.size:
        return False
    ident, flags, qdcount = struct.unpack_from("!HHH", data)
    if ident != qid or not flags & QR or flags & _OPCODE_MASK:
        return False
    if qdcount == 0:
        return (flags & 0xF) in _QUESTIONLESS_RCODES
    if qdcount != 1:
        return False
    end = HEADER.size + len(question)
    got = data[HEADER.size:end]
    if got == question:  # (most servers echo the question as asked)
        return True
    return len(got) == len(question) and got[-4:] == question[-4:] and got[:-4].lower() == question[:-4].lower()


class Exchange(NamedTuple):
    """How one query went: the query as sent, and either the reply or the error.

    *shared* says this lookup joined another's exchange: the reply is real, but
    the server's RTT and failures were already counted by the lookup that sent it.
    """

    query: Query
    reply: Reply | dns.message.Message | None
    error: BaseException | None
    rtt: float
    shared: bool = False


class Upstream:
    """Sends iterator queries to port *port* of the servers' addresses."""

    def __init__(self, port: int, dnssec: bool = False, nsid: bool = False) -> None:
        self.port = port
        self.dnssec = dnssec  # DO=1 on every query: a validating resolver needs RRSIGs and NSEC records
        self.nsid = nsid  # an empty NSID option on every EDNS query (request_nsid)
        # Exchanges in flight, with the futures of the lookups that joined them.
        self._flights: dict[FlightKey, list[asyncio.Future[Exchange]]] = {}
        # `dnslab capture resolver`: our UDP queries and every datagram back (services/capture.py), and
        # while it runs, the local ends of our TCP exchanges in flight.
        self.tap: Sink | None = None
        self.tcp_endpoints: set[tuple[str, int]] = set()
        self._poller: Poller | None = None  # our UDP sockets' epoll set, on the loop we last ran on

    def _poller_on(self, loop: asyncio.AbstractEventLoop) -> Poller | None:
        """The epoll set our UDP sockets are watched through on *loop* (None where there is no epoll)."""
        poller = self._poller
        if poller is None or poller.loop is not loop:
            if not Poller.available:
                return None
            if poller is not None and not poller.busy:  # (a busy one is its loop's to keep)
                poller.close()
            poller = self._poller = Poller(loop)
        return poller

    async def exchange(self, query: Query, timeout: float, wait_limit: float, merge: bool = True) -> Exchange:
        """Send *query*, or, with *merge*, join the same question already in flight.

        *timeout* bounds a query we send; *wait_limit* bounds how long we wait
        for another lookup's exchange (the lookup's own deadline: the sender's
        timeout already bounds it, and a shorter wait would only find the same
        flight again).
        """
        key = (query.zone, query.qname, query.qtype, query.tcp)
        flights = self._flights
        if merge:
            waiters: list[asyncio.Future[Exchange]] = []
            flight = flights.setdefault(key, waiters)  # one hash of the key, whether ours or another's
            if flight is not waiters:
                return await self._join(flight, query, wait_limit)
        # Not loop.time(): uvloop's clock ticks in whole milliseconds (libuv's uv_now), so a
        # loopback exchange of 0.4 ms measured 0 or 1 ms, and traces and SRTTs said "0 ms".
        started = time.perf_counter()
        try:
            reply = await self.send(query, timeout)
            outcome = Exchange(query, reply, None, time.perf_counter() - started)
        except (dns.exception.DNSException, OSError, EOFError, ConnectionError) as exc:
            outcome = Exchange(query, None, exc, time.perf_counter() - started)
        except BaseException:  # cancelled (or a bug of ours): the lookups that joined it go on without it
            if merge:
                _settle(flights.pop(key), Exchange(query, None, ConnectionError("the exchange was cancelled"), 0.0))
            raise
        if merge:
            _settle(flights.pop(key), outcome)
        return outcome

    async def _join(self, waiters: list[asyncio.Future[Exchange]], query: Query, wait_limit: float) -> Exchange:
        """Wait up to *wait_limit* for the exchange in flight whose *waiters* these are, and read its
        outcome as ours.

        Each waiter has a future of its own, so a waiter cancelled or timed out leaves the
        exchange and the other waiters alone (as asyncio.shield would, at less cost).
        """
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[Exchange] = loop.create_future()
        waiters.append(waiter)
        expiry = loop.call_later(wait_limit, _expire, waiter)
        try:
            done = await waiter
        except dns.exception.Timeout:
            return Exchange(query, None, dns.exception.Timeout(), wait_limit, shared=True)
        finally:
            expiry.cancel()
        # Read as an answer to our own question (its purpose included), from the server that gave it.
        sent = done.query
        return Exchange(Query(sent.address, query.qname, query.qtype, query.zone, query.timeout, query.reason,
                              tcp=sent.tcp, edns=sent.edns, purpose=query.purpose, server=sent.server),
                        done.reply, done.error, done.rtt, shared=True)

    def send(self, query: Query, timeout: float) -> Awaitable[Reply | dns.message.Message]:
        """One query to one server, to await; raises dns.exception.Timeout, OSError or a parse error.

        Not a coroutine itself: it hands back the UDP or TCP exchange's, so the exchange
        runs one coroutine fewer deep (every cold lookup's queries go through here).
        """
        if query.tcp:
            return self._tcp(query, timeout)
        return udp_exchange(query.address, self.port, query.qname, query.qtype, query.edns, timeout,
                            self.dnssec, self.tap, self.nsid, self._poller_on(asyncio.get_running_loop()))

    async def _tcp(self, query: Query, timeout: float) -> dns.message.Message:
        """dnspython's TCP exchange (after TC=1: rare), with the same message a UDP query carries."""
        message = dns.message.make_query(query.qname, query.qtype, use_edns=0 if query.edns else False,
                                         payload=EDNS_UDP_SIZE, want_dnssec=self.dnssec and query.edns,
                                         options=[dns.edns.GenericOption(3, b"")] if self.nsid else None)
        message.flags &= ~dns.flags.RD  # iterative: we do the recursion
        if self.tap is not None:
            return await self._tcp_seen(message, query.address, timeout)
        return await dns.asyncquery.tcp(message, query.address, timeout=timeout, port=self.port)


    async def _tcp_seen(self, message: dns.message.Message, address: str, timeout: float) -> dns.message.Message:
        """dnspython's TCP exchange on a socket opened here, while a capture runs, so that its local
        address is known: `tcp_endpoints` lets the capture take the exchange's exact bytes where the
        lab server sees them (services/capture.py; dnspython hands back a parsed reply, not its bytes)."""
        started = time.perf_counter()
        backend = dns.asyncbackend.get_default_backend()
        async with await backend.make_socket(dns.inet.af_for_address(address), socket.SOCK_STREAM, 0, None,
                                             (address, self.port), timeout) as sock:
            local = tuple((await sock.getsockname())[:2])
            self.tcp_endpoints.add(local)  # type: ignore[arg-type]
            try:
                left = max(0.0, timeout - (time.perf_counter() - started))
                return await dns.asyncquery.tcp(message, address, timeout=left, port=self.port, sock=sock)
            finally:
                self.tcp_endpoints.discard(local)  # type: ignore[arg-type]


async def udp_exchange(address: str, port: int, qname: dns.name.Name, qtype: int, edns: bool,
                       timeout: float, dnssec: bool = False, tap: Sink | None = None,
                       nsid: bool = False, poller: Poller | None = None) -> Reply:
    """Ask once over UDP from a fresh socket (a kernel-chosen random port) and a random ID.

    The socket is connected, so the kernel delivers only datagrams from the
    server's address and port; of those, only a matching, parsable reply ends
    the wait (a forged or broken datagram is dropped, as with dnspython's
    ignore_unexpected and ignore_errors).  An ICMP error (port unreachable)
    ends it with the OSError, as dnspython's connected endpoint did.

    The socket is watched through *poller* (services/poller.py: one system call
    instead of eight), or without one, as the loop's own reader.
    """
    loop = asyncio.get_running_loop() if poller is None else poller.loop
    qid = random_id()
    wire, question = build_query(qname, qtype, qid, edns, dnssec, nsid)
    # The C socket type: socket.socket's Python layer (its __init__, close and reference
    # counting for makefile) is nothing a datagram read from the loop needs.
    sock = _socket.socket(_INET6 if ":" in address else _INET4, _DGRAM)
    try:
        if not _NONBLOCK:
            sock.setblocking(False)
        sock.connect((address, port))
        sock.send(wire)
        local = sock.getsockname()[:2] if tap is not None else None
        if tap is not None:
            tap(Packet(time.time(), local, (address, port), False, wire, UPSTREAM))
        fd = sock.fileno()
        done: asyncio.Future[Reply] = loop.create_future()

        def readable() -> None:
            while not done.done():
                try:
                    data = sock.recv(MAX_MESSAGE)
                except BlockingIOError:
                    return
                except OSError as exc:
                    done.set_exception(exc)
                    return
                if tap is not None:
                    tap(Packet(time.time(), (address, port), local, False, data, UPSTREAM))  # type: ignore[arg-type]
                if not reply_matches(data, qid, question):
                    continue
                try:
                    reply = read_reply(data)
                except BadReply:  # a broken datagram is no reply; keep waiting
                    continue
                done.set_result(reply)

        if poller is None:
            loop.add_reader(fd, readable)
        else:
            poller.watch(fd, readable)
        expiry = loop.call_later(timeout, _expire, done)
        try:
            return await done
        finally:
            expiry.cancel()
            if poller is None:
                loop.remove_reader(fd)
            else:
                poller.forget(fd)
    finally:
        sock.close()


def _settle(waiters: list[asyncio.Future[Exchange]], outcome: Exchange) -> None:
    """Hand a flight's outcome to the lookups that joined it (not those whose wait ended already)."""
    for waiter in waiters:
        if not waiter.done():  # (a waiter whose lookup was cancelled, or whose wait ran out)
            waiter.set_result(outcome)


def _expire(done: asyncio.Future[Reply] | asyncio.Future[Exchange]) -> None:
    if not done.done():
        done.set_exception(dns.exception.Timeout())
