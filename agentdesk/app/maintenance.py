"""Setting up and moving the database: create or upgrade it, copy it to another database."""

from __future__ import annotations

from collections.abc import Callable

from agentdesk import config
from agentdesk.app.desk import Desk

Progress = Callable[[int, int, str], None]


def prepare(settings: config.Settings) -> str:
    """Create or upgrade the database and the templates directory; the database, described.
    Setting up is the one time a missing directory for the database is made, wherever it is."""
    from agentdesk.store import db

    db.open_database(settings.database_url, create_directory=True)
    settings.templates_dir.mkdir(parents=True, exist_ok=True)
    return db.describe_url(settings.database_url)


def copy_database(desk: Desk, to_url: str, *, progress: Progress | None = None) -> tuple[int, str]:
    """Copy every table to the (empty) database at `to_url`, checking each table's row count;
    (rows copied, the target described)."""
    from agentdesk.store import copy, db

    report = copy.copy_database(desk.engine, to_url, progress=progress)
    return sum(report.rows.values()), db.describe_url(to_url)
