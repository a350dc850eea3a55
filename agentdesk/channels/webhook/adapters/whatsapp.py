"""WhatsApp Cloud API (Meta) webhooks: `messages` changes with inbound messages or statuses.

One POST may carry several entries, changes and messages. Inbound messages become drafts (one
per message, id `wamid…`); `statuses` (sent, delivered, read, failed) become status updates;
reactions, edits, revocations, system notices and every other field (account_update,
message_template_*, calls, smb_message_echoes…) are recognised and ignored. Media is referenced
by its media id (fetching needs the access token; agentdesk never fetches at ingest).
"""

from __future__ import annotations

from agentdesk.channels.webhook.adapters import (
    Draft,
    Item,
    Payload,
    Rejected,
    StatusUpdate,
    epoch,
    require_object,
    text,
)
from agentdesk.domain.customers import normalise_phone
from agentdesk.errors import InvalidInput

_MEDIA = ("image", "video", "document", "audio", "sticker")
_IGNORED_TYPES = {"reaction", "edit", "revoke", "system", "ephemeral", "request_welcome"}


def _phone(wa_id: str, where: str) -> str:
    try:
        return normalise_phone("+" + wa_id.lstrip("+"))
    except InvalidInput:
        raise Rejected(f"{where}: {wa_id!r} is not a phone number") from None


def _body(message: dict, where: str) -> tuple[str, str]:
    """(text, parse_error) of one inbound message by its type."""
    kind = message.get("type")
    if kind == "text":
        return text((message.get("text") or {}).get("body")), ""
    if kind in _MEDIA:
        media = message.get(kind) or {}
        name = media.get("filename") or f"{kind} {media.get('id', '')}".strip()
        line = f"[{kind}: {text(name)} ({text(media.get('mime_type')) or 'unknown type'}), WhatsApp media id {text(media.get('id'))}]"
        caption = text(media.get("caption"))
        return (f"{caption}\n{line}" if caption else line), ""
    if kind == "location":
        place = message.get("location") or {}
        label = ", ".join(text(place.get(key)) for key in ("name", "address") if place.get(key))
        return f"[location: {label + ' ' if label else ''}({place.get('latitude')}, {place.get('longitude')})]", ""
    if kind == "contacts":
        names = [text((c.get("name") or {}).get("formatted_name")) for c in message.get("contacts") or []]
        phones = [text(p.get("phone")) for c in message.get("contacts") or [] for p in c.get("phones") or []]
        return f"[shared contacts: {', '.join(filter(None, names))} {' '.join(filter(None, phones))}]".replace(
            " ]", "]"
        ), ""
    if kind == "button":
        return text((message.get("button") or {}).get("text")), ""
    if kind == "interactive":
        interactive = message.get("interactive") or {}
        reply = interactive.get("button_reply") or interactive.get("list_reply") or {}
        if reply:
            return text(reply.get("title") or reply.get("id")), ""
        if interactive.get("nfm_reply"):
            flow = interactive["nfm_reply"]
            return text(flow.get("body") or flow.get("response_json") or "[flow completed]"), ""
        if interactive.get("call_permission_reply"):
            answer = text(interactive["call_permission_reply"].get("response"))
            return f"[call permission: {answer}]", ""
        detail = text(interactive.get("type"))
        if not detail:
            return "[interactive reply without content]", f"{where}: interactive message without content"
        return f"[interactive reply: {detail}]", ""
    if kind == "order":
        order = message.get("order") or {}
        items = order.get("product_items") or []
        return (
            f"[order: {len(items)} item(s) from catalog {text(order.get('catalog_id'))}] {text(order.get('text'))}".strip(),
            "",
        )
    errors = message.get("errors") or []
    reason = "; ".join(text(e.get("title") or e.get("message")) for e in errors if isinstance(e, dict))
    return f"[unsupported WhatsApp message{': ' + reason if reason else ''}]", f"{where}: type {kind!r} not supported"


def parse(payload: Payload) -> list[Item]:
    data = require_object(payload.json(), "whatsapp payload")
    if data.get("object") != "whatsapp_business_account" or not isinstance(data.get("entry"), list):
        raise Rejected("whatsapp payload: expected object 'whatsapp_business_account' with an entry array")
    items: list[Item] = []
    for e, entry in enumerate(data["entry"]):
        entry = require_object(entry, f"whatsapp payload: entry[{e}]")
        for c, change in enumerate(entry.get("changes") or []):
            where = f"entry[{e}].changes[{c}]"
            change = require_object(change, f"whatsapp payload: {where}")
            if change.get("field") != "messages":
                continue  # account, template, call and echo notifications
            value = require_object(change.get("value"), f"whatsapp payload: {where}.value")
            metadata = value.get("metadata") or {}
            business = text(metadata.get("phone_number_id") or metadata.get("display_phone_number"))
            names = {
                c.get("wa_id"): text((c.get("profile") or {}).get("name"))
                for c in value.get("contacts") or []
                if isinstance(c, dict)
            }
            for s, status in enumerate(value.get("statuses") or []):
                status = require_object(status, f"whatsapp payload: {where}.statuses[{s}]")
                errors = status.get("errors") or []
                reason = "; ".join(text(x.get("title") or x.get("message")) for x in errors if isinstance(x, dict))
                items.append(
                    StatusUpdate(
                        external_id=text(status.get("id")), state=text(status.get("status")).lower(), error=reason
                    )
                )
            for m, message in enumerate(value.get("messages") or []):
                here = f"{where}.messages[{m}]"
                message = require_object(message, f"whatsapp payload: {here}")
                if message.get("type") in _IGNORED_TYPES:
                    continue
                for required in ("from", "id", "timestamp"):
                    if not message.get(required):
                        raise Rejected(f"whatsapp payload: {here}: required field {required!r} is missing")
                phone = _phone(str(message["from"]), f"whatsapp payload: {here}.from")
                body, problem = _body(message, here)
                context = message.get("context") or {}
                handle = f"whatsapp:{phone}"
                items.append(
                    Draft(
                        external_id=text(message["id"]),
                        identities={"phone": phone, "chat": handle, "social": handle},
                        sender_name=names.get(message["from"], ""),
                        received_at=epoch(message["timestamp"], f"whatsapp payload: {here}.timestamp"),
                        body_text=body,
                        in_reply_to=text(context.get("id"))
                        if context.get("id") and not context.get("forwarded")
                        else "",
                        thread_key=f"whatsapp:{business}:{phone}",
                        parse_error=problem,
                    )
                )
    return items
