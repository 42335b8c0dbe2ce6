"""Fault selectors: a server fault narrowed to some queries by name, type, one in N and a probability."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path
from typing import Callable

import dns.exception
import dns.message
import dns.query
import dns.rcode
import pytest

from dnslab.authority.server import AuthoritativeServer
from dnslab.core.errors import ConfigError
from dnslab.core.zone import load_zone_text
from dnslab.lab import fault_kinds
from dnslab.lab.faults import FaultyServer
from dnslab.testing import DnsLab

from conftest import ENV, lab_process, read_until, stop

ZONE = """
$ORIGIN example.test.
$TTL 300
@ SOA ns admin 41 1800 900 604800 60
@ NS ns
ns A 127.0.0.1
www A 192.0.2.1
www AAAA 2001:db8::1
"""


def server() -> FaultyServer:
    zone = load_zone_text(ZONE).zone
    assert zone is not None
    return FaultyServer(AuthoritativeServer([zone]).handle, seed=1)


def rcode(faulty: FaultyServer, name: str, rdtype: str = "A") -> int | None:
    reply = faulty.handle(dns.message.make_query(name, rdtype).to_wire(), False, ("127.0.0.1", 5))
    if asyncio.iscoroutine(reply):
        reply = asyncio.run(reply)
    return None if reply is None else dns.message.from_wire(reply).rcode()  # type: ignore[arg-type]


def test_name_type_and_one_in_n_as_coredns_erratic_counts() -> None:
    faulty = server()
    faulty.apply("servfail", select=fault_kinds.selector(["*.example.test"], ["A"], every=3))
    got = [rcode(faulty, "www.example.test.") for _ in range(7)]
    # The 1st matching query, then every 3rd after it (erratic's queryNr % AMOUNT == 0).
    assert [r == dns.rcode.SERVFAIL for r in got] == [True, False, False, True, False, False, True]
    assert rcode(faulty, "www.example.test.", "AAAA") == dns.rcode.NOERROR  # another type
    assert rcode(faulty, "example.test.", "A") == dns.rcode.NOERROR        # the glob's * needs a label
    assert faulty.state.describe() == ["servfail [name *.example.test, type A, 1 in 3]"]


def test_a_plain_name_is_that_name_and_below() -> None:
    select = fault_kinds.selector(["Example.Test."])
    assert select is not None
    assert select.question_matches("example.test", 1) and select.question_matches("a.b.example.test", 1)
    assert not select.question_matches("notexample.test", 1)
    assert fault_kinds.selector(["."]).question_matches("anything", 1)  # type: ignore[union-attr]


def test_a_probability_is_seeded_and_near_its_share() -> None:
    counts = []
    for _ in range(2):
        faulty = server()
        faulty.apply("down", select=fault_kinds.selector(pct=25))
        counts.append(sum(rcode(faulty, "www.example.test.") is None for _ in range(2000)))
    assert counts[0] == counts[1]  # the same queries each run
    assert 400 < counts[0] < 600


def test_faults_keep_their_own_selectors_and_lose_them_when_lifted() -> None:
    faulty = server()
    faulty.apply("down", select=fault_kinds.selector(types=["AAAA"]))
    faulty.apply("refused", select=fault_kinds.selector(names=["nothing.example.test"]))
    assert rcode(faulty, "www.example.test.", "AAAA") is None
    assert rcode(faulty, "www.example.test.") == dns.rcode.NOERROR
    assert rcode(faulty, "nothing.example.test.") == dns.rcode.REFUSED
    faulty.apply("up")
    assert rcode(faulty, "www.example.test.", "AAAA") == dns.rcode.NOERROR
    faulty.apply("down")  # again, without a selector: every query
    assert rcode(faulty, "www.example.test.") is None
    faulty.apply("clear")
    assert faulty.state.selectors == {} and rcode(faulty, "www.example.test.") == dns.rcode.NOERROR


@pytest.mark.parametrize("call, says", [
    (lambda: fault_kinds.selector(types=["BOGUS"]), "--type 'BOGUS': not a record type"),
    (lambda: fault_kinds.selector(names=["a..b"]), "--name 'a..b': not a name pattern"),
    (lambda: fault_kinds.selector(every=0), "--every: expected a whole number from 1 to"),
    (lambda: fault_kinds.selector(pct=101), "--pct: expected a number from 0.001 to 100 %"),
    (lambda: server().apply("unreachable", select=fault_kinds.selector(types=["A"])), "unreachable applies to every"),
    (lambda: server().apply("clear", select=fault_kinds.selector(types=["A"])), "clear applies to every query"),
    (lambda: fault_kinds.selector_from_fields({"names": "x"}), "select names and types must be lists"),
])
def test_bad_selectors_are_one_line_errors(call: Callable[[], object], says: str) -> None:
    with pytest.raises(ConfigError) as caught:
        call()
    assert says in str(caught.value) and "\n" not in str(caught.value)


def udp_rcodes(lab: DnsLab, address: str, questions: list[tuple[str, str]]) -> list[int | None]:
    """Real datagrams, one at a time; None for a query left unanswered (1 s: loopback answers in < 1 ms,
    with room for a machine under load)."""
    out: list[int | None] = []
    for name, rdtype in questions:
        try:
            out.append(dns.query.udp(dns.message.make_query(name, rdtype), address, timeout=1.0,
                                     port=lab.port).rcode())
        except dns.exception.Timeout:
            out.append(None)
    return out


def test_a_narrowed_drop_on_a_running_server(make_dns_lab: Callable[..., DnsLab]) -> None:
    lab = make_dns_lab()
    ns1 = lab.server("ns1.example.com").fault("down", name="*.example.com", type="AAAA", every=3)
    assert ns1.faults == ["down [name *.example.com, type AAAA, 1 in 3]"]
    aaaa = udp_rcodes(lab, "127.0.3.1", [("www.example.com", "AAAA")] * 6)
    a = udp_rcodes(lab, "127.0.3.1", [("www.example.com", "A")] * 3)
    assert aaaa == [None, 0, 0, None, 0, 0] and a == [0, 0, 0]
    assert ns1.queries["www.example.com.", "AAAA"] == 6  # dropped ones are received and counted


def test_the_command_line_and_control_endpoint_take_selectors(tmp_path: Path) -> None:
    proc, run = lab_process(tmp_path)
    try:
        banner = read_until(proc, "Ctrl-C stops the lab.")
        port = int(banner.splitlines()[0].split()[3])
        said = run("fault", "ns1.example.com", "servfail", "--name", "www.example.com", "--type", "A", "--every", "2")
        assert said == "127.0.3.1: servfail [name www.example.com, type A, 1 in 2]\n"
        assert "127.0.3.1: servfail [name www.example.com, type A, 1 in 2]" in run("faults")
        got = [dns.query.udp(dns.message.make_query("www.example.com", "A"), "127.0.3.1", timeout=3,
                             port=port).rcode() for _ in range(4)]
        assert got == [dns.rcode.SERVFAIL, 0, dns.rcode.SERVFAIL, 0]
        env = {**ENV, "DNSLAB_STATE": str(tmp_path / "state")}
        for args, says, code in (
                (["--type", "BOGUS"], "--type 'BOGUS': not a record type", 1),
                (["--every", "0"], "argument --every: expected a whole number from 1", 2)):
            done = subprocess.run([sys.executable, "-m", "dnslab", "fault", "ns1.example.com", "down", *args],
                                  capture_output=True, text=True, env=env, timeout=60)
            assert done.returncode == code and says in done.stderr.splitlines()[-1], done.stderr
            assert "Traceback" not in done.stderr
        done = subprocess.run([sys.executable, "-m", "dnslab", "fault", "ns1.example.com", "unreachable", "--type",
                               "A"], capture_output=True, text=True, env=env, timeout=60)
        assert done.returncode == 1 and len(done.stderr.splitlines()) == 1, done.stderr
        assert "127.0.3.1: servfail [name" in run("faults")  # the refused command changed nothing
    finally:
        code, _, err = stop(proc)
    assert code == 0, err

