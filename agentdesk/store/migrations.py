"""Schema revisions, oldest first. A database records the revisions it has in `schema_revision`.

Rules: never edit a step that has shipped; add a new one and raise HEAD. A fresh database is built
by `create_fresh` (the models plus what models cannot express, such as full-text indexes) and is
stamped HEAD, so `create_fresh` must always produce what running every step produces;
tests/unit/test_migrations.py upgrades a database written at revision 1 and compares the result
with a fresh one.
"""

from __future__ import annotations

from sqlalchemy.engine import Connection
from sqlmodel import SQLModel

from agentdesk.store import search


def create_fresh(connection: Connection) -> None:
    SQLModel.metadata.create_all(connection)
    search.install(connection)


def revision_2_full_text_search(connection: Connection) -> None:
    """Full-text indexes over message subjects and bodies and customer names and addresses."""
    search.install(connection)


STEPS = {
    2: revision_2_full_text_search,
}
HEAD = max(STEPS, default=1)
