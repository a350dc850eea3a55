"""Machine mail at ingest: a bounce is an event on the reply it bounced (linked by Message-ID, our
ref or the failed recipient; a delay fails nothing; unmatched → the system view, no customer);
spam, blocked senders and bulk mail set aside in their views with no SLA clock and no receipt."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import factories
import pytest
from conftest import FIXED_NOW
from sqlmodel import select

from agentdesk import config
from agentdesk.app import spam as spam_actions
from agentdesk.app.desk import Desk
from agentdesk.domain import documents, replies, spam
from agentdesk.domain import queue as queue_service
from agentdesk.ingest import ingest_batch, ingest_message
from agentdesk.store import db, lookups, queries
from agentdesk.store.models import Conversation, Customer, Event, Identity, Outbox

T = FIXED_NOW
M = timedelta(minutes=1)


@pytest.fixture
def desk(settings, engine):
    return Desk(settings, agent="tester", now=lambda: T + M, engine_given=engine)


@pytest.fixture
def mail_settings(config_file):
    return config.parse(
        config_file.read_text()
        + """
[[mailbox]]
name = "support"
address = "support@northwind.example"
host = "imap.northwind.example"
""",
        source=config_file,
    )


def _ingest(engine, policies, message, *, now=None, settings=None):
    with db.write_session(engine) as session:
        result = ingest_message(
            session, message, policies=policies, now=now or message.received_at + 5 * M, settings=settings
        )
        session.commit()
    return result


def _conversation_with_sent_reply(engine, policies, *, status="pending", assignee="tester"):
    first = _ingest(engine, policies, factories.inbound(at=T))
    with db.write_session(engine) as session:
        conversation = session.get(Conversation, first.conversation_id)
        reply = replies.reply(
            session,
            conversation=conversation,
            body="We sent new spokes.",
            agent="tester",
            agent_name="Terry",
            now=T + M,
            policies=policies,
        )
        outbox = session.exec(select(Outbox).where(Outbox.message_id == reply.id)).one()
        outbox.state, outbox.sent_at = "sent", T + 2 * M
        queue_service.change(
            session,
            conversation=conversation,
            agent="tester",
            now=T + 2 * M,
            policies=policies,
            status=status,
            assignee=assignee,
        )
        session.commit()
        return conversation.id, reply.id, reply.external_id


def _bounce(*, headers, subject="Undelivered Mail Returned to Sender", body="Sorry.", at=T + 10 * M):
    message = factories.inbound(
        at=at,
        sender="mailer-daemon@mx.velo.example",
        name="Mail Delivery System",
        subject=subject,
        body=body,
        kind="bounce",
    )
    return dataclasses.replace(message, headers=headers)


FAILED = {
    "x-bounce-recipient": "greta@velo.example",
    "x-bounce-category": "mailbox-full",
    "x-bounce-status": "5.2.2",
    "x-bounce-reason": "552 5.2.2 Mailbox full",
}


def _assert_bounced(engine, conversation_id, reply_id, *, agent="tester"):
    with db.read_session(engine) as session:
        outbox = session.exec(select(Outbox).where(Outbox.message_id == reply_id)).one()
        assert outbox.state == "failed" and outbox.bounce_message_id is not None
        assert outbox.last_error == "bounced: 552 5.2.2 Mailbox full"
        conversation = session.get(Conversation, conversation_id)
        assert conversation.status == "open" and conversation.bounced_at is not None
        mine = queries.queue_rows(session=session, view="mine", agent=agent, now=T + 20 * M, limit=10)
        assert [(row.id, row.bounced) for row in mine] == [(conversation_id, True)]
        assert queries.agent_load(session=session, agent=agent).bounced == 1
        assert documents.delivery_state(outbox) == "bounced"
        assert session.exec(select(Identity).where(Identity.address == "mailer-daemon@mx.velo.example")).first() is None


def test_a_bounce_links_to_our_reply_by_its_message_id(engine, policies):
    conversation_id, reply_id, external_id = _conversation_with_sent_reply(engine, policies)
    result = _ingest(engine, policies, _bounce(headers={**FAILED, "x-bounced-message-id": external_id}))
    assert (result.conversation_id, result.thread_reason) == (conversation_id, "bounce")
    _assert_bounced(engine, conversation_id, reply_id)


def test_a_bounce_links_by_our_ref_when_the_message_id_is_lost(engine, policies):
    conversation_id, reply_id, _ = _conversation_with_sent_reply(engine, policies)
    body = f"The original message:\nSubject: Re: Spokes keep breaking [AD-{conversation_id}]\n"
    result = _ingest(engine, policies, _bounce(headers=FAILED, body=body))
    assert result.conversation_id == conversation_id
    _assert_bounced(engine, conversation_id, reply_id)


def test_a_bounce_links_by_the_failed_recipient(engine, policies):
    conversation_id, reply_id, _ = _conversation_with_sent_reply(engine, policies, status="solved")
    result = _ingest(engine, policies, _bounce(headers={**FAILED, "x-bounce-original-recipient": "greta@velo.example"}))
    assert result.conversation_id == conversation_id
    _assert_bounced(engine, conversation_id, reply_id)


def test_a_delay_warning_joins_the_thread_but_fails_nothing(engine, policies):
    conversation_id, reply_id, external_id = _conversation_with_sent_reply(engine, policies)
    headers = {"x-bounced-message-id": external_id, "x-bounce-category": "delay", "x-bounce-status": "4.4.7"}
    result = _ingest(engine, policies, _bounce(headers=headers, subject="Delayed Mail (still being retried)"))
    assert result.conversation_id == conversation_id
    with db.read_session(engine) as session:
        assert session.exec(select(Outbox).where(Outbox.message_id == reply_id)).one().state == "sent"
        conversation = session.get(Conversation, conversation_id)
        assert conversation.bounced_at is None and conversation.status == "pending"


def test_a_new_reply_clears_the_flag(engine, policies):
    conversation_id, _, external_id = _conversation_with_sent_reply(engine, policies)
    _ingest(engine, policies, _bounce(headers={**FAILED, "x-bounced-message-id": external_id}))
    with db.write_session(engine) as session:
        conversation = session.get(Conversation, conversation_id)
        replies.reply(
            session,
            conversation=conversation,
            body="Other address?",
            agent="tester",
            agent_name="T",
            now=T + 30 * M,
            policies=policies,
        )
        session.commit()
        assert session.get(Conversation, conversation_id).bounced_at is None


def test_an_unmatched_bounce_goes_to_the_system_view_with_no_customer_and_no_clock(engine, policies):
    first = _ingest(engine, policies, _bounce(headers={**FAILED, "x-bounce-recipient": "nobody@else.example"}))
    second = _ingest(
        engine, policies, dataclasses.replace(_bounce(headers=FAILED), sender_address="postmaster@other.example")
    )
    with db.read_session(engine) as session:
        for result in (first, second):
            conversation = session.get(Conversation, result.conversation_id)
            assert conversation.aside == "system" and conversation.sla_policy == ""
            assert conversation.first_response_due is None
        system = queries.queue_rows(session=session, view="system", agent="tester", now=T + 20 * M, limit=10)
        assert {row.id for row in system} == {first.conversation_id, second.conversation_id}
        for view in ("open", "unassigned", "all", "breaching"):
            assert queries.queue_rows(session=session, view=view, agent="tester", now=T + 20 * M, limit=10) == []
        assert session.exec(select(Identity)).all() == []
        assert [c.name for c in session.exec(select(Customer))] == [lookups.SYSTEM_CUSTOMER_NAME]


def test_spam_leaves_every_view_stops_the_clocks_and_is_undoable(engine, policies, desk):
    result = _ingest(engine, policies, factories.inbound(at=T))
    with db.read_session(engine) as session:
        assert session.get(Conversation, result.conversation_id).first_response_due is not None
    (done,) = spam_actions.mark_spam(desk, [result.conversation_id])
    assert done == {"ref": f"AD-{result.conversation_id}", "action": "spam", "changed": True, "view": "spam"}
    with db.read_session(engine) as session:
        conversation = session.get(Conversation, result.conversation_id)
        assert conversation.aside == "spam" and conversation.first_response_due is None
        for view in ("open", "unassigned", "all", "breaching"):
            assert queries.queue_rows(session=session, view=view, agent="tester", now=T, limit=10) == []
        assert [
            row.id for row in queries.queue_rows(session=session, view="spam", agent="tester", now=T, limit=10)
        ] == [result.conversation_id]
    (undone,) = spam_actions.mark_spam(desk, [result.conversation_id], undo=True)
    assert undone["view"] == "queue" and undone["changed"]
    with db.read_session(engine) as session:
        conversation = session.get(Conversation, result.conversation_id)
        assert conversation.aside == "" and conversation.first_response_due is not None
        actions = [e.action for e in session.exec(select(Event).where(Event.conversation_id == result.conversation_id))]
        assert "spam" in actions and "unspam" in actions


def test_a_blocked_sender_and_a_blocked_domain_land_in_spam_without_a_receipt(engine, policies, desk):
    spam_actions.block(desk, "Greta@Velo.example")
    spam_actions.block(desk, "@spam.example")
    assert [b["pattern"] for b in spam_actions.blocked(desk)] == ["@spam.example", "greta@velo.example"]
    with db.write_session(engine) as session:
        results = ingest_batch(
            session,
            [
                factories.inbound(at=T),
                factories.inbound(at=T, sender="x@spam.example"),
                factories.inbound(at=T, sender="ok@velo.example"),
            ],
            policies=policies,
            now=T + M,
        )
        session.commit()
    with db.read_session(engine) as session:
        asides = [session.get(Conversation, r.conversation_id).aside for r in results]
        assert asides == ["spam", "spam", ""]
        assert session.exec(select(Outbox)).all() == []
        assert session.exec(select(Event).where(Event.action == "set_aside")).all()
    spam_actions.unblock(desk, "@spam.example")
    assert [b["pattern"] for b in spam_actions.blocked(desk)] == ["greta@velo.example"]


def test_blocking_takes_one_lookup_per_chunk(engine, policies):
    from sqlalchemy import event

    statements = []
    with db.write_session(engine) as session:
        spam.block(session, pattern="@spam.example", agent="tester", now=T)
        session.commit()
    messages = [factories.inbound(at=T, sender=f"p{n}@spam.example") for n in range(50)]
    listener = lambda conn, cursor, statement, *rest: statements.append(statement)  # noqa: E731
    event.listen(engine, "before_cursor_execute", listener)
    try:
        with db.write_session(engine) as session:
            ingest_batch(session, messages, policies=policies, now=T + M)
            session.commit()
    finally:
        event.remove(engine, "before_cursor_execute", listener)
    assert sum("blockedsender" in s for s in statements) == 1


def test_bulk_mail_lands_in_the_bulk_view_unless_the_mailbox_says_queue(engine, policies, mail_settings):
    settings = mail_settings
    bulk = dataclasses.replace(factories.inbound(at=T), bulk=True, headers={"list-id": "<news.shop.example>"})
    result = _ingest(engine, policies, bulk, settings=settings)
    with db.read_session(engine) as session:
        conversation = session.get(Conversation, result.conversation_id)
        assert conversation.aside == "bulk" and conversation.first_response_due is None
    settings.mailbox[0].bulk = "queue"
    again = dataclasses.replace(factories.inbound(at=T, sender="news@shop.example"), bulk=True)
    result = _ingest(engine, policies, again, settings=settings)
    with db.read_session(engine) as session:
        assert session.get(Conversation, result.conversation_id).aside == ""
