"""Read RFC 1035 master files, validate them as BIND and NSD would, and index them.

dnspython's zone-file reader does the parsing (``$ORIGIN``, ``$TTL``, ``$INCLUDE``,
``$GENERATE``, parentheses, TTL units, RFC 3597 unknown types, escaped labels); it
is strict and reports ``file:line``.  But its own zone object silently drops
out-of-zone names, merges duplicates and replaces a CNAME that has neighbours,
so we feed its reader a transaction of our own that records every record with
the file and line it came from, and do the validation here.  Every problem a
person must fix therefore names the place to fix it.
"""

from __future__ import annotations

import bisect
import enum
import linecache
import os
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import dns.dnssec
import dns.exception
import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import dns.tokenizer
import dns.ttl
import dns.zonefile

from dnslab.core import collector
from dnslab.core.errors import DnslabError, ZoneError
from dnslab.core.zone_plain import read_plain

RdataType = dns.rdatatype.RdataType
_IN = dns.rdataclass.IN

# Types that may share a name with a CNAME (RFC 2181 §10.1, RFC 4035 §2.5).
_CNAME_NEIGHBOURS = frozenset({RdataType.CNAME, RdataType.RRSIG, RdataType.NSEC, RdataType.KEY})
_ADDRESS_TYPES = (RdataType.A, RdataType.AAAA)


class Severity(enum.Enum):
    """An error keeps a zone from loading; a warning is served around, as BIND does."""

    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True)
class Problem:
    """One finding about a zone file, located so a person can go and fix it."""

    severity: Severity
    filename: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.filename}:{self.line}: {self.severity.value}: {self.message}"


class SourceRecord(NamedTuple):
    """A single record as written in a file, before RRsets are formed.

    A named tuple: made once per record of every zone loaded, at half the cost of a frozen
    dataclass (whose __init__ sets each field through object.__setattr__).
    """

    name: dns.name.Name
    ttl: int
    rdata: dns.rdata.Rdata
    filename: str
    line: int


