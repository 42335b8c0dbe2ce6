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

from dnslab.lab.control import ControlClient, LabState, find_lab

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
        assert hints.read_text().count(" NS ") == 13  # a to m.root-servers.net
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
    from dnslab.lab.runtime import Lab
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
    env = {**ENV, "DNSLAB_STATE": str(tmp_path / "state")}
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
        mode = (tmp_path / "state" / f"lab-{port}.json").stat().st_mode & 0o777
        assert mode == 0o600
    finally:
        code, _, err = stop(proc)
    assert code == 0, err
    assert not (tmp_path / "state" / f"lab-{port}.json").exists()  # removed at a clean stop
    gone = run("stats")
    assert gone.returncode == 1 and "no running lab" in gone.stderr


def test_faults_records_and_the_fake_clock_from_the_command_line(tmp_path: Path) -> None:
    proc, run = lab_process(tmp_path, "--fake-clock")
    try:
        banner = read_until(proc, "Ctrl-C stops the lab.")
        port = int(banner.splitlines()[0].split()[3])
        assert "Lab clock: fake (--fake-clock)" in banner  # the banner says the clock will not move by itself

        def resolve(name: str) -> dns.message.Message:
            return dns.query.udp(dns.message.make_query(name, "A"), "127.0.0.1", port=port, timeout=10)

        assert run("faults") == "127.0.3.20: down\n"
        assert "127.0.3.2: down" in run("fault", "ns2.example.com", "down")
        first = resolve("www.example.com.")
        assert first.answer and first.answer[0].ttl == 300, (first.to_text(), run("queries", "127.0.3.1"), run("stats"))
        assert "1  www.example.com. A" in run("queries", "127.0.3.1")
        assert "serial 2026112802" in run("record", "set", "www.example.com", "A", "192.0.2.99", "--ttl", "60")
        assert resolve("www.example.com.").answer[0].ttl == 300  # still cached
        assert run("clock").startswith("lab clock: fake (dnslab up --fake-clock), 0 s since the lab started")
        assert "fake (dnslab up --fake-clock), 300 s since the lab started" in run("clock", "advance", "300")
        fresh = resolve("www.example.com.")
        assert [r.address for r in fresh.answer[0]] == ["192.0.2.99"] and fresh.answer[0].ttl == 60
        assert "no faults" in run("fault", "127.0.3.2", "clear")
        assert "127.0.3.2: unreachable" in run("fault", "ns2.example.com", "unreachable")
        assert "no faults" in run("fault", "127.0.3.2", "up")
        assert "reloaded 15 zone(s)" in run("reload")
    finally:
        code, _, err = stop(proc)
    assert code == 0, err


def test_workers_share_the_port_and_the_control_endpoint_reaches_all(tmp_path: Path) -> None:
    proc, run = lab_process(tmp_path, "--workers", "2")
    try:
        banner = read_until(proc, "each has its own cache.")
        assert "2 worker processes" in banner, banner
        port = int(banner.splitlines()[0].split()[3])
        state = json.loads((tmp_path / "state" / f"lab-{port}.json").read_text())
        assert len(state["workers"]) == 1
        for _ in range(8):  # fresh source ports: the kernel spreads them over the workers
            reply = dns.query.udp(dns.message.make_query("www.example.com.", "A"), "127.0.0.1", port=port,
                                  timeout=10)
            assert reply.answer
        assert "workers            2" in run("stats") and "queries            8" in run("stats")
        run("fault", "ns1.example.com", "refused")
        worker = ControlClient(find_lab(folder=tmp_path / "state").endpoints()[1])
        assert worker.call("faults")["faults"]["127.0.3.1"] == ["refused"]  # the fault reached the worker too
    finally:
        code, _, err = stop(proc)
    assert code == 0, err
    assert subprocess.run(["pgrep", "-f", f"dnslab up --zones .* --port {port}"], capture_output=True).stdout == b""


# --- bad input: one line, a non-zero exit, never a traceback (issue 15) -----------------------


