"""The HTML picture of a lookup trace: a sequence diagram in one self-contained page.

`render_html(events, title)` takes the trace events as JSON objects (the dicts
`dnslab trace --json` prints, each with its "t_ms") and returns one HTML document:
inline CSS and inline SVG, no script, nothing fetched (a Content-Security-Policy
forbids it besides).  Lanes, left to right: the client, the resolver (with its
cache drawn just left of its lifeline), then one lane per upstream server
address, grouped by role: root, TLD, authoritative.  Rows, top to bottom, follow
the events: the client's question, cache lookups, every query and reply, failed
tries, CNAME/DNAME restarts, sub-lookups (a tinted, indented band) and the
answer.  Everything shown comes from the network or the user, so every piece of
text is escaped, and anything too long for its place is cut with an ellipsis
and kept whole in a <title> tooltip.  A plain-text list of the steps follows
the picture for readers who cannot see it.
"""

from __future__ import annotations

import html
import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any, Callable

from dnslab.core.events import ms_text

__all__ = ["render_html"]

# --- geometry (px) ----------------------------------------------------------------------
HEAD_TOP = 38         # top of the lane headers; the role groups sit above
CLIENT_X = 100
RESOLVER_X = 380      # the gap to the client holds the cache badges
LEVEL_GAP = 190       # between the lanes of caching levels (dnslab trace --via), left of the resolver
FIRST_GAP = 340       # resolver to the first server: every query label crosses it
TARGET_WIDTH = 1340
RIGHT_PAD = 100
MIN_WIDTH = 1100
MONO = 0.61           # advance of a monospace glyph, in em (DejaVu Sans Mono, Menlo: 0.602)
ARROW_ROW = 56
BADGE_ROW = 46
NOTE_ROW = 28
FOOT_LINE = 17

ROLE_LABELS = {"root": "root", "tld": "TLD", "auth": "authoritative"}
SERVER_ROLES = ("root", "tld", "auth")
ROLE_GROUPS = {"root": "root servers", "tld": "TLD servers", "auth": "authoritative servers"}

# --- text helpers -----------------------------------------------------------------------
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")


def _clean(value: Any) -> str:
    """Text as it may appear in the page: control characters and lone surrogates made visible."""
    return _UNSAFE.sub(lambda m: "\\x%02x" % ord(m.group()) if ord(m.group()) < 256
                       else "\\u%04x" % ord(m.group()), "" if value is None else str(value))


def _esc(value: Any) -> str:
    return html.escape(_clean(value), quote=True)


def _width(text: str) -> int:
    """Display width in monospace cells (wide East Asian characters take two)."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 0 if unicodedata.combining(ch) else 1
               for ch in text)


def _fit(text: str, max_px: float, size: float) -> str:
    cells = int(max_px // (size * MONO))
    if _width(text) <= cells:
        return text
    out, used = [], 0
    for ch in text:
        w = _width(ch)
        if used + w > cells - 1:
            break
        out.append(ch)
        used += w
    return "".join(out) + "…"


def _num(value: Any) -> str:
    """A millisecond or TTL figure without a useless '.0'."""
    if value is None:
        return "?"
    try:
        number = float(value)
    except (TypeError, ValueError):
        return _clean(value)
    return str(int(number)) if number == int(number) else f"{number:.1f}"


def _plural(n: int, word: str, plural: str = "") -> str:
    return f"{n} {word}" if n == 1 else f"{n} {plural or word + 's'}"


def _role(zone: str) -> str:
    labels = [label for label in (zone or "").rstrip(".").split(".") if label]
    if not labels:
        return "root" if zone == "." else "auth"
    return "tld" if len(labels) == 1 else "auth"


def _record(line: str) -> str:
    """A presentation line, shorter: the class IN goes (every record here is IN)."""
    return re.sub(r"\s+", " ", line.replace(" IN ", " ", 1)).strip()


def _records_brief(records: list[str]) -> str:
    if not records:
        return ""
    first = _record(records[0])
    return first if len(records) == 1 else f"{first}  (+{len(records) - 1} more)"


class _Svg:
    """Collects SVG markup; every text goes through `text`, which escapes and fits it."""

    def __init__(self) -> None:
        self.parts: list[str] = []

    def add(self, markup: str) -> None:
        self.parts.append(markup)

    def text(self, x: float, y: float, content: str, cls: str, *, size: float = 12,
             max_px: float | None = None, anchor: str = "start") -> None:
        full = _clean(content)
        shown = full if max_px is None else _fit(full, max_px, size)
        tip = f"<title>{_esc(full)}</title>" if shown != full else ""
        anchor_attr = f' text-anchor="{anchor}"' if anchor != "start" else ""
        self.add(f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size:g}" class="{cls}"{anchor_attr}>'
                 f'{tip}{_esc(shown)}</text>')


# --- the model: lanes and rows ----------------------------------------------------------


@dataclass
class _Lane:
    key: str                 # "client", "resolver" or a server address
    role: str                # client, resolver, root, tld, auth
    x: float = 0.0
    names: list[str] = field(default_factory=list)
    zones: list[str] = field(default_factory=list)
    first_seen: int = 0


@dataclass
class _Row:
    index: int               # position of the event in the trace (-1: none)
    event: dict[str, Any]
    kind: str                # question, cache, note, query, reply, failed, restart, sub-start, sub-done, answer
    height: float
    depth: int = 0
    y: float = 0.0           # top of the row
    extra: dict[str, Any] = field(default_factory=dict)


def _kind(event: dict[str, Any]) -> str:
    return str(event.get("event", ""))


def _depth(event: dict[str, Any]) -> int:
    try:
        return max(0, int(event.get("depth", 0) or 0))
    except (TypeError, ValueError):
        return 0


def _t(event: dict[str, Any]) -> float | None:
    value = event.get("t_ms")
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None


def _lanes(events: list[dict[str, Any]]) -> list[_Lane]:
    servers: dict[str, _Lane] = {}
    for index, event in enumerate(events):
        if _kind(event) not in ("choose", "query", "reply", "failed"):
            continue
        address = _clean(event.get("address") or "")
        if not address:
            continue
        lane = servers.get(address)
        if lane is None:
            lane = servers[address] = _Lane(address, "auth", first_seen=index)
        name = _clean(event.get("server") or "")
        if name and name not in lane.names:
            lane.names.append(name)
        zone = _clean(event.get("zone") or "")
        if zone and zone not in lane.zones:
            lane.zones.append(zone)
    order = {"root": 0, "tld": 1, "auth": 2}
    for lane in servers.values():
        # As the lab's table does: a server's role is the highest level it serves.
        lane.role = min((_role(zone) for zone in lane.zones), key=order.__getitem__, default="auth")
    ordered = sorted(servers.values(), key=lambda lane: (order[lane.role], lane.first_seen))
    return [_Lane("client", "client"), *_level_lanes(events), _Lane("resolver", "resolver"), *ordered]


def _level_lanes(events: list[dict[str, Any]]) -> list[_Lane]:
    """A lane per caching level a `trace --via` went through, client side first (key "level:NAME")."""
    lanes: dict[str, _Lane] = {}
    for index, event in enumerate(events):
        if _kind(event) != "level" or not event.get("level"):
            continue
        name = _clean(event.get("level"))
        if name not in lanes:
            lanes[name] = _Lane(f"level:{name}", "level", names=[name], first_seen=index,
                                zones=[_clean(event.get("address") or ""), _clean(event.get("level_kind") or "")])
    return list(lanes.values())


MAX_ZONES_SHOWN = 3


def _header_lines(lane: _Lane) -> list[tuple[str, str]]:
    """What a lane's header says: name, address, role and the zones it was asked for."""
    if lane.role == "client":
        return [("client", "lane-name"), ("stub / dig", "lane-sub")]
    if lane.role == "level":  # zones holds the level's address and kind
        return [(lane.names[0], "lane-name"), (lane.zones[0], "lane-addr"),
                (f"{lane.zones[1]} cache", "lane-sub")]
    lines = [(" / ".join(lane.names) or "(name unknown)", "lane-name"), (lane.key, "lane-addr"),
             (ROLE_LABELS[lane.role], f"lane-role r-{lane.role}")]
    zones = lane.zones[:MAX_ZONES_SHOWN]
    if len(lane.zones) > MAX_ZONES_SHOWN:
        zones[-1] = f"+{len(lane.zones) - MAX_ZONES_SHOWN + 1} more zones"
    lines += [(f"zone {zone}", "lane-sub") for zone in zones]
    return lines


