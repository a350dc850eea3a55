"""Writes and reads on conversations for the domain's rules: tags, the claim's conditional
update, moving messages on a merge, SLA clock events and the recompute's pages.

Keyword-only functions taking a Session, like store/queries.py.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime

from sqlalchemy import delete, update
from sqlmodel import Session, col, select

from agentdesk.store.bound_lists import one_of
from agentdesk.store.models import Conversation, ConversationTag, Event, Message, SlaClockEvent
from agentdesk.store.queries import DONE_STATUSES


def tag_names(*, session: Session, conversation_id: int) -> set[str]:
    """The conversation's tags (for one conversation; `queries.tags_of` reads many, sorted)."""
    return set(session.exec(select(ConversationTag.tag).where(ConversationTag.conversation_id == conversation_id)))


def delete_tags(*, session: Session, conversation_id: int, tag: str | None = None) -> None:
    """Remove the conversation's tag `tag`, or every tag of it."""
    statement = delete(ConversationTag).where(col(ConversationTag.conversation_id) == conversation_id)
    if tag is not None:
        statement = statement.where(col(ConversationTag.tag) == tag)
    session.exec(statement)


def claim_if_unassigned(*, session: Session, conversation_id: int, agent: str, now: datetime) -> bool:
    """Assign to `agent` if nobody (or `agent`) holds it, in one conditional UPDATE; False when
    no row was updated (someone else holds it, or there is no such conversation)."""
    result = session.exec(
        update(Conversation)
        .where(col(Conversation.id) == conversation_id)
        .where(col(Conversation.assignee).is_(None) | (col(Conversation.assignee) == agent))
        .values(assignee=agent, version=Conversation.version + 1, updated_at=now)
    )
    return result.rowcount != 0


def assignee_of(*, session: Session, conversation_id: int) -> str | None:
    return session.exec(select(Conversation.assignee).where(Conversation.id == conversation_id)).first()


def message_ids_of(*, session: Session, conversation_id: int) -> list[int]:
    """The ids of the conversation's messages (notes included), ascending."""
    statement = select(Message.id).where(Message.conversation_id == conversation_id).order_by(col(Message.id))
    return [message_id for message_id in session.exec(statement) if message_id is not None]


def move_messages(*, session: Session, from_id: int, to_id: int, message_ids: Sequence[int] | None = None) -> int:
    """Move every message of conversation `from_id` (or those of `message_ids` that are in it) to
    `to_id`; how many moved."""
    statement = update(Message).where(col(Message.conversation_id) == from_id)
    if message_ids is not None:
        statement = statement.where(col(Message.id).in_(list(message_ids)))
    return session.exec(statement.values(conversation_id=to_id)).rowcount


def clock_event_columns(*, session: Session, conversation_ids: Sequence[int]) -> Iterable[tuple]:
    """(conversation id, target, event, at, detail) of these conversations' SLA clock events, by
    conversation in recorded order: plain columns, not ORM objects (ingest reads them for every
    conversation a chunk touches)."""
    return session.exec(
        select(  # type: ignore[call-overload]  # sqlmodel's select is typed up to four columns
            SlaClockEvent.conversation_id,
            SlaClockEvent.target,
            SlaClockEvent.event,
            SlaClockEvent.at,
            SlaClockEvent.detail,
        )
        .where(one_of(session, SlaClockEvent.conversation_id, conversation_ids))
        .order_by(col(SlaClockEvent.conversation_id), col(SlaClockEvent.id))
    )


def last_clock_event_id(*, session: Session, conversation_ids: Sequence[int]) -> int:
    """The id of the latest SLA clock event recorded on these conversations (0: none)."""
    from sqlalchemy import func

    return (
        session.exec(
            select(func.max(SlaClockEvent.id)).where(col(SlaClockEvent.conversation_id).in_(list(conversation_ids)))
        ).one()
        or 0
    )


