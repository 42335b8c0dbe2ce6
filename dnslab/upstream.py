"""Sending the iterator's queries: one exchange per question in flight.

This lives here rather than in the iterator (which only says what to ask) or
the resolver (which drives lookups):

* **Merging** (Unbound attaches identical subqueries to one mesh state and
  identical outgoing queries to one serviced query): when many lookups under
  the same uncached zone start at once, each would ask the root and the TLD
  the same delegation question.  `Upstream.exchange` keys a flight by what the
  answer depends on, (zone, name, type, transport), not by the server chosen:
  the first lookup sends, later ones wait for that exchange and are handed the
  same reply (or failure), marked *shared* so the server's RTT and failures are
  counted once.  Priming (`. NS` to the root) is such a question too, so
  concurrent cold lookups prime once.

Sending itself is dnspython's (fresh random ID and source port per query,
replies matched on address, port, ID and question).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import dns.asyncquery
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode

from dnslab.wire import EDNS_UDP_SIZE

if TYPE_CHECKING:
    from dnslab.iterator import Query

FlightKey = tuple[dns.name.Name, dns.name.Name, int, bool]


@dataclass(frozen=True)
class Exchange:
    """How one query went: the query as sent, and either the reply or the error.

    *shared* says this lookup joined another's exchange: the reply is real, but
    the server's RTT and failures were already counted by the lookup that sent it.
    """

    query: Query
    reply: dns.message.Message | None
    error: BaseException | None
    rtt: float
    shared: bool = False


class Upstream:
    """Sends iterator queries to port *port* of the servers' addresses."""

    def __init__(self, port: int) -> None:
        self.port = port
        self._flights: dict[FlightKey, asyncio.Future[Exchange]] = {}
        self.merged = 0  # exchanges joined rather than sent, for the statistics

    async def exchange(self, query: Query, timeout: float, wait_limit: float, merge: bool = True) -> Exchange:
        """Send *query*, or, with *merge*, join the same question already in flight.

        *timeout* bounds a query we send; *wait_limit* bounds how long we wait
        for another lookup's exchange (the lookup's own deadline: the sender's
        timeout already bounds it, and a shorter wait would only find the same
        flight again).
        """
        key = (query.zone, query.qname, query.qtype, query.tcp)
        flight = self._flights.get(key) if merge else None
        if flight is not None:
            self.merged += 1
            try:
                done = await asyncio.wait_for(asyncio.shield(flight), wait_limit)
            except asyncio.TimeoutError:
                return Exchange(query, None, dns.exception.Timeout(), wait_limit, shared=True)
            # Read as an answer to our own question (its purpose included), from the server that gave it.
            sent = done.query
            return replace(done, query=replace(query, address=sent.address, server=sent.server, edns=sent.edns,
                                               tcp=sent.tcp), shared=True)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Exchange] | None = None
        if merge and key not in self._flights:
            future = loop.create_future()
            self._flights[key] = future
        outcome = Exchange(query, None, ConnectionError("the exchange was cancelled"), 0.0)
        started = loop.time()
        try:
            reply = await self.send(query, timeout)
            outcome = Exchange(query, reply, None, loop.time() - started)
        except (dns.exception.DNSException, OSError, EOFError, ConnectionError) as exc:
            outcome = Exchange(query, None, exc, loop.time() - started)
        finally:
            if future is not None:
                del self._flights[key]
                future.set_result(outcome)
        return outcome

    async def send(self, query: Query, timeout: float) -> dns.message.Message:
        """One query to one server; raises dns.exception.Timeout, OSError or a parse error."""
        message = dns.message.make_query(query.qname, query.qtype, use_edns=0 if query.edns else False,
                                         payload=EDNS_UDP_SIZE)
        message.flags &= ~dns.flags.RD  # iterative: we do the recursion
        if query.tcp:
            return await dns.asyncquery.tcp(message, query.address, timeout=timeout, port=self.port)
        # ignore_unexpected/ignore_errors: a forged or broken datagram is dropped and the wait
        # goes on for the real reply; dnspython checks source address, port, ID and question.
        return await dns.asyncquery.udp(message, query.address, timeout=timeout, port=self.port,
                                        ignore_unexpected=True, ignore_errors=True)
