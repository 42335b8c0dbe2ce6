"""Zone transfers between the lab and NSD (issue 22, item 6): NSD as a secondary of a lab primary
(AXFR, then IXFR after a NOTIFY, TSIG-signed both ways), and a lab secondary of an NSD primary.
Skipped, with the reason, where Debian's nsd is not installed."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Iterator

import dns.exception
import dns.flags
import dns.message
import dns.query
import dns.rcode
import pytest

from dnslab.lab.runtime import SAMPLE_ZONES
from dnslab.testing import DnsLab

from conftest import sample_copy

NSD = shutil.which("nsd") or next((p for p in ("/usr/sbin/nsd", "/usr/local/sbin/nsd") if Path(p).exists()), None)
pytestmark = pytest.mark.skipif(NSD is None, reason="nsd is not installed (Debian: apt-get install nsd)")

NSD_ADDRESS = "127.0.98.1"
SECRET = "w8pbtAfRr4KxJcy0oTJrawTgk+zBb6V5cBryMWGRmEk="
KEY_NAME = "interop-key"


def free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def ask(address: str, port: int, name: str, rdtype: str = "A") -> dns.message.Message | None:
    query = dns.message.make_query(name, rdtype)
    query.flags &= ~dns.flags.RD
    try:
        return dns.query.udp(query, address, port=port, timeout=1)
    except (dns.exception.Timeout, OSError):
        return None


def until(check, tries: int = 100) -> bool:  # type: ignore[no-untyped-def]
    """A bounded wait for the other program (NSD runs its transfers in its own time)."""
    for _ in range(tries):
        if check():
            return True
        time.sleep(0.1)
    return False


def start_nsd(folder: Path, zone_lines: list[str], port: int = 0) -> tuple[subprocess.Popen[bytes], int]:
    port = port or free_port(NSD_ADDRESS)
    conf = folder / "nsd.conf"
    conf.write_text("\n".join([
        "server:", f"  ip-address: {NSD_ADDRESS}@{port}", "  do-ip6: no", '  username: ""', '  chroot: ""',
        '  database: ""', f'  pidfile: "{folder}/nsd.pid"', f'  logfile: "{folder}/nsd.log"',
        f'  xfrdfile: "{folder}/xfrd.state"', f'  zonelistfile: "{folder}/zone.list"', "  zonefiles-write: 0",
        "  verbosity: 2", "remote-control:", "  control-enable: no",
        "key:", f'  name: "{KEY_NAME}"', "  algorithm: hmac-sha256", f'  secret: "{SECRET}"',
        "zone:", '  name: "example.com"', *zone_lines, ""]), encoding="utf-8")
    process = subprocess.Popen([NSD, "-d", "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return process, port


@pytest.fixture
def nsd_folder(tmp_path: Path) -> Iterator[Path]:
    folder = tmp_path / "nsd"
    folder.mkdir()
    yield folder


def stop_nsd(process: subprocess.Popen[bytes], folder: Path) -> str:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)
    log = folder / "nsd.log"
    return log.read_text(errors="replace") if log.exists() else ""


def lab_with_key(tmp_path: Path, extra: str = "") -> Path:
    return sample_copy(tmp_path, f'\n{extra}\n[tsig_keys]\n"{KEY_NAME}" = "{SECRET}"\n')


def test_nsd_secondary_transfers_from_a_lab_primary_with_tsig(tmp_path: Path, nsd_folder: Path) -> None:
    nsd_port = free_port(NSD_ADDRESS)
    replication = (f'[primaries]\n"example.com." = "ns1.example.com."\n'
                   f'[also_notify]\n"example.com." = ["{NSD_ADDRESS}@{nsd_port}"]')
    with DnsLab(lab_with_key(tmp_path, replication)) as lab:
        process, port = start_nsd(nsd_folder, [f"  request-xfr: 127.0.3.1@{lab.port} {KEY_NAME}",
                                               "  allow-notify: 127.0.3.1 NOKEY",
                                               f"  allow-notify: 127.0.0.0/8 {KEY_NAME}"], nsd_port)
        try:
            assert until(lambda: (r := ask(NSD_ADDRESS, port, "www.example.com")) is not None and bool(r.answer)), \
                "NSD did not load example.com from the lab"
            reply = ask(NSD_ADDRESS, port, "www.example.com")
            assert reply is not None and reply.flags & dns.flags.AA and len(reply.answer[0]) == 3
            # A change: the lab primary NOTIFYs NSD ([also_notify]), which asks the SOA and transfers (IXFR).
            lab.record_set("interop.example.com", "A", "192.0.2.90")
            assert until(lambda: (r := ask(NSD_ADDRESS, port, "interop.example.com")) is not None and bool(r.answer)), \
                "NSD did not take the change"
            lab.record_set("interop2.example.com", "A", "192.0.2.91")  # and again
            assert until(lambda: (r := ask(NSD_ADDRESS, port, "interop2.example.com")) is not None and bool(r.answer)), \
                "NSD did not take the second change"
            primary = lab.call(lambda: lab.lab.server("127.0.3.1").server.ops.last_transfer)
            assert primary.startswith("IXFR of example.com.")
        finally:
            log = stop_nsd(process, nsd_folder)
        # NSD took the lab's NOTIFYs and checked the lab's TSIG on every transfer (AXFR, then two IXFRs).
        assert log.count("notify for example.com. from 127.0.3.1") >= 2, log
        assert log.count(f"TSIG verified with key {KEY_NAME}") >= 3 and "updated to 2026112803" in log, log


def test_lab_secondary_transfers_from_an_nsd_primary(tmp_path: Path, nsd_folder: Path) -> None:
    shutil.copy(SAMPLE_ZONES / "example.com.zone", nsd_folder / "example.com.zone")
    process, port = start_nsd(nsd_folder, [f'  zonefile: "{nsd_folder}/example.com.zone"',
                                           f"  provide-xfr: 127.0.0.0/8 {KEY_NAME}"])
    try:
        assert until(lambda: ask(NSD_ADDRESS, port, "example.com", "SOA") is not None), "NSD did not start"
        folder = lab_with_key(tmp_path, f'[primaries]\n"example.com." = "{NSD_ADDRESS}@{port}"')
        with DnsLab(folder) as lab:
            for address in ("127.0.3.1", "127.0.3.2"):  # both lab servers of example.com are secondaries now
                copy = lab.server(address).secondary("example.com")
                assert copy["state"] == "current" and copy["last_transfer"] == "AXFR", copy
                reply = ask(address, lab.port, "www.example.com")
                assert reply is not None and len(reply.answer[0]) == 3 and reply.flags & dns.flags.AA
            assert lab.resolver.resolve("mail.example.com", "A")
    finally:
        stop_nsd(process, nsd_folder)


def test_tsig_answers_match_nsds(tmp_path: Path, nsd_folder: Path) -> None:
    """The same key on NSD and the lab: a good signature, an unknown key and a wrong secret get the same
    rcode and TSIG error from both (NSD drops the question from its error replies; dnslab keeps it)."""
    import dns.name
    import dns.tsig

    shutil.copy(SAMPLE_ZONES / "example.com.zone", nsd_folder / "example.com.zone")
    process, port = start_nsd(nsd_folder, [f'  zonefile: "{nsd_folder}/example.com.zone"'])
    try:
        assert until(lambda: ask(NSD_ADDRESS, port, "example.com", "SOA") is not None), "NSD did not start"
        with DnsLab(lab_with_key(tmp_path)) as lab:
            def outcome(address: str, at: int, name: str, secret: str) -> tuple[str, str, bool]:
                key = dns.tsig.Key(name, secret)
                query = dns.message.make_query("www.example.com", "A")
                query.use_tsig({key.name: key}, key.name)
                reply = dns.query.udp(query, address, port=at, timeout=5)  # raises if a signed reply is bad
                return dns.rcode.to_text(reply.rcode()), dns.rcode.to_text(reply.tsig_error), reply.had_tsig

            for name, secret in ((KEY_NAME, SECRET), ("unknown-key", SECRET), (KEY_NAME, "QUJD" * 8)):
                results = []
                for address, at in ((NSD_ADDRESS, port), ("127.0.3.1", lab.port)):
                    try:
                        results.append(outcome(address, at, name, secret))
                    except dns.tsig.PeerError as exc:  # dnspython raises on an error reply
                        results.append(("NOTAUTH", type(exc).__name__, True))
                assert results[0] == results[1], (name, results)
            assert results[0] == ("NOTAUTH", "PeerBadSignature", True)
    finally:
        stop_nsd(process, nsd_folder)
