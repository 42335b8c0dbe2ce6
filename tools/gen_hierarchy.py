#!/usr/bin/env python3
"""Write a synthetic DNS hierarchy that `dnslab up --zones OUTDIR` serves.

    scripts/gen-hierarchy OUTDIR [--tlds N] [--zones M] [--names K] [--seed S]
                                 [--hosted PCT] [--force]

What it writes (the defaults give 136 zones and 10,000 names):

  root.zone         ".", three root servers a/b/c.root-servers.<first TLD>
                    (127.100.0.1-3), a delegation with glue for every TLD
  <tld>.zone        N TLD zones, each with two servers a.nic.<tld> and
                    b.nic.<tld> (127.100.1.i and 127.100.2.i), delegations
                    with glue for its second-level zones
  <sld>.<tld>.zone  M second-level zones spread round-robin over the TLDs,
                    each with K names
  lab.toml          port 5300, no servers down
  names.txt         every one of the M*K names, one a line (absolute, no
                    trailing dot)
  queries.txt       the same names as a dnsperf data file ("NAME A")

Server plan.  Second-level zone j has two name servers of its own,
ns1.<zone> at 127.101.(j div 250).(j mod 250 + 1) and ns2.<zone> at
127.102.(same), with glue in the TLD, as most registered domains do.  About
PCT percent (--hosted, default 10) are instead "hosted": their NS names are
ns1/ns2 of a hosting zone under another TLD (no glue: a resolver must look
the addresses up itself, as for real zones at a DNS provider), so those
server addresses serve several zones.  Every address is in 127.100.0.0/16
to 127.102.0.0/16: inside 127.0.0.0/8, away from 127.0.0.1 and from the
sample zones' 127.0.x.y.

Names.  Each second-level zone has an apex SOA, NS, MX (to mail) and TXT,
its two name server names when it is not hosted, and K names: www (two
A records and an AAAA), mail (A and AAAA), then api, cdn, shop, ... and
hostNNNN.  Of the rest about 70% are plain A, 15% A and AAAA, 5% A and TXT
and 10% a CNAME to www.  Addresses come from 198.18.0.0/15 (RFC 2544,
benchmarking) and 2001:db8::/32 (documentation).  TTLs are drawn per RRset
from 60 (10%), 300 (30%), 3600 (40%) and 86400 s (20%); delegations and glue
have 172800 s (TLDs) and 86400 s (second level); negative TTL 300 s.

The same arguments and seed give the same files.  OUTDIR must be empty or
absent (or give --force to overwrite the *.zone files, lab.toml, names.txt and
queries.txt in it).
"""

from __future__ import annotations

import argparse
import random
import sys
from dataclasses import dataclass, field
from pathlib import Path

# Fictional TLDs: none is a special-use name (RFC 6761) that Unbound or other
# resolvers answer locally (test, invalid, localhost, local, onion, arpa, ...).
TLD_NAMES = (
    "alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliett",
    "kilo", "lima", "mike", "november", "oscar", "papa", "quebec", "romeo", "sierra", "tango",
    "uniform", "victor", "whiskey", "xray", "yankee", "zulu",
)
HOST_LABELS = (
    "api", "app", "cdn", "shop", "blog", "vpn", "ftp", "git", "docs", "status", "img", "static",
    "m", "dev", "stage", "auth", "login", "portal", "news", "media", "files", "support", "help",
    "wiki", "chat", "calendar", "drive", "maps", "pay", "store",
)
SLD_WORDS = (
    "acme", "globex", "initech", "umbrella", "hooli", "vandelay", "stark", "wayne", "tyrell",
    "cyberdyne", "wonka", "soylent", "aperture", "gringotts", "oceanic", "massive", "dunder",
    "pied", "bluth", "monarch",
)
TTLS = (60, 300, 3600, 86400)
TTL_WEIGHTS = (10, 30, 40, 20)
SERIAL = 2026112801
ROOT_NET = "127.100.0"
MAX_TLDS = 250
MAX_ZONES = 250 * 250
SOA_TIMERS = "7200 3600 1209600 300"  # refresh retry expire minimum (negative TTL 300 s)


@dataclass
class Sld:
    index: int
    name: str          # absolute, with the trailing dot
    tld: str           # absolute
    ns: list[str] = field(default_factory=list)          # NS names (absolute)
    own_addresses: list[str] = field(default_factory=list)  # empty when hosted
    hosted_by: "Sld | None" = None


def tld_names(count: int) -> list[str]:
    out = list(TLD_NAMES[:count])
    out += [f"tld{n:03d}" for n in range(len(out), count)]
    return [name + "." for name in out]


def sld_label(index: int) -> str:
    word = SLD_WORDS[index % len(SLD_WORDS)]
    return f"{word}{index:04d}"


