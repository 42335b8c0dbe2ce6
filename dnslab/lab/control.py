"""The lab's control endpoint: how `dnslab trace`, `cache`, `servers` and `stats` reach a running lab.

In the spirit of `unbound-control`, but without TLS certificates: a TCP
listener bound to 127.0.0.1 only, and a random token that the lab writes to a
state file readable only by the user who started it (in a 0700 folder).  Any
local process may connect; only the lab's own user can read the token, so only
they can drive it.

The protocol is JSON lines, simple enough for scripts (docs/REFERENCE.md):
the client sends one object ``{"token": ..., "command": ..., "args": {...}}``;
the lab answers with zero or more ``{"event": ...}`` objects (a trace streams
its steps as they happen) and then one ``{"ok": true, "result": ...}`` or
``{"ok": false, "error": "..."}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hmac
import json
import logging
import os
import secrets
import socket
import tempfile
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Iterator

import dns.exception
import dns.name
import dns.rcode
import dns.rdatatype

from dnslab.core import validate
from dnslab.core.clock import FakeClock
from dnslab.core.errors import DnslabError
from dnslab.core.events import Event, Recording, stamped, to_ms
from dnslab.core.zone import Zone
from dnslab.lab import capturing, fault_kinds

if TYPE_CHECKING:
    from dnslab.lab.runtime import Change, Lab

log = logging.getLogger(__name__)

MAX_REQUEST = 64 * 1024
REQUEST_TIMEOUT = 10.0


def runtime_dir() -> Path:
    """A per-user folder for the lab's state: $XDG_RUNTIME_DIR/dnslab, else /tmp/dnslab-<uid>."""
    base = os.environ.get("XDG_RUNTIME_DIR")
    if base:
        return Path(base) / "dnslab"
    return Path(tempfile.gettempdir()) / f"dnslab-{os.getuid()}"


def state_dir() -> Path:
    """The folder of the user's lab state files: $DNSLAB_STATE, else the runtime folder."""
    return Path(os.environ.get("DNSLAB_STATE") or runtime_dir())


def state_path(port: int, folder: Path | None = None, part: str = "") -> Path:
    """One state file per lab, named by its port: two labs at once must not hide each other.

    A part of a lab split over processes (`dnslab up --only CIDR`, dnslab.lab.split) adds its
    networks to the name, lab-PORT-PART.json: the parts share the port, not the control endpoint."""
    return (folder or state_dir()) / (f"lab-{port}-{part}.json" if part else f"lab-{port}.json")


def _alive(pid: int) -> bool:
    """Whether *pid* is a process of ours (a lab killed with SIGKILL leaves its file behind)."""
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError, OverflowError):  # gone, or now another user's number
        return False
    return True


def running_labs(folder: Path | None = None) -> list["LabState"]:
    """The labs whose state files are in *folder* and whose process still runs, by port."""
    folder = folder or state_dir()
    found = []
    for path in sorted(folder.glob("lab-*.json")) if folder.is_dir() else []:
        try:
            state = LabState.read(path)
        except DnslabError:
            continue
        if _alive(state.pid):
            found.append(state)
    return sorted(found, key=lambda state: state.port)


def live_lab(port: int, folder: Path | None = None, part: str = "") -> "LabState | None":
    """The running lab (or part of one) that holds the state file for *port*, if any."""
    path = state_path(port, folder, part)
    try:
        state = LabState.read(path)
    except DnslabError:
        return None
    return state if _alive(state.pid) else None


def find_lab(port: int | None = None, folder: Path | None = None) -> "LabState":
    """The lab a command talks to: the one on *port*, else the only one running."""
    folder = folder or state_dir()
    labs = _one_per_port(running_labs(folder))
    ports = ", ".join(str(state.port) for state in labs)
    if port is not None:
        for state in labs:
            if state.port == port:
                return state
        running = f"running: port {ports}" if labs else "none is running"
        raise DnslabError(f"no running lab on port {port} ({running}; state files in {folder})")
    if not labs:
        raise DnslabError(f"no running lab found (no state file in {folder}): start one with dnslab up")
    if len(labs) > 1:
        raise DnslabError(f"{len(labs)} labs are running (ports {ports}): pick one with --port N")
    return labs[0]


