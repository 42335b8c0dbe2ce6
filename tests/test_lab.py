"""The lab derives its hierarchy from the zones and serves it on loopback."""

from __future__ import annotations

import socket
from pathlib import Path

import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdatatype
import dns.resolver
import pytest

from dnslab.core.errors import ConfigError
from dnslab.lab.runtime import Lab, LabSettings, example_walk
from dnslab.lab.hierarchy import Role, derive_hierarchy
from dnslab.resolution.hints import root_hints_text
from dnslab.core.zone import load_zone_text

from conftest import LabThread

ROOT = """
$ORIGIN .
$TTL 86400
@ SOA a.root. admin.root. 1 1800 900 604800 3600
@ NS a.root.
a.root. A 127.0.71.1
test. NS ns.test.
ns.test. A 127.0.72.1
"""
TEST = """
$ORIGIN test.
$TTL 3600
@ SOA ns admin 1 1800 900 604800 300
@ NS ns
ns A 127.0.72.1
shop NS ns1.shop
shop NS ns2.shop
ns1.shop A 127.0.73.1
ns2.shop A 127.0.73.2
elsewhere NS ns.elsewhere
ns.elsewhere A 192.0.2.53
"""
SHOP = """
$ORIGIN shop.test.
$TTL 300
@ SOA ns1 admin 1 1800 900 604800 60
@ NS ns1
@ NS ns2
ns1 A 127.0.73.1
ns2 A 127.0.73.2
www A 192.0.2.10
"""
ELSEWHERE = """
$ORIGIN elsewhere.test.
@ 300 SOA ns admin 1 1800 900 604800 60
@ 300 NS ns
ns 300 A 192.0.2.53
"""


def zones(*texts: str):
    loaded = [load_zone_text(text) for text in texts]
    assert all(z.zone is not None for z in loaded), [z.problems for z in loaded]
    return [z.zone for z in loaded]


def test_hierarchy_is_derived_from_ns_and_glue() -> None:
    hierarchy = derive_hierarchy(zones(ROOT, TEST, SHOP, ELSEWHERE))
    by_address = {plan.address: plan for plan in hierarchy.servers}
    assert set(by_address) == {"127.0.71.1", "127.0.72.1", "127.0.73.1", "127.0.73.2"}
    assert by_address["127.0.71.1"].role is Role.ROOT
    assert by_address["127.0.72.1"].role is Role.TLD
    assert by_address["127.0.73.2"].role is Role.AUTHORITATIVE
    assert [z.origin.to_text() for z in by_address["127.0.73.1"].zones] == ["shop.test."]
    assert [(n.to_text(), a) for n, a in hierarchy.root_hints] == [("a.root.", "127.0.71.1")]
    # A name server outside 127/8 cannot be run by the lab: said, not hidden.
    assert any("elsewhere.test." in w and "127.x.y.z" in w for w in hierarchy.warnings)


def test_root_hints_are_in_named_root_format() -> None:
    hierarchy = derive_hierarchy(zones(ROOT, TEST, SHOP))
    text = root_hints_text(hierarchy.root_hints)
    records = [line.split() for line in text.splitlines() if not line.startswith(";")]
    assert records == [[".", "3600000", "IN", "NS", "a.root."], ["a.root.", "3600000", "IN", "A", "127.0.71.1"]]
    # BIND and Unbound read this format; so does dnspython's zone parser.
    parsed = load_zone_text("$ORIGIN .\n@ 1 SOA a. b. 1 1 1 1 1\n" + text)
    assert parsed.zone is not None


def test_lab_answers_each_role_over_udp_and_tcp() -> None:
    lab = Lab(zones(ROOT, TEST, SHOP), port=0)
    with LabThread(lab):
        port = lab.actual_port
        assert port > 0
        query = dns.message.make_query("www.shop.test.", "A")
        root = dns.query.udp(query, "127.0.71.1", port=port, timeout=5)
        assert not root.flags & dns.flags.AA
        assert [rrset.name.to_text() for rrset in root.authority] == ["test."]
        tld = dns.query.tcp(query, "127.0.72.1", port=port, timeout=5)
        assert not tld.flags & dns.flags.AA
        assert {r.address for rrset in tld.additional for r in rrset} == {"127.0.73.1", "127.0.73.2"}
        for address in ("127.0.73.1", "127.0.73.2"):
            answer = dns.query.udp(query, address, port=port, timeout=5)
            assert answer.flags & dns.flags.AA and not answer.flags & dns.flags.RA
            assert answer.rcode() == dns.rcode.NOERROR
            assert [r.address for r in answer.answer[0]] == ["192.0.2.10"]


def test_start_down_leaves_a_server_unbound() -> None:
    lab = Lab(zones(ROOT, TEST, SHOP), port=0, start_down=["ns1.shop.test."])
    with LabThread(lab):
        states = {r.plan.address: r.up for r in lab.servers}
        assert states == {"127.0.71.1": True, "127.0.72.1": True, "127.0.73.1": False, "127.0.73.2": True}
        query = dns.message.make_query("www.shop.test.", "A")
        with pytest.raises(dns.exception.Timeout):
            dns.query.udp(query, "127.0.73.1", port=lab.actual_port, timeout=0.5)
        assert dns.query.udp(query, "127.0.73.2", port=lab.actual_port, timeout=5).answer


def test_example_walk_goes_root_tld_authoritative() -> None:
    lab = Lab(zones(ROOT, TEST, SHOP), port=0)
    walk = example_walk(lab)
    assert walk is None  # nothing is up yet
    with LabThread(lab):
        name, servers = example_walk(lab)
        assert name.to_text() == "www.shop.test."
        assert [p.role for p in servers] == [Role.ROOT, Role.TLD, Role.AUTHORITATIVE]


