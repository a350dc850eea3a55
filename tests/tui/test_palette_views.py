"""Saved views ([[view]] in the config) are in the command palette, and choosing one opens it."""

from __future__ import annotations

from agentdesk import config
from agentdesk.app import queue as queue_actions
from agentdesk.app.queue import Filter
from tests.tui.conftest import settle

SIZE = (120, 40)


async def test_a_saved_view_from_the_palette(make_app, demo_settings):
    demo_settings.view = [config.SavedView(name="Warranty", query="tag:warranty")]
    app = make_app(demo_settings)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        titles = [command.title for command in app.get_system_commands(app.main)]
        assert titles.count("View: Warranty") == 1
        assert [t for t in titles if t.startswith("View: Solved")] == ["View: Solved (7)"]  # the action's own
        await pilot.press("ctrl+p")
        await pilot.pause(0.3)
        await pilot.press(*"View: Warranty")
        await pilot.pause(0.5)
        await pilot.press("enter")
        await settle(pilot, app)
        assert app.main.current_filter.label == "Warranty"
        expected = queue_actions.count(app.desk, Filter("all", "tag:warranty", "Warranty"))
        assert 0 < expected == app.main.queue.count
