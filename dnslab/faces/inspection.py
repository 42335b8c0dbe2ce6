"""The commands that look at a running lab: query, trace, cache, servers, stats.

Each is `function(args, out) -> exit code`, called by the CLI; they talk to
the lab through its control endpoint (or, for `query`, plain DNS) and format
what comes back for people, or as JSON for programs.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any, Callable, TextIO

from dnslab.lab import fault_kinds
from dnslab.lab.control import ControlClient, find_lab, running_labs
from dnslab.core.errors import DnslabError
from dnslab.core.events import ms_text
from dnslab.faces.trace import TextRenderer
from dnslab.faces.level_inspection import cmd_levels, level_address, print_level_stats


def _client(args: argparse.Namespace) -> ControlClient:
    """A client for the lab the command names with --port, else the only one running."""
    return ControlClient(find_lab(args.port))


def cmd_query(args: argparse.Namespace, out: TextIO) -> int:
    from dnslab.services.query import format_dig, parse_query_args, send_query, to_json

    name, rdtype, server = parse_query_args(args.words)
    port = args.port
    if getattr(args, "via", None):
        if server is not None:
            raise DnslabError("give either @SERVER or --via LEVEL, not both")
        via = find_lab(port)
        server, port = level_address(via, args.via), via.port
    if server is None or port is None:
        try:
            state = find_lab(port)
        except DnslabError:
            if server is None or running_labs():  # several labs: which port is meant?
                raise
            state = None
        if server is None:
            assert state is not None
            if state.resolver_address is None:
                raise DnslabError("the running lab has no resolver (started with --no-resolver): "
                                  "give a server, e.g. @127.0.1.1")
            server = state.resolver_address
        if port is None:
            port = state.port if state is not None else 53
    result = send_query(name, rdtype, server, port, tcp=args.tcp, recurse=not args.norecurse,
                        timeout=args.timeout, dnssec=args.dnssec, checking_disabled=args.cd)
    if args.json:
        print(json.dumps(to_json(result), indent=2), file=out)
    else:
        out.write(format_dig(result))
    return 0


def cmd_trace(args: argparse.Namespace, out: TextIO) -> int:
    renderer = TextRenderer(colour=out.isatty() and not args.json)
    events: list[dict[str, Any]] = []

    def show(event: dict[str, Any]) -> None:
        events.append(event)
        if args.json:
            print(json.dumps(event), file=out, flush=True)
            return
        line = renderer.line(event)
        if line is not None:
            print(line, file=out, flush=True)

    if not args.json:
        through = f"level {args.via}" if args.via else "the lab's resolver"
        print(f";; tracing {args.name} {args.type.upper()} through {through}"
              f"{' with an empty private cache' if args.cold else ''}", file=out, flush=True)
    if args.via and args.cold:
        raise DnslabError("--cold traces the resolver alone; leave out --via (or --cold)")
    _client(args).call("trace", {"name": args.name, "type": args.type, "cold": args.cold, "via": args.via},
                       on_event=show)
    if args.html is not None:
        from dnslab.faces.trace_html import render_html

        title = f"dnslab trace: {args.name} {args.type.upper()}"
        try:
            args.html.write_text(render_html(events, title), encoding="utf-8")
        except OSError as exc:
            raise DnslabError(f"cannot write {args.html}: {exc.strerror or exc}") from None
        print(f";; picture written to {args.html}", file=sys.stderr)
    return 0


def cmd_cache(args: argparse.Namespace, out: TextIO) -> int:
    client = _client(args)
    if args.cache_command == "flush":
        replies = client.call_all("cache.flush", {"name": args.name, "tree": args.tree, "level": args.level})
        what = args.name + (" and below" if args.tree else "") if args.name else "everything"
        if replies and "program" in replies[0]:  # a real resolver (--resolver unbound): its own words
            print(f"{replies[0]['program']}: flushed {what} ({replies[0]['said'] or 'ok'})", file=out)
            return 0
        result = {"flushed": sum(r["flushed"] for r in replies)}
        print(f"flushed {result['flushed']} entr{'y' if result['flushed'] == 1 else 'ies'} ({what})", file=out)
        return 0
    result = client.call("cache.show", {"name": args.name, "level": args.level})
    if args.json:
        print(json.dumps(result, indent=2), file=out)
        return 0
    rows = [("NAME", "TYPE", "KIND", "TTL", "OF", "RANK", "FROM", "DATA")]
    for entry in result["entries"]:
        data = [record.split(None, 4)[-1] for record in entry["records"]] or ["-"]
        kind = entry["kind"] + (" (stale)" if entry["stale"] else "")
        for index, item in enumerate(data):
            first = index == 0
            rows.append((entry["name"] if first else "", entry["type"] if first else "", kind if first else "",
                         str(entry["remaining"]) if first else "", str(entry["original_ttl"]) if first else "",
                         (entry["rank"] or "-") if first else "", (entry["source"] or "-") if first else "", item))
    _table(rows, out)
    print(f"{len(result['entries'])} entries shown, {result['size']} held", file=out)
    return 0


def cmd_servers(args: argparse.Namespace, out: TextIO) -> int:
    result = _client(args).call("servers")
    if args.json:
        print(json.dumps(result, indent=2), file=out)
        return 0
    rows = [("ADDRESS", "NAME", "SRTT", "TIMEOUT", "TIMEOUTS", "STATE", "LAME FOR")]
    anycast = any(server.get("site") for server in result["servers"])
    if anycast:
        rows[0] += ("SITE",)
    for server in result["servers"]:
        state = {"closed": "ok", "half-open": "probing"}.get(server["state"], server["state"])
        if server["held_for_s"] is not None:
            state = f"held down {server['held_for_s']:g} s more"
        srtt = _srtt_text(server)
        rows.append((server["address"], ", ".join(server["names"]) or "-", srtt, f"{ms_text(server['timeout_ms'])} ms",
                     str(server["timeouts"]), state,
                     ", ".join(f"{m['zone']} ({m['left_s']:g} s more)" for m in server["lame"]) or "-")
                    + ((server.get("site") or "-",) if anycast else ()))
    _table(rows, out)
    secondaries = result.get("secondaries") or []
    if secondaries:
        print("\nSecondaries (lab.toml [primaries]):", file=out)
        rows = [("ZONE", "SECONDARY", "PRIMARY", "SERIAL", "STATE", "NEXT CHECK", "EXPIRES IN", "LAST ERROR")]
        for copy in secondaries:
            rows.append((copy["zone"], copy["address"], copy["primary"], str(copy["serial"] or "-"), copy["state"],
                         f"{copy['next_check_in']:.0f} s",
                         "-" if copy["expires_in"] is None else f"{copy['expires_in']:.0f} s",
                         copy["error"] or "-"))
        _table(rows, out)
    return 0


def _srtt_text(server: dict[str, Any]) -> str:
    """The SRTT cell: a server asked but never heard from (timeouts, unreachable) is not "untried"."""
    if server["srtt_ms"] is not None:
        return f"{ms_text(server['srtt_ms'])} ms"
    return "no reply yet" if server["timeouts"] or server.get("last_failure") else "untried"


def _summed(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Counters of all workers added up (uptime: the longest)."""
    total: dict[str, Any] = {}
    for result in results:
        for key, value in result.items():
            if isinstance(value, dict):
                merged = total.setdefault(key, {})
                for name, count in value.items():
                    merged[name] = merged.get(name, 0) + count
            elif key == "uptime_s":
                total[key] = max(total.get(key, 0), value)
            else:
                total[key] = total.get(key, 0) + value
    return total


