"""The scenarios that ship with dnslab (package data in dnslab/scenarios/), found by name or path."""

from __future__ import annotations

from pathlib import Path

from dnslab.lab.scenario.spec import Scenario, ScenarioError, load

SHIPPED = Path(__file__).resolve().parents[2] / "scenarios"


def shipped() -> list[Scenario]:
    """Every shipped scenario, checked (a broken one is a bug of ours, and a test says so)."""
    return [load(path) for path in sorted(SHIPPED.glob("*.toml"))]


def find(name_or_path: str) -> Scenario:
    """A file path if one exists there, else a shipped scenario's name."""
    path = Path(name_or_path)
    if path.suffix == ".toml" or path.exists() or "/" in name_or_path:
        return load(path)
    candidate = SHIPPED / f"{name_or_path}.toml"
    if candidate.exists():
        return load(candidate)
    names = ", ".join(sorted(item.stem for item in SHIPPED.glob("*.toml")))
    raise ScenarioError(f"{name_or_path}: no such scenario file, and no shipped scenario of that name "
                        f"(shipped: {names})")
