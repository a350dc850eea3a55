"""Pick a knowledge-base article to put in a reply: the ones suggested for the thread first, then
what the agent types searches every article (app.kb, in a worker). Enter inserts a link line
(title and URL), ctrl+t the article's text; escape closes without inserting.

The screen returns the text to insert; the composer puts it at the cursor, and sending the reply
counts the article as sent (it names the article's URL or title).
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Input, Label, OptionList, Static
from textual.widgets.option_list import Option

from agentdesk.app import kb
from agentdesk.app.desk import Desk
from agentdesk.tui.widgets import shown_line
from agentdesk.tui.workers import work


class KbPickerScreen(ModalScreen[str | None]):
    CSS_PATH = "kb_picker.tcss"
    BINDINGS = [
        Binding("escape", "cancel", "Close", priority=True),
        Binding("ctrl+t", "insert(True)", "Insert text", priority=True),
    ]

    @dataclass
    class Found(Message):
        query: str
        articles: list

    @dataclass
    class Failed(Message):
        error: str

    def __init__(self, desk: Desk, conversation_id: int) -> None:
        super().__init__()
        self.desk = desk
        self.conversation_id = conversation_id
        self.articles: dict[str, kb.Found] = {}
        self.query_text = ""

    def compose(self) -> ComposeResult:
        with Vertical(classes="kb-dialog"):
            yield Label("Knowledge base — enter: insert link · ctrl+t: insert text · esc: close", classes="kb-title")
            yield Input(placeholder="search articles (a trailing * is a prefix)", id="kb-query")
            yield OptionList(id="kb-articles")
            yield Static("", id="kb-preview", markup=False)

    def on_mount(self) -> None:
        field = self.query_one("#kb-query", Input)
        field.cursor_blink = getattr(self.app, "CURSOR_BLINK", True)
        field.focus()
        self._search("")

    @work(thread=True, exclusive=True, group="kb-search")
    def _search(self, query: str) -> None:
        try:
            found = (
                kb.search(self.desk, query, limit=20)
                if query.strip()
                else kb.suggestions(self.desk, self.conversation_id, limit=5)
            )
        except Exception as error:
            self.post_message(self.Failed(str(error)))
            return
        self.post_message(self.Found(query, found))

    @on(Input.Changed, "#kb-query")
    def _query_changed(self, event: Input.Changed) -> None:
        self._search(event.value)

    def on_kb_picker_screen_found(self, message: Found) -> None:
        if message.query != self.query_one("#kb-query", Input).value:
            return  # an older search finished after a newer one was typed
        self.articles = {article.slug: article for article in message.articles}
        options = self.query_one("#kb-articles", OptionList)
        options.clear_options()
        heading = "Suggested for this thread" if not message.query.strip() else f"Matching “{message.query}”"
        options.add_option(Option(shown_line(heading), disabled=True))
        if not message.articles:
            options.add_option(
                Option("no article" + (" matches" if message.query.strip() else " suggested"), disabled=True)
            )
        for article in message.articles:
            label = Text(shown_line(article.title), style="bold")
            if article.tags:
                label.append("  " + shown_line(", ".join(article.tags)), style="dim")
            options.add_option(Option(label, id=article.slug))
        if message.articles:
            options.highlighted = 1
        self._preview()

    def on_kb_picker_screen_failed(self, message: Failed) -> None:
        self.notify(f"cannot search the knowledge base: {message.error}", severity="error", timeout=8)

    @on(OptionList.OptionHighlighted, "#kb-articles")
    def _highlighted(self) -> None:
        self._preview()

    def _current(self) -> kb.Found | None:
        options = self.query_one("#kb-articles", OptionList)
        if options.highlighted is None:
            return None
        return self.articles.get(options.get_option_at_index(options.highlighted).id or "")

    def _preview(self) -> None:
        article = self._current()
        preview = self.query_one("#kb-preview", Static)
        preview.update(shown_line(f"{article.url or '(no public URL)'} — {article.excerpt}") if article else "")

    def on_key(self, event) -> None:
        # The arrows in the search box move through the articles: one search + enter inserts.
        if event.key in ("down", "up") and self.focused is self.query_one("#kb-query", Input):
            options = self.query_one("#kb-articles", OptionList)
            options.action_cursor_down() if event.key == "down" else options.action_cursor_up()
            event.stop()

    @on(Input.Submitted, "#kb-query")
    def _submitted(self) -> None:
        self.action_insert(False)

    @on(OptionList.OptionSelected, "#kb-articles")
    def _selected(self) -> None:
        self.action_insert(False)

    def action_insert(self, as_text: bool = False) -> None:
        article = self._current()
        if article is None:
            self.notify("no article highlighted", severity="warning")
            return
        self._insertion(article.slug, as_text)

    @work(thread=True, exclusive=True, group="kb-insert")
    def _insertion(self, slug: str, as_text: bool) -> None:
        try:
            text = kb.insertion(self.desk, slug, as_text=as_text)
        except Exception as error:
            self.post_message(self.Failed(str(error)))
            return
        self.app.call_from_thread(self.dismiss, text)

    def action_cancel(self) -> None:
        self.dismiss(None)


def article_options(found: list) -> list:
    """The composer's "Suggested articles" group beside its template suggestions (ids `a:<slug>`)."""
    items: list = [Option("Suggested articles (enter: link, f4: search)", disabled=True)]
    items += [
        Option(Text("📖 " + shown_line(article.title), no_wrap=True, overflow="ellipsis"), id=f"a:{article.slug}")
        for article in found
    ]
    items.append(None)
    return items