class Zone:
    """One zone's data, indexed for the RFC 1034 §4.3.2 lookup.

    ``exists`` answers for every name of the zone, empty non-terminals included,
    because NODATA versus NXDOMAIN and wildcard blocking both depend on names
    that own no records.
    """

    def __init__(self, origin: dns.name.Name, filename: str, rrsets: Iterable[dns.rrset.RRset], *,
                 built: _Built | None = None) -> None:
        """*built*: the nodes, and the owners of NS and NSEC RRsets, as validation made them for a
        zone without RRSIG and NSEC3 records (then *rrsets* is empty): each name is not looked up
        again."""
        self.origin = origin
        self.filename = filename
        # DNSSEC data lives beside the nodes, not in them: an RRSIG RRset per covered
        # type (RFC 4034 §3: signatures for different types are different RRsets),
        # and NSEC3 records, whose hashed owner names are not names of the zone
        # (RFC 5155 §7.2.8) and must not make NXDOMAIN into NODATA.
        self.signatures: dict[tuple[dns.name.Name, int], dns.rrset.RRset] = {}
        self.nsec3: dict[dns.name.Name, dns.rrset.RRset] = {}
        # Hashing a dns.name.Name folds its case byte by byte in Python, so it is done as
        # rarely as possible: about once per owner here.  A name with one RRset (most
        # names) gets a _Node of 48 bytes, one with two (an A and an AAAA, say) a _Node2
        # of 64; a dict is 224.
        nodes: dict[dns.name.Name, Mapping[int, dns.rrset.RRset]] = {}
        # The owners of NS and NSEC RRsets, noted on the way (asking each node afterwards
        # was a Python call per name).
        ns_owners: list[dns.name.Name] = []
        nsec_owners: list[dns.name.Name] = []
        if built is not None:
            nodes, ns_owners, nsec_owners = built
        self.nodes = nodes
        for rrset in rrsets:
            if rrset.rdtype == RdataType.RRSIG:
                self.signatures[(rrset.name, rrset.covers)] = rrset
            elif rrset.rdtype == RdataType.NSEC3:
                self.nsec3[rrset.name] = rrset
            else:
                if rrset.rdtype == RdataType.NS:
                    ns_owners.append(rrset.name)
                elif rrset.rdtype == RdataType.NSEC:
                    nsec_owners.append(rrset.name)
                size = len(nodes)
                node = nodes.setdefault(rrset.name, _Node(rrset.rdtype, rrset))
                if len(nodes) == size:  # the name's second RRset or more
                    if type(node) is dict:
                        node[rrset.rdtype] = rrset
                    else:
                        merged = dict(node.items())
                        merged[rrset.rdtype] = rrset
                        nodes[rrset.name] = _compact(merged)
        # The owners' ancestors that own nothing, up to the origin (RFC 4592's empty
        # non-terminals); the owners themselves are the nodes' keys, not a second set of
        # every name (32-64 bytes a name).  No parent is made for a name just under the
        # origin, as most are.
        self.empty_non_terminals: set[dns.name.Name] = set()
        depth = len(origin.labels) + 1
        for name in self.nodes:
            if len(name.labels) == depth and name.labels[1:] == origin.labels:
                continue
            if len(name.labels) < depth or not _is_subdomain(name, origin):
                continue  # the origin itself (or a name outside the zone, which the checks refuse)
            name = name.parent()
            while name not in self.nodes and name not in self.empty_non_terminals:
                self.empty_non_terminals.add(name)
                name = name.parent()
        self.cuts = frozenset(name for name in ns_owners if name != origin)
        soa = self.get(origin, RdataType.SOA)
        if soa is None:  # guarded by validation; kept for zones built by hand
            raise ZoneError(filename, 1, f"zone {origin} has no SOA record at its apex")
        self.soa = soa
        # RFC 2308 §3: negative answers carry the SOA with TTL min(SOA TTL, MINIMUM).
        # (Both copies take the set with the hashes it has: update() would hash the SOA's
        # wire form twice more, per zone.)
        self.negative_soa = dns.rrset.RRset(origin, soa.rdclass, RdataType.SOA)
        self.negative_soa.items = soa.items.copy()
        self.negative_soa.ttl = min(soa.ttl, soa[0].minimum)  # type: ignore[attr-defined]
        # Its signature goes out with the same TTL, as NSD sends it (RFC 4035 §2.2: an RRSIG's
        # TTL is its RRset's), so a validator caches both for as long.
        self.negative_soa_sig: dns.rrset.RRset | None = None
        soa_sig = self.signatures.get((origin, RdataType.SOA))
        if soa_sig is not None:
            self.negative_soa_sig = dns.rrset.RRset(origin, soa_sig.rdclass, RdataType.RRSIG, RdataType.SOA)
            self.negative_soa_sig.items = soa_sig.items.copy()
            self.negative_soa_sig.ttl = self.negative_soa.ttl

        # Canonical order (RFC 4034 §6.1), which dns.name.Name's comparisons follow:
        # the NSEC owners for finding the one that covers a name, the NSEC3 owners
        # for finding the hash that covers a hash.
        self.nsec_owners = sorted(set(nsec_owners))
        self.nsec3_owners = sorted(self.nsec3)
        param = self.get(origin, RdataType.NSEC3PARAM)
        self.nsec3param = param[0] if param is not None and self.nsec3 else None

    @property
    def signed(self) -> bool:
        """A zone with a DNSKEY at its apex and signatures: DO=1 answers carry DNSSEC data."""
        return bool(self.signatures) and self.get(self.origin, RdataType.DNSKEY) is not None

    def get(self, name: dns.name.Name, rdtype: int) -> dns.rrset.RRset | None:
        node = self.nodes.get(name)
        return None if node is None else node.get(rdtype)

    def signature(self, name: dns.name.Name, covers: int) -> dns.rrset.RRset | None:
        """The RRSIG RRset covering (name, covers), if the zone holds one."""
        return self.signatures.get((name, covers))

    def covering_nsec(self, name: dns.name.Name) -> dns.rrset.RRset | None:
        """The NSEC at *name*, else the one whose owner is the last before it in canonical order."""
        index = bisect.bisect_right(self.nsec_owners, name) - 1
        if index < 0:
            return None
        return self.nodes[self.nsec_owners[index]][RdataType.NSEC]

    def nsec3_for(self, name: dns.name.Name) -> tuple[dns.rrset.RRset | None, bool]:
        """The NSEC3 that matches *name*'s hash (True) or covers it (False)."""
        if self.nsec3param is None or not self.nsec3_owners:
            return None, False
        hashed = dns.name.Name((nsec3_label(name, self.nsec3param),)) + self.origin
        match = self.nsec3.get(hashed)
        if match is not None:
            return match, True
        index = bisect.bisect_right(self.nsec3_owners, hashed) - 1
        return self.nsec3[self.nsec3_owners[index]], False  # index -1: the last one wraps around

    def node(self, name: dns.name.Name) -> Mapping[int, dns.rrset.RRset] | None:
        return self.nodes.get(name)

    def exists(self, name: dns.name.Name) -> bool:
        """True for names with records and for empty non-terminals."""
        return name in self.nodes or name in self.empty_non_terminals

    @property
    def names(self) -> set[dns.name.Name]:
        """Every name that exists in the zone: owners and empty non-terminals (made when asked)."""
        return {name for name in self.nodes if _is_subdomain(name, self.origin)} | self.empty_non_terminals

    def addresses(self, name: dns.name.Name) -> list[str]:
        """A and AAAA data for *name* in this zone (authoritative or glue)."""
        found: list[str] = []
        for rdtype in _ADDRESS_TYPES:
            rrset = self.get(name, rdtype)
            if rrset is not None:
                found.extend(rdata.address for rdata in rrset)  # type: ignore[attr-defined]
        return found

    def rrsets(self) -> Iterator[dns.rrset.RRset]:
        """Every RRset, DNSSEC data included (RRSIGs and NSEC3 last)."""
        for node in self.nodes.values():
            yield from node.values()
        yield from self.signatures.values()
        yield from self.nsec3.values()

    def __repr__(self) -> str:
        return f"Zone({self.origin}, {self.filename!r})"


