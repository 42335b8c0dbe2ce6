"""classify(): what an upstream reply means and what in it may be believed, as tables.

Each case is a reply written as dnspython message text (the shape `dig` prints),
the question it answers and the zone the server was asked for.  The expected
columns say what the iterator will do with it and which records survive the
bailiwick scrub (RFC 2181 §5.4.1); every record that does not appear in
`chain`, `ns`, `glue` or `soa` is never cached.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest

from dnslab.resolution.classify import Classified, ReplyKind, classify, synthesise_cname

HEADER = "id 1\nopcode QUERY\nrcode {rcode}\nflags {flags}\n;QUESTION\n{qname} IN {qtype}\n"


def reply(qname: str, qtype: str, body: str = "", *, rcode: str = "NOERROR", aa: bool = True) -> dns.message.Message:
    """A reply as a server would send it: sections in `body` (";ANSWER", ";AUTHORITY", ";ADDITIONAL")."""
    flags = "QR AA" if aa else "QR"
    text = HEADER.format(rcode=rcode, flags=flags, qname=qname, qtype=qtype) + body
    return dns.message.from_text(text)


def run(message: dns.message.Message, zone: str) -> Classified:
    question = message.question[0]
    return classify(message, question.name, question.rdtype, dns.name.from_text(zone))


def lines(rrsets: list[dns.rrset.RRset]) -> list[str]:
    return [line for rrset in rrsets for line in rrset.to_text().splitlines()]


@dataclass
class Case:
    id: str
    zone: str
    message: dns.message.Message
    kind: ReplyKind
    chain: list[str] = field(default_factory=list)
    target: str | None = None
    child: str | None = None
    glue: list[str] = field(default_factory=list)
    soa: bool = False
    dropped: int | None = None


SOA_COM = "example.com. 300 IN SOA ns1.example.com. hostmaster.example.com. 1 7200 3600 1209600 300"
SOA_ORG = "example.org. 300 IN SOA ns1.example.org. hostmaster.example.org. 1 7200 3600 1209600 300"

CASES = [
    Case("answer", "example.com.",
         reply("www.example.com.", "A", ";ANSWER\nwww.example.com. 300 IN A 192.0.2.1\n"
                                        "www.example.com. 300 IN A 192.0.2.2\n"),
         ReplyKind.ANSWER,
         chain=["www.example.com. 300 IN A 192.0.2.1", "www.example.com. 300 IN A 192.0.2.2"],
         target="www.example.com.", dropped=0),
    Case("answer, owner in other case (RFC 4343)", "example.com.",
         reply("www.example.com.", "A", ";ANSWER\nWWW.Example.COM. 300 IN A 192.0.2.1\n"),
         ReplyKind.ANSWER, chain=["WWW.Example.COM. 300 IN A 192.0.2.1"], target="www.example.com."),
    Case("in-zone CNAME chain", "example.com.",
         reply("ftp.example.com.", "A", ";ANSWER\nftp.example.com. 3600 IN CNAME www.example.com.\n"
                                        "www.example.com. 300 IN A 192.0.2.1\n"),
         ReplyKind.ANSWER,
         chain=["ftp.example.com. 3600 IN CNAME www.example.com.", "www.example.com. 300 IN A 192.0.2.1"],
         target="www.example.com.", dropped=0),
    Case("in-zone chain sent out of order is read in chain order", "example.com.",
         reply("a.example.com.", "A", ";ANSWER\nc.example.com. 60 IN A 192.0.2.9\n"
                                      "b.example.com. 60 IN CNAME c.example.com.\n"
                                      "a.example.com. 60 IN CNAME b.example.com.\n"),
         ReplyKind.ANSWER,
         chain=["a.example.com. 60 IN CNAME b.example.com.", "b.example.com. 60 IN CNAME c.example.com.",
                "c.example.com. 60 IN A 192.0.2.9"],
         target="c.example.com."),
    Case("CNAME leaving the zone: target's data from this server dropped", "example.org.",
         reply("www.example.org.", "A", ";ANSWER\nwww.example.org. 3600 IN CNAME www.example.com.\n"
                                        "www.example.com. 300 IN A 6.6.6.6\n"),
         ReplyKind.CNAME, chain=["www.example.org. 3600 IN CNAME www.example.com."],
         target="www.example.com.", dropped=1),
    Case("in-zone CNAME to a name the server does not finish", "example.com.",
         reply("x.example.com.", "A", ";ANSWER\nx.example.com. 60 IN CNAME y.sub.example.com.\n"),
         ReplyKind.CNAME, chain=["x.example.com. 60 IN CNAME y.sub.example.com."], target="y.sub.example.com."),
    Case("in-zone CNAME loop: the chain stops where it meets itself", "example.com.",
         reply("a.example.com.", "A", ";ANSWER\na.example.com. 60 IN CNAME b.example.com.\n"
                                      "b.example.com. 60 IN CNAME a.example.com.\n"),
         ReplyKind.CNAME,
         chain=["a.example.com. 60 IN CNAME b.example.com.", "b.example.com. 60 IN CNAME a.example.com."],
         target="a.example.com."),
    Case("CNAME query answered by the CNAME itself", "example.com.",
         reply("ftp.example.com.", "CNAME", ";ANSWER\nftp.example.com. 3600 IN CNAME www.example.com.\n"),
         ReplyKind.ANSWER, chain=["ftp.example.com. 3600 IN CNAME www.example.com."], target="ftp.example.com."),
    Case("DNAME to another zone, synthesised CNAME re-derived", "example.org.",
         reply("www.old.example.org.", "A", ";ANSWER\nold.example.org. 600 IN DNAME example.com.\n"
                                            "www.old.example.org. 600 IN CNAME www.example.com.\n"),
         ReplyKind.CNAME,
         chain=["old.example.org. 600 IN DNAME example.com.", "www.old.example.org. 600 IN CNAME www.example.com."],
         target="www.example.com."),
    Case("DNAME without the synthesised CNAME (a pre-RFC 6672 server)", "example.org.",
         reply("www.old.example.org.", "A", ";ANSWER\nold.example.org. 600 IN DNAME example.com.\n"),
         ReplyKind.CNAME,
         chain=["old.example.org. 600 IN DNAME example.com.", "www.old.example.org. 600 IN CNAME www.example.com."],
         target="www.example.com."),
    Case("DNAME with a forged CNAME: the CNAME is not trusted", "example.org.",
         reply("www.old.example.org.", "A", ";ANSWER\nold.example.org. 600 IN DNAME example.com.\n"
                                            "www.old.example.org. 600 IN CNAME evil.example.net.\n"),
         ReplyKind.CNAME,
         chain=["old.example.org. 600 IN DNAME example.com.", "www.old.example.org. 600 IN CNAME www.example.com."],
         target="www.example.com.", dropped=1),
    Case("DNAME inside the zone with the target's data", "example.org.",
         reply("www.old.example.org.", "A", ";ANSWER\nold.example.org. 600 IN DNAME new.example.org.\n"
                                            "www.old.example.org. 600 IN CNAME www.new.example.org.\n"
                                            "www.new.example.org. 300 IN A 192.0.2.7\n"),
         ReplyKind.ANSWER,
         chain=["old.example.org. 600 IN DNAME new.example.org.",
                "www.old.example.org. 600 IN CNAME www.new.example.org.",
                "www.new.example.org. 300 IN A 192.0.2.7"],
         target="www.new.example.org."),
    Case("DNAME owned outside the zone asked is ignored", "example.org.",
         reply("www.example.org.", "A", ";ANSWER\norg. 600 IN DNAME evil.net.\n"), ReplyKind.NODATA,
         target="www.example.org.", dropped=1),
    Case("referral: in-bailiwick glue kept, out-of-bailiwick glue dropped", "com.",
         reply("www.example.com.", "A", ";AUTHORITY\nexample.com. 172800 IN NS ns1.example.com.\n"
                                        "example.com. 172800 IN NS ns.other.net.\n"
                                        ";ADDITIONAL\nns1.example.com. 172800 IN A 127.0.3.1\n"
                                        "ns1.example.com. 172800 IN AAAA 2001:db8::53\n"
                                        "ns.other.net. 172800 IN A 6.6.6.6\n"
                                        "www.example.com. 172800 IN A 6.6.6.7\n", aa=False),
         ReplyKind.REFERRAL, child="example.com.", target="www.example.com.",
         glue=["ns1.example.com. 172800 IN A 127.0.3.1", "ns1.example.com. 172800 IN AAAA 2001:db8::53"]),
    Case("referral for a minimised name", ".",
         reply("com.", "A", ";AUTHORITY\ncom. 172800 IN NS a.nic.com.\n"
                            ";ADDITIONAL\na.nic.com. 172800 IN A 127.0.2.1\n", aa=False),
         ReplyKind.REFERRAL, child="com.", glue=["a.nic.com. 172800 IN A 127.0.2.1"]),
    Case("referral upward is lame", "example.com.",
         reply("www.example.com.", "A", ";AUTHORITY\ncom. 172800 IN NS a.nic.com.\n"
                                        ";ADDITIONAL\na.nic.com. 172800 IN A 6.6.6.6\n", aa=False),
         ReplyKind.LAME),
    Case("referral to the root is lame", "example.com.",
         reply("www.example.com.", "A", ";AUTHORITY\n. 518400 IN NS a.root-servers.net.\n", aa=False),
         ReplyKind.LAME),
    Case("referral sideways is lame", "example.com.",
         reply("www.example.com.", "A", ";AUTHORITY\nexample.org. 172800 IN NS ns1.example.org.\n", aa=False),
         ReplyKind.LAME),
    Case("referral to the zone asked itself is lame", "example.com.",
         reply("www.example.com.", "A", ";AUTHORITY\nexample.com. 3600 IN NS ns1.example.com.\n", aa=False),
         ReplyKind.LAME),
    Case("referral to a zone not above the name is lame", "com.",
         reply("www.example.com.", "A", ";AUTHORITY\nother.com. 172800 IN NS ns1.other.com.\n", aa=False),
         ReplyKind.LAME),
    Case("NXDOMAIN with SOA", "example.com.",
         reply("nx.example.com.", "A", f";AUTHORITY\n{SOA_COM}\n", rcode="NXDOMAIN"),
         ReplyKind.NXDOMAIN, target="nx.example.com.", soa=True),
    Case("NXDOMAIN, not authoritative and no SOA, is lame", "example.com.",
         reply("nx.example.com.", "A", rcode="NXDOMAIN", aa=False), ReplyKind.LAME),
    Case("NXDOMAIN through an in-zone CNAME", "example.com.",
         reply("alias.example.com.", "A", ";ANSWER\nalias.example.com. 60 IN CNAME gone.example.com.\n"
                                          f";AUTHORITY\n{SOA_COM}\n", rcode="NXDOMAIN"),
         ReplyKind.NXDOMAIN, chain=["alias.example.com. 60 IN CNAME gone.example.com."],
         target="gone.example.com.", soa=True),
    Case("NODATA with SOA", "example.com.",
         reply("v6only.example.com.", "A", f";AUTHORITY\n{SOA_COM}\n"),
         ReplyKind.NODATA, target="v6only.example.com.", soa=True),
    Case("NODATA, authoritative without SOA", "example.com.",
         reply("v6only.example.com.", "A"), ReplyKind.NODATA, target="v6only.example.com."),
    Case("NODATA with a foreign zone's SOA: the SOA is dropped", "example.com.",
         reply("v6only.example.com.", "A", f";AUTHORITY\n{SOA_ORG}\n"), ReplyKind.NODATA, soa=False),
    # Unbound's RESPONSE_TYPE_CNAME: the target is asked for itself, its denial not taken on trust.
    Case("NODATA through a CNAME: the target is asked for itself", "example.com.",
         reply("ftp.example.com.", "AAAA", ";ANSWER\nftp.example.com. 3600 IN CNAME v6less.example.com.\n"
                                           f";AUTHORITY\n{SOA_COM}\n"),
         ReplyKind.CNAME, chain=["ftp.example.com. 3600 IN CNAME v6less.example.com."],
         target="v6less.example.com."),
    Case("poisoning: other zones' records in every section are dropped", "example.com.",
         reply("www.example.com.", "A", ";ANSWER\nwww.example.com. 300 IN A 192.0.2.1\n"
                                        "www.example.org. 300 IN A 6.6.6.6\n"
                                        ";AUTHORITY\nexample.org. 3600 IN NS ns.evil.net.\n"
                                        ";ADDITIONAL\nwww.example.org. 300 IN A 6.6.6.6\n"
                                        "ns.evil.net. 300 IN A 6.6.6.6\n"),
         ReplyKind.ANSWER, chain=["www.example.com. 300 IN A 192.0.2.1"], target="www.example.com.", dropped=1),
    Case("poisoning: a CNAME's out-of-zone target data dropped, only the CNAME kept", "example.com.",
         reply("www.example.com.", "A", ";ANSWER\nwww.example.com. 300 IN CNAME www.example.org.\n"
                                        "www.example.org. 300 IN A 6.6.6.6\n"),
         ReplyKind.CNAME, chain=["www.example.com. 300 IN CNAME www.example.org."], target="www.example.org."),
    Case("unrelated in-zone answer records are not part of the chain", "example.com.",
         reply("www.example.com.", "A", ";ANSWER\nwww.example.com. 300 IN A 192.0.2.1\n"
                                        "mail.example.com. 300 IN A 6.6.6.6\n"),
         ReplyKind.ANSWER, chain=["www.example.com. 300 IN A 192.0.2.1"], dropped=1),
    Case("authoritative empty answer is NODATA, not lame", "example.com.",
         reply("x.example.com.", "TXT"), ReplyKind.NODATA),
    Case("not authoritative and empty is lame", "example.com.",
         reply("www.example.com.", "A", aa=False), ReplyKind.LAME),
    Case("not authoritative with only foreign data is lame", "example.com.",
         reply("www.example.com.", "A", ";ANSWER\nwww.example.org. 300 IN A 6.6.6.6\n", aa=False),
         ReplyKind.LAME, dropped=1),
    Case("priming: root NS answer with the root servers' addresses", ".",
         reply(".", "NS", ";ANSWER\n. 518400 IN NS a.root-servers.net.\n. 518400 IN NS b.root-servers.net.\n"
                          ";ADDITIONAL\na.root-servers.net. 518400 IN A 127.0.1.1\n"
                          "b.root-servers.net. 518400 IN A 127.0.1.2\n"
                          "b.root-servers.net. 518400 IN AAAA 2001:db8::2\n"),
         ReplyKind.ANSWER,
         chain=[". 518400 IN NS a.root-servers.net.", ". 518400 IN NS b.root-servers.net."],
         glue=["a.root-servers.net. 518400 IN A 127.0.1.1", "b.root-servers.net. 518400 IN A 127.0.1.2",
               "b.root-servers.net. 518400 IN AAAA 2001:db8::2"]),
    Case("NS answer: addresses outside the zone are not glue", "example.com.",
         reply("example.com.", "NS", ";ANSWER\nexample.com. 3600 IN NS ns1.example.com.\n"
                                     "example.com. 3600 IN NS ns.other.net.\n"
                                     ";ADDITIONAL\nns1.example.com. 3600 IN A 127.0.3.1\n"
                                     "ns.other.net. 3600 IN A 6.6.6.6\n"),
         ReplyKind.ANSWER, glue=["ns1.example.com. 3600 IN A 127.0.3.1"]),
]


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_classify(case: Case) -> None:
    got = run(case.message, case.zone)
    assert got.kind is case.kind
    if case.kind in (ReplyKind.LAME,):
        return
    if case.chain:
        assert lines(got.chain) == case.chain
    elif case.kind not in (ReplyKind.ANSWER, ReplyKind.REFERRAL):
        assert got.chain == []
    if case.target is not None:
        assert got.target == dns.name.from_text(case.target)
    if case.kind is ReplyKind.REFERRAL:
        assert got.child == dns.name.from_text(case.child or "")
        assert got.ns is not None and got.ns.name == got.child
    else:
        assert got.child is None and got.ns is None
    assert lines(got.glue) == case.glue
    assert (got.soa is not None) is case.soa
    if case.dropped is not None:
        assert got.dropped == case.dropped


def test_answer_rrset_and_authority_flag() -> None:
    got = run(reply("ftp.example.com.", "A", ";ANSWER\nftp.example.com. 3600 IN CNAME www.example.com.\n"
                                              "www.example.com. 300 IN A 192.0.2.1\n"), "example.com.")
    assert got.authoritative
    assert got.answer is not None and got.answer is got.chain[-1]
    assert got.answer.rdtype == dns.rdatatype.A
    non_aa = run(reply("www.example.com.", "A", ";ANSWER\nwww.example.com. 300 IN A 192.0.2.1\n", aa=False),
                 "example.com.")
    assert non_aa.kind is ReplyKind.ANSWER and not non_aa.authoritative


def test_referral_keeps_the_ns_set_and_nothing_of_the_child() -> None:
    got = run(reply("www.example.com.", "A", ";AUTHORITY\nexample.com. 172800 IN NS ns1.example.com.\n"
                                              "example.com. 172800 IN NS ns2.example.com.\n", aa=False), "com.")
    assert got.kind is ReplyKind.REFERRAL
    assert got.ns is not None
    assert sorted(rdata.target.to_text() for rdata in got.ns) == ["ns1.example.com.", "ns2.example.com."]
    assert got.glue == [] and got.answer is None and got.soa is None


def test_soa_of_the_negative_answer_is_the_zones() -> None:
    got = run(reply("nx.example.com.", "A", f";AUTHORITY\n{SOA_COM}\n", rcode="NXDOMAIN"), "example.com.")
    assert got.soa is not None
    assert got.soa.to_text() == SOA_COM
    assert got.rcode == dns.rcode.NXDOMAIN


@pytest.mark.parametrize("rcode", ["SERVFAIL", "REFUSED", "NOTIMP"])
def test_failing_rcodes_are_errors(rcode: str) -> None:
    got = run(reply("www.example.com.", "A", ";ANSWER\nwww.example.com. 300 IN A 6.6.6.6\n", rcode=rcode),
              "example.com.")
    assert got.kind is ReplyKind.ERROR
    assert got.rcode == dns.rcode.from_text(rcode)
    assert got.chain == [] and got.answer is None  # nothing of an error reply is used


def test_formerr() -> None:
    got = run(reply("www.example.com.", "A", rcode="FORMERR", aa=False), "example.com.")
    assert got.kind is ReplyKind.FORMERR
    assert got.rcode == dns.rcode.FORMERR


def test_synthesise_cname() -> None:
    rrset = synthesise_cname(dns.name.from_text("a.b."), dns.name.from_text("a.c."), 42)
    assert rrset.to_text() == "a.b. 42 IN CNAME a.c."


def test_a_cname_contradicting_its_dname_is_replaced_and_remembered() -> None:
    """RFC 6672 §3.2: the synthesis replaces a server's CNAME that says otherwise, and the classification
    keeps what the server claimed (a validator calls such an answer from a signed DNAME bogus)."""
    body = ";ANSWER\nold.example.org. 600 IN DNAME example.com.\nwww.old.example.org. 600 IN CNAME {}\n"
    forged = run(reply("www.old.example.org.", "A", body.format("evil.example.net.")), "example.org.")
    assert forged.forged == {dns.name.from_text("www.old.example.org."): dns.name.from_text("evil.example.net.")}
    honest = run(reply("www.old.example.org.", "A", body.format("www.example.com.")), "example.org.")
    assert honest.forged == {}


def test_dname_substitution_too_long_is_not_followed() -> None:
    """A DNAME whose substitution overflows 255 octets yields no CNAME (RFC 6672 §2.2 YXDOMAIN)."""
    long_target = ".".join(["x" * 60] * 4) + "."
    qname = "a" * 60 + ".d.example.org."
    got = run(reply(qname, "A", f";ANSWER\nd.example.org. 60 IN DNAME {long_target}\n"), "example.org.")
    assert all(rrset.rdtype != dns.rdatatype.CNAME for rrset in got.chain)
    assert got.target == dns.name.from_text(qname)


# --- Unbound's iter_resptype.c readings (Deckard's iter_ns_badaa, iter_lame_aaaa, iter_cycle_noh) ------


def test_a_delegation_with_aa_set_is_still_a_referral() -> None:
    got = run(reply("www.example.com.", "A", ";AUTHORITY\nexample.com. 3600 IN NS ns1.example.com.\n"
                                             ";ADDITIONAL\nns1.example.com. 3600 IN A 127.0.3.1\n"), "com.")
    assert got.kind is ReplyKind.REFERRAL and got.child == dns.name.from_text("example.com.")
    assert lines(got.glue) == ["ns1.example.com. 3600 IN A 127.0.3.1"]


def test_an_upward_referral_with_aa_set_is_lame() -> None:
    got = run(reply("example.com.", "AAAA", ";AUTHORITY\n. 3600000 IN NS a.root-servers.net.\n"), "example.com.")
    assert got.kind is ReplyKind.LAME and not got.empty


def test_an_empty_non_authoritative_reply_is_lame_and_marked_empty() -> None:
    got = run(reply("example.com.", "AAAA", ";ANSWER\nexample.com. 0 IN A 2.2.2.2\n", aa=False), "com.")
    assert got.kind is ReplyKind.LAME and got.empty


def test_nxdomain_without_aa_or_soa_but_with_the_zones_ns_set_is_nxdomain() -> None:
    got = run(reply("www.example.com.", "NS", ";AUTHORITY\nexample.com. 3600 IN NS ns.example.com.\n",
                    rcode="NXDOMAIN", aa=False), "example.com.")
    assert got.kind is ReplyKind.NXDOMAIN


def test_glue_outside_the_bailiwick_only_without_harden_glue() -> None:
    message = reply("www.example.com.", "A", ";AUTHORITY\nexample.com. 3600 IN NS ns.example.net.\n"
                                             ";ADDITIONAL\nns.example.net. 3600 IN A 1.2.3.1\n", aa=False)
    question = message.question[0]
    hardened = classify(message, question.name, question.rdtype, dns.name.from_text("com."))
    assert hardened.kind is ReplyKind.REFERRAL and hardened.glue == []
    trusting = classify(message, question.name, question.rdtype, dns.name.from_text("com."), harden_glue=False)
    assert lines(trusting.glue) == ["ns.example.net. 3600 IN A 1.2.3.1"]


def test_a_denial_without_soa_is_lame_not_empty() -> None:
    """NSEC3 records and no SOA: a broken denial, never taken as NODATA on a second try."""
    got = run(reply("ent.example.com.", "A", ";AUTHORITY\n2kekcu37chvrqjb272ptidu9jhk7oqag.example.com. 3600 IN "
                                             "NSEC3 1 0 12 aabb 2kekcu37chvrqjb272ptidu9jhk9oqag\n", aa=False),
              "example.com.")
    assert got.kind is ReplyKind.LAME and not got.empty
