"""DNAME answers from the cache (RFC 6672 §3.4): the same records as the first answer.

The first answer to a name below a DNAME owner carries the DNAME, the CNAME
synthesised from it and the target's data; answered again from the cache it
must carry all three again, with the CNAME's TTL that of the DNAME.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import pytest

from dnslab.testing import DnsLab


def _ask(lab: DnsLab, name: str, rdtype: str = "A") -> dns.message.Message:
    address, port = lab.resolver_address
    return dns.query.udp(dns.message.make_query(name, rdtype), address, port=port, timeout=10)


def _records(reply: dns.message.Message) -> list[tuple[str, str, int, list[str]]]:
    return [(r.name.to_text(), dns.rdatatype.to_text(r.rdtype), r.ttl, sorted(x.to_text() for x in r))
            for r in reply.answer]


@pytest.fixture
def lab(make_dns_lab: Callable[..., DnsLab]) -> DnsLab:
    lab = make_dns_lab()
    lab.record_set("dn.example.com", "DNAME", "example.org.", ttl=600)
    return lab


@pytest.mark.parametrize("name", ["www.dn.example.com.", "WWW.Dn.Example.COM."])
def test_a_cached_dname_answer_keeps_the_dname(lab: DnsLab, name: str) -> None:
    cold = _ask(lab, name)
    types = [dns.rdatatype.to_text(r.rdtype) for r in cold.answer]
    assert types[:2] == ["DNAME", "CNAME"] and types[-1] == "A", cold
    warm = _ask(lab, name)
    assert _records(warm) == _records(cold)
    assert warm.rcode() == cold.rcode() and warm.flags == cold.flags


def test_the_synthesised_cname_counts_down_with_the_dname(lab: DnsLab) -> None:
    _ask(lab, "www.dn.example.com.")
    lab.advance(100)
    again = _ask(lab, "www.dn.example.com.")
    dname, cname = again.answer[0], again.answer[1]
    assert (dname.rdtype, cname.rdtype) == (dns.rdatatype.DNAME, dns.rdatatype.CNAME)
    assert dname.ttl == cname.ttl == 500
    assert cname[0].target.to_text() == "www.example.org."


def test_another_name_below_the_dname_is_synthesised_from_the_cache(lab: DnsLab) -> None:
    _ask(lab, "www.dn.example.com.")
    lab.server("ns1.example.com").down()
    lab.server("ns2.example.com").down()
    # The DNAME is cached: a new name below it needs no example.com server at all,
    # only example.org's (which says the target does not exist).
    reply = _ask(lab, "nope.dn.example.com.")
    assert dns.rcode.to_text(reply.rcode()) == "NXDOMAIN", reply
    assert [(r.name.to_text(), dns.rdatatype.to_text(r.rdtype)) for r in reply.answer] == [
        ("dn.example.com.", "DNAME"), ("nope.dn.example.com.", "CNAME")]
    assert reply.answer[1][0].target.to_text() == "nope.example.org."


def test_a_signed_dname_stays_secure_from_the_cache(tmp_path: Path) -> None:
    # The synthesised CNAME has no RRSIG of its own (RFC 6672 §5.3.1): from the cache, as on
    # the first asking, it is judged by the DNAME it follows from, not as unsigned data.
    with DnsLab(dnssec=True, keys_dir=tmp_path / "keys") as lab:
        lab.record_set("dn.example.com", "DNAME", "example.org.", ttl=600)
        replies = []
        for _ in range(3):
            query = dns.message.make_query("www.dn.example.com.", "A", want_dnssec=True)
            address, port = lab.resolver_address
            replies.append(dns.query.udp(query, address, port=port, timeout=10))
        for reply in replies:
            assert reply.rcode() == dns.rcode.NOERROR and reply.flags & dns.flags.AD, reply
            assert _records(reply) == _records(replies[0])


def test_a_cname_question_below_a_dname_is_answered_by_the_synthesis(lab: DnsLab) -> None:
    # As Unbound answers: DNAME + synthesised CNAME, NOERROR, the target not followed; cold and cached alike.
    expected = [("dn.example.com.", "DNAME"), ("nope.dn.example.com.", "CNAME")]
    cold = _ask(lab, "nope.dn.example.com.", "CNAME")
    _ask(lab, "www.dn.example.com.")
    warm = _ask(lab, "nope.dn.example.com.", "CNAME")
    other = _ask(lab, "other.dn.example.com.", "CNAME")  # never asked before: built from the cached DNAME
    for reply in (cold, warm):
        assert reply.rcode() == dns.rcode.NOERROR, reply
        assert [(r.name.to_text(), dns.rdatatype.to_text(r.rdtype)) for r in reply.answer] == expected
    assert _records(warm) == _records(cold)
    assert other.rcode() == dns.rcode.NOERROR and len(other.answer) == 2, other
