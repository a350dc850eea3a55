"""Who is looking at or replying to which conversation, so two agents never answer twice unknowingly.

Each open TUI heartbeats its agent's current conversation and activity every few seconds; a
presence older than `STALE_AFTER` is ignored (the TUI crashed, the SSH session dropped).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

# The store is imported where a presence is read or written: the TUI takes the heartbeat interval
# from here before its first frame, which is drawn before the ORM is imported.
if TYPE_CHECKING:
    from sqlmodel import Session

HEARTBEAT_EVERY = timedelta(seconds=5)
STALE_AFTER = timedelta(seconds=20)
ACTIVITIES = ("viewing", "replying")


@dataclass(frozen=True)
class Colleague:
    agent: str
    activity: str
    since: datetime


def heartbeat(session: Session, *, agent: str, conversation_id: int | None, activity: str, now: datetime) -> None:
    """Record what `agent` is doing now (None: nothing open). The caller commits."""
    if activity not in ACTIVITIES:
        raise ValueError(f"activity must be one of {ACTIVITIES}, got {activity!r}")
    from agentdesk.store.models import Presence

    presence = session.get(Presence, agent)
    if presence is None:
        presence = Presence(agent=agent)
    presence.conversation_id, presence.activity, presence.heartbeat_at = conversation_id, activity, now
    session.add(presence)


def leave(session: Session, *, agent: str) -> None:
    from agentdesk.store.models import Presence

    presence = session.get(Presence, agent)
    if presence is not None:
        session.delete(presence)


def colleagues_on(
    session: Session, *, conversation_ids: Sequence[int], agent: str, now: datetime
) -> dict[int, list[Colleague]]:
    """Other agents with a fresh presence on these conversations, replying first."""
    if not conversation_ids:
        return {}
    from agentdesk.store import collaboration

    rows = collaboration.fresh_presences(
        session=session, agent=agent, since=now - STALE_AFTER, conversation_ids=conversation_ids
    )
    found: dict[int, list[Colleague]] = {}
    for row in rows:
        if row.conversation_id is not None:  # the fresh presences are all on a conversation
            found.setdefault(row.conversation_id, []).append(Colleague(row.agent, row.activity, row.heartbeat_at))
    for colleagues in found.values():
        colleagues.sort(key=lambda c: (c.activity != "replying", c.agent))
    return found


def describe(colleagues: Sequence[Colleague], names: dict[str, str] | None = None) -> str:
    """ "Dana is replying", "Dana and Sam are viewing" — for the queue row and the thread header."""
    if not colleagues:
        return ""
    names = names or {}
    replying = [names.get(c.agent, c.agent) for c in colleagues if c.activity == "replying"]
    viewing = [names.get(c.agent, c.agent) for c in colleagues if c.activity == "viewing"]
    parts = []
    for who, verb in ((replying, "replying"), (viewing, "viewing")):
        if who:
            joined = who[0] if len(who) == 1 else ", ".join(who[:-1]) + " and " + who[-1]
            parts.append(f"{joined} {'is' if len(who) == 1 else 'are'} {verb}")
    return "; ".join(parts)


def colleagues(session: Session, *, agent: str, now: datetime) -> dict[int, list[Colleague]]:
    """Every other agent's fresh presence, by conversation (the table holds one row per agent)."""
    from agentdesk.store import collaboration

    rows = collaboration.fresh_presences(session=session, agent=agent, since=now - STALE_AFTER)
    found: dict[int, list[Colleague]] = {}
    for row in rows:
        if row.conversation_id is not None:  # the fresh presences are all on a conversation
            found.setdefault(row.conversation_id, []).append(Colleague(row.agent, row.activity, row.heartbeat_at))
    for people in found.values():
        people.sort(key=lambda c: (c.activity != "replying", c.agent))
    return found
