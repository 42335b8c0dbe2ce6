"""Misbehaving servers on purpose: a scripted server, and a fault narrowed to some queries.

A handler answers for a lab server (docs/SCRIPTED.md): it gets each query and returns the reply to
send, None for silence, or ZONE for the zone's own answer.  Here it tests the resolver under test
(the lab's own; point your software at the lab to test yours) against two classic misbehaviours.
"""

import dns.message
import dns.query
import dns.rcode
import dnslib

from dnslab.testing import ZONE


def test_a_reply_with_the_wrong_id_does_not_poison_the_answer(dns_lab):
    def forged_first(query):
        real = query.zone_answer()
        if query.message is None or query.message.q.qtype != dnslib.QTYPE.A or real is None:
            return ZONE
        forged = query.message.reply()
        forged.header.id = (query.message.header.id + 1) % 65536  # what an off-path spoofer guesses
        forged.add_answer(dnslib.RR(query.message.q.qname, rdata=dnslib.A("6.6.6.6"), ttl=300))
        return [forged, real]  # two datagrams: the forged one first

    for server in ("ns1.example.com", "ns2.example.com"):
        dns_lab.server(server).handler = forged_first
    answer = dns_lab.resolver.resolve("www.example.com", "A")
    assert "6.6.6.6" not in {rdata.address for rdata in answer}
    assert dns_lab.stats["timeouts"] == 0  # the real reply was taken at once


def test_servfail_for_one_aaaa_query_in_two(dns_lab):
    ns1 = dns_lab.server("ns1.example.com").fault("servfail", type="AAAA", every=2)
    rcodes = [dns.query.udp(dns.message.make_query("www.example.com", "AAAA"), ns1.address, port=dns_lab.port,
                            timeout=5).rcode() for _ in range(4)]
    assert rcodes == [dns.rcode.SERVFAIL, dns.rcode.NOERROR, dns.rcode.SERVFAIL, dns.rcode.NOERROR]
    a = dns.query.udp(dns.message.make_query("www.example.com", "A"), ns1.address, port=dns_lab.port, timeout=5)
    assert a.rcode() == dns.rcode.NOERROR  # another type: untouched
