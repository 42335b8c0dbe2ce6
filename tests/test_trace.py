"""Trace events through the control endpoint of a started lab: what a learner sees, step by step."""

from __future__ import annotations

import json
import os
import stat
from dataclasses import replace
from pathlib import Path
from typing import Any, Iterator

import pytest

from dnslab.control import ControlClient, LabState
from dnslab.errors import DnslabError
from dnslab.infra import InfraSettings
from dnslab.lab import Lab, LabSettings, zone_files
from dnslab.resolver import ResolverSettings
from dnslab.zone import load_zones

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
