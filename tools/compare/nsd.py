"""Compare dnslab's authoritative answers with NSD 4's, from the same zone files.

For every lab server this starts one NSD (``minimal-responses: yes``) that
serves exactly that server's zones on its own loopback address, asks both the
same questions (generated from the zones: every owner name with every type it
has and the common ones, nonexistent children, upper case, names below zone
cuts and wildcards, names outside the served zones, EDNS and header
variations, UDP with and without EDNS, EDNS 512, TCP) and compares the
replies field by field: rcode, opcode, header flags, EDNS, the question as
sent back, and each section as a set of records.  Order within a section is
ignored; owner names are compared case-insensitively (NSD compresses owners
against the question, so they echo the query's spelling).

Each zone folder is a lab of its own, run one after the other: by default the
sample zones (dnslab/zones/) and the comparisons' own hierarchy (tools/compare/zones/:
DNAMEs plain, signed and into a delegated child, AAAA glue, empty
non-terminals, wildcards below a delegation, a 100-record RRset).  A folder
whose lab.toml says `dnssec = true` (or any, with --dnssec) is signed with
fresh keys, NSD serves the signed files, and every EDNS question is also
asked with DO=1.

Every question is asked twice, each time of both servers: the first reply is
built afresh, the second comes from the lab server's ready replies (its fast
path); each pass goes in its own shuffled order (the seed is printed; --seed
repeats a run) and is compared with NSD on its own.  A question that both
leave unanswered agrees but proves nothing: such matching silences are listed
apart and fail the run, unless they are the malformed or odd queries
EXPECTED_SILENCE names.  Prints every difference, then one line:

    compared N queries against NSD 4.x.y: M differences (kind count, ...), F matching silences

Exit status: 0 when there is no difference (deliberate ones, listed in
DELIBERATE below, are reported but not counted), 1 when there is one (or a
matching silence, or an error dnslab logged), 2 when NSD or the lab cannot be run.

    .venv/bin/python scripts/compare-nsd [--zones DIR ...] [--nsd PATH] [--seed N] [--json FILE]
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import socket
import struct
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterable, Iterator

import dns.edns
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype

import dnslab
from dnslab.core.errors import DnslabError
from dnslab.core.zone import Zone
from dnslab.lab.runtime import Lab
from dnslab.testing import LabRunner
from tools.common.procs import Managed
from tools.common.reference import start_nsd
from tools.compare.shared import (FOLDERS, Rule, Tally, child, compare_folders, comparison_parser, explain,
                                  find_server, load_lab, log_problems, new_seed, quiet_when_piped,
                                  report, uninterrupted, upper, work_folder)

T = dns.rdatatype.RdataType
IN, CH, HS, NONE, ANYCLASS = 1, 3, 4, 254, 255
STANDARD_TYPES = (T.A, T.AAAA, T.MX, T.TXT, T.NS, T.SOA, T.DS, T.CNAME, T.ANY)
NSD_NET = "127.0.99."  # NSD instance N listens on 127.0.99.N
TIMEOUT = 2.0  # seconds per attempt; every query is tried twice at most
UDP_WINDOW = 32  # queries in flight per server
BIG = 400  # a reply this large (bytes) is asked again with EDNS 512 and over TCP
HEADER = struct.Struct("!HHHHHH")
FLAG_NAMES = (("QR", 0x8000), ("AA", 0x0400), ("TC", 0x0200), ("RD", 0x0100),
              ("RA", 0x0080), ("Z", 0x0040), ("AD", 0x0020), ("CD", 0x0010))


# --- queries -------------------------------------------------------------------------


@dataclass(frozen=True)
class Probe:
    """One question, sent the same way to NSD and to dnslab."""

    qname: dns.name.Name
    qtype: int
    qclass: int = IN
    tcp: bool = False
    edns: int | None = None  # the advertised UDP size; None: no OPT record
    edns_version: int = 0
    do: bool = False
    flags: int = dns.flags.RD
    opcode: int = dns.opcode.QUERY
    options: tuple[tuple[int, bytes], ...] = ()  # EDNS options
    edns_z: int = 0  # EDNS flag bits other than DO
    mangle: str = ""  # a key of MANGLE: a malformed variant of the query

    def wire(self) -> bytes:
        message = dns.message.make_query(self.qname, self.qtype, self.qclass,
                                         use_edns=self.edns_version if self.edns is not None else False,
                                         payload=self.edns or 0, want_dnssec=self.do,
                                         options=[dns.edns.GenericOption(code, data) for code, data in self.options])
        message.id = 0
        message.flags = self.flags
        message.set_opcode(self.opcode)
        message.ednsflags |= self.edns_z
        wire = message.to_wire()
        return MANGLE[self.mangle](wire) if self.mangle else wire

    def __str__(self) -> str:
        text = f"{self.qname} {dns.rdatatype.to_text(self.qtype)}"
        if self.qclass != IN:
            text += f" class={dns.rdataclass.to_text(self.qclass)}"
        how = ["tcp" if self.tcp else "udp"]
        if self.edns is not None:
            how.append(f"edns={self.edns}" + (f",v{self.edns_version}" if self.edns_version else ""))
        if self.do:
            how.append("do")
        if self.flags != dns.flags.RD:
            how.append("flags=" + (dns.flags.to_text(self.flags).lower().replace(" ", ",") or "none"))
        if self.opcode != dns.opcode.QUERY:
            how.append("opcode=" + dns.opcode.to_text(self.opcode))
        if self.options:
            how.append("options=" + ",".join(str(code) for code, _ in self.options))
        if self.edns_z:
            how.append(f"ednsflags={self.edns_z:#06x}")
        if self.mangle:
            how.append(self.mangle)
        return f"{text} [{' '.join(how)}]"


def _counts(wire: bytes, qd: int, an: int, ns: int, ar: int) -> bytes:
    return wire[:4] + struct.pack("!HHHH", qd, an, ns, ar) + wire[12:]


def _question_end(wire: bytes) -> int:
    return HEADER.size + _question_length(wire)


# Malformed queries, made from a well-formed one (with EDNS where it says so).
MANGLE: dict[str, Callable[[bytes], bytes]] = {
    "two-questions": lambda w: _counts(w[:_question_end(w)], 2, 0, 0, 0) + w[12:_question_end(w)],
    "no-question": lambda w: _counts(w[:12], 0, 0, 0, 0),
    "qdcount-0-with-question": lambda w: _counts(w, 0, *HEADER.unpack_from(w)[3:]),
    "two-opts": lambda w: _counts(w, 1, 0, 0, 2) + w[_question_end(w):],
    "opt-not-root": lambda w: w[:_question_end(w)] + b"\x01x\x00" + w[_question_end(w) + 1:],
    "opt-in-answer": lambda w: _counts(w, 1, 1, 0, 0),
    "trailing-garbage": lambda w: w + b"\x00\x01\x02",
    "cut-question": lambda w: _counts(w[:_question_end(w) - 2], 1, 0, 0, 0),
    "pointer-in-qname": lambda w: w[:12] + b"\xc0\x0c" + w[_question_end(w) - 4:_question_end(w)],
    "answer-count-no-data": lambda w: _counts(w, 1, 1, 0, 0)[:_question_end(w)],
    "rcode-in-query": lambda w: w[:3] + bytes([w[3] | 5]) + w[4:],
    "extra-additional": lambda w: _counts(w, 1, 0, 0, HEADER.unpack_from(w)[5] + 1) + _A_RECORD,
    "soa-in-authority": lambda w: _counts(w[:_question_end(w)], 1, 0, 1, 0) + _SOA_RECORD,
    "only-opt": lambda w: _counts(w[:12], 0, 0, 0, 1) + w[_question_end(w):],
}
_A_RECORD = b"\x00" + struct.pack("!HHIH", 1, 1, 0, 4) + bytes(4)  # . 0 IN A 0.0.0.0
_SOA_RECORD = b"\x00" + struct.pack("!HHIH", 6, 1, 0, 22) + b"\x00\x00" + struct.pack("!IIIII", 1, 0, 0, 0, 0)


class Probes:
    """An ordered set of probes."""

    # With --dnssec every EDNS question is also asked with DO=1 (RRSIGs, NSEC/NSEC3 proofs, DS).
    dnssec_ok_too = False

    def __init__(self) -> None:
        self.items: dict[Probe, None] = {}

    def add(self, name: dns.name.Name, qtypes: Iterable[int], *, plain: bool = True, edns: bool = True,
            **extra: object) -> None:
        for qtype in qtypes:
            if plain:
                self.items.setdefault(Probe(name, qtype, **extra))  # type: ignore[arg-type]
            if edns:
                self.items.setdefault(Probe(name, qtype, edns=1232, **extra))  # type: ignore[arg-type]
                if self.dnssec_ok_too and "do" not in extra:
                    self.items.setdefault(Probe(name, qtype, edns=1232, do=True, **extra))  # type: ignore[arg-type]

    def __iter__(self) -> Iterator[Probe]:
        return iter(self.items)


def generate(zones: list[Zone], rng: random.Random) -> list[Probe]:
    """The UDP questions for one server, derived from the zones it serves."""
    probes = Probes()
    origins = [zone.origin for zone in zones]

    def served(name: dns.name.Name) -> bool:
        return any(name.is_subdomain(origin) for origin in origins)

    def exists(name: dns.name.Name) -> bool:
        return any(zone.exists(name) for zone in zones)

    def fresh(parent: dns.name.Name, prefix: str) -> dns.name.Name:
        while True:
            name = child(parent, f"{prefix}-{rng.randrange(16 ** 6):06x}")
            if not exists(name):
                return name

    def typeset(node: dict[int, object] | None) -> list[int]:
        return list(dict.fromkeys([*sorted(node or {}), *STANDARD_TYPES]))

    for zone in sorted(zones, key=lambda z: z.origin):
        for name in sorted(zone.names):
            node = zone.node(name)
            probes.add(name, typeset(node))
            if name != dns.name.root:
                probes.add(upper(name), [*sorted(node or {}), T.A], plain=False)
            probes.add(fresh(name, "nx"), (T.A, T.TXT, T.DS))
        # Below zone cuts and DNAMEs: one label and two labels down.
        below = sorted(zone.cuts | {name for name, node in zone.nodes.items() if T.DNAME in node})
        for top in below:
            for name in (fresh(top, "www"), fresh(fresh(top, "b"), "a")):
                probes.add(name, (T.A, T.AAAA, T.NS, T.DS, T.SOA, T.ANY, T.CNAME))
        # Wildcards: a random label, and two random labels, below the wildcard's parent.
        for name, node in sorted(zone.nodes.items()):
            if name.labels[0] == b"*":
                parent = name.parent()
                for probe_name in (fresh(parent, "rnd"), fresh(fresh(parent, "rnd"), "rnd")):
                    probes.add(probe_name, typeset(node))
                    probes.add(upper(probe_name), [T.A], plain=False)
        # DNSSEC OK on the three kinds of reply.
        probes.add(zone.origin, (T.SOA,), plain=False, do=True)
        probes.add(fresh(zone.origin, "nx"), (T.A,), plain=False, do=True)
        for cut in sorted(zone.cuts)[:1]:
            probes.add(child(cut, "www"), (T.A,), plain=False, do=True)

    # Names outside every zone served: REFUSED.
    outside = {dns.name.from_text("dnslab-compare.invalid.")}
    for origin in origins:
        if origin != dns.name.root:
            outside.add(origin.parent())
            outside.add(fresh(origin.parent(), "outside"))
    for name in sorted(outside):
        if not served(name):
            probes.add(name, (T.A, T.SOA, T.NS, T.ANY))

    # Header, class, opcode and EDNS variations, on the first zone's apex, a
    # name below a cut (a referral) and a nonexistent name.
    apex = min(origins)
    first = min(zones, key=lambda z: z.origin)
    samples = [apex, fresh(apex, "nx")] + [child(cut, "www") for cut in sorted(first.cuts)[:1]]
    for name in samples:
        for flags in (0, dns.flags.RD | dns.flags.CD, dns.flags.RD | dns.flags.AD,
                      dns.flags.AD | dns.flags.CD):
            probes.add(name, (T.SOA, T.A), flags=flags)
        probes.add(name, (T.A,), plain=False, do=True)
    for size in (0, 100, 511, 4096, 65535):
        probes.items.setdefault(Probe(apex, T.SOA, edns=size))
    probes.items.setdefault(Probe(apex, T.SOA, edns=1232, edns_version=1))
    probes.items.setdefault(Probe(apex, T.SOA, edns=1232, edns_version=1, do=True))
    for qclass in (CH, HS, NONE, ANYCLASS):
        probes.add(apex, (T.SOA, T.A), qclass=qclass)
    # A server's identity (NSID, RFC 5001; CHAOS hostname.bind and friends): NSD and every lab server
    # are given the same identity and version string (run_folder); the lab's own names are checked
    # in tests/test_identity.py and tests/test_anycast.py.
    for name in ("hostname.bind.", "id.server.", "version.bind.", "VERSION.Server.", "other.bind."):
        probes.add(dns.name.from_text(name), (T.TXT, T.ANY, T.A), qclass=CH)
        probes.add(dns.name.from_text(name), (T.TXT,), plain=False, qclass=CH, options=((3, b""),))
    probes.add(dns.name.from_text("hostname.bind."), (T.TXT,), qclass=ANYCLASS)
    for name in samples:
        probes.add(name, (T.SOA, T.A), plain=False, options=((3, b""),))
    probes.items.setdefault(Probe(apex, T.SOA, edns=1232, edns_version=1, options=((3, b""),)))
    for opcode in (dns.opcode.IQUERY, dns.opcode.STATUS, 3, dns.opcode.NOTIFY, dns.opcode.UPDATE, 6, 15):
        probes.add(apex, (T.SOA,), opcode=opcode)
    all_flags = dns.flags.AA | dns.flags.TC | dns.flags.RD | dns.flags.RA | dns.flags.AD | dns.flags.CD | 0x0040
    probes.add(apex, (T.SOA,), flags=all_flags)
    probes.add(apex, (T.SOA,), opcode=dns.opcode.STATUS, flags=all_flags)
    probes.add(apex, (T.SOA,), plain=False, options=((3, b""), (10, bytes(8)), (12, bytes(4)), (65001, b"x")))
    probes.add(apex, (T.SOA,), plain=False, edns_z=0x7FFF)
    for mangle in MANGLE:  # malformed queries
        probes.add(apex, (T.A,), mangle=mangle)
    probes.add(apex, (T.IXFR,), mangle="soa-in-authority")
    probes.add(apex, (T.AXFR, T.IXFR, T.MAILB, T.MAILA, T.OPT, T.TSIG, T.TKEY, 0, 128,
                      T.RRSIG, T.NSEC, T.NSEC3, T.DNSKEY, T.NSEC3PARAM, 65280))
    return list(probes)


def derived(probe: Probe, replies: Iterable["Reply"]) -> list[Probe]:
    """EDNS 512 and TCP for the questions whose replies are big or truncated."""
    replies = list(replies)
    if probe.mangle or probe.opcode != dns.opcode.QUERY:
        return []
    big = any(r.wire is not None and len(r.wire) > BIG for r in replies)
    truncated = any(r.wire is not None and len(r.wire) >= 4 and r.wire[2] & 0x02 for r in replies)
    extra = []
    if probe.edns == 1232 and probe.edns_version == 0 and (big or truncated):
        extra.append(replace(probe, edns=512))
    if big or truncated:
        extra.append(replace(probe, tcp=True))
    return extra


def tcp_baseline(zones: list[Zone]) -> list[Probe]:
    """TCP for every apex's SOA, NS, ANY, AXFR and IXFR, big or not, with and without EDNS."""
    probes = []
    for zone in sorted(zones, key=lambda z: z.origin):
        for qtype in (T.SOA, T.NS, T.ANY):
            probes.append(Probe(zone.origin, qtype, tcp=True))
            probes.append(Probe(zone.origin, qtype, tcp=True, edns=1232))
        probes.append(Probe(child(zone.origin, "nx-tcp"), T.A, tcp=True, edns=1232))
        probes.append(Probe(zone.origin, T.AXFR, tcp=True, edns=1232))
        probes.append(Probe(zone.origin, T.IXFR, tcp=True))
    return probes


