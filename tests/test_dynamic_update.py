"""RFC 2136 dynamic update with TSIG (issue 22, item 3): the rules sans-I/O, then nsupdate and dnspython."""

from __future__ import annotations

import shutil
import subprocess
from typing import Any

import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdatatype
import dns.tsig
import dns.update
import pytest

from dnslab.authority import tsig, update
from dnslab.authority.update import UpdateRefused
from dnslab.core.zone import Zone, load_zone_text

ZONE = """$ORIGIN example.test.
$TTL 300
@     SOA ns1 hostmaster 100 3600 600 86400 60
@     NS  ns1
ns1   A   127.0.3.1
www   A   192.0.2.1
www   A   192.0.2.2
alias CNAME www
"""


def zone() -> Zone:
    loaded = load_zone_text(ZONE)
    assert loaded.zone is not None
    return loaded.zone


def message() -> dns.update.UpdateMessage:
    return dns.update.UpdateMessage("example.test.")


def wire_round(msg: dns.update.UpdateMessage) -> dns.update.UpdateMessage:
    """As the server reads it: from the wire."""
    parsed = dns.message.from_wire(msg.to_wire())
    assert isinstance(parsed, dns.update.UpdateMessage)
    return parsed


def rdatas(z: Zone, name: str, rdtype: str) -> set[str]:
    rrset = z.get(dns.name.from_text(name), dns.rdatatype.from_text(rdtype))
    return {rdata.to_text() for rdata in rrset} if rrset is not None else set()


def serial(z: Zone) -> int:
    return int(z.soa[0].serial)  # type: ignore[attr-defined]


def test_add_and_delete_records_and_rrsets_bump_the_serial_once() -> None:
    msg = message()
    msg.add("svc", 60, "A", "192.0.2.50")
    msg.add("svc", 60, "A", "192.0.2.51")
    msg.delete("www", "A", "192.0.2.2")
    outcome = update.apply(zone(), wire_round(msg))
    assert outcome.zone is not None and serial(outcome.zone) == 101
    assert rdatas(outcome.zone, "svc.example.test.", "A") == {"192.0.2.50", "192.0.2.51"}
    assert rdatas(outcome.zone, "www.example.test.", "A") == {"192.0.2.1"}
    msg = message()
    msg.delete("www", "A")
    msg.delete("alias")
    after = update.apply(outcome.zone, wire_round(msg)).zone
    assert after is not None and not rdatas(after, "www.example.test.", "A") and serial(after) == 102
    assert not after.exists(dns.name.from_text("alias.example.test."))


@pytest.mark.parametrize("prereq, rcode", [
    (lambda m: m.present("nothere"), dns.rcode.NXDOMAIN),
    (lambda m: m.absent("www"), dns.rcode.YXDOMAIN),
    (lambda m: m.present("www", "AAAA"), dns.rcode.NXRRSET),
    (lambda m: m.absent("www", "A"), dns.rcode.YXRRSET),
    (lambda m: m.present("www", "A", "192.0.2.1"), dns.rcode.NXRRSET),  # value-dependent: the whole RRset
    (lambda m: m.present("www.example.org."), dns.rcode.NOTZONE),
])
def test_failed_prerequisites_change_nothing_and_say_why(prereq: Any, rcode: int) -> None:
    msg = message()
    prereq(msg)
    msg.add("svc", 60, "A", "192.0.2.50")
    with pytest.raises(UpdateRefused) as caught:
        update.apply(zone(), wire_round(msg))
    assert caught.value.rcode == rcode


def test_met_prerequisites_let_the_update_through() -> None:
    msg = message()
    msg.present("www")
    msg.present("www", "A", "192.0.2.1", "192.0.2.2")
    msg.absent("svc")
    msg.add("svc", 60, "A", "192.0.2.50")
    assert update.apply(zone(), wire_round(msg)).zone is not None


def test_rfc2136_silent_no_ops() -> None:
    msg = message()
    msg.delete("@")                          # the apex SOA and NS survive "delete all" (§3.4.2.3)
    msg.delete("@", "NS", "ns1.example.test.")  # the last apex NS is kept (§3.4.2.4)
    msg.add("alias", 60, "A", "192.0.2.9")   # data beside a CNAME is ignored
    msg.add("www", 60, "CNAME", "ns1")       # a CNAME beside data is ignored
    msg.add("@", 60, "SOA", "ns1 hostmaster 99 1 1 1 1")  # an older serial is ignored
    assert update.apply(zone(), wire_round(msg)).zone is None


def test_an_update_outside_the_zone_or_of_a_meta_type_fails_whole() -> None:
    msg = message()
    msg.add("svc", 60, "A", "192.0.2.50")
    msg.add("www.example.org.", 60, "A", "192.0.2.9")
    with pytest.raises(UpdateRefused) as caught:
        update.apply(zone(), wire_round(msg))
    assert caught.value.rcode == dns.rcode.NOTZONE


