"""Writes and small reads on one conversation for the domain's rules: its tags, the claim's
conditional update, moving messages on a merge.

Keyword-only functions taking a Session, like store/queries.py.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, update
from sqlmodel import Session, col, select

from agentdesk.store.models import Conversation, ConversationTag, Message


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


def move_messages(*, session: Session, from_id: int, to_id: int) -> int:
    """Move every message of conversation `from_id` to `to_id`; how many moved."""
    return session.exec(
        update(Message).where(col(Message.conversation_id) == from_id).values(conversation_id=to_id)
    ).rowcount
