#!/usr/bin/env python3
"""Check the signed lab with a real validating Unbound, and dnslab's validating resolver against it.

The lab's servers run signed (fresh keys in a temporary folder) on port 53 of
their 127.x.y.z addresses (Unbound asks name servers on port 53 only), with the
lab's own resolver on 127.0.0.1:53.  Unbound (validator + iterator, `ede: yes`)
gets the lab's root hints and trust anchor.  For each case both are started
cold (Unbound afresh, dnslab's cache flushed), so no cached DS or DNSKEY hides
a fault.  Prints one line per question:

    Unbound: rcode, AD or --, answer records, its extended error | dnslab: the same

and checks that Unbound does what it should (AD for the secure names, no AD
for example.net., left unsigned; SERVFAIL with the fault's reason for each
fault; data without AD with CD=1; AD again after `clear`) and that dnslab's
resolver gives the same rcode and AD bit.  Then every name and type of every
zone (with a name each wildcard expands to, and a missing name and a missing
type per zone) is asked of both twice, cold then from the cache, each time in
a shuffled order (the seed is printed; --seed repeats it), and only
differences in rcode or AD are printed.  A question both fail alike (both
SERVFAIL, both silent) proves nothing and counts as a failure too.  (The
signed DNAME cases live in tools/compare/zones/, which compare-unbound runs
signed and validating.)  Exit status 0 when all hold, 1 when one does not, 2
when Unbound or port 53 is not available.

    .venv/bin/python scripts/check-dnssec-unbound [--nsec3] [--unbound PATH] [--seed N] [--keep]
"""

from __future__ import annotations

import argparse
import random
import shutil
import sys
import tempfile
from pathlib import Path

import dns.edns
import dns.exception
import dns.flags
import dns.rcode
import dns.rdatatype

from dnslab.core.errors import DnslabError
from dnslab.lab.runtime import Lab
from dnslab.testing import LabRunner
from tools.common.asking import ask as ask_once
from tools.common.lab import SAMPLE_ZONES
from tools.common.procs import Managed
from tools.common.reference import find_binary, not_installed, start_unbound

UNBOUND_ADDRESS = ("127.0.97.1", 5399)

# (name, type, expect AD)
HEALTHY = [("www.example.com.", "A", True), ("nx.example.com.", "A", True), ("foo.pages.net.", "A", True),
           ("q.apps.pages.net.", "A", True), ("a.b.c.pages.net.", "TXT", True), ("x.y.pages.net.", "MX", True),
           ("ttl-demo.org.", "MX", True), ("www.example.net.", "A", False)]
# (zone, fault, a name below it, words of Unbound's reason)
FAULTS = [("example.org.", "dnssec-bad-sig", "www.example.org.", "signature crypto failed"),
          ("failover.com.", "dnssec-expired", "www.failover.com.", "signature expired"),
          ("dns-host.org.", "dnssec-missing-ds", "ns1.dns-host.org.", "DS"),
          ("eng.example.com.", "dnssec-wrong-ds", "ns1.eng.example.com.", "DS hash mismatches key")]


class Unbound:
    """A validating Unbound (`ede: yes`) with the lab's hints and trust anchor, restarted cold per case."""

    def __init__(self, binary: str, workdir: Path, hints: Path, anchor: Path) -> None:
        self.binary = binary
        self.workdir = workdir
        self.hints = hints
        self.options = ["  val-log-level: 2", "  ede: yes", f'  trust-anchor-file: "{anchor}"',
                        '  module-config: "validator iterator"',
                        '  local-zone: "2.0.192.in-addr.arpa." nodefault', '  local-zone: "arpa." nodefault']
        self.process: Managed | None = None

    def restart(self) -> None:
        self.stop()
        self.process, _ = start_unbound(self.binary, self.workdir, UNBOUND_ADDRESS[0], self.hints, self.options,
                                        port=UNBOUND_ADDRESS[1])

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop(10)
            self.process = None


DNSLAB_ADDRESS = ("127.0.0.1", 53)
Result = tuple[str, bool, int, str]


def ask(name: str, qtype: str, cd: bool = False, server: tuple[str, int] = UNBOUND_ADDRESS) -> Result:
    for _ in range(3):
        try:
            reply = ask_once(server, name, qtype, timeout=5, dnssec=True, cd=cd)
        except (dns.exception.Timeout, OSError):
            continue
        reason = "; ".join(o.text or "" for o in reply.options if isinstance(o, dns.edns.EDEOption))
        return (dns.rcode.to_text(reply.rcode()), bool(reply.flags & dns.flags.AD),
                sum(len(r) for r in reply.answer), reason)
    return "no answer", False, 0, ""