def cmd_stats(args: argparse.Namespace, out: TextIO) -> int:
    if args.level:
        result = _summed(_client(args).call_all("stats", {"level": args.level}))
        if args.json:
            print(json.dumps(result, indent=2), file=out)
        else:
            for key, value in result.items():
                print(f"{key:<18} {value}", file=out)
        return 0
    results = _client(args).call_all("stats")
    result = _summed(results)
    result["workers"] = len(results)
    if args.json:
        print(json.dumps(result, indent=2), file=out)
        return 0
    for key in ("queries", "cache_hits", "cache_misses", "cache_expired", "upstream_queries", "merged_queries",
                "timeouts", "network_errors", "failovers", "servfails", "secure", "bogus", "cache_entries",
                "uptime_s", "workers"):
        if key in result:
            print(f"{key:<18} {result[key]}", file=out)
    for key in ("by_type", "by_rcode"):
        counts = ", ".join(f"{name} {count}" for name, count in sorted(result[key].items())) or "-"
        print(f"{key:<18} {counts}", file=out)
    print_level_stats(_client(args), out)
    return 0


def cmd_fault(args: argparse.Namespace, out: TextIO) -> int:
    select = fault_kinds.selector(args.select_names, args.select_types, args.every, args.pct)
    fault_kinds.check_selectable(fault_kinds.lookup(args.kind), select)  # said before the lab is asked
    fields = {"select": select.to_fields()} if select is not None else {}
    result = _client(args).call_all("fault", {"server": args.server, "kind": args.kind,
                                              **fault_kinds.to_fields(args.args), **fields})[0]
    print(f"{result['server']}: {', '.join(result['faults']) or 'no faults'}", file=out)
    return 0


