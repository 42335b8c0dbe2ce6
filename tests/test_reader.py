"""dnslab.core.reader against dnspython: every reply the signed sample lab gives, read both ways, must agree;
mangled and truncated replies must be refused by both (BadReply, never another exception)."""

from __future__ import annotations

import random
import socket
from collections.abc import Iterator

import dns.edns
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdata
import dns.rdatatype
import dns.rrset
import dns.tsigkeyring
import pytest

from dnslab.core.reader import BadReply, Reply, read_plain_query, read_reply
from dnslab.core.writer import write_reply
from dnslab.testing import DnsLab

TYPES = ["A", "AAAA", "NS", "SOA", "MX", "TXT", "CNAME", "DNAME", "PTR", "DS", "DNSKEY", "NSEC", "NSEC3PARAM",
         "SRV", "CAA", "ANY"]


def sections(message: dns.message.Message | Reply) -> list[list[tuple[object, ...]]]:
    """Each section as (name with its case, class, type, covers, TTL, rdata with case) in order; each
    rdata by the dnspython class it is (the reader's Wire classes are subclasses) and its hash."""
    return [[(rrset.name.labels, rrset.rdclass, rrset.rdtype, rrset.covers, rrset.ttl,
              [(dnspython_class(rd), rd.to_wire(), hash(rd)) for rd in rrset])
             for rrset in section] for section in (message.answer, message.authority, message.additional)]


def dnspython_class(rdata: dns.rdata.Rdata) -> type:
    return next(cls for cls in type(rdata).__mro__ if cls.__module__.startswith("dns."))


def assert_same(wire: bytes) -> None:
    expected = dns.message.from_wire(wire)
    got = read_reply(wire)
    for mine, theirs in zip(got.answer + got.authority + got.additional,
                            expected.answer + expected.authority + expected.additional):
        assert mine == theirs and theirs == mine and not mine != theirs  # equal RRsets, rdata by rdata
    assert got.id == expected.id and got.flags == expected.flags and got.rcode() == expected.rcode()
    assert (got.edns, got.ednsflags, got.payload) == (expected.edns, expected.ednsflags, expected.payload)
    assert [(o.otype, o.to_wire()) for o in got.options] == [(o.otype, o.to_wire()) for o in expected.options]
    assert [(n.labels, t, c) for n, t, c in got.question] == [
        (q.name.labels, q.rdtype, q.rdclass) for q in expected.question]
    assert sections(got) == sections(expected)


def queries(name: dns.name.Name) -> Iterator[bytes]:
    """Every type above for *name*, with DO=1 and without, as sent and in 0x20-style mixed case."""
    flipped = dns.name.Name([label.swapcase() if i % 2 else label for i, label in enumerate(name.labels)])
    for index, rdtype in enumerate(TYPES):
        for asked, dnssec in ((name, index % 2 == 0), (flipped, index % 2 == 1)):
            query = dns.message.make_query(asked, rdtype, use_edns=0 if dnssec or rdtype == "ANY" else False,
                                           want_dnssec=dnssec, payload=1232)
            query.flags &= ~dns.flags.RD
            yield query.to_wire()


def ask_all(address: str, port: int, wires: list[bytes]) -> list[bytes]:
    """The raw replies of one lab server to *wires* (TC=1 replies included: they are replies too),
    sent 100 at a time (the sample lab delays replies as its sites say) until one second passes
    in silence; a server the sample keeps down gives none."""
    replies: list[bytes] = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(1.0)
        for start in range(0, len(wires), 100):
            batch = wires[start:start + 100]
            for wire in batch:
                sock.sendto(wire, (address, port))
            for _ in batch:
                try:
                    replies.append(sock.recv(65535))
                except TimeoutError:
                    break
    return replies


@pytest.fixture(scope="module")
def replies(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[bytes]]:
    """Every zone server of the signed sample lab asked every name it serves (and a missing one) for
    every type in TYPES (see `queries`)."""
    collected: list[bytes] = []
    with DnsLab(dnssec=True, keys_dir=tmp_path_factory.mktemp("keys")) as lab:
        running = lab.lab
        for plan in running.hierarchy.servers:
            for zone in plan.zones:
                names = sorted(zone.names) + [dns.name.from_text("no-such-name", zone.origin)]
                collected += ask_all(plan.address, running.actual_port,
                                     [wire for name in names for wire in queries(name)])
    yield collected


