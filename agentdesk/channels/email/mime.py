"""Raw RFC 5322 bytes in, one sanitised `InboundMessage` out — for any input, however broken.

Real mail is parsed with `compat32`: `policy.default` is several times slower and raises on real
artefacts (group syntax in To, CR/LF inside encoded words, unknown charsets; see the corpus
README). Every header is therefore read as a plain string and decoded defensively (decoding.py).

`parse_message` never raises. Each field is read on its own; a field that cannot be read is left
empty and the reason goes to `parse_error`, so the record is stored, flagged and the raw source
kept ("nothing is lost").
"""

from __future__ import annotations

import dataclasses
import email
import email.parser
import hashlib
import io
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from email.message import Message
from email.policy import compat32
from functools import partial
from typing import BinaryIO, TypeVar

from agentdesk.channels.base import InboundMessage
from agentdesk.channels.email import feedparser_boundaries, spooled
from agentdesk.channels.email.addresses import _address, _address_list, _id_list, _message_id

# `_parse_into` looks `_read_body` up here, so a test can make it fail.
from agentdesk.channels.email.bodies import MAX_BODY_CHARS, _read_body, _truncate
from agentdesk.channels.email.content import email_content_hash, email_content_hash_of_file
from agentdesk.channels.email.decoding import _header_index, _raw, _raw_all, decode_bytes, decode_header_value
from agentdesk.channels.email.machine_mail import _classify, bounce_details, bounce_reason, bounced_message_id
from agentdesk.channels.email.mime_split import split_message
from agentdesk.sanitize import strip_control

__all__ = ["parse_message", "parse_file", "bounced_message_id", "bounce_reason", "MAX_BODY_CHARS"]

# A sender can make any header field any length; what the parser keeps of each is capped, and a
# value cut short ends with CUT_MARK (the raw message keeps the field whole). docs/email.md lists them.
T = TypeVar("T")

CUT_MARK = "…"
MAX_SUBJECT_CHARS = 1_000
MAX_NAME_CHARS = 200  # the sender's display name
MAX_ADDRESS_CHARS = 320  # the sender's address and each recipient's (RFC 5321: 64 + 1 + 255)
MAX_RECIPIENTS = 100  # To and Cc addresses kept
MAX_ID_CHARS = 998  # Message-ID, In-Reply-To and each References id (RFC 5322's line length)
MAX_REFERENCES = 100  # References ids kept: the first (the thread's root) and the latest 99
# The longest kept value of the other headers kept (and of the bounce reason).
_MAX_HEADER_CHARS = 2_000


