"""How the tools speak: progress lines, plain-text tables, the tail of a child's log."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Callable, TextIO

from dnslab.lab.processes import tail

__all__ = ["sayer", "tail", "format_table"]


def sayer(prefix: str = "", stream: TextIO | None = None) -> Callable[..., None]:
    """A `say(*parts)` that prints one flushed line, with the tool's name in front when *prefix* is
    given; to stderr for tools whose stdout is their report (`--json`), else to stdout."""
    def say(*parts: object) -> None:
        print(*((prefix,) if prefix else ()), *parts, file=stream or sys.stdout, flush=True)
    return say


def format_table(rows: Sequence[Sequence[object]], rule: bool = True) -> str:
    """Columns padded to their widest cell; the first row is the head, underlined when *rule*."""
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    out = ["  ".join(str(cell).ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows]
    if rule:
        out.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(out)
