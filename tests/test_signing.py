"""DNSSEC signing and DO=1 answers: real signatures, checked with dns.dnssec.validate.

Layer-1 tests sign small zones written here and ask the Authority directly;
the lab tests use the sample zones with keys in a temporary folder and a fake
clock; a few go through real packets on loopback.
"""

from __future__ import annotations

import asyncio
import stat
import subprocess
import sys
from pathlib import Path

import dns.dnssec
import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest

from dnslab.authority.lookup import Authority, Outcome, Response
from dnslab.core.clock import FakeClock
from dnslab.core.errors import ConfigError, DnslabError
from dnslab.dnssec.keys import load_or_create
from dnslab.lab import fault_kinds
from dnslab.lab.runtime import Lab
from dnslab.dnssec.signing import SigningPolicy, make_ds, sign_zone, zone_text
from dnslab.testing import SAMPLE_ZONES, DnsLab
from dnslab.core.zone import Zone, load_zone, load_zone_text, nsec3_label

from conftest import lab_process, read_until, sample_copy, stop

REPO = Path(__file__).resolve().parent.parent

T = dns.rdatatype.RdataType
NOW = 1_800_000_000.0  # signing time for the layer-1 tests (POSIX seconds)
N = dns.name.from_text

ZONE = """\
$ORIGIN example.test.
$TTL 300
@        SOA ns admin 1 1800 900 604800 60
@        NS  ns
ns       A   192.0.2.53
www      A   192.0.2.1
         TXT "hello"
a.b.ent  A   192.0.2.2
*.wild   A   192.0.2.3
secure   NS  ns.secure
ns.secure A  192.0.2.54
insecure NS  ns.elsewhere.invalid.
"""


@pytest.fixture(scope="module", params=[False, True], ids=["nsec", "nsec3"])
def signed(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Zone:
    folder = tmp_path_factory.mktemp("keys")
    zone = load_zone_text(ZONE).zone
    assert zone is not None
    keys = load_or_create(folder, zone.origin)
    child = load_or_create(folder, N("secure.example.test."))
    return sign_zone(zone, keys, NOW, SigningPolicy(nsec3=request.param),
                     child_ds={N("secure.example.test."): [make_ds(child)], N("insecure.example.test."): []})


def ask(zone: Zone, name: str, qtype: str, dnssec: bool = True) -> Response:
    return Authority([zone]).lookup(N(name), dns.rdatatype.from_text(qtype), dnssec=dnssec)


def validate_all(zone: Zone, rrsets: list[dns.rrset.RRset]) -> list[dns.rrset.RRset]:
    """Check every RRSIG against the RRset it covers; returns the signed RRsets."""
    keys = {zone.origin: zone.get(zone.origin, T.DNSKEY)}
    checked = []
    for rrsig in (r for r in rrsets if r.rdtype == T.RRSIG):
        covered = next(r for r in rrsets if r.name == rrsig.name and r.rdtype == rrsig.covers)
        dns.dnssec.validate(covered, rrsig, keys, now=NOW)
        checked.append(covered)
    return checked


def covers(zone: Zone, record: dns.rrset.RRset, name: dns.name.Name) -> bool:
    """Does this NSEC/NSEC3 cover (strictly) *name*?"""
    if record.rdtype == T.NSEC:
        owner, following = record.name, record[0].next
        return owner < name < following or (following == zone.origin and name > owner)
    assert zone.nsec3param is not None
    hashed = nsec3_label(name, zone.nsec3param)
    owner = record.name.labels[0]
    following = dns.dnssec.base64.b32encode(record[0].next).decode()  # type: ignore[attr-defined]
    following = following.translate(str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567",
                                                  "0123456789ABCDEFGHIJKLMNOPQRSTUV")).lower().encode()
    return owner < hashed < following or (following <= owner and (hashed > owner or hashed < following))


def matches(zone: Zone, record: dns.rrset.RRset, name: dns.name.Name) -> bool:
    if record.rdtype == T.NSEC:
        return record.name == name
    assert zone.nsec3param is not None
    return record.name.labels[0] == nsec3_label(name, zone.nsec3param)


