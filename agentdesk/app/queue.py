"""The queue: views narrowed by a search, read in windows (the TUI) or as documents (the CLI).

Both front ends search in one language (`domain.search_query`: words plus `from:`, `status:`,
`tag:` … filters): `criteria` turns it into the full-text text and the SQL condition every read
here applies.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from agentdesk.domain import search_query

# The queue's first rows are read without SQLAlchemy (`first_window`), so the TUI draws its first
# frame before the ORM is imported; every other read imports `queries` where it runs.
from agentdesk.store import first_window as plain
from agentdesk.store.first_window import NEVER, ref_of
from agentdesk.store.views import VIEWS

if TYPE_CHECKING:
    from concurrent.futures import Future

    from agentdesk import config
    from agentdesk.app.desk import Desk
__all__ = ["NEVER", "VIEWS", "Filter", "Row", "Window"]  # NEVER: the due time of a queue row no clock runs for


@dataclass(frozen=True)
class Row:
    """One queue row: only what the list shows (never bodies)."""

    id: int
    ref: str
    customer: str
    subject: str
    channel: str
    status: str
    priority: str
    assignee: str | None
    waiting_since: datetime | None
    queue_due: datetime
    warning_at: datetime | None
    version: int
    sort_key: tuple
    has_draft: bool = False
    bounced: bool = False  # a reply of ours bounced and none went out since


@dataclass(frozen=True)
class Window:
    rows: tuple[Row, ...]


@dataclass(frozen=True)
class Filter:
    """What the queue shows: a built-in view, optionally narrowed by a search."""

    view: str = "open"
    query: str = ""  # the search text as typed (field filters included)
    label: str = ""

    @property
    def title(self) -> str:
        if self.label:
            return self.label
        return VIEWS[self.view].label if self.view in VIEWS else self.view


def empty_hint(desk: Desk) -> tuple[str, ...]:
    """What an empty queue says on a new desk, one with no source configured and no conversation
    stored: what to add, and where. Nothing otherwise (an empty view of a working desk is just empty)."""
    from agentdesk.store import queries

    settings = desk.settings
    if settings.mailbox or settings.spool:
        return ()
    with desk.read() as session:
        if queries.queue_count(session=session, view="all", agent=desk.agent, now=desk.now()):
            return ()
    from agentdesk import locations

    config_path = settings.source or locations.default_config_path()
    first = "Run `agentdesk init`, then add" if settings.source is None else "Add"
    return (
        "No mailbox or spool is configured yet: no conversation can arrive.",
        f"{first} a [[mailbox]] (IMAP and SMTP) or a [[spool]] (webhooks) to",
        f"  {config_path}",
        "  (config.example.toml shows every key),",
        f"put reply templates in {settings.templates_dir},",
        "then run `agentdesk sync`; `agentdesk doctor` checks the setup first.",
    )


# --- the search -------------------------------------------------------------------------------


def validate_query(desk: Desk, query: str) -> None:
    """Raise InvalidInput for a malformed search before the queue switches to it."""
    search_query.parse(query, now=desk.now())


def criteria(desk: Desk, filter: Filter, now: datetime):
    """(full text, SQL condition) of a filter's search."""
    from agentdesk.store import queries

    parsed = search_query.parse(filter.query, now=now) if filter.query else search_query.SearchQuery()
    condition = queries.search_condition(search=parsed, agent=desk.agent, now=now, dialect=desk.engine.dialect.name)
    return parsed.text, condition


def forget_matches(desk: Desk) -> None:
    """Resolve searches afresh from now on (the queue reloads: something may have changed)."""
    desk.search_matches = {}  # a resolution still running fills the dict it started with, not this one


def _matching(desk: Desk, session, text: str) -> list[int] | None:
    """The conversation ids the full text matches (None without full text), resolved once until forgotten:
    a search's windows, count and position share one full-text match."""
    from agentdesk.store import queries

    if not text:
        return None
    matches = desk.search_matches
    with desk.resolving_search:  # a second window waits for the first resolution rather than repeating it
        found = matches.get(text)
        if found is None:
            found = matches[text] = queries.matching_conversation_ids(session=session, query=text)
    return found


# --- reads ------------------------------------------------------------------------------------


def count(desk: Desk, filter: Filter) -> int:
    from agentdesk.store import queries

    now = desk.now()
    text, condition = criteria(desk, filter, now)
    with desk.read() as session:
        return queries.queue_size(
            session=session,
            view=filter.view,
            agent=desk.agent,
            now=now,
            extra_filter=condition,
            matches=_matching(desk, session, text),
        )


