"""The audit log: every change, reply, merge and claim is an Event with agent and time."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlmodel import Session

from agentdesk.store.models import Event

SYSTEM = "system"  # the agent recorded for ingest and automation


def record(
    session: Session,
    *,
    agent: str,
    action: str,
    now: datetime,
    conversation_id: int | None = None,
    customer_id: int | None = None,
    **detail: Any,
) -> Event:
    """Add an event to the session; it commits with the change it describes."""
    event = Event(
        at=now,
        agent=agent,
        action=action,
        conversation_id=conversation_id,
        customer_id=customer_id,
        detail=json.dumps(detail, default=str, sort_keys=True),
    )
    session.add(event)
    return event


def event_document(event: Event, *, ref_of) -> dict[str, Any]:
    return {
        "id": event.id,
        "at": event.at.isoformat(),
        "agent": event.agent,
        "action": event.action,
        "ref": ref_of(event.conversation_id) if event.conversation_id else None,
        "customer_id": event.customer_id,
        "detail": json.loads(event.detail or "{}"),
    }
