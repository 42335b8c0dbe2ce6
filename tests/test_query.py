"""`dnslab query`: real packets on loopback, read back in dig's layout and as JSON.

Most tests ask an authoritative server started in-process on an ephemeral
port, so the replies are fixed by a zone written here; a few ask the sample
lab's resolver, as a user would. The expected text is dig 9.18's, copied
from real dig runs against the lab; only the ID, timing and clock vary, and
those are taken from the result, never asserted against the wall clock.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import re
import socket
import threading
from typing import Iterator

import dns.edns
import dns.flags
import dns.message
import dns.rcode
import pytest

from dnslab.core.errors import DnslabError
from dnslab.lab.runtime import Lab
from dnslab.services.query import QueryResult, format_dig, parse_query_args, send_query, to_json
from dnslab.authority.server import AuthoritativeServer
from dnslab.services.transport import DnsListener
from dnslab.core.zone import load_zone_text

# 6 x 250-byte strings: over 1232 bytes however packed, so UDP gets TC=1.
BIG = [chr(ord("a") + i) * 250 for i in range(6)]
ZONE = "\n".join([
    "$ORIGIN query.test.",
    "$TTL 3600",
    "@ SOA ns1 hostmaster 1 7200 3600 1209600 300",
    "@ NS ns1",
    "ns1 A 127.0.0.1",
    "www 300 A 192.0.2.1",
    "www 300 A 192.0.2.2",
    "www 300 AAAA 2001:db8::1",
    "@ MX 10 mail",
    "mail A 192.0.2.10",
    "abcdefghijkl.query.test. A 192.0.2.24",  # 24 characters with the dot: dig puts one space
    "a-name-well-past-the-ttl-column.query.test. 86400 A 192.0.2.40",  # past the TTL and class columns
    *(f'big TXT "{s}"' for s in BIG),
])


class Serving:
    """An authoritative server for ZONE on 127.0.0.1, port 0, on an event loop in a daemon thread."""

    def __init__(self) -> None:
        loaded = load_zone_text(ZONE)
        assert loaded.zone is not None, loaded.problems
        self.listener = DnsListener("127.0.0.1", 0, AuthoritativeServer([loaded.zone]).handle)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def __enter__(self) -> int:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.listener.start(), self.loop).result(timeout=30)
        return self.listener.port

    def __exit__(self, *exc_info: object) -> None:
        asyncio.run_coroutine_threadsafe(self.listener.stop(), self.loop).result(timeout=30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()


@pytest.fixture(scope="module")
def port() -> Iterator[int]:
    with Serving() as bound:
        yield bound


def ask(port: int, name: str, rdtype: str = "A", **options: object) -> QueryResult:
    return send_query(name, rdtype, "127.0.0.1", port, timeout=5.0, **options)  # type: ignore[arg-type]


def tail(result: QueryResult, transport: str = "UDP") -> list[str]:
    """dig's statistics lines, with the values only the result knows."""
    return [
        f";; Query time: {int(result.elapsed_ms)} msec",
        f";; SERVER: 127.0.0.1#{result.port}(127.0.0.1) ({transport})",
        f";; WHEN: {result.when.strftime('%a %b %d %H:%M:%S %Z %Y')}",
        f";; MSG SIZE  rcvd: {result.size}",
    ]


def sections(text: str) -> list[str]:
    return re.findall(r"^;; (\w+) (?:SECTION|PSEUDOSECTION):$", text, re.M)


# --- the dig layout --------------------------------------------------------------------------------

def test_answer_reads_like_dig(port: int) -> None:
    result = ask(port, "www.query.test")
    text = format_dig(result)
    assert text == "\n".join([
        ";; Got answer:",
        f";; ->>HEADER<<- opcode: QUERY, status: NOERROR, id: {result.reply.id}",
        ";; flags: qr aa rd; QUERY: 1, ANSWER: 2, AUTHORITY: 0, ADDITIONAL: 1",
        ";; WARNING: recursion requested but not available",
        "",
        ";; OPT PSEUDOSECTION:",
        "; EDNS: version: 0, flags:; udp: 1232",
        ";; QUESTION SECTION:",
        ";www.query.test.\t\t\tIN\tA",  # real dig: three tabs for a 15-character name
        "",
        ";; ANSWER SECTION:",
        "www.query.test.\t\t300\tIN\tA\t192.0.2.1",
        "www.query.test.\t\t300\tIN\tA\t192.0.2.2",
        "",
        *tail(result),
    ]) + "\n"
    assert sections(text) == ["OPT", "QUESTION", "ANSWER"]  # empty AUTHORITY and ADDITIONAL left out
    assert not result.tcp and not result.retried_over_tcp
    assert result.server == "127.0.0.1" and result.port == port
    assert result.when.tzinfo is not None  # WHEN shows the zone, as dig does
    assert result.size == len(result.reply.to_wire())  # no compression to lose in this small reply