def test_settings_reject_unknown_keys_and_bad_values(tmp_path: Path) -> None:
    settings = tmp_path / "lab.toml"
    settings.write_text("port = 5301\nstart_down = ['127.0.0.9']\n")
    assert LabSettings.load(settings) == LabSettings(port=5301, start_down=("127.0.0.9",))
    settings.write_text("prot = 5301\n")
    with pytest.raises(ConfigError, match="unknown setting.*prot"):
        LabSettings.load(settings)
    settings.write_text("port = 'x'\n")
    with pytest.raises(ConfigError, match="port: expected a port number from 0 to 65535"):
        LabSettings.load(settings)
    settings.write_text("port = \n")
    with pytest.raises(ConfigError, match="lab.toml"):
        LabSettings.load(settings)


def test_lab_needs_a_root_zone_and_known_down_servers() -> None:
    with pytest.raises(ConfigError, match="root zone"):
        Lab(zones(TEST, SHOP), port=0)
    with pytest.raises(ConfigError, match="not a lab server"):
        Lab(zones(ROOT, TEST, SHOP), port=0, start_down=["127.9.9.9"])


def test_an_unreachable_server_refuses_at_once_and_an_all_down_zone_fails_without_waiting() -> None:
    """The fast outage for test suites: closed sockets, so the kernel says ICMP port unreachable."""
    from dnslab.testing import DnsLab

    with DnsLab() as lab:
        ns1, ns2 = lab.server("ns1.example.com"), lab.server("ns2.example.com")
        ns1.unreachable()
        ns2.unreachable()
        assert lab.faults()["127.0.3.1"] == ["unreachable"]
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:  # connected, as the resolver's are
            udp.settimeout(5)
            udp.connect(("127.0.3.1", lab.port))
            udp.send(dns.message.make_query("www.example.com.", "A").to_wire())
            with pytest.raises(ConnectionRefusedError):  # the kernel's ICMP port unreachable, not silence
                udp.recv(512)
        with pytest.raises(ConnectionRefusedError):
            dns.query.tcp(dns.message.make_query("www.example.com.", "A"), "127.0.3.2", port=lab.port, timeout=5)
        before = lab.stats
        with pytest.raises(dns.resolver.NoNameservers, match="SERVFAIL"):
            lab.resolver.resolve("www.example.com", "A")
        after = lab.stats
        # Both servers failed over at once: network errors, not one timeout waited for.
        assert after["network_errors"] - before["network_errors"] >= 2
        assert after["timeouts"] == before["timeouts"]
        failed = [e for e in lab.last_trace if e["event"] == "failed"]
        assert {e["address"] for e in failed} == {"127.0.3.1", "127.0.3.2"}
        assert all(e["failure"] == "network" and e["after_ms"] is None for e in failed)
        ns1.up()  # the address is served again at once
        lab.cache.flush()
        assert [r.address for r in lab.resolver.resolve("www.example.com", "A")] == [
            "192.0.2.1", "192.0.2.2", "192.0.2.3"]
        assert ns1.queries["www.example.com.", "A"] == 1 and ns2.queries == {}


def test_address_book_finds_the_servers_addresses_as_a_walk_over_every_record_would() -> None:
    """Only the zones at or above a name are asked; the addresses (glue and authoritative data) are the same."""
    from dnslab.lab.hierarchy import _address_book

    # The glue in test. and the data in shop.test. differ, and test. also has the child's name twice.
    test = TEST.replace("ns2.shop A 127.0.73.2", "ns2.shop A 127.0.73.2\nns2.shop A 127.0.73.9\nns2.shop AAAA ::1")
    loaded = zones(ROOT, test, SHOP, ELSEWHERE)
    every: dict[dns.name.Name, list[str]] = {}
    for zone in loaded:
        for rrset in zone.rrsets():
            if rrset.rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
                known = every.setdefault(rrset.name, [])
                known.extend(rdata.address for rdata in rrset if rdata.address not in known)
    names = [dns.name.from_text(n) for n in ("ns2.shop.test.", "ns1.shop.test.", "a.root.", "ns.elsewhere.test.",
                                             "www.shop.test.", "nowhere.test.", "ns2.shop.test.")]
    book = _address_book(loaded, names)
    assert {name: book[name] for name in names} == {name: every.get(name, []) for name in names}
    assert book[names[0]] == ["127.0.73.2", "127.0.73.9", "::1"]  # test.'s glue first (its zone comes first)


def test_a_signed_lab_on_the_real_clock_re_signs_on_a_timer_not_per_query() -> None:
    lab = Lab(zones(ROOT, TEST, SHOP), port=0, resolver_address=None, dnssec=True)
    assert lab.signer is not None
    running = lab.server("127.0.73.1")
    assert running.faulty.inner == running.server.handle  # no freshness check in front of each query
    first_signing = lab.signer.signed_at
    lab.signer.resign_at = lab.clock.now() - 1  # already due: the start re-signs at once, then waits
    with LabThread(lab):
        assert lab.signer.signed_at > first_signing
        timer = lab._resign_timer
        assert timer is not None and timer.when() > lab.clock.now() + 3600  # the next point, days away
        reply = dns.query.udp(dns.message.make_query("www.shop.test.", "A", want_dnssec=True), "127.0.73.1",
                              port=lab.actual_port, timeout=5)
        assert [rrset.rdtype for rrset in reply.answer] == [dns.rdatatype.A, dns.rdatatype.RRSIG]
    assert lab._resign_timer is None  # stopped with the lab
