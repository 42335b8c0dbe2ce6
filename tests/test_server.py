"""The authoritative server's wire-level behaviour, without sockets.

Each test hands request bytes to `AuthoritativeServer.handle` and reads the
reply with dnspython, an independent parser, so a packing mistake in dnslib
or in the server cannot hide behind the same code reading it back.  The
expected shapes are NSD 4.6's (`minimal-responses: yes`); where dnslab chooses
otherwise the test says so.
"""

from __future__ import annotations

import struct

import dns.edns
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dnslab.authority.server import AuthoritativeServer
from dnslab.core.zone import load_zone_text

HEADER = struct.Struct("!HHHHHH")
QID = 0x1234

# 6 x 250-byte strings: more than 1232 bytes however it is packed, so only TCP carries it.
BIG_STRINGS = [chr(ord("a") + i) * 250 for i in range(6)]
# 3 x 200-byte strings: more than 512 bytes, well under 1232.
MEDIUM_STRINGS = [chr(ord("a") + i) * 200 for i in range(3)]
WIDE_NS = 20  # a delegation whose NS set and glue cannot fit in 1232 bytes

LAB_ZONE = "\n".join(
    [
        "$ORIGIN lab.test.",
        "$TTL 3600",
        "@ SOA ns1 hostmaster 1 3600 900 604800 300",
        "@ NS ns1",
        "ns1 A 127.0.0.1",
        "www A 192.0.2.1",
        "www A 192.0.2.2",
        *(f'big TXT "{s}"' for s in BIG_STRINGS),
        *(f'medium TXT "{s}"' for s in MEDIUM_STRINGS),
        "sub NS ns.sub",
        "ns.sub A 192.0.2.53",
        *(f"wide NS ns{i:02d}.wide" for i in range(1, WIDE_NS + 1)),
        *(f"ns{i:02d}.wide A 192.0.2.{i}" for i in range(1, WIDE_NS + 1)),
        *(f"ns{i:02d}.wide AAAA 2001:db8::{i:x}" for i in range(1, WIDE_NS + 1)),
    ]
)

# An apex NS set that fits in 512 bytes, with addresses that do not: the
# addresses are optional additional data, so they are dropped, not truncated.
MANY_NS = 20
MANY_ZONE = "\n".join(
    [
        "$ORIGIN many.test.",
        "$TTL 3600",
        "@ SOA ns01 hostmaster 1 3600 900 604800 300",
        *(f"@ NS ns{i:02d}" for i in range(1, MANY_NS + 1)),
        *(f"ns{i:02d} A 192.0.2.{i}" for i in range(1, MANY_NS + 1)),
        *(f"ns{i:02d} AAAA 2001:db8::{i:x}" for i in range(1, MANY_NS + 1)),
    ]
)


def _zone(text: str):  # type: ignore[no-untyped-def]
    loaded = load_zone_text(text)
    assert loaded.zone is not None, loaded.problems
    return loaded.zone


SERVER = AuthoritativeServer([_zone(LAB_ZONE), _zone(MANY_ZONE)])


# --- helpers ---------------------------------------------------------------------------


def query(
    name: str | dns.name.Name,
    rdtype: str | int = "A",
    *,
    rdclass: str | int = "IN",
    rd: bool = True,
    edns: int | None = None,
    payload: int = 1232,
    do: bool = False,
    qid: int = QID,
) -> bytes:
    """A query as a stub or resolver would send it."""
    message = dns.message.make_query(
        name, rdtype, rdclass, use_edns=edns if edns is not None else False, payload=payload, want_dnssec=do
    )
    message.id = qid
    message.flags = dns.flags.RD if rd else 0
    return message.to_wire()


def handle(wire: bytes, via_tcp: bool = False) -> bytes:
    reply = SERVER.handle(wire, via_tcp)
    assert reply is not None, "expected a reply, got silence"
    # handle() promises bytes: a bytearray trips up dnspython, socket code and dict keys.
    assert type(reply) is bytes
    return reply


