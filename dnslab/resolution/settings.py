"""What an operator can set on the recursive resolver: one frozen value.

Apart from the service (dnslab.services.resolver), so the options table
(dnslab.resolution.options), the lab and the command line build settings
without importing asyncio.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

import dns.rrset

from dnslab.core.errors import ConfigError
from dnslab.core.wire import EDNS_UDP_SIZE
from dnslab.resolution.cache import CacheSettings
from dnslab.resolution.infra import InfraSettings
from dnslab.resolution.iterator import IteratorSettings

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
LOOPBACK: tuple[Network, ...] = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))


@dataclass(frozen=True)
class ResolverSettings:
    """Everything an operator can set; `dnslab resolver` maps flags and TOML keys onto it."""

    upstream_port: int = 53
    allow: tuple[Network, ...] = LOOPBACK
    query_time_limit: float = 5.0        # a client gets SERVFAIL at the latest after this
    fast_path: bool = True               # replay ready wire replies for repeated questions
    max_udp_size: int = EDNS_UDP_SIZE    # largest UDP reply (Unbound's max-udp-size), within the client's buffer
    request_nsid: bool = False           # BIND's request-nsid: an empty NSID option (RFC 5001) on every query
    # "monotonic" or "wall": the clock TTLs run on when no clock is given (see clock.WallClock).
    ttl_clock: str = "monotonic"
    # DNSSEC trust anchors (DS or DNSKEY RRsets, usually the root's); validation is on when any is set.
    trust_anchors: tuple[dns.rrset.RRset, ...] = ()
    # RFC 8198: answer from validated NSEC/NSEC3 spans in the cache (Unbound's aggressive-nsec, on by default).
    aggressive_nsec: bool = True
    iterator: IteratorSettings = field(default_factory=IteratorSettings)
    cache: CacheSettings = field(default_factory=CacheSettings)
    infra: InfraSettings = field(default_factory=InfraSettings)

    def __post_init__(self) -> None:
        if self.ttl_clock not in ("monotonic", "wall"):
            raise ConfigError(f"ttl_clock must be monotonic or wall, not {self.ttl_clock!r}")
