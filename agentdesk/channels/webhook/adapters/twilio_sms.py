"""Twilio Programmable Messaging webhooks: inbound SMS/MMS and message status callbacks.

Twilio posts application/x-www-form-urlencoded fields (MessageSid, From, To, Body, NumMedia,
MediaUrl0…, MediaContentType0…, SmsStatus / MessageStatus, ErrorCode…); some gateways relay the
same fields as a JSON object, which is accepted too. A status callback (MessageStatus queued,
sent, delivered, undelivered, failed, read) never becomes an inbound message.
"""

from __future__ import annotations

import re

from agentdesk.channels.webhook.adapters import (
    Draft,
    Item,
    Payload,
    Rejected,
    StatusUpdate,
    text,
    url_attachment,
)
from agentdesk.domain.customers import normalise_phone
from agentdesk.errors import InvalidInput

_STATUS_ONLY = {
    "queued",
    "accepted",
    "sending",
    "sent",
    "delivered",
    "undelivered",
    "failed",
    "read",
    "canceled",
    "scheduled",
    "partially_delivered",
}


def fields_of(payload: Payload) -> dict[str, str]:
    if payload.media_type == "application/json":
        data = payload.json()
        if not isinstance(data, dict):
            raise Rejected("twilio JSON payload: expected an object of Twilio's form fields")
        return {str(key): "" if value is None else str(value) for key, value in data.items()}
    if payload.media_type == "application/x-www-form-urlencoded":
        return payload.form()
    raise Rejected(f"twilio payload: expected a form body or JSON, got {payload.media_type or 'no content type'}")


def phone(value: str, where: str) -> str:
    # Twilio's WhatsApp and Messenger numbers carry a channel prefix: whatsapp:+14155238886
    number = value.split(":", 1)[1] if value.count(":") == 1 and not value.startswith("+") else value
    try:
        return normalise_phone(number)
    except InvalidInput:
        raise Rejected(f"{where}: {value!r} is not a phone number in E.164 (+country number)") from None


# Our own number, the To of an inbound message, need not be a phone number: a short code (3 to 8
# digits) or an alphanumeric sender id (up to 11 letters, digits and spaces, one letter at least).
_SHORT_CODE = re.compile(r"\d{3,8}")
_ALPHANUMERIC_ID = re.compile(r"(?=.*[A-Za-z])[A-Za-z0-9 ]{1,11}")


def own_number(value: str, where: str) -> str:
    """Our number as the provider wrote it: E.164, a short code or an alphanumeric sender id."""
    try:
        return phone(value, where)
    except Rejected:
        bare = (value.split(":", 1)[1] if value.count(":") == 1 else value).strip()
        if _SHORT_CODE.fullmatch(bare) or _ALPHANUMERIC_ID.fullmatch(bare):
            return bare
        raise Rejected(
            f"{where}: {value!r} is not a phone number in E.164 (+country number), a short code "
            "or an alphanumeric sender id"
        ) from None


def parse(payload: Payload) -> list[Item]:
    fields = fields_of(payload)
    sid = fields.get("MessageSid") or fields.get("SmsMessageSid") or fields.get("SmsSid")
    if not sid:
        raise Rejected("twilio payload: no MessageSid; not a Twilio messaging webhook")
    status = (fields.get("MessageStatus") or "").lower()
    sms_status = (fields.get("SmsStatus") or "").lower()
    if status in _STATUS_ONLY or (not status and sms_status in _STATUS_ONLY and "Body" not in fields):
        error = fields.get("ErrorMessage") or (f"Twilio error {fields['ErrorCode']}" if fields.get("ErrorCode") else "")
        return [StatusUpdate(external_id=sid, state=status or sms_status, error=error)]
    for required in ("From", "To"):
        if not fields.get(required):
            raise Rejected(f"twilio payload: required field {required!r} is missing or empty")
    sender = phone(fields["From"], "From")
    recipient = own_number(fields["To"], "To")
    lines = []
    attachments = []
    try:
        media = int(fields.get("NumMedia") or 0)
    except ValueError:
        raise Rejected(f"twilio payload: NumMedia {fields['NumMedia']!r} is not a number") from None
    for index in range(media):
        url = fields.get(f"MediaUrl{index}")
        if url:
            attachment, line = url_attachment(f"media-{index}", fields.get(f"MediaContentType{index}"), url)
            attachments.append(attachment)
            lines.append(line)
    body = text(fields.get("Body"))
    if lines:
        body = "\n".join([body, *lines]) if body else "\n".join(lines)
    if not body:
        raise Rejected("twilio payload: neither Body nor media; nothing to store")
    return [
        Draft(
            external_id=sid,
            identities={"phone": sender},
            sender_name="",
            received_at=payload.written_at,  # Twilio sends no timestamp with inbound messages
            body_text=body,
            recipients=(recipient,),
            thread_key=f"{sender}>{recipient}",
            attachments=tuple(attachments),
        )
    ]
