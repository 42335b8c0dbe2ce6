"""The lab: the hierarchy derived from the zone files, started and stopped as one unit.

The zones are the single source of truth.  A zone is served at the addresses
of its apex NS names (glue in the parent, or address records in any loaded
zone), exactly the facts a resolver would follow; the root zone's NS names and
their addresses are the root hints.  ``lab.toml`` holds settings only.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import shutil
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterable

import dns.exception
import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset

import dnslab
from dnslab.core import validate
from dnslab.core.clock import Clock, FakeClock, MonotonicClock, WallClock
from dnslab.core.clock import reader as clock_reader
from dnslab.resolution.options import load_toml, resolver_settings
from dnslab.lab.control import ControlServer, runtime_dir
from dnslab.lab.signed_zones import DnssecSettings, SignedZones, parse_unsigned
from dnslab.dnssec.keys import DEFAULT_ALGORITHM, algorithm_from_text
from dnslab.core.errors import BindError, ConfigError, DnslabError
from dnslab.services.resolver import RecursiveResolver
from dnslab.resolution.settings import ResolverSettings
from dnslab.authority.server import AuthoritativeServer
from dnslab.services.transport import DnsListener, Handler, Peer
from dnslab.services.shared_sockets import SharedAddress, SharedListener, supported as shared_supported
from dnslab.lab import sockets
from dnslab.services.capture import RESOLVER, UPSTREAM, Packet, Sink, Taps
from dnslab.lab import fault_kinds
from dnslab.lab.fault_kinds import Entry
from dnslab.lab.faults import FaultyServer
from dnslab.lab.scripted import ScriptedServer, ScriptHandler, load_handler
from dnslab.lab import programs
from dnslab.lab.foreign import ForeignResolver, ForeignServer, binary_of
from dnslab.lab import replication, split
from dnslab.lab.replication import Replication, ReplicationSettings
from dnslab.lab.anycast import Geography, parse as parse_geography
from dnslab.lab.sites import SiteRouter
from dnslab.lab.endpoints import Steering
from dnslab.lab.traffic import Traffic
from dnslab.authority.steering import Rule, parse as parse_steering
from dnslab.core.zone import Problem, Zone, changed_zone, load_zones
from dnslab.lab.hierarchy import Hierarchy, ServerPlan, derive_hierarchy, lame_delegations, zone_files
from dnslab.lab.level_plan import LevelSpec, check_addresses, default_levels, parse_levels
from dnslab.lab.levels import Levels, RunningLevel
from dnslab.resolution.hints import root_hints_text

log = logging.getLogger(__name__)

DEFAULT_PORT = 5300
# The sample hierarchy ships inside the package (package data), so an installed dnslab has it:
# `dnslab up` and the pytest plugin serve it by default; `dnslab init DIR` copies it out for editing.
SAMPLE_ZONES = Path(__file__).resolve().parents[1] / "zones"
DEFAULT_RESOLVER_ADDRESS = "127.0.0.1"
SETTINGS_FILE = "lab.toml"


@dataclass(frozen=True)
class LabSettings:
    """What lab.toml may say; the hierarchy itself is never described here."""

    port: int = DEFAULT_PORT
    start_down: tuple[str, ...] = ()
    resolver_address: str = DEFAULT_RESOLVER_ADDRESS
    resolver: ResolverSettings = field(default_factory=ResolverSettings)
    # DNSSEC (docs/DNSSEC.md): sign every zone at start-up, but those in dnssec_unsigned.
    dnssec: bool = False
    nsec3: bool = False
    keys_dir: Path | None = None  # default: .keys in the zone folder
    dnssec_unsigned: tuple[str, ...] = ()
    dnssec_algorithm: str = DEFAULT_ALGORITHM.name
    # Caching levels in front of the resolver (docs/LEVELS.md): browser -> os -> resolver, plus [levels.NAME].
    levels: tuple[LevelSpec, ...] = field(default_factory=default_levels)
    # [servers."NAME_OR_ADDRESS"] handler = "module:function": scripted servers (lab/scripted.py).
    handlers: tuple[tuple[str, str], ...] = ()
    # Real DNS software as lab members (docs/FOREIGN.md): `resolver = "unbound"`, `[servers."NAME"] program = "nsd"`.
    resolver_program: str = programs.DNSLAB
    server_programs: tuple[tuple[str, str], ...] = ()
    # TSIG keys and who may transfer zones (docs/ZONE_OPERATIONS.md).
    replication: ReplicationSettings = field(default_factory=ReplicationSettings)
    # Anycast (docs/ANYCAST.md): the lab's location, client locations, and the sites of servers.
    geography: Geography = field(default_factory=Geography)
    # Steered names (docs/STEERING.md): lab.toml's [steering] tables.
    steering: tuple[Rule, ...] = ()
    # `only = ["127.0.1.0/24"]`: this process serves only the lab servers in these networks (lab/split.py).
    only: split.Networks = ()
    # One UDP and one TCP socket for every server address (lab/sockets.py); None: when the limit asks for it.
    shared_sockets: bool | None = None

    @classmethod
    def load(cls, path: Path) -> "LabSettings":
        if not path.exists():
            return cls()
        data = load_toml(path)
        known = {"port", "start_down", "resolver_address", "resolver", "dnssec", "nsec3", "keys_dir",
                 "dnssec_unsigned", "dnssec_algorithm", "levels", "servers", "only", *replication.SETTINGS,
                 "location", "locations", "sites", "steering", "shared_sockets"}
        unknown = set(data) - known
        if unknown:
            raise ConfigError(f"{path}: unknown setting(s): {', '.join(sorted(unknown))} "
                              f"(known: {', '.join(sorted(known))})")
        port = validate.port(data.get("port", DEFAULT_PORT), f"{path}: port")
        down = data.get("start_down", [])
        if not isinstance(down, list) or not all(isinstance(item, str) for item in down):
            raise ConfigError(f"{path}: start_down must be a list of addresses or server names")
        address = data.get("resolver_address", DEFAULT_RESOLVER_ADDRESS)
        if not isinstance(address, str):
            raise ConfigError(f"{path}: resolver_address must be an address like '127.0.0.1'")
        options = data.get("resolver", {})
        program = programs.DNSLAB
        if isinstance(options, str):  # resolver = "unbound": that program, with no dnslab options
            program, options = options, {}
            programs.resolver_program(program, f"{path}: resolver")
        if not isinstance(options, dict):
            raise ConfigError(f"{path}: [resolver] must be a table of resolver options, or a program's name")
        resolver = resolver_settings(options, f"{path} [resolver]")
        for flag in ("dnssec", "nsec3", "shared_sockets"):
            if not isinstance(data.get(flag, False), bool):
                raise ConfigError(f"{path}: {flag} must be true or false")
        unsigned = data.get("dnssec_unsigned", [])
        if not isinstance(unsigned, list) or not all(isinstance(item, str) for item in unsigned):
            raise ConfigError(f"{path}: dnssec_unsigned must be a list of zone names")
        keys_dir = data.get("keys_dir")
        if keys_dir is not None and not isinstance(keys_dir, str):
            raise ConfigError(f"{path}: keys_dir must be a folder name")
        algorithm = data.get("dnssec_algorithm", DEFAULT_ALGORITHM.name)
        try:
            algorithm_from_text(algorithm)  # a bad name is an error now, not at signing time
        except ConfigError as exc:
            raise ConfigError(f"{path}: dnssec_algorithm: {exc}") from None
        levels = parse_levels(data.get("levels", {}), str(path), base=resolver)
        handlers, server_programs = _server_tables(data.get("servers", {}), path)
        only = data.get("only", [])
        if not isinstance(only, list):
            raise ConfigError(f"{path}: only must be a list of networks like [\"127.0.1.0/24\"]")
        return cls(port=port, start_down=tuple(down), resolver_address=address, resolver=resolver, levels=levels,
                   handlers=handlers,
                   dnssec=data.get("dnssec", False), nsec3=data.get("nsec3", False),
                   keys_dir=path.parent / keys_dir if keys_dir is not None else None,
                   dnssec_unsigned=tuple(unsigned), dnssec_algorithm=str(algorithm),
                   resolver_program=program, server_programs=server_programs,
                   replication=ReplicationSettings.from_toml(data, path),
                   geography=parse_geography(data, str(path)),
                   steering=tuple(parse_steering(_table(data, "steering", path), str(path))),
                   only=split.parse_networks(only, f"{path}: only"),
                   shared_sockets=data.get("shared_sockets"))



def _server_tables(servers: Any, path: Path) -> tuple[tuple[tuple[str, str], ...], tuple[tuple[str, str], ...]]:
    """[servers."ns1.example.com"] tables: `handler = "module:function"` scripts the server
    (lab/scripted.py), `program = "nsd"` serves its zones with real software (lab/foreign.py)."""
    if not isinstance(servers, dict) or not all(isinstance(v, dict) for v in servers.values()):
        raise ConfigError(f'{path}: [servers] must hold tables like [servers."ns1.example.com"] '
                          '(handler = "module:function" or program = "nsd")')
    handlers: list[tuple[str, str]] = []
    chosen: list[tuple[str, str]] = []
    for name, table in servers.items():
        where = f"{path}: [servers.{name!r}]"
        unknown = set(table) - {"handler", "program"}
        if unknown:
            raise ConfigError(f"{where}: unknown setting(s): {', '.join(sorted(unknown))} (known: handler, program)")
        if "handler" in table and "program" in table:
            raise ConfigError(f"{where}: a server is scripted (handler) or run by a program, not both")
        if "handler" in table:
            if not isinstance(table["handler"], str):
                raise ConfigError(f"{where} handler must be a string 'module:function'")
            handlers.append((name, table["handler"]))
        if "program" in table:
            if not isinstance(table["program"], str):
                raise ConfigError(f'{where} program must be a program\'s name, e.g. "nsd"')
            programs.server_program(table["program"], f"{where} program")
            chosen.append((name, table["program"]))
    return tuple(handlers), tuple(chosen)


def apply_handlers(lab: "Lab", settings: LabSettings, folder: Path) -> None:
    """lab.toml's scripted servers, imported (the zone folder first on the path) and put in place."""
    for name, spec in settings.handlers:
        where = f"{folder / SETTINGS_FILE}: [servers.{name!r}]"
        function = load_handler(spec, where, folder)
        if lab.hierarchy.find(name) is None:
            raise ConfigError(f"{where}: {name!r} is not a lab server's address or name")
        lab.set_handler(name, function)


