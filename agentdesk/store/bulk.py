"""Many rows into one table with one statement: the writes of ingest's batches.

On SQLite, SQLAlchemy's per-value bind processing (every datetime through UTCDateTime, every row
through the compiled statement's parameter setup) costs more than the INSERTs themselves. The
rows written here are plain values of a few column types, so they are converted here, in the
format SQLAlchemy's SQLite DATETIME stores, and handed to the driver's executemany. Other
backends, and tables with other column types, take SQLAlchemy's path.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from operator import itemgetter
from typing import Any

from sqlmodel import Session

from agentdesk.store import search
from agentdesk.store.models import Customer, Identity, Message, sqlite_text

# Below this many rows, dropping and re-creating the full-text triggers costs more than it saves.
FTS_BULK_MIN = 20

# table name -> (column names, scalar defaults, datetime columns), or None: not for the driver path
_SQLITE_PLAN: dict[str, tuple[tuple[str, ...], dict[str, Any], frozenset[str]] | None] = {}


class _SqliteTexts(dict):
    """datetime (or None) -> its `sqlite_text`, each formatted once."""

    def __missing__(self, moment: datetime | None) -> str | None:
        text = self[moment] = sqlite_text(moment)
        return text


def insert(session: Session, model, rows: list[dict]) -> None:
    if not rows:
        return
    if _sqlite_insert(session, model, rows) is None:
        session.execute(model.__table__.insert(), rows)


def insert_returning(session: Session, model, rows: list[dict]) -> list[int]:
    """The ids of the inserted rows, in the order of `rows`."""
    table = model.__table__
    ids = _sqlite_insert(session, model, rows, returning=True)
    if ids is not None:
        return ids
    statement = table.insert().returning(table.c.id, sort_by_parameter_order=True)
    return [row[0] for row in session.execute(statement, rows)]


def insert_messages(session: Session, rows: list[dict]) -> list[int]:
    """`insert_returning(Message, rows)`; on SQLite, their full-text index in one statement.

    The `message_fts_insert` trigger indexes each row as it is inserted; for hundreds of rows that
    costs several times one `INSERT INTO message_fts … SELECT` over the new rows. So, inside this
    transaction (we hold SQLite's write lock), the trigger is dropped, the rows and then their
    index entries inserted, and the trigger re-created from its own stored text before anything
    else runs. Other connections never see it missing: DDL is transactional, no other writer can
    run before our commit, and a rollback (a failed chunk, a crash) restores it. Every other
    writer keeps the trigger.
    """
    ids: list[int] = []

    def insert_rows() -> tuple[int, int] | None:
        ids.extend(insert_returning(session, Message, rows))
        return (ids[0], ids[-1]) if ids else None

    if not without_triggers(session, len(rows), search.MESSAGE_BULK_INDEX, insert_rows):
        ids[:] = insert_returning(session, Message, rows)
    return ids


def insert_customers(
    session: Session, customer_rows: list[dict], identity_rows: Callable[[list[int]], list[dict]]
) -> list[int]:
    """New customers and their identities (`identity_rows` of the new ids); on SQLite, their
    full-text rows in one statement, as `insert_messages` does: the triggers would insert each
    customer's row, then rewrite it with its addresses when its identity is inserted."""
    ids: list[int] = []

    def insert_rows() -> tuple[int, int] | None:
        ids.extend(insert_returning(session, Customer, customer_rows))
        insert(session, Identity, identity_rows(ids))
        return (ids[0], ids[-1]) if ids else None

    if not without_triggers(session, len(customer_rows), search.CUSTOMER_BULK_INDEX, insert_rows):
        ids[:] = insert_returning(session, Customer, customer_rows)
        insert(session, Identity, identity_rows(ids))
    return ids


def without_triggers(
    session: Session, count: int, index: search.BulkIndex, insert_rows: Callable[[], tuple[int, int] | None]
) -> bool:
    """Run `insert_rows` with the SQLite triggers `index` stands for dropped, then `index.sql`
    over the id range it returns, and re-create the triggers from their stored text (even when
    `insert_rows` fails: the caller then rolls back). False, having done nothing, when not
    SQLite, too few rows to pay, or a stored trigger is not exactly the one `index` stands for
    (a later revision changed it: then the rows go in with the triggers)."""
    connection = session.connection()
    if connection.dialect.name != "sqlite" or count < FTS_BULK_MIN:
        return False
    expected = {search.trigger_name(trigger): search.stored_trigger_text(trigger) for trigger in index.triggers}
    names = tuple(expected)
    stored: dict[str, str] = dict(
        connection.exec_driver_sql(
            "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND name IN ({})".format(
                ", ".join("?" * len(names))
            ),
            names,
        ).all()
    )
    if any(search.normalised_sql(stored.get(name) or "") != text for name, text in expected.items()):
        return False
    for name in names:
        connection.exec_driver_sql(f'DROP TRIGGER "{name}"')
    try:
        span = insert_rows()
        if span is not None:
            connection.exec_driver_sql(index.sql, span)
    finally:
        for name in names:
            connection.exec_driver_sql(stored[name])
    return True


def _sqlite_plan(table) -> tuple[tuple[str, ...], dict[str, Any], frozenset[str]] | None:
    """(column names, scalar defaults, datetime columns) of a table the driver path can write, or None."""
    from sqlalchemy import Boolean, Integer, LargeBinary, String
    from sqlmodel.sql.sqltypes import AutoString

    from agentdesk.store.models import UTCDateTime

    if table.name not in _SQLITE_PLAN:
        plan = None
        names: list[str] = []
        defaults: dict[str, Any] = {}
        times: set[str] = set()
        for column in table.columns:
            if not isinstance(column.type, (AutoString, Boolean, Integer, LargeBinary, String, UTCDateTime)):
                break
            if column.default is not None and not column.default.is_scalar:
                break
            names.append(column.key)
            if isinstance(column.type, UTCDateTime):
                times.add(column.key)
            if column.default is not None:
                defaults[column.key] = column.default.arg
        else:
            plan = (tuple(names), defaults, frozenset(times))
        _SQLITE_PLAN[table.name] = plan
    return _SQLITE_PLAN[table.name]


def _sqlite_insert(session: Session, model, rows: list[dict], *, returning: bool = False) -> list[int] | None:
    """Insert `rows` through the driver on SQLite (their ids with `returning`); None elsewhere."""
    table = model.__table__
    connection = session.connection()
    if connection.dialect.name != "sqlite":
        return None
    plan = _sqlite_plan(table)
    if plan is None:
        return None
    names, defaults, times = plan
    keys = rows[0].keys()
    if not keys <= set(names) or any(map(keys.__ne__, map(dict.keys, rows))):  # every row the same columns
        return None
    given = [name for name in names if name in keys]
    missing = [name for name in names if name not in keys and name in defaults]
    columns = given + missing
    sql = 'INSERT INTO "{}" ({}) VALUES ({})'.format(
        table.name, ", ".join(f'"{name}"' for name in columns), ", ".join("?" * len(columns))
    )
    extra = tuple(sqlite_text(defaults[name]) if name in times else defaults[name] for name in missing)
    converted = [index for index, name in enumerate(given) if name in times]
    # A row's values as a tuple, by `itemgetter` in C (of one name it gives the bare value).
    if len(given) > 1:
        values_of = itemgetter(*given)
        values: list[tuple] = [values_of(row) for row in rows]
    else:
        values = [tuple(row[name] for name in given) for row in rows]
    if converted:
        # The rows share many times (the batch's `now` in every created_at, at, ingested_at):
        # each distinct one is formatted once per statement.
        texts = _SqliteTexts()
        for position, value in enumerate(values):
            listed = list(value)
            for index in converted:
                listed[index] = texts[listed[index]]
            values[position] = tuple(listed)
    if extra:
        values = [value + extra for value in values]
    if not returning:
        connection.exec_driver_sql(sql, values)
        return []
    # SQLite numbers a rowid table's new rows max + 1, in insertion order, and we hold the write
    # lock: the new ids are the ones after the highest before.
    highest = f'SELECT max(id) FROM "{table.name}"'
    before = connection.exec_driver_sql(highest).scalar() or 0
    connection.exec_driver_sql(sql, values)
    after = connection.exec_driver_sql(highest).scalar() or 0
    if after - before != len(rows):
        raise RuntimeError(f"inserted {len(rows)} rows into {table.name} but the ids moved by {after - before}")
    return list(range(before + 1, after + 1))


# The raw mail of a big message is copied from its file this much at a time.
RAW_PIECE_BYTES = 1024 * 1024


def insert_raw_from_file(session: Session, message_id: int, file) -> int:
    """The `MessageRaw` row of `message_id` from a binary file, never holding more than
    RAW_PIECE_BYTES of it: on SQLite a zero-filled blob of the file's size written in pieces
    through the incremental blob API, elsewhere an empty value appended to piece by piece.
    Its length."""
    from sqlalchemy import text

    file.seek(0, 2)
    size = file.tell()
    file.seek(0)
    connection = session.connection()
    if connection.dialect.name == "sqlite":
        connection.exec_driver_sql(
            'INSERT INTO "messageraw" (message_id, raw) VALUES (?, zeroblob(?))', (message_id, size)
        )
        rowid = connection.exec_driver_sql(
            'SELECT rowid FROM "messageraw" WHERE message_id = ?', (message_id,)
        ).scalar()
        if size:
            with connection.connection.dbapi_connection.blobopen("messageraw", "raw", rowid) as blob:  # type: ignore[union-attr]  # sqlite3
                for piece in iter(lambda: file.read(RAW_PIECE_BYTES), b""):
                    blob.write(piece)
        return size
    session.execute(text("INSERT INTO messageraw (message_id, raw) VALUES (:id, :raw)"), {"id": message_id, "raw": b""})
    for piece in iter(lambda: file.read(RAW_PIECE_BYTES), b""):
        session.execute(
            text("UPDATE messageraw SET raw = raw || :piece WHERE message_id = :id"), {"id": message_id, "piece": piece}
        )
    return size
