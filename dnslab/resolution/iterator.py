"""One recursive lookup as an explicit state machine: it asks for queries, it is told replies.

Like Unbound's iterator module and Knot Resolver's kr_resolve, this never owns
a socket or reads the time: `next_action()` returns either a `Query` to send or
the final `Result`; the driver reports back with `on_reply`, `on_timeout` or
`on_failure`.  So every path (referrals, glueless NS names, CNAME chains, lame
servers, loops, budgets) is testable with scripted replies and no network.

Steps for one question, as RFC 1034 §5.3.3 describes and Unbound does them:
1. answer from the cache if it can (data, CNAME, negative, recent SERVFAIL);
2. otherwise start at the closest cached delegation, priming the root from
   the hints when nothing is cached;
3. ask one of the zone's servers (chosen by `infra`), minimising the query
   name (RFC 9156, relaxed); follow referrals, CNAMEs and DNAMEs; resolve
   glueless NS names as sub-lookups within limits;
4. on a timeout, an error or a lame reply, try the next server.

Each step is a named `State` (after Unbound's `enum iter_state`); its handler
returns the next state, `TRANSITIONS` lists every move and `Resolution._run`
makes them (docs/DESIGN.md draws the walk of a cold lookup).
"""

from __future__ import annotations

import enum
import ipaddress
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Callable, NamedTuple

import dns.flags
import dns.name
import dns.rcode
import dns.rdatatype
import dns.rrset

from dnslab.core.reader import AnyReply
from dnslab.resolution.cache import Cache, CacheHit, NegativeKind, Rank
from dnslab.resolution.classify import Classified, ReplyKind, classify, synthesise_cname
from dnslab.core.events import (CacheLookup, Delegation, Done, Event, Failed, QuerySent, Reply, Restart,
                           ServerChoice, Sink, Start, lines, to_ms)
from dnslab.resolution.infra import Choice, Failure, Infra, Reason

if TYPE_CHECKING:  # the store's module imports the validator, which imports this one
    from dnslab.resolution.aggressive import NsecStore, Synthesis

RdataType = dns.rdatatype.RdataType
_TC = int(dns.flags.TC)  # a plain int: `flags & dns.flags.TC` makes an enum member for every reply

# Empty replies taken as NODATA from the second on (Unbound's EMPTY_NODATA_RETRY_COUNT).
EMPTY_NODATA_RETRY_COUNT = 2
_RCODE_FAILURE = {
    dns.rcode.SERVFAIL: Failure.SERVFAIL,
    dns.rcode.REFUSED: Failure.REFUSED,
}


@dataclass(frozen=True)
class IteratorSettings:
    """Limits with the defaults of mature resolvers (Unbound, BIND, the NXNS paper)."""

    max_cname_chain: int = 11            # CNAME/DNAME steps per client query (Unbound MAX_RESTART_COUNT)
    max_queries: int = 50                # upstream queries per client query
    max_glueless_per_delegation: int = 5  # NS names resolved per delegation (NXNSAttack mitigation)
    max_referrals: int = 30              # referral depth per lookup
    max_dependency_depth: int = 4        # nested lookups of NS names needing NS names
    qname_minimisation: bool = True      # RFC 9156, relaxed mode
    # The QTYPE of minimised queries: A as Unbound sends them (RFC 9156 leaves it open),
    # or NS as Knot Resolver does and RFC 7816 described; with NS, as in Knot Resolver, a
    # name that exists without a zone cut ends minimisation in that zone.
    minimise_qtype: int = RdataType.A
    max_minimise_steps: int = 10         # labels revealed one at a time before asking in full
    # Unbound's harden-glue: believe glue only inside the delegating zone's bailiwick.
    # Off, an address for a referral's NS name is used wherever it lies (a cycle of
    # glueless delegations can then be resolved), at the risk of poisoned glue.
    harden_glue: bool = True
    # Unbound's do-not-query-localhost: never send a query to 127.0.0.0/8 or ::1.
    # Off by default here, unlike Unbound: the lab's servers live on loopback.
    do_not_query_localhost: bool = False
    ipv6_upstream: bool = False          # use AAAA addresses of name servers too
    root_priming: bool = True            # RFC 8109; off: the hints are the root's servers (Unbound stub-prime: no)
    edns: bool = True


class Purpose(enum.StrEnum):
    """Why a query is sent; the trace's `purpose` field shows the value."""

    RESOLVE = "resolve"              # the question itself (or the name a CNAME/DNAME led to)
    MINIMISED = "minimised"          # RFC 9156: the name cut one label below the zone
    PRIMING = "priming"              # RFC 8109: the root's NS set from the hints
    GLUELESS_NS = "glueless NS"      # a sub-lookup for an NS name's address
    DNSSEC = "DNSSEC"                # a sub-lookup for a DS or DNSKEY the validator needs


class Query(NamedTuple):
    """Send (qname, qtype) to address, for zone; what the driver needs and the trace shows.

    A named tuple, not a frozen dataclass: as immutable, and made several times per lookup at a
    fifth of the cost (a frozen dataclass sets each field through object.__setattr__).
    """

    address: str
    qname: dns.name.Name
    qtype: int
    zone: dns.name.Name
    timeout: float
    reason: Reason | None = None
    tcp: bool = False
    edns: bool = True
    purpose: Purpose = Purpose.RESOLVE
    server: dns.name.Name | None = None  # the NS name the address belongs to


@dataclass(frozen=True, init=False)
class Evidence:
    """One RRset of a result with what DNSSEC validation needs to judge it.

    The iterator only gathers this (it never validates); `validator` reads it.
    For a denial, `rrset` is the SOA and `negative` says which kind.
    """

    rrset: dns.rrset.RRset
    sigs: dns.rrset.RRset | None = None          # the RRSIGs that came with it
    zone: dns.name.Name | None = None            # the zone whose server sent it
    proof: tuple[dns.rrset.RRset, ...] = ()      # NSEC/NSEC3 RRsets and their RRSIGs
    security: str | None = None                  # a verdict remembered in the cache
    synthesised: bool = False                    # a CNAME we derived from a DNAME ourselves
    negative: NegativeKind | None = None
    source: str | None = None                    # the server address it came from, when known
    forged: dns.name.Name | None = None          # synthesised: the other target the server's CNAME claimed

    def __init__(self, rrset: dns.rrset.RRset, sigs: dns.rrset.RRset | None = None,
                 zone: dns.name.Name | None = None, proof: tuple[dns.rrset.RRset, ...] = (),
                 security: str | None = None, synthesised: bool = False, negative: NegativeKind | None = None,
                 source: str | None = None, forged: dns.name.Name | None = None) -> None:
        """The dataclass's own __init__, with the fields set in one step: a frozen dataclass sets
        each through object.__setattr__ (2.4 against 0.9 µs here), and one Evidence is made for
        every RRset of every answer.  (tests/test_iterator.py holds it to the fields above.)"""
        self.__dict__.update(rrset=rrset, sigs=sigs, zone=zone, proof=proof, security=security,
                             synthesised=synthesised, negative=negative, source=source, forged=forged)


@dataclass
class Result:
    """The outcome of one lookup, ready to become a client's reply."""

    rcode: int
    answer: list[dns.rrset.RRset] = field(default_factory=list)
    authority: list[dns.rrset.RRset] = field(default_factory=list)
    reason: str = ""                     # why it failed, for SERVFAIL explanations
    from_cache: bool = False
    upstream_queries: int = 0            # queries sent for it, sub-lookups included
    stale: bool = False                  # expired data served under RFC 8767
    evidence: list[Evidence] = field(default_factory=list)  # one per answer RRset, for the validator
    denial: Evidence | None = None       # NXDOMAIN/NODATA: the SOA and its proof
    security: str | None = None          # the validator's verdict (validator.Security), when it ran
    ede: int | None = None               # an RFC 8914 Extended DNS Error code for the client
    zone: dns.name.Name | None = None    # the zone whose server gave the final reply (for the validator)
    # Referrals without DS that carried NSEC/NSEC3 records: the child's "no DS" proof, by child zone.
    ds_denials: dict[dns.name.Name, Evidence] = field(default_factory=dict)


