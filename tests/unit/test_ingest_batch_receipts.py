"""ingest_batch with receipts (decided once the batch is written, as ingest_message would one by
one), and refs (hint, [AD-n]) naming a conversation that was merged into another."""

from __future__ import annotations

from datetime import timedelta

import factories
import pytest
from conftest import FIXED_NOW
from sqlmodel import select

from agentdesk import config
from agentdesk.domain import queue
from agentdesk.ingest import ingest_batch, ingest_message
from agentdesk.store import db
from agentdesk.store.models import Conversation, Message, Outbox

T = FIXED_NOW  # a Tuesday, in office hours
M = timedelta(minutes=1)

CHANNELS = """
[[mailbox]]
name = "support"
address = "support@northwind.example"
host = "imap.northwind.example"
username = "support@northwind.example"
receipt = "receipt"
"""


@pytest.fixture
def settings(config_file):
    settings = config.parse(config_file.read_text() + CHANNELS, source=config_file)
    settings.templates_dir.mkdir(parents=True, exist_ok=True)
    (settings.templates_dir / "receipt.md").write_text(
        "We have your message ({{ ref }}), due {{ due }}.\n", encoding="utf-8"
    )
    return settings


def _messages():
    """Four new conversations from one sender (the fourth over the hourly limit), two from others,
    a reply joining the first conversation, and an auto-reply (never answered)."""
    first = factories.inbound(at=T, subject="One", external_id="one@velo.example")
    return [
        first,
        factories.inbound(at=T + M, subject="Two"),
        factories.inbound(at=T + 2 * M, subject="Three"),
        factories.inbound(at=T + 3 * M, subject="Four"),
        factories.inbound(at=T + 4 * M, subject="Hello", sender="ana@velo.example", name="Ana"),
        factories.inbound(at=T + 5 * M, subject="Re: One", in_reply_to="one@velo.example"),
        factories.inbound(at=T + 6 * M, subject="Out of office", sender="bo@velo.example", kind="auto_reply"),
        factories.inbound(at=T + 7 * M, subject="Question", sender="cy@velo.example", name="Cy"),
    ]


def _receipts(engine) -> list[tuple[str, str]]:
    with db.read_session(engine) as session:
        rows = session.exec(
            select(Conversation.subject, Message.body_text)
            .join(Conversation, Conversation.id == Message.conversation_id)
            .where(Message.kind == "receipt")
            .order_by(Conversation.id)
        ).all()
        assert len(session.exec(select(Outbox)).all()) == len(rows)
        return [(subject, body) for subject, body in rows]


def test_a_batch_queues_the_receipts_one_by_one_ingest_would(engine, settings, policies):
    now = T + 10 * M
    with db.write_session(engine) as session:
        for message in _messages():
            ingest_message(session, message, policies=policies, now=now, settings=settings)
        session.commit()
    expected = _receipts(engine)
    assert [subject for subject, _ in expected] == ["One", "Two", "Three", "Hello", "Question"]

    # The same messages as one batch, into a fresh database.
    settings.database.url = settings.database_url.replace("agentdesk.db", "batch.db")
    batch_engine = db.open_database(settings.database_url)
    try:
        with db.write_session(batch_engine) as session:
            results = ingest_batch(session, _messages(), policies=policies, now=now, settings=settings)
            session.commit()
        assert [r.thread_reason for r in results].count("in-reply-to") == 1
        assert _receipts(batch_engine) == expected
    finally:
        batch_engine.dispose()


def test_after_hours_receipts_still_decided_for_replies_in_a_batch(engine, settings, policies):
    settings.mailbox[0].receipt_after_hours = True
    evening = T + timedelta(hours=10)  # 20:30 in Amsterdam: closed
    first = factories.inbound(at=evening, subject="Late", external_id="late@velo.example")
    reply = factories.inbound(at=evening + M, subject="Re: Late", in_reply_to="late@velo.example")
    with db.write_session(engine) as session:
        ingest_batch(session, [first, reply], policies=policies, now=evening + 2 * M, settings=settings)
        session.commit()
    # One receipt: the first message's; the reply finds it already sent since the last reply.
    assert [subject for subject, _ in _receipts(engine)] == ["Late"]


