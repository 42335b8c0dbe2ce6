"""RFC 8198 aggressive use of the validated cache, sans-I/O: which spans prove what, and for how long.

Signed fixtures (real keys and signatures, NSEC and NSEC3) feed the store the proofs a
validator judged secure; every answer the store makes is then handed to the validator
from scratch (its verdict not taken on trust), which must find it SECURE too.
"""

from __future__ import annotations

import dns.name
import dns.rcode
import dns.rdatatype
import pytest

from dnslab.core.clock import FakeClock
from dnslab.resolution.aggressive import Kind, NsecStore, Synthesis
from dnslab.resolution.cache import NegativeKind
from dnslab.resolution.iterator import Evidence, Result
from dnslab.resolution.validator import Security, Validator, Verdict
from dnslab.resolution.verdicts import remember_spans
from tests.dnssec_fixtures import NOW, Hierarchy, build

T = dns.rdatatype.RdataType
N = dns.name.from_text


@pytest.fixture(scope="module")
def signed() -> Hierarchy:
    return build()


@pytest.fixture(scope="module")
def signed_nsec3() -> Hierarchy:
    return build(nsec3=True)


@pytest.fixture(params=["nsec", "nsec3"])
def hierarchy(request: pytest.FixtureRequest, signed: Hierarchy, signed_nsec3: Hierarchy) -> Hierarchy:
    return signed if request.param == "nsec" else signed_nsec3


def store_for(clock: FakeClock | None = None, **kwargs: int) -> tuple[NsecStore, FakeClock]:
    clock = clock or FakeClock(wall_start=NOW)
    return NsecStore(clock, **kwargs), clock


def learn(store: NsecStore, hierarchy: Hierarchy, name: str, rdtype: int, kind: NegativeKind,
          zone: str | None = None) -> None:
    denial = hierarchy.negative(N(name), rdtype, hierarchy.zones[N(zone)] if zone else None, kind=kind).denial
    assert denial is not None
    store.learn_denial(denial.rrset, denial.sigs, denial.proof, NOW)


def validate(hierarchy: Hierarchy, synthesis: Synthesis, qname: str, qtype: int) -> Security:
    """The validator's own verdict on a synthesised answer, its proof checked from scratch."""
    name = N(qname)
    if synthesis.kind is Kind.WILDCARD:
        assert synthesis.answer is not None
        result = Result(dns.rcode.NOERROR, [synthesis.answer],
                        evidence=[Evidence(synthesis.answer, synthesis.answer_sigs, synthesis.zone, synthesis.proof)])
    else:
        assert synthesis.soa is not None and synthesis.negative is not None
        rcode = dns.rcode.NXDOMAIN if synthesis.kind is Kind.NXDOMAIN else dns.rcode.NOERROR
        result = Result(rcode, [], [synthesis.soa], denial=Evidence(synthesis.soa, synthesis.soa_sigs, synthesis.zone,
                                                                    synthesis.proof, negative=synthesis.negative))
    validator = Validator([hierarchy.anchor()], FakeClock(wall_start=NOW))
    check = validator.check(result, name, qtype)
    try:
        need = next(check)
        while True:
            need = check.send(hierarchy.fetch(need))
    except StopIteration as done:
        verdict: Verdict = done.value
    return verdict.security


def test_a_second_name_in_a_denied_span_is_nxdomain_from_the_store(hierarchy: Hierarchy) -> None:
    store, _ = store_for()
    learn(store, hierarchy, "nope.example.com.", T.A, NegativeKind.NXDOMAIN)
    names = [f"{letter}{i}.example.com." for letter in "abcdefghijklmnopqrstuvwxyz" for i in range(4)]
    proven = [name for name in names if store.synthesise(N(name), T.A) is not None]
    # Some names fall in the learned spans, and not all: the rest are outside what is known.
    assert 0 < len(proven) < len(names)
    synthesis = store.synthesise(N(proven[0]), T.A)
    assert synthesis is not None and synthesis.kind is Kind.NXDOMAIN
    assert synthesis.soa is not None and synthesis.soa.name == N("example.com.")
    assert any(r.rdtype == T.RRSIG for r in synthesis.proof)
    assert validate(hierarchy, synthesis, proven[0], T.A) is Security.SECURE
    # Every type at a nonexistent name, and the names below it, are denied the same way.
    deeper = store.synthesise(N("x.y." + proven[0]), T.MX)
    assert deeper is not None and deeper.kind is Kind.NXDOMAIN