def denial(response: Response) -> list[dns.rrset.RRset]:
    return [r for r in response.authority if r.rdtype in (T.NSEC, T.NSEC3)]


def test_answer_carries_a_valid_rrsig(signed: Zone) -> None:
    response = ask(signed, "www.example.test.", "A")
    assert [r.rdtype for r in response.answer] == [T.A, T.RRSIG]
    assert validate_all(signed, response.answer) == [response.answer[0]]


def test_without_do_there_is_no_dnssec_data(signed: Zone) -> None:
    for name, qtype in (("www.example.test.", "A"), ("nx.example.test.", "A"), ("www.example.test.", "MX"),
                        ("x.secure.example.test.", "A"), ("x.wild.example.test.", "A")):
        response = ask(signed, name, qtype, dnssec=False)
        types = {r.rdtype for r in response.answer + response.authority + response.additional}
        assert not types & {T.RRSIG, T.NSEC, T.NSEC3, T.DS}, (name, qtype)


def test_explicit_dnssec_types_are_answered_as_stored(signed: Zone) -> None:
    dnskey = ask(signed, "example.test.", "DNSKEY", dnssec=False)
    assert [r.rdtype for r in dnskey.answer] == [T.DNSKEY] and len(dnskey.answer[0]) == 2
    signed_keys = ask(signed, "example.test.", "DNSKEY")
    assert validate_all(signed, signed_keys.answer)  # signed by the KSK
    rrsigs = ask(signed, "www.example.test.", "RRSIG", dnssec=False)
    assert {r.covers for r in rrsigs.answer} >= {T.A, T.TXT}


def test_nxdomain_proves_the_name_and_the_wildcard_absent(signed: Zone) -> None:
    response = ask(signed, "nx.example.test.", "A")
    assert response.rcode == dns.rcode.NXDOMAIN
    proofs = denial(response)
    validate_all(signed, response.authority)
    qname, wildcard = N("nx.example.test."), N("*.example.test.")
    assert any(covers(signed, p, qname) for p in proofs)
    assert any(covers(signed, p, wildcard) for p in proofs)
    if signed.nsec3param is not None:  # the closest encloser proof
        assert any(matches(signed, p, signed.origin) for p in proofs)


def test_nodata_shows_the_types_at_the_name(signed: Zone) -> None:
    response = ask(signed, "www.example.test.", "MX")
    assert response.outcome is Outcome.NODATA
    validate_all(signed, response.authority)
    proof = next(p for p in denial(response) if matches(signed, p, N("www.example.test.")))
    assert T.A in _types(proof) and T.MX not in _types(proof)


def test_nodata_at_an_empty_non_terminal(signed: Zone) -> None:
    response = ask(signed, "b.ent.example.test.", "A")
    assert response.outcome is Outcome.NODATA
    validate_all(signed, response.authority)
    proofs = denial(response)
    if signed.nsec3param is not None:
        assert any(matches(signed, p, N("b.ent.example.test.")) and not _types(p) for p in proofs)
    else:
        assert any(covers(signed, p, N("b.ent.example.test.")) for p in proofs)


def test_wildcard_answer_shows_the_wildcard_and_proves_no_closer_name(signed: Zone) -> None:
    response = ask(signed, "x.wild.example.test.", "A")
    assert response.answer[0].name == N("x.wild.example.test.")
    rrsig = response.answer[1]
    assert rrsig.rdtype == T.RRSIG and rrsig[0].labels == 3  # *.wild.example.test: the wildcard's labels
    validate_all(signed, response.answer)
    assert any(covers(signed, p, N("x.wild.example.test.")) for p in denial(response))


def test_wildcard_nodata(signed: Zone) -> None:
    response = ask(signed, "x.wild.example.test.", "TXT")
    assert response.outcome is Outcome.NODATA
    proofs = denial(response)
    assert any(matches(signed, p, N("*.wild.example.test.")) for p in proofs)
    assert any(covers(signed, p, N("x.wild.example.test.")) for p in proofs)


