"""The wire-level fast path replays exactly what the full path would answer.

Two labs on fake clocks get the same queries in the same order: one with the
resolver's fast path, one without.  Every reply must be byte for byte the same
(IDs included: each query carries the same ID to both), through TTL countdown,
round-robin rotation, expiry, flushes and record changes.
"""

from __future__ import annotations

import math
import random
import socket
import struct
from dataclasses import replace
from pathlib import Path
from typing import Iterator

import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import pytest

from dnslab.core.clock import FakeClock
from dnslab.lab.signed_zones import DnssecSettings
from dnslab.core.fastpath import AnswerCache, WireAnswer
from dnslab.lab.runtime import Lab, LabSettings
from dnslab.lab.hierarchy import zone_files
from dnslab.resolution.settings import ResolverSettings
from dnslab.authority.server import AuthoritativeServer
from dnslab.core.zone import load_zones

from conftest import SAMPLE_ZONES, LabThread
from tools import bench_mix


class Pair:
    """Two identical labs, fast path on and off, driven in lockstep."""

    def __init__(self, keys: Path | None = None, folder: Path = SAMPLE_ZONES) -> None:
        """*keys*: sign both labs with the keys in that folder (the resolvers then validate);
        *folder*: the zones (the sample lab's by default)."""
        zones, _ = load_zones(zone_files(folder))
        down = LabSettings.load(folder / "lab.toml").start_down
        # One wall time for both: signatures (deterministic ECDSA) then come out byte for byte the same.
        self.clocks = [FakeClock(wall_start=1_800_000_000.0), FakeClock(wall_start=1_800_000_000.0)]
        signing = DnssecSettings(keys_dir=keys) if keys is not None else False
        self.labs = [Lab(zones, port=0, start_down=down, clock=clock, dnssec=signing,
                         resolver_settings=replace(ResolverSettings(), fast_path=fast))
                     for clock, fast in zip(self.clocks, (True, False))]
        self.threads = [LabThread(lab) for lab in self.labs]
        self.rng = random.Random(7)

    def ask(self, name: str, rdtype: str = "A", tcp: bool = False, **make: object) -> list[bytes]:
        query = dns.message.make_query(name, rdtype, **make)  # type: ignore[arg-type]
        query.id = self.rng.randrange(65536)
        wire = query.to_wire()
        replies = []
        for lab in self.labs:
            if tcp:
                # Raw bytes: re-rendering a parsed message with dnspython would shuffle its records.
                with socket.create_connection((lab.resolver_address, lab.actual_port), timeout=10) as conn:
                    conn.sendall(struct.pack("!H", len(wire)) + wire)
                    replies.append(_read_exactly(conn, struct.unpack("!H", _read_exactly(conn, 2))[0]))
            else:
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                    udp.settimeout(10)
                    udp.sendto(wire, (lab.resolver_address, lab.actual_port))
                    replies.append(udp.recv(65535))
        return replies

    def advance(self, seconds: float) -> None:
        for clock in self.clocks:
            clock.advance(seconds)


def _read_exactly(conn: socket.socket, count: int) -> bytes:
    data = b""
    while len(data) < count:
        chunk = conn.recv(count - len(data))
        if not chunk:
            raise ConnectionError("closed early")
        data += chunk
    return data


@pytest.fixture
def pair() -> Iterator[Pair]:
    yield from _running(Pair())


@pytest.fixture
def signed_pair(tmp_path: Path) -> Iterator[Pair]:
    yield from _running(Pair(keys=tmp_path / "keys"))


@pytest.fixture
def mix_pair(tmp_path: Path) -> Iterator[Pair]:
    """The bench's mix zones (tools/bench_mix.py): 100- and 40-record A sets, a 2 KB TXT, ..., signed."""
    yield from _running(Pair(keys=tmp_path / "keys", folder=bench_mix.write_zones(tmp_path / "zones")))


def _running(pair: Pair) -> Iterator[Pair]:
    for thread in pair.threads:
        thread.__enter__()
    try:
        yield pair
    finally:
        for thread in pair.threads:
            thread.__exit__(None, None, None)


def same(replies: list[bytes]) -> bytes:
    fast, slow = replies
    assert fast == slow, (dns.message.from_wire(fast), dns.message.from_wire(slow))
    return fast


QUESTIONS = [("www.example.com.", "A"), ("www.example.org.", "A"), ("WwW.ExAmPlE.cOm.", "A"),
             ("nope.example.net.", "A"), ("www.example.com.", "TXT"), ("t5.ttl-demo.org.", "A"),
             ("rr.ttl-demo.org.", "A"), ("example.com.", "MX"), ("q.apps.pages.net.", "A")]


