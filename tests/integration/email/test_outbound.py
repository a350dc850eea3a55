"""Files, recipients, forwards and conversations we start, end to end: the CLI queues, a real
`sync` sends through aiosmtpd, the answers come back through a real Dovecot and thread in."""

from __future__ import annotations

import email
import hashlib
import io
import json
import os
from contextlib import redirect_stderr, redirect_stdout
from datetime import datetime, timedelta, timezone
from email.policy import default as default_policy

import pytest
from integration.email import mailgen
from integration.email.servers import mailbox_config

from agentdesk.cli import main

pytestmark = pytest.mark.integration

CUSTOMER = ("Greta Lindqvist", "greta@velo.example")


@pytest.fixture(autouse=True)
def _agent(monkeypatch):
    monkeypatch.setenv("AGENTDESK_AGENT", "tester")


def _run(config, *argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main([*argv, "--config", str(config)])
    return code, out.getvalue(), err.getvalue()


def _customer_mail(
    n: int,
    *,
    subject: str,
    sender=CUSTOMER,
    in_reply_to: str = "",
    extra: str = "",
    attachment: bytes = b"",
    at: datetime | None = None,
) -> bytes:
    return mailgen.message(
        n=n,
        sender=sender,
        to="support@example.com",
        subject=subject,
        body=f"Message {n}.\n",
        at=at or datetime.now(timezone.utc),
        message_id=f"out{n}@velo.example",
        in_reply_to=in_reply_to,
        extra_headers=extra,
        attachment=attachment,
    )


def _sent(smtp, index: int = -1) -> email.message.EmailMessage:
    return email.message_from_bytes(smtp.received[index], policy=default_policy)


def _header_block(raw: bytes) -> str:
    return raw.split(b"\r\n\r\n", 1)[0].decode("ascii", "replace").lower()


def _setup(
    dovecot,
    mail_user,
    smtp,
    tmp_path,
    desk_factory,
    *,
    subject: str,
    extra: str = "",
    attachment: bytes = b"",
    max_bytes: int | None = None,
):
    config = mailbox_config(tmp_path, dovecot, mail_user, smtp.port)
    if max_bytes is not None:
        text = config.read_text()
        config.write_text(
            text.replace('after_fetch = "keep"', f'after_fetch = "keep"\nattachments_max_bytes = {max_bytes}')
        )
    desk = desk_factory(config)
    dovecot.append(mail_user, [_customer_mail(1, subject=subject, extra=extra, attachment=attachment)])
    assert desk.sync_once().stored == 1
    return config, desk, f"AD-{desk.count('SELECT id FROM conversation')}"


def test_reply_with_two_files_cc_and_bcc(dovecot, mail_user, smtp, tmp_path, desk_factory):
    config, desk, ref = _setup(
        dovecot,
        mail_user,
        smtp,
        tmp_path,
        desk_factory,
        subject="Cracked frame",
        extra="Cc: Bo <bo@velo.example>, support@example.com\r\n",
    )
    photo = os.urandom(300_000)
    invoice = b"%PDF-1.4\n" + os.urandom(5_000)
    (tmp_path / "frame.jpg").write_bytes(photo)
    (tmp_path / "invoice.pdf").write_bytes(invoice)
    (tmp_path / "body.txt").write_text("Photos and the invoice, as promised.\n")
    code, out, err = _run(
        config,
        "reply",
        ref,
        "--body-file",
        str(tmp_path / "body.txt"),
        "--attach",
        str(tmp_path / "frame.jpg"),
        "--attach",
        str(tmp_path / "invoice.pdf"),
        "--cc",
        "Carl <carl@velo.example>",
        "--bcc",
        "audit@example.com",
        "--json",
    )
    assert code == 0, err
    queued = json.loads(out)
    assert queued["to"] == ["greta@velo.example"]
    assert queued["cc"] == ["bo@velo.example", "carl@velo.example"]  # reply-all, minus us, plus --cc
    assert queued["bcc"] == ["audit@example.com"]
    # The outbox holds its own copies: the files may go before the sync sends.
    (tmp_path / "frame.jpg").unlink()
    (tmp_path / "invoice.pdf").unlink()

    report = desk.sync_once()
    assert report.delivery.sent == 1, report.delivery.errors
    sent = _sent(smtp)
    files = {part.get_filename(): part.get_payload(decode=True) for part in sent.iter_attachments()}
    assert {name: hashlib.sha256(data).hexdigest() for name, data in files.items()} == {
        "frame.jpg": hashlib.sha256(photo).hexdigest(),
        "invoice.pdf": hashlib.sha256(invoice).hexdigest(),
    }
    assert sent.get_body(("plain",)).get_content().startswith("Photos and the invoice")
    assert sent["To"] == "greta@velo.example"
    assert sent["Cc"] == "bo@velo.example, carl@velo.example"
    # Bcc: in the envelope, nowhere in the headers.
    assert sorted(smtp.envelopes[-1][1]) == sorted(
        ["greta@velo.example", "bo@velo.example", "carl@velo.example", "audit@example.com"]
    )
    assert "audit@example.com" not in _header_block(smtp.received[-1])
    assert "bcc" not in _header_block(smtp.received[-1])
    # And `show --json` lists the files on the reply.
    code, out, _ = _run(config, "show", ref, "--json")
    reply = json.loads(out)["messages"][-1]
    assert [a["filename"] for a in reply["attachments"]] == ["frame.jpg", "invoice.pdf"]
    assert reply["recipients"] == {
        "to": ["greta@velo.example"],
        "cc": ["bo@velo.example", "carl@velo.example"],
        "bcc": ["audit@example.com"],
    }


def test_no_cc_and_a_bad_address(dovecot, mail_user, smtp, tmp_path, desk_factory):
    config, desk, ref = _setup(
        dovecot, mail_user, smtp, tmp_path, desk_factory, subject="Wheel", extra="Cc: bo@velo.example\r\n"
    )
    (tmp_path / "body.txt").write_text("Only to you.\n")
    code, _, err = _run(config, "reply", ref, "--body-file", str(tmp_path / "body.txt"), "--cc", "not an address")
    assert code == 2 and err.count("\n") == 1 and "'not an address' is not an email address" in err
    assert desk.count("SELECT count(*) FROM outbox") == 0
    code, _, err = _run(config, "reply", ref, "--body-file", str(tmp_path / "body.txt"), "--no-cc")
    assert code == 0, err
    desk.sync_once()
    assert _sent(smtp)["Cc"] is None
    assert smtp.envelopes[-1][1] == ["greta@velo.example"]


def test_hostile_file_names_are_sent_safe_and_oversize_is_refused(dovecot, mail_user, smtp, tmp_path, desk_factory):
    config, desk, ref = _setup(dovecot, mail_user, smtp, tmp_path, desk_factory, subject="Names", max_bytes=50_000)
    (tmp_path / "body.txt").write_text("See attached.\n")
    hostile = tmp_path / "..\u202egnp.exe \x1b]0;owned\x07\x1b[31mred.txt"
    hostile.write_bytes(b"harmless")
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(60_000))
    before = desk.count("SELECT count(*) FROM message")

    code, out, err = _run(config, "reply", ref, "--body-file", str(tmp_path / "body.txt"), "--attach", str(big))
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and "over the 50.0 kB" in err and "big.bin" in err
    assert desk.count("SELECT count(*) FROM message") == before  # nothing queued, nothing stored
    assert desk.count("SELECT count(*) FROM outbox") == 0

    code, _, err = _run(config, "reply", ref, "--body-file", str(tmp_path / "body.txt"), "--attach", str(hostile))
    assert code == 0, err
    desk.sync_once()
    (part,) = list(_sent(smtp).iter_attachments())
    name = part.get_filename()
    assert name and not any(ord(c) < 32 or c in "\u202e/\\" for c in name)
    assert not name.startswith(".") and name.endswith("red.txt")
    assert part.get_payload(decode=True) == b"harmless"


