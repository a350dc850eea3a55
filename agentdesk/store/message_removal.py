"""A message row taken out of the database, and every row that names it.

SQLite's `message` table has no AUTOINCREMENT: the next message stored takes the largest id in
use plus one, which is the id just deleted when the message removed was the newest. A row left
holding that id would then name another, later message (an audit event would say the new reply
was withdrawn; an attachment would appear on it). PostgreSQL's sequence never gives an id twice,
but a row left naming a gone message dangles there all the same. So a message goes only through
`remove`, which decides for each column that holds a message's id what becomes of its row:

- deleted, with the message, where the row only made sense with it: its raw form, its
  attachments' rows (the bytes stay in the store, shared by content), the knowledge-base articles
  counted as sent in it, its outbox row and that row's delivery attempts;
- kept, with the id set to NULL, where the row is history of something else: the bounce an
  outbox row was failed by, the survey a conversation was sent and the answer to it, and the
  audit events whose detail names the message (they keep the rest of their detail, so the audit
  log still tells what happened).

`REFERENCES` lists the columns; tests/unit/test_withdrawn_references.py fails when a table gains a
column holding a message id that it does not list.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, update
from sqlmodel import Session, col, select

from agentdesk.store.models import (
    ArticleUse,
    Attachment,
    DeliveryAttempt,
    Event,
    Message,
    MessageRaw,
    Outbox,
    SatisfactionSurvey,
)

DELETE = "delete"
SET_NULL = "set null"

# (table, column) -> what a message's removal does to a row whose column names it.
REFERENCES: dict[tuple[str, str], str] = {
    ("messageraw", "message_id"): DELETE,
    ("attachment", "message_id"): DELETE,
    ("articleuse", "message_id"): DELETE,
    ("outbox", "message_id"): DELETE,  # with its delivery attempts
    ("outbox", "bounce_message_id"): SET_NULL,
    ("satisfactionsurvey", "message_id"): SET_NULL,
    ("satisfactionsurvey", "answer_message_id"): SET_NULL,
}

# Events name a message inside their JSON detail, under "message_id" or a key ending in
# "_message_id" ("from_message_id", "bounce_message_id"), as `audit.record` writes it
# (`json.dumps` with its default separators).
_DETAIL_KEY_SUFFIX = "message_id"
# Events about a message are recorded after it was stored; this much earlier still is looked at,
# for a team whose hosts' clocks disagree.
_CLOCK_SKEW = timedelta(days=1)


def remove(*, session: Session, message_id: int) -> bool:
    """Delete the message and the rows that only made sense with it; set to NULL every other
    reference to it, in the caller's transaction. False when there is no such message."""
    message = session.get(Message, message_id)
    if message is None:
        return False
    stored_since = min(message.at, message.ingested_at) - _CLOCK_SKEW
    outbox_ids = select(Outbox.id).where(col(Outbox.message_id) == message_id)
    session.exec(delete(DeliveryAttempt).where(col(DeliveryAttempt.outbox_id).in_(outbox_ids)))
    session.exec(delete(Outbox).where(col(Outbox.message_id) == message_id))
    session.exec(delete(Attachment).where(col(Attachment.message_id) == message_id))
    session.exec(delete(ArticleUse).where(col(ArticleUse.message_id) == message_id))
    session.exec(delete(MessageRaw).where(col(MessageRaw.message_id) == message_id))
    # Only a customer's (inbound) message is a bounce or a survey's answer, and only a survey
    # message is a survey: an agent's reply, the one kind withdrawn, reads none of these tables
    # (their columns have no index).
    if message.direction == "inbound":
        session.exec(update(Outbox).where(col(Outbox.bounce_message_id) == message_id).values(bounce_message_id=None))
        session.exec(
            update(SatisfactionSurvey)
            .where(col(SatisfactionSurvey.answer_message_id) == message_id)
            .values(answer_message_id=None)
        )
    if message.kind == "survey":
        session.exec(
            update(SatisfactionSurvey).where(col(SatisfactionSurvey.message_id) == message_id).values(message_id=None)
        )
    _forget_in_events(session, message_id, since=stored_since)
    session.exec(delete(Message).where(col(Message.id) == message_id))
    return True


def events_naming(session: Session, message_id: int, *conditions) -> list[tuple[Event, dict[str, Any], list[str]]]:
    """The events (also meeting `conditions`) whose detail names the message, oldest first, each
    with its detail and the keys that name it."""
    # The LIKE narrows the rows read; the JSON decides, so 12 is not 120.
    found = []
    for event in session.exec(
        select(Event)
        .where(col(Event.detail).like(f'%{_DETAIL_KEY_SUFFIX}": {message_id}%'), *conditions)
        .order_by(col(Event.id))
    ):
        try:
            detail = json.loads(event.detail or "{}")
        except ValueError:
            continue
        if not isinstance(detail, dict):
            continue
        named = [
            key
            for key, value in detail.items()
            if key.endswith(_DETAIL_KEY_SUFFIX) and type(value) is int and value == message_id
        ]
        if named:
            found.append((event, detail, named))
    return found


def _forget_in_events(session: Session, message_id: int, *, since: datetime) -> None:
    """Set to null each key of an event's detail that names the message; the event stays."""
    for event, detail, named in events_naming(session, message_id, col(Event.at) >= since):  # Event.at is indexed
        for key in named:
            detail[key] = None
        event.detail = json.dumps(detail, default=str, sort_keys=True)
        session.add(event)