def ask(wire: bytes, via_tcp: bool = False) -> dns.message.Message:
    """Handle *wire* and parse the reply, checking what every reply must satisfy."""
    reply = handle(wire, via_tcp)
    message = dns.message.from_wire(reply)
    assert message.id == HEADER.unpack_from(wire)[0]
    assert message.flags & dns.flags.QR
    assert not message.flags & dns.flags.RA, "an authoritative-only server never offers recursion"
    request_flags = HEADER.unpack_from(wire)[1]
    assert bool(message.flags & dns.flags.RD) == bool(request_flags & dns.flags.RD)
    if not via_tcp:
        assert len(reply) <= max(512, message.payload if message.edns >= 0 else 512)
    return message


def assert_header_only(reply: bytes, qid: int, rcode: int) -> dns.message.Message:
    """NSD's shape for requests it will not process: 12 bytes, no sections."""
    assert len(reply) == HEADER.size
    ident, flags, qd, an, ns, ar = HEADER.unpack(reply)
    assert ident == qid
    assert (qd, an, ns, ar) == (0, 0, 0, 0)
    assert flags & 0x8000  # QR
    assert not flags & 0x0080  # RA
    assert flags & 0xF == rcode
    return dns.message.from_wire(reply)


def rrs(section: list) -> list[str]:  # type: ignore[type-arg]
    return sorted(rdata.to_text() for rrset in section for rdata in rrset)


def txt_strings(message: dns.message.Message) -> list[str]:
    return sorted(s.decode() for rrset in message.answer for rdata in rrset for s in rdata.strings)


def with_header(wire: bytes, *, flags: int | None = None, counts: tuple[int, int, int, int] | None = None) -> bytes:
    ident, old_flags, *old_counts = HEADER.unpack_from(wire)
    return HEADER.pack(ident, old_flags if flags is None else flags, *(counts or old_counts)) + wire[HEADER.size:]


# --- ordinary answers and header flags -------------------------------------------------


def test_answer_flags_and_sections() -> None:
    reply = ask(query("www.lab.test"))
    assert reply.rcode() == dns.rcode.NOERROR
    assert reply.opcode() == dns.opcode.QUERY
    assert reply.flags & dns.flags.AA
    assert not reply.flags & dns.flags.TC
    assert [str(r.name) for r in reply.question] == ["www.lab.test."]
    assert rrs(reply.answer) == ["192.0.2.1", "192.0.2.2"]
    assert reply.answer[0].ttl == 3600
    assert reply.authority == [] and reply.additional == []
    assert reply.edns == -1, "no OPT in the reply when the query had none"


@pytest.mark.parametrize("rd", [True, False])
def test_rd_copied_and_ra_never_set(rd: bool) -> None:
    reply = ask(query("www.lab.test", rd=rd))  # ask() checks RD copied and RA clear
    assert bool(reply.flags & dns.flags.RD) is rd


def test_query_name_case_preserved_and_matched_case_insensitively() -> None:
    wire = query("WwW.LaB.tEsT")
    reply = ask(wire)
    # dnspython compares names case-insensitively, so compare the raw labels.
    assert reply.question[0].name.labels == (b"WwW", b"LaB", b"tEsT", b"")
    # The question section is the request's, byte for byte.
    question_len = len(wire) - HEADER.size
    assert handle(wire)[HEADER.size:HEADER.size + question_len] == wire[HEADER.size:]
    assert reply.flags & dns.flags.AA
    assert rrs(reply.answer) == ["192.0.2.1", "192.0.2.2"]


def test_mixed_case_negative_answer_keeps_case() -> None:
    reply = ask(query("NoSuch.LAB.test"))
    assert reply.rcode() == dns.rcode.NXDOMAIN
    assert reply.question[0].name.labels == (b"NoSuch", b"LAB", b"test", b"")
    assert [rrset.rdtype for rrset in reply.authority] == [dns.rdatatype.SOA]


@pytest.mark.parametrize("name", ["www.example.net", "test", ".", "lab.test.example"])
def test_name_in_no_served_zone_is_refused(name: str) -> None:
    reply = ask(query(name))
    assert reply.rcode() == dns.rcode.REFUSED
    assert not reply.flags & dns.flags.AA
    assert reply.answer == [] and reply.authority == [] and reply.additional == []
    assert str(reply.question[0].name) == dns.name.from_text(name).to_text()


