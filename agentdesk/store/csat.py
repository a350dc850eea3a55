"""Satisfaction surveys: the SQL behind sending them, recording answers and the CSAT report."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlmodel import Session, col, select

from agentdesk.store.models import Conversation, SatisfactionSurvey

_DONE = ("solved", "closed")


def due_conversations(
    *,
    session: Session,
    source: str,
    solved_after: datetime,
    solved_before: datetime,
    limit: int = 200,
    for_update: bool = False,
) -> list[Conversation]:
    """Conversations of `source` solved in (solved_after, solved_before], still solved or closed,
    not merged away, and never surveyed (nor decided against).

    `for_update`: for the survey that writes to them; locked as `conversation_rows.by_id`
    locks them, so one an agent reopens meanwhile is read reopened (and left out), never
    written back from the row before.
    """
    surveyed = select(SatisfactionSurvey.conversation_id).where(SatisfactionSurvey.conversation_id == Conversation.id)
    statement = (
        select(Conversation)
        .where(
            Conversation.source == source,
            col(Conversation.status).in_(_DONE),
            col(Conversation.solved_at) > solved_after,
            col(Conversation.solved_at) <= solved_before,
            col(Conversation.merged_into_id).is_(None),
            ~surveyed.exists(),
        )
        .order_by(col(Conversation.solved_at), col(Conversation.id))
        .limit(limit)
    )
    if for_update:
        statement = statement.with_for_update(key_share=True).execution_options(populate_existing=True)
    return list(session.exec(statement).all())


def survey_of(*, session: Session, conversation_id: int) -> SatisfactionSurvey | None:
    return session.get(SatisfactionSurvey, conversation_id)


def add(*, session: Session, survey: SatisfactionSurvey) -> None:
    session.add(survey)


def ratings_of_customer(
    *, session: Session, customer_id: int, limit: int = 50
) -> list[tuple[int, str, SatisfactionSurvey]]:
    """(conversation id, subject, survey) of a customer's answered surveys, newest first."""
    statement = (
        select(Conversation.id, Conversation.subject, SatisfactionSurvey)
        .join(SatisfactionSurvey, col(SatisfactionSurvey.conversation_id) == col(Conversation.id))
        .where(Conversation.customer_id == customer_id, col(SatisfactionSurvey.rating).is_not(None))
        .order_by(col(SatisfactionSurvey.answered_at).desc())
        .limit(limit)
    )
    return [
        (conversation_id, subject, survey)
        for conversation_id, subject, survey in session.exec(statement).all()
        if conversation_id is not None
    ]  # a primary key: always


def surveys_in(
    *, session: Session, since: datetime, until: datetime
) -> list[tuple[datetime, int | None, str, str, str]]:
    """(sent_at, rating or None, agent, SLA policy, channel) of every survey sent in [since, until)."""
    statement = (
        select(  # type: ignore[call-overload]  # sqlmodel's select is typed up to four columns
            SatisfactionSurvey.sent_at,
            SatisfactionSurvey.rating,
            SatisfactionSurvey.agent,
            Conversation.sla_policy,
            Conversation.channel,
        )
        .join(Conversation, Conversation.id == SatisfactionSurvey.conversation_id)
        .where(
            SatisfactionSurvey.skipped == "",
            col(SatisfactionSurvey.message_id).is_not(None),
            SatisfactionSurvey.sent_at >= since,
            SatisfactionSurvey.sent_at < until,
        )
    )
    return [tuple(row) for row in session.exec(statement).all()]


def surveys_of(*, session: Session, conversation_ids: Sequence[int]) -> dict[int, SatisfactionSurvey]:
    if not conversation_ids:
        return {}
    statement = select(SatisfactionSurvey).where(col(SatisfactionSurvey.conversation_id).in_(list(conversation_ids)))
    return {survey.conversation_id: survey for survey in session.exec(statement).all()}
