"""What a spool makes of an adapter's `Draft`: the `InboundMessage` to ingest, and the sender's
other identities to link to the customer once the message is stored."""

from __future__ import annotations

import hashlib
from datetime import datetime

from sqlmodel import Session

from agentdesk.channels.base import InboundMessage
from agentdesk.channels.webhook.adapters import Draft, Payload, Rejected
from agentdesk.config import SpoolSettings
from agentdesk.domain import audit, customers
from agentdesk.errors import InvalidInput
from agentdesk.sanitize import inert_line
from agentdesk.store import queries
from agentdesk.store.models import Identity

# (identity kind, normalised address) the payload proved besides the one the spool matches by.
Link = tuple[str, str]
# The identity kinds a sender may be known by when the channel's own is missing, in this order.
SENDER_KINDS = ("email", "phone", "chat", "social")


def inbound_message(
    spool: SpoolSettings, payload: Payload, draft: Draft, index: int, count: int
) -> tuple[InboundMessage, list[Link]]:
    """The InboundMessage of the `index`-th of `count` drafts in a payload, and the identities to link.

    Rejected when the payload does not give the sender's address of the kind the spool's
    channel identifies customers by.
    """
    channel = draft.channel or spool.kind
    kind = customers.IDENTITY_KIND.get(channel, channel)
    address = draft.identities.get(kind, "")
    sender_kind = ""
    if not address:
        # Any identity the payload gives serves (the generic schema lets a chat sender be known by
        # email or phone): the customer is found or made by it, the conversation stays on its channel.
        other = next((k for k in SENDER_KINDS if draft.identities.get(k)), None)
        if other is None:
            raise Rejected(
                f"this {spool.adapter} payload does not say who sent it (an email, phone or handle "
                f"of the sender); a {channel} spool needs one"
            )
        kind = sender_kind = other
        address = draft.identities[other]
    try:
        address = customers.normalise_address(kind, address)
    except InvalidInput as error:
        raise Rejected(f"sender: {error}") from None
    if kind == "email" and "@" not in address:
        raise Rejected(f"sender: {address!r} is not an email address")
    external_id = draft.external_id
    if not external_id:
        # No event id: the content hash is the external id (the same payload twice is one message).
        external_id = "sha256:" + hashlib.sha256(payload.body).hexdigest() + (f"#{index}" if count > 1 else "")
    links = []
    for other_kind, other in draft.identities.items():
        if other_kind in ("email", "phone") and other_kind != kind and other:
            try:
                links.append((other_kind, customers.normalise_address(other_kind, other)))
            except InvalidInput:
                pass
    message = InboundMessage(
        source=spool.name,
        channel=channel,
        external_id=external_id,
        sender_address=address,
        sender_name=draft.sender_name,
        received_at=draft.received_at,
        subject=draft.subject,
        body_text=draft.body_text,
        body_html_text=draft.body_html_text,
        kind=draft.kind,
        bulk=draft.bulk,
        in_reply_to=draft.in_reply_to,
        references=draft.references,
        recipients=draft.recipients,
        conversation_hint=draft.conversation_hint,
        thread_key=draft.thread_key,
        sender_kind=sender_kind,
        attachments=draft.attachments,
        raw=payload.body,
        parse_error=draft.parse_error,
        headers=draft.headers,
    )
    return message, links


def link_identity(session: Session, *, customer_id: int, kind: str, address: str, now: datetime) -> bool:
    """Give the customer another identity the payload proved (email, phone) when nobody has it yet.

    An identity already owned by another customer is left alone: joining two customers is an
    agent's decision (`agentdesk customer merge`), never an automatic one.
    """
    address = inert_line(address)  # the payload's: inert however the caller came by it
    if queries.customer_by_identity(session=session, kind=kind, address=address) is not None:
        return False
    session.add(Identity(customer_id=customer_id, kind=kind, address=address, created_at=now))
    audit.record(
        session,
        agent=audit.SYSTEM,
        action="identity_linked",
        now=now,
        customer_id=customer_id,
        kind=kind,
        address=address,
    )
    return True