def _table(data: dict[str, Any], key: str, path: Path) -> dict[str, Any]:
    table = data.get(key, {})
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: [{key}] must be a table")
    return table


def _data_problem(values: list[str], rdtype: str, exc: Exception) -> str:
    """dnspython's complaint, with what the data of this type looks like; or, when one value is
    really several records ("192.0.2.1 192.0.2.2"), how to give them."""
    try:
        kind = dns.rdatatype.from_text(rdtype)
    except dns.exception.DNSException:
        return str(exc)
    words = values[0].split() if len(values) == 1 else []
    if len(words) > 1:
        try:
            for word in words:
                dns.rdata.from_text(dns.rdataclass.IN, kind, word)
            return (f"{len(words)} records, not one: the data is the rest of the line, one record; "
                    "add the others with 'record add'")
        except (dns.exception.DNSException, ValueError):
            pass
    fields = getattr(dns.rdata.get_rdata_class(dns.rdataclass.IN, kind), "__slots__", ())
    return f"{exc} ({dns.rdatatype.to_text(kind)} data is: {' '.join(fields)})" if fields else str(exc)


def _near_miss(owner: dns.name.Name, parent: dns.name.Name, origins: list[dns.name.Name]) -> str:
    """", did you mean X?" when a lab zone's name is one typo away from the name's own zone."""
    import difflib

    wanted = dns.name.Name(owner.labels[-len(parent) - 1:])  # the zone the name would be in, one level down
    children = {origin.to_text(): origin for origin in origins if len(origin) == len(wanted)}
    close = difflib.get_close_matches(wanted.to_text(), list(children), n=1, cutoff=0.75)
    return f" (did you mean {close[0]}?)" if close else ""


@dataclass
class RunningServer:
    """A lab server: its zones, the faults in front of it, and its listener once started."""

    plan: ServerPlan
    server: AuthoritativeServer
    faulty: FaultyServer
    listener: DnsListener | SharedAddress | None = None
    router: SiteRouter | None = None  # an address served from sites (anycast): which one answers

    @property
    def up(self) -> bool:
        return self.listener is not None and not self.faulty.down and not self.faulty.state.unreachable

    @property
    def handler(self) -> ScriptHandler | None:
        """The scripted handler answering in place of the zone data (lab/scripted.py), or None."""
        inner = self.faulty.inner
        return inner.script if isinstance(inner, ScriptedServer) else None

    @handler.setter
    def handler(self, script: ScriptHandler | None) -> None:
        inner = self.faulty.inner
        zone = inner.zone if isinstance(inner, ScriptedServer) else inner
        self.faulty.inner = zone if script is None else ScriptedServer(script, zone, self.plan.address)


