"""The command line: the public interface of DESIGN.md's CLI contract.

Every command takes `--config PATH`, exits non-zero with a one-line reason on stderr when it
cannot do its job, and prints `--json` output alone on stdout. Headless commands never import
textual: the TUI is imported only by the commands that open it.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import cached_property
from pathlib import Path
from typing import Any, NoReturn

from agentdesk import __version__, config, locations
from agentdesk.errors import AgentdeskError, Conflict, InvalidInput

EXIT_CLAIMED_BY_OTHER = 3


def _now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass
class Context:
    """What a command needs, loaded on first use so `--help` and errors stay instant."""

    config_path: Path | None
    now: datetime

    @cached_property
    def settings(self) -> config.Settings:
        return config.load(self.config_path)

    @cached_property
    def engine(self):
        from agentdesk.store import db

        return db.open_database(self.settings.database_url)

    @cached_property
    def policies(self):
        from agentdesk.domain import clocks

        return clocks.Policies.from_settings(self.settings)

    @cached_property
    def agent(self) -> str:
        return config.current_agent()

    def read(self):
        from agentdesk.store import db

        return db.read_session(self.engine)

    def write(self):
        """A write transaction; the acting agent's row is kept in step with the config."""
        from agentdesk.domain import agents
        from agentdesk.store import db

        session = db.write_session(self.engine)
        agents.ensure_agent(
            session, login=self.agent, name=self.settings.agent_name(self.agent),
            signature=self.settings.agent_signature(self.agent), now=self.now,
        )
        return session


def _context(args: argparse.Namespace) -> Context:
    return Context(config_path=args.config, now=_now())


def _print_json(value: Any) -> None:
    json.dump(value, sys.stdout, ensure_ascii=False, indent=2)
    sys.stdout.write("\n")


def parse_moment(text: str, *, option: str, now: datetime, ago: bool) -> datetime:
    """A time given on the command line: an ISO date or time (local time when it has no offset),
    or a duration like `7d` counted back from now (`ago`) or forward from now."""
    from agentdesk.domain import sla

    try:
        duration = sla.parse_duration(text)
    except ValueError:
        pass
    else:
        return now - duration if ago else now + duration
    from dateutil import parser as date_parser

    try:
        moment = date_parser.isoparse(text)
    except ValueError:
        example = "7d" if ago else "4h"
        raise InvalidInput(f"{option} {text!r}: expected a date like 2026-11-01, a time like 2026-11-01T09:00, "
                           f"or a duration like {example}") from None
    if moment.tzinfo is None:
        moment = moment.astimezone()  # the user's local time
    return moment.astimezone(timezone.utc)


def _parse_since(text: str | None) -> datetime | None:
    return parse_moment(text, option="--since", now=_now(), ago=True) if text else None


def _read_body(path: str) -> str:
    if path == "-":
        return sys.stdin.read()
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as error:
        raise InvalidInput(f"--body-file {path}: cannot read it: {error.strerror}") from None
    except UnicodeDecodeError:
        raise InvalidInput(f"--body-file {path}: not UTF-8 text") from None


# --- commands ---------------------------------------------------------------------------------


def cmd_tui(args: argparse.Namespace) -> int:
    ctx = _context(args)
    engine = ctx.engine  # create or upgrade before the screen opens, so errors print plainly
    from agentdesk.tui.app import run

    return run(ctx.settings, engine)


def cmd_demo(args: argparse.Namespace) -> int:
    from agentdesk.demo import build

    directory = Path(args.data_dir) if args.data_dir else locations.demo_dir()
    config_path = build.ensure_demo(directory, conversations=args.conversations, progress=_stderr_progress)
    if args.seed_only:
        print(f"demo ready: agentdesk --config {config_path} list", file=sys.stderr)
        return 0
    settings = config.load(config_path)
    from agentdesk.tui.app import run

    return run(settings)


