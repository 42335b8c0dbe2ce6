"""Faults in front of a lab server, records changed at runtime, and the query counter."""

from __future__ import annotations

import asyncio

import dns.flags
import dns.message
import dns.rcode
import dns.name
import dns.rdatatype
import dns.rrset
import pytest

from dnslab.core.errors import DnslabError, ZoneError
from dnslab.lab import fault_kinds
from dnslab.lab.faults import FOLD_DATAGRAMS, OLDER_QUESTIONS, FaultyServer
from dnslab.authority.server import AuthoritativeServer
from dnslab.core.zone import changed_zone, load_zone_text

ZONE = """
$ORIGIN example.test.
$TTL 300
@ SOA ns admin 41 1800 900 604800 60
@ NS ns
ns A 127.0.0.1
www A 192.0.2.1
alias CNAME www
"""


def faulty() -> tuple[FaultyServer, AuthoritativeServer]:
    zone = load_zone_text(ZONE).zone
    assert zone is not None
    server = AuthoritativeServer([zone])
    return FaultyServer(server.handle, seed=1), server


def ask(server: FaultyServer, name: str = "www.example.test.", via_tcp: bool = False) -> dns.message.Message | None:
    reply = server.handle(dns.message.make_query(name, "A").to_wire(), via_tcp, ("127.0.0.1", 5))
    if asyncio.iscoroutine(reply):
        reply = asyncio.run(reply)
    return None if reply is None else dns.message.from_wire(reply)  # type: ignore[arg-type]


def test_no_fault_answers_normally_and_counts() -> None:
    server, _ = faulty()
    reply = ask(server)
    assert reply is not None and reply.rcode() == dns.rcode.NOERROR and reply.answer
    ask(server, "WWW.Example.Test.")
    assert server.queries["www.example.test.", "A"] == 2


def test_the_counter_is_bounded_and_its_total_exact() -> None:
    zone = load_zone_text(ZONE).zone
    assert zone is not None
    server = FaultyServer(AuthoritativeServer([zone]).handle, seed=1, max_questions=3)
    for name in ("a", "b", "a", "c", "d", "e", "e"):
        ask(server, f"{name}.example.test.")
    queries = server.queries
    assert server.counted_questions == 3
    # a (2) and b (1) were the first new questions: folded into one sum when d and e came.
    assert queries == {("c.example.test.", "A"): 1, ("d.example.test.", "A"): 1, ("e.example.test.", "A"): 2,
                       OLDER_QUESTIONS: 3}
    assert sum(queries.values()) == 7
    server.reset_counts()
    assert server.queries == {} and server.counted_questions == 0


def test_counts_stay_exact_across_the_datagram_table_folds() -> None:
    """Queries are counted by their bytes first and by question later: the sums must not notice."""
    server, _ = faulty()
    distinct = FOLD_DATAGRAMS + 40  # more distinct datagrams than the table holds: it folds mid-way
    for number in range(distinct):
        ask(server, f"n{number}.example.test.")
    for _ in range(3):
        ask(server, "www.example.test.")
        ask(server, "WWW.example.test.")  # other bytes, the same question
    edns = dns.message.make_query("www.example.test.", "A", use_edns=0).to_wire()
    server.handle(edns, False, ("127.0.0.1", 5))  # flags and EDNS differ: a datagram of its own
    server.handle(b"\x12\x34garbage", False, ("127.0.0.1", 5))  # unreadable: counted as such
    assert server.total == distinct + 6 + 2
    queries = server.queries
    assert queries["www.example.test.", "A"] == 7 and queries["n0.example.test.", "A"] == 1
    assert queries[f"n{distinct - 1}.example.test.", "A"] == 1 and queries["<unparsable>", ""] == 1
    assert sum(queries.values()) == server.total


def test_down_answers_nothing_but_still_counts() -> None:
    server, _ = faulty()
    server.apply("down")
    assert ask(server) is None and server.queries["www.example.test.", "A"] == 1
    server.apply(fault_kinds.UP)
    assert ask(server) is not None


def test_unreachable_asks_the_lab_to_close_the_sockets_and_up_to_reopen_them() -> None:
    server, _ = faulty()
    switched: list[bool] = []
    server.on_reachable = switched.append
    server.apply("unreachable")
    assert switched == [False] and server.state.describe() == ["unreachable"]
    assert ask(server) is None  # a query on a TCP connection still open gets no answer either
    server.apply("down")  # silent instead of refusing: the sockets open again, and stay quiet
    assert switched == [False, True] and server.state.describe() == ["down"]
    server.apply("unreachable")
    server.apply("up")
    assert switched == [False, True, False, True] and server.state.describe() == []
    server.apply("clear")  # nothing changes: no call
    assert switched == [False, True, False, True] and ask(server) is not None


@pytest.mark.parametrize("kind,rcode", [("servfail", dns.rcode.SERVFAIL), ("refused", dns.rcode.REFUSED)])
def test_error_rcodes(kind: str, rcode: int) -> None:
    server, _ = faulty()
    server.apply(kind)
    reply = ask(server)
    assert reply is not None and reply.rcode() == rcode and not reply.answer


def test_truncate_over_udp_only() -> None:
    server, _ = faulty()
    server.apply("truncate")
    udp = ask(server)
    assert udp is not None and udp.flags & dns.flags.TC and not udp.answer
    tcp = ask(server, via_tcp=True)
    assert tcp is not None and not tcp.flags & dns.flags.TC and tcp.answer


def test_lame_answers_without_authority() -> None:
    server, _ = faulty()
    server.apply("lame")
    reply = ask(server)
    assert reply is not None and reply.rcode() == dns.rcode.NOERROR
    assert not reply.flags & dns.flags.AA and not reply.answer and not reply.authority


