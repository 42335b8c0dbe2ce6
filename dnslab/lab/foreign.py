"""Running real DNS software as lab members: a foreign resolver in place of dnslab's, and foreign
authoritative servers behind the lab's fault layer.

The configuration comes from dnslab.lab.programs (sans-I/O); here it is written into a folder of the
lab's own (runtime folder/foreign-PORT/NAME), the program started in the foreground as a child in a
session of its own (dnslab.lab.processes.Managed), waited for until it answers (bounded), and stopped
with the lab.

A foreign *server* does not take the lab server's address and port itself: it listens on the same
address at a free port of its own, and the lab server's listener, with its `FaultyServer` (faults,
query counts), forwards each query to it unchanged and sends back its reply unchanged.  So every
fault, `dnslab queries` and the web view's hierarchy work as with dnslab's own servers; the cost is
one more loopback exchange per query (docs/FOREIGN.md gives the figure).
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import struct
import subprocess
import time
from pathlib import Path

import dns.message
import dns.rdatatype

from dnslab.core.errors import ConfigError, DnslabError
from dnslab.core.zone import Zone
from dnslab.dnssec.signing import zone_text
from dnslab.lab.processes import Managed, find_binary, tail
from dnslab.lab.programs import (RESOLVER_CONFS, SERVER_CONFS, Program, ResolverSetup, ServerSetup,
                                 pdns_recursor_lua, resolver_argv, server_argv)

START_TIMEOUT = 20.0    # seconds for a program to answer its first query
FORWARD_TIMEOUT = 3.0   # seconds a forwarded query waits for the foreign server's reply
BIND_TRIES = 5          # a free port can be taken before the program binds it: try another, bounded


def binary_of(program: Program) -> str:
    """The program's executable, or the one-line error naming the Debian package."""
    binary = find_binary(program.binary)
    if binary is None:
        raise ConfigError(program.missing())
    return binary


def probe(address: str, port: int, timeout: float = 0.5) -> bool:
    """Whether anything answers a DNS query on address:port now (any reply with our ID counts)."""
    query = dns.message.make_query("localhost.", dns.rdatatype.A)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.sendto(query.to_wire(), (address, port))
            data = sock.recv(65535)
        except OSError:
            return False
    return len(data) >= 2 and data[:2] == query.to_wire()[:2]


def wait_answering(process: Managed, address: str, port: int, log: Path, timeout: float = START_TIMEOUT) -> None:
    """Until the program answers on address:port; RuntimeError with its output and log if it exits or
    the time runs out (bounded)."""
    deadline = time.monotonic() + timeout
    while True:
        if probe(address, port):
            return
        if not process.alive() or time.monotonic() > deadline:
            why = (f"exited with status {process.popen.returncode}" if not process.alive()
                   else f"did not answer on {address}:{port} within {timeout:g} s")
            logged = log.read_text(errors="replace") if log.exists() and log != process.log else ""
            process.stop()
            raise DnslabError(f"{process.name} {why}:\n{tail(process.output() + logged)}")
        time.sleep(0.05)