def cmd_faults(args: argparse.Namespace, out: TextIO) -> int:
    faults = _client(args).call("faults")["faults"]
    for address, kinds in faults.items():
        print(f"{address}: {', '.join(kinds)}", file=out)
    if not faults:
        print("no faults in force", file=out)
    return 0


def cmd_queries(args: argparse.Namespace, out: TextIO) -> int:
    results = _client(args).call_all("queries", {"server": args.server, "reset": args.reset})
    counts: dict[tuple[str, str], int] = {}
    for result in results:  # every worker process answers a share of the queries
        for row in result["queries"]:
            counts[row["name"], row["type"]] = counts.get((row["name"], row["type"]), 0) + row["count"]
    for (name, rdtype), count in sorted(counts.items()):
        print(f"{count:6d}  {name} {rdtype}", file=out)
    print(f"{sum(counts.values()):6d}  queries received by {results[0]['server']}", file=out)
    sites: dict[str, int] = {}
    for result in results:
        for site, count in result.get("sites", {}).items():
            sites[site] = sites.get(site, 0) + count
    if sites:  # an anycast address: which of its sites the queries reached
        print("by site: " + ", ".join(f"{site} {count}" for site, count in sites.items()), file=out)
    return 0


def cmd_endpoints(args: argparse.Namespace, out: TextIO) -> int:
    """Every steered name: its policy, its endpoints' health, and its last answer with the reason."""
    steered = _client(args).call("endpoints")["steered"]
    if args.json:
        print(json.dumps(steered, indent=2), file=out)
        return 0
    if not steered:
        print("no steered names (lab.toml has no [steering])", file=out)
        return 0
    for rule in steered:
        print(f"{rule['name']} {rule['type']}  {rule['policy']}, TTL {rule['ttl']} s, checks every "
              f"{rule['interval_s']:g} s, {rule['threshold']} in a row to change", file=out)
        rows = [("  ENDPOINT", "HEALTH", "SINCE", "WEIGHT", "LOCATION", "CHECK")]
        for endpoint in rule["endpoints"]:
            health = "healthy" if endpoint["healthy"] else "unhealthy"
            if endpoint["observed_up"] != endpoint["healthy"]:
                health += f" ({'up' if endpoint['observed_up'] else 'down'} now)"
            rows.append((f"  {endpoint['address']}", health, f"{endpoint['since_s']:g} s",
                         f"{endpoint['weight']:g}", endpoint["location"] or "-", endpoint["check"]))
        _table(rows, out)
        last = rule["last"]
        if last is not None:
            print(f"  last answer: {' '.join(last['answer'])}: {last['why']}", file=out)
    return 0


def cmd_endpoint(args: argparse.Namespace, out: TextIO) -> int:
    _client(args).call_all("endpoint", {"address": args.address, "state": args.state})
    print(f"{args.address}: {args.state} (health checks see it from their next check on)", file=out)
    return 0