def _merge(engine, policies, source_id, target_id):
    with db.write_session(engine) as session:
        queue.merge_conversations(
            session,
            source=session.get(Conversation, source_id),
            target=session.get(Conversation, target_id),
            agent="tester",
            now=T + M,
            policies=policies,
        )
        session.commit()


@pytest.mark.parametrize("batch", [False, True])
def test_a_ref_to_a_merged_conversation_lands_where_it_was_merged(engine, policies, batch):
    a = factories.ingest(engine, policies, factories.inbound(at=T, subject="Brakes"))
    b = factories.ingest(engine, policies, factories.inbound(at=T, subject="Brakes again", sender="ana@velo.example"))
    c = factories.ingest(engine, policies, factories.inbound(at=T, subject="Wheels", sender="cy@velo.example"))
    _merge(engine, policies, a.conversation_id, b.conversation_id)
    _merge(engine, policies, b.conversation_id, c.conversation_id)  # the chain: a -> b -> c

    tagged = factories.inbound(at=T + 2 * M, subject=f"Re: Brakes [AD-{a.conversation_id}]")
    hinted = factories.inbound(at=T + 3 * M, subject="Still broken", conversation_hint=f"AD-{a.conversation_id}")
    stranger = factories.inbound(
        at=T + 4 * M, subject=f"Re: Brakes [AD-{a.conversation_id}]", sender="mallory@evil.example", name="Mallory"
    )
    now = T + 5 * M
    with db.write_session(engine) as session:
        if batch:
            results = ingest_batch(session, [tagged, hinted, stranger], policies=policies, now=now)
        else:
            results = [ingest_message(session, m, policies=policies, now=now) for m in (tagged, hinted, stranger)]
        session.commit()
    assert [(r.conversation_id, r.thread_reason) for r in results[:2]] == [
        (c.conversation_id, "subject-tag"),
        (c.conversation_id, "hint-ref"),
    ]
    assert results[2].thread_reason == "new"
    assert results[2].conversation_id not in (a.conversation_id, b.conversation_id, c.conversation_id)


def _table(engine, sql):
    from sqlalchemy import text

    with engine.connect() as connection:
        return [tuple(row) for row in connection.execute(text(sql))]


def test_clocks_started_by_the_parsers_store_what_ingest_computes(engine, settings, policies):
    """The sync's parser processes compute each new conversation's opening clocks ahead
    (parse_job.parse_chunk); storing with them writes exactly what ingest's own refresh would."""
    from integration.email import mailgen

    from agentdesk.sync.sources import parse_job

    mails = mailgen.corpus(120, seed=7)
    now = max(when for when, _ in mails) + timedelta(days=3)  # some clocks breached, some running
    items = [(uid, when, raw) for uid, (when, raw) in enumerate(mails, start=1)]
    policy = policies.select(channel="email", priority=parse_job.NEW_PRIORITY, tags=set(), tier="")
    assert policy is not None
    chunk = parse_job.parse_chunk(items, "support", now, policy)
    # Every message that replies to none gets its opening; replies (which usually join) none.
    assert [opening is not None for _, _, opening in chunk] == [
        not (message.in_reply_to or message.references) for _, message, _ in chunk
    ]

    settings.database.url = settings.database_url.replace("agentdesk.db", "ahead.db")
    ahead = db.open_database(settings.database_url)
    try:
        for target, openings in ((engine, None), (ahead, [opening for _, _, opening in chunk])):
            with db.write_session(target) as session:
                for start in range(0, len(chunk), 40):  # later chunks touch earlier conversations
                    part = slice(start, start + 40)
                    ingest_batch(
                        session,
                        [message for _, message, _ in chunk[part]],
                        policies=policies,
                        now=now,
                        openings=openings[part] if openings else None,
                    )
                session.commit()
        for sql in (
            "SELECT * FROM conversation ORDER BY id",
            "SELECT * FROM slaclockevent ORDER BY id",
            "SELECT id, conversation_id, thread_reason FROM message ORDER BY id",
        ):
            assert _table(ahead, sql) == _table(engine, sql)
        assert len(_table(engine, "SELECT id FROM conversation")) < len(chunk)  # replies joined
    finally:
        ahead.dispose()
