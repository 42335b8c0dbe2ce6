"""Real DNS software as lab members: which programs, and their configuration generated from the lab.

Sans-I/O: the configuration files are rendered from plain values here, and written, started and
stopped in dnslab.lab.foreign.  Each program runs in the foreground, as the user running the lab, with
every file (configuration, log, cache, pid, control socket) in one folder of the lab's own, and only
loopback addresses: no chroot, no syslog, no privilege drop, nothing from /etc.

What a program can and cannot do is declared here once, because `dnslab up` prints it, the control
endpoint's errors say it and docs/FOREIGN.md explains it: whether it can send its queries to a port
other than 53 (Unbound, kresd and PowerDNS send a referral's queries to port 53 whatever they are
configured with; BIND's `port` option sets the port it sends to as well as the one it listens on),
and which of dnslab's views of its own resolver have no equivalent inside it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import dns.rdatatype
import dns.rrset

from dnslab.core.errors import ConfigError

DNSLAB = "dnslab"


@dataclass(frozen=True)
class Program:
    """A DNS program the lab can run in place of one of its own members."""

    name: str          # as given on the command line: --resolver unbound, --server NAME=nsd
    title: str         # as printed: "Unbound"
    package: str       # the Debian package that installs it
    binary: str        # the executable, looked up on PATH and in the sbin folders
    any_port: bool     # can send its queries to the lab's port (else the lab must run on port 53)
    port_note: str = ""  # why not, when it cannot

    def missing(self) -> str:
        """The one line when the program is not installed."""
        return f"{self.title} ({self.binary}) is not installed (Debian: apt-get install {self.package})"


RESOLVERS: dict[str, Program] = {
    "unbound": Program("unbound", "Unbound", "unbound", "unbound", any_port=False,
                       port_note="Unbound sends the queries of a referral to port 53 (its port option "
                                 "is the port it listens on only)"),
    "kresd": Program("kresd", "Knot Resolver", "knot-resolver", "kresd", any_port=False,
                     port_note="kresd sends the queries of a referral to port 53"),
    "bind": Program("bind", "BIND", "bind9", "named", any_port=True),
    "pdns-recursor": Program("pdns-recursor", "PowerDNS Recursor", "pdns-recursor", "pdns_recursor",
                             any_port=False, port_note="PowerDNS Recursor sends the queries of a referral to port 53"),
}
SERVERS: dict[str, Program] = {
    "nsd": Program("nsd", "NSD", "nsd", "nsd", any_port=True),
    "bind": Program("bind", "BIND", "bind9", "named", any_port=True),
    "knot": Program("knot", "Knot DNS", "knot", "knotd", any_port=True),
}
RESOLVER_CHOICES = (DNSLAB, *RESOLVERS)

# What dnslab's own resolver offers that a foreign one does not, by control command: the error each
# command gives (and `dnslab up` prints the list).
NOT_INSIDE = {
    "trace": "dnslab trace follows dnslab's own resolver from inside; {title} keeps its walk to itself "
             "(its log, {log}, has what it logs)",
    "cache": "dnslab cache show reads dnslab's own cache; {title}'s cache is its own",
    "servers": "dnslab servers shows dnslab's own resolver's view of the servers; {title} keeps its own",
    "stats": "dnslab stats counts dnslab's own resolver; {title} keeps its own figures",
    "clock": "the lab clock does not reach into {title}: its TTLs, hold-downs and signature checks run "
             "on the machine's time",
}


def resolver_program(name: str, where: str = "--resolver") -> Program | None:
    """The program for a resolver choice (None for dnslab's own); a clear error for an unknown one."""
    if name == DNSLAB:
        return None
    try:
        return RESOLVERS[name]
    except KeyError:
        raise ConfigError(f"{where}: unknown resolver {name!r} (one of: {', '.join(RESOLVER_CHOICES)})") from None


def server_program(name: str, where: str = "--server") -> Program:
    try:
        return SERVERS[name]
    except KeyError:
        raise ConfigError(f"{where}: unknown server program {name!r} (one of: {', '.join(SERVERS)})") from None


def parse_server_choice(text: str) -> tuple[str, Program]:
    """`NAME_OR_ADDR=PROGRAM` (the --server option) as (server, program)."""
    server, sep, program = text.partition("=")
    if not sep or not server or not program:
        raise ConfigError(f"--server {text!r}: expected NAME_OR_ADDRESS=PROGRAM, e.g. ns1.example.com=nsd")
    return server, server_program(program, f"--server {text}")


def needed_port(program: Program, port: int) -> None:
    """Refuse a lab port the program cannot send its queries to, saying what to do instead."""
    if not program.any_port and port != 53:
        raise ConfigError(f"{program.port_note}, so with --resolver {program.name} the lab's servers "
                          f"must answer on port 53, not {port}: use --port 53 (as root)")


@dataclass(frozen=True)
class ResolverSetup:
    """What a foreign resolver is told about the lab."""

    address: str                 # where it listens: the address dnslab's resolver would use
    port: int                    # and port (the lab's)
    workdir: Path                # its configuration, log, cache, pid file and control socket
    hints: Path                  # the lab's root hints, named.root format
    anchors: tuple[dns.rrset.RRset, ...] = ()  # the signed lab's root DS (or DNSKEY): validate
    anchor_file: Path | None = None            # the same, in zone-file form
    cache_mb: int = 32
    max_ttl: int = 86400
    min_ttl: int = 0
    negative_max_ttl: int = 3600

    @property
    def log(self) -> Path:
        return self.workdir / "resolver.log"

    @property
    def control_socket(self) -> Path:
        return self.workdir / "control.sock"


def cache_megabytes(max_entries: int) -> int:
    """dnslab bounds its cache by entries; the others by bytes: about 256 bytes an entry, 4 MB at least."""
    return max(4, max_entries * 256 // (1 << 20))


def unbound_server_lines(address: str, port: int, workdir: Path, hints: Path, log: Path) -> list[str]:
    """The `server:` lines of every Unbound dnslab starts (the lab's resolver, and the developer tools'
    reference Unbound): one foreground Unbound on address@port, files in *workdir*, asking the lab's
    servers on loopback from *hints*."""
    return [
        f"  interface: {address}@{port}",
        "  interface-automatic: no",
        "  do-ip4: yes", "  do-ip6: no", "  do-udp: yes", "  do-tcp: yes",
        '  username: ""', '  chroot: ""',
        f'  directory: "{workdir}"', f'  pidfile: "{workdir / "unbound.pid"}"',
        "  use-syslog: no", f'  logfile: "{log}"',
        "  do-daemonize: no",
        f'  root-hints: "{hints}"',
        # The lab's servers are all on 127.x.y.z, which Unbound does not ask by default.
        "  do-not-query-localhost: no",
    ]


def unbound_conf(setup: ResolverSetup) -> str:
    """unbound.conf: the lab's root hints, loopback allowed, the trust anchor in a signed lab, a
    control socket (for `dnslab cache flush`), everything in the work folder."""
    half = max(1, setup.cache_mb // 3)
    lines = [
        "# Generated by dnslab for the lab's resolver (docs/FOREIGN.md); rewritten at every start.",
        "server:",
        *unbound_server_lines(setup.address, setup.port, setup.workdir, setup.hints, setup.log),
        f"  port: {setup.port}",
        # Alone on its address: with SO_REUSEPORT another Unbound could bind it too and take a share
        # of the lab's queries without a word.
        "  so-reuseport: no",
        "  verbosity: 1", "  log-servfail: yes",
        "  access-control: 127.0.0.0/8 allow",
        f"  msg-cache-size: {half}m", f"  rrset-cache-size: {setup.cache_mb - half if setup.cache_mb > 1 else 1}m",
        f"  cache-max-ttl: {setup.max_ttl}", f"  cache-min-ttl: {setup.min_ttl}",
        f"  cache-max-negative-ttl: {setup.negative_max_ttl}",
    ]
    if setup.anchor_file is not None:
        lines += [f'  trust-anchor-file: "{setup.anchor_file}"', "  val-log-level: 2"]
    lines += [
        "remote-control:",
        "  control-enable: yes",
        f'  control-interface: "{setup.control_socket}"',
        "  control-use-cert: no",
        "",
    ]
    return "\n".join(lines)


def _lua(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def kresd_conf(setup: ResolverSetup) -> str:
    """kresd's Lua configuration: listen, the lab's root hints, its cache in the work folder, and the
    lab's trust anchor in a signed lab, none otherwise (kresd trusts the Internet's root by default,
    which would make every lab answer bogus)."""
    lines = [
        "-- Generated by dnslab for the lab's resolver (docs/FOREIGN.md); rewritten at every start.",
        "log_level('info')",
        "-- The lab's servers are on 127.x.y.z: kresd ignores such glue unless allowed.",
        "option('ALLOW_LOCAL', true)",
        "net.ipv6 = false",
        f"net.listen({_lua(setup.address)}, {setup.port}, {{ kind = 'dns' }})",
        f"cache.open({setup.cache_mb} * MB, {_lua('lmdb://' + str(setup.workdir / 'cache'))})",
        f"cache.max_ttl({setup.max_ttl})",
        f"cache.min_ttl({setup.min_ttl})",
        "modules.load('hints > iterate')",
        f"hints.root_file({_lua(str(setup.hints))})",
        "trust_anchors.remove('.')",
    ]
    if setup.anchor_file is not None:
        lines.append(f"trust_anchors.add_file({_lua(str(setup.anchor_file))}, true)")
    return "\n".join(lines) + "\n"


def _bind_anchors(anchors: tuple[dns.rrset.RRset, ...]) -> list[str]:
    """BIND's trust-anchors statement for the lab's DS (static-ds) or DNSKEY (static-key) records."""
    out = ["trust-anchors {"]
    for rrset in anchors:
        owner = rrset.name.to_text()
        for rdata in rrset:
            if rrset.rdtype == dns.rdatatype.DS:
                out.append(f'  "{owner}" static-ds {rdata.key_tag} {int(rdata.algorithm)} '  # type: ignore[attr-defined]
                           f'{rdata.digest_type} "{rdata.digest.hex().upper()}";')  # type: ignore[attr-defined]
            elif rrset.rdtype == dns.rdatatype.DNSKEY:
                key = rdata.to_text().split(None, 3)
                out.append(f'  "{owner}" static-key {key[0]} {key[1]} {key[2]} "{key[3].replace(" ", "")}";')
    out.append("};")
    return out


def _bind_logging(log: Path) -> list[str]:
    return [
        "logging {",
        f'  channel lab {{ file "{log}"; severity info; print-time yes; print-category yes; }};',
        "  category default { lab; };",
        "  category lame-servers { lab; };",
        "  category queries { lab; };",
        "};",
    ]


def named_resolver_conf(setup: ResolverSetup) -> str:
    """named.conf for BIND as the lab's resolver.  BIND's `port` is the port it listens on *and*
    sends to, so BIND can run on any lab port; its built-in empty zones (RFC 6303: 127.in-addr.arpa,
    TEST-NET reverse zones, ...) are off, as the lab serves such zones itself."""
    lines = [
        "// Generated by dnslab for the lab's resolver (docs/FOREIGN.md); rewritten at every start.",
        "options {",
        f'  directory "{setup.workdir}";',
        f'  pid-file "{setup.workdir / "named.pid"}";',
        f'  managed-keys-directory "{setup.workdir}";',
        f"  port {setup.port};",
        f"  listen-on port {setup.port} {{ {setup.address}; }};",
        "  listen-on-v6 { none; };",
        "  recursion yes;",
        "  allow-recursion { 127.0.0.0/8; };",
        "  allow-query { 127.0.0.0/8; };",
        "  allow-query-cache { 127.0.0.0/8; };",
        "  empty-zones-enable no;",
        f"  dnssec-validation {'yes' if setup.anchors else 'no'};",
        f"  max-cache-size {setup.cache_mb}m;",
        f"  max-cache-ttl {setup.max_ttl};",
        f"  max-ncache-ttl {setup.negative_max_ttl};",
        "};",
        'zone "." { type hint; file "' + str(setup.hints) + '"; };',
        *(_bind_anchors(setup.anchors) if setup.anchors else []),
        *_bind_logging(setup.log),
        "controls { };",
        "",
    ]
    return "\n".join(lines)


def pdns_recursor_conf(setup: ResolverSetup) -> str:
    """recursor.conf (PowerDNS Recursor 4.x): the lab's hints, loopback allowed as an upstream (its
    dont-query list holds 127.0.0.0/8 by default), validation with the lab's anchor only (set in the
    Lua file beside it, see pdns_recursor_lua)."""
    lines = [
        "# Generated by dnslab for the lab's resolver (docs/FOREIGN.md); rewritten at every start.",
        f"local-address={setup.address}",
        f"local-port={setup.port}",
        "allow-from=127.0.0.0/8",
        f"hint-file={setup.hints}",
        "dont-query=",
        f"dnssec={'validate' if setup.anchors else 'off'}",
        *([f"lua-config-file={setup.workdir / 'recursor.lua'}"] if setup.anchors else []),
        "serve-rfc1918=no",        # the lab answers for its own reverse zones
        "security-poll-suffix=",   # no version check queries into the lab
        "daemon=no",
        "write-pid=no",
        f"socket-dir={setup.workdir}",
        "disable-syslog=yes",
        "loglevel=5",
        "threads=1",
        f"max-cache-entries={setup.cache_mb * (1 << 20) // 256}",
        f"max-cache-ttl={setup.max_ttl}",
        f"max-negative-ttl={setup.negative_max_ttl}",
    ]
    return "\n".join(lines) + "\n"


def pdns_recursor_lua(setup: ResolverSetup) -> str:
    """Its Lua configuration: the Internet root's anchors replaced by the lab's DS (or none)."""
    lines = ["-- Generated by dnslab (docs/FOREIGN.md).", "clearTA()"]
    for rrset in setup.anchors:
        if rrset.rdtype == dns.rdatatype.DS:
            lines += [f"addTA({_lua(rrset.name.to_text())}, {_lua(rdata.to_text())})" for rdata in rrset]
    return "\n".join(lines) + "\n"


RESOLVER_CONFS = {"unbound": ("unbound.conf", unbound_conf), "kresd": ("kresd.conf", kresd_conf),
                  "bind": ("named.conf", named_resolver_conf), "pdns-recursor": ("recursor.conf", pdns_recursor_conf)}


def resolver_argv(program: Program, binary: str, setup: ResolverSetup, conf: Path) -> list[str]:
    """The command line: in the foreground, with the generated configuration."""
    if program.name == "unbound":
        return [binary, "-d", "-c", str(conf)]
    if program.name == "kresd":
        return [binary, "-n", "-c", str(conf), str(setup.workdir)]
    if program.name == "pdns-recursor":
        return [binary, f"--config-dir={setup.workdir}"]
    return [binary, "-f", "-4", "-c", str(conf)]


# --- authoritative servers ------------------------------------------------------------------------


@dataclass(frozen=True)
class ServerSetup:
    """What a foreign authoritative server is told: where to listen, and its zones' files."""

    address: str
    port: int
    workdir: Path
    zones: tuple[tuple[str, Path], ...]  # (origin, zone file)

    @property
    def log(self) -> Path:
        return self.workdir / "server.log"


def nsd_server_lines(address: str, port: int, workdir: Path, log: Path) -> list[str]:
    """The `server:` lines of every NSD dnslab starts (a lab server, and the developer tools'
    reference NSD): one foreground NSD on address@port, no database, its files in *workdir*."""
    return [
        f"  ip-address: {address}@{port}",
        "  do-ip6: no",
        '  username: ""', '  chroot: ""',
        '  database: ""',
        f'  pidfile: "{workdir / "nsd.pid"}"', f'  logfile: "{log}"',
        f'  xfrdfile: "{workdir / "xfrd.state"}"', f'  zonelistfile: "{workdir / "zone.list"}"',
        "  zonefiles-write: 0",
    ]


def nsd_zone_lines(zones: Sequence[tuple[str, Path]]) -> list[str]:
    return [line for origin, path in zones for line in ("zone:", f'  name: "{origin}"', f'  zonefile: "{path}"')]


def nsd_conf(setup: ServerSetup) -> str:
    """nsd.conf: one foreground NSD on the address and port, its zones from their files."""
    lines = [
        "# Generated by dnslab for a lab server (docs/FOREIGN.md); rewritten at every start.",
        "server:",
        *nsd_server_lines(setup.address, setup.port, setup.workdir, setup.log),
        "  verbosity: 1",
        # Response rate limiting (on in Debian's NSD: 200 a second per source) would drop the
        # lab's own bursts, which all come from 127.0.0.1: a lab server answers every query.
        "  rrl-ratelimit: 0",
        "  rrl-whitelist-ratelimit: 0",
        "remote-control:",
        "  control-enable: no",
        *nsd_zone_lines(setup.zones),
    ]
    return "\n".join(lines) + "\n"


def named_server_conf(setup: ServerSetup) -> str:
    """named.conf for BIND as an authoritative-only lab server."""
    lines = [
        "// Generated by dnslab for a lab server (docs/FOREIGN.md); rewritten at every start.",
        "options {",
        f'  directory "{setup.workdir}";',
        f'  pid-file "{setup.workdir / "named.pid"}";',
        f"  port {setup.port};",
        f"  listen-on port {setup.port} {{ {setup.address}; }};",
        "  listen-on-v6 { none; };",
        "  recursion no;",
        "  empty-zones-enable no;",
        "  dnssec-validation no;",
        "};",
        *(f'zone "{origin}" {{ type primary; file "{path}"; }};' for origin, path in setup.zones),
        *_bind_logging(setup.log),
        "controls { };",
        "",
    ]
    return "\n".join(lines)


def knot_conf(setup: ServerSetup) -> str:
    """knot.conf for Knot DNS as a lab server: the zone files as they are (signed ones too: Knot signs
    nothing itself unless told), never written back, no journal, no semantic checks beyond loading
    (the lab checked the files; NSD and BIND are not asked to check more either)."""
    lines = [
        "# Generated by dnslab for a lab server (docs/FOREIGN.md); rewritten at every start.",
        "server:",
        f'    rundir: "{setup.workdir}"',
        f'    pidfile: "{setup.workdir / "knot.pid"}"',
        f"    listen: {setup.address}@{setup.port}",
        "log:",
        f'  - target: "{setup.log}"',
        "    any: info",
        "database:",
        f'    storage: "{setup.workdir}"',
        "control:",
        f'    listen: "{setup.workdir / "knot.sock"}"',
        "template:",
        "  - id: default",
        f'    storage: "{setup.workdir}"',
        "    semantic-checks: off",
        "    zonefile-sync: -1",
        "    zonefile-load: whole",
        "    journal-content: none",
        "zone:",
        *(line for origin, path in setup.zones for line in (f'  - domain: "{origin}"', f'    file: "{path}"')),
    ]
    return "\n".join(lines) + "\n"


SERVER_CONFS = {"nsd": ("nsd.conf", nsd_conf), "bind": ("named.conf", named_server_conf),
                "knot": ("knot.conf", knot_conf)}


def server_argv(program: Program, binary: str, conf: Path) -> list[str]:
    if program.name == "nsd":
        return [binary, "-d", "-c", str(conf)]
    if program.name == "knot":
        return [binary, "-c", str(conf)]  # knotd stays in the foreground unless told -d
    return [binary, "-f", "-4", "-c", str(conf)]