# --- exchanging messages ---------------------------------------------------------------


class Stats:
    """How often the network needed a second try, or gave nothing."""

    retried = 0
    unanswered = 0


_sockets: dict[tuple[str, int], socket.socket] = {}
_next_id = itertools.count(random.randrange(65536))


def _question_length(wire: bytes) -> int:
    """The length of the question section of a query built by Probe.wire (no compression)."""
    at = HEADER.size
    while wire[at]:
        at += wire[at] + 1
    return at + 1 + 4 - HEADER.size


def _question(wire: bytes) -> bytes | None:
    """The question a reply should echo, or None for a malformed query."""
    try:
        if HEADER.unpack_from(wire)[2] != 1 or wire[HEADER.size] & 0xC0:
            return None
        return wire[HEADER.size:HEADER.size + _question_length(wire)]
    except (IndexError, struct.error):
        return None


def udp_many(address: tuple[str, int], wires: list[bytes], timeout: float = TIMEOUT) -> list[bytes | None]:
    """Send every query, a window at a time, each tried twice at most.

    One socket per server for the whole run, and IDs from one running
    counter, so that a late reply to an earlier query is never taken for the
    answer to a later one (the question is checked too).
    """
    sock = _sockets.get(address)
    if sock is None:
        sock = _sockets[address] = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    results: list[bytes | None] = [None] * len(wires)
    pending: dict[int, list] = {}  # id -> [index, wire, attempts, deadline, question]
    queue = iter(range(len(wires)))
    exhausted = False
    while True:
        while not exhausted and len(pending) < UDP_WINDOW:
            index = next(queue, None)
            if index is None:
                exhausted = True
                break
            ident = next(_next_id) & 0xFFFF
            while ident in pending:
                ident = next(_next_id) & 0xFFFF
            wire = ident.to_bytes(2, "big") + wires[index][2:]
            sock.sendto(wire, address)
            pending[ident] = [index, wire, 1, time.monotonic() + timeout, _question(wire)]
        if not pending:
            return results
        sock.settimeout(max(0.001, min(entry[3] for entry in pending.values()) - time.monotonic()))
        try:
            data, source = sock.recvfrom(65535)
        except (socket.timeout, BlockingIOError, ConnectionRefusedError):
            now = time.monotonic()
            for ident, entry in list(pending.items()):
                if entry[3] <= now:
                    if entry[2] < 2:
                        Stats.retried += 1
                        sock.sendto(entry[1], address)
                        entry[2], entry[3] = 2, now + timeout
                    else:
                        Stats.unanswered += 1
                        del pending[ident]
            continue
        if source != address or len(data) < HEADER.size:
            continue
        entry = pending.get(int.from_bytes(data[:2], "big"))
        if entry is None:
            continue
        question = entry[4]
        if question and HEADER.unpack_from(data)[2] and data[12:12 + len(question)] != question:
            continue  # same ID, other question: not ours
        del pending[int.from_bytes(data[:2], "big")]
        results[entry[0]] = data