@dataclass
class Budget:
    """Shared by a lookup and every sub-lookup it starts, so the bound is per client query."""

    limit: int
    used: int = 0
    failed_tries: int = 0  # tries that moved on to another server (timeouts, errors, lame replies)

    @property
    def exhausted(self) -> bool:
        return self.used >= self.limit


class State(enum.Enum):
    """Where one lookup stands; Unbound's `enum iter_state` (iterator/iterator.h) is the model.

    Each state's handler returns the next state; `TRANSITIONS` lists every move, and
    `Resolution._run` makes them (the driver's reports move out of AWAIT_REPLY through
    `_move`).  AWAIT_REPLY and DONE have no handler: they wait for the driver
    (`on_reply`/`on_failure`), or for nothing.
    """

    START = "start"                            # INIT_REQUEST_STATE: a new question
    CACHE_LOOKUP = "cache lookup"              # answer, CNAME, DNAME or denial from the cache
    RESTART = "restart"                        # a CNAME/DNAME moved the name: look it up again
    FIND_ZONE = "find zone"                    # INIT_REQUEST_2_STATE: the closest cached delegation
    CHOOSE_SERVER = "choose server"            # QUERYTARGETS_STATE: what to ask, and whom
    PRIME = "prime"                            # ask the hints for the root's NS set (RFC 8109)
    RESOLVE_NS_ADDRESS = "resolve NS address"  # a sub-lookup for a glueless NS name's address
    AWAIT_REPLY = "await reply"                # a query is out: the driver reports back
    QUERY_RESPONSE = "query response"          # QUERY_RESP_STATE: a reply, a timeout or an error
    PRIME_RESPONSE = "prime response"          # PRIME_RESP_STATE
    FOLLOW_REFERRAL = "follow referral"        # a delegation to a zone below
    READ_ANSWER = "read answer"                # data, a CNAME chain or a denial from the zone
    DONE = "done"                              # FINISHED_STATE: `result` is set

    # Members are singletons compared by identity: hashing by identity (in C) instead of Enum's
    # hash of the name (in Python) is the same table behaviour, and `_run` looks states up a
    # few dozen times per lookup.
    __hash__ = object.__hash__


_S = State
# Every move a lookup can make.  `_run` checks each one against this table (under assert),
# and the tests check the table itself; a new move is added here first.
TRANSITIONS: dict[State, frozenset[State]] = {
    _S.START: frozenset({_S.CACHE_LOOKUP}),
    _S.CACHE_LOOKUP: frozenset({_S.DONE, _S.RESTART, _S.FIND_ZONE}),
    _S.RESTART: frozenset({_S.CACHE_LOOKUP, _S.DONE}),
    _S.FIND_ZONE: frozenset({_S.CHOOSE_SERVER}),
    # Only when the driver asks for the next action: the budget is spent then.
    _S.CHOOSE_SERVER: frozenset({_S.PRIME, _S.AWAIT_REPLY, _S.RESOLVE_NS_ADDRESS, _S.FIND_ZONE, _S.DONE}),
    # (Never FIND_ZONE: the root's delegation has no parent to fetch it from again.)
    _S.PRIME: frozenset({_S.AWAIT_REPLY, _S.RESOLVE_NS_ADDRESS, _S.DONE}),
    # The sub-lookup's queries go out as this lookup's; when it is done, choose again.
    _S.RESOLVE_NS_ADDRESS: frozenset({_S.AWAIT_REPLY, _S.CHOOSE_SERVER}),
    # Made by the driver: on_reply/on_failure (to the sub-lookup, when one is running).
    _S.AWAIT_REPLY: frozenset({_S.QUERY_RESPONSE, _S.RESOLVE_NS_ADDRESS}),
    _S.QUERY_RESPONSE: frozenset({_S.AWAIT_REPLY, _S.CHOOSE_SERVER, _S.PRIME_RESPONSE, _S.FOLLOW_REFERRAL,
                                  _S.READ_ANSWER, _S.DONE}),
    _S.PRIME_RESPONSE: frozenset({_S.FIND_ZONE, _S.CHOOSE_SERVER}),
    _S.FOLLOW_REFERRAL: frozenset({_S.CHOOSE_SERVER, _S.DONE}),
    _S.READ_ANSWER: frozenset({_S.RESTART, _S.DONE}),
    _S.DONE: frozenset(),
}
# Where the machine stops: for the driver's reply, for good, or (after a start or a reply)
# until the driver asks for the next action.
_WAITING = frozenset({_S.AWAIT_REPLY, _S.DONE})
_UNTIL_ASKED = _WAITING | {_S.CHOOSE_SERVER}


@dataclass
class Counts:
    """This lookup's own counts against its limits (sub-lookups have theirs; `Budget` is shared)."""

    restarts: int = 0        # CNAME/DNAME steps (max_cname_chain)
    referrals: int = 0       # referrals followed for the current name (max_referrals)
    minimise_steps: int = 0  # labels revealed one at a time (max_minimise_steps)
    empty_replies: int = 0   # empty non-authoritative replies (EMPTY_NODATA_RETRY_COUNT)


@dataclass
class ServerPool:
    """The zone being asked and what this lookup knows of its servers; new at every zone entered."""

    zone: dns.name.Name
    ns_names: list[dns.name.Name]
    hint_addresses: dict[dns.name.Name, list[str]] = field(default_factory=dict)
    tried: set[str] = field(default_factory=set)
    # Servers that timed out, or sent an empty reply: each may be tried once more when
    # nothing else is left (an empty reply's before any glueless NS name is looked up).
    retry_once: set[str] = field(default_factory=set)
    empty_once: set[str] = field(default_factory=set)
    glueless_tried: set[tuple[dns.name.Name, int]] = field(default_factory=set)
    minimise_labels: int = 0
    # A relaxed-mode fallback (NXDOMAIN for a minimised name) says something about
    # the servers of the zone that sent it, not about the next zone: minimise there
    # again, as Unbound resets its minimisation state on every referral and restart.
    minimise_off: bool = False


# The pool of a lookup that has entered no zone yet (or is finding the next one): no servers,
# no hints.  Shared by every lookup, so it cannot change: its sets are frozen (an add raises).
_NO_POOL = ServerPool(dns.name.root, [], {}, frozenset(), frozenset(), frozenset(),  # type: ignore[arg-type]
                      frozenset(), minimise_off=True)


@dataclass
class Answer:
    """The answer being built: the CNAME/DNAME chain so far, with its evidence, and any denial."""

    chain: list[dns.rrset.RRset] = field(default_factory=list)
    evidence: list[Evidence] = field(default_factory=list)
    denial: Evidence | None = None
    # Referrals without DS that carried NSEC/NSEC3 records: the child's "no DS" proof, by child zone.
    ds_denials: dict[dns.name.Name, Evidence] = field(default_factory=dict)
    names: set[dns.name.Name] = field(default_factory=set)  # every name on the chain (loop detection)


@dataclass
class Reading:
    """What the driver reported for the query out: a reply, or a failure (a timeout included)."""

    query: Query
    reply: AnyReply | None = None
    rtt: float = 0.0
    shared: bool = False  # another lookup's reply to the same question (see on_reply)
    failure: Failure | None = None
    classified: Classified | None = None