class _Node(Mapping[int, dns.rrset.RRset]):
    """A node with one RRset, read as the {type: RRset} dict a node with more is."""

    __slots__ = ("rdtype", "rrset")

    def __init__(self, rdtype: int, rrset: dns.rrset.RRset) -> None:
        self.rdtype = rdtype
        self.rrset = rrset

    def __getitem__(self, rdtype: int) -> dns.rrset.RRset:
        if rdtype == self.rdtype:
            return self.rrset
        raise KeyError(rdtype)

    def get(self, rdtype: int, default: object = None) -> dns.rrset.RRset | None:  # type: ignore[override]
        return self.rrset if rdtype == self.rdtype else default  # type: ignore[return-value]

    def __contains__(self, rdtype: object) -> bool:
        return rdtype == self.rdtype

    def __iter__(self) -> Iterator[int]:
        yield self.rdtype

    def __len__(self) -> int:
        return 1

    def values(self) -> tuple[dns.rrset.RRset]:  # type: ignore[override]
        return (self.rrset,)

    def items(self) -> tuple[tuple[int, dns.rrset.RRset]]:  # type: ignore[override]
        return ((self.rdtype, self.rrset),)

    def __repr__(self) -> str:
        return f"{{{self.rdtype!r}: {self.rrset!r}}}"


class _Node2(Mapping[int, dns.rrset.RRset]):
    """A node with two RRsets, read as the {type: RRset} dict a node with more is."""

    __slots__ = ("rdtype", "rrset", "rdtype2", "rrset2")

    def __init__(self, rdtype: int, rrset: dns.rrset.RRset, rdtype2: int, rrset2: dns.rrset.RRset) -> None:
        self.rdtype, self.rrset, self.rdtype2, self.rrset2 = rdtype, rrset, rdtype2, rrset2

    def __getitem__(self, rdtype: int) -> dns.rrset.RRset:
        if rdtype == self.rdtype:
            return self.rrset
        if rdtype == self.rdtype2:
            return self.rrset2
        raise KeyError(rdtype)

    def get(self, rdtype: int, default: object = None) -> dns.rrset.RRset | None:  # type: ignore[override]
        if rdtype == self.rdtype:
            return self.rrset
        return self.rrset2 if rdtype == self.rdtype2 else default  # type: ignore[return-value]

    def __contains__(self, rdtype: object) -> bool:
        return rdtype == self.rdtype or rdtype == self.rdtype2

    def __iter__(self) -> Iterator[int]:
        yield self.rdtype
        yield self.rdtype2

    def __len__(self) -> int:
        return 2

    def values(self) -> tuple[dns.rrset.RRset, dns.rrset.RRset]:  # type: ignore[override]
        return (self.rrset, self.rrset2)

    def items(self) -> tuple[tuple[int, dns.rrset.RRset], tuple[int, dns.rrset.RRset]]:  # type: ignore[override]
        return ((self.rdtype, self.rrset), (self.rdtype2, self.rrset2))

    def __repr__(self) -> str:
        return f"{{{self.rdtype!r}: {self.rrset!r}, {self.rdtype2!r}: {self.rrset2!r}}}"


def _compact(node: dict[int, dns.rrset.RRset]) -> Mapping[int, dns.rrset.RRset]:
    """The smallest of _Node, _Node2 and the dict itself that holds *node*."""
    if len(node) == 1:
        return _Node(*next(iter(node.items())))
    if len(node) == 2:
        (rdtype, rrset), (rdtype2, rrset2) = node.items()
        return _Node2(rdtype, rrset, rdtype2, rrset2)
    return node


def nsec3_label(name: dns.name.Name, param: object) -> bytes:
    """The base32hex hash label of *name* under NSEC3PARAM *param* (RFC 5155 §5)."""
    text = dns.dnssec.nsec3_hash(name, param.salt or None, param.iterations, param.algorithm)  # type: ignore[attr-defined]
    return text.lower().encode()


@dataclass
class ZoneLoad:
    """The outcome of reading one file: the zone when it can be served, and every finding."""

    zone: Zone | None
    problems: list[Problem] = field(default_factory=list)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity is Severity.ERROR]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity is Severity.WARNING]


# --- reading ---------------------------------------------------------------------------


class _IncludeRelativeTokenizer(dns.tokenizer.Tokenizer):
    """Resolves a relative ``$INCLUDE`` path against the including file's folder.

    named-checkzone resolves it against the working directory, which makes a
    zone folder work only from one place; Knot DNS and ldns use the file's own
    folder, which is what someone running ``dnslab up --zones DIR`` expects.
    It also keeps the line count exact, so every finding names the right line.
    """

    base_dir: str = "."
    _after_include: bool = False
    _last_line: int = 1
    # For errors that do not name their token: the last one read, and whether reading failed.
    last_token: dns.tokenizer.Token | None = None
    last_token_line: int = 1
    reading: bool = False

    def get(self, want_leading: bool = False, want_comment: bool = False) -> dns.tokenizer.Token:
        self.reading = True
        token = super().get(want_leading, want_comment)
        self.reading = False
        self.last_token, self.last_token_line = token, self._last_line
        if self._after_include and token.is_eol_or_eof():
            raise dns.exception.SyntaxError("$INCLUDE needs a file name")
        if self._after_include and token.is_identifier() and not os.path.isabs(token.value):
            token = dns.tokenizer.Token(token.ttype, os.path.join(self.base_dir, token.value))
        self._after_include = token.is_identifier() and token.value.upper() == "$INCLUDE"
        return token

    def _get_char(self) -> str:
        c = super()._get_char()
        if c and c != "\n":
            self._last_line = self.line_number
        return c

    def where(self) -> tuple[str, int]:
        """The line of the last character read, not counting newlines.

        dnspython counts a newline as soon as it reads one, also when it only
        looked ahead past a token or read the end of a directive such as
        ``$TTL`` or ``$INCLUDE``, so its own count is then one line too far.
        """
        return self.filename, self._last_line


