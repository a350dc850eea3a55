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

from agentdesk.cli.common import EXIT_FAILED, VERBOSITY, Progress, context, print_json

BAR_FROM = 200  # messages; a smaller sync finishes before a bar is worth drawing


def cmd_sync(args: argparse.Namespace) -> int:
    from agentdesk.app import sync

    ctx = context(args)
    with sync.started(ctx.desk, only=getattr(args, "source", None)) as run:
        if run.recomputed is not None:
            print(f"sync: SLA policies changed; {run.recomputed} open conversation(s) recomputed", file=sys.stderr)
        progress = Progress(unit="messages", rate_unit="msg", min_total=BAR_FROM)
        sources = describe_sources(ctx.settings, [source.name for source in run.sources])
        if getattr(args, "once", False):
            if VERBOSITY.verbose:
                print(f"sync: one pass over {sources}", file=sys.stderr)
            return _once(run.worker, progress, as_json=getattr(args, "json", False))
        return _until_stopped(run.worker, progress, on_report=sync.log_report, sources=sources)


def describe_sources(settings, names: list[str]) -> str:
    """The sources a sync reads, for its start line: where each one's messages come from."""
    mailboxes = {mailbox.name: mailbox for mailbox in settings.mailbox}
    spools = {spool.name: spool for spool in settings.spool}
    parts = []
    for name in names:
        if name in mailboxes:
            mailbox = mailboxes[name]
            parts.append(f"{name} (IMAP {mailbox.username}@{mailbox.host}:{mailbox.port} {', '.join(mailbox.folders)})")
        elif name in spools:
            spool = spools[name]
            parts.append(f"{name} ({spool.adapter} spool {settings.spool_path(spool)})")
        else:
            parts.append(name)
    if not parts:
        return (
            "no sources: add a [[mailbox]] or [[spool]] to the config (config.example.toml); "
            "the outbox is still delivered"
        )
    return f"{len(parts)} source(s): " + "; ".join(parts)


def _once(worker, progress: Progress, *, as_json: bool = False) -> int:
    report = worker.run_once(progress=progress)
    if as_json:
        print_json(_report_document(report))
    for line in [*report.errors, *report.delivery.errors]:
        print(f"agentdesk: sync: {line}", file=sys.stderr)
    duplicates = sum(p.duplicates for p in report.polls)
    print(
        f"sync: {report.stored} new message(s), {duplicates} already stored, {report.delivery.sent} sent, "
        f"{report.delivery.retrying} to retry, {report.delivery.failed} failed, "
        f"{report.delivery.possibly_sent} possibly sent, {report.undeliverable} cannot be delivered here",
        file=sys.stderr,
    )
    return 0 if report.ok else EXIT_FAILED


def _report_document(report) -> dict:
    """`sync --once --json`: what the pass stored, rejected, sent and failed, per source."""
    delivery = report.delivery
    return {
        "ok": report.ok,
        "stored": report.stored,
        "duplicates": sum(poll.duplicates for poll in report.polls),
        "rejected": sum(len(getattr(poll, "rejected", ())) for poll in report.polls),
        "sources": [
            {
                "name": poll.source,
                "fetched": poll.fetched,
                "stored": poll.stored,
                "duplicates": poll.duplicates,
                "rejected": [{"file": file, "reason": reason} for file, reason in getattr(poll, "rejected", ())],
                "errors": list(poll.errors),
            }
            for poll in report.polls
        ],
        "delivery": {
            "sent": delivery.sent,
            "retrying": delivery.retrying,
            "failed": delivery.failed,
            "possibly_sent": delivery.possibly_sent,
            "errors": list(delivery.errors),
        },
        "undeliverable": report.undeliverable,
        "errors": list(report.errors),
    }


def _until_stopped(worker, progress: Progress, *, on_report, sources: str) -> int:
    from agentdesk.sanitize import InertLogFormatter

    # Log lines quote senders (file names, addresses, reasons): each record is written inert.
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(InertLogFormatter("%(asctime)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.INFO, handlers=[handler])
    # A service's log (systemd, a terminal left open) says at once what this sync reads.
    logging.getLogger("agentdesk.sync").info("started: %s", sources)

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
