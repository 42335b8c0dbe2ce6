#!/usr/bin/env python3
"""Reliability and security checks of dnslab: each subcommand measures one thing and prints its figures.

Every check runs on loopback only (127.0.0.0/8), bounds every loop in count and
time, and stops everything it starts (its lab runs in a child process that it
ends with SIGTERM, and kills if that does not work).  Exit code 0 when every
figure is as it should be, 1 otherwise.  docs/RELIABILITY.md lists the figures
measured and what each shows.

    .venv/bin/python scripts/reliability-check fuzz [--count 1000000]
    .venv/bin/python scripts/reliability-check spoof [--forged 100000]
    .venv/bin/python scripts/reliability-check poison
    .venv/bin/python scripts/reliability-check limits
    .venv/bin/python scripts/reliability-check storm
    .venv/bin/python scripts/reliability-check soak [--duration 600]
    .venv/bin/python scripts/reliability-check open-resolver
    .venv/bin/python scripts/reliability-check zone-fuzz [--count 2000]

The lab a check attacks runs in a child process (`python -m tools.reliability _host`),
which starts dnslab's Lab exactly as `dnslab up` does, counts every log record
of level ERROR and above (and every record carrying an exception), and reports
its RSS, open file descriptors and asyncio task count.  tests/test_reliability.py
imports the scenario builders (poisoning, loops and limits) from this file.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import logging
import os
import random
import re
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.query
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from dnslab.resolution.options import resolver_settings
from dnslab.lab.control import ControlClient, LabState, state_path as state_file
from dnslab.core.fastpath import AnswerCache, ReplyCache
from dnslab.lab.runner import RunOptions, Runner
from dnslab.lab.runtime import Lab, LabSettings, dnssec_settings
from dnslab.services.workers import run_async
from dnslab.lab.hierarchy import derive_hierarchy, zone_files
from dnslab.core.zone import load_zone_text, load_zones
from tools.common.asking import addresses, ask, ask_retrying, rcode_text
from tools.common.lab import REPO, SAMPLE_ZONES, Dnslab
from tools.common.logcount import CountingHandler, kinds_text
from tools.common.net import udp_drops
from tools.common.procs import process_snapshot, stop_process
from tools.common.report import sayer

HEADER = struct.Struct("!HHHHHH")
EPHEMERAL = (32768, 60999)  # Linux's default ip_local_port_range; read from /proc when there


say = sayer()


# =====================================================================================
# The lab in a child process
# =====================================================================================


def print_log_kinds(log: dict[str, Any], tracebacks: bool = True) -> None:
    """The distinct errors a lab logged, each with its count and its first traceback."""
    if log.get("kinds"):
        say(kinds_text(log, tracebacks))



def cmd_host(args: argparse.Namespace) -> int:
    """Run a lab (servers and resolver) until SIGTERM, reporting on stdout as JSON lines."""
    counter = CountingHandler()
    root = logging.getLogger()
    root.setLevel(logging.DEBUG if args.debug else logging.INFO)
    root.addHandler(counter)
    stream = logging.StreamHandler(sys.stderr)
    stream.setLevel(logging.DEBUG if args.debug else logging.WARNING)
    stream.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s: %(message)s"))
    root.addHandler(stream)

    if args.cap_fast_path is not None:
        # Diagnosis only: bound the wire-level reply caches (dnslab.core.fastpath) as an operator's
        # cache_size bounds the RRset cache, to see whether they account for memory growth.
        for cls in (ReplyCache, AnswerCache):
            original = cls.__init__

            def capped(self: Any, *a: Any, _original: Any = original, **k: Any) -> None:
                _original(self, *a, **k)
                self.max_entries = args.cap_fast_path
            cls.__init__ = capped  # type: ignore[method-assign]
    snapshots: list[Any] = []
    if args.tracemalloc:
        # Diagnosis only (it costs CPU and memory of its own): every SIGUSR1 takes a snapshot,
        # and from the second one on the growth since the first is reported, largest first.
        import tracemalloc
        tracemalloc.start(args.tracemalloc)
    zones_dir = Path(args.zones)
    settings = LabSettings.load(zones_dir / "lab.toml")
    values = {}
    for item in args.set or []:
        key, _, text = item.partition("=")
        values[key] = tomllib.loads(f"v = {text}")["v"]
    resolver = resolver_settings(values, "--set", base=settings.resolver) if values else settings.resolver
    zones, _ = load_zones(zone_files(zones_dir))
    start_down = settings.start_down if args.start_down is None else [s for s in args.start_down.split(",") if s]
    signing = None
    if args.dnssec:
        signing = dnssec_settings(settings, zones_dir, True, None, Path(args.state) / "keys")
    lab = Lab(zones, port=0, start_down=start_down, resolver_address=settings.resolver_address,
              resolver_settings=resolver, dnssec=signing or False)
    lab.zones_dir = zones_dir

    def emit(kind: str, payload: dict[str, Any]) -> None:
        sys.stdout.write(f"{kind} {json.dumps(payload, default=str)}\n")
        sys.stdout.flush()

    lag = {"max": 0.0, "over_50ms": 0, "samples": 0}

    async def sample_lag() -> None:
        """How late the event loop runs a 20 ms timer: time every handler in this process waits."""
        loop = asyncio.get_running_loop()
        while True:
            start = loop.time()
            await asyncio.sleep(0.02)
            late = loop.time() - start - 0.02
            lag["max"] = max(lag["max"], late)
            lag["over_50ms"] += late > 0.05
            lag["samples"] += 1

    def snapshot() -> dict[str, Any]:
        data = process_snapshot()
        try:  # the main thread's CPU time and time spent runnable but waiting for a CPU (ns)
            cpu_ns, wait_ns, _ = (int(x) for x in Path("/proc/thread-self/schedstat").read_text().split())
            data["cpu_s"], data["runqueue_wait_s"] = cpu_ns / 1e9, wait_ns / 1e9
        except (OSError, ValueError):
            pass
        data["loop_lag_max_ms"] = round(lag["max"] * 1000, 1)
        data["loop_lag_over_50ms"] = lag["over_50ms"]
        data["loop_lag_samples"] = lag["samples"]
        lag.update(max=0.0, over_50ms=0, samples=0)
        data["tasks"] = len(asyncio.all_tasks())
        data["t"] = round(time.monotonic(), 3)
        data["log"] = counter.summary()
        if lab.resolver is not None:
            data["cache_entries"] = len(lab.resolver.cache)
            fast = getattr(lab.resolver, "fast", None)  # the wire-level fast path, where there is one
            if fast is not None:
                data["resolver_fast_entries"] = len(fast)
        replies = [getattr(r.server, "replies", None) for r in lab.servers]
        if any(cache is not None for cache in replies):
            data["server_fast_entries"] = sum(len(cache) for cache in replies if cache is not None)
            # each server's reply cache: entries and bound, so a check can tell when they are all full
            data["server_fast"] = {r.plan.address: [len(r.server.replies), r.server.replies.max_entries]
                                   for r in lab.servers if getattr(r.server, "replies", None) is not None}
            if fast is not None:
                data["resolver_fast_bound"] = fast.max_entries
        counters = {r.plan.address: [r.faulty.counted_questions, r.faulty.max_questions] for r in lab.servers
                    if hasattr(getattr(r, "faulty", None), "counted_questions")}
        if counters:  # each server's query counter (dnslab.lab.faults): questions counted one by one, and bound
            data["server_counted"] = counters
            data["upstream_queries"] = lab.resolver.stats.upstream_queries
            data["client_queries"] = lab.resolver.stats.queries
        if args.gc:
            data["gc_objects"] = len(gc.get_objects())
        return data

    def memory_growth() -> None:
        import tracemalloc
        snapshots.append(tracemalloc.take_snapshot().filter_traces(
            [tracemalloc.Filter(False, tracemalloc.__file__)]))
        if len(snapshots) < 2:
            emit("TRACEMALLOC", {"baseline": True, "traced_kb": tracemalloc.get_traced_memory()[0] // 1024})
            return
        stats = snapshots[-1].compare_to(snapshots[0], "traceback")
        emit("TRACEMALLOC", {
            "traced_kb": tracemalloc.get_traced_memory()[0] // 1024,
            "growth_kb": sum(s.size_diff for s in stats) // 1024,
            "top": [{"kb": round(s.size_diff / 1024, 1), "count": s.count_diff,
                     "where": [f"{Path(f.filename).name}:{f.lineno}" for f in s.traceback]}
                    for s in sorted(stats, key=lambda s: -abs(s.size_diff))[:25]]})

    # Started and stopped as `dnslab up` does it (the same runner), its state file lab-PORT.json in --state.
    runner = Runner(lab, RunOptions(state_dir=Path(args.state)))

    async def run() -> None:
        await runner.start()
        if args.tracemalloc:
            asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, memory_growth)
        state_path = state_file(lab.actual_port, Path(args.state))
        stopped = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stopped.set)
        emit("READY", {"port": lab.actual_port, "resolver": lab.resolver_address, "pid": os.getpid(),
                       "loop": type(asyncio.get_running_loop()).__module__,
                       "state": str(state_path),
                       "servers": [{"address": r.plan.address, "names": [n.to_text() for n in r.plan.names],
                                    "zones": [z.origin.to_text() for z in r.plan.zones]} for r in lab.servers]})
        sampler = asyncio.ensure_future(sample_lag())
        try:
            while not stopped.is_set():
                try:
                    await asyncio.wait_for(stopped.wait(), args.monitor_every)
                except asyncio.TimeoutError:
                    emit("MONITOR", snapshot())
        finally:
            sampler.cancel()
            final = snapshot()
            await runner.stop()
            final["tasks_after_stop"] = len(asyncio.all_tasks())
            emit("FINAL", final)

    # The event loop `dnslab up` runs on (uvloop when it is installed), unless told otherwise.
    if args.loop == "uvloop":
        import uvloop
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as plain:
            plain.run(run())
    elif args.loop == "auto":
        run_async(run())
    else:
        asyncio.run(run())
    return 0


class HostedLab:
    """A lab in a child process; always stopped by `stop()` or the context manager."""

    def __init__(self, zones: Path = SAMPLE_ZONES, sets: dict[str, Any] | None = None,
                 start_down: list[str] | None = None, monitor_every: float = 5.0, gc_count: bool = False,
                 workdir: Path | None = None, debug: bool = False, cap_fast_path: int | None = None,
                 tracemalloc_frames: int = 0, dnssec: bool = False) -> None:
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="dnslab-reliability-"))
        self.zones = zones
        self.command = [sys.executable, "-m", "tools.reliability", "_host", "--zones", str(zones),
                        "--state", str(self.workdir), "--monitor-every", str(monitor_every)]
        for key, value in (sets or {}).items():
            literal = json.dumps(value) if not isinstance(value, bool) else str(value).lower()
            self.command += ["--set", f"{key}={literal}"]
        if start_down is not None:
            self.command += ["--start-down", ",".join(start_down)]
        if gc_count:
            self.command.append("--gc")
        if debug:
            self.command.append("--debug")
        if cap_fast_path is not None:
            self.command += ["--cap-fast-path", str(cap_fast_path)]
        if tracemalloc_frames:
            self.command += ["--tracemalloc", str(tracemalloc_frames)]
        if dnssec:
            self.command.append("--dnssec")  # signed zones (fresh keys in the work folder), a validating resolver
        self.tracemalloc: list[dict[str, Any]] = []
        self.log_path = self.workdir / "lab.log"
        self.proc: subprocess.Popen[str] | None = None
        self.ready: dict[str, Any] = {}
        self.monitor: list[dict[str, Any]] = []
        self.final: dict[str, Any] | None = None
        self._ready = threading.Event()
        self._reader: threading.Thread | None = None

    def start(self, timeout: float = 60.0) -> "HostedLab":
        log = open(self.log_path, "w")  # noqa: SIM115 - closed with the process
        self.proc = subprocess.Popen(self.command, stdout=subprocess.PIPE, stderr=log, text=True, cwd=REPO)
        log.close()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        if not self._ready.wait(timeout) or not self.ready:
            self.stop()
            raise RuntimeError(f"the lab did not start; see {self.log_path}:\n{self.log_text()[-2000:]}")
        return self

    def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            kind, _, payload = line.partition(" ")
            try:
                data = json.loads(payload)
            except ValueError:
                continue
            if kind == "READY":
                self.ready = data
                self._ready.set()
            elif kind == "MONITOR":
                self.monitor.append(data)
            elif kind == "FINAL":
                self.final = data
            elif kind == "TRACEMALLOC":
                self.tracemalloc.append(data)
        self._ready.set()

    def __enter__(self) -> "HostedLab":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)  # the state file (with its token) and the log

    @property
    def port(self) -> int:
        return int(self.ready["port"])

    @property
    def pid(self) -> int:
        return int(self.ready["pid"])

    @property
    def resolver(self) -> tuple[str, int]:
        return self.ready["resolver"], self.port

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def control(self, command: str, args: dict[str, Any] | None = None, timeout: float = 30.0) -> Any:
        return ControlClient(LabState.read(Path(self.ready["state"])), timeout=timeout).call(command, args)

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def stop(self, timeout: float = 30.0) -> dict[str, Any] | None:
        if self.proc is None:
            return self.final
        stop_process(self.proc, timeout)
        if self._reader is not None:
            self._reader.join(10)
        return self.final

    def exit_code(self) -> int | None:
        return None if self.proc is None else self.proc.returncode

    def tracebacks_in_log(self) -> int:
        return self.log_text().count("Traceback (most recent call last)")


# =====================================================================================
# Small DNS helpers
# =====================================================================================


def ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return EPHEMERAL



def verdict(ok: bool, text: str) -> bool:
    say(f"  [{'ok' if ok else 'FAIL'}] {text}")
    return ok


# =====================================================================================
# fuzz: malformed packets at the resolver and at an authoritative server
# =====================================================================================


def _base_queries() -> list[bytes]:
    names = [("www.example.com", "A"), ("example.com", "MX"), ("example.com", "NS"), ("www.example.com", "AAAA"),
             ("big.example.com", "TXT"), ("nope.example.com", "A"), ("ftp.example.com", "A"),
             ("wiki.eng.example.com", "A"), ("www.example.net", "A"), ("anything.pages.net", "A"),
             ("1.2.0.192.in-addr.arpa", "PTR"), ("example.com", "SOA"), ("com", "NS"), (".", "NS")]
    out = []
    for index, (name, rdtype) in enumerate(names):
        for edns in (False, True):
            query = dns.message.make_query(name, rdtype, use_edns=0 if edns else None,
                                           want_dnssec=edns and index % 2 == 0, payload=1232 if edns else None)
            query.id = 0
            out.append(query.to_wire())
    return out


class PacketFuzzer:
    """Random and mutated DNS packets of the kinds that break parsers.

    Kinds: random bytes; random headers with random bodies; byte-level mutations of
    valid queries; compression pointer loops, chains and pointers past the end or into
    the header; oversize labels (length bytes 64-255) and names over 255 octets;
    wrong section counts; records with truncated or overlong RDATA; bogus EDNS (OPT
    owner, two OPTs, versions, sizes, broken option lengths, OPT in the wrong
    section); odd opcodes, classes, types, flags, QR=1 and TSIG records.
    """

    KINDS = ("random", "header", "mutated", "pointer", "oversize", "counts", "rdata", "edns", "meta")

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.bases = _base_queries()
        self.kinds: Counter[str] = Counter()

    def packet(self) -> bytes:
        r = self.rng
        kind = self.KINDS[r.randrange(len(self.KINDS))]
        self.kinds[kind] += 1
        wire = getattr(self, "_" + kind)(r)
        if len(wire) >= 2:
            wire = r.randbytes(2) + wire[2:]  # a random ID
        return wire

    # --- the kinds -------------------------------------------------------------------

    def _random(self, r: random.Random) -> bytes:
        return r.randbytes(r.choice((0, 1, 2, 5, 11, 12, 13, 17, 30, 64, 200, 512, 600, r.randrange(700))))

    def _header(self, r: random.Random) -> bytes:
        flags = r.randrange(65536) & ~0x8000 if r.random() < 0.8 else r.randrange(65536)
        counts = [r.choice((0, 1, 1, 1, 2, 255, 65535)) for _ in range(4)]
        return HEADER.pack(0, flags, *counts) + r.randbytes(r.randrange(120))

    def _mutated(self, r: random.Random) -> bytes:
        wire = bytearray(r.choice(self.bases))
        for _ in range(r.randint(1, 3)):
            op = r.randrange(5)
            if op == 0 and wire:
                for _ in range(r.randint(1, 6)):
                    wire[r.randrange(len(wire))] = r.randrange(256)
            elif op == 1:
                del wire[r.randrange(len(wire) + 1):]
            elif op == 2 and len(wire) >= 12:
                index = r.randrange(4)
                wire[4 + 2 * index:6 + 2 * index] = struct.pack("!H", r.choice((0, 2, 3, 255, 0x7FFF, 0xFFFF)))
            elif op == 3:
                where = r.randrange(len(wire) + 1)
                wire[where:where] = r.randbytes(r.randint(1, 40))
            elif len(wire) > 12:
                where = r.randrange(12, len(wire))
                bit = r.randrange(8)
                wire[where] ^= 1 << bit
        if len(wire) > 2 and r.random() < 0.7:
            wire[2] &= 0x7F
        return bytes(wire)

    @staticmethod
    def _question_tail(r: random.Random) -> bytes:
        return struct.pack("!HH", r.choice((1, 2, 5, 6, 15, 16, 28, 255, r.randrange(65536))), 1)

    def _pointer(self, r: random.Random) -> bytes:
        header = HEADER.pack(0, 0x0100, 1, 0, 0, 0)
        choice = r.randrange(8)
        if choice == 0:  # the name is a pointer to itself
            name = struct.pack("!H", 0xC00C)
        elif choice == 1:  # a label, then a pointer back to the start: a loop
            name = b"\x01a" + struct.pack("!H", 0xC00C)
        elif choice == 2:  # two pointers pointing at each other
            name = struct.pack("!HH", 0xC00E, 0xC00C)
        elif choice == 3:  # past the end
            name = struct.pack("!H", 0xC000 | r.randrange(40, 0x3FFF))
        elif choice == 4:  # into the header
            name = struct.pack("!H", 0xC000 | r.randrange(0, 12))
        elif choice == 5:  # a long chain of pointers, each to the one before
            name = b"\x01a\x00"
            for index in range(r.randint(2, 150)):
                name += struct.pack("!H", 0xC00C + (3 if index == 0 else 3 + 2 * (index - 1)))
            return header[:4] + struct.pack("!H", 1) + header[6:] + name[:3] + self._question_tail(r) + name[3:]
        elif choice == 6:  # forward pointer to later bytes
            name = struct.pack("!H", 0xC000 | 18) + b"\x03www\x00"
        else:  # pointer in a record's owner and RDATA pointing at itself
            question = b"\x03www\x07example\x03com\x00" + struct.pack("!HH", 1, 1)
            offset = 12 + len(question)
            record = struct.pack("!H", 0xC000 | offset) + struct.pack("!HHIH", 5, 1, 300, 2)
            record += struct.pack("!H", 0xC000 | (offset + 12))
            return HEADER.pack(0, 0x0100, 1, 0, 0, 1) + question + record
        return header + name + self._question_tail(r)

    def _oversize(self, r: random.Random) -> bytes:
        header = HEADER.pack(0, 0x0100, 1, 0, 0, 0)
        choice = r.randrange(5)
        if choice == 0:  # one label with a length byte 64-191 (reserved/extended label types)
            length = r.randrange(64, 192)
            name = bytes([length]) + b"a" * length + b"\x07example\x03com\x00"
        elif choice == 1:  # a length byte that runs past the packet
            name = bytes([r.randrange(1, 64)]) + b"ab"
            return header + name
        elif choice == 2:  # a name over 255 octets: many short labels
            name = b"\x01a" * r.randrange(120, 200) + b"\x00"
        elif choice == 3:  # four labels of 63: 256 octets
            name = (b"\x3f" + b"x" * 63) * 4 + b"\x00"
        else:  # exactly at the limit: 255 octets
            name = (b"\x3f" + b"y" * 63) * 3 + b"\x3d" + b"z" * 61 + b"\x00"
        return header + name + self._question_tail(r)

    def _counts(self, r: random.Random) -> bytes:
        wire = bytearray(r.choice(self.bases))
        counts = [r.choice((0, 1, 2, 3, 100, 65535)) for _ in range(4)]
        wire[4:12] = struct.pack("!HHHH", *counts)
        if r.random() < 0.3:
            wire += r.randbytes(r.randrange(1, 30))  # trailing junk
        return bytes(wire)

    def _rdata(self, r: random.Random) -> bytes:
        question = b"\x03www\x07example\x03com\x00" + struct.pack("!HH", 1, 1)
        section = r.randrange(3)
        counts = [1, 0, 0, 0]
        counts[1 + section] = 1
        rtype = r.choice((1, 2, 5, 6, 15, 16, 28, 33, 41, 250, r.randrange(65536)))
        true = r.randbytes(r.randrange(0, 40))
        claimed = r.choice((len(true) + r.randint(1, 500), max(0, len(true) - r.randint(1, 5)), 65535, 0, 3, 5))
        owner = r.choice((b"\x00", b"\xc0\x0c", b"\x03www\x00"))
        record = owner + struct.pack("!HHIH", rtype, 1, r.randrange(2**32), claimed) + true
        return HEADER.pack(0, 0x0100, *counts) + question + record

    def _edns(self, r: random.Random) -> bytes:
        base = r.choice(self.bases[0::2])  # the ones without EDNS
        opts = []
        for _ in range(r.choice((1, 1, 1, 2, 3))):
            owner = b"\x00" if r.random() < 0.8 else r.choice((b"\x01a\x00", b"\xc0\x0c"))
            udp = r.choice((0, 1, 511, 512, 1232, 4096, 65535))
            ttl = (r.choice((0, 0, 0, 1, 255)) << 24) | (r.choice((0, 0, 0, 1, 2, 255)) << 16) \
                | r.choice((0, 0x8000, 0xFFFF))
            options = b""
            for _ in range(r.randrange(4)):
                code = r.choice((3, 8, 10, 11, 12, 15, r.randrange(65536)))
                data = r.randbytes(r.choice((0, 1, 2, 4, 8, 16, 40, 41)))
                length = len(data) if r.random() < 0.7 else r.choice((len(data) + 5, 0, 65535))
                options += struct.pack("!HH", code, length) + data
            rdlength = len(options) if r.random() < 0.7 else r.choice((len(options) + 3, 0, 65535, 1))
            opts.append(owner + struct.pack("!HHIH", 41, udp, ttl, rdlength) + options)
        in_answer = r.random() < 0.1
        counts = list(HEADER.unpack_from(base)[2:])
        if in_answer:
            counts[1] += 1
        else:
            counts[3] += len(opts)
        if in_answer:
            opts = opts[:1]
        return base[:4] + struct.pack("!HHHH", *counts) + base[12:] + b"".join(opts)

    def _meta(self, r: random.Random) -> bytes:
        base = bytearray(r.choice(self.bases))
        choice = r.randrange(6)
        if choice == 0:  # opcode 1-15, with or without QR
            base[2] = (base[2] & 0x87) | (r.randrange(1, 16) << 3)
        elif choice == 1:  # a response, or odd flags and an RCODE in a query
            base[2] |= r.choice((0x80, 0x04, 0x02, 0x80))
            base[3] = r.randrange(256)
        elif choice in (2, 3):  # odd type or class in the question
            end = 12
            while base[end] != 0:
                end += base[end] + 1
            qtype = r.choice((0, 41, 250, 251, 252, 253, 254, 255, 249, 65535, r.randrange(65536)))
            qclass = r.choice((1, 1, 3, 4, 254, 255, 0, r.randrange(65536)))
            base[end + 1:end + 5] = struct.pack("!HH", qtype, qclass)
        else:  # a TSIG or SIG(0) record in the additional section
            counts = list(HEADER.unpack_from(base)[2:])
            counts[3] += 1
            name = b"\x03key\x00"
            rdata = (b"\x0bhmac-sha256\x00" + struct.pack("!HIH", 0, int(time.time()), 300)
                     + struct.pack("!H", 32) + r.randbytes(32) + struct.pack("!HHH", 0, 0, 0))
            rtype = 250 if choice == 4 else 24
            if r.random() < 0.3:
                rdata = rdata[:r.randrange(len(rdata))]
            record = name + struct.pack("!HHIH", rtype, 255, 0, len(rdata)) + rdata
            base = bytearray(base[:4] + struct.pack("!HHHH", *counts) + base[12:] + record)
        return bytes(base)


@dataclass
class FuzzTarget:
    name: str
    address: tuple[str, int]
    ping: Callable[[], bool]          # a cheap correct answer: paces the sender
    check: Callable[[int], tuple[bool, str]]  # a normal query with the answer checked
    sent: int = 0
    checks: int = 0
    failed_checks: list[str] = field(default_factory=list)
    replies: int = 0
    unparsable_replies: int = 0
    ping_retries: int = 0
    seconds: float = 0.0


def cmd_fuzz(args: argparse.Namespace) -> int:
    say(f"fuzz: {args.count:,} packets, seed {args.seed}, targets {args.targets}, a checked query every "
        f"{args.check_every:,} per target")
    started = time.monotonic()
    with HostedLab(monitor_every=30.0, dnssec=args.dnssec) as lab:
        resolver = lab.resolver
        say(f"  lab process {lab.pid} on the {lab.ready.get('loop')} event loop, port {lab.port}"
            + (", zones signed, the resolver validating" if args.dnssec else ""))
        auth_address = (args.authority, lab.port)
        expected_www = {"192.0.2.1", "192.0.2.2", "192.0.2.3"}
        warm = ask_retrying(resolver, "www.example.com")  # so the resolver's ping is a cache hit
        assert addresses(warm) == expected_www, warm
        ping_socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        ping_socket.bind(("127.0.0.1", 0))

        def pinger(address: tuple[str, int], rd: bool) -> Callable[[], bool]:
            query = dns.message.make_query("www.example.com", "A")
            if not rd:
                query.flags &= ~dns.flags.RD

            def ping() -> bool:
                query.id = random.randrange(65536)
                ping_socket.sendto(query.to_wire(), address)
                deadline = time.monotonic() + 2.0
                while True:
                    ping_socket.settimeout(max(0.01, deadline - time.monotonic()))
                    try:
                        data, _ = ping_socket.recvfrom(65535)
                    except socket.timeout:
                        return False
                    if data[:2] == struct.pack("!H", query.id):
                        return True
            return ping

        def check_resolver(round_: int) -> tuple[bool, str]:
            reply = ask(resolver, "www.example.com", timeout=6)
            if rcode_text(reply) != "NOERROR" or addresses(reply) != expected_www:
                return False, f"www.example.com: {rcode_text(reply)} {sorted(addresses(reply))}"
            fresh = f"fuzz-check-{round_}-{random.randrange(10**9)}.example.com"
            reply = ask(resolver, fresh, timeout=6, edns=True)  # not cached: a real walk to example.com's servers
            if rcode_text(reply) != "NXDOMAIN" or not reply.authority:
                why = "; ".join(o.text or "" for o in getattr(reply, "options", ()) if isinstance(o, dns.edns.EDEOption))
                return False, f"{fresh}: {rcode_text(reply)}" + (f" ({why})" if why else "")
            return True, ""

        def check_authority(round_: int) -> tuple[bool, str]:
            reply = ask(auth_address, "www.example.com", rd=False, timeout=6)
            if rcode_text(reply) != "NOERROR" or not reply.flags & dns.flags.AA or addresses(reply) != expected_www:
                return False, f"www.example.com at the authority: {rcode_text(reply)} {sorted(addresses(reply))}"
            reply = ask(auth_address, f"nope-{round_}.example.com", rd=False, timeout=6)
            if rcode_text(reply) != "NXDOMAIN" or not reply.flags & dns.flags.AA:
                return False, f"nope-{round_}.example.com at the authority: {rcode_text(reply)}"
            return True, ""

        targets = []
        if "resolver" in args.targets:
            targets.append(FuzzTarget("resolver", resolver, pinger(resolver, rd=False), check_resolver))
        if "authority" in args.targets:
            targets.append(FuzzTarget(f"authority {args.authority}", auth_address, pinger(auth_address, rd=False),
                                      check_authority))
        drops_before = {t.name: udp_drops(t.address) or 0 for t in targets}
        fuzzer = PacketFuzzer(args.seed)
        sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sender.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
        sender.bind(("127.0.0.1", 0))
        sender.setblocking(False)
        per_target = args.count // len(targets)
        crashed = False
        last_report = time.monotonic()

        def drain(target: FuzzTarget) -> None:
            while True:
                try:
                    data = sender.recv(65535)
                except BlockingIOError:
                    return
                target.replies += 1
                try:
                    dns.message.from_wire(data)
                except Exception:  # noqa: BLE001 - counted: a reply must be a well-formed message
                    target.unparsable_replies += 1

        while not crashed and any(t.sent < per_target for t in targets):
            for target in targets:
                if target.sent >= per_target:
                    continue
                chunk_start = time.monotonic()
                chunk = min(args.check_every, per_target - target.sent)
                sent_in_chunk = 0
                while sent_in_chunk < chunk:
                    window = min(args.window, chunk - sent_in_chunk)
                    for _ in range(window):
                        try:
                            sender.sendto(fuzzer.packet(), target.address)
                        except (BlockingIOError, OSError):
                            pass
                    sent_in_chunk += window
                    drain(target)
                    for attempt in range(20):  # the ping's answer means the window has been read
                        if target.ping():
                            break
                        target.ping_retries += 1
                        if not lab.alive():
                            break
                    else:
                        target.failed_checks.append(f"no answer to the pacing query after {target.sent + sent_in_chunk}")
                    if not lab.alive():
                        crashed = True
                        break
                target.sent += sent_in_chunk
                drain(target)
                target.seconds += time.monotonic() - chunk_start
                if crashed:
                    break
                target.checks += 1
                try:
                    ok, why = target.check(target.checks)
                except Exception as exc:  # noqa: BLE001 - a timeout or garbage reply is a failed check
                    ok, why = False, f"{type(exc).__name__}: {exc}"
                if not ok:
                    target.failed_checks.append(f"after {target.sent:,}: {why}")
            if time.monotonic() - last_report > args.progress:
                last_report = time.monotonic()
                say("  progress: " + ", ".join(
                    f"{t.name} {t.sent:,} ({t.sent / max(t.seconds, 1e-9):,.0f}/s)" for t in targets)
                    + f"; lab log errors so far: {(lab.monitor[-1]['log']['errors'] if lab.monitor else 0)}")
        drops_after = {t.name: udp_drops(t.address) or 0 for t in targets}
        alive_at_end = lab.alive()
        final = lab.stop()
        tracebacks = lab.tracebacks_in_log()
    elapsed = time.monotonic() - started
    total = sum(t.sent for t in targets)
    ok = True
    say(f"fuzz: sent {total:,} packets in {elapsed:.0f} s; kinds: "
        + ", ".join(f"{k} {v:,}" for k, v in sorted(fuzzer.kinds.items())))
    for t in targets:
        say(f"  {t.name}: {t.sent:,} packets in {t.seconds:.0f} s ({t.sent / max(t.seconds, 1e-9):,.0f}/s), "
            f"{t.replies:,} replies ({t.unparsable_replies} unparsable), kernel drops "
            f"{drops_after[t.name] - drops_before[t.name]}, {t.checks} checked queries, "
            f"{len(t.failed_checks)} failed, pacing-query retries {t.ping_retries}")
        for failure in t.failed_checks[:5]:
            say(f"      {failure}")
        ok &= verdict(not t.failed_checks, f"{t.name}: a correct answer after every {args.check_every:,} packets "
                      f"({t.checks} checks)")
        ok &= verdict(t.unparsable_replies == 0, f"{t.name}: every reply is a well-formed DNS message")
    ok &= verdict(alive_at_end and not crashed, "the lab process never died (0 crashes)")
    log = (final or {}).get("log", {})
    errors = log.get("errors", "?")
    exceptions = log.get("with_exception", "?")
    ok &= verdict(errors == 0 and exceptions == 0 and tracebacks == 0,
                  f"log: {errors} ERROR records, {exceptions} records with an exception, {tracebacks} tracebacks "
                  f"(records by level: {log.get('by_level', {})})")
    print_log_kinds(log)
    if final:
        say(f"  lab process at the end: RSS {final['rss_kb'] / 1024:.0f} MiB, {final['fds']} fds, "
            f"{final['tasks']} tasks, {final.get('cache_entries')} cache entries")
    say(f"fuzz: {'PASS' if ok else 'FAIL'} in {elapsed:.0f} s")
    return 0 if ok else 1


# =====================================================================================
# spoof: an off-path attacker floods forged replies while the resolver waits
# =====================================================================================

_IP = struct.Struct("!BBHHHBBH4s4s")
_UDP = struct.Struct("!HHHH")


def raw_udp(sock: socket.socket, src: tuple[str, int], dst: tuple[str, int], payload: bytes) -> None:
    """One UDP datagram with a forged source address and port (IP_HDRINCL; the kernel fills the checksum)."""
    ip = _IP.pack(0x45, 0, 28 + len(payload), 0, 0, 64, socket.IPPROTO_UDP, 0,
                  socket.inet_aton(src[0]), socket.inet_aton(dst[0]))
    sock.sendto(ip + _UDP.pack(src[1], dst[1], 8 + len(payload), 0) + payload, (dst[0], 0))


def forged_reply(qname: str, address: str = "6.6.6.6") -> bytes:
    """An authoritative answer for (qname, A) pointing at the attacker, plus a grab for the whole zone."""
    qname = qname.rstrip(".") + "."
    query = dns.message.make_query(qname, "A", use_edns=0)
    reply = dns.message.make_response(query)
    reply.flags |= dns.flags.AA
    reply.answer.append(dns.rrset.from_text(qname, 86400, "IN", "A", address))
    reply.authority.append(dns.rrset.from_text("pages.net.", 86400, "IN", "NS", "ns.attacker.example."))
    reply.additional.append(dns.rrset.from_text("ns.attacker.example.", 86400, "IN", "A", address))
    return reply.to_wire()


def resolver_upstream_ports(pid: int) -> set[int]:
    """Ports of the resolver's upstream UDP sockets right now, from /proc.

    Those are the process's UDP sockets connected to a server (dnslab.services.upstream's,
    bound by the kernel to 127.0.0.1 and a random port) or bound to 0.0.0.0; the
    lab's listeners are bound to their own addresses and connected to nothing.

    For the measurement only (how many forged replies reached a waiting socket);
    the attacker itself never looks.
    """
    inodes = set()
    for entry in os.scandir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(entry.path)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    ports = set()
    for line in Path("/proc/net/udp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote, inode = fields[1], fields[2], fields[9]
        if inode in inodes and (remote != "00000000:0000" or local.startswith("00000000:")):
            ports.add(int(local.split(":")[1], 16))
    return ports


def cmd_spoof(args: argparse.Namespace) -> int:
    low, high = ephemeral_range()
    say(f"spoof: at least {args.forged:,} forged replies (random IDs) sprayed over 127.0.0.1:{low}-{high} while "
        f"the resolver waits {args.delay:g} ± {args.jitter:g} ms for pages.net's server; forged answer {args.address}")
    try:
        raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    except PermissionError:
        say("spoof: needs root (CAP_NET_RAW) to forge source addresses; not run")
        return 1
    started = time.monotonic()
    ok = True
    rng = random.Random(args.seed)
    with HostedLab(monitor_every=30.0) as lab:
        resolver = lab.resolver
        server, other = ("127.0.3.10", lab.port), ("127.0.3.11", lab.port)
        # Positive control: the very packets we forge are accepted by dnspython's matching
        # when the port and ID are right, so only the unknown port and ID can stop them.
        control_socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        control_socket.bind(("127.0.0.1", 0))
        control_query = dns.message.make_query("control.pages.net", "A", use_edns=0)
        payload = bytearray(forged_reply("control.pages.net", args.address))
        payload[0:2] = struct.pack("!H", control_query.id)
        raw_udp(raw, server, control_socket.getsockname(), bytes(payload))
        accepted = dns.query.receive_udp(control_socket, server, time.time() + 2, ignore_unexpected=True,
                                         query=control_query)[0]
        control_socket.close()
        positive = args.address in {r.address for rrset in accepted.answer for r in rrset}
        ok &= verdict(positive, "positive control: a forged reply with the right port and ID is accepted by "
                      "dnspython's matching (so the packets are well-formed)")
        # Slow pages.net's servers before the resolver learns their speed (a server it knows
        # as fast would be given up on at once): one answers late (the resolver waits for
        # it), the other not at all (and is soon held down, so every round waits on the first).
        lab.control("fault", {"server": other[0], "kind": "down"})
        lab.control("fault", {"server": server[0], "kind": "delay", "value": args.delay, "jitter": args.jitter})
        warm = None
        for index in range(10):
            try:
                warm = ask(resolver, f"warmup-{index}.pages.net", timeout=8)
            except dns.exception.Timeout:
                continue
        assert warm is not None and addresses(warm) == {"198.51.100.10"}, warm
        held = [s for s in lab.control("servers")["servers"] if s["address"] == other[0]]
        say(f"  127.0.3.11 after warm-up: {held[0]['state'] if held else 'never tried'}")
        client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        client.bind(("127.0.0.1", 0))
        client.setblocking(False)
        ports = list(range(low, high + 1))
        forged = rounds = landed = wrong_port = wrong_address = 0
        answers: Counter[str] = Counter()
        bad_answers: list[str] = []
        unanswered = 0
        round_times = []
        deadline = time.monotonic() + args.max_seconds
        while (forged < args.forged or rounds < args.min_rounds) and time.monotonic() < deadline:
            rounds += 1
            qname = f"spoof{rng.randrange(10**9)}.pages.net"
            query = dns.message.make_query(qname, "A")
            client.sendto(query.to_wire(), resolver)
            t0 = time.monotonic()
            tail = forged_reply(qname, args.address)[2:]
            length = 8 + 2 + len(tail)
            dst = socket.inet_aton("127.0.0.1")
            heads = {src: _IP.pack(0x45, 0, 20 + length, 0, 0, 64, socket.IPPROTO_UDP, 0,
                                   socket.inet_aton(src[0]), dst) for src in (server, other)}
            right_head, other_head = heads[server], heads[other]
            per_port = [0] * 65536
            waiting: set[int] = set()
            reply = None
            sweep = 0
            send = raw.sendto
            pack = _UDP.pack
            target = ("127.0.0.1", 0)
            expected_id = query.to_wire()[:2]
            while reply is None and time.monotonic() - t0 < args.round_limit:
                rng.shuffle(ports)
                ids = os.urandom(2 * len(ports))
                for index, dport in enumerate(ports):
                    kind = index % 10
                    ident = ids[2 * index:2 * index + 2]
                    if kind == 0:  # the server's address, a wrong port
                        send(right_head + pack(rng.randrange(1024, 65536), dport, length, 0) + ident + tail, target)
                        wrong_port += 1
                    elif kind == 5:  # the other server's address and the right port
                        send(other_head + pack(other[1], dport, length, 0) + ident + tail, target)
                        wrong_address += 1
                    else:  # the asked server's address and port: only the ID is unknown
                        send(right_head + pack(server[1], dport, length, 0) + ident + tail, target)
                        per_port[dport] += 1
                    if index & 1023 == 0:
                        if index in (2048, 12288, 22528):  # measurement only: which ports are waiting
                            waiting |= resolver_upstream_ports(lab.pid)
                        try:
                            data, source = client.recvfrom(65535)
                        except BlockingIOError:
                            continue
                        if source == resolver and data[:2] == expected_id:
                            reply = dns.message.from_wire(data)
                            forged += index + 1
                            break
                else:
                    forged += len(ports)
                sweep += 1
            waiting |= resolver_upstream_ports(lab.pid) if reply is None else set()
            if reply is None:  # the answer may still come: wait for it without spraying
                client.setblocking(True)
                client.settimeout(8)
                try:
                    while reply is None:
                        data, source = client.recvfrom(65535)
                        if source == resolver and data[:2] == expected_id:
                            reply = dns.message.from_wire(data)
                except socket.timeout:
                    unanswered += 1
                client.setblocking(False)
            round_times.append(time.monotonic() - t0)
            landed += sum(per_port[port] for port in waiting)
            if reply is not None:
                got = addresses(reply)
                answers[f"{rcode_text(reply)} {','.join(sorted(got))}"] += 1
                if args.address in got or (got and got != {"198.51.100.10"}):
                    bad_answers.append(f"{qname}: {rcode_text(reply)} {sorted(got)}")
        client.close()
        raw.close()
        cache = lab.control("cache.show")
        poisoned = [e for e in cache["entries"] if any(args.address in line or "attacker" in line
                                                      for line in e["records"])]
        stats = lab.control("stats")
        alive = lab.alive()
        final = lab.stop()
    elapsed = time.monotonic() - started
    say(f"spoof: {forged:,} forged replies in {rounds} rounds ({elapsed:.0f} s): {forged - wrong_port - wrong_address:,} "
        f"from the asked server's address and port, {wrong_port:,} from its address with a wrong port, "
        f"{wrong_address:,} from the other server")
    say(f"  forged replies delivered to a port where the resolver was waiting for that very answer: {landed:,} "
        f"(its upstream ports read from /proc/net/udp, for this figure only)")
    say(f"  round time: median {statistics.median(round_times) * 1000:.0f} ms; client answers: {dict(answers)}")
    say(f"  resolver stats: {stats.get('upstream_queries')} upstream queries, {stats.get('timeouts')} timeouts, "
        f"{stats.get('cache_entries')} cache entries")
    ok &= verdict(forged >= args.forged, f"{forged:,} forged replies sent (at least {args.forged:,})")
    servfails = sum(count for text, count in answers.items() if text.startswith("SERVFAIL"))
    ok &= verdict(not bad_answers and unanswered == 0,
                  f"0 forged answers accepted: every answer was the real 198.51.100.10 ({len(bad_answers)} "
                  f"forged, {unanswered} unanswered; {servfails} SERVFAIL when the slowed server took too long)")
    ok &= verdict(servfails <= rounds // 10, f"the resolver did wait for the slowed server: {rounds - servfails} "
                  f"of {rounds} questions answered")
    for line in bad_answers[:5]:
        say("      " + line)
    ok &= verdict(not poisoned, f"cache: 0 entries holding {args.address} or the attacker's name server "
                  f"({len(cache['entries'])} entries inspected)")
    log = (final or {}).get("log", {})
    ok &= verdict(alive and log.get("errors", 1) == 0, f"lab alive, {log.get('errors')} ERROR records in its log")
    print_log_kinds(log)
    say(f"spoof: {'PASS' if ok else 'FAIL'} in {elapsed:.0f} s")
    return 0 if ok else 1


# =====================================================================================
# zone sets for poisoning and for loops and limits (tests/test_reliability.py uses these)
# =====================================================================================

SOA = "@ 3600 IN SOA ns hostmaster 1 7200 3600 1209600 300"


def _write_zone(folder: Path, origin: str, body: str) -> None:
    text = f"$ORIGIN {origin}\n$TTL 3600\n{SOA}\n{body.strip()}\n"
    (folder / f"{origin.rstrip('.') or 'root'}.zone").write_text(text)


EVIL_ADDRESS = "127.0.66.1"    # in test.'s glue only: the lab does not run it, the evil server binds it
# Broken replies, each kind from its own zone and address (so that one server held down after
# failures does not keep the next kind from being tried): <kind>.test at 127.0.66.(10 + i).
BROKEN_KINDS = ["wrongquestion", "garbage", "pointer", "short", "truncated"]
BROKEN_ADDRESSES = {kind: f"127.0.66.{10 + index}" for index, kind in enumerate(BROKEN_KINDS)}
POISON = "6.6.6.6"             # every forged record points here
LEGIT = {"www.victim.test.": "192.0.2.10", "mail.victim.test.": "192.0.2.11", "ns.victim.test.": "127.0.60.3",
         "a.root-servers.test.": "127.0.60.1", "ns.nic.test.": "127.0.60.2", "ns.evil.test.": EVIL_ADDRESS}


def write_poison_zones(folder: Path) -> Path:
    """A root, a TLD test., a victim zone, and evil.test delegated to an address the lab does not serve.

    Also one zone per kind of broken reply (garbage.test and so on, each at its own evil
    address), and lame.test, a lame delegation to the victim's own server (which answers
    REFUSED for it).
    """
    folder.mkdir(parents=True, exist_ok=True)
    broken = "\n".join(f"{kind} 172800 IN NS ns.{kind}\nns.{kind} 172800 IN A {address}"
                       for kind, address in BROKEN_ADDRESSES.items())
    _write_zone(folder, ".", """
