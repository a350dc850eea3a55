"""The queue: a Line-API ScrollView that pages conversations from the database.

Nothing here holds the whole queue. `virtual_size` comes from a count query; `render_line` serves
rows from an LRU of fixed-size windows; a missing window is fetched by a thread worker (a keyset
read after the previous window when that one is cached, an offset read otherwise) and drawn when
its message arrives. A reload (a search, a change by another process) fetches the count, the
cursor row's new position and the windows on screen in one worker, then swaps them in at once, so
the list never flickers and the cursor stays on the conversation it was on.

Hold times and SLA badges tick once a second by refreshing only their columns. A reply waiting out
its undo window counts down at the start of its row's subject (`↶ 7 s`): the screen says when it
was sent (`show_sending`), and a timer that runs only while a countdown does redraws those rows.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from rich.cells import cell_len, set_cell_size
from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.geometry import Region, Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip
from textual.timer import Timer

from agentdesk.app import queue as queue_actions
from agentdesk.app.desk import Desk
from agentdesk.app.queue import Filter, Row, Window
from agentdesk.tui import format
from agentdesk.tui.widgets import LazyComponentStyles, shown_line
from agentdesk.tui.workers import work


def _fit(text: str, width: int) -> str:
    text = shown_line(text)
    if width <= 0:
        return ""
    if cell_len(text) > width:
        return set_cell_size(text, width - 1) + "…"
    return set_cell_size(text, width)


@dataclass(frozen=True)
class Column:
    key: str
    title: str
    width: int  # 0: takes what is left


def layout(width: int) -> list[Column]:
    """Columns that fit `width`: the less important ones drop out on narrow terminals."""
    wide = width >= 110
    columns = [
        Column("mark", "", 2),
        Column("ref", "Ref", 9),
        Column("customer", "Customer", 18 if wide else 14),
        Column("subject", "Subject", 0),
    ]
    if wide:
        columns.append(Column("channel", "Channel", 7))
    columns += [Column("status", "Status", 7), Column("priority", "Prio", 6)]
    if width >= 96:
        columns.append(Column("assignee", "Assignee", 9))
    columns += [Column("hold", "Waiting", 7), Column("sla", "     SLA", 8)]
    fixed = sum(c.width for c in columns) + len(columns) - 1
    subject = max(8, width - fixed)
    return [Column(c.key, c.title, c.width or subject) for c in columns]


class QueueView(LazyComponentStyles, ScrollView, can_focus=True):
    """The conversation list of one view or search."""

    COMPONENT_CLASSES = {
        "queue--header",
        "queue--cursor",
        "queue--cursor-blurred",
        "queue--marked",
        "queue--muted",
        "queue--ok",
        "queue--warning",
        "queue--breached",
        "queue--paused",
        "queue--urgent",
        "queue--high",
        "queue--draft",
        "queue--presence",
        "queue--sending",
    }

    DEFAULT_CSS = """
    /* Rows are cut to the width: a horizontal scrollbar would only cover the last row (the
       cursor's, after it moved down a page). */
    QueueView { background: $surface; overflow-x: hidden; }
    QueueView > .queue--header { text-style: bold; color: $text-muted; background: $panel; }
    QueueView > .queue--cursor { background: $block-cursor-background; color: $block-cursor-foreground; }
    QueueView > .queue--cursor-blurred { background: $block-cursor-blurred-background; }
    QueueView > .queue--marked { background: $secondary 30%; }
    QueueView > .queue--muted { color: $text-muted; }
    QueueView > .queue--ok { color: $text-success; }
    QueueView > .queue--warning { color: $text-warning; text-style: bold; }
    QueueView > .queue--breached { color: $text-error; text-style: bold; }
    QueueView > .queue--paused { color: $text-muted; text-style: italic; }
    QueueView > .queue--urgent { color: $text-error; text-style: bold; }
    QueueView > .queue--high { color: $text-warning; }
    QueueView > .queue--draft { color: $text-accent; }
    QueueView > .queue--presence { color: $text-warning; text-style: bold; }
    QueueView > .queue--sending { color: $text-warning; text-style: bold; }
    """

    WINDOW = 100
    FIRST_ROWS = 48  # at most, a fresh view first reads a screenful (`first_rows`), then the rest of its window
    CACHED_WINDOWS = 40  # at most 4 000 rows in memory, whatever the queue's size

    # No repaint on change: the watcher refreshes just the two rows involved.
    cursor: reactive[int] = reactive(0, always_update=True, init=False, repaint=False)

    class Highlighted(Message):
        """The cursor is on another conversation (or none)."""

        def __init__(self, row: Row | None) -> None:
            super().__init__()
            self.row = row

    class Loaded(Message):
        """A (re)load finished: the view's size is known and its first rows are on screen."""

        def __init__(self, count: int) -> None:
            super().__init__()
            self.count = count

    class RowsShown(Message):
        """Rows of a (re)load are on screen (the first window; the count may still be coming)."""

    class Failed(Message):
        def __init__(self, error: str) -> None:
            super().__init__()
            self.error = error

    class _WindowLoaded(Message):
        def __init__(self, generation: int, index: int, window: Window) -> None:
            super().__init__()
            self.generation, self.index, self.window = generation, index, window

    class _Reloaded(Message):
        def __init__(
            self, generation: int, count: int, cursor: int, windows: dict[int, Window], final: bool = True
        ) -> None:
            super().__init__()
            self.generation, self.count, self.cursor, self.windows = generation, count, cursor, windows
            self.final = final  # False: `count` is only what the first window holds; _Counted follows

    class _Counted(Message):
        def __init__(self, generation: int, count: int) -> None:
            super().__init__()
            self.generation, self.count = generation, count

    def __init__(self, desk: Desk, *, now: Callable[[], datetime], **kwargs) -> None:
        super().__init__(**kwargs)
        self.desk = desk
        self.now = now
        self.filter = Filter()
        self.count = 0
        self.loaded = False
        self.loaded_generation = -1  # the reload whose rows are on screen
        self.marked: set[int] = set()
        self._generation = 0
        self._windows: OrderedDict[int, Window] = OrderedDict()
        self._stale: dict[int, Window] = {}
        self._pending: set[int] = set()
        self._columns: list[Column] = []
        self._columns_width = -1
        self._highlighted: int | None = None
        self._styles: dict[str, Style] = {}
        self._strips: dict[tuple, list[Segment]] = {}
        self.presence: dict[int, str] = {}  # other agents on a row's conversation: "Dana is replying"
        # A reply of this agent's in its undo window: conversation id -> when delivery may take it.
        self.sending: dict[int, datetime] = {}
        self._sending_timer: Timer | None = None
        # Under "Nothing here." when a new desk has neither a source nor a conversation: how it gets
        # some (read by a worker when a view comes back empty).
        self.empty_hint: tuple[str, ...] = ()

    # --- loading -------------------------------------------------------------------------------

    FIRST_PAINT_WAIT = 0.05  # seconds the very first view may wait for its prefetched rows

    @classmethod
    def first_rows(cls, screen_height: int) -> int:
        """How many rows a fresh view reads first on a screen this tall: the queue takes at most
        half of it (45 %, 40 % when narrow: main.tcss), and reading fewer rows is most of what a
        first frame can save (a cold read costs in proportion to the rows). Should the queue be
        taller, its other rows arrive right after that frame with the rest of the window."""
        return max(8, min(cls.FIRST_ROWS, screen_height // 2))

    def show(self, filter: Filter) -> None:
        """Switch to another view or search; the cursor starts at the top."""
        self.filter = filter
        self.marked.clear()
        if not self.loaded:
            # The very first view: its rows were read while the app started. Taking them here (a few
            # ms at most) makes the first frame show rows instead of "Loading…" and a worker round trip.
            limit = self.first_rows(self.app.size.height)
            first = queue_actions.prefetched_window(self.desk, filter, limit=limit, wait=self.FIRST_PAINT_WAIT)
            if first is not None:
                self._generation += 1
                complete = len(first.rows) < limit
                self.on_queue_view__reloaded(
                    self._Reloaded(self._generation, len(first.rows), 0, {0: first}, final=complete)
                )
                return
        self._reload(keep=None, cursor=0)

    def reload(self) -> None:
        """Same view, fresh rows (another process changed something); the cursor stays on its conversation."""
        row = self.current_row
        self._reload(keep=row.id if row else None, cursor=self.cursor)

    @property
    def generation(self) -> int:
        return self._generation

    def _reload(self, *, keep: int | None, cursor: int) -> None:
        self._generation += 1
        queue_actions.forget_matches(
            self.desk
        )  # a search is matched afresh once per (re)load, then shared by its reads
        self._stale = dict(self._windows) if keep is not None or self.loaded else {}
        height = max(self.size.height, 24)
        self._load_all(
            self._generation,
            self.filter,
            keep,
            cursor,
            int(self.scroll_offset.y),
            height,
            self.first_rows(self.app.size.height),
        )

    @work(thread=True, exclusive=True, group="queue-reload")
    def _load_all(
        self, generation: int, filter: Filter, keep: int | None, cursor: int, top: int, height: int, first_rows: int
    ) -> None:
        try:
            if keep is None and cursor == 0:
                # A fresh view paints its first rows before the (slower) count is known; a screenful
                # first (less to read and build while the UI starts), then the whole first window.
                first = queue_actions.first_window(self.desk, filter, limit=first_rows)
                complete = len(first.rows) < first_rows
                self.post_message(self._Reloaded(generation, len(first.rows), 0, {0: first}, final=complete))
                return  # the rest of the window and the count: `_finish_first`, once the rows are drawn
            count = queue_actions.count(self.desk, filter)
            if keep is not None:
                position = queue_actions.position(self.desk, filter, keep)
                if position is not None:
                    cursor = position
            cursor = max(0, min(cursor, count - 1))
            windows: dict[int, Window] = {}
            first_row = min(top, cursor)
            last_row = max(top + height, cursor + 1)
            for index in range(first_row // self.WINDOW, last_row // self.WINDOW + 1):
                if index * self.WINDOW >= count:
                    break
                after = None
                previous = windows.get(index - 1)
                if previous is not None and len(previous.rows) == self.WINDOW:
                    after = previous.rows[-1].sort_key
                windows[index] = queue_actions.window(
                    self.desk, filter, offset=index * self.WINDOW, limit=self.WINDOW, after=after
                )
        except Exception as error:  # a bad search or a lost database: say so, keep the old rows
            self.post_message(self.Failed(str(error)))
            self.post_message(self.RowsShown())
            return
        self.post_message(self._Reloaded(generation, count, cursor, windows))

    def on_queue_view__reloaded(self, message: _Reloaded) -> None:
        if message.generation != self._generation:
            return
        message.stop()
        self._windows = OrderedDict(sorted(message.windows.items()))
        self._stale = {}
        self._pending.clear()
        self.count = message.count
        self.loaded = True
        self.loaded_generation = message.generation
        self._strips.clear()
        self.virtual_size = Size(self.size.width, self.count + 1)
        self.cursor = message.cursor
        self.refresh()
        self.post_message(self.RowsShown())
        if message.final:
            self.post_message(self.Loaded(self.count))
            self._prefetch_end()
            if not self.count:
                self._load_empty_hint()
        else:
            # Read the rest after this frame is drawn, so the first paint does not wait for it.
            self.call_after_refresh(self._finish_first, message.generation, self.filter)

    @work(thread=True, exclusive=True, group="queue-first")
    def _finish_first(self, generation: int, filter: Filter) -> None:
        try:
            full = queue_actions.window(self.desk, filter, offset=0, limit=self.WINDOW)
            self.post_message(self._WindowLoaded(generation, 0, full))
            self.post_message(self._Counted(generation, queue_actions.count(self.desk, filter)))
        except Exception as error:
            self.post_message(self.Failed(str(error)))

    def on_queue_view__counted(self, message: _Counted) -> None:
        message.stop()
        if message.generation != self._generation:
            return
        self.count = message.count
        self.virtual_size = Size(self.size.width, self.count + 1)
        self.post_message(self.Loaded(self.count))
        self._prefetch_end()
        if not self.count:
            self._load_empty_hint()

    @work(thread=True, exclusive=True, group="queue-hint")
    def _load_empty_hint(self) -> None:
        try:
            hint = queue_actions.empty_hint(self.desk)
        except Exception:  # the load that came back empty reports a database that failed
            return
        if hint != self.empty_hint:
            self.empty_hint = hint
            self.app.call_from_thread(self.refresh)

    def _prefetch_end(self) -> None:
        """Read the view's last rows in the background: `G` / End then lands on rows already here."""
        if self.count > self.WINDOW:
            self._request((self.count - 1) // self.WINDOW)

    def _request(self, index: int) -> None:
        if index in self._pending or index in self._windows:
            return
        self._pending.add(index)
        after = None
        previous = self._windows.get(index - 1)
        if previous is not None and len(previous.rows) == self.WINDOW:
            after = previous.rows[-1].sort_key
        from_end = None
        start = index * self.WINDOW
        if after is None and start > self.WINDOW and self.count - start < start:
            # Nearer the end than the start (G, End): read backwards from the end, not past a big OFFSET.
            from_end = max(0, self.count - start - self.WINDOW)
        self._load_window(
            self._generation,
            self.filter,
            index,
            after,
            from_end,
            min(self.WINDOW, self.count - start) if from_end is not None else self.WINDOW,
        )

    @work(thread=True, group="queue-window")
    def _load_window(
        self, generation: int, filter: Filter, index: int, after, from_end=None, limit: int | None = None
    ) -> None:
        try:
            window = queue_actions.window(
                self.desk,
                filter,
                offset=index * self.WINDOW,
                limit=limit or self.WINDOW,
                after=after,
                from_end=from_end,
            )
        except Exception as error:
            self.post_message(self.Failed(str(error)))
            return
        self.post_message(self._WindowLoaded(generation, index, window))

    def on_queue_view__window_loaded(self, message: _WindowLoaded) -> None:
        message.stop()
        if message.generation != self._generation:
            return
        self._pending.discard(message.index)
        self._windows[message.index] = message.window
        while len(self._windows) > self.CACHED_WINDOWS:
            self._windows.popitem(last=False)
        self.refresh()
        if self._highlighted is None:
            self._announce()

    def row_at(self, index: int) -> Row | None:
        window_index, offset = divmod(index, self.WINDOW)
        window = self._windows.get(window_index)
        if window is not None:
            self._windows.move_to_end(window_index)
        else:
            window = self._stale.get(window_index)
        if window is None or offset >= len(window.rows):
            return None
        return window.rows[offset]

    def version_of(self, conversation_id: int) -> int | None:
        """The version of a conversation as its row on screen shows it (None: not in a cached window)."""
        for window in self._windows.values():
            for row in window.rows:
                if row.id == conversation_id:
                    return row.version
        return None

    @property
    def current_row(self) -> Row | None:
        if not self.count:
            return None
        return self.row_at(self.cursor)

    @property
    def selected_ids(self) -> list[int]:
        """The marked conversations, or the one under the cursor."""
        if self.marked:
            return sorted(self.marked)
        row = self.current_row
        return [row.id] if row else []

    # --- cursor --------------------------------------------------------------------------------

    @property
    def page_rows(self) -> int:
        return max(1, self.size.height - 1)

    def validate_cursor(self, value: int) -> int:
        return max(0, min(value, self.count - 1)) if self.count else 0

    def watch_cursor(self, old: int, new: int) -> None:
        top = int(self.scroll_offset.y)
        if new < top:
            self.scroll_to(y=new, animate=False, immediate=True)
        elif new >= top + self.page_rows:
            self.scroll_to(y=new - self.page_rows + 1, animate=False, immediate=True)
        self._refresh_row(old)
        self._refresh_row(new)
        self._announce()
        self._prefetch(new)

    def _prefetch(self, index: int) -> None:
        """Ask for the neighbouring window before the cursor gets there (PgDn/PgUp never wait)."""
        if not self.loaded or not self.count:
            return
        window, offset = divmod(index, self.WINDOW)
        margin = 2 * self.page_rows
        if offset >= self.WINDOW - margin and (window + 1) * self.WINDOW < self.count:
            if window in self._windows:  # a keyset read after it, not an offset read
                self._request(window + 1)
        elif offset < margin and window > 0:
            self._request(window - 1)

    def _refresh_row(self, index: int) -> None:
        y = index - int(self.scroll_offset.y) + 1
        if 1 <= y < self.size.height:
            self.refresh(Region(0, y, self.size.width, 1))

    def _announce(self) -> None:
        row = self.current_row
        if row is None and self.count:
            self._request(self.cursor // self.WINDOW)
            return
        key = row.id if row else None
        if key != self._highlighted or row is None:
            self._highlighted = key
            self.post_message(self.Highlighted(row))

    def move(self, delta: int) -> None:
        self.cursor = self.cursor + delta

    def action_cursor_down(self) -> None:
        self.move(1)

    def action_cursor_up(self) -> None:
        self.move(-1)

    def action_cursor_first(self) -> None:
        self.cursor = 0

    def action_cursor_last(self) -> None:
        self.cursor = self.count - 1

    def action_page_down(self) -> None:
        self.move(self.page_rows)

    def action_page_up(self) -> None:
        self.move(-self.page_rows)

    def toggle_mark(self) -> None:
        row = self.current_row
        if row is None:
            return
        self.marked.symmetric_difference_update({row.id})
        self._refresh_row(self.cursor)

    def set_presence(self, presence: dict[int, str]) -> None:
        if presence != self.presence:
            self.presence = presence
            self.refresh()  # the strip cache is keyed on the presence text, so only those rows change

    def show_sending(self, conversation_id: int, seconds: float) -> None:
        """Count down on the conversation's row for `seconds` (0: stop, the reply was taken back or
        sent at once)."""
        if seconds > 0:
            self.sending[conversation_id] = self.now() + timedelta(seconds=seconds)
        elif self.sending.pop(conversation_id, None) is None:
            return
        self._redraw_rows({conversation_id})
        if self.sending and self._sending_timer is None:
            self._sending_timer = self.set_interval(1.0, self._tick_sending)

    def sending_left(self, conversation_id: int) -> int:
        """Whole seconds until the conversation's held reply goes to delivery (0: none waits)."""
        until = self.sending.get(conversation_id)
        if until is None:
            return 0
        return max(0, math.ceil((until - self.now()).total_seconds()))

    def _tick_sending(self) -> None:
        counting = set(self.sending)
        for conversation_id in counting:
            if not self.sending_left(conversation_id):
                del self.sending[conversation_id]
        self._redraw_rows(counting)
        if not self.sending and self._sending_timer is not None:
            self._sending_timer.stop()
            self._sending_timer = None

    def _redraw_rows(self, conversation_ids: set[int]) -> None:
        """Redraw the rows on screen of these conversations (from the cached windows: no query)."""
        top = int(self.scroll_offset.y)
        for index in range(top, min(top + self.page_rows, self.count)):
            row = self.row_at(index)
            if row is not None and row.id in conversation_ids:
                self._refresh_row(index)

    def clear_marks(self) -> None:
        self.marked.clear()
        self.refresh()

    def on_click(self, event: events.Click) -> None:
        if event.y >= 1:
            self.cursor = int(self.scroll_offset.y) + event.y - 1

    def on_focus(self) -> None:
        self._refresh_row(self.cursor)

    def on_blur(self) -> None:
        self._refresh_row(self.cursor)

    # --- drawing -------------------------------------------------------------------------------

    def on_mount(self) -> None:
        self.set_interval(1.0, self._tick)
        self.follow_theme()

    def on_resize(self) -> None:
        self.virtual_size = Size(self.size.width, self.count + 1)

    def _tick(self) -> None:
        """Hold times and SLA badges move with the clock: redraw only their columns."""
        if not self.count or not self.size.height:
            return
        x = 0
        for column in self.columns:
            if column.key == "hold":
                self.refresh(Region(x, 1, self.size.width - x, self.size.height - 1))
                return
            x += column.width + 1

    @property
    def columns(self) -> list[Column]:
        width = self.scrollable_content_region.width
        if width != self._columns_width:
            self._columns = layout(width)
            self._columns_width = width
        return self._columns

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        if y == 0:
            return self._header_strip(width)
        index = int(self.scroll_offset.y) + y - 1
        if not self.loaded:
            return self._muted_line(" Loading…" if y == 1 else "", width)
        if index >= self.count:
            if self.count == 0 and y == 1:
                return self._muted_line(" Nothing here.", width)
            if self.count == 0 and 3 <= y < 3 + len(self.empty_hint):
                return self._muted_line(" " + self.empty_hint[y - 3], width)
            return Strip.blank(width, self.base_style)
        row = self.row_at(index)
        if row is None:
            self._request(index // self.WINDOW)
            return self._muted_line("  …", width)
        return self._row_strip(row, index, width)

    def _muted_line(self, text: str, width: int) -> Strip:
        return Strip([Segment(_fit(text, width), self.base_style + self.style_of("queue--muted"))], width)

    def _forget_styles(self) -> None:
        self._strips.clear()  # drawn with the old styles
        super()._forget_styles()

    def _header_strip(self, width: int) -> Strip:
        style = self.base_style + self.style_of("queue--header")
        text = " ".join(_fit(c.title, c.width) for c in self.columns)
        return Strip([Segment(_fit(text, width), style)], width)

    def _row_strip(self, row: Row, index: int, width: int) -> Strip:
        cursor = index == self.cursor
        marked = row.id in self.marked
        focused = self.has_focus
        base = self.base_style
        # The cursor bar goes over a cell's own colours too (a red SLA on the blue bar is unreadable,
        # in light themes most), keeping its bold; a marked row only tints the background.
        over = None
        if cursor:
            over = self.style_of("queue--cursor" if focused else "queue--cursor-blurred")
            base = base + over
        elif marked:
            base = base + self.style_of("queue--marked")

        def styled(style: Style | None) -> Style:
            if style is None:
                return base
            return base + style + over if over is not None else base + style

        columns = self.columns
        # Everything but the clocks only changes with the row itself: cache it, draw the clocks live.
        present = self.presence.get(row.id, "")
        left = self.sending_left(row.id) if self.sending else 0
        key = (row.id, row.version, row.has_draft, row.bounced, cursor, marked, focused, width, present, left)
        fixed = self._strips.get(key)
        if fixed is None:
            fixed = []
            for column in columns:
                if column.key in ("hold", "sla"):
                    break
                if column.key == "subject" and (present or left):
                    # A countdown, then "Dana is replying", go first in the subject, where the eye reads.
                    room = column.width
                    if left:
                        label = _fit(f"↶ {left} s ", min(room, len(str(left)) + 5))
                        fixed.append(Segment(label, styled(self.style_of("queue--sending"))))
                        room -= cell_len(label)
                    if present:
                        label = _fit(f"● {present} ", min(room, cell_len(present) + 3))
                        fixed.append(Segment(label, styled(self.style_of("queue--presence"))))
                        room -= cell_len(label)
                    fixed.append(Segment(_fit(row.subject, room), base))
                    fixed.append(Segment(" ", base))
                    continue
                text, style = self._cell(column.key, row, None)
                fixed.append(Segment(_fit(text, column.width), styled(style)))
                fixed.append(Segment(" ", base))
            if len(self._strips) > 4000:
                self._strips.clear()
            self._strips[key] = fixed
        segments = list(fixed)
        now = self.now()
        clocks = [c for c in columns if c.key in ("hold", "sla")]
        for position, column in enumerate(clocks):
            text, style = self._cell(column.key, row, now)
            segments.append(Segment(_fit(text, column.width), styled(style)))
            if position < len(clocks) - 1:
                segments.append(Segment(" ", base))
        return Strip(segments, width).crop(0, width)

    def _cell(self, key: str, row: Row, now: datetime | None) -> tuple[str, Style | None]:
        if key == "mark":
            if row.id in self.marked:
                return "●", self.style_of("queue--draft")
            if row.bounced:  # a reply bounced: the agent has to find another way to reach them
                return "↩", self.style_of("queue--breached")
            if row.has_draft:
                return "✎", self.style_of("queue--draft")
            return "", None  # nothing drawn: no style to work out (each costs a stylesheet match once)
        if key == "ref":
            return row.ref, None
        if key == "customer":
            return row.customer, None
        if key == "subject":
            return row.subject, None
        if key == "channel":
            return row.channel, None
        if key == "status":
            return row.status, None
        if key == "priority":
            style = {"urgent": "queue--urgent", "high": "queue--high"}.get(row.priority)
            return row.priority, self.style_of(style) if style else None
        if key == "assignee":
            return row.assignee or "—", None if row.assignee else self.style_of("queue--muted")
        if key == "hold":
            return format.hold(row.waiting_since, now), None  # type: ignore[arg-type]  # now is given for these columns
        if key == "sla":
            badge = format.sla_badge(status=row.status, queue_due=row.queue_due, warning_at=row.warning_at, now=now)  # type: ignore[arg-type]  # now is given for these columns
            style = {
                "ok": "queue--ok",
                "warning": "queue--warning",
                "breached": "queue--breached",
                "paused": "queue--paused",
            }.get(badge.state, "queue--muted")
            return badge.text.rjust(8), self.style_of(style)
        return "", None
