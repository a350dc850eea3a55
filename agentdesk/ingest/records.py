"""What ingest knows while it works: the result it returns, and the rows a chunk adds before
they are written (a customer, a conversation and a message have no id until then)."""

from __future__ import annotations

import hashlib
import itertools
from dataclasses import dataclass, field
from datetime import datetime

from agentdesk.channels.base import InboundMessage
from agentdesk.channels.email.content import email_content
from agentdesk.sanitize import inert_line


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




def customer_id_of(customer: object) -> int | None:
    return customer[0] if isinstance(customer, tuple) else customer.id


class NewConversation:
    """A conversation the chunk opens: the attributes `clocks.refresh_rows` reads and writes."""

    def __init__(self, message: InboundMessage, customer: object, at: datetime, now: datetime):
        self.id: int | None = None
        self.customer = customer
        self.channel = message.channel
        self.source = message.source
        self.subject = message.subject or first_line(message.body_text)
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
        self.aside = ""  # "spam", "bulk" or "system": set aside in that view, no SLA clock
        self.bounced_at = None
        self.version = 1
        self.opening: object = None  # sla.Opening computed ahead (the sync's parsers), if any
        # Written by clocks.refresh_rows.
        self.sla_policy = ""
        self.first_response_due = self.next_response_due = self.periodic_update_due = None
        self.resolution_due = self.warning_at = None
        self.queue_due = self.queue_wait = None


def conversation_id_of(conversation: object) -> int | None:
    """The id of a stored conversation, a NewConversation (once written) or a bare id."""
    return conversation if isinstance(conversation, int) else conversation.id


@dataclass(eq=False)
class PendingMessage:
    row: dict  # the message's column values, but its conversation_id
    conversation: object  # a stored Conversation or a NewConversation
    message: InboundMessage
    created: bool
    id: int | None = None


@dataclass(eq=False)
class Known:
    """A message stored or added by this chunk, as threading and dedupe need it."""

    id: int | None
    conversation: object  # int (a stored conversation's id) or a NewConversation
    content_hash: str | None
    direction: str
    thread_reason: str
    pending: PendingMessage | None = None
    sequence: int = field(default_factory=itertools.count().__next__)

    def message_id(self) -> int:
        return self.pending.id if self.pending is not None else self.id

    def conversation_id(self) -> int:
        return conversation_id_of(self.conversation)

    def order(self) -> tuple[int, int]:
        """ORDER BY id: stored rows first, by id; then the chunk's own, in the order they were
        added (their ids are to come, in that order)."""
        return (1, self.sequence) if self.pending is not None and self.pending.id is None else (0, self.message_id())
