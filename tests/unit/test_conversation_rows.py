"""The plain rows ingest reads and writes the conversations a chunk touches with
(store/conversation_rows.py), and the one-parameter value lists its questions bind
(store/bound_lists.py): on SQLite and on a real PostgreSQL."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlmodel import select

from agentdesk.store import conversation_rows, db, lookups, queries
from agentdesk.store.bound_lists import one_of
from agentdesk.store.models import Conversation, ConversationTag, Customer, Identity, Message, id_of

T = datetime(2026, 3, 2, 9, 30, tzinfo=timezone.utc)


@pytest.fixture
def engine(any_database_url):
    engine = db.open_database(any_database_url)
    yield engine
    engine.dispose()


def _conversations(session, count: int) -> list[int]:
    customer = Customer(name="Ada", created_at=T)
    session.add(customer)
    session.flush()
    rows = [
        Conversation(channel="email", subject=f"c{index}", customer_id=id_of(customer), created_at=T, updated_at=T)
        for index in range(count)
    ]
    session.add_all(rows)
    session.flush()
    return [row.id for row in rows if row.id is not None]


def test_a_row_has_every_column_of_the_conversation_table():
    """A column added to Conversation must be one the plain row knows (and mypy checks)."""
    assert set(conversation_rows.ConversationRow.__annotations__) == set(conversation_rows.COLUMNS)


def test_changed_columns_are_written_and_a_held_orm_copy_reads_them(engine):
    with db.write_session(engine) as session:
        first, second = _conversations(session, 2)
        session.commit()
        held = session.get(Conversation, first)
        assert held is not None and held.version == 1
        rows = conversation_rows.by_id(session=session, conversation_ids=[second, first, 999_999], for_update=True)
        assert sorted(rows) == [first, second]
        row = rows[first]
        assert row.status == "new" and row.created_at == T and row.created_at.tzinfo is not None
        row.version += 1
        row.status = "open"
        row.waiting_since = T + timedelta(minutes=5)
        rows[second].version += 3
        assert row.changes() == {"version": 2, "status": "open", "waiting_since": T + timedelta(minutes=5)}
        conversation_rows.write_changes(session=session, rows=rows.values())
        assert row.changes() == {} and rows[second].changes() == {}
        # The ORM copy the session held is expired, not left with the old values.
        assert (held.version, held.status, held.waiting_since) == (2, "open", T + timedelta(minutes=5))
        session.commit()
    with db.read_session(engine) as session:
        stored = {c.id: c for c in session.exec(select(Conversation))}
        assert (stored[first].version, stored[first].status, stored[first].subject) == (2, "open", "c0")
        assert (stored[second].version, stored[second].status) == (4, "new")


def test_a_row_read_again_takes_what_the_orm_wrote(engine):
    with db.write_session(engine) as session:
        (conversation_id,) = _conversations(session, 1)
        rows = conversation_rows.by_id(session=session, conversation_ids=[conversation_id], for_update=True)
        orm = session.get(Conversation, conversation_id)
        assert orm is not None
        orm.status, orm.version = "pending", 7
        session.add(orm)
        session.flush()
        conversation_rows.reread(session=session, rows=rows.values())
        row = rows[conversation_id]
        assert (row.status, row.version, row.changes()) == ("pending", 7, {})


def test_value_lists_match_as_in_does_with_any_count_and_any_text(engine):
    odd = ["o'brien@example.com", 'quote"d@example.com', "ünïcode@exämple.com", "<a@b>", "%_\\@x"]
    with db.write_session(engine) as session:
        ids = _conversations(session, 3)
        customer_id = session.exec(select(Customer.id)).one()
        for index, address in enumerate(odd):
            session.add(Identity(customer_id=customer_id, kind="email", address=address, created_at=T))
            session.add(
                Message(
                    conversation_id=ids[0],
                    direction="inbound",
                    at=T,
                    external_id=f"<{index}@example.com>",
                    thread_key=address,
                    source="support",
                )
            )
        session.add(ConversationTag(conversation_id=ids[1], tag="vip"))
        session.flush()
        # More values than one IN (…) of the old chunking held, most of them unknown.
        wanted = [f"<{index}@example.com>" for index in range(2_500)]
        found = lookups.messages_by_external_id(session=session, external_ids=wanted)
        assert [key.external_id for key in found] == [f"<{index}@example.com>" for index in range(len(odd))]
        assert set(lookups.customers_by_address(session=session, kind="email", addresses=odd + ["x@y"])) == set(odd)
        assert lookups.customers_by_address(session=session, kind="email", addresses=[]) == {}
        keys = lookups.latest_by_thread_key(session=session, keys=[("support", a) for a in odd] + [("other", odd[0])])
        assert set(keys) == {("support", address) for address in odd}
        assert queries.tags_of(session=session, conversation_ids=ids) == {ids[0]: [], ids[1]: ["vip"], ids[2]: []}
        assert lookups.customer_tiers(session=session, customer_ids=[customer_id, 123_456]) == {customer_id: ""}
        assert session.exec(select(Conversation.id).where(one_of(session, Conversation.id, []))).all() == []
        assert sorted(session.exec(select(Conversation.id).where(one_of(session, Conversation.id, ids[1:])))) == ids[1:]
