"""core.edns.use_edns0 against dnspython's own Message.use_edns (sans-I/O)."""

from __future__ import annotations

import dns.message
import dns.rdatatype
import pytest

from dnslab.core.edns import opt_rdata, use_edns0


@pytest.mark.parametrize("payload", [512, 1232, 4096, 65535, 0])
@pytest.mark.parametrize("flags", [0, 0x8000, 0x00018000, 0xFFFFFFFF])
def test_use_edns0_makes_what_use_edns_makes(payload: int, flags: int) -> None:
    ours, theirs = dns.message.make_query("www.example.com.", "A"), dns.message.make_query("www.example.com.", "A")
    ours.id = theirs.id = 4242
    use_edns0(ours, flags, payload, 1400)
    theirs.use_edns(0, flags, payload, 1400)
    assert ours.opt is not None and theirs.opt is not None
    assert (ours.edns, ours.ednsflags, ours.payload, ours.request_payload, ours.pad, ours.options) == (
        theirs.edns, theirs.ednsflags, theirs.payload, theirs.request_payload, theirs.pad, theirs.options)
    assert (ours.opt.name, ours.opt.rdclass, ours.opt.rdtype, ours.opt.ttl, list(ours.opt)) == (
        theirs.opt.name, theirs.opt.rdclass, theirs.opt.rdtype, theirs.opt.ttl, list(theirs.opt))
    assert type(ours.opt.rdclass) is type(theirs.opt.rdclass) and ours.opt.rdtype == dns.rdatatype.OPT
    assert ours.to_wire() == theirs.to_wire()


def test_each_message_has_its_own_opt_record() -> None:
    """The template is shared, the RRset is not: one message's flags never reach another's."""
    first, second = dns.message.Message(id=1), dns.message.Message(id=2)
    use_edns0(first, 0, 1232)
    use_edns0(second, 0, 1232)
    first.ednsflags |= 0x8000
    assert second.ednsflags == 0 and first.ednsflags == 0x8000
    assert first.request_payload == 1232


def test_opt_rdata_is_what_payload_and_options_read() -> None:
    plain = dns.message.make_query("www.example.com.", "A")
    assert opt_rdata(plain) is None and plain.edns < 0
    query = dns.message.make_query("www.example.com.", "A", use_edns=0, payload=1400)
    opt = opt_rdata(query)
    assert opt is not None and (opt.payload, opt.options) == (query.payload, query.options) == (1400, ())
