"""Resolver options: one table of names, read from TOML and from command-line flags alike.

Every option a flag sets can also come from a TOML file under the same name
(dashes become underscores); flags win.  Unknown names and wrong types are
errors that name the option, because a misspelt setting silently ignored is
the classic resolver-operator trap.
"""

from __future__ import annotations

import ipaddress
import tomllib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Mapping

import dns.rdatatype

from dnslab.core import validate
from dnslab.dnssec.anchors import read_trust_anchors
from dnslab.resolution.cache import Rotation
from dnslab.core.errors import ConfigError
from dnslab.resolution.settings import ResolverSettings


@dataclass(frozen=True)
class Option:
    """One resolver option: where it lands and how its value is checked."""

    name: str
    section: str            # "resolver", "iterator", "cache" or "infra"
    field: str
    kind: type
    help: str
    convert: Callable[[Any], Any] | None = None


def _udp_size(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 512 <= value <= 65535:
        raise ValueError(f"a size in bytes from 512 to 65535, not {value!r}")
    return value


def _networks(values: Any) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    if isinstance(values, str):
        values = [values]
    if not isinstance(values, list):
        raise ValueError("a list of addresses or networks")
    try:
        return tuple(ipaddress.ip_network(str(v), strict=False) for v in values)
    except ValueError as exc:
        raise ValueError(str(exc)) from None


def _minimise_qtype(value: Any) -> int:
    if not isinstance(value, str) or value.upper() not in ("A", "NS"):
        raise ValueError(f"must be A or NS, not {value!r}")
    return int(dns.rdatatype.from_text(value.upper()))


def _ttl_clock(value: Any) -> str:
    if value not in ("monotonic", "wall"):
        raise ValueError(f"must be monotonic or wall, not {value!r}")
    return str(value)


OPTIONS: tuple[Option, ...] = (
    Option("upstream_port", "resolver", "upstream_port", int, "port of the servers it queries (default 53)",
           lambda v: validate.port(v, None, zero=False)),
    Option("allow", "resolver", "allow", list, "client networks answered (default loopback only); others get REFUSED",
           _networks),
    Option("query_time_limit", "resolver", "query_time_limit", float,
           "seconds before a client gets SERVFAIL at the latest (default 5)"),
    Option("ttl_clock", "resolver", "ttl_clock", str,
           "what cache TTLs and server state count on: monotonic (default, immune to clock steps) or "
           "wall (the system time, as Unbound: a harness that fakes time, e.g. libfaketime, ages the cache)",
           _ttl_clock),
    Option("fast_path", "resolver", "fast_path", bool,
           "answer repeated questions from ready wire replies (default on)"),
    Option("max_udp_size", "resolver", "max_udp_size", int,
           "largest UDP reply in bytes, if the client's EDNS buffer allows (default 1232, the DNS flag day "
           "2020 size; Unbound's max-udp-size)", convert=lambda value: _udp_size(value)),
    Option("request_nsid", "resolver", "request_nsid", bool,
           "ask every server for its NSID (RFC 5001), as BIND's request-nsid; the trace shows which server "
           "(or anycast site) answered (default off)"),
    Option("trust_anchor_file", "resolver", "trust_anchors", str,
           "validate DNSSEC from the DS/DNSKEY records in this file (Unbound's trust-anchor-file format)",
           lambda v: read_trust_anchors(str(v))),
    Option("aggressive_nsec", "resolver", "aggressive_nsec", bool,
           "RFC 8198: answer NXDOMAIN, NODATA and wildcard questions from validated NSEC/NSEC3 records in the "
           "cache without asking (default on, as Unbound's aggressive-nsec); needs trust_anchor_file"),
    Option("qname_minimisation", "iterator", "qname_minimisation", bool, "RFC 9156 QNAME minimisation (default on)"),
    Option("qname_minimisation_type", "iterator", "minimise_qtype", str,
           "minimised queries as Unbound sends them, A queries one label at a time (A, the default), or as "
           "Knot Resolver does, NS queries until a name exists without a cut, then the full name (NS)", _minimise_qtype),
    Option("ipv6_upstream", "iterator", "ipv6_upstream", bool, "also query name servers' IPv6 addresses"),
    Option("root_priming", "iterator", "root_priming", bool,
           "RFC 8109: ask a root server for the root NS set before the first lookup (default on); off uses "
           "the hints as they are (Unbound's stub-prime: no)"),
    Option("do_not_query_localhost", "iterator", "do_not_query_localhost", bool,
           "never query 127.0.0.0/8 or ::1 learned from the DNS, root hints excepted (Unbound's "
           "do-not-query-localhost; default off: the lab's servers are on loopback)"),
    Option("harden_glue", "iterator", "harden_glue", bool,
           "use glue only inside the delegating zone's bailiwick (Unbound's harden-glue; default on)"),
    Option("max_cname_chain", "iterator", "max_cname_chain", int, "CNAME/DNAME steps per query (default 11)"),
    Option("max_queries", "iterator", "max_queries", int, "upstream queries per client query (default 50)"),
    Option("max_glueless", "iterator", "max_glueless_per_delegation", int,
           "glueless NS names resolved per delegation (default 5)"),
    Option("max_referrals", "iterator", "max_referrals", int, "referrals followed per lookup (default 30)"),
    Option("cache_size", "cache", "max_entries", int, "cache entries, LRU beyond (default 100000)"),
    Option("min_ttl", "cache", "min_ttl", int, "lowest TTL kept (default 0)"),
    Option("max_ttl", "cache", "max_ttl", int, "highest TTL kept (default 86400)"),
    Option("negative_max_ttl", "cache", "negative_max_ttl", int, "cap on negative caching (default 3600)"),
    Option("servfail_ttl", "cache", "servfail_ttl", int, "seconds a SERVFAIL is remembered (default 5)"),
    Option("serve_stale", "cache", "serve_stale", bool, "RFC 8767: answer expired data when servers fail"),
    Option("stale_window", "cache", "stale_window", int, "how long after expiry data may be served (default 86400)"),
    Option("rotation", "cache", "rotation", str, "round-robin policy: cyclic, random or fixed (default cyclic)",
           lambda v: Rotation(v)),
    Option("hold_down", "infra", "hold_down", float,
           "seconds a failing server is held down at first; doubles per failed probe up to probe_interval (default 5)"),
    Option("probe_interval", "infra", "probe_interval", float,
           "longest wait between probes of a held-down server, so it is back in use within this long "
           "of its return (default 10)"),
    Option("lame_ttl", "infra", "lame_ttl", float,
           "seconds a server that answered lamely for a zone is passed over for it while another can be asked "
           "(default 900, Unbound's infra-lame-ttl)"),
)
BY_NAME = {option.name: option for option in OPTIONS}


def load_toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: {exc}") from None


def resolver_settings(values: Mapping[str, Any], where: str, base: ResolverSettings | None = None) -> ResolverSettings:
    """Apply option values (from TOML or flags) to the defaults; *where* names the source in errors."""
    sections: dict[str, dict[str, Any]] = {"resolver": {}, "iterator": {}, "cache": {}, "infra": {}}
    for name, value in values.items():
        option = BY_NAME.get(name)
        if option is None:
            known = ", ".join(sorted(BY_NAME))
            raise ConfigError(f"{where}: unknown resolver option {name!r} (known: {known})")
        sections[option.section][option.field] = _check(option, value, where)
    settings = base or ResolverSettings()
    try:
        iterator = replace(settings.iterator, **sections["iterator"])
        cache = replace(settings.cache, **sections["cache"])
        infra = replace(settings.infra, **sections["infra"])
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    return replace(settings, iterator=iterator, cache=cache, infra=infra, **sections["resolver"])


def _check(option: Option, value: Any, where: str) -> Any:
    expected = option.kind
    ok = isinstance(value, expected) and not (expected is int and isinstance(value, bool))
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        ok, value = True, float(value)
    if not ok and option.convert is None:
        raise ConfigError(f"{where}: {option.name} must be {expected.__name__}, not {value!r}")
    if option.convert is not None:
        try:
            return option.convert(value)
        except (ValueError, ConfigError) as exc:
            raise ConfigError(f"{where}: {option.name}: {exc}") from None
    if expected is int:
        return validate.whole(value, f"{where}: {option.name}", 0, 2**31 - 1)
    if expected is float:  # NaN and infinity would pass a `< 0` test and break every comparison
        return validate.amount(value, f"{where}: {option.name}", 0, 10**9, "seconds")
    return value
