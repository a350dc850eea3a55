"""Presence: what this agent is doing now, and what colleagues are viewing or replying to."""

from __future__ import annotations

from agentdesk.app.desk import Desk
from agentdesk.domain import presence
from agentdesk.domain.presence import HEARTBEAT_EVERY

__all__ = ["HEARTBEAT_EVERY", "colleagues", "heartbeat", "leave"]


def heartbeat(desk: Desk, conversation_id: int | None, activity: str) -> None:
    """Say what this agent is doing now (a small write; the TUI sends one every HEARTBEAT_EVERY)."""
    with desk.writing, desk.write() as session:
        presence.heartbeat(
            session, agent=desk.agent, conversation_id=conversation_id, activity=activity, now=desk.now()
        )
        session.commit()


def leave(desk: Desk) -> None:
    with desk.writing, desk.write() as session:
        presence.leave(session, agent=desk.agent)
        session.commit()


def colleagues(desk: Desk) -> dict[int, str]:
    """Other agents' fresh presence, as the rows and thread headers show it ("Dana is replying")."""
    with desk.read() as session:
        found = presence.colleagues(session, agent=desk.agent, now=desk.now())
    names = {login: desk.settings.agent_name(login) for people in found.values() for login in (c.agent for c in people)}
    return {conversation_id: presence.describe(people, names) for conversation_id, people in found.items()}
