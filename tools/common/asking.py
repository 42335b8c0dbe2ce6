"""One question with dnspython, for the tools that run with dnslab's venv."""

from __future__ import annotations

import dns.exception
import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype


def ask(server: tuple[str, int], name: str, rdtype: str = "A", rd: bool = True, timeout: float = 6.0,
        source: str | None = None, tcp: bool = False, edns: bool = False, dnssec: bool = False,
        cd: bool = False) -> dns.message.Message:
    """One query, one reply (dns.exception.Timeout without one). dnssec: EDNS with DO=1."""
    query = dns.message.make_query(name, rdtype, use_edns=0 if edns or dnssec else None, want_dnssec=dnssec)
    if not rd:
        query.flags &= ~dns.flags.RD
    if cd:
        query.flags |= dns.flags.CD
    if tcp:
        return dns.query.tcp(query, server[0], port=server[1], timeout=timeout, source=source)
    return dns.query.udp(query, server[0], port=server[1], timeout=timeout, source=source)


def ask_retrying(server: tuple[str, int], name: str, rdtype: str = "A", rd: bool = True, tries: int = 5,
                 timeout: float = 3.0) -> dns.message.Message:
    """`ask`, again after a timeout, at most *tries* times."""
    for attempt in range(tries):
        try:
            return ask(server, name, rdtype, rd=rd, timeout=timeout)
        except dns.exception.Timeout:
            if attempt == tries - 1:
                raise
    raise AssertionError("unreachable")


def addresses(reply: dns.message.Message) -> set[str]:
    """The A addresses in a reply's answer section."""
    return {rdata.address for rrset in reply.answer if rrset.rdtype == dns.rdatatype.A for rdata in rrset}


def rcode_text(reply: dns.message.Message) -> str:
    return dns.rcode.to_text(reply.rcode())
