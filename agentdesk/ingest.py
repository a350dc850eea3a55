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
import itertools
import json
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlmodel import Session, col, select

from agentdesk.channels.base import InboundMessage
from agentdesk.channels.email.content import email_content, email_content_hash  # noqa: F401
from agentdesk.config import Settings
from agentdesk.domain import audit, clocks, customers, queue, receipts
from agentdesk.store import queries
from agentdesk.errors import InvalidInput
from agentdesk.store.models import (
    Attachment, Conversation, Customer, Event, Identity, Message, MessageRaw, Outbox, SlaClockEvent, ref_of, sqlite_text,
)

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
    if message.content_hash:  # computed by the parser (a sync's parser processes), from `raw`
        return message.content_hash
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
        conversation = _by_ref(session, int(hint), customer_id, message.sender_address)
        if conversation is not None:
            return conversation, "hint-ref"
    for number in _SUBJECT_TAG.findall(message.subject):
        conversation = _by_ref(session, int(number), customer_id, message.sender_address)
        if conversation is not None:
            return conversation, "subject-tag"
    return None, "new"


def _by_ref(session: Session, conversation_id: int, customer_id: int, address: str) -> Conversation | None:
    """The conversation a ref (hint or subject tag) names, when the sender is a participant of it.

    A conversation merged into another lives on in that one (and its messages moved there): the
    ref leads to the end of the merge chain, and a participant of the named conversation or of the
    one it ended up in is accepted.
    """
    named = session.get(Conversation, conversation_id)
    if named is None:
        return None
    conversation, seen = named, {named.id}
    while conversation.merged_into_id is not None and conversation.merged_into_id not in seen:
        target = session.get(Conversation, conversation.merged_into_id)
        if target is None:
            break
        conversation = target
        seen.add(conversation.id)
    if named.customer_id == customer_id or _is_participant(session, conversation, customer_id, address):
        return conversation
    return None


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



# --- many messages at once ---------------------------------------------------------------------
#
# A first sync of a mailbox or a full spool ingests thousands of messages. `ingest_message` asks
# the database half a dozen questions per message and writes through the ORM; `ingest_batch`
# answers the same questions for a whole chunk with a few IN queries, keeps what the chunk itself
# adds in memory, and writes with one multi-row INSERT per table. Each conversation's SLA clocks are
# refreshed once per chunk rather than once per message: its clocks follow the conversation's
# facts (created_at, waiting_since, …), which the chunk's last message leaves as the per-message
# path would, so the same events are recorded. Anything unusual (a bounce, a Message-ID we know
# with other content, a hint or subject tag to check, a reopened conversation, a receipt to
# decide) writes what is pending and takes `_ingest`, the per-message path, for that message.

_IN_CHUNK = 400  # values per IN (…): far below every backend's limit on bound parameters


@dataclass(eq=False)
class _NewCustomer:
    kind: str
    address: str
    name: str
    id: int | None = None


@dataclass(eq=False)
class _Known:
    """A message already stored or added by this batch, as threading and dedupe need it."""

    id: int | None
    conversation: object  # int (a stored conversation's id) or a _NewConversation
    content_hash: str | None
    direction: str
    thread_reason: str
    pending: _PendingMessage | None = None
    sequence: int = field(default_factory=itertools.count().__next__)

    def message_id(self) -> int:
        return self.pending.id if self.pending is not None else self.id

    def conversation_id(self) -> int:
        return _conversation_id(self.conversation)


class _NewConversation:
    """A conversation this batch creates: the attributes `clocks.refresh_rows` reads and writes."""

    def __init__(self, message: InboundMessage, customer: object, at: datetime, now: datetime):
        self.id: int | None = None
        self.customer = customer
        self.channel = message.channel
        self.source = message.source
        self.subject = message.subject or _first_line(message.body_text)
        self.status = "new"
        self.priority = "normal"
        self.assignee = None
        self.snoozed_until = None
        self.created_at = at
        self.updated_at = now
        self.solved_at = None
        self.first_responded_at = None
        self.last_agent_reply_at = None
        self.last_customer_message_at = None
        self.waiting_since = None
        self.merged_into_id = None
        self.version = 1
        self.opening: object = None  # sla.Opening computed ahead (the sync's parsers), if any
        # Written by clocks.refresh_rows.
        self.sla_policy = ""
        self.first_response_due = self.next_response_due = self.periodic_update_due = None
        self.resolution_due = self.warning_at = None
        self.queue_due = self.queue_wait = None