@ 518400 IN NS a.root-servers.test.
a.root-servers.test. 518400 IN A 127.0.60.1
test. 172800 IN NS ns.nic.test.
ns.nic.test. 172800 IN A 127.0.60.2
""")
    (folder / "root.zone").write_text((folder / "root.zone").read_text().replace(
        SOA, "@ 3600 IN SOA a.root-servers.test. hostmaster.test. 1 7200 3600 1209600 300"))
    _write_zone(folder, "test.", f"""
@ 172800 IN NS ns.nic.test.
ns.nic 172800 IN A 127.0.60.2
ns 3600 IN A 127.0.60.2
victim 172800 IN NS ns.victim
ns.victim 172800 IN A 127.0.60.3
evil 172800 IN NS ns.evil
ns.evil 172800 IN A {EVIL_ADDRESS}
lame 172800 IN NS ns.victim
{broken}
""")
    _write_zone(folder, "victim.test.", """
@ IN NS ns
ns IN A 127.0.60.3
www IN A 192.0.2.10
mail IN A 192.0.2.11
""")
    (folder / "lab.toml").write_text("port = 5300\n")
    return folder


def _rr(name: str, rdtype: str, value: str, ttl: int = 86400) -> dns.rrset.RRset:
    return dns.rrset.from_text(name, ttl, "IN", rdtype, value)


def evil_reply(query: dns.message.Message) -> dns.message.Message:
    """What the malicious server for evil.test answers, by the first label of the question.

    Every answer also carries data the server has no right to (out of bailiwick,
    for a parent zone, for names nobody asked about); none of it may be cached.
    """
    reply = dns.message.make_response(query)
    reply.flags |= dns.flags.AA
    question = query.question[0]
    qname = question.name.to_text().lower()
    label = qname.split(".")[0]
    asked = _rr(qname, "A", "192.0.2.66")
    if question.rdtype == dns.rdatatype.NS and qname == "evil.test.":
        label = "apex-ns"
    if label == "oob":  # out-of-bailiwick data in authority and additional
        reply.answer = [asked]
        reply.authority = [_rr("victim.test.", "NS", "ns.evil.test."), _rr("evil.test.", "NS", "ns.victim.test.")]
        reply.additional = [_rr("www.victim.test.", "A", POISON), _rr("ns.victim.test.", "A", POISON),
                            _rr("ns.evil.test.", "A", POISON), _rr("a.root-servers.test.", "A", POISON)]
    elif label == "hijack":  # NS records for the parent zones, in an authoritative answer
        reply.answer = [asked]
        reply.authority = [_rr("test.", "NS", "ns.evil.test."), _rr(".", "NS", "ns.evil.test.")]
        reply.additional = [_rr("ns.nic.test.", "A", POISON)]
    elif label == "upward":  # a referral up to the parent, with glue
        reply.flags &= ~dns.flags.AA
        reply.authority = [_rr("test.", "NS", "ns.evil.test.")]
        reply.additional = [_rr("ns.evil.test.", "A", POISON), _rr("ns.nic.test.", "A", POISON)]
    elif label == "sideways":  # a referral to a sibling zone, with glue
        reply.flags &= ~dns.flags.AA
        reply.authority = [_rr("victim.test.", "NS", "ns.evil.test.")]
        reply.additional = [_rr("ns.evil.test.", "A", POISON), _rr("www.victim.test.", "A", POISON)]
    elif label == "unasked":  # answers for names nobody asked about
        reply.answer = [asked, _rr("other.evil.test.", "A", POISON), _rr("www.victim.test.", "A", POISON),
                        _rr("unasked.evil.test.", "MX", "10 mail.victim.test.")]
        reply.additional = [_rr("mail.victim.test.", "A", POISON)]
    elif label == "cname":  # a CNAME into the victim's zone, with the target's "answer" attached
        reply.answer = [_rr(qname, "CNAME", "www.victim.test."), _rr("www.victim.test.", "A", POISON)]
    elif label == "dname" or qname.endswith(".dname.evil.test."):
        # A DNAME into the victim zone with a forged synthesised CNAME pointing elsewhere.
        reply.answer = [_rr("dname.evil.test.", "DNAME", "victim.test."),
                        _rr(qname, "CNAME", "mail.victim.test."), _rr("mail.victim.test.", "A", POISON)]
    elif label == "negative":  # NXDOMAIN proved with the victim's (forged) SOA
        reply.set_rcode(dns.rcode.NXDOMAIN)
        reply.authority = [_rr("victim.test.", "SOA", "ns.evil.test. h.evil.test. 1 1 1 1 86400")]
    elif label == "delegate":  # a referral below itself with out-of-bailiwick glue for the NS name
        reply.flags &= ~dns.flags.AA
        reply.authority = [_rr("delegate.evil.test.", "NS", "ns.victim.test.")]
        reply.additional = [_rr("ns.victim.test.", "A", POISON)]
    elif label == "apex-ns":  # its own NS set, with addresses for someone else's name servers
        reply.answer = [_rr("evil.test.", "NS", "ns.evil.test."), _rr("evil.test.", "NS", "ns.victim.test.")]
        reply.additional = [_rr("ns.victim.test.", "A", POISON), _rr("ns.evil.test.", "A", EVIL_ADDRESS)]
    else:
        reply.answer = [asked]
    return reply


def evil_wire(query: dns.message.Message, wire: bytes) -> bytes:
    """Broken replies (same ID), for the names that ask for them; others get evil_reply()."""
    label = query.question[0].name.to_text().lower().split(".")[0]
    if label == "garbage":  # the ID, then noise
        return wire[:2] + bytes([0x84, 0x00]) + os.urandom(200)
    if label == "pointer":  # an answer whose owner name is a compression pointer to itself
        header = struct.pack("!HHHHHH", query.id, 0x8400, 1, 1, 0, 0)
        question = wire[12:]
        question = question[:question.index(b"\x00") + 5]
        offset = 12 + len(question)
        return header + question + struct.pack("!H", 0xC000 | offset) + struct.pack("!HHIH", 1, 1, 300, 4) \
            + socket.inet_aton(POISON)
    if label == "truncated":  # TC=1 over UDP, and nothing listening for TCP
        reply = dns.message.make_response(query)
        reply.flags |= dns.flags.TC | dns.flags.AA
        return reply.to_wire()
    if label == "wrongquestion":  # the right ID, an answer to another question
        other = dns.message.make_query("www.victim.test.", "A")
        other.id = query.id
        reply = dns.message.make_response(other)
        reply.flags |= dns.flags.AA
        reply.answer = [_rr("www.victim.test.", "A", POISON)]
        return reply.to_wire()
    if label == "short":  # a reply cut inside its answer
        reply = evil_reply(query).to_wire()
        return reply[:len(reply) - 3]
    return evil_reply(query).to_wire()


class EvilServer:
    """The malicious authoritative servers (evil.test and the broken-reply zones): UDP on their
    addresses at the lab's port, answered from one thread; bounded by a stop event."""

    def __init__(self, port: int, addresses: list[str] | None = None) -> None:
        import selectors
        self.selector = selectors.DefaultSelector()
        self.socks = []
        for address in addresses or [EVIL_ADDRESS, *BROKEN_ADDRESSES.values()]:
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.bind((address, port))
            sock.setblocking(False)
            self.selector.register(sock, selectors.EVENT_READ)
            self.socks.append(sock)
        self.asked: Counter[tuple[str, str]] = Counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="evil-server", daemon=True)

    def __enter__(self) -> "EvilServer":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self.selector.close()
        for sock in self.socks:
            sock.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            for key, _ in self.selector.select(0.1):
                sock = key.fileobj
                try:
                    data, peer = sock.recvfrom(65535)  # type: ignore[union-attr]
                    query = dns.message.from_wire(data)
                    question = query.question[0]
                    self.asked[question.name.to_text().lower(), dns.rdatatype.to_text(question.rdtype)] += 1
                    sock.sendto(evil_wire(query, data), peer)  # type: ignore[union-attr]
                except Exception:  # noqa: BLE001 - a test server: ignore what it cannot answer
                    continue


