"""ingest_batch indexes a chunk's messages for full-text search in one statement on SQLite (the
message_fts_insert trigger dropped and re-created inside the transaction): the index must be
exactly what the per-row trigger builds, and the trigger must be there for every other writer."""

from __future__ import annotations

from datetime import timedelta

import factories
import pytest
from conftest import FIXED_NOW

from agentdesk.ingest import ingest_batch, ingest_message
from agentdesk.store import bulk as bulk_insert
from agentdesk.store import db, search
from agentdesk.store.models import Customer, Message

M = timedelta(minutes=1)


def _messages(n: int, tag: str):
    return [
        factories.inbound(
            at=FIXED_NOW + i * M,
            subject=f"{tag} subject {i} zebra{i}",
            body=f"body {tag} {i} quokka{i} café",
            sender=f"s{i % 30}@velo.example",
            name=f"Name{i % 30} Ölund",
            external_id=f"{tag}-{i}@velo.example",
        )
        for i in range(n)
    ]


def _trigger(engine) -> str | None:
    with engine.connect() as connection:
        return connection.exec_driver_sql(
            "SELECT sql FROM sqlite_master WHERE type = 'trigger' AND name = 'message_fts_insert'"
        ).scalar()


def _index(engine, table: str = "message_fts") -> list[tuple]:
    with engine.connect() as connection:
        # The index's own view: every term of every row (fts5vocab over the instance table).
        connection.exec_driver_sql(
            f"CREATE VIRTUAL TABLE IF NOT EXISTS temp.{table}_terms USING fts5vocab(main, {table}, instance)"
        )
        return connection.exec_driver_sql(
            f"SELECT term, doc, col, offset FROM temp.{table}_terms ORDER BY doc, col, offset"
        ).all()


def test_the_batch_index_is_the_trigger_index(engine, policies, monkeypatch):
    if engine.dialect.name != "sqlite":
        pytest.skip("SQLite only")
    before = _trigger(engine)
    assert before is not None
    messages = _messages(3 * bulk_insert.FTS_BULK_MIN, "bulk")
    real, seen = bulk_insert.insert_returning, []

    def spy(session, model, rows):  # the messages go in while the trigger is away
        if model is Message:
            seen.append(
                session.connection()
                .exec_driver_sql("SELECT count(*) FROM sqlite_master WHERE name = 'message_fts_insert'")
                .scalar()
            )
        elif model is Customer:
            seen.append(
                session.connection()
                .exec_driver_sql(
                    "SELECT count(*) FROM sqlite_master WHERE name IN ('customer_fts_insert', 'identity_fts_insert')"
                )
                .scalar()
            )
        return real(session, model, rows)

    monkeypatch.setattr(bulk_insert, "insert_returning", spy)
    with db.write_session(engine) as session:
        ingest_batch(session, messages, policies=policies, now=FIXED_NOW + 100 * M)
        session.commit()
    monkeypatch.undo()
    assert seen == [0, 0]
    assert _trigger(engine) == before
    bulk = _index(engine)
    customers = _index(engine, "customer_fts")
    assert len({doc for _, doc, _, _ in customers}) == 30
    assert len({doc for _, doc, _, _ in bulk}) == len(messages)

    # The same messages one by one (the trigger indexes them) into a fresh database.
    other = engine.url.set(database=engine.url.database.replace(".db", "-rows.db"))
    row_engine = db.open_database(str(other))
    try:
        with db.write_session(row_engine) as session:
            for message in messages:
                ingest_message(session, message, policies=policies, now=FIXED_NOW + 100 * M)
            session.commit()
        assert _index(row_engine) == bulk
        assert _index(row_engine, "customer_fts") == customers
    finally:
        row_engine.dispose()
    with engine.connect() as connection:
        assert search.search_message_ids(connection, "quokka7") and search.search_message_ids(connection, "cafe")
        assert search.search_customer_ids(connection, "s7@velo.example") and search.search_customer_ids(
            connection, "olund"
        )


def test_a_failed_chunk_leaves_the_trigger_in_place(engine, policies, monkeypatch):
    if engine.dialect.name != "sqlite":
        pytest.skip("SQLite only")
    before = _trigger(engine)
    real = bulk_insert.insert_returning

    def broken(session, model, rows):
        real(session, model, rows)
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(bulk_insert, "insert_returning", broken)
    with db.write_session(engine) as session:
        with pytest.raises(RuntimeError):
            ingest_batch(session, _messages(bulk_insert.FTS_BULK_MIN, "fail"), policies=policies, now=FIXED_NOW)
        # Still inside the transaction: the trigger is back already.
        assert (
            session.connection()
            .exec_driver_sql("SELECT count(*) FROM sqlite_master WHERE name = 'message_fts_insert'")
            .scalar()
            == 1
        )
        session.rollback()
    assert _trigger(engine) == before
    monkeypatch.undo()
    # Another writer (one message at a time) is still indexed by the trigger.
    with db.write_session(engine) as session:
        ingest_message(session, _messages(1, "single")[0], policies=policies, now=FIXED_NOW)
        session.commit()
    with engine.connect() as connection:
        assert search.search_message_ids(connection, "quokka0")
