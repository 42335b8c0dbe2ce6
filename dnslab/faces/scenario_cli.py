"""`dnslab scenario list|run`: the practices of DNS operations as measured experiments."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any, TextIO

from dnslab.core import validate
from dnslab.core.validate import arg
from dnslab.faces.scenario_report import html_report, svg_figure, text_report
from dnslab.lab.scenario.run import run_scenario
from dnslab.lab.scenario.shipped import find, shipped
from dnslab.lab.scenario.spec import MAX_CLIENTS, Scenario, duration_text


def add_parser(commands: Any) -> None:
    scenario = commands.add_parser(
        "scenario", help="run an experiment: clients, a timeline of changes, and what they saw",
        description="Run a scenario file (or a shipped scenario by name) on a fresh lab with a fake clock: "
                    "simulated clients look names up through the lab's resolver with real queries while "
                    "the timeline changes records, endpoints and servers. Prints a timeline table; "
                    "--html, --svg and --json write the charts and the raw series. docs/SCENARIOS.md "
                    "describes the file format and the shipped scenarios.")
    verbs = scenario.add_subparsers(dest="scenario_command", metavar="VERB", required=True)
    verbs.add_parser("list", help="the shipped scenarios")
    run = verbs.add_parser("run", help="run a scenario file or a shipped scenario")
    run.add_argument("scenario", metavar="FILE|NAME", help="a scenario file (TOML) or a shipped scenario's name")
    run.add_argument("--html", type=Path, metavar="OUT", help="also write a self-contained page with the charts")
    run.add_argument("--svg", type=Path, metavar="OUT", help="also write the charts as one SVG picture")
    run.add_argument("--json", action="store_true", help="print the raw series as JSON instead of the table")
    run.add_argument("--seed", type=arg(validate.whole, 0, 2**32 - 1), metavar="N",
                     help="another seed for the clients' timing and the resolver's choices")
    run.add_argument("--clients", type=arg(validate.whole, 1, MAX_CLIENTS), metavar="N",
                     help="scale every client group so the population is about N clients")


def cmd_scenario(args: argparse.Namespace, out: TextIO) -> int:
    if args.scenario_command == "list":
        for item in shipped():
            out.write(f"{item.name:<22} {item.title}  ({item.population} clients, "
                      f"{duration_text(item.duration)}, {len(item.variants)} variant(s))\n")
        return 0
    scenario = adjusted(find(args.scenario), args.seed, args.clients)

    def progress(text: str) -> None:
        print(f"dnslab: {text}", file=sys.stderr, flush=True)

    result = asyncio.run(run_scenario(scenario, progress if sys.stderr.isatty() else None))
    if args.html is not None:
        args.html.write_text(html_report(result), encoding="utf-8")
    if args.svg is not None:
        args.svg.write_text(svg_figure(result), encoding="utf-8")
    if args.json:
        out.write(json.dumps(result.to_json(), indent=1) + "\n")
    else:
        out.write(text_report(result))
    return 0


def adjusted(scenario: Scenario, seed: int | None, clients: int | None) -> Scenario:
    """The scenario with the command line's seed, and its client groups scaled to about *clients*."""
    if seed is not None:
        scenario = replace(scenario, seed=seed)
    if clients is not None:
        total = scenario.population
        groups = tuple(replace(group, count=max(1, round(group.count * clients / total)))
                       for group in scenario.clients)
        scenario = replace(scenario, clients=groups)
    return scenario
