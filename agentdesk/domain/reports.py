"""`agentdesk report`: reply and resolution times, SLA compliance, backlog, volume.

Every figure is one aggregate query (or a count plus one row per percentile); nothing loads the
conversations or messages of the window into memory, so a report over 100 000 conversations and
a million messages takes about as long as a few table scans (bench/bench_sla.py).

Definitions (docs/sla.md, "Reports"):
- first reply time: conversation created -> first agent reply, for conversations created in the
  window; resolution time: created -> solved, for conversations solved in the window; next reply
  time: the customer's oldest unanswered message -> the agent reply that answered it, for replies
  in the window, after the first reply. Calendar time, median and 90th percentile (nearest rank).
- compliance per target: met / (met + missed). first_reply and resolution come from the due
  times stored on conversations created in the window (still-running targets past due count as
  missed); next_reply and periodic_update from the clock events (each fulfilled cycle in the
  window). Per policy, per agent (the assignee) and overall.
- backlog: conversations not solved or closed, by age since creation, and how many are
  breached, in warning, paused or waiting on us right now.
- volume: conversations created and messages written in the window, per channel.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlmodel import Session

from agentdesk.domain import csat
from agentdesk.store import reporting

DONE = reporting.DONE
PERCENTILES = (("median", 0.5), ("p90", 0.9))
# Backlog ages: (label, upper bound); the last bucket is open-ended.
AGE_BUCKETS = (
    ("<1h", timedelta(hours=1)),
    ("1-4h", timedelta(hours=4)),
    ("4-24h", timedelta(days=1)),
    ("1-3d", timedelta(days=3)),
    ("3-7d", timedelta(days=7)),
    (">7d", None),
)


@dataclass(frozen=True)
class Window:
    since: datetime
    until: datetime  # exclusive


def _distribution(rows) -> dict[str, Any]:
    """Count, mean, median and p90 from the nearest-rank rows (`reporting.*_ranks`)."""
    result: dict[str, Any] = {"count": 0, "mean_seconds": None}
    result.update({f"{name}_seconds": None for name, _ in PERCENTILES})
    for rn, n, mean, value in rows:
        result["count"], result["mean_seconds"] = n, _round(mean)
        for name, share in PERCENTILES:
            if rn == max(1, math.ceil(share * n)):
                result[f"{name}_seconds"] = _round(value)
    return result


def _round(value) -> int | None:
    return None if value is None else int(round(float(value)))


def reply_times(session: Session, window: Window) -> dict[str, dict[str, Any]]:
    shares = [share for _, share in PERCENTILES]
    span: dict[str, Any] = {"session": session, "since": window.since, "until": window.until, "shares": shares}
    return {
        "first_reply": _distribution(reporting.first_reply_ranks(**span)),
        "next_reply": _distribution(reporting.next_reply_ranks(**span)),
        "resolution": _distribution(reporting.resolution_ranks(**span)),
    }


def _percent(met: int, missed: int) -> float | None:
    total = met + missed
    return round(100.0 * met / total, 1) if total else None


def _cell(met: int, missed: int) -> dict[str, Any]:
    return {"met": met, "missed": missed, "percent": _percent(met, missed)}


def compliance(session: Session, window: Window, *, now: datetime) -> dict[str, Any]:
    """met/missed per target, overall and per policy and per agent."""
    counts: dict[tuple[str, str | None, str | None], list[int]] = defaultdict(lambda: [0, 0])

    def add(target: str, policy: str | None, agent: str | None, met: int, missed: int) -> None:
        cell = counts[(target, policy or None, agent)]
        cell[0] += int(met or 0)
        cell[1] += int(missed or 0)

    rows = reporting.due_targets_by_policy_and_agent(session=session, since=window.since, until=window.until, now=now)
    for policy, agent, f_met, f_missed, r_met, r_missed in rows:
        add("first_reply", policy, agent, f_met, f_missed)
        add("resolution", policy, agent, r_met, r_missed)
    for target, policy, agent, f_met, f_missed in reporting.fulfilments_by_policy_and_agent(
        session=session, since=window.since, until=window.until
    ):
        add(target, policy, agent, f_met, f_missed)

    from agentdesk.domain.sla import TARGETS

    def rollup(key_index: int | None) -> dict:
        grouped: dict[Any, dict[str, list[int]]] = defaultdict(lambda: {t: [0, 0] for t in TARGETS})
        for (target, policy, agent), (m, x) in counts.items():
            key = None if key_index is None else (policy, agent)[key_index]
            grouped[key][target][0] += m
            grouped[key][target][1] += x
        return grouped

    def cells(targets: dict[str, list[int]]) -> dict[str, Any]:
        return {target: _cell(*targets[target]) for target in TARGETS}

    overall = rollup(None).get(None, {t: [0, 0] for t in TARGETS})
    return {
        "targets": cells(overall),
        "policies": [{"policy": key, **cells(value)} for key, value in sorted(rollup(0).items(), key=_name_order)],
        "agents": [{"agent": key, **cells(value)} for key, value in sorted(rollup(1).items(), key=_name_order)],
    }


def _name_order(item) -> tuple:
    key = item[0]
    return (key is None, key or "")


def backlog(session: Session, *, now: datetime) -> dict[str, Any]:
    counts = reporting.open_by_age(session=session, now=now, buckets=AGE_BUCKETS)
    total, breached, warning, paused, waiting = reporting.open_states(session=session, now=now)
    oldest_wait = reporting.oldest_open_wait(session=session)
    longest = int((now - oldest_wait).total_seconds()) if oldest_wait is not None else None
    return {
        "open": total,
        "by_age": [{"age": label, "count": counts.get(label, 0)} for label, _ in AGE_BUCKETS],
        "breached": int(breached or 0),
        "warning": int(warning or 0),
        "paused": int(paused or 0),
        "waiting_on_us": int(waiting or 0),
        "longest_wait_seconds": longest,
    }


def volume(session: Session, window: Window) -> dict[str, Any]:
    conversations = reporting.conversations_by_channel(session=session, since=window.since, until=window.until)
    messages: dict[str, dict[str, int]] = defaultdict(
        lambda: {"inbound": 0, "outbound": 0, "note": 0, "receipt": 0, "survey": 0, "automatic_inbound": 0}
    )
    rows = reporting.messages_by_channel(session=session, since=window.since, until=window.until)
    for channel, direction, kind, count in rows:
        cell = messages[channel]
        if kind in ("receipt", "survey"):
            cell[kind] += count
        elif direction == "inbound" and kind != "message":
            cell["automatic_inbound"] += count  # auto-replies and bounces
        elif direction in cell:
            cell[direction] += count
    channels = sorted(set(conversations) | set(messages))
    return {
        "channels": [
            {"channel": channel, "conversations": conversations.get(channel, 0), "messages": dict(messages[channel])}
            for channel in channels
        ],
    }


def report(session: Session, *, window: Window, now: datetime) -> dict[str, Any]:
    """The whole report as the JSON document of `agentdesk report --json`."""
    return {
        "since": window.since.isoformat(),
        "until": window.until.isoformat(),
        "generated_at": now.isoformat(),
        "reply_times": reply_times(session, window),
        "compliance": compliance(session, window, now=now),
        "backlog": backlog(session, now=now),
        "volume": volume(session, window),
        "csat": csat.report(session, since=window.since, until=window.until),
        "knowledge_base": knowledge_base_usage(session, window),
    }


def knowledge_base_usage(session: Session, window: Window) -> dict[str, Any]:
    """The articles sent in the window: how often, and how often the conversation was then solved
    without the customer writing again."""
    from agentdesk.domain import knowledge_base

    return {
        "articles": [
            {
                "slug": use.slug,
                "title": use.title,
                "sent": use.sent,
                "conversations": use.conversations,
                "solved_without_reply": use.solved_without_reply,
                "self_service_rate": round(use.self_service_rate, 4) if use.self_service_rate is not None else None,
            }
            for use in knowledge_base.usage(session, since=window.since, until=window.until)
        ]
    }
