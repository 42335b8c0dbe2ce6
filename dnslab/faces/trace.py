"""Trace events rendered for people: one line per step, indented by where in the tree it happens.

A cold walk then reads like the hierarchy itself: the root's exchange at the
left margin, the TLD's one step in, the domain's servers further in, and a
sub-lookup for a glueless name server's address nested below the step that
needed it.  Colour is added only for a terminal.
"""

from __future__ import annotations

from typing import Any

from dnslab.core.events import ms_text

_COLOURS = {"red": "31", "green": "32", "yellow": "33", "blue": "34", "magenta": "35", "cyan": "36",
            "dim": "2", "bold": "1"}
_MEANING_COLOUR = {"answer": "green", "referral": "blue", "cname": "magenta", "nxdomain": "yellow",
                   "nodata": "yellow", "no cut here": "dim", "truncated": "yellow"}


def secondary_note(standing: dict[str, Any]) -> str:
    """What the lab knows of a reply from a secondary: its copy's serial against the primary's."""
    where = f"a secondary of {standing['zone']}, its copy at serial {standing['serial']} ({standing['state']})"
    if standing.get("behind"):
        return f"(stale: {where}, behind its primary's {standing['primary_serial']})"
    return f"({where}, as its primary)"


def _level(event: dict[str, Any]) -> int:
    """Indentation: two steps per sub-lookup depth, one per label of the zone asked."""
    zone = event.get("zone")
    labels = 0 if not zone or zone == "." else zone.rstrip(".").count(".") + 1
    return 2 * int(event.get("depth", 0)) + labels


