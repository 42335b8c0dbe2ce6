"""Primaries and secondaries in a running lab: NOTIFY out, SOA checks and transfers in, on the lab clock.

lab.toml names a zone's primary; every other lab server of the zone is then
its secondary (docs/ZONE_OPERATIONS.md):

    [primaries]
    "example.com." = "ns1.example.com."     # an NS name or address of a lab server
    "other.test."  = "127.0.99.1@5399"      # or ADDRESS@PORT: a primary outside the lab (NSD)

A secondary starts empty (SERVFAIL for the zone), transfers from its primary
from its own address (so the primary's ACL and faults see it), then follows the
SOA timers of dnslab.authority.secondary on the lab clock.  The primary sends
NOTIFY (RFC 1996) from its address to each secondary whenever it serves a new
serial, up to NOTIFY_TRIES times until answered; a secondary accepts a NOTIFY
only from its primary's address.  Transfers are signed with the lab's TSIG key
(NSD's `request-xfr: ADDR KEY`), IXFR when the secondary has a copy (dnspython
falls back to the full zone when the primary sends one).

The I/O here runs on the lab's event loop; every network wait is bounded
(SOA_TIMEOUT, XFR_TIMEOUT), and the loop wakes at most every POLL seconds of
real time, or at once on a NOTIFY.  `poll()` runs one round and returns when it
is done, so a test can advance the fake clock and then see the result.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import dns.asyncquery
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import dns.xfr
import dns.zone

from dnslab.authority.secondary import SecondaryZone, State
from dnslab.authority.update import bump_serial
from dnslab.core.errors import ConfigError
from dnslab.core.zone import Zone

if TYPE_CHECKING:
    from dnslab.lab.runtime import Lab, RunningServer

log = logging.getLogger(__name__)

POLL = 0.25          # seconds of real time between rounds
SOA_TIMEOUT = 1.0    # the SOA check; a primary that is down costs a secondary this much per check
XFR_TIMEOUT = 5.0    # a whole transfer
NOTIFY_TRIES = 3     # RFC 1996 §3.6: retransmit until answered (bounded)
NOTIFY_TIMEOUT = 1.0


def parse_primaries(data: Any, where: str) -> dict[dns.name.Name, str]:
    """[primaries] from lab.toml: zone name -> NS name, address, or ADDRESS@PORT."""
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        raise ConfigError(f'{where}: [primaries] must be a table of "zone." = "primary NS name or address"')
    out = {}
    for zone, primary in data.items():
        try:
            out[dns.name.from_text(zone)] = primary
        except dns.exception.DNSException as exc:
            raise ConfigError(f"{where}: [primaries] {zone!r} is not a zone name ({exc})") from None
    return out


def parse_also_notify(data: Any, where: str) -> dict[dns.name.Name, tuple[tuple[str, int], ...]]:
    """[also_notify] from lab.toml: zone name -> ["ADDRESS@PORT", ...], secondaries outside the lab."""
    if not isinstance(data, dict) or not all(isinstance(v, list) for v in data.values()):
        raise ConfigError(f'{where}: [also_notify] must be a table of "zone." = ["ADDRESS@PORT", ...]')
    out = {}
    for zone, targets in data.items():
        try:
            origin = dns.name.from_text(zone)
        except dns.exception.DNSException as exc:
            raise ConfigError(f"{where}: [also_notify] {zone!r} is not a zone name ({exc})") from None
        parsed = []
        for target in targets:
            address, _, port = str(target).partition("@")
            try:
                ipaddress.ip_address(address)
                number = int(port) if port else 53
                if not 0 < number < 65536:
                    raise ValueError
            except ValueError:
                raise ConfigError(f"{where}: [also_notify] {zone}: {target!r} is not ADDRESS@PORT") from None
            parsed.append((address, number))
        out[origin] = tuple(parsed)
    return out


@dataclass
class Copy:
    """A secondary server's copy of one zone: its state machine and dnspython's zone for applying IXFR."""

    running: "RunningServer"
    state: SecondaryZone
    store: dns.zone.Zone | None = None
    external: bool = False  # the primary is outside the lab: transfers are TSIG-signed
    # One check at a time per copy: the loop, a NOTIFY and a test's poll() may all find it due, and
    # two IXFRs from the same serial into one store would apply the same deletions twice.
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


@dataclass
class Secondaries:
    """Every secondary copy in the lab, and the primaries' NOTIFYs (see the module docstring)."""

    lab: "Lab"
    primaries: dict[dns.name.Name, str] = field(default_factory=dict)
    also_notify: dict[dns.name.Name, tuple[tuple[str, int], ...]] = field(default_factory=dict)
    copies: dict[tuple[str, dns.name.Name], Copy] = field(default_factory=dict)
    notifies_sent: int = 0
    notifies_answered: int = 0

    def __post_init__(self) -> None:
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._pending: set[asyncio.Future[Any]] = set()

    # --- who is whose secondary ---

    def primary_of(self, origin: dns.name.Name) -> tuple[str, int, "RunningServer | None"]:
        """The primary's address, port (0: the lab's port, known once bound) and lab server (None: outside the lab)."""
        spec = self.primaries[origin]
        if "@" in spec:
            address, _, port = spec.partition("@")
            if not port.isdigit() or not 0 < int(port) < 65536:
                raise ConfigError(f"[primaries] {origin}: {spec!r}: the port after @ must be a number")
            running = next((r for r in self.lab.servers if r.plan.address == address), None)
            return address, int(port), running
        plan = self.lab.hierarchy.find(spec)
        if plan is None:
            raise ConfigError(f"[primaries] {origin}: {spec!r} is not a lab server's address or NS name "
                              "(a primary outside the lab is written ADDRESS@PORT)")
        running = next(r for r in self.lab.servers if r.plan.address == plan.address)
        if origin not in running.server.authority.zones:
            raise ConfigError(f"[primaries] {origin}: {spec} does not serve {origin}")
        return plan.address, 0, running

    def replan(self, strict: bool = True) -> None:
        """Give every server of a zone with a primary its role (at start, and after each change).

        *strict* (at start): a primary that cannot be is a ConfigError.  After a change to the running
        lab (the primary no longer a name server of its zone, say) it is a warning, and the zone's
        secondaries go on as they are: they fail to refresh, and in time expire, as real ones would.
        """
        origins = {zone.origin for zone in self.lab.zones}
        wanted: set[tuple[str, dns.name.Name]] = set()
        for origin in self.primaries:
            try:
                if origin not in origins:
                    raise ConfigError(f"[primaries] {origin} is not a zone of this lab")
                address, port, primary = self.primary_of(origin)
            except ConfigError as exc:
                if strict:
                    raise
                log.warning("%s; its secondaries keep their copies", exc)
                wanted |= {key for key in self.copies if key[1] == origin}
                continue
            if primary is not None:
                primary.server.ops.on_change = lambda zone, source=primary: self._changed(source, zone)
            secondaries = set()
            for running in self.lab.servers:
                if running is primary or origin not in {z.origin for z in running.plan.zones}:
                    continue
                key = (running.plan.address, origin)
                wanted.add(key)
                secondaries.add(running.plan.address)
                if key not in self.copies:
                    self.copies[key] = Copy(running, SecondaryZone(origin, (address, port)), external=primary is None)
                    running.server.serve_transferred(origin, None)
                    running.server.ops.notify_hook = lambda zone, peer, me=running: self._notified(me, zone, peer)
                self.copies[key].running = running
            if primary is not None:  # NSD's `provide-xfr: SECONDARY NOKEY`, whatever allow_transfer says
                primary.server.ops.transfer_peers = frozenset(secondaries)
        for key in set(self.copies) - wanted:  # no longer a server of the zone: no longer its secondary
            running = self.copies.pop(key).running
            running.server.ops.secondary.discard(key[1])
            running.server.set_zones(running.plan.zones)

    # --- the loop ---

    async def start(self) -> None:
        if not self.primaries:
            return
        self.replan()
        await self.poll()  # the first transfers, before the lab says it is up
        self._task = asyncio.ensure_future(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        for future in list(self._pending):
            future.cancel()
        await asyncio.gather(*self._pending, return_exceptions=True)

    async def _run(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), POLL)
            except asyncio.TimeoutError:
                pass
            self._wake.clear()
            try:
                await self.poll()
            except Exception:  # noqa: BLE001 - one bad round must not stop replication
                log.exception("secondary refresh round failed")

    async def poll(self) -> None:
        """One round: expire what is past expire, check every copy that is due."""
        now = self.lab.clock.now()
        due = []
        for copy in self.copies.values():
            if copy.state.tick(now):
                log.warning("%s on %s expired: SERVFAIL until the primary answers", copy.state.origin,
                            copy.running.plan.address)
                copy.running.server.serve_transferred(copy.state.origin, None)
            if copy.state.due(now) and copy.running.up:
                due.append(self._refresh(copy))
        await asyncio.gather(*due)

    async def _refresh(self, copy: Copy) -> None:
        async with copy.lock:
            if copy.state.due(self.lab.clock.now()):  # not done meanwhile by another round
                await self._check(copy)

    async def _check(self, copy: Copy) -> None:
        state, running = copy.state, copy.running
        delay = running.faulty.state.xfr_delay_ms
        if delay:
            await asyncio.sleep(delay / 1000)  # network time stays real, as the `delay` fault's
        address, port = state.primary
        port = port or self.lab.actual_port
        source = running.plan.address
        try:
            query = dns.message.make_query(state.origin, dns.rdatatype.SOA)
            query.flags &= ~dns.flags.RD
            reply = await dns.asyncquery.udp(query, address, SOA_TIMEOUT, port, source=source)
            soa = reply.get_rrset(reply.answer, state.origin, dns.rdataclass.IN, dns.rdatatype.SOA)
            if reply.rcode() != dns.rcode.NOERROR or soa is None or not reply.flags & dns.flags.AA:
                raise dns.exception.DNSException(f"SOA check answered {dns.rcode.to_text(reply.rcode())}")
            if not state.wants(int(soa[0].serial)):
                state.refreshed(self.lab.clock.now())
                self._serve(copy)
                return
            kind = "IXFR" if copy.store is not None else "AXFR"
            try:
                zone = await self._transfer(copy, address, port, source)
            except dns.exception.DNSException as exc:
                if kind != "IXFR" or isinstance(exc, dns.exception.Timeout):
                    raise
                # An IXFR our copy cannot take (NSD and BIND fall back the same way): the whole zone.
                log.info("IXFR of %s on %s failed (%s): AXFR", state.origin, source, exc)
                copy.store, kind = None, "AXFR"
                zone = await self._transfer(copy, address, port, source)
        except (dns.exception.DNSException, OSError, EOFError, ValueError, asyncio.TimeoutError) as exc:
            why = str(exc) or type(exc).__name__
            log.info("refresh of %s on %s from %s failed: %s", state.origin, source, address, why)
            state.failed(self.lab.clock.now(), why)
            if not state.serving:
                running.server.serve_transferred(state.origin, None)
            return
        state.refreshed(self.lab.clock.now(), zone, kind)
        log.info("%s on %s: %s to serial %s", state.origin, source, kind, state.serial)
        self._serve(copy)

    async def _transfer(self, copy: Copy, address: str, port: int, source: str) -> Zone:
        """IXFR into our copy (AXFR the first time); the result as a lab Zone."""
        state = copy.state
        store = copy.store if copy.store is not None else dns.zone.Zone(state.origin, relativize=False)
        # Signed towards a primary outside the lab only: a lab primary knows its secondaries by address,
        # and dnspython signs with the real time, which a lab on a fake clock would call BADTIME.
        key = self.lab.replication.key
        signing: dict[str, Any] = ({"keyring": {key.name: key}, "keyname": key.name, "keyalgorithm": key.algorithm}
                                   if copy.external else {})
        query, _ = dns.xfr.make_query(store, serial=0 if copy.store is not None else None, **signing)
        await asyncio.wait_for(dns.asyncquery.inbound_xfr(address, store, query, port=port, timeout=XFR_TIMEOUT,
                                                          source=source), XFR_TIMEOUT)
        copy.store = store
        rrsets = [dns.rrset.RRset(name, rdataset.rdclass, rdataset.rdtype, rdataset.covers)
                  for name, rdataset in store.iterate_rdatasets()]
        for rrset, (_, rdataset) in zip(rrsets, store.iterate_rdatasets()):
            rrset.update(rdataset)
        return Zone(state.origin, f"<transferred from {address}@{port}>", rrsets)

    def _serve(self, copy: Copy) -> None:
        running, state = copy.running, copy.state
        if state.serving and running.server.authority.zones.get(state.origin) is not state.zone:
            running.server.serve_transferred(state.origin, state.zone)

    def before_resigning(self, sources: dict[dns.name.Name, Zone]) -> None:
        """A signed lab is about to sign every zone again: replicated zones get a new serial first,
        as BIND's inline signing does, or their secondaries (which compare serials) would keep the
        old signatures until they expired."""
        for origin in self.primaries:
            if origin in sources:
                sources[origin] = bump_serial(sources[origin])

    # --- NOTIFY ---

    def _changed(self, primary: "RunningServer", zone: Zone) -> None:
        """The primary serves a new version: NOTIFY its secondaries (unless the fault loses them)."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return  # the lab is being built, not run: the secondaries transfer when it starts
        if primary.faulty.state.notify_lost:
            log.info("NOTIFY for %s from %s lost (notify-lost fault)", zone.origin, primary.plan.address)
            return
        targets = [(copy.running.plan.address, self.lab.actual_port) for copy in list(self.copies.values())
                   if copy.state.origin == zone.origin and copy.state.primary[0] == primary.plan.address]
        targets += self.also_notify.get(zone.origin, ())
        for target in targets:
            future = asyncio.ensure_future(self._notify(primary.plan.address, target, zone))
            self._pending.add(future)
            future.add_done_callback(self._pending.discard)

    async def _notify(self, source: str, target: tuple[str, int], zone: Zone) -> None:
        query = dns.message.make_query(zone.origin, dns.rdatatype.SOA)
        query.flags = dns.flags.AA  # (the opcode lives in dnspython's flags: set it after)
        query.set_opcode(dns.opcode.NOTIFY)
        query.answer.append(zone.soa)  # RFC 1996 §3.7: the new SOA, a hint
        for _ in range(NOTIFY_TRIES):
            self.notifies_sent += 1
            try:
                reply = await dns.asyncquery.udp(query, target[0], NOTIFY_TIMEOUT, target[1], source=source)
            except (dns.exception.Timeout, OSError):
                continue
            if reply.rcode() == dns.rcode.NOERROR:
                self.notifies_answered += 1
            log.info("NOTIFY for %s (serial %s) from %s to %s@%s: %s", zone.origin, zone.soa[0].serial, source,
                     target[0], target[1], dns.rcode.to_text(reply.rcode()))
            return
        log.info("NOTIFY for %s from %s to %s@%s: no answer after %d tries", zone.origin, source,
                 target[0], target[1], NOTIFY_TRIES)

    def _notified(self, me: "RunningServer", origin: dns.name.Name, peer: str) -> bool:
        copy = self.copies.get((me.plan.address, origin))
        if copy is None or peer != copy.state.primary[0]:
            return False
        copy.state.notify()
        self._wake.set()
        return True

    # --- for `dnslab servers`, the web view and tests ---

    def to_json(self) -> list[dict[str, object]]:
        return [self.describe(address, origin)
                for address, origin in sorted(self.copies, key=lambda key: (key[1], key[0]))]

    def standing(self, address: str, zone: str) -> dict[str, object] | None:
        """How a secondary's copy stands against its primary, for a trace's reply from *address* for
        *zone* (None: not a secondary of it).  `behind` when the primary, a lab server, has a newer
        serial: the answer may be stale, the lag replication allows until the next NOTIFY or refresh."""
        try:
            origin = dns.name.from_text(zone)
        except dns.exception.DNSException:
            return None
        copy = self.copies.get((address, origin))
        if copy is None:
            return None
        _, _, primary = self.primary_of(origin)
        source = primary.server.authority.zones.get(origin) if primary is not None else None
        newest = source.soa[0].serial if source is not None else None  # type: ignore[attr-defined]
        serial = copy.state.serial
        return {"zone": origin.to_text(), "serial": serial, "state": copy.state.state.value,
                "primary_serial": newest,
                "behind": newest is not None and (serial is None or serial != newest)}

    def annotate(self, event: dict[str, Any]) -> dict[str, Any]:
        """A trace event (as JSON) from a secondary gains `secondary`: the resolver cannot know it asked
        one, the lab can say so, and whether the copy lags behind (docs/ZONE_OPERATIONS.md)."""
        if self.copies and event.get("event") in ("reply", "failed") and "address" in event:
            standing = self.standing(str(event["address"]), str(event.get("zone", "")))
            if standing is not None:
                event["secondary"] = standing
        return event

    def describe(self, address: str, origin: str | dns.name.Name) -> dict[str, object]:
        """One copy as `dnslab servers --json` shows it; ConfigError if *address* is no secondary of *origin*."""
        name = origin if isinstance(origin, dns.name.Name) else dns.name.from_text(origin)
        copy = self.copies.get((address, name))
        if copy is None:
            raise ConfigError(f"{address} is not a secondary of {name}")
        return {"address": address, **copy.state.to_json(self.lab.clock.now()),
                "primary": f"{copy.state.primary[0]}@{copy.state.primary[1] or self.lab.actual_port}"}


__all__ = ["Secondaries", "State", "parse_also_notify", "parse_primaries"]
