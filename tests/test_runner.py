"""One way to run a lab, and one way to supervise worker processes (issue 16).

`dnslab up` and `dnslab.testing.DnsLab` both start through dnslab.lab.runner.Runner: the same
state file and root hints come out of both.  `dnslab up --workers N` and `dnslab resolver --workers N`
both fork through dnslab.services.workers.WorkerPool: a worker that dies stops the command with one
line saying which and how, a Ctrl-C stops every process with exit 0, and a parent killed outright
leaves no worker behind.  Every wait here is bounded.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import ENV, SAMPLE_ZONES, lab_process, read_until, stop
from dnslab.lab.control import ControlClient, LabState
from dnslab.lab.runner import Runner
from dnslab.lab.runtime import Lab
from dnslab.testing import DnsLab

WAIT = 30.0


def children(pid: int) -> list[int]:
    """The live child processes of *pid* (zombies not counted)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid and fields[0] != "Z":
                found.append(int(entry.name))
    return found


def gone(pid: int) -> bool:
    """No such process, or only its zombie (a reparented child waits there for init to reap it)."""
    try:
        return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def wait_gone(pids: list[int]) -> bool:
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        if all(gone(pid) for pid in pids):
            return True
        time.sleep(0.05)
    return False


def test_dnslab_up_and_dnslab_testing_start_a_lab_the_same_way(tmp_path: Path) -> None:
    proc, _ = lab_process(tmp_path, "--no-web")
    try:
        banner = read_until(proc, "Ctrl-C stops the lab.")
        assert "Ctrl-C stops the lab." in banner, banner
        port = int(banner.splitlines()[0].split()[3])
        up_state = json.loads((tmp_path / "state" / f"lab-{port}.json").read_text())
        up_hints = (tmp_path / "root.hints").read_text()
        with DnsLab(hints=tmp_path / "testing.hints", state_dir=tmp_path / "testing-state") as lab:
            assert isinstance(lab.runner, Runner)
            path = tmp_path / "testing-state" / f"lab-{lab.port}.json"
            ours = json.loads(path.read_text())
            assert set(ours) == set(up_state)
            assert ours["pid"] == os.getpid() and up_state["pid"] == proc.pid
            assert ours["root_hints"] == str(tmp_path / "testing.hints")
            assert up_state["root_hints"] == str(tmp_path / "root.hints")
            # The same zones, the same hierarchy: the same hints, written by the same code.
            assert (tmp_path / "testing.hints").read_text() == up_hints
            for state in (LabState.read(path), LabState(**up_state)):
                assert ControlClient(state).call("ping") == {"pid": state.pid}
            assert LabState.read(path) == lab.state
        assert not path.exists()  # removed at the stop, as dnslab up removes its own
    finally:
        code, _, err = stop(proc)
    assert code == 0, err
    assert not (tmp_path / "state" / f"lab-{port}.json").exists()


def test_a_lab_in_a_thread_refuses_workers() -> None:
    from dnslab.lab.runner import RunOptions
    from dnslab.testing import LabRunner
    from dnslab.core.errors import DnslabError

    lab, _ = Lab.from_folder(SAMPLE_ZONES, port=0)
    with pytest.raises(DnslabError, match="workers need dnslab up --workers"):
        LabRunner(lab, RunOptions(workers=2))


def _resolver(tmp_path: Path, *options: str) -> tuple[subprocess.Popen[str], str]:
    hints = tmp_path / "root.hints"
    hints.write_text(Lab.from_folder(SAMPLE_ZONES, port=0)[0].root_hints)
    proc = subprocess.Popen([sys.executable, "-m", "dnslab", "resolver", "--root-hints", str(hints),
                             "--listen", "127.0.0.1:0", *options],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
    return proc, read_until(proc, "each with its own cache.")


@pytest.mark.parametrize("command", ["up", "resolver"])
def test_a_killed_worker_stops_the_command_and_says_which(tmp_path: Path, command: str) -> None:
    if command == "up":
        proc, _ = lab_process(tmp_path, "--no-web", "--workers", "3")
        banner = read_until(proc, "each has its own cache.")
    else:
        proc, banner = _resolver(tmp_path, "--workers", "3")
    try:
        assert "3 worker processes" in banner, banner
        workers = children(proc.pid)
        assert len(workers) == 2, workers
        os.kill(workers[0], signal.SIGKILL)
        _, err = proc.communicate(timeout=WAIT)
    finally:
        if proc.poll() is None:
            stop(proc)
    assert proc.returncode == 1, err
    number = 2 if workers[0] < workers[1] else 3  # forked in turn, numbered from 2 (the parent is 1)
    assert err.strip().splitlines()[-1].startswith(
        f"dnslab: error: worker process {number} (pid {workers[0]}) ended (killed by signal SIGKILL)"), err
    assert "Traceback" not in err
    assert wait_gone(workers)  # the other worker was stopped too
    assert not list((tmp_path / "state").glob("lab-*.json"))


def test_ctrl_c_stops_every_worker_with_exit_0(tmp_path: Path) -> None:
    proc, banner = _resolver(tmp_path, "--workers", "2")
    workers = children(proc.pid)
    assert len(workers) == 1, banner
    code, _, err = stop(proc, signal.SIGINT)
    assert code == 0, err
    assert wait_gone(workers)


def test_workers_leave_when_the_parent_is_killed(tmp_path: Path) -> None:
    proc, banner = _resolver(tmp_path, "--workers", "3")
    workers = children(proc.pid)
    assert len(workers) == 2, banner
    proc.kill()
    proc.communicate(timeout=WAIT)
    assert wait_gone(workers)  # each saw its pipe from the parent close


def test_a_fork_that_fails_is_one_clear_error_and_leaks_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    import errno

    from dnslab.core.errors import DnslabError
    from dnslab.services.workers import ListenerWorker, WorkerPool

    def no_fork() -> int:
        raise OSError(errno.EAGAIN, os.strerror(errno.EAGAIN))

    monkeypatch.setattr(os, "fork", no_fork)
    before = len(os.listdir("/proc/self/fd"))
    pool = WorkerPool(2, lambda: ListenerWorker("127.0.0.1", lambda *a: None))
    with pytest.raises(DnslabError, match="^cannot start worker process 2: Resource temporarily unavailable$"):
        pool.fork()
    assert len(os.listdir("/proc/self/fd")) == before and pool.children == []


def test_sigterm_as_soon_as_the_banner_starts_is_a_clean_stop(tmp_path: Path) -> None:
    """Ctrl-C and SIGTERM are caught from before the start: none can find the lab half-stoppable."""
    proc, _ = lab_process(tmp_path, "--no-web", "--workers", "2")
    first = read_until(proc, "\n")  # the banner's first line: the lab is up, the banner under way
    assert first.startswith("dig @"), first
    workers = children(proc.pid)
    proc.send_signal(signal.SIGTERM)
    rest = read_until(proc, "dnslab: lab stopped.")
    assert proc.wait(timeout=WAIT) == 0, proc.stderr.read() if proc.stderr else ""
    assert "Ctrl-C stops the lab." in rest and "dnslab: lab stopped." in rest, rest
    assert wait_gone(workers)
    assert not list((tmp_path / "state").glob("lab-*.json"))
