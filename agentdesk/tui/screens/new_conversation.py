"""Write first: a new conversation with a customer, before they have written to us.

To is looked up as it is typed (in a worker, a moment after the last key): the known customers
whose name or address matches, so a conversation joins an existing customer's history rather than
making a second one; picking one fills To and the mailbox or spool that reaches them. Sending calls
the same action as `agentdesk new` (`app.outbound.start`).
"""

from __future__ import annotations

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.timer import Timer
from textual.widgets import Input, Label, OptionList, Select, Static, TextArea
from textual.widgets.option_list import Option

from agentdesk.app import outbound
from agentdesk.app.desk import Desk
from agentdesk.tui import actions
from agentdesk.tui.messages import ActionDone
from agentdesk.tui.screens.attaching import AttachingScreen
from agentdesk.tui.widgets import shown_line
from agentdesk.tui.widgets.attached_files import AttachedFiles
from agentdesk.tui.widgets.key_footer import KeyFooter
from agentdesk.tui.workers import work


class NewConversationScreen(AttachingScreen):
    BINDINGS = actions.bindings("new_conversation")
    DEFAULT_CSS = """
    NewConversationScreen { layout: vertical; }
    NewConversationScreen #new-title { height: 1; padding: 0 1; background: $primary-background; }
    NewConversationScreen .new-row { height: 3; }
    NewConversationScreen .new-row Label { width: 9; padding: 1 1 0 1; color: $text-muted; }
    NewConversationScreen #new-to { width: 1fr; }
    NewConversationScreen #new-subject { width: 1fr; }
    NewConversationScreen #new-source { width: 30; }
    NewConversationScreen #contacts { height: auto; max-height: 7; display: none; margin: 0 1 0 10; }
    NewConversationScreen #contacts.-some { display: block; }
    NewConversationScreen #new-files { margin: 0 1 0 10; }
    NewConversationScreen #new-body { height: 1fr; border: tall $primary 40%; }
    NewConversationScreen #new-body:focus { border: tall $accent; }
    """
    LOOKUP_DELAY = 0.3

    def __init__(self, desk: Desk) -> None:
        super().__init__()
        self.desk = desk
        self.sources = outbound.sources(desk)
        self.contacts: list[outbound.Contact] = []
        self._lookup_timer: Timer | None = None
        self._sending = False

    def compose(self) -> ComposeResult:
        yield Static(
            Text("New conversation — write first; the customer's answer threads back here", style="bold"),
            id="new-title",
        )
        with Vertical():
            with Horizontal(classes="new-row"):
                yield Label("To")
                yield Input(placeholder="name, email address, phone (+44…) or handle", id="new-to")
                yield (
                    Select(
                        [(f"{s.name} ({s.channel}{'' if s.sends else ', cannot send'})", s.name) for s in self.sources],
                        id="new-source",
                        allow_blank=False,
                        value=self.sources[0].name,
                    )
                    if self.sources
                    else Static("")
                )
            yield OptionList(id="contacts")
            with Horizontal(classes="new-row"):
                yield Label("Subject")
                yield Input(id="new-subject")
            yield AttachedFiles(id="new-files")
        yield TextArea("", id="new-body", soft_wrap=True, show_line_numbers=False, tab_behavior="focus")
        yield KeyFooter(compact=True)

    def on_mount(self) -> None:
        for field in self.query("Input, TextArea"):
            if isinstance(field, (Input, TextArea)):
                field.cursor_blink = getattr(self.app, "CURSOR_BLINK", True)
        self.query_one("#new-to", Input).focus()
        if not self.sources:
            self.notify("no mailbox or spool is configured to send through", severity="error")

    # --- customer lookup -----------------------------------------------------------------------------

    @on(Input.Changed, "#new-to")
    def _to_changed(self, event: Input.Changed) -> None:
        if self._lookup_timer is not None:
            self._lookup_timer.stop()
        text = event.value
        self._lookup_timer = self.set_timer(self.LOOKUP_DELAY, lambda: self._lookup(text))

    @work(thread=True, exclusive=True, group="lookup")
    def _lookup(self, text: str) -> None:
        try:
            found = outbound.lookup(self.desk, text)
        except Exception:
            found = []  # a search the index cannot parse: no suggestions, typing goes on
        self.app.call_from_thread(self._show_contacts, found)

    def _show_contacts(self, found: list[outbound.Contact]) -> None:
        self.contacts = found
        listing = self.query_one("#contacts", OptionList)
        listing.clear_options()
        # An identity no configured mailbox or spool reaches is shown, greyed, with the reason.
        listing.add_options(
            [
                Option(
                    f"{shown_line(c.name)}  {shown_line(c.address)}  ({c.kind})"
                    + (f" — {c.unreachable}" if c.unreachable else ""),
                    id=str(i),
                    disabled=bool(c.unreachable),
                )
                for i, c in enumerate(found)
            ]
        )
        listing.set_class(bool(found), "-some")

    def action_pick_contact(self) -> None:
        listing = self.query_one("#contacts", OptionList)
        if any(c.source for c in self.contacts):
            listing.focus()
            if listing.highlighted is None:
                listing.highlighted = next(i for i, c in enumerate(self.contacts) if c.source)

    @on(OptionList.OptionSelected, "#contacts")
    def _contact_chosen(self, event: OptionList.OptionSelected) -> None:
        contact = self.contacts[int(event.option.id or 0)]
        to = self.query_one("#new-to", Input)
        with to.prevent(Input.Changed):
            to.value = contact.address
        self._show_contacts([])
        if contact.source and self.query(Select):
            self.query_one(Select).value = contact.source  # the mailbox or spool that reaches them
        self.query_one("#new-subject", Input).focus()

    # --- files ---------------------------------------------------------------------------------------

    @property
    def files(self) -> list[outbound.OutgoingFile]:
        return self.query_one(AttachedFiles).files

    # --- sending -------------------------------------------------------------------------------------

    def action_send(self) -> None:
        to = self.query_one("#new-to", Input).value.strip()
        subject = self.query_one("#new-subject", Input).value.strip()
        body = self.query_one("#new-body", TextArea).text
        missing = [
            name for name, value in (("To", to), ("Subject", subject), ("the message", body.strip())) if not value
        ]
        if missing:
            self.notify("fill in " + ", ".join(missing) + " first", severity="error")
            return
        if self._sending:
            return
        selects = self.query(Select)
        source = selects.first().value if selects else None
        self._sending = True
        self._start(to, subject, body, source if isinstance(source, str) else None)

    @work(thread=True, exclusive=True, group="send")
    def _start(self, to: str, subject: str, body: str, source: str | None) -> None:
        try:
            sent = outbound.start(self.desk, to, subject=subject, body=body, channel=source, files=self.files)
        except Exception as error:
            self.app.call_from_thread(self._failed, str(error))
            return
        self.app.call_from_thread(self._started, str(sent))

    def _failed(self, error: str) -> None:
        self._sending = False
        self.notify(shown_line(error), severity="error", timeout=8)

    def _started(self, done: str) -> None:
        self.dismiss()
        main = getattr(self.app, "main", None)
        if main is not None:
            main.post_message(ActionDone(done))

    def action_close(self) -> None:
        self.dismiss()
