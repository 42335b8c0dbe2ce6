"""DNSSEC validation (RFC 4033-4035, 5155): is an answer secure, insecure or bogus?

Like Unbound's validator module, this runs after the iterator has found an
answer and judges it; it never changes how the answer was found.  It is
sans-I/O in the same way as the iterator: `Validator.check` is a generator
that yields `Fetch(name, type)` whenever it needs a DS or DNSKEY RRset, and is
sent back the iterator's `Result` for it (unvalidated, with its RRSIGs).  So
every chain, every proof and every way of being bogus can be tested from
signed fixtures without a network.

The chain of trust is built as Unbound builds it: a zone's keys are trusted
when its DNSKEY RRset is signed by a key that matches a DS the parent signed
(or the configured trust anchor); a signed proof that the parent has no DS
for the zone makes it and everything below it insecure.  Trusted keys are kept
in a `KeyCache` until their TTL runs out.  dnspython's `dns.dnssec` does the
cryptography; which keys, which signer, which proof is ours.
"""

from __future__ import annotations

import base64
import enum
import re
import time
from dataclasses import dataclass, field, replace
from typing import Generator, Iterable

import cachetools
import dns.dnssec
import dns.exception
import dns.name
import dns.rcode
import dns.rdatatype
import dns.rdtypes.ANY.NSEC3
import dns.rrset

from dnslab.resolution.cache import NegativeKind
from dnslab.core.clock import Clock
from dnslab.core.events import Sink, Validation
from dnslab.resolution.iterator import Evidence, Result, chain_end

RdataType = dns.rdatatype.RdataType

# RFC 8914 Extended DNS Error codes a validator gives.
EDE_UNSUPPORTED_DNSKEY_ALGORITHM = 1
EDE_DNSSEC_BOGUS = 6
EDE_SIGNATURE_EXPIRED = 7
EDE_SIGNATURE_NOT_YET_VALID = 8
EDE_DNSKEY_MISSING = 9
EDE_RRSIGS_MISSING = 10
EDE_NSEC_MISSING = 12

# What a validator can check (RFC 8624 "MUST implement" plus the common rest).  DSA (3, 6)
# too, as Unbound's default build does: RFC 8624 retires it, but treating a DSA-signed zone
# as unsigned would pass on data stripped of its signatures as insecure, where Unbound
# (and the scenarios written against it) see bogus.
_ALGORITHMS = {3, 5, 6, 7, 8, 10, 13, 14, 15, 16}
# dnspython's default (RFC 8624) policy refuses DSA; ours validates what _ALGORITHMS lists
# and, as the default policy does, only refuses to *make* SHA-1 DS records (never done here).
_POLICY = dns.dnssec.SimpleDeny(deny_sign=set(), deny_validate={dns.dnssec.Algorithm.RSAMD5},
                                deny_create_ds={dns.dnssec.DSDigest.NULL},
                                deny_validate_ds={dns.dnssec.DSDigest.NULL})
_DIGESTS = {1: "SHA1", 2: "SHA256", 4: "SHA384"}
# How long a failed key lookup is remembered (Unbound's val-bogus-ttl is 60 s).
BOGUS_TTL = 60
MAX_KEY_TTL = 86400
# RFC 9276 §3.2: NSEC3 proofs with more iterations make the answer insecure rather than
# cost a hash chain that long per name; 150 is Unbound's val-nsec3-keysize-iterations.
MAX_NSEC3_ITERATIONS = 150
# RFC 8509 §2: the leftmost label of a root-key-sentinel question (five decimal digits).
_SENTINEL = re.compile(r"root-key-sentinel-(is|not)-ta-(\d{5})")


class Security(enum.StrEnum):
    """RFC 4033 §5 states; INDETERMINATE is "no trust anchor covers this name"."""

    SECURE = "secure"
    INSECURE = "insecure"
    BOGUS = "bogus"
    INDETERMINATE = "indeterminate"


@dataclass(frozen=True)
class Verdict:
    security: Security
    reason: str = ""                 # for BOGUS: what failed, as the EDE text says it
    ede: int | None = None
    zone: dns.name.Name | None = None  # where the chain ended (insecure) or broke (bogus)
    # The verdict on each part (answer RRsets, the denial), for the cache to remember.
    parts: tuple[tuple[Evidence, Security], ...] = ()
    # For BOGUS: the servers whose data failed, so a retry can ask others (Unbound's blacklist).
    sources: tuple[str, ...] = ()
    # For BOGUS: the zones whose DS/DNSKEY data the failure rests on, from where the chain broke
    # down to the answer's zone, so a retry forgets all of it (not only the answer's zone).
    broken: tuple[dns.name.Name, ...] = ()


@dataclass(frozen=True)
class Fetch:
    """The validator needs this RRset (DS or DNSKEY), fetched by the iterator, unvalidated."""

    name: dns.name.Name
    rdtype: int


@dataclass(frozen=True)
class KeyEntry:
    """What is known about one zone's keys: trusted keys, proven unsigned, or broken."""

    zone: dns.name.Name
    security: Security
    keys: dns.rrset.RRset | None = None  # the validated DNSKEY RRset, when SECURE
    expires_at: float = 0.0
    reason: str = ""
    ede: int | None = None
    sources: tuple[str, ...] = ()  # BOGUS: the servers whose DS/DNSKEY failed
    broken: tuple[dns.name.Name, ...] = ()  # BOGUS: where the chain broke, and the zones below it that inherit it


class KeyCache:
    """Validated zone keys by zone, each until its own TTL (Unbound's key cache)."""

    def __init__(self, clock: Clock, max_entries: int = 10_000) -> None:
        self._clock = clock
        self._store: cachetools.TLRUCache = cachetools.TLRUCache(
            maxsize=max_entries, ttu=lambda _k, entry, _now: entry.expires_at, timer=clock.now)

    def get(self, zone: dns.name.Name) -> KeyEntry | None:
        entry: KeyEntry | None = self._store.get(zone)
        if entry is None or self._clock.now() >= entry.expires_at:
            return None
        return entry

    def put(self, entry: KeyEntry) -> None:
        self._store[entry.zone] = entry

    def clear(self) -> None:
        self._store.clear()

    def __len__(self) -> int:
        return len(self._store)


