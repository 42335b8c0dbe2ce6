"""Captured packets as a pcap file that tcpdump, tshark and Wireshark read, written with dpkt.

The lab hands over payloads with their real addresses and ports
(services/capture.py); the IPv4, UDP and TCP headers around them are made
here, checksums included, inside an Ethernet frame with zero MAC addresses
as Linux's loopback device shows them to tcpdump.  A TCP connection's
handshake is not seen by dnslab, so a stream starts with its first data
segment: sequence numbers count the bytes each way from 1, and every
segment carries PSH and ACK.  Readers dissect DNS over TCP from such
segments (tshark marks none of them malformed; see tests/test_capture.py).
"""

from __future__ import annotations

import socket
from typing import BinaryIO

import dpkt

from dnslab.core.errors import DnslabError
from dnslab.services.capture import Packet

Flow = tuple[tuple[str, int], tuple[str, int]]
SNAPLEN = 262144      # tcpdump's default: no record is cut short
MAX_SEGMENT = 65000   # TCP data per segment: an IPv4 packet is at most 65,535 bytes, headers included


class PcapWriter:
    """Writes Packets to an open binary file, one pcap record each, in the order given."""

    def __init__(self, out: BinaryIO) -> None:
        self._writer = dpkt.pcap.Writer(out, snaplen=SNAPLEN, linktype=dpkt.pcap.DLT_EN10MB)
        self._next_seq: dict[Flow, int] = {}
        self.count = 0

    def write(self, packet: Packet) -> None:
        """One record per packet; a TCP message longer than an IPv4 packet holds (a 64 KiB reply)
        becomes several segments, as the kernel would have sent it."""
        if packet.tcp:
            payload = packet.payload
            for start in range(0, max(len(payload), 1), MAX_SEGMENT):
                self._record(packet, self._segment(packet, payload[start:start + MAX_SEGMENT]))
        else:
            self._record(packet, dpkt.udp.UDP(sport=packet.src[1], dport=packet.dst[1],
                                              ulen=8 + len(packet.payload), data=packet.payload))
        self.count += 1

    def _record(self, packet: Packet, transport: dpkt.Packet) -> None:
        ip = dpkt.ip.IP(src=_address(packet.src[0]), dst=_address(packet.dst[0]), ttl=64,
                        p=dpkt.ip.IP_PROTO_TCP if packet.tcp else dpkt.ip.IP_PROTO_UDP, data=transport)
        ip.len = len(ip)  # dpkt fills the checksums (IP, and UDP or TCP over the pseudo-header) as it packs
        frame = dpkt.ethernet.Ethernet(src=b"\0" * 6, dst=b"\0" * 6, type=dpkt.ethernet.ETH_TYPE_IP, data=ip)
        self._writer.writepkt(bytes(frame), ts=packet.when)

    def _segment(self, packet: Packet, data: bytes) -> dpkt.tcp.TCP:
        flow = (packet.src, packet.dst)
        seq = self._next_seq.get(flow, 1)
        self._next_seq[flow] = (seq + len(data)) & 0xFFFFFFFF
        ack = self._next_seq.get((packet.dst, packet.src), 1)
        return dpkt.tcp.TCP(sport=packet.src[1], dport=packet.dst[1], seq=seq, ack=ack,
                            flags=dpkt.tcp.TH_PUSH | dpkt.tcp.TH_ACK, win=65535, data=data)

    def close(self) -> None:
        self._writer.close()


def _address(host: str) -> bytes:
    try:
        return socket.inet_aton(host)
    except OSError:
        raise DnslabError(f"cannot write {host!r} into a pcap: only IPv4 addresses (the lab's are 127.x.y.z)") \
            from None
