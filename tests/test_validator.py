"""The validator, sans-I/O: signed fixtures in, verdicts out, every fetch answered by brute force."""

from __future__ import annotations

import dns.dnssec
import dns.name
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest

from dnslab.resolution.cache import NegativeKind
from dnslab.core.clock import FakeClock
from dnslab.core.events import Validation
from dnslab.resolution.iterator import Evidence, Result
from dnslab.resolution.validator import (EDE_DNSKEY_MISSING, EDE_DNSSEC_BOGUS, EDE_NSEC_MISSING, EDE_RRSIGS_MISSING,
                              EDE_SIGNATURE_EXPIRED, MAX_NSEC3_ITERATIONS, Fetch, KeyCache, Security, Validator,
                              Verdict)
from tests.dnssec_fixtures import NOW, build

T = dns.rdatatype.RdataType
N = dns.name.from_text


def run(hierarchy, result: Result, qname: str, qtype: int, wall: float = NOW, validator: Validator | None = None,
        events: list | None = None) -> tuple[Verdict, list[Fetch]]:
    clock = FakeClock(wall_start=wall)
    validator = validator or Validator([hierarchy.anchor()], clock)
    check = validator.check(result, N(qname), qtype, events.append if events is not None else None)
    fetches: list[Fetch] = []
    try:
        need = next(check)
        for _ in range(50):
            fetches.append(need)
            need = check.send(hierarchy.fetch(need))
        raise AssertionError("the validator kept asking")
    except StopIteration as done:
        return done.value, fetches


@pytest.fixture(scope="module")
def signed():
    return build()


@pytest.fixture(scope="module")
def signed_nsec3():
    return build(nsec3=True)


def test_a_signed_answer_is_secure_through_the_whole_chain(signed) -> None:
    events: list = []
    verdict, fetches = run(signed, signed.answer(N("www.example.com."), T.A), "www.example.com.", T.A,
                           events=events)
    assert verdict.security is Security.SECURE
    assert [(str(f.name), dns.rdatatype.to_text(f.rdtype)) for f in fetches] == [
        ("example.com.", "DS"), ("com.", "DS"), (".", "DNSKEY"), ("com.", "DNSKEY"), ("example.com.", "DNSKEY")]
    steps = [(e.step, e.zone, e.security) for e in events if isinstance(e, Validation)]
    assert ("dnskey", ".", "secure") in steps and ("ds", "com.", "secure") in steps
    assert steps[-1] == ("verdict", "example.com.", "secure")
    assert all(e.algorithm in (None, "ECDSAP256SHA256") for e in events)


def test_trusted_keys_are_cached_so_a_second_answer_needs_no_fetch(signed) -> None:
    validator = Validator([signed.anchor()], FakeClock(wall_start=NOW))
    run(signed, signed.answer(N("www.example.com."), T.A), "www.example.com.", T.A, validator=validator)
    verdict, fetches = run(signed, signed.answer(N("alias.example.com."), T.CNAME), "alias.example.com.",
                           T.CNAME, validator=validator)
    assert verdict.security is Security.SECURE and fetches == []


def test_changed_data_fails_the_signature(signed) -> None:
    result = signed.answer(N("www.example.com."), T.A)
    forged = dns.rrset.from_text("www.example.com.", 3600, "IN", "A", "203.0.113.66")
    result = Result(dns.rcode.NOERROR, [forged], evidence=[Evidence(forged, result.evidence[0].sigs,
                                                                     N("example.com."))])
    verdict, _ = run(signed, result, "www.example.com.", T.A)
    assert verdict.security is Security.BOGUS and verdict.ede == EDE_DNSSEC_BOGUS
    assert "signature crypto failed" in verdict.reason


