"""Team features: moving to PostgreSQL, one sync per team, presence."""

from __future__ import annotations

from datetime import timedelta

import pytest
from conftest import FIXED_NOW
from sqlmodel import select

from agentdesk import cli
from agentdesk.demo import build
from agentdesk.domain import presence
from agentdesk.errors import Conflict
from agentdesk.store import copy, db, locks, queries, search
from agentdesk.store.models import Conversation, Customer, Message


def test_db_copy_moves_a_desk_from_sqlite_to_postgresql_without_losing_a_row(tmp_path, postgres_server, capsys):
    config_path = build.ensure_demo(tmp_path / "demo", conversations=300)
    source_url = f"sqlite:///{tmp_path / 'demo' / 'agentdesk.db'}"
    target_url = postgres_server.create_database("copy_target")
    assert cli.main(["--config", str(config_path), "db", "copy", "--to", target_url]) == 0
    assert "every table's row count matches" in capsys.readouterr().err

    source, target = db.open_database(source_url), db.open_database(target_url)
    try:
        for model in (Customer, Conversation, Message):
            with db.read_session(source) as a, db.read_session(target) as b:
                rows_a = [row.model_dump() for row in a.exec(select(model).order_by(model.id))]
                rows_b = [row.model_dump() for row in b.exec(select(model).order_by(model.id))]
                assert rows_a == rows_b, model.__name__
        with source.connect() as a, target.connect() as b:
            # The target's own full-text index finds exactly what the source's finds.
            found = set(search.search_message_ids(a, "battery", limit=100000))
            assert found and found == set(search.search_message_ids(b, "battery", limit=100000))
            assert set(search.search_customer_ids(a, "mail.example", limit=1000)) == set(
                search.search_customer_ids(b, "mail.example", limit=1000)
            )
        # The conversations a search finds, one word (the target's `conversation_search`, filled by
        # its triggers as the messages were copied), a prefix, several words and a phrase alike.
        with db.read_session(source) as a, db.read_session(target) as b:
            for query in ("battery", "batt*", "warranty rack", '"battery drains"'):
                found = queries.matching_conversation_ids(session=a, query=query)
                assert found and found == queries.matching_conversation_ids(session=b, query=query), query
        # New rows get fresh ids after the copy (sequences moved past the copied ones).
        with db.write_session(target) as session:
            customer = Customer(name="New", created_at=FIXED_NOW)
            session.add(customer)
            session.commit()
            assert customer.id > 60
    finally:
        source.dispose()
        target.dispose()
    # The copy refuses to write into a database that already has a desk in it.
    with pytest.raises(Exception, match="not empty"):
        copy.copy_database(db.open_database(source_url), target_url)


def test_a_second_sync_is_refused_with_a_clear_message(any_database_url):
    engine = db.open_database(any_database_url)
    try:
        with locks.sync_lock(engine):
            with pytest.raises(Conflict, match="another `agentdesk sync` is already running"):
                with locks.sync_lock(engine):
                    pass
        with locks.sync_lock(engine):  # released when the first one ended
            pass
    finally:
        engine.dispose()


def test_presence_shows_colleagues_and_expires(engine):
    now = FIXED_NOW
    with db.write_session(engine) as session:
        session.add(Customer(id=1, name="C", created_at=now))
        session.flush()
        session.add(Conversation(id=7, channel="email", subject="s", customer_id=1, created_at=now, updated_at=now))
        session.commit()
        presence.heartbeat(session, agent="dana", conversation_id=7, activity="replying", now=now)
        presence.heartbeat(session, agent="sam", conversation_id=7, activity="viewing", now=now)
        presence.heartbeat(session, agent="tester", conversation_id=7, activity="viewing", now=now)
        session.commit()
        seen = presence.colleagues_on(session, conversation_ids=[7], agent="tester", now=now + timedelta(seconds=3))
        assert presence.describe(seen[7], {"dana": "Dana"}) == "Dana is replying; sam is viewing"
        later = now + presence.STALE_AFTER + timedelta(seconds=1)
        assert presence.colleagues_on(session, conversation_ids=[7], agent="tester", now=later) == {}


def test_a_writer_committing_in_a_loop_does_not_starve_another(settings):
    """The sync importing a big mailbox commits back to back; an agent's change must still get in."""
    import threading
    import time

    from sqlalchemy import text

    engine = db.open_database(settings.database_url)
    with db.write_session(engine) as session:
        session.exec(text("CREATE TABLE hog (n INTEGER)"))
        session.commit()
    stop = threading.Event()

    def hog():
        while not stop.is_set():
            with db.write_session(engine) as session:
                session.exec(text("INSERT INTO hog VALUES (1)"))
                time.sleep(0.02)  # a chunk of work inside the transaction
                session.commit()

    worker = threading.Thread(target=hog)
    worker.start()
    waits = []
    try:
        time.sleep(0.1)
        for _ in range(20):
            started = time.monotonic()
            with db.write_session(engine) as session:
                session.exec(text("INSERT INTO hog VALUES (2)"))
                session.commit()
            waits.append(time.monotonic() - started)
    finally:
        stop.set()
        worker.join()
        engine.dispose()
    assert max(waits) < 1.0, waits