def cmd_record(args: argparse.Namespace, out: TextIO) -> int:
    if args.record_command in ("set", "add"):
        # The rest of the line is one record's data, as in a zone file: "10 mail.example.com.".
        result = _client(args).call_all("record.set", {"name": args.name, "type": args.type,
                                                       "values": [" ".join(args.data)], "ttl": args.ttl,
                                                       "zone": args.zone, "add": args.record_command == "add"})[0]
    else:
        result = _client(args).call_all("record.delete", {"name": args.name, "type": args.type,
                                                          "zone": args.zone})[0]
    print(f"zone {result['zone']} now at serial {result['serial']}", file=out)
    _print_servers_changed(result, out)
    return 0


def cmd_reload(args: argparse.Namespace, out: TextIO) -> int:
    result = _client(args).call_all("reload")[0]
    reloaded = result["reloaded"]
    print(f"reloaded {len(reloaded)} zone(s): {' '.join(reloaded)}", file=out)
    for key, what in (("added", "new zone(s)"), ("removed", "zone(s) no longer served")):
        if result.get(key):
            print(f"{what}: {' '.join(result[key])}", file=out)
    dropped = result.get("dropped", 0)
    if dropped:
        print(f"dropped {dropped} change(s) made with 'dnslab record' since the lab started or last reloaded: "
              "the zone files do not have them", file=out)
    _print_servers_changed(result, out)
    return 0


def _print_servers_changed(result: dict[str, Any], out: TextIO) -> None:
    """The servers a change started or stopped, and what it left unserved: never silently."""
    for key in ("started", "stopped"):
        for server in result.get(key, []):
            zones = " ".join(server["zones"]) or "-"
            print(f"{key} server {server['address']} ({', '.join(server['names'])}): {zones}", file=out)
    for warning in result.get("warnings", []):
        print(f"warning: {warning}", file=out)


def cmd_clock(args: argparse.Namespace, out: TextIO) -> int:
    client = _client(args)
    if args.action == "advance":
        if args.seconds is None:
            raise DnslabError("dnslab clock advance SECONDS")
        result = client.call_all("clock.advance", {"seconds": args.seconds})[0]
    else:
        result = client.call("clock")
    print(clock_text(result), file=out)
    return 0


def clock_text(status: dict[str, Any]) -> str:
    """`dnslab clock`: lab time since the start, whether the clock is fake and how far it was moved, the lab date."""
    since = f"{status['since_start_s']:g} s since the lab started"
    date = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(status["wall"]))
    if not status["fake"]:
        head = f"lab clock: real time, {since} (dnslab up --fake-clock gives a clock you can move)"
        return head + "\n" + f"lab date:  {date}"
    head = (f"lab clock: fake (dnslab up --fake-clock), {since}; it moves only by 'dnslab clock advance' "
            f"(advanced {status['advanced_s']:g} s in all); network timeouts stay real")
    text = head + "\n" + f"lab date:  {date} (real start time + the advance: DNSSEC signatures are checked against it)"
    if status.get("outside"):
        text += (f"\nnot in {status['outside']}: the lab's resolver keeps the machine's time (its TTLs, hold-downs "
                 "and signature checks); the lab clock moves the lab's servers only")
    return text


def cmd_web(args: argparse.Namespace, out: TextIO) -> int:
    url = find_lab(args.port).web_url
    if url is None:
        raise DnslabError("the running lab has no web view (it was started with --no-web)")
    print(url, file=out)
    return 0


def _table(rows: list[tuple[str, ...]], out: TextIO) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[-1], file=out)


INSPECT: dict[str, Callable[[argparse.Namespace, TextIO], int]] = {
    "levels": lambda args, out: cmd_levels(args, out, _client(args)),
    "query": cmd_query,
    "trace": cmd_trace,
    "cache": cmd_cache,
    "servers": cmd_servers,
    "stats": cmd_stats,
    "fault": cmd_fault,
    "faults": cmd_faults,
    "queries": cmd_queries,
    "endpoints": cmd_endpoints,
    "endpoint": cmd_endpoint,
    "record": cmd_record,
    "reload": cmd_reload,
    "clock": cmd_clock,
    "web": cmd_web,
}
