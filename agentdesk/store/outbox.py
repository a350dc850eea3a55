"""Queries about outbound messages and their delivery: the rows due to send, those no sender
here takes, a message's outbox row, its delivery attempts, the automatic messages a customer was
sent.

Keyword-only functions taking a Session, like store/queries.py. (When a row is claimed, retried
or given up is sync/delivery.py's to decide; the statements it runs are here.)
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, func, update
from sqlmodel import Session, col, select

from agentdesk.store import message_removal
from agentdesk.store.models import Conversation, DeliveryAttempt, Message, Outbox


def automatic_message_count(
    *, session: Session, customer_id: int, kinds: Sequence[str], since: datetime, sent_only: bool = False
) -> int:
    """Outbound messages of these kinds to the customer after `since`: written then (queued or
    sent), or with `sent_only` sent then."""
    statement = (
        select(func.count())
        .select_from(Message)
        .join(Conversation, col(Conversation.id) == col(Message.conversation_id))
        .where(Conversation.customer_id == customer_id, Message.direction == "outbound", col(Message.kind).in_(kinds))
    )
    if sent_only:
        statement = statement.join(Outbox, col(Outbox.message_id) == col(Message.id)).where(
            Outbox.state == "sent", col(Outbox.sent_at) > since
        )
    else:
        statement = statement.where(col(Message.at) > since)
    return session.exec(statement).one()


def receipts_queued(*, session: Session, customer_id: int, after: datetime, until: datetime) -> int:
    """Receipts written for the customer's conversations after `after`, up to `until`.

    Indexed: the customer's conversations, then each one's messages by time.
    """
    return session.exec(
        select(func.count())
        .select_from(Message)
        .join(Conversation, col(Conversation.id) == col(Message.conversation_id))
        .where(
            Conversation.customer_id == customer_id,
            Message.direction == "outbound",
            Message.kind == "receipt",
            col(Message.at) > after,
            col(Message.at) <= until,
        )
    ).one()


def delivery_attempts(*, session: Session, outbox_ids: Sequence[int]) -> dict[int, list[DeliveryAttempt]]:
    """Every delivery attempt of these outbox rows, oldest first, by outbox id."""
    found: dict[int, list[DeliveryAttempt]] = {}
    if outbox_ids:
        statement = (
            select(DeliveryAttempt)
            .where(col(DeliveryAttempt.outbox_id).in_(list(outbox_ids)))
            .order_by(col(DeliveryAttempt.started_at), col(DeliveryAttempt.id))
        )
        for attempt in session.exec(statement):
            found.setdefault(attempt.outbox_id, []).append(attempt)
    return found


def due_rows(
    *, session: Session, senders: set[str], sources: set[str] | None, now: datetime, limit: int
) -> list[Outbox]:
    """The queued rows due now that these senders can deliver (of these sources, when given),
    oldest due first.

    Channels without a sender are left out in the SQL, so any number of them never hides a
    deliverable row behind them.
    """
    statement = (
        select(Outbox)
        .where(Outbox.state == "queued")
        .where(col(Outbox.channel).in_(sorted(senders)))
        .where(col(Outbox.next_attempt_at).is_(None) | (col(Outbox.next_attempt_at) <= now))
    )
    if sources is not None:
        statement = statement.where(col(Outbox.source).in_(sorted(sources)))
    return list(session.exec(statement.order_by(col(Outbox.next_attempt_at), col(Outbox.id)).limit(limit)))


def undeliverable(*, session: Session, senders: set[str]) -> list[tuple[str, int, datetime | None]]:
    """Queued replies no sender in `senders` can take: (channel, how many, the oldest's time)."""
    rows = session.exec(
        select(Outbox.channel, func.count(), func.min(Outbox.created_at))
        .where(Outbox.state == "queued", col(Outbox.channel).not_in(sorted(senders)))
        .group_by(Outbox.channel)
        .order_by(Outbox.channel)
    ).all()
    return [(channel, count, oldest) for channel, count, oldest in rows]


def unmarked_without_sender(*, session: Session, senders: set[str]) -> list[tuple[str, int]]:
    """Queued rows no sender in `senders` takes that do not say so yet: (channel, how many)."""
    return list(
        session.exec(
            select(Outbox.channel, func.count())
            .where(
                Outbox.state == "queued",
                col(Outbox.no_sender_at).is_(None),
                col(Outbox.channel).not_in(sorted(senders)),
            )
            .group_by(Outbox.channel)
        ).all()
    )


def mark_without_sender(*, session: Session, channel: str, now: datetime, reason: str) -> None:
    """Say on each queued `channel` row not yet marked that no sender here takes it, and why."""
    session.exec(
        update(Outbox)
        .where(col(Outbox.state) == "queued", col(Outbox.no_sender_at).is_(None), col(Outbox.channel) == channel)
        .values(no_sender_at=now, updated_at=now, last_error=reason)
    )


def unfinished_attempts(*, session: Session, outbox_ids: Sequence[int]) -> dict[int, DeliveryAttempt]:
    """Attempts of these rows claimed whose outcome was never recorded (their worker died
    mid-send), by outbox id."""
    if not outbox_ids:
        return {}
    rows = session.exec(
        select(DeliveryAttempt).where(
            col(DeliveryAttempt.outbox_id).in_(outbox_ids), DeliveryAttempt.outcome == "sending"
        )
    )
    return {row.outbox_id: row for row in rows}


def outbox_of_outbound(*, session: Session, external_id: str) -> Outbox | None:
    """The outbox row of our outbound message that a delivery callback names: by our own id (the
    generic schema's `message_id`), else by the id the provider gave it (Twilio, WhatsApp)."""
    found = session.exec(
        select(Outbox)
        .join(Message, col(Message.id) == col(Outbox.message_id))
        .where(Message.external_id == external_id, Message.direction == "outbound")
    ).first()
    if found is None:
        found = session.exec(select(Outbox).where(Outbox.provider_id == external_id)).first()
    return found


def outbox_of(*, session: Session, message_id: int) -> Outbox | None:
    """The outbox row of an outbound message (None for one never queued)."""
    return session.exec(select(Outbox).where(col(Outbox.message_id) == message_id)).first()


def withdraw_unclaimed(*, session: Session, message_id: int) -> bool:
    """Delete a queued reply that no sender has ever had (no attempt counted, none recorded: a reply
    queued again after a failure may have reached the customer) with what only made sense with it,
    every other reference to it set to NULL (`message_removal.remove`); False, deleting nothing,
    when a sender got to it first.

    One conditional DELETE decides: a claim counts the attempt in its own write transaction, so of
    a claim and a withdrawal exactly one wins, on any database."""
    attempted = select(DeliveryAttempt.id).where(col(DeliveryAttempt.outbox_id) == col(Outbox.id)).exists()
    gone = session.exec(
        delete(Outbox).where(
            col(Outbox.message_id) == message_id,
            col(Outbox.state) == "queued",
            col(Outbox.attempts) == 0,
            ~attempted,
        )
    )
    if gone.rowcount != 1:
        return False
    return message_removal.remove(session=session, message_id=message_id)


def agent_reply_times(*, session: Session, conversation_id: int) -> tuple[datetime | None, datetime | None]:
    """The first and the last reply an agent wrote in the conversation (automatic messages left out)."""
    first, last = session.exec(
        select(func.min(Message.at), func.max(Message.at)).where(
            Message.conversation_id == conversation_id,
            Message.direction == "outbound",
            Message.kind == "message",
            col(Message.author_login).is_not(None),
        )
    ).one()
    return first, last


def hurry(*, session: Session, message_ids: Sequence[int], now: datetime) -> int:
    """Make these queued, unclaimed replies due now (past their undo window or retry backoff): how many."""
    if not message_ids:
        return 0
    result = session.exec(
        update(Outbox)
        .where(
            col(Outbox.message_id).in_(list(message_ids)),
            col(Outbox.state) == "queued",
            col(Outbox.next_attempt_at) > now,
        )
        .values(next_attempt_at=now, no_sender_at=None)
    )
    return result.rowcount


def overdue(*, session: Session, due_before: datetime) -> int:
    """Queued replies that were due before `due_before` and that no sync has marked as waiting for
    another host: nothing is delivering them."""
    return session.exec(
        select(func.count())
        .select_from(Outbox)
        .where(
            Outbox.state == "queued",
            col(Outbox.no_sender_at).is_(None),
            col(Outbox.next_attempt_at).is_(None) | (col(Outbox.next_attempt_at) <= due_before),
        )
    ).one()