def close_sockets() -> None:
    for sock in _sockets.values():
        sock.close()
    _sockets.clear()


def tcp_many(address: tuple[str, int], wires: list[bytes], timeout: float = TIMEOUT) -> list[bytes | None]:
    """One connection, queries one after another; reconnect and retry once on trouble."""
    results: list[bytes | None] = []
    sock: socket.socket | None = None
    try:
        for wire in wires:
            wire = (next(_next_id) & 0xFFFF).to_bytes(2, "big") + wire[2:]
            reply = None
            for _ in range(2):
                try:
                    if sock is None:
                        sock = socket.create_connection(address, timeout=timeout)
                    sock.sendall(struct.pack("!H", len(wire)) + wire)
                    (length,) = struct.unpack("!H", _read(sock, 2))
                    reply = _read(sock, length)
                    break
                except OSError:
                    Stats.retried += 1
                    if sock is not None:
                        sock.close()
                    sock = None
            if reply is None:
                Stats.unanswered += 1
            results.append(reply)
    finally:
        if sock is not None:
            sock.close()
    return results


def _read(sock: socket.socket, count: int) -> bytes:
    data = b""
    while len(data) < count:
        more = sock.recv(count - len(data))
        if not more:
            raise ConnectionResetError("connection closed")
        data += more
    return data


