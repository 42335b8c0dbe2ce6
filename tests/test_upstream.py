"""dnslab.upstream: merging identical upstream questions in flight."""

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

from dnslab.iterator import Query
from dnslab.testing import DnsLab
from dnslab.upstream import Exchange, Upstream

WWW = dns.name.from_text("www.Example.com.")
A = dns.rdatatype.A


def parsed_query(wire: bytes) -> dns.message.Message:
    return dns.message.from_wire(wire)


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

        async def ask_all() -> list[dns.message.Message]:
            return await asyncio.gather(*(dns.asyncquery.udp(dns.message.make_query(name, A), host, port=port,
                                                             timeout=10.0) for name in names))

        replies = asyncio.run(ask_all())
        assert all(reply.rcode() == dns.rcode.NXDOMAIN for reply in replies)
        to_root = sum((server.queries for server in roots), start=Counter())
        to_com = sum((server.queries for server in tlds), start=Counter())
        assert to_root == {(".", "NS"): 1, ("com.", "A"): 1}
        assert to_com == {("example.com.", "A"): 1}
        stats = lab.call(lambda: lab.lab.resolver.stats)  # type: ignore[union-attr]
        assert stats.merged_queries >= 3 * (len(names) - 1)