Check = Generator[Fetch, Result, Verdict]


class Validator:
    """Judges results against trust anchors; one per resolver, shared by every lookup."""

    def __init__(self, anchors: Iterable[dns.rrset.RRset], clock: Clock, keys: KeyCache | None = None) -> None:
        self.anchors: dict[dns.name.Name, list[dns.rrset.RRset]] = {}
        for anchor in anchors:
            if anchor.rdtype not in (RdataType.DS, RdataType.DNSKEY):
                raise ValueError(f"a trust anchor is a DS or DNSKEY RRset, not {anchor.to_text()}")
            self.anchors.setdefault(anchor.name, []).append(anchor)
        self.clock = clock
        self.keys = keys if keys is not None else KeyCache(clock)

    # --- the answer --------------------------------------------------------------------------

    def check(self, result: Result, qname: dns.name.Name, qtype: int, trace: Sink | None = None,
              depth: int = 0, keys: KeyCache | None = None) -> Check:
        """The verdict on a client's result: the weakest of its parts.

        *keys* replaces the shared key cache (a cold trace starts from nothing).
        """
        run = _Run(self, trace, depth, keys if keys is not None else self.keys)
        verdict = yield from run.result(result, qname, qtype)
        run.emit("verdict", verdict.zone, qname, qtype, verdict.security, detail=verdict.reason)
        return replace(verdict, parts=tuple(run.parts))

    def covered(self, name: dns.name.Name) -> bool:
        """Whether any trust anchor is at or above *name*."""
        return any(name.is_subdomain(anchor) for anchor in self.anchors)

    def sentinel_miss(self, qname: dns.name.Name, qtype: int) -> str:
        """RFC 8509 root-key-sentinel: why a *secure* A/AAAA answer must become SERVFAIL, or "".

        "root-key-sentinel-is-ta-<tag>" fails unless the root's trust anchor has a key with that
        tag; "root-key-sentinel-not-ta-<tag>" fails if it has.  So a client can learn which root
        keys its resolver trusts (the check is the caller's to skip for CD=1 and unvalidated data).
        """
        if qtype not in (RdataType.A, RdataType.AAAA) or not qname.labels:
            return ""
        match = _SENTINEL.fullmatch(qname.labels[0].decode("ascii", "replace").lower())
        if match is None:
            return ""
        tag = int(match.group(2))
        trusted = tag in self.root_key_tags()
        if match.group(1) == "is" and not trusted:
            return f"root-key-sentinel: key tag {tag} is not a root trust anchor (RFC 8509)"
        if match.group(1) == "not" and trusted:
            return f"root-key-sentinel: key tag {tag} is a root trust anchor (RFC 8509)"
        return ""

    def root_key_tags(self) -> set[int]:
        """Key tags of the root's trust anchors: the DS records' tags, the DNSKEYs' computed ones."""
        tags: set[int] = set()
        for anchor in self.anchors.get(dns.name.root, []):
            for rdata in anchor:
                tags.add(rdata.key_tag if anchor.rdtype == RdataType.DS else dns.dnssec.key_id(rdata))  # type: ignore[attr-defined,arg-type]
        return tags


