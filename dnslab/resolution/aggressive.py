"""RFC 8198: aggressive use of the DNSSEC-validated cache (NSEC and NSEC3 spans).

A secure NXDOMAIN or NODATA answer proves more than its question: the NSEC
"a.example. -> d.example." that denied b.example also denies c.example, and
the NSEC at a name lists every type that name has.  Unbound (validator/val_neg.c,
``aggressive-nsec: yes``, its default since 1.15) and Knot Resolver
(lib/cache/nsec1.c, nsec3.c, peek.c) keep such records and answer later
questions that fall into a known span from the cache, without asking the
zone's servers.  This module is that memory and that decision, sans-I/O:

- `NsecStore.learn_denial` / `learn_wildcard` take only what the validator
  judged SECURE (the caller, `verdicts.judge`, passes nothing else): the
  NSEC/NSEC3 records of a proof with their RRSIGs, the zone's SOA, and the
  wildcard an expanded answer came from (RFC 8198 §5.3, as Knot Resolver keeps it);
- `NsecStore.synthesise` picks the records that would prove an answer for a
  question (the NSEC or NSEC3 matching or covering it, the closest encloser,
  the wildcard) and has the validator's own proof rules (`_proves_nxdomain`,
  `_proves_nodata`) confirm them, so nothing here is a second reading of RFC
  4035/5155: NXDOMAIN (§5.1), NODATA (§5.2) or a wildcard answer (§5.3).

NSEC3 opt-out spans never prove anything here (an unsigned delegation may hide
in them), nor do NSEC/NSEC3 records at a delegation or DNAME for the names below
it.  Records live min(NSEC TTL, SOA TTL, SOA MINIMUM) (RFC 8198 §5.4, RFC 9077),
never past their RRSIGs, and the store is bounded with LRU eviction like the
rest of the cache.
"""

from __future__ import annotations

import bisect
import enum
import math
from collections import OrderedDict
from dataclasses import dataclass, field

import dns.name
import dns.rdatatype
import dns.rrset

from dnslab.core.clock import Clock
from dnslab.resolution.cache import NegativeKind
from dnslab.resolution.validator import (_closest_encloser_nsec, _nsec3_hash, _nsec3_span, _Proof,
                                         _proves_nodata, _proves_nxdomain, _types, MAX_NSEC3_ITERATIONS, Security)

RdataType = dns.rdatatype.RdataType

# The store's bound when the resolver gives none: as many records as the validator's key cache.
DEFAULT_MAX_RECORDS = 10_000
# Questions never answered from spans: meta types, and the records of the proofs themselves.
_NOT_SYNTHESISED = frozenset({RdataType.ANY, RdataType.RRSIG, RdataType.NSEC, RdataType.NSEC3,
                              RdataType.AXFR, RdataType.IXFR})
_WILD = b"*"


class Kind(enum.Enum):
    """What a synthesised answer is (RFC 8198 §5.1-5.3)."""

    NXDOMAIN = "nxdomain"
    NODATA = "nodata"
    WILDCARD = "wildcard"  # a positive answer expanded from a cached wildcard


@dataclass(frozen=True)
class Synthesis:
    """An answer made from the store; every RRset is the caller's own copy with its remaining TTL."""

    kind: Kind
    zone: dns.name.Name
    proof: tuple[dns.rrset.RRset, ...]   # NSEC/NSEC3 RRsets, each followed by its RRSIGs
    soa: dns.rrset.RRset | None = None   # NXDOMAIN/NODATA: the zone's SOA, TTL per RFC 8198 §5.4
    soa_sigs: dns.rrset.RRset | None = None
    answer: dns.rrset.RRset | None = None  # WILDCARD: the expansion at the question's name
    answer_sigs: dns.rrset.RRset | None = None
    why: str = ""
    # Everything stored was judged secure: the answer carries that verdict, not to be judged again.
    security: str = Security.SECURE.value

    @property
    def negative(self) -> NegativeKind | None:
        """The RFC 2308 kind of a synthesised denial; None for a wildcard answer."""
        return {Kind.NXDOMAIN: NegativeKind.NXDOMAIN, Kind.NODATA: NegativeKind.NODATA}.get(self.kind)


