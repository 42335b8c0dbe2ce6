"""Zone operations across the lab: TSIG keys, who may transfer, dynamic updates applied lab-wide.

lab.toml says (all optional, docs/ZONE_OPERATIONS.md):

    allow_transfer = ["127.0.0.0/8"]        # who may AXFR/IXFR unsigned (default: loopback)
    tsig_key_file = "tsig.key"              # BIND key file (`tsig-keygen` output), relative to lab.toml
    [tsig_keys]                              # or keys inline: name = "base64 secret" (HMAC-SHA256)
    "update-key" = "c2VjcmV0..."

Without a key a lab makes one, HMAC-SHA256 with 32 random bytes, fresh at
every start (`dnslab up` writes it where `nsupdate -k` reads it): a key known
in advance to everyone would authenticate nobody.

Each lab server gets the keys, the transfer policy, the machine's clock for
TSIG's time (the one dig and nsupdate sign with), and an update hook: an UPDATE is checked and made on the zone as
written (a signed lab signs it again), one at a time, through the same path
as `dnslab record set`, so every server of the zone serves it at once and
each records the step in its journal for IXFR.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dns.name
import dns.rcode
import dns.tsig
import dns.update

from dnslab.authority import tsig, update
from dnslab.authority.operations import LOOPBACK, Network, networks
from dnslab.core.clock import WallClock
from dnslab.core.errors import ConfigError, DnslabError
from dnslab.lab.secondaries import Secondaries, parse_also_notify, parse_primaries

if TYPE_CHECKING:
    from dnslab.lab.runtime import Lab, RunningServer

log = logging.getLogger(__name__)

SETTINGS = ("allow_transfer", "tsig_keys", "tsig_key_file", "primaries", "also_notify")


@dataclass(frozen=True)
class ReplicationSettings:
    """The zone-operation settings of lab.toml."""

    keys: tuple[dns.tsig.Key, ...] = ()
    allow_transfer: tuple[Network, ...] = LOOPBACK
    primaries: dict[dns.name.Name, str] = field(default_factory=dict)  # zone -> its primary (secondaries.py)
    also_notify: dict[dns.name.Name, tuple[tuple[str, int], ...]] = field(default_factory=dict)  # outside secondaries

    @classmethod
    def from_toml(cls, data: dict[str, Any], path: Path) -> "ReplicationSettings":
        keys: list[dns.tsig.Key] = []
        inline = data.get("tsig_keys", {})
        if not isinstance(inline, dict) or not all(isinstance(v, str) for v in inline.values()):
            raise ConfigError(f'{path}: [tsig_keys] must be a table of name = "base64 secret"')
        keys += [tsig.make_key(name, secret, where=f"{path} [tsig_keys]") for name, secret in inline.items()]
        key_file = data.get("tsig_key_file")
        if key_file is not None:
            if not isinstance(key_file, str):
                raise ConfigError(f"{path}: tsig_key_file must be a file name")
            keys += tsig.read_key_file(path.parent / key_file)
        allowed = data.get("allow_transfer", None)
        acl = LOOPBACK
        if allowed is not None:
            if not isinstance(allowed, list) or not all(isinstance(item, str) for item in allowed):
                raise ConfigError(f"{path}: allow_transfer must be a list of addresses or networks")
            try:
                acl = networks(allowed, f"{path}: allow_transfer")
            except ValueError as exc:
                raise ConfigError(str(exc)) from None
        primaries = parse_primaries(data.get("primaries", {}), str(path))
        also_notify = parse_also_notify(data.get("also_notify", {}), str(path))
        for origin in also_notify:
            if origin not in primaries:
                raise ConfigError(f"{path}: [also_notify] {origin}: name its primary in [primaries] "
                                  "(the server that sends the NOTIFYs)")
        return cls(keys=tuple(keys), allow_transfer=acl, primaries=primaries, also_notify=also_notify)


@dataclass
class Replication:
    """The lab's side of zone operations (see the module docstring)."""

    lab: "Lab"
    settings: ReplicationSettings = field(default_factory=ReplicationSettings)

    def __post_init__(self) -> None:
        keys = list(self.settings.keys) or [tsig.new_key()]
        self.keyring: tsig.Keyring = {key.name: key for key in keys}
        self._lock = asyncio.Lock()
        self.updates = 0  # dynamic updates that changed a zone
        self.secondaries = Secondaries(self.lab, dict(self.settings.primaries), dict(self.settings.also_notify))

    @property
    def key(self) -> dns.tsig.Key:
        """The first key: the one `dnslab up` prints and tests sign with."""
        return next(iter(self.keyring.values()))

    def attach(self, running: "RunningServer") -> None:
        """Give a lab server the keys, the transfer policy (and its fault), TSIG's clock and the update hook."""
        ops = running.server.ops
        ops.transfers_refused = lambda: running.faulty.state.xfr_refused
        ops.keyring = self.keyring
        ops.transfer_acl = self.settings.allow_transfer
        # TSIG's time is the machine's, not the lab clock: dig and nsupdate sign with the real time, and a
        # fake clock moved by days (TTL and expiry demos) would make every signature BADTIME.
        ops.clock = WallClock()
        ops.update_hook = self.apply_update

    def write_key_file(self, path: Path) -> Path:
        """The first key as a BIND key file (for `nsupdate -k`), readable by the user only."""
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600, exist_ok=True)
        path.write_text(tsig.key_file_text(self.key), encoding="utf-8")
        return path

    async def apply_update(self, origin: dns.name.Name, message: dns.update.UpdateMessage) -> update.Outcome:
        """Make an UPDATE on the zone as written and serve it lab-wide; UpdateRefused says why not."""
        if self.lab.reuse_port:  # worker processes: the update would reach only the one that got it
            raise update.UpdateRefused(dns.rcode.REFUSED, "dynamic update needs one process (dnslab up without "
                                                          "--workers); `dnslab record set` reaches every worker")
        async with self._lock:  # one at a time: each update sees the one before (RFC 2136 §3.7)
            source = next((zone for zone in self.lab._sources() if zone.origin == origin), None)
            if source is None:
                raise update.UpdateRefused(dns.rcode.NOTAUTH, f"{origin} is not a lab zone")
            outcome = update.apply(source, message)
            if outcome.zone is None:
                return outcome
            try:
                await self.lab._apply([outcome.zone])
            except DnslabError as exc:  # the lab could not run the result (e.g. an NS without address)
                raise update.UpdateRefused(dns.rcode.REFUSED, str(exc)) from None
            self.lab.runtime_changes += 1
            self.updates += 1
            return outcome
