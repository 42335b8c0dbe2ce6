"""The authoritative lookup, as a table: zones, a question, and the exact reply.

Every expectation was checked against NSD 4.6.1 serving the same zones with
``minimal-responses: yes`` (the behaviour dnslab copies); the few places where
dnslab deliberately differs (the spelling of names, ANY) say why.  Sections are compared as sorted lists of
presentation-format records, so order within a section does not matter but
every record, TTL and duplicate does.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Iterable

import dns.name
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest

from dnslab.authority.lookup import Authority, Outcome, Response
from dnslab.core.zone import load_zone_text

# --- zones -----------------------------------------------------------------------------

DS_SUB = "49FD46E6C4B45C55D4AC49FD46E6C4B45C55D4AC49FD46E6C4B45C55D4AC0000"
DS_CHILD = "0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF"
# 3 * 61 + len("example.net.") + 1 = 196 octets: short prefixes fit, long ones overflow 255.
LONG_TARGET = f"{'a' * 60}.{'b' * 60}.{'c' * 60}.example.net."

COM = f"""
$ORIGIN example.com.
$TTL 3600
@         IN SOA ns1 hostmaster 2024010101 7200 900 1209600 300
@         NS    ns1
@         NS    ns2
@         NS    ns.example.net.
@         MX    10 mail
ns1       A     192.0.2.53
ns1       AAAA  2001:db8::53
ns2       A     192.0.2.54
mail      A     192.0.2.25
www       A     192.0.2.1
www       A     192.0.2.2
www       AAAA  2001:db8::1
www       TXT   "web server"
alias     CNAME www
alias2    CNAME alias
external  CNAME www.example.net.
toorg     CNAME www.example.org.
tochild   CNAME www.child
tonx      CNAME nothere
tosub     CNAME host.sub
loop1     CNAME loop2
loop2     CNAME loop1
a.b.ent   A     192.0.2.7
; a delegation to a child this server does not serve, glue with A and AAAA
sub       NS    ns.sub
sub       NS    ns6.sub
sub       NS    ns.example.net.
sub       DS    12345 13 2 {DS_SUB}
ns.sub    A     192.0.2.100
ns.sub    AAAA  2001:db8::100
ns6.sub   AAAA  2001:db8::106
; a delegation to child.example.com, which some servers below also serve
child     NS    ns1.child
child     DS    54321 13 2 {DS_CHILD}
ns1.child A     192.0.2.60
; a delegation without DS
nods      NS    ns.nods
ns.nods   A     192.0.2.70
; a delegation to name servers elsewhere in this zone and in another served zone
other     NS    ns1
other     NS    ns1.example.org.
; sibling glue: the name server lives under another delegation
sib       NS    ns.nods
; wildcards
*.w       A     192.0.2.50
*.w       TXT   "wild"
host.w    AAAA  2001:db8::50
x.ent.w   A     192.0.2.51
d.w       NS    ns.d.w
ns.d.w    A     192.0.2.52
*.wc      CNAME www
; DNAME
dn        DNAME example.org.
dnx       DNAME example.net.
long      DNAME {LONG_TARGET}
todn      CNAME www.dn
selfd     DNAME sub.selfd.example.com.
"""

CHILD = """
$ORIGIN child.example.com.
$TTL 600
@         SOA   ns1 hostmaster 7 3600 900 604800 900
@         NS    ns1
ns1       A     192.0.2.60
www       A     192.0.2.61
"""

ORG = """
$ORIGIN example.org.
$TTL 300
@         SOA   ns1 hostmaster 1 3600 900 604800 600
@         NS    ns1
@         NS    ns1.example.com.
ns1       A     192.0.2.80
www       A     192.0.2.81
x         CNAME www
back      CNAME www.dn.example.com.
"""

ONLY_COM = (COM,)
ALL = (COM, CHILD, ORG)
# The same zones handed over child first: the closest enclosing zone must win regardless.
ALL_CHILD_FIRST = (CHILD, ORG, COM)

# --- records that recur in expectations ---------------------------------------------------

# RFC 2308 §3: TTL min(SOA TTL, MINIMUM): min(3600, 300), min(600, 900), min(300, 600).
COM_NEG = "example.com. 300 IN SOA ns1.example.com. hostmaster.example.com. 2024010101 7200 900 1209600 300"
CHILD_NEG = "child.example.com. 600 IN SOA ns1.child.example.com. hostmaster.child.example.com. 7 3600 900 604800 900"
ORG_NEG = "example.org. 300 IN SOA ns1.example.org. hostmaster.example.org. 1 3600 900 604800 600"
COM_SOA = "example.com. 3600 IN SOA ns1.example.com. hostmaster.example.com. 2024010101 7200 900 1209600 300"

COM_NS = [
    "example.com. 3600 IN NS ns1.example.com.",
    "example.com. 3600 IN NS ns2.example.com.",
    "example.com. 3600 IN NS ns.example.net.",
]
COM_NS_ADDRESSES = [
    "ns1.example.com. 3600 IN A 192.0.2.53",
    "ns1.example.com. 3600 IN AAAA 2001:db8::53",
    "ns2.example.com. 3600 IN A 192.0.2.54",
]
WWW_A = ["www.example.com. 3600 IN A 192.0.2.1", "www.example.com. 3600 IN A 192.0.2.2"]
WWW_AAAA = ["www.example.com. 3600 IN AAAA 2001:db8::1"]
WWW_TXT = ['www.example.com. 3600 IN TXT "web server"']
SUB_NS = [
    "sub.example.com. 3600 IN NS ns.sub.example.com.",
    "sub.example.com. 3600 IN NS ns6.sub.example.com.",
    "sub.example.com. 3600 IN NS ns.example.net.",
]
SUB_GLUE = [
    "ns.sub.example.com. 3600 IN A 192.0.2.100",
    "ns.sub.example.com. 3600 IN AAAA 2001:db8::100",
    "ns6.sub.example.com. 3600 IN AAAA 2001:db8::106",
]
CHILD_REFERRAL_NS = ["child.example.com. 3600 IN NS ns1.child.example.com."]
CHILD_GLUE = ["ns1.child.example.com. 3600 IN A 192.0.2.60"]
DN = ["dn.example.com. 3600 IN DNAME example.org."]
ORG_WWW_A = ["www.example.org. 300 IN A 192.0.2.81"]


# --- the table -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    id: str
    zones: tuple[str, ...]
    question: str  # "qname qtype"
    rcode: str
    aa: bool
    outcome: Outcome
    answer: tuple[str, ...] = ()
    authority: tuple[str, ...] = ()
    additional: tuple[str, ...] = ()


def case(id: str, zones: tuple[str, ...], question: str, rcode: str, aa: bool, outcome: Outcome, *,
         answer: Iterable[str] = (), authority: Iterable[str] = (), additional: Iterable[str] = ()) -> Case:
    return Case(id, zones, question, rcode, aa, outcome, tuple(answer), tuple(authority), tuple(additional))


A, REF, NOD, NXD, RFD, YXD = (Outcome.ANSWER, Outcome.REFERRAL, Outcome.NODATA, Outcome.NXDOMAIN,
                              Outcome.REFUSED, Outcome.YXDOMAIN)

CASES = [
    # --- authoritative data -----------------------------------------------------------
    case("answer-whole-rrset", ONLY_COM, "www.example.com. A", "NOERROR", True, A, answer=WWW_A),
    case("answer-aaaa", ONLY_COM, "www.example.com. AAAA", "NOERROR", True, A, answer=WWW_AAAA),
    # Owners keep the zone's spelling (RFC 4343 allows either); NSD's replies echo the
    # query's spelling only because its name compression points back at the question.
    case("answer-case-insensitive", ONLY_COM, "WWW.EXAMPLE.COM. A", "NOERROR", True, A, answer=WWW_A),
    case("answer-soa-at-apex", ONLY_COM, "example.com. SOA", "NOERROR", True, A, answer=[COM_SOA]),
    case("answer-mx-minimal-no-additional", ONLY_COM, "example.com. MX", "NOERROR", True, A,
         answer=["example.com. 3600 IN MX 10 mail.example.com."]),
    case("answer-ns-at-apex-with-addresses", ONLY_COM, "example.com. NS", "NOERROR", True, A,
         answer=COM_NS, additional=COM_NS_ADDRESSES),
    case("answer-ns-at-apex-case-insensitive", ONLY_COM, "Example.COM. NS", "NOERROR", True, A,
         answer=COM_NS, additional=COM_NS_ADDRESSES),
    # example.org's ns1.example.com. is out of zone: its address is not added, even when served.
    case("answer-ns-at-apex-out-of-zone-ns-name", ALL, "example.org. NS", "NOERROR", True, A,
         answer=["example.org. 300 IN NS ns1.example.org.", "example.org. 300 IN NS ns1.example.com."],
         additional=["ns1.example.org. 300 IN A 192.0.2.80"]),
    # ANY returns every RRset at the name (RFC 1034 §4.3.2).  NSD 4.6.1 returns a single
    # RRset instead (RFC 8482 §4.1 permits that: A, AAAA, SOA, MX or PTR first); kept.
    case("answer-any-at-name", ONLY_COM, "www.example.com. ANY", "NOERROR", True, A,
         answer=WWW_A + WWW_AAAA + WWW_TXT),
    case("answer-any-at-apex", ONLY_COM, "example.com. ANY", "NOERROR", True, A,
         answer=[COM_SOA, "example.com. 3600 IN MX 10 mail.example.com."] + COM_NS),
    case("answer-any-at-cname-not-chased", ONLY_COM, "alias.example.com. ANY", "NOERROR", True, A,
         answer=["alias.example.com. 3600 IN CNAME www.example.com."]),
    # --- negative answers -------------------------------------------------------------
    case("nxdomain", ONLY_COM, "nothere.example.com. A", "NXDOMAIN", True, NXD, authority=[COM_NEG]),
    case("nxdomain-below-existing-name", ONLY_COM, "x.www.example.com. A", "NXDOMAIN", True, NXD,
         authority=[COM_NEG]),
    case("nxdomain-soa-ttl-is-soa-ttl-when-smaller", ALL, "nothere.example.org. A", "NXDOMAIN", True, NXD,
         authority=[ORG_NEG]),
    case("nodata", ONLY_COM, "www.example.com. MX", "NOERROR", True, NOD, authority=[COM_NEG]),
    case("nodata-empty-non-terminal", ONLY_COM, "b.ent.example.com. A", "NOERROR", True, NOD,
         authority=[COM_NEG]),
    case("nodata-empty-non-terminal-two-up", ONLY_COM, "ent.example.com. A", "NOERROR", True, NOD,
         authority=[COM_NEG]),
    case("nodata-any-at-empty-non-terminal", ONLY_COM, "ent.example.com. ANY", "NOERROR", True, NOD,
         authority=[COM_NEG]),
    case("nxdomain-below-empty-non-terminal", ONLY_COM, "c.b.ent.example.com. A", "NXDOMAIN", True, NXD,
         authority=[COM_NEG]),
    # --- not ours ---------------------------------------------------------------------
    case("refused-out-of-every-zone", ONLY_COM, "www.example.net. A", "REFUSED", False, RFD),
    case("refused-parent-of-served-zone", ONLY_COM, "com. NS", "REFUSED", False, RFD),
    case("refused-unserved-sibling", ONLY_COM, "www.example.org. A", "REFUSED", False, RFD),
    # --- referrals ----------------------------------------------------------------------
    case("referral-below-cut", ONLY_COM, "host.sub.example.com. A", "NOERROR", False, REF,
         authority=SUB_NS, additional=SUB_GLUE),
    case("referral-at-cut", ONLY_COM, "sub.example.com. A", "NOERROR", False, REF,
         authority=SUB_NS, additional=SUB_GLUE),
    case("referral-ns-query-at-cut", ONLY_COM, "sub.example.com. NS", "NOERROR", False, REF,
         authority=SUB_NS, additional=SUB_GLUE),
    case("referral-any-at-cut", ONLY_COM, "sub.example.com. ANY", "NOERROR", False, REF,
         authority=SUB_NS, additional=SUB_GLUE),
    case("referral-for-glue-name", ONLY_COM, "ns.sub.example.com. A", "NOERROR", False, REF,
         authority=SUB_NS, additional=SUB_GLUE),
    case("referral-case-insensitive", ONLY_COM, "HOST.SUB.example.com. A", "NOERROR", False, REF,
         authority=SUB_NS, additional=SUB_GLUE),
    case("referral-child-not-served", ONLY_COM, "www.child.example.com. A", "NOERROR", False, REF,
         authority=CHILD_REFERRAL_NS, additional=CHILD_GLUE),
    # Addresses of NS names elsewhere in the zone come along; another zone's do not.
    case("referral-ns-names-in-zone-and-other-zone", ALL, "host.other.example.com. A", "NOERROR", False, REF,
         authority=["other.example.com. 3600 IN NS ns1.example.com.",
                    "other.example.com. 3600 IN NS ns1.example.org."],
         additional=["ns1.example.com. 3600 IN A 192.0.2.53", "ns1.example.com. 3600 IN AAAA 2001:db8::53"]),
    case("referral-sibling-glue", ONLY_COM, "host.sib.example.com. A", "NOERROR", False, REF,
         authority=["sib.example.com. 3600 IN NS ns.nods.example.com."],
         additional=["ns.nods.example.com. 3600 IN A 192.0.2.70"]),
    case("ds-at-cut-from-parent", ONLY_COM, "sub.example.com. DS", "NOERROR", True, A,
         answer=[f"sub.example.com. 3600 IN DS 12345 13 2 {DS_SUB.lower()}"]),
    case("ds-at-cut-without-ds-nodata-from-parent", ONLY_COM, "nods.example.com. DS", "NOERROR", True, NOD,
         authority=[COM_NEG]),
    case("ds-below-cut-is-referral", ONLY_COM, "x.sub.example.com. DS", "NOERROR", False, REF,
         authority=SUB_NS, additional=SUB_GLUE),
    case("ds-at-apex-parent-not-served", ONLY_COM, "example.com. DS", "NOERROR", True, NOD,
         authority=[COM_NEG]),
    case("ds-at-apex-parent-not-served-org", ALL, "example.org. DS", "NOERROR", True, NOD,
         authority=[ORG_NEG]),
    # --- parent and child on one server -----------------------------------------------------
    case("child-served-answer-below-cut", ALL, "www.child.example.com. A", "NOERROR", True, A,
         answer=["www.child.example.com. 600 IN A 192.0.2.61"]),
    case("child-served-closest-zone-any-order", ALL_CHILD_FIRST, "www.child.example.com. A", "NOERROR", True,
         A, answer=["www.child.example.com. 600 IN A 192.0.2.61"]),
    case("child-served-nxdomain-from-child", ALL, "nothere.child.example.com. A", "NXDOMAIN", True, NXD,
         authority=[CHILD_NEG]),
    case("child-served-ns-at-child-apex", ALL, "child.example.com. NS", "NOERROR", True, A,
         answer=["child.example.com. 600 IN NS ns1.child.example.com."],
         additional=["ns1.child.example.com. 600 IN A 192.0.2.60"]),
    case("child-served-glue-name-from-child", ALL, "ns1.child.example.com. A", "NOERROR", True, A,
         answer=["ns1.child.example.com. 600 IN A 192.0.2.60"]),
    case("child-served-ds-from-parent", ALL, "child.example.com. DS", "NOERROR", True, A,
         answer=[f"child.example.com. 3600 IN DS 54321 13 2 {DS_CHILD.lower()}"]),
    case("child-served-ds-from-parent-any-order", ALL_CHILD_FIRST, "child.example.com. DS", "NOERROR", True, A,
         answer=[f"child.example.com. 3600 IN DS 54321 13 2 {DS_CHILD.lower()}"]),
    case("child-served-soa-from-child", ALL, "child.example.com. SOA", "NOERROR", True, A,
         answer=["child.example.com. 600 IN SOA ns1.child.example.com. hostmaster.child.example.com. "
                 "7 3600 900 604800 900"]),
    case("parent-still-refers-to-unserved-sub", ALL, "host.sub.example.com. A", "NOERROR", False, REF,
         authority=SUB_NS, additional=SUB_GLUE),
    # --- CNAME ----------------------------------------------------------------------------
    case("cname-followed", ONLY_COM, "alias.example.com. A", "NOERROR", True, A,
         answer=["alias.example.com. 3600 IN CNAME www.example.com."] + WWW_A),
    case("cname-chain-followed", ONLY_COM, "alias2.example.com. AAAA", "NOERROR", True, A,
         answer=["alias2.example.com. 3600 IN CNAME alias.example.com.",
                 "alias.example.com. 3600 IN CNAME www.example.com."] + WWW_AAAA),
    case("cname-queried-itself", ONLY_COM, "alias.example.com. CNAME", "NOERROR", True, A,
         answer=["alias.example.com. 3600 IN CNAME www.example.com."]),
    case("cname-to-nodata", ONLY_COM, "alias.example.com. MX", "NOERROR", True, NOD,
         answer=["alias.example.com. 3600 IN CNAME www.example.com."], authority=[COM_NEG]),
    case("cname-to-nxdomain-in-zone", ONLY_COM, "tonx.example.com. A", "NXDOMAIN", True, NXD,
         answer=["tonx.example.com. 3600 IN CNAME nothere.example.com."], authority=[COM_NEG]),
    case("cname-out-of-every-zone", ONLY_COM, "external.example.com. A", "NOERROR", True, A,
         answer=["external.example.com. 3600 IN CNAME www.example.net."]),
    case("cname-to-unserved-zone", ONLY_COM, "toorg.example.com. A", "NOERROR", True, A,
         answer=["toorg.example.com. 3600 IN CNAME www.example.org."]),
    case("cname-into-other-served-zone", ALL, "toorg.example.com. A", "NOERROR", True, A,
         answer=["toorg.example.com. 3600 IN CNAME www.example.org."] + ORG_WWW_A),
    case("cname-into-served-child", ALL, "tochild.example.com. A", "NOERROR", True, A,
         answer=["tochild.example.com. 3600 IN CNAME www.child.example.com.",
                 "www.child.example.com. 600 IN A 192.0.2.61"]),
    case("cname-below-cut-child-not-served", ONLY_COM, "tochild.example.com. A", "NOERROR", True, REF,
         answer=["tochild.example.com. 3600 IN CNAME www.child.example.com."],
         authority=CHILD_REFERRAL_NS, additional=CHILD_GLUE),
    case("cname-below-cut", ONLY_COM, "tosub.example.com. A", "NOERROR", True, REF,
         answer=["tosub.example.com. 3600 IN CNAME host.sub.example.com."],
         authority=SUB_NS, additional=SUB_GLUE),
    case("cname-loop-terminates", ONLY_COM, "loop1.example.com. A", "NOERROR", True, A,
         answer=["loop1.example.com. 3600 IN CNAME loop2.example.com.",
                 "loop2.example.com. 3600 IN CNAME loop1.example.com."]),
    # --- wildcards (RFC 4592) -----------------------------------------------------------------
    case("wildcard-synthesised", ONLY_COM, "anything.w.example.com. A", "NOERROR", True, A,
         answer=["anything.w.example.com. 3600 IN A 192.0.2.50"]),
    case("wildcard-keeps-query-case", ONLY_COM, "AnyThing.W.example.com. A", "NOERROR", True, A,
         answer=["AnyThing.W.example.com. 3600 IN A 192.0.2.50"]),
    case("wildcard-several-labels-deep", ONLY_COM, "q.r.w.example.com. A", "NOERROR", True, A,
         answer=["q.r.w.example.com. 3600 IN A 192.0.2.50"]),
    # One RRset only from NSD 4.6.1, as for answer-any-at-name.
    case("wildcard-any", ONLY_COM, "anything.w.example.com. ANY", "NOERROR", True, A,
         answer=["anything.w.example.com. 3600 IN A 192.0.2.50", 'anything.w.example.com. 3600 IN TXT "wild"']),
    case("wildcard-nodata", ONLY_COM, "anything.w.example.com. AAAA", "NOERROR", True, NOD,
         authority=[COM_NEG]),
    case("wildcard-blocked-by-existing-sibling", ONLY_COM, "host.w.example.com. A", "NOERROR", True, NOD,
         authority=[COM_NEG]),
    case("wildcard-sibling-own-data", ONLY_COM, "host.w.example.com. AAAA", "NOERROR", True, A,
         answer=["host.w.example.com. 3600 IN AAAA 2001:db8::50"]),
    case("wildcard-not-for-names-below-existing-sibling", ONLY_COM, "x.host.w.example.com. A", "NXDOMAIN",
         True, NXD, authority=[COM_NEG]),
    case("wildcard-blocked-by-empty-non-terminal", ONLY_COM, "ent.w.example.com. A", "NOERROR", True, NOD,
         authority=[COM_NEG]),
    case("wildcard-not-below-empty-non-terminal", ONLY_COM, "y.ent.w.example.com. A", "NXDOMAIN", True, NXD,
         authority=[COM_NEG]),
    case("wildcard-not-below-delegation", ONLY_COM, "x.d.w.example.com. A", "NOERROR", False, REF,
         authority=["d.w.example.com. 3600 IN NS ns.d.w.example.com."],
         additional=["ns.d.w.example.com. 3600 IN A 192.0.2.52"]),
    case("wildcard-queried-literally", ONLY_COM, "*.w.example.com. A", "NOERROR", True, A,
         answer=["*.w.example.com. 3600 IN A 192.0.2.50"]),
    case("wildcard-queried-literally-nodata", ONLY_COM, "*.w.example.com. AAAA", "NOERROR", True, NOD,
         authority=[COM_NEG]),
    case("wildcard-literal-star-where-none", ONLY_COM, "*.ent.example.com. A", "NXDOMAIN", True, NXD,
         authority=[COM_NEG]),
    case("wildcard-not-at-its-parent", ONLY_COM, "w.example.com. A", "NOERROR", True, NOD,
         authority=[COM_NEG]),
    case("wildcard-cname-chased", ONLY_COM, "foo.wc.example.com. A", "NOERROR", True, A,
         answer=["foo.wc.example.com. 3600 IN CNAME www.example.com."] + WWW_A),
    case("wildcard-cname-queried-itself", ONLY_COM, "foo.wc.example.com. CNAME", "NOERROR", True, A,
         answer=["foo.wc.example.com. 3600 IN CNAME www.example.com."]),
    # --- DNAME (RFC 6672) ---------------------------------------------------------------------
    case("dname-synthesises-cname-and-chases", ALL, "www.dn.example.com. A", "NOERROR", True, A,
         answer=DN + ["www.dn.example.com. 3600 IN CNAME www.example.org."] + ORG_WWW_A),
    case("dname-then-cname-in-target-zone", ALL, "x.dn.example.com. A", "NOERROR", True, A,
         answer=DN + ["x.dn.example.com. 3600 IN CNAME x.example.org.",
                      "x.example.org. 300 IN CNAME www.example.org."] + ORG_WWW_A),
    case("dname-target-zone-not-served", ONLY_COM, "www.dn.example.com. A", "NOERROR", True, A,
         answer=DN + ["www.dn.example.com. 3600 IN CNAME www.example.org."]),
    case("dname-target-nxdomain", ALL, "nothere.dn.example.com. A", "NXDOMAIN", True, NXD,
         answer=DN + ["nothere.dn.example.com. 3600 IN CNAME nothere.example.org."], authority=[ORG_NEG]),
    case("dname-several-labels", ONLY_COM, "a.b.dnx.example.com. A", "NOERROR", True, A,
         answer=["dnx.example.com. 3600 IN DNAME example.net.",
                 "a.b.dnx.example.com. 3600 IN CNAME a.b.example.net."]),
    case("dname-owner-itself-nodata", ONLY_COM, "dn.example.com. A", "NOERROR", True, NOD,
         authority=[COM_NEG]),
    case("dname-queried-itself", ONLY_COM, "dn.example.com. DNAME", "NOERROR", True, A, answer=DN),
    case("dname-reached-through-cname", ALL, "todn.example.com. A", "NOERROR", True, A,
         answer=["todn.example.com. 3600 IN CNAME www.dn.example.com."] + DN
         + ["www.dn.example.com. 3600 IN CNAME www.example.org."] + ORG_WWW_A),
    # The synthesised CNAME keeps the query's spelling of the substituted labels; NSD
    # spells the target as its zone data does when that name exists.  Both are RFC 4343-fine.
    case("dname-case-insensitive", ONLY_COM, "WWW.DN.EXAMPLE.COM. A", "NOERROR", True, A,
         answer=DN + ["WWW.DN.EXAMPLE.COM. 3600 IN CNAME WWW.example.org."]),
    # RFC 1034 §4.3.2 step 3a: a CNAME query is answered by the CNAME, synthesised ones included.
    case("dname-cname-query-not-chased", ALL, "x.dn.example.com. CNAME", "NOERROR", True, A,
         answer=DN + ["x.dn.example.com. 3600 IN CNAME x.example.org."]),
    case("dname-cname-query-target-without-cname", ALL, "www.dn.example.com. CNAME", "NOERROR", True, A,
         answer=DN + ["www.dn.example.com. 3600 IN CNAME www.example.org."]),
    case("dname-met-twice-appears-once", ALL, "back.dn.example.com. A", "NOERROR", True, A,
         answer=DN + ["back.dn.example.com. 3600 IN CNAME back.example.org.",
                      "back.example.org. 300 IN CNAME www.dn.example.com.",
                      "www.dn.example.com. 3600 IN CNAME www.example.org."] + ORG_WWW_A),
    case("dname-pointing-below-itself-stops", ONLY_COM, "x.selfd.example.com. A", "NOERROR", True, A,
         answer=["selfd.example.com. 3600 IN DNAME sub.selfd.example.com.",
                 "x.selfd.example.com. 3600 IN CNAME x.sub.selfd.example.com."]),
    case("dname-substitution-fits", ONLY_COM, "short.long.example.com. A", "NOERROR", True, A,
         answer=[f"long.example.com. 3600 IN DNAME {LONG_TARGET}",
                 f"short.long.example.com. 3600 IN CNAME short.{LONG_TARGET}"]),
    case("dname-substitution-too-long", ONLY_COM, f"{'y' * 63}.{'x' * 50}.long.example.com. A", "YXDOMAIN",
         True, YXD, answer=[f"long.example.com. 3600 IN DNAME {LONG_TARGET}"]),
]


# --- the machinery ---------------------------------------------------------------------


@lru_cache(maxsize=None)
def authority_for(zones: tuple[str, ...]) -> Authority:
    loaded = []
    for text in zones:
        load = load_zone_text(text)
        assert not load.problems, [str(p) for p in load.problems]
        assert load.zone is not None
        loaded.append(load.zone)
    return Authority(loaded)


def rendered(rrsets: Iterable[dns.rrset.RRset]) -> list[str]:
    """A section as sorted presentation lines: order-free, but every record and TTL counts."""
    return sorted(line for rrset in rrsets for line in rrset.to_text().splitlines())


def ask(zones: tuple[str, ...], question: str) -> Response:
    qname, qtype = question.split()
    return authority_for(zones).lookup(dns.name.from_text(qname), dns.rdatatype.from_text(qtype))


@pytest.mark.parametrize("c", [pytest.param(c, id=c.id) for c in CASES])
def test_lookup(c: Case) -> None:
    response = ask(c.zones, c.question)
    got = {
        "rcode": dns.rcode.to_text(response.rcode),
        "aa": response.authoritative,
        "outcome": response.outcome,
        "answer": rendered(response.answer),
        "authority": rendered(response.authority),
        "additional": rendered(response.additional),
    }
    expected = {
        "rcode": c.rcode,
        "aa": c.aa,
        "outcome": c.outcome,
        "answer": sorted(c.answer),
        "authority": sorted(c.authority),
        "additional": sorted(c.additional),
    }
    assert got == expected


def test_case_ids_are_unique() -> None:
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids))


def test_wildcard_answer_does_not_rename_the_zone_data() -> None:
    """Synthesis copies the wildcard's RRset; the zone's own record keeps its owner."""
    ask(ONLY_COM, "first.w.example.com. A")
    again = ask(ONLY_COM, "*.w.example.com. A")
    assert rendered(again.answer) == ["*.w.example.com. 3600 IN A 192.0.2.50"]
