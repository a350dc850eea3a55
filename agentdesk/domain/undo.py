"""Undoing an agent's last change to a conversation, read back from the audit log.

One action of an agent (`set --status solved --tag refund`, a macro, a claim) records its events
with one `now`: those events, the latest of this agent's undoable ones, are undone together, each
back to the value the event recorded as old, and the undo is itself audited (`undo`, naming what
it reverted). It is refused (`Conflict`) when anything changed the conversation since: another
agent's or the system's change, or a customer message — the agent looks again instead of
overwriting what they have not seen.

A merge spans conversations: undone from either side, the whole merge action is (every conversation
it merged into the one kept, with what `queue.merge_conversations` recorded), and anything that
happened to any of them since refuses it. A customer merge is recorded on the customers, not the
conversation: `domain.merge` finds this agent's latest one that touched the conversation, and the
newer of it and the conversation's own change is the one undone.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlmodel import Session

from agentdesk.domain import audit, clocks, merge, queue, spam
from agentdesk.errors import Conflict, InvalidInput
from agentdesk.store import conversations as conversation_queries
from agentdesk.store.models import Conversation, Event, id_of, ref_of

# What can be undone: the changes `queue.change`, `queue.claim`, `spam.mark_spam` and
# `queue.merge_conversations` record.
UNDOABLE = ("status", "priority", "assign", "claim", "tag", "untag", "snooze", "spam", "unspam", "merge")
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
    # A customer merge is recorded on the customers, not on each conversation it moved.
    customer_merge = merge.latest_merge_by(session, agent=agent, conversation=conversation)
    if customer_merge is not None and (mine is None or id_of(customer_merge) > id_of(mine)):
        outcome = merge.undo_merge(
            session, event=customer_merge, agent=agent, now=now, conversation_id=id_of(conversation)
        )
        identities, moved = len(outcome.identities), len(outcome.conversations)
        return [
            f"{ref}: undid your merge of customer {outcome.merged_id} into customer {outcome.kept_id} "
            f"({identities} {'identity' if identities == 1 else 'identities'}, "
            f"{moved} conversation{'s' * (moved != 1)} back)"
        ]
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
    if any(event.action == "merge" for event in group):
        return _undo_merge(session, conversation=conversation, mine=mine, agent=agent, now=now, policies=policies)
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


# After a merge, a reply or a note on either conversation is new text the merge's undo would have
# to place: it refuses instead, like it does for any other change.
_MERGE_HARMLESS = tuple(action for action in HARMLESS if action not in ("note", "reply"))


def _undo_merge(
    session: Session, *, conversation: Conversation, mine: Event, agent: str, now: datetime, policies: clocks.Policies
) -> list[str]:
    """Undo the merge action `mine` belongs to (from either side: the conversation kept or one
    merged into it): every conversation that action merged into the one kept is separated again,
    newest first, with what `queue.merge_conversations` recorded. Refused when anything happened
    to any of them since."""
    detail = json.loads(mine.detail or "{}")
    if mine.action != "merge":  # the source's status event of that merge: its merge event is next
        merge_event = next(
            e
            for e in conversation_queries.latest_events(session=session, conversation_id=id_of(conversation), limit=50)
            if e.action == "merge" and e.agent == agent and e.at == mine.at
        )
        detail = json.loads(merge_event.detail or "{}")
    target = conversation if "into" not in detail else queue.load_for_update(session, detail["into"])
    target_events = conversation_queries.latest_events(session=session, conversation_id=id_of(target), limit=200)
    merges: list[tuple[Event, dict[str, Any]]] = []
    for event in target_events:
        if event.action == "merge" and event.agent == agent and event.at == mine.at:
            merges.append((event, json.loads(event.detail or "{}")))
        elif merges:
            break
    merges = [(event, merged) for event, merged in merges if "from" in merged]
    if not merges:
        raise InvalidInput(f"{ref_of(id_of(conversation))}: that merge is not recorded on {ref_of(id_of(target))}")
    sources = {merged["from"]: queue.load_for_update(session, merged["from"]) for _, merged in merges}
    old_status: dict[str, str | None] = {}
    for involved in (target, *sources.values()):
        ref = ref_of(id_of(involved))
        events = (
            target_events
            if involved is target
            else conversation_queries.latest_events(session=session, conversation_id=id_of(involved), limit=200)
        )
        action = [e for e in events if e.agent == agent and e.at == mine.at and e.action in ("merge", "status")]
        if not action:
            raise Conflict(f"{ref} changed since your merge; not undone — look at it again")
        status = next((e for e in action if e.action == "status"), None)
        old_status[ref] = json.loads(status.detail or "{}").get("old") if status is not None else None
        later = [e for e in events if id_of(e) > max(id_of(a) for a in action) and e.action not in _MERGE_HARMLESS]
        if later:
            what = "undo" if later[-1].action == "undo" else f"{later[-1].action} by {later[-1].agent}"
            raise Conflict(f"{ref} changed since your merge ({what}); not undone — look at it again")
        if conversation_queries.inbound_since(session=session, conversation_id=id_of(involved), since=mine.at):
            raise Conflict(f"{ref} has a new customer message since your merge; not undone — look at it again")
    lines = []
    for event, merged in merges:  # newest first: each merge undone on the state it left
        source = sources[merged["from"]]
        moved = queue.unmerge_conversations(
            session,
            source=source,
            target=target,
            merge=merged,
            old_status=old_status[merged["from"]],
            agent=agent,
            now=now,
            policies=policies,
        )
        audit.record(
            session,
            agent=agent,
            action="undo",
            now=now,
            conversation_id=target.id,
            undone=["merge"],
            event=event.id,
            separated=merged["from"],
            messages=moved,
        )
        audit.record(
            session,
            agent=agent,
            action="undo",
            now=now,
            conversation_id=source.id,
            undone=["merge"],
            event=event.id,
            out_of=ref_of(id_of(target)),
            messages=moved,
        )
        lines.append(
            f"{merged['from']}: undid your merge into {ref_of(id_of(target))} ({moved} message{'s' * (moved != 1)} back)"
        )
    return list(reversed(lines))
