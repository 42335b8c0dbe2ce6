"""The sample hierarchy is package data: the default everywhere, copied out by `dnslab init`.

(tests/test_packaging.py checks the same from a built wheel, outside this checkout.)
"""

from __future__ import annotations

from pathlib import Path

import pytest

import dnslab
from dnslab.faces.cli import default_zones_dir, main
from dnslab.lab.control import runtime_dir
from dnslab.lab.runtime import SAMPLE_ZONES, LabSettings, default_keys_dir, dnssec_settings
from dnslab.testing import DnsLab


def test_the_sample_lives_inside_the_package() -> None:
    assert SAMPLE_ZONES == Path(dnslab.__file__).resolve().parent / "zones"
    assert (SAMPLE_ZONES / "root.zone").is_file() and (SAMPLE_ZONES / "lab.toml").is_file()
    assert default_zones_dir() == SAMPLE_ZONES
    assert DnsLab().lab.zones_dir == SAMPLE_ZONES


def test_the_default_does_not_depend_on_the_working_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "zones").mkdir()  # an unrelated folder called zones is not picked up behind the user's back
    monkeypatch.chdir(tmp_path)
    assert default_zones_dir() == SAMPLE_ZONES


def test_the_samples_keys_stay_out_of_the_package(tmp_path: Path) -> None:
    assert default_keys_dir(SAMPLE_ZONES) == runtime_dir() / "keys"
    assert default_keys_dir(tmp_path) == tmp_path / ".keys"
    signing = dnssec_settings(LabSettings(), SAMPLE_ZONES, dnssec=True)
    assert signing is not None and not signing.keys_dir.resolve().is_relative_to(SAMPLE_ZONES)


def test_init_copies_the_sample_out(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "new" / "lab"
    assert main(["init", str(target)]) == 0
    copied = sorted(p.name for p in target.iterdir())
    assert copied == sorted(p.name for p in SAMPLE_ZONES.iterdir() if p.is_file() and not p.name.startswith("."))
    assert (target / "example.com.zone").read_text() == (SAMPLE_ZONES / "example.com.zone").read_text()
    assert f"dnslab up --zones {target}" in capsys.readouterr().out
    # The copy is a lab of its own.
    with DnsLab(target) as lab:
        assert [r.address for r in lab.resolver.resolve("www.example.com", "A")][0].startswith("192.0.2.")


def test_init_into_an_empty_folder_works(tmp_path: Path) -> None:
    assert main(["init", str(tmp_path)]) == 0
    assert (tmp_path / "root.zone").is_file()


def test_init_refuses_a_folder_with_something_in_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "mine.zone").write_text("; my own work\n")
    assert main(["init", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not empty" in err and str(tmp_path) in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine.zone"]  # nothing written


def test_init_refuses_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "afile").write_text("x")
    assert main(["init", str(tmp_path / "afile")]) == 1
    assert "not a folder" in capsys.readouterr().err
