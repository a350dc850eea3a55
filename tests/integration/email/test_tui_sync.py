"""The TUI alone is a whole desk: it runs the sync itself (real Dovecot, real aiosmtpd), shows
new mail, delivers a reply after its undo window, takes a reply back inside the window (nothing
reaches the SMTP server), and leaves the work to an `agentdesk sync` that holds the lock."""

from __future__ import annotations

import asyncio
import os
import time
from datetime import datetime, timezone

import pytest
from integration.email import mailgen
from integration.email.servers import mailbox_config
from sqlmodel import select

from agentdesk import config
from agentdesk.store import db, locks
from agentdesk.store.models import Message, Outbox

pytestmark = pytest.mark.integration

os.environ.setdefault("TEXTUAL_ANIMATIONS", "none")


def _customer_mail(n: int) -> bytes:
    return mailgen.message(
        n=n,
        sender=("Greta Lindqvist", "greta@velo.example"),
        to="support@example.com",
        subject="Spokes keep breaking",
        body=f"Message {n}: the rear wheel again.\n",
        at=datetime.now(timezone.utc),
        message_id=f"cust{n}@velo.example",
    )


def _app(settings, **kwargs):
    from agentdesk.tui.app import AgentDeskApp

    app = AgentDeskApp(settings, agent="tester", presence=False, sync=True, **kwargs)
    app.CURSOR_BLINK = False
    app.POLL_INTERVAL = 0.1
    app.own_sync.delivery_interval = 0.2
    app.own_sync.poll_interval = 2.0
    return app


async def _until(pilot, check, seconds: float = 15.0, what: str = "") -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return
        await pilot.pause(0.1)
    raise AssertionError(f"not within {seconds} s: {what}")


def _settings(tmp_path, dovecot, user, smtp, undo_seconds: float):
    settings = config.load(mailbox_config(tmp_path, dovecot, user, smtp.port))
    settings.ui.undo_send_seconds = undo_seconds
    return settings


def _rows(settings, model):
    engine = db.open_database(settings.database_url)
    try:
        with db.read_session(engine) as session:
            return list(session.exec(select(model)))
    finally:
        engine.dispose()


async def _reply(pilot, app, text: str) -> None:
    await pilot.press("r")
    await _until(pilot, lambda: type(app.screen).__name__ == "ComposerScreen", what="the composer opens")
    await pilot.pause(0.2)
    app.screen.query_one("#body").insert(text)
    await pilot.press("ctrl+s")
    await _until(pilot, lambda: app.screen is app.main, what="the composer closes")


def test_the_tui_alone_shows_new_mail_and_delivers_a_reply(dovecot, mail_user, smtp, tmp_path):
    settings = _settings(tmp_path, dovecot, mail_user, smtp, undo_seconds=0.5)
    dovecot.append(mail_user, [_customer_mail(1)])

    async def scenario():
        app = _app(settings, poll=True)
        async with app.run_test(size=(120, 40)) as pilot:
            await _until(pilot, lambda: app.sync_state[0] == "here", what="the TUI syncs itself")
            await _until(
                pilot,
                lambda: "syncing here" in app.main.query_one("Masthead").header,
                what="the header says the TUI syncs",
            )
            await _until(pilot, lambda: app.main.queue.current_row is not None, what="the new mail shows")
            await _reply(pilot, app, "A new wheel is on its way.")
            await _until(pilot, lambda: len(smtp.received) == 1, what="the reply reaches the SMTP server")
            # Mail that arrives while it runs shows too (IDLE), without a key.
            dovecot.append(mail_user, [_customer_mail(2)])
            await _until(pilot, lambda: app.main.queue.row_at(1) is not None, what="the second mail shows in the queue")
        assert app.own_sync.stop.is_set()

    asyncio.run(scenario())
    assert b"A new wheel is on its way." in smtp.received[0]
    assert [o.state for o in _rows(settings, Outbox)] == ["sent"]


# Long enough that a loaded machine still gets the ctrl+z in: at 2 s, a suite run beside other
# work missed it.
UNDO_SECONDS = 8  # room for a loaded host between the send and the ctrl+z


def test_ctrl_z_in_the_undo_window_takes_the_reply_back_before_smtp(dovecot, mail_user, smtp, tmp_path):
    settings = _settings(tmp_path, dovecot, mail_user, smtp, undo_seconds=UNDO_SECONDS)
    dovecot.append(mail_user, [_customer_mail(1)])
    notes: list[str] = []

    async def scenario():
        app = _app(settings, poll=True)
        async with app.run_test(size=(120, 40)) as pilot:
            await _until(pilot, lambda: app.main.queue.current_row is not None, what="the new mail shows")
            original = app.notify
            app.main.notify = lambda message, *a, **k: (notes.append(str(message)), original(message, *a, **k))
            await _reply(pilot, app, "Oops, wrong customer.")
            await _until(
                pilot,
                lambda: "ctrl+z takes it back" in app.main.query_one("Masthead").header,
                what="the header counts down",
            )
            await pilot.press("ctrl+z")
            await _until(pilot, lambda: type(app.screen).__name__ == "ComposerScreen", what="the composer reopens")
            assert "Oops, wrong customer." in app.screen.query_one("#body").text
            await pilot.pause(UNDO_SECONDS + 0.5)  # past the window: a sender would have taken it by now
        assert any("taken back" in note for note in notes), notes

    asyncio.run(scenario())
    assert smtp.received == []
    assert _rows(settings, Outbox) == []
    assert [m.direction for m in _rows(settings, Message)] == ["inbound"]


