"""SLA clocks and the team report: `sla explain REF`, `sla recompute`, `report`.

`--json` alone on stdout, one-line reasons on stderr. Times are shown in the zone the policy's
business hours are written in (else the machine's).
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime, timedelta, tzinfo
from typing import Any

from agentdesk.cli.common import Progress, context, parse_since, print_json
from agentdesk.domain import sla


def _when(at: datetime | None, zone: tzinfo) -> str:
    if at is None:
        return "-"
    local = at.astimezone(zone)
    return f"{local:%a %Y-%m-%d %H:%M} {local.tzname() or ''}".rstrip()


# --- sla explain ----------------------------------------------------------------------------------


def print_explain(document: dict[str, Any], *, zone: tzinfo, out=None) -> None:
    out = out or sys.stdout
    write = lambda line="": print(line, file=out)  # noqa: E731
    if document["policy"] is None:
        write(f"{document['ref']}: no SLA policy applies ({document['status']}, {document['priority']}); no clocks run")
        return
    calendar = document["calendar"] + (f", {document['timezone']}" if document.get("timezone") else "")
    write(
        f"{document['ref']}  policy {document['policy']} ({calendar})  priority {document['priority']}  "
        f"status {document['status']}"
    )
    write(f"as of {_when(datetime.fromisoformat(document['now']), zone)}; used = business time on the clock")
    for clock in document["clocks"]:
        length = sla.format_duration(timedelta(seconds=clock["length_seconds"]))
        summary = clock["state"]
        if clock["state"] in ("ok", "warning") and clock["remaining_seconds"] is not None:
            summary += f", {sla.format_short(timedelta(seconds=clock['remaining_seconds']))} left"
        elif clock["state"] in ("breached", "missed") and clock["remaining_seconds"] is not None:
            summary += f" by {sla.format_short(timedelta(seconds=-clock['remaining_seconds']))}"
        elif clock["state"] == "paused":
            summary += f" ({clock['reason']}), {sla.format_short(timedelta(seconds=clock['remaining_seconds']))} left"
        elif clock["state"] == "met" and clock["remaining_seconds"] is not None:
            summary += f" with {sla.format_short(timedelta(seconds=clock['remaining_seconds']))} to spare"
        elif clock["state"] == "stopped":
            summary += f" ({clock['reason']})"
        if clock["due"] and clock["state"] in ("ok", "warning", "breached"):
            summary += f"; due {_when(datetime.fromisoformat(clock['due']), zone)}"
        write()
        write(f"{clock['target']}  target {length}  now: {summary}")
        if not clock["events"]:
            write("  (never started)")
        for event in clock["events"]:
            at = _when(datetime.fromisoformat(event["at"]), zone)
            used = sla.format_duration(timedelta(seconds=event["used_seconds"]))
            what = event["event"] + (f" ({event['reason']})" if event["reason"] else "")
            if event["event"] == "fulfil":
                what += " met" if event["met"] else " missed"
            due = f"due {_when(datetime.fromisoformat(event['due']), zone)}" if event["due"] else ""
            cycle = f"#{event['cycle']}" if event["cycle"] > 1 else ""
            mark = "" if event["recorded"] else "  (not yet recorded)"
            write(f"  {at:<26} {what:<20} {cycle:<3} used {used:<9} {due}{mark}".rstrip())


def cmd_sla_explain(args: argparse.Namespace) -> int:
    from agentdesk.app import reports

    ctx = context(args)
    document, zone = reports.sla_explanation(ctx.desk, args.ref)
    if getattr(args, "json", False):
        print_json(document)
    else:
        print_explain(document, zone=zone)
    return 0


# --- sla recompute --------------------------------------------------------------------------------


def cmd_sla_recompute(args: argparse.Namespace) -> int:
    """Apply the configured policies to every open conversation (and record their fingerprint).

    `--if-changed`: only when the policies differ from the last ones applied; what `sync` does
    at start."""
    from agentdesk.app import reports

    ctx = context(args)
    progress = Progress(unit="open conversations")
    only_if_changed = getattr(args, "if_changed", False)
    done = reports.recompute_sla(
        ctx.desk, only_if_changed=only_if_changed, on_page=lambda page: progress.count(page.checked, "recomputing")
    )
    progress.finish()
    policies = ctx.desk.policies
    if done is None:
        print(f"policies unchanged (fingerprint {policies.fingerprint}); nothing to do", file=sys.stderr)
        return 0
    print(
        f"policies {policies.fingerprint} applied: {done.checked} open conversations checked, "
        f"{done.changed} changed, {done.events} clock events recorded",
        file=sys.stderr,
    )
    return 0


# --- report ----------------------------------------------------------------------------------------


def _report_bounds(args: argparse.Namespace) -> tuple[datetime | None, datetime | None]:
    return parse_since(getattr(args, "since", None)), parse_since(getattr(args, "until", None), option="--until")


def _bar(count: int, largest: int, width: int = 30) -> str:
    if not largest or not count:
        return ""
    eighths = max(1, round(width * 8 * count / largest))
    full, rest = divmod(eighths, 8)
    return "█" * full + ("", "▏", "▎", "▍", "▌", "▋", "▊", "▉")[rest]


def _duration(seconds: int | None) -> str:
    return "-" if seconds is None else sla.format_short(timedelta(seconds=seconds))


def _percent(cell: dict[str, Any]) -> str:
    if cell["percent"] is None:
        return "-"
    return f"{cell['percent']:.1f}% ({cell['met']}/{cell['met'] + cell['missed']})"


def print_report(document: dict[str, Any], *, out=None) -> None:
    out = out or sys.stdout
    write = lambda line="": print(line, file=out)  # noqa: E731
    write(f"report {document['since'][:16]} .. {document['until'][:16]} (UTC)")
    write()
    write(f"{'':<16} {'count':>7} {'median':>9} {'p90':>9} {'mean':>9}")
    for metric, figures in document["reply_times"].items():
        write(
            f"{metric:<16} {figures['count']:>7} {_duration(figures['median_seconds']):>9} "
            f"{_duration(figures['p90_seconds']):>9} {_duration(figures['mean_seconds']):>9}"
        )
    write()
    targets = list(document["compliance"]["targets"])
    write("SLA compliance (met / met + missed)")
    write(f"{'':<16} " + " ".join(f"{target:>22}" for target in targets))
    write(f"{'all':<16} " + " ".join(f"{_percent(document['compliance']['targets'][t]):>22}" for t in targets))
    for row in document["compliance"]["policies"]:
        write(
            f"{'policy ' + (row['policy'] or '(none)'):<16.16} " + " ".join(f"{_percent(row[t]):>22}" for t in targets)
        )
    for row in document["compliance"]["agents"]:
        write(
            f"{'agent ' + (row['agent'] or '(nobody)'):<16.16} " + " ".join(f"{_percent(row[t]):>22}" for t in targets)
        )
    write()
    backlog = document["backlog"]
    write(
        f"backlog: {backlog['open']} open — {backlog['breached']} breached, {backlog['warning']} in warning, "
        f"{backlog['paused']} paused, {backlog['waiting_on_us']} waiting on us"
        + (f" (longest {_duration(backlog['longest_wait_seconds'])})" if backlog["longest_wait_seconds"] else "")
    )
    largest = max((row["count"] for row in backlog["by_age"]), default=0)
    for row in backlog["by_age"]:
        write(f"  {row['age']:>6} {row['count']:>7} {_bar(row['count'], largest)}")
    write()
    write("volume by channel")
    channels = document["volume"]["channels"]
    largest = max((row["conversations"] for row in channels), default=0)
    for row in channels:
        messages = row["messages"]
        write(
            f"  {row['channel']:<8} {row['conversations']:>7} conversations {_bar(row['conversations'], largest, 20):<21}"
            f" in {messages['inbound']}, out {messages['outbound']}, notes {messages['note']}, "
            f"receipts {messages['receipt']}, automatic {messages['automatic_inbound']}"
        )
    _print_satisfaction(document, write)


def _csat_line(cell: dict[str, Any]) -> str:
    if cell["csat"] is None:
        return f"— ({cell['sent']} sent, no answer)"
    return (
        f"{cell['csat'] * 100:5.1f}% satisfied ({cell['satisfied']}/{cell['responses']}), "
        f"answered {cell['response_rate'] * 100:.0f}% of {cell['sent']}, average {cell['average']:.1f}"
    )


def _print_satisfaction(document: dict[str, Any], write) -> None:
    """CSAT and the knowledge base's articles, as the report screen shows them."""
    figures = document.get("csat")
    if figures is None:
        return
    write()
    if not figures["sent"]:
        write("satisfaction (CSAT): no survey went out in this period")
    else:
        write(f"satisfaction (CSAT): {_csat_line(figures)}")
        largest = max(figures["ratings"].values(), default=0)
        for value in ("5", "4", "3", "2", "1"):
            write(f"  {value} {figures['ratings'][value]:>7} {_bar(figures['ratings'][value], largest)}")
        for key, label in (("by_agent", "agent"), ("by_policy", "policy"), ("by_channel", "channel")):
            for row in figures[key]:
                write(f"  {label + ' ' + (row[label] or '(none)'):<24.24} {_csat_line(row)}")
    articles = document.get("knowledge_base", {}).get("articles", [])
    if articles:
        write()
        write("knowledge base: articles sent (solved with no customer message since)")
        for row in articles:
            rate = f"{row['self_service_rate'] * 100:.0f}%" if row["self_service_rate"] is not None else "-"
            write(
                f"  {row['slug']:<32.32} sent {row['sent']:>4}, {row['solved_without_reply']}/{row['conversations']}"
                f" solved ({rate})"
            )


def cmd_report(args: argparse.Namespace) -> int:
    from agentdesk.app import reports

    ctx = context(args)
    since, until = _report_bounds(args)
    document = reports.report(ctx.desk, since=since, until=until)
    if getattr(args, "json", False):
        print_json(document)
    else:
        print_report(document)
    return 0
