"""A search of one word on PostgreSQL reads every conversation's words (`conversation_search`)
instead of every matching message: the conversations it finds must be exactly the ones the
messages give, for every query form, after every kind of write, on both databases."""

from __future__ import annotations

import pytest
from conftest import FIXED_NOW
from sqlalchemy import delete, text
from sqlmodel import col

from agentdesk.store import bulk, conversations, db, queries, search
from agentdesk.store.models import Conversation, Customer, Message

T = FIXED_NOW

# (customer, [message texts]) of each conversation, named for what the queries below need.
DESK = {
    "battery": ("Otto", ["the battery drains fast", "warranty claim"]),  # warranty / rack in two messages
    "rack": ("Otto", ["rack mount", "warranty rack broken"]),
    "batteries": ("Otto", ["Batteries included?"]),
    "customer": ("Battery Bob", ["hello there"]),  # the word only in the customer's name
    "address": ("Ann", ["write to dana@example.com please"]),
    "handle": ("Ann", ["order ref john_doe shipped"]),  # both databases split words at "_"
    "silent": ("Otto", []),
    "empty": ("Otto", [""]),
}
# Query as typed -> the conversations it must find.
EXPECTED = {
    "battery": {"battery", "customer"},
    "BATTERY": {"battery", "customer"},
    "batt*": {"battery", "batteries", "customer"},
    "batteries": {"batteries"},
    "warranty": {"battery", "rack"},
    "warranty rack": {"rack"},  # both words in one message
    '"warranty rack"': {"rack"},
    '"rack warranty"': set(),
    "rack*": {"rack"},
    "dana@example.com": {"address"},
    "example": {"address"},
    "re:": set(),
    "john_doe": {"handle"},
    "john_do*": {"handle"},
    "doe": {"handle"},
    "nothingmatches": set(),
}


@pytest.fixture
def engine(any_database_url):
    engine = db.open_database(any_database_url)
    yield engine
    engine.dispose()


def _desk(engine) -> dict[str, int]:
    ids = {}
    with db.write_session(engine) as session:
        for name, (customer_name, texts) in DESK.items():
            customer = Customer(name=customer_name, created_at=T)
            session.add(customer)
            session.flush()
            conversation = Conversation(
                channel="email", subject=name, customer_id=customer.id, created_at=T, updated_at=T
            )
            session.add(conversation)
            session.flush()
            ids[name] = conversation.id
            for body in texts:
                session.add(
                    Message(conversation_id=conversation.id, direction="inbound", body_text=body, at=T, ingested_at=T)
                )
        session.commit()
    return ids


def _found(engine, query: str) -> set[int]:
    with db.read_session(engine) as session:
        return set(queries.matching_conversation_ids(session=session, query=query))


def _by_messages(engine, query: str) -> set[int]:
    """The conversations of the matching messages and customers, never through `conversation_search`."""
    dialect = engine.dialect.name
    parameters = search.search_parameters(query, dialect)
    if not parameters["q"]:
        return set()
    with engine.connect() as connection:
        sql = search.matching_conversation_ids_sql(dialect)  # no query given: the messages' plan
        return {row[0] for row in connection.execute(text(sql), parameters)}


def _assert_same_as_messages(engine, queries_typed) -> None:
    for query in queries_typed:
        assert _found(engine, query) == _by_messages(engine, query), query


def _documents_are_exact(engine) -> None:
    """PostgreSQL: every stored document is what its conversation's messages hold now."""
    if engine.dialect.name != "postgresql":
        return
    with engine.connect() as connection:
        stored = connection.execute(
            text("SELECT conversation_id, document::text, bytes FROM conversation_search ORDER BY 1")
        ).all()
        fresh = connection.execute(
            text(
                "SELECT conversation_id, array_to_tsvector(array_agg(lexeme))::text, sum(octet_length(lexeme)) "
                "FROM (SELECT DISTINCT m.conversation_id, u.lexeme FROM message m, unnest(m.search_vector) u) d "
                "GROUP BY conversation_id ORDER BY 1"
            )
        ).all()
    assert stored == fresh


def test_every_query_form_finds_the_conversations_its_messages_and_customers_match(engine):
    ids = _desk(engine)
    for query, names in EXPECTED.items():
        assert _found(engine, query) == {ids[name] for name in names}, query
        assert _found(engine, query) == _by_messages(engine, query), query
    _documents_are_exact(engine)