def test_forward_with_files_and_the_answer_threads_back(dovecot, mail_user, smtp, tmp_path, desk_factory):
    photo = os.urandom(20_000)
    config, desk, ref = _setup(dovecot, mail_user, smtp, tmp_path, desk_factory, subject="Broken hub", attachment=photo)
    conversation_id = int(ref.removeprefix("AD-"))
    customer = desk.count("SELECT customer_id FROM conversation")
    (tmp_path / "ask.txt").write_text("Can you replace this hub?\n")
    order = b"order 2291: hub, 32h\n"
    (tmp_path / "order.txt").write_bytes(order)
    code, out, err = _run(
        config,
        "forward",
        ref,
        "--attach",
        str(tmp_path / "order.txt"),
        "--to",
        "parts@supplier.example",
        "--cc",
        "workshop@velo.example",
        "--bcc",
        "audit@example.com",
        "--body-file",
        str(tmp_path / "ask.txt"),
        "--json",
    )
    assert code == 0, err
    document = json.loads(out)
    assert document["to"] == ["parts@supplier.example"] and document["cc"] == ["workshop@velo.example"]
    # The shape of `reply --json`: the files it carries are named.
    assert document["bcc"] == ["audit@example.com"] and len(document["attachments"]) == 2
    assert "order.txt" in document["attachments"]
    report = desk.sync_once()
    assert report.delivery.sent == 1, report.delivery.errors
    sent = _sent(smtp)
    assert sent["To"] == "parts@supplier.example" and sent["In-Reply-To"] is None
    # Cc in the headers, Bcc only in the SMTP envelope.
    assert sent["Cc"] == "workshop@velo.example" and sent["Bcc"] is None and b"audit@" not in smtp.received[-1]
    assert sorted(smtp.envelopes[-1][1]) == ["audit@example.com", "parts@supplier.example", "workshop@velo.example"]
    assert sent["Subject"] == f"Fwd: Broken hub [{ref}]"
    assert "support@example.com" in sent["From"]
    text = sent.get_body(("plain",)).get_content()
    assert text.startswith("Can you replace this hub?") and "---------- Forwarded message ----------" in text
    assert "greta@velo.example" in text and "Message 1." in text
    # The conversation's file, and the one added with --attach, byte for byte.
    sent_files = {part.get_filename(): part.get_payload(decode=True) for part in sent.iter_attachments()}
    assert len(sent_files) == 2 and sent_files["order.txt"] == order
    (photo_sent,) = [data for name, data in sent_files.items() if name != "order.txt"]
    assert hashlib.sha256(photo_sent).hexdigest() == hashlib.sha256(photo).hexdigest()
    forward_id = sent["Message-ID"].strip("<>")
    assert desk.rows("SELECT kind, direction FROM message ORDER BY id")[-1] == ("forward", "outbound")
    assert desk.count("SELECT count(*) FROM event WHERE action = 'forward'") == 1

    # The supplier answers the forward: it joins this conversation, the customer stays Greta.
    dovecot.append(
        mail_user,
        [
            _customer_mail(
                2,
                subject=f"Re: Fwd: Broken hub [{ref}]",
                in_reply_to=forward_id,
                sender=("Parts Desk", "parts@supplier.example"),
            )
        ],
    )
    # One that lost its headers still has our tag, and the supplier is a recipient of ours.
    dovecot.append(
        mail_user,
        [_customer_mail(3, subject=f"Re: Fwd: Broken hub [{ref}]", sender=("Parts Desk", "parts@supplier.example"))],
    )
    assert desk.sync_once().stored == 2
    assert desk.count("SELECT count(*) FROM conversation") == 1
    rows = desk.rows(
        "SELECT conversation_id, thread_reason FROM message WHERE sender_address = 'parts@supplier.example' ORDER BY id"
    )
    assert rows == [(conversation_id, "in-reply-to"), (conversation_id, "subject-tag")]
    assert desk.count("SELECT customer_id FROM conversation") == customer

    # A reply to the conversation still goes to the customer, not to the supplier.
    (tmp_path / "body.txt").write_text("A new hub is on its way.\n")
    assert _run(config, "reply", ref, "--body-file", str(tmp_path / "body.txt"))[0] == 0
    desk.sync_once()
    assert _sent(smtp)["To"] == "greta@velo.example"

    # A second forward carries the exchange with the customer: not the first forward and its note,
    # not the supplier's answers; the photo once; our reply from us at the mailbox's address.
    assert _run(config, "forward", ref, "--to", "frames@other.example")[0] == 0
    assert desk.sync_once().delivery.sent == 1
    second = _sent(smtp)
    text = second.get_body(("plain",)).get_content()
    assert text.count("---------- Forwarded message ----------") == 2, text
    assert "Message 1." in text and "A new hub is on its way." in text
    assert "Can you replace this hub?" not in text and "Message 2." not in text and "Message 3." not in text
    froms = [line for line in text.splitlines() if line.startswith("From: ")]
    assert froms[0].endswith("<greta@velo.example>") and froms[1].endswith("<support@example.com>"), froms
    (part,) = list(second.iter_attachments())
    assert hashlib.sha256(part.get_payload(decode=True)).hexdigest() == hashlib.sha256(photo).hexdigest()


