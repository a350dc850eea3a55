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

Email specifics (issue 4): the content hash of a mail ignores the trace headers each mailbox adds
(Received, Delivered-To, …), so the same message delivered to two of our mailboxes is one message
seen twice. A bounce joins the conversation of the message it reports on and marks that reply's
Outbox row failed with the remote server's reason. A copy of our own outbound mail (Cc to
ourselves, a Sent folder that is also imported) is recognised by its Message-ID and not stored
again. `move_message` lets an agent put a misthreaded message in another or a new conversation.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session, col, select

from agentdesk.channels.base import InboundMessage
from agentdesk.config import Settings
from agentdesk.domain import audit, clocks, customers, queue, receipts
from agentdesk.store import queries
from agentdesk.store.models import Attachment, Conversation, Message, MessageRaw, Outbox, ref_of

_SUBJECT_TAG = re.compile(r"\[AD-(\d+)\]")
_REOPENING = ("solved", "closed")


@dataclass(frozen=True)
class Ingested:
    message_id: int
    conversation_id: int
    created_conversation: bool
    duplicate: bool
    thread_reason: str


# Header fields a relay or the receiving mailbox adds: two deliveries of one message differ in
# these and nothing else.
_TRACE_HEADERS = frozenset({
    b"received", b"return-path", b"delivered-to", b"x-original-to", b"envelope-to", b"x-envelope-to",
    b"x-delivered-to", b"x-rcpt-to", b"authentication-results", b"received-spf", b"x-spam-status",
    b"x-spam-score", b"x-spam-level", b"x-spam-flag", b"x-spam-checker-version", b"x-virus-scanned",
    b"x-original-arrival-time", b"arc-seal", b"arc-message-signature", b"arc-authentication-results",
    b"x-ms-exchange-organization-authas", b"x-gm-message-state", b"status", b"x-status", b"x-keywords",
    b"x-uid", b"lines", b"content-length",
})
_HEADER_LINE = re.compile(rb"^([!-9;-~]+)[ \t]*:")


def email_content(raw: bytes) -> bytes:
    """A mail without its trace headers and with LF line ends: what "the same content" means."""
    normalised = raw.replace(b"\r\n", b"\n")
    head, separator, body = normalised.partition(b"\n\n")
    kept: list[bytes] = []
    dropping = False
    for line in head.split(b"\n"):
        if line[:1] in (b" ", b"\t"):
            if not dropping:
                kept.append(line)
            continue
        match = _HEADER_LINE.match(line)
        dropping = bool(match) and match.group(1).lower() in _TRACE_HEADERS
        if not dropping:
            kept.append(line)
    return b"\n".join(kept) + separator + body


def content_hash(message: InboundMessage) -> str:
    """What makes two messages with the same external id the same message (DESIGN: external ids)."""
    digest = hashlib.sha256()
    if message.raw and message.channel == "email":
        digest.update(email_content(message.raw))
    elif message.raw:
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


def _bounced(session: Session, message: InboundMessage) -> Message | None:
    """For a bounce: the message of ours (or anyone's) it reports on, when we know it."""
    if message.kind != "bounce":
        return None
    original = (message.headers.get("x-bounced-message-id") or "").strip()
    if not original:
        return None
    statement = (
        select(Message).where(Message.external_id == original)
        .order_by(col(Message.direction) != "outbound", col(Message.id).desc())
    )
    return session.exec(statement).first()


def thread_for(session: Session, message: InboundMessage, customer_id: int) -> tuple[Conversation | None, str]:
    """The existing conversation this message belongs to, and why; (None, "new") for a new one."""
    bounced = _bounced(session, message)
    if bounced is not None:
        return session.get(Conversation, bounced.conversation_id), "bounce"
    if message.external_id:
        # The same Message-ID with other content (a list added a footer, a server rewrote a
        # header): another message, but of the same conversation — when the sender is the same.
        same = _find_by_external_ids(session, [message.external_id])
        if same is not None:
            conversation = session.get(Conversation, same.conversation_id)
            if conversation is not None and _is_participant(session, conversation, customer_id, message.sender_address):
                return conversation, "same-message-id"
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
    session: Session, message: InboundMessage, *, policies: clocks.Policies, now: datetime,
    settings: Settings | None = None,
) -> Ingested:
    """Store one inbound message in the caller's transaction (the caller commits with its checkpoint).

    With `settings`, the automatic receipt is decided here too (domain/receipts.py: configured per
    source, first message or after hours, loop-safe, rate-limited); without, none is sent.
    """
    # Autoflush would write the pending rows before each of the lookups below (half a dozen
    # flushes a message); one flush at the end keeps every lookup of the next message correct.
    with session.no_autoflush:
        result = _ingest(session, message, policies=policies, now=now, settings=settings)
    session.flush()
    return result


