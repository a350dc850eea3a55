"""The first frame's read before the engine (`app.queue.FirstRead`), on SQLite and a real PostgreSQL:
whether the database may be read before the engine opens it, the first rows it reads (the engine's
own), and a server that will not take the connection refused in the engine's words."""

from __future__ import annotations

from datetime import timedelta

import pytest
from conftest import FIXED_NOW
from factories import inbound, ingest

from agentdesk import config
from agentdesk.app import queue
from agentdesk.app.desk import Desk
from agentdesk.domain import clocks
from agentdesk.store import db


def _settings(url: str, tmp_path) -> config.Settings:
    return config.parse(f'[database]\nurl = "{url}"\n', source=tmp_path / "config.toml")


def test_the_first_read_reads_the_engine_s_first_rows_once_the_database_is_at_head(any_database_url, tmp_path):
    settings = _settings(any_database_url, tmp_path)
    # No database yet (SQLite: no file; PostgreSQL: an empty database): the engine creates it first.
    assert not queue.FirstRead(settings).at_head()
    engine = db.open_database(any_database_url)
    policies = clocks.Policies.from_settings(settings)
    for index in range(12):
        ingest(
            engine,
            policies,
            inbound(sender=f"c{index}@x.example", name=f"C {index}", at=FIXED_NOW - timedelta(minutes=7 * index)),
        )
    desk = Desk(settings, agent="tester", now=lambda: FIXED_NOW, engine_given=engine)
    first_read = queue.FirstRead(settings)
    assert first_read.at_head()
    for text in ("battery", "status:open"):  # a search is the engine's to read
        assert queue.FirstRead(settings).window(desk, queue.Filter("open", text), limit=5) is None
    found = first_read.window(desk, queue.Filter("open"), limit=5)
    assert found is not None and len(found.rows) == 5
    assert found == queue.window(desk, queue.Filter("open"), offset=0, limit=5)
    if db.sqlite_path(any_database_url) is None:
        # The connection served the first window and is closed: the engine reads from then on.
        assert first_read.window(desk, queue.Filter("open"), limit=5) is None
    engine.dispose()


def test_a_postgresql_database_at_another_revision_is_the_engine_s(postgres_server, tmp_path):
    url = postgres_server.create_database("first_read_old")
    engine = db.open_database(url)
    with engine.begin() as connection:
        connection.exec_driver_sql(
            "DELETE FROM schema_revision WHERE revision = (SELECT max(revision) FROM schema_revision)"
        )
    engine.dispose()
    assert not queue.FirstRead(_settings(url, tmp_path)).at_head()


@pytest.mark.parametrize("case", ["nothing listens", "unknown user", "missing database"])
def test_a_server_that_will_not_take_the_connection_is_refused_in_the_engine_s_words(case, postgres_server, tmp_path):
    from servers.postgres import free_port

    url = {
        "nothing listens": f"postgresql://agent:s3cret-pw@127.0.0.1:{free_port()}/agentdesk",
        "unknown user": f"postgresql://nobody_here:pw@127.0.0.1:{postgres_server.port}/postgres",
        "missing database": f"postgresql://agentdesk@127.0.0.1:{postgres_server.port}/no_such_database",
    }[case]
    with pytest.raises(db.DatabaseError) as engine_said:
        db.open_database(url)
    with pytest.raises(db.DatabaseError) as first_read_said:
        queue.FirstRead(_settings(url, tmp_path)).at_head()
    assert str(first_read_said.value) == str(engine_said.value)
