"""One epoll set for the iterator's short-lived UDP sockets, watched by the event loop as one reader.

Every upstream query has a socket of its own (RFC 5452: a fresh random source
port each).  Handing each to the event loop (`loop.add_reader`, then
`remove_reader`) cost uvloop seven system calls a socket besides the five the
exchange needs (libuv's uv_poll_init checks the descriptor with an epoll
ADD and DEL and sets it non-blocking again with ioctl; the loop's next turn
ADDs it; stopping and closing the poll handle DEL it twice), and a poll
handle, a Handle and dict entries in Python.  Here a socket costs one epoll
ADD: closing it takes it out of the set (the kernel drops a file from every
epoll set when its last descriptor closes), so there is no DEL either.  The
loop watches the set's own descriptor, which is readable while any socket in
it is, and one epoll_wait hands back every socket ready on that turn.

Unbound does the same per-query sockets through libevent (one event each);
Linux's epoll is what makes the shared set cheap.  Where select.epoll does not
exist (macOS, BSD) `Poller.available` is False and callers use the loop's
add_reader as before.
"""

from __future__ import annotations

import asyncio
import os
import select
from typing import Callable

_EPOLLIN = getattr(select, "EPOLLIN", 1)


class Poller:
    """Sockets watched for reading through one epoll set, on one event loop.

    `watch` a socket's descriptor with the function to call when it is readable
    (or has an error pending, such as an ICMP port unreachable), `forget` it
    before closing it.  The descriptor must be closed right after `forget`, and
    must not be duplicated: the close is what takes it out of the set.
    """

    available = hasattr(select, "epoll")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._pid = os.getpid()
        self._epoll = select.epoll()
        self._waiting: dict[int, Callable[[], None]] = {}
        loop.add_reader(self._epoll.fileno(), self._ready)

    def watch(self, fd: int, readable: Callable[[], None]) -> None:
        """Call *readable* whenever *fd* can be read, until `forget`."""
        self._epoll.register(fd, _EPOLLIN)
        self._waiting[fd] = readable

    def forget(self, fd: int) -> None:
        """Stop calling back for *fd*, which the caller now closes (that leaves the epoll set)."""
        del self._waiting[fd]

    @property
    def busy(self) -> bool:
        """Whether any socket is still watched."""
        return bool(self._waiting)

    def close(self) -> None:
        """Take the set off the loop (unless the loop is closed already) and close it."""
        if not self._epoll.closed:
            # (Not in a forked child: the loop's own epoll set is the parent's too, and a removal would be.)
            if not self.loop.is_closed() and self._pid == os.getpid():
                self.loop.remove_reader(self._epoll.fileno())
            self._epoll.close()

    def _ready(self) -> None:
        waiting = self._waiting
        # A descriptor closed and reused by a new socket during this turn may still be listed:
        # its callback then finds nothing to read (EAGAIN) and waits on, as after any spurious wake-up.
        for fd, _ in self._epoll.poll(0):
            readable = waiting.get(fd)
            if readable is not None:
                readable()
