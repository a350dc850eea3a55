"""The one interface every channel speaks: wire formats in, `InboundMessage` records out.

Channels (IMAP mailboxes, webhook spools) convert between their wire format and these plain
records; `agentdesk.ingest` turns records into customers, conversations and messages. Nothing here
touches the database or the UI.

Every string a sender supplied is made inert here, when the record is built (DESIGN, principle 5):
whatever a channel's parser missed, and whatever channel is added next, nothing that reaches
ingest can act on a terminal. Values of one line (names, addresses, subjects, ids, header
values, file names) carry no control character at all; bodies keep their newlines and tabs. A
parser that already cleaned its text pays one scan per value.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from agentdesk.sanitize import inert_line, is_inert_line, strip_control

CHANNEL_KINDS = ("email", "sms", "chat", "webform", "social")
MESSAGE_KINDS = ("message", "auto_reply", "bounce", "receipt", "survey")


class Handed(str):
    """What a sender returns when the other side took a message: the note for the record (a str,
    as every sender returns), and the provider's own id of the message when it said one."""

    provider_id: str

    def __new__(cls, note: str = "", *, provider_id: str = "") -> Handed:
        handed = super().__new__(cls, note)
        handed.provider_id = inert_line(provider_id)[:200]
        return handed


@dataclass(frozen=True)
class InboundAttachment:
    """An attachment as received. `filename` is the sender's name for it: display only, never a path."""

    filename: str
    content_type: str
    data: bytes
    # A linked attachment (webhook payloads): the sync downloads it before ingest (never the TUI);
    # display text until then, never a path.
    url: str = ""
    # Why the bytes are not here: a download that failed, or one over the size cap (then `size`
    # is what is known of it). Stored as the attachment's reason; empty when `data` is the content.
    failure: str = ""
    withheld: bool = False
    size: int = 0  # the whole size in bytes when `data` is not the content and it is known

    def __post_init__(self) -> None:
        for name in ("filename", "content_type", "url", "failure"):
            value = getattr(self, name)
            _replace(self, name, value, inert_line(value))


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
    # The identity kind of sender_address when it is not the channel's own (a chat payload that
    # names its sender by email); empty: the channel's (domain.customers.IDENTITY_KIND).
    sender_kind: str = ""
    attachments: tuple[InboundAttachment, ...] = ()
    raw: bytes = b""
    parse_error: str = ""  # set when the raw message could not be fully parsed; stored and flagged
    headers: dict[str, str] = field(default_factory=dict)
    # ingest's content hash of `raw`, when the parser already computed it (the sync's parser
    # processes do, to spare the storing process); empty: ingest computes it.
    content_hash: str = ""

    def __post_init__(self) -> None:
        lines = [getattr(self, name) for name in _MESSAGE_LINES]
        headers = self.headers
        # Every one-line value in one scan: a parser that already cleaned them (the email
        # channel's) pays for this second guard as little as possible.
        try:
            together = " ".join([*lines, *self.references, *self.recipients, *headers, *headers.values()])
        except TypeError:  # a value that is not text yet (None, a number): made text below
            together = None
        if together is None or not is_inert_line(together):
            for name, value in zip(_MESSAGE_LINES, lines):
                _replace(self, name, value, inert_line(value))
            for name in ("references", "recipients"):
                value = getattr(self, name)
                _replace(self, name, value, tuple(inert_line(item) for item in value))
            _replace(self, "headers", headers, {inert_line(key): inert_line(item) for key, item in headers.items()})
        for name in _MESSAGE_TEXTS:
            value = getattr(self, name)
            _replace(self, name, value, strip_control(value))


def set_raw(message: InboundMessage, raw: bytes) -> None:
    """Put `raw` in `message` in place. The email sync's parser processes send a message back
    without its raw mail, which the storing process holds already; raw bytes are stored as
    received and never shown, so they take none of the checks of the other fields."""
    object.__setattr__(message, "raw", raw)


_MESSAGE_LINES = (
    "source",
    "channel",
    "external_id",
    "sender_address",
    "sender_name",
    "subject",
    "kind",
    "in_reply_to",
    "conversation_hint",
    "thread_key",
    "content_hash",
    "sender_kind",
)
_MESSAGE_TEXTS = ("body_text", "body_html_text", "parse_error")


def _replace(record: object, name: str, value: object, inert: object) -> None:
    """Set a frozen record's field to its inert form, when that differs."""
    if inert is not value and inert != value:
        object.__setattr__(record, name, inert)


class DeliveryError(Exception):
    """A send failed. `permanent`: the server refused for good (5xx); else retry later.

    Here, not in a channel's module, so the delivery worker can name it without importing
    SMTP (the email channel re-exports it as `smtp.DeliveryError`).
    """

    def __init__(self, reason: str, *, permanent: bool = False):
        super().__init__(reason)
        self.reason = reason
        self.permanent = permanent


class DeliveryOutcomeUnknown(DeliveryError):
    """The message went out in full but the server's answer never came (a connection dropped or
    timed out after the end of SMTP DATA, after an HTTP request was written): the server may have
    it. Trying again can send it twice, so the outbox never does that on its own; the agent decides.
    """


class Channel(Protocol):
    """A source of inbound messages and a sink for replies."""

    name: str

    def fetch_new(self) -> Iterator[InboundMessage]:
        """Yield messages not yet seen by this channel's checkpoint."""
        ...
