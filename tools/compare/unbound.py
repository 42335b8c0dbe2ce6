"""Compare dnslab's recursive resolver with Unbound, both resolving the lab's own hierarchy.

The lab's authoritative servers run on port 53 of their own 127.x.y.z
addresses (Unbound can only ask name servers on port 53: root hints and glue
carry no port), with the servers lab.toml starts down left down.  Unbound
(QNAME minimisation, minimal responses; iterator only, or validator +
iterator with the lab's trust anchor when the lab is signed) is given the
lab's root hints and listens on 127.0.98.1; dnslab's resolver, in this
process, on 127.0.98.2.  Both start with a cold cache.

Each zone folder is a lab of its own, run one after the other: by default the
sample zones (dnslab/zones/) and the comparison's own hierarchy (tools/compare/zones/:
DNAMEs plain, signed and into a delegated child, AAAA glue, empty
non-terminals, wildcards below a delegation, a 100-record RRset; signed but
for one branch).  A signed lab's keys are made afresh in a temporary folder.

The questions come from the zones: every owner name (not glue below a cut,
not the wildcard owners themselves) with the types A, AAAA, MX, TXT, NS, SOA,
SRV, PTR, CAA, CNAME and the types it has; names a wildcard matches; a
nonexistent name in every zone; names below empty non-terminals and below
CNAMEs and DNAMEs.  Every question is asked twice: pass 1 from cold caches,
pass 2 from the warm ones, each pass in its own shuffled order (from a seed,
printed; --shuffle SEED repeats a run).  In each pass Unbound gets every
question first, then dnslab in the same order (so both caches fill the same
way), one at a time, with RD=1, AD=1 (as dig sends) and EDNS 1232; a reply
with TC=1 is asked again over TCP.

Compared, in each pass: the rcode; the flags AA, TC (of the UDP reply), RD,
RA, AD and CD; the answer and authority sections as sets of (owner, type,
rdata), owners and names in rdata case-folded, TTLs ignored.  A TTL from
dnslab above the TTL in the zone file is a difference too, and so is a dnslab
answer that changes from pass 1 to pass 2 where Unbound's does not.  A
question both fail alike (both SERVFAIL, both silent) agrees but proves
nothing: such matching failures are listed apart and fail the run too,
unless the folder's expect-failure.txt names the question ("NAME [TYPE]  #
why").  Prints every difference and matching failure, the wall time of each
resolver per pass, then one line:

    compared N queries against Unbound X.Y.Z: M differences, F matching failures

Exit status: 0 with neither, 1 with some (or when dnslab logged an error), 2
when Unbound or the lab cannot be run (Unbound missing, port 53 taken or not
allowed).

    .venv/bin/python scripts/compare-unbound [--zones DIR ...] [--max-queries N] [--passes N]
                                             [--shuffle SEED] [--keep]

Unbound's configuration differs from its defaults where the comparison needs
it: `local-zone: NAME nodefault` for the lab's names (Unbound itself answers
2.0.192.in-addr.arpa., TEST-NET-1's reverse zone, test. and other RFC 6303 /
RFC 6761 zones), and `discard-timeout: 0` where known (else a reply that took
Unbound over 1.9 s, such as the first failover.com lookup, is never sent).
"""

from __future__ import annotations

import argparse
import errno
import random
import socket
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from dnslab.core.errors import DnslabError
from dnslab.core.zone import Zone
from dnslab.lab.runtime import Lab
from dnslab.services.resolver import RecursiveResolver
from dnslab.services.transport import DnsListener
from dnslab.testing import LabRunner
from tools.common.net import free_port
from tools.common.procs import Managed
from tools.common.reference import start_unbound
from tools.compare.shared import (FOLDERS, Rule, Tally, child, compare_folders, comparison_parser, explain,
                                  find_server, load_lab, log_problems, new_seed, quiet_when_piped,
                                  report, uninterrupted, work_folder)

T = dns.rdatatype.RdataType
QTYPES = (T.A, T.AAAA, T.MX, T.TXT, T.NS, T.SOA, T.SRV, T.PTR, T.CAA, T.CNAME)
UNBOUND_ADDRESS = "127.0.98.1"
DNSLAB_ADDRESS = "127.0.98.2"
LAB_PORT = 53
EDNS_SIZE = 1232


# --- questions --------------------------------------------------------------------------


