"""The webhook channel: `webhook serve`, `spool retry NAME`, `spool list`.

agentdesk webhook serve [--host H] [--port P] [--public-url URL] [--quiet]
agentdesk spool retry NAME [--json]
agentdesk spool list [--json]                       (rejected files with reasons, per spool)
agentdesk spool clean NAME [--json]                 (remove files a dead writer left in tmp/)
"""

from __future__ import annotations

import argparse
import sys

from agentdesk.cli.common import EXIT_FAILED, context, one_line, print_json


def cmd_webhook_serve(args: argparse.Namespace) -> int:
    from agentdesk.app import spools

    server, endpoints = spools.webhook_server(
        context(args).settings,
        host=getattr(args, "host", "127.0.0.1"),
        port=getattr(args, "port", 8025),
        public_url=getattr(args, "public_url", "") or "",
        quiet=getattr(args, "quiet", False),
    )
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
    from agentdesk.app import spools

    ctx = context(args)
    source, retried, result = spools.retry(ctx.desk, args.name)
    if getattr(args, "json", False):
        print_json(
            {
                "spool": source.name,
                "retried": retried,
                "stored": result.stored,
                "duplicates": result.duplicates,
                "statuses": result.statuses,
                "ignored": result.ignored,
                "rejected": [{"file": f, "reason": r} for f, r in result.rejected],
                "failed": [{"file": f, "reason": r} for f, r in result.failed],
            }
        )
    else:
        print(
            f"spool {source.name}: retried {retried} file(s): {result.stored} stored, "
            f"{result.duplicates} already stored, {result.statuses} status, {result.ignored} ignored, "
            f"{len(result.rejected)} rejected again"
        )
    for line in result.lines():
        print(line, file=sys.stderr)
    if result.failed:
        return EXIT_FAILED
    if result.rejected:
        print(
            f"agentdesk: {len(result.rejected)} file(s) of spool {source.name} were rejected again; "
            f"see {source.path / 'rejected'}",
            file=sys.stderr,
        )
        return EXIT_FAILED
    return 0


def cmd_spool_list(args: argparse.Namespace) -> int:
    from agentdesk.app import spools

    rows = spools.listing(context(args).settings)
    if getattr(args, "json", False):
        print_json(rows)
        return 0
    if not rows:
        print("no spools configured; add a [[spool]] section (see config.example.toml)", file=sys.stderr)
    for row in rows:
        print(
            f"{row['name']}: {row['adapter']} ({row['kind']}) {row['path']}  new {row['new']}  cur {row['cur']}  "
            f"rejected {len(row['rejected'])}"
        )
        for item in row["rejected"]:
            print(f"  {one_line(item['file'])}: {one_line(item['reason'])}")
        if row["stale_tmp"]:
            size = sum(item["bytes"] for item in row["stale_tmp"])
            oldest = max(item["age_seconds"] for item in row["stale_tmp"]) // 3600
            print(
                f"  tmp/: {len(row['stale_tmp'])} file(s), {size} bytes, left by a writer that died "
                f"(the oldest {oldest} h old); `agentdesk spool clean {one_line(row['name'])}` removes them"
            )
    return 0


def cmd_spool_clean(args: argparse.Namespace) -> int:
    from agentdesk.app import spools

    result = spools.clean(context(args).settings, args.name)
    if getattr(args, "json", False):
        print_json(result)
    else:
        size = sum(item["bytes"] for item in result["removed"])
        print(
            f"spool {one_line(result['spool'])}: removed {len(result['removed'])} stale file(s) "
            f"({size} bytes) from {one_line(result['path'])}/tmp"
        )
    for item in result["kept"]:
        print(
            f"agentdesk: spool {one_line(result['spool'])}: cannot remove tmp/{one_line(item['file'])}: "
            f"{one_line(item['reason'])}",
            file=sys.stderr,
        )
    return EXIT_FAILED if result["kept"] else 0
