"""Trace events through the control endpoint of a started lab: what a learner sees, step by step."""

from __future__ import annotations

import json
import os
import re
import stat
from dataclasses import replace
from pathlib import Path
from typing import Any, Iterator

import pytest

from dnslab.lab.control import ControlClient, LabState
from dnslab.core.errors import DnslabError
from dnslab.resolution.infra import InfraSettings
from dnslab.lab.runtime import Lab, LabSettings
from dnslab.lab.hierarchy import zone_files
from dnslab.resolution.settings import ResolverSettings
from dnslab.core.zone import load_zones

from conftest import SAMPLE_ZONES, LabThread


@pytest.fixture
def lab() -> Iterator[Lab]:
    """The sample lab with deterministic server choice (no random exploration)."""
    zones, _ = load_zones(zone_files(SAMPLE_ZONES))
    settings = ResolverSettings()
    settings = replace(settings, infra=InfraSettings(explore_probability=0.0))
    lab = Lab(zones, port=0, start_down=LabSettings.load(SAMPLE_ZONES / "lab.toml").start_down,
              resolver_settings=settings)
    with LabThread(lab):
        yield lab


def client(lab: Lab) -> ControlClient:
    return ControlClient(LabState(lab.control.address, lab.control.port, lab.control.token,
                                  lab.resolver_address, lab.actual_port, "", os.getpid()))


def trace(lab: Lab, name: str, rdtype: str = "A", cold: bool = False) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    result = client(lab).call("trace", {"name": name, "type": rdtype, "cold": cold}, on_event=events.append)
    assert result["rcode"] == events[-1]["rcode"]
    return events


def of(events: list[dict[str, Any]], kind: str, **match: Any) -> list[dict[str, Any]]:
    return [e for e in events if e["event"] == kind and all(e.get(k) == v for k, v in match.items())]


def test_cold_walk_goes_root_tld_authoritative(lab: Lab) -> None:
    events = trace(lab, "www.example.com.", cold=True)
    assert events[0] == {**events[0], "event": "start", "name": "www.example.com.", "depth": 0}
    assert of(events, "cache")[0]["result"] == "miss"
    assert of(events, "delegation")[0]["source"] == "hints"
    queries = of(events, "query")
    assert [(q["zone"], q["name"], q["type"], q["purpose"]) for q in queries] == [
        (".", ".", "NS", "priming"),
        (".", "com.", "A", "minimised"),
        ("com.", "example.com.", "A", "minimised"),
        ("example.com.", "www.example.com.", "A", "resolve"),
    ]
    referrals = of(events, "reply", meaning="referral")
    assert [r["child_zone"] for r in referrals] == ["com.", "example.com."]
    assert "ns1.example.com. 127.0.3.1" in referrals[1]["glue"]
    choices = of(events, "choose")
    assert all(c["reason"] in ("untried", "fastest", "only one left") for c in choices)
    done = events[-1]
    assert done["event"] == "done" and done["rcode"] == "NOERROR" and done["upstream_queries"] == 4
    assert sorted(r.split()[-1] for r in done["records"]) == ["192.0.2.1", "192.0.2.2", "192.0.2.3"]
    assert [e["t_ms"] for e in events] == sorted(e["t_ms"] for e in events)
    json.dumps(events)  # every event is plain JSON


def test_cold_trace_leaves_the_shared_cache_alone(lab: Lab) -> None:
    trace(lab, "www.example.com.", cold=True)
    assert lab.resolver is not None and len(lab.resolver.cache) == 0


def test_warm_repeat_is_a_cache_hit(lab: Lab) -> None:
    trace(lab, "www.example.com.")
    events = trace(lab, "www.example.com.")
    [hit] = of(events, "cache")
    assert hit["result"] == "hit" and 0 < hit["ttl"] <= hit["original_ttl"] == 300
    assert of(events, "query") == [] and events[-1]["upstream_queries"] == 0


def test_cname_across_zones_restarts_at_the_target(lab: Lab) -> None:
    events = trace(lab, "www.example.org.")
    [restart] = of(events, "restart")
    assert (restart["name"], restart["target"], restart["via"]) == ("www.example.org.", "www.example.com.", "CNAME")
    assert of(events, "reply", meaning="cname")[0]["target"] == "www.example.com."
    zones = [q["zone"] for q in of(events, "query")]
    assert zones.index("example.org.") < zones.index("example.com.")
    assert [r.split()[3] for r in events[-1]["records"]] == ["CNAME", "A", "A", "A"]


