"""Every spool adapter against real provider payloads (tests/data/webhooks, see its README)."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from pathlib import Path

import pytest

from agentdesk.channels.webhook.adapters import Draft, Payload, Rejected, StatusUpdate, adapter_for

DATA = Path(__file__).resolve().parents[1] / "data" / "webhooks"
CORPUS = Path(__file__).resolve().parents[3] / "shared" / "corpus" / "webhooks"
WRITTEN = datetime(2026, 11, 24, 9, 0, tzinfo=timezone.utc)


def payload(path: Path, content_type: str | None = None, body: bytes | None = None) -> Payload:
    if content_type is None:
        content_type = {
            ".json": "application/json",
            ".form": "application/x-www-form-urlencoded",
            ".txt": "multipart/form-data; boundary=xYzZY",
        }[path.suffix]
    return Payload(path.name, content_type, path.read_bytes() if body is None else body, WRITTEN)


def json_payload(value) -> Payload:
    return Payload("x.json", "application/json", json.dumps(value).encode(), WRITTEN)


def only(items, kind=Draft):
    assert len(items) == 1 and isinstance(items[0], kind), items
    return items[0]


# --- WhatsApp Cloud API -----------------------------------------------------------------------

WHATSAPP_CASES = [
    (file.name, case, body)
    for file in sorted((DATA / "whatsapp").glob("*.json"))
    for case, body in json.loads(file.read_text()).items()
]


@pytest.mark.parametrize("file,case,body", WHATSAPP_CASES, ids=[f"{f}:{c}" for f, c, _ in WHATSAPP_CASES])
def test_whatsapp_every_real_update_is_handled(file, case, body):
    items = adapter_for("whatsapp")(json_payload(body))
    value = body["entry"][0]["changes"][0]["value"]
    field = body["entry"][0]["changes"][0]["field"]
    if file == "message_status.json":
        assert items and all(isinstance(i, StatusUpdate) for i in items)  # never an inbound message
    elif field != "messages" or value.get("messages", [{}])[0].get("type") in ("reaction", "edit", "revoke", "system"):
        assert items == []
    else:
        draft = only(items)
        assert draft.identities["phone"] == "+" + value["messages"][0]["from"]
        assert draft.external_id == value["messages"][0]["id"]
        assert draft.body_text
        assert draft.received_at == datetime.fromtimestamp(int(value["messages"][0]["timestamp"]), timezone.utc)


def test_whatsapp_text_message_fields():
    body = json.loads((DATA / "whatsapp" / "message.json").read_text())["text"]
    draft = only(adapter_for("whatsapp")(json_payload(body)))
    assert draft.body_text == "Body Text"
    assert draft.sender_name == "Test Name"
    assert draft.identities == {
        "phone": "+972987654321",
        "chat": "whatsapp:+972987654321",
        "social": "whatsapp:+972987654321",
    }
    assert draft.thread_key == "whatsapp:1122334455667:+972987654321"


def test_whatsapp_reply_keeps_context_and_failed_status_has_reason():
    reply = json.loads((DATA / "whatsapp" / "message.json").read_text())["reply"]
    assert only(adapter_for("whatsapp")(json_payload(reply))).in_reply_to
    failed = json.loads((DATA / "whatsapp" / "message_status.json").read_text())["failed"]
    status = only(adapter_for("whatsapp")(json_payload(failed)), StatusUpdate)
    assert status.state == "failed" and status.external_id


# --- Chatwoot ---------------------------------------------------------------------------------


def test_chatwoot_message_created():
    draft = only(adapter_for("chatwoot")(payload(DATA / "chatwoot" / "message_created.json")))
    assert draft.external_id == "chatwoot:1:118"
    assert draft.identities["chat"] == "chatwoot:1:14"
    assert draft.sender_name == "little-haze-776"
    assert draft.body_text == "hi"
    assert draft.thread_key == "chatwoot:1:10"
    assert draft.received_at == datetime(2021, 7, 23, 18, 2, 48, tzinfo=timezone.utc)


def test_chatwoot_other_events_and_our_own_messages_are_ignored():
    assert adapter_for("chatwoot")(payload(DATA / "chatwoot" / "webwidget_triggered.json")) == []
    outgoing = json.loads((DATA / "chatwoot" / "message_created.json").read_text())
    outgoing["message_type"] = "outgoing"
    assert adapter_for("chatwoot")(json_payload(outgoing)) == []
    with pytest.raises(Rejected, match="unknown event"):
        adapter_for("chatwoot")(json_payload({"hello": "world"}))


def test_chatwoot_contact_email_and_phone_are_identities():
    data = json.loads((DATA / "chatwoot" / "message_created.json").read_text())
    data["conversation"]["meta"]["sender"].update(email="Haze@Example.com", phone_number="+31 6 12345678")
    draft = only(adapter_for("chatwoot")(json_payload(data)))
    assert draft.identities["email"] == "haze@example.com"
    assert draft.identities["phone"] == "+31612345678"


# --- Postmark ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    ["postmark-inbound-test-payload.json", "postmark-inbound-test-payload-with-raw.json", "real-inbound-content.json"],
)
def test_postmark_check_and_real_variants(name):
    draft = only(adapter_for("postmark")(payload(DATA / "postmark" / name)))
    assert draft.identities == {"email": "support@postmarkapp.com"}
    assert draft.sender_name == "Postmarkapp Support"
    assert draft.subject == "Test subject"
    assert draft.body_text == "This is a test text body."
    date = json.loads((DATA / "postmark" / name).read_text())["Date"]
    assert draft.received_at == parsedate_to_datetime(date) and draft.received_at.tzinfo is not None
    assert draft.kind == "message" and not draft.bulk
    assert [a.filename for a in draft.attachments] == ["test.txt"]
    assert draft.attachments[0].data.startswith(b"This is attachment contents")


def test_postmark_real_payload_uses_the_message_id_header_for_threading():
    draft = only(adapter_for("postmark")(payload(DATA / "postmark" / "real-inbound-content.json")))
    assert draft.external_id == "CAF=real.inbound.4411@mail.gmail.com"
    assert draft.in_reply_to == "abc123@agentdesk.invalid"


def test_postmark_auto_reply_and_delivery_webhooks():
    data = json.loads((DATA / "postmark" / "real-inbound-content.json").read_text())
    data["Headers"].append({"Name": "Auto-Submitted", "Value": "auto-replied"})
    assert only(adapter_for("postmark")(json_payload(data))).kind == "auto_reply"
    bounce = {"RecordType": "Bounce", "MessageID": "m-1", "Description": "The server was unable to deliver"}
    assert only(adapter_for("postmark")(json_payload(bounce)), StatusUpdate).state == "failed"
    assert adapter_for("postmark")(json_payload({"RecordType": "Open", "MessageID": "m-1"})) == []


def test_postmark_bad_attachment_is_rejected_with_the_field():
    data = json.loads((DATA / "postmark" / "real-inbound-content.json").read_text())
    data["Attachments"][0]["Content"] = "%%% not base64 %%%"
    with pytest.raises(Rejected, match=r"Attachments\[0\]\.Content: not valid base64"):
        adapter_for("postmark")(json_payload(data))


# --- SendGrid Inbound Parse -------------------------------------------------------------------


def test_sendgrid_default_mode():
    draft = only(adapter_for("sendgrid")(payload(DATA / "sendgrid" / "default_data.txt")))
    assert draft.identities == {"email": "test@example.com"}
    assert draft.sender_name == "Example User"
    assert draft.subject == "Testing non-raw"
    assert draft.body_text == "Hello Twilio SendGrid!"
    assert "Hello Twilio SendGrid!" in draft.body_html_text
    assert draft.received_at == datetime(2016, 8, 11, 1, 10, 13, tzinfo=timezone.utc)
    assert draft.external_id == ""  # no Message-ID: the spool uses the payload hash


@pytest.mark.parametrize("name", ["raw_data.txt", "raw_data_with_attachments.txt"])
def test_sendgrid_raw_mode(name):
    draft = only(adapter_for("sendgrid")(payload(DATA / "sendgrid" / name)))
    assert draft.identities == {"email": "test@example.com"}
    assert "Hello Twilio SendGrid!" in draft.body_text
    if "attachments" in name:
        assert [a.content_type for a in draft.attachments] and all(a.data for a in draft.attachments)


def test_sendgrid_needs_multipart():
    with pytest.raises(Rejected, match="expected multipart/form-data"):
        adapter_for("sendgrid")(json_payload({"from": "x@y"}))


# --- Twilio -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["inbound_sms.form", "inbound_sms.json"])
def test_twilio_inbound_as_form_or_json(name):
    draft = only(adapter_for("twilio_sms")(payload(DATA / "twilio" / name)))
    assert draft.identities["phone"].startswith("+")
    assert draft.external_id.startswith("SM")
    assert draft.body_text
    assert draft.received_at == WRITTEN  # Twilio sends no time: the file's
    assert draft.thread_key == f"{draft.identities['phone']}>+14155550100"


def test_twilio_mms_media_is_a_linked_attachment():
    draft = only(adapter_for("twilio_sms")(payload(DATA / "twilio" / "inbound_mms.form")))
    assert draft.attachments[0].content_type == "image/jpeg"
    assert "https://api.twilio.com/" in draft.body_text


@pytest.mark.parametrize(
    "name,state", [("status_delivered.form", "delivered"), ("status_undelivered.form", "undelivered")]
)
def test_twilio_status_callbacks_are_never_messages(name, state):
    status = only(adapter_for("twilio_sms")(payload(DATA / "twilio" / name)), StatusUpdate)
    assert status.state == state
    if state == "undelivered":
        assert "30003" in status.error


def test_twilio_bad_phone_is_rejected():
    body = (DATA / "twilio" / "inbound_sms.form").read_bytes().replace(b"From=%2B14155550123", b"From=hello")
    with pytest.raises(Rejected, match="From: 'hello' is not a phone number"):
        adapter_for("twilio_sms")(payload(DATA / "twilio" / "inbound_sms.form", body=body))


# --- generic ----------------------------------------------------------------------------------


def test_generic_webform_with_attachments():
    draft = only(adapter_for("generic")(payload(DATA / "generic" / "webform.json")))
    assert draft.identities == {"email": "Greta@Velo.example", "phone": "+46 70 123 45 67"}
    assert draft.channel == "webform"
    assert draft.received_at == datetime(2026, 11, 24, 7, 12, tzinfo=timezone.utc)
    assert [a.filename for a in draft.attachments] == ["wheel.txt", "photo.jpg"]
    assert draft.attachments[0].data == b"bent spokes\n"
    assert "https://forms.example/uploads/77/photo.jpg" in draft.body_text
    assert "bent" in draft.body_html_text


def test_generic_chat_and_status():
    draft = only(adapter_for("generic")(payload(DATA / "generic" / "chat.json")))
    assert draft.identities["chat"] == "telegram:88123" and draft.thread_key == "telegram:chat:88123"
    status = only(adapter_for("generic")(payload(DATA / "generic" / "status.json")), StatusUpdate)
    assert (status.external_id, status.state, status.error) == (
        "abc123@agentdesk.invalid",
        "failed",
        "handset unreachable",
    )


# --- read in place: corpus files not copied (skip when the corpus is absent) -------------------


@pytest.mark.skipif(not CORPUS.is_dir(), reason="../shared/corpus/webhooks is not present on this machine")
def test_corpus_copies_are_byte_exact():
    pairs = [
        (DATA / "chatwoot" / "message_created.json", CORPUS / "chatwoot" / "message_created.json"),
        (DATA / "whatsapp" / "message.json", CORPUS / "whatsapp-cloud-api/tests/data/updates/message.json"),
        (
            DATA / "sendgrid" / "default_data.txt",
            CORPUS / "sendgrid-inbound-parse/sendgrid/helpers/inbound/sample_data/default_data.txt",
        ),
    ]
    for copy, original in pairs:
        assert copy.read_bytes() == original.read_bytes(), copy
