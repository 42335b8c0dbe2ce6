"""A fast reader for the plain master-file syntax most zones are written in.

dnspython's zone-file reader reads a file one character at a time through its
tokenizer; on a generated hierarchy of 100,000 names that was more than half
of the load time.  Most lines are one record each: owner, TTL, class, type and
data, with ``$ORIGIN`` and ``$TTL`` between them.  This module reads exactly
that syntax, splitting lines as strings and building the same dnspython rdata
objects the reader would, by the same functions (``dns.name.from_text``,
``dns.ttl.from_text``, ``dns.rdata.from_text``, the rdata classes themselves).

It reads only what it is sure of.  A file with anything else in it
(parentheses, escapes, control characters, non-ASCII text, ``$INCLUDE``,
``$GENERATE``, ``$UNICODE``) or with any line it cannot read is answered
``None``, and the caller reads the whole file with dnspython's reader, so
every error keeps its exact wording, file and line.  tests/test_zone_plain.py
loads zones both ways and requires the same records.  The names and the most common
records are made directly, by core/plain_records, which says why and how.
"""

from __future__ import annotations

import re
from typing import Callable

import dns.exception
import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.ttl

from dnslab.core.plain_records import address_record, make_name, target_record, text_record

RdataType = dns.rdatatype.RdataType
_IN = dns.rdataclass.IN

# Characters this reader leaves to dnspython outside comments: anything but printable
# ASCII and tab (a CR, other whitespace str.split would split on, non-ASCII names), the
# parentheses of multi-line records and backslash escapes.
_UNSUPPORTED = re.compile(r"[^\x20-\x7e\t]|[()\\]")
# The same over a whole file (newlines allowed), as one class of characters (the
# alternation scans 4x slower): a file without any, in comments or not, needs no check
# line by line.
_UNSUPPORTED_IN_FILE = re.compile(r"[^\x20-\x27\x2a-\x5b\x5d-\x7e\t\n]")

# Types whose data is one word, built directly (what their from_text does after reading
# the word): addresses, and one domain name.  A word is followed by nothing, not even a
# comment (the reader keeps that).
_ADDRESS = frozenset({RdataType.A, RdataType.AAAA})
_ONE_NAME = frozenset({RdataType.NS, RdataType.CNAME, RdataType.PTR, RdataType.DNAME})


_SIMPLE = frozenset({RdataType.TXT, RdataType.MX, RdataType.SOA})
_ONE_QUOTED = re.compile(r'"([^"]*)"')


def _simple(rdtype: RdataType, data: str, name_of: Callable[[str], dns.name.Name]) -> dns.rdata.Rdata | None:
    """TXT of one quoted string, MX, SOA as their from_text reads them, by their constructors; else None.

    Every other spelling (several strings, a comment, a number out of range) is
    left to dns.rdata.from_text, which words the error if there is one.
    """
    cls = dns.rdata.get_rdata_class(_IN, rdtype)
    if rdtype == RdataType.TXT:
        quoted = _ONE_QUOTED.fullmatch(data)
        return None if quoted is None else text_record(quoted.group(1).encode())
    words = data.split()
    if ";" in data or '"' in data:
        return None
    if rdtype == RdataType.MX:
        if len(words) != 2 or not _is_uint(words[0], 0xFFFF):
            return None
        return cls(_IN, rdtype, int(words[0]), name_of(words[1]))  # type: ignore[call-arg]
    if len(words) != 7 or not _is_uint(words[2], 0xFFFFFFFF):
        return None
    timers = [dns.ttl.from_text(word) for word in words[3:]]  # as Tokenizer.get_ttl reads them
    return cls(_IN, rdtype, name_of(words[0]), name_of(words[1]), int(words[2]), *timers)  # type: ignore[call-arg]


def _is_uint(word: str, most: int) -> bool:
    return word.isascii() and word.isdigit() and int(word) <= most


_UNSEEN = object()  # not in a cache yet

PlainRecord = tuple[dns.name.Name, int, dns.rdata.Rdata, int]


class _NotPlain(Exception):
    """The file needs dnspython's reader."""


def read_plain(text: str, origin: dns.name.Name | None) -> tuple[list[PlainRecord], dns.name.Name | None] | None:
    """(name, ttl, rdata, line) for each record and the file's first $ORIGIN; None if not plain.

    Mirrors dns.zonefile.Reader as dnslab drives it (class IN, names absolute,
    RFC 2308 TTL defaults), so the records are equal to the reader's.
    """
    try:
        return _read_lines(text, origin)
    except _NotPlain:
        return None
    except (dns.exception.DNSException, ValueError, TypeError, AttributeError):
        return None