# (name, type, expected rcode, expected A addresses or None, what it tries)
POISON_QUERIES = [
    ("oob.evil.test.", "A", "NOERROR", {"192.0.2.66"}, "out-of-bailiwick NS and A records in authority and additional"),
    ("hijack.evil.test.", "A", "NOERROR", {"192.0.2.66"}, "NS records for the parent zones test. and ."),
    ("upward.evil.test.", "A", "SERVFAIL", set(), "a referral up to test., with glue"),
    ("sideways.evil.test.", "A", "SERVFAIL", set(), "a referral sideways to victim.test, with glue"),
    ("unasked.evil.test.", "A", "NOERROR", {"192.0.2.66"}, "records for names it was not asked about"),
    ("cname.evil.test.", "A", "NOERROR", {"192.0.2.10"}, "a CNAME into victim.test with a forged target address"),
    ("www.dname.evil.test.", "A", "NOERROR", {"192.0.2.10"}, "a DNAME into victim.test with a forged CNAME"),
    ("negative.evil.test.", "A", "NXDOMAIN", set(), "NXDOMAIN with the victim's SOA"),
    ("x.delegate.evil.test.", "A", "SERVFAIL", set(), "a delegation with out-of-bailiwick glue"),
    ("evil.test.", "NS", "NOERROR", None, "its NS set with addresses for the victim's name server"),
    # Broken replies, each kind from its own server: each is a failed try, never data.
    ("wrongquestion.test.", "A", "SERVFAIL", set(), "the right ID with an answer to another question"),
    ("garbage.test.", "A", "SERVFAIL", set(), "the right ID followed by noise"),
    ("pointer.test.", "A", "SERVFAIL", set(), "an answer whose owner is a compression pointer to itself"),
    ("short.test.", "A", "SERVFAIL", set(), "a reply cut short inside its answer"),
    ("truncated.test.", "A", "SERVFAIL", set(), "TC=1, and no TCP service to retry on"),
]
# After the attacks, the real data must still come back, from the real servers.
POISON_AFTER = [("www.victim.test.", "A", "NOERROR", {"192.0.2.10"}), ("mail.victim.test.", "A", "NOERROR", {"192.0.2.11"}),
                ("ns.victim.test.", "A", "NOERROR", {"127.0.60.3"}), ("test.", "NS", "NOERROR", None),
                (".", "NS", "NOERROR", None)]


