"""Replies on spool conversations, on the wire: the reply document, its signature, its transports.

A reply goes out as one event of the generic schema (docs/webhook-schema.md: `id` is our message
id, `recipient` is the customer's address on the conversation's channel, `conversation` carries
our ref and the provider's thread key), through the spool's transport:

- `outbound = { spool = DIR }`: one JSON file per reply, written Maildir-style (tmp/ then new/)
  and named after the message id, so a retry after a crash rewrites the same file rather than
  adding a second one;
- `outbound = { url = URL }`: POST with `X-Agentdesk-Signature: sha256=<hex>` (the spool's
  secret) and `X-Agentdesk-Event-Id`, so the gateway can verify it and drop a repeated delivery.

A transport raises `DeliveryError`, permanent for an HTTP 4xx other than 408/425/429. Which
replies are due, what goes into the document and what becomes of a failure is the outbox's
business (`agentdesk.sync.delivery`, `agentdesk.sync.senders.SpoolSender`): nothing here touches
the database.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import json
import re
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from agentdesk.channels.base import DeliveryError, DeliveryOutcomeUnknown
from agentdesk.channels.webhook import spool as spooling
from agentdesk.config import SpoolSettings
from agentdesk.sanitize import safe_filename

HTTP_TIMEOUT = 10.0
SIGNATURE_HEADER = "X-Agentdesk-Signature"
_RETRYABLE_HTTP = {408, 425, 429}


# Hands one reply document to the other side; the provider's id of it when the other side said
# one (else ""); raises DeliveryError.
Transport = Callable[[dict[str, Any]], str]


def sign(body: bytes, secret: str) -> str:
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def _iso(value: datetime) -> str:
    return value.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


_PARTY_FIELD = {"email": "email", "phone": "phone", "chat": "handle", "social": "handle"}


def reply_document(
    *,
    event_id: str,
    channel: str,
    at: datetime,
    author: str | None,
    author_login: str | None,
    ref: str,
    subject: str,
    text: str,
    source: str,
    message_kind: str,
    recipient_kind: str = "",
    recipient_address: str = "",
    recipient_name: str = "",
    thread_key: str = "",
    in_reply_to: str = "",
    attachments: Sequence[tuple[str, str, bytes]] = (),
) -> dict[str, Any]:
    """One outbound reply as an event of the generic schema.

    `recipient_kind` is the identity kind (email, phone, chat, social) of `recipient_address`,
    the customer's address on the conversation's channel; no address, no `recipient`.
    """
    recipient: dict[str, str] = {}
    if recipient_address:
        recipient[_PARTY_FIELD.get(recipient_kind, "handle")] = recipient_address
        if recipient_name and recipient_name != recipient_address:
            recipient["name"] = recipient_name
    document: dict[str, Any] = {
        "id": event_id,
        "type": "message",
        "kind": channel,
        "timestamp": _iso(at),
        "sender": {"name": author or "agentdesk", "handle": f"agentdesk:{author_login or 'system'}"},
        "conversation": {"ref": ref},
        "subject": subject,
        "text": text,
        "metadata": {"source": source, "message_kind": message_kind},
    }
    if recipient:
        document["recipient"] = recipient
    if thread_key:
        document["conversation"]["thread_key"] = thread_key
    if in_reply_to:
        document["in_reply_to"] = in_reply_to
    if attachments:
        # The same shape a generic payload's inbound attachments take (docs/webhook-schema.md).
        document["attachments"] = [
            {
                "name": safe_filename(name),
                "content_type": content_type,
                "size": len(data),
                "base64": base64.b64encode(data).decode("ascii"),
            }
            for name, content_type, data in attachments
        ]
    return document


# --- transports ---------------------------------------------------------------------------------

_UNSAFE = re.compile(r"[^A-Za-z0-9._@+-]")


def spool_transport(directory: Path) -> Transport:
    """Write each reply as `<message id>.json` into an outbound spool directory (tmp/ then new/)."""

    def send(document: dict[str, Any]) -> str:
        name = _UNSAFE.sub("_", document["id"])[:200] + ".json"
        try:
            spooling.ensure_spool(directory)
            if (directory / "new" / name).exists() or (directory / "cur" / name).exists():
                return ""  # already handed over (a retry after a crash between writing and recording)
            spooling.write_file(directory, json.dumps(document, ensure_ascii=False).encode("utf-8"), name=name)
        except OSError as error:
            raise DeliveryError(f"cannot write to the outbound spool {directory}: {error.strerror or error}") from None
        return ""

    return send


def url_transport(url: str, secret: str, *, timeout: float = HTTP_TIMEOUT) -> Transport:
    """POST each reply as JSON, signed with the spool's secret."""

    def send(document: dict[str, Any]) -> str:
        body = json.dumps(document, ensure_ascii=False).encode("utf-8")
        request = urllib.request.Request(
            url,
            data=body,
            method="POST",
            headers={
                "Content-Type": "application/json",
                SIGNATURE_HEADER: sign(body, secret),
                "X-Agentdesk-Event-Id": document["id"],
                "User-Agent": "agentdesk-outbound/1",
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                answer = response.read(65536)
        except urllib.error.HTTPError as error:
            detail = error.read(300).decode("utf-8", "replace").strip().splitlines()
            reason = f"{url} answered HTTP {error.code}" + (f": {detail[0]}" if detail else "")
            raise DeliveryError(
                reason, permanent=400 <= error.code < 500 and error.code not in _RETRYABLE_HTTP
            ) from None
        except urllib.error.URLError as error:  # raised while connecting or writing the request
            raise DeliveryError(f"{url} could not be reached: {error.reason}") from None
        except (OSError, http.client.HTTPException) as error:
            # The request was written in full; the answer timed out or the connection dropped
            # before it. The receiver may have taken the reply: never retried on its own.
            raise DeliveryOutcomeUnknown(
                f"{url} took the request, then no answer came ({error or type(error).__name__}): "
                "it may have been delivered"
            ) from None
        return provider_id_of(answer)

    return send


def provider_id_of(answer: bytes) -> str:
    """The provider's id of a reply, from the gateway's answer to our POST: `{"provider_id": …}`
    (docs/webhooks.md), or the provider's own answer passed on as it came (Twilio's message
    resource `sid`, the WhatsApp Cloud API's `messages[0].id`); "" when it names none."""
    try:
        data = json.loads(answer)
    except ValueError:
        return ""
    if not isinstance(data, dict):
        return ""
    for key in ("provider_id", "sid"):
        if isinstance(data.get(key), str) and data[key].strip():
            return data[key].strip()
    messages = data.get("messages")
    if isinstance(messages, list) and messages and isinstance(messages[0], dict):
        found = messages[0].get("id")
        if isinstance(found, str) and found.strip():
            return found.strip()
    return ""


def transport_for(
    spool: SpoolSettings, *, base: Path | None = None, secret: Callable[[], str] | None = None
) -> Transport | None:
    """The transport configured for a spool, or None when replies on it have nowhere to go."""
    if spool.outbound.spool:
        directory = Path(spool.outbound.spool).expanduser()
        if not directory.is_absolute() and base is not None:
            directory = base / directory
        return spool_transport(directory)
    if spool.outbound.url:
        if secret is None:

            def unsigned(_document: dict[str, Any]) -> str:
                raise DeliveryError(
                    f"spool {spool.name}: outbound.url needs secret_command to sign the POST", permanent=True
                )

            return unsigned
        return url_transport(spool.outbound.url, secret())
    return None
