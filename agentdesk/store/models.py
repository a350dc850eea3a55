"""The SQLModel tables of the data model (DESIGN.md, "Data model").

The schema itself is owned by the migrations in `agentdesk/store/migrations/`; these classes must
describe exactly what the migrations create (tests/unit/test_migrations.py compares the two).

Times are timezone-aware UTC in Python. SQLite has no time zone type, so `UTCDateTime` stores
naive UTC text there and hands back aware values.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Optional

from sqlalchemy import Column, DateTime, Index, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel

# Defined without SQLAlchemy, for the TUI's first frame; re-exported here, where the store's users
# look for them. NEVER: a conversation without any running SLA target sorts after every one with a
# due time; the queue's keyset index needs a NOT NULL column for that, so "never" is this instant.
from agentdesk.store.first_window import NEVER as NEVER
from agentdesk.store.first_window import ref_of as ref_of
from agentdesk.store.first_window import sqlite_text as sqlite_text
from agentdesk.store.first_window import sqlite_time


class UTCDateTime(TypeDecorator):
    """Aware UTC datetimes in, aware UTC datetimes out, on every backend."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r} given to the store; use an aware UTC time")
        value = value.astimezone(timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)

    def result_processor(self, dialect, coltype):
        general = super().result_processor(dialect, coltype)
        if dialect.name != "sqlite":
            return general

        # SQLite hands back the text SQLAlchemy's DATETIME (or `sqlite_text`) stored: parsed
        # straight to an aware value, without the text -> naive -> aware round of the general
        # path (a chunk of ingest reads hundreds of thousands of times); anything else takes it.
        def process(value):
            if value is None:
                return None
            try:
                return sqlite_time(value)
            except (TypeError, ValueError):
                return general(value) if general is not None else value

        return process


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def _time(nullable: bool = True, index: bool = False) -> Column:
    return Column(UTCDateTime(), nullable=nullable, index=index)


class Customer(SQLModel, table=True):
    id: Optional[int] = Field(default=None, primary_key=True)
    name: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    organization: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    tier: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    notes: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    created_at: datetime = Field(default_factory=utcnow, sa_column=_time(nullable=False))
    # Set when an agent merged this customer into another; undoing the merge clears it (revision 3).
    merged_into_id: Optional[int] = Field(default=None, foreign_key="customer.id")


class Identity(SQLModel, table=True):
    """One address of a customer on one channel kind; unique per (kind, address)."""

    __table_args__ = (UniqueConstraint("kind", "address", name="uq_identity_kind_address"),)
    id: Optional[int] = Field(default=None, primary_key=True)
    customer_id: int = Field(foreign_key="customer.id", index=True)
    kind: str  # email | phone | chat | social handle kinds
    address: str  # email lower-cased, phone in E.164, provider handle
    created_at: datetime = Field(default_factory=utcnow, sa_column=_time(nullable=False))


class Agent(SQLModel, table=True):
    """A Unix login that works the queue; created on first action, named from config."""

    login: str = Field(primary_key=True)
    name: str = ""
    signature: str = ""
    created_at: datetime = Field(default_factory=utcnow, sa_column=_time(nullable=False))


