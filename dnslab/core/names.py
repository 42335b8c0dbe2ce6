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

The same goes for comparing names: `Name.__eq__`, `__ne__` and `is_subdomain` go
through `fullcompare`, a Python loop that lowercases label after label and builds
an enum triple (on a cold walk, the most called dnspython function: dict probes,
the classifier's bailiwick checks, the cache's keys).  `name_equal` and
`is_subdomain` give the same answers from a tuple comparison, lowercasing only
where the spellings differ; `install` puts them on dns.name.Name too, after
`_methods_hold` has checked them against dnspython's own methods.

And making names: Name() converts and checks every label again (2.8 µs for four
labels); `wire_name` makes dnspython's own Name of labels already checked (read
from the wire, or part of a name that was checked: `split`, installed too).
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
_original_eq: Callable[[dns.name.Name, object], bool] = dns.name.Name.__eq__
_original_ne: Callable[[dns.name.Name, object], bool] = dns.name.Name.__ne__
_original_is_subdomain: Callable[[dns.name.Name, dns.name.Name], bool] = dns.name.Name.is_subdomain
_original_split: Callable[[dns.name.Name, int], tuple[dns.name.Name, dns.name.Name]] = dns.name.Name.split
_Name = dns.name.Name
_memo: dict[tuple[bytes, ...], int] = {}
_LABEL_FACTS: dict[bytes, tuple[int, int, bytes]] = {}
_FOLDED: dict[tuple[bytes, ...], tuple[bytes, ...]] = {}


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


def folded(labels: tuple[bytes, ...]) -> tuple[bytes, ...]:
    """*labels* in lowercase, remembered (a reply writes the same few names again and again)."""
    lower = _FOLDED.get(labels)
    if lower is None:
        if len(_FOLDED) >= MEMORY:
            _FOLDED.clear()
        lower = _FOLDED[labels] = tuple([label.lower() for label in labels])
    return lower


def canonical_wire(labels: tuple[bytes, ...]) -> bytes:
    """An absolute name's wire form in lowercase (RFC 4034 §6.2), as Name.to_wire(canonicalize=True) writes it."""
    return b"".join([(_LABEL_FACTS.get(label) or label_facts(label))[2] for label in labels])


def _label_hash_holds() -> bool:
    samples = [(b"",), (b"www", b"Example", b"COM", b""), (b"a" * 63, b"\xff\x00-_*", b""), (b"x", b"Y"),
               (b"host0009", b"host0010", b"")]
    return all(label_hash(dns.name.Name(labels)) == _original(dns.name.Name(labels)) for labels in samples)


LABEL_HASH_HOLDS = _label_hash_holds()


def name_equal(self: dns.name.Name, other: object) -> bool:
    """Name.__eq__: the same labels but for ASCII case (so never an absolute name and a relative one)."""
    if not isinstance(other, _Name):
        return False
    mine, theirs = self.labels, other.labels
    if mine == theirs:
        return True
    if len(mine) != len(theirs):
        return False
    for label, their in zip(mine, theirs):
        if label != their and label.lower() != their.lower():
            return False
    return True


def name_unequal(self: dns.name.Name, other: object) -> bool:
    """Name.__ne__."""
    return not name_equal(self, other)


def is_subdomain(self: dns.name.Name, other: dns.name.Name) -> bool:
    """Name.is_subdomain: *other*'s labels end *self*'s, but for ASCII case (equal names included).

    Both absolute or both relative, as fullcompare requires: a relative *other*'s last
    label is never empty, so matching it rules out an absolute *self*, and the other
    way round; only the empty relative name needs its own check.
    """
    mine, theirs = self.labels, other.labels
    count = len(theirs)
    if not count:
        return not mine or mine[-1] != b""
    start = len(mine) - count
    if start < 0:
        return False
    tail = mine[start:]
    if tail == theirs:
        return True
    for label, their in zip(tail, theirs):
        if label != their and label.lower() != their.lower():
            return False
    return True


