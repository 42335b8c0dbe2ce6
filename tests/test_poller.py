"""dnslab.services.poller: sockets watched through one epoll set."""

from __future__ import annotations

import asyncio
import socket

import pytest

from dnslab.services.poller import Poller

pytestmark = pytest.mark.skipif(not Poller.available, reason="no epoll here")


def test_a_readable_socket_is_called_back_until_forgotten() -> None:
    async def run() -> list[bytes]:
        loop = asyncio.get_running_loop()
        poller = Poller(loop)
        receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        receiver.bind(("127.0.0.1", 0))
        receiver.setblocking(False)
        sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        got: list[bytes] = []
        two = loop.create_future()

        def readable() -> None:
            got.append(receiver.recv(100))
            if len(got) == 2:
                two.set_result(None)

        poller.watch(receiver.fileno(), readable)
        assert poller.busy
        for data in (b"one", b"two"):
            sender.sendto(data, receiver.getsockname())
        await two
        poller.forget(receiver.fileno())
        assert not poller.busy
        receiver.close()
        sender.close()
        poller.close()
        return got

    assert asyncio.run(asyncio.wait_for(run(), 10.0)) == [b"one", b"two"]


def test_closing_a_forgotten_socket_takes_it_out_of_the_set() -> None:
    """What `forget` leaves to the close: a new socket given the same descriptor can be watched
    (epoll would refuse it with EEXIST if the old one were still in the set)."""
    async def run() -> bool:
        poller = Poller(asyncio.get_running_loop())
        first = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        fd = first.fileno()
        poller.watch(fd, lambda: None)
        poller.forget(fd)
        first.close()
        second = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            reused = second.fileno() == fd
            poller.watch(second.fileno(), lambda: None)
            poller.forget(second.fileno())
        finally:
            second.close()
            poller.close()
        return reused

    assert asyncio.run(asyncio.wait_for(run(), 10.0))  # (the lowest free descriptor: the same number)