def exchange(address: tuple[str, int], probes: list[Probe]) -> list[bytes | None]:
    replies: dict[Probe, bytes | None] = {}
    udp = [p for p in probes if not p.tcp]
    tcp = [p for p in probes if p.tcp]
    replies.update(zip(udp, udp_many(address, [p.wire() for p in udp])))
    replies.update(zip(tcp, tcp_many(address, [p.wire() for p in tcp])))
    return [replies[p] for p in probes]


# --- replies -----------------------------------------------------------------------------


SECTIONS = ("answer", "authority", "additional")


@dataclass
class Reply:
    """A reply reduced to the fields compared."""

    wire: bytes | None
    fields: dict[str, object] = field(default_factory=dict)

    @classmethod
    def read(cls, wire: bytes | None) -> "Reply":
        if wire is None:
            return cls(None, {"reply": "no reply"})
        # Servers with the same zones send byte-identical replies: parse once.
        fields = _parsed.get(wire[2:])
        if fields is None:
            fields = _parsed[wire[2:]] = cls._fields(wire)
        return cls(wire, fields)

    @staticmethod
    def _fields(wire: bytes) -> dict[str, object]:
        fields: dict[str, object] = {"reply": "reply"}
        if len(wire) >= HEADER.size:
            _, flags, *counts = HEADER.unpack_from(wire)
            fields["flags"] = " ".join(name for name, bit in FLAG_NAMES if flags & bit) or "-"
            fields["counts"] = "qd={} an={} ns={} ar={}".format(*counts)
        try:
            message = dns.message.from_wire(wire)
        except Exception as exc:  # noqa: BLE001 - any unreadable reply is a finding
            fields["reply"] = f"unparsable ({type(exc).__name__}: {exc})"
            return fields
        fields["opcode"] = dns.opcode.to_text(message.opcode())
        fields["rcode"] = dns.rcode.to_text(message.rcode())
        fields["question"] = " ".join(f"{q.name} {dns.rdataclass.to_text(q.rdclass)} "
                                      f"{dns.rdatatype.to_text(q.rdtype)}" for q in message.question) or "-"
        if message.edns < 0:
            fields["edns"] = "none"
        else:
            options = ",".join(f"{int(o.otype)}:{o.to_wire().hex()}" for o in message.options)
            other = message.ednsflags & ~dns.flags.DO & 0xFFFF
            fields["edns"] = (f"v{message.edns} payload={message.payload} do={int(bool(message.ednsflags & dns.flags.DO))}"
                              + (f" flags={other:#06x}" if other else "") + (f" options={options}" if options else ""))
        for name in SECTIONS:
            fields[name] = Counter(
                (rrset.name.to_text().lower(), rrset.ttl, dns.rdataclass.to_text(rrset.rdclass),
                 dns.rdatatype.to_text(rrset.rdtype), rdata.to_text())
                for rrset in getattr(message, name) for rdata in rrset
            )
        return fields


