"""The thread's attachment keys: select the next one, open it (a text file previewed here, any
other handed to the desktop's opener), save it to a directory. The work — reading the bytes,
writing the file, starting the opener — runs in thread workers through `agentdesk.app.attachments`,
the same actions as `agentdesk attachment open|save`.
"""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Label, Static

from agentdesk.tui.screens.main_parts import MainScreenParts
from agentdesk.tui.widgets import shown, shown_line
from agentdesk.tui.workers import work

# `app.attachments` load the ORM: imported where used, like the main screen's actions (see
# screens/main.py), so the first frame is drawn without it.


class TextPreview(ModalScreen[bool]):
    """A text attachment, read here; escape or q closes, o opens it with the opener instead."""

    CSS_PATH = "dialogs.tcss"
    DEFAULT_CSS = """
    TextPreview { align: center middle; background: $background 60%; }
    TextPreview VerticalScroll { height: 1fr; }
    """
    BINDINGS = [Binding("escape,q", "close", "Close"), Binding("o", "open_outside", "Open with opener")]

    def __init__(self, title: str, text: str, number: int) -> None:
        super().__init__()
        self.title_text = title
        self.text = text
        self.number = number

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self.title_text, classes="dialog-title")
            with VerticalScroll():
                yield Static(Text(shown(self.text)), id="preview")
            yield Label("escape closes · o opens it with the opener", classes="dialog-hint")

    def on_mount(self) -> None:
        # Wider and taller than the other dialogs (whose sheet sets .dialog): a file is read here.
        dialog = self.query_one(".dialog")
        dialog.styles.width = "90%"
        dialog.styles.max_width = "90%"
        dialog.styles.height = "85%"
        dialog.styles.max_height = "85%"

    def action_close(self) -> None:
        self.dismiss(False)

    def action_open_outside(self) -> None:
        self.dismiss(True)


class AttachmentDone(Message):
    def __init__(self, text: str, *, error: bool = False) -> None:
        super().__init__()
        self.text = text
        self.error = error


class PreviewReady(Message):
    def __init__(self, title: str, text: str, number: int) -> None:
        super().__init__()
        self.title = title
        self.text = text
        self.number = number


class AttachmentKeys(MainScreenParts):
    """Mixed into the main screen, which has `desk`, `thread` and `thread_view`."""

    def _chosen_attachment(self):
        if self.thread is None:
            self.notify("no conversation selected", severity="warning")
            return None
        listed = self.thread_view.attachments()
        if not listed:
            self.notify("this conversation has no attachments", severity="warning")
            return None
        number = self.thread_view.selected_attachment
        chosen = next((a for a in listed if a.number == number), None)
        if chosen is None:
            chosen = listed[0]
            self.thread_view.select_attachment(chosen.number)
        return chosen

    def action_next_attachment(self) -> None:
        if self.thread is None:
            return
        listed = self.thread_view.attachments()
        if not listed:
            self.notify("this conversation has no attachments", severity="warning")
            return
        numbers = [a.number for a in listed]
        current = self.thread_view.selected_attachment
        following = next((n for n in numbers if n > current), numbers[0])
        self.thread_view.select_attachment(following)
        chosen = listed[numbers.index(following)]
        self.notify(f"attachment {chosen.number}: {shown_line(chosen.filename)} — v opens, W saves", timeout=3)

    def action_open_attachment(self) -> None:
        from agentdesk.app import attachments as attachment_actions

        chosen = self._chosen_attachment()
        if chosen is None:
            return
        if not chosen.available:
            self.notify(f"{shown_line(chosen.filename)}: {chosen.status}", severity="warning", timeout=6)
            return
        assert self.thread is not None  # _chosen_attachment found one
        if attachment_actions.is_text(chosen):
            self._preview(self.thread.conversation.id, chosen.number)
        else:
            self._open_outside(self.thread.conversation.id, chosen.number)

    def action_save_attachment(self) -> None:
        from agentdesk.app import attachments as attachment_actions
        from agentdesk.tui.screens.dialogs import PromptScreen

        chosen = self._chosen_attachment()
        if chosen is None:
            return
        if not chosen.available:
            self.notify(f"{shown_line(chosen.filename)}: {chosen.status}", severity="warning", timeout=6)
            return
        assert self.thread is not None  # _chosen_attachment found one
        conversation_id = self.thread.conversation.id
        default = str(attachment_actions.default_save_dir(self.desk))

        def chosen_dir(value: str | None) -> None:
            if value is not None:
                self._save(conversation_id, chosen.number, value.strip() or default)

        self.app.push_screen(
            PromptScreen(
                f"Save {shown_line(chosen.filename)} to directory",
                value=default,
                hint="enter saves (never over a file), escape cancels",
            ),
            chosen_dir,
        )

    @work(thread=True, group="attachments")
    def _save(self, conversation_id: int, number: int, directory: str) -> None:
        from agentdesk.app import attachments as attachment_actions

        try:
            item, path = attachment_actions.save(self.desk, conversation_id, number, directory)
        except Exception as error:
            self.post_message(AttachmentDone(str(error), error=True))
            return
        self.post_message(AttachmentDone(f"saved {item.filename} to {path}"))

    @work(thread=True, group="attachments")
    def _open_outside(self, conversation_id: int, number: int) -> None:
        from agentdesk.app import attachments as attachment_actions

        try:
            item, path = attachment_actions.open_attachment(self.desk, conversation_id, number)
        except Exception as error:
            self.post_message(AttachmentDone(str(error), error=True))
            return
        self.post_message(AttachmentDone(f"opened {item.filename}"))

    @work(thread=True, group="attachments")
    def _preview(self, conversation_id: int, number: int) -> None:
        from agentdesk.app import attachments as attachment_actions

        try:
            found = attachment_actions.preview_text(self.desk, conversation_id, number)
        except Exception as error:
            self.post_message(AttachmentDone(str(error), error=True))
            return
        if found is None:
            self.app.call_from_thread(self._open_outside, conversation_id, number)
            return
        item, text = found
        self.post_message(
            PreviewReady(
                f"{item.filename} ({item.content_type}, {attachment_actions.size_text(item.size)})", text, number
            )
        )

    def on_preview_ready(self, message: PreviewReady) -> None:
        conversation_id = self.thread.conversation.id if self.thread is not None else None

        def closed(open_outside: bool | None) -> None:
            if open_outside and conversation_id is not None:
                self._open_outside(conversation_id, message.number)

        self.app.push_screen(TextPreview(shown_line(message.title), message.text, message.number), closed)

    def on_attachment_done(self, message: AttachmentDone) -> None:
        self.notify(
            shown_line(message.text),
            severity="error" if message.error else "information",
            timeout=8 if message.error else 4,
        )
