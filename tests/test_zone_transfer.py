"""AXFR, IXFR and TSIG on an authoritative server (issue 22, items 1 and 2): sans-I/O, then over the wire."""

from __future__ import annotations

import shutil
import struct
import subprocess
from pathlib import Path
from typing import Any

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import dns.rrset
import dns.tsig
import dns.xfr
import dns.zone
import pytest

from dnslab.authority import transfer, tsig
from dnslab.authority.journal import Journal
from dnslab.authority.server import AuthoritativeServer
from dnslab.core.clock import FakeClock
from dnslab.core.zone import Zone, changed_zone, load_zone_text

ZONE = """$ORIGIN example.test.
$TTL 300
@    SOA ns1 hostmaster 100 3600 600 86400 60
@    NS  ns1
ns1  A   127.0.3.1
www  A   192.0.2.1
www  A   192.0.2.2
{texts}
"""
LOOP = ("127.0.0.1", 5353)
AWAY = ("192.0.2.200", 5353)


def zone_of(text: str = ZONE) -> Zone:
    loaded = load_zone_text(text.format(texts="\n".join(f'big TXT "{i:03d} {"x" * 200}"' for i in range(30))))
    assert loaded.zone is not None, loaded.problems
    return loaded.zone


def serial(zone: Zone) -> int:
    return int(zone.soa[0].serial)  # type: ignore[attr-defined]


def with_a(zone: Zone, name: str, *addresses: str) -> Zone:
    return changed_zone(zone, rrset=dns.rrset.from_text(name, 300, "IN", "A", *addresses))


def ixfr_query(name: str, have: int, **kw: Any) -> dns.message.Message:
    query = dns.message.make_query(name, "IXFR", **kw)
    query.authority.append(dns.rrset.from_text(name, 0, "IN", "SOA", f". . {have} 0 0 0 0"))
    return query


def records(messages: list[bytes]) -> list[tuple[str, str, str]]:
    """Every answer record of a transfer, in order, as (name, type, data)."""
    out = []
    for wire in messages:
        message = dns.message.from_wire(wire, xfr=True, keyring=False)
        for rrset in message.answer:
            out += [(rrset.name.to_text(), dns.rdatatype.to_text(rrset.rdtype), rdata.to_text()) for rdata in rrset]
    return out


# --- AXFR ---------------------------------------------------------------------------------------


def test_axfr_sends_the_zone_soa_to_soa_in_several_messages_when_it_must() -> None:
    zone = zone_of()
    query = transfer.TransferQuery(7, False, zone.origin, dns.rdatatype.AXFR, edns=False)
    messages = transfer.axfr(query, zone, limit=1500)
    assert len(messages) > 3 and all(len(wire) <= 1500 - transfer.TSIG_ROOM for wire in messages)
    got = records(messages)
    assert got[0][1] == got[-1][1] == "SOA"
    assert sum(1 for r in got if r[1] == "SOA") == 2
    expected = {(r.name.to_text(), dns.rdatatype.to_text(r.rdtype), d.to_text()) for r in zone.rrsets() for d in r}
    assert set(got) == expected and len(got) == len(expected) + 1
    first, later = dns.message.from_wire(messages[0], xfr=True), dns.message.from_wire(messages[1], xfr=True)
    assert len(first.question) == 1 and not later.question  # the question in the first only
    assert all(dns.message.from_wire(w, xfr=True).flags & dns.flags.AA for w in messages)


def test_server_streams_axfr_over_tcp_to_allowed_peers_and_refuses_the_rest() -> None:
    server = AuthoritativeServer([zone_of()])
    wire = dns.message.make_query("example.test", "AXFR").to_wire()
    stream = server.handle(wire, True, LOOP)
    assert isinstance(stream, list) and records(stream)[0][1] == "SOA"
    refused = dns.message.from_wire(server.handle(wire, True, AWAY))
    assert refused.rcode() == dns.rcode.REFUSED and refused.question  # NSD's answer without provide-xfr
    # The refusal is not replayed to an allowed client from the server's ready replies.
    assert isinstance(server.handle(wire, True, LOOP), list)
    assert dns.message.from_wire(server.handle(wire, False, LOOP)).rcode() == dns.rcode.NOTIMP  # TCP only
    server.ops.transfer_acl = ()
    assert dns.message.from_wire(server.handle(wire, True, LOOP)).rcode() == dns.rcode.REFUSED


