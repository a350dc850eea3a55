"""The files a message will carry, as the reply composer and the new-conversation screen list them:
each with its size; `del` removes the highlighted one; the same file (name and bytes) twice is refused."""

from __future__ import annotations

from textual.binding import Binding
from textual.message import Message
from textual.widgets import OptionList
from textual.widgets.option_list import Option

from agentdesk.app.outbound import OutgoingFile
from agentdesk.tui import format
from agentdesk.tui.widgets import shown_line


class AttachedFiles(OptionList):
    DEFAULT_CSS = """
    AttachedFiles { height: auto; max-height: 4; display: none; }
    AttachedFiles.-some { display: block; }
    """
    BINDINGS = [Binding("delete,backspace", "remove_file", "Remove file", show=False)]

    class Changed(Message):
        """The agent added or removed a file."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.files: list[OutgoingFile] = []

    def add(self, outgoing: OutgoingFile, *, by_agent: bool = True) -> None:
        """List `outgoing` (`by_agent`: the agent attached it, not a draft being restored)."""
        if any(f.name == outgoing.name and f.data == outgoing.data for f in self.files):
            self.notify(f"{shown_line(outgoing.name)} is attached already", severity="warning")
            return
        self.files.append(outgoing)
        self._show()
        if by_agent:
            self.post_message(self.Changed())

    def action_remove_file(self) -> None:
        if self.highlighted is None or not self.files:
            return
        removed = self.files.pop(self.highlighted)
        self._show()
        self.post_message(self.Changed())
        self.notify(f"removed {shown_line(removed.name)}")
        if not self.files:
            self.screen.focus_next()

    def _show(self) -> None:
        highlighted = self.highlighted
        self.clear_options()
        self.add_options(
            [Option(f"📎 {shown_line(f.name)}  ({format.size(len(f.data))})  — del removes") for f in self.files]
        )
        self.set_class(bool(self.files), "-some")
        if self.files:
            self.highlighted = min(highlighted or 0, len(self.files) - 1)
