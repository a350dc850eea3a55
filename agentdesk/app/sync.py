"""The sync worker as a front end starts it: under the team's one sync lock, with an edited SLA
policy applied to open conversations first (docs/sla.md)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from agentdesk.app import reports
from agentdesk.app.desk import Desk
from agentdesk.errors import InvalidInput

log = logging.getLogger("agentdesk.sync")


@dataclass
class Started:
    worker: Any  # sync.worker.SyncWorker
    sources: list
    recomputed: int | None  # open conversations whose SLA fields a policy change recomputed


@contextmanager
def started(desk: Desk, *, only: str | None = None) -> Iterator[Started]:
    """The worker of every source (or the one named `only`), while this process holds the sync lock.

    One sync serves the team: a second one (even --once) would race the first, so it fails here
    with a message naming the holder."""
    from agentdesk.store import locks
    from agentdesk.sync import worker as sync

    with locks.sync_lock(desk.engine):
        # The SLA policies are loaded when a message is stored: a pass with no new mail needs none.
        context = sync.SyncContext(settings=desk.settings, engine=desk.engine, load_policies=lambda: desk.policies)
        sources = sync.build_sources(context)
        if only is not None:
            known = ", ".join(source.name for source in sources) or "none configured"
            for source in sources:
                if source.name != only:
                    source.close()
            sources = [source for source in sources if source.name == only]
            if not sources:
                raise InvalidInput(f"--source {only}: no mailbox or spool of that name (known: {known})")
        try:
            # Mail servers answer a login in tens of milliseconds: let them while the policies
            # are checked, rather than after.
            for source in sources:
                if hasattr(source, "open_ahead"):
                    source.open_ahead()
            applied = reports.recompute_sla(desk, only_if_changed=True, agent="system")
            worker = sync.SyncWorker(context, sources, sync.build_senders(context),
                                     delivery_sources={only} if only is not None else None)
            yield Started(worker, sources, applied.changed if applied is not None else None)
        finally:
            for source in sources:
                source.close()


def log_report(report: Any) -> None:
    """What a running worker reports (a poll, a delivery pass), as log lines. (A pass that fails
    is logged by the worker itself.)"""
    from agentdesk.sync import delivery
    from agentdesk.sync import worker as sync

    if isinstance(report, sync.PollReport):
        if report.stored:
            log.info("%s: %d new message(s)", report.source, report.stored)
    elif isinstance(report, delivery.DeliveryReport):
        for line in report.errors:
            log.warning("%s", line)
        if report.sent:
            log.info("%d reply(ies) sent", report.sent)