def test_secure_referral_has_the_signed_ds(signed: Zone) -> None:
    response = ask(signed, "www.secure.example.test.", "A")
    assert response.outcome is Outcome.REFERRAL
    assert [r.rdtype for r in response.authority] == [T.NS, T.DS, T.RRSIG]
    validate_all(signed, response.authority)
    assert not any(r.rdtype == T.RRSIG for r in response.additional)  # glue is not signed


def test_insecure_referral_proves_there_is_no_ds(signed: Zone) -> None:
    response = ask(signed, "www.insecure.example.test.", "A")
    assert response.outcome is Outcome.REFERRAL
    proof = next(p for p in denial(response) if matches(signed, p, N("insecure.example.test.")))
    assert T.NS in _types(proof) and T.DS not in _types(proof)
    validate_all(signed, response.authority)


def test_ds_query_at_the_cut_is_answered_by_the_parent(signed: Zone) -> None:
    response = ask(signed, "secure.example.test.", "DS")
    assert response.authoritative and [r.rdtype for r in response.answer] == [T.DS, T.RRSIG]
    validate_all(signed, response.answer)


def test_the_signed_zone_file_loads_and_verifies(signed: Zone, tmp_path: Path) -> None:
    path = tmp_path / "signed.zone"
    path.write_text(zone_text(signed))
    again = load_zone(path).zone
    assert again is not None and again.signed
    assert len(list(again.rrsets())) == len(list(signed.rrsets()))


def _types(record: dns.rrset.RRset) -> set[int]:
    found = set()
    for window, bitmap in record[0].windows:
        for index, byte in enumerate(bitmap):
            for bit in range(8):
                if byte & (0x80 >> bit):
                    found.add(window * 256 + index * 8 + bit)
    return found


# --- keys --------------------------------------------------------------------------------


def test_keys_are_made_once_and_kept_private(tmp_path: Path) -> None:
    first = load_or_create(tmp_path, N("example.test."))
    again = load_or_create(tmp_path, N("example.test."))
    assert (first.ksk.tag, first.zsk.tag) == (again.ksk.tag, again.zsk.tag)
    assert first.ksk.dnskey.flags == 257 and first.zsk.dnskey.flags == 256 and first.ksk.dnskey.algorithm == 13
    for pem in tmp_path.glob("*.pem"):
        assert stat.S_IMODE(pem.stat().st_mode) == 0o600


def test_a_broken_key_file_is_one_clear_error(tmp_path: Path) -> None:
    keys = load_or_create(tmp_path, N("example.test."))
    assert keys.ksk.path is not None
    keys.ksk.path.with_suffix(".pem").write_text("not a key")
    with pytest.raises(ConfigError, match="not a readable DNSSEC key"):
        load_or_create(tmp_path, N("example.test."))


# --- the lab -------------------------------------------------------------------------------


def signed_lab(tmp_path: Path, **options: object) -> Lab:
    lab, _ = Lab.from_folder(SAMPLE_ZONES, port=0, clock=FakeClock(), dnssec=True, keys_dir=tmp_path / "keys",
                             **options)  # type: ignore[arg-type]
    return lab


def server_answer(lab: Lab, address: str, name: str, qtype: str, do: bool = True) -> dns.message.Message:
    query = dns.message.make_query(name, qtype, want_dnssec=do)
    wire = lab.server(address).faulty.handle(query.to_wire(), False, None)
    assert isinstance(wire, bytes)
    return dns.message.from_wire(wire)


def lab_keys(lab: Lab, origin: str) -> dict[dns.name.Name, dns.rrset.RRset]:
    zone = next(z for z in lab.zones if z.origin == N(origin))
    return {zone.origin: zone.get(zone.origin, T.DNSKEY)}


