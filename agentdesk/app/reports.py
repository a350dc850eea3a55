"""Reports and SLA clocks: the team report, one conversation's clock timeline, policy recomputes."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta, timezone, tzinfo
from typing import Any

from agentdesk.app.desk import Desk

REPORT_DEFAULT_DAYS = 30


def report(
    desk: Desk, *, since: datetime | None = None, until: datetime | None = None, days: int = REPORT_DEFAULT_DAYS
) -> dict[str, Any]:
    """The `agentdesk report --json` document for [since, until): until defaults to now, since to
    `days` before until."""
    from agentdesk.domain import reports
    from agentdesk.errors import InvalidInput

    now = desk.now()
    until = until or now
    since = since or until - timedelta(days=days)
    if since >= until:
        raise InvalidInput(f"--since ({since.isoformat()}) must be before --until ({until.isoformat()})")
    with desk.read() as session:
        return reports.report(session, window=reports.Window(since=since, until=until), now=now)


def sla_explanation(desk: Desk, ref: str) -> tuple[dict[str, Any], tzinfo]:
    """The timeline of every SLA clock of a conversation (`sla explain --json`), and the zone to show
    its times in: the policy's business calendar's (its hours are written in it), else the local one."""
    from agentdesk.domain import clocks, sla
    from agentdesk.store import queries

    with desk.read() as session:
        conversation = queries.conversation_by_ref(session=session, ref=ref)
        document = explain_document(session, conversation, desk.policies, now=desk.now())
        policy = clocks.policy_for(session, conversation, desk.policies)
    if policy is not None and isinstance(policy.calendar, sla.BusinessCalendar):
        from zoneinfo import ZoneInfo

        return document, ZoneInfo(policy.calendar.timezone)
    return document, datetime.now().astimezone().tzinfo or timezone.utc


def _iso(at: datetime | None) -> str | None:
    return at.isoformat() if at is not None else None


def _seconds(value: timedelta | None) -> int | None:
    return int(value.total_seconds()) if value is not None else None


def explain_document(session, conversation, policies, *, now: datetime) -> dict[str, Any]:
    """The timeline of every clock of `conversation` as a JSON-able document.

    Recorded events come first; events that have happened but are not recorded yet (a breach no
    change has noticed, or the whole timeline of a conversation from before clocks were
    recorded) follow with `recorded: false`. Lengths and calendar are the current policy's, so
    the figures are the ones the queue uses now.
    """
    from agentdesk.domain import clocks, sla
    from agentdesk.store.models import ref_of

    policy = clocks.policy_for(session, conversation, policies)
    document: dict[str, Any] = {
        "ref": ref_of(conversation.id),
        "status": conversation.status,
        "priority": conversation.priority,
        "policy": policy.name if policy else None,
        "now": now.isoformat(),
        "clocks": [],
    }
    if policy is None:
        return document
    document["calendar"] = policy.calendar.name
    document["timezone"] = getattr(policy.calendar, "timezone", None)
    recorded = clocks.load_events(session, [conversation.id])[conversation.id]
    steps = [
        (event, clock, True)
        for event, clock in sla.replay_steps(recorded, policy=policy, priority=conversation.priority)
    ]
    current, pending = clocks.timeline(conversation, policy, events=recorded, now=now)
    steps += [(event, clock, False) for event, clock in pending]
    states = {
        state.target: state
        for state in sla.clock_states(current, policy=policy, priority=conversation.priority, now=now)
    }
    lengths = policy.targets_for(conversation.priority)
    for target in sla.TARGETS:
        if target not in lengths:
            continue
        state = states.get(target)
        clock = current.get(target)
        document["clocks"].append(
            {
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
                        "event": event.event,
                        "at": event.at.isoformat(),
                        "reason": event.reason or None,
                        "cycle": after.cycle,
                        "used_seconds": _seconds(after.used_at(policy.calendar, event.at)),
                        "due": _iso(after.due) if after.phase == "running" or event.event != "pause" else None,
                        "met": after.met if event.event == "fulfil" else None,
                        "recorded": is_recorded,
                    }
                    for event, after, is_recorded in steps
                    if event.target == target
                ],
            }
        )
    return document


def recompute_sla(
    desk: Desk, *, only_if_changed: bool = False, agent: str | None = None, on_page: Callable[[Any], None] | None = None
):
    """Apply the configured SLA policies to every open conversation and record their fingerprint;
    the `clocks.RecomputeProgress`. `only_if_changed`: only when the policies differ from the last
    ones applied (None when they do not), what `sync` does at start."""
    from agentdesk.domain import clocks
    from agentdesk.store import db

    def session_factory():
        return db.write_session(desk.engine)

    if only_if_changed:
        return clocks.apply_policy_change(
            session_factory, policies=desk.policies, now=desk.now(), agent=agent or desk.agent, on_page=on_page
        )
    return clocks.recompute(
        session_factory, policies=desk.policies, now=desk.now(), agent=agent or desk.agent, on_page=on_page
    )
