"""Traffic steering: failover, weighted, nearest and all-healthy answers from endpoints' health.

The policies and the health checks (dnslab.authority.steering) are tested without sockets, on
given times and a seeded generator; then the sample lab's lb.example.com is asked real packets,
directly and through the resolver, on the fake clock.
"""

from __future__ import annotations

import random
import shutil
import socket
import time
from collections import Counter
from pathlib import Path

import dns.edns
import dns.flags
import dns.rcode
import dns.message
import dns.name
import dns.query
import dns.rdatatype
import pytest

from dnslab.authority.steering import (ECS, Endpoint, Health, Policy, Rule, Timeline, choose, client_subnet,
                                       parse)
from dnslab.core.errors import ConfigError, DnslabError
from dnslab.lab.runtime import SAMPLE_ZONES
from dnslab.testing import DnsLab

LB = "127.0.3.30"  # ns1.lb.example.com in the sample
NYC_SOURCE, SIN_SOURCE = "127.0.8.1", "127.0.8.2"


def rule(policy: Policy, *endpoints: Endpoint) -> Rule:
    return Rule(dns.name.from_text("svc.test."), dns.rdatatype.A, policy, endpoints)


A, B, C = Endpoint("192.0.2.1", 3, "ams"), Endpoint("192.0.2.2", 1, "nyc"), Endpoint("192.0.2.3", 1, "nyc")


# --- sans-I/O: health checks ----------------------------------------------------------------------


def test_health_changes_at_the_first_check_after_the_change() -> None:
    timeline, health = Timeline(0.0), Health(0.0, 10.0, 1)
    timeline.set(False, 12.0)  # the service dies at t=12
    health.catch_up(timeline, 19.9)
    assert health.healthy  # the check at t=10 saw it up; the next is at t=20
    health.catch_up(timeline, 20.0)
    assert not health.healthy and health.since == 20.0
    timeline.set(True, 21.0)
    health.catch_up(timeline, 30.0)
    assert health.healthy and health.since == 30.0


def test_a_threshold_needs_that_many_checks_in_a_row() -> None:
    timeline, health = Timeline(0.0), Health(0.0, 10.0, 3)
    timeline.set(False, 5.0)
    timeline.set(True, 25.0)  # down for the checks at 10 and 20 only: two, not three
    health.catch_up(timeline, 100.0)
    assert health.healthy
    timeline.set(False, 105.0)
    health.catch_up(timeline, 129.0)
    assert health.healthy  # checks at 110 and 120
    health.catch_up(timeline, 130.0)
    assert not health.healthy and health.since == 130.0


def test_catching_up_a_long_time_is_bounded() -> None:
    timeline, health = Timeline(0.0), Health(0.0, 0.1, 2)
    timeline.set(False, 50.0)
    started = time.process_time()
    health.catch_up(timeline, 10.0 ** 9)  # ten billion checks due: only the few that matter are run
    assert not health.healthy and abs(health.since - 50.1) < 1e-6
    assert time.process_time() - started < 1.0


# --- sans-I/O: the policies -----------------------------------------------------------------------


def test_failover_answers_the_first_healthy_endpoint() -> None:
    failover = rule(Policy.FAILOVER, A, B, C)
    rng = random.Random(1)
    assert choose(failover, {}, "", rng, 0) == (("192.0.2.1",), "the primary is healthy")
    addresses, why = choose(failover, {"192.0.2.1": False}, "", rng, 0)
    assert addresses == ("192.0.2.2",) and "first healthy" in why and "unhealthy: 192.0.2.1" in why
    everyone_down = dict.fromkeys(["192.0.2.1", "192.0.2.2", "192.0.2.3"], False)
    assert choose(failover, everyone_down, "", rng, 0)[0] == ("192.0.2.1",)  # Route 53: the primary


def test_weighted_answers_follow_the_weights_over_10000() -> None:
    weighted = rule(Policy.WEIGHTED, A, B, C)  # 3 : 1 : 1
    rng = random.Random(7)
    counts = Counter(choose(weighted, {}, "", rng, 0)[0][0] for _ in range(10_000))
    assert abs(counts["192.0.2.1"] / 10_000 - 0.6) < 0.02
    assert abs(counts["192.0.2.2"] / 10_000 - 0.2) < 0.02 and abs(counts["192.0.2.3"] / 10_000 - 0.2) < 0.02
    without_a = Counter(choose(weighted, {"192.0.2.1": False}, "", rng, 0)[0][0] for _ in range(10_000))
    assert set(without_a) == {"192.0.2.2", "192.0.2.3"} and abs(without_a["192.0.2.2"] / 10_000 - 0.5) < 0.02
    again = random.Random(7)  # seeded: the same sequence again
    assert [choose(weighted, {}, "", again, 0)[0] for _ in range(5)] == \
        [choose(weighted, {}, "", r, 0)[0] for r in [random.Random(7)] for _ in range(5)]