def _stderr_progress(done: int, total: int, what: str) -> None:
    """A bar on a terminal; a line per tenth when stderr is a log file, so a long run shows life."""
    if not sys.stderr.isatty():
        step = max(total // 10, 1)
        if done == total or done // step != (done - 1) // step:
            print(f"{what}: {done}/{total}", file=sys.stderr, flush=True)
        return
    width = 30
    filled = int(width * done / total) if total else width
    print(f"\r{what}: [{'#' * filled}{'.' * (width - filled)}] {done}/{total}", end="", file=sys.stderr, flush=True)
    if done == total:
        print(file=sys.stderr)


def cmd_init(args: argparse.Namespace) -> int:
    from agentdesk.store import db

    if args.data_dir:
        data_dir = Path(args.data_dir).resolve()
        config_path = args.config or data_dir / "config.toml"
    else:
        data_dir = locations.data_dir()
        config_path = args.config or locations.default_config_path()
    if config_path.exists():
        settings = config.load(config_path)
        print(f"{config_path} exists; leaving it as it is", file=sys.stderr)
    else:
        config_path.parent.mkdir(parents=True, exist_ok=True)
        config_path.write_text(starter_config(data_dir), encoding="utf-8")
        settings = config.load(config_path)
        print(f"wrote {config_path}", file=sys.stderr)
    db.open_database(settings.database_url)
    settings.templates_dir.mkdir(parents=True, exist_ok=True)
    print(f"database ready: {db.describe_url(settings.database_url)}", file=sys.stderr)
    return 0


def starter_config(data_dir: Path) -> str:
    login = config.current_agent()
    return f"""# agentdesk configuration — every key is documented in config.example.toml
[database]
url = "sqlite:///{data_dir / 'agentdesk.db'}"

[templates]
dir = "{data_dir / 'templates'}"

[agents.{json.dumps(login)}]
name = {json.dumps(login)}
signature = ""

[[sla_policy]]
name = "standard"
first_reply = "1h"
next_reply = "4h"
resolution = "3d"
"""


def cmd_list(args: argparse.Namespace) -> int:
    from agentdesk.domain import documents, sla
    from agentdesk.store import queries
    from agentdesk.store.models import ref_of

    ctx = _context(args)
    with ctx.read() as session:
        rows = queries.queue_window(
            session=session, view=args.view, agent=ctx.agent, now=ctx.now, limit=args.limit, query=args.query or ""
        )
        docs = documents.documents(session, rows, policies=ctx.policies, now=ctx.now)
    if args.json:
        _print_json(docs)
        return 0
    if not docs:
        print(f"no conversations in view {args.view!r}" + (f" matching {args.query!r}" if args.query else ""),
              file=sys.stderr)
        return 0
    header = f"{'REF':<9} {'SLA':<18} {'WAIT':>8} {'STATUS':<8} {'PRI':<7} {'CHANNEL':<8} {'ASSIGNEE':<10} {'CUSTOMER':<20} SUBJECT"
    print(header)
    for conversation, doc in zip(rows, docs):
        badge = _sla_badge(doc["sla"], ctx.now)
        wait = sla.format_short(timedelta(seconds=doc["hold_seconds"])) if doc["hold_seconds"] is not None else "-"
        print(
            f"{ref_of(conversation.id):<9} {badge:<18} {wait:>8} {doc['status']:<8} {doc['priority']:<7} "
            f"{doc['channel']:<8} {(doc['assignee'] or '-'):<10.10} {doc['customer']['name']:<20.20} {doc['subject']}"
        )
    return 0


def _sla_badge(sla_doc: dict, now: datetime) -> str:
    from agentdesk.domain import sla

    state = sla_doc["state"]
    running = [t for t in sla_doc["targets"] if t["state"] in ("ok", "warning", "breached")]
    if not running:
        return state
    nearest = min(running, key=lambda t: t["remaining_seconds"])
    return f"{state} {sla.format_short(timedelta(seconds=nearest['remaining_seconds']))}"


def cmd_show(args: argparse.Namespace) -> int:
    from agentdesk.domain import documents
    from agentdesk.store import queries

    ctx = _context(args)
    with ctx.read() as session:
        conversation = queries.conversation_by_ref(session=session, ref=args.ref)
        (doc,) = documents.documents(session, [conversation], policies=ctx.policies, now=ctx.now, full=True)
    if args.json:
        _print_json(doc)
        return 0
    _print_conversation(doc)
    return 0


def _print_conversation(doc: dict) -> None:
    from agentdesk.sanitize import strip_control

    customer = doc["customer"]
    identities = ", ".join(f"{i['kind']}:{i['address']}" for i in customer["identities"])
    print(f"{doc['ref']}  {doc['subject']}")
    print(f"  {doc['status']} · {doc['priority']} · {doc['channel']} · assignee {doc['assignee'] or '-'}"
          f" · tags {', '.join(doc['tags']) or '-'}")
    print(f"  customer {customer['name']} ({identities})")
    print(f"  sla {doc['sla']['policy'] or 'none'}: {doc['sla']['state']}"
          + "".join(f"; {t['target']} {t['state']}" for t in doc["sla"]["targets"]))
    for message in doc["messages"]:
        arrow = {"inbound": "<<", "outbound": ">>", "note": "##"}[message["direction"]]
        delivery = f" [{message['delivery']}]" if message["delivery"] else ""
        if message.get("delivery_error"):
            delivery += f" {message['delivery_error']}"
        kind = f" ({message['kind']})" if message["kind"] != "message" else ""
        print(f"\n{arrow} {_local(message['at'])}  {message['author']}{kind}{delivery}")
        print(strip_control(message["body_text"]))
    if doc["history"]:
        print("\nhistory:")
        for past in doc["history"]:
            print(f"  {past['ref']:<9} {past['channel']:<8} {past['status']:<8} {past['subject']}")


def _local(iso_time: str) -> str:
    """Times are UTC inside; a person reads them in their own zone (STYLE: local only at the edge)."""
    return datetime.fromisoformat(iso_time).astimezone().strftime("%a %d %b %Y %H:%M")


def _conversation_for_update(session, ref: str):
    from agentdesk.domain import queue

    return queue.load_for_update(session, ref)


def cmd_reply(args: argparse.Namespace) -> int:
    from agentdesk.domain import replies, templates
    from agentdesk.store.models import ref_of

    ctx = _context(args)
    with ctx.write() as session:
        conversation = _conversation_for_update(session, args.ref)
        if args.template:
            template = templates.load(ctx.settings.templates_dir, args.template)
            rendered = templates.render(template, _template_values(session, ctx, conversation))
            if rendered.undefined:
                raise InvalidInput(
                    f"template {template.name!r} needs values agentdesk does not have: "
                    f"{', '.join(rendered.undefined)}; reply with --body-file after filling them in"
                )
            body = rendered.text
        else:
            body = _read_body(args.body_file)
        message = replies.reply(
            session, conversation=conversation, body=body, agent=ctx.agent,
            agent_name=ctx.settings.agent_name(ctx.agent), signature=ctx.settings.agent_signature(ctx.agent),
            now=ctx.now, policies=ctx.policies, status=args.status,
            message_id_domain=ctx.settings.message_id_domain(conversation.source),
        )
        session.commit()
        print(f"{ref_of(conversation.id)}: reply queued for delivery (message {message.external_id})", file=sys.stderr)
    return 0


def _template_values(session, ctx: Context, conversation) -> dict[str, str]:
    from agentdesk.domain import templates
    from agentdesk.store.models import Customer

    return templates.values_for(
        conversation, session.get(Customer, conversation.customer_id),
        agent_name=ctx.settings.agent_name(ctx.agent), agent_signature=ctx.settings.agent_signature(ctx.agent),
    )


def cmd_note(args: argparse.Namespace) -> int:
    from agentdesk.domain import replies
    from agentdesk.store.models import ref_of

    source = args.body_file or args.dash
    if not source:
        raise InvalidInput("note needs the text: --body-file FILE, or - to read it from standard input")
    ctx = _context(args)
    body = _read_body(source)
    with ctx.write() as session:
        conversation = _conversation_for_update(session, args.ref)
        replies.add_note(session, conversation=conversation, body=body, agent=ctx.agent,
                         agent_name=ctx.settings.agent_name(ctx.agent), now=ctx.now, policies=ctx.policies)
        session.commit()
        print(f"{ref_of(conversation.id)}: note added", file=sys.stderr)
    return 0


def cmd_set(args: argparse.Namespace) -> int:
    from agentdesk.domain import queue
    from agentdesk.store.models import ref_of

    ctx = _context(args)
    changes: dict[str, Any] = {}
    if args.status:
        changes["status"] = args.status
    if args.priority:
        changes["priority"] = args.priority
    if args.assign is not None:
        changes["assignee"] = {"me": ctx.agent, "none": None}.get(args.assign, args.assign)
    if args.snooze is not None:
        changes["snoozed_until"] = None if args.snooze == "none" else parse_moment(args.snooze, option="--snooze", now=ctx.now, ago=False)
    if not (changes or args.tag or args.untag):
        raise InvalidInput("nothing to set; give --status, --priority, --assign, --tag, --untag or --snooze")
    with ctx.write() as session:
        conversation = _conversation_for_update(session, args.ref)
        changed = queue.change(
            session, conversation=conversation, agent=ctx.agent, now=ctx.now, policies=ctx.policies,
            add_tags=args.tag, remove_tags=args.untag, expected_version=args.if_version, **changes,
        )
        session.commit()
    print(f"{ref_of(conversation.id)}: " + (", ".join(changed) + " changed" if changed else "nothing changed"),
          file=sys.stderr)
    return 0


def cmd_claim(args: argparse.Namespace) -> int:
    from agentdesk.domain import queue
    from agentdesk.store import queries
    from agentdesk.store.models import ref_of

    ctx = _context(args)
    conversation_id = queries.parse_ref(args.ref)
    try:
        with ctx.write() as session:
            queue.claim(session, conversation_id=conversation_id, agent=ctx.agent, now=ctx.now)
            session.commit()
    except Conflict as error:
        print(f"agentdesk: {error}", file=sys.stderr)
        return EXIT_CLAIMED_BY_OTHER
    print(f"{ref_of(conversation_id)} is yours", file=sys.stderr)
    return 0


def cmd_stats(args: argparse.Namespace) -> int:
    from agentdesk.domain import stats

    ctx = _context(args)
    with ctx.read() as session:
        figures = stats.collect(session, ctx.settings)
    if args.json:
        _print_json(figures)
        return 0
    print(f"conversations {figures['conversations']}   customers {figures['customers']}   "
          f"identities {figures['identities']}")
    print("messages      " + "   ".join(f"{k} {v}" for k, v in figures["messages"].items()))
    print("kinds         " + "   ".join(f"{k} {v}" for k, v in figures["kinds"].items()))
    print("outbox        " + "   ".join(f"{k} {v}" for k, v in figures["outbox"].items()))
    print(f"spool files rejected {figures['spool_rejected']}")
    for name, source in figures["sources"].items():
        print(f"source {name}: last sync {source['last_sync'] or 'never'}"
              + (f", error: {source['error']}" if source["error"] else ""))
    return 0


def cmd_audit(args: argparse.Namespace) -> int:
    from agentdesk.domain import audit
    from agentdesk.store import queries
    from agentdesk.store.models import ref_of

    ctx = _context(args)
    since = _parse_since(args.since)
    conversation_id = queries.parse_ref(args.ref) if args.ref else None
    after_id = 0
    if args.json:
        # A JSON array streamed page by page, so a year of audit log never sits in memory.
        sys.stdout.write("[")
        first = True
    with ctx.read() as session:
        while True:
            page = queries.events(session=session, since=since, conversation_id=conversation_id, after_id=after_id)
            if not page:
                break
            for event in page:
                document = audit.event_document(event, ref_of=ref_of)
                if args.json:
                    sys.stdout.write(("\n  " if first else ",\n  ") + json.dumps(document, ensure_ascii=False))
                    first = False
                else:
                    detail = " ".join(f"{k}={v}" for k, v in document["detail"].items())
                    print(f"{document['at']}  {document['agent']:<10} {document['action']:<16} "
                          f"{document['ref'] or '-':<9} {detail}")
            after_id = page[-1].id
    if args.json:
        sys.stdout.write("\n]\n")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from agentdesk.domain import documents
    from agentdesk.store import queries

    ctx = _context(args)
    since = _parse_since(args.since)
    after_id = 0
    with ctx.read() as session:
        while True:
            page = queries.conversations_since(session=session, since=since, after_id=after_id)
            if not page:
                break
            for document in documents.documents(session, page, policies=ctx.policies, now=ctx.now, full=True):
                sys.stdout.write(json.dumps(document, ensure_ascii=False) + "\n")
            after_id = page[-1].id
            session.expunge_all()  # keep memory flat over a long export
    return 0


def cmd_customer_show(args: argparse.Namespace) -> int:
    from agentdesk.domain import documents
    from agentdesk.store import queries
    from agentdesk.store.models import Customer, ref_of

    ctx = _context(args)
    with ctx.read() as session:
        customer = session.get(Customer, _customer_id(args.customer))
        if customer is None:
            raise AgentdeskError(f"no customer {args.customer}; `agentdesk customer list QUERY` finds one")
        identities = queries.identities_of(session=session, customer_ids=[customer.id])[customer.id]
        history = queries.customer_history(session=session, customer_id=customer.id)
        doc = {
            "id": customer.id, "name": customer.name, "organization": customer.organization,
            "tier": customer.tier, "notes": customer.notes,
            "identities": [{"kind": i.kind, "address": i.address} for i in identities],
            "conversations": [
                {"ref": ref_of(c.id), "subject": c.subject, "status": c.status, "channel": c.channel,
                 "created_at": documents.iso(c.created_at)}
                for c in history
            ],
        }
    if args.json:
        _print_json(doc)
    else:
        print(f"customer {doc['id']}: {doc['name']}" + (f" ({doc['organization']})" if doc["organization"] else ""))
        for identity in doc["identities"]:
            print(f"  {identity['kind']:<7} {identity['address']}")
        for past in doc["conversations"]:
            print(f"  {past['ref']:<9} {past['channel']:<8} {past['status']:<8} {past['subject']}")
    return 0


def _customer_id(text: str) -> int:
    cleaned = text.strip().upper().removeprefix("C-")
    if not cleaned.isdigit():
        raise InvalidInput(f"{text!r} is not a customer id; expected a number (see `agentdesk customer list`)")
    return int(cleaned)


def cmd_customer_list(args: argparse.Namespace) -> int:
    from sqlmodel import col, select

    from agentdesk.store import queries, search
    from agentdesk.store.models import Customer

    ctx = _context(args)
    with ctx.read() as session:
        if args.query:
            ids = search.search_customer_ids(session.connection(), args.query, limit=args.limit)
            found = queries.customers_by_id(session=session, customer_ids=ids)
            customers = [found[i] for i in ids if i in found]
        else:
            customers = list(session.exec(select(Customer).order_by(col(Customer.id)).limit(args.limit)))
        identities = queries.identities_of(session=session, customer_ids=[c.id for c in customers])
    rows = [
        {"id": c.id, "name": c.name, "organization": c.organization,
         "identities": [{"kind": i.kind, "address": i.address} for i in identities[c.id]]}
        for c in customers
    ]
    if args.json:
        _print_json(rows)
    else:
        for row in rows:
            addresses = ", ".join(i["address"] for i in row["identities"])
            print(f"{row['id']:>6}  {row['name']:<24.24} {addresses}")
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    from agentdesk import doctor

    ctx = _context(args)
    failures = 0
    for check in doctor.run_checks(ctx.config_path):
        mark = {"ok": "ok  ", "warn": "warn", "fail": "FAIL"}[check.status]
        print(f"[{mark}] {check.name}: {check.detail}")
        failures += check.status == "fail"
    if failures:
        print(f"agentdesk: doctor found {failures} problem(s)", file=sys.stderr)
        return 1
    return 0


def cmd_sync(args: argparse.Namespace) -> int:
    from agentdesk.commands_email import sync_command
    from agentdesk.domain import clocks
    from agentdesk.store import db, locks

    ctx = _context(args)
    # One sync serves the team: a second one (even --once) would race the first.
    with locks.sync_lock(ctx.engine):
        # An edited SLA policy reaches open conversations when the worker starts (docs/sla.md).
        applied = clocks.apply_policy_change(lambda: db.write_session(ctx.engine), policies=ctx.policies,
                                             now=ctx.now)
        if applied is not None:
            print(f"sync: SLA policies changed; {applied.changed} open conversation(s) recomputed",
                  file=sys.stderr)
        return sync_command(ctx, args)


def cmd_db_copy(args: argparse.Namespace) -> int:
    from agentdesk.store import copy, db

    ctx = _context(args)
    report = copy.copy_database(ctx.engine, args.to, progress=_stderr_progress)
    total = sum(report.rows.values())
    print(f"copied {total} rows into {db.describe_url(args.to)}; every table's row count matches", file=sys.stderr)
    print("point database.url at it to switch", file=sys.stderr)
    return 0


def _webhook(name: str) -> Callable[[argparse.Namespace], int]:
    """A handler of agentdesk.commands_webhook, imported only when that command runs."""

    def handler(args: argparse.Namespace) -> int:
        from agentdesk import commands_webhook

        return getattr(commands_webhook, name)(args)

    return handler


# --- the parser -------------------------------------------------------------------------------


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config", type=Path, default=argparse.SUPPRESS,
        help="config file (default: $AGENTDESK_CONFIG, then ~/.config/agentdesk/config.toml)",
    )