@dataclass(frozen=True)
class Question:
    qname: dns.name.Name
    qtype: int
    why: str  # which kind of name this is, for the report
    expect_failure: str = ""  # why both resolvers may fail it alike (from expect-failure.txt)

    def __str__(self) -> str:
        return f"{self.qname} {dns.rdatatype.to_text(self.qtype)}"


def _down(lab: Lab) -> set[str]:
    """Addresses of the lab servers that are down (lab.toml's start_down is a "down" fault)."""
    return {running.plan.address for running in lab.servers if running.faulty.down}


def questions(zones: list[Zone]) -> list[Question]:
    """Every question worth asking a resolver about these zones, in a fixed order."""
    out: dict[tuple[dns.name.Name, int], Question] = {}
    origins = {zone.origin for zone in zones}

    def exists(name: dns.name.Name) -> bool:
        return any(zone.exists(name) for zone in zones)

    def add(name: dns.name.Name, types: list[int] | tuple[int, ...], why: str) -> None:
        for qtype in dict.fromkeys(types):
            out.setdefault((name, qtype), Question(name, qtype, why))

    def fresh(parent: dns.name.Name, prefix: str) -> dns.name.Name:
        for n in range(1, 1000):
            name = child(parent, f"{prefix}-{n}")
            if not exists(name):
                return name
        raise RuntimeError(f"no free name below {parent}")  # pragma: no cover

    def typeset(node: dict[int, object] | None) -> list[int]:
        return [*QTYPES, *sorted(node or {})]

    for zone in sorted(zones, key=lambda z: (len(z.origin), z.origin)):
        def below_cut(name: dns.name.Name) -> bool:
            return any(name.is_subdomain(cut) for cut in zone.cuts)

        # The zone's own names, empty non-terminals included; delegation points only
        # when the child zone is not loaded (then the parent's NS set is all there is).
        for name in sorted(zone.names):
            if name.labels and name.labels[0] == b"*":
                continue
            if below_cut(name) and not (name in zone.cuts and name not in origins):
                continue
            node = zone.node(name)
            add(name, typeset(node), "empty non-terminal" if node is None else "owner")
            if node is None:
                add(fresh(name, "nx"), (T.A, T.TXT), "below an empty non-terminal")
        add(fresh(zone.origin, "nx"), QTYPES, "nonexistent")
        for name, node in sorted(zone.nodes.items()):
            if below_cut(name) and name not in zone.cuts:
                continue
            if name.labels and name.labels[0] == b"*":
                # A wildcard answers for names that do not exist below its parent:
                # one label down, and two (the closest encloser is still the parent).
                parent = name.parent()
                label = child(parent, "random-label")
                add(label if not exists(label) else fresh(parent, "random-label"), typeset(node), "wildcard match")
                add(child(fresh(parent, "random"), "a"), (T.A, T.TXT, T.CNAME, T.AAAA), "wildcard match")
                continue
            if T.CNAME in node:
                add(fresh(name, "below-cname"), (T.A, T.TXT), "below a CNAME")
            if T.DNAME in node:
                add(fresh(name, "below-dname"), QTYPES, "below a DNAME")
                add(child(fresh(name, "b"), "a"), (T.A, T.AAAA), "below a DNAME")
    return list(out.values())


# --- asking --------------------------------------------------------------------------------


@dataclass
class Reply:
    message: dns.message.Message | None
    error: str = ""
    tcp: bool = False
    seconds: float = 0.0

    @property
    def rcode(self) -> str:
        if self.message is None:
            return f"no reply ({self.error})"
        return dns.rcode.to_text(self.message.rcode())


def expected_failures(folder: Path, items: list[Question]) -> list[Question]:
    """Mark the questions the folder's expect-failure.txt names ("NAME [TYPE]  # why", one a line)."""
    path = folder / "expect-failure.txt"
    if not path.exists():
        return items
    expected: dict[tuple[dns.name.Name, int | None], str] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        text, _, why = line.partition("#")
        words = text.split()
        if not words:
            continue
        try:
            rdtype = dns.rdatatype.from_text(words[1]) if len(words) > 1 else None
            expected[(dns.name.from_text(words[0]), rdtype)] = why.strip() or "expected"
        except dns.exception.DNSException as exc:
            raise DnslabError(f"{path}:{number}: {exc}") from None
    return [replace(q, expect_failure=expected.get((q.qname, q.qtype)) or expected.get((q.qname, None)) or "")
            for q in items]