_parsed: dict[bytes, dict[str, object]] = {}


def show(value: object) -> str:
    if isinstance(value, Counter):
        return "; ".join(" ".join(map(str, rr)) for rr in sorted(value)) or "(empty)"
    return str(value)


@dataclass(frozen=True)
class Difference:
    server: str
    probe: Probe
    kind: str
    nsd: object
    dnslab: object
    when: str = ""  # "asked again" for the second pass

    def __str__(self) -> str:
        where = f"{self.server}  {self.probe}{' (' + self.when + ')' if self.when else ''}: {self.kind}"
        if isinstance(self.nsd, Counter) and isinstance(self.dnslab, Counter):
            only_nsd, only_lab = self.nsd - self.dnslab, self.dnslab - self.nsd
            parts = []
            if only_nsd:
                parts.append(f"NSD only: {_clip(show(only_nsd))}")
            if only_lab:
                parts.append(f"dnslab only: {_clip(show(only_lab))}")
            return f"{where}: {' | '.join(parts)}"
        return f"{where}: NSD {_clip(show(self.nsd))!r}, dnslab {_clip(show(self.dnslab))!r}"

    def as_json(self) -> dict[str, object]:
        return {"server": self.server, "query": str(self.probe), "kind": self.kind,
                "nsd": show(self.nsd), "dnslab": show(self.dnslab), "when": self.when}


def _clip(text: str, width: int = 300) -> str:
    return text if len(text) <= width else text[:width - 3] + "..."


COMPARED = ("reply", "opcode", "rcode", "flags", "question", "edns", *SECTIONS)


def compare(server: str, probe: Probe, nsd: Reply, lab: Reply) -> list[Difference]:
    found = [Difference(server, probe, kind, nsd.fields.get(kind), lab.fields.get(kind))
             for kind in COMPARED if nsd.fields.get(kind) != lab.fields.get(kind)]
    # The header counts say nothing new unless everything else agrees (duplicates).
    if not found and nsd.fields.get("counts") != lab.fields.get("counts"):
        found.append(Difference(server, probe, "counts", nsd.fields.get("counts"), lab.fields.get("counts")))
    return found


# --- deliberate differences ------------------------------------------------------------


def _any_single_rrset(probe: Probe, nsd: Reply, lab: Reply) -> bool:
    """NSD's ANY answer is one of the RRsets in dnslab's (every RRset at the name)."""
    ours, theirs = lab.fields.get("answer"), nsd.fields.get("answer")
    if probe.qtype != T.ANY or not isinstance(ours, Counter) or not isinstance(theirs, Counter):
        return False
    # With DO=1 NSD's one RRset comes with its RRSIGs.
    return bool(theirs) and len({(rr[0], rr[3]) for rr in theirs if rr[3] != "RRSIG"}) == 1 and not theirs - ours


def _any_truncated(probe: Probe, nsd: Reply, lab: Reply) -> bool:
    """dnslab's ANY answer (every RRset) does not fit where NSD's single RRset does."""
    flags = str(nsd.fields.get("flags", "")).split()
    return probe.qtype == T.ANY and "TC" not in flags and \
        sorted(flags + ["TC"], key=_FLAG_ORDER.index) == str(lab.fields.get("flags", "")).split()


def _question_kept(probe: Probe, nsd: Reply, lab: Reply) -> bool:
    """NSD drops the question when refusing a class other than IN, CH and ANY."""
    return probe.qclass not in (IN, CH, ANYCLASS) and nsd.fields.get("question") == "-"


def _glue_truncated(probe: Probe, nsd: Reply, lab: Reply) -> bool:
    """A referral that dnslab marks TC=1 because not all glue fits, with the same sections as NSD's."""
    flags = str(nsd.fields.get("flags", "")).split()
    authority = nsd.fields.get("authority")
    return ("AA" not in flags and "TC" not in flags
            and sorted(flags + ["TC"], key=_FLAG_ORDER.index) == str(lab.fields.get("flags", "")).split()
            and isinstance(authority, Counter) and any(rr[3] == "NS" for rr in authority)
            and all(nsd.fields.get(kind) == lab.fields.get(kind) for kind in SECTIONS))


