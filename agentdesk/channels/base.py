"""The one interface every channel speaks: wire formats in, `InboundMessage` records out.

Channels (IMAP mailboxes, webhook spools) convert between their wire format and these plain
records; `agentdesk.ingest` turns records into customers, conversations and messages. Nothing here
touches the database or the UI.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Iterator, Protocol

CHANNEL_KINDS = ("email", "sms", "chat", "webform", "social")
MESSAGE_KINDS = ("message", "auto_reply", "bounce", "receipt")


@dataclass(frozen=True)
class InboundAttachment:
    """An attachment as received. `filename` is the sender's name for it: display only, never a path."""

    filename: str
    content_type: str
    data: bytes


@dataclass(frozen=True)
class InboundMessage:
    """One message as a channel received it, already decoded and sanitised to text.

    `external_id` is the channel's own id (Message-ID without angle brackets, provider event id);
    `received_at` is the channel's timestamp (IMAP INTERNALDATE, payload time), timezone-aware.
    """

    source: str  # name of the mailbox or spool it came from
    channel: str  # one of CHANNEL_KINDS
    external_id: str
    sender_address: str  # email lower-cased, phone in E.164, or the provider's handle
    sender_name: str
    received_at: datetime
    subject: str = ""
    body_text: str = ""
    body_html_text: str = ""  # the HTML part turned into text, when there was one
    kind: str = "message"  # one of MESSAGE_KINDS
    bulk: bool = False
    in_reply_to: str = ""
    references: tuple[str, ...] = ()
    recipients: tuple[str, ...] = ()
    conversation_hint: str = ""  # our ref (AD-n), e.g. from a web form's hidden field
    thread_key: str = ""  # the provider's own conversation key (chat id, phone pair), when it has one
    attachments: tuple[InboundAttachment, ...] = ()
    raw: bytes = b""
    parse_error: str = ""  # set when the raw message could not be fully parsed; stored and flagged
    headers: dict[str, str] = field(default_factory=dict)
    # ingest's content hash of `raw`, when the parser already computed it (the sync's parser
    # processes do, to spare the storing process); empty: ingest computes it.
    content_hash: str = ""


class DeliveryError(Exception):
    """A send failed. `permanent`: the server refused for good (5xx); else retry later.

    Here, not in a channel's module, so the delivery worker can name it without importing
    SMTP (the email channel re-exports it as `smtp.DeliveryError`).
    """

    def __init__(self, reason: str, *, permanent: bool = False):
        super().__init__(reason)
        self.reason = reason
        self.permanent = permanent


class Channel(Protocol):
    """A source of inbound messages and a sink for replies."""

    name: str

    def fetch_new(self) -> Iterator[InboundMessage]:
        """Yield messages not yet seen by this channel's checkpoint."""
        ...
