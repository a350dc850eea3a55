"""The database layer's import, once per process, for front ends that start several threads."""

from __future__ import annotations

import threading

_database_layer = threading.Lock()
_database_layer_loaded = threading.Event()


def load_database_layer() -> None:
    """Import the database layer (SQLAlchemy, SQLModel, the models and the actions built on them)
    once, in whichever thread asks first; the others wait here, holding no import lock.

    A front end that starts several threads at once (the TUI, right after its first frame) must call
    this first in each of them: two threads importing SQLAlchemy's modules, which import each other,
    can each hold a module the other waits for, and CPython breaks such a cycle by handing one of
    them a module still half-initialised, an ImportError in that thread."""
    if _database_layer_loaded.is_set():
        return
    with _database_layer:
        if _database_layer_loaded.is_set():
            return
        from agentdesk.app import (  # noqa: F401
            alerts,
            attachments,
            conversations,
            customers,
            macros,
            outbound,
            presence,
            queue,
            spam,
            sync,
            templates,
            undo,
        )
        from agentdesk.domain import replies  # noqa: F401
        from agentdesk.store import db, models, queries  # noqa: F401
        from agentdesk.sync import worker  # noqa: F401

        _database_layer_loaded.set()
