"""One message or a chunk, ingest stores the same: a batch decides the unusual cases (a reopened
conversation, a bounce, a known Message-ID with other content, refs) itself, as one-by-one
ingest (a batch of one) does."""

from __future__ import annotations

from datetime import timedelta

import pytest
from conftest import FIXED_NOW
from sqlalchemy import text
from sqlmodel import select

from agentdesk import config
from agentdesk.channels.base import InboundMessage
from agentdesk.domain import queue, replies
from agentdesk.ingest import ingest_batch, ingest_message, move_message
from agentdesk.store import db
from agentdesk.store.models import Conversation, Message, Outbox

T = FIXED_NOW
M = timedelta(minutes=1)


def _mail(n: int, **fields) -> InboundMessage:
    values = dict(
        source="support",
        channel="email",
        external_id=f"m{n}@velo.example",
        sender_address="greta@velo.example",
        sender_name="Greta",
        received_at=T + n * M,
        subject=f"Subject {n}",
        body_text=f"body {n}",
    )
    values.update(fields)
    return InboundMessage(**values)


def _ingest(engine, policies, messages, *, now, batch, settings=None):
    with db.write_session(engine) as session:
        if batch:
            results = ingest_batch(session, messages, policies=policies, now=now, settings=settings)
        else:
            results = [ingest_message(session, m, policies=policies, now=now, settings=settings) for m in messages]
        session.commit()
    return results


def _setup(engine, policies) -> tuple[dict[str, int], str]:
    """Four conversations: greta's (answered, the reply sent), ana's (solved), cy's (nameless
    sender), dee's (closed). Returns their ids and our reply's Message-ID."""
    _ingest(
        engine,
        policies,
        [
            _mail(1),
            _mail(2, sender_address="ana@velo.example", sender_name="Ana"),
            _mail(3, sender_address="cy@velo.example", sender_name=""),
            _mail(4, sender_address="dee@velo.example"),
        ],
        now=T + 10 * M,
        batch=False,
    )
    with db.write_session(engine) as session:
        ids = {m.sender_address.split("@")[0]: m.conversation_id for m in session.exec(select(Message))}
        ours = replies.reply(
            session,
            conversation=session.get(Conversation, ids["greta"]),
            body="On it.",
            agent="tester",
            agent_name="Terry",
            now=T + 11 * M,
            policies=policies,
        )
        replies.reply(
            session,
            conversation=session.get(Conversation, ids["ana"]),
            body="Done.",
            agent="tester",
            agent_name="Terry",
            now=T + 11 * M,
            policies=policies,
            status="solved",
        )
        queue.change(
            session,
            conversation=session.get(Conversation, ids["dee"]),
            agent="tester",
            now=T + 11 * M,
            policies=policies,
            status="closed",
        )
        session.flush()
        session.exec(select(Outbox).where(Outbox.message_id == ours.id)).one().state = "sent"
        session.commit()
        return ids, ours.external_id


def _unusual(ids: dict[str, int], ours: str) -> list[InboundMessage]:
    bounce = {"x-bounced-message-id": ours, "x-bounce-reason": "550 no such user"}
    return [
        _mail(20, in_reply_to="m2@velo.example", sender_address="ana@velo.example", subject="Re: reopens"),
        _mail(21, in_reply_to="m2@velo.example", sender_address="ana@velo.example", subject="Re: and again"),
        _mail(22, kind="bounce", sender_address="mailer-daemon@velo.example", subject="Undelivered", headers=bounce),
        _mail(23, external_id="m1@velo.example", body_text="body 1, with a list footer"),
        _mail(24, external_id="m1@velo.example", body_text="quoted by a stranger", sender_address="eve@evil.example"),
        _mail(25, subject=f"Re: x [AD-{ids['cy']}]", sender_address="cy@velo.example", sender_name="Cy"),
        _mail(26, subject=f"Re: x [AD-{ids['cy']}]", sender_address="mallory@evil.example"),
        _mail(27, conversation_hint=f"AD-{ids['greta']}"),
        _mail(28, in_reply_to="m4@velo.example", sender_address="dee@velo.example", subject="Re: reopens closed"),
        _mail(29, external_id=ours, body_text="our own reply, from the Sent folder"),
        _mail(30, subject="new here", sender_address="new@velo.example"),
        _mail(31, external_id="m30@velo.example", body_text="changed", sender_address="new@velo.example"),
        _mail(
            32,
            kind="bounce",
            sender_address="mailer-daemon@velo.example",
            subject="Undelivered",
            headers={"x-bounced-message-id": "m30@velo.example"},
        ),
    ]


