"""The long-running worker: pull every source, deliver the outbox.

Two small registries make it channel-agnostic; they are the one place a channel family plugs in:

- `SOURCE_FACTORIES`: channel family -> function building `Source` objects from the settings.
  A Source has `poll()` (one pass: store what is new, advance its checkpoint in the same
  transaction), `wait(timeout)` (block until something may be new — IMAP IDLE, a spool watch — or
  the timeout passes), `interrupt()` and `close()`.
- `SENDER_FACTORIES`: channel family -> function building `{channel kind: delivery.Sender}`.

A new family adds its source module under `sources/`, its sender to `senders.py`, and one entry
to each registry.

`run_once` polls every source once and delivers what is due (`agentdesk sync --once`).
`run_forever` gives each source its own thread (poll, then wait) and the outbox another, until
the stop event is set (SIGINT/SIGTERM in the CLI, the TUI shutting down its worker).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from agentdesk.store import db
from agentdesk.store import outbox as outbox_queries
from agentdesk.sync import delivery
from agentdesk.sync.base import PollReport, Progress, Source, SourceError, SyncContext  # noqa: F401
from agentdesk.sync.senders import email_senders, spool_senders
from agentdesk.sync.sources.email import mailbox_sources

log = logging.getLogger("agentdesk.sync")

# How often every source is polled when nothing pushes (IDLE off or unsupported), in seconds;
# with IDLE the folder is still re-checked this often, and the other folders are polled.
POLL_INTERVAL = 60.0
# How often the outbox is checked for replies queued by agents (other processes).
DELIVERY_INTERVAL = 2.0
# How often conversations that stayed solved are checked for their satisfaction survey: the
# delay is an hour by default, so a check each delivery pass would be wasted reads.
SURVEY_INTERVAL = 30.0
# After a source fails (its server is down, a connection broke), the pause before the next attempt:
# the first, doubled after each failure in a row, at most the longest (and never more than the
# poll interval). A restarted server is back in use within the pause in force when it returns.
RETRY_FIRST = 1.0
RETRY_LONGEST = 60.0


def retry_delay(failures: int) -> float:
    """The pause after `failures` failed attempts in a row: 1, 2, 4, … 60 s."""
    return min(RETRY_LONGEST, RETRY_FIRST * 2 ** (max(failures, 1) - 1))


class Backoff:
    """One source's failures in a row, the pause each calls for, and one log line per change of
    state — not one per attempt: failing (the error, the first pause), another error, a longer
    pause, back."""

    def __init__(self, name: str):
        self.name = name
        self.failures = 0
        self.down = False
        self._error = ""

    def failed(self, error: BaseException) -> float:
        """Count a failed attempt; the pause before the next one."""
        self.failures += 1
        delay = retry_delay(self.failures)
        message = str(error)
        if not self.down or message != self._error:
            log.warning("%s: %s; retrying in %s", self.name, message, _seconds(delay))
        elif delay != retry_delay(self.failures - 1):
            log.info("%s: still failing; retrying in %s", self.name, _seconds(delay))
        self.down, self._error = True, message
        return delay

    def answered(self) -> None:
        """A poll worked: the source is back."""
        if self.down:
            log.info("%s: back after %d failure(s)", self.name, self.failures)
            self.down, self._error = False, ""

    def settled(self) -> None:
        """A poll and the wait after it worked: pauses start again from the first. (Not at the poll
        alone: a server that lets us poll but drops every IDLE connection keeps backing off.)"""
        self.failures = 0


def _seconds(delay: float) -> str:
    return f"{delay:g} s"


def _spool_sources(ctx: SyncContext) -> list[Source]:
    # Imported only when a spool is configured: a sync of mailboxes alone never loads the
    # adapters and the spool machinery.
    if not ctx.settings.spool:
        return []
    from agentdesk.sync.sources.spool import spool_sources

    return spool_sources(ctx)  # type: ignore[return-value]  # its SpoolPollReport has PollReport's fields, not its class


# Order matters: a spool of kind "email" wraps the email sender, so spools come after email.
SOURCE_FACTORIES: dict[str, Callable[[SyncContext], list[Source]]] = {
    "email": mailbox_sources,
    "spool": _spool_sources,
}
SENDER_FACTORIES: dict[str, Callable[[SyncContext], dict[str, delivery.Sender]]] = {
    "email": email_senders,
    "spool": spool_senders,
}


def build_sources(ctx: SyncContext, only: str | None = None) -> list[Source]:
    sources = [source for factory in SOURCE_FACTORIES.values() for source in factory(ctx)]
    if only is not None:
        sources = [source for source in sources if source.name == only]
    return sources


def build_senders(ctx: SyncContext) -> dict[str, delivery.Sender]:
    senders: dict[str, delivery.Sender] = {}
    for factory in SENDER_FACTORIES.values():
        senders.update(factory(ctx))
    return senders


@dataclass
class SyncReport:
    polls: list[PollReport] = field(default_factory=list)
    delivery: delivery.DeliveryReport = field(default_factory=delivery.DeliveryReport)
    errors: list[str] = field(default_factory=list)
    # Queued replies no sender here takes, after the pass (all of them, not only those it found):
    # what `sync --once` counts as "cannot be delivered here".
    undeliverable: int = 0

    @property
    def ok(self) -> bool:
        return not self.errors and not self.delivery.errors

    @property
    def stored(self) -> int:
        return sum(p.stored for p in self.polls)


class SyncWorker:
    def __init__(
        self,
        ctx: SyncContext,
        sources: list[Source],
        senders: dict[str, delivery.Sender],
        *,
        poll_interval: float = POLL_INTERVAL,
        delivery_interval: float = DELIVERY_INTERVAL,
        delivery_sources: set[str] | None = None,
    ):
        self.ctx = ctx
        self.sources = sources
        self.senders = senders
        self.poll_interval = poll_interval
        self.delivery_interval = delivery_interval
        self.delivery_sources = delivery_sources
        self.stop = threading.Event()
        self.delivery_wake = threading.Event()
        self._surveys_checked = float("-inf")

    def queue_surveys(self, *, force: bool = False) -> int:
        """Queue the satisfaction surveys that are due (domain/csat.py), at most every
        SURVEY_INTERVAL unless `force`; how many survey decisions were written."""
        import time

        from agentdesk.domain import csat

        settings = self.ctx.settings
        if self.delivery_sources is not None or not csat.any_channel_surveys(settings):
            return 0  # a worker limited to some sources leaves surveys to the full one
        if not force and time.monotonic() - self._surveys_checked < SURVEY_INTERVAL:
            return 0
        self._surveys_checked = time.monotonic()
        now = self.ctx.now_fn()
        with db.read_session(self.ctx.engine) as session:
            if not csat.surveys_due(session, settings=settings, now=now):
                return 0
        with db.write_session(self.ctx.engine) as session:
            written = csat.queue_due_surveys(session, settings=settings, policies=self.ctx.policies, now=now)
            session.commit()
        return len(written)

    def deliver(self) -> delivery.DeliveryReport:
        """One delivery pass. A host with no sender at all still runs it: the pass is what marks the
        queued replies no sender here takes, so the thread, `show` and `doctor` say they wait for
        another host instead of nothing saying anything."""
        if not self.senders and not self._anything_to_mark():
            return delivery.DeliveryReport()
        return delivery.deliver_due(
            self.ctx.engine, self.senders, now_fn=self.ctx.now_fn, sources=self.delivery_sources
        )

    def _anything_to_mark(self) -> bool:
        # A read, not the pass's write transaction: an idle host without senders (a TUI beside a
        # sync elsewhere, a receive-only config) polls this every few seconds and must not take
        # the write lock each time to learn that nothing is queued.
        if self.delivery_sources is not None:
            return False  # a worker limited to some sources leaves the marking to the full one
        with db.read_session(self.ctx.engine) as session:
            return bool(outbox_queries.undeliverable(session=session, senders=set()))

    def run_once(self, *, progress: Progress | None = None) -> SyncReport:
        report = SyncReport()
        for source in self.sources:
            try:
                report.polls.append(source.poll(progress=progress))
            except SourceError as error:
                report.errors.append(str(error))
                if error.report is not None:  # what it stored before failing
                    report.polls.append(error.report)
            except Exception as error:  # e.g. the database is locked past its timeout
                report.errors.append(f"{source.name}: {type(error).__name__}: {error}")
        try:
            self.queue_surveys(force=True)
        except Exception as error:
            report.errors.append(f"surveys: {type(error).__name__}: {error}")
        try:
            report.delivery = self.deliver()
            with db.read_session(self.ctx.engine) as session:
                report.undeliverable = sum(
                    count for _, count, _ in outbox_queries.undeliverable(session=session, senders=set(self.senders))
                )
        except Exception as error:
            report.errors.append(f"outbox: {type(error).__name__}: {error}")
        return report

    def _source_loop(self, source: Source, on_report: Callable[[Any], None] | None) -> None:
        """Poll, then wait for news (IDLE, a spool watch) or the poll interval, until stopped. A
        failed poll or wait (a server down, a connection broken) is retried after a pause that
        grows while it keeps failing; the next poll reconnects and fetches what came meanwhile."""
        backoff = Backoff(source.name)
        while not self.stop.is_set():
            try:
                result = source.poll()
                backoff.answered()
                if on_report and (result.stored or result.errors):
                    on_report(result)
                if result.stored:
                    self.delivery_wake.set()  # a new message may have queued something to send
            except Exception as error:
                self._pause_after(backoff, error)
                continue
            if self.stop.is_set():
                break
            try:
                source.wait(self.poll_interval)
            except Exception as error:
                self._pause_after(backoff, error)
                continue
            backoff.settled()

    def _pause_after(self, backoff: Backoff, error: Exception) -> None:
        # The backoff's log lines are what a failing source reports (on_report would repeat them).
        if not self.stop.is_set():
            self.stop.wait(min(self.poll_interval, backoff.failed(error)))

    def _delivery_loop(self, on_report: Callable[[Any], None] | None) -> None:
        while not self.stop.is_set():
            try:
                self.queue_surveys()
                result = self.deliver()
                if on_report and (result.sent or result.errors):
                    on_report(result)
            except Exception as error:
                # This log line is what a failing pass reports (on_report would repeat it).
                log.warning("outbox: %s", error)
            self.delivery_wake.wait(self.delivery_interval)
            self.delivery_wake.clear()

    def run_forever(self, *, on_report: Callable[[Any], None] | None = None) -> None:
        """Until `self.stop` is set: each source in its own thread, the outbox in another."""
        threads = [
            threading.Thread(
                target=self._source_loop, args=(source, on_report), daemon=True, name=f"sync-{source.name}"
            )
            for source in self.sources
        ]
        threads.append(threading.Thread(target=self._delivery_loop, args=(on_report,), daemon=True, name="sync-outbox"))
        for thread in threads:
            thread.start()
        try:
            while not self.stop.wait(0.5):
                pass
        finally:
            self.shutdown()
            for thread in threads:
                thread.join(timeout=10)

    def shutdown(self) -> None:
        self.stop.set()
        self.delivery_wake.set()
        for source in self.sources:
            try:
                source.interrupt()
                source.close()
            except Exception:
                pass
