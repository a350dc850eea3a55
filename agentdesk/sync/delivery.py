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
channel; see `sync/senders.py`), so this module knows nothing of SMTP or HTTP.

A provider's delivery callback (a spool's status payload) updates the row too: `apply_status`.

Automatic messages (receipts) pass the rate limit of `domain.automatic_messages` once more at
send time, here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, Protocol

from sqlmodel import Session, col, select

from agentdesk.channels.base import DeliveryError
from agentdesk.domain import audit
from agentdesk.domain.automatic_messages import AUTOMATIC_KINDS, automatic_limit_reached
from agentdesk.store import db
from agentdesk.store.models import Conversation, Message, Outbox

if TYPE_CHECKING:
    from agentdesk.channels.webhook.adapters import StatusUpdate

__all__ = [
    "DeliveryError",
    "Sender",
    "DeliveryReport",
    "deliver_due",
    "apply_status",
    "backoff_after",
    "BACKOFF",
    "MAX_ATTEMPTS",
]

# Waits after the 1st, 2nd, … failed attempt; the last value repeats.
BACKOFF = (timedelta(minutes=1), timedelta(minutes=5), timedelta(minutes=15), timedelta(hours=1),
           timedelta(hours=4))
MAX_ATTEMPTS = 10  # ~1.5 days of retries before a reply is marked failed
# How long a claimed row is left alone by other workers; a crash during a send retries after it.
LEASE = timedelta(minutes=10)


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
    """The wait after the `attempts`-th failed attempt: the one retry schedule of the outbox."""
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
                    suppressed = automatic_limit_reached(session, customer_id=conversation.customer_id, now=now,
                                                         claimed=automatic_claims.get(conversation.customer_id, 0))
                    if suppressed:
                        raise DeliveryError(suppressed, permanent=True)
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


# --- provider callbacks --------------------------------------------------------------------------


def apply_status(session: Session, update: StatusUpdate, *, now: datetime) -> bool:
    """Apply a provider's delivery callback to our outbound message's outbox row, when it is ours."""
    # Only spools receive callbacks, and they have loaded the adapters already; a sync of
    # mailboxes alone does not pay for them.
    from agentdesk.channels.webhook.adapters import DELIVERED_STATES, FAILED_STATES

    if not update.external_id:
        return False
    row = session.exec(
        select(Outbox).join(Message, col(Message.id) == col(Outbox.message_id))
        .where(Message.external_id == update.external_id, Message.direction == "outbound")
    ).first()
    if row is None:
        return False
    state = update.state.lower()
    if state in DELIVERED_STATES and row.state != "sent":
        row.state = "sent"
        row.sent_at = row.sent_at or now
        row.last_error = ""
    elif state in FAILED_STATES:
        row.state = "failed"
        row.last_error = update.error or f"the provider reported {state}"
        row.next_attempt_at = None
    else:
        return False
    session.add(row)
    return True
