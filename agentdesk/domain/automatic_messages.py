"""Loop safety for automatic messages (receipts): the one rule on whether one may go out.

Two checks, one rule:

- `automatic_reply_allowed`, when an inbound message is stored: may an automatic message answer it
  at all? (`receipts.decide` asks it when the inbound record with its headers is at hand.)
- `automatic_limit_reached`, when the outbox is about to send one: the per-customer rate limit,
  checked again at send time, because another system's autoresponder that our header checks did
  not recognise would otherwise ping-pong with us (`sync.delivery` enforces it).

Kept apart from `receipts` so the outbox can ask without loading the SLA calendars.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, col, select

from agentdesk.store.models import Conversation, Identity, Message, Outbox

# At most this many automatic messages to one customer (and so one address) per window.
AUTOMATIC_LIMIT = 3
AUTOMATIC_WINDOW = timedelta(hours=1)
AUTOMATIC_KINDS = ("receipt",)


def recent_automatic(session: Session, *, customer_id: int, now: datetime, sent_only: bool = False) -> int:
    """Automatic messages to this customer within the window (queued or sent, or sent only)."""
    statement = (
        select(func.count()).select_from(Message)
        .join(Conversation, col(Conversation.id) == col(Message.conversation_id))
        .where(Conversation.customer_id == customer_id, Message.direction == "outbound",
               col(Message.kind).in_(AUTOMATIC_KINDS))
    )
    if sent_only:
        statement = statement.join(Outbox, col(Outbox.message_id) == col(Message.id)).where(
            Outbox.state == "sent", col(Outbox.sent_at) > now - AUTOMATIC_WINDOW)
    else:
        statement = statement.where(col(Message.at) > now - AUTOMATIC_WINDOW)
    return session.exec(statement).one()


def automatic_limit_reached(session: Session, *, customer_id: int, now: datetime, claimed: int = 0) -> str:
    """At send time: why this customer may get no more automatic messages now, or "" when they may.

    Counts those sent within the window plus `claimed`, the ones the caller is already sending.
    """
    count = recent_automatic(session, customer_id=customer_id, now=now, sent_only=True) + claimed
    if count < AUTOMATIC_LIMIT:
        return ""
    return (f"suppressed: {count} automatic messages to this customer in the last "
            f"{int(AUTOMATIC_WINDOW.total_seconds() // 60)} min (limit {AUTOMATIC_LIMIT}); a mail loop is likely")


def automatic_reply_allowed(
    session: Session, *, inbound: Any, our_addresses: set[str] | frozenset[str], now: datetime,
) -> tuple[bool, str]:
    """May an automatic message (a receipt) answer this inbound message? (allowed, why not)

    `inbound` is the channel's InboundMessage. Never for auto-replies, bounces, list or bulk mail,
    mail without a sender, mail from one of our own addresses or carrying our loop header, and
    never more than AUTOMATIC_LIMIT per address per AUTOMATIC_WINDOW.
    """
    if inbound.kind != "message":
        return False, f"it is {inbound.kind.replace('_', '-')}"
    if inbound.bulk:
        return False, "it is list or bulk mail"
    address = (inbound.sender_address or "").strip().lower()
    if not address:
        return False, "it has no sender address"
    ours = {a.strip().lower() for a in our_addresses}
    if address in ours:
        return False, "it comes from one of our own addresses"
    if inbound.headers.get("x-agentdesk-loop", "").strip():
        return False, "it carries our loop header (mail from a help desk)"
    return_path = inbound.headers.get("return-path", "").strip()
    if return_path == "<>":
        return False, "its Return-Path is empty (a machine-generated notice)"
    identity = session.exec(select(Identity).where(Identity.address == address)).first()
    if identity is not None:
        count = recent_automatic(session, customer_id=identity.customer_id, now=now)
        if count >= AUTOMATIC_LIMIT:
            return False, f"{count} automatic messages went to {address} within the last hour"
    return True, ""
