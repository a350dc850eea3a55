"""The report screen: reply and resolution times, SLA compliance, backlog by age, volume by channel,
satisfaction (CSAT) and the knowledge-base articles that helped.

The same document as `agentdesk report --json` (domain/reports.py), read in a thread worker (a few
seconds on 100 000 conversations), drawn as small tables with bars so a team lead sees the shape at
a glance: horizontal bars for times and counts, a compliance bar per target, policy and agent, a
sparkline of the backlog by age.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from rich.console import Group, JustifyMethod
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.widgets import LoadingIndicator, Sparkline, Static

from agentdesk.app import reports
from agentdesk.app.desk import Desk
from agentdesk.domain import sla
from agentdesk.tui.widgets.key_footer import KeyFooter
from agentdesk.tui.workers import work

WINDOWS = (7, 30, 90)  # days the report covers; `w` cycles through them


def bar(value: float, largest: float, width: int) -> str:
    """A horizontal bar in eighths of a cell: `████▌`."""
    if not largest or not value or width <= 0:
        return ""
    eighths = max(1, round(width * 8 * value / largest))
    full, rest = divmod(min(eighths, width * 8), 8)
    return "█" * full + ("", "▏", "▎", "▍", "▌", "▋", "▊", "▉")[rest]


def duration(seconds: int | None) -> str:
    return "—" if seconds is None else sla.format_short(timedelta(seconds=seconds))


def percent_cell(cell: dict[str, Any], width: int = 10) -> Text:
    if cell["percent"] is None:
        return Text("—", style="dim")
    value = cell["percent"]
    style = "green" if value >= 90 else "yellow" if value >= 75 else "red"
    text = Text(bar(value, 100, width).ljust(width), style=style)
    text.append(f" {value:5.1f}%", style="bold")
    text.append(f" {cell['met']}/{cell['met'] + cell['missed']}", style="dim")
    return text


def times_table(document: dict[str, Any]) -> Table:
    table = Table(title="Reply and resolution times", title_justify="left", box=None, pad_edge=False, expand=False)
    columns: tuple[tuple[str, JustifyMethod], ...] = (
        ("", "left"),
        ("count", "right"),
        ("median", "right"),
        ("p90", "right"),
        ("median of p90", "left"),
    )
    for name, justify in columns:
        table.add_column(name, justify=justify)
    figures = document["reply_times"]
    for metric, f in figures.items():
        # Each row on its own scale: how far the median is from the p90 (the spread) is the shape to see.
        median, p90 = f["median_seconds"] or 0, f["p90_seconds"] or 0
        chart = Text(bar(median, p90, 24), style="cyan")
        chart.append("│" if p90 else "", style="dim")
        chart.append(" " * max(0, 24 - len(chart)) + "p90" if p90 else "", style="dim")
        table.add_row(
            metric.replace("_", " "), str(f["count"]), duration(f["median_seconds"]), duration(f["p90_seconds"]), chart
        )
    return table


def compliance_table(document: dict[str, Any]) -> Table:
    compliance = document["compliance"]
    targets = list(compliance["targets"])
    table = Table(title="SLA compliance (met / met + missed)", title_justify="left", box=None, pad_edge=False)
    table.add_column("")
    for target in targets:
        table.add_column(target.replace("_", " "))
    table.add_row(Text("all", style="bold"), *(percent_cell(compliance["targets"][t]) for t in targets))
    for row in compliance["policies"]:
        table.add_row(f"policy {row['policy'] or '(none)'}", *(percent_cell(row[t]) for t in targets))
    for row in compliance["agents"]:
        table.add_row(f"agent {row['agent'] or '(nobody)'}", *(percent_cell(row[t]) for t in targets))
    return table


def backlog_table(document: dict[str, Any]) -> Group:
    backlog = document["backlog"]
    summary = Text(f"Backlog: {backlog['open']} open", style="bold")
    summary.append(f" — {backlog['breached']} breached", style="red")
    summary.append(f", {backlog['warning']} in warning", style="yellow")
    summary.append(f", {backlog['paused']} paused, {backlog['waiting_on_us']} waiting on us")
    if backlog["longest_wait_seconds"]:
        summary.append(f" (longest {duration(backlog['longest_wait_seconds'])})")
    table = Table(box=None, pad_edge=False, show_header=False)
    table.add_column(justify="right")
    table.add_column(justify="right")
    table.add_column()
    largest = max((row["count"] for row in backlog["by_age"]), default=0)
    for row in backlog["by_age"]:
        table.add_row(row["age"], str(row["count"]), Text(bar(row["count"], largest, 30), style="magenta"))
    return Group(summary, table)


def volume_table(document: dict[str, Any]) -> Table:
    table = Table(title="Volume by channel", title_justify="left", box=None, pad_edge=False)
    columns: tuple[tuple[str, JustifyMethod], ...] = (
        ("channel", "left"),
        ("conversations", "right"),
        ("", "left"),
        ("in", "right"),
        ("out", "right"),
        ("notes", "right"),
    )
    for name, justify in columns:
        table.add_column(name, justify=justify)
    channels = document["volume"]["channels"]
    largest = max((row["conversations"] for row in channels), default=0)
    for row in channels:
        messages = row["messages"]
        table.add_row(
            row["channel"],
            str(row["conversations"]),
            Text(bar(row["conversations"], largest, 20), style="green"),
            str(messages.get("inbound", 0)),
            str(messages.get("outbound", 0)),
            str(messages.get("note", 0)),
        )
    return table


def csat_cell(cell: dict[str, Any], width: int = 10) -> Text:
    """CSAT % as a bar (satisfied of answers) with the counts; dim when nobody answered."""
    if cell["csat"] is None:
        return Text(f"— ({cell['sent']} sent, no answer)", style="dim")
    value = cell["csat"] * 100
    style = "green" if value >= 80 else "yellow" if value >= 60 else "red"
    text = Text(bar(value, 100, width).ljust(width), style=style)
    text.append(f" {value:5.1f}%", style="bold")
    text.append(f" {cell['satisfied']}/{cell['responses']}", style="dim")
    rate = cell["response_rate"]
    text.append(f"  answered {rate * 100:.0f}% of {cell['sent']}" if rate is not None else "", style="dim")
    return text


def csat_table(document: dict[str, Any]) -> Group:
    """Satisfaction: CSAT % (4-5 of all answers), response rate, the ratings, per agent, policy,
    channel, and over time."""
    figures = document["csat"]
    if not figures["sent"]:
        return Group(
            Text("Satisfaction (CSAT)", style="bold"),
            Text('no survey went out in this period ([[mailbox]] or [[spool]] csat = "template")', style="dim"),
        )
    summary = Text("Satisfaction (CSAT): ", style="bold")
    summary.append_text(csat_cell(figures, 20))
    if figures["average"] is not None:
        summary.append(f"  average {figures['average']:.1f}")
    ratings = Table(box=None, pad_edge=False, show_header=False)
    ratings.add_column(justify="right")
    ratings.add_column(justify="right")
    ratings.add_column()
    largest = max(figures["ratings"].values(), default=0)
    for value in ("5", "4", "3", "2", "1"):
        count = figures["ratings"][value]
        style = "green" if value in ("4", "5") else "red" if value in ("1", "2") else "yellow"
        ratings.add_row("★" * int(value), str(count), Text(bar(count, largest, 30), style=style))
    groups = Table(box=None, pad_edge=False)
    groups.add_column("")
    groups.add_column("CSAT")
    for key, label in (("by_agent", "agent"), ("by_policy", "policy"), ("by_channel", "channel")):
        for row in figures[key]:
            groups.add_row(f"{label} {row[label] or '(none)'}", csat_cell(row))
    trend = Text(f"by {figures['period']}: ", style="dim")
    for row in figures["over_time"][-21:]:
        value = row["csat"]
        trend.append(
            " ▁▂▃▄▅▆▇█"[round(value * 8)] if value is not None else "·",
            style="green" if value is not None and value >= 0.8 else "yellow",
        )
    return Group(summary, ratings, groups, trend)


def knowledge_base_table(document: dict[str, Any]) -> Table | Text:
    articles = document.get("knowledge_base", {}).get("articles", [])
    if not articles:
        return Text("Knowledge base: no article sent in this period", style="dim")
    table = Table(title="Knowledge base: articles sent", title_justify="left", box=None, pad_edge=False)
    columns: tuple[tuple[str, JustifyMethod], ...] = (
        ("article", "left"),
        ("sent", "right"),
        ("conversations", "right"),
        ("solved, no reply since", "left"),
    )
    for name, justify in columns:
        table.add_column(name, justify=justify)
    for row in articles[:10]:
        rate = row["self_service_rate"]
        cell = Text(bar(rate * 100, 100, 10).ljust(10) if rate else " " * 10, style="cyan")
        cell.append(f" {rate * 100:3.0f}% ({row['solved_without_reply']})" if rate is not None else " —")
        table.add_row(row["title"] or row["slug"], str(row["sent"]), str(row["conversations"]), cell)
    return table


class ReportScreen(Screen):
    CSS_PATH = "report.tcss"
    BINDINGS = [
        Binding("escape,q", "close", "Back"),
        Binding("w", "next_window", "Period"),
        Binding("f5,ctrl+l", "reload", "Refresh"),
    ]

    @dataclass
    class Loaded(Message):
        document: dict[str, Any]
        generation: int

    @dataclass
    class Failed(Message):
        error: str

    def __init__(self, desk: Desk, *, now: Callable[[], datetime], days: int = 30) -> None:
        super().__init__()
        self.desk = desk
        self.now = now
        self.days = days
        self.document: dict[str, Any] | None = None
        self._generation = 0

    def compose(self) -> ComposeResult:
        yield Static("", id="report-title")
        yield LoadingIndicator(id="report-loading")
        with VerticalScroll(id="report-body"):
            yield Static("", id="report-times")
            yield Static("", id="report-compliance")
            with Horizontal(id="report-backlog-row"):
                yield Static("", id="report-backlog")
                yield Sparkline([], id="report-sparkline")
            yield Static("", id="report-volume")
            yield Static("", id="report-csat")
            yield Static("", id="report-kb")
        yield KeyFooter(compact=True)

    def on_mount(self) -> None:
        self.reload()

    def reload(self) -> None:
        self._generation += 1
        self.query_one("#report-loading").display = True
        self._render_title()
        self._load(self.days, self._generation)

    @work(thread=True, exclusive=True, group="report")
    def _load(self, days: int, generation: int) -> None:
        try:
            document = reports.report(self.desk, days=days)
        except Exception as error:
            self.post_message(self.Failed(str(error)))
            return
        self.post_message(self.Loaded(document, generation))

    def on_report_screen_loaded(self, message: Loaded) -> None:
        if message.generation != self._generation:
            return
        self.document = message.document
        self.query_one("#report-loading").display = False
        self._render_title()
        document = message.document
        self.query_one("#report-times", Static).update(times_table(document))
        self.query_one("#report-compliance", Static).update(compliance_table(document))
        self.query_one("#report-backlog", Static).update(backlog_table(document))
        sparkline = self.query_one("#report-sparkline", Sparkline)
        sparkline.data = [row["count"] for row in document["backlog"]["by_age"]]
        sparkline.border_title = "by age " + " ".join(row["age"] for row in document["backlog"]["by_age"])
        self.query_one("#report-volume", Static).update(volume_table(document))
        self.query_one("#report-csat", Static).update(csat_table(document))
        self.query_one("#report-kb", Static).update(knowledge_base_table(document))

    def on_report_screen_failed(self, message: Failed) -> None:
        self.query_one("#report-loading").display = False
        self.notify(f"cannot build the report: {message.error}", severity="error", timeout=8)

    def _render_title(self) -> None:
        until = self.now()
        since = until - timedelta(days=self.days)
        state = "" if self.document is not None else "  [dim]loading…[/]"
        self.query_one("#report-title", Static).update(
            f"[b]Report[/]  last {self.days} days: {since:%Y-%m-%d} .. {until:%Y-%m-%d %H:%M} UTC"
            f"  [dim](w: period, f5: refresh, escape: back)[/]{state}"
        )

    def action_next_window(self) -> None:
        self.days = WINDOWS[(WINDOWS.index(self.days) + 1) % len(WINDOWS)] if self.days in WINDOWS else WINDOWS[0]
        self.document = None
        self.reload()

    def action_reload(self) -> None:
        self.reload()

    def action_close(self) -> None:
        self.dismiss()