class Resolution:
    """The state of one lookup for (qname, qtype): `state`, and what the states read and write."""

    def __init__(self, qname: dns.name.Name, qtype: int, *, cache: Cache, infra: Infra,
                 hints: list[tuple[dns.name.Name, str]], settings: IteratorSettings = IteratorSettings(),
                 budget: Budget | None = None, depth: int = 0,
                 goals: tuple[tuple[dns.name.Name, int], ...] = (), cache_only: bool = False,
                 trace: Sink | None = None, why: str = "", purpose: Purpose | str = Purpose.GLUELESS_NS,
                 avoid: frozenset[str] = frozenset(), states: list[State] | None = None,
                 nsec: NsecStore | None = None) -> None:
        """*trace*, when given, receives an Event for every step; it never changes a decision.

        *purpose* names this lookup's queries in the trace when it is a sub-lookup
        (depth > 0): an NS name's address, or a DNSSEC key the validator needs.
        *avoid*: server addresses not to ask (they sent data that failed validation).
        *states*, when given, receives every state entered, in order (for tests and debugging).
        *nsec*: validated NSEC/NSEC3 spans that may answer from the cache (RFC 8198); None: never.
        """
        self.nsec = nsec
        self.qname, self.qtype = qname, qtype
        self.trace = trace
        self.cache, self.infra, self.hints, self.settings = cache, infra, hints, settings
        self.budget = budget if budget is not None else Budget(settings.max_queries)
        self.depth = depth
        self.goals = goals + ((qname, qtype),)
        self.cache_only = cache_only
        self.purpose = purpose if type(purpose) is Purpose else Purpose(purpose)
        self.avoid = avoid
        self.why = why
        self.sname = qname
        self.answer = Answer(names={qname})
        self.counts = Counts()
        self.result: Result | None = None
        self.pending: Query | None = None
        self.reading: Reading | None = None
        self.child: Resolution | None = None
        self.child_for: dns.name.Name | None = None
        self.primed = False
        self.everything_from_cache = True
        # Addresses of NS names found during this lookup (glue, sub-lookups).
        self.learned: dict[dns.name.Name, list[str]] = {}
        # Zones whose delegation was fetched again from the parent as the last resort.
        self.refetched: set[dns.name.Name] = set()
        self.find_from: dns.name.Name | None = None  # where FIND_ZONE starts, when not at the name
        self.pool = _NO_POOL  # until FIND_ZONE enters a zone
        self.states = states
        self.state = State.START
        if states is not None:
            states.append(State.START)
        self._run(_UNTIL_ASKED)

    # --- the driver's interface ------------------------------------------------------

    def next_action(self) -> Query | Result:
        self._run(_WAITING)
        if self.state is State.AWAIT_REPLY:
            assert self.pending is not None
            return self.pending
        assert self.result is not None
        return self.result

    def on_reply(self, query: Query, reply: AnyReply, rtt: float, shared: bool = False) -> None:
        """*shared*: the reply to another lookup's identical query (the driver merged them);
        it is read as ours, but the server's RTT and failures are not counted twice."""
        if self.child is not None:
            self.child.on_reply(query, reply, rtt, shared)
            self._move(State.RESOLVE_NS_ADDRESS)
            return
        self.reading = Reading(query, reply, rtt, shared)
        self._move(State.QUERY_RESPONSE)
        self._run(_UNTIL_ASKED)

    def on_timeout(self, query: Query, shared: bool = False) -> None:
        self.on_failure(query, Failure.TIMEOUT, shared)

    def on_failure(self, query: Query, kind: Failure, shared: bool = False) -> None:
        if self.child is not None:
            self.child.on_failure(query, kind, shared)
            self._move(State.RESOLVE_NS_ADDRESS)
            return
        self.reading = Reading(query, shared=shared, failure=kind)
        self._move(State.QUERY_RESPONSE)
        self._run(_UNTIL_ASKED)

    # --- the machine -------------------------------------------------------------------

    def _run(self, stop: frozenset[State]) -> None:
        """Run handlers until the state is one of *stop* (with `_move`, the only places `state` changes)."""
        state = self.state
        while state not in stop:
            new = HANDLERS[state](self)
            assert new in TRANSITIONS[state], f"no move from {state} to {new}"
            self.state = state = new
            if self.states is not None:
                self.states.append(new)

    def _move(self, new: State) -> None:
        assert new in TRANSITIONS[self.state], f"no move from {self.state} to {new}"
        self.state = new
        if self.states is not None:
            self.states.append(new)

    def _start(self) -> State:
        if self.trace is not None:  # (each event's texts cost more than the lookup's own logic)
            self._emit(Start, name=self.qname.to_text(), type=_type(self.qtype), why=self.why)
        return State.CACHE_LOOKUP

    def _restart(self) -> State:
        """The name moved (a CNAME or DNAME, each step bounded by _restart_at): look it up again.

        The bound is checked again here, as Unbound's INIT_REQUEST_STATE checks its restart count.
        """
        if self.counts.restarts > self.settings.max_cname_chain:
            return self._fail(f"CNAME chain longer than {self.settings.max_cname_chain}")
        return State.CACHE_LOOKUP

    # --- from the cache ------------------------------------------------------------------

    def _lookup_cache(self) -> State:
        """Answer sname from the cache if it can; if it cannot, find where to start asking."""
        # Most names a lookup starts at are not in the cache at all: one look for any entry
        # at the name that could answer (or deny) the question, instead of one `get` each.
        held = self.cache.holds(self.sname, self.qtype)
        hit = self.cache.get(self.sname, self.qtype) if held else None
        if hit is not None and hit.rank >= Rank.ANSWER:
            # Glue and a referral's NS set are cached to find servers, but RFC 2181
            # §5.4.1 forbids returning them as answers: ask the zone itself instead.
            self._emit_cache(self.qtype, "hit", hit.remaining, hit.original_ttl, records=lines([hit.rrset]))
            self._add(Evidence(hit.rrset, hit.sigs, hit.zone, hit.proof, hit.security,
                               source=getattr(hit.entry, "source", None)))
            return self._finish(dns.rcode.NOERROR)
        negative = self.cache.get_negative(self.sname, self.qtype) if held else None
        if negative is not None:
            rcode = dns.rcode.NXDOMAIN if negative.kind is NegativeKind.NXDOMAIN else dns.rcode.NOERROR
            self._emit_cache(self.qtype, "negative", negative.remaining, rcode=dns.rcode.to_text(rcode),
                             records=lines([negative.soa]))
            self.answer.denial = Evidence(negative.soa, negative.sigs, negative.zone, negative.proof,
                                          negative.security, negative=negative.kind)
            return self._finish(rcode, authority=[negative.soa] + ([negative.ns] if negative.ns is not None else []))
        dname = self._cached_dname()
        if dname is not None:
            # RFC 6672 §3.4: the answer carries the DNAME and the CNAME it synthesises,
            # from the cache as when it came from the server (Unbound's synth_dname_msg).
            return self._follow_cached_dname(dname)
        cname = self.cache.get(self.sname, RdataType.CNAME) if held and self.qtype != RdataType.CNAME else None
        if cname is None:
            synthesis = self.nsec.synthesise(self.sname, self.qtype) if self.nsec is not None else None
            if synthesis is not None:
                return self._from_spans(synthesis)
            if self.trace is not None:
                self._emit_cache(self.qtype, "miss")
            if self.cache_only:
                return self._refer_from_cache()
            return State.FIND_ZONE
        self._emit_cache(RdataType.CNAME, "hit", cname.remaining, cname.original_ttl,
                         records=lines([cname.rrset]))
        self._add(Evidence(cname.rrset, cname.sigs, cname.zone, cname.proof, cname.security,
                           source=getattr(cname.entry, "source", None)))
        if not self._restart_at(cname.rrset[0].target, "CNAME"):  # type: ignore[attr-defined]
            return State.DONE
        return State.RESTART

    def _from_spans(self, synthesis: Synthesis) -> State:
        """RFC 8198: a denial or a wildcard answer proven by validated NSEC/NSEC3 records alone.

        It goes to the validator already judged (the store keeps only secure records), with its
        proof, so a DO client gets the NSEC/NSEC3 records and RRSIGs the servers would have sent.
        """
        negative = synthesis.negative
        if negative is None:
            assert synthesis.answer is not None
            rrset = synthesis.answer
            self._emit_cache(self.qtype, "hit", rrset.ttl, rrset.ttl, records=lines([rrset]))
            self._add(Evidence(rrset, synthesis.answer_sigs, synthesis.zone, synthesis.proof, synthesis.security))
            if rrset.rdtype == RdataType.CNAME and self.qtype != RdataType.CNAME:
                return State.RESTART if self._restart_at(rrset[0].target, "CNAME") else State.DONE  # type: ignore[attr-defined]
            return self._finish(dns.rcode.NOERROR)
        assert synthesis.soa is not None
        rcode = dns.rcode.NXDOMAIN if negative is NegativeKind.NXDOMAIN else dns.rcode.NOERROR
        # The trace's records show the SOA and the NSEC/NSEC3 records that prove it (RFC 8198).
        self._emit_cache(self.qtype, "negative", synthesis.soa.ttl, rcode=dns.rcode.to_text(rcode),
                         records=lines([synthesis.soa] + [r for r in synthesis.proof if r.rdtype != RdataType.RRSIG]))
        self.answer.denial = Evidence(synthesis.soa, synthesis.soa_sigs, synthesis.zone, synthesis.proof,
                                      synthesis.security, negative=negative)
        return self._finish(rcode, authority=[synthesis.soa])

    def _cached_dname(self) -> CacheHit | None:
        """A cached DNAME owned by an ancestor of sname (the closest): it redirects sname before any
        CNAME at it, and answers every name below it (RFC 6672 §3.2, as Unbound and Knot Resolver
        synthesise from their caches).

        Its synthesised CNAMEs are never cached (see `_read_answer`), as in Unbound,
        which stores them with TTL 0: so an answer from the cache is rebuilt from
        the DNAME and carries it, exactly as the first answer did.
        """
        if self.qtype == RdataType.DNAME:
            return None
        return self.cache.get_above(self.sname, RdataType.DNAME, Rank.ANSWER)

    def _follow_cached_dname(self, dname: CacheHit) -> State:
        """Put the DNAME and the CNAME it makes for sname in the chain and go on at the target.

        DONE when the lookup is finished: a CNAME question (the synthesised CNAME is the
        answer), a loop (SERVFAIL, the looping records with it) or a too long result (YXDOMAIN).
        """
        rrset = dname.rrset
        if self.trace is not None:  # the hit is at the DNAME's owner, not at sname
            self._emit(CacheLookup, name=rrset.name.to_text(), type="DNAME", result="hit",
                       ttl=dname.remaining, original_ttl=dname.original_ttl, records=lines([rrset]))
        self._add(Evidence(rrset, dname.sigs, dname.zone, dname.proof, dname.security))
        target_zone = rrset[0].target  # type: ignore[attr-defined]
        try:
            target = self.sname.relativize(rrset.name).derelativize(target_zone)
        except dns.name.NameTooLong:
            return self._finish(dns.rcode.YXDOMAIN)
        self._add(Evidence(synthesise_cname(self.sname, target, rrset.ttl), None, dname.zone, dname.proof,
                           synthesised=True))
        if target_zone.is_subdomain(rrset.name):
            return self._fail(f"DNAME loop: {rrset.name} DNAME {target_zone} points below itself", keep_chain=True)
        if self.qtype == RdataType.CNAME:  # the synthesised CNAME is the answer
            return self._finish(dns.rcode.NOERROR)
        return State.RESTART if self._restart_at(target, "DNAME") else State.DONE

    def _refer_from_cache(self) -> State:
        """RD=0 and not cached: a referral to the closest cached delegation, as BIND answers.

        It tells a learner peeking at the cache how far down the resolver already knows
        the way; with nothing cached at all there is nothing to say but SERVFAIL.
        """
        name = self.sname
        while True:
            hit = self.cache.get(name, RdataType.NS)
            if hit is not None:
                return self._finish(dns.rcode.NOERROR, authority=[hit.rrset],
                                    reason="not in the cache (RD=0 asks the cache only)")
            if name == dns.name.root:
                return self._fail("not in the cache, and no delegation cached (RD=0 asks the cache only)")
            name = name.parent()

    def _restart_at(self, target: dns.name.Name, via: str) -> bool:
        """Follow a CNAME/DNAME to target; False (and SERVFAIL) on a loop or a chain too long."""
        if self.trace is not None:
            self._emit(Restart, name=self.sname.to_text(), target=target.to_text(), via=via)
        self.counts.restarts += 1
        if target in self.answer.names:
            self._fail(f"CNAME/DNAME loop at {target}", keep_chain=True)
            return False
        if self.counts.restarts > self.settings.max_cname_chain:
            self._fail(f"CNAME chain longer than {self.settings.max_cname_chain}")
            return False
        self.answer.names.add(target)
        self.sname = target
        self.counts.referrals = 0  # the referral bound is per name walked, not per chain
        return True

    # --- finding the zone to ask ---------------------------------------------------------

    def _find_zone(self) -> State:
        start, self.find_from = self.find_from, None
        self._enter_closest_zone(start)
        return State.CHOOSE_SERVER

    def _enter_closest_zone(self, start: dns.name.Name | None = None) -> None:
        """Enter the closest zone with a cached delegation at or above *start* (default: the name)."""
        name = self.sname.parent() if self.qtype == RdataType.DS and self.sname != dns.name.root else self.sname
        if start is not None:
            name = start
        self.pool = _NO_POOL  # only addresses the cache holds count below (no hints)
        closest = self.cache.closest_delegation(name)
        if closest is not None:
            labels, ns_names = closest
            # The root's servers can only be found from the hints: if their addresses
            # are gone (evicted, flushed, shorter TTLs), a cached root NS set alone
            # would fail every lookup until it expires.  (The root is the last place
            # a delegation can be: nothing is left to look at after it.)
            if labels > 1 or any(self._addresses(ns_name) for ns_name in ns_names):
                self._enter_zone(name if labels == len(name.labels) else _suffix(name, labels), ns_names, "cache")
                return
        # Nothing usable cached, not even the root: prime (RFC 8109) from the hints.
        self._enter_zone(dns.name.root, list(dict.fromkeys(n for n, _ in self.hints)), "hints")
        for ns_name, address in self.hints:
            self.pool.hint_addresses.setdefault(ns_name, []).append(address)

    def _enter_zone(self, zone: dns.name.Name, ns_names: list[dns.name.Name], source: str) -> None:
        if self.trace is not None:
            self._emit(Delegation, zone=zone.to_text(), servers=[n.to_text() for n in ns_names], source=source)
        # (len of a Name's labels: Name.__len__ is a Python call for the same number)
        self.pool = ServerPool(zone, ns_names, minimise_labels=len(zone.labels) + 1,
                               minimise_off=not self.settings.qname_minimisation)

    # --- choosing what to send -------------------------------------------------------

    def _choose_server(self) -> State:
        if self.budget.exhausted:
            return self._fail(f"more than {self.settings.max_queries} upstream queries for one question")
        if (self.pool.hint_addresses and not self.primed and self.depth == 0 and self.pool.zone == dns.name.root
                and self.settings.root_priming):
            return State.PRIME
        qname, qtype, purpose = self._question()
        if purpose is Purpose.RESOLVE and self.depth > 0:
            purpose = self.purpose  # a sub-lookup: for a name server's address, or for DNSSEC
        return self._ask(qname, qtype, purpose)

    def _prime(self) -> State:
        return self._ask(dns.name.root, RdataType.NS, Purpose.PRIMING)

    def _ask(self, qname: dns.name.Name, qtype: int, purpose: Purpose) -> State:
        """Send the question to one of the zone's servers; when none is left, the fallbacks in turn."""
        pool = self.pool
        by_name = list(zip(pool.ns_names, self._addresses_of(pool.ns_names)))  # cache lookups: once per plan
        candidates = [address for _, addresses in by_name for address in addresses]
        choice = self.infra.choose(candidates, exclude=pool.tried | self.avoid if self.avoid else pool.tried,
                                   zone=_zone_text(pool.zone))
        if choice is None:
            choice = self._try_again(candidates, pool.empty_once)
        if choice is None:
            if self._resolve_a_glueless_name():
                return State.RESOLVE_NS_ADDRESS
            choice = self._try_again(candidates, pool.retry_once)
        if choice is None:
            # The last resorts, as Unbound's processLastResort: the addresses the parent
            # zones gave as glue where the children's own answers said otherwise, and then
            # the delegation asked of the parent again (its glue may have expired here).
            by_name = [(name, self._parent_glue(name, candidates)) for name in pool.ns_names]
            choice = self.infra.choose([address for _, addresses in by_name for address in addresses],
                                       exclude=pool.tried)
            if choice is None and self._refetch_delegation():
                return State.FIND_ZONE
        if choice is None:
            held = [a for a in candidates if a not in pool.tried]
            why = "held down after failures" if held else "failed"
            return self._fail(f"every name server of {pool.zone} {why}")
        self.budget.used += 1
        server = None  # the NS name the address is one of (a loop: a generator costs more)
        for name, addresses in by_name:
            if choice.address in addresses:
                server = name
                break
        if self.trace is not None:
            srtt = self.infra.view(choice.address).srtt
            self._emit(ServerChoice, zone=pool.zone.to_text(), server=_text(server), address=choice.address,
                       reason=choice.reason.value, srtt_ms=None if srtt is None else to_ms(srtt),
                       timeout_ms=to_ms(choice.timeout), held_down=list(choice.held_down),
                       lame=list(choice.lame))
        return self._send(Query(choice.address, qname, qtype, pool.zone, choice.timeout, choice.reason,
                                edns=self.settings.edns and self.infra.edns_supported(choice.address),
                                purpose=purpose, server=server))

    def _refetch_delegation(self) -> bool:
        """Ask the parent for the delegation again, once per zone and lookup, when the zone has
        a name server inside itself with no address left: only the parent's glue can give it
        (here it expired), and asking the zone for it would need the zone."""
        zone = self.pool.zone
        if zone == dns.name.root or zone in self.refetched or self.cache_only:
            return False
        if not any(name.is_subdomain(zone) and not self._addresses(name) for name in self.pool.ns_names):
            return False
        self.refetched.add(zone)
        self.find_from = zone.parent()
        return True

    def _try_again(self, candidates: list[str], pool: set[str]) -> Choice | None:
        """One more try of a server in *pool* (one that timed out, or sent an empty reply),
        when no other server is left.

        A single timeout may be one lost packet or one stall, and when the other
        servers of the zone are down, giving up on the one live server at its
        first timeout fails the question (seen in the storm check).  Unbound and
        BIND both send again to the same server before they give up.  Once per
        server, zone and question (which one of them is alive cannot be known),
        and only to a server infra still lets be tried: the retries' timeouts
        count toward the breaker, so a dead zone is soon held down and costs
        nothing again until its probe interval.
        """
        again = [address for address in candidates if address in pool]
        choice = self.infra.choose(again, zone=_zone_text(self.pool.zone)) if again else None
        if choice is not None:
            pool.discard(choice.address)
        return choice

    def _question(self) -> tuple[dns.name.Name, int, Purpose]:
        """RFC 9156: reveal one more label than the zone needs (an A or NS query), until the full name."""
        pool = self.pool
        if (pool.minimise_off or self.qtype == RdataType.DS or pool.minimise_labels >= len(self.sname.labels)
                or self.counts.minimise_steps >= self.settings.max_minimise_steps):
            return self.sname, self.qtype, Purpose.RESOLVE
        return _suffix(self.sname, pool.minimise_labels), self.settings.minimise_qtype, Purpose.MINIMISED

    def _addresses(self, ns_name: dns.name.Name) -> list[str]:
        """The addresses known for an NS name, without repeats: the hints', then those learned in this
        lookup, then the cache's A and (with ipv6_upstream) AAAA records.  A new list each call."""
        return self._addresses_of((ns_name,))[0]

    def _addresses_of(self, ns_names: list[dns.name.Name] | tuple[dns.name.Name, ...]) -> list[list[str]]:
        """`_addresses` of each NS name, in order: the cache asked once for all of them."""
        settings = self.settings
        cache = self.cache
        if settings.ipv6_upstream:  # (name by name, A then AAAA: the cache's LRU order as ever)
            every = [cache.addresses(name, RdataType.A) + cache.addresses(name, RdataType.AAAA)
                     for name in ns_names]
        else:
            every = cache.addresses_of(ns_names, RdataType.A)  # new lists: ours to extend
        learned, hints = self.learned, self.pool.hint_addresses
        # (Most lookups learn nothing and have no hints: no Name hashed for nothing.)
        if not (learned or hints or settings.do_not_query_localhost):
            return [found if len(found) < 2 else list(dict.fromkeys(found)) for found in every]
        out: list[list[str]] = []
        for ns_name, found in zip(ns_names, every):
            if learned:
                found = list(learned.get(ns_name, ())) + found
            if settings.do_not_query_localhost:
                # Only what the DNS said: root hints on loopback are the operator's own choice
                # (Knot Resolver exempts them too).
                found = [address for address in found if not _loopback(address)]
            if hints:
                found = list(hints.get(ns_name, ())) + found
            out.append(found if len(found) < 2 else list(dict.fromkeys(found)))
        return out

    def _parent_glue(self, ns_name: dns.name.Name, known: list[str]) -> list[str]:
        """Parent-side glue addresses of an NS name that differ from those already known."""
        found: list[str] = []
        for rdtype in (RdataType.A, RdataType.AAAA) if self.settings.ipv6_upstream else (RdataType.A,):
            glue = self.cache.get_parent_glue(ns_name, rdtype)
            if glue is not None:
                found.extend(rdata.address for rdata in glue if rdata.address not in known)  # type: ignore[attr-defined]
        if self.settings.do_not_query_localhost:
            found = [address for address in found if not _loopback(address)]
        return found

    def _resolve_a_glueless_name(self) -> bool:
        """Start a sub-lookup for one NS name's address, within the limits.

        Called only when every known address is tried or held down, so each
        lookup here is needed: first the A records of NS names without an IPv4
        address, then (with ipv6_upstream) the AAAA records of those without an
        IPv6 one.  The limit counts names, so a referral to many glueless names
        cannot fan out into as many lookups (NXNSAttack).
        """
        if self.depth >= self.settings.max_dependency_depth:
            return False
        types = (RdataType.A, RdataType.AAAA) if self.settings.ipv6_upstream else (RdataType.A,)
        ancestors = {name for name, _ in self.goals}
        pool = self.pool
        for rdtype in types:
            for name in pool.ns_names:
                if (name, rdtype) in pool.glueless_tried or any(
                        _address_type(address) == rdtype for address in self._addresses(name)):
                    continue
                names_tried = {tried for tried, _ in pool.glueless_tried}
                if name not in names_tried and len(names_tried) >= self.settings.max_glueless_per_delegation:
                    return False
                pool.glueless_tried.add((name, rdtype))
                if name in ancestors:
                    continue  # resolving it needs this very zone: a delegation loop
                self.child_for = name
                self.child = Resolution(name, rdtype, cache=self.cache, infra=self.infra, hints=self.hints,
                                        settings=self.settings, budget=self.budget, depth=self.depth + 1,
                                        goals=self.goals, trace=self.trace, avoid=self.avoid,
                                        why=f"address of {name} for zone {pool.zone}", nsec=self.nsec)
                return True
        return False

    def _resolve_ns_address(self) -> State:
        """The sub-lookup's next query goes out as ours; when it is done, keep what it found.

        A failed one just leaves the name unusable.
        """
        assert self.child is not None and self.child_for is not None
        action = self.child.next_action()
        if isinstance(action, Query):
            self.pending = action
            return State.AWAIT_REPLY
        final = action.answer[-1] if action.answer else None
        if (action.rcode == dns.rcode.NOERROR and final is not None
                and final.rdtype in (RdataType.A, RdataType.AAAA)):
            self.learned.setdefault(self.child_for, []).extend(rdata.address for rdata in final)  # type: ignore[attr-defined]
        self.child = None
        self.child_for = None
        self.pending = None
        return State.CHOOSE_SERVER

    def _resend(self, query: Query) -> State:
        if self.budget.exhausted:
            return self._fail(f"more than {self.settings.max_queries} upstream queries for one question")
        self.budget.used += 1
        return self._send(query)

    def _send(self, query: Query) -> State:
        if self.trace is not None:
            self._emit(QuerySent, zone=query.zone.to_text(), server=_text(query.server), address=query.address,
                       name=query.qname.to_text(), type=_type(query.qtype), purpose=str(query.purpose),
                       tcp=query.tcp, edns=query.edns)
        self.pending = query
        return State.AWAIT_REPLY

    # --- reading replies ---------------------------------------------------------------

    def _query_response(self) -> State:
        """Screen what came back (Unbound's QUERY_RESP_STATE) and pass it to the state that reads it."""
        reading = self.reading
        assert reading is not None
        self.pending = None
        self.everything_from_cache = False
        query, reply, rtt, shared = reading.query, reading.reply, reading.rtt, reading.shared
        if reading.failure is not None:
            return self._no_reply(query, reading.failure, shared)
        assert reply is not None
        classified = _classify(reply, query, self.settings.harden_glue)
        if reply.flags & _TC and not query.tcp:
            self._emit_reply(query, reply, rtt, classified, "truncated")
            if not shared:
                self.infra.success(query.address, rtt)
            return self._resend(query._replace(tcp=True))
        if reply.flags & _TC:
            # Truncated over TCP: the answer does not fit even in 64 KB, so what came is not the
            # whole RRset and cannot be used; Knot Resolver marks such a server broken too.
            return self._unusable(query, reply, rtt, classified, Failure.BROKEN, shared, "truncated over TCP")
        if classified.kind is ReplyKind.FORMERR and query.edns:
            self._emit_reply(query, reply, rtt, classified, "formerr")
            return self._resend(query._replace(edns=False))
        if (not query.edns and self.settings.edns and classified.kind is not ReplyKind.FORMERR and not shared
                and self.infra.edns_supported(query.address)):
            # FORMERR with EDNS, an answer without: the server does not speak EDNS, remember it.
            # Only now: a name the server cannot parse at all (FORMERR both ways) says nothing
            # about EDNS, and one such question must not turn EDNS (and so DNSSEC) off for a server.
            self.infra.mark_no_edns(query.address)
        minimised = query.purpose == Purpose.MINIMISED
        if classified.kind is ReplyKind.LAME and minimised and classified.zone_ns is not None:
            # The zone's own NS set, no delegation below: for a minimised name that says
            # "no cut here" (Knot Resolver reads it so); the full question will show a lame server.
            classified = replace(classified, kind=ReplyKind.NODATA)
        if classified.empty:
            # An empty reply (nothing in it we can use, or only records of another type):
            # Unbound tries another server first, and takes the second such reply as
            # NODATA (EMPTY_NODATA_RETRY_COUNT), from that server again if it is the only one.
            # Until then it counts as lame, but the server may be asked once more.
            self.counts.empty_replies += 1
            if self.counts.empty_replies >= EMPTY_NODATA_RETRY_COUNT:
                classified = replace(classified, kind=ReplyKind.NODATA, empty=False)
            elif query.address not in self.pool.tried:
                self.pool.empty_once.add(query.address)
        # (Compared, not looked up in a table: an Enum hashes in Python.)
        kind = classified.kind
        failure = Failure.LAME if kind is ReplyKind.LAME else Failure.FORMERR if kind is ReplyKind.FORMERR else None
        if classified.kind is ReplyKind.ERROR:
            failure = _RCODE_FAILURE.get(classified.rcode, Failure.SERVFAIL)
        if failure is not None and minimised and failure is not Failure.LAME:
            # Relaxed mode (RFC 9156 §2.3, Unbound's default): a server that cannot
            # cope with a minimised query is asked the full name before it is blamed.
            self._emit_reply(query, reply, rtt, classified, "error: asking the full name")
            self.pool.minimise_off = True
            return State.CHOOSE_SERVER
        if failure is not None:
            return self._unusable(query, reply, rtt, classified, failure, shared, classified.kind.value)
        if self.trace is not None:  # (an enum's .value is Python code: only for a trace)
            meaning = classified.kind.value
            if minimised and classified.kind is not ReplyKind.REFERRAL:
                meaning = "nxdomain: asking the full name" if classified.kind is ReplyKind.NXDOMAIN else "no cut here"
            self._emit_reply(query, reply, rtt, classified, meaning)
        self.pool.tried.discard(query.address)  # it answered (after an empty reply, say): usable again
        if not shared:
            self.infra.success(query.address, rtt)
        reading.classified = classified
        if query.purpose == Purpose.PRIMING:
            return State.PRIME_RESPONSE
        if classified.kind is ReplyKind.REFERRAL:
            return State.FOLLOW_REFERRAL
        if minimised:
            return self._no_cut(classified)
        return State.READ_ANSWER

    def _unusable(self, query: Query, reply: AnyReply, rtt: float, classified: Classified,
                  failure: Failure, shared: bool, meaning: str) -> State:
        """A reply that cannot be used: note it against the server, and choose again."""
        self._emit_reply(query, reply, rtt, classified, meaning)
        self._emit_failed(query, failure, rtt)
        self.budget.failed_tries += 1
        if not shared:
            self.infra.failure(query.address, failure, _zone_text(query.zone), waited=rtt)
        self.pool.tried.add(query.address)
        return State.CHOOSE_SERVER

    def _no_reply(self, query: Query, kind: Failure, shared: bool) -> State:
        """A timeout or a network error: note it against the server, and choose again."""
        self._emit_failed(query, kind, query.timeout if kind is Failure.TIMEOUT else None)
        self.budget.failed_tries += 1
        if not shared:
            self.infra.failure(query.address, kind, waited=query.timeout if kind is Failure.TIMEOUT else 0.0)
        if kind is Failure.TIMEOUT and query.address not in self.pool.tried:
            self.pool.retry_once.add(query.address)
        self.pool.tried.add(query.address)
        return State.CHOOSE_SERVER

    def _prime_response(self) -> State:
        assert self.reading is not None and self.reading.classified is not None
        classified = self.reading.classified
        self.primed = True
        if classified.kind is ReplyKind.ANSWER and classified.answer is not None:
            source = self.reading.query.address
            self.cache.put(classified.answer, Rank.AUTH_ANSWER if classified.authoritative else Rank.ANSWER, source,
                           classified.signed(classified.answer), self.pool.zone)
            for glue in classified.glue:
                self.cache.put(glue, Rank.ADDITIONAL, source)
            return State.FIND_ZONE
        return State.CHOOSE_SERVER

    def _no_cut(self, classified: Classified) -> State:
        """A minimised name without a delegation below it: reveal more of the name."""
        if classified.kind is ReplyKind.NXDOMAIN:
            # Relaxed mode: some servers answer NXDOMAIN for empty non-terminals; ask in full.
            self.pool.minimise_off = True
        elif self.settings.minimise_qtype == RdataType.NS:
            # The name exists in this zone without a cut: Knot Resolver, whose minimisation
            # the NS type follows, asks the full name next (the rest is most likely here).
            self.pool.minimise_off = True
        else:
            # The name exists in this zone without a cut: reveal one more label (Unbound).
            self.pool.minimise_labels += 1
            self.counts.minimise_steps += 1
        return State.CHOOSE_SERVER

    def _read_answer(self) -> State:
        """Cache and keep data, a CNAME/DNAME chain or a denial; finish, or restart at the chain's end."""
        assert self.reading is not None and self.reading.classified is not None
        classified = self.reading.classified
        kind = classified.kind
        zone = self.pool.zone
        rank = Rank.AUTH_ANSWER if classified.authoritative else Rank.ANSWER
        source = self.reading.query.address
        # A positive reply's NSEC/NSEC3 records prove a wildcard expansion (of the data or of a
        # CNAME on the way): they go with each RRset of the chain, and the validator uses them
        # for the one whose RRSIG shows it was expanded.
        proof = classified.proof_with_sigs() if classified.proof and kind in (ReplyKind.ANSWER, ReplyKind.CNAME) else ()
        # (Most replies carry no RRSIGs: then no (name, type) key is hashed to look for them.)
        signed = classified.signed if classified.sigs else _unsigned
        for rrset in classified.chain:
            if rrset.rdtype == RdataType.CNAME and _via(classified.chain, rrset) == "DNAME":
                continue  # synthesised: rebuilt from the cached DNAME, so a cached answer keeps the DNAME
            self.cache.put(rrset, rank, source, signed(rrset), zone, proof)
        for glue in classified.glue:
            self.cache.put(glue, Rank.ADDITIONAL, source)
        for rrset in classified.chain:
            if rrset.rdtype == RdataType.DNAME and rrset[0].target.is_subdomain(rrset.name):  # type: ignore[attr-defined]
                # It rewrites every name below it to a longer one below it: a loop by construction.
                # The DNAME and the CNAME made from it go with the SERVFAIL (see _fail).
                index = classified.chain.index(rrset)
                for looping in classified.chain[index:index + 2]:
                    self._add(Evidence(looping, signed(looping), zone, proof,
                                       synthesised=looping.rdtype == RdataType.CNAME))
                return self._fail(f"DNAME loop: {rrset.name} DNAME {rrset[0].target} points below itself",  # type: ignore[attr-defined]
                                  keep_chain=True)
            synthesised = rrset.rdtype == RdataType.CNAME and _via(classified.chain, rrset) == "DNAME"
            self._add(Evidence(rrset, signed(rrset), zone, proof, synthesised=synthesised,
                               source=source, forged=classified.forged.get(rrset.name) if synthesised else None))
            if (rrset is not classified.answer and rrset.rdtype == RdataType.CNAME
                    and not self._restart_at(rrset[0].target, _via(classified.chain, rrset))):  # type: ignore[attr-defined]
                return State.DONE
        if kind is ReplyKind.ANSWER:
            return self._finish(dns.rcode.NOERROR)
        if kind is ReplyKind.YXDOMAIN:
            return self._finish(dns.rcode.YXDOMAIN)  # the DNAME goes with it, as the server sent it
        if kind is ReplyKind.CNAME:
            return State.RESTART
        negative = NegativeKind.NXDOMAIN if kind is ReplyKind.NXDOMAIN else NegativeKind.NODATA
        authority: list[dns.rrset.RRset] = []
        if classified.soa is not None:
            sigs, proof = classified.signed(classified.soa), classified.proof_with_sigs()
            self.cache.put_negative(self.sname, self.qtype, negative, classified.soa, source, sigs, zone,
                                    proof, classified.zone_ns)
            cached = self.cache.get_negative(self.sname, self.qtype)
            # The cached copy carries the RFC 2308 TTL: min(SOA TTL, MINIMUM, cap).
            authority = [cached.soa if cached is not None else classified.soa]
            self.answer.denial = Evidence(authority[0], sigs, zone, proof, negative=negative, source=source)
            if classified.zone_ns is not None:
                # Passed on to the client as Knot Resolver does, with the negative TTL;
                # never cached as a delegation (a sold domain's old servers would keep
                # their zone alive: the "ghost domain" of iter_domain_sale).
                authority.append(cached.ns if cached is not None and cached.ns is not None
                                 else classified.zone_ns)
        elif classified.proof:
            # No SOA, only NSEC/NSEC3 (as some servers answer a DS question): nothing to
            # cache negatively, but the validator can judge the proof, with its first
            # record standing where the SOA would (Unbound needs no SOA for this either).
            first = classified.proof[0]
            self.answer.denial = Evidence(first, classified.signed(first), zone, classified.proof_with_sigs(),
                                          negative=negative, source=source)
        rcode = dns.rcode.NXDOMAIN if kind is ReplyKind.NXDOMAIN else dns.rcode.NOERROR
        return self._finish(rcode, authority=authority)

    def _follow_referral(self) -> State:
        assert self.reading is not None and self.reading.classified is not None
        classified = self.reading.classified
        assert classified.ns is not None and classified.child is not None
        source = self.reading.query.address
        self.counts.referrals += 1
        if self.counts.referrals > self.settings.max_referrals:
            return self._fail(f"more than {self.settings.max_referrals} referrals")
        if not self.reading.shared:
            # A shared referral was cached by the lookup that asked: both read the same
            # reply to the same question as a referral.  This lookup goes on from the
            # reply itself (NS names here, glue in `learned`), never from those entries.
            self.cache.put(classified.ns, Rank.AUTHORITY, source)
            for glue in classified.glue:
                self.cache.put(glue, Rank.ADDITIONAL, source)
                self.cache.put_parent_glue(glue, source)
            if classified.ds is not None:
                # The parent is authoritative for the DS at its cut (RFC 4035 §2.4): a validator's
                # DS question is answered from here without asking again.
                self.cache.put(classified.ds, Rank.AUTH_AUTHORITY, source,
                               classified.signed(classified.ds), self.pool.zone)
        if classified.ds is None and classified.proof:
            # RFC 4035 §3.1.4: a referral to an unsigned child carries the parent's signed proof
            # that there is no DS; the validator judges it instead of asking for the DS again.
            first = classified.proof[0]
            self.answer.ds_denials[classified.child] = Evidence(
                first, classified.signed(first), self.pool.zone, classified.proof_with_sigs(),
                negative=NegativeKind.NODATA, source=source)
        self._enter_zone(classified.child, [rdata.target for rdata in classified.ns], "referral")  # type: ignore[attr-defined]
        # The glue may not be cacheable (TTL 0): remember it for this lookup.
        for glue in classified.glue:
            if glue.rdtype == RdataType.A or self.settings.ipv6_upstream:
                self.learned.setdefault(glue.name, []).extend(r.address for r in glue)  # type: ignore[attr-defined]
        return State.CHOOSE_SERVER

    # --- finishing -------------------------------------------------------------------------

    def _add(self, evidence: Evidence) -> None:
        rrset = evidence.rrset
        chain = self.answer.chain
        if chain and any(kept.name == rrset.name and kept.rdtype == rrset.rdtype and kept == rrset
                         for kept in chain):  # (most often the first: no generator for an empty chain)
            return  # a DNAME met twice on one chain (x. DNAME .): it is in the answer once
        chain.append(rrset)
        self.answer.evidence.append(evidence)

    def _finish(self, rcode: int, authority: list[dns.rrset.RRset] | None = None, reason: str = "") -> State:
        answer = self.answer
        self.result = Result(rcode, list(answer.chain), authority or [], reason,
                             from_cache=self.everything_from_cache, upstream_queries=self.budget.used,
                             evidence=list(answer.evidence), denial=answer.denial,
                             zone=None if self.everything_from_cache else self.pool.zone,
                             ds_denials=answer.ds_denials)
        if self.trace is not None:
            self._emit(Done, name=self.qname.to_text(), type=_type(self.qtype), rcode=dns.rcode.to_text(rcode),
                       records=lines(self.result.answer), authority=lines(self.result.authority), reason=reason,
                       upstream_queries=self.budget.used)
        return State.DONE

    def _fail(self, reason: str, keep_chain: bool = False) -> State:
        """SERVFAIL; with *keep_chain*, the CNAME/DNAME records that loop go with it, so the
        client sees why (Knot Resolver answers a loop so; Deckard's iter_dname_insec checks it)."""
        answer = list(self.answer.chain) if keep_chain else []
        self.result = Result(dns.rcode.SERVFAIL, answer, reason=reason, from_cache=self.everything_from_cache,
                             upstream_queries=self.budget.used)
        if self.trace is not None:
            self._emit(Done, name=self.qname.to_text(), type=_type(self.qtype), rcode="SERVFAIL",
                       records=lines(answer), authority=[], reason=reason, upstream_queries=self.budget.used)
        return State.DONE

    # --- tracing ---------------------------------------------------------------------------

    def _emit(self, event: type[Event], **fields: object) -> None:
        if self.trace is not None:
            self.trace(event(depth=self.depth, **fields))  # type: ignore[arg-type]

    def _emit_cache(self, rdtype: int, result: str, ttl: int | None = None, original_ttl: int | None = None,
                    rcode: str | None = None, records: list[str] | None = None) -> None:
        if self.trace is None:
            return
        expired = self.cache.expired_since(self.sname, rdtype) if result == "miss" else None
        self._emit(CacheLookup, name=self.sname.to_text(), type=_type(rdtype),
                   result="expired" if expired is not None else result, ttl=ttl, original_ttl=original_ttl,
                   expired_ago=None if expired is None else round(expired, 1), rcode=rcode,
                   records=records or [])

    def _emit_reply(self, query: Query, reply: AnyReply, rtt: float, classified: Classified,
                    meaning: str) -> None:
        if self.trace is None:
            return
        records = lines(classified.chain) or lines([classified.soa] if classified.soa is not None else [])
        self._emit(Reply, zone=query.zone.to_text(), server=_text(query.server), address=query.address,
                   rtt_ms=to_ms(rtt), rcode=dns.rcode.to_text(reply.rcode()),
                   aa=bool(reply.flags & dns.flags.AA), tc=bool(reply.flags & dns.flags.TC), meaning=meaning,
                   child_zone=_text(classified.child) or None,
                   ns=[rdata.target.to_text() for rdata in classified.ns] if classified.ns else [],  # type: ignore[attr-defined]
                   glue=[f"{rrset.name} {rdata.address}" for rrset in classified.glue for rdata in rrset],  # type: ignore[attr-defined]
                   records=records, target=_text(classified.target) if meaning == "cname" else None,
                   dropped=classified.dropped, nsid=_nsid(reply))

    def _emit_failed(self, query: Query, failure: Failure, after: float | None) -> None:
        if self.trace is None:
            return
        self._emit(Failed, zone=query.zone.to_text(), server=_text(query.server), address=query.address,
                   failure=failure.value, after_ms=None if after is None else to_ms(after))


