"""The live web view: its HTTP API without a browser, then the page itself in headless Chromium.

The API tests run a lab in this process (dnslab.testing.DnsLab, on the fake
clock) with a WebServer on the lab's loop, and talk to it with plain HTTP:
the token is required everywhere but on the static files, every action is a
control command and changes the lab as the CLI would, and the event stream
delivers the hierarchy, queries and state.  The browser tests start a real
`dnslab up` and drive the page with Playwright on Debian's Chromium (skipped,
with the reason, when either is missing; `.ci/run` installs both): a query
sent from the page appears with its trace, a server taken down from the page
shows a failover in the next trace, advancing the clock drops a TTL, the
controls work from the keyboard, and the page stays usable at 1,000 queries a
second.  No page may log a console error.  Screenshots go to $DNSLAB_SCREENSHOTS
when it is set (docs/ for the README), else to the test's temporary folder.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import dns.message
import dns.name
import dns.query
import dns.rdatatype
import pytest

from dnslab.core.events import Failed, Start
from dnslab.faces.querytap import QueryTap
from dnslab.testing import DnsLab
from dnslab.faces.web import WebServer

from conftest import ENV, REPO, find_chromium, join_reader, read_until, sample_copy

WEBUI = REPO / "dnslab" / "faces" / "webui"
WAIT = 15.0  # seconds: the bound on every wait in this file
# Server choice explores a similar server one time in ten (Unbound does too), so the server
# taken down is not always the one asked first: a failover is looked for in up to this many
# fresh lookups, each after taking down the server the resolver prefers.
ATTEMPTS = 12
EXAMPLE_COM = ("127.0.3.1", "127.0.3.2")   # ns1 and ns2.example.com


# --- the query tap, alone ---------------------------------------------------------------------


def test_the_tap_records_at_most_its_budget_and_counts_the_rest() -> None:
    tap = QueryTap(rate=8, size=5)
    tap.refill(0.5)   # four this slice
    name = dns.name.from_text("www.example.com.")
    taken = [tap.begin(name, dns.rdatatype.A) for _ in range(10)]
    assert sum(1 for t in taken if t is not None) == 4 and tap.skipped == 6
    tap.refill(0.5)
    assert tap.begin(name, dns.rdatatype.A) is not None


def test_a_watched_question_is_recorded_whatever_the_budget() -> None:
    tap = QueryTap(rate=1)
    tap.budget = 0
    name = dns.name.from_text("WWW.Example.com.")
    watch = tap.watch(name, dns.rdatatype.A)
    assert tap.begin(dns.name.from_text("other.example."), dns.rdatatype.A) is None
    recording = tap.begin(name, dns.rdatatype.A)
    assert recording is not None and recording.watch is watch and not tap.watching


def test_the_ring_is_bounded_and_finds_queries_by_id() -> None:
    tap = QueryTap(rate=1000, size=3)
    for n in range(5):
        tap._keep(None, 0.0, "127.0.0.1", f"n{n}.", "A", "NOERROR", "cache", 0, 1.0, False,
                  [(0.0, Start(0, f"n{n}.", "A"))])
    assert [t.id for t in tap.ring] == [3, 4, 5]
    assert tap.get(2) is None and tap.get(4).name == "n3."  # type: ignore[union-attr]
    assert [t.id for t in tap.since(3)] == [4, 5]
    tap.ring[-1].events.append((2.0, Failed(0, "example.", "ns1.example.", "127.0.3.1", "timeout", 100.0)))
    assert tap.ring[-1].summary()["failed"] == 1
    assert tap.ring[-1].trace()[0] == {"t_ms": 0.0, "event": "start", "depth": 0, "name": "n4.", "type": "A",
                                       "why": ""}


# --- the HTTP API, without a browser -------------------------------------------------------------


class Web:
    """A lab in this process with its web view, and an HTTP client for it."""

    def __init__(self, lab: DnsLab, server: WebServer) -> None:
        self.lab = lab
        self.server = server
        self.port = server.port
        self.token = server.token

    def request(self, method: str, path: str, body: Any = None, *, token: str | None = "",
                headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=WAIT)
        sent = {"Host": f"127.0.0.1:{self.port}", **(headers or {})}
        if token is not None:
            sent["X-Dnslab-Token"] = token or self.token
        data = json.dumps(body).encode() if body is not None else None
        if data is not None:
            sent["Content-Type"] = "application/json"
        try:
            connection.request(method, path, body=data, headers=sent)
            response = connection.getresponse()
            return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
        finally:
            connection.close()

    def command(self, command: str, **args: Any) -> dict[str, Any]:
        status, _, body = self.request("POST", "/api/command", {"command": command, "args": args})
        assert status == 200, body
        return json.loads(body)

    def resolve(self, name: str, rdtype: str = "A") -> dns.message.Message:
        host, port = self.lab.resolver_address
        # ignore_unexpected: a late upstream reply meant for an earlier socket on the same port is no answer.
        return dns.query.udp(dns.message.make_query(name, rdtype), host, port=port, timeout=WAIT,
                             ignore_unexpected=True)


@pytest.fixture
def web() -> Iterator[Web]:
    lab = DnsLab(keep_traces=False).start()   # keep_traces off: the fast path stays on, as in `dnslab up`
    server = lab.call(lambda: WebServer(lab.lab))
    try:
        lab.run(server.start())
        yield Web(lab, server)
    finally:
        lab.run(server.stop())
        lab.stop()


def test_the_page_is_served_without_a_token_and_fetches_nothing_from_elsewhere(web: Web) -> None:
    status, headers, page = web.request("GET", "/", token=None)
    assert status == 200 and headers["content-type"].startswith("text/html")
    policy = headers["content-security-policy"]
    assert "script-src 'self'" in policy and "default-src 'none'" in policy and "frame-ancestors 'none'" in policy
    for path in ("/static/app.js", "/static/app.css", "/static/icon.svg"):
        status, headers, _ = web.request("GET", path, token=None)
        assert status == 200 and headers["x-content-type-options"] == "nosniff"
    # Every script, style, picture and font is the lab's own: no CDN, no web font, no URL elsewhere.
    for file in WEBUI.iterdir():
        text = file.read_text(encoding="utf-8")
        assert not re.search(r"https?://(?!www\.w3\.org/2000/svg)", text.replace("http://127.0.0.1:PORT", "")), file
        assert "@import" not in text and "@font-face" not in text and "url(" not in text, file
    assert re.findall(r'(?:src|href)="([^"]+)"', page.decode()) == ["/static/icon.svg", "/static/app.css",
                                                                       "/static/app.js", "/static/icon.svg"]


def test_every_api_needs_the_token(web: Web) -> None:
    for method, path in (("GET", "/api/state"), ("GET", "/api/events"), ("POST", "/api/command"),
                         ("GET", "/api/trace/1"), ("GET", "/trace/1"), ("POST", "/api/view")):
        for token in (None, "0" * 64, web.token[:-1] + "x"):
            status, _, body = web.request(method, path, {"command": "fault", "args": {"server": "127.0.3.1",
                                                                                     "kind": "down"}},
                                          token=token)
            assert status == 403, (method, path, token)
            assert "token" in json.loads(body)["error"]
    assert web.lab.server("127.0.3.1").faults == []  # nothing was done
    status, _, _ = web.request("GET", f"/api/state?token={web.token}", token=None)
    assert status == 200


def test_a_host_that_is_not_loopback_is_refused(web: Web) -> None:
    # DNS rebinding: a web site that makes its own name point at 127.0.0.1 still sends its own Host.
    status, _, body = web.request("GET", "/api/state", headers={"Host": f"rebind.example:{web.port}"})
    assert status == 403 and b"Host" in body
    status, _, _ = web.request("GET", "/", token=None, headers={"Host": f"localhost:{web.port}"})
    assert status == 200
    status, _, _ = web.request("POST", "/api/command", {"command": "ping"},
                               headers={"Origin": "http://evil.example"})
    assert status == 403


def test_faults_from_the_api_are_the_labs_faults(web: Web) -> None:
    reply = web.command("fault", server="ns1.example.com", kind="down")
    assert reply == {"ok": True, "result": {"server": "127.0.3.1", "faults": ["down"]}}
    assert web.lab.server("127.0.3.1").faults == ["down"]
    assert web.command("fault", server="127.0.3.1", kind="delay", value=200, jitter=20)["ok"]
    assert web.lab.server("127.0.3.1").faults == ["down", "delay 200 ms ± 20 ms"]
    assert web.command("fault", server="127.0.3.1", kind="clear")["result"]["faults"] == []
    # Mistakes come back as the CLI's one-line errors, with HTTP 200: the request itself was fine.
    assert web.command("fault", server="127.0.3.1", kind="explode") == {
        "ok": False, "error": "unknown fault 'explode'; for a server: down, unreachable, delay, loss, servfail, "
                              "refused, truncate, lame, notify-lost, xfr-refused, xfr-delay (or up, clear); for a zone: "
                              "dnssec-bad-sig, dnssec-expired, "
                              "dnssec-missing-ds, dnssec-wrong-ds (or clear)"}
    assert web.command("fault", server="127.0.3.1", kind="loss", value=150) == {
        "ok": False, "error": "loss PCT: expected a number from 0 to 100 %, got 150"}
    assert web.command("fault", server="ns1.example.com", kind="dnssec-bad-sig") == {
        "ok": False, "error": "dnssec-bad-sig breaks a zone, not a server: dnslab fault ZONE dnssec-bad-sig"}
    assert web.command("fault", server="127.0.3.1", kind="down", value=5) == {
        "ok": False, "error": "down takes no argument, not 1: down"}
    assert web.command("fault", server="example.com", kind="up") == {
        "ok": False, "error": "up is for a server, and example.com is a zone (its faults: dnssec-bad-sig, "
                              "dnssec-expired, dnssec-missing-ds, dnssec-wrong-ds, clear)"}
    assert "no lab server" in web.command("fault", server="ns9.nowhere", kind="down")["error"]
    assert "unknown command" in web.command("format-disk")["error"]


def test_records_clock_and_cache_from_the_api(web: Web) -> None:
    assert web.resolve("www.example.com").answer[0].ttl == 300
    assert web.command("record.set", name="www.example.com", type="A", values=["192.0.2.99"], ttl=60)["ok"]
    assert web.resolve("www.example.com").answer[0].ttl == 300   # still cached, as a real resolver would
    advanced = web.command("clock.advance", seconds=100)
    assert advanced["ok"] and advanced["result"]["fake"] and advanced["result"]["now"] == 1_000_100.0
    assert advanced["result"]["since_start_s"] == 100
    assert web.resolve("www.example.com").answer[0].ttl == 200
    flushed = web.command("cache.flush", name="www.example.com")
    assert flushed["ok"] and flushed["result"]["flushed"] >= 1
    fresh = web.resolve("www.example.com")
    assert [r.address for r in fresh.answer[0]] == ["192.0.2.99"] and fresh.answer[0].ttl == 60
    shown = web.command("cache.show", name="example.com", limit=2)["result"]
    assert len(shown["entries"]) == 2 and shown["truncated"]
    assert web.command("clock.advance", seconds=-1) == {
        "ok": False, "error": "clock advance: expected a number from 0 to 315360000 seconds (10 years), got -1"}
    assert web.command("record.delete", name="www.example.com", type="A")["ok"]
    assert web.command("reload")["result"]["reloaded"]


def test_a_query_from_the_api_is_recorded_with_its_trace(web: Web) -> None:
    web.server.tap.budget = 0   # the page's own question is recorded even when the sample is full
    reply = web.command("query", name="www.example.org", type="A")
    assert reply["ok"], reply
    result = reply["result"]
    assert result["reply"]["rcode"] == "NOERROR" and "ANSWER SECTION" in result["dig"]
    status, _, body = web.request("GET", f"/api/trace/{result['query_id']}")
    assert status == 200
    traced = json.loads(body)
    assert traced["query"]["watched"] and traced["query"]["how"] == "upstream"
    kinds = [event["event"] for event in traced["events"]]
    assert kinds[0] == "start" and "query" in kinds and "restart" in kinds and kinds[-1] == "done"
    status, headers, picture = web.request("GET", f"/trace/{result['query_id']}?token={web.token}", token=None)
    assert status == 200 and b'<svg class="diagram"' in picture
    assert "style-src 'unsafe-inline'" in headers["content-security-policy"]
    assert web.request("GET", "/api/trace/999999")[0] == 404


def test_a_fast_path_answer_is_a_cache_hit_in_its_trace(web: Web) -> None:
    web.resolve("www.example.com")
    web.resolve("www.example.com")     # asked again: now worth a ready reply
    web.server.tap.budget = 100
    web.resolve("www.example.com")     # answered from that ready reply, without a lookup
    latest = web.server.tap.ring[-1]
    assert latest.how == "fast" and latest.ms is None and latest.upstream_queries == 0
    assert [e["event"] for e in latest.trace()] == ["start", "cache", "done"]
    assert latest.trace()[1]["result"] == "hit" and latest.trace()[1]["records"]


def test_a_server_taken_down_through_the_api_shows_a_failover_in_the_next_trace(web: Web) -> None:
    web.resolve("www.example.com")
    failed: list[dict[str, Any]] = []
    for _ in range(ATTEMPTS):
        # Take down the example.com server the resolver prefers: the lower SRTT (untried: 376 ms).
        views = {row["address"]: row for row in web.command("servers")["result"]["servers"]}
        srtt = {a: (views[a]["srtt_ms"] if a in views and views[a]["srtt_ms"] is not None else 376.0)
                for a in EXAMPLE_COM}
        down = min(EXAMPLE_COM, key=lambda a: srtt[a])
        assert web.command("fault", server=down, kind="down")["ok"]
        assert web.command("fault", server=({*EXAMPLE_COM} - {down}).pop(), kind="up")["ok"]
        assert web.command("cache.flush", name="www.example.com")["ok"]
        web.resolve("www.example.com")
        traced = web.server.tap.ring[-1].trace()
        failed = [e for e in traced if e["event"] == "failed"]
        if failed:
            break
    assert [(e["address"], e["failure"]) for e in failed] == [(down, "timeout")]
    assert any(e["event"] == "reply" and e["meaning"] == "answer" and e["address"] != down for e in traced)
    assert web.server.tap.ring[-1].summary()["failed"] == 1


class EventStream:
    """The text/event-stream, read with a bounded wait."""

    def __init__(self, web: Web) -> None:
        self.sock = socket.create_connection(("127.0.0.1", web.port), timeout=WAIT)
        self.sock.sendall(f"GET /api/events?token={web.token} HTTP/1.1\r\nHost: 127.0.0.1:{web.port}\r\n"
                          "Accept: text/event-stream\r\n\r\n".encode())
        self.buffer = b""
        head = self._until(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200") and b"text/event-stream" in head

    def _until(self, marker: bytes) -> bytes:
        deadline = time.monotonic() + WAIT
        while marker not in self.buffer:
            assert time.monotonic() < deadline, f"no {marker!r} within {WAIT} s"
            chunk = self.sock.recv(65536)
            assert chunk, "the stream ended"
            self.buffer += chunk
        part, self.buffer = self.buffer.split(marker, 1)
        return part

    def next(self, kind: str, where: Callable[[dict[str, Any]], bool] = lambda data: True) -> dict[str, Any]:
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            lines = self._until(b"\n\n").decode().splitlines()
            fields = dict(line.split(": ", 1) for line in lines if ": " in line)
            if fields.get("event") == kind:
                data = json.loads(fields["data"])
                if where(data):
                    return data
        raise AssertionError(f"no {kind} event within {WAIT} s")

    def close(self) -> None:
        self.sock.close()


def test_the_event_stream_pushes_hierarchy_queries_and_state(web: Web) -> None:
    stream = EventStream(web)
    try:
        hello = stream.next("hello")
        lab = hello["lab"]
        assert lab["fake_clock"] and {s["address"] for s in lab["servers"]} >= {"127.0.1.1", "127.0.3.20"}
        zones = {z["origin"]: z for z in lab["zones"]}
        assert zones["example.com."]["parent"] == "com." and zones["com."]["parent"] == "."
        assert zones["example.com."]["servers"] == ["127.0.3.1", "127.0.3.2"]
        state = stream.next("state")
        down = next(s for s in state["servers"] if s["address"] == "127.0.3.20")
        assert not down["up"] and down["faults"] == ["down"]
        web.resolve("www.example.net")
        pushed = stream.next("queries", lambda d: any(q["name"] == "www.example.net." for q in d["queries"]))
        query = next(q for q in pushed["queries"] if q["name"] == "www.example.net.")
        assert query["rcode"] == "NOERROR" and query["how"] == "upstream" and query["upstream_queries"] > 3
        # An action is pushed at once: the next state shows it.
        web.command("fault", server="ns1.dns-host.org", kind="servfail")
        state = stream.next("state", lambda d: any(s["faults"] == ["servfail"] for s in d["servers"]))
        assert state["stats"]["queries"] >= 1 and state["clock"]["fake"]
        views = [s["resolver"] for s in state["servers"] if s["address"] in ("127.0.3.10", "127.0.3.11")]
        assert any(view is not None and view["srtt_ms"] is not None for view in views)   # the one asked
        # The cache part follows the viewer's filter.
        status, _, body = web.request("POST", "/api/view", {"viewer": hello["viewer"], "cache": "example.net"})
        assert status == 200 and json.loads(body) == {"ok": True}
        state = stream.next("state", lambda d: d["cache"]["filter"] == "example.net")
        names = {e["name"] for e in state["cache"]["entries"]}
        assert "www.example.net." in names and all(n.endswith("example.net.") for n in names)
    finally:
        stream.close()


def test_the_stream_is_a_sample_at_high_rates(web: Web) -> None:
    web.resolve("www.example.com")
    host, port = web.lab.resolver_address
    wire = dns.message.make_query("www.example.com", "A").to_wire()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(WAIT)
        for _ in range(300):         # answered by the fast path, one at a time
            sock.sendto(wire, (host, port))
            sock.recv(4096)
    tap = web.server.tap
    assert tap.skipped > 0 and tap.recorded < 300
    assert len(tap.ring) <= tap.ring.maxlen  # type: ignore[operator]


# --- the command line ------------------------------------------------------------------------


class RunningLab:
    """`dnslab up --port 0 --fake-clock` with a private state file: what a learner starts."""

    def __init__(self, tmp_path: Path, *options: str) -> None:
        self.env = {**ENV, "DNSLAB_STATE": str(tmp_path / "state" / "lab.json")}
        self.proc = subprocess.Popen([sys.executable, "-m", "dnslab", "up", "--port", "0", "--fake-clock",
                                      "--hints", str(tmp_path / "root.hints"), *options],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=self.env)
        self.banner = read_until(self.proc, "Ctrl-C stops the lab.", WAIT)
        if "Ctrl-C stops the lab." not in self.banner:
            self.stop()
            raise AssertionError(f"dnslab up did not start: {self.banner}")
        first = self.banner.splitlines()[0].split()
        self.resolver = (first[1][1:], int(first[3]))
        found = re.search(r"^open (http://127\.0\.0\.1:\d+/#token=[0-9a-f]+)$", self.banner, re.M)
        self.url = found.group(1) if found else None

    def dnslab(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "dnslab", *args], capture_output=True, text=True,
                              env=self.env, timeout=60)

    def resolve(self, name: str, rdtype: str = "A") -> dns.message.Message:
        return dns.query.udp(dns.message.make_query(name, rdtype), self.resolver[0], port=self.resolver[1],
                             timeout=WAIT, ignore_unexpected=True)

    def stop(self) -> str:
        """SIGTERM, then its stderr; stdout stays with its reader thread (which ends at EOF)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=30)
        join_reader(self.proc, WAIT)
        assert self.proc.stderr is not None
        with self.proc.stderr:
            return self.proc.stderr.read()


