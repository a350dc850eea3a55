"""Conversations: `list`, `show`, `reply`, `note`, `set`, `claim`, `resend`, `export`.

Each handler parses its arguments, calls one action of `agentdesk.app` and renders the result:
`--json` alone on stdout, what was done on stderr.
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime, timedelta
from typing import Any

from agentdesk.cli.common import (
    EXIT_CLAIMED_BY_OTHER,
    context,
    json_text,
    local_time,
    one_line,
    parse_moment,
    parse_since,
    print_json,
    read_body,
)
from agentdesk.errors import Conflict, InvalidInput


def cmd_list(args: argparse.Namespace) -> int:
    from agentdesk.app import queue
    from agentdesk.domain import sla

    ctx = context(args)
    docs = queue.documents(ctx.desk, queue.Filter(args.view, args.query or ""), limit=args.limit)
    if args.json:
        print_json(docs)
        return 0
    if not docs:
        print(
            f"no conversations in view {args.view!r}" + (f" matching {args.query!r}" if args.query else ""),
            file=sys.stderr,
        )
        return 0
    header = f"{'REF':<9} {'SLA':<18} {'WAIT':>8} {'STATUS':<8} {'PRI':<7} {'CHANNEL':<8} {'ASSIGNEE':<10} {'CUSTOMER':<20} SUBJECT"
    print(header)
    for doc in docs:
        badge = _sla_badge(doc["sla"])
        wait = sla.format_short(timedelta(seconds=doc["hold_seconds"])) if doc["hold_seconds"] is not None else "-"
        print(
            f"{doc['ref']:<9} {badge:<18} {wait:>8} {doc['status']:<8} {doc['priority']:<7} "
            f"{doc['channel']:<8} {one_line(doc['assignee'] or '-'):<10.10} {one_line(doc['customer']['name']):<20.20} "
            f"{one_line(doc['subject'])}"
        )
    return 0


def _sla_badge(sla_doc: dict) -> str:
    """The state of the clock nearest its due time, with the time left: `warning 25m`."""
    from agentdesk.domain import sla

    state = sla_doc["state"]
    running = [t for t in sla_doc["targets"] if t["state"] in ("ok", "warning", "breached")]
    if not running:
        return state
    nearest = min(running, key=lambda t: t["remaining_seconds"])
    return f"{state} {sla.format_short(timedelta(seconds=nearest['remaining_seconds']))}"


def cmd_show(args: argparse.Namespace) -> int:
    from agentdesk.app import attachments, conversations

    ctx = context(args)
    doc = conversations.document(ctx.desk, args.ref)
    if args.json:
        print_json(doc)
        return 0
    files: dict[int, list] = {}
    for item in attachments.list_attachments(ctx.desk, args.ref):
        files.setdefault(item.message_number, []).append(item)
    _print_conversation(doc, files)
    return 0


def _print_conversation(doc: dict, files: dict[int, list]) -> None:
    """`show` as text: `files` are each message's attachments (`attachments.Listed`) by its number."""
    from agentdesk.cli.attachments import attachment_line
    from agentdesk.sanitize import strip_control

    customer = doc["customer"]
    identities = ", ".join(f"{i['kind']}:{one_line(i['address'])}" for i in customer["identities"])
    print(f"{doc['ref']}  {one_line(doc['subject'])}")
    print(
        f"  {doc['status']} · {doc['priority']} · {doc['channel']} · assignee {one_line(doc['assignee'] or '-')}"
        f" · tags {one_line(', '.join(doc['tags'])) or '-'}"
    )
    print(f"  customer {one_line(customer['name'])} ({identities})")
    print(
        f"  sla {doc['sla']['policy'] or 'none'}: {doc['sla']['state']}"
        + "".join(f"; {t['target']} {t['state']}" for t in doc["sla"]["targets"])
    )
    if doc.get("csat"):
        rating = doc["csat"]["rating"]
        comment = f" “{one_line(doc['csat']['comment'])}”" if doc["csat"]["comment"] else ""
        print(f"  rated {rating}/5 {'★' * rating}{'☆' * (5 - rating)}{comment}")
    for number, message in enumerate(doc["messages"], start=1):
        arrow = {"inbound": "<<", "outbound": ">>", "note": "##"}[message["direction"]]
        delivery = f" [{message['delivery']}]" if message["delivery"] else ""
        if message.get("delivery_error"):
            delivery += f" {one_line(message['delivery_error'])}"
        kind = f" ({message['kind']})" if message["kind"] != "message" else ""
        print(f"\n{arrow} #{number} {local_time(message['at'])}  {one_line(message['author'])}{kind}{delivery}")
        recipients = message.get("recipients") or {}
        addressed = [
            f"{field} {one_line(', '.join(recipients[field]))}"
            for field in ("to", "cc", "bcc")
            if recipients.get(field)
        ]
        if addressed:
            print("   " + " · ".join(addressed))
        print(strip_control(message["body_text"]))
        for item in files.get(number, ()):
            print(f"   {attachment_line(item)}")
    if doc["history"]:
        print("\nhistory:")
        for past in doc["history"]:
            print(f"  {past['ref']:<9} {past['channel']:<8} {past['status']:<8} {one_line(past['subject'])}")


