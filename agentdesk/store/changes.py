"""Knowing, cheaply, that another process changed the database: the TUI's live refresh.

SQLite: `PRAGMA data_version` on a connection of our own changes whenever another connection
commits; polling it costs microseconds. PostgreSQL: triggers `pg_notify` on every write to the
tables a screen shows, and a dedicated connection LISTENs. Either way the caller learns "something
changed", then re-reads only the window it shows.
"""

from __future__ import annotations

import time

from sqlalchemy.engine import Connection, Engine

CHANNEL = "agentdesk_changes"
WATCHED_TABLES = ("conversation", "message", "conversationtag", "outbox", "presence", "syncstate")

_POSTGRES_DDL = [
    f"""CREATE OR REPLACE FUNCTION agentdesk_notify_change() RETURNS trigger AS $$
    BEGIN
        PERFORM pg_notify('{CHANNEL}', TG_TABLE_NAME);
        RETURN NULL;
    END $$ LANGUAGE plpgsql""",
    *[
        statement
        for table in WATCHED_TABLES
        for statement in (
            f"DROP TRIGGER IF EXISTS agentdesk_notify ON {table}",
            f"""CREATE TRIGGER agentdesk_notify AFTER INSERT OR UPDATE OR DELETE ON {table}
                FOR EACH STATEMENT EXECUTE FUNCTION agentdesk_notify_change()""",
        )
    ],
]


def install(connection: Connection) -> None:
    """Create the change notifications (PostgreSQL; SQLite needs nothing)."""
    if connection.dialect.name == "postgresql":
        for statement in _POSTGRES_DDL:
            connection.exec_driver_sql(statement)


class ChangeWatcher:
    """`changed()` says whether anyone else wrote since the last call; `wait()` blocks for it."""

    POLL_SECONDS = 0.25

    def __init__(self, engine: Engine):
        self._engine = engine
        self._postgres = engine.dialect.name == "postgresql"
        if self._postgres:
            import psycopg

            url = engine.url.set(drivername="postgresql")
            self._listener = psycopg.connect(url.render_as_string(hide_password=False), autocommit=True)
            self._listener.execute(f"LISTEN {CHANNEL}")
        else:
            self._connection = engine.raw_connection()
            self._version = self._data_version()

    def _data_version(self) -> int:
        cursor = self._connection.cursor()
        try:
            cursor.execute("PRAGMA data_version")
            return cursor.fetchone()[0]  # type: ignore[index]  # PRAGMA data_version always has its one row
        finally:
            cursor.close()

    def changed(self) -> bool:
        if self._postgres:
            return self._drain(timeout=0)
        version = self._data_version()
        if version != self._version:
            self._version = version
            return True
        return False

    def wait(self, timeout: float) -> bool:
        """Block until a change or `timeout` seconds; True if something changed."""
        if self._postgres:
            return self._drain(timeout=timeout)
        deadline = time.monotonic() + timeout
        while True:
            if self.changed():
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            time.sleep(min(self.POLL_SECONDS, remaining))

    def _drain(self, timeout: float) -> bool:
        # psycopg's C wait treats a timeout of 0 as "no timeout": never pass it 0.
        seen = any(True for _ in self._listener.notifies(timeout=max(timeout, 0.001), stop_after=1))
        if seen:
            # Collapse a burst of notifications into one "changed".
            for _ in self._listener.notifies(timeout=0.001):
                pass
        return seen

    def close(self) -> None:
        if self._postgres:
            self._listener.close()
        else:
            self._connection.close()