def test_missing_signatures_in_a_signed_zone_are_bogus(signed) -> None:
    data = signed.answer(N("www.example.com."), T.A).answer[0]
    result = Result(dns.rcode.NOERROR, [data], evidence=[Evidence(data, None, N("example.com."))])
    verdict, _ = run(signed, result, "www.example.com.", T.A)
    assert verdict.security is Security.BOGUS and verdict.ede == EDE_RRSIGS_MISSING


def test_expired_signatures_are_bogus_by_the_validator_clock(signed) -> None:
    verdict, _ = run(signed, signed.answer(N("www.example.com."), T.A), "www.example.com.", T.A,
                     wall=NOW + 30 * 86400)
    assert verdict.security is Security.BOGUS and verdict.ede == EDE_SIGNATURE_EXPIRED
    assert "expired" in verdict.reason


def test_a_ds_that_matches_no_key_is_bogus() -> None:
    broken = build(tamper="wrong-ds")
    verdict, _ = run(broken, broken.answer(N("www.example.com."), T.A), "www.example.com.", T.A)
    assert verdict.security is Security.BOGUS and verdict.ede == EDE_DNSKEY_MISSING
    assert verdict.zone == N("example.com.")


def test_a_proven_unsigned_delegation_is_insecure(signed) -> None:
    events: list = []
    verdict, fetches = run(signed, signed.answer(N("www.insecure.com."), T.A), "www.insecure.com.", T.A,
                           events=events)
    assert verdict.security is Security.INSECURE
    assert Fetch(N("insecure.com."), T.DS) in fetches
    assert any(e.step == "insecure" and e.name == "insecure.com." for e in events if isinstance(e, Validation))


def test_an_unsigned_delegation_without_proof_is_bogus(signed) -> None:
    class NoProof:
        def __getattr__(self, name):
            return getattr(signed, name)

        def fetch(self, need):
            result = signed.fetch(need)
            if result.denial is not None:
                return Result(result.rcode, [], result.authority,
                              denial=Evidence(result.denial.rrset, result.denial.sigs, result.denial.zone, (),
                                              negative=NegativeKind.NODATA))
            return result
    verdict, _ = run(NoProof(), signed.answer(N("www.insecure.com."), T.A), "www.insecure.com.", T.A)
    assert verdict.security is Security.BOGUS and verdict.ede == EDE_NSEC_MISSING


@pytest.mark.parametrize("variant", ["nsec", "nsec3"])
def test_nxdomain_is_proven(variant, signed, signed_nsec3) -> None:
    hierarchy = signed if variant == "nsec" else signed_nsec3
    result = hierarchy.negative(N("nope.example.com."), T.A, kind=NegativeKind.NXDOMAIN)
    verdict, _ = run(hierarchy, result, "nope.example.com.", T.A)
    assert verdict.security is Security.SECURE, verdict.reason


@pytest.mark.parametrize("variant", ["nsec", "nsec3"])
def test_nodata_is_proven(variant, signed, signed_nsec3) -> None:
    hierarchy = signed if variant == "nsec" else signed_nsec3
    result = hierarchy.negative(N("www.example.com."), T.MX)
    verdict, _ = run(hierarchy, result, "www.example.com.", T.MX)
    assert verdict.security is Security.SECURE, verdict.reason


@pytest.mark.parametrize("variant", ["nsec", "nsec3"])
def test_an_empty_non_terminal_is_proven(variant, signed, signed_nsec3) -> None:
    hierarchy = signed if variant == "nsec" else signed_nsec3
    result = hierarchy.negative(N("b.deep.example.com."), T.A)
    verdict, _ = run(hierarchy, result, "b.deep.example.com.", T.A)
    assert verdict.security is Security.SECURE, verdict.reason


