"""Aggregate reads for `agentdesk stats` and `agentdesk report`: counts, groups, sums over the store.

Keyword-only functions taking a Session, like store/queries.py. Each report figure is one
aggregate query (or a count plus one row per percentile); domain/reports.py shapes the rows into
the report's document and holds its definitions.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Float, and_, bindparam, case, cast, func, literal, or_, text
from sqlmodel import Session, col, select

from agentdesk.store.models import Conversation, Message, SlaClockEvent, UTCDateTime

DONE = ("solved", "closed")


def row_count(*, session: Session, model) -> int:
    """How many rows the model's table holds."""
    return session.exec(select(func.count()).select_from(model)).one()


def counts_by(*, session: Session, column, keys: tuple[str, ...]) -> dict[str, int]:
    """Rows per value of `column`: every key in `keys` present (0 if none), others as found."""
    counts = dict.fromkeys(keys, 0)
    for key, count in session.exec(select(column, func.count()).group_by(column)):
        counts[key] = count
    return counts


# --- reports: reply and resolution times --------------------------------------------------------


def _seconds(session: Session, later, earlier):
    """SQL for (later - earlier) in seconds, on SQLite and PostgreSQL."""
    if session.get_bind().dialect.name == "sqlite":
        return (func.julianday(later) - func.julianday(earlier)) * 86400.0
    return func.extract("epoch", later - earlier)


def _seconds_sql(dialect: str, later: str, earlier: str) -> str:
    if dialect == "sqlite":
        return f"(julianday({later}) - julianday({earlier})) * 86400.0"
    return f"EXTRACT(EPOCH FROM ({later} - {earlier}))"


