"""The shared checks of typed numbers, and the control API refusing what the command line refuses."""

from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest

from dnslab.core import validate
from dnslab.core.clock import FakeClock
from dnslab.lab.control import ControlClient, LabState, find_lab, running_labs, state_path
from dnslab.core.errors import ConfigError, DnslabError
from dnslab.lab.runtime import Lab, LabSettings

from conftest import SAMPLE_ZONES, LabThread


@pytest.mark.parametrize("value", ["99999", "70000", "-1", "1.5", "", "53x", True, 65536, 2.5])
def test_port_refuses_what_would_wrap_or_mean_nothing(value: object) -> None:
    with pytest.raises(ConfigError, match=r"^--port: expected a port number from 0 to 65535 \(0 picks a free one\), got "):
        validate.port(value, "--port")


def test_port_takes_text_and_numbers_and_zero_only_where_allowed() -> None:
    assert validate.port("5300") == validate.port(5300) == validate.port(5300.0) == 5300
    assert validate.port("0") == 0
    with pytest.raises(ConfigError, match="from 1 to 65535"):
        validate.port("0", zero=False)


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", float("nan"), float("inf"), "1e12", -1, "-0.5", "x", True,
                                   None])
def test_clock_step_is_finite_forward_and_bounded(value: object) -> None:
    with pytest.raises(ConfigError, match=r"^seconds: expected a number from 0 to 315360000 seconds \(10 years\), got"):
        validate.clock_step(value)


def test_amount_and_ttl_bounds() -> None:
    assert validate.clock_step("300") == 300.0 and validate.clock_step(0) == 0.0
    assert validate.ttl("0") == 0 and validate.ttl(2**31 - 1) == 2**31 - 1
    with pytest.raises(ConfigError, match="RFC 2181"):
        validate.ttl(2**31)
    with pytest.raises(ConfigError, match="RFC 2181"):
        validate.ttl("-5")


def test_fake_clock_refuses_nan_and_infinity() -> None:
    clock = FakeClock()
    for bad in (math.nan, math.inf):
        with pytest.raises(ValueError, match="finite"):
            clock.advance(bad)
    assert clock.now() == 1_000_000.0


@pytest.mark.parametrize("port", ["99999", "-1", "true", '"http"'])
def test_lab_toml_port_is_checked(tmp_path: Path, port: str) -> None:
    (tmp_path / "lab.toml").write_text(f"port = {port}\n")
    with pytest.raises(ConfigError, match=r"lab.toml: port: expected a port number from 0 to 65535"):
        LabSettings.load(tmp_path / "lab.toml")


# --- the control API: the server side checks too, whatever the client ------------------------


@pytest.fixture(scope="module")
def fake_clock_lab() -> Iterator[Lab]:
    lab, _ = Lab.from_folder(SAMPLE_ZONES, port=0, clock=FakeClock())
    with LabThread(lab) as running:
        yield running


def control(lab: Lab) -> ControlClient:
    return ControlClient(LabState(lab.control.address, lab.control.port, lab.control.token,
                                  lab.resolver_address, lab.actual_port, "", os.getpid()))


@pytest.mark.parametrize("seconds", ["nan", float("nan"), float("inf"), "-inf", 1e12, -1, True, "soon", None])
def test_control_clock_advance_refuses_what_would_break_the_lab(fake_clock_lab: Lab, seconds: object) -> None:
    before = control(fake_clock_lab).call("clock")["now"]
    with pytest.raises(DnslabError, match=r"^clock advance: expected a number from 0 to 315360000 seconds"):
        control(fake_clock_lab).call("clock.advance", {"seconds": seconds})
    assert control(fake_clock_lab).call("clock")["now"] == before
    assert control(fake_clock_lab).call("clock.advance", {"seconds": 1})["now"] == before + 1


def test_control_checks_ttl_limit_and_args(fake_clock_lab: Lab) -> None:
    with pytest.raises(DnslabError, match=r"^ttl: expected a TTL in seconds from 0 to 2147483647"):
        control(fake_clock_lab).call("record.set", {"name": "www.example.com", "type": "A",
                                                    "values": ["192.0.2.7"], "ttl": -1})
    with pytest.raises(DnslabError, match=r"^limit: expected a whole number from 1 to"):
        control(fake_clock_lab).call("cache.show", {"limit": "lots"})
    with pytest.raises(DnslabError, match="args must be a JSON object"):
        control(fake_clock_lab).call("stats", ["not", "a", "dict"])  # type: ignore[arg-type]


