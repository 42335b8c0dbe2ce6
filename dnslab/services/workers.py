"""Worker processes sharing one port (SO_REUSEPORT), and the event loop a command runs on.

One mechanism for `dnslab resolver --workers N` and `dnslab up --workers N`: the
process forks N-1 copies of itself *before* any event loop exists (no loop,
thread or socket is inherited), binds its own sockets first (so port 0 picks a
free port), then tells every copy the port; each copy starts its `Worker` on that
port, reports one JSON line (its control endpoint, when it has one) and serves
until it is told to stop.

Supervision, as NSD's and nginx's parent processes do it, but without restarting:
a worker that ends on its own (killed, crashed) stops the whole command, which
then says so on stderr and exits with code 1.  A fresh copy would not hold the faults,
record changes and clock moves the others were given, and a lab whose workers
disagree would answer wrongly without saying so.

Each worker leads a process group of its own, so a signal to the command's
group (Ctrl-C at a terminal, a tool stopping its session) reaches the parent
alone, which then stops the workers in order: a clean stop is never taken for a
worker's death.  A worker also stops when the parent's end of its pipe closes,
so a parent killed with SIGKILL leaves no worker behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import select
import signal
import sys
import time
import traceback
from dataclasses import dataclass
from typing import Any, Callable, Coroutine, Iterator, Protocol

from dnslab.core.errors import DnslabError
from dnslab.services.transport import DnsListener, Handler

START_TIMEOUT = 60.0  # seconds a worker may take to bind and report (a signed lab's copy signs nothing anew)
STOP_GRACE = 10.0     # seconds a worker may take to stop after SIGTERM, before SIGKILL


class Worker(Protocol):
    """What a worker process runs: started on the shared port, stopped at the end."""

    async def start(self, port: int) -> dict[str, Any]:
        """Bind on *port* (SO_REUSEPORT) and serve; the returned facts go to the parent (JSON)."""

    async def stop(self) -> None:
        """Release every socket."""


def run_async(coroutine: Coroutine[Any, Any, Any]) -> Any:
    """Run on uvloop when it is installed (pip install 'dnslab[fast]'), else on plain asyncio."""
    try:
        import uvloop
    except ImportError:
        uvloop = None
    # Run outside the except block: inside it, every later traceback would be
    # chained to "No module named 'uvloop'".
    if uvloop is None:
        return asyncio.run(coroutine)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coroutine)


@contextlib.contextmanager
def stop_signals(stopped: asyncio.Event) -> Iterator[asyncio.Event]:
    """Ctrl-C and SIGTERM (both a normal, clean stop) set *stopped* while this lasts, on the running loop.

    Entered before the start, not after the banner: a SIGTERM that arrives while a command starts
    then stops it cleanly once started, where the default action would kill it with its state
    file and workers left behind."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopped.set)
    try:
        yield stopped
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


def describe_status(status: int) -> str:
    """A wait status as a person reads it: 'exit code 1', 'killed by signal SIGKILL'."""
    if os.WIFSIGNALED(status):
        number = os.WTERMSIG(status)
        try:
            return f"killed by signal {signal.Signals(number).name}"
        except ValueError:
            return f"killed by signal {number}"
    return f"exit code {os.waitstatus_to_exitcode(status)}"


@dataclass
class _Child:
    number: int          # 2..N: the parent is worker 1, as the banners count
    pid: int
    command: int         # our end of the pipe that carries the port (closed: stop)
    report: int          # our end of the pipe the worker reports on (EOF: it ended)
    status: int | None = None  # the wait status, once reaped


