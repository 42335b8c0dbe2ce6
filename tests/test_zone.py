"""The zone loader: every master-file feature reads, every mistake is found and located.

A finding is only useful if it names the file and line to fix, so every
validation case asserts the severity, the exact line and a recognisable part
of the message.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import dns.name
import dns.rdatatype
import pytest

from dnslab.core.errors import ZoneError
from dnslab.core.zone import Problem, Severity, Zone, ZoneLoad, load_zone, load_zone_text, load_zones

ERROR, WARNING = Severity.ERROR, Severity.WARNING

# Five lines, so the first line a case adds is line 6.
HEAD = [
    "$ORIGIN example.com.",
    "$TTL 3600",
    "@ SOA ns1 hostmaster 1 7200 900 1209600 300",
    "@ NS ns1",
    "ns1 A 192.0.2.53",
]


def text(*lines: str) -> str:
    return "\n".join(lines) + "\n"


def records(zone: Zone | None) -> list[str]:
    """Every record of a zone as sorted presentation lines."""
    assert zone is not None
    return sorted(line for rrset in zone.rrsets() for line in rrset.to_text().splitlines())


def clean(load: ZoneLoad) -> Zone:
    assert [str(p) for p in load.problems] == []
    assert load.zone is not None
    return load.zone


def name(text: str) -> dns.name.Name:
    return dns.name.from_text(text)


HEAD_RECORDS = [
    "example.com. 3600 IN NS ns1.example.com.",
    "example.com. 3600 IN SOA ns1.example.com. hostmaster.example.com. 1 7200 900 1209600 300",
    "ns1.example.com. 3600 IN A 192.0.2.53",
]


# --- syntax: what dnspython's reader accepts, we load ----------------------------------------


SYNTAX_CASES = [
    pytest.param(text(*HEAD), None, HEAD_RECORDS, id="origin-ttl-relative-names-at"),
    pytest.param(text(*HEAD[1:]), "example.com", HEAD_RECORDS, id="origin-given-by-caller"),
    pytest.param(text(*HEAD[1:]), "example.com.", HEAD_RECORDS, id="origin-given-absolute"),
    pytest.param(
        text(
            "$ORIGIN example.com.",
            "$TTL 1h",
            "@ IN SOA ns1.example.com. hostmaster (  ; the serial and timers follow",
            "        1          ; serial",
            "        2h         ; refresh",
            "        15m        ; retry",
            "        2w         ; expire",
            "        5m )       ; minimum",
            "  NS ns1           ; owner omitted: still the apex",
            "ns1 1d A 192.0.2.53",
            "ns1 AAAA 2001:db8::53",
        ),
        None,
        [
            "example.com. 3600 IN NS ns1.example.com.",
            "example.com. 3600 IN SOA ns1.example.com. hostmaster.example.com. 1 7200 900 1209600 300",
            "ns1.example.com. 3600 IN AAAA 2001:db8::53",
            "ns1.example.com. 86400 IN A 192.0.2.53",
        ],
        id="parentheses-comments-ttl-units-owner-omitted",
    ),
    pytest.param(
        text(*HEAD, "a 300 IN A 192.0.2.1", "b IN 300 A 192.0.2.2", "c IN A 192.0.2.3", "d 1w2d3h4m5s A 192.0.2.4"),
        None,
        HEAD_RECORDS + [
            "a.example.com. 300 IN A 192.0.2.1",
            "b.example.com. 300 IN A 192.0.2.2",
            "c.example.com. 3600 IN A 192.0.2.3",
            "d.example.com. 788645 IN A 192.0.2.4",
        ],
        id="class-and-ttl-either-order-and-units",
    ),
    pytest.param(
        text(*HEAD, "$ORIGIN sub.example.com.", "www A 192.0.2.9", "$ORIGIN example.com.", "@ MX 10 mail",
             "mail A 192.0.2.25"),
        None,
        HEAD_RECORDS + [
            "example.com. 3600 IN MX 10 mail.example.com.",
            "mail.example.com. 3600 IN A 192.0.2.25",
            "www.sub.example.com. 3600 IN A 192.0.2.9",
        ],
        id="origin-changes-midway",
    ),
    pytest.param(
        text(*HEAD, r"a\.b A 192.0.2.1", r"\065bc A 192.0.2.2", r"sp\032ace TXT semi\;colon"),
        None,
        HEAD_RECORDS + [
            r"Abc.example.com. 3600 IN A 192.0.2.2",
            r"a\.b.example.com. 3600 IN A 192.0.2.1",
            r'sp\032ace.example.com. 3600 IN TXT "semi;colon"',
        ],
        id="escaped-labels",
    ),
    pytest.param(
        text(*HEAD, 'txt TXT "two words; not a comment" second', r'q TXT "a \"quoted\" word"'),
        None,
        HEAD_RECORDS + [
            r'q.example.com. 3600 IN TXT "a \"quoted\" word"',
            'txt.example.com. 3600 IN TXT "two words; not a comment" "second"',
        ],
        id="quoted-strings",
    ),
    pytest.param(
        text(*HEAD, r"x TYPE65280 \# 2 abcd", r"y TYPE1 \# 4 c0000204", r"z CLASS1 A 192.0.2.5"),
        None,
        HEAD_RECORDS + [
            r"x.example.com. 3600 IN TYPE65280 \# 2 abcd",
            "y.example.com. 3600 IN A 192.0.2.4",
            "z.example.com. 3600 IN A 192.0.2.5",
        ],
        id="rfc3597-unknown-types-and-classes",
    ),
    pytest.param(
        text(*HEAD, "$GENERATE 1-3 host$ A 192.0.2.$", "$GENERATE 1-2 p${10,3,d} 60 CNAME host$"),
        None,
        HEAD_RECORDS + [
            "host1.example.com. 3600 IN A 192.0.2.1",
            "host2.example.com. 3600 IN A 192.0.2.2",
            "host3.example.com. 3600 IN A 192.0.2.3",
            "p011.example.com. 60 IN CNAME host1.example.com.",
            "p012.example.com. 60 IN CNAME host2.example.com.",
        ],
        id="generate",
    ),
    pytest.param(
        text(*HEAD, "ns2.example.com. A 192.0.2.54", "@ NS ns2.example.com.", "sub NS ns.elsewhere.net."),
        None,
        HEAD_RECORDS + [
            "example.com. 3600 IN NS ns2.example.com.",
            "ns2.example.com. 3600 IN A 192.0.2.54",
            "sub.example.com. 3600 IN NS ns.elsewhere.net.",
        ],
        id="absolute-names-and-out-of-zone-ns-needs-no-glue",
    ),
    pytest.param(
        "\r\n".join(HEAD) + "\r\n",
        None,
        HEAD_RECORDS,
        id="crlf-line-ends",
    ),
]


@pytest.mark.parametrize(("source", "origin", "expected"), SYNTAX_CASES)
def test_syntax_loads(source: str, origin: str | None, expected: list[str]) -> None:
    zone = clean(load_zone_text(source, origin))
    assert zone.origin == name("example.com.")
    assert records(zone) == sorted(expected)


def test_escaped_labels_are_single_labels() -> None:
    zone = clean(load_zone_text(text(*HEAD, r"a\.b A 192.0.2.1", r"\065bc A 192.0.2.2")))
    assert zone.exists(dns.name.Name((b"a.b", b"example", b"com", b"")))
    assert zone.exists(name("abc.example.com."))  # \065 is "A"; names compare case-insensitively
    assert not zone.exists(name("b.example.com."))


# --- $INCLUDE ------------------------------------------------------------------------------


def test_include_is_relative_to_the_including_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    zones = tmp_path / "zones"
    (zones / "inc" / "deeper").mkdir(parents=True)
    (zones / "example.com.zone").write_text(text(*HEAD, "$INCLUDE inc/hosts.inc", "after A 192.0.2.99"))
    (zones / "inc" / "hosts.inc").write_text(text(
        "www A 192.0.2.1",
        "$INCLUDE deeper/more.inc",   # relative to inc/, the folder of this file
        "$INCLUDE deeper/sub.inc sub",  # with an origin, relative to the current one
        "www AAAA 2001:db8::1",
    ))
    (zones / "inc" / "deeper" / "more.inc").write_text(text("mail A 192.0.2.25"))
    (zones / "inc" / "deeper" / "sub.inc").write_text(text("host A 192.0.2.7", "@ TXT at-sub"))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # the working directory must not matter

    zone = clean(load_zone(zones / "example.com.zone"))
    assert records(zone) == sorted(HEAD_RECORDS + [
        "after.example.com. 3600 IN A 192.0.2.99",  # the origin is back after the include
        "host.sub.example.com. 3600 IN A 192.0.2.7",
        "mail.example.com. 3600 IN A 192.0.2.25",
        'sub.example.com. 3600 IN TXT "at-sub"',
        "www.example.com. 3600 IN A 192.0.2.1",
        "www.example.com. 3600 IN AAAA 2001:db8::1",
    ])


def test_include_relative_from_a_relative_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "zones").mkdir()
    (tmp_path / "zones" / "main.zone").write_text(text(*HEAD, "$INCLUDE hosts.inc"))
    (tmp_path / "zones" / "hosts.inc").write_text(text("www A 192.0.2.1"))
    monkeypatch.chdir(tmp_path)
    zone = clean(load_zone("zones/main.zone"))
    assert "www.example.com. 3600 IN A 192.0.2.1" in records(zone)


def test_problems_in_an_included_file_name_that_file(tmp_path: Path) -> None:
    (tmp_path / "main.zone").write_text(text(*HEAD, "www A 192.0.2.1", "$INCLUDE hosts.inc"))
    (tmp_path / "hosts.inc").write_text(text("; hosts", "mail A 192.0.2.25", "www A 192.0.2.1"))
    load = load_zone(tmp_path / "main.zone")
    assert load.zone is not None
    [warning] = load.problems
    assert (warning.severity, warning.filename, warning.line) == (WARNING, str(tmp_path / "hosts.inc"), 3)
    assert "duplicate record www.example.com. A, first at line 6" in warning.message


def test_a_large_rrset_loads_whole_and_its_duplicate_is_found() -> None:
    # Duplicates are found by the records' data, not by comparing with every earlier record
    # (which made a 3,000-record RRset take 18 s to load).
    many = [f"many A 10.0.{i // 256}.{i % 256}" for i in range(2000)]
    load = load_zone_text(text(*HEAD, *many, "many A 10.0.0.7"))
    assert load.zone is not None
    assert len(load.zone.get(dns.name.from_text("many.example.com."), dns.rdatatype.A)) == 2000
    [warning] = load.problems
    assert warning.line == len(HEAD) + len(many) + 1
    assert f"duplicate record many.example.com. A, first at line {len(HEAD) + 8}" in warning.message


def test_syntax_error_in_an_included_file(tmp_path: Path) -> None:
    (tmp_path / "main.zone").write_text(text(*HEAD, "$INCLUDE hosts.inc", "www A 192.0.2.1"))
    (tmp_path / "hosts.inc").write_text(text("mail A 192.0.2.25", "bad A 192.0.2.256", "ok A 192.0.2.3"))
    load = load_zone(tmp_path / "main.zone")
    assert load.zone is None
    [error] = load.problems
    assert (error.severity, error.filename, error.line) == (ERROR, str(tmp_path / "hosts.inc"), 2)


def test_include_of_a_missing_file(tmp_path: Path) -> None:
    (tmp_path / "main.zone").write_text(text(*HEAD, "www A 192.0.2.1", "$INCLUDE missing.inc", "x A 192.0.2.2"))
    load = load_zone(tmp_path / "main.zone")
    assert load.zone is None
    [error] = load.problems
    assert (error.severity, error.filename, error.line) == (ERROR, str(tmp_path / "main.zone"), 7)
    assert "missing.inc" in error.message
    assert "No such file" in error.message


# --- validation ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Finding:
    severity: Severity
    line: int
    words: str  # a recognisable part of the message

    def matches(self, problem: Problem) -> bool:
        return (problem.severity, problem.filename, problem.line) == (self.severity, "<zone>", self.line) \
            and self.words in problem.message


VALIDATION_CASES = [
    # --- errors: the zone is not served -------------------------------------------------
    pytest.param(text("$ORIGIN example.com.", "$TTL 3600", "@ NS ns1", "ns1 A 192.0.2.53"), None, False,
                 # $ORIGIN names the zone: the error says which zone lacks its SOA (issue 15)
                 [Finding(ERROR, 3, "zone example.com. has no SOA record at its apex: expected one")],
                 id="missing-soa-origin-from-file"),
    pytest.param(text("$TTL 3600", "@ NS ns1", "ns1 A 192.0.2.53"), "example.com", False,
                 [Finding(ERROR, 2, "zone example.com. has no SOA record at its apex")], id="missing-soa-origin-given"),
    pytest.param("", None, False, [Finding(ERROR, 1, "no SOA record and no $ORIGIN, so the zone's name is unknown")],
                 id="empty-file"),
    pytest.param(text("$TTL 3600", "@ NS ns1"), None, False,
                 [Finding(ERROR, 2, "no origin")], id="relative-name-without-origin"),
    pytest.param(text(*HEAD, "www SOA ns1 hostmaster 1 7200 900 1209600 300"), None, False,
                 [Finding(ERROR, 6, "SOA record for www.example.com. is not at the zone apex example.com.")],
                 id="soa-not-at-apex"),
    pytest.param(text(*HEAD, "@ SOA ns1 hostmaster 2 7200 900 1209600 300"), None, False,
                 [Finding(ERROR, 6, "more than one SOA record")], id="two-soa"),
    pytest.param(text("$ORIGIN example.com.", "$TTL 3600", "", "@ SOA ns1 hostmaster 1 7200 900 1209600 300",
                      "www A 192.0.2.1"), None, False,
                 [Finding(ERROR, 4, "zone example.com. has no NS records at its apex")], id="no-apex-ns"),
    pytest.param(text(*HEAD, "www CNAME ns1", "", "www A 192.0.2.1"), None, False,
                 [Finding(ERROR, 8, "CNAME and other data at www.example.com. (CNAME line 6, A line 8)")],
                 id="cname-then-other-data"),
    pytest.param(text(*HEAD, "www A 192.0.2.1", "www CNAME ns1"), None, False,
                 [Finding(ERROR, 7, "CNAME and other data at www.example.com. (CNAME line 7, A line 6)")],
                 id="other-data-then-cname"),
    pytest.param(text(*HEAD, "www CNAME ns1", "www CNAME mail"), None, False,
                 [Finding(ERROR, 7, "www.example.com. has more than one CNAME record")], id="two-cnames"),
    pytest.param(text(*HEAD, "@ CNAME www"), None, False,
                 [Finding(ERROR, 6, "CNAME and other data at example.com. (CNAME line 6, SOA line 3)"),
                  Finding(ERROR, 6, "CNAME and other data at example.com. (CNAME line 6, NS line 4)"),
                  Finding(ERROR, 6, "CNAME at the zone apex")], id="cname-at-apex"),
    pytest.param(text(*HEAD, "d DNAME example.org.", "d DNAME example.net."), None, False,
                 [Finding(ERROR, 7, "d.example.com. has more than one DNAME record")], id="two-dnames"),
    pytest.param(text(*HEAD, "sub NS ns.sub", "sub NS ns.elsewhere.net."), None, False,
                 [Finding(ERROR, 6, "delegation sub.example.com. NS ns.sub.example.com.: no glue")],
                 id="delegation-without-glue"),
    pytest.param(text(*HEAD, "sub NS ns1.sub", "ns1.sub A 192.0.2.9", "sub NS ns2.sub", "ns2.sub AAAA 2001:db8::9"),
                 None, True, [], id="delegation-with-a-and-aaaa-glue"),
    pytest.param(text(*HEAD, "@ NS ns2"), None, False,
                 [Finding(ERROR, 6, "NS ns2.example.com. of example.com. is inside the zone but has no A or AAAA")],
                 id="apex-ns-without-address"),
    pytest.param(text(*HEAD, "www A 999.1.1.1", "x A 192.0.2.1"), None, False,
                 [Finding(ERROR, 6, "")], id="syntax-error-bad-address"),
    pytest.param(text(*HEAD, "www BOGUS 10", "x A 192.0.2.1"), None, False,
                 [Finding(ERROR, 6, "BOGUS")], id="syntax-error-unknown-type"),
    pytest.param(text(*HEAD, "www MX 10", "x A 192.0.2.1"), None, False,
                 [Finding(ERROR, 6, "")], id="syntax-error-missing-field"),
    pytest.param(text(*HEAD, "www A 192.0.2.1 extra", "x A 192.0.2.1"), None, False,
                 [Finding(ERROR, 6, "extra")], id="syntax-error-trailing-junk"),
    pytest.param(text(*HEAD, "www CH A 192.0.2.1"), None, False,
                 [Finding(ERROR, 6, "class")], id="syntax-error-other-class"),
    pytest.param(text(*HEAD, "$TTL", "x A 192.0.2.1"), None, False,
                 [Finding(ERROR, 6, "$TTL")], id="syntax-error-bad-ttl-directive"),
    pytest.param(text(*HEAD, "$FOO bar", "x A 192.0.2.1"), None, False,
                 [Finding(ERROR, 6, "$FOO")], id="syntax-error-unknown-directive"),
    pytest.param(text(*HEAD, "$GENERATE 1-2", "x A 192.0.2.1"), None, False,
                 [Finding(ERROR, 6, "")], id="syntax-error-bad-generate"),
    pytest.param(text(*HEAD, "$INCLUDE /nonexistent/dnslab-test.inc", "x A 192.0.2.1"), None, False,
                 [Finding(ERROR, 6, "$INCLUDE /nonexistent/dnslab-test.inc: No such file")], id="include-missing"),
    # --- warnings: served without the record, as BIND does ------------------------------------
    pytest.param(text(*HEAD, "www.example.org. A 192.0.2.1", "www A 192.0.2.2"), None, False,
                 [Finding(ERROR, 6, "out-of-zone data (www.example.org.) in zone example.com.")],
                 id="out-of-zone-record"),
    pytest.param(text(*HEAD, "www A 192.0.2.1", "www A 192.0.2.2", "www A 192.0.2.1"), None, True,
                 [Finding(WARNING, 8, "duplicate record www.example.com. A, first at line 6; ignored")],
                 id="duplicate-record"),
    pytest.param(text(*HEAD, "www A 192.0.2.1", "www 60 A 192.0.2.2"), None, True,
                 [Finding(WARNING, 7, "TTL 60 differs from 3600 for the rest of the www.example.com. A RRset "
                                      "(line 6); using the lowest, 60")], id="ttl-mismatch"),
    pytest.param(text(*HEAD, "h1 A 192.0.2.1", "x TXT spacer", "$GENERATE 1-2 h$ A 192.0.2.$"), None, True,
                 [Finding(WARNING, 8, "duplicate record h1.example.com. A, first at line 6")],
                 id="generate-records-carry-their-line"),
    pytest.param(text(*HEAD, "@ SOA (ns1 hostmaster", "  2 7200 900 1209600 300)", "www A 192.0.2.1",
                      "www A 192.0.2.1"), None, False,
                 [Finding(ERROR, 6, "more than one SOA record"), Finding(WARNING, 9, "duplicate record www")],
                 id="multi-line-record-located-at-its-first-line"),
    pytest.param("\r\n".join(HEAD + ["www A 192.0.2.1", "www A 192.0.2.1"]) + "\r\n", None, True,
                 [Finding(WARNING, 7, "duplicate record")], id="crlf-lines-counted-once"),
]


@pytest.mark.parametrize(("source", "origin", "served", "findings"), VALIDATION_CASES)
def test_validation(source: str, origin: str | None, served: bool, findings: list[Finding]) -> None:
    load = load_zone_text(source, origin)
    unmatched = list(load.problems)
    for finding in findings:
        match = next((p for p in unmatched if finding.matches(p)), None)
        assert match is not None, f"{finding} not among {[str(p) for p in load.problems]}"
        unmatched.remove(match)
    assert unmatched == [], "unexpected: " + "; ".join(map(str, unmatched))
    assert (load.zone is not None) is served
    assert load.errors == [p for p in load.problems if p.severity is ERROR]
    assert load.warnings == [p for p in load.problems if p.severity is WARNING]


def test_errors_and_warnings_together_still_refuse_the_zone() -> None:
    load = load_zone_text(text(*HEAD, "www A 192.0.2.1", "www A 192.0.2.1", "sub NS ns.sub"))
    assert load.zone is None
    assert [(p.severity, p.line) for p in load.warnings] == [(WARNING, 7)]
    assert [(p.severity, p.line) for p in load.errors] == [(ERROR, 8)]


def test_problem_text_names_file_and_line() -> None:
    [problem] = load_zone_text(text(*HEAD, "www A 192.0.2.1", "www A 192.0.2.1"), filename="db.example").problems
    assert str(problem).startswith("db.example:7: warning: duplicate record")


def test_syntax_error_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "example.com.zone"
    path.write_text(text(*HEAD, "", "; a comment", "www A 999.1.1.1"))
    [error] = load_zone(path).problems
    assert (error.severity, error.filename, error.line) == (ERROR, str(path), 8)
    assert str(error).startswith(f"{path}:8: error: ")


@pytest.mark.parametrize("lines,line,message", [
    # dnspython says "Text input is malformed." for both
    (["mail A 999.1.2.3"], 6, 'bad data "999.1.2.3" for the A record: expected an IPv4 address such as 192.0.2.1'),
    (["v6 3600 IN AAAA 2001:db8::zz"], 6,
     'bad data "2001:db8::zz" for the AAAA record: expected an IPv6 address such as 2001:db8::1'),
    # dnspython says: expected EOL or EOF, got 3 "@"
    (["www A 192.0.2.1 extra"], 6, 'unexpected "extra" after the A record\'s data: expected the end of the line'),
    (["sub SOA ns1 hostmaster ( 1 7200 900 1209600 300", "www A 192.0.2.1"], 6,
     '"(" never closed: after the SOA record\'s data came "www" on line 7, where ")" was expected'),
    (["mx MX ten mail"], 6, 'bad data "ten" for the MX record: expecting an integer'),
    (["mx MX 10"], 6, "the MX record ends too soon: expecting an identifier"),
    (["www A 192.0.2.1 )"], 6, '")" without a "(" before it'),
    (['txt TXT "unclosed'], 6, 'a quoted string is not closed: expected a closing \'"\' on the same line'),
    (["x FOO 1.2.3.4"], 6, 'unknown record type "FOO": expected a type such as A, AAAA, CNAME, MX, NS, TXT, '
                           'or TYPE<number> (RFC 3597)'),
])
def test_syntax_errors_name_the_token_and_what_was_expected(lines: list[str], line: int, message: str) -> None:
    [error] = load_zone_text(text(*HEAD, *lines), filename="db.example").problems
    assert str(error).startswith(f"db.example:{line}: error: {message} (near: {lines[0]})"), str(error)


def test_out_of_zone_record_refuses_the_zone_as_nsd_does() -> None:
    load = load_zone_text(text(*HEAD, "www.example.org. A 192.0.2.1", "www A 192.0.2.2"))
    assert load.zone is None
    assert [(p.line, p.severity) for p in load.problems] == [(6, Severity.ERROR)]


def test_duplicate_and_ttl_mismatch_keep_one_rrset_with_the_lowest_ttl() -> None:
    load = load_zone_text(text(*HEAD, "www A 192.0.2.1", "www 60 A 192.0.2.2", "www 60 A 192.0.2.1"))
    assert [p.line for p in load.warnings] == [7, 8]
    rrset = load.zone.get(name("www.example.com."), dns.rdatatype.A) if load.zone else None
    assert rrset is not None
    assert sorted(rrset.to_text().splitlines()) == [
        "www.example.com. 60 IN A 192.0.2.1",
        "www.example.com. 60 IN A 192.0.2.2",
    ]


def test_missing_zone_file(tmp_path: Path) -> None:
    [error] = load_zone(tmp_path / "nope.zone").problems
    assert error.severity is ERROR
    assert error.filename == str(tmp_path / "nope.zone")
    assert "cannot read zone file" in error.message


# --- the indexed zone ------------------------------------------------------------------------


def test_names_include_empty_non_terminals() -> None:
    zone = clean(load_zone_text(text(*HEAD, "a.b.c A 192.0.2.1", "x.y TXT x", "deep.sub NS ns.elsewhere.net.")))
    for existing in ["example.com.", "ns1.example.com.", "a.b.c.example.com.", "b.c.example.com.", "c.example.com.",
                     "x.y.example.com.", "y.example.com.", "deep.sub.example.com.", "sub.example.com."]:
        assert zone.exists(name(existing)), existing
        assert name(existing) in zone.names
    for missing in ["com.", "b.example.com.", "z.a.b.c.example.com.", "example.org."]:
        assert not zone.exists(name(missing)), missing
    assert zone.node(name("b.c.example.com.")) is None  # exists, but owns nothing
    assert zone.cuts == frozenset({name("deep.sub.example.com.")})


@pytest.mark.parametrize(("soa_ttl", "minimum", "negative_ttl"), [
    pytest.param(3600, 300, 300, id="minimum-smaller"),
    pytest.param(60, 300, 60, id="soa-ttl-smaller"),
    pytest.param(300, 300, 300, id="equal"),
])
def test_negative_soa_ttl(soa_ttl: int, minimum: int, negative_ttl: int) -> None:
    zone = clean(load_zone_text(text(
        "$ORIGIN example.com.", f"@ {soa_ttl} SOA ns1 hostmaster 1 7200 900 1209600 {minimum}",
        "@ 3600 NS ns1", "ns1 3600 A 192.0.2.53")))
    assert zone.soa.ttl == soa_ttl
    assert zone.negative_soa.ttl == negative_ttl
    assert zone.negative_soa.to_text() == (f"example.com. {negative_ttl} IN SOA ns1.example.com. "
                                           f"hostmaster.example.com. 1 7200 900 1209600 {minimum}")


def test_zone_lookup_helpers() -> None:
    zone = clean(load_zone_text(text(*HEAD, "ns1 AAAA 2001:db8::53", "www A 192.0.2.1")))
    assert zone.addresses(name("ns1.example.com.")) == ["192.0.2.53", "2001:db8::53"]
    assert zone.addresses(name("nothere.example.com.")) == []
    assert zone.get(name("WWW.EXAMPLE.COM."), dns.rdatatype.A) is not None
    assert zone.get(name("www.example.com."), dns.rdatatype.AAAA) is None


# --- load_zones --------------------------------------------------------------------------------


def test_load_zones_returns_zones_and_warnings(tmp_path: Path) -> None:
    (tmp_path / "a.zone").write_text(text(*HEAD, "www A 192.0.2.1", "www A 192.0.2.1"))
    (tmp_path / "b.zone").write_text(text(*[line.replace("example.com", "example.org") for line in HEAD]))
    zones, problems = load_zones([tmp_path / "a.zone", tmp_path / "b.zone"])
    assert [z.origin for z in zones] == [name("example.com."), name("example.org.")]
    assert [(p.severity, p.filename, p.line) for p in problems] == [(WARNING, str(tmp_path / "a.zone"), 7)]


def test_load_zones_raises_on_the_first_error(tmp_path: Path) -> None:
    (tmp_path / "a.zone").write_text(text(*HEAD, "sub NS ns.sub"))
    with pytest.raises(ZoneError) as raised:
        load_zones([tmp_path / "a.zone"])
    assert (raised.value.filename, raised.value.line) == (str(tmp_path / "a.zone"), 6)
    assert str(raised.value).startswith(f"{tmp_path / 'a.zone'}:6: ")


def test_load_zones_refuses_the_same_zone_twice(tmp_path: Path) -> None:
    (tmp_path / "a.zone").write_text(text(*HEAD))
    (tmp_path / "b.zone").write_text(text(*HEAD))
    with pytest.raises(ZoneError, match="also loaded from"):
        load_zones([tmp_path / "a.zone", tmp_path / "b.zone"])


def test_names_are_the_owners_and_every_empty_non_terminal() -> None:
    """NODATA versus NXDOMAIN rests on this set: owners, their ancestors up to the apex, nothing else."""
    loaded = load_zone_text(
        "$ORIGIN example.com.\n$TTL 300\n@ SOA ns hm 1 2 3 4 5\n@ NS ns\nns A 192.0.2.1\n"
        "a.b.c A 192.0.2.2\nWWW.Example.COM. A 192.0.2.3\nx.Y AAAA 2001:db8::1\nsub NS ns.sub\nns.sub A 192.0.2.4\n",
        filename="names.zone")
    assert loaded.zone is not None, loaded.problems
    got = {name.to_text().lower() for name in loaded.zone.names}
    assert got == {"example.com.", "ns.example.com.", "a.b.c.example.com.", "b.c.example.com.", "c.example.com.",
                   "www.example.com.", "x.y.example.com.", "y.example.com.", "sub.example.com.", "ns.sub.example.com."}
    assert loaded.zone.exists(dns.name.from_text("C.example.com."))
    assert not loaded.zone.exists(dns.name.from_text("com."))
    assert not loaded.zone.exists(dns.name.from_text("d.example.com."))
    assert loaded.zone.cuts == frozenset({dns.name.from_text("sub.example.com.")})


def test_nodes_of_one_two_and_more_rrsets_read_as_dicts() -> None:
    """A node is stored in the smallest shape that holds it; each reads as the {type: RRset} dict it stands for."""
    import dns.rrset

    loaded = load_zone_text("$ORIGIN example.com.\n$TTL 300\n@ SOA ns hm 1 2 3 4 5\n@ NS ns\nns A 192.0.2.1\n"
                            "two A 192.0.2.2\ntwo AAAA 2001:db8::2\nthree A 192.0.2.3\nthree AAAA 2001:db8::3\n"
                            "three TXT \"t\"\n")
    zone = loaded.zone
    assert zone is not None
    A, AAAA, TXT, MX = dns.rdatatype.A, dns.rdatatype.AAAA, dns.rdatatype.TXT, dns.rdatatype.MX
    for owner, types in (("ns", [A]), ("two", [A, AAAA]), ("three", [A, AAAA, TXT]), ("@", [dns.rdatatype.SOA, dns.rdatatype.NS])):
        name = dns.name.from_text(owner, zone.origin)
        node = zone.node(name)
        assert node is not None
        as_dict = {rrset.rdtype: rrset for rrset in zone.rrsets() if rrset.name == name}
        assert list(node) == types and len(node) == len(types) and node == as_dict and as_dict == node
        assert list(node.items()) == list(as_dict.items()) and list(node.values()) == list(as_dict.values())
        assert all(t in node and node[t] is as_dict[t] and node.get(t) is as_dict[t] for t in types)
        assert MX not in node and node.get(MX) is None and node.get(MX, 0) == 0 and zone.get(name, MX) is None
        with pytest.raises(KeyError):
            node[MX]
    # An RRset given twice for one name and type: the last one counts, whatever the node's shape.
    two = dns.name.from_text("two", zone.origin)
    again = dns.rrset.from_text(two, 60, "IN", "AAAA", "2001:db8::99")
    rebuilt = Zone(zone.origin, zone.filename, [*zone.rrsets(), again])
    assert rebuilt.get(two, AAAA) is again and rebuilt.get(two, A) is zone.get(two, A) and len(rebuilt.node(two)) == 2


@pytest.mark.parametrize("text", [
    # one, two and three RRsets a name, case variants of one name, a delegation with glue, an empty
    # non-terminal, NSEC records without signatures
    "$ORIGIN example.com.\n$TTL 300\n@ SOA ns hm 1 2 3 4 5\n@ NS ns\nns A 192.0.2.1\nWWW A 192.0.2.2\n"
    "www AAAA 2001:db8::2\nWww TXT \"t\"\nsub NS ns.sub\nns.sub A 192.0.2.3\na.b.c A 192.0.2.4\n"
    "@ NSEC ns A NS SOA NSEC\nns NSEC www A NSEC\nmail MX 10 ns\nmail A 192.0.2.5\n",
    "$ORIGIN example.com.\n$TTL 300\n@ SOA ns hm 1 2 3 4 5\n@ NS ns\nns A 192.0.2.1\nx A 192.0.2.9\n"
    "y CNAME x\nx AAAA ::1\n@ MX 1 x\nx TXT \"late\"\n",
])
def test_a_validated_zone_equals_the_zone_made_from_its_rrsets(text: str) -> None:
    """Validation builds the nodes in place; the zone is the one Zone() makes of the same RRsets."""
    zone = load_zone_text(text).zone
    assert zone is not None
    rebuilt = Zone(zone.origin, zone.filename, list(zone.rrsets()))
    assert list(zone.nodes) == list(rebuilt.nodes)
    assert [(name.to_text(), dict(node)) for name, node in zone.nodes.items()] == \
        [(name.to_text(), dict(node)) for name, node in rebuilt.nodes.items()]
    assert [type(node) for node in zone.nodes.values()] == [type(node) for node in rebuilt.nodes.values()]
    assert (zone.cuts, zone.empty_non_terminals, zone.nsec_owners, zone.soa, zone.negative_soa) == \
        (rebuilt.cuts, rebuilt.empty_non_terminals, rebuilt.nsec_owners, rebuilt.soa, rebuilt.negative_soa)
    assert [r.name.to_text() for r in zone.rrsets()] == [r.name.to_text() for r in rebuilt.rrsets()]
    assert zone.cuts and zone.empty_non_terminals or "sub NS" not in text