def _spelling(probe: Probe, nsd: Reply, lab: Reply) -> bool:
    """The same records but for the case of names inside RDATA."""
    return all(_lower(nsd.fields.get(kind)) == _lower(lab.fields.get(kind)) for kind in SECTIONS)


def _lower(section: object) -> object:
    if not isinstance(section, Counter):
        return section
    return Counter({rr[:4] + (rr[4].lower(),): n for rr, n in section.items()})


_FLAG_ORDER = [name for name, _ in FLAG_NAMES]


def _notimp_flags(probe: Probe, nsd: Reply, lab: Reply) -> bool:
    """NOTIMP for an opcode we do not implement: NSD echoes the query's flags, dnslab only RD."""
    return nsd.fields.get("rcode") == lab.fields.get("rcode") == "NOTIMP" and \
        lab.fields.get("flags") == ("QR RD" if probe.flags & dns.flags.RD else "QR")


def _formerr_rd(probe: Probe, nsd: Reply, lab: Reply) -> bool:
    """FORMERR for a QDCOUNT other than 1: NSD clears RD."""
    return nsd.fields.get("rcode") == lab.fields.get("rcode") == "FORMERR" and \
        nsd.fields.get("flags") == "QR" and lab.fields.get("flags") == "QR RD"


def _qdcount_zero(probe: Probe, nsd: Reply, lab: Reply) -> bool:
    return probe.mangle == "only-opt" and lab.fields.get("rcode") == "FORMERR"


def _dname_nxdomain_proof(probe: Probe, nsd: Reply, lab: Reply) -> bool:
    """NXDOMAIN after a DNAME, same answer: dnslab's authority has the NSEC covering the synthesised target."""
    answer = nsd.fields.get("answer")
    return (nsd.fields.get("rcode") == lab.fields.get("rcode") == "NXDOMAIN" and answer == lab.fields.get("answer")
            and isinstance(answer, Counter) and any(rr[3] == "DNAME" for rr in answer)
            and any(rr[3] == "NSEC" for rr in lab.fields.get("authority") or ()))  # type: ignore[union-attr]


def _update_refused(probe: Probe, nsd: Reply, lab: Reply) -> bool:
    """An unsigned UPDATE: dnslab refuses it (it takes signed ones), NSD implements no UPDATE."""
    return probe.opcode == dns.opcode.UPDATE and nsd.fields.get("rcode") == "NOTIMP" \
        and lab.fields.get("rcode") == "REFUSED"


def _zone_operation_question(probe: Probe, nsd: Reply, lab: Reply) -> bool:
    """A refused NOTIFY or UPDATE: dnslab keeps the question (the zone section), NSD sends none."""
    return probe.opcode in (dns.opcode.NOTIFY, dns.opcode.UPDATE) and nsd.fields.get("question") == "-" \
        and lab.fields.get("rcode") in ("REFUSED", nsd.fields.get("rcode"))


# Differences dnslab keeps on purpose (kind, reason, applies(probe, nsd, lab)): reported, not counted.
DELIBERATE: list[Rule] = [
    # Replies to requests that are malformed or not queries.
    Rule("flags", "NOTIMP copies only RD: AA, TC and RA are the responder's to set (RFC 1035 §4.1.1), "
               "CD is cleared (RFC 4035 §3.1.6); NSD echoes the query's flags", _notimp_flags),
    Rule("flags", "FORMERR for QDCOUNT other than 1 copies RD, as every reply does (RFC 1035 §4.1.1); "
               "NSD clears it", _formerr_rd),
    Rule("rcode", "a query without a question is FORMERR: QDCOUNT 0 is for DNS COOKIE "
               "probes (RFC 7873 §5.4), which dnslab does not implement; NSD 4.6 says NOERROR", _qdcount_zero),
    Rule("edns", "(as above: QDCOUNT 0)", _qdcount_zero),
    # Answers.
    Rule("answer", "ANY returns every RRset at the name (RFC 1034 §4.3.2); NSD picks one, "
               "which RFC 8482 §4.1 permits but does not require", _any_single_rrset),
    Rule("flags", "(as above: every RRset of an ANY answer may not fit where NSD's one does)", _any_truncated),
    Rule("authority", "(as above: a truncated ANY answer ends before the authority section, "
               "where NSD's one RRset leaves room for a wildcard's NSEC proof)", _any_truncated),
    Rule("question", "a refused class other than IN/CH keeps its question, which resolvers "
               "match replies by (RFC 5452 §9.1); NSD sends none", _question_kept),
    Rule("counts", "(the question kept above counts in QDCOUNT)", _question_kept),
    Rule("flags", "a referral that cannot carry all its in-domain glue sets TC (RFC 9471 §2.1); "
               "NSD 4.6 does only when no A glue fits", _glue_truncated),
    Rule("answer", "names inside RDATA are sent as the zone file spells them (RFC 4343 §4.1); "
               "NSD uses the spelling of the name's first appearance", _spelling),
    Rule("authority", "(as above: spelling of names inside RDATA)", _spelling),
    Rule("additional", "(as above: spelling of names inside RDATA)", _spelling),
    Rule("authority", "NXDOMAIN for a DNAME's target: dnslab's proof has the NSEC covering the target "
               "name (RFC 4035 §3.1.3.2; Unbound validates it), NSD 4.6 only the one denying the wildcard",
               _dname_nxdomain_proof),
    Rule("rcode", "an unsigned UPDATE is REFUSED: dnslab applies TSIG-signed dynamic updates (RFC 2136, "
               "as BIND with allow-update { key K; }); NSD implements no UPDATE (NOTIMP)", _update_refused),
    Rule("question", "a refused NOTIFY or UPDATE keeps its question (the zone section), as every dnslab "
                  "error reply does; NSD sends none", _zone_operation_question),
    Rule("counts", "(the question kept above counts in QDCOUNT)", _zone_operation_question),
]


