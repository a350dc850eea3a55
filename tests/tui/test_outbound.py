"""Pilot: the composer's files and recipients, the forward key and the new-conversation key.

Each drives the keys an agent would press and checks what was stored for the outbox to send
(the delivery itself is proven against aiosmtpd in tests/integration/email/test_outbound.py).
"""

from __future__ import annotations

from sqlmodel import Session, select

from agentdesk import config
from agentdesk.store.models import Attachment, Conversation, Identity, Message, Outbox
from agentdesk.tui.screens.composer import ComposerScreen
from agentdesk.tui.screens.new_conversation import NewConversationScreen
from agentdesk.tui.widgets.envelope import Envelope
from tests.tui.conftest import engine_of, settle

SIZE = (120, 40)

MAILBOX = """
[[mailbox]]
name = "support"
address = "support@demo.example"
host = "127.0.0.1"
tls = "none"

[mailbox.smtp]
host = "127.0.0.1"
port = 2525
tls = "none"
"""


def _with_mailbox(demo_dir) -> config.Settings:
    path = demo_dir / "config.toml"
    path.write_text(path.read_text(encoding="utf-8") + MAILBOX, encoding="utf-8")
    return config.load(path)


async def _open_email_reply(pilot, app) -> int:
    """Move to the first email conversation of the queue and open the composer on it."""
    await settle(pilot, app)
    with Session(engine_of(app.settings)) as session:
        emails = {c.id for c in session.exec(select(Conversation).where(Conversation.channel == "email"))}
    for _ in range(60):
        row = app.main.queue.current_row
        if row is not None and row.id in emails:
            break
        await pilot.press("j")
        await settle(pilot, app)
    row = app.main.queue.current_row
    assert row.id in emails
    await pilot.press("r")
    await settle(pilot, app)
    return row.id


def _latest_outbound(settings, conversation_id: int) -> tuple[Message, Outbox, list[Attachment]]:
    with Session(engine_of(settings)) as session:
        message = session.exec(
            select(Message)
            .where(Message.conversation_id == conversation_id, Message.direction == "outbound")
            .order_by(Message.id.desc())
        ).first()
        outbox = session.exec(select(Outbox).where(Outbox.message_id == message.id)).one()
        files = list(session.exec(select(Attachment).where(Attachment.message_id == message.id)))
        return message, outbox, files


async def test_composer_attaches_files_and_removes_one(make_app, demo_settings, tmp_path):
    (tmp_path / "invoice.pdf").write_bytes(b"%PDF-1.4 invoice")
    (tmp_path / "photo.jpg").write_bytes(b"\xff\xd8 photo")
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        conversation_id = await _open_email_reply(pilot, app)
        composer = app.screen
        assert isinstance(composer, ComposerScreen)
        envelope = composer.query_one(Envelope)
        assert envelope.recipients().to, "the To is prefilled with the customer"
        for name in ("invoice.pdf", "photo.jpg"):
            await pilot.press("ctrl+o")
            await settle(pilot, app)
            # Type the directory and the first letters; tab completes the rest.
            await pilot.press(*f"{tmp_path}/{name[:3]}", "tab", "enter")
            await settle(pilot, app)
        assert [f.name for f in envelope.files] == ["invoice.pdf", "photo.jpg"]
        listing = envelope.query_one("#attachments")
        listing.focus()
        listing.highlighted = 0
        await pilot.press("delete")
        await settle(pilot, app)
        assert [f.name for f in envelope.files] == ["photo.jpg"]
        composer.query_one("#body").load_text("The photo you asked for.")
        await pilot.press("ctrl+s")
        await settle(pilot, app)
        assert app.screen is app.main
    message, outbox, files = _latest_outbound(demo_settings, conversation_id)
    assert message.body_text.startswith("The photo you asked for.")
    assert [(f.filename, f.size, f.state) for f in files] == [("photo.jpg", 8, "stored")]
    assert outbox.to_addresses and outbox.state == "queued"


