"""The outbox's selection and state transitions: only deliverable rows are claimed, an unknown
outcome is possibly_sent and never retried on its own, resend, and the delivery history."""

from __future__ import annotations

from datetime import timedelta

import factories
import pytest
from conftest import FIXED_NOW
from sqlmodel import select

from agentdesk.channels.base import DeliveryError, DeliveryOutcomeUnknown
from agentdesk.domain import replies
from agentdesk.errors import InvalidInput
from agentdesk.store import db, outbox
from agentdesk.store.models import Conversation, DeliveryAttempt, Message, Outbox
from agentdesk.sync import delivery

T = FIXED_NOW


def _queue(engine, policies, *, channel="email", n=0, at=T) -> int:
    result = factories.ingest(
        engine,
        policies,
        factories.inbound(
            at=at - timedelta(minutes=5),
            channel=channel,
            source="support" if channel == "email" else "twilio",
            sender=f"c{n}@velo.example" if channel == "email" else f"+46700{n:05d}",
        ),
    )
    with db.write_session(engine) as session:
        conversation = session.get(Conversation, result.conversation_id)
        replies.reply(
            session,
            conversation=conversation,
            body="Hello",
            agent="tester",
            agent_name="Terry",
            now=at,
            policies=policies,
        )
        session.commit()
    return result.conversation_id


def _outbox(engine, conversation_id) -> Outbox:
    with db.read_session(engine) as session:
        return session.exec(
            select(Outbox)
            .join(Message, Message.id == Outbox.message_id)
            .where(Message.conversation_id == conversation_id)
        ).one()


def _history(engine, outbox_id) -> list[tuple[str, str]]:
    with db.read_session(engine) as session:
        return [
            (a.outcome, a.reason)
            for a in session.exec(
                select(DeliveryAttempt).where(DeliveryAttempt.outbox_id == outbox_id).order_by(DeliveryAttempt.id)
            )
        ]


def test_rows_without_a_sender_never_crowd_out_those_with_one(engine, policies):
    sms = [_queue(engine, policies, channel="sms", n=n, at=T - timedelta(minutes=60 - n)) for n in range(60)]
    mail = _queue(engine, policies, n=99)
    sender = factories.FakeSender()
    report = delivery.deliver_due(engine, {"email": sender}, now_fn=lambda: T)
    assert report.sent == 1 and _outbox(engine, mail).state == "sent"
    assert report.no_sender == 60
    row = _outbox(engine, sms[0])
    assert (row.state, row.attempts, row.no_sender_at) == ("queued", 0, T)
    assert "no sender for sms on this host" in row.last_error
    # Said once: the next pass marks nothing new.
    assert delivery.deliver_due(engine, {"email": sender}, now_fn=lambda: T).no_sender == 0
    # A host with an sms sender takes them and clears the mark.
    sms_sender = factories.FakeSender()
    delivery.deliver_due(engine, {"sms": sms_sender}, now_fn=lambda: T, limit=100)
    row = _outbox(engine, sms[0])
    assert (row.state, row.no_sender_at, row.last_error) == ("sent", None, "")
    assert len(sms_sender.sent) == 60


def test_a_worker_limited_to_some_sources_marks_nothing(engine, policies):
    sms = _queue(engine, policies, channel="sms")
    delivery.deliver_due(engine, {"email": factories.FakeSender()}, now_fn=lambda: T, sources={"support"})
    assert _outbox(engine, sms).no_sender_at is None


def test_undeliverable_counts_by_channel(engine, policies):
    _queue(engine, policies, channel="sms", n=1)
    _queue(engine, policies, channel="sms", n=2)
    _queue(engine, policies, n=3)
    with db.read_session(engine) as session:
        stuck = outbox.undeliverable(session=session, senders={"email"})
    assert [(channel, count) for channel, count, _ in stuck] == [("sms", 2)]


def test_an_unknown_outcome_is_possibly_sent_and_never_retried(engine, policies):
    conversation_id = _queue(engine, policies)
    sender = factories.FakeSender([DeliveryOutcomeUnknown("the answer never came")])
    report = delivery.deliver_due(engine, {"email": sender}, now_fn=lambda: T)
    assert report.possibly_sent == 1 and report.retrying == 0
    row = _outbox(engine, conversation_id)
    assert (row.state, row.next_attempt_at, row.updated_at, row.last_error) == (
        "possibly_sent",
        None,
        T,
        "the answer never came",
    )
    for later in (T + timedelta(hours=1), T + timedelta(days=3)):
        delivery.deliver_due(engine, {"email": sender}, now_fn=lambda: later)  # noqa: B023  (called within the iteration)
    assert sender.sent == [] and _outbox(engine, conversation_id).attempts == 1
    assert _history(engine, row.id) == [("possibly_sent", "the answer never came")]


