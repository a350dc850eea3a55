"""Raw mail to `InboundMessage`: never raises, decodes what the world sends, classifies kinds.

Two kinds of material (see /work/shared/corpus/README.md for the licence rule):
- tests/data/email: permissively licensed files copied with their SOURCE.txt; these tests
  always run.
- ../shared/corpus/email: the whole corpus read in place (it includes GPL and unlicensed sets
  that may not be copied); those tests skip when the folder is absent.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

from agentdesk.channels.base import InboundMessage
from agentdesk.channels.email.mime import MAX_BODY_CHARS, bounced_message_id, parse_message

DATA = Path(__file__).resolve().parents[1] / "data" / "email"
CORPUS = Path(__file__).resolve().parents[3] / "shared" / "corpus" / "email"
if not CORPUS.is_dir():
    CORPUS = Path("/work/shared/corpus/email")
NOW = datetime(2026, 3, 2, 9, 30, tzinfo=timezone.utc)
ESC = "\x1b"


def parse(raw: bytes, **kwargs) -> InboundMessage:
    return parse_message(raw, source="support", received_at=NOW, **kwargs)


def data(path: str) -> InboundMessage:
    return parse((DATA / path).read_bytes())


def _corpus_files() -> list[Path]:
    if not CORPUS.is_dir():
        return []
    skip_suffixes = {".js", ".json", ".md"}
    return sorted(
        p for p in CORPUS.rglob("*") if p.is_file() and p.name != "SOURCE.txt" and p.suffix not in skip_suffixes
    )


CORPUS_FILES = _corpus_files()
needs_corpus = pytest.mark.skipif(
    not CORPUS_FILES,
    reason=f"shared corpus not found at {CORPUS}; the read-in-place corpus tests need it",
)


# --- every message parses ----------------------------------------------------------------------


@needs_corpus
@pytest.mark.parametrize(
    "path", CORPUS_FILES, ids=[str(p.relative_to(CORPUS)) for p in CORPUS_FILES] if CORPUS_FILES else None
)
def test_every_corpus_message_parses(path: Path) -> None:
    raw = path.read_bytes()
    started = time.perf_counter()
    message = parse(raw)
    elapsed = time.perf_counter() - started
    assert isinstance(message, InboundMessage)
    assert message.raw == raw
    assert message.external_id
    assert message.received_at == NOW
    assert message.kind in ("message", "auto_reply", "bounce")
    for text in (message.subject, message.body_text, message.body_html_text, message.sender_name):
        assert ESC not in text and "\r" not in text and "\x00" not in text
    assert elapsed < 5, f"{path.name} took {elapsed:.1f}s"


@needs_corpus
def test_whole_corpus_in_reasonable_time() -> None:
    started = time.perf_counter()
    for path in CORPUS_FILES:
        parse(path.read_bytes())
    assert time.perf_counter() - started < 60


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\x00\xff\xfe garbage",
        b"Subject: only headers",
        b"From: \n\n",
        b"Content-Type: multipart/mixed\n\nno boundary at all",
        b"Content-Type: multipart/mixed; boundary=x\n\n--x\nContent-Type: text/plain; charset=fakescii\n\nhi\n",
        b"Subject: =?utf-8?B?!!!notbase64?=\nFrom: =?x-unknown?Q?=FF?= <a@b>\n\nbody",
        b"Content-Transfer-Encoding: base64\n\n@@@@not base64",
        b"To: unlisted-recipients:; (no To-header on input)\nFrom: A <a@example.com>\n\nx",
        # Nesting far deeper than any real message.
        b"Content-Type: multipart/mixed; boundary=b\n\n"
        + b"".join(b"--b\nContent-Type: multipart/mixed; boundary=b\n\n" for _ in range(3000)),
    ],
)
def test_never_raises_on_hostile_input(raw: bytes) -> None:
    message = parse(raw)
    assert message.raw == raw
    assert message.external_id


def test_internal_failure_gives_a_flagged_record(monkeypatch: pytest.MonkeyPatch) -> None:
    from agentdesk.channels.email import mime

    def boom(*args, **kwargs):
        raise RuntimeError("parser exploded")

    monkeypatch.setattr(mime, "_read_body", boom)
    raw = b"Message-ID: <x@y>\nFrom: Ann <ANN@Example.com>\nSubject: Hi\n\nbody"
    message = parse(raw)
    assert "parser exploded" in message.parse_error
    assert message.raw == raw
    assert message.external_id == "x@y"
    assert message.sender_address == "ann@example.com"
    assert message.subject == "Hi"


# --- fields --------------------------------------------------------------------------------


SIMPLE = (
    b"Return-Path: <bounce@example.com>\r\n"
    b"Message-ID:   <abc.123@mail.example.com>  \r\n"
    b"From: =?utf-8?q?Jos=C3=A9_Garc=C3=ADa?= <Jose.Garcia@Example.COM>\r\n"
    b"To: Support <Support@Example.com>, other@example.org\r\n"
    b'Cc: "Boss" <BOSS@example.com>\r\n'
    b"Subject: =?utf-8?B?UmU6IGNhZsOp?= \x1b[31malert\r\n"
    b"In-Reply-To: <parent@example.com> (Support's message)\r\n"
    b"References: <root@example.com>\r\n <parent@example.com>\r\n"
    b"Auto-Submitted: no\r\n"
    b"Date: Mon, 2 Mar 2026 08:00:00 +0000\r\n"
    b"\r\n"
    b"Hello\r\nthere\r\n"
)


def test_fields_of_a_plain_message() -> None:
    message = parse(SIMPLE, channel="email")
    assert message.source == "support"
    assert message.channel == "email"
    assert message.external_id == "abc.123@mail.example.com"
    assert message.sender_address == "jose.garcia@example.com"
    assert message.sender_name == "José García"
    assert message.subject == "Re: café alert"
    assert message.body_text == "Hello\nthere"
    assert message.body_html_text == ""
    assert message.in_reply_to == "parent@example.com"
    assert message.references == ("root@example.com", "parent@example.com")
    assert message.recipients == ("support@example.com", "other@example.org", "boss@example.com")
    assert message.kind == "message" and message.bulk is False
    assert message.received_at == NOW
    assert message.headers["auto-submitted"] == "no"
    assert message.headers["return-path"] == "<bounce@example.com>"
    assert message.parse_error == ""


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (b"<a@b>", "a@b"),
        (b"  <a@b>  ", "a@b"),
        (b"a@b", "a@b"),
        (b"<not a valid id>", "not a valid id"),
        (b"<unterminated@x", "unterminated@x"),
    ],
)
def test_external_id_is_the_message_id_as_sent(header: bytes, expected: str) -> None:
    assert parse(b"Message-ID: " + header + b"\n\nx").external_id == expected


def test_missing_message_id_uses_a_hash_of_the_raw_bytes() -> None:
    import hashlib

    raw = b"From: a@example.com\n\nno id"
    assert parse(raw).external_id == "sha256:" + hashlib.sha256(raw).hexdigest()


def test_sender_falls_back_to_sender_then_return_path() -> None:
    assert parse(b"Sender: S@Example.com\nReturn-Path: <r@x>\n\nx").sender_address == "s@example.com"
    assert parse(b"Return-Path: <R@Example.com>\n\nx").sender_address == "r@example.com"


def test_naive_received_at_is_taken_as_utc() -> None:
    message = parse_message(b"\n\nx", source="s", received_at=datetime(2026, 1, 1, 12))
    assert message.received_at == datetime(2026, 1, 1, 12, tzinfo=timezone.utc)


def test_raw_utf8_in_headers_is_decoded() -> None:
    raw = "From: Jürgen <j@example.de>\nSubject: Grüße\n\nx".encode()
    message = parse(raw)
    assert message.subject == "Grüße"
    assert message.sender_name == "Jürgen"


def test_oversized_body_is_truncated_with_a_note() -> None:
    raw = b"Content-Type: text/plain\n\n" + b"a" * (MAX_BODY_CHARS + 1000)
    message = parse(raw)
    assert len(message.body_text) < MAX_BODY_CHARS + 200
    assert "truncated" in message.body_text
    assert message.raw == raw


def test_escape_sequences_in_body_and_filename_are_removed() -> None:
    raw = (
        b"Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: text/plain\n\n"
        b"hi \x1b]52;c;ZXZpbA==\x07there\n--b\nContent-Type: application/pdf\n"
        b'Content-Disposition: attachment; filename="../../\x1b[31minvoice.pdf"\n\n%PDF\n--b--\n'
    )
    message = parse(raw)
    assert message.body_text == "hi there"
    assert message.attachments[0].filename == "invoice.pdf"


# --- charsets -------------------------------------------------------------------------------


def test_rfc2047_quoted_printable_utf8_subject() -> None:
    assert data("enmime/qp-utf8-header.raw").subject == "MIME UTF8 Test \u00a2 More Text"


def test_latin1_body_declared_as_ascii() -> None:
    body = data("enmime/chardet-success-iso-8859-1.raw").body_text
    assert body.startswith("DIE Drachenköpfe unserer Boote")
    assert "dreißig" in body and "\ufffd" not in body


def test_utf8_body_with_wrong_charset_label() -> None:
    body = data("enmime/incorrect-charset.raw").body_text
    assert "∮ E⋅da = Q" in body and "\ufffd" not in body


def test_iso_2022_jp_subject_and_body() -> None:
    message = data("mimekit/japanese.txt")
    assert message.subject == "日本語メールテスト (testing Japanese emails)"
    assert "日本語が" in message.body_text


def test_unknown_charsets_fall_back() -> None:
    assert data("enmime/unk-charset-part.raw").body_text == "A text section"
    assert data("enmime/unk-charset-html-only.raw").body_text == "Hello World!"


def test_raw_utf8_attachment_name() -> None:
    attachments = data("enmime/mime-bad-8bit-filename.raw").attachments
    assert [a.filename for a in attachments] == ["管理.doc"]


# --- HTML and attachments --------------------------------------------------------------------


def test_html_only_mail_becomes_text_with_links() -> None:
    message = data("enmime/ctype-bug.raw")
    html_text = message.body_html_text
    assert "Head over to the Quick Start (https://papertrailapp.com/start)." in html_text
    assert "- Share access (https://papertrailapp.com/account/members) with coworkers." in html_text
    assert "<" not in html_text.replace("<ok>", "")


def test_html_part_is_the_body_when_there_is_no_text_part() -> None:
    message = data("enmime/html-only-inline.raw")
    assert message.body_text == "Test of HTML section"
    assert message.body_html_text == "Test of HTML section"


def test_text_part_preferred_over_html() -> None:
    message = data("enmime/html-mime-inline.raw")
    assert message.body_text == "Test of text section"
    assert message.body_html_text == "Test of HTML section"


def test_attachments_found_with_filenames() -> None:
    message = data("enmime/attachment.raw")
    assert message.body_text == "A text section"
    assert [(a.filename, a.content_type, a.data) for a in message.attachments] == [
        ("test.html", "text/html", b"<html>\n")
    ]
    inline = data("enmime/html-only-inline.raw").attachments
    assert [(a.filename, a.content_type) for a in inline] == [("favicon.png", "image/png")]
    assert inline[0].data.startswith(b"\x89PNG")


def test_non_text_leaf_without_name_is_an_attachment() -> None:
    raw = (
        b"Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: text/plain\n\nbody\n"
        b"--b\nContent-Type: text/calendar\n\nBEGIN:VCALENDAR\n--b\nContent-Type: image/jpeg\n"
        b"Content-Transfer-Encoding: base64\n\n/9j/4AAQ\n--b--\n"
    )
    message = parse(raw)
    assert message.body_text == "body"
    assert [a.content_type for a in message.attachments] == ["text/calendar", "image/jpeg"]
    assert message.attachments[1].data == b"\xff\xd8\xff\xe0\x00\x10"
    assert all(a.filename for a in message.attachments)


def test_pathological_sizes_parse_in_bounded_time() -> None:
    for name in ("large_text.eml", "htmllargecallstack.eml"):
        started = time.perf_counter()
        message = data(f"nodemailer-mailparser/{name}")
        assert time.perf_counter() - started < 5
        assert message.parse_error == ""


# --- kinds ---------------------------------------------------------------------------------

SISIMAI = "sisimai-set-of-emails/maildir"


@pytest.mark.parametrize(
    "path",
    [
        "postal-mime/bounce.eml",
        "mimekit/delivery-status.txt",
        "enmime/simple_dsn.raw",
        *(
            f"{SISIMAI}/bsd/{name}.eml"
            for name in (
                "lhost-postfix-01",
                "lhost-exim-01",
                "lhost-sendmail-01",
                "lhost-gmail-01",
                "lhost-office365-01",
                "lhost-qmail-01",
                "lhost-dragonfly-01",
                "lhost-amazonses-01",
                "rfc3464-01",
                "rhost-google-01",
            )
        ),
    ],
)
def test_bounces_are_kind_bounce(path: str) -> None:
    assert data(path).kind == "bounce"


def test_known_bounce_carries_the_bounced_message_id() -> None:
    message = data("postal-mime/bounce.eml")
    original = "e85f1c9b-9b51-4028-8ec0-0a657155028e@app.fastmail.com"
    assert message.headers["x-bounced-message-id"] == original
    raw = (DATA / "postal-mime/bounce.eml").read_bytes()
    assert bounced_message_id(raw) == original
    assert bounced_message_id(message) == original
    import email
    from email.policy import compat32

    assert bounced_message_id(email.message_from_bytes(raw, policy=compat32)) == original


def test_bounced_message_id_from_inline_text_and_headers_part() -> None:
    assert data(f"{SISIMAI}/bsd/lhost-dragonfly-01.eml").headers["x-bounced-message-id"] == (
        "66681288.e06d1.3824794@df.example.jp"
    )
    assert data("mimekit/delivery-status.txt").headers["x-bounced-message-id"] == ("31FC7EB4.41C6@netscape.com")


def test_bounced_message_id_is_none_when_absent() -> None:
    assert bounced_message_id(b"From: a@b\n\nnothing here") is None
    assert bounced_message_id(b"") is None


@pytest.mark.parametrize("number", range(1, 7))
def test_rfc3834_auto_replies(number: int) -> None:
    assert data(f"{SISIMAI}/bsd/rfc3834-0{number}.eml").kind == "auto_reply"


@pytest.mark.parametrize("name", ["is-not-bounce-01.eml", "is-not-bounce-02.eml"])
def test_sisimai_non_bounces_are_plain_messages(name: str) -> None:
    message = data(f"{SISIMAI}/not/{name}")
    assert message.kind == "message"
    assert "x-bounced-message-id" not in message.headers


def test_sisimai_rb_issue_368_is_never_a_plain_message() -> None:
    # sisimai files this under not/ (its parser cannot read it as a bounce), but it is a
    # postmaster's "email bounce notification" with Return-Path <> reporting "Mailbox full":
    # by the DESIGN rule a mailer-daemon notice, and it must never get a receipt.
    message = data(f"{SISIMAI}/not/rb-issue-368-bug.eml")
    assert message.kind == "bounce"
    assert message.headers["x-bounced-message-id"] == "68e0b7e3615cd_1dc7010592ed@7cf4d87f87-9r5w2.mail"


def test_reports_that_are_not_bounces() -> None:
    assert data("mimekit/disposition-notification.txt").kind == "auto_reply"
    assert data("postal-mime/arf.eml").kind == "auto_reply"


@pytest.mark.parametrize(
    "header",
    [
        b"Auto-Submitted: auto-replied",
        b"Auto-Submitted: auto-generated; owner-email=x@y",
        b"X-Autoreply: yes",
        b"X-Autorespond: Out of office",
        b"X-Auto-Response-Suppress: OOF, AutoReply",
        b"X-Auto-Response-Suppress: All",
        b"Subject: Out of Office: your request",
        b"Subject: Automatic reply: Order 42",
        b"Subject: Auto: question",
        b"Subject: Abwesenheitsnotiz: Anfrage",
    ],
)
def test_auto_reply_markers(header: bytes) -> None:
    assert parse(b"From: a@example.com\n" + header + b"\n\nI am away.").kind == "auto_reply"


@pytest.mark.parametrize(
    "header",
    [b"Auto-Submitted: no", b"X-Auto-Response-Suppress: DR", b"Subject: Re: my vacation booking"],
)
def test_not_auto_replies(header: bytes) -> None:
    assert parse(b"From: a@example.com\n" + header + b"\n\nhello").kind == "message"


def test_mailer_daemon_notice_is_a_bounce() -> None:
    raw = (
        b"From: Mail Delivery Subsystem <MAILER-DAEMON@example.net>\nReturn-Path: <>\n"
        b"Subject: Undelivered Mail Returned to Sender\n\n"
        b"Your message could not be delivered.\n\nMessage-ID: <orig-1@example.com>\n"
    )
    message = parse(raw)
    assert message.kind == "bounce"
    assert message.headers["x-bounced-message-id"] == "orig-1@example.com"


@pytest.mark.parametrize(
    ("header", "bulk"),
    [
        (b"Precedence: bulk", True),
        (b"Precedence: list", True),
        (b"Precedence: junk", True),
        (b"List-Id: Users <users.lists.example.org>", True),
        (b"List-Unsubscribe: <mailto:leave@news.example.com>, <https://news.example.com/u/1>", True),
        (b"List-Post: <mailto:users@lists.example.org>", True),
        (b"List-Post: NO", True),
        (b"List-Help: <mailto:help@lists.example.org>", False),
        (b"Mailing-List: contact users-help@lists.example.org", False),
        (b"Precedence: first-class", False),
    ],
)
def test_bulk_markers(header: bytes, bulk: bool) -> None:
    message = parse(b"From: a@example.com\n" + header + b"\n\nnews")
    assert message.bulk is bulk
    assert message.kind == "message"


def test_list_unsubscribe_is_kept_for_the_loop_rule() -> None:
    message = parse(b"From: a@example.com\nList-Unsubscribe: <mailto:leave@news.example.com>\n\nnews")
    assert message.headers["list-unsubscribe"] == "<mailto:leave@news.example.com>"


def test_list_mail_is_bulk() -> None:
    message = data("nodemailer-mailparser/large_text.eml")
    assert message.bulk is True
    assert message.kind == "message"
    assert "ubuntu-bugs.lists.ubuntu.com" in message.headers["list-id"]


@needs_corpus
def test_notmuch_list_threads_are_bulk_messages() -> None:
    folder = CORPUS / "notmuch-corpora" / "test" / "corpora" / "default"
    if not folder.is_dir():
        pytest.skip(f"{folder} absent")
    messages = [parse(p.read_bytes()) for p in folder.rglob("*") if p.is_file()]
    listed = [m for m in messages if "list-id" in m.headers]
    assert listed and all(m.bulk and m.kind == "message" for m in listed)


# --- detection rates over the whole sisimai set (read in place) -------------------------------


def _sisimai_rates() -> tuple[float, float, float]:
    root = CORPUS / "sisimai-set-of-emails" / "maildir"
    bounces = [p for p in (root / "bsd").glob("*.eml") if p.name.startswith(("lhost-", "rhost-", "rfc3464-"))]
    replies = list((root / "bsd").glob("rfc3834-*.eml"))
    not_bounces = list((root / "not").glob("*.eml"))
    recognised = sum(parse(p.read_bytes()).kind == "bounce" for p in bounces) / len(bounces)
    replies_ok = sum(parse(p.read_bytes()).kind == "auto_reply" for p in replies) / len(replies)
    wrongly = sum(parse(p.read_bytes()).kind == "bounce" for p in not_bounces) / len(not_bounces)
    return recognised, replies_ok, wrongly


@needs_corpus
def test_sisimai_detection_rates() -> None:
    if not (CORPUS / "sisimai-set-of-emails").is_dir():
        pytest.skip("sisimai set absent")
    recognised, replies_ok, wrongly = _sisimai_rates()
    print(f"bounces recognised {recognised:.1%}, auto-replies {replies_ok:.0%}, non-bounces flagged {wrongly:.0%}")
    assert recognised >= 0.95
    assert replies_ok == 1.0
    assert wrongly <= 1 / 3  # rb-issue-368-bug.eml: see test_sisimai_rb_issue_368_...