@dataclass(eq=False)
class _PendingMessage:
    row: dict
    conversation: object
    message: InboundMessage
    created: bool
    id: int | None = None


def _conversation_id(conversation: object) -> int:
    return conversation if isinstance(conversation, int) else conversation.id


class _Batch:
    def __init__(self, session: Session, messages: list[InboundMessage], *, policies: clocks.Policies,
                 now: datetime, settings: Settings | None):
        self.session = session
        self.policies = policies
        self.now = now
        self.settings = settings
        self.known: dict[str, list[_Known]] = {}
        self.thread_keys: dict[tuple[str, str], _Known] = {}
        self.identities: dict[tuple[str, str], object] = {}  # -> (id, name, tier) | _NewCustomer | None
        self.conversations: dict[int, Conversation] = {}
        self._reset_pending()
        self._prefetch(messages)

    def _reset_pending(self) -> None:
        self.new_customers: list[_NewCustomer] = []
        self.new_conversations: list[_NewConversation] = []
        self.touched: dict[int, Conversation] = {}
        self.pending: list[_PendingMessage] = []
        self.events: list[tuple[str, dict, object, object]] = []  # (action, detail, conversation, customer)
        # The first messages of new conversations whose source sends receipts: decided once written.
        self.receipts: list[_PendingMessage] = []

    # -- what the database already knows, for the whole chunk ------------------------------------

    def _prefetch(self, messages: list[InboundMessage]) -> None:
        session = self.session
        ids = set()
        for message in messages:
            ids.update(filter(None, (message.external_id, message.in_reply_to, *message.references)))
        for part in _parts(sorted(ids)):
            rows = session.exec(
                select(Message.id, Message.conversation_id, Message.external_id, Message.content_hash,
                       Message.direction, Message.thread_reason)
                .where(col(Message.external_id).in_(part))
            )
            for row in rows:
                self.known.setdefault(row[2], []).append(_Known(row[0], row[1], row[3], row[4], row[5]))
        for found in self.known.values():
            found.sort(key=lambda known: known.id)
        keys = {(m.source, m.thread_key) for m in messages if m.thread_key}
        for source in {source for source, _ in keys}:
            wanted = sorted(key for s, key in keys if s == source)
            for part in _parts(wanted):
                rows = session.exec(
                    select(Message.id, Message.conversation_id, Message.thread_key, Message.thread_reason)
                    .where(Message.source == source, col(Message.thread_key).in_(part))
                )
                for row in rows:
                    current = self.thread_keys.get((source, row[2]))
                    if current is None or current.id < row[0]:
                        self.thread_keys[(source, row[2])] = _Known(row[0], row[1], None, "inbound", row[3])
        conversation_ids = {k.conversation for found in self.known.values() for k in found}
        conversation_ids.update(k.conversation for k in self.thread_keys.values())
        for part in _parts(sorted(conversation_ids)):
            for conversation in session.exec(select(Conversation).where(col(Conversation.id).in_(part))):
                self.conversations[conversation.id] = conversation
        addresses: dict[str, set[str]] = {}
        for message in messages:
            kind = customers.IDENTITY_KIND.get(message.channel, message.channel)
            address = customers.normalise_address(kind, message.sender_address)
            addresses.setdefault(kind, set()).add(address)
            self.identities.setdefault((kind, address), None)
        for kind, wanted in addresses.items():
            for part in _parts(sorted(wanted)):
                rows = session.exec(
                    select(Identity.address, Customer.id, Customer.name, Customer.tier)
                    .join(Customer, col(Identity.customer_id) == col(Customer.id))
                    .where(Identity.kind == kind, col(Identity.address).in_(part))
                )
                for address, customer_id, name, tier in rows:
                    self.identities[(kind, address)] = (customer_id, name, tier)

    def _conversation(self, conversation: object) -> object:
        """The stored conversation (loaded once) or the batch's new one."""
        if isinstance(conversation, _NewConversation):
            if conversation.id is None:
                return conversation
            conversation = conversation.id  # written already: changes now go through the ORM
        if not isinstance(conversation, int):
            return conversation
        found = self.conversations.get(conversation)
        if found is None:
            found = self.session.get(Conversation, conversation)
            if found is not None:
                self.conversations[conversation] = found
        return found

    # -- one message ------------------------------------------------------------------------------

    def add(self, message: InboundMessage, opening: object = None) -> Callable[[], Ingested]:
        digest = content_hash(message)
        external_id = message.external_id
        known = self.known.get(external_id, []) if external_id else []
        for candidate in known:
            if candidate.content_hash == digest:
                return self._duplicate(candidate)
        if message.channel == "email":
            for candidate in known:
                if candidate.direction == "outbound":
                    return self._duplicate(candidate)
        if known or message.kind == "bounce":
            return self._slow(message, digest)
        receipt = self._receipt_channel(message)
        kind = customers.IDENTITY_KIND.get(message.channel, message.channel)
        address = customers.normalise_address(kind, message.sender_address)
        if not address:
            raise InvalidInput(f"an empty {kind} address cannot identify a customer")

        reason, found = self._thread(message)
        if found is None and reason == "check":
            return self._slow(message, digest)
        conversation = self._conversation(found.conversation) if found is not None else None
        if found is not None and conversation is None:
            return self._slow(message, digest)
        if found is not None and receipt is not None and getattr(receipt, "receipt_after_hours", False):
            return self._slow(message, digest)  # a receipt out of hours: decided with the message
        if conversation is not None and not isinstance(conversation, _NewConversation) \
                and message.kind == "message" and conversation.status in _REOPENING:
            return self._slow(message, digest)

        customer = self._customer(kind, address, message.sender_name)
        at = min(message.received_at, self.now)
        created = conversation is None
        if created:
            conversation = _NewConversation(message, customer, at, self.now)
            conversation.opening = opening
            self.new_conversations.append(conversation)
            self.events.append(("created", {"channel": message.channel, "source": message.source}, conversation, None))
        elif not isinstance(conversation, _NewConversation):
            self.touched[conversation.id] = conversation
        row = dict(
            direction="inbound", kind=message.kind, bulk=message.bulk, author_login=None,
            author=message.sender_name or message.sender_address, sender_address=address,
            subject=message.subject, body_text=message.body_text, body_html_text=message.body_html_text,
            at=at, ingested_at=self.now, source=message.source, external_id=external_id or None,
            content_hash=digest, in_reply_to=message.in_reply_to, references=" ".join(message.references),
            thread_reason=reason, parse_error=message.parse_error, thread_key=message.thread_key or None,
        )
        pending = _PendingMessage(row, conversation, message, created)
        self.pending.append(pending)
        if created and receipt is not None:
            self.receipts.append(pending)
        entry = _Known(None, conversation, digest, "inbound", reason, pending)
        if external_id:
            self.known.setdefault(external_id, []).append(entry)
        if message.thread_key:
            self.thread_keys[(message.source, message.thread_key)] = entry
        if message.kind == "message":
            conversation.last_customer_message_at = max(at, conversation.last_customer_message_at or at)
            if conversation.waiting_since is None or at < conversation.waiting_since:
                conversation.waiting_since = at
        conversation.version += 1
        conversation.updated_at = self.now
        return lambda: Ingested(pending.id, _conversation_id(pending.conversation), created, False, reason)

    def _duplicate(self, known: _Known) -> Callable[[], Ingested]:
        return lambda: Ingested(known.message_id(), known.conversation_id(), False, True, known.thread_reason)

    def _receipt_channel(self, message: InboundMessage) -> object | None:
        """The message's channel settings when that channel sends receipts, else None."""
        if self.settings is None:
            return None
        channel = receipts.channel_settings(self.settings, message.source)
        return channel if channel is not None and getattr(channel, "receipt", "") else None

    def _thread(self, message: InboundMessage) -> tuple[str, _Known | None]:
        """thread_for's order for what a batch can answer from memory; ("check", None) when only
        the per-message path can tell (a hint or subject tag needs the participant check)."""
        replied = self._latest([message.in_reply_to])
        if replied is not None:
            return "in-reply-to", replied
        referenced = self._latest(message.references)
        if referenced is not None:
            return "references", referenced
        if message.thread_key:
            keyed = self.thread_keys.get((message.source, message.thread_key))
            if keyed is not None:
                conversation = self._conversation(keyed.conversation)
                if conversation is not None and conversation.status != "closed":
                    return "thread-key", keyed
        hint = message.conversation_hint.strip().upper().removeprefix("AD-")
        if hint.isdigit() or _SUBJECT_TAG.search(message.subject):
            return "check", None
        return "new", None

    def _latest(self, ids: Iterable[str]) -> _Known | None:
        """The most recently stored message with one of these ids (as ORDER BY id DESC would)."""
        best: _Known | None = None
        for external_id in ids:
            for known in self.known.get(external_id, ()) if external_id else ():
                if best is None or _order(known) > _order(best):
                    best = known
        return best

    def _customer(self, kind: str, address: str, name: str) -> object:
        key = (kind, address)
        if key not in self.identities:
            customer = queries.customer_by_identity(session=self.session, kind=kind, address=address)
            self.identities[key] = (customer.id, customer.name, customer.tier) if customer is not None else None
        found = self.identities[key]
        if found is None:
            found = _NewCustomer(kind, address, name or address)
            self.new_customers.append(found)
            self.events.append(("customer_created", {"kind": kind, "address": address}, None, found))
            self.identities[key] = found
        elif isinstance(found, tuple) and not found[1] and name:
            customer = self.session.get(Customer, found[0])
            customer.name = name
            self.session.add(customer)
            self.identities[key] = (found[0], name, found[2])
        return found

    def _slow(self, message: InboundMessage, digest: str) -> Callable[[], Ingested]:
        """Write what is pending, then the per-message path for this one message."""
        self.write()
        with self.session.no_autoflush:
            result = _ingest(self.session, message, policies=self.policies, now=self.now, settings=self.settings)
        self.session.flush()
        if not result.duplicate:
            entry = _Known(result.message_id, result.conversation_id, digest, "inbound", result.thread_reason)
            if message.external_id:
                self.known.setdefault(message.external_id, []).append(entry)
            if message.thread_key:
                self.thread_keys[(message.source, message.thread_key)] = entry
            kind = customers.IDENTITY_KIND.get(message.channel, message.channel)
            self.identities.pop((kind, customers.normalise_address(kind, message.sender_address)), None)
        return lambda: result

    # -- writing ----------------------------------------------------------------------------------

    def write(self) -> None:
        """Insert everything pending, with one statement per table, and refresh the clocks."""
        session = self.session
        if not (self.pending or self.touched or self.new_customers):
            return
        session.flush()  # the ORM's own changes (a customer's name) first
        now = self.now
        if self.new_customers:
            ids = _insert_customers(session, [
                dict(name=c.name, organization="", tier="", notes="", created_at=now, merged_into_id=None)
                for c in self.new_customers
            ], lambda ids: [dict(customer_id=new_id, kind=c.kind, address=c.address, created_at=now)
                            for c, new_id in zip(self.new_customers, ids)])
            for customer, new_id in zip(self.new_customers, ids):
                customer.id = new_id
                self.identities[(customer.kind, customer.address)] = (new_id, customer.name, "")
        clock_rows: list[tuple[object, list[dict]]] = []
        if self.new_conversations:
            for conversation in self.new_conversations:
                conversation.customer_id = _customer_id(conversation.customer)
                tier = conversation.customer[2] if isinstance(conversation.customer, tuple) else ""
                rows = self._opened(conversation, tier)
                if rows is None:
                    rows = clocks.refresh_rows(conversation, policies=self.policies, tags=set(), tier=tier, now=now)
                clock_rows.append((conversation, rows))
            ids = _insert_returning(session, Conversation, [
                {name: getattr(c, name) for name in _CONVERSATION_COLUMNS} for c in self.new_conversations
            ])
            for conversation, new_id in zip(self.new_conversations, ids):
                conversation.id = new_id
        if self.pending:
            rows = []
            for pending in self.pending:
                pending.row["conversation_id"] = _conversation_id(pending.conversation)
                rows.append(pending.row)
            for pending, new_id in zip(self.pending, _insert_messages(session, rows)):
                pending.id = new_id
            _insert(session, MessageRaw, [dict(message_id=p.id, raw=p.message.raw) for p in self.pending if p.message.raw])
            _insert(session, Attachment, [
                dict(message_id=p.id, filename=a.filename, content_type=a.content_type, size=len(a.data),
                     storage_key=hashlib.sha256(a.data).hexdigest())
                for p in self.pending for a in p.message.attachments
            ])
        if self.touched:
            touched = list(self.touched.values())
            ids = [c.id for c in touched]
            tags = queries.tags_of(session=session, conversation_ids=ids)
            owners = queries.customers_by_id(session=session, customer_ids=[c.customer_id for c in touched])
            recorded = clocks.load_events(session, ids)
            for conversation in touched:
                owner = owners.get(conversation.customer_id)
                rows = clocks.refresh_rows(conversation, policies=self.policies, tags=set(tags[conversation.id]),
                                           tier=owner.tier if owner else "", now=now, events=recorded[conversation.id])
                clock_rows.append((conversation, rows))
                session.add(conversation)
        _insert(session, SlaClockEvent, [dict(row, conversation_id=conversation.id)
                                         for conversation, rows in clock_rows for row in rows])
        _insert(session, Event, [
            dict(at=now, agent=audit.SYSTEM, action=action,
                 conversation_id=conversation.id if conversation is not None else None,
                 customer_id=customer.id if customer is not None else None,
                 detail=json.dumps(detail, default=str, sort_keys=True))
            for action, detail, conversation, customer in self.events
        ])
        session.flush()
        candidates = self.receipts
        self._reset_pending()
        for pending in candidates:
            self._receipt(pending)

    def _opened(self, conversation: _NewConversation, tier: str) -> list[dict] | None:
        """`refresh_rows` for a new conversation from its opening computed ahead, when that was
        computed for exactly this conversation's facts, policy and `now`; None otherwise."""
        opening = conversation.opening
        if opening is None or tier or opening.now != self.now or conversation.status != "new" \
                or conversation.priority != opening.priority or conversation.created_at != opening.created_at \
                or conversation.waiting_since != opening.waiting_since or conversation.solved_at is not None \
                or conversation.first_responded_at is not None or conversation.last_agent_reply_at is not None:
            return None
        policy = self.policies.select(channel=conversation.channel, priority=conversation.priority, tags=set(), tier="")
        if policy is None or policy.name != opening.policy:
            return None
        conversation.sla_policy = opening.policy
        for name, value in opening.fields.items():
            setattr(conversation, name, value)
        return [{"target": target, "event": event, "at": at, "detail": detail}
                for target, event, at, detail in opening.events]

    def _receipt(self, pending: _PendingMessage) -> None:
        """The receipt decision `_ingest` makes, for the first message of a conversation this batch
        created, once both are written (in message order, so the rate limit counts as it would)."""
        session = self.session
        conversation = self._conversation(pending.conversation)
        stored = session.get(Message, pending.id)
        receipts.maybe_queue_receipt(session, conversation=conversation, message=stored, settings=self.settings,
                                     policies=self.policies, now=self.now, inbound=pending.message,
                                     first_message=True)
        session.flush()


