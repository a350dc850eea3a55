"""Mending mistakes: undo this agent's last change to a conversation (`agentdesk undo REF`, ctrl+z
in the TUI), move a misthreaded message to another conversation or a new one (`agentdesk move`)."""

from __future__ import annotations

from agentdesk.app.conversations import Ref, typed_ref
from agentdesk.app.desk import Desk
from agentdesk.domain import queue as queue_service


def undo(desk: Desk, ref: Ref) -> list[str]:
    """Undo this agent's latest status, priority, assignment, tag, snooze, spam or merge change of
    the conversation (a conversation merge from either side, or a customer merge that touched it),
    in one transaction; `errors.Conflict` when anything changed since (see `domain.undo`),
    `errors.InvalidInput` when there is nothing of this agent's to undo."""
    from agentdesk.domain import undo as undo_rules

    with desk.writing, desk.write() as session:
        conversation = queue_service.load_for_update(session, typed_ref(ref))
        done = undo_rules.undo_last(
            session, conversation=conversation, agent=desk.agent, now=desk.now(), policies=desk.policies
        )
        session.commit()
    return done


def move(desk: Desk, ref: Ref, number: int, to: str) -> str:
    """Put message `number` of the conversation (as `show` numbers them) in the conversation `to`
    names, or in a new one when `to` is "new" (a misthreaded message, split off); what was done."""
    from agentdesk.app.conversations import reference
    from agentdesk.errors import InvalidInput
    from agentdesk.ingest import move_message
    from agentdesk.store import queries
    from agentdesk.store.models import id_of, ref_of

    target = to.strip()
    with desk.writing, desk.write() as session:
        conversation = queue_service.load_for_update(session, typed_ref(ref))
        messages = queries.thread(session=session, conversation_id=id_of(conversation))
        if not 1 <= number <= len(messages):
            raise InvalidInput(f"{reference(ref)} has {len(messages)} message(s); there is no message {number}")
        to_id = None if target.lower() == "new" else queue_service.load_for_update(session, target).id
        moved_to = move_message(
            session,
            message_id=id_of(messages[number - 1]),
            to_conversation_id=to_id,
            agent=desk.agent,
            now=desk.now(),
            policies=desk.policies,
        )
        session.commit()
        where = ref_of(id_of(moved_to))
    return f"{reference(ref)} message {number} moved to {where}" + (" (new)" if to_id is None else "")
