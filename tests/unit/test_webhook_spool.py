"""Spool ingest on real files and a real SQLite database: exactly once, nothing lost, reasons kept."""

from __future__ import annotations

import json
import os
from datetime import timedelta
from pathlib import Path

import pytest
from conftest import BASIC_CONFIG, FIXED_NOW
from sqlmodel import func, select

from agentdesk import config, ingest
from agentdesk.channels.base import DeliveryError
from agentdesk.channels.webhook import outbound, schema
from agentdesk.channels.webhook import spool as spooling
from agentdesk.domain import clocks, merge, replies
from agentdesk.store import db, queries
from agentdesk.store.models import Conversation, Customer, Event, Identity, Message, Outbox, SyncState
from agentdesk.sync import delivery
from agentdesk.sync.senders import SpoolSender
from agentdesk.sync.sources import spool as spool_source

DATA = Path(__file__).resolve().parents[1] / "data" / "webhooks"


class Env:
    def __init__(self, root: Path, spools: str):
        self.root = root
        text = f'[database]\nurl = "sqlite:///{root / "agentdesk.db"}"\n[templates]\ndir = "{root / "templates"}"\n'
        self.settings = config.parse(
            text + BASIC_CONFIG + spools.replace("ROOT", str(root)), source=root / "config.toml"
        )
        self.engine = db.open_database(self.settings.database_url)
        self.policies = clocks.Policies.from_settings(self.settings)

    def source(self, name: str, **kwargs) -> spool_source.SpoolSource:
        spool = next(s for s in self.settings.spool if s.name == name)
        source = spool_source.SpoolSource(
            spool, engine=self.engine, policies=self.policies, now_fn=lambda: FIXED_NOW, durable_moves=False, **kwargs
        )
        source.ensure()
        return source

    def count(self, model, *where) -> int:
        with db.read_session(self.engine) as session:
            return session.exec(select(func.count()).select_from(model).where(*where)).one()


SPOOLS = """
[[spool]]
name = "sms"
path = "ROOT/sms"
adapter = "twilio_sms"
kind = "sms"

[[spool]]
name = "forms"
path = "ROOT/forms"
adapter = "generic"
kind = "webform"

[[spool]]
name = "mail"
path = "ROOT/mail"
adapter = "postmark"
kind = "email"
max_bytes = 4096

[[spool]]
name = "wa"
path = "ROOT/wa"
adapter = "whatsapp"
kind = "chat"
outbound = { spool = "ROOT/wa-out" }
"""


@pytest.fixture
def env(tmp_path):
    environment = Env(tmp_path, SPOOLS)
    yield environment
    environment.engine.dispose()


def drop(source: spool_source.SpoolSource, body: bytes, content_type: str = "application/json") -> str:
    return spooling.write_payload(source.path, body, content_type, durable=False)


def sms(body: str, sid: str, sender: str = "+14155550123") -> bytes:
    from urllib.parse import urlencode

    return urlencode(
        {
            "MessageSid": sid,
            "From": sender,
            "To": "+14155550100",
            "Body": body,
            "SmsStatus": "received",
            "NumMedia": "0",
        }
    ).encode()


FORM = "application/x-www-form-urlencoded"


def test_files_are_ingested_once_and_moved_to_cur(env):
    source = env.source("sms")
    names = [drop(source, sms(f"message {i}", f"SM{i:032d}"), FORM) for i in range(5)]
    result = source.poll()
    assert (result.stored, result.files, result.rejected, result.failed) == (5, 5, [], [])
    assert sorted(os.listdir(source.path / "cur")) == sorted(names)
    assert os.listdir(source.path / "new") == []
    assert env.count(Message) == 5
    # one SMS number, one phone pair: one customer, one conversation threaded by the provider key
    assert env.count(Customer) == 1 and env.count(Conversation) == 1
    with db.read_session(env.engine) as session:
        assert {i.address for i in session.exec(select(Identity))} == {"+14155550123"}
        assert session.exec(select(SyncState).where(SyncState.source == "sms")).one().last_sync_at is not None
    assert source.poll().files == 0


def test_the_same_payload_delivered_twice_is_one_message(env):
    source = env.source("sms")
    drop(source, sms("hello", "SM1"), FORM)
    drop(source, sms("hello", "SM1"), FORM)  # the provider retried
    result = source.poll()
    assert (result.stored, result.duplicates, result.files) == (1, 1, 2)
    assert env.count(Message) == 1


