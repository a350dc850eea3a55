"""Machine mail at the desk, end to end: real Dovecot, real aiosmtpd, the real sync, receipts on.

- a receipt never goes to any RFC 3834 case (each its own test), and does go to a customer;
- a real MTA's bounce of a reply we sent over SMTP fails that reply, flags its row and brings the
  conversation back to its assignee; a delay fails nothing; an unmatched bounce is system mail;
- block, spam and bulk mail through the CLI.
"""

from __future__ import annotations

import email
import json
import os
import re
import subprocess
import sys
from datetime import datetime, timezone
from email.policy import compat32
from email.utils import format_datetime
from pathlib import Path

import pytest
from integration.email.servers import Dovecot, mailbox_config

from agentdesk.channels.email.mime import parse_message
from agentdesk.domain import automatic_messages

pytestmark = pytest.mark.integration

SISIMAI = Path(__file__).resolve().parents[2] / "data" / "email" / "sisimai-set-of-emails" / "maildir" / "bsd"
OURS = "support@example.com"
CUSTOMER = "greta@velo.example"
RECEIPT = "Hi {{ customer_first_name }},\n\nWe received your message ({{ ref }}).\n"


# --- helpers -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dovecot():
    """This module's own server: each of its tests takes a fresh user, and the session's server
    keeps its pre-created users for the other modules."""
    server = Dovecot()
    server.start()
    yield server
    server.cleanup()


def _config(tmp_path: Path, dovecot, user: str, smtp, *, bulk: str = "") -> Path:
    """A mailbox that sends receipts (and, when given, its bulk setting)."""
    path = mailbox_config(tmp_path, dovecot, user, smtp.port)
    extra = 'receipt = "receipt"\n' + (f'bulk = "{bulk}"\n' if bulk else "")
    text = path.read_text(encoding="utf-8")
    marker = 'after_fetch = "keep"\n'
    assert marker in text
    path.write_text(text.replace(marker, marker + extra, 1), encoding="utf-8")
    templates = tmp_path / "templates"
    templates.mkdir(exist_ok=True)
    (templates / "receipt.md").write_text(RECEIPT, encoding="utf-8")
    return path


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


def _json(config: Path, *args: str):
    return json.loads(_cli(config, *args, "--json").stdout)


def _sync(config: Path) -> subprocess.CompletedProcess:
    return _cli(config, "sync", "--once")


def _refs(config: Path, view: str) -> list[str]:
    rows = _json(config, "list", "--view", view)
    return [row["ref"] for row in rows]


_counter = iter(range(1, 1_000_000))


def _mail(
    *,
    sender: str = CUSTOMER,
    name: str = "Greta Lindqvist",
    subject: str = "Spokes keep breaking",
    return_path: str | None = None,
    extra: str = "",
    body: str = "Hello, my spokes broke again.\n",
) -> bytes:
    """A plain mail as an MTA would deliver it; `return_path` None: the sender's own address."""
    n = next(_counter)
    now = datetime.now(timezone.utc)
    envelope = f"<{sender}>" if return_path is None else return_path
    return (
        f"Return-Path: {envelope}\r\n"
        f"From: {name} <{sender}>\r\nTo: {OURS}\r\nSubject: {subject}\r\n"
        f"Date: {format_datetime(now)}\r\nMessage-ID: <m{n}.{os.getpid()}@{sender.rpartition('@')[2]}>\r\n"
        f"{extra}MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body}"
    ).encode()


# --- a receipt never goes to machines ----------------------------------------------------------

