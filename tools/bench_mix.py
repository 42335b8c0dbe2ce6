"""The bench's mixed scenario: a small hierarchy with every kind of answer, and the questions per kind.

Why a hierarchy of its own: the sample zones teach, they do not cover every shape a
cache has to replay (a 100-record RRset, a reply that truncates for plain-DNS but
not for EDNS clients, a 2 KB TXT, CNAME and DNAME chains, wildcards, signed
denials).  A cheap kind hides a costly one in an average, so the bench measures
each kind on its own (CPU per query beside Unbound's and NSD's) and then the whole
mix at once.  Addresses are in 127.98.0.0/16, apart from the sample lab's and the
bench's own listeners.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

ROOT_SERVER = "127.98.0.1"
TLD_SERVER = "127.98.1.1"
KINDS_SERVER = "127.98.2.1"     # kinds.mix.: the zone with every shape of answer
ALIAS_SERVER = "127.98.3.1"     # alias.mix.: where the DNAME points
SUB_SERVER = "127.98.4.1"       # sub.kinds.mix.: a delegation with glue, for referrals
KINDS_ORIGIN = "kinds.mix."

_SOA = "@ 3600 IN SOA {ns} hostmaster.{origin} 1 7200 3600 1209600 3600"


def _zone(origin: str, ns: str, lines: list[str]) -> str:
    return "\n".join([f"$ORIGIN {origin}", "$TTL 3600", _SOA.format(ns=ns, origin=origin if origin != "." else ""),
                      *lines, ""])


def _addresses(count: int, prefix: str) -> list[str]:
    return [f"{prefix}.{1 + i // 250}.{1 + i % 250}" for i in range(count)]


def write_zones(folder: Path) -> Path:
    """Write the mix hierarchy (root, mix., kinds.mix., alias.mix., sub.kinds.mix.) into *folder*."""
    folder.mkdir(parents=True, exist_ok=True)
    long_text = " ".join(f'"part {i:02d} ' + "x" * 190 + '"' for i in range(10))  # ten 200-byte strings: 2 KB
    kinds = [
        "@ IN NS ns1",
        f"ns1 IN A {KINDS_SERVER}",
        "www IN A 192.0.2.1",
        *(f"big IN A {address}" for address in _addresses(100, "198.18")),   # 1.6 KB+: TC for every UDP client
        *(f"forty IN A {address}" for address in _addresses(40, "198.19")),  # ~700 B: TC for plain DNS only
        f"txt IN TXT {long_text}",
        "chain IN CNAME chain2",
        "chain2 IN CNAME www",
        "dn IN DNAME alias.mix.",
        "*.wild IN A 192.0.2.50",
        "sub IN NS ns1.sub",
        f"ns1.sub IN A {SUB_SERVER}",
    ]
    zones = {
        "root.zone": _zone(".", "a.root.mix.", [
            ". IN NS a.root.mix.", f"a.root.mix. IN A {ROOT_SERVER}",
            "mix. IN NS ns.nic.mix.", f"ns.nic.mix. IN A {TLD_SERVER}"]),
        "mix.zone": _zone("mix.", "ns.nic.mix.", [
            "@ IN NS ns.nic", f"ns.nic IN A {TLD_SERVER}", f"a.root IN A {ROOT_SERVER}",
            "kinds IN NS ns1.kinds", f"ns1.kinds IN A {KINDS_SERVER}",
            "alias IN NS ns1.alias", f"ns1.alias IN A {ALIAS_SERVER}"]),
        "kinds.mix.zone": _zone(KINDS_ORIGIN, f"ns1.{KINDS_ORIGIN}", kinds),
        "alias.mix.zone": _zone("alias.mix.", "ns1.alias.mix.", [
            "@ IN NS ns1", f"ns1 IN A {ALIAS_SERVER}", "x IN A 192.0.2.60", "y IN A 192.0.2.61"]),
        "sub.kinds.mix.zone": _zone("sub.kinds.mix.", "ns1.sub.kinds.mix.", [
            "@ IN NS ns1", f"ns1 IN A {SUB_SERVER}", "www IN A 192.0.2.70"]),
    }
    for name, text in zones.items():
        (folder / name).write_text(text, encoding="ascii")
    (folder / "lab.toml").write_text("port = 5300\n", encoding="ascii")
    return folder


@dataclass(frozen=True)
class Kind:
    """One kind of question: its name in the table, the questions, and how they are asked.

    mode: "plain" (no EDNS: 512-byte limit), "edns" (EDNS, 1232 bytes) or "do"
    (EDNS with DO=1: signatures come back from the signed lab).
    """

    label: str
    queries: tuple[tuple[str, str], ...]
    mode: str = "edns"


# Resolver kinds: every one is a cache hit once warmed.
RESOLVER_KINDS = (
    Kind("plain A", (("www.kinds.mix", "A"),)),
    Kind("mixed-case name", (("WwW.KiNdS.mIx", "A"),)),
    Kind("100 A records, EDNS (TC)", (("big.kinds.mix", "A"),)),
    Kind("100 A records, plain DNS (TC)", (("big.kinds.mix", "A"),), "plain"),
    Kind("40 A records, EDNS (fits)", (("forty.kinds.mix", "A"),)),
    Kind("40 A records, plain DNS (TC)", (("forty.kinds.mix", "A"),), "plain"),
    Kind("2 KB TXT, EDNS (TC)", (("txt.kinds.mix", "TXT"),)),
    Kind("CNAME chain (2 links)", (("chain.kinds.mix", "A"),)),
    Kind("DNAME", (("x.dn.kinds.mix", "A"),)),
    Kind("wildcard", (("q.wild.kinds.mix", "A"),)),
    Kind("NXDOMAIN", (("nothere.kinds.mix", "A"),)),
    Kind("NODATA", (("www.kinds.mix", "AAAA"),)),
    Kind("DO=1 A with RRSIG", (("www.kinds.mix", "A"),), "do"),
    Kind("DO=1 NXDOMAIN (signed denial)", (("nothere.kinds.mix", "A"),), "do"),
    Kind("DO=1 wildcard (with proof)", (("q.wild.kinds.mix", "A"),), "do"),
)

# Authoritative kinds, asked of kinds.mix.'s server (RD=0), beside NSD serving the same file.
AUTH_KINDS = (
    Kind("plain A", (("www.kinds.mix", "A"),)),
    Kind("40 A records, EDNS (large)", (("forty.kinds.mix", "A"),)),
    Kind("100 A records, EDNS (TC)", (("big.kinds.mix", "A"),)),
    Kind("40 A records, plain DNS (TC)", (("forty.kinds.mix", "A"),), "plain"),
    Kind("2 KB TXT, EDNS (TC)", (("txt.kinds.mix", "TXT"),)),
    Kind("referral with glue", (("www.sub.kinds.mix", "A"),)),
    Kind("NXDOMAIN", (("nothere.kinds.mix", "A"),)),
    Kind("wildcard", (("q.wild.kinds.mix", "A"),)),
)


def by_mode(kinds: tuple[Kind, ...]) -> dict[str, list[tuple[str, str]]]:
    """The whole mix split by how it is asked: one load generator per mode, all at once."""
    out: dict[str, list[tuple[str, str]]] = {}
    for kind in kinds:
        out.setdefault(kind.mode, []).extend(kind.queries)
    return out


def with_mode(wire: bytes, mode: str) -> bytes:
    """An EDNS query (tools.common.net.query_wire) with DO=1 for mode "do" (the OPT's TTL is its last
    six bytes but two); others unchanged."""
    if mode != "do":
        return wire
    return wire[:-6] + b"\x00\x00\x80\x00" + wire[-2:]