def _wire_name_holds() -> bool:
    """Whether a Name made past its constructor is the constructor's: labels its only slot, equal, same hash."""
    slots = {slot for kind in _Name.__mro__ for slot in getattr(kind, "__slots__", ())}
    if slots != {"labels"}:
        return False
    for labels in [(), (b"",), (b"www", b"Example", b"COM", b""), (b"a" * 63, b"\xff\x00-_*", b""), (b"x", b"Y")]:
        made, built = _Name(labels), _new(_Name)
        _set(built, "labels", labels)
        if type(built) is not type(made) or built.labels != made.labels or hash(built) != hash(made) or built != made:
            return False
    return True


_new = object.__new__
_set = object.__setattr__  # past Name's immutability, as its __init__ is
WIRE_NAMES_DIRECT = _wire_name_holds()


def wire_name(labels: tuple[bytes, ...]) -> dns.name.Name:
    """dnspython's own Name of *labels*, already checked as Name() checks them (each at most 63 bytes,
    none empty but the last, 255 bytes in all)."""
    if WIRE_NAMES_DIRECT:
        name = _new(_Name)
        _set(name, "labels", labels)
        return name  # type: ignore[no-any-return]
    return _Name(labels)


def split(self: dns.name.Name, depth: int) -> tuple[dns.name.Name, dns.name.Name]:
    """Name.split: (prefix, suffix), the suffix *depth* labels long; both parts of a checked name are valid."""
    labels = self.labels
    if depth == 0:
        return self, dns.name.empty
    if depth == len(labels):
        return dns.name.empty, self
    if depth < 0 or depth > len(labels):
        raise ValueError("depth must be >= 0 and <= the length of the name")
    return wire_name(labels[:-depth]), wire_name(labels[-depth:])


def _methods_hold() -> bool:
    """Whether name_equal, name_unequal, is_subdomain and split answer as dnspython's methods, for names of
    every shape."""
    shapes = [(), (b"",), (b"com", b""), (b"Com", b""), (b"example", b"com", b""), (b"EXAMPLE", b"cOm", b""),
              (b"www", b"example", b"com", b""), (b"www", b"example", b"com"), (b"example", b"com"), (b"com",),
              (b"Www",), (b"a" * 63, b"\xff\x00-_*", b""), (b"\xff\x00-_*", b""), (b"\xdf\x00-_*", b""),
              (b"host0009", b""), (b"host0010", b""), (b"*", b"example", b"com", b"")]
    samples = [dns.name.Name(labels) for labels in shapes]
    for one in samples:
        if name_equal(one, one.to_text()) or not name_unequal(one, None):
            return False
        for depth in range(len(one) + 1):
            mine, theirs = split(one, depth), _original_split(one, depth)
            if [(type(part), part.labels) for part in mine] != [(type(part), part.labels) for part in theirs]:
                return False
        for other in samples:
            if (name_equal(one, other) != _original_eq(one, other)
                    or name_unequal(one, other) != _original_ne(one, other)
                    or is_subdomain(one, other) != _original_is_subdomain(one, other)):
                return False
    return True


METHODS_HOLD = _methods_hold()


def _remembered_hash(name: dns.name.Name) -> int:
    labels = name.labels
    value = _memo.get(labels)
    if value is None:
        if len(_memo) >= MEMORY:
            _memo.clear()
        value = _memo[labels] = label_hash(name)
    return value


def install() -> None:
    """Put the remembering hash and the comparisons on dns.name.Name (idempotent; dnslab's package
    import calls it); each only where it was found to answer as dnspython's own."""
    if LABEL_HASH_HOLDS:
        dns.name.Name.__hash__ = _remembered_hash  # type: ignore[method-assign,assignment]
    if METHODS_HOLD:
        dns.name.Name.__eq__ = name_equal  # type: ignore[method-assign,assignment]
        dns.name.Name.__ne__ = name_unequal  # type: ignore[method-assign,assignment]
        dns.name.Name.is_subdomain = is_subdomain  # type: ignore[method-assign]
        dns.name.Name.split = split  # type: ignore[method-assign]
