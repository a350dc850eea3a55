"""What the parser keeps of hostile header fields and of a message too big to hold: every capped
field ends with the cut mark, the view's digests and sizes are the whole message's."""

from __future__ import annotations

import base64
import hashlib
import io
import random
from datetime import datetime, timezone

import pytest
from hostile.big_mail import MB, attachment_and_html, many_parts, text_body

from agentdesk.channels.email import mime, spooled
from agentdesk.channels.email.content import email_content_hash, email_content_hash_of_file

AT = datetime(2026, 1, 5, 8, 0, tzinfo=timezone.utc)


def parse(raw: bytes):
    return mime.parse_message(raw, source="support", received_at=AT)


def mail(**headers: str) -> bytes:
    fields = {
        "From": "Ann <ann@example.com>",
        "To": "support@example.com",
        "Subject": "Hello",
        "Message-ID": "<m1@example.com>",
        **headers,
    }
    return ("".join(f"{name}: {value}\r\n" for name, value in fields.items()) + "\r\nBody\r\n").encode()


@pytest.mark.parametrize(
    "field, header, value, limit",
    [
        ("subject", "Subject", "x" * 1_000_000, mime.MAX_SUBJECT_CHARS),
        ("sender_name", "From", '"' + "N" * 50_000 + '" <ann@example.com>', mime.MAX_NAME_CHARS),
        ("sender_address", "From", "a" * 5_000 + "@example.com", mime.MAX_ADDRESS_CHARS),
        ("external_id", "Message-ID", "<" + "i" * 100_000 + "@example.com>", mime.MAX_ID_CHARS),
        ("in_reply_to", "In-Reply-To", "<" + "p" * 100_000 + "@example.com>", mime.MAX_ID_CHARS),
    ],
)
def test_a_long_header_field_is_cut_with_a_mark(field, header, value, limit):
    message = parse(mail(**{header: value}))
    kept = getattr(message, field)
    assert len(kept) == limit
    assert kept.endswith(mime.CUT_MARK)


def test_recipient_and_reference_lists_are_capped():
    recipients = ", ".join(f"r{n}@example.com" for n in range(5_000)) + ", " + "l" * 4_000 + "@example.com"
    references = " ".join(f"<ref{n}@example.com>" for n in range(5_000))
    message = parse(mail(To=recipients, References=references))
    assert len(message.recipients) == mime.MAX_RECIPIENTS
    assert len(message.references) == mime.MAX_REFERENCES
    # the thread's root and the latest ids are the ones threading needs
    assert message.references[0] == "ref0@example.com" and message.references[-1] == "ref4999@example.com"
    long_one = parse(mail(To="l" * 4_000 + "@example.com")).recipients[0]
    assert len(long_one) == mime.MAX_ADDRESS_CHARS and long_one.endswith(mime.CUT_MARK)


def test_kept_headers_are_capped():
    message = parse(mail(**{"List-Id": "<" + "l" * 10_000 + ">"}))
    assert len(message.headers["list-id"]) == 2_000 and message.headers["list-id"].endswith(mime.CUT_MARK)


def test_ordinary_fields_are_untouched():
    message = parse(mail())
    assert (message.subject, message.sender_name, message.sender_address, message.external_id) == (
        "Hello",
        "Ann",
        "ann@example.com",
        "m1@example.com",
    )


@pytest.mark.parametrize("piece", [64, 65, 100, 4096])
def test_the_streamed_content_hash_is_the_content_hash(piece):
    rng = random.Random(piece)
    alphabet = [
        b"\r",
        b"\n",
        b"\r\n",
        b" ",
        b"\t",
        b"a",
        b"Received: x",
        b"Subject: y",
        b":",
        b"\n\n",
        b"\r\n\r\n",
        b"Return-Path: <>",
        b"b" * 7,
        b"x" * 150,
    ]
    for _ in range(3_000):
        raw = b"".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 60)))
        assert email_content_hash_of_file(io.BytesIO(raw), piece=piece) == email_content_hash(raw), raw


@pytest.mark.parametrize("build", [attachment_and_html, text_body, many_parts])
def test_a_big_message_is_parsed_through_a_bounded_view(build):
    raw = build(12 * MB)
    view = spooled.build_view(io.BytesIO(raw))
    assert len(view.data) < spooled.VIEW_BYTES + spooled.HEADER_BYTES + spooled.PART_HEADER_BYTES + 64 * 1024
    message = parse(raw)
    assert message.raw is raw
    assert message.content_hash == email_content_hash(raw)
    assert message.subject and message.sender_address.startswith("big")
    assert "the original is kept in full" in message.parse_error


def test_a_cut_attachment_carries_the_whole_size_and_digest():
    data = random.Random(3).randbytes(6 * MB)
    raw = (
        b"From: a@example.com\r\nSubject: file\r\nMessage-ID: <f@x>\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nsee\r\n"
        b"--b\r\nContent-Type: application/pdf; name=a.pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        + base64.encodebytes(data).replace(b"\n", b"\r\n")
        + b"--b--\r\n"
    )
    message = parse(raw)
    [attachment] = message.attachments
    assert (attachment.filename, attachment.size, attachment.sha256, attachment.data) == (
        "a.pdf",
        len(data),
        hashlib.sha256(data).hexdigest(),
        b"",
    )
    assert message.body_text == "see"


def test_a_forged_cut_header_in_ordinary_mail_means_nothing():
    raw = (
        b"From: a@example.com\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
        b"--b\r\nContent-Type: application/pdf; name=a.pdf\r\nX-Agentdesk-Cut: 0-0\r\n\r\nPDF\r\n--b--\r\n"
    )
    [attachment] = parse(raw).attachments
    assert attachment.data == b"PDF" and not isinstance(attachment, spooled.MeasuredAttachment)
