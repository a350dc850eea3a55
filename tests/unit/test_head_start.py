"""`head_start`: when `sync --once` may begin before the database layer is imported, and when the
normal path must not use what it began (tests/integration/email/test_sync.py runs it for real)."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from agentdesk import head_start
from agentdesk.head_start import Checkpoint, HeadStart


def _settings(tmp_path: Path, *, url: str | None = None, mailboxes: int = 1, folders=("INBOX",), spool=()):
    mailbox = [SimpleNamespace(name=f"m{n}", folders=list(folders), after_fetch="keep") for n in range(mailboxes)]
    return SimpleNamespace(mailbox=mailbox, spool=list(spool),
                           database_url=url if url is not None else f"sqlite:///{tmp_path / 'agentdesk.db'}")


def _args(*, once: bool = True, source: str | None = None):
    return SimpleNamespace(once=once, source=source)


def _database(path: Path, *, revision: int | None = 7, rows=()) -> Path:
    connection = sqlite3.connect(path)
    connection.execute("CREATE TABLE syncstate (id INTEGER PRIMARY KEY, source TEXT, folder TEXT, "
                       "uidvalidity INTEGER, last_uid INTEGER)")
    if revision is not None:
        connection.execute("CREATE TABLE schema_revision (revision INTEGER PRIMARY KEY, name TEXT, applied_at TEXT)")
        connection.execute("INSERT INTO schema_revision VALUES (?, 'x', 'now')", (revision,))
    connection.executemany("INSERT INTO syncstate (source, folder, uidvalidity, last_uid) VALUES (?, ?, ?, ?)", rows)
    connection.commit()
    connection.close()
    return path


def test_a_first_sync_starts_from_no_checkpoint(tmp_path):
    plan = HeadStart.plan(_settings(tmp_path), _args())
    assert plan is not None
    assert plan.checkpoint == Checkpoint(revision=None, uidvalidity=None, last_uid=None)
    assert not (tmp_path / "agentdesk.db").exists()  # reading never creates the database


def test_the_checkpoint_is_read_with_its_revision(tmp_path):
    _database(tmp_path / "agentdesk.db", rows=[("m0", "INBOX", 55, 1200), ("m0", "Other", 56, 3)])
    plan = HeadStart.plan(_settings(tmp_path), _args())
    assert plan.checkpoint == Checkpoint(revision=7, uidvalidity=55, last_uid=1200)


@pytest.mark.parametrize("change", [
    dict(args=_args(once=False)),
    dict(args=_args(source="m0")),
    dict(settings=dict(mailboxes=2)),
    dict(settings=dict(mailboxes=0)),
    dict(settings=dict(folders=("INBOX", "Archive"))),
    dict(settings=dict(spool=[SimpleNamespace(name="sms")])),
    dict(settings=dict(url="postgresql://desk@localhost/desk")),
    dict(settings=dict(url="sqlite://")),
    dict(settings=dict(url="sqlite:///:memory:")),
    dict(settings=dict(url="sqlite:///{db}?mode=ro")),
])
def test_anything_unusual_takes_the_normal_path(tmp_path, change):
    settings = dict(change.get("settings", {}))
    if "url" in settings:
        settings["url"] = settings["url"].format(db=tmp_path / "agentdesk.db")
    assert HeadStart.plan(_settings(tmp_path, **settings), change.get("args", _args())) is None


@pytest.mark.parametrize("database", [
    "not a database", "no schema revision", "empty schema revision", "two rows for the folder", "a text uid",
])
def test_a_database_this_read_does_not_understand_takes_the_normal_path(tmp_path, database):
    path = tmp_path / "agentdesk.db"
    if database == "not a database":
        path.write_bytes(b"x" * 4096)
    elif database == "no schema revision":
        _database(path, revision=None)
    elif database == "empty schema revision":
        _database(path)
        with sqlite3.connect(path) as connection:
            connection.execute("DELETE FROM schema_revision")
    elif database == "two rows for the folder":
        _database(path, rows=[("m0", "INBOX", 1, 1), ("m0", "INBOX", 1, 2)])
    else:
        _database(path, rows=[("m0", "INBOX", 1, "12x")])
    assert HeadStart.plan(_settings(tmp_path), _args()) is None


def test_a_broken_config_is_left_to_the_normal_path(tmp_path):
    def broken():
        raise ValueError("bad config")

    assert HeadStart.begin(broken, _args()) is None


class _Closable:
    def __init__(self):
        self.closed = False

    def close(self):
        self.closed = True

    def shutdown(self, cancel_futures=False):
        self.closed = True


MAILBOX = SimpleNamespace(name="m0", folders=["INBOX"], after_fetch="keep")


def _head(tmp_path, checkpoint: Checkpoint, **kwargs) -> HeadStart:
    return HeadStart(mailbox=SimpleNamespace(**vars(MAILBOX)), folder="INBOX", database=tmp_path / "agentdesk.db", checkpoint=checkpoint,
                     connection=_Closable(), pool=_Closable(), batches=["batch"], **kwargs)


def _row(uidvalidity, last_uid):
    return SimpleNamespace(uidvalidity=uidvalidity, last_uid=last_uid)


NO_DATABASE = Checkpoint(revision=None, uidvalidity=None, last_uid=None)
AT_1200 = Checkpoint(revision=7, uidvalidity=55, last_uid=1200)


@pytest.mark.parametrize("checkpoint, row", [(NO_DATABASE, None), (AT_1200, _row(55, 1200)),
                                             (Checkpoint(revision=7, uidvalidity=None, last_uid=None), None)])
def test_the_normal_path_takes_a_head_start_from_the_checkpoint_it_reads(tmp_path, checkpoint, row):
    head = _head(tmp_path, checkpoint)
    assert head.take(MAILBOX, "INBOX", row, 7, tmp_path / "agentdesk.db") is head
    assert not head.connection.closed and not head.pool.closed
    assert head.take(MAILBOX, "INBOX", row, 7, tmp_path / "agentdesk.db") is None  # once


@pytest.mark.parametrize("case, checkpoint, take", [
    # Another sync stored mail (or created the row) between the two reads.
    ("checkpoint moved", AT_1200, dict(row=_row(55, 1300))),
    ("row created meanwhile", NO_DATABASE, dict(row=_row(55, 10))),
    ("row gone", AT_1200, dict(row=None)),
    ("uidvalidity rewritten", AT_1200, dict(row=_row(56, 1200))),
    # The database was upgraded by this agentdesk, or is not the one read early.
    ("other revision", AT_1200, dict(revision=8)),
    ("other database", AT_1200, dict(database="other.db")),
    ("no database file", AT_1200, dict(database=None)),
    ("other mailbox", AT_1200, dict(mailbox=SimpleNamespace(name="m1", folders=["INBOX"], after_fetch="keep"))),
    ("mailbox changed", AT_1200, dict(mailbox=SimpleNamespace(name="m0", folders=["INBOX"], after_fetch="seen"))),
    ("other folder", AT_1200, dict(folder="Archive")),
])
def test_a_head_start_that_is_not_what_the_normal_path_would_do_is_discarded(tmp_path, case, checkpoint, take):
    head = _head(tmp_path, checkpoint)
    connection, pool = head.connection, head.pool
    database = take.get("database", "agentdesk.db")
    taken = head.take(take.get("mailbox", MAILBOX), take.get("folder", "INBOX"), take.get("row", _row(55, 1200)),
                      take.get("revision", 7), tmp_path / database if database else None)
    assert taken is None, case
    assert connection.closed and pool.closed and head.batches == []


def test_a_failed_head_start_is_discarded(tmp_path):
    head = _head(tmp_path, NO_DATABASE, error=OSError("connection refused"))
    connection = head.connection
    assert head.take(MAILBOX, "INBOX", None, 7, tmp_path / "agentdesk.db") is None
    assert connection.closed


def test_discard_after_take_leaves_the_taken_work_alone(tmp_path):
    head = _head(tmp_path, NO_DATABASE)
    assert head.take(MAILBOX, "INBOX", None, 7, tmp_path / "agentdesk.db") is head
    head.discard()
    assert not head.connection.closed


def test_it_imports_no_database_layer():
    code = ("import sys, agentdesk.head_start, agentdesk.sync_batches; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('sqlalchemy', 'sqlmodel', 'pydantic')))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_sqlite_file():
    assert head_start.sqlite_file("sqlite:////var/lib/desk.db") == Path("/var/lib/desk.db")
    assert head_start.sqlite_file("sqlite:///desk.db") == Path("desk.db")
    assert head_start.sqlite_file("sqlite+pysqlite:///desk.db") is None


@pytest.mark.parametrize("argv, config_path", [
    (["sync", "--once"], None),
    (["--config", "a.toml", "sync", "--once"], Path("a.toml")),
    (["sync", "--once", "--config", "a.toml"], Path("a.toml")),
    (["--config=a.toml", "sync", "--once"], Path("a.toml")),
])
def test_the_program_begins_early_for_exactly_sync_once(monkeypatch, argv, config_path):
    from agentdesk import cli

    begun = []
    monkeypatch.setattr(HeadStart, "begin", classmethod(lambda cls, settings, args: begun.append(args) or "head"))
    early = cli._EarlyHeadStart.begin(argv)
    assert (early.config_path, early.head_start, begun[0].once, begun[0].source) == (config_path, "head", True, None)


@pytest.mark.parametrize("argv", [
    [], ["sync"], ["sync", "--once", "--source", "support"], ["--config", "a.toml", "sync"], ["sync", "--once", "-h"],
    ["list"], ["sync", "--once", "--config"], ["--config=", "sync", "--once"], ["sync", "--once", "extra"],
])
def test_anything_else_on_the_command_line_is_left_to_the_parser(monkeypatch, argv):
    from agentdesk import cli

    monkeypatch.setattr(HeadStart, "begin", classmethod(lambda cls, settings, args: pytest.fail("began")))
    assert cli._EarlyHeadStart.begin(argv) is None


@pytest.mark.parametrize("args, taken", [
    (SimpleNamespace(config=Path("a.toml"), once=True, source=None), True),
    (SimpleNamespace(config=Path("b.toml"), once=True, source=None), False),
    (SimpleNamespace(config=None, once=True, source=None), False),
    (SimpleNamespace(config=Path("a.toml"), once=False, source=None), False),
    (SimpleNamespace(config=Path("a.toml"), once=True, source="support"), False),
])
def test_the_sync_command_takes_it_only_for_the_arguments_it_began_for(args, taken):
    from agentdesk import cli

    class Head:
        discarded = False

        def discard(self):
            self.discarded = True

    head = Head()
    early = cli._EarlyHeadStart(Path("a.toml"), head)
    assert (early.take(args) is head) == taken
    assert head.discarded == (not taken)
