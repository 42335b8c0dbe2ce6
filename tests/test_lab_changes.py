"""Changing a running lab: records, delegations and reloads, with servers started and stopped
as the zones then say (issue 15, items 6 and 7)."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import pytest

from dnslab.core.errors import DnslabError
from dnslab.testing import DnsLab

from conftest import ENV, lab_process, read_until, sample_copy, stop

NEW = "127.0.3.50"  # ns3.example.com, the address example.com moves to


def ask(address: str, port: int, name: str, rdtype: str = "A") -> dns.message.Message:
    """One question straight to a lab server, as a resolver would ask it (RD=0)."""
    query = dns.message.make_query(name, rdtype)
    query.flags &= ~dns.flags.RD
    return dns.query.udp(query, address, port=port, timeout=5)


def addresses(lab: DnsLab) -> set[str]:
    return {server.address for server in lab.servers}


def copy_of_the_sample(tmp_path: Path) -> Path:
    return sample_copy(tmp_path)


# --- item 6: moving a zone to new name servers, while the lab runs ------------------------------


def test_move_a_zone_to_new_name_servers_at_runtime(make_dns_lab: Any) -> None:
    lab = make_dns_lab()
    assert lab.resolver.resolve("www.example.com", "A")  # the old servers' answer is cached now
    # 1. The new server gets the zone: an address for ns3, then ns3 in the zone's own NS set.
    assert lab.record_set("ns3.example.com", "A", NEW).started == []  # not a name server (yet)
    change = lab.record_set("example.com", "NS", "ns1.example.com.", "ns2.example.com.", "ns3.example.com.")
    assert [plan.address for plan in change.started] == [NEW] and change.stopped == []
    assert [zone.origin.to_text() for zone in change.started[0].zones] == ["example.com."]
    direct = ask(NEW, lab.port, "www.example.com.")
    assert direct.flags & dns.flags.AA and len(direct.answer[0]) == 3
    # 2. The parent delegates to it (NS and glue in com., named with zone=), and drops the old glue.
    lab.record_set("example.com", "NS", "ns3.example.com.", zone="com.")
    lab.record_set("ns3.example.com", "A", NEW, zone="com")
    for old in ("ns1.example.com", "ns2.example.com"):
        lab.record_delete(old, "A", zone="com")
    referral = ask("127.0.2.1", lab.port, "www.example.com.")
    assert [r.target.to_text() for r in referral.authority[0]] == ["ns3.example.com."]
    assert [r.address for r in referral.additional[0]] == [NEW]
    # 3. The old servers leave the zone's NS set: they stop, as nothing else is served there.
    change = lab.record_set("example.com", "NS", "ns3.example.com.")
    assert sorted(plan.address for plan in change.stopped) == ["127.0.3.1", "127.0.3.2"] and change.started == []
    assert NEW in addresses(lab) and not {"127.0.3.1", "127.0.3.2"} & addresses(lab)
    with pytest.raises(DnslabError, match="no lab server"):
        lab.server("127.0.3.1")
    # Once the cached delegation (com.'s NS TTL, 2 days) has run out, the resolver walks to the new server.
    lab.clock.advance(172800)
    new_server = lab.server(NEW)
    new_server.reset_queries()
    answer = lab.resolver.resolve("www.example.com", "A")
    assert sorted(r.address for r in answer) == ["192.0.2.1", "192.0.2.2", "192.0.2.3"]
    assert new_server.queries["www.example.com.", "A"] >= 1


def test_a_change_that_clashes_with_the_resolver_leaves_the_lab_as_it_was(make_dns_lab: Any) -> None:
    lab = make_dns_lab()
    before = addresses(lab)
    lab.record_set("ns3.example.com", "A", "127.0.0.1")
    with pytest.raises(DnslabError, match="where the lab's resolver listens"):
        lab.record_set("example.com", "NS", "ns1.example.com.", "ns3.example.com.")
    assert addresses(lab) == before
    assert [r.target.to_text() for r in ask("127.0.3.1", lab.port, "example.com.", "NS").answer[0]] == \
        ["ns1.example.com.", "ns2.example.com."]


def test_an_address_that_cannot_be_bound_leaves_the_lab_as_it_was(make_dns_lab: Any) -> None:
    lab = make_dns_lab()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind((NEW, lab.port))  # someone else holds the new server's address and port
        lab.record_set("ns3.example.com", "A", NEW)
        with pytest.raises(DnslabError, match=NEW):
            lab.record_set("example.com", "NS", "ns3.example.com.", add=True)
    assert NEW not in addresses(lab)
    ns = ask("127.0.3.1", lab.port, "example.com.", "NS").answer[0]
    assert sorted(r.target.to_text() for r in ns) == ["ns1.example.com.", "ns2.example.com."]
    # Once the address is free, the same change goes through.
    assert [plan.address for plan in lab.record_set("example.com", "NS", "ns3.example.com.", add=True).started] == [NEW]


def test_a_name_server_without_a_lab_address_is_reported(make_dns_lab: Any) -> None:
    lab = make_dns_lab()
    change = lab.record_set("example.com", "NS", "ns1.example.com.", "ns9.example.com.")
    assert change.started == [] and any("ns9.example.com." in w and "does not run it" in w for w in change.warnings)


def test_a_parent_pointing_where_the_zone_is_not_served_is_called_lame(make_dns_lab: Any) -> None:
    lab = make_dns_lab()
    lab.record_set("ns3.example.com", "A", NEW, zone="com")
    change = lab.record_set("example.com", "NS", "ns1.example.com.", "ns3.example.com.", zone="com")
    assert change.started == []  # the zone's own NS records decide where it is served
    assert any("com. delegates example.com. to ns3.example.com. (127.0.3.50)" in w and "lame" in w
               for w in change.warnings)


def test_reload_starts_and_stops_servers_as_the_files_say(tmp_path: Path) -> None:
    folder = copy_of_the_sample(tmp_path)
    with DnsLab(folder) as lab:
        text = (folder / "example.com.zone").read_text()
        (folder / "example.com.zone").write_text(
            text.replace("ns2                     3600    IN  A     127.0.3.2",
                         "ns2                     3600    IN  A     127.0.3.2\n"
                         f"ns3                     3600    IN  A     {NEW}\n"
                         "@                       3600    IN  NS    ns3"))
        change = lab.reload()
        assert [plan.address for plan in change.started] == [NEW] and change.stopped == []
        assert ask(NEW, lab.port, "www.example.com.").flags & dns.flags.AA
        # A zone file removed: its zone and its only server go.
        (folder / "failover.com.zone").unlink()
        change = lab.reload()
        assert [origin.to_text() for origin in change.removed] == ["failover.com."]
        assert sorted(plan.address for plan in change.stopped) == ["127.0.3.20", "127.0.3.21"]
        assert ask("127.0.3.10", lab.port, "www.example.net.").answer  # the rest serves on


# --- item 7: record data, typos, runtime errors, what reload drops ------------------------------


def test_a_name_that_lands_in_the_root_or_a_tld_needs_the_zone_named(make_dns_lab: Any) -> None:
    lab = make_dns_lab()
    with pytest.raises(DnslabError, match=r"www.nowhere.invalid. is in no lab zone below the root zone; .*--zone \."):
        lab.record_set("www.nowhere.invalid", "A", "192.0.2.1")
    with pytest.raises(DnslabError, match=r"the TLD zone com\. \(did you mean example.com.\?\)"):
        lab.record_set("www.exmaple.com", "A", "192.0.2.1")
    with pytest.raises(DnslabError, match="the TLD zone com"):
        lab.record_delete("ns1.example.com.com", "A")
    # Named explicitly, it is a deliberate change of that zone.
    assert lab.record_set("www.nowhere.invalid", "A", "192.0.2.1", zone=".").zone.origin.to_text() == "."
    # Apex data of a TLD, and names in deeper zones, need nothing extra.
    assert lab.record_set("com", "TXT", '"tld note"').zone.origin.to_text() == "com."
    assert lab.record_set("new.example.com", "MX", "10 mail.example.com.").zone.origin.to_text() == "example.com."
    with pytest.raises(DnslabError, match=r"2 records, not one: .* add the others with 'record add'"):
        lab.record_set("www.example.com", "A", "192.0.2.1 192.0.2.2")
    with pytest.raises(DnslabError, match="not in zone example.org"):
        lab.record_set("www.example.com", "A", "192.0.2.1", zone="example.org")


def test_a_runtime_cname_clash_names_the_zone_not_a_line(make_dns_lab: Any) -> None:
    lab = make_dns_lab()
    with pytest.raises(DnslabError) as caught:
        lab.record_set("www.example.com", "CNAME", "mail.example.com.")
    message = str(caught.value)
    assert message.startswith("zone example.com.: www.example.com. already has") and ":0:" not in message


def test_record_add_keeps_the_rrset(make_dns_lab: Any) -> None:
    lab = make_dns_lab()
    lab.record_set("www.example.com", "A", "192.0.2.9", ttl=60, add=True)
    answer = ask("127.0.3.1", lab.port, "www.example.com.").answer[0]
    assert sorted(r.address for r in answer) == ["192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.9"]
    assert answer.ttl == 60


def test_reload_says_how_many_record_changes_it_dropped(tmp_path: Path) -> None:
    with DnsLab(copy_of_the_sample(tmp_path)) as lab:
        lab.record_set("www.example.com", "A", "192.0.2.99")
        lab.record_delete("mail.example.com", "A")
        assert lab.reload().dropped == 2
        assert [r.address for r in ask("127.0.3.1", lab.port, "www.example.com.").answer[0]][0] != "192.0.2.99"
        assert lab.reload().dropped == 0


def test_the_command_line_takes_the_rest_of_the_line_and_reports_server_changes(tmp_path: Path) -> None:
    folder = copy_of_the_sample(tmp_path)
    proc, run = lab_process(tmp_path, "--zones", str(folder), "--no-web")
    try:
        port = int(read_until(proc, "Ctrl-C stops the lab.").splitlines()[0].split()[3])
        # MX data is two words: the rest of the line is the record, as in a zone file.
        assert "zone example.com. now at serial" in run("record", "set", "new.example.com", "MX", "10",
                                                        "mail.example.com.")
        mx = ask("127.0.3.1", port, "new.example.com.", "MX").answer[0]
        assert [(r.preference, r.exchange.to_text()) for r in mx] == [(10, "mail.example.com.")]
        run("record", "add", "new.example.com", "MX", "20", "backup.example.com.")
        assert len(ask("127.0.3.1", port, "new.example.com.", "MX").answer[0]) == 2
        run("record", "set", "ns3.example.com", "A", NEW)
        out = run("record", "set", "example.com", "NS", "ns3.example.com.")
        assert f"started server {NEW} (ns3.example.com.): example.com." in out
        assert "stopped server 127.0.3.1 (ns1.example.com.): example.com." in out
        assert "warning: com. delegates example.com. to ns1.example.com. (127.0.3.1), but no lab server runs " \
               "there" in out
        # The zone files know nothing of all this: reload puts them back, and says what it dropped.
        out = run("reload")
        assert "dropped 4 change(s) made with 'dnslab record'" in out
        assert "started server 127.0.3.1 (ns1.example.com.): example.com." in out
        assert f"stopped server {NEW} (ns3.example.com.): example.com." in out
        # A typo into a TLD is one clear line, and exit code 1.
        typo = subprocess.run([sys.executable, "-m", "dnslab", "record", "set", "www.exmaple.com", "A", "192.0.2.1"],
                              capture_output=True, text=True, timeout=60,
                              env={**ENV, "DNSLAB_STATE": str(tmp_path / "state")})
        assert typo.returncode == 1 and typo.stderr.count("\n") == 1 and "did you mean example.com." in typo.stderr
    finally:
        code, _, err = stop(proc)
    assert code == 0, err


NEW_ZONE = """\
$ORIGIN newzone.org.
$TTL 300
@    SOA  ns1 hostmaster 1 7200 3600 1209600 300
@    NS   ns1
ns1  A    127.0.3.60
www  A    192.0.2.160
"""


def test_a_signed_lab_serves_and_signs_a_zone_added_by_reload(tmp_path: Path) -> None:
    folder = copy_of_the_sample(tmp_path)
    with DnsLab(folder, dnssec=True, keys_dir=tmp_path / "keys") as lab:
        (folder / "newzone.org.zone").write_text(NEW_ZONE)
        with (folder / "org.zone").open("a") as org:
            org.write("newzone 172800 IN NS ns1.newzone\nns1.newzone 172800 IN A 127.0.3.60\n")
        change = lab.reload()
        assert [origin.to_text() for origin in change.added] == ["newzone.org."]
        assert [plan.address for plan in change.started] == ["127.0.3.60"] and change.warnings == []
        query = dns.message.make_query("www.newzone.org.", "A", want_dnssec=True)
        host, port = lab.resolver_address
        reply = dns.query.udp(query, host, port=port, timeout=10)
        assert reply.rcode() == dns.rcode.NOERROR and reply.flags & dns.flags.AD  # validated from the root down
        assert [r.address for r in reply.answer[0]] == ["192.0.2.160"]
        # A runtime delegation change in a signed parent: re-signed, still secure.
        lab.record_set("ns2.newzone.org", "A", "127.0.3.61")
        change = lab.record_set("newzone.org", "NS", "ns2.newzone.org.", add=True)
        assert [plan.address for plan in change.started] == ["127.0.3.61"]
        direct = dns.message.make_query("www.newzone.org.", "A", want_dnssec=True)
        direct.flags &= ~dns.flags.RD
        signed = dns.query.udp(direct, "127.0.3.61", port=lab.port, timeout=5)
        assert any(rrset.rdtype == dns.rdatatype.RRSIG for rrset in signed.answer)


def test_the_web_view_hears_of_servers_started_and_stopped() -> None:
    from test_web import EventStream, Web   # the web view's own test client

    from dnslab.faces.web import WebServer

    with DnsLab(keep_traces=False) as lab:
        server = lab.call(lambda: WebServer(lab.lab))
        lab.run(server.start())
        web = Web(lab, server)
        stream = EventStream(web)
        try:
            assert NEW not in {s["address"] for s in stream.next("hello")["lab"]["servers"]}
            assert web.command("record.set", name="ns3.example.com", type="A", values=[NEW])["ok"]
            reply = web.command("record.set", name="example.com", type="NS", values=["ns3.example.com."], add=True)
            assert [s["address"] for s in reply["result"]["started"]] == [NEW]
            info = stream.next("lab", lambda d: any(s["address"] == NEW for s in d["servers"]))
            zones = {z["origin"]: z for z in info["zones"]}
            assert zones["example.com."]["servers"] == ["127.0.3.1", "127.0.3.2", NEW]
        finally:
            stream.close()
            lab.run(server.stop())
