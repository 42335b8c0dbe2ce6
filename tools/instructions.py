#!/usr/bin/env python3
"""Instructions per resolver cache hit and per cold name, counted by valgrind's callgrind.

    scripts/instructions [--tree DIR] [hit|auth|cold ...] [--hits N] [--names A,B] [--port N] [--edns]

Why instructions: on a machine shared with other work, CPU time per query moves
with the load (caches, frequency, preemption), while the instructions a piece of
code executes do not.  Each figure is a difference of two runs under callgrind,
so interpreter start-up cancels out:

  hit   the resolver's `handle` for a query answered from a ready wire reply (the
        fast path), in-process, N times against 0 times; divided by N.  No
        sockets: what the resolver's own Python costs, not the kernel's.
  auth  a lab server's answer to a question it answered before: what a datagram
        to ns1.example.com of the signed sample lab goes through while nobody
        captures (fault layer and query counter, the server's ready
        reply), in-process, N times against 0 times.
  cold  `scripts/cold-profile` of that tree (a generated hierarchy in a child
        process, which callgrind does not follow, and dnsperf) resolving the
        first B names against the first A; divided by B - A.  10 in flight, so
        callgrind's slowness causes no upstream timeouts.  Plain queries (no EDNS)
        unless --edns, which sends them as `scripts/bench`'s cold run does (EDNS0).

--tree runs another checkout (an export of an older commit, for "before").
Needs valgrind (Debian's `valgrind`).  Figures for people, not a test.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

# One fast-path hit, in the tree given as argv[2]: a ready reply put in the resolver's
# answer cache, then `handle` argv[1] times.
HIT_PROBE = """
import sys
sys.path.insert(0, sys.argv[2])
import dns.message, dns.rrset
from dnslab.core.fastpath import WireAnswer
from dnslab.core.wire import query_key, ttl_offsets
from dnslab.resolution.settings import ResolverSettings
from dnslab.services.resolver import RecursiveResolver

query = dns.message.make_query("www.example.com.", "A", use_edns=0)
wire = query.to_wire()
reply = dns.message.make_response(query)
reply.answer.append(dns.rrset.from_text("www.example.com.", 300, "IN", "A", "192.0.2.1"))
template = reply.to_wire()
resolver = RecursiveResolver(None, ResolverSettings())  # type: ignore[arg-type]  # no hints on the fast path
now = resolver.clock.now()
patches = [(offset, now + 300, 300) for offset, rtype in ttl_offsets(template) if rtype != 41]
resolver.fast.put(b"U" + query_key(wire)[0], WireAnswer([(template, patches)], now + 300, "NOERROR", "A"),
                  resolver.cache.version)
peer = ("127.0.0.1", 40000)
assert isinstance(resolver.handle(wire, False, peer), bytes), "not a fast-path hit"
for _ in range(int(sys.argv[1])):
    resolver.handle(wire, False, peer)
"""


# One lab server answer from its ready reply, in the tree given as argv[2]: the signed sample
# lab built in-process (no sockets), and the handler its UDP socket calls argv[1] times.
AUTH_PROBE = """
import sys
sys.path.insert(0, sys.argv[2])
from pathlib import Path
import dns.message
from dnslab.lab.runtime import Lab, shared_zones

lab = Lab(shared_zones(Path(sys.argv[2]) / "dnslab" / "zones"), resolver_address=None, dnssec=True, levels=())
handler = lab.server("127.0.3.1").faulty.handle  # what the socket calls while nobody captures
wire = dns.message.make_query("www.example.com.", "A").to_wire()
peer = ("127.0.0.1", 40000)
for _ in range(2):
    assert isinstance(handler(wire, False, peer), bytes), "no reply"
for _ in range(int(sys.argv[1])):
    handler(wire, False, peer)