async def test_composer_recipients_are_editable_and_checked(make_app, demo_settings):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        conversation_id = await _open_email_reply(pilot, app)
        composer = app.screen
        envelope = composer.query_one(Envelope)
        customer = envelope.recipients().to
        await pilot.press("f3")  # To
        await pilot.press("tab", *"not-an-address")  # Cc
        composer.query_one("#body").load_text("Copying the team.")
        await pilot.press("ctrl+s")
        await settle(pilot, app)
        assert app.screen is composer  # refused: nothing sent, still writing
        cc = envelope.query_one("#envelope-cc")
        cc.value = "Bo <bo@example.com>, ann@example.com"
        envelope.query_one("#envelope-bcc").value = "audit@example.com"
        await pilot.press("ctrl+s")
        await settle(pilot, app)
        assert app.screen is app.main
    _, outbox, _ = _latest_outbound(demo_settings, conversation_id)
    assert outbox.to_addresses.split() == list(customer)
    assert outbox.cc_addresses.split() == ["bo@example.com", "ann@example.com"]
    assert outbox.bcc_addresses == "audit@example.com"


async def test_forward_key_sends_the_thread_to_a_third_party(make_app, demo_dir):
    settings = _with_mailbox(demo_dir)
    app = make_app(settings)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        conversation_id = app.main.queue.current_row.id
        await pilot.press("f")
        await settle(pilot, app)
        composer = app.screen
        assert isinstance(composer, ComposerScreen) and composer.kind == "forward"
        assert "Forward" in str(composer.query_one("#composer-title").render())
        await pilot.press(*"parts@supplier.example")  # To has the focus
        composer.query_one("#body").load_text("Can you help with this one?")
        await pilot.press("ctrl+s")
        await settle(pilot, app)
        assert app.screen is app.main
        rendered = app.main.thread_view.render_thread().plain
        assert "forwarded to parts@supplier.example" in rendered
    message, outbox, _ = _latest_outbound(settings, conversation_id)
    assert (message.kind, message.source, outbox.channel) == ("forward", "support", "email")
    assert outbox.to_addresses == "parts@supplier.example"
    assert message.body_text.startswith("Can you help with this one?")
    assert "---------- Forwarded message ----------" in message.body_text
    # The thread folds the forwarded messages as what they are, apart from the one-line signature.
    count = message.body_text.count("---------- Forwarded message ----------")
    (fold,) = [line for line in rendered.splitlines() if "forwarded message" in line and "···" in line]
    assert f"··· signature and {count} forwarded message" in fold, fold
    assert "Can you help with this one?" in rendered
    assert not [line for line in rendered.splitlines() if "(1 lines)" in line]


async def test_new_conversation_key_finds_the_customer_and_starts_it(make_app, demo_dir, tmp_path):
    settings = _with_mailbox(demo_dir)
    (tmp_path / "delay-notice.pdf").write_bytes(b"%PDF-1.4 new dates")
    (tmp_path / "old-quote.pdf").write_bytes(b"%PDF-1.4 the old quote")
    with Session(engine_of(settings)) as session:
        identity = session.exec(select(Identity).where(Identity.kind == "email").order_by(Identity.id)).first()
        before = session.exec(select(Conversation.id).order_by(Conversation.id.desc())).first()
    app = make_app(settings)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        await pilot.press("N")
        await settle(pilot, app)
        screen = app.screen
        assert isinstance(screen, NewConversationScreen)
        await pilot.press(*identity.address.split("@")[0])
        await pilot.pause(0.5)
        await settle(pilot, app)
        assert any(c.address == identity.address for c in screen.contacts)
        await pilot.press("ctrl+down")
        index = next(i for i, c in enumerate(screen.contacts) if c.address == identity.address)
        screen.query_one("#contacts").highlighted = index
        await pilot.press("enter")
        await settle(pilot, app)
        assert screen.query_one("#new-to").value == identity.address
        await pilot.press(*"Your order ships late")  # Subject has the focus now
        screen.query_one("#new-body").load_text("Sorry: a week later than promised.")
        # Two files attached (one twice: refused), then one removed again.
        for name in ("delay-notice.pdf", "old-quote.pdf", "old-quote.pdf"):
            await pilot.press("ctrl+o")
            await settle(pilot, app)
            app.screen.query_one("#attach-path").value = f"{tmp_path}/{name}"  # typing it: test_flows
            await pilot.press("enter")
            await settle(pilot, app)
        assert [f.name for f in screen.files] == ["delay-notice.pdf", "old-quote.pdf"]
        assert any("old-quote.pdf is attached already" in str(n.message) for n in app._notifications)
        files = screen.query_one("#new-files")
        files.focus()
        files.highlighted = 1
        await pilot.press("delete")
        assert [f.name for f in screen.files] == ["delay-notice.pdf"]
        await pilot.press("ctrl+s")
        await settle(pilot, app)
        assert app.screen is app.main
    with Session(engine_of(settings)) as session:
        conversation = session.exec(select(Conversation).order_by(Conversation.id.desc())).first()
        assert conversation.id != before
        assert (conversation.customer_id, conversation.subject, conversation.status, conversation.channel) == (
            identity.customer_id,
            "Your order ships late",
            "pending",
            "email",
        )
        outbox = session.exec(
            select(Outbox)
            .join(Message, Message.id == Outbox.message_id)
            .where(Message.conversation_id == conversation.id)
        ).one()
        assert outbox.to_addresses == identity.address
        (sent_file,) = session.exec(select(Attachment).where(Attachment.message_id == outbox.message_id)).all()
        assert (sent_file.filename, sent_file.size) == ("delay-notice.pdf", len(b"%PDF-1.4 new dates"))