def _adopt_tokenizer(tok: dns.tokenizer.Tokenizer) -> dns.tokenizer.Tokenizer:
    if not isinstance(tok, _IncludeRelativeTokenizer):
        tok.__class__ = _IncludeRelativeTokenizer
        filename = tok.filename if isinstance(tok.filename, str) else ""
        tok.base_dir = os.path.dirname(filename) if not filename.startswith("<") else "."  # type: ignore[attr-defined]
    return tok


class _LocatingReader(dns.zonefile.Reader):
    """dnspython's reader, remembering where each record line starts."""

    record_start: tuple[str, int] = ("<unknown>", 0)
    in_record: bool = False

    @property  # type: ignore[override]
    def tok(self) -> dns.tokenizer.Tokenizer:
        return self._tok

    @tok.setter
    def tok(self, value: dns.tokenizer.Tokenizer) -> None:
        # The reader makes a plain tokenizer for each $INCLUDE; adopt those too.
        self._tok = _adopt_tokenizer(value)

    def _rr_line(self) -> None:
        self.record_start = self.tok.where()
        self.in_record = True
        super()._rr_line()
        self.in_record = False

    def _generate_line(self) -> None:
        # Generated records come from the $GENERATE line, not the record before it.
        self.record_start = self.tok.where()
        self.in_record = True
        super()._generate_line()
        self.in_record = False

    def error_location(self) -> tuple[str, int]:
        """Where a failure happened: the record's first line, else the tokenizer's position.

        The tokenizer has often consumed the newline by the time a bad RDATA is
        noticed, so its own line number is one too far.
        """
        filename, line = self.record_start if self.in_record else self.tok.where()
        return str(filename), line


class _ReadEverything:
    """Origin facts for the reader's ``txn.manager``.

    Reporting the root as the zone origin stops the reader from silently
    skipping names outside the zone, so we can report them with their line.
    """

    def origin_information(self) -> tuple[dns.name.Name, bool, dns.name.Name]:
        return dns.name.root, False, dns.name.root

    def get_class(self) -> dns.rdataclass.RdataClass:
        return dns.rdataclass.IN


class _RecordingTransaction:
    """The part of dnspython's Transaction the reader uses; it records instead of merging."""

    def __init__(self) -> None:
        self.manager = _ReadEverything()
        self.records: list[SourceRecord] = []
        self.reader: _LocatingReader | None = None
        self.first_origin: dns.name.Name | None = None  # the file's first $ORIGIN

    def check_put_rdataset(self, check: object) -> None:
        """CNAME-and-other-data is checked later, where we can name both lines."""

    def _set_origin(self, origin: dns.name.Name) -> None:
        """Records arrive absolute; the first $ORIGIN still names the zone when its SOA is missing."""
        if self.first_origin is None:
            self.first_origin = origin

    def add_unicode(self, value: str) -> None:
        """$UNICODE changes only how the reader decodes names."""

    def add(self, name: dns.name.Name, ttl: int, rdata: dns.rdata.Rdata) -> None:
        assert self.reader is not None
        filename, line = self.reader.record_start
        self.records.append(SourceRecord(name, ttl, rdata, str(filename), line))


def read_records(text_or_file: str | Path, origin: dns.name.Name | None, filename: str | None = None) -> list[SourceRecord]:
    """Parse a master file (a path, or text when *filename* is given) into located records.

    Raises ZoneError (file:line) for anything the file's syntax does not allow.
    """
    return _read(text_or_file, origin, filename)[0]


def _read(text_or_file: str | Path, origin: dns.name.Name | None,
          filename: str | None) -> tuple[list[SourceRecord], dns.name.Name | None]:
    """read_records, and the file's first $ORIGIN."""
    if filename is None:
        filename = str(text_or_file)
        try:
            with open(text_or_file, encoding="utf-8") as handle:
                text = handle.read()
        except OSError as exc:
            raise ZoneError(filename, 0, f"cannot read zone file: {exc.strerror or exc}") from None
        except UnicodeDecodeError as exc:
            raise ZoneError(filename, 1, f"not UTF-8 text: {exc.reason}") from None
    else:
        text = str(text_or_file)
    plain = read_plain(text, origin)
    if plain is not None:
        records, first_origin = plain
        return [SourceRecord(name, ttl, rdata, filename, line) for name, ttl, rdata, line in records], first_origin
    return _read_with_dnspython(text, origin, filename)


