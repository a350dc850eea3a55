"""The composer: a reply or an internal note, with templates, placeholders, drafts and $EDITOR.

The text is saved as a draft a second after the agent stops typing and when they leave, so it
survives switching conversations and restarting. Templates are offered in two groups: suggested
for this thread (full-text similarity) and all, filtered fuzzily by name or shortcut as the agent
types. A placeholder the desk cannot fill stays in the text as `[[name?]]`, is listed under the
text, and blocks sending until it is replaced.

Above the text, the envelope: To, Cc and Bcc prefilled with the reply-all (loaded in a worker)
and editable, and the files attached (ctrl+o, a path with completion). The same screen forwards
the conversation (`kind="forward"`): To is typed, the text is a note above the forwarded thread,
and the files listed are the conversation's (each once), removable, with more to add.

An agent has one draft per conversation, whatever its kind: a forward's draft (To, note, files)
is kept like a reply's, and r, n or f on a conversation with a draft opens that draft. Pressing f
over a reply or note draft opens a forward that is not kept (keeping it would overwrite the other
draft); closing it says so.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import tempfile
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.timer import Timer
from textual.widgets import Input, OptionList, Static, TextArea
from textual.widgets.option_list import Option

from agentdesk.app import conversations, kb, outbound, templates
from agentdesk.app.conversations import Thread
from agentdesk.app.desk import Desk
from agentdesk.app.outbound import Recipients
from agentdesk.errors import AgentdeskError
from agentdesk.sanitize import strip_control
from agentdesk.tui import actions
from agentdesk.tui.messages import ActionDone, ActionFailed
from agentdesk.tui.screens.attaching import AttachingScreen
from agentdesk.tui.screens.kb_picker import KbPickerScreen, article_options
from agentdesk.tui.widgets import shown, shown_line
from agentdesk.tui.widgets.envelope import Envelope
from agentdesk.tui.widgets.key_footer import KeyFooter
from agentdesk.tui.workers import work


class ComposerScreen(AttachingScreen):
    CSS_PATH = "composer.tcss"
    BINDINGS = actions.bindings("composer")
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (100, "-wide")]
    AUTOSAVE_DELAY = 1.0

    def __init__(
        self, desk: Desk, thread: Thread, *, kind: str = "reply", now: Callable[[], datetime], open_editor: bool = False
    ) -> None:
        super().__init__()
        self.desk = desk
        self.thread = thread
        self.now = now
        draft = thread.draft
        kept = draft is not None and (draft.body.strip() or draft.envelope not in ("", "{}"))
        # Whatever key opened it, a forward's draft opens as the forward; a forward over another
        # draft starts empty and is not kept (`_keeps_draft`).
        self.kind = "forward" if kept and draft.kind == "forward" else kind
        if self.kind == "forward" and draft is not None and draft.kind != "forward":
            draft = None
        elif draft is not None and draft.body.strip() and draft.kind != "forward":
            self.kind = draft.kind
        self.opened_draft = draft
        self._keeps_draft = self.kind != "forward" or thread.draft is None or thread.draft.kind == "forward" or not kept
        self._forwarded_messages: int | None = None  # how many messages the forward carries, once loaded
        self._forward_files: list = []  # the conversation's files as a forward first listed them
        # An editor draws its text as it is: a draft (saved before, or filled from a template that
        # quotes a sender) goes in without control sequences, as the reply it becomes should.
        self.initial = strip_control(draft.body) if draft is not None else ""
        # The version the agent saw when they started writing: a reply to anything newer warns first.
        self.base_version = draft.base_version if draft is not None else thread.conversation.version
        self.draft_at = draft.updated_at if draft is not None else None
        self.open_editor = open_editor
        self.suggested = templates.suggestions(desk, thread)
        self.suggested_articles: list = []  # knowledge-base articles for this thread, loaded by a worker
        self._autosave: Timer | None = None
        self._sent = False

    def compose(self) -> ComposeResult:
        yield Static("", id="composer-title")
        # Cc and Bcc go by SMTP: an email conversation not fed by a spool (a spool's reply has one recipient).
        conversation = self.thread.conversation
        email = self.kind == "forward" or (
            conversation.channel == "email" and conversation.source not in {s.name for s in self.desk.settings.spool}
        )
        yield Envelope(email=email, id="envelope")
        yield Static(self._latest_message(), id="composer-context", markup=False)
        with Horizontal(id="composer-body"):
            with Vertical(id="composer-main"):
                yield TextArea(self.initial, id="body", soft_wrap=True, show_line_numbers=False, tab_behavior="focus")
                yield Static("", id="composer-warnings")
            with Vertical(id="composer-side"):
                yield Input(placeholder="type to filter, enter to use", id="template-filter")
                yield OptionList(id="templates")
        yield KeyFooter(compact=True)

    def on_mount(self) -> None:
        for field in self.query("Input, TextArea"):
            if isinstance(field, (Input, TextArea)):
                field.cursor_blink = getattr(self.app, "CURSOR_BLINK", True)
        self._render_title()
        self._fill_templates("")
        self._suggest_articles()
        self._check_placeholders()
        body = self.query_one("#body", TextArea)
        body.focus()
        body.move_cursor(body.document.end)
        if self.kind == "forward":
            if self.opened_draft is None:
                self.query_one(Envelope).focus_to()
            self._load_forward()
        else:
            self._load_recipients()
        if self.kind == "reply" and self.suggested and not self.initial.strip() and not self.open_editor:
            # Nothing written yet and a template fits: enter takes the suggestion, typing filters,
            # ctrl+t goes to the text. A draft keeps the text focused.
            self.query_one("#template-filter", Input).focus()
        if hasattr(self.app, "set_presence"):
            self.app.set_presence(self.thread.conversation_id, "replying")
        if self.open_editor:
            self.call_after_refresh(self.action_editor)

    def _latest_message(self):
        """The customer's latest message, so the agent sees what they answer."""
        from rich.text import Text

        from agentdesk.tui import format

        latest = next((item for item in reversed(self.thread.items) if item.kind == "inbound"), None)
        if latest is None:
            return Text("")
        text = Text(f"{shown_line(latest.author)} wrote, {format.local_time(latest.at, self.now())}:\n", style="bold")
        text.append(format.split_body(shown(latest.body)).main.strip())
        return text

    def _render_title(self) -> None:
        from textual.content import Content

        from agentdesk.domain.customers import IDENTITY_KIND

        conversation = self.thread.conversation
        customer = self.thread.customer
        # The address the reply goes to: the To once loaded, else the customer's identity on this
        # conversation's channel (a chat's handle, not their email address).
        loaded = self.query_one(Envelope).recipients().to if self.query(Envelope) else ()
        kind = IDENTITY_KIND.get(conversation.channel, conversation.channel)
        address = ", ".join(loaded) or next((a for k, a in customer.identities if k == kind), "")

        if self.kind == "note":
            title = f"[b $warning]Internal note[/] on AD-{conversation.id} — only agents see it"
        elif self.kind == "forward":
            count = "…" if self._forwarded_messages is None else str(self._forwarded_messages)
            title = (
                f"[b]Forward[/] AD-{conversation.id} by email: {count} message(s) with the customer — "
                "the text is a note above them, the files are listed"
            )
        else:
            title = f"[b]Reply[/] to $name [dim]$address[/] on AD-{conversation.id} via $channel"

        colleagues = getattr(self.app, "colleagues", {}).get(conversation.id)
        if colleagues:
            title += "  [b $warning]⚠ $colleagues[/]"

        # Names, addresses and the subject are the sender's: template variables are inserted as
        # plain text, so "[link=…]" in a name is no hyperlink and "[@click=…]" no action.
        self.query_one("#composer-title", Static).update(
            Content.from_markup(
                f"{title}\n[dim]$subject[/]",
                name=shown_line(customer.name),
                address=shown_line(address),
                channel=conversation.channel,
                colleagues=shown_line(colleagues or ""),
                subject=shown_line(conversation.subject),
            )
        )
        self.set_class(self.kind == "note", "-note")

    # --- templates -------------------------------------------------------------------------------

    def _fill_templates(self, query: str) -> None:
        options = self.query_one("#templates", OptionList)
        # Suggestions arriving from a worker refill the list: the agent's highlight stays where it was.
        kept = None if options.highlighted is None else options.get_option_at_index(options.highlighted).id
        options.clear_options()
        items: list[Option | None] = []
        if not query and self.suggested:
            items.append(Option("Suggested for this thread", disabled=True))
            items += [
                Option(f"★ {t.name}" + (f" ({t.shortcut})" if t.shortcut else ""), id=f"s:{t.name}")
                for t, _ in self.suggested
            ]
            items.append(None)
        if not query and self.suggested_articles:
            items += article_options(self.suggested_articles)
        found = templates.find(self.desk, query)
        items.append(Option("All templates" if not query else f"Matching “{query}”", disabled=True))
        items += [Option(f"{t.name}" + (f" ({t.shortcut})" if t.shortcut else ""), id=f"t:{t.name}") for t in found]
        if not found:
            items.append(Option("none — ctrl+k saves this text as a template", disabled=True))
        options.add_options(items)
        enabled = [i for i in range(options.option_count) if not options.get_option_at_index(i).disabled]
        same = [i for i in enabled if kept is not None and options.get_option_at_index(i).id == kept]
        if same or enabled:
            options.highlighted = (same or enabled)[0]

    @on(Input.Changed, "#template-filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        self._fill_templates(event.value)

    @on(Input.Submitted, "#template-filter")
    def _filter_submitted(self, event: Input.Submitted) -> None:
        options = self.query_one("#templates", OptionList)
        if options.highlighted is not None:
            self._use_template(options.get_option_at_index(options.highlighted).id)

    @on(OptionList.OptionSelected, "#templates")
    def _template_selected(self, event: OptionList.OptionSelected) -> None:
        self._use_template(event.option.id)

    def on_key(self, event) -> None:
        # Arrow keys in the filter move through the list, so a template is one filter + enter away.
        if self.focused is self.query_one("#template-filter") and event.key in ("down", "up"):
            options = self.query_one("#templates", OptionList)
            options.action_cursor_down() if event.key == "down" else options.action_cursor_up()
            event.stop()

    def _use_template(self, option_id: str | None) -> None:
        if not option_id:
            return
        name = option_id.split(":", 1)[1]
        if option_id.startswith("a:"):
            self._insert_article(name)
            return
        template = next((t for t in templates.all_templates(self.desk) if t.name == name), None)
        if template is None:
            return
        try:
            rendered = templates.render(self.desk, template, self.thread)
        except AgentdeskError as error:
            # A template that cannot render (a syntax error, a runaway loop) is the template's
            # fault, not the draft's: say so where the agent looks, keep what they wrote.
            warning = self.query_one("#composer-warnings", Static)
            warning.update(Text("⚠ " + shown_line(str(error))))
            warning.add_class("-visible")
            self.notify(shown_line(str(error)), severity="error", markup=False)
            return
        body = self.query_one("#body", TextArea)
        if body.text.strip():
            body.insert(strip_control(rendered.text))
        else:
            body.load_text(strip_control(rendered.text))
            self._changed()
        body.focus()
        if rendered.undefined:
            self.notify("fill in before sending: " + ", ".join(rendered.undefined), severity="warning")

    # --- knowledge-base articles (tui/screens/kb_picker.py) ------------------------------------------

    @work(thread=True, group="kb-suggest")
    def _suggest_articles(self) -> None:
        try:
            found = kb.suggestions(self.desk, self.thread.conversation_id)
        except Exception:  # suggestions are a help, not a reason to fail opening the composer
            return
        if found:
            self.app.call_from_thread(self._show_suggested_articles, found)

    def _show_suggested_articles(self, found: list) -> None:
        self.suggested_articles = found
        self._fill_templates(self.query_one("#template-filter", Input).value)

    def action_knowledge_base(self) -> None:
        self.app.push_screen(KbPickerScreen(self.desk, self.thread.conversation_id), self._insert_text)

    @work(thread=True, group="kb-insert")
    def _insert_article(self, slug: str) -> None:
        try:
            text = kb.insertion(self.desk, slug, as_text=False)
        except Exception as error:
            self.app.call_from_thread(self.notify, str(error), severity="error", timeout=8)
            return
        self.app.call_from_thread(self._insert_text, text)

    def _insert_text(self, text: str | None) -> None:
        if not text:
            return
        body = self.query_one("#body", TextArea)
        body.insert(strip_control(text))
        body.focus()
        self._changed()

    def action_focus_templates(self) -> None:
        field = self.query_one("#template-filter", Input)
        if field.has_focus:
            self.query_one("#body", TextArea).focus()
        else:
            field.focus()

    # --- text, placeholders and drafts -----------------------------------------------------------

    @on(TextArea.Changed, "#body")
    def _body_changed(self) -> None:
        self._changed()

    def _changed(self) -> None:
        self._check_placeholders()
        if self._autosave is not None:
            self._autosave.stop()
        self._autosave = self.set_timer(self.AUTOSAVE_DELAY, self._save_draft)

    def _check_placeholders(self) -> None:
        missing = templates.unfilled(self.query_one("#body", TextArea).text)
        warning = self.query_one("#composer-warnings", Static)
        if missing:
            warning.update("⚠ fill in before sending: " + ", ".join(f"[[{m}?]]" for m in missing))
            warning.add_class("-visible")
        else:
            warning.update("")
            warning.remove_class("-visible")

    @on(Envelope.Changed)
    def _envelope_changed(self) -> None:
        self._changed()

    def _save_draft(self) -> None:
        if self._sent or not self._keeps_draft:
            return
        text = self.query_one("#body", TextArea).text
        desk, conversation_id, kind, version = self.desk, self.thread.conversation_id, self.kind, self.base_version
        envelope = self.query_one(Envelope)
        recipients = envelope.recipients() if envelope.chosen else None
        files = list(envelope.files)
        if kind == "forward":
            if self._forwarded_messages is None and self.opened_draft is not None:
                return  # its draft is not back in the envelope yet: leave it as it is
            if files == self._forward_files and not text.strip() and (recipients is None or not recipients.all()):
                recipients, files = None, []  # nothing of the agent's: no draft (the save discards it)
        # An app worker, not the screen's: it must finish even when the screen has closed.
        self.app.run_worker(
            lambda: conversations.save_draft(
                desk, conversation_id, text, kind=kind, base_version=version, recipients=recipients, files=files
            ),
            thread=True,
            group="draft",
            exit_on_error=False,
        )

    def action_toggle_kind(self) -> None:
        if self.kind == "forward":
            self.notify(
                "a forward stays a forward: send it, or empty its To and note (its draft goes), then r or n",
                severity="warning",
            )
            return
        self.kind = "note" if self.kind == "reply" else "reply"
        self._render_title()
        self._changed()

    def action_close(self) -> None:
        if self._autosave is not None:
            self._autosave.stop()
        self._save_draft()
        if not self._keeps_draft and not self._sent:
            self.app.notify(
                "the forward is not kept: your draft reply on this conversation is (one draft each)",
                severity="warning",
            )
        self.dismiss()

    # --- sending ---------------------------------------------------------------------------------

    def action_send(self, status: str | None = None) -> None:
        text = self.query_one("#body", TextArea).text
        missing = templates.unfilled(text)
        if missing:
            self.notify("fill in " + ", ".join(missing) + " first (the [[…?]] markers)", severity="error", timeout=8)
            return
        if not text.strip() and self.kind != "forward":
            self.notify("the message is empty; write something before sending", severity="error")
            return
        envelope = self.query_one(Envelope)
        recipients = envelope.recipients() if envelope.loaded or self.kind == "forward" else None
        self._send(text, status, recipients, list(envelope.files))

    @work(thread=True, exclusive=True, group="send")
    def _send(self, text: str, status: str | None, recipients=None, files=()) -> None:
        from agentdesk.errors import Conflict

        conversation_id = self.thread.conversation_id
        try:
            done: conversations.Sent
            if self.kind == "forward":
                to = recipients or Recipients()
                done = outbound.forward(
                    self.desk,
                    conversation_id,
                    to.to,
                    note=text,
                    cc=to.cc,
                    bcc=to.bcc,
                    files=list(files) if self._forwarded_messages is not None else None,
                    status=status,
                )
            else:
                done = conversations.send(
                    self.desk,
                    conversation_id,
                    text,
                    kind=self.kind,
                    status=status,
                    expected_version=self.base_version if self.kind == "reply" else None,
                    recipients=recipients,
                    files=files,
                    delay=self.desk.settings.ui.undo_send_seconds,
                )
        except Conflict:
            # Someone wrote meanwhile (the customer, a colleague): show it before answering twice.
            try:
                fresh = conversations.thread(self.desk, conversation_id)
            except Exception as error:
                self.app.call_from_thread(self.notify, str(error), severity="error", timeout=8)
                return
            self.app.call_from_thread(self._changed_meanwhile, fresh, text, status, recipients, files)
            return
        except Exception as error:
            self.app.call_from_thread(self.notify, str(error), severity="error", timeout=8)
            return
        self.app.call_from_thread(self._sent_ok, done)

    def _changed_meanwhile(self, fresh: Thread, text: str, status: str | None, recipients=None, files=()) -> None:
        from agentdesk.app.conversations import changes_between
        from agentdesk.tui.screens.dialogs import ChangedScreen

        added = changes_between(self.thread, fresh)
        if not added and self.draft_at is not None:
            added = [item for item in fresh.items if item.at >= self.draft_at]  # changed before the draft reopened
        # From here on the agent has seen the new state: keep editing or send, no second warning.
        self.thread = fresh
        self.base_version = fresh.conversation.version
        self.draft_at = None
        self.query_one("#composer-context", Static).update(self._latest_message())
        self._render_title()
        main = getattr(self.app, "main", None)
        if main is not None:
            main._show_thread(fresh)

        def decided(send: bool | None) -> None:
            if send:
                self._send(text, status, recipients, files)
            else:
                self._save_draft()
                self.query_one("#body", TextArea).focus()

        self.app.push_screen(ChangedScreen(fresh, added, now=self.now()), decided)

    def _sent_ok(self, done) -> None:
        self._sent = True
        if self._autosave is not None:
            self._autosave.stop()
        self.dismiss()
        main = self.app.main  # type: ignore[attr-defined]
        if getattr(done, "delay", 0) and getattr(done, "message_id", None) and hasattr(main, "hold_send"):
            main.hold_send(self.thread.conversation_id, done.message_id, done.delay)
        main.post_message(ActionDone(str(done)))

    # --- recipients and files ----------------------------------------------------------------------

    @work(thread=True, exclusive=True, group="recipients")
    def _load_recipients(self) -> None:
        """The draft's recipients and files, else the reply-all."""
        try:
            chosen, files = conversations.draft_envelope(self.desk, self.thread.draft)
            found = chosen or outbound.recipients(self.desk, self.thread.conversation_id)
        except Exception as error:
            self.app.call_from_thread(self.notify, f"recipients not loaded: {error}", severity="warning")
            return
        self.app.call_from_thread(self._recipients_loaded, found, chosen is not None, files)

    def _recipients_loaded(self, found: Recipients, chosen: bool = False, files=()) -> None:
        envelope = self.query_one(Envelope)
        if not envelope.loaded:  # the agent started typing first: theirs wins
            envelope.set_recipients(found, chosen=chosen)
        for outgoing in files:
            envelope.add_file(outgoing, by_agent=False)
        self._render_title()

    @work(thread=True, exclusive=True, group="recipients")
    def _load_forward(self) -> None:
        """The agent's forward draft (its To, note and files), else the conversation's files, each
        once. The draft is read afresh: the thread the screen was opened with may predate it."""
        try:
            content = outbound.forward_content(self.desk, self.thread.conversation_id)
            draft = conversations.thread(self.desk, self.thread.conversation_id).draft
            chosen, files = conversations.draft_envelope(self.desk, draft) if draft is not None else (None, [])
        except Exception as error:
            self.app.call_from_thread(self.notify, f"files not loaded: {error}", severity="warning")
            return
        self.app.call_from_thread(self._forward_loaded, content, draft, chosen, files)

    def _forward_loaded(self, content: outbound.ForwardContent, draft, chosen: Recipients | None, files) -> None:
        self._forwarded_messages = content.messages
        self._forward_files = list(content.files)
        envelope = self.query_one(Envelope)
        kept = draft is not None and (draft.body.strip() or draft.envelope not in ("", "{}"))
        if kept and draft.kind == "forward":
            self.opened_draft, self._keeps_draft = draft, True
            body = self.query_one("#body", TextArea)
            if not body.text.strip():
                body.load_text(strip_control(draft.body))
            if chosen is not None and not envelope.chosen:
                envelope.set_recipients(chosen, chosen=True)
        else:
            self.opened_draft, self._keeps_draft, files = None, not kept, content.files
        for outgoing in files:
            envelope.add_file(outgoing, by_agent=False)
        if content.withheld:
            self.notify("not kept by the desk, named in the forward: " + ", ".join(content.withheld))
        self._render_title()

    def action_recipients(self) -> None:
        self.query_one(Envelope).focus_to()

    def action_attach(self) -> None:
        if self.kind == "note":
            self.notify("notes carry no files; ctrl+n makes this a reply", severity="warning")
            return
        super().action_attach()

    def action_save_template(self) -> None:
        from agentdesk.tui.screens.dialogs import PromptScreen

        text = self.query_one("#body", TextArea).text
        if not text.strip():
            self.notify("write the reply first, then save it as a template", severity="warning")
            return

        def named(name: str | None) -> None:
            if not name:
                return
            try:
                path = templates.save(self.desk, name.strip(), text)
            except Exception as error:
                self.notify(str(error), severity="error", timeout=8)
                return
            self.notify(f"saved template {name.strip()} ({path})")
            self._fill_templates(self.query_one("#template-filter", Input).value)

        self.app.push_screen(
            PromptScreen("Save as template named", hint="letters, digits, . - _ (e.g. refund-late)"), named
        )

    def action_editor(self) -> None:
        body = self.query_one("#body", TextArea)
        editor = os.environ.get("VISUAL") or os.environ.get("EDITOR") or "vi"
        try:
            with self.app.suspend():
                text = edit_in_editor(body.text, editor)
        except Exception as error:  # headless, no terminal to hand over, or no such editor
            self.notify(f"cannot open $EDITOR ({editor}): {error}", severity="error")
            return
        body.load_text(text.rstrip("\n") + ("\n" if text.strip() else ""))
        self._changed()
        self.refresh()


def edit_in_editor(text: str, editor: str) -> str:
    """Write `text` to a temporary file, run `editor` (a command line, e.g. "code --wait") on it and
    return what the file holds afterwards; the file is removed either way."""
    with tempfile.NamedTemporaryFile("w", suffix=".txt", prefix="agentdesk-", delete=False, encoding="utf-8") as handle:
        handle.write(text)
        path = Path(handle.name)
    try:
        subprocess.run([*shlex.split(editor), str(path)], check=False)
        return path.read_text(encoding="utf-8", errors="replace")
    finally:
        path.unlink(missing_ok=True)


__all__ = ["ComposerScreen", "ActionFailed", "edit_in_editor"]
