"""dnspython's Name hash, the same integer computed cheaply: one place for both ways dnslab uses it.

`dns.name.Name.__hash__` folds the name's bytes, lowercased, as h = 9h + byte in a
Python loop (1.5-3 µs for a name of four labels) and is never cached (Name has no
slot for it).  Over a label of m bytes that fold is h = h * 9**m + fold(label), so
with both remembered per label spelling (`label_facts`) the same integer comes out
of one step per label (`label_hash`).  Two users:

- the plain zone reader's names (`core.plain_records.PlainName`), a million of them
  in a big lab, each hashed a few times while its zone is loaded and indexed;
- every other Name: `install` (called when dnslab is imported) puts a hash on
  dns.name.Name that remembers each label tuple's value (a resolver hashes the same
  few names again and again: on a cold walk dnspython's hash was the largest single
  function).  This changes a class of another library for the whole process, so the
  values must be exactly dnspython's: dictionaries and sets built before, by
  dnspython or anyone else, keep working, and every order that depends on hashes
  stays what it was.  `label_hash` is checked against dnspython's own function when
  this module is imported; if they ever differ, nothing is installed and PlainName
  uses dnspython's function.

Both tables are bounded.
"""

from __future__ import annotations

from typing import Callable

import dns.name

# Label tuples whose hash is remembered; the table starts afresh when full.
MEMORY = 4096
# Label spellings whose facts are remembered: a lab of generated zones repeats a few
# hundred labels a million times.
LABEL_MEMORY = 65536

_original: Callable[[dns.name.Name], int] = dns.name.Name.__hash__
_memo: dict[tuple[bytes, ...], int] = {}
_LABEL_FACTS: dict[bytes, tuple[int, int, bytes]] = {}


def label_facts(label: bytes) -> tuple[int, int, bytes]:
    """A label's 9**len(label), its fold (see the module), and its canonical wire form (length, lowercase)."""
    facts = _LABEL_FACTS.get(label)
    if facts is None:
        lower = label.lower()
        folded = 0
        for byte in lower:
            folded = folded * 9 + byte
        facts = (9 ** len(label), folded, bytes((len(label),)) + lower)
        if len(_LABEL_FACTS) < LABEL_MEMORY:
            _LABEL_FACTS[label] = facts
    return facts


def label_hash(name: dns.name.Name) -> int:
    """What dns.name.Name.__hash__ returns for *name*, one step per label (PlainName's __hash__ itself)."""
    h = 0
    for label in name.labels:
        facts = _LABEL_FACTS.get(label) or label_facts(label)
        h = h * facts[0] + facts[1]
    return h


def canonical_wire(labels: tuple[bytes, ...]) -> bytes:
    """An absolute name's wire form in lowercase (RFC 4034 §6.2), as Name.to_wire(canonicalize=True) writes it."""
    return b"".join([(_LABEL_FACTS.get(label) or label_facts(label))[2] for label in labels])


def _label_hash_holds() -> bool:
    samples = [(b"",), (b"www", b"Example", b"COM", b""), (b"a" * 63, b"\xff\x00-_*", b""), (b"x", b"Y"),
               (b"host0009", b"host0010", b"")]
    return all(label_hash(dns.name.Name(labels)) == _original(dns.name.Name(labels)) for labels in samples)


LABEL_HASH_HOLDS = _label_hash_holds()


def _remembered_hash(name: dns.name.Name) -> int:
    labels = name.labels
    value = _memo.get(labels)
    if value is None:
        if len(_memo) >= MEMORY:
            _memo.clear()
        value = _memo[labels] = label_hash(name)
    return value


def install() -> None:
    """Put the remembering hash on dns.name.Name (idempotent; dnslab's package import calls it)."""
    if LABEL_HASH_HOLDS:
        dns.name.Name.__hash__ = _remembered_hash  # type: ignore[method-assign,assignment]
