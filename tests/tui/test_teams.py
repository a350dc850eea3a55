"""Two agents on one database: presence, and acting on a view that went stale meanwhile."""

from __future__ import annotations

from sqlmodel import Session, select

from agentdesk.domain import clocks, queue, replies
from agentdesk.store import db
from agentdesk.store.models import Conversation, Message, Presence
from agentdesk.tui.screens.composer import ComposerScreen
from agentdesk.tui.screens.dialogs import ChangedScreen
from tests.tui.conftest import AGENT, FIXED_NOW, engine_of, settle

SIZE = (120, 40)


async def test_two_tuis_see_each_others_presence(make_app, demo_settings):
    mine = make_app(presence=True)
    dana = make_app(presence=True, agent="dana")
    async with mine.run_test(size=SIZE) as pilot, dana.run_test(size=SIZE) as dana_pilot:
        await settle(pilot, mine)
        await settle(dana_pilot, dana)
        row = mine.main.queue.current_row
        assert dana.main.queue.current_row.id == row.id  # same view, same first row
        await dana_pilot.press("r")  # dana starts replying
        await settle(dana_pilot, dana)
        assert isinstance(dana.screen, ComposerScreen)
        mine.refresh_colleagues()
        await settle(pilot, mine)
        assert mine.colleagues[row.id].endswith("is replying")
        assert "is replying" in mine.main.thread_view.render_thread().plain
        strip = mine.main.queue.render_line(1 + row_index(mine, row.id) - int(mine.main.queue.scroll_offset.y))
        assert "is replying" in strip.text
        # And the other way round: dana sees that I am viewing it.
        dana.refresh_colleagues()
        await settle(dana_pilot, dana)
        assert dana.colleagues[row.id] == f"You ({AGENT}) is viewing"  # the demo config names the tester
        # Dana closes the composer: back to viewing.
        await dana_pilot.press("escape")
        await settle(dana_pilot, dana)
        mine.refresh_colleagues()
        await settle(pilot, mine)
        assert "is viewing" in mine.colleagues[row.id]
    # Both quit: no presence is left behind.
    with Session(engine_of(demo_settings)) as session:
        assert session.exec(select(Presence)).all() == []


def row_index(app, conversation_id: int) -> int:
    queue = app.main.queue
    return next(i for i in range(queue.count) if queue.row_at(i).id == conversation_id)


async def test_stale_presence_expires(make_app, demo_settings):
    from datetime import timedelta

    from agentdesk.domain import presence

    engine = engine_of(demo_settings)
    with db.write_session(engine) as session:
        presence.heartbeat(
            session,
            agent="dana",
            conversation_id=1,
            activity="replying",
            now=FIXED_NOW - presence.STALE_AFTER - timedelta(seconds=1),
        )
        presence.heartbeat(session, agent="sam", conversation_id=2, activity="viewing", now=FIXED_NOW)
        session.commit()
    app = make_app(presence=True)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        app.refresh_colleagues()
        await settle(pilot, app)
        assert 1 not in app.colleagues
        assert app.colleagues[2] == "Sam Okafor is viewing"


def _customer_writes(settings, conversation_id: int, body: str) -> None:
    """Another process: a new customer message lands on the conversation (version moves)."""
    engine = engine_of(settings)
    policies = clocks.Policies.from_settings(settings)
    with db.write_session(engine) as session:
        conversation = session.get(Conversation, conversation_id)
        session.add(
            Message(
                conversation_id=conversation_id,
                direction="inbound",
                author="The Customer",
                body_text=body,
                at=FIXED_NOW,
                ingested_at=FIXED_NOW,
            )
        )
        conversation.waiting_since = conversation.waiting_since or FIXED_NOW
        queue.touch(session, conversation=conversation, policies=policies, now=FIXED_NOW)
        session.commit()


async def test_reply_on_changed_conversation_warns_then_sends(make_app, demo_settings):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        row = app.main.queue.current_row
        await pilot.press("r")
        await settle(pilot, app)
        app.screen.query_one("#body").focus()  # it opened on the suggested templates
        await pilot.press(*"We are on it")
        _customer_writes(demo_settings, row.id, "Actually it works now, never mind!")
        await pilot.press("ctrl+s")
        await settle(pilot, app)
        assert isinstance(app.screen, ChangedScreen)
        assert "never mind" in str(app.screen.query_one("#changes").render())
        with Session(engine_of(demo_settings)) as session:
            assert not session.exec(
                select(Message).where(Message.conversation_id == row.id, Message.body_text.contains("We are on it"))
            ).all()
        await pilot.press("escape")  # keep editing
        await settle(pilot, app)
        assert isinstance(app.screen, ComposerScreen)
        await pilot.press(*" - glad to hear")
        await pilot.press("ctrl+s")  # the agent has seen the change: no second warning
        await settle(pilot, app)
        assert app.screen is app.main
    with Session(engine_of(demo_settings)) as session:
        sent = session.exec(
            select(Message).where(Message.conversation_id == row.id, Message.direction == "outbound")
        ).all()
        assert any("We are on it - glad to hear" in m.body_text for m in sent)


async def test_reply_after_colleague_replied_can_send_anyway(make_app, demo_settings):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        row = app.main.queue.current_row
        await pilot.press("r")
        await settle(pilot, app)
        app.screen.query_one("#body").focus()  # it opened on the suggested templates
        await pilot.press(*"Second answer")
        engine = engine_of(demo_settings)
        with db.write_session(engine) as session:
            conversation = session.get(Conversation, row.id)
            replies.reply(
                session,
                conversation=conversation,
                body="Dana's answer",
                agent="dana",
                agent_name="Dana",
                now=FIXED_NOW,
                policies=clocks.Policies.from_settings(demo_settings),
            )
            session.commit()
        await pilot.press("ctrl+s")
        await settle(pilot, app)
        assert isinstance(app.screen, ChangedScreen)
        assert "Dana's answer" in str(app.screen.query_one("#changes").render())
        await pilot.press("enter")  # send anyway
        await settle(pilot, app)
        assert app.screen is app.main
    with Session(engine_of(demo_settings)) as session:
        bodies = [
            m.body_text
            for m in session.exec(
                select(Message).where(Message.conversation_id == row.id, Message.direction == "outbound")
            )
        ]
        assert any("Second answer" in b for b in bodies) and any("Dana's answer" in b for b in bodies)


async def test_action_on_stale_row_reloads_and_says_so(make_app, demo_settings):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        row = app.main.queue.current_row
        # Another agent changes the priority while this screen still shows the old row (no poller).
        with db.write_session(engine_of(demo_settings)) as session:
            conversation = session.get(Conversation, row.id)
            queue.change(
                session,
                conversation=conversation,
                agent="dana",
                now=FIXED_NOW,
                policies=clocks.Policies.from_settings(demo_settings),
                priority="urgent",
            )
            session.commit()
        await pilot.press("s", "end", "enter")  # closed
        await settle(pilot, app)
        assert any("changed since you looked" in n.message for n in app._notifications)
        assert app.main.queue.version_of(row.id) == row.version + 1  # reloaded
    with Session(engine_of(demo_settings)) as session:
        conversation = session.get(Conversation, row.id)
        assert conversation.status == row.status and conversation.priority == "urgent"
