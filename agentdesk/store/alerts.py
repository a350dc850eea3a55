"""What the alerts of the TUI read: audit events and customer messages newer than a mark, and
conversations of an agent whose SLA turned to warning in a span of time.

Keyword-only functions taking a Session, like store/queries.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import func
from sqlmodel import Session, col, select

from agentdesk.store.models import Conversation, Event, Message


def high_marks(*, session: Session) -> tuple[int, int]:
    """The newest audit event's id and the newest message's id (0 for none)."""
    event = session.exec(select(func.max(Event.id))).one() or 0
    message = session.exec(select(func.max(Message.id))).one() or 0
    return event, message


def events_after(*, session: Session, after_id: int, actions: Sequence[str], limit: int = 500) -> list[Event]:
    """Audit events of these actions after `after_id`, oldest first."""
    return list(
        session.exec(
            select(Event)
            .where(col(Event.id) > after_id, col(Event.action).in_(list(actions)))
            .order_by(col(Event.id))
            .limit(limit)
        )
    )


def customer_messages_after(
    *, session: Session, after_id: int, assignee: str, limit: int = 500
) -> list[tuple[int, int, str, str]]:
    """Customer messages (not machine mail) after `after_id` on conversations assigned to
    `assignee`: (message id, conversation id, sender, subject), oldest first."""
    rows = session.exec(
        select(Message.id, Message.conversation_id, Message.author, Conversation.subject)
        .join(Conversation, col(Conversation.id) == col(Message.conversation_id))
        .where(
            col(Message.id) > after_id,
            Message.direction == "inbound",
            Message.kind == "message",
            Conversation.assignee == assignee,
        )
        .order_by(col(Message.id))
        .limit(limit)
    )
    return [tuple(row) for row in rows]  # type: ignore[misc]


def warnings_between(
    *, session: Session, assignee: str, after: datetime, until: datetime, done_statuses: Sequence[str]
) -> list[tuple[int, str]]:
    """Open conversations of `assignee` whose SLA turned to warning after `after`, up to `until`:
    (id, subject)."""
    rows = session.exec(
        select(Conversation.id, Conversation.subject)
        .where(
            Conversation.assignee == assignee,
            col(Conversation.warning_at) > after,
            col(Conversation.warning_at) <= until,
            col(Conversation.status).not_in(list(done_statuses)),
        )
        .order_by(col(Conversation.warning_at))
    )
    return [tuple(row) for row in rows]  # type: ignore[misc]


def assignees(*, session: Session, conversation_ids: Sequence[int]) -> dict[int, str | None]:
    """Who each of these conversations is assigned to."""
    if not conversation_ids:
        return {}
    rows = session.exec(
        select(Conversation.id, Conversation.assignee).where(col(Conversation.id).in_(sorted(set(conversation_ids))))
    ).all()
    return {conversation_id: assignee for conversation_id, assignee in rows if conversation_id is not None}
