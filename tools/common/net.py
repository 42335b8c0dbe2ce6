"""Loopback plumbing: free ports, a UDP socket's drop counter, and questions made by hand.

The hand-made queries serve tools that must run without a DNS library (`scripts/bench` may run
under any python3); tools run with dnslab's venv ask with dnspython (`tools.common.asking`).
"""

from __future__ import annotations

import socket
import struct
import sys
import time
from pathlib import Path

from tools.common.procs import Managed
from tools.common.report import tail

QTYPES = {"A": 1, "NS": 2, "CNAME": 5, "SOA": 6, "MX": 15, "TXT": 16, "AAAA": 28, "SRV": 33, "CAA": 257}
RCODES = {0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED"}


def free_port(host: str) -> int:
    """A port free for both UDP and TCP on host (the servers bind both); bounded tries."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind((host, 0))
            port = udp.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
                try:
                    tcp.bind((host, port))
                except OSError:
                    continue
                return port
    raise RuntimeError(f"no free port on {host}")


def udp_drops(address: tuple[str, int]) -> int | None:
    """The kernel's drop counter of the UDP socket bound to address (/proc/net/udp), or None."""
    try:
        packed = socket.inet_aton(address[0])
    except OSError:
        return None
    local = f"{int.from_bytes(packed, sys.byteorder):08X}:{address[1]:04X}"
    try:
        lines = Path("/proc/net/udp").read_text().splitlines()[1:]
    except OSError:
        return None
    for line in lines:
        fields = line.split()
        if len(fields) > 12 and fields[1] == local:
            return int(fields[-1])
    return None


def query_wire(name: str, qtype: str, ident: int, rd: bool = True, qclass: int = 1, edns: bool = True) -> bytes:
    """A query in wire format, made by hand (no DNS library)."""
    labels = [label for label in name.rstrip(".").split(".") if label]
    qname = b"".join(bytes([len(label)]) + label.encode() for label in labels) + b"\0"
    header = struct.pack("!HHHHHH", ident, 0x0100 if rd else 0, 1, 0, 0, 1 if edns else 0)
    opt = b"\0" + struct.pack("!HHIH", 41, 1232, 0, 0) if edns else b""
    return header + qname + struct.pack("!HH", QTYPES.get(qtype.upper(), 1), qclass) + opt


def ask_rcode(address: tuple[str, int], wire: bytes, timeout: float) -> int | None:
    """Send one query over UDP; the reply's rcode, or None without a reply in time."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.sendto(wire, address)
            while True:
                data, _ = sock.recvfrom(65535)
                if data[:2] == wire[:2]:
                    return data[3] & 0x0F
        except OSError:
            return None


def wait_answering(address: tuple[str, int], process: Managed, timeout: float, what: str,
                   probe: bytes | None = None) -> None:
    """Until a server answers *probe* (by default a question it answers without resolving:
    version.server CH TXT); RuntimeError with its log's tail if it exits or the time runs out."""
    probe = probe or query_wire("version.server", "TXT", 4242, rd=False, qclass=3, edns=False)
    deadline = time.monotonic() + timeout
    while True:
        if not process.alive():
            raise RuntimeError(f"{what} exited with status {process.popen.returncode}:\n{tail(process.output())}")
        if ask_rcode(address, probe, 0.2) is not None:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} on {address[0]}:{address[1]} did not answer in time:\n"
                               + tail(process.output()))
        time.sleep(0.02)  # refused (not bound yet) returns at once: no busy loop
