"""Reply templates: the list, suggestions for a thread, rendering with its values, saving new ones."""

from __future__ import annotations

from pathlib import Path

from agentdesk.app.conversations import Thread
from agentdesk.app.desk import Desk
from agentdesk.domain import templates as template_service
from agentdesk.domain.templates import Rendered, Template, unfilled

__all__ = ["Rendered", "Template", "all_templates", "find", "render", "save", "suggestions", "unfilled", "values"]


def all_templates(desk: Desk, *, reload: bool = False) -> list[Template]:
    """The templates directory's templates, read again when a file was added, changed or removed
    since the last read (a TUI open all day sees a colleague's new template without restarting),
    after `save`, or with `reload`."""
    stamp = _directory_stamp(desk.settings.templates_dir)
    if desk.loaded_templates is None or reload or stamp != getattr(desk, "templates_stamp", None):
        desk.loaded_templates = template_service.load_all(desk.settings.templates_dir)
        desk.templates_stamp = stamp
    return desk.loaded_templates


def _directory_stamp(directory: Path) -> tuple:
    """Each template file's name, size and modification time: cheap to read, changes with any edit."""
    import os

    try:
        with os.scandir(directory) as entries:
            return tuple(
                sorted(
                    (e.name, e.stat().st_size, e.stat().st_mtime_ns)
                    for e in entries
                    if e.name.endswith(".md") and e.is_file()
                )
            )
    except OSError:
        return ()


def find(desk: Desk, query: str) -> list[Template]:
    """Templates matching what the agent typed, by shortcut or name, best first."""
    return template_service.find(all_templates(desk), query)


def suggestions(desk: Desk, thread: Thread, limit: int = 3) -> list[tuple[Template, float]]:
    # The customer's words say what the conversation is about; the newest weigh as much as the first.
    text = " ".join([thread.conversation.subject] + [i.body for i in thread.items if i.kind == "inbound"])
    # The automatic messages' templates (receipts, satisfaction surveys) are no reply to suggest.
    automatic = {
        name
        for channel in (*desk.settings.mailbox, *desk.settings.spool)
        for name in (getattr(channel, "receipt", ""), getattr(channel, "csat", ""))
        if name
    }
    candidates = [t for t in all_templates(desk) if t.name not in automatic]
    return template_service.suggest(candidates, text, limit=limit)


def values(desk: Desk, thread: Thread) -> dict[str, str]:
    return template_service.values_for(
        thread.conversation, thread.customer, agent_name=desk.agent_name, agent_signature=desk.agent_signature
    )


def render(desk: Desk, template: Template, thread: Thread) -> Rendered:
    return template_service.render(template, values(desk, thread))


def save(desk: Desk, name: str, body: str, description: str = "", shortcut: str = "") -> Path:
    path = template_service.save(
        desk.settings.templates_dir, Template(name=name, body=body, description=description, shortcut=shortcut)
    )
    desk.loaded_templates = None
    return path
