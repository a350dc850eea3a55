"""A desk with no sources: the empty queue says what to add and where (Pilot, and the rendered lines)."""

from __future__ import annotations

from agentdesk import config
from tests.tui.conftest import settle

SIZE = (140, 30)


async def test_an_empty_desk_points_to_sources_templates_and_sync(make_app, tmp_path):
    path = tmp_path / "config.toml"
    path.write_text(
        f'[database]\nurl = "sqlite:///{tmp_path / "agentdesk.db"}"\n[templates]\ndir = "{tmp_path / "templates"}"\n',
        encoding="utf-8",
    )
    app = make_app(config.load(path))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        queue = app.main.queue
        assert queue.count == 0
        lines = [queue.render_line(y).text for y in range(1, 10)]
        shown = "\n".join(lines)
        assert "Nothing here." in lines[0]
        assert "Add a [[mailbox]]" in shown and "[[spool]]" in shown and str(path) in shown
        assert str(tmp_path / "templates") in shown and "agentdesk sync" in shown


async def test_a_desk_with_sources_shows_no_hint(make_app):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        assert app.main.queue.empty_hint == ()