@dataclass
class CacheRecord:
    """One cache entry, from the in-process API or the control endpoint alike."""

    name: str
    rdtype: str
    kind: str
    records: list[str]
    source: str | None


def poison_findings(records: list[CacheRecord]) -> list[str]:
    """Everything in the cache that the evil server planted, each as a sentence."""
    findings = []
    for entry in records:
        owner = entry.name.lower()
        text = " ".join(entry.records)
        if POISON in text:
            findings.append(f"{owner} {entry.rdtype}: holds {POISON} (from {entry.source})")
        if owner in ("other.evil.test.",) or (owner == "unasked.evil.test." and entry.rdtype == "MX"):
            findings.append(f"{owner} {entry.rdtype}: cached although nobody asked for it")
        if entry.rdtype == "NS" and "ns.evil.test" in text and owner != "evil.test.":
            findings.append(f"{owner} NS: points at ns.evil.test. (from {entry.source})")
        if entry.rdtype == "NS" and owner == "evil.test." and "ns.victim.test" in text and entry.source == EVIL_ADDRESS:
            pass  # evil.test may name any server for its own zone; only addresses for it are checked
        if not owner.endswith("evil.test.") and entry.source == EVIL_ADDRESS:
            findings.append(f"{owner} {entry.rdtype}: outside evil.test but came from the evil server")
        if owner in LEGIT and entry.rdtype == "A" and LEGIT[owner] not in text:
            findings.append(f"{owner} A: {text} instead of {LEGIT[owner]}")
    return findings


def run_poison(resolver: tuple[str, int], cache_records: Callable[[], list[CacheRecord]],
               out: Callable[[str], None] = lambda line: None) -> list[str]:
    """Ask every attack question and the real questions after it; returns the problems found."""
    problems = []
    for name, rdtype, rcode, expected, what in POISON_QUERIES + [(*q, "the real data, after the attacks")
                                                              for q in POISON_AFTER]:
        reply = ask(resolver, name, rdtype, timeout=8)
        got = addresses(reply)
        answer = [r.to_text() for rrset in reply.answer for r in rrset]
        fine = rcode_text(reply) == rcode and (expected is None or got == expected) and not any(
            POISON in line for line in answer)
        if rdtype == "NS" and name in ("test.", "."):
            fine &= not any("evil" in line for line in answer)
        out(f"  {'ok  ' if fine else 'FAIL'} {name} {rdtype}: {rcode_text(reply)} {', '.join(answer) or '-'}"
            f"   ({what})")
        if not fine:
            problems.append(f"{name} {rdtype}: {rcode_text(reply)} {answer} (wanted {rcode} {expected})")
    records = cache_records()
    findings = poison_findings(records)
    out(f"  cache: {len(records)} entries inspected, {len(findings)} planted by the evil server")
    return problems + findings


def run_third_party_hold_down(resolver: tuple[str, int], out: Callable[[str], None] = lambda line: None,
                              tries: int = 3) -> list[str]:
    """A lame delegation (lame.test NS ns.victim.test, whose server answers REFUSED for it) asked a few
    times must not make the resolver give up on the victim's server for the victim's own zone."""
    for index in range(tries):
        reply = ask(resolver, f"q{index}-{random.randrange(10**9)}.lame.test.", timeout=8)
        out(f"  lame.test question {index + 1}: {rcode_text(reply)} (the victim's server answers REFUSED for it)")
    fresh = f"fresh-{random.randrange(10**9)}.victim.test."
    reply = ask(resolver, fresh, timeout=8)
    fine = rcode_text(reply) == "NXDOMAIN"
    out(f"  {'ok  ' if fine else 'FAIL'} {fresh} A: {rcode_text(reply)} (the victim's own zone, asked afterwards: "
        f"NXDOMAIN from its server expected)")
    return [] if fine else [f"after {tries} questions for a lame delegation to ns.victim.test, {fresh} got "
                            f"{rcode_text(reply)}: the victim's server is held down for every zone it serves"]


def cache_records_from_control(lab: HostedLab) -> list[CacheRecord]:
    return [CacheRecord(e["name"], e["type"], e["kind"], e["records"], e.get("source"))
            for e in lab.control("cache.show")["entries"]]


def cmd_poison(args: argparse.Namespace) -> int:
    say("poison: a malicious authoritative server for evil.test (127.0.66.1; broken replies from 127.0.66.10-14) "
        "tries to plant data in the cache")
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="dnslab-poison-") as tmp:
        zones = write_poison_zones(Path(tmp) / "zones")
        with HostedLab(zones=zones, monitor_every=30.0) as lab, EvilServer(lab.port) as evil:
            problems = run_poison(lab.resolver, lambda: cache_records_from_control(lab), say)
            evil_queries = sum(evil.asked.values())
            say("third-party hold-down: a zone delegated lamely to the victim's server")
            hold_down = run_third_party_hold_down(lab.resolver, say)
            final = lab.stop()
    log = (final or {}).get("log", {})
    ok = verdict(not problems, f"nothing the evil servers sent outside their rights was cached or returned "
                 f"({evil_queries} queries answered by them)")
    for problem in problems:
        say("      " + problem)
    ok &= verdict(not hold_down, "a lame delegation to the victim's server does not take the victim's zone down")
    for problem in hold_down:
        say("      " + problem)
    ok &= verdict(log.get("errors", 1) == 0, f"{log.get('errors')} ERROR records in the lab's log")
    print_log_kinds(log)
    say(f"poison: {'PASS' if ok else 'FAIL'} in {time.monotonic() - started:.1f} s")
    return 0 if ok else 1


# --- loops and limits ----------------------------------------------------------------------


