"""SQLite's write-ahead log during a big write (a first sync): how often the writer's own commits
copy it into the database file, and a thread that does the copying beside them instead.

Both are SQLite's alone; on PostgreSQL they do nothing.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from sqlmodel import Session

# The sync's log: these lines only ever speak of a sync's checkpoints.
log = logging.getLogger("agentdesk.sync")


def set_autocheckpoint(session: Session, pages: int) -> None:
    """Let the commits of the session's connection checkpoint the WAL only once it holds `pages`
    pages (SQLite's default is 1 000); nothing elsewhere."""
    if session.get_bind().dialect.name == "sqlite":
        session.connection().exec_driver_sql(f"PRAGMA wal_autocheckpoint = {int(pages)}")


class BackgroundCheckpoints:
    """Copies a SQLite database's WAL into the database file on its own connection and thread,
    after each commit of a big sync (PASSIVE: it never blocks a reader or a writer).

    Without it the sync's own commits ran the checkpoints, each copying and syncing ~40 MB while
    storing waited, and the close at exit copied what was left. The checkpoint runs in SQLite
    with the GIL released, so storing goes on meanwhile, and the WAL is restarted small whenever
    a checkpoint has caught up."""

    def __init__(self, path: Path):
        self._path = path
        self._wanted = threading.Event()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="sqlite-checkpoint", daemon=True)
        self._thread.start()

    def commit_done(self) -> None:
        self._wanted.set()

    def stop(self) -> None:
        self._stopping = True
        self._wanted.set()
        self._thread.join()

    def _run(self) -> None:
        import sqlite3

        try:
            connection = sqlite3.connect(self._path, check_same_thread=False, isolation_level=None)
        except sqlite3.Error as error:
            log.warning("background checkpoints of %s unavailable: %s", self._path, error)
            return
        try:
            while True:
                self._wanted.wait()
                self._wanted.clear()
                if self._stopping:
                    return
                try:
                    connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                except sqlite3.Error as error:  # another checkpoint runs, the disk is full: commits do it
                    log.debug("background checkpoint of %s skipped: %s", self._path, error)
        finally:
            connection.close()