def expected_silence(probe: Probe) -> bool:
    """Queries a server may rightly leave unanswered: malformed ones, and opcodes it does not serve."""
    return bool(probe.mangle) or probe.opcode != dns.opcode.QUERY




# --- NSD and the lab -----------------------------------------------------------------------

TOOL = "compare-nsd"
IDENTITY = "nsd.compare.invalid"
VERSION = f"dnslab {dnslab.__version__}"  # NSD says what dnslab says: the version is compared exactly
NSD_NET = "127.0.99."  # NSD instance N listens on 127.0.99.N
NSD_OPTIONS = [
    "  server-count: 1",
    "  verbosity: 1",
    "  minimal-responses: yes",
    "  refuse-any: no",
    # Response rate limiting would drop or truncate (TC=1) our bursts of queries.
    "  rrl-ratelimit: 0",
    "  rrl-whitelist-ratelimit: 0",
    # The identity every lab server is given too for the comparison (run_folder).
    f'  identity: "{IDENTITY}"',
    f'  nsid: "ascii_{IDENTITY}"',
    f'  version: "{VERSION}"',
]


@dataclass
class Group:
    """Lab servers with the same zones, and the one NSD that serves those zones."""

    zones: list[Zone]
    servers: list[str]
    nsd: Managed | None = None
    address: tuple[str, int] = ("", 0)


def groups_of(lab: Lab) -> list[Group]:
    """The lab's servers grouped by the zone files they serve."""
    groups: dict[tuple[str, ...], Group] = {}
    for running in lab.servers:
        zones = sorted(running.plan.zones, key=lambda z: z.origin)
        key = tuple(str(Path(zone.filename).resolve()) for zone in zones)
        groups.setdefault(key, Group(zones, [])).servers.append(running.plan.address)
    return list(groups.values())


def write_signed(folder: Path, zones: list[Zone]) -> dict[dns.name.Name, Path]:
    """The lab's signed zones as master files, for NSD to serve the very same records and signatures."""
    from dnslab.dnssec.signing import zone_text

    folder.mkdir(parents=True, exist_ok=True)
    files = {}
    for zone in zones:
        path = folder / f"{'root.' if zone.origin == dns.name.root else zone.origin.to_text()}zone"
        path.write_text(zone_text(zone), encoding="utf-8")
        files[zone.origin] = path
    return files


def host(index: int) -> str:
    return f"{NSD_NET}{index}" if index < 255 else f"127.1.{99 + index // 255}.{index % 255}"


def start_nsds(binary: str, workdir: Path, groups: list[Group], zones_dir: Path,
               files: dict[dns.name.Name, Path]) -> None:
    """One NSD per group (serving *files* instead of the zones' own where given: the signed ones), started
    side by side, since each takes a while to load; RuntimeError once all have tried if one failed."""
    # NSD resolves a relative $INCLUDE against zonesdir; dnslab against the including file's folder,
    # which is the zones folder for top-level files.
    options = [f'  zonesdir: "{zones_dir}"', *NSD_OPTIONS]

    def start(index: int, group: Group) -> None:
        zones = [(zone.origin.to_text(), files.get(zone.origin, Path(zone.filename)).resolve()) for zone in group.zones]
        group.nsd, group.address = start_nsd(binary, workdir / f"nsd{index}", host(index), zones, options)

    with ThreadPoolExecutor(max_workers=8) as pool:
        started = [pool.submit(start, index, group) for index, group in enumerate(groups, start=1)]
    for future in started:
        future.result()


# --- main -----------------------------------------------------------------------------------


@quiet_when_piped
def main(argv: list[str] | None = None) -> int:
    parser = comparison_parser(__doc__, "NSD", "nsd", "NSD's configuration and logs")
    parser.add_argument("--max-queries", type=int, default=40000,
                        help="at most this many comparisons per folder, both passes together (default: 40000)")
    parser.add_argument("--seed", type=int, default=None,
                        help="seed for the random labels and the order of the questions (default: a new one, printed)")
    parser.add_argument("--json", type=Path, help="also write every difference to this file as JSON")
    parser.add_argument("--dnssec", action="store_true",
                        help="sign every folder's zones as `dnslab up --dnssec` does (fresh keys), give NSD the "
                             "signed files dnslab writes, and ask every EDNS question with DO=1 too "
                             "(a folder whose lab.toml says dnssec = true is signed anyway)")
    parser.add_argument("--nsec3", action="store_true", help="with --dnssec: NSEC3 instead of NSEC")
    args = parser.parse_args(argv)
    args.seed = new_seed(args.seed)
    found = find_server(TOOL, "NSD", "nsd", args.nsd, "-v", r"NSD version (\S+)")
    if found is None:
        return 2
    binary, nsd_version = found
    print(f"random labels and question order from seed {args.seed} (--seed {args.seed} repeats them)", flush=True)
    total = compare_folders(TOOL, args.zones or FOLDERS, lambda folder: run_folder(folder, args, binary))
    if isinstance(total, int):
        return total
    report(total, args.show, "matching silences (neither server answered; not a malformed query, so not expected):",
           "deliberate differences (not counted)")
    if args.json:
        args.json.write_text(json.dumps([d.as_json() for d in total.diffs + total.failures], indent=1) + "\n",
                             encoding="utf-8")
    if Stats.retried or Stats.unanswered:
        print(f"note: {Stats.retried} queries were sent twice, {Stats.unanswered} got no reply at all")
    kinds = Counter(diff.kind for diff in total.diffs)
    detail = f" ({', '.join(f'{kind} {n}' for kind, n in kinds.most_common())})" if kinds else ""
    print(f"compared {total.count} queries against NSD {nsd_version} (seed {args.seed}): {len(total.diffs)} differences"
          f"{detail}, {len(total.failures)} matching silences")
    return total.status()


