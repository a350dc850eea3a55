"""The masthead: the header (the agent, their load, each source's sync state) over the view tabs."""

from __future__ import annotations

from datetime import timedelta

from sqlmodel import Session

from agentdesk.app import desk as desk_actions
from agentdesk.store.models import SyncState
from agentdesk.tui.widgets.masthead import Masthead
from tests.tui.conftest import FIXED_NOW, engine_of, settle


async def test_the_header_shows_the_agents_load_and_each_sources_state(make_app, demo_settings):
    engine = engine_of(demo_settings)
    with Session(engine) as session:
        session.add(SyncState(source="support", folder="INBOX", last_sync_at=FIXED_NOW - timedelta(minutes=3)))
        session.add(SyncState(source="billing", folder="INBOX", last_error="LOGIN failed: \x1b[31mbad password"))
        session.commit()
    app = make_app()
    async with app.run_test(size=(160, 40)) as pilot:
        await settle(pilot, app)
        masthead = app.main.query_one(Masthead)
        header = masthead.header
        load = desk_actions.header(app.desk)
        assert f"{load.assigned_open} assigned, {load.waiting} waiting on you" in header
        assert "support ✓ 3m ago" in header
        assert "billing ✗ LOGIN failed" in header
        # What the server said is drawn with its control characters as visible escapes.
        line = masthead.render_line(0).text
        assert "\x1b" not in line and "billing ✗ LOGIN failed: \\x1b[31mbad password" in line


async def test_the_tabs_show_each_views_count_and_a_click_switches_view(make_app):
    app = make_app()
    async with app.run_test(size=(160, 40)) as pilot:
        await settle(pilot, app)
        masthead = app.main.query_one(Masthead)
        counts = app.main.counts
        assert f"1 Mine {counts['mine']}" in masthead.tabs
        assert f"3 All open {counts['open']}" in masthead.tabs
        assert app.main.current_filter.view == "open"
        await pilot.click(Masthead, offset=(masthead.tabs.index("Mine") + 1, 1))
        await settle(pilot, app)
        assert app.main.current_filter.view == "mine"
        assert app.main.queue.count == counts["mine"]


async def test_a_long_header_is_cut_at_the_edge_and_says_so(make_app):
    app = make_app()
    async with app.run_test(size=(40, 24)) as pilot:
        await settle(pilot, app)
        line = app.main.query_one(Masthead).render_line(0).text
        assert len(line) == 40 and line.endswith("…")


async def test_a_search_tab_is_never_cut_off(make_app):
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot, app)
        await pilot.press("slash", *"battery", "enter")
        await settle(pilot, app)
        line = app.main.query_one(Masthead).render_line(1).text
        assert f"battery {app.main.search_count}" in line  # short titles make room for it