class _Run:
    """One validation: its trace sink and the helpers that yield fetches."""

    def __init__(self, validator: Validator, trace: Sink | None, depth: int, keys: KeyCache) -> None:
        self.validator = validator
        self.keys = keys
        self.trace = trace
        self.depth = depth
        self.now = validator.clock.wall()
        self.parts: list[tuple[Evidence, Security]] = []
        self.ds_denials: dict[dns.name.Name, Evidence] = {}  # proofs of "no DS" that came with referrals

    def emit(self, step: str, zone: dns.name.Name | None, name: dns.name.Name, rdtype: int, security: Security,
             sig: object = None, detail: str = "", key_tags: list[int] | None = None) -> None:
        if self.trace is None:
            return
        tags = key_tags if key_tags is not None else ([sig.key_tag] if sig is not None else [])  # type: ignore[attr-defined]
        algorithm = dns.dnssec.algorithm_to_text(sig.algorithm) if sig is not None else None  # type: ignore[attr-defined]
        self.trace(Validation(depth=self.depth, step=step, zone="" if zone is None else zone.to_text(),
                              name=name.to_text(), type=dns.rdatatype.to_text(rdtype), security=security.value,
                              key_tags=tags, algorithm=algorithm, detail=detail))

    # --- results ------------------------------------------------------------------------------

    def result(self, result: Result, qname: dns.name.Name, qtype: int) -> Check:
        if result.rcode not in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
            return Verdict(Security.INDETERMINATE, "not an answer")
        self.ds_denials = result.ds_denials
        verdicts: list[Verdict] = []
        dname: Verdict | None = None
        for evidence in result.evidence:
            if evidence.synthesised:
                # Derived from the DNAME before it, which is checked (RFC 6672 §5.3.3); its cache
                # entry takes the DNAME's verdict, as Unbound's does, so an answer from the cache
                # does not look for an RRSIG a synthesised CNAME never has.
                if dname is not None and dname.security is Security.SECURE and evidence.forged is not None:
                    # RFC 6672 §3.2/§5.3.3: the CNAME that came with a signed DNAME must be its
                    # synthesis; one that says otherwise is forged (Knot Resolver: bogus). Without
                    # validation the synthesis simply replaces it.
                    return Verdict(Security.BOGUS, f"the CNAME {evidence.rrset.name} -> {evidence.forged} sent with "
                                   f"the signed DNAME contradicts its synthesis -> {evidence.rrset[0].target}",
                                   EDE_DNSSEC_BOGUS, sources=_sources([evidence]))
                if dname is not None:
                    self.parts.append((evidence, dname.security))
                continue
            verdict = yield from self.rrset(evidence, qname)
            verdicts.append(verdict)
            self.parts.append((evidence, verdict.security))
            if evidence.rrset.rdtype == RdataType.DNAME:
                dname = verdict
            if verdict.security is Security.BOGUS:
                return verdict if verdict.sources else replace(verdict, sources=_sources([evidence]))
        if result.denial is not None:
            name = chain_end(qname, result.answer)
            verdict = yield from self.denial(result.denial, name, qtype)
            if verdict.security is Security.BOGUS and not verdict.sources:
                verdict = replace(verdict, sources=_sources([result.denial]))
            verdicts.append(verdict)
            self.parts.append((result.denial, verdict.security))
        if not verdicts and not result.answer and result.zone is not None and self.validator.covered(result.zone):
            # An empty answer with neither SOA nor NSEC/NSEC3: from a signed zone that is a
            # denial without proof (RFC 4035 §5.4), from an unsigned one just insecure.
            key = yield from self.key_entry(result.zone)
            if key.security is Security.SECURE:
                kind = "NXDOMAIN" if result.rcode == dns.rcode.NXDOMAIN else "NODATA"
                return Verdict(Security.BOGUS, f"{kind} for {qname} {_type(qtype)} from the signed zone "
                                               f"{result.zone} without SOA or NSEC records", EDE_NSEC_MISSING,
                               result.zone)
            return _from_key(key)
        if not verdicts:
            return Verdict(Security.INDETERMINATE, "nothing to validate")
        return _weakest(verdicts)

    def rrset(self, evidence: Evidence, qname: dns.name.Name) -> Check:
        """One answer RRset: its signer's keys, then its signature (and a wildcard's proof)."""
        rrset = evidence.rrset
        if evidence.security in (Security.SECURE.value, Security.INSECURE.value):
            return Verdict(Security(evidence.security), zone=evidence.zone)
        if rrset.rdtype == RdataType.RRSIG:
            # Signatures asked for as data are not signed themselves (RFC 4035 §2.2): like
            # Unbound, answer them without AD rather than call them bogus.
            return Verdict(Security.INDETERMINATE, "RRSIG records are not validated as data", zone=evidence.zone)
        signer = _signer(evidence.sigs, rrset) or evidence.zone
        if signer is None or not rrset.name.is_subdomain(signer):
            return Verdict(Security.BOGUS, f"no usable RRSIG for {rrset.name} {_type(rrset.rdtype)}",
                           EDE_RRSIGS_MISSING)
        checked = yield from self.signed(rrset, evidence.sigs, signer)
        if (isinstance(checked, Verdict) and checked.security is Security.BOGUS
                and _signer(evidence.sigs, rrset) is None and rrset.name != signer
                and getattr(self.keys.get(signer), "security", None) is Security.SECURE):
            # Unsigned data below a signed zone's apex, from a server that answered for a
            # child zone without a referral (one server for both): before calling it
            # bogus, look for an unsigned delegation between, as Knot Resolver does (and
            # Unbound, whose validator walks DS by DS down to an unsigned answer's name).
            # Only when the zone's keys are trusted: below a bogus zone nothing is insecure.
            cut = yield from self.unsigned_cut(signer, rrset.name)
            if cut is not None:
                return cut
        if isinstance(checked, Verdict):
            return checked
        key, sig = checked
        wildcard = _wildcard_expansion(rrset.name, sig)
        if wildcard is not None:
            verdict = yield from self.wildcard_proof(evidence, signer, key, wildcard)
            return verdict
        return Verdict(Security.SECURE, zone=signer)

    def signed(self, rrset: dns.rrset.RRset, sigs: dns.rrset.RRset | None,
               signer: dns.name.Name) -> Generator[Fetch, Result, "tuple[KeyEntry, object] | Verdict"]:
        """The signer's trusted keys and the RRSIG that verifies with them, or why there are none."""
        if not self.validator.covered(signer):
            return Verdict(Security.INDETERMINATE, "no trust anchor above it")
        key = yield from self.key_entry(signer)
        if key.security is not Security.SECURE:
            return _from_key(key)
        ok, sig, problem, ede = _verify(rrset, sigs, key.keys, signer, self.now)
        if not ok:
            self.emit("rrsig", signer, rrset.name, rrset.rdtype, Security.BOGUS, sig, problem)
            return Verdict(Security.BOGUS, f"{problem} for {rrset.name} {_type(rrset.rdtype)} "
                                           f"(signed by {signer})", ede, signer)
        self.emit("rrsig", signer, rrset.name, rrset.rdtype, Security.SECURE, sig, "signature valid")
        return key, sig

    def unsigned_cut(self, zone: dns.name.Name, name: dns.name.Name) -> Generator[Fetch, Result, Verdict | None]:
        """An INSECURE verdict if *zone* proves an unsigned delegation at or above *name*, else None.

        Asks the DS of each name between, from the top: a signed DS ends the search (the
        data below should be signed), and so does anything that is no proof.  A proof counts
        only when it shows a delegation (an NSEC/NSEC3 with the NS bit, or an NSEC3 opt-out
        span): a name without a cut has no DS either.
        """
        for labels in range(len(zone) + 1, len(name) + 1):
            _, cut = name.split(labels)
            known = self.keys.get(cut)
            if known is not None and known.security is Security.INSECURE:
                return _from_key(known)
            result = yield Fetch(cut, RdataType.DS)
            if any(e.rrset.rdtype == RdataType.DS for e in result.evidence):
                return None
            denial = result.denial
            if denial is None or result.rcode != dns.rcode.NOERROR:
                continue
            verdict = yield from self.denial(denial, cut, RdataType.DS)
            delegation = verdict.security is Security.INSECURE or (
                verdict.security is Security.SECURE and _proves_delegation(denial.proof, cut))
            if not delegation:
                if verdict.security is Security.BOGUS:
                    return None
                continue
            self.emit("insecure", zone, cut, RdataType.DS, Security.INSECURE,
                      detail=f"{zone} proves an unsigned delegation to {cut} (found by asking its DS)")
            entry = KeyEntry(cut, Security.INSECURE, expires_at=self.validator.clock.now() + _ttl(denial.rrset),
                             reason=f"no DS for {cut} (proven by {zone})")
            self.keys.put(entry)
            return _from_key(entry)
        return None

    def wildcard_proof(self, evidence: Evidence, signer: dns.name.Name, key: KeyEntry,
                       wildcard: dns.name.Name) -> Check:
        """RFC 4035 §5.3.4: an expanded answer needs proof that no closer name exists."""
        proof = yield from self.proof_records(evidence.proof, signer, key)
        if isinstance(proof, Verdict):
            return proof
        closest = wildcard.parent()
        name = evidence.rrset.name
        covering = _nsec3_next_closer(proof.nsec3, name, closest)
        if _nsec_covering(proof.nsec, name) is not None or covering is not None:
            # RFC 5155 §8.8 (as Unbound reads it): under an opt-out span the answer is insecure.
            security = (Security.INSECURE if covering is not None and covering[0].flags & 1  # type: ignore[attr-defined]
                        else Security.SECURE)
            self.emit("denial", signer, name, evidence.rrset.rdtype, security,
                      detail=f"expanded from {wildcard}: no closer name exists")
            return Verdict(security, zone=signer)
        self.emit("denial", signer, name, evidence.rrset.rdtype, Security.BOGUS,
                  detail=f"expanded from {wildcard} without proof that {name} does not exist")
        return Verdict(Security.BOGUS, f"wildcard answer for {name} without NSEC proof", EDE_NSEC_MISSING, signer)

    # --- denial of existence ------------------------------------------------------------------

    def denial(self, evidence: Evidence, qname: dns.name.Name, qtype: int) -> Check:
        if evidence.security in (Security.SECURE.value, Security.INSECURE.value):
            return Verdict(Security(evidence.security), zone=evidence.zone)
        soa = evidence.rrset  # the SOA, or the first NSEC/NSEC3 when the server sent no SOA
        signer = _signer(evidence.sigs, soa) or (soa.name if soa.rdtype == RdataType.SOA else evidence.zone)
        if signer is None:
            return Verdict(Security.BOGUS, f"no usable RRSIG for the denial of {qname}", EDE_RRSIGS_MISSING)
        checked = yield from self.signed(soa, evidence.sigs, signer)
        if isinstance(checked, Verdict):
            return checked
        key, _ = checked
        proof = yield from self.proof_records(evidence.proof, signer, key)
        if isinstance(proof, Verdict):
            return proof
        if evidence.negative is NegativeKind.NXDOMAIN:
            proved, how = _proves_nxdomain(proof, qname, signer)
        else:
            proved, how = _proves_nodata(proof, qname, qtype, signer)
        kind = "NXDOMAIN" if evidence.negative is NegativeKind.NXDOMAIN else "NODATA"
        if proved is None:
            self.emit("denial", signer, qname, qtype, Security.BOGUS, detail=f"{kind} not proven: {how}")
            return Verdict(Security.BOGUS, f"{kind} for {qname} {_type(qtype)} not proven: {how}",
                           EDE_NSEC_MISSING, signer)
        self.emit("denial", signer, qname, qtype, proved, detail=f"{kind} proven: {how}")
        return Verdict(proved, zone=signer)

    def proof_records(self, records: tuple[dns.rrset.RRset, ...], signer: dns.name.Name,
                      key: KeyEntry) -> Generator[Fetch, Result, "_Proof | Verdict"]:
        """The NSEC/NSEC3 RRsets whose signatures verify with the zone's keys."""
        sigs = {(r.name, r.covers): r for r in records if r.rdtype == RdataType.RRSIG}
        proof = _Proof()
        for rrset in records:
            if rrset.rdtype not in (RdataType.NSEC, RdataType.NSEC3):
                continue
            ok, sig, problem, ede = _verify(rrset, sigs.get((rrset.name, rrset.rdtype)), key.keys, signer, self.now)
            if not ok:
                self.emit("rrsig", signer, rrset.name, rrset.rdtype, Security.BOGUS, sig, problem)
                return Verdict(Security.BOGUS, f"{problem} for {rrset.name} {_type(rrset.rdtype)}", ede, signer)
            self.emit("rrsig", signer, rrset.name, rrset.rdtype, Security.SECURE, sig, "signature valid")
            (proof.nsec if rrset.rdtype == RdataType.NSEC else proof.nsec3).append(rrset)
        costly = next((r for r in proof.nsec3 if r[0].iterations > MAX_NSEC3_ITERATIONS), None)  # type: ignore[attr-defined]
        if costly is not None:
            # RFC 9276 §3.2: too many iterations to hash for every proof; the answer is insecure.
            iterations = costly[0].iterations  # type: ignore[attr-defined]
            self.emit("insecure", signer, costly.name, RdataType.NSEC3, Security.INSECURE,
                      detail=f"NSEC3 with {iterations} iterations (more than {MAX_NSEC3_ITERATIONS})")
            return Verdict(Security.INSECURE, f"NSEC3 with {iterations} iterations", zone=signer)
        return proof
        yield  # pragma: no cover - makes this a generator like its callers

    # --- the chain of trust -------------------------------------------------------------------

    def key_entry(self, zone: dns.name.Name) -> Generator[Fetch, Result, KeyEntry]:
        """The zone's trusted keys, proven from the trust anchor down (cached)."""
        cached = self.keys.get(zone)
        if cached is not None:
            return cached
        anchors = self.validator.anchors.get(zone)
        if anchors is not None:
            entry = yield from self.dnskey(zone, [rd for a in anchors if a.rdtype == RdataType.DS for rd in a],
                                           [rd for a in anchors if a.rdtype == RdataType.DNSKEY for rd in a],
                                           "trust anchor")
        else:
            entry = yield from self.delegated_key(zone)
        self.keys.put(entry)
        return entry

    def delegated_key(self, zone: dns.name.Name) -> Generator[Fetch, Result, KeyEntry]:
        """Below an anchor: the parent's signed DS (or its signed proof of none), then the DNSKEY."""
        now = self.validator.clock.now()
        if zone == dns.name.root or not self.validator.covered(zone):
            return KeyEntry(zone, Security.INDETERMINATE, expires_at=now + BOGUS_TTL, reason="no trust anchor")
        known = self.ds_denials.get(zone)
        result = Result(dns.rcode.NOERROR, denial=known) if known is not None else (yield Fetch(zone, RdataType.DS))
        ds = next((e for e in result.evidence if e.rrset.rdtype == RdataType.DS and e.rrset.name == zone), None)
        if ds is not None:
            parent = _signer(ds.sigs, ds.rrset) or ds.zone
            if parent is None or parent == zone or not zone.is_subdomain(parent):
                return self.bogus(zone, f"the DS of {zone} has no RRSIG from its parent", EDE_RRSIGS_MISSING,
                                  _sources([ds]))
            parent_key = yield from self.key_entry(parent)
            if parent_key.security is not Security.SECURE:
                return _inherit(zone, parent_key, now)
            ok, sig, problem, ede = _verify(ds.rrset, ds.sigs, parent_key.keys, parent, self.now)
            if not ok:
                self.emit("ds", parent, zone, RdataType.DS, Security.BOGUS, sig, problem)
                return self.bogus(zone, f"{problem} for the DS of {zone}", ede, _sources([ds]))
            self.emit("ds", parent, zone, RdataType.DS, Security.SECURE, sig,
                      f"DS for {zone} signed by {parent}",
                      key_tags=[rd.key_tag for rd in ds.rrset])  # type: ignore[attr-defined]
            entry = yield from self.dnskey(zone, list(ds.rrset), [], f"DS from {parent}", ds.rrset.ttl)
            return entry
        if result.denial is not None and result.rcode == dns.rcode.NOERROR:
            denial = result.denial
            parent = _signer(denial.sigs, denial.rrset) or (denial.rrset.name if denial.rrset.rdtype == RdataType.SOA
                                                            else denial.zone or denial.rrset.name)
            if parent == zone or not zone.is_subdomain(parent):
                # The zone answered for its own DS: not a zone cut after all (the name is
                # inside its parent's zone), so its data is signed with the parent's keys.
                parent_key = yield from self.key_entry(parent)
                return KeyEntry(zone, parent_key.security, parent_key.keys, parent_key.expires_at,
                                parent_key.reason, parent_key.ede, parent_key.sources,
                                parent_key.broken + (zone,) if parent_key.security is Security.BOGUS else ())
            parent_key = yield from self.key_entry(parent)
            if parent_key.security is not Security.SECURE:
                return _inherit(zone, parent_key, now)
            verdict = yield from self.denial(denial, zone, RdataType.DS)
            if verdict.security is Security.SECURE:
                self.emit("insecure", parent, zone, RdataType.DS, Security.INSECURE,
                          detail=f"{parent} proves there is no DS for {zone}: an unsigned delegation")
                return KeyEntry(zone, Security.INSECURE, expires_at=now + _ttl(denial.rrset),
                                reason=f"no DS for {zone} (proven by {parent})")
            if verdict.security is Security.INSECURE:  # an NSEC3 opt-out span
                self.emit("insecure", parent, zone, RdataType.DS, Security.INSECURE,
                          detail=f"{zone} is in an NSEC3 opt-out span of {parent}")
                return KeyEntry(zone, Security.INSECURE, expires_at=now + _ttl(denial.rrset))
            return self.bogus(zone, verdict.reason or f"no DS for {zone} and no proof of that", verdict.ede,
                              verdict.sources or _sources([denial]))
        why = result.reason or dns.rcode.to_text(result.rcode)
        return self.bogus(zone, f"no DS for {zone}: {why}", EDE_DNSKEY_MISSING)

    def dnskey(self, zone: dns.name.Name, ds_set: list, anchor_keys: list, via: str,
               ttl_cap: int = MAX_KEY_TTL) -> Generator[Fetch, Result, KeyEntry]:
        """Trust a zone's DNSKEY RRset: some key matches a DS (or is the anchor) and signs the set."""
        now = self.validator.clock.now()
        usable_ds = [ds for ds in ds_set if ds.algorithm in _ALGORITHMS and ds.digest_type in _DIGESTS]
        if ds_set and not usable_ds and not anchor_keys:
            # RFC 4035 §5.2: only unsupported algorithms or digests: treat the zone as unsigned.
            self.emit("insecure", zone, zone, RdataType.DS, Security.INSECURE,
                      detail="no DS with an algorithm and digest we support")
            return KeyEntry(zone, Security.INSECURE, expires_at=now + min(ttl_cap, MAX_KEY_TTL),
                            reason="unsupported DS algorithm or digest")
        result = yield Fetch(zone, RdataType.DNSKEY)
        found = next((e for e in result.evidence
                      if e.rrset.rdtype == RdataType.DNSKEY and e.rrset.name == zone), None)
        if found is None:
            why = result.reason or ("no DNSKEY records" if result.rcode == dns.rcode.NOERROR
                                    else dns.rcode.to_text(result.rcode))
            return self.bogus(zone, f"no DNSKEY for {zone} ({why})", EDE_DNSKEY_MISSING,
                              _sources(list(result.evidence) + ([result.denial] if result.denial else [])))
        keys = found.rrset
        trusted = [key for key in keys if any(_matches(zone, key, ds) for ds in usable_ds)]
        trusted += [key for key in keys if key in anchor_keys]
        if not trusted:
            tags = [ds.key_tag for ds in usable_ds] or [dns.dnssec.key_id(k) for k in anchor_keys]
            self.emit("dnskey", zone, zone, RdataType.DNSKEY, Security.BOGUS,
                      detail=f"no DNSKEY matches the {via}", key_tags=tags)
            return self.bogus(zone, f"no DNSKEY of {zone} matches the {via}", EDE_DNSKEY_MISSING, _sources([found]))
        trusted_set = dns.rrset.RRset(zone, keys.rdclass, RdataType.DNSKEY)
        for key in trusted:
            trusted_set.add(key, keys.ttl)
        ok, sig, problem, ede = _verify(keys, found.sigs, trusted_set, zone, self.now)
        if not ok:
            self.emit("dnskey", zone, zone, RdataType.DNSKEY, Security.BOGUS, sig, problem)
            return self.bogus(zone, f"{problem} for the DNSKEY set of {zone}", ede, _sources([found]))
        self.emit("dnskey", zone, zone, RdataType.DNSKEY, Security.SECURE, sig,
                  f"DNSKEY set signed by a key that matches the {via}",
                  key_tags=[dns.dnssec.key_id(k) for k in keys])
        ttl = min(keys.ttl, ttl_cap, MAX_KEY_TTL, max(1, int(sig.expiration - self.now)))  # type: ignore[union-attr]
        return KeyEntry(zone, Security.SECURE, keys, now + max(ttl, 1))

    def bogus(self, zone: dns.name.Name, reason: str, ede: int | None, sources: tuple[str, ...] = ()) -> KeyEntry:
        return KeyEntry(zone, Security.BOGUS, expires_at=self.validator.clock.now() + BOGUS_TTL, reason=reason,
                        sources=sources, broken=(zone,),
                        ede=ede if ede is not None else EDE_DNSSEC_BOGUS)