def _one_per_port(labs: list["LabState"]) -> list["LabState"]:
    """The lab a command means on each port: of the parts of a split lab, the one running the resolver.

    Commands ask the resolver (trace, stats, cache) or a server of this process; the part holding the
    resolver is the one a user dug into.  Parts without it are reached with their own state file."""
    chosen: dict[int, LabState] = {}
    for state in labs:
        held = chosen.get(state.port)
        if held is None or (held.resolver_address is None and state.resolver_address is not None):
            chosen[state.port] = state
    return sorted(chosen.values(), key=lambda state: state.port)


@dataclass(frozen=True)
class LabState:
    """What a client needs to find and drive a running lab."""

    control_address: str
    control_port: int
    token: str
    resolver_address: str | None
    port: int
    root_hints: str
    pid: int
    # Further worker processes (dnslab up --workers N): [{"port": ..., "token": ..., "pid": ...}].
    workers: list[dict[str, Any]] = field(default_factory=list)
    web_port: int | None = None  # the web view on 127.0.0.1, None when off (dnslab up --no-web)
    only: list[str] = field(default_factory=list)  # the networks this part serves (dnslab up --only), [] all

    @property
    def web_url(self) -> str | None:
        """The web view's address with the token in the fragment (never sent over the network)."""
        if self.web_port is None:
            return None
        return f"http://{self.control_address}:{self.web_port}/#token={self.token}"

    def endpoints(self) -> list["LabState"]:
        """One state per worker process, this one first, for commands that must reach them all."""
        return [self] + [replace(self, control_port=int(w["port"]), token=str(w["token"]), pid=int(w["pid"]),
                                 workers=[]) for w in self.workers]

    def write(self, path: Path) -> None:
        """Write with mode 0600 in a 0700 folder: the token is the only lock."""
        try:
            self._write(path)
        except OSError as exc:
            raise DnslabError(f"cannot write the lab's state file {path}: {exc.strerror or exc} "
                              "(DNSLAB_STATE names a folder)") from None

    def _write(self, path: Path) -> None:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        if path.parent.stat().st_uid != os.getuid():
            raise DnslabError(f"{path.parent} belongs to another user; set DNSLAB_STATE to a path of your own")
        if path.parent == runtime_dir():
            path.parent.chmod(0o700)  # our own folder: nobody else needs to look inside
        temporary = path.with_name(path.name + ".tmp")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            json.dump(asdict(self), handle)
        os.replace(temporary, path)

    @classmethod
    def read(cls, path: Path) -> "LabState":
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return cls(**data)
        except FileNotFoundError:
            raise DnslabError(f"no running lab found ({path} does not exist): start one with dnslab up") from None
        except PermissionError:
            raise DnslabError(f"{path}: not readable by you; the lab belongs to another user") from None
        except IsADirectoryError:
            raise DnslabError(f"{path} is a folder: DNSLAB_STATE names the folder of state files "
                              "(lab-PORT.json), not a file") from None
        except OSError as exc:
            raise DnslabError(f"cannot read {path}: {exc.strerror or exc}") from None
        except (ValueError, TypeError) as exc:
            raise DnslabError(f"{path}: not a dnslab state file ({exc})") from None


class ClientGone(ConnectionError):
    """The control client closed its end while the lab was still answering."""


Handler = Callable[[dict[str, Any], Callable[[dict[str, Any]], None]], Awaitable[Any]]


