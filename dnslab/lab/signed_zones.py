"""A lab's DNSSEC: which zones are signed, with which keys, by which clock, broken how.

The lab's zone files stay unsigned; this signs them in memory at start-up (and
again whenever signatures near their expiry, a record changes, or a DNSSEC
fault is put in force or lifted), publishes each signed child's DS in its
parent, and gives the root's DS as the trust anchor.  The DNSSEC faults act on
zone data, not on a server, which is why they are played here and not in
faults.py (they are declared, with every other fault, in fault_kinds).

Signature times are POSIX seconds, but the lab's clock is monotonic (or fake),
so signing time is the clock's `wall()`: real time, plus however far a fake
clock has been advanced.  The validating resolver reads the same `wall()`, so
`dnslab clock advance 1300000` makes signatures expire for it too.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import dns.exception
import dns.name
import dns.rrset

from dnslab.core.clock import Clock
from dnslab.core.errors import ConfigError, DnslabError
from dnslab.dnssec.keys import DEFAULT_ALGORITHM, Algorithm, ZoneKeys, load_or_create
from dnslab.dnssec.signing import SigningFaults, SigningPolicy, make_ds, sign_rrset, sign_zone
from dnslab.core.zone import Zone
from dnslab.lab import fault_kinds as kinds
from dnslab.lab.fault_kinds import FaultKind

log = logging.getLogger(__name__)

ANCHOR_NAME = "root-anchor.ds"
ANCHOR_TTL = 86400
# The zone faults signing knows how to play (see _sign and dnssec.signing.SigningFaults).
ZONE_FAULTS = (kinds.DNSSEC_BAD_SIG, kinds.DNSSEC_EXPIRED, kinds.DNSSEC_MISSING_DS, kinds.DNSSEC_WRONG_DS)


@dataclass
class DnssecSettings:
    """What lab.toml, `dnslab up` flags or DnsLab(...) say about signing."""

    keys_dir: Path
    nsec3: bool = False
    algorithm: Algorithm = DEFAULT_ALGORITHM
    unsigned: tuple[dns.name.Name, ...] = ()
    anchor_file: Path | None = None  # default: beside the keys


@dataclass
class SignedZones:
    """The signed versions of a lab's zones, remade as the clock and the faults say."""

    settings: DnssecSettings
    clock: Clock
    sources: dict[dns.name.Name, Zone]
    policy: SigningPolicy = field(init=False)
    keys: dict[dns.name.Name, ZoneKeys] = field(init=False)
    faults: dict[dns.name.Name, set[FaultKind]] = field(default_factory=dict)
    signed_at: float = 0.0
    resign_at: float = 0.0  # on the lab clock
    signing_seconds: float = 0.0

    def __post_init__(self) -> None:
        self.policy = SigningPolicy(algorithm=self.settings.algorithm, nsec3=self.settings.nsec3)
        unknown = [name for name in self.settings.unsigned if name not in self.sources]
        if unknown:
            raise ConfigError(f"dnssec_unsigned: {', '.join(n.to_text() for n in unknown)} "
                              "is not a zone of this lab")
        self.keys = {origin: load_or_create(self.settings.keys_dir, origin, self.settings.algorithm)
                     for origin in self.sources if origin not in self.settings.unsigned}

    # --- time ----------------------------------------------------------------------------

    def wall_time(self) -> float:
        """POSIX seconds by the lab clock: what signatures are made (and checked) against."""
        return self.clock.wall()

    def due(self) -> bool:
        return self.clock.now() >= self.resign_at

    # --- signing -------------------------------------------------------------------------

    def sign_all(self) -> dict[dns.name.Name, Zone]:
        """Every zone, signed now (the unsigned ones as they are)."""
        started = time.perf_counter()
        now = self.wall_time()
        signed = {origin: self._sign(source, now) for origin, source in self.sources.items()}
        self.signed_at = now
        self.resign_at = self.clock.now() + self.policy.refresh_after()
        self.signing_seconds = time.perf_counter() - started
        return signed

    def _sign(self, source: Zone, now: float) -> Zone:
        keys = self.keys.get(source.origin)
        if keys is None:
            return source
        child_ds = {}
        claim: set[dns.name.Name] = set()
        wrong: set[dns.name.Name] = set()
        for cut in source.cuts:
            if cut not in self.sources:
                continue  # not a lab zone: whatever DS the file holds stays
            child_keys = self.keys.get(cut)
            child_ds[cut] = [make_ds(child_keys)] if child_keys is not None else []
            if kinds.DNSSEC_MISSING_DS in self.faults.get(cut, ()):
                claim.add(cut)
            if kinds.DNSSEC_WRONG_DS in self.faults.get(cut, ()):
                wrong.add(cut)
        own = self.faults.get(source.origin, set())
        faults = SigningFaults(bad_sig=kinds.DNSSEC_BAD_SIG in own, expired=kinds.DNSSEC_EXPIRED in own,
                               claim_ds=frozenset(claim), wrong_ds=frozenset(wrong))
        return sign_zone(source, keys, now, self.policy, child_ds, faults)

    def set_sources(self, sources: Iterable[Zone]) -> None:
        """A whole new set of zones (a reload): keys made for zones new to the lab, and the keys
        and faults of zones gone from it forgotten. Sign them with sign_all()."""
        self.sources = {zone.origin: zone for zone in sources}
        for origin in self.sources:
            if origin not in self.keys and origin not in self.settings.unsigned:
                self.keys[origin] = load_or_create(self.settings.keys_dir, origin, self.settings.algorithm)
        for origin in [origin for origin in self.keys if origin not in self.sources]:
            del self.keys[origin]
            self.faults.pop(origin, None)

    def sign_rrset(self, origin: dns.name.Name, rrset: dns.rrset.RRset) -> dns.rrset.RRset | None:
        """The RRSIG of an RRset made up per query in a signed zone (a steered answer), or None when the
        zone is left unsigned.  The zone's dnssec-bad-sig and -expired faults spoil these signatures too."""
        keys = self.keys.get(origin)
        if keys is None:
            return None
        own = self.faults.get(origin, set())
        faults = SigningFaults(bad_sig=kinds.DNSSEC_BAD_SIG in own, expired=kinds.DNSSEC_EXPIRED in own)
        return sign_rrset(rrset, keys, self.wall_time(), self.policy, faults)

    def resign(self, origin: dns.name.Name) -> Zone:
        """One zone again, with the current time (after a record changed, say)."""
        return self._sign(self.sources[origin], self.wall_time())

    # --- the trust anchor ------------------------------------------------------------------

    def root_ds(self) -> dns.rrset.RRset | None:
        """The root KSK's DS, the lab's trust anchor; None when the root is left unsigned."""
        keys = self.keys.get(dns.name.root)
        if keys is None:
            return None
        return dns.rrset.from_rdata(dns.name.root, ANCHOR_TTL, make_ds(keys))

    @property
    def anchor_file(self) -> Path:
        return self.settings.anchor_file or self.settings.keys_dir / ANCHOR_NAME

    def write_anchor(self) -> Path | None:
        """Write the root DS in zone-file form (Unbound's trust-anchor-file, BIND's dnssec-... -a)."""
        ds = self.root_ds()
        if ds is None:
            return None
        path = self.anchor_file
        text = ("; The trust anchor of this dnslab lab: the DS of its root zone's KSK.\n"
                "; Unbound: trust-anchor-file: \"" + str(path) + "\"\n" + ds.to_text() + "\n")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            temporary = path.with_name(f"{path.name}.{os.getpid()}.tmp")
            temporary.write_text(text, encoding="utf-8")
            temporary.replace(path)
        except OSError as exc:
            raise ConfigError(f"cannot write the trust anchor to {path}: {exc.strerror or exc}") from None
        return path

    # --- faults ----------------------------------------------------------------------------

    def parent_of(self, origin: dns.name.Name) -> Zone | None:
        return next((zone for zone in self.sources.values() if origin in zone.cuts), None)

    def apply(self, origin: dns.name.Name, kind: FaultKind) -> list[dns.name.Name]:
        """Put a fault in force; returns the zones whose signed data must change."""
        if kind not in ZONE_FAULTS:
            raise DnslabError(f"fault {kind.name} is declared (fault_kinds) but a signed zone cannot play it yet")
        if origin not in self.keys:
            raise DnslabError(f"zone {origin} is not signed (dnssec_unsigned), so it cannot be made bogus")
        affected = [origin]
        if kind in (kinds.DNSSEC_MISSING_DS, kinds.DNSSEC_WRONG_DS):
            parent = self.parent_of(origin)
            if parent is None or parent.origin not in self.keys:
                raise DnslabError(f"zone {origin} has no signed parent in this lab to hold its DS")
            affected = [parent.origin]
        self.faults.setdefault(origin, set()).add(kind)
        return affected

    def clear(self, origin: dns.name.Name) -> list[dns.name.Name]:
        """Lift every DNSSEC fault of a zone; returns the zones to sign again."""
        found = self.faults.pop(origin, set())
        if not found:
            return []
        parent = self.parent_of(origin)
        return [origin] + ([parent.origin] if parent is not None else [])

    def describe(self) -> dict[str, list[str]]:
        return {origin.to_text(): sorted(kind.name for kind in found)
                for origin, found in self.faults.items() if found}


def parse_unsigned(values: Iterable[str], where: str) -> tuple[dns.name.Name, ...]:
    names = []
    for value in values:
        try:
            names.append(dns.name.from_text(str(value)))
        except dns.exception.DNSException as exc:
            raise ConfigError(f"{where}: dnssec_unsigned: {value!r} is not a zone name ({exc})") from None
    return tuple(names)
