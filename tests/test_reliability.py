"""Reliability and security properties, as fast bounded tests (the long runs: scripts/reliability-check).

- fuzz: random and mutated packets into the resolver's and an authoritative
  server's handle(): never an exception, and every reply a whole DNS message;
- poisoning: a malicious authoritative server's out-of-bailiwick, parent-zone
  and unasked-for data is neither returned nor cached;
- loops and limits: CNAME, DNAME and delegation loops, an NXNS-style referral
  and long chains end in SERVFAIL quickly, within the upstream-query budget;
- open resolver: clients outside the allow list get REFUSED; the control
  endpoint refuses requests without its token;
- zone input: mutated zone files give file:line problems, never exceptions.

The scenario builders (zone sets, the evil server, the packet and zone
mutators) live in tools/reliability.py (scripts/reliability-check), so that what this suite checks is
what the script measures at scale; docs/RELIABILITY.md has the figures.
Bugs found this way were fixed; their tests stay as regression tests.
"""

from __future__ import annotations

import asyncio
import inspect
import ipaddress
import json
import struct
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dnslab.lab.hierarchy import zone_files
from dnslab.services.resolver import RecursiveResolver
from dnslab.resolution.settings import ResolverSettings
from dnslab.authority.server import AuthoritativeServer
from dnslab.core.zone import load_zone_text, load_zones
from tools import reliability as rc

REPO = Path(__file__).resolve().parent.parent
SAMPLE_ZONES = REPO / "dnslab" / "zones"


HEADER = struct.Struct("!HHHHHH")
WWW = {"192.0.2.1", "192.0.2.2", "192.0.2.3"}


# --- fuzz: handle() of an authoritative server and of the resolver ----------------------------


def _fuzzed(seed: int) -> bytes:
    return rc.PacketFuzzer(seed).packet()


# Packets: the script's fuzzer (every kind), raw bytes, and hypothesis's own edits of valid queries.
_BASES = rc._base_queries()
_EDITED = st.tuples(st.sampled_from(_BASES), st.integers(0, 200), st.binary(max_size=8), st.integers(0, 3)).map(
    lambda t: t[0][:t[1]] + t[2] + t[0][t[1] + len(t[2]) * (t[3] % 2):])
PACKETS = st.one_of(st.integers(0, 2**32).map(_fuzzed), st.binary(max_size=300), _EDITED)


def _check_reply(wire: bytes, reply: bytes | None) -> None:
    if reply is None:
        return
    assert type(reply) is bytes
    assert len(reply) >= HEADER.size
    assert reply[:2] == wire[:2]  # the query's ID
    assert reply[2] & 0x80  # QR
    dns.message.from_wire(reply)  # a whole, well-formed message


@pytest.fixture(scope="module")
def sample_authority() -> AuthoritativeServer:
    zones, _ = load_zones(zone_files(SAMPLE_ZONES))
    return AuthoritativeServer([z for z in zones if z.origin.to_text() in ("example.com.", "eng.example.com.",
                                                                           "pages.net.", "com.", ".")])