def view_counts(desk: Desk) -> dict[str, int]:
    """Every built-in view's count (but `all`) and every saved view's, as `saved:NAME`."""
    from agentdesk.store import queries

    now = desk.now()
    with desk.read() as session:
        counts = {
            name: queries.queue_count(session=session, view=name, agent=desk.agent, now=now)
            for name in VIEWS
            if name != "all"
        }
    for saved in desk.settings.view:
        try:
            counts[f"saved:{saved.name}"] = count(desk, Filter("all", saved.query, saved.name))
        except Exception:
            counts[f"saved:{saved.name}"] = 0
    return counts


def window(
    desk: Desk, filter: Filter, *, offset: int, limit: int, after: Sequence | None = None, from_end: int | None = None
) -> Window:
    """Rows `offset`..`offset+limit` of the queue; `after` (the previous row's sort key) makes it a keyset
    read; `from_end` (rows between this window and the view's end) reads it backwards from the end."""
    from agentdesk.store import queries

    now = desk.now()
    text, condition = criteria(desk, filter, now)
    with desk.read() as session:
        rows = queries.queue_rows(
            session=session,
            view=filter.view,
            agent=desk.agent,
            now=now,
            limit=limit,
            after=after,
            offset=0 if after is not None else offset,
            extra_filter=condition,
            from_end=from_end,
            matches=_matching(desk, session, text),
        )
    return _window_of(filter.view, [row._mapping for row in rows])


def position(desk: Desk, filter: Filter, conversation_id: int) -> int | None:
    from agentdesk.store import queries

    now = desk.now()
    text, condition = criteria(desk, filter, now)
    with desk.read() as session:
        return queries.queue_position(
            session=session,
            view=filter.view,
            agent=desk.agent,
            now=now,
            conversation_id=conversation_id,
            extra_filter=condition,
            matches=_matching(desk, session, text),
        )


def documents(desk: Desk, filter: Filter, *, limit: int) -> list[dict[str, Any]]:
    """The first `limit` conversations of the queue as `list --json` documents."""
    from agentdesk.domain import documents as conversation_documents
    from agentdesk.store import queries

    now = desk.now()
    text, condition = criteria(desk, filter, now)
    with desk.read() as session:
        conversations = queries.queue_window(
            session=session,
            view=filter.view,
            agent=desk.agent,
            now=now,
            limit=limit,
            query=text,
            extra_filter=condition,
        )
        return conversation_documents.documents(session, conversations, policies=desk.policies, now=now)


def _window_of(view: str, rows) -> Window:
    """Queue rows from mappings of `ROW_COLUMNS` (`queries.queue_rows`, `first_window_sqlite`)."""
    order = plain.sort_columns(view)
    return Window(
        tuple(
            Row(
                id=r["id"],
                ref=ref_of(r["id"]),
                customer=r["customer"],
                subject=r["subject"],
                channel=r["channel"],
                status=r["status"],
                priority=r["priority"],
                assignee=r["assignee"],
                waiting_since=r["waiting_since"],
                queue_due=r["queue_due"],
                warning_at=r["warning_at"],
                version=r["version"],
                sort_key=tuple(r[name] for name in order),
                has_draft=bool(r["has_draft"]),
                bounced=bool(r["bounced"]),
            )
            for r in rows
        )
    )


# --- the first window, read before the UI starts ------------------------------------------------