def test_up_prints_the_web_view_with_the_dig_hint_and_web_prints_it_again(tmp_path: Path) -> None:
    lab = RunningLab(tmp_path)
    try:
        lines = lab.banner.splitlines()
        assert lines[0].startswith("dig @127.0.0.1") and lines[2].startswith("open http://127.0.0.1:")
        assert lab.url is not None
        again = lab.dnslab("web")
        assert again.returncode == 0 and again.stdout.strip() == lab.url
        port = int(lab.url.split(":")[2].split("/")[0])
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=WAIT)
        connection.request("GET", "/api/state", headers={"X-Dnslab-Token": lab.url.split("token=")[1]})
        response = connection.getresponse()
        assert response.status == 200 and json.loads(response.read())["clock"]["fake"]
        connection.close()
    finally:
        err = lab.stop()
    assert lab.proc.returncode == 0 and "Traceback" not in err


def test_no_web_turns_it_off(tmp_path: Path) -> None:
    lab = RunningLab(tmp_path, "--no-web")
    try:
        assert lab.url is None and "http://" not in lab.banner
        missing = lab.dnslab("web")
        assert missing.returncode == 1 and "--no-web" in missing.stderr
    finally:
        lab.stop()


def test_a_cold_walk_from_the_page_is_kept_with_the_queries_and_leaves_the_cache_alone(web: Web) -> None:
    web.resolve("www.example.com")
    size = web.lab.call(lambda: len(web.lab.lab.resolver.cache))  # type: ignore[union-attr]
    reply = web.command("trace", name="www.example.com", type="A", cold=True)
    assert reply["ok"], reply
    result = reply["result"]
    queries = [e for e in result["events"] if e["event"] == "query"]
    assert queries[0]["purpose"] == "priming" and len(queries) >= 3   # from the root, cache or not
    assert web.lab.call(lambda: len(web.lab.lab.resolver.cache)) == size  # a private cache: nothing added
    status, _, body = web.request("GET", f"/api/trace/{result['query_id']}")
    kept = json.loads(body)
    assert status == 200 and kept["query"]["how"] == "cold" and kept["query"]["client"] == "this page"
    assert kept["events"] == result["events"]
    assert web.command("trace", name="www.example.com", type="A")["result"]["upstream_queries"] == 0  # warm


