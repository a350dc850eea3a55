"""CLI handlers of the email channel: `agentdesk sync [--once] [--source NAME]`.

Wired into `agentdesk.cli` (see docs/email.md, "CLI wiring"); runnable on its own for tests and
debugging as `python -m agentdesk.commands_email sync [--config PATH] [--once] [--source NAME]`.

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
import time
from typing import Any

EXIT_SYNC_FAILED = 1


class _ProgressBar:
    """A one-line progress bar on stderr for a big first sync; silent for small ones."""

    MIN_TOTAL = 200  # fewer messages than this finish before a bar is worth drawing

    def __init__(self, stream=None):
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.started = time.monotonic()
        self.last_draw = 0.0

    def __call__(self, done: int, total: int, what: str) -> None:
        if total < self.MIN_TOTAL:
            return
        if done == 0:
            self.started = time.monotonic()
        now = time.monotonic()
        if not self.tty:
            if done == total:
                print(f"{what}: {done}/{total} messages in {now - self.started:.1f}s", file=self.stream)
            return
        if done != total and now - self.last_draw < 0.1:
            return
        self.last_draw = now
        width = 30
        filled = int(width * done / total) if total else width
        rate = done / (now - self.started) if now > self.started else 0.0
        print(f"\r{what}: [{'#' * filled}{'.' * (width - filled)}] {done}/{total} ({rate:.0f} msg/s)",
              end="", file=self.stream, flush=True)
        if done == total:
            print(file=self.stream)


def sync_command(ctx, args: argparse.Namespace) -> int:
    """`agentdesk sync`: `ctx` is cli.Context (settings, engine, policies)."""
    from agentdesk.sync import worker as sync
    from agentdesk.errors import InvalidInput

    settings = ctx.settings
    # The SLA policies are loaded when a message is stored: a pass with no new mail needs none.
    sync_context = sync.SyncContext(settings=settings, engine=ctx.engine, load_policies=lambda: ctx.policies)
    only = getattr(args, "source", None)
    sources = sync.build_sources(sync_context, only)
    if only is not None and not sources:
        known = ", ".join(source.name for source in [*settings.mailbox, *settings.spool]) or "none configured"
        raise InvalidInput(f"--source {only}: no mailbox or spool of that name (known: {known})")
    senders = sync.build_senders(sync_context)
    worker = sync.SyncWorker(sync_context, sources, senders,
                             delivery_sources={only} if only is not None else None)
    if getattr(args, "once", False):
        report = worker.run_once(progress=_ProgressBar())
        for source in sources:
            source.close()
        for line in [*report.errors, *report.delivery.errors]:
            print(f"agentdesk: sync: {line}", file=sys.stderr)
        stored = report.stored
        duplicates = sum(p.duplicates for p in report.polls)
        print(f"sync: {stored} new message(s), {duplicates} already stored, {report.delivery.sent} sent, "
              f"{report.delivery.retrying} to retry, {report.delivery.failed} failed", file=sys.stderr)
        return 0 if report.ok else EXIT_SYNC_FAILED

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", stream=sys.stderr)

    def stop(signum, _frame) -> None:
        worker.stop.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    # The first pass shows its progress (a big first sync); later ones log.
    first = worker.run_once(progress=_ProgressBar())
    for line in [*first.errors, *first.delivery.errors]:
        print(f"agentdesk: sync: {line}", file=sys.stderr)
    if not worker.stop.is_set():
        worker.run_forever(on_report=_log_report)
    else:
        worker.shutdown()
    return 0


def _log_report(report: Any) -> None:
    from agentdesk.sync import delivery, worker as sync

    if isinstance(report, sync.PollReport):
        if report.stored:
            logging.getLogger("agentdesk.sync").info("%s: %d new message(s)", report.source, report.stored)
    elif isinstance(report, delivery.DeliveryReport):
        for line in report.errors:
            logging.getLogger("agentdesk.sync").warning("%s", line)
        if report.sent:
            logging.getLogger("agentdesk.sync").info("%d reply(ies) sent", report.sent)
    elif isinstance(report, BaseException):
        logging.getLogger("agentdesk.sync").warning("%s", report)


def add_sync_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--once", action="store_true", help="one pass; exit 0 only if nothing failed")
    parser.add_argument("--source", metavar="NAME", help="only this mailbox or spool")


def _standalone(argv: list[str] | None = None) -> int:
    """`python -m agentdesk.commands_email sync …` until cli.py wires the command."""
    from datetime import datetime, timezone
    from pathlib import Path

    from agentdesk.cli import Context
    from agentdesk.errors import AgentdeskError

    parser = argparse.ArgumentParser(prog="agentdesk")
    commands = parser.add_subparsers(dest="command", required=True)
    sync_parser = commands.add_parser("sync")
    sync_parser.add_argument("--config", type=Path, default=None)
    add_sync_arguments(sync_parser)
    args = parser.parse_args(argv)
    try:
        return sync_command(Context(config_path=args.config, now=datetime.now(timezone.utc)), args)
    except AgentdeskError as error:
        print(f"agentdesk: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(_standalone())
