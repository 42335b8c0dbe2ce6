"""What compare-nsd and compare-unbound share: their zone folders, the frame of a run (a lab per folder,
one after the other), the three kinds of finding they count apart, and the report of them.

Both ask a reference server and dnslab the same questions and sort what they see:
- a difference fails the run;
- an explained difference (a `Rule` says why dnslab differs on purpose, or why the reference server
  is the one off the mark) is reported and counted, not failed;
- a matching failure (both fail alike: silent, or both SERVFAIL) agrees but proves nothing, so it
  fails the run too, unless it is expected (malformed queries; a folder's expect-failure.txt).
A lab that logs an ERROR fails the run whatever it answered.
"""

from __future__ import annotations

import argparse
import functools
import logging
import os
import random
import re
import shutil
import signal
import sys
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dns.name

from dnslab.core.errors import DnslabError
from dnslab.lab.runtime import Lab
from tools.common.lab import SAMPLE_ZONES
from tools.common.logcount import CountingHandler, kinds_text
from tools.common.procs import interrupt_on_sigterm
from tools.common.reference import find_binary, not_installed, version

# The comparisons' own hierarchy (see zones/README.md): the cases the sample lab lacks.
ZONES = Path(__file__).resolve().parent / "zones"
FOLDERS = [SAMPLE_ZONES, ZONES]


def child(name: dns.name.Name, *labels: str) -> dns.name.Name:
    """LABELS... prepended to name (the first label leftmost)."""
    return dns.name.Name(tuple(label.encode() for label in labels) + name.labels)


def upper(name: dns.name.Name) -> dns.name.Name:
    return dns.name.Name(tuple(label.upper() for label in name.labels))


# --- the command line ------------------------------------------------------------------------


def comparison_parser(doc: str, server: str, binary: str, kept: str) -> argparse.ArgumentParser:
    """A comparison's command line (described by the first paragraph of *doc*) with the options both
    have: --zones, --BINARY (the reference server's), --show and --keep (*kept*: what it keeps)."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--zones", type=Path, action="append", default=None, metavar="DIR",
                        help="a folder of *.zone files, each its own lab; repeat for more "
                             "(default: dnslab/zones/ and tools/compare/zones/)")
    parser.add_argument(f"--{binary}", metavar="PATH",
                        help=f"the {binary} binary (default: {binary} on PATH, or /usr/sbin/{binary})")
    parser.add_argument("--show", type=int, default=200, help="print at most this many differences (default: 200)")
    parser.add_argument("--keep", action="store_true", help=f"keep {kept} (printed)")
    return parser


def quiet_when_piped(main: Callable[[list[str] | None], int]) -> Callable[[list[str] | None], int]:
    """*main*, but when the reader of our output is gone (`| head`): status 1 and no traceback."""
    @functools.wraps(main)
    def quiet(argv: list[str] | None = None) -> int:
        try:
            return main(argv)
        except BrokenPipeError:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 1
    return quiet


def new_seed(given: int | None) -> int:
    """The seed given, or a new one (the tools print it, so that a run can be repeated)."""
    return given if given is not None else random.SystemRandom().randrange(1 << 32)


def find_server(tool: str, server: str, binary: str, given: str | None,
                version_flag: str, version_pattern: str) -> tuple[str, str] | None:
    """The reference server's binary and the version it reports; None, said in one line on stderr,
    when it is not there."""
    found = find_binary(binary, given)
    if found is None:
        if given:
            print(f"{tool}: {given} is not an executable {server}", file=sys.stderr)
        else:
            print(f"{tool}: {not_installed(server, binary)}; or give its path with --{binary}", file=sys.stderr)
        return None
    return found, version(found, version_flag, version_pattern) or "?"


def lab_errors() -> CountingHandler:
    """Counts what the lab logs (in this process) from now on; nothing of it is printed as it comes."""
    counter = CountingHandler()
    logging.getLogger("dnslab").addHandler(counter)
    logging.getLogger("dnslab").propagate = False
    return counter


# --- one folder ------------------------------------------------------------------------------


def load_lab(tool: str, folder: Path, port: int, keys_dir: Path, **options: Any) -> Lab | None:
    """The folder's lab (its servers only: the resolver compared, if any, is the tool's own), its
    notes printed; None when it cannot be loaded (said on stderr)."""
    try:
        lab, problems = Lab.from_folder(folder, port=port, with_resolver=False, keys_dir=keys_dir, **options)
    except DnslabError as exc:
        print(f"{tool}: {folder}: {exc}", file=sys.stderr)
        return None
    for problem in problems:
        print(f"note: {problem}")
    return lab


@contextmanager
def work_folder(prefix: str, keep: bool, what: str) -> Iterator[Path]:
    """A temporary folder (keys, configurations, logs) for one folder's run: removed afterwards, or kept
    and said where."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield path
    finally:
        if keep:
            print(f"{what} kept in {path}")
        else:
            shutil.rmtree(path, ignore_errors=True)