@dataclass(slots=True)
class _Held:
    """One stored RRset with its signatures, live while now < expires_at."""

    rrset: dns.rrset.RRset
    sigs: dns.rrset.RRset | None
    expires_at: float
    types: frozenset[int] = frozenset()  # NSEC/NSEC3: the type bitmap, read once (reading it is slow)


class _Chain:
    """A zone's NSEC (or one NSEC3 parameter set's) records in canonical order, for predecessor search."""

    def __init__(self) -> None:
        self.keys: list[tuple[bytes, ...] | str] = []
        self.held: dict[tuple[bytes, ...] | str, _Held] = {}

    def put(self, key: tuple[bytes, ...] | str, held: _Held) -> None:
        if key not in self.held:
            bisect.insort(self.keys, key)
        self.held[key] = held

    def drop(self, key: tuple[bytes, ...] | str) -> None:
        if self.held.pop(key, None) is not None:
            index = bisect.bisect_left(self.keys, key)
            if index < len(self.keys) and self.keys[index] == key:
                del self.keys[index]

    def at_or_before(self, key: tuple[bytes, ...] | str) -> tuple[tuple[bytes, ...] | str, _Held] | None:
        """The record whose owner is *key*, or else the one before it (the last one wraps round)."""
        if not self.keys:
            return None
        index = bisect.bisect_right(self.keys, key) - 1
        found = self.keys[index]  # index -1: before the first owner, so the last NSEC's span (wrap)
        return found, self.held[found]


@dataclass
class _Zone:
    soa: _Held | None = None
    nsec: _Chain = field(default_factory=_Chain)
    nsec3: dict[tuple[int, int, bytes], _Chain] = field(default_factory=dict)  # by (algorithm, iterations, salt)
    wild: dict[tuple[tuple[bytes, ...], int], _Held] = field(default_factory=dict)  # (wildcard owner, type)

    def empty(self) -> bool:
        return self.soa is None and not self.nsec.held and not any(c.held for c in self.nsec3.values()) \
            and not self.wild


def _canonical(name: dns.name.Name) -> tuple[bytes, ...]:
    """A sort key in RFC 4034 §6.1 canonical order: labels from the root, lower-cased, compared as octets."""
    return tuple(label.lower() for label in reversed(name.labels))


