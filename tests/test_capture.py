"""Packet capture: the lab's traffic as a pcap that parses back to the exact messages, and that tshark decodes."""

from __future__ import annotations

import io
import shutil
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any, Callable

import dns.flags
import dns.message
import dns.query
import dpkt
import pytest

from dnslab.faces.capture import capture_lab
from dnslab.faces.pcap import PcapWriter
from dnslab.services.capture import Packet
from dnslab.testing import DnsLab

from conftest import ENV, lab_process, read_until, stop, tcp_exchange


def read_pcap(data: bytes) -> list[tuple[tuple[str, int], tuple[str, int], bool, bytes]]:
    """(src, dst, tcp, payload) of every record, read back with dpkt."""
    out = []
    for _, frame in dpkt.pcap.Reader(io.BytesIO(data)):
        ip = dpkt.ethernet.Ethernet(frame).data
        segment = ip.data
        out.append(((socket.inet_ntoa(ip.src), segment.sport), (socket.inet_ntoa(ip.dst), segment.dport),
                    isinstance(segment, dpkt.tcp.TCP), bytes(segment.data)))
    return out


def test_packets_written_read_back_the_same_with_tcp_sequence_numbers() -> None:
    query = dns.message.make_query("www.example.com", "A").to_wire()
    framed = len(query).to_bytes(2, "big") + query
    packets = [Packet(1.5, ("127.0.0.1", 40000), ("127.0.3.1", 5300), False, query, "x"),
               Packet(1.6, ("127.0.0.1", 40001), ("127.0.3.1", 5300), True, framed, "x"),
               Packet(1.7, ("127.0.3.1", 5300), ("127.0.0.1", 40001), True, framed, "x"),
               Packet(1.8, ("127.0.0.1", 40001), ("127.0.3.1", 5300), True, framed, "x")]
    out = io.BytesIO()
    writer = PcapWriter(out)
    for packet in packets:
        writer.write(packet)
    assert read_pcap(out.getvalue()) == [(p.src, p.dst, p.tcp, p.payload) for p in packets]
    segments = [dpkt.ethernet.Ethernet(frame).data.data for _, frame in dpkt.pcap.Reader(io.BytesIO(out.getvalue()))]
    assert [s.seq for s in segments[1:]] == [1, 1, 1 + len(framed)]  # each way counts its own bytes
    assert segments[3].ack == 1 + len(framed)


def exchange(lab: DnsLab, wire: bytes, tcp: bool = False) -> bytes:
    """Send our own bytes to the resolver; the reply's bytes as received."""
    address = lab.resolver_address
    if tcp:
        return tcp_exchange(*address, wire, timeout=10)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(10)
        sock.sendto(wire, address)
        return sock.recv(65535)


def captured(lab: DnsLab, target: str, action: Callable[[], Any]) -> list[Packet]:
    packets: list[Packet] = []
    stop_capture = lab.call(lambda: lab.lab.capture(target, packets.append))
    try:
        action()
    finally:
        lab.call(stop_capture)
    return lab.call(lambda: list(packets))


def test_a_capture_holds_the_exact_messages_both_ways(make_dns_lab: Callable[..., DnsLab]) -> None:
    lab = make_dns_lab()
    udp_query = dns.message.make_query("www.example.com", "A", id=4321).to_wire()
    tcp_query = dns.message.make_query("mail.example.com", "A", id=4322).to_wire()
    replies: list[bytes] = []

    def traffic() -> None:
        replies.append(exchange(lab, udp_query))
        replies.append(exchange(lab, tcp_query, tcp=True))

    packets = captured(lab, "all", traffic)
    out = io.BytesIO()
    writer = PcapWriter(out)
    for packet in packets:
        writer.write(packet)
    records = read_pcap(out.getvalue())
    assert len(records) == len(packets)
    resolver = lab.resolver_address
    at_resolver = [r for r in records if resolver in (r[0], r[1])]
    # The client side: our query, then the reply as we received it; over TCP with the length prefix.
    assert [(r[2], r[1] == resolver, r[3]) for r in at_resolver] == [
        (False, True, udp_query), (False, False, replies[0]),
        (True, True, len(tcp_query).to_bytes(2, "big") + tcp_query),
        (True, False, len(replies[1]).to_bytes(2, "big") + replies[1])]
    # The cold resolver's walk: queries to the root, com and example.com servers on the lab port, each answered.
    upstream = [r for r in records if resolver not in (r[0], r[1])]
    servers = {r[1][0] for r in upstream if r[1][1] == lab.port}
    roots = {s.address for s in lab.servers if any("root-servers" in n for n in s.names)}
    coms = {s.address for s in lab.servers if any(n.endswith("nic.com.") for n in s.names)}
    assert servers & roots and servers & coms and servers & {"127.0.3.1", "127.0.3.2"}, servers
    for src, dst, tcp, payload in upstream:
        message = dns.message.from_wire(payload[2:] if tcp else payload)
        assert message.question  # every one a DNS message, as sent


