"""A secondary's copy of one zone and its SOA timers (RFC 1034 §4.3.5, RFC 1996), no sockets.

The decisions a secondary makes, on whatever clock it is given (the lab clock):

- it starts empty and asks at once; until a first transfer succeeds it asks
  again every FIRST_RETRY seconds (the SOA's timers are not known yet);
- after a successful check (the primary's serial is not newer, or a transfer
  brought the new version) it checks again after the SOA *refresh*, and its
  data is good until *expire* after that success;
- after a failed check it tries again after *retry*;
- a NOTIFY (RFC 1996 §3.7) makes the next check due at once;
- past *expire* without a successful check the zone is expired: the server
  answers SERVFAIL for it, as NSD and BIND do, until a check succeeds again.

The lab's driver (dnslab.lab.secondaries) asks `due`, does the I/O, and reports
`refreshed` or `failed`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import dns.name

from dnslab.authority.journal import newer, serial_of
from dnslab.core.zone import Zone

# Before the first transfer the SOA timers are unknown; NSD starts its backoff at a few seconds.
FIRST_RETRY = 10.0


class State(enum.Enum):
    EMPTY = "empty"        # never transferred: SERVFAIL
    CURRENT = "current"    # the last check succeeded
    RETRYING = "retrying"  # checks fail; the data is served until it expires
    EXPIRED = "expired"    # no successful check for longer than expire: SERVFAIL


@dataclass
class SecondaryZone:
    """One zone on one secondary server: its copy, state and timers."""

    origin: dns.name.Name
    primary: tuple[str, int]
    zone: Zone | None = None
    state: State = State.EMPTY
    next_check: float = 0.0
    expires_at: float | None = None
    notified: bool = False
    last_error: str = ""
    transfers: int = 0      # transfers that brought a new version
    checks: int = 0         # SOA checks made
    last_kind: str = ""     # "AXFR" or "IXFR": what the last transfer asked for

    @property
    def serial(self) -> int | None:
        return serial_of(self.zone.soa) if self.zone is not None else None

    @property
    def serving(self) -> bool:
        return self.zone is not None and self.state in (State.CURRENT, State.RETRYING)

    def due(self, now: float) -> bool:
        return self.notified or now >= self.next_check

    def notify(self) -> None:
        """RFC 1996 §3.7: a NOTIFY from the primary: check at once."""
        self.notified = True

    def wants(self, primary_serial: int) -> bool:
        """Transfer when the primary has a newer serial (RFC 1982), or we have nothing."""
        return self.zone is None or newer(primary_serial, serial_of(self.zone.soa))

    def refreshed(self, now: float, zone: Zone | None = None, kind: str = "") -> None:
        """A check succeeded; *zone* is the new version if one was transferred."""
        if zone is not None:
            self.zone = zone
            self.transfers += 1
            self.last_kind = kind
        assert self.zone is not None
        soa = self.zone.soa[0]
        self.next_check = now + soa.refresh  # type: ignore[attr-defined]
        self.expires_at = now + soa.expire  # type: ignore[attr-defined]
        self.state, self.notified, self.last_error = State.CURRENT, False, ""
        self.checks += 1

    def failed(self, now: float, why: str) -> None:
        retry = self.zone.soa[0].retry if self.zone is not None else FIRST_RETRY  # type: ignore[attr-defined]
        self.next_check = now + retry
        self.notified, self.last_error = False, why
        self.checks += 1
        if self.zone is not None and self.state is not State.EXPIRED:
            self.state = State.RETRYING
        self.tick(now)

    def tick(self, now: float) -> bool:
        """Expire the zone if its time has come; True if the state changed."""
        if self.zone is not None and self.state is not State.EXPIRED and self.expires_at is not None \
                and now >= self.expires_at:
            self.state = State.EXPIRED
            return True
        return False

    def to_json(self, now: float) -> dict[str, object]:
        return {"zone": self.origin.to_text(), "primary": f"{self.primary[0]}@{self.primary[1]}",
                "serial": self.serial, "state": self.state.value,
                "next_check_in": max(0.0, round(self.next_check - now, 1)),
                "expires_in": None if self.expires_at is None else round(self.expires_at - now, 1),
                "transfers": self.transfers, "last_transfer": self.last_kind, "error": self.last_error}
