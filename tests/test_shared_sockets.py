"""The shared sockets (services/shared_sockets.py): every lab server address from one UDP and one
TCP socket on 0.0.0.0, with real packets on loopback; the ancillary data and the choice of
sockets (lab/sockets.py) without sockets."""

from __future__ import annotations

import asyncio
import os
import socket
import struct
from pathlib import Path
from typing import Any, Callable

import dns.exception
import dns.flags
import dns.message
import dns.query
import dns.rcode
import pytest

from dnslab.core.errors import ConfigError
from dnslab.lab import sockets
from dnslab.lab.runtime import LabSettings
from dnslab.services import shared_sockets
from dnslab.services.capture import Packet
from dnslab.services.shared_sockets import SharedListener
from dnslab.services.transport import DnsListener
from dnslab.testing import DnsLab

from conftest import tcp_exchange

linux_only = pytest.mark.skipif(not shared_sockets.supported(), reason="the shared sockets need Linux's IP_PKTINFO")
PKTINFO = shared_sockets.PKTINFO or 8


# --- sans-I/O: the ancillary data, and which sockets a lab gets ---------------------------------

def test_the_destination_is_read_from_in_pktinfo() -> None:
    data = struct.pack("=i4s4s", 1, socket.inet_aton("127.0.3.1"), socket.inet_aton("127.0.3.2"))
    # ipi_addr (the header's destination) is the address asked, not ipi_spec_dst.
    assert shared_sockets.destination_bytes([(socket.IPPROTO_IP, PKTINFO, data)]) == socket.inet_aton("127.0.3.2")
    assert shared_sockets.destination_bytes([(socket.SOL_SOCKET, PKTINFO, data)]) is None  # another level
    assert shared_sockets.destination_bytes([(socket.IPPROTO_IP, PKTINFO, data[:8])]) is None  # cut short
    assert shared_sockets.destination_bytes([]) is None


def test_the_reply_source_is_ipi_spec_dst() -> None:
    [(level, kind, data)] = shared_sockets.source("127.0.3.1")
    assert (level, kind) == (socket.IPPROTO_IP, PKTINFO)
    ifindex, spec_dst, addr = struct.unpack("=i4s4s", data)
    assert (ifindex, socket.inet_ntoa(spec_dst), addr) == (0, "127.0.3.1", bytes(4))


def test_only_loopback_clients_are_served() -> None:
    assert shared_sockets.loopback("127.0.0.1") and shared_sockets.loopback("127.200.3.4")
    assert not shared_sockets.loopback("192.168.1.10") and not shared_sockets.loopback("10.127.0.1")


def test_a_socket_pair_per_address_unless_asked_or_past_the_limit() -> None:
    assert sockets.plan(None, 100, 20_000, supported=True) == sockets.SocketPlan(False)
    assert sockets.plan(False, 18_000, 20_000, supported=True) == sockets.SocketPlan(False)
    past = sockets.plan(None, 18_000, 20_000, supported=True)
    assert past.shared and "about 37,024 descriptors, the limit is 20,000" in (past.note or "")
    asked = sockets.plan(True, 26, 20_000, supported=True)
    assert asked.shared and "(asked;" in (asked.note or "")


def test_without_ip_pktinfo_each_address_keeps_its_sockets_and_says_why() -> None:
    fallback = sockets.plan(True, 26, 20_000, supported=False)
    assert not fallback.shared and "IP_PKTINFO" in (fallback.note or "")
    assert not sockets.plan(None, 18_000, 20_000, supported=False).shared


def test_a_real_resolver_program_cannot_listen_beside_the_shared_sockets() -> None:
    with pytest.raises(ConfigError, match="SO_REUSEPORT"):
        sockets.plan(True, 26, 20_000, supported=True, resolver_program="Unbound")
    auto = sockets.plan(None, 18_000, 20_000, supported=True, resolver_program="Unbound")
    assert not auto.shared and "Unbound resolver cannot listen" in (auto.note or "")


def test_a_part_of_a_split_lab_keeps_a_socket_pair_per_address() -> None:
    with pytest.raises(ConfigError, match="--only"):
        sockets.plan(True, 26, 20_000, supported=True, split=True)
    auto = sockets.plan(None, 18_000, 20_000, supported=True, split=True)
    assert not auto.shared and "split lab" in (auto.note or "")


def test_lab_toml_shared_sockets_is_true_or_false(tmp_path: Path) -> None:
    (tmp_path / "lab.toml").write_text("shared_sockets = true\n")
    assert LabSettings.load(tmp_path / "lab.toml").shared_sockets is True
    assert LabSettings.load(tmp_path / "none.toml").shared_sockets is None
    (tmp_path / "lab.toml").write_text('shared_sockets = "yes"\n')
    with pytest.raises(ConfigError, match="shared_sockets must be true or false"):
        LabSettings.load(tmp_path / "lab.toml")


