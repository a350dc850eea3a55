"""A source's checkpoints (`SyncState`): per source and folder, how far its import got, when it
last synced and its last error.

Keyword-only functions taking a Session, like store/queries.py (whose `sync_states` lists them all
for `stats`).
"""

from __future__ import annotations

from sqlalchemy import update
from sqlmodel import Session, col, select

from agentdesk.store.models import SyncState


def sync_state(*, session: Session, source: str, folder: str) -> SyncState | None:
    """The checkpoint of the source's folder (a spool's is folder ""); None before its first sync."""
    return session.exec(select(SyncState).where(SyncState.source == source, SyncState.folder == folder)).first()


def sync_state_or_new(*, session: Session, source: str, folder: str) -> SyncState:
    """The checkpoint of the source's folder, or a new one (not added to the session yet)."""
    state = sync_state(session=session, source=source, folder=folder)
    return state if state is not None else SyncState(source=source, folder=folder, last_uid=0)


def save_sync_state(*, session: Session, source: str, folder: str, **values) -> None:
    """Write the checkpoint of the source's folder in the caller's transaction: one UPDATE (a big
    sync writes it with every chunk), or the row added when this is the folder's first."""
    updated = session.execute(
        update(SyncState)
        .where(col(SyncState.source) == source, col(SyncState.folder) == folder)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    if updated.rowcount == 0:  # type: ignore[attr-defined]  # an UPDATE's result is a CursorResult
        session.add(SyncState(source=source, folder=folder, **values))
