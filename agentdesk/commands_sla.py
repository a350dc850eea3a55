"""CLI handlers of the SLA issue: `sla explain REF`, `sla recompute`, `report`.

Wired into the parser by `agentdesk/cli.py`; each handler takes the parsed arguments and returns
the exit status, like the other `cmd_*` functions there. Output follows the CLI contract: `--json`
alone on stdout, one-line reasons on stderr.
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime, timedelta, timezone, tzinfo
from typing import Any

from agentdesk.domain import sla

REPORT_DEFAULT_DAYS = 30


def _local_zone(policy: sla.Policy | None) -> tzinfo:
    """Times are shown in the policy's business calendar zone (the hours are written in it);
    otherwise in the local zone of the machine."""
    if policy is not None and isinstance(policy.calendar, sla.BusinessCalendar):
        from zoneinfo import ZoneInfo

        return ZoneInfo(policy.calendar.timezone)
    return datetime.now().astimezone().tzinfo or timezone.utc


def _when(at: datetime | None, zone: tzinfo) -> str:
    if at is None:
        return "-"
    local = at.astimezone(zone)
    return f"{local:%a %Y-%m-%d %H:%M} {local.tzname() or ''}".rstrip()


def _iso(at: datetime | None) -> str | None:
    return at.isoformat() if at is not None else None


def _seconds(value: timedelta | None) -> int | None:
    return int(value.total_seconds()) if value is not None else None


# --- sla explain ----------------------------------------------------------------------------------


def explain_document(session, conversation, policies, *, now: datetime) -> dict[str, Any]:
    """The timeline of every clock of `conversation` as a JSON-able document.

    Recorded events come first; events that have happened but are not recorded yet (a breach no
    change has noticed, or the whole timeline of a conversation from before clocks were
    recorded) follow with `recorded: false`. Lengths and calendar are the current policy's, so
    the figures are the ones the queue uses now.
    """
    from agentdesk.domain import clocks
    from agentdesk.store.models import ref_of

    policy = clocks.policy_for(session, conversation, policies)
    document: dict[str, Any] = {
        "ref": ref_of(conversation.id), "status": conversation.status, "priority": conversation.priority,
        "policy": policy.name if policy else None, "now": now.isoformat(), "clocks": [],
    }
    if policy is None:
        return document
    document["calendar"] = policy.calendar.name
    document["timezone"] = getattr(policy.calendar, "timezone", None)
    recorded = clocks.load_events(session, [conversation.id])[conversation.id]
    steps = [(event, clock, True) for event, clock in sla.replay_steps(recorded, policy=policy,
                                                                         priority=conversation.priority)]
    current, pending = clocks.timeline(conversation, policy, events=recorded, now=now)
    steps += [(event, clock, False) for event, clock in pending]
    states = {state.target: state for state in sla.clock_states(current, policy=policy,
                                                                priority=conversation.priority, now=now)}
    lengths = policy.targets_for(conversation.priority)
    for target in sla.TARGETS:
        if target not in lengths:
            continue
        state = states.get(target)
        clock = current.get(target)
        document["clocks"].append({
            "target": target,
            "length_seconds": _seconds(lengths[target]),
            "state": state.state if state else ("stopped" if clock is not None else "not started"),
            "reason": (clock.reason if clock is not None else "") or None,
            "due": _iso(state.due) if state else None,
            "remaining_seconds": _seconds(state.remaining) if state else None,
            "used_seconds": _seconds(clock.used_at(policy.calendar, now)) if clock is not None else None,
            "cycle": clock.cycle if clock is not None else 0,
            "events": [
                {
                    "event": event.event, "at": event.at.isoformat(), "reason": event.reason or None,
                    "cycle": after.cycle, "used_seconds": _seconds(after.used_at(policy.calendar, event.at)),
                    "due": _iso(after.due) if after.phase == "running" or event.event != "pause" else None,
                    "met": after.met if event.event == "fulfil" else None,
                    "recorded": is_recorded,
                }
                for event, after, is_recorded in steps if event.target == target
            ],
        })
    return document


def print_explain(document: dict[str, Any], *, zone: tzinfo, out=None) -> None:
    out = out or sys.stdout
    write = lambda line="": print(line, file=out)  # noqa: E731
    if document["policy"] is None:
        write(f"{document['ref']}: no SLA policy applies ({document['status']}, {document['priority']}); "
              f"no clocks run")
        return
    calendar = document["calendar"] + (f", {document['timezone']}" if document.get("timezone") else "")
    write(f"{document['ref']}  policy {document['policy']} ({calendar})  priority {document['priority']}  "
          f"status {document['status']}")
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
    from agentdesk.cli import _context, _print_json
    from agentdesk.domain import clocks
    from agentdesk.store import queries

    ctx = _context(args)
    with ctx.read() as session:
        conversation = queries.conversation_by_ref(session=session, ref=args.ref)
        document = explain_document(session, conversation, ctx.policies, now=ctx.now)
        policy = clocks.policy_for(session, conversation, ctx.policies)
    if getattr(args, "json", False):
        _print_json(document)
    else:
        print_explain(document, zone=_local_zone(policy))
    return 0


# --- sla recompute --------------------------------------------------------------------------------


def cmd_sla_recompute(args: argparse.Namespace) -> int:
    """Apply the configured policies to every open conversation (and record their fingerprint).

    `--if-changed`: only when the policies differ from the last ones applied; what `sync` does
    at start."""
    from agentdesk.domain import clocks
    from agentdesk.store import db

    from agentdesk.cli import _context

    ctx = _context(args)
    factory = lambda: db.write_session(ctx.engine)  # noqa: E731

    def on_page(progress: clocks.RecomputeProgress) -> None:
        if sys.stderr.isatty():
            print(f"\rrecomputing: {progress.checked} open conversations", end="", file=sys.stderr, flush=True)

    if getattr(args, "if_changed", False):
        progress = clocks.apply_policy_change(factory, policies=ctx.policies, now=ctx.now, agent=ctx.agent,
                                              on_page=on_page)
        if progress is None:
            print(f"policies unchanged (fingerprint {ctx.policies.fingerprint}); nothing to do", file=sys.stderr)
            return 0
    else:
        progress = clocks.recompute(factory, policies=ctx.policies, now=ctx.now, agent=ctx.agent, on_page=on_page)
    if sys.stderr.isatty():
        print(file=sys.stderr)
    print(f"policies {ctx.policies.fingerprint} applied: {progress.checked} open conversations checked, "
          f"{progress.changed} changed, {progress.events} clock events recorded", file=sys.stderr)
    return 0


# --- report ----------------------------------------------------------------------------------------


def _parse_until(text: str | None, now: datetime) -> datetime:
    if not text:
        return now
    from agentdesk.cli import _parse_since

    parsed = _parse_since(text)
    return parsed if parsed is not None else now


def report_window(args: argparse.Namespace, now: datetime):
    from agentdesk.cli import _parse_since
    from agentdesk.domain import reports
    from agentdesk.errors import InvalidInput

    until = _parse_until(getattr(args, "until", None), now)
    since = _parse_since(getattr(args, "since", None)) or until - timedelta(days=REPORT_DEFAULT_DAYS)
    if since >= until:
        raise InvalidInput(f"--since ({since.isoformat()}) must be before --until ({until.isoformat()})")
    return reports.Window(since=since, until=until)


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
        write(f"{metric:<16} {figures['count']:>7} {_duration(figures['median_seconds']):>9} "
              f"{_duration(figures['p90_seconds']):>9} {_duration(figures['mean_seconds']):>9}")
    write()
    targets = list(document["compliance"]["targets"])
    write("SLA compliance (met / met + missed)")
    write(f"{'':<16} " + " ".join(f"{target:>22}" for target in targets))
    write(f"{'all':<16} " + " ".join(f"{_percent(document['compliance']['targets'][t]):>22}" for t in targets))
    for row in document["compliance"]["policies"]:
        write(f"{'policy ' + (row['policy'] or '(none)'):<16.16} " + " ".join(f"{_percent(row[t]):>22}" for t in targets))
    for row in document["compliance"]["agents"]:
        write(f"{'agent ' + (row['agent'] or '(nobody)'):<16.16} " + " ".join(f"{_percent(row[t]):>22}" for t in targets))
    write()
    backlog = document["backlog"]
    write(f"backlog: {backlog['open']} open — {backlog['breached']} breached, {backlog['warning']} in warning, "
          f"{backlog['paused']} paused, {backlog['waiting_on_us']} waiting on us"
          + (f" (longest {_duration(backlog['longest_wait_seconds'])})" if backlog["longest_wait_seconds"] else ""))
    largest = max((row["count"] for row in backlog["by_age"]), default=0)
    for row in backlog["by_age"]:
        write(f"  {row['age']:>6} {row['count']:>7} {_bar(row['count'], largest)}")
    write()
    write("volume by channel")
    channels = document["volume"]["channels"]
    largest = max((row["conversations"] for row in channels), default=0)
    for row in channels:
        messages = row["messages"]
        write(f"  {row['channel']:<8} {row['conversations']:>7} conversations {_bar(row['conversations'], largest, 20):<21}"
              f" in {messages['inbound']}, out {messages['outbound']}, notes {messages['note']}, "
              f"receipts {messages['receipt']}, automatic {messages['automatic_inbound']}")


def cmd_report(args: argparse.Namespace) -> int:
    from agentdesk.cli import _context, _print_json
    from agentdesk.domain import reports

    ctx = _context(args)
    window = report_window(args, ctx.now)
    with ctx.read() as session:
        document = reports.report(session, window=window, now=ctx.now)
    if getattr(args, "json", False):
        _print_json(document)
    else:
        print_report(document)
    return 0


def add_arguments(sla_commands, command) -> None:
    """The SLA subcommands for cli.py's parser (see the wiring notes in docs/sla.md)."""
    explain = command("explain", cmd_sla_explain, "the timeline of every SLA clock of a conversation", sla_commands)
    explain.add_argument("ref", metavar="REF")
    explain.add_argument("--json", action="store_true", help="JSON on stdout")
    recompute = command("recompute", cmd_sla_recompute,
                        "apply the configured SLA policies to every open conversation", sla_commands)
    recompute.add_argument("--if-changed", action="store_true",
                           help="only if the policies changed since they were last applied")
