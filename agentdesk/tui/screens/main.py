"""The main screen: header, view tabs, the queue, and the thread with the customer beside it.

Thin by design: it wires widgets, turns keys into calls of `agentdesk.app`'s actions in thread
workers, and reloads what a change touched.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from rich.cells import cell_len
from rich.style import Style
from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import Input, OptionList

from agentdesk.app import queue as queue_actions
from agentdesk.app.desk import Desk, Header, header
from agentdesk.app.queue import Filter
from agentdesk.tui import actions, format
from agentdesk.tui.messages import ActionDone, ActionFailed, CountsLoaded, HeaderLoaded, ThreadFailed, ThreadLoaded
from agentdesk.tui.screens.attachments import AttachmentKeys
from agentdesk.tui.screens.workday import WorkdayKeys, apply_pending_template
from agentdesk.tui.widgets.customer_pane import CustomerPane
from agentdesk.tui.widgets.key_footer import KeyFooter
from agentdesk.tui.widgets.masthead import Masthead, Part
from agentdesk.tui.widgets.queue_view import QueueView
from agentdesk.tui.widgets.thread_view import ThreadView
from agentdesk.tui.workers import work

# The actions load the ORM: imported where used, in workers (see AgentDeskApp._load_database_layer).
if TYPE_CHECKING:
    from agentdesk.app.conversations import Thread

DETAIL_CSS = Path(__file__).with_name("detail.tcss")  # the panes mounted after the first paint
BUILTIN_VIEWS = ("mine", "unassigned", "open", "breaching", "pending", "snoozed", "solved", "spam", "bulk", "system")
SHORT_LABELS = {
    "mine": "Mine",
    "unassigned": "Unass",
    "open": "Open",
    "breaching": "Breach",
    "pending": "Pend",
    "snoozed": "Snooze",
    "solved": "Solved",
    "spam": "Spam",
    "bulk": "Bulk",
    "system": "Sys",
}
STATUS_LABELS = {
    "new": "new — nobody has answered",
    "open": "open — we are on it",
    "pending": "pending — waiting on the customer",
    "on_hold": "on hold — waiting on a third party",
    "solved": "solved",
    "closed": "closed — no more replies",
}


def _breakpoint_class(breakpoints: list[tuple[int, str]], width: int) -> str:
    """The class Textual gives a screen of this width (the last breakpoint at or below it)."""
    return [name for minimum, name in breakpoints if width >= minimum][-1]


class MainScreen(AttachmentKeys, WorkdayKeys, Screen):
    # Its CSS (main.tcss) is part of the app's CSS_PATH: parsed once at start, not re-parsed on push;
    # the rules of the panes mounted after the first paint (detail.tcss) are read when they mount.
    BINDINGS = actions.bindings("main")
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (100, "-wide")]
    THREAD_DELAY = 0.12  # wait for the cursor to settle before loading a thread

    def __init__(
        self, desk: Desk, *, now: Callable[[], datetime], default_view: str = "open", width: int | None = None
    ) -> None:
        # Given the terminal's width, the screen starts with its breakpoint class: added on the first
        # resize instead, it restyles every widget before the first frame.
        super().__init__(classes=_breakpoint_class(self.HORIZONTAL_BREAKPOINTS, width) if width else None)
        self.desk = desk
        self.now = now
        self.filters = [Filter(view) for view in BUILTIN_VIEWS]
        self.filters += [Filter("all", saved.query, saved.name) for saved in desk.settings.view]
        self.view_index = BUILTIN_VIEWS.index(default_view) if default_view in BUILTIN_VIEWS else 2
        self.search: Filter | None = None
        self.counts: dict[str, int] = {}
        self.search_count: int | None = None
        self.thread: Thread | None = None
        self._thread_generation = 0
        self._thread_timer: Timer | None = None
        self._from_history = False
        self._rest_started = False
        self._closing_search = False  # a submitted search: its box closes with the frame of its rows
        self.ready = False  # True once the panes beside the queue are mounted (after the first paint)

    # --- layout --------------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        # The first frame needs the queue's rows and little else: the search box, the thread with
        # the customer pane beside it and the footer are mounted right after it (`_mount_rest`), so
        # the first paint pays for two widgets, not dozens. The queue's height is a share of the
        # screen, so nothing moves when they arrive.
        yield Masthead(id="masthead")
        yield QueueView(self.desk, now=self.now, id="queue")

    async def _mount_rest(self) -> None:
        if self._rest_started:
            return
        self._rest_started = True
        # Their rules were left out of the first frame's stylesheet (see detail.tcss).
        self.app.stylesheet.read(DETAIL_CSS)
        search = Input(
            id="search",
            placeholder="Search: words and from: status: tag: channel: assignee: "
            "before: after: sla:breached waiting:>2h — enter runs, escape closes",
        )
        search.cursor_blink = getattr(self.app, "CURSOR_BLINK", True)
        await self.mount(search, before=self.queue)
        await self.mount(
            Horizontal(ThreadView(now=self.now, id="thread"), CustomerPane(now=self.now, id="customer"), id="detail"),
            after=self.queue,
        )
        await self.mount(KeyFooter(compact=True))
        self.refresh_bindings()  # a footer mounted late learns the keys from the next bindings update
        self.ready = True
        if hasattr(self.app, "start_background_work"):
            self.app.start_background_work()
        if self.thread is not None:
            self._show_thread(self.thread)

    @on(QueueView.RowsShown)
    def _rows_shown(self) -> None:
        if self._closing_search:
            self._close_search_box()
        if not self._rest_started:
            self.call_after_refresh(self._mount_rest)

    def _close_search_box(self) -> None:
        self._closing_search = False
        field = self.query_one("#search", Input)
        if field.has_class("-visible"):
            field.remove_class("-visible")
            self.queue.focus()

    @property
    def queue(self) -> QueueView:
        return self.query_one(QueueView)

    @property
    def thread_view(self) -> ThreadView:
        return self.query_one(ThreadView)

    @property
    def current_filter(self) -> Filter:
        return self.search or self.filters[self.view_index]

    def on_mount(self) -> None:
        self.queue.focus()
        self.queue.show(self.current_filter)
        self._render_tabs()
        self._side_started = False  # counts and header load once the first rows are on screen
        for saved in self.desk.settings.view:
            if saved.key:
                index = next(i for i, f in enumerate(self.filters) if f.label == saved.name)
                self._bindings.bind(saved.key, f"show_index({index})", f"View: {saved.name}", show=False)
        self.bind_macros()

    def refresh_side(self) -> None:
        """Counts and header: cheap, but never on the UI thread."""
        self._load_counts()
        self._load_header()

    @work(thread=True, exclusive=True, group="counts")
    def _load_counts(self) -> None:
        counts = queue_actions.view_counts(self.desk)
        self.post_message(CountsLoaded(counts))

    @work(thread=True, exclusive=True, group="header")
    def _load_header(self) -> None:
        self.post_message(HeaderLoaded(header(self.desk)))

    def on_counts_loaded(self, message: CountsLoaded) -> None:
        self.counts = message.counts
        self._render_tabs()

    def on_header_loaded(self, message: HeaderLoaded) -> None:
        self._last_header = message.header
        self.show_header_again()

    def show_header_again(self) -> None:
        """Redraw the header from its last read (a countdown, the sync's state changed)."""
        header = getattr(self, "_last_header", None)
        if header is not None:
            self.query_one(Masthead).set_header(self._header_parts(header))

    def _header_parts(self, header: Header) -> list[Part]:
        now = self.now()
        bold = Style(bold=True)
        # Muted colours are blended for the masthead's own background, unreadable on the header's:
        # what is only informative is set in italics instead.
        parts: list[Part] = [
            ("agentdesk", bold, ""),
            (f"  {header.agent_name}: ", None, ""),
            (str(header.assigned_open), bold, ""),
            (" assigned, ", None, ""),
            (str(header.waiting), bold, ""),
            (" waiting on you", None, ""),
        ]
        if header.bounced:
            parts += [(", ", None, ""), (f"{header.bounced} bounced", bold, "masthead--error")]
        if header.overdue:
            replies = "reply" if header.overdue == 1 else "replies"
            parts += [
                ("  │  ", None, ""),
                (f"{header.overdue} {replies} not sent: no sync has run for a minute", bold, "masthead--error"),
            ]
        held = self.held_part()
        if held:
            parts += [("  │  ", None, ""), (held, bold, "")]
        alerts = getattr(self.app, "alert_count", 0)
        if alerts:
            parts += [("  │  ", None, ""), (f"{alerts} alert{'' if alerts == 1 else 's'} (1: Mine)", bold, "")]
        state, holder = getattr(self.app, "sync_state", ("off", ""))
        elsewhere = "synced by another agent's TUI" if "agentdesk TUI" in holder else "synced by agentdesk sync"
        said = {
            "starting": "sync starting",
            "here": "syncing here",
            "elsewhere": elsewhere,
            "failed": "sync failed: " + holder[:40],
        }.get(state)
        if said:
            parts += [("  │  ", None, ""), (said, Style(italic=True), "masthead--error" if state == "failed" else "")]
        if not header.sources:
            parts += [("  │  ", None, ""), ("no sources", Style(italic=True), "")]
        for name, last, error in header.sources:
            parts.append(("  │  ", None, ""))
            if error:
                parts.append((f"{name} ✗ {error[:40]}", None, "masthead--error"))
            elif last is None:
                parts.append((f"{name} never synced", Style(italic=True), ""))
            else:
                ago = format.sla.format_short(now - last, units=1)
                parts += [(f"{name} ", None, ""), ("✓", None, "masthead--ok"), (f" {ago} ago", None, "")]
        return parts

    def _render_tabs(self) -> None:
        # Full titles where they fit, else short ones with the search first, so the search being
        # shown is never cut off.
        width = self.size.width
        parts = self._tab_parts(narrow=width < 110)
        if sum(cell_len(text) for text, _, _ in parts) > width:
            parts = self._tab_parts(narrow=True)
        self.query_one(Masthead).set_tabs(parts)

    def _tab_parts(self, *, narrow: bool) -> list[Part]:
        current, bold = Style(reverse=True), Style(bold=True)
        tabs: list[list[Part]] = []
        for index, filter in enumerate(self.filters):
            key = f"saved:{filter.label}" if filter.label else filter.view
            count = self.counts.get(key)
            title = SHORT_LABELS.get(filter.view, filter.title) if narrow and not filter.label else filter.title
            if self.search is None and index == self.view_index:
                style, lead = current, " "
            else:
                style, lead = Style(meta={"@click": f"screen.show_index({index})"}), "" if narrow else " "
            label = f"{title} {count if count is not None else '…'} "
            if index < len(BUILTIN_VIEWS):  # a built-in view's number is its key
                number = f"{(index + 1) % 10}"
                tabs.append([(lead, style, ""), (number, style + bold, ""), (f" {label}", style, "")])
            else:
                tabs.append([(f"{lead}{label}", style, "")])
        if self.search is not None:
            found = self.search_count if self.search_count is not None else "…"
            search = [(f" {self.search.title} {found} ", current, ""), (" ", None, "")]
            tabs = [search, *tabs] if narrow else [*tabs, search]
        return [part for tab in tabs for part in tab]

    def on_resize(self) -> None:
        self._render_tabs()

    # --- the queue and the thread ----------------------------------------------------------------

    @on(QueueView.Loaded)
    def _queue_loaded(self, message: QueueView.Loaded) -> None:
        if not self._side_started:
            self._side_started = True
            self.refresh_side()
        if self.search is not None:
            self.search_count = message.count
            self._render_tabs()
        if message.count == 0:
            self._show_thread(None)

    @on(QueueView.Failed)
    def _queue_failed(self, message: QueueView.Failed) -> None:
        self.notify(message.error, severity="error", timeout=8)

    @on(QueueView.Highlighted)
    def _highlighted(self, message: QueueView.Highlighted) -> None:
        self._from_history = False
        if self._thread_timer is not None:
            self._thread_timer.stop()
        if message.row is None:
            return
        if self.thread is not None and self.thread.conversation.id == message.row.id:
            if self.thread.conversation.version != message.row.version:
                self.load_thread(message.row.id)
            return
        row_id = message.row.id
        self._thread_timer = self.set_timer(self.THREAD_DELAY, lambda: self.load_thread(row_id))

    def load_thread(self, conversation_id: int) -> None:
        self._thread_generation += 1
        self._fetch_thread(conversation_id, self._thread_generation)

    @work(thread=True, exclusive=True, group="thread")
    def _fetch_thread(self, conversation_id: int, generation: int) -> None:
        from agentdesk.app import conversations

        try:
            thread = conversations.thread(self.desk, conversation_id)
        except Exception as error:
            self.post_message(ThreadFailed(str(error)))
            return
        self.post_message(ThreadLoaded(thread, generation))

    def on_thread_loaded(self, message: ThreadLoaded) -> None:
        if message.generation != self._thread_generation:
            return
        self._show_thread(message.thread)

    def on_thread_failed(self, message: ThreadFailed) -> None:
        self.notify(message.error, severity="error")

    def _show_thread(self, thread: Thread | None) -> None:
        same = thread is not None and self.thread is not None and self.thread.conversation.id == thread.conversation.id
        self.thread = thread
        if not self.ready:
            return  # drawn by _mount_rest in a moment
        colleagues = getattr(self.app, "colleagues", {})
        self.thread_view.presence = colleagues.get(thread.conversation.id, "") if thread else ""
        self.thread_view.show(thread, keep_scroll=same)
        self.query_one(CustomerPane).show(thread.customer if thread else None)
        if self.app.screen is self and hasattr(self.app, "set_presence"):
            self.app.set_presence(thread.conversation.id if thread else None, "viewing")

    def show_colleagues(self, colleagues: dict[int, str]) -> None:
        """Other agents' presence: on their queue rows and, for the open conversation, the thread header."""
        self.queue.set_presence(colleagues)
        if not self.ready:
            return
        text = colleagues.get(self.thread.conversation_id, "") if self.thread else ""
        if text != self.thread_view.presence:
            self.thread_view.presence = text
            self.thread_view.show(self.thread, keep_scroll=True)

    def on_screen_resume(self) -> None:
        # Back from the composer or a dialog: this agent is viewing the open thread again.
        if hasattr(self.app, "set_presence"):
            self.app.set_presence(self.thread.conversation.id if self.thread else None, "viewing")

    @on(CustomerPane.OpenConversation)
    def _open_from_history(self, message: CustomerPane.OpenConversation) -> None:
        self._from_history = True
        self.load_thread(message.conversation_id)
        self.add_class("-zoomed")
        self.queue.focus()

    def reload(self) -> None:
        """Something changed (here or in another process): fresh rows, counts and thread; cursor and drafts stay."""
        self.queue.reload()
        self.refresh_side()
        if self.thread is not None:
            self.load_thread(self.thread.conversation_id)

    # --- actions: moving -------------------------------------------------------------------------

    def action_cursor_down(self) -> None:
        self.queue.action_cursor_down()

    def action_cursor_up(self) -> None:
        self.queue.action_cursor_up()

    def action_cursor_first(self) -> None:
        self.queue.action_cursor_first()

    def action_cursor_last(self) -> None:
        self.queue.action_cursor_last()

    def action_page_down(self) -> None:
        self.queue.action_page_down()

    def action_page_up(self) -> None:
        self.queue.action_page_up()

    def action_mark(self) -> None:
        self.queue.toggle_mark()
        self.queue.move(1)

    def action_unmark_all(self) -> None:
        self.queue.clear_marks()

    def action_open(self) -> None:
        self.toggle_class("-zoomed")
        if self.thread is None and self.queue.current_row is not None:
            self.load_thread(self.queue.current_row.id)

    def action_thread_scroll(self, lines: int) -> None:
        if not self.ready:
            return
        self.thread_view.scroll_relative(y=lines * 3, animate=False)

    def action_thread_page(self, pages: int) -> None:
        if not self.ready:
            return
        view = self.thread_view
        view.scroll_relative(y=pages * max(1, view.size.height - 2), animate=False)

    def action_toggle_quoted(self) -> None:
        if not self.ready:
            return
        self.thread_view.toggle_quoted()

    def action_toggle_customer(self) -> None:
        if not self.ready:
            return
        visible = self.query_one(CustomerPane).display
        self.set_class(not visible, "-customer")
        self.set_class(visible, "-no-customer")

    def action_focus_history(self) -> None:
        if not self.ready:
            return
        if not self.query_one(CustomerPane).display:
            self.action_toggle_customer()
        history = self.query_one("#customer-history", OptionList)
        if history.option_count and history.highlighted is None:
            history.highlighted = 0
        history.focus()

    def action_show_view(self, name: str) -> None:
        if name == "mine" and hasattr(self.app, "alerts_seen"):
            self.app.alerts_seen()
        self.action_show_index(BUILTIN_VIEWS.index(name))

    def action_show_index(self, index: int) -> None:
        self.search = None
        self.view_index = index % len(self.filters)
        self.queue.show(self.current_filter)
        self.queue.focus()
        self._render_tabs()

    def action_next_view(self) -> None:
        self.action_show_index(self.view_index + (0 if self.search else 1))

    def action_previous_view(self) -> None:
        self.action_show_index(self.view_index - (0 if self.search else 1))

    def action_search(self) -> None:
        if not self.ready:
            return
        field = self.query_one("#search", Input)
        self._closing_search = False
        field.value = self.search.query if self.search else ""
        field.add_class("-visible")
        field.focus()

    @on(Input.Submitted, "#search")
    def _run_search(self, event: Input.Submitted) -> None:
        query = event.value.strip()
        if not query:
            event.input.remove_class("-visible")
            self.action_clear_search()
            return
        try:
            queue_actions.validate_query(self.desk, query)
        except Exception as error:
            self.notify(str(error), severity="error", timeout=8)
            return
        self.search = Filter("all", query, f"Search: {query}")
        self.search_count = None
        # The box stays until the rows arrive and closes with them: hiding it now re-lays out the
        # screen and repaints it (queue, thread) while the match runs, and those frames compete with
        # the match for the interpreter. One layout, with the results.
        self._closing_search = True
        self.queue.show(self.search)
        self._render_tabs()

    def action_clear_search(self) -> None:
        if not self.ready:
            return
        field = self.query_one("#search", Input)
        self._closing_search = False
        if field.has_class("-visible"):
            field.remove_class("-visible")
            self.queue.focus()
        elif self.has_class("-zoomed"):
            self.remove_class("-zoomed")
            if self._from_history and self.queue.current_row is not None:
                self.load_thread(self.queue.current_row.id)
            self.queue.focus()
        elif self.search is not None:
            self.action_show_index(self.view_index)
        elif not self.queue.has_focus:
            self.queue.focus()

    def action_refresh_all(self) -> None:
        self.reload()

    # --- actions: changing conversations ---------------------------------------------------------

    def _targets(self) -> list[int]:
        if self.queue.marked:
            return sorted(self.queue.marked)
        if self._from_history and self.thread is not None:
            return [self.thread.conversation_id]
        row = self.queue.current_row
        return [row.id] if row else []

    def _describe(self, ids: list[int]) -> str:
        return format.ref(ids[0]) if len(ids) == 1 else f"{len(ids)} conversations"

    def _versions(self, ids: list[int]) -> dict[int, int]:
        """The version of each conversation as the agent sees it (rows on screen, the open thread)."""
        versions = {}
        for conversation_id in ids:
            version = self.queue.version_of(conversation_id)
            if self.thread is not None and self.thread.conversation.id == conversation_id:
                version = self.thread.conversation.version if version is None else version
            if version is not None:
                versions[conversation_id] = version
        return versions

    def _change(self, ids: list[int], **changes) -> None:
        self.last_changed = list(ids)
        versions = self._versions(ids)

        def change() -> list[str]:
            from agentdesk.app import conversations

            return conversations.change(self.desk, ids, versions=versions, **changes)

        self._act(change)

    @work(thread=True, group="actions")
    def _act(self, call: Callable[[], list[str] | str]) -> None:
        from agentdesk.app import conversations

        try:
            result = call()
        except conversations.StaleView as stale:
            # Refresh first, then say so: the agent looks again at what changed before acting.
            self.post_message(
                ActionFailed(str(stale) + ("\n" + "\n".join(stale.done) if stale.done else ""), reload=True)
            )
            return
        except Exception as error:
            self.post_message(ActionFailed(str(error)))
            return
        lines = [result] if isinstance(result, str) else result
        self.post_message(ActionDone("\n".join(lines) or "nothing changed"))

    def on_action_done(self, message: ActionDone) -> None:
        self.notify(message.text, timeout=4)
        self.queue.marked.clear()
        self.reload()

    def on_action_failed(self, message: ActionFailed) -> None:
        if message.reload:
            self.queue.marked.clear()
            self.reload()
            self.notify(message.text, severity="warning", timeout=10)
            return
        self.notify(message.text, severity="error", timeout=8)

    def action_claim(self) -> None:
        ids = self._targets()
        if ids:
            self.last_changed = list(ids)

            def claim() -> list[str]:
                from agentdesk.app import conversations

                return conversations.claim(self.desk, ids)

            self._act(claim)

    def action_spam(self) -> None:
        ids = self._targets()
        if ids:
            undo = self.search is None and self.filters[self.view_index].view == "spam"
            self.last_changed = list(ids)

            def mark() -> list[str]:
                from agentdesk.app import spam as spam_actions

                return [
                    f"{item['ref']}: " + (f"back in {item['view']}" if undo else "moved to spam")
                    for item in spam_actions.mark_spam(self.desk, ids, undo=undo)
                ]

            self._act(mark)

    def action_block(self) -> None:
        ids = self._targets()
        if ids:

            def block() -> list[str]:
                from agentdesk.app import spam as spam_actions

                blocked = [spam_actions.block_sender(self.desk, each) for each in ids]
                return [f"blocked {item['pattern']}; {item['ref']} moved to spam" for item in blocked]

            self._act(block)

    def action_resend(self) -> None:
        ids = self._targets()
        if not ids:
            self.notify("no conversation selected", severity="warning")
            return

        def resend() -> list[str]:
            from agentdesk.app import conversations

            return [conversations.resend_latest(self.desk, conversation_id) for conversation_id in ids]

        self._act(resend)

    def action_unassign(self) -> None:
        ids = self._targets()
        if ids:
            self._change(ids, assignee=None)

    def action_assign(self) -> None:
        from agentdesk.tui.screens.dialogs import ChoiceScreen

        ids = self._targets()
        if not ids:
            return
        logins = [self.desk.agent] + sorted(set(self.desk.settings.agents) - {self.desk.agent})
        choices = [
            (login, f"{self.desk.settings.agent_name(login)} ({login})" + (" — me" if login == self.desk.agent else ""))
            for login in logins
        ]
        choices.append(("\x00none", "nobody (unassign)"))

        def chosen(value: str | None) -> None:
            if value is not None:
                assignee = None if value == "\x00none" else value
                self._change(ids, assignee=assignee)

        current = self.queue.current_row.assignee if self.queue.current_row else None
        self.app.push_screen(ChoiceScreen(f"Assign {self._describe(ids)} to", choices, current=current), chosen)

    def action_status(self) -> None:
        from agentdesk.tui.screens.dialogs import ChoiceScreen

        ids = self._targets()
        if not ids:
            return

        def chosen(value: str | None) -> None:
            if value:
                self._change(ids, status=value)

        current = self.queue.current_row.status if self.queue.current_row else None
        choices = [(status, STATUS_LABELS[status]) for status in STATUS_LABELS]
        self.app.push_screen(ChoiceScreen(f"Status of {self._describe(ids)}", choices, current=current), chosen)

    def action_priority(self) -> None:
        from agentdesk.tui.screens.dialogs import ChoiceScreen

        ids = self._targets()
        if not ids:
            return

        def chosen(value: str | None) -> None:
            if value:
                self._change(ids, priority=value)

        current = self.queue.current_row.priority if self.queue.current_row else None
        choices = [(p, p) for p in ("low", "normal", "high", "urgent")]
        self.app.push_screen(ChoiceScreen(f"Priority of {self._describe(ids)}", choices, current=current), chosen)

    def action_tag(self) -> None:
        from agentdesk.tui.screens.dialogs import PromptScreen

        ids = self._targets()
        if not ids:
            return
        current = " ".join(self.thread.tags) if self.thread and self.thread.conversation.id == ids[0] else ""

        def entered(value: str | None) -> None:
            if value and value.strip():
                add, remove = format.parse_tags(value)
                self._change(ids, add_tags=add, remove_tags=remove)

        hint = f"now: {current}" if current else "e.g. +billing -refund (a bare word adds)"
        self.app.push_screen(PromptScreen(f"Tags of {self._describe(ids)}: +add -remove", hint=hint), entered)

    def action_snooze(self) -> None:
        from agentdesk.tui.screens.dialogs import PromptScreen

        ids = self._targets()
        if not ids:
            return

        def entered(value: str | None) -> None:
            if value is None:
                return
            try:
                until = format.parse_until(value, self.now())
            except Exception as error:
                self.notify(str(error), severity="error", timeout=8)
                return
            self._change(ids, snoozed_until=until)

        self.app.push_screen(
            PromptScreen(f"Snooze {self._describe(ids)} until", hint="4h, 2d, tomorrow 09:00, 2026-12-01 09:00, none"),
            entered,
        )

    def action_merge(self) -> None:
        from agentdesk.tui.screens.dialogs import PromptScreen

        ids = self._targets()
        if not ids:
            return
        history = [h.ref for h in self.thread.customer.history[:4]] if self.thread else []
        hint = "the ref of the conversation to keep, e.g. " + (", ".join(history) if history else "AD-1042")

        def entered(value: str | None) -> None:
            if value and value.strip():
                self._act(lambda: self._merge(ids, value))

        self.app.push_screen(PromptScreen(f"Merge {self._describe(ids)} into", hint=hint), entered)

    def action_report(self) -> None:
        from agentdesk.tui.screens.report import ReportScreen

        self.app.push_screen(ReportScreen(self.desk, now=self.now))

    def action_copy_ref(self) -> None:
        ids = self._targets()
        if ids:
            refs = " ".join(format.ref(i) for i in ids)
            self.app.copy_to_clipboard(refs)
            self.notify(f"copied {refs}")

    # --- composing -------------------------------------------------------------------------------

    def action_reply(self) -> None:
        self._start_composer("reply")

    def action_note(self) -> None:
        self._start_composer("note")

    def action_editor(self) -> None:
        self._start_composer("reply", editor=True)

    def action_forward(self) -> None:
        self._start_composer("forward")

    def action_new_conversation(self) -> None:
        from agentdesk.tui.screens.new_conversation import NewConversationScreen

        self.app.push_screen(NewConversationScreen(self.desk))

    def _start_composer(self, kind: str, *, editor: bool = False) -> None:
        ids = self._targets()
        if not ids:
            self.notify("no conversation selected", severity="warning")
            return
        target = ids[0]
        if self.thread is not None and self.thread.conversation.id == target:
            self._open_composer(self.thread, kind, editor)
        else:
            self._thread_for_composer(target, kind, editor)

    @work(thread=True, exclusive=True, group="thread")
    def _thread_for_composer(self, conversation_id: int, kind: str, editor: bool) -> None:
        from agentdesk.app import conversations

        try:
            thread = conversations.thread(self.desk, conversation_id)
        except Exception as error:
            self.post_message(ThreadFailed(str(error)))
            return
        self.app.call_from_thread(self._open_composer, thread, kind, editor)

    def _open_composer(self, thread: Thread, kind: str, editor: bool) -> None:
        from agentdesk.tui.screens.composer import ComposerScreen

        self._show_thread(thread)
        composer = ComposerScreen(self.desk, thread, kind=kind, now=self.now, open_editor=editor)
        self.app.push_screen(composer)
        apply_pending_template(self, composer)
