"""Replies on spool conversations: to an outbound spool directory or an HMAC-signed HTTP POST.

A reply is already stored with an Outbox row (domain/replies.py) before anything here runs.
`deliver_due` takes the spool's due rows, renders each reply as one event of the generic schema
(docs/webhook-schema.md: `id` is our message id, `recipient` is the customer's address on the
conversation's channel, `conversation` carries our ref and the provider's thread key) and hands
it to the spool's sender:

- `outbound = { spool = DIR }`: one JSON file per reply, written Maildir-style (tmp/ then new/)
  and named after the message id, so a retry after a crash rewrites the same file rather than
  adding a second one;
- `outbound = { url = URL }`: POST with `X-Agentdesk-Signature: sha256=<hex>` (the spool's
  secret) and `X-Agentdesk-Event-Id`, so the gateway can verify it and drop a repeated delivery.

A failure is recorded on the Outbox row (attempts, last_error, next_attempt_at) and retried with
exponential backoff; a permanent failure (HTTP 4xx other than 408/425/429) or the last attempt
marks the row `failed`, which `show --json` and the TUI show.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from sqlmodel import Session, col, select

from agentdesk.channels.webhook import spool as spooling
from agentdesk.config import SpoolSettings
from agentdesk.domain import audit, customers
from agentdesk.store import db
from agentdesk.store.models import Conversation, Message, Outbox, ref_of

MAX_ATTEMPTS = 8
FIRST_DELAY = timedelta(seconds=30)
LONGEST_DELAY = timedelta(hours=1)
HTTP_TIMEOUT = 10.0
SIGNATURE_HEADER = "X-Agentdesk-Signature"
_RETRYABLE_HTTP = {408, 425, 429}


class DeliveryError(Exception):
    def __init__(self, reason: str, *, permanent: bool = False):
        super().__init__(reason)
        self.permanent = permanent


Sender = Callable[[dict[str, Any]], None]


def backoff(attempts: int) -> timedelta:
    """Wait before attempt `attempts + 1`: 30 s, 1 min, 2 min, … at most an hour."""
    return min(FIRST_DELAY * (2 ** max(attempts - 1, 0)), LONGEST_DELAY)


def sign(body: bytes, secret: str) -> str:
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def _iso(value: datetime) -> str:
    return value.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


_PARTY_FIELD = {"email": "email", "phone": "phone", "chat": "handle", "social": "handle"}


def reply_document(session: Session, message: Message, conversation: Conversation) -> dict[str, Any]:
    """One outbound reply as an event of the generic schema."""
    last_inbound = session.exec(
        select(Message).where(Message.conversation_id == conversation.id, Message.direction == "inbound")
        .order_by(col(Message.at).desc(), col(Message.id).desc())
    ).first()
    keyed = session.exec(
        select(Message.thread_key).where(Message.conversation_id == conversation.id,
                                         col(Message.thread_key).is_not(None))
        .order_by(col(Message.id).desc())
    ).first()
    recipient: dict[str, str] = {}
    if last_inbound is not None and last_inbound.sender_address:
        kind = customers.IDENTITY_KIND.get(conversation.channel, conversation.channel)
        recipient[_PARTY_FIELD.get(kind, "handle")] = last_inbound.sender_address
        if last_inbound.author and last_inbound.author != last_inbound.sender_address:
            recipient["name"] = last_inbound.author
    document: dict[str, Any] = {
        "id": message.external_id or f"agentdesk-message-{message.id}",
        "type": "message",
        "kind": conversation.channel,
        "timestamp": _iso(message.at),
        "sender": {"name": message.author or "agentdesk", "handle": f"agentdesk:{message.author_login or 'system'}"},
        "conversation": {"ref": ref_of(conversation.id)},
        "subject": message.subject,
        "text": message.body_text,
        "metadata": {"source": conversation.source, "message_kind": message.kind},
    }
    if recipient:
        document["recipient"] = recipient
    if keyed:
        document["conversation"]["thread_key"] = keyed
    if last_inbound is not None and last_inbound.external_id:
        document["in_reply_to"] = last_inbound.external_id
    return document


# --- senders ------------------------------------------------------------------------------------

_UNSAFE = re.compile(r"[^A-Za-z0-9._@+-]")


def spool_sender(directory: Path) -> Sender:
    """Write each reply as `<message id>.json` into an outbound spool directory (tmp/ then new/)."""

    def send(document: dict[str, Any]) -> None:
        name = _UNSAFE.sub("_", document["id"])[:200] + ".json"
        try:
            spooling.ensure_spool(directory)
            if (directory / "new" / name).exists() or (directory / "cur" / name).exists():
                return  # already handed over (a retry after a crash between writing and recording)
            spooling.write_file(directory, json.dumps(document, ensure_ascii=False).encode("utf-8"), name=name)
        except OSError as error:
            raise DeliveryError(f"cannot write to the outbound spool {directory}: {error.strerror or error}") from None

    return send


def url_sender(url: str, secret: str, *, timeout: float = HTTP_TIMEOUT) -> Sender:
    """POST each reply as JSON, signed with the spool's secret."""

    def send(document: dict[str, Any]) -> None:
        body = json.dumps(document, ensure_ascii=False).encode("utf-8")
        request = urllib.request.Request(url, data=body, method="POST", headers={
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign(body, secret),
            "X-Agentdesk-Event-Id": document["id"],
            "User-Agent": "agentdesk-outbound/1",
        })
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                response.read(65536)
        except urllib.error.HTTPError as error:
            detail = error.read(300).decode("utf-8", "replace").strip().splitlines()
            reason = f"{url} answered HTTP {error.code}" + (f": {detail[0]}" if detail else "")
            raise DeliveryError(reason, permanent=400 <= error.code < 500 and error.code not in _RETRYABLE_HTTP) from None
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            raise DeliveryError(f"{url} could not be reached: {reason}") from None

    return send