def _ranked(session: Session, durations, shares: Sequence[float]) -> list[Any]:
    """(rank, count, mean, duration) of the nearest-rank rows for these shares of a one-column
    (`d`) selectable, in one pass of the database.

    Picked by ROW_NUMBER over the sorted values, so only the ranked rows come back and the
    (possibly expensive) durations query runs once.
    """
    sub = durations.subquery()
    ranked = select(
        sub.c.d,
        func.row_number().over(order_by=sub.c.d).label("rn"),
        func.count().over().label("n"),
        func.avg(sub.c.d).over().label("mean"),
    ).subquery()
    # ceil(n * percent / 100) in integer arithmetic, on any SQL database.
    ranks = [(ranked.c.n * int(share * 100) + 99) // 100 for share in shares]
    return list(
        session.execute(
            select(ranked.c.rn, ranked.c.n, ranked.c.mean, ranked.c.d).where(
                or_(*(ranked.c.rn == rank for rank in ranks))
            )
        ).all()
    )


def first_reply_ranks(*, session: Session, since: datetime, until: datetime, shares: Sequence[float]) -> list[tuple]:
    """`_ranked` of created -> first reply, for conversations created in [since, until)."""
    c = Conversation
    first = select(_seconds(session, c.first_responded_at, c.created_at).label("d")).where(
        col(c.merged_into_id).is_(None),
        col(c.created_at) >= since,
        col(c.created_at) < until,
        col(c.first_responded_at).is_not(None),
    )
    return _ranked(session, first, shares)


def resolution_ranks(*, session: Session, since: datetime, until: datetime, shares: Sequence[float]) -> list[tuple]:
    """`_ranked` of created -> solved, for conversations solved in [since, until)."""
    c = Conversation
    resolution = select(_seconds(session, c.solved_at, c.created_at).label("d")).where(
        col(c.merged_into_id).is_(None), col(c.status).in_(DONE), col(c.solved_at) >= since, col(c.solved_at) < until
    )
    return _ranked(session, resolution, shares)


def next_reply_ranks(*, session: Session, since: datetime, until: datetime, shares: Sequence[float]) -> list[tuple]:
    """`_ranked` of the waits answered in [since, until): spans between replies, numbered by a
    running count.

    Customer messages after reply k share span k; reply k+1 answers the span's oldest message.
    Span 0 (before the first reply) is the first reply time, reported on its own. Only
    conversations touched since the window began are read (a reply in the window touched them).
    """
    dialect = session.get_bind().dialect.name
    statement = (
        text(f"""
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
        SELECT {_seconds_sql(dialect, "o.at", "w.waiting_from")} AS d
        FROM waits w JOIN ordered o ON o.cid = w.cid AND o.direction = 'outbound' AND o.span = w.span + 1
        WHERE o.at >= :since AND o.at < :until
    """)
        .bindparams(
            bindparam("since", since, type_=UTCDateTime()),
            bindparam("until", until, type_=UTCDateTime()),
        )
        .columns(d=Float)
    )
    return _ranked(session, select(statement.subquery().c.d.label("d")), shares)


# --- reports: SLA compliance ----------------------------------------------------------------------


def _total(condition):
    return func.sum(case((condition, 1), else_=0))


def due_targets_by_policy_and_agent(
    *, session: Session, since: datetime, until: datetime, now: datetime
) -> list[tuple]:
    """(policy, assignee, first reply met, missed, resolution met, missed) of the conversations
    created in [since, until), from their stored due times (running targets past due: missed)."""
    c = Conversation
    done = col(c.status).in_(DONE)
    first_met = and_(col(c.first_responded_at).is_not(None), col(c.first_responded_at) <= col(c.first_response_due))
    first_missed = or_(
        col(c.first_responded_at) > col(c.first_response_due),
        and_(col(c.first_responded_at).is_(None), col(c.first_response_due) < now, ~done),
    )
    resolution_met = and_(done, col(c.solved_at) <= col(c.resolution_due))
    resolution_missed = or_(
        and_(done, col(c.solved_at) > col(c.resolution_due)), and_(~done, col(c.resolution_due) < now)
    )
    return list(
        session.execute(
            select(  # type: ignore[call-overload]  # sqlmodel's select is typed up to four columns
                c.sla_policy,
                c.assignee,
                _total(first_met),
                _total(first_missed),
                _total(resolution_met),
                _total(resolution_missed),
            )
            .where(col(c.merged_into_id).is_(None), col(c.created_at) >= since, col(c.created_at) < until)
            .group_by(c.sla_policy, c.assignee)
        )
    )


def _met_expression(session: Session):
    """SQL truth of the `met` flag in a fulfil event's detail JSON."""
    detail = SlaClockEvent.detail
    if session.get_bind().dialect.name == "sqlite":
        return func.json_extract(detail, "$.met") == 1
    return cast(detail, _jsonb())["met"].astext == "true"


def _jsonb():
    from sqlalchemy.dialects.postgresql import JSONB

    return JSONB


def fulfilments_by_policy_and_agent(*, session: Session, since: datetime, until: datetime) -> list[tuple]:
    """(target, policy, assignee, met, missed) of the next_reply and periodic_update cycles
    fulfilled in [since, until), from the clock events."""
    c, e = Conversation, SlaClockEvent
    met = _met_expression(session)
    return list(
        session.execute(
            select(e.target, c.sla_policy, c.assignee, _total(met), _total(~met))  # type: ignore[call-overload]  # see above
            .join(c, col(c.id) == col(e.conversation_id))
            .where(
                e.event == "fulfil",
                col(e.target).in_(("next_reply", "periodic_update")),
                col(e.at) >= since,
                col(e.at) < until,
            )
            .group_by(e.target, c.sla_policy, c.assignee)
        )
    )


# --- reports: backlog and volume ------------------------------------------------------------------


def _open_filter():
    c = Conversation
    return and_(col(c.merged_into_id).is_(None), col(c.status).not_in(DONE))


def open_by_age(*, session: Session, now: datetime, buckets: Sequence[tuple[str, timedelta | None]]) -> dict[str, int]:
    """Conversations not solved or closed, counted by the label of the age bucket they fall in
    (`buckets`: (label, upper bound), ascending; the last one open-ended)."""
    c = Conversation
    ages = []
    lower = None
    for label, upper in buckets:
        # created_at > now - upper: younger than `upper`
        conditions = []
        if upper is not None:
            conditions.append(col(c.created_at) > now - upper)
        if lower is not None:
            conditions.append(col(c.created_at) <= now - lower)
        ages.append((label, and_(*conditions) if conditions else literal(True)))
        lower = upper
    bucket = case(*[(condition, label) for label, condition in ages[:-1]], else_=ages[-1][0])
    return dict(session.execute(select(bucket, func.count()).where(_open_filter()).group_by(bucket)).all())


def open_states(*, session: Session, now: datetime) -> tuple:
    """Of the conversations not solved or closed: (all, breached, in warning, paused, waiting on us),
    the sums None when there are none."""
    c = Conversation
    return tuple(
        session.execute(
            select(  # type: ignore[call-overload]  # sqlmodel: four columns at most
                func.count(),
                func.sum(case((col(c.queue_due) < now, 1), else_=0)),
                func.sum(case((and_(col(c.warning_at) <= now, col(c.queue_due) >= now), 1), else_=0)),
                func.sum(case((col(c.status).in_(("pending", "on_hold")), 1), else_=0)),
                func.sum(
                    case((and_(col(c.waiting_since).is_not(None), col(c.status).in_(("new", "open"))), 1), else_=0)
                ),
            ).where(_open_filter())
        ).one()
    )


def oldest_open_wait(*, session: Session) -> datetime | None:
    """The oldest `waiting_since` of the new or open conversations."""
    c = Conversation
    return session.execute(
        select(func.min(c.waiting_since)).where(
            _open_filter(), col(c.status).in_(("new", "open")), col(c.waiting_since).is_not(None)
        )
    ).scalar()


def conversations_by_channel(*, session: Session, since: datetime, until: datetime) -> dict[str, int]:
    """Conversations created in [since, until) per channel (merged ones not counted)."""
    c = Conversation
    return dict(
        session.execute(
            select(c.channel, func.count())
            .where(col(c.merged_into_id).is_(None), col(c.created_at) >= since, col(c.created_at) < until)
            .group_by(c.channel)
        ).all()
    )


def messages_by_channel(*, session: Session, since: datetime, until: datetime) -> list[tuple]:
    """(channel, direction, kind, count) of the messages written in [since, until)."""
    c, m = Conversation, Message
    return list(
        session.execute(
            select(c.channel, m.direction, m.kind, func.count())
            .join(c, col(c.id) == col(m.conversation_id))
            .where(col(m.at) >= since, col(m.at) < until)
            .group_by(c.channel, m.direction, m.kind)
        )
    )