def test_control_endpoint_takes_a_client_leaving_mid_trace_quietly(fake_clock_lab: Lab,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    """`dnslab trace X | head -1`: the client reads one line and goes; the lab logs nothing and carries on."""
    for _ in range(3):
        with socket.create_connection((fake_clock_lab.control.address, fake_clock_lab.control.port), 10) as sock:
            request = {"token": fake_clock_lab.control.token, "command": "trace",
                       "args": {"name": "www.example.org", "cold": True}}
            sock.sendall(json.dumps(request).encode() + b"\n")
            assert sock.makefile("rb").readline()  # the first event, then hang up
    assert control(fake_clock_lab).call("stats")["queries"] >= 0  # the lab still answers
    assert [r.getMessage() for r in caplog.records if r.levelname in ("ERROR", "WARNING")] == []


# --- one state file per lab ------------------------------------------------------------------


def _state(port: int, pid: int) -> LabState:
    return LabState("127.0.0.1", 1, "token", "127.0.0.1", port, "hints", pid)


def test_find_lab_picks_by_port_and_ignores_stale_files(tmp_path: Path) -> None:
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(gone.stdout)
    with pytest.raises(DnslabError, match=rf"^no running lab found \(no state file in {tmp_path}\)"):
        find_lab(folder=tmp_path)
    _state(5300, os.getpid()).write(state_path(5300, tmp_path))
    _state(5400, dead_pid).write(state_path(5400, tmp_path))  # killed with SIGKILL: its file stayed
    assert find_lab(folder=tmp_path).port == 5300
    _state(5301, os.getpid()).write(state_path(5301, tmp_path))
    assert [state.port for state in running_labs(tmp_path)] == [5300, 5301]
    with pytest.raises(DnslabError, match=r"^2 labs are running \(ports 5300, 5301\): pick one with --port N$"):
        find_lab(folder=tmp_path)
    assert find_lab(5301, tmp_path).port == 5301
    with pytest.raises(DnslabError, match=r"^no running lab on port 5400 \(running: port 5300, 5301;"):
        find_lab(5400, tmp_path)


def test_the_python_api_checks_the_port_too() -> None:
    with pytest.raises(ConfigError, match=r"^port: expected a port number from 0 to 65535 \(0 picks a free one\), got 99999$"):
        Lab([], port=99999)


def test_a_state_folder_that_is_a_file_is_one_clear_error(tmp_path: Path) -> None:
    """DNSLAB_STATE used to name a file; now it names a folder, and the old use must not end in a traceback."""
    (tmp_path / "lab.json").write_text("{}")
    with pytest.raises(DnslabError, match=r"cannot write the lab's state file .*lab\.json/lab-5300\.json: "
                                          r".*\(DNSLAB_STATE names a folder\)"):
        _state(5300, os.getpid()).write(state_path(5300, tmp_path / "lab.json"))
    with pytest.raises(DnslabError, match="no running lab found"):
        find_lab(folder=tmp_path / "lab.json")
    with pytest.raises(DnslabError, match="is a folder: DNSLAB_STATE names the folder of state files"):
        LabState.read(tmp_path)


def test_the_fake_clock_stops_short_of_dnssecs_32_bit_times() -> None:
    """Ten years a step is allowed, but never past early 2105: RRSIG times are 32-bit seconds (RFC 4034)."""
    lab, _ = Lab.from_folder(SAMPLE_ZONES, port=0, clock=FakeClock())
    with LabThread(lab) as running:
        years = 0
        while running.clock.wall() + validate.MAX_CLOCK_STEP < 2**32 - 86400 * 400:
            control(running).call("clock.advance", {"seconds": validate.MAX_CLOCK_STEP})
            years += 10
        assert years >= 70  # from 2026 on
        with pytest.raises(DnslabError, match=r"^clock advance: the lab's clock cannot pass the year 2105"):
            control(running).call("clock.advance", {"seconds": validate.MAX_CLOCK_STEP})
