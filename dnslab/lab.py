"""The lab: the hierarchy derived from the zone files, started and stopped as one unit.

The zones are the single source of truth.  A zone is served at the addresses
of its apex NS names (glue in the parent, or address records in any loaded
zone), exactly the facts a resolver would follow; the root zone's NS names and
their addresses are the root hints.  ``lab.toml`` holds settings only.
"""

from __future__ import annotations

import enum
import ipaddress
import logging
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterable

import dns.exception
import dns.name
import dns.rdatatype
import dns.rrset

from dnslab.clock import Clock, MonotonicClock, WallClock
from dnslab.config import load_toml, resolver_settings
from dnslab.control import ControlServer, runtime_dir
from dnslab.dnssec_lab import ZONE_FAULTS, DnssecSettings, SignedZones, ZoneFault, parse_unsigned
from dnslab.keys import DEFAULT_ALGORITHM, algorithm_from_text
from dnslab.errors import BindError, ConfigError, DnslabError
from dnslab.resolver import RecursiveResolver, ResolverSettings
from dnslab.server import AuthoritativeServer
from dnslab.transport import DnsListener, Handler, Peer
from dnslab.faults import FaultKind, FaultyServer
from dnslab.zone import Problem, Zone, changed_zone, load_zones

log = logging.getLogger(__name__)

DEFAULT_PORT = 5300
DEFAULT_RESOLVER_ADDRESS = "127.0.0.1"
SETTINGS_FILE = "lab.toml"
# Root hints carry the TTL of the real named.root file (RFC 8109 priming).
HINTS_TTL = 3600000
_LOOPBACK = ipaddress.ip_network("127.0.0.0/8")


class Role(enum.Enum):
    ROOT = "root"
    TLD = "TLD"
    AUTHORITATIVE = "authoritative"


@dataclass(frozen=True)
class LabSettings:
    """What lab.toml may say; the hierarchy itself is never described here."""

    port: int = DEFAULT_PORT
    start_down: tuple[str, ...] = ()
    resolver_address: str = DEFAULT_RESOLVER_ADDRESS
    resolver: ResolverSettings = field(default_factory=ResolverSettings)
    # DNSSEC (README "DNSSEC"): sign every zone at start-up, but those in dnssec_unsigned.
    dnssec: bool = False
    nsec3: bool = False
    keys_dir: Path | None = None  # default: .keys in the zone folder
    dnssec_unsigned: tuple[str, ...] = ()
    dnssec_algorithm: str = DEFAULT_ALGORITHM.name

    @classmethod
    def load(cls, path: Path) -> "LabSettings":
        if not path.exists():
            return cls()
        data = load_toml(path)
        known = {"port", "start_down", "resolver_address", "resolver", "dnssec", "nsec3", "keys_dir",
                 "dnssec_unsigned", "dnssec_algorithm"}
        unknown = set(data) - known
        if unknown:
            raise ConfigError(f"{path}: unknown setting(s): {', '.join(sorted(unknown))} "
                              f"(known: {', '.join(sorted(known))})")
        port = data.get("port", DEFAULT_PORT)
        if not isinstance(port, int) or not 0 <= port <= 65535:
            raise ConfigError(f"{path}: port must be a number from 0 to 65535, not {port!r}")
        down = data.get("start_down", [])
        if not isinstance(down, list) or not all(isinstance(item, str) for item in down):
            raise ConfigError(f"{path}: start_down must be a list of addresses or server names")
        address = data.get("resolver_address", DEFAULT_RESOLVER_ADDRESS)
        if not isinstance(address, str):
            raise ConfigError(f"{path}: resolver_address must be an address like '127.0.0.1'")
        options = data.get("resolver", {})
        if not isinstance(options, dict):
            raise ConfigError(f"{path}: [resolver] must be a table of resolver options")
        resolver = resolver_settings(options, f"{path} [resolver]")
        for flag in ("dnssec", "nsec3"):
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
        return cls(port=port, start_down=tuple(down), resolver_address=address, resolver=resolver,
                   dnssec=data.get("dnssec", False), nsec3=data.get("nsec3", False),
                   keys_dir=path.parent / keys_dir if keys_dir is not None else None,
                   dnssec_unsigned=tuple(unsigned), dnssec_algorithm=str(algorithm))


