#!/usr/bin/env python3
"""dnslab's performance benchmark: dnslab side by side with Unbound and NSD, on loopback.

    scripts/bench [--json] [--only hits,auth,mix,cold,memory] [--duration S] [--outstanding N]
                  [--latency-duration S] [--pace F] [--kind-duration S] [--cold-outstanding N] [--cold-limit S]
                  [--hierarchy DIR] [--python PATH] [--python-load] [--no-install] [--keep]
    scripts/bench --dnsdist N [...]      scripts/bench --only big [--big-zones M] [--big-names K]

Scenarios (each run bounded in time; every address is in 127.0.0.0/8):

  hits    Resolver cache hits.  The sample hierarchy (dnslab/zones/) runs in one
          process (`dnslab up --no-resolver`, on port 53 so that Unbound can
          use it too), dnslab's resolver in another (`dnslab resolver`), so its
          CPU time is its own.  Both resolvers are warmed with the query file,
          then dnsperf sends it for --duration seconds with --outstanding
          queries in flight (open loop: the server's maximum rate).
          Reference: Unbound, one thread, iterator only, the lab's root hints.
          Also the "floor" row: a Python responder on the same interpreter
          and event loop answering from a dict of ready replies (only the ID
          patched), the most any Python server reaches on this machine.
  auth    Authoritative server.  dnsperf at ns1.example.com of that lab
          (127.0.3.1; CPU of the lab process, whose other servers are idle),
          at `dnslab serve` with example.com alone, and at NSD serving the
          same zone file (server-count 1, no RRL).
  mix     Every kind of answer (tools/bench_mix.py).  A signed hierarchy of
          its own (a 100- and a 40-record A set, a 2 KB TXT, CNAME and DNAME
          chains, a wildcard, NXDOMAIN, NODATA) on port 53; dnslab's resolver
          and Unbound (both validating from the lab's trust anchor) warmed,
          then each kind alone for --kind-duration seconds (plain-DNS, EDNS
          and DO=1 clients; replies that truncate included), then all at once
          (one dnsperf per way of asking) for --duration; the CPU per query of
          each kind beside Unbound's, against 3x the median kind.  The same
          for the authoritative servers (large answers, TC, a referral with
          glue): the lab's server, `dnslab serve` and NSD, same zone file.
  cold    Cold resolution.  scripts/gen-hierarchy writes a hierarchy (136
          zones, 10,000 names; or --hierarchy DIR), served on port 53; a freshly
          started dnslab resolver, then a freshly started Unbound, resolve
          every name once (dnsperf -n 1, --cold-outstanding in flight).  Also
          the RSS each resolver grew by per name resolved.
  memory  RSS growth per cached RRset: a Python process fills a dnslab.resolution.cache
          Cache with 100,000 distinct A RRsets and reads VmRSS before and after.
  big     Start time and RSS per name of `dnslab up` serving a generated
          hierarchy (tools/bench_big.py; 2,000 zones of 20 names by default;
          --big-sockets says whether its servers share two sockets).
  tier    (--dnsdist N; alone unless --only names others) The resolver tier
          (tools/bench_dnsdist.py): the sample hierarchy on a free port; one
          `dnslab resolver` alone, then `--workers 2`, then dnsdist (no packet
          cache) in front of 1..N resolvers, each on its own address; cache
          hits, the CPU of the whole tier per query, dnsdist's own apart.

Prints one table (or --json): per scenario dnslab's and the reference's
figure, their ratio and the issue's target, latency (average and 99th
percentile from dnsperf -v, in a second run at --pace times dnslab's maximum
rate, the same rate for both: -v costs dnsperf CPU the server would lack at
full speed), queries lost (and how many the server's socket dropped, from
/proc/net/udp), and server CPU time per answered query (utime + stime of the
server's processes from /proc, before and after, divided by the queries
answered).  Progress goes to stderr.  A whole run takes about 6 minutes.

Needs Debian's dnsperf, and unbound and nsd as references: installed with
apt-get when missing (as root, unless --no-install).  Without a reference its
scenario runs dnslab alone and says "reference unavailable"; without dnsperf a
small built-in Python load generator stands in (its figures are client-bound).
Port 53 needs root; when it cannot be had on a lab address, dnslab's servers
run on a free port and the Unbound runs are skipped, with the reason.

Run with the project's environment, or let it find one:
    /tmp/venv/bin/python scripts/bench      .venv/bin/python scripts/bench
Every process it starts is stopped at the end, also on Ctrl-C or an error.
"""

from __future__ import annotations

import argparse
import atexit
import datetime
import json
import os
import platform
import random
import re
import select
import shutil
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tools import bench_big, bench_dnsdist, bench_mix
from tools.common import lab as labs
from tools.common.lab import REPO, SAMPLE_ZONES, LabUnavailable, UpLab
from tools.common.net import RCODES, ask_rcode, free_port, query_wire, udp_drops, wait_answering
from tools.common.procs import Managed, cpu_seconds, interrupt_on_sigterm, rss_kib
from tools.common.reference import ensure_packages, not_installed, start_nsd, start_unbound, version
from tools.common.report import format_table, sayer, tail


BENCH_NET = "127.0.96."          # our own listeners: .1 NSD, .2 Unbound, .3 dnslab resolver, .4 dnslab serve,
                                 # .5 the floor responder
NSD_ADDRESS = BENCH_NET + "1"
UNBOUND_ADDRESS = BENCH_NET + "2"
RESOLVER_ADDRESS = BENCH_NET + "3"
SERVE_ADDRESS = BENCH_NET + "4"
FLOOR_ADDRESS = BENCH_NET + "5"

# The floor: the least a Python server on the same event loop can do per query (the
# issue's "dict of ready wire replies, only the ID patched"). Each new question gets
# its query echoed with QR and RA set as its ready reply; nothing else happens.
FLOOR_RESPONDER = """
import asyncio, socket, sys
try:
    import uvloop
    uvloop.install()
except ImportError:
    pass

class Ready(asyncio.DatagramProtocol):
    def __init__(self):
        self.replies = {}
    def connection_made(self, transport):
        self.transport = transport
        transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)  # as dnslab
    def datagram_received(self, data, addr):
        reply = self.replies.get(data[2:])
        if reply is None:
            if len(data) < 12:
                return
            made = bytearray(data)
            made[2] |= 0x80
            made[3] |= 0x80
            reply = self.replies[data[2:]] = bytes(made[2:])
        self.transport.sendto(data[:2] + reply, addr)

async def main():
    await asyncio.get_running_loop().create_datagram_endpoint(Ready, local_addr=(sys.argv[1], int(sys.argv[2])))
    await asyncio.Event().wait()

asyncio.run(main())
"""
AUTH_SERVER = "127.0.3.1"         # ns1.example.com in the sample zones
AUTH_ZONE = SAMPLE_ZONES / "example.com.zone"
MEMORY_ENTRIES = 100_000
TOOLS = {"dnsperf": "dnsperf", "unbound": "unbound", "nsd": "nsd"}  # Debian package -> binary

