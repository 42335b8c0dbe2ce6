"""pytest fixtures for a running DNS lab: `dns_lab`, `dns_lab_session` and `make_dns_lab`.

Registered under the `pytest11` entry point, so any project that installs
dnslab has them.  Every lab binds one free port (chosen by the kernel) for all
its addresses, so labs never collide, within a session or between pytest-xdist
workers; each is stopped and its sockets released at teardown, also when the
test fails.  Inside pytest a lab runs on a fake clock: `dns_lab.clock.advance(s)`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from dnslab.core.errors import BindError
from dnslab.testing import DnsLab, unavailable


@pytest.fixture
def make_dns_lab() -> Iterator[Callable[..., DnsLab]]:
    """A factory: `make_dns_lab(zones=DIR, fake_clock=True, start_down=[...], resolver_settings=..., dnssec=True)`;
    `resolver="unbound"` (or kresd, bind) and `servers={"ns1.example.com": "nsd"}` run real programs
    (docs/FOREIGN.md); a test that asks for one not installed here is skipped, saying which.

    Labs made in a test are all stopped when it ends.
    """
    labs: list[DnsLab] = []

    def make(zones: str | Path | None = None, **options: Any) -> DnsLab:
        reason = unavailable(options.get("resolver"), options.get("servers"))
        if reason is not None:  # make_dns_lab(resolver="unbound") where Unbound is not installed
            pytest.skip(reason)
        lab = DnsLab(zones, **options)
        labs.append(lab)
        try:
            return lab.start()
        except BindError as exc:
            if lab.lab.port != 53:
                raise
            pytest.skip(f"port 53 is taken here, which the lab needs with {lab.resolver_name}: {exc}")

    yield make
    errors = []
    for lab in reversed(labs):
        try:
            lab.stop()
        except Exception as exc:  # noqa: BLE001 - stop the others, then report
            errors.append(exc)
    if errors:
        raise errors[0]


@pytest.fixture
def dns_lab(make_dns_lab: Callable[..., DnsLab]) -> DnsLab:
    """A fresh lab of dnslab's sample zones for this test (it starts in a fraction of a second)."""
    return make_dns_lab()


@pytest.fixture(scope="session")
def dns_lab_session() -> Iterator[DnsLab]:
    """One sample lab shared by the whole session: faster, but tests see each other's cache and faults."""
    with DnsLab() as lab:
        yield lab