# --- describing events (shared by the picture and the text list) -----------------------------

_FAILURES = {
    "timeout": "timeout", "network": "network error", "broken": "broken reply", "refused": "REFUSED",
    "servfail": "SERVFAIL", "lame": "lame server", "formerr": "FORMERR",
}


def _reply_category(meaning: str) -> str:
    if meaning == "answer":
        return "ok"
    if meaning == "no cut here":
        return "ask"
    if meaning == "referral":
        return "ref"
    if meaning == "cname":
        return "chain"
    if meaning in ("nxdomain", "nodata"):
        return "neg"
    if meaning in ("lame", "error") or meaning.startswith("error") and "asking" not in meaning:
        return "bad"
    return "warn"  # truncated, formerr, no cut here, "...: asking the full name"


def _reply_label(event: dict[str, Any]) -> str:
    meaning = _clean(event.get("meaning") or "reply")
    rcode = _clean(event.get("rcode") or "")
    aa = " (AA)" if event.get("aa") else ""
    if meaning == "referral":
        head = f"referral to {_clean(event.get('child_zone') or '?')}"
    elif meaning == "cname":
        head = f"cname -> {_clean(event.get('target') or '?')}"
    elif meaning == "answer":
        head = f"answer{aa}"
    elif meaning in ("nxdomain", "nodata"):
        head = f"{meaning.upper()}{aa}"
    elif meaning == "truncated":
        head = "truncated (TC): again over TCP"
    elif meaning == "formerr":
        head = "FORMERR: again without EDNS"
    elif meaning in ("lame", "error") and rcode and rcode != "NOERROR":
        head = f"{meaning} ({rcode})"
    else:
        head = meaning
    return f"{head} · {ms_text(event.get('rtt_ms'))} ms"


def _reply_detail(event: dict[str, Any]) -> str:
    meaning = event.get("meaning")
    parts = []
    if meaning == "referral":
        ns = [_clean(n) for n in event.get("ns") or []]
        glue = [_clean(g).split()[-1] for g in event.get("glue") or [] if _clean(g).split()]
        parts.append("NS " + ", ".join(ns) if ns else "no NS")
        parts.append("glue " + ", ".join(glue) if glue else "no glue")
    else:
        brief = _records_brief([_clean(r) for r in event.get("records") or []])
        if brief:
            parts.append(brief)
        elif meaning not in ("truncated", "formerr"):
            parts.append(f"rcode {_clean(event.get('rcode') or '?')}, nothing usable")
    if event.get("dropped"):
        parts.append(f"{event.get('dropped')} out-of-bailiwick records dropped")
    return " · ".join(parts)


def _reply_full(event: dict[str, Any]) -> str:
    lines = [f"reply from {_clean(event.get('server') or '?')} {_clean(event.get('address') or '')} "
             f"for zone {_clean(event.get('zone') or '?')}: {_clean(event.get('meaning'))}, "
             f"rcode {_clean(event.get('rcode'))}, AA={int(bool(event.get('aa')))}, "
             f"TC={int(bool(event.get('tc')))}, rtt {ms_text(event.get('rtt_ms'))} ms"]
    if event.get("child_zone"):
        lines.append(f"delegates {_clean(event.get('child_zone'))} to " +
                     ", ".join(_clean(n) for n in event.get("ns") or []))
    lines += [f"glue: {_clean(g)}" for g in event.get("glue") or []]
    lines += [_clean(r) for r in event.get("records") or []]
    if event.get("target"):
        lines.append(f"the walk restarts at {_clean(event.get('target'))}")
    if event.get("dropped"):
        lines.append(f"{event.get('dropped')} records outside the bailiwick dropped")
    return "\n".join(lines)


def _query_label(event: dict[str, Any]) -> str:
    bits = [f"{_clean(event.get('name') or '?')} {_clean(event.get('type') or '?')}?",
            _clean(event.get("purpose") or "")]
    if event.get("tcp"):
        bits.append("TCP")
    if event.get("edns") is False:
        bits.append("no EDNS")
    return " · ".join(bit for bit in bits if bit)


def _choice_text(choice: dict[str, Any] | None) -> str:
    if not choice:
        return ""
    text = _clean(choice.get("reason") or "")
    if choice.get("srtt_ms") is not None:
        text += f" (srtt {ms_text(choice.get('srtt_ms'))} ms)"
    if choice.get("timeout_ms") is not None:
        text += f" · timeout {ms_text(choice.get('timeout_ms'))} ms"
    held = [_clean(a) for a in choice.get("held_down") or []]
    if held:
        text += " · held down: " + ", ".join(held)
    return text


def _query_detail(event: dict[str, Any], choice: dict[str, Any] | None) -> str:
    detail = f"zone {_clean(event.get('zone') or '?')}"
    chosen = _choice_text(choice)
    return f"{detail} · {chosen}" if chosen else detail


def _failed_label(event: dict[str, Any], after_reply: bool) -> str:
    failure = _clean(event.get("failure") or "failed")
    label = _FAILURES.get(failure, failure)
    after = event.get("after_ms")
    if after_reply:
        return f"{label}: reply not usable"
    if failure == "timeout" or (after not in (None, 0, 0.0)):
        return f"{label} after {ms_text(after)} ms"
    return label


def _cache_label(event: dict[str, Any]) -> tuple[str, str]:
    result = _clean(event.get("result") or "?")
    if result == "hit":
        head = "cache hit"
        if event.get("ttl") is not None:
            head += f" · ttl {_num(event.get('ttl'))}"
            if event.get("original_ttl") is not None and event.get("original_ttl") != event.get("ttl"):
                head += f" of {_num(event.get('original_ttl'))}"
    elif result == "negative":
        head = f"negative hit · {_clean(event.get('rcode') or 'NXDOMAIN')}"
        if event.get("rcode") == "NOERROR":
            head = "negative hit · NODATA"
        if event.get("ttl") is not None:
            head += f" · ttl {_num(event.get('ttl'))}"
    elif result == "expired":
        head = "cache expired"
        if event.get("expired_ago") is not None:
            head += f" {_num(event.get('expired_ago'))} s ago"
    elif result == "miss":
        head = "cache miss"
    elif result == "servfail":
        head = "cached SERVFAIL"
    else:
        head = f"cache {result}"
    return head, f"{_clean(event.get('name') or '?')} {_clean(event.get('type') or '')}".strip()


def _done_records(event: dict[str, Any]) -> list[str]:
    return [_clean(r) for r in event.get("records") or []]


def _done_label(event: dict[str, Any]) -> str:
    rcode = _clean(event.get("rcode") or "?")
    records = event.get("records") or []
    if records:
        return f"{rcode} · {_plural(len(records), 'record')}"
    if rcode == "NOERROR":
        return "NOERROR · no records (NODATA)" if event.get("authority") else "NOERROR · no records"
    return rcode


_DNSSEC_STEP = {"ds": "DS", "dnskey": "DNSKEY set", "rrsig": "signature over", "denial": "denial proof for",
                "insecure": "unsigned delegation:", "verdict": "DNSSEC verdict for"}


def _dnssec_label(event: dict[str, Any]) -> tuple[str, str]:
    """Badge text: the link of the chain and its state; the key tags and algorithm checked."""
    step = _clean(event.get("step") or "")
    security = _clean(event.get("security") or "?")
    what = f"{_clean(event.get('name') or '')} {_clean(event.get('type') or '')}".strip()
    if step == "verdict":
        head = f"DNSSEC: {security.upper()}" + {"bogus": " → SERVFAIL to the client", "secure": " → AD=1"}.get(
            security, "")
    else:
        head = f"{_DNSSEC_STEP.get(step, step)} {what} · {security}"
    tags = ", ".join(str(t) for t in event.get("key_tags") or [])
    parts = [f"key tag {tags}" if tags else "", _clean(event.get("algorithm") or ""),
             _clean(event.get("detail") or "")]
    return head, " · ".join(p for p in parts if p)


def _dnssec_text(event: dict[str, Any]) -> str:
    head, detail = _dnssec_label(event)
    zone = _clean(event.get("zone") or "")
    return f"{head} (zone {zone}): {detail}" if detail else f"{head} (zone {zone})"


