"""Shared fixtures: a lab running on loopback in a background event loop.

Tests talk to it with ordinary blocking dnspython clients, as users do.
"""

from __future__ import annotations

import queue
import shutil
from pathlib import Path
from typing import IO, Iterator

import pytest

from dnslab.lab import Lab
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


def find_chromium(what: str) -> str:
    """Debian's chromium, or skip *what* saying why (CI installs it: see .ci/run)."""
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    pytest.skip(f"no chromium (or chromium-browser) on PATH: {what} skipped (Debian: apt-get install chromium)")


REPO = Path(__file__).resolve().parent.parent
SAMPLE_ZONES = REPO / "zones"


class LabThread(LabRunner):
    """Any Lab (built by the test) running in the background; `with` gives the Lab itself."""

    def __enter__(self) -> Lab:
        self.start()
        return self.lab

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


@pytest.fixture(scope="session")
def sample_lab() -> Iterator[Lab]:
    """The sample hierarchy from zones/, on one free port shared by all its servers."""
    lab, _ = Lab.from_folder(SAMPLE_ZONES, port=0)
    with LabThread(lab) as running:
        yield running
