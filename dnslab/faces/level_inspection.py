"""The commands that look at a lab's caching levels: `dnslab levels`, and the per-level part of `dnslab stats`.

They ask the running lab through its control endpoint (command "levels");
`dnslab query --via`, `cache --level` and `trace --via` live with their
commands in dnslab.faces.inspection and use `level_address` from here.
"""

from __future__ import annotations

import argparse
import json
from typing import Any, TextIO

from dnslab.core.errors import DnslabError
from dnslab.lab.control import ControlClient, LabState

# The counters `dnslab stats` shows for each level, in this order.
LEVEL_COUNTERS = ("queries", "hits", "grace_hits", "misses", "forwards", "timeouts", "failovers", "servfails",
                  "cache_entries")


def level_rows(client: ControlClient, stats: bool = False) -> list[dict[str, Any]]:
    return client.call("levels", {"stats": stats})["levels"]  # type: ignore[no-any-return]


def level_address(state: LabState, name: str) -> str:
    """The address of the level called *name* (or given by its address) in the running lab."""
    rows = level_rows(ControlClient(state))
    for row in rows:
        if name in (row["level"], row["address"]):
            return str(row["address"])
    known = ", ".join(f"{row['level']} ({row['address']})" for row in rows) or "none"
    raise DnslabError(f"no level {name!r} in the running lab (levels: {known}; dnslab levels lists them)")


def cmd_levels(args: argparse.Namespace, out: TextIO, client: ControlClient) -> int:
    result = client.call("levels", {"stats": args.json})
    if args.json:
        print(json.dumps(result, indent=2), file=out)
        return 0
    resolver = result["resolver"]
    rows = [("LEVEL", "KIND", "ADDRESS", "PORT", "UPSTREAM", "POLICY")]
    for row in result["levels"]:
        state = "" if row["up"] else f"   ({', '.join(row['faults'])})"
        rows.append((row["level"], row["kind"], row["address"], str(row["port"]),
                     ", ".join(row["upstream_addresses"]) or "-", row["policy"] + state))
    if resolver["address"] is not None:
        rows.append(("resolver", "resolver", resolver["address"], str(resolver["port"]), "-",
                     "the lab's recursive resolver (dnslab stats, dnslab cache)"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[-1], file=out)
    return 0


def print_level_stats(client: ControlClient, out: TextIO) -> None:
    """One line per level under the resolver's counters (dnslab stats), added up over the worker processes."""
    results = client.call_all("levels", {"stats": True})
    rows = results[0]["levels"]
    for other in results[1:]:  # with --workers every process runs every level, with caches of its own
        for row, theirs in zip(rows, other["levels"]):
            for name in LEVEL_COUNTERS:
                row["stats"][name] = row["stats"].get(name, 0) + theirs["stats"].get(name, 0)
    if not rows:
        return
    table = [("LEVEL", *[name.upper() for name in LEVEL_COUNTERS])]
    for row in rows:
        table.append((row["level"], *[str(row["stats"].get(name, "-")) for name in LEVEL_COUNTERS]))
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    print("\nlevels (dnslab stats --level NAME for one):", file=out)
    for row in table:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip(), file=out)


def print_levels_banner(levels: list[dict[str, Any]], out: TextIO) -> None:
    """`dnslab up`: each level with its address and dig line, as the servers are printed."""
    if not levels:
        return
    print("Caching levels in front of the resolver (dnslab levels; docs/LEVELS.md):", file=out)
    for row in levels:
        print(f"  {row['level']:<10} {row['kind']:<10} {row['address']}:{row['port']}  -> "
              f"{', '.join(row['upstream'])}    dig @{row['address']} -p {row['port']} NAME", file=out)
    print("", file=out)