# --- proofs -------------------------------------------------------------------------------------


@dataclass
class _Proof:
    """NSEC and NSEC3 RRsets whose signatures have been checked."""

    nsec: list[dns.rrset.RRset] = field(default_factory=list)
    nsec3: list[dns.rrset.RRset] = field(default_factory=list)


def _proves_nxdomain(proof: _Proof, qname: dns.name.Name, zone: dns.name.Name) -> tuple[Security | None, str]:
    """RFC 4035 §5.4 / RFC 5155 §8.4: the name is covered, and so is the wildcard that could match."""
    if proof.nsec:
        covering = _nsec_covering(proof.nsec, qname)
        if covering is None:
            return None, f"no NSEC covers {qname}"
        if _is_delegation(covering) and qname.is_subdomain(covering.name):
            return None, f"the NSEC at {covering.name} is from above a zone cut"
        encloser = _closest_encloser_nsec(covering, qname, zone)
        wildcard = dns.name.Name((b"*",) + encloser.labels)
        if _nsec_covering(proof.nsec, wildcard) is None:
            return None, f"no NSEC denies the wildcard {wildcard}"
        return Security.SECURE, f"NSEC {covering.name} -> {covering[0].next} covers it; {wildcard} denied"  # type: ignore[attr-defined]
    if proof.nsec3:
        encloser, next_closer, opt_out = _nsec3_closest_encloser(proof.nsec3, qname, zone)
        if encloser is None:
            return None, "no NSEC3 closest-encloser proof"
        wildcard = dns.name.Name((b"*",) + encloser.labels)
        if _nsec3_covering(proof.nsec3, wildcard) is None:
            return None, f"no NSEC3 denies the wildcard {wildcard}"
        return (Security.INSECURE if opt_out else Security.SECURE,
                f"NSEC3: closest encloser {encloser}, {next_closer} covered, {wildcard} denied")
    return None, "no NSEC or NSEC3 records"


