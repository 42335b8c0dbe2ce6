"""The resolver's memory: positive RRsets, RFC 2308 negative answers and recent SERVFAILs.

Modelled on Unbound's rrset and message caches.  Every entry carries its own
expiry, so one ``cachetools.TLRUCache`` (behind `_Store`) holds them all and
one bound (``max_entries``) covers positive, negative and SERVFAIL entries together.
Time comes only from the injected clock, so a test says "300 seconds pass"
instead of sleeping; randomness (for RANDOM rotation) only from the injected
``random.Random``, so a seed makes it reproducible.

The TLRUCache decides when an entry is *dropped*; whether it is still *live*
is decided by comparing ``now`` with the entry's own expiry.  The two
differ when serve-stale keeps expired data around for ``stale_window``, and
expired entries are remembered a little even without it (so a trace can say
"expired"), so "gone exactly at stored_at + ttl" holds whatever the store keeps.
"""

from __future__ import annotations

import enum
import logging
import math
import random
import types
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, NamedTuple

import cachetools
import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from dnslab.core.clock import Clock, reader
from dnslab.core.errors import ConfigError
# The key form of a name: `names.folded` of its labels, remembered (a cold lookup folds the same
# few names a dozen times), called directly in the hot paths.
from dnslab.core.names import folded as folded_labels

_log = logging.getLogger(__name__)


class Rank(enum.IntEnum):
    """RFC 2181 §5.4.1 trustworthiness, lowest first."""

    ADDITIONAL = 1  # glue and other additional-section data
    AUTHORITY = 2  # authority section of a non-authoritative reply (e.g. referral NS)
    ANSWER = 3  # answer section of a non-authoritative reply
    AUTH_AUTHORITY = 4  # authority section of an authoritative reply
    AUTH_ANSWER = 5  # answer section of an authoritative reply


class Rotation(enum.Enum):
    """How a multi-record RRset is ordered when a caller asks for rotation.

    CYCLIC is BIND's and CoreDNS's round-robin; RANDOM is Unbound's
    ``rrset-roundrobin``; FIXED keeps the order the authority sent.
    """

    CYCLIC = "cyclic"
    RANDOM = "random"
    FIXED = "fixed"


class NegativeKind(enum.Enum):
    """The two negative answers of RFC 2308, which differ in what they cover."""

    NXDOMAIN = "nxdomain"
    NODATA = "nodata"


class EntryKind(enum.StrEnum):
    """What an entry remembers; a str so `EntryView.kind` prints and compares as text."""

    POSITIVE = "positive"
    NXDOMAIN = "nxdomain"
    NODATA = "nodata"
    SERVFAIL = "servfail"
    PARENT_GLUE = "parent glue"  # a referral's address for an NS name, kept beside the child's


@dataclass(frozen=True)
class CacheSettings:
    """Limits a resolver operator tunes (Unbound's cache-min-ttl, cache-max-ttl, ...)."""

    max_entries: int = 100_000  # bound for all entries together, LRU eviction
    min_ttl: int = 0  # clamps applied when storing positive RRsets
    max_ttl: int = 86400
    negative_max_ttl: int = 3600  # cap on negative TTL
    servfail_ttl: int = 5  # how long a SERVFAIL for a question is remembered
    serve_stale: bool = False  # RFC 8767
    stale_window: int = 86400  # how long after expiry stale data may still be served
    stale_answer_ttl: int = 30  # TTL given to stale answers (RFC 8767 §4 recommends 30)
    rotation: Rotation = Rotation.CYCLIC

    def __post_init__(self) -> None:
        # Settings come from lab.toml; a nonsense value should fail at load, not as odd TTLs later.
        if self.max_entries < 1:
            raise ConfigError(f"cache max_entries must be at least 1, not {self.max_entries}")
        for field_name in (
            "min_ttl",
            "max_ttl",
            "negative_max_ttl",
            "servfail_ttl",
            "stale_window",
            "stale_answer_ttl",
        ):
            if getattr(self, field_name) < 0:
                raise ConfigError(f"cache {field_name} must not be negative")
        if self.min_ttl > self.max_ttl:
            raise ConfigError(
                f"cache min_ttl ({self.min_ttl}) is above max_ttl ({self.max_ttl})"
            )


