"""Scripted servers: a lab server whose answers a Python function decides, to misbehave on purpose.

A fault (fault_kinds) breaks a server in one of a dozen named ways; a test of DNS
software often needs a way nobody named: a reply with the wrong ID, an answer
without its question, NODATA without a SOA, a referral upward, a TCP stream cut
in the middle.  A handler sees each query (its wire, the parsed message, the
peer and the transport) and returns what to send:

* ``bytes``, a ``dnslib.DNSRecord`` or a ``dns.message.Message``: sent as it is
  (no checking: sending broken replies is the point);
* ``None``: silence;
* ``ZONE``: the answer the zone data gives, as if there were no handler
  (``query.zone_answer()`` gives it parsed, to alter and return instead);
* a list of the above: several messages for the one query (a forged reply,
  then the real one);
* ``transport.Unframed(bytes)``: over TCP, those bytes without the length
  prefix, then the connection closed (a truncated stream).

The handler sits behind the server's faults (`FaultyServer`), so faults and
query counts still apply.  It may be a coroutine function.  An exception or a
reply of another type is logged and the client gets SERVFAIL with its question,
as from any handler bug: a handler must never stop the server.
"""

from __future__ import annotations

import importlib
import inspect
import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Awaitable, Callable

import dns.message
import dnslib

from dnslab.core.errors import ConfigError
from dnslab.services.transport import Handler, Peer, Several, Unframed, _servfail

log = logging.getLogger(__name__)


class _Zone:
    """The sentinel a handler returns for "answer as the zone would"."""

    def __repr__(self) -> str:
        return "dnslab.lab.scripted.ZONE"


ZONE: Any = _Zone()


@dataclass
class ScriptedQuery:
    """One query, as a handler sees it."""

    wire: bytes
    message: dnslib.DNSRecord | None  # None: the bytes do not parse (the handler still decides)
    peer: Peer | None
    transport: str                    # "udp" or "tcp"
    server: str                       # the lab server's address
    _zone: Handler

    @property
    def tcp(self) -> bool:
        return self.transport == "tcp"

    def zone_wire(self) -> bytes | None:
        """The zone data's reply as bytes (None: the server would stay silent)."""
        reply = self._zone(self.wire, self.tcp, self.peer)  # type: ignore[arg-type]
        return reply if reply is None or isinstance(reply, bytes) else None

    def zone_answer(self) -> dnslib.DNSRecord | None:
        """The zone data's reply, parsed, for the handler to alter and return."""
        wire = self.zone_wire()
        return None if wire is None else dnslib.DNSRecord.parse(wire)


ScriptHandler = Callable[[ScriptedQuery], Any]


class ScriptedServer:
    """A server's handler that asks a script first; `zone` is the zone data's own handler."""

    def __init__(self, script: ScriptHandler, zone: Handler, address: str) -> None:
        self.script = script
        self.zone = zone
        self.address = address

    def __call__(self, wire: bytes, via_tcp: bool = False,
                 peer: Peer | None = None) -> bytes | None | Awaitable[bytes | None]:
        try:
            message: dnslib.DNSRecord | None = dnslib.DNSRecord.parse(wire)
        except Exception:  # noqa: BLE001 - garbage is the handler's to judge too
            message = None
        query = ScriptedQuery(wire, message, peer, "tcp" if via_tcp else "udp", self.address, self.zone)
        try:
            result = self.script(query)
        except Exception:  # noqa: BLE001 - a handler bug must never stop the server
            log.exception("scripted handler %s failed for a query to %s", _name(self.script), self.address)
            return _servfail(wire)
        if inspect.isawaitable(result):
            return self._later(result, query)
        return self._reply(result, query)

    async def _later(self, result: Awaitable[Any], query: ScriptedQuery) -> bytes | None:
        try:
            value = await result
        except Exception:  # noqa: BLE001
            log.exception("scripted handler %s failed for a query to %s", _name(self.script), self.address)
            return _servfail(query.wire)
        reply = self._reply(value, query)
        return await reply if inspect.isawaitable(reply) else reply  # type: ignore[misc]

    def _reply(self, result: Any, query: ScriptedQuery) -> bytes | None | Awaitable[bytes | None]:
        if result is ZONE:
            return self.zone(query.wire, query.tcp, query.peer)  # type: ignore[arg-type]
        if isinstance(result, (list, tuple)):
            messages = [_wire(item) for item in result]
            if all(message is not None for message in messages):
                return Several(messages)
        else:
            message = _wire(result) if result is not None else None
            if result is None or message is not None:
                return message
        log.error("scripted handler %s returned %s: want bytes, a dnslib.DNSRecord, a dns.message.Message, "
                  "None, ZONE or a list of them", _name(self.script), type(result).__name__)
        return _servfail(query.wire)


def _wire(item: Any) -> bytes | None:
    if isinstance(item, bytes):  # Unframed included
        return item
    if isinstance(item, dnslib.DNSRecord):
        return bytes(item.pack())
    if isinstance(item, dns.message.Message):
        return item.to_wire()
    return None


def _name(function: Any) -> str:
    return f"{getattr(function, '__module__', '?')}:{getattr(function, '__qualname__', repr(function))}"


def load_handler(spec: str, where: str, folder: Path | None = None) -> ScriptHandler:
    """The function *spec* ("module:function") names; *folder* (the lab.toml's) is searched first.

    Any failure is one ConfigError naming *where* (the file and setting), never a traceback.
    """
    module_name, colon, attribute = spec.partition(":")
    if not colon or not module_name or not attribute:
        raise ConfigError(f"{where}: handler must be 'module:function', not {spec!r}")
    added = folder is not None and str(folder) not in sys.path
    if added:
        sys.path.insert(0, str(folder))
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # noqa: BLE001 - an import error of any kind is the user's file
        raise ConfigError(f"{where}: cannot import {module_name!r} for handler {spec!r}: "
                          f"{type(exc).__name__}: {exc}") from None
    finally:
        if added:
            sys.path.remove(str(folder))
    function: Any = module
    for part in attribute.split("."):
        function = getattr(function, part, None)
        if function is None:
            raise ConfigError(f"{where}: module {module_name!r} has no {attribute!r} (handler {spec!r})")
    if not callable(function):
        raise ConfigError(f"{where}: {spec!r} is not a function")
    return function  # type: ignore[no-any-return]