# (id, raw mail, what the loop rule says about it when it is taken for customer mail)
RFC3834_CASES = [
    ("null-return-path", dict(return_path="<>"), "Return-Path is empty"),
    ("mailer-daemon", dict(sender="MAILER-DAEMON@mx.velo.example", name="Mail Delivery System"), "machine address"),
    ("postmaster", dict(sender="postmaster@velo.example", name="Postmaster"), "machine address"),
    ("no-reply", dict(sender="no-reply@shop.example", name="Shop"), "machine address"),
    ("noreply", dict(sender="noreply@shop.example", name="Shop"), "machine address"),
    (
        "bounces-verp",
        dict(sender="greta@velo.example", return_path="<bounces+greta=velo.example@mail.shop.example>"),
        "Return-Path bounces+",
    ),
    ("owner-list", dict(sender="owner-cyclists@lists.velo.example", name="Cyclists list"), "machine address"),
    ("list-request", dict(sender="cyclists-request@lists.velo.example", name="Cyclists list"), "machine address"),
    ("auto-replied", dict(extra="Auto-Submitted: auto-replied\r\n", subject="Re: your ticket"), "Auto-Submitted"),
    ("auto-generated", dict(extra="Auto-Submitted: auto-generated\r\n", subject="Your order"), "Auto-Submitted"),
    ("precedence-bulk", dict(extra="Precedence: bulk\r\n"), "Precedence: bulk"),
    ("precedence-list", dict(extra="Precedence: list\r\n"), "Precedence: list"),
    ("precedence-junk", dict(extra="Precedence: junk\r\n"), "Precedence: junk"),
    ("list-id", dict(extra="List-Id: Cyclists <cyclists.lists.velo.example>\r\n"), "List-Id"),
    ("list-unsubscribe", dict(extra="List-Unsubscribe: <mailto:leave@news.velo.example>\r\n"), "List-Unsubscribe"),
    ("x-auto-response-suppress", dict(extra="X-Auto-Response-Suppress: All\r\n"), "X-Auto-Response-Suppress"),
    ("our-own-address", dict(sender=OURS, name="Support"), "our own addresses"),
]


@pytest.mark.parametrize(("fields", "why"), [c[1:] for c in RFC3834_CASES], ids=[c[0] for c in RFC3834_CASES])
def test_no_receipt_to_automatic_mail(fields, why, dovecot, mail_user, smtp, tmp_path, desk_factory):
    config = _config(tmp_path, dovecot, mail_user, smtp)
    desk = desk_factory(config)
    raw = _mail(**fields)
    dovecot.append(mail_user, [raw])

    report = desk.sync_once()  # the worker with its real sources and senders: fetch, ingest, deliver
    assert report.ok, (report.errors, report.delivery.errors)
    assert report.stored == 1
    assert smtp.received == []
    assert desk.count("SELECT count(*) FROM outbox") == 0
    assert desk.count("SELECT count(*) FROM message WHERE kind = 'receipt'") == 0
    # Defence in depth: the loop rule alone refuses it, even were it taken for customer mail.
    parsed = parse_message(raw, source="support", received_at=datetime.now(timezone.utc))
    reason = automatic_messages.refusal(
        kind="message", bulk=False, sender_address=parsed.sender_address, headers=parsed.headers, our_addresses={OURS}
    )
    for word in why.split():
        assert word.lower() in reason.lower(), reason


def test_a_customer_gets_exactly_one_receipt(dovecot, mail_user, smtp, tmp_path, desk_factory):
    config = _config(tmp_path, dovecot, mail_user, smtp)
    dovecot.append(mail_user, [_mail()])
    _sync(config)
    assert len(smtp.received) == 1
    receipt = email.message_from_bytes(smtp.received[0], policy=compat32)
    assert receipt["To"] == CUSTOMER and receipt["Auto-Submitted"] == "auto-replied"
    assert "We received your message" in receipt.get_payload(decode=True).decode()
    _sync(config)
    assert len(smtp.received) == 1  # delivered once


def test_no_receipt_past_the_hourly_limit(dovecot, mail_user, smtp, tmp_path, desk_factory):
    config = _config(tmp_path, dovecot, mail_user, smtp)
    dovecot.append(mail_user, [_mail(subject=f"Question {n}") for n in range(3)])
    _sync(config)
    assert len(smtp.received) == 3  # the limit: three an hour to one address
    dovecot.append(mail_user, [_mail(subject="Question 4")])
    _sync(config)
    assert len(smtp.received) == 3
    desk = desk_factory(config)
    assert desk.count("SELECT count(*) FROM conversation") == 4
    assert desk.count("SELECT count(*) FROM message WHERE kind = 'receipt'") == 3


# --- a bounce of our own reply -----------------------------------------------------------------


def _replied(config: Path, dovecot, mail_user, smtp, *, customer: str = CUSTOMER) -> tuple[str, str]:
    """A customer's mail, claimed and answered over real SMTP: (ref, our reply's Message-ID)."""
    dovecot.append(mail_user, [_mail(sender=customer)])
    _sync(config)
    ref = _refs(config, "open")[0]
    _cli(config, "claim", ref)
    before = len(smtp.received)
    body = config.parent / "reply.txt"
    body.write_text("A new wheel is on its way.\n", encoding="utf-8")
    _cli(config, "reply", ref, "--body-file", str(body), "--status", "solved")
    _sync(config)
    sent = [email.message_from_bytes(m, policy=compat32) for m in smtp.received[before:]]
    ours = [m for m in sent if m["Auto-Submitted"] is None]
    assert len(ours) == 1, [m["Subject"] for m in sent]
    return ref, ours[0]["Message-ID"].strip("<>")


