"""A zone's recent changes, kept so IXFR (RFC 1995) can send differences instead of the zone.

Every new version of a zone a server is given (a `dnslab record set`, a
dynamic update, a reload, a re-signing) is compared with the version it
replaces; if the SOA serial moved forward the difference is remembered, as
NSD's ixfr files and BIND's journal do.  The journal is bounded (NSD keeps
`ixfr-number: 5` versions by default; a lab can afford more), and is emptied
when the serial goes backwards or stays put while the data changes: such a
history cannot be told as differences, and a client then gets the whole zone.

Sans-I/O: zones in, differences out.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import dns.name
import dns.rdatatype
import dns.rrset
import dns.serial

from dnslab.core.zone import Zone

# Versions remembered per zone: enough for a learner's afternoon of changes.
JOURNAL_VERSIONS = 100

_Key = tuple[dns.name.Name, int, int]  # owner, type, covered type


@dataclass(frozen=True)
class Delta:
    """One version step: the records removed from *old_soa*'s version and added to make *new_soa*'s.

    A changed TTL is a removal and an addition of the whole RRset, as IXFR can only say it so.
    """

    old_soa: dns.rrset.RRset
    new_soa: dns.rrset.RRset
    deleted: tuple[dns.rrset.RRset, ...]
    added: tuple[dns.rrset.RRset, ...]

    @property
    def old_serial(self) -> int:
        return serial_of(self.old_soa)

    @property
    def new_serial(self) -> int:
        return serial_of(self.new_soa)


def serial_of(soa: dns.rrset.RRset) -> int:
    return int(soa[0].serial)  # type: ignore[attr-defined]


def newer(a: int, b: int) -> bool:
    """*a* is after *b* in RFC 1982 serial number arithmetic."""
    return dns.serial.Serial(a) > dns.serial.Serial(b)


def diff(old: Zone, new: Zone) -> Delta:
    """What changed from *old* to *new*, SOA aside, every RRset DNSSEC data included."""
    before, after = _index(old), _index(new)
    deleted: list[dns.rrset.RRset] = []
    added: list[dns.rrset.RRset] = []
    for key in sorted(before.keys() | after.keys(), key=_order):
        if key[1] == dns.rdatatype.SOA:
            continue
        was, now = before.get(key), after.get(key)
        if was is not None and now is not None and was.ttl == now.ttl:
            gone, came = _minus(was, now), _minus(now, was)
        else:
            gone, came = was, now
        if gone:
            deleted.append(gone)
        if came:
            added.append(came)
    return Delta(old.soa, new.soa, tuple(deleted), tuple(added))


def _index(zone: Zone) -> dict[_Key, dns.rrset.RRset]:
    return {(rrset.name, int(rrset.rdtype), int(rrset.covers)): rrset for rrset in zone.rrsets()}


def _order(key: _Key) -> tuple[dns.name.Name, int, int]:
    return key


def _minus(a: dns.rrset.RRset, b: dns.rrset.RRset) -> dns.rrset.RRset | None:
    """The records of *a* that *b* lacks, as an RRset (None if none)."""
    left = [rdata for rdata in a if rdata not in b]
    if not left:
        return None
    out = dns.rrset.RRset(a.name, a.rdclass, a.rdtype, a.covers)
    for rdata in left:
        out.add(rdata, a.ttl)
    return out


class Journal:
    """The differences between the recent versions of one zone, oldest first."""

    def __init__(self, limit: int = JOURNAL_VERSIONS) -> None:
        self.deltas: deque[Delta] = deque(maxlen=limit)

    def record(self, old: Zone, new: Zone) -> None:
        """Remember the step from *old* to *new* (or forget everything if it cannot be told as one)."""
        old_serial, new_serial = serial_of(old.soa), serial_of(new.soa)
        if old_serial == new_serial:
            if _index(old) != _index(new):
                self.deltas.clear()  # same serial, other data: no client can ask for the difference
            return
        if not newer(new_serial, old_serial):
            self.deltas.clear()  # the serial went back: the history no longer leads here
            return
        if self.deltas and self.deltas[-1].new_serial != old_serial:
            self.deltas.clear()
        self.deltas.append(diff(old, new))

    def since(self, serial: int) -> list[Delta] | None:
        """The steps from version *serial* to the newest, or None if the journal does not reach back to it."""
        steps = list(self.deltas)
        for index, delta in enumerate(steps):
            if delta.old_serial == serial:
                return steps[index:]
        return None

    @property
    def serials(self) -> list[int]:
        """The versions a client can be brought up to date from."""
        return [delta.old_serial for delta in self.deltas]
