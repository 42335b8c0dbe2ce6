"""Every fault a lab can be given, declared once: its name, what it breaks, its arguments, its help.

`dnslab fault` (its help and its argument checks), the control endpoint (the
`fault` command's checks, and `faults.kinds`, the listing the web page builds
its buttons from) and `dnslab.testing` all read this table, so a fault is
named and explained in one place.  What a fault *does* lives with the thing it
breaks: a server's handler (faults.FaultyServer) or a zone's signed data
(signed_zones.SignedZones).  The verbs that mend (`up`, `clear`) are not
faults, so they are kept apart, in VERBS.

Sans-I/O: a table and its checks, no sockets, no event loop.
"""

from __future__ import annotations

import enum
import fnmatch
import functools
import re
import textwrap
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import dns.exception
import dns.name
import dns.rdatatype

from dnslab.core import validate
from dnslab.core.errors import ConfigError

# The control endpoint's names for a fault's first and second argument (`dnslab fault S delay 200 50`
# sends value=200, jitter=50): kept from before this table, as scripts and the page send them.
ARG_FIELDS = ("value", "jitter")


class Target(enum.Enum):
    """What a fault breaks: a server (by address or NS name) or a signed zone's data (by zone name)."""

    SERVER = "server"
    ZONE = "zone"


@dataclass(frozen=True)
class FaultArg:
    """One number a fault takes, with its bounds; checked by dnslab.core.validate like every number typed."""

    name: str            # as usage lines write it: MS, JITTER, PCT
    help: str
    low: float
    high: float
    unit: str = ""       # "ms", "%": said in errors and shown beside the page's input
    optional: bool = False
    example: float = 0.0  # what the page's input starts with (an optional one left out counts as 0)

    def check(self, value: Any, kind: str) -> float:
        return validate.amount(value, f"{kind} {self.name}", self.low, self.high, self.unit)


@dataclass(frozen=True)
class FaultKind:
    """One way to break a server or a zone."""

    name: str
    target: Target
    help: str
    label: str           # the web page's button
    args: tuple[FaultArg, ...] = ()
    selectable: bool = True  # may be narrowed to some queries (Selector); not when it closes the sockets

    def __post_init__(self) -> None:
        if len(self.args) > len(ARG_FIELDS):
            raise ValueError(f"fault {self.name}: at most {len(ARG_FIELDS)} arguments (the control API's fields)")

    @property
    def usage(self) -> str:
        """`delay MS [JITTER]`: how the command line writes it."""
        return " ".join([self.name] + [f"[{a.name}]" if a.optional else a.name for a in self.args])

    @property
    def targets(self) -> frozenset[Target]:
        return frozenset({self.target})


@dataclass(frozen=True)
class Verb:
    """A way to mend: not a fault, so never "in force" and never listed by `dnslab faults`."""

    name: str
    targets: frozenset[Target]
    help: str
    label: str
    args: tuple[FaultArg, ...] = ()

    @property
    def usage(self) -> str:
        return self.name


Entry = FaultKind | Verb

_SERVER, _ZONE = Target.SERVER, Target.ZONE
MAX_MS = 60_000  # a minute: far past any resolver's timeout

DOWN = FaultKind("down", _SERVER, "no answer at all: resolvers wait out a timeout", "Take down")
UNREACHABLE = FaultKind("unreachable", _SERVER, "nothing listens: ICMP port unreachable (UDP), RST (TCP), so "
                        "resolvers move on at once; the fast outage for tests", "Unreachable", selectable=False)
DELAY = FaultKind("delay", _SERVER, "answer MS milliseconds late, JITTER more or less", "Slow",
                  (FaultArg("MS", "milliseconds late", 0, MAX_MS, "ms", example=200),
                   FaultArg("JITTER", "± milliseconds", 0, MAX_MS, "ms", optional=True)))
LOSS = FaultKind("loss", _SERVER, "drop PCT percent of the queries (seeded: the same ones each run)", "Drop",
                 (FaultArg("PCT", "percent dropped", 0, 100, "%", example=30),))
