"""The main screen's alert on a bad satisfaction rating: when a customer rates one of this agent's
conversations 1 or 2 (a `csat_alert` event, domain/csat.py), a warning names the conversation and
the comment. Checked with the masthead's figures, in a worker; only ratings that arrive while the
TUI runs are announced (the thread and `agentdesk audit` keep every one)."""

from __future__ import annotations

from datetime import datetime

from textual import work

from agentdesk.app import csat as csat_actions
from agentdesk.tui.screens.main_parts import MainScreenParts
from agentdesk.tui.widgets import shown_line


class RatingAlerts(MainScreenParts):
    """Mixed into the main screen, which has `desk` and `now`."""

    _ratings_checked: datetime | None = None

    @work(thread=True, exclusive=True, group="ratings", exit_on_error=False)
    def check_ratings(self) -> None:
        now = self.now()
        since, self._ratings_checked = self._ratings_checked, now
        if since is None:
            return  # the first check only sets where the next one starts
        for alert in csat_actions.bad_ratings_for(self.desk, since=since):
            comment = f": “{shown_line(alert.comment)[:80]}”" if alert.comment else ""
            self.app.call_from_thread(
                self.notify,
                f"⚠ {alert.ref} was rated {alert.rating}/5 by the customer{comment}",
                title="Bad rating",
                severity="warning",
                timeout=20,
                markup=False,
            )
