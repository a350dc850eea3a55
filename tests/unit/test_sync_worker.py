"""The long-running sync's own reporting: what a person reads in its log."""

from __future__ import annotations

import logging

from agentdesk.app.sync import log_report
from agentdesk.store import db
from agentdesk.sync import worker


def test_a_failing_delivery_pass_is_logged_once(settings, caplog):
    """A delivery pass that fails (here: the database file gone under a running sync) is one
    warning in the log, not the worker's line and then the front end's again."""
    path = db.sqlite_path(settings.database_url)
    engine = db.open_database(settings.database_url)
    engine.dispose()
    path.unlink()  # the next connection makes an empty file: every query fails, as for real
    try:
        sync = worker.SyncWorker(worker.SyncContext(settings=settings, engine=engine), [], {}, delivery_interval=0.01)
        deliver = sync.deliver

        def one_pass():
            sync.stop.set()  # the loop ends after this pass
            return deliver()

        sync.deliver = one_pass
        with caplog.at_level(logging.INFO, logger="agentdesk.sync"):
            sync._delivery_loop(log_report)
    finally:
        engine.dispose()
    failures = [r.getMessage() for r in caplog.records if "outbox" in r.getMessage()]
    assert len(failures) == 1 and "no such table" in failures[0], caplog.records
    assert [r.getMessage() for r in caplog.records] == failures