def check(lab: Lab, reply: dns.message.Message, origin: str, rdtype: int) -> None:
    """Validate the reply's RRset of *rdtype* with its RRSIG, by the lab's clock."""
    rrset = next(r for r in reply.answer + reply.authority if r.rdtype == rdtype)
    rrsig = next(r for r in reply.answer + reply.authority if r.rdtype == T.RRSIG and r.covers == rdtype)
    dns.dnssec.validate(rrset, rrsig, lab_keys(lab, origin), now=lab.wall_time())


def test_the_lab_signs_every_zone_but_the_unsigned_and_chains_them(tmp_path: Path) -> None:
    lab = signed_lab(tmp_path)
    assert lab.dnssec and lab.signer is not None
    unsigned = set(lab.signer.settings.unsigned)
    assert unsigned == {N("example.net.")}
    for zone in lab.zones:
        assert zone.signed == (zone.origin not in unsigned)
    com = next(z for z in lab.zones if z.origin == N("com."))
    ds = com.get(N("example.com."), T.DS)
    keys = lab_keys(lab, "example.com.")[N("example.com.")]
    assert ds is not None and ds[0] == dns.dnssec.make_ds(N("example.com."), next(k for k in keys if k.flags == 257),
                                                          "SHA256")
    net = next(z for z in lab.zones if z.origin == N("net."))
    assert net.get(N("example.net."), T.DS) is None  # the insecure delegation
    assert lab.resolver_settings.trust_anchors == (lab.signer.root_ds(),)


def test_the_trust_anchor_file_is_the_root_ds(tmp_path: Path) -> None:
    lab = signed_lab(tmp_path, anchor_file=tmp_path / "anchor.ds")
    assert lab.trust_anchor_file == tmp_path / "anchor.ds"
    assert lab.signer is not None
    path = lab.signer.write_anchor()
    assert path is not None
    records = [line for line in path.read_text().splitlines() if not line.startswith(";")]
    anchor = dns.rrset.from_text(*records[0].split(maxsplit=4))  # ". 86400 IN DS ..."
    assert anchor == lab.signer.root_ds()
    root_keys = lab_keys(lab, ".")[dns.name.root]
    assert dns.dnssec.make_ds(dns.name.root, next(k for k in root_keys if k.flags == 257), "SHA256") == anchor[0]


def test_keys_survive_a_restart(tmp_path: Path) -> None:
    first = signed_lab(tmp_path)
    second = signed_lab(tmp_path)
    assert first.signer is not None and second.signer is not None
    assert {o: (k.ksk.tag, k.zsk.tag) for o, k in first.signer.keys.items()} == \
        {o: (k.ksk.tag, k.zsk.tag) for o, k in second.signer.keys.items()}
    assert first.signer.root_ds() == second.signer.root_ds()


def test_signatures_are_made_again_as_the_lab_clock_moves(tmp_path: Path) -> None:
    lab = signed_lab(tmp_path)
    assert isinstance(lab.clock, FakeClock)
    before = server_answer(lab, "127.0.3.1", "www.example.com.", "A").answer[1][0].expiration
    lab.clock.advance(9 * 86400)  # not yet three quarters of 14 days
    assert server_answer(lab, "127.0.3.1", "www.example.com.", "A").answer[1][0].expiration == before
    lab.clock.advance(2 * 86400)
    reply = server_answer(lab, "127.0.3.1", "www.example.com.", "A")
    assert reply.answer[1][0].expiration > before + 10 * 86400
    check(lab, reply, "example.com.", T.A)


def test_bad_sig_breaks_the_data_but_not_the_keys(tmp_path: Path) -> None:
    lab = signed_lab(tmp_path)
    lab.fault("example.com.", "dnssec-bad-sig")
    assert lab.faults()["example.com."] == ["dnssec-bad-sig"]
    with pytest.raises(dns.dnssec.ValidationFailure):
        check(lab, server_answer(lab, "127.0.3.1", "www.example.com.", "A"), "example.com.", T.A)
    check(lab, server_answer(lab, "127.0.3.1", "example.com.", "DNSKEY"), "example.com.", T.DNSKEY)
    lab.fault("example.com.", "clear")
    assert "example.com." not in lab.faults()
    check(lab, server_answer(lab, "127.0.3.1", "www.example.com.", "A"), "example.com.", T.A)


