"""Chatwoot webhooks: `message_created` for an incoming message of a contact; other events ignored.

Chatwoot (an open-source help desk) posts every account event to a webhook URL. Only incoming,
non-private messages of a contact become inbound messages; our own outgoing messages, private
notes, activity lines and every other event (webwidget_triggered, conversation_status_changed,
message_updated…) are recognised and ignored. The contact is identified by a handle
`chatwoot:<account>:<contact id>`, plus the email and phone Chatwoot knows, which link the chat
customer to the same person writing by email or SMS.
"""

from __future__ import annotations

from agentdesk.channels.webhook.adapters import (
    Draft,
    Item,
    Payload,
    Rejected,
    epoch,
    iso_time,
    require_object,
    text,
    url_attachment,
)
from agentdesk.domain.customers import normalise_phone
from agentdesk.errors import InvalidInput

KNOWN_EVENTS = {
    "message_created",
    "message_updated",
    "conversation_created",
    "conversation_updated",
    "conversation_status_changed",
    "conversation_resolved",
    "conversation_opened",
    "webwidget_triggered",
    "contact_created",
    "contact_updated",
    "conversation_typing_on",
    "conversation_typing_off",
}
_INCOMING = ("incoming", 0)


def parse(payload: Payload) -> list[Item]:
    data = require_object(payload.json(), "chatwoot payload")
    event = data.get("event")
    if event not in KNOWN_EVENTS:
        raise Rejected(f"chatwoot payload: unknown event {event!r}; expected one of {', '.join(sorted(KNOWN_EVENTS))}")
    if event != "message_created":
        return []
    if (
        data.get("message_type") not in _INCOMING
        or data.get("private")
        or (data.get("sender") or {}).get("type", "contact") != "contact"
    ):
        return []  # our own replies, private notes, activity messages
    for required in ("id", "sender", "conversation", "account"):
        if required not in data:
            raise Rejected(f"chatwoot message_created: required field {required!r} is missing")
    sender = require_object(data["sender"], "chatwoot message_created: sender")
    conversation = require_object(data["conversation"], "chatwoot message_created: conversation")
    account = require_object(data["account"], "chatwoot message_created: account")
    if sender.get("id") is None or account.get("id") is None or conversation.get("id") is None:
        raise Rejected("chatwoot message_created: sender.id, account.id and conversation.id are required")
    handle = f"chatwoot:{account['id']}:{sender['id']}"
    identities = {"chat": handle, "social": handle}
    contact = (
        ((conversation.get("meta") or {}).get("sender") or {}) if isinstance(conversation.get("meta"), dict) else {}
    )
    for source in (sender, contact):
        if isinstance(source.get("email"), str) and "@" in source["email"]:
            identities.setdefault("email", source["email"].strip().lower())
        if isinstance(source.get("phone_number"), str) and source["phone_number"].strip():
            try:
                identities.setdefault("phone", normalise_phone(source["phone_number"]))
            except InvalidInput:
                pass  # a malformed phone in the CRM is not a reason to lose the message
    created = data.get("created_at")
    if isinstance(created, (int, float)) or (isinstance(created, str) and created.isdigit()):
        received_at = epoch(created, "chatwoot message_created: created_at")
    elif isinstance(created, str):
        received_at = iso_time(created, "chatwoot message_created: created_at")
    else:
        received_at = payload.written_at
    lines, attachments = [], []
    for item in data.get("attachments") or []:
        if isinstance(item, dict) and item.get("data_url"):
            attachment, line = url_attachment(
                item.get("data_url", "").rsplit("/", 1)[-1], item.get("file_type"), item["data_url"]
            )
            attachments.append(attachment)
            lines.append(line)
    body = text(data.get("content"))
    if lines:
        body = "\n".join([body, *lines]) if body else "\n".join(lines)
    return [
        Draft(
            external_id=f"chatwoot:{account['id']}:{data['id']}",
            identities=identities,
            sender_name=text(sender.get("name")),
            received_at=received_at,
            body_text=body,
            thread_key=f"chatwoot:{account['id']}:{conversation['id']}",
            attachments=tuple(attachments),
        )
    ]