def _read_with_dnspython(text: str, origin: dns.name.Name | None,
                         filename: str) -> tuple[list[SourceRecord], dns.name.Name | None]:
    """dnspython's reader, for any syntax (and every error) the plain reader leaves to it."""
    txn = _RecordingTransaction()
    tokenizer = dns.tokenizer.Tokenizer(text, filename)
    reader = _LocatingReader(tokenizer, dns.rdataclass.IN, txn, allow_include=True)  # type: ignore[arg-type]
    txn.reader = reader
    reader.current_origin = origin
    reader.last_name = origin
    try:
        reader.read()
    except dns.zonefile.UnknownOrigin:
        at_file, at_line = reader.error_location()
        raise ZoneError(at_file, at_line, "relative name but no origin: add $ORIGIN or give the zone name") from None
    except OSError as exc:  # an $INCLUDE that cannot be opened
        at_file, at_line = reader.tok.where()
        raise ZoneError(str(at_file), at_line, f"$INCLUDE {exc.filename}: {exc.strerror or exc}") from None
    except (dns.exception.DNSException, ValueError) as exc:
        at_file, at_line = reader.error_location()
        source = _source_line(at_file, at_line, text if at_file == filename else None)
        detail = _explain(exc, reader, source, at_line)
        raise ZoneError(at_file, at_line, f"{detail} (near: {source})" if source else detail) from None
    return txn.records, txn.first_origin


# What a record's data must look like, for errors that dnspython words only as "malformed".
_EXPECTED = {
    "A": "an IPv4 address such as 192.0.2.1",
    "AAAA": "an IPv6 address such as 2001:db8::1",
}
_GOT = re.compile(r'^expected EOL or EOF, got \d+ "(.*)"$', re.S)


def _explain(exc: Exception, reader: "_LocatingReader", source: str, at_line: int) -> str:
    """dnspython's message, made to name the token at fault and what was expected instead.

    dnspython says "Text input is malformed." for a bad address and
    `expected EOL or EOF, got 3 "@"` when a "(" is never closed; a person needs
    the word that was wrong, the record type it was read for, and what fits.
    """
    detail = str(exc) or type(exc).__name__
    if isinstance(exc, dns.exception.SyntaxError):
        detail = detail.split(": ", 1)[-1]  # dnspython's own "file:line: " prefix
    detail = detail.rstrip(".")
    wordless = detail in (dns.exception.SyntaxError.__doc__.rstrip("."), "SyntaxError")  # type: ignore[union-attr]
    tok = reader.tok
    rdtype = _record_type(source) if reader.in_record else None
    what = f"the {rdtype} record" if rdtype else "the record"
    if not reader.in_record:
        what = f"the {source.split()[0]} directive" if source.startswith("$") else "the line"
    if getattr(tok, "reading", False):  # the tokenizer itself failed, before a token was complete
        if detail == "newline in quoted string":
            return 'a quoted string is not closed: expected a closing \'"\' on the same line'
        if wordless and source.count(")") > source.count("("):
            return '")" without a "(" before it'
        if wordless:
            return "bad escape: expected \\DDD (three digits, at most 255) or \\ and one character"
        return detail
    extra = _GOT.match(str(exc).split(": ", 1)[-1])
    token = getattr(tok, "last_token", None)
    token_line = getattr(tok, "last_token_line", at_line)
    where = f" on line {token_line}" if token_line != at_line else ""
    if extra is not None:
        if getattr(tok, "multiline", 0) > 0:
            return f'"(" never closed: after {what}\'s data came "{extra.group(1)}"{where}, where ")" was expected'
        return f'unexpected "{extra.group(1)}"{where} after {what}\'s data: expected the end of the line'
    if token is None or not reader.in_record:
        return detail
    if token.is_eol_or_eof():  # the data was read to the end of the line, then found short or wrong
        return f"{what} ends too soon: {detail}" if detail.startswith("expecting") else f"{what}'s data: {detail}"
    if detail.startswith("unknown rdatatype"):
        return (f'unknown record type "{token.value}": expected a type such as A, AAAA, CNAME, MX, NS, TXT, '
                f'or TYPE<number> (RFC 3597)')
    expected = _EXPECTED.get(rdtype or "", f"valid {rdtype or 'record'} data") if wordless else detail
    return f'bad data "{token.value}"{where} for {what}: {"expected " if wordless else ""}{expected}'


def _record_type(line: str) -> str | None:
    """The type named on a record's first line: after the owner, TTL and class (RFC 1035 §5.1)."""
    words = line.split()
    if line[:1] not in (" ", "\t") and words:
        words = words[1:]  # the owner (a leading blank means: the previous owner)
    for word in words:
        if word.upper() in ("IN", "CH", "HS", "CS") or word.upper().startswith("CLASS"):
            continue
        try:
            dns.ttl.from_text(word)
            continue
        except dns.exception.DNSException:
            pass
        try:
            return dns.rdatatype.to_text(dns.rdatatype.from_text(word))
        except dns.exception.DNSException:
            return None
    return None


def _source_line(filename: str, line: int, text: str | None) -> str:
    """The offending line's text, so an error says what it is about as BIND's 'near' does."""
    if text is not None:
        lines = re.split(r"\r\n|\r|\n", text)  # as dnspython counts lines (not str.splitlines)
        found = lines[line - 1] if 0 < line <= len(lines) else ""
    else:
        found = linecache.getline(filename, line)
    return found.split(";", 1)[0].strip()


# --- validation ------------------------------------------------------------------------


def load_zone(path: str | Path, origin: str | dns.name.Name | None = None) -> ZoneLoad:
    """Read and validate a zone file; the zone is None when any error was found."""
    return _load(path, _as_name(origin), None)