def test_expired_signatures(tmp_path: Path) -> None:
    lab = signed_lab(tmp_path)
    lab.zone_fault("example.com", "dnssec-expired")
    reply = server_answer(lab, "127.0.3.1", "example.com.", "DNSKEY")
    assert reply.answer[1][0].expiration < lab.wall_time()
    with pytest.raises(dns.dnssec.ValidationFailure):
        check(lab, reply, "example.com.", T.DNSKEY)


def test_missing_ds_leaves_a_denial_that_still_claims_a_ds(tmp_path: Path) -> None:
    lab = signed_lab(tmp_path)
    lab.fault("example.com", "dnssec-missing-ds")
    referral = server_answer(lab, "127.0.2.1", "www.example.com.", "A")
    assert not any(r.rdtype == T.DS for r in referral.authority)
    nsec = next(r for r in referral.authority if r.rdtype == T.NSEC)
    assert nsec.name == N("example.com.") and T.DS in _types(nsec)
    check(lab, referral, "com.", T.NSEC)  # properly signed: the lie is in what it says
    lab.fault("example.com", "clear")
    assert any(r.rdtype == T.DS for r in server_answer(lab, "127.0.2.1", "www.example.com.", "A").authority)


def test_wrong_ds_matches_no_key_of_the_child(tmp_path: Path) -> None:
    lab = signed_lab(tmp_path)
    lab.fault("example.com", "dnssec-wrong-ds")
    reply = server_answer(lab, "127.0.2.1", "example.com.", "DS")
    check(lab, reply, "com.", T.DS)
    keys = lab_keys(lab, "example.com.")[N("example.com.")]
    good = [dns.dnssec.make_ds(N("example.com."), key, "SHA256") for key in keys]
    assert reply.answer[0][0] not in good


def test_zone_faults_need_a_signed_zone_and_say_so(tmp_path: Path) -> None:
    lab = signed_lab(tmp_path)
    with pytest.raises(DnslabError, match="not signed"):
        lab.fault("example.net.", "dnssec-bad-sig")
    with pytest.raises(DnslabError, match="breaks a zone"):
        lab.server("127.0.3.1").faulty.apply("dnssec-bad-sig")
    plain, _ = Lab.from_folder(SAMPLE_ZONES, port=0, clock=FakeClock())
    with pytest.raises(DnslabError, match="not signed"):
        plain.fault("example.com.", "dnssec-bad-sig")


def test_every_zone_fault_of_the_registry_is_played_by_a_signed_lab(tmp_path: Path) -> None:
    """Declared in fault_kinds means accepted by a signed lab, listed, and lifted by `clear` (what each
    does to a validating resolver: tests/test_dnssec_resolver.py, which checks it covers them all)."""
    lab = signed_lab(tmp_path)
    for kind in fault_kinds.kinds(fault_kinds.Target.ZONE):
        lab.fault("example.com.", kind)
        assert lab.faults()["example.com."] == [kind.name]
        lab.fault("example.com.", "clear")
        assert "example.com." not in lab.faults()
    with pytest.raises(DnslabError, match="^servfail is a server fault: dnslab fault SERVER servfail$"):
        lab.zone_fault("example.com.", "servfail")


def test_record_changes_are_signed(tmp_path: Path) -> None:
    lab = signed_lab(tmp_path)
    asyncio.run(lab.record_set("new.example.com", "A", ["192.0.2.77"]))
    reply = server_answer(lab, "127.0.3.1", "new.example.com.", "A")
    check(lab, reply, "example.com.", T.A)


def test_nsec3_lab(tmp_path: Path) -> None:
    lab = signed_lab(tmp_path, nsec3=True)
    reply = server_answer(lab, "127.0.3.1", "nope.example.com.", "A")
    assert reply.rcode() == dns.rcode.NXDOMAIN
    assert [r.rdtype for r in reply.authority].count(T.NSEC3) >= 2
    assert not any(r.rdtype == T.NSEC for r in reply.authority)


