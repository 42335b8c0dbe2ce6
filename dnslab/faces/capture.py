"""`dnslab capture`: what the running lab's servers and resolver send and receive, into a pcap file.

The lab streams packets over its control endpoint (lab/capturing.py); this
side writes them as they come (faces/pcap.py), so the file is whole at any
moment and Ctrl-C loses nothing already captured.  With worker processes
(`dnslab up --workers N`) every process is captured at once, each in its own
thread, into the one file; the count bound is for the file as a whole.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import threading
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterator, TextIO

from dnslab.core.errors import DnslabError
from dnslab.faces.pcap import PcapWriter
from dnslab.lab import capturing
from dnslab.lab.control import ControlClient, LabState, find_lab
from dnslab.services.capture import Packet

# How long past --seconds to wait for the lab's last line before calling it unreachable.
GRACE = 30.0


class _Enough(Exception):
    """The file has its --count packets: stop reading (closing the connection ends the lab's side)."""


class Capture:
    """Packets from one or more control endpoints into one PcapWriter, at most *count* of them."""

    def __init__(self, writer: PcapWriter, count: int) -> None:
        self.writer = writer
        self.count = count
        self.lock = threading.Lock()
        self.endpoints = 1
        self._started = 0
        self.started = threading.Event()  # every endpoint is capturing
        self.errors: list[DnslabError] = []

    def on_event(self, event: dict[str, Any]) -> None:
        if event.get("event") == "started":
            with self.lock:
                self._started += 1
                if self._started >= self.endpoints:
                    self.started.set()
            return
        if event.get("event") != "packet":
            return
        with self.lock:
            if self.writer.count >= self.count:
                raise _Enough()
            self.writer.write(Packet.from_json(event))
            if self.writer.count >= self.count:
                raise _Enough()

    def run(self, state: LabState, args: dict[str, Any], seconds: float) -> None:
        try:
            ControlClient(state, timeout=seconds + GRACE).call("capture", args, self.on_event)
        except _Enough:
            pass
        except DnslabError as exc:
            self.errors.append(exc)


def capture_lab(state: LabState, out: BinaryIO, target: str, count: int, seconds: float,
                on_started: Callable[[], None] | None = None) -> int:
    """Capture into *out* from every process of the lab; the number of packets written.

    *on_started* is called once every process is capturing (traffic from then on is in the file).
    """
    target, count, seconds = capturing.bounds({"target": target, "count": count, "seconds": seconds})
    writer = PcapWriter(out)
    job = Capture(writer, count)
    args = {"target": target, "count": count, "seconds": seconds}
    endpoints = state.endpoints()
    job.endpoints = len(endpoints)
    threads = [threading.Thread(target=job.run, args=(endpoint, args, seconds), daemon=True)
               for endpoint in endpoints]
    for thread in threads:
        thread.start()
    while not job.started.wait(0.05):  # bounded: a thread that fails ends, and then so does this wait
        if not any(thread.is_alive() for thread in threads):
            break
    if job.started.is_set() and on_started is not None:
        on_started()
    for thread in threads:
        thread.join()
    out.flush()
    if job.errors:
        raise job.errors[0]
    return writer.count


@contextlib.contextmanager
def _output(path: str) -> Iterator[BinaryIO]:
    if path == "-":
        yield sys.stdout.buffer
        return
    try:
        handle = Path(path).open("wb")
    except OSError as exc:
        raise DnslabError(f"cannot write {path}: {exc.strerror or exc}") from None
    with handle:
        yield handle


def cmd_capture(args: argparse.Namespace, out: TextIO) -> int:
    state = find_lab(args.port)
    capturing.bounds({"target": args.target, "count": args.count, "seconds": args.seconds})  # before the file
    where = "standard output" if args.write == "-" else args.write

    def started() -> None:
        print(f"dnslab: capturing {args.target} of the lab on port {state.port} into {where} "
              f"(at most {args.count} packets or {args.seconds:g} s; Ctrl-C stops)", file=sys.stderr, flush=True)
    new_file = args.write != "-" and not Path(args.write).exists()
    with _output(args.write) as handle:
        try:
            written = capture_lab(state, handle, args.target, args.count, args.seconds, started)
        except KeyboardInterrupt:
            handle.flush()
            print("dnslab: capture stopped; the file holds what came before", file=sys.stderr)
            return 0
        except DnslabError:
            if new_file:  # refused before any packet (a target the lab does not have): leave no empty file
                Path(args.write).unlink(missing_ok=True)
            raise
    print(f"dnslab: {written} packet(s) written to {where}", file=sys.stderr)
    return 0
