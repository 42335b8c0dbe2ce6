"""The bench's resolver tier: `scripts/bench --dnsdist N`, dnslab resolvers behind dnsdist.

Past one process the way operators go past one resolver: several resolver processes behind
dnsdist (PowerDNS's DNS load balancer, Debian's `dnsdist`), each backend with its own cache.
The bench compares, in one run and on one lab's hierarchy, one `dnslab resolver` alone, its
`--workers 2` mode (SO_REUSEPORT, the kernel spreading clients), and dnsdist in front of 1..N
resolvers.  On a machine of few cores dnsdist's own CPU per query is a cost the tier pays
before any backend works; the table shows it apart.

The configuration is made here without I/O (`dnsdist_config`, tested in tests/test_tools.py):
one `newServer` per backend, a `leastOutstanding` policy (dnsdist's default, the one that
follows a slower backend), no console (no controlSocket/setKey), no packet cache (every query
reaches a backend, so the backends do the work measured), no security polling (it would ask
the internet), the ACL loopback only.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from tools.common.net import free_port, wait_answering
from tools.common.procs import Managed, cpu_seconds

if TYPE_CHECKING:
    from tools.bench import Bench

DNSDIST_ADDRESS = "127.0.96.10"                     # the tier's front
BACKEND_NET = "127.0.96."                           # backend i on 127.0.96.(20 + i)
BACKEND_FIRST = 20
MAX_BACKENDS = 8
POLICIES = ("leastOutstanding", "roundrobin", "firstAvailable", "wrandom", "whashed", "chashed")
PACKAGE = "dnsdist"


@dataclass(frozen=True)
class Tier:
    """What dnsdist is told: where it listens, its backends, how it picks one, what it health-checks."""

    listen: tuple[str, int]
    backends: tuple[tuple[str, int], ...]
    policy: str = "leastOutstanding"
    check_name: str = "www.example.com."


def _lua_string(text: str) -> str:
    """A Lua string literal (the addresses and names here are plain, but never trust that)."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def dnsdist_config(tier: Tier) -> str:
    """dnsdist.conf (Lua) for *tier*; ValueError for a tier dnsdist could not run."""
    if not tier.backends:
        raise ValueError("a tier needs at least one backend")
    if tier.policy not in POLICIES:
        raise ValueError(f"unknown dnsdist policy {tier.policy!r} (known: {', '.join(POLICIES)})")
    if len(set(tier.backends)) != len(tier.backends):
        raise ValueError("two backends on one address and port")
    host, port = tier.listen
    lines = [
        "-- made by scripts/bench --dnsdist: dnslab resolvers behind dnsdist, on loopback",
        "setSecurityPollSuffix(\"\")  -- no security-status queries to the internet",
        f"setLocal({_lua_string(f'{host}:{port}')})",
        'setACL({"127.0.0.0/8"})',
        "-- no controlSocket()/setKey(): the console is off; no packet cache: every query reaches a backend",
    ]
    for number, (address, backend_port) in enumerate(tier.backends, 1):
        lines.append(f"newServer({{address={_lua_string(f'{address}:{backend_port}')}, "
                     f"name={_lua_string(f'dnslab-{number}')}, checkName={_lua_string(tier.check_name)}, "
                     "checkInterval=1})")
    lines.append(f"setServerPolicy({tier.policy})")
    return "\n".join(lines) + "\n"


def backend_addresses(count: int) -> list[str]:
    """Each backend's own loopback address."""
    if not 1 <= count <= MAX_BACKENDS:
        raise ValueError(f"--dnsdist takes 1 to {MAX_BACKENDS} backends, not {count}")
    return [f"{BACKEND_NET}{BACKEND_FIRST + i}" for i in range(count)]


def start_dnsdist(binary: str, workdir: Path, tier: Tier) -> Managed:
    """dnsdist in the foreground (--supervised: no console on stdin), once it answers."""
    workdir.mkdir(parents=True, exist_ok=True)
    conf = workdir / "dnsdist.conf"
    conf.write_text(dnsdist_config(tier), encoding="utf-8")
    process = Managed("dnsdist", [binary, "--supervised", "--disable-syslog", "-C", str(conf)],
                      workdir / "dnsdist.out")
    try:
        wait_answering(tier.listen, process, 30, "dnsdist")
    except RuntimeError:
        process.stop()
        raise
    return process