def load_zone_text(text: str, origin: str | dns.name.Name | None = None, filename: str = "<zone>") -> ZoneLoad:
    """Like load_zone, for zone text held in memory (tests, generated zones)."""
    return _load(text, _as_name(origin), filename)


def _as_name(origin: str | dns.name.Name | None) -> dns.name.Name | None:
    if origin is None or isinstance(origin, dns.name.Name):
        return origin
    return dns.name.from_text(origin)


def _load(source: str | Path, origin: dns.name.Name | None, filename: str | None) -> ZoneLoad:
    name_for_errors = filename if filename is not None else str(source)
    try:
        records, stated = _read(source, origin, filename)
    except ZoneError as exc:
        return ZoneLoad(None, [Problem(Severity.ERROR, exc.filename, exc.line, exc.detail)])
    return _validate(records, origin, name_for_errors, stated)


def _validate(records: list[SourceRecord], origin: dns.name.Name | None, filename: str,
              stated: dns.name.Name | None = None) -> ZoneLoad:
    """*stated*: the file's $ORIGIN, which names the zone when no origin is given and the SOA is missing."""
    problems: list[Problem] = []

    def report(severity: Severity, record: SourceRecord | None, message: str) -> None:
        where_file, where_line = (record.filename, record.line) if record else (filename, 1)
        problems.append(Problem(severity, where_file, where_line, message))

    if origin is None:
        first_soa = next((r for r in records if r.rdata.rdtype == RdataType.SOA), None)
        if first_soa is not None:
            origin = first_soa.name
        elif stated is not None:
            origin = stated
        else:
            report(Severity.ERROR, records[0] if records else None,
                   "no SOA record and no $ORIGIN, so the zone's name is unknown: expected an SOA record at the apex")
            return ZoneLoad(None, problems)

    # Each owner's RRsets, each RRset's records by their data: a duplicate is found in one
    # step (comparing with every earlier record made a 3,000-record RRset take 18 s), and
    # each record costs one lookup of its owner (none when it repeats the line before's
    # owner, as the plain reader shares it) and one hash of its data.  *order* keeps the
    # RRsets in the order they first appear, which the findings and the zone follow.
    # An owner's groups are held in the node shapes the zone serves (_Node, _Node2, a dict),
    # which become its nodes when the groups become RRsets: the zone needs no second dict
    # of every name.
    by_name: dict[dns.name.Name, Mapping[int, _Group]] = {}
    order: list[tuple[dns.name.Name, int, _Group]] = []
    last_name: dns.name.Name | None = None
    types: Mapping[int, _Group] = {}
    for record in records:
        name = record.name
        rdata = record.rdata
        rdtype = rdata.rdtype
        if rdtype == RdataType.RRSIG:
            rdtype = _group_type(rdata)
        if name is not last_name:
            size = len(by_name)
            fresh = _Node(rdtype, None)
            found = by_name.setdefault(name, fresh)  # type: ignore[arg-type]
            if len(by_name) > size:
                if not _is_subdomain(name, origin):
                    # NSD refuses the zone; BIND ignores the record. A lab zone that silently
                    # lacks a record its author wrote is the worse surprise, so: an error.
                    found = by_name[name] = _OUTSIDE
                else:  # a new owner: its first group
                    fresh.rrset = _Group(rdata, record)  # type: ignore[assignment]
                    order.append((name, rdtype, fresh.rrset))  # type: ignore[arg-type]
                    last_name, types = name, fresh  # type: ignore[assignment]
                    continue
            if found is _OUTSIDE:
                report(Severity.ERROR, record, f"out-of-zone data ({record.name}) in zone {origin}")
                last_name = None
                continue
            last_name, types = name, found
        group = types.get(rdtype)
        if group is None:
            group = _Group(rdata, record)
            order.append((name, rdtype, group))
            if type(types) is dict:
                types[rdtype] = group
            else:
                merged = dict(types.items())
                merged[rdtype] = group
                types = by_name[name] = _compact(merged)
            continue
        duplicate = group.add(rdata, record)
        if duplicate is not None:
            report(Severity.WARNING, record, f"duplicate record {record.name} {record.rdata.rdtype.name}, "
                   f"first at line {duplicate.line}; ignored")
            continue
        first = group.records[0]
        if record.ttl != first.ttl:
            lowest = min(r.ttl for r in group.records)
            report(Severity.WARNING, record, f"TTL {record.ttl} differs from {first.ttl} for the rest of "
                   f"the {record.name} {record.rdata.rdtype.name} RRset (line {first.line}); using the "
                   f"lowest, {lowest} (RFC 2181 §5.2, as NSD)")

    apex = by_name.get(origin, {})
    apex_soa = apex[RdataType.SOA].records if RdataType.SOA in apex else []
    if not apex_soa:
        report(Severity.ERROR, records[0] if records else None,
               f"zone {origin} has no SOA record at its apex: expected one, as the zone's first record")
    elif len(apex_soa) > 1:
        report(Severity.ERROR, apex_soa[1], f"zone {origin} has more than one SOA record")
    for name, rdtype, group in order:
        if rdtype == RdataType.SOA and name != origin:
            report(Severity.ERROR, group.records[0], f"SOA record for {name} is not at the zone apex {origin}")
    if not apex.get(RdataType.NS):
        report(Severity.ERROR, apex_soa[0] if apex_soa else None, f"zone {origin} has no NS records at its apex")

    for name, named in by_name.items():
        cname_group = named.get(RdataType.CNAME)
        if cname_group is None:
            continue
        cname = cname_group.records
        if len(cname) > 1:
            report(Severity.ERROR, cname[1], f"{name} has more than one CNAME record")
        others = [group.records[0] for group in named.values()
                  if group.records[0].rdata.rdtype not in _CNAME_NEIGHBOURS]
        for other in others:
            report(Severity.ERROR, max(other, cname[0], key=lambda r: (r.filename, r.line)),
                   f"CNAME and other data at {name} (CNAME line {cname[0].line}, "
                   f"{other.rdata.rdtype.name} line {other.line})")
        if name == origin:
            report(Severity.ERROR, cname[0], f"CNAME at the zone apex {origin}")
    for name, rdtype, group in order:
        if rdtype == RdataType.DNAME and len(group.records) > 1:
            report(Severity.ERROR, group.records[1], f"{name} has more than one DNAME record")

    _check_glue(origin, by_name, report)

    if any(p.severity is Severity.ERROR for p in problems):
        return ZoneLoad(None, problems)
    if any(rdtype > 0xFFFF or rdtype == RdataType.NSEC3 for _, rdtype, _ in order):
        # DNSSEC data (RRSIGs, grouped by the type they cover, and NSEC3) is kept beside
        # the nodes: the zone sorts it out of the RRsets.
        rrsets = [_rrset(name, group) for name, _, group in order]
        return ZoneLoad(Zone(origin, filename, rrsets), problems)
    return ZoneLoad(Zone(origin, filename, (), built=_nodes_of(by_name)), problems)


