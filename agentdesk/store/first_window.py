"""What the TUI's first frame reads, without SQLAlchemy: the queue views' SQL, the columns of a
queue row, and the first rows of a view read with the database's driver alone (`first_window_sqlite`
with the sqlite3 module, `first_window_postgresql` with psycopg).

The first frame is drawn before the ORM is imported (importing SQLAlchemy, SQLModel and the models
costs more than the rest of the start together), so everything it needs from the store lives here,
defined once: `queries` builds its ORM statements from the same conditions and column names, and
`models` and `migrations` take the stored time format, NEVER, refs and HEAD from here.
"""

from __future__ import annotations

import json
import re
import sqlite3
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import unquote

from agentdesk.errors import InvalidInput
from agentdesk.store.views import ASIDE_VIEWS, VIEWS

# The newest schema revision this version writes; `migrations.STEPS` must end at it (checked when
# `migrations` is imported, and by tests/unit/test_migrations.py).
HEAD = 13

# Sorts after every due time (the queue's keyset needs a NOT NULL column).
NEVER = datetime(9999, 1, 1, tzinfo=timezone.utc)

OPEN_STATUSES = ("new", "open")
WAITING_STATUSES = ("pending", "on_hold")
DONE_STATUSES = ("solved", "closed")


def ref_of(conversation_id: int) -> str:
    return f"AD-{conversation_id}"


def sqlite_text(value: datetime | None) -> str | None:
    """What UTCDateTime stores on SQLite: naive UTC text, always with microseconds. For bulk
    writers that bypass the ORM (the demo builder, batched ingest) and this module's read."""
    if value is None:
        return None
    if value.tzinfo is not timezone.utc:
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r} given to the store; use an aware UTC time")
        value = value.astimezone(timezone.utc)
    return value.isoformat(" ", "microseconds")[:26]


def sqlite_time(value: str | None) -> datetime | None:
    """The aware UTC time of what UTCDateTime stores on SQLite (`sqlite_text`'s inverse).

    Naive UTC text is parsed with its offset appended: that gives the aware value in one C call,
    where parsing and then `replace(tzinfo=…)` costs several times as much (a chunk of ingest
    reads hundreds of thousands of these). Text with an offset of its own is converted to UTC."""
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value + "+00:00")
    except ValueError:
        parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is timezone.utc:
        return parsed
    # Text with an offset of its own; or a bare date, where Python 3.11 ignores the appended offset.
    return parsed.replace(tzinfo=timezone.utc) if parsed.tzinfo is None else parsed.astimezone(timezone.utc)


def sqlite_path(url: str) -> Path | None:
    """The file of a SQLite URL (`sqlite:///relative.db`, `sqlite:////absolute.db`, a driver
    after `+`, options after `?`); None for other databases and in-memory ones."""
    scheme, separator, rest = url.partition("://")
    if not separator or scheme.split("+", 1)[0] != "sqlite" or not rest.startswith("/"):
        return None
    database = unquote(rest[1:].partition("?")[0])
    if not database or database == ":memory:":
        return None
    return Path(database)


