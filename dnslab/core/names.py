"""dnspython's Name hash, remembered: the same value, computed once per label tuple.

`dns.name.Name.__hash__` folds case byte by byte in a Python loop (about
1.5 µs for a four-label name) and is never cached (Name has no slot for it).
A resolver hashes names all the time (questions in flight, NS names, glue,
sets of names on a chain): on a cold walk it was 8% of the CPU, the largest
single function.  `install` wraps it so that each label tuple's hash is
computed by dnspython's own function once and then looked up (tuples of
bytes hash in C): the values are exactly dnspython's, so dictionaries and sets
built before, by dnspython itself or by anyone else, keep working, and every
order that depends on hashes stays what it was.  The memory is bounded.
"""

from __future__ import annotations

from typing import Callable

import dns.name

# Label tuples remembered (a lookup hashes the same few names again and again); the table starts
# afresh when full.
MEMORY = 4096

_original: Callable[[dns.name.Name], int] = dns.name.Name.__hash__
_memo: dict[tuple[bytes, ...], int] = {}


def _remembered_hash(name: dns.name.Name) -> int:
    labels = name.labels
    value = _memo.get(labels)
    if value is None:
        if len(_memo) >= MEMORY:
            _memo.clear()
        value = _memo[labels] = _original(name)
    return value


def install() -> None:
    """Put the remembering hash on dns.name.Name (idempotent; dnslab's package import calls it)."""
    dns.name.Name.__hash__ = _remembered_hash  # type: ignore[method-assign,assignment]
