"""The command line's parser: every command, its options and its handler (DESIGN.md "CLI contract").

The handlers live in one module per command group; those modules import little at load time, so
building the whole parser stays cheap, and each handler imports what its command needs.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import NoReturn

from agentdesk import __version__, locations
from agentdesk.cli import admin, attachments, conversations, customers, examples, outbound, sla, spam, sync, webhook
from agentdesk.cli import kb as kb_cli
from agentdesk.cli import oauth as oauth_commands
from agentdesk.cli.common import choices


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        type=Path,
        default=argparse.SUPPRESS,
        help="config file (default: $AGENTDESK_CONFIG, then ~/.config/agentdesk/config.toml)",
    )
    # On every command, before or after its name; SUPPRESS: a command's parser leaves the top's value.
    parser.add_argument(
        "-v", "--verbose", action="count", default=argparse.SUPPRESS, help="say more: log lines on stderr (-vv: debug)"
    )
    parser.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        default=argparse.SUPPRESS,
        help="say only what went wrong: errors on stderr, nothing else but --json output",
    )


def _add_recipients(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--to", action="append", default=[], metavar="A", help="send to A instead of the customer (repeatable)"
    )
    parser.add_argument(
        "--cc", action="append", default=[], metavar="A", help="add A to the Cc (repeatable; email only)"
    )
    parser.add_argument(
        "--bcc",
        action="append",
        default=[],
        metavar="A",
        help="blind copy to A: the SMTP envelope only, never a header (repeatable; email only)",
    )
    parser.add_argument(
        "--no-cc", action="store_true", help="drop the reply-all Cc (the others on the thread); --cc still adds"
    )


class _Parser(argparse.ArgumentParser):
    """A usage error is one line, as every other error is (exit status 2), with where the usage is:
    argparse's own printed the whole usage first, pushing the error itself out of a short pane."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (`{self.prog} --help` shows the usage)\n")


