"""A conversation started on SMS and a reply with a file, through a real outbound spool: the
generic reply document carries the recipient and the file as base64, and the customer's answer
(a generic payload in the inbound spool) threads into the conversation we started."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
from contextlib import redirect_stderr, redirect_stdout
from datetime import datetime, timezone

import pytest
from conftest import BASIC_CONFIG

from agentdesk import config
from agentdesk.channels.webhook import spool as spooling
from agentdesk.cli import main
from agentdesk.domain import clocks
from agentdesk.store import db
from agentdesk.sync import worker as sync

pytestmark = pytest.mark.integration


def _run(path, *argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main([*argv, "--config", str(path)])
    return code, out.getvalue(), err.getvalue()


def test_new_sms_conversation_a_reply_with_a_file_and_the_answer(tmp_path, monkeypatch):
    monkeypatch.setenv("AGENTDESK_AGENT", "tester")
    path = tmp_path / "config.toml"
    path.write_text(
        f'[database]\nurl = "sqlite:///{tmp_path / "agentdesk.db"}"\n'
        + BASIC_CONFIG
        + f"""
[[spool]]
name = "sms-in-only"
path = "{tmp_path / "sms-in"}"
adapter = "generic"
kind = "sms"

[[spool]]
name = "sms"
path = "{tmp_path / "sms"}"
adapter = "generic"
kind = "sms"
outbound = {{ spool = "{tmp_path / "sms-out"}" }}
attachments_max_bytes = 100000
"""
    )
    (tmp_path / "first.txt").write_text("Your bike is ready for pickup.\n")
    # Named, a spool with no way out is refused before anything is stored: the text would wait for ever.
    code, _, err = _run(
        path,
        "new",
        "--to",
        "+44 20 7946 0958",
        "--subject",
        "Pickup",
        "--body-file",
        str(tmp_path / "first.txt"),
        "--channel",
        "sms-in-only",
    )
    assert code == 2 and "sms-in-only cannot send" in err, err
    # Unnamed, the first SMS spool that can send is taken, not the first one listed.
    code, out, err = _run(
        path,
        "new",
        "--to",
        "+44 20 7946 0958",
        "--subject",
        "Pickup",
        "--body-file",
        str(tmp_path / "first.txt"),
        "--json",
    )
    assert code == 0, err
    ref = json.loads(out)["ref"]
    assert ref == "AD-1"  # the refused one left nothing behind

    photo = os.urandom(40_000)
    (tmp_path / "bike.jpg").write_bytes(photo)
    (tmp_path / "reply.txt").write_text("A photo of it.\n")
    code, _, err = _run(
        path, "reply", ref, "--body-file", str(tmp_path / "reply.txt"), "--attach", str(tmp_path / "bike.jpg")
    )
    assert code == 0, err
    (tmp_path / "big.bin").write_bytes(os.urandom(150_000))
    code, _, err = _run(
        path, "reply", ref, "--body-file", str(tmp_path / "reply.txt"), "--attach", str(tmp_path / "big.bin")
    )
    assert code == 2 and "over the 100.0 kB" in err
    code, _, err = _run(path, "reply", ref, "--body-file", str(tmp_path / "reply.txt"), "--cc", "a@b.example")
    assert code == 2 and "Cc and Bcc are for email" in err

    settings = config.load(path)
    engine = db.open_database(settings.database_url)
    ctx = sync.SyncContext(settings=settings, engine=engine, policies=clocks.Policies.from_settings(settings))
    worker = sync.SyncWorker(ctx, sync.build_sources(ctx), sync.build_senders(ctx))
    try:
        report = worker.run_once()
        assert report.delivery.sent == 2, report.delivery.errors
        documents = sorted(
            (json.loads(p.read_text()) for p in (tmp_path / "sms-out" / "new").iterdir()),
            key=lambda d: d["timestamp"] + d["text"],
        )
        first, second = sorted(documents, key=lambda d: "attachments" in d)
        assert first["recipient"] == {"phone": "+442079460958"} and first["subject"] == f"Pickup [{ref}]"
        assert "in_reply_to" not in first
        (sent_file,) = second["attachments"]
        assert sent_file["name"] == "bike.jpg" and sent_file["size"] == len(photo)
        assert hashlib.sha256(base64.b64decode(sent_file["base64"])).digest() == hashlib.sha256(photo).digest()

        # The customer texts back from the same number: it joins the conversation we started.
        spooling.write_payload(
            tmp_path / "sms",
            json.dumps(
                {
                    "id": "sms-answer-1",
                    "kind": "sms",
                    "sender": {"phone": "+442079460958"},
                    "text": "Coming at 5",
                    "timestamp": datetime.now(timezone.utc).isoformat(),
                }
            ).encode(),
            "application/json",
        )
        report = worker.run_once()
        assert report.stored == 1, report.errors
        with engine.connect() as connection:
            reason = connection.exec_driver_sql(
                "SELECT thread_reason FROM message WHERE direction = 'inbound'"
            ).scalar()
        assert reason == "answer-to-ours"
    finally:
        for source in worker.sources:
            source.close()
    code, out, _ = _run(path, "show", ref, "--json")
    document = json.loads(out)
    assert [m["direction"] for m in document["messages"]] == ["outbound", "outbound", "inbound"]
    assert document["messages"][-1]["body_text"] == "Coming at 5"
    assert document["status"] == "open"
    assert document["customer"]["identities"] == [{"kind": "phone", "address": "+442079460958"}]
    engine.dispose()