class ControlServer:
    """Answers control requests for one lab; every command goes through `commands`."""

    def __init__(self, lab: "Lab", token: str | None = None) -> None:
        self.lab = lab
        self.token = token or secrets.token_hex(32)
        self.address = "127.0.0.1"
        self.port = 0
        self._server: asyncio.base_events.Server | None = None
        self.commands: dict[str, Handler] = {
            "ping": self._ping,
            "trace": self._trace,
            "cache.show": self._cache_show,
            "cache.flush": self._cache_flush,
            "servers": self._servers,
            "stats": self._stats,
            "fault": self._fault,
            "faults": self._faults,
            "faults.kinds": self._fault_kinds,
            "queries": self._queries,
            "endpoints": self._endpoints,
            "endpoint": self._endpoint,
            "record.set": self._record_set,
            "record.delete": self._record_delete,
            "reload": self._reload,
            "clock": self._clock,
            "clock.advance": self._clock_advance,
            "query": self._query,
            "levels": self._levels,
            "capture": functools.partial(capturing.capture, self.lab),
        }

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, self.address, 0, limit=MAX_REQUEST)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        def send(obj: dict[str, Any]) -> None:
            """One line to the client; ClientGone when it has left (a `trace | head -1`)."""
            if writer.is_closing():
                raise ClientGone()
            try:
                writer.write(json.dumps(obj, default=str).encode() + b"\n")
            except (RuntimeError, ConnectionError):  # uvloop raises RuntimeError on a closed transport
                raise ClientGone() from None

        def answer(obj: dict[str, Any]) -> None:
            """The last line: a client that has gone needs no answer, and that is no error of the lab's."""
            try:
                send(obj)
            except ClientGone:
                pass

        try:
            line = await asyncio.wait_for(reader.readline(), REQUEST_TIMEOUT)
            request = json.loads(line)
            if not isinstance(request, dict):
                raise ValueError("a request is a JSON object")
            if not hmac.compare_digest(str(request.get("token", "")), self.token):
                answer({"ok": False, "error": "wrong token: read it from the lab's state file"})
                return
            handler = self.commands.get(str(request.get("command")))
            if handler is None:
                answer({"ok": False, "error": f"unknown command {request.get('command')!r}; "
                                              f"known: {', '.join(sorted(self.commands))}"})
                return
            args = request.get("args") or {}
            if not isinstance(args, dict):
                raise ValueError("args must be a JSON object")
            result = await handler(args, send)
            answer({"ok": True, "result": result})
        except (ClientGone, ConnectionError, asyncio.IncompleteReadError):
            pass  # the client went away: nothing to answer, nothing wrong with the lab
        except (asyncio.TimeoutError, asyncio.LimitOverrunError, ValueError) as exc:
            answer({"ok": False, "error": f"bad request: {exc}"})
        except DnslabError as exc:
            answer({"ok": False, "error": str(exc)})
        except Exception as exc:  # noqa: BLE001 - a control request must never stop the lab
            log.exception("control request failed")
            answer({"ok": False, "error": f"internal error: {exc}"})
        finally:
            try:
                await asyncio.wait_for(writer.drain(), REQUEST_TIMEOUT)
            except (ConnectionError, RuntimeError, asyncio.TimeoutError):
                pass
            writer.close()

    # --- commands ------------------------------------------------------------------------

    def _resolver(self, command: str = "this command") -> Any:
        if self.lab.foreign is not None:  # a real program: nothing of it to look into (docs/FOREIGN.md)
            title = self.lab.foreign.title
            raise DnslabError(f"the lab's resolver is {title} (dnslab up --resolver {self.lab.foreign.name}), "
                              f"not dnslab's: dnslab {command} looks inside dnslab's own "
                              f"resolver only; ask {title} with dig")
        if self.lab.resolver is None:
            raise DnslabError("this lab runs without a resolver (dnslab up --no-resolver)")
        return self.lab.resolver

    async def _ping(self, args: dict[str, Any], send: Callable[[dict[str, Any]], None]) -> Any:
        return {"pid": os.getpid()}

    async def _trace(self, args: dict[str, Any], send: Callable[[dict[str, Any]], None]) -> Any:
        qname, qtype = _question(args)
        clock = Recording()
        if args.get("via"):  # down the caching levels first (dnslab.lab.level_trace)
            from dnslab.lab.level_trace import trace_via

            def tagged(event: Event, level: str) -> None:
                send({**stamped(clock.elapsed_ms(), event), "level": level})

            return {**await trace_via(self.lab, str(args["via"]), qname, qtype, tagged),
                    "total_ms": clock.elapsed_ms()}
        resolver = self._resolver("trace")

        annotate = self.lab.replication.secondaries.annotate  # a reply from a secondary says so

        def sink(event: Event) -> None:
            send(annotate(stamped(clock.elapsed_ms(), event)))

        with self.lab.steering_watched(sink) as watched:  # a steered answer given meanwhile: which policy, why
            result = await resolver.trace(qname, qtype, watched, cold=bool(args.get("cold")))
        return {"rcode": dns.rcode.to_text(result.rcode), "upstream_queries": result.upstream_queries,
                "total_ms": clock.elapsed_ms()}

    def _level(self, args: dict[str, Any]):  # type: ignore[no-untyped-def]
        """The caching level named by args["level"] (dnslab.lab.levels.RunningLevel), or None."""
        return self.lab.levels.get(str(args["level"])) if args.get("level") else None

    def _resolver_of(self, args: dict[str, Any], command: str = "this command"):  # type: ignore[no-untyped-def]
        """The lab's resolver, or the further resolver args["level"] names."""
        level = self._level(args)
        return level.resolver if level is not None and level.resolver is not None else self._resolver(command)

    async def _levels(self, args: dict[str, Any], send: Callable[[dict[str, Any]], None]) -> Any:
        """Every caching level: level, kind, address, port, upstream (dnslab levels)."""
        rows = self.lab.levels.listing(self.lab.actual_port, self.lab.resolver_address)
        if args.get("stats"):
            for row, running in zip(rows, self.lab.levels):
                row["stats"] = running.stats()
        return {"levels": rows,
                "resolver": {"address": self.lab.resolver_address, "port": self.lab.actual_port}}

    async def _cache_show(self, args: dict[str, Any], send: Callable[[dict[str, Any]], None]) -> Any:
        level = self._level(args)
        if level is not None and level.level is not None:
            return _level_cache(level.level.cache, args)
        resolver = self._resolver_of(args, "cache show")
        under = _name(args["name"]) if args.get("name") else None
        # The web view asks for a page, not for every one of 100,000 entries each second.
        limit = validate.whole(args["limit"], "limit", 1, 10**9) if args.get("limit") is not None else None
        entries: list[dict[str, Any]] = []
        truncated = False
        for entry in resolver.cache.entries():
            if under is not None and not entry.name.is_subdomain(under):
                continue
            if limit is not None and len(entries) >= limit:
                truncated = True
                break
            entries.append({
                "name": entry.name.to_text(), "type": dns.rdatatype.to_text(entry.rdtype), "kind": str(entry.kind),
                "remaining": entry.remaining, "original_ttl": entry.original_ttl,
                "rank": entry.rank.name.lower() if entry.rank is not None else None, "stale": entry.stale,
                "source": entry.source,
                "records": entry.rrset.to_text().splitlines() if entry.rrset is not None else [],
            })
        entries.sort(key=lambda e: (dns.name.from_text(e["name"]), e["type"]))
        return {"entries": entries, "size": len(resolver.cache), "truncated": truncated}

    async def _cache_flush(self, args: dict[str, Any], send: Callable[[dict[str, Any]], None]) -> Any:
        level = self._level(args)
        if level is not None and level.level is not None:
            name = _name(args["name"]) if args.get("name") else None
            return {"flushed": level.level.cache.flush(name, tree=bool(args.get("tree")))}
        if self.lab.foreign_resolver is not None and level is None:  # Unbound: unbound-control flush
            name = _name(args["name"]).to_text() if args.get("name") else None
            said = await asyncio.to_thread(self.lab.foreign_resolver.flush, name, bool(args.get("tree")))
            return {"flushed": None, "program": self.lab.foreign_resolver.program.title, "said": said}
        resolver = self._resolver_of(args, "cache flush")
        if not args.get("name"):
            count = len(resolver.cache)
            resolver.cache.flush()
            return {"flushed": count}
        return {"flushed": resolver.cache.flush_name(_name(args["name"]), subtree=bool(args.get("tree")))}

    async def _servers(self, args: dict[str, Any], send: Callable[[dict[str, Any]], None]) -> Any:
        resolver = self._resolver("servers")
        now = resolver.clock.now()
        names = {plan.address: [n.to_text() for n in plan.names] for plan in self.lab.hierarchy.servers}
        sites = self._sites_seen()
        rows = []
        for view in sorted(resolver.infra.views(), key=lambda v: _sortable(v.address)):
            held = view.held_until is not None and view.held_until > now
            rows.append({
                "address": view.address, "names": names.get(view.address, []),
                "srtt_ms": None if view.srtt is None else to_ms(view.srtt),
                "timeout_ms": to_ms(view.timeout), "timeouts": view.timeouts,
                "consecutive_failures": view.consecutive_failures, "state": view.breaker.value,
                "held_for_s": round(view.held_until - now, 1) if held and view.held_until is not None else None,
                "edns": view.edns, "last_failure": view.last_failure.value if view.last_failure else None,
                "lame_zones": list(view.lame_zones),
                "lame": [{"zone": zone, "left_s": round(left, 1)} for zone, left in view.lame],
                "site": sites.get(view.address),
            })
        # Each secondary's copy of its zone (lab.toml [primaries]): serial, state, timers.
        return {"servers": rows, "secondaries": self.lab.replication.secondaries.to_json()}

    def _sites_seen(self) -> dict[str, str | None]:
        """Anycast addresses: the site that last answered the resolver's location (else the one that would)."""
        location = self.lab.geography.location
        found: dict[str, str | None] = {}
        for running in self.lab.servers:
            if running.router is not None:
                site = running.router.last.get(location) or getattr(running.router.serving(location), "name", None)
                found[running.plan.address] = site
        return found

    async def _stats(self, args: dict[str, Any], send: Callable[[dict[str, Any]], None]) -> Any:
        level = self._level(args)
        if level is not None:
            return level.stats()
        resolver = self._resolver("stats")
        return {**resolver.stats.to_json(), "cache_entries": len(resolver.cache)}


    async def _fault(self, args: dict[str, Any], send: Callable[[dict[str, Any]], None]) -> Any:
        """Checked against the registry (fault_kinds) first: a bad name or number changes nothing."""
        target = self.lab.fault(str(args.get("server", "")), str(args.get("kind", "")),
                                *fault_kinds.from_fields(args),
                                select=fault_kinds.selector_from_fields(args.get("select")))
        await self.lab.settled()  # `unreachable` (or `up` after it): the sockets are closed (open) on return
        if isinstance(target, Zone):  # a DNSSEC fault, on a zone's data
            return {"server": target.origin.to_text(), "zone": target.origin.to_text(),
                    "faults": self.lab.faults().get(target.origin.to_text(), [])}
        if not hasattr(target, "plan"):  # a caching level (dnslab.lab.levels.RunningLevel)
            if target.listener is not None:
                await target.listener.settled()
            return {"server": f"{target.name} ({target.address})", "level": target.name,
                    "faults": target.faulty.state.describe()}
        return {"server": target.plan.address, "faults": self.lab.faults().get(target.plan.address, [])}

    async def _endpoints(self, args: dict[str, Any], send: Callable[[dict[str, Any]], None]) -> Any:
        return {"steered": self.lab.endpoints()}

    async def _endpoint(self, args: dict[str, Any], send: Callable[[dict[str, Any]], None]) -> Any:
        """`dnslab endpoint ADDR down|up`: what each rule's next health check will see."""
        state = str(args.get("state", ""))
        if state not in ("down", "up"):
            raise DnslabError(f"endpoint state must be down or up, not {state!r}")
        address = str(args.get("address", ""))
        self.lab.endpoint(address, state == "up")
        return {"address": address, "state": state}

    async def _faults(self, args: dict[str, Any], send: Callable[[dict[str, Any]], None]) -> Any:
        return {"faults": self.lab.faults()}

    async def _fault_kinds(self, args: dict[str, Any], send: Callable[[dict[str, Any]], None]) -> Any:
        """Every fault kind and mending verb with its arguments and help: the web page's buttons."""
        return fault_kinds.listing()

    async def _queries(self, args: dict[str, Any], send: Callable[[dict[str, Any]], None]) -> Any:
        running = self.lab.server(str(args.get("server", "")))
        if args.get("reset"):
            running.faulty.reset_counts()
        counts = [{"name": name, "type": rdtype, "count": count}
                  for (name, rdtype), count in sorted(running.faulty.queries.items())]
        router = running.router
        if router is not None and args.get("reset"):
            router.counts.clear()
        sites = {site.name: router.counts[site.name] for site in router.sites} if router is not None else {}
        return {"server": running.plan.address, "total": sum(running.faulty.queries.values()), "queries": counts,
                "sites": sites}

    async def _record_set(self, args: dict[str, Any], send: Callable[[dict[str, Any]], None]) -> Any:
        values = args.get("values") or []
        if isinstance(values, str) or not isinstance(values, list) or not values:
            raise DnslabError("record set needs one or more values (a list: one record's data each)")
        ttl = validate.ttl(args.get("ttl", 300), "ttl")
        change = await self.lab.record_set(str(args.get("name", "")), str(args.get("type", "")),
                                           [str(v) for v in values], ttl, zone=_optional(args.get("zone")),
                                           add=bool(args.get("add")))
        return _record_change(change)

    async def _record_delete(self, args: dict[str, Any], send: Callable[[dict[str, Any]], None]) -> Any:
        change = await self.lab.record_delete(str(args.get("name", "")), str(args.get("type", "")),
                                              zone=_optional(args.get("zone")))
        return _record_change(change)

    async def _reload(self, args: dict[str, Any], send: Callable[[dict[str, Any]], None]) -> Any:
        change = await self.lab.reload()
        return {"reloaded": [zone.origin.to_text() for zone in change.zones], **change.to_json()}

    async def _clock(self, args: dict[str, Any], send: Callable[[dict[str, Any]], None]) -> Any:
        return self.lab.clock_status()

    async def _clock_advance(self, args: dict[str, Any], send: Callable[[dict[str, Any]], None]) -> Any:
        if not isinstance(self.lab.clock, FakeClock):
            raise DnslabError("the lab runs on real time; start it with dnslab up --fake-clock to move its clock")
        seconds = validate.clock_step(args.get("seconds"), "clock advance")
        if self.lab.clock.wall() + seconds + 86400 * 400 >= 2**32:
            # A year's margin for signatures made ahead: DNSSEC's times are 32-bit (RFC 4034 §3.1.5).
            raise DnslabError("clock advance: the lab's clock cannot pass the year 2105 "
                              "(DNSSEC signature times are 32-bit seconds)")
        self.lab.clock.advance(seconds)
        self.lab.refresh_signatures()  # a signed lab re-signs when the clock passes the refresh point
        return self.lab.clock_status()

    async def _query(self, args: dict[str, Any], send: Callable[[dict[str, Any]], None]) -> Any:
        """Ask the lab's resolver one question with `dnslab query`'s own client code, from this process.

        The question travels over loopback like any client's (fast path, cache,
        lookup and statistics all as usual).  The web view, which asks with this
        command, has its query tap record it and adds the recorded query's
        `query_id` to the answer, so the page can draw its trace.
        """
        from dnslab.services.query import format_dig, send_query, to_json

        # A real resolver (--resolver unbound) is asked the same way; its walk is not seen (no trace).
        limit = (self.lab.resolver_settings if self.lab.foreign is not None
                 else self._resolver().settings).query_time_limit
        qname, qtype = _question(args)
        assert self.lab.resolver_address is not None
        ask = functools.partial(send_query, qname.to_text(), dns.rdatatype.to_text(qtype), self.lab.resolver_address,
                                self.lab.actual_port, tcp=bool(args.get("tcp")),
                                recurse=args.get("recurse", True) is not False,
                                timeout=limit + 1)
        # The client blocks, and the resolver it asks runs on this loop: the client gets a thread.
        result = await asyncio.get_running_loop().run_in_executor(None, ask)
        return {"reply": to_json(result), "dig": format_dig(result)}


