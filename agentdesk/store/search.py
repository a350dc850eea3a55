"""Full-text search over message subjects and bodies and customer names and addresses.

On SQLite, two FTS5 tables kept in step by triggers, so every write path (ingest, replies, the
demo builder, a future tool writing SQL by hand) updates the index in the same transaction:

- `message_fts` is an external-content index of `message(subject, body_text)`;
- `customer_fts` holds each customer's name, organization and every identity address.

Other backends (PostgreSQL) get tsvector search in the teams issue; until then they fall back to
a case-insensitive substring match so search still works, slowly.
"""

from __future__ import annotations

import re

from sqlalchemy import text
from sqlalchemy.engine import Connection

_SQLITE_DDL = [
    """CREATE VIRTUAL TABLE IF NOT EXISTS message_fts USING fts5(
        subject, body_text, content='message', content_rowid='id',
        tokenize='unicode61 remove_diacritics 2')""",
    """CREATE TRIGGER IF NOT EXISTS message_fts_insert AFTER INSERT ON message BEGIN
        INSERT INTO message_fts(rowid, subject, body_text) VALUES (new.id, new.subject, new.body_text);
    END""",
    """CREATE TRIGGER IF NOT EXISTS message_fts_delete AFTER DELETE ON message BEGIN
        INSERT INTO message_fts(message_fts, rowid, subject, body_text)
        VALUES ('delete', old.id, old.subject, old.body_text);
    END""",
    """CREATE TRIGGER IF NOT EXISTS message_fts_update AFTER UPDATE OF subject, body_text ON message BEGIN
        INSERT INTO message_fts(message_fts, rowid, subject, body_text)
        VALUES ('delete', old.id, old.subject, old.body_text);
        INSERT INTO message_fts(rowid, subject, body_text) VALUES (new.id, new.subject, new.body_text);
    END""",
    """CREATE VIRTUAL TABLE IF NOT EXISTS customer_fts USING fts5(
        name, organization, addresses, tokenize='unicode61 remove_diacritics 2')""",
    """CREATE TRIGGER IF NOT EXISTS customer_fts_insert AFTER INSERT ON customer BEGIN
        INSERT INTO customer_fts(rowid, name, organization, addresses)
        VALUES (new.id, new.name, new.organization, '');
    END""",
    """CREATE TRIGGER IF NOT EXISTS customer_fts_update AFTER UPDATE OF name, organization ON customer BEGIN
        UPDATE customer_fts SET name = new.name, organization = new.organization WHERE rowid = new.id;
    END""",
    """CREATE TRIGGER IF NOT EXISTS customer_fts_delete AFTER DELETE ON customer BEGIN
        DELETE FROM customer_fts WHERE rowid = old.id;
    END""",
    """CREATE TRIGGER IF NOT EXISTS identity_fts_insert AFTER INSERT ON identity BEGIN
        UPDATE customer_fts SET addresses = (
            SELECT group_concat(address, ' ') FROM identity WHERE customer_id = new.customer_id)
        WHERE rowid = new.customer_id;
    END""",
    """CREATE TRIGGER IF NOT EXISTS identity_fts_delete AFTER DELETE ON identity BEGIN
        UPDATE customer_fts SET addresses = coalesce((
            SELECT group_concat(address, ' ') FROM identity WHERE customer_id = old.customer_id), '')
        WHERE rowid = old.customer_id;
    END""",
    """CREATE TRIGGER IF NOT EXISTS identity_fts_update AFTER UPDATE ON identity BEGIN
        UPDATE customer_fts SET addresses = coalesce((
            SELECT group_concat(address, ' ') FROM identity WHERE customer_id = old.customer_id), '')
        WHERE rowid = old.customer_id;
        UPDATE customer_fts SET addresses = (
            SELECT group_concat(address, ' ') FROM identity WHERE customer_id = new.customer_id)
        WHERE rowid = new.customer_id;
    END""",
]

