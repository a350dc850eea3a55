"""The knowledge base: `kb search Q`, `kb show SLUG`, `kb stats`.

Articles are Markdown files in the `[kb] dir` directory (docs/csat-kb.md); every command indexes
what changed there first. `--json` alone on stdout.
"""

from __future__ import annotations

import argparse
import sys

from agentdesk.cli.common import context, one_line, parse_since, print_json


def cmd_kb_search(args: argparse.Namespace) -> int:
    from agentdesk.app import kb

    ctx = context(args)
    for problem in kb.refresh(ctx.desk):
        print(one_line(f"left out of the knowledge base: {problem}"), file=sys.stderr)
    found = kb.search(ctx.desk, " ".join(args.query), limit=args.limit)
    if getattr(args, "json", False):
        print_json([item.document() for item in found])
        return 0
    if not found:
        print(one_line(f"no article matches {' '.join(args.query)!r} (in {ctx.desk.settings.kb_dir})"), file=sys.stderr)
        return 0
    for item in found:
        tags = f"  [{', '.join(item.tags)}]" if item.tags else ""
        print(one_line(f"{item.slug}  {item.title}{tags}"))
        if item.url:
            print(one_line(f"    {item.url}"))
    return 0


def cmd_kb_show(args: argparse.Namespace) -> int:
    from agentdesk.app import kb

    ctx = context(args)
    article = kb.article(ctx.desk, args.slug)
    if getattr(args, "json", False):
        print_json(kb.document(article))
        return 0
    print(one_line(article.title))
    if article.tags:
        print(one_line("tags: " + ", ".join(article.tags)))
    if article.url:
        print(one_line("url:  " + article.url))
    print()
    for line in article.body.splitlines():
        print(one_line(line) if line else "")
    return 0


def cmd_kb_stats(args: argparse.Namespace) -> int:
    from agentdesk.app import kb

    ctx = context(args)
    rows = kb.usage(ctx.desk, since=parse_since(args.since))
    if getattr(args, "json", False):
        print_json(rows)
        return 0
    if not rows:
        print("no article has been sent yet", file=sys.stderr)
        return 0
    print(f"{'article':<32} {'sent':>5} {'convs':>6} {'solved, no reply':>17}")
    for row in rows:
        rate = f"{row['self_service_rate']:.0%}" if row["self_service_rate"] is not None else "-"
        print(
            one_line(
                f"{row['slug'][:32]:<32} {row['sent']:>5} {row['conversations']:>6} "
                f"{row['solved_without_reply']:>9} ({rate})"
            )
        )
    return 0