# Each view's condition, written once as SQL: the ORM statements of `queries` and the first
# frame's sqlite3 read both use it. `{status}` is the status column: plain where its index helps
# (counts), `status || ''` in windows read in the view's order — given `status IN (...)`, SQLite's
# planner prefers the status index and then sorts the whole view; written so, the status test
# cannot use an index and the planner walks the order index, stopping after one window
# (tests/unit/test_store.py checks every view's plan).
# PostgreSQL gets the plain columns everywhere: its planner weighs the index walk against the
# sort by the columns' statistics, and it has none for `status || ''`, so it guessed a view of a
# few rows and sorted all of it (a third of 100 000 conversations for each window).
_NOT_MERGED = "conversation.merged_into_id IS NULL"
_AWAKE = "(conversation.snoozed_until IS NULL OR conversation.snoozed_until <= :now)"
# A conversation set aside is in its own view only. The queue views test `aside` in a form no index
# serves (`|| ''`, as `status` above; `{in_queue}`), so SQLite's planner keeps walking their own
# indexes; the views of set-aside conversations walk (aside, queue_due, queue_wait, id).
IN_QUEUE = "conversation.aside || '' = ''"
_IN_QUEUE_PLAIN = "conversation.aside = ''"
_VIEW_CONDITIONS = {
    "mine": f"conversation.assignee = :agent AND {{status}} NOT IN {DONE_STATUSES} AND {_AWAKE} AND {_NOT_MERGED}"
    f" AND {{in_queue}}",
    "unassigned": f"conversation.assignee IS NULL AND {{status}} IN {OPEN_STATUSES} AND {_AWAKE} AND {_NOT_MERGED}"
    f" AND {{in_queue}}",
    "open": f"{{status}} IN {OPEN_STATUSES} AND {_AWAKE} AND {_NOT_MERGED} AND {{in_queue}}",
    "breaching": f"{{status}} IN {OPEN_STATUSES} AND {_AWAKE} AND {_NOT_MERGED} AND conversation.warning_at <= :now"
    f" AND {{in_queue}}",
    "pending": f"{{status}} IN {WAITING_STATUSES} AND {_NOT_MERGED} AND {{in_queue}}",
    "snoozed": f"conversation.snoozed_until > :now AND {{status}} NOT IN {DONE_STATUSES} AND {_NOT_MERGED}"
    f" AND {{in_queue}}",
    "solved": f"{{status}} IN {DONE_STATUSES} AND {_NOT_MERGED} AND {{in_queue}}",
    "all": f"{_NOT_MERGED} AND {{in_queue}}",
    **{name: f"conversation.aside = '{name}' AND {_NOT_MERGED}" for name in ASIDE_VIEWS},
}
_PLAIN_STATUS = "conversation.status"
_UNINDEXED_STATUS = "conversation.status || ''"


def view_sql(view: str, *, ordered: bool, dialect: str = "sqlite") -> str:
    """The WHERE condition of a view (`ordered`: for windows read in the view's order) in the form
    `dialect`'s planner reads best."""
    condition = _VIEW_CONDITIONS.get(view)
    if condition is None:
        known = ", ".join(VIEWS)
        raise InvalidInput(f"unknown view {view!r}; expected one of: {known}")
    if dialect != "sqlite":
        return condition.format(status=_PLAIN_STATUS, in_queue=_IN_QUEUE_PLAIN)
    return condition.format(status=_UNINDEXED_STATUS if ordered else _PLAIN_STATUS, in_queue=IN_QUEUE)


def sort_columns(view: str) -> tuple[str, ...]:
    """The names of the columns of a view's sort key, ending in the unique id."""
    return ("solved_at", "id") if view == "solved" else ("queue_due", "queue_wait", "id")


def sorts_descending(view: str) -> bool:
    return view == "solved"


# What a queue row shows, each column named once. A name that is a column of `conversation` is
# read as it is; the others are computed, and are written for both reads: `queries.row_columns` for
# the ORM and `ROW_SQL` for the first frame's sqlite3 read (tests/unit/test_store.py checks the two
# read the same rows). The sort columns of every view must be among them.
ROW_COLUMNS = (
    "id",
    "customer",
    "subject",
    "channel",
    "status",
    "priority",
    "assignee",
    "waiting_since",
    "queue_due",
    "warning_at",
    "version",
    "queue_wait",
    "solved_at",
    "has_draft",
    "bounced",
)
ROW_SQL = {
    "customer": "coalesce(customer.name, '')",
    "has_draft": "EXISTS (SELECT 1 FROM draft WHERE draft.conversation_id = conversation.id AND draft.agent = :agent)",
    "bounced": "conversation.bounced_at IS NOT NULL",
}
# The row's columns stored as UTCDateTime (tests/unit/test_store.py checks them against the model).
ROW_TIMES = frozenset({"waiting_since", "queue_due", "warning_at", "queue_wait", "solved_at"})

# The views that hold a few statuses: their first (and last) rows are read status by status.
STATUSES_OF_VIEW = {
    "open": OPEN_STATUSES,
    "unassigned": OPEN_STATUSES,
    "breaching": OPEN_STATUSES,
    "pending": WAITING_STATUSES,
}


