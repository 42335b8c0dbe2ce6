#!/usr/bin/env python3
"""What a cache hit costs: `dnslab.resolution.cache.Cache.get` in a timeit loop, per RRset shape.

    scripts/cache-get-cost [--number N] [--repeat R]

The resolver's slow path calls `Cache.get` for every RRset it answers from
(the wire fast path mostly does not), so a leaner stored form must not make
it much dearer.  Fills a cache with 10,000 one-record A RRsets plus a
three-record A set, a two-record NS set and a CNAME, then times a hit on
each: min, median and max of R repeats of N calls, in µs per call.  The
figures are CPU-bound and noisy on a shared machine: compare medians of
runs made one after the other, and repeat.
"""

from __future__ import annotations

import argparse
import sys
import timeit

import dns.name
import dns.rrset

from dnslab.resolution.cache import Cache, CacheSettings, Rank
from dnslab.core.clock import MonotonicClock


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--number", type=int, default=50_000, help="calls per repeat")
    parser.add_argument("--repeat", type=int, default=7, help="repeats")
    args = parser.parse_args(argv)
    cache = Cache(MonotonicClock(), CacheSettings(max_entries=20_000))
    for i in range(10_000):
        cache.put(dns.rrset.from_text(f"host{i}.zone{i // 100}.tld{i % 10}.", 3600, "IN", "A",
                                      f"10.0.{i >> 8}.{i & 255}"), Rank.AUTH_ANSWER)
    cache.put(dns.rrset.from_text("www.example.com.", 3600, "IN", "A", "192.0.2.1", "192.0.2.2", "192.0.2.3"),
              Rank.AUTH_ANSWER)
    cache.put(dns.rrset.from_text("example.com.", 3600, "IN", "NS", "ns1.example.com.", "ns2.example.com."),
              Rank.AUTH_ANSWER)
    cache.put(dns.rrset.from_text("alias.example.com.", 3600, "IN", "CNAME", "www.example.com."), Rank.AUTH_ANSWER)
    one = dns.name.from_text("host4242.zone42.tld2.")
    www = dns.name.from_text("WWW.Example.com.")
    zone = dns.name.from_text("example.com.")
    alias = dns.name.from_text("alias.example.com.")
    cases = (
        ("A, 1 record", lambda: cache.get(one, 1, True)),
        ("A, 3 records, rotate", lambda: cache.get(www, 1, True)),
        ("A, 3 records, no rotate", lambda: cache.get(www, 1, False)),
        ("NS, 2 records, no rotate", lambda: cache.get(zone, 2, False)),
        ("CNAME, 1 record", lambda: cache.get(alias, 5, True)),
    )
    for label, call in cases:
        assert call() is not None, label
        times = sorted(t / args.number * 1e6 for t in timeit.repeat(call, number=args.number, repeat=args.repeat))
        print(f"{label:26s} min {times[0]:5.2f}  median {times[len(times) // 2]:5.2f}  max {times[-1]:5.2f} µs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
