"""dnslab's own commands as child processes: `dnslab up` with a private state file, waited for until
its ready line, and the other commands (`resolver`, `serve`) run the same way.

Children run this working tree (PYTHONPATH), whatever the venv has installed, and keep their state
file in the tool's work folder, so that a lab the user is running keeps its own.  (A lab in the
tool's own process is `dnslab.testing.LabRunner`.)
"""

from __future__ import annotations

import json
import os
import re
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tools.common.procs import Managed

REPO = Path(__file__).resolve().parent.parent.parent
SAMPLE_ZONES = REPO / "dnslab" / "zones"
# The last line of `dnslab up`'s banner (dnslab.faces.cli.print_lab), printed after the state file and the
# root hints are written: from it on the lab answers and its control endpoint is there.
READY_LINE = "Ctrl-C stops the lab."


class LabUnavailable(Exception):
    """`dnslab up` cannot listen (a port in use, or port 53 without root): the caller may go on without."""


class Dnslab:
    """How to run the dnslab command of this working tree, with a private state folder (one lab-PORT.json
    per lab in it), so the tool's labs and the user's own never meet."""

    def __init__(self, python: str, workdir: Path, state: Path | None = None,
                 env: dict[str, str] | None = None) -> None:
        self.python = python
        self.workdir = workdir
        self.env = dict(os.environ if env is None else env)
        self.env["PYTHONPATH"] = str(REPO) + os.pathsep + self.env.get("PYTHONPATH", "")
        self.state_dir = state or workdir / "state"
        self.env["DNSLAB_STATE"] = str(self.state_dir)
        self.count = 0

    def argv(self, *args: str) -> list[str]:
        return [self.python, "-m", "dnslab", *args]

    def start(self, name: str, *args: str) -> Managed:
        """`dnslab ARGS...` in a session of its own, its output in WORKDIR/NAME-N.log."""
        self.count += 1
        return Managed(f"dnslab {args[0]}", self.argv(*args), self.workdir / f"{name}-{self.count}.log", self.env)

    def up(self, zones: Path = SAMPLE_ZONES, port: int = 0, *options: str, timeout: float = 90) -> "UpLab":
        """`dnslab up --zones ZONES --port PORT OPTIONS...`, once its ready line is out.

        Raises LabUnavailable when it cannot listen, RuntimeError when it fails otherwise or does not
        start in time (both with its output's tail); nothing is left running then.
        """
        hints = self.workdir / f"root-{self.count + 1}.hints"
        process = self.start("up", "up", "--zones", str(zones), "--port", str(port), "--hints", str(hints), *options)
        try:
            process.wait_output("^" + re.escape(READY_LINE), timeout)
        except RuntimeError as exc:
            process.stop()
            text = process.output().strip()
            last = text.splitlines()[-1] if text else ""
            if "cannot listen" in last:  # dnslab's one line for a port in use or needing root
                raise LabUnavailable(last) from None
            raise RuntimeError(f"dnslab up --zones {zones}: {exc}") from None
        text = process.output()
        match = re.search(r"servers up, .* port (\d+)", text)
        servers = re.findall(r"^\s+(?:root|TLD|authoritative)\s+\S+\s+([\d.]+):\d+", text, re.M)
        bound = int(match.group(1)) if match else port
        return UpLab(process, bound, hints, self.state_dir / f"lab-{bound}.json", servers)


@dataclass
class UpLab:
    """A running `dnslab up`: its process, port, root hints, state file and servers' addresses."""

    process: Managed
    port: int
    hints: Path
    state_path: Path
    servers: list[str] = field(default_factory=list)

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self, grace: float = 30.0) -> int | None:
        return self.process.stop(grace)

    def state(self) -> dict[str, Any]:
        return json.loads(self.state_path.read_text())

    def control(self, command: str, args: dict[str, Any] | None = None, worker: int | None = None,
                timeout: float = 10) -> Any:
        """One control request to the lab (or to worker N of `--workers`); its result, or RuntimeError."""
        state = self.state()
        port, token = state["control_port"], state["token"]
        if worker is not None:
            port, token = state["workers"][worker]["port"], state["workers"][worker]["token"]
        request = {"token": token, "command": command, "args": args or {}}
        with socket.create_connection((state["control_address"], int(port)), timeout=timeout) as sock:
            sock.sendall(json.dumps(request).encode() + b"\n")
            with sock.makefile("r", encoding="utf-8") as lines:
                reply = json.loads(lines.readline())
        if not reply.get("ok"):
            raise RuntimeError(f"control {command}: {reply.get('error', reply)}")
        return reply["result"]
