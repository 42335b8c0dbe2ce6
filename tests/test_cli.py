"""The command line, run as a user runs it: a real process, real sockets, real signals."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import dns.message
import dns.query
import dns.flags
import dns.rcode
import dns.rdatatype
import pytest

from dnslab.control import ControlClient, LabState

from conftest import ENV, SAMPLE_ZONES, lab_process, read_until, stop


GOOD_ZONE = """\
$ORIGIN example.test.
$TTL 300
@ SOA ns admin 1 1800 900 604800 60
@ NS ns
ns A 127.0.0.1
www A 192.0.2.1
"""


def dnslab(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dnslab", *args], capture_output=True, text=True,
                          env=ENV, timeout=timeout)


def start(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "dnslab", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=ENV)


def test_help_lists_the_commands() -> None:
    result = dnslab("--help")
    assert result.returncode == 0
    for command in ("up", "serve", "check-zone"):
        assert command in result.stdout


def test_check_zone_passes_a_good_zone(tmp_path: Path) -> None:
    zone = tmp_path / "example.test.zone"
    zone.write_text(GOOD_ZONE)
    result = dnslab("check-zone", str(zone))
    assert result.returncode == 0, result.stderr
    assert "zone example.test. loaded: serial 1, 4 records, 0 warning(s)" in result.stdout


def test_check_zone_names_file_and_line_and_fails(tmp_path: Path) -> None:
    zone = tmp_path / "bad.zone"
    zone.write_text(GOOD_ZONE + "www CNAME elsewhere.test.\nother.test. A 192.0.2.9\n")
    result = dnslab("check-zone", str(zone))
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert f"{zone}:7: error: CNAME and other data at www.example.test. (CNAME line 7, A line 6)" in lines
    assert f"{zone}:8: error: out-of-zone data (other.test.) in zone example.test." in lines
    assert "Traceback" not in result.stderr


def test_check_zone_reports_syntax_errors_with_line(tmp_path: Path) -> None:
    zone = tmp_path / "syntax.zone"
    zone.write_text(GOOD_ZONE + "mail A 999.1.2.3\n")
    result = dnslab("check-zone", str(zone))
    assert result.returncode == 1
    assert result.stdout.startswith(f"{zone}:7: error: ")
    assert "near: mail A 999.1.2.3" in result.stdout


def test_every_sample_zone_checks_clean() -> None:
    files = sorted(str(p) for p in SAMPLE_ZONES.glob("*.zone"))
    result = dnslab("check-zone", *files)
    assert result.returncode == 0, result.stdout
    assert "warning:" not in result.stdout
    assert result.stdout.count(" loaded: ") == len(files)


def test_up_prints_table_and_dig_lines_then_stops_cleanly(tmp_path: Path) -> None:
    hints = tmp_path / "root.hints"
    proc = start("up", "--port", "0", "--hints", str(hints))
    try:
        banner = read_until(proc, "Ctrl-C stops the lab.")
        assert "Ctrl-C stops the lab." in banner, banner + (proc.stderr.read() if proc.poll() is not None else "")
        assert "root " in banner and "TLD " in banner and "authoritative " in banner
        assert "(down)" in banner  # lab.toml starts one failover server down
        dig_lines = [line.split("#")[0].split() for line in banner.splitlines() if line.strip().startswith("dig @")]
        assert len(dig_lines) >= 3
        address, port = dig_lines[-1][1][1:], int(dig_lines[-1][3])
        answer = dns.query.udp(dns.message.make_query(dig_lines[-1][5], "A"), address, port=port, timeout=5)
        assert answer.rcode() == dns.rcode.NOERROR and answer.answer
        assert hints.read_text().count(" NS ") == 3
    finally:
        code, out, err = stop(proc, signal.SIGINT)
    assert code == 0, err
    assert "Traceback" not in err


def test_up_says_when_the_port_is_in_use(tmp_path: Path) -> None:
    holder = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    holder.bind(("127.0.1.1", 0))  # the sample root server's address
    port = holder.getsockname()[1]
    try:
        result = dnslab("up", "--port", str(port), "--hints", str(tmp_path / "h"))
    finally:
        holder.close()
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        f"dnslab: error: cannot listen on 127.0.1.1:{port} (UDP): the address is already in use")


def test_up_rejects_a_broken_zone_with_file_and_line(tmp_path: Path) -> None:
    for source in SAMPLE_ZONES.iterdir():
        if source.is_file():  # not the keys folder `dnslab up --dnssec` may have left
            (tmp_path / source.name).write_text(source.read_text())
    broken = tmp_path / "com.zone"
    broken.write_text(broken.read_text() + "\nbroken IN A not-an-address\n")
    result = dnslab("up", "--zones", str(tmp_path), "--port", "0")
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"dnslab: error: {broken}:") and "Traceback" not in result.stderr


@pytest.mark.skipif(os.geteuid() == 0, reason="root may bind port 53")
def test_up_explains_that_port_53_needs_root() -> None:
    result = dnslab("up", "--port", "53")
    assert result.returncode == 1
    assert "need root" in result.stderr


def test_serve_with_no_zones_refuses_everything() -> None:
    proc = start("serve", "--listen", "127.0.0.1:0")
    try:
        banner = read_until(proc, "Ctrl-C")
        assert "serving (none" in banner
        port = int(banner.split(" on 127.0.0.1:")[1].split()[0])
        reply = dns.query.udp(dns.message.make_query("example.com.", "A"), "127.0.0.1", port=port, timeout=5)
        assert reply.rcode() == dns.rcode.REFUSED
    finally:
        code, _, err = stop(proc)
    assert code == 0, err


def test_serve_answers_for_its_zone(tmp_path: Path) -> None:
    zone = tmp_path / "example.test.zone"
    zone.write_text(GOOD_ZONE)
    proc = start("serve", "--zone", str(zone), "--listen", "127.0.0.1:0")
    try:
        banner = read_until(proc, "Ctrl-C")
        port = int(banner.split(" on 127.0.0.1:")[1].split()[0])
        reply = dns.query.tcp(dns.message.make_query("www.example.test.", "A"), "127.0.0.1", port=port, timeout=5)
        assert [r.address for r in reply.answer[0]] == ["192.0.2.1"]
    finally:
        code, _, err = stop(proc)
    assert code == 0, err


def test_up_prints_the_resolver_dig_line_first_and_it_works(tmp_path: Path) -> None:
    proc = start("up", "--port", "0", "--hints", str(tmp_path / "root.hints"))
    try:
        banner = read_until(proc, "Ctrl-C stops the lab.")
        first = banner.splitlines()[0].split()
        assert first[:1] == ["dig"] and first[1] == "@127.0.0.1"
        port, name = int(first[3]), first[4]
        reply = dns.query.udp(dns.message.make_query(name, "A"), "127.0.0.1", port=port, timeout=10)
        assert reply.rcode() == dns.rcode.NOERROR and reply.answer
        assert reply.flags & dns.flags.RA
    finally:
        code, _, err = stop(proc)
    assert code == 0, err


def test_resolver_command_resolves_through_a_running_hierarchy(tmp_path: Path) -> None:
    from dnslab.lab import Lab
    from conftest import LabThread

    lab, _ = Lab.from_folder(SAMPLE_ZONES, port=0, with_resolver=False)
    with LabThread(lab):
        hints = tmp_path / "root.hints"
        hints.write_text(lab.root_hints)
        proc = start("resolver", "--root-hints", str(hints), "--listen", "127.0.0.1:0",
                     "--upstream-port", str(lab.actual_port))
        try:
            banner = read_until(proc, "Ctrl-C")
            port = int(banner.split(" on 127.0.0.1:")[1].split()[0])
            reply = dns.query.tcp(dns.message.make_query("www.example.org.", "A"), "127.0.0.1", port=port,
                                  timeout=10)
            assert [rrset.rdtype for rrset in reply.answer] == [dns.rdatatype.CNAME, dns.rdatatype.A]
        finally:
            code, _, err = stop(proc, signal.SIGINT)
        assert code == 0, err


def test_resolver_command_explains_missing_hints(tmp_path: Path) -> None:
    result = dnslab("resolver", "--listen", "127.0.0.1:0")
    assert result.returncode == 1 and "no root hints" in result.stderr
    broken = tmp_path / "hints"
    broken.write_text(". 3600 IN NS a.root.\na.root. 3600 IN A not-an-address\n")
    result = dnslab("resolver", "--root-hints", str(broken), "--listen", "127.0.0.1:0")
    assert result.returncode == 1 and f"{broken}:2:" in result.stderr and "Traceback" not in result.stderr


def test_inspection_commands_talk_to_the_running_lab(tmp_path: Path) -> None:
    env = {**ENV, "DNSLAB_STATE": str(tmp_path / "state" / "lab.json")}
    proc = subprocess.Popen([sys.executable, "-m", "dnslab", "up", "--port", "0", "--log-queries",
                             "--hints", str(tmp_path / "root.hints")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "dnslab", *args], capture_output=True, text=True,
                              env=env, timeout=60)

    try:
        banner = read_until(proc, "Ctrl-C stops the lab.")
        port = int(banner.splitlines()[0].split()[3])
        traced = run("trace", "www.example.org")
        assert traced.returncode == 0, traced.stderr
        assert "CNAME: www.example.org. -> www.example.com., restart there" in traced.stdout
        assert "referral to com." in traced.stdout and "answer: NOERROR" in traced.stdout
        as_json = run("trace", "www.example.org", "--json")
        events = [json.loads(line) for line in as_json.stdout.splitlines()]
        assert events[-1]["event"] == "done" and events[-1]["rcode"] == "NOERROR"
        reply = dns.query.udp(dns.message.make_query("www.example.org.", "A"), "127.0.0.1", port=port, timeout=10)
        assert reply.answer
        shown = run("cache", "show", "example.org")
        assert "www.example.org." in shown.stdout and "auth_answer" in shown.stdout
        assert "ns1.example.org." in run("servers").stdout
        assert "queries" in run("stats").stdout
        assert "flushed" in run("cache", "flush").stdout
        log = read_until(proc, "www.example.org. A NOERROR")
        assert "127.0.0.1 www.example.org. A NOERROR" in log
        mode = (tmp_path / "state" / "lab.json").stat().st_mode & 0o777
        assert mode == 0o600
    finally:
        code, _, err = stop(proc)
    assert code == 0, err
    assert not (tmp_path / "state" / "lab.json").exists()  # removed at a clean stop
    gone = run("stats")
    assert gone.returncode == 1 and "no running lab" in gone.stderr


def test_faults_records_and_the_fake_clock_from_the_command_line(tmp_path: Path) -> None:
    proc, run = lab_process(tmp_path, "--fake-clock")
    try:
        port = int(read_until(proc, "Ctrl-C stops the lab.").splitlines()[0].split()[3])

        def resolve(name: str) -> dns.message.Message:
            return dns.query.udp(dns.message.make_query(name, "A"), "127.0.0.1", port=port, timeout=10)

        assert run("faults") == "127.0.3.20: down\n"
        assert "127.0.3.2: down" in run("fault", "ns2.example.com", "down")
        assert resolve("www.example.com.").answer[0].ttl == 300
        assert "1  www.example.com. A" in run("queries", "127.0.3.1")
        assert "serial 2026112802" in run("record", "set", "www.example.com", "A", "192.0.2.99", "--ttl", "60")
        assert resolve("www.example.com.").answer[0].ttl == 300  # still cached
        assert "fake, now 1000300.0" in run("clock", "advance", "300")
        fresh = resolve("www.example.com.")
        assert [r.address for r in fresh.answer[0]] == ["192.0.2.99"] and fresh.answer[0].ttl == 60
        assert "no faults" in run("fault", "127.0.3.2", "clear")
        assert "reloaded 14 zone(s)" in run("reload")
    finally:
        code, _, err = stop(proc)
    assert code == 0, err


def test_workers_share_the_port_and_the_control_endpoint_reaches_all(tmp_path: Path) -> None:
    proc, run = lab_process(tmp_path, "--workers", "2")
    try:
        banner = read_until(proc, "each has its own cache.")
        assert "2 worker processes" in banner, banner
        port = int(banner.splitlines()[0].split()[3])
        state = json.loads((tmp_path / "lab.json").read_text())
        assert len(state["workers"]) == 1
        for _ in range(8):  # fresh source ports: the kernel spreads them over the workers
            reply = dns.query.udp(dns.message.make_query("www.example.com.", "A"), "127.0.0.1", port=port,
                                  timeout=10)
            assert reply.answer
        assert "workers            2" in run("stats") and "queries            8" in run("stats")
        run("fault", "ns1.example.com", "refused")
        worker = ControlClient(LabState.read(tmp_path / "lab.json").endpoints()[1])
        assert worker.call("faults")["faults"]["127.0.3.1"] == ["refused"]  # the fault reached the worker too
    finally:
        code, _, err = stop(proc)
    assert code == 0, err
    assert subprocess.run(["pgrep", "-f", f"dnslab up --zones .* --port {port}"], capture_output=True).stdout == b""


def test_run_async_without_uvloop_does_not_chain_errors_to_the_import(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without uvloop, a later error must not read "During handling ... No module named 'uvloop'"."""
    from dnslab.cli import run_async

    monkeypatch.setitem(sys.modules, "uvloop", None)  # `import uvloop` now raises ImportError

    async def fails() -> None:
        raise ValueError("a later error")

    with pytest.raises(ValueError) as caught:
        run_async(fails())
    assert caught.value.__context__ is None