_CONVERSATION_COLUMNS = tuple(c.key for c in Conversation.__table__.columns if c.key != "id")


def _order(known: _Known) -> tuple[int, int]:
    # Stored rows first, by id; then the batch's own, in the order they were added (ids to come).
    return (1, known.sequence) if known.pending is not None and known.pending.id is None else (0, known.message_id())


def _customer_id(customer: object) -> int:
    return customer[0] if isinstance(customer, tuple) else customer.id


def _parts(values: list) -> Iterator[list]:
    for start in range(0, len(values), _IN_CHUNK):
        yield values[start:start + _IN_CHUNK]


def _insert(session: Session, model, rows: list[dict]) -> None:
    if not rows:
        return
    if _sqlite_insert(session, model, rows) is None:
        session.execute(model.__table__.insert(), rows)


def _insert_returning(session: Session, model, rows: list[dict]) -> list[int]:
    """The ids of the inserted rows, in the order of `rows`."""
    table = model.__table__
    ids = _sqlite_insert(session, model, rows, returning=True)
    if ids is not None:
        return ids
    statement = table.insert().returning(table.c.id, sort_by_parameter_order=True)
    return [row[0] for row in session.execute(statement, rows)]


# On SQLite, SQLAlchemy's per-value bind processing (every datetime through UTCDateTime, every row
# through the compiled statement's parameter setup) cost more than the INSERTs themselves: about a
# third of storing a first sync. The batch's rows are plain values of a few column types, so they
# are converted here, in the format SQLAlchemy's SQLite DATETIME stores, and handed to the driver's
# executemany. Other backends, and tables with other column types, take SQLAlchemy's path.
_SQLITE_PLAN: dict[str, tuple[tuple[str, ...], dict[str, object], frozenset[str]] | None] = {}