SERVFAIL = FaultKind("servfail", _SERVER, "answer SERVFAIL", "SERVFAIL")
REFUSED = FaultKind("refused", _SERVER, "answer REFUSED", "REFUSED")
TRUNCATE = FaultKind("truncate", _SERVER, "TC=1 and no records over UDP, every time (TCP answers)", "Truncate")
LAME = FaultKind("lame", _SERVER, "answer without authority for its zones (NOERROR, no AA, nothing)", "Lame")
# Replication (docs/ZONE_OPERATIONS.md): a primary's NOTIFYs lost or its transfers refused, a secondary slow.
NOTIFY_LOST = FaultKind("notify-lost", _SERVER, "its NOTIFYs are lost: its secondaries catch up only at their SOA "
                        "refresh", "Lose NOTIFY")
XFR_REFUSED = FaultKind("xfr-refused", _SERVER, "refuse zone transfers (AXFR, IXFR): its secondaries retry, "
                        "then expire", "Refuse XFR")
XFR_DELAY = FaultKind("xfr-delay", _SERVER, "as a secondary, start every refresh MS milliseconds late",
                      "Slow secondary", (FaultArg("MS", "milliseconds late", 0, MAX_MS, "ms", example=2000),))
DNSSEC_BAD_SIG = FaultKind("dnssec-bad-sig", _ZONE, "its signatures do not verify (the DNSKEY RRset's do)",
                           "Bad signatures")
DNSSEC_EXPIRED = FaultKind("dnssec-expired", _ZONE, "its signatures expired a week ago", "Expired signatures")
DNSSEC_MISSING_DS = FaultKind("dnssec-missing-ds", _ZONE, "the parent drops its DS but its NSEC still claims one",
                              "Missing DS")
DNSSEC_WRONG_DS = FaultKind("dnssec-wrong-ds", _ZONE, "the parent's DS matches none of its keys", "Wrong DS")

UP = Verb("up", frozenset({_SERVER}), "undo down and unreachable", "Bring up")
CLEAR = Verb("clear", frozenset({_SERVER, _ZONE}), "lift every fault (on a server, also the resolver's lame "
             "marks for it)", "Clear all")

# The registry: declaration order is the order of every listing (help, the page's buttons, errors).
KINDS: dict[str, FaultKind] = {kind.name: kind for kind in (
    DOWN, UNREACHABLE, DELAY, LOSS, SERVFAIL, REFUSED, TRUNCATE, LAME, NOTIFY_LOST, XFR_REFUSED, XFR_DELAY,
    DNSSEC_BAD_SIG, DNSSEC_EXPIRED, DNSSEC_MISSING_DS, DNSSEC_WRONG_DS)}
VERBS: dict[str, Verb] = {verb.name: verb for verb in (UP, CLEAR)}


def kinds(target: Target) -> list[FaultKind]:
    return [kind for kind in KINDS.values() if kind.target is target]


def verbs(target: Target) -> list[Verb]:
    return [verb for verb in VERBS.values() if target in verb.targets]


def known() -> str:
    """Every name, as an error lists them."""
    return "; ".join(f"for a {target.value}: {', '.join(e.name for e in kinds(target))} "
                     f"(or {', '.join(v.name for v in verbs(target))})" for target in Target)


def lookup(kind: Entry | str) -> Entry:
    if isinstance(kind, (FaultKind, Verb)):
        return kind
    text = str(kind).strip().lower()
    entry = KINDS.get(text) or VERBS.get(text)
    if entry is None:
        raise ConfigError(f"unknown fault {str(kind)!r}; {known()}")
    return entry


def order(kind: Entry | str, values: Sequence[Any] = ()) -> tuple[Entry, tuple[float, ...]]:
    """The entry for *kind* and its arguments checked; trailing Nones count as left out.

    One line (ConfigError) for an unknown name, a missing or extra argument, or a bad number.
    """
    entry = lookup(kind)
    given = list(values)
    while given and given[-1] is None:
        given.pop()
    needed = [arg for arg in entry.args if not arg.optional]
    if len(given) < len(needed):
        missing = entry.args[len(given)]
        raise ConfigError(f"{entry.name} needs {missing.name} ({missing.help}): {entry.usage}")
    if len(given) > len(entry.args):
        takes = (f"takes {len(entry.args)} argument{'s' if len(entry.args) > 1 else ''}" if entry.args
                 else "takes no argument")
        raise ConfigError(f"{entry.name} {takes}, not {len(given)}: {entry.usage}")
    return entry, tuple(arg.check(value, entry.name) for arg, value in zip(entry.args, given))