def _cap(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + CUT_MARK


def _cap_references(ids: list[str]) -> tuple[str, ...]:
    ids = list(dict.fromkeys(_cap(i, MAX_ID_CHARS) for i in ids))
    if len(ids) > MAX_REFERENCES:
        ids = ids[:1] + ids[-(MAX_REFERENCES - 1) :]
    return tuple(ids)


# Headers later stages need (loop safety, bounce handling, list detection), lower-case keys.
KEPT_HEADERS = (
    "auto-submitted",
    "precedence",
    "list-id",
    "list-unsubscribe",
    "list-post",
    "x-autoreply",
    "x-autorespond",
    "x-auto-response-suppress",
    "return-path",
    "x-agentdesk-loop",
    "content-type",
    "date",
)

# Every parse below goes through email.feedparser, which this makes cheaper.
feedparser_boundaries.install()


# --- the public API --------------------------------------------------------------------------


def parse_message(
    raw: bytes,
    *,
    source: str,
    received_at: datetime,
    channel: str = "email",
    measured: Callable[[Message], tuple[int, str] | None] | None = None,
) -> InboundMessage:
    """One RFC 5322 message as an `InboundMessage`; never raises.

    `received_at` is the mailbox's own time for the message (IMAP INTERNALDATE) and is kept as
    given (a naive value is taken as UTC). Whatever cannot be read is left empty and explained
    in `parse_error`; `raw` is always the input, unchanged. A message over
    `spooled.LARGE_MESSAGE_BYTES` is parsed through its bounded view (spooled.py); `measured` is
    that view's record of the parts it cut.
    """
    if not isinstance(raw, bytes):
        try:
            raw = raw.encode("utf-8", "surrogateescape") if isinstance(raw, str) else bytes(raw)
        except Exception:
            raw = b""
    if isinstance(received_at, datetime) and received_at.tzinfo is None:
        received_at = received_at.replace(tzinfo=timezone.utc)
    errors: list[str] = []
    if measured is None and len(raw) > spooled.LARGE_MESSAGE_BYTES:
        try:
            message = parse_file(io.BytesIO(raw), source=source, received_at=received_at, size=len(raw))
            return dataclasses.replace(message, raw=raw, channel=channel)
        except Exception as exc:  # never raises: parse it whole instead
            errors.append(f"bounded parse: {type(exc).__name__}: {exc}")
    fields: dict[str, object] = {}
    try:
        _parse_into(fields, errors, raw, measured)
    except Exception as exc:  # the last line of "never raises"
        errors.append(f"message: {type(exc).__name__}: {exc}")
    external_id = str(fields.pop("external_id", "") or "") or "sha256:" + hashlib.sha256(raw).hexdigest()
    try:
        return InboundMessage(
            source=source,
            channel=channel,
            external_id=external_id,
            sender_address=str(fields.pop("sender_address", "")),
            sender_name=str(fields.pop("sender_name", "")),
            received_at=received_at,
            raw=raw,
            parse_error="; ".join(errors)[:2_000],
            content_hash=email_content_hash(raw) if raw and channel == "email" else "",
            **fields,  # type: ignore[arg-type]
        )
    except Exception as exc:
        return InboundMessage(
            source=source,
            channel=channel,
            external_id=external_id,
            sender_address="",
            sender_name="",
            received_at=received_at,
            raw=raw,
            parse_error=f"record: {type(exc).__name__}: {exc}",
        )


def _header_address(msg: Message, header: str) -> tuple[str, str]:
    return _address(_raw(msg, header))


def _parse_into(fields: dict[str, object], errors: list[str], raw: bytes, measured=None) -> None:
    def step(name: str, call: Callable[[], T]) -> T | None:
        try:
            return call()
        except Exception as exc:
            errors.append(f"{name}: {type(exc).__name__}: {exc}")
            return None

    # The splitter's tree, or the stdlib's where it declines: the stdlib parser stays the definition
    # of the tree. Should the splitter ever fail, the stdlib reads the mail as it would have anyway.
    try:
        msg: Message | None = split_message(raw)
    except Exception:
        msg = None
    if msg is None:
        msg = step("structure", partial(email.message_from_bytes, raw, policy=compat32))
    if not isinstance(msg, Message):
        # Too broken (or too deep) to parse as MIME: keep what the header block says.
        msg = step(
            "headers-only",
            lambda: email.parser.BytesParser(policy=compat32).parsebytes(raw, headersonly=True),
        )
        if not isinstance(msg, Message):
            fields["body_text"] = _truncate(strip_control(decode_bytes(raw, None)))
            return
        fields["body_text"] = _truncate(strip_control(decode_bytes(raw.split(b"\n\n", 1)[-1], None)).strip())

    headers: dict[str, str] = {}
    index = _header_index(msg)
    for key in KEPT_HEADERS:
        values = index.get(key)
        if values:
            value = values[0]
            decoded = step(key, partial(decode_header_value, value))
            if decoded is not None:
                headers[key] = _cap(decoded, _MAX_HEADER_CHARS)
    if "return-path" in headers:
        # "<>" is what marks a bounce-like message; keep it exactly, but unwrap a real address.
        headers["return-path"] = headers["return-path"].strip()

    fields["external_id"] = _cap(step("message-id", lambda: _message_id(_raw(msg, "Message-ID"))) or "", MAX_ID_CHARS)
    fields["subject"] = _cap(
        step("subject", lambda: decode_header_value(_raw(msg, "Subject"))) or "", MAX_SUBJECT_CHARS
    )

    sender = step("from", lambda: _address(_raw(msg, "From"))) or ("", "")
    name, address = sender
    if not address:
        for header in ("Sender", "Return-Path"):
            fallback = step(header.lower(), partial(_header_address, msg, header)) or ("", "")
            if fallback[1]:
                address = fallback[1]
                name = name or fallback[0]
                break
    fields["sender_name"], fields["sender_address"] = _cap(name, MAX_NAME_CHARS), _cap(address, MAX_ADDRESS_CHARS)

    recipients = step("recipients", lambda: _address_list(_raw_all(msg, "To") + _raw_all(msg, "Cc"))) or ()
    if len(recipients) > MAX_RECIPIENTS or any(len(r) > MAX_ADDRESS_CHARS for r in recipients):
        recipients = tuple(dict.fromkeys(_cap(r, MAX_ADDRESS_CHARS) for r in recipients[:MAX_RECIPIENTS]))
    fields["recipients"] = recipients
    parents = step("in-reply-to", lambda: _id_list(_raw(msg, "In-Reply-To"))) or []
    fields["in_reply_to"] = _cap(parents[0], MAX_ID_CHARS) if parents else ""
    references = step("references", lambda: _id_list(_raw(msg, "References"))) or []
    fields["references"] = _cap_references(references)

    body = step("body", lambda: _read_body(msg, errors) if measured is None else _read_body(msg, errors, measured))
    content_types: list[str] = []
    if body is not None:
        text, html_text, attachments, content_types = body
        if "body_text" not in fields or text or html_text:
            fields["body_text"] = _truncate(text or html_text)
        fields["body_html_text"] = _truncate(html_text)
        fields["attachments"] = tuple(attachments)

    classified = step(
        "classification",
        lambda: _classify(
            msg,
            headers,
            str(fields.get("subject", "")),
            address,
            name,
            str(fields.get("body_text", "")),
            content_types,
        ),
    )
    if classified:
        fields["kind"], fields["bulk"] = classified
    if fields.get("kind") == "bounce":
        # x-bounced-message-id, x-bounce-recipient, -original-recipient, -status, -category, -reason
        details = step("bounce details", lambda: bounce_details(msg, str(fields.get("body_text", ""))))
        for key, value in (details or {}).items():
            headers[key] = _cap(value, MAX_ID_CHARS if key == "x-bounced-message-id" else _MAX_HEADER_CHARS)
    fields["headers"] = headers


def parse_file(file: BinaryIO, *, source: str, received_at: datetime, size: int | None = None) -> InboundMessage:
    """The `InboundMessage` of the mail in a binary file, parsed through its bounded view
    (spooled.py); `raw` is left empty (the caller stores the file), `content_hash` is the whole
    message's."""
    view = spooled.build_view(file)
    file.seek(0)
    content_hash = email_content_hash_of_file(file)
    if size is None:
        size = file.tell()
    message = parse_message(view.data, source=source, received_at=received_at, measured=spooled.measured_part(view))
    notes = [f"message of {size} bytes: the parser read a bounded part of it; the original is kept in full"]
    if view.parts_left_out:
        notes.append(f"{view.parts_left_out} parts past the parser's bound not read")
    body_text = message.body_text
    if view.text_cut and not body_text.endswith("the original is kept in full]"):
        body_text += (
            f"\n\n[agentdesk: message truncated, only its first {spooled.VIEW_BYTES // (1024 * 1024)} MiB "
            "were read; the original is kept in full]"
        )
    external_id = message.external_id
    if external_id.startswith("sha256:"):  # the view's digest would name the view, not the message
        external_id = "sha256:" + spooled.file_sha256(file)
    return dataclasses.replace(
        message,
        raw=b"",
        content_hash=content_hash,
        body_text=body_text,
        external_id=external_id,
        parse_error="; ".join(filter(None, [message.parse_error, *notes]))[:2_000],
    )


# --- batches, for the sync's parser processes ------------------------------------------------------

UNKNOWN_SENDER = "unknown-sender@invalid"


def ensure_sender(message: InboundMessage) -> InboundMessage:
    """A mail with no readable sender is still stored (flagged), under a placeholder address."""
    if message.sender_address:
        return message
    note = "no sender address could be read; stored under " + UNKNOWN_SENDER
    return dataclasses.replace(
        message,
        sender_address=UNKNOWN_SENDER,
        parse_error="; ".join(filter(None, [message.parse_error, note])),
    )


def ready() -> None:
    """Nothing: the sync submits it to start its parser processes (importing this module) early."""


def parse_fetched(items: Sequence[tuple[int, datetime, bytes]], source: str) -> list[tuple[int, InboundMessage]]:
    """Parse fetched mail: (uid, internal date, raw) -> (uid, message). Lives here, not in sync.py,
    so a parser process started with "spawn" imports this module alone (not the database layer)."""
    return [(uid, ensure_sender(parse_message(raw, source=source, received_at=date))) for uid, date, raw in items]


def attachments_of_raw(raw: bytes) -> list:
    """Every attachment of a stored mail with its whole bytes, in the order the sync's parse lists
    them. Parses the whole message (no bounded view): for taking one attachment out of a kept raw
    message on demand, not for the sync."""
    msg = email.message_from_bytes(raw, policy=compat32)
    _text, _html, attachments, _types = _read_body(msg, [])
    return attachments
