"""Attachments' pure parts: safe file names, never-overwriting writes, what ingest keeps under the
caps, the content-addressed store's dedup and permissions."""

from __future__ import annotations

import os
import stat
from datetime import datetime, timezone

import pytest

from agentdesk.app.attachments import save_name, write_new_file
from agentdesk.channels.base import InboundAttachment, InboundMessage
from agentdesk.channels.email.spooled import MeasuredAttachment
from agentdesk.config import AttachmentSettings
from agentdesk.ingest.attachments import Keeper
from agentdesk.store import attachments, db


@pytest.mark.parametrize(
    "given, expected",
    [
        ("invoice.pdf", "invoice.pdf"),
        ("../../etc/passwd", "passwd"),
        ("C:\\Users\\x\\evil.bat", "evil.bat"),
        ("CON", "_CON"),
        ("nul.txt", "_nul.txt"),
        ("com1.log", "_com1.log"),
        (".bashrc", "bashrc"),
        ("..", "attachment"),
        ("", "attachment"),
        ("\x1b]0;title\x07x.txt", "x.txt"),
        ("a\x1b[31mred.txt", "ared.txt"),
        ("invoice\u202eFDP.exe", "invoiceFDP.exe"),
        ("what?.txt", "what_.txt"),
        ("a\u200bb.pdf", "a b.pdf"),
    ],
)
def test_save_name_makes_a_sender_name_safe_to_create(given, expected):
    assert save_name(given) == expected


def test_save_name_bounds_the_bytes_and_keeps_the_extension():
    for given in ("a" * 300 + ".pdf", "ü" * 300 + ".pdf", "日本" * 200 + ".jpeg", "x" * 400):
        name = save_name(given)
        assert len(name.encode()) <= 200
        if "." in given:
            assert name.endswith(given.rsplit(".", 1)[1])


def test_write_new_file_never_overwrites_never_follows_a_link(tmp_path):
    first = write_new_file(tmp_path, "a.pdf", b"1")
    second = write_new_file(tmp_path, "a.pdf", b"2")
    (tmp_path / "victim").write_bytes(b"keep")
    os.symlink(tmp_path / "victim", tmp_path / "b.txt")
    third = write_new_file(tmp_path, "b.txt", b"3")
    no_extension = [write_new_file(tmp_path, "README", b"r") for _ in range(2)]
    assert (first.name, second.name, third.name) == ("a.pdf", "a (1).pdf", "b (1).txt")
    assert [p.name for p in no_extension] == ["README", "README (1)"]
    assert (first.read_bytes(), second.read_bytes(), (tmp_path / "victim").read_bytes()) == (b"1", b"2", b"keep")
    with pytest.raises(Exception, match="not a directory"):
        write_new_file(tmp_path / "missing", "a.pdf", b"")


def _message(*files) -> InboundMessage:
    return InboundMessage(
        source="s",
        channel="email",
        external_id="x",
        sender_address="a@b.c",
        sender_name="",
        received_at=datetime(2026, 1, 1, tzinfo=timezone.utc),
        attachments=tuple(files),
    )


def test_what_ingest_keeps_under_the_caps(engine, tmp_path):
    caps = AttachmentSettings(max_file_bytes=100, max_message_bytes=150)
    settings = type("S", (), {"attachments": caps})()
    with db.write_session(engine) as session:
        keeper = Keeper(session, settings)
        rows = keeper.rows_for(
            _message(
                InboundAttachment("a.txt", "text/plain", b"a" * 80),
                InboundAttachment("big.bin", "application/octet-stream", b"b" * 101),
                InboundAttachment("b.txt", "text/plain", b"c" * 80),  # 80 + 80 > 150: over the message's cap
                InboundAttachment("same.txt", "text/plain", b"a" * 60),
                InboundAttachment("link.jpg", "image/jpeg", b"", url="https://x.example/p.jpg"),
                InboundAttachment(
                    "gone.jpg",
                    "image/jpeg",
                    b"",
                    url="https://x.example/q.jpg",
                    failure="download failed: HTTP 404 Not Found",
                ),
                MeasuredAttachment("clip.mp4", "video/mp4", b"", size=70, sha256="f" * 64),
            )
        )
        keeper.finish()
        assert [(r["filename"], r["state"], r["size"]) for r in rows] == [
            ("a.txt", "stored", 80),
            ("big.bin", "withheld", 101),
            ("b.txt", "withheld", 80),
            ("same.txt", "stored", 60),
            ("link.jpg", "failed", 0),
            ("gone.jpg", "failed", 0),
            ("clip.mp4", "withheld", 70),
        ]
        assert "max_file_bytes" in rows[1]["reason"] and "max_message_bytes" in rows[2]["reason"]
        assert rows[5]["reason"] == "download failed: HTTP 404 Not Found" and rows[4]["url"].endswith("p.jpg")
        assert attachments.read(session=session, key=rows[0]["storage_key"]) == b"a" * 80
        assert not attachments.has(session=session, key=rows[1]["storage_key"])


