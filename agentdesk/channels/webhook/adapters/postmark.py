"""Postmark inbound webhooks (and Postmark delivery/bounce webhooks as status updates).

Two inbound variants exist: the real inbound payload, whose attachments carry `Content`, and
what the dashboard's "Check" button posts, whose attachments carry `Data` (django-anymail notes
the difference). Both are accepted. Header semantics (Message-ID, threading, auto-replies,
bulk) are read by the email channel's parser from the `Headers` array, or from `RawEmail` when
the server is set to include it.
"""

from __future__ import annotations

from agentdesk.channels.webhook.adapters import (
    Draft,
    Item,
    Payload,
    Rejected,
    StatusUpdate,
    b64_attachment,
    html_text,
    require_object,
    text,
)
from agentdesk.channels.webhook.adapters._mail import header_date, header_record

_IGNORED_RECORDS = {"Open", "Click", "SubscriptionChange", "SpamComplaint"}


def parse(payload: Payload) -> list[Item]:
    data = require_object(payload.json(), "postmark payload")
    record_type = data.get("RecordType")
    if record_type == "Delivery":
        return [StatusUpdate(external_id=text(data.get("MessageID")), state="delivered")]
    if record_type == "Bounce":
        reason = text(data.get("Description") or data.get("Details") or data.get("Type") or "bounced")
        return [StatusUpdate(external_id=text(data.get("MessageID")), state="failed", error=reason)]
    if record_type in _IGNORED_RECORDS:
        return []
    if "FromFull" not in data and "From" not in data:
        raise Rejected("postmark payload: no From/FromFull; not a Postmark inbound webhook")
    sender = data.get("FromFull") or {}
    if not isinstance(sender, dict):
        raise Rejected("postmark payload: FromFull is not an object")
    address = text(sender.get("Email") or data.get("From")).strip()
    if "@" not in address:
        raise Rejected(f"postmark payload: sender {address!r} is not an email address")

    received_at = header_date(data.get("Date"), payload.written_at)

    headers = data.get("Headers") or []
    if not isinstance(headers, list):
        raise Rejected("postmark payload: Headers is not an array")
    pairs = [(h.get("Name", ""), h.get("Value", "")) for h in headers if isinstance(h, dict)]
    raw_email = data.get("RawEmail")
    if isinstance(raw_email, str) and raw_email.strip():
        record = header_record([], received_at=received_at, raw=raw_email.encode("utf-8", "surrogateescape"))
    else:
        record = header_record(pairs, received_at=received_at)
    has_message_id = any(name.lower() == "message-id" for name, _ in pairs) or bool(raw_email)
    external_id = (
        record.external_id
        if has_message_id and not record.external_id.startswith("sha256:")
        else text(data.get("MessageID"))
    )

    attachments = []
    for index, item in enumerate(data.get("Attachments") or []):
        item = require_object(item, f"postmark payload: Attachments[{index}]")
        content = item.get("Content", item.get("Data"))  # real payloads: Content; dashboard check: Data
        if content is None:
            raise Rejected(f"postmark payload: Attachments[{index}] has neither Content nor Data")
        attachments.append(
            b64_attachment(
                item.get("Name"), item.get("ContentType"), content, f"postmark payload: Attachments[{index}].Content"
            )
        )
    recipients = tuple(text(r.get("Email")).lower() for r in data.get("ToFull") or [] if isinstance(r, dict))
    return [
        Draft(
            external_id=external_id,
            identities={"email": address.lower()},
            sender_name=text(sender.get("Name") or data.get("FromName")),
            received_at=received_at,
            subject=text(data.get("Subject")),
            body_text=text(data.get("TextBody")),
            body_html_text=html_text(data.get("HtmlBody")),
            kind=record.kind,
            bulk=record.bulk,
            in_reply_to=record.in_reply_to,
            references=record.references,
            recipients=recipients,
            attachments=tuple(attachments),
            headers={name: text(value) for name, value in pairs[:100]},
            parse_error=record.parse_error if raw_email else "",
        )
    ]
