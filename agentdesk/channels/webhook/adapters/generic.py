"""agentdesk's own format (docs/webhook-schema.md): one event per JSON file, validated by the schema."""

from __future__ import annotations

from agentdesk.channels.webhook import schema
from agentdesk.channels.webhook.adapters import (
    Draft,
    Item,
    Payload,
    Rejected,
    StatusUpdate,
    b64_attachment,
    html_text,
    iso_time,
    text,
    url_attachment,
)


def identities_of(party: dict) -> dict[str, str]:
    """Identity kind -> address for a schema `sender`/`recipient` (a handle serves chat and social)."""
    found: dict[str, str] = {}
    if party.get("email"):
        found["email"] = party["email"].strip()
    if party.get("phone"):
        found["phone"] = party["phone"].strip()
    if party.get("handle"):
        found["chat"] = found["social"] = party["handle"].strip()
    return found


def parse(payload: Payload) -> list[Item]:
    if payload.media_type != "application/json":
        raise Rejected(f"the generic adapter takes JSON; got a {payload.media_type or 'untyped'} body")
    event = payload.json()
    try:
        schema.validate(event)
    except schema.SchemaError as error:
        raise Rejected(f"schema error: {error}") from None
    if event.get("type") == "status":
        status = event["status"]
        return [StatusUpdate(external_id=status["message_id"], state=status["state"], error=text(status.get("error")))]
    attachments = []
    lines = []
    for index, item in enumerate(event.get("attachments", [])):
        if "base64" in item:
            attachments.append(
                b64_attachment(item["name"], item.get("content_type"), item["base64"], f"$.attachments[{index}].base64")
            )
        else:
            attachment, line = url_attachment(item["name"], item.get("content_type"), item["url"])
            attachments.append(attachment)
            lines.append(line)
    body = text(event.get("text"))
    if lines:
        body = "\n".join([body, *lines]) if body else "\n".join(lines)
    sender = event["sender"]
    conversation = event.get("conversation", {})
    recipient = event.get("recipient", {})
    return [
        Draft(
            external_id=event["id"],
            identities=identities_of(sender),
            sender_name=text(sender.get("name")),
            received_at=iso_time(event["timestamp"], "$.timestamp") if "timestamp" in event else payload.written_at,
            subject=text(event.get("subject")),
            body_text=body,
            body_html_text=html_text(event.get("html")),
            in_reply_to=event.get("in_reply_to", ""),
            recipients=tuple(identities_of(recipient).values())[:1] if recipient else (),
            conversation_hint=conversation.get("ref", ""),
            thread_key=conversation.get("thread_key", ""),
            attachments=tuple(attachments),
            channel=event.get("kind", ""),
        )
    ]
