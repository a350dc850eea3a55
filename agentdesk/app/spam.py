"""Spam and blocked senders, for both front ends (`agentdesk spam|block|unblock|blocked`, the
TUI's spam and block keys). Each returns a plain document of what it did, for `--json`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from agentdesk.app.desk import Desk
from agentdesk.domain import queue as queue_service
from agentdesk.domain import spam as spam_service
from agentdesk.store import queries
from agentdesk.store.models import ref_of


def mark_spam(desk: Desk, refs: Sequence[int | str], *, undo: bool = False) -> list[dict[str, Any]]:
    """Mark each conversation as spam (or, `undo`, put it back where it was); one transaction."""
    done = []
    with desk.writing, desk.write() as session:
        now = desk.now()
        queue_service.lock_in_order(session, refs)
        for ref in refs:
            typed = ref_of(ref) if isinstance(ref, int) else ref
            conversation = queue_service.load_for_update(session, typed)
            assert conversation.id is not None, "a stored conversation"
            if undo:
                view = spam_service.unmark_spam(
                    session, conversation=conversation, agent=desk.agent, now=now, policies=desk.policies
                )
                done.append(
                    {
                        "ref": ref_of(conversation.id),
                        "action": "unspam",
                        "changed": bool(view),
                        "view": view or _view_of(conversation),
                    }
                )
            else:
                changed = spam_service.mark_spam(
                    session, conversation=conversation, agent=desk.agent, now=now, policies=desk.policies
                )
                done.append({"ref": ref_of(conversation.id), "action": "spam", "changed": changed, "view": "spam"})
        session.commit()
    return done


def _view_of(conversation) -> str:
    return conversation.aside or "queue"


def block(desk: Desk, pattern: str) -> dict[str, Any]:
    with desk.writing, desk.write() as session:
        normal = spam_service.block_pattern(pattern)
        added = spam_service.block(session, pattern=normal, agent=desk.agent, now=desk.now())
        session.commit()
    return {"action": "block", "pattern": normal, "changed": added}


def unblock(desk: Desk, pattern: str) -> dict[str, Any]:
    with desk.writing, desk.write() as session:
        normal = spam_service.block_pattern(pattern)
        spam_service.unblock(session, pattern=normal, agent=desk.agent, now=desk.now())
        session.commit()
    return {"action": "unblock", "pattern": normal, "changed": True}


def block_sender(desk: Desk, ref: int | str, *, whole_domain: bool = False) -> dict[str, Any]:
    """From a conversation (the TUI's block key): block its sender, or the sender's whole domain,
    and mark the conversation itself as spam; one transaction."""
    with desk.writing, desk.write() as session:
        now = desk.now()
        conversation = queue_service.load_for_update(session, ref_of(ref) if isinstance(ref, int) else ref)
        assert conversation.id is not None, "a stored conversation"
        address = spam_service.sender_of(session, conversation)
        pattern = "@" + address.rpartition("@")[2] if whole_domain else address
        added = spam_service.block(session, pattern=pattern, agent=desk.agent, now=now)
        spam_service.mark_spam(session, conversation=conversation, agent=desk.agent, now=now, policies=desk.policies)
        session.commit()
    return {
        "action": "block",
        "pattern": spam_service.block_pattern(pattern),
        "changed": added,
        "ref": ref_of(conversation.id),
        "view": "spam",
    }


def blocked(desk: Desk) -> list[dict[str, Any]]:
    with desk.read() as session:
        return [
            {"pattern": b.pattern, "agent": b.agent, "created_at": b.created_at.isoformat()}
            for b in queries.blocked_senders(session=session)
        ]