@dataclass
class ServerPlan:
    """One lab address: the NS names that point at it and the zones it serves."""

    address: str
    names: list[dns.name.Name] = field(default_factory=list)
    zones: list[Zone] = field(default_factory=list)

    @property
    def role(self) -> Role:
        depths = [len(zone.origin) for zone in self.zones]  # the root has one (empty) label
        if min(depths) == 1:
            return Role.ROOT
        if min(depths) == 2:
            return Role.TLD
        return Role.AUTHORITATIVE

    @property
    def name(self) -> dns.name.Name:
        return self.names[0]


@dataclass
class Hierarchy:
    """Which address serves which zones, and the root hints, as derived from the zones."""

    servers: list[ServerPlan]
    root_hints: list[tuple[dns.name.Name, str]]
    warnings: list[str]

    def server_at(self, address: str) -> ServerPlan | None:
        return next((plan for plan in self.servers if plan.address == address), None)

    def find(self, address_or_name: str) -> ServerPlan | None:
        plan = self.server_at(address_or_name)
        if plan is not None:
            return plan
        try:
            name = dns.name.from_text(address_or_name)
        except dns.exception.DNSException:
            return None
        return next((p for p in self.servers if name in p.names), None)


def derive_hierarchy(zones: Iterable[Zone]) -> Hierarchy:
    """Place every zone on the loopback addresses of its apex NS names."""
    zones = list(zones)
    address_book: dict[dns.name.Name, list[str]] = {}
    for zone in zones:
        for rrset in zone.rrsets():
            if rrset.rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
                known = address_book.setdefault(rrset.name, [])
                known.extend(rdata.address for rdata in rrset if rdata.address not in known)  # type: ignore[attr-defined]
    plans: dict[str, ServerPlan] = {}
    warnings: list[str] = []
    for zone in sorted(zones, key=lambda z: (len(z.origin), z.origin)):
        ns = zone.get(zone.origin, dns.rdatatype.NS)
        assert ns is not None  # validated by the loader
        served = False
        for rdata in ns:
            target: dns.name.Name = rdata.target  # type: ignore[attr-defined]
            addresses = [a for a in address_book.get(target, []) if _is_loopback_v4(a)]
            if not addresses:
                warnings.append(f"zone {zone.origin}: name server {target} has no 127.x.y.z address "
                                "in any loaded zone, so the lab does not run it")
            for address in addresses:
                plan = plans.setdefault(address, ServerPlan(address))
                if target not in plan.names:
                    plan.names.append(target)
                if zone not in plan.zones:
                    plan.zones.append(zone)
                served = True
        if not served:
            warnings.append(f"zone {zone.origin} ({zone.filename}) is served by no lab address")
    root_hints: list[tuple[dns.name.Name, str]] = []
    root = next((zone for zone in zones if zone.origin == dns.name.root), None)
    if root is not None:
        for rdata in root.get(dns.name.root, dns.rdatatype.NS) or []:
            for address in address_book.get(rdata.target, []):  # type: ignore[attr-defined]
                root_hints.append((rdata.target, address))  # type: ignore[attr-defined]
    servers = sorted(plans.values(), key=lambda p: (list(Role).index(p.role), ipaddress.ip_address(p.address)))
    return Hierarchy(servers, root_hints, warnings)