@dataclass
class Change:
    """What one change of the zone data did: the zones served anew, and the servers started or
    stopped because the hierarchy derived from the zones changed with them."""

    zones: list[Zone]
    started: list[ServerPlan] = field(default_factory=list)
    stopped: list[ServerPlan] = field(default_factory=list)
    added: list[dns.name.Name] = field(default_factory=list)    # zones new to the lab (reload)
    removed: list[dns.name.Name] = field(default_factory=list)  # zones gone from it (reload)
    warnings: list[str] = field(default_factory=list)           # new: unserved NS names, lame delegations
    dropped: int = 0  # reload: `record set/delete` changes replaced by the files' data

    @property
    def zone(self) -> Zone:
        """The zone a record change went to."""
        return self.zones[0]

    def to_json(self) -> dict[str, object]:
        def server(plan: ServerPlan) -> dict[str, object]:
            return {"address": plan.address, "names": [name.to_text() for name in plan.names],
                    "zones": [zone.origin.to_text() for zone in plan.zones]}
        return {"zones": [{"zone": zone.origin.to_text(), "serial": zone.soa[0].serial}  # type: ignore[attr-defined]
                          for zone in self.zones],
                "started": [server(plan) for plan in self.started],
                "stopped": [server(plan) for plan in self.stopped],
                "added": [origin.to_text() for origin in self.added],
                "removed": [origin.to_text() for origin in self.removed],
                "warnings": list(self.warnings), "dropped": self.dropped}


