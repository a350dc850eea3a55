"""The outbox worker with fake senders: claim, send, record, back off, give up; loop safety."""

from __future__ import annotations

import email
from datetime import timedelta
from email.policy import compat32

import factories
import pytest
from conftest import FIXED_NOW
from sqlmodel import select

from agentdesk.channels.email.smtp import DeliveryError, OutgoingMail, compose
from agentdesk.domain import automatic_messages, replies
from agentdesk.store import db
from agentdesk.store.models import Conversation, Outbox
from agentdesk.sync import delivery

T = FIXED_NOW


def _queue_reply(engine, policies, *, kind="message", at=T):
    result = factories.ingest(engine, policies, factories.inbound(at=at - timedelta(minutes=5)))
    with db.write_session(engine) as session:
        conversation = session.get(Conversation, result.conversation_id)
        message = replies.reply(
            session,
            conversation=conversation,
            body="Hello",
            agent="tester",
            agent_name="Terry",
            now=at,
            policies=policies,
            kind=kind,
        )
        session.commit()
        return message.id


def _row(engine) -> Outbox:
    with db.read_session(engine) as session:
        return session.exec(select(Outbox)).one()


def test_sent_on_first_attempt(engine, policies):
    message_id = _queue_reply(engine, policies)
    sender = factories.FakeSender()
    report = delivery.deliver_due(engine, {"email": sender}, now_fn=lambda: T)
    assert (report.sent, report.failed, report.retrying) == (1, 0, 0)
    row = _row(engine)
    assert (row.state, row.attempts, row.sent_at, row.next_attempt_at) == ("sent", 1, T, None)
    assert sender.sent == [message_id]
    assert delivery.deliver_due(engine, {"email": sender}, now_fn=lambda: T + timedelta(days=1)).sent == 0


def test_temporary_failure_backs_off_then_succeeds(engine, policies):
    _queue_reply(engine, policies)
    sender = factories.FakeSender([DeliveryError("421 try later"), DeliveryError("421 still busy"), ""])
    report = delivery.deliver_due(engine, {"email": sender}, now_fn=lambda: T)
    assert report.retrying == 1 and "421 try later" in report.errors[0]
    row = _row(engine)
    assert (row.state, row.last_error, row.next_attempt_at) == ("queued", "421 try later", T + delivery.BACKOFF[0])
    # Not due before the backoff has passed.
    assert delivery.deliver_due(engine, {"email": sender}, now_fn=lambda: T + timedelta(seconds=30)).retrying == 0
    later = T + delivery.BACKOFF[0]
    delivery.deliver_due(engine, {"email": sender}, now_fn=lambda: later)
    assert _row(engine).next_attempt_at == later + delivery.BACKOFF[1]
    final = later + delivery.BACKOFF[1]
    assert delivery.deliver_due(engine, {"email": sender}, now_fn=lambda: final).sent == 1
    assert (_row(engine).state, _row(engine).attempts) == ("sent", 3)


def test_permanent_failure_is_failed_with_the_servers_reason(engine, policies):
    _queue_reply(engine, policies)
    sender = factories.FakeSender([DeliveryError("550 5.1.1 no such user", permanent=True)])
    report = delivery.deliver_due(engine, {"email": sender}, now_fn=lambda: T)
    assert report.failed == 1
    row = _row(engine)
    assert (row.state, row.last_error, row.next_attempt_at) == ("failed", "550 5.1.1 no such user", None)


def test_gives_up_after_max_attempts(engine, policies, monkeypatch):
    monkeypatch.setattr(delivery, "MAX_ATTEMPTS", 2)
    _queue_reply(engine, policies)
    sender = factories.FakeSender([DeliveryError("timeout"), DeliveryError("timeout again")])
    delivery.deliver_due(engine, {"email": sender}, now_fn=lambda: T)
    report = delivery.deliver_due(engine, {"email": sender}, now_fn=lambda: T + timedelta(hours=1))
    assert report.failed == 1 and _row(engine).state == "failed"