def test_axfr_reply_is_what_dnspython_reads_back_as_the_same_zone() -> None:
    zone = zone_of()
    server = AuthoritativeServer([zone])
    stream = server.handle(dns.message.make_query("example.test", "AXFR").to_wire(), True, LOOP)
    copy = dns.zone.Zone(zone.origin, relativize=False)
    with dns.xfr.Inbound(copy, dns.rdatatype.AXFR) as inbound:
        done = [inbound.process_message(dns.message.from_wire(wire, xfr=True)) for wire in stream]
    assert done[-1] and not any(done[:-1])  # complete at the last message, not before
    assert copy.get_rdataset("www.example.test.", "A") == zone.get(dns.name.from_text("www.example.test."), 1)


# --- IXFR ---------------------------------------------------------------------------------------


def test_ixfr_sends_the_journal_steps_from_the_client_serial() -> None:
    zone = zone_of()
    server = AuthoritativeServer([zone])
    one = with_a(zone, "new.example.test.", "192.0.2.9")
    two = with_a(one, "www.example.test.", "192.0.2.1", "192.0.2.3")
    server.replace_zone(one)
    server.replace_zone(two)
    got = records(server.handle(ixfr_query("example.test.", 100).to_wire(), True, LOOP))
    soas = [int(r[2].split()[2]) for r in got if r[1] == "SOA"]
    assert soas == [102, 100, 101, 101, 102, 102]
    assert ("new.example.test.", "A", "192.0.2.9") in got
    assert got.index(("www.example.test.", "A", "192.0.2.2")) < got.index(("www.example.test.", "A", "192.0.2.3"))
    # From 101: only the second step.
    assert [r[1] for r in records(server.handle(ixfr_query("example.test.", 101).to_wire(), True, LOOP))] \
        == ["SOA", "SOA", "A", "SOA", "A", "SOA"]


@pytest.mark.parametrize("have", [102, 150])
def test_ixfr_from_a_client_up_to_date_or_ahead_gets_the_single_soa(have: int) -> None:
    zone = zone_of()
    server = AuthoritativeServer([zone])
    server.replace_zone(with_a(with_a(zone, "a.example.test.", "192.0.2.9"), "b.example.test.", "192.0.2.9"))
    got = records(server.handle(ixfr_query("example.test.", have).to_wire(), True, LOOP))
    assert [(r[1], int(r[2].split()[2])) for r in got] == [("SOA", 102)]


def test_ixfr_from_a_serial_the_journal_does_not_reach_is_the_whole_zone() -> None:
    zone = zone_of()
    server = AuthoritativeServer([zone])
    server.replace_zone(with_a(zone, "a.example.test.", "192.0.2.9"))
    got = records(server.handle(ixfr_query("example.test.", 50).to_wire(), True, LOOP))
    assert got[0][1] == got[-1][1] == "SOA" and len(got) == sum(len(r) for r in server.zones[0].rrsets()) + 1


def test_ixfr_over_udp_fits_or_says_use_tcp_with_the_single_soa() -> None:
    zone = zone_of()
    server = AuthoritativeServer([zone])
    server.replace_zone(with_a(zone, "a.example.test.", "192.0.2.9"))
    small = dns.message.from_wire(server.handle(ixfr_query("example.test.", 100).to_wire(), False, LOOP), xfr=True)
    assert [r.rdtype for r in small.answer] == [6, 6, 6, 1, 6]  # incremental, in one datagram
    whole = dns.message.from_wire(server.handle(ixfr_query("example.test.", 1).to_wire(), False, LOOP), xfr=True)
    assert [r.rdtype for r in whole.answer] == [6] and not whole.flags & dns.flags.TC  # RFC 1995 §2


def test_ixfr_without_the_client_soa_is_formerr_with_the_question() -> None:
    server = AuthoritativeServer([zone_of()])
    reply = dns.message.from_wire(server.handle(dns.message.make_query("example.test", "IXFR").to_wire(), True, LOOP))
    assert reply.rcode() == dns.rcode.FORMERR and reply.question


