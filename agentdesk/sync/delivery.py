"""The outbox: queued replies are delivered by a per-channel sender, retried, and their fate recorded.

A reply is an outbound Message plus an Outbox row, written in one transaction by
`domain.replies.reply`. `deliver_due` takes rows that are due, in three steps so that no SMTP
conversation ever runs while the database write lock is held:

1. **claim** (one write transaction): select only rows of channels this worker has a sender for
   (in the SQL: rows it cannot send never crowd out those it can), count the attempt, open its
   `DeliveryAttempt` and push `next_attempt_at` a lease ahead, so another worker leaves the row
   alone; the sender gathers what it needs (`prepare`);
2. **send** (no transaction): the sender talks to its server;
3. **record** (one write transaction): `sent` with `sent_at`; or, with the server's reason in
   `last_error`, back to `queued` with a backoff, or `failed` for a permanent refusal or after
   the last attempt; or `possibly_sent` when the message went out in full and the answer never
   came (`DeliveryOutcomeUnknown`). Each attempt's outcome stays in the delivery history.

A `possibly_sent` row is never sent again on its own: the agent sees it and may resend it
(`domain.replies.resend`). A worker that died between claim and record leaves an attempt with no
outcome; the next claim of that row records it as `possibly_sent` instead of sending again, so
no reply goes out twice without the agent knowing.

Queued rows whose channel no sender here handles are marked (`no_sender_at`, the reason in
`last_error`) so the thread, `show` and `doctor` say they cannot be delivered from this host.

Senders are registered per channel kind (`email`, and `sms`/`chat`/… for the webhook spool
channel; see `sync/senders.py`), so this module knows nothing of SMTP or HTTP.

A provider's delivery callback (a spool's status payload) updates the row too: `apply_status`.

Automatic messages (receipts) pass the rate limit of `domain.automatic_messages` once more at
send time, here.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, Protocol

from sqlmodel import Session

from agentdesk.channels.base import DeliveryError, DeliveryOutcomeUnknown
from agentdesk.domain import audit
from agentdesk.domain.automatic_messages import AUTOMATIC_KINDS, automatic_limit_reached
from agentdesk.store import db
from agentdesk.store import outbox as outbox_queries
from agentdesk.store.models import Conversation, DeliveryAttempt, Message, Outbox, id_of

if TYPE_CHECKING:
    from agentdesk.channels.webhook.adapters import StatusUpdate

__all__ = [
    "DeliveryError",
    "DeliveryOutcomeUnknown",
    "Sender",
    "DeliveryReport",
    "deliver_due",
    "no_sender_reason",
    "apply_status",
    "backoff_after",
    "BACKOFF",
    "MAX_ATTEMPTS",
]

# Waits after the 1st, 2nd, … failed attempt; the last value repeats.
BACKOFF = (timedelta(minutes=1), timedelta(minutes=5), timedelta(minutes=15), timedelta(hours=1), timedelta(hours=4))
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
    possibly_sent: int = 0  # the outcome is unknown: not retried until the agent resends
    no_sender: int = 0  # rows newly found that no sender here can deliver
    errors: list[str] = field(default_factory=list)  # one line per failed attempt, for stderr

    def add(self, other: DeliveryReport) -> None:
        self.sent += other.sent
        self.retrying += other.retrying
        self.failed += other.failed
        self.possibly_sent += other.possibly_sent
        self.no_sender += other.no_sender
        self.errors.extend(other.errors)


def backoff_after(attempts: int) -> timedelta:
    """The wait after the `attempts`-th failed attempt: the one retry schedule of the outbox."""
    return BACKOFF[min(max(attempts, 1), len(BACKOFF)) - 1]


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


@dataclass
class _Claimed:
    outbox_id: int
    attempt_id: int
    attempts: int
    sender: Sender
    prepared: Any
    ref: str


def no_sender_reason(channel: str) -> str:
    """What `show`, the thread and `doctor` say of a reply no sender on the sync's host takes."""
    return (
        f"no sender for {channel} on this host ({socket.gethostname()}): it waits, queued, for a sync "
        f"whose config can send {channel} replies"
    )


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
        if sources is None:  # a worker limited to some sources leaves the others to the full one
            _mark_no_sender(session, set(senders), now=now, report=report)
        rows = outbox_queries.due_rows(session=session, senders=set(senders), sources=sources, now=now, limit=limit)
        unfinished = outbox_queries.unfinished_attempts(session=session, outbox_ids=[id_of(row) for row in rows])
        for outbox in rows:
            sender = senders[outbox.channel]
            message = session.get(Message, outbox.message_id)
            conversation = session.get(Conversation, message.conversation_id) if message else None
            ref = f"AD-{conversation.id}" if conversation else f"outbox {outbox.id}"
            if outbox.id in unfinished:
                _record_unknown(
                    session,
                    outbox,
                    unfinished[outbox.id],
                    DeliveryOutcomeUnknown(
                        "a worker claimed it at "
                        f"{unfinished[outbox.id].started_at.isoformat(timespec='seconds')} and stopped before recording "
                        "how the send ended: it may have been sent"
                    ),
                    now=now,
                    report=report,
                    ref=ref,
                )
                continue
            outbox.attempts += 1
            outbox.next_attempt_at = now + LEASE
            outbox.no_sender_at = None
            session.add(outbox)
            attempt = DeliveryAttempt(outbox_id=id_of(outbox), started_at=now)
            session.add(attempt)
            session.flush()
            try:
                if message is None or conversation is None:
                    raise DeliveryError("the message to send is gone from the database", permanent=True)
                if message.kind in AUTOMATIC_KINDS:
                    suppressed = automatic_limit_reached(
                        session,
                        customer_id=conversation.customer_id,
                        now=now,
                        claimed=automatic_claims.get(conversation.customer_id, 0),
                    )
                    if suppressed:
                        raise DeliveryError(suppressed, permanent=True)
                    automatic_claims[conversation.customer_id] = automatic_claims.get(conversation.customer_id, 0) + 1
                prepared = sender.prepare(session, outbox=outbox, message=message, conversation=conversation)
            except DeliveryError as error:
                _record_failure(session, outbox, attempt, error, now=now, report=report, ref=ref)
                continue
            claimed.append(_Claimed(id_of(outbox), id_of(attempt), outbox.attempts, sender, prepared, ref))
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
            found_outbox = session.get(Outbox, item.outbox_id)
            found_attempt = session.get(DeliveryAttempt, item.attempt_id)
            if found_outbox is None or found_attempt is None:
                continue
            outbox, attempt = found_outbox, found_attempt
            if isinstance(outcome, DeliveryOutcomeUnknown):
                _record_unknown(session, outbox, attempt, outcome, now=done, report=report, ref=item.ref)
            elif isinstance(outcome, DeliveryError):
                _record_failure(session, outbox, attempt, outcome, now=done, report=report, ref=item.ref)
            else:
                outbox.state = "sent"
                outbox.sent_at = done
                outbox.updated_at = done
                outbox.next_attempt_at = None
                outbox.last_error = str(outcome)
                # The provider's id of it, which its delivery callbacks will name (apply_status).
                outbox.provider_id = getattr(outcome, "provider_id", "") or outbox.provider_id
                session.add(outbox)
                _finish(session, attempt, "sent", outcome, now=done)
                _audit(session, outbox, "delivered", now=done)
                report.sent += 1
            session.commit()
    return report


