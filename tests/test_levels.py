"""Caching levels as real DNS components on loopback: browser -> os -> resolver, further resolvers, failover.

Real packets to each level's own address; TTLs on the lab's fake clock (no sleeps).
"""

from __future__ import annotations

from pathlib import Path

import dns.message
import dns.query
import pytest

from dnslab.core.errors import ConfigError
from dnslab.lab.level_plan import parse_levels
from dnslab.lab.runtime import SAMPLE_ZONES, Lab
from dnslab.core.zone import load_zones
from dnslab.lab.hierarchy import zone_files

NAME = "www.example.com."
OLD, NEW = "192.0.2.10", "192.0.2.99"


def _ask(address: str, port: int, tcp: bool = False) -> dns.message.Message:
    query = dns.message.make_query(NAME, "A")
    if tcp:
        return dns.query.tcp(query, address, port=port, timeout=5)
    return dns.query.udp(query, address, port=port, timeout=5)


def test_each_level_answers_on_its_own_address_over_udp_and_tcp(make_dns_lab) -> None:
    lab = make_dns_lab(levels={"home": {"kind": "forwarder", "address": "127.0.100.5", "upstream": ["resolver"]},
                               "isp2": {"kind": "resolver", "address": "127.0.100.6"}})
    assert [level.name for level in lab.levels] == ["browser", "os", "home", "isp2"]
    for level in lab.levels:
        for tcp in (False, True):
            reply = _ask(level.address, lab.port, tcp)
            assert reply.rcode() == 0 and reply.answer, (level.name, tcp)
            assert reply.flags & dns.flags.RA


def test_a_second_query_through_the_browser_stops_at_the_browser(dns_lab) -> None:
    browser, os_level = dns_lab.level("browser"), dns_lab.level("os")
    assert browser.ask(NAME) == ["192.0.2.1", "192.0.2.2", "192.0.2.3"]
    os_queries, resolver_queries = os_level.stats["queries"], dns_lab.stats["queries"]
    assert browser.ask(NAME) == ["192.0.2.1", "192.0.2.2", "192.0.2.3"]
    assert browser.stats["hits"] == 1 and browser.stats["forwards"] == 1
    assert os_level.stats["queries"] == os_queries          # the OS stub was not asked again
    assert dns_lab.stats["queries"] == resolver_queries      # nor the resolver
    assert sum(os_level.queries.values()) == 1


def test_a_changed_record_is_seen_level_by_level_as_each_policy_says(make_dns_lab) -> None:
    # The OS stub capped at 120 s (systemd-resolved's cap is 2 h; a lab can show it in two minutes).
    lab = make_dns_lab(levels={"os": {"max_ttl": 120}})
    browser, os_level = lab.level("browser"), lab.level("os")
    lab.record_set(NAME, "A", OLD, ttl=300)
    assert browser.ask(NAME) == [OLD]          # t=0: every level keeps the old answer
    lab.record_set(NAME, "A", NEW, ttl=300)

    lab.advance(59)
    assert browser.ask(NAME) == [OLD] and browser.stats["hits"] == 1
    lab.advance(1)                              # t=60: the browser's 60 s are up; it asks the OS stub again
    misses = os_level.stats["misses"]
    assert browser.ask(NAME) == [OLD]          # ...which still has it
    assert browser.stats["misses"] == 2 and os_level.stats["hits"] == 1 and os_level.stats["misses"] == misses

    lab.advance(59)                             # t=119: the OS stub still answers from its cache
    assert lab.level("os").ask(NAME) == [OLD] and os_level.stats["hits"] == 2
    lab.advance(1)                              # t=120: its cap is reached; the resolver still has it (TTL 300)
    assert lab.level("os").ask(NAME) == [OLD] and os_level.stats["misses"] == misses + 1

    lab.advance(179)                            # t=299: the resolver's own answer is still the old one
    assert _data(lab.resolver.resolve(NAME, "A")) == [OLD]
    lab.advance(1)                              # t=300: the resolver asks the authority: the new record
    assert _data(lab.resolver.resolve(NAME, "A")) == [NEW]
    assert browser.ask(NAME) == [NEW]          # and, all kept answers having run out, the browser too