@pytest.mark.parametrize("rdclass", [dns.rdataclass.CH, dns.rdataclass.HS, 0x1234])
def test_non_in_class_is_refused(rdclass: int) -> None:
    reply = ask(query("www.lab.test", rdclass=rdclass))
    assert reply.rcode() == dns.rcode.REFUSED
    assert not reply.flags & dns.flags.AA
    assert reply.answer == [] and reply.authority == []
    assert reply.question[0].rdclass == rdclass


# --- requests that are not processed ---------------------------------------------------


@pytest.mark.parametrize("opcode", [dns.opcode.IQUERY, dns.opcode.STATUS, 3, 6, 15])
@pytest.mark.parametrize("rd", [True, False])
def test_other_opcodes_get_notimp_header_only(opcode: int, rd: bool) -> None:
    wire = query("lab.test", "SOA", rd=rd)
    wire = with_header(wire, flags=(opcode << 11) | (0x0100 if rd else 0))
    message = assert_header_only(handle(wire), QID, dns.rcode.NOTIMP)
    assert message.opcode() == opcode, "the opcode is echoed"
    assert bool(message.flags & dns.flags.RD) is rd


@pytest.mark.parametrize("opcode", [dns.opcode.NOTIFY, dns.opcode.UPDATE])
@pytest.mark.parametrize("rd", [True, False])
def test_notify_to_a_non_secondary_and_unsigned_update_are_refused_with_the_question(opcode: int, rd: bool) -> None:
    """NSD answers such a NOTIFY REFUSED; BIND an UPDATE no key allows (docs/ZONE_OPERATIONS.md)."""
    wire = with_header(query("lab.test", "SOA", rd=rd), flags=(opcode << 11) | (0x0100 if rd else 0))
    message = dns.message.from_wire(handle(wire))
    assert message.rcode() == dns.rcode.REFUSED and message.opcode() == opcode
    assert message.question[0].name == dns.name.from_text("lab.test")
    assert bool(message.flags & dns.flags.RD) is rd and not message.answer


@pytest.mark.parametrize(
    "wire",
    [
        query("www.lab.test"),
        query("www.lab.test", edns=0),
        with_header(query("www.lab.test"), flags=0x8000 | (5 << 11)),  # a response to an UPDATE
        HEADER.pack(QID, 0xFFFF, 0xFFFF, 0xFFFF, 0xFFFF, 0xFFFF),
        HEADER.pack(QID, 0x8000, 0, 0, 0, 0),
    ],
    ids=["answer", "answer-edns", "update-response", "all-ones", "bare-header"],
)
def test_packet_with_qr_set_is_dropped(wire: bytes) -> None:
    ident, flags, *rest = HEADER.unpack_from(wire)
    wire = HEADER.pack(ident, flags | 0x8000, *rest) + wire[HEADER.size:]
    assert SERVER.handle(wire) is None
    assert SERVER.handle(wire, via_tcp=True) is None


@pytest.mark.parametrize("length", range(HEADER.size))
def test_packet_shorter_than_a_header_is_dropped(length: int) -> None:
    wire = query("www.lab.test")[:length]
    assert SERVER.handle(wire) is None
    assert SERVER.handle(wire, via_tcp=True) is None


def _questions(count: int) -> bytes:
    one = query("www.lab.test")
    return with_header(one[:HEADER.size], counts=(count, 0, 0, 0)) + one[HEADER.size:] * count


def _two_opts() -> bytes:
    wire = query("www.lab.test", edns=0)
    opt = wire[-11:]  # root owner, type OPT, no options: 11 bytes
    assert opt[:3] == b"\x00\x00\x29"
    return with_header(wire, counts=(1, 0, 0, 2)) + opt


def _pointer_chain(depth: int) -> bytes:
    """A query whose answer section holds a name made of *depth* pointers, each
    pointing at the one before: legal-looking, but deeper than any real name."""
    question = b"\x03www\x03lab\x04test\x00\x00\x01\x00\x01"
    head = b"\xc0\x0c" + struct.pack("!HHIH", 65280, 1, 0, 2 * depth)
    start = HEADER.size + len(question) + len(head)
    pointers, previous = b"", HEADER.size
    for _ in range(depth):
        pointers += struct.pack("!H", 0xC000 | previous)
        previous = start + len(pointers) - 2
    tail = struct.pack("!H", 0xC000 | previous) + struct.pack("!HHIH", 1, 1, 0, 4) + b"\x7f\x00\x00\x01"
    return HEADER.pack(QID, 0x0100, 1, 2, 0, 0) + question + head + pointers + tail


