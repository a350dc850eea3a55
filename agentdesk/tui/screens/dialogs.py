"""Small modal questions: pick one of a list, or type a line."""

from __future__ import annotations

import asyncio

from textual import events
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.suggester import Suggester
from textual.widgets import Input, Label, OptionList, Static, TextArea
from textual.widgets.option_list import Option


class ChoiceScreen(ModalScreen[str | None]):
    """Pick one value; enter chooses, escape cancels. Values are (id, label) pairs."""

    CSS_PATH = "dialogs.tcss"
    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, title: str, choices: list[tuple[str, str]], *, current: str | None = None) -> None:
        super().__init__()
        self.title_text = title
        self.choices = choices
        self.current = current

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self.title_text, classes="dialog-title")
            options = OptionList(*(Option(label, id=value) for value, label in self.choices), id="choices")
            yield options

    def on_mount(self) -> None:
        options = self.query_one(OptionList)
        for index, (value, _) in enumerate(self.choices):
            if value == self.current:
                options.highlighted = index
        options.focus()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)

    def action_cancel(self) -> None:
        self.dismiss(None)


class PromptScreen(ModalScreen[str | None]):
    """Type one line; enter submits, escape cancels."""

    CSS_PATH = "dialogs.tcss"
    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, title: str, *, hint: str = "", value: str = "") -> None:
        super().__init__()
        self.title_text = title
        self.hint = hint
        self.value = value

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self.title_text, classes="dialog-title")
            yield Input(value=self.value, placeholder=self.hint, id="prompt")
            if self.hint:
                yield Label(self.hint, classes="dialog-hint")

    def on_mount(self) -> None:
        for field in self.query("Input, TextArea"):
            if isinstance(field, (Input, TextArea)):
                field.cursor_blink = getattr(self.app, "CURSOR_BLINK", True)
        self.query_one(Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value)

    def action_cancel(self) -> None:
        self.dismiss(None)


class ChangedScreen(ModalScreen[bool]):
    """The conversation changed while the agent wrote: show what, then send anyway or keep editing."""

    CSS_PATH = "dialogs.tcss"
    BINDINGS = [
        Binding("ctrl+s,enter", "send", "Send anyway", priority=True),
        Binding("escape", "keep", "Keep editing"),
    ]

    def __init__(self, thread, added, *, now) -> None:
        super().__init__()
        self.thread = thread
        self.added = list(added)
        self.now = now

    def compose(self) -> ComposeResult:
        from agentdesk.tui import format

        ref = format.ref(self.thread.conversation.id)
        with Vertical(classes="dialog changed"):
            yield Label(f"{ref} changed while you were writing", classes="dialog-title")
            yield Static(changes_text(self.added, self.now), id="changes", markup=False)
            yield Label("enter / ctrl+s: send anyway · escape: keep editing", classes="dialog-hint")

    def action_send(self) -> None:
        self.dismiss(True)

    def action_keep(self) -> None:
        self.dismiss(False)


def changes_text(items, now):
    """New messages in full (short), events as one line each: what the agent must see before sending."""
    from rich.text import Text

    from agentdesk.tui import format

    out = Text()
    if not items:
        out.append("Its details changed (status, assignment or tags); nothing new was written.", "dim")
        return out
    labels = {"inbound": "◀ {} wrote", "outbound": "▶ {} replied", "note": "✎ note by {}"}
    for item in items[-8:]:
        when = format.local_time(item.at, now)
        if item.kind == "event":
            out.append(f"• {when} {item.author}: {item.body}\n", "dim")
            continue
        out.append(labels.get(item.kind, "{}").format(item.author or "someone") + f"  {when}\n", "bold")
        body = format.split_body(item.body).main.strip()
        lines = body.split("\n")
        out.append("\n".join(lines[:6]) + ("\n…" if len(lines) > 6 else "") + "\n\n")
    out.rstrip()
    return out


class PathSuggester(Suggester):
    """Completes a file path as it is typed (→ or tab accepts): the first entry of its directory
    that starts with what follows the last slash, a directory with its slash. The directory is
    listed off the event loop (a slow or network disk must not freeze the screen)."""

    def __init__(self) -> None:
        super().__init__(use_cache=False, case_sensitive=True)

    async def get_suggestion(self, value: str) -> str | None:
        import asyncio

        return await asyncio.to_thread(complete_path, value)


def complete_path(value: str) -> str | None:
    import os

    if not value:
        return None
    expanded = os.path.expanduser(value)
    directory, _, stem = expanded.rpartition(os.sep)
    directory = directory or ("/" if expanded.startswith(os.sep) else ".")
    try:
        names = sorted(
            entry.name + (os.sep if entry.is_dir() else "")
            for entry in os.scandir(directory)
            if entry.name.startswith(stem) and (stem.startswith(".") or not entry.name.startswith("."))
        )
    except OSError:
        return None
    if not names or names[0] == stem:
        return None
    return value + names[0][len(stem) :]


class PathInput(Input):
    """A path field whose tab completes what is typed at that moment. The suggestion drawn in the
    field comes from a worker and lags the last key, so taking it (as → does) after a quick tab
    completed an older prefix, or nothing. The field handles its keys one at a time: the keys
    after a tab wait for its completion and land after it."""

    async def on_key(self, event: events.Key) -> None:
        if event.key != "tab":
            return
        event.stop()
        event.prevent_default()
        completed = await asyncio.to_thread(complete_path, self.value)
        if completed is not None:
            self.value = completed
            self.cursor_position = len(self.value)


class AttachScreen(ModalScreen[str | None]):
    """Type a file's path to attach it, with completion; enter attaches, escape cancels."""

    CSS_PATH = "dialogs.tcss"
    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, start: str = "") -> None:
        super().__init__()
        self.start = start

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label("Attach a file", classes="dialog-title")
            yield PathInput(
                value=self.start, placeholder="~/Downloads/invoice.pdf", id="attach-path", suggester=PathSuggester()
            )
            yield Label("tab or → completes the path; enter attaches", classes="dialog-hint")

    def on_mount(self) -> None:
        field = self.query_one(Input)
        field.cursor_blink = getattr(self.app, "CURSOR_BLINK", True)
        field.focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.value.strip():
            self.dismiss(event.value.strip())

    def action_cancel(self) -> None:
        self.dismiss(None)