def test_one_server_and_the_resolver_as_targets(make_dns_lab: Callable[..., DnsLab]) -> None:
    lab = make_dns_lab()
    packets = captured(lab, "ns1.example.com", lambda: dns.query.udp(
        dns.message.make_query("www.example.com", "A"), "127.0.3.1", port=lab.port, timeout=5))
    assert [(p.src[0], p.dst[0]) for p in packets] == [("127.0.0.1", "127.0.3.1"), ("127.0.3.1", "127.0.0.1")]
    packets = captured(lab, "resolver", lambda: lab.resolver.resolve("www.example.org", "A"))
    upstream = [p for p in packets if p.at == "resolver-upstream"]
    assert upstream and all(lab.port in (p.src[1], p.dst[1]) for p in upstream)
    sent = {(p.src, p.dst) for p in upstream}
    assert all((dst, src) in sent for src, dst in sent)  # each query out has its reply back, same ports
    assert len([p for p in packets if p.at == "resolver"]) == 2


def tshark(path: Path, port: int) -> list[list[str]]:
    """Every packet as tshark reads it: protocols, addresses, ports, DNS id, and any expert error."""
    binary = shutil.which("tshark")
    if binary is None:
        pytest.skip("tshark is not installed (Debian: apt-get install tshark): the decode check is skipped")
    done = subprocess.run([binary, "-r", str(path), "-d", f"udp.port=={port},dns", "-d", f"tcp.port=={port},dns",
                           "-o", "udp.check_checksum:TRUE", "-o", "tcp.check_checksum:TRUE", "-o", "ip.check_checksum:TRUE",
                           "-T", "fields", "-E", "separator=|", "-e", "frame.protocols", "-e", "ip.src", "-e", "ip.dst",
                           "-e", "udp.srcport", "-e", "udp.dstport", "-e", "tcp.srcport", "-e", "tcp.dstport",
                           "-e", "dns.id", "-e", "_ws.expert.severity", "-e", "_ws.malformed"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return [line.split("|") for line in done.stdout.splitlines()]


def test_dnslab_capture_writes_a_pcap_tshark_decodes(tmp_path: Path) -> None:
    proc, run = lab_process(tmp_path)
    pcap = tmp_path / "trace.pcap"
    env = {**ENV, "DNSLAB_STATE": str(tmp_path / "state")}
    try:
        banner = read_until(proc, "Ctrl-C stops the lab.")
        port = int(banner.splitlines()[0].split()[3])
        capture = subprocess.Popen([sys.executable, "-m", "dnslab", "capture", "all", "-w", str(pcap),
                                    "--seconds", "20", "--count", "200"], stderr=subprocess.PIPE, text=True,
                                   env=env)
        assert capture.stderr is not None
        assert "dnslab: capturing all" in capture.stderr.readline()  # said once the lab is capturing
        run("trace", "www.example.com", "--cold")
        tcp = dns.query.tcp(dns.message.make_query("www.example.net", "A"), "127.0.0.1", port=port, timeout=10)
        assert tcp.answer
        capture.send_signal(2)  # Ctrl-C: the file keeps what came before
        _, err = capture.communicate(timeout=30)
        assert capture.returncode == 0 and "Traceback" not in err, err
    finally:
        code, _, err = stop(proc)
    assert code == 0, err
    records = read_pcap(pcap.read_bytes())
    assert len(records) >= 8 and any(r[2] for r in records)
    rows = tshark(pcap, port)
    assert len(rows) == len(records)
    for row, (src, dst, tcp, payload) in zip(rows, records):
        protocols, ip_src, ip_dst, usport, udport, tsport, tdport, dns_id, severity, malformed = row
        assert protocols.endswith(":dns"), row
        assert (ip_src, ip_dst) == (src[0], dst[0])
        assert ((tsport, tdport) if tcp else (usport, udport)) == (str(src[1]), str(dst[1]))
        assert int(dns_id, 16) == int.from_bytes(payload[2:4] if tcp else payload[:2], "big")
        assert "error" not in severity.lower() and not malformed, row


def test_capture_bounds_and_bad_targets(make_dns_lab: Callable[..., DnsLab], tmp_path: Path) -> None:
    lab = make_dns_lab(state_dir=tmp_path)
    state = lab.state
    assert state is not None
    out = io.BytesIO()
    started = threading.Event()
    written: list[int] = []
    capturing = threading.Thread(target=lambda: written.append(
        capture_lab(state, out, "ns1.example.com", 3, 30, started.set)), daemon=True)
    capturing.start()
    assert started.wait(30)
    for _ in range(2):
        dns.query.udp(dns.message.make_query("www.example.com", "A"), "127.0.3.1", port=lab.port, timeout=5)
    capturing.join(timeout=30)
    assert written == [3]  # the count ends it: query, reply, query (the last reply is left out)
    assert len(read_pcap(out.getvalue())) == 3
    assert capture_lab(state, io.BytesIO(), "ns1.example.com", 10, 0.2) == 0  # the time ends it
    env = {**ENV, "DNSLAB_STATE": str(tmp_path)}
    for args, says, code in ((["nowhere.example", "-w", str(tmp_path / "x.pcap")], "no lab server 'nowhere.example'", 1),
                             (["-w", str(tmp_path / "x.pcap"), "--count", "0"], "argument --count: expected", 2),
                             (["-w", str(tmp_path / "no" / "x.pcap")], "cannot write", 1)):
        done = subprocess.run([sys.executable, "-m", "dnslab", "capture", *args, "--port", str(lab.port)],
                              capture_output=True, text=True, env=env, timeout=60)
        assert done.returncode == code and says in done.stderr.splitlines()[-1], done.stderr
        assert "Traceback" not in done.stderr
    assert not (tmp_path / "x.pcap").exists()  # a refused capture leaves no file behind


def test_the_web_view_offers_a_traces_packets_as_a_pcap() -> None:
    import http.client
    import json

    from dnslab.faces.web import WebServer

    lab = DnsLab(keep_traces=False).start()
    server = lab.call(lambda: WebServer(lab.lab))
    try:
        lab.run(server.start())

        def request(method: str, path: str, body: Any = None) -> tuple[int, dict[str, str], bytes]:
            connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
            connection.request(method, path, body=None if body is None else json.dumps(body),
                               headers={"Host": f"127.0.0.1:{server.port}", "X-Dnslab-Token": server.token})
            response = connection.getresponse()
            return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()

        status, _, body = request("POST", "/api/command", {"command": "trace",
                                                           "args": {"name": "www.example.com", "cold": True}})
        result = json.loads(body)["result"]
        assert status == 200 and result["packets"] >= 8
        status, headers, pcap = request("GET", f"/api/capture/{result['query_id']}")
        assert status == 200 and headers["content-type"] == "application/vnd.tcpdump.pcap"
        assert "attachment" in headers["content-disposition"]
        records = read_pcap(pcap)
        assert len(records) == result["packets"]
        queried = [dns.message.from_wire(r[3]) for r in records if r[1][1] == lab.port]
        assert queried[-1].question[0].name.to_text() == "www.example.com."
        assert request("GET", "/api/capture/999999")[0] == 404
    finally:
        lab.run(server.stop())
        lab.stop()


def test_the_resolver_target_has_its_tcp_queries_upstream(make_dns_lab: Callable[..., DnsLab]) -> None:
    """TC=1 from example.com's servers: the resolver asks again over TCP, and `resolver` shows that too."""
    lab = make_dns_lab()
    for server in ("ns1.example.com", "ns2.example.com"):
        lab.server(server).truncate()
    packets = captured(lab, "resolver", lambda: lab.resolver.resolve("www.example.com", "A"))
    tcp = [p for p in packets if p.tcp]
    assert len(tcp) == 2 and {tcp[0].dst[0], tcp[1].src[0]} <= {"127.0.3.1", "127.0.3.2"}
    assert tcp[0].src == tcp[1].dst and tcp[0].src[0] == "127.0.0.1"  # the resolver's own socket, both ways
    query, reply = (dns.message.from_wire(p.payload[2:]) for p in tcp)
    assert query.question[0].name.to_text() == "www.example.com." and reply.id == query.id and reply.answer
    udp_truncated = [dns.message.from_wire(p.payload) for p in packets
                     if p.at == "resolver-upstream" and p.src[0] in ("127.0.3.1", "127.0.3.2")]
    assert udp_truncated and all(m.flags & dns.flags.TC for m in udp_truncated)


def test_a_64k_tcp_message_is_cut_into_segments_that_add_up() -> None:
    big = bytes(range(256)) * 256  # 65,536 bytes: more than one IPv4 packet can carry
    out = io.BytesIO()
    writer = PcapWriter(out)
    writer.write(Packet(1.0, ("127.0.3.1", 53), ("127.0.0.1", 4000), True, big, "x"))
    assert writer.count == 1
    records = read_pcap(out.getvalue())
    assert len(records) == 2 and b"".join(r[3] for r in records) == big
    assert dpkt.pcap.Reader(io.BytesIO(out.getvalue())).snaplen >= len(big)