def _level_cache(cache: Any, args: dict[str, Any]) -> dict[str, Any]:
    """A caching level's entries in the shape of the resolver's (rank and source: none; stale: in grace)."""
    under = _name(args["name"]) if args.get("name") else None
    entries = [{"name": view.name, "type": view.type, "kind": view.kind, "remaining": view.remaining,
                "original_ttl": view.original_ttl, "kept_for": view.kept_for, "state": view.state,
                "hits": view.hits, "rank": None, "stale": view.state == "grace", "source": None,
                "records": view.records}
               for view in cache.entries() if under is None or dns.name.from_text(view.name).is_subdomain(under)]
    return {"entries": entries, "size": len(cache), "truncated": False}


def _optional(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)


def _record_change(change: "Change") -> dict[str, Any]:
    """A record change: the zone and its new serial, and the servers it started or stopped."""
    zone = change.zone
    return {"zone": zone.origin.to_text(), "serial": zone.soa[0].serial, **change.to_json()}  # type: ignore[attr-defined]


def _name(text: Any) -> dns.name.Name:
    return validate.name(text, "name")


def _question(args: dict[str, Any]) -> tuple[dns.name.Name, int]:
    try:
        qtype = dns.rdatatype.from_text(str(args.get("type") or "A"))
    except dns.exception.DNSException:
        raise DnslabError(f"unknown record type {args.get('type')!r}") from None
    return _name(args.get("name", "")), qtype


