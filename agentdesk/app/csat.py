"""Satisfaction ratings as the front ends show them: a customer's history of ratings (a bad one
reaches the agent as an alert: app/alerts.py)."""

from __future__ import annotations

from typing import Any

from agentdesk.app.desk import Desk
from agentdesk.domain import csat


def customer_ratings(desk: Desk, customer_id: int) -> list[dict[str, Any]]:
    """The customer's answered surveys, newest first: {ref, subject, rating, comment, at}."""
    with desk.read() as session:
        return csat.customer_ratings(session, customer_id)
