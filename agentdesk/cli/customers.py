"""Customers: `customer show`, `customer list`, `customer merge`, `customer unmerge`."""

from __future__ import annotations

import argparse

from agentdesk.cli.common import context, one_line, print_json


def cmd_customer_show(args: argparse.Namespace) -> int:
    from agentdesk.app import customers

    ctx = context(args)
    doc = customers.document(ctx.desk, args.customer)
    if args.json:
        print_json(doc)
        return 0
    print(
        f"customer {doc['id']}: {one_line(doc['name'])}"
        + (f" ({one_line(doc['organization'])})" if doc["organization"] else "")
    )
    for identity in doc["identities"]:
        print(f"  {identity['kind']:<7} {one_line(identity['address'])}")
    for past in doc["conversations"]:
        print(f"  {past['ref']:<9} {past['channel']:<8} {past['status']:<8} {one_line(past['subject'])}")
    return 0


def cmd_customer_list(args: argparse.Namespace) -> int:
    from agentdesk.app import customers

    ctx = context(args)
    rows = customers.listing(ctx.desk, args.query, limit=args.limit)
    if args.json:
        print_json(rows)
        return 0
    for row in rows:
        addresses = ", ".join(one_line(i["address"]) for i in row["identities"])
        print(f"{row['id']:>6}  {one_line(row['name']):<24.24} {addresses}")
    return 0


def cmd_customer_merge(args: argparse.Namespace) -> int:
    from agentdesk.app import customers

    ctx = context(args)
    merged = customers.merge(ctx.desk, args.ref_a, args.ref_b)
    if getattr(args, "json", False):
        print_json(merged.document)
    else:
        print(
            f"customer {merged.merged_id} merged into customer {merged.kept_id}: "
            f"{len(merged.identities)} identities, {len(merged.conversations)} conversations moved "
            f"(undo: agentdesk customer unmerge {args.ref_b})"
        )
    return 0


def cmd_customer_unmerge(args: argparse.Namespace) -> int:
    from agentdesk.app import customers

    ctx = context(args)
    merged = customers.unmerge(ctx.desk, args.ref)
    if getattr(args, "json", False):
        print_json(merged.document)
    else:
        print(
            f"customer {merged.merged_id} separated from customer {merged.kept_id} again: "
            f"{len(merged.identities)} identities, {len(merged.conversations)} conversations moved back"
        )
    return 0
