"""Real DNS software as lab members: the generated configurations (sans-I/O, and checked by the
programs' own checkers where installed), the choices' errors, and NSD serving a lab server."""

from __future__ import annotations

import subprocess
from pathlib import Path

import dns.exception
import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest

from dnslab.core.errors import ConfigError
from dnslab.faces.cli import main
from dnslab.lab import programs
from dnslab.lab.processes import find_binary
from dnslab.lab.runtime import LabSettings
from dnslab import testing

DS = dns.rrset.from_text(".", 3600, "IN", "DS", "12345 13 2 " + "AB" * 32)


def setup(tmp_path: Path, signed: bool = False) -> programs.ResolverSetup:
    return programs.ResolverSetup("127.0.0.1", 53, tmp_path, tmp_path / "root.hints",
                                  anchors=(DS,) if signed else (),
                                  anchor_file=tmp_path / "anchor.ds" if signed else None, cache_mb=24)


# --- configuration, sans-I/O ----------------------------------------------------------------------


def test_unbound_conf_asks_loopback_from_the_lab_hints(tmp_path):
    text = programs.unbound_conf(setup(tmp_path))
    assert "interface: 127.0.0.1@53" in text
    assert f'root-hints: "{tmp_path / "root.hints"}"' in text
    assert "do-not-query-localhost: no" in text
    assert f'logfile: "{tmp_path / "resolver.log"}"' in text
    assert "msg-cache-size: 8m" in text and "rrset-cache-size: 16m" in text
    assert "trust-anchor-file" not in text  # an unsigned lab: no validation
    assert f'control-interface: "{tmp_path / "control.sock"}"' in text


def test_unbound_conf_trusts_the_signed_lab_root(tmp_path):
    assert f'trust-anchor-file: "{tmp_path / "anchor.ds"}"' in programs.unbound_conf(setup(tmp_path, signed=True))


def test_kresd_conf_replaces_the_internet_root_anchor(tmp_path):
    unsigned = programs.kresd_conf(setup(tmp_path))
    assert "option('ALLOW_LOCAL', true)" in unsigned
    assert "net.listen('127.0.0.1', 53, { kind = 'dns' })" in unsigned
    assert f"hints.root_file('{tmp_path / 'root.hints'}')" in unsigned
    assert "trust_anchors.remove('.')" in unsigned and "add_file" not in unsigned
    signed = programs.kresd_conf(setup(tmp_path, signed=True))
    assert f"trust_anchors.add_file('{tmp_path / 'anchor.ds'}', true)" in signed


def test_named_conf_has_the_lab_port_for_both_directions_and_the_ds(tmp_path):
    lab = programs.ResolverSetup("127.0.0.1", 5300, tmp_path, tmp_path / "root.hints", anchors=(DS,))
    text = programs.named_resolver_conf(lab)
    assert "  port 5300;" in text and "listen-on port 5300 { 127.0.0.1; };" in text
    assert '"." static-ds 12345 13 2 "' + "AB" * 32 + '";' in text
    assert "dnssec-validation yes;" in text and "empty-zones-enable no;" in text
    assert "dnssec-validation no;" in programs.named_resolver_conf(setup(tmp_path))


def test_pdns_recursor_conf_allows_loopback_and_trusts_only_the_lab(tmp_path):
    unsigned = programs.pdns_recursor_conf(setup(tmp_path))
    assert "local-port=53" in unsigned and "dont-query=\n" in unsigned and "dnssec=off" in unsigned
    assert f"hint-file={tmp_path / 'root.hints'}" in unsigned and "lua-config-file" not in unsigned
    assert "security-poll-suffix=\n" in unsigned  # no version check sent into the lab
    signed = setup(tmp_path, signed=True)
    assert "dnssec=validate" in programs.pdns_recursor_conf(signed)
    assert programs.pdns_recursor_lua(signed).splitlines()[1:] == ["clearTA()", "addTA('.', '12345 13 2 " + "ab" * 32 + "')"]


def test_nsd_conf_serves_the_zone_files(tmp_path):
    text = programs.nsd_conf(programs.ServerSetup("127.0.3.1", 40000, tmp_path,
                                                  (("example.com.", tmp_path / "example.com.zone"),)))
    assert "ip-address: 127.0.3.1@40000" in text
    assert f'zonefile: "{tmp_path / "example.com.zone"}"' in text


def test_cache_size_follows_the_entry_bound():
    assert programs.cache_megabytes(100_000) == 24
    assert programs.cache_megabytes(10) == 4


# --- the programs' own checkers -------------------------------------------------------------------


