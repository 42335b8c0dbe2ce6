"""dnspython names and records made directly, for the plain zone reader (core/zone_plain).

A lab of a million names spent most of its start in dnspython's constructors and
hashes: a Name checks its labels again after the reader has split them, an AAAA
record parses and reprints its address, and the hashes a zone's dicts need are
folded a byte at a time in Python (Name.__hash__) or made from the wire form
through a BytesIO (Rdata.__hash__: 5 us for an A record, 30 us for a CNAME).

Here, for values the plain reader has already checked (labels, canonical
addresses), the objects are made with exactly the slots their constructor
sets, as subclasses whose only difference is a __hash__ that computes the same
integer faster.  Equal objects hash alike whichever class made them, so they
meet dnspython's own objects in dicts and sets, and compare equal to them.  Each
shortcut is checked against dnspython's own construction when this module is
imported; one that does not match in the installed dnspython is not used (the
reader then calls the constructors, as before).  Anything else, and every
address or name a constructor would refuse, is left to the constructors, which
word the error.
"""

from __future__ import annotations

import binascii
import inspect
import pickle
import re

import dns.ipv6
import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype

from dnslab.core import names
from dnslab.core.names import label_hash, name_equal, name_unequal

RdataType = dns.rdatatype.RdataType
_IN = dns.rdataclass.IN

# --- names ------------------------------------------------------------------------------


class PlainName(dns.name.Name):  # type: ignore[misc, valid-type]
    """dnspython's Name, with its hash computed a label at a time (`core.names.label_hash`): the
    same integer, without dnspython's loop over every byte."""

    __slots__ = ()

    __hash__ = label_hash
    # Name.__eq__ without the walk of Name.fullcompare (`core.names`); that hash collides a lot
    # (host0009 and host0010 hash alike: 9 * 9 + 9 = 9 * 10 + 0), so dict lookups compare names often.
    __eq__ = name_equal
    __ne__ = name_unequal


def canonical_wire(name: dns.name.Name) -> bytes:
    """An absolute name's wire form in lowercase (RFC 4034 §6.2), as Name.to_wire(canonicalize=True) writes it."""
    return names.canonical_wire(name.labels)


_new = object.__new__
_set = object.__setattr__  # past the immutable classes' __setattr__, as their __init__ is


def _new_name(labels: tuple[bytes, ...]) -> dns.name.Name:
    name = _new(PlainName)
    _set(name, "labels", labels)
    return name


def _new_record(cls: type, rdtype: RdataType, field: str, value: object) -> dns.rdata.Rdata:
    """A record with the slots Rdata.__init__ sets (class IN, type, no comment) and its one field."""
    record = _new(cls)
    _set(record, "rdclass", _IN)
    _set(record, "rdtype", rdtype)
    _set(record, "rdcomment", None)
    _set(record, field, value)
    return record


def _name_shortcut_holds() -> bool:
    """Whether PlainName hashes as Name and canonical_wire writes as to_wire, for names of every shape."""
    samples = [(b"",), (b"www", b"Example", b"COM", b""), (b"a" * 63, b"\xff\x00-_*", b""), (b"x", b"Y")]
    for labels in samples:
        name, plain = dns.name.Name(labels), _new_name(labels)
        if hash(plain) != hash(name) or plain != name or not plain == name or name != plain:
            return False
        for other in (dns.name.Name(labels[1:]), dns.name.Name([label.upper() for label in labels]),
                      dns.name.Name([*labels[:-1], b"q"])):
            if (plain == other) != (name == other) or (plain != other) != (name != other):
                return False
        if name.is_absolute() and canonical_wire(plain) != name.to_wire(canonicalize=True):
            return False
    return True


NAMES_DIRECT = names.LABEL_HASH_HOLDS and names.METHODS_HOLD and _name_shortcut_holds()


def make_name(labels: tuple[bytes, ...]) -> dns.name.Name:
    """A name of labels already checked as Name() checks them (none empty but the last, none over
    63 bytes, at most 255 bytes in all): Name() would check each again."""
    if NAMES_DIRECT:
        return _new_name(labels)
    return dns.name.Name(labels)


# --- records ----------------------------------------------------------------------------

# An IPv4 address exactly as dnspython writes it (no leading zeros), which its A record
# keeps as given after checking it: most of a generated zone's lines.
CANONICAL_IPV4 = re.compile(r"(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)")

_A = dns.rdata.get_rdata_class(_IN, RdataType.A)
_AAAA = dns.rdata.get_rdata_class(_IN, RdataType.AAAA)