# --- through the network and the command line -------------------------------------------


def test_dig_dnssec_against_a_running_signed_lab(tmp_path: Path) -> None:
    with DnsLab(dnssec=True, keys_dir=tmp_path / "keys") as lab:
        query = dns.message.make_query("www.example.com.", "A", want_dnssec=True)
        reply = dns.query.udp(query, "127.0.3.1", port=lab.port, timeout=5)
        assert [r.rdtype for r in reply.answer] == [T.A, T.RRSIG]
        plain = dns.query.udp(dns.message.make_query("www.example.com.", "A"), "127.0.3.1", port=lab.port,
                              timeout=5)
        assert [r.rdtype for r in plain.answer] == [T.A]
        assert lab.trust_anchor_file is not None and lab.trust_anchor_file.exists()
        lab.zone_fault("example.com.", "dnssec-bad-sig")
        assert lab.faults() == {"127.0.3.20": ["down"], "example.com.": ["dnssec-bad-sig"]}


@pytest.mark.parametrize("options", [[], ["--nsec3"], ["--algorithm", "ED25519"]], ids=["nsec", "nsec3", "ed25519"])
def test_sign_command_writes_a_zone_that_validates(tmp_path: Path, options: list[str]) -> None:
    source = tmp_path / "example.test.zone"
    source.write_text(ZONE)
    out = tmp_path / "signed.zone"
    done = subprocess.run([sys.executable, "-m", "dnslab", "sign", str(source), "--keys", str(tmp_path / "k"),
                           "-o", str(out), *options], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    ds_line = next(line for line in done.stdout.splitlines() if " DS " in line and not line.startswith(";"))
    zone = load_zone(out).zone
    assert zone is not None and zone.signed
    assert (zone.nsec3param is not None) == ("--nsec3" in options)
    keys = zone.get(zone.origin, T.DNSKEY)
    ds = dns.rrset.from_text(*ds_line.split(maxsplit=4))
    assert ds[0] == dns.dnssec.make_ds(zone.origin, next(k for k in keys if k.flags == 257), "SHA256")
    for rrset in zone.rrsets():
        rrsig = zone.signature(rrset.name, rrset.rdtype)
        if rrset.rdtype != T.RRSIG and rrsig is not None:
            dns.dnssec.validate(rrset, rrsig, {zone.origin: keys})


def test_sign_command_reports_a_bad_zone_in_one_line(tmp_path: Path) -> None:
    source = tmp_path / "bad.zone"
    source.write_text("$ORIGIN x.test.\n@ SOA ns admin 1 2 3 4 5\n")
    done = subprocess.run([sys.executable, "-m", "dnslab", "sign", str(source), "--keys", str(tmp_path / "k")],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and "Traceback" not in done.stderr and "not signed" in done.stderr


def test_up_dnssec_prints_the_anchor_and_serves_signed_answers(tmp_path: Path) -> None:
    proc, run = lab_process(tmp_path, "--dnssec", "--keys", str(tmp_path / "keys"), "--no-web", "--fake-clock")
    try:
        banner = read_until(proc, "Ctrl-C stops the lab.")
        assert "Ctrl-C stops the lab." in banner, banner
        port = int(banner.splitlines()[0].split()[3])
        anchor = tmp_path / "keys" / "root-anchor.ds"
        assert f"trust anchor {anchor}" in banner and "left unsigned: example.net." in banner
        assert ". 86400 IN DS " in anchor.read_text()
        query = dns.message.make_query("www.example.com.", "A", want_dnssec=True)
        reply = dns.query.udp(query, "127.0.3.1", port=port, timeout=5)
        assert [r.rdtype for r in reply.answer] == [T.A, T.RRSIG]
        # The lab's resolver validates: AD for dig's default AD=1, SERVFAIL once the zone is broken.
        ad_query = dns.message.make_query("www.example.com.", "A")
        ad_query.flags |= dns.flags.AD
        assert dns.query.udp(ad_query, "127.0.0.1", port=port, timeout=5).flags & dns.flags.AD
        assert "example.com.: dnssec-wrong-ds" in run("fault", "example.com", "dnssec-wrong-ds")
        assert "example.com.: dnssec-wrong-ds" in run("faults")
        run("cache", "flush")
        ad_query.id += 1
        assert dns.query.udp(ad_query, "127.0.0.1", port=port, timeout=5).rcode() == dns.rcode.SERVFAIL
        stats = run("stats")
        assert "secure             1" in stats and "bogus              1" in stats, stats
        assert "example.com.: no faults" in run("fault", "example.com", "clear")
    finally:
        code, _, err = stop(proc)
    assert code == 0, err


def test_any_with_do_signs_each_rrset_and_without_do_shows_signatures_as_data(signed: Zone) -> None:
    with_do = ask(signed, "www.example.test.", "ANY")
    types = [(r.rdtype, r.covers) for r in with_do.answer]
    assert (T.A, 0) in types and (T.RRSIG, T.A) in types and (T.RRSIG, T.TXT) in types
    validate_all(signed, with_do.answer)
    without = ask(signed, "www.example.test.", "ANY", dnssec=False)
    assert {r.covers for r in without.answer if r.rdtype == T.RRSIG} >= {T.A, T.TXT}  # as NSD sends them


def test_a_signed_answer_too_big_for_udp_is_truncated_whole(tmp_path: Path) -> None:
    from dnslab.authority.server import AuthoritativeServer

    lab = signed_lab(tmp_path)
    zone = next(z for z in lab.zones if z.origin == N("example.com."))
    server = AuthoritativeServer([zone])
    query = dns.message.make_query("big.example.com.", "TXT", want_dnssec=True, payload=1232)
    reply = dns.message.from_wire(server.handle(query.to_wire()))  # type: ignore[arg-type]
    assert reply.flags & dns.flags.TC and not reply.answer
    over_tcp = dns.message.from_wire(server.handle(query.to_wire(), via_tcp=True))  # type: ignore[arg-type]
    assert [r.rdtype for r in over_tcp.answer] == [T.TXT, T.RRSIG]
    small = dns.message.make_query("www.example.com.", "A", want_dnssec=True, payload=512)
    assert [r.rdtype for r in dns.message.from_wire(server.handle(small.to_wire())).answer] == [T.A, T.RRSIG]  # type: ignore[arg-type]


def test_an_unwritable_keys_folder_is_one_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    with pytest.raises(ConfigError, match="cannot use the DNSSEC keys folder"):
        load_or_create(blocker / "keys", N("example.test."))


def test_lab_toml_turns_signing_on_and_names_what_it_gets_wrong(tmp_path: Path) -> None:
    folder = sample_copy(tmp_path)
    settings = folder / "lab.toml"
    base = settings.read_text()
    settings.write_text(base + 'dnssec = true\nnsec3 = true\nkeys_dir = "my-keys"\n')
    lab, _ = Lab.from_folder(folder, port=0, clock=FakeClock())
    assert lab.dnssec and lab.signer is not None and lab.signer.settings.nsec3
    assert lab.signer.settings.keys_dir == folder / "my-keys" and any((folder / "my-keys").glob("K*.pem"))
    unsigned, _ = Lab.from_folder(folder, port=0, clock=FakeClock(), dnssec=False)  # the flag wins
    assert not unsigned.dnssec and unsigned.trust_anchor_file is None
    settings.write_text(base.replace('dnssec_unsigned = ["example.net."]', 'dnssec_unsigned = ["nowhere.test."]')
                        + "dnssec = true\n")
    with pytest.raises(ConfigError, match="nowhere.test. is not a zone of this lab"):
        Lab.from_folder(folder, port=0, clock=FakeClock())
    settings.write_text(base + 'dnssec_algorithm = "RSAMD5"\n')
    with pytest.raises(ConfigError, match="lab.toml: dnssec_algorithm: .*RSAMD5"):
        Lab.from_folder(folder, port=0, clock=FakeClock())
