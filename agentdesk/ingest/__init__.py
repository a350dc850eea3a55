"""InboundMessage -> customer -> conversation -> store, idempotently.

Every channel hands its records to `ingest_batch` (or `ingest_message`, a batch of one) inside
the transaction that also advances the channel's checkpoint (IMAP last UID, spool file move), so
a crash replays a message instead of losing it, and replaying it finds it already stored instead
of doubling it.

One path stores every message (batch.py): dedupe, customer, threading (threading.py: by
Message-ID, provider thread key, our ref), bounces, reopening, SLA clocks, receipts.

Email specifics: the content hash of a mail ignores the trace headers each mailbox adds
(Received, Delivered-To, …), so the same message delivered to two of our mailboxes is one message
seen twice. A bounce joins the conversation of the message it reports on and marks that reply's
Outbox row failed with the remote server's reason. A copy of our own outbound mail (Cc to
ourselves, a Sent folder that is also imported) is recognised by its Message-ID and not stored
again. `move_message` lets an agent put a misthreaded message in another or a new conversation.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime

from sqlmodel import Session

from agentdesk.channels.base import InboundMessage
from agentdesk.channels.email.content import email_content, email_content_hash  # noqa: F401
from agentdesk.config import Settings
from agentdesk.domain import clocks, customers
from agentdesk.ingest import batch as _batch
from agentdesk.ingest import threading
from agentdesk.ingest.move import move_message
from agentdesk.ingest.records import Ingested, NewConversation, content_hash
from agentdesk.store.models import Conversation

__all__ = ["Ingested", "content_hash", "ingest_all", "ingest_batch", "ingest_message", "move_message", "thread_for"]


def ingest_message(
    session: Session,
    message: InboundMessage,
    *,
    policies: clocks.Policies,
    now: datetime,
    settings: Settings | None = None,
) -> Ingested:
    """Store one inbound message in the caller's transaction (the caller commits with its checkpoint).

    With `settings`, the automatic receipt is decided here too (domain/receipts.py: configured per
    source, first message or after hours, loop-safe, rate-limited); without, none is sent.
    """
    return _batch.ingest(session, [message], policies=policies, now=now, settings=settings, openings=None)[0]


def ingest_batch(
    session: Session,
    messages: Sequence[InboundMessage],
    *,
    policies: clocks.Policies,
    now: datetime,
    settings: Settings | None = None,
    openings: Sequence[object] | None = None,
) -> list[Ingested]:
    """Store many inbound messages in the caller's transaction, as `ingest_message` would one by one.

    `openings` (parallel to `messages`, items may be None): the `sla.Opening` of the conversation
    each message would open, computed ahead (the sync's parser processes); used when it fits.

    An exception leaves the session to be rolled back by the caller, who may then retry the
    messages one by one.
    """
    return _batch.ingest(session, messages, policies=policies, now=now, settings=settings, openings=openings)


def thread_for(session: Session, message: InboundMessage, customer_id: int) -> tuple[Conversation | None, str]:
    """The stored conversation this message belongs to, and why; (None, "new") for a new one."""
    kind = customers.sender_identity_kind(message)
    address = customers.normalise_address(kind, message.sender_address)
    found, reason = threading.thread(
        message, (customer_id, "", ""), address, _batch.Batch.lookup_for(session, [message])
    )
    assert not isinstance(found, NewConversation), "a lookup of stored rows holds no new conversation"
    return (session.get(Conversation, found.id) if found is not None else None), reason


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
