"""Checks for the numbers people type: ports, counts and amounts, shared by every interface.

The command line, lab.toml, the resolver's options and the control API all take
the same kinds of values, and each once checked them its own way (or not: a
port of 99999 wrapped round to 34463, a clock advanced by NaN broke the lab for
good).  Every check lives here once.  Each raises ConfigError with one line,
``WHAT: expected ..., got ...``, so the message says what was wrong and what
would be right; `arg` adapts a check to argparse, which then exits 2 with the
same text, as usage errors do.
"""

from __future__ import annotations

import argparse
import math
from typing import Any, Callable, TypeVar

import dns.exception
import dns.name

from dnslab.core.errors import ConfigError

T = TypeVar("T")

MAX_PORT = 65535
MAX_TTL = 2**31 - 1  # RFC 2181 §8: TTLs are unsigned 31-bit
# One step of the fake clock: ten years passes many times over any TTL, hold-down or signature
# lifetime, and stays far from the end of DNSSEC's 32-bit signature times (year 2106).
MAX_CLOCK_STEP = 10 * 365 * 86400


def _fail(what: str | None, expected: str, value: Any) -> ConfigError:
    shown = repr(value) if isinstance(value, str) else str(value)
    return ConfigError(f"{what + ': ' if what else ''}expected {expected}, got {shown}")


def _plain(number: float) -> str:
    """315360000, not 3.1536e+08: a bound people can read and type."""
    return str(int(number)) if float(number).is_integer() else f"{number:g}"


def whole(value: Any, what: str | None, low: int, high: int, expected: str | None = None) -> int:
    """An integer from *low* to *high* (text or a number; never a bool, never 1.5)."""
    expected = expected or f"a whole number from {low} to {high}"
    if isinstance(value, bool):
        raise _fail(what, expected, value)
    if isinstance(value, str):
        try:
            number = int(value.strip(), 10)
        except ValueError:
            raise _fail(what, expected, value) from None
    elif isinstance(value, int):
        number = value
    elif isinstance(value, float) and value.is_integer():
        number = int(value)
    else:
        raise _fail(what, expected, value)
    if not low <= number <= high:
        raise _fail(what, expected, value)
    return number


def amount(value: Any, what: str | None, low: float, high: float, unit: str = "") -> float:
    """A finite number from *low* to *high*: NaN and infinity are refused, as they break every sum."""
    expected = f"a number from {_plain(low)} to {_plain(high)}{' ' + unit if unit else ''}"
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise _fail(what, expected, value)
    try:
        number = float(value)
    except ValueError:
        raise _fail(what, expected, value) from None
    if not math.isfinite(number) or not low <= number <= high:
        raise _fail(what, expected, value)
    return number


def port(value: Any, what: str | None = "port", zero: bool = True) -> int:
    """A UDP/TCP port; 0 (pick a free one) only where *zero* allows it."""
    low = 0 if zero else 1
    note = " (0 picks a free one)" if zero else ""
    return whole(value, what, low, MAX_PORT, f"a port number from {low} to {MAX_PORT}{note}")


def ttl(value: Any, what: str | None = "TTL") -> int:
    return whole(value, what, 0, MAX_TTL, f"a TTL in seconds from 0 to {MAX_TTL} (RFC 2181 §8)")


def clock_step(value: Any, what: str | None = "seconds") -> float:
    """How far the fake clock moves in one step: forward only, finite, at most ten years."""
    return amount(value, what, 0, MAX_CLOCK_STEP, f"seconds ({MAX_CLOCK_STEP // (365 * 86400)} years)")


def name(value: Any, what: str | None = "name") -> dns.name.Name:
    """A domain name in presentation format (relative names are taken as absolute, as dig does)."""
    try:
        return dns.name.from_text(str(value))
    except dns.exception.DNSException as exc:
        reason = str(exc).rstrip(".")
        raise _fail(what, f"a domain name such as example.com ({reason})", str(value)) from None


def arg(check: Callable[..., T], *args: Any, **kwargs: Any) -> Callable[[str], T]:
    """*check* as an argparse type: the message becomes argparse's `argument --x: ...` line (exit 2)."""

    def parse(text: str) -> T:
        try:
            return check(text, None, *args, **kwargs)
        except ConfigError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    parse.__name__ = check.__name__  # argparse names the type in some messages
    return parse