def test_every_sample_reply_reads_as_dnspython_reads_it(replies: list[bytes]) -> None:
    assert len(replies) > 1000
    kinds = {dns.message.from_wire(wire).rcode() for wire in replies}
    assert {dns.rcode.NOERROR, dns.rcode.NXDOMAIN} <= kinds
    seen_types: set[int] = set()
    for wire in replies:
        assert_same(wire)
        reply = read_reply(wire)
        seen_types |= {rrset.rdtype for rrset in reply.authority + reply.answer}
    # the sample really exercises the signed and compressed kinds the resolver reads
    assert {dns.rdatatype.RRSIG, dns.rdatatype.NSEC, dns.rdatatype.DNSKEY, dns.rdatatype.NS,
            dns.rdatatype.SOA, dns.rdatatype.CNAME, dns.rdatatype.A} <= seen_types


def dnspython_reads(wire: bytes) -> dns.message.Message | None:
    try:
        message = dns.message.from_wire(wire)
    except Exception:  # noqa: BLE001 - any refusal counts as one
        return None
    return message


def test_truncated_and_mangled_replies_are_refused_as_dnspython_refuses_them(replies: list[bytes]) -> None:
    """Every cut of a few replies, and a bounded number of random byte changes to many: where
    dnspython reads a QUERY reply, we read the same; where it refuses, we raise BadReply only."""
    rng = random.Random(2126)
    samples = rng.sample(replies, 40)
    refused = agreed = 0
    for wire in samples[:8]:
        for cut in range(len(wire)):
            with pytest.raises(BadReply):
                read_reply(wire[:cut])
    for _ in range(6000):
        data = bytearray(rng.choice(samples))
        for _ in range(rng.randint(1, 4)):
            position = rng.randrange(len(data))
            data[position] = rng.choice((0, 1, 0x3F, 0x40, 0xC0, 0xFF, rng.randrange(256)))
        data[2] &= 0x87  # opcode QUERY, as the upstream reader only ever sees (reply_matches)
        wire = bytes(data)
        message = dnspython_reads(wire)
        if message is None:
            with pytest.raises(BadReply):
                read_reply(wire)
            refused += 1
        else:
            assert_same(wire)
            agreed += 1
    assert refused > 500 and agreed > 500  # both outcomes were really exercised


def test_pointer_loops_and_forward_pointers_are_refused() -> None:
    header = b"\x12\x34\x84\x00\x00\x01\x00\x00\x00\x00\x00\x00"
    for name in (b"\xc0\x0c", b"\xc0\x0e\x00", b"\x01a\xc0\x0c", b"\x41" + b"a" * 65 + b"\x00"):
        with pytest.raises(BadReply):
            read_reply(header + name + b"\x00\x01\x00\x01")
    long_name = b"".join(b"\x3f" + b"a" * 63 for _ in range(4)) + b"\x00"  # 257 octets
    with pytest.raises(BadReply):
        read_reply(header + long_name + b"\x00\x01\x00\x01")


def test_interned_names_keep_each_replys_case() -> None:
    """Names are shared between replies only when their bytes (case included) are the same."""
    def reply(name: str) -> bytes:
        message = dns.message.make_response(dns.message.make_query(name, "A"))
        message.answer.append(dns.rrset.from_text(name, 300, "IN", "A", "192.0.2.1"))
        return message.to_wire()

    lower, upper = read_reply(reply("www.example.com.")), read_reply(reply("WWW.example.com."))
    assert lower.answer[0].name.labels[0] == b"www" and upper.answer[0].name.labels[0] == b"WWW"
    assert lower.answer[0].name == upper.answer[0].name


