"""How a test suite uses dnslab's pytest plugin: real DNS, no sleeps, faults on demand.

Install dnslab (pip install dnslab, or this repository) and the fixtures are there:
`dns_lab` is a started lab of the sample zones (dnslab/zones/README.md lists them) with its
resolver; `make_dns_lab(zones=DIR)` starts one from your own zone files.
"""

import dns.rcode
import dns.resolver
import pytest


def addresses(answer: dns.resolver.Answer) -> list[str]:
    return [rdata.address for rdata in answer]


def test_ttl_expiry_without_sleeping(dns_lab):
    # t10.ttl-demo.org has a 10-second TTL. The lab's clock moves only when told to.
    assert dns_lab.resolver.resolve("t10.ttl-demo.org", "A").rrset.ttl == 10
    dns_lab.clock.advance(7)
    assert dns_lab.resolver.resolve("t10.ttl-demo.org", "A").rrset.ttl == 3  # counted down in the cache
    dns_lab.record_set("t10.ttl-demo.org", "A", "192.0.2.123", ttl=10)  # the zone changes...
    assert addresses(dns_lab.resolver.resolve("t10.ttl-demo.org", "A")) == ["192.0.2.81"]  # ...cache still old
    dns_lab.clock.advance(3)  # exactly the TTL: the cached answer is gone
    assert addresses(dns_lab.resolver.resolve("t10.ttl-demo.org", "A")) == ["192.0.2.123"]


def test_negative_caching(dns_lab):
    server = dns_lab.server("ns1.example.com")
    with pytest.raises(dns.resolver.NXDOMAIN):
        dns_lab.resolver.resolve("nope.example.com", "A")
    asked = sum(server.queries.values())
    with pytest.raises(dns.resolver.NXDOMAIN):
        dns_lab.resolver.resolve("nope.example.com", "AAAA")  # NXDOMAIN covers every type (RFC 2308)
    assert sum(server.queries.values()) == asked  # answered from the negative cache
    dns_lab.clock.advance(300)  # example.com's negative TTL: min(SOA TTL, MINIMUM) = 300
    dns_lab.record_set("nope.example.com", "A", "192.0.2.200")
    assert addresses(dns_lab.resolver.resolve("nope.example.com", "A")) == ["192.0.2.200"]


def test_failover_to_the_second_name_server(dns_lab):
    # failover.com has two name servers; the first one starts down (the sample's lab.toml).
    first, second = dns_lab.server("ns1.failover.com"), dns_lab.server("ns2.failover.com")
    assert addresses(dns_lab.resolver.resolve("www.failover.com", "A")) == ["192.0.2.70"]
    assert second.queries["www.failover.com.", "A"] == 1
    # And the other way round: bring the first back, take the second down, let the cache expire.
    first.up()
    second.down()
    dns_lab.clock.advance(3600)
    assert addresses(dns_lab.resolver.resolve("www.failover.com", "A")) == ["192.0.2.70"]
    assert first.queries["www.failover.com.", "A"] >= 1


def test_round_robin_order_over_several_queries(dns_lab):
    orders = [addresses(dns_lab.resolver.resolve("www.example.com", "A")) for _ in range(3)]
    assert [order[0] for order in orders] == ["192.0.2.1", "192.0.2.2", "192.0.2.3"]
    assert all(sorted(order) == ["192.0.2.1", "192.0.2.2", "192.0.2.3"] for order in orders)


def test_servfail_when_every_server_is_down(dns_lab):
    # `unreachable`: nothing listens at the address, the kernel answers "port unreachable" and the
    # resolver moves on at once. (`down` stays silent: the resolver then waits out its timeouts, which
    # are real time even on the fake clock, about 1.6 s here.)
    dns_lab.server("ns1.failover.com").unreachable()  # it starts down (silent); now refusing instead
    dns_lab.server("ns2.failover.com").unreachable()
    with pytest.raises(dns.resolver.NoNameservers) as failure:
        dns_lab.resolver.resolve("www.failover.com", "A")
    assert "SERVFAIL" in str(failure.value)
    # The trace says why, step by step; the counters say nothing was waited for.
    failed = [event for event in dns_lab.last_trace if event["event"] == "failed"]
    assert {(event["address"], event["failure"]) for event in failed} == {("127.0.3.20", "network"),
                                                                          ("127.0.3.21", "network")}
    assert dns_lab.stats["timeouts"] == 0 and dns_lab.stats["network_errors"] == len(failed)


def test_serve_stale(make_dns_lab):
    from dataclasses import replace

    from dnslab.resolution.settings import ResolverSettings

    settings = ResolverSettings()
    lab = make_dns_lab(resolver_settings=replace(settings, cache=replace(settings.cache, serve_stale=True)))
    assert addresses(lab.resolver.resolve("t5.ttl-demo.org", "A")) == ["192.0.2.80"]
    lab.server("ns1.example.org").down()  # ttl-demo.org's only server
    lab.clock.advance(60)  # long expired
    answer = lab.resolver.resolve("t5.ttl-demo.org", "A")
    assert addresses(answer) == ["192.0.2.80"] and answer.rrset.ttl == 30  # stale, RFC 8767


def test_keeping_the_old_server_up_for_the_ttl_fails_no_client(dns_lab):
    # The shipped scenario graceful-transition (docs/scenarios/graceful-transition.md): 200 clients, a
    # move to a new address with a TTL of an hour, run on this lab's fake clock with real lookups.
    kept = dns_lab.scenario("graceful-transition", variant="kept-up")
    assert kept.series.totals()["failed_connections"] == 0


def test_switching_the_old_server_off_at_the_change_fails_clients(make_dns_lab):
    switched_off = make_dns_lab().scenario("graceful-transition", variant="switched-off")
    assert switched_off.series.totals()["failed_connections"] > 0
    assert switched_off.series.milestones[99] is not None  # yet everyone has the new address in the end
