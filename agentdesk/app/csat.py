"""Satisfaction ratings as the front ends show them: a customer's history of ratings, and the bad
ratings an agent has not seen yet (the TUI's alert)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from agentdesk.app.desk import Desk
from agentdesk.domain import csat
from agentdesk.store import csat as csat_store
from agentdesk.store.models import ref_of


def customer_ratings(desk: Desk, customer_id: int) -> list[dict[str, Any]]:
    """The customer's answered surveys, newest first: {ref, subject, rating, comment, at}."""
    with desk.read() as session:
        return csat.customer_ratings(session, customer_id)


@dataclass(frozen=True)
class Alert:
    ref: str
    rating: int
    comment: str
    at: datetime


def bad_ratings_for(desk: Desk, *, since: datetime) -> list[Alert]:
    """Bad ratings (1-2) recorded since `since` on conversations of this agent (csat_alert events)."""
    with desk.read() as session:
        events = csat_store.alert_events(session=session, since=since)
    alerts = []
    for event in events:
        detail = json.loads(event.detail or "{}")
        if detail.get("assignee") == desk.agent and event.conversation_id is not None:
            alerts.append(
                Alert(
                    ref_of(event.conversation_id),
                    int(detail.get("rating") or 0),
                    str(detail.get("comment") or ""),
                    event.at,
                )
            )
    return alerts
