"""The package people install: a wheel built from this tree, installed into a fresh virtual
environment, runs outside the source tree — `demo --seed-only` builds a queue, `init` finds the
config.example.toml installed with it, `--version` is the one version — and carries its LICENSE.

Its dependencies come from this test run's own environment (a path file in the fresh one), so the
test stays well under a minute and needs no index for them; the wheel itself is built the way pip
builds any wheel, in an isolated build environment.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import time
import zipfile
from pathlib import Path

import pytest

import agentdesk

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
_NOT_SHIPPED = shutil.ignore_patterns(
    ".venv", ".git", ".cache", "tests", "bench", "build", "*.egg-info", "__pycache__", ".pytest_cache", "node_modules"
)


def _run(*command, cwd: Path, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [str(part) for part in command], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert result.returncode == 0, (command, result.stdout[-2000:], result.stderr[-2000:])
    return result


def test_the_wheel_installs_into_a_fresh_venv_and_runs_the_demo(tmp_path):
    started = time.monotonic()
    source = tmp_path / "source"  # a copy: building writes build/ and *.egg-info beside the sources
    shutil.copytree(ROOT, source, symlinks=True, ignore=_NOT_SHIPPED)
    _run(
        sys.executable,
        "-m",
        "pip",
        "wheel",
        "-q",
        "--disable-pip-version-check",
        "--no-deps",
        "-w",
        tmp_path / "dist",
        source,
        cwd=tmp_path,
        timeout=180,
    )
    (wheel,) = (tmp_path / "dist").glob("agentdesk-*.whl")

    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        example = archive.read("agentdesk/config.example.toml").decode()
        metadata = next(archive.read(n).decode() for n in names if n.endswith(".dist-info/METADATA"))
    assert example == (ROOT / "config.example.toml").read_text()  # the file, not a link to it
    assert {"agentdesk/tui/app.tcss", "agentdesk/store/migrations.py"} <= names
    assert any(n.endswith("/LICENSE") and ".dist-info/" in n for n in names), sorted(
        n for n in names if "dist-info" in n
    )
    assert f"\nVersion: {agentdesk.__version__}\n" in metadata
    assert "Requires-Dist: phonenumberslite" in metadata and "Requires-Dist: phonenumbers>" not in metadata

    fresh = tmp_path / "fresh"
    _run(sys.executable, "-m", "venv", "--without-pip", fresh, cwd=tmp_path)
    python = fresh / "bin" / "python"
    _run(
        sys.executable,
        "-m",
        "pip",
        "--python",
        python,
        "install",
        "-q",
        "--disable-pip-version-check",
        "--no-deps",
        "--no-index",
        wheel,
        cwd=tmp_path,
    )
    site_packages = Path(
        _run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])", cwd=tmp_path).stdout.strip()
    )
    (site_packages / "zz_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")

    home = tmp_path / "home"
    env = {"PATH": f"{fresh / 'bin'}:{os.environ['PATH']}", "HOME": str(home), "USER": "dana", "TZ": "UTC"}
    where = _run(python, "-c", "import agentdesk; print(agentdesk.__file__)", cwd=tmp_path, env=env).stdout
    assert where.startswith(str(site_packages)), where  # the installed package, not the source tree

    agentdesk_command = fresh / "bin" / "agentdesk"
    version = _run(agentdesk_command, "--version", cwd=tmp_path, env=env).stdout
    assert version.strip() == f"agentdesk {agentdesk.__version__}"

    demo = tmp_path / "demo"
    _run(agentdesk_command, "demo", "--seed-only", "--conversations", "40", "--data-dir", demo, cwd=tmp_path, env=env)
    listed = _run(
        agentdesk_command, "--config", demo / "config.toml", "list", "--view", "all", "--json", cwd=tmp_path, env=env
    )
    assert len(json.loads(listed.stdout)) > 0

    initialised = _run(agentdesk_command, "init", "--data-dir", tmp_path / "desk", cwd=tmp_path, env=env)
    installed_example = site_packages / "agentdesk" / "config.example.toml"
    assert f"every key is documented in {installed_example}" in initialised.stderr
    assert installed_example.is_file() and not installed_example.is_symlink()
    assert time.monotonic() - started < 90
