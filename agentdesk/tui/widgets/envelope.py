"""The composer's envelope: To, Cc and Bcc as editable lines, and the files attached.

Self-contained: the composer sets what it knows (`set_recipients`, `add_file`) and reads what the
agent made of it (`recipients`, `files`, and `chosen`: the agent edited the recipients); each
change the agent makes is posted as `Envelope.Changed`, so the draft keeps it. Addresses are typed comma-separated; they are checked
when the message is sent, and the error names the bad one. An attached file is listed with its
size; with the list focused, delete removes the highlighted one.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import Input, Label, OptionList
from textual.widgets.option_list import Option

from agentdesk.app.outbound import OutgoingFile, Recipients, split
from agentdesk.sanitize import escape_control
from agentdesk.tui import format
from agentdesk.tui.widgets import shown_line


class Envelope(Vertical):
    DEFAULT_CSS = """
    Envelope { height: auto; padding: 0 1; }
    Envelope > Horizontal { height: 1; }
    Envelope Label { width: 5; color: $text-muted; }
    Envelope Input { height: 1; border: none; padding: 0 1; width: 1fr; background: $boost; }
    Envelope Input:focus { background: $accent 20%; border: none; }
    Envelope Input > .input--selection { background: $accent 60%; }
    Envelope #attachments { height: auto; max-height: 4; border: none; padding: 0; display: none; }
    Envelope #attachments.-some { display: block; }
    Envelope.-single #cc-row, Envelope.-single #bcc-row { display: none; }
    """

    BINDINGS = [Binding("delete,backspace", "remove_file", "Remove file", show=False)]

    class Changed(Message):
        """The agent changed the recipients or the files."""

    def __init__(self, *, email: bool = True, id: str | None = None) -> None:
        super().__init__(id=id)
        self.email = email
        self.files: list[OutgoingFile] = []
        self.loaded = False  # the recipients were filled in (or typed): send them, not the delivery's choice
        self.chosen = False  # the agent typed them (or a draft had them): a draft keeps them

    def compose(self) -> ComposeResult:
        for name, label in (("to", "To"), ("cc", "Cc"), ("bcc", "Bcc")):
            with Horizontal(id=f"{name}-row"):
                yield Label(label)
                # Focused, the cursor goes to the end and nothing is selected: the first key adds to
                # the prefilled addresses instead of replacing them.
                yield Input(
                    id=f"envelope-{name}",
                    placeholder="name@example.com, …" if name == "to" else "",
                    select_on_focus=False,
                )
        yield OptionList(id="attachments")

    def on_mount(self) -> None:
        self.set_class(not self.email, "-single")
        for field in self.query(Input):
            field.cursor_blink = getattr(self.app, "CURSOR_BLINK", True)

    def set_recipients(self, recipients: Recipients, *, chosen: bool = False) -> None:
        lines = {name: ", ".join(getattr(recipients, name)) for name in ("to", "cc", "bcc")}
        shown = {name: escape_control(line, keep_lines=False) for name, line in lines.items()}
        for name, line in shown.items():
            self.query_one(f"#envelope-{name}", Input).value = line
        # A sender's handle with control characters in it is shown escaped, and what is shown is
        # then not the address: unless the agent edits the envelope, the reply goes where the
        # delivery would send it (the conversation's own customer).
        self.loaded = shown == lines
        self.chosen = chosen and self.loaded

    def on_input_changed(self, event: Input.Changed) -> None:
        # Typed by the agent: what they typed is what goes, whether or not the prefill arrived.
        if event.input.has_focus:
            self.loaded = self.chosen = True
            self.post_message(self.Changed())

    def recipients(self) -> Recipients:
        values = {name: split(self.query_one(f"#envelope-{name}", Input).value) for name in ("to", "cc", "bcc")}
        return Recipients(**values)

    def focus_to(self) -> None:
        field = self.query_one("#envelope-to", Input)
        field.focus()
        field.cursor_position = len(field.value)

    # --- files -----------------------------------------------------------------------------------

    def add_file(self, outgoing: OutgoingFile, *, by_agent: bool = True) -> None:
        if any(f.name == outgoing.name and f.data == outgoing.data for f in self.files):
            self.notify(f"{shown_line(outgoing.name)} is attached already", severity="warning")
            return
        self.files.append(outgoing)
        self._show_files()
        if by_agent:
            self.post_message(self.Changed())

    def action_remove_file(self) -> None:
        listing = self.query_one("#attachments", OptionList)
        if not listing.has_focus or listing.highlighted is None or not self.files:
            return
        removed = self.files.pop(listing.highlighted)
        self._show_files()
        self.post_message(self.Changed())
        self.notify(f"removed {shown_line(removed.name)}")
        if not self.files:
            self.screen.focus_next()

    def _show_files(self) -> None:
        listing = self.query_one("#attachments", OptionList)
        highlighted = listing.highlighted
        listing.clear_options()
        listing.add_options(
            [Option(f"📎 {shown_line(f.name)}  ({format.size(len(f.data))})  — del removes") for f in self.files]
        )
        listing.set_class(bool(self.files), "-some")
        if self.files:
            listing.highlighted = min(highlighted or 0, len(self.files) - 1)
