"""Scenarios: the file format's checks, the client model (sans-I/O), and real runs through the lab."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import dns.message
import dns.rrset
import pytest

from dnslab.faces.cli import main
from dnslab.lab.scenario.population import Answer, Client, Population, answer_of
from dnslab.lab.scenario.series import Series
from dnslab.lab.scenario.shipped import SHIPPED, find, shipped
from dnslab.lab.scenario.spec import ScenarioError, load, parse, seconds
from dnslab.testing import DnsLab

DOCS = Path(__file__).resolve().parents[1] / "docs"


def spec(**extra: Any) -> dict[str, Any]:
    data: dict[str, Any] = {"duration": "1h", "clients": [{"count": 10, "ask": "www.example.com A"}]}
    data.update(extra)
    return data


# --- the file format ------------------------------------------------------------------------

@pytest.mark.parametrize("text,value", [("90", 90), ("90s", 90), ("5m", 300), ("2h", 7200), ("1d", 86400),
                                        ("3h10m", 11400), ("1h22m30s", 4950), (45, 45), (1.5, 1.5)])
def test_times_are_read_with_units(text: Any, value: float) -> None:
    assert seconds(text, "at") == value


@pytest.mark.parametrize("text", ["x", "5m5", "", "-5", "1w", True, [1]])
def test_bad_times_are_refused(text: Any) -> None:
    with pytest.raises(Exception, match="expected a time"):
        seconds(text, "at")


@pytest.mark.parametrize("data,problem", [
    (spec(colour="red"), "unknown key 'colour'"),
    ({"clients": [{"ask": "a.example."}]}, "duration is missing"),
    (spec(clients=[]), "at least one group"),
    (spec(clients=[{"ask": "www.example.com FOO"}]), "'FOO' is not a record type"),
    (spec(clients=[{"ask": "www.example.com", "count": 0}]), "count: expected a whole number"),
    (spec(clients=[{"ask": "www.example.com", "connect": "all"}]), "connect: expected one of first, any"),
    (spec(timeline=[{"at": "2h", "note": "late"}]), "2h is after the end"),
    (spec(timeline=[{"at": "5m", "endpoint": "192.0.2.9", "state": "down"}]), "192.0.2.9 is not in [endpoints]"),
    (spec(endpoints={"web": "up"}), "'web' is not an IP address"),
    (spec(timeline=[{"at": 0, "fault": "ns1.example.com melt"}]), "melt"),
    (spec(timeline=[{"at": 0, "set": "www.example.com A"}]), "NAME TYPE VALUE"),
    (spec(timeline=[{"at": 0, "set": "a.example.com A 1.2.3.4", "delete": "a.example.com A"}]), "exactly one of"),
    (spec(resolver={"rotation": "sideways"}), "rotation"),
    (spec(bucket="2h"), "bucket: expected a time from 1s"),
])
def test_mistakes_are_one_line_naming_the_file(data: dict[str, Any], problem: str) -> None:
    with pytest.raises(ScenarioError) as caught:
        parse(data, "my.toml")
    message = str(caught.value)
    assert message.startswith("my.toml: ") and problem in message and "\n" not in message


def test_a_broken_file_is_an_error_with_exit_code_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "broken.toml"
    path.write_text('duration = "1h"\n[[clients]]\nask = "www.example.com"\nevery = "soon"\n')
    assert main(["scenario", "run", str(path)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(path) in err[0] and "every" in err[0]
    assert main(["scenario", "run", "no-such-scenario"]) == 1
    assert "shipped:" in capsys.readouterr().err
    (tmp_path / "bad.toml").write_text("duration = \n")
    assert main(["scenario", "run", str(tmp_path / "bad.toml")]) == 1
    assert "not valid TOML" in capsys.readouterr().err


def test_every_shipped_scenario_loads_and_has_a_docs_page_with_its_chart() -> None:
    found = shipped()
    assert len(found) >= 6
    for item in found:
        page = DOCS / "scenarios" / f"{item.name}.md"
        assert page.exists(), f"{item.name} has no docs page"
        text = page.read_text()
        assert f"dnslab scenario run {item.name}" in text and f"{item.name}.svg" in text
        assert (DOCS / "scenarios" / f"{item.name}.svg").exists()
    assert find("ttl-lowering").source == str(SHIPPED / "ttl-lowering.toml")


# --- the client model, without sockets ------------------------------------------------------

def test_clients_ask_at_their_rate_with_seeded_jitter() -> None:
    scenario = parse(spec(clients=[{"count": 50, "ask": "a.example.", "every": "1m", "jitter": 0.5}]), "t")
    population = Population(scenario)
    times: list[float] = []
    now = 0.0
    while now < 3600:
        now = population.next_time() or 3600
        times += [now] * len(population.due(now))
    # 50 clients, one lookup a minute each, for an hour: about 3,000 lookups, none before the first minute ends.
    assert 2800 < len(times) < 3200
    again = Population(scenario)
    assert [again.next_time()] == [Population(scenario).next_time()]  # the same seed, the same traffic


def test_a_client_keeps_its_answer_for_the_ttl_it_got_and_connects_to_the_first_address() -> None:
    scenario = parse(spec(clients=[{"count": 1, "ask": "a.example."}]), "t")
    client = Population(scenario).clients[0]
    assert Population.needs_query(client, 0)
    Population.take(client, Answer.of(["192.0.2.2", "192.0.2.1"], 300), now=100)
    assert not Population.needs_query(client, 399) and Population.needs_query(client, 400)
    connection = Population.connect(client, {"192.0.2.2": False, "192.0.2.1": True})
    assert connection is not None and connection.tried == ("192.0.2.2",) and not connection.ok
    Population.take(client, Answer("SERVFAIL"), now=500)
    assert Population.needs_query(client, 500)  # failures are not kept
    assert Population.connect(client, {}) is None


def test_a_client_that_tries_any_address_fails_only_when_all_are_down() -> None:
    scenario = parse(spec(clients=[{"count": 1, "ask": "a.example.", "connect": "any"}]), "t")
    client = Population(scenario).clients[0]
    Population.take(client, Answer.of(["192.0.2.1", "192.0.2.2"], 60), now=0)
    connection = Population.connect(client, {"192.0.2.1": False})
    assert connection is not None and connection.ok and connection.tried == ("192.0.2.1", "192.0.2.2")


def test_negative_answers_are_kept_for_the_soa_negative_ttl() -> None:
    reply = dns.message.make_response(dns.message.make_query("nope.example.com.", "A"))
    reply.set_rcode(3)
    reply.authority.append(dns.rrset.from_text("example.com.", 3600, "IN", "SOA",
                                               "ns1.example.com. h.example.com. 1 2 3 4 300"))
    answer = answer_of(reply, 1)
    assert (answer.label, answer.ttl) == ("NXDOMAIN", 300)  # min(SOA TTL, MINIMUM), RFC 2308 §5


def test_milestones_count_from_since() -> None:
    scenario = parse(spec(clients=[{"count": 4, "ask": "a.example."}]), "t")
    clients = [Client(number, scenario.clients[0], "resolver") for number in range(4)]
    series = Series(3600, 60, 4, new_answer="192.0.2.9", since=600)
    new = Answer.of(["192.0.2.9"], 60)
    series.lookup(100, clients[0], new, True, None)  # before the change counts toward the share, not a milestone
    for number, at in ((1, 700), (2, 800), (3, 900)):
        series.lookup(at, clients[number], new, True, None)
    assert series.milestones == {50: 100.0, 95: 300.0, 99: 300.0, 100: 300.0}


# --- real runs ------------------------------------------------------------------------------

def ttl_change(ttl: int) -> dict[str, Any]:
    """A record changed mid-run; clients look it up every minute and keep answers for their TTL."""
    return {"duration": "3h", "bucket": "10m", "seed": 7,
            "clients": [{"count": 20, "ask": "shop.example.com A", "every": "1m"}],
            "measure": {"new": "192.0.2.60", "since": "1h30m"},
            "timeline": [{"at": 0, "set": "shop.example.com A 192.0.2.50", "ttl": ttl},
                         {"at": "1h30m", "set": "shop.example.com A 192.0.2.60", "ttl": ttl}]}


def test_the_change_reaches_clients_when_the_ttl_says() -> None:
    """Fails if the resolver (or the clients) ignored TTLs: with 3600 the old answer must stay until the
    resolver's copy, fetched at the start of the hour, runs out (at 2h, half an hour after the change);
    with 60 the new one must be everywhere within a few minutes."""
    with DnsLab() as lab:
        long = lab.scenario(ttl_change(3600)).series
    with DnsLab() as lab:
        short = lab.scenario(ttl_change(60)).series
    assert long.milestones[50] is not None and 25 * 60 <= long.milestones[50] <= 35 * 60
    assert long.milestones[100] is not None and long.milestones[100] <= 40 * 60
    assert short.milestones[100] is not None and short.milestones[100] <= 3 * 60
    assert short.totals()["queries"] > 10 * long.totals()["queries"]  # the price of the short TTL
    assert long.totals()["failed_lookups"] == short.totals()["failed_lookups"] == 0


def test_a_dead_first_address_fails_the_clients_that_hold_it() -> None:
    data = {"duration": "1h", "bucket": "5m", "seed": 3,
            "clients": [{"count": 30, "ask": "app.example.com A", "every": "1m"}],
            "endpoints": {"192.0.2.71": "up", "192.0.2.72": "up"},
            "timeline": [{"at": 0, "set": "app.example.com A 192.0.2.71, 192.0.2.72", "ttl": 600},
                         {"at": "20m", "endpoint": "192.0.2.71", "state": "down"}]}
    with DnsLab() as lab:
        series = lab.scenario(data).series
    before = sum(bucket.failed_connections for bucket in series.buckets[:4])
    after = sum(bucket.failed_connections for bucket in series.buckets[4:])
    connections = series.totals()["connections"]
    assert before == 0 and after > 0
    assert connections["192.0.2.71"] > 0 and connections["192.0.2.72"] > 0  # round robin spread them


def test_the_cli_runs_a_shipped_scenario_the_same_way_twice(tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    def run() -> dict[str, Any]:
        assert main(["scenario", "run", "negative-caching", "--clients", "20", "--json",
                     "--html", str(tmp_path / "page.html"), "--svg", str(tmp_path / "chart.svg")]) == 0
        return json.loads(capsys.readouterr().out)

    first, second = run(), run()
    for one, two in zip(first["variants"], second["variants"]):
        # What the clients saw is the same for the same seed (which server answered may differ:
        # the resolver picks by measured round-trip times, which are real).
        assert [b["answers"] for b in one["buckets"]] == [b["answers"] for b in two["buckets"]]
        assert one["totals"]["milestones"] == two["totals"]["milestones"]
    ten, three_hundred = (variant["totals"]["milestones"]["99"] for variant in first["variants"])
    assert ten < three_hundred  # a 10 s negative TTL lets the new name through sooner than 300 s
    assert (tmp_path / "page.html").read_text().count("<svg") >= 2
    assert (tmp_path / "chart.svg").read_text().startswith("<svg")
    assert main(["scenario", "list"]) == 0
    listed = capsys.readouterr().out
    assert all(item.name in listed for item in shipped())


def test_a_scenario_file_can_be_given_by_path(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "mine.toml"
    path.write_text('duration = "10m"\nbucket = "5m"\n[[clients]]\ncount = 5\nask = "www.example.com A"\n'
                    'every = "1m"\n')
    assert load(path).population == 5
    assert main(["scenario", "run", str(path)]) == 0
    out = capsys.readouterr().out
    assert "Scenario mine" in out and "192.0.2.1 192.0.2.2 192.0.2.3" not in out  # a table, not raw answers


def test_clients_spread_over_levels_and_further_resolvers(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "spread.toml"
    path.write_text('duration = "2h"\nbucket = "10m"\n'
                    '[levels.isp2]\nkind = "resolver"\naddress = "127.0.100.12"\n'
                    '[[clients]]\ncount = 10\nask = "www.example.com A"\nevery = "5m"\nvia = ["browser"]\n'
                    '[[clients]]\ncount = 10\nask = "www.example.com A"\nevery = "5m"\nstart = "1h"\nvia = ["isp2"]\n')
    assert main(["scenario", "run", str(path), "--json"]) == 0
    variant = json.loads(capsys.readouterr().out)["variants"][0]
    upstream = variant["totals"]["upstream"]
    assert upstream["browser"] > 0 and upstream["os"] > 0 and upstream["isp2"] > 0
    first_hour = sum(sum(b["queries"].values()) for b in variant["buckets"][:6] if "isp2" in b["queries"])
    assert first_hour == 0  # the isp2 group starts an hour in
    path.write_text(path.read_text().replace('via = ["isp2"]', 'via = ["isp9"]'))
    assert main(["scenario", "run", str(path)]) == 1
    assert "isp9" in capsys.readouterr().err
