"""Nothing outside agentdesk.tui imports textual; the headless CLI never pays for the UI.

Like harlequin's test: import each headless module in a fresh interpreter and check `textual` was
never loaded. Plus the import-linter contract in pyproject.toml, run the same way CI would.
"""

from __future__ import annotations

import pkgutil
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import agentdesk

ROOT = Path(__file__).parent.parent


def _headless_modules() -> list[str]:
    names = []
    for module in pkgutil.walk_packages(agentdesk.__path__, "agentdesk."):
        if module.name.startswith("agentdesk.tui") or module.name == "agentdesk.__main__":
            continue
        names.append(module.name)
    return names


def _loads_textual(code: str) -> bool:
    probe = f"import sys\n{code}\nprint('textual' in sys.modules or any(m.startswith('textual.') for m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().endswith("True")


def test_there_are_headless_modules_to_check():
    modules = _headless_modules()
    assert "agentdesk.cli" in modules and "agentdesk.store.db" in modules and "agentdesk.domain.queue" in modules


def test_no_headless_module_imports_textual():
    modules = _headless_modules()
    if not _loads_textual("\n".join(f"import {name}" for name in modules)):
        return
    # Something loaded it: name the culprits, one fresh interpreter per module.
    offenders = [name for name in modules if _loads_textual(f"import {name}")]
    assert offenders == []


@pytest.mark.parametrize("command", [["list", "--json"], ["stats", "--json"], ["audit", "--json"], ["doctor"]])
def test_headless_commands_never_load_textual(tmp_path, command):
    config = tmp_path / "c.toml"
    config.write_text(f'[database]\nurl = "sqlite:///{tmp_path / "x.db"}"\n')
    code = (
        "from agentdesk.cli import main\n"
        f"code = main(['--config', {str(config)!r}, *{command!r}])\n"
        "assert code == 0, code"
    )
    assert not _loads_textual(code)


def test_the_tui_itself_does_load_textual():
    """The probe can fail: importing the TUI package must show up."""
    assert _loads_textual("import agentdesk.tui.app")


def test_import_linter_contract_holds():
    lint = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    if lint is None:
        pytest.fail("lint-imports is missing: install the test extra (pip install -e '.[test]')")
    result = subprocess.run([lint], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
