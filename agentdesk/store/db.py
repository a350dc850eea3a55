"""The engine: SQLite pragmas, transactions that don't deadlock, and schema migrations.

`open_database(url)` is what every command calls: it creates the database when it is missing and
upgrades it when an older version of agentdesk wrote it (DESIGN: any command creates or upgrades
the database it is pointed at).

Migrations follow Alembic's cookbook for applications: a new database is created from the models
in one step and stamped with the newest revision; an existing one runs the migrations between its
revision and the newest, in order, each in its own transaction. Migrations are plain functions in
`agentdesk/store/migrations.py` and use Alembic's `Operations` for portable DDL.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

from sqlalchemy import event, text
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import OperationalError
from sqlmodel import Session, create_engine

from agentdesk.errors import AgentdeskError, ConfigError
from agentdesk.store import models  # noqa: F401  (registers the tables on SQLModel.metadata)

# How long a writer waits for another writer before SQLite says "database is locked".
BUSY_TIMEOUT_MS = 15_000


class DatabaseError(AgentdeskError):
    """The database cannot be opened, created or upgraded."""


def sqlite_path(url: str) -> Path | None:
    """The file of a SQLite URL; None for other databases and in-memory ones."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        return None
    return Path(parsed.database)


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
                    raise
                if time.monotonic() >= deadline:
                    raise WrappedOperationalError("BEGIN IMMEDIATE", (), error) from None
                time.sleep(random.uniform(*_WRITE_LOCK_POLL))
    finally:
        cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        cursor.close()


def create_database_engine(url: str) -> Engine:
    try:
        parsed = make_url(url)
    except Exception:
        raise ConfigError(f"database.url: {url!r} is not a database URL; expected sqlite:////path.db or postgresql://…")
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        path = sqlite_path(url)
        if path is not None:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as error:
                raise DatabaseError(f"cannot create the database directory {path.parent}: {error}")
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
                "database.url: PostgreSQL needs the psycopg driver; install it with "
                "pip install 'agentdesk[postgres]'"
            ) from None
        return create_engine(parsed, pool_pre_ping=True, pool_size=5, max_overflow=10)
    raise ConfigError(f"database.url: unsupported database {backend!r}; expected sqlite or postgresql")


def open_database(url: str) -> Engine:
    """Create or upgrade the database at `url` and return an engine for it."""
    engine = create_database_engine(url)
    try:
        ensure_schema(engine)
    except OperationalError as error:
        raise DatabaseError(f"cannot open the database {url}: {error.orig}") from None
    return engine


def schema_revision(connection: Connection) -> int | None:
    """The revision the database is at, or None when agentdesk never wrote to it."""
    from sqlalchemy import inspect

    if not inspect(connection).has_table("schema_revision"):
        return None
    return connection.execute(text("SELECT max(revision) FROM schema_revision")).scalar()


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
    "open_database",
    "create_database_engine",
    "write_session",
    "read_session",
    "database_size",
    "describe_url",
]
