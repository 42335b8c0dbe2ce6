"""Shared fixtures: a lab running on loopback in a background event loop.

Tests talk to it with ordinary blocking dnspython clients, as users do.
"""

from __future__ import annotations

import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Callable, Iterator

import pytest

from dnslab.lab.runtime import Lab
from dnslab.testing import LabRunner

def pump_lines(stream: IO[str], lines: "queue.Queue[str]") -> None:
    """Copy a child's output into a queue, line by line, until the pipe ends or is closed.

    Run in a daemon thread; `Popen.communicate` in the test may close the pipe under it,
    which ends the copying rather than raising in the thread.
    """
    try:
        for line in stream:
            lines.put(line)
    except (ValueError, OSError):
        pass


_LINES: dict[int, "queue.Queue[str]"] = {}
_READERS: dict[int, threading.Thread] = {}


def read_until(proc: subprocess.Popen[str], marker: str, timeout: float = 30) -> str:
    """Collect stdout until *marker* appears, the process exits, or *timeout* passes.

    One reader thread per process does the reading (a text pipe buffers ahead, so
    polling the descriptor would miss lines already read into Python); later calls
    continue where the earlier ones stopped.
    """
    assert proc.stdout is not None
    if proc.pid not in _LINES:
        lines: queue.Queue[str] = queue.Queue()
        _LINES[proc.pid] = lines
        _READERS[proc.pid] = threading.Thread(target=pump_lines, args=(proc.stdout, lines), daemon=True)
        _READERS[proc.pid].start()
    seen = ""
    deadline = time.monotonic() + timeout
    while marker not in seen:
        try:
            seen += _LINES[proc.pid].get(timeout=max(0.01, deadline - time.monotonic()))
        except queue.Empty:
            break
    return seen


def join_reader(proc: subprocess.Popen[str], timeout: float = 30) -> None:
    """Wait for the process's reader thread (if `read_until` started one) to see the end of stdout."""
    _LINES.pop(proc.pid, None)
    reader = _READERS.pop(proc.pid, None)
    if reader is not None:
        reader.join(timeout=timeout)


def stop(proc: subprocess.Popen[str], sig: int = signal.SIGTERM) -> tuple[int, str, str]:
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=30)
    return proc.returncode, out, err


def lab_process(tmp_path: Path, *options: str) -> tuple[subprocess.Popen[str], Callable[..., str]]:
    """`dnslab up --port 0 OPTIONS` with a private state folder, and a runner for commands that talk to it."""
    env = {**ENV, "DNSLAB_STATE": str(tmp_path / "state")}
    proc = subprocess.Popen([sys.executable, "-m", "dnslab", "up", "--port", "0", *options,
                             "--hints", str(tmp_path / "root.hints")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)

    def run(*args: str) -> str:
        done = subprocess.run([sys.executable, "-m", "dnslab", *args], capture_output=True, text=True, env=env,
                              timeout=60)
        assert done.returncode == 0, done.stderr
        return done.stdout

    return proc, run


def find_chromium(what: str) -> str:
    """Debian's chromium, or skip *what* saying why (CI installs it: see .ci/run)."""
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    pytest.skip(f"no chromium (or chromium-browser) on PATH: {what} skipped (Debian: apt-get install chromium)")


REPO = Path(__file__).resolve().parent.parent
SAMPLE_ZONES = REPO / "dnslab" / "zones"
# For `python -m dnslab` children: this checkout's package, whatever is installed.
ENV = {**os.environ, "PYTHONPATH": str(REPO)}


class LabThread(LabRunner):
    """Any Lab (built by the test) running in the background; `with` gives the Lab itself."""

    def __enter__(self) -> Lab:
        self.start()
        return self.lab

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


@pytest.fixture(scope="session")
def sample_lab() -> Iterator[Lab]:
    """The sample hierarchy (dnslab/zones/), on one free port shared by all its servers."""
    lab, _ = Lab.from_folder(SAMPLE_ZONES, port=0)
    with LabThread(lab) as running:
        yield running


def tcp_exchange(host: str, port: int, wire: bytes, timeout: float = 10.0) -> bytes:
    """One RFC 7766 exchange of raw bytes: *wire* sent with its length prefix, the reply's bytes
    as they came (no parsing, so a test can send and see what no DNS library would)."""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(len(wire).to_bytes(2, "big") + wire)
        length = int.from_bytes(sock.recv(2), "big")
        data = b""
        while len(data) < length:
            data += sock.recv(length - len(data))
        return data


def sample_copy(tmp_path: Path, lab_toml: str = "") -> Path:
    """A copy of the sample zones in *tmp_path*/zones, without their signing keys' folder, with
    *lab_toml* added at the end of its lab.toml."""
    folder = tmp_path / "zones"
    shutil.copytree(SAMPLE_ZONES, folder, ignore=shutil.ignore_patterns(".keys"))
    if lab_toml:
        with open(folder / "lab.toml", "a", encoding="utf-8") as settings:
            settings.write(lab_toml)
    return folder
