"""Valid inputs are accepted, on real spool files and a real SQLite database: a Twilio message to
our short code or alphanumeric sender id; a generic chat payload naming its sender by email (and
the reply addressed by email); Twilio and WhatsApp delivery callbacks that name our reply by the
provider's id, which the gateway's answer to our POST gave."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from urllib.parse import urlencode

import pytest
from conftest import BASIC_CONFIG, FIXED_NOW
from sqlmodel import select

from agentdesk import config
from agentdesk.channels.webhook import outbound, schema
from agentdesk.channels.webhook import spool as spooling
from agentdesk.domain import clocks, replies
from agentdesk.store import db
from agentdesk.store.models import Conversation, Customer, Identity, Message, Outbox
from agentdesk.sync import delivery
from agentdesk.sync.senders import SpoolSender
from agentdesk.sync.sources import spool as spool_source

DATA = Path(__file__).resolve().parents[1] / "data" / "webhooks"
FORM = "application/x-www-form-urlencoded"


class Gateway:
    """A loopback HTTP gateway that takes our replies and answers as a provider would."""

    def __init__(self, answer: dict):
        received = self.received = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                body = json.dumps(answer).encode()
                self.send_response(201)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/send"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class Desk:
    def __init__(self, root: Path, spools: str):
        self.root = root
        text = f'[database]\nurl = "sqlite:///{root / "agentdesk.db"}"\n[templates]\ndir = "{root / "templates"}"\n'
        self.settings = config.parse(
            text + BASIC_CONFIG + spools.replace("ROOT", str(root)), source=root / "config.toml"
        )
        self.engine = db.open_database(self.settings.database_url)
        self.policies = clocks.Policies.from_settings(self.settings)

    def source(self, name: str) -> spool_source.SpoolSource:
        spool = next(s for s in self.settings.spool if s.name == name)
        source = spool_source.SpoolSource(
            spool, engine=self.engine, policies=self.policies, now_fn=lambda: FIXED_NOW, durable_moves=False
        )
        source.ensure()
        return source

    def reply(self, body: str) -> None:
        with db.write_session(self.engine) as session:
            conversation = session.exec(select(Conversation)).one()
            replies.reply(
                session,
                conversation=conversation,
                body=body,
                agent="tester",
                agent_name="Terry",
                now=FIXED_NOW,
                policies=self.policies,
            )
            session.commit()

    def deliver(self, kind: str) -> delivery.DeliveryReport:
        return delivery.deliver_due(self.engine, {kind: SpoolSender(self.settings)}, now_fn=lambda: FIXED_NOW)

    def outbox(self) -> Outbox:
        with db.read_session(self.engine) as session:
            return session.exec(select(Outbox)).one()


def drop(source, body: bytes, content_type: str = "application/json") -> None:
    spooling.write_payload(source.path, body, content_type, durable=False)


@pytest.fixture
def make_desk(tmp_path):
    made = []

    def make(spools: str) -> Desk:
        desk = Desk(tmp_path, spools)
        made.append(desk)
        return desk

    yield make
    for desk in made:
        desk.engine.dispose()


def _sms(to: str, sid: str = "SM0001") -> bytes:
    return urlencode(
        {
            "MessageSid": sid,
            "From": "+14155550123",
            "To": to,
            "Body": "STOP? no, START",
            "SmsStatus": "received",
            "NumMedia": "0",
        }
    ).encode()


@pytest.mark.parametrize("to", ["384387", "12345", "AgentDesk", "NORTHWIND 1"])
def test_twilio_message_to_a_short_code_or_sender_id_is_stored(make_desk, to):
    desk = make_desk('[[spool]]\nname = "sms"\npath = "ROOT/sms"\nadapter = "twilio_sms"\nkind = "sms"\n')
    source = desk.source("sms")
    drop(source, _sms(to), FORM)
    result = source.poll()
    assert (result.stored, result.rejected) == (1, [])
    with db.read_session(desk.engine) as session:
        message = session.exec(select(Message)).one()
        assert to.lower() in message.recipients  # recipients are stored lower-cased


@pytest.mark.parametrize("to", ["hello world!!", "+1", "123456789012"])
def test_twilio_message_to_nothing_like_a_number_is_rejected_with_the_reason(make_desk, to):
    desk = make_desk('[[spool]]\nname = "sms"\npath = "ROOT/sms"\nadapter = "twilio_sms"\nkind = "sms"\n')
    source = desk.source("sms")
    drop(source, _sms(to), FORM)
    (rejected,) = source.poll().rejected
    assert "short code or an alphanumeric sender id" in rejected[1]


CHAT = """[[spool]]
name = "chat"
path = "ROOT/chat"
adapter = "generic"
kind = "chat"
outbound = { spool = "ROOT/chat-out" }