class Conversation(SQLModel, table=True):
    __table_args__ = (
        # The queue's order (breached first, then nearest due, then longest wait) as a keyset.
        Index("ix_conversation_queue", "queue_due", "queue_wait", "id"),
        Index("ix_conversation_status_queue", "status", "queue_due", "queue_wait", "id"),
        Index("ix_conversation_assignee_queue", "assignee", "queue_due", "queue_wait", "id"),
        # The views of conversations set aside (spam, bulk, system) in the queue's order (revision 6).
        Index("ix_conversation_aside_queue", "aside", "queue_due", "queue_wait", "id"),
    )
    id: Optional[int] = Field(default=None, primary_key=True)
    channel: str
    source: str = ""
    subject: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    customer_id: int = Field(foreign_key="customer.id", index=True)
    status: str = "new"
    priority: str = "normal"
    assignee: Optional[str] = None
    snoozed_until: Optional[datetime] = Field(default=None, sa_column=_time())
    created_at: datetime = Field(default_factory=utcnow, sa_column=_time(nullable=False))
    # Indexed (revision 4): live refresh on PostgreSQL and `export --since` look for recent changes.
    updated_at: datetime = Field(default_factory=utcnow, sa_column=_time(nullable=False, index=True))
    solved_at: Optional[datetime] = Field(default=None, sa_column=_time(index=True))
    sla_policy: str = ""
    first_response_due: Optional[datetime] = Field(default=None, sa_column=_time())
    next_response_due: Optional[datetime] = Field(default=None, sa_column=_time())
    periodic_update_due: Optional[datetime] = Field(default=None, sa_column=_time())
    resolution_due: Optional[datetime] = Field(default=None, sa_column=_time())
    first_responded_at: Optional[datetime] = Field(default=None, sa_column=_time())
    last_agent_reply_at: Optional[datetime] = Field(default=None, sa_column=_time())
    last_customer_message_at: Optional[datetime] = Field(default=None, sa_column=_time())
    # The customer's oldest unanswered message: hold time counts from here.
    waiting_since: Optional[datetime] = Field(default=None, sa_column=_time())
    # When the earliest running target turns to warning; the "breaching" view is warning_at <= now.
    warning_at: Optional[datetime] = Field(default=None, sa_column=_time(index=True))
    # Sort keys of the queue (NOT NULL so one index serves the keyset): the earliest running due
    # time and waiting_since, NEVER when there is none.
    queue_due: datetime = Field(default=NEVER, sa_column=_time(nullable=False))
    queue_wait: datetime = Field(default=NEVER, sa_column=_time(nullable=False))
    merged_into_id: Optional[int] = Field(default=None, foreign_key="conversation.id")
    # "" in the queue; "spam", "bulk" or "system" (unmatched machine mail): set aside in that view,
    # out of every other, with no SLA clock running (revision 6).
    aside: str = Field(default="", sa_column=Column(String, nullable=False, server_default=""))
    # When a reply of ours last bounced and no reply went out since: the row's flag (revision 6).
    bounced_at: Optional[datetime] = Field(default=None, sa_column=_time())
    version: int = 1  # optimistic concurrency: every update bumps it and checks the old value


class ConversationTag(SQLModel, table=True):
    conversation_id: int = Field(foreign_key="conversation.id", primary_key=True)
    tag: str = Field(primary_key=True, index=True)


class Message(SQLModel, table=True):
    __table_args__ = (
        # The same Message-ID with the same content is the same message, wherever it was seen;
        # the same id with other content is another message (DESIGN: external ids).
        UniqueConstraint("external_id", "content_hash", name="uq_message_external"),
        Index("ix_message_conversation_at", "conversation_id", "at", "id"),
        # Message id -> conversation without reading message rows: a full-text search maps tens of
        # thousands of matching messages to their conversations through it (store/search.py).
        Index("ix_message_id_conversation", "id", "conversation_id"),
    )
    id: Optional[int] = Field(default=None, primary_key=True)
    conversation_id: int = Field(foreign_key="conversation.id")
    direction: str  # inbound | outbound | note
    kind: str = "message"  # message | auto_reply | bounce | receipt
    bulk: bool = False
    author: str = ""  # display name of the sender (customer or agent)
    author_login: Optional[str] = None  # the agent's login for outbound messages and notes
    sender_address: str = ""
    subject: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    body_text: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    body_html_text: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    at: datetime = Field(sa_column=_time(nullable=False))  # the channel's own timestamp
    ingested_at: datetime = Field(default_factory=utcnow, sa_column=_time(nullable=False))
    source: str = ""
    external_id: Optional[str] = Field(default=None, index=True)
    content_hash: Optional[str] = None
    in_reply_to: str = ""
    references: str = Field(default="", sa_column=Column("references", Text, nullable=False, default=""))
    # Why ingest put the message in this conversation (in-reply-to, references, subject-tag, new…).
    thread_reason: str = ""
    # The provider's own conversation key (a chat id, a WhatsApp number pair), for threading
    # channels that have no Message-IDs (revision 3).
    thread_key: Optional[str] = Field(default=None, index=True)
    parse_error: str = ""
    # Space-separated, lower-cased addresses (revision 9). Inbound: the To and Cc it was sent to,
    # what a reply-all answers. Outbound: every address it went to (To, Cc and Bcc), so an answer
    # from any of them is a participant's (ingest/threading.py).
    recipients: str = Field(default="", sa_column=Column(Text, nullable=False, server_default=""))


class MessageRaw(SQLModel, table=True):
    """The message exactly as received, kept apart so queue and thread queries stay small."""

    message_id: int = Field(foreign_key="message.id", primary_key=True)
    raw: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