def test_the_nsec_at_a_name_answers_nodata_for_the_types_it_lacks(hierarchy: Hierarchy) -> None:
    store, _ = store_for()
    learn(store, hierarchy, "www.example.com.", T.SSHFP, NegativeKind.NODATA)
    synthesis = store.synthesise(N("www.example.com."), T.TXT)
    assert synthesis is not None and synthesis.kind is Kind.NODATA
    assert validate(hierarchy, synthesis, "www.example.com.", T.TXT) is Security.SECURE
    assert store.synthesise(N("www.example.com."), T.A) is None  # it has A records: ask for them


def test_a_stored_wildcard_answers_other_names_below_it(hierarchy: Hierarchy) -> None:
    store, _ = store_for()
    zone = hierarchy.zones[N("example.com.")]
    source, sigs = hierarchy.rrset(zone, N("*.wild.example.com."), T.A)
    expanded = source.copy()
    expanded.name = N("first.wild.example.com.")
    proof = hierarchy.proof(zone, expanded.name, NegativeKind.NXDOMAIN)
    assert sigs is not None
    store.learn_wildcard(expanded, _renamed(sigs, expanded.name), proof, NOW)
    # With NSEC every name below the wildcard is in the learned span; with NSEC3 about one hash in ten.
    second = next((name for name in (f"s{i}.wild.example.com." for i in range(60))
                   if store.synthesise(N(name), T.A) is not None), None)
    assert second is not None
    synthesis = store.synthesise(N(second), T.A)
    assert synthesis is not None and synthesis.kind is Kind.WILDCARD and synthesis.answer is not None
    assert synthesis.answer.name == N(second) and set(synthesis.answer) == set(source)
    assert validate(hierarchy, synthesis, second, T.A) is Security.SECURE
    assert store.synthesise(N("wild.example.com."), T.A) is None  # the encloser itself: not from the wildcard


def _renamed(rrset, name):
    out = rrset.copy()
    out.name = name
    return out


def test_spans_expire_with_the_negative_ttl(signed: Hierarchy) -> None:
    store, clock = store_for()
    learn(store, signed, "nope.example.com.", T.A, NegativeKind.NXDOMAIN)
    soa = signed.rrset(signed.zones[N("example.com.")], N("example.com."), T.SOA)[0]
    negative_ttl = min(soa.ttl, soa[0].minimum)  # RFC 9077: no longer than the SOA's negative TTL
    assert store.synthesise(N("nope2.example.com."), T.A) is not None
    clock.advance(negative_ttl - 1)
    synthesis = store.synthesise(N("nope2.example.com."), T.A)
    assert synthesis is not None and synthesis.soa is not None and synthesis.soa.ttl == 1
    clock.advance(1)
    assert store.synthesise(N("nope2.example.com."), T.A) is None


def test_spans_do_not_outlive_their_signatures(signed: Hierarchy) -> None:
    store, _ = store_for()
    denial = signed.negative(N("nope.example.com."), T.A, kind=NegativeKind.NXDOMAIN).denial
    assert denial is not None
    expiration = min(s.expiration for s in denial.sigs)
    store.learn_denial(denial.rrset, denial.sigs, denial.proof, expiration + 1)  # learned after they ran out
    assert store.synthesise(N("nope2.example.com."), T.A) is None


def test_a_delegation_nsec_proves_no_ds_but_nothing_below_the_cut(hierarchy: Hierarchy) -> None:
    store, _ = store_for()
    learn(store, hierarchy, "insecure.com.", T.DS, NegativeKind.NODATA, zone="com.")  # the parent's denial
    synthesis = store.synthesise(N("insecure.com."), T.DS)
    assert synthesis is not None and synthesis.kind is Kind.NODATA
    assert validate(hierarchy, synthesis, "insecure.com.", T.DS) is Security.SECURE
    assert store.synthesise(N("www.insecure.com."), T.A) is None   # the child's names are the child's
    assert store.synthesise(N("insecure.com."), T.A) is None       # and so is its apex


