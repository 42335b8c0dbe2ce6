"""A DNSSEC failure test with the pytest plugin: sign the lab, break a zone, see it fail.

`make_dns_lab(dnssec=True)` signs every sample zone (example.net. stays unsigned: the
insecure case) and keeps the keys in `keys_dir` (here a temporary folder; by default the
same keys `dnslab up --dnssec` uses: for the sample zones, in the per-user runtime folder).  `lab.zone_fault(zone, kind)`
makes one zone bogus in a chosen way.

The first test goes through the lab's own resolver, which validates because the lab
gave it the root's DS as trust anchor: the broken zone gets SERVFAIL with the reason
as an Extended DNS Error, CD=1 still gets the data.  The others check the served
data themselves, with dnspython's validator and the lab's clock.
"""

import dns.dnssec
import dns.edns
import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import pytest

RRSIG = dns.rdatatype.RRSIG


def ask(lab, server, name, qtype):
    query = dns.message.make_query(name, qtype, want_dnssec=True)
    return dns.query.udp(query, server, port=lab.port, timeout=5)


def check_signature(lab, reply, zone_keys):
    """Raises dns.dnssec.ValidationFailure when the answer's signature does not verify."""
    rrset = next(r for r in reply.answer if r.rdtype != RRSIG)
    rrsig = next(r for r in reply.answer if r.rdtype == RRSIG)
    dns.dnssec.validate(rrset, rrsig, zone_keys, now=lab.wall_time())


def test_the_resolver_refuses_a_broken_zone(make_dns_lab, tmp_path):
    lab = make_dns_lab(dnssec=True, keys_dir=tmp_path / "keys")
    host, port = lab.resolver_address

    def resolve(name, checking_disabled=False):
        query = dns.message.make_query(name, "A", use_edns=0)
        query.flags |= dns.flags.AD | (dns.flags.CD if checking_disabled else 0)
        return dns.query.udp(query, host, port=port, timeout=5)

    assert resolve("www.example.com.").flags & dns.flags.AD  # validated: secure
    lab.zone_fault("example.com.", "dnssec-expired")
    lab.cache.flush()  # a resolver keeps what it validated until the TTL runs out
    reply = resolve("www.example.com.")
    assert reply.rcode() == dns.rcode.SERVFAIL
    [reason] = [option for option in reply.options if isinstance(option, dns.edns.EDEOption)]
    assert reason.code == dns.edns.EDECode.SIGNATURE_EXPIRED
    assert resolve("www.example.com.", checking_disabled=True).answer  # CD=1: the data, unchecked


def test_a_corrupted_signature_is_caught(make_dns_lab, tmp_path):
    lab = make_dns_lab(dnssec=True, keys_dir=tmp_path / "keys")
    keys = ask(lab, "127.0.3.1", "example.com.", "DNSKEY")
    zone_keys = {keys.answer[0].name: keys.answer[0]}
    check_signature(lab, ask(lab, "127.0.3.1", "www.example.com.", "A"), zone_keys)  # signed and valid

    lab.zone_fault("example.com.", "dnssec-bad-sig")
    assert lab.faults()["example.com."] == ["dnssec-bad-sig"]
    with pytest.raises(dns.dnssec.ValidationFailure):
        check_signature(lab, ask(lab, "127.0.3.1", "www.example.com.", "A"), zone_keys)

    lab.zone_fault("example.com.", "clear")
    check_signature(lab, ask(lab, "127.0.3.1", "www.example.com.", "A"), zone_keys)


def test_signatures_expire_with_the_lab_clock_unless_refreshed(make_dns_lab, tmp_path):
    lab = make_dns_lab(dnssec=True, keys_dir=tmp_path / "keys")
    first = ask(lab, "127.0.3.1", "www.example.com.", "A").answer[1][0].expiration
    lab.advance(11 * 86400)  # past three quarters of the 14-day validity: the lab signs again
    assert ask(lab, "127.0.3.1", "www.example.com.", "A").answer[1][0].expiration > first
