"""The bench's big-lab row: how long `dnslab up` takes to serve a generated hierarchy, and its RSS per name.

Issue 21 asks for labs of 10,000 zones and 1,000,000 names up in at most 30 s with at most 1 KiB of
RSS per name.  This row measures whatever size it is given (`--big-zones`, `--big-names`; by
default 2,000 zones of 20 names, the issue's first measurement) the same way each time:
`scripts/gen-hierarchy` writes it, `dnslab up --no-web --port 0` serves it (hierarchy and resolver),
and the row gives the time from starting the process to its ready line, the RSS of the whole process
divided by the names (the interpreter's own ~40 MB included, as a user's `ps` shows it), the open
descriptors, and the sockets the servers got: a UDP and a TCP socket per address ("pairs"), or
one of each on 0.0.0.0 for all ("shared"; `dnslab up` chooses it by itself when the pairs would not
fit the open-files limit, and --big-sockets asks for either).
"""

from __future__ import annotations

import os
import subprocess
import time
from typing import TYPE_CHECKING

from tools.common.lab import REPO
from tools.common.procs import cpu_seconds, process_snapshot

if TYPE_CHECKING:
    from tools.bench import Bench

TLDS = 20
TARGET_SECONDS = 30.0
TARGET_BYTES_PER_NAME = 1024


SOCKET_OPTIONS = {"auto": (), "shared": ("--shared-sockets",), "pairs": ("--no-shared-sockets",)}


def scenario(bench: "Bench", zones: int, names: int, sockets: str = "auto") -> None:
    """One row: start time, RSS per name and descriptors of `dnslab up` with *zones* x *names*."""
    from tools.bench import Row, say  # imported late: bench imports this module

    folder = bench.workdir / f"big-{zones}x{names}"
    subprocess.run([bench.python, str(REPO / "scripts" / "gen-hierarchy"), str(folder), "--tlds", str(TLDS),
                    "--zones", str(zones), "--names", str(names)], check=True, timeout=1800,
                   stdout=subprocess.DEVNULL)
    total_names = sum(1 for line in (folder / "names.txt").read_text().splitlines() if line.strip())
    zone_count = len(list(folder.glob("*.zone")))
    say(f"big lab: dnslab up with {zone_count:,} zones and {total_names:,} names")
    load = os.getloadavg()[0]  # the machine's other work, beside the time: the CPU time moves less
    started = time.monotonic()
    lab = bench.dnslab.up(folder, 0, "--no-web", *SOCKET_OPTIONS[sockets], timeout=1800)
    seconds = time.monotonic() - started
    try:
        snapshot = process_snapshot(lab.pid)
        cpu = cpu_seconds(lab.pid)
        # `dnslab up` says "Sockets: ..." when it does not give each address its own pair.
        shared = "Sockets: one UDP and one TCP socket on 0.0.0.0" in lab.process.output()
    finally:
        lab.stop()
    per_name = snapshot["rss_kb"] * 1024 / total_names
    row = Row(f"big lab: {zone_count:,} zones, {total_names:,} names", "big", "B/name", None, dnslab=per_name,
              target=f"≤{TARGET_SECONDS:g} s, ≤1 KiB/name (at 10,000 zones)",
              target_met=seconds <= TARGET_SECONDS and per_name <= TARGET_BYTES_PER_NAME,
              seconds=(seconds, None),
              note=(f"ready after {seconds:.1f} s (CPU {cpu:.1f} s, load {load:.2f}), RSS {snapshot['rss_kb'] / 1024:.0f} MiB, "
                    f"{len(lab.servers):,} servers ({'shared' if shared else 'pairs'}), {snapshot['fds']:,} open descriptors"))
    bench.rows.append(row)
