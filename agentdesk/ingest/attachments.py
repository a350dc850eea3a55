"""What ingest keeps of a message's attachments: each one's row, and its bytes in the store when
they fit the caps ([attachments] max_file_bytes, max_message_bytes).

An attachment over a cap is recorded as withheld with its size and the reason, never dropped in
silence; a linked one whose download failed (channels/webhook/fetch.py) as failed with the
reason; one whose bytes are only in the raw message (a mail too big to parse whole) as in_raw,
taken from the raw message when an agent first opens it (app/attachments.py).
"""

from __future__ import annotations

import hashlib

from sqlmodel import Session

from agentdesk.channels.base import InboundMessage
from agentdesk.config import AttachmentSettings, Settings
from agentdesk.store import attachments as attachment_store


def size_text(size: int) -> str:
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}".replace(".0 ", " ")
    return f"{size} bytes"


class Keeper:
    """The attachments of one ingest chunk: rows decided as messages are added, bytes written
    meanwhile, all finished before the rows are inserted."""

    def __init__(self, session: Session, settings: Settings | None):
        self.caps = settings.attachments if settings is not None else AttachmentSettings()
        self.session = session
        self.writer: attachment_store.Writer | None = None
        # IMAP mailboxes: sources whose raw message is the mail itself (MIME), attachments inside.
        self.mailboxes = {mailbox.name for mailbox in getattr(settings, "mailbox", ())}

    def rows_for(self, message: InboundMessage) -> list[dict]:
        """The Attachment rows of `message` (without message_id), its bytes handed to the writer."""
        rows = []
        kept = 0
        for attachment in message.attachments:
            data = attachment.data
            measured = getattr(attachment, "sha256", "")
            size = len(data) if data or not (measured or attachment.size) else attachment.size
            row = dict(
                filename=attachment.filename,
                content_type=attachment.content_type,
                size=size,
                storage_key="",
                state="stored",
                reason="",
                url=attachment.url,
            )
            rows.append(row)
            if attachment.failure:
                row.update(state="withheld" if attachment.withheld else "failed", reason=attachment.failure)
                continue
            if attachment.url and not data:
                row.update(
                    state="failed",
                    reason="not downloaded: linked attachments are not fetched ([attachments] download = false)",
                )
                continue
            row["storage_key"] = storage_key = measured or hashlib.sha256(data).hexdigest()
            if size > self.caps.max_file_bytes:
                row.update(
                    state="withheld",
                    reason=f"over the {size_text(self.caps.max_file_bytes)} limit per file "
                    "([attachments] max_file_bytes)",
                )
                continue
            if kept + size > self.caps.max_message_bytes:
                row.update(
                    state="withheld",
                    reason=f"the message's attachments pass the "
                    f"{size_text(self.caps.max_message_bytes)} limit per message "
                    "([attachments] max_message_bytes)",
                )
                continue
            kept += size
            if measured and not data:
                row.update(state="in_raw", reason="kept in the raw message; taken from it when first opened")
                continue
            if self.writer is None:
                self.writer = attachment_store.Writer(self.session)
            # A mailbox's raw message is stored in this same transaction and holds every attachment:
            # it is their durable copy, so their files skip the fsync (which on ext4 also forces
            # the database's WAL to disk, per file); a file a power cut lost or tore is detected by
            # its sha256 and taken again from the raw message. Webhook bytes are fsynced.
            self.writer.submit(storage_key, data, durable=message.source not in self.mailboxes)
        return rows

    def finish(self) -> None:
        if self.writer is not None:
            self.writer.finish()
