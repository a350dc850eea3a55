"""IMAP response handling without a server: UID sets, INTERNALDATE, FETCH results, batching."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from agentdesk.sync.sources import email as sync
from agentdesk.channels.email import imap


@pytest.mark.parametrize("uids, expected", [
    ([5], "5"),
    ([1, 2, 3, 4, 7, 9, 10], "1:4,7,9:10"),
    ([10, 9, 9, 1], "1,9:10"),
])
def test_uid_set(uids, expected):
    assert imap.uid_set(uids) == expected


def test_uid_set_refuses_empty():
    with pytest.raises(ValueError):
        imap.uid_set([])


@pytest.mark.parametrize("text, expected", [
    (" 5-Jan-2026 08:00:00 +0100", datetime(2026, 1, 5, 7, 0, tzinfo=timezone.utc)),
    ("17-Jul-1996 02:44:25 -0700", datetime(1996, 7, 17, 9, 44, 25, tzinfo=timezone.utc)),
    (b"01-Feb-2026 00:00:00 +0000", datetime(2026, 2, 1, tzinfo=timezone.utc)),
    ("not a date", None),
])
def test_parse_internaldate(text, expected):
    assert imap.parse_internaldate(text) == expected


def test_parse_fetch_reads_uid_date_and_literal_in_any_order():
    data = [
        (b'1 (UID 7 INTERNALDATE " 5-Jan-2026 08:00:00 +0000" BODY[] {5}', b"hello"),
        b")",
        (b'2 (INTERNALDATE "06-Jan-2026 09:00:00 +0000" BODY[] {3} UID 9', b"abc"),
        b" FLAGS (\\Seen))",
        b"3 (FLAGS (\\Seen))",  # an unsolicited update: not a message
    ]
    fetched = list(imap.parse_fetch(data))
    assert [(m.uid, m.raw) for m in fetched] == [(7, b"hello"), (9, b"abc")]
    assert fetched[1].internaldate == datetime(2026, 1, 6, 9, tzinfo=timezone.utc)


def test_missing_internaldate_falls_back_to_now():
    now = datetime(2026, 3, 1, tzinfo=timezone.utc)
    (message,) = imap.parse_fetch([(b"1 (UID 3 BODY[] {1}", b"x")], now=now)
    assert message.internaldate == now


def test_batches_by_count_and_bytes(monkeypatch):
    monkeypatch.setattr(imap, "FETCH_BATCH_MESSAGES", 3)
    monkeypatch.setattr(imap, "FETCH_BATCH_BYTES", 100)
    listing = [(1, 10), (2, 10), (3, 10), (4, 10), (5, 95), (6, 200), (7, 1)]
    assert list(sync._batches(listing)) == [[1, 2, 3], [4], [5], [6], [7]]


def test_verify_hostname():
    cert = {"subjectAltName": (("DNS", "imap.example.com"), ("DNS", "*.mail.example.com"))}
    assert imap._verify_hostname(cert, "imap.example.com") is None
    assert imap._verify_hostname(cert, "eu.mail.example.com") is None
    assert imap._verify_hostname(cert, "evil.example.net") is not None
    assert imap._verify_hostname(cert, "a.b.mail.example.com") is not None


def test_imaplib2_is_imported_only_by_imap_module():
    from pathlib import Path

    package = Path(imap.__file__).resolve().parents[2]
    importers = [
        path.relative_to(package.parent).as_posix() for path in package.rglob("*.py")
        if "import imaplib2" in path.read_text(encoding="utf-8")
    ]
    assert importers == ["agentdesk/channels/email/imap.py"]