def _file_twice_and_one_more(settings, conversation_id: int) -> None:
    """Give the conversation's first two customer messages the same quote, and a photo."""
    from agentdesk.store import attachments

    with Session(engine_of(settings)) as session:
        inbound = session.exec(
            select(Message)
            .where(Message.conversation_id == conversation_id, Message.direction == "inbound")
            .order_by(Message.id)
        ).all()
        quote = attachments.put(session=session, data=b"%PDF quote")
        photo = attachments.put(session=session, data=b"\xff\xd8 photo")
        for message in (inbound[0], inbound[-1]):
            session.add(Attachment(message_id=message.id, filename="quote.pdf", size=10, storage_key=quote))
        session.add(Attachment(message_id=inbound[0].id, filename="photo.jpg", size=8, storage_key=photo))
        session.commit()


async def test_forward_lists_its_files_once_and_they_can_be_removed_and_added(make_app, demo_dir, tmp_path):
    settings = _with_mailbox(demo_dir)
    (tmp_path / "extra.txt").write_bytes(b"workshop notes")
    app = make_app(settings)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        conversation_id = app.main.queue.current_row.id
        _file_twice_and_one_more(settings, conversation_id)
        await pilot.press("f")
        await settle(pilot, app)
        composer = app.screen
        envelope = composer.query_one(Envelope)
        assert [f.name for f in envelope.files] == ["quote.pdf", "photo.jpg"]
        assert "quote.pdf" in str(envelope.query_one("#attachments").get_option_at_index(0).prompt)
        listing = envelope.query_one("#attachments")
        listing.focus()
        listing.highlighted = 1
        await pilot.press("delete")
        await pilot.press("ctrl+o")
        await settle(pilot, app)
        await pilot.press(*f"{tmp_path}/extra.txt", "enter")
        await settle(pilot, app)
        assert [f.name for f in envelope.files] == ["quote.pdf", "extra.txt"]
        # The same file again is refused, not sent twice.
        await pilot.press("ctrl+o")
        await settle(pilot, app)
        await pilot.press(*f"{tmp_path}/extra.txt", "enter")
        await settle(pilot, app)
        assert [f.name for f in envelope.files] == ["quote.pdf", "extra.txt"]
        assert any("extra.txt is attached already" in str(n.message) for n in app._notifications)
        envelope.query_one("#envelope-to").value = "parts@supplier.example"
        await pilot.press("ctrl+g")  # send and set pending: waiting on the supplier
        await settle(pilot, app)
        assert app.screen is app.main
    message, outbox, files = _latest_outbound(settings, conversation_id)
    assert message.kind == "forward" and outbox.to_addresses == "parts@supplier.example"
    assert sorted((f.filename, f.size) for f in files) == [("extra.txt", 14), ("quote.pdf", 10)]
    with Session(engine_of(settings)) as session:
        assert session.get(Conversation, conversation_id).status == "pending"


async def test_escape_keeps_the_forward_draft(make_app, demo_dir):
    from agentdesk.store.models import Draft

    settings = _with_mailbox(demo_dir)
    app = make_app(settings)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        conversation_id = app.main.queue.current_row.id
        await pilot.press("f")
        await settle(pilot, app)
        await pilot.press(*"c@d.example")  # To has the focus
        composer = app.screen
        composer.query_one("#body").focus()
        await pilot.press(*"Can you check these?")
        await pilot.press("escape")
        await settle(pilot, app)
        assert app.screen is app.main
        with Session(engine_of(settings)) as session:
            draft = session.get(Draft, (conversation_id, app.desk.agent))
            assert (draft.kind, draft.body) == ("forward", "Can you check these?")
        await pilot.press("f")
        await settle(pilot, app)
        composer = app.screen
        assert isinstance(composer, ComposerScreen) and composer.kind == "forward"
        assert composer.query_one("#envelope-to").value == "c@d.example"
        assert composer.query_one("#body").text == "Can you check these?"
        await pilot.press("ctrl+s")
        await settle(pilot, app)
        assert app.screen is app.main
        with Session(engine_of(settings)) as session:
            assert session.get(Draft, (conversation_id, app.desk.agent)) is None  # sent: the draft is gone
    message, outbox, _ = _latest_outbound(settings, conversation_id)
    assert (message.kind, outbox.to_addresses) == ("forward", "c@d.example")


