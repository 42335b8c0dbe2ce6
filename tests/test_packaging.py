"""dnslab as its users get it: a wheel, installed into a fresh venv outside this repository.

The editable install that ./scripts/test makes sees the whole checkout, so it
cannot tell whether the sample zones (package data) are in the wheel. This
test builds the wheel from the files a release is made of, installs it with
its dependencies (from the package registry, through pip's cache) into a venv
in a temporary folder, and there runs `dnslab up` with one query, `dnslab init`,
and the README's pytest examples through the installed plugin. One test,
because building and installing cost some seconds; `-m "not packaging"` skips it.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import REPO

pytestmark = pytest.mark.packaging

STEP_TIMEOUT = 300  # seconds for one pip step (a cold pip cache downloads cryptography)
UP_TIMEOUT = 60


def _run(argv: list[str], cwd: Path, env: dict[str, str], timeout: float = STEP_TIMEOUT) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{' '.join(argv)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
    return result


def _source_tree(target: Path) -> Path:
    """What a release is built from: pyproject.toml, README.md and the package (no caches, no keys)."""
    target.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, target / name)
    shutil.copytree(REPO / "dnslab", target / "dnslab",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".keys"))
    return target


def test_the_wheel_works_outside_the_repository(tmp_path: Path) -> None:
    assert not tmp_path.resolve().is_relative_to(REPO)
    # Nothing of this checkout may leak in: no PYTHONPATH, no lab state of the user's own.
    env = {key: value for key, value in os.environ.items()
           if key not in ("PYTHONPATH", "DNSLAB_STATE", "VIRTUAL_ENV", "PYTEST_ADDOPTS")}
    env["XDG_RUNTIME_DIR"] = str(tmp_path / "run")
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]

    source = _source_tree(tmp_path / "src")
    _run(pip + ["wheel", "--no-deps", "-q", "-w", str(tmp_path / "dist"), str(source)], tmp_path, env)
    wheel = next((tmp_path / "dist").glob("dnslab-*.whl"))

    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], tmp_path, env)
    python = venv / "bin" / "python"
    _run(pip + ["--python", str(python), "install", "-q", str(wheel), "pytest"], tmp_path, env)
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    work = tmp_path / "work"
    work.mkdir()

    where = _run([str(python), "-c", "import dnslab.lab.runtime; print(dnslab.lab.runtime.SAMPLE_ZONES)"], work, env).stdout.strip()
    assert Path(where).is_relative_to(venv), where  # the installed copy, not this checkout

    # dnslab up with no --zones serves the packaged sample; one query through its resolver.
    up = subprocess.Popen([str(venv / "bin" / "dnslab"), "up", "--port", "0", "--no-web"], cwd=work, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        banner = []
        deadline = time.monotonic() + UP_TIMEOUT
        while time.monotonic() < deadline:
            line = up.stdout.readline()  # type: ignore[union-attr]
            if not line:
                break
            banner.append(line)
            if "Ctrl-C stops the lab." in line:
                break
        assert banner and "Ctrl-C stops the lab." in banner[-1], \
            "".join(banner) + (up.stderr.read() if up.poll() is not None else "")  # type: ignore[union-attr]
        answer = _run([str(venv / "bin" / "dnslab"), "query", "www.example.com", "A"], work, env, timeout=30).stdout
        assert "status: NOERROR" in answer and "192.0.2.1" in answer, answer
    finally:
        up.send_signal(signal.SIGTERM)
        try:
            up.wait(timeout=30)
        except subprocess.TimeoutExpired:
            up.kill()
            up.wait()
    assert up.returncode == 0

    # dnslab init copies the sample out, and never into a folder that holds something.
    _run([str(venv / "bin" / "dnslab"), "init", "mine"], work, env)
    assert {p.name for p in (work / "mine").iterdir()} >= {"root.zone", "example.com.zone", "lab.toml"}
    again = subprocess.run([str(venv / "bin" / "dnslab"), "init", "mine"], cwd=work, env=env, capture_output=True,
                           text=True, timeout=30)
    assert again.returncode == 1 and "not empty" in again.stderr and "Traceback" not in again.stderr

    # The README's pytest examples, through the installed plugin (signed ones too: keys go to
    # the runtime folder, never into site-packages).
    for example in (REPO / "examples").glob("test_*.py"):
        shutil.copy(example, work / example.name)
    result = subprocess.run([str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly"],
                            cwd=work, env=env, capture_output=True, text=True, timeout=STEP_TIMEOUT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert " passed" in result.stdout and "error" not in result.stdout.lower(), result.stdout
    assert not list(venv.rglob(".keys")), "keys were written into the installed package"
