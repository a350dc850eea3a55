"""Undoing an agent's last change to a conversation, read back from the audit log.

One action of an agent (`set --status solved --tag refund`, a macro, a claim) records its events
with one `now`: those events, the latest of this agent's undoable ones, are undone together, each
back to the value the event recorded as old, and the undo is itself audited (`undo`, naming what
it reverted). It is refused (`Conflict`) when anything changed the conversation since: another
agent's or the system's change, or a customer message — the agent looks again instead of
overwriting what they have not seen.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlmodel import Session

from agentdesk.domain import audit, clocks, queue, spam
from agentdesk.errors import Conflict, InvalidInput
from agentdesk.store import conversations as conversation_queries
from agentdesk.store.models import Conversation, id_of, ref_of

# What can be undone: the changes `queue.change`, `queue.claim` and `spam.mark_spam` record.
UNDOABLE = ("status", "priority", "assign", "claim", "tag", "untag", "snooze", "spam", "unspam")
# Events that say something happened to the conversation without changing what an undo restores.
HARMLESS = (
    "delivered",
    "delivery_uncertain",
    "resend",
    "note",
    "reply",
    "receipt",
    "survey",
    "undo",
    "unsend",
    "macro",
)


def undo_last(
    session: Session, *, conversation: Conversation, agent: str, now: datetime, policies: clocks.Policies
) -> list[str]:
    """Undo this agent's latest change to the conversation; what was undone, as lines."""
    ref = ref_of(id_of(conversation))
    events = conversation_queries.latest_events(session=session, conversation_id=id_of(conversation), limit=200)
    mine = next((e for e in events if e.agent == agent and e.action in UNDOABLE), None)
    if mine is None:
        raise InvalidInput(f"{ref}: you have no change to undo here")
    if any(e.action == "undo" and e.agent == agent and id_of(e) > id_of(mine) for e in events):
        raise InvalidInput(f"{ref}: your last change was undone already")
    # One action's events: written together, with one `now`, nothing else between them.
    group = []
    for event in events[events.index(mine) :]:
        if event.agent != agent or event.at != mine.at or event.action not in (*UNDOABLE, "macro"):
            break
        if event.action != "macro":
            group.append(event)
    later = [e for e in events if id_of(e) > max(id_of(g) for g in group) and e.action not in HARMLESS]
    if later:
        who = later[-1].agent
        raise Conflict(
            f"{ref} changed since your {mine.action} ({later[-1].action} by {who}); not undone — look at it again"
        )
    if conversation_queries.inbound_since(session=session, conversation_id=id_of(conversation), since=mine.at):
        raise Conflict(f"{ref} has a new customer message since your {mine.action}; not undone — look at it again")
    changes: dict[str, Any] = {"add_tags": [], "remove_tags": []}
    undone: list[str] = []
    for event in sorted(group, key=id_of):
        detail = json.loads(event.detail or "{}")
        if event.action == "status":
            changes["status"] = detail.get("old")
        elif event.action == "priority":
            changes["priority"] = detail.get("old")
        elif event.action == "assign":
            changes["assignee"] = detail.get("old")
        elif event.action == "claim":
            changes["assignee"] = None
        elif event.action == "tag":
            changes["remove_tags"].append(detail["tag"])
        elif event.action == "untag":
            changes["add_tags"].append(detail["tag"])
        elif event.action == "snooze":
            old = detail.get("old")
            changes["snoozed_until"] = datetime.fromisoformat(old) if old else None
            if changes["snoozed_until"] is not None and changes["snoozed_until"] <= now:
                changes["snoozed_until"] = None  # that snooze has run out meanwhile
        elif event.action == "spam":
            spam.unmark_spam(session, conversation=conversation, agent=agent, now=now, policies=policies)
        elif event.action == "unspam":
            spam.mark_spam(session, conversation=conversation, agent=agent, now=now, policies=policies)
        undone.append(event.action)
    queue.change(session, conversation=conversation, agent=agent, now=now, policies=policies, **changes)
    audit.record(
        session, agent=agent, action="undo", now=now, conversation_id=conversation.id, undone=undone, event=mine.id
    )
    return [f"{ref}: undid your {', '.join(undone)}"]