# Cache hits: names of the sample zones a resolver answers from its cache (positive,
# CNAME chains, a wildcard, NODATA, NXDOMAIN); none with a TTL under 300 s, none of
# failover.com (one of its servers starts down).
HIT_QUERIES = """\
www.example.com A
www.example.com AAAA
mail.example.com A
api.example.com A
vpn.example.com A
ftp.example.com A
example.com MX
example.com TXT
www.example.org A
mail.example.org A
_sip._udp.example.org SRV
www.example.net A
mail.example.net A
wiki.eng.example.com A
build.eng.example.com A
www.pages.net A
anything.pages.net A
www.dns-host.org A
v6only.example.com A
nonexistent.example.com A
"""

# Authoritative: questions to ns1.example.com about its own zone (answers, a CNAME,
# NODATA, NXDOMAIN, a referral to eng.example.com); not the TC-forcing big TXT.
AUTH_QUERIES = """\
www.example.com A
www.example.com AAAA
mail.example.com A
mail.example.com AAAA
api.example.com A
vpn.example.com A
ftp.example.com A
example.com MX
example.com TXT
example.com NS
example.com SOA
ns1.example.com A
v6only.example.com A
nonexistent.example.com A
wiki.eng.example.com A
"""

say = sayer("bench:", sys.stderr)


def read_queries(text: str) -> list[tuple[str, str]]:
    out = []
    for line in text.splitlines():
        parts = line.split()
        if parts and not parts[0].startswith("#"):
            out.append((parts[0], parts[1] if len(parts) > 1 else "A"))
    return out


def warm(address: tuple[str, int], queries: list[tuple[str, str]], passes: int = 2) -> dict[str, int]:
    """Ask every question, one at a time, until answered (resolves and caches them)."""
    rcodes: dict[str, int] = {}
    for number in range(passes):
        for name, qtype in queries:
            for _ in range(3):
                rcode = ask_rcode(address, query_wire(name, qtype, random.randrange(65536)), 5.0)
                if rcode is not None:
                    break
            if number == passes - 1:
                text = RCODES.get(rcode, str(rcode)) if rcode is not None else "no reply"
                rcodes[text] = rcodes.get(text, 0) + 1
    return rcodes





@dataclass
class Perf:
    """One load run against one server, as dnsperf reports it, plus the server's CPU and memory."""

    tool: str
    sent: int = 0
    completed: int = 0
    lost: int = 0
    runtime_s: float = 0.0
    qps: float = 0.0
    latency_avg_ms: float | None = None
    latency_p99_ms: float | None = None
    rcodes: dict[str, int] = field(default_factory=dict)
    cpu_s: float | None = None
    cpu_us_per_query: float | None = None
    rss_before_kib: int | None = None
    rss_after_kib: int | None = None
    server_drops: int | None = None     # datagrams the server's socket dropped (receive buffer full)
    rate_limit: int | None = None       # dnsperf -Q: a paced run