def scenario(bench: "Bench", count: int, binary: str, queries: Sequence[tuple[str, str]],
             zones: Path) -> None:
    """Rows for one resolver alone, --workers 2, and dnsdist in front of 1..count resolvers (cache hits)."""
    from tools.bench import Row, say, warm  # the bench's own pieces; imported late, bench imports this module

    queries = list(queries)
    say(f"resolver tier: starting the hierarchy, then dnsdist with 1 to {count} backend(s)")
    hierarchy = bench.dnslab.hierarchy(zones, 0)
    port, hints = hierarchy.port, hierarchy.hints
    dnslab = bench.dnslab

    def resolver(address: str, *options: str) -> tuple[Managed, tuple[str, int]]:
        where = (address, free_port(address))
        return dnslab.answering("tier-resolver", dnslab.argv(
            "resolver", "--root-hints", str(hints), "--listen", f"{where[0]}:{where[1]}",
            "--upstream-port", str(port), *options), where, "dnslab resolver")

    try:
        alone_row = Row("tier: one dnslab resolver alone", "tier-alone", "q/s", None, target="(the baseline)")
        process, address = resolver(backend_addresses(1)[0])
        say(f"tier: resolver alone warmed: {warm(address, queries)}")
        alone_row.dnslab_perf = bench.max_rate("tier: resolver alone", address, queries, process.pid, "tier-alone")
        process.stop()
        bench.finish_rate(alone_row)
        bench.rows.append(alone_row)
        alone = alone_row.dnslab_perf

        workers = Row("tier: dnslab resolver --workers 2", "tier-workers2", "q/s", "alone", target="(for comparison)")
        process, address = resolver(backend_addresses(1)[0], "--workers", "2")
        for _ in range(4):  # the kernel spreads clients by address and port: warm every worker's cache
            warm(address, queries, passes=1)
        workers.dnslab_perf = bench.max_rate("tier: --workers 2", address, queries, process.pid, "tier-workers2")
        workers.reference_perf = alone
        process.stop()
        bench.finish_rate(workers)
        bench.rows.append(workers)

        for n in range(1, count + 1):
            row = Row(f"tier: dnsdist + {n} dnslab resolver{'s' if n > 1 else ''}", f"tier-dnsdist{n}", "q/s",
                      "alone", target="(for comparison)")
            backends = [resolver(address) for address in backend_addresses(n)]
            for _, address in backends:
                warm(address, queries)
            tier = Tier((DNSDIST_ADDRESS, free_port(DNSDIST_ADDRESS)), tuple(address for _, address in backends),
                        check_name=queries[0][0].rstrip(".") + ".")
            front = start_dnsdist(binary, bench.workdir / f"dnsdist-{n}", tier)
            say(f"tier: through dnsdist: {warm(tier.listen, queries, passes=1)}")
            before = sum(cpu_seconds(process.pid) for process, _ in backends)
            perf = bench.max_rate(f"tier: dnsdist + {n}", tier.listen, queries, front.pid, f"tier-dnsdist{n}")
            behind = sum(cpu_seconds(process.pid) for process, _ in backends) - before
            front.stop()
            for process, _ in backends:
                process.stop()
            own = perf.cpu_s
            if perf.completed and own is not None:
                row.note = (f"dnsdist {own / perf.completed * 1e6:.1f} µs/q of its own, the resolvers "
                            f"{behind / perf.completed * 1e6:.1f} µs/q")
                perf.cpu_s = own + behind  # the CPU column: the whole tier per query
                perf.cpu_us_per_query = perf.cpu_s / perf.completed * 1e6
            row.dnslab_perf, row.reference_perf = perf, alone
            bench.finish_rate(row)
            bench.rows.append(row)
    finally:
        hierarchy.stop()
