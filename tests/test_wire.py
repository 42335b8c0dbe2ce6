"""The quick query reader that keys both fast paths, without a network."""

from __future__ import annotations

import dns.message

from dnslab.core.wire import KEY_MEMORY, QUESTION_IN_KEY, UDP_PREFIX, query_key, remembered_keys


def _wire(name: str, ident: int, **make: object) -> bytes:
    query = dns.message.make_query(name, "A", **make)  # type: ignore[arg-type]
    query.id = ident
    return query.to_wire()


def test_the_id_never_changes_the_key_and_everything_else_that_matters_does() -> None:
    plain = query_key(_wire("www.example.com", 1))
    assert plain is not None and plain == query_key(_wire("www.example.com", 2))
    key, qtype, limit, udp_key = plain
    assert qtype == 1 and limit == 512 and key[QUESTION_IN_KEY:].startswith(b"\x03www\x07example\x03com\x00")
    assert udp_key == UDP_PREFIX + key
    others = [query_key(_wire("WWW.example.com", 1)), query_key(_wire("www.example.com", 1, use_edns=0)),
              query_key(_wire("www.example.com", 1, use_edns=0, want_dnssec=True)),
              query_key(_wire("www.example.com", 1, flags=0))]
    keys = {plain[0]} | {other[0] for other in others if other is not None}
    assert len(keys) == 5


def test_what_the_quick_reader_leaves_to_the_parser() -> None:
    reply = bytearray(_wire("www.example.com", 1))
    reply[2] |= 0x80
    assert query_key(bytes(reply)) is None                      # a response
    assert query_key(_wire("www.example.com", 1)[:-1]) is None  # cut short
    assert query_key(_wire("www.example.com", 1) + b"\x00") is None  # trailing bytes
    assert query_key(b"") is None and query_key(b"\x00") is None


def test_remembered_keys_are_bounded_by_a_flood_of_distinct_queries() -> None:
    for number in range(KEY_MEMORY + 2000):
        query_key(_wire(f"n{number}.example.com", number % 65536))
    assert 0 < remembered_keys() <= KEY_MEMORY
