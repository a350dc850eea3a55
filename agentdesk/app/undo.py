"""Undo: this agent's last change to a conversation (`agentdesk undo REF`, ctrl+z in the TUI)."""

from __future__ import annotations

from agentdesk.app.conversations import Ref, _typed
from agentdesk.app.desk import Desk
from agentdesk.domain import queue as queue_service


def undo(desk: Desk, ref: Ref) -> list[str]:
    """Undo this agent's latest status, priority, assignment, tag, snooze or spam change of the
    conversation, in one transaction; `errors.Conflict` when anyone changed it since (see
    `domain.undo`), `errors.InvalidInput` when there is nothing of this agent's to undo."""
    from agentdesk.domain import undo as undo_rules

    with desk.writing, desk.write() as session:
        conversation = queue_service.load_for_update(session, _typed(ref))
        done = undo_rules.undo_last(session, conversation=conversation, agent=desk.agent, now=desk.now(),
                                    policies=desk.policies)
        session.commit()
    return done
