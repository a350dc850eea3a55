"""Reads for customer merges (a customer's identities and conversations, the merge events) and for
the senders (the identity a reply goes to).

Keyword-only functions taking a Session, like store/queries.py (whose `identities_of`,
`customer_history` and `customer_by_identity` answer the customer views).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlmodel import Session, col, select

from agentdesk.store.models import Conversation, Event, Identity


def identities_by_id(*, session: Session, identity_ids: Sequence[int]) -> list[Identity]:
    return list(session.exec(select(Identity).where(col(Identity.id).in_(identity_ids))))


def customer_conversations(
    *, session: Session, customer_id: int, created_since: datetime | None = None
) -> list[Conversation]:
    """The customer's conversations (created at or after `created_since` when given), unordered."""
    statement = select(Conversation).where(Conversation.customer_id == customer_id)
    if created_since is not None:
        statement = statement.where(col(Conversation.created_at) >= created_since)
    return list(session.exec(statement))


def latest_customer_event(*, session: Session, action: str, customer_id: int) -> Event | None:
    """The customer's latest `action` event (a merge, say); None without one."""
    return session.exec(
        select(Event).where(Event.action == action, Event.customer_id == customer_id).order_by(col(Event.id).desc())
    ).first()


def events_newest_first(
    *, session: Session, action: str | Sequence[str], agent: str | None = None, after_id: int = 0
) -> list[Event]:
    """Every `action` event (of one of these actions), of `agent` when given, after the event
    `after_id`, newest first."""
    actions = [action] if isinstance(action, str) else list(action)
    statement = select(Event).where(col(Event.action).in_(actions), col(Event.id) > after_id)
    if agent is not None:
        statement = statement.where(Event.agent == agent)
    return list(session.exec(statement.order_by(col(Event.id).desc())).all())


def customer_events_after(*, session: Session, customer_ids: Sequence[int], after_id: int) -> list[Event]:
    """The events recorded on these customers after the event `after_id`, oldest first."""
    return list(
        session.exec(
            select(Event)
            .where(col(Event.customer_id).in_(list(customer_ids)), col(Event.id) > after_id)
            .order_by(col(Event.id))
        ).all()
    )


def identity_of_kind(*, session: Session, customer_id: int, kind: str) -> Identity | None:
    """One identity of the customer of this kind (an email address to reply to, say)."""
    return session.exec(select(Identity).where(Identity.customer_id == customer_id, Identity.kind == kind)).first()