def _ingest(
    session: Session, message: InboundMessage, *, policies: clocks.Policies, now: datetime, settings: Settings | None
) -> Ingested:
    digest = content_hash(message)
    if message.external_id:
        existing = session.exec(
            select(Message).where(Message.external_id == message.external_id, Message.content_hash == digest)
        ).first()
        if existing is None and message.channel == "email":
            # Our own reply coming back (we were in Cc, the Sent folder is imported): the outbound
            # message with that Message-ID is already the record of it.
            existing = session.exec(
                select(Message).where(Message.external_id == message.external_id, Message.direction == "outbound")
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
    if reason == "bounce":
        _mark_bounced(session, message, stored, now=now)
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
    if settings is not None:
        receipts.maybe_queue_receipt(session, conversation=conversation, message=stored, settings=settings,
                                     policies=policies, now=now, inbound=message)
    return Ingested(stored.id, conversation.id, created, False, reason)


def _mark_bounced(session: Session, message: InboundMessage, bounce: Message, *, now: datetime) -> None:
    """The reply a bounce reports on was not delivered: say so on its Outbox row, with the reason."""
    original = _bounced(session, message)
    if original is None or original.direction != "outbound":
        return
    outbox = session.exec(select(Outbox).where(Outbox.message_id == original.id)).first()
    if outbox is None:
        return
    reason = message.headers.get("x-bounce-reason") or message.subject or "the recipient's server returned it"
    outbox.state = "failed"
    outbox.last_error = f"bounced: {reason}"[:2_000]
    outbox.next_attempt_at = None
    session.add(outbox)
    audit.record(session, agent=audit.SYSTEM, action="bounced", now=now, conversation_id=original.conversation_id,
                 message_id=original.id, bounce_message_id=bounce.id, reason=outbox.last_error)


def move_message(
    session: Session, *, message_id: int, to_conversation_id: int | None, agent: str, now: datetime,
    policies: clocks.Policies,
) -> Conversation:
    """Put a message in another conversation, or in a new one when `to_conversation_id` is None.

    For misthreaded mail: the message keeps its content and times; both conversations' waiting
    times and SLA fields are recomputed; the move is audited on both and recorded as the
    message's thread reason ("moved by <agent>"). Returns the conversation it is now in.
    """
    from agentdesk.errors import InvalidInput, NotFound

    message = session.get(Message, message_id)
    if message is None:
        raise NotFound(f"no message {message_id}")
    if message.direction == "note":
        raise InvalidInput("a note belongs to its conversation; copy its text instead of moving it")
    source = session.get(Conversation, message.conversation_id)
    if to_conversation_id is not None:
        target = session.get(Conversation, to_conversation_id)
        if target is None:
            raise NotFound(f"no conversation {ref_of(to_conversation_id)}")
        if target.id == source.id:
            raise InvalidInput(f"the message is already in {ref_of(target.id)}")
    else:
        customer_id = source.customer_id
        if message.direction == "inbound" and message.sender_address:
            kind = customers.IDENTITY_KIND.get(source.channel, source.channel)
            owner = queries.customer_by_identity(session=session, kind=kind, address=message.sender_address)
            if owner is not None:
                customer_id = owner.id
        target = Conversation(
            channel=source.channel, source=message.source or source.source,
            subject=message.subject or _first_line(message.body_text), customer_id=customer_id, status="new",
            created_at=message.at, updated_at=now,
        )
        session.add(target)
        session.flush()
        audit.record(session, agent=agent, action="created", now=now, conversation_id=target.id,
                     channel=target.channel, source=target.source, from_message_id=message.id)
    message.conversation_id = target.id
    message.thread_reason = f"moved by {agent}"
    session.add(message)
    session.flush()
    audit.record(session, agent=agent, action="move_message", now=now, conversation_id=source.id,
                 message_id=message.id, to=ref_of(target.id))
    audit.record(session, agent=agent, action="move_message", now=now, conversation_id=target.id,
                 message_id=message.id, **{"from": ref_of(source.id)})
    for conversation in (source, target):
        _recompute_waiting(session, conversation)
        queue.touch(session, conversation=conversation, policies=policies, now=now)
    return target


def _recompute_waiting(session: Session, conversation: Conversation) -> None:
    """last_customer_message_at and waiting_since from the messages the conversation now holds."""
    messages = session.exec(
        select(Message).where(Message.conversation_id == conversation.id).order_by(col(Message.at), col(Message.id))
    ).all()
    last_reply = max((m.at for m in messages if m.direction == "outbound" and m.kind == "message"), default=None)
    customer_messages = [m for m in messages if m.direction == "inbound" and m.kind == "message"]
    conversation.last_customer_message_at = max((m.at for m in customer_messages), default=None)
    waiting = [m.at for m in customer_messages if last_reply is None or m.at > last_reply]
    conversation.waiting_since = min(waiting) if waiting else None
    conversation.last_agent_reply_at = last_reply


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