def build_parser() -> argparse.ArgumentParser:
    from agentdesk.app.views import VIEWS

    parser = _Parser(
        prog="agentdesk",
        description="A terminal workstation for customer-service agents. Without a command, opens the queue.",
    )
    parser.add_argument("--version", action="version", version=f"agentdesk {__version__}")
    _add_common(parser)
    parser.set_defaults(handler=admin.cmd_tui)
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")

    def command(name: str, handler, help: str, parent=commands) -> argparse.ArgumentParser:
        sub = parent.add_parser(name, help=help, description=help)
        _add_common(sub)
        sub.set_defaults(handler=handler)
        return sub

    demo = command("demo", admin.cmd_demo, "build (once) a realistic demo queue and open the TUI on it")
    demo.add_argument(
        "--conversations",
        type=int,
        default=None,
        metavar="N",
        help="size of the demo queue (default 240; ~10 messages each for N > 240)",
    )
    demo.add_argument("--seed-only", action="store_true", help="build the demo but do not open the TUI")
    demo.add_argument("--data-dir", metavar="DIR", help="where to build it (default: the XDG data dir's demo/)")

    init = command("init", admin.cmd_init, "write a starter config and create the database")
    init.add_argument("--data-dir", metavar="DIR", help="directory for the database and templates")

    syncing = command("sync", sync.cmd_sync, "pull every IMAP mailbox and spool dir, deliver the outbox")
    syncing.add_argument("--once", action="store_true", help="one pass; exit 0 only if nothing failed")
    syncing.add_argument("--source", metavar="NAME", help="only this mailbox or spool")
    syncing.add_argument(
        "--json",
        action="store_true",
        help="with --once: what the pass stored, rejected, sent and failed, as JSON on stdout",
    )

    webhook_group = commands.add_parser("webhook", help="webhook receiver")
    webhook_commands = webhook_group.add_subparsers(title="commands", metavar="COMMAND", required=True)
    serve = command(
        "serve",
        webhook.cmd_webhook_serve,
        "HTTP endpoint that verifies and writes payloads to a spool",
        webhook_commands,
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    serve.add_argument(
        "--port", type=int, default=locations.WEBHOOK_PORT, help=f"port (default {locations.WEBHOOK_PORT})"
    )
    serve.add_argument(
        "--public-url",
        default="",
        metavar="URL",
        help="public URL prefix providers call (Twilio signatures); default from X-Forwarded-Proto/Host",
    )

    spool = commands.add_parser("spool", help="webhook spool directories")
    spool_commands = spool.add_subparsers(title="commands", metavar="COMMAND", required=True)
    retry = command("retry", webhook.cmd_spool_retry, "re-ingest a spool's rejected files", spool_commands)
    retry.add_argument("name", metavar="NAME")
    retry.add_argument("--json", action="store_true")
    spool_list = command(
        "list", webhook.cmd_spool_list, "spools: counts and rejected files with reasons", spool_commands
    )
    spool_list.add_argument("--json", action="store_true")
    spool_clean = command(
        "clean",
        webhook.cmd_spool_clean,
        "remove files a dead writer left in a spool's tmp/ (older than an hour)",
        spool_commands,
    )
    spool_clean.add_argument("name", metavar="NAME")
    spool_clean.add_argument("--json", action="store_true")

    listing = command("list", conversations.cmd_list, "conversations of a view, most urgent first")
    listing.add_argument(
        "--view", default="open", choices=list(VIEWS), metavar="NAME", help=f"one of: {choices(VIEWS)} (default: open)"
    )
    listing.add_argument(
        "--query",
        metavar="Q",
        help="search as the TUI's / does: words and filters such as status:open tag:billing "
        "waiting:>2h from:anke (docs/keys.md); a leading - negates: --query=-status:solved",
    )
    listing.add_argument("--limit", type=int, default=50, metavar="N", help="at most N rows (default 50)")
    listing.add_argument("--json", action="store_true", help="JSON on stdout")

    show = command("show", conversations.cmd_show, "one conversation with its thread and the customer's history")
    show.add_argument("ref", metavar="REF")
    show.add_argument("--json", action="store_true", help="JSON on stdout")

    from agentdesk.config import PRIORITIES, STATUSES

    reply = command("reply", conversations.cmd_reply, "reply to a conversation; the reply is queued for delivery")
    reply.add_argument("ref", metavar="REF")
    body = reply.add_mutually_exclusive_group(required=True)
    body.add_argument("--template", metavar="NAME", help="reply with a template from the templates directory")
    body.add_argument("--body-file", metavar="FILE", help="the reply text; - reads standard input")
    reply.add_argument("--status", choices=STATUSES, metavar="STATUS", help=f"also set the status: {choices(STATUSES)}")
    _add_recipients(reply)
    reply.add_argument(
        "--attach",
        action="append",
        default=[],
        metavar="FILE",
        help="attach a file (repeatable); copied when the reply is queued",
    )
    delay = reply.add_mutually_exclusive_group()
    delay.add_argument(
        "--delay",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="hold the reply this long before delivery (an undo window; the default is none)",
    )
    delay.add_argument(
        "--no-delay",
        dest="delay",
        action="store_const",
        const=0.0,
        help="deliver at the next sync pass (the default; for scripts that say so)",
    )
    reply.add_argument("--json", action="store_true", help="print what was queued as JSON")
    reply.epilog = (
        "example: agentdesk reply AD-1042 --body-file answer.txt --attach invoice.pdf "
        "--cc finance@example.com --bcc audit@example.com"
    )

    forward = command(
        "forward",
        outbound.cmd_forward,
        "forward the conversation (or one message) with its files by email; answers thread back",
    )
    forward.add_argument("ref", metavar="REF")
    forward.add_argument(
        "--to", action="append", required=True, metavar="ADDRESS", help="who to forward to (repeatable)"
    )
    forward.add_argument("--cc", action="append", default=[], metavar="A", help="add A to the Cc (repeatable)")
    forward.add_argument(
        "--bcc", action="append", default=[], metavar="A", help="blind copy to A: the SMTP envelope only (repeatable)"
    )
    forward.add_argument("--body-file", metavar="F", help="a note above the forwarded messages; - reads standard input")
    forward.add_argument("--message", type=int, metavar="N", help="only message N (as `show` numbers them)")
    forward.add_argument(
        "--attach",
        action="append",
        default=[],
        metavar="FILE",
        help="attach a file besides the conversation's own (repeatable)",
    )
    forward.add_argument("--json", action="store_true", help="print what was queued as JSON")
    forward.epilog = "example: agentdesk forward AD-1042 --to parts@supplier.example --body-file ask.txt"

    new = command("new", outbound.cmd_new, "start a conversation: write first to a customer; prints the new ref")
    new.add_argument(
        "--to",
        required=True,
        metavar="ADDRESS|PHONE|HANDLE",
        help="the customer's address (found by identity, or a new customer)",
    )
    new.add_argument(
        "--channel",
        metavar="NAME",
        help="the mailbox or spool to send through, or a channel kind (default: the first that fits --to)",
    )
    new.add_argument("--subject", required=True, metavar="S")
    first = new.add_mutually_exclusive_group(required=True)
    first.add_argument("--template", metavar="T", help="the first message from a template")
    first.add_argument("--body-file", metavar="F", help="the first message's text; - reads standard input")
    new.add_argument("--assign", metavar="AGENT", help="me, or an agent's login")
    new.add_argument("--name", metavar="NAME", help="the customer's name, when they are new")
    new.add_argument("--attach", action="append", default=[], metavar="FILE", help="attach a file (repeatable)")
    new.add_argument("--json", action="store_true", help="print the new conversation as JSON")
    new.epilog = (
        'example: agentdesk new --to greta@velo.example --subject "Your order is delayed" '
        "--body-file delay.txt --assign me"
    )

    note = command("note", conversations.cmd_note, "add an internal note (never sent to the customer)")
    note.add_argument("ref", metavar="REF")
    note.add_argument("dash", nargs="?", choices=["-"], help="read the note from standard input")
    note.add_argument("--body-file", metavar="FILE", help="the note text; - reads standard input")
    note.add_argument("--json", action="store_true", help="print what was added as JSON")

    setter = command("set", conversations.cmd_set, "change status, priority, assignee, tags or snooze")
    setter.add_argument("ref", metavar="REF")
    setter.add_argument("--status", choices=STATUSES, metavar="S", help=choices(STATUSES))
    setter.add_argument("--priority", choices=PRIORITIES, metavar="P", help=choices(PRIORITIES))
    setter.add_argument("--assign", metavar="AGENT", help="an agent's login, me, or none")
    setter.add_argument("--tag", action="append", default=[], metavar="T", help="add a tag (repeatable)")
    setter.add_argument("--untag", action="append", default=[], metavar="T", help="remove a tag (repeatable)")
    setter.add_argument(
        "--snooze", metavar="WHEN", help="hide until a time (2026-12-01T09:00) or for a while (4h); none"
    )
    setter.add_argument(
        "--if-version", type=int, metavar="N", help="only if the conversation is still at version N (from show --json)"
    )
    setter.add_argument("--json", action="store_true", help="print what changed as JSON")

    claim = command("claim", conversations.cmd_claim, "assign to me atomically; exit 3 if another agent holds it")
    claim.add_argument("ref", metavar="REF")
    claim.add_argument("--json", action="store_true", help="print the outcome as JSON (also when another holds it)")
    resend = command(
        "resend",
        conversations.cmd_resend,
        "send reply N again after a failed or possibly sent delivery (N as `show` numbers them)",
    )
    resend.add_argument("ref", metavar="REF")
    resend.add_argument("number", metavar="N", type=int, help="the message's number in the thread, from 1")
    resend.add_argument("--json", action="store_true", help="print what was done as JSON")

    undoing = command(
        "undo",
        conversations.cmd_undo,
        "undo your last status, priority, assignment, tag, snooze, spam or merge change of a conversation "
        "(a merge from either side's ref, a customer merge too; exit 3 if anything changed since)",
    )
    undoing.add_argument("ref", metavar="REF")
    undoing.add_argument("--json", action="store_true", help="print what was undone as JSON")
    moving = command(
        "move",
        conversations.cmd_move,
        "move message N (as `show` numbers them) to another conversation, or split it into a new one",
    )
    moving.add_argument("ref", metavar="REF")
    moving.add_argument("number", metavar="N", type=int, help="the message's number in the thread, from 1")
    moving.add_argument("--to", required=True, metavar="REF|new", help="the conversation to put it in, or new")
    moving.add_argument("--json", action="store_true", help="print what was done as JSON")
    macro = command(
        "macro",
        conversations.cmd_macro,
        "run a [[macro]] of the config on conversations: every step on every one, or nothing",
    )
    macro.add_argument("name", metavar="NAME", help="the macro's name in the config")
    macro.add_argument("refs", nargs="+", metavar="REF")
    macro.add_argument(
        "--delay",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="hold a templated reply this long before delivery (default: none)",
    )
    macro.add_argument("--json", action="store_true", help="print what was done as JSON")

    marking = command("spam", spam.cmd_spam, "move conversations to the spam view (no SLA, no receipt); --undo: back")
    marking.add_argument("refs", nargs="+", metavar="REF")
    marking.add_argument("--undo", action="store_true", help="put them back where they were")
    marking.add_argument("--json", action="store_true", help="print what was done as JSON")
    blocking = command("block", spam.cmd_block, "send an address's or a whole @domain's future mail to spam")
    blocking.add_argument("patterns", nargs="+", metavar="ADDRESS|@DOMAIN")
    blocking.add_argument("--json", action="store_true", help="print what was done as JSON")
    unblocking = command("unblock", spam.cmd_unblock, "stop blocking an address or @domain")
    unblocking.add_argument("patterns", nargs="+", metavar="ADDRESS|@DOMAIN")
    unblocking.add_argument("--json", action="store_true", help="print what was done as JSON")
    blocked = command("blocked", spam.cmd_blocked, "the blocked addresses and domains")
    blocked.add_argument("--json", action="store_true")

    knowledge = commands.add_parser("kb", help="the knowledge base: search and read articles, see which help")
    kb_commands = knowledge.add_subparsers(title="commands", metavar="COMMAND", required=True)
    kb_search = command(
        "search",
        kb_cli.cmd_kb_search,
        "articles matching words, best first (title and tags count most; a trailing * is a prefix)",
        kb_commands,
    )
    kb_search.add_argument("query", nargs="+", metavar="Q")
    kb_search.add_argument("--limit", type=int, default=10, metavar="N", help="at most N articles (default 10)")
    kb_search.add_argument("--json", action="store_true", help="JSON on stdout")
    kb_search.epilog = "example: agentdesk kb search battery charg* --json"
    kb_show = command("show", kb_cli.cmd_kb_show, "one article: title, tags, URL and text", kb_commands)
    kb_show.add_argument("slug", metavar="SLUG", help="the article's file name without .md")
    kb_show.add_argument("--json", action="store_true", help="JSON on stdout")
    kb_show.epilog = "example: agentdesk kb show battery-not-charging"
    kb_stats = command(
        "stats",
        kb_cli.cmd_kb_stats,
        "which articles were sent, and how often the conversation was then solved without another customer message",
        kb_commands,
    )
    kb_stats.add_argument("--since", metavar="DATE", help="ISO date/time or an age like 30d (default: all time)")
    kb_stats.add_argument("--json", action="store_true", help="JSON on stdout")
    kb_stats.epilog = "example: agentdesk kb stats --since 30d --json"

    attachment = commands.add_parser("attachment", help="a conversation's attachments: list, save, open")
    attachment_commands = attachment.add_subparsers(title="commands", metavar="COMMAND", required=True)
    listing = command(
        "list",
        attachments.cmd_attachment_list,
        "a conversation's attachments, numbered across the thread",
        attachment_commands,
    )
    listing.add_argument("ref", metavar="REF")
    listing.add_argument("--json", action="store_true", help="JSON on stdout")
    listing.epilog = "example: agentdesk attachment list AD-1042 --json"
    saving = command(
        "save",
        attachments.cmd_attachment_save,
        "write attachment N into a directory under a safe name (never over a file)",
        attachment_commands,
    )
    saving.add_argument("ref", metavar="REF")
    saving.add_argument("number", metavar="N", type=int, help="the attachment's number, as `attachment list` shows it")
    saving.add_argument("--to", metavar="DIR", help="directory to write into (default: the current directory)")
    saving.add_argument("--json", action="store_true", help="print what was written as JSON")
    saving.epilog = "example: agentdesk attachment save AD-1042 2 --to ~/Downloads   (writes e.g. invoice (1).pdf)"
    opening = command(
        "open",
        attachments.cmd_attachment_open,
        "open attachment N with [attachments] opener, xdg-open or $BROWSER",
        attachment_commands,
    )
    opening.add_argument("ref", metavar="REF")
    opening.add_argument("number", metavar="N", type=int, help="the attachment's number, as `attachment list` shows it")
    opening.epilog = "example: agentdesk attachment open AD-1042 1"

    customer = commands.add_parser("customer", help="customers: show, list, merge")
    customer_commands = customer.add_subparsers(title="commands", metavar="COMMAND", required=True)
    merge = command(
        "merge", customers.cmd_customer_merge, "merge REF_B's customer into REF_A's (reversible)", customer_commands
    )
    merge.add_argument("ref_a", metavar="REF_A")
    merge.add_argument("ref_b", metavar="REF_B")
    merge.add_argument("--json", action="store_true")
    unmerge = command(
        "unmerge", customers.cmd_customer_unmerge, "undo the merge that brought REF to its customer", customer_commands
    )
    unmerge.add_argument("ref", metavar="REF")
    unmerge.add_argument("--json", action="store_true")
    customer_show = command(
        "show", customers.cmd_customer_show, "a customer with identities and every conversation", customer_commands
    )
    customer_show.add_argument("customer", metavar="ID")
    customer_show.add_argument("--json", action="store_true")
    customer_list = command(
        "list", customers.cmd_customer_list, "customers, or those matching a search", customer_commands
    )
    customer_list.add_argument("query", nargs="?", metavar="QUERY")
    customer_list.add_argument("--limit", type=int, default=50, metavar="N")
    customer_list.add_argument("--json", action="store_true")

    sla_group = commands.add_parser("sla", help="SLA clocks")
    sla_commands = sla_group.add_subparsers(title="commands", metavar="COMMAND", required=True)
    explain = command("explain", sla.cmd_sla_explain, "the timeline of every SLA clock of a conversation", sla_commands)
    explain.add_argument("ref", metavar="REF")
    explain.add_argument("--json", action="store_true", help="JSON on stdout")
    recompute = command(
        "recompute", sla.cmd_sla_recompute, "apply the configured SLA policies to every open conversation", sla_commands
    )
    recompute.add_argument(
        "--if-changed", action="store_true", help="only if the policies changed since they were last applied"
    )

    stats = command("stats", admin.cmd_stats, "counts of conversations, messages, customers, outbox, sources")
    stats.add_argument("--json", action="store_true")

    report = command("report", sla.cmd_report, "reply times, SLA compliance, backlog, volume")
    report.add_argument(
        "--since", metavar="DATE", help="ISO date/time or an age like 7d (default: 30 days before --until)"
    )
    report.add_argument("--until", metavar="DATE", help="ISO date/time or an age (default: now; exclusive)")
    report.add_argument("--json", action="store_true", help="JSON on stdout")

    audit = command("audit", admin.cmd_audit, "the audit log: who did what, when")
    audit.add_argument("--since", metavar="DATE", help="ISO date/time or an age like 7d")
    audit.add_argument("--ref", metavar="REF", help="only this conversation")
    audit.add_argument("--json", action="store_true")

    export = command("export", conversations.cmd_export, "every conversation as one `show --json` object per line")
    export.add_argument("--since", metavar="DATE", help="only conversations updated since (ISO date or 7d)")
    export.add_argument("--jsonl", action="store_true", help="JSON lines (the only format; accepted for clarity)")

    database = commands.add_parser("db", help="database maintenance")
    db_commands = database.add_subparsers(title="commands", metavar="COMMAND", required=True)
    copy = command(
        "copy", admin.cmd_db_copy, "copy the whole database to another (empty) database, e.g. PostgreSQL", db_commands
    )
    copy.add_argument("--to", required=True, metavar="URL")

    oauth_commands.add_commands(commands, command)

    doctor = command("doctor", admin.cmd_doctor, "check config, database, mailboxes, spools, SMTP")
    doctor.add_argument("--json", action="store_true", help="the checks as JSON on stdout")
    examples.document(parser)
    return parser
