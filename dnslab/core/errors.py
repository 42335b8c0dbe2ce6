"""One exception tree for everything dnslab reports to a person.

The CLI turns any `DnslabError` into one line and exit code 1, so the message
must stand on its own: it names the file and line, or the address, at fault.
"""

from __future__ import annotations


class DnslabError(Exception):
    """Base of every error dnslab explains to its user."""


class ZoneError(DnslabError):
    """A zone file that cannot be served; the text reads ``file:line: detail``."""

    def __init__(self, filename: str, line: int, detail: str) -> None:
        super().__init__(f"{filename}:{line}: {detail}")
        self.filename = filename
        self.line = line
        self.detail = detail


class ConfigError(DnslabError):
    """A lab setting (lab.toml or the command line) that makes no sense."""


class BindError(DnslabError):
    """An address and port the lab could not listen on."""