def test_a_forward_carries_a_file_kept_only_inside_its_raw_mail(dovecot, mail_user, smtp, tmp_path, desk_factory):
    # Big enough that the sync stores the mail whole and leaves the file inside it (in_raw).
    video = os.urandom(5 * 1024 * 1024)
    config, desk, ref = _setup(
        dovecot, mail_user, smtp, tmp_path, desk_factory, subject="Noise", attachment=video, max_bytes=8 << 20
    )
    code, out, err = _run(config, "attachment", "list", ref, "--json")
    assert code == 0, err
    assert [a["state"] for a in json.loads(out)] == ["in_raw"]
    code, out, err = _run(config, "forward", ref, "--to", "parts@supplier.example")
    assert code == 0, err
    assert desk.sync_once().delivery.sent == 1
    sent = _sent(smtp)
    assert "not included" not in sent.get_body(("plain",)).get_content()
    (part,) = list(sent.iter_attachments())
    assert hashlib.sha256(part.get_payload(decode=True)).hexdigest() == hashlib.sha256(video).hexdigest()


def test_new_conversation_and_the_customer_answer(dovecot, mail_user, smtp, tmp_path, desk_factory):
    config, desk, first_ref = _setup(dovecot, mail_user, smtp, tmp_path, desk_factory, subject="Earlier question")
    customer = desk.count("SELECT customer_id FROM conversation")
    (tmp_path / "delay.txt").write_text("Your order is delayed by a week; sorry.\n")
    code, out, err = _run(
        config,
        "new",
        "--to",
        "Greta@Velo.example",
        "--subject",
        "Your order is delayed",
        "--body-file",
        str(tmp_path / "delay.txt"),
        "--assign",
        "me",
    )
    assert code == 0, err
    ref = out.strip()
    assert ref.startswith("AD-") and ref != first_ref
    row = desk.rows(
        "SELECT customer_id, status, assignee, channel, source, first_response_due, first_responded_at "
        "FROM conversation WHERE id = :id",
        id=int(ref[3:]),
    )[0]
    assert row[0] == customer  # joins Greta's history: her identity, no new customer
    assert row[1:5] == ("pending", "tester", "email", "support")
    assert row[6] is not None  # we wrote first: no first-reply clock against the team

    report = desk.sync_once()
    assert report.delivery.sent == 1, report.delivery.errors
    sent = _sent(smtp)
    assert sent["To"] == "greta@velo.example" and sent["Subject"] == f"Your order is delayed [{ref}]"
    assert sent["In-Reply-To"] is None

    # Greta answers a little later: it threads into the new conversation, which opens and starts
    # the next-reply clock.
    later = datetime.now(timezone.utc) + timedelta(minutes=1)
    dovecot.append(
        mail_user,
        [
            _customer_mail(
                5, subject=f"Re: Your order is delayed [{ref}]", in_reply_to=sent["Message-ID"].strip("<>"), at=later
            )
        ],
    )
    assert desk.sync_once().stored == 1
    (answer,) = desk.rows(
        "SELECT conversation_id, thread_reason FROM message WHERE direction = 'inbound' "
        "AND external_id = 'out5@velo.example'"
    )
    assert answer == (int(ref[3:]), "in-reply-to")
    code, out, _ = _run(config, "show", ref, "--json")
    document = json.loads(out)
    assert document["status"] == "open"
    targets = {t["target"]: t["state"] for t in document["sla"]["targets"]}
    assert targets.get("first_reply") in (None, "met")
    assert targets.get("next_reply") in ("ok", "warning")
    assert document["waiting_since"] is not None
    assert first_ref in [h["ref"] for h in document["history"]]


