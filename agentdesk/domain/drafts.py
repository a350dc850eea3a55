"""Drafts: an agent's unsent reply or note, one per conversation and agent.

A draft is saved as the agent types (the composer debounces) and when they leave the
conversation, so it survives switching conversations and restarting the app. `base_version` is
the conversation's version when the composer opened: the composer can tell the agent that the
conversation changed under their draft.
"""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session

from agentdesk.errors import InvalidInput
from agentdesk.store import collaboration
from agentdesk.store.models import Draft

KINDS = ("reply", "note")


def get(session: Session, *, conversation_id: int, agent: str) -> Draft | None:
    return session.get(Draft, (conversation_id, agent))


def save(
    session: Session,
    *,
    conversation_id: int,
    agent: str,
    body: str,
    kind: str = "reply",
    base_version: int = 0,
    now: datetime,
) -> Draft | None:
    """Store the draft (in the caller's transaction); an empty body discards it instead."""
    if kind not in KINDS:
        raise InvalidInput(f"draft kind {kind!r} is not one of: {', '.join(KINDS)}")
    if not body.strip():
        discard(session, conversation_id=conversation_id, agent=agent)
        return None
    draft = get(session, conversation_id=conversation_id, agent=agent)
    if draft is None:
        draft = Draft(conversation_id=conversation_id, agent=agent)
    draft.kind = kind
    draft.body = body
    draft.base_version = base_version
    draft.updated_at = now
    session.add(draft)
    return draft


def discard(session: Session, *, conversation_id: int, agent: str) -> None:
    collaboration.delete_draft(session=session, conversation_id=conversation_id, agent=agent)


def with_drafts(session: Session, *, agent: str, conversation_ids: list[int]) -> set[int]:
    """Which of these conversations the agent has a draft in (a marker in the queue)."""
    if not conversation_ids:
        return set()
    return collaboration.conversations_with_drafts(session=session, agent=agent, conversation_ids=conversation_ids)