def test_an_opt_out_span_proves_no_nxdomain() -> None:
    optout = build(nsec3=True, optout=True)
    store, _ = store_for()
    learn(store, optout, "nope.example.com.", T.A, NegativeKind.NXDOMAIN)
    assert not any(store.synthesise(N(f"{letter}{i}.example.com."), T.A)
                   for letter in "abcdefghijklmnopqrstuvwxyz" for i in range(4))


def test_only_what_the_validator_called_secure_is_learned(signed: Hierarchy) -> None:
    store, _ = store_for()
    denial = signed.negative(N("nope.example.com."), T.A, kind=NegativeKind.NXDOMAIN).denial
    assert denial is not None
    for security in (Security.INSECURE, Security.BOGUS, Security.INDETERMINATE):
        remember_spans(store, Verdict(security, parts=((denial, security),)), NOW)
    assert len(store) == 0
    remember_spans(store, Verdict(Security.SECURE, parts=((denial, Security.SECURE),)), NOW)
    assert len(store) > 0


def test_the_store_is_bounded(signed: Hierarchy) -> None:
    store, _ = store_for(max_records=3)
    for name in ("nope.example.com.", "zzz.example.com.", "nope.com.", "nope."):
        learn(store, signed, name, T.A, NegativeKind.NXDOMAIN)
    assert len(store) == 3
    store.clear()
    assert len(store) == 0 and store.synthesise(N("nope2.example.com."), T.A) is None


def test_meta_types_are_never_synthesised(signed: Hierarchy) -> None:
    store, _ = store_for()
    learn(store, signed, "nope.example.com.", T.A, NegativeKind.NXDOMAIN)
    assert store.synthesise(N("nope2.example.com."), T.ANY) is None
    assert store.synthesise(N("nope2.example.com."), T.RRSIG) is None


def test_an_nsec3_wildcard_answers_without_the_encloser_record(signed_nsec3: Hierarchy) -> None:
    """A wildcard answer's proof holds only the NSEC3 covering the next closer name (RFC 5155 §7.2.6):
    the stored wildcard itself shows its parent exists, so that is the closest encloser (Knot Resolver)."""
    hierarchy = signed_nsec3
    zone = hierarchy.zones[N("example.com.")]
    source, sigs = hierarchy.rrset(zone, N("*.wild.example.com."), T.A)
    assert sigs is not None
    first = N("first.wild.example.com.")
    full = hierarchy.proof(zone, first, NegativeKind.NXDOMAIN)
    covering = [r for r in full if r.rdtype == T.NSEC3 and hierarchy._proves(r, first, zone)]
    proof = tuple(covering) + tuple(s for s in full if s.rdtype == T.RRSIG and s.name == covering[0].name)
    store, _ = store_for()
    store.learn_wildcard(_renamed(source, first), _renamed(sigs, first), proof, NOW)
    second = next((name for name in (f"s{i}.wild.example.com." for i in range(60))
                   if store.synthesise(N(name), T.A) is not None), None)
    assert second is not None
    synthesis = store.synthesise(N(second), T.A)
    assert synthesis is not None and synthesis.kind is Kind.WILDCARD
    assert validate(hierarchy, synthesis, second, T.A) is Security.SECURE
    # Without the stored wildcard, the same span proves nothing.
    spans_only, _ = store_for()
    spans_only.learn_denial(None, None, proof, NOW)
    assert len(spans_only) == 1 and spans_only.synthesise(N(second), T.A) is None


def test_answers_from_the_store_do_not_renew_it(signed: Hierarchy) -> None:
    store, clock = store_for()
    learn(store, signed, "nope.example.com.", T.A, NegativeKind.NXDOMAIN)
    soa = signed.rrset(signed.zones[N("example.com.")], N("example.com."), T.SOA)[0]
    for _ in range(4 * min(soa.ttl, soa[0].minimum)):  # asked every half second, judged, remembered
        clock.advance(0.5)
        synthesis = store.synthesise(N("nope2.example.com."), T.A)
        if synthesis is None:
            break
        evidence = Evidence(synthesis.soa, synthesis.soa_sigs, synthesis.zone, synthesis.proof, synthesis.security,
                            negative=synthesis.negative)
        remember_spans(store, Verdict(Security.SECURE, parts=((evidence, Security.SECURE),)), NOW + clock.advanced)
    assert clock.advanced == min(soa.ttl, soa[0].minimum)  # gone exactly when the first span ran out