def test_authoritative_handle_never_raises(sample_authority: AuthoritativeServer) -> None:
    @settings(max_examples=400, deadline=None, derandomize=True,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(wire=PACKETS, via_tcp=st.booleans())
    def run(wire: bytes, via_tcp: bool) -> None:
        reply = sample_authority.handle(wire, via_tcp)  # never raises
        _check_reply(wire, reply)
        if reply is not None and not via_tcp:
            assert len(reply) <= 1232

    run()
    reply = sample_authority.handle(dns.message.make_query("www.example.com", "A").to_wire())
    assert {r.address for rrset in dns.message.from_wire(reply).answer for r in rrset} == WWW


def test_question_label_over_63_octets_is_formerr(sample_authority: AuthoritativeServer) -> None:
    wire = HEADER.pack(0x1234, 0x0100, 1, 0, 0, 0) + bytes([64]) + b"a" * 64 + b"\x07example\x03com\x00" \
        + struct.pack("!HH", 1, 1)
    reply = sample_authority.handle(wire)
    assert reply is not None and dns.message.from_wire(reply).rcode() == dns.rcode.FORMERR


async def _handle(resolver: RecursiveResolver, wire: bytes, via_tcp: bool, peer: tuple[str, int]) -> bytes | None:
    reply = resolver.handle(wire, via_tcp, peer)
    if inspect.isawaitable(reply):
        reply = await reply
    return reply  # type: ignore[return-value]


def test_resolver_handle_never_raises(make_dns_lab: Any) -> None:
    # keep_traces=False: the resolver's wire-level fast path is on, as in `dnslab up`.
    lab = make_dns_lab(keep_traces=False,
                       resolver_settings=replace(ResolverSettings(), query_time_limit=2.0))
    resolver = lab.lab.resolver
    peer = ("127.0.0.1", 40000)

    @settings(max_examples=250, deadline=None, derandomize=True,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(wire=PACKETS, via_tcp=st.booleans())
    def run(wire: bytes, via_tcp: bool) -> None:
        _check_reply(wire, lab.run(_handle(resolver, wire, via_tcp, peer), timeout=30))

    run()
    for _ in range(2):  # still correct afterwards, on the full path and replayed by the fast path
        answer = lab.resolver.resolve("www.example.com", "A")
        assert {r.address for r in answer} == WWW


# --- poisoning -------------------------------------------------------------------------------


def _cache_records(lab: Any) -> list[Any]:
    return [rc.CacheRecord(e.name.to_text(), dns.rdatatype.to_text(e.rdtype), str(e.kind),
                           e.rrset.to_text().splitlines() if e.rrset is not None else [], e.source)
            for e in lab.cache.entries()]


def test_a_malicious_authoritative_server_plants_nothing(make_dns_lab: Any, tmp_path: Path) -> None:
    lab = make_dns_lab(zones=rc.write_poison_zones(tmp_path / "zones"))
    lines: list[str] = []
    with rc.EvilServer(lab.port) as evil:
        problems = rc.run_poison(lab.resolver_address, lambda: _cache_records(lab), lines.append)
    asked = {name for name, _ in evil.asked}
    for name, *_ in rc.POISON_QUERIES:  # every attack reached the resolver (minimised or in full)
        assert any(name == seen or name.endswith("." + seen) for seen in asked), (name, asked)
    assert problems == [], "\n".join(lines)
    # The victim's data in the cache came from the victim's server, the delegations from their parents.
    www = lab.cache.get("www.victim.test", "A")
    assert www is not None and {r.address for r in www.rrset} == {"192.0.2.10"}
    sources = {e.name.to_text(): e.source for e in lab.cache.entries() if e.rdtype == dns.rdatatype.NS}
    assert sources["test."] in ("127.0.60.1", "127.0.60.2")  # the root's referral or test.'s own answer
    assert sources["."] == "127.0.60.1"


def test_a_lame_delegation_does_not_hold_down_the_servers_own_zones(make_dns_lab: Any, tmp_path: Path) -> None:
    lab = make_dns_lab(zones=rc.write_poison_zones(tmp_path / "zones"))
    assert rc.run_third_party_hold_down(lab.resolver_address) == []


# --- loops and limits ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def limits_zones(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return rc.write_limits_zones(tmp_path_factory.mktemp("limits") / "zones")


@pytest.mark.parametrize("case", rc.limit_cases(), ids=lambda case: case.name.rstrip("."))
def test_loops_and_limits_end_quickly_within_the_budget(make_dns_lab: Any, limits_zones: Path, case: Any) -> None:
    lab = make_dns_lab(zones=limits_zones)
    before = {server.address: sum(server.queries.values()) for server in lab.servers}
    started = time.monotonic()
    reply = rc.ask(lab.resolver_address, case.name, case.rdtype, timeout=8)
    elapsed = time.monotonic() - started
    assert dns.rcode.to_text(reply.rcode()) == case.rcode
    done = [e for e in lab.last_trace if e["event"] == "done" and e["depth"] == 0]
    assert done and done[-1]["upstream_queries"] <= case.max_upstream
    received = {server.address: sum(server.queries.values()) - before[server.address] for server in lab.servers}
    assert sum(received.values()) <= case.max_upstream
    if "NXNS" in case.what:
        assert received["127.0.70.8"] <= 5  # max_glueless: 5 of the 100 names looked up, no more
    assert elapsed < 2.0  # the script holds it to 1 s; a noisy CI machine gets some room


# --- open resolver ----------------------------------------------------------------------------


def test_refused_outside_the_allow_list_without_resolving() -> None:
    hints = [(dns.name.from_text("a.root-servers.net."), "127.0.1.1")]
    resolver = RecursiveResolver(hints, ResolverSettings(allow=(ipaddress.ip_network("10.0.0.0/8"),),
                                                         query_time_limit=1.0))

    async def ask_it(rd: bool) -> bytes | None:
        query = dns.message.make_query("www.example.com", "A")
        if not rd:
            query.flags &= ~dns.flags.RD
        return await _handle(resolver, query.to_wire(), False, ("127.0.0.1", 5353))

    for rd in (True, False):
        started = time.monotonic()
        reply = dns.message.from_wire(asyncio.run(ask_it(rd)))
        assert reply.rcode() == dns.rcode.REFUSED and not reply.answer and not reply.authority
        assert time.monotonic() - started < 0.5  # answered at once, not after a lookup
    assert resolver.stats.upstream_queries == 0


def test_a_client_outside_the_allow_list_gets_refused(make_dns_lab: Any) -> None:
    lab = make_dns_lab(keep_traces=False, resolver_settings=replace(
        ResolverSettings(), allow=(ipaddress.ip_network("127.0.0.9/32"),)))
    allowed = rc.ask(lab.resolver_address, "www.example.com", source="127.0.0.9")
    assert rc.addresses(allowed) == WWW
    # The same question again from outside: the answer is cached (and ready for the fast path),
    # but an outsider still gets REFUSED, over UDP and TCP, with RD=1 and RD=0.
    for source in ("127.0.0.2", "127.0.0.1"):
        for tcp in (False, True):
            for rd in (True, False):
                for name in ("www.example.com", "refused-probe.example.com"):
                    reply = rc.ask(lab.resolver_address, name, rd=rd, tcp=tcp, source=source)
                    assert dns.rcode.to_text(reply.rcode()) == "REFUSED", (source, tcp, rd, name)
                    assert not reply.answer and not reply.authority
    asked = [key for server in lab.servers for key in server.queries if "refused-probe" in key[0]]
    assert asked == []


def test_the_control_endpoint_refuses_requests_without_the_token(make_dns_lab: Any) -> None:
    lab = make_dns_lab()
    control = lab.lab.control
    token = control.token
    wrong: list[Any] = [None, "", "0" * 64, token[:-1], token + "0", token.upper(), 12345, [token]]
    for bad in wrong:
        request: dict[str, Any] = {"command": "fault", "args": {"server": "127.0.3.1", "kind": "down"}}
        if bad is not None:
            request["token"] = bad
        answer = rc.control_raw(control.port, json.dumps(request).encode() + b"\n")
        assert answer is not None and answer["ok"] is False and "token" in answer["error"]
    for payload in (b"not json\n", b"[1, 2]\n", b'{"command": "stats", "pad": "' + b"x" * 70_000 + b'"}\n'):
        answer = rc.control_raw(control.port, payload)
        assert answer is None or answer["ok"] is False
    assert lab.faults() == {"127.0.3.20": ["down"]}  # only lab.toml's start_down: no fault was set
    answer = rc.control_raw(control.port, json.dumps({"token": token, "command": "ping"}).encode() + b"\n")
    assert answer is not None and answer["ok"] is True


# --- found on the way ---------------------------------------------------------------------------


def test_record_set_with_a_name_inside_the_zone(make_dns_lab: Any) -> None:
    lab = make_dns_lab()
    lab.record_set("alias.example.com", "CNAME", "www.example.com.")
    answer = lab.resolver.resolve("alias.example.com", "A")
    assert {r.address for r in answer} == WWW


# --- zone input ----------------------------------------------------------------------------------

SAMPLE_TEXTS = [path.read_text() for path in sorted(SAMPLE_ZONES.glob("*.zone"))]


@settings(max_examples=300, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32), extra=st.text(max_size=40), at=st.integers(0, 10_000))
def test_mutated_zone_files_give_located_problems(seed: int, extra: str, at: int) -> None:
    text = rc.ZoneMutator(seed, SAMPLE_TEXTS).mutate()
    at %= len(text) + 1
    text = text[:at] + extra + text[at:]
    loaded = load_zone_text(text, filename="mutated.zone")  # never raises
    wrong = rc.check_problems(loaded.problems, text, "mutated.zone")
    assert wrong == []
    assert (loaded.zone is None) == bool(loaded.errors)


def test_bare_include_is_reported_on_one_line() -> None:
    text = "$ORIGIN x.test.\n$TTL 300\n@ SOA ns h 1 1 1 1 1\n@ NS ns\nns A 127.0.0.1\n$INCLUDE\n\nwww A 192.0.2.1\n"
    problems = load_zone_text(text, filename="f.zone").problems
    assert problems and all("\n" not in str(problem) for problem in problems)


def test_near_quotes_the_reported_line_after_a_form_feed() -> None:
    text = "$ORIGIN x.test.\n$TTL 300\n@ SOA ns h 1 1 1 1 1 ; a\x0cform feed\n@ NS ns\nns A 127.0.0.1\nbad A 999.1.1.1\n"
    problems = load_zone_text(text, filename="f.zone").problems
    assert [str(p) for p in problems] == [
        'f.zone:6: error: bad data "999.1.1.1" for the A record: expected an IPv4 address such as 192.0.2.1 '
        '(near: bad A 999.1.1.1)']
