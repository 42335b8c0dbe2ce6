"""Which sockets a lab's servers get: a UDP and a TCP socket per address, or the shared ones.

A socket pair per address is the default: it works everywhere, and `unreachable` is then the
kernel's own ICMP port unreachable and TCP RST.  The shared sockets (services/shared_sockets.py)
serve any number of addresses with two descriptors; they are used when asked (lab.toml
`shared_sockets = true`, `dnslab up --shared-sockets`) or when the addresses would not fit the
open-files limit.
"""

from __future__ import annotations

import resource
from dataclasses import dataclass

from dnslab.core.errors import ConfigError
from dnslab.lab.processes import more_files

# Descriptors kept for everything but the servers' listeners: the resolver's upstream sockets,
# TCP clients, the levels, the control socket, zone and log files.
RESERVED_DESCRIPTORS = 1024


@dataclass(frozen=True)
class SocketPlan:
    shared: bool
    note: str | None = None  # one line for `dnslab up` when the choice is not the ordinary one


def plan(asked: bool | None, servers: int, limit: int, supported: bool,
         resolver_program: str | None = None, split: bool = False) -> SocketPlan:
    """The sockets for *servers* addresses under an open-files *limit*.

    *asked* None decides by the limit; *supported* is whether this system has IP_PKTINFO;
    *resolver_program* names a real resolver on the lab port (Unbound...), which binds its
    address without SO_REUSEPORT, so it cannot listen beside the shared TCP socket.  A part of a
    split lab (*split*, `--only`) shares the port with the other parts' sockets, which a wildcard
    bind would collide with on the same host (and across hosts only loopback clients are served)."""
    needed = 2 * servers + RESERVED_DESCRIPTORS
    if asked is False or (asked is None and needed <= limit):
        return SocketPlan(False)
    why = "asked" if asked else f"a socket pair per address needs about {needed:,} descriptors, the limit is {limit:,}"
    if not supported:
        return SocketPlan(False, f"Sockets: one UDP and one TCP socket per server address ({why}, but the shared "
                                 "sockets need IP_PKTINFO, which only Linux has here)")
    if split:
        if asked:
            raise ConfigError("shared sockets and --only (lab.toml only): the wildcard sockets would collide with "
                              "the other parts' sockets on the lab port, and serve loopback clients only; "
                              "leave out --shared-sockets (lab.toml: shared_sockets)")
        return SocketPlan(False, f"Sockets: one UDP and one TCP socket per server address ({why}, but a part of a "
                                 "split lab (--only) cannot use the shared sockets)")
    if resolver_program is not None:
        if asked:
            raise ConfigError(f"shared sockets and the {resolver_program} resolver: it binds the lab port "
                              "without SO_REUSEPORT, which Linux then refuses beside the shared TCP socket; "
                              "leave out --shared-sockets (lab.toml: shared_sockets)")
        return SocketPlan(False, f"Sockets: one UDP and one TCP socket per server address ({why}, but the "
                                 f"{resolver_program} resolver cannot listen beside the shared sockets)")
    return SocketPlan(True, f"Sockets: one UDP and one TCP socket on 0.0.0.0 and the lab port serve all {servers:,} "
                            f"server addresses ({why}; IP_PKTINFO, loopback clients only); an unreachable server "
                            "times out (UDP) or resets (TCP) instead of refusing")


def descriptor_limit() -> int:
    """The soft open-files limit, first raised towards the hard one as NSD and Unbound do."""
    try:
        more_files()
    except (ValueError, OSError):
        pass
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return soft if soft != resource.RLIM_INFINITY else 1 << 30