def test_a_newer_soa_in_the_update_is_taken_as_is() -> None:
    msg = message()
    msg.replace("@", 300, "SOA", "ns1 hostmaster 500 3600 600 86400 60")
    msg.add("svc", 60, "A", "192.0.2.50")
    after = update.apply(zone(), wire_round(msg)).zone
    assert after is not None and serial(after) == 500


# --- against a running lab --------------------------------------------------------------------


def signed_update(lab: Any, key: dns.tsig.Key) -> dns.update.UpdateMessage:
    return dns.update.UpdateMessage("example.com.", keyring={key.name: key}, keyname=key.name)


def test_dnspython_update_with_the_labs_key_is_served_by_every_server_of_the_zone(make_dns_lab: Any) -> None:
    lab = make_dns_lab()
    key = lab.lab.replication.key
    msg = signed_update(lab, key)
    msg.add("printer", 120, "A", "192.0.2.77")
    reply = dns.query.tcp(msg, "127.0.3.1", port=lab.port, timeout=5)
    assert reply.rcode() == dns.rcode.NOERROR and reply.had_tsig
    for address in ("127.0.3.1", "127.0.3.2"):  # both name servers of example.com
        answer = dns.query.udp(dns.message.make_query("printer.example.com", "A"), address, port=lab.port, timeout=5)
        assert [r.to_text() for r in answer.answer[0]] == ["192.0.2.77"]
    assert lab.resolver.resolve("printer.example.com", "A")[0].to_text() == "192.0.2.77"


def test_tsig_keeps_the_machines_time_when_the_fake_lab_clock_moves(make_dns_lab: Any) -> None:
    """dig and nsupdate sign with the real time: days of lab clock must not make them BADTIME."""
    lab = make_dns_lab()
    lab.advance(30 * 86400)
    key = lab.lab.replication.key
    msg = signed_update(lab, key)
    msg.add("later", 60, "A", "192.0.2.78")
    assert dns.query.tcp(msg, "127.0.3.1", port=lab.port, timeout=5).rcode() == dns.rcode.NOERROR


def test_unsigned_update_is_refused_and_a_wrong_key_notauth(make_dns_lab: Any) -> None:
    lab = make_dns_lab()
    msg = dns.update.UpdateMessage("example.com.")
    msg.add("printer", 120, "A", "192.0.2.77")
    assert dns.query.udp(msg, "127.0.3.1", port=lab.port, timeout=5).rcode() == dns.rcode.REFUSED
    stranger = tsig.new_key("stranger.")
    msg = signed_update(lab, stranger)
    msg.add("printer", 120, "A", "192.0.2.77")
    with pytest.raises(dns.tsig.PeerBadKey):
        dns.query.udp(msg, "127.0.3.1", port=lab.port, timeout=5)
    answer = dns.query.udp(dns.message.make_query("printer.example.com", "A"), "127.0.3.1", port=lab.port, timeout=5)
    assert answer.rcode() == dns.rcode.NXDOMAIN


@pytest.mark.skipif(shutil.which("nsupdate") is None, reason="nsupdate is not installed (bind9-dnsutils)")
def test_nsupdate_adds_and_deletes_with_the_key_and_fails_without(make_dns_lab: Any, tmp_path: Any) -> None:
    lab = make_dns_lab()
    key = lab.lab.replication.key
    key_file = lab.lab.replication.write_key_file(tmp_path / "lab.key")
    server = f"server 127.0.3.1 {lab.port}\n"

    def nsupdate(script: str, *options: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["nsupdate", *options], input=server + script + "send\n", capture_output=True,
                              text=True, timeout=30)

    added = nsupdate("update add svc.example.com. 60 A 192.0.2.60\n", "-y", tsig.dig_option(key))
    assert added.returncode == 0, added.stderr
    ask = lambda: dns.query.udp(dns.message.make_query("svc.example.com", "A"), "127.0.3.1",  # noqa: E731
                                port=lab.port, timeout=5)
    assert ask().answer[0][0].to_text() == "192.0.2.60"
    assert nsupdate("update delete svc.example.com. A\n", "-k", str(key_file)).returncode == 0
    assert ask().rcode() == dns.rcode.NXDOMAIN
    wrong = nsupdate("update add svc.example.com. 60 A 192.0.2.61\n", "-y",
                     f"hmac-sha256:{key.name.to_text()}:{'QUJD' * 8}")
    assert wrong.returncode != 0 and "NOTAUTH(BADSIG)" in wrong.stderr + wrong.stdout
    unsigned = nsupdate("update add svc.example.com. 60 A 192.0.2.61\n")
    assert unsigned.returncode != 0 and "REFUSED" in unsigned.stderr + unsigned.stdout
    assert ask().rcode() == dns.rcode.NXDOMAIN
