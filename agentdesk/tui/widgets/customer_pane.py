"""The customer beside the thread: who they are on every channel, and everything they wrote before."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option

from agentdesk.tui import format
from agentdesk.tui.widgets import shown, shown_line

if TYPE_CHECKING:  # for the annotations only: the first frame is drawn before the ORM is imported
    from agentdesk.app.customers import CustomerCard


class CustomerPane(Vertical):
    DEFAULT_CSS = """
    CustomerPane > .customer--name { text-style: bold; }
    CustomerPane > .customer--meta { color: $text-muted; }
    """
    COMPONENT_CLASSES = {"customer--name", "customer--meta"}

    class OpenConversation(Message):
        def __init__(self, conversation_id: int) -> None:
            super().__init__()
            self.conversation_id = conversation_id

    def __init__(self, *, now: Callable[[], datetime], **kwargs) -> None:
        super().__init__(**kwargs)
        self.now = now
        self.card: CustomerCard | None = None

    def compose(self) -> ComposeResult:
        yield Static("", id="customer-card", markup=False)
        yield OptionList(id="customer-history")

    def show(self, card: CustomerCard | None) -> None:
        if card is not None and self.card == card:
            return
        self.card = card
        static = self.query_one("#customer-card", Static)
        history = self.query_one("#customer-history", OptionList)
        history.clear_options()
        if card is None:
            static.update("")
            return
        now = self.now()
        meta = self.get_component_rich_style("customer--meta")
        text = Text()
        text.append(shown_line(card.name) or "(no name)", self.get_component_rich_style("customer--name"))
        if card.tier:
            text.append(f"  {shown_line(card.tier)}", meta)
        text.append("\n")
        if card.organization:
            text.append(shown_line(card.organization) + "\n")
        for kind, address in card.identities:
            text.append(f"{shown_line(kind):<6}", meta)
            text.append(f"{shown_line(address)}\n")
        text.append(f"{card.conversations} conversation{'s' if card.conversations != 1 else ''}", meta)
        text.append(f" · since {format.local_time(card.first_contact)}", meta)
        text.append(f"\nlast contact {format.local_time(card.last_contact, now)}", meta)
        if card.notes:
            text.append("\n" + shown(card.notes))
        if card.ratings:
            # One line here (the card's height is capped); each past conversation's own rating is
            # on its row in the list below.
            happy = sum(1 for _, rating, _, _ in card.ratings if rating >= 4)
            latest = card.ratings[0][1]
            text.append(f"\nrated {happy} of {len(card.ratings)} well · latest ", meta)
            text.append(format.stars(latest), format.rating_style(latest))
        if card.history:
            text.append(f"\n\nPast conversations ({len(card.history)}) — h, then enter opens", meta)
        static.update(text)
        rated = {ref: rating for ref, rating, _, _ in card.ratings}
        history.add_options(
            Option(self._history_row(item, rated.get(item.ref)), id=str(item.id)) for item in card.history
        )

    @staticmethod
    def _history_row(item, rating: int | None) -> Text:
        row = Text(f"{item.ref} ", no_wrap=True, overflow="ellipsis")
        if rating is not None:
            row.append(f"{rating}★ ", format.rating_style(rating))
        row.append(f"{item.status[:7]:<7} {item.channel:<7} {shown_line(item.subject)}")
        return row

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        if event.option.id:
            self.post_message(self.OpenConversation(int(event.option.id)))
