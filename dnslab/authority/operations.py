"""A server's zone operations beside queries: transfers out, NOTIFY in, dynamic UPDATE. No sockets.

What a server may do is policy, held here and set by the lab:

- transfers (AXFR, IXFR) go to the addresses in `transfer_acl`, and to any
  request signed with one of our TSIG keys (NSD's ``provide-xfr: ADDR KEY``).
  The lab's default is the loopback network: every lab client is on it, and a
  learner's `dig axfr` should work without configuration (NSD and BIND 9.18+
  transfer nothing unless told; the lab only listens on 127.0.0.0/8 anyway);
- UPDATE (RFC 2136) must be TSIG-signed with a key of ours (unsigned: REFUSED,
  as BIND's ``allow-update { key K; }``), and is applied by the lab through
  `update_hook`, which serialises changes and serves the new zone everywhere;
- NOTIFY (RFC 1996) is accepted by `notify_hook` for zones this server is a
  secondary of, from its primary; otherwise REFUSED, as NSD answers when no
  ``allow-notify`` matches.

Every zone version this server is given is recorded in its zone's journal
(IXFR's source).
"""

from __future__ import annotations

import ipaddress
import logging
from dataclasses import dataclass, field
from typing import Awaitable, Callable

import dns.exception
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdatatype
import dns.update

from dnslab.authority import transfer, tsig, update
from dnslab.authority.journal import Journal
from dnslab.core.clock import Clock, WallClock
from dnslab.core.wire import header_only_reply
from dnslab.core.zone import Zone

log = logging.getLogger(__name__)

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
LOOPBACK: tuple[Network, ...] = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))
NOTIFY = int(dns.opcode.NOTIFY)
UPDATE = int(dns.opcode.UPDATE)
AA = 0x0400

UpdateHook = Callable[[dns.name.Name, dns.update.UpdateMessage], Awaitable[update.Outcome]]
NotifyHook = Callable[[dns.name.Name, str], bool]


def networks(items: list[str] | tuple[str, ...], where: str = "allow_transfer") -> tuple[Network, ...]:
    """Addresses or networks as written in lab.toml ("127.0.0.0/8", "127.0.0.1"); ValueError names the bad one."""
    out = []
    for item in items:
        try:
            out.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ValueError(f"{where}: {item!r} is not an address or a network like 127.0.0.0/8") from None
    return tuple(out)