def _sortable(address: str) -> tuple[int, ...]:
    try:
        return tuple(socket.inet_pton(socket.AF_INET6 if ":" in address else socket.AF_INET, address))
    except OSError:
        return ()


class ControlClient:
    """A blocking client for the CLI (and for scripts that import dnslab)."""

    def __init__(self, state: LabState, timeout: float = 30.0) -> None:
        self.state = state
        self.timeout = timeout

    def call(self, command: str, args: dict[str, Any] | None = None,
             on_event: Callable[[dict[str, Any]], None] | None = None) -> Any:
        request = {"token": self.state.token, "command": command, "args": args or {}}
        # on_event runs outside the socket's error handling: a BrokenPipeError from printing
        # (`dnslab trace X | head -1`) is the caller's, not a failure to reach the lab.
        with contextlib.closing(self._exchange(request)) as messages:
            for message in messages:
                if "event" in message:
                    if on_event is not None:
                        on_event(message)
                    continue
                if not message.get("ok"):
                    raise DnslabError(message.get("error", "the lab refused the request"))
                return message.get("result")
        raise DnslabError("the lab closed the connection without an answer")

    def _exchange(self, request: dict[str, Any]) -> Iterator[dict[str, Any]]:
        """Send the request; yield each line of the answer as it arrives."""
        try:
            with socket.create_connection((self.state.control_address, self.state.control_port),
                                          timeout=self.timeout) as sock:
                sock.sendall(json.dumps(request).encode() + b"\n")
                with sock.makefile("r", encoding="utf-8") as lines:
                    for line in lines:
                        try:
                            message = json.loads(line)
                        except ValueError:
                            raise DnslabError(f"{self.state.control_address}:{self.state.control_port} is not a "
                                              "dnslab control endpoint (a stale state file?)") from None
                        yield message
        except (ConnectionRefusedError, FileNotFoundError):
            raise DnslabError("the lab is not running any more (its state file is stale): "
                              "start it with dnslab up") from None
        except socket.timeout:
            raise DnslabError(f"the lab did not answer within {self.timeout:g} s") from None
        except OSError as exc:
            raise DnslabError(f"cannot reach the lab's control endpoint: {exc}") from None

    def call_all(self, command: str, args: dict[str, Any] | None = None) -> list[Any]:
        """The command in every worker process (faults, records, flushes, the clock must reach all)."""
        return [ControlClient(state, self.timeout).call(command, args) for state in self.state.endpoints()]