@pytest.mark.parametrize("args,expected", [
    (["up", "--port", "99999"], "argument --port: expected a port number from 0 to 65535 (0 picks a free one), got '99999'"),
    (["up", "--port", "-1"], "argument --port: expected a port number from 0 to 65535 (0 picks a free one), got '-1'"),
    (["up", "--web-port", "70000"], "argument --web-port: expected a port number from 0 to 65535"),
    (["up", "--workers", "0"], "argument --workers: expected a whole number from 1 to 64, got '0'"),
    (["resolver", "--workers", "100000"], "argument --workers: expected a whole number from 1 to 64"),
    (["query", "www.example.com", "-p", "0"], "argument -p/--port: expected a port number from 1 to 65535, got '0'"),
    (["query", "www.example.com", "--timeout", "nan"], "argument --timeout: expected a number from 0.001 to 3600"),
    (["stats", "--port", "99999"], "argument --port: expected a port number from 1 to 65535, got '99999'"),
    (["clock", "advance", "nan"], "argument seconds: expected a number from 0 to 315360000 seconds (10 years), got 'nan'"),
    (["clock", "advance", "inf"], "argument seconds: expected a number from 0 to 315360000 seconds (10 years), got 'inf'"),
    (["clock", "advance", "1e12"], "argument seconds: expected a number from 0 to 315360000 seconds"),
    (["clock", "advance", "-5"], "argument seconds: expected a number from 0 to 315360000 seconds"),
    (["fault", "127.0.3.1", "delay", "nan"], "delay MS: expected a number from 0 to 60000 ms, got 'nan'"),
    (["fault", "127.0.3.1", "delay", "10", "inf"], "delay JITTER: expected a number from 0 to 60000 ms, got 'inf'"),
    (["fault", "127.0.3.1", "loss", "150"], "loss PCT: expected a number from 0 to 100 %, got '150'"),
    (["fault", "127.0.3.1", "loss"], "loss needs PCT (percent dropped): loss PCT"),
    (["fault", "127.0.3.1", "down", "5"], "down takes no argument, not 1: down"),
    (["fault", "127.0.3.1", "explode"], "unknown fault 'explode'; for a server: down, unreachable, delay, loss"),
    (["check-zone", "x.zone", "--origin", "a..b"],
     "argument --origin: expected a domain name such as example.com (A DNS label is empty), got 'a..b'"),
    (["record", "set", "www.example.com", "A", "192.0.2.1", "--ttl", "-1"],
     "argument --ttl: expected a TTL in seconds from 0 to 2147483647 (RFC 2181 §8), got '-1'"),
])
def test_bad_numbers_are_usage_errors(args: list[str], expected: str) -> None:
    result = dnslab(*args, timeout=30)
    assert result.returncode == 2, result.stderr
    assert expected in result.stderr.splitlines()[-1]
    assert "Traceback" not in result.stderr and result.stdout == ""


@pytest.mark.parametrize("args,expected", [
    (["serve", "--listen", "127.0.0.1:70000"], "--listen '127.0.0.1:70000': expected a port number from 0 to 65535"),
    (["serve", "--listen", "[::1:5"], "--listen '[::1:5': expected [IPV6-ADDRESS]:PORT, but the ']' is missing"),
    (["resolver", "--root-hints", "h", "--upstream-port", "99999"],
     "upstream_port: expected a port number from 1 to 65535, got 99999"),
    (["resolver", "--root-hints", "h", "--hold-down", "nan"], "hold_down: expected a number from 0 to"),
])
def test_bad_values_after_parsing_are_one_line_errors(args: list[str], expected: str) -> None:
    result = dnslab(*args, timeout=30)
    assert result.returncode == 1
    assert len(result.stderr.splitlines()) == 1 and result.stderr.startswith("dnslab: error: ")
    assert expected in result.stderr


def run_into_closed_pipe(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """Run `dnslab ARGS | true`, with the reader gone before the first line is written."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        return subprocess.run([sys.executable, "-m", "dnslab", *args], stdout=write_end, stderr=subprocess.PIPE,
                              text=True, env=env, timeout=60)
    finally:
        os.close(write_end)


def test_a_reader_that_stops_early_ends_commands_quietly(tmp_path: Path) -> None:
    """`dnslab stats | true`, `dnslab trace X | head -1`: quiet, exit 141 as for SIGPIPE, nothing in the lab's log."""
    proc, run = lab_process(tmp_path, "--no-web")
    env = {**ENV, "DNSLAB_STATE": str(tmp_path / "state")}
    try:
        assert "Ctrl-C stops the lab." in read_until(proc, "Ctrl-C stops the lab.")
        for args in (["stats"], ["servers"], ["cache", "show"], ["faults"], ["trace", "www.example.org", "--cold"],
                     ["trace", "www.example.org", "--cold", "--json"], ["--help"]):
            result = run_into_closed_pipe(env, *args)
            assert result.returncode in (141, 0), (args, result.stderr)  # --help: argparse's own quiet exit 0
            assert result.stderr == "", (args, result.stderr)
        assert "queries" in run("stats")  # the lab is unharmed
    finally:
        code, _, err = stop(proc)
    assert code == 0 and "Traceback" not in err and "ERROR" not in err, err


def test_two_labs_at_once_each_keep_their_state(tmp_path: Path) -> None:
    env = {**ENV, "DNSLAB_STATE": str(tmp_path / "state")}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "dnslab", *args], capture_output=True, text=True, env=env,
                              timeout=60)

    first, _ = lab_process(tmp_path, "--no-web")
    second, _ = lab_process(tmp_path, "--no-web")
    try:
        ports = sorted(int(read_until(proc, "Ctrl-C stops the lab.").splitlines()[0].split()[3])
                       for proc in (first, second))
        assert sorted(p.name for p in (tmp_path / "state").iterdir()) == [f"lab-{port}.json" for port in ports]
        both = run("stats")
        assert both.returncode == 1
        assert both.stderr == f"dnslab: error: 2 labs are running (ports {ports[0]}, {ports[1]}): pick one with --port N\n"
        for port in ports:
            picked = run("stats", "--port", str(port))
            assert picked.returncode == 0 and "queries" in picked.stdout, picked.stderr
            asked = run("query", "www.example.com", "-p", str(port))
            assert asked.returncode == 0 and "status: NOERROR" in asked.stdout, asked.stderr
        again = run("up", "--port", str(ports[0]), "--no-web", "--hints", str(tmp_path / "again.hints"))
        assert again.returncode == 1 and again.stderr.startswith(f"dnslab: error: a lab already runs on port {ports[0]} ")
        missing = run("servers", "--port", "1")
        assert missing.returncode == 1 and f"no running lab on port 1 (running: port {ports[0]}, {ports[1]};" in missing.stderr
        code, out, err = stop(second)
        assert code == 0, err
        remaining = [p.name for p in (tmp_path / "state").iterdir()]
        assert len(remaining) == 1  # the stopped lab removed its own file, not the other's
        alone = run("stats")
        assert alone.returncode == 0 and "queries" in alone.stdout, alone.stderr
    finally:
        for proc in (first, second):
            if proc.poll() is None:
                stop(proc)