def test_nxdomain_then_negative_cache_hit(lab: Lab) -> None:
    first = trace(lab, "nope.example.com.")
    assert of(first, "reply", meaning="nxdomain") and first[-1]["rcode"] == "NXDOMAIN"
    second = trace(lab, "nope.example.com.", "TXT")
    [hit] = of(second, "cache")
    assert (hit["result"], hit["rcode"]) == ("negative", "NXDOMAIN")
    assert "SOA" in hit["records"][0] and of(second, "query") == []


def test_failover_shows_the_failed_try_and_the_next_server(lab: Lab) -> None:
    events = trace(lab, "www.failover.com.")  # ns1.failover.com (127.0.3.20) starts down
    [failed] = of(events, "failed")
    assert failed["address"] == "127.0.3.20" and failed["server"] == "ns1.failover.com."
    assert failed["failure"] in ("timeout", "network")
    after = events[events.index(failed) + 1:]
    assert of(after, "choose")[0]["address"] == "127.0.3.21"
    assert of(after, "reply", address="127.0.3.21", meaning="answer")
    assert events[-1]["rcode"] == "NOERROR"


def test_inspection_commands(lab: Lab) -> None:
    control = client(lab)
    trace(lab, "www.example.net.")
    shown = control.call("cache.show", {"name": "example.net."})["entries"]
    www = next(e for e in shown if e["name"] == "www.example.net." and e["type"] == "A")
    assert www["kind"] == "positive" and www["rank"] == "auth_answer" and www["source"] == "127.0.3.10"
    servers = {s["address"]: s for s in control.call("servers")["servers"]}
    assert servers["127.0.3.10"]["names"] == ["ns1.dns-host.org."] and servers["127.0.3.10"]["state"] == "closed"
    assert control.call("cache.flush", {"name": "example.net.", "tree": True})["flushed"] >= 2
    assert control.call("cache.show", {"name": "example.net."})["entries"] == []
    assert set(control.call("stats")) >= {"queries", "cache_hits", "upstream_queries", "timeouts", "failovers",
                                          "servfails", "uptime_s", "by_type", "by_rcode"}


def test_control_needs_the_token(lab: Lab) -> None:
    state = LabState(lab.control.address, lab.control.port, "not-the-token", None, 0, "", 0)
    with pytest.raises(DnslabError, match="wrong token"):
        ControlClient(state).call("stats")
    with pytest.raises(DnslabError, match="unknown command"):
        client(lab).call("format-disk")