def test_nearest_and_all_healthy() -> None:
    nearest = rule(Policy.NEAREST, A, B, C)
    assert choose(nearest, {}, "ams", random.Random(), 0)[0] == ("192.0.2.1",)
    assert choose(nearest, {}, "nyc", random.Random(), 0)[0] == ("192.0.2.2", "192.0.2.3")
    assert choose(nearest, {"192.0.2.1": False}, "ams", random.Random(), 0)[0] == ("192.0.2.2", "192.0.2.3")
    assert choose(nearest, {}, "sin", random.Random(), 0)[1].startswith("no healthy endpoint at sin")
    pool = rule(Policy.ALL_HEALTHY, A, B, C)
    assert [choose(pool, {"192.0.2.2": False}, "", random.Random(), turn)[0] for turn in range(3)] == [
        ("192.0.2.1", "192.0.2.3"), ("192.0.2.3", "192.0.2.1"), ("192.0.2.1", "192.0.2.3")]
    assert len(choose(pool, dict.fromkeys(["192.0.2.1", "192.0.2.2", "192.0.2.3"], False), "",
                      random.Random(), 0)[0]) == 3  # none healthy: all (PowerDNS's ifportup)


def test_client_subnet_option() -> None:
    subnet = client_subnet([(10, b"x"), (ECS, bytes([0, 1, 24, 0, 127, 0, 8]))])
    assert subnet is not None and str(subnet.network) == "127.0.8.0/24"
    assert subnet.reply_option(24) == bytes([0, 1, 24, 24, 127, 0, 8])
    assert client_subnet([(ECS, bytes([0, 1, 24, 0, 127]))]) is None  # the address is too short
    assert client_subnet([(ECS, bytes([0, 3, 0, 0]))]) is None  # no such family


