"""`dnslab query`: one question to one server, shown as dig shows it.

Why a client of our own when dig exists: a learner's machine may have no dig,
the lab listens on port 5300 rather than 53, and tests want exactly the view
of a reply that a person gets, as text or JSON, without a subprocess.

The text follows BIND 9.18's dig (dig.c ``printmessage``, message.c's OPT
pseudosection, masterdump.c's columns), so what people read in tutorials and
RFC examples looks the same here. What dig prints about its own invocation
(the ``; <<>> DiG`` banner and ``global options``) is left out, and the
text ends with one newline where dig adds a blank line to separate queries.

dnspython builds and parses the messages; the sockets are our own, because
dig's ``MSG SIZE rcvd`` is the size of the bytes received and dnspython's
query helpers do not return them.
"""

from __future__ import annotations

import datetime
import ipaddress
import logging
import socket
import struct
import time
from dataclasses import dataclass
from typing import Any

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from dnslab.core.errors import DnslabError

log = logging.getLogger(__name__)

EDNS_PAYLOAD = 1232  # DNS Flag Day 2020; dig 9.18 and the lab's servers use the same
LAB_HINT = "is the lab running? start it with ./scripts/up"
USAGE = "NAME [TYPE] [@SERVER]"

_HEADER = struct.Struct("!HH")  # ID and flags, the start of every DNS message
_LENGTH = struct.Struct("!H")  # RFC 7766 length prefix on TCP

# dig's default style (dns_master_stylecreate(..., 24, 32, 40, 48, 80, 8, ...)):
# the column each field starts at, reached with tabs of width 8.
_TTL_COLUMN, _CLASS_COLUMN, _TYPE_COLUMN, _RDATA_COLUMN, _TAB = 24, 32, 40, 48, 8

# dig prints header flags in this order, whatever order the bits have.
_FLAGS = [(dns.flags.QR, "qr"), (dns.flags.AA, "aa"), (dns.flags.TC, "tc"), (dns.flags.RD, "rd"),
          (dns.flags.RA, "ra"), (dns.flags.AD, "ad"), (dns.flags.CD, "cd")]
_Z_BIT = 0x0040  # the header bit that must be zero; dig shows it as "MBZ: 0x4"

# RFC 8914 info codes as BIND 9.18 names them (libdns ``edetext``), so a
# code dig can name reads the same here; later codes are shown as numbers, as dig does.
EDE_TEXT = ("Other", "Unsupported DNSKEY Algorithm", "Unsupported DS Digest Type", "Stale Answer",
            "Forged Answer", "DNSSEC Indeterminate", "DNSSEC Bogus", "Signature Expired",
            "Signature Not Yet Valid", "DNSKEY Missing", "RRSIGs Missing", "No Zone Key Bit Set",
            "NSEC Missing", "Cached Error", "Not Ready", "Blocked", "Censored", "Filtered", "Prohibited",
            "Stale NXDOMAIN Answer", "Not Authoritative", "Not Supported", "No Reachable Authority",
            "Network Error", "Invalid Data")

# EDNS option names as dig prints them; any other code is shown as OPT=N.
_OPTION_NAMES = {3: "NSID", 8: "CLIENT-SUBNET", 9: "EXPIRE", 10: "COOKIE", 12: "PAD", 14: "KEY-TAG",
                 15: "EDE", 16: "CLIENT-TAG", 17: "SERVER-TAG"}
_EDE, _COOKIE = 15, 10


@dataclass(frozen=True)
class QueryResult:
    """One reply and how it arrived: what dig prints below the sections."""

    reply: dns.message.Message
    server: str  # the address asked (a host name given by the user is resolved first)
    port: int
    tcp: bool  # the transport the reply came over (after a TC retry, True)
    elapsed_ms: float  # of the exchange that produced the reply, as dig's "Query time"
    size: int  # bytes of the reply, without TCP's length prefix
    when: datetime.datetime  # local time, with its zone, when the reply arrived
    retried_over_tcp: bool


# --- the command's words -------------------------------------------------------------------------

