"""Delivery under real faults: an SMTP server that takes DATA and drops the connection before its
answer (the outcome is unknown: possibly sent, never retried on its own, resent by the agent), and
replies no sender on this host can deliver ahead of one that it can (no head-of-line blocking)."""

from __future__ import annotations

import json
import os
import socketserver
import subprocess
import sys
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path

import factories
import pytest
from conftest import BASIC_CONFIG
from integration.email import mailgen
from integration.email.servers import Smtp, free_port, mailbox_config

from agentdesk.domain import replies
from agentdesk.store import db
from agentdesk.store.models import Conversation

pytestmark = pytest.mark.integration


class DroppingSmtp(socketserver.ThreadingTCPServer):
    """Speaks SMTP up to the end of DATA, counts the message, then closes without answering."""

    allow_reuse_address = True
    daemon_threads = True

    def __init__(self, port: int):
        self.data_received = 0
        super().__init__(("127.0.0.1", port), _DroppingHandler)
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.shutdown()
        self.server_close()


class _DroppingHandler(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        self.wfile.write(b"220 dropper ESMTP\r\n")
        while True:
            line = self.rfile.readline()
            if not line:
                return
            verb = line[:4].upper()
            if verb in (b"EHLO", b"HELO"):
                self.wfile.write(b"250 dropper\r\n")
            elif verb == b"DATA":
                self.wfile.write(b"354 go ahead\r\n")
                while self.rfile.readline() not in (b".\r\n", b""):
                    pass
                self.server.data_received += 1
                return  # the connection closes before the 250 the client waits for
            elif verb == b"QUIT":
                self.wfile.write(b"221 bye\r\n")
                return
            else:
                self.wfile.write(b"250 OK\r\n")


def _cli(config: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, "-m", "agentdesk", "--config", str(config), *args],
        capture_output=True,
        text=True,
        env={**os.environ, "AGENTDESK_AGENT": "tester"},
        timeout=120,
    )
    if check:
        assert result.returncode == 0, (args, result.stdout, result.stderr)
    return result


def _show(config: Path, ref: str) -> dict:
    return json.loads(_cli(config, "show", ref, "--json").stdout)


def _reply(desk, conversation_id: int, body: str = "We are on it.") -> None:
    with db.write_session(desk.engine) as session:
        conversation = session.get(Conversation, conversation_id)
        replies.reply(
            session,
            conversation=conversation,
            body=body,
            agent="tester",
            agent_name="Terry Tester",
            now=datetime.now(timezone.utc),
            policies=desk.policies,
            message_id_domain="example.com",
        )
        session.commit()


def _customer_mail(n: int) -> bytes:
    return mailgen.message(
        n=n,
        sender=("Greta Lindqvist", "greta@velo.example"),
        to="support@example.com",
        subject="Refund please",
        body=f"Message {n} from the customer.\n",
        at=datetime.now(timezone.utc),
        message_id=f"cust{n}@velo.example",
    )


def test_a_send_whose_answer_never_came_is_possibly_sent_not_retried_and_resent_by_the_agent(
    dovecot, mail_user, tmp_path, desk_factory
):
    port = free_port()
    dropper = DroppingSmtp(port)
    config = mailbox_config(tmp_path, dovecot, mail_user, port)
    desk = desk_factory(config)
    dovecot.append(mail_user, [_customer_mail(1)])
    _cli(config, "sync", "--once")
    conversation_id = desk.count("SELECT id FROM conversation")
    ref = f"AD-{conversation_id}"
    _reply(desk, conversation_id)

    first = _cli(config, "sync", "--once", check=False)
    assert dropper.data_received == 1
    # The pass that left the outcome unknown exits 1, so a cron job hears of it: the agent decides.
    assert first.returncode == 1
    assert f"{ref}: possibly sent, not retried (agentdesk resend sends it again)" in first.stderr
    assert "0 sent, 0 to retry, 0 failed, 1 possibly sent, 0 cannot be delivered here" in first.stderr
    reply = _show(config, ref)["messages"][1]
    assert reply["delivery"] == "possibly_sent"
    assert "connection was lost before its answer" in reply["delivery_error"]
    assert reply["delivery_at"] is not None
    assert [a["outcome"] for a in reply["delivery_history"]] == ["possibly_sent"]

    # Never again on its own: not on the next passes, not days later. Said once: the next pass,
    # having nothing new to say, exits 0.
    second = _cli(config, "sync", "--once", check=False)
    assert second.returncode == 0, second.stderr
    assert "0 sent, 0 to retry, 0 failed, 0 possibly sent" in second.stderr
    desk.sync_once(now_fn=lambda: datetime.now(timezone.utc) + timedelta(days=2))
    assert dropper.data_received == 1
    assert _show(config, ref)["messages"][1]["delivery"] == "possibly_sent"

    refused = _cli(config, "resend", ref, "1", check=False)
    assert refused.returncode == 2 and "message from the customer" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1

    dropper.stop()
    smtp = Smtp(port)
    smtp.start()
    try:
        done = json.loads(_cli(config, "resend", ref, "2", "--json").stdout)
        assert done == {"ref": ref, "message": 2, "delivery": "queued"}
        again = _cli(config, "resend", ref, "2", check=False)  # queued now: not resendable
        assert again.returncode == 2 and "is queued" in again.stderr
        _cli(config, "sync", "--once")
        assert len(smtp.received) == 1
        reply = _show(config, ref)["messages"][1]
        assert reply["delivery"] == "sent" and reply["delivery_error"] is None
        assert [a["outcome"] for a in reply["delivery_history"]] == ["possibly_sent", "sent"]
        assert _cli(config, "resend", ref, "2", check=False).returncode == 2  # sent: refused
    finally:
        smtp.stop()