def _mark_no_sender(session: Session, senders: set[str], *, now: datetime, report: DeliveryReport) -> None:
    """Say on each queued row no sender here can take that it waits for another host (once)."""
    for channel, count in outbox_queries.unmarked_without_sender(session=session, senders=senders):
        outbox_queries.mark_without_sender(session=session, channel=channel, now=now, reason=no_sender_reason(channel))
        report.no_sender += count
        report.errors.append(f"{count} {channel} reply(ies) cannot be delivered here: {no_sender_reason(channel)}")


def _audit(session: Session, outbox: Outbox, action: str, *, now: datetime, reason: str | None = None) -> None:
    """How a delivery ended, in the conversation's audit log."""
    message = session.get(Message, outbox.message_id)
    audit.record(
        session,
        agent=audit.SYSTEM,
        action=action,
        now=now,
        conversation_id=message.conversation_id if message else None,
        message_id=outbox.message_id,
        **_detail(outbox, reason),
    )


def _detail(outbox: Outbox, reason: str | None) -> dict[str, Any]:
    return {"attempts": outbox.attempts} if reason is None else {"reason": reason, "attempts": outbox.attempts}


def _finish(session: Session, attempt: DeliveryAttempt, outcome: str, reason: str, *, now: datetime) -> None:
    attempt.outcome = outcome
    attempt.reason = reason[:2_000]
    attempt.finished_at = now
    session.add(attempt)


def _record_unknown(
    session: Session,
    outbox: Outbox,
    attempt: DeliveryAttempt,
    error: DeliveryError,
    *,
    now: datetime,
    report: DeliveryReport,
    ref: str,
) -> None:
    """The message may be at the server: never sent again on its own; the agent may resend it."""
    outbox.state = "possibly_sent"
    outbox.last_error = error.reason[:2_000]
    outbox.next_attempt_at = None
    outbox.updated_at = now
    session.add(outbox)
    _finish(session, attempt, "possibly_sent", error.reason, now=now)
    _audit(session, outbox, "delivery_uncertain", now=now, reason=outbox.last_error)
    report.possibly_sent += 1
    report.errors.append(f"{ref}: possibly sent, not retried (agentdesk resend sends it again): {error.reason}")


def _record_failure(
    session: Session,
    outbox: Outbox,
    attempt: DeliveryAttempt,
    error: DeliveryError,
    *,
    now: datetime,
    report: DeliveryReport,
    ref: str,
) -> None:
    outbox.last_error = error.reason[:2_000]
    outbox.updated_at = now
    if error.permanent or outbox.attempts >= MAX_ATTEMPTS:
        outbox.state = "failed"
        outbox.next_attempt_at = None
        _finish(session, attempt, "failed", error.reason, now=now)
        report.failed += 1
        _audit(session, outbox, "delivery_failed", now=now, reason=outbox.last_error)
        report.errors.append(f"{ref}: delivery failed after {outbox.attempts} attempt(s): {error.reason}")
    else:
        outbox.state = "queued"
        outbox.next_attempt_at = now + backoff_after(outbox.attempts)
        _finish(session, attempt, "retry", error.reason, now=now)
        report.retrying += 1
        report.errors.append(
            f"{ref}: delivery attempt {outbox.attempts} failed, retrying at "
            f"{outbox.next_attempt_at.isoformat(timespec='seconds')}: {error.reason}"
        )
    session.add(outbox)


# --- provider callbacks --------------------------------------------------------------------------


def apply_status(session: Session, update: StatusUpdate, *, now: datetime) -> bool:
    """Apply a provider's delivery callback to our outbound message's outbox row, when it is ours."""
    # Only spools receive callbacks, and they have loaded the adapters already; a sync of
    # mailboxes alone does not pay for them.
    from agentdesk.channels.webhook.adapters import DELIVERED_STATES, FAILED_STATES

    if not update.external_id:
        return False
    row = outbox_queries.outbox_of_outbound(session=session, external_id=update.external_id)
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
