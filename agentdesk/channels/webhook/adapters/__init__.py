"""Provider payloads in, plain records out: one module per payload format.

An adapter is a function `parse(payload) -> list[Item]`. It never touches the database or the
disk. It returns:

- `Draft` records for messages a customer wrote (each with every identity the payload gives for
  the sender, so a spool of any channel kind can pick the one its kind is matched by);
- `StatusUpdate` records for provider delivery callbacks (they never become inbound messages);
- an empty list for events it recognises and deliberately ignores (a chat widget opened, a
  template was approved), so the file is handled input, not an error;

and raises `Rejected` with an exact, human-readable reason for anything it cannot accept.

The registry is `agentdesk.config.SPOOL_ADAPTERS`, a tuple of module names: an adapter is the
module `adapters/<name>.py` with its `parse`, plus its name there (the config checks a spool's
`adapter` against it without importing the channels). `adapter_for` imports the module by name.
"""

from __future__ import annotations

import base64
import binascii
import email.parser
import email.policy
import importlib
import json
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from agentdesk.channels.base import InboundAttachment
from agentdesk.config import SPOOL_ADAPTERS
from agentdesk.sanitize import html_to_text, inert_line, safe_filename, strip_control


class Rejected(Exception):
    """The payload cannot be accepted; `str(error)` is the reason written to the `.error` sidecar."""


@dataclass(frozen=True)
class Payload:
    """One spool file decoded into its content type and body, with the time it was written."""

    name: str
    content_type: str  # "application/json" for *.json files
    body: bytes
    written_at: datetime  # the file's mtime: the receiver's clock when the provider gave no time

    @property
    def media_type(self) -> str:
        return self.content_type.split(";", 1)[0].strip().lower()

    def json(self) -> Any:
        if self.media_type != "application/json" and not self.media_type.endswith("+json"):
            raise Rejected(f"expected a JSON payload, got a {self.media_type or 'untyped'} body")
        try:
            text = self.body.decode("utf-8-sig")
        except UnicodeDecodeError as error:
            raise Rejected(f"invalid JSON: not UTF-8 text (byte {error.start})") from None
        try:
            return json.loads(text)
        except json.JSONDecodeError as error:
            raise Rejected(f"invalid JSON: {error.msg} at line {error.lineno} column {error.colno}") from None

    def form(self) -> dict[str, str]:
        """An application/x-www-form-urlencoded body; the first value of each field."""
        try:
            text = self.body.decode("utf-8")
        except UnicodeDecodeError as error:
            raise Rejected(f"form body is not UTF-8 text (byte {error.start})") from None
        try:
            pairs = urllib.parse.parse_qsl(text, keep_blank_values=True, strict_parsing=bool(text.strip()))
        except ValueError as error:
            raise Rejected(f"invalid form body: {error}") from None
        fields: dict[str, str] = {}
        for key, value in pairs:
            fields.setdefault(key, value)
        return fields

    def multipart(self) -> tuple[dict[str, str], list[InboundAttachment]]:
        """A multipart/form-data body: text fields by name, and the uploaded files."""
        if "boundary=" not in self.content_type:
            raise Rejected(f"multipart body without a boundary in its Content-Type ({self.content_type!r})")
        head = f"Content-Type: {self.content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode("latin-1", "replace")
        message = email.parser.BytesParser(policy=email.policy.compat32).parsebytes(head + self.body)
        if not message.is_multipart():
            raise Rejected("multipart body could not be split into parts")
        fields: dict[str, str] = {}
        files: list[InboundAttachment] = []
        parts: list[email.message.Message] = message.get_payload()  # type: ignore[assignment]  # multipart: its parts
        for part in parts:
            disposition = part.get("Content-Disposition", "")
            name = part.get_param("name", header="content-disposition")
            filename = part.get_filename()
            data: bytes = part.get_payload(decode=True) or b""  # type: ignore[assignment]  # decoded: bytes
            if filename or "attachment" in disposition.lower():
                files.append(
                    InboundAttachment(
                        filename=safe_filename(filename or name or ""),  # type: ignore[arg-type]  # name=: a str
                        content_type=part.get_content_type(),
                        data=data,
                    )
                )
            elif name:
                charset = part.get_content_charset() or "utf-8"
                try:
                    value = data.decode(charset, "replace")
                except LookupError:
                    value = data.decode("utf-8", "replace")
                # multipart form fields end with the CRLF before the next boundary; that is framing
                fields.setdefault(str(name), value)
        if not fields and not files:
            raise Rejected("multipart body has no form fields")
        return fields, files