def test_sixty_undeliverable_sms_replies_do_not_hold_back_an_email_reply(
    dovecot, mail_user, smtp, tmp_path, desk_factory
):
    config = mailbox_config(tmp_path, dovecot, mail_user, smtp.port)
    desk = desk_factory(config)
    start = datetime.now(timezone.utc) - timedelta(hours=1)
    sms_ids = []
    for n in range(60):
        result = factories.ingest(
            desk.engine,
            desk.policies,
            factories.inbound(
                sender=f"+4670000{n:04d}",
                name=f"Caller {n}",
                subject="",
                body=f"text {n}",
                channel="sms",
                source="twilio",
                at=start + timedelta(seconds=n),
            ),
        )
        sms_ids.append(result.conversation_id)
    for conversation_id in sms_ids:
        _reply(desk, conversation_id, "On it.")
    dovecot.append(mail_user, [_customer_mail(2)])
    first = _cli(config, "sync", "--once", check=False)
    # Said once, when the sync first finds them (exit 1); they stay queued for a host that has a sender.
    assert first.returncode == 1
    assert "60 sms reply(ies) cannot be delivered here" in first.stderr
    assert "60 cannot be delivered here" in first.stderr.splitlines()[-1]
    email_id = desk.count("SELECT id FROM conversation WHERE channel = 'email'")
    _reply(desk, email_id)

    result = _cli(config, "sync", "--once", check=False)
    assert len(smtp.received) == 1, result.stderr
    assert result.returncode == 0, result.stderr
    assert "1 sent, 0 to retry, 0 failed, 0 possibly sent, 60 cannot be delivered here" in result.stderr
    assert _show(config, f"AD-{email_id}")["messages"][1]["delivery"] == "sent"
    sms_reply = _show(config, f"AD-{sms_ids[0]}")["messages"][1]
    assert sms_reply["delivery"] == "queued" and sms_reply["deliverable"] is False
    assert "no sender for sms on this host" in sms_reply["delivery_error"]
    assert sms_reply["delivery_attempts"] == 0

    doctor = _cli(config, "doctor", check=False)
    assert "60 sms reply(ies)" in doctor.stdout + doctor.stderr
    assert "no sender for sms on this host" in doctor.stdout + doctor.stderr


def _receive_only_config(tmp_path: Path) -> Path:
    """A host with no mailbox and no spool: it sends nothing at all."""
    path = tmp_path / "config.toml"
    path.write_text(
        f'[database]\nurl = "sqlite:///{tmp_path / "agentdesk.db"}"\n'
        f'[templates]\ndir = "{tmp_path / "templates"}"\n'
        '[agents.tester]\nname = "Terry Tester"\n' + BASIC_CONFIG,
        encoding="utf-8",
    )
    return path


def test_a_host_with_no_sender_at_all_still_marks_the_replies_it_cannot_deliver(tmp_path, desk_factory):
    config = _receive_only_config(tmp_path)
    _cli(config, "doctor", check=False)  # creates the database
    desk = desk_factory(config)
    # Nothing queued: the pass is a read, and a clean one.
    idle = _cli(config, "sync", "--once")
    assert "0 possibly sent, 0 cannot be delivered here" in idle.stderr
    conversation_id = factories.ingest(
        desk.engine,
        desk.policies,
        factories.inbound(
            sender="+46700000001",
            name="Caller",
            subject="",
            body="text",
            channel="sms",
            source="twilio",
            at=datetime.now(timezone.utc) - timedelta(minutes=5),
        ),
    ).conversation_id
    _reply(desk, conversation_id, "On it.")

    first = _cli(config, "sync", "--once", check=False)
    assert first.returncode == 1
    assert "1 sms reply(ies) cannot be delivered here" in first.stderr
    reply = _show(config, f"AD-{conversation_id}")["messages"][1]
    assert reply["delivery"] == "queued" and reply["deliverable"] is False
    assert "no sender for sms on this host" in reply["delivery_error"]
    # Marked once: the next pass has nothing new to say of it, and counts it still.
    again = _cli(config, "sync", "--once")  # exit 0
    assert "reply(ies) cannot be delivered here:" not in again.stderr
    assert "0 failed, 0 possibly sent, 1 cannot be delivered here" in again.stderr
