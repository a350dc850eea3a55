"""The command line: the public interface of DESIGN.md's CLI contract.

Every command takes `--config PATH`, exits non-zero with a one-line reason on stderr when it
cannot do its job, and prints `--json` output alone on stdout. Headless commands never import
textual: the TUI is imported only by the commands that open it.

    parser.py          every command and its options
    common.py          the context, JSON output, times, bodies, exit codes, the progress printer
    conversations.py   list, show, reply, note, set, claim, export
    customers.py       customer show, list, merge, unmerge
    sla.py             sla explain, sla recompute, report
    sync.py            sync
    webhook.py         webhook serve, spool retry, spool list
    oauth.py           oauth login, status, logout
    admin.py           the TUI, demo, init, doctor, stats, audit, db copy
"""

from __future__ import annotations

import argparse
import sys
from typing import NoReturn

from agentdesk.cli.common import EXIT_CLAIMED_BY_OTHER, EXIT_INTERRUPTED, inert_output, verbosity
from agentdesk.cli.parser import build_parser
from agentdesk.errors import AgentdeskError

__all__ = ["EXIT_CLAIMED_BY_OTHER", "build_parser", "main", "run"]


def main(argv: list[str] | None = None) -> int:
    """Run one command; its exit status. In-process callers (tests) use this; the program is `run`."""
    return _dispatch(build_parser().parse_args(argv))


def run() -> NoReturn:
    """The program (`agentdesk`, `python -m agentdesk`)."""
    try:
        status = main()
    finally:
        _close_databases()
    raise SystemExit(status)


def _close_databases() -> None:
    # Only a command that made a desk can have opened a database; one that did not (`--help`,
    # `--version`) must not load the database layer to find nothing to close.
    desk = sys.modules.get("agentdesk.app.desk")
    if desk is not None:
        desk.close_databases()


def _dispatch(args: argparse.Namespace) -> int:
    if not hasattr(args, "config"):
        args.config = None
    # Whatever a command prints may quote a sender (a name, a subject, a file name): no control
    # sequence in it reaches the terminal, whichever command printed it and however it was stored.
    with inert_output(), verbosity(args):
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    try:
        return args.handler(args)
    except AgentdeskError as error:
        print(f"agentdesk: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # `agentdesk export | head`: the reader left; that is not an error of ours.
        sys.stderr.close()
        return 0
