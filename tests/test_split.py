"""One lab served by several processes: `dnslab up --only CIDR` (dnslab.lab.split)."""

from __future__ import annotations

import ipaddress
import json
import signal
import subprocess
import sys
from pathlib import Path

import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import pytest

from dnslab.core.errors import ConfigError
from dnslab.lab import split
from dnslab.lab.control import find_lab, state_path
from dnslab.lab.runtime import Lab, LabSettings
from tests.conftest import ENV, SAMPLE_ZONES, join_reader, read_until
from tools.common.net import free_port

WAIT = 30.0


# --- sans-I/O: the networks ---------------------------------------------------------------


def test_networks_parse_and_own_addresses() -> None:
    networks = split.parse_networks(["127.0.1.0/24", "127.0.3.1", "127.0.1.0/24"])
    assert networks == (ipaddress.IPv4Network("127.0.1.0/24"), ipaddress.IPv4Network("127.0.3.1/32"))
    assert split.owns(networks, "127.0.1.3") and split.owns(networks, "127.0.3.1")
    assert not split.owns(networks, "127.0.3.2") and not split.owns(networks, "127.0.2.1")
    assert split.owns((), "127.9.9.9")  # no networks: a whole lab serves everything
    assert split.part_name(networks) == "127.0.1.0_24+127.0.3.1_32" and split.part_name(()) == ""


@pytest.mark.parametrize(("text", "says"), [
    ("127.0.1.1/24", "host bits set"),
    ("127.0.1.0/33", "not an IPv4 network"),
    ("example.com", "not an IPv4 network"),
    ("::1/128", "IPv4 loopback"),
])
def test_bad_networks_are_one_line_errors(text: str, says: str) -> None:
    with pytest.raises(ConfigError, match=says) as caught:
        split.parse_networks([text])
    assert "\n" not in str(caught.value) and text in str(caught.value)


def test_a_network_without_servers_is_an_error_naming_it() -> None:
    networks = split.parse_networks(["127.0.1.0/24", "127.0.9.0/24"])
    with pytest.raises(ConfigError, match=r"--only 127\.0\.9\.0/24: no lab server's address is in it"):
        split.check_networks(networks, ["127.0.1.1", "127.0.3.1"])


# --- the Lab: which servers one part holds ---------------------------------------------------


def test_a_part_holds_only_its_servers_but_knows_the_whole_hierarchy() -> None:
    lab, _ = Lab.from_folder(SAMPLE_ZONES, port=5300, with_resolver=False,
                             only=split.parse_networks(["127.0.3.0/24"]))
    assert lab.servers and all(r.plan.address.startswith("127.0.3.") for r in lab.servers)
    assert len(lab.hierarchy.servers) > len(lab.servers)
    assert lab.hierarchy.root_hints  # the roots live elsewhere, but the resolver still starts from them
    with pytest.raises(Exception, match="served by another process of this lab"):
        lab.server("127.0.1.1")
    whole, _ = Lab.from_folder(SAMPLE_ZONES, port=5300, with_resolver=False)
    assert len(whole.servers) == len(whole.hierarchy.servers)


def test_only_needs_a_fixed_port() -> None:
    with pytest.raises(ConfigError, match="fixed --port"):
        Lab.from_folder(SAMPLE_ZONES, port=0, only=split.parse_networks(["127.0.1.0/24"]))


def test_lab_toml_only(tmp_path: Path) -> None:
    (tmp_path / "lab.toml").write_text('only = ["127.0.2.0/24"]\n')
    assert LabSettings.load(tmp_path / "lab.toml").only == (ipaddress.IPv4Network("127.0.2.0/24"),)
    (tmp_path / "lab.toml").write_text('only = "127.0.2.0/24"\n')
    with pytest.raises(ConfigError, match="only must be a list"):
        LabSettings.load(tmp_path / "lab.toml")
    (tmp_path / "lab.toml").write_text('only = ["127.0.2.0/99"]\n')
    with pytest.raises(ConfigError, match="only 127.0.2.0/99: not an IPv4 network"):
        LabSettings.load(tmp_path / "lab.toml")


# --- two real processes ---------------------------------------------------------------------