class LoadGenerator:
    def __init__(self, dnsperf: str | None, workdir: Path) -> None:
        self.dnsperf = dnsperf
        self.workdir = workdir
        self.runs = 0

    def run(self, address: tuple[str, int], queries: list[tuple[str, str]], *, duration: float,
            outstanding: int, passes: int | None = None, timeout: float = 2.0, verbose: bool = False,
            rate: int | None = None, server_pid: int | None = None, label: str = "", mode: str = "edns") -> Perf:
        """Measure one run; CPU and RSS of server_pid's process tree around it.

        verbose: per-query latencies (dnsperf -v), for the 99th percentile.  It costs
        dnsperf CPU, which on two cores the server then lacks: max-rate runs go without.
        mode: "edns" (EDNS0, 1232 bytes), "plain" (no EDNS) or "do" (EDNS with DO=1).
        """
        return self.run_together(address, {mode: queries}, duration=duration, outstanding=outstanding,
                                 passes=passes, timeout=timeout, verbose=verbose, rate=rate,
                                 server_pid=server_pid, label=label)

    def run_together(self, address: tuple[str, int], parts: dict[str, list[tuple[str, str]]], *, duration: float,
                     outstanding: int, passes: int | None = None, timeout: float = 2.0, verbose: bool = False,
                     rate: int | None = None, server_pid: int | None = None, label: str = "") -> Perf:
        """One run with a load generator per mode in *parts* at once (dnsperf sets EDNS and DO for a
        whole run, a mix needs all three), *outstanding* shared among them; their figures added up."""
        before_cpu = cpu_seconds(server_pid) if server_pid else None
        before_rss = rss_kib(server_pid) if server_pid else None
        before_drops = udp_drops(address)
        share = max(1, outstanding // len(parts))
        if self.dnsperf:
            starts = {mode: self._dnsperf_start(address, queries, duration, share, passes, timeout, verbose, rate,
                                                f"{label}-{mode}" if len(parts) > 1 else label, mode)
                      for mode, queries in parts.items()}
            perf = _added([self._dnsperf_finish(*started, duration, timeout) for started in starts.values()])
        else:
            perf = _added([self._python(address, queries, duration, share, passes, timeout, rate, mode)
                           for mode, queries in parts.items()])
        perf.rate_limit = rate
        after_drops = udp_drops(address)
        if before_drops is not None and after_drops is not None:
            perf.server_drops = after_drops - before_drops
        if server_pid:
            perf.cpu_s = cpu_seconds(server_pid) - before_cpu
            perf.rss_before_kib, perf.rss_after_kib = before_rss, rss_kib(server_pid)
            if perf.completed:
                perf.cpu_us_per_query = perf.cpu_s / perf.completed * 1e6
        return perf

    def _dnsperf_start(self, address: tuple[str, int], queries: list[tuple[str, str]], duration: float,
                       outstanding: int, passes: int | None, timeout: float, verbose: bool, rate: int | None,
                       label: str, mode: str) -> tuple[subprocess.Popen[bytes], Path]:
        self.runs += 1
        data = self.workdir / f"dnsperf-{self.runs}-{label}.txt"
        data.write_text("".join(f"{name} {qtype}\n" for name, qtype in queries), encoding="ascii")
        out_path = self.workdir / f"dnsperf-{self.runs}-{label}.out"
        argv = [self.dnsperf, "-s", address[0], "-p", str(address[1]), "-d", str(data), "-l", f"{duration:g}",
                "-q", str(outstanding), "-t", f"{timeout:g}", *MODE_FLAGS[mode]]
        if verbose:
            argv.append("-v")
        if rate:
            argv += ["-Q", str(rate)]
        if passes is not None:
            argv += ["-n", str(passes)]
        with open(out_path, "wb") as out:
            return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                    start_new_session=True), out_path

    def _dnsperf_finish(self, process: subprocess.Popen[bytes], out_path: Path, duration: float,
                        timeout: float) -> Perf:
        try:
            process.wait(duration + timeout + 30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
            raise RuntimeError(f"dnsperf did not finish in time; see {out_path}")
        finally:
            if process.poll() is None:
                process.kill()
        text = out_path.read_text(errors="replace")
        if process.returncode != 0 or "Queries sent" not in text:
            raise RuntimeError(f"dnsperf failed (status {process.returncode}):\n{tail(text)}")
        return parse_dnsperf(text)

    def _python(self, address: tuple[str, int], queries: list[tuple[str, str]], duration: float,
                outstanding: int, passes: int | None, timeout: float, rate: int | None, mode: str = "edns") -> Perf:
        """A window of queries in flight on one socket: a stand-in when dnsperf is missing (DO not set)."""
        wires = [query_wire(name, qtype, 0, edns=mode != "plain") for name, qtype in queries]
        perf = Perf(tool="python")
        latencies: list[float] = []
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setblocking(False)
        sock.connect(address)
        in_flight: dict[int, float] = {}
        free_ids = list(range(65536))
        random.shuffle(free_ids)
        started = time.monotonic()
        stop_sending = started + duration
        total = len(wires) * passes if passes is not None else None
        position = 0
        try:
            while True:
                now = time.monotonic()
                sending = now < stop_sending and (total is None or position < total)
                allowed = outstanding if rate is None else min(outstanding, len(in_flight) + max(
                    0, int((now - started) * rate) - perf.sent))
                while sending and len(in_flight) < allowed and free_ids:
                    ident = free_ids.pop()
                    wire = wires[position % len(wires)]
                    position += 1
                    try:
                        sock.send(struct.pack("!H", ident) + wire[2:])
                    except BlockingIOError:
                        free_ids.append(ident)
                        break
                    in_flight[ident] = time.monotonic()
                    perf.sent += 1
                    sending = total is None or position < total
                if not in_flight and not sending:
                    break
                if select.select([sock], [], [], 0.05 if rate is None else 0.001)[0]:
                    while True:
                        try:
                            data = sock.recv(65535)
                        except BlockingIOError:
                            break
                        (ident,) = struct.unpack("!H", data[:2])
                        sent_at = in_flight.pop(ident, None)
                        if sent_at is None:
                            continue
                        latencies.append(time.monotonic() - sent_at)
                        free_ids.append(ident)
                        rcode = RCODES.get(data[3] & 0x0F, str(data[3] & 0x0F))
                        perf.rcodes[rcode] = perf.rcodes.get(rcode, 0) + 1
                now = time.monotonic()
                for ident, sent_at in list(in_flight.items()):
                    if now - sent_at > timeout:
                        del in_flight[ident]
                        free_ids.append(ident)
                        perf.lost += 1
                if now > stop_sending + timeout and not in_flight:
                    break
        finally:
            sock.close()
        perf.runtime_s = time.monotonic() - started
        perf.completed = len(latencies)
        perf.qps = perf.completed / perf.runtime_s if perf.runtime_s else 0.0
        _latency_stats(perf, latencies)
        return perf


# dnsperf's flags for each way of asking (a whole run asks one way).
MODE_FLAGS = {"edns": ("-e",), "plain": (), "do": ("-e", "-D")}


def _added(perfs: list[Perf]) -> Perf:
    """Load generators that ran at once, as one: counts and rates added, the longest run time."""
    if len(perfs) == 1:
        return perfs[0]
    total = Perf(tool=perfs[0].tool)
    for perf in perfs:
        total.sent += perf.sent
        total.completed += perf.completed
        total.lost += perf.lost
        total.qps += perf.qps
        total.runtime_s = max(total.runtime_s, perf.runtime_s)
        for code, count in perf.rcodes.items():
            total.rcodes[code] = total.rcodes.get(code, 0) + count
    return total


def parse_dnsperf(text: str) -> Perf:
    def number(pattern: str, cast=float):  # type: ignore[no-untyped-def]
        match = re.search(pattern, text)
        return cast(match.group(1)) if match else cast(0)

    perf = Perf(tool="dnsperf")
    perf.sent = number(r"Queries sent:\s+(\d+)", int)
    perf.completed = number(r"Queries completed:\s+(\d+)", int)
    perf.lost = number(r"Queries lost:\s+(\d+)", int)
    perf.runtime_s = number(r"Run time \(s\):\s+([\d.]+)")
    perf.qps = number(r"Queries per second:\s+([\d.]+)")
    match = re.search(r"Response codes:\s+(.*)", text)
    if match:
        for code, count in re.findall(r"([A-Z]+) (\d+)", match.group(1)):
            perf.rcodes[code] = int(count)
    latencies = []
    for line in text.splitlines():
        if line.startswith("> "):
            try:
                latencies.append(float(line.rsplit(None, 1)[1]))
            except (IndexError, ValueError):
                pass
    _latency_stats(perf, latencies)
    if perf.latency_avg_ms is None:
        avg = re.search(r"Average Latency \(s\):\s+([\d.]+)", text)
        perf.latency_avg_ms = float(avg.group(1)) * 1000 if avg else None
    return perf


def _latency_stats(perf: Perf, latencies: list[float]) -> None:
    if not latencies:
        return
    latencies.sort()
    perf.latency_avg_ms = statistics.fmean(latencies) * 1000
    perf.latency_p99_ms = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000

# --- the things we run ------------------------------------------------------------------------


class Dnslab(labs.Dnslab):
    """This working tree's dnslab commands, with the bench's addresses."""

    def hierarchy(self, zones: Path, port: int) -> UpLab:
        """`dnslab up --no-resolver`: the servers only, the resolvers under test run apart."""
        return self.up(zones, port, "--no-resolver")

    def upstream_queries(self, hierarchy: UpLab, reset: bool = False) -> int | None:
        """Queries the hierarchy's servers received (their counters, via the control endpoint)."""
        try:
            workers = [None, *range(len(hierarchy.state().get("workers", [])))]
            return sum(int(hierarchy.control("queries", {"server": server, "reset": reset}, worker)["total"])
                       for worker in workers for server in hierarchy.servers)
        except (OSError, ValueError, KeyError, TypeError, RuntimeError):
            return None

    def answering(self, name: str, argv: list[str], address: tuple[str, int], what: str) -> tuple[Managed, tuple[str, int]]:
        self.count += 1
        process = Managed(what, argv, self.workdir / f"{name}-{self.count}.log", self.env)
        wait_answering(address, process, 30, what)
        return process, address

    def resolver(self, hints: Path, upstream_port: int, *options: str) -> tuple[Managed, tuple[str, int]]:
        address = (RESOLVER_ADDRESS, free_port(RESOLVER_ADDRESS))
        return self.answering("resolver", self.argv("resolver", "--root-hints", str(hints), "--listen",
                                                    f"{address[0]}:{address[1]}", "--upstream-port", str(upstream_port),
                                                    *options),
                              address, "dnslab resolver")

    def floor(self) -> tuple[Managed, tuple[str, int]]:
        """FLOOR_RESPONDER under the same interpreter (and event loop) as dnslab."""
        address = (FLOOR_ADDRESS, free_port(FLOOR_ADDRESS))
        return self.answering("floor", [self.python, "-c", FLOOR_RESPONDER, address[0], str(address[1])],
                              address, "the floor responder")

    def serve(self, zone: Path) -> tuple[Managed, tuple[str, int]]:
        address = (SERVE_ADDRESS, free_port(SERVE_ADDRESS))
        return self.answering("serve", self.argv("serve", "--zone", str(zone), "--listen", f"{address[0]}:{address[1]}"),
                              address, "dnslab serve")


def zone_origins(zones: Path) -> list[str]:
    """Each zone file's origin: its first $ORIGIN, else the file name (NAME.zone)."""
    origins = []
    for path in sorted(zones.glob("*.zone")):
        origin = None
        with open(path, encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if line.upper().startswith("$ORIGIN"):
                    origin = line.split()[1]
                    break
        origin = origin or ("." if path.stem == "root" else path.stem + ".")
        origins.append(origin if origin.endswith(".") else origin + ".")
    return origins



def start_reference_unbound(binary: str, workdir: Path, hints: Path, zones: Path,
                            anchor: Path | None = None) -> tuple[Managed, tuple[str, int]]:
    """Unbound in the foreground, one thread, iterator only, the lab's root hints (port 53);
    with *anchor*, validating from that trust anchor as dnslab's resolver does with it."""
    # Unbound answers RFC 6303/6761 names itself (2.0.192.in-addr.arpa. for one):
    # the lab's zones must be resolved instead.
    nodefault = [origin for origin in zone_origins(zones) if origin != "."]
    options = [
        "  verbosity: 1",
        "  num-threads: 1",
        "  so-reuseport: no",
        '  module-config: "iterator"' if anchor is None else '  module-config: "validator iterator"',
        *([f'  trust-anchor-file: "{anchor}"', "  val-log-level: 1"] if anchor is not None else []),
        "  qname-minimisation: yes",
        "  access-control: 127.0.0.0/8 allow",
        "  prefetch: no",
        "  minimal-responses: yes",
        "  rrset-roundrobin: yes",  # dnslab rotates too
        # Room for the whole cold run: nothing evicted, so RSS growth is the data.
        "  msg-cache-size: 64m",
        "  rrset-cache-size: 128m",
        *(f'  local-zone: "{name}" nodefault' for name in nodefault),
    ]
    # Known only to some versions; dropped when unbound-checkconf rejects it.  With it
    # off a reply that took over 1.9 s is never sent (a cold burst can take that long).
    return start_unbound(binary, workdir, UNBOUND_ADDRESS, hints, options, optional=("  discard-timeout: 0",))


def start_reference_nsd(binary: str, workdir: Path, zone: Path, origin: str) -> tuple[Managed, tuple[str, int]]:
    """NSD serving one zone file on one address (server-count 1, no response rate limiting)."""
    return start_nsd(binary, workdir, NSD_ADDRESS, [(origin, zone)], [
        "  server-count: 1", "  verbosity: 1", "  minimal-responses: yes", "  refuse-any: no",
        "  rrl-ratelimit: 0", "  rrl-whitelist-ratelimit: 0"])


# --- tools ----------------------------------------------------------------------------------------


def find_python(given: str | None) -> str:
    """An interpreter that can run dnslab: --python, this one, the venv scripts/ensure-venv makes."""
    if given:
        return given
    probe = "import dns, dnslib, cachetools"
    if subprocess.run([sys.executable, "-c", probe], capture_output=True).returncode == 0:
        return sys.executable
    for candidate in (REPO / ".venv" / "bin" / "python",):
        if candidate.exists() and subprocess.run([str(candidate), "-c", probe], capture_output=True).returncode == 0:
            return str(candidate)
    say("no Python with dnslab's dependencies here: running scripts/ensure-venv")
    venv = subprocess.run([str(REPO / "scripts" / "ensure-venv")], capture_output=True, text=True, timeout=600,
                          check=True).stdout.strip()
    return str(Path(venv) / "bin" / "python")


def machine_facts() -> dict[str, object]:
    model = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpus": os.cpu_count(), "cpu_model": model, "kernel": platform.release(),
            "python": platform.python_version(), "load_average_at_start": os.getloadavg()}


# --- the scenarios ------------------------------------------------------------------------------


@dataclass
class Row:
    scenario: str
    key: str
    unit: str                 # what dnslab and reference measure: "q/s", "B/RRset", ...
    reference_name: str | None
    dnslab: float | None = None
    reference: float | None = None
    ratio: float | None = None          # dnslab / reference
    target: str = ""
    target_met: bool | None = None
    dnslab_perf: Perf | None = None     # the max-rate run (or the cold run)
    reference_perf: Perf | None = None
    dnslab_paced: Perf | None = None    # the latency run, both at the same paced rate
    reference_paced: Perf | None = None
    seconds: tuple[float | None, float | None] = (None, None)  # wall time (cold runs)
    upstream: dict[str, int | None] = field(default_factory=dict)  # queries the hierarchy got (cold runs)
    note: str = ""


class Bench:
    def __init__(self, args: argparse.Namespace, workdir: Path, binaries: dict[str, str | None], python: str) -> None:
        self.args = args
        self.workdir = workdir
        self.binaries = binaries
        self.dnslab = Dnslab(python, workdir)
        self.python = python
        self.load = LoadGenerator(binaries["dnsperf"], workdir)
        self.rows: list[Row] = []

    # A hierarchy on port 53 when it can be had (Unbound asks port 53 only), else a free port.
    def start_hierarchy(self, zones: Path, reference_wanted: bool) -> tuple[UpLab, str | None]:
        why_not = None
        if reference_wanted:
            try:
                return self.dnslab.hierarchy(zones, 53), None
            except LabUnavailable as exc:
                why_not = f"port 53 unavailable on a lab address ({exc}); Unbound skipped"
                say(why_not)
        return self.dnslab.hierarchy(zones, 0), why_not

    def max_rate(self, what: str, address: tuple[str, int], queries: list[tuple[str, str]], pid: int,
                 label: str) -> Perf:
        say(f"{what}: max rate, {self.args.duration:g} s, {self.args.outstanding} in flight")
        return self.load.run(address, queries, duration=self.args.duration, outstanding=self.args.outstanding,
                             server_pid=pid, label=label)

    def paced(self, what: str, address: tuple[str, int], queries: list[tuple[str, str]], rate: int,
              label: str) -> Perf:
        say(f"{what}: latency at {rate:,} q/s, {self.args.latency_duration:g} s")
        return self.load.run(address, queries, duration=self.args.latency_duration,
                             outstanding=self.args.outstanding, verbose=True, rate=rate, label=label + "-paced")

    def pace(self, perf: Perf) -> int:
        """The rate of the latency runs: half dnslab's maximum, so neither server queues up."""
        return max(1000, int(perf.qps * self.args.pace / 1000) * 1000)

    def scenario_hits(self) -> None:
        say("cache hits: starting the sample hierarchy and dnslab's resolver")
        queries = read_queries(HIT_QUERIES)
        unbound = self.binaries["unbound"]
        hierarchy, why_not = self.start_hierarchy(SAMPLE_ZONES, unbound is not None)
        port, hints = hierarchy.port, hierarchy.hints
        row = Row("resolver cache hits", "hits", "q/s", "Unbound", target="≥0.9x q/s, 0 lost, CPU/q ≤1.5x")
        try:
            resolver, address = self.dnslab.resolver(hints, port)
            say(f"cache hits: dnslab warmed: {warm(address, queries)}")
            row.dnslab_perf = self.max_rate("cache hits, dnslab", address, queries, resolver.pid, "hits-dnslab")
            rate = self.pace(row.dnslab_perf)
            row.dnslab_paced = self.paced("cache hits, dnslab", address, queries, rate, "hits-dnslab")
            resolver.stop()
            floor = Row("floor: Python ready-reply responder", "floor", "q/s", "Unbound",
                        target="(the most any Python server reaches here)")
            process, address = self.dnslab.floor()
            floor.dnslab_perf = self.max_rate("floor responder", address, queries, process.pid, "hits-floor")
            process.stop()
            if started := self.unbound(row, why_not, "unbound-hits", hints, SAMPLE_ZONES):
                process, address = started
                say(f"cache hits: Unbound warmed: {warm(address, queries)}")
                row.reference_perf = self.max_rate("cache hits, Unbound", address, queries, process.pid,
                                                   "hits-unbound")
                row.reference_paced = self.paced("cache hits, Unbound", address, queries, rate, "hits-unbound")
                process.stop()
            self.finish_rate(row)
            d, r = row.dnslab_perf, row.reference_perf
            if d and r and row.ratio is not None and d.cpu_us_per_query and r.cpu_us_per_query:
                row.target_met = (row.ratio >= 0.9 and d.lost == 0
                                  and d.cpu_us_per_query / r.cpu_us_per_query <= 1.5)
            self.rows.append(row)
            floor.reference_perf = row.reference_perf
            self.finish_rate(floor)
            self.rows.append(floor)
            if "auth" in self.args.only:
                self.scenario_auth(hierarchy, port)
        finally:
            hierarchy.stop()

    def scenario_auth(self, hierarchy: UpLab, port: int) -> None:
        queries = read_queries(AUTH_QUERIES)
        lab = Row(f"authoritative, lab server {AUTH_SERVER}", "auth", "q/s", "NSD", target="≥0.8x q/s")
        serve = Row("authoritative, dnslab serve", "auth-serve", "q/s", "NSD", target="≥0.8x q/s")
        what = f"authoritative, lab's ns1.example.com ({AUTH_SERVER}:{port})"
        lab.dnslab_perf = self.max_rate(what, (AUTH_SERVER, port), queries, hierarchy.pid, "auth-lab")
        rate = self.pace(lab.dnslab_perf)
        lab.dnslab_paced = self.paced(what, (AUTH_SERVER, port), queries, rate, "auth-lab")
        process, address = self.dnslab.serve(AUTH_ZONE)
        what = "authoritative, `dnslab serve` with example.com"
        serve.dnslab_perf = self.max_rate(what, address, queries, process.pid, "auth-serve")
        serve.dnslab_paced = self.paced(what, address, queries, rate, "auth-serve")
        process.stop()
        nsd = self.binaries["nsd"]
        if nsd is None:
            lab.note = serve.note = "reference unavailable (nsd not installed)"
        elif (started := self.reference(lab, lambda: start_reference_nsd(nsd, self.workdir / "nsd", AUTH_ZONE, "example.com."))):
            process, address = started
            what = "authoritative, NSD with example.com"
            lab.reference_perf = serve.reference_perf = self.max_rate(what, address, queries, process.pid, "auth-nsd")
            lab.reference_paced = serve.reference_paced = self.paced(what, address, queries, rate, "auth-nsd")
            process.stop()
        if lab.reference_perf is None:
            serve.note = lab.note
        for row in (lab, serve):
            self.finish_rate(row)
            if row.ratio is not None:
                row.target_met = row.ratio >= 0.8
            self.rows.append(row)

    def scenario_cold(self) -> None:
        zones = self.args.hierarchy
        if zones is None:
            zones = self.workdir / "hierarchy"
            subprocess.run([self.python, str(REPO / "scripts" / "gen-hierarchy"), str(zones)], check=True,
                           timeout=120, stdout=subprocess.DEVNULL)
        queries = read_queries((zones / "queries.txt").read_text())
        zone_count = len(list(zones.glob("*.zone")))
        say(f"cold: serving {zone_count} zones from {zones}")
        unbound = self.binaries["unbound"]
        hierarchy, why_not = self.start_hierarchy(zones, unbound is not None)
        port, hints = hierarchy.port, hierarchy.hints
        label = f"cold resolution, {len(queries)} names, {zone_count} zones"
        row = Row(label, "cold", "q/s", "Unbound", target="time ≤1.5x")
        memory = Row("RSS growth per name, cold run", "cold-rss", "B/name", "Unbound",
                     target="(for comparison)")
        limit = self.args.cold_limit
        costs: dict[str, tuple[float, int | None]] = {}  # hierarchy CPU and queries, per resolver

        def cold_run(who: str, address: tuple[str, int], pid: int) -> Perf:
            say(f"cold: {who} resolves {len(queries)} names ({self.args.cold_outstanding} in flight, "
                f"at most {limit:g} s)")
            self.dnslab.upstream_queries(hierarchy, reset=True)
            before = cpu_seconds(hierarchy.pid)
            perf = self.load.run(address, queries, duration=limit, passes=1, timeout=10, verbose=True,
                                 outstanding=self.args.cold_outstanding, server_pid=pid, label=f"cold-{who}")
            costs[who] = (cpu_seconds(hierarchy.pid) - before, self.dnslab.upstream_queries(hierarchy))
            return perf

        try:
            resolver, address = self.dnslab.resolver(hints, port)
            row.dnslab_perf = cold_run("dnslab", address, resolver.pid)
            resolver.stop()
            if started := self.unbound(row, why_not, "unbound-cold", hints, zones):
                process, address = started
                row.reference_perf = cold_run("Unbound", address, process.pid)
                process.stop()
        finally:
            hierarchy.stop()
        for who, (cpu, count) in costs.items():
            text = f"{who}: {count if count is not None else '?'} queries to the hierarchy, which used {cpu:.1f} s CPU"
            row.note = (row.note + "; " if row.note else "") + text
        row.upstream = {who: count for who, (cpu, count) in costs.items()}
        self.finish_rate(row)
        d, r = row.dnslab_perf, row.reference_perf
        row.seconds = (d.runtime_s if d else None, r.runtime_s if r else None)
        if d and r and r.runtime_s:
            row.target_met = d.runtime_s / r.runtime_s <= 1.5 and d.completed == len(queries)
        self.rows.append(row)
        memory.reference_name = row.reference_name
        if d and d.rss_after_kib is not None and d.completed:
            memory.dnslab = (d.rss_after_kib - d.rss_before_kib) * 1024 / d.completed
        if r and r.rss_after_kib is not None and r.completed:
            memory.reference = (r.rss_after_kib - r.rss_before_kib) * 1024 / r.completed
        if memory.dnslab is not None and memory.reference:
            memory.ratio = memory.dnslab / memory.reference
        memory.note = "whole resolver: RRset cache, delegations, answer cache, infra"
        self.rows.append(memory)

    def scenario_mix(self) -> None:
        """Every kind of answer, each measured alone, then all at once (tools/bench_mix.py)."""
        zones = bench_mix.write_zones(self.workdir / "mix-zones")
        anchor = self.workdir / "mix-anchor.ds"
        unbound = self.binaries["unbound"]
        why_not = None
        try:
            hierarchy = self.dnslab.up(zones, 53, "--no-resolver", "--dnssec", "--anchor", str(anchor))
        except LabUnavailable as exc:
            why_not = f"port 53 unavailable on a lab address ({exc}); Unbound skipped"
            say(why_not)
            hierarchy = self.dnslab.up(zones, 0, "--no-resolver", "--dnssec", "--anchor", str(anchor))
        config = self.workdir / "mix-resolver.toml"
        config.write_text(f"trust_anchor_file = {json.dumps(str(anchor))}\n", encoding="utf-8")
        kinds, mix_label = bench_mix.RESOLVER_KINDS, "mix: resolver, every kind at once"
        mix = Row(mix_label, "mix", "q/s", "Unbound", target="≥0.5x q/s, CPU/q ≤2x floor")
        rows = [Row(f"  resolver: {kind.label}", "mix-kind", "q/s", "Unbound", target="CPU/q ≤3x median")
                for kind in kinds]
        try:
            resolver, address = self.dnslab.resolver(hierarchy.hints, hierarchy.port, "--config", str(config))
            self.mix_runs("dnslab", address, resolver.pid, kinds, rows, mix, reference=False)
            resolver.stop()
            started = None
            if unbound is None:
                mix.note = "reference unavailable (unbound not installed)"
            elif why_not:
                mix.note = "reference unavailable: " + why_not
            else:
                started = self.reference(mix, lambda: start_reference_unbound(
                    unbound, self.workdir / "unbound-mix", hierarchy.hints, zones, anchor))
            if started:
                process, address = started
                self.mix_runs("Unbound", address, process.pid, kinds, rows, mix, reference=True)
                process.stop()
            auth_rows = self.auth_mix(hierarchy, zones)
        finally:
            hierarchy.stop()
        self.finish_kinds(rows)
        self.finish_rate(mix)
        floor = next((row for row in self.rows if row.key == "floor"), None)
        d, r = mix.dnslab_perf, mix.reference_perf
        if d and r and mix.ratio is not None:
            mix.target_met = mix.ratio >= 0.5
            if floor is not None and floor.dnslab_perf and floor.dnslab_perf.cpu_us_per_query and d.cpu_us_per_query:
                mix.target_met = mix.target_met and d.cpu_us_per_query <= 2 * floor.dnslab_perf.cpu_us_per_query
        self.rows += [mix, *rows, *auth_rows]

    def mix_runs(self, who: str, address: tuple[str, int], pid: int, kinds: tuple[bench_mix.Kind, ...],
                 rows: list[Row], mix: Row, reference: bool) -> None:
        """Warm, then each kind alone (--kind-duration), then the whole mix (--duration)."""
        for _ in range(3):  # a ready reply is kept from a question's second full answer on
            for kind in kinds:
                for name, qtype in kind.queries:
                    wire = query_wire(name, qtype, random.randrange(65536), edns=kind.mode != "plain")
                    ask_rcode(address, bench_mix.with_mode(wire, kind.mode), 5.0)
        for kind, row in zip(kinds, rows):
            say(f"mix: {who}, {kind.label}: {self.args.kind_duration:g} s")
            perf = self.load.run(address, list(kind.queries), duration=self.args.kind_duration,
                                 outstanding=self.args.outstanding, server_pid=pid, label=f"kind-{who}", mode=kind.mode)
            setattr(row, "reference_perf" if reference else "dnslab_perf", perf)
        say(f"mix: {who}, every kind at once: {self.args.duration:g} s")
        perf = self.load.run_together(address, bench_mix.by_mode(kinds), duration=self.args.duration,
                                      outstanding=self.args.outstanding, server_pid=pid, label=f"mix-{who}")
        setattr(mix, "reference_perf" if reference else "dnslab_perf", perf)

    def auth_mix(self, hierarchy: UpLab, zones: Path) -> list[Row]:
        """The authoritative kinds: the lab's kinds.mix. server, `dnslab serve` and NSD, same file."""
        kinds = bench_mix.AUTH_KINDS
        zone = zones / (bench_mix.KINDS_ORIGIN.rstrip(".") + ".zone")
        lab_rows = [Row(f"  lab server: {kind.label}", "mix-auth", "q/s", "NSD", target="CPU/q ≤3x median")
                    for kind in kinds]
        serve_rows = [Row(f"  dnslab serve: {kind.label}", "mix-auth", "q/s", "NSD", target="CPU/q ≤3x median")
                      for kind in kinds]
        queries = [[(name, qtype) for name, qtype in kind.queries] for kind in kinds]

        def each(who: str, address: tuple[str, int], pid: int, rows: list[Row], reference: bool) -> None:
            for kind, row, asked in zip(kinds, rows, queries):
                say(f"mix, authoritative: {who}, {kind.label}: {self.args.kind_duration:g} s")
                perf = self.load.run(address, asked, duration=self.args.kind_duration, outstanding=self.args.outstanding,
                                     server_pid=pid, label=f"auth-kind-{who}", mode=kind.mode)
                setattr(row, "reference_perf" if reference else "dnslab_perf", perf)

        each("lab server", (bench_mix.KINDS_SERVER, hierarchy.port), hierarchy.pid, lab_rows, False)
        process, address = self.dnslab.serve(zone)
        each("dnslab serve", address, process.pid, serve_rows, False)
        process.stop()
        nsd = self.binaries["nsd"]
        if nsd is not None and (started := self.reference(lab_rows[0], lambda: start_reference_nsd(
                nsd, self.workdir / "nsd-mix", zone, bench_mix.KINDS_ORIGIN))):
            process, address = started
            each("NSD", address, process.pid, lab_rows, True)
            for lab, serve in zip(lab_rows, serve_rows):
                serve.reference_perf = lab.reference_perf
            process.stop()
        self.finish_kinds(lab_rows)
        self.finish_kinds(serve_rows)
        return lab_rows + serve_rows

    def finish_kinds(self, rows: list[Row]) -> None:
        """Rates, and each kind's CPU per query against the median kind's (no cliff: at most 3x)."""
        for row in rows:
            self.finish_rate(row)
        costs = [row.dnslab_perf.cpu_us_per_query for row in rows
                 if row.dnslab_perf and row.dnslab_perf.cpu_us_per_query]
        if not costs:
            return
        median = statistics.median(costs)
        for row in rows:
            if row.dnslab_perf and row.dnslab_perf.cpu_us_per_query:
                row.target_met = row.dnslab_perf.cpu_us_per_query <= 3 * median

    def scenario_memory(self) -> None:
        say(f"memory: {MEMORY_ENTRIES} RRsets into a dnslab.resolution.cache.Cache")
        code = textwrap.dedent(f"""
            import gc, json
            import dns.rrset
            from dnslab.resolution.cache import Cache, CacheSettings, Rank
            from dnslab.core.clock import MonotonicClock

            def rss():
                for line in open("/proc/self/status"):
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1])

            n = {MEMORY_ENTRIES}
            cache = Cache(MonotonicClock(), CacheSettings(max_entries=n))
            gc.collect()
            before = rss()
            for i in range(n):
                # Names shaped like real ones (host.zone.tld), addresses from 198.18.0.0/15.
                rrset = dns.rrset.from_text(f"host{{i}}.zone{{i // 100}}.tld{{i % 10}}.", 3600, "IN", "A",
                                            f"198.{{18 + (i >> 16)}}.{{(i >> 8) & 255}}.{{i & 255}}")
                cache.put(rrset, Rank.AUTH_ANSWER)
                del rrset
            gc.collect()
            after = rss()
            print(json.dumps({{"entries": len(cache), "before_kib": before, "after_kib": after}}))
        """)
        result = subprocess.run([self.python, "-c", code], capture_output=True, text=True, timeout=300,
                                env=self.dnslab.env)
        if result.returncode != 0:
            raise RuntimeError(f"the memory probe failed:\n{tail(result.stderr)}")
        data = json.loads(result.stdout.strip().splitlines()[-1])
        per = (data["after_kib"] - data["before_kib"]) * 1024 / data["entries"]
        row = Row(f"memory per cached RRset at {data['entries']:,} entries", "memory", "B/RRset", None,
                  dnslab=per, target="≤1 KiB", target_met=per <= 1024,
                  note=f"RSS {data['before_kib'] // 1024} -> {data['after_kib'] // 1024} MiB")
        self.rows.append(row)

    def unbound(self, row: Row, why_not: str | None, folder: str, hints: Path,
                zones: Path) -> tuple[Managed, tuple[str, int]] | None:
        """The reference Unbound for a resolver row, or None with the reason in the row's note."""
        unbound = self.binaries["unbound"]
        if unbound is None:
            row.note = "reference unavailable (unbound not installed)"
        elif why_not:
            row.note = "reference unavailable: " + why_not
        else:
            return self.reference(row, lambda: start_reference_unbound(unbound, self.workdir / folder, hints, zones))
        return None

    def reference(self, row: Row, start):  # type: ignore[no-untyped-def]
        """Start a reference server; if it will not start, the row says why and goes on without."""
        try:
            return start()
        except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
            say(f"{row.reference_name} did not start: {exc}")
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            row.note = (row.note + "; " if row.note else "") + f"reference unavailable ({first})"
            return None

    def finish_rate(self, row: Row) -> None:
        if row.dnslab_perf:
            row.dnslab = row.dnslab_perf.qps
        if row.reference_perf:
            row.reference = row.reference_perf.qps
        if row.dnslab is not None and row.reference:
            row.ratio = row.dnslab / row.reference
        for who, perf in (("dnslab", row.dnslab_perf), (row.reference_name, row.reference_perf)):
            if perf and perf.lost:
                where = (f", {perf.server_drops} of them dropped by the server's full receive buffer"
                         if perf.server_drops else "")
                row.note = (row.note + "; " if row.note else "") + f"{who} lost {perf.lost}{where}"


# --- output ------------------------------------------------------------------------------------------


def _num(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "q/s":
        return f"{value:,.0f} q/s"
    return f"{value:,.0f} {unit}"


def _pair(a: object, b: object) -> str:
    return f"{'-' if a is None else a} / {'-' if b is None else b}"


def _ms(perf: Perf | None) -> str:
    if perf is None or perf.latency_avg_ms is None:
        return "-"
    p99 = "-" if perf.latency_p99_ms is None else f"{perf.latency_p99_ms:.2f}"
    return f"{perf.latency_avg_ms:.2f}/{p99}"


def table(rows: list[Row]) -> str:
    head = ("SCENARIO", "DNSLAB", "REFERENCE", "RATIO", "TARGET", "MET",
            "LATENCY ms avg/p99 dnslab | ref", "LOST d/r", "CPU µs/q d/r", "TIME s d/r")
    lines = [head]
    for row in rows:
        d, r = row.dnslab_perf, row.reference_perf
        reference = _num(row.reference, row.unit)
        if row.reference_name and row.reference is not None:
            reference = f"{reference} ({row.reference_name})"
        elif row.reference_name:
            reference = f"- ({row.reference_name} unavailable)"
        met = "-" if row.target_met is None else ("yes" if row.target_met else "NO")
        cpu = "-"
        if d or r:
            cpu = _pair(f"{d.cpu_us_per_query:.1f}" if d and d.cpu_us_per_query is not None else None,
                        f"{r.cpu_us_per_query:.1f}" if r and r.cpu_us_per_query is not None else None)
        lost = _pair(d.lost if d else None, r.lost if r else None) if (d or r) else "-"
        latency = f"{_ms(d)} | {_ms(r)}" if (d or r) and row.key != "floor" else "-"  # the floor: no latency run
        if row.dnslab_paced or row.reference_paced:
            paced = row.dnslab_paced or row.reference_paced
            latency = f"{_ms(row.dnslab_paced)} | {_ms(row.reference_paced)} @{(paced.rate_limit or 0) // 1000}k q/s"
        seconds = "-"
        if row.seconds != (None, None):
            seconds = _pair(*(f"{s:.1f}" if s is not None else None for s in row.seconds))
        lines.append((row.scenario, _num(row.dnslab, row.unit), reference,
                      "-" if row.ratio is None else f"{row.ratio:.2f}x", row.target, met, latency, lost, cpu, seconds))
    return format_table(lines)


def as_json(rows: list[Row], meta: dict[str, object]) -> str:
    def clean(row: Row) -> dict[str, object]:
        data = asdict(row)
        data["seconds"] = {"dnslab": row.seconds[0], "reference": row.seconds[1]}
        return data
    return json.dumps({**meta, "rows": [clean(row) for row in rows]}, indent=2)


# --- main ------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n".join(__doc__.splitlines()[2:]))
    parser.add_argument("--json", action="store_true", help="print the results as JSON instead of a table")
    parser.add_argument("--only", default=None,
                        help="comma-separated scenarios: hits, auth, mix, cold, memory, big (default: all; "
                             "with --dnsdist, none but the tier)")
    parser.add_argument("--dnsdist", type=int, default=None, metavar="N",
                        help=f"the resolver tier: dnsdist in front of 1 to N `dnslab resolver` processes "
                             f"(N from 1 to {bench_dnsdist.MAX_BACKENDS}), against one resolver alone and "
                             "--workers 2 (needs Debian's dnsdist)")
    parser.add_argument("--kind-duration", type=float, default=3.0, metavar="S",
                        help="seconds of each per-kind run of the mix scenario (default 3)")
    parser.add_argument("--duration", type=float, default=12.0, metavar="S",
                        help="seconds of each steady-load run (default 12)")
    parser.add_argument("--outstanding", type=int, default=200, metavar="N",
                        help="queries in flight in the steady-load runs (dnsperf -q, default 200)")
    parser.add_argument("--latency-duration", type=float, default=5.0, metavar="S",
                        help="seconds of each latency run (dnsperf -v, paced; default 5)")
    parser.add_argument("--pace", type=float, default=0.5, metavar="F",
                        help="latency runs go at this fraction of dnslab's max rate, for both servers (default 0.5)")
    parser.add_argument("--cold-outstanding", type=int, default=100, metavar="N",
                        help="queries in flight in the cold runs (default 100)")
    parser.add_argument("--cold-limit", type=float, default=90.0, metavar="S",
                        help="time limit of each cold run (default 90)")
    parser.add_argument("--hierarchy", type=Path, default=None, metavar="DIR",
                        help="a hierarchy from scripts/gen-hierarchy for the cold runs (default: generate one)")
    parser.add_argument("--big-zones", type=int, default=2000, metavar="M",
                        help="second-level zones of the big lab (gen-hierarchy --zones; default 2000)")
    parser.add_argument("--big-names", type=int, default=20, metavar="K",
                        help="names per zone of the big lab (gen-hierarchy --names; default 20)")
    parser.add_argument("--big-sockets", choices=("auto", "shared", "pairs"), default="auto",
                        help="the big lab's sockets: dnslab up's own choice (auto, default), --shared-sockets, "
                             "or --no-shared-sockets (a UDP and a TCP socket per address)")
    parser.add_argument("--python", default=None, help="the interpreter that runs dnslab (default: found)")
    parser.add_argument("--no-install", action="store_true", help="never run apt-get")
    parser.add_argument("--python-load", action="store_true",
                        help="use the built-in Python load generator even when dnsperf is there")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (configs, logs, dnsperf output)")
    args = parser.parse_args(argv)
    if args.dnsdist is not None and not 1 <= args.dnsdist <= bench_dnsdist.MAX_BACKENDS:
        parser.error(f"--dnsdist takes 1 to {bench_dnsdist.MAX_BACKENDS} backends, not {args.dnsdist}")
    if args.only is None:
        args.only = "" if args.dnsdist is not None else "hits,auth,mix,cold,memory,big"
    args.only = {name.strip() for name in args.only.split(",") if name.strip()}
    unknown = args.only - {"hits", "auth", "mix", "cold", "memory", "big"}
    if unknown:
        parser.error(f"unknown scenario(s): {', '.join(sorted(unknown))}")
    if args.big_zones < 1 or args.big_names < 1:
        parser.error("--big-zones and --big-names take a whole number of at least 1")
    if args.hierarchy is not None and not (args.hierarchy / "queries.txt").exists():
        parser.error(f"{args.hierarchy} has no queries.txt (write it with scripts/gen-hierarchy)")

    started = time.monotonic()
    interrupt_on_sigterm()
    atexit.register(Managed.stop_all)
    workdir = Path(tempfile.mkdtemp(prefix="dnslab-bench-"))
    workdir.chmod(0o755)  # Unbound and NSD read their files here
    status = 0
    try:
        python = find_python(args.python)
        wanted = {**TOOLS, bench_dnsdist.PACKAGE: "dnsdist"} if args.dnsdist is not None else TOOLS
        binaries, install_notes = ensure_packages(wanted, not args.no_install, say)
        if args.dnsdist is not None and binaries.get(bench_dnsdist.PACKAGE) is None:
            print(f"bench: {not_installed('dnsdist')}; --dnsdist needs it", file=sys.stderr)
            return 1
        for note in install_notes:
            say(note)
        if args.python_load:
            binaries["dnsperf"] = None
        if binaries["dnsperf"] is None:
            say("dnsperf unavailable: a built-in Python load generator stands in (its figures are client-bound)")
        loop = "uvloop" if subprocess.run([python, "-c", "import uvloop"], capture_output=True).returncode == 0 \
            else "asyncio (no uvloop: pip install 'dnslab[fast]' for the faster loop)"
        say(f"dnslab runs with {python}, event loop {loop}")
        versions = {"dnsperf": version(binaries["dnsperf"], "-h", r"Version (\S+)"),
                    "dnsdist": version(binaries.get("dnsdist"), "--version", r"dnsdist (\S+)"),
                    "unbound": version(binaries["unbound"], "-V", r"Version (\S+)"),
                    "nsd": version(binaries["nsd"], "-v", r"NSD version (\S+)")}
        bench = Bench(args, workdir, binaries, python)
        if "hits" in args.only:
            bench.scenario_hits()
        elif "auth" in args.only:
            hierarchy, _ = bench.start_hierarchy(SAMPLE_ZONES, False)
            try:
                bench.scenario_auth(hierarchy, hierarchy.port)
            finally:
                hierarchy.stop()
        if "mix" in args.only:
            bench.scenario_mix()
        if "cold" in args.only:
            bench.scenario_cold()
        if "memory" in args.only:
            bench.scenario_memory()
        if "big" in args.only:
            bench_big.scenario(bench, args.big_zones, args.big_names, args.big_sockets)
        if args.dnsdist is not None:
            dnsdist = binaries[bench_dnsdist.PACKAGE]
            assert dnsdist is not None
            bench_dnsdist.scenario(bench, args.dnsdist, dnsdist, read_queries(HIT_QUERIES), SAMPLE_ZONES)
        elapsed = time.monotonic() - started
        meta = {
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "command": " ".join(["scripts/bench", *(argv if argv is not None else sys.argv[1:])]),
            "machine": machine_facts(),
            "dnslab_python": python,
            "dnslab_event_loop": loop.split()[0],
            "versions": versions,
            "settings": {"duration_s": args.duration, "outstanding": args.outstanding,
                         "latency_duration_s": args.latency_duration, "pace": args.pace,
                         "cold_outstanding": args.cold_outstanding, "load_generator": bench.load.dnsperf or "python"},
            "notes": install_notes,
            "elapsed_s": round(elapsed, 1),
        }
        if args.json:
            print(as_json(bench.rows, meta))
        else:
            facts = meta["machine"]
            print(f"dnslab benchmark, {meta['date']}: {facts['cpus']} CPUs ({facts['cpu_model']}), "
                  f"dnsperf {versions['dnsperf'] or '-'}, Unbound {versions['unbound'] or '-'}, "
                  f"NSD {versions['nsd'] or '-'}"
                  + (f", dnsdist {versions['dnsdist'] or '-'}" if args.dnsdist is not None else "")
                  + f"; dnslab on {loop.split()[0]}; "
                  f"{args.duration:g} s runs, {args.outstanding} in flight")
            print(table(bench.rows))
            for row in bench.rows:
                if row.note:
                    print(f"  {row.scenario}: {row.note}")
            print(f"whole run: {elapsed:.0f} s")
    except KeyboardInterrupt:
        say("interrupted; stopping what was started")
        status = 130
    except (RuntimeError, LabUnavailable, subprocess.SubprocessError, OSError) as exc:
        say(f"error: {exc}")
        status = 1
    finally:
        Managed.stop_all()
        if args.keep:
            say(f"work folder kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