def _choices(values: Iterable[str]) -> str:
    return ", ".join(values)


def build_parser() -> argparse.ArgumentParser:
    from agentdesk.store.queries import VIEWS

    parser = argparse.ArgumentParser(
        prog="agentdesk",
        description="A terminal workstation for customer-service agents. Without a command, opens the queue.",
    )
    parser.add_argument("--version", action="version", version=f"agentdesk {__version__}")
    _add_common(parser)
    parser.set_defaults(handler=cmd_tui)
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")

    def command(name: str, handler, help: str, parent=commands) -> argparse.ArgumentParser:
        sub = parent.add_parser(name, help=help, description=help)
        _add_common(sub)
        sub.set_defaults(handler=handler)
        return sub

    demo = command("demo", cmd_demo, "build (once) a realistic demo queue and open the TUI on it")
    demo.add_argument("--conversations", type=int, default=None, metavar="N",
                      help="size of the demo queue (default 240; ~10 messages each for N > 240)")
    demo.add_argument("--seed-only", action="store_true", help="build the demo but do not open the TUI")
    demo.add_argument("--data-dir", metavar="DIR", help="where to build it (default: the XDG data dir's demo/)")

    init = command("init", cmd_init, "write a starter config and create the database")
    init.add_argument("--data-dir", metavar="DIR", help="directory for the database and templates")

    sync = command("sync", cmd_sync, "pull every IMAP mailbox and spool dir, deliver the outbox")
    sync.add_argument("--once", action="store_true", help="one pass; exit 0 only if nothing failed")
    sync.add_argument("--source", metavar="NAME", help="only this mailbox or spool")

    webhook = commands.add_parser("webhook", help="webhook receiver")
    webhook_commands = webhook.add_subparsers(title="commands", metavar="COMMAND", required=True)
    serve = command("serve", _webhook("cmd_webhook_serve"),
                    "HTTP endpoint that verifies and writes payloads to a spool", webhook_commands)
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8025, help="port (default 8025)")
    serve.add_argument("--public-url", default="", metavar="URL",
                       help="public URL prefix providers call (Twilio signatures); default from X-Forwarded-Proto/Host")
    serve.add_argument("--quiet", action="store_true", help="do not log each request")

    spool = commands.add_parser("spool", help="webhook spool directories")
    spool_commands = spool.add_subparsers(title="commands", metavar="COMMAND", required=True)
    retry = command("retry", _webhook("cmd_spool_retry"), "re-ingest a spool's rejected files", spool_commands)
    retry.add_argument("name", metavar="NAME")
    retry.add_argument("--json", action="store_true")
    spool_list = command("list", _webhook("cmd_spool_list"), "spools: counts and rejected files with reasons",
                         spool_commands)
    spool_list.add_argument("--json", action="store_true")

    listing = command("list", cmd_list, "conversations of a view, most urgent first")
    listing.add_argument("--view", default="open", choices=list(VIEWS), metavar="NAME",
                         help=f"one of: {_choices(VIEWS)} (default: open)")
    listing.add_argument("--query", metavar="Q", help="full-text search in messages and customers")
    listing.add_argument("--limit", type=int, default=50, metavar="N", help="at most N rows (default 50)")
    listing.add_argument("--json", action="store_true", help="JSON on stdout")

    show = command("show", cmd_show, "one conversation with its thread and the customer's history")
    show.add_argument("ref", metavar="REF")
    show.add_argument("--json", action="store_true", help="JSON on stdout")

    from agentdesk.domain.queue import PRIORITIES, STATUSES

    reply = command("reply", cmd_reply, "reply to a conversation; the reply is queued for delivery")
    reply.add_argument("ref", metavar="REF")
    body = reply.add_mutually_exclusive_group(required=True)
    body.add_argument("--template", metavar="NAME", help="reply with a template from the templates directory")
    body.add_argument("--body-file", metavar="FILE", help="the reply text; - reads standard input")
    reply.add_argument("--status", choices=STATUSES, metavar="STATUS",
                       help=f"also set the status: {_choices(STATUSES)}")

    note = command("note", cmd_note, "add an internal note (never sent to the customer)")
    note.add_argument("ref", metavar="REF")
    note.add_argument("dash", nargs="?", choices=["-"], help="read the note from standard input")
    note.add_argument("--body-file", metavar="FILE", help="the note text; - reads standard input")

    setter = command("set", cmd_set, "change status, priority, assignee, tags or snooze")
    setter.add_argument("ref", metavar="REF")
    setter.add_argument("--status", choices=STATUSES, metavar="S", help=_choices(STATUSES))
    setter.add_argument("--priority", choices=PRIORITIES, metavar="P", help=_choices(PRIORITIES))
    setter.add_argument("--assign", metavar="AGENT", help="an agent's login, me, or none")
    setter.add_argument("--tag", action="append", default=[], metavar="T", help="add a tag (repeatable)")
    setter.add_argument("--untag", action="append", default=[], metavar="T", help="remove a tag (repeatable)")
    setter.add_argument("--snooze", metavar="WHEN", help="hide until a time (2026-12-01T09:00) or for a while (4h); none")
    setter.add_argument("--if-version", type=int, metavar="N",
                        help="only if the conversation is still at version N (from show --json)")

    claim = command("claim", cmd_claim, "assign to me atomically; exit 3 if another agent holds it")
    claim.add_argument("ref", metavar="REF")

    customer = commands.add_parser("customer", help="customers: show, list, merge")
    customer_commands = customer.add_subparsers(title="commands", metavar="COMMAND", required=True)
    merge = command("merge", _webhook("cmd_customer_merge"), "merge REF_B's customer into REF_A's (reversible)",
                    customer_commands)
    merge.add_argument("ref_a", metavar="REF_A")
    merge.add_argument("ref_b", metavar="REF_B")
    merge.add_argument("--json", action="store_true")
    unmerge = command("unmerge", _webhook("cmd_customer_unmerge"), "undo the merge that brought REF to its customer",
                      customer_commands)
    unmerge.add_argument("ref", metavar="REF")
    unmerge.add_argument("--json", action="store_true")
    customer_show = command("show", cmd_customer_show, "a customer with identities and every conversation",
                            customer_commands)
    customer_show.add_argument("customer", metavar="ID")
    customer_show.add_argument("--json", action="store_true")
    customer_list = command("list", cmd_customer_list, "customers, or those matching a search", customer_commands)
    customer_list.add_argument("query", nargs="?", metavar="QUERY")
    customer_list.add_argument("--limit", type=int, default=50, metavar="N")
    customer_list.add_argument("--json", action="store_true")

    from agentdesk import commands_sla

    sla = commands.add_parser("sla", help="SLA clocks")
    sla_commands = sla.add_subparsers(title="commands", metavar="COMMAND", required=True)
    commands_sla.add_arguments(sla_commands, command)

    stats = command("stats", cmd_stats, "counts of conversations, messages, customers, outbox, sources")
    stats.add_argument("--json", action="store_true")

    report = command("report", commands_sla.cmd_report, "reply times, SLA compliance, backlog, volume")
    report.add_argument("--since", metavar="DATE", help="ISO date/time or an age like 7d (default: 30 days before --until)")
    report.add_argument("--until", metavar="DATE", help="ISO date/time or an age (default: now; exclusive)")
    report.add_argument("--json", action="store_true", help="JSON on stdout")

    audit = command("audit", cmd_audit, "the audit log: who did what, when")
    audit.add_argument("--since", metavar="DATE", help="ISO date/time or an age like 7d")
    audit.add_argument("--ref", metavar="REF", help="only this conversation")
    audit.add_argument("--json", action="store_true")

    export = command("export", cmd_export, "every conversation as one `show --json` object per line")
    export.add_argument("--since", metavar="DATE", help="only conversations updated since (ISO date or 7d)")
    export.add_argument("--jsonl", action="store_true", help="JSON lines (the only format; accepted for clarity)")

    database = commands.add_parser("db", help="database maintenance")
    db_commands = database.add_subparsers(title="commands", metavar="COMMAND", required=True)
    copy = command("copy", cmd_db_copy, "copy the whole database to another (empty) database, e.g. PostgreSQL",
                   db_commands)
    copy.add_argument("--to", required=True, metavar="URL")

    command("doctor", cmd_doctor, "check config, database, mailboxes, spools, SMTP")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command; its exit status. In-process callers (tests) use this; the program is `run`."""
    return _dispatch(build_parser().parse_args(argv))


def run() -> NoReturn:
    """The program (`agentdesk`, `python -m agentdesk`)."""
    raise SystemExit(main())


def _dispatch(args: argparse.Namespace) -> int:
    if not hasattr(args, "config"):
        args.config = None
    try:
        return args.handler(args)
    except AgentdeskError as error:
        print(f"agentdesk: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `agentdesk export | head`: the reader left; that is not an error of ours.
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    run()