class CacheHit(NamedTuple):
    """A positive answer; `rrset` is the caller's own copy, safe to put in a reply.

    A named tuple, not a frozen dataclass: as immutable, and made for every answer at a fifth
    of the cost (a frozen dataclass sets each of its eleven fields through object.__setattr__).
    """

    rrset: dns.rrset.RRset  # ttl is the remaining TTL (stale: stale_answer_ttl)
    remaining: int
    original_ttl: int  # after clamping
    rank: Rank
    stale: bool
    expires_at: float = 0.0  # on the cache's clock; lets the wire fast path count TTLs down exactly
    # The stored entry, whose `turn` is the round-robin counter: the fast path
    # advances the same counter, so replayed and rebuilt replies rotate as one.
    entry: Any = None
    # DNSSEC: the RRSIGs that came with it, the zone whose server sent it, the
    # NSEC/NSEC3 records that proved a wildcard expansion, and the validator's verdict.
    sigs: dns.rrset.RRset | None = None
    zone: dns.name.Name | None = None
    proof: tuple[dns.rrset.RRset, ...] = ()
    security: str | None = None


@dataclass(frozen=True)
class NegativeHit:
    """A cached RFC 2308 answer; the SOA goes into the reply's authority section."""

    kind: NegativeKind
    soa: dns.rrset.RRset  # a copy with the remaining TTL
    remaining: int
    expires_at: float = 0.0
    original_ttl: int = 0
    sigs: dns.rrset.RRset | None = None   # the SOA's RRSIGs
    zone: dns.name.Name | None = None
    proof: tuple[dns.rrset.RRset, ...] = ()  # NSEC/NSEC3 RRsets and their RRSIGs
    security: str | None = None
    ns: dns.rrset.RRset | None = None  # the zone's NS set, when the server sent it with the SOA


@dataclass(frozen=True)
class EntryView:
    """One entry as `dnslab cache` shows it.

    A stale entry shows remaining 0 (and its rrset TTL 0): for a person reading
    a dump, "expired, still held" is the truth; stale_answer_ttl is only what
    goes on the wire.  NXDOMAIN entries cover every type and show rdtype ANY.
    """

    name: dns.name.Name
    rdtype: int
    kind: str  # "positive" | "nxdomain" | "nodata" | "servfail"
    remaining: int
    original_ttl: int
    rank: Rank | None
    stale: bool
    rrset: dns.rrset.RRset | None  # positive: the RRset; negative: the SOA; servfail: None
    source: str | None = None      # the server address it came from, when known


@dataclass(slots=True, eq=False)
class _Extra:
    """The fields few entries need, kept apart so a plain entry carries one slot for all of them.

    At 100,000 entries every slot is 800 KB: an answer from an unsigned zone
    has no RRSIGs, no proof, no covered type, and only negative and SERVFAIL
    entries have an SOA, a reason or an Extended DNS Error.
    """

    sigs: dns.rrset.RRset | None = None  # DNSSEC: the RRSIGs over the entry's records
    proof: tuple[dns.rrset.RRset, ...] | None = None  # NSEC/NSEC3 (+ RRSIGs): denial or wildcard proof
    soa: dns.rrset.RRset | None = None  # negative entries: the SOA that goes into the authority section
    ns: dns.rrset.RRset | None = None  # negative entries: the zone's NS set, when the server sent it with the SOA
    covers: int = 0  # positive RRSIG entries: the type the signatures cover
    reason: str = ""  # SERVFAIL entries: why, as the client's Extended DNS Error says
    ede: int | None = None


_PLAIN = _Extra()  # shared, never mutated: what an entry without extras reads


@dataclass(slots=True, eq=False)
class _Entry:
    """One cache entry, in the leanest form that still answers exactly as a stored RRset would.

    Mutable only in `turn` (the cyclic rotation counter, shared with the wire
    fast path), `security` and the expiry times.  Positive entries keep their
    records, not a dns.rrset.RRset (88 bytes more, for a name, class and type
    the entry knows anyway); see `_Records` for the form.
    """

    kind: EntryKind
    name: dns.name.Name
    rdtype: int
    rdatas: _Records  # positive: the records in the order sent; otherwise ()
    rank: Rank | None
    ttl: int
    expires_at: float  # live while now < expires_at
    drop_at: float  # the store forgets it here (expires_at, or + stale_window)
    turn: int = 0
    source: str | None = None  # the server address it came from, for `dnslab cache show`
    zone: dns.name.Name | None = None  # the zone whose server sent it (where validation looks for keys)
    security: str | None = None  # the validator's verdict, once it has one (a validator.Security value)
    extra: _Extra = _PLAIN

    @property
    def sigs(self) -> dns.rrset.RRset | None:
        return self.extra.sigs

    @property
    def proof(self) -> tuple[dns.rrset.RRset, ...] | None:
        return self.extra.proof

    def rrset(self, ttl: int) -> dns.rrset.RRset | None:
        """A new RRset of what the entry holds (positive: its records; negative: the SOA), or None."""
        if self.rdatas:
            return _build(self.name, self.rdatas, self.extra.covers, ttl)
        soa = self.extra.soa
        return None if soa is None else _copy_with_ttl(soa, ttl)