def test_columns_follow_digs_tab_stops(port: int) -> None:
    """masterdump.c's rule: tab to the column, or one space once the text has reached it."""
    text = format_dig(ask(port, "abcdefghijkl.query.test", "A"))
    assert "\n;abcdefghijkl.query.test.\tIN\tA\n" in text
    assert "\nabcdefghijkl.query.test. 3600\tIN\tA\t192.0.2.24\n" in text
    # dig: "10.2.0.192.in-addr.arpa. 3600	IN	PTR	mail.example.com." (24 characters, one space)
    # Past every column: single spaces; the question's ";" is not counted, so IN A gets a space, not a tab.
    text = format_dig(ask(port, "a-name-well-past-the-ttl-column.query.test", "A"))
    assert "\n;a-name-well-past-the-ttl-column.query.test. IN A\n" in text
    assert "\na-name-well-past-the-ttl-column.query.test. 86400 IN A 192.0.2.40\n" in text
    mx = format_dig(ask(port, "query.test", "MX"))
    assert "\nquery.test.\t\t3600\tIN\tMX\t10 mail.query.test.\n" in mx
    assert ";query.test.\t\t\tIN\tMX\n" in mx  # dig: ";example.com.			IN	SOA"


def test_nxdomain_shows_the_soa_in_authority(port: int) -> None:
    result = ask(port, "nope.query.test")
    text = format_dig(result)
    assert result.reply.rcode() == dns.rcode.NXDOMAIN
    assert "status: NXDOMAIN" in text
    assert ";; flags: qr aa rd; QUERY: 1, ANSWER: 0, AUTHORITY: 1, ADDITIONAL: 1\n" in text
    assert sections(text) == ["OPT", "QUESTION", "AUTHORITY"]
    # The SOA's TTL is the negative-caching TTL (RFC 2308 §3): min(SOA TTL, SOA minimum).
    assert ";; AUTHORITY SECTION:\nquery.test.\t\t300\tIN\tSOA\tns1.query.test. hostmaster.query.test. " \
           "1 7200 3600 1209600 300\n\n;; Query time:" in text


def test_norecurse_clears_rd(port: int) -> None:
    result = ask(port, "www.query.test", recurse=False)
    text = format_dig(result)
    assert not result.reply.flags & dns.flags.RD  # the server echoes the query's RD bit
    assert ";; flags: qr aa; QUERY: 1," in text
    assert "WARNING: recursion requested" not in text
    assert "rd" not in to_json(result)["flags"]


def test_ede_is_shown_as_dig_shows_it(port: int) -> None:
    """A name outside the server's zones: REFUSED with Extended DNS Error 20, as NSD sends it."""
    result = ask(port, "www.example.org", recurse=False)
    text = format_dig(result)
    assert "status: REFUSED" in text
    assert "; EDNS: version: 0, flags:; udp: 1232\n; EDE: 20 (Not Authoritative)\n;; QUESTION SECTION:\n" in text
    assert to_json(result)["edns"]["options"] == [
        {"code": 15, "name": "EDE", "info_code": 20, "info": "Not Authoritative", "text": None}]


def test_without_edns_there_is_no_opt_pseudosection(port: int) -> None:
    result = ask(port, "www.query.test", edns=False)
    text = format_dig(result)
    assert "ADDITIONAL: 0" in text and "OPT PSEUDOSECTION" not in text
    assert sections(text) == ["QUESTION", "ANSWER"]
    assert to_json(result)["edns"] is None