# --- the first window, before the ORM -------------------------------------------------------------
#
# The TUI's first frame shows a view's first rows. Read through SQLAlchemy, a window costs Python
# work (compiling the statement, building rows) while the UI starts, and in a thread all of it
# holds the GIL, so the first frame waits for it. With the sqlite3 module the read is one prepared
# statement whose work runs in C with the GIL released. It uses the views' own conditions;
# tests/unit/test_store.py checks that every view returns exactly what `queries.queue_window` returns.

# Views of a few statuses read each status's first rows from the (status, queue_due, queue_wait,
# id) index and merge them (a fraction of a millisecond); walking the order index instead passes
# every pending and snoozed row before them. "all" is left to the engine.
_FIRST_WINDOW_VIEWS = frozenset(VIEWS) - {"all"}


def schema_revision_sqlite(path) -> int | None:
    """The schema revision of the SQLite database at `path`, read with the sqlite3 module; None
    when there is no database there, or not one of ours."""
    try:
        connection = _connect(path)
        try:
            (revision,) = connection.execute("SELECT max(revision) FROM schema_revision").fetchone()
        finally:
            connection.close()
    except sqlite3.Error:
        return None
    return revision


def _connect(path) -> sqlite3.Connection:
    # mode=rw: never create a database here (opening one is the engine's job, migrations included).
    return sqlite3.connect(f"{Path(path).absolute().as_uri()}?mode=rw", uri=True, timeout=5)


def _first_window_statement(view: str, dialect: str) -> str:
    """One statement reading the schema revision and a view's first rows as one JSON array, in
    `dialect`'s SQL: the view's condition as `dialect`'s queue windows write it (`view_sql`), the
    columns of ROW_COLUMNS / ROW_SQL, the parameters :agent, :now and :limit."""
    where = view_sql(view, ordered=True, dialect=dialect)
    descending = " DESC" if sorts_descending(view) else ""
    order = ", ".join(f"{name}{descending}" for name in sort_columns(view))
    order_in_table = ", ".join(f"conversation.{name}{descending}" for name in sort_columns(view))
    columns = ", ".join(
        f"{ROW_SQL[name]} AS {name}" if name in ROW_SQL else f"conversation.{name}" for name in ROW_COLUMNS
    )
    select = (
        f"SELECT {columns} FROM conversation LEFT JOIN customer ON customer.id = conversation.customer_id "
        f"WHERE {where}{{status}} ORDER BY {order_in_table} LIMIT :limit"
    )
    statuses = STATUSES_OF_VIEW.get(view)
    if statuses:
        candidates = " UNION ALL ".join(
            f"SELECT * FROM ({select.format(status=f' AND conversation.status = {status!r}')}) AS of_{status}"
            for status in statuses
        )
    else:
        candidates = select.format(status="")
    # The rows come back as one JSON text: one step of the driver instead of one per row, because
    # each step gives the GIL back and waiting to take it again (the UI thread is busy starting)
    # costs up to a switch interval (5 ms) every time.
    aggregate, array = ("json_group_array", "json_array") if dialect == "sqlite" else ("json_agg", "json_build_array")
    return (
        f"SELECT (SELECT max(revision) FROM schema_revision), {aggregate}({array}("
        f"position, {', '.join(ROW_COLUMNS)})) FROM ("
        f"SELECT row_number() OVER (ORDER BY {order}) AS position, * FROM ({candidates}) AS candidates "
        f"ORDER BY {order} LIMIT :limit) AS first_rows"
    )


def first_window_sqlite(path, *, view: str, agent: str, now: datetime, limit: int, revision: int) -> list[dict] | None:
    """The first `limit` rows of a built-in view as dicts of ROW_COLUMNS, read with the sqlite3
    module alone.

    None when this read cannot answer: a view it does not know, no database yet, one this read does
    not understand, or one not at schema `revision` (it has to be opened, and perhaps upgraded,
    through the engine first)."""
    if view not in _FIRST_WINDOW_VIEWS:
        return None
    statement = _first_window_statement(view, "sqlite")
    try:
        connection = _connect(path)
        try:
            found_revision, rows = connection.execute(
                statement, {"agent": agent, "now": sqlite_text(now), "limit": limit}
            ).fetchone()
        finally:
            connection.close()
    except sqlite3.Error:
        return None
    if found_revision != revision:
        return None
    return _rows(json.loads(rows))


