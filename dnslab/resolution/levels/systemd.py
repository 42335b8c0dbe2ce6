"""systemd-resolved's cache (src/resolve/resolved-dns-cache.c), the operating system's stub cache.

* ``CACHE_TTL_MAX_USEC (2 * USEC_PER_HOUR)``: "we never keep any item longer
  than 2h in our cache": the TTL is honoured, capped at 7200 s;
* negative answers (``calculate_until(..., use_soa_minimum)``): the SOA's TTL,
  clamped to the SOA's MINIMUM field (RFC 2308 §5), under the same cap; a
  negative answer without an SOA is not cached;
* ``CACHE_MAX 4096``: "never cache more than 4K entries";
* a TTL of 0 is not cached.

*max_ttl* lets a lab show the cap without waiting two hours of fake time.
"""

from __future__ import annotations

from dataclasses import dataclass

from dnslab.resolution.levels.policy import Keep, Shape

CACHE_TTL_MAX = 2 * 3600   # CACHE_TTL_MAX_USEC, in seconds
CACHE_MAX = 4096


@dataclass(frozen=True)
class SystemdResolved:
    max_ttl: int = CACHE_TTL_MAX
    max_entries: int = CACHE_MAX
    name: str = "systemd-resolved"

    def keep(self, shape: Shape) -> Keep | None:
        ttl = shape.soa_negative_ttl if shape.negative else shape.ttl
        if not ttl:
            return None
        return Keep(min(ttl, self.max_ttl))

    def describe(self) -> str:
        return (f"systemd-resolved: TTL honoured, capped at {self.max_ttl} s; negative answers min(SOA TTL, "
                f"SOA MINIMUM) under the same cap; {self.max_entries} entries")