def test_crash_between_storing_and_moving_replays_without_doubling(env, monkeypatch):
    source = env.source("sms")
    names = [drop(source, sms(f"m{i}", f"SM{i}"), FORM) for i in range(3)]

    class Crash(BaseException):
        pass

    def die(*_args, **_kwargs):
        raise Crash("power cut after the commit, before the rename")

    monkeypatch.setattr(source, "_move", die)
    with pytest.raises(Crash):
        source.poll()
    # the messages are committed, the files still in new/
    assert env.count(Message) == 3
    assert sorted(os.listdir(source.path / "new")) == sorted(names)
    monkeypatch.undo()
    replay = env.source("sms").poll()  # a new process after the restart
    assert (replay.stored, replay.duplicates, replay.files) == (0, 3, 3)
    assert env.count(Message) == 3
    assert os.listdir(source.path / "new") == []


def test_crash_before_the_commit_stores_nothing_and_loses_nothing(env, monkeypatch):
    source = env.source("sms")
    drop(source, sms("one", "SMa"), FORM)
    drop(source, sms("two", "SMb"), FORM)
    calls = {"n": 0}
    real = ingest.ingest_message

    def die_on_second(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt  # the process is killed in the middle of the batch
        return real(*args, **kwargs)

    real_batch = ingest.ingest_batch

    def die_after_the_first(session, messages, **kwargs):  # files are stored in one batch
        real_batch(session, list(messages)[:1], **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(ingest, "ingest_message", die_on_second)
    monkeypatch.setattr(ingest, "ingest_batch", die_after_the_first)
    with pytest.raises(KeyboardInterrupt):
        source.poll()
    assert env.count(Message) == 0 and len(os.listdir(source.path / "new")) == 2
    monkeypatch.undo()
    assert source.poll().stored == 2 and env.count(Message) == 2


def test_a_zoo_of_bad_payloads_ends_in_rejected_with_reasons(env):
    forms, mail = env.source("forms"), env.source("mail")
    cases = {
        "invalid json": (forms, b'{"id": "x", ', "application/json", "invalid JSON: Expecting"),
        "not utf-8": (forms, b"\xff\xfe{}", "application/json", "invalid JSON: not UTF-8"),
        "schema: missing sender": (
            forms,
            json.dumps({"id": "a", "text": "hi"}).encode(),
            "application/json",
            "schema error: $: required field 'sender' is missing",
        ),
        "schema: wrong type": (
            forms,
            json.dumps({"id": "b", "text": "hi", "sender": {"email": 42}}).encode(),
            "application/json",
            "schema error: $.sender.email: expected a string, got a number",
        ),
        "schema: unknown field": (
            forms,
            json.dumps({"id": "c", "text": "x", "sender": {"email": "a@b.c"}, "colour": 1}).encode(),
            "application/json",
            "unknown field 'colour'",
        ),
        "schema: bad time": (
            forms,
            json.dumps({"id": "d", "text": "x", "sender": {"email": "a@b.c"}, "timestamp": "yesterday"}).encode(),
            "application/json",
            "$.timestamp: expected an RFC 3339 time",
        ),
        "no identity at all": (
            forms,
            json.dumps({"id": "e", "text": "x", "sender": {"name": "Nobody"}}).encode(),
            "application/json",
            "$.sender: needs one of",
        ),
        "bad base64": (
            forms,
            json.dumps(
                {"id": "f", "text": "x", "sender": {"email": "a@b.c"}, "attachments": [{"name": "a", "base64": "***"}]}
            ).encode(),
            "application/json",
            "$.attachments[0].base64: not valid base64",
        ),
        "form to generic": (forms, b"a=b", FORM, "the generic adapter takes JSON"),
        "over the limit": (
            mail,
            json.dumps({"From": "a@b.c", "TextBody": "x" * 5000}).encode(),
            "application/json",
            "over the size limit: 50",
        ),
        "unknown shape": (
            mail,
            json.dumps({"hello": "world"}).encode(),
            "application/json",
            "no From/FromFull; not a Postmark inbound webhook",
        ),
        "array": (mail, b"[1, 2]", "application/json", "expected a JSON object, got an array"),
    }
    written = {
        label: (source, drop(source, body, ctype), reason) for label, (source, body, ctype, reason) in cases.items()
    }
    # files that are not payloads at all, dropped by a careless script
    (forms.path / "new" / "notes.txt").write_text("hello")
    (forms.path / "new" / "broken.http").write_bytes(b"no header here")
    forms_result, mail_result = forms.poll(), mail.poll()
    assert forms_result.stored == mail_result.stored == 0
    for label, (source, name, reason) in written.items():
        sidecar = source.path / "rejected" / (name + ".error")
        assert (source.path / "rejected" / name).exists(), label
        assert reason in sidecar.read_text(), (label, sidecar.read_text())
    assert "unknown file type '.txt'" in (forms.path / "rejected" / "notes.txt.error").read_text()
    assert "without the blank line" in (forms.path / "rejected" / "broken.http.error").read_text()
    assert env.count(Message) == 0
    assert os.listdir(forms.path / "new") == [] and os.listdir(mail.path / "new") == []
    assert len(spooling.rejected_files(forms.path)) == 11 and len(spooling.rejected_files(mail.path)) == 3


def test_retry_reingests_rejected_files_after_a_fix(env):
    forms = env.source("forms")
    name = drop(forms, sms("hi", "SMr1"), FORM)
    assert forms.poll().rejected  # a Twilio form body on a spool that takes the generic JSON
    # the fix: the spool is Twilio's (an sms spool); same directory
    spool = next(s for s in env.settings.spool if s.name == "forms")
    spool.adapter, spool.kind = "twilio_sms", "sms"
    result = env.source("forms").retry()
    assert (result.stored, result.rejected) == (1, [])
    assert (forms.path / "cur" / name).exists()
    assert not (forms.path / "rejected" / name).exists()
    kept = list((forms.path / "rejected" / "retried").iterdir())
    assert len(kept) == 1 and kept[0].name.endswith(".error")  # the old reason is kept, not deleted


def test_whatsapp_statuses_update_our_outbox_and_never_become_messages(env):
    wa = env.source("wa")
    bodies = json.loads((DATA / "whatsapp" / "message.json").read_text())
    drop(wa, json.dumps(bodies["text"]).encode())
    assert wa.poll().stored == 1
    with db.write_session(env.engine) as session:
        conversation = session.exec(select(Conversation)).one()
        reply = replies.reply(
            session,
            conversation=conversation,
            body="Hello!",
            agent="tester",
            agent_name="Terry",
            now=FIXED_NOW,
            policies=env.policies,
        )
        reply.external_id = "wamid.ours1"
        session.add(reply)
        session.commit()
    status = json.loads((DATA / "whatsapp" / "message_status.json").read_text())["failed"]
    status["entry"][0]["changes"][0]["value"]["statuses"][0]["id"] = "wamid.ours1"
    drop(wa, json.dumps(status).encode())
    result = wa.poll()
    assert (result.stored, result.statuses) == (0, 1)
    assert env.count(Message, Message.direction == "inbound") == 1
    with db.read_session(env.engine) as session:
        row = session.exec(select(Outbox)).one()
        assert row.state == "failed" and row.last_error


def test_email_then_sms_is_one_customer_when_an_identity_links_them(env):
    mail, forms, sms_spool = env.source("mail"), env.source("forms"), env.source("sms")
    drop(mail, (DATA / "postmark" / "real-inbound-content.json").read_bytes())
    assert mail.poll().stored == 1
    # a web form gives both the email and the phone: the phone joins the email customer
    drop(
        forms,
        json.dumps(
            {
                "id": "f1",
                "text": "my number",
                "sender": {"email": "support@postmarkapp.com", "phone": "+1 415 555 0123"},
            }
        ).encode(),
    )
    assert forms.poll().stored == 1
    drop(sms_spool, sms("it's me again, by text", "SMlinked", sender="+14155550123"), FORM)
    assert sms_spool.poll().stored == 1
    assert env.count(Customer) == 1
    with db.read_session(env.engine) as session:
        customer = session.exec(select(Customer)).one()
        history = queries.customer_history(session=session, customer_id=customer.id)
        assert {c.channel for c in history} == {"email", "webform", "sms"}
        assert session.exec(select(Event).where(Event.action == "identity_linked")).one()


def test_merge_and_unmerge_are_reversible_and_audited(env):
    mail, sms_spool = env.source("mail"), env.source("sms")
    drop(mail, (DATA / "postmark" / "real-inbound-content.json").read_bytes())
    drop(sms_spool, sms("hi from my phone", "SMm1"), FORM)
    mail.poll(), sms_spool.poll()
    assert env.count(Customer) == 2
    with db.read_session(env.engine) as session:
        email_conv = session.exec(select(Conversation).where(Conversation.channel == "email")).one()
        sms_conv = session.exec(select(Conversation).where(Conversation.channel == "sms")).one()
        before = {c.id: c.customer_id for c in session.exec(select(Conversation))}
    with db.write_session(env.engine) as session:
        outcome = merge.merge_by_refs(
            session, ref_a=f"AD-{email_conv.id}", ref_b=f"AD-{sms_conv.id}", agent="tester", now=FIXED_NOW
        )
        session.commit()
    with db.read_session(env.engine) as session:
        history = queries.customer_history(session=session, customer_id=outcome.kept_id)
        assert {c.id for c in history} == {email_conv.id, sms_conv.id}
        assert session.get(Customer, outcome.merged_id).merged_into_id == outcome.kept_id
    # a new SMS after the merge lands with the merged customer (the phone identity moved)
    drop(sms_spool, sms("one more", "SMm2", sender="+14155550123"), FORM)
    sms_spool.poll()
    with db.write_session(env.engine) as session:
        with pytest.raises(Exception, match="already belong"):
            merge.merge_by_refs(
                session, ref_a=f"AD-{email_conv.id}", ref_b=f"AD-{sms_conv.id}", agent="tester", now=FIXED_NOW
            )
        session.rollback()
        merge.unmerge_by_ref(session, ref=f"AD-{sms_conv.id}", agent="tester", now=FIXED_NOW + timedelta(minutes=5))
        session.commit()
    with db.read_session(env.engine) as session:
        after = {c.id: c.customer_id for c in session.exec(select(Conversation))}
        assert {k: after[k] for k in before} == before
        assert session.get(Customer, outcome.merged_id).merged_into_id is None
        phone = session.exec(select(Identity).where(Identity.kind == "phone")).one()
        assert phone.customer_id == outcome.merged_id
        actions = [e.action for e in session.exec(select(Event).where(Event.action.like("customer_%merge")))]
        assert actions == ["customer_merge", "customer_unmerge"]


def test_outbound_spool_gets_one_valid_json_file_per_reply(env):
    wa = env.source("wa")
    drop(wa, json.dumps(json.loads((DATA / "whatsapp" / "message.json").read_text())["text"]).encode())
    wa.poll()
    with db.write_session(env.engine) as session:
        conversation = session.exec(select(Conversation)).one()
        replies.reply(
            session,
            conversation=conversation,
            body="We're on it.",
            agent="tester",
            agent_name="Terry",
            now=FIXED_NOW,
            policies=env.policies,
        )
        session.commit()
    senders = {"chat": SpoolSender(env.settings)}
    result = delivery.deliver_due(env.engine, senders, now_fn=lambda: FIXED_NOW)
    assert (result.sent, result.failed) == (1, 0)
    files = list((env.root / "wa-out" / "new").iterdir())
    assert len(files) == 1
    document = json.loads(files[0].read_text())
    schema.validate(document)
    assert document["recipient"]["handle"] == "whatsapp:+972987654321"
    assert document["conversation"]["thread_key"].startswith("whatsapp:")
    assert document["in_reply_to"] == "wamid.xyzxyz"
    assert document["text"].startswith("We're on it.")
    assert delivery.deliver_due(env.engine, senders, now_fn=lambda: FIXED_NOW).sent == 0  # sent once


def test_outbound_failures_back_off_then_fail_visibly(env, monkeypatch):
    wa = env.source("wa")
    drop(wa, json.dumps(json.loads((DATA / "whatsapp" / "message.json").read_text())["text"]).encode())
    wa.poll()
    with db.write_session(env.engine) as session:
        conversation = session.exec(select(Conversation)).one()
        replies.reply(
            session,
            conversation=conversation,
            body="Hi",
            agent="tester",
            agent_name="Terry",
            now=FIXED_NOW,
            policies=env.policies,
        )
        session.commit()

    def broken(_document):
        raise DeliveryError("gateway down")

    monkeypatch.setattr(outbound, "transport_for", lambda spool, **_kwargs: broken)  # the gateway is down
    senders = {"chat": SpoolSender(env.settings)}
    now = FIXED_NOW
    for attempt in range(1, delivery.MAX_ATTEMPTS + 1):
        result = delivery.deliver_due(env.engine, senders, now_fn=lambda at=now: at)
        assert result.retrying + result.failed == 1
        assert delivery.deliver_due(env.engine, senders, now_fn=lambda at=now: at).retrying == 0  # not due yet
        with db.read_session(env.engine) as session:
            row = session.exec(select(Outbox)).one()
        assert row.attempts == attempt and row.last_error == "gateway down"
        if row.state == "queued":
            assert row.next_attempt_at - now == delivery.backoff_after(attempt)
            now = row.next_attempt_at
    assert row.state == "failed"
    with db.read_session(env.engine) as session:
        assert session.exec(select(Event).where(Event.action == "delivery_failed")).one()


def test_schema_document_matches_docs():
    docs = Path(__file__).resolve().parents[2] / "docs" / "webhook-schema.json"
    assert docs.read_text(encoding="utf-8") == schema.schema_document()