class Attachment(SQLModel, table=True):
    id: Optional[int] = Field(default=None, primary_key=True)
    message_id: int = Field(foreign_key="message.id", index=True)
    filename: str  # the sender's name for it: display only, never a path
    content_type: str = "application/octet-stream"
    size: int = 0
    storage_key: str  # its bytes' sha256: the key in the attachment store (store/attachments.py)
    # stored: the bytes are in the attachment store; withheld: over a size cap (`size` says how
    # big); failed: a linked attachment whose download failed; in_raw: the bytes are only in the
    # raw message (a mail too big to parse whole), taken from it when first opened; legacy: a
    # row written before attachments' bytes were kept (revision 10), the server default.
    state: str = Field(default="stored", sa_column=Column(String, nullable=False, server_default="legacy"))
    reason: str = Field(default="", sa_column=Column(Text, nullable=False, server_default=""))  # why not stored
    url: str = Field(default="", sa_column=Column(Text, nullable=False, server_default=""))  # a linked one's


class AttachmentBlob(SQLModel, table=True):
    """An attachment's bytes, once per content, for databases without a directory of their own
    (PostgreSQL: teams on several hosts share only the database) (revision 10)."""

    sha256: str = Field(primary_key=True)
    data: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


class Event(SQLModel, table=True):
    """The audit log: who did what, when."""

    id: Optional[int] = Field(default=None, primary_key=True)
    at: datetime = Field(default_factory=utcnow, sa_column=_time(nullable=False, index=True))
    agent: str  # login, or "system" for ingest and automation
    action: str  # created, status, priority, assign, claim, tag, untag, note, reply, merge, …
    conversation_id: Optional[int] = Field(default=None, foreign_key="conversation.id", index=True)
    customer_id: Optional[int] = Field(default=None, foreign_key="customer.id")
    detail: str = Field(default="{}", sa_column=Column(Text, nullable=False, default="{}"))  # JSON


class Outbox(SQLModel, table=True):
    id: Optional[int] = Field(default=None, primary_key=True)
    message_id: int = Field(foreign_key="message.id", unique=True)
    channel: str
    source: str = ""
    state: str = Field(default="queued", index=True)  # queued | sent | failed | possibly_sent
    attempts: int = 0
    last_error: str = ""
    created_at: datetime = Field(default_factory=utcnow, sa_column=_time(nullable=False))
    next_attempt_at: Optional[datetime] = Field(default=None, sa_column=_time())
    sent_at: Optional[datetime] = Field(default=None, sa_column=_time())
    # The inbound bounce that reported this message undelivered (state "failed"; `delivery` shows
    # "bounced") (revision 6).
    bounce_message_id: Optional[int] = None
    # When the state or last_error was last recorded: the end of the last attempt, or when a sync
    # found no sender for the row on its host (revision 7).
    updated_at: Optional[datetime] = Field(default=None, sa_column=_time())
    # Set while the row is queued but the sync that looked at it has no sender for its channel
    # (or source): it waits for a host that has one, and `show`, the thread and `doctor` say so.
    no_sender_at: Optional[datetime] = Field(default=None, sa_column=_time())
    # Who the message goes to, space-separated (revision 9): decided when it was queued (the
    # composer's To/Cc/Bcc, `reply --to/--cc/--bcc`). Bcc is only ever the SMTP envelope. All three
    # empty: a row queued before revision 9, addressed at delivery as then (the customer, reply-all).
    to_addresses: str = Field(default="", sa_column=Column(Text, nullable=False, server_default=""))
    cc_addresses: str = Field(default="", sa_column=Column(Text, nullable=False, server_default=""))
    bcc_addresses: str = Field(default="", sa_column=Column(Text, nullable=False, server_default=""))
    # The provider's id of the message once it took it (revision 11): a gateway answers with it,
    # and the provider's delivery callbacks (Twilio, WhatsApp) name the message by it.
    provider_id: str = Field(default="", sa_column=Column(String, nullable=False, server_default="", index=True))


class DeliveryAttempt(SQLModel, table=True):
    """One attempt to deliver an Outbox row: when, and how it ended (revision 7).

    `outcome`: sending (claimed, no outcome recorded yet; a worker that died mid-send leaves this),
    sent, retry (a temporary failure), failed, possibly_sent (the message went out in full but the
    server's answer never came).
    """

    id: Optional[int] = Field(default=None, primary_key=True)
    outbox_id: int = Field(foreign_key="outbox.id", index=True)
    started_at: datetime = Field(sa_column=_time(nullable=False))
    finished_at: Optional[datetime] = Field(default=None, sa_column=_time())
    outcome: str = "sending"
    reason: str = ""