# --- the kernel: who gets what on one port ------------------------------------------------------

@linux_only
def test_a_specific_socket_keeps_its_address_beside_the_wildcard() -> None:
    """Linux delivers to the most specific bound socket: 127.0.0.1:P to its own listener (the
    resolver's place), 127.0.3.1:P to the shared one, over UDP and TCP."""
    def answer(tag: bytes) -> Callable[..., bytes]:
        return lambda wire, via_tcp, peer: wire[:2] + tag  # an echo of the ID, and who answered

    async def main() -> dict[tuple[str, bool], bytes]:
        shared = SharedListener(0)
        await shared.start()
        specific = DnsListener("127.0.0.1", shared.port, answer(b"specific"), reuse_port=True)
        try:
            await specific.start()
            shared.attach("127.0.3.1", answer(b"shared"))
            seen = {}
            for host in ("127.0.0.1", "127.0.3.1"):
                seen[host, False] = await asyncio.to_thread(udp_exchange, host, shared.port, b"\x12\x34")
                seen[host, True] = await asyncio.to_thread(tcp_exchange, host, shared.port, b"\x12\x34", 5)
            return seen
        finally:
            await specific.stop()
            await shared.stop()

    seen = asyncio.run(main())
    assert seen == {("127.0.0.1", False): b"\x12\x34specific", ("127.0.0.1", True): b"\x12\x34specific",
                    ("127.0.3.1", False): b"\x12\x34shared", ("127.0.3.1", True): b"\x12\x34shared"}


@linux_only
def test_a_port_someone_holds_is_refused_as_already_in_use() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]

        async def main() -> None:
            await SharedListener(port).start()

        with pytest.raises(Exception, match=f"cannot listen on 0.0.0.0:{port} \\(UDP\\): the address is already in use"):
            asyncio.run(main())