def run_folder(folder: Path, args: argparse.Namespace, binary: str) -> Tally | None:
    """One folder's lab against NSD; None when it cannot be run (said on stderr)."""
    with work_folder("compare-nsd-", args.keep, "NSD configurations and logs") as workdir:
        signing = {"dnssec": True, "nsec3": args.nsec3} if args.dnssec else {}
        lab = load_lab(TOOL, folder, 0, workdir / "keys", **signing)
        if lab is None:
            return None
        started = time.monotonic()
        Probes.dnssec_ok_too = lab.dnssec
        for running in lab.servers:  # compare every server, also those lab.toml starts down
            running.faulty.apply("clear")
            running.server.ops.transfer_acl = ()  # no transfers, as NSD without provide-xfr
            # Every lab server names itself as NSD is told to (NSID, hostname.bind): the replies, sizes
            # and truncation included, can then be the same byte for byte.  An anycast address is
            # asked without its sites: answers are compared, not distance.
            running.server.identity = IDENTITY
            if running.router is not None:
                running.faulty.inner = running.router.answer  # type: ignore[assignment]
            # Steered names (lab.toml [steering]) answer by policy; without it, their zone's own RRsets,
            # which is what NSD serves: the zone is compared as written.
            running.server.steering = None
        groups = groups_of(lab)
        runner = LabRunner(lab)
        try:
            files: dict[dns.name.Name, Path] = {}
            for group in groups if lab.dnssec else []:
                files.update(write_signed(workdir / "signed", group.zones))
            start_nsds(binary, workdir, groups, folder.resolve(), files)
            runner.start()
            tally = run(lab, groups, args)
        except (RuntimeError, DnslabError, OSError) as exc:
            print(f"{TOOL}: {exc}", file=sys.stderr)
            return None
        finally:
            with uninterrupted():
                close_sockets()
                for group in groups:
                    if group.nsd is not None:
                        group.nsd.stop()
                runner.stop()
            for index, group in enumerate(groups, start=1):
                for line in log_problems(workdir / f"nsd{index}" / "nsd.log", ignore="signal received"):
                    print(f"note: NSD on {host(index)}: {line}")
    print(f"{folder}: {len(lab.servers)} lab servers against {len(groups)} NSD instances"
          + (" (signed)" if lab.dnssec else "") + f", {tally.count} comparisons, {len(tally.diffs)} differences, "
          f"{time.monotonic() - started:.1f} s", flush=True)
    return tally


def run(lab: Lab, groups: list[Group], args: argparse.Namespace) -> Tally:
    """Ask every group's NSD and lab servers the same questions twice; at most args.max_queries comparisons."""
    port = lab.actual_port
    rng = random.Random(args.seed)
    plans = [generate(group.zones, rng) for group in groups]
    total = 2 * sum(len(probes) * len(group.servers) for probes, group in zip(plans, groups))
    # Four fifths of the budget for the generated questions, the rest for
    # asking the big answers again (EDNS 512, TCP), shared in proportion.
    budget = args.max_queries
    if total > budget * 4 // 5:
        share = budget * 4 // 5 / total
        plans = [[p[i] for i in sorted(rng.sample(range(len(p)), int(len(p) * share)))] for p in plans]
        print(f"note: {total} comparisons generated; a sample of {budget * 4 // 5} is used (--max-queries)")
    planned = 2 * sum(len(probes) * len(group.servers) for probes, group in zip(plans, groups))
    tally = Tally()

    def compare_all(group: Group, probes: list[Probe]) -> dict[Probe, list[Reply]]:
        seen: dict[Probe, list[Reply]] = {p: [] for p in probes}
        for when in ("", "asked again"):
            order = list(probes)
            rng.shuffle(order)
            nsd_replies = [Reply.read(w) for w in exchange(group.address, order)]
            for probe, reply in zip(order, nsd_replies):
                seen[probe].append(reply)
            for server in group.servers:
                lab_replies = [Reply.read(w) for w in exchange((server, port), order)]
                for probe, nsd_reply, lab_reply in zip(order, nsd_replies, lab_replies):
                    seen[probe].append(lab_reply)
                    tally.count += 1
                    if nsd_reply.wire is None and lab_reply.wire is None and not expected_silence(probe):
                        tally.failures.append(Difference(server, probe, "both silent", "no reply", "no reply", when))
                    for diff in compare(server, probe, nsd_reply, lab_reply):
                        diff = replace(diff, when=when)
                        known = explain(DELIBERATE, diff.kind, probe, nsd_reply, lab_reply)
                        if known is not None:
                            tally.explained[f"{diff.kind}: {known.reason}"] += 1
                        else:
                            tally.diffs.append(diff)
        return seen

    for group, probes in zip(groups, plans):
        seen = compare_all(group, probes)
        more = list(dict.fromkeys(
            itertools.chain(tcp_baseline(group.zones),
                            (extra for probe, replies in seen.items() for extra in derived(probe, replies)))))
        more = [p for p in more if p not in seen]
        room = max(0, budget - planned) * len(probes) // max(1, 2 * planned)  # probes, each asked twice of every server
        compare_all(group, more[:room])
    return tally
