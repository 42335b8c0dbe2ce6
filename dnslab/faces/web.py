"""The lab's live web view: a small HTTP/1.1 server with Server-Sent Events, on loopback.

`dnslab up` starts it beside the control endpoint and prints its address with
the lab's control token in the fragment (http://127.0.0.1:PORT/#token=...).
The page is static (served from the package: no CDN, no web font, nothing
fetched from elsewhere); everything live comes from this process:

- ``GET /api/events?token=T`` is an event stream: ``hello`` (the hierarchy,
  derived from the zones, and the recent queries), then ``queries`` (newly
  recorded client queries, four times a second) and ``state`` (servers with
  their faults and the resolver's view of them, counters, the clock and a page
  of the cache; every second, and at once after an action);
- ``POST /api/command`` runs one control command, ``{"command": ..., "args":
  ...}``, through the ControlServer's own handlers: the page and the CLI share
  one implementation, and with worker processes the commands the CLI sends to
  every worker are sent to every worker here too;
- ``GET /api/trace/ID`` and ``GET /trace/ID`` give a recorded query's trace
  events, and the same picture `dnslab trace --html` draws;
- ``GET /api/capture/ID`` gives the packets of a trace run from the page as
  a pcap file (what `dnslab capture all` would have written meanwhile);
- ``GET /api/scenarios`` lists the shipped scenarios, ``POST /api/scenario``
  ``{"name": ..., "clients": N}`` starts one (on fresh labs of its own, as
  `dnslab scenario run` does, in this process), and ``GET /api/scenario`` says
  how far it is, with its charts so far (SVG) and, at the end, its report.

Protection is the control endpoint's: the server binds 127.0.0.1 only, and
every API request must carry the lab's control token (header ``X-Dnslab-Token``,
or ``?token=`` where a browser cannot set headers: the event stream and the
trace picture), which only the user who started the lab can read; without it
the answer is 403.  A Host header that is not a loopback name is refused too
(DNS rebinding), and the page's Content-Security-Policy allows nothing but
this origin.

Client queries come from the resolver's QueryTap: a sample of at most `rate`
a second, each with its trace, in a bounded ring, with a count of the skipped
ones, so the page stays readable (and the resolver fast) at 1,000 queries a
second.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import secrets
from importlib import resources
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

import dns.exception
import dns.name
import dns.rdatatype

from dnslab import __version__
from dnslab.core.clock import FakeClock
from dnslab.lab.control import LabState, _question
from dnslab.core import validate
from dnslab.core.errors import ConfigError, DnslabError
from dnslab.faces.querytap import DEFAULT_RATE, QueryTap, Tapped

if TYPE_CHECKING:
    from dnslab.lab.runtime import Lab

log = logging.getLogger(__name__)

TICK = 0.25                    # seconds between pushes of new queries
STATE_EVERY = 4                # ticks between pushes of the whole state
CACHE_PAGE = 300               # cache entries pushed at most
MAX_HEADER = 16 * 1024
MAX_BODY = 64 * 1024
MAX_CONNECTIONS = 64
MAX_BUFFERED = 1 << 20         # a viewer this far behind is dropped (its browser reconnects)
READ_TIMEOUT = 10.0
# The commands `dnslab` sends to every worker process (see inspection.py): the page does the same.
BROADCAST = {"fault", "record.set", "record.delete", "reload", "cache.flush", "clock.advance"}
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "[::1]"}
STATIC = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/static/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/static/app.css": ("app.css", "text/css; charset=utf-8"),
    "/static/icon.svg": ("icon.svg", "image/svg+xml"),
}
PAGE_POLICY = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
               "frame-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
# A trace run from the page is captured (dnslab capture all, for the trace's time): the last
# KEPT_CAPTURES are kept for download, each of at most MAX_TRACE_PACKETS packets.
KEPT_CAPTURES = 32
MAX_TRACE_PACKETS = 2000
# The trace picture is render_html's page: inline CSS only, shown in the page's frame.
TRACE_POLICY = "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; frame-ancestors 'self'"
REASONS = {200: "OK", 204: "No Content", 400: "Bad Request", 403: "Forbidden", 404: "Not Found",
           405: "Method Not Allowed", 413: "Payload Too Large", 431: "Request Header Fields Too Large",
           503: "Service Unavailable"}


class HttpError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class _Viewer:
    """One open event stream: where it is in the query ring, and which part of the cache it shows."""

    def __init__(self, writer: asyncio.StreamWriter, last_query: int) -> None:
        self.id = secrets.token_hex(8)
        self.writer = writer
        self.last_query = last_query
        self.cache_filter = ""
        self.closed = asyncio.Event()

    def send(self, event: str, data: Any) -> None:
        if self.closed.is_set():
            return
        transport = self.writer.transport
        if transport.is_closing() or transport.get_write_buffer_size() > MAX_BUFFERED:
            self.closed.set()
            return
        self.writer.write(f"event: {event}\ndata: {json.dumps(data, default=str)}\n\n".encode())


class WebServer:
    """Serves the page and its API for one lab, on 127.0.0.1."""

    def __init__(self, lab: "Lab", workers: list[LabState] | None = None, port: int = 0,
                 rate: int = DEFAULT_RATE) -> None:
        self.lab = lab
        self.control = lab.control
        self.workers = list(workers or [])   # further worker processes' control endpoints
        self.address = "127.0.0.1"
        self.port = port
        self.tap = QueryTap(rate)
        # The packets of the page's last traces, by query id, for GET /api/capture/ID (a pcap download).
        self._captures: dict[int, list[Any]] = {}
        self._scenario: Any = None  # the scenario the page started (dnslab.lab.scenario.run.LiveScenario)
        self._server: asyncio.base_events.Server | None = None
        self._viewers: set[_Viewer] = set()
        self._connections = 0
        self._ticker: asyncio.Task[None] | None = None
        self._urgent = asyncio.Event()
        self._stopping = False
        self._hierarchy = lab.hierarchy  # a new one after a change started or stopped servers
        self._files = {path: (resources.files("dnslab.faces").joinpath("webui", name).read_bytes(), kind)
                       for path, (name, kind) in STATIC.items()}

    @property
    def token(self) -> str:
        return self.control.token

    @property
    def url(self) -> str:
        """The address to open: the token rides in the fragment, which browsers never send anywhere."""
        return f"http://{self.address}:{self.port}/#token={self.token}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, self.address, self.port, limit=MAX_HEADER)
        self.port = self._server.sockets[0].getsockname()[1]
        if self.lab.resolver is not None:
            self.lab.resolver.subscribe(self.tap)
        self._ticker = asyncio.ensure_future(self._tick())

    async def stop(self) -> None:
        self._stopping = True
        if self._scenario is not None:
            await self._scenario.stop()
        if self._ticker is not None:
            self._ticker.cancel()
            try:
                await self._ticker
            except asyncio.CancelledError:
                pass
            self._ticker = None
        for viewer in list(self._viewers):
            viewer.closed.set()
            viewer.writer.close()
        if self.lab.resolver is not None:
            self.lab.resolver.unsubscribe(self.tap)
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    # --- HTTP ----------------------------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._connections += 1
        try:
            if self._connections > MAX_CONNECTIONS:
                raise HttpError(503, "too many connections")
            method, target, headers, body = await asyncio.wait_for(_read_request(reader), READ_TIMEOUT)
            await self._route(method, target, headers, body, reader, writer)
        except HttpError as exc:
            _respond(writer, exc.status, _json({"ok": False, "error": str(exc)}), "application/json")
        except (asyncio.TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError,
                UnicodeDecodeError):
            _respond(writer, 400, _json({"ok": False, "error": "bad request"}), "application/json")
        except (ConnectionError, asyncio.CancelledError):
            pass
        except Exception as exc:  # noqa: BLE001 - a page's request must never stop the lab
            log.exception("web request failed")
            _respond(writer, 500, _json({"ok": False, "error": f"internal error: {exc}"}), "application/json")
        finally:
            self._connections -= 1
            try:
                await asyncio.wait_for(writer.drain(), READ_TIMEOUT)
            except (ConnectionError, asyncio.TimeoutError, asyncio.CancelledError):
                pass
            writer.close()

    async def _route(self, method: str, target: str, headers: dict[str, str], body: bytes,
                     reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        host = headers.get("host", "")
        if host.rsplit(":", 1)[0] not in LOOPBACK_HOSTS:
            raise HttpError(403, "this server answers only to 127.0.0.1 and localhost (Host header)")
        url = urlsplit(target)
        path, query = url.path, parse_qs(url.query)
        if method not in ("GET", "POST"):
            raise HttpError(405, f"method {method} not allowed")
        if path in self._files and method == "GET":
            content, kind = self._files[path]
            policy = {"Content-Security-Policy": PAGE_POLICY} if path == "/" else {}
            _respond(writer, 200, content, kind, policy)
            return
        if not path.startswith(("/api/", "/trace/")):
            raise HttpError(404, f"no such page: {path}")
        self._check_token(headers, query)
        if path == "/api/events" and method == "GET":
            await self._stream(reader, writer)
        elif path == "/api/state" and method == "GET":
            _respond(writer, 200, _json(await self._state(query.get("cache", [""])[0])), "application/json")
        elif path == "/api/command" and method == "POST":
            origin = headers.get("origin")
            if origin and urlsplit(origin).netloc.rsplit(":", 1)[0] not in LOOPBACK_HOSTS:
                raise HttpError(403, "requests from other sites are refused")
            _respond(writer, 200, _json(await self._command(body)), "application/json")
        elif path == "/api/view" and method == "POST":
            _respond(writer, 200, _json(self._view(body)), "application/json")
        elif path.startswith("/api/capture/") and method == "GET":
            body, name = self._pcap(path.removeprefix("/api/capture/"))
            _respond(writer, 200, body, "application/vnd.tcpdump.pcap",
                     {"Content-Disposition": f'attachment; filename="{name}"'})
        elif path == "/api/scenarios" and method == "GET":
            _respond(writer, 200, _json(_shipped_scenarios()), "application/json")
        elif path == "/api/scenario" and method == "POST":
            _respond(writer, 200, _json(self._start_scenario(body)), "application/json")
        elif path == "/api/scenario" and method == "GET":
            _respond(writer, 200, _json(self._scenario_status()), "application/json")
        elif path.startswith("/api/trace/") and method == "GET":
            tapped = self._tapped(path.removeprefix("/api/trace/"))
            _respond(writer, 200, _json({"query": tapped.summary(), "events": tapped.trace()}), "application/json")
        elif path.startswith("/trace/") and method == "GET":
            from dnslab.faces.trace_html import render_html

            tapped = self._tapped(path.removeprefix("/trace/"))
            title = f"{tapped.name} {tapped.type} from {tapped.client or 'a client'}"
            _respond(writer, 200, render_html(tapped.trace(), title).encode(), "text/html; charset=utf-8",
                     {"Content-Security-Policy": TRACE_POLICY})
        else:
            raise HttpError(404, f"no such API: {method} {path}")

    def _check_token(self, headers: dict[str, str], query: dict[str, list[str]]) -> None:
        given = headers.get("x-dnslab-token") or (query.get("token") or [""])[0]
        if not given or not hmac.compare_digest(given.encode(), self.token.encode()):
            raise HttpError(403, "wrong or missing token: open the address `dnslab up` printed "
                                 "(or `dnslab web` prints it again)")

    def _tapped(self, text: str) -> Tapped:
        try:
            tapped = self.tap.get(int(text))
        except ValueError:
            tapped = None
        if tapped is None:
            raise HttpError(404, f"query {text} is not kept any more (only the last {self.tap.ring.maxlen} are)")
        return tapped

    # --- commands ------------------------------------------------------------------------

    async def _command(self, body: bytes) -> dict[str, Any]:
        try:
            request = json.loads(body or b"{}")
        except ValueError:
            raise HttpError(400, "the body must be JSON: {\"command\": ..., \"args\": {...}}") from None
        if not isinstance(request, dict) or not isinstance(request.get("args", {}), dict):
            raise HttpError(400, "the body must be JSON: {\"command\": ..., \"args\": {...}}")
        command, args = str(request.get("command")), request.get("args") or {}
        if command == "trace":
            return await self._trace(args)
        handler = self.control.commands.get(command)
        if handler is None:
            return {"ok": False, "error": f"unknown command {command!r}; known: {', '.join(sorted(self.control.commands))}"}
        events: list[dict[str, Any]] = []
        watch = None
        try:
            if command == "query" and self.lab.foreign is None:  # a real resolver's walk is not seen
                # The page's own question: recorded whatever the sample says, and named in the answer
                # so the page can draw its trace.
                watch = self.tap.watch(*_question(args))
            result = await handler(args, events.append)
            if watch is not None:
                result = {**result, "query_id": watch.id}
            if command in BROADCAST:
                for worker in self.workers:
                    await _call(worker, command, args)
        except DnslabError as exc:
            return {"ok": False, "error": str(exc)}
        except (KeyError, TypeError, ValueError) as exc:
            return {"ok": False, "error": f"bad arguments for {command}: {exc}"}
        finally:
            if watch is not None:
                self.tap.unwatch(watch)
            self._urgent.set()
        if events:
            result = {**(result or {}), "events": events}
        return {"ok": True, "result": result}

    async def _trace(self, args: dict[str, Any]) -> dict[str, Any]:
        """`dnslab trace` from the page (with `cold`: a walk from the root, as `--cold`): the events, as the
        control command returns them, and the trace kept in the list of queries so the page can draw it."""
        from dnslab.core.events import Recording

        try:
            if self.lab.resolver is None:
                raise DnslabError("this lab runs without a resolver (dnslab up --no-resolver)")
            qname, qtype = _question(args)
            recording = Recording()
            packets: list[Any] = []
            stop_capture = self.lab.capture("all", packets.append)  # the trace's packets, for a pcap download
            try:
                result = await self.lab.resolver.trace(qname, qtype, recording.sink, cold=bool(args.get("cold")))
            finally:
                stop_capture()
        except DnslabError as exc:
            return {"ok": False, "error": str(exc)}
        finally:
            self._urgent.set()
        tapped = self.tap.traced(recording, qname, qtype, result, bool(args.get("cold")))
        self._captures[tapped.id] = packets[:MAX_TRACE_PACKETS]
        for old in sorted(self._captures)[:-KEPT_CAPTURES]:
            del self._captures[old]
        return {"ok": True, "result": {"rcode": tapped.rcode, "upstream_queries": result.upstream_queries,
                                       "total_ms": tapped.ms, "query_id": tapped.id, "events": tapped.trace(),
                                       "packets": len(self._captures[tapped.id])}}

    def _start_scenario(self, body: bytes) -> dict[str, Any]:
        """One scenario at a time, by a shipped scenario's name (the page offers no file path)."""
        from dnslab.faces.scenario_cli import adjusted
        from dnslab.lab.scenario.run import LiveScenario
        from dnslab.lab.scenario.shipped import find

        try:
            args = json.loads(body or b"{}")
            name = str(args.get("name", ""))
            if not name or "/" in name or name.endswith(".toml"):
                raise ConfigError(f"scenario: expected a shipped scenario's name, got {name!r}")
            clients = args.get("clients")
            scenario = adjusted(find(name), None, None if clients is None else
                                validate.whole(clients, "clients", 1, 10_000))
        except (ValueError, DnslabError) as exc:
            return {"ok": False, "error": str(exc)}
        if self._scenario is not None and self._scenario.running:
            return {"ok": False, "error": f"the scenario {self._scenario.scenario.name} is still running"}
        self._scenario = LiveScenario(scenario)
        self._scenario.start()
        return {"ok": True, "result": {"name": scenario.name, "clients": scenario.population}}

    def _scenario_status(self) -> dict[str, Any]:
        from dnslab.faces.scenario_report import charts, text_report

        live = self._scenario
        if live is None:
            return {"ok": True, "result": None}
        result = live.partial()
        return {"ok": True, "result": {
            "name": live.scenario.name, "title": live.scenario.title, "running": live.running,
            "progress": round(live.progress(), 3), "error": live.error,
            "charts": [{"title": title, "svg": svg} for title, svg in charts(result)] if result.variants else [],
            "report": text_report(result) if not live.running and live.error is None else None}}

    def _pcap(self, text: str) -> tuple[bytes, str]:
        """A trace's packets as a pcap file (faces/pcap.py), and a file name for it."""
        import io

        from dnslab.faces.pcap import PcapWriter

        try:
            packets = self._captures.get(int(text))
        except ValueError:
            packets = None
        if packets is None:
            raise HttpError(404, f"no capture kept for {text} (the page's last {KEPT_CAPTURES} traces have one)")
        out = io.BytesIO()
        writer = PcapWriter(out)
        for packet in packets:
            writer.write(packet)
        return out.getvalue(), f"dnslab-trace-{text}.pcap"

    def _view(self, body: bytes) -> dict[str, Any]:
        """A viewer's choice of what part of the cache to watch."""
        try:
            request = json.loads(body or b"{}")
            viewer_id, name = str(request["viewer"]), str(request.get("cache") or "").strip()
        except (ValueError, KeyError, TypeError):
            raise HttpError(400, "the body must be JSON: {\"viewer\": ..., \"cache\": NAME}") from None
        if name:
            try:
                dns.name.from_text(name)
            except dns.exception.DNSException as exc:
                return {"ok": False, "error": f"not a domain name: {name!r} ({exc})"}
        for viewer in self._viewers:
            if viewer.id == viewer_id:
                viewer.cache_filter = name
                self._urgent.set()
                return {"ok": True}
        return {"ok": False, "error": "no such viewer (the event stream has reconnected)"}

    # --- live push -----------------------------------------------------------------------

    async def _stream(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        recent = list(self.tap.ring)[-100:]
        viewer = _Viewer(writer, recent[-1].id if recent else 0)
        writer.write(_head(200, "text/event-stream; charset=utf-8", {"X-Accel-Buffering": "no"}) + b"retry: 2000\n\n")
        viewer.send("hello", {"viewer": viewer.id, "lab": self._lab_info(),
                              "queries": [tapped.summary() for tapped in recent]})
        viewer.send("state", await self._state(viewer.cache_filter))
        self._viewers.add(viewer)
        closed = asyncio.ensure_future(reader.read(1))   # the browser sends nothing more; EOF means gone
        waiting = asyncio.ensure_future(viewer.closed.wait())
        try:
            await asyncio.wait({closed, waiting}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            closed.cancel()
            waiting.cancel()
            self._viewers.discard(viewer)

    async def _tick(self) -> None:
        """Refill the tap's budget every TICK; push queries then, and the state every second or on demand."""
        loop = asyncio.get_running_loop()
        beat, next_beat = 0, loop.time() + TICK
        while not self._stopping:
            # asyncio.wait, not wait_for: Python 3.11's wait_for can swallow a cancellation that
            # arrives as the event is set, and the ticker would then never stop.
            waiter = asyncio.ensure_future(self._urgent.wait())
            try:
                await asyncio.wait({waiter}, timeout=max(0.0, next_beat - loop.time()))
            finally:
                waiter.cancel()
            if self._stopping:
                return
            urgent = self._urgent.is_set()
            self._urgent.clear()
            regular = loop.time() >= next_beat
            if regular:
                beat += 1
                next_beat = loop.time() + TICK
                self.tap.refill(TICK)
            if not self._viewers:
                continue
            try:
                self._push_queries()
                if urgent or (regular and beat % STATE_EVERY == 0):
                    await self._push_state()
            except Exception:  # noqa: BLE001 - a failed push must not end the ticker
                log.exception("web view push failed")

    def _push_queries(self) -> None:
        for viewer in list(self._viewers):
            fresh = self.tap.since(viewer.last_query)
            if fresh:
                viewer.last_query = fresh[-1].id
            viewer.send("queries", {"queries": [tapped.summary() for tapped in fresh],
                                    "skipped": self.tap.skipped, "recorded": self.tap.recorded})

    async def _push_state(self) -> None:
        if self.lab.hierarchy is not self._hierarchy:  # servers started or stopped: the page redraws its tree
            self._hierarchy = self.lab.hierarchy
            info = self._lab_info()
            for viewer in list(self._viewers):
                viewer.send("lab", info)
        states: dict[str, dict[str, Any]] = {}
        for viewer in list(self._viewers):
            if viewer.cache_filter not in states:
                states[viewer.cache_filter] = await self._state(viewer.cache_filter)
            viewer.send("state", states[viewer.cache_filter])

    # --- what the page shows ---------------------------------------------------------------

    def _lab_info(self) -> dict[str, Any]:
        """The hierarchy as derived from the zones (sent again as a "lab" event when a change redraws it)."""
        lab = self.lab
        servers = [{"address": plan.address, "names": [n.to_text() for n in plan.names], "role": plan.role.value,
                    "zones": [zone.origin.to_text() for zone in plan.zones]} for plan in lab.hierarchy.servers]
        origins = sorted({zone.origin for zone in lab.zones})   # DNS order: every parent before its children
        zones = []
        for origin in origins:
            parents = [other for other in origins if other != origin and origin.is_subdomain(other)]
            zones.append({"origin": origin.to_text(),
                          "parent": max(parents, key=len).to_text() if parents else None,
                          "servers": [plan.address for plan in lab.hierarchy.servers
                                      if any(zone.origin == origin for zone in plan.zones)]})
        return {"version": __version__, "port": lab.actual_port, "resolver": lab.resolver_address,
                "location": lab.geography.location,
                "fake_clock": isinstance(lab.clock, FakeClock), "workers": 1 + len(self.workers),
                "servers": servers, "zones": zones, "tap_rate": self.tap.rate}

    def _zone_servers(self) -> dict[str, list[str]]:
        """Each zone's server addresses, in the order the hierarchy lists them."""
        return {zone["origin"]: zone["servers"] for zone in self._lab_info()["zones"]}

    async def _state(self, cache_filter: str) -> dict[str, Any]:
        commands, lab = self.control.commands, self.lab
        views: dict[str, dict[str, Any]] = {}
        stats: Any = None
        cache: Any = None
        if lab.resolver is not None:
            views = {row["address"]: row for row in (await commands["servers"]({}, _ignore))["servers"]}
            stats = await commands["stats"]({}, _ignore)
            if self.workers:
                from dnslab.faces.inspection import _summed

                stats = _summed([stats] + [await _call(worker, "stats", {}) for worker in self.workers])
            try:
                cache = await commands["cache.show"]({"name": cache_filter, "limit": CACHE_PAGE}, _ignore)
            except DnslabError as exc:
                cache = {"entries": [], "size": len(lab.resolver.cache), "truncated": False, "error": str(exc)}
            cache["filter"] = cache_filter
            _against_the_zones(cache["entries"], lab.zones)
        servers = []
        copies = lab.replication.secondaries.to_json()
        steered = lab.endpoints()  # steered names (lab.toml [steering]) and their endpoints' health
        for running in lab.servers:
            state = running.faulty.state
            servers.append({
                "address": running.plan.address, "up": running.up, "faults": lab.faults().get(running.plan.address, []),
                "fault": {"down": state.down, "unreachable": state.unreachable, "delay_ms": state.delay_ms,
                          "jitter_ms": state.jitter_ms,
                          "loss_pct": state.loss_pct, "answer": state.answer.name if state.answer else None},
                "received": sum(running.faulty.queries.values()),
                "resolver": views.get(running.plan.address),
                "secondary": [copy for copy in copies if copy["address"] == running.plan.address],
                # An anycast address: its sites, which one the resolver's location reaches, withdrawn ones.
                "sites": running.router.to_json() if running.router is not None else None,
                "steered": [row for row in steered if running.server.steering is not None and any(
                    dns.name.from_text(row["name"]).is_subdomain(zone.origin) for zone in running.plan.zones)],
            })
        # Per zone, the server the resolver prefers now (lowest estimated RTT, as Infra.choose ranks
        # them): the one a learner takes down to see a failover.
        in_use = {} if lab.resolver is None else {
            origin: address for origin, addresses in self._zone_servers().items()
            if (address := lab.resolver.infra.preferred(addresses)) is not None}
        levels = await _levels_state(commands)
        clock = await commands["clock"]({}, _ignore)
        # A signed lab's zone faults (dnssec-*), keyed by zone name: the page badges those zones.
        dnssec = None if lab.signer is None else {
            "zone_faults": lab.signer.describe(),
            "trust_anchor_file": str(lab.trust_anchor_file) if lab.trust_anchor_file else None}
        return {"clock": {**clock, "since_start": clock["since_start_s"]},
                "servers": servers, "stats": stats, "cache": cache, "dnssec": dnssec, "in_use": in_use,
                "levels": levels,
                "tap": {"rate": self.tap.rate, "skipped": self.tap.skipped, "recorded": self.tap.recorded}}


def _shipped_scenarios() -> dict[str, Any]:
    from dnslab.lab.scenario.shipped import shipped

    return {"ok": True, "result": [{"name": item.name, "title": item.title, "clients": item.population,
                                    "variants": [variant.name for variant in item.variants]}
                                   for item in shipped()]}


def _ignore(_: dict[str, Any]) -> None:
    return None


LEVEL_PAGE = 12  # entries of each caching level pushed at most


async def _levels_state(commands: dict[str, Any]) -> list[dict[str, Any]]:
    """The caching levels beside the hierarchy (docs/LEVELS.md): each with its counters and its first entries."""
    rows = (await commands["levels"]({"stats": True}, _ignore))["levels"]
    for row in rows:
        cache = await commands["cache.show"]({"level": row["level"], "limit": LEVEL_PAGE}, _ignore)
        row["entries"] = cache["entries"][:LEVEL_PAGE]
        row["size"] = cache["size"]
    return rows


def _against_the_zones(entries: list[dict[str, Any]], zones: list[Any]) -> None:
    """Mark each cached answer the lab's zones now contradict (`zone_now`: what the zone has instead).

    After `dnslab record set` the servers answer the new data at once while the resolver keeps the
    old until its TTL runs out, as a real one does: the page says so beside the entry.  Only what
    can be told for sure is marked: a name the zone no longer has at all (deleted, or answered by
    a wildcard) is left alone.
    """
    by_origin = {zone.origin: zone for zone in zones}
    for entry in entries:
        if entry["kind"] not in ("positive", "nodata", "nxdomain") or entry.get("stale"):
            continue
        try:
            name, rdtype = dns.name.from_text(entry["name"]), dns.rdatatype.from_text(entry["type"])
        except (dns.exception.DNSException, ValueError):
            continue
        zone, owner = None, name
        while zone is None:
            zone = by_origin.get(owner)
            if owner == dns.name.root:
                break
            owner = owner.parent()
        if zone is None or not zone.exists(name):
            continue
        if entry["kind"] == "nxdomain":  # a remembered "no such name" (for every type) while the name now exists
            entry["zone_now"] = [line for rrset in (zone.node(name) or {}).values()
                                 for line in rrset.to_text().splitlines()]
            continue
        now = zone.get(name, rdtype)
        now_data = sorted(rdata.to_text().lower() for rdata in now) if now is not None else []
        if entry["kind"] == "positive":
            cached = sorted(line.split(None, 4)[-1].lower() for line in entry["records"])
            differs = cached != now_data
        else:  # a remembered NODATA while the zone now has the type
            differs = now is not None
        if differs:
            entry["zone_now"] = [f"{name} {now.ttl} IN {entry['type']} {data}" for data in now_data] if now else []


async def _call(state: LabState, command: str, args: dict[str, Any]) -> Any:
    """One control request to another worker process, without blocking the loop (ControlClient blocks)."""
    reader, writer = await asyncio.wait_for(asyncio.open_connection(state.control_address, state.control_port),
                                            READ_TIMEOUT)
    try:
        writer.write(json.dumps({"token": state.token, "command": command, "args": args}).encode() + b"\n")
        while True:
            line = await asyncio.wait_for(reader.readline(), READ_TIMEOUT)
            if not line:
                raise DnslabError(f"worker {state.pid} closed the connection without an answer")
            message = json.loads(line)
            if "event" in message:
                continue
            if not message.get("ok"):
                raise DnslabError(message.get("error", "a worker refused the request"))
            return message.get("result")
    finally:
        writer.close()


async def _read_request(reader: asyncio.StreamReader) -> tuple[str, str, dict[str, str], bytes]:
    line = await reader.readline()
    if not line:
        raise asyncio.IncompleteReadError(b"", None)
    method, target, _version = line.decode("latin-1").split()
    headers: dict[str, str] = {}
    size = len(line)
    while True:
        line = await reader.readline()
        size += len(line)
        if size > MAX_HEADER:
            raise HttpError(431, "request headers too large")
        if line in (b"\r\n", b"\n", b""):
            break
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length") or 0)
    if length < 0 or length > MAX_BODY:
        raise HttpError(413, f"a request body may hold {MAX_BODY} bytes at most")
    body = await reader.readexactly(length) if length else b""
    return method, target, headers, body


def _head(status: int, content_type: str, extra: dict[str, str] | None = None, length: int | None = None) -> bytes:
    headers = {
        "Content-Type": content_type,
        "Cache-Control": "no-store",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Cross-Origin-Resource-Policy": "same-origin",
        "Connection": "close",
        **(extra or {}),
    }
    if "Content-Security-Policy" not in headers:
        headers["Content-Security-Policy"] = "default-src 'none'; frame-ancestors 'none'"
    if length is not None:
        headers["Content-Length"] = str(length)
    lines = [f"HTTP/1.1 {status} {REASONS.get(status, 'Error')}"] + [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _respond(writer: asyncio.StreamWriter, status: int, body: bytes, content_type: str,
             extra: dict[str, str] | None = None) -> None:
    if writer.transport.is_closing():
        return
    writer.write(_head(status, content_type, extra, len(body)) + body)


def _json(data: Any) -> bytes:
    return json.dumps(data, default=str).encode()
