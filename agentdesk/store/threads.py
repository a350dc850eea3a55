"""Reads about one conversation's messages and audit events, for the domain's rules on it and
the senders' replies to it.

Keyword-only functions taking a Session, like store/queries.py.
"""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session, col, select

from agentdesk.store.models import Event, Message


def latest_event_detail(*, session: Session, conversation_id: int | None, action: str) -> str | None:
    """The detail (JSON text) of the conversation's latest `action` event; None without one.

    `conversation_id` None: the latest of the desk-wide `action` events (IS NULL keeps this on the
    conversation index: few events lack one).
    """
    return session.exec(
        select(Event.detail)
        .where(Event.conversation_id == conversation_id, Event.action == action)
        .order_by(col(Event.id).desc())
        .limit(1)
    ).first()


def latest_inbound_sender(*, session: Session, conversation_id: int) -> str | None:
    """The sender address of the conversation's latest inbound message that has one."""
    return session.exec(
        select(Message.sender_address)
        .where(Message.conversation_id == conversation_id, Message.direction == "inbound", Message.sender_address != "")
        .order_by(col(Message.at).desc(), col(Message.id).desc())
        .limit(1)
    ).first()


def first_inbound(*, session: Session, conversation_id: int) -> Message | None:
    """The conversation's earliest inbound message."""
    return session.exec(
        select(Message)
        .where(Message.conversation_id == conversation_id, Message.direction == "inbound")
        .order_by(col(Message.at), col(Message.id))
    ).first()


def has_other_message(*, session: Session, conversation_id: int, message_id: int) -> bool:
    """Does the conversation hold a message besides `message_id`?"""
    return (
        session.exec(
            select(Message.id).where(Message.conversation_id == conversation_id, Message.id != message_id).limit(1)
        ).first()
        is not None
    )


def has_receipt_since(*, session: Session, conversation_id: int, since: datetime | None) -> bool:
    """Does the conversation hold a receipt (after `since`, when given)?"""
    statement = select(Message.id).where(Message.conversation_id == conversation_id, Message.kind == "receipt")
    if since is not None:
        statement = statement.where(col(Message.at) > since)
    return session.exec(statement.limit(1)).first() is not None


def latest_inbound(*, session: Session, conversation_id: int) -> Message | None:
    """The conversation's latest inbound message, of any kind."""
    return session.exec(
        select(Message)
        .where(Message.conversation_id == conversation_id, Message.direction == "inbound")
        .order_by(col(Message.at).desc(), col(Message.id).desc())
    ).first()


def latest_inbound_message_before(*, session: Session, conversation_id: int, message_id: int) -> Message | None:
    """The latest customer message (kind "message": no bounce, no auto-reply) of the conversation
    stored before `message_id`: what a reply written as `message_id` answers."""
    return session.exec(
        select(Message)
        .where(
            Message.conversation_id == conversation_id,
            Message.direction == "inbound",
            Message.kind == "message",
            col(Message.id) < message_id,
        )
        .order_by(col(Message.at).desc(), col(Message.id).desc())
    ).first()


def latest_thread_key(*, session: Session, conversation_id: int) -> str | None:
    """The provider thread key of the conversation's latest message that has one."""
    return session.exec(
        select(Message.thread_key)
        .where(Message.conversation_id == conversation_id, col(Message.thread_key).is_not(None))
        .order_by(col(Message.id).desc())
    ).first()
