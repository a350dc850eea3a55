"""Counts for `agentdesk stats` (the JSON shape is part of the CLI contract)."""

from __future__ import annotations

from typing import Any

from sqlmodel import Session

from agentdesk.config import Settings
from agentdesk.domain.documents import iso
from agentdesk.store import queries, reporting
from agentdesk.store.models import Conversation, Message, Outbox

DIRECTIONS = ("inbound", "outbound", "note")
KINDS = ("message", "auto_reply", "bounce", "receipt", "survey")
OUTBOX_STATES = ("queued", "sent", "failed")


def collect(session: Session, settings: Settings, *, spool_rejected: int) -> dict[str, Any]:
    """`spool_rejected`: the files in every spool's rejected/, counted by whoever reads the spools."""
    sources: dict[str, dict[str, Any]] = {
        name: {"last_sync": None, "error": None}
        for name in [*(mailbox.name for mailbox in settings.mailbox), *(spool.name for spool in settings.spool)]
    }
    for state in queries.sync_states(session=session):
        entry = sources.setdefault(state.source, {"last_sync": None, "error": None})
        last = iso(state.last_sync_at)
        if last and (entry["last_sync"] is None or last > entry["last_sync"]):
            entry["last_sync"] = last
        if state.last_error:
            entry["error"] = state.last_error
    customers, identities = queries.customer_counts(session=session)
    return {
        "conversations": reporting.row_count(session=session, model=Conversation),
        "customers": customers,  # the desk's mail-system customer is not one
        "identities": identities,
        "messages": reporting.counts_by(session=session, column=Message.direction, keys=DIRECTIONS),
        "kinds": reporting.counts_by(session=session, column=Message.kind, keys=KINDS),
        "outbox": reporting.counts_by(session=session, column=Outbox.state, keys=OUTBOX_STATES),
        "spool_rejected": spool_rejected,
        "sources": sources,
    }