@pytest.mark.parametrize("table, message", [
    ({"x.test": {"policy": "roundrobin", "endpoints": ["192.0.2.1"]}}, "policy must be one of failover, weighted"),
    ({"x.test": {"policy": "failover", "endpoints": []}}, "endpoints must list one or more"),
    ({"x.test": {"policy": "failover", "endpoints": "192.0.2.1"}}, "endpoints must be a list"),
    ({"x.test": {"policy": "failover", "endpoints": ["2001:db8::1"]}}, "is not an A address"),
    ({"x.test": {"policy": "failover", "endpoints": ["192.0.2.1", "192.0.2.1"]}}, "listed twice"),
    ({"x.test": {"policy": "nearest", "endpoints": ["192.0.2.1"]}}, "nearest needs a location"),
    ({"x.test": {"policy": "failover", "endpoints": ["192.0.2.1"], "interval": 0}},
     "interval: expected a number from 0.1 to 86400 seconds, got 0"),
    ({"x.test": {"policy": "failover", "endpoints": ["192.0.2.1"], "threshold": 1.5}},
     "threshold: expected a whole number from 1 to 100, got 1.5"),
    ({"x.test": {"policy": "failover", "endpoints": [{"address": "192.0.2.1", "weight": -1}]}},
     "weight of 192.0.2.1: expected a number from 0 to 1000000, got -1"),
    ({"x.test": {"policy": "failover", "endpoints": [{"address": "192.0.2.1", "tcp": "192.0.2.1:80"}]}},
     "tcp checks go to loopback ports only"),
    ({"x.test": {"policy": "failover", "endpoints": ["192.0.2.1"], "ttl": 30, "colour": 1}}, "unknown key"),
])
def test_bad_steering_is_one_clear_error(table: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse(table, "lab.toml")


def test_a_steered_name_needs_its_zone_rrset(tmp_path: Path) -> None:
    folder = tmp_path / "zones"
    shutil.copytree(SAMPLE_ZONES, folder)
    toml = folder / "lab.toml"
    toml.write_text(toml.read_text() + '[steering."api.lb.example.com"]\npolicy = "failover"\nendpoints = ["192.0.2.1"]\n')
    with pytest.raises(DnslabError, match="zone lb.example.com. has no A records at api.lb.example.com."):
        DnsLab(folder)


def test_a_signed_zone_signs_its_steered_answers_online(tmp_path: Path) -> None:
    """As PowerDNS signs what its LUA records choose: each chosen RRset gets an RRSIG made then, with the
    zone's ZSK, so the validating resolver answers with AD before and after the failover."""
    with DnsLab(dnssec=True, keys_dir=tmp_path / "keys") as lab:
        def validated() -> tuple[list[str], bool]:
            query = dns.message.make_query("app.lb.example.com.", "A", want_dnssec=True)
            query.flags |= dns.flags.AD
            host, port = lab.resolver_address
            reply = dns.query.udp(query, host, port=port, timeout=5)
            return [r.address for r in reply.find_rrset(reply.answer, query.question[0].name, 1, 1)], \
                bool(reply.flags & dns.flags.AD)
        assert validated() == (["192.0.2.100"], True)
        lab.endpoint("192.0.2.100").down()
        lab.advance(30)  # a check interval and the TTL
        assert validated() == (["192.0.2.101"], True)
        direct = dns.message.make_query("app.lb.example.com.", "A", want_dnssec=True)
        reply = dns.query.udp(direct, LB, port=lab.port, timeout=5)
        assert [rrset.rdtype for rrset in reply.answer] == [dns.rdatatype.A, dns.rdatatype.RRSIG]
        lab.zone_fault("lb.example.com", "dnssec-bad-sig")  # the zone's faults spoil them too
        lab.cache.flush()
        assert dns.query.udp(direct, *lab.resolver_address[:1], port=lab.resolver_address[1],
                             timeout=5).rcode() == dns.rcode.SERVFAIL


# --- real packets ---------------------------------------------------------------------------------


def ask(lab: DnsLab, name: str, source: str | None = None, subnet: str | None = None) -> tuple[list[str], list[str]]:
    """The addresses ns1.lb.example.com answers *name* with, and the reply's EDNS options."""
    options = [dns.edns.ECSOption.from_text(subnet)] if subnet else []
    query = dns.message.make_query(name, "A", use_edns=0, options=options)
    reply = dns.query.udp(query, LB, port=lab.port, timeout=5, source=source)
    return [r.address for r in reply.answer[0]], [o.to_text() for o in reply.options]


@pytest.fixture()
def lab() -> DnsLab:
    with DnsLab() as running:
        yield running  # type: ignore[misc]


def test_failover_moves_within_one_check_interval_and_clients_after_the_ttl(lab: DnsLab) -> None:
    stub = lab.resolver
    assert ask(lab, "app.lb.example.com")[0] == ["192.0.2.100"]
    assert [r.address for r in stub.resolve("app.lb.example.com", "A")] == ["192.0.2.100"]  # cached for 30 s
    lab.endpoint("192.0.2.100").down()
    assert ask(lab, "app.lb.example.com")[0] == ["192.0.2.100"]  # not checked yet
    lab.advance(10)  # one check interval
    assert ask(lab, "app.lb.example.com")[0] == ["192.0.2.101"]
    assert lab.endpoint("192.0.2.100").healthy == {"app.lb.example.com.": False}
    assert [r.address for r in stub.resolve("app.lb.example.com", "A")] == ["192.0.2.100"]  # the cache, 20 s left
    lab.advance(20)  # the answer's TTL has run out
    assert [r.address for r in stub.resolve("app.lb.example.com", "A")] == ["192.0.2.101"]
    lab.endpoint("192.0.2.100").up()
    lab.advance(10)
    assert ask(lab, "app.lb.example.com")[0] == ["192.0.2.100"]  # the primary is back


def test_weighted_real_answers_follow_the_weights(lab: DnsLab) -> None:
    counts = Counter(ask(lab, "cdn.lb.example.com")[0][0] for _ in range(400))  # bounded: 400 queries
    assert set(counts) == {"192.0.2.102", "192.0.2.103"}
    assert 0.65 < counts["192.0.2.102"] / 400 < 0.85, counts  # weights 3 : 1


def test_nearest_differs_by_location_and_by_client_subnet(lab: DnsLab) -> None:
    assert ask(lab, "geo.lb.example.com")[0] == ["192.0.2.104"]  # the lab's own location, ams
    assert ask(lab, "geo.lb.example.com", source=NYC_SOURCE)[0] == ["192.0.2.105"]
    assert ask(lab, "geo.lb.example.com", source=SIN_SOURCE)[0] == ["192.0.2.106"]
    # ECS (RFC 7871) wins over the querier's address; the reply echoes it with the scope used.
    addresses, options = ask(lab, "geo.lb.example.com", subnet=f"{SIN_SOURCE}/32")
    assert addresses == ["192.0.2.106"] and options == [f"ECS {SIN_SOURCE}/32 scope/32"]
    assert ask(lab, "geo.lb.example.com", source=SIN_SOURCE, subnet="198.51.100.0/24")[0] == ["192.0.2.105"]
    assert ask(lab, "pool.lb.example.com", subnet="198.51.100.0/24")[1] == ["ECS 198.51.100.0/24 scope/0"]
    assert ask(lab, "www.lb.example.com", subnet="198.51.100.0/24")[1] == ["ECS 198.51.100.0/24 scope/0"]


def test_all_healthy_rotates_and_leaves_out_the_unhealthy(lab: DnsLab) -> None:
    first, second = ask(lab, "pool.lb.example.com")[0], ask(lab, "pool.lb.example.com")[0]
    assert sorted(first) == sorted(second) == ["192.0.2.107", "192.0.2.108", "192.0.2.109"] and first != second
    lab.endpoint("192.0.2.108").down()
    lab.advance(10)
    assert sorted(ask(lab, "pool.lb.example.com")[0]) == ["192.0.2.107", "192.0.2.109"]


def test_the_trace_says_which_policy_chose_and_why(lab: DnsLab) -> None:
    lab.endpoint("192.0.2.100").down()
    lab.advance(10)
    steering = [e for e in lab.trace("app.lb.example.com", "A", cold=True) if e["event"] == "steering"]
    assert steering and steering[-1]["policy"] == "failover" and steering[-1]["answer"] == ["192.0.2.101"]
    assert "unhealthy: 192.0.2.100" in steering[-1]["why"] and steering[-1]["location"] == "ams"


def test_unknown_endpoint(lab: DnsLab) -> None:
    with pytest.raises(DnslabError, match=r"no endpoint '192.0.2.99' \(endpoints: 192.0.2.100, "):
        lab.endpoint("192.0.2.99")


def test_real_tcp_checks_follow_a_listening_port(tmp_path: Path) -> None:
    folder = tmp_path / "zones"
    shutil.copytree(SAMPLE_ZONES, folder)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    toml = folder / "lab.toml"
    toml.write_text(toml.read_text().replace('endpoints = ["192.0.2.100", "192.0.2.101"]',
                                             f'endpoints = [{{ address = "192.0.2.100", tcp = "127.0.0.1:{port}" }}, '
                                             '"192.0.2.101"]'))
    with DnsLab(folder) as lab:
        def observed() -> bool:
            rows = lab.call(lab.lab.endpoints)
            return next(e["observed_up"] for e in rows[0]["endpoints"] if e["address"] == "192.0.2.100")
        assert ask(lab, "app.lb.example.com")[0] == ["192.0.2.100"]
        listener.close()  # the service stops listening
        for _ in range(100):  # bounded: the prober looks every 0.5 s
            if not observed():
                break
            time.sleep(0.05)
        assert not observed()
        lab.advance(10)
        assert ask(lab, "app.lb.example.com")[0] == ["192.0.2.101"]
        rows = lab.call(lab.lab.endpoints)
        assert rows[0]["endpoints"][0]["check"] == f"tcp 127.0.0.1:{port}"


def test_the_command_line_lists_and_switches_endpoints(tmp_path: Path) -> None:
    from conftest import lab_process, read_until, stop

    proc, run = lab_process(tmp_path, "--fake-clock")
    try:
        read_until(proc, "Ctrl-C stops the lab.")
        assert run("endpoint", "192.0.2.100", "down").startswith("192.0.2.100: down")
        run("clock", "advance", "10")
        listing = run("endpoints")
        assert "app.lb.example.com. A  failover, TTL 30 s, checks every 10 s, 1 in a row to change" in listing
        [row] = [line for line in listing.splitlines() if line.strip().startswith("192.0.2.100")][:1]
        assert row.split()[1:3] == ["unhealthy", "0"], row  # unhealthy since the check just now (0 s)
        assert "app.lb.example.com" in run("query", "app.lb.example.com")
        assert "last answer: 192.0.2.101: endpoint 2 in order, the first healthy one; unhealthy: 192.0.2.100" \
            in run("endpoints")
        trace = run("trace", "app.lb.example.com", "--cold")
        assert "steering failover: 192.0.2.101: endpoint 2 in order" in trace, trace
    finally:
        stop(proc)
