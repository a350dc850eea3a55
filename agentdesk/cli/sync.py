"""`agentdesk sync [--once] [--source NAME]`: the long-running worker, or one pass of it.

Exit status (DESIGN, "sync --once exit status"): 0 when every source was read and every item
was stored (or rejected with a reason printed on stderr); 1 when a source could not be read, an
item could not be stored or a reply could not be delivered — one line per problem on stderr.
Without --once the worker runs until SIGINT or SIGTERM and then exits 0.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from typing import Any

from agentdesk.cli.common import EXIT_FAILED, Progress, context
from agentdesk.errors import InvalidInput

BAR_FROM = 200  # messages; a smaller sync finishes before a bar is worth drawing


def cmd_sync(args: argparse.Namespace) -> int:
    from agentdesk.app import reports
    from agentdesk.store import locks

    ctx = context(args)
    # One sync serves the team: a second one (even --once) would race the first.
    with locks.sync_lock(ctx.desk.engine):
        # An edited SLA policy reaches open conversations when the worker starts (docs/sla.md).
        applied = reports.recompute_sla(ctx.desk, only_if_changed=True, agent="system")
        if applied is not None:
            print(f"sync: SLA policies changed; {applied.changed} open conversation(s) recomputed",
                  file=sys.stderr)
        return _sync(ctx, args)


def _sync(ctx, args: argparse.Namespace) -> int:
    from agentdesk.sync import worker as sync

    settings, desk = ctx.settings, ctx.desk
    # The SLA policies are loaded when a message is stored: a pass with no new mail needs none.
    sync_context = sync.SyncContext(settings=settings, engine=desk.engine, load_policies=lambda: desk.policies)
    only = getattr(args, "source", None)
    sources = sync.build_sources(sync_context, only)
    if only is not None and not sources:
        known = ", ".join(source.name for source in [*settings.mailbox, *settings.spool]) or "none configured"
        raise InvalidInput(f"--source {only}: no mailbox or spool of that name (known: {known})")
    senders = sync.build_senders(sync_context)
    worker = sync.SyncWorker(sync_context, sources, senders,
                             delivery_sources={only} if only is not None else None)
    progress = Progress(unit="messages", rate_unit="msg", min_total=BAR_FROM)
    if getattr(args, "once", False):
        report = worker.run_once(progress=progress)
        for source in sources:
            source.close()
        for line in [*report.errors, *report.delivery.errors]:
            print(f"agentdesk: sync: {line}", file=sys.stderr)
        stored = report.stored
        duplicates = sum(p.duplicates for p in report.polls)
        print(f"sync: {stored} new message(s), {duplicates} already stored, {report.delivery.sent} sent, "
              f"{report.delivery.retrying} to retry, {report.delivery.failed} failed", file=sys.stderr)
        return 0 if report.ok else EXIT_FAILED

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", stream=sys.stderr)

    def stop(signum, _frame) -> None:
        worker.stop.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    # The first pass shows its progress (a big first sync); later ones log.
    first = worker.run_once(progress=progress)
    for line in [*first.errors, *first.delivery.errors]:
        print(f"agentdesk: sync: {line}", file=sys.stderr)
    if not worker.stop.is_set():
        worker.run_forever(on_report=_log_report)
    else:
        worker.shutdown()
    return 0


def _log_report(report: Any) -> None:
    from agentdesk.sync import delivery, worker as sync

    log = logging.getLogger("agentdesk.sync")
    if isinstance(report, sync.PollReport):
        if report.stored:
            log.info("%s: %d new message(s)", report.source, report.stored)
    elif isinstance(report, delivery.DeliveryReport):
        for line in report.errors:
            log.warning("%s", line)
        if report.sent:
            log.info("%d reply(ies) sent", report.sent)
    elif isinstance(report, BaseException):
        log.warning("%s", report)
