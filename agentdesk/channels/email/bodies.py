"""A message's body text (plain, HTML as text, or the best fallback) and its attachments."""

from __future__ import annotations

import email.utils
import mimetypes
import re
from collections.abc import Callable
from email.message import Message
from functools import partial

from agentdesk.channels.base import InboundAttachment
from agentdesk.channels.email.decoding import (
    _first_token,
    _header_index,
    _raw,
    _restore_bytes,
    decode_bytes,
    decode_header_value,
)
from agentdesk.channels.email.mime_tree import _part_bytes, _part_text, _safe, _walk, content_charset
from agentdesk.channels.email.spooled import MeasuredAttachment
from agentdesk.sanitize import html_to_text, safe_filename, strip_control

# Bodies longer than this are cut with a note; the raw message is kept whole.
MAX_BODY_CHARS = 2_000_000


_NAMED_BY = ("content-disposition", "content-type")
_SURROGATE = re.compile("[\ud800-\udfff]")


def _filename(part: Message) -> str:
    # With 8-bit bytes in the parameter, compat32 hands back U+FFFD for each: re-read the
    # parameters from the stored headers, decoded as `decode_bytes` would.
    index = _header_index(part)
    if not any("name" in value.lower() for name in _NAMED_BY for value in index.get(name, ())):
        return ""  # neither filename= nor name= (nor their RFC 2231 forms): most parts, cheaply
    raw = [(k, v) for k, v in part.raw_items() if str(k).lower() in _NAMED_BY]
    if any(any("\udc80" <= c <= "\udcff" for c in str(v)) for _, v in raw):
        clean = Message()
        for key, value in raw:
            clean[key] = _restore_bytes(str(value))
        part = clean
    name: object = _safe(part.get_filename)
    if not name:
        name = _safe(lambda: part.get_param("name"))
    if isinstance(name, tuple):  # an RFC 2231 value email.utils did not collapse
        rfc2231_value = name
        name = _safe(lambda: email.utils.collapse_rfc2231_value(rfc2231_value), "")
    if not isinstance(name, str) or not name.strip():
        return ""
    return decode_header_value(name)


def _disposition(part: Message) -> str:
    fields = _header_index(part).get("content-disposition")
    if not fields:
        return ""
    # `part.get` gives a value with 8-bit bytes as a Header, whose text differs from the field's.
    return _first_token(fields[0] if _SURROGATE.search(fields[0]) is None else str(part.get("Content-Disposition")))


def _truncate(text: str) -> str:
    if len(text) <= MAX_BODY_CHARS:
        return text
    hidden = len(text) - MAX_BODY_CHARS
    return (
        text[:MAX_BODY_CHARS] + f"\n\n[agentdesk: message truncated, {hidden} more characters not shown; "
        "the original is kept in full]"
    )


def _attachment_name(part: Message, ctype: str, index: int) -> str:
    name = _filename(part)
    if not name and ctype in ("message/rfc822", "message/global"):
        sub = part.get_payload()
        if isinstance(sub, list) and sub and isinstance(sub[0], Message):
            subject = decode_header_value(_raw(sub[0], "Subject"))
            name = f"{subject[:80]}.eml" if subject else ""
    if not name:
        extension = {
            "message/rfc822": ".eml",
            "message/delivery-status": ".txt",
            "text/rfc822-headers": ".txt",
            "message/disposition-notification": ".txt",
            "message/feedback-report": ".txt",
        }.get(ctype) or (mimetypes.guess_extension(ctype) or ".bin")
        base = ctype.split("/", 1)[-1] if ctype.startswith(("message/", "text/")) else "attachment"
        name = f"{base}-{index}{extension}"
    return safe_filename(name)


def _read_body(
    msg: Message,
    errors: list[str],
    measured: Callable[[Message], tuple[int, str] | None] | None = None,
) -> tuple[str, str, list[InboundAttachment], list[str]]:
    """(text, html as text, attachments, content types in tree order) of a parsed message.

    `measured`: for a message parsed through its bounded view (spooled.py), the whole size and
    SHA-256 of a part the view cut short, which its attachment then carries instead of data."""
    plain: str | None = None
    html: str | None = None
    fallback_text: str | None = None
    attachments: list[InboundAttachment] = []
    content_types: list[str] = []
    for index, (part, _depth, ctype) in enumerate(_walk(msg)):
        ctype = ctype or "application/octet-stream"
        content_types.append(ctype)
        if ctype.startswith("multipart/"):
            payload = part.get_payload()
            if isinstance(payload, str) and fallback_text is None:
                # A multipart without a usable boundary: its text is all there is to read.
                fallback_text = _part_text(part)
            continue
        try:
            filename = _filename(part)
            disposition = _disposition(part)
            is_attachment = bool(filename) or disposition == "attachment"
            if not is_attachment and ctype == "text/plain" and plain is None:
                plain = _part_text(part)
                continue
            if not is_attachment and ctype == "text/html" and html is None:
                html = _part_text(part)
                continue
            if not is_attachment and ctype in ("text/plain", "text/html"):
                continue  # further alternatives of a body already read
            data = _part_bytes(part)
            whole = measured(part) if measured is not None else None
            if fallback_text is None and (
                ctype in ("message/delivery-status", "text/rfc822-headers") or ctype.startswith("text/")
            ):
                fallback_text = decode_bytes(data, _safe(partial(content_charset, part)))
            name = _attachment_name(part, ctype, len(attachments) + 1)
            attachments.append(
                InboundAttachment(filename=name, content_type=ctype, data=data)
                if whole is None
                else MeasuredAttachment(filename=name, content_type=ctype, data=b"", size=whole[0], sha256=whole[1])
            )
        except Exception as exc:
            errors.append(f"part {index} ({ctype}): {type(exc).__name__}: {exc}")
    html_text = ""
    if html:
        html_text = html_to_text(html)
    text = strip_control(plain).strip("\n") if plain else ""
    if not text and not html_text and fallback_text:
        text = strip_control(fallback_text).strip("\n")
    return text, html_text, attachments, content_types