def test_a_one_word_search_on_postgresql_reads_conversation_words_and_a_phrase_reads_messages(engine):
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite's full-text index answers from its (id, conversation_id) index")
    _desk(engine)
    with engine.connect() as connection:

        def plan(query: str) -> str:
            parameters = search.search_parameters(query, "postgresql")
            sql = search.matching_conversation_ids_sql("postgresql", parameters["q"])
            connection.exec_driver_sql("SET enable_seqscan = off")  # these few rows would be read whole
            return " ".join(row[0] for row in connection.execute(text("EXPLAIN " + sql), parameters))

        for one in ("battery", "batt*", '"battery"'):
            assert "on ix_conversation_search_document" in plan(one), one
            assert "ix_message_search_vector" not in plan(one), one
        for several in ("warranty rack", '"warranty rack"', "dana@example.com"):
            assert "on ix_message_search_vector" in plan(several) and "conversation_search s" not in plan(several)


def test_the_words_follow_new_moved_edited_and_deleted_messages(engine):
    ids = _desk(engine)
    checked = ("battery", "batt*", "chainring", "chain*", "warranty", "warranty rack", "sprocket")
    with db.write_session(engine) as session:
        session.add(
            Message(conversation_id=ids["silent"], direction="inbound", body_text="chainring", at=T, ingested_at=T)
        )
        session.commit()
    assert _found(engine, "chainring") == {ids["silent"]}
    # The batch path of ingest (on SQLite, the triggers' bulk stand-in from FTS_BULK_MIN rows).
    rows = [
        dict(conversation_id=ids["empty"], direction="inbound", body_text=f"sprocket {n}", at=T, ingested_at=T)
        for n in range(bulk.FTS_BULK_MIN + 5)
    ]
    with db.write_session(engine) as session:
        bulk.insert_messages(session, rows)
        session.commit()
    assert _found(engine, "sprocket") == {ids["empty"]}
    with db.write_session(engine) as session:  # new words merged into a conversation's document
        session.add(
            Message(conversation_id=ids["rack"], direction="inbound", body_text="sprocket teeth", at=T, ingested_at=T)
        )
        session.commit()
    assert _found(engine, "teeth") == {ids["rack"]} and _found(engine, "sprocket") == {ids["empty"], ids["rack"]}
    _assert_same_as_messages(engine, checked)
    _documents_are_exact(engine)

    # A merge moves every message; its undo moves them back.
    with db.write_session(engine) as session:
        moved = conversations.message_ids_of(session=session, conversation_id=ids["battery"])
        conversations.move_messages(session=session, from_id=ids["battery"], to_id=ids["rack"])
        session.commit()
    assert _found(engine, "battery") == {ids["rack"], ids["customer"]}
    assert _found(engine, "warranty") == {ids["rack"]}
    _assert_same_as_messages(engine, checked)
    _documents_are_exact(engine)
    with db.write_session(engine) as session:
        conversations.move_messages(session=session, from_id=ids["rack"], to_id=ids["battery"], message_ids=moved)
        session.commit()
    assert _found(engine, "battery") == {ids["battery"], ids["customer"]}
    assert _found(engine, "warranty") == {ids["battery"], ids["rack"]}
    _documents_are_exact(engine)

    # An edited body loses its old words and gains the new ones.
    with db.write_session(engine) as session:
        message = session.get(Message, moved[0])
        message.body_text = "the chain snapped"
        session.add(message)
        session.commit()
    assert _found(engine, "battery") == {ids["customer"]}
    assert _found(engine, "chain*") == {ids["battery"], ids["silent"]}
    _documents_are_exact(engine)

    # A deleted message (a withdrawn reply) takes its words with it; the last one, the row.
    with db.write_session(engine) as session:
        session.exec(delete(Message).where(col(Message.conversation_id) == ids["silent"]))  # type: ignore[call-overload]
        session.commit()
    assert _found(engine, "chainring") == set()
    _assert_same_as_messages(engine, checked)
    _documents_are_exact(engine)