# How an entry holds its records.  An RRset's items are a dict keyed by rdata,
# and building one calls each rdata's __hash__, which dnspython computes from
# the rdata's wire form every time: 1.5 us for an A or AAAA record, 6.5 us for
# one with a name in it (NS, CNAME, MX, ...).  Copying a dict keeps the hashes.
# So one address record -- most of a resolver's cache: answers and glue -- is
# kept as a 1-tuple (48 bytes) and rehashed on each get; everything else keeps
# its item dict (about 220 bytes for one record) and `get` copies it.
_Records = tuple[dns.rdata.Rdata, ...] | dict[dns.rdata.Rdata, None]
_TUPLE_TYPES = frozenset({dns.rdatatype.A, dns.rdatatype.AAAA})


def _records(rrset: dns.rrset.RRset) -> _Records:
    """The stored form of an RRset's records: our own, since the caller may reuse its RRset."""
    if len(rrset) == 1 and rrset.rdtype in _TUPLE_TYPES:
        return tuple(rrset)
    return dict(rrset.items)


def _build(name: dns.name.Name, rdatas: _Records | list[dns.rdata.Rdata], covers: int,
           ttl: int) -> dns.rrset.RRset:
    """The caller's own RRset of stored records; class and type come from the rdatas themselves."""
    if type(rdatas) is dict:
        items = rdatas.copy()
        first = next(iter(items))
    else:
        items = dict.fromkeys(rdatas)
        first = rdatas[0]
    out = dns.rrset.RRset(name, first.rdclass, first.rdtype, covers)
    out.items = items
    out.ttl = ttl
    return out


# Key shapes.  `folded` is the owner name as a tuple of lowercased labels: it
# compares exactly as dns.name.Name does (RFC 4343 ASCII case folding, label by
# label, so "a.b" as one label never meets a.b as two), but hashes and compares
# in C.  A Name key costs ~0.7 us per hash and ~0.9 us per comparison in Python,
# and a store lookup hashes its key at least once: folding once made `get` ~5x cheaper.
# Positive entries, the hot path, use the cheapest key: (folded, rdtype).  The
# others carry an EntryKind tag, which no rdtype int ever equals:
#   (folded, EntryKind.NXDOMAIN)                      NXDOMAIN covers every type
#   (folded, rdtype, EntryKind.NODATA | SERVFAIL)
# The class is always IN: the resolver serves IN only.
_Key = tuple
_NS, _CNAME = int(dns.rdatatype.NS), int(dns.rdatatype.CNAME)


def _ttu(_key: _Key, entry: _Entry, _now: float) -> float:
    return entry.drop_at


_present = cachetools.Cache.__contains__  # stored at all (due or not), without an LRU move: one dict lookup
_stored = cachetools.Cache.__getitem__  # the entry as stored: no LRU move, no expiry check


class _Store:
    """Where `Cache` keeps its entries: one cachetools.TLRUCache, through the few calls the cache makes.

    The TLRUCache drops each entry at its own ``drop_at`` and the least recently
    used beyond max_entries; whether an entry is still *live* is the caller's
    comparison with its own ``now``.  A miss, most of a cold walk's probes, is
    one dict lookup (`_present`) instead of the KeyErrors cachetools raises and
    catches; *now* is taken for the day the store reads it, the TLRUCache reads
    the cache's clock itself.
    """

    __slots__ = ("_tlru", "holds")

    def __init__(self, maxsize: int, timer: Callable[[], float]) -> None:
        self._tlru: cachetools.TLRUCache = cachetools.TLRUCache(maxsize=maxsize, ttu=_ttu, timer=timer)
        # holds(key): whether the key is stored at all, due or not, without counting as a use.
        # `_present` bound to the TLRUCache, so a probe is that one call (the cache makes four a lookup).
        self.holds: Callable[[_Key], bool] = types.MethodType(_present, self._tlru)

    def use(self, key: _Key, now: float) -> _Entry | None:
        """The entry, if stored and not yet dropped; a use, for LRU."""
        tlru = self._tlru
        if not _present(tlru, key):
            return None
        try:
            return tlru[key]  # type: ignore[no-any-return]
        except KeyError:  # due: dropped now
            return None

    def peek(self, key: _Key) -> _Entry | None:
        """The entry as stored, due or not, without counting as a use.

        (A key not stored, most of `Cache.put`'s, is one dict lookup: cachetools would raise
        a KeyError from its `__missing__` and this would catch it, twice the work of the lookup.)
        """
        tlru = self._tlru
        return _stored(tlru, key) if _present(tlru, key) else None  # type: ignore[no-any-return]

    def put(self, key: _Key, entry: _Entry, now: float) -> None:
        self._tlru[key] = entry

    def pop(self, key: _Key, now: float) -> None:
        """Forget a live entry."""
        self._tlru.pop(key, None)

    def delete(self, key: _Key, now: float) -> bool:
        """Forget an entry; whether it was still stored (not dropped meanwhile)."""
        try:
            del self._tlru[key]
        except KeyError:
            return False
        return True

    def expire(self, now: float) -> None:
        """Drop every entry whose time has come."""
        self._tlru.expire()

    def live_keys(self, now: float) -> list[_Key]:
        """The keys not yet dropped, in the order first stored."""
        return list(self._tlru)

    def clear(self) -> None:
        self._tlru.clear()

    def __len__(self) -> int:
        return len(self._tlru)


