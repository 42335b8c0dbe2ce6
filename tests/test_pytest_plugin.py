"""The pytest plugin, tested as plugins are: pytester runs small test suites that use it."""

from __future__ import annotations

import socket
import threading
from pathlib import Path

import pytest

from conftest import REPO

pytest_plugins = ["pytester"]

EXAMPLES = REPO / "examples" / "test_lab_examples.py"


def lab_threads() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name == "dnslab-lab"]


def test_the_examples_pass(pytester: pytest.Pytester) -> None:
    text = EXAMPLES.read_text()
    pytester.makepyfile(test_examples=text)
    result = pytester.runpytest()  # the plugin comes from its pytest11 entry point
    result.assert_outcomes(passed=text.count("\ndef test_"))  # every example, none skipped


def test_a_failing_test_still_tears_its_lab_down(pytester: pytest.Pytester, tmp_path: Path) -> None:
    record = tmp_path / "port"
    pytester.makepyfile(test_fails=f"""
        def test_fails(dns_lab):
            open({str(record)!r}, "w").write(str(dns_lab.resolver_address[1]))
            assert dns_lab.resolver.resolve("www.example.com", "A")
            raise AssertionError("this test fails on purpose")
    """)
    before = len(lab_threads())
    result = pytester.runpytest()  # the plugin comes from its pytest11 entry point
    result.assert_outcomes(failed=1)
    assert len(lab_threads()) == before  # the lab's thread is gone
    port = int(record.read_text())
    for address in ("127.0.0.1", "127.0.1.1", "127.0.3.1"):  # its sockets are released
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind((address, port))


def test_two_labs_in_one_session_do_not_collide(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_two="""
        def test_two_labs(make_dns_lab, dns_lab):
            other = make_dns_lab()
            assert other.resolver_address != dns_lab.resolver_address
            other.server("ns1.example.com").down()
            other.server("ns2.example.com").down()
            assert [r.address for r in dns_lab.resolver.resolve("www.example.com", "A")]
            assert dns_lab.server("ns1.example.com").faults == []

        def test_session_lab(dns_lab_session):
            assert dns_lab_session.resolver.resolve("www.example.org", "A")
    """)
    result = pytester.runpytest()  # the plugin comes from its pytest11 entry point
    result.assert_outcomes(passed=2)
