"""Child processes a tool starts, and stops whatever happens; the /proc figures the tools read.

A child runs in a session of its own (`start_new_session`), so that stopping it reaches whatever it
started in turn (NSD forks its server and xfrd; `dnslab up --workers` forks workers): SIGTERM to the
whole group, a bounded wait, then SIGKILL.  `Managed.stop_all` runs at exit and on Ctrl-C.
"""

from __future__ import annotations

import os
import re
import resource
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from tools.common.report import tail


def stop_process(popen: subprocess.Popen[Any], grace: float = 5.0, group: bool = False) -> int | None:
    """SIGTERM, up to *grace* seconds to exit cleanly, then SIGKILL; never waits unbounded.

    group: the child leads a session of its own; signal the whole group and wait until every member
    is gone (children first get the chance to exit while their parent can still reap them).
    Returns the child's exit status (None if it could not be reaped).
    """
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        if popen.poll() is not None and not (group and session_alive(popen.pid)):
            break
        try:
            if group:
                os.killpg(popen.pid, sig)
            else:
                popen.send_signal(sig)
        except (ProcessLookupError, PermissionError):
            break
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and (popen.poll() is None or (group and session_alive(popen.pid))):
            time.sleep(0.02)
    try:
        popen.wait(5)
    except subprocess.TimeoutExpired:
        pass
    return popen.returncode


class Managed:
    """A child in a session of its own, its output in a log file; `stop` ends it and anything it started."""

    running: list["Managed"] = []

    def __init__(self, name: str, argv: list[str], log: Path, env: dict[str, str] | None = None,
                 cwd: Path | None = None) -> None:
        self.name = name
        self.argv = argv
        self.log = log
        with open(log, "ab") as out:
            self.popen = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                          start_new_session=True, env=env, cwd=cwd, preexec_fn=more_files)
        Managed.running.append(self)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def output(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""

    def wait_output(self, pattern: str, timeout: float) -> re.Match[str]:
        """Until the child's output matches *pattern* (a regular expression, multiline); bounded.

        Raises RuntimeError with the output's tail when the child exits first or the time runs out.
        """
        regex = re.compile(pattern, re.M)
        deadline = time.monotonic() + timeout
        while True:
            match = regex.search(self.output())
            if match:
                return match
            if not self.alive():
                raise RuntimeError(f"{self.name} exited with status {self.popen.returncode}:\n{tail(self.output())}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} did not start within {timeout:g} s:\n{tail(self.output())}")
            time.sleep(0.05)

    def stop(self, grace: float = 5.0) -> int | None:
        code = stop_process(self.popen, grace, group=True)
        if self in Managed.running:
            Managed.running.remove(self)
        return code

    @classmethod
    def stop_all(cls) -> None:
        for process in reversed(list(cls.running)):
            process.stop()


def interrupt_on_sigterm() -> None:
    """SIGTERM (and SIGINT, also when started in the background) raise KeyboardInterrupt, so that the
    tool's `finally` stops its children."""
    def terminated(signum: int, frame: object) -> None:
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, terminated)
    signal.signal(signal.SIGINT, signal.default_int_handler)


def more_files() -> None:
    """A hierarchy of 250+ servers needs two sockets each: lift the soft limit on open files."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 65536 if hard == resource.RLIM_INFINITY else min(hard, 65536)
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


# --- /proc ---------------------------------------------------------------------------------

CLOCK_TICK = os.sysconf("SC_CLK_TCK")


def stat_fields(pid: int) -> list[str] | None:
    """/proc/PID/stat from field 3 ("state") on, or None when the process is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2:].split()


def session_alive(sid: int) -> bool:
    """Whether any process of this session, zombies aside, is still there."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = stat_fields(int(entry.name))
            if fields is not None and fields[3] == str(sid) and fields[0] != "Z":
                return True
    return False


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
