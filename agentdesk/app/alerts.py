"""The agent's alerts while the TUI runs (domain/alerts.py): what happened since the last check
that concerns them, at most one per conversation a minute."""

from __future__ import annotations

from datetime import datetime, timedelta

from agentdesk.app.desk import Desk
from agentdesk.domain import alerts as alert_rules
from agentdesk.store import alerts as alert_queries
from agentdesk.store.queries import DONE_STATUSES


class AlertFeed:
    """Reads from where the last check stopped; the first check starts from now (what was there
    before the TUI opened is the queue's, not news)."""

    def __init__(self, desk: Desk, *, every: timedelta = timedelta(minutes=1)) -> None:
        self.desk = desk
        self.limit = alert_rules.RateLimit(every)
        self.event_mark: int | None = None
        self.message_mark = 0
        self.checked: datetime | None = None

    def check(self) -> list[alert_rules.Alert]:
        desk, now = self.desk, self.desk.now()
        with desk.read() as session:
            if self.event_mark is None:
                self.event_mark, self.message_mark = alert_queries.high_marks(session=session)
                self.checked = now
                return []
            events = alert_queries.events_after(
                session=session, after_id=self.event_mark, actions=alert_rules.EVENT_ACTIONS
            )
            answers = alert_queries.customer_messages_after(
                session=session, after_id=self.message_mark, assignee=desk.agent
            )
            assert self.checked is not None  # set together with event_mark
            warnings = alert_queries.warnings_between(
                session=session, assignee=desk.agent, after=self.checked, until=now, done_statuses=DONE_STATUSES
            )
            holders = alert_queries.assignees(
                session=session, conversation_ids=[e.conversation_id for e in events if e.conversation_id is not None]
            )
            event_mark, message_mark = alert_queries.high_marks(session=session)
        found = alert_rules.from_events(events, agent=desk.agent, assignees=holders)
        found += alert_rules.answered(answers)
        found += alert_rules.sla_warnings(warnings)
        # Read in the same transaction as the rows above: nothing committed between them is skipped.
        self.event_mark, self.message_mark = event_mark, message_mark
        self.checked = now
        return self.limit.passed(found, now)
