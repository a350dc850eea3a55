"""A customer mail with attachments added to a TUI test's demo database: a text note, a photo and
one over the size cap (withheld), stored through the real ingest path."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from email.message import EmailMessage

from agentdesk import config
from agentdesk.channels.email.mime import parse_message
from agentdesk.domain import clocks
from agentdesk.ingest import ingest_message
from agentdesk.store import db
from tests.tui.conftest import FIXED_NOW

NOTE = b"Serial number: HX-4411\nBought: 2026-10-02\n"
PHOTO = bytes(range(256)) * 40
SENDER = "ingrid.attach@velo.example"


def add_mail_with_attachments(settings: config.Settings) -> int:
    """Ingest the mail; the new conversation's id."""
    message = EmailMessage()
    message["From"] = f"Ingrid Holm <{SENDER}>"
    message["To"] = "support@example.com"
    message["Subject"] = "Cracked frame, photos attached"
    message["Message-ID"] = "<tui-attach-1@velo.example>"
    message.set_content("The frame cracked after a week. Photo and receipt attached.\n")
    message.add_attachment(NOTE, maintype="text", subtype="plain", filename="receipt.txt")
    message.add_attachment(PHOTO, maintype="image", subtype="jpeg", filename="frame.jpg")
    message.add_attachment(b"\0" * 300_000, maintype="application", subtype="zip", filename="video.zip")
    capped = dataclasses.replace(
        settings, attachments=dataclasses.replace(settings.attachments, max_file_bytes=200_000)
    )
    inbound = parse_message(message.as_bytes(), source="support", received_at=FIXED_NOW - timedelta(minutes=5))
    engine = db.open_database(settings.database_url)
    try:
        with db.write_session(engine) as session:
            stored = ingest_message(
                session, inbound, policies=clocks.Policies.from_settings(settings), now=FIXED_NOW, settings=capped
            )
            session.commit()
        return stored.conversation_id
    finally:
        engine.dispose()
