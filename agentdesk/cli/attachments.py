"""A conversation's attachments: `attachment list`, `attachment save`, `attachment open`.

Each handler calls one action of `agentdesk.app.attachments`. N is an attachment's number across
the thread, as `attachment list` prints it. A missing conversation or attachment exits 4, bad
input (no such directory, no opener) 2, an attachment that was not kept 1, each with one line.
"""

from __future__ import annotations

import argparse
import sys

from agentdesk.cli.common import context, one_line, print_json


def cmd_attachment_list(args: argparse.Namespace) -> int:
    from agentdesk.app import attachments

    listed = attachments.list_attachments(context(args).desk, args.ref)
    if args.json:
        print_json([item.document() for item in listed])
        return 0
    if not listed:
        print(f"{one_line(args.ref)}: no attachments", file=sys.stderr)
        return 0
    for item in listed:
        print(f"{item.number:>3}  msg {item.message_number:<3} {attachment_line(item, numbered=False)}")
    return 0


def attachment_line(item, *, numbered: bool = True) -> str:
    """One attachment (`attachments.Listed`) on one line: its number as `attachment save` takes it,
    the sender's name made inert, type, size, and why its bytes are missing if they are."""
    from agentdesk.app import attachments

    status = f"  [{item.status}]" if item.status else ""
    number = f"[attachment {item.number}] " if numbered else ""
    return one_line(f"{number}{item.filename}  {item.content_type}  {attachments.size_text(item.size)}{status}")


def cmd_attachment_save(args: argparse.Namespace) -> int:
    from agentdesk.app import attachments

    item, path = attachments.save(context(args).desk, args.ref, args.number, args.to)
    if args.json:
        print_json(
            {"n": item.number, "name": item.filename, "path": str(path), "size": item.size, "sha256": item.sha256}
        )
    else:
        print(one_line(str(path)))
    return 0


def cmd_attachment_open(args: argparse.Namespace) -> int:
    from agentdesk.app import attachments

    item, path = attachments.open_attachment(context(args).desk, args.ref, args.number)
    print(one_line(f"opened {item.filename} ({path})"), file=sys.stderr)
    return 0
