"""Sort an upstream reply into what it means, keeping only data the server may speak for.

Modelled on Unbound's iter_resptype.c (what kind of reply is this?) and
iter_scrub.c (what in it may be believed?).  Every record kept here is inside
the bailiwick of the zone we asked, so a server for example.com can never
plant data for example.org in the cache (RFC 2181 §5.4.1, the Kaminsky-era
scrubbing every resolver does).  Pure functions: messages in, values out.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

import dns.flags
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.CNAME
import dns.rrset

from dnslab.core.reader import AnyReply

RdataType = dns.rdatatype.RdataType
# Plain ints for the header bits and rcodes read here: `flags & dns.flags.AA` on an int makes
# an enum member, and a classification is made for every upstream reply.
_AA = int(dns.flags.AA)
_NOERROR, _FORMERR, _NXDOMAIN, _YXDOMAIN = (int(dns.rcode.NOERROR), int(dns.rcode.FORMERR),
                                            int(dns.rcode.NXDOMAIN), int(dns.rcode.YXDOMAIN))


class ReplyKind(enum.Enum):
    """What a reply tells the iterator to do next."""

    ANSWER = "answer"            # the data for the question (possibly after in-zone CNAMEs)
    CNAME = "cname"              # a chain that leaves the zone: restart at its target
    REFERRAL = "referral"        # a delegation to a zone below the one asked
    NXDOMAIN = "nxdomain"
    NODATA = "nodata"
    LAME = "lame"                # no authority, no referral, or a referral sideways or up
    ERROR = "error"              # SERVFAIL, REFUSED, NOTIMP or another failing rcode
    FORMERR = "formerr"          # the server could not parse our query (perhaps its EDNS)
    YXDOMAIN = "yxdomain"        # a DNAME whose substitution is too long a name (RFC 6672 §2.2): final


@dataclass
class Classified:
    kind: ReplyKind
    authoritative: bool = False
    # The answer section as a resolver may use it: CNAMEs, DNAMEs and the data, in chain order.
    chain: list[dns.rrset.RRset] = field(default_factory=list)
    # Where the chain ends: the name whose data is in `answer`, or the next name to resolve.
    target: dns.name.Name | None = None
    answer: dns.rrset.RRset | None = None
    # Referral: the child zone, its NS set and the glue inside the asked zone's bailiwick.
    child: dns.name.Name | None = None
    ns: dns.rrset.RRset | None = None
    glue: list[dns.rrset.RRset] = field(default_factory=list)
    soa: dns.rrset.RRset | None = None
    # The zone's own NS set when it came beside the SOA (a negative answer passes it on,
    # as Knot Resolver does; it is never cached as a delegation: see iter_domain_sale).
    zone_ns: dns.rrset.RRset | None = None
    rcode: int = _NOERROR
    dropped: int = 0             # records scrubbed as out of bailiwick or unrelated
    # DNSSEC (present when we asked with DO=1 and the zone is signed): the RRSIGs over
    # the RRsets above by (owner, type covered), the NSEC/NSEC3 RRsets of the authority
    # section (denial, or a wildcard expansion's proof), and a referral's DS set.
    sigs: dict[tuple[dns.name.Name, int], dns.rrset.RRset] = field(default_factory=dict)
    proof: list[dns.rrset.RRset] = field(default_factory=list)
    ds: dns.rrset.RRset | None = None
    # CNAMEs the server sent below a DNAME that contradict its synthesis (RFC 6672 §3.2): owner ->
    # the target the server claimed. The chain has the synthesised CNAME instead; a validating
    # resolver calls such an answer from a signed DNAME bogus (see the validator).
    forged: dict[dns.name.Name, dns.name.Name] = field(default_factory=dict)
    # LAME only: nothing usable at all (not an upward referral).  Unbound takes such an
    # empty reply as NODATA once it has come twice, from this server or another one.
    empty: bool = False

    def signed(self, rrset: dns.rrset.RRset) -> dns.rrset.RRset | None:
        """The RRSIGs over *rrset* that came in the same reply."""
        return self.sigs.get((rrset.name, rrset.rdtype))

    def proof_with_sigs(self) -> tuple[dns.rrset.RRset, ...]:
        """The proof RRsets followed by their RRSIGs, as a cache entry keeps them."""
        sigs = [self.sigs[(r.name, r.rdtype)] for r in self.proof if (r.name, r.rdtype) in self.sigs]
        return tuple(self.proof) + tuple(sigs)


def classify(reply: AnyReply, qname: dns.name.Name, qtype: int, zone: dns.name.Name, *,
             harden_glue: bool = True) -> Classified:
    """Classify *reply* to the question (qname, qtype) sent to a server for *zone*.

    *harden_glue* False (Unbound's harden-glue: no) keeps a referral's addresses for
    its NS names even outside the delegating zone's bailiwick.
    """
    rcode = reply.rcode()
    authoritative = bool(reply.flags & _AA)
    if rcode == _FORMERR:
        return Classified(ReplyKind.FORMERR, rcode=rcode)
    if rcode == _YXDOMAIN:
        dname = _too_long_dname(reply, qname, zone)
        if dname is not None:
            return Classified(ReplyKind.YXDOMAIN, authoritative=authoritative, chain=[dname], rcode=rcode)
    if rcode != _NOERROR and rcode != _NXDOMAIN:
        return Classified(ReplyKind.ERROR, rcode=rcode)

    result = Classified(ReplyKind.ANSWER, authoritative=authoritative, rcode=rcode)
    if reply.answer:
        in_zone = [rrset for rrset in reply.answer if rrset.name.is_subdomain(zone)]
        result.dropped += len(reply.answer) - len(in_zone)
        signatures = [rrset for rrset in in_zone if rrset.rdtype == RdataType.RRSIG and qtype != RdataType.RRSIG]
        if signatures:
            in_zone = [rrset for rrset in in_zone if rrset.rdtype != RdataType.RRSIG]
        name = _follow_chain(in_zone, qname, qtype, zone, result)
        chain = result.chain
        if not (len(in_zone) == 1 and chain and chain[0] is in_zone[0]):  # else the one RRset was used
            used = {id(rrset) for rrset in chain}
            result.dropped += sum(1 for rrset in in_zone if id(rrset) not in used)
        _keep_signatures(signatures, result.chain, result)
    else:
        name = qname  # no chain to follow (a referral, a denial)
    result.target = name

    soa = _find(reply.authority, RdataType.SOA)
    if soa is not None and soa.name.is_subdomain(zone) and name.is_subdomain(soa.name):
        result.soa = soa
        result.zone_ns = next((rrset for rrset in reply.authority
                               if rrset.rdtype == RdataType.NS and rrset.name == soa.name), None)
    _keep_dnssec_authority(reply, zone, result)

    if result.answer is not None:
        if result.answer.rdtype == RdataType.NS:
            # Addresses of the NS names, as a priming reply carries them (RFC 8109 §3).
            result.glue = _glue(reply, result.answer, zone, harden_glue)
        return result
    if result.chain and not name.is_subdomain(zone):
        result.kind = ReplyKind.CNAME
        return result
    if rcode == _NXDOMAIN:
        # Unbound takes any NXDOMAIN with something of the zone in it as the answer; only
        # an empty one (not authoritative, nothing to go on) is lame.
        vouched = authoritative or result.soa is not None or any(
            rrset.name.is_subdomain(zone) for rrset in reply.authority)
        result.kind = ReplyKind.NXDOMAIN if vouched else ReplyKind.LAME
        return result
    if result.soa is not None and result.chain:
        # A CNAME/DNAME chain, then an SOA: Unbound (iter_resptype.c) calls any answer
        # section that ends in a CNAME without the data RESPONSE_TYPE_CNAME and asks for the
        # target itself, rather than trust a denial the server gave for a name it was not
        # asked about (val_dname: a denial of the target whose NSEC lists the very type).
        # The denial's NSEC/NSEC3 go with it, unless they prove a wildcard expansion of the chain.
        result.kind = ReplyKind.CNAME
        result.soa = result.zone_ns = None
        if not any(_expanded(rrset, result.signed(rrset)) for rrset in result.chain):
            result.proof = []
        return result
    if result.soa is not None:
        # An SOA above the name says NODATA, whatever else the authority section holds
        # (Unbound's iter_resptype.c looks at the SOA before any NS set).
        result.kind = ReplyKind.NODATA
        return result
    if not result.chain:
        ns = [rrset for rrset in reply.authority if rrset.rdtype == RdataType.NS]
        referral = _referral(ns, name, zone)
        if referral is not None:
            # A delegation below the zone asked is a referral even with AA=1: some servers
            # set it wrongly, and taking it as NODATA would deny a name that exists (Unbound
            # does the same).
            result.kind = ReplyKind.REFERRAL
            result.child, result.ns = referral.name, referral
            result.glue = _glue(reply, referral, zone, harden_glue)
            result.ds = next((rrset for rrset in reply.authority
                              if rrset.rdtype == RdataType.DS and rrset.name == referral.name), None)
            return result
        if any(zone != rrset.name and zone.is_subdomain(rrset.name) for rrset in ns):
            # A referral upwards (to the root, say) is lame even with AA=1: the server
            # does not serve the zone we asked it for.
            result.kind = ReplyKind.LAME
            return result
        if authoritative:
            result.kind = ReplyKind.NODATA
            return result
        # Not authoritative and nothing usable: lame, unless it keeps happening (see
        # Classified.empty); a server's NS set for the zone itself is not "nothing" (the
        # iterator reads it as "no cut here" for a minimised query).
        result.zone_ns = next((rrset for rrset in ns if rrset.name == zone), None)
        # Empty means nothing at all in authority and additional (an answer section of other
        # types only, or nothing): a sideways referral, stray glue or NSEC/NSEC3 without an
        # SOA (a broken denial) say something is wrong, and stay lame.
        result.empty = not reply.authority and not reply.additional
        result.kind = ReplyKind.LAME
        return result
    # An in-zone chain the server did not finish (its target is delegated
    # further down, say): resolve the target afresh.
    result.kind = ReplyKind.CNAME
    return result


def _follow_chain(rrsets: list[dns.rrset.RRset], qname: dns.name.Name, qtype: int, zone: dns.name.Name,
                  result: Classified) -> dns.name.Name:
    """Walk CNAME and DNAME records from qname, as a resolver reads an answer section.

    A DNAME's synthesised CNAME is re-derived rather than trusted (RFC 6672 §3.4):
    the server might have sent a CNAME that does not follow from its DNAME.
    """
    name = qname
    seen: list[dns.name.Name] = []  # a chain is a few names long: a list beats hashing them
    used_dnames: set[int] = set()
    dnames = [r for r in rrsets if r.rdtype == RdataType.DNAME]  # nearly always none
    while name not in seen:
        seen.append(name)
        dname = next((r for r in dnames if name.is_subdomain(r.name) and name != r.name), None) if dnames else None
        # A CNAME question below a DNAME is answered by the synthesis (RFC 6672 §3.2): the
        # server's CNAME there is no data of its own, and the DNAME belongs in the chain.
        data = None
        if qtype != RdataType.CNAME or dname is None:
            for r in rrsets:
                if r.rdtype == qtype and r.name == name:
                    data = r
                    break
        if data is not None or qtype == RdataType.ANY:
            if data is not None and qtype != RdataType.ANY:  # (no list and no generator to add it)
                result.chain.append(data)
                result.answer = data
                return name
            matching = [r for r in rrsets if r.name == name]
            if matching:
                result.chain.extend(matching)
                result.answer = matching[-1]
            return name
        # A DNAME above the name is looked for before a CNAME at it: when both are
        # there, the CNAME claims to be the DNAME's synthesis and must not be the
        # one believed, or a forged CNAME beside a genuine DNAME would steer us.
        if dname is None:
            cname = next((r for r in rrsets if r.name == name and r.rdtype == RdataType.CNAME), None)
            if cname is None:
                return name
            result.chain.append(cname)
            name = cname[0].target  # type: ignore[attr-defined]
            if not name.is_subdomain(zone):
                return name
            continue
        if id(dname) in used_dnames:
            # A DNAME that applies to its own target (d DNAME x.d.) would grow
            # the name until it is too long; once per reply is all a resolver needs.
            return name
        used_dnames.add(id(dname))
        try:
            target = name.relativize(dname.name).derelativize(dname[0].target)  # type: ignore[attr-defined]
        except dns.name.NameTooLong:
            return name
        sent = next((r for r in rrsets if r.name == name and r.rdtype == RdataType.CNAME), None)
        if sent is not None and sent[0].target != target:  # type: ignore[attr-defined]
            result.forged[name] = sent[0].target  # type: ignore[attr-defined]
        result.chain.append(dname)
        result.chain.append(synthesise_cname(name, target, dname.ttl))
        if qtype == RdataType.CNAME:
            result.answer = result.chain[-1]
            return name
        name = target
        if not name.is_subdomain(zone):
            return name
    return name


def _too_long_dname(reply: AnyReply, qname: dns.name.Name,
                    zone: dns.name.Name) -> dns.rrset.RRset | None:
    """The in-zone DNAME above qname whose substitution would exceed 255 octets, if the reply has it."""
    for rrset in reply.answer:
        if (rrset.rdtype == RdataType.DNAME and rrset.name.is_subdomain(zone) and qname != rrset.name
                and qname.is_subdomain(rrset.name)):
            try:
                qname.relativize(rrset.name).derelativize(rrset[0].target)  # type: ignore[attr-defined]
            except dns.name.NameTooLong:
                return rrset
    return None


def synthesise_cname(owner: dns.name.Name, target: dns.name.Name, ttl: int) -> dns.rrset.RRset:
    rrset = dns.rrset.RRset(owner, dns.rdataclass.IN, RdataType.CNAME)
    rrset.add(dns.rdtypes.ANY.CNAME.CNAME(dns.rdataclass.IN, RdataType.CNAME, target), ttl)
    return rrset


def _referral(ns: list[dns.rrset.RRset], qname: dns.name.Name, zone: dns.name.Name) -> dns.rrset.RRset | None:
    """An NS set strictly below the asked zone and above (or at) the name: a real delegation."""
    for rrset in ns:
        if (rrset.name != zone and rrset.name.is_subdomain(zone)
                and qname.is_subdomain(rrset.name)):
            return rrset
    return None


def _glue(reply: AnyReply, ns: dns.rrset.RRset, zone: dns.name.Name,
          harden_glue: bool = True) -> list[dns.rrset.RRset]:
    """Addresses of the referral's NS names, only where the delegating zone may speak for them
    (anywhere, with *harden_glue* off)."""
    targets = {rdata.target for rdata in ns}  # type: ignore[attr-defined]
    return [rrset for rrset in reply.additional
            if rrset.rdtype in (RdataType.A, RdataType.AAAA) and rrset.name in targets
            and (rrset.name.is_subdomain(zone) or not harden_glue)]


_DNSSEC_TYPES = frozenset({RdataType.RRSIG, RdataType.NSEC, RdataType.NSEC3})


def _expanded(rrset: dns.rrset.RRset, sigs: dns.rrset.RRset | None) -> bool:
    """Whether an RRSIG shows *rrset* was expanded from a wildcard (RFC 4035 §5.3.4: fewer labels)."""
    labels = len(rrset.name) - 1 - (1 if rrset.name.labels[0] == b"*" else 0)
    return any(sig.labels < labels for sig in sigs or ())  # type: ignore[attr-defined]


def _keep_signatures(signatures: list[dns.rrset.RRset], kept: list[dns.rrset.RRset], result: Classified) -> None:
    """RRSIGs are believed only for RRsets that were kept (a validator checks them anyway)."""
    if not signatures:
        return  # an unsigned zone, or DO=0: nothing to pair (and Name hashing is not free)
    wanted = {(rrset.name, rrset.rdtype) for rrset in kept}
    for sig in signatures:
        key = (sig.name, sig.covers)
        if key in wanted:
            result.sigs[key] = sig


def _keep_dnssec_authority(reply: AnyReply, zone: dns.name.Name, result: Classified) -> None:
    """NSEC/NSEC3 records, a referral's DS and the RRSIGs over them and the SOA, inside the zone."""
    kept: list[dns.rrset.RRset] = []
    signatures: list[dns.rrset.RRset] = []
    for rrset in reply.authority:
        if rrset.rdtype in _DNSSEC_TYPES:
            break
    else:
        return  # nothing of DNSSEC (a loop: this runs for every reply, and a generator costs more)
    for rrset in reply.authority:
        if not rrset.name.is_subdomain(zone):
            continue
        if rrset.rdtype in (RdataType.NSEC, RdataType.NSEC3):
            result.proof.append(rrset)
            kept.append(rrset)
        elif rrset.rdtype in (RdataType.SOA, RdataType.DS):
            kept.append(rrset)
        elif rrset.rdtype == RdataType.RRSIG:
            signatures.append(rrset)
    _keep_signatures(signatures, kept, result)


def _find(rrsets: list[dns.rrset.RRset], rdtype: int) -> dns.rrset.RRset | None:
    for rrset in rrsets:
        if rrset.rdtype == rdtype:
            return rrset
    return None