class Lab(Traffic):
    """Every server of the hierarchy in one process, each on its own loopback address."""

    def __init__(self, zones: list[Zone], port: int = DEFAULT_PORT, start_down: Iterable[str] = (),
                 resolver_address: str | None = DEFAULT_RESOLVER_ADDRESS,
                 resolver_settings: ResolverSettings | None = None, clock: Clock | None = None,
                 dnssec: bool | DnssecSettings = False, levels: tuple[LevelSpec, ...] | None = None,
                 resolver_program: str = programs.DNSLAB, server_programs: Iterable[tuple[str, str]] = (),
                 replication: ReplicationSettings | None = None, geography: Geography | None = None,
                 steering: Iterable[Rule] = (), only: split.Networks = (),
                 shared_sockets: bool | None = None) -> None:
        """*resolver_address* None runs the hierarchy alone, without the recursive resolver.

        *levels* are the caching levels in front of the resolver (None: the default chain,
        browser -> os -> resolver; () for none); a lab without a resolver runs none.
        *resolver_program* "unbound", "kresd" or "bind" runs that program as the resolver instead of
        dnslab's; *server_programs* (server name or address, "nsd" or "bind") serves those servers'
        zones with that program, behind the lab's fault layer (dnslab.lab.foreign).

        *clock* is the resolver's time source (TTLs, hold-downs); tests pass a FakeClock.
        *dnssec* signs the zones: True with the defaults (keys in the runtime folder),
        or DnssecSettings (keys folder, NSEC3, algorithm, zones left unsigned).
        *replication*: TSIG keys and the transfer policy (default: a fresh key, loopback may transfer).
        *geography* places clients and servers' sites (anycast; lab.toml's location, locations, sites).
        *steering* are the steered names (lab.toml's [steering]), answered by policy and health.
        *only*: serve only the lab servers in these networks, the rest being served by other processes
        (dnslab.lab.split); the whole hierarchy is still derived, for the resolver's root hints.
        *shared_sockets*: serve every server address from one UDP and one TCP socket (True), a pair
        per address (False), or the pair unless the addresses would not fit the open-files limit (None).
        """
        port = validate.port(port)  # the Python API too: 99999 must not wrap round to 34463
        wall = resolver_settings is not None and resolver_settings.ttl_clock == "wall"
        self.clock: Clock = clock or (WallClock() if wall else MonotonicClock())
        self._clock_origin = self.clock.now()
        self.signer: SignedZones | None = None
        if dnssec:
            settings = dnssec if isinstance(dnssec, DnssecSettings) else DnssecSettings(runtime_dir() / "keys")
            self.signer = SignedZones(settings, self.clock, {zone.origin: zone for zone in zones})
            signed = self.signer.sign_all()
            zones = [signed[zone.origin] for zone in zones]
        self.zones = zones
        self.hierarchy = derive_hierarchy(zones)
        if not self.hierarchy.servers:
            raise ConfigError("no zone has a name server with a 127.x.y.z address; nothing to serve")
        if dns.name.root not in {zone.origin for zone in zones}:
            raise ConfigError("no root zone (origin '.') among the zone files: the lab needs one for its root hints")
        if resolver_address is not None and self.hierarchy.server_at(resolver_address) is not None:
            raise ConfigError(f"the resolver address {resolver_address} is also a name server's address "
                              "in the zones; choose another resolver_address")
        self.geography = geography or Geography()
        for server in self.geography.sites:
            if self.hierarchy.find(server) is None:
                raise ConfigError(f"[sites.\"{server}\"]: not a lab server's address or NS name")
        # Which address each [sites] entry (an address or NS name) names, found once.
        self._sites_at = {self.hierarchy.find(server).address: sites  # type: ignore[union-attr]
                          for server, sites in self.geography.sites.items()}
        rules = list(steering)
        for rule in rules:
            self._check_steered(rule)
        self._steered_zones = {self._closest_origin(rule.name) for rule in rules}
        origins = {rule: self._closest_origin(rule.name) for rule in rules}
        signer = self.signer
        sign = None if signer is None else (lambda rule, rrset: signer.sign_rrset(origins[rule], rrset))
        self.steering = Steering(rules, self.geography, self.clock, sign) if rules else None
        self._probes: Any = None  # the TCP health checks' task, while the lab runs
        self._resign_timer: asyncio.TimerHandle | None = None
        self.only = only
        split.check_networks(only, [plan.address for plan in self.hierarchy.servers])
        if only and port == 0:
            raise ConfigError("--only needs a fixed --port: every part of a lab answers on the same port, "
                              "which port 0 would pick anew in each process")
        self.port = port
        self.bound_port: int | None = None
        down: set[str] = set()
        for item in start_down:
            plan = self.hierarchy.find(item)
            if plan is None:
                raise ConfigError(f"start_down: {item!r} is not a lab server's address or name")
            down.add(plan.address)
        self.foreign = programs.resolver_program(resolver_program) if resolver_address is not None else None
        if self.foreign is not None:
            programs.needed_port(self.foreign, port)
            binary_of(self.foreign)  # not installed: say so now, before anything listens
        self.foreign_resolver: ForeignResolver | None = None
        self.foreign_servers: dict[str, ForeignServer] = {}
        # The programs' files: by port, where a user finds them; a lab on a free port (tests) gets a
        # folder of its own, removed when it stops.
        self.foreign_dir = runtime_dir() / (f"foreign-{port}" if port else f"foreign-{os.getpid()}-{id(self):x}")
        for item, program_name in server_programs:
            plan = self.hierarchy.find(item)
            if plan is None:
                raise ConfigError(f"--server {item}={program_name}: {item!r} is not a lab server's address or name")
            server_program = programs.server_program(program_name)
            if not split.owns(only, plan.address):
                continue  # the process that serves this address runs the program
            self.foreign_servers[plan.address] = ForeignServer(
                server_program, plan.address, self.foreign_dir / f"{server_program.name}-{plan.address}")
        self.replication = Replication(self, replication or ReplicationSettings())
        self.servers: list[RunningServer] = []
        for plan in self.hierarchy.servers:
            if not split.owns(only, plan.address):
                continue  # another process serves it (--only)
            running = self._new_server(plan)
            if plan.address in down:  # "down" from the start: a fault like any other, so it can be lifted
                running.faulty.apply(fault_kinds.DOWN)
            self.servers.append(running)
        if self.replication.secondaries.primaries and only:
            raise ConfigError("lab.toml [primaries] and --only: a secondary's primary may be served by another "
                              "process, which this lab cannot follow; run zone transfers in a whole lab")
        if self.replication.secondaries.primaries:
            self.replication.secondaries.replan()  # [primaries] checked now; secondaries start empty
        # `record set/delete` changes since the start or the last reload, which a reload replaces.
        self.runtime_changes = 0
        self.zones_dir: Path | None = None
        # With worker processes (dnslab up --workers N) every process binds every address.
        self.reuse_port = False
        self.resolver_address = resolver_address
        self.resolver_settings = resolver_settings or ResolverSettings()
        anchor = self.signer.root_ds() if self.signer is not None else None
        if anchor is not None and not self.resolver_settings.trust_anchors:
            # A signed lab's resolver trusts the lab's root, unless told to trust something else.
            self.resolver_settings = replace(self.resolver_settings, trust_anchors=(anchor,))
        self.resolver: RecursiveResolver | None = None
        # Server choice and round robin draw from this when set: a seeded run (a scenario) repeats itself.
        self.resolver_rng: random.Random | None = None
        specs = (default_levels() if levels is None else tuple(levels)) if resolver_address is not None else ()
        check_addresses(specs, {plan.address: plan.name.to_text() for plan in self.hierarchy.servers},
                        resolver_address)
        self.levels = Levels(specs, self.clock)
        self.sockets = sockets.plan(shared_sockets, len(self.servers), sockets.descriptor_limit(),
                                    shared_supported(),
                                    self.foreign.title if self.foreign is not None else None, split=bool(only))
        self._shared: SharedListener | None = None
        self.control = ControlServer(self)
        self._resolver_listener: DnsListener | None = None
        self.taps = Taps()  # `dnslab capture`: every listener's traffic, while a capture runs

    def _new_server(self, plan: ServerPlan) -> RunningServer:
        # Each server names itself (NSID, CHAOS hostname.bind) as the root servers do: by its NS name.
        server = AuthoritativeServer(plan.zones, identity=plan.name.to_text(omit_final_dot=True),
                                     version=f"dnslab {dnslab.__version__}")
        # A signed lab re-signs when its clock passes the refresh point: on a timer with the real clock
        # (`_resign_on_time`), else checked by each query (a fake or wall clock jumps without a timer).
        handler = server.handle if self.signer is None or self._resigns_on_a_timer else self._fresh(server.handle)
        if plan.address in self.foreign_servers:
            handler = self.foreign_servers[plan.address].forward  # the real program answers, faults in front
        if self.steering is not None and any(zone.origin in self._steered_zones for zone in plan.zones):
            server.steering = self.steering  # a steered name's zone: its answers follow the policy
        sites = self._sites_at.get(plan.address)
        if sites is None:
            running = RunningServer(plan, server, FaultyServer(handler, seed=plan.address))  # loss is seeded, per server
        else:
            router = SiteRouter(sites, self.geography, plan.name.to_text(omit_final_dot=True), handler)  # type: ignore[arg-type]
            running = RunningServer(plan, server, FaultyServer(router.handle, seed=plan.address), router=router)
        self.replication.attach(running)
        return running

    @classmethod
    def from_folder(cls, zones_dir: Path, port: int | None = None, with_resolver: bool = True,
                    clock: Clock | None = None, dnssec: bool | None = None, nsec3: bool | None = None,
                    keys_dir: Path | None = None, anchor_file: Path | None = None,
                    resolver_program: str | None = None,
                    server_programs: Iterable[tuple[str, str]] = (),
                    only: split.Networks | None = None,
                    shared_sockets: bool | None = None) -> tuple["Lab", list[Problem]]:
        """A lab from a folder of *.zone files and its optional lab.toml (arguments left None: lab.toml's).

        A resolver program that cannot send its queries to another port (Unbound, kresd) runs the lab
        on port 53 unless *port* says otherwise (and then it is refused, saying why)."""
        settings = LabSettings.load(zones_dir / SETTINGS_FILE)
        zones, problems = load_zones(zone_files(zones_dir))
        signing = dnssec_settings(settings, zones_dir, dnssec, nsec3, keys_dir, anchor_file)
        program = settings.resolver_program if resolver_program is None else resolver_program
        chosen = programs.resolver_program(program) if with_resolver else None
        if port is None:
            port = 53 if chosen is not None and not chosen.any_port else settings.port
        lab = cls(zones, port=port, start_down=settings.start_down,
                  resolver_address=settings.resolver_address if with_resolver else None,
                  resolver_settings=settings.resolver, clock=clock, dnssec=signing or False,
                  levels=settings.levels, resolver_program=program,
                  server_programs=[*settings.server_programs, *server_programs],
                  replication=settings.replication, geography=settings.geography, steering=settings.steering,
                  only=settings.only if only is None else only,
                  shared_sockets=settings.shared_sockets if shared_sockets is None else shared_sockets)
        lab.zones_dir = zones_dir
        apply_handlers(lab, settings, zones_dir)
        return lab, problems

    # --- DNSSEC -----------------------------------------------------------------------------

    @property
    def dnssec(self) -> bool:
        return self.signer is not None

    @property
    def trust_anchor_file(self) -> Path | None:
        """Where the root's DS is written on start (None: the lab is not signed)."""
        return self.signer.anchor_file if self.signer is not None and self.signer.root_ds() else None

    def wall_time(self) -> float:
        """POSIX seconds by the lab clock, the time signatures are made against (a validator's 'now')."""
        return self.clock.wall()

    def refresh_signatures(self, force: bool = False) -> bool:
        """Sign every zone again if its signatures near their end (or *force*); True if it did."""
        if self.signer is None or not (force or self.signer.due()):
            return False
        self.replication.secondaries.before_resigning(self.signer.sources)
        signed = self.signer.sign_all()
        for zone in signed.values():
            self._serve(zone)
        return True

    @property
    def _resigns_on_a_timer(self) -> bool:
        """The real monotonic clock moves only forward with the loop's: a timer re-signs on time, and
        no query pays a check (`_fresh`)."""
        return type(self.clock) is MonotonicClock

    def _resign_on_time(self) -> None:
        """Re-sign if due (a `clock advance` may have done it already), and wait for the next point."""
        self._resign_timer = None
        if self.signer is None:
            return
        self.refresh_signatures()
        delay = max(0.0, self.signer.resign_at - self.clock.now())
        self._resign_timer = asyncio.get_running_loop().call_later(delay, self._resign_on_time)

    def _fresh(self, handle: Handler) -> Handler:
        """A server's handler that first re-signs when the lab clock passed the refresh point.

        One comparison per query; the work is done by the first query after the
        point (or by `clock advance`), so a fake clock needs no timer.
        """
        now = clock_reader(self.clock)

        def handle_fresh(wire: bytes, via_tcp: bool = False, peer: Peer | None = None,
                         identity: str | None = None):  # type: ignore[no-untyped-def]
            signer = self.signer
            if signer is not None and now() >= signer.resign_at:  # SignedZones.due, inlined: every query runs it
                self.refresh_signatures()
            return handle(wire, via_tcp, peer, identity)  # type: ignore[call-arg]
        return handle_fresh

    @property
    def root_hints(self) -> str:
        return root_hints_text(self.hierarchy.root_hints)

    # --- changing the lab while it runs (the CLI, control endpoint and pytest plugin all come here)

    def server(self, name_or_address: str) -> RunningServer:
        plan = self.hierarchy.find(name_or_address)
        if plan is None:
            known = ", ".join(p.address for p in self.hierarchy.servers)
            raise DnslabError(f"no lab server {name_or_address!r} (addresses: {known}; NS names work too)")
        found = next((running for running in self.servers if running.plan is plan), None)
        if found is None:
            networks = ", ".join(str(network) for network in self.only)
            raise DnslabError(f"{plan.address} is served by another process of this lab (this one: --only {networks})")
        return found

    def set_handler(self, name_or_address: str, script: ScriptHandler | None) -> RunningServer:
        """Script a server's answers (None: the zone data answers again); its faults stay in front."""
        running = self.server(name_or_address)
        running.handler = script
        return running

    def capture(self, target: str, sink: Sink) -> Callable[[], None]:
        """Send the packets of *target* (a server's name or address, `resolver`, or `all`) to *sink*
        until the returned function is called (services/capture.py says where packets are seen).

        `all` is every listener, lab servers and the resolver's clients: the resolver's queries
        upstream are seen once, where the servers receive them.  `resolver` is its clients'
        side and its own queries upstream (UDP where it sends them, TCP where the server gets them).
        """
        if target == "all":
            def wanted(packet: Packet) -> bool:
                return packet.at != UPSTREAM
        elif target == RESOLVER:
            if self.resolver_address is None:
                raise DnslabError("this lab runs without a resolver (dnslab up --no-resolver)")

            resolver = self.resolver

            def wanted(packet: Packet) -> bool:
                # Its TCP queries upstream are taken where the lab server sees them (services/upstream.py).
                return packet.at in (RESOLVER, UPSTREAM) or (
                    packet.tcp and resolver is not None
                    and (packet.src in resolver.upstream.tcp_endpoints or packet.dst in resolver.upstream.tcp_endpoints))
        else:
            address = self.server(target).plan.address

            def wanted(packet: Packet) -> bool:
                return packet.at == address

        def filtered(packet: Packet) -> None:
            if wanted(packet):
                sink(packet)
        self.taps.subscribe(filtered)
        if self.resolver is not None:
            self.resolver.upstream.tap = self.taps.emit

        def stop() -> None:
            self.taps.unsubscribe(filtered)
            if self.resolver is not None and not self.taps.sinks:
                self.resolver.upstream.tap = None
        return stop

    def fault(self, name_or_address: str, kind: Entry | str, value: float | None = None,
              jitter: float | None = None,
              select: fault_kinds.Selector | None = None) -> RunningServer | Zone | RunningLevel:
        """A server fault (returns the server) or, for the dnssec-* kinds, a zone fault (returns the zone).

        `clear` given a zone name lifts that zone's DNSSEC faults.  Names and arguments are
        checked against the registry (fault_kinds) before anything changes.  *select* narrows a
        server fault to some queries (fault_kinds.Selector).
        """
        entry, args = fault_kinds.order(kind, (value, jitter))
        fault_kinds.check_selectable(entry, select)
        if "@" in name_or_address:
            return self.site_fault(name_or_address, entry)
        target = fault_kinds.Target
        level = self.levels.find(name_or_address)
        if level is not None and not self._is_server(name_or_address):
            return self.level_fault(level, entry, *args, select=select)
        is_zone, is_server = self._is_zone(name_or_address), self._is_server(name_or_address)
        if target.SERVER not in entry.targets and is_server and not is_zone:
            raise DnslabError(f"{entry.name} breaks a zone, not a server: dnslab fault ZONE {entry.usage}")
        if target.SERVER not in entry.targets or (target.ZONE in entry.targets and is_zone):
            return self.zone_fault(name_or_address, entry)
        if is_zone and not is_server:
            raise DnslabError(f"{entry.name} is for a server, and {name_or_address} is a zone "
                              f"(its faults: {', '.join(k.name for k in fault_kinds.kinds(target.ZONE))}, clear)")
        running = self.server(name_or_address)
        running.faulty.apply(entry, *args, select=select)
        if entry is fault_kinds.CLEAR and running.router is not None:
            running.router.announce()  # every site's route too
        if entry is fault_kinds.CLEAR and self.resolver is not None:
            # The server is mended: its lame marks would otherwise keep it passed over for lame_ttl.
            self.resolver.infra.forget_lame(running.plan.address)
        return running

    def level_fault(self, level: RunningLevel, entry: Entry, *args: float,
                    select: fault_kinds.Selector | None = None) -> RunningLevel:
        """A server fault on a caching level (down, unreachable, delay...): its clients fail over as stubs do."""
        if fault_kinds.Target.SERVER not in entry.targets:
            raise DnslabError(f"{entry.name} breaks a zone; {level.name} is a caching level")
        level.faulty.apply(entry, *args, select=select)
        return level

    def zone_fault(self, zone_name: str, kind: Entry | str) -> Zone:
        """Make a signed zone bogus (dnssec-bad-sig, -expired, -missing-ds, -wrong-ds), or `clear` it."""
        entry, _ = fault_kinds.order(kind)
        if fault_kinds.Target.ZONE not in entry.targets:
            raise DnslabError(f"{entry.name} is a server fault: dnslab fault SERVER {entry.usage}")
        if self.signer is None:
            raise DnslabError("the lab is not signed: start it with dnslab up --dnssec for DNSSEC faults")
        origin = self._origin(zone_name)
        if entry is fault_kinds.CLEAR:
            changed = self.signer.clear(origin)
        else:
            changed = self.signer.apply(origin, entry)  # type: ignore[arg-type]
        for name in changed:
            self._serve(self.signer.resign(name))
        return next(zone for zone in self.zones if zone.origin == origin)

    def _is_server(self, text: str) -> bool:
        return self.hierarchy.find(text) is not None

    def _is_zone(self, text: str) -> bool:
        try:
            return dns.name.from_text(text) in {zone.origin for zone in self.zones}
        except dns.exception.DNSException:
            return False

    def _origin(self, text: str) -> dns.name.Name:
        try:
            origin = dns.name.from_text(text)
        except dns.exception.DNSException as exc:
            raise DnslabError(f"not a zone name: {text!r} ({exc})") from None
        if origin not in {zone.origin for zone in self.zones}:
            raise DnslabError(f"{origin} is not a zone of this lab")
        return origin

    def clock_status(self) -> dict[str, Any]:
        """What `dnslab clock` shows: real or fake, lab seconds since the lab was made, how far a fake clock
        was advanced, and the lab's date (what signatures are checked against).  `now` is the raw reading."""
        fake = isinstance(self.clock, FakeClock)
        now = self.clock.now()
        return {"fake": fake, "now": now, "since_start_s": round(now - self._clock_origin, 3),
                "advanced_s": round(self.clock.advanced, 3) if fake else 0.0,  # type: ignore[attr-defined]
                "wall": self.clock.wall(),
                # A real resolver keeps the machine's time: the lab clock moves the servers' side only.
                **({"outside": self.foreign.title} if self.foreign is not None else {})}

    def faults(self) -> dict[str, list[str]]:
        """The faults in force, by server address, then DNSSEC faults by zone name (none: left out)."""
        found = {r.plan.address: r.faulty.state.describe() + (r.router.describe() if r.router else [])
                 for r in self.servers if r.faulty.state.describe() or (r.router and r.router.withdrawn)}
        found.update({f"{r.name} ({r.address})": r.faulty.state.describe() for r in self.levels
                      if r.faulty.state.describe()})
        if self.signer is not None:
            found.update(self.signer.describe())
        return found

    async def record_set(self, name: str, rdtype: str, values: Iterable[str], ttl: int = 300,
                         zone: str | None = None, add: bool = False) -> Change:
        """Replace (or add) one RRset, each value one record's data; every server of its zone answers
        with it at once. *add* adds the records to the RRset instead (nsupdate's `update add`).

        The RRset goes to the closest lab zone of *name*, or to *zone* when given: that
        is how a parent's delegation (NS and glue) is changed. Servers start and stop
        as the changed NS and address records say (see `_apply`).
        """
        owner, source = self._zone_of(name, zone)
        values = list(values)
        try:
            kind = dns.rdatatype.from_text(rdtype)
        except dns.exception.DNSException:
            raise DnslabError(f"unknown record type {rdtype!r}") from None
        try:
            # relativize=False: names in the data stay absolute, as the zone holds them.
            rrset = dns.rrset.from_text_list(owner, ttl, "IN", kind, values, origin=source.origin,
                                             relativize=False)
        except (dns.exception.DNSException, ValueError) as exc:
            shown = " | ".join(values)
            raise DnslabError(f"bad record {name} {rdtype} {shown}: {_data_problem(values, rdtype, exc)}") from None
        if add and (existing := source.get(owner, kind)) is not None:
            merged = dns.rrset.RRset(owner, rrset.rdclass, kind)
            for rdata in (*existing, *rrset):
                merged.add(rdata, ttl)  # one TTL for the RRset (RFC 2181 §5.2): the new one, as BIND does
            rrset = merged
        change = await self._apply([changed_zone(source, rrset=rrset)])
        self.runtime_changes += 1
        return change

    async def record_delete(self, name: str, rdtype: str, zone: str | None = None) -> Change:
        owner, source = self._zone_of(name, zone)
        try:
            kind = dns.rdatatype.from_text(rdtype)
        except dns.exception.DNSException:
            raise DnslabError(f"unknown record type {rdtype!r}") from None
        change = await self._apply([changed_zone(source, delete=(owner, kind))])
        self.runtime_changes += 1
        return change

    async def reload(self) -> Change:
        """Re-read the zone files from disk: zones new and gone, servers started and stopped.

        Every `record set/delete` change is replaced by what the files say; the
        result counts them (`dropped`), as nothing else would tell.
        """
        if self.zones_dir is None:
            raise DnslabError("this lab was not started from a folder of zone files")
        fresh, _ = load_zones(zone_files(self.zones_dir))
        change = await self._apply(fresh, complete=True)
        change.dropped, self.runtime_changes = self.runtime_changes, 0
        return change

    def _sources(self) -> list[Zone]:
        """The zones as written (unsigned): records are changed there, and a signed lab signs them."""
        return list(self.signer.sources.values()) if self.signer is not None else list(self.zones)

    def _zone_of(self, name: str, zone: str | None = None) -> tuple[dns.name.Name, Zone]:
        """The owner name and the zone a change of it goes to: *zone*, else the closest lab zone.

        A name whose closest zone is the root or a TLD, below its apex, is refused
        without *zone*: the typo `www.exmaple.com` would otherwise add data to
        `com.` without a word. Root and TLD zones hold delegations and glue, which
        are changed on purpose, by naming the zone.
        """
        try:
            owner = dns.name.from_text(name)
        except dns.exception.DNSException as exc:
            raise DnslabError(f"not a domain name: {name!r} ({exc})") from None
        sources = self._sources()
        if zone is not None:
            origin = self._origin(zone)
            if not owner.is_subdomain(origin):
                raise DnslabError(f"{owner} is not in zone {origin}")
            return owner, next(z for z in sources if z.origin == origin)
        zones = [z for z in sources if owner.is_subdomain(z.origin)]
        if not zones:
            raise DnslabError(f"{owner} is in no zone of this lab")
        closest = max(zones, key=lambda z: len(z.origin))
        if len(closest.origin) <= 2 and owner != closest.origin:
            what = "the root zone" if closest.origin == dns.name.root else f"the TLD zone {closest.origin}"
            hint = _near_miss(owner, closest.origin, [z.origin for z in sources])
            raise DnslabError(f"{owner} is in no lab zone below {what}{hint}; to change {what} itself "
                              f"(a delegation, glue), name the zone: --zone {closest.origin}")
        return owner, closest

    async def _apply(self, changed: list[Zone], complete: bool = False) -> Change:
        """Serve new versions of zones (with *complete*, the lab's whole new set) and make the
        servers follow the hierarchy derived from them.

        The hierarchy is derived from the unsigned zones (signing adds no NS or
        address), checked, and the new servers bound before anything is served:
        a change that cannot be made leaves the lab as it was.
        """
        current = {zone.origin: zone for zone in self._sources()}
        fresh = {zone.origin: zone for zone in changed}
        candidate = fresh if complete else {**current, **fresh}
        hierarchy = self._checked_hierarchy(candidate)
        running_at = {running.plan.address: running for running in self.servers}
        mine = [plan for plan in hierarchy.servers if split.owns(self.only, plan.address)]
        started = [plan for plan in mine if plan.address not in running_at]
        new_servers = await self._bind_new(started)
        old_warnings = set(self.hierarchy.warnings) | set(lame_delegations(self.zones, self.hierarchy))
        served = self._signed(candidate, fresh, complete)
        self.zones = [served[origin] for origin in candidate]
        for plan in hierarchy.servers:  # every plan, also those other processes serve (--only)
            plan.zones = [served[zone.origin] for zone in plan.zones]
        servers = []
        for plan in mine:
            running = running_at.get(plan.address) or new_servers[plan.address]
            running.plan = plan
            wanted = {zone.origin for zone in plan.zones}
            if complete or set(running.server.authority.zones) != wanted:
                running.server.set_zones(plan.zones)
            else:
                for origin in wanted & set(fresh):
                    running.server.replace_zone(served[origin])
            servers.append(running)
        stopped = [running for address, running in running_at.items() if hierarchy.server_at(address) is None]
        self.servers = servers
        previous, self.hierarchy = self.hierarchy, hierarchy
        for running in stopped:
            if running.listener is not None:
                await running.listener.stop()
                running.listener = None
        if self.resolver is not None and hierarchy.root_hints and hierarchy.root_hints != previous.root_hints:
            self.resolver.hints = list(hierarchy.root_hints)  # what a resolver primes from next
            self.levels.set_hints(hierarchy.root_hints)
        if self.replication.secondaries.primaries:
            self.replication.secondaries.replan(strict=False)  # servers new to a replicated zone: secondaries
        warnings = [w for w in (*hierarchy.warnings, *lame_delegations(self.zones, hierarchy)) if w not in old_warnings]
        for address, foreign in self.foreign_servers.items():  # a real program keeps what it loaded at start
            for origin in fresh:
                serving = running_at.get(address)
                if serving is not None and any(zone.origin == origin for zone in serving.plan.zones):
                    warnings.append(f"{origin} on {address} is served by {foreign.program.title}, which keeps the "
                                    "zone it loaded at start: this change does not reach it")
        for warning in warnings:
            log.warning("%s", warning)
        return Change(zones=[served[origin] for origin in fresh], started=started,
                      stopped=[running.plan for running in stopped],
                      added=[origin for origin in candidate if origin not in current],
                      removed=[origin for origin in current if origin not in candidate], warnings=warnings)

    def _checked_hierarchy(self, zones: dict[dns.name.Name, Zone]) -> Hierarchy:
        """The hierarchy these zones give, if the lab can run it (else a DnslabError, nothing changed)."""
        if dns.name.root not in zones:
            raise DnslabError("no root zone (origin '.') among the zone files: the lab needs one for its root hints")
        hierarchy = derive_hierarchy(zones.values())
        if not hierarchy.servers:
            raise DnslabError("after this change no zone would have a name server with a 127.x.y.z address")
        if not hierarchy.root_hints and self.hierarchy.root_hints:
            raise DnslabError("after this change the root's name servers would have no address: "
                              "the resolver could not start from the root")
        if self.resolver_address is not None and hierarchy.server_at(self.resolver_address) is not None:
            raise DnslabError(f"a name server's address would be {self.resolver_address}, where the lab's "
                              "resolver listens")
        for level in self.levels.specs:
            if hierarchy.server_at(level.address) is not None:
                raise DnslabError(f"a name server's address would be {level.address}, where level {level.name} "
                                  "listens")
        return hierarchy

    async def _bind_new(self, plans: list[ServerPlan]) -> dict[str, RunningServer]:
        """Servers for new addresses, listening at once if the lab runs; all or none of them."""
        new_servers: dict[str, RunningServer] = {}
        try:
            for plan in plans:
                running = new_servers[plan.address] = self._new_server(replace(plan, zones=[]))
                if self.bound_port is not None:
                    await self._listen(running, self.bound_port)
        except BaseException:
            for running in new_servers.values():
                if running.listener is not None:
                    await running.listener.stop()
            raise
        return new_servers

    def _signed(self, candidate: dict[dns.name.Name, Zone], fresh: dict[dns.name.Name, Zone],
                complete: bool) -> dict[dns.name.Name, Zone]:
        """The zones to serve: as they are, or in a signed lab the changed ones signed again."""
        if self.signer is None:
            return dict(candidate)
        if complete:
            self.signer.set_sources(candidate.values())
            return self.signer.sign_all()
        self.signer.sources.update(fresh)
        served = {zone.origin: zone for zone in self.zones}
        served.update({origin: self.signer.resign(origin) for origin in fresh})
        return served

    def _serve(self, zone: Zone) -> Zone:
        self.zones = [zone if z.origin == zone.origin else z for z in self.zones]
        for running in self.servers:
            if zone.origin in running.server.authority.zones:
                running.server.replace_zone(zone)
        return zone

    async def start(self, attempts: int = 20) -> None:
        """Bind every server that is not down; port 0 means one free port shared by all.

        With port 0 the first server picks a port and the others follow; if one
        of them finds it taken, everything is released and another port tried,
        a bounded number of times.
        """
        for attempt in range(attempts if self.port == 0 else 1):
            try:
                await self._bind_all(self.port)
                await self.replication.secondaries.start()  # secondaries transfer before the lab is up
                if self.signer is not None and self._resigns_on_a_timer:
                    self._resign_on_time()
                return
            except BindError:
                await self.stop()
                if self.port != 0 or attempt == attempts - 1:
                    raise
        raise DnslabError("could not find a free port for the lab")  # pragma: no cover

    async def _bind_all(self, port: int) -> None:
        if self.signer is not None:
            self.signer.write_anchor()
        for address, foreign in self.foreign_servers.items():  # before the listeners that forward to them
            plan = self.hierarchy.server_at(address)
            await asyncio.to_thread(foreign.start, plan.zones if plan is not None else [], self.signer is not None)
        if self.sockets.shared:
            self._shared = SharedListener(port, reuse_port=self.reuse_port)
            await self._shared.start()
            port = self._shared.port
        for running in self.servers:
            await self._listen(running, port)
            port = running.listener.port  # type: ignore[union-attr]
        # Beside the shared sockets the lab's own listeners on the port need SO_REUSEPORT (services/shared_sockets.py).
        reuse_port = self.reuse_port or self._shared is not None
        if self.resolver_address is not None and self.foreign is not None:
            self.foreign_resolver = self._foreign_resolver(self.foreign, port)
            await asyncio.to_thread(self.foreign_resolver.start)
        elif self.resolver_address is not None:
            # The lab's servers answer on the lab port, so that is the resolver's upstream port.
            settings = replace(self.resolver_settings, upstream_port=port)
            self.resolver = RecursiveResolver(self.hierarchy.root_hints, settings, clock=self.clock,
                                              rng=self.resolver_rng)
            tapped = self.taps.wrap(self.resolver.handle, self.resolver_address, RESOLVER)
            self._resolver_listener = DnsListener(self.resolver_address, port, tapped, reuse_port=reuse_port)
            await self._resolver_listener.start()
            tapped.port = self._resolver_listener.port
            tapped.route_udp(self._resolver_listener.set_udp_handler)
            if self.taps.sinks:
                self.resolver.upstream.tap = self.taps.emit
        if self.resolver_address is not None:  # the levels sit in front of whichever resolver runs
            await self.levels.start(port, self.resolver_address, replace(self.resolver_settings, upstream_port=port),
                                    self.hierarchy.root_hints, reuse_port=reuse_port)
        await self.control.start()
        if self.steering is not None:
            self._probes = asyncio.get_running_loop().create_task(self.steering.probe_forever())
        self.bound_port = port

    def _foreign_resolver(self, program: programs.Program, port: int) -> ForeignResolver:
        """Unbound, kresd or BIND on the resolver's address and the lab's port, told about the lab."""
        assert self.resolver_address is not None
        workdir = self.foreign_dir / program.name
        anchors = self.resolver_settings.trust_anchors
        cache = self.resolver_settings.cache
        setup = programs.ResolverSetup(
            self.resolver_address, port, workdir, workdir / "root.hints", anchors=anchors,
            anchor_file=self.trust_anchor_file if anchors else None,
            cache_mb=programs.cache_megabytes(cache.max_entries), max_ttl=cache.max_ttl, min_ttl=cache.min_ttl,
            negative_max_ttl=cache.negative_max_ttl)
        return ForeignResolver(program, setup, root_hints_text(self.hierarchy.root_hints))

    async def _listen(self, running: RunningServer, port: int) -> None:
        """Bind a server's address; its `unreachable` fault closes and reopens these sockets."""
        tapped = self.taps.wrap(running.faulty.handle, running.plan.address, running.plan.address)
        listener: DnsListener | SharedAddress
        if self._shared is not None:
            listener = self._shared.attach(running.plan.address, tapped)
        else:
            listener = DnsListener(running.plan.address, port, tapped, reuse_port=self.reuse_port)
            await listener.start()
        tapped.port = listener.port
        tapped.route_udp(listener.set_udp_handler)
        running.listener = listener
        running.faulty.on_reachable = listener.set_listening
        if running.faulty.state.unreachable:
            listener.set_listening(False)
            await listener.settled()

    async def settled(self) -> None:
        """Wait until every server's sockets match its faults (an `unreachable` fault switched just now)."""
        for running in self.servers:
            if running.listener is not None:
                await running.listener.settled()

    async def stop(self) -> None:
        if self._resign_timer is not None:
            self._resign_timer.cancel()
            self._resign_timer = None
        await self.replication.secondaries.stop()
        if self._probes is not None:
            self._probes.cancel()
            self._probes = None
        await self.control.stop()
        await self.levels.stop()
        if self.foreign_resolver is not None:
            await asyncio.to_thread(self.foreign_resolver.stop)
        for foreign in self.foreign_servers.values():
            await asyncio.to_thread(foreign.stop)
        if self.port == 0 and (self.foreign is not None or self.foreign_servers):
            shutil.rmtree(self.foreign_dir, ignore_errors=True)
        if self._resolver_listener is not None:
            await self._resolver_listener.stop()
            self._resolver_listener = None
        for running in self.servers:
            running.faulty.on_reachable = None
            if running.listener is not None:
                await running.listener.stop()
                running.listener = None
        if self._shared is not None:
            await self._shared.stop()
            self._shared = None

    @property
    def actual_port(self) -> int:
        """The port in use: the one asked for, or the one picked for port 0."""
        return self.bound_port if self.bound_port is not None else self.port

    async def __aenter__(self) -> "Lab":
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()