def from_fields(args: dict[str, Any]) -> list[Any]:
    """A control request's arguments (value, jitter) in order."""
    return [args.get(name) for name in ARG_FIELDS]


def to_fields(values: Sequence[Any]) -> dict[str, Any]:
    """Positional arguments as the control endpoint's fields (what `dnslab fault` sends)."""
    return {name: value for name, value in zip(ARG_FIELDS, values)}


MAX_EVERY = 1_000_000


@dataclass(frozen=True)
class Selector:
    """Which queries a server fault applies to; every part given must match (none given: all).

    *names*: a pattern without wildcards is that name and every name below it;
    with `*`, `?` or `[...]` it is a shell glob on the whole name (`*.example.com`:
    the names below example.com, not example.com itself), case-insensitive.
    *types*: query types.  *every* N: one in N of the queries that match so far,
    the first and then every Nth after it, as CoreDNS's erratic plugin counts
    (`drop 3`: the 1st, 4th, 7th...).  *pct*: each query that passed the rest
    with this probability, drawn from the server's seeded generator (the same
    ones each run, as `loss` draws).
    """

    names: tuple[str, ...] = ()
    types: tuple[int, ...] = ()
    every: int = 0
    pct: float = 0.0

    def question_matches(self, name: str, rdtype: int) -> bool:
        """*name* lowercased, without its final dot (the root: "")."""
        if self.types and rdtype not in self.types:
            return False
        return self.name_matches(name)

    def name_matches(self, name: str) -> bool:
        return not self.names or any(match(name) for match in self._matchers)

    @functools.cached_property
    def _matchers(self) -> tuple[Callable[[str], bool], ...]:
        """One test per pattern, globs compiled once (fnmatch's own cache cost ~5 µs a query)."""
        return tuple(_matcher(pattern) for pattern in self.names)

    def describe(self) -> str:
        parts = [f"name {' '.join(p or '.' for p in self.names)}"] if self.names else []
        if self.types:
            parts.append("type " + " ".join(dns.rdatatype.to_text(t) for t in self.types))
        if self.every > 1:
            parts.append(f"1 in {self.every}")
        if self.pct:
            parts.append(f"{self.pct:g}% of them")
        return ", ".join(parts)

    def to_fields(self) -> dict[str, Any]:
        """As the control endpoint's `select` object (what `dnslab fault --name ...` sends)."""
        return {"names": list(self.names), "types": [dns.rdatatype.to_text(t) for t in self.types],
                "every": self.every or None, "pct": self.pct or None}


def _matcher(pattern: str) -> Callable[[str], bool]:
    if any(c in pattern for c in "*?["):
        glob = re.compile(fnmatch.translate(pattern))
        return lambda name: glob.match(name) is not None
    if not pattern:
        return lambda name: True  # the root: every name
    below = "." + pattern
    return lambda name: name == pattern or name.endswith(below)


def selector(names: Sequence[Any] | None = (), types: Sequence[Any] | None = (), every: Any = None,
             pct: Any = None) -> Selector | None:
    """A checked Selector from what a person typed (None when nothing narrows the fault).

    One line (ConfigError) for a bad name pattern, an unknown type or a number out of range.
    """
    patterns = []
    for pattern in names or ():
        text = str(pattern).strip().lower().rstrip(".")
        if not str(pattern).strip() or any(c.isspace() for c in text):
            raise ConfigError(f"--name {pattern!r}: a name or a glob like '*.example.com'")
        try:
            dns.name.from_text(text.replace("*", "x").replace("?", "x").replace("[", "x").replace("]", "x") or ".")
        except dns.exception.DNSException as exc:
            raise ConfigError(f"--name {pattern!r}: not a name pattern ({exc})") from None
        patterns.append(text)
    rdtypes = []
    for rdtype in types or ():
        try:
            rdtypes.append(int(dns.rdatatype.from_text(str(rdtype).strip())))
        except (dns.exception.DNSException, ValueError):
            raise ConfigError(f"--type {rdtype!r}: not a record type (A, AAAA, MX, TYPE65...)") from None
    count = validate.whole(every, "--every", 1, MAX_EVERY) if every is not None else 0
    share = validate.amount(pct, "--pct", 0.001, 100, "%") if pct is not None else 0.0
    if not (patterns or rdtypes or count > 1 or share):
        return None
    return Selector(tuple(patterns), tuple(rdtypes), count if count > 1 else 0, share if share < 100 else 0.0)


