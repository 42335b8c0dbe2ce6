"""Running a lab: one way, for `dnslab up` and for `dnslab.testing`.

A `Lab` is the hierarchy and its resolver; running one for people and tools
also means: refusing to start over a lab already running on the port, further
worker processes (`--workers N`), the root hints written to a file, the web
view, and the per-lab state file (lab-PORT.json) through which `dnslab trace`,
`stats`, the web view and the developer tools find it.  `Runner` does all of
that in one order on start and the reverse order on stop, on whatever loop it
is awaited on: the CLI's main loop, or a test's background thread.

The web view belongs to the faces layer above; it comes in as a factory
(`WebFactory`), so this layer never imports it.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Protocol

from dnslab.core.errors import ConfigError, DnslabError
from dnslab.lab.control import ControlServer, LabState, live_lab, state_path
from dnslab.lab import split
from dnslab.lab.runtime import Lab
from dnslab.services.workers import WorkerPool


class WebView(Protocol):
    """The web view as the runner starts and stops it (dnslab.faces.web.WebServer)."""

    port: int
    url: str

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


# Given the lab and the other worker processes' control endpoints, a web view to start.
WebFactory = Callable[[Lab, list[LabState]], WebView]


@dataclass(frozen=True)
class RunOptions:
    """What goes with a running lab besides its servers (each off by default, as a test wants it)."""

    hints: Path | None = None       # write the root hints (named.root format) here
    state_dir: Path | None = None   # write lab-PORT.json into this folder (dnslab.lab.control.state_dir())
    workers: int = 1                # processes sharing every address and port (SO_REUSEPORT)
    web: WebFactory | None = None   # serve the web view


class _LabWorker:
    """A further worker process: the same lab (forked, zones and signatures shared) on the same port."""

    def __init__(self, lab: Lab) -> None:
        self.lab = lab

    async def start(self, port: int) -> dict[str, Any]:
        self.lab.port = port
        self.lab.control = ControlServer(self.lab)  # a token of its own, not the parent's copy
        await self.lab.start()
        return {"port": self.lab.control.port, "token": self.lab.control.token, "pid": os.getpid()}

    async def stop(self) -> None:
        await self.lab.stop()


class Runner:
    """Start a lab and what goes with it (RunOptions); stop everything in the reverse order."""

    def __init__(self, lab: Lab, options: RunOptions | None = None) -> None:
        self.lab = lab
        self.options = options or RunOptions()
        self.pool: WorkerPool | None = None
        self.web: WebView | None = None
        self.state: LabState | None = None  # as written to the state file (also without one)
        self._written: Path | None = None
        if self.options.workers > 1:
            lab.reuse_port = True  # before any bind: every process binds every address

    def fork_workers(self) -> None:
        """The further worker processes, forked now: before any event loop or thread exists."""
        if self.options.workers > 1 and self.pool is None:
            self.pool = WorkerPool(self.options.workers - 1, lambda: _LabWorker(self.lab))
            self.pool.fork()

    async def start(self) -> None:
        """Bind the lab, release the workers on its port, write the hints, start the web view, write the state."""
        options = self.options
        if options.workers > 1 and self.pool is None:
            raise DnslabError("worker processes are forked before the loop starts: call fork_workers() first")
        try:
            if options.state_dir is not None and self.lab.port != 0:
                self._refuse_to_clobber(self.lab.port)  # before binding: clearer than "address in use"
            await self.lab.start()
            port = self.lab.actual_port
            path = self._refuse_to_clobber(port) if options.state_dir is not None else None
            endpoints = self.pool.release(port) if self.pool is not None else []
            if options.hints is not None:
                _write_hints(options.hints, self.lab.root_hints)
            control = self.lab.control
            state = LabState(control.address, control.port, control.token, self.lab.resolver_address, port,
                             str(options.hints or ""), os.getpid(), endpoints,
                             only=[str(network) for network in self.lab.only])
            if options.web is not None:
                self.web = options.web(self.lab, state.endpoints()[1:])
                try:
                    await self.web.start()
                except OSError as exc:
                    raise ConfigError(f"cannot serve the web view on 127.0.0.1:{self.web.port}: "
                                      f"{exc.strerror or exc}") from None
                state = replace(state, web_port=self.web.port)
            self.state = state
            if path is not None:
                state.write(path)
                self._written = path
        except BaseException:
            await self.stop()
            raise

    def watch_workers(self, ended: asyncio.Event) -> None:
        """From now on, on the running loop: a worker process that ends on its own sets *ended*
        (`death` then says which and how)."""
        if self.pool is not None:
            self.pool.watch(ended)

    @property
    def death(self) -> str | None:
        """How a worker process ended on its own, if one did."""
        return self.pool.death if self.pool is not None else None

    async def stop(self) -> None:
        """Web view, workers, the lab's sockets, then the state file; safe after a failed start, and twice."""
        try:
            if self.web is not None:
                web, self.web = self.web, None
                await web.stop()
        finally:
            try:
                if self.pool is not None:
                    self.pool.stop()
            finally:
                try:
                    await self.lab.stop()
                finally:
                    if self._written is not None:
                        _remove_state(self._written, self.lab.control.token)
                        self._written = None

    def _refuse_to_clobber(self, port: int) -> Path:
        """The state file for a lab on *port*, unless a running lab holds it (the path, to write ours)."""
        part = split.part_name(self.lab.only)
        path = state_path(port, self.options.state_dir, part)
        other = live_lab(port, self.options.state_dir, part)
        if other is not None:  # on this port already (with other addresses, say, or started with --no-resolver)
            raise ConfigError(f"a lab already runs on port {port} (pid {other.pid}, state file {path}): "
                              "stop it, or use another --port")
        return path


def _remove_state(path: Path, token: str) -> None:
    """Remove the state file if it is still ours (another lab may have started since)."""
    try:
        if LabState.read(path).token == token:
            path.unlink()
    except (DnslabError, OSError):
        pass


def _write_hints(path: Path, text: str) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot write the root hints to {path}: {exc.strerror or exc}") from None