class PlainA(_A):  # type: ignore[misc, valid-type]
    """dnspython's A record of a canonical address, hashed from the same four bytes as its wire form, in C calls."""

    __slots__ = ()

    def __hash__(self) -> int:
        return hash(bytes(map(int, self.address.split("."))))


class PlainAAAA(_AAAA):  # type: ignore[misc, valid-type]
    """dnspython's AAAA record of a canonical address, hashed from the same 16 bytes as its wire form."""

    __slots__ = ()

    def __hash__(self) -> int:
        return hash(_ipv6_wire(self.address))


_HEX_GROUP = re.compile(r"[1-9a-f][0-9a-f]{0,3}|0")


def _canonical_ipv6_groups(text: str) -> list[str] | None:
    """The eight groups of an IPv6 address written exactly as dnspython writes it; None for any other text.

    dnspython writes RFC 5952's form: lowercase hex without leading zeros, "::" for
    the first longest run of two zero groups or more, and an IPv4 tail after ::ffff:0:0/96
    and ::/96 with two groups or more, which this leaves to the constructor.
    Anything that is not an address at all is not canonical either.
    """
    head, compressed, tail = text.partition("::")
    left = head.split(":") if head else []
    right = tail.split(":") if tail else []
    missing = 8 - len(left) - len(right)
    if compressed:
        if missing < 2:
            return None
        groups = [*left, *["0"] * missing, *right]
    elif missing:
        return None
    else:
        groups = left
    for group in groups:
        if not _HEX_GROUP.fullmatch(group):
            return None
    best_start, best_length, start = 0, 0, -1
    for index, group in enumerate([*groups, "end"]):  # the first longest run of zero groups, as dnspython finds it
        if group == "0":
            if start < 0:
                start = index
        elif start >= 0:
            if index - start > best_length:
                best_start, best_length = start, index - start
            start = -1
    if best_length < 2:  # a single zero group is written as 0
        best_start, best_length = 0, 0
    if (best_start, best_length) != ((len(left), missing) if compressed else (0, 0)):
        return None
    if best_start == 0 and (best_length == 6 or best_length == 5 and groups[5] == "ffff"):
        return None  # written with an IPv4 tail
    return groups


def _ipv6_wire(canonical: str) -> bytes:
    """The 16 bytes of an address _canonical_ipv6_groups accepts (not for other text)."""
    head, _, tail = canonical.partition("::")
    left = head.split(":") if head else []
    right = tail.split(":") if tail else []
    return binascii.unhexlify("".join([group.rjust(4, "0") for group in left]) + "0000" * (8 - len(left) - len(right))
                              + "".join([group.rjust(4, "0") for group in right]))


_TXT = dns.rdata.get_rdata_class(_IN, RdataType.TXT)


class PlainTXT(_TXT):  # type: ignore[misc, valid-type]
    """dnspython's TXT record, hashed from its wire form (each string after its length) joined in one call."""

    __slots__ = ()

    def __hash__(self) -> int:
        return hash(b"".join([bytes((len(string),)) + string for string in self.strings]))


def _target_hash(self: dns.rdata.Rdata) -> int:
    """Rdata.__hash__ of a record whose wire form is its target name alone (canonical)."""
    return hash(canonical_wire(self.target))  # type: ignore[attr-defined]


# NS, CNAME, PTR and DNAME: one name each, hashed from canonical_wire.
_TARGET_TYPES = (RdataType.NS, RdataType.CNAME, RdataType.PTR, RdataType.DNAME)
_PLAIN_TARGET: dict[int, type] = {}
for _rdtype in _TARGET_TYPES:
    _base = dns.rdata.get_rdata_class(_IN, _rdtype)
    _plain = type(f"Plain{_base.__name__}", (_base,), {
        "__slots__": (), "__hash__": _target_hash,
        "__doc__": f"dnspython's {_base.__name__} record, hashed from its target's canonical wire form."})
    globals()[_plain.__name__] = _plain  # a module attribute, as a class statement would make it (pickle finds it)
    _PLAIN_TARGET[_rdtype] = _plain


def _record_shortcut_holds(plain: type, rdtype: RdataType, field: str, value: object) -> bool:
    """Whether _new_record(plain, ...) builds what the constructor builds: the same slots, equal, same hash."""
    base = plain.__mro__[1]
    made = base(_IN, rdtype, value)
    built = _new_record(plain, rdtype, field, value)
    slots = [slot for cls in base.__mro__ for slot in getattr(cls, "__slots__", ())]
    return set(slots) == {"rdclass", "rdtype", "rdcomment", field} and all(
        getattr(made, s) == getattr(built, s) and type(getattr(made, s)) is type(getattr(built, s)) for s in slots
    ) and hash(made) == hash(built) and made == built and made.to_wire() == built.to_wire()  # type: ignore[attr-defined]