_PARSED: dict[Path, list[Zone]] = {}


def shared_zones(folder: Path) -> list[Zone]:
    """A folder's zones, parsed once per process: zones are never mutated, only replaced, so the labs
    a test suite or a scenario starts one after another may share them (problems: see check-zone)."""
    folder = folder.resolve()
    if folder not in _PARSED:
        _PARSED[folder], _ = load_zones(zone_files(folder))
    return _PARSED[folder]


def dnssec_settings(settings: LabSettings, zones_dir: Path, dnssec: bool | None = None, nsec3: bool | None = None,
                    keys_dir: Path | None = None, anchor_file: Path | None = None) -> DnssecSettings | None:
    """Signing settings from lab.toml, with what the caller says (flags) winning; None: unsigned."""
    if not (settings.dnssec if dnssec is None else dnssec):
        return None
    return DnssecSettings(
        keys_dir=keys_dir or settings.keys_dir or default_keys_dir(zones_dir),
        nsec3=settings.nsec3 if nsec3 is None else nsec3,
        algorithm=algorithm_from_text(settings.dnssec_algorithm),
        unsigned=parse_unsigned(settings.dnssec_unsigned, str(zones_dir / SETTINGS_FILE)),
        anchor_file=anchor_file)


def default_keys_dir(zones_dir: Path) -> Path:
    """.keys in the zone folder, but never inside the installed package: the sample's keys go
    to the per-user runtime folder (site-packages may be read-only, and is no place for secrets)."""
    if zones_dir.resolve() == SAMPLE_ZONES:
        return runtime_dir() / "keys"
    return zones_dir / ".keys"