def test_a_tsig_or_a_misplaced_opt_is_refused() -> None:
    query = dns.message.make_query("example.com.", "A", use_edns=0)
    response = dns.message.make_response(query)
    wire = response.to_wire()
    # the OPT record moved into the answer section: ANCOUNT 1, ARCOUNT 0
    moved = wire[:6] + b"\x00\x01" + wire[8:10] + b"\x00\x00" + wire[12:]
    with pytest.raises(BadReply):
        read_reply(moved)
    assert read_reply(wire).edns == 0
    twice = wire[:10] + b"\x00\x02" + wire[12:] + wire[-11:]
    with pytest.raises(BadReply):
        read_reply(twice)
    with pytest.raises(BadReply):
        read_reply(b"")
    assert isinstance(read_reply(wire), Reply)
    signed = dns.message.make_response(query)
    signed.use_tsig(dns.tsigkeyring.from_text({"key.": "c2VjcmV0c2VjcmV0"}), keyname="key.")
    with pytest.raises(BadReply):
        read_reply(signed.to_wire())


# --- clients' plain queries ---------------------------------------------------------------------


def same_query(got: dns.message.Message, wire: bytes) -> None:
    expected = dns.message.from_wire(wire)
    assert (got.id, got.flags, got.opcode(), got.rcode()) == (expected.id, expected.flags, expected.opcode(),
                                                             expected.rcode())
    assert [(q.name.labels, q.rdclass, q.rdtype) for q in got.question] == [
        (q.name.labels, q.rdclass, q.rdtype) for q in expected.question]
    assert (got.edns, got.ednsflags, got.payload, got.options) == (expected.edns, expected.ednsflags,
                                                                   expected.payload, expected.options)
    assert got.to_wire() == expected.to_wire() == wire


def plain_queries() -> Iterator[bytes]:
    rng = random.Random(5)
    for index in range(400):
        name = rng.choice(["www.example.com.", "WwW.ExAmPlE.CoM.", ".", "a.b.c.d.e.f.", "x" * 63 + ".org."])
        query = dns.message.make_query(name, rng.choice(["A", "AAAA", "MX", "TXT", "DS", "ANY", "TYPE65280"]),
                                       rdclass=rng.choice(["IN", "IN", "CH"]),
                                       use_edns=rng.choice([False, 0]), want_dnssec=rng.random() < 0.5,
                                       payload=rng.choice([512, 1232, 4096, 100]))
        query.id = index
        query.flags = dns.flags.Flag(rng.choice([0, 0x0100, 0x0110, 0x0120, 0x0530]))
        yield query.to_wire()


def test_plain_queries_read_as_dnspython_reads_them() -> None:
    for wire in plain_queries():
        got = read_plain_query(wire)
        assert got is not None
        same_query(got, wire)


def test_queries_that_are_not_plain_are_left_to_dnspython() -> None:
    cookie = dns.message.make_query("example.com.", "A", use_edns=0,
                                    options=[dns.edns.CookieOption(b"12345678", b"")])
    padded = dns.message.make_query("example.com.", "A", use_edns=0, pad=128)
    two = dns.message.make_query("example.com.", "A")
    two.question.append(two.question[0])
    version = dns.message.make_query("example.com.", "A", use_edns=1)
    response = dns.message.make_response(dns.message.make_query("example.com.", "A"))
    long_name = b"\x00\x01\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00" + b"".join(
        b"\x3f" + b"a" * 63 for _ in range(4)) + b"\x00\x00\x01\x00\x01"  # 257 octets: dnspython refuses it
    for wire in (cookie.to_wire(), padded.to_wire(), two.to_wire(), version.to_wire(), response.to_wire(),
                 long_name, b"", b"\x00" * 11):
        assert read_plain_query(wire) is None


def test_mangled_queries_are_read_as_dnspython_reads_them_or_left_to_it() -> None:
    rng = random.Random(7)
    samples = list(plain_queries())
    read = 0
    for _ in range(4000):
        data = bytearray(rng.choice(samples))
        for _ in range(rng.randint(1, 3)):
            data[rng.randrange(len(data))] = rng.choice((0, 1, 0x3F, 0x40, 0xC0, 0xFF, rng.randrange(256)))
        wire = bytes(data)
        got = read_plain_query(wire)
        if got is not None:
            same_query(got, wire)
            read += 1
    assert read > 500


# --- writing replies --------------------------------------------------------------------------