def ask(address: tuple[str, int], question: Question, timeout: float) -> Reply:
    """One question with RD=1, AD=1 and EDNS; again over TCP when the reply is truncated."""
    query = dns.message.make_query(question.qname, question.qtype, use_edns=0, payload=EDNS_SIZE,
                                   flags=dns.flags.RD | dns.flags.AD)
    started = time.monotonic()
    try:
        message = dns.query.udp(query, address[0], timeout=timeout, port=address[1],
                                ignore_unexpected=True)
        if not message.flags & dns.flags.TC:
            return Reply(message, seconds=time.monotonic() - started)
        message = dns.query.tcp(query, address[0], timeout=timeout, port=address[1])
        return Reply(message, tcp=True, seconds=time.monotonic() - started)
    except dns.exception.Timeout:
        return Reply(None, f"timeout after {timeout:g} s", seconds=time.monotonic() - started)
    except (OSError, EOFError, dns.exception.DNSException) as exc:
        return Reply(None, f"{type(exc).__name__}: {exc}", seconds=time.monotonic() - started)


@dataclass
class Phase:
    """All questions asked of one resolver, one after another (the first pass: from a cold cache)."""

    name: str
    address: tuple[str, int]
    replies: dict[Question, Reply] = field(default_factory=dict)
    seconds: float = 0.0
    cut_short: bool = False

    def run(self, items: list[Question], timeout: float, time_limit: float) -> None:
        started = time.monotonic()
        for question in items:
            if time.monotonic() - started > time_limit:
                self.cut_short = True
                break
            self.replies[question] = ask(self.address, question, timeout)
        self.seconds = time.monotonic() - started

    @property
    def tcp_retries(self) -> int:
        return sum(reply.tcp for reply in self.replies.values())

    def slowest(self) -> tuple[float, Question] | None:
        if not self.replies:
            return None
        return max(((r.seconds, q) for q, r in self.replies.items()), key=lambda pair: pair[0])


# --- comparing ---------------------------------------------------------------------------------


Record = tuple[str, str, bytes]  # owner (folded), type, canonical rdata


def records(rrsets: list[dns.rrset.RRset]) -> dict[Record, str]:
    """Each record by its comparison key, with its text for the report."""
    out: dict[Record, str] = {}
    for rrset in rrsets:
        owner = rrset.name.to_text().lower()
        rdtype = dns.rdatatype.to_text(rrset.rdtype)
        for rdata in rrset:
            key = (owner, rdtype, rdata.to_digestable(dns.name.root))
            out[key] = f"{owner} {rdtype} {rdata.to_text()}"
    return out


class ZoneTtls:
    """The TTLs written in the zone files, for the answers a resolver may give."""

    def __init__(self, zones: list[Zone]) -> None:
        self.ttl: dict[tuple[dns.name.Name, int], int] = {}
        self.negative: dict[dns.name.Name, int] = {}
        origins = {zone.origin for zone in zones}
        for zone in zones:
            self.negative[zone.origin] = zone.negative_soa.ttl
            for rrset in zone.rrsets():
                below = any(rrset.name.is_subdomain(cut) for cut in zone.cuts)
                parent_only = rrset.name in zone.cuts and rrset.name not in origins and rrset.rdtype == T.NS
                if below and not parent_only:
                    continue  # glue and the parent's NS copy: a resolver answers with the child's own
                key = (rrset.name, int(rrset.rdtype))
                self.ttl[key] = max(self.ttl.get(key, 0), rrset.ttl)

    def limit(self, rrset: dns.rrset.RRset) -> int | None:
        """The zone's TTL for this RRset: its own, a wildcard's that made it, or a DNAME's."""
        key = (rrset.name, int(rrset.rdtype))
        if key in self.ttl:
            return self.ttl[key]
        name = rrset.name
        while len(name) > 1:
            name = name.parent()
            wildcard = (child(name, "*"), int(rrset.rdtype))
            if wildcard in self.ttl:
                return self.ttl[wildcard]
            if rrset.rdtype == T.CNAME and (name, int(T.DNAME)) in self.ttl:
                return self.ttl[(name, int(T.DNAME))]
        return None

    def negative_limit(self, soa: dns.rrset.RRset) -> int | None:
        return self.negative.get(soa.name)


