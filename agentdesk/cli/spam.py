"""Spam and blocked senders: `spam`, `block`, `unblock`, `blocked`.

Each handler calls one action of `agentdesk.app.spam`: `--json` prints what it did on stdout,
otherwise one line a change on stderr.
"""

from __future__ import annotations

import argparse
import sys

from agentdesk.cli.common import context, one_line, print_json


def _report(args: argparse.Namespace, done: list[dict], line) -> int:
    if getattr(args, "json", False):
        print_json(done if len(done) != 1 else done[0])
    else:
        for item in done:
            print(one_line(line(item)), file=sys.stderr)
    return 0


def cmd_spam(args: argparse.Namespace) -> int:
    from agentdesk.app import spam

    ctx = context(args)
    done = spam.mark_spam(ctx.desk, args.refs, undo=args.undo)

    def line(item: dict) -> str:
        if args.undo:
            return (
                f"{item['ref']}: back in {item['view']}"
                if item["changed"]
                else f"{item['ref']} was not spam (it is in {item['view']})"
            )
        return f"{item['ref']}: moved to spam" if item["changed"] else f"{item['ref']} was spam already"

    return _report(args, done, line)


def cmd_block(args: argparse.Namespace) -> int:
    from agentdesk.app import spam

    ctx = context(args)
    done = [spam.block(ctx.desk, pattern) for pattern in args.patterns]
    return _report(
        args,
        done,
        lambda item: (
            f"blocked {item['pattern']}: their new mail goes to spam"
            if item["changed"]
            else f"{item['pattern']} was blocked already"
        ),
    )


def cmd_unblock(args: argparse.Namespace) -> int:
    from agentdesk.app import spam

    ctx = context(args)
    done = [spam.unblock(ctx.desk, pattern) for pattern in args.patterns]
    return _report(args, done, lambda item: f"unblocked {item['pattern']}")


def cmd_blocked(args: argparse.Namespace) -> int:
    from agentdesk.app import spam

    ctx = context(args)
    found = spam.blocked(ctx.desk)
    if args.json:
        print_json(found)
        return 0
    if not found:
        print("nobody is blocked", file=sys.stderr)
    for item in found:
        print(one_line(f"{item['pattern']:<40} {item['agent']:<12} {item['created_at']}"))
    return 0