def _step_text(event: dict[str, Any], after_reply: bool = False,
               following: dict[str, Any] | None | bool = False) -> str:
    """*following*: for a failed try, the next choice of server (None: none; False: not known)."""
    """One sentence per event, for the text list and the SVG's description."""
    kind = _kind(event)
    name = _clean(event.get("name") or "")
    qtype = _clean(event.get("type") or "")
    if kind == "start":
        if _depth(event) == 0:
            return f"The client asks for {name} {qtype}."
        return f"Sub-lookup of {name} {qtype}: {_clean(event.get('why') or '')}."
    if kind == "cache":
        head, what = _cache_label(event)
        records = "; ".join(_clean(r) for r in event.get("records") or [])
        return f"{head[0].upper()}{head[1:]} for {what}" + (f": {records}." if records else ".")
    if kind == "delegation":
        return (f"Closest zone {_clean(event.get('zone'))} (from {_clean(event.get('source'))}), "
                f"servers: {', '.join(_clean(s) for s in event.get('servers') or [])}.")
    if kind == "choose":
        return (f"Chose {_clean(event.get('server') or '?')} {_clean(event.get('address'))} for zone "
                f"{_clean(event.get('zone'))}: {_choice_text(event)}.")
    if kind == "query":
        return (f"Query to {_clean(event.get('server') or '?')} {_clean(event.get('address'))} "
                f"(zone {_clean(event.get('zone'))}): {_query_label(event)}.")
    if kind == "reply":
        return _reply_full(event).replace("\n", "; ") + "."
    if kind == "failed":
        return (f"Failed try at {_clean(event.get('server') or '?')} {_clean(event.get('address'))}: "
                f"{_failed_label(event, after_reply)}"
                + ("." if following is False else f"; {_after_failure(event, following)}."))
    if kind == "restart":
        return (f"{_clean(event.get('via') or 'CNAME')}: {name} leads to {_clean(event.get('target'))}; "
                f"the walk starts again there.")
    if kind == "dnssec":
        return _dnssec_text(event) + "."
    if kind == "done":
        who = "Answer to the client" if _depth(event) == 0 else f"Sub-lookup of {name} {qtype} done"
        records = "; ".join(_done_records(event) + [_clean(a) for a in event.get("authority") or []])
        reason = f" ({_clean(event.get('reason'))})" if event.get("reason") else ""
        return f"{who}: {_clean(event.get('rcode'))}{reason}" + (f": {records}." if records else ".")
    if kind == "level":  # dnslab trace --via: a caching level's step (drawn as a note, not a lane of its own)
        return _level_text(event)
    return f"Event {_clean(kind) or '?'}."