# Seconds an expired positive entry is remembered when serve-stale is off.
EXPIRED_MEMORY = 300


def _fold_to_keep(name: dns.name.Name) -> tuple[bytes, ...]:
    """The key form of a name (`folded_labels`) for a key that will be stored: the name's own
    labels when they are lower case already.

    Most names arrive in lower case, and then the key shares the label tuple
    and strings the entry's Name holds anyway instead of a copy of each
    (about 190 bytes an entry for a three-label name).
    """
    labels = name.labels
    lower = folded_labels(labels)  # (a lookup has mostly folded the name already: no lowering again)
    return labels if lower == labels else lower


def _signatures(sigs: dns.rrset.RRset | None, ttl: int) -> dns.rrset.RRset | None:
    """RRSIGs travel with their RRset's TTL (RFC 4035 §2.2)."""
    return None if sigs is None else _copy_with_ttl(sigs, ttl)


def _copy_with_ttl(rrset: dns.rrset.RRset, ttl: int) -> dns.rrset.RRset:
    out = rrset.copy()
    out.ttl = ttl
    return out


class Cache:
    """RRsets and negative answers, each expiring on its own TTL, bounded by LRU eviction.

    Not thread-safe: the resolver uses it from one event loop.
    """

    def __init__(
        self,
        clock: Clock,
        settings: CacheSettings = CacheSettings(),
        rng: random.Random | None = None,
    ) -> None:
        self._clock = clock
        # The clock's now() as a plain function (time.monotonic itself for the real clock): the
        # cache and its TLRUCache's timer read it a dozen times per cold lookup.
        self._now = reader(clock)
        self._settings = settings
        self._rng = rng if rng is not None else random.Random()
        self._store = _Store(settings.max_entries, self._now)
        # The types of the positive RRsets stored since the last flush: `get_above` probes every
        # ancestor of a name for a DNAME, which is seldom anywhere, and cannot find a type never stored.
        self._types: set[int] = set()
        # Goes up whenever live data is replaced or forgotten (not when it merely
        # expires): the resolver's wire-level answers are valid only within one version.
        self.version = 0
        # Called on every flush: what is derived from cached data (the validator's
        # trusted keys) must be forgotten with it, or a flush would not start afresh.
        self.on_flush: list[Callable[[], None]] = []

    @property
    def settings(self) -> CacheSettings:
        return self._settings

    # -- positive -----------------------------------------------------------------

    def put(self, rrset: dns.rrset.RRset, rank: Rank, source: str | None = None,
            sigs: dns.rrset.RRset | None = None, zone: dns.name.Name | None = None,
            proof: tuple[dns.rrset.RRset, ...] = ()) -> bool:
        """Remember an RRset unless better data for it is still live (RFC 2181 §5.4.1).

        Returns whether it was stored.  A stored answer disproves a cached
        NODATA for its type and a cached NXDOMAIN for its name; glue and
        referral data (below ANSWER rank) do not, since a parent's glue cannot
        overrule the child zone's own authoritative denial.
        """
        settings = self._settings
        if rrset.rdclass != dns.rdataclass.IN or len(rrset) == 0:
            _log.debug("not caching %s: class %s, %d records", rrset.name, rrset.rdclass, len(rrset))
            return False
        ttl = max(settings.min_ttl, min(rrset.ttl, settings.max_ttl))
        if ttl <= 0:
            return False
        name, rdtype = rrset.name, int(rrset.rdtype)
        folded = _fold_to_keep(name)
        key = (folded, rdtype)
        now = self._now()
        store = self._store
        old = store.peek(key)
        if old is not None and now < old.expires_at and old.rank is not None and old.rank > rank:
            _log.debug(
                "kept %s/%s at rank %s over rank %s",
                name,
                dns.rdatatype.to_text(rdtype),
                old.rank.name,
                rank.name,
            )
            return False
        if old is not None and now < old.expires_at:
            # Live data changes: wire answers built from it (the resolver's fast path) are void.
            self.version += 1
        rdatas = _records(rrset)
        expires_at = now + ttl
        # Expired entries are kept a little (or for the stale window) so a trace can
        # say "expired" rather than "miss"; the LRU bound still covers them.
        drop_at = expires_at + (settings.stale_window if settings.serve_stale else EXPIRED_MEMORY)
        covers = int(rrset.covers)
        extra = _PLAIN if sigs is None and not proof and not covers else _Extra(
            sigs=_signatures(sigs, ttl), proof=proof or None, covers=covers)
        self._types.add(rdtype)
        store.put(key, _Entry(
            EntryKind.POSITIVE, name, rdtype, rdatas, rank if type(rank) is Rank else Rank(rank), ttl,
            expires_at, drop_at, source=source, zone=zone, extra=extra
        ), now)
        if rank >= Rank.ANSWER:
            nodata, nxdomain = (folded, rdtype, EntryKind.NODATA), (folded, EntryKind.NXDOMAIN)
            if store.holds(nodata):  # (most often neither is: no pop to make)
                store.pop(nodata, now)
            if store.holds(nxdomain):
                store.pop(nxdomain, now)
        return True

    def get(
        self, name: dns.name.Name, rdtype: int, rotate: bool = False
    ) -> CacheHit | None:
        """A live RRset with its TTL counted down; the iterator's and resolver's hot path.

        rotate=False is for lookups that must not disturb round-robin state,
        such as finding a delegation's NS set.
        """
        now = self._now()
        entry = self._store.use((folded_labels(name.labels), rdtype), now)
        if entry is None:
            return None
        left = entry.expires_at - now
        if left <= 0:
            return None
        # min() guards against float rounding ever showing ttl + 1.
        remaining = min(entry.ttl, math.ceil(left))
        extra = entry.extra  # (read once: `entry.sigs` and `entry.proof` are a property call each)
        sigs = extra.sigs
        return CacheHit(
            self._answer(entry, remaining, rotate), remaining, entry.ttl, entry.rank, False, entry.expires_at,
            entry, None if sigs is None else _copy_with_ttl(sigs, remaining), entry.zone, extra.proof or (),
            entry.security
        )

    def holds(self, name: dns.name.Name, rdtype: int) -> bool:
        """Whether anything is stored (live or not) that `get(name, rdtype)`, `get_negative(name,
        rdtype)` or `get(name, CNAME)` could return.  False answers all three "no" at the cost
        of one (a lookup's first step, for a name most often not in the cache at all); it is not
        a use, and neither would the three misses have been."""
        folded = folded_labels(name.labels)
        stored = self._store.holds
        return (stored((folded, rdtype)) or stored((folded, EntryKind.NXDOMAIN))
                or stored((folded, rdtype, EntryKind.NODATA)) or stored((folded, _CNAME)))

    def remembers(self, name: dns.name.Name, rdtype: int) -> bool:
        """Whether a positive entry for the question (live or expired) or a SERVFAIL for it is
        stored: False says at once that `expired_since` and `servfail` would both find nothing."""
        folded = folded_labels(name.labels)
        stored = self._store.holds
        return stored((folded, rdtype)) or stored((folded, rdtype, EntryKind.SERVFAIL))

    def addresses(self, name: dns.name.Name, rdtype: int) -> list[str]:
        """The addresses of a live A or AAAA RRset, [] without one: `get` without building an RRset.

        The iterator reads its name servers' addresses several times for each
        upstream query it sends; building an RRset for that (hashing each rdata
        from its wire form) was a tenth of a cold lookup's CPU.
        """
        return self.addresses_of((name,), rdtype)[0]

    def addresses_of(self, names: Iterable[dns.name.Name], rdtype: int) -> list[list[str]]:
        """`addresses` for each of *names* (a zone's NS names), in order, on one reading of the clock.

        The iterator asks for every NS name of a zone before each query; one call for all of
        them spares a clock read and three Python calls per name (about 2% of a cold walk).
        """
        now = self._now()
        use = self._store.use
        found: list[list[str]] = []
        for name in names:
            entry = use((folded_labels(name.labels), rdtype), now)
            found.append([] if entry is None or entry.expires_at <= now
                         else [rdata.address for rdata in entry.rdatas])  # type: ignore[attr-defined]
        return found

    def closest_delegation(self, name: dns.name.Name) -> tuple[int, list[dns.name.Name]] | None:
        """The closest live NS set at *name* or above, as (labels of the owner, NS names), or None.

        What the iterator needs to find the closest zone it knows, as `get(..., NS)` at
        each ancestor would find it, but probed by label suffix: no Name is made for each
        ancestor and no RRset for each NS set (the caller makes the one it enters).
        """
        folded = folded_labels(name.labels)
        now = self._now()
        use = self._store.use
        for cut in range(len(folded)):
            entry = use((folded[cut:], _NS), now)
            if entry is not None and entry.expires_at > now:
                return len(folded) - cut, [rdata.target for rdata in entry.rdatas]  # type: ignore[attr-defined]
        return None

    def get_above(self, name: dns.name.Name, rdtype: int, min_rank: Rank) -> CacheHit | None:
        """`get` for the closest proper ancestor of *name* with a live *rdtype* RRset of at least
        *min_rank* (a DNAME above a name): the keys are probed by label suffix, without making a
        Name for each ancestor."""
        if rdtype not in self._types:
            return None
        folded = folded_labels(name.labels)
        now = self._now()
        use = self._store.use
        for cut in range(1, len(folded)):
            entry = use((folded[cut:], rdtype), now)
            if entry is not None and entry.rank is not None and entry.rank >= min_rank:
                hit = self.get(entry.name, rdtype)
                if hit is not None:
                    return hit
        return None

    def get_stale(
        self, name: dns.name.Name, rdtype: int, rotate: bool = False
    ) -> CacheHit | None:
        """Like `get`, but after a failed refresh may fall back to expired data (RFC 8767).

        Expired data is served only with serve_stale on and within
        stale_window of its expiry; with serve_stale off this is `get`.
        """
        now = self._now()
        entry = self._store.use((folded_labels(name.labels), rdtype), now)
        if entry is None:
            return None
        left = entry.expires_at - now
        if left > 0:
            remaining = min(entry.ttl, math.ceil(left))
            return CacheHit(
                self._answer(entry, remaining, rotate), remaining, entry.ttl, entry.rank, False, entry.expires_at,
                None, _signatures(entry.sigs, remaining), entry.zone, entry.proof or (), entry.security
            )
        if not self._settings.serve_stale or now >= entry.drop_at:
            return None
        ttl = self._settings.stale_answer_ttl
        return CacheHit(self._answer(entry, ttl, rotate), ttl, entry.ttl, entry.rank, True,
                        sigs=_signatures(entry.sigs, ttl), zone=entry.zone, proof=entry.proof or (),
                        security=entry.security)

    # -- parent-side glue ------------------------------------------------------------

    def put_parent_glue(self, rrset: dns.rrset.RRset, source: str | None = None) -> None:
        """Keep a referral's glue apart from the positive entry the child's answer replaces.

        When parent and child disagree on a name server's address (a renumbered
        server, a stale glue record), the child's answer wins in `get`; but if the
        child's addresses all fail, the parent's may still work.  Unbound keeps such
        parent-side glue for its last resort too (iter_lookup_parent_glue_from_cache).
        """
        ttl = max(self._settings.min_ttl, min(rrset.ttl, self._settings.max_ttl))
        if rrset.rdclass != dns.rdataclass.IN or len(rrset) == 0 or ttl <= 0:
            return
        now = self._now()
        expires_at = now + ttl
        self._store.put((folded_labels(rrset.name.labels), int(rrset.rdtype), EntryKind.PARENT_GLUE), _Entry(
            EntryKind.PARENT_GLUE, rrset.name, int(rrset.rdtype), _records(rrset), Rank.ADDITIONAL, ttl,
            expires_at, expires_at, source=source), now)

    def get_parent_glue(self, name: dns.name.Name, rdtype: int) -> dns.rrset.RRset | None:
        """The live parent-side glue for an NS name, or None."""
        now = self._now()
        entry = self._store.use((folded_labels(name.labels), rdtype, EntryKind.PARENT_GLUE), now)
        if entry is None:
            return None
        left = entry.expires_at - now
        if left <= 0:
            return None
        return _build(entry.name, entry.rdatas, 0, min(entry.ttl, math.ceil(left)))

    # -- negative (RFC 2308) and SERVFAIL ----------------------------------------------

    def put_negative(
        self,
        name: dns.name.Name,
        rdtype: int,
        kind: NegativeKind,
        soa: dns.rrset.RRset,
        source: str | None = None,
        sigs: dns.rrset.RRset | None = None,
        zone: dns.name.Name | None = None,
        proof: tuple[dns.rrset.RRset, ...] = (),
        ns: dns.rrset.RRset | None = None,
    ) -> None:
        """Remember that a name (NXDOMAIN) or one type at it (NODATA) does not exist.

        *ns*, the zone's NS set that came with the SOA, is given back with it (with the
        negative answer's TTL) and is never used to find servers.

        The TTL is RFC 2308 §5's min(SOA TTL, SOA MINIMUM), capped by
        negative_max_ttl as Unbound caps it, so one zone's long MINIMUM
        cannot pin a negative answer after the data appears.
        """
        if soa.rdtype != dns.rdatatype.SOA or len(soa) == 0:
            raise ValueError(f"a negative answer needs an SOA RRset, not {soa!r}")
        ttl = min(soa.ttl, soa[0].minimum, self._settings.negative_max_ttl)
        if ttl <= 0:
            return
        if kind is NegativeKind.NXDOMAIN:
            key: _Key = (folded_labels(name.labels), EntryKind.NXDOMAIN)
            entry_kind, entry_type = EntryKind.NXDOMAIN, int(dns.rdatatype.ANY)
        else:
            key = (folded_labels(name.labels), int(rdtype), EntryKind.NODATA)
            entry_kind, entry_type = EntryKind.NODATA, int(rdtype)
        stored = dns.rrset.RRset(soa.name, soa.rdclass, soa.rdtype)
        stored.update(soa)
        stored.ttl = ttl
        now = self._now()
        expires_at = now + ttl
        self._store.put(key, _Entry(
            entry_kind, name, entry_type, (), None, ttl, expires_at, expires_at, source=source, zone=zone,
            extra=_Extra(sigs=sigs, proof=proof or None, soa=stored, ns=ns.copy() if ns is not None else None)
        ), now)

    def get_negative(self, name: dns.name.Name, rdtype: int) -> NegativeHit | None:
        """A live negative answer; NXDOMAIN first, because it covers every type."""
        now = self._now()
        folded = folded_labels(name.labels)
        for key, kind in (
            ((folded, EntryKind.NXDOMAIN), NegativeKind.NXDOMAIN),
            ((folded, rdtype, EntryKind.NODATA), NegativeKind.NODATA),
        ):
            entry = self._store.use(key, now)
            if entry is None:
                continue
            left = entry.expires_at - now
            if left > 0:
                remaining = min(entry.ttl, math.ceil(left))
                soa = entry.extra.soa
                assert soa is not None
                return NegativeHit(kind, _copy_with_ttl(soa, remaining), remaining, entry.expires_at,
                                   entry.ttl, _signatures(entry.sigs, remaining), entry.zone,
                                   tuple(_copy_with_ttl(r, min(r.ttl, remaining)) for r in entry.proof or ()),
                                   entry.security,
                                   None if entry.extra.ns is None else _copy_with_ttl(entry.extra.ns, remaining))
        return None

    def put_servfail(self, name: dns.name.Name, rdtype: int, reason: str = "", ede: int | None = None,
                     ttl: int | None = None) -> None:
        """Remember a failed resolution briefly, so a client's retries do not
        each become a fresh walk of the hierarchy (RFC 2308 §7.1; Unbound
        likewise keeps SERVFAIL replies for a few seconds)."""
        if ttl is None:
            ttl = self._settings.servfail_ttl
        if ttl <= 0:
            return
        now = self._now()
        expires_at = now + ttl
        self._store.put((folded_labels(name.labels), int(rdtype), EntryKind.SERVFAIL), _Entry(
            EntryKind.SERVFAIL, name, int(rdtype), (), None, ttl, expires_at, expires_at,
            extra=_Extra(reason=reason, ede=ede) if reason or ede is not None else _PLAIN
        ), now)

    def is_servfail(self, name: dns.name.Name, rdtype: int) -> bool:
        """Whether to answer SERVFAIL at once instead of resolving again."""
        return self.servfail(name, rdtype) is not None

    def servfail(self, name: dns.name.Name, rdtype: int) -> tuple[str, int | None] | None:
        """A live remembered SERVFAIL as (reason, Extended DNS Error code), or None."""
        now = self._now()
        entry = self._store.use((folded_labels(name.labels), rdtype, EntryKind.SERVFAIL), now)
        if entry is None or now >= entry.expires_at:
            return None
        return entry.extra.reason, entry.extra.ede

    def set_security(self, name: dns.name.Name, rdtype: int, rrset: dns.rrset.RRset | None,
                     security: str, negative: NegativeKind | None = None, valid_for: float | None = None) -> None:
        """Record the validator's verdict on a stored entry, if it still holds what was validated.

        Later answers from the entry reuse the verdict instead of checking
        signatures again (Unbound keeps a security status with every cached RRset).
        *valid_for* (seconds until its signatures expire) shortens the entry's life
        to match, as RFC 4035 §5.3.3 asks: secure data never outlives its RRSIGs.
        """
        if negative is NegativeKind.NXDOMAIN:
            key: _Key = (folded_labels(name.labels), EntryKind.NXDOMAIN)
        elif negative is NegativeKind.NODATA:
            key = (folded_labels(name.labels), int(rdtype), EntryKind.NODATA)
        else:
            key = (folded_labels(name.labels), int(rdtype))
        entry = self._store.peek(key)
        if entry is None or entry.kind is EntryKind.SERVFAIL:
            return
        if rrset is not None and negative is None and set(entry.rdatas) != set(rrset):
            return
        entry.security = security
        if valid_for is not None:
            limit = self._now() + max(0.0, valid_for)
            if limit < entry.expires_at:
                entry.expires_at = limit
                entry.drop_at = min(entry.drop_at, limit + EXPIRED_MEMORY)
                self.version += 1

    # -- administration -----------------------------------------------------------

    def flush(self) -> None:
        self._store.clear()
        self._types.clear()
        self.version += 1
        for listener in self.on_flush:
            listener()

    def flush_name(self, name: dns.name.Name, subtree: bool = False) -> int:
        """Forget everything at a name (or, with subtree, at and below it); returns the count.

        A linear scan: this is an operator's command, not a query path.
        """
        removed = 0
        self.version += 1
        for listener in self.on_flush:
            listener()
        store = self._store
        for key in store.live_keys(self._now()):
            entry = store.peek(key)
            if entry is None:
                continue
            owner = entry.name
            if owner == name or (subtree and owner.is_subdomain(name)):
                if store.delete(key, self._now()):  # (not if it expired between the scan and now)
                    removed += 1
        return removed

    def expired_since(self, name: dns.name.Name, rdtype: int) -> float | None:
        """Seconds since a positive entry expired, if it is still remembered; None if live or unknown.

        Lets a trace tell "expired" from "never seen"; does not count as a use.
        """
        entry = self._store.peek((folded_labels(name.labels), rdtype))
        now = self._now()
        if entry is None or now >= entry.drop_at:
            return None
        since = now - entry.expires_at
        return since if since >= 0 else None

    def entries(self) -> Iterator[EntryView]:
        """Every live entry, and with serve-stale the stale ones; reading is not a "use" for LRU."""
        now = self._now()
        store = self._store
        for key in store.live_keys(now):
            entry = store.peek(key)
            if entry is None or now >= entry.drop_at:
                continue
            left = entry.expires_at - now
            stale = left <= 0
            if stale and not self._settings.serve_stale:
                continue
            remaining = 0 if stale else min(entry.ttl, math.ceil(left))
            rrset = entry.rrset(remaining)
            yield EntryView(
                entry.name,
                entry.rdtype,
                entry.kind,
                remaining,
                entry.ttl,
                entry.rank,
                stale,
                rrset,
                entry.source,
            )

    def __len__(self) -> int:
        """Entries held, stale ones included: the number max_entries bounds."""
        self._store.expire(self._now())
        return len(self._store)

    # -- internals ----------------------------------------------------------------

    def _answer(self, entry: _Entry, ttl: int, rotate: bool) -> dns.rrset.RRset:
        """The caller's copy of a stored RRset, in rotated order when asked."""
        rdatas = entry.rdatas
        covers = entry.extra.covers
        if not rotate or len(rdatas) < 2:
            return _build(entry.name, rdatas, covers, ttl)
        rotation = self._settings.rotation
        if rotation is Rotation.CYCLIC:
            start = entry.turn % len(rdatas)
            entry.turn += 1
            if start:
                ordered = list(rdatas)
                return _build(entry.name, ordered[start:] + ordered[:start], covers, ttl)
        elif rotation is Rotation.RANDOM:
            shuffled = list(rdatas)
            self._rng.shuffle(shuffled)
            return _build(entry.name, shuffled, covers, ttl)
        return _build(entry.name, rdatas, covers, ttl)
