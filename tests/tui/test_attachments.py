"""The thread's attachment keys in a Pilot session: each attachment shown under its message, A
selects the next, v previews a text file and hands anything else to the opener, W saves through
a directory dialog; a withheld one says why and writes nothing."""

from __future__ import annotations

import hashlib
from pathlib import Path

from agentdesk.tui.screens.attachments import TextPreview
from agentdesk.tui.screens.dialogs import PromptScreen
from tests.tui.attachment_mail import NOTE, PHOTO, SENDER, add_mail_with_attachments
from tests.tui.conftest import settle

SIZE = (120, 40)


async def _open_the_mail(pilot, app) -> None:
    await settle(pilot, app)
    await pilot.press("slash", *f"from:{SENDER}", "enter")
    await settle(pilot, app)


async def test_attachment_keys_preview_open_and_save(make_app, demo_settings, tmp_path):
    conversation_id = add_mail_with_attachments(demo_settings)
    record = tmp_path / "opened.txt"
    opener = tmp_path / "opener.sh"
    opener.write_text(f'#!/bin/sh\nprintf "%s" "$1" > {record}\n')
    opener.chmod(0o755)
    demo_settings.attachments.opener = str(opener)
    app = make_app(demo_settings)
    async with app.run_test(size=SIZE) as pilot:
        await _open_the_mail(pilot, app)
        assert app.main.thread.conversation.id == conversation_id
        lines = [strip.text for strip in app.main.thread_view._lines]
        shown = [line for line in lines if "[attachment " in line]
        assert len(shown) == 3
        assert "receipt.txt (text/plain" in shown[0] and "frame.jpg (image/jpeg" in shown[1]
        assert "video.zip" in shown[2] and "withheld: over the" in shown[2]
        assert "max_file_bytes" in "".join(lines).replace(" ", "")

        # A text file: previewed here, in a modal.
        await pilot.press("A")
        assert app.main.thread_view.selected_attachment == 1
        await pilot.press("v")
        await settle(pilot, app)
        assert isinstance(app.screen, TextPreview)
        assert "HX-4411" in str(app.screen.query_one("#preview").render())
        await pilot.press("escape")
        await settle(pilot, app)

        # An image: handed to the opener as a private copy under its safe name.
        await pilot.press("A")
        assert app.main.thread_view.selected_attachment == 2
        await pilot.press("v")
        await settle(pilot, app)
        for _ in range(50):
            if record.exists() and record.read_text():
                break
            await pilot.pause(0.05)
        handed = Path(record.read_text())
        assert handed.name == "frame.jpg" and handed.read_bytes() == PHOTO

        # Save through the dialog, into a directory of our choosing; twice: never over the first.
        target = tmp_path / "saved"
        target.mkdir()
        for _ in range(2):
            await pilot.press("W")
            await settle(pilot, app)
            assert isinstance(app.screen, PromptScreen)
            app.screen.query_one("#prompt").value = str(target)
            await pilot.press("enter")
            await settle(pilot, app)
        assert sorted(p.name for p in target.iterdir()) == ["frame (1).jpg", "frame.jpg"]
        assert hashlib.sha256((target / "frame.jpg").read_bytes()).digest() == hashlib.sha256(PHOTO).digest()

        # The withheld one: a warning, no dialog, no file.
        await pilot.press("A")
        assert app.main.thread_view.selected_attachment == 3
        await pilot.press("W")
        await settle(pilot, app)
        assert not isinstance(app.screen, PromptScreen)
        assert any("withheld" in str(n.message) for n in app._notifications)
        # A wraps around to the first.
        await pilot.press("A")
        assert app.main.thread_view.selected_attachment == 1
    assert (target / "frame.jpg").read_bytes() == PHOTO and NOTE
