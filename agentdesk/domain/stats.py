"""Counts for `agentdesk stats` (the JSON shape is part of the CLI contract)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func
from sqlmodel import Session, select

from agentdesk.config import Settings
from agentdesk.domain.documents import iso
from agentdesk.store import queries
from agentdesk.store.models import Conversation, Message, Outbox, SyncState

DIRECTIONS = ("inbound", "outbound", "note")
KINDS = ("message", "auto_reply", "bounce", "receipt")
OUTBOX_STATES = ("queued", "sent", "failed")


def _grouped(session: Session, column, keys: tuple[str, ...]) -> dict[str, int]:
    counts = dict.fromkeys(keys, 0)
    for key, count in session.exec(select(column, func.count()).group_by(column)):
        counts[key] = count
    return counts


def _count(session: Session, model) -> int:
    return session.exec(select(func.count()).select_from(model)).one()


def collect(session: Session, settings: Settings, *, spool_rejected: int) -> dict[str, Any]:
    """`spool_rejected`: the files in every spool's rejected/, counted by whoever reads the spools."""
    sources: dict[str, dict[str, Any]] = {
        source.name: {"last_sync": None, "error": None} for source in [*settings.mailbox, *settings.spool]
    }
    for state in session.exec(select(SyncState)):
        entry = sources.setdefault(state.source, {"last_sync": None, "error": None})
        last = iso(state.last_sync_at)
        if last and (entry["last_sync"] is None or last > entry["last_sync"]):
            entry["last_sync"] = last
        if state.last_error:
            entry["error"] = state.last_error
    customers, identities = queries.customer_counts(session=session)
    return {
        "conversations": _count(session, Conversation),
        "customers": customers,  # the desk's mail-system customer is not one
        "identities": identities,
        "messages": _grouped(session, Message.direction, DIRECTIONS),
        "kinds": _grouped(session, Message.kind, KINDS),
        "outbox": _grouped(session, Outbox.state, OUTBOX_STATES),
        "spool_rejected": spool_rejected,
        "sources": sources,
    }
