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
    from dnslab.core import zone_plain

    assert zone_plain._FAST_A  # this dnspython's A record has the slots the direct build sets
    for address in ("0.0.0.0", "9.10.99.100", "192.0.2.255", "249.250.255.1", "127.101.0.3"):
        assert zone_plain._CANONICAL_IPV4.fullmatch(address)
        made = dns.rdata.from_text("IN", "A", address)
        built = zone_plain._checked_a(address)
        assert (built, hash(built), built.to_text(), built.to_wire(), built.rdcomment) == \
            (made, hash(made), made.to_text(), made.to_wire(), made.rdcomment)
    for text in ("01.2.3.4", "1.2.3.256", "1.2.3", "1.2.3.4.5", "300.1.1.1", "1.2.3.04", " 1.2.3.4"):
        assert not zone_plain._CANONICAL_IPV4.fullmatch(text), text  # left to A(), which checks and words it
