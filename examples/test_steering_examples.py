"""Anycast sites and steered names in a test suite (docs/ANYCAST.md, docs/STEERING.md).

The sample lab's root letters are served from sites (its lab.toml's [sites]), and the names of
lb.example.com are steered ([steering]): answered by policy from their endpoints' health.
"""

import dns.edns
import dns.message
import dns.query


def addresses(answer):
    return [rdata.address for rdata in answer]


def test_failover_to_the_secondary_within_interval_and_ttl(dns_lab):
    # app.lb.example.com: failover between 192.0.2.100 and .101, checked every 10 s, TTL 30 s.
    assert addresses(dns_lab.resolver.resolve("app.lb.example.com", "A")) == ["192.0.2.100"]
    dns_lab.endpoint("192.0.2.100").down()
    dns_lab.clock.advance(10)  # one health check interval: the authoritative answer moves...
    assert addresses(dns_lab.resolver.resolve("app.lb.example.com", "A")) == ["192.0.2.100"]  # ...not the cache
    dns_lab.clock.advance(20)  # the rest of the answer's TTL
    assert addresses(dns_lab.resolver.resolve("app.lb.example.com", "A")) == ["192.0.2.101"]


def test_a_withdrawn_anycast_site_hands_over_to_the_next(dns_lab):
    def site_answering():
        query = dns.message.make_query("hostname.bind.", "TXT", "CH", use_edns=0,
                                       options=[dns.edns.GenericOption(3, b"")])  # NSID too (RFC 5001)
        reply = dns.query.udp(query, "127.0.1.1", port=dns_lab.port, timeout=5)
        return reply.answer[0][0].strings[0].decode()

    assert site_answering() == "ams.a.root-servers.net"  # the lab sits in ams
    dns_lab.site("a.root-servers.net", "ams").down()
    assert site_answering() == "nyc.a.root-servers.net"  # the next nearest site, same address