def host_labels(count: int) -> list[str]:
    """The K data names of a zone: www, mail, then words, then hostNNNN."""
    labels = ["www", "mail", *HOST_LABELS][:count]
    labels += [f"host{n:04d}" for n in range(len(labels), count)]
    return labels


def sld_address(server: int, index: int) -> str:
    """ns1 (server 1) or ns2 (server 2) of second-level zone *index*."""
    return f"127.{100 + server}.{index // 250}.{index % 250 + 1}"


class Addresses:
    """Data addresses: 198.18.0.0/15 and 2001:db8::/32, handed out in order."""

    def __init__(self) -> None:
        self.v4 = 0
        self.v6 = 0

    def a(self) -> str:
        self.v4 += 1
        n = self.v4 % (2 ** 17 - 2) + 1
        return f"198.{18 + (n >> 16)}.{(n >> 8) & 255}.{n & 255}"

    def aaaa(self) -> str:
        self.v6 += 1
        return f"2001:db8:{self.v6 >> 16:x}:{self.v6 & 0xffff:x}::1"


def soa(origin: str, ns: str, ttl: int = 3600) -> list[str]:
    return [f"$ORIGIN {origin}", f"$TTL {ttl}",
            f"@ {ttl} IN SOA {ns} hostmaster.{origin if origin != '.' else ''} "
            f"{SERIAL} {SOA_TIMERS}"]


def plan(tld_count: int, zone_count: int, hosted_pct: float, rng: random.Random) -> tuple[list[str], list[Sld]]:
    tlds = tld_names(tld_count)
    slds = [Sld(j, f"{sld_label(j)}.{tlds[j % tld_count]}", tlds[j % tld_count]) for j in range(zone_count)]
    # Hosting zones: the first few zones with their own servers; a hosted zone uses one
    # under another TLD when there is one (the NS names are then out of bailiwick).
    hosts = [s for s in slds[: max(1, min(len(slds), tld_count * 2))]]
    for sld in slds:
        candidates = [h for h in hosts if h is not sld and h.tld != sld.tld] or [h for h in hosts if h is not sld]
        if sld in hosts or not candidates or rng.random() * 100 >= hosted_pct:
            sld.own_addresses = [sld_address(1, sld.index), sld_address(2, sld.index)]
            sld.ns = [f"ns1.{sld.name}", f"ns2.{sld.name}"]
        else:
            host = rng.choice(candidates)
            sld.hosted_by = host
            sld.ns = [f"ns1.{host.name}", f"ns2.{host.name}"]
    return tlds, slds


def root_zone(tlds: list[str]) -> str:
    first = tlds[0]
    roots = [f"{letter}.root-servers.{first}" for letter in "abc"]
    lines = ["; The root zone of a generated hierarchy (scripts/gen-hierarchy).",
             *soa(".", roots[0], 86400)]
    lines += [f". 518400 IN NS {name}" for name in roots]
    lines += [f"{name} 518400 IN A {ROOT_NET}.{n + 1}" for n, name in enumerate(roots)]
    for i, tld in enumerate(tlds):
        lines += [f"{tld} 172800 IN NS a.nic.{tld}", f"{tld} 172800 IN NS b.nic.{tld}",
                  f"a.nic.{tld} 172800 IN A 127.100.1.{i + 1}",
                  f"b.nic.{tld} 172800 IN A 127.100.2.{i + 1}"]
    return "\n".join(lines) + "\n"


def tld_zone(i: int, tld: str, tlds: list[str], slds: list[Sld]) -> str:
    lines = [f"; TLD {tld} of a generated hierarchy: delegations with glue.",
             *soa(tld, f"a.nic.{tld}", 86400),
             f"@ 172800 IN NS a.nic.{tld}", f"@ 172800 IN NS b.nic.{tld}",
             f"a.nic 172800 IN A 127.100.1.{i + 1}", f"b.nic 172800 IN A 127.100.2.{i + 1}"]
    if i == 0:  # the root servers' names live here, as root-servers.net. lives in net.
        lines += [f"{letter}.root-servers 518400 IN A {ROOT_NET}.{n + 1}" for n, letter in enumerate("abc")]
    for sld in slds:
        if sld.tld != tld:
            continue
        lines += [f"{sld.name} 86400 IN NS {ns}" for ns in sld.ns]
        if sld.hosted_by is None:
            lines += [f"{ns} 86400 IN A {address}" for ns, address in zip(sld.ns, sld.own_addresses)]
    return "\n".join(lines) + "\n"