[[spool]]
name = "forms"
path = "ROOT/forms"
adapter = "generic"
kind = "webform"
"""


def test_a_chat_payload_naming_its_sender_by_email_is_stored_and_linked(make_desk):
    desk = make_desk(CHAT)
    forms, chat = desk.source("forms"), desk.source("chat")
    drop(
        forms,
        json.dumps({"id": "f1", "text": "my order", "sender": {"email": "Anke@Example.com", "name": "Anke"}}).encode(),
    )
    assert forms.poll().stored == 1
    event = {
        "id": "c1",
        "kind": "chat",
        "sender": {"email": "anke@example.com", "phone": "+31 6 12345678", "name": "Anke"},
        "conversation": {"thread_key": "site-chat:991"},
        "text": "still waiting for it",
    }
    schema.validate(event)  # valid by our own schema
    drop(chat, json.dumps(event).encode())
    result = chat.poll()
    assert (result.stored, result.rejected) == (1, [])
    with db.read_session(desk.engine) as session:
        (customer,) = session.exec(select(Customer)).all()  # the web form's customer: one person
        kinds = {(i.kind, i.address) for i in session.exec(select(Identity))}
        assert kinds == {("email", "anke@example.com"), ("phone", "+31612345678")}
        chat_conversation = session.exec(select(Conversation).where(Conversation.channel == "chat")).one()
        assert chat_conversation.customer_id == customer.id
    # The reply goes to the chat gateway addressed by what the customer wrote under: the email.
    with db.write_session(desk.engine) as session:
        replies.reply(
            session,
            conversation=session.get(Conversation, chat_conversation.id),
            body="On its way",
            agent="tester",
            agent_name="Terry",
            now=FIXED_NOW,
            policies=desk.policies,
        )
        session.commit()
    assert desk.deliver("chat").sent == 1
    (sent,) = (desk.root / "chat-out" / "new").iterdir()
    document = json.loads(sent.read_text())
    schema.validate(document)
    assert document["recipient"] == {"email": "anke@example.com", "name": "Anke"}
    assert document["conversation"]["thread_key"] == "site-chat:991"


def test_a_chat_payload_with_no_sender_identity_is_rejected(make_desk):
    desk = make_desk(CHAT)
    chat = desk.source("chat")
    drop(chat, json.dumps({"id": "c2", "kind": "chat", "sender": {"name": "Nobody"}, "text": "hi"}).encode())
    (rejected,) = chat.poll().rejected
    assert rejected[1]


def test_twilio_status_callback_finds_the_reply_by_its_message_sid(make_desk):
    gateway = Gateway({"sid": "SMprovider000000000000000000000001", "status": "queued"})
    try:
        desk = make_desk(
            '[[spool]]\nname = "sms"\npath = "ROOT/sms"\nadapter = "twilio_sms"\nkind = "sms"\n'
            f'secret_command = "echo s3cret"\noutbound = {{ url = "{gateway.url}" }}\n'
        )
        source = desk.source("sms")
        drop(source, _sms("+14155550100"), FORM)
        assert source.poll().stored == 1
        desk.reply("Your order ships today.")
        assert desk.deliver("sms").sent == 1
        assert gateway.received and gateway.received[0]["text"].startswith("Your order ships today.")
    finally:
        gateway.close()
    assert desk.outbox().provider_id == "SMprovider000000000000000000000001"
    callback = urlencode(
        {
            "MessageSid": "SMprovider000000000000000000000001",
            "MessageStatus": "undelivered",
            "ErrorCode": "30003",
            "To": "+14155550123",
            "From": "+14155550100",
        }
    ).encode()
    drop(source, callback, FORM)
    result = source.poll()
    assert (result.stored, result.statuses) == (0, 1)
    row = desk.outbox()
    assert row.state == "failed" and "30003" in row.last_error


def test_whatsapp_status_callback_finds_the_reply_by_its_wamid(make_desk):
    gateway = Gateway(
        {
            "messaging_product": "whatsapp",
            "contacts": [{"input": "972987654321"}],
            "messages": [{"id": "wamid.HBgLprovider"}],
        }
    )
    try:
        desk = make_desk(
            '[[spool]]\nname = "wa"\npath = "ROOT/wa"\nadapter = "whatsapp"\nkind = "chat"\n'
            f'secret_command = "echo s3cret"\noutbound = {{ url = "{gateway.url}" }}\n'
        )
        source = desk.source("wa")
        drop(source, json.dumps(json.loads((DATA / "whatsapp" / "message.json").read_text())["text"]).encode())
        assert source.poll().stored == 1
        desk.reply("Hello!")
        assert desk.deliver("chat").sent == 1
    finally:
        gateway.close()
    assert desk.outbox().provider_id == "wamid.HBgLprovider"
    status = json.loads((DATA / "whatsapp" / "message_status.json").read_text())["delivered"]
    status["entry"][0]["changes"][0]["value"]["statuses"][0]["id"] = "wamid.HBgLprovider"
    drop(source, json.dumps(status).encode())
    assert source.poll().statuses == 1
    assert desk.outbox().state == "sent"
    failed = json.loads((DATA / "whatsapp" / "message_status.json").read_text())["failed"]
    failed["entry"][0]["changes"][0]["value"]["statuses"][0]["id"] = "wamid.HBgLprovider"
    drop(source, json.dumps(failed).encode())
    source.poll()
    row = desk.outbox()
    assert row.state == "failed" and row.last_error


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (b'{"provider_id": "gw-1"}', "gw-1"),
        (b'{"sid": "SM1"}', "SM1"),
        (b'{"messages": [{"id": "wamid.1"}]}', "wamid.1"),
        (b"ok", ""),
        (b"[]", ""),
        (b'{"id": 5}', ""),
    ],
)
def test_provider_id_of_the_gateways_answer(answer, expected):
    assert outbound.provider_id_of(answer) == expected