@dataclass
class Difference:
    question: Question
    kind: str
    lines: list[str]
    when: str = ""  # which pass, when there are several

    def __str__(self) -> str:
        head = f"{self.question} ({self.question.why}{', ' + self.when if self.when else ''}): {self.kind}"
        return "\n".join([head, *("    " + line for line in self.lines)])


COMPARED_FLAGS = (("AA", dns.flags.AA), ("RD", dns.flags.RD), ("RA", dns.flags.RA), ("AD", dns.flags.AD),
                  ("CD", dns.flags.CD))


def flags(reply: Reply) -> str:
    """The compared header flags; TC as the UDP reply had it (the TCP one never does)."""
    assert reply.message is not None
    names = [name for name, bit in COMPARED_FLAGS if reply.message.flags & bit]
    return " ".join(names + (["TC"] if reply.tcp else [])) or "-"


def failure(reply: Reply) -> str | None:
    """What kind of failure a reply is, if it is one that two resolvers can share without proving anything."""
    if reply.message is None:
        return "silent"
    return reply.rcode if reply.message.rcode() == dns.rcode.SERVFAIL else None


def gist(reply: Reply) -> tuple[object, ...]:
    """What must not change between a cold and a warm answer: rcode, flags, records (TTLs aside)."""
    if reply.message is None:
        return ("silent",)
    m = reply.message
    return (m.rcode(), flags(reply), frozenset(records(m.answer)), frozenset(records(m.authority)))


def compare_section(question: Question, name: str, rcode: str, theirs: dict[Record, str],
                    ours: dict[Record, str]) -> list[Difference]:
    if theirs.keys() == ours.keys():
        return []
    lines = [f"only unbound: {theirs[k]}" for k in sorted(theirs.keys() - ours.keys())]
    lines += [f"only dnslab:  {ours[k]}" for k in sorted(ours.keys() - theirs.keys())]
    return [Difference(question, f"{name} ({rcode})", lines)]


def _cname_below_signed_dname(question: Question, unbound: Reply, lab: Reply) -> bool:
    return (question.qtype == T.CNAME and unbound.rcode == "SERVFAIL" and lab.message is not None
            and lab.rcode in ("NOERROR", "NXDOMAIN") and bool(lab.message.flags & dns.flags.AD)
            and any(rrset.rdtype == T.DNAME for rrset in lab.message.answer))


def _cname_question_from_the_server(question: Question, unbound: Reply, lab: Reply) -> bool:
    u, d = unbound.message, lab.message
    if question.qtype != T.CNAME or u is None or d is None or records(u.answer) != records(d.answer):
        return False
    return (lab.rcode == "NOERROR" and not d.authority and any(r.rdtype == T.DNAME for r in d.answer)
            and (unbound.rcode != lab.rcode or bool(u.authority)))


# Differences where Unbound is the one off the mark (applies(question, unbound, lab)): reported, not counted.
KNOWN: list[Rule] = [
    Rule(None, "Unbound 1.17 cannot validate a CNAME question below a signed DNAME (its log: 'DS got DNAME "
         "answer', it seeks a zone cut at the synthesised name); dnslab validates the DNAME and the synthesis "
         "(RFC 6672 §5.3)", _cname_below_signed_dname),
    Rule(None, "a CNAME question below a DNAME: Unbound answers from the synthesis (NOERROR) when the DNAME is in "
         "its cache, else passes on the server's reply, which went on to the target (NXDOMAIN or NODATA there): "
         "order-dependent; dnslab always answers from the synthesis, cold and cached alike",
         _cname_question_from_the_server),
]