def _rows(found: list[list] | None) -> list[dict]:
    return [
        # Naive UTC text from SQLite, text with the session's offset from PostgreSQL: both read aware.
        {name: (sqlite_time(value) if name in ROW_TIMES else value) for name, value in zip(ROW_COLUMNS, row[1:])}
        for row in sorted(found or ())
    ]


# --- the same on PostgreSQL, with psycopg -----------------------------------------------------------
#
# On PostgreSQL the first frame's read waits for the server as well: importing the driver and
# connecting cost more than the read. So a front end connects as early as it knows the database
# (`connect_postgresql`, in a thread, while its own imports go on), reads the revision on that
# connection (`schema_revision_postgresql`) to know whether the engine must open the database
# first, and reads the first window on it when the screen asks (`first_window_postgresql`).

# Seconds a PostgreSQL server that does not answer is waited for, by the engine and by this read.
POSTGRES_CONNECT_TIMEOUT = 10

_PARAMETER = re.compile(r":(agent|now|limit)\b")


class CannotConnect(Exception):
    """The PostgreSQL server would not take the connection (not there, not answering, the login or
    the database refused; the driver's error is the cause): the engine would fail the same way,
    after the same wait."""


def postgresql_conninfo(url: str) -> str | None:
    """The libpq connection URI of a PostgreSQL database URL as the engine connects to it
    (`postgresql://` or `postgresql+psycopg://`, the driver the engine uses); None for other URLs.
    SQLAlchemy's URLs and libpq's share their syntax (user, password, host, port, database, and
    libpq's options as query parameters); tests/unit/test_store.py checks the two read the same."""
    scheme, separator, rest = url.partition("://")
    if not separator or scheme not in ("postgresql", "postgresql+psycopg"):
        return None
    return f"postgresql://{rest}"


def postgresql_driver_installed() -> bool:
    """Import psycopg (in the caller's thread), or say it is not installed."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return False
    return True


def connect_postgresql(url: str):
    """A psycopg connection (autocommit: it only reads) to the database of `url`, with the engine's
    connect timeout. CannotConnect when the server does not take it; other errors (no psycopg, a
    URL libpq does not read) as they come."""
    import psycopg
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    conninfo = postgresql_conninfo(url)
    if conninfo is None:
        raise ValueError(f"not a PostgreSQL URL: {url!r}")
    if "connect_timeout" not in conninfo_to_dict(conninfo):
        conninfo = make_conninfo(conninfo, connect_timeout=POSTGRES_CONNECT_TIMEOUT)
    try:
        return psycopg.connect(conninfo, autocommit=True)
    except psycopg.OperationalError as error:
        raise CannotConnect(str(error)) from error


def schema_revision_postgresql(connection) -> int | None:
    """The schema revision of the database behind a `connect_postgresql` connection; None when it
    is not one of ours (yet)."""
    import psycopg

    try:
        (revision,) = connection.execute("SELECT max(revision) FROM schema_revision").fetchone()
    except psycopg.Error:
        return None
    return revision


def first_window_postgresql(
    connection, *, view: str, agent: str, now: datetime, limit: int, revision: int
) -> list[dict] | None:
    """`first_window_sqlite` on a `connect_postgresql` connection: the same statement in
    PostgreSQL's SQL, the same rows; None when it cannot answer."""
    import psycopg

    if view not in _FIRST_WINDOW_VIEWS:
        return None
    # psycopg writes its parameters %(name)s, and a plain % as %%.
    statement = _PARAMETER.sub(r"%(\1)s", _first_window_statement(view, "postgresql").replace("%", "%%"))
    try:
        found_revision, rows = connection.execute(statement, {"agent": agent, "now": now, "limit": limit}).fetchone()
    except psycopg.Error:
        return None
    if found_revision != revision:
        return None
    return _rows(rows)
