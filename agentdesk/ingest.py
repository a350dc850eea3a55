"""InboundMessage -> customer -> conversation -> store, idempotently.

Every channel hands its records to `ingest_message` inside the transaction that also advances the
channel's checkpoint (IMAP last UID, spool file move), so a crash replays a message instead of
losing it, and replaying it finds it already stored instead of doubling it.

Threading, in order: In-Reply-To and References against every Message-ID we know (inbound and our
own outbound); the provider's thread key seen on an earlier message of the same source; the
channel's conversation hint (our ref); our `[AD-n]` subject tag. A ref from a hint or a subject
is accepted only when the sender is already a participant of that conversation (a stranger
quoting a ref must not join it). Else a new conversation. The reason is stored on the message and
shown in the thread.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session, col, select

from agentdesk.channels.base import InboundMessage
from agentdesk.domain import audit, clocks, customers, queue
from agentdesk.store.models import Attachment, Conversation, Message, MessageRaw

_SUBJECT_TAG = re.compile(r"\[AD-(\d+)\]")
_REOPENING = ("solved", "closed")


@dataclass(frozen=True)
class Ingested:
    message_id: int
    conversation_id: int
    created_conversation: bool
    duplicate: bool
    thread_reason: str


def content_hash(message: InboundMessage) -> str:
    """What makes two messages with the same external id the same message (DESIGN: external ids)."""
    digest = hashlib.sha256()
    if message.raw:
        digest.update(message.raw)
    else:
        for part in (message.sender_address, message.subject, message.body_text, message.received_at.isoformat()):
            digest.update(part.encode("utf-8", "surrogatepass"))
            digest.update(b"\0")
    return digest.hexdigest()


def _find_by_external_ids(session: Session, ids: Iterable[str]) -> Message | None:
    ids = [i for i in ids if i]
    if not ids:
        return None
    statement = select(Message).where(col(Message.external_id).in_(ids)).order_by(col(Message.id).desc())
    return session.exec(statement).first()


def _is_participant(session: Session, conversation: Conversation, customer_id: int, address: str) -> bool:
    if conversation.customer_id == customer_id:
        return True
    statement = select(Message.id).where(
        Message.conversation_id == conversation.id, Message.sender_address == address
    )
    return session.exec(statement.limit(1)).first() is not None


def thread_for(session: Session, message: InboundMessage, customer_id: int) -> tuple[Conversation | None, str]:
    """The existing conversation this message belongs to, and why; (None, "new") for a new one."""
    replied = _find_by_external_ids(session, [message.in_reply_to])
    if replied is not None:
        return session.get(Conversation, replied.conversation_id), "in-reply-to"
    referenced = _find_by_external_ids(session, reversed(message.references))
    if referenced is not None:
        return session.get(Conversation, referenced.conversation_id), "references"
    if message.thread_key:
        keyed = session.exec(
            select(Message).where(Message.source == message.source, Message.thread_key == message.thread_key)
            .order_by(col(Message.id).desc())
        ).first()
        if keyed is not None:
            conversation = session.get(Conversation, keyed.conversation_id)
            # A provider thread that went quiet after we solved it starts a new conversation.
            if conversation is not None and conversation.status != "closed":
                return conversation, "thread-key"
    hint = message.conversation_hint.strip().upper().removeprefix("AD-")
    if hint.isdigit():
        conversation = session.get(Conversation, int(hint))
        if conversation is not None and _is_participant(session, conversation, customer_id, message.sender_address):
            return conversation, "hint-ref"
    for number in _SUBJECT_TAG.findall(message.subject):
        conversation = session.get(Conversation, int(number))
        if conversation is not None and _is_participant(session, conversation, customer_id, message.sender_address):
            return conversation, "subject-tag"
    return None, "new"


def ingest_message(
    session: Session, message: InboundMessage, *, policies: clocks.Policies, now: datetime
) -> Ingested:
    """Store one inbound message in the caller's transaction (the caller commits with its checkpoint)."""
    digest = content_hash(message)
    if message.external_id:
        existing = session.exec(
            select(Message).where(Message.external_id == message.external_id, Message.content_hash == digest)
        ).first()
        if existing is not None:
            return Ingested(existing.id, existing.conversation_id, False, True, existing.thread_reason)

    kind = customers.IDENTITY_KIND.get(message.channel, message.channel)
    customer = customers.find_or_create(
        session, kind=kind, address=message.sender_address, name=message.sender_name, now=now
    )
    conversation, reason = thread_for(session, message, customer.id)
    # A message's time is the channel's own, never later than when we saw it (DESIGN).
    at = min(message.received_at, now)
    created = conversation is None
    if created:
        conversation = Conversation(
            channel=message.channel, source=message.source, subject=message.subject or _first_line(message.body_text),
            customer_id=customer.id, status="new", created_at=at, updated_at=now,
        )
        session.add(conversation)
        session.flush()
        audit.record(session, agent=audit.SYSTEM, action="created", now=now, conversation_id=conversation.id,
                     channel=message.channel, source=message.source)

    stored = Message(
        conversation_id=conversation.id, direction="inbound", kind=message.kind, bulk=message.bulk,
        author=message.sender_name or message.sender_address, sender_address=customers.normalise_address(kind, message.sender_address),
        subject=message.subject, body_text=message.body_text, body_html_text=message.body_html_text,
        at=at, ingested_at=now, source=message.source, external_id=message.external_id or None,
        content_hash=digest, in_reply_to=message.in_reply_to, references=" ".join(message.references),
        thread_reason=reason, parse_error=message.parse_error, thread_key=message.thread_key or None,
    )
    session.add(stored)
    session.flush()
    if message.raw:
        session.add(MessageRaw(message_id=stored.id, raw=message.raw))
    for attachment in message.attachments:
        session.add(Attachment(
            message_id=stored.id, filename=attachment.filename, content_type=attachment.content_type,
            size=len(attachment.data), storage_key=hashlib.sha256(attachment.data).hexdigest(),
        ))

    # Automatic mail (auto-replies, bounces) never makes the customer "waiting" on us.
    if message.kind == "message":
        conversation.last_customer_message_at = max(at, conversation.last_customer_message_at or at)
        if conversation.waiting_since is None or at < conversation.waiting_since:
            conversation.waiting_since = at
        if conversation.status in _REOPENING:
            queue.change(session, conversation=conversation, agent=audit.SYSTEM, now=now, policies=policies,
                         status="open")
    queue.touch(session, conversation=conversation, policies=policies, now=now)
    return Ingested(stored.id, conversation.id, created, False, reason)


def _first_line(text: str) -> str:
    for line in text.splitlines():
        if line.strip():
            return line.strip()[:80]
    return "(no subject)"


def ingest_all(
    session_factory, messages: Iterable[InboundMessage], *, policies: clocks.Policies, now_fn, batch: int = 200
) -> Iterator[Ingested]:
    """Ingest many messages, committing every `batch`; yields each result (for progress)."""
    session = session_factory()
    try:
        pending = 0
        for message in messages:
            yield ingest_message(session, message, policies=policies, now=now_fn())
            pending += 1
            if pending >= batch:
                session.commit()
                pending = 0
        session.commit()
    finally:
        session.close()