def test_the_cache_view_says_when_the_zone_now_differs(web: Web) -> None:
    web.resolve("www.example.com")
    web.resolve("nope.example.com")

    def entries() -> dict[tuple[str, str], dict[str, Any]]:
        _, _, body = web.request("GET", "/api/state?cache=example.com")
        return {(e["name"], e["type"]): e for e in json.loads(body)["cache"]["entries"]}

    assert not any("zone_now" in e for e in entries().values())  # nothing changed yet
    assert web.command("record.set", name="www.example.com", type="A", values=["192.0.2.99"], ttl=60)["ok"]
    assert web.command("record.set", name="nope.example.com", type="TXT", values=['"here now"'])["ok"]
    now = entries()
    assert now["www.example.com.", "A"]["zone_now"] == ["www.example.com. 60 IN A 192.0.2.99"]
    assert now["nope.example.com.", "ANY"]["zone_now"] == ['nope.example.com. 300 IN TXT "here now"']  # NXDOMAIN
    assert "zone_now" not in now["example.com.", "NS"]


def test_the_state_says_which_server_of_a_zone_is_in_use(web: Web) -> None:
    _, _, body = web.request("GET", "/api/state")
    assert "example.com." not in json.loads(body)["in_use"]   # nothing asked yet: no choice to show
    web.resolve("www.example.com")
    _, _, body = web.request("GET", "/api/state")
    state = json.loads(body)
    used = state["in_use"]["example.com."]
    views = {s["address"]: s["resolver"] for s in state["servers"]}
    assert used in ("127.0.3.1", "127.0.3.2") and views[used]["srtt_ms"] is not None  # the one that answered
    # One failure need not change the resolver's preference (only RTTs rank servers, as in Unbound):
    # once the other answers faster, or the first is held down after three failures, the view says so.
    web.lab.server(used).unreachable()
    other = ({"127.0.3.1", "127.0.3.2"} - {used}).pop()
    for _ in range(12):   # bounded: one time in ten the resolver asks the other server first
        web.lab.cache.flush()
        web.resolve("www.example.com")   # fails over at once: the server is unreachable
        _, _, body = web.request("GET", "/api/state")
        if json.loads(body)["in_use"]["example.com."] == other:
            break
    assert json.loads(body)["in_use"]["example.com."] == other



