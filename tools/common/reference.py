"""The reference servers dnslab is measured and compared against (Unbound, NSD), and the tools they need.

Each runs in the foreground (`-d`) as a `Managed` child with a config generated into the tool's work
folder: no user, no chroot, no syslog, no remote control, files of its own, loopback only.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Callable

from tools.common.net import free_port, query_wire, wait_answering
from dnslab.lab.processes import SBIN, find_binary  # noqa: F401 - SBIN: kept where the tools found it
from dnslab.lab.programs import nsd_server_lines, nsd_zone_lines, unbound_server_lines
from tools.common.procs import Managed
from tools.common.report import tail

def not_installed(tool: str, package: str | None = None) -> str:
    """The one line a tool prints when a program it needs is missing."""
    return f"{tool} is not installed (Debian: apt-get install {package or tool})"


def ensure_packages(packages: dict[str, str], install: bool,
                    say: Callable[[str], None]) -> tuple[dict[str, str | None], list[str]]:
    """The binaries of *packages* (Debian package -> binary), installing the missing ones with apt-get
    when we may (root, Debian); notes say what was installed or why not."""
    notes: list[str] = []
    missing = [package for package, binary in packages.items() if find_binary(binary) is None]
    if missing and install:
        if os.geteuid() != 0 or shutil.which("apt-get") is None:
            notes.append(f"not installed: {' '.join(missing)} (apt-get needs root on Debian)")
        else:
            say(f"installing with apt-get: {' '.join(missing)}")
            notes.append(f"installed with apt-get: {' '.join(missing)}")
            env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
            # Keep the packages' services from starting (a Debian NSD would take port 53 on
            # every address); the usual policy-rc.d guard, removed again afterwards.
            policy = Path("/usr/sbin/policy-rc.d")
            placed = False
            if not policy.exists():
                policy.write_text("#!/bin/sh\nexit 101\n")
                policy.chmod(0o755)
                placed = True
            try:
                for step in (["apt-get", "update", "-qq"],
                             ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing]):
                    result = subprocess.run(step, env=env, capture_output=True, text=True, timeout=600)
                    if result.returncode != 0:
                        notes[-1] = f"apt-get failed ({' '.join(step[:2])}): {tail(result.stdout + result.stderr, 3).strip()}"
                        break
            except (subprocess.TimeoutExpired, OSError) as exc:
                notes[-1] = f"apt-get failed: {exc}"
            finally:
                if placed:
                    policy.unlink(missing_ok=True)
    elif missing:
        notes.append(f"not installed: {' '.join(missing)} (--no-install)")
    return {package: find_binary(binary) for package, binary in packages.items()}, notes


def version(binary: str | None, flag: str, pattern: str) -> str | None:
    """The version a program reports (`unbound -V`, `nsd -v`, `dnsperf -h`): None without the program,
    "?" when its output does not match."""
    if binary is None:
        return None
    try:
        result = subprocess.run([binary, flag], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(pattern, result.stdout + result.stderr)
    return match.group(1) if match else "?"


# --- Unbound -------------------------------------------------------------------------------------


def unbound_config(address: tuple[str, int], workdir: Path, hints: Path, options: list[str]) -> str:
    """An unbound.conf for one foreground Unbound on address, asking the lab's servers (on loopback)
    from *hints*; *options* are further `server:` lines ("  name: value").  The common lines are the
    lab's own (dnslab.lab.programs, which also runs Unbound as the lab's resolver)."""
    return "\n".join([
        "server:",
        *unbound_server_lines(address[0], address[1], workdir, hints, workdir / "unbound.log"),
        *options,
        "remote-control:",
        "  control-enable: no",
        "",
    ])


def write_checked(binary: str, conf: Path, render: Callable[[list[str]], str], optional: list[str]) -> list[str]:
    """Write conf = render(optional) and check it with unbound-checkconf (when there); lines of
    *optional* (options only some versions know) that it rejects are dropped. Returns those kept."""
    checkconf = shutil.which("unbound-checkconf", path=str(Path(binary).parent)) or shutil.which("unbound-checkconf")
    while True:
        conf.write_text(render(optional), encoding="utf-8")
        if checkconf is None:
            return optional
        check = subprocess.run([checkconf, str(conf)], capture_output=True, text=True, timeout=30)
        if check.returncode == 0:
            return optional
        output = check.stdout + check.stderr
        unknown = [line for line in optional if line.split(":")[0].strip() in output]
        if not unknown:
            raise RuntimeError(f"unbound-checkconf rejects {conf}:\n{tail(output)}")
        optional = [line for line in optional if line not in unknown]


def start_unbound(binary: str, workdir: Path, host: str, hints: Path, options: list[str],
                  optional: tuple[str, ...] = (), port: int | None = None, timeout: float = 30) -> tuple[Managed, tuple[str, int]]:
    """Unbound on host (a free port unless given), once it answers; RuntimeError with its log if not."""
    workdir.mkdir(parents=True, exist_ok=True)
    conf = workdir / "unbound.conf"

    def launch(address: tuple[str, int]) -> Managed:
        write_checked(binary, conf, lambda extra: unbound_config(address, workdir, hints, [*options, *extra]),
                      list(optional))
        return Managed("Unbound", [binary, "-d", "-c", str(conf)], workdir / "unbound.out")

    return _start("Unbound", host, port, launch, None, timeout, workdir / "unbound.log")


# A free port can be taken by another program between finding it and the server binding it.
BIND_TRIES = 5


def _start(what: str, host: str, port: int | None, launch: Callable[[tuple[str, int]], Managed],
           probe: bytes | None, timeout: float, log: Path) -> tuple[Managed, tuple[str, int]]:
    """launch(address) on host (a free port unless given) and wait until it answers *probe*; when the
    free port was lost before the server bound it, again on another (bounded). RuntimeError with the
    tails of its output and its log if it does not answer; nothing is left running then."""
    for attempt in range(1 if port is not None else BIND_TRIES):
        address = (host, port if port is not None else free_port(host))
        process = launch(address)
        try:
            wait_answering(address, process, timeout, what, probe)
            return process, address
        except RuntimeError as exc:
            process.stop()
            logged = log.read_text(errors="replace") if log.exists() else ""
            if port is None and attempt + 1 < BIND_TRIES and "already in use" in process.output() + logged:
                continue
            raise RuntimeError(f"{exc}\n{tail(logged)}" if logged.strip() else str(exc)) from None
    raise AssertionError("unreachable")


# --- NSD -----------------------------------------------------------------------------------------


def nsd_config(address: tuple[str, int], workdir: Path, zones: list[tuple[str, Path]], options: list[str]) -> str:
    """An nsd.conf for one foreground NSD on address serving zones [(origin, file)]; *options* are
    further `server:` lines.  The common lines are the lab's own (dnslab.lab.programs)."""
    return "\n".join([
        "server:",
        *nsd_server_lines(address[0], address[1], workdir, workdir / "nsd.log"),
        *options,
        "remote-control:",
        "  control-enable: no",
        *nsd_zone_lines(zones),
        "",
    ])


def start_nsd(binary: str, workdir: Path, host: str, zones: list[tuple[str, Path]], options: list[str],
              timeout: float = 30) -> tuple[Managed, tuple[str, int]]:
    """NSD on host (a free port), once it answers for its first zone's SOA; RuntimeError if not."""
    workdir.mkdir(parents=True, exist_ok=True)
    conf = workdir / "nsd.conf"

    def launch(address: tuple[str, int]) -> Managed:
        conf.write_text(nsd_config(address, workdir, zones, options), encoding="utf-8")
        return Managed("NSD", [binary, "-d", "-c", str(conf)], workdir / "nsd.out")

    probe = query_wire(zones[0][0], "SOA", 4343, rd=False, edns=False)
    return _start("NSD", host, None, launch, probe, timeout, workdir / "nsd.log")
