"""The engine: SQLite pragmas, transactions that don't deadlock, and schema migrations.

`open_database(url)` is what every command calls: it creates the database when it is missing and
upgrades it when an older version of agentdesk wrote it (DESIGN: any command creates or upgrades
the database it is pointed at). It creates the database's directory only for the default data
location; an explicit URL whose directory is missing is a mistake to report, not a tree to make.
Anything that keeps a database from opening (a file that is not a database, a damaged or truncated
one, a directory, permissions, an unreachable server, bad credentials) is one `DatabaseError` line
naming the file or server and what to do.

Migrations follow Alembic's cookbook for applications: a new database is created from the models
in one step and stamped with the newest revision; an existing one runs the migrations between its
revision and the newest, in order, each in its own transaction. Migrations are plain functions in
`agentdesk/store/migrations.py` and use Alembic's `Operations` for portable DDL.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

from sqlalchemy import event, text
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlmodel import Session, create_engine

from agentdesk import locations
from agentdesk.errors import AgentdeskError, ConfigError
from agentdesk.store import (
    models,  # noqa: F401  (registers the tables on SQLModel.metadata)
    shared_files,
)
from agentdesk.store.first_window import POSTGRES_CONNECT_TIMEOUT
from agentdesk.store.first_window import sqlite_path as sqlite_path  # re-exported: callers ask the store

# How long a writer waits for another writer before SQLite says "database is locked".
BUSY_TIMEOUT_MS = 15_000


class DatabaseError(AgentdeskError):
    """The database cannot be opened, created or upgraded."""


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):
        # Let SQLAlchemy, not the sqlite3 module, decide when transactions begin (the module's own
        # implicit BEGIN comes too late for BEGIN IMMEDIATE and breaks SAVEPOINTs).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection):
        # A deferred transaction that reads and then writes cannot wait for the lock: SQLite fails
        # it at once with "database is locked". Writers therefore ask for IMMEDIATE up front.
        mode = connection.get_execution_options().get("sqlite_begin", "DEFERRED")
        if mode == "IMMEDIATE":
            _let_other_writers_in(connection.engine.pool)
            _begin_immediate(connection.connection.dbapi_connection)
        else:
            connection.exec_driver_sql(f"BEGIN {mode}")


# How often a writer waiting for SQLite's write lock tries again, and how long a writer leaves
# the lock free after its commit. SQLite's own busy handler backs off to 100 ms sleeps, so a
# process that commits and begins again in a loop (the sync during a big import) takes the lock
# back every time and starves the agents (measured: p95 7 s, "database is locked" after 15 s).
# Polling every few milliseconds, with the lock left free a while after each commit, lets every
# waiting writer in.
_WRITE_LOCK_POLL = (0.0005, 0.003)
_PAUSE_AFTER_COMMIT = 0.004

# When this thread last committed a write, per engine (connection pool id). The pause is taken
# before the thread's next write transaction, less the time spent in between (a sync prepares
# its next chunk meanwhile), not slept right after the commit: the lock is free as long, and a
# writer that does not write again at once waits for nothing.
_last_commits = threading.local()


def _note_commit(session) -> None:
    committed = getattr(_last_commits, "at", None)
    if committed is None:
        committed = _last_commits.at = {}
    committed[id(session.get_bind().pool)] = time.monotonic()


def _let_other_writers_in(pool) -> None:
    committed = getattr(_last_commits, "at", {}).get(id(pool))
    if committed is not None:
        remaining = committed + _PAUSE_AFTER_COMMIT - time.monotonic()
        if remaining > 0:
            time.sleep(remaining)


def _begin_immediate(dbapi_connection) -> None:
    import random
    import sqlite3

    from sqlalchemy.exc import OperationalError as WrappedOperationalError

    cursor = dbapi_connection.cursor()
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    cursor.execute("PRAGMA busy_timeout = 0")
    try:
        while True:
            try:
                cursor.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as error:
                if "locked" not in str(error) and "busy" not in str(error):
                    # Read-only, damaged, disk full: a driver error as every statement's would be,
                    # which the callers turn into one line (`explain`).
                    raise WrappedOperationalError("BEGIN IMMEDIATE", (), error) from None
                if time.monotonic() >= deadline:
                    raise WrappedOperationalError("BEGIN IMMEDIATE", (), error) from None
                time.sleep(random.uniform(*_WRITE_LOCK_POLL))
    finally:
        cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        cursor.close()


def create_database_engine(url: str, *, create_directory: bool | None = None) -> Engine:
    """An engine for `url`; for SQLite, after checking that its file can be a database.

    `create_directory`: make a missing directory for the SQLite file. By default only the default
    data location is created; a caller that was given a directory to set up (init) passes True.
    """
    try:
        parsed = make_url(url)
    except Exception:
        raise ConfigError(
            f"database.url: {url!r} is not a database URL; expected sqlite:////path.db or postgresql://…"
        ) from None
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        path = sqlite_path(url)
        if path is not None:
            if create_directory is None:
                create_directory = url == locations.default_database_url()
            check_sqlite_file(path, create_directory=create_directory)
            shared_files.prepare(path)
        engine = create_engine(url, connect_args={"check_same_thread": False})
        _configure_sqlite(engine)
        return engine
    if backend == "postgresql":
        if "+" not in parsed.drivername:
            # `postgresql://` in the config means psycopg 3, the driver agentdesk installs.
            parsed = parsed.set(drivername="postgresql+psycopg")
        try:
            import psycopg  # noqa: F401
        except ImportError:
            raise ConfigError(
                "database.url: PostgreSQL needs the psycopg driver; install it with pip install 'agentdesk[postgres]'"
            ) from None
        # An unreachable host fails after this many seconds, not after the system's TCP timeout.
        connect_args = {} if "connect_timeout" in parsed.query else {"connect_timeout": POSTGRES_CONNECT_TIMEOUT}
        return create_engine(parsed, pool_pre_ping=True, pool_size=5, max_overflow=10, connect_args=connect_args)
    raise ConfigError(f"database.url: unsupported database {backend!r}; expected sqlite or postgresql")


# The first 16 bytes of every SQLite database file.
SQLITE_MAGIC = b"SQLite format 3\x00"


def check_sqlite_file(path: Path, *, create_directory: bool = False) -> None:
    """Refuse, in words, a SQLite path that cannot hold the database: before SQLite says it worse.

    An empty file is fine (SQLite treats it as an empty database), and so is a missing file in a
    directory that exists and can be written.
    """
    if path.is_dir():
        raise DatabaseError(
            f"the database path {path} is a directory, not a file; set database.url to a file "
            f"in it, e.g. sqlite:///{path / 'agentdesk.db'}"
        )
    directory = path.parent
    if not directory.is_dir():
        if directory.exists() or _blocking_file(directory) is not None:
            blocker = _blocking_file(directory) or directory
            raise DatabaseError(
                f"cannot use the database {path}: {blocker} is a file, not a directory; correct database.url"
            )
        if not create_directory:
            raise DatabaseError(
                f"the directory {directory} of the database {path} does not exist; create it "
                f"(mkdir -p {directory}) or correct database.url"
            )
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise DatabaseError(
                f"cannot create the database directory {directory}: {error.strerror or error}"
            ) from None
    if not path.exists():
        if not os.access(directory, os.W_OK | os.X_OK):
            raise DatabaseError(
                f"cannot create the database {path}: the directory {directory} is not writable "
                f"for this user; fix its permissions or correct database.url"
            )
        return
    try:
        with open(path, "rb") as file:
            header = file.read(100)
        size = path.stat().st_size
    except PermissionError:
        raise DatabaseError(
            f"cannot read the database {path}: permission denied; run agentdesk as a user "
            f"who can read and write it, or fix its permissions"
        ) from None
    except OSError as error:
        raise DatabaseError(f"cannot read the database {path}: {error.strerror or error}") from None
    _refuse_read_only(path)
    if not header:
        return
    if not header.startswith(SQLITE_MAGIC):
        raise DatabaseError(
            f"{path} is not a SQLite database (it holds something else); point database.url "
            f"at the agentdesk database, or move this file away to start a new one"
        )
    expected = _size_in_header(header)
    if len(header) < 100 or (expected is not None and size < expected and not _wal_has_frames(path)):
        raise DatabaseError(
            f"the database {path} is damaged: it is truncated ({size:,} of "
            f"{expected or 100:,} bytes); restore it from a backup"
        )


def _refuse_read_only(path: Path) -> None:
    """Every command may write (presence, migrations, the outbox), and WAL mode writes beside the
    file: a database this user cannot write fails at the first write, halfway through a command."""
    side_files = [Path(f"{path}-wal"), Path(f"{path}-shm")]
    # A -wal or -shm that another agent's umask left read-only to us fails our first write.
    unwritable = [f for f in side_files if f.exists() and not os.access(f, os.W_OK)]
    if not os.access(path, os.W_OK):
        blocked = path
    elif unwritable:
        blocked = unwritable[0]
    elif os.access(path.parent, os.W_OK | os.X_OK) or all(os.access(f, os.W_OK) for f in side_files):
        return
    else:
        blocked = path.parent
    raise DatabaseError(read_only_message(path, blocked))


def read_only_message(path: Path, blocked: Path | None = None) -> str:
    """One line: which file keeps this user from writing the database, and the command that fixes
    it (for a team's shared directory: group write on every database file, by their owner)."""
    import shlex

    where = f" ({blocked} is not writable)" if blocked is not None else ""
    head = (
        f"the database {path} is read-only for this user{where}; agentdesk writes to it and to "
        f"{path.name}-wal and {path.name}-shm beside it"
    )
    stuck = shared_files.problems(path)
    if stuck:
        owners = " or ".join(sorted({problem.owner for problem in stuck} | {"root"}))
        files = " ".join(shlex.quote(str(problem.file)) for problem in stuck)
        group = shared_files.directory_group(path.parent)
        return (
            f"{head}: {owners} can fix it with `chgrp {group} {files} && chmod g+rw {files}`; `agentdesk doctor` checks"
        )
    return f"{head}: fix the permissions of those files and of {path.parent}, or run agentdesk as their owner"


def _blocking_file(directory: Path) -> Path | None:
    """The nearest ancestor of `directory` that exists but is not a directory, if any."""
    for ancestor in (directory, *directory.parents):
        if ancestor.exists():
            return None if ancestor.is_dir() else ancestor
    return None


def _size_in_header(header: bytes) -> int | None:
    """The database size the header records, when the header says that record is valid."""
    page_size = int.from_bytes(header[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    pages = int.from_bytes(header[28:32], "big")
    change_counter, valid_for = header[24:28], header[92:96]
    if not pages or change_counter != valid_for or page_size < 512:
        return None
    return pages * page_size


def _wal_has_frames(path: Path) -> bool:
    # Pages committed but not yet checkpointed live in the -wal file; the database file alone may
    # then be shorter than the newest header says, without anything being wrong.
    wal = Path(f"{path}-wal")
    try:
        return wal.stat().st_size > 32
    except OSError:
        return False


def open_database(url: str, *, create_directory: bool | None = None) -> Engine:
    """Create or upgrade the database at `url` and return an engine for it."""
    engine = create_database_engine(url, create_directory=create_directory)
    try:
        ensure_schema(engine)
    except DBAPIError as error:
        engine.dispose()
        raise DatabaseError(explain(url, error)) from None
    return engine


def explain(url: str, error: BaseException) -> str:
    """One line for a database that would not open or failed under an action: which one, what is
    wrong, what to do.

    A full disk is recognised anywhere in the error's chain: SQLite may roll the whole transaction
    back on SQLITE_FULL, so what reaches the caller is often the next statement's failure ("no
    such savepoint") with the full disk as its context."""
    if disk_full_error(error) is not None:
        return _explain_disk_full(url)
    orig = getattr(error, "orig", None) or error
    reason = " ".join(str(orig).split()) or type(orig).__name__
    path = sqlite_path(url)
    if path is not None and "disk i/o error" in reason.lower():
        # SQLite says "disk I/O error", not "full", when its -wal or -shm file cannot grow.
        free = free_space(path.parent)
        if free is not None and free < NEARLY_FULL_BYTES:
            return _explain_disk_full(url)
        left = "" if free is None else f"; {human_bytes(free)} free in {path.parent}"
        return (
            f"the database {path} cannot be read or written: {reason}{left}; check the disk (dmesg) "
            f"and `agentdesk doctor`"
        )
    if path is None:
        where = describe_url(url)
        if "password authentication failed" in reason or "authentication failed" in reason:
            return f"cannot log in to the database {where}: {_postgres_reason(reason)}; check the user and password in database.url"
        if "does not exist" in reason:
            return f"cannot open the database {where}: {_postgres_reason(reason)}; create it or correct database.url"
        if "connection" in reason.lower() or "timeout" in reason.lower():
            return (
                f"cannot reach the database server of {where}: {_postgres_reason(reason)}; check that it is "
                f"running and that database.url names the right host and port"
            )
        return f"cannot open the database {where}: {_postgres_reason(reason)}"
    lowered = reason.lower()
    if "not a database" in lowered:
        return (
            f"{path} is not a SQLite database (it holds something else); point database.url at the "
            f"agentdesk database, or move this file away to start a new one"
        )
    if "malformed" in lowered or "corrupt" in lowered:
        return f"the database {path} is damaged ({reason}); restore it from a backup, or try `sqlite3 {path} .recover`"
    if "readonly" in lowered or "read-only" in lowered:
        return read_only_message(path)
    if "unable to open" in lowered:
        return (
            f"cannot open the database {path}: check that it is a file this user can read and write, "
            f"in a directory this user can write ({path.parent})"
        )
    if "locked" in lowered or "busy" in lowered:
        return (
            f"the database {path} stayed locked by another process for {BUSY_TIMEOUT_MS // 1000} s; "
            f"try again, or find the process that holds it"
        )
    return f"cannot open the database {path}: {reason}"


# SQLite's result code for a full disk, and the PostgreSQL SQLSTATE of "disk full".
SQLITE_FULL = 13
POSTGRES_DISK_FULL = "53100"
# Free space under which a disk I/O error on a SQLite file is taken for a full disk.
NEARLY_FULL_BYTES = 1024 * 1024
_DISK_FULL_WORDS = ("database or disk is full", "no space left on device", "disk full")


def disk_full_error(error: BaseException | None) -> BaseException | None:
    """The error in `error`'s chain (itself, the driver's error it wraps, its cause and context)
    that says the disk is full, or None."""
    seen: set[int] = set()
    pending = [error]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if _says_disk_full(current):
            return current
        pending.extend([getattr(current, "orig", None), current.__cause__, current.__context__])
    return None


def _says_disk_full(error: BaseException) -> bool:
    import errno

    if isinstance(error, OSError) and error.errno == errno.ENOSPC:
        return True
    if (
        getattr(error, "sqlite_errorcode", None) == SQLITE_FULL
        or getattr(error, "sqlstate", None) == POSTGRES_DISK_FULL
    ):
        return True
    if isinstance(error, DBAPIError):
        return False  # its driver error (orig) is looked at on its own
    lowered = str(error).lower()
    return any(words in lowered for words in _DISK_FULL_WORDS)


def free_space(path: Path) -> int | None:
    """Bytes free for this user on the file system holding `path` (or its nearest existing
    ancestor), or None when that cannot be told."""
    import shutil

    for candidate in (path, *path.parents):
        try:
            return shutil.disk_usage(candidate).free
        except FileNotFoundError:
            continue
        except OSError:
            return None
    return None


def human_bytes(size: int) -> str:
    """1 536 -> "1.5 KiB"; bytes under a KiB as they are."""
    if size < 1024:
        return f"{size} bytes"
    amount = float(size)
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        amount /= 1024
        if amount < 1024 or unit == "TiB":
            return f"{amount:.1f} {unit}"
    return f"{amount:.1f} TiB"  # pragma: no cover


def _explain_disk_full(url: str) -> str:
    path = sqlite_path(url)
    if path is None:
        return (
            f"the database server of {describe_url(url)} has no disk space left; nothing more can be "
            f"stored until space is freed on the server"
        )
    free = free_space(path.parent)
    left = "free space unknown" if free is None else f"{human_bytes(free)} free"
    return (
        f"the disk holding the database {path} is full ({left} in {path.parent}); nothing more can be "
        f"stored: free space there or move the database elsewhere (database.url)"
    )


def _postgres_reason(reason: str) -> str:
    # psycopg's messages carry a hint after the first sentence and "connection failed:" prefixes;
    # the first clause says what happened.
    reason = reason.removeprefix("connection failed: ")
    for hint in (" Is the server running", " HINT:", " DETAIL:"):
        reason = reason.split(hint)[0]
    return reason.strip().rstrip(".")[:300]


def schema_revision(connection: Connection) -> int | None:
    """The revision the database is at, or None when agentdesk never wrote to it."""
    from sqlalchemy import inspect

    if not inspect(connection).has_table("schema_revision"):
        return None
    return connection.execute(text("SELECT max(revision) FROM schema_revision")).scalar()


def stored_revision(url: str) -> int | None:
    """The schema revision of the database at `url` as it is, creating and upgrading nothing
    (None: no database there yet, or one agentdesk never wrote to)."""
    path = sqlite_path(url)
    if path is not None and not path.exists():
        return None
    engine = create_database_engine(url)
    try:
        with engine.connect() as connection:
            return schema_revision(connection)
    except DBAPIError as error:
        raise DatabaseError(explain(url, error)) from None
    finally:
        engine.dispose()


def sqlite_health(connection: Connection) -> tuple[str, str]:
    """A SQLite database's integrity verdict ("ok", or the first problem `PRAGMA quick_check`
    finds) and its journal mode (wal, delete, …)."""
    verdict = connection.exec_driver_sql("PRAGMA quick_check").scalar()
    mode = connection.exec_driver_sql("PRAGMA journal_mode").scalar()
    return str(verdict), str(mode)


def ensure_schema(engine: Engine) -> None:
    from agentdesk.store import migrations

    with engine.connect() as probe:
        current = schema_revision(probe)
    if current == migrations.HEAD:
        return
    if current is not None and current > migrations.HEAD:
        raise DatabaseError(
            f"the database is at schema revision {current}, newer than this agentdesk knows "
            f"({migrations.HEAD}); upgrade agentdesk"
        )
    with _migration_lock(engine) as connection:
        # Another process may have migrated while we waited for the lock.
        current = schema_revision(connection)
        if current is None:
            migrations.create_fresh(connection)
            _stamp(connection, migrations.HEAD, "create")
        else:
            for revision in range(current + 1, migrations.HEAD + 1):
                step = migrations.STEPS[revision]
                step(connection)
                _stamp(connection, revision, step.__name__)


def _stamp(connection: Connection, revision: int, name: str) -> None:
    connection.execute(
        text("INSERT INTO schema_revision (revision, name, applied_at) VALUES (:r, :n, :t)"),
        {"r": revision, "n": name, "t": datetime.now(timezone.utc).isoformat()},
    )


@contextlib.contextmanager
def _migration_lock(engine: Engine) -> Iterator[Connection]:
    """One transaction holding the write lock, so two processes never migrate at once."""
    options = {"sqlite_begin": "IMMEDIATE"} if engine.dialect.name == "sqlite" else {}
    with engine.connect().execution_options(**options) as connection:
        with connection.begin():
            if engine.dialect.name == "postgresql":
                connection.execute(text("SELECT pg_advisory_xact_lock(4242001)"))
            connection.execute(
                text(
                    "CREATE TABLE IF NOT EXISTS schema_revision ("
                    "revision INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
                )
            )
            yield connection


def write_session(engine: Engine) -> Session:
    """A session for work that writes: takes SQLite's write lock at BEGIN, so it waits instead of failing."""
    if engine.dialect.name != "sqlite":
        return Session(engine, expire_on_commit=False)
    session = Session(engine.execution_options(sqlite_begin="IMMEDIATE"), expire_on_commit=False)
    event.listen(session, "after_commit", _note_commit)
    return session


def read_session(engine: Engine) -> Session:
    return Session(engine, expire_on_commit=False)


def database_size(engine: Engine) -> int | None:
    path = sqlite_path(str(engine.url))
    if path is None or not path.exists():
        return None
    total = path.stat().st_size
    for suffix in ("-wal", "-shm"):
        extra = Path(str(path) + suffix)
        if extra.exists():
            total += extra.stat().st_size
    return total


def describe_url(url: str) -> str:
    """The URL with any password hidden, for messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url if "@" not in url else url.split("@")[-1]


__all__ = [
    "DatabaseError",
    # The failures callers outside store/ catch, so they need not name SQLAlchemy: any driver
    # error, and one of the database's operation (locked past the timeout, disk full, gone).
    "DBAPIError",
    "OperationalError",
    "open_database",
    "create_database_engine",
    "write_session",
    "read_session",
    "database_size",
    "describe_url",
    "explain",
    "disk_full_error",
    "free_space",
    "human_bytes",
    "check_sqlite_file",
]