def _sqlite_plan(table) -> tuple[tuple[str, ...], dict[str, object], frozenset[str]] | None:
    """(column names, scalar defaults, datetime columns) of a table the fast path can write, or None."""
    from sqlalchemy import Boolean, Integer, LargeBinary, String
    from sqlmodel.sql.sqltypes import AutoString

    from agentdesk.store.models import UTCDateTime

    if table.name not in _SQLITE_PLAN:
        plan = None
        names, defaults, times = [], {}, set()
        for column in table.columns:
            if not isinstance(column.type, (AutoString, Boolean, Integer, LargeBinary, String, UTCDateTime)):
                break
            if column.default is not None and not column.default.is_scalar:
                break
            names.append(column.key)
            if isinstance(column.type, UTCDateTime):
                times.add(column.key)
            if column.default is not None:
                defaults[column.key] = column.default.arg
        else:
            plan = (tuple(names), defaults, frozenset(times))
        _SQLITE_PLAN[table.name] = plan
    return _SQLITE_PLAN[table.name]


def _sqlite_insert(session: Session, model, rows: list[dict], *, returning: bool = False) -> list[int] | None:
    """Insert `rows` through the driver on SQLite (their ids with `returning`); None elsewhere."""
    table = model.__table__
    connection = session.connection()
    if connection.dialect.name != "sqlite":
        return None
    plan = _sqlite_plan(table)
    if plan is None:
        return None
    names, defaults, times = plan
    keys = rows[0].keys()
    if not keys <= set(names) or any(row.keys() != keys for row in rows):
        return None
    given = [name for name in names if name in keys]
    missing = [name for name in names if name not in keys and name in defaults]
    columns = given + missing
    sql = 'INSERT INTO "{}" ({}) VALUES ({})'.format(
        table.name, ", ".join(f'"{name}"' for name in columns), ", ".join("?" * len(columns)))
    extra = [sqlite_text(defaults[name]) if name in times else defaults[name] for name in missing]
    converted = [index for index, name in enumerate(given) if name in times]
    values = []
    # A chunk's rows share many times (its `now` in every created_at, at, last_message_at): each
    # distinct one is formatted once per statement.
    formatted: dict[datetime | None, str | None] = {None: None}
    for row in rows:
        value = [row[name] for name in given]
        for index in converted:
            moment = value[index]
            text = formatted.get(moment)
            if text is None and moment is not None:
                text = formatted[moment] = sqlite_text(moment)
            value[index] = text
        values.append(tuple(value + extra) if extra else tuple(value))
    if not returning:
        connection.exec_driver_sql(sql, values)
        return []
    # SQLite numbers a rowid table's new rows max + 1, in insertion order, and we hold the write
    # lock: the new ids are the ones after the highest before.
    highest = f'SELECT max(id) FROM "{table.name}"'
    before = connection.exec_driver_sql(highest).scalar() or 0
    connection.exec_driver_sql(sql, values)
    after = connection.exec_driver_sql(highest).scalar() or 0
    if after - before != len(rows):
        raise RuntimeError(f"inserted {len(rows)} rows into {table.name} but the ids moved by {after - before}")
    return list(range(before + 1, after + 1))