_PLAIN = query("www.lab.test")
FORMERR_CASES = {
    "header-only-claims-a-question": _PLAIN[:HEADER.size],
    "question-cut-in-name": _PLAIN[:HEADER.size + 5],
    "question-cut-in-type": _PLAIN[:-3],
    "label-runs-past-end": HEADER.pack(QID, 0x0100, 1, 0, 0, 0) + b"\x3fabc",
    "pointer-to-itself": HEADER.pack(QID, 0x0100, 1, 0, 0, 0) + b"\xc0\x0c\x00\x01\x00\x01",
    "pointer-forward": HEADER.pack(QID, 0x0100, 1, 0, 0, 0) + b"\xc0\x0e\x00\x01\x00\x01",
    "pointer-past-end": HEADER.pack(QID, 0x0100, 1, 0, 0, 0) + b"\xc3\xff\x00\x01\x00\x01",
    "reserved-label-type": HEADER.pack(QID, 0x0100, 1, 0, 0, 0) + b"\x41abc\x00\x00\x01\x00\x01",
    "zero-questions-no-body": with_header(_PLAIN[:HEADER.size], counts=(0, 0, 0, 0)),
    "zero-questions-with-body": with_header(_PLAIN, counts=(0, 0, 0, 0)),
    "two-questions": _questions(2),
    "three-questions": _questions(3),
    "oversized-question-count": with_header(_PLAIN, counts=(0xFFFF, 0, 0, 0)),
    "oversized-answer-count": with_header(_PLAIN, counts=(1, 0xFFFF, 0, 0)),
    "oversized-additional-count": with_header(_PLAIN, counts=(1, 0, 0, 0xFFFF)),
    "two-opt-records": _two_opts(),
    "opt-owner-not-root": query("www.lab.test", edns=0)[:-11] + b"\x01a\x00" + query("www.lab.test", edns=0)[-10:],
    "deep-pointer-chain": _pointer_chain(5000),
}


@pytest.mark.parametrize("wire", FORMERR_CASES.values(), ids=FORMERR_CASES.keys())
@pytest.mark.parametrize("via_tcp", [False, True])
def test_malformed_request_gets_formerr_header_only(wire: bytes, via_tcp: bool) -> None:
    message = assert_header_only(handle(wire, via_tcp), QID, dns.rcode.FORMERR)
    assert message.opcode() == dns.opcode.QUERY
    assert message.flags & dns.flags.RD  # copied, as in every reply


def test_two_questions_rejected_even_when_the_same() -> None:
    """RFC 9619: QDCOUNT must be 1; a second copy of the question does not make it valid."""
    assert_header_only(handle(_questions(2)), QID, dns.rcode.FORMERR)


# --- EDNS ------------------------------------------------------------------------------


@pytest.mark.parametrize("payload", [512, 1232, 4096, 65535])
@pytest.mark.parametrize("do", [False, True])
def test_opt_echoed_with_our_size_and_do_bit(payload: int, do: bool) -> None:
    reply = ask(query("www.lab.test", edns=0, payload=payload, do=do))
    assert reply.rcode() == dns.rcode.NOERROR
    assert reply.edns == 0
    assert reply.payload == 1232, "the server's own size, whatever the client offered"
    assert bool(reply.ednsflags & dns.flags.DO) is do
    assert rrs(reply.answer) == ["192.0.2.1", "192.0.2.2"]


def test_unknown_edns_options_are_ignored() -> None:
    message = dns.message.make_query(
        "www.lab.test", "A", use_edns=0, options=[dns.edns.GenericOption(65001, b"xyz"), dns.edns.GenericOption(10, b"12345678")]
    )
    message.id = QID
    reply = ask(message.to_wire())
    assert reply.rcode() == dns.rcode.NOERROR
    assert rrs(reply.answer) == ["192.0.2.1", "192.0.2.2"]
    assert reply.edns == 0 and reply.payload == 1232


