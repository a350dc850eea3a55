"""Macros from a key and the palette, ctrl+z for the last change and for a send in its undo window,
against the demo database."""

from __future__ import annotations

from sqlmodel import Session, select

from agentdesk import config
from agentdesk.store.models import Conversation, ConversationTag, Event, Message, Outbox
from agentdesk.tui.screens.composer import ComposerScreen
from tests.tui.conftest import AGENT, engine_of, settle

SIZE = (120, 40)


def _with_macros(settings, *macros):
    settings.macro = [config.MacroSettings(**macro) for macro in macros]
    return settings


def _state(settings, conversation_id: int):
    with Session(engine_of(settings)) as session:
        conversation = session.get(Conversation, conversation_id)
        tags = set(session.exec(select(ConversationTag.tag).where(ConversationTag.conversation_id == conversation_id)))
        return conversation.status, conversation.priority, conversation.assignee, tags


def _notes(app) -> list[str]:
    notes: list[str] = []
    original = app.notify
    app.main.notify = lambda message, *a, **k: (notes.append(str(message)), original(message, *a, **k))
    return notes


async def test_a_macro_key_applies_every_step_and_ctrl_z_undoes_them(make_app, demo_settings):
    settings = _with_macros(
        demo_settings,
        dict(name="parts-ordered", key="f8", status="on_hold", priority="high", add_tags=["parts"], assign="me"),
    )
    app = make_app(settings)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        row = app.main.queue.current_row
        before = _state(settings, row.id)
        await pilot.press("f8")
        await settle(pilot, app)
        status, priority, assignee, tags = _state(settings, row.id)
        assert (status, priority, assignee) == ("on_hold", "high", AGENT) and "parts" in tags
        with Session(engine_of(settings)) as session:
            macro_event = session.exec(select(Event).where(Event.action == "macro")).one()
        assert '"parts-ordered"' in macro_event.detail
        await pilot.press("ctrl+z")
        await settle(pilot, app)
        assert _state(settings, row.id) == before


async def test_a_macro_on_marked_rows_that_fails_on_one_changes_none(make_app, demo_settings, demo_dir):
    (demo_dir / "templates" / "needs-order.md").write_text(
        "Your order {{ order_number }} is on its way.\n", encoding="utf-8"
    )
    settings = _with_macros(
        demo_settings, dict(name="shipped", key="f8", status="solved", add_tags=["shipped"], template="needs-order")
    )
    app = make_app(settings)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        notes = _notes(app)
        first = app.main.queue.current_row.id
        await pilot.press("x", "j", "x")
        second = app.main.queue.current_row.id
        before = [_state(settings, first), _state(settings, second)]
        await pilot.press("f8")
        await settle(pilot, app)
        assert [_state(settings, first), _state(settings, second)] == before
        assert any("nothing was changed" in note for note in notes), notes
    with Session(engine_of(settings)) as session:
        assert not session.exec(select(Event).where(Event.action == "macro")).first()


async def test_a_macro_with_a_template_opens_the_composer_with_it(make_app, demo_settings):
    settings = _with_macros(demo_settings, dict(name="refund", key="f8", add_tags=["refund"], template="refund-issued"))
    app = make_app(settings)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        row = app.main.queue.current_row
        await pilot.press("f8")
        await settle(pilot, app)
        assert isinstance(app.screen, ComposerScreen)
        assert app.screen.query_one("#body").text.strip(), "the template's text is in the composer"
        assert "refund" in _state(settings, row.id)[3]
    with Session(engine_of(settings)) as session:
        replies = session.exec(
            select(Message).where(Message.conversation_id == row.id, Message.author_login == AGENT)
        ).all()
    assert replies == [], "one conversation: the template waits in the composer, nothing is sent"


async def test_the_palette_lists_the_macros(make_app, demo_settings):
    settings = _with_macros(demo_settings, dict(name="parts-ordered", key="f8", status="on_hold", add_tags=["parts"]))
    app = make_app(settings)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        titles = [command.title for command in app.get_system_commands(app.main)]
    assert "Macro: parts-ordered (f8)" in titles


async def test_ctrl_z_in_the_undo_window_takes_a_reply_back_into_the_composer(make_app, demo_settings):
    demo_settings.ui.undo_send_seconds = 30
    app = make_app(demo_settings)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        row = app.main.queue.current_row
        await pilot.press("r")
        await settle(pilot, app)
        composer = app.screen
        composer.query_one("#body").load_text("Sent to the wrong customer.")
        await pilot.press("ctrl+s")
        await settle(pilot, app)
        assert app.screen is app.main
        assert "sends in" in app.main.query_one("Masthead").header
        with Session(engine_of(demo_settings)) as session:
            ours = session.exec(
                select(Message).where(Message.conversation_id == row.id, Message.body_text.contains("wrong customer"))
            ).one()
            outbox = session.exec(select(Outbox).where(Outbox.message_id == ours.id)).one()
        assert outbox.next_attempt_at > outbox.created_at
        await pilot.press("ctrl+z")
        await settle(pilot, app)
        assert isinstance(app.screen, ComposerScreen)
        assert "Sent to the wrong customer." in app.screen.query_one("#body").text
    with Session(engine_of(demo_settings)) as session:
        assert session.get(Message, ours.id) is None
        assert session.get(Outbox, outbox.id) is None


async def _until(pilot, check, seconds: float = 5.0) -> bool:
    for _ in range(int(seconds / 0.1)):
        if check():
            return True
        await pilot.pause(0.1)
    return check()