def selector_from_fields(fields: Any) -> Selector | None:
    """The control endpoint's `select` object ({names, types, every, pct}), checked."""
    if fields is None:
        return None
    if not isinstance(fields, dict) or set(fields) - {"names", "types", "every", "pct"}:
        raise ConfigError("select must be an object with names, types, every and pct")
    names, types = fields.get("names") or [], fields.get("types") or []
    if not isinstance(names, list) or not isinstance(types, list):
        raise ConfigError("select names and types must be lists")
    return selector(names, types, fields.get("every"), fields.get("pct"))


def check_selectable(entry: Entry, select: Selector | None) -> None:
    """A selector only narrows a server fault that plays per query (not unreachable, zones or verbs)."""
    if select is not None and not (isinstance(entry, FaultKind) and entry.target is Target.SERVER
                                   and entry.selectable):
        raise ConfigError(f"{entry.name} applies to every query: --name, --type, --every and --pct narrow "
                          f"only {', '.join(k.name for k in kinds(Target.SERVER) if k.selectable)}")


def help_text() -> str:
    """`dnslab fault --help`'s list of kinds, one a line, grouped by what they break."""
    lines = []
    for target, heading in ((_SERVER, "SERVER (an address or NS name) faults:"),
                            (_ZONE, "ZONE faults (a lab started with --dnssec; ZONE is a zone name):")):
        lines.append(heading)
        lines += _rows(kinds(target))
    lines.append("mending (not faults):")
    lines += _rows(VERBS.values(), with_targets=True)
    lines.append("narrowing a server fault to some queries (CoreDNS erratic's AMOUNT, and more):")
    lines += textwrap.wrap("--name PATTERN (repeatable; a name and the names below it, or a glob like "
                           "'*.example.com'), --type TYPE (repeatable), --every N (the 1st matching query, "
                           "then every Nth), --pct PCT (each with this probability, seeded); all given must "
                           "match. Not for unreachable.", 96, initial_indent="  ", subsequent_indent="  ")
    return "\n".join(lines)


def _rows(entries: Any, with_targets: bool = False) -> list[str]:
    rows = []
    for entry in entries:
        where = " or ".join(t.value.upper() for t in Target if t in entry.targets) + ": " if with_targets else ""
        rows += textwrap.wrap(where + entry.help, 96, initial_indent=f"  {entry.usage:<20} ",
                              subsequent_indent=" " * 23)
    return rows


def listing() -> dict[str, Any]:
    """The table as JSON (the control endpoint's `faults.kinds`): the web page builds its buttons from it."""
    def entry_json(entry: Entry) -> dict[str, Any]:
        return {"name": entry.name, "targets": [t.value for t in Target if t in entry.targets],
                "help": entry.help, "label": entry.label, "usage": entry.usage,
                # a Selector may narrow it (the page's "only for" inputs)
                "selectable": isinstance(entry, FaultKind) and entry.selectable and entry.target is _SERVER,
                "args": [{"name": arg.name, "field": field, "help": arg.help, "low": arg.low, "high": arg.high,
                          "unit": arg.unit, "optional": arg.optional, "example": arg.example}
                         for arg, field in zip(entry.args, ARG_FIELDS)]}
    return {"kinds": [entry_json(kind) for kind in KINDS.values()],
            "verbs": [entry_json(verb) for verb in VERBS.values()]}
