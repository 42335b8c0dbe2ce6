"""The order in which a stub asks its name servers, and how long it waits for each: glibc's rules.

glibc's res_send (resolv/res_send.c) makes ``attempts`` passes over the
``nameserver`` lines of resolv.conf; with ``options rotate`` each query starts
one server further on (a per-process counter).  The wait for the server at
index *i* is ``timeout << i``, divided by the number of servers for every
server but the first (send_dg: ``seconds = (statp->retrans << ns); if (ns > 0)
seconds /= statp->nscount``).  Defaults: ``RES_TIMEOUT`` 5 s, ``RES_DFLRETRY`` 2
attempts, at most ``MAXNS`` 3 servers.  A reply of SERVFAIL, NOTIMP or REFUSED
sends the stub on to the next server, as a timeout does (`moves_on`).

Nothing is remembered between queries: a server that is down costs its
timeout on every query, which is exactly what a learner should see.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, Sequence, TypeVar

import dns.rcode

T = TypeVar("T")

RES_TIMEOUT = 5.0
RES_DFLRETRY = 2
MAXNS = 3
MAX_ATTEMPTS = 5  # glibc's RES_MAXRETRY
_MOVE_ON = frozenset({dns.rcode.SERVFAIL, dns.rcode.NOTIMP, dns.rcode.REFUSED})


@dataclass(frozen=True)
class Try(Generic[T]):
    server: T
    timeout: float


@dataclass(frozen=True)
class StubOptions:
    """resolv.conf's `options timeout:N attempts:N rotate`, for one level's upstreams."""

    timeout: float = RES_TIMEOUT
    attempts: int = RES_DFLRETRY
    rotate: bool = False

    def __post_init__(self) -> None:
        if not 0 < self.timeout <= 30:  # glibc: RES_MAXRETRANS 30
            raise ValueError(f"timeout is more than 0 and at most 30 seconds, not {self.timeout}")
        if not 1 <= self.attempts <= MAX_ATTEMPTS:
            raise ValueError(f"attempts is 1 to {MAX_ATTEMPTS}, not {self.attempts}")


def tries(servers: Sequence[T], options: StubOptions, offset: int = 0) -> list[Try[T]]:
    """Every (server, wait) a query may take, in order; *offset* is the rotate counter (0 without rotate)."""
    count = len(servers)
    if count == 0:
        return []
    start = offset % count if options.rotate else 0
    plan: list[Try[T]] = []
    for _ in range(options.attempts):
        for shift in range(count):
            index = (start + shift) % count
            wait = options.timeout * (1 << index)
            if index > 0:
                wait /= count
            plan.append(Try(servers[index], wait))
    return plan


def moves_on(rcode: int) -> bool:
    """Whether this reply sends the stub on to its next server (glibc res_send: SERVFAIL, NOTIMP, REFUSED)."""
    return rcode in _MOVE_ON
