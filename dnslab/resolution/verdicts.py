"""Validation verdicts for a client's answer, as a generator of lookups (sans-I/O).

Like the iterator, this says what it needs and is told what came back: it
yields a `Lookup` (the client's question, a DS or DNSKEY RRset for the
validator, or the question asked again avoiding some servers) and is sent the
lookup's `Result`; the service only runs the lookups on the network.  What it
decides:

- a result is judged by the validator (RFC 4035 §5); a bogus one becomes
  SERVFAIL with the reason as an Extended DNS Error (RFC 8914);
- each part's verdict is kept with its cache entry (secure ones only until
  their RRSIGs expire), so a cache hit is not judged again;
- a bogus answer may be one bad server's stale or tampered copy: like
  Unbound's validator, forget what it rests on and ask again, avoiding the
  servers that sent the failing data, a few times at most;
- RFC 8509's root-key-sentinel turns some secure answers into SERVFAIL;
- in the trace, the client's answer (`done` at depth 0) comes after the
  verdict and says what the client gets (`AnswerLast`).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace
from typing import Generator

import dns.name
import dns.rcode

from dnslab.core.events import Done, Event, QuerySent, Sink
from dnslab.resolution.aggressive import NsecStore
from dnslab.resolution.cache import Cache
from dnslab.resolution.iterator import Result, chain_end
from dnslab.resolution.validator import KeyCache, Security, Validator, Verdict

# Bogus answers asked again, each time avoiding the servers that sent the failing data
# (Unbound restarts a bogus lookup with those servers blacklisted, up to 5 times).
MAX_BOGUS_RETRIES = 3


class Step(enum.Enum):
    """Which lookup a `Lookup` is; the service runs each kind its own way."""

    ASK = "ask"      # the client's question: merged with the same one in flight, serve-stale applies
    FETCH = "fetch"  # a DS or DNSKEY RRset the validator needs (a depth-1 lookup, purpose "DNSSEC")
    AGAIN = "again"  # the client's question asked again after a bogus verdict, avoiding `avoid`


@dataclass(frozen=True)
class Lookup:
    """A lookup to run; its Result is sent back into the generator."""

    step: Step
    qname: dns.name.Name
    qtype: int
    trace: Sink | None = None
    avoid: frozenset[str] = frozenset()  # server addresses not to ask
    cache_only: bool = False             # ASK only: a client's RD=0 question


@dataclass(frozen=True)
class Judged:
    """A result after validation, and the verdict it rests on (None when there was nothing to judge)."""

    result: Result
    verdict: Verdict | None = None


@dataclass(frozen=True)
class Answered:
    """A client's answer, and the verdict it counts as in the statistics (None: not validated)."""

    result: Result
    security: str | None = None


Steps = Generator[Lookup, Result, Judged]


def validates(validator: Validator | None, cache_only: bool, checking_disabled: bool) -> bool:
    """Whether a client's answer is judged: a validator is configured, the question asks the
    servers (an RD=0 question is answered from the cache as it is) and the client did not set
    CD=1 (RFC 4035 §3.2.2).  Otherwise `client_answer` is the ASK lookup alone, and the service
    may run that lookup without this generator."""
    return validator is not None and not cache_only and not checking_disabled


def client_answer(validator: Validator | None, cache: Cache, qname: dns.name.Name, qtype: int,
                  trace: Sink | None = None, cache_only: bool = False,
                  checking_disabled: bool = False, nsec: NsecStore | None = None) -> Generator[Lookup, Result, Answered]:
    """A client's answer: resolved, then validated unless the client set CD=1 (RFC 4035 §3.2.2).

    *nsec*, when given, learns the NSEC/NSEC3 records of every secure verdict (RFC 8198).
    """
    if not validates(validator, cache_only, checking_disabled):
        result = yield Lookup(Step.ASK, qname, qtype, trace, cache_only=cache_only)
        return Answered(result)
    assert validator is not None
    held = AnswerLast(trace) if trace is not None else None
    result = yield Lookup(Step.ASK, qname, qtype, held)
    judged = yield from judge(validator, cache, result, qname, qtype, held, nsec=nsec)
    validated, verdict = judged.result, judged.verdict
    avoid: frozenset[str] = frozenset()
    for _ in range(MAX_BOGUS_RETRIES):
        # Like Unbound's validator: data that fails may be one bad server's (a stale or
        # tampered copy), so forget it and ask again, avoiding the servers that sent it.
        fresh = frozenset(verdict.sources if verdict is not None else ()) - avoid
        if verdict is None or verdict.security is not Security.BOGUS or not fresh:
            break
        avoid |= fresh
        forget(cache, result, verdict, qname)
        retry = yield Lookup(Step.AGAIN, qname, qtype, held, avoid)
        if retry.rcode not in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
            break  # nobody else answers: the first verdict stands
        result = retry
        judged = yield from judge(validator, cache, retry, qname, qtype, held, avoid=avoid, nsec=nsec)
        validated, verdict = judged.result, judged.verdict
    # One verdict per client answer in the statistics, however many tries it took.
    counted = validated.security
    if validated.security == Security.SECURE:
        miss = validator.sentinel_miss(qname, qtype)
        if miss:
            validated = Result(dns.rcode.SERVFAIL, reason=miss, from_cache=validated.from_cache,
                               upstream_queries=validated.upstream_queries, security=Security.BOGUS.value)
    if held is not None:
        held.release(result, validated)
    return Answered(validated, counted)


