"""dnsmasq's cache (src/cache.c, src/rfc1035.c, the dnsmasq(8) man page).

* ``--min-cache-ttl``: "extend short TTL values to the time given when caching
  them"; dnsmasq limits it to one hour (3600 s) unless recompiled;
* ``--max-cache-ttl``: the longest a record is kept;
* negative replies are kept for the SOA's negative TTL (min(SOA TTL, MINIMUM));
  without an SOA they are not kept, unless ``--neg-ttl`` gives a time;
* ``--cache-size``: 150 names by default;
* a TTL of 0 is not cached.
"""

from __future__ import annotations

from dataclasses import dataclass

from dnslab.resolution.levels.policy import Keep, Shape

MIN_CACHE_TTL_LIMIT = 3600  # dnsmasq's cap on --min-cache-ttl
CACHE_SIZE = 150


@dataclass(frozen=True)
class Dnsmasq:
    min_cache_ttl: int = 0
    max_cache_ttl: int | None = None
    neg_ttl: int = 0
    max_entries: int = CACHE_SIZE
    name: str = "dnsmasq"

    def __post_init__(self) -> None:
        if not 0 <= self.min_cache_ttl <= MIN_CACHE_TTL_LIMIT:
            raise ValueError(f"min_cache_ttl is 0 to {MIN_CACHE_TTL_LIMIT} (dnsmasq's own limit), "
                             f"not {self.min_cache_ttl}")
        if self.max_cache_ttl is not None and self.max_cache_ttl < 0:
            raise ValueError("max_cache_ttl must not be negative")
        if self.neg_ttl < 0:
            raise ValueError("neg_ttl must not be negative")

    def keep(self, shape: Shape) -> Keep | None:
        if shape.negative:
            ttl = shape.soa_negative_ttl
            ttl = self.neg_ttl if ttl is None else ttl
        else:
            ttl = shape.ttl
            if ttl:
                ttl = max(ttl, self.min_cache_ttl)
        if not ttl:
            return None
        if self.max_cache_ttl is not None:
            ttl = min(ttl, self.max_cache_ttl)
        return Keep(ttl) if ttl else None

    def describe(self) -> str:
        most = "none" if self.max_cache_ttl is None else f"{self.max_cache_ttl} s"
        return (f"dnsmasq: TTL honoured, at least {self.min_cache_ttl} s, at most {most}; negative answers "
                f"by their SOA (neg-ttl {self.neg_ttl} s without one); {self.max_entries} names")
