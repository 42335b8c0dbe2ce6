"""A server's identity: NSID (RFC 5001) and CHAOS TXT hostname.bind / id.server / version.bind.

The reply shapes are NSD 4.6.1's, read from `nsd` with `identity:`, `nsid:` and `version:` set
(`scripts/compare-nsd` asks both servers these questions); here the lab's servers answer real
packets with their own names.
"""

from __future__ import annotations

import dns.edns
import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdataclass
import pytest

import dnslab
from dnslab.authority import identity
from dnslab.authority.server import AuthoritativeServer
from dnslab.core.zone import load_zone_text
from dnslab.lab.runtime import Lab

ZONE = "$ORIGIN lab.test.\n@ 3600 SOA ns1 h 1 2 3 4 5\n@ 3600 NS ns1\nns1 3600 A 127.0.0.1\n"
NSID_ASK = [dns.edns.GenericOption(identity.NSID, b"")]


def ask(lab: Lab, address: str, name: str, rdtype: str, rdclass: str = "IN", **options: object) -> dns.message.Message:
    query = dns.message.make_query(name, rdtype, rdclass, **options)  # type: ignore[arg-type]
    return dns.query.udp(query, address, port=lab.actual_port, timeout=5)


def nsid(reply: dns.message.Message) -> str | None:
    found = [o for o in reply.options if o.otype == identity.NSID]
    return found[0].nsid.decode() if found else None  # type: ignore[attr-defined]


@pytest.mark.parametrize("name", ["hostname.bind.", "id.server.", "HOSTNAME.BIND."])
def test_chaos_identity_names_the_server(sample_lab: Lab, name: str) -> None:
    reply = ask(sample_lab, "127.0.2.1", name, "TXT", "CH")
    assert reply.rcode() == dns.rcode.NOERROR and not reply.flags & dns.flags.AA
    [rrset] = reply.answer
    assert (rrset.rdclass, rrset.ttl, rrset.name.to_text()) == (dns.rdataclass.CH, 0, name)
    assert [r.strings for r in rrset] == [(b"a.nic.com",)]


def test_version_bind_and_other_chaos_questions(sample_lab: Lab) -> None:
    reply = ask(sample_lab, "127.0.3.1", "version.bind.", "ANY", "CH")
    assert [r.strings for r in reply.answer[0]] == [(f"dnslab {dnslab.__version__}".encode(),)]
    assert ask(sample_lab, "127.0.3.1", "hostname.bind.", "A", "CH").rcode() == dns.rcode.REFUSED
    assert ask(sample_lab, "127.0.3.1", "other.bind.", "TXT", "CH").rcode() == dns.rcode.REFUSED


def test_nsid_is_given_when_asked_whatever_the_answer(sample_lab: Lab) -> None:
    every_root = [f"127.0.1.{i}" for i in range(1, 14)]
    named = [nsid(ask(sample_lab, address, "com.", "NS", use_edns=0, options=NSID_ASK)) for address in every_root]
    # Each letter, at the site nearest to the asker (the sample's lab.toml gives every letter sites).
    assert [name.split(".", 1)[1] for name in named] == [f"{letter}.root-servers.net" for letter in "abcdefghijklm"]
    assert named[0] == "ams.a.root-servers.net" and named[1] == "lax.b.root-servers.net"
    refused = ask(sample_lab, "127.0.3.1", "www.example.org.", "A", use_edns=0, options=NSID_ASK)
    assert refused.rcode() == dns.rcode.REFUSED and nsid(refused) == "ns1.example.com"
    assert nsid(ask(sample_lab, "127.0.3.1", "www.example.com.", "A", use_edns=0)) is None


def test_a_reply_without_nsid_never_comes_from_one_with_it_or_back() -> None:
    """The fast path's key leaves EDNS options out; a query asking NSID is answered afresh."""
    server = AuthoritativeServer([load_zone_text(ZONE).zone], identity="one")
    plain = dns.message.make_query("lab.test.", "SOA", use_edns=0)
    asking = dns.message.make_query("lab.test.", "SOA", use_edns=0, options=NSID_ASK)
    for query, expected in [(plain, None), (asking, "one"), (plain, None), (asking, "one")]:
        assert nsid(dns.message.from_wire(server.handle(query.to_wire()))) == expected  # type: ignore[arg-type]
    # An anycast site answers for the same server with its own name, from the fast path too.
    for site in ("ams.one", "nyc.one", "ams.one", "nyc.one"):
        assert nsid(dns.message.from_wire(server.handle(asking.to_wire(), identity=site))) == site  # type: ignore[arg-type]
    assert len(server.replies) == 4  # plain, NSID as "one", as "ams.one", as "nyc.one"
    other = dns.message.make_query("lab.test.", "SOA", use_edns=0, options=[*NSID_ASK, dns.edns.GenericOption(10, bytes(8))])
    assert nsid(dns.message.from_wire(server.handle(other.to_wire()))) == "one"  # type: ignore[arg-type]
    assert len(server.replies) == 4  # another option as well: answered afresh, not kept


def test_without_an_identity_chaos_is_refused_and_nsid_not_given() -> None:
    server = AuthoritativeServer([load_zone_text(ZONE).zone])
    reply = dns.message.from_wire(server.handle(  # type: ignore[arg-type]
        dns.message.make_query("hostname.bind.", "TXT", "CH", use_edns=0, options=NSID_ASK).to_wire()))
    assert reply.rcode() == dns.rcode.REFUSED and nsid(reply) is None


def test_edns_options_are_read_from_the_wire() -> None:
    """dnslib drops an option without data; the identity module reads them itself."""
    wire = dns.message.make_query("a.", "A", use_edns=0, options=[
        dns.edns.GenericOption(10, bytes(8)), *NSID_ASK]).to_wire()
    assert identity.edns_options(wire) == [(10, bytes(8)), (3, b"")]
    assert identity.edns_options(wire[:-3]) == [(10, bytes(8))]  # cut short: what can be read
    assert identity.edns_options(b"\x00" * 5) == []