def test_nxdomain_without_the_wildcard_denial_is_bogus(signed) -> None:
    result = signed.negative(N("nope.example.com."), T.A, kind=NegativeKind.NXDOMAIN)
    assert result.denial is not None
    covering = [r for r in result.denial.proof if r.rdtype == T.NSEC and r.name < N("nope.example.com.")
                and N("nope.example.com.") < r[0].next]
    sigs = [r for r in result.denial.proof if r.rdtype == T.RRSIG and r.name == covering[0].name]
    narrowed = Result(result.rcode, [], result.authority,
                      denial=Evidence(result.denial.rrset, result.denial.sigs, result.denial.zone,
                                      tuple(covering + sigs), negative=NegativeKind.NXDOMAIN))
    # *.example.com sorts right after the apex, far from nope.example.com: two NSECs are needed.
    assert not covering[0].name < N("*.example.com.") < covering[0][0].next
    verdict, _ = run(signed, narrowed, "nope.example.com.", T.A)
    assert verdict.security is Security.BOGUS and verdict.ede == EDE_NSEC_MISSING
    assert "wildcard" in verdict.reason


def test_a_nodata_claim_for_a_type_that_exists_is_bogus(signed) -> None:
    result = signed.negative(N("www.example.com."), T.A)  # www has A: the NSEC lists it
    verdict, _ = run(signed, result, "www.example.com.", T.A)
    assert verdict.security is Security.BOGUS and verdict.ede == EDE_NSEC_MISSING


@pytest.mark.parametrize("variant", ["nsec", "nsec3"])
def test_a_wildcard_answer_needs_its_proof(variant, signed, signed_nsec3) -> None:
    hierarchy = signed if variant == "nsec" else signed_nsec3
    zone = hierarchy.zones[N("example.com.")]
    data = zone.find_rrset(N("*.wild.example.com."), T.A)
    sigs = zone.get_rrset(N("*.wild.example.com."), T.RRSIG, T.A)
    owner = N("x.wild.example.com.")
    expanded = dns.rrset.RRset(owner, data.rdclass, data.rdtype)
    expanded.update(data)
    expanded_sigs = dns.rrset.RRset(owner, sigs.rdclass, sigs.rdtype, sigs.covers)
    expanded_sigs.update(sigs)
    proof = hierarchy.proof(zone, owner, NegativeKind.NXDOMAIN)
    with_proof = Result(dns.rcode.NOERROR, [expanded],
                        evidence=[Evidence(expanded, expanded_sigs, zone.origin, proof)])
    verdict, _ = run(hierarchy, with_proof, "x.wild.example.com.", T.A)
    assert verdict.security is Security.SECURE, verdict.reason
    without = Result(dns.rcode.NOERROR, [expanded], evidence=[Evidence(expanded, expanded_sigs, zone.origin)])
    verdict, _ = run(hierarchy, without, "x.wild.example.com.", T.A)
    assert verdict.security is Security.BOGUS and verdict.ede == EDE_NSEC_MISSING


def test_names_outside_every_anchor_are_indeterminate(signed) -> None:
    data = dns.rrset.from_text("www.example.com.", 300, "IN", "A", "192.0.2.1")
    validator = Validator([dns.rrset.from_text("example.net.", 300, "IN", "DS",
                                               "1 13 2 " + "00" * 32)], FakeClock(wall_start=NOW))
    verdict, fetches = run(signed, Result(dns.rcode.NOERROR, [data], evidence=[Evidence(data, None,
                                                                                       N("example.com."))]),
                           "www.example.com.", T.A, validator=validator)
    assert verdict.security is Security.INDETERMINATE and fetches == []


def test_a_bogus_key_is_remembered_briefly_not_forever() -> None:
    broken = build(tamper="wrong-ds")
    clock = FakeClock(wall_start=NOW)
    validator = Validator([broken.anchor()], clock, KeyCache(clock))
    run(broken, broken.answer(N("www.example.com."), T.A), "www.example.com.", T.A, validator=validator)
    assert validator.keys.get(N("example.com.")).security is Security.BOGUS
    clock.advance(61)
    assert validator.keys.get(N("example.com.")) is None


