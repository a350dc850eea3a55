"""The queue's built-in views (name, label, what each shows), for the front ends to name them.

Without the database layer: the command line lists the views in its help, which every command
builds, so this stays plain data (`store.views`); reading a view is `queue`'s work.
"""

from __future__ import annotations

from agentdesk.store.views import VIEWS, View

__all__ = ["VIEWS", "View"]