def test_edns_options_and_odd_bits_like_dig() -> None:
    """Options the lab does not send, from a message built here: EDE with text, NSID, an unknown option."""
    query = dns.message.make_query("x.test.", "A", use_edns=0, payload=1232)
    reply = dns.message.make_response(query)
    reply.use_edns(0, dns.flags.DO, 1232, options=[
        dns.edns.EDEOption(22, "no server answered"),
        dns.edns.GenericOption(3, b"ns1"),
        dns.edns.GenericOption(65001, b"\x01A"),
        dns.edns.EDEOption(99),
    ])
    reply.flags |= 0x0040  # the Z bit
    result = QueryResult(reply, "::1", 53, False, 0.4, 100, datetime.datetime.now().astimezone(), False)
    text = format_dig(result)
    assert ";; flags: qr rd; MBZ: 0x4; QUERY: 1, ANSWER: 0, AUTHORITY: 0, ADDITIONAL: 1\n" in text
    assert "\n".join([
        "; EDNS: version: 0, flags: do; udp: 1232",
        "; EDE: 22 (No Reachable Authority): (no server answered)",
        '; NSID: 6e 73 31 ("ns1")',
        '; OPT=65001: 01 41 (".A")',
        "; EDE: 99",
    ]) in text
    assert ";; Query time: 0 msec\n;; SERVER: ::1#53(::1) (UDP)\n" in text
    assert to_json(result)["edns"]["flags"] == ["do"]
    assert to_json(result)["edns"]["options"][0]["text"] == "no server answered"


# --- truncation and TCP ----------------------------------------------------------------------------

def test_truncated_answer_is_retried_over_tcp(port: int) -> None:
    result = ask(port, "big.query.test", "TXT")
    assert result.tcp and result.retried_over_tcp
    assert result.size > 1232 and not result.reply.flags & dns.flags.TC
    assert sorted(rdata.strings[0].decode() for rdata in result.reply.answer[0]) == BIG  # type: ignore[attr-defined]
    text = format_dig(result)
    assert text.startswith(";; Truncated, retrying in TCP mode.\n;; Got answer:\n")
    assert text.endswith("\n".join(tail(result, "TCP")) + "\n")
    assert to_json(result)["transport"] == "tcp" and to_json(result)["retried_over_tcp"] is True


def test_tcp_from_the_start(port: int) -> None:
    result = ask(port, "www.query.test", tcp=True)
    assert result.tcp and not result.retried_over_tcp
    assert f";; SERVER: 127.0.0.1#{port}(127.0.0.1) (TCP)\n" in format_dig(result)
    assert "Truncated" not in format_dig(result)


def test_big_answer_through_the_sample_resolver(sample_lab: Lab) -> None:
    assert sample_lab.resolver_address is not None
    result = send_query("big.example.com", "TXT", sample_lab.resolver_address, sample_lab.actual_port)
    assert result.retried_over_tcp and result.tcp
    assert result.reply.flags & dns.flags.RA
    assert len(result.reply.answer[0]) == 10
    text = format_dig(result)
    assert ";; flags: qr rd ra; QUERY: 1, ANSWER: 10, AUTHORITY: 0, ADDITIONAL: 1\n" in text
    assert f";; SERVER: {sample_lab.resolver_address}#{sample_lab.actual_port}" \
           f"({sample_lab.resolver_address}) (TCP)\n" in text


def test_nxdomain_through_the_sample_resolver(sample_lab: Lab) -> None:
    assert sample_lab.resolver_address is not None
    result = send_query("nope.example.com", "A", sample_lab.resolver_address, sample_lab.actual_port)
    text = format_dig(result)
    assert "status: NXDOMAIN" in text and sections(text) == ["OPT", "QUESTION", "AUTHORITY"]
    assert re.search(r"^example\.com\.\t\t\d+\tIN\tSOA\tns1\.example\.com\. hostmaster\.example\.com\. ", text, re.M)


# --- JSON ------------------------------------------------------------------------------------------