def _real_bounce(
    name: str, *, failed: tuple[str, ...], original_id: str | None, reply_id: str, customer: str = CUSTOMER
) -> bytes:
    """A sisimai sample with the failed recipient, the returned Message-ID and its own made ours."""
    text = (SISIMAI / f"{name}.eml").read_bytes().decode("utf-8", "surrogateescape")
    for address in failed:
        text = text.replace(address, customer)
    if original_id is not None:
        assert original_id in text, name
        text = text.replace(original_id, reply_id)
    n = next(_counter)
    text, count = re.subn(
        r"(?im)^(Message-I[dD]:\s*)<[^>]*>", rf"\g<1><bounce{n}.{os.getpid()}@mx.example>", text, count=1
    )
    assert count == 1, name
    return text.encode("utf-8", "surrogateescape")


BOUNCES = [
    # (sample, failed addresses in it, the returned message's Message-ID, words of the reason)
    ("lhost-postfix-01", ("r@p351355.pool.example.ne.jp", "kijitora@example.org"), None, "No such user"),
    ("lhost-exim-01", ("kijitora@example.ed.jp",), "hogeuoiuadogalhg.dg9i09@example.jp", "550"),
    (
        "lhost-qmail-01",
        ("kijitora@example.ne.jp",),
        "000000000.9999999999999.JavaMail.postmaster@mailhub",
        "Unknown user",
    ),
    ("lhost-exchange2007-01", ("mikeneko@example.co.jp",), None, "RecipNotFound"),
    ("lhost-gmail-01", ("userunknown@example.jp",), "D992C2C3-F175-4C4D-97E2-53A90E4E5BF5@gmail.com", "User Unknown"),
]


@pytest.mark.parametrize(("sample", "failed", "original_id", "reason"), BOUNCES, ids=[b[0] for b in BOUNCES])
def test_a_bounce_of_our_reply_fails_it_and_flags_the_row(
    sample, failed, original_id, reason, dovecot, mail_user, smtp, tmp_path, desk_factory
):
    config = _config(tmp_path, dovecot, mail_user, smtp)
    ref, reply_id = _replied(config, dovecot, mail_user, smtp)
    assert ref not in _refs(config, "mine")  # solved: out of Mine
    customers = len(_json(config, "customer", "list"))

    dovecot.append(mail_user, [_real_bounce(sample, failed=failed, original_id=original_id, reply_id=reply_id)])
    _sync(config)

    document = _json(config, "show", ref)
    reply = next(m for m in document["messages"] if m["external_id"] == reply_id)
    assert reply["delivery"] == "bounced"
    assert reason.lower() in (reply["delivery_error"] or "").lower(), reply["delivery_error"]
    row = next(r for r in _json(config, "list", "--view", "mine") if r["ref"] == ref)
    assert row["bounced_at"] is not None  # the queue row's flag
    assert [m["kind"] for m in document["messages"] if m["direction"] == "inbound"][-1] == "bounce"
    assert len(_json(config, "customer", "list")) == customers  # no customer for the mailer daemon
    assert _refs(config, "system") == []
    assert len([m for m in smtp.received if b"Auto-Submitted: auto-replied" in m]) == 1  # the customer's receipt only


def test_a_delay_notice_fails_nothing(dovecot, mail_user, smtp, tmp_path, desk_factory):
    config = _config(tmp_path, dovecot, mail_user, smtp)
    ref, reply_id = _replied(config, dovecot, mail_user, smtp)
    delay = _real_bounce(
        "lhost-sendmail-29",
        failed=("this-local-part-does-not-exist-on-the-system@y-mobile.ne.jp",),
        original_id="54341A75-5EF4-4F06-9C5D-56D36A9283FC@example.jp",
        reply_id=reply_id,
    )
    dovecot.append(mail_user, [delay])
    _sync(config)
    document = _json(config, "show", ref)
    reply = next(m for m in document["messages"] if m["external_id"] == reply_id)
    assert reply["delivery"] == "sent"
    # The notice joins the thread. Not necessarily last: its time is the mailbox's (INTERNALDATE,
    # whole seconds), which within the reply's own second sorts before the reply's.
    assert [m["kind"] for m in document["messages"]].count("bounce") == 1
    assert not any(r["bounced_at"] for r in _json(config, "list", "--view", "all"))