def _proves_nodata(proof: _Proof, qname: dns.name.Name, qtype: int,
                   zone: dns.name.Name) -> tuple[Security | None, str]:
    """RFC 4035 §5.4 / RFC 5155 §8.5-8.7: the name exists without the type (or matches a wildcard without it)."""
    if proof.nsec:
        match = next((r for r in proof.nsec if r.name == qname), None)
        if match is not None:
            problem = _lists_the_type(match, f"the NSEC at {qname}", qname, qtype)
            if problem:
                return None, problem
            if qtype != RdataType.DS and _is_delegation(match):
                return None, f"the NSEC at {qname} is from above a zone cut"
            return Security.SECURE, f"NSEC at {qname} lists no {_type(qtype)}"
        covering = _nsec_covering(proof.nsec, qname)
        if covering is not None and covering[0].next.is_subdomain(qname) and covering[0].next != qname:  # type: ignore[attr-defined]
            return Security.SECURE, f"{qname} is an empty non-terminal (NSEC {covering.name} -> {covering[0].next})"  # type: ignore[attr-defined]
        if covering is not None:
            encloser = _closest_encloser_nsec(covering, qname, zone)
            wildcard = dns.name.Name((b"*",) + encloser.labels)
            at_wildcard = next((r for r in proof.nsec if r.name == wildcard), None)
            if at_wildcard is not None and qtype not in _types(at_wildcard):
                return Security.SECURE, f"the wildcard {wildcard} has no {_type(qtype)}"
        return None, f"no NSEC matches {qname}"
    if proof.nsec3:
        match = _nsec3_matching(proof.nsec3, qname)
        if match is not None:
            problem = _lists_the_type(match, f"the NSEC3 for {qname}", qname, qtype)
            if problem:
                return None, problem
            return Security.SECURE, f"NSEC3 for {qname} lists no {_type(qtype)}"
        encloser, next_closer, opt_out = _nsec3_closest_encloser(proof.nsec3, qname, zone)
        if encloser is not None:
            wildcard = dns.name.Name((b"*",) + encloser.labels)
            at_wildcard = _nsec3_matching(proof.nsec3, wildcard)
            if at_wildcard is not None and qtype not in _types(at_wildcard):
                # RFC 5155 §8.7; an opt-out span over the next closer name leaves it insecure.
                return (Security.INSECURE if opt_out else Security.SECURE,
                        f"the wildcard {wildcard} has no {_type(qtype)}")
            if opt_out:
                # RFC 5155 §8.6 (and Unbound for every type): no match, but the next closer
                # name is in an opt-out span, where unsigned delegations need no NSEC3.
                return Security.INSECURE, f"{qname} is in an opt-out span"
        return None, f"no NSEC3 matches {qname}"
    return None, "no NSEC or NSEC3 records"


