"""scripts/bench --dnsdist: the dnsdist configuration (made without I/O), checked by dnsdist itself
when it is installed, and the one line when it is not."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tools import bench, bench_dnsdist
from tools.bench_dnsdist import Tier, dnsdist_config
from tools.common.reference import find_binary

TIER = Tier(("127.0.96.10", 5353), (("127.0.96.20", 5400), ("127.0.96.21", 5401)))


def test_config_has_one_server_per_backend_a_policy_no_console_and_no_cache() -> None:
    text = dnsdist_config(TIER)
    lines = text.splitlines()
    assert 'setLocal("127.0.96.10:5353")' in lines
    servers = [line for line in lines if line.startswith("newServer(")]
    assert servers == [
        'newServer({address="127.0.96.20:5400", name="dnslab-1", checkName="www.example.com.", checkInterval=1})',
        'newServer({address="127.0.96.21:5401", name="dnslab-2", checkName="www.example.com.", checkInterval=1})']
    assert "setServerPolicy(leastOutstanding)" in lines
    assert 'setSecurityPollSuffix("")  -- no security-status queries to the internet' in lines
    code = "\n".join(line.split("--")[0] for line in lines)  # comments aside
    for absent in ("controlSocket", "setKey", "newPacketCache", "setCache", "webserver"):
        assert absent not in code
    roundrobin = dnsdist_config(Tier(TIER.listen, TIER.backends[:1], policy="roundrobin"))
    assert "setServerPolicy(roundrobin)" in roundrobin and roundrobin.count("newServer(") == 1


@pytest.mark.parametrize(("tier", "says"), [
    (Tier(("127.0.96.10", 53), ()), "at least one backend"),
    (Tier(("127.0.96.10", 53), (("127.0.96.20", 53),), policy="fastest"), "unknown dnsdist policy"),
    (Tier(("127.0.96.10", 53), (("127.0.96.20", 53), ("127.0.96.20", 53))), "two backends"),
])
def test_configs_dnsdist_could_not_run_are_refused(tier: Tier, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        dnsdist_config(tier)


def test_backend_addresses_are_distinct_loopback_addresses_within_bounds() -> None:
    assert bench_dnsdist.backend_addresses(2) == ["127.0.96.20", "127.0.96.21"]
    with pytest.raises(ValueError):
        bench_dnsdist.backend_addresses(0)
    with pytest.raises(ValueError):
        bench_dnsdist.backend_addresses(bench_dnsdist.MAX_BACKENDS + 1)


def test_dnsdist_accepts_the_config(tmp_path: Path) -> None:
    binary = find_binary("dnsdist")
    if binary is None:
        pytest.skip("dnsdist is not installed (Debian: apt-get install dnsdist)")
    conf = tmp_path / "dnsdist.conf"
    conf.write_text(dnsdist_config(TIER))
    checked = subprocess.run([binary, "--check-config", "-C", str(conf)], capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_missing_dnsdist_is_one_line_naming_the_package_and_exit_1(monkeypatch: pytest.MonkeyPatch,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    def nothing(packages: dict[str, str], install: bool, say: object) -> tuple[dict[str, None], list[str]]:
        assert not install  # --no-install: nothing is installed behind the user's back
        return {package: None for package in packages}, []
    monkeypatch.setattr(bench, "ensure_packages", nothing)
    monkeypatch.setattr(bench, "find_python", lambda given: "python3")
    assert bench.main(["--dnsdist", "2", "--no-install"]) == 1
    err = capsys.readouterr().err
    assert "bench: dnsdist is not installed (Debian: apt-get install dnsdist); --dnsdist needs it\n" in err
    assert "Traceback" not in err