def test_signatures_asked_for_as_data_are_not_judged(signed) -> None:
    zone = signed.zones[N("example.com.")]
    sigs = zone.get_rrset(N("www.example.com."), T.RRSIG, T.A)
    result = Result(dns.rcode.NOERROR, [sigs], evidence=[Evidence(sigs, None, zone.origin)])
    verdict, fetches = run(signed, result, "www.example.com.", T.RRSIG)
    assert verdict.security is Security.INDETERMINATE and fetches == []  # no AD, as Unbound; never bogus


def test_a_sha1_ds_still_validates(signed) -> None:
    """RFC 8624 §3.3: SHA-1 DS records MUST be validated, though no longer made (dnspython's policy)."""
    ds = dns.dnssec.make_ds(dns.name.root, signed.ksk[dns.name.root], "SHA1", validating=True)
    validator = Validator([dns.rrset.from_rdata(dns.name.root, 86400, ds)], FakeClock(wall_start=NOW))
    verdict, _ = run(signed, signed.answer(N("www.example.com."), T.A), "www.example.com.", T.A,
                     validator=validator)
    assert verdict.security is Security.SECURE, verdict.reason


def test_dsa_signed_data_is_validated_as_unbound_does() -> None:
    """DSA (3) is checked, not taken as unsigned: stripped signatures are then bogus, not insecure."""
    from cryptography.hazmat.primitives.asymmetric import dsa

    zone = N("dsa.example.")
    private = dsa.generate_private_key(key_size=1024)
    key = dns.dnssec.make_dnskey(private.public_key(), dns.dnssec.Algorithm.DSA, flags=257)
    keys = dns.rrset.from_rdata(zone, 3600, key)
    data = dns.rrset.from_text("www.dsa.example.", 3600, "IN", "A", "192.0.2.1")
    allow = dns.dnssec.SimpleDeny(set(), set(), set(), set())

    def signed(rrset):
        sig = dns.dnssec.sign(rrset, private, zone, key, inception=NOW - 60, expiration=NOW + 3600, policy=allow)
        return dns.rrset.from_rdata(rrset.name, rrset.ttl, sig)

    class Zone:
        def fetch(self, need):
            if need == Fetch(data.name, T.DS):  # stripped data: is there an unsigned cut? (no proof: no)
                return Result(dns.rcode.NOERROR)
            assert need == Fetch(zone, T.DNSKEY)
            return Result(dns.rcode.NOERROR, [keys], evidence=[Evidence(keys, signed(keys), zone)])

    anchor = dns.rrset.from_rdata(zone, 3600, dns.dnssec.make_ds(zone, key, "SHA256"))
    validator = Validator([anchor], FakeClock(wall_start=NOW))
    good = Result(dns.rcode.NOERROR, [data], evidence=[Evidence(data, signed(data), zone)])
    verdict, _ = run(Zone(), good, "www.dsa.example.", T.A, validator=validator)
    assert verdict.security is Security.SECURE, verdict.reason
    stripped = Result(dns.rcode.NOERROR, [data], evidence=[Evidence(data, None, zone)])
    verdict, _ = run(Zone(), stripped, "www.dsa.example.", T.A, validator=validator)
    assert verdict.security is Security.BOGUS and verdict.ede == EDE_RRSIGS_MISSING


def test_nsec3_with_too_many_iterations_makes_the_answer_insecure() -> None:
    """RFC 9276 §3.2: a proof over the iteration limit is neither hashed nor trusted: insecure, no AD."""
    costly = build(nsec3=True, iterations=MAX_NSEC3_ITERATIONS + 1)
    result = costly.negative(N("nope.example.com."), T.A, kind=NegativeKind.NXDOMAIN)
    verdict, _ = run(costly, result, "nope.example.com.", T.A)
    assert verdict.security is Security.INSECURE and "iterations" in verdict.reason
    within = build(nsec3=True, iterations=MAX_NSEC3_ITERATIONS)
    result = within.negative(N("nope.example.com."), T.A, kind=NegativeKind.NXDOMAIN)
    verdict, _ = run(within, result, "nope.example.com.", T.A)
    assert verdict.security is Security.SECURE, verdict.reason


