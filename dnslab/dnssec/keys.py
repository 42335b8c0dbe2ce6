"""DNSSEC keys for the lab's zones: generated once, kept in a folder, found again on restart.

Each zone has a KSK (flags 257, SEP: what the parent's DS points at) and a ZSK
(flags 256: signs the data).  A key is two files in the keys folder, named as
BIND names them so that a person recognises them:

    K<zone>+<alg>+<tag>.key   the DNSKEY record, zone-file text (public)
    K<zone>+<alg>+<tag>.pem   the private key, PKCS#8 PEM, mode 0600

PEM rather than BIND's own private-key format because every algorithm
dnspython signs with has it (via ``cryptography``), and ``openssl`` reads it.
Keys survive restarts, so a resolver's trust anchor and the parents' DS
records stay valid across `dnslab up` runs.  Two labs starting at once on one
folder take a lock, so they never make two KSKs for one zone.
"""

from __future__ import annotations

import fcntl
import os
from dataclasses import dataclass
from pathlib import Path

import dns.dnssec
import dns.exception
import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.DNSKEY
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa

from dnslab.core.errors import ConfigError

Algorithm = dns.dnssec.Algorithm
KSK_FLAGS = 257
ZSK_FLAGS = 256
DEFAULT_ALGORITHM = Algorithm.ECDSAP256SHA256

# The algorithms a lab may sign with: those of RFC 8624 §3.1 that are MUST or
# RECOMMENDED to sign with, and that every validator in use supports.
_GENERATORS = {
    Algorithm.ECDSAP256SHA256: lambda: ec.generate_private_key(ec.SECP256R1()),
    Algorithm.ECDSAP384SHA384: lambda: ec.generate_private_key(ec.SECP384R1()),
    Algorithm.ED25519: ed25519.Ed25519PrivateKey.generate,
    Algorithm.ED448: ed448.Ed448PrivateKey.generate,
    Algorithm.RSASHA256: lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048),
    Algorithm.RSASHA512: lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048),
}
ALGORITHMS = tuple(algorithm.name for algorithm in _GENERATORS)


def algorithm_from_text(text: str | int) -> Algorithm:
    """ECDSAP256SHA256, ed25519, 13 ... -> Algorithm; a clear error for anything else."""
    try:
        algorithm = Algorithm(int(text)) if str(text).isdigit() else Algorithm[str(text).upper()]
    except (KeyError, ValueError):
        algorithm = None
    if algorithm not in _GENERATORS:
        raise ConfigError(f"DNSSEC algorithm {text!r} is not one dnslab signs with "
                          f"(one of: {', '.join(ALGORITHMS)})")
    return algorithm


@dataclass(frozen=True)
class Key:
    """One signing key: the private half and its DNSKEY record."""

    private: object  # a cryptography private key
    dnskey: dns.rdtypes.ANY.DNSKEY.DNSKEY
    path: Path | None = None

    @property
    def tag(self) -> int:
        return dns.dnssec.key_id(self.dnskey)

    @property
    def is_ksk(self) -> bool:
        return bool(self.dnskey.flags & dns.dnssec.Flag.SEP)


@dataclass(frozen=True)
class ZoneKeys:
    """A zone's KSK and ZSK."""

    origin: dns.name.Name
    ksk: Key
    zsk: Key

    @property
    def dnskeys(self) -> list[dns.rdtypes.ANY.DNSKEY.DNSKEY]:
        return [self.ksk.dnskey, self.zsk.dnskey]


def file_stem(origin: dns.name.Name, algorithm: int, tag: int) -> str:
    """BIND's key file name: K<zone>+<alg>+<tag> (the root zone is 'K.')."""
    zone = origin.to_text(omit_final_dot=origin != dns.name.root).lower()
    return f"K{zone}+{int(algorithm):03d}+{tag:05d}"


def load_or_create(folder: Path, origin: dns.name.Name,
                   algorithm: Algorithm = DEFAULT_ALGORITHM) -> ZoneKeys:
    """The zone's keys from *folder*, generating (and saving) what is missing."""
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        with open(folder / ".lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            keys = _read_keys(folder, origin, algorithm)
            ksk = next((key for key in keys if key.is_ksk), None) or _create(folder, origin, algorithm, KSK_FLAGS)
            zsk = next((key for key in keys if not key.is_ksk), None) or _create(folder, origin, algorithm, ZSK_FLAGS)
    except OSError as exc:
        raise ConfigError(f"cannot use the DNSSEC keys folder {folder}: {exc.strerror or exc} "
                          "(choose another with --keys DIR or keys_dir in lab.toml)") from None
    return ZoneKeys(origin, ksk, zsk)


def _read_keys(folder: Path, origin: dns.name.Name, algorithm: Algorithm) -> list[Key]:
    """Every key of *origin* and *algorithm* in the folder, checked against its private half."""
    prefix = file_stem(origin, algorithm, 0)[:-5]
    found = []
    for public in sorted(folder.glob(f"{_glob_escape(prefix)}*.key")):
        private_path = public.with_suffix(".pem")
        try:
            rdata = dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.DNSKEY, _dnskey_text(public))
            private = serialization.load_pem_private_key(private_path.read_bytes(), password=None)
        except FileNotFoundError:
            raise ConfigError(f"{public}: its private key {private_path.name} is missing "
                              "(restore it, or delete both files to make a new key)") from None
        except (dns.exception.DNSException, ValueError, TypeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{public}: not a readable DNSSEC key ({exc})") from None
        dnskey = dns.dnssec.make_dnskey(private.public_key(), algorithm, flags=rdata.flags)  # type: ignore[attr-defined]
        if dnskey != rdata:
            raise ConfigError(f"{private_path}: does not belong to the public key in {public.name}")
        found.append(Key(private, dnskey, public))
    return found


def _dnskey_text(public: Path) -> str:
    """The RDATA of the one DNSKEY record in a .key file (comments and owner skipped)."""
    for line in public.read_text(encoding="utf-8").splitlines():
        words = line.split(";", 1)[0].split()
        if "DNSKEY" in (word.upper() for word in words):
            return " ".join(words[[w.upper() for w in words].index("DNSKEY") + 1:])
    raise ValueError("no DNSKEY record in it")


def _glob_escape(text: str) -> str:
    return "".join(f"[{c}]" if c in "*?[" else c for c in text)


def _create(folder: Path, origin: dns.name.Name, algorithm: Algorithm, flags: int) -> Key:
    private = _GENERATORS[algorithm]()
    dnskey = dns.dnssec.make_dnskey(private.public_key(), algorithm, flags=flags)
    stem = file_stem(origin, algorithm, dns.dnssec.key_id(dnskey))
    pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    descriptor = os.open(folder / f"{stem}.pem", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(pem)
    role = "KSK" if flags == KSK_FLAGS else "ZSK"
    (folder / f"{stem}.key").write_text(
        f"; {role} of {origin}, made by dnslab; the private key is {stem}.pem\n"
        f"{origin.to_text()} IN DNSKEY {dnskey.to_text()}\n", encoding="utf-8")
    return Key(private, dnskey, folder / f"{stem}.key")
