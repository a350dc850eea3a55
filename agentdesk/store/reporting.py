"""Aggregate reads for `agentdesk stats` and the reports: counts, groups, sums over the store."""

from __future__ import annotations

from sqlalchemy import func
from sqlmodel import Session, select


def row_count(*, session: Session, model) -> int:
    """How many rows the model's table holds."""
    return session.exec(select(func.count()).select_from(model)).one()


def counts_by(*, session: Session, column, keys: tuple[str, ...]) -> dict[str, int]:
    """Rows per value of `column`: every key in `keys` present (0 if none), others as found."""
    counts = dict.fromkeys(keys, 0)
    for key, count in session.exec(select(column, func.count()).group_by(column)):
        counts[key] = count
    return counts