async def test_new_work_from_a_colleague_is_an_alert_with_a_counter_once_a_minute(make_app, demo_settings):
    from agentdesk.app import conversations
    from agentdesk.app.desk import Desk
    from tests.tui.conftest import frozen

    demo_settings.ui.alerts = "bell"
    app = make_app(demo_settings, poll=True)
    app.POLL_INTERVAL = 0.1
    rings: list[int] = []
    app.bell = lambda: rings.append(1)
    notes: list[str] = []
    original = app.notify
    app.notify = lambda message, *a, **k: (notes.append(str(message)), original(message, *a, **k))
    async with app.run_test(size=SIZE) as pilot:
        # Not settle(): the database poller never completes.
        assert await _until(pilot, lambda: app.alert_feed is not None and app.alert_feed.event_mark is not None)
        dana = Desk(demo_settings, agent="dana", now=frozen)
        row = app.main.queue.current_row
        conversations.update(dana, row.id, assignee=AGENT)
        assert await _until(pilot, lambda: app.alert_count == 1), notes
        assert rings == [1]
        assert any(f"AD-{row.id} was assigned to you by dana" in note for note in notes), notes
        assert await _until(pilot, lambda: "1 alert" in app.main.query_one("Masthead").header)
        # The clock stands still: the same conversation changing again within the minute is no new alert.
        conversations.update(dana, row.id, assignee=None)
        conversations.update(dana, row.id, assignee=AGENT)
        await pilot.pause(0.8)
        assert app.alert_count == 1
        await pilot.press("1")  # Mine: the agent looks at their work, the counter starts again
        assert await _until(pilot, lambda: "alert" not in app.main.query_one("Masthead").header)


async def test_M_splits_a_message_into_a_new_conversation(make_app, demo_settings):
    from agentdesk.tui.screens.dialogs import PromptScreen

    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        thread = app.main.thread
        inbound = [item for item in thread.items if item.kind == "inbound"]
        await pilot.press("M")
        await settle(pilot, app)
        assert isinstance(app.screen, PromptScreen)
        await pilot.press("enter")  # the suggestion: the latest customer message, to a new conversation
        await settle(pilot, app)
        with Session(engine_of(demo_settings)) as session:
            moved = session.exec(select(Message).where(Message.thread_reason == f"moved by {AGENT}")).one()
        from agentdesk.app import conversations

        app.main._show_thread(conversations.thread(app.desk, moved.conversation_id))
        await settle(pilot, app)
        assert "wrote" in app.main.thread_view.render_thread().plain
        assert f"(moved by {AGENT})" in app.main.thread_view.render_thread().plain, "the thread says why it is there"
    with Session(engine_of(demo_settings)) as session:
        moved = session.exec(select(Message).where(Message.thread_reason == f"moved by {AGENT}")).one()
    assert moved.conversation_id != thread.conversation.id
    assert moved.body_text.strip()[:20] in inbound[-1].body


async def test_replies_nothing_delivers_for_a_minute_are_said_in_the_header(make_app, demo_settings):
    from datetime import timedelta

    from tests.tui.conftest import FIXED_NOW

    # The demo's two queued replies were due long ago; with no mailbox or spool nothing could
    # deliver them, so only a desk with a source says so.
    settings = _with_macros(demo_settings)
    settings.spool = [config.SpoolSettings(name="sms", path=str(demo_settings.source.parent / "sms"))]
    with Session(engine_of(settings)) as session:
        queued = session.exec(select(Outbox).where(Outbox.state == "queued")).all()
        due = [
            o
            for o in queued
            if o.no_sender_at is None
            and (o.next_attempt_at is None or o.next_attempt_at <= FIXED_NOW - timedelta(minutes=1))
        ]
    assert due, "the demo has queued replies"
    app = make_app(settings)
    async with app.run_test(size=(200, 40)) as pilot:
        await settle(pilot, app)
        header = app.main.query_one("Masthead").header
    replies = "reply" if len(due) == 1 else "replies"
    assert f"{len(due)} {replies} not sent: no sync has run for a minute" in header
    with Session(engine_of(settings)) as session:
        for outbox in due:
            outbox.next_attempt_at = FIXED_NOW  # due now: a running sync has a minute to send them
            session.add(session.merge(outbox))
        session.commit()
    app = make_app(settings)
    async with app.run_test(size=(200, 40)) as pilot:
        await settle(pilot, app)
        assert "not sent" not in app.main.query_one("Masthead").header


async def test_ctrl_z_after_a_merge_separates_the_conversations_again(make_app, demo_settings):
    from agentdesk.tui.screens.dialogs import PromptScreen

    app = make_app(demo_settings)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        notes = _notes(app)
        queue = app.main.queue
        source, target = queue.row_at(0), queue.row_at(1)
        with Session(engine_of(demo_settings)) as session:
            messages = set(session.exec(select(Message.id).where(Message.conversation_id == source.id)).all())
        before = _state(demo_settings, source.id), _state(demo_settings, target.id)
        await pilot.press("m")
        assert isinstance(app.screen, PromptScreen)
        await pilot.press(*target.ref, "enter")
        await settle(pilot, app)
        with Session(engine_of(demo_settings)) as session:
            assert session.get(Conversation, source.id).merged_into_id == target.id
        await pilot.press("ctrl+z")
        await settle(pilot, app)
        assert any(f"{source.ref}: undid your merge into {target.ref}" in note for note in notes), notes
        assert any(queue.row_at(i).id == source.id for i in range(queue.count)), "back in the queue"
    with Session(engine_of(demo_settings)) as session:
        assert session.get(Conversation, source.id).merged_into_id is None
        assert set(session.exec(select(Message.id).where(Message.conversation_id == source.id)).all()) == messages
    assert (_state(demo_settings, source.id), _state(demo_settings, target.id)) == before
