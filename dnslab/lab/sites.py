"""An anycast address on one loopback address: the nearest announced site answers, late by its distance.

The choice is `anycast.nearest` (sans-I/O); this is the runtime piece in front
of a server's `AuthoritativeServer`: it reads the client's location from the
source address, picks the site, counts the query for it, waits the site's
latency on the event loop's real clock (network time stays real, even on a
fake lab clock, as the `delay` fault does) and has the server answer under the
site's identity.  Withdrawing a site (`dnslab fault ADDR@SITE down`) is a
route withdrawal: the next site answers from the next query on, with its own
latency and name; withdrawing every site leaves the address silent.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Awaitable, Callable

from dnslab.core.errors import DnslabError
from dnslab.lab.anycast import Geography, Site, nearest, site_identity
from dnslab.services.transport import Peer

Answer = Callable[[bytes, bool, "Peer | None", "str | None"], "bytes | None"]


class SiteRouter:
    """The sites of one server address, and which of them each query reaches."""

    def __init__(self, sites: tuple[Site, ...], geography: Geography, server_name: str, answer: Answer) -> None:
        self.sites = sites
        self.geography = geography
        self.server_name = server_name
        self.answer = answer  # AuthoritativeServer.handle, or a signed lab's wrapper of it
        self.withdrawn: set[str] = set()
        self.counts: Counter[str] = Counter()  # queries reached, by site name
        self.last: dict[str, str] = {}  # location -> the site that answered it last
        self.delays = True  # False: answer at once (the comparison with NSD measures answers, not distance)

    def site(self, name: str) -> Site:
        found = next((site for site in self.sites if site.name == name), None)
        if found is None:
            raise DnslabError(f"{self.server_name} has no site {name!r} "
                              f"(its sites: {', '.join(site.name for site in self.sites)})")
        return found

    def withdraw(self, name: str) -> None:
        self.withdrawn.add(self.site(name).name)

    def announce(self, name: str | None = None) -> None:
        """Announce one site again, or (None) every site."""
        if name is None:
            self.withdrawn.clear()
        else:
            self.withdrawn.discard(self.site(name).name)

    def serving(self, location: str) -> Site | None:
        """The site a query from *location* reaches now (None: every site withdrawn)."""
        return nearest(self.sites, location, self.withdrawn)

    def identity(self, site: Site) -> str:
        return site_identity(site, self.server_name)

    def handle(self, wire: bytes, via_tcp: bool, peer: Peer | None = None) -> bytes | None | Awaitable[bytes | None]:
        location = self.geography.location_of(peer[0] if peer else None)
        site = self.serving(location)
        if site is None:
            return None  # no route to the address any more: the packet is lost
        self.counts[site.name] += 1
        self.last[location] = site.name
        identity = self.identity(site)
        delay = site.latency(location)
        if not self.delays or not delay or delay == float("inf"):
            return self.answer(wire, via_tcp, peer, identity)
        return self._late(delay, wire, via_tcp, peer, identity)

    async def _late(self, delay_ms: float, wire: bytes, via_tcp: bool, peer: Peer | None,
                    identity: str) -> bytes | None:
        await asyncio.sleep(delay_ms / 1000)
        return self.answer(wire, via_tcp, peer, identity)

    def describe(self) -> list[str]:
        """The withdrawn sites, as `dnslab faults` lists them."""
        return [f"site {name} withdrawn" for name in sorted(self.withdrawn)]

    def to_json(self) -> dict[str, object]:
        return {"server": self.server_name,
                "sites": [{"name": site.name, "identity": self.identity(site), "withdrawn": site.name in self.withdrawn,
                           "queries": self.counts[site.name], "latency_ms": dict(site.latency_ms)}
                          for site in self.sites],
                "serving": {location: (chosen.name if (chosen := self.serving(location)) else None)
                            for location in self.geography.locations}}
