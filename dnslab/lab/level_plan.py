"""Which caching levels a lab runs: lab.toml's `[levels.NAME]` tables, the default chain, and their checks (sans-I/O).

By default a lab runs one chain, browser -> os -> the lab's resolver, as a
desktop does: a Chromium host cache asking a systemd-resolved-like stub that
asks the recursive resolver.  lab.toml may change those two (same name: the
keys given replace the defaults) and add more: forwarders (dnsmasq-like),
further recursive resolvers ("ISPs": each its own cache and address, walking
the same hierarchy) and other chains.  Every mistake is a `ConfigError` that
names the file and the key.  Level addresses must be 127.x.y.z, apart from
every name server's address in the zones, from the resolver's and from each
other (`check_addresses`).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field, replace
from typing import Any, Mapping

from dnslab.core.errors import ConfigError
from dnslab.resolution.levels.chromium import RESOLVERS, Chromium
from dnslab.resolution.levels.dnsmasq import Dnsmasq
from dnslab.resolution.levels.failover import MAXNS, StubOptions
from dnslab.resolution.levels.firefox import Firefox
from dnslab.resolution.levels.policy import LevelPolicy
from dnslab.resolution.levels.systemd import SystemdResolved
from dnslab.resolution.options import resolver_settings
from dnslab.resolution.settings import ResolverSettings

RESOLVER = "resolver"  # the name of the lab's own resolver as an upstream
KINDS = ("browser", "os", "forwarder", "resolver")
BROWSERS = ("chromium", "firefox")
# The lab's levels live in 127.0.100.0/24 unless told otherwise; the sample zones' servers do not.
DEFAULT_BROWSER_ADDRESS = "127.0.100.1"
DEFAULT_OS_ADDRESS = "127.0.100.2"
# glibc waits 5 s per try (RES_TIMEOUT); the lab waits 2 s, so a failover shows within dig's own 5 s.
LAB_TIMEOUT = 2.0

_COMMON = {"kind", "address", "upstream", "timeout", "attempts", "rotate", "cache_size"}
_KEYS = {
    "browser": _COMMON | {"policy", "chromium_resolver", "expiration", "grace", "use_ttl"},
    "os": _COMMON | {"max_ttl"},
    "forwarder": _COMMON | {"min_cache_ttl", "max_cache_ttl", "neg_ttl"},
}


@dataclass(frozen=True)
class LevelSpec:
    """One level as configured; `policy` is None for a recursive resolver (its cache is the resolver's own)."""

    name: str
    kind: str
    address: str
    upstream: tuple[str, ...] = ()
    policy: LevelPolicy | None = None
    options: StubOptions = field(default_factory=lambda: StubOptions(timeout=LAB_TIMEOUT))
    resolver: ResolverSettings | None = None


def default_levels() -> tuple[LevelSpec, ...]:
    """browser (Chromium) -> os (systemd-resolved) -> the lab's resolver."""
    return (LevelSpec("browser", "browser", DEFAULT_BROWSER_ADDRESS, ("os",), Chromium()),
            LevelSpec("os", "os", DEFAULT_OS_ADDRESS, (RESOLVER,), SystemdResolved()))


def parse_levels(tables: Any, where: str, base: ResolverSettings | None = None) -> tuple[LevelSpec, ...]:
    """lab.toml's `[levels.NAME]` tables on top of the default chain; *where* is the file, for errors.

    A table named like a default level (browser, os) changes it; its kind stays
    unless given.  *base* is the lab's [resolver] settings, which further
    resolvers start from.
    """
    if not isinstance(tables, dict):
        raise ConfigError(f"{where}: levels must be tables, [levels.NAME] (docs/LEVELS.md)")
    defaults = {spec.name: spec for spec in default_levels()}
    specs = dict(defaults)
    for name, table in tables.items():
        at = f"{where} [levels.{name}]"
        if name == RESOLVER:
            raise ConfigError(f"{at}: 'resolver' names the lab's own resolver; give this level another name")
        if not isinstance(table, dict):
            raise ConfigError(f"{at}: must be a table of keys (kind, address, upstream, ...)")
        specs[name] = _spec(name, table, at, defaults.get(name), base)
    result = tuple(specs.values())
    check_chain(result, where)
    return result


def _spec(name: str, table: Mapping[str, Any], at: str, default: LevelSpec | None,
          base: ResolverSettings | None) -> LevelSpec:
    kind = table.get("kind", default.kind if default is not None else None)
    if kind not in KINDS:
        raise ConfigError(f"{at}: kind must be one of {', '.join(KINDS)}, not {kind!r}")
    address = table.get("address", default.address if default is not None and default.kind == kind else None)
    if not isinstance(address, str):
        raise ConfigError(f"{at}: address must be given, a 127.x.y.z address like '127.0.100.10'")
    _loopback(address, f"{at}: address")
    if kind == "resolver":
        extra = {key: value for key, value in table.items() if key not in ("kind", "address")}
        return LevelSpec(name, kind, address, (), None, StubOptions(timeout=LAB_TIMEOUT),
                         resolver_settings(extra, at, base=base))
    unknown = set(table) - _KEYS[kind]
    if unknown:
        raise ConfigError(f"{at}: unknown key(s) {', '.join(sorted(unknown))} for a {kind} level "
                          f"(known: {', '.join(sorted(_KEYS[kind]))})")
    upstream = table.get("upstream", default.upstream if default is not None else None)
    if isinstance(upstream, str):
        upstream = [upstream]
    if (not isinstance(upstream, (list, tuple)) or not upstream or len(upstream) > MAXNS
            or not all(isinstance(item, str) for item in upstream)):
        raise ConfigError(f"{at}: upstream must be a list of 1 to {MAXNS} level names or 'resolver' "
                          "(like resolv.conf's nameserver lines)")
    try:
        options = StubOptions(timeout=_number(table, "timeout", LAB_TIMEOUT, at),
                              attempts=_whole(table, "attempts", 2, at), rotate=_flag(table, "rotate", False, at))
        policy = _policy(kind, table, at, default)
    except ValueError as exc:
        raise ConfigError(f"{at}: {exc}") from None
    return LevelSpec(name, kind, address, tuple(upstream), policy, options)


def _policy(kind: str, table: Mapping[str, Any], at: str, default: LevelSpec | None) -> LevelPolicy:
    size: dict[str, int] = {"max_entries": _whole(table, "cache_size", 0, at)} if "cache_size" in table else {}
    if size and size["max_entries"] < 1:
        raise ValueError("cache_size must be at least 1")
    if kind == "browser":
        browser = table.get("policy", "chromium")
        if browser not in BROWSERS:
            raise ValueError(f"policy must be one of {', '.join(BROWSERS)}, not {browser!r}")
        if browser == "chromium":
            resolver = table.get("chromium_resolver", "system")
            if resolver not in RESOLVERS:
                raise ValueError(f"chromium_resolver must be one of {', '.join(RESOLVERS)}, not {resolver!r}")
            return Chromium(resolver=resolver, **size)
        return Firefox(expiration=_whole(table, "expiration", 60, at), grace=_whole(table, "grace", 60, at),
                       use_ttl=_flag(table, "use_ttl", False, at), **size)
    if kind == "os":
        return SystemdResolved(max_ttl=_whole(table, "max_ttl", 7200, at), **size)
    most = table.get("max_cache_ttl")
    return Dnsmasq(min_cache_ttl=_whole(table, "min_cache_ttl", 0, at),
                   max_cache_ttl=None if most is None else _whole(table, "max_cache_ttl", 0, at),
                   neg_ttl=_whole(table, "neg_ttl", 0, at), **size)


def _whole(table: Mapping[str, Any], key: str, default: int, at: str) -> int:
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(f"{at}: {key} must be a whole number of 0 or more, not {value!r}")
    return value


def _number(table: Mapping[str, Any], key: str, default: float, at: str) -> float:
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{at}: {key} must be a number of seconds, not {value!r}")
    return float(value)


def _flag(table: Mapping[str, Any], key: str, default: bool, at: str) -> bool:
    value = table.get(key, default)
    if not isinstance(value, bool):
        raise ConfigError(f"{at}: {key} must be true or false, not {value!r}")
    return value


def _loopback(address: str, what: str) -> None:
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        raise ConfigError(f"{what}: {address!r} is not an address") from None
    if parsed.version != 4 or not parsed.is_loopback:
        raise ConfigError(f"{what}: {address} is not a 127.x.y.z address (the lab lives on loopback)")


def check_chain(specs: tuple[LevelSpec, ...], where: str) -> None:
    """Every upstream exists, no level asks itself (directly or round a loop), no two share an address."""
    by_name = {spec.name: spec for spec in specs}
    seen: dict[str, str] = {}
    for spec in specs:
        if spec.address in seen:
            raise ConfigError(f"{where} [levels.{spec.name}]: address {spec.address} is also level "
                              f"{seen[spec.address]}'s")
        seen[spec.address] = spec.name
        for name in spec.upstream:
            if name != RESOLVER and name not in by_name:
                known = ", ".join([RESOLVER, *by_name])
                raise ConfigError(f"{where} [levels.{spec.name}]: upstream {name!r} is no level (known: {known})")
    for spec in specs:
        path = [spec.name]

        def walk(name: str) -> None:
            for upstream in by_name[name].upstream:
                if upstream == RESOLVER:
                    continue
                if upstream in path:
                    loop = " -> ".join([*path[path.index(upstream):], upstream])
                    raise ConfigError(f"{where} [levels.{spec.name}]: the upstreams go round in a loop: {loop}")
                path.append(upstream)
                walk(upstream)
                path.pop()

        walk(spec.name)


def check_addresses(specs: tuple[LevelSpec, ...], server_names: Mapping[str, str],
                    resolver_address: str | None) -> None:
    """Refuse a level on a name server's address (from the zones) or on the resolver's."""
    for spec in specs:
        if spec.address in server_names:
            raise ConfigError(f"level {spec.name}'s address {spec.address} is also name server "
                              f"{server_names[spec.address]}'s address in the zones; give the level another "
                              f"address in lab.toml ([levels.{spec.name}] address)")
        if spec.address == resolver_address:
            raise ConfigError(f"level {spec.name}'s address {spec.address} is the resolver's; give the level "
                              f"another address in lab.toml ([levels.{spec.name}] address)")


def with_resolver_settings(specs: tuple[LevelSpec, ...], settings: ResolverSettings) -> tuple[LevelSpec, ...]:
    """The default settings of further resolvers made without lab.toml (a test's custom chain)."""
    return tuple(replace(spec, resolver=spec.resolver or settings) if spec.kind == "resolver" else spec
                 for spec in specs)
