"""`agentdesk db copy --to URL`: move a whole desk to another database without losing a row.

The target is created at the newest schema revision and must be empty. Tables are copied in
dependency order in batches (memory stays flat at a million messages); self-references (merged
customers and conversations) are filled in a second pass; PostgreSQL sequences are moved past the
copied ids; full-text indexes fill themselves through the target's own triggers or generated
columns. Attachments' bytes follow into the target's own store (files beside a SQLite target, the
`attachmentblob` table on PostgreSQL: store/attachments.py), each checked by its sha256. Finally
every table's row count is compared (the bytes' table aside: its rows depend on where the bytes live).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Table, func, select, text, tuple_, update
from sqlalchemy.engine import Engine
from sqlmodel import SQLModel

from agentdesk.errors import AgentdeskError
from agentdesk.store import attachments, db

# Parents before children.
ORDER = (
    "agent",
    "customer",
    "identity",
    "conversation",
    "conversationtag",
    "message",
    "messageraw",
    "attachment",
    "event",
    "outbox",
    "syncstate",
    "presence",
    "slaclockevent",
    "draft",
    "blockedsender",
    "deliveryattempt",
    "attachmentblob",
    "satisfactionsurvey",
    "kbarticle",
    "articleuse",
)
# Columns that point into their own table: copied as NULL, then set once every row exists.
SELF_REFERENCES = {"customer": "merged_into_id", "conversation": "merged_into_id"}
BATCH = 2000


@dataclass(frozen=True)
class CopyReport:
    rows: dict[str, int]


def _count(engine: Engine, table: Table) -> int:
    with engine.connect() as connection:
        return connection.execute(select(func.count()).select_from(table)).scalar_one()


def copy_database(
    source: Engine, target_url: str, *, progress: Callable[[int, int, str], None] | None = None
) -> CopyReport:
    tables = SQLModel.metadata.tables
    assert set(ORDER) == set(tables), "a new table must be added to ORDER"
    target = db.open_database(target_url)
    try:
        for name in ORDER:
            if _count(target, tables[name]):
                raise AgentdeskError(
                    f"the target database is not empty (table {name} has rows); copy into a new, empty database"
                )
        totals = {name: _count(source, tables[name]) for name in ORDER}
        grand_total, done = sum(totals.values()), 0
        for name in ORDER:
            table = tables[name]
            self_reference = SELF_REFERENCES.get(name)
            key = list(table.primary_key.columns)
            with source.connect() as reader, target.begin() as writer:
                # Stream in primary-key order: a server-side cursor would hold a read transaction
                # open on SQLite for the whole copy, keyset pages do not.
                last = None
                while True:
                    statement = select(table).order_by(*key).limit(BATCH)
                    if last is not None:
                        statement = statement.where(tuple_(*key) > tuple_(*last))
                    rows = [dict(row._mapping) for row in reader.execute(statement)]
                    if not rows:
                        break
                    last = tuple(rows[-1][column.name] for column in key)
                    if self_reference:
                        for row in rows:
                            row[self_reference] = None
                    writer.execute(table.insert(), rows)
                    done += len(rows)
                    if progress:
                        progress(done, grand_total, f"copying {name}")
            if self_reference:
                _copy_self_reference(source, target, table, self_reference)
        if target.dialect.name == "postgresql":
            _advance_sequences(target)
        missing = _copy_attachment_bytes(source, target, progress)
        copied = {name: _count(target, tables[name]) for name in ORDER}
        totals["attachmentblob"] = copied["attachmentblob"]
        if copied != totals:
            lost = {name: (totals[name], copied[name]) for name in ORDER if totals[name] != copied[name]}
            raise AgentdeskError(f"row counts differ after the copy (source, target): {lost}")
        if missing:
            raise AgentdeskError(
                f"every row was copied, but the bytes of {len(missing)} attachments are missing from the source's "
                f"store (the first: {missing[0]}); they cannot be opened in the target either"
            )
        return CopyReport(rows=copied)
    finally:
        target.dispose()


def _copy_attachment_bytes(source: Engine, target: Engine, progress) -> list[str]:
    """Put every stored attachment's bytes into the target's store; the keys whose bytes the
    source lacks."""
    from sqlmodel import Session

    missing: list[str] = []
    with Session(source) as reader:
        keys = attachments.stored_keys(session=reader)
    pending, pending_bytes = [], 0
    for done, key in enumerate(keys, start=1):
        with Session(source) as reader:
            try:
                data = attachments.read(session=reader, key=key)
            except AgentdeskError:
                missing.append(key)
                continue
        if attachments.files.key_of(data) != key:
            missing.append(key)  # damaged: never carried under a key it does not match
            continue
        pending.append(data)
        pending_bytes += len(data)
        if pending_bytes > 32 * 1024 * 1024 or done == len(keys):
            _put_all(target, pending)
            pending, pending_bytes = [], 0
        if progress:
            progress(done, len(keys), "copying attachments")
    _put_all(target, pending)
    return missing


def _put_all(target: Engine, items: list[bytes]) -> None:
    if not items:
        return
    from sqlmodel import Session

    with Session(target) as writer:
        store = attachments.Writer(writer)
        for data in items:
            store.submit(attachments.files.key_of(data), data)
        store.finish()
        writer.commit()


def _copy_self_reference(source: Engine, target: Engine, table: Table, column: str) -> None:
    with source.connect() as reader:
        pairs = reader.execute(select(table.c.id, table.c[column]).where(table.c[column].is_not(None))).all()
    if pairs:
        with target.begin() as writer:
            for row_id, value in pairs:
                writer.execute(update(table).where(table.c.id == row_id).values({column: value}))


def _advance_sequences(target: Engine) -> None:
    with target.begin() as connection:
        for name, table in SQLModel.metadata.tables.items():
            if "id" in table.c and table.c.id.autoincrement is not False and table.c.id.primary_key:
                connection.execute(
                    text(
                        f"SELECT setval(pg_get_serial_sequence('{name}', 'id'), "
                        f"coalesce((SELECT max(id) FROM {name}), 0) + 1, false)"
                    )
                )