def _proves_delegation(records: tuple[dns.rrset.RRset, ...], cut: dns.name.Name) -> bool:
    """Whether the (verified) NSEC or NSEC3 for *cut* has the NS bit: a zone cut is there."""
    nsec = next((r for r in records if r.rdtype == RdataType.NSEC and r.name == cut), None)
    if nsec is None:
        nsec = _nsec3_matching([r for r in records if r.rdtype == RdataType.NSEC3], cut)
    return nsec is not None and _is_delegation(nsec)


def _lists_the_type(record: dns.rrset.RRset, what: str, qname: dns.name.Name, qtype: int) -> str:
    """Why an NSEC/NSEC3 matching *qname* does not prove NODATA for *qtype*, or "" when it does.

    It must list neither the type nor a CNAME, and a DS denial must come from the
    parent's side of the cut (the child's apex record lists SOA).
    """
    types = _types(record)
    if qtype in types or (RdataType.CNAME in types and qtype != RdataType.CNAME):
        return f"{what} lists {_type(qtype)} or CNAME"
    if qtype == RdataType.DS and RdataType.SOA in types and qname != dns.name.root:
        return f"{what} is the child's, not the parent's"
    return ""


def _nsec_covering(nsecs: list[dns.rrset.RRset], name: dns.name.Name) -> dns.rrset.RRset | None:
    """The NSEC whose span strictly contains *name* in canonical order (RFC 4034 §6.1)."""
    for nsec in nsecs:
        owner, after = nsec.name, nsec[0].next  # type: ignore[attr-defined]
        if owner < after:
            if owner < name < after:
                return nsec
        elif name > owner or name < after:  # the last NSEC wraps round to the apex
            if name.is_subdomain(after):
                return nsec
    return None