# by_name's mark for an owner outside the zone.
_OUTSIDE: dict[int, "_Group"] = {}

# A zone's nodes as validation builds them, and the owners of its NS and NSEC RRsets.
_Built = tuple[dict[dns.name.Name, Mapping[int, dns.rrset.RRset]], list[dns.name.Name], list[dns.name.Name]]


def _nodes_of(by_name: dict[dns.name.Name, Mapping[int, "_Group"]]) -> _Built:
    """The validated groups made RRsets in place: each node keeps its place (no name is hashed again).

    Each RRset is named as the first record of its group spells its owner, as the zone
    made from a list of RRsets names them.
    """
    ns_owners: list[dns.name.Name] = []
    nsec_owners: list[dns.name.Name] = []
    for name, node in by_name.items():
        if type(node) is _Node:
            node.rrset = _rrset(node.rrset.records[0].name, node.rrset)  # type: ignore[attr-defined]
            types: Iterable[int] = (node.rdtype,)
        elif type(node) is _Node2:
            node.rrset = _rrset(node.rrset.records[0].name, node.rrset)  # type: ignore[attr-defined]
            node.rrset2 = _rrset(node.rrset2.records[0].name, node.rrset2)  # type: ignore[attr-defined]
            types = (node.rdtype, node.rdtype2)
        else:
            for rdtype, group in list(node.items()):
                node[rdtype] = _rrset(group.records[0].name, group)  # type: ignore[index]
            types = node
        for rdtype in types:
            if rdtype == RdataType.NS:
                ns_owners.append(name)
            elif rdtype == RdataType.NSEC:
                nsec_owners.append(name)
    return by_name, ns_owners, nsec_owners  # type: ignore[return-value]


class _Group:
    """One RRset's records while a zone is validated: its data as a set, and the records in order.

    *data* becomes the RRset's own set (dnspython keeps an RRset's rdatas as the keys of
    a dict), so each record's data is hashed once, here: hashing an rdata encodes its
    wire form.  Where a record came from is looked up by its data only for duplicates.
    """

    __slots__ = ("data", "records", "_by_data")

    def __init__(self, rdata: dns.rdata.Rdata, record: SourceRecord) -> None:
        self.data: dict[dns.rdata.Rdata, None] = {rdata: None}
        self.records = [record]
        self._by_data: dict[dns.rdata.Rdata, SourceRecord] | None = None

    def add(self, rdata: dns.rdata.Rdata, record: SourceRecord) -> SourceRecord | None:
        """Add *record*, or return the earlier record with the same data."""
        size = len(self.data)
        self.data.setdefault(rdata)
        if len(self.data) == size:
            if self._by_data is None:
                self._by_data = {r.rdata: r for r in self.records}
            return self._by_data[rdata]
        self.records.append(record)
        if self._by_data is not None:
            self._by_data[rdata] = record
        return None


def _is_subdomain(name: dns.name.Name, origin: dns.name.Name) -> bool:
    """name.is_subdomain(origin), without its case-folding comparison when the labels match as written."""
    count = len(origin.labels)
    return name.labels[len(name.labels) - count:] == origin.labels or name.is_subdomain(origin)