def test_up_refuses_to_clobber_a_running_labs_state(tmp_path: Path) -> None:
    holder = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    holder.bind(("127.0.0.1", 0))
    port = holder.getsockname()[1]
    holder.close()
    folder = tmp_path / "state"
    # A lab on this port with other addresses (say, --no-resolver) holds the state file; its pid is ours.
    LabState("127.0.0.1", 1, "theirs", None, port, "hints", os.getpid()).write(folder / f"lab-{port}.json")
    result = subprocess.run([sys.executable, "-m", "dnslab", "up", "--port", str(port), "--no-web",
                             "--hints", str(tmp_path / "root.hints")],
                            capture_output=True, text=True, env={**ENV, "DNSLAB_STATE": str(folder)}, timeout=60)
    assert result.returncode == 1
    assert result.stderr.splitlines()[-1] == (
        f"dnslab: error: a lab already runs on port {port} (pid {os.getpid()}, state file {folder}/lab-{port}.json): "
        "stop it, or use another --port")
    assert LabState.read(folder / f"lab-{port}.json").token == "theirs"


# The README and the pages it leads to (docs/), read as one text: a promise may live in either.
README = "\n".join(path.read_text(encoding="utf-8") for path in [Path(__file__).resolve().parent.parent / "README.md",
                    *sorted((Path(__file__).resolve().parent.parent / "docs").glob("*.md"))])


def test_readme_states_the_exit_codes_the_command_line_gives() -> None:
    """The README (now docs/REFERENCE.md) once promised exit code 1 for every mistake while argparse's usage errors exit 2."""
    assert "- **2**: a usage error" in README and "- **1**: any other error" in README
    assert "ends in one line on stderr and exit code 1" not in README
    assert dnslab("up", "--port", "99999").returncode == 2
    assert dnslab("stats", "--no-such-option").returncode == 2
    assert dnslab("check-zone", "/nonexistent.zone").returncode == 1
    # dig is optional, and the README says what does the same without it
    assert "optional (Debian and Ubuntu: `apt install\nbind9-dnsutils`)" in README


def test_the_readmes_drill_line_walks_the_lab_from_the_root(tmp_path: Path) -> None:
    """`dig +trace` cannot walk the lab; the learner's guide (docs/GUIDE.md) gives a drill line instead, and it must work."""
    import re
    import shutil

    drill = shutil.which("drill")
    if drill is None:
        pytest.skip("no drill on PATH (Debian: apt-get install ldnsutils)")
    line = next(line for line in README.splitlines() if line.startswith("drill -T "))
    proc, _ = lab_process(tmp_path, "--no-web")
    try:
        port = int(read_until(proc, "Ctrl-C stops the lab.").splitlines()[0].split()[3])
        hints = str(tmp_path / "root.hints")
        command = re.sub(r"-p \d+", f"-p {port}", line).replace('"$XDG_RUNTIME_DIR/dnslab/root.hints"', hints)
        assert command != line and hints in command
        done = subprocess.run(command.split(), capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stdout + done.stderr
        # the walk: the root's NS set, the TLD's, the glueless delegation, then the answer
        for record in (".\t", "net.\t", "example.net.\t", "www.example.net.\t3600\tIN\tA\t192.0.2.50"):
            assert any(row.startswith(record) for row in done.stdout.splitlines()), (record, done.stdout)
    finally:
        code, _, err = stop(proc)
    assert code == 0, err


def test_run_async_without_uvloop_does_not_chain_errors_to_the_import(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without uvloop, a later error must not read "During handling ... No module named 'uvloop'"."""
    from dnslab.services.workers import run_async

    monkeypatch.setitem(sys.modules, "uvloop", None)  # `import uvloop` now raises ImportError

    async def fails() -> None:
        raise ValueError("a later error")

    with pytest.raises(ValueError) as caught:
        run_async(fails())
    assert caught.value.__context__ is None
