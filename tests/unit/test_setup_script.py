"""scripts/_setup.sh's ensure_venv: it says it is installing on the first run and installs nothing
when pyproject.toml and the extras are what was installed (scripts/demo starts at once); each run
byte-compiles the checkout, which an editable install leaves to Python (and this machine's
PYTHONDONTWRITEBYTECODE to every process again)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Stand-ins for python3 (it makes the venv) and for the venv's python (pip): each call is logged.
FAKE_PYTHON3 = f"""#!/bin/sh
if [ "$1" = "-m" ] && [ "$2" = "venv" ]; then
  mkdir -p "$3/bin"
  printf '#!/bin/sh\\necho "pip $*" >> "$PWD/calls.log"\\n' > "$3/bin/python"
  chmod +x "$3/bin/python"
  echo "venv" >> calls.log
  exit 0
fi
exec {sys.executable} "$@"
"""


def _run(directory: Path, extras: str = "") -> subprocess.CompletedProcess:
    environment = {**os.environ, "PATH": f"{directory / 'bin'}:{os.environ['PATH']}"}
    return subprocess.run(
        ["bash", "-c", f'set -euo pipefail; . scripts/_setup.sh; ensure_venv "{extras}"'],
        cwd=directory,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )


def _calls(directory: Path) -> list[str]:
    log = directory / "calls.log"
    calls = log.read_text().splitlines() if log.exists() else []
    log.unlink(missing_ok=True)
    return calls


COMPILE = "pip -m compileall -q agentdesk"  # the fake venv python logs every call as "pip …"


def _installs(directory: Path) -> int:
    """pip installs since the last look (each run also byte-compiles)."""
    calls = _calls(directory)
    assert COMPILE in calls
    return len([call for call in calls if call != COMPILE])


def test_installs_once_says_so_and_again_only_when_pyproject_changes(tmp_path):
    (tmp_path / "scripts").mkdir()
    shutil.copy(ROOT / "scripts" / "_setup.sh", tmp_path / "scripts" / "_setup.sh")
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "python3").write_text(FAKE_PYTHON3)
    (tmp_path / "bin" / "python3").chmod(0o755)

    first = _run(tmp_path)
    assert first.returncode == 0, first.stderr
    assert "first run: installing agentdesk" in first.stderr
    assert _calls(tmp_path) == ["venv", "pip -m pip install -q --disable-pip-version-check -e .", COMPILE]

    again = _run(tmp_path)
    assert again.returncode == 0 and again.stderr == "" and _calls(tmp_path) == [COMPILE]

    tests = _run(tmp_path, "[test]")  # another set of extras: installed once, then stamped too
    assert "installing agentdesk[test]" in tests.stderr and _installs(tmp_path) == 1
    assert _run(tmp_path, "[test]").stderr == "" and _run(tmp_path).stderr == "" and _installs(tmp_path) == 0

    with (tmp_path / "pyproject.toml").open("a") as pyproject:
        pyproject.write("\n# a new dependency\n")
    changed = _run(tmp_path)
    assert "pyproject.toml changed" in changed.stderr and _installs(tmp_path) == 1