def _check_glue(origin: dns.name.Name, by_name: dict[dns.name.Name, dict[int, _Group]],
                report) -> None:  # type: ignore[no-untyped-def]
    """Every NS name inside this zone's own bailiwick needs an address here.

    For a delegation that is the glue RFC 1034 §4.2.1 requires (without it the
    child can never be reached); at the apex it is what named-checkzone checks.
    """
    for name, types in by_name.items():
        ns_group = types.get(RdataType.NS)
        if ns_group is None:
            continue
        for ns_record in ns_group.records:
            target: dns.name.Name = ns_record.rdata.target  # type: ignore[attr-defined]
            if not target.is_subdomain(origin):
                continue
            if any(by_name.get(target, {}).get(t) for t in _ADDRESS_TYPES):
                continue
            if name == origin:
                report(Severity.ERROR, ns_record, f"NS {target} of {origin} is inside the zone but has no A or AAAA record")
            else:
                report(Severity.ERROR, ns_record, f"delegation {name} NS {target}: no glue (A or AAAA for {target})")


def _group_type(rdata: dns.rdata.Rdata) -> int:
    """The RRset an record belongs to: its type, except that RRSIGs group by the type they cover."""
    if rdata.rdtype == RdataType.RRSIG:
        return 0x10000 | rdata.covers()
    return rdata.rdtype


# The types whose Rdata.covers() is not NONE (it names the type they sign).
_COVERING = (RdataType.RRSIG, RdataType.SIG)


def _rrset(name: dns.name.Name, group: _Group) -> dns.rrset.RRset:
    """One RRset; differing TTLs become the lowest, as RFC 2181 §5.2 tells clients to read them.

    The records are already one RRset's, without duplicates, and checked (one SOA, one
    CNAME), so the RRset takes the group's set as its own: RRset.add would hash each
    record's wire form twice more.
    """
    records = group.records
    first = records[0].rdata
    rdtype = first.rdtype
    rrset = dns.rrset.RRset(name, _IN, rdtype, first.covers() if rdtype in _COVERING else RdataType.NONE)
    rrset.items = group.data
    rrset.ttl = records[0].ttl if len(records) == 1 else min(record.ttl for record in records)
    return rrset


def changed_zone(zone: Zone, rrset: dns.rrset.RRset | None = None,
                 delete: tuple[dns.name.Name, int] | None = None) -> Zone:
    """A copy of *zone* with one RRset replaced (or added) or deleted, and the SOA serial one up.

    This is what `dnslab record set/delete` serves at once, as a dynamic update
    (RFC 2136) would: the same checks that loading makes for the one name touched.
    A refusal is a DnslabError naming the zone, not a ZoneError: the change has no
    file and line (the zone file is not touched).
    """
    name = rrset.name if rrset is not None else delete[0] if delete is not None else None
    where = f"zone {zone.origin}"
    if name is None or not name.is_subdomain(zone.origin):
        raise DnslabError(f"{name} is not in zone {zone.origin}")
    rdtype = rrset.rdtype if rrset is not None else delete[1]  # type: ignore[index]
    if rdtype == RdataType.SOA:
        raise DnslabError(f"{where}: the SOA is changed only by editing the zone file (then dnslab reload)")
    node = dict(zone.nodes.get(name, {}))
    if rrset is not None:
        others = [t for t in node if t != rdtype and t not in _CNAME_NEIGHBOURS]
        if rdtype == RdataType.CNAME and others:
            names = " ".join(dns.rdatatype.to_text(t) for t in others)
            raise DnslabError(f"{where}: {name} already has {names} records, and a CNAME cannot share its name "
                              "with other data (RFC 1034 §3.6.2): delete them first")
        if rdtype not in _CNAME_NEIGHBOURS and RdataType.CNAME in node:
            raise DnslabError(f"{where}: {name} has a CNAME, which cannot share its name with other data "
                              "(RFC 1034 §3.6.2): delete the CNAME first")
        node[rdtype] = rrset
    elif node.pop(rdtype, None) is None:
        raise DnslabError(f"{where}: no {dns.rdatatype.to_text(rdtype)} records at {name}")
    rrsets = [r for owner, types in zone.nodes.items() if owner != name for r in types.values()]
    rrsets.extend(node.values())
    soa = next(r for r in rrsets if r.name == zone.origin and r.rdtype == RdataType.SOA)
    bumped = dns.rrset.RRset(soa.name, soa.rdclass, soa.rdtype)
    bumped.add(soa[0].replace(serial=(soa[0].serial + 1) % 2**32), soa.ttl)  # type: ignore[attr-defined]
    rrsets = [bumped if r is soa else r for r in rrsets]
    return Zone(zone.origin, zone.filename, rrsets)


def load_zones(paths: Iterable[str | Path]) -> tuple[list[Zone], list[Problem]]:
    """Load several files; raises ZoneError on the first error so nothing half-loaded is served."""
    zones: list[Zone] = []
    problems: list[Problem] = []
    with collector.paused():
        for path in paths:
            loaded = load_zone(path)
            problems.extend(loaded.problems)
            if loaded.errors:
                first = loaded.errors[0]
                raise ZoneError(first.filename, first.line, first.message)
            assert loaded.zone is not None
            zones.append(loaded.zone)
    seen: dict[dns.name.Name, Zone] = {}
    for zone in zones:
        if zone.origin in seen:
            raise ZoneError(zone.filename, 1, f"zone {zone.origin} is also loaded from {seen[zone.origin].filename}")
        seen[zone.origin] = zone
    return zones, problems