_MIXED_CASE = dns.name.Name((b"Ns1", b"EXAMPLE", b"com", b""))
A_DIRECT = _record_shortcut_holds(PlainA, RdataType.A, "address", "192.0.2.1")
AAAA_DIRECT = all(_record_shortcut_holds(PlainAAAA, RdataType.AAAA, "address", text)
                  and _canonical_ipv6_groups(text) is not None
                  for text in ("2001:db8::1", "::", "1:0:0:2::3", "fe80::1:0:0:2", "1:2:3:4:5:6:7:8"))
TXT_DIRECT = all(_record_shortcut_holds(PlainTXT, RdataType.TXT, "strings", (text,))
                 for text in (b"v=spf1 mx -all", b"", b"x" * 255, b"\x00\xff"))
TARGETS_DIRECT = NAMES_DIRECT and all(
    _record_shortcut_holds(plain, rdtype, "target", _new_name(_MIXED_CASE.labels))
    and _record_shortcut_holds(plain, rdtype, "target", _MIXED_CASE)
    for rdtype, plain in _PLAIN_TARGET.items())


def address_record(rdtype: RdataType, text: str) -> dns.rdata.Rdata | None:
    """An A or AAAA record of an address written as dnspython writes it; None for any other spelling.

    dnspython keeps an address as the text it prints, so an address already in that
    form needs neither its parser nor its printer.  None leaves the text to the
    constructor, which canonicalizes it or words why it is not an address.
    """
    if rdtype == RdataType.A:
        if A_DIRECT and CANONICAL_IPV4.fullmatch(text):
            return _new_record(PlainA, RdataType.A, "address", text)
        return None
    if AAAA_DIRECT and _canonical_ipv6_groups(text) is not None:
        return _new_record(PlainAAAA, RdataType.AAAA, "address", text)
    return None


def target_record(rdtype: RdataType, target: dns.name.Name) -> dns.rdata.Rdata:
    """An NS, CNAME, PTR or DNAME record of an absolute name (the constructor only checks that it is a Name)."""
    if TARGETS_DIRECT:
        return _new_record(_PLAIN_TARGET[rdtype], rdtype, "target", target)
    return dns.rdata.get_rdata_class(_IN, rdtype)(_IN, rdtype, target)  # type: ignore[call-arg]


def text_record(string: bytes) -> dns.rdata.Rdata | None:
    """A TXT record of one string; None for a string over 255 bytes, which the constructor refuses and words."""
    if len(string) > 255:
        return None
    if TXT_DIRECT:
        return _new_record(PlainTXT, RdataType.TXT, "strings", (string,))
    return _TXT(_IN, RdataType.TXT, [string])  # type: ignore[no-any-return]


# --- records read from the wire ---------------------------------------------------------
#
# The upstream reader (core/reader) has each A, AAAA, NS and CNAME record's bytes in hand:
# the wire form Rdata.__hash__ would write again (through to_digestable, a BytesIO and
# inet_aton) every time the record is put in a set, an RRset or a cache entry, compared
# as part of an RRset, or looked up.  These subclasses keep that hash in a slot, made
# from the bytes once; everything else (equality, text, wire, pickling, replace) is the
# base class's.  Made through their constructor (replace, unpickling into a fresh
# object), they compute the slot from dnspython's own hash.

_NS = dns.rdata.get_rdata_class(_IN, RdataType.NS)
_CNAME = dns.rdata.get_rdata_class(_IN, RdataType.CNAME)


def _wire_class(base: type, field: str) -> type:
    """*base* with its hash kept in a slot (see above)."""

    def __init__(self, rdclass, rdtype, value):  # type: ignore[no-untyped-def]
        base.__init__(self, rdclass, rdtype, value)
        _set(self, "_hash", _rdata_hash(self))

    def __hash__(self) -> int:  # type: ignore[no-untyped-def]
        return self._hash  # type: ignore[no-any-return]

    __init__.__signature__ = inspect.signature(base.__init__)  # type: ignore[attr-defined]  # Rdata.replace reads it
    return type(f"Wire{base.__name__}", (base,), {
        "__slots__": ("_hash",), "__init__": __init__, "__hash__": __hash__, "__module__": __name__,
        "__doc__": f"dnspython's {base.__name__} record as read from a reply, its hash kept from its wire bytes."})


_rdata_hash = dns.rdata.Rdata.__hash__
WireA = _wire_class(_A, "address")
WireAAAA = _wire_class(_AAAA, "address")
WireNS = _wire_class(_NS, "target")
WireCNAME = _wire_class(_CNAME, "target")


