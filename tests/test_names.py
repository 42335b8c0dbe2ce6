"""dnslab.core.names: the remembered Name hash is dnspython's, value for value."""

from __future__ import annotations

import random

import dns.name

from dnslab.core import names


def test_the_remembered_hash_is_dnspythons_own() -> None:
    assert dns.name.Name.__hash__ is names._remembered_hash  # installed by importing dnslab
    rng = random.Random(21)
    for _ in range(2000):
        labels = [bytes(rng.choice(b"aAbBzZ09-_.*\\\xff") for _ in range(rng.randint(1, 12)))
                  for _ in range(rng.randint(0, 5))]
        name = dns.name.Name(labels + [b""])
        expected = names._original(name)  # the raw value: Python folds it into a hash the same way
        assert names.label_hash(name) == expected
        assert names._remembered_hash(name) == expected == names._remembered_hash(name)  # computed, remembered
        assert hash(name) == hash(name)
        folded = dns.name.Name([label.lower() for label in labels] + [b""])
        assert hash(folded) == hash(name) and folded == name


def test_a_dict_built_before_still_finds_its_names() -> None:
    """Values never change, so tables hashed by dnspython's own function (before install) still work."""
    name = dns.name.from_text("Www.Example.com.")
    dns.name.Name.__hash__ = names._original  # type: ignore[method-assign]
    try:
        table = {name: 1}
    finally:
        names.install()
    assert table[dns.name.from_text("www.example.COM.")] == 1


def test_the_memory_is_bounded() -> None:
    for index in range(names.MEMORY + 10):
        hash(dns.name.Name([b"n%d" % index, b""]))
    assert len(names._memo) <= names.MEMORY