# Rows written before the index existed (a database upgraded from revision 1).
_SQLITE_BACKFILL = [
    "INSERT INTO message_fts(message_fts) VALUES ('rebuild')",
    """INSERT INTO customer_fts(rowid, name, organization, addresses)
       SELECT c.id, c.name, c.organization,
              coalesce((SELECT group_concat(address, ' ') FROM identity i WHERE i.customer_id = c.id), '')
       FROM customer c WHERE c.id NOT IN (SELECT rowid FROM customer_fts)""",
]


def install(connection: Connection) -> None:
    """Create the indexes and their triggers, and index rows that are already there."""
    if connection.dialect.name != "sqlite":
        return
    for statement in _SQLITE_DDL + _SQLITE_BACKFILL:
        connection.exec_driver_sql(statement)


_TERM = re.compile(r'"[^"]*"|\S+')


def fts_query(user_query: str) -> str:
    """Turn what a person typed into a safe FTS5 query: every term must match, as typed.

    Each term becomes a quoted phrase (so `dana@example.com` or `re:` never reach FTS5's own query
    syntax); a trailing `*` keeps prefix search; quoted phrases stay phrases.
    """
    parts = []
    for term in _TERM.findall(user_query):
        prefix = term.endswith("*") and not term.startswith('"')
        word = term.strip('"').rstrip("*").replace('"', '""')
        if not word.strip():
            continue
        parts.append(f'"{word}"' + ("*" if prefix else ""))
    return " AND ".join(parts)


def matching_conversation_ids_sql(connection_dialect: str) -> str:
    """SQL selecting the ids of conversations whose messages or customer match :q."""
    if connection_dialect == "sqlite":
        return """
            SELECT m.conversation_id FROM message m
            WHERE m.id IN (SELECT rowid FROM message_fts WHERE message_fts MATCH :q)
            UNION
            SELECT c.id FROM conversation c
            WHERE c.customer_id IN (SELECT rowid FROM customer_fts WHERE customer_fts MATCH :q)
        """
    return """
        SELECT m.conversation_id FROM message m
        WHERE m.subject ILIKE :like OR m.body_text ILIKE :like
        UNION
        SELECT c.id FROM conversation c JOIN customer cu ON cu.id = c.customer_id
        WHERE cu.name ILIKE :like
           OR cu.id IN (SELECT customer_id FROM identity WHERE address ILIKE :like)
    """


def search_parameters(user_query: str, dialect: str) -> dict[str, str]:
    if dialect == "sqlite":
        return {"q": fts_query(user_query)}
    return {"like": f"%{user_query.strip()}%"}


def search_customer_ids(connection: Connection, user_query: str, *, limit: int = 50) -> list[int]:
    if connection.dialect.name == "sqlite":
        query = fts_query(user_query)
        if not query:
            return []
        rows = connection.execute(
            text("SELECT rowid FROM customer_fts WHERE customer_fts MATCH :q ORDER BY rank LIMIT :n"),
            {"q": query, "n": limit},
        )
    else:
        rows = connection.execute(
            text(
                "SELECT DISTINCT c.id FROM customer c LEFT JOIN identity i ON i.customer_id = c.id "
                "WHERE c.name ILIKE :like OR i.address ILIKE :like LIMIT :n"
            ),
            {"like": f"%{user_query.strip()}%", "n": limit},
        )
    return [row[0] for row in rows]


def search_message_ids(connection: Connection, user_query: str, *, limit: int = 50) -> list[int]:
    if connection.dialect.name == "sqlite":
        query = fts_query(user_query)
        if not query:
            return []
        rows = connection.execute(
            text("SELECT rowid FROM message_fts WHERE message_fts MATCH :q ORDER BY rank LIMIT :n"),
            {"q": query, "n": limit},
        )
    else:
        rows = connection.execute(
            text("SELECT id FROM message WHERE subject ILIKE :like OR body_text ILIKE :like LIMIT :n"),
            {"like": f"%{user_query.strip()}%", "n": limit},
        )
    return [row[0] for row in rows]
