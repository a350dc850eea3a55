"""Drafts: one per conversation and agent, saved as the agent types, gone once sent or emptied."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from agentdesk.domain import drafts
from agentdesk.errors import InvalidInput
from agentdesk.store import db
from agentdesk.store.models import Conversation, Customer

NOW = datetime(2026, 11, 24, 9, 30, tzinfo=timezone.utc)


@pytest.fixture
def conversation_id(engine) -> int:
    with db.write_session(engine) as session:
        customer = Customer(name="Anke", created_at=NOW)
        session.add(customer)
        session.flush()
        conversation = Conversation(
            channel="email", subject="Rack", customer_id=customer.id, created_at=NOW, updated_at=NOW
        )
        session.add(conversation)
        session.commit()
        return conversation.id


def test_save_get_update_discard(engine, conversation_id):
    with db.write_session(engine) as session:
        drafts.save(session, conversation_id=conversation_id, agent="dana", body="Hi", base_version=1, now=NOW)
        session.commit()
    with db.read_session(engine) as session:
        draft = drafts.get(session, conversation_id=conversation_id, agent="dana")
        assert (draft.body, draft.kind, draft.base_version, draft.updated_at) == ("Hi", "reply", 1, NOW)
        assert drafts.get(session, conversation_id=conversation_id, agent="sam") is None
        assert drafts.with_drafts(session, agent="dana", conversation_ids=[conversation_id, 999]) == {conversation_id}
    later = NOW + timedelta(minutes=1)
    with db.write_session(engine) as session:
        drafts.save(
            session,
            conversation_id=conversation_id,
            agent="dana",
            body="Hi there",
            kind="note",
            base_version=2,
            now=later,
        )
        session.commit()
    with db.read_session(engine) as session:
        draft = drafts.get(session, conversation_id=conversation_id, agent="dana")
        assert (draft.body, draft.kind, draft.base_version, draft.updated_at) == ("Hi there", "note", 2, later)
    with db.write_session(engine) as session:
        drafts.discard(session, conversation_id=conversation_id, agent="dana")
        session.commit()
    with db.read_session(engine) as session:
        assert drafts.get(session, conversation_id=conversation_id, agent="dana") is None


def test_empty_body_discards(engine, conversation_id):
    with db.write_session(engine) as session:
        drafts.save(session, conversation_id=conversation_id, agent="dana", body="Hi", now=NOW)
        assert drafts.save(session, conversation_id=conversation_id, agent="dana", body="  \n", now=NOW) is None
        session.commit()
    with db.read_session(engine) as session:
        assert drafts.get(session, conversation_id=conversation_id, agent="dana") is None


def test_kind_is_checked(engine, conversation_id):
    with db.write_session(engine) as session, pytest.raises(InvalidInput, match="letter"):
        drafts.save(session, conversation_id=conversation_id, agent="dana", body="x", kind="letter", now=NOW)


def test_a_draft_keeps_its_recipients_and_files_and_files_alone_are_a_draft(engine, conversation_id):
    from agentdesk.domain.outbound import OutgoingFile, Recipients

    chosen = Recipients(to=("anke@example.com",), cc=("rack@example.com",))
    with db.write_session(engine) as session:
        files = drafts.keep_files(session, [OutgoingFile(name="../../etc/rack.pdf", data=b"%PDF rack")])
        drafts.save(
            session,
            conversation_id=conversation_id,
            agent="dana",
            body="",
            now=NOW,
            envelope=drafts.Envelope(chosen, files),
        )
        session.commit()
    with db.read_session(engine) as session:
        envelope = drafts.envelope_of(drafts.get(session, conversation_id=conversation_id, agent="dana"))
        assert envelope.recipients == chosen
        (kept,) = drafts.files_of(session, envelope)
        assert (kept.name, kept.data, kept.content_type) == ("rack.pdf", b"%PDF rack", "application/pdf")
    # Neither text nor files: no draft (recipients alone are the reply-all's to fill again).
    with db.write_session(engine) as session:
        drafts.save(
            session,
            conversation_id=conversation_id,
            agent="dana",
            body=" ",
            now=NOW,
            envelope=drafts.Envelope(chosen),
        )
        session.commit()
    with db.read_session(engine) as session:
        assert drafts.get(session, conversation_id=conversation_id, agent="dana") is None


def test_an_envelope_edited_by_hand_into_nonsense_reads_as_empty(engine, conversation_id):
    with db.write_session(engine) as session:
        draft = drafts.save(session, conversation_id=conversation_id, agent="dana", body="Hi", now=NOW)
        for nonsense in ("{not json", "[1, 2]", '{"files": [3, "x"]}', '{"files": "rack.pdf"}'):
            draft.envelope = nonsense
            assert drafts.envelope_of(draft) == drafts.Envelope()
        assert drafts.envelope_of(None) == drafts.Envelope()