def test_an_nsec3_denial_without_soa_still_proves_no_ds(signed_nsec3) -> None:
    """Some servers answer a DS question with the NSEC3 records alone: the proof is judged without a SOA."""
    class SoaLess:
        def __getattr__(self, name):
            return getattr(signed_nsec3, name)

        def fetch(self, need):
            result = signed_nsec3.fetch(need)
            if result.denial is None:
                return result
            nsec3 = next(r for r in result.denial.proof if r.rdtype == T.NSEC3)
            sigs = next(r for r in result.denial.proof if r.rdtype == T.RRSIG and r.name == nsec3.name)
            return Result(result.rcode, [], [], denial=Evidence(nsec3, sigs, result.denial.zone, result.denial.proof,
                                                                negative=NegativeKind.NODATA))
    verdict, _ = run(SoaLess(), signed_nsec3.answer(N("www.insecure.com."), T.A), "www.insecure.com.", T.A)
    assert verdict.security is Security.INSECURE, verdict.reason


@pytest.fixture(scope="module")
def signed_optout():
    return build(nsec3=True, optout=True)


def test_nsec3_opt_out_leaves_nodata_and_wildcards_insecure_not_bogus_or_secure(signed_optout) -> None:
    """RFC 5155 §8.6-8.8 as Unbound reads them: an opt-out span over the next closer name gives no AD."""
    hierarchy = signed_optout
    zone = hierarchy.zones[N("example.com.")]
    # NODATA for a name with no NSEC3 of its own: only the span's opt-out flag speaks for it.
    nsec3 = [r for r in hierarchy.proof(zone, N("nope.example.com."), NegativeKind.NXDOMAIN)]
    result = hierarchy.negative(N("nope.example.com."), T.A, proof=tuple(nsec3))
    verdict, _ = run(hierarchy, result, "nope.example.com.", T.A)
    assert verdict.security is Security.INSECURE, verdict.reason
    # A wildcard expansion whose next closer name is covered by an opt-out NSEC3.
    data = zone.find_rrset(N("*.wild.example.com."), T.A)
    sigs = zone.get_rrset(N("*.wild.example.com."), T.RRSIG, T.A)
    owner = N("x.wild.example.com.")
    expanded = dns.rrset.RRset(owner, data.rdclass, data.rdtype)
    expanded.update(data)
    expanded_sigs = dns.rrset.RRset(owner, sigs.rdclass, sigs.rdtype, sigs.covers)
    expanded_sigs.update(sigs)
    proof = hierarchy.proof(zone, owner, NegativeKind.NXDOMAIN)
    result = Result(dns.rcode.NOERROR, [expanded], evidence=[Evidence(expanded, expanded_sigs, zone.origin, proof)])
    verdict, _ = run(hierarchy, result, "x.wild.example.com.", T.A)
    assert verdict.security is Security.INSECURE, verdict.reason


def test_an_empty_answer_without_soa_or_nsec_from_a_signed_zone_is_bogus(signed) -> None:
    """RFC 4035 §5.4: a signed zone's NODATA needs its proof; an unsigned zone's is just insecure."""
    verdict, _ = run(signed, Result(dns.rcode.NOERROR, [], zone=N("example.com.")), "nope.example.com.", T.A)
    assert verdict.security is Security.BOGUS and verdict.ede == EDE_NSEC_MISSING
    verdict, _ = run(signed, Result(dns.rcode.NOERROR, [], zone=N("insecure.com.")), "nope.insecure.com.", T.A)
    assert verdict.security is Security.INSECURE