_TABLES = {
    "conversation": "SELECT * FROM conversation ORDER BY id",
    "message": "SELECT id, conversation_id, kind, sender_address, thread_reason FROM message ORDER BY id",
    "clock events": "SELECT conversation_id, target, event, at, detail FROM slaclockevent "
    "ORDER BY conversation_id, target, at, event",
    "audit": "SELECT action, conversation_id, customer_id, detail FROM event ORDER BY action, conversation_id, detail",
    "outbox": "SELECT * FROM outbox ORDER BY id",
    "customer": "SELECT * FROM customer ORDER BY id",
}


def _tables(engine) -> dict[str, list[tuple]]:
    with engine.connect() as connection:
        return {name: [tuple(row) for row in connection.execute(text(sql))] for name, sql in _TABLES.items()}


def test_a_batch_stores_the_unusual_messages_as_one_by_one_ingest(engine, settings, policies):
    other = db.open_database(settings.database_url.replace("agentdesk.db", "batch.db"))
    try:
        results = {}
        for target, batch in ((engine, False), (other, True)):
            ids, ours = _setup(target, policies)
            results[batch] = _ingest(target, policies, _unusual(ids, ours), now=T + 30 * M, batch=batch)
        assert results[True] == results[False]
        assert [r.thread_reason for r in results[True]] == [
            "in-reply-to",
            "in-reply-to",
            "bounce",
            "same-message-id",
            "new",
            "subject-tag",
            "new",
            "hint-ref",
            "in-reply-to",
            "",
            "new",
            "same-message-id",
            "bounce",
        ]
        assert results[True][9].duplicate  # our own reply is not stored again
        assert _tables(other) == _tables(engine)
        with db.read_session(other) as session:
            assert session.get(Conversation, ids["ana"]).status == "open"
            assert (
                session.exec(select(Outbox).where(Outbox.state == "failed")).one().last_error
                == "bounced: 550 no such user"
            )
    finally:
        other.dispose()


@pytest.mark.parametrize("batch", [False, True])
def test_a_ref_to_a_conversation_opened_earlier_in_the_same_chunk(engine, policies, batch):
    first, hinted = _mail(1), _mail(2, conversation_hint="AD-1", subject="More")
    results = _ingest(engine, policies, [first, hinted], now=T + 5 * M, batch=batch)
    assert [(r.conversation_id, r.thread_reason) for r in results] == [(1, "new"), (1, "hint-ref")]


CHANNELS = """
[[mailbox]]
name = "support"
address = "support@northwind.example"
host = "imap.northwind.example"
username = "support@northwind.example"
receipt = "receipt"
"""


@pytest.mark.parametrize("batch", [False, True])
def test_a_ref_to_a_conversation_emptied_by_a_move_gets_a_first_receipt(engine, config_file, policies, batch):
    settings = config.parse(config_file.read_text() + CHANNELS, source=config_file)
    settings.templates_dir.mkdir(parents=True, exist_ok=True)
    (settings.templates_dir / "receipt.md").write_text("We have your message ({{ ref }}).\n", encoding="utf-8")
    first = _ingest(engine, policies, [_mail(1)], now=T + 2 * M, batch=False, settings=settings)[0]
    with db.write_session(engine) as session:
        for message in session.exec(select(Message).where(Message.conversation_id == first.conversation_id)).all():
            move_message(
                session,
                message_id=message.id,
                to_conversation_id=None,
                agent="tester",
                now=T + 3 * M,
                policies=policies,
            )
        session.commit()
    tagged = _mail(5, subject=f"Re: Subject 1 [AD-{first.conversation_id}]")
    result = _ingest(engine, policies, [tagged], now=T + 6 * M, batch=batch, settings=settings)[0]
    assert (result.conversation_id, result.thread_reason) == (first.conversation_id, "subject-tag")
    with db.read_session(engine) as session:
        receipts = session.exec(
            select(Message).where(Message.conversation_id == first.conversation_id, Message.kind == "receipt")
        ).all()
    assert len(receipts) == 1
