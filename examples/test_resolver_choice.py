"""The same test against dnslab's resolver and a real Unbound: `make_dns_lab(resolver=...)`.

The lab (servers, faults, query counts) is the same; only the program resolving changes. Where
Unbound is not installed (Debian: apt-get install unbound), or the test does not run as root (Unbound
sends its queries to port 53, so the lab runs there), the Unbound case is skipped, saying why.
docs/FOREIGN.md lists what works with each program.
"""

import dns.resolver
import pytest


@pytest.mark.parametrize("resolver", ["dnslab", "unbound"])
def test_failover_and_negative_caching_alike(make_dns_lab, resolver):
    lab = make_dns_lab(resolver=resolver)
    lab.server("ns1.example.com").down()
    answer = lab.resolver.resolve("www.example.com", "A")  # through the hierarchy, around the dead server
    assert sorted(rdata.address for rdata in answer) == ["192.0.2.1", "192.0.2.2", "192.0.2.3"]
    live = lab.server("ns2.example.com")
    assert live.queries["www.example.com.", "A"] >= 1  # Unbound asked it twice in some runs

    with pytest.raises(dns.resolver.NXDOMAIN):
        lab.resolver.resolve("nope.example.com", "A")
    asked = sum(live.queries.values())
    with pytest.raises(dns.resolver.NXDOMAIN):
        lab.resolver.resolve("nope.example.com", "A")
    assert sum(live.queries.values()) == asked  # the second one came from the resolver's negative cache