def test_a_claim_left_without_outcome_is_not_sent_again(engine, policies):
    conversation_id = _queue(engine, policies)
    with db.write_session(engine) as session:  # what a worker that died mid-send leaves behind
        row = session.exec(select(Outbox)).one()
        row.attempts, row.next_attempt_at = 1, T + delivery.LEASE
        session.add(DeliveryAttempt(outbox_id=row.id, started_at=T))
        session.commit()
    sender = factories.FakeSender()
    report = delivery.deliver_due(engine, {"email": sender}, now_fn=lambda: T + delivery.LEASE + timedelta(seconds=1))
    assert sender.sent == [] and report.possibly_sent == 1
    assert _outbox(engine, conversation_id).state == "possibly_sent"


@pytest.mark.parametrize(
    "outcomes, history",
    [
        ([DeliveryError("421 busy"), ""], ["retry", "sent"]),
        ([DeliveryError("550 no such user", permanent=True)], ["failed"]),
    ],
)
def test_every_attempt_is_in_the_history(engine, policies, outcomes, history):
    conversation_id = _queue(engine, policies)
    sender = factories.FakeSender(outcomes)
    delivery.deliver_due(engine, {"email": sender}, now_fn=lambda: T)
    delivery.deliver_due(engine, {"email": sender}, now_fn=lambda: T + timedelta(hours=1))
    assert [outcome for outcome, _ in _history(engine, _outbox(engine, conversation_id).id)] == history


def _resend(engine, conversation_id, number):
    with db.write_session(engine) as session:
        from agentdesk.store import queries

        messages = queries.thread(session=session, conversation_id=conversation_id)
        replies.resend(
            session,
            messages=messages,
            number=number,
            ref=f"AD-{conversation_id}",
            agent="tester",
            now=T + timedelta(hours=2),
        )
        session.commit()


def test_resend_requeues_failed_and_possibly_sent_replies_only(engine, policies):
    conversation_id = _queue(engine, policies)
    with pytest.raises(InvalidInput, match="is queued"):
        _resend(engine, conversation_id, 2)
    with pytest.raises(InvalidInput, match="message from the customer"):
        _resend(engine, conversation_id, 1)
    with pytest.raises(InvalidInput, match="no message 3"):
        _resend(engine, conversation_id, 3)
    delivery.deliver_due(engine, {"email": factories.FakeSender([DeliveryOutcomeUnknown("lost")])}, now_fn=lambda: T)
    _resend(engine, conversation_id, 2)
    row = _outbox(engine, conversation_id)
    assert (row.state, row.attempts, row.next_attempt_at, row.last_error) == ("queued", 0, T + timedelta(hours=2), "")
    sender = factories.FakeSender()
    delivery.deliver_due(engine, {"email": sender}, now_fn=lambda: T + timedelta(hours=2))
    assert len(sender.sent) == 1
    assert [o for o, _ in _history(engine, row.id)] == ["possibly_sent", "sent"]
    with pytest.raises(InvalidInput, match="is sent"):
        _resend(engine, conversation_id, 2)


def test_selection_marking_and_history_on_both_databases(any_database_url, policies):
    engine = db.open_database(any_database_url)
    try:
        sms = [_queue(engine, policies, channel="sms", n=n, at=T - timedelta(minutes=10)) for n in range(3)]
        mail = _queue(engine, policies, n=9)
        report = delivery.deliver_due(
            engine, {"email": factories.FakeSender()}, now_fn=lambda: T, limit=2, sources=None
        )
        assert (report.sent, report.no_sender) == (1, 3)
        assert _outbox(engine, mail).state == "sent" and _outbox(engine, sms[0]).no_sender_at is not None
        with db.read_session(engine) as session:
            assert [(c, n) for c, n, _ in outbox.undeliverable(session=session, senders={"email"})] == [("sms", 3)]
            rows = outbox.due_rows(session=session, senders={"email"}, sources={"support"}, now=T, limit=50)
            assert rows == []
        assert [o for o, _ in _history(engine, _outbox(engine, mail).id)] == ["sent"]
    finally:
        engine.dispose()
