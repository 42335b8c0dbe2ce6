#!/usr/bin/env python3
"""How fast a lab starts and stops, as the pytest plugin's fixtures do it.

Prints figures; asserts nothing. Run with the project's venv:
    .venv/bin/python scripts/bench-lab-start [--runs N]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

from dnslab.testing import DnsLab


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    lab = DnsLab().start()
    first = time.perf_counter() - started
    lab.resolver.resolve("www.example.com", "A")
    lab.stop()
    starts, stops, first_queries = [], [], []
    for _ in range(args.runs):
        t0 = time.perf_counter()
        lab = DnsLab().start()
        t1 = time.perf_counter()
        lab.resolver.resolve("www.example.com", "A")
        t2 = time.perf_counter()
        lab.stop()
        t3 = time.perf_counter()
        starts.append(t1 - t0)
        first_queries.append(t2 - t1)
        stops.append(t3 - t2)

    def ms(values: list[float]) -> str:
        return f"median {statistics.median(values) * 1000:6.1f} ms, max {max(values) * 1000:6.1f} ms"

    print(f"first lab in this process (parses the zone files): {first * 1000:.1f} ms")
    print(f"start of a further lab ({args.runs} runs):  {ms(starts)}")
    print(f"first resolution (cold cache, www.example.com): {ms(first_queries)}")
    print(f"stop:                               {ms(stops)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
