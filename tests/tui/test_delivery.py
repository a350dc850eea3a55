"""A reply's delivery state in the thread, and the resend key, against the demo database."""

from __future__ import annotations

import io
import re

from sqlmodel import Session, select

from agentdesk.app import conversations
from agentdesk.channels.base import DeliveryError, DeliveryOutcomeUnknown
from agentdesk.store.models import DeliveryAttempt, Message, Outbox
from agentdesk.sync import delivery
from tests.tui.conftest import engine_of, frozen, settle

SIZE = (120, 40)


class OneUnknownOutcome:
    """Sends nothing: the one reply it is given goes out with no answer (possibly sent); every other
    due row is held back with a temporary failure, so the test touches no more than it must."""

    def __init__(self, message_id: int):
        self.message_id = message_id

    def prepare(self, session, *, outbox, message, conversation):
        if message.id != self.message_id:
            raise DeliveryError("held back by this test")
        return message.id

    def send(self, prepared):
        raise DeliveryOutcomeUnknown("the connection closed after DATA, before the server answered")


def _possibly_send(app, settings, conversation_id: int) -> int:
    """A new reply in the conversation, then one delivery pass that leaves its outcome unknown."""
    sent = conversations.reply(app.desk, conversation_id, "Your refund went out this morning.")
    engine = engine_of(settings)
    with Session(engine) as session:
        message = session.exec(select(Message).where(Message.external_id == sent.external_id)).one()
        outbox = session.exec(select(Outbox).where(Outbox.message_id == message.id)).one()
    report = delivery.deliver_due(engine, {outbox.channel: OneUnknownOutcome(message.id)}, now_fn=frozen, limit=100_000)
    assert report.possibly_sent == 1
    return message.id


def _outbox_and_history(settings, message_id: int) -> tuple[Outbox, list[str]]:
    with Session(engine_of(settings)) as session:
        outbox = session.exec(select(Outbox).where(Outbox.message_id == message_id)).one()
        history = [
            a.outcome
            for a in session.exec(
                select(DeliveryAttempt).where(DeliveryAttempt.outbox_id == outbox.id).order_by(DeliveryAttempt.id)
            )
        ]
    return outbox, history


async def test_a_possibly_sent_reply_is_said_in_the_thread_and_d_resends_it(make_app, demo_settings):
    app = make_app()
    notes: list[str] = []
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        row = app.main.queue.current_row
        message_id = _possibly_send(app, demo_settings, row.id)
        await pilot.press("f5")
        await settle(pilot, app)
        text = app.main.thread_view.render_thread().plain
        reply = next(i for i in app.main.thread.items if i.delivery == "possibly_sent")
        assert (
            f"possibly sent (since 09:30): the connection closed after DATA, before the server answered"
            f" — D resends #{reply.number}"
        ) in text

        original = app.notify

        def notify(message, *args, **kwargs):
            notes.append(str(message))
            return original(message, *args, **kwargs)

        app.main.notify = notify
        await pilot.press("D")
        await settle(pilot, app)
        outbox, history = _outbox_and_history(demo_settings, message_id)
        assert outbox.state == "queued" and outbox.attempts == 0
        assert history == ["possibly_sent"], "the earlier attempt stays in the delivery history"
        assert notes[-1] == f"AD-{row.id} message {reply.number} queued to be sent again"
        # The thread was reloaded: it says queued now, not possibly sent.
        assert next(i for i in app.main.thread.items if i.number == reply.number).delivery == "queued"
        assert "possibly sent (since" not in app.main.thread_view.render_thread().plain


async def test_d_with_nothing_to_resend_says_so(make_app, demo_settings):
    app = make_app()
    notes: list[str] = []
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        thread = app.main.thread
        assert not any(i.delivery in ("failed", "possibly_sent") for i in thread.items)
        original = app.notify
        app.main.notify = lambda message, *a, **k: (notes.append(str(message)), original(message, *a, **k))
        await pilot.press("D")
        await settle(pilot, app)
    assert notes == [f"AD-{thread.conversation.id}: no failed or possibly sent reply to resend"]


async def test_a_reply_no_sender_here_takes_says_so_in_the_thread(make_app, demo_settings):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        row = app.main.queue.current_row
        conversations.reply(app.desk, row.id, "On its way.")
        # A pass with no sender at all marks every queued reply as waiting for another host.
        delivery.deliver_due(engine_of(demo_settings), {}, now_fn=frozen)
        await pilot.press("f5")
        await settle(pilot, app)
        text = app.main.thread_view.render_thread().plain
        assert "cannot be delivered from this host: no sender for " in text


def test_help_lists_the_resend_key():
    from rich.console import Console

    from agentdesk.tui.screens.help import help_table

    console = Console(record=True, width=120, file=io.StringIO())
    console.print(help_table({}))
    assert re.search(
        r"\bD\s+Resend reply — Send again this conversation's latest failed or possibly sent reply",
        console.export_text(),
    )
