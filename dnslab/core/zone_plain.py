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
loads zones both ways and requires the same records.
"""

from __future__ import annotations

import re
import socket
from typing import Callable

import dns.exception
import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.ttl

RdataType = dns.rdatatype.RdataType
_IN = dns.rdataclass.IN

# Characters this reader leaves to dnspython outside comments: anything but printable
# ASCII and tab (a CR, other whitespace str.split would split on, non-ASCII names), the
# parentheses of multi-line records and backslash escapes.
_UNSUPPORTED = re.compile(r"[^\x20-\x7e\t]|[()\\]")

# Types whose data is one word, built by calling their class directly (what their
# from_text does after reading the word): addresses, and one domain name.
_ADDRESS = frozenset({RdataType.A, RdataType.AAAA})
_ONE_NAME = frozenset({RdataType.NS, RdataType.CNAME, RdataType.PTR, RdataType.DNAME})

# A word of data is followed by nothing, not even a comment (the reader keeps that).
_OTHER_THAN_ONE_WORD = re.compile(r'[ \t;"]')

# An IPv4 address exactly as dnspython writes it (no leading zeros), which its A record
# keeps as given after checking it, at 6 us a record: most of a generated zone's lines.
_CANONICAL_IPV4 = re.compile(r"(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)")
_A = dns.rdata.get_rdata_class(_IN, RdataType.A)


class _PlainA(_A):  # type: ignore[misc, valid-type]
    """dnspython's A record, hashed from its address in one C call.

    Rdata.__hash__ hashes the wire form, which A makes through dnspython's own
    address parser and a BytesIO: 5 us, and each record is hashed as it joins its
    RRset.  For the canonical addresses this class is made for, socket.inet_aton
    gives the same four bytes (checked at import, in _same_as_constructed), so the
    hash is the same and records of either class are equal and share dict slots.
    """

    __slots__ = ()

    def __hash__(self) -> int:
        return hash(socket.inet_aton(self.address))


def _checked_a(address: str) -> dns.rdata.Rdata:
    """An A record of a canonical address, with the slots dnspython's constructor would set."""
    rdata = object.__new__(_PlainA)
    for slot, value in (("rdclass", _IN), ("rdtype", RdataType.A), ("rdcomment", None), ("address", address)):
        object.__setattr__(rdata, slot, value)
    return rdata


def _same_as_constructed() -> bool:
    """Whether _checked_a still builds what A() builds (every slot, the hash), in this dnspython."""
    made, built = _A(_IN, RdataType.A, "192.0.2.1"), _checked_a("192.0.2.1")
    slots = [slot for cls in _A.__mro__ for slot in getattr(cls, "__slots__", ())]
    return all(getattr(made, s) == getattr(built, s) and type(getattr(made, s)) is type(getattr(built, s))
               for s in slots) and set(slots) == {"rdclass", "rdtype", "rdcomment", "address"} \
        and hash(made) == hash(built) and made == built


_FAST_A = _same_as_constructed()

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
        return None if quoted is None else cls(_IN, rdtype, [quoted.group(1).encode()])  # type: ignore[call-arg]
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

    for number, line in enumerate(text.split("\n"), 1):
        # A comment may hold anything; with a quote on the line, where it starts is the reader's call.
        if _UNSUPPORTED.search(line if '"' in line else line.split(";", 1)[0]):
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
        if line[:1] in (" ", "\t"):
            rest = line.lstrip(" \t")
            if rest == "" or rest[0] == ";":
                continue  # blank, or only a comment
            if current_origin is None:
                raise _NotPlain
            name = last_name
            if name is None:
                raise _NotPlain
        else:
            if line == "" or line[0] == ";":
                continue
            if current_origin is None:
                raise _NotPlain
            word, rest = _word(line)
            name = last_name = name_of(word)

        word, rest = _word(rest)
        ttl = ttl_of(word)
        if ttl is not None:
            last_ttl, last_ttl_known = ttl, True
            word, rest = _word(rest)
        if is_class(word):
            word, rest = _word(rest)
        if ttl is None:
            ttl = ttl_of(word)
            if ttl is not None:
                last_ttl, last_ttl_known = ttl, True
                word, rest = _word(rest)
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
        data = rest.rstrip(" \t")
        if rdtype == RdataType.A and _FAST_A and _CANONICAL_IPV4.fullmatch(data):
            rdata = _checked_a(data)
        elif (rdtype in _ADDRESS or rdtype in _ONE_NAME) and data and not _OTHER_THAN_ONE_WORD.search(data):
            cls = rdata_class(_IN, rdtype)
            rdata = cls(_IN, rdtype, data if rdtype in _ADDRESS else name_of(data))  # type: ignore[call-arg]
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


