"""What a scenario file says, checked before anything runs.

A scenario is an experiment on the lab: a population of clients asking names
through the lab's resolvers, service endpoints those names point at, and a
timeline of changes on the lab clock (records set or deleted, endpoints going
down, name-server faults).  The file is TOML; every mistake in it (an unknown
key, a bad time, an endpoint the timeline names but the file never declares)
is one `ScenarioError` line naming the file and the place, before a lab
starts, because a typo found an hour of simulated time later is a wasted run.

Sans-I/O: this module only reads text and builds frozen values; the runner
(`dnslab.lab.scenario.run`) turns them into traffic.
"""

from __future__ import annotations

import ipaddress
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dns.exception
import dns.name
import dns.rdatatype

from dnslab.core import validate
from dnslab.core.errors import ConfigError, DnslabError
from dnslab.lab import fault_kinds
from dnslab.lab.level_plan import parse_levels
from dnslab.resolution.options import resolver_settings

# Longer than any TTL a resolver keeps (Unbound's cache-max-ttl is a day, ours 86400 by default),
# and short enough that a run stays a run: a week of simulated time.
MAX_DURATION = 7 * 86400
MAX_CLIENTS = 100_000
MIN_BUCKET = 1.0
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION = re.compile(r"^(?:\d+(?:\.\d+)?[smhd])+$|^\d+(?:\.\d+)?$")
_PART = re.compile(r"(\d+(?:\.\d+)?)([smhd]?)")
ACTIONS = ("set", "add", "delete", "endpoint", "fault", "note")
CONNECT_MODES = ("first", "any")
CLIENT_CACHES = ("ttl", "none")


class ScenarioError(DnslabError):
    """A scenario file that cannot run; the text reads ``file: where: problem``."""


def seconds(value: Any, what: str, high: float = MAX_DURATION) -> float:
    """A time on the lab clock: a number of seconds or text with units ("90s", "5m", "2h", "1d", "3h10m")."""
    if isinstance(value, bool):
        raise ConfigError(f"{what}: expected a time such as 300, \"5m\", \"2h\" or \"1d\", got {value}")
    if isinstance(value, (int, float)):
        return validate.amount(value, what, 0, high, "seconds")
    if isinstance(value, str):
        text = value.replace(" ", "")
        if _DURATION.match(text):
            total = sum(float(number) * UNITS[unit or "s"] for number, unit in _PART.findall(text))
            return validate.amount(total, what, 0, high, "seconds")
    raise ConfigError(f"{what}: expected a time such as 300, \"5m\", \"2h\" or \"1d\", got {value!r}")