class BlockedSender(SQLModel, table=True):
    """A sender whose mail goes straight to the spam view: an address, or "@domain" for a whole
    domain, lower-cased (revision 6)."""

    pattern: str = Field(primary_key=True)
    agent: str = ""
    created_at: datetime = Field(default_factory=utcnow, sa_column=_time(nullable=False))


class SyncState(SQLModel, table=True):
    """Per source and folder: the checkpoint that makes import exactly-once."""

    __table_args__ = (UniqueConstraint("source", "folder", name="uq_syncstate_source_folder"),)
    id: Optional[int] = Field(default=None, primary_key=True)
    source: str
    folder: str = ""
    uidvalidity: Optional[int] = None
    last_uid: int = 0
    last_sync_at: Optional[datetime] = Field(default=None, sa_column=_time())
    last_error: str = ""


class Presence(SQLModel, table=True):
    """Which conversation an agent is viewing or replying to; stale after a missed heartbeat."""

    agent: str = Field(primary_key=True)
    conversation_id: Optional[int] = Field(default=None, foreign_key="conversation.id")
    activity: str = "viewing"  # viewing | replying
    heartbeat_at: datetime = Field(default_factory=utcnow, sa_column=_time(nullable=False))


class SlaClockEvent(SQLModel, table=True):
    """One recorded event of one SLA clock: activate, pause, resume, fulfil, breach (revision 3)."""

    id: Optional[int] = Field(default=None, primary_key=True)
    conversation_id: int = Field(foreign_key="conversation.id", index=True)
    target: str  # first_reply | next_reply | periodic_update | resolution
    event: str  # activate | pause | resume | fulfil | breach
    at: datetime = Field(sa_column=_time(nullable=False))
    detail: str = Field(default="{}", sa_column=Column(Text, nullable=False, default="{}"))  # JSON


class Draft(SQLModel, table=True):
    """An agent's unsent reply or note; survives leaving the conversation and restarting (revision 3)."""

    conversation_id: int = Field(foreign_key="conversation.id", primary_key=True)
    agent: str = Field(primary_key=True)
    kind: str = "reply"  # reply | note
    body: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    base_version: int = 0  # the conversation's version when the composer opened
    updated_at: datetime = Field(default_factory=utcnow, sa_column=_time(nullable=False))
    # JSON: the recipients the agent chose ("to", "cc", "bcc"; absent: the reply-all) and the files
    # attached ("files": key in the attachment store, name, content type) (revision 12).
    envelope: str = Field(default="{}", sa_column=Column(Text, nullable=False, server_default="{}"))


def id_of(row: SQLModel) -> int:
    """The id of a row the database holds (loaded, or flushed). SQLModel types every id Optional
    for the moment between making an object and its flush; past that moment this says so."""
    row_id = getattr(row, "id", None)
    if row_id is None:
        raise ValueError(f"a {type(row).__name__} without an id: it was never flushed")
    return row_id


class SatisfactionSurvey(SQLModel, table=True):
    """The one satisfaction survey of a conversation and its answer (revision 8).

    One row per conversation at most (its key), so a conversation is never surveyed twice, even
    when it is reopened and solved again. A row with `skipped` set records why no survey went out
    (machine mail, no address, a missing template) so the decision is made once.
    """

    conversation_id: int = Field(foreign_key="conversation.id", primary_key=True)
    message_id: Optional[int] = Field(default=None, foreign_key="message.id")  # the survey sent
    sent_at: datetime = Field(sa_column=_time(nullable=False, index=True))
    # The assignee when the survey went out: who the rating is about, even if it is reassigned later.
    agent: str = ""
    skipped: str = ""
    rating: Optional[int] = None  # 1-5
    comment: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    answered_at: Optional[datetime] = Field(default=None, sa_column=_time(index=True))
    answer_message_id: Optional[int] = None


class KbArticle(SQLModel, table=True):
    """A knowledge-base article as last indexed from its Markdown file (revision 8); the file is
    the source of truth, this row and its full-text index follow it (store/knowledge_base.py)."""

    slug: str = Field(primary_key=True)  # the file's name without .md
    title: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    tags: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))  # space-separated
    url: str = ""
    body: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    content_hash: str = ""
    indexed_at: datetime = Field(default_factory=utcnow, sa_column=_time(nullable=False))


class ArticleUse(SQLModel, table=True):
    """An article sent to a customer: named in an outbound message (revision 8)."""

    id: Optional[int] = Field(default=None, primary_key=True)
    slug: str = Field(index=True)
    conversation_id: int = Field(foreign_key="conversation.id", index=True)
    message_id: int = Field(foreign_key="message.id")
    at: datetime = Field(sa_column=_time(nullable=False))
