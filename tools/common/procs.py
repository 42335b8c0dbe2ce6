"""Child processes a tool starts (dnslab.lab.processes, shared with the lab), and the /proc figures the tools read.

A child runs in a session of its own (`start_new_session`), so that stopping it reaches whatever it
started in turn (NSD forks its server and xfrd; `dnslab up --workers` forks workers): SIGTERM to the
whole group, a bounded wait, then SIGKILL.  `Managed.stop_all` runs at exit and on Ctrl-C.
"""

from __future__ import annotations

import os
import re
import signal
from pathlib import Path
from typing import Any

from dnslab.lab.processes import Managed, more_files, session_alive, stat_fields, stop_process

__all__ = ["Managed", "more_files", "session_alive", "stat_fields", "stop_process", "interrupt_on_sigterm",
           "process_tree", "cpu_seconds", "rss_kib", "process_snapshot", "CLOCK_TICK"]


def interrupt_on_sigterm() -> None:
    """SIGTERM (and SIGINT, also when started in the background) raise KeyboardInterrupt, so that the
    tool's `finally` stops its children."""
    def terminated(signum: int, frame: object) -> None:
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, terminated)
    signal.signal(signal.SIGINT, signal.default_int_handler)


# --- /proc ---------------------------------------------------------------------------------

CLOCK_TICK = os.sysconf("SC_CLK_TCK")


def process_tree(pid: int) -> list[int]:
    """pid and every descendant still running (NSD forks its server and xfrd)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = stat_fields(int(entry.name))
            if fields is not None:
                children.setdefault(int(fields[1]), []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        current = todo.pop()
        out.append(current)
        todo.extend(children.get(current, []))
    return out


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process and its descendants (their threads included), in seconds."""
    total = 0
    for member in process_tree(pid):
        fields = stat_fields(member)
        if fields is not None:
            total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)
    return total / CLOCK_TICK


def rss_kib(pid: int) -> int:
    """VmRSS of a process, 0 when it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def process_snapshot(pid: int | str = "self") -> dict[str, Any]:
    """RSS, descriptors (sockets among them) and threads of a process, from /proc."""
    status = Path(f"/proc/{pid}/status").read_text()
    rss = int(re.search(r"VmRSS:\s+(\d+)", status).group(1))  # type: ignore[union-attr]
    threads = int(re.search(r"Threads:\s+(\d+)", status).group(1))  # type: ignore[union-attr]
    fds = sockets = 0
    for entry in os.scandir(f"/proc/{pid}/fd"):
        fds += 1
        try:
            sockets += os.readlink(entry.path).startswith("socket:")
        except OSError:
            pass
    return {"rss_kb": rss, "fds": fds, "sockets": sockets, "threads": threads}