def test_a_mailboxs_files_are_written_while_ingest_goes_on_and_are_there_before_their_rows(
    engine, tmp_path, monkeypatch
):
    # Creating a file can wait on the file system's journal (the database's checkpoints keep it
    # busy during a big sync): ingest hands the bytes to the writer threads and goes on; `finish`,
    # before the rows that name the files are inserted, waits until every one is on disk.
    import threading

    from agentdesk.store import files

    handed_over = threading.Event()
    writers: list[str] = []
    put = files.put

    def slow_put(root, data, *, durable):
        writers.append(threading.current_thread().name)
        if not handed_over.wait(10):  # never, when ingest itself waited for this write
            raise TimeoutError("ingest waited for the file before going on")
        return put(root, data, durable=durable)

    monkeypatch.setattr(files, "put", slow_put)
    mailbox = type("M", (), {"name": "s"})()  # the message's source is a mailbox: no fsync
    settings = type("S", (), {"attachments": AttachmentSettings(), "mailbox": [mailbox]})()
    with db.write_session(engine) as session:
        keeper = Keeper(session, settings)
        (row,) = keeper.rows_for(_message(InboundAttachment("a.txt", "text/plain", b"a" * 80)))
        handed_over.set()
        keeper.finish()
        assert attachments.read(session=session, key=row["storage_key"]) == b"a" * 80
    assert writers and threading.current_thread().name not in writers


def test_a_measured_attachment_within_the_caps_stays_in_the_raw_message(engine):
    with db.write_session(engine) as session:
        keeper = Keeper(session, None)
        (row,) = keeper.rows_for(_message(MeasuredAttachment("clip.mp4", "video/mp4", b"", size=70, sha256="f" * 64)))
        assert (row["state"], row["storage_key"], row["size"]) == ("in_raw", "f" * 64, 70)


def test_the_file_store_keeps_bytes_once_readable_as_its_directory(engine, tmp_path):
    root = attachments.root_of(engine)
    assert root == tmp_path / "attachments"
    root.mkdir(mode=0o750)
    os.chmod(root, 0o750)
    with db.write_session(engine) as session:
        key = attachments.put(session=session, data=b"hello")
        assert attachments.put(session=session, data=b"hello") == key
        assert attachments.path_of(session=session, key=key).read_bytes() == b"hello"
    files = [p for p in root.rglob("*") if p.is_file()]
    assert [p.name for p in files] == [key]
    assert stat.S_IMODE(files[0].stat().st_mode) == 0o640


def test_a_database_without_a_directory_keeps_bytes_in_its_own_table():
    engine = db.open_database("sqlite://")
    try:
        assert attachments.root_of(engine) is None
        with db.write_session(engine) as session:
            key = attachments.put(session=session, data=b"bytes")
            attachments.put(session=session, data=b"bytes")
            session.commit()
        with db.read_session(engine) as session:
            assert attachments.read(session=session, key=key) == b"bytes"
            assert attachments.path_of(session=session, key=key) is None
    finally:
        engine.dispose()


def test_a_full_disk_under_the_attachment_files_is_the_stores_full_disk(tmp_path, monkeypatch):
    # The files lie beside the database: the sources must report and retry it as the database's own
    # full disk (one line), not as a message that broke ingest.
    import errno

    from sqlalchemy.exc import OperationalError

    from agentdesk.store import files

    def full(root, data, *, durable):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(files, "put", full)
    with pytest.raises(OperationalError) as raised:
        attachments._write_file(tmp_path, "0" * 64, b"bytes", False)
    line = db.explain(f"sqlite:///{tmp_path / 'agentdesk.db'}", raised.value)
    assert "is full" in line and str(tmp_path) in line