def sld_zone(sld: Sld, names: list[str], rng: random.Random, addresses: Addresses) -> str:
    def ttl() -> int:
        return rng.choices(TTLS, TTL_WEIGHTS)[0]

    lines = [f"; {sld.name} of a generated hierarchy"
             + (f", hosted on the servers of {sld.hosted_by.name}" if sld.hosted_by else "") + ".",
             *soa(sld.name, sld.ns[0], 3600)]
    lines += [f"@ 86400 IN NS {ns}" for ns in sld.ns]
    if sld.hosted_by is None:
        lines += [f"{ns} 86400 IN A {address}" for ns, address in zip(sld.ns, sld.own_addresses)]
    if "mail" in names:
        lines.append(f"@ {ttl()} IN MX 10 mail")
    lines.append(f'@ {ttl()} IN TXT "v=spf1 mx -all"')
    for label in names:
        if label == "www":
            t = ttl()
            lines += [f"www {t} IN A {addresses.a()}", f"www {t} IN A {addresses.a()}",
                      f"www {ttl()} IN AAAA {addresses.aaaa()}"]
            continue
        if label == "mail":
            lines += [f"mail {ttl()} IN A {addresses.a()}", f"mail {ttl()} IN AAAA {addresses.aaaa()}"]
            continue
        roll = rng.random()
        if roll < 0.10 and "www" in names:
            lines.append(f"{label} {ttl()} IN CNAME www")
            continue
        lines.append(f"{label} {ttl()} IN A {addresses.a()}")
        if roll < 0.25:
            lines.append(f"{label} {ttl()} IN AAAA {addresses.aaaa()}")
        elif roll < 0.30:
            lines.append(f'{label} {ttl()} IN TXT "generated name {label}.{sld.name}"')
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n".join(__doc__.splitlines()[2:]))
    parser.add_argument("outdir", type=Path, metavar="OUTDIR")
    parser.add_argument("--tlds", type=int, default=10, metavar="N", help="TLD zones (default 10)")
    parser.add_argument("--zones", type=int, default=125, metavar="M", help="second-level zones (default 125)")
    parser.add_argument("--names", type=int, default=80, metavar="K", help="names per second-level zone (default 80)")
    parser.add_argument("--seed", type=int, default=1, metavar="S", help="random seed (default 1)")
    parser.add_argument("--hosted", type=float, default=10.0, metavar="PCT",
                        help="percent of second-level zones on another zone's servers, glueless (default 10)")
    parser.add_argument("--force", action="store_true", help="write into a folder that is not empty")
    args = parser.parse_args(argv)
    if not 1 <= args.tlds <= MAX_TLDS:
        parser.error(f"--tlds must be 1..{MAX_TLDS}")
    if not 1 <= args.zones <= MAX_ZONES:
        parser.error(f"--zones must be 1..{MAX_ZONES}")
    if args.names < 1:
        parser.error("--names must be at least 1")
    if not 0 <= args.hosted <= 100:
        parser.error("--hosted must be 0..100")
    out: Path = args.outdir
    if out.exists() and any(out.iterdir()) and not args.force:
        print(f"gen-hierarchy: error: {out} is not empty (give --force to overwrite)", file=sys.stderr)
        return 1
    out.mkdir(parents=True, exist_ok=True)
    if args.force:
        for old in out.glob("*.zone"):
            old.unlink()

    rng = random.Random(args.seed)
    tlds, slds = plan(args.tlds, args.zones, args.hosted, rng)
    addresses = Addresses()
    labels = host_labels(args.names)
    (out / "root.zone").write_text(root_zone(tlds), encoding="utf-8")
    for i, tld in enumerate(tlds):
        (out / f"{tld}zone").write_text(tld_zone(i, tld, tlds, slds), encoding="utf-8")
    names: list[str] = []
    for sld in slds:
        (out / f"{sld.name}zone").write_text(sld_zone(sld, labels, rng, addresses), encoding="utf-8")
        names += [f"{label}.{sld.name[:-1]}" for label in labels]
    (out / "names.txt").write_text("\n".join(names) + "\n", encoding="utf-8")
    (out / "queries.txt").write_text("".join(f"{name} A\n" for name in names), encoding="utf-8")
    (out / "lab.toml").write_text(
        "# Settings for a hierarchy written by scripts/gen-hierarchy; the zones say who serves what.\n"
        "port = 5300\nstart_down = []\n", encoding="utf-8")
    hosted = sum(s.hosted_by is not None for s in slds)
    servers = 3 + 2 * len(tlds) + 2 * (len(slds) - hosted)
    print(f"gen-hierarchy: wrote {1 + len(tlds) + len(slds)} zones (root, {len(tlds)} TLDs, {len(slds)} "
          f"second-level, {hosted} of them hosted glueless) served by {servers} addresses, "
          f"{len(names)} names in {out / 'names.txt'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