def cmd_reply(args: argparse.Namespace) -> int:
    from agentdesk.app import conversations, outbound

    ctx = context(args)
    files = outbound.read_files(args.attach, limit=outbound.largest_accepted(ctx.desk))
    recipients = outbound.addressed(ctx.desk, args.ref, to=args.to, cc=args.cc, bcc=args.bcc, no_cc=args.no_cc)
    if args.template:
        sent = conversations.reply_with_template(
            ctx.desk,
            args.ref,
            args.template,
            status=args.status,
            recipients=recipients,
            files=files,
            delay=_delay(args),
        )
    else:
        sent = conversations.reply(
            ctx.desk,
            args.ref,
            read_body(args.body_file),
            status=args.status,
            recipients=recipients,
            files=files,
            delay=_delay(args),
        )
    if args.json:
        print_json(
            {
                "ref": sent.ref,
                "external_id": sent.external_id,
                "status": sent.status,
                "delivery": "queued",
                "waits": sent.waits or None,
                **recipients.as_dict(),
                "attachments": [f.name for f in files],
            }
        )
    held = f", held {sent.delay:g} s" if sent.delay else ""
    print(f"{sent.ref}: reply queued for delivery (message {sent.external_id}){held}", file=sys.stderr)
    if sent.waits:
        print(f"{sent.ref}: {sent.waits}", file=sys.stderr)
    return 0


def _delay(args: argparse.Namespace) -> float:
    delay = getattr(args, "delay", 0.0) or 0.0
    if not 0 <= delay <= 3600:
        raise InvalidInput(f"--delay {delay:g}: expected 0 to 3600 seconds")
    return delay


def cmd_note(args: argparse.Namespace) -> int:
    from agentdesk.app import conversations

    source = args.body_file or args.dash
    if not source:
        raise InvalidInput("note needs the text: --body-file FILE, or - to read it from standard input")
    ctx = context(args)
    sent = conversations.note(ctx.desk, args.ref, read_body(source))
    if getattr(args, "json", False):
        print_json({"ref": sent.ref, "direction": "note", "author": ctx.desk.agent})
    print(f"{sent.ref}: note added", file=sys.stderr)
    return 0


def cmd_set(args: argparse.Namespace) -> int:
    from agentdesk.app import conversations

    ctx = context(args)
    changes: dict[str, Any] = {}
    if args.status:
        changes["status"] = args.status
    if args.priority:
        changes["priority"] = args.priority
    if args.assign is not None:
        changes["assignee"] = {"me": ctx.desk.agent, "none": None}.get(args.assign, args.assign)
    if args.snooze is not None:
        changes["snoozed_until"] = (
            None if args.snooze == "none" else parse_moment(args.snooze, option="--snooze", now=ctx.now, ago=False)
        )
    if not (changes or args.tag or args.untag):
        raise InvalidInput("nothing to set; give --status, --priority, --assign, --tag, --untag or --snooze")
    changed = conversations.update(
        ctx.desk, args.ref, expected_version=args.if_version, add_tags=args.tag, remove_tags=args.untag, **changes
    )
    outcome = ", ".join(changed) + " changed" if changed else "nothing changed"
    if getattr(args, "json", False):
        asked = {key: value.isoformat() if isinstance(value, datetime) else value for key, value in changes.items()}
        print_json(
            {
                "ref": conversations.reference(args.ref),
                "changed": list(changed),
                **asked,
                "tags_added": list(args.tag),
                "tags_removed": list(args.untag),
            }
        )
    print(f"{conversations.reference(args.ref)}: {outcome}", file=sys.stderr)
    return 0


def cmd_claim(args: argparse.Namespace) -> int:
    from agentdesk.app import conversations

    conversation_id = conversations.conversation_id(args.ref)
    ctx = context(args)
    as_json = getattr(args, "json", False)
    try:
        (done,) = conversations.claim(ctx.desk, [conversation_id])
    except Conflict as error:
        if as_json:
            print_json({"ref": conversations.reference(conversation_id), "claimed": False, "reason": str(error)})
        print(f"agentdesk: {error}", file=sys.stderr)
        return EXIT_CLAIMED_BY_OTHER
    if as_json:
        print_json({"ref": conversations.reference(conversation_id), "claimed": True, "assignee": ctx.desk.agent})
    print(done, file=sys.stderr)
    return 0


def cmd_resend(args: argparse.Namespace) -> int:
    from agentdesk.app import conversations

    ctx = context(args)
    done = conversations.resend(ctx.desk, args.ref, args.number)
    if args.json:
        print_json({"ref": conversations.reference(args.ref), "message": args.number, "delivery": "queued"})
    print(done, file=sys.stderr)
    return 0


def cmd_undo(args: argparse.Namespace) -> int:
    from agentdesk.app import conversations, undo

    ctx = context(args)
    done = undo.undo(ctx.desk, args.ref)
    if args.json:
        print_json({"ref": conversations.reference(args.ref), "undone": done})
    for line in done:
        print(line, file=sys.stderr)
    return 0


def cmd_move(args: argparse.Namespace) -> int:
    from agentdesk.app import conversations, undo

    ctx = context(args)
    done = undo.move(ctx.desk, args.ref, args.number, args.to)
    if args.json:
        print_json(
            {
                "ref": conversations.reference(args.ref),
                "message": args.number,
                "to": done.rsplit(" moved to ", 1)[1].removesuffix(" (new)"),
            }
        )
    print(done, file=sys.stderr)
    return 0


def cmd_macro(args: argparse.Namespace) -> int:
    from agentdesk.app import macros

    ctx = context(args)
    ran = macros.run(ctx.desk, args.name, args.refs, delay=_delay(args))
    if args.json:
        print_json(
            {
                "macro": args.name,
                "done": ran.lines,
                "replies": [{"ref": s.ref, "external_id": s.external_id} for s in ran.sent],
            }
        )
    for line in ran.lines:
        print(line, file=sys.stderr)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from agentdesk.app import records

    ctx = context(args)
    since: datetime | None = parse_since(args.since)
    for document in records.export(ctx.desk, since=since):
        sys.stdout.write(json_text(document) + "\n")
    return 0