@dataclass
class Operations:
    """A server's keys, transfer policy, journals and the lab's hooks (see the module docstring)."""

    keyring: tsig.Keyring = field(default_factory=dict)
    clock: Clock = field(default_factory=WallClock)  # TSIG's time (its wall()); a test may pass a FakeClock
    transfer_acl: tuple[Network, ...] = LOOPBACK
    transfers_refused: Callable[[], bool] = lambda: False  # the `xfr-refused` fault
    journals: dict[dns.name.Name, Journal] = field(default_factory=dict)
    update_hook: UpdateHook | None = None
    notify_hook: NotifyHook | None = None
    transfers: int = 0  # transfers served (AXFR or IXFR), for tests and the learner
    last_transfer: str = ""  # "IXFR of example.com.: incremental", for `dnslab servers`
    secondary: set[dns.name.Name] = field(default_factory=set)  # zones served from transfers
    transfer_peers: frozenset[str] = frozenset()  # our secondaries' addresses: they may always transfer
    on_change: Callable[[Zone], None] | None = None  # a new version served: the lab NOTIFYs the secondaries

    # --- journals ---

    def changed(self, old: Zone | None, new: Zone) -> None:
        """A new version of a zone is served: remember the difference for IXFR."""
        if old is None or old is new:
            return
        self.journals.setdefault(new.origin, Journal()).record(old, new)
        if self.on_change is not None and old.soa != new.soa:
            self.on_change(new)

    # --- transfers ---

    def may_transfer(self, peer: tuple[str, int] | None, signer: tsig.Signer | None) -> bool:
        if self.transfers_refused():
            return False
        if signer is not None:
            return True
        if peer is None:
            return False
        if peer[0] in self.transfer_peers:
            return True
        try:
            address = ipaddress.ip_address(peer[0])
        except ValueError:
            return False
        return any(address in network for network in self.transfer_acl)

    def stream(self, query: transfer.TransferQuery, zone: Zone, client_serial: int | None,
               via_tcp: bool, udp_limit: int) -> list[bytes]:
        """The reply messages of an allowed AXFR or IXFR (UDP: one message)."""
        if query.qtype == dns.rdatatype.AXFR:
            messages = transfer.axfr(query, zone)
            kind = "full"
        else:
            assert client_serial is not None
            limit = transfer.TRANSFER_MESSAGE_SIZE if via_tcp else udp_limit
            messages, kind = transfer.ixfr(query, zone, self.journals.get(zone.origin), client_serial,
                                           limit=limit, udp=not via_tcp)
        self.transfers += 1
        self.last_transfer = f"{dns.rdatatype.to_text(query.qtype)} of {zone.origin}: {kind}"
        log.info("%s of %s: %s, %d message(s)", dns.rdatatype.to_text(query.qtype), zone.origin, kind,
                 len(messages))
        return messages

    # --- NOTIFY and UPDATE ---

    def notify(self, wire: bytes, peer: tuple[str, int] | None) -> bytes:
        """NOERROR to a NOTIFY for a zone we are a secondary of (from our primary), else REFUSED."""
        try:
            message = dns.message.from_wire(wire, question_only=True)
        except (dns.exception.DNSException, ValueError):
            return _unreadable(wire)
        if len(message.question) != 1 or message.question[0].rdtype != dns.rdatatype.SOA:
            return _reply(wire, dns.rcode.FORMERR)
        origin = message.question[0].name
        accepted = self.notify_hook is not None and self.notify_hook(origin, peer[0] if peer else "")
        if not accepted:
            return _reply(wire, dns.rcode.REFUSED)
        return _reply(wire, dns.rcode.NOERROR, authoritative=True)

    def update(self, wire: bytes, zones: dict[dns.name.Name, Zone],
               signer: tsig.Signer | None) -> bytes | Awaitable[bytes]:
        """RFC 2136: REFUSED unless signed by one of our keys; the change itself is the lab's (update_hook)."""
        try:
            dns.message.from_wire(wire, question_only=True)
        except (dns.exception.DNSException, ValueError):
            return _unreadable(wire)
        if signer is None:
            return _reply(wire, dns.rcode.REFUSED)
        try:
            message = dns.message.from_wire(wire)
        except (dns.exception.DNSException, ValueError) as exc:
            log.debug("UPDATE FORMERR: %s", exc)
            return _reply(wire, dns.rcode.FORMERR)
        if not isinstance(message, dns.update.UpdateMessage) or len(message.zone) != 1 \
                or message.zone[0].rdtype != dns.rdatatype.SOA:
            return _reply(wire, dns.rcode.FORMERR)
        origin = message.zone[0].name
        if origin not in zones:
            return _reply(wire, dns.rcode.NOTAUTH)
        hook = self.update_hook
        if hook is None or origin in self.secondary:  # a secondary, or a server outside a lab: no forwarding (BIND's default)
            return _reply(wire, dns.rcode.REFUSED)
        return self._update(hook, wire, origin, message)

    async def _update(self, hook: UpdateHook, wire: bytes, origin: dns.name.Name,
                      message: dns.update.UpdateMessage) -> bytes:
        try:
            outcome = await hook(origin, message)
        except update.UpdateRefused as exc:
            log.info("UPDATE of %s: %s (%s)", origin, dns.rcode.to_text(exc.rcode), exc)
            return _reply(wire, exc.rcode)
        log.info("UPDATE of %s: %s", origin, "; ".join(outcome.changes) or "nothing to change")
        return _reply(wire, dns.rcode.NOERROR)


def _unreadable(wire: bytes) -> bytes:
    """FORMERR for a request whose question (zone) section cannot be read: nothing of it is echoed,
    or the reply would be as broken as the request (NSD answers such a packet header-only too)."""
    reply = header_only_reply(wire, dns.rcode.FORMERR)
    assert reply is not None  # the caller has read a whole header
    return reply


def _reply(wire: bytes, rcode: int, authoritative: bool = False) -> bytes:
    """A reply keeping the question (the zone section) and the opcode and RD, every other section empty."""
    return tsig.error_reply(wire, rcode, AA if authoritative else 0)

