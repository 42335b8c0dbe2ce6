"""`dnslab levels`, `query --via`, `cache --level`, `stats`, `fault` and `clock advance` on the levels of a running lab."""

from __future__ import annotations

import json

import pytest

from dnslab.faces.cli import main
from dnslab.testing import DnsLab


@pytest.fixture
def running(tmp_path, monkeypatch):
    monkeypatch.setenv("DNSLAB_STATE", str(tmp_path))
    with DnsLab(state_dir=tmp_path) as lab:
        yield lab


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_levels_lists_level_kind_address_port_upstream(running, capsys) -> None:
    code, out, _ = _run(capsys, "levels")
    assert code == 0
    assert "browser   browser   127.0.100.1" in out and "os (127.0.100.2)" in out and "resolver (127.0.0.1)" in out
    code, out, _ = _run(capsys, "levels", "--json")
    rows = json.loads(out)["levels"]
    assert [(r["level"], r["kind"], r["address"], r["port"], r["upstream"]) for r in rows] == [
        ("browser", "browser", "127.0.100.1", running.port, ["os"]),
        ("os", "os", "127.0.100.2", running.port, ["resolver"])]


def test_query_via_a_level_and_its_cache_stats_and_flush(running, capsys) -> None:
    code, out, _ = _run(capsys, "query", "www.example.com", "--via", "browser")
    assert code == 0 and f"SERVER: 127.0.100.1#{running.port}" in out and "\t60\tIN\tA\t192.0.2.1" in out
    _run(capsys, "query", "www.example.com", "--via", "browser")
    code, out, _ = _run(capsys, "cache", "show", "--level", "browser")
    assert "www.example.com." in out and "positive  60   300" in out
    code, out, _ = _run(capsys, "stats")
    line = next(line for line in out.splitlines() if line.startswith("browser"))
    assert line.split()[1:5] == ["2", "1", "0", "1"]  # queries, hits, grace hits, misses
    code, out, _ = _run(capsys, "stats", "--level", "os", "--json")
    assert json.loads(out)["queries"] == 1
    code, out, _ = _run(capsys, "cache", "flush", "--level", "browser")
    assert out.startswith("flushed 1 entry")


def test_clock_advance_expires_each_level_by_its_policy(running, capsys) -> None:
    _run(capsys, "query", "www.example.com", "--via", "browser")
    _run(capsys, "clock", "advance", "60")
    _, out, _ = _run(capsys, "cache", "show", "--level", "browser")
    assert "www.example.com." not in out          # Chromium: 60 s
    _, out, _ = _run(capsys, "cache", "show", "--level", "os")
    assert "positive  240  300" in out            # systemd-resolved: the TTL, counted down


def test_fault_on_a_level_and_bad_level_names(running, capsys) -> None:
    code, out, _ = _run(capsys, "fault", "os", "down")
    assert code == 0 and out.strip() == "os (127.0.100.2): down"
    _, out, _ = _run(capsys, "faults")
    assert "os (127.0.100.2): down" in out
    _run(capsys, "fault", "os", "up")
    code, _, err = _run(capsys, "query", "www.example.com", "--via", "phone")
    assert code == 1 and err.startswith("dnslab: error: no level 'phone'") and "browser (127.0.100.1)" in err
    code, _, err = _run(capsys, "cache", "show", "--level", "phone")
    assert code == 1 and err.count("\n") == 1
    code, _, err = _run(capsys, "query", "www.example.com", "@127.0.0.1", "--via", "browser")
    assert code == 1 and "not both" in err


def test_trace_via_shows_each_level_then_the_resolvers_walk_then_a_hit_at_the_browser(running, capsys) -> None:
    code, out, _ = _run(capsys, "trace", "www.example.com", "--via", "browser", "--json")
    events = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and all("level" in event for event in events)
    steps = [(e["level"], e["result"]) for e in events if e["event"] == "level"]
    assert steps == [("browser", "miss"), ("os", "miss"), ("browser", "answered")]
    assert [e["next"] for e in events if e["event"] == "level"][:2] == ["os", "resolver"]
    assert any(e["event"] == "query" and e["level"] == "resolver" for e in events)  # the resolver's walk
    code, out, _ = _run(capsys, "trace", "www.example.com", "--via", "browser")
    assert "[browser 127.0.100.1] cache hit: www.example.com. A, kept 60 s more (chromium)" in out
    assert "[os" not in out                         # the OS stub was not reached


def test_a_level_step_reads_as_a_line() -> None:
    from dnslab.faces.trace import TextRenderer

    down = {"event": "level", "level": "browser", "address": "127.0.100.1", "result": "down", "next": "os",
            "next_address": "127.0.100.2", "t_ms": 1.0}
    assert "upstream os (127.0.100.2) does not answer" in TextRenderer().line(down)


def test_trace_via_html_tells_each_levels_step(running, capsys, tmp_path) -> None:
    picture = tmp_path / "via.html"
    code, _, _ = _run(capsys, "trace", "www.example.com", "--via", "browser", "--html", str(picture))
    text = picture.read_text()
    assert code == 0
    assert "Level browser (127.0.100.1) has no fresh answer: it asks os 127.0.100.2." in text
    assert "The client&#x27;s answer through browser: NOERROR" in text
    assert 'data-lane="level:browser"' in text and 'data-lane="level:os"' in text   # a lane per level
    assert "miss: asks os" in text and "the question from the level above" in text
    _run(capsys, "trace", "www.example.com", "--via", "browser", "--html", str(picture))
    text = picture.read_text()
    assert "browser: cache hit" in text and 'data-lane="level:os"' not in text   # answered by the browser alone
