"""Setting up and looking after a desk: opening the TUI, `demo`, `init`, `doctor`, `stats`,
`audit`, `db copy`."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from agentdesk import config, locations
from agentdesk.cli.common import Progress, context, json_text, one_line, parse_since, print_json


def cmd_tui(args: argparse.Namespace) -> int:
    ctx = context(args)
    from agentdesk.app.queue import FirstRead

    # Started before the UI's imports: on PostgreSQL it connects in a thread meanwhile.
    first_read = FirstRead(ctx.settings)
    from agentdesk.tui.app import run

    # A database to create or upgrade is opened before the screen, so its errors print plainly. One
    # at the current schema is opened after the first frame: the engine (SQLAlchemy and the models)
    # costs more to import than the rest of the start, and the first rows need only the driver.
    engine = None if first_read.at_head() else ctx.desk.engine
    return run(ctx.settings, engine, first_read=first_read)


def cmd_demo(args: argparse.Namespace) -> int:
    from agentdesk.demo import build

    directory = Path(args.data_dir) if args.data_dir else locations.demo_dir()
    config_path = build.ensure_demo(directory, conversations=args.conversations, progress=Progress())
    if args.seed_only:
        print(f"demo ready: agentdesk --config {config_path} list", file=sys.stderr)
        return 0
    settings = config.load(config_path)
    from agentdesk.tui.app import run

    return run(settings)


def cmd_init(args: argparse.Namespace) -> int:
    from agentdesk.app import maintenance

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
    print(f"database ready: {maintenance.prepare(settings)}", file=sys.stderr)
    print(next_steps(config_path, settings), file=sys.stderr)
    return 0


def next_steps(config_path: Path, settings: config.Settings) -> str:
    """What a new desk needs after `init`: sources, templates, a check, a sync."""
    example = locations.example_config()
    documented = f"every key is documented in {example}" if example else "config.example.toml documents every key"
    option = "" if config_path == locations.default_config_path() else f" --config {shlex.quote(str(config_path))}"
    return (
        f"next:\n"
        f"  1. edit {config_path}: add a [[mailbox]] (IMAP and SMTP) or a [[spool]] (webhooks); {documented}\n"
        f"  2. put reply templates in {settings.templates_dir} (NAME.md)\n"
        f"  3. agentdesk{option} doctor   checks the mailboxes, SMTP, spools and templates for real\n"
        f"  4. agentdesk{option} sync     brings the conversations in; agentdesk{option} opens the queue"
    )


def starter_config(data_dir: Path) -> str:
    login = config.current_agent()
    return f"""# agentdesk configuration — every key is documented in config.example.toml
[database]
url = {config.toml_string(f"sqlite:///{data_dir / 'agentdesk.db'}")}

[templates]
dir = {config.toml_string(str(data_dir / "templates"))}

[agents.{config.toml_string(login)}]
name = {config.toml_string(login)}
signature = ""

[[sla_policy]]
name = "standard"
first_reply = "1h"
next_reply = "4h"
resolution = "3d"
"""


def cmd_doctor(args: argparse.Namespace) -> int:
    from agentdesk.app import doctor

    checks = []
    for check in doctor.run_checks(context(args).config_path):
        checks.append(check)
        if getattr(args, "json", False):
            continue
        mark = {"ok": "ok  ", "warn": "warn", "fail": "FAIL"}[check.status]
        # Each line as its check ends: a server that is slow to answer shows which one it is.
        print(f"[{mark}] {check.name}: {check.detail}", flush=True)
        if check.fix and check.status != "ok":
            print(f"       fix: {check.fix}", flush=True)
    if getattr(args, "json", False):
        print_json([check.document() for check in checks])
    failures = sum(check.status == "fail" for check in checks)
    if failures:
        print(f"agentdesk: doctor found {failures} problem(s)", file=sys.stderr)
    return doctor.exit_status(checks)


def cmd_stats(args: argparse.Namespace) -> int:
    from agentdesk.app import records

    figures = records.stats(context(args).desk)
    if args.json:
        print_json(figures)
        return 0
    print(
        f"conversations {figures['conversations']}   customers {figures['customers']}   "
        f"identities {figures['identities']}"
    )
    print("messages      " + "   ".join(f"{k} {v}" for k, v in figures["messages"].items()))
    print("kinds         " + "   ".join(f"{k} {v}" for k, v in figures["kinds"].items()))
    print("outbox        " + "   ".join(f"{k} {v}" for k, v in figures["outbox"].items()))
    print(f"spool files rejected {figures['spool_rejected']}")
    for name, source in figures["sources"].items():
        print(
            f"source {name}: last sync {source['last_sync'] or 'never'}"
            + (f", error: {one_line(source['error'])}" if source["error"] else "")
        )
    return 0


def cmd_audit(args: argparse.Namespace) -> int:
    from agentdesk.app import records

    ctx = context(args)
    events = records.audit_events(ctx.desk, since=parse_since(args.since), ref=args.ref)
    if not args.json:
        for document in events:
            detail = " ".join(f"{k}={one_line(v)}" for k, v in document["detail"].items())
            print(
                f"{document['at']}  {one_line(document['agent']):<10} {document['action']:<16} "
                f"{document['ref'] or '-':<9} {detail}"
            )
        return 0
    # A JSON array streamed event by event, so a year of audit log never sits in memory.
    sys.stdout.write("[")
    first = True
    for document in events:
        sys.stdout.write(("\n  " if first else ",\n  ") + json_text(document))
        first = False
    sys.stdout.write("\n]\n")
    return 0


def cmd_db_copy(args: argparse.Namespace) -> int:
    from agentdesk.app import maintenance

    ctx = context(args)
    total, target = maintenance.copy_database(ctx.desk, args.to, progress=Progress())
    print(f"copied {total} rows into {target}; every table's row count matches", file=sys.stderr)
    print("point database.url at it to switch", file=sys.stderr)
    return 0