def test_journal_forgets_a_history_it_cannot_tell() -> None:
    zone = zone_of()
    journal = Journal(limit=3)
    versions = [zone]
    for index in range(5):
        versions.append(with_a(versions[-1], f"n{index}.example.test.", "192.0.2.1"))
        journal.record(versions[-2], versions[-1])
    assert journal.serials == [102, 103, 104]  # bounded: the oldest steps go
    assert journal.since(100) is None and [d.new_serial for d in journal.since(103)] == [104, 105]  # type: ignore[union-attr]
    same_serial = Zone(zone.origin, "", [*versions[0].rrsets()][:-1])  # a record gone, serial unchanged
    journal.record(versions[0], same_serial)
    assert journal.serials == []


# --- TSIG ---------------------------------------------------------------------------------------


KEY = dns.tsig.Key("lab-key.", "w8pbtAfRr4KxJcy0oTJrawTgk+zBb6V5cBryMWGRmEk=")


def signed_server(clock: FakeClock | None = None) -> AuthoritativeServer:
    server = AuthoritativeServer([zone_of()])
    server.ops.keyring = {KEY.name: KEY}
    if clock is not None:
        server.ops.clock = clock
    return server


def test_a_signed_query_is_answered_signed_and_the_answer_unchanged() -> None:
    server = signed_server()
    plain = dns.message.from_wire(server.handle(dns.message.make_query("www.example.test", "A").to_wire(), False, AWAY))
    query = dns.message.make_query("www.example.test", "A")
    query.use_tsig({KEY.name: KEY}, KEY.name)
    reply = dns.message.from_wire(server.handle(query.to_wire(), False, AWAY), keyring={KEY.name: KEY},
                                  request_mac=query.mac)
    assert reply.had_tsig and reply.answer == plain.answer and reply.rcode() == dns.rcode.NOERROR


def test_a_signed_axfr_is_allowed_from_anywhere_and_every_message_signed() -> None:
    server = signed_server()
    query = dns.message.make_query("example.test", "AXFR")
    query.use_tsig({KEY.name: KEY}, KEY.name)
    stream = server.handle(query.to_wire(), True, AWAY)
    assert isinstance(stream, list)
    ctx, mac = None, query.mac
    for wire in stream:  # dnspython checks each MAC, chained to the one before (RFC 8945 §5.3.1)
        message = dns.message.from_wire(wire, keyring={KEY.name: KEY}, request_mac=mac, xfr=True,
                                        multi=True, tsig_ctx=ctx)
        ctx, mac = message.tsig_ctx, message.mac
        assert message.had_tsig


def tsig_reply(server: AuthoritativeServer, key: dns.tsig.Key, keyname: str) -> dns.message.Message:
    query = dns.message.make_query("www.example.test", "A")
    query.use_tsig({dns.name.from_text(keyname): key}, keyname)
    return dns.message.from_wire(server.handle(query.to_wire(), False, LOOP), keyring=False)


def test_unknown_key_is_notauth_badkey_and_a_wrong_secret_badsig_both_unsigned() -> None:
    server = signed_server()
    for keyname, error in (("nobody.", dns.rcode.BADKEY), ("lab-key.", dns.rcode.BADSIG)):
        reply = tsig_reply(server, dns.tsig.Key(keyname, "QUJDQUJDQUJDQUJDQUJDQUJDQUJDQUJD"), keyname)
        assert reply.tsig is not None and reply.tsig.name.to_text() == keyname
        assert reply.rcode() == dns.rcode.NOTAUTH and reply.tsig_error == error  # as NSD answers
        assert reply.tsig is not None and reply.tsig[0].mac == b"" and not reply.answer
        assert reply.question  # the question kept (NSD drops it)


