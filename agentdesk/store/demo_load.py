"""The demo's database written in bulk: the generated rows of each table through one plain sqlite3
connection, and every stored time moved when an old demo is opened again.

Not the ORM, not SQLAlchemy's executemany: `agentdesk demo --conversations 100000` writes about a
million messages and must finish in a couple of minutes. Each chunk of `Rows` holds tuples in
the column order of the INSERTs below (demo/build.py makes them); full-text indexing still
happens through the store's triggers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from agentdesk.store.db import BUSY_TIMEOUT_MS


@dataclass
class Rows:
    """One chunk of the demo's rows, each a tuple in its INSERT's column order (`_insert`)."""

    customers: list = field(default_factory=list)
    identities: list = field(default_factory=list)
    conversations: list = field(default_factory=list)
    tags: list = field(default_factory=list)
    messages: list = field(default_factory=list)
    outbox: list = field(default_factory=list)
    events: list = field(default_factory=list)
    surveys: list = field(default_factory=list)
    article_uses: list = field(default_factory=list)


def write_rows(path: Path, chunks: Iterable[Rows], *, on_chunk: Callable[[Rows], None] | None = None) -> None:
    """Write every chunk into the (created, empty) database at `path`, one transaction each, then
    fill in what is derived (the outbox's channel) and hand the file back in WAL mode."""
    import sqlite3

    # One plain connection of our own: the build owns the file until it is done.
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        cursor = connection.cursor()
        # A throwaway build: if it dies half-way, the missing marker makes the next run start over,
        # so it needs no journal and no fsync.
        cursor.execute("PRAGMA journal_mode = OFF")
        cursor.execute("PRAGMA synchronous = OFF")
        cursor.execute("PRAGMA cache_size = -262144")  # 256 MiB
        cursor.execute("PRAGMA foreign_keys = ON")
        for rows in chunks:
            cursor.execute("BEGIN")
            _insert(cursor, rows)
            cursor.execute("COMMIT")
            if on_chunk is not None:
                on_chunk(rows)
        # Outbox channel follows its conversation; filled in one statement rather than per row.
        cursor.execute(
            "UPDATE outbox SET channel = (SELECT c.channel FROM message m JOIN conversation c "
            "ON c.id = m.conversation_id WHERE m.id = outbox.message_id)"
        )
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA optimize")
    finally:
        connection.close()


def _insert(cursor, r: Rows) -> None:
    cursor.executemany(
        "INSERT INTO customer (id, name, organization, tier, notes, created_at) VALUES (?,?,?,?,?,?)", r.customers
    )
    cursor.executemany("INSERT INTO identity (customer_id, kind, address, created_at) VALUES (?,?,?,?)", r.identities)
    cursor.executemany(
        "INSERT INTO conversation (id, channel, source, subject, customer_id, status, priority, assignee, "
        "snoozed_until, created_at, updated_at, solved_at, sla_policy, first_response_due, next_response_due, "
        "periodic_update_due, resolution_due, first_responded_at, last_agent_reply_at, last_customer_message_at, "
        "waiting_since, warning_at, queue_due, queue_wait, merged_into_id, version) "
        "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        r.conversations,
    )
    cursor.executemany("INSERT INTO conversationtag (conversation_id, tag) VALUES (?,?)", r.tags)
    cursor.executemany(
        "INSERT INTO message (id, conversation_id, direction, kind, bulk, author, author_login, sender_address, "
        "subject, body_text, body_html_text, at, ingested_at, source, external_id, content_hash, in_reply_to, "
        '"references", thread_reason, parse_error) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)',
        r.messages,
    )
    cursor.executemany(
        "INSERT INTO outbox (message_id, channel, source, state, attempts, last_error, created_at, "
        "next_attempt_at, sent_at) VALUES (?,?,?,?,?,?,?,?,?)",
        r.outbox,
    )
    cursor.executemany(
        "INSERT INTO event (id, at, agent, action, conversation_id, customer_id, detail) VALUES (?,?,?,?,?,?,?)",
        r.events,
    )
    cursor.executemany(
        "INSERT INTO satisfactionsurvey (conversation_id, message_id, sent_at, agent, skipped, rating, comment, "
        "answered_at, answer_message_id) VALUES (?,?,?,?,?,?,?,?,?)",
        r.surveys,
    )
    cursor.executemany(
        "INSERT INTO articleuse (slug, conversation_id, message_id, at) VALUES (?,?,?,?)", r.article_uses
    )


def shift_times(path: Path, seconds: int) -> None:
    """Move every stored time of a demo database by `seconds` (NEVER stays never)."""
    import sqlite3

    from sqlmodel import SQLModel

    from agentdesk.store.models import NEVER, UTCDateTime, sqlite_text

    never = sqlite_text(NEVER)
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        connection.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        connection.execute("BEGIN IMMEDIATE")
        for table in SQLModel.metadata.sorted_tables:
            for column in table.columns:
                if isinstance(column.type, UTCDateTime):
                    # Stored as 'YYYY-MM-DD HH:MM:SS.ffffff': shift the seconds, keep the fraction.
                    connection.execute(
                        f'UPDATE "{table.name}" SET "{column.name}" = '
                        f"strftime('%Y-%m-%d %H:%M:%S', \"{column.name}\", '{seconds:+d} seconds') "
                        f'|| substr("{column.name}", 20) '
                        f'WHERE "{column.name}" IS NOT NULL AND "{column.name}" < ?',
                        (never,),
                    )
        connection.execute("COMMIT")
    finally:
        connection.close()
