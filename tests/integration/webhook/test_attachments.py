"""Webhook attachments end to end: base64 and linked ones through a real spool and sync pass, the
links served by a real HTTP server on loopback; and `db copy` carrying attachments' bytes from a
SQLite desk (files) to PostgreSQL (the database's own table)."""

from __future__ import annotations

import base64
import hashlib
import http.server
import io
import json
import os
import threading
import time
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest
from conftest import BASIC_CONFIG

from agentdesk import cli, config
from agentdesk.channels.webhook import spool as spooling
from agentdesk.domain import clocks
from agentdesk.store import db
from agentdesk.sync import worker as sync

pytestmark = pytest.mark.integration

PHOTO = os.urandom(200_000)
SLOW_SECONDS = 3.0


class _Files(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/photo.jpg":
            self._send(PHOTO, "image/jpeg")
        elif self.path == "/huge.bin":
            self._send(os.urandom(300_000), "application/octet-stream")
        elif self.path == "/huge-unsized.bin":  # no Content-Length: the cap is counted as it reads
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.end_headers()
            for _ in range(40):
                self.wfile.write(os.urandom(10_000))
        elif self.path == "/slow.bin":
            self.send_response(200)
            self.send_header("Content-Length", "1000")
            self.end_headers()
            for _ in range(10):
                self.wfile.write(b"x" * 10)
                self.wfile.flush()
                time.sleep(SLOW_SECONDS / 4)
        elif self.path == "/to-file":
            self.send_response(302)
            self.send_header("Location", "file:///etc/passwd")
            self.end_headers()
        else:
            self.send_error(404)

    def _send(self, data: bytes, content_type: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def file_server():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Files)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _desk(tmp_path: Path, database_url: str | None = None) -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "config.toml"
    path.write_text(
        f'[database]\nurl = "{database_url or "sqlite:///" + str(tmp_path / "agentdesk.db")}"\n'
        + BASIC_CONFIG
        + f"""
[attachments]
max_file_bytes = 250000
download_timeout = 1.5

[[spool]]
name = "forms"
path = "{tmp_path / "forms"}"
adapter = "generic"
kind = "webform"
"""
    )
    return path


def _sync(config_path: Path):
    settings = config.load(config_path)
    engine = db.open_database(settings.database_url)
    ctx = sync.SyncContext(settings=settings, engine=engine, policies=clocks.Policies.from_settings(settings))
    worker = sync.SyncWorker(ctx, sync.build_sources(ctx), sync.build_senders(ctx))
    try:
        return worker.run_once()
    finally:
        for source in worker.sources:
            source.close()
        engine.dispose()


def _run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        status = cli.main(list(argv))
    return status, out.getvalue(), err.getvalue()


def _payload(spool_dir: Path, event_id: str, attachments: list[dict], sender: str = "greta@velo.example") -> None:
    event = {
        "id": event_id,
        "sender": {"name": "Greta", "email": sender},
        "subject": "Broken wheel",
        "text": "See attached.",
        "attachments": attachments,
    }
    spooling.ensure_spool(spool_dir)
    spooling.write_payload(spool_dir, json.dumps(event).encode(), "application/json")


def test_base64_and_linked_attachments_are_kept_and_failures_recorded(tmp_path, file_server):
    config_path = _desk(tmp_path)
    note = b"bent spokes\n"
    _payload(
        tmp_path / "forms",
        "f1",
        [
            {"name": "note.txt", "content_type": "text/plain", "base64": base64.b64encode(note).decode()},
            {"name": "photo.jpg", "url": f"{file_server}/photo.jpg"},
            {"name": "huge.bin", "url": f"{file_server}/huge.bin"},
            {"name": "huge-unsized.bin", "url": f"{file_server}/huge-unsized.bin"},
            {"name": "slow.bin", "url": f"{file_server}/slow.bin"},
            {"name": "gone.pdf", "url": f"{file_server}/gone.pdf"},
            {"name": "local.txt", "url": "file:///etc/passwd"},
            {"name": "redirect.txt", "url": f"{file_server}/to-file"},
        ],
    )
    started = time.monotonic()
    report = _sync(config_path)
    assert report.ok and report.stored == 1, report.errors
    assert time.monotonic() - started < SLOW_SECONDS + 2  # the slow link was cut at its timeout

    status, out, err = _run("--config", str(config_path), "attachment", "list", "AD-1", "--json")
    assert status == 0, err
    listed = {item["name"]: item for item in json.loads(out)}
    assert listed["note.txt"]["state"] == "stored"
    assert (listed["photo.jpg"]["state"], listed["photo.jpg"]["content_type"], listed["photo.jpg"]["size"]) == (
        "stored",
        "image/jpeg",
        len(PHOTO),
    )
    assert (listed["huge.bin"]["state"], listed["huge.bin"]["size"]) == ("withheld", 300_000)
    assert (
        listed["huge-unsized.bin"]["state"] == "withheld" and "max_file_bytes" in listed["huge-unsized.bin"]["reason"]
    )
    assert listed["slow.bin"]["state"] == "failed" and "timed out" in listed["slow.bin"]["reason"]
    assert listed["gone.pdf"]["state"] == "failed" and "404" in listed["gone.pdf"]["reason"]
    assert listed["local.txt"]["state"] == "failed" and "only http and https" in listed["local.txt"]["reason"]
    assert listed["redirect.txt"]["state"] == "failed" and "not allowed" in listed["redirect.txt"]["reason"]
    assert listed["gone.pdf"]["url"] == f"{file_server}/gone.pdf"

    # `show` prints each attachment under its message, numbered as `attachment save` takes them,
    # with why its bytes are missing when they are.
    status, out, err = _run("--config", str(config_path), "show", "AD-1")
    assert status == 0, err
    lines = out.splitlines()
    assert f"[attachment {listed['note.txt']['n']}] note.txt  text/plain  12 bytes" in [line.strip() for line in lines]
    gone = next(line for line in lines if f"[attachment {listed['gone.pdf']['n']}] gone.pdf" in line)
    assert "404" in gone
    assert lines.index(gone) > next(i for i, line in enumerate(lines) if line.startswith("<< #1"))

    out_dir = tmp_path / "out"
    out_dir.mkdir()
    for name, sent in (("note.txt", note), ("photo.jpg", PHOTO)):
        status, out, err = _run(
            "--config", str(config_path), "attachment", "save", "AD-1", str(listed[name]["n"]), "--to", str(out_dir)
        )
        assert status == 0, err
        assert hashlib.sha256(Path(out.strip()).read_bytes()).hexdigest() == hashlib.sha256(sent).hexdigest()
    status, _, err = _run("--config", str(config_path), "attachment", "save", "AD-1", str(listed["gone.pdf"]["n"]))
    assert status == 1 and "404" in err and "gone.pdf" in err


def test_db_copy_carries_attachment_bytes_from_sqlite_files_to_postgresql(tmp_path, file_server, postgres_server):
    config_path = _desk(tmp_path / "sqlite")
    _payload(tmp_path / "sqlite" / "forms", "f1", [{"name": "photo.jpg", "url": f"{file_server}/photo.jpg"}])
    # The same photo from another customer: one copy of its bytes, on both sides.
    _payload(
        tmp_path / "sqlite" / "forms",
        "f2",
        [
            {"name": "again.jpg", "content_type": "image/jpeg", "base64": base64.b64encode(PHOTO).decode()},
            {"name": "n.txt", "content_type": "text/plain", "base64": base64.b64encode(b"note").decode()},
        ],
        sender="olaf@velo.example",
    )
    assert _sync(config_path).stored == 2
    assert len([p for p in (tmp_path / "sqlite" / "attachments").rglob("*") if p.is_file()]) == 2
    # An agent's draft with a file attached: its bytes go along too.
    from agentdesk.app import conversations
    from agentdesk.app import desk as desk_module
    from agentdesk.app.desk import Desk
    from agentdesk.domain.outbound import OutgoingFile

    writer = Desk(config.load(config_path), agent="tester")
    conversations.save_draft(
        writer, 1, "See the form.", kind="reply", base_version=0, files=[OutgoingFile("form.pdf", b"%PDF form")]
    )
    desk_module.close_databases()

    target_url = postgres_server.create_database("attachments_copy")
    status, _, err = _run("--config", str(config_path), "db", "copy", "--to", target_url)
    assert status == 0, err
    target_config = _desk(tmp_path / "pg", target_url)
    engine = db.open_database(target_url)
    try:
        with engine.connect() as connection:
            from sqlalchemy import text

            keys = sorted(row[0] for row in connection.execute(text("SELECT sha256 FROM attachmentblob")))
        assert keys == sorted(hashlib.sha256(data).hexdigest() for data in (PHOTO, b"note", b"%PDF form"))
    finally:
        engine.dispose()
    reader = Desk(config.load(target_config), agent="tester")
    draft = conversations.thread(reader, 1).draft
    _, (form,) = conversations.draft_envelope(reader, draft)
    assert (form.name, form.data) == ("form.pdf", b"%PDF form")
    desk_module.close_databases()
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    for ref, n, sent in (("AD-1", 1, PHOTO), ("AD-2", 1, PHOTO), ("AD-2", 2, b"note")):
        status, out, err = _run("--config", str(target_config), "attachment", "save", ref, str(n), "--to", str(out_dir))
        assert status == 0, err
        assert Path(out.strip()).read_bytes() == sent
    # A PostgreSQL desk keeps new attachments in the database too: nothing under a local directory.
    _payload(
        tmp_path / "pg" / "forms",
        "f3",
        [{"name": "late.txt", "content_type": "text/plain", "base64": base64.b64encode(b"late").decode()}],
    )
    assert _sync(target_config).stored == 1
    status, out, err = _run("--config", str(target_config), "attachment", "save", "AD-3", "1", "--to", str(out_dir))
    assert status == 0 and Path(out.strip()).read_bytes() == b"late", err
    assert not (tmp_path / "pg" / "attachments").exists()