def test_clock_skew_beyond_the_fudge_is_badtime_signed_with_the_server_time() -> None:
    clock = FakeClock()
    server = signed_server(clock)
    clock.wall()  # a fake clock's wall time starts as the real time when first read (the lab reads it at start)
    clock.advance(tsig.FUDGE + 60)  # the server's clock is now ahead of the client's
    query = dns.message.make_query("www.example.test", "A")
    query.use_tsig({KEY.name: KEY}, KEY.name)
    wire = server.handle(query.to_wire(), False, LOOP)
    reply = dns.message.from_wire(wire, keyring=False)
    assert reply.rcode() == dns.rcode.NOTAUTH and reply.tsig_error == dns.rcode.BADTIME
    rdata = reply.tsig[0]  # type: ignore[index]
    (high, low) = struct.unpack("!HI", rdata.other)
    assert abs(((high << 32) | low) - clock.wall()) < 2 and rdata.mac  # our time, and signed (RFC 8945 §5.2.3)
    with pytest.raises(dns.tsig.PeerBadTime):  # what dig and dnspython then report
        dns.message.from_wire(wire, keyring={KEY.name: KEY}, request_mac=query.mac)


def test_plain_queries_are_untouched_by_keys() -> None:
    server = signed_server()
    plain = dns.message.make_query("www.example.test", "A").to_wire()
    assert server.handle(plain, False, AWAY) == AuthoritativeServer([zone_of()]).handle(plain, False, AWAY)


def test_key_files_as_tsig_keygen_writes_them(tmp_path: Path) -> None:
    key = tsig.new_key("made.")
    path = tmp_path / "k.key"
    path.write_text("# comment\n" + tsig.key_file_text(key))
    assert tsig.read_key_file(path) == [key]
    path.write_text('key "x" { algorithm hmac-sha256; };')
    with pytest.raises(Exception, match="no secret"):
        tsig.read_key_file(path)


# --- over the wire, with the Debian tools -----------------------------------------------------


needs_dig = pytest.mark.skipif(shutil.which("dig") is None, reason="dig is not installed (bind9-dnsutils)")


def dig(*args: str) -> str:
    return subprocess.run(["dig", *args], capture_output=True, text=True, timeout=30).stdout


@needs_dig
def test_dig_axfr_and_ixfr_after_record_set(make_dns_lab: Any) -> None:
    lab = make_dns_lab()
    port = str(lab.port)
    before = dig("@127.0.3.1", "-p", port, "example.com", "AXFR", "+noall", "+answer")
    lines = [line.split() for line in before.splitlines() if line.strip()]
    assert lines[0][3] == lines[-1][3] == "SOA" and any(line[0] == "www.example.com." for line in lines)
    old = int(lines[0][6])
    lab.record_set("svc.example.com", "A", "192.0.2.44")
    ixfr = dig("@127.0.3.1", "-p", port, "example.com", f"IXFR={old}", "+noall", "+answer")
    got = [line.split() for line in ixfr.splitlines() if line.strip()]
    assert [line[3] for line in got] == ["SOA", "SOA", "SOA", "A", "SOA"]
    assert got[3][0] == "svc.example.com." and got[3][4] == "192.0.2.44"
    assert int(got[1][6]) == old and int(got[0][6]) == old + 1


@needs_dig
def test_dig_with_the_labs_key_and_with_a_wrong_one(make_dns_lab: Any) -> None:
    lab = make_dns_lab()
    key = lab.lab.replication.key
    good = dig("@127.0.3.1", "-p", str(lab.port), "www.example.com", "-y", tsig.dig_option(key), "+noall",
               "+comments", "+answer")
    assert "status: NOERROR" in good and "192.0.2.1" in good and "Couldn't verify" not in good
    wrong = f"hmac-sha256:{key.name.to_text()}:{'QUJD' * 8}"
    bad = dig("@127.0.3.1", "-p", str(lab.port), "www.example.com", "-y", wrong, "+noall", "+comments", "+additional")
    assert "status: NOTAUTH" in bad and "BADSIG" in bad


