"""Replies and internal notes.

A reply is stored as an outbound Message plus an Outbox row in the caller's transaction, before
anything is delivered (DESIGN: nothing is lost); the delivery worker sends it later and records
the outcome on the Outbox row. A note is a Message with direction "note": never sent, never a reply
for SLA purposes.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlmodel import Session

from agentdesk.domain import audit, clocks, queue
from agentdesk.errors import Conflict, InvalidInput
from agentdesk.sanitize import inert_line, strip_control
from agentdesk.store import conversations, queries
from agentdesk.store import outbox as outbox_queries
from agentdesk.store.models import Attachment, Conversation, Event, Message, Outbox, id_of, ref_of

_REF_TAG = re.compile(r"\s*\[AD-\d+\]\s*")
_RE_PREFIX = re.compile(r"^\s*((re|aw|sv|fw|fwd)\s*:\s*)+", re.IGNORECASE)


def make_message_id(domain: str = "agentdesk.invalid") -> str:
    """Our own Message-ID for an outbound message, without angle brackets (as stored)."""
    return f"{uuid.uuid4().hex}@{domain}"


def reply_subject(conversation: Conversation) -> str:
    """`Re: <subject> [AD-n]`: the tag lets replies that lost their headers find the conversation."""
    base = _RE_PREFIX.sub("", _REF_TAG.sub(" ", conversation.subject)).strip() or "(no subject)"
    return f"Re: {base} [{ref_of(id_of(conversation))}]"


def clean_body(body: str) -> str:
    body = strip_control(body).strip("\n")
    if not body.strip():
        raise InvalidInput("the message is empty; write something before sending")
    return body


def with_signature(body: str, signature: str) -> str:
    if not signature or signature.strip() in body:
        return body
    return f"{body}\n\n-- \n{signature}"


def reply(
    session: Session,
    *,
    conversation: Conversation,
    body: str,
    agent: str,
    agent_name: str,
    now: datetime,
    policies: clocks.Policies,
    signature: str = "",
    status: str | None = None,
    kind: str = "message",
    message_id_domain: str = "agentdesk.invalid",
    expected_version: int | None = None,
    recipients=None,
    files: Sequence = (),
    send_after: datetime | None = None,
) -> Message:
    """Store a reply and queue it for delivery; optionally set the status in the same step.

    `send_after`: not delivered before then (the undo window: `withdraw` takes it back meanwhile).

    `recipients` (`outbound.Recipients`, checked): who it goes to, stored on the Outbox row; None
    leaves that to the delivery (the customer, and for mail the others on their last message).
    `files` (`outbound.OutgoingFile`): copied into the attachment store (store/attachments.py).

    `expected_version`: the conversation's version when the agent started writing. If anything
    happened since (a new customer message, a colleague's reply), the reply is refused with
    Conflict so the agent sees the change before answering twice.
    """
    queue.check_version(conversation, expected_version)
    body = with_signature(clean_body(body), signature)
    automatic = kind in ("receipt", "survey")
    message = Message(
        conversation_id=id_of(conversation),
        direction="outbound",
        kind=kind,
        author=agent_name,
        author_login=None if automatic else agent,
        subject=reply_subject(conversation),
        body_text=body,
        at=now,
        ingested_at=now,
        source=conversation.source,
        external_id=make_message_id(message_id_domain),
    )
    session.add(message)
    session.flush()
    if recipients is not None:
        queue_outbox(
            session,
            message=message,
            channel=conversation.channel,
            source=conversation.source,
            recipients=recipients,
            now=now,
            send_after=send_after,
        )
    else:
        session.add(
            Outbox(
                message_id=id_of(message),
                channel=conversation.channel,
                source=conversation.source,
                state="queued",
                created_at=now,
                next_attempt_at=max(send_after or now, now),
            )
        )
    if files:
        attach(session, message=message, outgoing=files)
    # A receipt or survey is not a reply: the conversation stays "new" until a person answers.
    new_status = status or ("open" if conversation.status == "new" and not automatic else None)
    # What `withdraw` puts back should the agent take this reply back: the clock events recorded
    # before it, the status it changed, the bounce flag it cleared.
    before: dict[str, Any] = {}
    if not automatic:
        before["clock_events_before"] = conversations.last_clock_event_id(
            session=session, conversation_ids=[id_of(conversation)]
        )
        if new_status is not None and new_status != conversation.status:
            before["status_before"] = conversation.status
            if conversation.solved_at is not None:
                before["solved_before"] = conversation.solved_at.isoformat()
        if conversation.bounced_at is not None:
            before["bounced_before"] = conversation.bounced_at.isoformat()
        if conversation.waiting_since is not None:
            before["waiting_before"] = conversation.waiting_since.isoformat()
        # A receipt or survey is not a reply: it starts no clock and stops none (docs/sla.md).
        if conversation.first_responded_at is None:
            conversation.first_responded_at = now
        conversation.last_agent_reply_at = now
        # A new reply answers the bounce: the row's flag goes (the failed one stays in the thread).
        conversation.bounced_at = None
        conversation.waiting_since = None
    audit.record(
        session,
        agent=agent,
        action=kind if automatic else "reply",
        now=now,
        conversation_id=conversation.id,
        message_id=message.id,
        **before,
    )
    changed = queue.change(
        session, conversation=conversation, agent=agent, now=now, policies=policies, status=new_status
    )
    if not changed:
        queue.touch(session, conversation=conversation, policies=policies, now=now)
    return message


def queue_outbox(
    session: Session,
    *,
    message: Message,
    channel: str,
    source: str,
    recipients,
    now: datetime,
    send_after: datetime | None = None,
) -> Outbox:
    """The Outbox row of an outbound message with its recipients (`outbound.Recipients`); the
    message records every address too, so an answer from any of them is a participant's."""
    message.recipients = " ".join(recipients.all())
    session.add(message)
    outbox = Outbox(
        message_id=id_of(message),
        channel=channel,
        source=source,
        state="queued",
        created_at=now,
        next_attempt_at=max(send_after or now, now),
        to_addresses=" ".join(recipients.to),
        cc_addresses=" ".join(recipients.cc),
        bcc_addresses=" ".join(recipients.bcc),
    )
    session.add(outbox)
    return outbox


def attach(session: Session, *, message: Message, outgoing: Sequence) -> list[Attachment]:
    """Copy each file (`outbound.OutgoingFile`) into the attachment store and name it on the
    message, in the caller's transaction: a rollback leaves at most an unreferenced file, never a
    row without its bytes."""
    from agentdesk.store import attachments

    rows = [
        Attachment(
            message_id=id_of(message),
            filename=each.name,
            content_type=each.content_type,
            size=len(each.data),
            storage_key=attachments.put(session=session, data=each.data),
            state="stored",
        )
        for each in outgoing
    ]
    session.add_all(rows)
    return rows


def add_note(
    session: Session,
    *,
    conversation: Conversation,
    body: str,
    agent: str,
    agent_name: str,
    now: datetime,
    policies: clocks.Policies,
) -> Message:
    """An internal note: visible to agents only, never delivered, not a reply."""
    message = Message(
        conversation_id=id_of(conversation),
        direction="note",
        author=agent_name,
        author_login=agent,
        body_text=clean_body(body),
        at=now,
        ingested_at=now,
    )
    session.add(message)
    session.flush()
    audit.record(session, agent=agent, action="note", now=now, conversation_id=conversation.id, message_id=message.id)
    queue.touch(session, conversation=conversation, policies=policies, now=now)
    return message


# Delivery states an agent may resend from: the outcome was a failure, or is unknown.
RESENDABLE = ("failed", "possibly_sent")


def resend(session: Session, *, messages: list[Message], number: int, ref: str, agent: str, now: datetime) -> Message:
    """Queue message `number` (1-based, in thread order: `show`'s order) to be sent again.

    Only a reply whose delivery failed or whose outcome is unknown (`possibly_sent`); a bounce is
    the server's final word, so a bounced reply is answered with a new one instead.
    """
    if not 1 <= number <= len(messages):
        raise InvalidInput(f"{ref} has {len(messages)} message(s); there is no message {number}")
    message = messages[number - 1]
    outbox = queries.delivery_states(session=session, message_ids=[id_of(message)]).get(id_of(message))
    if outbox is None:
        what = {"inbound": "a message from the customer", "note": "an internal note"}.get(
            message.direction, "not a queued reply"
        )
        raise InvalidInput(f"{ref} message {number} is {what}; only replies are sent")
    if outbox.state == "failed" and outbox.bounce_message_id is not None:
        raise InvalidInput(f"{ref} message {number} bounced (the server refused it for good); write a new reply")
    if outbox.state not in RESENDABLE:
        raise InvalidInput(
            f"{ref} message {number} is {outbox.state}; only a failed or possibly sent reply can be resent"
        )
    previous = outbox.state
    outbox.state = "queued"
    # A fresh run of attempts: the history keeps the earlier ones.
    outbox.attempts = 0
    outbox.next_attempt_at = now
    outbox.updated_at = now
    outbox.last_error = ""
    outbox.no_sender_at = None
    session.add(outbox)
    audit.record(
        session,
        agent=agent,
        action="resend",
        now=now,
        conversation_id=message.conversation_id,
        message_id=message.id,
        previous=previous,
    )
    return message


def first_words(body: str, *, limit: int = 60) -> str:
    """The start of a message as one inert line, cut at a word within `limit` characters: enough
    for a person to recognise it in the audit log."""
    text = " ".join(inert_line(body).split())
    if len(text) <= limit:
        return text
    cut = text[:limit].rsplit(" ", 1)[0] if " " in text[:limit] else text[:limit]
    return cut + "…"


@dataclass(frozen=True)
class Withdrawn:
    """What a reply taken back carried: the body as the agent wrote it (without the signature),
    the recipients they chose (all empty: the delivery's choice) and its files (key, name, type)."""

    body: str
    to: tuple[str, ...] = ()
    cc: tuple[str, ...] = ()
    bcc: tuple[str, ...] = ()
    files: tuple[tuple[str, str, str], ...] = ()


def withdraw(
    session: Session,
    *,
    conversation: Conversation,
    message_id: int,
    agent: str,
    signature: str,
    now: datetime,
    policies: clocks.Policies,
) -> Withdrawn:
    """Take back a reply no sender has claimed yet (the undo window): its message and outbox row
    go in this transaction, and nothing keeps naming its id (`store.message_removal`); what it
    carried is returned (its files' bytes stay in the store).

    Refused (`Conflict`) once a sender has claimed it: it may be on the wire already."""
    message = session.get(Message, message_id)
    if message is None or message.conversation_id != conversation.id or message.direction != "outbound":
        raise InvalidInput(f"{ref_of(id_of(conversation))} has no such reply to take back")
    if message.author_login != agent:
        raise Conflict(f"that reply in {ref_of(conversation.id)} is {message.author or 'another agent'}'s, not yours")
    outbox = outbox_queries.outbox_of(session=session, message_id=message_id)
    files = tuple(
        (row.storage_key, row.filename, row.content_type)
        for row in queries.attachments_of(session=session, message_ids=[message_id]).get(message_id, ())
    )
    body, written = message.body_text, message.at
    tail = f"\n\n-- \n{signature}" if signature else ""
    if tail and body.endswith(tail):
        body = body[: -len(tail)]
    # Read before the removal, which forgets the message's id in the event.
    recorded = conversations.reply_event(session=session, conversation_id=id_of(conversation), message_id=message_id)
    if not outbox_queries.withdraw_unclaimed(session=session, message_id=message_id):
        raise Conflict(f"too late: the reply to {ref_of(conversation.id)} is already being sent (or was sent)")
    first, last = outbox_queries.agent_reply_times(session=session, conversation_id=id_of(conversation))
    conversation.first_responded_at = first
    conversation.last_agent_reply_at = last
    kept = _kept_by(recorded)
    latest = last is None or last < written  # no reply of the agents' came after it
    if latest:  # the customer waits as before it
        if kept:
            waits = [at for at in (_time(kept.get("waiting_before")), conversation.waiting_since) if at is not None]
            conversation.waiting_since = min(waits) if waits else None
        else:
            conversation.waiting_since = conversations.oldest_unanswered(
                session=session, conversation_id=id_of(conversation), after=last
            )
    status_back = None
    if recorded is not None and kept:
        status_back = _put_back(session, conversation, recorded, kept, policies=policies, latest=latest)
    # The message is gone and its id may be given to the next one (SQLite reuses it), so the
    # event names it by null, as the reply's own event now does, and says which reply it was.
    audit.record(
        session,
        agent=agent,
        action="unsend",
        now=now,
        conversation_id=conversation.id,
        message_id=None,
        written=written.isoformat(),
        first_words=first_words(body),
        **_status_back(status_back),
    )
    queue.touch(session, conversation=conversation, policies=policies, now=now)
    if outbox is None:
        return Withdrawn(body, files=files)
    return Withdrawn(
        body,
        to=tuple(outbox.to_addresses.split()),
        cc=tuple(outbox.cc_addresses.split()),
        bcc=tuple(outbox.bcc_addresses.split()),
        files=files,
    )


def _status_back(status: str | None) -> dict[str, Any]:
    """The unsend event's say on the status: the one the reply's own change gave way to, if any."""
    return {"status": status} if status else {}


def _time(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) else None


def _kept_by(recorded: Event | None) -> dict[str, Any]:
    """What the reply's audit event kept for its withdrawal; empty for a reply recorded before
    replies kept it (no `clock_events_before`)."""
    if recorded is None:
        return {}
    try:
        detail = json.loads(recorded.detail or "{}")
    except ValueError:
        return {}
    if not isinstance(detail, dict) or type(detail.get("clock_events_before")) is not int:
        return {}
    return detail


def _put_back(
    session: Session,
    conversation: Conversation,
    recorded: Event,
    kept: dict[str, Any],
    *,
    policies: clocks.Policies,
    latest: bool,
) -> str | None:
    """Undo what recording the reply (its audit event `recorded`, which `kept` what it changed)
    did to the conversation's clocks, status and bounce flag, before the caller's refresh: the
    clock events it and everything after it recorded are forgotten and recorded again without it
    (the status changes since still pause and resume the clocks). Unless a later reply (`latest`
    false) did the same, the bounce flag it cleared comes back, and the status it set goes back
    if nobody changed the status since. Returns the status put back, or None.

    The status is set here, not through `queue.change`: the unsend's event records it, so an undo
    (the same ctrl+z) does not find a status change of the agent's to undo."""
    status_before = kept.get("status_before")
    changes = conversations.status_changes_after(
        session=session, conversation_id=id_of(conversation), after_event_id=id_of(recorded)
    )
    if isinstance(status_before, str) and changes:
        changes = changes[1:]  # the reply's own, recorded right after it
    clocks.rewind(
        session, conversation, policies=policies, after_id=kept["clock_events_before"], status_changes=changes
    )
    if not latest:
        return None
    if "bounced_before" in kept:
        conversation.bounced_at = _time(kept["bounced_before"])
    if not isinstance(status_before, str) or changes:
        return None
    conversation.status = status_before
    conversation.solved_at = _time(kept.get("solved_before"))
    return status_before