def test_new_conversation_refusals(dovecot, mail_user, smtp, tmp_path, desk_factory):
    config, desk, _ = _setup(dovecot, mail_user, smtp, tmp_path, desk_factory, subject="x")
    (tmp_path / "b.txt").write_text("Hello\n")
    code, _, err = _run(
        config,
        "new",
        "--to",
        "nobody at all",
        "--channel",
        "support",
        "--subject",
        "Hi",
        "--body-file",
        str(tmp_path / "b.txt"),
    )
    assert code == 2 and "is not an email address" in err and err.count("\n") == 1
    code, _, err = _run(
        config,
        "new",
        "--to",
        "a@b.example",
        "--channel",
        "nope",
        "--subject",
        "Hi",
        "--body-file",
        str(tmp_path / "b.txt"),
    )
    assert code == 2 and "--channel nope" in err
    # Without --channel, what is wrong with the address is said first, not that nothing sends to it.
    for typed in ("bad addr", "Ines Brouwer", "bo@", ""):
        code, _, err = _run(config, "new", "--to", typed, "--subject", "Hi", "--body-file", str(tmp_path / "b.txt"))
        assert code == 2 and f"{typed!r} is not an email address" in err and err.count("\n") == 1, err
        assert "--channel" not in err, err
    assert desk.count("SELECT count(*) FROM conversation") == 1


