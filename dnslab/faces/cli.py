"""The `dnslab` command line: thin wrappers that parse arguments and call the layers below.

`main(argv) -> int` never lets a traceback reach the user for anything they
can cause: a usage error (argparse, and every typed number through
dnslab.core.validate) exits 2, every other `DnslabError` becomes one line on stderr
and exit code 1, and a closed output pipe ends the command quietly (141).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import logging
import os
import shutil
import signal
import sys
import time
from pathlib import Path
from typing import Any, Callable, Sequence, TextIO

import dns.rrset

from dnslab import __version__
from dnslab.core.clock import FakeClock
from dnslab.resolution.options import OPTIONS, load_toml, resolver_settings
from dnslab.lab import capturing, fault_kinds, programs, split
from dnslab.lab.control import LabState, runtime_dir, state_dir
from dnslab.lab.runner import RunOptions, Runner, WebView
from dnslab.faces import scenario_cli
from dnslab.faces.inspection import INSPECT
from dnslab.faces.level_inspection import print_levels_banner
from dnslab.core.errors import ConfigError, DnslabError
from dnslab.resolution.hints import load_root_hints
from dnslab.lab.runtime import SAMPLE_ZONES, Lab, example_walk
from dnslab.services.observers import QueryLogger
from dnslab.services.resolver import RecursiveResolver
from dnslab.resolution.settings import ResolverSettings
from dnslab.authority import tsig
from dnslab.authority.server import AuthoritativeServer
from dnslab.services.transport import Handler
from dnslab.services.workers import ListenerWorker, WorkerPool, run_async, serve_until_stopped, stop_signals
from dnslab.dnssec.keys import algorithm_from_text, load_or_create
from dnslab.dnssec.signing import SigningPolicy, make_ds, sign_zone, zone_text
from dnslab.core import collector, validate
from dnslab.core.validate import arg
from dnslab.core.zone import load_zone, load_zones

log = logging.getLogger("dnslab")

MAX_WORKERS = 64  # processes sharing one port; more only contend for the same cores


def default_zones_dir() -> Path:
    """The sample hierarchy, shipped inside the package (`dnslab init DIR` copies it out to edit)."""
    return SAMPLE_ZONES


def default_hints_path() -> Path:
    """In the per-user runtime folder, so two users of one machine do not overwrite each other."""
    return runtime_dir() / "root.hints"


class _FaultArgs(argparse.Action):
    """Checks `dnslab fault`'s KIND and ARGs against the fault registry as they are parsed: a bad
    name or number is a usage error (exit 2), said before the lab is even asked."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        try:
            _, checked = fault_kinds.order(namespace.kind, list(values or []))
        except ConfigError as exc:
            raise argparse.ArgumentError(None, str(exc)) from None
        setattr(namespace, self.dest, list(checked))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dnslab",
        description="A private DNS hierarchy on loopback: root, TLD and authoritative servers "
                    "from ordinary zone files.",
    )
    parser.add_argument("--version", action="version", version=f"dnslab {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debugging detail to stderr")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    up = commands.add_parser("up", help="start the hierarchy and the resolver from a folder of zone files",
                             description="Start every server of the hierarchy, each on its own 127.x.y.z "
                                         "address, as derived from the zones' NS records and glue, and "
                                         "the recursive resolver on 127.0.0.1 (lab.toml: resolver_address, "
                                         "[resolver] options), and the caching levels in front of it, each on "
                                         "its own address (browser -> os -> resolver by default; lab.toml "
                                         "[levels.NAME]; dnslab levels lists them). Zone transfers go to loopback "
                                         "clients, TSIG-signed UPDATEs are applied, and the key is printed "
                                         "(lab.toml: allow_transfer, tsig_keys, [primaries] for secondaries; see "
                                         "docs/ZONE_OPERATIONS.md). Ctrl-C or SIGTERM stops it.")
    up.add_argument("--zones", type=Path, default=None, metavar="DIR",
                    help="folder of *.zone files and an optional lab.toml (default: the sample zones "
                         "that come with dnslab; 'dnslab init DIR' copies them out to edit)")
    up.add_argument("--port", type=arg(validate.port), default=None, metavar="N",
                    help="port for every server (default: lab.toml's port, else 5300; 0 picks a free one)")
    up.add_argument("--no-resolver", action="store_true",
                    help="run only the hierarchy, without the recursive resolver on 127.0.0.1")
    up.add_argument("--only", action="append", default=None, metavar="CIDR",
                    help="serve only the lab servers whose addresses are in this network (repeatable; lab.toml: "
                         "only), so several processes serve one lab, each its part, on one fixed --port; the "
                         "resolver and levels still run here unless --no-resolver (docs/PERFORMANCE.md)")
    up.add_argument("--shared-sockets", action=argparse.BooleanOptionalAction, default=None,
                    help="serve every lab server address from one UDP and one TCP socket on 0.0.0.0 (Linux, "
                         "IP_PKTINFO; loopback clients only) instead of a socket pair per address, so the number "
                         "of servers is not bounded by the open-files limit; an unreachable server then times "
                         "out (UDP) or resets (TCP) instead of refusing; not with --only or a real --resolver (default: "
                         "lab.toml's shared_sockets, else only when the addresses would not fit the limit; "
                         "docs/PERFORMANCE.md)")
    up.add_argument("--resolver", choices=programs.RESOLVER_CHOICES, default=None, metavar="PROGRAM",
                    help="the recursive resolver: dnslab (default, lab.toml: resolver), or a real one run "
                         "with a configuration made from the lab: unbound, kresd, pdns-recursor (only on "
                         "port 53, which --port then defaults to), bind (docs/FOREIGN.md)")
    up.add_argument("--server", action="append", default=[], metavar="NAME_OR_ADDR=PROGRAM",
                    help="serve that lab server's zones with nsd, bind or knot, behind the lab's fault layer "
                         "(repeatable; lab.toml: servers)")
    up.add_argument("--workers", type=arg(validate.whole, 1, MAX_WORKERS), default=1, metavar="N",
                    help="run N processes that share every address and port (SO_REUSEPORT); each has its "
                         f"own cache and server state (default 1, at most {MAX_WORKERS}); one that dies "
                         "stops the lab (exit 1)")
    up.add_argument("--fake-clock", action="store_true",
                    help="run the resolver on a clock that moves only with 'dnslab clock advance SECONDS' "
                         "(TTLs, negative caching, hold-downs, serve-stale); network timeouts stay real")
    up.add_argument("--log-queries", action="store_true",
                    help="print one line per client query (time, client, name, type, rcode, cache or "
                         "upstream queries, ms)")
    up.add_argument("--hints", type=Path, default=None, metavar="FILE",
                    help=f"where to write the lab's root hints (default: {default_hints_path()})")
    up.add_argument("--no-web", action="store_true",
                    help="do not serve the live web view (by default on 127.0.0.1, a free port, "
                         "behind the lab's control token)")
    up.add_argument("--web-port", type=arg(validate.port), default=0, metavar="N",
                    help="port of the web view on 127.0.0.1 (default: a free one)")
    up.add_argument("--dnssec", action=argparse.BooleanOptionalAction, default=None,
                    help="sign every zone at start-up (KSK+ZSK per zone, ECDSA P-256, NSEC), publish each "
                         "child's DS in its parent and write the root's DS as the trust anchor, which the "
                         "lab's resolver then validates from (AD=1, or SERVFAIL with the reason); zones named "
                         "in lab.toml's dnssec_unsigned stay unsigned (default: lab.toml's dnssec)")
    up.add_argument("--nsec3", action=argparse.BooleanOptionalAction, default=None,
                    help="with --dnssec: deny with NSEC3 (RFC 9276: no salt, no extra iterations) instead of NSEC")
    up.add_argument("--keys", type=Path, default=None, metavar="DIR",
                    help="with --dnssec: the folder keys are made in once and kept in "
                         "(default: lab.toml's keys_dir, else .keys in the zone folder)")
    up.add_argument("--anchor", type=Path, default=None, metavar="FILE",
                    help="with --dnssec: where to write the root trust anchor (default: root-anchor.ds in the "
                         "keys folder)")

    init = commands.add_parser("init", help="copy the sample zones into a new folder, to edit and serve",
                               description="Copy the sample hierarchy (every *.zone file, lab.toml and the "
                                           "README that describes them) into DIR, which must be new or empty; "
                                           "then serve your copy with 'dnslab up --zones DIR'.")
    init.add_argument("dir", type=Path, metavar="DIR")

    serve = commands.add_parser("serve", help="run one authoritative server for some zone files",
                                description="Serve the given zones authoritatively on one address, "
                                            "over UDP and TCP. With no zones every query is REFUSED. "
                                            "AXFR and IXFR are served to loopback clients only.")
    serve.add_argument("--zone", type=Path, action="append", default=[], metavar="FILE",
                       help="a zone file to serve (repeatable)")
    serve.add_argument("--listen", required=True, metavar="ADDR[:PORT]",
                       help="address and port to listen on (port defaults to 53; IPv6 as [ADDR]:PORT)")

    resolver = commands.add_parser(
        "resolver", help="run the recursive resolver",
        description="An iterative resolver: from the root hints it walks the hierarchy, caches every "
                    "RRset for its TTL, and answers clients over UDP and TCP. Every option can also be "
                    "set in a TOML file given with --config (same names, dashes as underscores); "
                    "flags win.")
    resolver.add_argument("--root-hints", type=Path, default=None, metavar="FILE",
                          help="root hints in named.root format (dnslab up writes the lab's)")
    resolver.add_argument("--listen", default=None, metavar="ADDR:PORT",
                          help="address and port for clients (default 127.0.0.1:53)")
    resolver.add_argument("--config", type=Path, default=None, metavar="FILE", help="a TOML file of options")
    resolver.add_argument("--workers", type=arg(validate.whole, 1, MAX_WORKERS), default=1, metavar="N",
                          help="run N processes sharing the address and port (SO_REUSEPORT), each with "
                               f"its own cache (default 1, at most {MAX_WORKERS}); one that dies stops them "
                               "all (exit 1)")
    for option in OPTIONS:
        flag = "--" + option.name.replace("_", "-")
        if option.kind is bool:
            resolver.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=option.help)
        elif option.kind is list:
            resolver.add_argument(flag, action="append", default=None, metavar="CIDR",
                                  help=option.help + " (repeatable)")
        else:
            metavar = "FILE" if option.name.endswith("_file") else option.kind.__name__.upper()
            resolver.add_argument(flag, type=option.kind, default=None, metavar=metavar, help=option.help)

    query = commands.add_parser("query", help="ask a DNS server, with dig-like output",
                                description="NAME [TYPE] [@SERVER] in any order, like dig. Defaults to the "
                                            "running lab's resolver.")
    query.add_argument("words", nargs="+", metavar="NAME [TYPE] [@SERVER]")
    query.add_argument("-p", "--port", type=arg(validate.port, zero=False), default=None, metavar="N",
                       help="server port (default: the lab's port; with several labs running, also picks the lab)")
    query.add_argument("--tcp", action="store_true", help="use TCP")
    query.add_argument("--norecurse", action="store_true", help="clear RD: ask the cache only, or a server as a resolver would")
    query.add_argument("--dnssec", action="store_true",
                       help="set DO, as dig +dnssec: RRSIGs and NSEC/NSEC3 proofs come back with the data")
    query.add_argument("--cd", action="store_true",
                       help="set CD (checking disabled), as dig +cd: the resolver does not validate")
    query.add_argument("--json", action="store_true", help="print the reply as JSON")
    query.add_argument("--via", default=None, metavar="LEVEL",
                       help="ask through a caching level of the running lab (browser, os, a lab.toml level; "
                            "dnslab levels lists them) instead of its resolver")
    query.add_argument("--timeout", type=arg(validate.amount, 0.001, 3600, "seconds"), default=5.0, metavar="S",
                       help="seconds to wait (default 5)")

    # Every command that talks to a running lab can name it by port, for when several run.
    pick = argparse.ArgumentParser(add_help=False)
    pick.add_argument("--port", type=arg(validate.port, zero=False), default=None, metavar="N",
                      help="the lab on port N, when several run (default: the one running)")

    trace = commands.add_parser("trace", parents=[pick],
                                help="watch the running resolver resolve a name, step by step",
                                description="Every cache lookup, server choice (and why), query, reply and "
                                            "what it meant, failure and failover, in order.")
    trace.add_argument("name")
    trace.add_argument("type", nargs="?", default="A")
    trace.add_argument("--cold", action="store_true",
                       help="resolve with an empty private cache, to see the walk from the root "
                            "(the shared cache is not touched)")
    trace.add_argument("--via", default=None, metavar="LEVEL",
                       help="start at a caching level (browser, os, ...; dnslab levels): which level answered, "
                            "the TTL left at each, and on a miss where the question went next, down to the "
                            "resolver's walk; the JSON events gain a 'level' field")
    trace.add_argument("--json", action="store_true", help="the events as JSON lines (fields in docs/REFERENCE.md)")
    trace.add_argument("--html", type=Path, default=None, metavar="FILE",
                       help="also write a self-contained HTML picture of the walk to FILE")

    cache = commands.add_parser("cache", help="show or flush the running resolver's cache (or a level's: --level)")
    cache_commands = cache.add_subparsers(dest="cache_command", metavar="show|flush", required=True)
    show = cache_commands.add_parser("show", parents=[pick], help="entries with TTLs, rank and source server")
    show.add_argument("name", nargs="?", help="only this name and the names below it")
    show.add_argument("--json", action="store_true")
    show.add_argument("--level", default=None, metavar="LEVEL",
                      help="a caching level's cache (browser, os, ...; dnslab levels) instead of the resolver's")
    flush = cache_commands.add_parser("flush", parents=[pick], help="forget everything, or one name")
    flush.add_argument("name", nargs="?")
    flush.add_argument("--tree", action="store_true", help="also every name below NAME")
    flush.add_argument("--level", default=None, metavar="LEVEL",
                       help="flush a caching level's cache (browser, os, ...) instead of the resolver's")

    servers = commands.add_parser("servers", parents=[pick], help="the resolver's view of each upstream server, and each secondary's copy")
    servers.add_argument("--json", action="store_true")
    stats = commands.add_parser("stats", parents=[pick], help="the resolver's counters, and each caching level's")
    stats.add_argument("--json", action="store_true")
    stats.add_argument("--level", default=None, metavar="LEVEL", help="only this caching level's counters")
    levels = commands.add_parser("levels", parents=[pick],
                                 help="the caching levels in front of the resolver: level, kind, address, upstream",
                                 description="Each caching level of the running lab (browser, OS stub, forwarders, "
                                             "further resolvers; lab.toml [levels.NAME]) with its address, port, "
                                             "upstreams and caching policy. Ask one with dig @ADDRESS -p PORT, or "
                                             "dnslab query NAME --via LEVEL.")
    levels.add_argument("--json", action="store_true", help="as JSON, with each level's counters")

    fault = commands.add_parser(
        "fault", parents=[pick], help="break a lab server or a signed zone on purpose (or mend it)",
        description="Break a lab SERVER, or a ZONE of a signed lab, in the way KIND says; `up` and `clear` mend. "
                    "Each worker process gets the fault too.",
        epilog=fault_kinds.help_text(), formatter_class=argparse.RawDescriptionHelpFormatter)
    fault.add_argument("server", metavar="SERVER|ZONE",
                       help="an address (127.0.3.20) or NS name (ns1.failover.com); a zone name for dnssec-*; "
                            "SERVER@SITE for one site of an anycast server (a.root-servers.net@ams down "
                            "withdraws its route, up announces it)")
    fault.add_argument("kind", metavar="KIND", help="one of those below")
    fault.add_argument("args", nargs="*", action=_FaultArgs, metavar="ARG",
                       help="the kind's numbers, as below (delay MS [JITTER], loss PCT)")
    fault.add_argument("--name", action="append", default=None, metavar="PATTERN", dest="select_names",
                       help="only queries for this name and below, or a glob like '*.example.com' (repeatable)")
    fault.add_argument("--type", action="append", default=None, metavar="TYPE", dest="select_types",
                       help="only queries of this type (repeatable)")
    fault.add_argument("--every", type=arg(validate.whole, 1, fault_kinds.MAX_EVERY), default=None, metavar="N",
                       help="one in N of the matching queries: the 1st, then every Nth (CoreDNS erratic)")
    fault.add_argument("--pct", type=arg(validate.amount, 0.001, 100, "%"), default=None, metavar="PCT",
                       help="each matching query with this probability (seeded per server)")
    commands.add_parser("faults", parents=[pick], help="list the faults in force")
    capture = commands.add_parser(
        "capture", parents=[pick], help="write what lab servers and the resolver send and receive to a pcap file",
        description="Capture DNS messages as the lab's listeners see them (no root, no raw sockets): real "
                    "addresses and ports, synthesised IPv4/UDP/TCP headers, in a pcap file that tcpdump -r, "
                    "tshark and Wireshark read. Stops after --count packets or --seconds, whichever first, "
                    "or at Ctrl-C. The lab port is not 53: tell tshark `-d udp.port==PORT,dns -d "
                    "tcp.port==PORT,dns`.")
    capture.add_argument("target", nargs="?", default="all", metavar="SERVER|resolver|all",
                         help="a lab server (address or NS name); resolver: its clients and its own "
                              "queries upstream; all (default): every server and the resolver's clients")
    capture.add_argument("-w", "--write", required=True, metavar="FILE", help="the pcap file (- for standard output)")
    capture.add_argument("--count", type=arg(validate.whole, 1, capturing.MAX_PACKETS),
                         default=capturing.DEFAULT_PACKETS, metavar="N",
                         help=f"stop after N packets (default {capturing.DEFAULT_PACKETS})")
    capture.add_argument("--seconds", type=arg(validate.amount, 0.001, capturing.MAX_SECONDS, "s"),
                         default=capturing.DEFAULT_SECONDS, metavar="S",
                         help=f"stop after S seconds (default {capturing.DEFAULT_SECONDS:g})")
    queries = commands.add_parser("queries", parents=[pick], help="what a lab server was asked, by name and type")
    queries.add_argument("server", metavar="SERVER")
    queries.add_argument("--reset", action="store_true", help="then start counting from zero")

    endpoints = commands.add_parser("endpoints", parents=[pick],
                                    help="steered names (lab.toml [steering]): endpoints, health, last answer")
    endpoints.add_argument("--json", action="store_true")
    endpoint = commands.add_parser(
        "endpoint", parents=[pick], help="take a steered name's endpoint down or bring it up",
        description="The service at ADDRESS stops (down) or starts (up) answering its health checks; each "
                    "steered name that lists it notices at its next check (every `interval` seconds of lab "
                    "clock, `threshold` in a row), and answers by its policy.")
    endpoint.add_argument("address", metavar="ADDRESS")
    endpoint.add_argument("state", choices=["down", "up"])

    record = commands.add_parser("record", help="change a record while the lab runs (the SOA serial goes up)")
    record_commands = record.add_subparsers(dest="record_command", metavar="set|add|delete", required=True)
    zone_help = ("the zone to change (default: the closest lab zone of NAME); a parent's delegation (NS) and "
                 "glue are changed with --zone PARENT. Without it, a NAME that would land in the root or a TLD "
                 "zone below its apex is refused, as a typo most likely")
    where = ("DATA is the rest of the line, as in a zone file or nsupdate: 'record set example.com MX 10 "
             "mail.example.com.' (TXT: quote a string with spaces, '\"two words\"'). ")
    servers = ("NS and address records start and stop lab servers at once, as the zones then say "
               "(the change prints them).")
    for verb, text in (("set", "replace the RRset NAME TYPE with one record"),
                       ("add", "add one record to the RRset NAME TYPE (nsupdate's 'update add')")):
        command = record_commands.add_parser(verb, parents=[pick], help=text,
                                             description=text[0].upper() + text[1:] + ". " + where + servers)
        command.add_argument("name", metavar="NAME")
        command.add_argument("type", metavar="TYPE")
        command.add_argument("data", nargs="+", metavar="DATA")
        command.add_argument("--ttl", type=arg(validate.ttl), default=300, metavar="SECONDS",
                             help="the RRset's TTL (default 300)")
        command.add_argument("--zone", default=None, metavar="ZONE", help=zone_help)
    record_delete = record_commands.add_parser("delete", parents=[pick], help="delete the RRset NAME TYPE")
    record_delete.add_argument("name")
    record_delete.add_argument("type")
    record_delete.add_argument("--zone", default=None, metavar="ZONE", help=zone_help)
    commands.add_parser("reload", parents=[pick],
                        help="re-read the zone files from disk (servers start and stop as they say)",
                        description="Re-read every zone file: zones new and gone, servers started and stopped "
                                    "as the files' NS and address records say. Changes made with 'dnslab record' "
                                    "are replaced by the files' data; the command says how many.")
    commands.add_parser("web", parents=[pick], help="print the address of the running lab's web view (with its token)")

    clock = commands.add_parser("clock", parents=[pick], help="show the lab clock, or move a fake one forward")
    clock.add_argument("action", nargs="?", choices=["show", "advance"], default="show")
    clock.add_argument("seconds", nargs="?", type=arg(validate.clock_step), default=None,
                       help=f"how far to move a fake clock: 0 to {validate.MAX_CLOCK_STEP} (ten years) at a time")

    sign = commands.add_parser(
        "sign", help="sign one zone file for use elsewhere (NSD, BIND, Knot load the output)",
        description="Sign ZONEFILE with a KSK and a ZSK (made once in the keys folder, kept for the next "
                    "run), NSEC or NSEC3, signatures valid for 14 days from now; print the DS record for "
                    "the parent zone.")
    sign.add_argument("file", type=Path, metavar="ZONEFILE")
    sign.add_argument("--origin", type=arg(validate.name), default=None, metavar="NAME",
                      help="the zone's name, when the file has no $ORIGIN")
    sign.add_argument("--keys", type=Path, default=None, metavar="DIR",
                      help="keys folder (default: .keys beside the zone file)")
    sign.add_argument("--nsec3", action="store_true", help="NSEC3 (no salt, no extra iterations) instead of NSEC")
    sign.add_argument("--algorithm", default="ECDSAP256SHA256", metavar="ALG",
                      help="ECDSAP256SHA256 (default), ECDSAP384SHA384, ED25519, ED448, RSASHA256 or RSASHA512")
    sign.add_argument("-o", "--output", type=Path, default=None, metavar="OUT",
                      help="where to write the signed zone (default: ZONEFILE.signed; - for standard output)")

    scenario_cli.add_parser(commands)
    check = commands.add_parser("check-zone", help="validate zone files as the lab loads them",
                                description="Print every error and warning with file and line; "
                                            "exit 1 if any file has an error.")
    check.add_argument("files", type=Path, nargs="+", metavar="FILE")
    check.add_argument("--origin", type=arg(validate.name), default=None, metavar="NAME",
                       help="the zone's name, when the file has no $ORIGIN (only with one FILE)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; a reader that stops early (`dnslab stats | head -1`) ends it quietly.

    That is how Unix tools behave on SIGPIPE. Python ignores SIGPIPE and raises
    BrokenPipeError instead; as its documentation advises (signal module, "Note
    on SIGPIPE"), stdout then points at /dev/null so the interpreter's final
    flush cannot fail again, and the exit code is a SIGPIPE death's, 128 + 13.
    """
    try:
        code = _main(argv)
        sys.stdout.flush()  # now, while a closed pipe can still be handled here
        return code
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 128 + signal.SIGPIPE


def _main(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(asctime)s %(name)s %(levelname)s: %(message)s")
    if args.command is None:
        parser.print_help()
        return 2
    try:
        if args.command == "up":
            return cmd_up(args, sys.stdout)
        if args.command == "init":
            return cmd_init(args, sys.stdout)
        if args.command == "serve":
            return cmd_serve(args, sys.stdout)
        if args.command == "resolver":
            return cmd_resolver(args, sys.stdout)
        if args.command == "capture":
            from dnslab.faces.capture import cmd_capture
            return cmd_capture(args, sys.stdout)
        if args.command in INSPECT:
            return INSPECT[args.command](args, sys.stdout)
        if args.command == "check-zone":
            return cmd_check_zone(args, sys.stdout)
        if args.command == "sign":
            return cmd_sign(args, sys.stdout)
        if args.command == "scenario":
            return scenario_cli.cmd_scenario(args, sys.stdout)
    except DnslabError as exc:
        print(f"dnslab: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    parser.error(f"unknown command {args.command}")
    return 2  # pragma: no cover


# --- init --------------------------------------------------------------------------------


def cmd_init(args: argparse.Namespace, out: TextIO) -> int:
    """Copy the sample zones out of the package; never into a folder that holds anything."""
    target: Path = args.dir
    if target.exists() and not target.is_dir():
        raise ConfigError(f"{target}: exists and is not a folder")
    if target.is_dir() and any(target.iterdir()):
        raise ConfigError(f"{target}: the folder is not empty; give a new or empty folder "
                          "(dnslab init never overwrites files)")
    files = sorted(p for p in SAMPLE_ZONES.iterdir() if p.is_file() and not p.name.startswith("."))
    try:
        target.mkdir(parents=True, exist_ok=True)
        for source in files:
            shutil.copyfile(source, target / source.name)
    except OSError as exc:
        raise ConfigError(f"cannot copy the sample zones to {target}: {exc.strerror or exc}") from None
    zone_count = sum(1 for p in files if p.suffix == ".zone")
    print(f"dnslab: copied {zone_count} zone files, lab.toml and README.md into {target}", file=out)
    print(f"Edit them, check with 'dnslab check-zone {target}/*.zone', serve with 'dnslab up --zones {target}'.",
          file=out)
    return 0


# --- check-zone --------------------------------------------------------------------------


def cmd_check_zone(args: argparse.Namespace, out: TextIO) -> int:
    if args.origin is not None and len(args.files) > 1:
        raise ConfigError("--origin applies to one file; give the files one at a time")
    failed = False
    for path in args.files:
        loaded = load_zone(path, args.origin)
        for problem in loaded.problems:
            print(problem, file=out)
        if loaded.zone is None:
            failed = True
            print(f"{path}: not loaded ({len(loaded.errors)} error(s), {len(loaded.warnings)} warning(s))", file=out)
        else:
            count = sum(len(rrset) for rrset in loaded.zone.rrsets())
            serial = loaded.zone.soa[0].serial  # type: ignore[attr-defined]
            print(f"{path}: zone {loaded.zone.origin} loaded: serial {serial}, {count} records, "
                  f"{len(loaded.warnings)} warning(s)", file=out)
    return 1 if failed else 0


# --- sign --------------------------------------------------------------------------------


def cmd_sign(args: argparse.Namespace, out: TextIO) -> int:
    loaded = load_zone(args.file, args.origin)
    for problem in loaded.problems:
        print(problem, file=sys.stderr)
    if loaded.zone is None:
        raise ConfigError(f"{args.file}: not signed: the zone has errors")
    zone = loaded.zone
    keys_dir = args.keys if args.keys is not None else args.file.resolve().parent / ".keys"
    keys = load_or_create(keys_dir, zone.origin, algorithm_from_text(args.algorithm))
    signed = sign_zone(zone, keys, time.time(), SigningPolicy(algorithm=keys.ksk.dnskey.algorithm, nsec3=args.nsec3))
    text = zone_text(signed)
    output = args.output if args.output is not None else args.file.with_name(args.file.name + ".signed")
    if str(output) == "-":
        out.write(text)
    else:
        try:
            output.write_text(text, encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot write {output}: {exc.strerror or exc}") from None
    ds = dns.rrset.from_rdata(zone.origin, 86400, make_ds(keys))
    info = sys.stderr if str(output) == "-" else out
    if str(output) != "-":
        print(f"dnslab: signed {zone.origin} into {output} (KSK {keys.ksk.tag}, ZSK {keys.zsk.tag}, "
              f"{'NSEC3' if args.nsec3 else 'NSEC'}; keys in {keys_dir})", file=info)
    print("; the DS record for the parent zone:", file=info)
    print(ds.to_text(), file=info)
    return 0


# --- serve -------------------------------------------------------------------------------


def parse_listen(text: str, default_port: int = 53) -> tuple[str, int]:
    """ADDR, ADDR:PORT, [V6] or [V6]:PORT."""
    host, port_text = text, ""
    if text.startswith("["):
        if "]" not in text:
            raise ConfigError(f"--listen {text!r}: expected [IPV6-ADDRESS]:PORT, but the ']' is missing")
        host, _, rest = text[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else rest
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    if not host:
        raise ConfigError(f"--listen {text!r}: no address")
    if not port_text:
        return host, default_port
    return host, validate.port(port_text, f"--listen {text!r}")


def cmd_serve(args: argparse.Namespace, out: TextIO) -> int:
    zones, problems = load_zones(args.zone)
    for problem in problems:
        print(problem, file=sys.stderr)
    host, port = parse_listen(args.listen)
    names = " ".join(zone.origin.to_text() for zone in zones) or "(none: every query is REFUSED)"
    collector.serving()
    return _listen_until_stopped(
        host, port, AuthoritativeServer(zones).handle, out,
        lambda bound: f"dnslab: serving {names} on {host}:{bound} (UDP and TCP). Ctrl-C stops.")


def _listen_until_stopped(host: str, port: int, handler: Handler, out: TextIO,
                          banner: Callable[[int], str], pool: WorkerPool | None = None) -> int:
    serve_until_stopped(host, port, handler, lambda bound: print(banner(bound), file=out, flush=True), pool)
    return 0


# --- resolver ---------------------------------------------------------------------------


def resolver_options(args: argparse.Namespace) -> tuple[Path, tuple[str, int], ResolverSettings]:
    """Merge the TOML file and the flags (flags win) into hints, listen address and settings."""
    values: dict[str, object] = {}
    where = "command line"
    if args.config is not None:
        values = load_toml(args.config)
        where = str(args.config)
    hints_value = args.root_hints if args.root_hints is not None else values.pop("root_hints", None)
    listen_value = args.listen if args.listen is not None else values.pop("listen", "127.0.0.1:53")
    values.pop("root_hints", None)
    values.pop("listen", None)
    settings = resolver_settings(values, where)
    flags = {option.name: getattr(args, option.name) for option in OPTIONS
             if getattr(args, option.name, None) is not None}
    settings = resolver_settings(flags, "command line", base=settings)
    if hints_value is None:
        raise ConfigError("no root hints: give --root-hints FILE (or root_hints in the config file)")
    if not isinstance(listen_value, str):
        raise ConfigError(f"{where}: listen must be a string like '127.0.0.1:5300'")
    return Path(str(hints_value)), parse_listen(listen_value), settings


def cmd_resolver(args: argparse.Namespace, out: TextIO) -> int:
    hints_path, (host, port), settings = resolver_options(args)
    hints = load_root_hints(hints_path)
    collector.serving()
    pool = None
    if args.workers > 1:  # each a whole resolver with its own cache, on the port this process binds
        pool = WorkerPool(args.workers - 1, lambda: ListenerWorker(host, RecursiveResolver(hints, settings).handle))
        pool.fork()
    return _listen_until_stopped(
        host, port, RecursiveResolver(hints, settings).handle, out, pool=pool,
        banner=lambda bound: f"dnslab: resolver on {host}:{bound} (UDP and TCP), {len(hints)} root server "
                      f"address(es) from {hints_path}, upstream port {settings.upstream_port}. Ctrl-C stops.\n"
                      f"Try: dig @{host} -p {bound} www.example.com" +
                      (f"\n{args.workers} worker processes share the port (SO_REUSEPORT), each with its own cache."
                       if args.workers > 1 else ""))


# --- up ----------------------------------------------------------------------------------


def cmd_up(args: argparse.Namespace, out: TextIO) -> int:
    zones_dir = args.zones if args.zones is not None else default_zones_dir()
    if args.no_resolver and args.resolver is not None:
        raise ConfigError("--no-resolver runs no resolver at all; leave out --resolver, or --no-resolver")
    chosen = [programs.parse_server_choice(text) for text in args.server]
    # A big lab is millions of objects made once and kept: Python's cycle collector is paused while
    # they are made (each full collection walked them all again), and then collector.serving() freezes
    # them out of its walks, so a collection while serving does not stop the lab for a walk over every
    # name. They are frozen before the collector is on again: its first collection after the pause
    # would otherwise walk everything made during it (1 s for a million names).
    with collector.paused():
        lab, problems = Lab.from_folder(zones_dir, port=args.port, with_resolver=not args.no_resolver,
                                        clock=FakeClock() if args.fake_clock else None, dnssec=args.dnssec,
                                        nsec3=args.nsec3, keys_dir=args.keys, anchor_file=args.anchor,
                                        resolver_program=args.resolver,
                                        server_programs=[(server, program.name) for server, program in chosen],
                                        only=None if args.only is None else split.parse_networks(args.only),
                                        shared_sockets=args.shared_sockets)
        collector.serving()
    if (lab.foreign is not None or lab.foreign_servers) and args.workers > 1:
        raise ConfigError("--workers shares the lab among processes, and a real program runs once: "
                          "leave out --workers with --resolver or --server")
    for problem in problems:
        print(problem, file=sys.stderr)
    for warning in lab.hierarchy.warnings:
        print(f"dnslab: warning: {warning}", file=sys.stderr)
    for running in lab.servers:  # lab.toml's [servers.X] handler: said, as these servers do not answer from zones
        if running.handler is not None:
            script = running.handler
            print(f"dnslab: {running.plan.address} answers through the scripted handler "
                  f"{getattr(script, '__module__', '?')}:{getattr(script, '__qualname__', script)} (lab.toml)",
                  file=sys.stderr)
    hints_path = args.hints if args.hints is not None else default_hints_path()
    web = None if args.no_web else functools.partial(_web_view, port=args.web_port)
    runner = Runner(lab, RunOptions(hints=hints_path, state_dir=state_dir(), workers=args.workers, web=web))
    runner.fork_workers()

    async def run() -> None:
        with stop_signals(asyncio.Event()) as stopped:
            await runner.start()
            try:
                runner.watch_workers(stopped)
                if args.log_queries and lab.resolver is not None:
                    lab.resolver.subscribe(QueryLogger(lambda entry: print(entry.line(), file=out, flush=True)))
                print_lab(lab, zones_dir, hints_path, out, runner.web.url if runner.web is not None else None)
                if args.workers > 1:
                    print(f"{args.workers} worker processes share every address (SO_REUSEPORT); "
                          "each has its own cache.", file=out, flush=True)
                await stopped.wait()
            finally:
                await runner.stop()

    run_async(run())
    if runner.death is not None:
        raise DnslabError(f"{runner.death}: lab stopped")
    print("dnslab: lab stopped.", file=out, flush=True)
    return 0


def print_zone_operations(lab: Lab, out: TextIO) -> None:
    """The TSIG key (for dig -y, nsupdate -y/-k) and each secondary, so zone transfers and updates can be tried."""
    key = lab.replication.key
    part = split.part_name(lab.only)  # the parts of a split lab each have a key of their own
    key_file = lab.replication.write_key_file(runtime_dir() / f"tsig-{lab.actual_port}{'-' + part if part else ''}.key")
    print(f"TSIG key for UPDATE and signed transfers (docs/ZONE_OPERATIONS.md): -y {tsig.dig_option(key)}"
          f"\n  (or nsupdate -k {key_file}); dig @ADDRESS -p {lab.actual_port} ZONE AXFR from loopback", file=out)
    for copy in lab.replication.secondaries.to_json():
        print(f"Secondary: {copy['zone']} on {copy['address']} from {copy['primary']}, serial {copy['serial']}, "
              f"{copy['state']}", file=out)


def _web_view(lab: Lab, workers: list[LabState], port: int) -> WebView:
    from dnslab.faces.web import WebServer  # only when served: it reads the page's files

    return WebServer(lab, workers, port=port)


def print_foreign(lab: Lab, out: TextIO) -> None:
    """What runs as a real program, where its files are, and what the lab cannot do with it."""
    if lab.foreign_resolver is not None:
        program, setup = lab.foreign, lab.foreign_resolver.setup
        assert program is not None
        print(f"Resolver: {program.title} ({lab.foreign_resolver.binary}), configuration "
              f"{lab.foreign_resolver.conf}, log {setup.log}", file=out)
        flush = "" if program.name == "unbound" else ", cache flush"
        print(f"  Not with {program.title}: dnslab trace, cache show{flush}, servers, stats (they look "
              "inside dnslab's own resolver); the lab clock does not reach it (its TTLs run on the "
              "machine's time)", file=out)
        if not program.any_port:
            print(f"  {program.port_note}: the lab runs on port 53", file=out)
    for address, foreign in lab.foreign_servers.items():
        print(f"Server {address}: {foreign.program.title} on {foreign.listen_address}:{foreign.port}, behind the lab's "
              f"fault layer; files in {foreign.workdir}; record changes, reloads and DNSSEC faults do "
              "not reach it", file=out)


def print_lab(lab: Lab, zones_dir: Path, hints_path: Path, out: TextIO, web_url: str | None = None) -> None:
    """The resolver's dig line first, and the web view; then the table of servers and a walk to paste by hand."""
    port = lab.actual_port
    walk = example_walk(lab)
    name = walk[0].to_text(omit_final_dot=True) if walk is not None else "www.example.com"
    if lab.resolver_address is not None:
        print(f"dig @{lab.resolver_address} -p {port} {name}", file=out)
        who = f"{lab.foreign.title}, " if lab.foreign is not None else ""
        print(f"  ({who}the recursive resolver on {lab.resolver_address}:{port}, UDP and TCP)"
              + ("" if web_url or lab.trust_anchor_file else "\n"), file=out)
        if lab.trust_anchor_file is not None:
            print(f"  (signed zones, validated: the ad flag means secure; dig +dnssec shows the RRSIGs, "
                  f"+cd skips validation; trust anchor {lab.trust_anchor_file})"
                  + ("" if web_url else "\n"), file=out)
    if web_url:
        print(f"open {web_url}", file=out)
        print("  (the live web view: hierarchy, client queries and their traces, cache; the link holds "
              "the lab's token)\n", file=out)
    print_levels_banner(lab.levels.listing(port, lab.resolver_address), out)
    rows = [("ROLE", "SERVER", "ADDRESS", "ZONES")]
    for running in lab.servers:
        plan = running.plan
        zones = " ".join(zone.origin.to_text() for zone in plan.zones)
        state = "" if running.up else "   (down)"
        if plan.address in lab.foreign_servers:
            state += f"   (served by {lab.foreign_servers[plan.address].program.title})"
        rows.append((plan.role.value, plan.name.to_text(), f"{plan.address}:{port}", zones + state))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    up_count = sum(1 for r in lab.servers if r.up)
    source = "the sample zones" if zones_dir.resolve() == SAMPLE_ZONES else zones_dir
    print(f"dnslab: {up_count} of {len(lab.servers)} servers up, {len(lab.zones)} zones from {source}, "
          f"port {port}", file=out)
    if lab.sockets.note is not None:
        print(f"  {lab.sockets.note}", file=out)
    if lab.only:
        others = len(lab.hierarchy.servers) - len(lab.servers)
        print(f"  (this process serves only {', '.join(str(n) for n in lab.only)} (--only); {others} more lab "
              "servers must be served by other processes on this port)", file=out)
    for row in rows:
        print("  " + "  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[3], file=out)
    print(f"\nRoot hints (named.root format): {hints_path}", file=out)
    if isinstance(lab.clock, FakeClock):
        print("Lab clock: fake (--fake-clock): TTLs, negative caching, hold-downs and signature times move only "
              "with 'dnslab clock advance SECONDS'; network timeouts stay real", file=out)
    if lab.signer is not None:
        unsigned = " ".join(name.to_text() for name in lab.signer.settings.unsigned)
        print(f"DNSSEC: {len(lab.signer.keys)} zones signed in {lab.signer.signing_seconds:.2f} s "
              f"({'NSEC3' if lab.signer.settings.nsec3 else 'NSEC'}), keys in {lab.signer.settings.keys_dir}"
              + (f"; left unsigned: {unsigned}" if unsigned else ""), file=out)
        if lab.trust_anchor_file is not None:
            print(f"Trust anchor (root DS; Unbound's trust-anchor-file): {lab.trust_anchor_file}", file=out)
    print_foreign(lab, out)
    print_zone_operations(lab, out)
    if walk is not None:
        print("\nOr walk the hierarchy yourself, from the root down:", file=out)
        for plan in walk[1]:
            what = "authoritative answer" if plan is walk[1][-1] else "a referral"
            print(f"  dig @{plan.address} -p {port} +norecurse {name}    # {plan.role.value}: {what}", file=out)
    print("\nCtrl-C stops the lab.", file=out, flush=True)
