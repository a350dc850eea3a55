"""The acting agent's desk: settings, clock, database and SLA policies, shared by every action.

Both front ends make one: the CLI per command (a fixed `now`), the TUI per session (a live clock).
The actions in this package (`queue`, `conversations`, `customers`, `templates`, `presence`,
`reports`, `maintenance`) take it as their first argument and open their own transactions.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from functools import cached_property
from typing import TYPE_CHECKING, Any

from agentdesk import config

# The store (SQLAlchemy, SQLModel, the models) is imported where a desk first reads or writes, not
# here: the TUI draws its first frame from rows read with the sqlite3 module before that.
if TYPE_CHECKING:
    from sqlmodel import Session

    from agentdesk.domain import clocks

# A queued reply still not delivered this long after it was due: no sync is running (the worker
# passes every few seconds), and the header says so.
OVERDUE_AFTER = timedelta(minutes=1)


def system_now() -> datetime:
    return datetime.now(timezone.utc)


# The databases the desks of this process opened: the program closes them when its command ends
# (`close_databases`), so SQLite checkpoints its write-ahead log and removes it, as a clean exit should.
_opened_engines: weakref.WeakSet = weakref.WeakSet()


def close_databases() -> None:
    for engine in list(_opened_engines):
        engine.dispose()


@dataclass
class Desk:
    settings: config.Settings
    agent: str = field(default_factory=config.current_agent)
    now: Callable[[], datetime] = system_now

    engine_given: Any = None  # an engine the caller already opened (the CLI opens it to report errors plainly)

    def __post_init__(self) -> None:
        # Opened on first use, not here: the TUI's first frame needs only the prefetched rows, and
        # creating an engine (and checking the schema) is Python work that would hold the GIL meanwhile.
        self._engine = self.engine_given
        self._engine_lock = threading.Lock()
        # One write at a time from this desk: the TUI's workers would otherwise wait on each other's
        # SQLite write lock inside the database, where a busy timeout can expire.
        self.writing = threading.Lock()
        # State the actions keep between calls (see app.queue and app.templates).
        self.search_matches: dict[str, list[int]] = {}
        self.resolving_search = threading.Lock()
        self.prefetched: tuple[Any, int, Any] | None = None
        self.loaded_templates: list | None = None
        self.templates_stamp: tuple | None = None  # the templates directory when last read

    @property
    def engine(self):
        if self._engine is None:
            with self._engine_lock:
                if self._engine is None:
                    from agentdesk.store import db

                    self._engine = db.open_database(self.settings.database_url)
                    _opened_engines.add(self._engine)
        return self._engine

    @cached_property
    def policies(self) -> clocks.Policies:
        from agentdesk.domain import clocks

        return clocks.Policies.from_settings(self.settings)

    @property
    def agent_name(self) -> str:
        return self.settings.agent_name(self.agent)

    @property
    def agent_signature(self) -> str:
        return self.settings.agent_signature(self.agent)

    @contextmanager
    def read(self) -> Iterator[Session]:
        from agentdesk.store import db

        with self._plain_errors(), db.read_session(self.engine) as session:
            yield session

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A write transaction; the acting agent's row is kept in step with the config."""
        from agentdesk.domain import agents
        from agentdesk.store import db

        with self._plain_errors(), db.write_session(self.engine) as session:
            agents.ensure_agent(
                session, login=self.agent, name=self.agent_name, signature=self.agent_signature, now=self.now()
            )
            yield session

    @contextmanager
    def _plain_errors(self) -> Iterator[None]:
        """A database that fails under an action (damage deep in an otherwise valid file, a server
        gone) is one line naming it and what to do, in both front ends, not a driver's traceback."""
        from agentdesk.store import db

        try:
            yield
        except db.DBAPIError as error:
            raise db.DatabaseError(db.explain(self.settings.database_url, error)) from None


@dataclass(frozen=True)
class Header:
    """The masthead: this agent's load and every source's last sync."""

    agent: str
    agent_name: str
    assigned_open: int
    waiting: int
    sources: tuple[tuple[str, datetime | None, str], ...]  # (name, last sync, error)
    bounced: int = 0  # of the agent's conversations, how many have a reply that bounced
    overdue: int = 0  # queued replies due over a minute ago that nothing is delivering


def header(desk: Desk) -> Header:
    from agentdesk.store import outbox as outbox_queries
    from agentdesk.store import queries

    with desk.read() as session:
        load = queries.agent_load(session=session, agent=desk.agent)
        states = queries.sync_states(session=session)
        # Without a mailbox or spool no sync can deliver anything: the header says "no sources" instead.
        overdue = (
            outbox_queries.overdue(session=session, due_before=desk.now() - OVERDUE_AFTER)
            if desk.settings.mailbox or desk.settings.spool
            else 0
        )
    by_source: dict[str, tuple[datetime | None, str]] = {}
    for state in states:
        last, error = by_source.get(state.source, (None, ""))
        if state.last_sync_at and (last is None or state.last_sync_at > last):
            last = state.last_sync_at
        error = error or state.last_error
        by_source[state.source] = (last, error)
    names = [m.name for m in desk.settings.mailbox] + [s.name for s in desk.settings.spool]
    names += [name for name in by_source if name not in names]
    sources = tuple((name, *by_source.get(name, (None, ""))) for name in names)
    return Header(desk.agent, desk.agent_name, load.assigned_open, load.waiting, sources, load.bounced, overdue)


class Commits:
    """Other processes' commits, as the TUI's live refresh watches them: one long-lived connection.

    `change_marker()` moves on every commit (heartbeats included); `content_marker()` only when what
    the screens show changed, on SQLite (elsewhere it is the change marker just read). PostgreSQL
    also tells of commits (LISTEN/NOTIFY), so `wait` wakes at once there and says whether anyone
    wrote; on SQLite it sleeps, its data_version pragma being cheap enough to poll."""

    def __init__(self, desk: Desk) -> None:
        self.connection = desk.engine.connect()
        self.sqlite = self.connection.dialect.name == "sqlite"
        self.watcher = None
        if not self.sqlite:
            from agentdesk.store import changes

            self.watcher = changes.ChangeWatcher(desk.engine)

    def wait(self, seconds: float) -> bool:
        """Wait for a commit or `seconds`; False when nobody can have committed meanwhile."""
        if self.watcher is not None:
            return self.watcher.wait(seconds)
        import time

        time.sleep(seconds)
        return True

    def change_marker(self) -> tuple:
        from agentdesk.store import queries

        return queries.change_marker(connection=self.connection)

    def content_marker(self, change_marker: tuple) -> tuple:
        from agentdesk.store import queries

        return queries.content_marker(connection=self.connection) if self.sqlite else change_marker

    def end_read(self) -> None:
        """End the read transaction, so the next read sees new commits."""
        self.connection.rollback()

    def close(self) -> None:
        self.connection.close()
        if self.watcher is not None:
            self.watcher.close()