def test_new_names_the_customer_as_typed_and_lists_its_files(dovecot, mail_user, smtp, tmp_path, desk_factory):
    config, desk, _ = _setup(dovecot, mail_user, smtp, tmp_path, desk_factory, subject="x")
    (tmp_path / "b.txt").write_text("Welcome aboard.\n")
    (tmp_path / "leaflet.pdf").write_bytes(b"%PDF leaflet")
    code, out, err = _run(
        config,
        "new",
        "--to",
        "Zed Q <Zed@New.example>",
        "--subject",
        "Welcome",
        "--body-file",
        str(tmp_path / "b.txt"),
        "--attach",
        str(tmp_path / "leaflet.pdf"),
        "--json",
    )
    assert code == 0, err
    document = json.loads(out)
    assert document["attachments"] == ["leaflet.pdf"]
    ref = document["ref"]
    assert desk.rows(
        "SELECT customer.name, identity.address FROM conversation JOIN customer ON customer.id = conversation.customer_id "
        "JOIN identity ON identity.customer_id = customer.id WHERE conversation.id = :id",
        id=int(ref[3:]),
    ) == [("Zed Q", "zed@new.example")]
    assert desk.sync_once().delivery.sent == 1
    assert _sent(smtp)["To"] == "zed@new.example"
    # A customer known only by their address so far takes the name typed with it; a name stays.
    assert (
        _run(
            config,
            "new",
            "--to",
            "Zed Quist <zed@new.example>",
            "--subject",
            "Again",
            "--body-file",
            str(tmp_path / "b.txt"),
        )[0]
        == 0
    )
    assert desk.rows("SELECT name FROM customer WHERE name LIKE 'Zed%'") == [("Zed Q",)]
    for typed in ("zed2@new.example", "Zed Two <zed2@new.example>"):
        body = str(tmp_path / "b.txt")
        assert _run(config, "new", "--to", typed, "--subject", "Hi", "--body-file", body)[0] == 0
    assert desk.rows("SELECT name FROM customer WHERE name LIKE 'Zed T%'") == [("Zed Two",)]
    code, out, err = _run(
        config,
        "new",
        "--to",
        "New Name <greta@velo.example>",
        "--subject",
        "Hi",
        "--body-file",
        str(tmp_path / "b.txt"),
    )
    assert code == 0, err
    assert desk.rows("SELECT count(*) FROM customer WHERE name = 'Greta Lindqvist'") == [(1,)]


def test_the_receipt_goes_to_the_sender_alone(dovecot, mail_user, smtp, tmp_path, desk_factory):
    config = mailbox_config(tmp_path, dovecot, mail_user, smtp.port)
    text = config.read_text()
    config.write_text(text.replace('after_fetch = "keep"', 'after_fetch = "keep"\nreceipt = "receipt"'))
    (tmp_path / "templates").mkdir(exist_ok=True)
    (tmp_path / "templates" / "receipt.md").write_text("We received your message ({{ ref }}).\n")
    desk = desk_factory(config)
    dovecot.append(
        mail_user, [_customer_mail(40, subject="Flat tyre", extra="Cc: Bo <bo@velo.example>, carl@velo.example\r\n")]
    )
    desk.sync_once()  # stores the mail and queues the receipt
    report = desk.sync_once()
    assert len(smtp.received) == 1, (report.errors, report.delivery.errors)
    receipt = _sent(smtp)
    assert receipt["Auto-Submitted"] == "auto-replied"
    assert receipt["To"] == "greta@velo.example" and receipt["Cc"] is None
    assert smtp.envelopes[-1][1] == ["greta@velo.example"]
    # A person's reply still goes to everyone who was on the mail.
    (tmp_path / "body.txt").write_text("On it.\n")
    assert (
        _run(
            config,
            "reply",
            f"AD-{desk.count('SELECT id FROM conversation')}",
            "--body-file",
            str(tmp_path / "body.txt"),
        )[0]
        == 0
    )
    desk.sync_once()
    assert _sent(smtp)["Cc"] == "bo@velo.example, carl@velo.example"
