"""Scripted servers: a Python handler answers for a lab server, and the resolver meets the misbehaviour.

Real packets on loopback: the handler runs in the lab server, the resolver queries it as any server.
"""

from __future__ import annotations

import shutil
import socket
from pathlib import Path
from typing import Any, Callable

import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import dnslib
import pytest

from dnslab.core.errors import ConfigError
from dnslab.lab.scripted import ZONE, ScriptedQuery
from dnslab.lab.runtime import SAMPLE_ZONES, LabSettings
from dnslab.services.transport import Unframed
from dnslab.testing import DnsLab

WWW = {"192.0.2.1", "192.0.2.2", "192.0.2.3"}
NS1 = "ns1.example.com"


def addresses(lab: DnsLab, name: str = "www.example.com") -> set[str]:
    return {rr.address for rr in lab.resolver.resolve(name, "A")}


def ask_server(lab: DnsLab, address: str, name: str, rdtype: str = "A", tcp: bool = False) -> dns.message.Message:
    query = dns.message.make_query(name, rdtype)
    send = dns.query.tcp if tcp else dns.query.udp
    return send(query, address, timeout=3, port=lab.port)


def raw_udp(lab: DnsLab, address: str, name: str, rdtype: str = "A") -> dnslib.DNSRecord:
    """The reply as sent, parsed by dnslib (dnspython would refuse what the scripts send)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(3)
        sock.sendto(dns.message.make_query(name, rdtype).to_wire(), (address, lab.port))
        return dnslib.DNSRecord.parse(sock.recv(65535))


def test_a_reply_with_the_wrong_id_is_dropped_and_the_next_one_taken(make_dns_lab: Callable[..., DnsLab]) -> None:
    """The forged reply (wrong ID, a poisoned address) comes first on the same socket; the real one next."""
    lab = make_dns_lab()
    seen: list[ScriptedQuery] = []

    def forge_first(query: ScriptedQuery) -> Any:
        seen.append(query)
        real = query.zone_answer()
        if real is None or query.message is None or query.message.q.qtype != dnslib.QTYPE.A:
            return ZONE
        forged = query.message.reply()
        forged.header.id = (query.message.header.id + 1) % 65536
        forged.add_answer(dnslib.RR(query.message.q.qname, dnslib.QTYPE.A, rdata=dnslib.A("6.6.6.6"), ttl=300))
        return [forged, real]

    for ns in ("ns1.example.com", "ns2.example.com"):
        lab.server(ns).handler = forge_first
    assert addresses(lab) == WWW
    assert lab.stats["timeouts"] == 0  # taken at once: the forged datagram did not end the wait
    assert seen and seen[0].transport == "udp" and seen[0].peer is not None and seen[0].server.startswith("127.0.3.")


def test_an_answer_without_the_question_is_no_reply(make_dns_lab: Callable[..., DnsLab]) -> None:
    lab = make_dns_lab()

    def no_question(query: ScriptedQuery) -> Any:
        real = query.zone_answer()
        if real is None:
            return None
        real.questions = []
        return real

    lab.server(NS1).handler = no_question
    lab.server("ns2.example.com").handler = no_question
    reply = raw_udp(lab, "127.0.3.1", "www.example.com")
    assert not reply.questions and reply.rr  # what the script sends, as sent
    with pytest.raises(dns.resolver.NoNameservers):  # type: ignore[attr-defined]
        lab.resolver.resolve("www.example.com", "A")
    lab.server("ns2.example.com").handler = None  # the zone data answers again
    lab.server("ns2.example.com").clear()  # and the resolver forgets its failures
    lab.cache.flush()
    assert addresses(lab) == WWW


def test_nodata_without_soa_reaches_the_client_as_nodata(make_dns_lab: Callable[..., DnsLab]) -> None:
    lab = make_dns_lab()

    def bare_nodata(query: ScriptedQuery) -> Any:
        if query.message is None or query.message.q.qtype != dnslib.QTYPE.TXT:
            return ZONE
        reply = query.message.reply()  # AA, NOERROR, no records at all
        return reply

    for ns in ("ns1.example.com", "ns2.example.com"):
        lab.server(ns).handler = bare_nodata
    for _ in range(3):
        with pytest.raises(dns.resolver.NoAnswer):
            lab.resolver.resolve("www.example.com", "TXT")
    # Without a SOA there is no negative TTL: not cached (RFC 2308 §5), so each client query goes upstream.
    asked = sum(lab.server(ns).queries["www.example.com.", "TXT"] for ns in ("ns1.example.com", "ns2.example.com"))
    assert asked == 3
    assert addresses(lab) == WWW  # other types are the zone's


def test_a_referral_upward_is_lame_and_the_other_server_answers(make_dns_lab: Callable[..., DnsLab]) -> None:
    lab = make_dns_lab()

    def upward(query: ScriptedQuery) -> Any:
        assert query.message is not None
        reply = query.message.reply()
        reply.header.aa = 0
        reply.add_auth(dnslib.RR("com.", dnslib.QTYPE.NS, rdata=dnslib.NS("a.gtld.lab."), ttl=3600))
        return reply

    lab.server(NS1).handler = upward
    reply = ask_server(lab, "127.0.3.1", "www.example.com")
    assert reply.authority and not reply.answer
    for _ in range(4):  # whichever server it picks first, the upward referral never ends the lookup
        assert addresses(lab) == WWW
        lab.cache.flush()
    assert lab.stats["queries"] >= 4


def test_a_truncated_tcp_stream_fails_that_server_only(make_dns_lab: Callable[..., DnsLab]) -> None:
    lab = make_dns_lab()

    def cut(query: ScriptedQuery) -> Any:
        real = query.zone_answer()
        if real is None:
            return None
        if not query.tcp:
            real.rr = []
            real.header.tc = 1  # come back over TCP...
            return real
        wire = real.pack()
        return Unframed(len(wire).to_bytes(2, "big") + wire[:len(wire) // 2])  # ...and get half a message

    lab.server(NS1).handler = cut
    with pytest.raises(EOFError):
        ask_server(lab, "127.0.3.1", "www.example.com", tcp=True)
    for _ in range(4):
        assert addresses(lab) == WWW
        lab.cache.flush()


def test_a_failing_handler_is_servfail_with_the_question(make_dns_lab: Callable[..., DnsLab]) -> None:
    lab = make_dns_lab()
    calls = []

    def broken(query: ScriptedQuery) -> Any:
        calls.append(query)
        if len(calls) == 1:
            raise RuntimeError("a bug in the test's handler")
        return 42  # not a reply either

    lab.server(NS1).handler = broken
    for _ in range(2):
        reply = ask_server(lab, "127.0.3.1", "www.example.com")
        assert reply.rcode() == dns.rcode.SERVFAIL
        assert reply.question[0].name.to_text() == "www.example.com."
    assert len(calls) == 2
    lab.server(NS1).handler = None
    assert ask_server(lab, "127.0.3.1", "www.example.com").answer


def test_the_zone_answer_altered_and_faults_still_in_front(make_dns_lab: Callable[..., DnsLab]) -> None:
    lab = make_dns_lab()

    def one_address(query: ScriptedQuery) -> Any:
        reply = query.zone_answer()
        if reply is not None and reply.rr and reply.rr[0].rtype == dnslib.QTYPE.A:
            reply.rr = [rr for rr in reply.rr if str(rr.rdata) == "192.0.2.2"]
        return reply

    for ns in ("ns1.example.com", "ns2.example.com"):
        lab.server(ns).handler = one_address
    assert lab.server(NS1).handler is one_address
    assert addresses(lab) == {"192.0.2.2"}
    lab.server(NS1).servfail()
    assert ask_server(lab, "127.0.3.1", "www.example.com").rcode() == dns.rcode.SERVFAIL
    assert lab.server(NS1).queries["www.example.com.", "A"] >= 1


def test_async_handlers_and_silence(make_dns_lab: Callable[..., DnsLab]) -> None:
    lab = make_dns_lab()

    async def quiet_for_aaaa(query: ScriptedQuery) -> Any:
        return None if query.message is not None and query.message.q.qtype == dnslib.QTYPE.AAAA else ZONE

    lab.server(NS1).handler = quiet_for_aaaa
    assert ask_server(lab, "127.0.3.1", "www.example.com").answer
    with pytest.raises(dns.exception.Timeout):
        dns.query.udp(dns.message.make_query("www.example.com", "AAAA"), "127.0.3.1", timeout=0.3, port=lab.port)


HANDLER_MODULE = '''
import dnslib
from dnslab.lab.scripted import ZONE

def ttl_one(query):
    reply = query.zone_answer()
    for rr in reply.rr:
        rr.ttl = 1
    return reply
'''


def lab_folder(tmp_path: Path, handler: str, module: str = HANDLER_MODULE) -> Path:
    folder = tmp_path / "zones"
    shutil.copytree(SAMPLE_ZONES, folder)
    (folder / "scripts_for_lab.py").write_text(module)
    with (folder / "lab.toml").open("a") as toml:
        toml.write(f'\n[servers."ns1.example.com"]\nhandler = "{handler}"\n')
    return folder


def test_lab_toml_names_a_handler_next_to_the_zones(make_dns_lab: Callable[..., DnsLab], tmp_path: Path) -> None:
    lab = make_dns_lab(lab_folder(tmp_path, "scripts_for_lab:ttl_one"))
    reply = ask_server(lab, "127.0.3.1", "www.example.com")
    assert reply.answer and reply.answer[0].ttl == 1
    assert ask_server(lab, "127.0.3.2", "www.example.com").answer[0].ttl == 300


@pytest.mark.parametrize("handler, says", [
    ("scripts_for_lab", "must be 'module:function'"),
    ("no_such_module_here:f", "cannot import 'no_such_module_here'"),
    ("scripts_for_lab:nothing", "has no 'nothing'"),
])
def test_a_bad_handler_in_lab_toml_is_one_line_naming_the_file(tmp_path: Path, handler: str, says: str) -> None:
    folder = lab_folder(tmp_path, handler)
    with pytest.raises(ConfigError) as caught:
        DnsLab(folder)
    message = str(caught.value)
    assert str(folder / "lab.toml") in message and says in message and "\n" not in message


def test_lab_toml_servers_tables_are_checked(tmp_path: Path) -> None:
    (tmp_path / "lab.toml").write_text('[servers."ns1.example.com"]\nhandle = "x:y"\n')
    with pytest.raises(ConfigError, match="unknown setting.*handle"):
        LabSettings.load(tmp_path / "lab.toml")
    (tmp_path / "lab.toml").write_text('[servers."ns9.example.com"]\nhandler = "json:dumps"\n')
    assert LabSettings.load(tmp_path / "lab.toml").handlers == (("ns9.example.com", "json:dumps"),)


def test_dnslab_up_serves_a_scripted_server_from_lab_toml_and_says_so(tmp_path: Path) -> None:
    import subprocess
    import sys

    from conftest import ENV, read_until, stop

    folder = lab_folder(tmp_path, "scripts_for_lab:ttl_one")
    proc = subprocess.Popen([sys.executable, "-m", "dnslab", "up", "--zones", str(folder), "--port", "0", "--no-web",
                             "--hints", str(tmp_path / "root.hints")], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**ENV, "DNSLAB_STATE": str(tmp_path / "state")})
    try:
        port = int(read_until(proc, "Ctrl-C stops the lab.").splitlines()[0].split()[3])
        reply = dns.query.udp(dns.message.make_query("www.example.com", "A"), "127.0.3.1", port=port, timeout=5)
        assert reply.answer and reply.answer[0].ttl == 1
    finally:
        code, _, err = stop(proc)
    assert code == 0
    assert "127.0.3.1 answers through the scripted handler scripts_for_lab:ttl_one (lab.toml)" in err
