"""`agentdesk sync [--once] [--source NAME]`: the long-running worker, or one pass of it.

Exit status (DESIGN, "sync --once exit status"): 0 when every source was read and every item
was stored (or rejected with a reason printed on stderr); 1 when a source could not be read, an
item could not be stored or a reply could not be delivered — one line per problem on stderr.
Two delivery outcomes count as problems of the pass that finds them, and of that pass only: a
reply possibly sent (the agent must decide whether to resend it, so a cron job hears of it once)
and replies newly found that no sender on this host can deliver. Later passes exit 0 for them:
the thread, `show` and `doctor` keep saying so, and the summary line keeps counting them.
Without --once the worker runs until SIGINT or SIGTERM and then exits 0.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys

from agentdesk.cli.common import EXIT_FAILED, Progress, context

BAR_FROM = 200  # messages; a smaller sync finishes before a bar is worth drawing


def cmd_sync(args: argparse.Namespace) -> int:
    from agentdesk.app import sync

    ctx = context(args)
    with sync.started(ctx.desk, only=getattr(args, "source", None)) as run:
        if run.recomputed is not None:
            print(f"sync: SLA policies changed; {run.recomputed} open conversation(s) recomputed", file=sys.stderr)
        progress = Progress(unit="messages", rate_unit="msg", min_total=BAR_FROM)
        if getattr(args, "once", False):
            return _once(run.worker, progress)
        return _until_stopped(run.worker, progress, on_report=sync.log_report)


def _once(worker, progress: Progress) -> int:
    report = worker.run_once(progress=progress)
    for line in [*report.errors, *report.delivery.errors]:
        print(f"agentdesk: sync: {line}", file=sys.stderr)
    duplicates = sum(p.duplicates for p in report.polls)
    print(f"sync: {report.stored} new message(s), {duplicates} already stored, {report.delivery.sent} sent, "
          f"{report.delivery.retrying} to retry, {report.delivery.failed} failed, "
          f"{report.delivery.possibly_sent} possibly sent, {report.undeliverable} cannot be delivered here",
          file=sys.stderr)
    return 0 if report.ok else EXIT_FAILED


def _until_stopped(worker, progress: Progress, *, on_report) -> int:
    from agentdesk.sanitize import InertLogFormatter

    # Log lines quote senders (file names, addresses, reasons): each record is written inert.
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(InertLogFormatter("%(asctime)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.INFO, handlers=[handler])

    def stop(signum, _frame) -> None:
        worker.stop.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    # The first pass shows its progress (a big first sync); later ones log.
    first = worker.run_once(progress=progress)
    for line in [*first.errors, *first.delivery.errors]:
        print(f"agentdesk: sync: {line}", file=sys.stderr)
    if not worker.stop.is_set():
        worker.run_forever(on_report=on_report)
    else:
        worker.shutdown()
    return 0