HANDLERS: dict[State, Callable[[Resolution], State]] = {
    State.START: Resolution._start,
    State.CACHE_LOOKUP: Resolution._lookup_cache,
    State.RESTART: Resolution._restart,
    State.FIND_ZONE: Resolution._find_zone,
    State.CHOOSE_SERVER: Resolution._choose_server,
    State.PRIME: Resolution._prime,
    State.RESOLVE_NS_ADDRESS: Resolution._resolve_ns_address,
    State.QUERY_RESPONSE: Resolution._query_response,
    State.PRIME_RESPONSE: Resolution._prime_response,
    State.FOLLOW_REFERRAL: Resolution._follow_referral,
    State.READ_ANSWER: Resolution._read_answer,
}


def chain_end(qname: dns.name.Name, answer: list[dns.rrset.RRset]) -> dns.name.Name:
    """The name a negative answer is about: the question, or the end of its CNAME chain."""
    name = qname
    for rrset in answer:
        if rrset.rdtype == RdataType.CNAME and rrset.name == name:
            name = rrset[0].target  # type: ignore[attr-defined]
    return name


# Both keyed by a name's labels, whose tuple hashes and compares in C (a Name's hash and
# equality are Python code, and a zone's Name is a new object in each lookup).
_ZONE_TEXTS: dict[tuple[bytes, ...], str] = {}
_SUFFIXES: dict[tuple[bytes, ...], dns.name.Name] = {}
_NAME_MEMORY = 4096  # entries of each; a table starts afresh when full