def judge(validator: Validator, cache: Cache, result: Result, qname: dns.name.Name, qtype: int,
          trace: Sink | None = None, keys: KeyCache | None = None, avoid: frozenset[str] = frozenset(),
          nsec: NsecStore | None = None) -> Steps:
    """Judge a result; bogus becomes SERVFAIL with the reason as an Extended DNS Error.

    *cache* and *keys* may be private ones (a cold trace); the validator's fetches
    avoid the servers in *avoid*, as the lookup they check did.
    """
    if result.rcode not in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN) or result.stale:
        return Judged(result)
    check = validator.check(result, qname, qtype, trace, keys=keys)
    try:
        need = next(check)
        while True:
            fetched = yield Lookup(Step.FETCH, need.name, need.rdtype, trace, avoid)
            need = check.send(fetched)
    except StopIteration as done:
        verdict: Verdict = done.value
    remember_verdicts(cache, verdict, result, qname, qtype, validator.clock.wall())
    if nsec is not None:
        remember_spans(nsec, verdict, validator.clock.wall())
    if verdict.security is Security.BOGUS:
        return Judged(Result(dns.rcode.SERVFAIL, reason=f"DNSSEC validation failed: {verdict.reason}",
                             from_cache=result.from_cache, upstream_queries=result.upstream_queries,
                             security=verdict.security.value, ede=verdict.ede), verdict)
    return Judged(replace(result, security=verdict.security.value), verdict)


def remember_verdicts(cache: Cache, verdict: Verdict, result: Result, qname: dns.name.Name, qtype: int,
                      wall: float) -> None:
    """Keep each part's new verdict with its cache entry; secure ones only until their RRSIGs expire
    (*wall* is the time now, in the RRSIGs' own seconds since the epoch)."""
    for evidence, security in verdict.parts:
        if security not in (Security.SECURE, Security.INSECURE) or evidence.security is not None:
            continue
        expiring = [sig.expiration for sig in evidence.sigs or ()] if security is Security.SECURE else []
        valid_for = min(expiring) - wall if expiring else None
        if evidence.negative is None:
            cache.set_security(evidence.rrset.name, evidence.rrset.rdtype, evidence.rrset, security.value,
                               valid_for=valid_for)
        else:
            cache.set_security(chain_end(qname, result.answer), qtype, None, security.value,
                               negative=evidence.negative, valid_for=valid_for)


def remember_spans(nsec: NsecStore, verdict: Verdict, wall: float) -> None:
    """Give the RFC 8198 store what was judged SECURE, and nothing else: denials (SOA and
    NSEC/NSEC3 proof) and wildcard expansions (their source and proof).  Evidence that came with a
    verdict (from the cache, or made from the store itself) was learned when it was first judged:
    learned again with its remaining TTL rounded up, it would outlive its span."""
    for evidence, security in verdict.parts:
        if security is not Security.SECURE or evidence.security is not None:
            continue
        if evidence.negative is not None:
            nsec.learn_denial(evidence.rrset, evidence.sigs, evidence.proof, wall)
        elif evidence.proof and not evidence.synthesised:
            nsec.learn_wildcard(evidence.rrset, evidence.sigs, evidence.proof, wall)


def forget(cache: Cache, result: Result, verdict: Verdict, qname: dns.name.Name) -> None:
    """Drop what a bogus verdict rests on (the answer's names, the zone whose keys failed, and every
    zone of the chain from where it broke, whose DS or DNSKEY may be a bad server's copy in the cache),
    so a retry fetches it again; the key cache goes with it (flush_name clears it)."""
    # What the verdict proved secure stays (a signed DNAME beside a forged CNAME, say): it is
    # not the failing data, and a name with anything unproven at it is forgotten all the same.
    proven = {id(evidence) for evidence, security in verdict.parts if security is Security.SECURE}
    names = {evidence.rrset.name for evidence in result.evidence if id(evidence) not in proven}
    if result.denial is not None:
        names.add(chain_end(qname, result.answer))
    if verdict.zone is not None:
        names.add(verdict.zone)
    names.update(verdict.broken)
    for name in names:
        cache.flush_name(name)


class AnswerLast:
    """A trace sink that holds back the client's answer (the depth-0 `done`) until validation has judged it.

    The iterator finishes before the validator starts; passed on at once, its
    answer line said "NOERROR" above the verdict that turns it into SERVFAIL.
    Held, the answer comes last and says what the client gets.
    """

    def __init__(self, sink: Sink) -> None:
        self.sink = sink
        self.done: Done | None = None
        self.queries = 0  # sent for this answer, the validator's DS and DNSKEY fetches included

    def __call__(self, event: Event) -> None:
        if isinstance(event, Done) and event.depth == 0:
            self.done = event  # a bogus answer asked again ends in a new one: the last is the client's
            return
        self.queries += isinstance(event, QuerySent)
        self.sink(event)

    def release(self, resolved: Result, verdict: Result) -> None:
        done = self.done
        if done is None:
            return
        done = replace(done, upstream_queries=max(done.upstream_queries, self.queries))
        if verdict.rcode != resolved.rcode:  # bogus: the client gets SERVFAIL, and none of the data
            done = replace(done, rcode=dns.rcode.to_text(verdict.rcode), records=[], authority=[],
                           reason=verdict.reason)
        self.sink(done)
