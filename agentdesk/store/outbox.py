"""Reads about outbound messages and their delivery: a message's outbox row, its delivery
attempts, the automatic messages a customer was sent.

Keyword-only functions taking a Session, like store/queries.py. (The outbox's claiming and
retrying are sync/delivery.py's.)
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import func
from sqlmodel import Session, col, select

from agentdesk.store.models import Conversation, DeliveryAttempt, Message, Outbox


def automatic_message_count(
    *, session: Session, customer_id: int, kinds: Sequence[str], since: datetime, sent_only: bool = False
) -> int:
    """Outbound messages of these kinds to the customer after `since`: written then (queued or
    sent), or with `sent_only` sent then."""
    statement = (
        select(func.count()).select_from(Message)
        .join(Conversation, col(Conversation.id) == col(Message.conversation_id))
        .where(Conversation.customer_id == customer_id, Message.direction == "outbound",
               col(Message.kind).in_(kinds))
    )
    if sent_only:
        statement = statement.join(Outbox, col(Outbox.message_id) == col(Message.id)).where(
            Outbox.state == "sent", col(Outbox.sent_at) > since)
    else:
        statement = statement.where(col(Message.at) > since)
    return session.exec(statement).one()


def receipts_queued(*, session: Session, customer_id: int, after: datetime, until: datetime) -> int:
    """Receipts written for the customer's conversations after `after`, up to `until`.

    Indexed: the customer's conversations, then each one's messages by time.
    """
    return session.exec(
        select(func.count()).select_from(Message)
        .join(Conversation, col(Conversation.id) == col(Message.conversation_id))
        .where(Conversation.customer_id == customer_id, Message.direction == "outbound", Message.kind == "receipt",
               col(Message.at) > after, col(Message.at) <= until)
    ).one()


def delivery_attempts(*, session: Session, outbox_ids: Sequence[int]) -> dict[int, list[DeliveryAttempt]]:
    """Every delivery attempt of these outbox rows, oldest first, by outbox id."""
    found: dict[int, list[DeliveryAttempt]] = {}
    if outbox_ids:
        statement = (select(DeliveryAttempt).where(col(DeliveryAttempt.outbox_id).in_(list(outbox_ids)))
                     .order_by(col(DeliveryAttempt.started_at), col(DeliveryAttempt.id)))
        for attempt in session.exec(statement):
            found.setdefault(attempt.outbox_id, []).append(attempt)
    return found