def _check(binary: str, *argv: str) -> None:
    path = find_binary(binary)
    if path is None:
        pytest.skip(f"{binary} is not installed")
    result = subprocess.run([path, *argv], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stdout + result.stderr


def test_unbound_checkconf_accepts_the_generated_conf(tmp_path):
    (tmp_path / "root.hints").write_text(". 3600000 NS a.root-servers.net.\na.root-servers.net. 3600000 A 127.0.1.1\n")
    (tmp_path / "anchor.ds").write_text(DS.to_text() + "\n")
    conf = tmp_path / "unbound.conf"
    conf.write_text(programs.unbound_conf(setup(tmp_path, signed=True)))
    _check("unbound-checkconf", str(conf))


def test_named_checkconf_accepts_the_generated_confs(tmp_path):
    conf = tmp_path / "named.conf"
    conf.write_text(programs.named_resolver_conf(setup(tmp_path, signed=True)))
    _check("named-checkconf", str(conf))
    conf.write_text(programs.named_server_conf(programs.ServerSetup("127.0.3.1", 5300, tmp_path, ())))
    _check("named-checkconf", str(conf))


def test_nsd_checkconf_accepts_the_generated_conf(tmp_path):
    zone = tmp_path / "example.com.zone"
    zone.write_text("$ORIGIN example.com.\n@ 300 IN SOA ns1 h 1 2 3 4 5\n@ 300 IN NS ns1\nns1 300 IN A 127.0.3.1\n")
    conf = tmp_path / "nsd.conf"
    conf.write_text(programs.nsd_conf(programs.ServerSetup("127.0.3.1", 40000, tmp_path, (("example.com.", zone),))))
    _check("nsd-checkconf", str(conf))


def test_knotc_accepts_the_generated_conf(tmp_path):
    zone = tmp_path / "example.com.zone"
    zone.write_text("$ORIGIN example.com.\n@ 300 IN SOA ns1 h 1 2 3 4 5\n@ 300 IN NS ns1\nns1 300 IN A 127.0.3.1\n")
    conf = tmp_path / "knot.conf"
    conf.write_text(programs.knot_conf(programs.ServerSetup("127.0.3.1", 40000, tmp_path, (("example.com.", zone),))))
    _check("knotc", "-c", str(conf), "conf-check")


# --- choices and their errors ---------------------------------------------------------------------


def test_unknown_programs_are_one_line_errors():
    with pytest.raises(ConfigError, match="unknown resolver 'pdns'"):
        programs.resolver_program("pdns")
    with pytest.raises(ConfigError, match="expected NAME_OR_ADDRESS=PROGRAM"):
        programs.parse_server_choice("ns1.example.com")
    with pytest.raises(ConfigError, match="unknown server program 'pdns'"):
        programs.parse_server_choice("ns1.example.com=pdns")


def test_unbound_and_kresd_refuse_another_port_saying_why():
    with pytest.raises(ConfigError, match="port 53, not 5300: use --port 53"):
        programs.needed_port(programs.RESOLVERS["unbound"], 5300)
    programs.needed_port(programs.RESOLVERS["bind"], 5300)  # BIND sends to its own port


def test_a_missing_program_names_the_debian_package(monkeypatch):
    monkeypatch.setattr(testing, "find_binary", lambda name: None)
    assert testing.unavailable("kresd") == ("Knot Resolver (kresd) is not installed "
                                            "(Debian: apt-get install knot-resolver)")
    assert "apt-get install nsd" in testing.unavailable(servers={"ns1.example.com": "nsd"})


def test_lab_toml_names_the_programs(tmp_path):
    (tmp_path / "lab.toml").write_text('resolver = "unbound"\n[servers."ns1.example.com"]\nprogram = "nsd"\n')
    settings = LabSettings.load(tmp_path / "lab.toml")
    assert settings.resolver_program == "unbound"
    assert settings.server_programs == (("ns1.example.com", "nsd"),)
    (tmp_path / "lab.toml").write_text('resolver = "powerdns"\n')
    with pytest.raises(ConfigError, match="resolver: unknown resolver 'powerdns'"):
        LabSettings.load(tmp_path / "lab.toml")


@pytest.mark.parametrize("argv, message", [
    (["--resolver", "unbound", "--port", "5300"], "Unbound sends the queries of a referral to port 53"),
    (["--server", "ns9.example.com=nsd"], "'ns9.example.com' is not a lab server's address or name"),
    (["--server", "ns1.example.com=pdns"], "unknown server program 'pdns'"),
    (["--resolver", "unbound", "--port", "53", "--workers", "2"], "leave out --workers"),
    (["--resolver", "unbound", "--no-resolver"], "leave out --resolver, or --no-resolver"),
])
def test_up_refuses_bad_choices_in_one_line(argv, message, capsys):
    assert main(["up", "--no-web", *argv]) != 0
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


# --- NSD as a lab server ----------------------------------------------------------------------------


def test_nsd_serves_a_lab_server_behind_its_faults(make_dns_lab):
    lab = make_dns_lab(servers={"ns1.example.com": "nsd"})
    lab.server("ns2.example.com").down()  # only NSD can answer for example.com
    host = "127.0.3.1"
    version = dns.query.udp(dns.message.make_query("version.server", "TXT", "CH"), host, port=lab.port, timeout=5)
    assert "NSD" in version.answer[0][0].to_text()  # the real program answers at the lab server's address
    answer = lab.resolver.resolve("www.example.com", "A")  # dnslab's resolver, through NSD
    assert sorted(r.address for r in answer) == ["192.0.2.1", "192.0.2.2", "192.0.2.3"]
    assert lab.server("ns1.example.com").queries[("www.example.com.", "A")] == 1  # counted in front of NSD
    lab.server("ns1.example.com").servfail()  # and faults apply
    reply = dns.query.udp(dns.message.make_query("www.example.com", "A"), host, port=lab.port, timeout=5)
    assert reply.rcode() == dns.rcode.SERVFAIL
    tcp = dns.query.tcp(dns.message.make_query("www.example.com", "A"), "127.0.3.1", port=lab.port, timeout=5)
    assert tcp.rcode() == dns.rcode.SERVFAIL
    lab.server("ns1.example.com").clear()
    change = lab.record_set("www.example.com", "A", "192.0.2.99")  # the lab's copy changes, NSD's not
    assert any("served by NSD" in warning for warning in change.warnings)
    tcp = dns.query.tcp(dns.message.make_query("www.example.com", "A"), "127.0.3.1", port=lab.port, timeout=5)
    assert tcp.rcode() == dns.rcode.NOERROR and tcp.answer


def test_nsd_serves_a_signed_zone_unbound_validates(make_dns_lab):
    lab = make_dns_lab(resolver="unbound", dnssec=True, servers={"ns1.example.com": "nsd"})
    # Unreachable, not silent: Unbound moves on at once instead of waiting out a timeout per query
    # (a cold validating walk asks example.com's servers several times).
    lab.server("ns2.example.com").unreachable()
    query = dns.message.make_query("www.example.com", "A", want_dnssec=True)
    reply = None
    for _ in range(3):  # bounded: Unbound's first cold validating walk here has now and then taken over 20 s
        try:
            reply = dns.query.udp(query, *lab.resolver_address[:1], port=lab.resolver_address[1], timeout=20)
            break
        except dns.exception.Timeout:
            continue
    assert reply is not None, "Unbound did not answer in 3 tries of 20 s"
    assert reply.rcode() == dns.rcode.NOERROR and reply.flags & dns.flags.AD
    assert lab.server("ns1.example.com").queries  # NSD was asked


def test_knot_serves_a_lab_server_and_a_signed_zone(make_dns_lab):
    lab = make_dns_lab(servers={"ns1.example.com": "knot"}, dnssec=True)
    lab.server("ns2.example.com").down()  # only Knot DNS can answer for example.com
    host = "127.0.3.1"
    version = dns.query.udp(dns.message.make_query("version.server", "TXT", "CH"), host, port=lab.port, timeout=5)
    assert "Knot DNS" in version.answer[0][0].to_text()  # the real program answers at the lab server's address
    reply = dns.query.udp(dns.message.make_query("www.example.com", "A", want_dnssec=True), host, port=lab.port,
                          timeout=5)
    assert reply.flags & dns.flags.AA and any(r.rdtype == dns.rdatatype.RRSIG for r in reply.answer)
    query = dns.message.make_query("www.example.com", "A", want_dnssec=True)  # dnslab's validating resolver
    reply = dns.query.udp(query, *lab.resolver_address[:1], port=lab.resolver_address[1], timeout=10)
    assert sorted(r.address for rrset in reply.answer if rrset.rdtype == dns.rdatatype.A for r in rrset) == [
        "192.0.2.1", "192.0.2.2", "192.0.2.3"]
    assert reply.flags & dns.flags.AD  # validated, from what Knot served
    assert lab.server("ns1.example.com").queries[("www.example.com.", "A")] >= 1  # counted in front of Knot


def test_bind_serves_a_lab_server(make_dns_lab):
    lab = make_dns_lab(servers={"ns1.example.com": "bind"})
    lab.server("ns2.example.com").down()
    assert sorted(r.address for r in lab.resolver.resolve("www.example.com", "A")) == [
        "192.0.2.1", "192.0.2.2", "192.0.2.3"]
