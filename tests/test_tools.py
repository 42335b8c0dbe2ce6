"""The parts the tools in scripts/ share (tools/common): what every tool's start-up and clean-up rest on.

A real `dnslab up` child on loopback, real child processes stopped by process group, real sockets;
the generated Unbound and NSD configs are checked by the servers' own checkconf when installed.
"""

from __future__ import annotations

import logging
import shutil
import socket
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import dns.flags
import dns.message
import dns.rdataclass
import dns.rdatatype
import pytest

from tools.common import reference
from tools.common.lab import Dnslab, LabUnavailable
from tools.common.logcount import CountingHandler, kinds_text
from tools.common.net import free_port, query_wire
from tools.common.procs import Managed, session_alive, stop_process
from tools.common.reference import find_binary, nsd_config, start_nsd, unbound_config
from tools.common.report import format_table, tail
from tools.compare.shared import ZONES, Rule, Tally, explain, load_lab

SAMPLE_ZONES = Path(__file__).resolve().parent.parent / "dnslab" / "zones"


@pytest.fixture(autouse=True)
def _stop_children() -> Iterator[None]:
    """Whatever a test started and did not stop (a failed assertion midway) ends with it."""
    yield
    Managed.stop_all()


def test_query_wire_is_the_question_asked() -> None:
    message = dns.message.from_wire(query_wire("www.Example.com.", "AAAA", 4242, rd=False))
    assert message.id == 4242
    assert not message.flags & dns.flags.RD
    assert message.edns == 0 and message.payload == 1232
    (question,) = message.question
    assert question.name.to_text() == "www.Example.com."
    assert question.rdtype == dns.rdatatype.AAAA and question.rdclass == dns.rdataclass.IN
    chaos = dns.message.from_wire(query_wire("version.server", "TXT", 1, qclass=3, edns=False))
    assert chaos.edns == -1 and chaos.question[0].rdclass == dns.rdataclass.CH


def test_free_port_is_free_for_udp_and_tcp() -> None:
    port = free_port("127.0.0.1")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp, \
            socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
        udp.bind(("127.0.0.1", port))
        tcp.bind(("127.0.0.1", port))


def test_format_table_pads_columns_and_underlines_the_head() -> None:
    assert format_table([("A", "LONGER"), ("wide cell", "x")]).splitlines() == [
        "A          LONGER", "---------  ------", "wide cell  x"]
    assert tail("one\ntwo\nthree\n", 2, "> ") == "> two\n> three"


# A child that ignores SIGTERM and leaves a grandchild in its session: only SIGKILL to the
# whole group ends both.
STUBBORN = """
import signal, subprocess, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
subprocess.Popen([sys.executable, "-c", "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)"])
print("ready", flush=True)
time.sleep(60)
"""


def test_managed_stop_ends_the_whole_session_within_its_bound(tmp_path: Path) -> None:
    child = Managed("stubborn", [sys.executable, "-c", STUBBORN], tmp_path / "stubborn.log")
    child.wait_output("^ready$", 30)
    assert session_alive(child.pid)
    code = child.stop(grace=0.5)
    assert code is not None and code < 0  # killed, not exited
    assert not session_alive(child.pid)
    assert child not in Managed.running


def test_stop_process_of_a_child_already_gone_returns_its_status() -> None:
    child = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    child.wait(30)
    assert stop_process(child, 1.0) == 3


def test_wait_output_reports_a_child_that_exits_first(tmp_path: Path) -> None:
    child = Managed("failing", [sys.executable, "-c", "print('no such zone'); raise SystemExit(2)"],
                    tmp_path / "failing.log")
    with pytest.raises(RuntimeError, match="exited with status 2:\n    no such zone"):
        child.wait_output("never printed", 30)
    child.stop()


def test_dnslab_up_child_runs_until_stopped(tmp_path: Path) -> None:
    lab = Dnslab(sys.executable, tmp_path).up(SAMPLE_ZONES, 0, "--no-resolver", "--no-web", timeout=60)
    try:
        assert lab.port > 0 and lab.hints.read_text().strip()
        assert lab.state_path == tmp_path / "state" / f"lab-{lab.port}.json" and lab.state()["port"] == lab.port
        assert lab.servers and all(address.startswith("127.") for address in lab.servers)
        assert lab.control("ping") is not None
        reply = dns.message.from_wire(socket_ask((lab.servers[0], lab.port), query_wire(".", "SOA", 7, rd=False)))
        assert reply.id == 7 and reply.answer  # the root server answers for its zone
    finally:
        assert lab.stop() == 0  # dnslab up exits cleanly on SIGTERM
    assert not session_alive(lab.pid)


def test_dnslab_up_on_a_taken_address_is_unavailable_and_leaves_nothing(tmp_path: Path) -> None:
    """The lab's first server address, taken on a port by a socket that shares it with nobody."""
    root = next(line.split()[-1] for line in (SAMPLE_ZONES / "root.zone").read_text().splitlines()
                if line.split()[2:4] == ["IN", "A"] or line.split()[1:3] == ["IN", "A"])
    port = free_port(root)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind((root, port))
        running = list(Managed.running)
        with pytest.raises(LabUnavailable, match="cannot listen"):
            Dnslab(sys.executable, tmp_path).up(SAMPLE_ZONES, port, "--no-resolver", "--no-web", timeout=60)
        assert Managed.running == running  # the failed child was stopped and forgotten