@dataclass(frozen=True)
class Draft:
    """A message a customer wrote, before the spool gives it a source and a channel kind.

    `identities` maps identity kinds (email, phone, chat, social) to the sender's address of that
    kind; the spool uses the one its channel kind is matched by and links the others.
    """

    external_id: str
    identities: dict[str, str]
    sender_name: str
    received_at: datetime
    subject: str = ""
    body_text: str = ""
    body_html_text: str = ""
    kind: str = "message"
    bulk: bool = False
    in_reply_to: str = ""
    references: tuple[str, ...] = ()
    recipients: tuple[str, ...] = ()
    conversation_hint: str = ""
    thread_key: str = ""
    attachments: tuple[InboundAttachment, ...] = ()
    headers: dict[str, str] = field(default_factory=dict)
    channel: str = ""  # set only when the payload names its own channel kind (generic format)
    parse_error: str = ""


@dataclass(frozen=True)
class StatusUpdate:
    """A provider's delivery callback about one of our outbound messages."""

    external_id: str  # the id of the outbound message the provider reports on
    state: str  # queued | sent | delivered | read | failed
    error: str = ""

    def __post_init__(self) -> None:
        # Not an InboundMessage, so made inert here: the error is shown as a reply's delivery.
        for name in ("external_id", "state", "error"):
            value = getattr(self, name)
            if inert_line(value) != value:
                object.__setattr__(self, name, inert_line(value))


Item = Draft | StatusUpdate
Adapter = Callable[[Payload], list[Item]]

# Delivery states of providers mapped to our outbox states (None: no change).
DELIVERED_STATES = {"sent", "delivered", "read", "played", "received"}
FAILED_STATES = {"failed", "undelivered", "bounced", "bounce", "rejected", "canceled"}


def text(value: Any) -> str:
    """A payload value as display-safe text: None -> "", numbers -> str, controls stripped."""
    if value is None:
        return ""
    if not isinstance(value, str):
        value = str(value)
    return strip_control(value)


def html_text(value: Any) -> str:
    return html_to_text(value) if isinstance(value, str) and value.strip() else ""


def b64_attachment(name: Any, content_type: Any, data: Any, where: str) -> InboundAttachment:
    if not isinstance(data, str):
        raise Rejected(f"{where}: expected base64 text, got {type(data).__name__}")
    try:
        decoded = base64.b64decode(data.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError) as error:
        raise Rejected(f"{where}: not valid base64 ({error})") from None
    return InboundAttachment(
        filename=safe_filename(text(name)), content_type=text(content_type) or "application/octet-stream", data=decoded
    )


def url_attachment(name: Any, content_type: Any, url: Any) -> tuple[InboundAttachment, str]:
    """A linked attachment: the sync's spool source downloads it before ingest, bounded
    (channels/webhook/fetch.py); the adapter never fetches. Also shown as a line of the body."""
    filename = safe_filename(text(name) or text(url).rsplit("/", 1)[-1])
    line = f"[attachment: {filename} ({text(content_type) or 'unknown type'}) {text(url)}]"
    return InboundAttachment(
        filename=filename, content_type=text(content_type) or "application/octet-stream", data=b"", url=text(url)
    ), line


def epoch(value: Any, where: str) -> datetime:
    try:
        return datetime.fromtimestamp(int(float(value)), tz=timezone.utc)
    except (TypeError, ValueError, OverflowError, OSError):
        raise Rejected(f"{where}: expected a Unix timestamp, got {value!r}") from None


def iso_time(value: Any, where: str) -> datetime:
    """An RFC 3339 / ISO 8601 time with offset (a trailing Z is UTC)."""
    if not isinstance(value, str):
        raise Rejected(f"{where}: expected an ISO 8601 time with offset, got {value!r}")
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise Rejected(f"{where}: expected an ISO 8601 time with offset, got {value!r}") from None
    if parsed.tzinfo is None:
        raise Rejected(f"{where}: the time {value!r} has no UTC offset; add Z or +hh:mm")
    return parsed.astimezone(timezone.utc)


def require_object(value: Any, where: str) -> dict:
    if not isinstance(value, dict):
        raise Rejected(f"{where}: expected a JSON object, got {_json_type(value)}")
    return value


def _json_type(value: Any) -> str:
    return {
        dict: "an object",
        list: "an array",
        str: "a string",
        int: "a number",
        float: "a number",
        bool: "a boolean",
        type(None): "null",
    }.get(type(value), type(value).__name__)


def adapter_for(name: str) -> Adapter:
    """The `parse` function of the adapter registered as `name` in config.SPOOL_ADAPTERS."""
    if name not in SPOOL_ADAPTERS:
        raise Rejected(f"unknown adapter {name!r}; expected one of: {', '.join(SPOOL_ADAPTERS)}")
    return importlib.import_module(f"{__name__}.{name}").parse