def test_fast_and_full_paths_give_identical_replies_over_time(pair: Pair) -> None:
    for step in range(8):
        for name, rdtype in QUESTIONS:
            same(pair.ask(name, rdtype))
            same(pair.ask(name, rdtype, use_edns=0, payload=4096, want_dnssec=step % 2 == 1))
        pair.advance(2.5)  # t5 and rr (15 s) expire along the way; 3600 s data counts down
    fast = pair.labs[0].resolver
    assert fast is not None and fast.fast is not None and len(fast.fast) > 0
    assert fast.stats.cache_hits > 0


SIGNED_QUESTIONS = [("www.example.com.", "A"), ("nope.example.com.", "A"), ("www.example.com.", "SSHFP"),
                    ("q.apps.pages.net.", "A"), ("www.example.org.", "A"), ("rr.ttl-demo.org.", "A"),
                    ("foo.pages.net.", "A"), ("nope.ttl-demo.org.", "A")]  # a wildcard; a 10 s denial


def test_validated_answers_are_identical_too(signed_pair: Pair) -> None:
    # AD from dig's default AD=1, RRSIGs and proofs with DO=1, CD=1 unvalidated: each its own replay.
    for step in range(6):
        for name, rdtype in SIGNED_QUESTIONS:
            for do, cd in ((False, False), (True, False), (True, True)):
                query = dns.message.make_query(name, rdtype, use_edns=0, want_dnssec=do)
                flags = dns.flags.RD | dns.flags.AD | (dns.flags.CD if cd else 0)
                reply = dns.message.from_wire(same(signed_pair.ask(name, rdtype, use_edns=0, want_dnssec=do,
                                                                   flags=flags)))
                assert bool(reply.flags & dns.flags.AD) == (not cd), (name, rdtype, reply)
                del query
        signed_pair.advance(4)  # rr.ttl-demo.org (15 s) expires along the way
    fast = signed_pair.labs[0].resolver
    assert fast is not None and fast.fast is not None and len(fast.fast) > 0


def test_round_robin_goes_on_in_the_fast_path(pair: Pair) -> None:
    firsts = []
    for _ in range(7):
        reply = dns.message.from_wire(same(pair.ask("www.example.com.")))
        firsts.append(reply.answer[0][0].address)
    assert firsts == ["192.0.2.1", "192.0.2.2", "192.0.2.3"] * 2 + ["192.0.2.1"]


def test_expiry_flush_and_changes_take_effect_at_once(pair: Pair) -> None:
    same(pair.ask("t10.ttl-demo.org."))
    same(pair.ask("t10.ttl-demo.org."))
    pair.advance(9.5)
    assert dns.message.from_wire(same(pair.ask("t10.ttl-demo.org."))).answer[0].ttl == 1
    for thread, lab in zip(pair.threads, pair.labs):
        thread.run(lab.record_set("t10.ttl-demo.org.", "A", ["192.0.2.111"], ttl=10))
    pair.advance(0.5)  # exactly the TTL: gone from the cache, so the new data is fetched
    fresh = dns.message.from_wire(same(pair.ask("t10.ttl-demo.org.")))
    assert [r.address for r in fresh.answer[0]] == ["192.0.2.111"] and fresh.answer[0].ttl == 10
    for thread, lab in zip(pair.threads, pair.labs):
        thread.run(_flush(lab))
    same(pair.ask("t10.ttl-demo.org."))  # re-fetched after the flush in both


def test_dname_answers_replay_with_the_dname(pair: Pair) -> None:
    # RFC 6672: the DNAME, its synthesised CNAME (with the DNAME's TTL) and the target, every time.
    for thread, lab in zip(pair.threads, pair.labs):
        thread.run(lab.record_set("dn.example.com.", "DNAME", ["example.org."], ttl=600))
    for step in range(4):
        reply = dns.message.from_wire(same(pair.ask("mail.dn.example.com.")))
        dname, cname = reply.answer[0], reply.answer[1]
        assert (dname.rdtype, cname.rdtype) == (dns.rdatatype.DNAME, dns.rdatatype.CNAME), reply
        assert dname.ttl == cname.ttl == 600 - 100 * step
        pair.advance(100)
    fast = pair.labs[0].resolver
    assert fast is not None and fast.fast is not None and len(fast.fast) > 0  # replayed, not rebuilt


async def _flush(lab: Lab) -> None:
    assert lab.resolver is not None
    lab.resolver.cache.flush()


def test_truncation_and_tcp_match(pair: Pair) -> None:
    for _ in range(3):
        udp = dns.message.from_wire(same(pair.ask("big.example.com.", "TXT", use_edns=0)))
        assert udp.flags & dns.flags.TC
        tcp = dns.message.from_wire(same(pair.ask("big.example.com.", "TXT", tcp=True)))
        assert not tcp.flags & dns.flags.TC and tcp.answer