def _insert_messages(session: Session, rows: list[dict]) -> list[int]:
    """`_insert_returning(Message, rows)`; on SQLite, the chunk's full-text index in one statement.

    The `message_fts_insert` trigger indexes each row as it is inserted; for a chunk of hundreds
    that costs several times one `INSERT INTO message_fts … SELECT` over the new rows (a 10 000
    message sync: ~0.8 s of the storing process). So, inside this transaction (we hold SQLite's
    write lock), the trigger is dropped, the rows and then their index entries inserted, and the
    trigger re-created from its own stored text before anything else runs. Other connections
    never see it missing: DDL is transactional, no other writer can run before our commit, and a
    rollback (a failed chunk, a crash) restores it. Every other writer keeps the trigger.
    """
    ids: list[int] = []

    def insert() -> tuple[int, int] | None:
        ids.extend(_insert_returning(session, Message, rows))
        return (ids[0], ids[-1]) if ids else None

    if not _without_triggers(session, len(rows), ("message_fts_insert",), insert,
                             "INSERT INTO message_fts(rowid, subject, body_text) "
                             "SELECT id, subject, body_text FROM message WHERE id BETWEEN ? AND ? ORDER BY id"):
        ids[:] = _insert_returning(session, Message, rows)
    return ids


def _insert_customers(session: Session, customers_rows: list[dict], identity_rows: Callable[[list[int]], list[dict]]) \
        -> list[int]:
    """New customers and their one identity each; on SQLite, their `customer_fts` rows in one
    statement (as `_insert_messages`): the triggers would insert each customer's row, then
    rewrite it with its addresses (FTS5: delete and re-insert) when its identity is inserted."""
    ids: list[int] = []

    def insert() -> tuple[int, int] | None:
        ids.extend(_insert_returning(session, Customer, customers_rows))
        _insert(session, Identity, identity_rows(ids))
        return (ids[0], ids[-1]) if ids else None

    if not _without_triggers(session, len(customers_rows), ("customer_fts_insert", "identity_fts_insert"), insert,
                             "INSERT INTO customer_fts(rowid, name, organization, addresses) "
                             "SELECT c.id, c.name, c.organization, coalesce((SELECT group_concat(i.address, ' ') "
                             "FROM identity AS i WHERE i.customer_id = c.id), '') "
                             "FROM customer AS c WHERE c.id BETWEEN ? AND ? ORDER BY c.id"):
        ids[:] = _insert_returning(session, Customer, customers_rows)
        _insert(session, Identity, identity_rows(ids))
    return ids


