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

from sqlalchemy import Float, and_, bindparam, case, cast, func, literal, or_, text
from sqlmodel import Session, col, select

from agentdesk.store.models import Conversation, Message, SlaClockEvent, UTCDateTime

DONE = ("solved", "closed")
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


def _seconds(session: Session, later, earlier):
    """SQL for (later - earlier) in seconds, on SQLite and PostgreSQL."""
    if session.get_bind().dialect.name == "sqlite":
        return (func.julianday(later) - func.julianday(earlier)) * 86400.0
    return func.extract("epoch", later - earlier)


def _seconds_sql(dialect: str, later: str, earlier: str) -> str:
    if dialect == "sqlite":
        return f"(julianday({later}) - julianday({earlier})) * 86400.0"
    return f"EXTRACT(EPOCH FROM ({later} - {earlier}))"


def _distribution(session: Session, durations) -> dict[str, Any]:
    """Count, mean, median and p90 of a one-column (`d`) selectable in one pass of the database.

    Nearest-rank percentiles picked by ROW_NUMBER over the sorted values, so only the ranked
    rows come back and the (possibly expensive) durations query runs once.
    """
    sub = durations.subquery()
    ranked = select(
        sub.c.d,
        func.row_number().over(order_by=sub.c.d).label("rn"),
        func.count().over().label("n"),
        func.avg(sub.c.d).over().label("mean"),
    ).subquery()
    # ceil(n * percent / 100) in integer arithmetic, on any SQL database.
    ranks = {name: (ranked.c.n * int(share * 100) + 99) // 100 for name, share in PERCENTILES}
    rows = session.execute(
        select(ranked.c.rn, ranked.c.n, ranked.c.mean, ranked.c.d).where(or_(*(ranked.c.rn == rank for rank in ranks.values())))
    ).all()
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
    c = Conversation
    live = col(c.merged_into_id).is_(None)
    first = select(_seconds(session, c.first_responded_at, c.created_at).label("d")).where(
        live, col(c.created_at) >= window.since, col(c.created_at) < window.until,
        col(c.first_responded_at).is_not(None))
    resolution = select(_seconds(session, c.solved_at, c.created_at).label("d")).where(
        live, col(c.status).in_(DONE), col(c.solved_at) >= window.since, col(c.solved_at) < window.until)
    return {
        "first_reply": _distribution(session, first),
        "next_reply": _distribution(session, _next_reply_durations(session, window)),
        "resolution": _distribution(session, resolution),
    }


def _next_reply_durations(session: Session, window: Window):
    """Waits answered in the window: spans between replies, numbered by a running count.

    Customer messages after reply k share span k; reply k+1 answers the span's oldest message.
    Span 0 (before the first reply) is the first reply time, reported on its own. Only
    conversations touched since the window began are read (a reply in the window touched them).
    """
    dialect = session.get_bind().dialect.name
    statement = text(f"""
        WITH ordered AS (
            SELECT m.conversation_id AS cid, m.at AS at, m.direction AS direction,
                   SUM(CASE WHEN m.direction = 'outbound' THEN 1 ELSE 0 END) OVER (
                       PARTITION BY m.conversation_id ORDER BY m.at, m.id ROWS UNBOUNDED PRECEDING) AS span
            FROM message m
            WHERE m.kind = 'message' AND m.direction IN ('inbound', 'outbound')
              AND m.conversation_id IN (
                  SELECT id FROM conversation WHERE updated_at >= :since AND created_at < :until)
        ),
        waits AS (
            SELECT cid, span, MIN(at) AS waiting_from FROM ordered
            WHERE direction = 'inbound' AND span >= 1 GROUP BY cid, span
        )
        SELECT {_seconds_sql(dialect, 'o.at', 'w.waiting_from')} AS d
        FROM waits w JOIN ordered o ON o.cid = w.cid AND o.direction = 'outbound' AND o.span = w.span + 1
        WHERE o.at >= :since AND o.at < :until
    """).bindparams(
        bindparam("since", window.since, type_=UTCDateTime()), bindparam("until", window.until, type_=UTCDateTime()),
    ).columns(d=Float)
    return select(statement.subquery().c.d.label("d"))


def _percent(met: int, missed: int) -> float | None:
    total = met + missed
    return round(100.0 * met / total, 1) if total else None


def _cell(met: int, missed: int) -> dict[str, Any]:
    return {"met": met, "missed": missed, "percent": _percent(met, missed)}


def _met_expression(session: Session):
    """SQL truth of the `met` flag in a fulfil event's detail JSON."""
    detail = SlaClockEvent.detail
    if session.get_bind().dialect.name == "sqlite":
        return func.json_extract(detail, "$.met") == 1
    return cast(detail, _jsonb())["met"].astext == "true"


def _jsonb():
    from sqlalchemy.dialects.postgresql import JSONB

    return JSONB


def compliance(session: Session, window: Window, *, now: datetime) -> dict[str, Any]:
    """met/missed per target, overall and per policy and per agent."""
    c = Conversation
    done = col(c.status).in_(DONE)
    counts: dict[tuple[str, str | None, str | None], list[int]] = defaultdict(lambda: [0, 0])

    def add(target: str, policy: str | None, agent: str | None, met: int, missed: int) -> None:
        cell = counts[(target, policy or None, agent)]
        cell[0] += int(met or 0)
        cell[1] += int(missed or 0)

    first_met = and_(col(c.first_responded_at).is_not(None), col(c.first_responded_at) <= col(c.first_response_due))
    first_missed = or_(col(c.first_responded_at) > col(c.first_response_due),
                       and_(col(c.first_responded_at).is_(None), col(c.first_response_due) < now, ~done))
    resolution_met = and_(done, col(c.solved_at) <= col(c.resolution_due))
    resolution_missed = or_(and_(done, col(c.solved_at) > col(c.resolution_due)),
                            and_(~done, col(c.resolution_due) < now))
    total = lambda condition: func.sum(case((condition, 1), else_=0))  # noqa: E731
    rows = session.execute(
        select(c.sla_policy, c.assignee, total(first_met), total(first_missed), total(resolution_met),
               total(resolution_missed))
        .where(col(c.merged_into_id).is_(None), col(c.created_at) >= window.since, col(c.created_at) < window.until)
        .group_by(c.sla_policy, c.assignee)
    )
    for policy, agent, f_met, f_missed, r_met, r_missed in rows:
        add("first_reply", policy, agent, f_met, f_missed)
        add("resolution", policy, agent, r_met, r_missed)

    e = SlaClockEvent
    met = _met_expression(session)
    rows = session.execute(
        select(e.target, c.sla_policy, c.assignee, total(met), total(~met))
        .join(c, col(c.id) == col(e.conversation_id))
        .where(e.event == "fulfil", col(e.target).in_(("next_reply", "periodic_update")),
               col(e.at) >= window.since, col(e.at) < window.until)
        .group_by(e.target, c.sla_policy, c.assignee)
    )
    for target, policy, agent, f_met, f_missed in rows:
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
    c = Conversation
    ages = []
    lower = None
    for label, upper in AGE_BUCKETS:
        # created_at > now - upper: younger than `upper`
        conditions = []
        if upper is not None:
            conditions.append(col(c.created_at) > now - upper)
        if lower is not None:
            conditions.append(col(c.created_at) <= now - lower)
        ages.append((label, and_(*conditions) if conditions else literal(True)))
        lower = upper
    bucket = case(*[(condition, label) for label, condition in ages[:-1]], else_=ages[-1][0])
    open_filter = and_(col(c.merged_into_id).is_(None), col(c.status).not_in(DONE))
    counts = dict(session.execute(select(bucket, func.count()).where(open_filter).group_by(bucket)).all())
    states = session.execute(select(
        func.count(),
        func.sum(case((col(c.queue_due) < now, 1), else_=0)),
        func.sum(case((and_(col(c.warning_at) <= now, col(c.queue_due) >= now), 1), else_=0)),
        func.sum(case((col(c.status).in_(("pending", "on_hold")), 1), else_=0)),
        func.sum(case((and_(col(c.waiting_since).is_not(None), col(c.status).in_(("new", "open"))), 1), else_=0)),
    ).where(open_filter)).one()
    total, breached, warning, paused, waiting = states
    oldest_wait = session.execute(select(func.min(c.waiting_since)).where(
        open_filter, col(c.status).in_(("new", "open")), col(c.waiting_since).is_not(None))).scalar()
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
    c, m = Conversation, Message
    conversations = dict(session.execute(
        select(c.channel, func.count())
        .where(col(c.merged_into_id).is_(None), col(c.created_at) >= window.since, col(c.created_at) < window.until)
        .group_by(c.channel)
    ).all())
    messages: dict[str, dict[str, int]] = defaultdict(lambda: {"inbound": 0, "outbound": 0, "note": 0, "receipt": 0,
                                                               "automatic_inbound": 0})
    rows = session.execute(
        select(c.channel, m.direction, m.kind, func.count())
        .join(c, col(c.id) == col(m.conversation_id))
        .where(col(m.at) >= window.since, col(m.at) < window.until)
        .group_by(c.channel, m.direction, m.kind)
    )
    for channel, direction, kind, count in rows:
        cell = messages[channel]
        if kind == "receipt":
            cell["receipt"] += count
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
    }
