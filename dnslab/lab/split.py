"""One lab over several processes: `dnslab up --only CIDR` (lab.toml: only = [...]).

Every process loads the same zones and derives the same hierarchy, but binds only the lab servers
whose addresses lie in its networks, so one set of zones can be served by several processes (or, with
real addresses, several hosts), as an operator runs the root, the TLDs and the leaf zones on different
machines.  The resolver and the caching levels are not lab servers: their addresses face clients,
so `--only` does not select them; a process runs them unless `--no-resolver` says otherwise, which keeps
the common split ("the hierarchy here, the hierarchy's rest and the resolver there") to two flags.

Each part keeps its own state file (lab-PORT-PART.json, PART from its networks), so the parts on one
port do not overwrite each other's control endpoint.  Nothing here touches a socket.
"""

from __future__ import annotations

import ipaddress
from typing import Iterable, Sequence

from dnslab.core.errors import ConfigError

Networks = tuple[ipaddress.IPv4Network, ...]


def parse_networks(texts: Iterable[object], where: str = "--only") -> Networks:
    """CIDRs such as 127.0.1.0/24 (a bare address is a /32); a bad one is a one-line ConfigError.

    Host bits set (127.0.1.1/24) are refused rather than silently masked, as `ip route` refuses
    them: the user most likely meant something else."""
    networks = []
    for text in texts:
        if not isinstance(text, str):
            raise ConfigError(f"{where}: {text!r} is not a network; write one like '127.0.1.0/24'")
        try:
            network = ipaddress.ip_network(text.strip(), strict=True)
        except ValueError as exc:
            raise ConfigError(f"{where} {text}: not an IPv4 network like 127.0.1.0/24 ({exc})") from None
        if not isinstance(network, ipaddress.IPv4Network):
            raise ConfigError(f"{where} {text}: lab servers have IPv4 loopback addresses; give an IPv4 network")
        networks.append(network)
    return tuple(dict.fromkeys(networks))  # the same network twice is the same part


def owns(networks: Networks, address: str) -> bool:
    """Whether a process serving *networks* serves the lab server at *address* (no networks: all)."""
    if not networks:
        return True
    ip = ipaddress.IPv4Address(address)
    return any(ip in network for network in networks)


def check_networks(networks: Networks, addresses: Sequence[str], where: str = "--only") -> None:
    """Each network must hold at least one lab server: one that holds none is a typo, not a part."""
    for network in networks:
        if not any(owns((network,), address) for address in addresses):
            known = ", ".join(addresses[:8]) + (", ..." if len(addresses) > 8 else "")
            raise ConfigError(f"{where} {network}: no lab server's address is in it (servers: {known})")


def part_name(networks: Networks) -> str:
    """The part's name in its state file: '' for a whole lab, else '127.0.1.0_24+127.0.2.0_24'."""
    return "+".join(str(network).replace("/", "_") for network in networks)
