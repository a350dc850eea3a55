"""A database written by an earlier schema revision opens and upgrades under this one."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlmodel import SQLModel, select

from agentdesk.store import db, migrations, search
from agentdesk.store.models import Conversation, Customer, Event, Identity, Message

FIXTURE = Path(__file__).parent.parent / "data" / "db" / "schema-r1.db"


def _schema(path: Path) -> dict[str, list]:
    """Every table's columns, indexes and foreign keys, as SQLite reports them."""
    connection = sqlite3.connect(path)
    try:
        tables = [
            row[0]
            for row in connection.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name"
            )
        ]
        shape = {}
        for table in tables:
            columns = [row[1:] for row in connection.execute(f'PRAGMA table_info("{table}")')]
            indexes = sorted(
                (row[1], tuple(c[2] for c in connection.execute(f'PRAGMA index_info("{row[1]}")')))
                for row in connection.execute(f'PRAGMA index_list("{table}")')
            )
            foreign = sorted(row[2:5] for row in connection.execute(f'PRAGMA foreign_key_list("{table}")'))
            shape[table] = [sorted(columns), indexes, foreign]
        shape["triggers"] = sorted(
            row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")
        )
        return shape
    finally:
        connection.close()


@pytest.fixture
def old_database(tmp_path) -> Path:
    copy = tmp_path / "old.db"
    shutil.copy(FIXTURE, copy)
    return copy


def test_the_fixture_really_is_revision_1(old_database):
    connection = sqlite3.connect(old_database)
    assert connection.execute("SELECT max(revision) FROM schema_revision").fetchone() == (1,)
    assert connection.execute("SELECT count(*) FROM sqlite_master WHERE name = 'message_fts'").fetchone() == (0,)


def test_an_old_database_upgrades_keeps_its_rows_and_becomes_searchable(old_database):
    engine = db.open_database(f"sqlite:///{old_database}")
    with engine.connect() as connection:
        assert db.schema_revision(connection) == migrations.HEAD
        assert search.search_message_ids(connection, "spokes") == [1]
        assert search.search_customer_ids(connection, "greta@velo.example") == [1]
        assert search.search_customer_ids(connection, "+31612345678") == [1]
    with db.read_session(engine) as session:
        assert session.get(Customer, 1).name == "Greta Lindqvist"
        assert len(session.exec(select(Identity)).all()) == 2
        conversation = session.get(Conversation, 1)
        assert (conversation.subject, conversation.priority, conversation.version) == (
            "Spokes keep breaking",
            "high",
            1,
        )
        assert session.get(Message, 1).external_id == "abc123@velo.example"
        assert session.exec(select(Event)).one().action == "created"
        # Columns added by later revisions are there, empty.
        assert session.get(Customer, 1).merged_into_id is None
        assert session.get(Message, 1).thread_key is None
    engine.dispose()


def test_an_upgraded_database_has_exactly_the_schema_of_a_new_one(old_database, tmp_path):
    db.open_database(f"sqlite:///{old_database}").dispose()
    fresh = tmp_path / "fresh.db"
    db.open_database(f"sqlite:///{fresh}").dispose()
    assert _schema(old_database) == _schema(fresh)


def test_the_models_describe_exactly_what_the_migrations_create(old_database):
    engine = db.open_database(f"sqlite:///{old_database}")

    def ours(name, type_, *_):
        # Full-text tables and the revision table are created by SQL, not by the models.
        return not (type_ == "table" and ("_fts" in name or name == "schema_revision"))

    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"include_name": ours})
        assert compare_metadata(context, SQLModel.metadata) == []
    engine.dispose()


def test_opening_twice_does_not_migrate_twice(old_database):
    db.open_database(f"sqlite:///{old_database}").dispose()
    db.open_database(f"sqlite:///{old_database}").dispose()
    connection = sqlite3.connect(old_database)
    revisions = [row[0] for row in connection.execute("SELECT revision FROM schema_revision ORDER BY revision")]
    assert revisions == list(range(1, migrations.HEAD + 1))


def test_a_database_from_a_newer_agentdesk_is_refused_with_a_clear_message(old_database):
    connection = sqlite3.connect(old_database)
    connection.execute("INSERT INTO schema_revision VALUES (999, 'future', '2030-01-01')")
    connection.commit()
    connection.close()
    with pytest.raises(db.DatabaseError, match="newer than this agentdesk knows"):
        db.open_database(f"sqlite:///{old_database}")
