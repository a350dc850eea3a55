"""A team's shared SQLite database with everyone's default umask (022), on real files.

In a group-shared data directory the database, its -wal and -shm and the sync lock are created
group-writable whatever the umask, so a second agent (another Unix user of the group) can write;
`doctor` names the files the group cannot write and the command that fixes them; a read-only
database is one line in the CLI and a notification in the TUI, never a traceback.
"""

from __future__ import annotations

import grp
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from agentdesk import cli, config
from agentdesk.store import db, locks, shared_files

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
AS_ROOT = os.getuid() == 0
OTHER_USER = "nobody"


@pytest.fixture
def umask_022():
    previous = os.umask(0o022)
    yield
    os.umask(previous)


@pytest.fixture
def team_dir():
    """A data directory shared the docs/teams.md way (setgid, group-writable), reachable by another
    user (pytest's own tmp dirs are 0700)."""
    root = Path(tempfile.mkdtemp(prefix="agentdesk-team-"))
    os.chmod(root, 0o755)
    data = root / "data"
    data.mkdir()
    group = grp.getgrnam("users").gr_gid if AS_ROOT else os.getgid()
    if AS_ROOT:
        os.chown(data, 0, group)
    os.chmod(data, 0o2775)
    yield data
    shutil.rmtree(root, ignore_errors=True)


def _config(data: Path) -> Path:
    path = data / "config.toml"
    url = f"sqlite:///{data / 'agentdesk.db'}"
    path.write_text(
        f"[database]\nurl = {config.toml_string(url)}\n"
        f"[templates]\ndir = {config.toml_string(str(data / 'templates'))}\n",
        encoding="utf-8",
    )
    os.chmod(path, 0o644)
    return path


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _as_other_user(*args: str) -> subprocess.CompletedProcess:
    """`python -m agentdesk ARGS` as another user of the directory's group, with their own umask 022."""
    group = grp.getgrnam("users").gr_gid
    command = [
        "setpriv",
        f"--reuid={OTHER_USER}",
        f"--regid={group}",
        "--clear-groups",
        "--",
        sys.executable,
        "-c",
        "import os, sys; os.umask(0o022); sys.path.insert(0, sys.argv[1]); "
        "from agentdesk.cli import run; sys.argv = ['agentdesk', *sys.argv[2:]]; run()",
        str(ROOT),
        *args,
    ]
    return subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": os.environ["PATH"], "HOME": "/tmp", "USER": OTHER_USER, "TZ": "UTC"},
    )


def test_files_of_a_shared_database_are_group_writable_whatever_the_umask(team_dir, umask_022):
    config_path = _config(team_dir)
    assert cli.main(["--config", str(config_path), "stats"]) == 0  # creates the database
    database = team_dir / "agentdesk.db"
    engine = db.open_database(f"sqlite:///{database}")
    try:
        with engine.begin() as connection:  # a write: SQLite makes -wal and -shm
            connection.exec_driver_sql(
                "INSERT INTO schema_revision (revision, name, applied_at) VALUES (9999, 'probe', 'now')"
            )
            connection.exec_driver_sql("DELETE FROM schema_revision WHERE revision = 9999")
        with locks.sync_lock(engine):
            files = shared_files.database_files(database)
            assert all(file.exists() for file in files), files
            for file in files:
                assert _mode(file) & 0o060 == 0o060, (file, oct(_mode(file)))
                assert file.stat().st_gid == team_dir.stat().st_gid
    finally:
        engine.dispose()


def test_a_private_directory_keeps_the_umask(tmp_path, umask_022):
    os.chmod(tmp_path, 0o755)
    assert cli.main(["--config", str(_config(tmp_path)), "stats"]) == 0
    assert _mode(tmp_path / "agentdesk.db") == 0o644


@pytest.mark.skipif(not AS_ROOT or shutil.which("setpriv") is None, reason="needs root to act as a second user")
def test_a_second_agent_writes_the_database_the_first_created(team_dir, umask_022):
    config_path = _config(team_dir)
    factories_conversation = _a_conversation(config_path)
    result = _as_other_user("--config", str(config_path), "set", factories_conversation, "--priority", "high")
    assert result.returncode == 0, result.stderr
    shown = _as_other_user("--config", str(config_path), "show", factories_conversation, "--json")
    assert json.loads(shown.stdout)["priority"] == "high"


@pytest.mark.skipif(not AS_ROOT or shutil.which("setpriv") is None, reason="needs root to act as a second user")
def test_a_read_only_database_is_one_line_with_the_fix(team_dir):
    config_path = _config(team_dir)
    reference = _a_conversation(config_path)
    database = team_dir / "agentdesk.db"
    # As the first agent's umask 022 left it before agentdesk made it group-writable.
    for file in shared_files.database_files(database):
        if file.exists():
            os.chmod(file, 0o644)
    result = _as_other_user("--config", str(config_path), "set", reference, "--priority", "high")
    assert result.returncode != 0
    assert "Traceback" not in result.stderr and result.stderr.count("\n") == 1, result.stderr
    assert "read-only for this user" in result.stderr
    assert f"chmod g+rw {database}" in result.stderr

    # The other agent's doctor says who can mend it, and how (the owner's next command mends it too).
    doctor = _as_other_user("--config", str(config_path), "doctor", "--json")
    assert doctor.returncode == 1
    sharing = {check["name"]: check for check in json.loads(doctor.stdout)}["database sharing"]
    assert sharing["status"] == "fail" and "the group cannot write it" in sharing["detail"]
    assert sharing["fix"].startswith("as root: chgrp users ") and f"chmod g+rw {database}" in sharing["fix"]


def test_doctor_names_the_files_the_group_cannot_write(team_dir, umask_022, capsys):
    config_path = _config(team_dir)
    assert cli.main(["--config", str(config_path), "stats"]) == 0
    capsys.readouterr()
    database = team_dir / "agentdesk.db"
    code, checks = _doctor(config_path)
    assert checks["database sharing"]["status"] == "ok"
    os.chmod(database, 0o644)
    if AS_ROOT:  # another agent's file: this user cannot mend it, doctor says who can
        os.chown(database, 65534, team_dir.stat().st_gid)
        code, checks = _doctor(config_path)
        sharing = checks["database sharing"]
        assert code == 1 and sharing["status"] == "fail"
        assert str(database) in sharing["detail"] and "the group cannot write it" in sharing["detail"]
        assert sharing["fix"] == (
            f"as {OTHER_USER} or root: chgrp {shared_files.directory_group(team_dir)} "
            f"{database} && chmod g+rw {database}"
        )
    else:  # this user's own file: any command mends it
        _doctor(config_path)
        assert _mode(database) & 0o060 == 0o060


def _doctor(config_path: Path) -> tuple[int, dict[str, dict]]:
    result = subprocess.run(
        [sys.executable, "-m", "agentdesk", "--config", str(config_path), "doctor", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    return result.returncode, {check["name"]: check for check in json.loads(result.stdout)}


def _a_conversation(config_path: Path) -> str:
    from datetime import datetime, timezone

    import factories

    from agentdesk.domain import clocks

    settings = config.load(config_path)
    engine = db.open_database(settings.database_url)
    try:
        outcome = factories.ingest(
            engine,
            clocks.Policies.from_settings(settings),
            factories.inbound(
                sender="anke@example.com",
                name="Anke",
                subject="Where is my order?",
                body="Hello",
                at=datetime.now(timezone.utc),
            ),
        )
    finally:
        engine.dispose()
    return f"AD-{outcome.conversation_id}"