def test_a_sender_bug_keeps_the_row_for_retry(engine, policies):
    _queue_reply(engine, policies)
    report = delivery.deliver_due(engine, {"email": factories.FakeSender([RuntimeError("boom")])}, now_fn=lambda: T)
    assert report.retrying == 1 and "boom" in _row(engine).last_error


def test_rows_of_other_channels_are_left_alone(engine, policies):
    _queue_reply(engine, policies)
    assert delivery.deliver_due(engine, {"sms": factories.FakeSender()}, now_fn=lambda: T).sent == 0
    assert (_row(engine).state, _row(engine).attempts) == ("queued", 0)


def test_automatic_messages_are_rate_limited_per_customer(engine, policies):
    for n in range(automatic_messages.AUTOMATIC_LIMIT + 1):
        _queue_reply(engine, policies, kind="receipt", at=T + timedelta(minutes=n))
    report = delivery.deliver_due(engine, {"email": factories.FakeSender()}, now_fn=lambda: T + timedelta(minutes=10))
    assert (report.sent, report.failed) == (automatic_messages.AUTOMATIC_LIMIT, 1)
    with db.read_session(engine) as session:
        failed = session.exec(select(Outbox).where(Outbox.state == "failed")).one()
    assert failed.last_error.startswith("suppressed:")


@pytest.mark.parametrize(
    "changes, allowed",
    [
        ({}, True),
        ({"kind": "auto_reply"}, False),
        ({"kind": "bounce"}, False),
        ({"bulk": True}, False),
        ({"sender": "support@example.com"}, False),
        ({"headers": {"x-agentdesk-loop": "help@other.example"}}, False),
        ({"headers": {"return-path": "<>"}}, False),
    ],
)
def test_automatic_reply_allowed(engine, changes, allowed):
    import dataclasses

    inbound = factories.inbound(at=T, sender=changes.pop("sender", "greta@velo.example"))
    inbound = dataclasses.replace(inbound, **changes)
    with db.read_session(engine) as session:
        result, why = automatic_messages.automatic_reply_allowed(
            session, inbound=inbound, our_addresses={"Support@Example.com"}, now=T
        )
    assert result is allowed
    assert bool(why) is not allowed


def test_automatic_reply_refused_after_the_limit(engine, policies):
    for n in range(automatic_messages.AUTOMATIC_LIMIT):
        _queue_reply(engine, policies, kind="receipt", at=T + timedelta(minutes=n))
    with db.read_session(engine) as session:
        allowed, why = automatic_messages.automatic_reply_allowed(
            session, inbound=factories.inbound(at=T), our_addresses=set(), now=T + timedelta(minutes=5)
        )
    assert not allowed and "automatic messages" in why


def test_compose_headers():
    mail = compose(
        OutgoingMail(
            from_address="support@example.com",
            from_name="Terry Tester",
            to=["greta@velo.example"],
            cc=["bo@velo.example"],
            subject="Re: Spokes [AD-7]",
            body="Hello Gréta",
            message_id="abc@example.com",
            in_reply_to="c2@velo.example",
            references=["c1@velo.example"],
            automatic=True,
            date=T,
        )
    )
    parsed = email.message_from_bytes(mail.as_bytes(), policy=compat32)
    assert parsed["Message-ID"] == "<abc@example.com>"
    assert parsed["In-Reply-To"] == "<c2@velo.example>"
    assert parsed["References"] == "<c1@velo.example> <c2@velo.example>"
    assert parsed["Auto-Submitted"] == "auto-replied"
    assert parsed["X-Auto-Response-Suppress"] == "All"
    assert parsed["X-Agentdesk-Loop"] == "support@example.com"
    assert parsed["From"] == "Terry Tester <support@example.com>"
    assert parsed["Cc"] == "bo@velo.example"
    assert parsed.get_payload(decode=True).decode("utf-8").rstrip() == "Hello Gréta"
    # Our own mail parsed back is never answered automatically.
    from agentdesk.channels.email.mime import parse_message

    ours = parse_message(mail.as_bytes(), source="support", received_at=T)
    assert ours.kind == "auto_reply" and ours.headers["x-agentdesk-loop"] == "support@example.com"
