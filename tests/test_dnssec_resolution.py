"""The signed lab through its own resolver: secure, insecure, each bogus kind, CD=1.

A signed lab gives its resolver the root's DS as trust anchor, so it validates.
The expectations are the ones a real Unbound meets against the same lab
(scripts/check-dnssec-unbound); each fault is put right afterwards and the
answer must be secure again.
"""

from __future__ import annotations

from typing import Iterator

import dns.flags
import dns.message
import dns.query
import dns.rcode
import pytest

from dnslab.testing import DnsLab


@pytest.fixture(scope="module")
def signed_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DnsLab]:
    with DnsLab(dnssec=True, keys_dir=tmp_path_factory.mktemp("keys")) as lab:
        yield lab


def ask(lab: DnsLab, name: str, qtype: str = "A", cd: bool = False) -> dns.message.Message:
    query = dns.message.make_query(name, qtype, want_dnssec=True)
    if cd:
        query.flags |= dns.flags.CD
    host, port = lab.resolver_address
    return dns.query.udp(query, host, port=port, timeout=10)


def test_secure_answers_have_ad(signed_lab: DnsLab) -> None:
    for name, rcode in (("www.example.com.", dns.rcode.NOERROR), ("nx.example.com.", dns.rcode.NXDOMAIN),
                        ("foo.pages.net.", dns.rcode.NOERROR)):
        reply = ask(signed_lab, name)
        assert reply.rcode() == rcode and reply.flags & dns.flags.AD, name


def test_the_unsigned_zone_is_insecure_not_bogus(signed_lab: DnsLab) -> None:
    reply = ask(signed_lab, "www.example.net.")
    assert reply.rcode() == dns.rcode.NOERROR and reply.answer and not reply.flags & dns.flags.AD


@pytest.mark.parametrize("zone, kind, name", [
    ("example.org.", "dnssec-bad-sig", "www.example.org."),
    ("failover.com.", "dnssec-expired", "www.failover.com."),
    ("dns-host.org.", "dnssec-missing-ds", "ns1.dns-host.org."),
    ("eng.example.com.", "dnssec-wrong-ds", "ns1.eng.example.com."),
])
def test_each_fault_is_bogus_and_cd_still_gets_the_data(signed_lab: DnsLab, zone: str, kind: str,
                                                        name: str) -> None:
    signed_lab.cache.flush()
    signed_lab.zone_fault(zone, kind)
    try:
        assert ask(signed_lab, name).rcode() == dns.rcode.SERVFAIL
        checking_disabled = ask(signed_lab, name, cd=True)
        assert checking_disabled.rcode() == dns.rcode.NOERROR and checking_disabled.answer
        assert not checking_disabled.flags & dns.flags.AD
    finally:
        signed_lab.zone_fault(zone, "clear")
        signed_lab.cache.flush()
    assert ask(signed_lab, name).flags & dns.flags.AD
