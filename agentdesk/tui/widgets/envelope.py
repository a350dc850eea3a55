"""The composer's envelope: To, Cc and Bcc as editable lines, and the files attached.

Self-contained: the composer sets what it knows (`set_recipients`, `add_file`) and reads what the
agent made of it (`recipients`, `files`, and `chosen`: the agent edited the recipients); each
change the agent makes is posted as `Envelope.Changed`, so the draft keeps it. Addresses are typed comma-separated; they are checked
when the message is sent, and the error names the bad one. An attached file is listed with its
size; with the list focused, delete removes the highlighted one.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import Input, Label

from agentdesk.app.outbound import OutgoingFile, Recipients, split
from agentdesk.sanitize import escape_control
from agentdesk.tui.widgets.attached_files import AttachedFiles


class Envelope(Vertical):
    DEFAULT_CSS = """
    Envelope { height: auto; padding: 0 1; }
    Envelope > Horizontal { height: 1; }
    Envelope Label { width: 5; color: $text-muted; }
    Envelope Input { height: 1; border: none; padding: 0 1; width: 1fr; background: $boost; }
    Envelope Input:focus { background: $accent 20%; border: none; }
    Envelope Input > .input--selection { background: $accent 60%; }
    Envelope #attachments { border: none; padding: 0; }
    Envelope.-single #cc-row, Envelope.-single #bcc-row { display: none; }
    """

    class Changed(Message):
        """The agent changed the recipients or the files."""

    def __init__(self, *, email: bool = True, id: str | None = None) -> None:
        super().__init__(id=id)
        self.email = email
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
        yield AttachedFiles(id="attachments")

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

    @property
    def files(self) -> list[OutgoingFile]:
        return self.query_one(AttachedFiles).files

    def add_file(self, outgoing: OutgoingFile, *, by_agent: bool = True) -> None:
        self.query_one(AttachedFiles).add(outgoing, by_agent=by_agent)

    def on_attached_files_changed(self, event: AttachedFiles.Changed) -> None:
        event.stop()
        self.post_message(self.Changed())