def test_the_tui_leaves_the_sync_to_the_holder_of_the_lock_and_takes_over_after(dovecot, mail_user, smtp, tmp_path):
    settings = _settings(tmp_path, dovecot, mail_user, smtp, undo_seconds=0)
    engine = db.open_database(settings.database_url)
    lock = locks.sync_lock(engine)
    lock.__enter__()  # what a running `agentdesk sync` holds

    async def scenario():
        app = _app(settings, poll=True, sync_recheck=0.3)
        async with app.run_test(size=(120, 40)) as pilot:
            await _until(pilot, lambda: app.sync_state[0] == "elsewhere", what="the TUI sees the other sync")
            await _until(
                pilot,
                lambda: "synced by agentdesk sync" in app.main.query_one("Masthead").header,
                what="the header says who syncs",
            )
            dovecot.append(mail_user, [_customer_mail(1)])
            await pilot.pause(1.0)
            assert app.main.queue.current_row is None, "the TUI fetched mail while another sync held the lock"
            lock.__exit__(None, None, None)
            await _until(pilot, lambda: app.sync_state[0] == "here", what="the TUI takes over")
            await _until(pilot, lambda: app.main.queue.current_row is not None, what="the mail shows")

    try:
        asyncio.run(scenario())
    finally:
        engine.dispose()


def test_a_reply_taken_back_keeps_its_cc_and_file_and_sends_them_when_sent_again(dovecot, mail_user, smtp, tmp_path):
    import email
    from email import policy

    settings = _settings(tmp_path, dovecot, mail_user, smtp, undo_seconds=UNDO_SECONDS)
    dovecot.append(mail_user, [_customer_mail(1)])
    manual = tmp_path / "wheel-manual.pdf"
    manual.write_bytes(b"%PDF-1.4 spokes and rims\n" * 40)

    async def scenario():
        app = _app(settings, poll=True)
        async with app.run_test(size=(120, 40)) as pilot:
            await _until(pilot, lambda: app.main.queue.current_row is not None, what="the new mail shows")
            await pilot.press("r")
            await _until(pilot, lambda: type(app.screen).__name__ == "ComposerScreen", what="the composer opens")
            composer = app.screen
            envelope = composer.query_one("#envelope")
            await _until(pilot, lambda: envelope.loaded, what="the reply-all fills the envelope")
            composer.query_one("#envelope-cc").focus()
            await pilot.press(*"workshop@velo.example")
            await pilot.press("ctrl+o")
            await _until(pilot, lambda: type(app.screen).__name__ == "AttachScreen", what="the file prompt")
            app.screen.query_one("#attach-path").value = str(manual)
            await pilot.press("enter")
            await _until(pilot, lambda: len(envelope.files) == 1, what="the file is attached")
            composer.query_one("#body").insert("The manual for your wheel is attached.")
            await pilot.press("ctrl+s")
            await _until(pilot, lambda: app.screen is app.main, what="the composer closes")
            await pilot.press("ctrl+z")
            await _until(pilot, lambda: type(app.screen).__name__ == "ComposerScreen", what="the composer reopens")
            reopened = app.screen
            again = reopened.query_one("#envelope")
            # Taken back, the reply comes back whole: its text, the Cc the agent typed, the file.
            await _until(pilot, lambda: len(again.files) == 1, what="the file comes back")
            assert "The manual for your wheel is attached." in reopened.query_one("#body").text
            assert reopened.query_one("#envelope-cc").value == "workshop@velo.example"
            assert again.files[0].name == "wheel-manual.pdf"
            assert smtp.received == []
            await pilot.press("ctrl+s")
            await _until(pilot, lambda: len(smtp.received) == 1, what="the reply reaches the SMTP server")

    asyncio.run(scenario())
    sent = email.message_from_bytes(smtp.received[0], policy=policy.default)
    assert "workshop@velo.example" in sent["Cc"]
    (part,) = [p for p in sent.walk() if p.get_filename()]
    assert part.get_filename() == "wheel-manual.pdf" and part.get_content() == manual.read_bytes()
    assert sorted(smtp.envelopes[0][1]) == ["greta@velo.example", "workshop@velo.example"]
