"""Spam and blocked senders: conversations set aside, and the senders whose mail is.

A conversation marked as spam leaves every queue view for the `spam` view (`conversation.aside`)
and its SLA clocks stop (`clocks`: no policy runs for a conversation set aside); undoing it puts
it back where it was (the queue, or the bulk or system view it came from) and its clocks start
again from its facts. A blocked sender is an address or a whole domain ("@example.com"); ingest
puts their future mail straight into `spam` (no receipt, no clock). Every step is audited.
"""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session

from agentdesk.domain import audit, clocks
from agentdesk.domain import queue as queue_service
from agentdesk.errors import InvalidInput, NotFound
from agentdesk.store import threads
from agentdesk.store.models import BlockedSender, Conversation, ref_of

SPAM = "spam"


def mark_spam(
    session: Session, *, conversation: Conversation, agent: str, now: datetime, policies: clocks.Policies
) -> bool:
    """Set the conversation aside as spam; False when it already was."""
    if conversation.aside == SPAM:
        return False
    audit.record(
        session, agent=agent, action="spam", now=now, conversation_id=conversation.id, old=conversation.aside or "queue"
    )
    conversation.aside = SPAM
    queue_service.touch(session, conversation=conversation, policies=policies, now=now)
    return True


def unmark_spam(
    session: Session, *, conversation: Conversation, agent: str, now: datetime, policies: clocks.Policies
) -> str:
    """Undo `mark_spam`: back to the view it was in before (its last `spam` event says which).
    The view it is in now ("queue", "bulk", "system"); "" when it was not spam."""
    if conversation.aside != SPAM:
        return ""
    import json

    last = threads.latest_event_detail(session=session, conversation_id=conversation.id, action="spam")
    before = json.loads(last or "{}").get("old", "queue")
    conversation.aside = before if before in ("bulk", "system") else ""
    audit.record(
        session,
        agent=agent,
        action="unspam",
        now=now,
        conversation_id=conversation.id,
        new=conversation.aside or "queue",
    )
    queue_service.touch(session, conversation=conversation, policies=policies, now=now)
    return conversation.aside or "queue"


def block_pattern(text: str) -> str:
    """An address ("spam@example.com") or a whole domain ("@example.com"), lower-cased; refuses
    anything else, saying what it expects."""
    pattern = text.strip().lower().strip("<>")
    local, at, domain = pattern.rpartition("@")
    if not at or not domain or "." not in domain or any(c.isspace() for c in pattern) or "@" in local:
        raise InvalidInput(
            f"{text!r} is not an address or a domain; block an address (spam@example.com) "
            "or a whole domain (@example.com)"
        )
    return pattern


def block(session: Session, *, pattern: str, agent: str, now: datetime) -> bool:
    """Block an address or domain; False when it already was."""
    pattern = block_pattern(pattern)
    if session.get(BlockedSender, pattern) is not None:
        return False
    session.add(BlockedSender(pattern=pattern, agent=agent, created_at=now))
    audit.record(session, agent=agent, action="block", now=now, pattern=pattern)
    return True


def unblock(session: Session, *, pattern: str, agent: str, now: datetime) -> None:
    pattern = block_pattern(pattern)
    found = session.get(BlockedSender, pattern)
    if found is None:
        raise NotFound(f"{pattern} is not blocked; `agentdesk blocked` lists what is")
    session.delete(found)
    audit.record(session, agent=agent, action="unblock", now=now, pattern=pattern)


def sender_of(session: Session, conversation: Conversation) -> str:
    """The address of the conversation's latest customer message (what blocking it blocks)."""
    assert conversation.id is not None, "a stored conversation"
    address = threads.latest_inbound_sender(session=session, conversation_id=conversation.id)
    if not address or "@" not in address:
        raise InvalidInput(f"{ref_of(conversation.id)} has no sender email address to block")
    return address