def test_the_state_shows_anycast_sites_and_steered_names(web: Web) -> None:
    """docs/ANYCAST.md and docs/STEERING.md: the page's server panel reads these."""
    web.lab.site("a.root-servers.net", "ams").down()
    web.lab.endpoint("192.0.2.100").down()
    web.lab.advance(10)
    web.resolve("app.lb.example.com")
    _, _, body = web.request("GET", "/api/state")
    servers = {s["address"]: s for s in json.loads(body)["servers"]}
    a_root = servers["127.0.1.1"]
    assert a_root["faults"] == ["site ams withdrawn"] and a_root["sites"]["serving"]["ams"] == "nyc"
    assert [site["withdrawn"] for site in a_root["sites"]["sites"]] == [True, False, False]
    [app] = [row for row in servers["127.0.3.30"]["steered"] if row["name"] == "app.lb.example.com."]
    assert [e["healthy"] for e in app["endpoints"]] == [False, True] and app["last"]["answer"] == ["192.0.2.101"]
    assert servers["127.0.3.1"]["sites"] is None and servers["127.0.3.1"]["steered"] == []

# --- in a real browser ------------------------------------------------------------------------

BROWSER_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync"]
VIEWPORT = {"width": 1366, "height": 768}   # a laptop screen


def chromium_path() -> str:
    return find_chromium("the browser tests of the web view are")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    executable = chromium_path()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("Playwright for Python is not installed: the browser tests of the web view are skipped "
                    "(pip install playwright; no browser download is needed, Debian's chromium is used)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, args=BROWSER_ARGS)
        try:
            yield launched
        finally:
            launched.close()


class Page:
    """A tab on the web view that remembers every console error and uncaught exception."""

    def __init__(self, browser: Any, url: str) -> None:
        self.errors: list[str] = []
        self.page = browser.new_page(viewport=VIEWPORT)
        self.page.set_default_timeout(WAIT * 1000)
        self.page.on("console", lambda m: self.errors.append(f"console.{m.type}: {m.text}")
                     if m.type in ("error", "warning") else None)
        self.page.on("pageerror", lambda e: self.errors.append(f"uncaught: {e}"))
        self.page.goto(url)
        self.page.wait_for_selector("#live:has-text('live')")
        self.page.wait_for_selector("#tree .chip")

    def frame(self) -> Any:
        return self.page.frame_locator("#trace-frame")

    def ask(self, name: str, rdtype: str = "A", forget: bool = False) -> Any:
        """Send a query from the page's form; wait for its row and its trace."""
        page = self.page
        page.fill("#ask-name", name)
        page.select_option("#ask-type", rdtype)
        page.set_checked("#ask-flush", forget)
        before = page.locator("#stream tbody tr.watched").count()
        selected = page.locator("#stream tbody tr.selected")
        previous = selected.get_attribute("data-id") if selected.count() else "none"
        page.click("#ask-send")
        page.locator("#stream tbody tr.watched").nth(before).wait_for()
        # Its row is selected, and then its picture drawn (the step count is cleared in between).
        page.wait_for_selector(f"#stream tbody tr.selected.watched:not([data-id='{previous}'])")
        page.wait_for_selector("#step-count:has-text('all ')")
        return page.locator("#stream tbody tr.selected")

    def close(self) -> None:
        self.page.close()
        assert self.errors == [], self.errors


def screenshot_dir(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("DNSLAB_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def running(tmp_path: Path) -> Iterator[RunningLab]:
    lab = RunningLab(tmp_path)
    try:
        assert lab.url is not None
        yield lab
    finally:
        lab.stop()


def test_the_page_shows_the_hierarchy_and_counts_live(browser: Any, running: RunningLab) -> None:
    tab = Page(browser, running.url)  # type: ignore[arg-type]
    page = tab.page
    addresses = set(page.eval_on_selector_all("#tree .chip", "chips => chips.map(c => c.dataset.address)"))
    assert len(addresses) == 26 and "127.0.3.20" in addresses  # 13 root letters, 13 others
    assert page.locator(".chip[data-address='127.0.3.20'] .badge.down").count() >= 1   # start_down
    assert page.locator("#clock-kind").inner_text() == "fake clock"
    # A query from outside the page (dig, a test suite) shows up without a reload.
    running.resolve("mail.example.com")
    page.wait_for_selector("#stream tbody tr:has-text('mail.example.com')")
    page.wait_for_selector("#counters div:first-child dd:text-is('1')")
    assert page.locator("#stream tbody tr:has-text('mail.example.com') .src-upstream").count() == 1
    assert "token" not in page.url       # the token left the address bar
    # An anycast root's panel lists its sites; the steered zone's server, its names and their health.
    page.locator(".chip[data-address='127.0.1.1']").first.click()
    page.wait_for_selector("#server-detail dt:text-is('anycast sites')")
    assert "ams (answers the resolver)" in page.inner_text("#server-detail")
    page.locator(".chip[data-address='127.0.3.30']").first.click()
    page.wait_for_selector("#server-detail dt:text-is('steered names')")
    assert "app.lb.example.com failover: 192.0.2.100 healthy" in page.inner_text("#server-detail")
    tab.close()


def test_a_query_sent_from_the_page_appears_with_its_trace_step_by_step(browser: Any, running: RunningLab) -> None:
    tab = Page(browser, running.url)  # type: ignore[arg-type]
    page = tab.page
    row = tab.ask("www.example.org")
    assert "www.example.org" in row.inner_text() and "upstream" in row.inner_text()
    frame = tab.frame()
    assert frame.locator("g.ev[data-event='query']").count() >= 4
    assert frame.locator("g.ev[data-event='restart']").count() == 1      # the CNAME to www.example.com
    assert frame.locator("g.lane[data-role='root']").count() >= 1
    steps = int(re.search(r"all (\d+) steps", page.inner_text("#step-count")).group(1))  # type: ignore[union-attr]
    page.click("#step-first")
    page.wait_for_selector("#step-count:text-is('step 1 of %d')" % steps)
    assert frame.locator("g.ev.future").count() > 0 and "asks for www.example.org" in page.inner_text("#step-text")
    page.click("#step-next")
    page.wait_for_selector("#step-count:text-is('step 2 of %d')" % steps)
    page.click("#step-all")
    page.wait_for_selector("#step-count:has-text('all ')")
    assert frame.locator("g.ev.future").count() == 0
    # Asked again: the fast path answers, and the page says the trace is a cache hit alone.
    tab.ask("www.example.org")
    assert "cache" in page.inner_text("#stream tbody tr.selected")
    assert "no server was asked" in page.inner_text("#trace-note") or "fast path" in page.inner_text("#trace-note")
    assert tab.frame().locator("g.ev.cache-hit").count() >= 1
    tab.close()


def test_a_server_taken_down_from_the_page_shows_a_failover_in_the_next_trace(
        browser: Any, running: RunningLab, tmp_path: Path) -> None:
    tab = Page(browser, running.url)  # type: ignore[arg-type]
    page = tab.page
    tab.ask("www.example.com", forget=True)
    for _ in range(ATTEMPTS):
        # As a learner would: take down the example.com server with the lower SRTT (the chips show
        # it; an untried one shows none), the one the resolver prefers.
        srtt = {}
        for address in EXAMPLE_COM:
            shown = page.locator(f".chip[data-address='{address}'] .rtt").first.inner_text()
            srtt[address] = float(shown.split()[0]) if shown else 376.0
        down = min(EXAMPLE_COM, key=lambda a: srtt[a])
        other = ({*EXAMPLE_COM} - {down}).pop()
        page.locator(f".chip[data-address='{down}']").first.click()
        page.click("button[data-fault='down']")
        page.wait_for_selector(f".chip[data-address='{down}'] .badge.down")
        page.locator(f".chip[data-address='{other}']").first.click()
        page.click("button[data-fault='up']")
        page.wait_for_selector(f".chip[data-address='{other}'] .badge.down", state="detached")
        row = tab.ask("www.example.com", forget=True)
        if "failed" in row.inner_text():
            break
    assert "1 failed" in row.inner_text()
    frame = tab.frame()
    assert frame.locator("g.ev[data-event='failed']").count() == 1
    assert frame.locator(f"g.lane[data-lane='{other}']").count() == 1
    assert "failover" in page.inner_text("#trace-note")
    page.locator(f".chip[data-address='{down}']").first.click()
    assert "down" in page.inner_text("#server-detail")
    page.wait_for_selector("#counters div:has(dt:text-is('failovers')) dd:text-is('1')")
    # Step by step up to the failed try: the picture scrolls to it and the line under the buttons says it.
    page.click("#step-first")
    for _ in range(int(re.search(r"of (\d+)", page.inner_text("#step-count")).group(1))):  # type: ignore[union-attr]
        if page.inner_text("#step-text").startswith("Failed try"):
            break
        page.click("#step-next")
    step = page.inner_text("#step-text")
    assert "timeout" in step and "the next server, " in step and f"{other}, gets the question" in step
    assert frame.locator("g.ev.current[data-event='failed']").count() == 1
    page.locator("#toast:not(.show)").wait_for()
    page.wait_for_timeout(400)       # its fade, for the picture
    page.mouse.move(0, 0)
    page.screenshot(path=str(screenshot_dir(tmp_path) / "web-failover.png"))
    tab.close()


def test_at_1366_by_768_the_list_shows_ten_queries_and_the_picture_is_whole(
        browser: Any, running: RunningLab, tmp_path: Path) -> None:
    tab = Page(browser, running.url)  # type: ignore[arg-type]
    page = tab.page
    for name in ("www.example.com", "www.example.org", "www.failover.com", "mail.example.com"):
        running.resolve(name)
    page.check("#ask-cold")   # a walk from the root, drawn from the page (dnslab trace --cold)
    row = tab.ask("www.example.net")
    assert "from the root" in row.inner_text() and "walk from the root" in page.inner_text("#trace-note")
    frame = tab.frame()
    assert frame.locator("g.ev[data-event='query']").count() >= 4
    sizes = page.evaluate("""() => {
        const wrap = document.querySelector('#stream-wrap'), frame = document.querySelector('#trace-frame');
        const doc = frame.contentDocument.documentElement;
        return {list: wrap.clientHeight, row: document.querySelector('#stream tbody tr').getBoundingClientRect().height,
                head: document.querySelector('#stream thead').getBoundingClientRect().height,
                frame: frame.clientHeight, picture: doc.scrollHeight, inner: doc.clientHeight};
    }""")
    assert (sizes["list"] - sizes["head"]) / sizes["row"] >= 10, sizes    # not four rows
    assert sizes["picture"] <= sizes["frame"] + 1 and sizes["frame"] > 600, sizes  # drawn whole: no inner scroll
    # The exercise's hint: the server the resolver prefers is marked, per zone.
    page.locator(".chip.in-use[data-zone='com.']").first.wait_for()
    # A record changed from the page: the page says the cached answer now differs from the zone.
    running.resolve("www.example.com")
    page.click("#tab-records")
    page.fill("#rec-name", "www.example.com")
    page.fill("#rec-type", "A")
    page.fill("#rec-values", "192.0.2.99")
    page.click("#record-form button[type='submit']")
    page.wait_for_selector("#record-result:has-text('differs from the zone')")
    page.click("#tab-cache")
    page.fill("#cache-filter", "www.example.com")
    page.press("#cache-filter", "Enter")
    page.wait_for_selector("#cache tbody tr:has-text('www.example.com.') .badge.differs")
    page.screenshot(path=str(screenshot_dir(tmp_path) / "web-1366x768.png"))
    tab.close()


def test_advancing_the_clock_from_the_page_drops_a_ttl(browser: Any, running: RunningLab) -> None:
    tab = Page(browser, running.url)  # type: ignore[arg-type]
    page = tab.page
    tab.ask("t30.ttl-demo.org")
    page.click("#tab-cache")
    page.fill("#cache-filter", "ttl-demo.org")
    page.press("#cache-filter", "Enter")
    row = page.locator("#cache tbody tr:has-text('t30.ttl-demo.org.')")
    row.locator(".ttl-text:text-is('30 / 30 s')").wait_for()
    page.click("#clock-quick button[data-seconds='10']")
    row.locator(".ttl-text:text-is('20 / 30 s')").wait_for()
    assert page.inner_text("#clock-now") == "t +0:00:10"
    page.fill("#clock-seconds", "25")
    page.click("#clock-advance")
    row.wait_for(state="detached")   # expired: gone from the cache, as in `dnslab cache show`
    page.click("#tab-trace")
    tab.close()


def test_the_controls_work_from_the_keyboard(browser: Any, running: RunningLab) -> None:
    tab = Page(browser, running.url)  # type: ignore[arg-type]
    page = tab.page
    # Every control has a name a screen reader can say.
    unnamed = page.evaluate("""() => Array.from(document.querySelectorAll('button, input, select, textarea'))
        .filter(el => !(el.labels && el.labels.length) && !el.getAttribute('aria-label') && !el.textContent.trim())
        .map(el => el.id || el.outerHTML)""")
    assert unnamed == []
    page.focus("#ask-name")
    page.keyboard.press("Control+A")
    page.keyboard.type("www.example.net")
    page.keyboard.press("Enter")
    page.wait_for_selector("#step-count:has-text('all ')")
    page.focus("#stream tbody tr:first-child .qbutton")
    page.keyboard.press("Enter")
    page.focus("#tab-trace")
    page.keyboard.press("ArrowRight")
    assert page.locator("#tab-cache").get_attribute("aria-selected") == "true"
    assert page.evaluate("() => document.activeElement.id") == "tab-cache"
    assert page.locator("#pane-cache").is_visible() and not page.locator("#pane-trace").is_visible()
    page.keyboard.press("ArrowRight")
    assert page.locator("#tab-records").get_attribute("aria-selected") == "true"
    # A server chosen and taken down with Tab and Enter alone.
    page.focus(".chip[data-address='127.0.3.4']")
    page.keyboard.press("Enter")
    page.focus("button[data-fault='servfail']")
    page.keyboard.press("Space")
    page.wait_for_selector(".chip[data-address='127.0.3.4'] .badge.error")
    assert running.dnslab("faults").stdout.count("servfail") == 1
    tab.close()


def test_the_page_stays_usable_at_a_thousand_queries_a_second(
        browser: Any, running: RunningLab, tmp_path: Path) -> None:
    tab = Page(browser, running.url)  # type: ignore[arg-type]
    page = tab.page
    names = ["www.example.com", "mail.example.com", "www.example.net", "www.example.org", "t10.ttl-demo.org",
             "ftp.example.com", "www.pages.net", "nothing.example.com", "www.failover.com", "50.2.0.192.in-addr.arpa"]
    for name in names:
        running.resolve(name, "PTR" if name.endswith("arpa") else "A")
    stop = threading.Event()
    sent = [0]

    def traffic() -> None:
        """About 1,000 queries a second, bounded in count and time; replies are read and dropped."""
        wires = [dns.message.make_query(n, "PTR" if n.endswith("arpa") else "A").to_wire() for n in names]
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.setblocking(False)
            started = time.monotonic()
            while not stop.is_set() and sent[0] < 60_000 and time.monotonic() - started < 60:
                due = int((time.monotonic() - started) * 1000)
                while sent[0] < due:
                    sock.sendto(wires[sent[0] % len(wires)], running.resolver)
                    sent[0] += 1
                try:
                    while True:
                        sock.recv(4096)
                except BlockingIOError:
                    pass
                time.sleep(0.005)

    worker = threading.Thread(target=traffic, daemon=True)
    worker.start()
    try:
        page.wait_for_selector("#sampling:has-text('a sample')")
        # The page keeps a bounded list, and still answers a click at once.
        page.locator("#stream tbody tr:nth-child(40)").wait_for()
        page.locator("#stream tbody tr:nth-child(12) .qbutton").click()
        page.wait_for_selector("#step-count:has-text('all ')")
        tab.ask("www.example.net", "MX")
        assert page.locator("#stream tbody tr").count() <= 250
        page.click("#tab-cache")
        page.locator("#cache tbody tr").nth(5).wait_for()
        page.locator(".chip[data-address='127.0.3.20']").first.click()
        page.wait_for_timeout(1500)      # a few more pushes under load, for the picture
        page.eval_on_selector("#stream-wrap", "wrap => { wrap.scrollTop = 0; }")   # back to the newest
        page.locator("#toast:not(.show)").wait_for()
        page.wait_for_timeout(400)
        page.mouse.move(0, 0)
        page.screenshot(path=str(screenshot_dir(tmp_path) / "web-overview.png"))
    finally:
        stop.set()
        worker.join(timeout=WAIT)
    assert sent[0] > 1000
    tab.close()


def test_a_dnssec_fault_shows_on_its_zone_and_the_trace_marks_bogus(browser: Any, tmp_path: Path) -> None:
    lab = RunningLab(tmp_path, "--dnssec", "--keys", str(tmp_path / "keys"))
    try:
        tab = Page(browser, lab.url)  # type: ignore[arg-type]
        page = tab.page
        assert lab.dnslab("fault", "example.com", "dnssec-bad-sig").returncode == 0
        page.wait_for_selector(".zone-dnssec[data-zone='example.com.']:text-is('dnssec-bad-sig')")
        assert page.locator(".zone-dnssec.badge").count() == 1
        assert lab.resolve("www.example.com").rcode() == dns.rcode.SERVFAIL
        row = tab.ask("www.example.com")
        assert "SERVFAIL" in row.inner_text()
        verdict = tab.frame().locator("g.dnssec-bogus").last
        assert "SERVFAIL to the client" in verdict.text_content()
        assert lab.dnslab("fault", "example.com", "clear").returncode == 0
        page.wait_for_selector(".zone-dnssec[data-zone='example.com.']:text-is('')", state="attached")
        tab.close()
    finally:
        lab.stop()


# --- one fault registry (issue 16): the CLI, the control API and the page all read it --------------------


def test_a_fault_kind_added_to_the_registry_shows_in_the_cli_the_api_and_the_page(
        browser: Any, web: Web, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from dnslab.faces.cli import main
    from dnslab.lab import fault_kinds
    from dnslab.lab.fault_kinds import FaultArg, FaultKind, Target

    plain = FaultKind("blackhole", Target.SERVER, "swallow every query (named in this test only)", "Black hole")
    with_arg = FaultKind("drip", Target.SERVER, "answer BPS bytes a second (named in this test only)", "Drip",
                         (FaultArg("BPS", "bytes a second", 1, 1000, "B/s", example=64),))
    monkeypatch.setitem(fault_kinds.KINDS, plain.name, plain)
    monkeypatch.setitem(fault_kinds.KINDS, with_arg.name, with_arg)

    # The command line: its help lists them, and its checks know their arguments (exit 2, before any lab).
    with pytest.raises(SystemExit) as done:
        main(["fault", "--help"])
    assert done.value.code == 0
    shown = capsys.readouterr().out
    assert re.search(r"^  blackhole +swallow every query \(named in this test only\)$", shown, re.M), shown
    assert re.search(r"^  drip BPS +answer BPS bytes a second", shown, re.M), shown
    with pytest.raises(SystemExit) as done:
        main(["fault", "127.0.3.1", "drip", "5000"])
    assert done.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        "dnslab fault: error: drip BPS: expected a number from 1 to 1000 B/s, got '5000'")

    # The control API: listed by faults.kinds, and `fault` checks them (a name it knew nothing of would be
    # "unknown fault"; this one is known, and the lab server says it cannot play it yet).
    listing = web.command("faults.kinds")["result"]
    assert [k["name"] for k in listing["kinds"]] == list(fault_kinds.KINDS)
    assert [v["name"] for v in listing["verbs"]] == ["up", "clear"]
    assert listing["kinds"][-1] == {
        "name": "drip", "targets": ["server"], "help": "answer BPS bytes a second (named in this test only)",
        "label": "Drip", "usage": "drip BPS", "selectable": True,
        "args": [{"name": "BPS", "field": "value", "help": "bytes a second", "low": 1, "high": 1000, "unit": "B/s",
                  "optional": False, "example": 64}]}
    assert web.command("fault", server="127.0.3.1", kind="drip", value=5000)["error"] == (
        "drip BPS: expected a number from 1 to 1000 B/s, got 5000")
    assert "cannot play it yet" in web.command("fault", server="127.0.3.1", kind="blackhole")["error"]

    # The page: one button per server kind without arguments, then the mending verbs; one form per kind
    # with arguments, its inputs bounded as the registry says.
    tab = Page(browser, web.server.url)
    page = tab.page
    page.wait_for_selector("#fault-buttons button[data-fault='blackhole']", state="attached")
    expected = ([[k.name, k.label] for k in fault_kinds.kinds(Target.SERVER) if not k.args]
                + [[v.name, v.label] for v in fault_kinds.verbs(Target.SERVER)])
    assert page.eval_on_selector_all("#fault-buttons button", "bs => bs.map(b => [b.dataset.fault, b.textContent])") \
        == expected
    assert ["blackhole", "Black hole"] in expected and ["clear", "Clear all"] == expected[-1]
    assert page.eval_on_selector_all("#fault-forms form", "fs => fs.map(f => f.dataset.faultForm)") == [
        "delay", "loss", "xfr-delay", "drip"]
    assert page.eval_on_selector("#fault-drip-bps", "i => [i.min, i.max, i.value]") == ["1", "1000", "64"]
    page.locator(".chip[data-address='127.0.3.1']").first.click()
    page.click("#fault-forms form[data-fault-form='drip'] button[type='submit']")
    page.wait_for_selector("#toast.error:has-text('drip is declared')")
    page.locator("#toast:not(.show)").wait_for()
    page.fill("#fault-loss-pct", "40")
    page.click("#fault-forms form[data-fault-form='loss'] button[type='submit']")
    page.wait_for_selector(".chip[data-address='127.0.3.1'] .badge.lossy")
    assert web.lab.server("127.0.3.1").faults == ["loss 40%"]
    page.click("button[data-fault='clear']")
    page.wait_for_selector(".chip[data-address='127.0.3.1'] .badge.lossy", state="detached")
    tab.close()


def test_the_state_shows_each_caching_level_with_its_kept_answers(web: Web) -> None:
    import dns.message
    import dns.query

    dns.query.udp(dns.message.make_query("www.example.com", "A"), "127.0.100.1", port=web.lab.port, timeout=5)
    _, _, body = web.request("GET", "/api/state")
    levels = {row["level"]: row for row in json.loads(body)["levels"]}
    assert set(levels) == {"browser", "os"}
    browser = levels["browser"]
    assert browser["address"] == "127.0.100.1" and browser["upstream"] == ["os"] and browser["stats"]["misses"] == 1
    assert [(e["name"], e["remaining"], e["kept_for"]) for e in browser["entries"]] == [("www.example.com.", 60, 60)]
    web.lab.advance(20)
    _, _, body = web.request("GET", "/api/state")
    os_entries = {row["level"]: row for row in json.loads(body)["levels"]}["os"]["entries"]
    assert os_entries[0]["remaining"] == 280     # the countdown follows the lab clock


def test_a_fault_narrowed_from_the_page_by_a_selector(browser: Any, web: Web) -> None:
    tab = Page(browser, web.server.url)
    page = tab.page
    page.wait_for_selector("#fault-buttons button[data-fault='servfail']", state="attached")
    page.locator(".chip[data-address='127.0.3.1']").first.click()
    page.fill("#fault-select-name", "*.example.com")
    page.fill("#fault-select-type", "AAAA")
    page.fill("#fault-select-every", "2")
    page.click("button[data-fault='servfail']")
    page.wait_for_selector("#toast:has-text('servfail [name *.example.com, type AAAA, 1 in 2]')")
    assert web.lab.server("127.0.3.1").faults == ["servfail [name *.example.com, type AAAA, 1 in 2]"]
    page.click("button[data-fault='clear']")  # a verb: sent without the selector, so it is not refused
    page.wait_for_selector("#toast:has-text('no faults')")
    assert web.lab.server("127.0.3.1").faults == []
    assert not tab.errors, tab.errors
    tab.close()


def test_a_walk_from_the_page_offers_its_packets_as_a_pcap(browser: Any, web: Web) -> None:
    import io
    import socket

    import dpkt

    tab = Page(browser, web.server.url)
    page = tab.page
    page.check("#ask-cold")
    page.fill("#ask-name", "www.example.com")
    page.click("#ask-send")
    link = page.wait_for_selector("#ask-pcap")
    with page.expect_download() as download:
        link.click()
    data = Path(download.value.path()).read_bytes()
    records = [dpkt.ethernet.Ethernet(frame).data for _, frame in dpkt.pcap.Reader(io.BytesIO(data))]
    assert f"{len(records)} packets" in link.inner_text() and len(records) >= 8
    asked = [dns.message.from_wire(ip.data.data) for ip in records if ip.data.dport == web.lab.port]
    assert asked[-1].question[0].name.to_text() == "www.example.com."
    servers = {socket.inet_ntoa(ip.dst) for ip in records if ip.data.dport == web.lab.port}
    assert servers & {"127.0.3.1", "127.0.3.2"}, servers  # down to an example.com server
    tab.close()


def test_a_scenario_started_from_the_api_fills_its_charts_and_ends_with_its_report(web: Web) -> None:
    _, _, body = web.request("GET", "/api/scenarios")
    names = [item["name"] for item in json.loads(body)["result"]]
    assert "graceful-transition" in names
    _, _, body = web.request("POST", "/api/scenario", {"name": "../etc/passwd.toml"})
    assert not json.loads(body)["ok"]  # shipped names only: the page offers no file path
    _, _, body = web.request("POST", "/api/scenario", {"name": "graceful-transition", "clients": 20})
    assert json.loads(body) == {"ok": True, "result": {"name": "graceful-transition", "clients": 20}}
    _, _, body = web.request("POST", "/api/scenario", {"name": "failover"})
    assert "still running" in json.loads(body)["error"]  # one at a time
    status: dict[str, Any] = {}
    for _ in range(600):  # bounded: at most a minute of polling
        _, _, body = web.request("GET", "/api/scenario")
        status = json.loads(body)["result"]
        if not status["running"]:
            break
        time.sleep(0.1)
    assert not status["running"] and status["error"] is None and status["progress"] == 1.0
    assert status["charts"] and all(chart["svg"].startswith("<svg") for chart in status["charts"])
    assert "Time until clients have 192.0.2.60" in status["report"]
    assert web.lab.lab.resolver is not None and web.lab.stats["queries"] == 0  # the lab itself was left alone


def test_a_scenario_runs_from_the_page(browser: Any, web: Web) -> None:
    tab = Page(browser, web.server.url)
    page = tab.page
    page.click("#tab-scenario")
    page.wait_for_selector("#scenario-name option[value='load-balancing']", state="attached")
    page.select_option("#scenario-name", "load-balancing")
    page.fill("#scenario-clients", "15")
    page.click("#scenario-run")
    page.wait_for_selector("#scenario-status:has-text('done')", timeout=120_000)
    assert page.locator("#scenario-charts svg").count() >= 2
    assert "Connections per endpoint" in page.inner_text("#scenario-report")
    assert not tab.errors, tab.errors
    tab.close()


def test_the_page_and_the_banner_show_a_secondarys_serial_and_state(browser: Any, tmp_path: Path) -> None:
    """lab.toml [primaries]: `dnslab up` names the secondary, the server panel shows its copy as it follows."""
    folder = sample_copy(tmp_path, '\n[primaries]\n"example.com." = "ns1.example.com."\n')
    lab = RunningLab(tmp_path, "--zones", str(folder))
    try:
        assert re.search(r"^Secondary: example\.com\. on 127\.0\.3\.2 from 127\.0\.3\.1@\d+, serial 2026112801, "
                         r"current$", lab.banner, re.M), lab.banner
        assert re.search(r"^TSIG key .*-y hmac-sha256:dnslab-key:\S+$", lab.banner, re.M), lab.banner
        assert lab.url is not None
        page = Page(browser, lab.url)
        page.page.locator(".chip[data-address='127.0.3.2']").first.click()
        page.page.wait_for_selector("#server-detail:has-text('secondary of example.com.: serial 2026112801, current')")
        assert lab.dnslab("record", "set", "svc.example.com", "A", "192.0.2.80").returncode == 0
        page.page.wait_for_selector("#server-detail:has-text('secondary of example.com.: serial 2026112802, current')")
        page.close()
    finally:
        lab.stop()
