"""A screen that writes a message with files (the reply composer, a new conversation): `ctrl+o` asks
for a path (with completion) and lists the file read from it in the screen's `AttachedFiles`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual.screen import Screen

from agentdesk.tui.widgets import shown_line
from agentdesk.tui.widgets.attached_files import AttachedFiles
from agentdesk.tui.workers import work

if TYPE_CHECKING:
    from agentdesk.app.desk import Desk


class AttachingScreen(Screen):
    desk: Desk

    def action_attach(self) -> None:
        from agentdesk.tui.screens.dialogs import AttachScreen

        def chosen(path: str | None) -> None:
            if path:
                self._read_file(path)

        self.app.push_screen(AttachScreen(), chosen)

    @work(thread=True, group="attach")
    def _read_file(self, path: str) -> None:
        from agentdesk.app import outbound

        try:
            (found,) = outbound.read_files([path], limit=outbound.largest_accepted(self.desk))
        except Exception as error:
            self.app.call_from_thread(self.notify, shown_line(str(error)), severity="error", timeout=8)
            return
        self.app.call_from_thread(self.query_one(AttachedFiles).add, found)
