"""Putting a misthreaded message in another conversation, or in a new one."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlmodel import Session

from agentdesk.domain import audit, clocks, customers, queue
from agentdesk.errors import InvalidInput, NotFound
from agentdesk.ingest.records import first_line
from agentdesk.store import queries
from agentdesk.store.models import Conversation, Message, id_of, ref_of


def move_message(
    session: Session,
    *,
    message_id: int,
    to_conversation_id: int | None,
    agent: str,
    now: datetime,
    policies: clocks.Policies,
) -> Conversation:
    """Put a message in another conversation, or in a new one when `to_conversation_id` is None.

    For misthreaded mail: the message keeps its content and times; both conversations' waiting
    times and SLA fields are recomputed; the move is audited on both and recorded as the
    message's thread reason ("moved by <agent>"). Returns the conversation it is now in.
    """
    message = session.get(Message, message_id)
    if message is None:
        raise NotFound(f"no message {message_id}")
    if message.direction == "note":
        raise InvalidInput("a note belongs to its conversation; copy its text instead of moving it")
    source = session.get(Conversation, message.conversation_id)
    assert source is not None, "a message's conversation_id is a foreign key"
    if to_conversation_id is not None:
        target = session.get(Conversation, to_conversation_id)
        if target is None:
            raise NotFound(f"no conversation {ref_of(to_conversation_id)}")
        if target.id == source.id:
            raise InvalidInput(f"the message is already in {ref_of(id_of(target))}")
    else:
        customer_id = source.customer_id
        if message.direction == "inbound" and message.sender_address:
            kind = customers.IDENTITY_KIND.get(source.channel, source.channel)
            owner = queries.customer_by_identity(session=session, kind=kind, address=message.sender_address)
            if owner is not None:
                customer_id = id_of(owner)
        target = Conversation(
            channel=source.channel,
            source=message.source or source.source,
            subject=message.subject or first_line(message.body_text),
            customer_id=customer_id,
            status="new",
            created_at=message.at,
            updated_at=now,
        )
        session.add(target)
        session.flush()
        audit.record(
            session,
            agent=agent,
            action="created",
            now=now,
            conversation_id=target.id,
            channel=target.channel,
            source=target.source,
            from_message_id=message.id,
        )
    message.conversation_id = id_of(target)
    message.thread_reason = f"moved by {agent}"
    session.add(message)
    session.flush()
    audit.record(
        session,
        agent=agent,
        action="move_message",
        now=now,
        conversation_id=source.id,
        message_id=message.id,
        to=ref_of(id_of(target)),
    )
    moved_from: dict[str, Any] = {"from": ref_of(id_of(source))}  # "from" is a Python keyword
    audit.record(
        session,
        agent=agent,
        action="move_message",
        now=now,
        conversation_id=target.id,
        message_id=message.id,
        **moved_from,
    )
    for conversation in (source, target):
        _recompute_waiting(session, conversation)
        queue.touch(session, conversation=conversation, policies=policies, now=now)
    return target


def _recompute_waiting(session: Session, conversation: Conversation) -> None:
    """last_customer_message_at and waiting_since from the messages the conversation now holds."""
    messages = queries.thread(session=session, conversation_id=id_of(conversation))
    last_reply = max((m.at for m in messages if m.direction == "outbound" and m.kind == "message"), default=None)
    customer_messages = [m for m in messages if m.direction == "inbound" and m.kind == "message"]
    conversation.last_customer_message_at = max((m.at for m in customer_messages), default=None)
    waiting = [m.at for m in customer_messages if last_reply is None or m.at > last_reply]
    conversation.waiting_since = min(waiting) if waiting else None
    conversation.last_agent_reply_at = last_reply