def write_limits_zones(folder: Path, nxns_names: int = 100, chain: int = 20) -> Path:
    """Zones with CNAME and DNAME loops, a glueless delegation loop, an NXNS-style referral, long chains."""
    folder.mkdir(parents=True, exist_ok=True)
    _write_zone(folder, ".", """
@ 518400 IN NS a.root-servers.test.
a.root-servers.test. 518400 IN A 127.0.70.1
test. 172800 IN NS ns.nic.test.
ns.nic.test. 172800 IN A 127.0.70.2
alt. 172800 IN NS ns.nic.alt.
ns.nic.alt. 172800 IN A 127.0.70.7
""")
    (folder / "root.zone").write_text((folder / "root.zone").read_text().replace(
        SOA, "@ 3600 IN SOA a.root-servers.test. hostmaster.test. 1 7200 3600 1209600 300"))
    nxns = "\n".join(f"nxns 172800 IN NS ns{i}.target.alt." for i in range(1, nxns_names + 1))
    _write_zone(folder, "test.", f"""
@ 172800 IN NS ns.nic.test.
ns.nic 172800 IN A 127.0.70.2
ns 3600 IN A 127.0.70.2
loop 172800 IN NS ns.loop
ns.loop 172800 IN A 127.0.70.3
loop2 172800 IN NS ns.loop2
ns.loop2 172800 IN A 127.0.70.4
chain 172800 IN NS ns.chain
ns.chain 172800 IN A 127.0.70.9
chain2 172800 IN NS ns.chain2
ns.chain2 172800 IN A 127.0.70.10
ga 172800 IN NS ns.gb.alt.
{nxns}
""")
    _write_zone(folder, "alt.", """
@ 172800 IN NS ns.nic.alt.
ns.nic 172800 IN A 127.0.70.7
ns 3600 IN A 127.0.70.7
gb 172800 IN NS ns.ga.test.
target 172800 IN NS ns.target
ns.target 172800 IN A 127.0.70.8
""")
    _write_zone(folder, "loop.test.", """
@ IN NS ns
ns IN A 127.0.70.3
a IN CNAME b
b IN CNAME a
self IN CNAME self
x IN CNAME y.loop2.test.
dn1 IN DNAME dn2.loop.test.
dn2 IN DNAME dn1.loop.test.
dnx IN DNAME dnx.loop2.test.
below IN DNAME sub.below.loop.test.
""")
    _write_zone(folder, "loop2.test.", """
@ IN NS ns
ns IN A 127.0.70.4
y IN CNAME x.loop.test.
dnx IN DNAME dnx.loop.test.
""")
    _write_zone(folder, "target.alt.", """
@ IN NS ns
ns IN A 127.0.70.8
""")
    # Long chains: in one zone (the server follows them itself), and alternating between two
    # zones (each step a restart with its own upstream query).
    inzone = "\n".join(f"c{i} IN CNAME c{i + 1}" for i in range(1, chain)) + f"\nc{chain} IN A 192.0.2.1"
    short = "\n".join(f"s{i} IN CNAME s{i + 1}" for i in range(1, 10)) + "\ns10 IN A 192.0.2.2"
    across = "\n".join(f"x{i} IN CNAME x{i + 1}.chain2.test." for i in range(1, chain + 1, 2))
    across2 = "\n".join(f"x{i} IN CNAME x{i + 1}.chain.test." for i in range(2, chain + 1, 2))
    _write_zone(folder, "chain.test.", f"@ IN NS ns\nns IN A 127.0.70.9\n{inzone}\n{short}\n{across}\n"
                f"x{chain + 1} IN A 192.0.2.3\n")
    _write_zone(folder, "chain2.test.", f"@ IN NS ns\nns IN A 127.0.70.10\n{across2}\nx{chain + 1} IN A 192.0.2.3\n")
    (folder / "lab.toml").write_text("port = 5300\n")
    return folder


@dataclass(frozen=True)
class LimitCase:
    name: str
    rdtype: str
    rcode: str
    what: str
    max_upstream: int          # upstream queries the resolver may send for it (the configured limits)


def limit_cases(chain: int = 20, max_queries: int = 50, max_glueless: int = 5) -> list[LimitCase]:
    return [
        LimitCase("a.loop.test.", "A", "SERVFAIL", "CNAME loop in one zone (a -> b -> a)", max_queries),
        LimitCase("self.loop.test.", "A", "SERVFAIL", "CNAME to itself", max_queries),
        LimitCase("x.loop.test.", "A", "SERVFAIL", "CNAME loop across two zones", max_queries),
        LimitCase("www.dn1.loop.test.", "A", "SERVFAIL", "DNAME loop in one zone (dn1 -> dn2 -> dn1)", max_queries),
        LimitCase("www.dnx.loop.test.", "A", "SERVFAIL", "DNAME loop across two zones", max_queries),
        LimitCase("www.below.loop.test.", "A", "SERVFAIL", "DNAME pointing below itself", max_queries),
        LimitCase("www.ga.test.", "A", "SERVFAIL", "delegation loop through glueless NS names "
                  "(ga.test NS ns.gb.alt, gb.alt NS ns.ga.test)", max_queries),
        LimitCase("www.nxns.test.", "A", "SERVFAIL", "NXNS: a referral to 100 glueless NS names that do not exist",
                  max_queries),
        LimitCase("c1.chain.test.", "A", "SERVFAIL", f"a CNAME chain of {chain} in one zone", max_queries),
        LimitCase("x1.chain.test.", "A", "SERVFAIL", f"a CNAME chain of {chain} across two zones", max_queries),
        LimitCase("s1.chain.test.", "A", "NOERROR", "a CNAME chain of 10 (within the limit of 11): answered",
                  max_queries),
    ]


def cmd_limits(args: argparse.Namespace) -> int:
    say("limits: loops, NXNS-style referrals and long chains; each answered SERVFAIL within "
        f"{args.time_limit:g} s and within the resolver's limits (defaults: 11 CNAMEs, 50 upstream queries, "
        "5 glueless NS names per delegation)")
    started = time.monotonic()
    ok = True
    with tempfile.TemporaryDirectory(prefix="dnslab-limits-") as tmp:
        zones = write_limits_zones(Path(tmp) / "zones")
        with HostedLab(zones=zones, monitor_every=30.0) as lab:
            servers = [s["address"] for s in lab.ready["servers"]]
            say(f"  {'question':<24} {'rcode':<9} {'ms':>6} {'upstream':>8} {'received':>8} {'limit':>5}  what")
            rows = []
            for case in limit_cases():
                lab.control("cache.flush")
                for address in servers:
                    lab.control("queries", {"server": address, "reset": True})
                before = lab.control("stats")["upstream_queries"]
                t0 = time.monotonic()
                reply = ask(lab.resolver, case.name, case.rdtype, timeout=8)
                elapsed = time.monotonic() - t0
                upstream = lab.control("stats")["upstream_queries"] - before
                per_server = {address: lab.control("queries", {"server": address})["total"] for address in servers}
                received = sum(per_server.values())
                nxns_target = per_server.get("127.0.70.8", 0)
                fine = (rcode_text(reply) == case.rcode and elapsed < args.time_limit
                        and upstream <= case.max_upstream)
                if "NXNS" in case.what:
                    fine &= nxns_target <= 5
                ok &= fine
                rows.append((case, elapsed, upstream, received))
                extra = f"; target.alt's server asked {nxns_target} times" if "NXNS" in case.what else ""
                say(f"  {case.name:<24} {rcode_text(reply):<9} {elapsed * 1000:6.1f} {upstream:8d} {received:8d} "
                    f"{case.max_upstream:5d}  {'' if fine else 'FAIL '}{case.what}{extra}")
            final = lab.stop()
    worst = max(elapsed for _, elapsed, _, _ in rows)
    ok = verdict(ok, f"every case as expected, slowest {worst * 1000:.0f} ms, most upstream queries "
                 f"{max(u for *_, u, _ in rows)}") and ok
    log = (final or {}).get("log", {})
    ok &= verdict(log.get("errors", 1) == 0, f"{log.get('errors')} ERROR records in the lab's log")
    print_log_kinds(log)
    say(f"limits: {'PASS' if ok else 'FAIL'} in {time.monotonic() - started:.1f} s")
    return 0 if ok else 1


# =====================================================================================
# steady load (soak and storm)
# =====================================================================================


@dataclass
class Outcome:
    name: str
    rdtype: str
    sent: float
    tag: str
    rcode: str | None = None    # None: no reply (yet)
    answered: float | None = None
    answer: tuple[str, ...] = ()


class LoadClient:
    """Sends queries at a steady rate over UDP and matches the replies; bounded by count and time."""

    def __init__(self, server: tuple[str, int], timeout: float = 6.0, sockets: int = 4) -> None:
        self.server = server
        self.timeout = timeout
        self.socks = []
        for _ in range(sockets):
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
            sock.bind(("127.0.0.1", 0))
            sock.setblocking(False)
            self.socks.append(sock)
        self.pending: dict[tuple[int, int], Outcome] = {}
        self.done: list[Outcome] = []
        self.rng = random.Random(7)

    def close(self) -> None:
        for sock in self.socks:
            sock.close()

    def send(self, name: str, rdtype: str, tag: str = "") -> None:
        sock_index = self.rng.randrange(len(self.socks))
        while True:
            ident = self.rng.randrange(65536)
            if (sock_index, ident) not in self.pending:
                break
        query = dns.message.make_query(name, rdtype)
        query.id = ident
        self.pending[(sock_index, ident)] = Outcome(name, rdtype, time.monotonic(), tag)
        try:
            self.socks[sock_index].sendto(query.to_wire(), self.server)
        except OSError:
            pass

    def poll(self) -> None:
        now = time.monotonic()
        for index, sock in enumerate(self.socks):
            while True:
                try:
                    data = sock.recv(65535)
                except BlockingIOError:
                    break
                if len(data) < 2:
                    continue
                outcome = self.pending.pop((index, struct.unpack_from("!H", data)[0]), None)
                if outcome is None:
                    continue
                outcome.answered = now
                try:
                    reply = dns.message.from_wire(data)
                    outcome.rcode = rcode_text(reply)
                    outcome.answer = tuple(sorted(r.to_text() for rrset in reply.answer for r in rrset))
                except Exception:  # noqa: BLE001 - counted as a broken reply
                    outcome.rcode = "UNPARSABLE"
                self.done.append(outcome)
        for key, outcome in list(self.pending.items()):
            if now - outcome.sent > self.timeout:
                del self.pending[key]
                outcome.rcode = None
                self.done.append(outcome)

    def run(self, rate: float, duration: float, pick: Callable[[float], tuple[str, str, str]],
            on_tick: Callable[[float], None] | None = None, drain: bool = True) -> None:
        """Send `rate` queries a second for `duration` seconds; pick(elapsed) gives (name, type, tag)."""
        start = time.monotonic()
        sent = 0
        while True:
            now = time.monotonic()
            elapsed = now - start
            if elapsed >= duration:
                break
            due = int(elapsed * rate) + 1
            while sent < due:
                name, rdtype, tag = pick(elapsed)
                self.send(name, rdtype, tag)
                sent += 1
            self.poll()
            if on_tick is not None:
                on_tick(elapsed)
            time.sleep(min(0.005, max(0.0, (sent / rate) - (time.monotonic() - start))))
        if drain:
            self.wait_all()

    def wait_all(self) -> None:
        deadline = time.monotonic() + self.timeout + 1
        while self.pending and time.monotonic() < deadline:
            self.poll()
            time.sleep(0.01)
        self.poll()


# =====================================================================================
# storm: half the servers go down under load, then come back
# =====================================================================================


class Reachability:
    """Which names a resolver can still resolve when some lab servers are down, from the zone files.

    A name is resolvable when every zone from the root down to it has a name server
    with an address that is up and that the resolver can learn: from glue in the
    parent zone (inside the parent's bailiwick, as the resolver uses glue), or by
    resolving the name server's own name, which must then be resolvable in turn.
    """

    def __init__(self, zones_dir: Path) -> None:
        zones, _ = load_zones(zone_files(zones_dir))
        self.zones = {zone.origin: zone for zone in zones}

    def path(self, name: dns.name.Name) -> list[Any]:
        return sorted((z for origin, z in self.zones.items() if name.is_subdomain(origin)), key=lambda z: len(z.origin))

    def resolvable(self, name: dns.name.Name, down: set[str], depth: int = 0) -> bool:
        if depth > 4:
            return False
        path = self.path(name)
        for index, zone in enumerate(path):
            parent = path[index - 1] if index else None
            if not self._zone_reachable(zone, parent, down, depth):
                return False
        return True

    def _zone_reachable(self, zone: Any, parent: Any, down: set[str], depth: int) -> bool:
        ns = zone.get(zone.origin, dns.rdatatype.NS)
        for rdata in ns:
            target = rdata.target
            if parent is None:  # the root: its addresses are the hints
                known = self._addresses(target)
            elif target.is_subdomain(parent.origin) and parent.addresses(target):
                known = parent.addresses(target)
            elif self.resolvable(target, down, depth + 1):
                known = self._addresses(target)
            else:
                continue
            if any(address not in down for address in known):
                return True
        return False

    def _addresses(self, name: dns.name.Name) -> list[str]:
        found = []
        for zone in self.zones.values():
            found.extend(zone.addresses(name))
        return found


STORM_GROUPS = {
    # group: (name pattern with {n}, type); {n} makes every query a fresh name (an upstream query)
    "pages.net": ("n{n}.pages.net.", "A"),
    "example.com": ("nx{n}.example.com.", "A"),
    "eng.example.com": ("nx{n}.eng.example.com.", "A"),
    "example.org": ("nx{n}.example.org.", "A"),
    "ttl-demo.org": ("nx{n}.ttl-demo.org.", "A"),
    "example.net": ("nx{n}.example.net.", "A"),
    "dns-host.org": ("nx{n}.dns-host.org.", "A"),
    "failover.com": ("nx{n}.failover.com.", "A"),
    "reverse": ("{n}.2.0.192.in-addr.arpa.", "PTR"),
    "tld": ("nx{n}.", "A"),
    "com": ("nx{n}.com.", "A"),
}