def test_loss_is_seeded_and_drops_about_that_share() -> None:
    first, _ = faulty()
    second, _ = faulty()
    first.apply("loss", 30)
    second.apply("loss", 30)
    pattern = [ask(first) is None for _ in range(200)]
    assert pattern == [ask(second) is None for _ in range(200)]  # same seed, same drops
    assert 30 <= sum(pattern) <= 90  # 30 % of 200, loosely


def test_delay_answers_later_and_clear_removes_everything() -> None:
    server, _ = faulty()
    server.apply("delay", 20, 5)
    assert server.state.describe() == ["delay 20 ms ± 5 ms"]
    pending = server.handle(dns.message.make_query("www.example.test.", "A").to_wire(), False, None)
    assert asyncio.iscoroutine(pending)
    assert asyncio.run(pending) is not None
    server.apply("down")
    server.apply("clear")
    assert server.state.describe() == [] and ask(server) is not None


@pytest.mark.parametrize("kind,value,message", [
    ("explode", None, "^unknown fault 'explode'; for a server: down, unreachable, delay, loss, servfail, "),
    ("delay", None, r"^delay needs MS \(milliseconds late\): delay MS \[JITTER\]$"),
    ("loss", 150, "^loss PCT: expected a number from 0 to 100 %, got 150$"),
    ("delay", "soon", "^delay MS: expected a number from 0 to 60000 ms, got 'soon'$"),
    ("down", 5, "^down takes no argument, not 1: down$"),
    ("dnssec-bad-sig", None, "^dnssec-bad-sig breaks a zone, not a server: dnslab fault ZONE dnssec-bad-sig$"),
])
def test_bad_faults_are_explained(kind: str, value: object, message: str) -> None:
    server, _ = faulty()
    with pytest.raises(DnslabError, match=message):
        server.apply(kind, value)  # type: ignore[arg-type]


def test_changed_zone_replaces_deletes_and_bumps_the_serial() -> None:
    zone = load_zone_text(ZONE).zone
    assert zone is not None
    rrset = dns.rrset.from_text("www.example.test.", 60, "IN", "A", "192.0.2.7", "192.0.2.8")
    changed = changed_zone(zone, rrset=rrset)
    assert changed.soa[0].serial == 42 and len(changed.get(rrset.name, rrset.rdtype)) == 2  # type: ignore[arg-type]
    assert zone.soa[0].serial == 41  # the original is untouched
    deleted = changed_zone(changed, delete=(rrset.name, rrset.rdtype))
    assert deleted.soa[0].serial == 43 and not deleted.exists(rrset.name)
    server = AuthoritativeServer([zone])
    server.replace_zone(changed)
    reply = dns.message.from_wire(server.handle(dns.message.make_query("www.example.test.", "A").to_wire()))
    assert sorted(r.address for r in reply.answer[0]) == ["192.0.2.7", "192.0.2.8"]


def test_changed_zone_keeps_the_rules() -> None:
    zone = load_zone_text(ZONE).zone
    assert zone is not None
    # A change made at run time has no file and line: the message names the zone, never "file:0:".
    with pytest.raises(DnslabError, match="^zone example.test.: alias.example.test. has a CNAME") as caught:
        changed_zone(zone, rrset=dns.rrset.from_text("alias.example.test.", 60, "IN", "TXT", '"x"'))
    assert not isinstance(caught.value, ZoneError) and ":0:" not in str(caught.value)
    with pytest.raises(DnslabError, match="already has A records, and a CNAME cannot share") as caught:
        changed_zone(zone, rrset=dns.rrset.from_text("www.example.test.", 60, "IN", "CNAME", "alias.example.test."))
    assert not isinstance(caught.value, ZoneError)
    with pytest.raises(DnslabError, match="not in zone"):
        changed_zone(zone, rrset=dns.rrset.from_text("www.other.test.", 60, "IN", "A", "192.0.2.1"))
    with pytest.raises(DnslabError, match="no MX records") as caught:
        changed_zone(zone, delete=(dns.name.from_text("www.example.test."), dns.rdatatype.MX))
    assert not isinstance(caught.value, ZoneError)


@pytest.mark.parametrize("kind", fault_kinds.kinds(fault_kinds.Target.SERVER), ids=lambda kind: kind.name)
def test_every_server_fault_of_the_registry_is_played_by_a_lab_server(kind: fault_kinds.FaultKind) -> None:
    """Declared in fault_kinds means playable: in force (listed by `dnslab faults`) until `clear`."""
    server, _ = faulty()
    server.apply(kind, *[arg.example or arg.high for arg in kind.args])
    assert server.state.describe() and server.state.describe()[0].split()[0] == kind.name
    server.apply(fault_kinds.CLEAR)
    assert server.state.describe() == [] and ask(server) is not None


def test_verbs_are_not_faults_and_zone_faults_are_not_a_servers() -> None:
    assert not set(fault_kinds.KINDS) & set(fault_kinds.VERBS)
    assert fault_kinds.lookup("UP") is fault_kinds.UP and fault_kinds.order(" Delay ", ["200"]) == (
        fault_kinds.DELAY, (200.0,))
    assert fault_kinds.order("delay", [200, None]) == (fault_kinds.DELAY, (200.0,))  # a JITTER left out
    server, _ = faulty()
    for kind in fault_kinds.kinds(fault_kinds.Target.ZONE):
        with pytest.raises(DnslabError, match="breaks a zone, not a server"):
            server.apply(kind)
    assert server.state.describe() == []