def test_authoritative_fast_path_matches_a_fresh_server() -> None:
    zones, _ = load_zones(zone_files(SAMPLE_ZONES))
    example = [zone for zone in zones if zone.origin.to_text() == "example.com."]
    warm, cold = AuthoritativeServer(example), AuthoritativeServer(example)
    rng = random.Random(3)
    for name, rdtype in [("www.example.com.", "A"), ("WWW.example.com.", "A"), ("nope.example.com.", "A"),
                         ("wiki.eng.example.com.", "A"), ("big.example.com.", "TXT"), ("example.com.", "NS")]:
        for edns in (-1, 0):
            for _ in range(3):
                query = dns.message.make_query(name, rdtype, use_edns=edns)
                query.id = rng.randrange(65536)
                first = warm.handle(query.to_wire())
                assert first == cold.handle(query.to_wire())
                cold.replies.clear()  # the cold server always takes the full path
    assert len(warm.replies) > 0


def test_kept_renderings_tick_exactly_when_the_ttls_do(pair: Pair) -> None:
    # The fast path re-renders a reply only when one of its TTLs changes; quarter-second
    # steps and two queries per step check both the reuse and the moment it stops.
    for name in ("t10.ttl-demo.org.", "rr.ttl-demo.org."):
        same(pair.ask(name))
    for _ in range(48):  # 12 s: every second boundary of both, and their expiry and refetch
        pair.advance(0.25)
        for name in ("t10.ttl-demo.org.", "rr.ttl-demo.org."):
            same(pair.ask(name))
            same(pair.ask(name))


def test_a_kept_rendering_has_the_ttls_a_fresh_one_would() -> None:
    clock = FakeClock(start=1000.0)
    answers = AnswerCache(clock)
    rng = random.Random(3)
    # Two records with awkward fractional expiry times, TTL fields at offsets 12 and 16.
    patches = [(12, 1000.0 + 7.3, 300), (16, 1000.0 + 5.0000001, 4)]
    answer = WireAnswer([(bytes(20), patches)], expires_at=1005.0000001, rcode_text="NOERROR", type_text="A")
    while clock.now() < answer.expires_at:
        reply = answers.render(answer, b"\x12\x34" + bytes(18))
        now = clock.now()
        assert reply[:2] == b"\x12\x34"
        for offset, expires_at, ttl in patches:
            assert struct.unpack_from("!I", reply, offset)[0] == min(ttl, math.ceil(expires_at - now)), now
        clock.advance(rng.choice((0.0, 1e-7, 0.01, 0.3, 0.7, 1.0)))


def test_a_ready_reply_is_kept_from_the_second_asking_on(pair: Pair) -> None:
    fast = pair.labs[0].resolver
    assert fast is not None and fast.fast is not None
    same(pair.ask("mail.example.com."))
    assert len(fast.fast) == 0  # one-off questions (a cold start) cost no template
    same(pair.ask("mail.example.com."))
    assert len(fast.fast) == 1
    hits = fast.stats.cache_hits
    same(pair.ask("mail.example.com."))
    assert fast.stats.cache_hits == hits + 1 and len(fast.fast) == 1


def test_large_and_truncated_answers_replay_byte_for_byte(mix_pair: Pair) -> None:
    # 100 A records: TC=1 over UDP for plain-DNS and EDNS clients, whole over TCP; 40 A
    # records: whole for EDNS (more orders than templates: one template, rotated), TC=1
    # without EDNS; a 2 KB TXT: TC=1 at 1232 bytes.  The counter turns on every reply, so
    # the TCP answers' order shows the replayed TC replies turned it as rebuilt ones did.
    firsts = []
    for step in range(45):
        for edns in (0, -1):
            big = dns.message.from_wire(same(mix_pair.ask("big.kinds.mix.", use_edns=edns)))
            assert big.flags & dns.flags.TC and not big.answer
        forty = dns.message.from_wire(same(mix_pair.ask("forty.kinds.mix.", use_edns=0)))
        assert not forty.flags & dns.flags.TC and len(forty.answer[0]) == 40
        firsts.append(forty.answer[0][0].address)
        plain = dns.message.from_wire(same(mix_pair.ask("forty.kinds.mix.", use_edns=-1)))
        assert plain.flags & dns.flags.TC and not plain.answer
        txt = dns.message.from_wire(same(mix_pair.ask("txt.kinds.mix.", "TXT", use_edns=0)))
        assert txt.flags & dns.flags.TC
        # DO=1: the signed denial (SOA, RRSIGs, NSECs) and the wildcard's proof, replayed too.
        denial = dns.message.from_wire(same(mix_pair.ask("nothere.kinds.mix.", want_dnssec=True)))
        assert denial.rcode() == dns.rcode.NXDOMAIN and len(denial.authority) >= 4
        wild = dns.message.from_wire(same(mix_pair.ask("q.wild.kinds.mix.", want_dnssec=True)))
        assert len(wild.answer) == 2 and wild.authority
        if step % 10 == 9:
            whole = dns.message.from_wire(same(mix_pair.ask("big.kinds.mix.", tcp=True)))
            assert len(whole.answer[0]) == 100
        mix_pair.advance(0.4)  # TTLs tick on the way
    # Round-robin: every reply about forty (the TC one too) turns its counter, past its 40 records.
    start = int(firsts[0].rsplit(".", 1)[1]) - 1
    assert firsts == [f"198.19.1.{1 + (start + 2 * i) % 40}" for i in range(45)]
    fast = mix_pair.labs[0].resolver
    assert fast is not None and fast.fast is not None
    kept = list(fast.fast._answers.values())
    assert sum(answer.spin is not None for answer in kept) == 2  # forty over EDNS, big over TCP
    assert sum(answer.variants[0][0][2] & 0x02 != 0 for answer in kept) == 4  # big x2, forty plain, txt
    assert len(kept) == 8  # and the DO=1 denial and wildcard