@pytest.mark.parametrize("version", [1, 2, 255])
@pytest.mark.parametrize("name,rdclass", [("www.lab.test", "IN"), ("www.example.net", "IN"), ("www.lab.test", "CH")])
def test_unknown_edns_version_gets_badvers(version: int, name: str, rdclass: str) -> None:
    """RFC 6891 §6.1.3: BADVERS (16) before anything else, announcing version 0."""
    wire = query(name, edns=version, rdclass=rdclass)
    reply = ask(wire)
    assert reply.rcode() == dns.rcode.BADVERS == 16
    raw = handle(wire)
    assert HEADER.unpack_from(raw)[1] & 0xF == 0, "the low 4 bits of 16 go in the header"
    assert (reply.ednsflags >> 24) & 0xFF == 1, "the high 8 bits go in the OPT TTL"
    assert reply.edns == 0
    assert reply.payload == 1232
    assert str(reply.question[0].name) == name + "."
    assert reply.answer == [] and reply.authority == [] and reply.additional == []
    assert not reply.flags & dns.flags.AA


@pytest.mark.parametrize("payload", [0, 100, 300])
def test_small_edns_size_counts_as_512(payload: int) -> None:
    """RFC 6891 §6.2.5: sizes below 512 are treated as 512."""
    wire = query("many.test", "NS", edns=0, payload=payload)
    assert payload < len(handle(wire)) <= 512  # the answer needs more than the client offered
    reply = ask(wire)
    assert not reply.flags & dns.flags.TC
    assert len(rrs(reply.answer)) == MANY_NS


# --- size limits and truncation -------------------------------------------------------


def test_big_txt_really_is_bigger_than_1232() -> None:
    full = handle(query("big.lab.test", "TXT", edns=0), via_tcp=True)
    assert len(full) > 1232


def assert_truncated(reply: dns.message.Message, name: str, rdtype: str) -> None:
    assert reply.flags & dns.flags.TC
    assert reply.rcode() == dns.rcode.NOERROR
    assert [(str(r.name), r.rdtype) for r in reply.question] == [(name, dns.rdatatype.from_text(rdtype))]
    assert reply.answer == [] and reply.authority == []


@pytest.mark.parametrize(
    "edns,payload",
    [(None, 0), (0, 512), (0, 1232), (0, 4096), (0, 65535)],
    ids=["no-edns", "edns-512", "edns-1232", "edns-4096", "edns-65535"],
)
def test_big_answer_over_udp_is_truncated(edns: int | None, payload: int) -> None:
    reply = ask(query("big.lab.test", "TXT", edns=edns, payload=payload, do=edns is not None))
    assert_truncated(reply, "big.lab.test.", "TXT")
    if edns is None:
        assert reply.edns == -1 and reply.additional == []
    else:
        assert reply.edns == 0 and reply.payload == 1232, "the OPT survives truncation"
        assert reply.ednsflags & dns.flags.DO
        assert reply.additional == []


@pytest.mark.parametrize("edns", [None, 0])
def test_big_answer_over_tcp_is_complete(edns: int | None) -> None:
    reply = ask(query("big.lab.test", "TXT", edns=edns), via_tcp=True)
    assert not reply.flags & dns.flags.TC
    assert reply.flags & dns.flags.AA
    assert txt_strings(reply) == BIG_STRINGS
    assert reply.edns == (-1 if edns is None else 0)


@pytest.mark.parametrize(
    "edns,payload,truncated",
    [(None, 0, True), (0, 100, True), (0, 512, True), (0, 600, True), (0, 1232, False), (0, 4096, False)],
)
def test_udp_limit_is_the_smaller_of_client_size_and_1232(edns: int | None, payload: int, truncated: bool) -> None:
    full = handle(query("medium.lab.test", "TXT", edns=0), via_tcp=True)
    assert 600 < len(full) <= 1232  # the zone data is what the cases below assume
    reply = ask(query("medium.lab.test", "TXT", edns=edns, payload=payload))
    if truncated:
        assert_truncated(reply, "medium.lab.test.", "TXT")
    else:
        assert not reply.flags & dns.flags.TC
        assert txt_strings(reply) == MEDIUM_STRINGS