def free_port(address: str) -> int:
    """A UDP and TCP port free on *address* right now (the kernel's choice)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
        tcp.bind((address, 0))
        port = tcp.getsockname()[1]
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind((address, port))
    return port


class ForeignResolver:
    """Unbound, kresd or BIND as the lab's recursive resolver, on the lab resolver's address and port."""

    def __init__(self, program: Program, setup: ResolverSetup, hints_text: str) -> None:
        self.program = program
        self.setup = setup
        self.hints_text = hints_text
        self.binary = binary_of(program)
        name, _ = RESOLVER_CONFS[program.name]
        self.conf = setup.workdir / name
        self.process: Managed | None = None

    def start(self) -> None:
        """Write the hints and the configuration, start the program, wait until it answers (blocking)."""
        setup = self.setup
        try:
            setup.workdir.mkdir(parents=True, exist_ok=True)
            setup.hints.write_text(self.hints_text, encoding="utf-8")
            _, render = RESOLVER_CONFS[self.program.name]
            self.conf.write_text(render(setup), encoding="utf-8")
            if self.program.name == "pdns-recursor":
                (setup.workdir / "recursor.lua").write_text(pdns_recursor_lua(setup), encoding="utf-8")
            setup.log.unlink(missing_ok=True)
            shutil.rmtree(setup.workdir / "cache", ignore_errors=True)  # kresd's cache outlives it: start cold
        except OSError as exc:
            raise ConfigError(f"cannot write {self.program.title}'s files in {setup.workdir}: "
                              f"{exc.strerror or exc}") from None
        if probe(setup.address, setup.port, 0.2):
            raise ConfigError(f"something already answers on {setup.address}:{setup.port}: "
                              f"{self.program.title} cannot listen there")
        # kresd and the PowerDNS Recursor log to their output
        output = setup.log if self.program.name in ("kresd", "pdns-recursor") else setup.workdir / "output.log"
        self.process = Managed(self.program.title, resolver_argv(self.program, self.binary, setup, self.conf),
                               output, cwd=setup.workdir)
        wait_answering(self.process, setup.address, setup.port, setup.log)

    def stop(self) -> None:
        if self.process is not None:
            process, self.process = self.process, None
            process.stop()

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.alive()

    def flush(self, name: str | None = None, tree: bool = False) -> str:
        """Forget the cache, a name or a subtree, as `dnslab cache flush` asks; only Unbound has a
        control tool the lab drives (unbound-control over the lab's control socket)."""
        if self.program.name != "unbound":
            raise DnslabError(f"dnslab cache flush reaches dnslab's own resolver and Unbound only, "
                              f"not {self.program.title}: restart the lab to start {self.program.title} cold")
        control = find_binary("unbound-control")
        if control is None:
            raise DnslabError("unbound-control is not installed (Debian: apt-get install unbound)")
        if name is None:
            steps = [["flush_zone", "."], ["flush_bogus"], ["flush_negative"], ["flush_infra", "all"]]
        elif tree:
            steps = [["flush_zone", name]]
        else:
            steps = [["flush", name]]  # its A, AAAA, NS, SOA, CNAME, DNAME, MX, PTR, SRV, NAPTR
        said = []
        for step in steps:
            result = subprocess.run([control, "-c", str(self.conf), *step], capture_output=True, text=True,
                                    timeout=10)
            if result.returncode != 0:
                raise DnslabError(f"unbound-control {' '.join(step)} failed: "
                                  f"{(result.stdout + result.stderr).strip()}")
            said.append(result.stdout.strip())
        return said[0]  # the first step's count (removed N rrsets, M messages ...)


class ForeignServer:
    """NSD, BIND or Knot DNS serving one lab server's zones, on its address at a port of its own, behind the
    lab's fault layer (`forward` is that server's handler)."""

    def __init__(self, program: Program, address: str, workdir: Path) -> None:
        self.program = program
        self.address = address
        # named listens only on addresses configured on an interface (it scans them), and 127.0.3.1 is
        # not one on Linux: BIND listens on 127.0.0.1 at a port of its own; the lab's proxy makes no
        # difference to a client.  NSD binds the lab server's own address.
        self.listen_address = "127.0.0.1" if program.name == "bind" else address
        self.workdir = workdir
        self.binary = binary_of(program)
        self.port = 0
        self.process: Managed | None = None

    def start(self, zones: list[Zone], signed: bool) -> None:
        """Write the zones (the lab's own files, or the signed text) and the configuration; start the
        program on a free port; wait until it answers (blocking, bounded)."""
        try:
            self.workdir.mkdir(parents=True, exist_ok=True)
            files = []
            for zone in zones:
                source = Path(zone.filename) if zone.filename else None
                if signed or source is None or not source.is_file():
                    source = self.workdir / f"{zone.origin.to_text(omit_final_dot=True) or 'root'}.zone"
                    source.write_text(zone_text(zone), encoding="utf-8")
                files.append((zone.origin.to_text(), source.resolve()))
        except OSError as exc:
            raise ConfigError(f"cannot write {self.program.title}'s files in {self.workdir}: "
                              f"{exc.strerror or exc}") from None
        name, render = SERVER_CONFS[self.program.name]
        conf = self.workdir / name
        for attempt in range(BIND_TRIES):
            self.port = free_port(self.listen_address)
            setup = ServerSetup(self.listen_address, self.port, self.workdir, tuple(files))
            conf.write_text(render(setup), encoding="utf-8")
            setup.log.unlink(missing_ok=True)
            self.process = Managed(self.program.title, server_argv(self.program, self.binary, conf),
                                   self.workdir / "output.log", cwd=self.workdir)
            try:
                wait_answering(self.process, self.listen_address, self.port, setup.log)
                return
            except DnslabError as exc:
                self.process = None
                if attempt + 1 == BIND_TRIES or "in use" not in str(exc):
                    raise

    def stop(self) -> None:
        if self.process is not None:
            process, self.process = self.process, None
            process.stop()

    async def forward(self, wire: bytes, via_tcp: bool, peer: object) -> bytes | None:
        """The lab server's handler: the query to the program as it came, its reply as it came back
        (None, so silence, when it does not answer in time)."""
        try:
            if via_tcp:
                return await asyncio.wait_for(self._tcp(wire), FORWARD_TIMEOUT)
            return await asyncio.wait_for(self._udp(wire), FORWARD_TIMEOUT)
        except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError):
            return None

    async def _udp(self, wire: bytes) -> bytes:
        loop = asyncio.get_running_loop()
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setblocking(False)
        try:
            sock.connect((self.listen_address, self.port))
            await loop.sock_sendall(sock, wire)
            while True:  # only the reply to this query (same ID) ends the wait
                data = await loop.sock_recv(sock, 65535)
                if data[:2] == wire[:2]:
                    return data
        finally:
            sock.close()

    async def _tcp(self, wire: bytes) -> bytes:
        reader, writer = await asyncio.open_connection(self.listen_address, self.port)
        try:
            writer.write(struct.pack("!H", len(wire)) + wire)
            await writer.drain()
            size = struct.unpack("!H", await reader.readexactly(2))[0]
            return await reader.readexactly(size)
        finally:
            writer.close()
