"""`?`: every action with its current keys, from the one table in actions.py."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from agentdesk.domain import search_query
from agentdesk.tui import actions


def help_table(keymap: dict[str, str]) -> Table:
    table = Table.grid(padding=(0, 2))
    table.add_column(justify="right", style="bold", no_wrap=True)
    table.add_column()
    groups: dict[str, list[actions.Action]] = {}
    for action in actions.ACTIONS:
        groups.setdefault(action.group, []).append(action)
    for group, members in groups.items():
        table.add_row("", Text(group, style="bold underline"))
        for action in members:
            description = action.description + (f" — {action.help}" if action.help else "")
            table.add_row(actions.keys_of(action, keymap), description)
        table.add_row("", "")
    table.add_row("", Text("Search filters", style="bold underline"))
    for field, meaning in search_query.FIELDS.items():
        table.add_row(f"{field}:", meaning)
    table.add_row("", "Values separated by commas are alternatives; -field: negates. Example:")
    table.add_row("", "battery tag:warranty,refund -assignee:me waiting:>2h")
    table.add_row("", "")
    table.add_row("", 'Remap any key in the config: [keys] reply = "r,f2" (binding ids: docs/keys.md)')
    return table


class HelpScreen(ModalScreen[None]):
    CSS_PATH = "help.tcss"
    BINDINGS = [Binding("escape,q,question_mark,f1", "close", "Close")]

    def __init__(self, keymap: dict[str, str]) -> None:
        super().__init__()
        self.keymap = keymap

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help-box") as box:
            box.border_title = "Keys — escape closes"
            yield Static(help_table(self.keymap), id="help-table")

    def on_mount(self) -> None:
        self.query_one("#help-box").focus()

    def action_close(self) -> None:
        self.dismiss(None)
