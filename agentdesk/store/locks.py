"""One `agentdesk sync` per team: a second one exits with a clear message instead of racing.

SQLite: an exclusive `flock` on `<database>.sync.lock` beside the database (the kernel releases
it when the process dies, so a crash never leaves a stale lock). PostgreSQL: a session-level
advisory lock held on a dedicated connection for the life of the sync.
"""

from __future__ import annotations

import contextlib
import fcntl
import getpass
import json
import os
import socket
from collections.abc import Iterator
from datetime import datetime, timezone

from sqlalchemy.engine import Engine

from agentdesk.errors import Conflict
from agentdesk.store import db, shared_files

SYNC_LOCK_KEY = 4242002


@contextlib.contextmanager
def sync_lock(engine: Engine, *, by: str = "agentdesk sync") -> Iterator[None]:
    """`by`: what holds it, as a second sync's message names it (`agentdesk sync`, the TUI)."""
    holder = {
        "by": by,
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "user": getpass.getuser(),
        "since": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    if engine.dialect.name == "postgresql":
        with engine.connect() as connection:
            if not connection.exec_driver_sql(f"SELECT pg_try_advisory_lock({SYNC_LOCK_KEY})").scalar():
                raise Conflict(
                    "another `agentdesk sync` is already running against this database; "
                    "one sync serves the whole team (see docs/teams.md)"
                )
            try:
                yield
            finally:
                connection.exec_driver_sql(f"SELECT pg_advisory_unlock({SYNC_LOCK_KEY})")
        return
    path = db.sqlite_path(str(engine.url))
    if path is None:  # an in-memory database is private to this process
        yield
        return
    lock_path = path.with_name(path.name + ".sync.lock")
    handle = open(shared_files.open_lock_file(lock_path), "r+")  # noqa: SIM115  (held for the lock's life)
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            try:
                other = json.loads(handle.read() or "{}")
            except ValueError:
                other = {}
            who = (
                (
                    f" (pid {other.get('pid')} on {other.get('host')}, user {other.get('user')}, "
                    f"since {other.get('since')})"
                )
                if other
                else ""
            )
            what = other.get("by", "agentdesk sync")
            hint = (
                ("; it hands over when closed, or set [ui] sync = false in that agent's config (docs/tui.md)")
                if what != "agentdesk sync"
                else ""
            )
            raise Conflict(f"another `{what}` is already running{who}; one sync serves the whole team{hint}") from None
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps(holder))
        handle.flush()
        yield
    finally:
        handle.close()
