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
from datetime import datetime, timezone
from email.message import Message
from email.policy import compat32
from typing import Callable, Sequence

from agentdesk.channels.base import InboundMessage
from agentdesk.channels.email import feedparser_boundaries
from agentdesk.channels.email.addresses import _address, _address_list, _id_list, _message_id
# `_parse_into` looks `_read_body` up here, so a test can make it fail.
from agentdesk.channels.email.bodies import MAX_BODY_CHARS, _read_body, _truncate
from agentdesk.channels.email.content import email_content_hash
from agentdesk.channels.email.decoding import _raw, _raw_all, decode_bytes, decode_header_value
from agentdesk.channels.email.machine_mail import _bounced_id, _classify, bounce_reason, bounced_message_id
from agentdesk.sanitize import strip_control

__all__ = ["parse_message", "bounced_message_id", "bounce_reason", "MAX_BODY_CHARS"]

# The longest kept header value (and bounce reason): a hostile message can send any length.
_MAX_HEADER_CHARS = 2_000

# Headers later stages need (loop safety, bounce handling, list detection), lower-case keys.
KEPT_HEADERS = (
    "auto-submitted",
    "precedence",
    "list-id",
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
) -> InboundMessage:
    """One RFC 5322 message as an `InboundMessage`; never raises.

    `received_at` is the mailbox's own time for the message (IMAP INTERNALDATE) and is kept as
    given (a naive value is taken as UTC). Whatever cannot be read is left empty and explained
    in `parse_error`; `raw` is always the input, unchanged.
    """
    if not isinstance(raw, bytes):
        try:
            raw = raw.encode("utf-8", "surrogateescape") if isinstance(raw, str) else bytes(raw)
        except Exception:
            raw = b""
    if isinstance(received_at, datetime) and received_at.tzinfo is None:
        received_at = received_at.replace(tzinfo=timezone.utc)
    errors: list[str] = []
    fields: dict[str, object] = {}
    try:
        _parse_into(fields, errors, raw)
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


def _parse_into(fields: dict[str, object], errors: list[str], raw: bytes) -> None:
    def step(name: str, call: Callable[[], object]) -> object:
        try:
            return call()
        except Exception as exc:
            errors.append(f"{name}: {type(exc).__name__}: {exc}")
            return None

    msg = step("structure", lambda: email.message_from_bytes(raw, policy=compat32))
    if not isinstance(msg, Message):
        # Too broken (or too deep) to parse as MIME: keep what the header block says.
        msg = step(
            "headers-only",
            lambda: email.parser.BytesParser(policy=compat32).parsebytes(raw, headersonly=True),
        )
        if not isinstance(msg, Message):
            fields["body_text"] = _truncate(strip_control(decode_bytes(raw, None)))
            return
        fields["body_text"] = _truncate(
            strip_control(decode_bytes(raw.split(b"\n\n", 1)[-1], None)).strip()
        )

    headers: dict[str, str] = {}
    for key in KEPT_HEADERS:
        value = _raw(msg, key)
        if value is not None:
            decoded = step(key, lambda v=value: decode_header_value(v))
            if decoded is not None:
                headers[key] = decoded[:_MAX_HEADER_CHARS]
    if "return-path" in headers:
        # "<>" is what marks a bounce-like message; keep it exactly, but unwrap a real address.
        headers["return-path"] = headers["return-path"].strip()

    fields["external_id"] = step("message-id", lambda: _message_id(_raw(msg, "Message-ID"))) or ""
    fields["subject"] = step("subject", lambda: decode_header_value(_raw(msg, "Subject"))) or ""

    sender = step("from", lambda: _address(_raw(msg, "From"))) or ("", "")
    name, address = sender
    if not address:
        for header in ("Sender", "Return-Path"):
            fallback = step(header.lower(), lambda h=header: _address(_raw(msg, h))) or ("", "")
            if fallback[1]:
                address = fallback[1]
                name = name or fallback[0]
                break
    fields["sender_name"], fields["sender_address"] = name, address

    fields["recipients"] = step(
        "recipients", lambda: _address_list(_raw_all(msg, "To") + _raw_all(msg, "Cc"))
    ) or ()
    parents = step("in-reply-to", lambda: _id_list(_raw(msg, "In-Reply-To"))) or []
    fields["in_reply_to"] = parents[0] if parents else ""
    references = step("references", lambda: _id_list(_raw(msg, "References"))) or []
    fields["references"] = tuple(dict.fromkeys(references))

    body = step("body", lambda: _read_body(msg, errors))
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
        original = step("bounced message-id", lambda: _bounced_id(msg))
        if original:
            headers["x-bounced-message-id"] = original
        reason = step("bounce reason", lambda: bounce_reason(msg))
        if reason:
            headers["x-bounce-reason"] = reason[:_MAX_HEADER_CHARS]
    fields["headers"] = headers


# --- batches, for the sync's parser processes ------------------------------------------------------

UNKNOWN_SENDER = "unknown-sender@invalid"


def ensure_sender(message: InboundMessage) -> InboundMessage:
    """A mail with no readable sender is still stored (flagged), under a placeholder address."""
    if message.sender_address:
        return message
    note = "no sender address could be read; stored under " + UNKNOWN_SENDER
    return dataclasses.replace(
        message, sender_address=UNKNOWN_SENDER,
        parse_error="; ".join(filter(None, [message.parse_error, note])),
    )


def ready() -> None:
    """Nothing: the sync submits it to start its parser processes (importing this module) early."""


def parse_fetched(items: Sequence[tuple[int, datetime, bytes]], source: str) -> list[tuple[int, InboundMessage]]:
    """Parse fetched mail: (uid, internal date, raw) -> (uid, message). Lives here, not in sync.py,
    so a parser process started with "spawn" imports this module alone (not the database layer)."""
    return [(uid, ensure_sender(parse_message(raw, source=source, received_at=date))) for uid, date, raw in items]
