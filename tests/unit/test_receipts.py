"""The automatic receipt: when it goes out, what it promises, and the loop protection."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import factories
import pytest
from conftest import FIXED_NOW
from sqlmodel import select

from agentdesk import config
from agentdesk.domain import clocks, receipts, replies
from agentdesk.ingest import ingest_message
from agentdesk.store import db
from agentdesk.store.models import Conversation, Event, Message, Outbox, SlaClockEvent

T = FIXED_NOW  # Tuesday 10:30 in Amsterdam
M = timedelta(minutes=1)
H = timedelta(hours=1)
AMSTERDAM = ZoneInfo("Europe/Amsterdam")

CHANNELS = """
[[mailbox]]
name = "support"
address = "support@northwind.example"
host = "imap.northwind.example"
username = "support@northwind.example"
receipt = "receipt"

[[mailbox]]
name = "quiet"
address = "quiet@northwind.example"
host = "imap.northwind.example"

[[spool]]
name = "sms"
path = "/nonexistent/sms"
kind = "sms"
receipt = "receipt-sms"
outbound = { spool = "/nonexistent/sms-out" }

[[spool]]
name = "forms"
path = "/nonexistent/forms"
kind = "webform"
receipt = "receipt-sms"
"""

RECEIPT = "Hi {{ customer_first_name }},\n\nWe received your message ({{ ref }}). A person will answer by {{ due }}.\n"
RECEIPT_SMS = "Got it ({{ ref }}). We'll answer {{ due_relative }}."


@pytest.fixture
def settings(config_file, tmp_path):
    settings = config.parse(config_file.read_text() + CHANNELS, source=config_file)
    settings.templates_dir.mkdir(parents=True, exist_ok=True)
    (settings.templates_dir / "receipt.md").write_text(RECEIPT, encoding="utf-8")
    (settings.templates_dir / "receipt-sms.md").write_text(RECEIPT_SMS, encoding="utf-8")
    return settings


def _ingest(engine, settings, policies, *, at=T, now=None, **fields):
    """Ingest like a channel does and offer the receipt in the same transaction; the receipt or None."""
    fields.setdefault("source", "support")
    headers = fields.pop("headers", {})
    message = dataclasses.replace(factories.inbound(at=at, **fields), headers=headers)
    now = now or at + timedelta(seconds=5)
    with db.write_session(engine) as session:
        result = ingest_message(session, message, policies=policies, now=now)
        stored = session.get(Message, result.message_id)
        conversation = session.get(Conversation, result.conversation_id)
        receipt = receipts.maybe_queue_receipt(
            session,
            conversation=conversation,
            message=stored,
            settings=settings,
            policies=policies,
            now=now,
            inbound=message,
        )
        session.commit()
        return (receipt.body_text if receipt else None), result.conversation_id


def test_the_first_message_gets_a_receipt_with_its_reference_and_an_honest_eta(engine, settings, policies):
    body, conversation_id = _ingest(engine, settings, policies)
    # The email policy: first reply 1h of office time from 10:30 local.
    assert body == (
        f"Hi Greta,\n\nWe received your message (AD-{conversation_id}). "
        "A person will answer by Tuesday 17 November, 11:30 CET."
    )
    with db.read_session(engine) as session:
        receipt = session.exec(select(Message).where(Message.kind == "receipt")).one()
        assert (receipt.direction, receipt.author, receipt.author_login) == ("outbound", "Automatic receipt", None)
        assert session.exec(select(Outbox).where(Outbox.message_id == receipt.id)).one().state == "queued"


def test_the_receipt_is_not_a_reply(engine, settings, policies):
    _, conversation_id = _ingest(engine, settings, policies)
    with db.read_session(engine) as session:
        conversation = session.get(Conversation, conversation_id)
        assert (conversation.first_responded_at, conversation.waiting_since) == (None, T)
        assert conversation.first_response_due == T + H
        assert not session.exec(select(SlaClockEvent).where(SlaClockEvent.event == "fulfil")).all()


def test_after_hours_the_eta_is_the_next_business_morning(engine, settings, policies):
    friday_evening = datetime(2026, 11, 20, 17, 0, tzinfo=timezone.utc)  # 18:00 in Amsterdam
    body, _ = _ingest(engine, settings, policies, at=friday_evening)
    assert "by Monday 23 November, 10:00 CET" in body


def test_a_spool_uses_its_own_template_and_a_relative_eta(engine, settings, policies):
    body, conversation_id = _ingest(engine, settings, policies, source="sms", channel="sms", sender="+31612345678")
    assert body == f"Got it (AD-{conversation_id}). We'll answer within 20 minutes."


def test_a_channel_without_a_template_sends_nothing(engine, settings, policies):
    assert _ingest(engine, settings, policies, source="quiet")[0] is None


def test_only_the_first_message_of_a_conversation_gets_one(engine, settings, policies):
    _, conversation_id = _ingest(engine, settings, policies)
    body, same = _ingest(engine, settings, policies, at=T + 10 * M, conversation_hint=f"AD-{conversation_id}")
    assert same == conversation_id and body is None


@pytest.mark.parametrize(
    "fields",
    [
        {"kind": "auto_reply"},
        {"kind": "bounce"},
        {"sender": "support@northwind.example"},
        {"sender": "SUPPORT@Northwind.Example"},
        {"sender": "mailer-daemon@mx.velo.example"},
        {"sender": "no-reply@shop.example"},
        {"sender": "cyclists-request@lists.example"},
        {"sender": "owner-cyclists@lists.example"},
        {"headers": {"x-agentdesk-loop": "support@other-desk.example"}},
        {"headers": {"return-path": "<>"}},
    ],
)
def test_loop_protection_never_answers_machines_or_ourselves(engine, settings, policies, fields):
    assert _ingest(engine, settings, policies, **fields)[0] is None


def test_list_mail_gets_no_receipt(engine, settings, policies):
    message = dataclasses.replace(factories.inbound(at=T, source="support"), bulk=True)
    with db.write_session(engine) as session:
        result = ingest_message(session, message, policies=policies, now=T)
        decision = receipts.decide(
            session,
            conversation=session.get(Conversation, result.conversation_id),
            message=session.get(Message, result.message_id),
            settings=settings,
            policies=policies,
            now=T,
        )
    assert (decision.send, decision.reason) == (False, "it is list or bulk mail")


def test_one_address_gets_at_most_three_receipts_an_hour(engine, settings, policies):
    # An autoresponder without headers we recognise, answering each receipt with a new subject.
    sent = [
        _ingest(engine, settings, policies, at=T + n * 10 * M, subject=f"Auto: your ticket {n}")[0] for n in range(5)
    ]
    assert [body is not None for body in sent] == [True, True, True, False, False]
    with db.read_session(engine) as session:
        assert len(session.exec(select(Message).where(Message.kind == "receipt")).all()) == 3
    # An hour after the first, the window has room again.
    assert _ingest(engine, settings, policies, at=T + 61 * M, subject="Later")[0] is not None


def test_the_limit_is_per_address(engine, settings, policies):
    for n in range(3):
        _ingest(engine, settings, policies, at=T + n * M, subject=f"Question {n}")
    assert _ingest(engine, settings, policies, at=T + 5 * M, sender="ana@velo.example", name="Ana")[0] is not None


def test_the_limit_is_configurable_per_channel(engine, settings, policies):
    settings.mailbox[0].receipt_limit = 1  # proposed key: mailbox.receipt_limit
    assert _ingest(engine, settings, policies, subject="One")[0] is not None
    assert _ingest(engine, settings, policies, at=T + M, subject="Two")[0] is None


def test_after_hours_receipts_for_later_messages_when_the_channel_asks(engine, settings, policies):
    settings.mailbox[0].receipt_after_hours = True  # proposed key: mailbox.receipt_after_hours
    _, conversation_id = _ingest(engine, settings, policies)
    in_hours, _ = _ingest(engine, settings, policies, at=T + H, conversation_hint=f"AD-{conversation_id}")
    assert in_hours is None
    evening = datetime(2026, 11, 17, 19, 0, tzinfo=timezone.utc)  # 20:00 local
    late, _ = _ingest(engine, settings, policies, at=evening, conversation_hint=f"AD-{conversation_id}")
    assert late is None  # the first receipt's promise still stands: nobody has answered yet
    with db.write_session(engine) as session:
        replies.reply(
            session,
            conversation=session.get(Conversation, conversation_id),
            body="Sending spokes.",
            agent="tester",
            agent_name="Terry",
            now=T + 2 * H,
            policies=policies,
        )
        session.commit()
    late, _ = _ingest(engine, settings, policies, at=evening, conversation_hint=f"AD-{conversation_id}")
    # Next reply: 4 office hours from Wednesday 09:00.
    assert late is not None and "Wednesday 18 November, 13:00 CET" in late
    # Once per conversation until an agent replies.
    again, _ = _ingest(engine, settings, policies, at=evening + H, conversation_hint=f"AD-{conversation_id}")
    assert again is None


def test_a_broken_template_is_audited_and_costs_nothing(engine, settings, policies):
    (settings.templates_dir / "receipt.md").unlink()
    body, conversation_id = _ingest(engine, settings, policies)
    assert body is None
    with db.read_session(engine) as session:
        assert session.get(Conversation, conversation_id) is not None
        failed = session.exec(select(Event).where(Event.action == "receipt_failed")).one()
        assert "receipt" in failed.detail


def test_no_time_is_promised_when_no_reply_target_runs(engine, settings):
    no_policies = clocks.Policies([])
    body, _ = _ingest(engine, settings, no_policies)
    assert body is None
    with db.read_session(engine) as session:
        failed = session.exec(select(Event).where(Event.action == "receipt_failed")).one()
        assert "no time is promised" in failed.detail


@pytest.mark.parametrize(
    "left, relative",
    [
        (timedelta(minutes=20), "within 20 minutes"),
        (timedelta(minutes=41), "within 45 minutes"),
        (timedelta(minutes=60), "within 1 hour"),
        (timedelta(minutes=150), "within 2 hours 30 minutes"),
        (timedelta(hours=5), "by Tuesday 17 November, 15:30 CET"),
        (timedelta(0), "shortly"),
    ],
)
def test_eta_wording_rounds_up_and_names_the_day_when_far(left, relative):
    absolute, wording = receipts.format_eta(T + left, now=T, zone=AMSTERDAM)
    assert wording == relative
    assert absolute.startswith("Tuesday 17 November")


def test_eta_across_a_dst_change_names_local_time():
    due = datetime(2026, 3, 30, 7, 0, tzinfo=timezone.utc)  # Monday after the spring change: 09:00 CEST
    assert receipts.format_eta(due, now=due - 72 * H, zone=AMSTERDAM)[0] == "Monday 30 March, 09:00 CEST"


def test_a_receipt_leaves_the_conversation_new(engine, settings, policies):
    _, conversation_id = _ingest(engine, settings, policies)
    with db.read_session(engine) as session:
        assert session.get(Conversation, conversation_id).status == "new"


# --- the one rule (RFC 3834, in depth): each case its own test, all through a real ingest --------


def test_no_receipt_for_an_empty_envelope_sender(engine, settings, policies):
    assert _ingest(engine, settings, policies, headers={"return-path": "<>"})[0] is None


def test_no_receipt_for_a_return_path_that_is_a_machine(engine, settings, policies):
    headers = {"return-path": "<bounces+greta=velo.example@lists.example>"}
    assert _ingest(engine, settings, policies, headers=headers)[0] is None


@pytest.mark.parametrize(
    "sender",
    [
        "MAILER-DAEMON@mx.velo.example",
        "postmaster@velo.example",
        "no-reply@shop.example",
        "noreply@shop.example",
        "bounce@shop.example",
        "bounces@lists.example",
        "mailer@velo.example",
        "daemon@velo.example",
        "listserv@lists.example",
        "majordomo@lists.example",
        "owner-cyclists@lists.example",
        "cyclists-request@lists.example",
        "do-not-reply@bank.example",
    ],
)
def test_no_receipt_for_a_machine_sender(engine, settings, policies, sender):
    assert _ingest(engine, settings, policies, sender=sender)[0] is None


@pytest.mark.parametrize("value", ["auto-replied", "auto-generated", "auto-notified; owner-email=x@y.example"])
def test_no_receipt_for_auto_submitted_mail(engine, settings, policies, value):
    assert _ingest(engine, settings, policies, headers={"auto-submitted": value})[0] is None


def test_auto_submitted_no_is_a_person(engine, settings, policies):
    assert _ingest(engine, settings, policies, headers={"auto-submitted": "no"})[0] is not None


@pytest.mark.parametrize("value", ["bulk", "list", "junk", "Bulk"])
def test_no_receipt_for_precedence_bulk_list_or_junk(engine, settings, policies, value):
    assert _ingest(engine, settings, policies, headers={"precedence": value})[0] is None


def test_no_receipt_for_list_id(engine, settings, policies):
    assert _ingest(engine, settings, policies, headers={"list-id": "<cyclists.lists.example>"})[0] is None


def test_no_receipt_for_list_unsubscribe(engine, settings, policies):
    headers = {"list-unsubscribe": "<mailto:leave@lists.example>"}
    assert _ingest(engine, settings, policies, headers=headers)[0] is None


def test_no_receipt_for_x_auto_response_suppress(engine, settings, policies):
    assert _ingest(engine, settings, policies, headers={"x-auto-response-suppress": "All"})[0] is None


def test_no_receipt_for_any_of_our_own_addresses(engine, settings, policies):
    # The second mailbox sends no receipts itself, but it is us all the same.
    assert _ingest(engine, settings, policies, sender="quiet@northwind.example")[0] is None


def test_no_receipt_for_an_address_that_had_its_share(engine, settings, policies):
    sent = [_ingest(engine, settings, policies, at=T + n * M, subject=f"Question {n}")[0] for n in range(4)]
    assert [body is not None for body in sent] == [True, True, True, False]


def test_a_spool_message_is_judged_on_its_sender_address(engine, settings, policies):
    body, _ = _ingest(engine, settings, policies, source="sms", channel="email", sender="no-reply@shop.example")
    assert body is None


def test_no_receipt_is_queued_that_cannot_be_delivered(engine, settings, policies):
    # A web form spool without an outbound: the receipt would only fail (and fail the sync).
    body, conversation_id = _ingest(engine, settings, policies, source="forms", channel="webform", sender="form-7")
    assert body is None
    with db.read_session(engine) as session:
        assert session.exec(select(Outbox)).all() == []


def test_the_rule_refuses_whatever_the_classification_said():
    from agentdesk.domain import automatic_messages

    refusal = automatic_messages.refusal
    assert (
        refusal(kind="message", bulk=False, sender_address="greta@velo.example", headers={}, our_addresses=set()) == ""
    )
    assert "Return-Path" in refusal(
        kind="message",
        bulk=False,
        sender_address="greta@velo.example",
        headers={"return-path": "<>"},
        our_addresses=set(),
    )
    assert "bounce" in refusal(
        kind="bounce", bulk=False, sender_address="greta@velo.example", headers={}, our_addresses=set()
    )