class TextRenderer:
    """Turns events into lines as they arrive, so a slow trace prints live."""

    def __init__(self, colour: bool = False) -> None:
        self.colour = colour

    def _paint(self, text: str, colour: str) -> str:
        if not self.colour:
            return text
        return f"\x1b[{_COLOURS[colour]}m{text}\x1b[0m"

    def line(self, event: dict[str, Any]) -> str | None:
        kind = event.get("event")
        method = getattr(self, f"_{kind}", None)
        if method is None:
            return None
        body = method(event)
        if body is None:
            return None
        stamp = f"{event.get('t_ms', 0.0):8.1f} ms"
        return f"{self._paint(stamp, 'dim')}  {'  ' * _level(event)}{body}"

    def _start(self, e: dict[str, Any]) -> str:
        if e.get("why"):
            return self._paint(f"sub-lookup: {e['name']} {e['type']} ({e['why']})", "cyan")
        return self._paint(f"lookup {e['name']} {e['type']}", "bold")

    def _cache(self, e: dict[str, Any]) -> str:
        what = f"{e['name']} {e['type']}"
        result = e["result"]
        if result == "hit":
            return self._paint(f"cache hit: {what}, TTL {e['ttl']} of {e['original_ttl']}", "green")
        if result == "negative":
            return self._paint(f"cache hit (negative): {what} is {e['rcode'] if e['rcode'] != 'NOERROR' else 'NODATA'}, "
                               f"TTL {e['ttl']}", "yellow")
        if result == "expired":
            return self._paint(f"cache: {what} expired {e['expired_ago']:g} s ago", "yellow")
        if result == "servfail":
            return self._paint(f"cache: {what} failed recently (SERVFAIL cached)", "red")
        return f"cache miss: {what}"

    def _delegation(self, e: dict[str, Any]) -> str:
        origin = {"cache": "from the cache", "hints": "from the root hints, to prime",
                  "referral": "from the referral"}.get(e["source"], e["source"])
        return f"zone {e['zone']}: servers {', '.join(e['servers'])} ({origin})"

    def _choose(self, e: dict[str, Any]) -> str:
        why = e["reason"]
        if e.get("srtt_ms") is not None:
            why += f", SRTT {ms_text(e['srtt_ms'])} ms"
        if e.get("held_down"):
            why += f"; held down: {', '.join(e['held_down'])}"
        if e.get("lame"):
            why += f"; lame for the zone: {', '.join(e['lame'])}"
        return f"choose {e['server'] or '?'} ({e['address']}): {why}; timeout {ms_text(e['timeout_ms'])} ms"

    def _query(self, e: dict[str, Any]) -> str:
        extra = [e["purpose"]] if e["purpose"] != "resolve" else []
        if e.get("tcp"):
            extra.append("TCP")
        if not e.get("edns"):
            extra.append("no EDNS")
        suffix = f" [{', '.join(extra)}]" if extra else ""
        return f"-> {e['server'] or e['address']}: {e['name']} {e['type']}?{suffix}"

    def _reply(self, e: dict[str, Any]) -> str:
        meaning = e["meaning"]
        flags = " aa" if e.get("aa") else ""
        text = f"<- {e['rcode']}{flags} in {ms_text(e['rtt_ms'])} ms: {meaning}"
        if meaning == "referral":
            text += f" to {e['child_zone']}: NS {', '.join(e['ns'])}"
            text += f"; glue {', '.join(e['glue'])}" if e["glue"] else "; no glue"
        elif meaning == "cname" and e.get("target"):
            text += f" -> {e['target']}"
        if e.get("dropped"):
            text += f" ({e['dropped']} out-of-bailiwick record(s) dropped)"
        if e.get("nsid"):
            text += f" [nsid {e['nsid']}]"  # which server, or which anycast site, answered
        colour = _MEANING_COLOUR.get(meaning.split(":")[0], "red")
        lines = [self._paint(text, colour)]
        if meaning in ("answer", "cname", "nxdomain", "nodata"):
            lines += [f"     {record}" for record in e.get("records", [])]
        if e.get("secondary"):
            lines.append("     " + secondary_note(e["secondary"]))
        return "\n".join([lines[0]] + [" " * 13 + "  " * _level(e) + rest for rest in lines[1:]])

    def _steering(self, e: dict[str, Any]) -> str:
        """The authoritative side's choice for a steered name, printed under the query that asked."""
        where = f" (client at {e['location']}{', ECS ' + e['ecs'] if e.get('ecs') else ''})" if e.get("location") else ""
        return self._paint(f"   steering {e['policy']}: {' '.join(e['answer'])}: {e['why']}{where}", "cyan")

    def _failed(self, e: dict[str, Any]) -> str:
        # Whether another server gets the question is the next step's to say (a `choose`,
        # or the answer's "every name server ... failed"): here it is not known yet.
        after = f" after {ms_text(e['after_ms'])} ms" if e.get("after_ms") else ""
        failure = "network error (unreachable or refused)" if e["failure"] == "network" else e["failure"]
        text = self._paint(f"x  {e['server'] or e['address']} ({e['address']}): {failure}{after}", "red")
        if e.get("secondary"):
            text += "\n" + " " * 13 + "  " * _level(e) + "     " + secondary_note(e["secondary"])
        return text

    def _restart(self, e: dict[str, Any]) -> str:
        return self._paint(f"{e['via']}: {e['name']} -> {e['target']}, restart there", "magenta")

    def _dnssec(self, e: dict[str, Any]) -> str:
        """A link of the chain of trust, a signature or proof checked, or the verdict."""
        colour = {"secure": "green", "insecure": "yellow", "bogus": "red"}.get(e["security"], "dim")
        detail = f": {e['detail']}" if e.get("detail") else ""
        if e["step"] == "verdict":
            outcome = {"secure": " -> AD=1 for clients that ask (DO or AD)",
                       "bogus": " -> the client gets SERVFAIL with this reason (EDE); +cd gets the data",
                       "insecure": " -> no AD: nothing signed to check"}.get(e["security"], "")
            return self._paint(f"DNSSEC {e['security'].upper()}{detail}{outcome}", colour)
        keys = f" key tag {', '.join(str(t) for t in e['key_tags'])}" if e.get("key_tags") else ""
        algorithm = f" {e['algorithm']}" if e.get("algorithm") else ""
        step = {"ds": "DS", "dnskey": "DNSKEY", "rrsig": "RRSIG", "denial": "denial", "insecure": "insecure"}.get(
            e["step"], e["step"])
        return self._paint(f"dnssec {step} {e['name']} {e['type']}{keys}{algorithm}: {e['security']}{detail}", colour)

    def _level(self, e: dict[str, Any]) -> str:
        """A caching level's step (dnslab trace --via): its answer and the time it keeps it, or where it asked."""
        where = f"[{e['level']} {e['address']}]"
        result = e["result"]
        if result == "hit":
            head = f"{where} cache hit: {e['name']} {e['type']}, kept {e['ttl']} s more ({e['policy']})"
            return "\n".join([self._paint(head, "green")] + [f"{' ' * 13}{r}" for r in e.get("records", [])])
        if result == "grace":
            return self._paint(f"{where} expired, in its grace period: served as it is while it is fetched again",
                               "yellow")
        if result == "down":
            return self._paint(f"{where} upstream {e['next']} ({e['next_address']}) does not answer: "
                               "the stub waits out its timeout, then tries the next", "red")
        if result == "miss":
            if e.get("next") is None:
                return self._paint(f"{where} cache miss, and no upstream answers: SERVFAIL", "red")
            return f"{where} cache miss: asks {e['next']} ({e['next_address']})"
        head = f"answer through {e['level']}: {e['rcode']}" + (f", TTL {e['ttl']}" if e.get("ttl") is not None else "")
        return "\n".join([self._paint(head, "bold")] + [f"{' ' * 13}{r}" for r in e.get("records", [])])

    def _done(self, e: dict[str, Any]) -> str | None:
        if e.get("depth", 0) > 0:
            got = ", ".join(record.split()[-1] for record in e["records"]) or e["rcode"]
            return self._paint(f"sub-lookup done: {e['name']} -> {got}", "cyan")
        head = f"answer: {e['rcode']}"
        if e.get("reason"):
            head += f" ({e['reason']})"
        head += f" in {ms_text(e.get('total_ms'))} ms with {e['upstream_queries']} upstream quer"
        head += "y" if e["upstream_queries"] == 1 else "ies"
        body = [f"{' ' * 13}{record}" for record in e["records"] + e["authority"]]
        return "\n".join([self._paint(head, "bold")] + body)