def _wire_record(cls: type, rdtype: RdataType, field: str, value: object, digest: bytes) -> dns.rdata.Rdata:
    record = _new(cls)
    _set(record, "rdclass", _IN)
    _set(record, "rdtype", rdtype)
    _set(record, "rdcomment", None)
    _set(record, field, value)
    _set(record, "_hash", hash(digest))
    return record


def _ipv4_text(raw: bytes) -> str:
    return f"{raw[0]}.{raw[1]}.{raw[2]}.{raw[3]}"


def _wire_shortcut_holds(cls: type, rdtype: RdataType, field: str, value: object, digest: bytes,
                         made_from: object) -> bool:
    """Whether the record _wire_record builds from *value* and *digest* (the bytes the reader hashes)
    is the constructor's from *made_from*: the same slots, equal both ways, the same hash as
    dnspython's own class, the same wire form; and whether replace and pickling keep the hash right."""
    base = cls.__mro__[1]
    made = base(_IN, rdtype, made_from)
    built = _wire_record(cls, rdtype, field, value, digest)
    slots = [slot for kind in base.__mro__ for slot in getattr(kind, "__slots__", ())]
    if set(slots) != {"rdclass", "rdtype", "rdcomment", field} or built.to_wire() != made.to_wire():
        return False
    if not all(getattr(made, s) == getattr(built, s) and type(getattr(made, s)) is type(getattr(built, s))
               for s in slots):
        return False
    copies = [built.replace(), pickle.loads(pickle.dumps(built)), cls(_IN, rdtype, made_from)]
    return all(hash(one) == hash(made) == _rdata_hash(made) and one == made and made == one and not one != made
               and one.to_digestable() == made.to_digestable() for one in [built, *copies])


def wire_address(rdtype: int, raw: bytes) -> dns.rdata.Rdata:
    """The A (4 bytes) or AAAA (16 bytes) record of *raw*, hashed from it; the caller checked the length."""
    if rdtype == RdataType.A:
        if WIRE_A_DIRECT:
            return _wire_record(WireA, RdataType.A, "address", _ipv4_text(raw), raw)
        return WireA(_IN, RdataType.A, raw)  # type: ignore[no-any-return]
    if WIRE_AAAA_DIRECT:
        return _wire_record(WireAAAA, RdataType.AAAA, "address", dns.ipv6.inet_ntoa(raw), raw)
    return WireAAAA(_IN, RdataType.AAAA, raw)  # type: ignore[no-any-return]


def wire_target(rdtype: int, target: dns.name.Name, raw: bytes) -> dns.rdata.Rdata:
    """The NS or CNAME record of *target*, whose wire form without the root label is *raw* (case as sent).

    Its hash is of the canonical form, raw.lower() and the root label: label lengths are
    under 64, which lower() leaves alone.
    """
    if WIRE_TARGETS_DIRECT:
        if rdtype == RdataType.NS:
            return _wire_record(WireNS, RdataType.NS, "target", target, raw.lower() + b"\x00")
        return _wire_record(WireCNAME, RdataType.CNAME, "target", target, raw.lower() + b"\x00")
    return (WireNS if rdtype == RdataType.NS else WireCNAME)(_IN, rdtype, target)  # type: ignore[no-any-return]


_SAMPLE_TARGETS = [dns.name.Name(labels) for labels in [(b"Ns1", b"EXAMPLE", b"com", b""), (b"",),
                                                        (b"a" * 63, b"\xff\x00-_*Z", b"")]]
# The digests as wire_address and wire_target make them: the address bytes; the target's bytes
# as sent, lowercased, and the root label.
WIRE_A_DIRECT = all(_wire_shortcut_holds(WireA, RdataType.A, "address", _ipv4_text(raw), raw, raw)
                    for raw in (b"\xc0\x00\x02\x01", bytes(4), b"\xff" * 4, b"\x0a\x00\x00\x01"))
WIRE_AAAA_DIRECT = all(_wire_shortcut_holds(WireAAAA, RdataType.AAAA, "address", dns.ipv6.inet_ntoa(raw), raw, raw)
                       for raw in (bytes(16), b"\x20\x01\x0d\xb8" + bytes(11) + b"\x01",
                                   bytes(10) + b"\xff\xff\xc0\x00\x02\x01", bytes(range(16))))
WIRE_TARGETS_DIRECT = all(
    _wire_shortcut_holds(cls, rdtype, "target", target, target.to_wire()[:-1].lower() + b"\x00", target)
    for cls, rdtype in ((WireNS, RdataType.NS), (WireCNAME, RdataType.CNAME)) for target in _SAMPLE_TARGETS)