def _zone_text(zone: dns.name.Name) -> str:
    """A zone's name for infra, remembered: every query sent needs it, and zones are few."""
    labels = zone.labels
    text = _ZONE_TEXTS.get(labels)
    if text is None:
        if len(_ZONE_TEXTS) >= _NAME_MEMORY:
            _ZONE_TEXTS.clear()
        text = _ZONE_TEXTS[labels] = zone.to_text()
    return text


def _suffix(name: dns.name.Name, labels: int) -> dns.name.Name:
    """The last *labels* labels of *name* (`name.split(labels)[1]`), remembered: the zones a walk
    enters and the minimised names it asks are few, and making a Name costs more than finding it."""
    suffix = name.labels[-labels:]
    found = _SUFFIXES.get(suffix)
    if found is None:
        if len(_SUFFIXES) >= _NAME_MEMORY:
            _SUFFIXES.clear()
        found = _SUFFIXES[suffix] = name.split(labels)[1]
    return found


# The classifications of recent replies, by reply object.  Lookups that joined another's exchange
# (the upstream merges identical questions in flight) read the very reply the sender read, for the
# same name, type and zone: they take the sender's Classified instead of classifying it again.
# Sharing it is safe: classify never changes what it returned, and the iterator replaces a
# Classified (dataclasses.replace) rather than changing it.  Each entry holds its reply, so the
# id it is found by cannot be another object's while it is here.
_CLASSIFIED: dict[int, tuple[AnyReply, Query, bool, Classified]] = {}
_CLASSIFIED_MEMORY = 256