def _is_loopback_v4(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return ip.version == 4 and ip in _LOOPBACK


def root_hints_text(hints: list[tuple[dns.name.Name, str]]) -> str:
    """The root hints in the layout of named.root, which BIND, Unbound and dnslab read."""
    lines = ["; Root hints for this dnslab lab, in the format of named.root.",
             "; Give this file to a resolver instead of the real root hints."]
    for name in dict.fromkeys(name for name, _ in hints):
        lines.append(f"{'.':<27} {HINTS_TTL:<10} IN  NS    {name}")
    for name, address in hints:
        rdtype = "AAAA" if ":" in address else "A"
        lines.append(f"{name.to_text():<27} {HINTS_TTL:<10} IN  {rdtype:<5} {address}")
    return "\n".join(lines) + "\n"


def zone_files(zones_dir: Path) -> list[Path]:
    """The zone files of a lab folder: every *.zone file, in name order."""
    if not zones_dir.is_dir():
        raise ConfigError(f"{zones_dir}: no such folder of zone files")
    files = sorted(zones_dir.glob("*.zone"))
    if not files:
        raise ConfigError(f"{zones_dir}: no *.zone files in this folder")
    return files


@dataclass
class RunningServer:
    """A lab server: its zones, the faults in front of it, and its listener once started."""

    plan: ServerPlan
    server: AuthoritativeServer
    faulty: FaultyServer
    listener: DnsListener | None = None

    @property
    def up(self) -> bool:
        return self.listener is not None and not self.faulty.down


class Lab:
    """Every server of the hierarchy in one process, each on its own loopback address."""

    def __init__(self, zones: list[Zone], port: int = DEFAULT_PORT, start_down: Iterable[str] = (),
                 resolver_address: str | None = DEFAULT_RESOLVER_ADDRESS,
                 resolver_settings: ResolverSettings | None = None, clock: Clock | None = None,
                 dnssec: bool | DnssecSettings = False) -> None:
        """*resolver_address* None runs the hierarchy alone, without the recursive resolver.

        *clock* is the resolver's time source (TTLs, hold-downs); tests pass a FakeClock.
        *dnssec* signs the zones: True with the defaults (keys in the runtime folder),
        or DnssecSettings (keys folder, NSEC3, algorithm, zones left unsigned).
        """
        wall = resolver_settings is not None and resolver_settings.ttl_clock == "wall"
        self.clock: Clock = clock or (WallClock() if wall else MonotonicClock())
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
        self.port = port
        self.bound_port: int | None = None
        down: set[str] = set()
        for item in start_down:
            plan = self.hierarchy.find(item)
            if plan is None:
                raise ConfigError(f"start_down: {item!r} is not a lab server's address or name")
            down.add(plan.address)
        self.servers: list[RunningServer] = []
        for plan in self.hierarchy.servers:
            server = AuthoritativeServer(plan.zones)
            handler = server.handle if self.signer is None else self._fresh(server.handle)
            faulty = FaultyServer(handler, seed=plan.address)  # loss is seeded, per server
            if plan.address in down:  # "down" from the start: a fault like any other, so it can be lifted
                faulty.apply(FaultKind.DOWN)
            self.servers.append(RunningServer(plan, server, faulty))
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
        self.control = ControlServer(self)
        self._resolver_listener: DnsListener | None = None

    @classmethod
    def from_folder(cls, zones_dir: Path, port: int | None = None, with_resolver: bool = True,
                    clock: Clock | None = None, dnssec: bool | None = None, nsec3: bool | None = None,
                    keys_dir: Path | None = None,
                    anchor_file: Path | None = None) -> tuple["Lab", list[Problem]]:
        """A lab from a folder of *.zone files and its optional lab.toml (arguments left None: lab.toml's)."""
        settings = LabSettings.load(zones_dir / SETTINGS_FILE)
        zones, problems = load_zones(zone_files(zones_dir))
        signing = dnssec_settings(settings, zones_dir, dnssec, nsec3, keys_dir, anchor_file)
        lab = cls(zones, port=settings.port if port is None else port, start_down=settings.start_down,
                  resolver_address=settings.resolver_address if with_resolver else None,
                  resolver_settings=settings.resolver, clock=clock, dnssec=signing or False)
        lab.zones_dir = zones_dir
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
        signed = self.signer.sign_all()
        for zone in signed.values():
            self._serve(zone)
        return True

    def _fresh(self, handle: Handler) -> Handler:
        """A server's handler that first re-signs when the lab clock passed the refresh point.

        One comparison per query; the work is done by the first query after the
        point (or by `clock advance`), so a fake clock needs no timer.
        """
        def handle_fresh(wire: bytes, via_tcp: bool = False, peer: Peer | None = None):  # type: ignore[no-untyped-def]
            if self.signer is not None and self.signer.due():
                self.refresh_signatures()
            return handle(wire, via_tcp, peer)
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
        return next(running for running in self.servers if running.plan is plan)

    def fault(self, name_or_address: str, kind: FaultKind | str, value: float | None = None,
              jitter: float | None = None) -> RunningServer | Zone:
        """A server fault (returns the server) or, for the dnssec-* kinds, a zone fault (returns the zone).

        `clear` given a zone name lifts that zone's DNSSEC faults.
        """
        text = kind.value if isinstance(kind, FaultKind) else str(kind)
        if text in ZONE_FAULTS or (text == FaultKind.CLEAR.value and self._is_zone(name_or_address)):
            return self.zone_fault(name_or_address, text)
        running = self.server(name_or_address)
        running.faulty.apply(kind, value, jitter)
        return running

    def zone_fault(self, zone_name: str, kind: str) -> Zone:
        """Make a signed zone bogus (dnssec-bad-sig, -expired, -missing-ds, -wrong-ds), or `clear` it."""
        if self.signer is None:
            raise DnslabError("the lab is not signed: start it with dnslab up --dnssec for DNSSEC faults")
        origin = self._origin(zone_name)
        if kind == FaultKind.CLEAR.value:
            changed = self.signer.clear(origin)
        else:
            changed = self.signer.apply(origin, ZoneFault(kind))
        for name in changed:
            self._serve(self.signer.resign(name))
        return next(zone for zone in self.zones if zone.origin == origin)

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

    def clock_now(self) -> float:
        """The lab clock's reading (the resolver's time source)."""
        return self.clock.now()

    def faults(self) -> dict[str, list[str]]:
        """The faults in force, by server address, then DNSSEC faults by zone name (none: left out)."""
        found = {r.plan.address: r.faulty.state.describe() for r in self.servers if r.faulty.state.describe()}
        if self.signer is not None:
            found.update(self.signer.describe())
        return found

    def record_set(self, name: str, rdtype: str, values: Iterable[str], ttl: int = 300) -> Zone:
        """Replace (or add) one RRset; every server of its zone answers with it at once."""
        owner, zone = self._zone_of(name)
        try:
            kind = dns.rdatatype.from_text(rdtype)
            # relativize=False: names in the data stay absolute, as the zone holds them.
            rrset = dns.rrset.from_text_list(owner, ttl, "IN", kind, list(values), origin=zone.origin,
                                             relativize=False)
        except (dns.exception.DNSException, ValueError) as exc:
            raise DnslabError(f"bad record {name} {rdtype} {' '.join(values)}: {exc}") from None
        return self._install(changed_zone(zone, rrset=rrset))

    def record_delete(self, name: str, rdtype: str) -> Zone:
        owner, zone = self._zone_of(name)
        try:
            kind = dns.rdatatype.from_text(rdtype)
        except dns.exception.DNSException:
            raise DnslabError(f"unknown record type {rdtype!r}") from None
        return self._install(changed_zone(zone, delete=(owner, kind)))

    def reload(self) -> list[str]:
        """Re-read the zone files from disk; returns the origins whose data changed."""
        if self.zones_dir is None:
            raise DnslabError("this lab was not started from a folder of zone files")
        fresh, _ = load_zones(zone_files(self.zones_dir))
        known = {zone.origin for zone in self.zones}
        changed = []
        for zone in fresh:
            if zone.origin not in known:
                log.warning("reload: new zone %s is not served (restart the lab to serve it)", zone.origin)
                continue
            self._install(zone)
            changed.append(zone.origin.to_text())
        return changed

    def _zone_of(self, name: str) -> tuple[dns.name.Name, Zone]:
        """The owner name and the zone (unsigned, as written: records are changed there) it belongs to."""
        try:
            owner = dns.name.from_text(name)
        except dns.exception.DNSException as exc:
            raise DnslabError(f"not a domain name: {name!r} ({exc})") from None
        sources = self.signer.sources.values() if self.signer is not None else self.zones
        zones = [zone for zone in sources if owner.is_subdomain(zone.origin)]
        if not zones:
            raise DnslabError(f"{owner} is in no zone of this lab")
        return owner, max(zones, key=lambda zone: len(zone.origin))

    def _install(self, zone: Zone) -> Zone:
        """Serve a new version of a zone's data; a signed lab signs it first."""
        if self.signer is not None:
            self.signer.sources[zone.origin] = zone
            self._serve(self.signer.resign(zone.origin))
            return zone
        return self._serve(zone)

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
                return
            except BindError:
                await self.stop()
                if self.port != 0 or attempt == attempts - 1:
                    raise
        raise DnslabError("could not find a free port for the lab")  # pragma: no cover

    async def _bind_all(self, port: int) -> None:
        if self.signer is not None:
            self.signer.write_anchor()
        for running in self.servers:
            listener = DnsListener(running.plan.address, port, running.faulty.handle, reuse_port=self.reuse_port)
            await listener.start()
            running.listener = listener
            port = listener.port
        if self.resolver_address is not None:
            # The lab's servers answer on the lab port, so that is the resolver's upstream port.
            settings = replace(self.resolver_settings, upstream_port=port)
            self.resolver = RecursiveResolver(self.hierarchy.root_hints, settings, clock=self.clock)
            self._resolver_listener = DnsListener(self.resolver_address, port, self.resolver.handle,
                                                  reuse_port=self.reuse_port)
            await self._resolver_listener.start()
        await self.control.start()
        self.bound_port = port

    async def stop(self) -> None:
        await self.control.stop()
        if self._resolver_listener is not None:
            await self._resolver_listener.stop()
            self._resolver_listener = None
        for running in self.servers:
            if running.listener is not None:
                await running.listener.stop()
                running.listener = None

    @property
    def actual_port(self) -> int:
        """The port in use: the one asked for, or the one picked for port 0."""
        return self.bound_port if self.bound_port is not None else self.port

    async def __aenter__(self) -> "Lab":
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()


def dnssec_settings(settings: LabSettings, zones_dir: Path, dnssec: bool | None = None, nsec3: bool | None = None,
                    keys_dir: Path | None = None, anchor_file: Path | None = None) -> DnssecSettings | None:
    """Signing settings from lab.toml, with what the caller says (flags) winning; None: unsigned."""
    if not (settings.dnssec if dnssec is None else dnssec):
        return None
    return DnssecSettings(
        keys_dir=keys_dir or settings.keys_dir or zones_dir / ".keys",
        nsec3=settings.nsec3 if nsec3 is None else nsec3,
        algorithm=algorithm_from_text(settings.dnssec_algorithm),
        unsigned=parse_unsigned(settings.dnssec_unsigned, str(zones_dir / SETTINGS_FILE)),
        anchor_file=anchor_file)


def example_walk(lab: Lab) -> tuple[dns.name.Name, list[ServerPlan]] | None:
    """A name worth digging for, and the running servers a resolver would ask, root first.

    Prefers a www name in the shallowest authoritative zone, so the printed dig
    lines show a referral at each level and then an answer.
    """
    up = [r.plan for r in lab.servers if r.up]
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