def _read_lines(text: str, origin: dns.name.Name | None) -> tuple[list[PlainRecord], dns.name.Name | None]:
    records: list[PlainRecord] = []
    current_origin = origin
    first_origin: dns.name.Name | None = None
    last_name = origin
    last_ttl, last_ttl_known = 0, False
    default_ttl, default_ttl_known, default_ttl_from_soa = 0, False, False
    # One Name object per spelling under one origin: owners repeat on every record of a
    # name and NS/CNAME targets are mostly owners too, so the zone keeps each name once.
    names: dict[str, dns.name.Name] = {}
    ttls: dict[str, int | None] = {}
    classes: dict[str, bool] = {}
    types: dict[str, RdataType] = {}
    rdata_class = dns.rdata.get_rdata_class
    add = records.append

    def name_of(word: str) -> dns.name.Name:
        name = names.get(word)
        if name is None:
            name = names[word] = _name(word, current_origin)
        return name

    def ttl_of(word: str) -> int | None:
        """The TTL the word states, or None when it is not a TTL (then it is read as what follows)."""
        try:
            return ttls[word]
        except KeyError:
            pass
        try:
            ttl: int | None = dns.ttl.from_text(word)
        except dns.ttl.BadTTL:
            ttl = None
        ttls[word] = ttl
        return ttl

    def is_class(word: str) -> bool:
        known = classes.get(word)
        if known is None:
            try:
                rdclass = dns.rdataclass.from_text(word)
            except dns.exception.SyntaxError:
                raise _NotPlain from None
            except Exception:
                known = False
            else:
                if rdclass != _IN:
                    raise _NotPlain  # "RR class is not zone's class": the reader words it
                known = True
            classes[word] = known
        return known

    check_lines = _UNSUPPORTED_IN_FILE.search(text) is not None
    for number, line in enumerate(text.split("\n"), 1):
        # A comment may hold anything; with a quote on the line, where it starts is the reader's call.
        if check_lines and _UNSUPPORTED.search(line if '"' in line else line.split(";", 1)[0]):
            raise _NotPlain
        if line[:1] == "$":
            if '"' in line:
                raise _NotPlain
            words = line.split(";", 1)[0].split()
            directive = words[0].upper()
            if len(words) != 2:
                raise _NotPlain
            if directive == "$ORIGIN":
                new_origin = dns.name.from_text(words[1], current_origin)
                if not new_origin.is_absolute():
                    raise _NotPlain
                names = {}  # relative spellings mean other names now (even a change of case only)
                current_origin = new_origin
                if first_origin is None:
                    first_origin = new_origin
            elif directive == "$TTL":
                default_ttl = dns.ttl.from_text(words[1])
                default_ttl_known, default_ttl_from_soa = True, False
            else:
                raise _NotPlain
            continue
        # Owner, TTL, class and type are words without quotes or comments (checked once the
        # type is found, on the lines that have either); then the data, as written (a TXT's
        # spaces and a comment matter): split once, and again at the data only when it is
        # more than one word.  The lookups in the per-file caches are inline: this loop runs
        # once per record.
        words = line.split(None, 4)
        if not words or words[0][0] == ";":
            continue  # blank, or only a comment
        if current_origin is None:
            raise _NotPlain
        if line[0] == " " or line[0] == "\t":
            name = last_name
            if name is None:
                raise _NotPlain
            at = 0
        else:
            name = names.get(words[0])
            if name is None:
                name = name_of(words[0])
            last_name = name
            at = 1
        count = len(words)
        if at >= count:
            raise _NotPlain  # the line ended before its type
        word = words[at]
        ttl = ttls.get(word, _UNSEEN)
        if ttl is _UNSEEN:
            ttl = ttl_of(word)
        if ttl is not None:
            last_ttl, last_ttl_known = ttl, True
            at += 1
            word = words[at] if at < count else _no_type()
        known = classes.get(word)
        if known if known is not None else is_class(word):
            at += 1
            word = words[at] if at < count else _no_type()
        if ttl is None:
            ttl = ttls.get(word, _UNSEEN)
            if ttl is _UNSEEN:
                ttl = ttl_of(word)
            if ttl is not None:
                last_ttl, last_ttl_known = ttl, True
                at += 1
                word = words[at] if at < count else _no_type()
            elif default_ttl_known and not default_ttl_from_soa:
                ttl = default_ttl
            elif last_ttl_known:
                ttl = last_ttl
            elif default_ttl_known:
                ttl = default_ttl
        rdtype = types.get(word)
        if rdtype is None:
            try:
                rdtype = types[word] = dns.rdatatype.from_text(word)
            except Exception:
                raise _NotPlain from None
        if ('"' in line or ";" in line) and not all(_plain_word(word) for word in words[:at + 1]):
            raise _NotPlain
        if at + 2 == count:  # one piece after the type: a word, or the rest of the line as written
            rest = words[at + 1]
        elif at + 1 == count:
            rest = ""
        else:
            rest = line.split(None, at + 1)[at + 1]
        data = rest.rstrip(" \t")
        one_word = data and not (" " in data or "\t" in data or ";" in data or '"' in data)
        if rdtype in _ADDRESS and one_word:
            rdata = address_record(rdtype, data) or rdata_class(_IN, rdtype)(_IN, rdtype, data)  # type: ignore[call-arg]
        elif rdtype in _ONE_NAME and one_word:
            rdata = target_record(rdtype, name_of(data))
        else:  # what the reader does, on this line's data alone; it keeps a comment as rdcomment
            rdata = _simple(rdtype, data, name_of) if rdtype in _SIMPLE else None
            if rdata is None:
                rdata = dns.rdata.from_text(_IN, rdtype, rest, current_origin, False, dns.name.root)
        if rdtype == RdataType.SOA and not default_ttl_known:
            # Before any $TTL, the SOA's MINIMUM is the default (the reader's pre-RFC 2308 rule).
            default_ttl, default_ttl_known, default_ttl_from_soa = rdata.minimum, True, True  # type: ignore[attr-defined]
            if ttl is None:
                ttl = last_ttl if last_ttl_known else default_ttl
        if ttl is None:
            raise _NotPlain  # "Missing default TTL value"
        add((name, ttl, rdata, number))
    return records, first_origin