def test_an_unmatched_bounce_is_system_mail_not_a_customer(dovecot, mail_user, smtp, tmp_path, desk_factory):
    config = _config(tmp_path, dovecot, mail_user, smtp)
    dovecot.append(mail_user, [_mail()])
    _sync(config)
    before = _json(config, "stats")
    bounce = (SISIMAI / "lhost-exim-01.eml").read_bytes()  # a bounce of a message we never sent
    dovecot.append(mail_user, [bounce])
    _sync(config)

    system = _refs(config, "system")
    assert len(system) == 1
    assert system[0] not in _refs(config, "all") + _refs(config, "open")
    after = _json(config, "stats")
    assert (after["customers"], after["identities"]) == (before["customers"], before["identities"]) == (1, 1)
    assert [c["identities"][0]["address"] for c in _json(config, "customer", "list")] == [CUSTOMER]
    assert _json(config, "customer", "list", "mail system") == []
    assert _json(config, "customer", "list", "mailer-daemon") == []
    assert len(smtp.received) == 1  # the customer's receipt; nothing to the mailer daemon


# --- block, spam, bulk -------------------------------------------------------------------------


def test_blocked_senders_land_in_spam_without_receipt(dovecot, mail_user, smtp, tmp_path, desk_factory):
    config = _config(tmp_path, dovecot, mail_user, smtp)
    _cli(config, "block", "pest@junk.example", "@spammy.example")
    assert {b["pattern"] for b in _json(config, "blocked")} >= {"pest@junk.example", "@spammy.example"}
    dovecot.append(
        mail_user,
        [
            _mail(sender="pest@junk.example", name="Pest", subject="Cheap watches"),
            _mail(sender="anyone@spammy.example", name="Anyone", subject="Win a prize"),
        ],
    )
    _sync(config)
    spam = _refs(config, "spam")
    assert len(spam) == 2
    assert not set(spam) & set(_refs(config, "all") + _refs(config, "open"))
    assert smtp.received == []

    _cli(config, "unblock", "pest@junk.example")
    dovecot.append(mail_user, [_mail(sender="pest@junk.example", name="Pest", subject="Sorry, a real question")])
    _sync(config)
    assert len(_refs(config, "spam")) == 2 and len(_refs(config, "open")) == 1
    assert len(smtp.received) == 1


def test_spam_and_undo_round_trip(dovecot, mail_user, smtp, tmp_path, desk_factory):
    config = _config(tmp_path, dovecot, mail_user, smtp)
    dovecot.append(mail_user, [_mail()])
    _sync(config)
    ref = _refs(config, "open")[0]

    _cli(config, "spam", ref)
    assert _refs(config, "spam") == [ref]
    assert ref not in _refs(config, "open") + _refs(config, "all")
    assert _json(config, "show", ref)["view"] == "spam"
    _cli(config, "spam", "--undo", ref)
    assert _refs(config, "spam") == []
    assert ref in _refs(config, "open")
    actions = [e["action"] for e in _json(config, "audit")]
    assert "spam" in actions and "unspam" in actions


@pytest.mark.parametrize(
    "header", ["List-Id: Velo news <news.velo.example>", "List-Unsubscribe: <https://news.velo.example/u/1>"]
)
def test_newsletters_land_in_bulk_without_clock_or_receipt(header, dovecot, mail_user, smtp, tmp_path, desk_factory):
    config = _config(tmp_path, dovecot, mail_user, smtp)
    dovecot.append(
        mail_user, [_mail(sender="news@velo.example", name="Velo news", subject="Spring sale", extra=header + "\r\n")]
    )
    _sync(config)
    bulk = _refs(config, "bulk")
    assert len(bulk) == 1 and _refs(config, "open") == []
    document = _json(config, "show", bulk[0])
    assert document["messages"][0]["bulk"] is True and document["messages"][0]["kind"] == "message"
    assert document["view"] == "bulk"
    assert document["sla"]["first_response_due"] is None, document["sla"]
    assert smtp.received == []


def test_bulk_queue_setting_keeps_newsletters_in_the_queue(dovecot, mail_user, smtp, tmp_path, desk_factory):
    config = _config(tmp_path, dovecot, mail_user, smtp, bulk="queue")
    dovecot.append(
        mail_user,
        [
            _mail(
                sender="news@velo.example",
                name="Velo news",
                subject="Spring sale",
                extra="List-Unsubscribe: <mailto:leave@news.velo.example>\r\n",
            )
        ],
    )
    _sync(config)
    assert _refs(config, "bulk") == []
    assert len(_refs(config, "open")) == 1
    assert smtp.received == []  # in the queue, but still never a receipt