def duration_text(value: float) -> str:
    """The shortest exact spelling: 86400 -> "1d", 90 -> "90s", 5400 -> "90m"."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if value >= size and value % size == 0:
            return f"{int(value // size)}{unit}"
    return f"{value:g}s"


@dataclass(frozen=True)
class Clients:
    """A group of simulated clients: who asks what, how often, through which resolver or level."""

    count: int
    name: dns.name.Name
    rdtype: int
    every: float  # seconds between one client's lookups
    jitter: float  # each gap is every * (1 +- jitter), drawn from the seeded RNG
    via: tuple[str, ...]  # targets, spread round robin: "resolver" or a level's name
    cache: str  # "ttl": a client keeps its answer for the TTL it got (an OS/app cache); "none": asks every time
    connect: str  # "first": connect to the first address; "any": try each address in order
    start: float = 0.0  # when the group's first lookups begin (spread over one interval from then)


@dataclass(frozen=True)
class Event:
    """One step of a timeline, at a time on the lab clock (seconds from the scenario's start)."""

    at: float
    action: str
    name: str = ""
    rdtype: str = ""
    values: tuple[str, ...] = ()
    ttl: int = 300
    zone: str | None = None
    target: str = ""  # the endpoint's address, or the lab server a fault applies to
    state: str = ""  # endpoint: "up" | "down"; fault: a fault kind of dnslab.lab.fault_kinds
    args: tuple[float, ...] = ()
    text: str = ""  # a note shown in the timeline

    def describe(self) -> str:
        if self.action in ("set", "add"):
            values = " ".join(self.values)
            return f"{self.action} {self.name} {self.rdtype} {values} (TTL {self.ttl})"
        if self.action == "delete":
            return f"delete {self.name} {self.rdtype}"
        if self.action == "endpoint":
            return f"endpoint {self.target} {self.state}"
        if self.action == "fault":
            numbers = " ".join(f"{number:g}" for number in self.args)
            return f"fault {self.target} {self.state}{' ' + numbers if numbers else ''}"
        return self.text


@dataclass(frozen=True)
class Variant:
    """One run of the scenario: its own timeline and resolver options, on a fresh lab."""

    name: str
    title: str
    timeline: tuple[Event, ...]
    resolver: dict[str, Any] = field(default_factory=dict)
    ask: tuple[dns.name.Name, int] | None = None  # every client group asks this instead, in this variant


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    lesson: str
    source: str  # the file, for messages
    seed: int
    duration: float
    bucket: float
    zones: Path | None  # None: the sample hierarchy
    clients: tuple[Clients, ...]
    endpoints: dict[str, bool]  # address -> up at the start
    variants: tuple[Variant, ...]
    new_answer: str | None  # a value whose arrival is measured ("time until 99 % see it")
    since: float  # from when that arrival is measured
    levels: dict[str, Any] = field(default_factory=dict)  # lab.toml-style [levels.NAME] tables for this run

    @property
    def population(self) -> int:
        return sum(group.count for group in self.clients)


def load(path: Path) -> Scenario:
    """Read and check a scenario file; every problem is a ScenarioError naming the file."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ScenarioError(f"{path}: no such scenario file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioError(f"{path}: cannot read it ({exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"{path}: not valid TOML: {exc}") from None
    return parse(data, str(path), path.parent)


def parse(data: dict[str, Any], source: str, folder: Path | None = None) -> Scenario:
    try:
        return _parse(data, source, folder)
    except ConfigError as exc:
        raise ScenarioError(f"{source}: {exc}") from None


_TOP_KEYS = {"name", "title", "lesson", "seed", "duration", "bucket", "zones", "clients", "endpoints",
             "timeline", "variants", "measure", "resolver", "levels"}


def _parse(data: dict[str, Any], source: str, folder: Path | None) -> Scenario:
    _known(data, _TOP_KEYS, "the file")
    name = _text(data.get("name", Path(source).stem), "name")
    duration = seconds(_required(data, "duration", "the file"), "duration")
    if duration <= 0:
        raise ConfigError("duration: expected a time above 0")
    bucket = seconds(data.get("bucket", max(MIN_BUCKET, duration / 48)), "bucket")
    if bucket < MIN_BUCKET or bucket > duration:
        raise ConfigError(f"bucket: expected a time from 1s to the duration ({duration_text(duration)}), "
                          f"got {duration_text(bucket)}")
    endpoints = _endpoints(data.get("endpoints", {}))
    groups = data.get("clients")
    if not isinstance(groups, list) or not groups:
        raise ConfigError("[[clients]]: expected at least one group of clients")
    clients = tuple(_clients(group, f"clients #{number}") for number, group in enumerate(groups, 1))
    if sum(group.count for group in clients) > MAX_CLIENTS:
        raise ConfigError(f"clients: at most {MAX_CLIENTS} in all")
    base_resolver = _table(data.get("resolver", {}), "[resolver]")
    resolver_settings(base_resolver, "[resolver]")
    if "timeline" in data and "variants" in data:
        raise ConfigError("give either [[timeline]] or [variants.NAME] tables, not both")
    variants: list[Variant] = []
    if "variants" in data:
        table = _table(data["variants"], "[variants]")
        if not table:
            raise ConfigError("[variants]: expected at least one variant")
        for variant_name, body in table.items():
            where = f"variants.{variant_name}"
            body = _table(body, where)
            _known(body, {"title", "timeline", "resolver", "ask"}, where)
            ask = _question(body["ask"], f"{where}.ask") if "ask" in body else None
            options = {**base_resolver, **_table(body.get("resolver", {}), f"{where}.resolver")}
            resolver_settings(options, f"[{where}.resolver]")  # a bad option fails now, not mid-run
            variants.append(Variant(variant_name, _text(body.get("title", variant_name), f"{where}.title"),
                                    _timeline(body.get("timeline", []), where, duration, endpoints),
                                    options, ask))
    else:
        variants.append(Variant(name, _text(data.get("title", name), "title"),
                                _timeline(data.get("timeline", []), "timeline", duration, endpoints),
                                base_resolver))
    measure = _table(data.get("measure", {}), "[measure]")
    _known(measure, {"new", "since"}, "[measure]")
    new_answer = _text(measure["new"], "measure.new") if "new" in measure else None
    since = seconds(measure.get("since", 0), "measure.since")
    if since > duration:
        raise ConfigError(f"measure.since: {duration_text(since)} is after the end ({duration_text(duration)})")
    levels = _table(data.get("levels", {}), "[levels]")
    parse_levels(levels, "[levels]", base=resolver_settings(base_resolver, "[resolver]"))  # checked now
    zones = None
    if "zones" in data:
        zones = Path(_text(data["zones"], "zones"))
        if not zones.is_absolute() and folder is not None:
            zones = folder / zones
        if not zones.is_dir():
            raise ConfigError(f"zones: {zones} is not a folder")
    return Scenario(
        name=name, title=_text(data.get("title", name), "title"), lesson=_text(data.get("lesson", ""), "lesson"),
        source=source, seed=validate.whole(data.get("seed", 1), "seed", 0, 2**32 - 1),
        duration=duration, bucket=bucket, zones=zones, clients=clients, endpoints=endpoints,
        variants=tuple(variants), new_answer=new_answer, since=since, levels=levels)


def _clients(group: Any, where: str) -> Clients:
    group = _table(group, where)
    _known(group, {"count", "ask", "every", "jitter", "via", "cache", "connect", "start"}, where)
    name, rdtype = _question(_required(group, "ask", where), f"{where}.ask")
    every = seconds(group.get("every", 60), f"{where}.every")
    if every < 1:
        raise ConfigError(f"{where}.every: expected at least 1 second")
    via = group.get("via", ["resolver"])
    if isinstance(via, str):
        via = [via]
    if not isinstance(via, list) or not via or not all(isinstance(item, str) and item for item in via):
        raise ConfigError(f"{where}.via: expected a list of resolver or level names, got {via!r}")
    return Clients(
        count=validate.whole(group.get("count", 100), f"{where}.count", 1, MAX_CLIENTS),
        name=name, rdtype=rdtype, every=every,
        jitter=validate.amount(group.get("jitter", 0.5), f"{where}.jitter", 0, 1),
        via=tuple(via), start=seconds(group.get("start", 0), f"{where}.start"),
        cache=_choice(group.get("cache", "ttl"), CLIENT_CACHES, f"{where}.cache"),
        connect=_choice(group.get("connect", "first"), CONNECT_MODES, f"{where}.connect"))


def _question(value: Any, what: str) -> tuple[dns.name.Name, int]:
    words = _text(value, what).split()
    if len(words) not in (1, 2):
        raise ConfigError(f"{what}: expected \"NAME\" or \"NAME TYPE\", got {value!r}")
    return _name(words[0], what), _rdtype(words[1] if len(words) == 2 else "A", what)


def _timeline(steps: Any, where: str, duration: float, endpoints: dict[str, bool]) -> tuple[Event, ...]:
    if not isinstance(steps, list):
        raise ConfigError(f"{where}: expected [[{where}]] tables")
    events = [_event(step, f"{where} step {number}", duration, endpoints) for number, step in enumerate(steps, 1)]
    return tuple(sorted(events, key=lambda event: event.at))  # stable: same time keeps file order


def _event(step: Any, where: str, duration: float, endpoints: dict[str, bool]) -> Event:
    step = _table(step, where)
    at = seconds(_required(step, "at", where), f"{where}.at")
    if at > duration:
        raise ConfigError(f"{where}.at: {duration_text(at)} is after the end ({duration_text(duration)})")
    actions = [key for key in ACTIONS if key in step]
    if len(actions) != 1:
        raise ConfigError(f"{where}: expected exactly one of {', '.join(ACTIONS)}")
    action = actions[0]
    allowed = {"at", action, "ttl", "zone"} if action in ("set", "add") else {"at", action, "zone"}
    if action == "endpoint":
        allowed = {"at", "endpoint", "state"}
    _known(step, allowed, where)
    if action in ("set", "add", "delete"):
        words = _text(step[action], f"{where}.{action}").split()
        need = 2 if action == "delete" else 3
        if len(words) < need or (action == "delete" and len(words) != 2):
            shape = "NAME TYPE" if action == "delete" else "NAME TYPE VALUE..."
            raise ConfigError(f"{where}.{action}: expected \"{shape}\", got {step[action]!r}")
        _name(words[0], f"{where}.{action}")
        rdtype = dns.rdatatype.to_text(_rdtype(words[1], f"{where}.{action}"))
        values = tuple(" ".join(words[2:]).split(",")) if action != "delete" else ()
        zone = _text(step["zone"], f"{where}.zone") if "zone" in step else None
        return Event(at, action, name=words[0], rdtype=rdtype, values=tuple(v.strip() for v in values),
                     ttl=validate.ttl(step.get("ttl", 300), f"{where}.ttl"), zone=zone)
    if action == "endpoint":
        address = _text(step["endpoint"], f"{where}.endpoint")
        if address not in endpoints:
            raise ConfigError(f"{where}.endpoint: {address} is not in [endpoints] "
                              f"(declared: {', '.join(endpoints) or 'none'})")
        state = _choice(_required(step, "state", where), ("up", "down"), f"{where}.state")
        return Event(at, action, target=address, state=state)
    if action == "fault":
        words = _text(step["fault"], f"{where}.fault").split()
        if len(words) < 2:
            raise ConfigError(f"{where}.fault: expected \"SERVER KIND [NUMBERS]\", got {step['fault']!r}")
        try:
            numbers = tuple(float(word) for word in words[2:])
        except ValueError:
            raise ConfigError(f"{where}.fault: expected numbers after the kind, got {' '.join(words[2:])!r}") from None
        fault_kinds.order(words[1], list(numbers))  # an unknown kind or a bad number: said before a lab starts
        return Event(at, action, target=words[0], state=words[1], args=numbers)
    return Event(at, "note", text=_text(step["note"], f"{where}.note"))


def _endpoints(table: Any) -> dict[str, bool]:
    table = _table(table, "[endpoints]")
    result: dict[str, bool] = {}
    for address, state in table.items():
        try:
            address = str(ipaddress.ip_address(address))  # compared as the text A/AAAA data prints
        except ValueError:
            raise ConfigError(f"[endpoints]: {address!r} is not an IP address") from None
        result[address] = _choice(state, ("up", "down"), f"endpoints.{address}") == "up"
    return result


def _name(text: str, what: str) -> dns.name.Name:
    try:
        return dns.name.from_text(text)
    except dns.exception.DNSException as exc:
        raise ConfigError(f"{what}: {text!r} is not a domain name ({exc})") from None


def _rdtype(text: str, what: str) -> int:
    try:
        return dns.rdatatype.from_text(text)
    except dns.exception.DNSException:
        raise ConfigError(f"{what}: {text!r} is not a record type") from None


def _choice(value: Any, choices: tuple[str, ...], what: str) -> str:
    if value not in choices:
        raise ConfigError(f"{what}: expected one of {', '.join(choices)}, got {value!r}")
    return str(value)


def _text(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"{what}: expected text, got {value!r}")
    return value


def _table(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(f"{what}: expected a table, got {value!r}")
    return value


def _required(table: dict[str, Any], key: str, where: str) -> Any:
    if key not in table:
        raise ConfigError(f"{where}: {key} is missing")
    return table[key]


def _known(table: dict[str, Any], keys: set[str], where: str) -> None:
    unknown = sorted(set(table) - keys)
    if unknown:
        raise ConfigError(f"{where}: unknown key {unknown[0]!r} (known: {', '.join(sorted(keys))})")
