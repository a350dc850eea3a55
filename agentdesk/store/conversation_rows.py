"""The stored conversations a chunk of inbound messages changes, as plain rows.

Ingest changes every conversation a chunk joins (version, updated_at, its SLA fields, sometimes
its status). As ORM objects each costs its load with instrumented attributes, a tracked set per
changed field and its place in the unit of work's flush; a sync of a large mailbox touches
thousands. Read here as plain `ConversationRow`s, locked as the ORM read locked them, and
written back with one UPDATE statement (executemany) per set of changed columns.

The session may hold an ORM copy of one of these conversations (a caller's, a receipt's): the
UPDATE expires it, so it reads what was written when next used, as the ORM's own write would
have left it.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, select
from sqlmodel import Session

from agentdesk.store.bound_lists import one_of
from agentdesk.store.models import Conversation, sqlite_text

_TABLE = Conversation.__table__  # type: ignore[attr-defined]  # set by SQLModel


class ConversationRow:
    """One `conversation` row as plain attributes (the table's columns), and what changed since
    it was read or last written (`changes`)."""

    id: int
    channel: str
    source: str
    subject: str
    customer_id: int
    status: str
    priority: str
    assignee: str | None
    snoozed_until: datetime | None
    created_at: datetime
    updated_at: datetime
    solved_at: datetime | None
    sla_policy: str
    first_response_due: datetime | None
    next_response_due: datetime | None
    periodic_update_due: datetime | None
    resolution_due: datetime | None
    first_responded_at: datetime | None
    last_agent_reply_at: datetime | None
    last_customer_message_at: datetime | None
    waiting_since: datetime | None
    warning_at: datetime | None
    queue_due: datetime
    queue_wait: datetime
    merged_into_id: int | None
    aside: str
    bounced_at: datetime | None
    version: int

    def __init__(self, columns: dict[str, Any]):
        self.__dict__.update(columns)
        self._written = columns

    def changes(self) -> dict[str, Any]:
        """The columns whose value differs from the row as read (or as last written)."""
        written = self._written
        return {name: value for name, value in self.__dict__.items() if name in written and written[name] != value}

    def reset(self, columns: dict[str, Any]) -> None:
        """The row as stored now (`columns`: all of them, or the ones just written)."""
        self.__dict__.update(columns)
        self._written = {**self._written, **columns}


COLUMNS = tuple(column.key for column in _TABLE.columns)


def by_id(*, session: Session, conversation_ids: Iterable[int], for_update: bool = False) -> dict[int, ConversationRow]:
    """The conversations with these ids, as rows.

    `for_update`: for a caller that changes them from what it reads (ingest bumps the version,
    recomputes the SLA fields, reopens). On PostgreSQL each row is locked (FOR NO KEY UPDATE, the
    lock its UPDATE takes anyway) before it is read, in id order, so an agent's change committed
    between this read and our UPDATE cannot be overwritten, version included. SQLite has no row
    locks; a write session holds the database's.
    """
    found: dict[int, ConversationRow] = {}
    wanted = sorted(set(conversation_ids))
    if not wanted:
        return found
    statement = select(_TABLE).where(one_of(session, _TABLE.c.id, wanted)).order_by(_TABLE.c.id)
    if for_update:
        statement = statement.with_for_update(key_share=True)
    for row in session.execute(statement):
        columns = row._asdict()
        found[columns["id"]] = ConversationRow(columns)
    return found


def reread(*, session: Session, rows: Iterable[ConversationRow]) -> None:
    """Rows as stored now (someone wrote them through the ORM since they were read)."""
    held = {row.id: row for row in rows}
    for conversation_id, fresh in by_id(session=session, conversation_ids=held, for_update=True).items():
        held[conversation_id].reset({name: getattr(fresh, name) for name in COLUMNS})


def write_changes(*, session: Session, rows: Iterable[ConversationRow]) -> None:
    """UPDATE each row's changed columns: one executemany per set of changed columns."""
    groups: dict[tuple[str, ...], list[tuple[ConversationRow, dict[str, Any]]]] = {}
    for row in rows:
        changed = row.changes()
        if changed:
            groups.setdefault(tuple(changed), []).append((row, changed))
    if not groups:
        return
    connection = session.connection()
    sqlite = connection.dialect.name == "sqlite"
    for names, changes in groups.items():
        if sqlite:
            # The driver's executemany, with times in the text SQLAlchemy's SQLite DATETIME
            # stores (as store/bulk.py writes the chunk's inserts).
            sql = 'UPDATE "conversation" SET {} WHERE id = ?'.format(", ".join(f'"{name}" = ?' for name in names))
            connection.exec_driver_sql(
                sql,
                [
                    tuple(sqlite_text(value) if isinstance(value, datetime) else value for value in changed.values())
                    + (row.id,)
                    for row, changed in changes
                ],
            )
        else:
            statement = (
                _TABLE.update()
                .where(_TABLE.c.id == bindparam("row_id"))
                .values({name: bindparam(f"new_{name}") for name in names})
            )
            session.execute(
                statement,
                [
                    {"row_id": row.id, **{f"new_{name}": value for name, value in changed.items()}}
                    for row, changed in changes
                ],
            )
        for row, changed in changes:
            row.reset(changed)
    for _, changes in groups.items():
        for row, _ in changes:
            held = session.identity_map.get(session.identity_key(Conversation, row.id))
            if held is not None:
                session.expire(held)