def test_two_resolvers_that_cached_at_different_times_switch_at_different_times(make_dns_lab) -> None:
    lab = make_dns_lab(levels={"isp2": {"kind": "resolver", "address": "127.0.100.10"}})
    isp1, isp2 = lab.resolver, lab.level("isp2").resolver
    lab.record_set(NAME, "A", OLD, ttl=300)
    assert _data(isp1.resolve(NAME, "A")) == [OLD]
    lab.advance(100)
    assert _data(isp2.resolve(NAME, "A")) == [OLD]
    lab.record_set(NAME, "A", NEW, ttl=300)
    lab.advance(200)                            # t=300
    assert _data(isp1.resolve(NAME, "A")) == [NEW]
    assert _data(isp2.resolve(NAME, "A")) == [OLD]   # the same name, two answers, at the same moment
    lab.advance(100)                            # t=400
    assert _data(isp2.resolve(NAME, "A")) == [NEW]


def test_firefox_serves_an_expired_answer_in_its_grace_period_and_fetches_again(make_dns_lab) -> None:
    lab = make_dns_lab(levels={"browser": {"policy": "firefox"}, "os": {"upstream": ["resolver"]}})
    browser = lab.level("browser")
    lab.record_set(NAME, "A", OLD, ttl=30)
    assert browser.ask(NAME) == [OLD]
    lab.record_set(NAME, "A", NEW, ttl=30)
    lab.advance(60)                             # fresh for 60 s whatever the TTL: now in grace
    assert browser.ask(NAME) == [OLD] and browser.stats["grace_hits"] == 1
    running = lab.lab.levels.get("browser").level
    lab.run(running.settled())                  # the refresh the grace answer started
    assert browser.cache.get(NAME).entry.answer[0][0].to_text() == NEW
    assert browser.ask(NAME) == [NEW]


def test_a_level_down_sends_its_clients_to_their_second_upstream(make_dns_lab) -> None:
    lab = make_dns_lab(levels={
        "browser": {"upstream": ["os", "os2"], "timeout": 0.2, "attempts": 1},
        "os2": {"kind": "os", "address": "127.0.100.3", "upstream": ["resolver"]}})
    browser, os2 = lab.level("browser"), lab.level("os2")
    lab.level("os").down()
    assert browser.ask(NAME) == ["192.0.2.1", "192.0.2.2", "192.0.2.3"]
    stats = browser.stats
    assert stats["timeouts"] == 1 and stats["failovers"] == 1 and os2.stats["queries"] == 1
    lab.level("os").up()
    browser.cache.flush()
    assert browser.ask(NAME) and browser.stats["failovers"] == 1  # os answers again: no failover


def test_a_level_with_every_upstream_down_says_servfail_with_the_question(make_dns_lab) -> None:
    lab = make_dns_lab(levels={"browser": {"timeout": 0.1, "attempts": 1}})
    lab.level("os").down()
    reply = _ask(lab.level("browser").address, lab.port)
    assert reply.rcode() == dns.rcode.SERVFAIL and reply.question[0].name.to_text() == NAME
    assert lab.level("browser").stats["servfails"] == 1


def test_levels_are_bounded(make_dns_lab) -> None:
    lab = make_dns_lab(levels={"browser": {"cache_size": 2}})
    browser = lab.level("browser")
    for name in ("www.example.com.", "mail.example.com.", "www.example.org.", "www.example.net."):
        browser.resolver.resolve(name, "A", raise_on_no_answer=False)
    assert len(browser.cache.entries()) == 2


def test_clock_advance_reaches_every_level(make_dns_lab) -> None:
    lab = make_dns_lab()
    browser, os_level = lab.level("browser"), lab.level("os")
    browser.ask(NAME)
    assert browser.cache.get(NAME) is not None and os_level.cache.get(NAME) is not None
    lab.advance(3600)
    assert browser.cache.get(NAME) is None and os_level.cache.get(NAME) is None


# --- configuration ------------------------------------------------------------------------


def _zones():
    zones, _ = load_zones(zone_files(SAMPLE_ZONES))
    return zones


