"""One search language: the same searches typed into the TUI's search box (Pilot) and given to
`agentdesk list --query` (the CLI, in-process) find the same conversations in the same order, and
a bad filter is refused by both, naming the filter (exit 2 in the CLI, a notification in the TUI)."""

from __future__ import annotations

import json

import pytest

from agentdesk import cli
from agentdesk.cli import common
from tests.tui.conftest import FIXED_NOW, settle

SIZE = (120, 40)

# Each search, and what the demo must hold for it to mean something (some rows, fewer than all).
SEARCHES = [
    "status:open",
    "status:new,pending",
    "-status:solved,closed",
    "tag:warranty",
    "priority:high,urgent channel:sms",
    "sla:breached",
    "sla:warning,ok",
    "waiting:>2h",
    "waiting:<30m status:open",
    "assignee:none",
    "from:anke",
    "battery",
    "battery status:open",
    "after:7d",
]
BAD = ["waiting:>abc", "status:nope", "before:someday", "tag:"]


def _cli_refs(config, query: str, capsys) -> list[str]:
    code = cli.main(["--config", str(config), "list", "--view", "all", f"--query={query}", "--limit", "1000", "--json"])
    out = capsys.readouterr().out
    assert code == 0, query
    return [doc["ref"] for doc in json.loads(out)]


async def test_the_tui_and_list_query_find_the_same(make_app, demo_dir, capsys, monkeypatch):
    monkeypatch.setattr(common, "_now", lambda: FIXED_NOW)  # the TUI's frozen clock, for waiting:, sla:, after:
    config = demo_dir / "config.toml"
    total = len(_cli_refs(config, "", capsys))
    expected = {query: _cli_refs(config, query, capsys) for query in SEARCHES}
    for query, refs in expected.items():
        assert 0 < len(refs) < total, (query, len(refs))  # a filter that filters, in both front ends

    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        for query, refs in expected.items():
            await pilot.press("slash")
            app.main.query_one("#search").value = ""
            await pilot.press(*query, "enter")
            await settle(pilot, app)
            queue = app.main.queue
            assert app.main.search is not None and app.main.search.query == query
            assert queue.count == len(refs), query
            shown = [queue.row_at(index) for index in range(min(len(refs), 20))]
            assert [row.ref for row in shown if row is not None] == refs[: len(shown)], query
            assert None not in shown, query

        for query in BAD:
            await pilot.press("slash")
            app.main.query_one("#search").value = ""
            await pilot.press(*query, "enter")
            await settle(pilot, app)
            shown = query.removesuffix(":")
            assert any(shown in str(n.message) for n in app._notifications), (query, list(app._notifications))


@pytest.mark.parametrize("query", BAD)
def test_a_bad_filter_exits_2_naming_it(demo_dir, capsys, query):
    code = cli.main(["--config", str(demo_dir / "config.toml"), "list", "--query", query])
    err = capsys.readouterr().err
    assert code == 2
    assert query.removesuffix(":") in err and err.count("\n") == 1