def parse_query_args(words: list[str]) -> tuple[str, str, str | None]:
    """Sort dig-style words, in any order, into (name, type, server or None).

    The rule, simpler than dig's: a word starting with ``@`` is the server (at
    most one). Of the other words (one or two), the first is the name and the
    second the type, except that ``TYPE NAME`` is also accepted when the first
    word is a record type and the second is not. So ``mx`` alone asks for the
    name ``mx`` (dig would ask for ``.``), and ``mx txt`` asks for TXT of ``mx``.
    The type defaults to A and comes back in its standard spelling (``mx`` ->
    ``MX``, ``type1`` -> ``A``). There is no class word: every query is class IN.
    """
    server: str | None = None
    plain: list[str] = []
    for word in words:
        if not word.startswith("@"):
            plain.append(word)
            continue
        if server is not None:
            raise DnslabError(f"two servers given (@{server} and {word}): a query goes to one server")
        server = word[1:]
        if not server:
            raise DnslabError("'@' needs a server after it, as in @127.0.0.1")
    if not plain:
        raise DnslabError(f"no name to look up: expected {USAGE}, as in www.example.com AAAA")
    if len(plain) > 2:
        raise DnslabError(f"too many words: {' '.join(plain)!r}; expected {USAGE}{_class_hint(plain)}")
    if len(plain) == 1:
        name, rdtype = plain[0], "A"
    elif _is_type(plain[1]):
        name, rdtype = plain
    elif _is_type(plain[0]):
        rdtype, name = plain
    else:
        raise DnslabError(f"{plain[1]!r} is not a record type (A, AAAA, MX, TXT, TYPE65534, ...); "
                          f"expected {USAGE}{_class_hint(plain)}")
    _, code = check_question(name, rdtype)
    return name, dns.rdatatype.to_text(code), server


def check_question(name: str, rdtype: str) -> tuple[dns.name.Name, dns.rdatatype.RdataType]:
    """The name (made absolute) and type of a question, or one line saying what is wrong with them."""
    if not name:
        raise DnslabError("the name to look up is empty")
    try:
        qname = dns.name.from_text(name)
    except (dns.exception.DNSException, UnicodeError) as exc:  # label too long, empty label, bad IDNA
        raise DnslabError(f"bad name {name!r}: {_sentence(exc)}") from None
    try:
        qtype = dns.rdatatype.from_text(rdtype)
    except dns.exception.DNSException:
        raise DnslabError(f"unknown record type {rdtype!r} (try A, AAAA, MX, TXT or TYPEnnn)") from None
    return qname, qtype


def _is_type(word: str) -> bool:
    try:
        dns.rdatatype.from_text(word)
    except dns.exception.DNSException:
        return False
    return True


def _class_hint(words: list[str]) -> str:
    """dig users type `example.com IN MX`; say why that fails instead of only that it does."""
    for word in words:
        try:
            dns.rdataclass.from_text(word)
        except dns.exception.DNSException:
            continue
        return f" ({word!r} is a class: dnslab query always asks class IN, so leave it out)"
    return ""


def _sentence(exc: BaseException) -> str:
    return str(exc).rstrip(".") or type(exc).__name__


# --- asking ----------------------------------------------------------------------------------------

def send_query(name: str, rdtype: str, server: str, port: int, *, tcp: bool = False, recurse: bool = True,
               timeout: float = 5.0, edns: bool = True, dnssec: bool = False,
               checking_disabled: bool = False) -> QueryResult:
    """Ask *server* one question and wait up to *timeout* seconds for each exchange.

    Over UDP first unless *tcp*; a reply with TC=1 is asked again over TCP, as
    dig does, with a fresh *timeout* (``retried_over_tcp`` records it). EDNS0
    with a 1232-byte buffer unless *edns* is false; RD per *recurse*. A UDP
    datagram that is not a reply to this query (wrong ID or question, or
    unparseable) is ignored, as dig and dnspython ignore it, so a stray packet
    cannot pose as the answer. Every failure is a DnslabError of one line.
    AD=1 is sent as dig sends it (a validating resolver then says whether the
    answer is secure); *dnssec* sets DO (dig +dnssec: RRSIGs and NSEC records
    come back), *checking_disabled* sets CD (dig +cd: no validation).
    """
    qname, qtype = check_question(name, rdtype)
    query = dns.message.make_query(qname, qtype, use_edns=0 if edns or dnssec else False, payload=EDNS_PAYLOAD,
                                   want_dnssec=dnssec)
    query.flags |= dns.flags.AD
    if checking_disabled:
        query.flags |= dns.flags.CD
    if not recurse:
        query.flags &= ~dns.flags.RD
    family, address = _server_address(server, port)
    wire = query.to_wire()
    retried = False
    if not tcp:
        exchange = _udp_exchange(query, wire, family, address, port, timeout)
        if exchange.reply is not None:
            return QueryResult(exchange.reply, address, port, False, exchange.elapsed_ms, len(exchange.wire),
                               exchange.when, False)
        log.debug("truncated reply from %s#%d, retrying over TCP", address, port)
        retried = True
    exchange = _tcp_exchange(query, wire, family, address, port, timeout)
    assert exchange.reply is not None
    return QueryResult(exchange.reply, address, port, True, exchange.elapsed_ms, len(exchange.wire),
                       exchange.when, retried)


