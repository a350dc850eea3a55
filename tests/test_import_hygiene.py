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


# --- what a command's start loads ---------------------------------------------------------------
#
# A command's time is mostly its imports (docs/PERFORMANCE.md, "Start-up"): each loads what it
# uses and nothing else. These name what the quick paths must not load, so a module-level import
# that drags one in fails here, without a timed test.

# Not used by reading the queue or a conversation, nor by the TUI's start: mail and webhook
# protocols, sign-in, templating, migrations, the demo builder, the ingest path.
NOT_FOR_READING = (
    "agentdesk.channels",
    "agentdesk.demo",
    "agentdesk.domain.receipts",
    "agentdesk.ingest",
    "agentdesk.sync",
    "alembic",
    "email.feedparser",
    "email.parser",
    "imaplib2",
    "jinja2",
    "keyring",
    "oauthlib",
    "phonenumbers",
)


def _loaded(code: str) -> set[str]:
    probe = f"import sys\n{code}\nprint(' '.join(sorted(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    return set(result.stdout.split("\n")[-2].split())


def _offenders(loaded: set[str], forbidden: tuple[str, ...]) -> list[str]:
    return sorted(name for name in loaded if any(name == f or name.startswith(f + ".") for f in forbidden))


@pytest.fixture(scope="module")
def small_demo(tmp_path_factory):
    from agentdesk.demo import build

    return build.ensure_demo(tmp_path_factory.mktemp("demo"), conversations=20)


@pytest.mark.parametrize("command", [["list", "--limit", "50", "--json"], ["show", "AD-1", "--json"]])
def test_reading_commands_load_no_mail_templating_or_ui(small_demo, command):
    code = (
        "from agentdesk.cli import main\n"
        "import contextlib, io\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        f"    code = main(['--config', {str(small_demo)!r}, *{command!r}])\n"
        "assert code == 0, code"
    )
    loaded = _loaded(code)
    assert "agentdesk.store.queries" in loaded  # the probe ran the command
    assert _offenders(loaded, (*NOT_FOR_READING, "textual", "agentdesk.tui")) == []


def test_the_program_s_help_loads_no_database_layer():
    """Every command builds the whole parser; `--help` and `--version` do nothing else."""
    code = (
        "sys.argv = ['agentdesk', '--help']\n"
        "from agentdesk.__main__ import main\n"
        "try:\n"
        "    main()\n"
        "except SystemExit as end:\n"
        "    assert end.code == 0, end.code\n"
    )
    loaded = _loaded(code)
    assert "agentdesk.cli.parser" in loaded
    assert _offenders(loaded, ("sqlalchemy", "sqlmodel", "pydantic", "textual", "agentdesk.store.models")) == []


def test_the_tui_start_loads_no_mail_or_ingest():
    loaded = _loaded("import agentdesk.cli.admin, agentdesk.tui.app")
    assert "agentdesk.tui.screens.main" in loaded
    assert _offenders(loaded, NOT_FOR_READING) == []


# The database layer a front end opens to read and write; the TUI's first frame is drawn without it.
ORM = ("sqlalchemy", "sqlmodel", "pydantic", "agentdesk.store.models", "agentdesk.store.queries")


def _headless(probe: str) -> subprocess.CompletedProcess:
    """Run `probe` in a fresh interpreter with Textual's headless driver (no terminal needed)."""
    import os

    environment = {**os.environ, "TEXTUAL_DRIVER": "textual.drivers.headless_driver:HeadlessDriver"}
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, env=environment, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return result


# Runs the program as `agentdesk --config C` does (headless, so no terminal is needed) and notes
# what is loaded at the moment the first rows reach the queue: all that is left of the first frame
# is drawing them. Then it quits.
_FIRST_FRAME_PROBE = """
import sys
from agentdesk.tui.widgets.queue_view import QueueView

first = QueueView.on_queue_view__reloaded
seen = {}

def noted(self, message):
    if not seen:
        seen["rows"] = message.count
        seen["loaded"] = sorted(sys.modules)
        self.app.call_later(self.app.exit)
    return first(self, message)

QueueView.on_queue_view__reloaded = noted
from agentdesk.cli import main
code = main(["--config", CONFIG])
assert code == 0, code
print(seen["rows"])
print(" ".join(seen["loaded"]))
"""


def test_the_tui_draws_its_first_rows_before_loading_the_database_layer(small_demo):
    probe = _FIRST_FRAME_PROBE.replace("CONFIG", repr(str(small_demo)))
    result = _headless(probe)
    rows, loaded = result.stdout.strip().split("\n")[-2:]
    assert int(rows) > 0  # the probe saw the demo's rows
    modules = set(loaded.split())
    assert "agentdesk.tui.screens.main" in modules
    assert _offenders(modules, ORM) == []