@contextmanager
def uninterrupted() -> Iterator[None]:
    """Ctrl-C and SIGTERM ignored meanwhile: a second one must not cut a clean-up short and leave a
    reference server running."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        yield
    finally:
        interrupt_on_sigterm()


def log_problems(path: Path, ignore: str | None = None) -> list[str]:
    """The lines of a reference server's log that say error or warning (but those with *ignore*)."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return []
    return [line for line in text.splitlines()
            if re.search(r"\b(error|warning)\b", line) and (ignore is None or ignore not in line)]


# --- findings ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    """An explained difference: which compared field it explains (None: any), why (one line), and a
    test of the question and both replies saying whether it applies."""

    kind: str | None
    reason: str
    applies: Callable[..., bool]


def explain(rules: Sequence[Rule], kind: str | None, *case: object) -> Rule | None:
    """The first rule for this kind of difference that applies to *case* (question, theirs, ours)."""
    return next((rule for rule in rules if rule.kind in (None, kind) and rule.applies(*case)), None)


@dataclass
class Tally:
    """What comparing found: the questions compared and the findings, each kind apart."""

    count: int = 0
    diffs: list[Any] = field(default_factory=list)
    failures: list[Any] = field(default_factory=list)  # both failed alike, not expected to
    explained: Counter[str] = field(default_factory=Counter)  # by reason
    expected: int = 0  # both failed alike, as a folder's expect-failure.txt says they may
    logged: dict[str, Any] = field(default_factory=dict)  # what the lab logged (CountingHandler.summary)

    def add(self, other: Tally) -> None:
        self.count += other.count
        self.diffs += other.diffs
        self.failures += other.failures
        self.explained.update(other.explained)
        self.expected += other.expected

    def status(self) -> int:
        """The exit status: 1 with a difference, a matching failure or an error the lab logged."""
        return 1 if self.diffs or self.failures or self.logged.get("errors") else 0


def compare_folders(tool: str, folders: list[Path], one: Callable[[Path], Tally | None]) -> Tally | int:
    """Each folder's comparison in turn, added up, with what the lab logged meanwhile; or the exit
    status when one cannot be run (2) or the run is interrupted (130; Ctrl-C or SIGTERM)."""
    interrupt_on_sigterm()
    errors = lab_errors()
    total = Tally()
    try:
        for folder in folders:
            tally = one(folder)
            if tally is None:
                return 2
            total.add(tally)
    except KeyboardInterrupt:
        print(f"{tool}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # our reader is gone: see quiet_when_piped
        raise
    except (DnslabError, RuntimeError, OSError) as exc:
        print(f"{tool}: {exc}", file=sys.stderr)
        return 2
    total.logged = errors.summary()
    return total


def report(total: Tally, show: int, failures_head: str, explained_head: str) -> None:
    """Every difference (up to *show*), the matching failures, the explained differences by reason,
    and the errors the lab logged; the summary line is the tool's."""
    for diff in total.diffs[:show]:
        print(diff)
    if len(total.diffs) > show:
        print(f"... and {len(total.diffs) - show} more (--show N prints more)")
    if total.failures:
        print(failures_head)
        for diff in total.failures[:show]:
            print(diff)
    if total.explained:
        print(f"{explained_head}: {sum(total.explained.values())}")
        for reason, number in total.explained.items():
            print(f"  {number:5d}  {reason}")
    if total.expected:
        print(f"note: {total.expected} expected matching failures (expect-failure.txt)")
    if total.logged.get("errors"):
        print(f"dnslab logged {total.logged['errors']} internal error(s), by kind:\n{kinds_text(total.logged)}")
