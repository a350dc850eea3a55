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
def started(desk: Desk, *, only: str | None = None, by: str = "agentdesk sync") -> Iterator[Started]:
    """The worker of every source (or the one named `only`), while this process holds the sync lock.

    One sync serves the team: a second one (even --once) would race the first, so it fails here
    with a message naming the holder."""
    from agentdesk.store import locks
    from agentdesk.sync import worker as sync

    with locks.sync_lock(desk.engine, by=by):
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
            worker = sync.SyncWorker(
                context, sources, sync.build_senders(context), delivery_sources={only} if only is not None else None
            )
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


class DeskSync:
    """The sync a TUI runs for its agent while no `agentdesk sync` holds the team's lock: intake
    and delivery, in threads of their own (`run` is the loop; call it from a thread, never from
    the event loop). While another process holds the lock it leaves the work to it, and tries
    again every `recheck` seconds, so it takes over when that sync goes away.

    `state` is what the header says: "starting", "here" (this process syncs), "elsewhere" (another
    process holds the lock; `holder` says which), "failed" (`holder` says why), "stopped"."""

    def __init__(
        self,
        desk: Desk,
        *,
        on_change=None,
        recheck: float = 15.0,
        poll_interval: float | None = None,
        delivery_interval: float | None = None,
    ) -> None:
        import threading

        self.desk = desk
        self.on_change = on_change
        self.recheck = recheck
        self.poll_interval = poll_interval
        self.delivery_interval = delivery_interval
        self.stop = threading.Event()
        self.state = "starting"
        self.holder = ""
        self.worker: Any = None

    @staticmethod
    def wanted(desk: Desk) -> bool:
        """Whether there is anything for a TUI to sync: a mailbox or a spool."""
        return bool(desk.settings.mailbox or desk.settings.spool)

    def _set(self, state: str, holder: str = "") -> None:
        if (state, holder) != (self.state, self.holder):
            self.state, self.holder = state, holder
            if self.on_change is not None:
                self.on_change(state, holder)

    def run(self) -> None:
        from agentdesk.errors import Conflict

        while not self.stop.is_set():
            try:
                with started(self.desk, by=f"agentdesk TUI of {self.desk.agent}") as running:
                    worker = running.worker
                    if self.poll_interval is not None:
                        worker.poll_interval = self.poll_interval
                    if self.delivery_interval is not None:
                        worker.delivery_interval = self.delivery_interval
                    # One stop for both: closing the TUI ends the worker's threads too.
                    worker.stop = self.stop
                    self.worker = worker
                    self._set("here")
                    worker.run_forever(on_report=self._reported)
            except Conflict as error:
                self._set("elsewhere", str(error))
            except Exception as error:  # a database or config problem: say it, try again later
                log.warning("the TUI's sync: %s", error)
                self._set("failed", f"{type(error).__name__}: {error}")
            finally:
                self.worker = None
            self.stop.wait(self.recheck)
        self._set("stopped")

    def _reported(self, report: Any) -> None:
        # The TUI has no log on screen: what the worker reports reaches it as database changes.
        pass

    def deliver_now(self) -> None:
        """Run a delivery pass now rather than at the next interval."""
        worker = self.worker
        if worker is not None:
            worker.delivery_wake.set()

    def close(self) -> None:
        self.stop.set()
        worker = self.worker
        if worker is not None:
            worker.delivery_wake.set()
