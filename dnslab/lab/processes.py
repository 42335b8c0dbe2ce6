"""Child processes the lab starts (Unbound, kresd, BIND, NSD as lab members) and the developer
tools start (the reference servers they compare against), stopped whatever happens.

A child runs in a session of its own (`start_new_session`), so that stopping it reaches whatever it
started in turn (NSD forks its server and xfrd; `dnslab up --workers` forks workers): SIGTERM to the
whole group, a bounded wait, then SIGKILL.  `Managed.stop_all` runs at exit and on Ctrl-C.
"""

from __future__ import annotations

import os
import re
import resource
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any


SBIN = ("/usr/sbin", "/usr/local/sbin", "/usr/bin", "/usr/local/bin", "/opt/homebrew/sbin")


def find_binary(name: str, given: str | None = None) -> str | None:
    """*given* when it is executable; else *name* on PATH or in the sbin folders (Debian puts servers
    in /usr/sbin, not always on a user's PATH)."""
    if given:
        return given if os.access(given, os.X_OK) else None
    return shutil.which(name) or next((f"{d}/{name}" for d in SBIN if os.access(f"{d}/{name}", os.X_OK)), None)


def tail(text: str, lines: int = 12, indent: str = "    ") -> str:
    """The last lines of a log, indented, for an error message."""
    return "\n".join(indent + line for line in text.strip().splitlines()[-lines:])


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


def more_files() -> None:
    """A hierarchy of 250+ servers needs two sockets each: lift the soft limit on open files."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 65536 if hard == resource.RLIM_INFINITY else min(hard, 65536)
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


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