@pytest.mark.parametrize("tables, message", [
    ({"browser": {"kind": "phone"}}, "kind must be one of"),
    ({"browser": {"address": "10.0.0.1"}}, "not a 127.x.y.z address"),
    ({"browser": {"upstream": ["nowhere"]}}, "upstream 'nowhere' is no level"),
    ({"os": {"upstream": ["browser"]}}, "loop: browser -> os -> browser"),
    ({"os": {"address": "127.0.100.1"}}, "is also level browser's"),
    ({"browser": {"colour": "red"}}, "unknown key(s) colour"),
    ({"home": {"kind": "forwarder", "address": "127.0.100.9", "upstream": "resolver", "min_cache_ttl": 7200}},
     "min_cache_ttl is 0 to 3600"),
    ({"isp2": {"kind": "resolver", "address": "127.0.100.9", "cache_sizee": 5}}, "unknown resolver option"),
    ({"resolver": {"kind": "os"}}, "names the lab's own resolver"),
    ({"browser": {"timeout": 0}}, "timeout is more than 0"),
])
def test_bad_level_tables_are_named_by_file_and_key(tables, message) -> None:
    with pytest.raises(ConfigError, match="lab.toml \\[levels.") as raised:
        parse_levels(tables, "lab.toml")
    assert message in str(raised.value)


def test_a_level_on_a_name_servers_address_is_refused() -> None:
    levels = parse_levels({"browser": {"address": "127.0.1.1"}}, "lab.toml")
    with pytest.raises(ConfigError, match="127.0.1.1 is also name server .* address in the zones"):
        Lab(_zones(), port=0, levels=levels)


def test_lab_toml_levels_are_read(tmp_path: Path) -> None:
    for source in SAMPLE_ZONES.glob("*.zone"):
        (tmp_path / source.name).write_text(source.read_text())
    (tmp_path / "lab.toml").write_text('[levels.home]\nkind = "forwarder"\naddress = "127.0.100.7"\n'
                                       'upstream = ["resolver"]\nmax_cache_ttl = 30\n')
    lab, _ = Lab.from_folder(tmp_path)
    assert [spec.name for spec in lab.levels.specs] == ["browser", "os", "home"]
    (tmp_path / "lab.toml").write_text('[levels.home]\nkind = "forwarder"\n')
    with pytest.raises(ConfigError, match=r"lab.toml \[levels.home\]: address must be given"):
        Lab.from_folder(tmp_path)


def _data(answer) -> list[str]:
    return sorted(rdata.to_text() for rdata in answer.rrset)



def test_the_lab_toml_of_docs_levels_md_is_read_as_written() -> None:
    import re
    import tomllib

    text = (Path(__file__).resolve().parents[1] / "docs" / "LEVELS.md").read_text()
    block = re.search(r"```toml\n(.*?)```", text, re.S).group(1)
    specs = parse_levels(tomllib.loads(block)["levels"], "LEVELS.md")
    by_name = {spec.name: spec for spec in specs}
    assert set(by_name) == {"browser", "os", "os2", "home", "isp2"}
    assert by_name["browser"].policy.name == "firefox" and by_name["browser"].upstream == ("os", "os2")
    assert by_name["os"].policy.max_ttl == 120 and by_name["home"].policy.max_entries == 150


def test_a_record_change_cannot_put_a_name_server_on_a_levels_address(dns_lab) -> None:
    from dnslab.core.errors import DnslabError

    with pytest.raises(DnslabError, match="127.0.100.1, where level browser listens"):
        dns_lab.record_set("ns1.example.com", "A", "127.0.100.1")
    assert dns_lab.level("browser").ask(NAME)   # nothing changed: the browser still answers


def test_answers_to_rd0_or_cd1_queries_are_passed_on_but_not_kept(dns_lab) -> None:
    browser = dns_lab.level("browser")
    for flags in (0, dns.flags.RD | dns.flags.CD):
        query = dns.message.make_query(NAME, "A")
        query.flags = flags
        reply = dns.query.udp(query, browser.address, port=dns_lab.port, timeout=5)
        assert reply.flags & dns.flags.RA and reply.question[0].name.to_text() == NAME
    assert browser.cache.entries() == [] and browser.stats["misses"] == 2