def compare(question: Question, unbound: Reply, lab: Reply, ttls: ZoneTtls) -> list[Difference]:
    diffs: list[Difference] = []
    if unbound.message is None or lab.message is None:
        if unbound.rcode != lab.rcode:
            diffs.append(Difference(question, "rcode", [f"unbound: {unbound.rcode}", f"dnslab:  {lab.rcode}"]))
        return diffs
    u, d = unbound.message, lab.message
    if u.rcode() != d.rcode():
        diffs.append(Difference(question, "rcode", [
            f"unbound: {unbound.rcode}" + (f", answer {summary(u)}" if u.answer else ""),
            f"dnslab:  {lab.rcode}" + (f", answer {summary(d)}" if d.answer else "")]))
    else:
        diffs += compare_section(question, "answer", unbound.rcode, records(u.answer), records(d.answer))
        # Negative answers' authority (the SOA, whole), and any authority a positive answer carries.
        diffs += compare_section(question, "authority", unbound.rcode, records(u.authority), records(d.authority))
    if flags(unbound) != flags(lab):
        diffs.append(Difference(question, "flags", [f"unbound: {flags(unbound)}", f"dnslab:  {flags(lab)}"]))
    too_long = []
    for rrset in d.answer:
        limit = ttls.limit(rrset)
        if limit is not None and rrset.ttl > limit:
            too_long.append(f"{rrset.name} {dns.rdatatype.to_text(rrset.rdtype)}: TTL {rrset.ttl} "
                            f"> {limit} in the zone")
    for rrset in d.authority:
        limit = ttls.negative_limit(rrset) if rrset.rdtype == T.SOA else None
        if limit is not None and rrset.ttl > limit:
            too_long.append(f"{rrset.name} SOA in authority: TTL {rrset.ttl} > {limit} "
                            "(min(SOA TTL, MINIMUM) in the zone)")
    if too_long:
        diffs.append(Difference(question, "dnslab TTL above the zone's", too_long))
    return diffs


def summary(message: dns.message.Message) -> str:
    texts = sorted(records(message.answer).values())
    shown = "; ".join(texts[:4])
    return shown + (f"; ... ({len(texts)} records)" if len(texts) > 4 else "")


# --- Unbound, the lab and dnslab's resolver --------------------------------------------------

TOOL = "compare-unbound"
UNBOUND_OPTIONS = [
    "  verbosity: 1",
    "  num-threads: 1",
    "  so-reuseport: no",
    "  qname-minimisation: yes",
    "  access-control: 127.0.0.0/8 allow",
    "  harden-referral-path: no",
    "  prefetch: no",
    "  minimal-responses: yes",
    "  rrset-roundrobin: no",
]
# Settings only some versions know; dropped if unbound-checkconf rejects them. discard-timeout (1.19,
# and Debian's 1.17.1 security backport) silently drops the reply to a question that took over 1.9 s
# (the first failover.com lookup, when Unbound tries the dead server twice), expecting the client to
# have retried by then.
UNBOUND_OPTIONAL = ("  discard-timeout: 0",)


def unbound_options(zones: list[Zone], anchor: Path | None) -> list[str]:
    """Unbound's settings for the lab: validating with the lab's trust anchor when it is signed (as
    dnslab's resolver then does), and resolving every name of the lab itself."""
    if anchor is not None:
        modules = ['  module-config: "validator iterator"', f'  trust-anchor-file: "{anchor}"', "  val-log-level: 2"]
    else:
        modules = ['  module-config: "iterator"']
    # Unbound answers some names itself (RFC 6303 and RFC 6761 local zones, such as
    # 2.0.192.in-addr.arpa. for TEST-NET-1); the lab's zones must be resolved instead.
    local = [f'  local-zone: "{name.to_text()}" nodefault' for name in nodefault_names(zones)]
    return [*UNBOUND_OPTIONS, *modules, *local]


def nodefault_names(zones: list[Zone]) -> list[dns.name.Name]:
    """Every name of the lab and its ancestors but the root: where a default local zone could be.

    `local-zone: NAME nodefault` is harmless for a name Unbound has no default zone at.
    """
    names: set[dns.name.Name] = set()
    for zone in zones:
        for name in zone.names:
            if any(label == b"*" for label in name.labels):
                continue
            while name != dns.name.root and name not in names:
                names.add(name)
                name = name.parent()
    return sorted(names)


def start_resolver(runner: LabRunner) -> DnsListener:
    """dnslab's resolver, as the lab runs one but asking the lab's servers on port 53, on DNSLAB_ADDRESS
    (a free port), on the lab's loop."""
    lab = runner.lab
    resolver = RecursiveResolver(lab.hierarchy.root_hints, replace(lab.resolver_settings, upstream_port=LAB_PORT))
    listener = DnsListener(DNSLAB_ADDRESS, free_port(DNSLAB_ADDRESS), resolver.handle)
    runner.run(listener.start(), 10)
    return listener