class FirstRead:
    """Where the first frame's rows come from before the ORM is loaded, made as early as the
    database is known (`agentdesk` makes it right after reading the config).

    A SQLite file is read with the sqlite3 module when asked. For PostgreSQL, psycopg is imported
    and a thread connects and reads the schema revision from the moment this is made: connecting
    takes longer than the read itself, and the server's side of it runs on another core while this
    process goes on importing the UI. Anything else (another driver, psycopg missing, a URL libpq
    does not read) reads nothing here: the engine reads instead (and says what is missing)."""

    def __init__(self, settings: config.Settings) -> None:
        import threading
        from concurrent.futures import Future

        self.url = settings.database_url
        self.path = plain.sqlite_path(self.url)
        self._server: Future | None = None
        # The driver is imported here, before the thread: in the thread its import would take
        # turns on the GIL with the UI's imports and end later, and the connection waits for it.
        if (
            self.path is None
            and plain.postgresql_conninfo(self.url) is not None
            and plain.postgresql_driver_installed()
        ):
            self._server = Future()
            threading.Thread(
                target=_connect, args=(self.url, self._server), name="agentdesk-first-read", daemon=True
            ).start()

    def at_head(self) -> bool:
        """Whether the database is one of ours at this version's schema, so its first rows may be
        read before the engine opens it. Anything else (no database yet, an older or newer schema,
        a server this read cannot use) is the engine's to create, upgrade or refuse in words first.
        A server that refuses the connection is refused here, in the engine's words, rather than
        waited for a second time by the engine."""
        if self.path is not None:
            return plain.schema_revision_sqlite(self.path) == plain.HEAD
        if self._server is None:
            return False
        try:
            _, revision = self._server.result()
        except plain.CannotConnect as error:
            from agentdesk.store import db

            raise db.DatabaseError(db.explain(self.url, error.__cause__ or error)) from None
        except Exception:
            return False
        return revision == plain.HEAD

    def window(self, desk: Desk, filter: Filter, *, limit: int) -> Window | None:
        """The first rows of `filter`, read with the driver alone; None when this read cannot
        answer (a search, the "all" view, a database not at HEAD, no connection): the engine's
        turn. On PostgreSQL this is the connection's one read: it is closed after it, and the
        engine reads from then on."""
        if self.path is not None:
            if filter.query:
                return None
            found = plain.first_window_sqlite(
                self.path, view=filter.view, agent=desk.agent, now=desk.now(), limit=limit, revision=plain.HEAD
            )
        elif self._server is not None:
            server, self._server = self._server, None
            if filter.query:
                server.add_done_callback(_close_connection)
                return None
            try:
                connection, _ = server.result()
            except Exception:
                return None
            try:
                found = plain.first_window_postgresql(
                    connection, view=filter.view, agent=desk.agent, now=desk.now(), limit=limit, revision=plain.HEAD
                )
            finally:
                connection.close()
        else:
            return None
        return None if found is None else _window_of(filter.view, found)


def _connect(url: str, server: Future) -> None:
    """The first read's thread: the connection and the database's schema revision."""
    try:
        connection = plain.connect_postgresql(url)
        server.set_result((connection, plain.schema_revision_postgresql(connection)))
    except BaseException as error:  # said by `at_head`, or the engine's read says it
        server.set_exception(error)


def _close_connection(server: Future) -> None:
    """Close the first read's connection, unused, once it is made."""
    if not server.cancelled() and server.exception() is None:
        server.result()[0].close()


def prefetch(desk: Desk, filter: Filter, *, limit: int, first_read: FirstRead | None = None) -> None:
    """Read the first rows now, before the UI starts, so the first frame can show them.

    On SQLite this is one plain read through the sqlite3 module (`first_window_sqlite`, the
    queue's own SQL), done here and now: in a thread it would take several times longer, because
    every return from a sqlite3 call waits for the GIL, which the UI thread, starting up, gives back
    only every switch interval. On PostgreSQL it is the same statement through psycopg on the
    connection `first_read` opened, in a thread: most of it is waiting for the server, with the GIL
    free for the UI meanwhile. Otherwise (a database to create or upgrade first, a search) a thread
    reads through the engine."""
    import threading
    from concurrent.futures import Future

    future: Future = Future()
    desk.prefetched = (filter, limit, future)
    if first_read is None:
        first_read = FirstRead(desk.settings)
    if first_read.path is not None:
        found = first_read.window(desk, filter, limit=limit)
        if found is not None:
            future.set_result(found)
            return

    def read() -> None:
        try:
            found = first_read.window(desk, filter, limit=limit) if first_read.path is None else None
            future.set_result(found if found is not None else window(desk, filter, offset=0, limit=limit))
        except Exception as error:  # the worker reads again and reports it
            future.set_exception(error)

    threading.Thread(target=read, name="agentdesk-prefetch", daemon=True).start()


def prefetched_window(desk: Desk, filter: Filter, *, limit: int, wait: float) -> Window | None:
    """The prefetched first rows if they are for this view and ready within `wait` seconds."""
    prefetched = desk.prefetched
    if prefetched is None or prefetched[0] != filter or prefetched[1] != limit:
        return None
    try:
        found = prefetched[2].result(timeout=wait)
    except Exception:  # not ready in time, or failed: the worker reads (again) and reports
        return None
    desk.prefetched = None
    return found


def first_window(desk: Desk, filter: Filter, *, limit: int) -> Window:
    """The prefetched first rows when they are for this view, else a fresh read."""
    prefetched, desk.prefetched = desk.prefetched, None
    if prefetched is not None and prefetched[0] == filter and prefetched[1] == limit:
        try:
            return prefetched[2].result()
        except Exception:
            pass
    return window(desk, filter, offset=0, limit=limit)
