"""A message's EDNS0 OPT record without options, as `Message.use_edns` makes it, for a fraction of the cost.

`use_edns` builds a new OPT rdata (its payload turned into an rdata class) and an RRset
that hashes it (an rdata's hash is its canonical wire form) for every message: about
10 µs, paid twice for each client question (the query read by `core.reader`, the reply
made by `resolution.answer.error_reply`), some 8% of a cold name's CPU.  An OPT rdata
is immutable, so one per payload size is kept here with its RRset, and each message
gets a copy of that RRset (a dict copy keeps the stored hash) with its own flags.
Options (EDE, padding, cookies) still go through `use_edns`.
"""

from __future__ import annotations

import dns.message
import dns.name
import dns.rdtypes.ANY.OPT
import dns.rrset

_MEMORY = 256  # payload sizes remembered (clients use a handful: 512, 1232, 4096)
_TEMPLATES: dict[int, dns.rrset.RRset] = {}


def use_edns0(message: dns.message.Message, ednsflags: int, payload: int, request_payload: int | None = None) -> None:
    """`message.use_edns(0, ednsflags, payload, request_payload)`: the same OPT RRset, flags, payload and pad."""
    template = _TEMPLATES.get(payload)
    if template is None:
        if len(_TEMPLATES) >= _MEMORY:
            _TEMPLATES.clear()
        maker = dns.message.Message()  # once per payload size: dnspython's own OPT RRset, by its public API
        maker.use_edns(0, 0, payload)
        template = _TEMPLATES[payload] = maker.opt
    opt = template.copy()
    opt.ttl = int(ednsflags) & 0xFF00FFFF  # EDNS version 0, as use_edns(0, ...) forces it
    message.opt = opt
    message.request_payload = payload if request_payload is None else request_payload
    message.pad = 0


def opt_rdata(message: dns.message.Message) -> dns.rdtypes.ANY.OPT.OPT | None:
    """The message's OPT rdata (payload, options), None without EDNS (as `message.edns < 0` says).

    `Message.payload` and `Message.options` each index the OPT RRset as a list
    (`dns.set.Set.__getitem__`) on every read; a reply read them five times.
    """
    opt = message.opt
    if opt is None:
        return None
    for rdata in opt:  # (iterating a set reads its first item without making a list)
        return rdata  # type: ignore[no-any-return]
    return None
