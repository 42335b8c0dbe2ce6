"""Shared fixtures: a lab running on loopback in a background event loop.

Tests talk to it with ordinary blocking dnspython clients, as users do.
"""

from __future__ import annotations

import asyncio
import shutil
import threading
from pathlib import Path
from typing import Any, Coroutine, Iterator, TypeVar

import pytest

from dnslab.lab import Lab

T = TypeVar("T")


def find_chromium(what: str) -> str:
    """Debian's chromium, or skip *what* saying why (CI installs it: see .ci/run)."""
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    pytest.skip(f"no chromium (or chromium-browser) on PATH: {what} skipped (Debian: apt-get install chromium)")
REPO = Path(__file__).resolve().parent.parent
SAMPLE_ZONES = REPO / "zones"


class LabThread:
    """Runs a Lab's servers on an event loop in a daemon thread."""

    def __init__(self, lab: Lab) -> None:
        self.lab = lab
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def __enter__(self) -> Lab:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.lab.start(), self.loop).result(timeout=30)
        return self.lab

    def call(self, coroutine: Coroutine[Any, Any, T], timeout: float = 30) -> T:
        """Run a coroutine on the lab's loop (to stop a server, say) and wait for it."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=timeout)

    def __exit__(self, *exc_info: object) -> None:
        asyncio.run_coroutine_threadsafe(self.lab.stop(), self.loop).result(timeout=30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()


@pytest.fixture(scope="session")
def sample_lab() -> Iterator[Lab]:
    """The sample hierarchy from zones/, on one free port shared by all its servers."""
    lab, _ = Lab.from_folder(SAMPLE_ZONES, port=0)
    with LabThread(lab) as running:
        yield running