def _classify(reply: AnyReply, query: Query, harden_glue: bool) -> Classified:
    """classify(), or the classification of the same reply to the same question made just before."""
    known = _CLASSIFIED.get(id(reply))
    if known is not None:
        asked = known[1]
        # Label tuples compare in C, and exactly (a name in another case is classified anew).
        if (known[0] is reply and known[2] is harden_glue and asked.qtype == query.qtype
                and asked.qname.labels == query.qname.labels and asked.zone.labels == query.zone.labels):
            return known[3]
    classified = classify(reply, query.qname, query.qtype, query.zone, harden_glue=harden_glue)
    if len(_CLASSIFIED) >= _CLASSIFIED_MEMORY:
        _CLASSIFIED.clear()
    _CLASSIFIED[id(reply)] = (reply, query, harden_glue, classified)
    return classified


def _unsigned(_rrset: dns.rrset.RRset) -> None:
    """`Classified.signed` for a reply without RRSIGs."""
    return None


def _text(name: dns.name.Name | None) -> str:
    return "" if name is None else name.to_text()


def _type(rdtype: int) -> str:
    return dns.rdatatype.to_text(rdtype)


def _via(chain: list[dns.rrset.RRset], cname: dns.rrset.RRset) -> str:
    """Whether a CNAME in a reply's chain was synthesised from the DNAME before it."""
    index = next(i for i, rrset in enumerate(chain) if rrset is cname)
    return "DNAME" if index > 0 and chain[index - 1].rdtype == RdataType.DNAME else "CNAME"


def _loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def _address_type(address: str) -> int:
    return RdataType.AAAA if ":" in address else RdataType.A


def _nsid(reply: AnyReply) -> str | None:
    """The NSID a server named itself with (RFC 5001), as text; None if it gave none."""
    for option in reply.options:
        if option.otype == 3:  # NSID
            data = getattr(option, "nsid", None) or getattr(option, "data", b"")
            return data.decode("utf-8", "replace") if data else None
    return None
