"""What agents hold open on conversations: presences (who is viewing or replying) and drafts."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlmodel import Session, col, delete, select

from agentdesk.store.models import Draft, Presence


def fresh_presences(
    *, session: Session, agent: str, since: datetime, conversation_ids: Sequence[int] | None = None
) -> list[Presence]:
    """Other agents' presences heartbeaten at or after `since`: on these conversations, or on any."""
    on = (
        col(Presence.conversation_id).in_(list(conversation_ids))
        if conversation_ids is not None
        else col(Presence.conversation_id).is_not(None)
    )
    return list(session.exec(select(Presence).where(on, Presence.agent != agent, col(Presence.heartbeat_at) >= since)))


def delete_draft(*, session: Session, conversation_id: int, agent: str) -> None:
    session.exec(delete(Draft).where(col(Draft.conversation_id) == conversation_id, col(Draft.agent) == agent))


def conversations_with_drafts(*, session: Session, agent: str, conversation_ids: Sequence[int]) -> set[int]:
    """Which of these conversations the agent has a draft in."""
    rows = session.exec(
        select(Draft.conversation_id).where(Draft.agent == agent, col(Draft.conversation_id).in_(conversation_ids))
    )
    return set(rows)


def drafts_on(*, session: Session, conversation_id: int) -> list[Draft]:
    """Every agent's draft on the conversation."""
    return list(session.exec(select(Draft).where(Draft.conversation_id == conversation_id)).all())
