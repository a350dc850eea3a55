"""What ingest knows while it works: the result it returns, and the rows a chunk adds before
they are written (a customer, a conversation and a message have no id until then)."""

from __future__ import annotations

import hashlib
import itertools
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeAlias

from agentdesk.channels.base import InboundMessage
from agentdesk.channels.email.content import email_content
from agentdesk.sanitize import inert_line

if TYPE_CHECKING:
    from agentdesk.store.conversation_rows import ConversationRow
    from agentdesk.store.models import Customer


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


def first_line(text: str) -> str:
    """A subject for a message without one: its first line with text, made one inert line (a body
    keeps the bidi marks a subject may not)."""
    for line in text.splitlines():
        if line.strip():
            return inert_line(line.strip()[:80]).strip() or "(no subject)"
    return "(no subject)"


@dataclass(eq=False)
class NewCustomer:
    kind: str
    address: str
    name: str
    id: int | None = None


# A customer as ingest holds one: a stored row, one the chunk adds, or a lookup's (id, name, tier).
CustomerRef: TypeAlias = "Customer | NewCustomer | tuple[Any, ...]"


def customer_id_of(customer: CustomerRef) -> int | None:
    return customer[0] if isinstance(customer, tuple) else customer.id


class NewConversation:
    """A conversation the chunk opens: the attributes `clocks.refresh_rows` reads and writes."""

    def __init__(self, message: InboundMessage, customer: CustomerRef, at: datetime, now: datetime):
        self.id: int | None = None
        self.customer = customer
        self.customer_id: int | None = None  # set when the chunk writes it, from `customer`
        self.channel = message.channel
        self.source = message.source
        self.subject = message.subject or first_line(message.body_text)
        self.status = "new"
        self.priority = "normal"
        self.assignee: str | None = None
        self.snoozed_until: datetime | None = None
        self.created_at = at
        self.updated_at = now
        self.solved_at: datetime | None = None
        self.first_responded_at: datetime | None = None
        self.last_agent_reply_at: datetime | None = None
        self.last_customer_message_at: datetime | None = None
        self.waiting_since: datetime | None = None
        self.merged_into_id: int | None = None
        self.aside = ""  # "spam", "bulk" or "system": set aside in that view, no SLA clock
        self.bounced_at: datetime | None = None
        self.version = 1
        self.opening: Any = None  # sla.Opening computed ahead (the sync's parsers), if any
        # Written by clocks.refresh_rows.
        self.sla_policy = ""
        self.first_response_due: datetime | None = None
        self.next_response_due: datetime | None = None
        self.periodic_update_due: datetime | None = None
        self.resolution_due: datetime | None = None
        self.warning_at: datetime | None = None
        self.queue_due: datetime | None = None
        self.queue_wait: datetime | None = None


def conversation_id_of(conversation: int | ConversationRow | NewConversation) -> int | None:
    """The id of a stored conversation, a NewConversation (once written) or a bare id."""
    return conversation if isinstance(conversation, int) else conversation.id


@dataclass(eq=False)
class PendingMessage:
    row: dict  # the message's column values, but its conversation_id
    conversation: ConversationRow | NewConversation
    message: InboundMessage
    created: bool
    id: int | None = None


@dataclass(eq=False)
class Known:
    """A message stored or added by this chunk, as threading and dedupe need it."""

    id: int | None
    conversation: int | ConversationRow | NewConversation  # a stored conversation (its id), or one the chunk opens
    content_hash: str | None
    direction: str
    thread_reason: str
    pending: PendingMessage | None = None
    sequence: int = field(default_factory=itertools.count().__next__)

    def message_id(self) -> int | None:
        """The message's id; None for one of this chunk's until the chunk writes it."""
        return self.pending.id if self.pending is not None else self.id

    def conversation_id(self) -> int | None:
        return conversation_id_of(self.conversation)

    def order(self) -> tuple[int, int]:
        """ORDER BY id: stored rows first, by id; then the chunk's own, in the order they were
        added (their ids are to come, in that order)."""
        return (
            (1, self.sequence) if self.pending is not None and self.pending.id is None else (0, self.message_id() or 0)
        )