class NsecStore:
    """Validated NSEC/NSEC3 records, SOAs and wildcard sources, by zone; bounded, each record on its own TTL.

    Not thread-safe: the resolver uses it from one event loop.
    """

    def __init__(self, clock: Clock, max_records: int = DEFAULT_MAX_RECORDS, max_ttl: int = 86400,
                 negative_max_ttl: int = 3600) -> None:
        self._clock = clock
        self._max = max(1, max_records)
        self._max_ttl = max_ttl
        self._negative_max_ttl = negative_max_ttl
        self._zones: dict[tuple[bytes, ...], _Zone] = {}
        # Every stored record by (zone, where, key), oldest use first: the LRU bound.
        self._lru: OrderedDict[tuple, None] = OrderedDict()

    def __len__(self) -> int:
        return len(self._lru)

    def clear(self) -> None:
        """Forget everything (a cache flush starts the resolver's memory afresh)."""
        self._zones.clear()
        self._lru.clear()

    # --- learning (only what the validator judged SECURE) ------------------------------------

    def learn_denial(self, soa: dns.rrset.RRset | None, soa_sigs: dns.rrset.RRset | None,
                     proof: tuple[dns.rrset.RRset, ...], wall: float) -> None:
        """Keep a secure denial's NSEC/NSEC3 records and the zone's SOA.

        Each record lives min(its TTL, SOA TTL, SOA MINIMUM) (RFC 8198 §5.4 and RFC
        9077: a span must not outlive the negative answer it came with).
        """
        cap = self._max_ttl
        if soa is not None and soa.rdtype == RdataType.SOA and len(soa):
            negative = min(soa.ttl, soa[0].minimum, self._negative_max_ttl)  # type: ignore[attr-defined]
            cap = min(cap, negative)
            zone = soa.name
            self._put(_canonical(zone), ("soa",), soa, soa_sigs, negative, wall)
        self._learn_proof(proof, cap, wall)

    def learn_wildcard(self, rrset: dns.rrset.RRset, sigs: dns.rrset.RRset | None,
                       proof: tuple[dns.rrset.RRset, ...], wall: float) -> None:
        """Keep a secure wildcard expansion's source (under the wildcard's own name) and its proof."""
        if sigs is None:
            return
        sig = next((s for s in sigs if s.type_covered == rrset.rdtype), None)  # type: ignore[attr-defined]
        if sig is None or sig.labels >= len(rrset.name) - 1:  # type: ignore[attr-defined]
            return  # not an expansion (RFC 4035 §5.3.4)
        owner = dns.name.Name((_WILD,) + rrset.name.labels[len(rrset.name) - 1 - sig.labels:])  # type: ignore[attr-defined]
        zone: dns.name.Name = sig.signer  # type: ignore[attr-defined]
        if not owner.is_subdomain(zone):
            return
        self._put(_canonical(zone), ("wild", _canonical(owner), int(rrset.rdtype)), _renamed(rrset, owner),
                  _renamed(sigs, owner), min(rrset.ttl, self._max_ttl), wall)
        self._learn_proof(proof, self._max_ttl, wall)

    def _learn_proof(self, proof: tuple[dns.rrset.RRset, ...], cap: int, wall: float) -> None:
        sigs = {(r.name, r.covers): r for r in proof if r.rdtype == RdataType.RRSIG}
        for rrset in proof:
            signatures = sigs.get((rrset.name, rrset.rdtype))
            if rrset.rdtype not in (RdataType.NSEC, RdataType.NSEC3) or signatures is None or not len(rrset):
                continue
            zone: dns.name.Name = next(iter(signatures)).signer  # type: ignore[attr-defined]
            ttl = min(rrset.ttl, cap)
            if rrset.rdtype == RdataType.NSEC:
                if rrset.name.is_subdomain(zone):
                    self._put(_canonical(zone), ("nsec", _canonical(rrset.name)), rrset, signatures, ttl, wall)
            elif rrset.name.parent() == zone and rrset[0].iterations <= MAX_NSEC3_ITERATIONS:  # type: ignore[attr-defined]
                rd = rrset[0]
                params = (int(rd.algorithm), int(rd.iterations), bytes(rd.salt))  # type: ignore[attr-defined]
                self._put(_canonical(zone), ("nsec3", params, _nsec3_span(rrset)[0]), rrset, signatures, ttl, wall)

    def _put(self, zone_key: tuple[bytes, ...], where: tuple, rrset: dns.rrset.RRset,
             sigs: dns.rrset.RRset | None, ttl: int, wall: float) -> None:
        if sigs is not None and len(sigs):
            ttl = min(ttl, math.floor(min(s.expiration for s in sigs) - wall))  # type: ignore[attr-defined]
        if ttl <= 0:
            return
        types = frozenset(_types(rrset)) if rrset.rdtype in (RdataType.NSEC, RdataType.NSEC3) else frozenset()
        held = _Held(rrset.copy(), sigs.copy() if sigs is not None else None, self._clock.now() + ttl, types)
        zone = self._zones.setdefault(zone_key, _Zone())
        kind = where[0]
        if kind == "soa":
            zone.soa = held
        elif kind == "nsec":
            zone.nsec.put(where[1], held)
        elif kind == "nsec3":
            zone.nsec3.setdefault(where[1], _Chain()).put(where[2], held)
        else:
            zone.wild[(where[1], where[2])] = held
        key = (zone_key,) + where
        self._lru[key] = None
        self._lru.move_to_end(key)
        while len(self._lru) > self._max:
            self._evict(next(iter(self._lru)))

    def _evict(self, key: tuple) -> None:
        self._lru.pop(key, None)
        zone_key, kind = key[0], key[1]
        zone = self._zones.get(zone_key)
        if zone is None:
            return
        if kind == "soa":
            zone.soa = None
        elif kind == "nsec":
            zone.nsec.drop(key[2])
        elif kind == "nsec3":
            chain = zone.nsec3.get(key[2])
            if chain is not None:
                chain.drop(key[3])
                if not chain.held:
                    del zone.nsec3[key[2]]
        else:
            zone.wild.pop((key[2], key[3]), None)
        if zone.empty():
            del self._zones[zone_key]

    # --- answering -----------------------------------------------------------------------------

    def synthesise(self, qname: dns.name.Name, qtype: int) -> Synthesis | None:
        """An answer for (qname, qtype) proven by stored records alone, or None (then ask the servers).

        The zone is the closest one with stored records at or above the name (above it for
        DS, which its parent holds); its records at a delegation never prove names below it.
        """
        if qtype in _NOT_SYNTHESISED:
            return None
        start = qname.parent() if qtype == RdataType.DS and qname != dns.name.root else qname
        found = self._zone_for(start)
        if found is None:
            return None
        zone_name, zone = found
        synthesis = self._from_nsec(zone_name, zone, qname, qtype)
        if synthesis is None:
            for params in list(zone.nsec3):
                synthesis = self._from_nsec3(zone_name, zone, params, qname, qtype)
                if synthesis is not None:
                    break
        if synthesis is None:
            return None
        if synthesis.kind is not Kind.WILDCARD:
            soa = self._live(zone.soa, ("soa",), zone_name)
            if soa is None:
                return None  # nothing to put in the authority section: ask
            rrset, sigs, left = soa
            ttl = min([left] + [r.ttl for r in synthesis.proof])
            synthesis = Synthesis(synthesis.kind, zone_name, synthesis.proof, _with_ttl(rrset, ttl),
                                  _with_ttl(sigs, ttl) if sigs is not None else None, why=synthesis.why)
        return synthesis

    def _zone_for(self, name: dns.name.Name) -> tuple[dns.name.Name, _Zone] | None:
        key = _canonical(name)  # an ancestor's key is a prefix of it
        for labels in range(len(key), 0, -1):
            zone = self._zones.get(key[:labels])
            if zone is not None:
                return dns.name.Name(name.labels[len(key) - labels:]), zone
        return None

    def _live(self, held: _Held | None, where: tuple,
              zone_name: dns.name.Name) -> tuple[dns.rrset.RRset, dns.rrset.RRset | None, int] | None:
        """A stored record's copy with its remaining TTL, or None when it has run out (then dropped)."""
        if held is None:
            return None
        left = held.expires_at - self._clock.now()
        key = (_canonical(zone_name),) + where
        if left <= 0:
            self._evict(key)
            return None
        if key in self._lru:
            self._lru.move_to_end(key)
        remaining = min(held.rrset.ttl, math.ceil(left))
        return (_with_ttl(held.rrset, remaining),
                _with_ttl(held.sigs, remaining) if held.sigs is not None else None, remaining)

    def _nsec_at_or_before(self, zone_name: dns.name.Name, zone: _Zone, name: dns.name.Name,
                           key: tuple[bytes, ...]) -> tuple[dns.rrset.RRset, dns.rrset.RRset | None,
                                                            frozenset[int]] | None:
        """The live NSEC at *name* (canonical *key*) or covering it, with its types; None if neither.

        Tested on canonical keys first, cheaply: most questions are in no stored span.
        """
        found = zone.nsec.at_or_before(key)
        if found is None:
            return None
        owner, held = found
        if owner != key:
            after = _canonical(held.rrset[0].next)  # type: ignore[attr-defined]
            inside = (owner < key < after) if owner < after else (
                (key > owner or key < after) and key[:len(after)] == after)  # the last span wraps to the apex
            if not inside:
                return None
        live = self._live(held, ("nsec", owner), zone_name)
        return None if live is None else (live[0], live[1], held.types)

    def _from_nsec(self, zone_name: dns.name.Name, zone: _Zone, qname: dns.name.Name,
                   qtype: int) -> Synthesis | None:
        """RFC 4035 §5.4 with the stored NSEC chain: the NSEC at the name, or the one covering it."""
        at = self._nsec_at_or_before(zone_name, zone, qname, _canonical(qname))
        if at is None:
            return None
        nsec, sigs, types = at
        if nsec.name == qname:
            proved, how = _proves_nodata(_Proof(nsec=[nsec]), qname, qtype, zone_name)
            if proved is not Security.SECURE:
                return None  # the name has the type (or a CNAME): an answer, not a denial
            return Synthesis(Kind.NODATA, zone_name, _signed(nsec, sigs), why=how)
        if qname.is_subdomain(nsec.name) and (_delegates(types) or RdataType.DNAME in types):
            return None  # below a zone cut or a DNAME: the names there are not this chain's to deny
        proof = _signed(nsec, sigs)
        after: dns.name.Name = nsec[0].next  # type: ignore[attr-defined]
        if after.is_subdomain(qname) and after != qname:
            # An empty non-terminal: the next owner is below the name (the validator's test, alone).
            proved, how = _proves_nodata(_Proof(nsec=[nsec]), qname, qtype, zone_name)
            return Synthesis(Kind.NODATA, zone_name, proof, why=how) if proved is Security.SECURE else None
        encloser = _closest_encloser_nsec(nsec, qname, zone_name)
        wildcard = dns.name.Name((_WILD,) + encloser.labels)
        expanded = self._expand(zone_name, zone, wildcard, qname, qtype, proof)
        if expanded is not None:
            return expanded
        at_wild = self._nsec_at_or_before(zone_name, zone, wildcard, _canonical(wildcard))
        if at_wild is None:
            return None
        wild_nsec, wild_sigs, wild_types = at_wild
        if wild_nsec.name == wildcard:
            if qtype in wild_types or RdataType.CNAME in wild_types:
                return None  # the wildcard has the data, but it is not stored: ask
            proved, how = _proves_nodata(_Proof(nsec=[nsec, wild_nsec]), qname, qtype, zone_name)
            kind = Kind.NODATA
        else:
            proved, how = _proves_nxdomain(_Proof(nsec=[nsec, wild_nsec]), qname, zone_name)
            kind = Kind.NXDOMAIN
        if proved is not Security.SECURE:
            return None
        return Synthesis(kind, zone_name, _merge(proof, _signed(wild_nsec, wild_sigs)), why=how)

    def _from_nsec3(self, zone_name: dns.name.Name, zone: _Zone, params: tuple[int, int, bytes],
                    qname: dns.name.Name, qtype: int) -> Synthesis | None:
        """RFC 5155 §8.4-8.7 with one stored NSEC3 chain: a match, or a closest-encloser proof."""
        chain = zone.nsec3[params]

        def find(name: dns.name.Name) -> tuple[bool, dns.rrset.RRset, dns.rrset.RRset | None,
                                                   frozenset[int]] | None:
            """(exact, record, RRSIGs, types): the NSEC3 matching the name's hash, or covering it."""
            if not chain.keys:
                return None
            hashed = _nsec3_hash(name, next(iter(chain.held.values())).rrset)
            found = chain.at_or_before(hashed)
            if found is None:
                return None
            owner, after = _nsec3_span(found[1].rrset)
            exact = owner == hashed
            if not exact and not ((owner < hashed < after) if owner < after else (hashed > owner or hashed < after)):
                return None
            live = self._live(found[1], ("nsec3", params, found[0]), zone_name)
            return None if live is None else (exact, live[0], live[1], found[1].types)

        if not qname.is_subdomain(zone_name):
            return None
        exact = find(qname)
        if exact is not None and exact[0]:
            record = exact[1]
            if qtype != RdataType.DS and _delegates(exact[3]):
                return None
            proved, how = _proves_nodata(_Proof(nsec3=[record]), qname, qtype, zone_name)
            if proved is not Security.SECURE:
                return None
            return Synthesis(Kind.NODATA, zone_name, _signed(record, exact[2]), why=how)
        # The closest encloser: the deepest ancestor with a matching NSEC3, the next closer name covered.
        names = [qname]
        while len(names[-1]) > len(zone_name):
            names.append(names[-1].parent())
        for index in range(1, len(names)):
            match = find(names[index])
            if match is None or not match[0]:
                continue
            encloser, next_closer = names[index], names[index - 1]
            if _delegates(match[3]) or RdataType.DNAME in match[3]:
                return None
            cover = exact if index == 1 else find(next_closer)
            if cover is None or cover[0] or cover[1][0].flags & 1:  # type: ignore[attr-defined]
                return None  # not covered, or an opt-out span (an unsigned delegation may be there)
            proof = _merge(_signed(match[1], match[2]), _signed(cover[1], cover[2]))
            wildcard = dns.name.Name((_WILD,) + encloser.labels)
            expanded = self._expand(zone_name, zone, wildcard, qname, qtype, _signed(cover[1], cover[2]))
            if expanded is not None:
                return expanded
            wild = find(wildcard)
            if wild is None:
                return None
            records = [match[1], cover[1], wild[1]]
            if wild[0]:
                if qtype in wild[3] or RdataType.CNAME in wild[3]:
                    return None  # the wildcard has the data, but it is not stored: ask
                proved, how = _proves_nodata(_Proof(nsec3=records), qname, qtype, zone_name)
                kind = Kind.NODATA
            else:
                if wild[1][0].flags & 1:  # type: ignore[attr-defined]
                    return None
                proved, how = _proves_nxdomain(_Proof(nsec3=records), qname, zone_name)
                kind = Kind.NXDOMAIN
            if proved is not Security.SECURE:
                return None
            return Synthesis(kind, zone_name, _merge(proof, _signed(wild[1], wild[2])), why=how)
        # No encloser's NSEC3 is stored (often the apex's): like Knot Resolver, a covered name whose
        # parent holds a stored wildcard has that parent as its closest encloser (the wildcard below
        # it exists), and the wildcard answers.
        for index in range(len(names) - 2, -1, -1):
            cover = find(names[index])
            if cover is None or cover[0]:
                continue
            if cover[1][0].flags & 1:  # type: ignore[attr-defined]
                return None
            wildcard = dns.name.Name((_WILD,) + names[index + 1].labels)
            return self._expand(zone_name, zone, wildcard, qname, qtype, _signed(cover[1], cover[2]))
        return None

    def _expand(self, zone_name: dns.name.Name, zone: _Zone, wildcard: dns.name.Name, qname: dns.name.Name,
                qtype: int, proof: tuple[dns.rrset.RRset, ...]) -> Synthesis | None:
        """RFC 8198 §5.3: the stored wildcard's data (the type, or a CNAME) at the question's name."""
        for rdtype in (qtype, RdataType.CNAME) if qtype != RdataType.CNAME else (qtype,):
            key = (_canonical(wildcard), int(rdtype))
            live = self._live(zone.wild.get(key), ("wild",) + key, zone_name)
            if live is not None:
                rrset, sigs, _ = live
                return Synthesis(Kind.WILDCARD, zone_name, proof, answer=_renamed(rrset, qname),
                                 answer_sigs=_renamed(sigs, qname) if sigs is not None else None,
                                 why=f"expanded from {wildcard}")
        return None


