"""The outbox: queued replies are delivered by a per-channel sender, retried, and their fate recorded.

A reply is an outbound Message plus an Outbox row, written in one transaction by
`domain.replies.reply`. `deliver_due` takes rows that are due, in three steps so that no SMTP
conversation ever runs while the database write lock is held:

1. **claim** (one write transaction): count the attempt and push `next_attempt_at` a lease ahead,
   so another worker leaves the row alone; the sender gathers what it needs (`prepare`);
2. **send** (no transaction): the sender talks to its server;
3. **record** (one write transaction): `sent` with `sent_at`; or, with the server's reason in
   `last_error`, back to `queued` with a backoff, or `failed` for a permanent refusal or after
   the last attempt.

A crash between the server accepting a mail and step 3 leaves the row claimed but not `sent`;
after the lease it is sent again. That is the one window where a mail can go out twice
(docs/email.md); it is as short as one database commit.

Senders are registered per channel kind (`email`, and `sms`/`chat`/… for the webhook spool
channel), so this module knows nothing of SMTP.

Loop safety for automatic messages lives here too: `automatic_reply_allowed` is the one check
any automatic message (a receipt) must pass, and `deliver_due` enforces the per-address rate
limit again at send time.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Protocol

from sqlalchemy import func
from sqlmodel import Session, col, select

from agentdesk.channels.base import InboundMessage
from agentdesk.channels.base import DeliveryError
from agentdesk.domain import audit
from agentdesk.store import db
from agentdesk.store.models import Conversation, Identity, Message, Outbox

__all__ = [
    "DeliveryError",
    "Sender",
    "DeliveryReport",
    "deliver_due",
    "automatic_reply_allowed",
    "BACKOFF",
    "MAX_ATTEMPTS",
]

# Waits after the 1st, 2nd, … failed attempt; the last value repeats.
BACKOFF = (timedelta(minutes=1), timedelta(minutes=5), timedelta(minutes=15), timedelta(hours=1),
           timedelta(hours=4))
MAX_ATTEMPTS = 10  # ~1.5 days of retries before a reply is marked failed
# How long a claimed row is left alone by other workers; a crash during a send retries after it.
LEASE = timedelta(minutes=10)
# Automatic messages (receipts) to one address: at most this many per window (stops ping-pong
# with another system's autoresponder that our header checks did not recognise).
AUTOMATIC_LIMIT = 3
AUTOMATIC_WINDOW = timedelta(hours=1)
AUTOMATIC_KINDS = ("receipt",)


class Sender(Protocol):
    """Delivers outbound messages of one channel kind."""

    def prepare(self, session: Session, *, outbox: Outbox, message: Message, conversation: Conversation) -> Any:
        """Gather what `send` needs from the store (inside the claim transaction).

        Raise DeliveryError(permanent=True) when the message can never be sent (no recipient).
        """
        ...

    def send(self, prepared: Any) -> str:
        """Deliver; return a note for the record ("" when all is well). Raise DeliveryError."""
        ...


@dataclass
class DeliveryReport:
    sent: int = 0
    retrying: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)  # one line per failed attempt, for stderr

    def add(self, other: DeliveryReport) -> None:
        self.sent += other.sent
        self.retrying += other.retrying
        self.failed += other.failed
        self.errors.extend(other.errors)


def backoff_after(attempts: int) -> timedelta:
    return BACKOFF[min(max(attempts, 1), len(BACKOFF)) - 1]


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


@dataclass
class _Claimed:
    outbox_id: int
    attempts: int
    sender: Sender
    prepared: Any
    ref: str


def deliver_due(
    engine,
    senders: Mapping[str, Sender],
    *,
    now_fn: Callable[[], datetime] = _utcnow,
    limit: int = 50,
    sources: set[str] | None = None,
) -> DeliveryReport:
    """Deliver every queued row whose time has come (at most `limit`); see the module docstring."""
    report = DeliveryReport()
    claimed: list[_Claimed] = []
    automatic_claims: dict[int, int] = {}  # customer id -> automatic messages claimed this round
    now = now_fn()
    with db.write_session(engine) as session:
        statement = (
            select(Outbox).where(Outbox.state == "queued")
            .where(col(Outbox.next_attempt_at).is_(None) | (col(Outbox.next_attempt_at) <= now))
            .order_by(col(Outbox.next_attempt_at), col(Outbox.id)).limit(limit)
        )
        rows = [row for row in session.exec(statement) if sources is None or row.source in sources]
        for outbox in rows:
            sender = senders.get(outbox.channel)
            if sender is None:
                continue  # a channel this worker does not deliver (its own worker will)
            message = session.get(Message, outbox.message_id)
            conversation = session.get(Conversation, message.conversation_id) if message else None
            ref = f"AD-{conversation.id}" if conversation else f"outbox {outbox.id}"
            outbox.attempts += 1
            outbox.next_attempt_at = now + LEASE
            session.add(outbox)
            try:
                if message is None or conversation is None:
                    raise DeliveryError("the message to send is gone from the database", permanent=True)
                if message.kind in AUTOMATIC_KINDS:
                    _check_automatic_limit(session, conversation=conversation, now=now, claimed=automatic_claims)
                    automatic_claims[conversation.customer_id] = automatic_claims.get(conversation.customer_id, 0) + 1
                prepared = sender.prepare(session, outbox=outbox, message=message, conversation=conversation)
            except DeliveryError as error:
                _record_failure(session, outbox, error, now=now, report=report, ref=ref)
                continue
            claimed.append(_Claimed(outbox.id, outbox.attempts, sender, prepared, ref))
        session.commit()

    for item in claimed:
        try:
            note = item.sender.send(item.prepared)
        except DeliveryError as error:
            outcome: DeliveryError | str = error
        except Exception as error:  # a sender bug must not lose the row: retry, visibly
            outcome = DeliveryError(f"unexpected {type(error).__name__}: {error}")
        else:
            outcome = note
        done = now_fn()
        with db.write_session(engine) as session:
            outbox = session.get(Outbox, item.outbox_id)
            if outbox is None:
                continue
            if isinstance(outcome, DeliveryError):
                _record_failure(session, outbox, outcome, now=done, report=report, ref=item.ref)
            else:
                outbox.state = "sent"
                outbox.sent_at = done
                outbox.next_attempt_at = None
                outbox.last_error = outcome
                session.add(outbox)
                message = session.get(Message, outbox.message_id)
                audit.record(session, agent=audit.SYSTEM, action="delivered", now=done,
                             conversation_id=message.conversation_id if message else None,
                             message_id=outbox.message_id, attempts=outbox.attempts)
                report.sent += 1
            session.commit()
    return report


def _record_failure(session: Session, outbox: Outbox, error: DeliveryError, *, now: datetime,
                    report: DeliveryReport, ref: str) -> None:
    outbox.last_error = error.reason[:2_000]
    if error.permanent or outbox.attempts >= MAX_ATTEMPTS:
        outbox.state = "failed"
        outbox.next_attempt_at = None
        report.failed += 1
        message = session.get(Message, outbox.message_id)
        audit.record(session, agent=audit.SYSTEM, action="delivery_failed", now=now,
                     conversation_id=message.conversation_id if message else None, message_id=outbox.message_id,
                     reason=outbox.last_error, attempts=outbox.attempts)
        report.errors.append(f"{ref}: delivery failed after {outbox.attempts} attempt(s): {error.reason}")
    else:
        outbox.state = "queued"
        outbox.next_attempt_at = now + backoff_after(outbox.attempts)
        report.retrying += 1
        report.errors.append(f"{ref}: delivery attempt {outbox.attempts} failed, retrying at "
                             f"{outbox.next_attempt_at.isoformat(timespec='seconds')}: {error.reason}")
    session.add(outbox)


# --- loop safety ---------------------------------------------------------------------------------


def _recent_automatic(session: Session, *, customer_id: int, now: datetime, sent_only: bool = False) -> int:
    """Automatic messages to this customer within the rate-limit window (queued or sent, or sent only)."""
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


def _check_automatic_limit(session: Session, *, conversation: Conversation, now: datetime,
                           claimed: dict[int, int]) -> None:
    """At send time: sent within the window plus those claimed in this round."""
    count = _recent_automatic(session, customer_id=conversation.customer_id, now=now, sent_only=True)
    count += claimed.get(conversation.customer_id, 0)
    if count >= AUTOMATIC_LIMIT:
        raise DeliveryError(
            f"suppressed: {count} automatic messages to this customer in the last "
            f"{int(AUTOMATIC_WINDOW.total_seconds() // 60)} min (limit {AUTOMATIC_LIMIT}); a mail loop is likely",
            permanent=True,
        )


def automatic_reply_allowed(
    session: Session, *, inbound: InboundMessage, our_addresses: set[str] | frozenset[str], now: datetime,
) -> tuple[bool, str]:
    """May an automatic message (a receipt) answer this inbound message? (allowed, why not)

    Never for auto-replies, bounces, list or bulk mail, mail without a sender, mail from one of
    our own addresses or carrying our loop header, and never more than AUTOMATIC_LIMIT per
    address per AUTOMATIC_WINDOW.
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
        count = _recent_automatic(session, customer_id=identity.customer_id, now=now)
        if count >= AUTOMATIC_LIMIT:
            return False, f"{count} automatic messages went to {address} within the last hour"
    return True, ""