def port_53_problems(lab: Lab) -> tuple[list[str], list[str]]:
    """Lab addresses where port 53 cannot be had (fatal), and down servers something else answers for."""
    fatal, notes = [], []
    for running in lab.servers:
        address = running.plan.address
        for kind, proto in (("UDP", socket.SOCK_DGRAM), ("TCP", socket.SOCK_STREAM)):
            with socket.socket(socket.AF_INET, proto) as sock:
                if proto == socket.SOCK_STREAM:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    sock.bind((address, LAB_PORT))
                    continue
                except OSError as exc:
                    if exc.errno == errno.EADDRINUSE:
                        why = "already in use (another DNS server? `ss -lunpt sport = :53` shows which)"
                    elif exc.errno == errno.EACCES:
                        why = "needs root (or CAP_NET_BIND_SERVICE)"
                    else:
                        why = exc.strerror or str(exc)
            text = f"port 53 on {address} ({kind}, {running.plan.name}): {why}"
            if address in _down(lab):
                notes.append(text + "; this server should be down, so failover is not really tested")
            else:
                fatal.append(text)
            break
    return fatal, notes


# --- main --------------------------------------------------------------------------------------


@quiet_when_piped
def main(argv: list[str] | None = None) -> int:
    parser = comparison_parser(__doc__, "Unbound", "unbound", "Unbound's configuration and log")
    parser.add_argument("--max-queries", type=int, default=3000,
                        help="compare at most this many queries per folder, all passes together (default: 3000)")
    parser.add_argument("--passes", type=int, default=2,
                        help="ask every question this many times; passes after the first test "
                             "answers from a warm cache (default: 2)")
    parser.add_argument("--shuffle", type=int, default=None, metavar="SEED",
                        help="the seed of the questions' random order (default: a new one, printed)")
    parser.add_argument("--timeout", type=float, default=6.0, help="seconds to wait for one reply (default: 6)")
    parser.add_argument("--time-limit", type=float, default=300.0,
                        help="seconds each resolver may take for one pass (default: 300)")
    args = parser.parse_args(argv)
    if args.passes < 1 or args.max_queries < 1:
        parser.error("--passes and --max-queries must be at least 1")
    seed = new_seed(args.shuffle)
    found = find_server(TOOL, "Unbound", "unbound", args.unbound, "-V", r"Version (\S+)")
    if found is None:
        return 2
    binary, unbound_version = found
    print(f"questions in a random order from seed {seed} (--shuffle {seed} repeats it)", flush=True)
    total = compare_folders(TOOL, args.zones or FOLDERS,
                            lambda folder: run_folder(folder, args, binary, unbound_version, seed))
    if isinstance(total, int):
        return total
    report(total, args.show, "matching failures (both resolvers failed alike; not expected):",
           "known differences, Unbound's (not counted)")
    print(f"compared {total.count} queries against Unbound {unbound_version} (seed {seed}): "
          f"{len(total.diffs)} differences, {len(total.failures)} matching failures")
    return total.status()