# One bytes object per label spelling (www, mail, ns1...) for all zones, up to a bound:
# a lab of generated zones repeats a few hundred labels a million times.
_LABELS: dict[bytes, bytes] = {}
_LABELS_MAX = 65536
# The same by the label's text, for names of one label under the origin.
_TEXT_LABELS: dict[str, bytes] = {}


def _name(word: str, origin: dns.name.Name | None) -> dns.name.Name:
    """dns.name.from_text(word, origin) for a word without escapes, split in one step.

    from_text reads a name a byte at a time to handle escapes (which the plain reader
    leaves to dnspython).  The checks Name() makes are made here, on the new labels
    only: none empty, none longer than 63 bytes, the whole name at most 255 (RFC 1035
    §2.3.4); a name that fails them is left to dnspython, which words the error.
    """
    if "." not in word and word != "@" and origin is not None:  # one label under the origin: most names
        label = _TEXT_LABELS.get(word)
        if label is None:
            label = _label(word.encode("ascii"))
            if len(_TEXT_LABELS) < _LABELS_MAX:
                _TEXT_LABELS[word] = label
        labels = (label, *origin.labels)
        if len(labels) + sum(map(len, labels)) > 255:
            raise _NotPlain
        return make_name(labels)
    if word == "@" or word == ".":
        return dns.name.from_text(word, origin)
    parts = word.encode("ascii").split(b".")
    absolute = parts[-1] == b""
    if absolute:
        parts.pop()
    found = [_LABELS.get(part) or _label(part) for part in parts]
    if absolute:
        found.append(b"")
    elif origin is not None:
        found.extend(origin.labels)
    else:
        raise _NotPlain  # a relative name without an origin: dnspython words the error
    if len(found) + sum(map(len, found)) > 255:
        raise _NotPlain
    return make_name(tuple(found))


def _label(label: bytes) -> bytes:
    if not 0 < len(label) <= 63:
        raise _NotPlain  # an empty or too long label: dnspython words the error
    if len(_LABELS) < _LABELS_MAX:
        _LABELS[label] = label
    return label


def _plain_word(word: str) -> bool:
    """Whether a word before the data is plain: quotes and comments there are the reader's business."""
    return '"' not in word and ";" not in word


def _no_type() -> str:
    raise _NotPlain  # the line ended before its type
