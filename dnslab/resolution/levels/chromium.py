"""Chromium's host cache (net/dns), as its HostResolverManager fills it.

From Chromium's net/dns/host_resolver_manager.cc (host_resolver_manager_job.cc in
recent versions):

* ``kCacheEntryTTLSeconds = 60``: a success from the system resolver
  (getaddrinfo, which gives no TTL: HostResolverSystemTask) is kept 60 s,
  whatever the record's TTL;
* ``kNegativeCacheEntryTTLSeconds = 0``: a failure from that path is not kept;
* ``kMinimumTTLSeconds = kCacheEntryTTLSeconds``: a success of Chromium's own
  ("built-in", async) DNS client (HostResolverDnsTask) is kept for
  ``max(TTL, 60 s)``;
* the cache holds ``kDefaultCacheSize = 1000`` entries (net/dns/resolve_context.cc).

So neither path keeps an entry for *less* than 60 s: a TTL of 5 s is served for
60 s.  The default here is the system-resolver path, the one the issue names.
Negative answers of the built-in client are kept for their SOA-derived TTL.
"""

from __future__ import annotations

from dataclasses import dataclass

from dnslab.resolution.levels.policy import Keep, Shape

CACHE_ENTRY_TTL = 60      # kCacheEntryTTLSeconds
NEGATIVE_ENTRY_TTL = 0    # kNegativeCacheEntryTTLSeconds
MINIMUM_TTL = CACHE_ENTRY_TTL  # kMinimumTTLSeconds
DEFAULT_CACHE_SIZE = 1000  # kDefaultCacheSize
RESOLVERS = ("system", "builtin")


@dataclass(frozen=True)
class Chromium:
    """*resolver* "system" (getaddrinfo: a fixed 60 s) or "builtin" (Chromium's DNS client: max(TTL, 60 s))."""

    resolver: str = "system"
    max_entries: int = DEFAULT_CACHE_SIZE
    name: str = "chromium"

    def __post_init__(self) -> None:
        if self.resolver not in RESOLVERS:
            raise ValueError(f"chromium resolver is one of {', '.join(RESOLVERS)}, not {self.resolver!r}")

    def keep(self, shape: Shape) -> Keep | None:
        if self.resolver == "system":
            if shape.negative:
                return None if NEGATIVE_ENTRY_TTL == 0 else Keep(NEGATIVE_ENTRY_TTL)
            return Keep(CACHE_ENTRY_TTL)
        if shape.negative:
            ttl = shape.soa_negative_ttl
            return Keep(ttl) if ttl else None
        return Keep(max(shape.ttl or 0, MINIMUM_TTL))

    def describe(self) -> str:
        if self.resolver == "system":
            return (f"chromium (system resolver): every success kept {CACHE_ENTRY_TTL} s whatever its TTL, "
                    f"failures not kept; {self.max_entries} entries")
        return f"chromium (built-in DNS client): max(TTL, {MINIMUM_TTL} s); {self.max_entries} entries"
