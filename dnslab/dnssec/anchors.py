"""Trust anchor files: the DS or DNSKEY records validation starts from.

The format is Unbound's `trust-anchor-file` (and `auto-trust-anchor-file`'s
records): zone-file lines such as `. 86400 IN DS 20326 8 2 E06D...`, comments
with `;`.  `dnslab up --dnssec` writes one for the lab's root; the same file
works for `dnslab resolver --trust-anchor FILE` and for Unbound.
"""

from __future__ import annotations

import logging
from pathlib import Path

import dns.exception
import dns.name
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import dns.tokenizer
import dns.zonefile

from dnslab.core.errors import ConfigError

RdataType = dns.rdatatype.RdataType
log = logging.getLogger(__name__)


def read_trust_anchors(path: Path | str) -> tuple[dns.rrset.RRset, ...]:
    """Every DS and DNSKEY RRset in the file; anything else is an error naming file and line."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the trust anchor file: {getattr(exc, 'strerror', None) or exc}") \
            from None
    return parse_trust_anchors(text, str(path))


def parse_trust_anchors(text: str, where: str = "<anchors>") -> tuple[dns.rrset.RRset, ...]:
    found: dict[tuple[dns.name.Name, int], dns.rrset.RRset] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        content = line.split(";", 1)[0].strip()
        if not content:
            continue
        try:
            rrsets = dns.zonefile.read_rrsets(content, name=None, ttl=None, rdclass=None,
                                              default_rdclass=dns.rdataclass.IN, default_ttl=3600,
                                              origin=dns.name.root, relativize=False)
        except (dns.exception.DNSException, ValueError) as exc:
            owner = _misfit_ds_owner(content)
            if owner is None:
                raise ConfigError(f"{where}:{number}: not a DS or DNSKEY record: {exc}") from None
            # A well-formed DS whose digest does not fit its digest type (dnspython cannot
            # hold it): like Unbound, keep the zone anchored but with no usable key, so its
            # answers are bogus rather than the resolver refusing to start or (worse) the
            # zone silently losing its anchor and passing as insecure.
            log.warning("%s:%d: the DS digest does not fit its digest type: %s has no usable trust anchor",
                        where, number, owner)
            found.setdefault((owner, RdataType.DS), dns.rrset.RRset(owner, dns.rdataclass.IN, RdataType.DS))
            continue
        for rrset in rrsets:
            if rrset.rdtype not in (RdataType.DS, RdataType.DNSKEY):
                raise ConfigError(f"{where}:{number}: a trust anchor is a DS or DNSKEY record, "
                                  f"not {dns.rdatatype.to_text(rrset.rdtype)}")
            key = (rrset.name, rrset.rdtype)
            if key in found:
                found[key].union_update(rrset)
            else:
                found[key] = rrset
    if not found:
        raise ConfigError(f"{where}: no DS or DNSKEY records: nothing to trust")
    return tuple(found.values())


def _misfit_ds_owner(content: str) -> dns.name.Name | None:
    """The owner of a DS line that is well formed but for its digest's length, else None.

    `owner [ttl] [class] DS key-tag algorithm digest-type hex...`: everything must parse
    but the length check dnspython makes against the digest type.
    """
    tokens = content.split()
    upper = [token.upper() for token in tokens]
    if "DS" not in upper or upper.index("DS") == 0:
        return None
    at = upper.index("DS")
    fields = tokens[at + 1:]
    if len(fields) < 4 or not all(field.isdigit() for field in fields[:3]):
        return None
    try:
        bytes.fromhex("".join(fields[3:]))
        return dns.name.from_text(tokens[0], origin=dns.name.root)
    except (ValueError, dns.exception.DNSException):
        return None


def write_trust_anchor(path: Path, anchor: dns.rrset.RRset, comment: str = "") -> None:
    """Write an anchor in the format `read_trust_anchors` (and Unbound) read."""
    lines = [f"; {line}" for line in comment.splitlines()] + anchor.to_text().splitlines()
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