def test_root_key_sentinel_names_fail_by_the_root_anchors_key_tags(signed) -> None:
    """RFC 8509: is-ta-<tag> fails unless the root anchor has that key; not-ta-<tag> fails if it has."""
    tag = signed.anchor()[0].key_tag
    other = dns.rrset.from_text("example.net.", 300, "IN", "DS", "4759 13 2 " + "00" * 32)
    validator = Validator([signed.anchor(), other], FakeClock(wall_start=NOW))
    assert validator.root_key_tags() == {tag}
    assert validator.sentinel_miss(N(f"root-key-sentinel-is-ta-{tag:05d}.example.com."), T.A) == ""
    assert "not a root trust anchor" in validator.sentinel_miss(N("root-key-sentinel-is-ta-04759.example.com."),
                                                                T.AAAA)
    assert "is a root trust anchor" in validator.sentinel_miss(N(f"root-key-sentinel-not-ta-{tag:05d}.x."), T.A)
    assert validator.sentinel_miss(N("root-key-sentinel-not-ta-04759.x."), T.A) == ""
    # Only A and AAAA, and only the leftmost label.
    assert validator.sentinel_miss(N("root-key-sentinel-is-ta-04759.x."), T.TXT) == ""
    assert validator.sentinel_miss(N("www.root-key-sentinel-is-ta-04759.x."), T.A) == ""


def test_a_referrals_no_ds_proof_is_used_without_asking_for_the_ds(signed) -> None:
    """RFC 4035 §3.1.4: the NSEC in a referral to an unsigned child proves there is no DS."""
    denial = signed.negative(N("insecure.com."), T.DS, signed.zones[N("com.")]).denial
    assert denial is not None
    result = signed.answer(N("www.insecure.com."), T.A)
    result.ds_denials = {N("insecure.com."): denial}
    verdict, fetches = run(signed, result, "www.insecure.com.", T.A)
    assert verdict.security is Security.INSECURE, verdict.reason
    assert Fetch(N("insecure.com."), T.DS) not in fetches


def test_a_synthesised_cname_takes_its_dnames_verdict_for_the_cache(signed) -> None:
    """RFC 6672 §5.3.3: the CNAME a resolver derives from a signed DNAME has no RRSIG of its own; it
    is as secure as the DNAME, and its cache entry must say so or the next answer from the cache is bogus."""
    from dnslab.resolution.classify import synthesise_cname

    zone = signed.zones[N("example.com.")]
    dname = zone.find_rrset(N("old.example.com."), T.DNAME)
    sigs = zone.get_rrset(N("old.example.com."), T.RRSIG, T.DNAME)
    cname = synthesise_cname(N("x.old.example.com."), N("x.www.example.com."), dname.ttl)
    synthesised = Evidence(cname, None, zone.origin, synthesised=True)
    result = Result(dns.rcode.NOERROR, [dname, cname],
                    evidence=[Evidence(dname, sigs, zone.origin), synthesised])
    verdict, _ = run(signed, result, "x.old.example.com.", T.CNAME)
    assert verdict.security is Security.SECURE, verdict.reason
    assert (synthesised, Security.SECURE) in verdict.parts
    # What the cache then hands back: the CNAME alone, with the verdict it was given.
    again = Result(dns.rcode.NOERROR, [cname], evidence=[Evidence(cname, None, zone.origin, security="secure")])
    verdict, _ = run(signed, again, "x.old.example.com.", T.CNAME)
    assert verdict.security is Security.SECURE, verdict.reason