def test_a_datagram_replays_only_the_answer_its_key_holds_now() -> None:
    """The memo of datagrams (AnswerCache.replay) never outlives the answer it points at:
    replaced, expired, evicted or flushed, the next query takes the key path."""
    clock = FakeClock(start=1000.0)
    answers = AnswerCache(clock, max_entries=2)
    wire = b"\x12\x34" + bytes(18)

    def kept(first_byte: int, expires_at: float = 1300.0) -> WireAnswer:
        return WireAnswer([(bytes([first_byte]) * 20, [])], expires_at=expires_at, rcode_text="NOERROR", type_text="A")

    old = kept(1)
    answers.put(b"k", old, version=0)
    assert answers.replay(wire, 0) is None                  # not answered by this datagram yet
    assert answers.get(b"k", wire, 0, datagram=True) is old
    assert answers.replay(wire, 0) == b"\x12\x34" + bytes([1]) * 18
    answers.put(b"k", kept(2), version=0)                    # replaced: the memo must not give the old one
    assert answers.replay(wire, 0) is None
    answers.get(b"k", wire, 0, datagram=True)
    assert answers.replay(wire, 0) == b"\x12\x34" + bytes([2]) * 18
    assert answers.replay(wire, 1) is None                   # the RRset cache changed (a new version)
    answers.put(b"k", kept(3), version=0)
    answers.get(b"k", wire, 0, datagram=True)
    answers.put(b"x", kept(4), version=0)
    answers.put(b"y", kept(5), version=0)                    # evicts k, the oldest
    assert answers.replay(wire, 0) is None
    answers.put(b"k", kept(6, expires_at=1010.0), version=0)
    answers.get(b"k", wire, 0, datagram=True)
    clock.advance(10)                                        # expired
    assert answers.replay(wire, 0) is None
    answers.put(b"k", kept(7), version=0)
    answers.get(b"k", wire, 0, datagram=True)
    answers.clear()                                          # a flush
    assert answers.replay(wire, 0) is None and answers.get(b"k", wire, 0) is None


def test_replays_are_counted_in_the_statistics() -> None:
    from dnslab.services.resolver import Stats

    stats = Stats(started=0.0)
    answer = WireAnswer([(bytes(20), [])], expires_at=1e9, rcode_text="NXDOMAIN", type_text="AAAA")
    answer.replays = stats.replay_counter("AAAA", "NXDOMAIN")
    answers = AnswerCache(FakeClock(start=0.0))
    for _ in range(3):
        answers.render(answer, bytes(20))
    assert stats.queries == 3 and stats.cache_hits == 3
    assert stats.by_type == {"AAAA": 3} and stats.by_rcode == {"NXDOMAIN": 3}
    json = stats.to_json()
    assert json["queries"] == 3 and json["by_rcode"] == {"NXDOMAIN": 3} and "_replays" not in json


def test_an_authoritative_datagram_memo_is_emptied_with_the_replies() -> None:
    from dnslab.core.fastpath import ReplyCache

    replies = ReplyCache(max_entries=2)
    wire = b"\x12\x34" + b"question"
    replies.put(b"k", b"\x00\x00answer", wire)
    assert replies.replay(b"\xab\xcd" + b"question") == b"\xab\xcdanswer"  # the asker's ID
    replies.clear()  # the zone changed
    assert replies.replay(wire) is None and replies.get(b"k", wire) is None
