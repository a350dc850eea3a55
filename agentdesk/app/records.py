"""What the database holds, read out whole: counts, the audit log, every conversation (export).

The audit log and the export are generators that read page by page, so a year of either never
sits in memory."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

from agentdesk.app.desk import Desk


def stats(desk: Desk) -> dict[str, Any]:
    """The `stats --json` document."""
    from agentdesk.channels.webhook.spool import rejected_files
    from agentdesk.domain import stats as counting

    settings = desk.settings
    rejected = sum(len(rejected_files(settings.spool_path(spool))) for spool in settings.spool)
    with desk.read() as session:
        return counting.collect(session, settings, spool_rejected=rejected)


def audit_events(desk: Desk, *, since: datetime | None = None, ref: str | None = None) -> Iterator[dict[str, Any]]:
    """The audit log, oldest first, as `audit --json` documents; `ref`: one conversation's.

    A malformed `ref` is refused now, before the caller starts writing out events."""
    from agentdesk.store import queries

    return _audit_events(desk, since, queries.parse_ref(ref) if ref else None)


def _audit_events(desk: Desk, since: datetime | None, conversation_id: int | None) -> Iterator[dict[str, Any]]:
    from agentdesk.domain import audit
    from agentdesk.store import queries
    from agentdesk.store.models import ref_of

    after_id = 0
    with desk.read() as session:
        while True:
            page = queries.events(session=session, since=since, conversation_id=conversation_id, after_id=after_id)
            if not page:
                break
            for event in page:
                yield audit.event_document(event, ref_of=ref_of)
            after_id = page[-1].id or after_id  # stored rows: always an id


def export(desk: Desk, *, since: datetime | None = None) -> Iterator[dict[str, Any]]:
    """Every conversation (updated since `since`) as its `show --json` document."""
    from agentdesk.domain import documents
    from agentdesk.store import queries

    after_id = 0
    with desk.read() as session:
        while True:
            page = queries.conversations_since(session=session, since=since, after_id=after_id)
            if not page:
                break
            yield from documents.documents(session, page, policies=desk.policies, now=desk.now(), full=True)
            after_id = page[-1].id or after_id  # stored rows: always an id
            session.expunge_all()  # keep memory flat over a long export