def run_folder(folder: Path, args: argparse.Namespace, binary: str, unbound_version: str, seed: int) -> Tally | None:
    """Compare both resolvers on one zone folder's lab; None when it cannot be run (reported)."""
    with work_folder("compare-unbound-", args.keep, "Unbound's configuration, root hints and log") as workdir:
        lab = load_lab(TOOL, folder, LAB_PORT, workdir / "keys")
        if lab is None:
            return None
        try:
            items = expected_failures(folder, questions(lab.zones))
        except DnslabError as exc:
            print(f"{TOOL}: {folder}: {exc}", file=sys.stderr)
            return None
        fatal, notes = port_53_problems(lab)
        for note in notes:
            print(f"note: {note}")
        if fatal:
            print(f"{TOOL}: the lab's servers must listen on port 53 (Unbound asks name servers "
                  "on no other port), but:", file=sys.stderr)
            for line in fatal:
                print(f"  {line}", file=sys.stderr)
            return None

        rng = random.Random(seed)
        room = args.max_queries // args.passes
        if len(items) > room:
            print(f"note: {len(items)} questions generated; asking {room} of them "
                  f"(--max-queries {args.max_queries}, --passes {args.passes})")
            items = sorted(rng.sample(items, room), key=items.index)
        orders = []
        for _ in range(args.passes):
            order = list(items)
            rng.shuffle(order)
            orders.append(order)

        hints = workdir / "root.hints"
        hints.write_text(lab.root_hints, encoding="utf-8")
        anchor = None
        if lab.signer is not None and lab.signer.root_ds() is not None:
            anchor = workdir / "root.anchor"
            anchor.write_text(lab.signer.root_ds().to_text() + "\n", encoding="utf-8")
        runner = LabRunner(lab)
        listener: DnsListener | None = None
        server: Managed | None = None
        rounds: list[tuple[Phase, Phase]] = []
        try:
            runner.start()
            listener = start_resolver(runner)
            server, address = start_unbound(binary, workdir, UNBOUND_ADDRESS, hints,
                                            unbound_options(lab.zones, anchor), UNBOUND_OPTIONAL)
            print(f"{folder}: {sum(r.up for r in lab.servers)} of {len(lab.servers)} servers up on port {LAB_PORT}"
                  + (f" (down: {', '.join(sorted(_down(lab)))})" if _down(lab) else "")
                  + (", signed, both resolvers validating" if anchor else "")
                  + f"; Unbound {unbound_version} on {address[0]}@{address[1]}, "
                  f"dnslab on {DNSLAB_ADDRESS}@{listener.port}; {len(items)} questions x {args.passes} passes",
                  flush=True)
            for order in orders:
                # Unbound answers every question, then dnslab, in the same order: each
                # resolver's time is its own, and both caches fill the same way.
                first, second = Phase("Unbound", address), Phase("dnslab", (DNSLAB_ADDRESS, listener.port))
                rounds.append((first, second))
                first.run(order, args.timeout, args.time_limit)
                second.run([q for q in order if q in first.replies], args.timeout, args.time_limit)
        finally:
            with uninterrupted():
                if server is not None:
                    server.stop()
                if listener is not None:
                    runner.run(listener.stop(), 10)
                runner.stop()
            log_lines = log_problems(workdir / "unbound.log")
    tally = judge(items, rounds, ZoneTtls(lab.zones))
    for line in log_lines[:10]:
        print(f"note: Unbound logged: {line}")
    for number, (first, second) in enumerate(rounds, start=1):
        if first.cut_short or second.cut_short:
            print(f"note: pass {number} stopped at the time limit ({args.time_limit:g} s per resolver); "
                  f"{len(items) - min(len(first.replies), len(second.replies))} questions not compared")
        for phase in (first, second):
            slow = phase.slowest()
            slowest = f"; slowest {slow[1]} {slow[0]:.2f} s" if slow else ""
            unanswered = sum(reply.message is None for reply in phase.replies.values())
            print(f"{phase.name:8s} wall time {phase.seconds:6.2f} s for {len(phase.replies)} queries "
                  f"({'cold' if number == 1 else 'warm'} cache, one at a time; "
                  f"{phase.tcp_retries} over TCP after TC, {unanswered} unanswered{slowest})")
    return tally


def judge(items: list[Question], rounds: list[tuple[Phase, Phase]], ttls: ZoneTtls) -> Tally:
    """Each pass's replies compared, Unbound's against dnslab's; and dnslab's warm answers against its
    cold ones where Unbound's did not change."""
    tally = Tally()
    for number, (first, second) in enumerate(rounds, start=1):
        when = f"pass {number}, {'cold' if number == 1 else 'warm'} cache"
        for question in items:
            theirs, ours = first.replies.get(question), second.replies.get(question)
            if theirs is None or ours is None:
                continue
            tally.count += 1
            rule = explain(KNOWN, None, question, theirs, ours)
            if rule is not None:
                tally.explained[rule.reason] += 1
                continue
            for diff in compare(question, theirs, ours, ttls):
                diff.when = when
                tally.diffs.append(diff)
            shared = failure(theirs)
            if shared is not None and shared == failure(ours):
                if question.expect_failure:
                    tally.expected += 1
                else:
                    tally.failures.append(Difference(question, f"both {shared}", [
                        "a matching failure proves nothing: fix the case, or name it in expect-failure.txt"], when))
            if number > 1:
                # The warm answer must be the cold one (TTLs aside), as Unbound's is.
                cold_theirs, cold_ours = rounds[0][0].replies.get(question), rounds[0][1].replies.get(question)
                if (cold_theirs is not None and cold_ours is not None and gist(cold_theirs) == gist(theirs)
                        and gist(cold_ours) != gist(ours)):
                    tally.diffs.append(Difference(question, "dnslab's answer changed from the cache", [
                        f"cold: {cold_ours.rcode}, {flags(cold_ours) if cold_ours.message else '-'}, "
                        f"{summary(cold_ours.message) if cold_ours.message else '-'}",
                        f"warm: {ours.rcode}, {flags(ours) if ours.message else '-'}, "
                        f"{summary(ours.message) if ours.message else '-'}"], when))
    return tally
