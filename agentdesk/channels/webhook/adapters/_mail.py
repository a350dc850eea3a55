"""Shared by the email-shaped adapters: header semantics come from the email channel's parser."""

from __future__ import annotations

from datetime import datetime, timezone

from agentdesk.channels.base import InboundMessage
from agentdesk.channels.email import mime


def header_record(headers: list[tuple[str, str]], *, received_at: datetime, raw: bytes | None = None) -> InboundMessage:
    """Message-ID, In-Reply-To, References, kind and bulk, read by the same rules as IMAP mail.

    Provider payloads give headers as name/value pairs; they are turned back into a header block
    so auto-replies, bounces and list mail are classified exactly as in the email channel.
    """
    if raw is None:
        lines = []
        for name, value in headers:
            name = "".join(ch for ch in str(name) if 32 < ord(ch) < 127 and ch != ":")
            value = " ".join(str(value).splitlines())
            if name:
                lines.append(f"{name}: {value}")
        raw = ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8", "replace")
    return mime.parse_message(raw, source="", received_at=received_at)


def header_date(value: object, fallback: datetime) -> datetime:
    """A Date header as an aware time; the fallback when it is missing, unreadable or naive."""
    from email.utils import parsedate_to_datetime

    if not value:
        return fallback
    try:
        parsed = parsedate_to_datetime(str(value))
    except (TypeError, ValueError, IndexError):
        return fallback
    return parsed.astimezone(timezone.utc) if parsed.tzinfo is not None else fallback