def test_a_conversation_whose_words_outgrow_a_document_is_still_found(postgres_server):
    """A tsvector holds at most 1 MB of words: past that the conversation keeps no document and a
    search reads its messages; once a message is gone and the words fit again, it has one again."""
    engine = db.open_database(postgres_server.create_database("conversation_words_big"))
    try:
        ids = _desk(engine)
        # Two messages of 70 000 distinct words each (~0.6 MB of words each): 1.2 MB together.
        halves = [" ".join(f"w{half}x{n:06d}" for n in range(70_000)) for half in (1, 2)]
        for body in halves:  # one at a time: the second one is merged into the first one's document
            with db.write_session(engine) as session:
                session.add(
                    Message(conversation_id=ids["silent"], direction="inbound", body_text=body, at=T, ingested_at=T)
                )
                session.commit()
            if body is halves[0]:
                _documents_are_exact(engine)
        with engine.connect() as connection:
            row = connection.execute(
                text("SELECT document IS NULL, bytes FROM conversation_search WHERE conversation_id = :c"),
                {"c": ids["silent"]},
            ).one()
        assert row == (True, None)
        for query in ("w1x000001", "w2x069999", "w2x0699*", "battery"):
            assert _found(engine, query) == _by_messages(engine, query), query
        assert _found(engine, "w2x069999") == {ids["silent"]}
        with db.write_session(engine) as session:
            session.exec(delete(Message).where(col(Message.body_text) == halves[1]))  # type: ignore[call-overload]
            session.commit()
        with engine.connect() as connection:
            size = connection.execute(
                text("SELECT bytes FROM conversation_search WHERE document IS NOT NULL AND conversation_id = :c"),
                {"c": ids["silent"]},
            ).scalar_one()
        assert search.CONVERSATION_WORDS_LIMIT / 2 < size < search.CONVERSATION_WORDS_LIMIT
        assert _found(engine, "w1x000001") == {ids["silent"]} and _found(engine, "w2x069999") == set()
        _documents_are_exact(engine)
    finally:
        engine.dispose()


def test_a_postgresql_database_upgraded_to_conversation_words_finds_the_same(postgres_server):
    """Revision 13 on a database that has messages: their words are filled in."""
    url = postgres_server.create_database("conversation_words_upgrade")
    engine = db.open_database(url)
    try:
        ids = _desk(engine)
        with engine.begin() as connection:
            for statement in (
                "DROP TABLE conversation_search",
                "DROP TRIGGER conversation_search_insert ON message",
                "DROP TRIGGER conversation_search_delete ON message",
                "DROP TRIGGER conversation_search_update ON message",
                "DELETE FROM schema_revision WHERE revision = 13",
            ):
                connection.exec_driver_sql(statement)
    finally:
        engine.dispose()
    engine = db.open_database(url)
    try:
        with engine.connect() as connection:
            assert db.schema_revision(connection) == 13
        for query, names in EXPECTED.items():
            assert _found(engine, query) == {ids[name] for name in names}, query
        _documents_are_exact(engine)
    finally:
        engine.dispose()


def test_a_rebuild_beside_another_transaction_s_new_message_keeps_its_words(engine):
    """One agent's delete (a rebuild of the conversation's words) while a sync's new message in the
    same conversation is not yet committed: the rebuild waits, and the new words stay searchable."""
    if engine.dialect.name != "postgresql":
        pytest.skip("conversation_search is PostgreSQL's")
    import threading

    ids = _desk(engine)
    target = ids["rack"]
    from sqlmodel import Session

    with Session(engine) as sync, engine.connect() as agent:
        sync.add(
            Message(conversation_id=target, direction="inbound", body_text="the battery exploded", at=T, ingested_at=T)
        )
        sync.flush()  # inserted, not committed yet
        done = threading.Event()

        def delete_one() -> None:
            agent.execute(
                text("DELETE FROM message WHERE id = (SELECT min(id) FROM message WHERE conversation_id = :c)"),
                {"c": target},
            )
            agent.commit()
            done.set()

        deleting = threading.Thread(target=delete_one)
        deleting.start()
        waited = not done.wait(1.0)
        sync.commit()
        deleting.join(10)
    assert waited, "the rebuild did not wait for the other transaction's new message"
    assert target in _found(engine, "exploded")
    _documents_are_exact(engine)