def test_small_referral_carries_glue() -> None:
    reply = ask(query("host.sub.lab.test"))
    assert reply.rcode() == dns.rcode.NOERROR
    assert not reply.flags & dns.flags.AA
    assert not reply.flags & dns.flags.TC
    assert reply.answer == []
    assert rrs(reply.authority) == ["ns.sub.lab.test."]
    assert rrs(reply.additional) == ["192.0.2.53"]


@pytest.mark.parametrize("edns", [None, 0])
def test_referral_whose_glue_does_not_fit_is_truncated(edns: int | None) -> None:
    """RFC 9471: in-domain glue is required, so a referral missing some says TC.

    As NSD 4: the whole NS set stays in authority and as much glue as fits
    (A before AAAA) goes in additional, within the client's size.
    """
    wire = query("host.wide.lab.test", edns=edns, payload=4096)
    raw = SERVER.handle(wire, False)
    assert raw is not None and len(raw) <= (512 if edns is None else 1232)
    reply = dns.message.from_wire(raw)
    assert reply.flags & dns.flags.TC and not reply.flags & dns.flags.AA
    assert len(rrs(reply.authority)) == WIDE_NS
    glue = [r for r in reply.additional if r.rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA)]
    assert 0 < sum(len(r) for r in glue) < 2 * WIDE_NS
    types = [r.rdtype for r in glue]
    assert types == sorted(types, key=lambda t: t != dns.rdatatype.A)  # every A before any AAAA
    assert reply.edns == (-1 if edns is None else 0)


def test_referral_over_tcp_has_all_glue() -> None:
    reply = ask(query("host.wide.lab.test", edns=0), via_tcp=True)
    assert not reply.flags & dns.flags.TC
    assert not reply.flags & dns.flags.AA
    assert len(rrs(reply.authority)) == WIDE_NS
    addresses = [r for r in reply.additional if r.rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA)]
    assert sum(len(r) for r in addresses) == 2 * WIDE_NS
    assert reply.edns == 0


@pytest.mark.parametrize("edns", [None, 0])
def test_optional_additional_data_that_does_not_fit_is_left_out_silently(edns: int | None) -> None:
    """An answer that fits goes out whole without TC; addresses fill what room is left (NSD)."""
    reply = ask(query("many.test", "NS", edns=edns))
    assert not reply.flags & dns.flags.TC
    assert reply.flags & dns.flags.AA
    assert len(rrs(reply.answer)) == MANY_NS
    extra = [r for r in reply.additional if r.rdtype != dns.rdatatype.OPT]
    assert sum(len(r) for r in extra) < 2 * MANY_NS
    assert reply.edns == (-1 if edns is None else 0), "the OPT is not optional data"


def test_additional_data_present_over_tcp() -> None:
    reply = ask(query("many.test", "NS"), via_tcp=True)
    assert len(rrs(reply.answer)) == MANY_NS
    assert sum(len(r) for r in reply.additional) == 2 * MANY_NS


# --- zone data dnslib's own parser would reject ----------------------------------------


def test_names_with_non_utf8_labels_in_rdata() -> None:
    """RFC 2181 §11: a label may hold any byte.  dnslib's wire parser refuses
    non-UTF-8 labels, which once made the server fail to start on such a zone."""
    zone = _zone(
        "\n".join(
            [
                "$ORIGIN bin.test.",
                "$TTL 3600",
                "@ SOA ns1 \\255mail 1 3600 900 604800 300",
                "@ NS ns1",
                "@ MX 10 \\200mx",
                "ns1 A 127.0.0.1",
                "x CNAME \\255.bin.test.",
                "\\255 A 192.0.2.9",
                "\\200mx A 192.0.2.10",
                "d DNAME \\254.bin.test.",
                "y.\\254 A 192.0.2.11",
            ]
        )
    )
    server = AuthoritativeServer([zone])

    def ask_bin(name: str, rdtype: str) -> dns.message.Message:
        reply = server.handle(query(name, rdtype))
        assert type(reply) is bytes
        return dns.message.from_wire(reply)

    cname = ask_bin("x.bin.test", "A")
    assert cname.rcode() == dns.rcode.NOERROR
    assert [rrset.to_text() for rrset in cname.answer] == [
        "x.bin.test. 3600 IN CNAME \\255.bin.test.",
        "\\255.bin.test. 3600 IN A 192.0.2.9",
    ]
    mx = ask_bin("bin.test", "MX")
    assert rrs(mx.answer) == ["10 \\200mx.bin.test."]
    soa = ask_bin("bin.test", "SOA")
    assert soa.answer[0][0].rname == dns.name.from_text("\\255mail.bin.test.")
    dname = ask_bin("y.d.bin.test", "A")
    assert dname.rcode() == dns.rcode.NOERROR
    assert rrs(dname.answer) == ["192.0.2.11", "\\254.bin.test.", "y.\\254.bin.test."]