def test_a_signed_udp_reply_that_the_signature_would_push_past_the_size_is_truncated_and_signed() -> None:
    server = signed_server()
    query = dns.message.make_query("big.example.test", "TXT")  # no EDNS: 512 bytes at most
    query.use_tsig({KEY.name: KEY}, KEY.name)
    wire = server.handle(query.to_wire(), False, AWAY)
    assert len(wire) <= 512
    reply = dns.message.from_wire(wire, keyring={KEY.name: KEY}, request_mac=query.mac)
    assert reply.flags & dns.flags.TC and reply.had_tsig and reply.question and not reply.answer
    over_tcp = dns.message.from_wire(server.handle(query.to_wire(), True, AWAY), keyring={KEY.name: KEY},
                                     request_mac=query.mac)
    assert len(over_tcp.answer[0]) == 30 and not over_tcp.flags & dns.flags.TC


def test_mangled_signed_requests_transfers_and_updates_never_raise() -> None:
    """A bounded, seeded fuzz of the new paths: every mangled request gets a reply or silence."""
    import asyncio
    import inspect
    import random

    import dns.update

    server = signed_server()
    seeds = []
    for name, rdtype in (("www.example.test", "A"), ("example.test", "AXFR")):
        query = dns.message.make_query(name, rdtype)
        query.use_tsig({KEY.name: KEY}, KEY.name)
        seeds.append(query.to_wire())
    seeds.append(ixfr_query("example.test.", 100).to_wire())
    signed = dns.update.UpdateMessage("example.test", keyring={KEY.name: KEY}, keyname=KEY.name)
    signed.add("a", 60, "A", "192.0.2.1")
    signed.present("www")
    seeds.append(signed.to_wire())

    async def refused(origin: Any, message: Any) -> Any:
        from dnslab.authority.update import UpdateRefused, apply
        apply(server.zones[0], message)
        raise UpdateRefused(dns.rcode.REFUSED, "test")

    server.ops.update_hook = refused
    rng = random.Random(22)

    async def run() -> int:
        answered = 0
        for _ in range(600):
            wire = bytearray(rng.choice(seeds))
            for _ in range(rng.randint(1, 3)):
                if rng.random() < 0.7 or len(wire) < 2:
                    wire[rng.randrange(len(wire))] = rng.randrange(256)
                else:
                    del wire[rng.randrange(1, len(wire)):]
            for via_tcp in (False, True):
                reply = server.handle(bytes(wire), via_tcp, LOOP)
                if inspect.isawaitable(reply):
                    reply = await reply
                answered += reply is not None
        return answered

    assert asyncio.run(run()) > 400


@pytest.mark.parametrize("text, message", [
    ('[tsig_keys]\n"k" = "not base64!"', "secret of k is not base64"),
    ('[tsig_keys]\n"k" = 5', "must be a table"),
    ('tsig_key_file = "missing.key"', "cannot read TSIG key file"),
    ('allow_transfer = ["127.0.0.0/33"]', "not an address or a network"),
    ('allow_transfer = "127.0.0.1"', "must be a list"),
    ('[primaries]\n"example.com." = 1', "must be a table"),
    ('[also_notify]\n"example.com." = ["127.0.98.1@5399"]', "name its primary in \\[primaries\\]"),
    ('[primaries]\n"example.com." = "ns1.example.com."\n[also_notify]\n"example.com." = ["nsd@5399"]',
     "is not ADDRESS@PORT"),
])
def test_zone_operation_settings_that_are_wrong_are_one_line_errors(tmp_path: Path, text: str, message: str) -> None:
    from dnslab.core.errors import ConfigError
    from dnslab.lab.runtime import LabSettings

    (tmp_path / "lab.toml").write_text(text + "\n")
    with pytest.raises(ConfigError, match=message) as caught:
        LabSettings.load(tmp_path / "lab.toml")
    assert "\n" not in str(caught.value)


def test_a_key_files_secret_may_hold_what_looks_like_a_comment(tmp_path: Path) -> None:
    from dnslab.authority.tsig import read_key_file

    path = tmp_path / "k.key"  # base64 may hold "//"; comments (#, //, /* */) outside strings go
    path.write_text('# made by hand\nkey "k1" { // the key\n  algorithm hmac-sha256; /* block */\n'
                    '  secret "////+/+/+/+/+/+/+/+/+/+/";\n};\n')
    key = read_key_file(path)[0]
    assert key.name.to_text() == "k1." and key.secret == bytes([0xff] * 3 + [0xfb, 0xff, 0xbf] * 5)