def _delegates(types: frozenset[int]) -> bool:
    """A zone cut (NS without SOA), as the validator's `_is_delegation` reads an NSEC's bitmap."""
    return RdataType.NS in types and RdataType.SOA not in types


def _with_ttl(rrset: dns.rrset.RRset, ttl: int) -> dns.rrset.RRset:
    out = rrset.copy()
    out.ttl = ttl
    return out


def _renamed(rrset: dns.rrset.RRset, name: dns.name.Name) -> dns.rrset.RRset:
    out = dns.rrset.RRset(name, rrset.rdclass, rrset.rdtype, rrset.covers)
    out.update(rrset)
    out.ttl = rrset.ttl
    return out


def _signed(rrset: dns.rrset.RRset, sigs: dns.rrset.RRset | None) -> tuple[dns.rrset.RRset, ...]:
    return (rrset,) if sigs is None else (rrset, sigs)


def _merge(*parts: tuple[dns.rrset.RRset, ...]) -> tuple[dns.rrset.RRset, ...]:
    """Proof RRsets without repeats (one NSEC may both cover the name and deny the wildcard)."""
    out: list[dns.rrset.RRset] = []
    for part in parts:
        for rrset in part:
            if not any(r.name == rrset.name and r.rdtype == rrset.rdtype and r.covers == rrset.covers
                       for r in out):
                out.append(rrset)
    return tuple(out)