def delete_clock_events_after(*, session: Session, conversation_ids: Sequence[int], after_id: int) -> None:
    """Forget the SLA clock events of these conversations recorded after event `after_id`."""
    session.exec(
        delete(SlaClockEvent).where(
            col(SlaClockEvent.conversation_id).in_(list(conversation_ids)), col(SlaClockEvent.id) > after_id
        )
    )


def open_conversations_page(*, session: Session, after_id: int, limit: int) -> list[Conversation]:
    """The next `limit` conversations after `after_id` (id order) not solved, closed or merged away.

    Locked for the SLA recompute that rewrites them (PostgreSQL; see
    `conversation_rows.by_id`): read before an agent's change commits, its UPDATE would put
    back the version and the SLA fields of the row before that change.
    """
    return list(
        session.exec(
            select(Conversation)
            .where(
                col(Conversation.id) > after_id,
                col(Conversation.status).not_in(DONE_STATUSES),
                col(Conversation.merged_into_id).is_(None),
            )
            .order_by(col(Conversation.id))
            .limit(limit)
            .with_for_update(key_share=True)
            .execution_options(populate_existing=True)
        )
    )


def lock_rows(*, session: Session, conversation_ids: Iterable[int]) -> None:
    """Lock these conversations' rows (PostgreSQL: FOR UPDATE, as `queue.load_for_update` does) in
    ascending id order, in one statement; SQLite has no row locks (a write transaction holds the
    whole database), so there this is a read of the ids."""
    session.execute(
        select(col(Conversation.id))
        .where(col(Conversation.id).in_(sorted(set(conversation_ids))))
        .order_by(col(Conversation.id))
        .with_for_update()
    ).all()


def latest_events(*, session: Session, conversation_id: int, limit: int = 50) -> list[Event]:
    """The conversation's latest audit events, newest first."""
    return list(
        session.exec(
            select(Event).where(Event.conversation_id == conversation_id).order_by(col(Event.id).desc()).limit(limit)
        )
    )


def inbound_since(*, session: Session, conversation_id: int, since: datetime) -> int:
    """How many customer messages joined the conversation after `since` (by when they were stored)."""
    from sqlalchemy import func

    return session.exec(
        select(func.count())
        .select_from(Message)
        .where(
            Message.conversation_id == conversation_id, Message.direction == "inbound", col(Message.ingested_at) > since
        )
    ).one()


def reply_event(*, session: Session, conversation_id: int, message_id: int) -> Event | None:
    """The audit event that recorded this reply (the latest, should there be more), or None."""
    from agentdesk.store.message_removal import events_naming

    recorded = [
        event
        for event, _, named in events_naming(
            session, message_id, Event.conversation_id == conversation_id, Event.action == "reply"
        )
        if "message_id" in named
    ]
    return recorded[-1] if recorded else None


def status_changes_after(*, session: Session, conversation_id: int, after_event_id: int) -> list[tuple[datetime, str]]:
    """(when, the new status) of each status change of the conversation audited after event
    `after_event_id`, in the order they were made."""
    changes = []
    for at, detail in session.exec(
        select(Event.at, Event.detail)
        .where(Event.conversation_id == conversation_id, Event.action == "status", col(Event.id) > after_event_id)
        .order_by(col(Event.id))
    ):
        try:
            new = json.loads(detail or "{}").get("new")
        except (ValueError, AttributeError):
            continue
        if isinstance(new, str):
            changes.append((at, new))
    return changes


def oldest_unanswered(*, session: Session, conversation_id: int, after: datetime | None) -> datetime | None:
    """When the oldest of the customer's messages written after `after` (None: ever) was written:
    what the conversation waits on since, when `after` is its last reply."""
    from sqlalchemy import func

    statement = select(func.min(Message.at)).where(
        Message.conversation_id == conversation_id, Message.direction == "inbound", Message.kind == "message"
    )
    if after is not None:
        statement = statement.where(col(Message.at) > after)
    return session.exec(statement).one()