def test_the_tui_opens_a_database_to_upgrade_before_its_first_frame(tmp_path):
    """A database not at the current schema is created (or upgraded) before anything reads it."""

    config = tmp_path / "c.toml"
    database = tmp_path / "new.db"
    config.write_text(f'[database]\nurl = "sqlite:///{database}"\n')
    probe = _FIRST_FRAME_PROBE.replace("CONFIG", repr(str(config)))
    result = _headless(probe)
    assert database.exists()
    assert "agentdesk.store.migrations" in result.stdout.split("\n")[-2].split()


# Runs the program headless until the database layer is loaded, noting every module of the ORM
# imported before then and the thread that imported it.
_LAYER_PROBE = """
import sys, threading
from agentdesk.app import layer as desk

ORM_PREFIXES = ("sqlalchemy", "sqlmodel", "pydantic", "agentdesk.store.models", "agentdesk.store.queries")
imported = []


class Noted:
    def find_spec(self, name, path=None, target=None):
        if name.startswith(ORM_PREFIXES) and not desk._database_layer_loaded.is_set():
            imported.append((threading.current_thread().name, name))
        return None


sys.meta_path.insert(0, Noted())
from agentdesk.tui.app import AgentDeskApp

mounted = AgentDeskApp.on_mount


def on_mount(self):
    def done_when_loaded():
        if desk._database_layer_loaded.is_set():
            self.set_timer(0.5, self.exit)  # what the layer's first users do next runs too
        else:
            self.set_timer(0.05, done_when_loaded)

    done_when_loaded()
    return mounted(self)


AgentDeskApp.on_mount = on_mount
from agentdesk.cli import main
code = main(["--config", CONFIG])
assert code == 0, code
print(sorted({thread for thread, _ in imported}))
print(len(imported))
"""


def test_the_tui_imports_the_database_layer_in_one_thread_while_the_others_wait(small_demo):
    """Right after the first frame several threads start at once (the loader, the counts, the
    database watcher, alerts, presence, the app's own sync). Had each imported SQLAlchemy itself,
    one of them could get a module still half-initialised (an ImportError, a crash at start some
    times in ten). The layer is imported by one thread, the others wait for it."""
    probe = _LAYER_PROBE.replace("CONFIG", repr(str(small_demo)))
    result = _headless(probe)
    threads, count = result.stdout.strip().split("\n")[-2:]
    assert int(count) > 0  # the probe saw the ORM being imported
    assert len(eval(threads)) == 1, threads


@pytest.fixture(scope="module")
def small_demo_on_postgresql(small_demo, postgres_server, tmp_path_factory) -> Path:
    """The small demo copied to a real PostgreSQL, and a config pointing at it."""
    url = postgres_server.create_database("first_frame")
    copied = subprocess.run(
        [sys.executable, "-m", "agentdesk", "--config", str(small_demo), "-q", "db", "copy", "--to", url],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert copied.returncode == 0, copied.stderr
    config = tmp_path_factory.mktemp("postgresql") / "config.toml"
    config.write_text(f'[database]\nurl = "{url}"\n')
    return config


def test_the_tui_draws_its_first_rows_on_postgresql_before_loading_the_database_layer(small_demo_on_postgresql):
    """On PostgreSQL too: the first rows come through psycopg alone, the ORM loads after them."""
    probe = _FIRST_FRAME_PROBE.replace("CONFIG", repr(str(small_demo_on_postgresql)))
    result = _headless(probe)
    rows, loaded = result.stdout.strip().split("\n")[-2:]
    assert int(rows) > 0  # the probe saw the demo's rows
    modules = set(loaded.split())
    assert "psycopg" in modules  # read through the driver
    assert _offenders(modules, ORM) == []


def test_the_tui_creates_a_new_postgresql_database_before_its_first_frame(postgres_server, tmp_path):
    import psycopg

    url = postgres_server.create_database("first_frame_new")
    config = tmp_path / "c.toml"
    config.write_text(f'[database]\nurl = "{url}"\n')
    probe = _FIRST_FRAME_PROBE.replace("CONFIG", repr(str(config)))
    result = _headless(probe)
    assert "agentdesk.store.migrations" in result.stdout.split("\n")[-2].split()
    with psycopg.connect(url) as connection:
        assert connection.execute("SELECT count(*) FROM schema_revision").fetchone()[0] > 0