def example_walk(lab: Lab) -> tuple[dns.name.Name, list[ServerPlan]] | None:
    """A name worth digging for, and the running servers a resolver would ask, root first.

    Prefers a www name in the shallowest authoritative zone, so the printed dig
    lines show a referral at each level and then an answer.
    """
    up = [r.plan for r in lab.servers if r.up]
    if not any(zone.origin == dns.name.root for plan in up for zone in plan.zones):
        return None  # a part of a split lab without the root (--only) has no walk of its own; do not search one
    candidates = sorted((z for z in lab.zones if len(z.origin) >= 3), key=lambda z: (len(z.origin), z.origin))
    for zone in candidates:
        owners = [rrset.name for rrset in zone.rrsets()
                  if rrset.rdtype == dns.rdatatype.A and not any(rrset.name.is_subdomain(c) for c in zone.cuts)]
        owners.sort(key=lambda name: name.labels[0].lower() != b"www")
        if not owners:
            continue
        walk: list[ServerPlan] = []
        for origin in sorted((z.origin for z in lab.zones if owners[0].is_subdomain(z.origin)), key=len):
            plan = next((p for p in up if any(z.origin == origin for z in p.zones)), None)
            if plan is None:
                break
            walk.append(plan)
        else:
            return owners[0], walk
    return None