"""


def callgrind(argv: list[str], cwd: Path) -> int:
    """Instructions callgrind counted for one run of argv (the main process only)."""
    with tempfile.TemporaryDirectory(prefix="dnslab-instructions-") as folder:
        env = {**os.environ, "PYTHONHASHSEED": "0"}  # the same hashing, so the same dict probing
        result = subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={folder}/out", *argv],
                                cwd=cwd, env=env, capture_output=True, text=True, timeout=1800)
    match = re.search(r"Collected : (\d+)", result.stderr)
    if result.returncode != 0 or match is None:
        raise RuntimeError(f"{' '.join(argv)} failed under callgrind:\n{result.stderr[-2000:]}")
    return int(match.group(1))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n".join(__doc__.splitlines()[2:]))
    parser.add_argument("what", nargs="*", default=["hit", "auth", "cold"], help="hit, auth, cold (default all)")
    parser.add_argument("--tree", type=Path, default=REPO, help="the checkout to measure (default this one)")
    parser.add_argument("--hits", type=int, default=20000, help="fast-path hits counted (default 20000)")
    parser.add_argument("--names", default="100,600", metavar="A,B",
                        help="cold names: B counted against A (default 100,600)")
    parser.add_argument("--zones", type=Path, default=None,
                        help="the cold run's hierarchy (default: scripts/gen-hierarchy's, made here)")
    parser.add_argument("--port", type=int, default=5330,
                        help="the cold runs' lab ports: PORT and PORT+1 (default 5330; give two runs at once "
                             "different ones)")
    parser.add_argument("--edns", action="store_true",
                        help="cold: the client's queries with EDNS0 (dnsperf -e), as scripts/bench's cold run sends "
                             "them (the tree's cold-profile must know --edns)")
    args = parser.parse_args(argv)
    if not 1024 <= args.port <= 65534:
        parser.error(f"--port wants 1024-65534 (it uses PORT and PORT+1), not {args.port}")
    unknown = set(args.what) - {"hit", "auth", "cold"}
    if unknown:
        parser.error(f"unknown: {', '.join(sorted(unknown))} (hit, auth, cold)")
    if shutil.which("valgrind") is None:
        print("instructions: valgrind is not installed (apt-get install valgrind)", file=sys.stderr)
        return 2
    try:
        first, second = (int(part) for part in args.names.split(","))
    except ValueError:
        parser.error(f"--names wants two counts, as 100,600, not {args.names!r}")
    if not 0 <= first < second:
        parser.error("--names A,B needs 0 <= A < B")
    tree = args.tree.resolve()
    python = sys.executable
    try:
        if "hit" in args.what:
            runs = [callgrind([python, "-c", HIT_PROBE, str(count), str(tree)], tree) for count in (0, args.hits)]
            print(f"{tree}: {(runs[1] - runs[0]) / args.hits:,.0f} instructions per fast-path hit "
                  f"({args.hits} hits)")
        if "auth" in args.what:
            runs = [callgrind([python, "-c", AUTH_PROBE, str(count), str(tree)], tree) for count in (0, args.hits)]
            print(f"{tree}: {(runs[1] - runs[0]) / args.hits:,.0f} instructions per lab server answer "
                  f"from its ready reply ({args.hits} answers)")
        if "cold" in args.what:
            with tempfile.TemporaryDirectory(prefix="dnslab-instructions-") as folder:
                zones = args.zones
                if zones is None:
                    zones = Path(folder) / "hierarchy"
                    subprocess.run([python, str(REPO / "scripts" / "gen-hierarchy"), str(zones)], check=True,
                                   stdout=subprocess.DEVNULL, timeout=120)
                runs = [callgrind([python, "scripts/cold-profile", "--zones", str(zones), "--port", str(args.port + i),
                                   "--names", str(count), "--in-flight", "10", *(["--edns"] if args.edns else [])],
                                  tree)
                        for i, count in enumerate((first, second))]
            print(f"{tree}: {(runs[1] - runs[0]) / (second - first):,.0f} instructions per cold name "
                  f"(names {first} to {second}{', EDNS0' if args.edns else ''})")
    except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
        print(f"instructions: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
