"""Counting what dnslab logs while a tool runs it: a lab that logged an ERROR has a bug, whatever it
answered (reliability-check's lab host counts them; the comparisons can too)."""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path
from typing import Any


class CountingHandler(logging.Handler):
    """Counts log records by level, and those carrying an exception; groups the errors by kind.

    A kind is the logger, the exception type and the innermost dnslab frame, so a
    flood of one bug shows as one line with its count and one traceback.
    """

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.by_level: Counter[str] = Counter()
        self.with_exception = 0
        self.kinds: Counter[str] = Counter()
        self.examples: dict[str, str] = {}

    def emit(self, record: logging.LogRecord) -> None:
        self.by_level[record.levelname] += 1
        if record.exc_info:
            self.with_exception += 1
        if record.levelno < logging.ERROR and not record.exc_info:
            return
        kind = f"{record.name} {record.levelname}: {record.msg}"
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            frame = None
            tb = exc.__traceback__
            while tb is not None:
                if "/dnslab/" in tb.tb_frame.f_code.co_filename:
                    frame = f"{Path(tb.tb_frame.f_code.co_filename).name}:{tb.tb_lineno}"
                tb = tb.tb_next
            kind += f" | {type(exc).__module__}.{type(exc).__name__} at {frame}"
        self.kinds[kind] += 1
        if kind not in self.examples and len(self.examples) < 20:
            try:
                self.examples[kind] = logging.Formatter("%(name)s %(levelname)s: %(message)s").format(record)
            except Exception:  # noqa: BLE001 - a broken record must not hide the count
                self.examples[kind] = kind

    def summary(self) -> dict[str, Any]:
        errors = sum(n for level, n in self.by_level.items() if level in ("ERROR", "CRITICAL"))
        return {"by_level": dict(self.by_level), "errors": errors, "with_exception": self.with_exception,
                "kinds": [{"kind": kind, "count": count, "example": self.examples.get(kind, "")}
                          for kind, count in self.kinds.most_common(20)]}


def kinds_text(summary: dict[str, Any], tracebacks: bool = True, indent: str = "      ") -> str:
    """The distinct errors of a `CountingHandler.summary()`, each with its count and (the end of) its
    first example, one block a kind: what a tool prints after "the lab logged N errors"."""
    lines = []
    for entry in summary.get("kinds", []):
        lines.append(f"{indent}{entry['count']:,} x {entry['kind']}")
        if tracebacks:
            lines += [f"{indent}  {line}" for line in entry["example"].splitlines()[-14:]]
    return "\n".join(lines)