def socket_ask(address: tuple[str, int], wire: bytes) -> bytes:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(5)
        sock.sendto(wire, address)
        return sock.recv(65535)


def test_find_binary_takes_only_an_executable_given_path(tmp_path: Path) -> None:
    plain = tmp_path / "unbound"
    plain.write_text("")
    assert find_binary("unbound", str(plain)) is None
    assert find_binary("sh") is not None


@pytest.mark.skipif(find_binary("unbound-checkconf") is None, reason="unbound-checkconf not installed")
def test_unbound_config_passes_unbound_checkconf(tmp_path: Path) -> None:
    hints = tmp_path / "root.hints"
    hints.write_text(".  3600000  NS  a.root.\na.root.  3600000  A  127.0.0.1\n")
    conf = tmp_path / "unbound.conf"
    conf.write_text(unbound_config(("127.0.0.1", 5399), tmp_path, hints, ['  module-config: "iterator"']))
    checked = subprocess.run([find_binary("unbound-checkconf") or "", str(conf)], capture_output=True, text=True,
                             timeout=30)
    assert checked.returncode == 0, checked.stdout + checked.stderr


@pytest.mark.skipif(find_binary("nsd-checkconf") is None, reason="nsd-checkconf not installed")
def test_nsd_config_passes_nsd_checkconf(tmp_path: Path) -> None:
    zone = tmp_path / "example.com.zone"
    shutil.copy(SAMPLE_ZONES / "example.com.zone", zone)
    conf = tmp_path / "nsd.conf"
    conf.write_text(nsd_config(("127.0.0.1", 5399), tmp_path, [("example.com.", zone)], ["  server-count: 1"]))
    checked = subprocess.run([find_binary("nsd-checkconf") or "", str(conf)], capture_output=True, text=True,
                             timeout=30)
    assert checked.returncode == 0, checked.stdout + checked.stderr


@pytest.mark.skipif(find_binary("nsd") is None, reason="nsd not installed")
def test_start_nsd_takes_another_port_when_the_free_one_is_taken_before_it_binds(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The race `free_port` cannot close: another program binds the port before NSD does."""
    host = "127.0.99.201"
    zone = tmp_path / "example.com.zone"
    shutil.copy(SAMPLE_ZONES / "example.com.zone", zone)
    ports = [free_port(host), free_port(host)]
    offered = iter(ports)
    monkeypatch.setattr(reference, "free_port", lambda _host: next(offered))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind((host, ports[0]))
        process, address = start_nsd(find_binary("nsd") or "", tmp_path / "nsd", host, [("example.com.", zone)],
                                     ["  server-count: 1"])
    try:
        assert address == (host, ports[1])
        assert "already in use" in (tmp_path / "nsd" / "nsd.log").read_text() + process.output()
        reply = dns.message.from_wire(socket_ask(address, query_wire("example.com.", "SOA", 9, rd=False)))
        assert reply.id == 9 and reply.answer
    finally:
        process.stop()


def test_kinds_text_shows_each_kind_of_error_with_its_count_and_example() -> None:
    counter = CountingHandler()
    logger = logging.getLogger("dnslab.test-kinds")
    logger.addHandler(counter)
    try:
        for _ in range(3):
            logger.error("zone %s broken", "x")
        logger.warning("only a warning")
    finally:
        logger.removeHandler(counter)
    summary = counter.summary()
    assert summary["errors"] == 3 and summary["by_level"]["WARNING"] == 1
    assert kinds_text(summary, indent="> ").splitlines() == [
        "> 3 x dnslab.test-kinds ERROR: zone %s broken", ">   dnslab.test-kinds ERROR: zone x broken"]


def test_comparison_tally_counts_findings_apart_and_explains_by_kind() -> None:
    rules = [Rule("flags", "NOTIMP copies only RD", lambda question, theirs, ours: theirs == "NOTIMP"),
             Rule(None, "any field: theirs is off", lambda question, theirs, ours: theirs == "off")]
    assert explain(rules, "flags", "q", "NOTIMP", "x") is rules[0]
    assert explain(rules, "answer", "q", "NOTIMP", "x") is None  # the rule is for another field
    assert explain(rules, "answer", "q", "off", "x") is rules[1]
    total, first, second = Tally(), Tally(count=3, explained=Counter({"a": 1})), Tally(count=2, expected=1)
    second.explained["a"] += 2
    for tally in (first, second):
        total.add(tally)
    assert (total.count, total.explained, total.expected) == (5, Counter({"a": 3}), 1)
    assert total.status() == 0  # explained and expected findings do not fail a run
    total.logged = {"errors": 1}
    assert total.status() == 1  # an error the lab logged fails it, whatever it answered
    total.logged = {}
    total.failures.append("both silent")
    assert total.status() == 1


def test_comparison_zones_load_as_a_signed_lab_with_one_unsigned_branch(tmp_path: Path) -> None:
    lab = load_lab("test", ZONES, 0, tmp_path / "keys")
    assert lab is not None and lab.signer is not None
    assert {str(zone.origin) for zone in lab.zones} == {".", "test.", "plain.test.", "kid.plain.test.",
                                                        "signed.test.", "sub.signed.test."}
