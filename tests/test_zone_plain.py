"""The plain-syntax zone reader reads exactly what dnspython's reader reads, or leaves the file to it.

Differential: every zone shipped with dnslab, the comparison zones, a generated
hierarchy, every zone text in the test suite and a set of edge cases are read
both ways; the records (owner, TTL, data, comment, line) and the file's first
$ORIGIN must be equal, and where dnspython refuses a file the plain reader must
not accept it (the same ZoneError comes out, worded by the dnspython path).
"""

from __future__ import annotations

import ast
import io
from contextlib import redirect_stdout
from pathlib import Path

import dns.name
import dns.rdata
import pytest
from dns.rdatatype import RdataType
from hypothesis import given, settings
from hypothesis import strategies as st

from dnslab.core import plain_records
from dnslab.core import zone as zone_module
from dnslab.core.errors import ZoneError
from dnslab.core.zone_plain import read_plain
from tools import gen_hierarchy

ROOT = Path(__file__).resolve().parent.parent
ORIGINS = [None, dns.name.from_text("example.com.")]


def _both_ways(text: str, origin: dns.name.Name | None, filename: str = "<zone>") -> bool:
    """Assert both readers agree on *text*; True when the plain reader read it itself."""
    try:
        expected = zone_module._read_with_dnspython(text, origin, filename)
    except ZoneError as exc:
        with pytest.raises(ZoneError) as raised:
            zone_module._read(text, origin, filename)
        assert (raised.value.filename, raised.value.line, raised.value.detail) == (exc.filename, exc.line, exc.detail)
        assert read_plain(text, origin) is None, "the plain reader accepted a file dnspython refuses"
        return False
    got = zone_module._read(text, origin, filename)
    assert got[1] == expected[1]
    assert [_key(r) for r in got[0]] == [_key(r) for r in expected[0]]
    return read_plain(text, origin) is not None


def _key(record: zone_module.SourceRecord) -> tuple[object, ...]:
    rdata = record.rdata
    return (record.name.to_text(), record.ttl, rdata.rdtype, rdata.to_text(), rdata.rdcomment,
            record.filename, record.line)


def _zone_files() -> list[Path]:
    return sorted([*(ROOT / "dnslab" / "zones").glob("*.zone"), *(ROOT / "tools" / "compare" / "zones").glob("*.zone")])


