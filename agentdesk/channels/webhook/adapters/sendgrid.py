"""SendGrid Inbound Parse: a multipart/form-data POST in "default" or "raw" (Send Raw) mode.

Default mode gives parsed fields (headers, from, to, subject, text, html, envelope, charsets,
attachment-info and the files); raw mode gives the whole MIME message in the `email` field, which
the email channel's parser reads like any IMAP message.
"""

from __future__ import annotations

import email.parser
import email.policy
import json
from email.utils import parseaddr

from agentdesk.channels.webhook.adapters import Draft, Item, Payload, Rejected, html_text, text
from agentdesk.channels.webhook.adapters._mail import header_date, header_record


def parse(payload: Payload) -> list[Item]:
    if not payload.media_type.startswith("multipart/"):
        raise Rejected(f"sendgrid payload: expected multipart/form-data, got {payload.media_type or 'no content type'}")
    fields, files = payload.multipart()
    if "email" in fields:
        raw = fields["email"].encode("utf-8", "surrogateescape")
        head = email.parser.BytesParser(policy=email.policy.compat32).parsebytes(raw, headersonly=True)
        record = header_record([], received_at=header_date(head.get("Date"), payload.written_at), raw=raw)
        if not record.sender_address:
            raise Rejected("sendgrid raw payload: the message has no From address")
        return [
            Draft(
                external_id=record.external_id,
                identities={"email": record.sender_address},
                sender_name=record.sender_name,
                received_at=record.received_at,
                subject=record.subject,
                body_text=record.body_text,
                body_html_text=record.body_html_text,
                kind=record.kind,
                bulk=record.bulk,
                in_reply_to=record.in_reply_to,
                references=record.references,
                recipients=record.recipients,
                attachments=record.attachments,
                headers=record.headers,
                parse_error=record.parse_error,
            )
        ]
    if "from" not in fields and "headers" not in fields:
        raise Rejected("sendgrid payload: neither 'email' (raw mode) nor 'from'/'headers' (default mode) fields")
    header_block = fields.get("headers", "")
    parsed = email.parser.Parser(policy=email.policy.compat32).parsestr(header_block, headersonly=True)
    pairs = list(parsed.items())
    record = header_record(pairs, received_at=payload.written_at)
    name, address = parseaddr(fields.get("from", ""))
    if "@" not in address:
        try:
            address = json.loads(fields.get("envelope") or "{}").get("from", "")
        except (ValueError, AttributeError):
            address = ""
    address = text(address).strip().lower()
    if "@" not in address:
        raise Rejected(f"sendgrid payload: sender {fields.get('from', '')!r} is not an email address")
    # The header block's Message-ID when present; else a hash of the whole payload (set by the spool).
    external_id = "" if record.external_id.startswith("sha256:") else record.external_id
    return [
        Draft(
            external_id=external_id,
            identities={"email": address},
            sender_name=text(name) or record.sender_name,
            received_at=header_date(parsed.get("Date"), payload.written_at),
            subject=text(fields.get("subject")) or record.subject,
            body_text=text(fields.get("text", "")).rstrip("\n"),
            body_html_text=html_text(fields.get("html")),
            kind=record.kind,
            bulk=record.bulk,
            in_reply_to=record.in_reply_to,
            references=record.references,
            recipients=tuple(a.lower() for _, a in (parseaddr(p) for p in fields.get("to", "").split(",")) if a),
            attachments=tuple(files),
            headers=record.headers,
        )
    ]