async def test_f3_puts_the_cursor_after_the_prefilled_to(make_app):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await _open_email_reply(pilot, app)
        to = app.screen.query_one("#envelope-to")
        prefilled = to.value
        assert prefilled
        await pilot.press("f3")
        await pilot.press(*", bo@example.com")
        assert to.value == prefilled + ", bo@example.com"


async def test_a_chat_reply_title_names_the_handle_it_goes_to(make_app, demo_settings):
    with Session(engine_of(demo_settings)) as session:
        chats = {c.id for c in session.exec(select(Conversation).where(Conversation.channel == "chat"))}
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        for _ in range(60):
            if app.main.queue.current_row.id in chats:
                break
            await pilot.press("j")
            await settle(pilot, app)
        await pilot.press("r")
        await settle(pilot, app)
        composer = app.screen
        to = composer.query_one(Envelope).recipients().to
        title = str(composer.query_one("#composer-title").render())
        assert to and to[0].startswith("web:") and to[0] in title, title
        assert "@" not in title.split("\n")[0], title


async def test_new_conversation_offers_only_identities_a_channel_reaches_found_by_prefix(make_app, demo_dir):
    from agentdesk.store.models import Customer

    settings = _with_mailbox(demo_dir)  # email only: no sms spool, no chat spool
    with Session(engine_of(settings)) as session:
        phone = session.exec(select(Identity).where(Identity.kind == "phone").order_by(Identity.id)).first()
        customer = session.get(Customer, phone.customer_id)
        email = session.exec(
            select(Identity).where(Identity.customer_id == customer.id, Identity.kind == "email")
        ).first()
    surname = customer.name.split()[-1]
    app = make_app(settings)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        await pilot.press("N")
        await settle(pilot, app)
        screen = app.screen
        await pilot.press(*f"{customer.name.split()[0][:3]} {surname[:-1]}")  # the start of each word
        await pilot.pause(0.5)
        await settle(pilot, app)
        by_address = {c.address: c for c in screen.contacts}
        assert email.address in by_address and phone.address in by_address
        listing = screen.query_one("#contacts")
        shown = {
            listing.get_option_at_index(i).prompt: listing.get_option_at_index(i).disabled
            for i in range(listing.option_count)
        }
        (phone_line,) = [line for line in shown if phone.address in str(line)]
        assert shown[phone_line] and "no sms mailbox or spool is configured" in str(phone_line)
        assert [c.address for c in screen.contacts if c.source] == [email.address]
        await pilot.press("ctrl+down", "enter")
        await settle(pilot, app)
        assert screen.query_one("#new-to").value == email.address
        assert screen.query_one("#new-source").value == "support"


async def test_a_forward_over_a_reply_draft_leaves_the_reply_draft_alone(make_app, demo_dir):
    from agentdesk.store.models import Draft

    settings = _with_mailbox(demo_dir)
    app = make_app(settings)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        conversation_id = app.main.queue.current_row.id
        await pilot.press("r")
        await settle(pilot, app)
        app.screen.query_one("#body").focus()
        await pilot.press(*"Half a reply")
        await pilot.press("escape")
        await settle(pilot, app)
        await pilot.press("f")
        await settle(pilot, app)
        assert app.screen.kind == "forward"
        await pilot.press(*"c@d.example")
        app.screen.query_one("#body").load_text("A note")
        await pilot.pause(1.2)  # past the autosave delay
        await pilot.press("escape")
        await settle(pilot, app)
        with Session(engine_of(settings)) as session:
            draft = session.get(Draft, (conversation_id, app.desk.agent))
            assert (draft.kind, draft.body) == ("reply", "Half a reply")
        notices = [str(n.message) for n in app._notifications]
        assert any("the forward is not kept" in n for n in notices), notices