def udp_exchange(host: str, port: int, wire: bytes, timeout: float = 5.0) -> bytes | None:
    """One datagram and its reply, which must come from the address asked (None: no reply in time)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        sock.sendto(wire, (host, port))
        try:
            data, source = sock.recvfrom(65535)
        except socket.timeout:
            return None
        assert source == (host, port)
        return data


# --- a lab on the shared sockets ----------------------------------------------------------------

@pytest.fixture
def shared_lab(make_dns_lab: Callable[..., DnsLab]) -> DnsLab:
    if not shared_sockets.supported():
        pytest.skip("the shared sockets need Linux's IP_PKTINFO")
    lab = make_dns_lab(shared_sockets=True)
    assert lab.lab.sockets.shared
    return lab


def test_every_server_answers_from_its_own_address_over_udp_and_tcp(shared_lab: DnsLab) -> None:
    for running in shared_lab.lab.servers[:6]:
        zone = running.plan.zones[0].origin
        query = dns.message.make_query(zone, "SOA")
        reply = dns.message.from_wire(udp_exchange(running.plan.address, shared_lab.port, query.to_wire()) or b"")
        assert reply.rcode() == dns.rcode.NOERROR and reply.id == query.id
        assert reply.answer[0].name == zone and reply.flags & dns.flags.AA
        over_tcp = dns.query.tcp(query, running.plan.address, port=shared_lab.port, timeout=5)
        assert over_tcp.answer == reply.answer


def test_the_resolver_walks_the_hierarchy_on_the_shared_sockets(shared_lab: DnsLab) -> None:
    answer = shared_lab.resolver.resolve("www.example.com", "A")
    assert [r.address for r in answer] == ["192.0.2.1", "192.0.2.2", "192.0.2.3"]
    walked = {e["address"] for e in shared_lab.last_trace if e["event"] == "reply"}
    assert walked and all(address.startswith("127.0.") for address in walked)
    # The per-server counts hang off the same handler as with a socket pair per address.
    served = [shared_lab.server(address) for address in walked]
    assert sum(server.queries["www.example.com.", "A"] for server in served) >= 1


def test_the_lab_holds_two_sockets_for_all_its_servers(shared_lab: DnsLab) -> None:
    port = shared_lab.port
    mine = {os.readlink(f"/proc/self/fd/{fd}") for fd in os.listdir("/proc/self/fd")
            if _exists(f"/proc/self/fd/{fd}")}
    inodes = {link[len("socket:["):-1] for link in mine if link.startswith("socket:[")}
    bound = [line.split() for name in ("/proc/net/udp", "/proc/net/tcp")
             for line in Path(name).read_text().splitlines()[1:]]
    on_port = [fields for fields in bound if int(fields[1].split(":")[1], 16) == port and fields[9] in inodes
               and fields[3] in ("07", "0A")]  # UDP sockets, and TCP listeners
    locals_ = sorted(socket.inet_ntoa(struct.pack("<I", int(f[1].split(":")[0], 16))) for f in on_port)
    assert len(shared_lab.lab.servers) == 26
    # The wildcard pair, then the resolver's and each level's own pair: none for any lab server.
    assert locals_.count("0.0.0.0") == 2
    assert not any(shared_lab.lab.hierarchy.server_at(address) for address in locals_)


def _exists(path: str) -> bool:
    try:
        os.readlink(path)
        return True
    except OSError:
        return False


def test_an_address_that_is_no_lab_server_gets_nothing(shared_lab: DnsLab) -> None:
    query = dns.message.make_query("example.com", "SOA").to_wire()
    assert udp_exchange("127.0.9.9", shared_lab.port, query, timeout=0.5) is None
    with pytest.raises((ConnectionError, EOFError, dns.exception.DNSException)):
        dns.query.tcp(dns.message.make_query("example.com", "SOA"), "127.0.9.9", port=shared_lab.port, timeout=5)
    assert shared_lab.lab._shared is not None and shared_lab.lab._shared.dropped >= 1


def test_down_is_silent_and_unreachable_drops_and_resets(shared_lab: DnsLab) -> None:
    ns1 = shared_lab.server("ns1.example.com")
    query = dns.message.make_query("www.example.com", "A")
    ns1.down()
    assert udp_exchange("127.0.3.1", shared_lab.port, query.to_wire(), timeout=0.5) is None
    assert ns1.queries["www.example.com.", "A"] == 1  # heard, not answered: the handler's fault
    ns1.unreachable()
    assert shared_lab.faults()["127.0.3.1"] == ["unreachable"]
    assert udp_exchange("127.0.3.1", shared_lab.port, query.to_wire(), timeout=0.5) is None
    with pytest.raises(ConnectionResetError):  # the connection is made, then reset: no port is closed here
        tcp_exchange("127.0.3.1", shared_lab.port, query.to_wire(), timeout=5)
    assert ns1.queries["www.example.com.", "A"] == 1  # the handler never saw them
    ns1.up()
    reply = dns.message.from_wire(udp_exchange("127.0.3.1", shared_lab.port, query.to_wire()) or b"")
    assert reply.rcode() == dns.rcode.NOERROR and len(reply.answer[0]) == 3
    assert dns.query.tcp(query, "127.0.3.1", port=shared_lab.port, timeout=5).answer == reply.answer


def test_a_capture_sees_a_server_on_the_shared_sockets(shared_lab: DnsLab) -> None:
    packets: list[Packet] = []
    stop = shared_lab.call(lambda: shared_lab.lab.capture("127.0.3.1", packets.append))
    try:
        query = dns.message.make_query("mail.example.com", "A")
        udp_exchange("127.0.3.1", shared_lab.port, query.to_wire())
        dns.query.tcp(query, "127.0.3.1", port=shared_lab.port, timeout=5)
    finally:
        shared_lab.call(stop)
    seen: list[Any] = shared_lab.call(lambda: [(p.tcp, p.src[0] == "127.0.3.1", p.dst[0]) for p in packets])
    assert seen == [(False, False, "127.0.3.1"), (False, True, "127.0.0.1"),
                    (True, False, "127.0.3.1"), (True, True, "127.0.0.1")]
    assert all(p.at == "127.0.3.1" and (p.src[1] == shared_lab.port or p.dst[1] == shared_lab.port)
               for p in packets)


def test_nsd_serves_a_lab_server_behind_the_shared_sockets(make_dns_lab: Callable[..., DnsLab]) -> None:
    """A real program as a lab server listens on a port of its own, which the shared sockets leave alone."""
    if not shared_sockets.supported():
        pytest.skip("the shared sockets need Linux's IP_PKTINFO")
    lab = make_dns_lab(servers={"ns1.example.com": "nsd"}, shared_sockets=True)
    assert lab.lab.sockets.shared
    reply = dns.query.udp(dns.message.make_query("www.example.com", "A"), "127.0.3.1", port=lab.port, timeout=5)
    assert reply.rcode() == dns.rcode.NOERROR and len(reply.answer[0]) == 3
    assert [r.address for r in lab.resolver.resolve("www.example.com", "A")] == ["192.0.2.1", "192.0.2.2",
                                                                                 "192.0.2.3"]