# --- robustness ------------------------------------------------------------------------

_VALID_QUERIES = [
    query("www.lab.test"),
    query("WWW.lab.test", edns=0, do=True),
    query("big.lab.test", "TXT", edns=0, payload=4096),
    query("host.wide.lab.test", rd=False),
    query("many.test", "NS", edns=0),
    query("nosuch.lab.test", "AAAA"),
]


@st.composite
def _mutated(draw: st.DrawFn) -> bytes:
    """A valid query with one of the faults a broken or hostile client sends."""
    wire = bytearray(draw(st.sampled_from(_VALID_QUERIES)))
    fault = draw(st.sampled_from(["flip", "truncate", "counts", "pointer", "splice"]))
    if fault == "flip":
        for _ in range(draw(st.integers(1, 8))):
            wire[draw(st.integers(0, len(wire) - 1))] = draw(st.integers(0, 255))
    elif fault == "truncate":
        del wire[draw(st.integers(0, len(wire))):]
    elif fault == "counts":
        index = draw(st.integers(0, 3))
        wire[4 + 2 * index:6 + 2 * index] = struct.pack("!H", draw(st.sampled_from([0, 2, 3, 255, 0x7FFF, 0xFFFF])))
    elif fault == "pointer":
        # A compression pointer anywhere after the header: to itself, forward,
        # past the end, or into the header.
        where = draw(st.integers(HEADER.size, len(wire) - 1))
        target = draw(st.sampled_from([where, where + 2, len(wire) + 100, 0x3FFF, 0, 2, HEADER.size]))
        wire[where:where + 2] = struct.pack("!H", 0xC000 | (target & 0x3FFF))
    else:
        where = draw(st.integers(HEADER.size, len(wire)))
        wire[where:where] = draw(st.binary(min_size=1, max_size=40))
    if len(wire) > 2 and draw(st.booleans()):
        wire[2] &= 0x7F  # keep QR clear so that most cases go past the first check
    return bytes(wire)


_PACKETS = st.one_of(
    st.binary(max_size=600),
    st.binary(min_size=HEADER.size, max_size=64).map(lambda b: bytes([b[0], b[1], b[2] & 0x7F]) + b[3:]),
    _mutated(),
    st.sampled_from([wire for wire in FORMERR_CASES.values() if len(wire) < 100]),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(wire=_PACKETS, via_tcp=st.booleans())
def _never_raises(wire: bytes, via_tcp: bool) -> None:
    reply = SERVER.handle(wire, via_tcp)
    if reply is None:
        return
    assert type(reply) is bytes
    assert len(reply) >= HEADER.size
    ident, flags, *_ = HEADER.unpack_from(reply)
    assert ident == HEADER.unpack_from(wire)[0]
    assert flags & 0x8000
    # SERVFAIL here can only come from the catch-all around an internal error.
    assert flags & 0xF != dns.rcode.SERVFAIL
    if not via_tcp:
        assert len(reply) <= 1232
    dns.message.from_wire(reply)  # a reply is a whole, well-formed message


def test_no_packet_makes_handle_raise_and_the_server_still_answers() -> None:
    _never_raises()
    reply = ask(query("www.lab.test", edns=0))
    assert reply.rcode() == dns.rcode.NOERROR
    assert reply.flags & dns.flags.AA
    assert rrs(reply.answer) == ["192.0.2.1", "192.0.2.2"]


@pytest.mark.parametrize("wire", [
    b"\x00\x07\x28\x00\x00\x01" + b"\x00" * 11,  # UPDATE, a zone section of type 0 class 0
    b"\x00\x07\x20\x00\x00\x01" + b"\x00" * 7,   # NOTIFY, a question cut after its name
    b"\x00\x07\x28\x00\x00\x01" + b"\x00" * 7,   # UPDATE, the same
], ids=["update-class-0", "notify-cut", "update-cut"])
def test_an_unreadable_notify_or_update_gets_a_well_formed_formerr(wire: bytes) -> None:
    # Found by the fuzzing above: the question was echoed as it came, making a reply as broken as the request.
    reply = dns.message.from_wire(SERVER.handle(wire, False))
    assert reply.rcode() == dns.rcode.FORMERR and reply.id == 7 and not reply.question
    assert reply.opcode() == HEADER.unpack_from(wire)[1] >> 11 & 0xF


@pytest.mark.parametrize("base", _VALID_QUERIES, ids=range(len(_VALID_QUERIES)))
def test_every_truncation_of_a_valid_query(base: bytes) -> None:
    for length in range(len(base) + 1):
        for via_tcp in (False, True):
            reply = SERVER.handle(base[:length], via_tcp)
            if length < HEADER.size:
                assert reply is None
                continue
            assert type(reply) is bytes
            assert reply[:2] == base[:2]
            if length < len(base):
                # Every proper prefix is missing part of the question or the OPT.
                assert_header_only(reply, HEADER.unpack_from(base)[0], dns.rcode.FORMERR)
    full = dns.message.from_wire(handle(base))
    assert full.rcode() in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN)