def test_replies_are_written_as_dnspython_writes_them(replies: list[bytes]) -> None:
    """Every sample reply, read by dnspython and written again both ways, as a client's reply
    (QR, RA, EDNS or not): the same bytes, or None where dnspython must write it (too large, options)."""
    written = 0
    for wire in replies:
        message = dns.message.from_wire(wire)
        for limit in (512, 1232, 65535):
            expected = None
            try:
                expected = message.to_wire(max_size=limit, want_shuffle=False)
            except dns.exception.TooBig:
                pass
            got = write_reply(message, limit)
            if got is not None:
                assert got == expected
                written += 1
            else:
                assert expected is None or message.options or message.pad
    assert written > len(replies)


def test_a_reply_too_large_or_with_options_is_left_to_dnspython() -> None:
    query = dns.message.make_query("example.com.", "TXT", use_edns=0)
    reply = dns.message.make_response(query)
    strings = [f'"{str(i) * 200}"' for i in range(5)]
    reply.answer.append(dns.rrset.from_text("example.com.", 60, "IN", "TXT", *strings))
    assert write_reply(reply, 512) is None  # too large: dnspython truncates it
    assert write_reply(reply, 1232) == reply.to_wire(max_size=1232, want_shuffle=False)
    reply.use_edns(0, 0, 1232, options=[dns.edns.EDEOption(dns.edns.EDECode.OTHER, "why")])
    assert write_reply(reply, 1232) is None


def test_the_readers_records_hash_as_dnspythons_through_copies() -> None:
    """A, AAAA, NS and CNAME records keep their hash in a slot: copies, replacements and pickles keep it right."""
    import copy
    import pickle

    message = dns.message.make_response(dns.message.make_query("www.example.com.", "A"))
    for rdtype, text in (("A", "192.0.2.1"), ("AAAA", "2001:db8::1"), ("NS", "Ns1.Example.com."),
                         ("CNAME", "Host.example.NET.")):
        message.answer.append(dns.rrset.from_text("www.example.com.", 300, "IN", rdtype, text))
    got = read_reply(message.to_wire())
    assert len(got.answer) == 4
    for mine, theirs in zip(got.answer, message.answer):
        record, expected = mine[0], theirs[0]
        assert type(record) is not type(expected)  # the reader's own class, or this test tests nothing
        for other in (record, copy.copy(record), copy.deepcopy(record), pickle.loads(pickle.dumps(record)),
                      record.replace(), record.replace(rdcomment="x")):
            assert hash(other) == hash(expected) and other == expected and expected == other
    changed = got.answer[0][0].replace(address="192.0.2.9")  # a new value: its hash is computed afresh
    assert hash(changed) == hash(dns.rdata.from_text("IN", "A", "192.0.2.9")) != hash(got.answer[0][0])


@pytest.mark.parametrize("direct", [True, False])
def test_the_wire_records_match_dnspythons_made_directly_or_by_their_constructors(
        direct: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """Both ways plain_records makes a reply's A, AAAA, NS and CNAME records (directly, or by the
    constructors when the import-time check finds the direct way does not match) give dnspython's record."""
    from dnslab.core import plain_records

    for flag in ("WIRE_A_DIRECT", "WIRE_AAAA_DIRECT", "WIRE_TARGETS_DIRECT"):
        assert getattr(plain_records, flag)  # the installed dnspython passes the check
        monkeypatch.setattr(plain_records, flag, direct)
    target = dns.name.from_text("Ns1.EXAMPLE.com.")
    made = [plain_records.wire_address(1, b"\xc0\x00\x02\x01"),
            plain_records.wire_address(28, b"\x20\x01\x0d\xb8" + bytes(11) + b"\x01"),
            plain_records.wire_target(2, target, target.to_wire()[:-1]),
            plain_records.wire_target(5, target, target.to_wire()[:-1])]
    expected = [dns.rdata.from_text("IN", rdtype, text) for rdtype, text in (
        ("A", "192.0.2.1"), ("AAAA", "2001:db8::1"), ("NS", "Ns1.EXAMPLE.com."), ("CNAME", "Ns1.EXAMPLE.com."))]
    for mine, theirs in zip(made, expected):
        assert isinstance(mine, type(theirs)) and type(mine) is not type(theirs)
        assert mine == theirs and hash(mine) == hash(theirs) and mine.to_wire() == theirs.to_wire()
        assert mine.to_text() == theirs.to_text()  # the case of the target kept
