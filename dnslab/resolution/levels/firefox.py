"""Firefox's DNS cache (netwerk/dns/nsHostResolver), with its default preferences.

From modules/libpref/init/all.js and netwerk/dns/nsHostResolver.cpp:

* ``network.dnsCacheExpiration = 60``: "in the absence of OS TTLs" (the native
  resolver on Linux and macOS gives none) an entry is fresh for 60 s;
* ``network.dnsCacheExpirationGracePeriod = 60``: "the grace period allows the
  DNS cache to use expired entries, while kicking off a revalidation in the
  background": for 60 s more the old answer is served and a fresh one fetched;
* ``NEGATIVE_RECORD_LIFETIME = 60``: a failed lookup is remembered 60 s;
* ``network.dnsCacheEntries = 400`` entries.

With ``network.dns.get-ttl`` and a resolver that gives TTLs (Windows, TRR) the
record's TTL is used instead; *use_ttl* models that.
"""

from __future__ import annotations

from dataclasses import dataclass

from dnslab.resolution.levels.policy import Keep, Shape

CACHE_EXPIRATION = 60           # network.dnsCacheExpiration
GRACE_PERIOD = 60               # network.dnsCacheExpirationGracePeriod
NEGATIVE_RECORD_LIFETIME = 60   # nsHostResolver.cpp
CACHE_ENTRIES = 400             # network.dnsCacheEntries


@dataclass(frozen=True)
class Firefox:
    expiration: int = CACHE_EXPIRATION
    grace: int = GRACE_PERIOD
    use_ttl: bool = False
    max_entries: int = CACHE_ENTRIES
    name: str = "firefox"

    def keep(self, shape: Shape) -> Keep | None:
        if shape.negative:
            return Keep(NEGATIVE_RECORD_LIFETIME)
        fresh = shape.ttl if self.use_ttl and shape.ttl is not None else self.expiration
        return Keep(fresh, self.grace)

    def describe(self) -> str:
        fresh = "the record's TTL" if self.use_ttl else f"{self.expiration} s"
        return (f"firefox: fresh {fresh}, then served {self.grace} s more while it is fetched again; "
                f"failures kept {NEGATIVE_RECORD_LIFETIME} s; {self.max_entries} entries")