@dataclass(frozen=True)
class _Exchange:
    wire: bytes
    reply: dns.message.Message | None  # None: a UDP reply with TC=1, not worth parsing
    elapsed_ms: float
    when: datetime.datetime


def _server_address(server: str, port: int) -> tuple[socket.AddressFamily, str]:
    """The socket family and address to use; host names are looked up as dig looks them up."""
    host = server[1:-1] if server.startswith("[") and server.endswith("]") else server
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        return (socket.AF_INET6 if ip.version == 6 else socket.AF_INET), host
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise DnslabError(f"cannot find the address of server {server!r}: "
                          f"{getattr(exc, 'strerror', None) or _sentence(exc)}") from None
    family, _, _, _, sockaddr = found[0]
    return socket.AddressFamily(family), str(sockaddr[0])


def _udp_exchange(query: dns.message.Message, wire: bytes, family: socket.AddressFamily, address: str,
                  port: int, timeout: float) -> _Exchange:
    # A connected socket hears only from the server, and learns at once (ICMP port
    # unreachable) when nothing listens there, as dig reports "connection refused".
    where = f"{address}#{port}"
    ignored = 0
    with _errors(where, "UDP"), socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.connect((address, port))
        deadline = time.monotonic() + timeout
        started = time.perf_counter()
        sock.send(wire)
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                extra = f" ({ignored} unusable datagrams ignored)" if ignored else ""
                raise DnslabError(f"no reply from {where} within {timeout:g} s{extra}: {LAB_HINT}")
            sock.settimeout(remaining)
            try:
                data = sock.recv(65535)
            except TimeoutError:
                continue  # the deadline check above words the error
            elapsed = (time.perf_counter() - started) * 1000
            if not _same_id_reply(data, query.id):
                ignored += 1
                continue
            if _HEADER.unpack_from(data)[1] & dns.flags.TC:
                return _Exchange(data, None, elapsed, _now())
            try:
                reply = dns.message.from_wire(data)
            except dns.exception.DNSException as exc:
                log.debug("ignored an unparseable datagram from %s: %s", where, exc)
                ignored += 1
                continue
            if not query.is_response(reply):
                ignored += 1
                continue
            return _Exchange(data, reply, elapsed, _now())


def _tcp_exchange(query: dns.message.Message, wire: bytes, family: socket.AddressFamily, address: str,
                  port: int, timeout: float) -> _Exchange:
    where = f"{address}#{port}"
    with _errors(where, "TCP"), socket.socket(family, socket.SOCK_STREAM) as sock:
        deadline = time.monotonic() + timeout
        sock.settimeout(timeout)
        try:
            sock.connect((address, port))
            started = time.perf_counter()
            sock.sendall(_LENGTH.pack(len(wire)) + wire)
            (length,) = _LENGTH.unpack(_read_exactly(sock, _LENGTH.size, deadline, where))
            data = _read_exactly(sock, length, deadline, where)
        except TimeoutError:
            raise DnslabError(f"no reply from {where} over TCP within {timeout:g} s: {LAB_HINT}") from None
        elapsed = (time.perf_counter() - started) * 1000
    try:
        reply = dns.message.from_wire(data)
    except dns.exception.DNSException as exc:
        raise DnslabError(f"malformed reply from {where} over TCP: {_sentence(exc)}") from None
    if not query.is_response(reply):
        raise DnslabError(f"the reply from {where} over TCP does not match the query (ID or question)")
    return _Exchange(data, reply, elapsed, _now())


def _read_exactly(sock: socket.socket, count: int, deadline: float, where: str) -> bytes:
    data = b""
    while len(data) < count:
        sock.settimeout(max(deadline - time.monotonic(), 0.001))
        chunk = sock.recv(count - len(data))
        if not chunk:
            raise DnslabError(f"{where} closed the TCP connection before the whole reply arrived")
        data += chunk
    return data


class _errors:
    """Turn socket errors into one line naming the server, with the lab hint where it helps."""

    def __init__(self, where: str, transport: str) -> None:
        self.where, self.transport = where, transport

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: Any) -> bool:
        if isinstance(exc, ConnectionRefusedError):
            raise DnslabError(f"connection refused by {self.where} ({self.transport}): "
                              f"nothing listens there; {LAB_HINT}") from None
        if isinstance(exc, OSError) and not isinstance(exc, TimeoutError):
            raise DnslabError(f"cannot query {self.where} over {self.transport}: "
                              f"{exc.strerror or _sentence(exc)}") from None
        return False


def _same_id_reply(data: bytes, qid: int) -> bool:
    if len(data) < 12:
        return False
    rid, flags = _HEADER.unpack_from(data)
    return rid == qid and bool(flags & dns.flags.QR)


def _now() -> datetime.datetime:
    return datetime.datetime.now().astimezone()


# --- showing ---------------------------------------------------------------------------------------

_SECTIONS = ("QUESTION", "ANSWER", "AUTHORITY", "ADDITIONAL")
_COUNT_LABELS = ("QUERY", "ANSWER", "AUTHORITY", "ADDITIONAL")  # dig's header says QUERY, not QUESTION


def format_dig(result: QueryResult) -> str:
    """The reply as dig 9.18 prints it: header, OPT pseudosection, the non-empty sections, statistics.

    From ``;; Got answer:`` to ``MSG SIZE`` the lines are dig's own, so the two
    can be compared with diff (only ID, TTLs, timing and rotation differ).

    Records are tab-aligned in dig's columns, so a reply pasted next to dig's
    output lines up with it; sections with no records are left out, as dig does.
    """
    reply = result.reply
    lines: list[str] = []
    if result.retried_over_tcp:
        lines.append(";; Truncated, retrying in TCP mode.")
    lines.append(";; Got answer:")
    lines.append(f";; ->>HEADER<<- opcode: {dns.opcode.to_text(reply.opcode())}, "
                 f"status: {dns.rcode.to_text(reply.rcode())}, id: {reply.id}")
    flags = "".join(f" {text}" for bit, text in _FLAGS if reply.flags & bit)
    if reply.flags & _Z_BIT:
        flags += "; MBZ: 0x4"
    counts = ", ".join(f"{label}: {reply.section_count(index)}" for index, label in enumerate(_COUNT_LABELS))
    lines.append(f";; flags:{flags}; {counts}")
    if reply.flags & dns.flags.RD and not reply.flags & dns.flags.RA:
        lines.append(";; WARNING: recursion requested but not available")
    lines.append("")
    if reply.opt is not None:
        lines.append(";; OPT PSEUDOSECTION:")
        lines.extend(_opt_lines(reply))
    if reply.question:
        lines.append(";; QUESTION SECTION:")
        lines.extend(_question_line(rrset) for rrset in reply.question)
        lines.append("")
    for title, section in zip(_SECTIONS[1:], (reply.answer, reply.authority, reply.additional)):
        if section:
            lines.append(f";; {title} SECTION:")
            lines.extend(line for rrset in section for line in _record_lines(rrset))
            lines.append("")
    transport = "TCP" if result.tcp else "UDP"
    lines += [
        f";; Query time: {int(result.elapsed_ms)} msec",
        f";; SERVER: {result.server}#{result.port}({result.server}) ({transport})",
        f";; WHEN: {result.when.strftime('%a %b %d %H:%M:%S %Z %Y')}",
        f";; MSG SIZE  rcvd: {result.size}",
    ]
    return "\n".join(lines) + "\n"


def _opt_lines(reply: dns.message.Message) -> list[str]:
    ttl = reply.opt.ttl  # type: ignore[union-attr]  # the OPT "TTL" holds version and flags
    flags = " do" if ttl & dns.flags.DO else ""
    mbz = ttl & 0xFFFF & ~dns.flags.DO
    size = f"; MBZ: 0x{mbz:04x}, udp: {reply.payload}" if mbz else f"; udp: {reply.payload}"
    lines = [f"; EDNS: version: {(ttl >> 16) & 0xFF}, flags:{flags}{size}"]
    for option in reply.options:
        lines.append(_option_text(int(option.otype), option.to_wire()))
    return lines


def _option_text(code: int, data: bytes) -> str:
    """One EDNS option as dig prints it: its name, then what it says, in hex and readable text."""
    text = f"; {_OPTION_NAMES.get(code, f'OPT={code}')}"
    if code == _EDE and len(data) >= 2:
        info = int.from_bytes(data[:2], "big")
        text += f": {info}" + (f" ({EDE_TEXT[info]})" if info < len(EDE_TEXT) else "")
        data = data[2:]
        if data:
            extra = _utf8(data)
            if extra is None:
                return text + ": " + " ".join(f"{b:02x}" for b in data) + " (" + _printable(data) + ")"
            return text + f": ({extra})"
        return text
    if not data:
        return text
    if code == _COOKIE:
        return text + ": " + data.hex()
    return text + ": " + "".join(f"{b:02x} " for b in data) + '("' + _printable(data) + '")'


def _utf8(data: bytes) -> str | None:
    try:
        decoded = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return "".join(c if c.isprintable() else "." for c in decoded)


def _printable(data: bytes) -> str:
    return "".join(chr(b) if 32 <= b < 127 else "." for b in data)


def _question_line(rrset: dns.rrset.RRset) -> str:
    # BIND writes the ";" outside the column count, so the question's columns are one off the records'.
    return ";" + _aligned(rrset.name.to_text(), [(_CLASS_COLUMN, dns.rdataclass.to_text(rrset.rdclass)),
                                                 (_TYPE_COLUMN, dns.rdatatype.to_text(rrset.rdtype))])


def _record_lines(rrset: dns.rrset.RRset) -> list[str]:
    fields = [(_TTL_COLUMN, str(rrset.ttl)), (_CLASS_COLUMN, dns.rdataclass.to_text(rrset.rdclass)),
              (_TYPE_COLUMN, dns.rdatatype.to_text(rrset.rdtype))]
    owner = rrset.name.to_text()
    return [_aligned(owner, [*fields, (_RDATA_COLUMN, rdata.to_text())]) for rdata in rrset]


def _aligned(first: str, fields: list[tuple[int, str]]) -> str:
    """Fields placed at dig's columns: tabs to the column, or one space when the text already reaches it.

    The same arithmetic as BIND's masterdump.c ``indent``: aim for the column or
    one past the current position, whichever is further, tab to the last tab
    stop before it, then spaces.
    """
    text, column = first, len(first)
    for target, field in fields:
        target = max(target, column + 1)
        tabs = target // _TAB - column // _TAB
        if tabs > 0:
            text += "\t" * tabs
            column = target // _TAB * _TAB
        text += " " * (target - column) + field
        column = target + len(field)
    return text


def to_json(result: QueryResult) -> dict[str, Any]:
    """The reply as plain data for scripts and tests; the keys are stable, the values JSON types."""
    reply = result.reply
    return {
        "server": result.server,
        "port": result.port,
        "transport": "tcp" if result.tcp else "udp",
        "retried_over_tcp": result.retried_over_tcp,
        "elapsed_ms": round(result.elapsed_ms, 3),
        "size": result.size,
        "when": result.when.isoformat(),
        "id": reply.id,
        "opcode": dns.opcode.to_text(reply.opcode()),
        "rcode": dns.rcode.to_text(reply.rcode()),
        "flags": [text for bit, text in _FLAGS if reply.flags & bit],
        "edns": _edns_json(reply),
        "question": [{"name": rrset.name.to_text(), "type": dns.rdatatype.to_text(rrset.rdtype),
                      "class": dns.rdataclass.to_text(rrset.rdclass)} for rrset in reply.question],
        "answer": _records_json(reply.answer),
        "authority": _records_json(reply.authority),
        "additional": _records_json(reply.additional),
    }


def _edns_json(reply: dns.message.Message) -> dict[str, Any] | None:
    if reply.opt is None:
        return None
    return {
        "version": reply.edns,
        "udp": reply.payload,
        "flags": ["do"] if reply.ednsflags & dns.flags.DO else [],
        "options": [_option_json(int(option.otype), option.to_wire()) for option in reply.options],
    }


def _option_json(code: int, data: bytes) -> dict[str, Any]:
    name = _OPTION_NAMES.get(code, f"OPT={code}")
    if code == _EDE and len(data) >= 2:
        info = int.from_bytes(data[:2], "big")
        return {"code": code, "name": name, "info_code": info,
                "info": EDE_TEXT[info] if info < len(EDE_TEXT) else None,
                "text": data[2:].decode("utf-8", "replace") if len(data) > 2 else None}
    return {"code": code, "name": name, "data": data.hex()}


def _records_json(section: list[dns.rrset.RRset]) -> list[dict[str, Any]]:
    return [{"name": rrset.name.to_text(), "ttl": rrset.ttl, "class": dns.rdataclass.to_text(rrset.rdclass),
             "type": dns.rdatatype.to_text(rrset.rdtype), "data": rdata.to_text()}
            for rrset in section for rdata in rrset]
