#!/usr/bin/env python3
"""Cold resolution with the resolver in this process, to profile it: figures for people, not a test.

    scripts/cold-profile [--zones DIR] [--port N] [--names N] [--in-flight N]
                         [--edns] [--profile FILE] [--no-merge] [--default-gc]

A hierarchy from scripts/gen-hierarchy (made in a temporary folder unless
--zones is given) runs as `dnslab up --no-resolver` in a child process on
--port (default 5316; no root needed); a fresh RecursiveResolver runs here on
uvloop, and dnsperf (Debian's) sends every name once (-n 1; plain queries
unless --edns, which sends EDNS0 ones as scripts/bench's cold run does).  Prints wall
time, this process's CPU time per name, upstream queries sent and merged, and
dnsperf's counts.  --profile FILE writes a cProfile of the run (cProfile slows
the run about 2x; `py-spy record -- python scripts/cold-profile` samples
instead).  --no-merge turns off the merging of upstream questions in flight,
to see what it saves.  The cycle collector is tuned as `dnslab resolver` tunes
it (dnslab.core.collector.serving); --default-gc leaves CPython's defaults, to
see what that saves.  Everything it starts is stopped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from dnslab.core import collector
from dnslab.resolution.hints import load_root_hints
from dnslab.services.resolver import RecursiveResolver
from dnslab.resolution.settings import ResolverSettings
from dnslab.services.transport import DnsListener
from tools.common.lab import REPO, Dnslab, LabUnavailable
from tools.common.reference import find_binary, not_installed


async def run(args: argparse.Namespace, dnsperf: str, hints_path: Path, data: Path, names: int) -> None:
    resolver = RecursiveResolver(load_root_hints(hints_path), ResolverSettings(upstream_port=args.port))
    if args.no_merge:
        exchange = resolver.upstream.exchange
        resolver.upstream.exchange = lambda q, t, w, merge=True: exchange(q, t, w, False)  # type: ignore[method-assign]
    listener = DnsListener("127.0.96.66", 0, resolver.handle)
    await listener.start()
    profile = cProfile.Profile() if args.profile else None
    before = resource.getrusage(resource.RUSAGE_SELF)
    started = time.monotonic()
    if profile is not None:
        profile.enable()
    try:
        perf = await asyncio.create_subprocess_exec(
            dnsperf, "-s", "127.0.96.66", "-p", str(listener.port), "-d", str(data), "-n", "1",
            "-q", str(args.in_flight), "-t", "10", *(["-e"] if args.edns else []), stdout=asyncio.subprocess.PIPE)
        out, _ = await perf.communicate()
    finally:
        if profile is not None:
            profile.disable()
            profile.dump_stats(args.profile)
    wall = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_SELF)
    user, system = after.ru_utime - before.ru_utime, after.ru_stime - before.ru_stime
    cpu = user + system
    await listener.stop()
    counts = [line.strip() for line in out.decode().splitlines()
              if line.strip().startswith(("Queries completed", "Queries lost", "Response codes"))]
    stats = resolver.stats
    print(f"{names} names: {wall:.2f} s wall, {cpu:.2f} s CPU ({cpu / names * 1e6:.0f} µs per name: "
          f"{user / names * 1e6:.0f} user, {system / names * 1e6:.0f} system), "
          f"{stats.upstream_queries} upstream queries sent, {stats.merged_queries} merged; "
          f"load average {os.getloadavg()[0]:.1f}")
    for line in counts:
        print("  dnsperf: " + " ".join(line.split()))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--zones", type=Path, help="a folder from scripts/gen-hierarchy (default: make one)")
    parser.add_argument("--port", type=int, default=5316, help="the hierarchy's port (default 5316)")
    parser.add_argument("--names", type=int, default=0, help="resolve only the first N names (default all)")
    parser.add_argument("--in-flight", type=int, default=100, help="dnsperf -q (default 100)")
    parser.add_argument("--edns", action="store_true",
                        help="send the queries with EDNS0 (dnsperf -e), as scripts/bench's cold run does")
    parser.add_argument("--profile", metavar="FILE", help="write a cProfile of the run to FILE")
    parser.add_argument("--no-merge", action="store_true", help="send every upstream query, merging none")
    parser.add_argument("--default-gc", action="store_true",
                        help="leave Python's cycle collector at its defaults (a library user's process), not "
                             "tuned as `dnslab resolver` tunes it (dnslab.core.collector.serving)")
    args = parser.parse_args(argv)
    import uvloop

    dnsperf = find_binary("dnsperf")
    if dnsperf is None:
        print(f"cold-profile: {not_installed('dnsperf')}", file=sys.stderr)
        return 2

    with tempfile.TemporaryDirectory(prefix="dnslab-cold-") as folder:
        workdir = Path(folder)
        zones = args.zones
        if zones is None:
            zones = workdir / "hierarchy"
            subprocess.run([sys.executable, str(REPO / "scripts" / "gen-hierarchy"), str(zones)], check=True,
                           stdout=subprocess.DEVNULL, timeout=120)
        lines = (zones / "queries.txt").read_text().splitlines()
        if args.names:
            lines = lines[:args.names]
        data = workdir / "queries.txt"
        data.write_text("\n".join(lines) + "\n")
        try:
            hierarchy = Dnslab(sys.executable, workdir).up(zones, args.port, "--no-resolver", "--no-web", timeout=60)
        except (RuntimeError, LabUnavailable) as exc:
            print(f"cold-profile: the hierarchy did not start: {exc}", file=sys.stderr)
            return 1
        if not args.default_gc:
            collector.serving()  # as `dnslab resolver` does before it serves
        try:
            uvloop.run(run(args, dnsperf, hierarchy.hints, data, len(lines)))
        finally:
            hierarchy.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