def _closest_encloser_nsec(covering: dns.rrset.RRset, qname: dns.name.Name, zone: dns.name.Name) -> dns.name.Name:
    """The deepest existing ancestor of qname: the longer common ancestor with the NSEC's ends."""
    best = zone
    for other in (covering.name, covering[0].next):  # type: ignore[attr-defined]
        common = _common_ancestor(qname, other)
        if len(common) > len(best) and common.is_subdomain(zone):
            best = common
    return best


def _common_ancestor(a: dns.name.Name, b: dns.name.Name) -> dns.name.Name:
    _, _, labels = a.fullcompare(b)
    return dns.name.Name(a.labels[len(a.labels) - labels:])


def _is_delegation(nsec: dns.rrset.RRset) -> bool:
    types = _types(nsec)
    return RdataType.NS in types and RdataType.SOA not in types


def _types(rrset: dns.rrset.RRset) -> set[int]:
    found: set[int] = set()
    for window, bitmap in rrset[0].windows:  # type: ignore[attr-defined]
        for index, byte in enumerate(bitmap):
            for bit in range(8):
                if byte & (0x80 >> bit):
                    found.add(window * 256 + index * 8 + bit)
    return found


_B32_TO_HEX = bytes.maketrans(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", b"0123456789ABCDEFGHIJKLMNOPQRSTUV")


def _nsec3_hash(name: dns.name.Name, nsec3: dns.rrset.RRset) -> str:
    rd = nsec3[0]
    return dns.dnssec.nsec3_hash(name, rd.salt, rd.iterations, rd.algorithm).lower()  # type: ignore[attr-defined]


def _nsec3_span(nsec3: dns.rrset.RRset) -> tuple[str, str]:
    owner = nsec3.name.labels[0].decode("ascii").lower()
    after = base64.b32encode(nsec3[0].next).translate(_B32_TO_HEX).decode("ascii").lower()  # type: ignore[attr-defined]
    return owner, after


def _nsec3_matching(nsec3s: list[dns.rrset.RRset], name: dns.name.Name) -> dns.rrset.RRset | None:
    for nsec3 in nsec3s:
        if _nsec3_span(nsec3)[0] == _nsec3_hash(name, nsec3):
            return nsec3
    return None


def _nsec3_covering(nsec3s: list[dns.rrset.RRset], name: dns.name.Name) -> dns.rrset.RRset | None:
    for nsec3 in nsec3s:
        hashed = _nsec3_hash(name, nsec3)
        owner, after = _nsec3_span(nsec3)
        if (owner < hashed < after) if owner < after else (hashed > owner or hashed < after):
            return nsec3
    return None


def _nsec3_closest_encloser(nsec3s: list[dns.rrset.RRset], qname: dns.name.Name,
                            zone: dns.name.Name) -> tuple[dns.name.Name | None, dns.name.Name | None, bool]:
    """RFC 5155 §8.3: the closest encloser (matched) and the next closer name (covered)."""
    name = qname
    while len(name) > len(zone):
        parent = name.parent()
        if _nsec3_matching(nsec3s, parent) is not None:
            covering = _nsec3_covering(nsec3s, name)
            if covering is None:
                return None, None, False
            return parent, name, bool(covering[0].flags & 1)  # type: ignore[attr-defined]
        name = parent
    return None, None, False


def _nsec3_next_closer(nsec3s: list[dns.rrset.RRset], name: dns.name.Name,
                       closest: dns.name.Name) -> dns.rrset.RRset | None:
    """The NSEC3 covering the next closer name of *name* below *closest*, if any."""
    if not nsec3s or not name.is_subdomain(closest) or name == closest:
        return None
    next_closer = dns.name.Name(name.labels[len(name) - len(closest) - 1:])
    return _nsec3_covering(nsec3s, next_closer)


# --- signatures and keys --------------------------------------------------------------------------


def _verify(rrset: dns.rrset.RRset, sigs: dns.rrset.RRset | None, keys: dns.rrset.RRset | None,
            signer: dns.name.Name, now: float) -> tuple[bool, object, str, int | None]:
    """Whether one RRSIG by *signer*'s keys verifies: (ok, the RRSIG, the problem, its EDE code)."""
    if sigs is None or len(sigs) == 0:
        return False, None, "no RRSIG", EDE_RRSIGS_MISSING
    problem, ede, tried = f"no RRSIG by {signer}", EDE_RRSIGS_MISSING, None
    for sig in sigs:
        if sig.signer != signer or sig.type_covered != rrset.rdtype:  # type: ignore[attr-defined]
            continue
        tried = sig
        if sig.algorithm not in _ALGORITHMS:  # type: ignore[attr-defined]
            problem, ede = f"unsupported algorithm {sig.algorithm}", EDE_UNSUPPORTED_DNSKEY_ALGORITHM  # type: ignore[attr-defined]
            continue
        if now > sig.expiration:  # type: ignore[attr-defined]
            problem, ede = f"signature expired at {_when(sig.expiration)}", EDE_SIGNATURE_EXPIRED  # type: ignore[attr-defined]
            continue
        if now < sig.inception:  # type: ignore[attr-defined]
            problem, ede = f"signature not valid before {_when(sig.inception)}", EDE_SIGNATURE_NOT_YET_VALID  # type: ignore[attr-defined]
            continue
        if keys is None or not any(dns.dnssec.key_id(key) == sig.key_tag and key.algorithm == sig.algorithm  # type: ignore[attr-defined]
                                   for key in keys):
            problem, ede = f"no DNSKEY with key tag {sig.key_tag}", EDE_DNSKEY_MISSING  # type: ignore[attr-defined]
            continue
        try:
            dns.dnssec.validate_rrsig(rrset, sig, {signer: keys}, now=now, policy=_POLICY)
        except dns.dnssec.UnsupportedAlgorithm:
            problem, ede = f"unsupported algorithm {sig.algorithm}", EDE_UNSUPPORTED_DNSKEY_ALGORITHM  # type: ignore[attr-defined]
            continue
        except (dns.dnssec.ValidationFailure, dns.exception.DNSException, ValueError) as exc:
            problem, ede = f"signature crypto failed ({exc})", EDE_DNSSEC_BOGUS
            continue
        return True, sig, "", None
    return False, tried, problem, ede


def _matches(zone: dns.name.Name, key: object, ds: object) -> bool:
    if dns.dnssec.key_id(key) != ds.key_tag or key.algorithm != ds.algorithm:  # type: ignore[attr-defined]
        return False
    try:
        # validating=True: the policy's "may a DS with this digest be checked" (SHA-1 may,
        # RFC 8624 §3.3), not "may one be made" (SHA-1 may not), which would refuse the
        # SHA-1 DS records many parents and trust anchors still publish.
        return dns.dnssec.make_ds(zone, key, ds.digest_type, policy=_POLICY, validating=True) == ds  # type: ignore[attr-defined,arg-type]
    except (dns.dnssec.UnsupportedAlgorithm, dns.exception.DeniedByPolicy, ValueError):
        return False


def _signer(sigs: dns.rrset.RRset | None, rrset: dns.rrset.RRset) -> dns.name.Name | None:
    if sigs is None:
        return None
    for sig in sigs:
        if sig.type_covered == rrset.rdtype and rrset.name.is_subdomain(sig.signer):  # type: ignore[attr-defined]
            return sig.signer  # type: ignore[attr-defined,no-any-return]
    return None


def _wildcard_expansion(owner: dns.name.Name, sig: object) -> dns.name.Name | None:
    """RFC 4035 §5.3.4: an RRSIG whose labels count is below the owner's was made for a wildcard."""
    labels = len(owner) - 1 - (1 if owner.labels[0] == b"*" else 0)
    if sig.labels >= labels:  # type: ignore[attr-defined]
        return None
    return dns.name.Name((b"*",) + owner.labels[len(owner) - 1 - sig.labels:])  # type: ignore[attr-defined]


def _from_key(key: KeyEntry) -> Verdict:
    return Verdict(key.security, key.reason, key.ede, key.zone, sources=key.sources, broken=key.broken)


def _sources(evidence: list[Evidence]) -> tuple[str, ...]:
    """The servers some evidence came from (for a retry that avoids them)."""
    return tuple(dict.fromkeys(e.source for e in evidence if e.source is not None))


def _inherit(zone: dns.name.Name, parent: KeyEntry, now: float) -> KeyEntry:
    """Below an insecure zone everything is insecure; below a bogus one, bogus."""
    return KeyEntry(zone, parent.security, expires_at=min(parent.expires_at, now + MAX_KEY_TTL),
                    reason=parent.reason, ede=parent.ede, sources=parent.sources,
                    broken=parent.broken + (zone,) if parent.security is Security.BOGUS else ())


def _weakest(verdicts: list[Verdict]) -> Verdict:
    for state in (Security.BOGUS, Security.INDETERMINATE, Security.INSECURE):
        for verdict in verdicts:
            if verdict.security is state:
                return verdict
    return verdicts[-1]


def _ttl(rrset: dns.rrset.RRset) -> int:
    return max(1, min(rrset.ttl, MAX_KEY_TTL))


def _type(rdtype: int) -> str:
    return dns.rdatatype.to_text(rdtype)


def _when(timestamp: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(timestamp))