def test_zone_records_are_converted_when_first_asked_for_and_shared_by_the_zones_servers() -> None:
    """A big lab's servers start without converting every RRset; what a reply needs is converted
    once per zone and shared, and RRsets made for one reply (a wildcard's) are never kept."""
    from dnslab.authority import server as server_module

    zone = _zone("$ORIGIN conv.test.\n$TTL 300\n@ SOA ns hm 1 2 3 4 5\n@ NS ns\nns A 192.0.2.1\n"
                 "www A 192.0.2.2\n* TXT \"wild\"\n")
    first, second = AuthoritativeServer([zone]), AuthoritativeServer([zone])
    cache = server_module._ZONE_RECORDS[zone]
    assert cache == {}
    first.handle(query("www.conv.test.", "A"))
    www = zone.get(dns.name.from_text("www.conv.test."), dns.rdatatype.A)
    assert cache[id(www)][0] is www
    converted = cache[id(www)][1]
    assert len(converted) == 1
    reply = dns.message.from_wire(second.handle(query("www.conv.test.", "A")))  # type: ignore[arg-type]
    assert [rr.to_text() for rr in reply.answer[0]] == ["192.0.2.2"]
    assert cache[id(www)][1] is converted  # the second server used the first one's records
    for label in ("a", "b", "c"):
        reply = dns.message.from_wire(first.handle(query(f"{label}.conv.test.", "TXT")))  # type: ignore[arg-type]
        assert reply.answer[0].name == dns.name.from_text(f"{label}.conv.test.")
    # Each kept entry is one of the zone's own RRsets; the three synthesised answers were not kept.
    assert all(server_module._owns(zone, rrset) for rrset, _ in cache.values())
    assert not any(rrset.rdtype == dns.rdatatype.TXT for rrset, _ in cache.values())


def test_a_server_of_many_zones_looks_only_at_the_zones_above_a_name(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Finding the zone that keeps an RRset's converted records walks the name's labels, not the
    server's zones: a wildcard answer from a server of 300 zones once asked all 300 (1.3 ms a reply)."""
    from dnslab.authority import server as server_module

    zones = [_zone(f"$ORIGIN z{i}.test.\n$TTL 300\n@ SOA ns hm 1 2 3 4 5\n@ NS ns\nns A 192.0.2.1\n* A 192.0.2.9\n")
             for i in range(300)]
    server = AuthoritativeServer(zones)
    asked: list[dns.name.Name] = []
    real = server_module._owns
    monkeypatch.setattr(server_module, "_owns", lambda zone, rrset: asked.append(zone.origin) or real(zone, rrset))
    reply = dns.message.from_wire(server.handle(query("host.z299.test.", "A")))  # type: ignore[arg-type]
    assert [rr.to_text() for rr in reply.answer[0]] == ["192.0.2.9"]
    assert set(asked) <= {dns.name.from_text("z299.test.")}
