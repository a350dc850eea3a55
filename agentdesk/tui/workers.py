"""`work` for the TUI: Textual's decorator, except that a thread worker first waits for the
database layer (`app.layer.load_database_layer`).

The first frame is drawn before SQLAlchemy is imported; right after it, several workers start at
once (the loader, the counts, the database watcher, alerts, presence) and each would import the
ORM on its own. Imported from several threads at once, its modules can reach one of them half
initialised. Every thread worker of the TUI comes through here, so the import happens once, in
whichever starts first, and the rest wait for it.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from textual import work as textual_work

from agentdesk.app.layer import load_database_layer


def work(method: Callable | None = None, **options: Any) -> Any:
    """`textual.work`, with the database layer loaded before a thread worker's body runs."""
    if not options.get("thread"):
        return textual_work(method, **options) if method is not None else textual_work(**options)

    def decorate(function: Callable) -> Any:
        @wraps(function)
        def after_the_database_layer(*args: Any, **kwargs: Any) -> Any:
            load_database_layer()
            return function(*args, **kwargs)

        return textual_work(after_the_database_layer, **options)

    return decorate(method) if method is not None else decorate