def test_state_file_is_private(tmp_path: Path) -> None:
    path = tmp_path / "lab" / "lab.json"
    LabState("127.0.0.1", 1, "secret", "127.0.0.1", 5300, "hints", 1).write(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert LabState.read(path).token == "secret"
    with pytest.raises(DnslabError, match="no running lab"):
        LabState.read(tmp_path / "missing.json")


# --- the trace and the views agree with what happened (issue 15, item 8) ----------------------


def _walk(net: Any, name: str = "www.example.com.") -> list[dict[str, Any]]:
    """A sans-I/O lookup over a FakeNet, its events stamped as `dnslab trace --json` stamps them."""
    import random

    import dns.name
    import dns.rdatatype

    from dnslab.resolution.cache import Cache, CacheSettings
    from dnslab.core.clock import FakeClock
    from dnslab.core.events import Recording
    from dnslab.resolution.infra import Infra
    from dnslab.resolution.iterator import Resolution, Result

    clock = FakeClock()
    recording = Recording()
    resolution = Resolution(dns.name.from_text(name), dns.rdatatype.A, cache=Cache(clock, CacheSettings()),
                            infra=Infra(clock, InfraSettings(explore_probability=0.0), random.Random(1)),
                            hints=net.hints, trace=recording.sink)
    for _ in range(100):
        action = resolution.next_action()
        if isinstance(action, Result):
            return recording.to_json()
        reply = net.reply(action)
        if reply is None:
            clock.advance(action.timeout)
            resolution.on_timeout(action)
        else:
            resolution.on_reply(action, reply, net.rtt)
    raise AssertionError("the lookup did not end")


def _sample_net(**overrides: Any) -> Any:
    from iterfake import FakeNet

    zones, _ = load_zones(zone_files(SAMPLE_ZONES))
    return FakeNet(zones, **overrides)


def test_sub_millisecond_times_are_shown_not_rounded_to_zero() -> None:
    from dnslab.core.events import ms_text
    from dnslab.faces.trace import TextRenderer

    assert [ms_text(v) for v in (0.04, 0.412, 0.999, 0, 1.0, 2.35, 15.74, None)] == [
        "0.04", "0.41", "1", "0", "1", "2.4", "15.7", "?"]
    events = _walk(_sample_net(rtt=0.00004))  # 40 µs round trips, as on a quick loopback
    replies = of(events, "reply")
    assert replies and all(e["rtt_ms"] == 0.04 for e in replies)
    text = "\n".join(filter(None, (TextRenderer().line(e) for e in events)))
    assert "in 0.04 ms: referral" in text and " in 0 ms" not in text


def test_the_last_failed_try_does_not_promise_a_next_server() -> None:
    from dnslab.faces.trace import TextRenderer
    from dnslab.faces.trace_html import render_html

    net = _sample_net(faults={"127.0.3.1": lambda q, m: None, "127.0.3.2": lambda q, m: None})
    events = _walk(net)
    assert events[-1]["rcode"] == "SERVFAIL" and len(of(events, "failed")) >= 2
    text = "\n".join(filter(None, (TextRenderer().line(e) for e in events)))
    assert "next server" not in text
    assert "every name server of example.com. failed" in text.splitlines()[-1]
    page = render_html(events, "all down")
    steps = re.findall(r"<li>[^<]*Failed try[^<]*</li>", page)  # the list of steps below the picture
    assert len(steps) == len(of(events, "failed"))
    assert "no server is left to ask" in steps[-1]  # the last try only; the others try again
    assert all("gets the question" in step or "once more" in step for step in steps[:-1])


def test_servers_says_no_reply_for_a_server_that_only_failed(lab: Lab) -> None:
    from dnslab.faces.inspection import _srtt_text

    control = client(lab)
    control.call("fault", {"server": "ns1.example.com", "kind": "unreachable"})
    control.call("fault", {"server": "ns2.example.com", "kind": "unreachable"})
    assert trace(lab, "www.example.com.")[-1]["rcode"] == "SERVFAIL"
    servers = {s["address"]: s for s in control.call("servers")["servers"]}
    ns1 = servers["127.0.3.1"]
    assert ns1["srtt_ms"] is None and ns1["last_failure"] == "network"
    assert _srtt_text(ns1) == "no reply yet"
    assert _srtt_text(servers["127.0.1.1"]).endswith(" ms")  # the root answered


def test_clock_shows_lab_time_since_the_start_and_the_fake_clock() -> None:
    from dnslab.core.clock import FakeClock
    from dnslab.faces.inspection import clock_text

    zones, _ = load_zones(zone_files(SAMPLE_ZONES))
    with LabThread(Lab(zones, port=0, clock=FakeClock())) as lab:
        control = client(lab)
        assert control.call("clock")["since_start_s"] == 0
        status = control.call("clock.advance", {"seconds": 300})
        assert (status["fake"], status["since_start_s"], status["advanced_s"]) == (True, 300, 300)
        text = clock_text(control.call("clock"))
        assert text.startswith("lab clock: fake (dnslab up --fake-clock), 300 s since the lab started")
        assert "1000300" not in text  # the raw monotonic reading means nothing to anyone
    with LabThread(Lab(zones, port=0)) as lab:
        status = client(lab).call("clock")
        assert status["fake"] is False and 0 <= status["since_start_s"] < 600
        assert clock_text(status).startswith("lab clock: real time, ")


def test_the_pytest_api_traces_carry_t_ms_as_dnslab_trace_json_does() -> None:
    from dnslab.testing import DnsLab

    with DnsLab() as lab:
        lab.resolver.resolve("www.example.com", "A")
        for events in (lab.last_trace, lab.trace("www.example.org", "A", cold=True)):
            assert events and all(isinstance(e["t_ms"], float) for e in events)
            times = [e["t_ms"] for e in events]
            assert times == sorted(times) and times[-1] > 0
            done = events[-1]
            assert done["event"] == "done" and done["depth"] == 0 and done["total_ms"] == done["t_ms"]
