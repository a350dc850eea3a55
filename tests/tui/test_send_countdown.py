"""A reply in its undo window counts down on its queue row (with the app's clock, moved by the
test), and the composer opens on the template picker when a template is suggested and nothing is
written yet, against the demo database."""

from __future__ import annotations

from datetime import timedelta

from agentdesk.app import conversations
from agentdesk.tui.screens.composer import ComposerScreen
from tests.tui.conftest import FIXED_NOW, settle

SIZE = (120, 40)


def _row_text(queue, conversation_id: int) -> str | None:
    """The row of the conversation as the queue draws it now (None: not on screen)."""
    top = int(queue.scroll_offset.y)
    for y in range(1, queue.size.height):
        row = queue.row_at(top + y - 1)
        if row is not None and row.id == conversation_id:
            return "".join(segment.text for segment in queue.render_line(y))
    return None


async def _send_held(pilot, app, text: str) -> int:
    row = app.main.queue.current_row
    await pilot.press("r")
    await settle(pilot, app)
    assert isinstance(app.screen, ComposerScreen)
    app.screen.query_one("#body").load_text(text)
    await pilot.press("ctrl+s")
    await settle(pilot, app)
    assert app.screen is app.main
    return row.id


async def test_the_row_of_a_held_reply_counts_down_until_delivery(make_app, demo_settings):
    demo_settings.ui.undo_send_seconds = 10
    clock = [FIXED_NOW]
    app = make_app(demo_settings, now=lambda: clock[0])
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        queue = app.main.queue
        assert queue._sending_timer is None, "no countdown, no timer"
        conversation_id = await _send_held(pilot, app, "New spokes are on their way.")
        assert "↶ 10 s" in _row_text(queue, conversation_id)
        assert queue._sending_timer is not None

        clock[0] += timedelta(seconds=3)
        await pilot.pause(1.2)  # the timer's next tick
        assert "↶ 7 s" in _row_text(queue, conversation_id)
        assert "sends in 7 s" in app.main.query_one("Masthead").header

        clock[0] += timedelta(seconds=7)
        await pilot.pause(1.2)
        assert "↶" not in _row_text(queue, conversation_id)
        assert "sends in" not in app.main.query_one("Masthead").header
        assert queue.sending == {} and queue._sending_timer is None and app.main._countdown is None


async def test_taking_a_reply_back_ends_its_row_countdown(make_app, demo_settings):
    demo_settings.ui.undo_send_seconds = 30
    app = make_app(demo_settings)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        conversation_id = await _send_held(pilot, app, "Wrong customer.")
        assert app.main.queue.sending_left(conversation_id) == 30
        await pilot.press("ctrl+z")
        await settle(pilot, app)
        assert isinstance(app.screen, ComposerScreen)
        assert app.main.queue.sending == {} and app.main.queue._sending_timer is None
        await pilot.press("escape")
        await settle(pilot, app)
        assert "↶" not in (_row_text(app.main.queue, conversation_id) or "")


async def test_a_reply_taken_back_leaves_the_row_waiting_as_before(make_app, demo_settings):
    """Status, waiting time and SLA column: the row draws as it did before the reply (the draft
    mark aside), and the thread header's SLA line says the same."""
    demo_settings.ui.undo_send_seconds = 30
    app = make_app(demo_settings)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        queue = app.main.queue
        conversation_id = queue.current_row.id
        before = _row_text(queue, conversation_id)
        assert before is not None
        await _send_held(pilot, app, "Wrong customer.")
        assert _row_text(queue, conversation_id) != before
        await pilot.press("ctrl+z")
        await settle(pilot, app)
        await pilot.press("escape")
        await settle(pilot, app)
        after = _row_text(queue, conversation_id)
        assert after is not None and after.replace("✎", " ", 1) == before


async def test_the_composer_opens_on_a_suggested_template_when_nothing_is_written(make_app, demo_settings):
    app = make_app(demo_settings)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        await pilot.press("r")
        await settle(pilot, app)
        composer = app.screen
        assert isinstance(composer, ComposerScreen) and composer.suggested
        assert composer.focused is composer.query_one("#template-filter")
        best = composer.suggested[0][0]
        options = composer.query_one("#templates")
        assert options.get_option_at_index(options.highlighted).id == f"s:{best.name}"
        await pilot.press("enter")
        await settle(pilot, app)
        body = composer.query_one("#body")
        assert composer.focused is body and body.text.strip(), "enter put the suggestion in the text"


async def test_a_draft_keeps_the_text_focused(make_app, demo_settings):
    app = make_app(demo_settings)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        row = app.main.queue.current_row
        conversations.save_draft(app.desk, row.id, "Half an answer", kind="reply", base_version=row.version)
        app.main.reload()
        await settle(pilot, app)
        await pilot.press("r")
        await settle(pilot, app)
        composer = app.screen
        assert isinstance(composer, ComposerScreen) and composer.suggested
        body = composer.query_one("#body")
        assert composer.focused is body and body.text.startswith("Half an answer")


async def test_without_a_suggestion_the_text_is_focused(make_app, demo_settings, demo_dir):
    for template in (demo_dir / "templates").iterdir():
        template.unlink()
    app = make_app(demo_settings)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        await pilot.press("r")
        await settle(pilot, app)
        composer = app.screen
        assert isinstance(composer, ComposerScreen) and not composer.suggested
        assert composer.focused is composer.query_one("#body")
