"""The CLI handlers of the webhook channel (as cli/parser.py wires them), the schema validator, receipts."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from urllib.parse import urlencode

import pytest
from conftest import BASIC_CONFIG
from sqlmodel import select

from agentdesk import config
from agentdesk.channels.webhook import schema
from agentdesk.channels.webhook import spool as spooling
from agentdesk.cli import customers as customer_commands
from agentdesk.cli import webhook as commands_webhook
from agentdesk.domain import clocks
from agentdesk.errors import InvalidInput, NotFound
from agentdesk.store import db
from agentdesk.store.models import Conversation, Customer, Event, Message, Outbox
from agentdesk.sync import worker
from agentdesk.sync.sources import spool as spool_source

DATA = Path(__file__).resolve().parents[1] / "data" / "webhooks"


@pytest.fixture
def config_path(tmp_path) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(
        f'[database]\nurl = "sqlite:///{tmp_path / "agentdesk.db"}"\n[templates]\ndir = "{tmp_path / "templates"}"\n'
        + BASIC_CONFIG
        + f"""
[[spool]]
name = "sms"
path = "sms"
adapter = "twilio_sms"
kind = "sms"
receipt = "receipt-sms"
outbound = {{ spool = "sms-out" }}

[[spool]]
name = "mail"
path = "{tmp_path / "mail"}"
adapter = "postmark"
kind = "email"
""",
        encoding="utf-8",
    )
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "receipt-sms.md").write_text(
        'Thanks {{ customer_first_name or "there" }}, we got it ({{ ref }}).\n'
    )
    (tmp_path / "templates" / "needs-name.md").write_text("Dear {{ customer_first_name }}, thanks.\n")
    return path


def args(config_path: Path, **values) -> argparse.Namespace:
    return argparse.Namespace(config=config_path, **values)


def sync(config_path: Path) -> bool:
    """One pass of the sync worker over the spools, without delivering: True when every spool was
    read. (With no sender the pass still marks the queued receipts undeliverable here, which is
    not what these tests are about.)"""
    settings = config.load(config_path)
    engine = db.open_database(settings.database_url)
    try:
        ctx = worker.SyncContext(settings, engine, clocks.Policies.from_settings(settings))
        return not worker.SyncWorker(ctx, spool_source.spool_sources(ctx), {}).run_once().errors
    finally:
        engine.dispose()


def sms(body: str, sid: str, sender: str = "+14155550123") -> bytes:
    return urlencode({"MessageSid": sid, "From": sender, "To": "+14155550100", "Body": body}).encode()


def test_relative_spool_paths_resolve_against_the_config_and_receipts_are_queued(config_path, tmp_path):
    spool_dir = tmp_path / "sms"
    spooling.ensure_spool(spool_dir)
    spooling.write_payload(spool_dir, sms("hello", "SM1"), "application/x-www-form-urlencoded")
    spooling.write_payload(spool_dir, sms("again", "SM2"), "application/x-www-form-urlencoded")
    assert sync(config_path)
    settings = config.load(config_path)
    engine = db.open_database(settings.database_url)
    with db.read_session(engine) as session:
        receipts = session.exec(select(Message).where(Message.kind == "receipt")).all()
        assert len(receipts) == 1  # one new conversation, one receipt
        assert receipts[0].body_text.startswith("Thanks there, we got it (AD-")
        assert session.exec(select(Outbox)).one().source == "sms"
    # a template that would show "[[customer_first_name?]]" is not sent; the message is stored all the same
    spool = settings.spool[0]
    spool.receipt = "needs-name"
    ctx = worker.SyncContext(settings, engine, clocks.Policies.from_settings(settings))
    (source,) = spool_source.spool_sources(ctx, only="sms")
    spooling.write_payload(
        spool_dir, sms("new number", "SM3", sender="+14155550999"), "application/x-www-form-urlencoded"
    )
    assert source.poll().stored == 1
    with db.read_session(engine) as session:
        assert len(session.exec(select(Message).where(Message.kind == "receipt")).all()) == 1
        failed = session.exec(select(Event).where(Event.action == "receipt_failed")).one()
        assert "customer_first_name" in failed.detail
    engine.dispose()


def test_spool_retry_command_reports_and_exits_by_outcome(config_path, tmp_path, capsys):
    mail = tmp_path / "mail"
    spooling.ensure_spool(mail)
    spooling.write_payload(mail, b'{"RecordType": "Inbound"}', "application/json")
    assert sync(config_path)  # a rejected file is handled input
    assert commands_webhook.cmd_spool_retry(args(config_path, name="mail", json=True)) == 1
    out = json.loads(capsys.readouterr().out)
    assert out["retried"] == 1 and "not a Postmark inbound webhook" in out["rejected"][0]["reason"]
    name = out["rejected"][0]["file"]
    (mail / "rejected" / name).write_bytes((DATA / "postmark" / "real-inbound-content.json").read_bytes())
    assert commands_webhook.cmd_spool_retry(args(config_path, name="mail", json=False)) == 0
    assert "1 stored" in capsys.readouterr().out
    with pytest.raises(NotFound, match="no spool named 'nope'"):
        commands_webhook.cmd_spool_retry(args(config_path, name="nope", json=False))


def test_customer_merge_and_unmerge_commands(config_path, tmp_path, capsys):
    spooling.ensure_spool(tmp_path / "mail")
    spooling.ensure_spool(tmp_path / "sms")
    spooling.write_payload(
        tmp_path / "mail", (DATA / "postmark" / "real-inbound-content.json").read_bytes(), "application/json"
    )
    spooling.write_payload(tmp_path / "sms", sms("hi", "SMx"), "application/x-www-form-urlencoded")
    assert sync(config_path)
    settings = config.load(config_path)
    engine = db.open_database(settings.database_url)
    with db.read_session(engine) as session:
        email_ref = f"AD-{session.exec(select(Conversation).where(Conversation.channel == 'email')).one().id}"
        sms_ref = f"AD-{session.exec(select(Conversation).where(Conversation.channel == 'sms')).one().id}"
    assert customer_commands.cmd_customer_merge(args(config_path, ref_a=email_ref, ref_b=sms_ref, json=True)) == 0
    merged = json.loads(capsys.readouterr().out)
    assert merged["conversations"] == [sms_ref]
    with db.read_session(engine) as session:
        assert len({c.customer_id for c in session.exec(select(Conversation))}) == 1
    with pytest.raises(InvalidInput, match="already belong"):
        customer_commands.cmd_customer_merge(args(config_path, ref_a=email_ref, ref_b=sms_ref, json=False))
    assert customer_commands.cmd_customer_unmerge(args(config_path, ref=sms_ref, json=False)) == 0
    assert "separated" in capsys.readouterr().out
    with db.read_session(engine) as session:
        assert len({c.customer_id for c in session.exec(select(Conversation))}) == 2
        assert all(c.merged_into_id is None for c in session.exec(select(Customer)))
    with pytest.raises(NotFound, match="did not come to its customer through a merge"):
        customer_commands.cmd_customer_unmerge(args(config_path, ref=sms_ref, json=False))
    engine.dispose()


def test_spool_list_shows_rejected_reasons(config_path, tmp_path, capsys):
    spooling.ensure_spool(tmp_path / "mail")
    spooling.write_payload(tmp_path / "mail", b"{nope", "application/json")
    sync(config_path)
    assert commands_webhook.cmd_spool_list(args(config_path, json=True)) == 0
    rows = {row["name"]: row for row in json.loads(capsys.readouterr().out)}
    assert "invalid JSON" in rows["mail"]["rejected"][0]["reason"]


@pytest.mark.parametrize(
    "document,error",
    [
        ({"id": ""}, "$.id: must not be empty"),
        ({"id": "a", "sender": {"email": "a@b.c"}}, "$: needs one of: required field 'text' is missing"),
        ({"id": "a", "sender": {"name": "x"}, "text": "t"}, "$.sender: needs one of"),
        ({"id": "a", "type": "status"}, "$: required field 'status' is missing"),
        (
            {"id": "a", "type": "status", "status": {"message_id": "m", "state": "lost"}},
            "$.status.state: expected one of",
        ),
        ({"id": "a", "sender": {"handle": "h"}, "attachments": [{"name": "n"}]}, "$.attachments[0]: needs one of"),
        ({"id": "a", "sender": {"handle": "h"}, "text": "t", "timestamp": "2026-11-24T09:00:00"}, "has no UTC offset"),
        ([], "$: expected an object, got an array"),
    ],
)
def test_schema_validator_names_the_field(document, error):
    with pytest.raises(schema.SchemaError) as raised:
        schema.validate(document)
    assert error in str(raised.value)


def test_schema_accepts_the_examples():
    for name in ("webform.json", "chat.json", "status.json"):
        schema.validate(json.loads((DATA / "generic" / name).read_text()))
