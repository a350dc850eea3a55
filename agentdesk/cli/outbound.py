"""Sending beyond a plain reply: `forward` and `new` (a conversation we start).

`reply`'s files and recipients (`--attach`, `--to/--cc/--bcc`, `--no-cc`) are in
`cli/conversations.py` with the rest of `reply`; all three call `agentdesk.app.outbound`.
"""

from __future__ import annotations

import argparse
import sys

from agentdesk.cli.common import context, print_json, read_body


def cmd_forward(args: argparse.Namespace) -> int:
    from agentdesk.app import outbound

    ctx = context(args)
    note = read_body(args.body_file) if args.body_file else ""
    attach = outbound.read_files(args.attach, limit=outbound.largest_accepted(ctx.desk))
    sent = outbound.forward(
        ctx.desk, args.ref, args.to, note=note, number=args.message, cc=args.cc, bcc=args.bcc, attach=attach
    )
    if args.json:
        # The shape of `reply --json`: the checked recipients and the names of the files sent.
        print_json(
            {
                "ref": sent.ref,
                "kind": "forward",
                "external_id": sent.external_id,
                "status": sent.status,
                "delivery": "queued",
                **sent.recipients.as_dict(),
                "attachments": list(sent.attachments),
                "message": args.message,
            }
        )
    print(
        f"{sent.ref}: forward to {', '.join(args.to)} queued for delivery (message {sent.external_id})", file=sys.stderr
    )
    return 0


def cmd_new(args: argparse.Namespace) -> int:
    from agentdesk.app import outbound

    ctx = context(args)
    body = read_body(args.body_file) if args.body_file else None
    files = outbound.read_files(args.attach, limit=outbound.largest_accepted(ctx.desk))
    sent = outbound.start(
        ctx.desk,
        args.to,
        subject=args.subject,
        body=body,
        template=args.template,
        channel=args.channel,
        assign=args.assign,
        files=files,
        name=args.name or "",
    )
    if args.json:
        print_json(
            {
                "ref": sent.ref,
                "to": args.to,
                "subject": args.subject,
                "external_id": sent.external_id,
                "delivery": "queued",
                "attachments": [f.name for f in files],
            }
        )
    else:
        print(sent.ref)
    print(f"{sent.ref}: conversation started, first message queued for delivery", file=sys.stderr)
    return 0