def test_a_bogus_verdict_names_the_servers_whose_data_failed(signed) -> None:
    """What a retry needs to ask someone else (Unbound's blacklist): the answer's server, or the key's."""
    result = signed.answer(N("www.example.com."), T.A)
    forged = dns.rrset.from_text("www.example.com.", 3600, "IN", "A", "203.0.113.66")
    bad = Result(dns.rcode.NOERROR, [forged], evidence=[Evidence(forged, result.evidence[0].sigs,
                                                                 N("example.com."), source="192.0.2.53")])
    verdict, _ = run(signed, bad, "www.example.com.", T.A)
    assert verdict.security is Security.BOGUS and verdict.sources == ("192.0.2.53",)

    class BadKeys:
        def anchor(self):
            return signed.anchor()

        def fetch(self, need):
            fetched = signed.fetch(need)
            if need.rdtype == T.DNSKEY and need.name == N("example.com."):
                keys = fetched.evidence[0]
                return Result(fetched.rcode, fetched.answer,
                              evidence=[Evidence(keys.rrset, None, keys.zone, source="192.0.2.54")])
            return fetched
    verdict, _ = run(BadKeys(), signed.answer(N("www.example.com."), T.A), "www.example.com.", T.A)
    assert verdict.security is Security.BOGUS and verdict.sources == ("192.0.2.54",)


def test_a_trust_anchor_ds_whose_digest_does_not_fit_its_type_makes_the_zone_bogus(signed) -> None:
    """Unbound reads such an anchor and finds no key matching it: SERVFAIL, neither a refusal to
    start nor a zone that silently passes as unsigned (Deckard's val_minimal_baddsdigesttype)."""
    from dnslab.dnssec.anchors import parse_trust_anchors

    good = signed.anchor()[0]
    sha256_hex = good.digest.hex() if good.digest_type == 2 else "ab" * 32
    text = f". IN DS {good.key_tag} {good.algorithm} 1 {sha256_hex}"  # a SHA-256-long digest, type SHA-1
    anchors = parse_trust_anchors(text)
    assert [(a.name, a.rdtype, len(a)) for a in anchors] == [(dns.name.root, T.DS, 0)]
    validator = Validator(anchors, FakeClock(wall_start=NOW))
    verdict, _ = run(signed, signed.answer(N("www.example.com."), T.A), "www.example.com.", T.A,
                     validator=validator)
    assert verdict.security is Security.BOGUS and verdict.ede == EDE_DNSKEY_MISSING
    with pytest.raises(Exception, match="not a DS or DNSKEY record"):
        parse_trust_anchors(". IN DS 1 8 1 not-hex")


@pytest.mark.parametrize("nsec3", [False, True])
def test_unsigned_data_from_a_parents_server_is_insecure_when_the_parent_proves_the_cut(nsec3) -> None:
    """One server for a signed zone and its unsigned child answers the child's data without a
    referral (val_ta_sentinel_insecure, world_mx_nic_www): the data is judged by the parent's
    keys and has no RRSIG.  Asking the DS of the names between finds the parent's proof of an
    unsigned delegation, as Unbound's and Knot Resolver's validators do: insecure, not bogus."""
    hierarchy = build(nsec3=nsec3)
    data, _ = hierarchy.rrset(hierarchy.zones[N("insecure.com.")], N("www.insecure.com."), T.A)
    claimed = Result(dns.rcode.NOERROR, [data], evidence=[Evidence(data, None, N("com."))])
    verdict, fetches = run(hierarchy, claimed, "www.insecure.com.", T.A)
    assert verdict.security is Security.INSECURE, verdict.reason
    assert Fetch(N("insecure.com."), T.DS) in fetches


def test_stripped_data_stays_bogus_when_the_names_between_are_no_cut(signed) -> None:
    """The same search finds no delegation for data stripped of its RRSIGs inside a signed zone:
    a name with no DS but no NS bit either is not a cut (RFC 4035 §5.2)."""
    data, _ = signed.rrset(signed.zones[N("example.com.")], N("www.example.com."), T.A)
    stripped = Result(dns.rcode.NOERROR, [data], evidence=[Evidence(data, None, N("example.com."))])
    verdict, fetches = run(signed, stripped, "www.example.com.", T.A)
    assert verdict.security is Security.BOGUS and verdict.ede == EDE_RRSIGS_MISSING
    assert Fetch(N("www.example.com."), T.DS) in fetches