def sender_for(spool: SpoolSettings, *, base: Path | None = None, secret: Callable[[], str] | None = None) -> Sender | None:
    """The sender configured for a spool, or None when replies on it have nowhere to go."""
    if spool.outbound.spool:
        directory = Path(spool.outbound.spool).expanduser()
        if not directory.is_absolute() and base is not None:
            directory = base / directory
        return spool_sender(directory)
    if spool.outbound.url:
        if secret is None:
            def unsigned(_document: dict[str, Any]) -> None:
                raise DeliveryError(f"spool {spool.name}: outbound.url needs secret_command to sign the POST",
                                    permanent=True)
            return unsigned
        return url_sender(spool.outbound.url, secret())
    return None


# --- the outbox ---------------------------------------------------------------------------------


@dataclass
class DeliveryResult:
    sent: int = 0
    retrying: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)  # "AD-12: reason"


def deliver_due(engine, spool: SpoolSettings, *, sender: Sender | None, now: datetime | None = None,
                limit: int = 100) -> DeliveryResult:
    """Deliver the spool's queued replies that are due; record every outcome on its Outbox row."""
    now = now or datetime.now(timezone.utc)
    result = DeliveryResult()
    with db.read_session(engine) as session:
        rows = session.exec(
            select(Outbox, Message, Conversation)
            .join(Message, col(Message.id) == col(Outbox.message_id))
            .join(Conversation, col(Conversation.id) == col(Message.conversation_id))
            .where(Outbox.source == spool.name, Outbox.state == "queued")
            .where((col(Outbox.next_attempt_at).is_(None)) | (col(Outbox.next_attempt_at) <= now))
            .order_by(col(Outbox.id)).limit(limit)
        ).all()
        work = [(outbox.id, reply_document(session, message, conversation), conversation.id)
                for outbox, message, conversation in rows]
    for outbox_id, document, conversation_id in work:
        error: DeliveryError | None = None
        if sender is None:
            error = DeliveryError(f"spool {spool.name} has no outbound (set outbound.spool or outbound.url)",
                                  permanent=True)
        else:
            try:
                sender(document)
            except DeliveryError as failure:
                error = failure
        with db.write_session(engine) as session:
            row = session.get(Outbox, outbox_id)
            if row is None or row.state != "queued":
                continue
            row.attempts += 1
            if error is None:
                row.state, row.sent_at, row.last_error, row.next_attempt_at = "sent", now, "", None
                result.sent += 1
            else:
                row.last_error = str(error)[:2000]
                result.errors.append(f"{ref_of(conversation_id)}: {error}")
                if error.permanent or row.attempts >= MAX_ATTEMPTS:
                    row.state, row.next_attempt_at = "failed", None
                    result.failed += 1
                    audit.record(session, agent=audit.SYSTEM, action="delivery_failed", now=now,
                                 conversation_id=conversation_id, outbox_id=row.id, reason=row.last_error,
                                 attempts=row.attempts)
                else:
                    row.next_attempt_at = now + backoff(row.attempts)
                    result.retrying += 1
            session.add(row)
            session.commit()
    return result