class _PlainName(dns.name.Name):  # type: ignore[misc, valid-type]
    """dnspython's Name, with its hash computed a label at a time rather than a byte at a time.

    Name.__hash__ folds the name's bytes, lowercased, as h = 9h + byte, in Python: 3 us
    for a name of a generated zone, and a zone's names are hashed several times while it
    is loaded and indexed.  Over a label of m bytes that fold is h = h * 9**m + P(label),
    so with P and 9**m remembered per label spelling (labels repeat across a lab) the
    same number comes out of one step per label.  It is the same integer, so a
    _PlainName hashes as a Name of the same labels does and finds it in dicts.  Made
    only by _made (no per-label checks: _name has made them), and only if
    _SAME_HASH holds in this dnspython.
    """

    __slots__ = ()

    def __hash__(self) -> int:
        h = 0
        for label in self.labels:
            step = _LABEL_FOLDS.get(label)
            if step is None:
                step = _label_fold(label)
            h = h * step[0] + step[1]
        return h


# 9**len(label) and P(label) (see _PlainName) per label spelling, bounded as _LABELS is.
_LABEL_FOLDS: dict[bytes, tuple[int, int]] = {}


def _label_fold(label: bytes) -> tuple[int, int]:
    folded = 0
    for byte in label.lower():
        folded = folded * 9 + byte
    step = (9 ** len(label), folded)
    if len(_LABEL_FOLDS) < _LABELS_MAX:
        _LABEL_FOLDS[label] = step
    return step


def _made(labels: tuple[bytes, ...]) -> dns.name.Name:
    """A name of labels already checked as Name() checks them (its constructor validates each again)."""
    name = object.__new__(_PlainName if _SAME_HASH else dns.name.Name)
    object.__setattr__(name, "labels", labels)
    return name


def _hashes_the_same() -> bool:
    """Whether _PlainName's hash is still Name's, for names of every shape (checked once, at import)."""
    samples = [(), (b"",), (b"www", b"Example", b"COM", b""), (b"a" * 63, b"\xff\x00-_*", b""), (b"x", b"y")]
    for labels in samples:
        name = object.__new__(_PlainName)
        object.__setattr__(name, "labels", labels)
        if hash(name) != hash(dns.name.Name(labels)) or name != dns.name.Name(labels):
            return False
    return True


_SAME_HASH = _hashes_the_same()


def _name(word: str, origin: dns.name.Name | None) -> dns.name.Name:
    """dns.name.from_text(word, origin) for a word without escapes, split in one step.

    from_text reads a name a byte at a time to handle escapes (which the plain reader
    leaves to dnspython).  The checks Name() makes are made here, on the new labels
    only: none empty, none longer than 63 bytes, the whole name at most 255 (RFC 1035
    §2.3.4); a name that fails them is left to dnspython, which words the error.
    """
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
    return _made(tuple(found))


def _label(label: bytes) -> bytes:
    if not 0 < len(label) <= 63:
        raise _NotPlain  # an empty or too long label: dnspython words the error
    if len(_LABELS) < _LABELS_MAX:
        _LABELS[label] = label
    return label


def _word(text: str) -> tuple[str, str]:
    """The first word of *text* and what follows it; quotes and comments are the reader's business."""
    parts = text.split(None, 1)
    if not parts:
        raise _NotPlain  # the line ended before its type
    word = parts[0]
    if '"' in word or ";" in word:
        raise _NotPlain
    return word, parts[1] if len(parts) > 1 else ""