def test_to_json_fields(port: int) -> None:
    result = ask(port, "www.query.test", "AAAA")
    data = to_json(result)
    assert json.loads(json.dumps(data)) == data  # plain JSON types only
    assert {k: data[k] for k in ("server", "port", "transport", "size", "id", "opcode", "rcode", "flags")} == {
        "server": "127.0.0.1", "port": port, "transport": "udp", "size": result.size,
        "id": result.reply.id, "opcode": "QUERY", "rcode": "NOERROR", "flags": ["qr", "aa", "rd"]}
    assert isinstance(data["elapsed_ms"], float)
    assert data["edns"] == {"version": 0, "udp": 1232, "flags": [], "options": []}
    assert data["question"] == [{"name": "www.query.test.", "type": "AAAA", "class": "IN"}]
    assert data["answer"] == [{"name": "www.query.test.", "ttl": 300, "class": "IN", "type": "AAAA",
                               "data": "2001:db8::1"}]
    assert data["authority"] == [] and data["additional"] == []  # the OPT record is under "edns"


# --- the command's words ---------------------------------------------------------------------------

@pytest.mark.parametrize(("words", "expected"), [
    (["www.example.com"], ("www.example.com", "A", None)),
    (["www.example.com", "MX"], ("www.example.com", "MX", None)),
    (["www.example.com", "mx"], ("www.example.com", "MX", None)),
    (["MX", "www.example.com"], ("www.example.com", "MX", None)),  # TYPE NAME, when NAME is no type
    (["@127.0.0.1", "www.example.com", "AAAA"], ("www.example.com", "AAAA", "127.0.0.1")),
    (["www.example.com", "@127.0.3.1", "txt"], ("www.example.com", "TXT", "127.0.3.1")),
    (["mx"], ("mx", "A", None)),  # a lone word is the name (dig would ask for ".")
    (["mx", "txt"], ("mx", "TXT", None)),  # both types: the first is the name
    (["example.com", "type65534"], ("example.com", "TYPE65534", None)),
    (["example.com", "TYPE1"], ("example.com", "A", None)),
    (["@::1", "."], (".", "A", "::1")),
])
def test_parse_query_args(words: list[str], expected: tuple[str, str, str | None]) -> None:
    assert parse_query_args(words) == expected


@pytest.mark.parametrize(("words", "message"), [
    ([], "no name to look up"),
    (["@127.0.0.1"], "no name to look up"),
    (["@127.0.0.1", "@127.0.0.2", "www.example.com"], "two servers given (@127.0.0.1 and @127.0.0.2)"),
    (["www.example.com", "@"], "'@' needs a server"),
    (["www.example.com", "MXX"], "'MXX' is not a record type"),
    (["example.com", "IN", "MX"], "'IN' is a class"),
    (["a", "b", "c"], "too many words"),
    (["www..example.com"], "bad name 'www..example.com'"),
    (["x" * 64 + ".example.com"], "bad name"),
])
def test_parse_query_args_rejects_bad_input(words: list[str], message: str) -> None:
    with pytest.raises(DnslabError, match=re.escape(message)):
        parse_query_args(words)


# --- failures --------------------------------------------------------------------------------------

def test_silent_server_times_out_with_the_lab_hint() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:  # bound, never answers
        silent.bind(("127.0.0.1", 0))
        port = silent.getsockname()[1]
        with pytest.raises(DnslabError) as caught:
            send_query("www.example.com", "A", "127.0.0.1", port, timeout=0.5)
    assert str(caught.value) == (f"no reply from 127.0.0.1#{port} within 0.5 s: "
                                 "is the lab running? start it with ./scripts/up")


def test_nothing_listening_is_one_clear_line() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # Loopback answers a closed UDP port with ICMP port unreachable: refused, or at worst a timeout.
    for tcp in (False, True):
        with pytest.raises(DnslabError) as caught:
            send_query("www.example.com", "A", "127.0.0.1", port, tcp=tcp, timeout=0.5)
        assert f"127.0.0.1#{port}" in str(caught.value)
        assert "is the lab running? start it with ./scripts/up" in str(caught.value)
        assert "\n" not in str(caught.value)


def test_bad_name_or_type_fails_before_sending() -> None:
    with pytest.raises(DnslabError, match="unknown record type 'BOGUS'"):
        send_query("www.example.com", "BOGUS", "127.0.0.1", 9, timeout=0.5)
    with pytest.raises(DnslabError, match="bad name"):
        send_query("a" * 64 + ".com", "A", "127.0.0.1", 9, timeout=0.5)
    with pytest.raises(DnslabError, match="cannot find the address of server 'no-such-host.invalid'"):
        send_query("www.example.com", "A", "no-such-host.invalid", 9, timeout=0.5)