class WorkerPool:
    """N-1 forked copies of this process, serving the port the parent binds; see the module docstring."""

    def __init__(self, count: int, make: Callable[[], Worker]) -> None:
        """*count* further processes; *make* builds each one's Worker, in the child, after the fork."""
        self.count = count
        self.make = make
        self.children: list[_Child] = []
        self.death: str | None = None  # the first worker's death, as reported
        self._watching: asyncio.AbstractEventLoop | None = None

    # --- the parent --------------------------------------------------------------------------

    def fork(self) -> None:
        """Fork the workers; call before any event loop, thread or socket exists in this process."""
        sys.stdout.flush()
        sys.stderr.flush()
        for number in range(2, self.count + 2):
            made: list[int] = []
            try:
                command_read, command_write = os.pipe()
                made += [command_read, command_write]
                report_read, report_write = os.pipe()
                made += [report_read, report_write]
                pid = os.fork()
            except OSError as exc:  # out of processes or descriptors: stop those already made
                for fd in made:
                    os.close(fd)
                self.stop()
                raise DnslabError(f"cannot start worker process {number}: {exc.strerror or exc}") from None
            if pid == 0:  # the worker: never returns
                for child in self.children:  # the other workers' pipes: else a parent's death goes unseen
                    os.close(child.command)
                    os.close(child.report)
                os.close(command_write)
                os.close(report_read)
                self._child_main(command_read, report_write)
            os.close(command_read)
            os.close(report_write)
            self.children.append(_Child(number, pid, command_write, report_read))

    def release(self, port: int, timeout: float = START_TIMEOUT) -> list[dict[str, Any]]:
        """Tell every worker the port and wait for their reports (bounded); DnslabError if one fails."""
        for child in self.children:
            try:
                os.write(child.command, f"{port}\n".encode())
            except BrokenPipeError:
                pass  # it is gone: its report says so below
        deadline = time.monotonic() + timeout
        reports = []
        for child in self.children:
            line = _read_line(child.report, deadline)
            try:
                report = json.loads(line) if line else None
            except ValueError:
                report = None
            if not isinstance(report, dict) or "error" in report:
                if not line and time.monotonic() >= deadline:
                    why = f"no report within {timeout:.0f} s"
                elif isinstance(report, dict):
                    why = str(report["error"])
                else:
                    why = self._reap(child, wait=True)
                raise DnslabError(f"worker process {child.number} (pid {child.pid}) did not start: {why}")
            reports.append(report)
        return reports

    def watch(self, ended: asyncio.Event) -> None:
        """From now on, on the running loop: a worker that ends sets *ended* (`death` says which and how)."""
        loop = asyncio.get_running_loop()

        def readable(child: _Child) -> None:
            try:
                data = os.read(child.report, 4096)
            except OSError:
                data = b""
            if data:
                return  # nothing more is said on this pipe; ignore it
            loop.remove_reader(child.report)
            how = self._reap(child, wait=True)
            if self.death is None:
                self.death = f"worker process {child.number} (pid {child.pid}) ended ({how})"
            ended.set()

        for child in self.children:
            os.set_blocking(child.report, False)
            loop.add_reader(child.report, readable, child)
        self._watching = loop

    def stop(self) -> None:
        """SIGTERM every worker still running, wait (bounded), SIGKILL what is left; safe to call twice."""
        loop = self._watching
        if loop is not None:
            for child in self.children:
                try:
                    loop.remove_reader(child.report)
                except (ValueError, OSError):
                    pass
            self._watching = None
        running = [child for child in self.children if child.status is None]
        for child in running:
            os.close(child.command)  # a worker still waiting for its port stops at this
            child.command = -1
            _signal(child.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE
        for child in running:
            while child.status is None and time.monotonic() < deadline:
                self._reap(child, wait=False)
                if child.status is None:
                    time.sleep(0.02)
            if child.status is None:
                _signal(child.pid, signal.SIGKILL)
                self._reap(child, wait=True)
        for child in self.children:
            for fd in (child.command, child.report):
                if fd >= 0:
                    try:
                        os.close(fd)
                    except OSError:
                        pass
            child.command = child.report = -1

    def _reap(self, child: _Child, wait: bool) -> str:
        """Collect the worker's exit status (once); how it ended, in words."""
        if child.status is None:
            try:
                pid, status = os.waitpid(child.pid, 0 if wait else os.WNOHANG)
            except ChildProcessError:
                pid, status = child.pid, 0
            if pid == child.pid:
                child.status = status
        return describe_status(child.status) if child.status is not None else "still running"

    # --- the worker ----------------------------------------------------------------------------

    def _child_main(self, command: int, report: int) -> None:
        """Wait for the port, serve it until told to stop; leave with os._exit (never the parent's code)."""
        code = 1
        try:
            os.setpgid(0, 0)
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops us; see the module docstring
            line = _read_line(command, None)
            if not line:  # the parent stopped before it bound its port
                code = 0
            else:
                code = run_async(self._serve(int(line), command, report))
        except BaseException:  # noqa: BLE001 - say why on stderr, then leave without the parent's cleanup
            traceback.print_exc()
        finally:
            try:
                sys.stdout.flush()
                sys.stderr.flush()
            finally:
                os._exit(code)

    async def _serve(self, port: int, command: int, report: int) -> int:
        worker = self.make()
        stopped = asyncio.Event()  # by SIGTERM, or by the parent's end of the pipe closing
        loop = asyncio.get_running_loop()
        os.set_blocking(command, False)
        loop.add_reader(command, lambda: stopped.set() if not _drain(command) else None)
        with stop_signals(stopped):
            try:
                facts = await worker.start(port)
            except (DnslabError, OSError) as exc:
                await worker.stop()
                os.write(report, (json.dumps({"error": str(exc)}) + "\n").encode())
                return 1
            try:
                os.write(report, (json.dumps(facts) + "\n").encode())
                await stopped.wait()
            finally:
                loop.remove_reader(command)
                await worker.stop()
        return 0


class ListenerWorker:
    """A worker that serves one handler on one address (`dnslab resolver --workers N`)."""

    def __init__(self, host: str, handler: Handler) -> None:
        self.listener = DnsListener(host, 0, handler, reuse_port=True)

    async def start(self, port: int) -> dict[str, Any]:
        self.listener.port = port
        await self.listener.start()
        return {"pid": os.getpid()}

    async def stop(self) -> None:
        await self.listener.stop()


def serve_until_stopped(host: str, port: int, handler: Handler, on_bound: Callable[[int], None],
                        pool: WorkerPool | None = None) -> None:
    """Serve one handler on one address until Ctrl-C or SIGTERM; *on_bound* gets the bound port.

    With a pool (forked already) every worker serves the same port; one that ends on its own
    stops them all: DnslabError, saying which and how."""

    async def run() -> None:
        listener = DnsListener(host, port, handler, reuse_port=pool is not None)
        with stop_signals(asyncio.Event()) as stopped:
            try:
                await listener.start()
                if pool is not None:
                    pool.release(listener.port)
                    pool.watch(stopped)
                on_bound(listener.port)
                await stopped.wait()
            finally:
                await listener.stop()
                if pool is not None:
                    pool.stop()

    run_async(run())
    if pool is not None and pool.death is not None:
        raise DnslabError(f"{pool.death}: stopped every process")


def _drain(fd: int) -> bytes:
    """Read what is there (b"" at EOF)."""
    try:
        return os.read(fd, 4096)
    except BlockingIOError:
        return b"-"
    except OSError:
        return b""


def _read_line(fd: int, deadline: float | None) -> str:
    """One line from a pipe, blocking until *deadline* (None: no limit); "" at EOF or time out."""
    data = b""
    while not data.endswith(b"\n"):
        wait = None if deadline is None else max(0.0, deadline - time.monotonic())
        ready, _, _ = select.select([fd], [], [], wait)
        if not ready:
            return ""
        chunk = os.read(fd, 4096)
        if not chunk:
            return ""
        data += chunk
    return data.decode("utf-8", "replace").strip()


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass
