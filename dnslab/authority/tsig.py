"""TSIG (RFC 8945): checking a signed request, signing its replies, the error replies, no sockets.

The record is found and checked in the order RFC 8945 §5.2 gives: the key
(unknown name or algorithm: BADKEY), the MAC (BADSIG), then the time (BADTIME,
outside the fudge of the clock we are given: the machine's in a lab, as the
clients' is; a FakeClock in a test).  Key and MAC errors are answered NOTAUTH
with an unsigned TSIG carrying the error (§5.3.2: a server must not sign with a
key it could not use), as NSD does; BADTIME is answered signed, with our time
in Other Data (§5.2.3; NSD 4.6 leaves it unsigned).  dnspython's dns.tsig does the digests; the request is handed on with
its TSIG record removed, so the usual answering code never sees it, and the
reply bytes that code makes are signed afterwards (each message of a zone
transfer in turn, RFC 8945 §5.3.1).
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets
import struct
from dataclasses import dataclass
from pathlib import Path

import dns.exception
import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.TSIG
import dns.tsig

from dnslab.core.errors import ConfigError
from dnslab.core.wire import HEADER, OPCODE_MASK, QR, RD, skip_name

TSIG = 250
FUDGE = 300  # seconds of clock difference allowed, as dig, nsupdate, NSD and BIND use
DEFAULT_ALGORITHM = dns.tsig.HMAC_SHA256
DEFAULT_KEY_NAME = "dnslab-key."
_ALGORITHMS = {str(name).rstrip(".").lower(): name for name in (
    dns.tsig.HMAC_SHA256, dns.tsig.HMAC_SHA512, dns.tsig.HMAC_SHA384, dns.tsig.HMAC_SHA224, dns.tsig.HMAC_SHA1,
    dns.tsig.HMAC_MD5)}
_ALGORITHMS["hmac-md5"] = dns.tsig.HMAC_MD5  # as key files write it (its DNS name is HMAC-MD5.SIG-ALG.REG.INT.)

Keyring = dict[dns.name.Name, dns.tsig.Key]


# --- keys ------------------------------------------------------------------------------------


def make_key(name: str, secret: str, algorithm: str = "hmac-sha256", where: str = "TSIG key") -> dns.tsig.Key:
    """A key from its name, base64 secret and algorithm name, or a ConfigError saying which part is wrong."""
    try:
        owner = dns.name.from_text(name)
    except dns.exception.DNSException as exc:
        raise ConfigError(f"{where}: {name!r} is not a key name ({exc})") from None
    algo = _ALGORITHMS.get(algorithm.rstrip(".").lower())
    if algo is None:
        raise ConfigError(f"{where}: unknown algorithm {algorithm!r} (known: {', '.join(sorted(_ALGORITHMS))})")
    try:
        raw = base64.b64decode(secret, validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError(f"{where}: the secret of {name} is not base64") from None
    if not raw:
        raise ConfigError(f"{where}: the secret of {name} is empty")
    return dns.tsig.Key(owner, raw, algo)


def new_key(name: str = DEFAULT_KEY_NAME) -> dns.tsig.Key:
    """A fresh HMAC-SHA256 key of 32 random bytes, as `tsig-keygen` makes."""
    return dns.tsig.Key(dns.name.from_text(name), secrets.token_bytes(32), DEFAULT_ALGORITHM)


_KEY_BLOCK = re.compile(r'key\s+"?([^"\s{]+)"?\s*\{(.*?)\}\s*;', re.S)
_STATEMENT = re.compile(r'(algorithm|secret)\s+"?([^";\s]+)"?\s*;')
_COMMENT_OR_STRING = re.compile(r'"[^"]*"|#[^\n]*|//[^\n]*|/\*.*?\*/', re.S)


def read_key_file(path: Path) -> list[dns.tsig.Key]:
    """The keys of a BIND key file (what `tsig-keygen` writes and `nsupdate -k` reads)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read TSIG key file {path}: {getattr(exc, 'strerror', None) or exc}") from None
    # Comments (#, //, /* */) go, quoted strings stay whole: a base64 secret may hold "//".
    text = _COMMENT_OR_STRING.sub(lambda m: m.group(0) if m.group(0).startswith('"') else " ", text)
    keys = []
    for name, body in _KEY_BLOCK.findall(text):
        fields = dict(_STATEMENT.findall(body))
        if "secret" not in fields:
            raise ConfigError(f"{path}: key {name} has no secret")
        keys.append(make_key(name, fields["secret"], fields.get("algorithm", "hmac-sha256"), str(path)))
    if not keys:
        raise ConfigError(f'{path}: no key found (expected: key "NAME" {{ algorithm hmac-sha256; secret "..."; }};)')
    return keys


def key_file_text(key: dns.tsig.Key) -> str:
    """*key* as a BIND key file, for `nsupdate -k` and NSD's or BIND's configuration."""
    return (f'key "{key.name.to_text(omit_final_dot=True)}" {{\n'
            f"\talgorithm {algorithm_text(key)};\n"
            f'\tsecret "{secret_text(key)}";\n}};\n')


def algorithm_text(key: dns.tsig.Key) -> str:
    return key.algorithm.to_text(omit_final_dot=True)


def secret_text(key: dns.tsig.Key) -> str:
    return base64.b64encode(key.secret).decode()


def dig_option(key: dns.tsig.Key) -> str:
    """`hmac-sha256:NAME:SECRET`, what `dig -y` and `nsupdate -y` take."""
    return f"{algorithm_text(key)}:{key.name.to_text(omit_final_dot=True)}:{secret_text(key)}"


# --- requests --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Signer:
    """How to sign the replies to one request that was signed with a key we know."""

    key: dns.tsig.Key
    request: dns.rdtypes.ANY.TSIG.TSIG
    now: int

    def sign(self, messages: list[bytes]) -> list[bytes]:
        """Each reply message signed, the later ones chained to the earlier (RFC 8945 §5.3.1)."""
        template = self.request.replace(time_signed=self.now, fudge=FUDGE, error=0, other=b"", mac=b"")
        signed, ctx = [], None
        multi = len(messages) > 1
        for wire in messages:
            rdata, ctx = dns.tsig.sign(wire, self.key, template, self.now, self.request.mac, ctx, multi)
            signed.append(_append(wire, self.key.name, rdata))
        return signed


@dataclass(frozen=True)
class Checked:
    """A signed request: *unsigned* is it without its TSIG record; *signer* signs the replies.

    *error* is set when the request failed the check; *reply* is then what to send.
    """

    unsigned: bytes
    signer: Signer | None = None
    error: int = 0
    reply: bytes | None = None


def find(wire: bytes) -> int | None:
    """Where the message's TSIG record starts, if its last record is one (None: unsigned, or unreadable)."""
    if len(wire) < HEADER.size:
        return None
    _, _, qd, an, ns, ar = HEADER.unpack_from(wire)
    if not ar:
        return None
    try:
        offset = HEADER.size
        for _ in range(qd):
            offset = skip_name(wire, offset) + 4
        start = offset
        for _ in range(an + ns + ar):
            start = offset
            offset = skip_name(wire, offset)
            (rdlength,) = struct.unpack_from("!H", wire, offset + 8)
            offset += 10 + rdlength
        rtype = struct.unpack_from("!H", wire, skip_name(wire, start))[0]
    except (IndexError, struct.error):
        return None
    return start if rtype == TSIG and offset == len(wire) else None


def check(wire: bytes, start: int, keyring: Keyring, now: float) -> Checked:
    """Check the TSIG record at *start* of *wire* against *keyring* at time *now* (POSIX seconds)."""
    seconds = int(now)
    unsigned = _without_tsig(wire, start)
    try:
        owner, used = dns.name.from_wire(wire, start)
        fixed = start + used  # type, class, TTL, RDLENGTH
        (rdlength,) = struct.unpack_from("!H", wire, fixed + 8)
        rdata = dns.rdata.from_wire(dns.rdataclass.ANY, dns.rdatatype.TSIG, wire, fixed + 10, rdlength)
    except (dns.exception.DNSException, struct.error, ValueError):
        return Checked(unsigned, error=dns.rcode.FORMERR, reply=error_reply(unsigned, dns.rcode.FORMERR))
    assert isinstance(rdata, dns.rdtypes.ANY.TSIG.TSIG)
    key = keyring.get(owner)
    if key is None or key.algorithm != rdata.algorithm:
        return _refused(unsigned, owner, rdata, seconds, dns.rcode.BADKEY)
    try:
        dns.tsig.validate(wire, key, owner, rdata, seconds, None, start)
    except dns.tsig.BadSignature:
        return _refused(unsigned, owner, rdata, seconds, dns.rcode.BADSIG)
    except dns.tsig.BadTime:
        signer = Signer(key, rdata, seconds)
        template = rdata.replace(time_signed=rdata.time_signed, error=dns.rcode.BADTIME,
                                 other=struct.pack("!HI", seconds >> 32, seconds & 0xFFFFFFFF), mac=b"")
        reply = error_reply(unsigned, dns.rcode.NOTAUTH)
        signed, _ = dns.tsig.sign(reply, key, template, rdata.time_signed, rdata.mac)
        return Checked(unsigned, signer, dns.rcode.BADTIME, _append(reply, owner, signed))
    except (dns.exception.DNSException, ValueError):  # a request carrying a TSIG error, an odd MAC size
        return Checked(unsigned, error=dns.rcode.FORMERR, reply=error_reply(unsigned, dns.rcode.FORMERR))
    return Checked(unsigned, Signer(key, rdata, seconds))


def _refused(unsigned: bytes, owner: dns.name.Name, rdata: dns.rdtypes.ANY.TSIG.TSIG, now: int,
             error: int) -> Checked:
    """NOTAUTH with an unsigned TSIG naming the key and the error (RFC 8945 §5.3.2)."""
    tsig = rdata.replace(time_signed=now, error=error, other=b"", mac=b"")
    reply = _append(error_reply(unsigned, dns.rcode.NOTAUTH), owner, tsig)
    return Checked(unsigned, error=error, reply=reply)


def error_reply(unsigned: bytes, rcode: int, flags: int = 0) -> bytes:
    """The question kept, opcode and RD copied (and *flags* set), every other section empty."""
    ident, query_flags, qd, *_ = HEADER.unpack_from(unsigned)
    offset = HEADER.size
    try:
        for _ in range(qd):
            offset = skip_name(unsigned, offset) + 4
            if offset > len(unsigned):  # a question cut short: echoing it would make a broken reply
                raise IndexError(offset)
    except IndexError:
        qd, offset = 0, HEADER.size
    reply_flags = QR | (query_flags & (OPCODE_MASK | RD)) | flags | (rcode & 0xF)
    return HEADER.pack(ident, reply_flags, qd, 0, 0, 0) + unsigned[HEADER.size:offset]


def _without_tsig(wire: bytes, start: int) -> bytes:
    ident, flags, qd, an, ns, ar = HEADER.unpack_from(wire)
    return HEADER.pack(ident, flags, qd, an, ns, ar - 1) + wire[HEADER.size:start]


def _append(wire: bytes, owner: dns.name.Name, rdata: dns.rdata.Rdata) -> bytes:
    """*wire* with a TSIG record added at the end of the additional section."""
    ident, flags, qd, an, ns, ar = HEADER.unpack_from(wire)
    data = rdata.to_wire()
    assert data is not None
    record = owner.to_wire() + struct.pack("!HHIH", TSIG, dns.rdataclass.ANY, 0, len(data)) + data
    return HEADER.pack(ident, flags, qd, an, ns, ar + 1) + wire[HEADER.size:] + record

