"""Macros: a `[[macro]]` of the config is a named set of steps (status, priority, tags to add or
remove, assignee, snooze; a template to reply with) applied to a conversation as one change.

The steps go through `queue.change`, so each is audited as the change it is; a `macro` event
names the macro that made them. The caller's transaction holds every step of every conversation:
a macro that fails on one of them (a bad tag, a template it cannot fill) leaves all untouched.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlmodel import Session

from agentdesk.domain import audit, clocks, queue
from agentdesk.domain.sla import parse_duration
from agentdesk.errors import InvalidInput
from agentdesk.store.models import Conversation


def find(macros: list[Any], name: str) -> Any:
    """The macro named `name` (config.MacroSettings); `InvalidInput` listing the known ones."""
    for macro in macros:
        if macro.name == name:
            return macro
    known = ", ".join(m.name for m in macros) or "none: add [[macro]] to the config"
    raise InvalidInput(f"no macro named {name!r} (known: {known})")


def changes_of(macro: Any, *, agent: str, now: datetime) -> dict[str, Any]:
    """The macro's steps as `queue.change` arguments."""
    changes: dict[str, Any] = {}
    if macro.status:
        changes["status"] = macro.status
    if macro.priority:
        changes["priority"] = macro.priority
    if macro.add_tags:
        changes["add_tags"] = list(macro.add_tags)
    if macro.remove_tags:
        changes["remove_tags"] = list(macro.remove_tags)
    if macro.assign:
        changes["assignee"] = {"me": agent, "none": None}.get(macro.assign.strip().lower(), macro.assign.strip())
    if macro.snooze:
        changes["snoozed_until"] = now + parse_duration(macro.snooze)
    return changes


def apply(
    session: Session, *, macro: Any, conversation: Conversation, agent: str, now: datetime, policies: clocks.Policies
) -> list[str]:
    """Apply the macro's steps (not its template: the caller replies with it) in the caller's
    transaction; the names of what changed."""
    changed = queue.change(
        session,
        conversation=conversation,
        agent=agent,
        now=now,
        policies=policies,
        **changes_of(macro, agent=agent, now=now),
    )
    audit.record(
        session,
        agent=agent,
        action="macro",
        now=now,
        conversation_id=conversation.id,
        name=macro.name,
        changed=changed,
        template=macro.template or None,
    )
    return changed