def _up(port: int, state: Path, hints: Path, *options: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "dnslab", "up", "--port", str(port), "--no-web", "--fake-clock",
                             "--hints", str(hints), *options], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**ENV, "DNSLAB_STATE": str(state)})


def _stop(proc: subprocess.Popen[str]) -> str:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=WAIT)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=WAIT)
    join_reader(proc, WAIT)
    assert proc.stderr is not None
    with proc.stderr:
        return proc.stderr.read()


def test_the_sample_lab_split_over_two_processes_resolves_across_them(tmp_path: Path) -> None:
    """Roots and TLDs in one process, the leaf zones and the resolver in the other: every walk crosses."""
    port = free_port("127.0.0.1")
    state = tmp_path / "state"
    upper = _up(port, state, tmp_path / "a.hints", "--only", "127.0.1.0/24", "--only", "127.0.2.0/24",
                "--no-resolver")
    lower = None
    try:
        banner = read_until(upper, "Ctrl-C stops the lab.", WAIT)
        assert "Ctrl-C stops the lab." in banner, banner
        assert "127.0.3." not in banner and "this process serves only 127.0.1.0/24, 127.0.2.0/24" in banner
        lower = _up(port, state, tmp_path / "b.hints", "--only", "127.0.3.0/24")
        banner = read_until(lower, "Ctrl-C stops the lab.", WAIT)
        assert "Ctrl-C stops the lab." in banner, banner
        assert "127.0.1.1:" not in banner and f"127.0.3.1:{port}" in banner

        def ask(name: str, rdtype: str = "A") -> dns.message.Message:
            return dns.query.udp(dns.message.make_query(name, rdtype), "127.0.0.1", port=port, timeout=WAIT,
                                 ignore_unexpected=True)

        answer = ask("www.example.com")
        assert answer.rcode() == dns.rcode.NOERROR
        assert sorted(rr.to_text() for rr in answer.find_rrset(answer.answer, dns.name.from_text(
            "www.example.com"), dns.rdataclass.IN, dns.rdatatype.A)) == ["192.0.2.1", "192.0.2.2", "192.0.2.3"]
        chained = ask("www.example.org")  # a CNAME into example.com: two leaf zones, both walks via process one
        assert chained.rcode() == dns.rcode.NOERROR
        assert {rrset.rdtype for rrset in chained.answer} == {dns.rdatatype.CNAME, dns.rdatatype.A}
        assert ask("nothing-here.example.com").rcode() == dns.rcode.NXDOMAIN

        # Each part has its own state file; commands without a part go to the one with the resolver.
        assert state_path(port, state, "127.0.1.0_24+127.0.2.0_24").exists()
        lower_state = json.loads(state_path(port, state, "127.0.3.0_24").read_text())
        assert lower_state["only"] == ["127.0.3.0/24"] and lower_state["resolver_address"] == "127.0.0.1"
        assert find_lab(port, state).only == ["127.0.3.0/24"]
        stats = subprocess.run([sys.executable, "-m", "dnslab", "stats", "--port", str(port), "--json"],
                               capture_output=True, text=True, env={**ENV, "DNSLAB_STATE": str(state)}, timeout=60)
        assert stats.returncode == 0 and json.loads(stats.stdout)["upstream_queries"] >= 4, stats.stderr
        # A fault on a server the other process holds is refused in one line, not misapplied.
        fault = subprocess.run([sys.executable, "-m", "dnslab", "fault", "127.0.1.1", "down", "--port", str(port)],
                               capture_output=True, text=True, env={**ENV, "DNSLAB_STATE": str(state)}, timeout=60)
        assert fault.returncode == 1 and "served by another process" in fault.stderr
        assert "Traceback" not in fault.stderr and len(fault.stderr.strip().splitlines()) == 1

        # The same part twice on the port is refused, naming the running one.
        again = _up(port, state, tmp_path / "c.hints", "--only", "127.0.3.0/24")
        try:
            again.wait(timeout=WAIT)
        finally:
            err = _stop(again)
        assert again.returncode == 1 and "already runs on port" in err and "Traceback" not in err
    finally:
        errors = [_stop(proc) for proc in (lower, upper) if proc is not None]
    assert all("Traceback" not in err for err in errors), errors
    assert upper.returncode == 0 and lower is not None and lower.returncode == 0
    assert not list(state.glob("lab-*.json"))  # both state files removed on stop