@pytest.mark.parametrize("path", _zone_files(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_shipped_zones_read_the_same(path: Path) -> None:
    _both_ways(path.read_text(encoding="utf-8"), None, str(path))


def test_generated_hierarchy_reads_the_same_and_plainly(tmp_path: Path) -> None:
    with redirect_stdout(io.StringIO()):
        assert gen_hierarchy.main([str(tmp_path / "gh"), "--tlds", "2", "--zones", "12", "--names", "60"]) == 0
    paths = sorted((tmp_path / "gh").glob("*.zone"))
    assert len(paths) == 15
    for path in paths:
        # The generator writes the plain syntax, so the fast reader must read all of it itself.
        assert _both_ways(path.read_text(encoding="utf-8"), None, str(path)), path


def _suite_zone_texts() -> list[str]:
    """Every string constant in the tests that looks like zone text."""
    texts: set[str] = set()
    for path in sorted((ROOT / "tests").glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and "\n" in node.value:
                if " SOA " in node.value or "$ORIGIN" in node.value or " IN " in node.value:
                    texts.add(node.value)
    return sorted(texts)


def test_every_zone_text_of_the_suite_reads_the_same() -> None:
    texts = _suite_zone_texts()
    assert len(texts) > 20
    plain = 0
    for text in texts:
        for origin in ORIGINS:
            plain += _both_ways(text, origin)
    assert plain > 10  # the fast reader is really exercised, not always left to dnspython


EDGE_CASES = [
    # owners: blank (the previous owner), @, relative, absolute, mixed case
    "$ORIGIN example.com.\n$TTL 300\n@ IN SOA ns hm 1 2 3 4 5\n@ NS ns\nns A 192.0.2.1\n\tA 192.0.2.2\n"
    "WWW.Example.COM. 60 IN A 192.0.2.3\nAlias CNAME WWW.Example.COM.\n  \n\t; only a comment\n",
    # TTL forms: units, class before TTL, no TTL (from $TTL / the last TTL / the SOA MINIMUM)
    "$ORIGIN example.com.\n@ 1h IN SOA ns hm 1 2 3 4 5\n@ IN 2d NS ns\nns A 192.0.2.1\nb 1W2d A 192.0.2.2\n",
    "$ORIGIN example.com.\n@ IN SOA ns hm 1 2 3 4 77\n@ NS ns\nns A 192.0.2.1\n$TTL 9\nb A 192.0.2.2\n",
    "$ORIGIN example.com.\n@ SOA ns hm 1 2 3 4 77\nns A 192.0.2.1\n",
    "$origin example.com.\n$ttl 1m\n@ SOA ns hm 1 2 3 4 77\n",
    # comments: after data (kept as the rdata's comment), with parentheses, quotes and non-ASCII
    "$ORIGIN example.com. ; the zone\n$TTL 300 ; five minutes (default)\n@ SOA ns hm 1 2 3 4 5 ; serial\n"
    "ns A 192.0.2.1 ; the server (primary) \u00a7 1\nt TXT \"a;b\" ; c\nu TXT \"x\" \"y  z\"\nm MX 10 ns ; mail\n",
    # data of every shape the plain reader passes on to dnspython's rdata parser
    "$ORIGIN example.com.\n$TTL 300\n@ SOA ns hm 1 2 3 4 5\nx CAA 0 issue \"ca.example.net\"\ns SRV 1 2 53 ns\n"
    "u TYPE1 192.0.2.9\nc CNAME www.example.net.\nd DNAME example.net.\np PTR ns\ni AAAA 2001:DB8::1\n",
    # TXT, MX and SOA spellings: built directly or left to dnspython's rdata parser, the same records
    "$ORIGIN example.com.\n$TTL 300\n@ SOA ns.example.com. Host.Master 4294967295 1h 2D 3w4d 0\n@ MX 0 mail\n"
    "@ MX 65535 Mail.Example.NET.\nt TXT \"\"\nt TXT \"semi;colon and  spaces\"\nt TXT \"a\" \"b\"\nt TXT bare\n"
    "t TXT \"x\" ; note\nm MX 010 mail ; note\n",
    # relative $ORIGIN, two origins, names reused across them
    "$ORIGIN com.\n$ORIGIN example\n@ 5 SOA ns hm 1 2 3 4 5\nns 5 A 192.0.2.1\n$ORIGIN sub.example.com.\nns 5 A 192.0.2.2\n"
    "$ORIGIN SUB.Example.COM.\nns 5 A 192.0.2.3\n",
    # things it leaves to dnspython, which must still read the same
    "$ORIGIN example.com.\n$TTL 300\n@ SOA ns hm ( 1 2\n 3 4 5 )\nns A 192.0.2.1\n",
    "$ORIGIN example.com.\n$TTL 300\n@ SOA ns hm 1 2 3 4 5\nu TXT \"(x)\"\n",
    "$ORIGIN example.com.\n$TTL 300\n@ SOA ns hm 1 2 3 4 5\nu TYPE65280 \\# 2 abcd\n",
    "$ORIGIN example.com.\r\n$TTL 300\r\n@ SOA ns hm 1 2 3 4 5\r\n",
    "$ORIGIN example.com.\n$TTL 300\n@ SOA ns hm 1 2 3 4 5\n$GENERATE 1-3 h$ A 192.0.2.$\n",
    "$ORIGIN example.com.\n$TTL 300\n@ SOA ns hm 1 2 3 4 5\na\\.b A 192.0.2.1\n",
    # errors, which dnspython's reader words and locates
    "$ORIGIN example.com.\n$TTL 300\n@ SOA ns hm 1 2 3 4 5\nns A 192.0.2.300\n",
    "$ORIGIN example.com.\n$TTL 300\n@ SOA ns hm 1 2 3 4 5\nns A 192.0.2.1 extra\n",
    "$ORIGIN example.com.\n$TTL 300\n@ SOA ns hm 1 2 3 4 5\nns A 010.0.0.1\n",
    "$ORIGIN example.com.\n$TTL 300\n@ SOA ns hm 4294967296 2 3 4 5\n",
    "$ORIGIN example.com.\n$TTL 300\n@ SOA ns hm 1 2 3 4\n",
    "$ORIGIN example.com.\n$TTL 300\n@ SOA ns hm 1 2 3 4 5x\n",
    "$ORIGIN example.com.\n$TTL 300\n@ SOA ns hm 1 2 3 4 5\n@ MX 65536 mail\n",
    "$ORIGIN example.com.\n$TTL 300\n@ SOA ns hm 1 2 3 4 5\n@ MX -1 mail\n",
    "$ORIGIN example.com.\n$TTL 300\n@ SOA ns hm 1 2 3 4 5\n@ MX 1\n",
    "$ORIGIN example.com.\n$TTL 300\n@ SOA ns hm 1 2 3 4 5\nt TXT \"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"\n",
    "$ORIGIN example.com.\n$TTL 300\n@ SOA ns hm 1 2 3 4 5\nns NS a b\n",
    "$ORIGIN example.com.\n$TTL 300\n@ SOA ns hm 1 2 3 4 5\nns BOGUS 1\n",
    "$ORIGIN example.com.\n$TTL 300\n@ SOA ns hm 1 2 3 4 5\nns A\n",
    "$ORIGIN example.com.\n$TTL 300\n@ SOA ns hm 1 2 3 4 5\nns 300 IN\n",
    "$ORIGIN example.com.\n$TTL 300\n@ SOA ns hm 1 2 3 4 5\nns CH A 192.0.2.1\n",
    "$ORIGIN example.com.\n$TTL 300\n@ SOA ns hm 1 2 3 4 5\nns TXT \"open\n",
    "$ORIGIN example.com.\n$TTL 300\n@ SOA ns hm 1 2 3 4 5\nns A 192.0.2.1 ; fine\nx ; no type\n",
    "$ORIGIN example.com.\n$TTL\n@ SOA ns hm 1 2 3 4 5\n",
    "$ORIGIN example.com.\n$TTL 1x\n@ SOA ns hm 1 2 3 4 5\n",
    "$ORIGIN example.com.\n$BOGUS 1\n@ SOA ns hm 1 2 3 4 5\n",
    "$ORIGIN example.com.\n@ NS ns\n",
    "@ 300 SOA ns hm 1 2 3 4 5\n",
    "$ORIGIN example.com.\n$TTL 300\n@ SOA ns hm 1 2 3 4 5\n  $TTL 5\n",
    "$ORIGIN example.com.\n$TTL 4294967296\n@ SOA ns hm 1 2 3 4 5\n",
    "$ORIGIN example.com.\n@ 4294967296 SOA ns hm 1 2 3 4 5\n",
    "$ORIGIN example.com.\n$TTL 300\n@ SOA ns hm 1 2 3 4 5\nns NS ns..x\n",
    "$ORIGIN example.com.\n$TTL 300\n@ SOA ns hm 1 2 3 4 5\n" + "a" * 64 + " A 192.0.2.1\n",
    # quotes and comment marks glued to the words before the data
    "$ORIGIN example.com.\n$TTL 300\n@ SOA ns hm 1 2 3 4 5\nw\"x A 192.0.2.1\n",
    "$ORIGIN example.com.\n$TTL 300\n@ SOA ns hm 1 2 3 4 5\nwww;x A 192.0.2.1\n",
    "$ORIGIN example.com.\n$TTL 300\n@ SOA ns hm 1 2 3 4 5\nwww 300;x A 192.0.2.1\n",
    "$ORIGIN example.com.\n$TTL 300\n@ SOA ns hm 1 2 3 4 5\nwww IN;x A 192.0.2.1\n",
    "$ORIGIN example.com.\n$TTL 300\n@ SOA ns hm 1 2 3 4 5\nwww A;x 192.0.2.1\n",
    "$ORIGIN example.com.\n$TTL 300\n@ SOA ns hm 1 2 3 4 5\nwww \"A\" 192.0.2.1\n",
    "$ORIGIN example.com.\n$TTL 300\n@ SOA ns hm 1 2 3 4 5\n\t300 IN A 192.0.2.1;x\nw 300 IN TXT \"a\";b\n",
    # names of 255 octets (the most) and 256, as owners and as data; AAAA spellings dnspython rewrites
    "$ORIGIN .\n$TTL 300\n" + ("a" * 63 + ".") * 3 + "b" * 61 + ". SOA ns. hm. 1 2 3 4 5\nx. CNAME " + ("c" * 63 + ".") * 3
    + "d" * 61 + ".\ny. AAAA 2001:DB8:0:0::1\nz. AAAA ::ffff:192.0.2.1\nz. AAAA 0::0\n",
    "$ORIGIN .\n$TTL 300\n" + ("a" * 63 + ".") * 3 + "b" * 62 + ". SOA ns. hm. 1 2 3 4 5\n",
    "$ORIGIN .\n$TTL 300\n@ SOA ns. hm. 1 2 3 4 5\nx. NS " + ("c" * 63 + ".") * 3 + "d" * 62 + ".\n",
    "$ORIGIN " + ("a" * 63 + ".") * 3 + "\n$TTL 300\n@ SOA ns hm 1 2 3 4 5\n" + "b" * 61 + " A 192.0.2.1\n"
    + "b" * 62 + " A 192.0.2.1\n",
]


@pytest.mark.parametrize("text", EDGE_CASES, ids=range(len(EDGE_CASES)))
@pytest.mark.parametrize("origin", ORIGINS, ids=["no-origin", "origin"])
def test_edge_cases_read_the_same(text: str, origin: dns.name.Name | None) -> None:
    _both_ways(text, origin)


def test_the_plain_reader_reads_plain_files_itself() -> None:
    """A real test of the fast path: these must not silently go to dnspython."""
    for text in EDGE_CASES[:9]:  # the cases before "things it leaves to dnspython"
        assert read_plain(text, None) is not None, text


def test_a_records_built_directly_equal_dnspythons() -> None:
    assert plain_records.A_DIRECT  # this dnspython's A record has the slots the direct build sets
    for address in ("0.0.0.0", "9.10.99.100", "192.0.2.255", "249.250.255.1", "127.101.0.3"):
        assert plain_records.CANONICAL_IPV4.fullmatch(address)
        _same_record(plain_records.address_record(RdataType.A, address), dns.rdata.from_text("IN", "A", address))
    for text in ("01.2.3.4", "1.2.3.256", "1.2.3", "1.2.3.4.5", "300.1.1.1", "1.2.3.04", " 1.2.3.4"):
        assert not plain_records.CANONICAL_IPV4.fullmatch(text), text  # left to A(), which checks and words it
        assert plain_records.address_record(RdataType.A, text) is None


def _same_record(built: dns.rdata.Rdata | None, made: dns.rdata.Rdata) -> None:
    """A record made directly is dnspython's in everything but its class: equal, same hash, text, wire, slots."""
    assert built is not None
    assert isinstance(built, type(made))
    assert (built, hash(built), built.to_text(), built.to_wire(), built.to_digestable(), built.rdcomment) == \
        (made, hash(made), made.to_text(), made.to_wire(), made.to_digestable(), made.rdcomment)
    slots = {slot for cls in type(made).__mro__ for slot in getattr(cls, "__slots__", ())}
    assert {s: getattr(built, s) for s in slots} == {s: getattr(made, s) for s in slots}
    assert len({built, made}) == 1  # one dict slot: they meet in an RRset's set


IPV6_ADDRESSES = ["::", "::1", "1::", "2001:db8::1", "2001:db8:0:0:1::", "1:0:0:2::3", "1::2:0:0:3", "fe80::1:0:0:2",
                  "1:2:3:4:5:6:7:8", "1:0:2:0:3:0:4:0", "0:0:1::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
                  "2001:db8:2:8d19::1", "::ffff:0:0", "::fffe:1:2", "64:ff9b::", "1:2:3:4:5:6:7::"]


@pytest.mark.parametrize("address", IPV6_ADDRESSES)
def test_aaaa_records_built_directly_equal_dnspythons(address: str) -> None:
    made = dns.rdata.from_text("IN", "AAAA", address)
    built = plain_records.address_record(RdataType.AAAA, made.address)
    if made.address == address:  # written as dnspython writes it: built directly
        _same_record(built, made)
    else:
        assert built is None or (built.address == made.address and built == made)


@given(st.binary(min_size=16, max_size=16))
@settings(max_examples=400, deadline=None)
def test_every_ipv6_address_dnspython_writes_is_built_the_same(wire: bytes) -> None:
    """Whatever 16 bytes: dnspython's text of them is built directly (or left to AAAA()), never differently."""
    made = dns.rdata.from_wire("IN", "AAAA", wire, 0, 16)
    built = plain_records.address_record(RdataType.AAAA, made.address)
    if built is not None:
        _same_record(built, made)
    else:
        assert "." in made.address  # only an IPv4 tail (::ffff:1.2.3.4) is left to the constructor


@given(st.lists(st.sampled_from([0, 0, 0, 1, 0x10, 0xABC, 0xFFFF]) | st.integers(0, 0xFFFF), min_size=8, max_size=8))
@settings(max_examples=600, deadline=None)
def test_ipv6_addresses_with_runs_of_zeros_are_built_as_dnspython_writes_them(groups: list[int]) -> None:
    """Zero runs of every length and place (where "::" goes, and the IPv4 tails) against dnspython's own text."""
    made = dns.rdata.from_wire("IN", "AAAA", b"".join(group.to_bytes(2, "big") for group in groups), 0, 16)
    built = plain_records.address_record(RdataType.AAAA, made.address)
    if built is not None:
        _same_record(built, made)
    else:
        assert "." in made.address
    # Any other spelling of the same address is left to the constructor, which rewrites it.
    for other in (":".join(f"{group:x}" for group in groups), ":".join(f"{group:04x}" for group in groups),
                  made.address.upper()):
        if other != made.address:
            assert plain_records.address_record(RdataType.AAAA, other) is None, other


@pytest.mark.parametrize("text", ["2001:DB8::1", "2001:db8:0::1", "2001:0db8::1", "::0:1", "1:2:3:4:5:6:7:8:9",
                                  "1::2::3", "gggg::1", "", "1.2.3.4", "::ffff:1.2.3.4", "12345::1", ":1::",
                                  "1:2:3:4:5:6:7::8", "1::2:3:4:5:6:7", "1:0::2", "0:0::1", "::0", "1::0:0:2:3:4",
                                  "1:0:0:2:0:0:0:3", "1:2:3:4:5:6:7", ":::", "1:::2", "1:2:3:4:5:6:7:8:", "::ffff:0:0"])
def test_ipv6_spellings_dnspython_would_change_or_refuse_are_left_to_it(text: str) -> None:
    assert plain_records.address_record(RdataType.AAAA, text) is None


@pytest.mark.parametrize("rdtype", ["NS", "CNAME", "PTR", "DNAME"])
@pytest.mark.parametrize("target", ["ns1.example.com.", "NS1.Example.COM.", ".", "a-b_c*.x.", "x" * 63 + ".y."])
def test_name_records_built_directly_equal_dnspythons(rdtype: str, target: str) -> None:
    assert plain_records.TARGETS_DIRECT
    made = dns.rdata.from_text("IN", rdtype, target)
    labels = dns.name.from_text(target).labels
    _same_record(plain_records.target_record(RdataType.make(rdtype), plain_records.make_name(labels)), made)


@given(st.lists(st.binary(min_size=1, max_size=63), min_size=0, max_size=6))
@settings(max_examples=400, deadline=None)
def test_names_made_directly_hash_and_compare_as_dnspythons(labels: list[bytes]) -> None:
    """Any labels, any case: the same hash and canonical wire form as dns.name.Name, and equal to it."""
    labels = [*labels, b""]
    if sum(len(label) + 1 for label in labels) > 255:
        return
    name = dns.name.Name(labels)
    made = plain_records.make_name(tuple(labels))
    assert plain_records.NAMES_DIRECT
    assert (made, hash(made), plain_records.canonical_wire(made)) == (name, hash(name), name.to_wire(canonicalize=True))
    upper = dns.name.Name([label.upper() for label in labels])
    assert (hash(made), made) == (hash(upper), upper)  # names differing in case only are one name


_LABEL = st.sampled_from([b"www", b"WWW", b"Www", b"host0009", b"host0010", b"a", b"A", b"*", b"-"]) | st.binary(
    min_size=1, max_size=8)


@given(st.lists(_LABEL, max_size=4), st.lists(_LABEL, max_size=4), st.booleans(), st.booleans())
@settings(max_examples=600, deadline=None)
def test_names_made_directly_compare_as_dnspythons(one: list[bytes], two: list[bytes], absolute_one: bool,
                                                   absolute_two: bool) -> None:
    """==, != and the hash agree with dns.name.Name's for any two names, relative or absolute, in any case."""
    first = [*one, b""] if absolute_one else one
    second = [*two, b""] if absolute_two else two
    made, name, other = plain_records.make_name(tuple(first)), dns.name.Name(first), dns.name.Name(second)
    made_other = plain_records.make_name(tuple(second))
    for left in (made, name):
        for right in (other, made_other):
            assert (left == right, left != right, right == left, right != left) == \
                (name == other, name != other, other == name, other != name)
    assert hash(made) == hash(name) and hash(made_other) == hash(other)
    assert made != str(name) and not made == 1


def test_bad_addresses_and_names_still_fail_naming_the_file_and_line() -> None:
    """What the direct builds do not take goes to dnspython, which refuses it with the file and line."""
    head = "$ORIGIN example.com.\n$TTL 300\n@ SOA ns hm 1 2 3 4 5\n@ NS ns\nns A 192.0.2.1\n"
    for line, wording in (("x AAAA 2001:db8::1::2", "bad data"), ("x AAAA 2001:db8::g", "bad data"),
                          ("x A 192.0.2.256", "bad data"), ("x AAAA 192.0.2.1", "bad data"),
                          ("x NS a..b", "label is empty"), ("x CNAME " + "a" * 64 + ".", "> 63 octets"),
                          ("x PTR " + "abcdefgh." * 29, "> 255 octets")):
        with pytest.raises(ZoneError) as raised:
            zone_module._read(head + line + "\n", None, "f.zone")
        assert (raised.value.filename, raised.value.line) == ("f.zone", 6), line
        assert wording in raised.value.detail.lower(), (line, raised.value.detail)


@pytest.mark.parametrize("text", ["", "v=spf1 mx -all", "x" * 255, "semi;colon  and spaces", "generated name a.b."])
def test_txt_records_built_directly_equal_dnspythons(text: str) -> None:
    assert plain_records.TXT_DIRECT
    _same_record(plain_records.text_record(text.encode()), dns.rdata.from_text("IN", "TXT", f'"{text}"'))


def test_a_txt_string_over_255_bytes_is_left_to_dnspython() -> None:
    assert plain_records.text_record(b"x" * 256) is None


def test_the_whole_file_check_finds_exactly_what_the_line_check_finds() -> None:
    """A file the one-pass check passes has no line the per-line check would send to dnspython."""
    from dnslab.core import zone_plain

    for code in range(0x110000):
        char = chr(code)
        in_file = zone_plain._UNSUPPORTED_IN_FILE.search(char) is not None
        assert in_file == (char != "\n" and zone_plain._UNSUPPORTED.search(char) is not None), hex(code)
