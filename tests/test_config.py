"""Resolver options from TOML and flags: one table of names, clear errors for mistakes."""

from __future__ import annotations

import ipaddress
from dataclasses import fields
from pathlib import Path

import pytest

from dnslab.resolution.cache import CacheSettings, Rotation
from dnslab.faces.cli import build_parser, resolver_options
from dnslab.resolution.options import OPTIONS, resolver_settings
from dnslab.core.errors import ConfigError
from dnslab.resolution.infra import InfraSettings
from dnslab.resolution.iterator import IteratorSettings
from dnslab.lab.runtime import LabSettings
from dnslab.resolution.settings import ResolverSettings

SECTIONS = {"resolver": ResolverSettings, "iterator": IteratorSettings, "cache": CacheSettings,
            "infra": InfraSettings}


def test_every_option_lands_on_a_real_setting() -> None:
    for option in OPTIONS:
        assert option.field in {f.name for f in fields(SECTIONS[option.section])}, option.name


def test_values_are_applied_and_checked() -> None:
    settings = resolver_settings({"upstream_port": 5300, "qname_minimisation": False, "cache_size": 10,
                                  "rotation": "random", "allow": ["10.0.0.0/8"], "query_time_limit": 2},
                                 "test")
    assert settings.upstream_port == 5300
    assert settings.iterator.qname_minimisation is False
    assert settings.cache.max_entries == 10 and settings.cache.rotation is Rotation.RANDOM
    assert settings.allow == (ipaddress.ip_network("10.0.0.0/8"),)
    assert settings.query_time_limit == 2.0
    assert resolver_settings({"lame_ttl": 60}, "test").infra.lame_ttl == 60.0


@pytest.mark.parametrize("values,message", [
    ({"cache_sise": 10}, "unknown resolver option 'cache_sise'"),
    ({"cache_size": "ten"}, "cache_size must be int"),
    ({"qname_minimisation": 1}, "qname_minimisation must be bool"),
    ({"rotation": "sideways"}, "rotation"),
    ({"allow": ["not-a-network"]}, "allow"),
    ({"max_queries": -1}, "max_queries: expected a whole number from 0 to 2147483647, got -1"),
    ({"hold_down": float("nan")}, "hold_down: expected a number from 0 to 1000000000 seconds, got nan"),
    ({"query_time_limit": float("inf")}, "query_time_limit: expected a number"),
    ({"upstream_port": 99999}, "upstream_port: expected a port number from 1 to 65535, got 99999"),
    ({"probe_interval": 2}, "hold_down <= probe_interval"),
    ({"probe_interval": 1, "hold_down": 1}, "probe_interval must be at least max_timeout"),
    ({"lame_ttl": -5}, "lame_ttl: expected a number from 0"),
    ({"lame_ttl": "long"}, "lame_ttl must be float"),
])
def test_mistakes_name_the_option(values: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        resolver_settings(values, "where.toml")


def test_probe_interval_is_an_operator_option() -> None:
    settings = resolver_settings({"hold_down": 2, "probe_interval": 30}, "test")
    assert (settings.infra.hold_down, settings.infra.probe_interval) == (2.0, 30.0)
    args = build_parser().parse_args(["resolver", "--root-hints", "hints.file", "--probe-interval", "20"])
    assert resolver_options(args)[2].infra.probe_interval == 20.0


def test_flags_win_over_the_config_file(tmp_path: Path) -> None:
    config = tmp_path / "resolver.toml"
    config.write_text('root_hints = "hints.file"\nlisten = "127.0.0.1:5301"\nupstream_port = 5300\n'
                      'cache_size = 500\nqname_minimisation = false\n')
    args = build_parser().parse_args(["resolver", "--config", str(config), "--cache-size", "7",
                                      "--qname-minimisation", "--listen", "127.0.0.1:5399"])
    hints, listen, settings = resolver_options(args)
    assert hints == Path("hints.file") and listen == ("127.0.0.1", 5399)
    assert settings.upstream_port == 5300  # from the file
    assert settings.cache.max_entries == 7  # the flag wins
    assert settings.iterator.qname_minimisation is True


def test_lab_toml_takes_a_resolver_table(tmp_path: Path) -> None:
    lab_toml = tmp_path / "lab.toml"
    lab_toml.write_text('port = 5301\nresolver_address = "127.0.0.9"\n[resolver]\nserve_stale = true\n')
    settings = LabSettings.load(lab_toml)
    assert settings.resolver_address == "127.0.0.9" and settings.resolver.cache.serve_stale
    lab_toml.write_text('[resolver]\nserve_stail = true\n')
    with pytest.raises(ConfigError, match=r"lab.toml \[resolver\]: unknown resolver option 'serve_stail'"):
        LabSettings.load(lab_toml)


def test_max_udp_size_is_checked_and_set() -> None:
    from dnslab.resolution.options import resolver_settings
    from dnslab.core.errors import ConfigError

    assert resolver_settings({"max_udp_size": 4096}, "test").max_udp_size == 4096
    with pytest.raises(ConfigError, match="512 to 65535"):
        resolver_settings({"max_udp_size": 100}, "test")


def test_the_deckard_options_parse_and_reach_the_resolver(tmp_path: Path) -> None:
    """do_not_query_localhost, harden_glue, qname_minimisation_type and ttl_clock: TOML and flags."""
    from dnslab.core.clock import MonotonicClock, WallClock
    from dnslab.services.resolver import RecursiveResolver

    settings = resolver_settings({"do_not_query_localhost": True, "harden_glue": False,
                                  "qname_minimisation_type": "ns", "ttl_clock": "wall"}, "test")
    assert settings.iterator.do_not_query_localhost is True and settings.iterator.harden_glue is False
    assert settings.iterator.minimise_qtype == 2  # NS
    assert settings.ttl_clock == "wall"
    assert isinstance(RecursiveResolver([], settings).clock, WallClock)
    assert isinstance(RecursiveResolver([]).clock, MonotonicClock)
    defaults = ResolverSettings()
    assert defaults.iterator.do_not_query_localhost is False and defaults.iterator.harden_glue is True
    assert defaults.iterator.minimise_qtype == 1 and defaults.ttl_clock == "monotonic"
    hints = tmp_path / "root.hints"
    hints.write_text(". 3600 NS a.root.\na.root. 3600 A 127.0.1.1\n")
    args = build_parser().parse_args(["resolver", "--root-hints", str(hints), "--do-not-query-localhost",
                                      "--no-harden-glue", "--qname-minimisation-type", "NS",
                                      "--ttl-clock", "wall"])
    _, _, from_flags = resolver_options(args)
    assert from_flags.iterator.do_not_query_localhost and not from_flags.iterator.harden_glue
    assert from_flags.iterator.minimise_qtype == 2 and from_flags.ttl_clock == "wall"


@pytest.mark.parametrize("values,message", [
    ({"qname_minimisation_type": "AAAA"}, "qname_minimisation_type: must be A or NS"),
    ({"ttl_clock": "fake"}, "ttl_clock: must be monotonic or wall"),
])
def test_the_deckard_options_reject_other_values(values: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        resolver_settings(values, "test")