def cmd_storm(args: argparse.Namespace) -> int:
    reach = Reachability(SAMPLE_ZONES)
    rng = random.Random(args.seed)
    started = time.monotonic()
    ok = True
    # The lab gets the hold-down settings the recovery bound is computed from.
    with HostedLab(sets={"hold_down": args.hold_down, "probe_interval": args.probe_interval}, monitor_every=5.0) as lab:
        servers = sorted((s["address"] for s in lab.ready["servers"]), key=lambda a: socket.inet_aton(a))
        initially_down = {a for a in servers if a in (lab.control("faults")["faults"] or {})}
        storm = [a for a in servers[::2]]
        down_during = set(storm) | initially_down
        groups = sorted(STORM_GROUPS)
        probe_names = {g: dns.name.from_text(STORM_GROUPS[g][0].format(n="probe")) for g in groups}
        expected_ok = {g: reach.resolvable(probe_names[g], initially_down) for g in groups}
        expected_storm = {g: reach.resolvable(probe_names[g], down_during) for g in groups}
        say(f"storm: {args.rate:g} queries/s over {len(groups)} zones for {args.before:g} s, then {len(storm)} of "
            f"{len(servers)} servers down for {args.during:g} s ({', '.join(storm)}), then back for "
            f"{args.after:g} s; the cache is flushed every {args.flush_every:g} s so walks start at the root")
        say(f"  resolvable with those servers down: {', '.join(g for g in groups if expected_storm[g])}")
        say(f"  not resolvable (every server of a zone on the way down): "
            f"{', '.join(g for g in groups if not expected_storm[g]) or '-'}")
        client = LoadClient(lab.resolver, timeout=args.client_timeout)
        phase = {"name": "before", "since": 0.0}
        marks: dict[str, float] = {}
        holds: dict[str, Any] = {}
        next_flush = [args.flush_every]
        next_view = [0.0]
        held_log: list[tuple[float, str, list[str]]] = []
        start_wall = time.monotonic()

        def tick(elapsed: float) -> None:
            if phase["name"] == "before" and elapsed >= args.before:
                for address in storm:
                    lab.control("fault", {"server": address, "kind": "down"})
                phase.update(name="during", since=elapsed)
                marks["down"] = time.monotonic()
            elif phase["name"] == "during" and elapsed >= args.before + args.during:
                view = {s["address"]: s for s in lab.control("servers")["servers"]}
                holds.update({a: view.get(a, {}) for a in storm})
                for address in storm:
                    lab.control("fault", {"server": address, "kind": "up"})
                phase.update(name="after", since=elapsed)
                marks["up"] = time.monotonic()
            if elapsed >= next_flush[0]:
                next_flush[0] += args.flush_every
                lab.control("cache.flush")
            if elapsed >= next_view[0]:  # which servers the resolver holds down, every few seconds
                next_view[0] += args.view_every
                rows = lab.control("servers")["servers"]
                held = sorted((r for r in rows if r.get("held_for_s") or r.get("state") != "closed"),
                              key=lambda r: socket.inet_aton(r["address"]))
                held_log.append((elapsed, phase["name"], [
                    r["address"] + ("" if r["address"] in down_during else f" ({r.get('last_failure')})")
                    for r in held]))
            if not lab.alive():
                raise RuntimeError("the lab process died")

        def pick(_elapsed: float) -> tuple[str, str, str]:
            group = groups[rng.randrange(len(groups))]
            pattern, rdtype = STORM_GROUPS[group]
            return pattern.format(n=rng.randrange(10**9)), rdtype, f"{phase['name']}:{group}"

        client.run(args.rate, args.before + args.during + args.after, pick, on_tick=tick)
        servers_after = lab.control("servers")["servers"]
        alive = lab.alive()
        final = lab.stop()
        monitor = list(lab.monitor)
    outcomes = client.done
    client.close()
    down_at, up_at = marks.get("down", 0.0), marks.get("up", 0.0)
    unanswered = [o for o in outcomes if o.rcode is None]
    say(f"storm: {len(outcomes):,} queries in {time.monotonic() - started:.0f} s; "
        f"{len(unanswered)} without a reply within {args.client_timeout:g} s")
    table: dict[tuple[str, str], Counter[str]] = {}
    wrong: list[str] = []
    recovery: dict[str, float] = {}
    for outcome in outcomes:
        phase_name, group = outcome.tag.split(":")
        table.setdefault((group, phase_name), Counter())[outcome.rcode or "no reply"] += 1
        in_storm = down_at <= outcome.sent < up_at
        # A query in flight when the storm began may still be met by it; one sent before it ends too.
        allowed = expected_storm[group] if in_storm or (outcome.answered or 1e18) >= down_at and outcome.sent < up_at \
            else expected_ok[group]
        if outcome.rcode == "SERVFAIL" and outcome.sent >= up_at:
            recovery[group] = max(recovery.get(group, 0.0), outcome.sent - up_at)
            continue  # judged by the recovery figure below
        if outcome.rcode == "SERVFAIL" and allowed:
            wrong.append(f"{outcome.name} {outcome.rdtype} SERVFAIL at {outcome.sent - start_wall:.1f} s "
                         f"({phase_name}, {group} is resolvable)")
    say(f"  {'zone':<16} {'before':>22} {'during':>30} {'after':>30}")
    for group in groups:
        cells = []
        for phase_name in ("before", "during", "after"):
            counts = table.get((group, phase_name), Counter())
            cells.append(" ".join(f"{k} {v}" for k, v in sorted(counts.items())))
        say(f"  {group:<16} {cells[0]:>22} {cells[1]:>30} {cells[2]:>30}")
    say("  servers not in the closed state, as the resolver saw them (every "
        f"{args.view_every:g} s; down in the storm: {', '.join(storm)}; for the others, why):")
    previous = None
    for elapsed, phase_name, held in held_log:
        text = ", ".join(held) or "none"
        if text != previous:
            say(f"    {elapsed:6.1f} s ({phase_name}): {text}")
            previous = text
    lags = [(m["t"], m.get("loop_lag_max_ms", 0.0), m.get("loop_lag_over_50ms", 0)) for m in monitor]
    if lags:
        say("  the lab's event loop, every 5 s (how late a 20 ms timer ran; every reply of every lab server waits "
            "that long): max " + ", ".join(f"{ms:.0f}" for _, ms, _ in lags) + " ms; timers over 50 ms late: "
            + ", ".join(str(n) for *_, n in lags))
        pairs = list(zip(monitor, monitor[1:]))
        if pairs and all("cpu_s" in m for m in monitor):
            say("  the lab's main thread, every 5 s: busy " + ", ".join(
                f"{(b['cpu_s'] - a['cpu_s']) / (b['t'] - a['t']) * 100:.0f}" for a, b in pairs)
                + " % of the time; waiting for a CPU (runnable, another process running) " + ", ".join(
                f"{(b['runqueue_wait_s'] - a['runqueue_wait_s']) * 1000:.0f}" for a, b in pairs) + " ms")
        say(f"  load average (2 cores) at the end: {os.getloadavg()[0]:.1f}")
    buckets: Counter[int] = Counter()
    for outcome in outcomes:
        if outcome.rcode == "SERVFAIL" and outcome.sent >= up_at and expected_ok[outcome.tag.split(":")[1]]:
            buckets[int((outcome.sent - up_at) // 5) * 5] += 1
    if buckets:
        say("  SERVFAILs after the servers came back, by 5 s after their return: "
            + ", ".join(f"{k}-{k + 5} s: {v}" for k, v in sorted(buckets.items())))
    ok &= verdict(alive, "the lab process ran to the end")
    ok &= verdict(not unanswered, f"every client query got a reply ({len(unanswered)} did not)")
    ok &= verdict(not wrong, f"SERVFAIL only where every server of a zone on the way was down "
                  f"({len(wrong)} other SERVFAILs)")
    for line in wrong[:10]:
        say("      " + line)
    held = {a: h.get("held_for_s") for a, h in holds.items()}
    longest_hold = max([h or 0.0 for h in held.values()] + [0.0])
    say("  hold-down left on the storm's servers when they came back (s): "
        + ", ".join(f"{a} {h if h is not None else '-'}" for a, h in held.items()))
    # The promise (dnslab.resolution.infra): a server is probed at least once per probe interval while queries need
    # it, so one that is back is in use within one probe interval.  The SERVFAIL cache does not enter:
    # it is per question, and every query here asks a fresh name.  The slack covers the wait for the
    # next query that needs the server and the event loop's lag on a busy machine.
    limit = args.probe_interval + args.slack
    worst = max(recovery.values(), default=0.0)
    say("  last SERVFAIL after the servers came back (s): "
        + (", ".join(f"{g} {t:.1f}" for g, t in sorted(recovery.items())) or "none"))
    ok &= verdict(longest_hold <= args.probe_interval,
                  f"no hold-down outlasts the probe interval ({longest_hold:.1f} s left at most, "
                  f"probe_interval {args.probe_interval:g} s)")
    ok &= verdict(worst <= limit, f"resolution recovered {worst:.1f} s after the servers came back (bound: one "
                  f"probe interval, {args.probe_interval:g} s, + {args.slack:g} s slack)")
    still_held = [s["address"] for s in servers_after if s.get("held_for_s") and s["address"] not in initially_down]
    ok &= verdict(not still_held, f"no server held down at the end ({', '.join(still_held) or 'none'})")
    log = (final or {}).get("log", {})
    ok &= verdict(log.get("errors", 1) == 0, f"{log.get('errors')} ERROR records in the lab's log")
    print_log_kinds(log)
    say(f"storm: {'PASS' if ok else 'FAIL'} in {time.monotonic() - started:.0f} s")
    return 0 if ok else 1


# =====================================================================================
# soak
# =====================================================================================


def fill_reply_caches(lab: HostedLab, sample: dict[str, Any], down: set[str], window: int = 200) -> int:
    """Ask every authoritative server new questions in its own zones until its reply cache is full.

    Names `soak-fill-N.<zone>`: NXDOMAIN, or a wildcard answer where the zone has one, as the soak's own
    questions get.  Paced: a window of questions, then their replies (or 2 s), so none is dropped.
    Returns how many questions were sent.
    """
    sizes = sample.get("server_fast", {})
    zones_of = {s["address"]: s["zones"] for s in lab.ready["servers"]}
    sent = 0
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    try:
        counted = sample.get("server_counted", {})
        for address in sorted(set(sizes) | set(counted)):
            entries, bound = sizes.get(address, (0, 0))
            if address in down:
                entries, bound = 0, 0  # it answers nothing, so its reply cache cannot grow
            questions, limit = counted.get(address, (0, 0))
            zones = zones_of.get(address) or ["."]
            names = (f"soak-fill-{i}.{zones[i % len(zones)]}".replace("..", ".") for i in range(10**7))
            missing = max(0, bound - entries, limit - questions)  # its counter counts them too, even while down
            while missing > 0:
                batch = min(window, missing)
                for _ in range(batch):
                    query = dns.message.make_query(next(names), "A")
                    query.flags &= ~dns.flags.RD
                    sock.sendto(query.to_wire(), (address, lab.port))
                sent += batch
                missing -= batch
                if address in down:
                    time.sleep(0.02)  # no replies to wait for: a pause keeps the kernel from dropping any
                    continue
                sock.settimeout(2.0)
                for _ in range(batch):
                    try:
                        sock.recv(65535)
                    except OSError:
                        break
    finally:
        sock.close()
    return sent


def cmd_soak(args: argparse.Namespace) -> int:
    warmup = args.warmup if args.warmup is not None else max(30.0, args.duration * 0.1)
    say(f"soak: {args.duration:g} s at {args.rate:g} queries/s, cache_size {args.cache_size}, "
        f"{args.names:,} distinct names, warm-up {warmup:g} s, samples every {args.sample_every:g} s")
    rng = random.Random(args.seed)
    fixed = [("www.example.com", "A"), ("example.com", "MX"), ("www.example.org", "A"), ("www.example.net", "A"),
             ("wiki.eng.example.com", "A"), ("1.2.0.192.in-addr.arpa", "PTR"), ("www.failover.com", "A")]

    def pick(_elapsed: float) -> tuple[str, str, str]:
        roll = rng.random()
        if roll < 0.6:
            return f"n{rng.randrange(args.names)}.pages.net", "A", "wildcard"
        if roll < 0.8:
            return f"nx{rng.randrange(args.names)}.example.com", "A", "nx"
        name, rdtype = rng.choice(fixed)
        return name, rdtype, "fixed"

    started = time.monotonic()
    ok = True
    with HostedLab(sets={"cache_size": args.cache_size}, monitor_every=args.sample_every, gc_count=True,
                   cap_fast_path=args.cap_fast_path, tracemalloc_frames=args.tracemalloc) as lab:
        client = LoadClient(lab.resolver)
        idle: dict[str, dict[str, Any]] = {}

        def idle_sample(label: str) -> None:
            client.wait_all()
            time.sleep(args.idle_pause)  # let in-flight lookups (5 s limit at most) finish
            seen = len(lab.monitor)
            deadline = time.monotonic() + args.sample_every * 2 + 5
            while len(lab.monitor) == seen and time.monotonic() < deadline:
                time.sleep(0.1)  # tasks are counted by the lab process itself: wait for its next sample
            snapshot = process_snapshot(lab.pid)
            stats = lab.control("stats")
            idle[label] = {**snapshot, "cache_entries": stats.get("cache_entries"),
                           "tasks": lab.monitor[-1]["tasks"] if len(lab.monitor) > seen else None}
            say(f"  idle after {label}: RSS {snapshot['rss_kb'] / 1024:.1f} MiB, {snapshot['fds']} fds "
                f"({snapshot['sockets']} sockets), {snapshot['threads']} threads, {idle[label]['tasks']} tasks, "
                f"{stats.get('cache_entries')} cache entries")

        def next_sample() -> dict[str, Any]:
            seen = len(lab.monitor)
            deadline = time.monotonic() + args.sample_every * 2 + 5
            while len(lab.monitor) == seen and time.monotonic() < deadline:
                time.sleep(0.1)
            return lab.monitor[-1] if lab.monitor else {}

        def memory_snapshot() -> None:
            if args.tracemalloc:
                seen = len(lab.tracemalloc)
                os.kill(lab.pid, signal.SIGUSR1)
                deadline = time.monotonic() + 120
                while len(lab.tracemalloc) == seen and time.monotonic() < deadline:
                    time.sleep(0.2)

        # Warm-up, part 1: every bounded cache to its bound.  The authoritative servers' reply caches
        # (dnslab.core.fastpath.ReplyCache, a fixed number of replies each) fill only as fast as new
        # questions reach each server: under this load the busier server of a zone fills its cache
        # in about two minutes, the other one (asked only when explored) in far more than ten.
        # Until then RSS grows with them, which is warm-up, not a leak.  So each server is asked
        # directly as many new questions in its own zones as its cache holds.
        down = set(lab.control("faults")["faults"] or {})
        before_fill = process_snapshot(lab.pid)
        filled = fill_reply_caches(lab, next_sample(), down)
        caches = next_sample()
        after_fill = process_snapshot(lab.pid)
        sizes = {a: v for a, v in caches.get("server_fast", {}).items() if a not in down}
        counted = caches.get("server_counted", {})
        full = [a for a, (n, bound) in sizes.items() if n >= bound]
        say(f"  warm-up: {filled:,} questions asked of the authoritative servers directly "
            f"({', '.join(sorted(down)) or 'none'} down: answers nothing, caches nothing, counts all); reply "
            f"caches now {sum(n for n, _ in sizes.values()):,} replies, {len(full)} of {len(sizes)} at their bound "
            f"({', '.join(sorted({str(b) for _, b in sizes.values()}))} each); query counters "
            f"{sum(n for n, _ in counted.values()):,} questions, "
            f"{sum(n >= b for n, b in counted.values())} of {len(counted)} at their bound; RSS "
            f"{before_fill['rss_kb'] / 1024:.1f} -> {after_fill['rss_kb'] / 1024:.1f} MiB")
        client.run(args.rate, warmup, pick)
        idle_sample("warm-up")
        memory_snapshot()
        at_start = lab.monitor[-1] if lab.monitor else {}
        sizes = {a: v for a, v in at_start.get("server_fast", {}).items() if a not in down}
        bounded = {
            # Its entries also leave when their TTL ends, so at idle it may be a little below:
            # what counts is that the churn had filled it during the warm-up.
            "RRset cache": (max([m.get("cache_entries") or 0 for m in lab.monitor] + [0]), args.cache_size),
            "resolver answer cache": (at_start.get("resolver_fast_entries") or 0,
                                      at_start.get("resolver_fast_bound") or 0),
            "server reply caches": (sum(n for n, _ in sizes.values()), sum(b for _, b in sizes.values())),
            "server query counters": (sum(n for n, _ in at_start.get("server_counted", {}).values()),
                                      sum(b for _, b in at_start.get("server_counted", {}).values())),
        }
        say("  bounded caches when the measurement starts (the RRset cache: its largest size so far): " + ", ".join(
            f"{name} {n:,} of {bound:,}" for name, (n, bound) in bounded.items()))
        mark = len(lab.monitor)
        next_report = [time.monotonic() + 60]

        def report(_elapsed: float) -> None:
            if time.monotonic() >= next_report[0] and lab.monitor:
                next_report[0] += 60
                last = lab.monitor[-1]
                fast = ""
                if "resolver_fast_entries" in last or "server_fast_entries" in last:
                    fast = (f", fast-path replies: resolver {last.get('resolver_fast_entries', '-')}, "
                            f"servers {last.get('server_fast_entries', '-')}; questions counted "
                            f"{sum(n for n, _ in last.get('server_counted', {}).values()):,}")
                say(f"  {time.monotonic() - started:5.0f} s: RSS {last['rss_kb'] / 1024:.1f} MiB, {last['fds']} fds, "
                    f"{last['tasks']} tasks, {last.get('cache_entries')} cache entries, "
                    f"{last.get('gc_objects'):,} objects{fast}")
            if not lab.alive():
                raise RuntimeError("the lab process died")

        client.run(args.rate, max(0.0, args.duration - warmup), pick, on_tick=report)
        # Tasks are only seen by the lab process itself: wait for its next sample at idle.
        idle_sample("the run")
        memory_snapshot()
        for report_ in lab.tracemalloc[1:]:
            say(f"  tracemalloc: {report_['growth_kb']:,} KiB more traced than after the warm-up "
                f"({report_['traced_kb']:,} KiB in all); largest changes:")
            for row in report_["top"]:
                say(f"    {row['kb']:>9,.1f} KiB {row['count']:>+8,} blocks  {' <- '.join(reversed(row['where']))}")
        samples = lab.monitor[mark:]
        alive = lab.alive()
        final = lab.stop()
    elapsed = time.monotonic() - started
    outcomes = client.done
    client.close()
    by_rcode = Counter(o.rcode or "no reply" for o in outcomes)
    unanswered = by_rcode.get("no reply", 0)
    say(f"soak: {len(outcomes):,} queries in {elapsed:.0f} s; replies by rcode: {dict(by_rcode)}")
    servfails = [o for o in outcomes if o.rcode == "SERVFAIL"]
    if servfails:
        say("  SERVFAIL for: " + ", ".join(f"{o.name} at {o.sent - started:.0f} s" for o in servfails[:10]))
    measured = [s for s in samples if "rss_kb" in s]
    if not measured:
        say("soak: no samples after the warm-up (duration too short?)")
        return 1
    baseline = measured[0]["rss_kb"]
    rss = [s["rss_kb"] for s in measured]
    deviation = max(abs(value - baseline) / baseline for value in rss)
    say(f"  RSS after warm-up: first {baseline / 1024:.1f} MiB, min {min(rss) / 1024:.1f}, max {max(rss) / 1024:.1f}, "
        f"last {rss[-1] / 1024:.1f} MiB over {len(rss)} samples: largest deviation {deviation * 100:.1f} %")
    fds = [s["fds"] for s in measured]
    tasks = [s["tasks"] for s in measured]
    cache = [s.get("cache_entries") or 0 for s in measured]
    objects = [s.get("gc_objects") or 0 for s in measured]
    say(f"  under load: fds {min(fds)}-{max(fds)} (first {fds[0]}, last {fds[-1]}), tasks {min(tasks)}-{max(tasks)} "
        f"(first {tasks[0]}, last {tasks[-1]}), cache entries {min(cache)}-{max(cache)}, "
        f"gc objects first {objects[0]:,} last {objects[-1]:,}")
    ok &= verdict(alive, "the lab process ran to the end")
    # Warm-up ends when every bounded cache is full: only then is the process in its steady state.
    ok &= verdict(all(n >= bound for n, bound in bounded.values()),
                  "every bounded cache was at its bound when the measurement started")
    ok &= verdict(deviation <= 0.10, f"RSS within ±10 % of its value after the warm-up (largest {deviation * 100:.1f} %, "
                  f"{(max(rss) - baseline) / 1024:+.1f} MiB at most)")
    before, after = idle.get("warm-up", {}), idle.get("the run", {})
    ok &= verdict(after.get("fds", 1e9) <= before.get("fds", 0),
                  f"open descriptors at idle: {before.get('fds')} after the warm-up, {after.get('fds')} at the end "
                  f"(sockets {before.get('sockets')} -> {after.get('sockets')})")
    ok &= verdict((after.get("tasks") or 1e9) <= (before.get("tasks") or 0) + 0,
                  f"asyncio tasks at idle: {before.get('tasks')} after the warm-up, {after.get('tasks')} at the end")
    ok &= verdict(max(cache) <= args.cache_size, f"cache entries never above cache_size {args.cache_size} "
                  f"(max {max(cache)})")
    ok &= verdict(unanswered == 0, f"every query answered ({unanswered} without a reply)")
    log = (final or {}).get("log", {})
    ok &= verdict(log.get("errors", 1) == 0, f"log: {log.get('errors')} ERROR records, "
                  f"{log.get('with_exception')} with an exception")
    print_log_kinds(log)
    say(f"soak: {'PASS' if ok else 'FAIL'} in {elapsed:.0f} s")
    return 0 if ok else 1


# =====================================================================================
# open-resolver: clients outside the allow list, and control requests without the token
# =====================================================================================


def control_raw(port: int, payload: bytes, timeout: float = 15.0) -> dict[str, Any] | None:
    """Send bytes to the control endpoint and read its one-line answer (None: closed without one)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        if payload:
            sock.sendall(payload)
        data = b""
        while not data.endswith(b"\n"):
            try:
                chunk = sock.recv(65536)
            except (ConnectionResetError, socket.timeout):
                break
            if not chunk:
                break
            data += chunk
    for line in data.splitlines():
        try:
            message = json.loads(line)
        except ValueError:
            continue
        if "ok" in message:
            return message
    return None



def cmd_open_resolver(args: argparse.Namespace) -> int:
    say("open-resolver: clients outside the allow list get REFUSED; the control endpoint refuses requests "
        "without its token")
    started = time.monotonic()
    ok = True
    outside, allowed = "127.0.0.2", "127.0.0.9"
    with tempfile.TemporaryDirectory(prefix="dnslab-open-") as tmp:
        work = Path(tmp)
        zones = work / "zones"
        shutil.copytree(SAMPLE_ZONES, zones)
        settings = (zones / "lab.toml").read_text()
        (zones / "lab.toml").write_text(settings + f'\n[resolver]\nallow = ["{allowed}/32"]\n')
        dnslab = Dnslab(sys.executable, work, work / "state", env={**os.environ, "XDG_RUNTIME_DIR": str(work / "run")})
        up = dnslab.up(zones, 0, timeout=60)
        try:
            state = LabState.read(up.state_path)
            resolver = (state.resolver_address or "127.0.0.1", state.port)
            # --- dnslab up with allow = ["127.0.0.9/32"] in lab.toml -----------------------
            refused, answered = Counter(), Counter()
            sent = 0

            def from_outside(target: tuple[str, int], label: str, source: str) -> None:
                nonlocal sent
                for index in range(args.queries):
                    for tcp, rd in ((False, True), (False, False), (True, True)):
                        if tcp and index % 10:
                            continue
                        name = f"refused-probe-{label}-{index}.example.com" if index % 2 else "www.example.com"
                        reply = ask(target, name, rd=rd, tcp=tcp, timeout=6, source=source)
                        sent += 1
                        key = f"{label} from {source}{' tcp' if tcp else ''}"
                        if rcode_text(reply) == "REFUSED" and not reply.answer and not reply.authority:
                            refused[key] += 1
                        else:
                            answered[key] += 1

            reply = ask(resolver, "www.example.com", source=allowed)
            ok &= verdict(rcode_text(reply) == "NOERROR" and addresses(reply) == {"192.0.2.1", "192.0.2.2", "192.0.2.3"},
                          f"dnslab up, allow {allowed}/32: a client at {allowed} is answered "
                          f"({rcode_text(reply)} {sorted(addresses(reply))})")
            for source in (outside, "127.0.0.1"):
                from_outside(resolver, "up", source)
            control = ControlClientFor(state)
            leaked: list[str] = []
            # --- dnslab resolver --allow 127.0.0.9/32 -------------------------------------------
            proc = dnslab.start("resolver", "resolver", "--root-hints", str(up.hints), "--listen", "127.0.0.1:0",
                                "--upstream-port", str(state.port), "--allow", f"{allowed}/32")
            try:
                port = int(proc.wait_output(r"resolver on 127\.0\.0\.1:(\d+)", 60).group(1))
                standalone = ("127.0.0.1", port)
                reply = ask(standalone, "www.example.com", source=allowed)
                ok &= verdict(rcode_text(reply) == "NOERROR" and bool(addresses(reply)),
                              f"dnslab resolver --allow {allowed}/32: a client at {allowed} is answered "
                              f"({rcode_text(reply)})")
                from_outside(standalone, "resolver", outside)
            finally:
                proc.stop(30)
            for server in _lab_addresses(zones):
                for item in control.call("queries", {"server": server})["queries"]:
                    if "refused-probe" in item["name"]:
                        leaked.append(f"{server} was asked {item['name']}")
            say(f"  {sent} queries from outside the allow list (UDP RD=1, RD=0, TCP): "
                f"REFUSED {dict(refused)}; answered otherwise {dict(answered) or 0}")
            ok &= verdict(not answered, f"every one of the {sent} queries from outside got REFUSED with empty sections")
            ok &= verdict(not leaked, f"none of them caused an upstream query ({len(leaked)} did)")
            for line in leaked[:5]:
                say("      " + line)

            # --- the control endpoint --------------------------------------------------------
            token = state.token
            before_faults = control.call("faults")["faults"]
            before_cache = control.call("stats")["cache_entries"]
            before_clock = control.call("clock")["now"]
            bad_tokens: list[tuple[str, Any]] = [
                ("no token", None), ("empty token", ""), ("random token", os.urandom(32).hex()),
                ("token minus its last character", token[:-1]), ("token plus a character", token + "0"),
                ("token in upper case", token.upper()), ("token as null", "null"), ("token as a number", 12345),
                ("token in a list", [token]), ("token in an object", {"token": token}),
            ]
            attempts = [("fault", {"server": "127.0.3.1", "kind": "down"}),
                        ("record.set", {"name": "www.example.com", "type": "A", "values": ["6.6.6.6"]}),
                        ("cache.flush", {}), ("clock.advance", {"seconds": 100}), ("reload", {}),
                        ("stats", {}), ("cache.show", {}), ("trace", {"name": "www.example.com"})]
            results: Counter[str] = Counter()
            accepted: list[str] = []
            for what, bad in bad_tokens:
                for command, command_args in attempts:
                    request: dict[str, Any] = {"command": command, "args": command_args}
                    if what != "no token":
                        request["token"] = None if bad == "null" else bad
                    answer = control_raw(state.control_port, json.dumps(request).encode() + b"\n")
                    if answer is None or answer.get("ok") is not False:
                        accepted.append(f"{what} / {command}: {answer}")
                    results["refused" if answer and answer.get("ok") is False else "other"] += 1
            odd_requests = [("the token under another key", json.dumps({"Token": token, "command": "stats"}).encode() + b"\n"),
                            ("not JSON", b"fault 127.0.3.1 down\n"), ("a JSON array", json.dumps([token, "stats"]).encode() + b"\n"),
                            ("a 100 KiB line", b'{"command": "stats", "pad": "' + b"x" * 100_000 + b'"}\n'),
                            ("an empty line", b"\n")]
            for what, payload in odd_requests:
                answer = control_raw(state.control_port, payload)
                if answer is not None and answer.get("ok") is not False:
                    accepted.append(f"{what}: {answer}")
                results["refused" if answer and answer.get("ok") is False else "closed without an answer"] += 1
            t0 = time.monotonic()
            silent = control_raw(state.control_port, b"", timeout=args.silent_timeout)
            silent_seconds = time.monotonic() - t0
            results["refused" if silent and silent.get("ok") is False else "closed without an answer"] += 1
            total = sum(results.values())
            say(f"  control endpoint: {total} requests without the right token: {dict(results)}; a silent client "
                f"was dropped after {silent_seconds:.1f} s")
            web_checked = web_check(state, token)
            if web_checked is not None:
                web_refused, web_total, web_positive = web_checked
                ok &= verdict(web_refused == web_total and web_positive,
                              f"web view (127.0.0.1:{state.web_port}): {web_refused} of {web_total} requests without "
                              f"the token, from another Host or another Origin refused with 403; with the token "
                              f"it answers ({'yes' if web_positive else 'no'})")
            after_faults = control.call("faults")["faults"]
            after_cache = control.call("stats")["cache_entries"]
            after_clock = control.call("clock")["now"]
            reply = ask(resolver, "www.example.com", source=allowed)
            unchanged = (after_faults == before_faults and after_cache >= before_cache
                         and abs(after_clock - before_clock) < 60 and addresses(reply) == {"192.0.2.1", "192.0.2.2", "192.0.2.3"})
            ok &= verdict(not accepted, f"every request without the right token was refused ({len(accepted)} were not)")
            for line in accepted[:5]:
                say("      " + line[:300])
            ok &= verdict(unchanged, "and none of them changed anything (faults, cache, clock, records as before)")
            ok &= verdict(control.call("ping") is not None, "with the right token the same endpoint answers (control)")
            mode = up.state_path.stat().st_mode & 0o777
            folder_mode = up.state_path.parent.stat().st_mode & 0o777
            ok &= verdict(mode == 0o600 and folder_mode == 0o700,
                          f"the token's state file is mode {mode:o} in a folder of mode {folder_mode:o}")
        finally:
            code = up.stop()
        ok &= verdict(code == 0, f"dnslab up stopped cleanly on SIGTERM (exit {code})")
        log = up.process.output()
        ok &= verdict("Traceback" not in log and " ERROR" not in log, "no errors in dnslab up's log")
    say(f"open-resolver: {'PASS' if ok else 'FAIL'} in {time.monotonic() - started:.0f} s")
    return 0 if ok else 1


def web_check(state: Any, token: str) -> tuple[int, int, bool] | None:
    """The web view, where `dnslab up` serves one: the same token, and no other Host or Origin."""
    import http.client
    port = getattr(state, "web_port", None)
    if not port:
        return None
    fault = json.dumps({"command": "fault", "args": {"server": "127.0.3.1", "kind": "down"}})
    requests = [
        ("POST", "/api/command", fault, {}),
        ("POST", "/api/command", fault, {"X-Dnslab-Token": "0" * 64}),
        ("POST", "/api/command", fault, {"X-Dnslab-Token": token[:-1]}),
        ("POST", "/api/command", fault, {"X-Dnslab-Token": token, "Host": "rebind.example:80"}),
        ("POST", "/api/command", fault, {"X-Dnslab-Token": token, "Origin": "http://evil.example"}),
        ("GET", "/api/events?token=wrong", None, {}),
        ("GET", "/api/state", None, {}),
        ("GET", "/api/trace/1", None, {}),
        ("GET", "/trace/1", None, {}),
    ]
    refused = 0
    for method, path, body, headers in requests:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            connection.request(method, path, body=body, headers={"Content-Type": "application/json", **headers})
            response = connection.getresponse()
            refused += response.status == 403
            response.read()
        finally:
            connection.close()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("POST", "/api/command", body=json.dumps({"command": "faults"}),
                           headers={"Content-Type": "application/json", "X-Dnslab-Token": token})
        response = connection.getresponse()
        positive = response.status == 200
        response.read()
    finally:
        connection.close()
    return refused, len(requests), positive


class ControlClientFor:
    def __init__(self, state: Any) -> None:
        self.client = ControlClient(state)

    def call(self, command: str, args: dict[str, Any] | None = None) -> Any:
        return self.client.call(command, args)


def _lab_addresses(zones_dir: Path) -> list[str]:
    """Every lab server's address, derived from the zone files as the lab derives them."""
    return [plan.address for plan in derive_hierarchy(load_zones(zone_files(zones_dir))[0]).servers]


# =====================================================================================
# zone-fuzz: mutated zone files give file:line errors, never tracebacks
# =====================================================================================

ZONE_TOKENS = [
    "$ORIGIN", "$TTL", "$INCLUDE", "$GENERATE", "$ORIGIN .", "$TTL 1h", "$TTL -1", "$TTL 4294967296", "@", "*",
    "(", ")", "((", "))", ";", "\"", "\\", "\\#", "\\# 2 abcd", "\\# 65535", "\\999", "\\.", "IN", "CH", "HS", "ANY",
    "SOA", "NS", "A", "AAAA", "CNAME", "DNAME", "MX", "TXT", "SRV", "PTR", "CAA", "TYPE0", "TYPE65535", "CLASS0",
    "TYPE65280 \\# 2 abcd", "0", "-1", "4294967295", "4294967296", "99999999999999999999", "1w2d3h4m5s", "1x",
    "256.1.1.1", "1.2.3", "::::", "2001:db8::1", "a" * 64, "b" * 63, ".".join(["c" * 63] * 5), "..", ".", "\x00",
    "\t", "\r", "\u00e9", "\u202e", "\ufeff", "$GENERATE 1-10 h$ A 192.0.2.$", "$GENERATE 1-3 ${-1,3,z} A 192.0.2.1",
    "$GENERATE 10-1 h$ A 192.0.2.1", "$GENERATE 1-100/0 h$ A 192.0.2.1", "$GENERATE 1-5 ${0,0,Q} A 192.0.2.1",
    "$INCLUDE nonexistent.zone", "$INCLUDE /nonexistent/x.zone sub", "$ORIGIN a..b.", "$UNICODE",
    "$GENERATE 1-20 $.x CNAME ${1,2,n}.y", "\"unterminated", "\"a\" \"b\"", "( 1 2", "1 2 )", "300 IN 300",
]


class ZoneMutator:
    """Byte, line and token mutations of the sample zone files (bounded: no device files, no huge $GENERATE)."""

    def __init__(self, seed: int, texts: list[str]) -> None:
        self.rng = random.Random(seed)
        self.texts = texts

    def mutate(self) -> str:
        r = self.rng
        text = r.choice(self.texts)
        for _ in range(r.randint(1, 4)):
            lines = text.split("\n")
            op = r.randrange(9)
            if op == 0 and text:  # delete a character
                at = r.randrange(len(text))
                text = text[:at] + text[at + 1:]
            elif op == 1:  # insert characters
                at = r.randrange(len(text) + 1)
                chars = "".join(r.choice("()\";\\$@*.\n\t 0123456789abcdefxyzIN-:#\x00\u00e9") for _ in range(r.randint(1, 5)))
                text = text[:at] + chars + text[at:]
            elif op == 2:  # replace a whitespace-separated token with a nasty one
                words = text.split(" ")
                words[r.randrange(len(words))] = r.choice(ZONE_TOKENS)
                text = " ".join(words)
            elif op == 3:  # insert a whole line
                lines.insert(r.randrange(len(lines) + 1), " ".join(r.choice(ZONE_TOKENS) for _ in range(r.randint(1, 5))))
                text = "\n".join(lines)
            elif op == 4 and len(lines) > 1:  # delete, duplicate or swap lines
                i, j = r.randrange(len(lines)), r.randrange(len(lines))
                choice = r.randrange(3)
                if choice == 0:
                    del lines[i]
                elif choice == 1:
                    lines.insert(j, lines[i])
                else:
                    lines[i], lines[j] = lines[j], lines[i]
                text = "\n".join(lines)
            elif op == 5:  # truncate
                text = text[:r.randrange(len(text) + 1)]
            elif op == 6:  # an overlong label or name in a record
                label = "x" * r.choice((63, 64, 100, 255))
                name = ".".join([label] * r.randint(1, 5))
                lines.insert(r.randrange(len(lines) + 1), f"{name} 300 IN A 192.0.2.1")
                text = "\n".join(lines)
            elif op == 7:  # flip a character to a random code point
                if text:
                    at = r.randrange(len(text))
                    text = text[:at] + chr(r.choice((0, 9, 10, 11, 12, 13, 34, 40, 41, 59, 92, 127, 0x85, 0xA0,
                                                     0x2028, 0xFFFD, r.randrange(32, 0x3000)))) + text[at + 1:]
            else:  # a directive out of place
                lines.insert(r.randrange(len(lines) + 1), r.choice([t for t in ZONE_TOKENS if t.startswith("$")]))
                text = "\n".join(lines)
        return text


_PROBLEM = re.compile(r"^(?P<file>.+?):(?P<line>\d+): (error|warning): .+")


def check_problems(problems: list[Any], text: str, filename: str) -> list[str]:
    """What is wrong with how a load reported its problems (empty: each is one line, at a real file:line).

    Lines are counted as the zone reader counts them (LF, CR and CRLF end a line);
    where a message quotes the line ("near: ..."), the quote must be that line.
    """
    wrong = []
    lines = re.split(r"\r\n|\r|\n", text)
    for problem in problems:
        rendered = str(problem)
        match = _PROBLEM.match(rendered)
        if match is None or "\n" in rendered or "\r" in rendered:
            wrong.append(f"not one line of file:line: severity: message: {rendered!r}")
            continue
        if problem.filename != filename:
            continue
        if not 1 <= problem.line <= len(lines):
            wrong.append(f"line {problem.line} outside 1..{len(lines)}: {rendered!r}")
            continue
        near = re.search(r" \(near: (.*)\)$", rendered)
        if near is not None and near.group(1) != lines[problem.line - 1].split(";", 1)[0].strip():
            wrong.append(f"quotes another line than {problem.line} ({lines[problem.line - 1]!r}): {rendered!r}")
    return wrong


LINE_SEPARATORS_PYTHON_ONLY = "\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"  # str.splitlines() breaks here, dnspython not


def report_kind(wrong: str, text: str) -> str:
    """Sort a reporting problem into the known bugs (see tests/test_reliability.py) or something new."""
    if "$INCLUDE \\n" in wrong or "$INCLUDE \\r" in wrong:
        return "known: a bare $INCLUDE reported over two lines"
    if "quotes another line" in wrong and any(sep in text for sep in LINE_SEPARATORS_PYTHON_ONLY):
        return "known: 'near:' quotes another line (form feed, U+2028 ... in the file)"
    return "NEW: " + re.sub(r"#\d+: ", "", wrong)[:80]


def cmd_zone_fuzz(args: argparse.Namespace) -> int:
    texts = [path.read_text() for path in sorted(SAMPLE_ZONES.glob("*.zone"))]
    mutator = ZoneMutator(args.seed, texts)
    started = time.monotonic()
    say(f"zone-fuzz: {args.count:,} mutated zone files in process (load_zone_text), "
        f"{args.cli_count:,} through `dnslab check-zone` in batches of {args.batch}")
    raised: list[str] = []
    badly_reported: list[str] = []
    report_kinds: Counter[str] = Counter()
    outcomes: Counter[str] = Counter()
    slowest = 0.0
    for index in range(args.count):
        text = mutator.mutate()
        t0 = time.monotonic()
        try:
            loaded = load_zone_text(text, filename="<mutated>")
        except Exception as exc:  # noqa: BLE001 - the finding
            raised.append(f"#{index}: {type(exc).__name__}: {exc}")
            if len(raised) <= 3:
                (Path(tempfile.gettempdir()) / f"zone-fuzz-raised-{index}.zone").write_text(text)
            continue
        slowest = max(slowest, time.monotonic() - t0)
        outcomes["loaded" if loaded.zone is not None else "rejected"] += 1
        wrong = check_problems(loaded.problems, text, "<mutated>")
        if wrong:
            badly_reported.append(f"#{index}: {wrong[0]}")
            report_kinds[report_kind(wrong[0], text)] += 1
    in_process = time.monotonic() - started
    say(f"  in process: {dict(outcomes)} in {in_process:.1f} s (slowest file {slowest * 1000:.0f} ms); "
        f"{len(raised)} raised, {len(badly_reported)} with a problem not at a file:line")
    for line in (raised + badly_reported)[:8]:
        say("      " + line[:400])
    kinds = report_kinds
    if kinds:
        say(f"      kinds: {dict(kinds)}")
    ok = verdict(not raised, f"load_zone_text never raised ({args.count:,} files)")
    ok &= verdict(not badly_reported, "every problem reads file:line: severity: message, with a line in the file")

    cli_started = time.monotonic()
    exits: Counter[int] = Counter()
    tracebacks = stray = 0
    stray_lines: list[str] = []
    with tempfile.TemporaryDirectory(prefix="dnslab-zone-fuzz-") as tmp:
        folder = Path(tmp)
        for batch_start in range(0, args.cli_count, args.batch):
            paths = []
            for index in range(batch_start, min(args.cli_count, batch_start + args.batch)):
                path = folder / f"mutated-{index:05d}.zone"
                path.write_text(mutator.mutate())
                paths.append(path)
            run = subprocess.run([sys.executable, "-m", "dnslab", "check-zone", *map(str, paths)], cwd=tmp,
                                 capture_output=True, text=True, timeout=args.timeout)
            exits[run.returncode] += 1
            tracebacks += run.stderr.count("Traceback") + run.stdout.count("Traceback")
            names = tuple(str(p) for p in paths)
            for line in run.stdout.split("\n")[:-1]:  # print() ends lines with \n only
                if _PROBLEM.match(line) and line.startswith(names):
                    continue
                if re.match(r"^.+: (zone \S+ loaded: |not loaded \()", line) and line.startswith(names):
                    continue
                stray += 1
                stray_lines.append(line)
            if run.stderr.strip():
                stray += 1
                stray_lines.append("stderr: " + run.stderr.strip().splitlines()[-1])
            for path in paths:
                path.unlink()
    cli_seconds = time.monotonic() - cli_started
    say(f"  dnslab check-zone: {args.cli_count:,} files in {sum(exits.values())} runs ({cli_seconds:.1f} s); "
        f"exit codes {dict(exits)}; {tracebacks} tracebacks; {stray} lines not of the form file:line: or summary")
    for line, count in Counter(stray_lines).most_common(5):
        say(f"      {count} x {line[:300]!r}")
    ok &= verdict(set(exits) <= {0, 1} and tracebacks == 0 and stray == 0,
                  "check-zone: exit 0 or 1, only file:line: lines and summaries, never a traceback")
    say(f"zone-fuzz: {'PASS' if ok else 'FAIL'} in {time.monotonic() - started:.0f} s")
    return 0 if ok else 1


# =====================================================================================
# main
# =====================================================================================


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True, metavar="CHECK")

    host = commands.add_parser("_host")  # the lab process of every check; no help: not listed
    host.add_argument("--zones", required=True)
    host.add_argument("--state", required=True, help="the folder of the lab's state file (lab-PORT.json)")
    host.add_argument("--set", action="append")
    host.add_argument("--start-down", default=None)
    host.add_argument("--monitor-every", type=float, default=5.0)
    host.add_argument("--gc", action="store_true")
    host.add_argument("--debug", action="store_true")
    host.add_argument("--cap-fast-path", type=int, default=None)
    host.add_argument("--tracemalloc", type=int, default=0, help="frames per traceback; SIGUSR1 snapshots")
    host.add_argument("--loop", choices=["auto", "asyncio", "uvloop"], default="auto")
    host.add_argument("--dnssec", action="store_true")

    fuzz = commands.add_parser("fuzz", help="random and mutated packets at the resolver and an authoritative server")
    fuzz.add_argument("--count", type=int, default=1_000_000, help="packets in all (split over the targets)")
    fuzz.add_argument("--seed", type=int, default=1)
    fuzz.add_argument("--targets", default="resolver,authority")
    fuzz.add_argument("--authority", default="127.0.3.1", help="the authoritative server to fuzz")
    fuzz.add_argument("--check-every", type=int, default=10_000)
    fuzz.add_argument("--dnssec", action="store_true",
                      help="sign the lab: the servers' DO=1 paths and the validating resolver get the packets")
    fuzz.add_argument("--window", type=int, default=100,
                      help="packets sent before a pacing query must be answered (keeps the socket buffer from "
                           "overflowing)")
    fuzz.add_argument("--progress", type=float, default=30.0)

    spoof = commands.add_parser("spoof", help="forged replies sprayed at the resolver's ports while it waits")
    spoof.add_argument("--forged", type=int, default=100_000, help="forged replies to send at least")
    spoof.add_argument("--min-rounds", type=int, default=100, help="client questions to attack at least")
    spoof.add_argument("--delay", type=float, default=300.0, help="ms the slowed server takes to answer")
    spoof.add_argument("--jitter", type=float, default=100.0, help="ms of jitter on that delay")
    spoof.add_argument("--address", default="6.6.6.6", help="the forged answer")
    spoof.add_argument("--round-limit", type=float, default=2.0, help="seconds of spraying per question at most")
    spoof.add_argument("--max-seconds", type=float, default=300.0)
    spoof.add_argument("--seed", type=int, default=5)

    commands.add_parser("poison", help="a malicious authoritative server tries to plant data in the cache")
    limits = commands.add_parser("limits", help="loops, NXNS-style referrals, long chains: quick bounded SERVFAIL")
    limits.add_argument("--time-limit", type=float, default=1.0, help="seconds each SERVFAIL may take")

    storm = commands.add_parser("storm", help="half the servers go down under load, then come back")
    storm.add_argument("--rate", type=float, default=50.0)
    storm.add_argument("--before", type=float, default=15.0)
    storm.add_argument("--during", type=float, default=40.0)
    storm.add_argument("--after", type=float, default=60.0)
    storm.add_argument("--flush-every", type=float, default=10.0)
    storm.add_argument("--client-timeout", type=float, default=6.0)
    storm.add_argument("--hold-down", type=float, default=5.0, help="the resolver's hold_down setting")
    storm.add_argument("--probe-interval", type=float, default=10.0,
                       help="the resolver's probe_interval setting: the recovery bound")
    storm.add_argument("--slack", type=float, default=2.0,
                       help="seconds added to the bound for the next query that needs a server, and loop lag")
    storm.add_argument("--view-every", type=float, default=2.0, help="seconds between looks at the resolver's servers")
    storm.add_argument("--seed", type=int, default=11)

    zone_fuzz = commands.add_parser("zone-fuzz", help="mutated zone files: file:line errors, never tracebacks")
    zone_fuzz.add_argument("--count", type=int, default=20_000, help="mutated files loaded in process")
    zone_fuzz.add_argument("--cli-count", type=int, default=2_000, help="mutated files given to dnslab check-zone")
    zone_fuzz.add_argument("--batch", type=int, default=200, help="files per check-zone run")
    zone_fuzz.add_argument("--timeout", type=float, default=120.0, help="seconds one check-zone run may take")
    zone_fuzz.add_argument("--seed", type=int, default=13)

    open_resolver = commands.add_parser("open-resolver", help="REFUSED outside the allow list; control needs the token")
    open_resolver.add_argument("--queries", type=int, default=100, help="questions per client and resolver")
    open_resolver.add_argument("--silent-timeout", type=float, default=15.0,
                               help="seconds to wait for the control endpoint to drop a silent client")

    soak = commands.add_parser("soak", help="steady load with cache churn: RSS, descriptors and tasks stay flat")
    soak.add_argument("--duration", type=float, default=600.0)
    soak.add_argument("--rate", type=float, default=100.0)
    soak.add_argument("--cache-size", type=int, default=1000)
    soak.add_argument("--names", type=int, default=20_000)
    soak.add_argument("--warmup", type=float, default=None)
    soak.add_argument("--sample-every", type=float, default=10.0)
    soak.add_argument("--idle-pause", type=float, default=6.0)
    soak.add_argument("--seed", type=int, default=3)
    soak.add_argument("--tracemalloc", type=int, default=0, metavar="FRAMES",
                      help="diagnosis: trace the lab's allocations (FRAMES deep) and list what grew after the "
                           "warm-up (slows the lab; RSS then includes tracemalloc's own memory)")
    soak.add_argument("--cap-fast-path", type=int, default=None,
                      help="diagnosis: bound dnslab's wire-level reply caches to N entries in the lab process")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler = {"_host": cmd_host, "fuzz": cmd_fuzz, "spoof": cmd_spoof, "poison": cmd_poison,
               "limits": cmd_limits, "storm": cmd_storm, "soak": cmd_soak,
               "zone-fuzz": cmd_zone_fuzz, "open-resolver": cmd_open_resolver}[args.command]
    return handler(args)


if __name__ == "__main__":
    sys.exit(main())
