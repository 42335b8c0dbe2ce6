#!/usr/bin/env python3
"""What loading zones costs: `load_zones` on every *.zone of a folder, in seconds and RSS per name.

    scripts/zone-load-cost DIR

Issue 21's big labs are mostly zone data: this times dnslab.core.zone.load_zones on
DIR's zone files (as `dnslab up` loads them) and prints the growth of the process's
RSS divided by the names the zones hold (owners and empty non-terminals, apexes and
server names included), after a garbage collection.  RSS, not tracemalloc: what a
user's `ps` shows, fragmentation included.  Make DIR with `scripts/gen-hierarchy`;
the figures are noisy on a shared machine, so repeat runs one after the other.
"""

from __future__ import annotations

import argparse
import gc
import re
import sys
import time
from pathlib import Path

from dnslab.core.errors import ZoneError
from dnslab.core.zone import load_zones


def _rss() -> int:
    status = Path("/proc/self/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+)", status).group(1)) * 1024  # type: ignore[union-attr]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, metavar="DIR", help="a folder of *.zone files")
    args = parser.parse_args(argv)
    paths = sorted(args.folder.glob("*.zone"))
    if not paths:
        print(f"zone-load-cost: error: no *.zone files in {args.folder}", file=sys.stderr)
        return 2
    load_zones(paths[:1])  # the modules' first use (imports, rdata classes) is not the zones' cost
    gc.collect()
    before = _rss()
    started = time.perf_counter()
    try:
        zones, _ = load_zones(paths)
    except ZoneError as exc:
        print(f"zone-load-cost: error: {exc}", file=sys.stderr)
        return 1
    seconds = time.perf_counter() - started
    gc.collect()
    grown = _rss() - before
    names = sum(len(zone.names) for zone in zones)
    rrsets = sum(1 for zone in zones for _ in zone.rrsets())
    print(f"{len(zones):,} zones, {names:,} names, {rrsets:,} RRsets: loaded in {seconds:.2f} s "
          f"({seconds / names * 1e6:.1f} us per name), RSS +{grown / names:,.0f} B per name")
    return 0


if __name__ == "__main__":
    sys.exit(main())
