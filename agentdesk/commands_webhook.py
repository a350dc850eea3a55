"""CLI handlers of the webhook spool channel, and of customer merge.

Wired into `agentdesk.cli`:

    agentdesk webhook serve [--host H] [--port P] [--public-url URL] [--quiet]
    agentdesk spool retry NAME [--json]
    agentdesk spool list [--json]                       (rejected files with reasons, per spool)
    agentdesk customer merge REF_A REF_B [--json]       REF_B's customer is merged into REF_A's
    agentdesk customer unmerge REF [--json]             undo the merge that brought REF to its customer
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from agentdesk.errors import AgentdeskError, InvalidInput


def _context(args: argparse.Namespace):
    from agentdesk.cli import _context as make

    return make(args)


def _print_json(value: Any) -> None:
    json.dump(value, sys.stdout, ensure_ascii=False, indent=2)
    sys.stdout.write("\n")


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


# --- commands -----------------------------------------------------------------------------------


def cmd_webhook_serve(args: argparse.Namespace) -> int:
    from agentdesk.channels.webhook import receiver

    ctx = _context(args)
    settings = ctx.settings
    if not settings.spool:
        raise InvalidInput("no [[spool]] in the config; `webhook serve` writes to spools, so configure one first")
    endpoints = receiver.endpoints_from_settings(settings)
    if not any(endpoint.secret for endpoint in endpoints.values()):
        raise InvalidInput("no spool has a secret_command; `webhook serve` refuses unauthenticated posts, "
                           "so set secret_command on the spools it should accept")
    host, port = getattr(args, "host", "127.0.0.1"), getattr(args, "port", 8025)
    try:
        server = receiver.make_server(endpoints, host=host, port=port, public_url=getattr(args, "public_url", "") or "",
                                      log=None if getattr(args, "quiet", False) else receiver.stderr_log)
    except OSError as error:
        raise InvalidInput(f"cannot listen on {host}:{port}: {error.strerror or error}") from None
    for name, endpoint in endpoints.items():
        state = "" if endpoint.secret else "  (no secret_command: refuses every post)"
        print(f"agentdesk: POST {server.url}/hooks/{name} -> {endpoint.path}/new{state}", file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


def cmd_spool_retry(args: argparse.Namespace) -> int:
    ctx = _context(args)
    from agentdesk.sync.sources.spool import open_spools, report_poll

    (source,) = open_spools(ctx.settings, ctx.engine, ctx.policies, source=args.name)
    before = source.rejected()
    result = source.retry()
    if getattr(args, "json", False):
        _print_json({"spool": source.name, "retried": len(before), "stored": result.stored,
                     "duplicates": result.duplicates, "statuses": result.statuses, "ignored": result.ignored,
                     "rejected": [{"file": f, "reason": r} for f, r in result.rejected],
                     "failed": [{"file": f, "reason": r} for f, r in result.failed]})
    else:
        print(f"spool {source.name}: retried {len(before)} file(s): {result.stored} stored, "
              f"{result.duplicates} already stored, {result.statuses} status, {result.ignored} ignored, "
              f"{len(result.rejected)} rejected again")
    report_poll(source.name, result, lambda line: print(line, file=sys.stderr))
    if result.failed:
        return 1
    if result.rejected:
        print(f"agentdesk: {len(result.rejected)} file(s) of spool {source.name} were rejected again; "
              f"see {source.path / 'rejected'}", file=sys.stderr)
        return 1
    return 0


def cmd_spool_list(args: argparse.Namespace) -> int:
    from agentdesk.channels.webhook import spool as spooling

    ctx = _context(args)
    rows = []
    for spool in ctx.settings.spool:
        path = ctx.settings._resolve(spool.path)
        counts = {sub: _count(path / sub) for sub in ("new", "cur", "rejected")}
        rejected = []
        folder = path / "rejected"
        if folder.is_dir():
            for entry in sorted(folder.iterdir()):
                if entry.is_file() and entry.suffix != spooling.ERROR_SUFFIX:
                    sidecar = entry.with_name(entry.name + spooling.ERROR_SUFFIX)
                    reason = sidecar.read_text(encoding="utf-8", errors="replace").strip() if sidecar.exists() else ""
                    rejected.append({"file": entry.name, "reason": reason})
        rows.append({"name": spool.name, "path": str(path), "adapter": spool.adapter, "kind": spool.kind,
                     "new": counts["new"], "cur": counts["cur"], "rejected": rejected})
    if getattr(args, "json", False):
        _print_json(rows)
        return 0
    if not rows:
        print("no spools configured; add a [[spool]] section (see config.example.toml)", file=sys.stderr)
    for row in rows:
        print(f"{row['name']}: {row['adapter']} ({row['kind']}) {row['path']}  new {row['new']}  cur {row['cur']}  "
              f"rejected {len(row['rejected'])}")
        for item in row["rejected"]:
            print(f"  {item['file']}: {item['reason']}")
    return 0


def _count(path: Path) -> int:
    try:
        return sum(1 for entry in path.iterdir() if entry.is_file() and not entry.name.startswith("."))
    except FileNotFoundError:
        return 0


def _merge_document(outcome, session) -> dict[str, Any]:
    from agentdesk.store.models import ref_of

    return {"customer": outcome.kept_id, "merged_customer": outcome.merged_id,
            "identities": list(outcome.identities), "conversations": [ref_of(c) for c in outcome.conversations],
            "event": outcome.event_id}


def cmd_customer_merge(args: argparse.Namespace) -> int:
    from agentdesk.domain import merge

    ctx = _context(args)
    with ctx.write() as session:
        outcome = merge.merge_by_refs(session, ref_a=args.ref_a, ref_b=args.ref_b, agent=ctx.agent, now=ctx.now)
        session.commit()
        document = _merge_document(outcome, session)
    if getattr(args, "json", False):
        _print_json(document)
    else:
        print(f"customer {outcome.merged_id} merged into customer {outcome.kept_id}: "
              f"{len(outcome.identities)} identities, {len(outcome.conversations)} conversations moved "
              f"(undo: agentdesk customer unmerge {args.ref_b})")
    return 0


def cmd_customer_unmerge(args: argparse.Namespace) -> int:
    from agentdesk.domain import merge

    ctx = _context(args)
    with ctx.write() as session:
        outcome = merge.unmerge_by_ref(session, ref=args.ref, agent=ctx.agent, now=ctx.now)
        session.commit()
        document = _merge_document(outcome, session)
    if getattr(args, "json", False):
        _print_json(document)
    else:
        print(f"customer {outcome.merged_id} separated from customer {outcome.kept_id} again: "
              f"{len(outcome.identities)} identities, {len(outcome.conversations)} conversations moved back")
    return 0


__all__ = [
    "AgentdeskError", "cmd_webhook_serve", "cmd_spool_retry", "cmd_spool_list", "cmd_customer_merge",
    "cmd_customer_unmerge",
]
