"""Alerts for an agent: new work assigned to them, a customer's answer on a conversation they own,
a reply of theirs that bounced, an SLA of theirs entering its warning window, a bad rating.

`RateLimit` keeps it bearable: never more than one alert per conversation per `every` (a minute),
whatever happens to it meanwhile; it takes the time it is asked at, so it runs on any clock.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta

from agentdesk.store.models import Event, ref_of

# The audit events an alert is made of (their action names).
EVENT_ACTIONS = ("assign", "bounced", "csat_alert")


@dataclass(frozen=True)
class Alert:
    kind: str  # assigned | answered | bounced | sla_warning | bad_rating
    conversation_id: int
    text: str


class RateLimit:
    """One alert per conversation per `every`."""

    def __init__(self, every: timedelta = timedelta(minutes=1)) -> None:
        self.every = every
        self._last: dict[int, datetime] = {}

    def allow(self, conversation_id: int, now: datetime) -> bool:
        last = self._last.get(conversation_id)
        if last is not None and now - last < self.every:
            return False
        self._last[conversation_id] = now
        return True

    def passed(self, alerts: list[Alert], now: datetime) -> list[Alert]:
        return [alert for alert in alerts if self.allow(alert.conversation_id, now)]


def from_events(events: list[Event], *, agent: str, assignees: dict[int, str | None]) -> list[Alert]:
    """The alerts for `agent` among these audit events (another's doing, never their own);
    `assignees`: who holds each of their conversations now."""
    found = []
    for event in events:
        if event.conversation_id is None or event.agent == agent:
            continue
        detail = json.loads(event.detail or "{}")
        ref = ref_of(event.conversation_id)
        if event.action == "assign" and detail.get("new") == agent:
            who = "" if event.agent == "system" else f" by {event.agent}"
            found.append(Alert("assigned", event.conversation_id, f"{ref} was assigned to you{who}"))
        elif event.action == "csat_alert" and detail.get("assignee") == agent:
            comment = str(detail.get("comment") or "")
            said = f": “{comment[:80]}”" if comment else ""
            found.append(
                Alert(
                    "bad_rating",
                    event.conversation_id,
                    f"{ref} was rated {detail.get('rating')}/5 by the customer{said}",
                )
            )
        elif event.action == "bounced" and assignees.get(event.conversation_id) == agent:
            found.append(
                Alert(
                    "bounced",
                    event.conversation_id,
                    f"{ref}: your reply bounced ({str(detail.get('reason', ''))[:80]})",
                )
            )
    return found


def answered(rows: list[tuple[int, int, str, str]]) -> list[Alert]:
    """Alerts for customer messages on the agent's conversations: (message id, conversation, sender, subject)."""
    return [
        Alert(
            "answered", conversation_id, f"{ref_of(conversation_id)}: {sender or 'the customer'} answered — {subject}"
        )
        for _, conversation_id, sender, subject in rows
    ]


def sla_warnings(rows: list[tuple[int, str]]) -> list[Alert]:
    return [
        Alert("sla_warning", conversation_id, f"{ref_of(conversation_id)}: SLA warning — {subject}")
        for conversation_id, subject in rows
    ]