def _level_answer(events: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The answer the client got through a caching level (dnslab trace --via), if the trace has one."""
    return next((e for e in events if _kind(e) == "level" and e.get("result") == "answered"), None)


def _level_text(event: dict[str, Any]) -> str:
    """A caching level's step in one sentence: its answer and the time it keeps it, or where it asked."""
    where = f"Level {_clean(event.get('level'))} ({_clean(event.get('address'))})"
    result = event.get("result")
    following = f"{_clean(event.get('next'))} {_clean(event.get('next_address'))}"
    if result == "hit":
        return f"{where} answers from its cache, keeping it {_num(event.get('ttl'))} s more ({_clean(event.get('policy'))})."
    if result == "grace":
        return f"{where} answers with an expired entry in its grace period and fetches it again."
    if result == "down":
        return f"{where}: its upstream {following} does not answer; it waits out its timeout and tries the next."
    if result == "miss":
        return f"{where} has no fresh answer: it asks {following}." if event.get("next") else \
            f"{where} has no fresh answer and no upstream answers."
    records = "; ".join(_clean(r) for r in event.get("records") or [])
    return f"The client's answer through {_clean(event.get('level'))}: {_clean(event.get('rcode'))}" + \
        (f": {records}." if records else ".")


def _next_tries(events: list[dict[str, Any]]) -> dict[int, dict[str, Any] | None]:
    """For each failed try: the same lookup's next server choice, or None when it chose none before it ended."""
    following: dict[int, dict[str, Any] | None] = {}
    open_failure: dict[int, int] = {}   # depth -> its latest failed try not yet followed by a choice
    for index, event in enumerate(events):
        kind, depth = _kind(event), _depth(event)
        if kind == "failed":
            open_failure[depth] = index
        elif kind == "choose" and depth in open_failure:
            following[open_failure.pop(depth)] = event
        elif kind == "done" and depth in open_failure:
            following[open_failure.pop(depth)] = None
    return following


def _after_failure(event: dict[str, Any], following: dict[str, Any] | None, short: bool = False) -> str:
    """What the lookup did after a failed try: as the next step says, never a guess."""
    if following is None:
        return "no server left" if short else "no server is left to ask"
    if short:
        return f"next: {_clean(following.get('server') or following.get('address') or '?')}"
    who = f"{_clean(following.get('server') or '?')} {_clean(following.get('address'))}"
    if following.get("address") == event.get("address"):
        return f"the lookup asks {who} once more"
    return f"the next server, {who}, gets the question"


# --- layout ---------------------------------------------------------------------------------


class _Layout:
    def __init__(self, events: list[dict[str, Any]]) -> None:
        self.events = [e if isinstance(e, dict) else {"event": "?", "value": str(e)} for e in events]
        self.lanes = _lanes(self.events)
        self.by_key = {lane.key: lane for lane in self.lanes}
        servers = [lane for lane in self.lanes if lane.role in SERVER_ROLES]
        levels = [lane for lane in self.lanes if lane.role == "level"]
        self.resolver_x = RESOLVER_X + (LEVEL_GAP * len(levels) + 40 if levels else 0)
        if servers:
            gap = (TARGET_WIDTH + LEVEL_GAP * len(levels) - RIGHT_PAD - self.resolver_x - FIRST_GAP) / \
                max(1, len(servers) - 1)
            gap = max(160.0, min(200.0, gap))
            for i, lane in enumerate(servers):
                lane.x = self.resolver_x + FIRST_GAP + i * gap
        for i, lane in enumerate(levels):
            lane.x = CLIENT_X + LEVEL_GAP * (i + 1)
        self.by_key["client"].x = CLIENT_X
        self.by_key["resolver"].x = self.resolver_x
        self.gap = gap if servers else 200.0
        lines = max((len(_header_lines(lane)) for lane in self.lanes if lane.role != "resolver"), default=2)
        self.top = HEAD_TOP + 14 + 15 * max(lines, 3) + 6   # where the lifelines start
        self.width = max(MIN_WIDTH, (servers[-1].x if servers else self.resolver_x) + RIGHT_PAD)
        self.after_reply: set[int] = set()   # failed events that judge a reply already drawn
        self.failed_queries: set[int] = set()
        self.next_tries = _next_tries(self.events)
        self.rows = self._rows()
        self._place()

    # Which events become rows, and how tall each is.
    def _rows(self) -> list[_Row]:
        rows: list[_Row] = []
        choice: dict[int, dict[str, Any]] = {}
        last_reply: dict[int, tuple[int, dict[str, Any]]] = {}   # depth -> the latest reply
        open_query: dict[tuple[int, str], int] = {}              # (depth, address) -> row of its query
        for index, event in enumerate(self.events):
            kind, depth = _kind(event), _depth(event)
            if kind == "start":
                rows.append(_Row(index, event, "question" if depth == 0 else "sub-start",
                                 ARROW_ROW if depth == 0 else NOTE_ROW + 6, depth))
            elif kind == "cache":
                rows.append(_Row(index, event, "cache", BADGE_ROW, depth))
            elif kind == "delegation":
                if event.get("source") != "referral":   # a referral's delegation is drawn on its reply
                    rows.append(_Row(index, event, "note", NOTE_ROW, depth))
            elif kind == "choose":
                choice[depth] = event
            elif kind == "query":
                chosen = choice.pop(depth, None)
                if chosen and chosen.get("address") != event.get("address"):
                    rows.append(_Row(self.events.index(chosen), chosen, "note", NOTE_ROW, depth))
                    chosen = None
                open_query[(depth, _clean(event.get("address") or ""))] = len(rows)
                rows.append(_Row(index, event, "query", ARROW_ROW, depth, extra={"choice": chosen}))
            elif kind in ("reply", "failed"):
                key = (depth, _clean(event.get("address") or ""))
                query_row = open_query.pop(key, None)
                row = _Row(index, event, kind, ARROW_ROW, depth, extra={"query_row": query_row})
                if kind == "reply":
                    last_reply[depth] = (index, event)
                else:
                    previous = last_reply.get(depth)
                    if previous and previous[1].get("address") == event.get("address") and \
                            self._only_quiet_between(previous[0], index):
                        self.after_reply.add(index)
                        reply_row = next(i for i, r in enumerate(rows) if r.index == previous[0])
                        row.extra["try_row"] = rows[reply_row].extra.get("query_row")
                    elif query_row is not None:
                        self.failed_queries.add(rows[query_row].index)
                rows.append(row)
            elif kind == "restart":
                rows.append(_Row(index, event, "restart", NOTE_ROW + 8, depth))
            elif kind == "dnssec":
                rows.append(_Row(index, event, "dnssec", BADGE_ROW, depth))
            elif kind == "level":
                if not any(r.kind == "level-ask" for r in rows):   # the client's question to the first level
                    rows.append(_Row(index, event, "level-ask", ARROW_ROW, depth))
                result = event.get("result")
                rows.append(_Row(index, event, "level", BADGE_ROW if result in ("hit", "grace") else ARROW_ROW,
                                 depth))
            elif kind == "done":
                rows.append(_Row(index, event, "answer" if depth == 0 else "sub-done",
                                 ARROW_ROW if depth == 0 else NOTE_ROW + 6, depth))
            else:
                rows.append(_Row(index, event, "note", NOTE_ROW, depth))
        for depth, event in choice.items():   # a choice no query followed
            rows.append(_Row(self.events.index(event), event, "note", NOTE_ROW, depth))
        return rows

    def _only_quiet_between(self, start: int, end: int) -> bool:
        return all(_kind(e) in ("choose", "delegation", "cache") for e in self.events[start + 1:end])

    def _place(self) -> None:
        y = self.top + 16
        for row in self.rows:
            row.y = y
            y += row.height
        self.rows_bottom = y
        # Sub-lookup bands: from a depth>0 start to its done.
        self.bands: list[tuple[int, float, float, dict[str, Any]]] = []
        stack: list[_Row] = []
        for row in self.rows:
            if row.kind == "sub-start":
                stack.append(row)
            elif row.kind == "sub-done" and stack:
                start = stack.pop()
                self.bands.append((start.depth, start.y, row.y + row.height, start.event))
        for start in stack:
            self.bands.append((start.depth, start.y, self.rows_bottom, start.event))

    def band_of(self, row: _Row) -> int:
        """How deep the row sits in sub-lookup bands (for text halos)."""
        return max((d for d, top, bottom, _ in self.bands if top <= row.y < bottom), default=0)


# --- drawing --------------------------------------------------------------------------------

_BAND_FILL = ["#ffffff", "#fdf3dc", "#f6e7c1", "#eedaa6"]


class _Painter:
    def __init__(self, layout: _Layout) -> None:
        self.l = layout
        self.svg = _Svg()
        self.resolver = layout.by_key["resolver"].x
        self.client = layout.by_key["client"].x
        self.time_shown: float | None = None

    def paint(self) -> tuple[str, float]:
        l = self.l
        footer = self._footer_lines()
        height = l.rows_bottom + 24 + (len(footer) * FOOT_LINE + 30 if footer else 0)
        self._defs()
        self._bands()
        self._headers(height)
        self._activations()
        for number, row in enumerate(l.rows):
            self._row(number, row)
        self._footer(footer, l.rows_bottom + 18)
        return "".join(self.svg.parts), height

    def _defs(self) -> None:
        markers = []
        for name, colour in (("q", "#1e3a8a"), ("ok", "#15803d"), ("ref", "#1d4ed8"), ("chain", "#7e22ce"),
                             ("neg", "#b45309"), ("warn", "#a16207"), ("bad", "#b91c1c"), ("ask", "#374151")):
            markers.append(f'<marker id="arrow-{name}" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="11" '
                           f'markerHeight="11" markerUnits="userSpaceOnUse" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" '
                           f'fill="{colour}"/></marker>')
        self.svg.add("<defs>" + "".join(markers) + "</defs>")

    def _bands(self) -> None:
        for depth, top, bottom, event in sorted(self.l.bands):
            inset = 16 * (depth - 1)
            x0 = self.client + 26 + inset
            x1 = self.l.width - 12 - inset
            fill = _BAND_FILL[min(depth, len(_BAND_FILL) - 1)]
            self.svg.add(f'<g class="band" data-depth="{depth}"><title>{_esc(_step_text(event))}</title>'
                         f'<rect x="{x0:.1f}" y="{top + 2:.1f}" width="{x1 - x0:.1f}" height="{bottom - top - 4:.1f}" '
                         f'rx="8" fill="{fill}" class="band-rect"/></g>')

    def _headers(self, height: float) -> None:
        l, svg = self.l, self.svg
        bottom = l.rows_bottom + 4
        # Role groups above the server headers.
        groups: list[tuple[str, list[_Lane]]] = []
        for lane in (lane for lane in l.lanes if lane.role in SERVER_ROLES):
            if groups and groups[-1][0] == lane.role:
                groups[-1][1].append(lane)
            else:
                groups.append((lane.role, [lane]))
        half = min(l.gap, FIRST_GAP) / 2 - 3
        for role, lanes in groups:
            x0, x1 = lanes[0].x - half, lanes[-1].x + half
            svg.add(f'<rect x="{x0:.1f}" y="8" width="{x1 - x0:.1f}" height="22" rx="5" class="group g-{role}"/>')
            label = ROLE_GROUPS[role] if _width(ROLE_GROUPS[role]) * 13 * 0.62 < x1 - x0 - 8 else ROLE_LABELS[role]
            svg.text((x0 + x1) / 2, 24, label, f"group-label gl-{role}", size=13,
                     max_px=x1 - x0 - 8, anchor="middle")
        if not groups:
            x = l.resolver_x + 60
            svg.text(x, 24, "no upstream server was asked", "group-label", size=13)
        for x, label in ((self.client, "you"), (self.resolver - 70, "recursive resolver")):
            svg.text(x, 23, label, "group-label", size=12, anchor="middle")
        levels = [lane for lane in l.lanes if lane.role == "level"]
        if levels:
            svg.text((levels[0].x + levels[-1].x) / 2, 23, "caching levels", "group-label", size=12, anchor="middle")
        svg.text(10, self.l.top + 12, "t (ms)", "time-head", size=11)
        for lane in l.lanes:
            self._lane(lane, bottom, half)

    def _lane(self, lane: _Lane, bottom: float, half: float) -> None:
        svg, top = self.svg, self.l.top
        x = lane.x
        box_top, box_h = HEAD_TOP, top - HEAD_TOP - 6
        key_attr = _esc(lane.key)
        svg.add(f'<g class="lane lane-{lane.role}" data-lane="{key_attr}" data-role="{lane.role}">')
        if lane.role == "resolver":
            # The cache is part of the resolver: a lifeline of its own, left of the resolver's.
            cx = self.resolver - 140
            svg.add(f'<rect x="{cx - 62:.1f}" y="{box_top:.1f}" width="{x + 75 - cx + 62:.1f}" '
                    f'height="{box_h:.1f}" rx="7" class="lane-box resolver-box"/>')
            for lx, lines in ((cx, [("cache", "lane-name"), ("of the resolver", "lane-sub")]),
                              (x, [("resolver", "lane-name"), ("iterative", "lane-sub")])):
                for i, (content, cls) in enumerate(lines):
                    svg.text(lx, box_top + 20 + i * 15, content, cls, size=12 if i == 0 else 11, anchor="middle")
            svg.add(f'<line x1="{cx:.1f}" y1="{top:.1f}" x2="{cx:.1f}" y2="{bottom:.1f}" class="lifeline cache-line"/>')
        else:
            w = 120.0 if lane.role == "client" else LEVEL_GAP - 30 if lane.role == "level" else 2 * half - 4
            svg.add(f'<rect x="{x - w / 2:.1f}" y="{box_top:.1f}" width="{w:.1f}" height="{box_h:.1f}" rx="7" '
                    f'class="lane-box box-{lane.role}"/>')
            for i, (content, cls) in enumerate(_header_lines(lane)):
                size = 12 if cls == "lane-name" else 11
                svg.text(x, box_top + 20 + i * 15, content, cls, size=size, max_px=w - 6, anchor="middle")
        svg.add(f'<line x1="{x:.1f}" y1="{top:.1f}" x2="{x:.1f}" y2="{bottom:.1f}" class="lifeline"/></g>')

    def _activations(self) -> None:
        l, svg = self.l, self.svg
        spans: list[tuple[int, float, float]] = []
        question = next((r for r in l.rows if r.kind == "question"), None)
        answer = next((r for r in l.rows if r.kind == "answer"), None)
        if question or answer:
            top = (question.y + 30) if question else l.top
            bottom = (answer.y + 30) if answer else l.rows_bottom
            spans.append((0, top, bottom))
        spans += [(d, top + 14, bottom - 14) for d, top, bottom, _ in l.bands]
        for depth, top, bottom in sorted(spans):
            x = self.resolver - 5 + 4 * depth
            svg.add(f'<rect x="{x:.1f}" y="{top:.1f}" width="10" height="{max(4.0, bottom - top):.1f}" '
                    f'class="activation act-{min(depth, 3)}"/>')
        # Server activations: from a query to its reply or failure.
        for row in l.rows:
            if row.kind not in ("reply", "failed") or row.extra.get("query_row") is None:
                continue
            query = l.rows[row.extra["query_row"]]
            lane = l.by_key.get(_clean(row.event.get("address") or ""))
            if lane is None:
                continue
            top, bottom = query.y + 30, row.y + 30
            cls = "server-act failed-act" if row.kind == "failed" else "server-act"
            svg.add(f'<rect x="{lane.x - 4:.1f}" y="{top:.1f}" width="8" height="{bottom - top:.1f}" class="{cls}"/>')

    # One row per drawn event.
    def _row(self, number: int, row: _Row) -> None:
        l, svg = self.l, self.svg
        band = l.band_of(row)
        halo = _BAND_FILL[min(band, len(_BAND_FILL) - 1)]
        t = _t(row.event)
        if t is not None and t != self.time_shown:
            svg.text(52, row.y + (30 if row.height >= ARROW_ROW - 8 else row.height / 2 + 4), f"{_num(t)}",
                     "time", size=11, anchor="end")
            self.time_shown = t
        draw: Callable[[_Row], tuple[str, str]] = getattr(self, "_draw_" + row.kind.replace("-", "_"))
        attrs = f' data-event="{_esc(_kind(row.event) or "?")}" data-step="{row.index + 1}"'
        try_id = row.extra.get("try")
        if row.kind == "query":
            row.extra["try"] = try_id = number
        elif row.extra.get("query_row") is not None:
            try_id = row.extra["query_row"]
        elif row.extra.get("try_row") is not None:
            try_id = row.extra["try_row"]
        if try_id is not None:
            attrs += f' data-try="{try_id}"'
        after = len(svg.parts)
        cls, tip = draw(row)
        svg.parts.insert(after, f'<g class="ev {cls}"{attrs} style="--halo:{halo}"><title>{_esc(tip)}</title>')
        svg.add("</g>")

    def _arrow(self, x1: float, x2: float, y: float, category: str, *, dashed: bool = False,
               cross: bool = False) -> None:
        dash = ' stroke-dasharray="7 5"' if dashed else ""
        if cross:
            end = x2 + (8 if x2 < x1 else -8)
            self.svg.add(f'<line x1="{x1:.1f}" y1="{y:.1f}" x2="{end:.1f}" y2="{y:.1f}" class="line c-{category}"{dash}/>')
            s = 6
            self.svg.add(f'<path d="M{end - s:.1f},{y - s:.1f} L{end + s:.1f},{y + s:.1f} M{end - s:.1f},{y + s:.1f} '
                         f'L{end + s:.1f},{y - s:.1f}" class="cross c-{category}"/>')
        else:
            self.svg.add(f'<line x1="{x1:.1f}" y1="{y:.1f}" x2="{x2:.1f}" y2="{y:.1f}" class="line c-{category}"'
                         f'{dash} marker-end="url(#arrow-{category})"/>')

    def _labels(self, row: _Row, x_from: float, x_to: float, main: str, detail: str, category: str,
                *, to_edge: bool = True) -> None:
        """Text above (main) and below (detail) an arrow, from its resolver end; a row holds
        one arrow only, so the text of a short arrow may run on past its end."""
        y = row.y + 30
        left, right = min(x_from, x_to), max(x_from, x_to)
        room = (self.l.width - 24 if to_edge else right - 12) - (left + 14)
        self.svg.text(left + 14, y - 8, main, f"label t-{category}", size=12, max_px=room)
        if detail:
            self.svg.text(left + 14, y + 16, detail, "detail", size=11, max_px=room)

    def _server_x(self, row: _Row) -> float:
        lane = self.l.by_key.get(_clean(row.event.get("address") or ""))
        return lane.x if lane else self.l.width - RIGHT_PAD

    def _draw_question(self, row: _Row) -> tuple[str, str]:
        e = row.event
        y = row.y + 30
        asker = self._asker()
        self._arrow(asker, self.resolver - 6, y, "ask")
        question = f"{_clean(e.get('name') or '?')} {_clean(e.get('type') or '')}?"
        who = "the client's question" if asker == self.client else "the question from the level above"
        self._labels(row, asker, self.resolver, question, who, "ask", to_edge=False)
        return "question", _step_text(e)

    def _draw_answer(self, row: _Row) -> tuple[str, str]:
        e = row.event
        y = row.y + 30
        category = "ok" if e.get("rcode") == "NOERROR" and e.get("records") else \
            "bad" if e.get("rcode") not in ("NOERROR", "NXDOMAIN") else "neg"
        asker = self._asker()
        self._arrow(self.resolver - 6, asker, y, category)
        reason = _clean(e.get("reason") or "")
        detail = reason or _records_brief(_done_records(e)) or _records_brief([_clean(a) for a in e.get("authority") or []])
        self._labels(row, asker, self.resolver, _done_label(e), detail, category, to_edge=False)
        return f"answer c-{category}", _step_text(e)

    def _asker(self) -> float:
        """Where the resolver's question comes from: the client, or the last caching level that missed."""
        for row in self.l.rows:
            e = row.event
            if row.kind == "level" and e.get("result") == "miss" and e.get("next"):
                nxt = self.l.by_key.get(f"level:{_clean(e.get('next'))}")
                if nxt is None:   # it asked a resolver
                    lane = self.l.by_key.get(f"level:{_clean(e.get('level'))}")
                    if lane is not None:
                        return lane.x
        return self.client

    def _level_x(self, name: Any) -> float:
        """A level's lane; a name that is no lane (the lab's resolver, a further resolver) is the resolver's."""
        lane = self.l.by_key.get(f"level:{_clean(name)}")
        return lane.x if lane is not None else self.resolver

    def _draw_level_ask(self, row: _Row) -> tuple[str, str]:
        e = row.event
        x = self._level_x(e.get("level"))
        self._arrow(self.client, x - 6, row.y + 30, "ask")
        self._labels(row, self.client, x, f"{_clean(e.get('name') or '?')} {_clean(e.get('type') or '')}?",
                     f"the client asks {_clean(e.get('level'))}", "ask", to_edge=False)
        return "question level-question", f"The client asks level {_clean(e.get('level'))}."

    def _draw_level(self, row: _Row) -> tuple[str, str]:
        """A caching level's step on its lane: a kept answer as a badge, a miss as the question passed on."""
        e = row.event
        result = re.sub(r"[^a-z]", "", str(e.get("result") or "other").lower()) or "other"
        x = self._level_x(e.get("level"))
        y = row.y + 30
        if result in ("hit", "grace"):
            head = f"{_clean(e.get('level'))}: cache hit" if result == "hit" else f"{_clean(e.get('level'))}: grace"
            text = f"kept {_num(e.get('ttl'))} s more" if result == "hit" else "served while fetched again"
            self._badge(row, x + 12, LEVEL_GAP - 40, (x + 5, x + 12), head, text)
        elif result == "answered":
            category = "ok" if e.get("rcode") == "NOERROR" and e.get("records") else "neg"
            self._arrow(x - 6, self.client, y, category)
            ttl = f", TTL {_num(e.get('ttl'))}" if e.get("ttl") is not None else ""
            self._labels(row, self.client, x, f"{_clean(e.get('rcode'))}{ttl}",
                         _records_brief([_clean(r) for r in e.get("records") or []]), category, to_edge=False)
        elif e.get("next"):
            target = self._level_x(e.get("next"))
            down = result == "down"
            self._arrow(x + 6, target - 6, y, "bad" if down else "ask", dashed=down, cross=down)
            label = f"{_clean(e.get('next'))} does not answer" if down else f"miss: asks {_clean(e.get('next'))}"
            self._labels(row, x, target, label, _clean(e.get("next_address") or ""), "bad" if down else "ask",
                         to_edge=False)
        else:
            self.svg.text(x + 14, y, "miss, and no upstream answers", "label t-bad", size=12)
        look = {"hit": " cache cache-hit", "grace": " cache cache-expired"}.get(result, "")  # the cache badges' colours
        return f"level level-{result}{look}", _step_text(e)

    def _draw_cache(self, row: _Row) -> tuple[str, str]:
        e = row.event
        result = re.sub(r"[^a-z]", "", str(e.get("result") or "other").lower()) or "other"
        head, what = _cache_label(e)
        right = self.resolver - 10
        levels = [lane.x for lane in self.l.lanes if lane.role == "level"]
        left = (levels[-1] + 40 if levels else self.client + 34) + 16 * max(0, row.depth - 1)
        self._badge(row, left, right - left, (right, self.resolver - 5), head, what)
        return f"cache cache-{result}", _step_text(e)

    def _badge(self, row: _Row, left: float, w: float, link: tuple[float, float], head: str, text: str) -> None:
        """A two-line rounded badge joined to the resolver's lifeline by a dotted link (x from, x to)."""
        top = row.y + 6
        middle = top + (row.height - 12) / 2
        svg = self.svg
        svg.add(f'<rect x="{left:.1f}" y="{top:.1f}" width="{w:.1f}" height="{row.height - 12:.1f}" rx="6" '
                f'class="badge"/>')
        svg.add(f'<line x1="{link[0]:.1f}" y1="{middle:.1f}" x2="{link[1]:.1f}" y2="{middle:.1f}" '
                f'class="badge-link"/>')
        svg.text(left + 9, top + 14, head, "badge-head", size=11.5, max_px=w - 16)
        svg.text(left + 9, top + 29, text, "badge-name", size=11, max_px=w - 16)

    def _draw_dnssec(self, row: _Row) -> tuple[str, str]:
        """A chain-of-trust link as a badge right of the resolver: green secure, amber insecure, red bogus."""
        e = row.event
        security = re.sub(r"[^a-z]", "", str(e.get("security") or "other").lower()) or "other"
        head, detail = _dnssec_label(e)
        left = self.resolver + 12
        self._badge(row, left, min(560.0, self.l.width - left - 20), (self.resolver + 5, left), head, detail)
        return f"dnssec dnssec-{security}", _step_text(e)

    def _draw_note(self, row: _Row) -> tuple[str, str]:
        e = row.event
        kind = _kind(e)
        if kind == "delegation":
            source = {"hints": "root hints (priming first)", "cache": "the cache"}.get(
                str(e.get("source")), _clean(e.get("source")))
            servers = ", ".join(_clean(s) for s in e.get("servers") or [])
            text = f"start at zone {_clean(e.get('zone'))}, known from {source}: {servers}"
        elif kind == "choose":
            text = f"chose {_clean(e.get('server'))} {_clean(e.get('address'))}: {_choice_text(e)}"
        else:
            text = _step_text(e)
        x = self.resolver + 14
        self.svg.add(f'<circle cx="{self.resolver:.1f}" cy="{row.y + row.height / 2:.1f}" r="3.5" class="note-dot"/>')
        self.svg.text(x, row.y + row.height / 2 + 4, text, "note", size=11, max_px=self.l.width - x - 20)
        return f"note note-{_esc(kind)}", _step_text(e)

    def _draw_query(self, row: _Row) -> tuple[str, str]:
        e = row.event
        x2 = self._server_x(row)
        self._arrow(self.resolver + 5 + 4 * row.depth, x2 - 5, row.y + 30, "q")
        self._labels(row, self.resolver, x2, _query_label(e), _query_detail(e, row.extra.get("choice")), "q")
        cls = "query tcp" if e.get("tcp") else "query"
        if row.index in self.l.failed_queries:
            cls += " unanswered"
        tip = _step_text(e)
        if row.extra.get("choice"):
            tip = _step_text(row.extra["choice"]) + "\n" + tip
        return cls, tip

    def _draw_reply(self, row: _Row) -> tuple[str, str]:
        e = row.event
        x1 = self._server_x(row)
        category = _reply_category(str(e.get("meaning") or ""))
        self._arrow(x1 - 5, self.resolver + 5 + 4 * row.depth, row.y + 30, category)
        self._labels(row, self.resolver, x1, _reply_label(e), _reply_detail(e), category)
        return f"reply m-{category}", _reply_full(e)

    def _draw_failed(self, row: _Row) -> tuple[str, str]:
        e = row.event
        x1 = self._server_x(row)
        after_reply = row.index in self.l.after_reply
        self._arrow(x1 - 5, self.resolver + 5 + 4 * row.depth, row.y + 30, "bad", dashed=True, cross=True)
        who = f"{_clean(e.get('server') or '?')} {_clean(e.get('address') or '')}".strip()
        following = self.l.next_tries.get(row.index, False)
        then = "" if following is False else f"; {_after_failure(e, following, short=True)}"  # type: ignore[arg-type]
        self._labels(row, self.resolver, x1, "× " + _failed_label(e, after_reply),
                     f"nothing usable from {who}{then}", "bad")
        return "failed", _step_text(e, after_reply, following)

    def _draw_restart(self, row: _Row) -> tuple[str, str]:
        e = row.event
        y = row.y + row.height / 2
        inset = 16 * max(0, row.depth - 1)
        x0, x1 = self.client + 30 + inset, self.l.width - 16 - inset
        via = _clean(e.get("via") or "CNAME")
        text = f"{via} restart: {_clean(e.get('name'))} -> {_clean(e.get('target'))}, the walk starts again"
        self.svg.add(f'<line x1="{x0:.1f}" y1="{y:.1f}" x2="{x1:.1f}" y2="{y:.1f}" class="restart-line"/>')
        w = min(x1 - x0 - 40, _width(text) * 12 * MONO + 24)
        left = self.resolver + 14
        if left + w > x1 - 10:
            left = x0 + 20
        self.svg.add(f'<rect x="{left:.1f}" y="{y - 11:.1f}" width="{w:.1f}" height="22" rx="11" class="restart-chip"/>')
        self.svg.text(left + 12, y + 4, text, "restart-text", size=12, max_px=w - 20)
        return "restart", _step_text(e)

    def _draw_sub_start(self, row: _Row) -> tuple[str, str]:
        e = row.event
        inset = 16 * max(0, row.depth - 1)
        x = self.client + 40 + inset
        text = f"sub-lookup {_clean(e.get('name'))} {_clean(e.get('type'))}"
        why = _clean(e.get("why") or "")
        if why:
            text += f": {why}"
        self.svg.text(x, row.y + 21, text, "sub-head", size=12, max_px=self.l.width - x - 30 - inset)
        return "sub-start", _step_text(e)

    def _draw_sub_done(self, row: _Row) -> tuple[str, str]:
        e = row.event
        inset = 16 * max(0, row.depth - 1)
        x = self.client + 40 + inset
        ok = e.get("rcode") == "NOERROR" and e.get("records")
        start = next((r for r in self.l.rows if r.kind == "sub-start" and r.depth == row.depth
                      and r.y < row.y), None)
        own = sum(1 for r in self.l.rows if r.kind == "query" and start and start.y < r.y < row.y)
        text = f"sub-lookup done: {_clean(e.get('rcode'))}"
        if e.get("reason"):
            text += f" ({_clean(e.get('reason'))})"
        records = _done_records(e)
        if records:
            text += " · " + _records_brief(records)
        text += f" · {_plural(own, 'query', 'queries')}"
        if start is not None and _t(start.event) is not None and _t(e) is not None:
            text += f" · {ms_text(_t(e) - _t(start.event))} ms"   # type: ignore[operator]
        self.svg.text(x, row.y + 21, text, "sub-head " + ("t-ok" if ok else "t-bad"), size=12,
                      max_px=self.l.width - x - 30 - inset)
        return "sub-done", _step_text(e)

    # The answer in full, and the totals.
    def _footer_lines(self) -> list[tuple[str, str]]:
        done = next((r.event for r in self.l.rows if r.kind == "answer"), None)
        through = _level_answer(self.l.events)
        if done is None and through is not None:   # a caching level answered from its cache
            return [(f"answer {_clean(through.get('rcode'))} through level {_clean(through.get('level'))}, "
                     "from the caching levels: the resolver was not asked", "foot-head"),
                    *[(_clean(r), "foot-line") for r in through.get("records") or []]]
        if done is None:
            return [("The trace ends without an answer to the client.", "foot-head t-bad")]
        queries = sum(1 for e in self.l.events if _kind(e) == "query")
        upstream = done.get("upstream_queries")
        total = _total_ms(self.l.events, done)
        failed = sum(1 for e in self.l.events if _kind(e) == "failed")
        subs = sum(1 for e in self.l.events if _kind(e) == "start" and _depth(e) > 0)
        head = (f"answer {_clean(done.get('rcode'))} in {ms_text(total)} ms · "
                f"{_plural(int(upstream) if isinstance(upstream, (int, float)) else queries, 'upstream query', 'upstream queries')}")
        if subs:
            head += f" · {_plural(subs, 'sub-lookup')}"
        if failed:
            head += f" · {_plural(failed, 'failed try', 'failed tries')}"
        if queries == 0:
            head += " · answered from the cache"
        lines = [(head, "foot-head")]
        if done.get("reason"):
            lines.append((f"reason: {_clean(done.get('reason'))}", "foot-line t-bad"))
        verdict = next((e for e in reversed(self.l.events) if _kind(e) == "dnssec" and e.get("step") == "verdict"
                        and _depth(e) == 0), None)
        if verdict is not None and verdict.get("security") == "bogus":
            lines.append((f"DNSSEC bogus: the client gets SERVFAIL instead ({_clean(verdict.get('detail'))})",
                          "foot-line t-bad"))
        elif verdict is not None:
            lines.append((f"DNSSEC {_clean(verdict.get('security'))}", "foot-line"))
        records = _done_records(done)
        authority = [_clean(a) for a in done.get("authority") or []]
        shown = records[:12]
        lines += [(r, "foot-line") for r in shown]
        if len(records) > len(shown):
            lines.append((f"… and {len(records) - len(shown)} more records", "foot-line"))
        lines += [(f"authority: {a}", "foot-line") for a in authority[:4]]
        return lines

    def _footer(self, lines: list[tuple[str, str]], top: float) -> None:
        if not lines:
            return
        svg = self.svg
        x0, x1 = self.client - 60, self.l.width - 12
        height = len(lines) * FOOT_LINE + 16
        svg.add(f'<g class="summary" data-summary="1"><rect x="{x0:.1f}" y="{top:.1f}" width="{x1 - x0:.1f}" '
                f'height="{height:.1f}" rx="8" class="foot-box"/>')
        for i, (content, cls) in enumerate(lines):
            svg.text(x0 + 14, top + 21 + i * FOOT_LINE, content, cls, size=12, max_px=x1 - x0 - 28)
        svg.add("</g>")


def _total_ms(events: list[dict[str, Any]], done: dict[str, Any]) -> float:
    """The recorder's total_ms when it gave one, else the time of the last event."""
    total = done.get("total_ms")
    try:
        if total is not None and float(total) > 0:
            return float(total)
    except (TypeError, ValueError):
        pass
    times = [t for t in (_t(e) for e in events) if t is not None]
    return max(times, default=0.0)


# --- the page ---------------------------------------------------------------------------------

_CSS = """
:root { color-scheme: light; }
body { margin: 0; background: #ffffff; color: #1f2937;
  font: 15px/1.45 system-ui, -apple-system, "Segoe UI", "DejaVu Sans", "Liberation Sans", sans-serif; }
main { padding: 14px 20px 28px; }
h1 { font-size: 20px; margin: 0 0 2px; }
.summary { margin: 0 0 8px; color: #374151; }
.summary b { color: #111827; }
.legend { display: flex; flex-wrap: wrap; gap: 4px 18px; list-style: none; padding: 0; margin: 0 0 8px;
  font-size: 13px; color: #374151; }
.legend li { display: flex; align-items: center; gap: 6px; }
figure { margin: 0; }
figure svg { display: block; max-width: 100%; height: auto; }
details { margin-top: 14px; font-size: 14px; }
details ol { font-family: "DejaVu Sans Mono", Menlo, Consolas, "Liberation Mono", monospace; font-size: 12.5px; }
svg text { font-family: "DejaVu Sans Mono", Menlo, Consolas, "Liberation Mono", monospace; fill: #1f2937;
  paint-order: stroke; stroke: var(--halo, #ffffff); stroke-width: 4px; stroke-linejoin: round; }
svg .group-label { font-family: system-ui, "DejaVu Sans", sans-serif; font-weight: 600; fill: #374151; stroke: none; }
.group { fill: #f3f4f6; }
.g-root { fill: #ede9fe; } .g-tld { fill: #e0f2fe; } .g-auth { fill: #dcfce7; }
.gl-root { fill: #4c1d95 !important; } .gl-tld { fill: #075985 !important; } .gl-auth { fill: #14532d !important; }
.lane-box { fill: #f9fafb; stroke: #9ca3af; stroke-width: 1; }
.box-root { fill: #f5f3ff; stroke: #7c3aed; } .box-tld { fill: #f0f9ff; stroke: #0284c7; }
.box-auth { fill: #f0fdf4; stroke: #16a34a; } .resolver-box { fill: #fffbeb; stroke: #d97706; }
.lane-name { font-weight: 700; stroke: none; }
.lane-addr { fill: #374151; stroke: none; }
.lane-sub { fill: #4b5563; stroke: none; }
.lane-role { font-weight: 700; stroke: none; }
.r-root { fill: #5b21b6; } .r-tld { fill: #075985; } .r-auth { fill: #166534; }
.lifeline { stroke: #9ca3af; stroke-width: 1.2; stroke-dasharray: 4 4; }
.lane-resolver .lifeline { stroke: #b45309; stroke-dasharray: none; stroke-width: 1.5; }
.cache-line { stroke: #d6b98c !important; stroke-dasharray: 2 4 !important; }
.time { fill: #4b5563; stroke: none; }
.time-head { fill: #4b5563; stroke: none; font-weight: 700; }
.band-rect { stroke: #e0b65a; stroke-width: 1; stroke-dasharray: 5 3; }
.activation { fill: #fde68a; stroke: #b45309; stroke-width: 1; }
.act-1 { fill: #fcd34d; } .act-2 { fill: #fbbf24; }
.server-act { fill: #e5e7eb; stroke: #6b7280; stroke-width: 1; }
.failed-act { fill: #fee2e2; stroke: #b91c1c; stroke-dasharray: 3 2; }
.line { stroke-width: 1.8; fill: none; }
.cross { stroke-width: 2.6; fill: none; stroke-linecap: round; }
.c-q { stroke: #1e3a8a; } .c-ok { stroke: #15803d; } .c-ref { stroke: #1d4ed8; } .c-chain { stroke: #7e22ce; }
.c-neg { stroke: #b45309; } .c-warn { stroke: #a16207; } .c-bad { stroke: #b91c1c; } .c-ask { stroke: #374151; }
.label { font-weight: 700; }
.t-q { fill: #1e3a8a; } .t-ok { fill: #15803d; } .t-ref { fill: #1d4ed8; } .t-chain { fill: #7e22ce; }
.t-neg { fill: #b45309; } .t-warn { fill: #a16207; } .t-bad { fill: #b91c1c; } .t-ask { fill: #111827; }
.detail { fill: #4b5563; }
.note { fill: #4b5563; font-style: italic; }
.note-dot { fill: #b45309; }
.badge { stroke-width: 1.2; }
.badge-link { stroke: #9ca3af; stroke-width: 1; stroke-dasharray: 2 2; }
.badge-head { font-weight: 700; stroke: none; }
.badge-name { stroke: none; }
.cache-hit .badge { fill: #dcfce7; stroke: #15803d; } .cache-hit text { fill: #14532d; }
.cache-miss .badge { fill: #f3f4f6; stroke: #6b7280; } .cache-miss text { fill: #374151; }
.cache-expired .badge { fill: #fef3c7; stroke: #b45309; } .cache-expired text { fill: #78350f; }
.cache-negative .badge { fill: #ede9fe; stroke: #6d28d9; } .cache-negative text { fill: #4c1d95; }
.cache-servfail .badge { fill: #fee2e2; stroke: #b91c1c; } .cache-servfail text { fill: #7f1d1d; }
.dnssec-secure .badge { fill: #dcfce7; stroke: #15803d; } .dnssec-secure text { fill: #14532d; }
.dnssec-insecure .badge { fill: #fef3c7; stroke: #b45309; } .dnssec-insecure text { fill: #78350f; }
.dnssec-bogus .badge { fill: #fee2e2; stroke: #b91c1c; stroke-width: 2; } .dnssec-bogus text { fill: #7f1d1d; }
.dnssec-indeterminate .badge { fill: #f3f4f6; stroke: #6b7280; } .dnssec-indeterminate text { fill: #374151; }
.restart-line { stroke: #7e22ce; stroke-width: 1.5; stroke-dasharray: 8 4; }
.restart-chip { fill: #f3e8ff; stroke: #7e22ce; stroke-width: 1.2; }
.restart-text { font-weight: 700; fill: #581c87; stroke: none; }
.sub-head { font-weight: 700; fill: #78350f; }
.sub-head.t-ok { fill: #14532d; } .sub-head.t-bad { fill: #991b1b; }
.foot-box { fill: #f9fafb; stroke: #9ca3af; }
.foot-head { font-weight: 700; stroke: none; }
.foot-line { stroke: none; }
.ev { transition: opacity .12s; }
.tcp .line { stroke-width: 3.2; }
.ev:hover .line, .ev:hover .cross { stroke-width: 3; }
.diagram:has(.ev:hover) .ev:not(:hover) { opacity: .45; }
"""

_LEGEND = [
    ('<line x1="2" y1="8" x2="30" y2="8" stroke="#1e3a8a" stroke-width="2"/><path d="M24,3 L32,8 L24,13z" '
     'fill="#1e3a8a"/>', "query"),
    ('<line x1="2" y1="8" x2="30" y2="8" stroke="#1d4ed8" stroke-width="2"/><path d="M24,3 L32,8 L24,13z" '
     'fill="#1d4ed8"/>', "referral"),
    ('<line x1="2" y1="8" x2="30" y2="8" stroke="#15803d" stroke-width="2"/><path d="M24,3 L32,8 L24,13z" '
     'fill="#15803d"/>', "answer"),
    ('<line x1="2" y1="8" x2="30" y2="8" stroke="#7e22ce" stroke-width="2"/><path d="M24,3 L32,8 L24,13z" '
     'fill="#7e22ce"/>', "CNAME"),
    ('<line x1="2" y1="8" x2="30" y2="8" stroke="#b45309" stroke-width="2"/><path d="M24,3 L32,8 L24,13z" '
     'fill="#b45309"/>', "NXDOMAIN / NODATA"),
    ('<line x1="2" y1="8" x2="24" y2="8" stroke="#b91c1c" stroke-width="2" stroke-dasharray="5 3"/>'
     '<path d="M24,3 L32,13 M24,13 L32,3" stroke="#b91c1c" stroke-width="2.4"/>', "failed try"),
    ('<rect x="1" y="2" width="32" height="12" rx="3" fill="#dcfce7" stroke="#15803d"/>', "cache hit"),
    ('<rect x="1" y="2" width="32" height="12" rx="3" fill="#f3f4f6" stroke="#6b7280"/>', "cache miss"),
    ('<rect x="1" y="2" width="32" height="12" rx="3" fill="#fdf3dc" stroke="#e0b65a" stroke-dasharray="4 2"/>',
     "sub-lookup"),
]


def _pair_css(layout: _Layout) -> str:
    """Hovering a query also lights up its reply or failure, and the other way round."""
    tries = sorted({i for i, row in enumerate(layout.rows) if row.kind == "query"})
    return "".join(f'.diagram:has(.ev[data-try="{i}"]:hover) .ev.ev[data-try="{i}"] {{ opacity: 1; }}\n'
                   for i in tries)


def render_html(events: list[dict[str, Any]], title: str) -> str:
    """One self-contained HTML page drawing the trace as a sequence diagram."""
    layout = _Layout(list(events))
    body, height = _Painter(layout).paint()
    width = layout.width
    question = next((e for e in layout.events if _kind(e) in ("start", "level") and _depth(e) == 0), {})
    done = next((e for e in layout.events if _kind(e) == "done" and _depth(e) == 0), None)
    through = _level_answer(layout.events)
    asked = f"{_clean(question.get('name') or '?')} {_clean(question.get('type') or '')}".strip()
    queries = sum(1 for e in layout.events if _kind(e) == "query")
    servers = sum(1 for lane in layout.lanes if lane.role in SERVER_ROLES)
    if done is None and through is not None:   # answered by a caching level (dnslab trace --via)
        outcome = (f"{_clean(through.get('rcode'))}, {_plural(len(through.get('records') or []), 'record')} "
                   f"through level {_clean(through.get('level'))}")
    elif done is not None:
        outcome = (f"{_clean(done.get('rcode'))}, {_plural(len(done.get('records') or []), 'record')}, "
                   f"in {ms_text(_total_ms(layout.events, done))} ms")
    else:
        outcome = "no answer in this trace"
    verdict = next((e for e in reversed(layout.events) if _kind(e) == "dnssec" and e.get("step") == "verdict"
                    and _depth(e) == 0), None)
    if verdict is not None and verdict.get("security") == "bogus":
        outcome = "SERVFAIL to the client: DNSSEC validation failed (bogus)"
    elif verdict is not None:
        outcome += f"; DNSSEC {_clean(verdict.get('security'))}"
    if queries:
        asked_whom = (f"{_plural(queries, 'upstream query', 'upstream queries')} to "
                      f"{_plural(servers, 'server')}")
    else:
        asked_whom = "answered from the cache, no upstream query"
    summary_text = f"Lookup of {asked}: {outcome}; {asked_whom}."
    steps, after = [], layout.after_reply
    for index, event in enumerate(layout.events):
        t = _t(event)
        prefix = f"[{_num(t)} ms] " if t is not None else ""
        indent = "  " * _depth(event)
        steps.append(f"{indent}{prefix}{_step_text(event, index in after, layout.next_tries.get(index, False))}")
    desc = summary_text + " Steps:\n" + "\n".join(steps)
    svg = (f'<svg class="diagram" role="img" aria-label="{_esc("Sequence diagram. " + summary_text)}" '
           f'aria-labelledby="trace-title" aria-describedby="trace-desc" width="{width:.0f}" height="{height:.0f}" '
           f'viewBox="0 0 {width:.0f} {height:.0f}">'
           f'<title id="trace-title">{_esc(title)}</title><desc id="trace-desc">{_esc(desc)}</desc>'
           f'<rect width="100%" height="100%" fill="#ffffff"/>{body}</svg>')
    legend = "".join(f'<li><svg width="34" height="16" viewBox="0 0 34 16" aria-hidden="true">{icon}</svg>'
                     f'{_esc(label)}</li>' for icon, label in _LEGEND)
    items = "".join(f"<li>{_esc(step.strip())}</li>" for step in steps)
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">\n"
        f"<title>{_esc(title)}</title>\n<style>{_CSS}{_pair_css(layout)}</style>\n</head>\n<body>\n<main>\n"
        f"<h1>{_esc(title)}</h1>\n"
        f'<p class="summary">{_esc(summary_text)} Hover an arrow for every detail.</p>\n'
        f'<ul class="legend" aria-label="legend">{legend}</ul>\n'
        f"<figure>{svg}</figure>\n"
        f"<details><summary>Every step as text ({_plural(len(steps), 'event')})</summary>\n"
        f"<ol>{items}</ol></details>\n"
        "</main>\n</body>\n</html>\n"
    )
