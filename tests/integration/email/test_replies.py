"""Replies through a real SMTP server (aiosmtpd), threading and loop safety against a real Dovecot."""

from __future__ import annotations

import email
from datetime import datetime, timedelta, timezone
from email.policy import compat32

import pytest
from integration.email import mailgen
from integration.email.servers import mailbox_config
from sqlmodel import select

from agentdesk.domain import automatic_messages, replies
from agentdesk.store import db
from agentdesk.store.models import Conversation, Message, Outbox

pytestmark = pytest.mark.integration

CUSTOMER = ("Greta Lindqvist", "greta@velo.example")


def _reply(desk, conversation_id: int, body: str = "We are on it.") -> Message:
    with db.write_session(desk.engine) as session:
        conversation = session.get(Conversation, conversation_id)
        message = replies.reply(
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
        return message


def _customer_mail(n: int, *, subject: str, in_reply_to: str = "", sender=CUSTOMER, extra: str = "") -> bytes:
    return mailgen.message(
        n=n,
        sender=sender,
        to="support@example.com",
        subject=subject,
        body=f"Message {n} from the customer.\n",
        at=datetime.now(timezone.utc),
        message_id=f"cust{n}@velo.example",
        in_reply_to=in_reply_to,
        extra_headers=extra,
    )


def _outbox(desk):
    with db.read_session(desk.engine) as session:
        return session.exec(select(Outbox).order_by(Outbox.id)).all()


def test_reply_chain_threads_into_one_conversation(dovecot, mail_user, smtp, tmp_path, desk_factory):
    desk = desk_factory(mailbox_config(tmp_path, dovecot, mail_user, smtp.port, sent_folder="Sent"))
    conn = dovecot.imap(mail_user)
    conn.create("Sent")
    conn.logout()
    dovecot.append(mail_user, [_customer_mail(1, subject="Spokes keep breaking", extra="Cc: Bo <bo@velo.example>\r\n")])
    assert desk.sync_once().stored == 1
    conversation_id = desk.count("SELECT id FROM conversation")

    ours = _reply(desk, conversation_id)
    report = desk.sync_once()
    assert report.ok, (report.errors, report.delivery.errors)
    assert report.delivery.sent == 1
    assert len(smtp.received) == 1
    sent = email.message_from_bytes(smtp.received[0], policy=compat32)
    assert sent["Subject"] == f"Re: Spokes keep breaking [AD-{conversation_id}]"
    assert sent["Message-ID"] == f"<{ours.external_id}>"
    assert sent["In-Reply-To"] == "<cust1@velo.example>"
    assert "<cust1@velo.example>" in sent["References"]
    assert sent["To"] == "greta@velo.example"
    assert sent["Cc"] == "bo@velo.example"
    assert "support@example.com" in sent["From"]
    assert sent["X-Agentdesk-Loop"] == "support@example.com"
    assert sent["Auto-Submitted"] is None  # a person wrote it
    assert smtp.envelopes[0][1] == ["greta@velo.example", "bo@velo.example"]
    assert len(dovecot.uids(mail_user, folder="Sent")) == 1
    assert _outbox(desk)[0].state == "sent"

    # The customer answers our reply; a client that drops In-Reply-To still has References.
    dovecot.append(mail_user, [_customer_mail(2, subject=sent["Subject"], in_reply_to=ours.external_id)])
    dovecot.append(
        mail_user,
        [
            _customer_mail(
                3,
                subject="Re: Spokes keep breaking",
                extra=f"References: <cust1@velo.example> <{ours.external_id}>\r\n",
            )
        ],
    )
    assert desk.sync_once().stored == 2
    assert desk.count("SELECT count(*) FROM conversation") == 1
    reasons = [r[0] for r in desk.rows("SELECT thread_reason FROM message WHERE direction='inbound' ORDER BY id")]
    assert reasons == ["new", "in-reply-to", "references"]
    # Our own reply is also in the Sent folder; importing that folder must not double it.
    desk2 = desk_factory(mailbox_config(tmp_path, dovecot, mail_user, smtp.port, folders=("INBOX", "Sent")))
    report = desk2.sync_once()
    assert report.ok, report.errors
    assert desk.count("SELECT count(*) FROM message") == 4


def test_stranger_quoting_a_ref_does_not_join(dovecot, mail_user, smtp, tmp_path, desk_factory):
    desk = desk_factory(mailbox_config(tmp_path, dovecot, mail_user, smtp.port))
    dovecot.append(mail_user, [_customer_mail(10, subject="My invoice")])
    desk.sync_once()
    ref = desk.count("SELECT id FROM conversation")
    dovecot.append(
        mail_user,
        [
            _customer_mail(11, subject=f"Re: My invoice [AD-{ref}]", sender=("Mallory", "mallory@evil.example")),
            _customer_mail(12, subject=f"Re: My invoice [AD-{ref}]"),  # the customer: joins by the tag
        ],
    )
    desk.sync_once()
    rows = desk.rows("SELECT sender_address, conversation_id, thread_reason FROM message ORDER BY id")
    assert rows[1][0] == "mallory@evil.example" and rows[1][1] != ref and rows[1][2] == "new"
    assert rows[2][1] == ref and rows[2][2] == "subject-tag"


def test_auto_replies_and_bounces_never_get_automatic_mail(dovecot, mail_user, smtp, tmp_path, desk_factory):
    desk = desk_factory(mailbox_config(tmp_path, dovecot, mail_user, smtp.port))
    dovecot.append(mail_user, [_customer_mail(20, subject="Where is my parcel")])
    desk.sync_once()
    conversation_id = desk.count("SELECT id FROM conversation")
    ours = _reply(desk, conversation_id)
    desk.sync_once()  # delivers it
    assert _outbox(desk)[0].state == "sent"

    now = datetime.now(timezone.utc)
    auto = _customer_mail(
        21,
        subject="Automatic reply: Re: Where is my parcel",
        extra="Auto-Submitted: auto-replied\r\nX-Autoreply: yes\r\n",
        in_reply_to=ours.external_id,
    )
    bounce = (
        "From: Mail Delivery System <MAILER-DAEMON@mx.velo.example>\r\nTo: support@example.com\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\nMessage-ID: <bounce1@mx.velo.example>\r\n"
        f"Date: {now.strftime('%a, %d %b %Y %H:%M:%S +0000')}\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="b1"\r\n\r\n'
        "--b1\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n"
        "--b1\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.velo.example\r\n\r\n"
        "Final-Recipient: rfc822; greta@velo.example\r\nAction: failed\r\nStatus: 5.1.1\r\n"
        "Diagnostic-Code: smtp; 550 5.1.1 <greta@velo.example>: User unknown\r\n"
        "--b1\r\nContent-Type: text/rfc822-headers\r\n\r\n"
        f"From: support@example.com\r\nTo: greta@velo.example\r\nMessage-ID: <{ours.external_id}>\r\n"
        "Subject: Re: Where is my parcel\r\n--b1--\r\n"
    ).encode()
    listmail = _customer_mail(22, subject="Weekly digest", extra="List-Id: <news.velo.example>\r\nPrecedence: list\r\n")
    dovecot.append(mail_user, [auto, bounce, listmail])
    report = desk.sync_once()
    assert report.stored == 3

    kinds = desk.rows(
        "SELECT kind, bulk, conversation_id, thread_reason FROM message WHERE direction='inbound' ORDER BY id"
    )
    assert [k[0] for k in kinds] == ["message", "auto_reply", "bounce", "message"]
    assert kinds[3][1] == 1  # list mail: a message, flagged bulk
    assert kinds[2][2] == conversation_id and kinds[2][3] == "bounce"  # the bounce joins our reply's conversation
    # Nothing automatic was queued or sent for any of them; only our one reply ever went out.
    assert desk.count("SELECT count(*) FROM message WHERE direction='outbound'") == 1
    assert len(smtp.received) == 1
    outbox = _outbox(desk)[0]
    assert outbox.state == "failed"
    assert "5.1.1" in outbox.last_error and "User unknown" in outbox.last_error

    # And the one check a receipt must pass refuses each of them.
    from agentdesk.channels.email.mime import parse_message

    with db.read_session(desk.engine) as session:
        for raw in (auto, bounce, listmail):
            parsed = parse_message(raw, source="support", received_at=now)
            allowed, why = automatic_messages.automatic_reply_allowed(
                session, inbound=parsed, our_addresses={"support@example.com"}, now=now
            )
            assert not allowed and why


def test_reply_sent_while_smtp_is_down_is_delivered_when_it_is_up(dovecot, mail_user, smtp, tmp_path, desk_factory):
    desk = desk_factory(mailbox_config(tmp_path, dovecot, mail_user, smtp.port))
    dovecot.append(mail_user, [_customer_mail(30, subject="Refund please")])
    desk.sync_once()
    smtp.stop()
    _reply(desk, desk.count("SELECT id FROM conversation"))

    report = desk.sync_once()
    assert not report.ok and report.delivery.retrying == 1
    row = _outbox(desk)[0]
    assert row.state == "queued" and row.attempts == 1
    assert "unreachable" in row.last_error  # visible as delivery_error in show --json
    # Not due yet: nothing is attempted before the backoff has passed.
    assert desk.sync_once().delivery.retrying == 0

    smtp.start()  # same port
    later = lambda: datetime.now(timezone.utc) + timedelta(minutes=2)  # noqa: E731
    report = desk.sync_once(now_fn=later)
    assert report.delivery.sent == 1, report.delivery.errors
    row = _outbox(desk)[0]
    assert (row.state, row.attempts, row.last_error) == ("sent", 2, "")
    assert len(smtp.received) == 1
    assert desk.sync_once(now_fn=later).delivery.sent == 0  # delivered once
