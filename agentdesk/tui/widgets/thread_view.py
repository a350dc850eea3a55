"""The thread pane: a conversation's messages and events in order, drawn as one Rich text.

A Line-API ScrollView over lines that Rich wraps once per thread and width (a Static would wrap
the whole text twice per layout, ~8× slower for a 50-message thread). Direction is plain to see
(who wrote, an arrow, a coloured bar); internal notes are tinted; quoted history and signatures
are collapsed until the agent presses the "quotes" key.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

from rich.text import Text
from textual.geometry import Size
from textual.scroll_view import ScrollView
from textual.strip import Strip

from agentdesk.tui import actions, format
from agentdesk.tui.widgets import overlay_style, shown, shown_line

if TYPE_CHECKING:  # for the annotations only: the first frame is drawn before the ORM is imported
    from agentdesk.app.conversations import Thread, ThreadItem


class ThreadView(ScrollView, can_focus=False):
    COMPONENT_CLASSES = {
        "thread--title",
        "thread--meta",
        "thread--inbound",
        "thread--outbound",
        "thread--note",
        "thread--note-body",
        "thread--event",
        "thread--quoted",
        "thread--failed",
        "thread--ok",
        "thread--warning",
        "thread--breached",
        "thread--selected",
    }

    # Its own look, loaded when it mounts (after the queue's first paint); light-theme shades: app.tcss.
    DEFAULT_CSS = """
    ThreadView > .thread--title { text-style: bold; }
    ThreadView > .thread--meta { color: $text-muted; }
    ThreadView > .thread--inbound { color: $text-primary; text-style: bold; }
    ThreadView > .thread--outbound { color: $text-success; text-style: bold; }
    ThreadView > .thread--note { color: $text-warning; text-style: bold; }
    ThreadView > .thread--note-body { background: $warning 12%; }
    ThreadView > .thread--event { color: $text-muted; text-style: italic; }
    ThreadView > .thread--quoted { color: $text-muted; }
    ThreadView > .thread--failed { color: $text-error; text-style: bold; }
    ThreadView > .thread--ok { color: $text-success; }
    ThreadView > .thread--warning { color: $text-warning; text-style: bold; }
    ThreadView > .thread--breached { color: $text-error; text-style: bold; }
    ThreadView > .thread--selected { text-style: reverse bold; }
    """

    def __init__(self, *, now: Callable[[], datetime], **kwargs) -> None:
        super().__init__(**kwargs)
        self.now = now
        self.thread: Thread | None = None
        self.show_quoted = False
        self.presence = ""  # "Dana is replying": other agents on this conversation
        self.selected_attachment = 0  # its number across the thread; 0: none selected
        self._lines: list[Strip] = []
        self._width = 0

    def show(self, thread: Thread | None, *, keep_scroll: bool = False) -> None:
        same = thread is not None and self.thread is not None and thread.conversation.id == self.thread.conversation.id
        self.thread = thread
        if not same:
            self.selected_attachment = 0
        self._layout_lines()
        if not (keep_scroll and same):
            # Newest at the bottom, like a chat: start where the latest message is.
            self.scroll_to(
                y=max(0, len(self._lines) - self.scrollable_content_region.height), animate=False, immediate=True
            )

    def attachments(self) -> list:
        """Every attachment of the thread shown, in their numbers' order."""
        return [a for item in (self.thread.items if self.thread else ()) for a in item.attachments]

    def select_attachment(self, number: int) -> None:
        """Highlight attachment `number` and scroll it into view."""
        self.selected_attachment = number
        self._layout_lines()
        marker = f"▶ [attachment {number}]"
        for index, line in enumerate(self._lines):
            if marker in line.text:
                height = self.scrollable_content_region.height
                if not self.scroll_offset.y <= index < self.scroll_offset.y + height:
                    self.scroll_to(y=max(0, index - height // 2), animate=False, immediate=True)
                break

    def toggle_quoted(self) -> None:
        self.show_quoted = not self.show_quoted
        self._layout_lines()

    def _layout_lines(self) -> None:
        width = max(10, self.scrollable_content_region.width)
        self._width = width
        text = self.render_thread() if self.thread is not None else Text("Select a conversation.", self.style("meta"))
        console = self.app.console
        rendered = console.render_lines(text, console.options.update_width(width).update(height=None), pad=True)
        self._lines = [Strip(line, width) for line in rendered]
        self.virtual_size = Size(width, len(self._lines))
        self.refresh()

    def on_resize(self) -> None:
        if self.scrollable_content_region.width != self._width:
            self._layout_lines()

    def render_line(self, y: int) -> Strip:
        index = int(self.scroll_offset.y) + y
        width = self.scrollable_content_region.width
        if 0 <= index < len(self._lines):
            return self._lines[index].crop_extend(0, width, self.rich_style).apply_style(self.rich_style)
        return Strip.blank(width, self.rich_style)

    def style(self, name: str):
        return overlay_style(self, f"thread--{name}")

    def render_thread(self) -> Text:
        thread = self.thread
        assert thread is not None
        now = self.now()
        conversation = thread.conversation
        out = Text(no_wrap=False)
        out.append(f"{format.ref(thread.conversation_id)}  ", self.style("title"))
        out.append(shown_line(conversation.subject) or "(no subject)", self.style("title"))
        out.append("\n")
        facts = [
            conversation.status,
            conversation.priority,
            conversation.channel,
            f"assigned to {conversation.assignee}" if conversation.assignee else "unassigned",
        ]
        if thread.tags:
            facts.append("tags " + shown_line(" ".join(thread.tags)))
        if conversation.snoozed_until and conversation.snoozed_until > now:
            facts.append(f"snoozed until {format.local_time(conversation.snoozed_until, now)}")
        out.append(" · ".join(facts), self.style("meta"))
        out.append("\n")
        out.append_text(self._sla_line(thread, now))
        out.append("\n")
        if self.presence:
            out.append(f"⚠ {shown_line(self.presence)}", self.style("warning"))
            out.append("\n")
        for item in thread.items:
            out.append("\n\n" if item.kind != "event" else "\n")
            out.append_text(self._item(item, now))
        if thread.draft is not None and thread.draft.body.strip():
            out.append("\n\n")
            out.append(f"✎ unsent {thread.draft.kind} draft — r to continue it", self.style("warning"))
        return out

    def _sla_line(self, thread: Thread, now: datetime) -> Text:
        line = Text("SLA ", self.style("meta"))
        targets = thread.sla.get("targets", [])
        if not targets:
            line.append("no policy", self.style("meta"))
            return line
        parts = []
        for target in targets:
            name = target["target"].replace("_", " ")
            state = target["state"]
            if state in ("ok", "warning", "breached") and target.get("remaining_seconds") is not None:
                from datetime import timedelta

                from agentdesk.domain import sla

                left = sla.format_short(timedelta(seconds=target["remaining_seconds"]))
                text = f"{name} {'overdue ' + left.lstrip('-') if state == 'breached' else left + ' left'}"
            else:
                text = f"{name} {state}"
            style = {"ok": "ok", "warning": "warning", "breached": "breached", "missed": "breached"}.get(state, "meta")
            parts.append((text, self.style(style)))
        for index, (text, style) in enumerate(parts):
            if index:
                line.append(" · ", self.style("meta"))
            line.append(text, style)
        return line

    def _item(self, item: ThreadItem, now: datetime) -> Text:
        when = format.local_time(item.at, now)
        if item.kind == "event":
            return Text(f"  • {when}  {shown_line(item.author)}: {shown(item.body)}", self.style("event"))
        text = Text()
        if item.kind == "inbound":
            bar, head_style = "▌", self.style("inbound")
            label = f"◀ {shown_line(item.author) or 'customer'} wrote"
        elif item.kind == "outbound":
            bar, head_style = "▌", self.style("outbound")
            label = f"▶ {shown_line(item.author) or 'agent'} replied"
            if item.message_kind == "receipt":
                label = "▶ automatic receipt"
            elif item.message_kind == "forward":
                label = f"▶ {shown_line(item.author) or 'agent'} forwarded to {shown_line(item.recipients[3:])}"
            elif item.message_kind == "survey":
                label = "▶ satisfaction survey"
        else:
            bar, head_style = "▌", self.style("note")
            label = f"✎ internal note by {shown_line(item.author)}"
        text.append(f"{bar} {label}", head_style)
        text.append(f"  {when}", self.style("meta"))
        if item.message_kind in ("auto_reply", "bounce"):
            text.append(f"  [{item.message_kind.replace('_', ' ')}]", self.style("meta"))
        if item.recipients and item.message_kind != "forward":
            text.append(f"  {shown_line(item.recipients)}", self.style("meta"))
        if item.provenance:
            text.append(f"  ({shown_line(item.provenance)})", self.style("meta"))
        if item.delivery:
            text.append_text(self._delivery(item, now))
        text.append("\n")
        shown_body, forwarded, count = shown(item.body), "", 0
        if item.message_kind == "forward":
            # Imported here: the sending side is not needed to start the app, only to show a forward.
            from agentdesk.app.outbound import FORWARD_MARKER

            # The note (and its signature) above, the forwarded messages folded as what they are.
            shown_body, marker, rest = shown_body.partition(FORWARD_MARKER)
            forwarded = (marker + rest).strip("\n")
            count = forwarded.count(FORWARD_MARKER)
        body = format.split_body(shown_body)
        body_style = self.style("note-body") if item.kind == "note" else None
        empty = "(no note)" if item.message_kind == "forward" else "(empty)"
        for line in (body.main or empty).split("\n"):
            self._barred(text, bar, head_style, Text(line, body_style or ""))
        folded = [
            (name, part)
            for name, part in (
                ("quoted text", body.quoted),
                ("signature", body.signature),
                (f"{count} forwarded message{'s' if count != 1 else ''}", forwarded),
            )
            if part
        ]
        if folded and self.show_quoted:
            for _, part in folded:
                for line in part.split("\n"):
                    self._barred(text, bar, head_style, Text(line, self.style("quoted")))
        elif folded:
            lines = sum(part.count("\n") + 1 for _, part in folded)
            what = " and ".join(name for name, _ in folded)
            folded_line = f"··· {what} ({lines} line{'s' if lines != 1 else ''}) — o to show"
            self._barred(text, bar, head_style, Text(folded_line, self.style("quoted")))
        for attachment in item.attachments:
            selected = attachment.number == self.selected_attachment
            style = self.style("selected") if selected else self.style("meta")
            listed = Text(
                f"{'▶' if selected else ' '} [attachment {attachment.number}] {shown_line(attachment.filename)} "
                f"({shown_line(attachment.content_type)}, {format.size(attachment.size)})",
                style,
            )
            if attachment.status:
                listed.append(f"  {shown_line(attachment.status)}", self.style("warning"))
            self._barred(text, bar, head_style, listed)
        text.rstrip()
        return text

    def _barred(self, text: Text, bar: str, bar_style, line: Text) -> None:
        """Append `line` after the message's bar, and wrap it here so that every row it takes keeps
        the bar: wrapped by the pane instead, a long line's next rows would start at the margin and
        the message would lose its edge."""
        room = max(1, self._width - 2)
        rows = line.wrap(self.app.console, room) if line.cell_len > room else [line]
        for row in rows:
            text.append(f"{bar} ", bar_style)
            text.append_text(row)
            text.append("\n")

    def _delivery(self, item: ThreadItem, now: datetime) -> Text:
        """A reply's delivery state, said where the agent looks: beside its heading."""
        reason = shown_line(item.delivery_error)
        if item.delivery == "possibly_sent":
            # The outcome is unknown and nothing resends it on its own: the agent decides.
            since = format.local_time(item.delivery_at, now)
            key = actions.keys_of(actions.BY_ID["conversation.resend"], getattr(self.app, "keymap", {})).split(", ")[0]
            return Text(
                f"  possibly sent (since {since}): {reason or 'the server never answered'} — "
                f"{key} resends #{item.number}",
                self.style("warning"),
            )
        if not item.deliverable:
            return Text(f"  cannot be delivered from this host: {reason}", self.style("warning"))
        style = self.style("failed") if item.delivery == "failed" else self.style("meta")
        return Text(f"  {item.delivery}" + (f": {reason}" if reason else ""), style)