def _without_triggers(session: Session, count: int, names: tuple[str, ...], insert: Callable[[], tuple[int, int] | None],
                      index_sql: str) -> bool:
    """Run `insert` with the SQLite triggers `names` dropped, then `index_sql` over the id range it
    returns, and re-create the triggers from their stored text (even when `insert` fails: the
    caller then rolls back). False, having done nothing, when not SQLite, too few rows to pay, or
    a trigger is not exactly the one `index_sql` stands for (`_TRIGGERS`)."""
    connection = session.connection()
    if connection.dialect.name != "sqlite" or count < _FTS_BULK_MIN:
        return False
    stored = dict(connection.exec_driver_sql(
        "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND name IN ({})".format(
            ", ".join("?" * len(names))), names).all())
    if any(" ".join((stored.get(name) or "").split()) != _TRIGGERS[name] for name in names):
        return False
    for name in names:
        connection.exec_driver_sql(f'DROP TRIGGER "{name}"')
    try:
        span = insert()
        if span is not None:
            connection.exec_driver_sql(index_sql, span)
    finally:
        for name in names:
            connection.exec_driver_sql(stored[name])
    return True


# The triggers (store/search.py, whitespace normalised) the bulk paths stand for; any other text
# (a later revision changed one), and the rows go in with the triggers.
_TRIGGERS = {
    "message_fts_insert": "CREATE TRIGGER message_fts_insert AFTER INSERT ON message BEGIN INSERT INTO "
                          "message_fts(rowid, subject, body_text) VALUES (new.id, new.subject, new.body_text); END",
    "customer_fts_insert": "CREATE TRIGGER customer_fts_insert AFTER INSERT ON customer BEGIN INSERT INTO "
                           "customer_fts(rowid, name, organization, addresses) VALUES (new.id, new.name, "
                           "new.organization, ''); END",
    "identity_fts_insert": "CREATE TRIGGER identity_fts_insert AFTER INSERT ON identity BEGIN UPDATE customer_fts "
                           "SET addresses = ( SELECT group_concat(address, ' ') FROM identity WHERE customer_id = "
                           "new.customer_id) WHERE rowid = new.customer_id; END",
}
_FTS_BULK_MIN = 20


def ingest_batch(
    session: Session, messages: Sequence[InboundMessage], *, policies: clocks.Policies, now: datetime,
    settings: Settings | None = None, openings: Sequence[object] | None = None,
) -> list[Ingested]:
    """Store many inbound messages in the caller's transaction, as `ingest_message` would one by one.

    `openings` (parallel to `messages`, items may be None): the `sla.Opening` of the conversation
    each message would open, computed ahead (the sync's parser processes); used when it fits.

    Same dedupe, threading, customers, audit, bounces and receipts, same SLA clock events; a few
    queries and one INSERT per table for the chunk instead of a dozen statements per message (see
    the comment above `_Batch`). An exception leaves the session to be rolled back by the caller,
    who may then retry the messages one by one.
    """
    messages = list(messages)
    if not messages:
        return []
    with session.no_autoflush:
        batch = _Batch(session, messages, policies=policies, now=now, settings=settings)
        results = [batch.add(message, opening) for message, opening in
                   zip(messages, openings if openings is not None else [None] * len(messages))]
        batch.write()
    return [result() for result in results]
