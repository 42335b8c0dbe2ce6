"""Primaries and secondaries (issue 22, items 4 and 5): the SOA timers sans-I/O, then a lab whose
example.com has ns1 as primary and ns2 as its secondary, with the replication faults."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable

import dns.flags
import dns.message
import dns.opcode
import dns.query
import dns.rcode
import dns.rdatatype
import dns.resolver
import dns.update
import pytest

from dnslab.authority.secondary import FIRST_RETRY, SecondaryZone, State
from dnslab.core.errors import ConfigError
from dnslab.core.zone import load_zone_text
from dnslab.testing import DnsLab

from conftest import sample_copy

PRIMARY, SECONDARY = "127.0.3.1", "127.0.3.2"  # ns1 and ns2.example.com
# example.com's SOA: refresh 7200, retry 3600, expire 1209600.
REFRESH, RETRY, EXPIRE = 7200, 3600, 1209600


# --- the timers, sans-I/O -----------------------------------------------------------------------


def soa_zone(serial: int = 1) -> Any:
    loaded = load_zone_text(f"$ORIGIN t.\n@ 300 SOA ns h {serial} 100 20 1000 60\n@ 300 NS ns\nns 300 A 127.0.0.9\n")
    return loaded.zone


def test_secondary_timers_follow_the_soa() -> None:
    copy = SecondaryZone(soa_zone().origin, ("127.0.0.9", 53))
    assert copy.due(0) and copy.state is State.EMPTY and not copy.serving
    copy.failed(0, "no answer")
    assert copy.state is State.EMPTY and not copy.due(FIRST_RETRY - 1) and copy.due(FIRST_RETRY)
    copy.refreshed(10, soa_zone(1), "AXFR")
    assert copy.serving and copy.serial == 1 and not copy.due(109) and copy.due(110)  # refresh 100
    copy.notify()
    assert copy.due(11)  # RFC 1996: at once
    copy.failed(110, "timeout")
    assert copy.state is State.RETRYING and copy.serving and copy.due(130) and not copy.due(129)  # retry 20
    assert not copy.tick(1009) and copy.tick(1010)  # expire 1000 after the last success
    assert copy.state is State.EXPIRED and not copy.serving
    assert copy.wants(2) and not copy.wants(1) and not copy.wants(0)  # serial arithmetic: 0 is not newer
    copy.refreshed(1020)
    assert copy.serving and copy.state is State.CURRENT


# --- a lab with a secondary -----------------------------------------------------------------------


def replicated_folder(tmp_path: Path, primary: str = "ns1.example.com.") -> Path:
    return sample_copy(tmp_path, f'\n[primaries]\n"example.com." = "{primary}"\n')


@pytest.fixture
def replicated(tmp_path: Path) -> Any:
    with DnsLab(replicated_folder(tmp_path)) as lab:
        yield lab


def ask(lab: DnsLab, address: str, name: str, rdtype: str = "A") -> dns.message.Message:
    query = dns.message.make_query(name, rdtype)
    query.flags &= ~dns.flags.RD
    return dns.query.udp(query, address, port=lab.port, timeout=5)


def eventually(check: Callable[[], bool], tries: int = 100) -> bool:
    """Poll a condition a bounded number of times (NOTIFY and transfer run on the lab's own loop)."""
    for _ in range(tries):
        if check():
            return True
        time.sleep(0.05)
    return False


def test_the_secondary_transferred_at_start_and_answers_as_the_primary(replicated: DnsLab) -> None:
    copy = replicated.server(SECONDARY).secondary("example.com")
    assert copy["state"] == "current" and copy["last_transfer"] == "AXFR" and copy["serial"] == 2026112801
    for name, rdtype in (("www.example.com", "A"), ("example.com", "MX"), ("nx.example.com", "A")):
        ours, theirs = ask(replicated, SECONDARY, name, rdtype), ask(replicated, PRIMARY, name, rdtype)
        assert (ours.rcode(), ours.flags, ours.answer, ours.authority) == \
            (theirs.rcode(), theirs.flags, theirs.answer, theirs.authority)


def test_a_change_on_the_primary_reaches_the_secondary_by_notify_and_ixfr(replicated: DnsLab) -> None:
    replicated.record_set("svc.example.com", "A", "192.0.2.80")
    assert eventually(lambda: bool(ask(replicated, SECONDARY, "svc.example.com").answer))
    copy = replicated.server(SECONDARY).secondary("example.com")
    assert copy["serial"] == 2026112802 and copy["last_transfer"] == "IXFR"
    assert replicated.lab.replication.secondaries.notifies_answered >= 1
    assert replicated.call(lambda: replicated.lab.server(PRIMARY).server.ops.last_transfer) \
        == "IXFR of example.com.: incremental"


def test_dynamic_update_on_the_primary_reaches_the_secondary_and_the_secondary_refuses_updates(
        replicated: DnsLab) -> None:
    key = replicated.lab.replication.key
    msg = dns.update.UpdateMessage("example.com.", keyring={key.name: key}, keyname=key.name)
    msg.add("printer", 60, "A", "192.0.2.81")
    assert dns.query.tcp(msg, SECONDARY, port=replicated.port, timeout=5).rcode() == dns.rcode.REFUSED
    assert dns.query.tcp(msg, PRIMARY, port=replicated.port, timeout=5).rcode() == dns.rcode.NOERROR
    assert eventually(lambda: bool(ask(replicated, SECONDARY, "printer.example.com").answer))


def test_notify_is_accepted_only_from_the_primary(replicated: DnsLab) -> None:
    query = dns.message.make_query("example.com", "SOA")
    query.flags = dns.flags.AA
    query.set_opcode(dns.opcode.NOTIFY)
    theirs = dns.query.udp(query, SECONDARY, port=replicated.port, timeout=5, source="127.0.0.1")
    assert theirs.rcode() == dns.rcode.REFUSED and theirs.opcode() == dns.opcode.NOTIFY and theirs.question
    mine = dns.query.udp(query, SECONDARY, port=replicated.port, timeout=5, source=PRIMARY)
    assert mine.rcode() == dns.rcode.NOERROR and mine.flags & dns.flags.AA
    assert dns.query.udp(query, PRIMARY, port=replicated.port, timeout=5).rcode() == dns.rcode.REFUSED


def test_with_notify_lost_the_secondary_catches_up_at_its_refresh(replicated: DnsLab) -> None:
    replicated.server(PRIMARY).notify_lost()
    replicated.record_set("late.example.com", "A", "192.0.2.82")
    replicated.refresh_secondaries()  # nothing is due: no NOTIFY came, the refresh is two hours away
    assert ask(replicated, SECONDARY, "late.example.com").rcode() == dns.rcode.NXDOMAIN
    replicated.advance(REFRESH - 1)
    replicated.refresh_secondaries()
    assert ask(replicated, SECONDARY, "late.example.com").rcode() == dns.rcode.NXDOMAIN
    replicated.advance(1)
    replicated.refresh_secondaries()
    assert ask(replicated, SECONDARY, "late.example.com").answer
    assert replicated.server(PRIMARY).faults == ["notify-lost"]


def test_primary_gone_past_expire_the_secondary_servfails_and_the_resolver_fails(replicated: DnsLab) -> None:
    replicated.server(PRIMARY).unreachable()
    replicated.advance(REFRESH)
    replicated.refresh_secondaries()
    copy = replicated.server(SECONDARY).secondary("example.com")
    assert copy["state"] == "retrying" and ask(replicated, SECONDARY, "www.example.com").answer  # still served
    replicated.advance(EXPIRE - REFRESH)
    replicated.refresh_secondaries()
    assert replicated.server(SECONDARY).secondary("example.com")["state"] == "expired"
    assert ask(replicated, SECONDARY, "www.example.com").rcode() == dns.rcode.SERVFAIL
    replicated.cache.flush()
    with pytest.raises(dns.resolver.NoNameservers):  # SERVFAIL: no server of example.com can answer
        replicated.resolver.resolve("www.example.com", "A")
    replicated.server(PRIMARY).up()
    replicated.advance(RETRY)
    replicated.refresh_secondaries()
    assert replicated.server(SECONDARY).secondary("example.com")["state"] == "current"
    assert ask(replicated, SECONDARY, "www.example.com").answer


def test_an_expired_secondary_with_the_primary_up_the_resolver_fails_over(tmp_path: Path) -> None:
    # ns2 the primary, ns1 its secondary, which expires: a lookup that tries ns1 must go on to ns2.
    ns1, ns2 = "127.0.3.1", "127.0.3.2"
    with DnsLab(replicated_folder(tmp_path, "ns2.example.com.")) as lab:
        lab.server(ns2).xfr_refused()
        lab.record_set("new.example.com", "A", "192.0.2.83")  # a newer serial ns1 cannot get
        lab.advance(EXPIRE)
        lab.refresh_secondaries()
        copy = lab.server(ns1).secondary("example.com")
        assert copy["state"] == "expired" and "REFUSED" in copy["error"], copy
        assert ask(lab, ns1, "www.example.com").rcode() == dns.rcode.SERVFAIL
        lab.cache.flush()
        # Which server a cold walk tries first is the resolver's choice: make it ns1 by having the
        # resolver remember ns1 as fast and ns2 as slow, far outside the band it explores within.
        infra = lab.lab.resolver.infra  # type: ignore[union-attr]
        lab.call(lambda: (infra.forget(), infra.success(ns1, 0.001), infra.success(ns2, 1.0)))
        events = lab.trace("new.example.com", "A", cold=True)
        replies = [(e["address"], e.get("rcode")) for e in events
                   if e["event"] in ("reply", "failed") and e.get("zone") == "example.com."]
        assert events[-1]["rcode"] == "NOERROR" and "192.0.2.83" in str(events[-1]["records"])
        assert replies[0] == (ns1, "SERVFAIL") and replies[-1] == (ns2, "NOERROR"), replies  # ns1, then ns2


def test_a_slow_secondary_lags_behind(replicated: DnsLab) -> None:
    replicated.server(SECONDARY).xfr_delay(1500)
    replicated.record_set("slow.example.com", "A", "192.0.2.84")
    assert ask(replicated, SECONDARY, "slow.example.com").rcode() == dns.rcode.NXDOMAIN  # not yet
    assert ask(replicated, PRIMARY, "slow.example.com").answer
    assert eventually(lambda: bool(ask(replicated, SECONDARY, "slow.example.com").answer), tries=200)


def test_primaries_that_cannot_be_are_one_line_errors(tmp_path: Path) -> None:
    folder = sample_copy(tmp_path)
    settings = (folder / "lab.toml").read_text()
    for table, message in (('"example.com." = "ns1.example.org."', "does not serve example.com."),
                           ('"nosuch.test." = "ns1.example.com."', "not a zone of this lab"),
                           ('"example.com." = "ns9.example.com."', "not a lab server")):
        (folder / "lab.toml").write_text(settings + f"\n[primaries]\n{table}\n")
        with pytest.raises(ConfigError, match=message):
            DnsLab(folder).start()


def test_a_server_added_to_the_zone_at_runtime_starts_as_a_secondary_and_one_removed_stops(
        replicated: DnsLab) -> None:
    replicated.record_set("ns3.example.com", "A", "127.0.3.50")
    replicated.record_set("example.com", "NS", "ns1.example.com.", "ns2.example.com.", "ns3.example.com.")
    assert eventually(lambda: bool(ask(replicated, "127.0.3.50", "www.example.com").answer))
    copy = replicated.server("127.0.3.50").secondary("example.com")
    assert copy["state"] == "current" and copy["serial"] == 2026112803
    change = replicated.record_set("example.com", "NS", "ns1.example.com.", "ns3.example.com.")  # ns2 leaves
    assert [plan.address for plan in change.stopped] == [SECONDARY]
    assert [c["address"] for c in replicated.call(replicated.lab.replication.secondaries.to_json)] == ["127.0.3.50"]


def test_a_signed_lab_gives_re_signed_zones_a_new_serial_so_secondaries_follow(tmp_path: Path) -> None:
    with DnsLab(replicated_folder(tmp_path), dnssec=True) as lab:
        def signatures(address: str) -> list[str]:
            query = dns.message.make_query("www.example.com", "A", want_dnssec=True)
            query.flags &= ~dns.flags.RD
            reply = dns.query.udp(query, address, port=lab.port, timeout=5)
            return sorted(r.to_text() for rrset in reply.answer if rrset.rdtype == dns.rdatatype.RRSIG
                          for r in rrset)
        assert signatures(SECONDARY) == signatures(PRIMARY) != []
        before = lab.server(SECONDARY).secondary("example.com")["serial"]
        lab.advance(20 * 86400)  # past the signer's refresh point: the primary signs again
        ask(lab, PRIMARY, "example.com", "SOA")  # (a lab server re-signs when next asked)
        lab.refresh_secondaries()
        assert eventually(lambda: signatures(SECONDARY) == signatures(PRIMARY))
        copy = lab.server(SECONDARY).secondary("example.com")
        assert copy["serial"] == before + 1 and copy["state"] == "current" and copy["error"] == "", copy


def test_a_reload_with_a_new_serial_reaches_the_secondary_as_ixfr(replicated: DnsLab) -> None:
    zone_file = replicated.lab.zones_dir / "example.com.zone"  # type: ignore[operator]
    text = zone_file.read_text()
    assert "2026112801" in text
    zone_file.write_text(text.replace("2026112801", "2026112805") + "\nreloaded IN A 192.0.2.85\n")
    replicated.reload()
    assert eventually(lambda: bool(ask(replicated, SECONDARY, "reloaded.example.com").answer))
    copy = replicated.server(SECONDARY).secondary("example.com")
    assert copy["serial"] == 2026112805 and copy["last_transfer"] == "IXFR"
    assert replicated.call(lambda: replicated.lab.server(PRIMARY).server.ops.last_transfer) \
        == "IXFR of example.com.: incremental"


def test_the_trace_says_when_a_stale_secondary_answered(replicated: DnsLab) -> None:
    from dnslab.faces.trace import TextRenderer  # what `dnslab trace` prints

    replicated.server(PRIMARY).notify_lost()
    replicated.record_set("www.example.com", "A", "192.0.2.99")  # the secondary keeps the old copy
    replicated.server(PRIMARY).unreachable()  # so the walk gets its answer from the secondary
    events = replicated.trace("www.example.com", "A", cold=True)
    seen = [e for e in events if e["event"] == "reply" and e["address"] == SECONDARY]
    assert seen, events
    standing = seen[0]["secondary"]
    assert standing["behind"] and standing["serial"] == 2026112801 and standing["primary_serial"] == 2026112802
    assert "192.0.2.1" in str(seen[0]["records"])  # the old answer, from the stale copy
    assert all("secondary" not in e for e in events if e.get("address") == PRIMARY)  # the primary is none
    text = TextRenderer().line(seen[0]) or ""
    assert "(stale: a secondary of example.com., its copy at serial 2026112801 (current), behind its " \
           "primary's 2026112802)" in text
