"""dnslab.core.names: the remembered Name hash is dnspython's, value for value."""

from __future__ import annotations

import random

import dns.name
import pytest

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


def test_the_comparisons_answer_as_dnspythons_own() -> None:
    """name_equal, name_unequal and is_subdomain against Name's own methods (fullcompare), on random names
    that share suffixes, differ in case, and are absolute or relative."""
    assert dns.name.Name.__eq__ is names.name_equal and dns.name.Name.is_subdomain is names.is_subdomain
    rng = random.Random(22)
    pool = [b"a", b"A", b"b", b"com", b"COM", b"Com", b"x\xff", b"X\xff", b"*", b"-_"]
    samples = []
    for _ in range(300):
        labels = [rng.choice(pool) for _ in range(rng.randint(0, 4))]
        samples.append(dns.name.Name(labels + [b""] if rng.random() < 0.7 else labels))
    for one in samples:
        for other in rng.sample(samples, 60) + [one, dns.name.root, dns.name.empty]:
            assert names.name_equal(one, other) == names._original_eq(one, other), (one, other)
            assert names.name_unequal(one, other) == names._original_ne(one, other), (one, other)
            assert names.is_subdomain(one, other) == names._original_is_subdomain(one, other), (one, other)
            assert (one == other) == (one.fullcompare(other)[1] == 0)
        assert one != one.to_text() and not one == None  # noqa: E711 - a Name is never equal to anything else


def test_split_answers_as_dnspythons_own() -> None:
    assert dns.name.Name.split is names.split
    rng = random.Random(23)
    for _ in range(300):
        labels = [bytes(rng.choice(b"aB-*\xff") for _ in range(rng.randint(1, 5))) for _ in range(rng.randint(0, 5))]
        name = dns.name.Name(labels + [b""] if rng.random() < 0.7 else labels)
        for depth in range(-1, len(name) + 2):
            try:
                expected = names._original_split(name, depth)
            except ValueError:
                with pytest.raises(ValueError):
                    name.split(depth)
                continue
            got = name.split(depth)
            assert [(type(part), part.labels) for part in got] == [(type(part), part.labels) for part in expected]
            assert [hash(part) for part in got] == [hash(part) for part in expected]