def all_questions(lab: Lab) -> list[tuple[str, str]]:
    """Every owner name and type of every zone (and what each wildcard expands to), plus a missing
    name and a missing type per zone."""
    found: list[tuple[str, str]] = []
    for zone in lab.zones:
        for rrset in zone.rrsets():
            names = [rrset.name.to_text()]
            if rrset.name.labels[0] == b"*":  # and a name the wildcard expands to
                names.append("expanded." + rrset.name.parent().to_text())
            for name in names:
                pair = (name, dns.rdatatype.to_text(rrset.rdtype))
                if pair not in found:
                    found.append(pair)
        found.append((f"no-such-name.{zone.origin.to_text()}".replace("..", "."), "A"))
        found.append((zone.origin.to_text(), "SSHFP"))
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nsec3", action="store_true", help="sign with NSEC3 instead of NSEC")
    parser.add_argument("--unbound", default=find_binary("unbound") or "/usr/sbin/unbound")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (Unbound's log)")
    parser.add_argument("--seed", type=int, default=None,
                        help="seed of the questions' random order (default: a new one, printed)")
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1 << 32)
    if find_binary("unbound", args.unbound) is None:
        print(f"check-dnssec-unbound: {not_installed('Unbound', 'unbound')}", file=sys.stderr)
        return 2
    workdir = Path(tempfile.mkdtemp(prefix="check-dnssec-"))
    try:
        lab, _ = Lab.from_folder(SAMPLE_ZONES, port=53, with_resolver=True, dnssec=True, nsec3=args.nsec3,
                                 keys_dir=workdir / "keys")
        lab.resolver_address = DNSLAB_ADDRESS[0]
        for running in lab.servers:  # every server up, also those lab.toml starts down
            running.faulty.apply("clear")
        runner = LabRunner(lab)
        runner.start()
    except (DnslabError, OSError) as exc:
        print(f"check-dnssec-unbound: cannot run the lab on port 53: {exc}", file=sys.stderr)
        return 2
    assert lab.trust_anchor_file is not None
    (workdir / "root.hints").write_text(lab.root_hints, encoding="utf-8")
    unbound = Unbound(args.unbound, workdir, workdir / "root.hints", lab.trust_anchor_file)
    failures = 0
    compared = differences = 0

    def text(result: Result) -> str:
        rcode, ad, count, reason = result
        return f"{rcode} {'AD' if ad else '--'} answers={count}" + (f" ({reason[:90]})" if reason else "")

    def both(name: str, qtype: str, cd: bool = False) -> tuple[Result, Result]:
        return ask(name, qtype, cd), ask(name, qtype, cd, DNSLAB_ADDRESS)

    def report(label: str, results: tuple[Result, Result], ok: bool) -> None:
        """*ok* judges Unbound; dnslab must then give the same rcode and AD bit."""
        nonlocal failures, compared, differences
        unbound_result, dnslab_result = results
        same = unbound_result[:2] == dnslab_result[:2]
        compared += 1
        differences += not same
        failures += not ok or not same
        print(f"{'ok ' if ok and same else 'BAD'} {label}: Unbound {text(unbound_result)} | "
              f"dnslab {text(dnslab_result)}")

    def cold() -> None:
        unbound.restart()
        runner.call(lambda: lab.resolver.cache.flush())  # type: ignore[union-attr]

    try:
        cold()
        for name, qtype, secure in HEALTHY:
            results = both(name, qtype)
            report(f"{name} {qtype}", results, results[0][0] in ("NOERROR", "NXDOMAIN") and results[0][1] == secure)
        for zone, kind, name, reason in FAULTS:
            cold()
            runner.call(lambda: lab.fault(zone, kind))
            results = both(name, "A")
            report(f"{kind} {zone}: {name}", results, results[0][0] == "SERVFAIL" and reason in results[0][3])
            results = both(name, "A", cd=True)
            report(f"{kind} {zone}: {name} CD=1", results,
                   results[0][0] == "NOERROR" and results[0][2] > 0 and not results[0][1])
            runner.call(lambda: lab.fault(zone, "clear"))
            cold()
            results = both(name, "A")
            report(f"{kind} cleared: {name}", results, results[0][0] == "NOERROR" and results[0][1])
        cold()
        questions = all_questions(lab)
        rng = random.Random(seed)
        print(f"every name and type: {len(questions)} questions, twice (cold, then cached), in an order "
              f"from seed {seed} (--seed {seed} repeats it)")
        matching = 0
        for when in ("cold", "cached"):
            order = list(questions)
            rng.shuffle(order)
            for name, qtype in order:
                unbound_result, dnslab_result = both(name, qtype)
                compared += 1
                if unbound_result[:2] != dnslab_result[:2]:
                    differences += 1
                    failures += 1
                    print(f"DIFF {name} {qtype} ({when}): Unbound {text(unbound_result)} | "
                          f"dnslab {text(dnslab_result)}")
                elif unbound_result[0] in ("SERVFAIL", "no answer"):
                    matching += 1
                    failures += 1
                    print(f"BOTH {unbound_result[0]} {name} {qtype} ({when}): a matching failure proves nothing")
        print(f"every name and type: {matching} matching failure(s)")
    except RuntimeError as exc:  # Unbound did not start
        print(f"check-dnssec-unbound: {exc}", file=sys.stderr)
        return 2
    finally:
        unbound.stop()
        runner.stop()
        if args.keep:
            print(f"work folder: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    print(f"checked the signed lab ({'NSEC3' if args.nsec3 else 'NSEC'}) with Unbound: "
          f"{failures} failure(s); dnslab's resolver and Unbound compared on {compared} questions "
          f"(rcode and AD): {differences} difference(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
