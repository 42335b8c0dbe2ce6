"""tools/deckard/resign_rpl.py: a DSA-signed Deckard scenario re-signed so that a validator can verify it.

The scenario text below is the shape of Deckard's val_* files (written here, not copied): a trust
anchor DS, an entry with a DNSKEY set and an entry with signed data; the DSA signatures are the
DER blobs such files carry, which nothing verifies.
"""

from __future__ import annotations

import base64

import dns.dnssec
import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import dsa

from tools.deckard.resign_rpl import Resigner, _record, main

RdataType = dns.rdatatype.RdataType

ZONE = dns.name.from_text("example.test.")
# Key material made here (nothing taken from Deckard): a DSA key, and a DER-encoded DSA signature over
# some bytes, the form the DSA-signed scenarios carry where RFC 2536 wants T|R|S.
_PRIVATE = dsa.generate_private_key(1024)
_KEY = dns.dnssec.make_dnskey(_PRIVATE.public_key(), dns.dnssec.Algorithm.DSA, flags=256)
_TAG = dns.dnssec.key_id(_KEY)
_DSA_KEY = _KEY.to_text().split(" ", 3)[3]
_DER = base64.b64encode(_PRIVATE.sign(b"not the signed data", hashes.SHA1())).decode()
_DS = dns.dnssec.make_ds(ZONE, _KEY, "SHA1", validating=True).to_text()
SCENARIO = f"""\
\ttrust-anchor: "example.test. 3600 IN DS {_DS}"
CONFIG_END
SCENARIO_BEGIN shape of a DSA-signed scenario
RANGE_BEGIN 0 100
\tADDRESS 192.0.2.1
ENTRY_BEGIN
MATCH opcode qtype qname
REPLY QR NOERROR
SECTION QUESTION
example.test. IN DNSKEY
SECTION ANSWER
example.test. 3600 IN DNSKEY 256 3 3 {_DSA_KEY} ;{{id = {_TAG}}}
example.test. 3600 IN RRSIG DNSKEY 3 2 3600 20070926134802 20070829134802 {_TAG} example.test. {_DER}
ENTRY_END
ENTRY_BEGIN
MATCH opcode qtype qname
REPLY QR AA NOERROR
SECTION QUESTION
www.example.test. IN A
SECTION ANSWER
www.example.test. IN A 192.0.2.7
www.example.test. 3600 IN RRSIG A 3 3 3600 20070926134150 20070829134150 {_TAG} example.test. {_DER}
;www.example.test. 3600 IN RRSIG A 3 3 3600 20070926134150 20070829134150 {_TAG} example.test. {_DER}
www.example.test. 3600 IN RRSIG AAAA 3 3 3600 20070926134150 20070829134150 {_TAG} example.test. {_DER}
ENTRY_END
RANGE_END
"""
WWW = dns.name.from_text("www.example.test.")
WHEN = 1189950000  # 2007-09-16, inside every signature's validity


def _records(text: str) -> list[tuple[dns.name.Name, int, dns.rdata.Rdata]]:
    """The live records of the scenario's entries."""
    found, inside = [], False
    for line in text.splitlines():
        word = line.strip()
        if word.startswith(("ENTRY_BEGIN", "ENTRY_END")):
            inside = word.startswith("ENTRY_BEGIN")
            continue
        record = _record(line) if inside and not word.startswith(";") else None
        if record is not None:
            found.append(record)
    return found


def _anchor(text: str) -> dns.rdata.Rdata:
    line = next(line for line in text.splitlines() if "trust-anchor:" in line)
    record = _record(line.split('"')[1])
    assert record is not None
    return record[2]


def test_the_original_dsa_signatures_verify_for_nobody() -> None:
    """Why the tool exists: the scenarios' DSA signatures are DER blobs, not RFC 2536's T|R|S."""
    records = _records(SCENARIO)
    key = next(rdata for _, _, rdata in records if rdata.rdtype == RdataType.DNSKEY)
    sig = next(rdata for _, _, rdata in records if rdata.rdtype == RdataType.RRSIG)
    keys = dns.rrset.from_rdata_list(ZONE, 3600, [key])
    policy = dns.dnssec.SimpleDeny(deny_sign=set(), deny_validate=set(), deny_create_ds=set(),
                                   deny_validate_ds=set())
    with pytest.raises(dns.dnssec.ValidationFailure):
        dns.dnssec.validate_rrsig(keys, sig, {ZONE: keys}, now=WHEN, policy=policy)


def test_resigned_records_verify_from_the_new_trust_anchor() -> None:
    text = Resigner().scenario(SCENARIO)
    records = _records(text)
    keys = [rdata for _, _, rdata in records if rdata.rdtype == RdataType.DNSKEY]
    assert len(keys) == 1 and keys[0].algorithm == dns.dnssec.Algorithm.RSASHA256  # type: ignore[attr-defined]
    anchor = _anchor(text)
    assert anchor == dns.dnssec.make_ds(ZONE, keys[0], "SHA256")
    keyset = dns.rrset.from_rdata_list(ZONE, 3600, keys)
    sigs = {(owner, rdata.type_covered): rdata for owner, _, rdata in records  # type: ignore[attr-defined]
            if rdata.rdtype == RdataType.RRSIG}
    # The DNSKEY set signs itself, and the data is signed by it, with the original dates kept.
    dns.dnssec.validate_rrsig(keyset, sigs[(ZONE, RdataType.DNSKEY)], {ZONE: keyset}, now=WHEN)
    data = dns.rrset.from_text(WWW, 3600, "IN", "A", "192.0.2.7")
    sig = sigs[(WWW, RdataType.A)]
    dns.dnssec.validate_rrsig(data, sig, {ZONE: keyset}, now=WHEN)
    original = next(rdata for owner, _, rdata in _records(SCENARIO)
                    if rdata.rdtype == RdataType.RRSIG and owner == WWW and rdata.type_covered == RdataType.A)  # type: ignore[attr-defined]
    assert (sig.inception, sig.expiration) == (original.inception, original.expiration)  # type: ignore[attr-defined]
    # An RRSIG whose RRset the entry lacks cannot be made: it stays a signature that fails.
    assert sigs[(WWW, RdataType.AAAA)].key_tag == dns.dnssec.key_id(keys[0])  # type: ignore[attr-defined]


def test_only_dnssec_lines_change_and_comments_stay() -> None:
    before, after = SCENARIO.splitlines(), Resigner().scenario(SCENARIO).splitlines()
    assert len(before) == len(after)
    changed = [(old, new) for old, new in zip(before, after) if old != new]
    assert all(any(word in old for word in ("DNSKEY 256", "RRSIG", "trust-anchor")) for old, _ in changed)
    assert "www.example.test. IN A 192.0.2.7" in after
    assert any(line.startswith(";www.example.test.") and _DER in line for line in after)


def test_bad_input_is_one_line_and_a_nonzero_exit(tmp_path, capsys) -> None:
    assert main(["resign_rpl.py"]) == 2
    assert main(["resign_rpl.py", str(tmp_path / "missing.rpl"), str(tmp_path / "out.rpl")]) == 1
    broken = tmp_path / "broken.rpl"
    broken.write_text("ENTRY_BEGIN\nSECTION ANSWER\nwww.example.test. IN A not-an-address\nENTRY_END\n")
    assert main(["resign_rpl.py", str(broken), str(tmp_path / "out.rpl")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and all(line.startswith(("usage:", "resign_rpl.py:")) for line in err)
    assert not (tmp_path / "out.rpl").exists()
