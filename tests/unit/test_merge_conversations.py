"""Merging two conversations of one customer: messages, notes and tags move, the source closes."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
from sqlmodel import select

from agentdesk.domain import queue
from agentdesk.errors import InvalidInput
from agentdesk.store import db
from agentdesk.store.models import Conversation, ConversationTag, Customer, Draft, Event, Message

NOW = datetime(2026, 11, 24, 9, 30, tzinfo=timezone.utc)


@pytest.fixture
def pair(engine) -> tuple[int, int]:
    with db.write_session(engine) as session:
        customer = Customer(name="Anke", created_at=NOW)
        session.add(customer)
        session.flush()
        ids = []
        for index, subject in enumerate(("Rack arrived broken", "Re: rack (new thread)")):
            start = NOW - timedelta(hours=5 - index * 2)
            conversation = Conversation(
                channel="email",
                subject=subject,
                customer_id=customer.id,
                status="open",
                created_at=start,
                updated_at=start,
                waiting_since=start,
                last_customer_message_at=start,
            )
            session.add(conversation)
            session.flush()
            session.add(
                Message(
                    conversation_id=conversation.id,
                    direction="inbound",
                    author="Anke",
                    body_text=f"message {index}",
                    at=start,
                    ingested_at=start,
                )
            )
            session.add(
                Message(
                    conversation_id=conversation.id,
                    direction="note",
                    author="Dana",
                    body_text=f"note {index}",
                    at=start,
                    ingested_at=start,
                )
            )
            session.add(ConversationTag(conversation_id=conversation.id, tag=("shipping", "damage")[index]))
            ids.append(conversation.id)
        session.add(Draft(conversation_id=ids[1], agent="dana", body="half a reply", base_version=1, updated_at=NOW))
        session.commit()
    return ids[0], ids[1]


def merge(engine, policies, source_id: int, target_id: int) -> int:
    with db.write_session(engine) as session:
        source = queue.load_for_update(session, f"AD-{source_id}")
        target = queue.load_for_update(session, f"AD-{target_id}")
        moved = queue.merge_conversations(
            session, source=source, target=target, agent="dana", now=NOW, policies=policies
        )
        session.commit()
    return moved


def test_merge_moves_messages_notes_tags_and_closes_source(engine, policies, pair):
    target_id, source_id = pair
    assert merge(engine, policies, source_id, target_id) == 2
    with db.read_session(engine) as session:
        target = session.get(Conversation, target_id)
        source = session.get(Conversation, source_id)
        bodies = sorted(m.body_text for m in session.exec(select(Message).where(Message.conversation_id == target_id)))
        assert bodies == ["message 0", "message 1", "note 0", "note 1"]
        assert session.exec(select(Message).where(Message.conversation_id == source_id)).all() == []
        tags = set(session.exec(select(ConversationTag.tag).where(ConversationTag.conversation_id == target_id)))
        assert tags == {"shipping", "damage"}
        assert not session.exec(select(ConversationTag).where(ConversationTag.conversation_id == source_id)).all()
        assert source.merged_into_id == target_id and source.status == "closed"
        # The customer waits since the older unanswered message.
        assert target.waiting_since == NOW - timedelta(hours=5)
        assert target.version == 2 and target.updated_at == NOW
        # The draft followed the conversation.
        assert session.get(Draft, (target_id, "dana")).body == "half a reply"
        events = {
            (e.conversation_id, e.action): json.loads(e.detail)
            for e in session.exec(select(Event).where(Event.action == "merge"))
        }
        assert events[(target_id, "merge")]["from"] == f"AD-{source_id}"
        assert events[(target_id, "merge")]["messages"] == 2
        assert events[(source_id, "merge")] == {"into": f"AD-{target_id}"}
        assert session.exec(select(Event).where(Event.conversation_id == source_id, Event.action == "status")).one()


def test_merge_refuses_itself_and_merged_ones(engine, policies, pair):
    target_id, source_id = pair
    with pytest.raises(InvalidInput, match="into itself"):
        merge(engine, policies, target_id, target_id)
    merge(engine, policies, source_id, target_id)
    with pytest.raises(InvalidInput, match="merged into"):
        merge(engine, policies, target_id, source_id)  # the source is merged: not a target
    with pytest.raises(InvalidInput, match="already merged"):
        merge(engine, policies, source_id, target_id)


def test_a_draft_that_cannot_follow_a_merge_stays_on_the_merged_conversation(engine, policies, pair):
    target_id, source_id = pair
    with db.write_session(engine) as session:
        session.add(
            Draft(conversation_id=target_id, agent="dana", body="my answer here", base_version=1, updated_at=NOW)
        )
        session.commit()
    merge(engine, policies, source_id, target_id)
    with db.read_session(engine) as session:
        assert session.get(Draft, (target_id, "dana")).body == "my answer here"
        assert session.get(Draft, (source_id, "dana")).body == "half a reply", "kept, not dropped"
