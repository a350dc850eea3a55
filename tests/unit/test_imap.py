"""IMAP without a server: UID sets, INTERNALDATE, FETCH results, batching; losing the server (the
worker's backoff on a fake clock, the source's IDLE states with a fake IDLE connection)."""

from __future__ import annotations

import imaplib
import logging
import time
import types
from datetime import datetime, timezone
from typing import ClassVar

import pytest

from agentdesk.channels.email import imap
from agentdesk.sync import worker as sync_worker
from agentdesk.sync.base import PollReport, SourceError
from agentdesk.sync.sources import email as sync


@pytest.mark.parametrize(
    "uids, expected",
    [
        ([5], "5"),
        ([1, 2, 3, 4, 7, 9, 10], "1:4,7,9:10"),
        ([10, 9, 9, 1], "1,9:10"),
    ],
)
def test_uid_set(uids, expected):
    assert imap.uid_set(uids) == expected


def test_uid_set_refuses_empty():
    with pytest.raises(ValueError):
        imap.uid_set([])


@pytest.mark.parametrize(
    "text, expected",
    [
        (" 5-Jan-2026 08:00:00 +0100", datetime(2026, 1, 5, 7, 0, tzinfo=timezone.utc)),
        ("17-Jul-1996 02:44:25 -0700", datetime(1996, 7, 17, 9, 44, 25, tzinfo=timezone.utc)),
        (b"01-Feb-2026 00:00:00 +0000", datetime(2026, 2, 1, tzinfo=timezone.utc)),
        ("not a date", None),
    ],
)
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
        path.relative_to(package.parent).as_posix()
        for path in package.rglob("*.py")
        if "import imaplib2" in path.read_text(encoding="utf-8")
    ]
    assert importers == ["agentdesk/channels/email/imap.py"]


# --- losing the server: the worker's backoff, the source's IDLE states ---------------------------


def test_retry_delays_double_up_to_a_minute():
    assert [sync_worker.retry_delay(n) for n in range(1, 10)] == [1, 2, 4, 8, 16, 32, 60, 60, 60]


class FakeClock:
    """Stands in for the worker's stop event: waiting moves the time on instead of sleeping."""

    def __init__(self, until: float):
        self.now = 0.0
        self.until = until
        self.stopped = False

    def is_set(self) -> bool:
        return self.stopped or self.now >= self.until

    def wait(self, seconds: float) -> bool:
        self.now += seconds
        return self.is_set()

    def set(self) -> None:
        self.stopped = True


class FlakySource:
    """A source whose server is down during the given (start, end) spans; IDLE waits a minute.
    Each wait is cut short by the next outage, as a real IDLE connection breaks when it starts."""

    name = "support"
    kind = "email"

    def __init__(self, clock: FakeClock, outages):
        self.clock = clock
        self.outages = outages
        self.polls: list[float] = []

    def _down(self) -> bool:
        return any(start <= self.clock.now < end for start, end in self.outages)

    def poll(self, *, progress=None):
        self.polls.append(self.clock.now)
        if self._down():
            raise SourceError("mailbox support: cannot connect to imap.example.com:993: refused")
        return PollReport(self.name)

    def wait(self, timeout: float) -> None:
        following = [start for start, _ in self.outages if start > self.clock.now]
        if following and following[0] < self.clock.now + timeout:
            self.clock.now = following[0]
            raise SourceError("mailbox support: the IDLE connection broke")
        self.clock.now += timeout


def _run(outages, until):
    clock = FakeClock(until)
    source = FlakySource(clock, outages)
    worker = sync_worker.SyncWorker(None, [source], {})
    worker.stop = clock
    worker._source_loop(source, None)
    return source.polls


def test_backoff_schedule_while_the_server_is_down():
    # Down from 100 s to 400 s: attempts 1, 2, 4 … s apart after the drop, then a minute apart.
    polls = _run([(100, 400)], until=600)
    after_drop = [round(at - 100) for at in polls if at >= 100]
    assert after_drop[:10] == [1, 3, 7, 15, 31, 63, 123, 183, 243, 303]
    # The attempt at 303 s (3 s after the server's return) works; then a poll after each IDLE minute.
    assert after_drop[10:] == [363, 423, 483]


def test_backoff_starts_again_from_one_second_once_a_connection_works():
    polls = _run([(10, 14), (100, 104)], until=200)
    assert [round(at) for at in polls if 100 <= at < 110] == [101, 103, 107]  # not 15 or 31 s apart
    assert [round(at) for at in polls if 10 <= at < 20] == [11, 13, 17]


def test_backoff_logs_one_line_per_change_of_state(caplog):
    caplog.set_level(logging.INFO, logger="agentdesk.sync")
    _run([(100, 1_000)], until=1_100)  # 15 minutes down: 20 attempts
    lines = [record.getMessage() for record in caplog.records]
    assert lines[0] == "support: mailbox support: the IDLE connection broke; retrying in 1 s"
    assert lines[1] == "support: mailbox support: cannot connect to imap.example.com:993: refused; retrying in 2 s"
    assert lines[2:7] == [f"support: still failing; retrying in {n} s" for n in (4, 8, 16, 32, 60)]
    assert lines[7].startswith("support: back after ")
    assert len(lines) == 8


def test_a_source_that_polls_but_cannot_idle_keeps_backing_off():
    clock = FakeClock(until=200)

    class NoIdle(FlakySource):
        def wait(self, timeout):
            raise SourceError("mailbox support: IDLE connection failed: reset")

    source = NoIdle(clock, [])
    worker = sync_worker.SyncWorker(None, [source], {})
    worker.stop = clock
    worker._source_loop(source, None)
    assert [round(at) for at in source.polls[:6]] == [0, 1, 3, 7, 15, 31]


class FakeIdler:
    """Stands in for imap.Idler: `script` says what each wait does ("lost", "refused", or a
    change); `supported` whether the server offers IDLE."""

    ConnectionLost = imap.Idler.ConnectionLost
    # Class-wide, reset by the fixture for each test: the source makes its own instances.
    made: ClassVar[list[FakeIdler]] = []
    supported = True
    fail_to_open: Exception | None = None
    script: ClassVar[list[str]] = []

    def __init__(self, server, password, folder):
        if FakeIdler.fail_to_open is not None:
            raise FakeIdler.fail_to_open
        self.closed = False
        self.interrupted = False
        FakeIdler.made.append(self)

    def wait(self, timeout):
        step = FakeIdler.script.pop(0) if FakeIdler.script else "change"
        if step == "lost":
            raise imap.Idler.ConnectionLost("mailbox support: the IDLE connection broke: reset")
        if step == "refused":
            raise imap.ImapError("mailbox support: the server refused IDLE: BAD")
        return True

    def interrupt(self):
        self.interrupted = True

    def close(self):
        self.closed = True


@pytest.fixture
def mailbox_source(monkeypatch, engine):
    monkeypatch.setattr(imap, "Idler", FakeIdler)
    monkeypatch.setattr(FakeIdler, "made", [])
    monkeypatch.setattr(FakeIdler, "script", [])
    monkeypatch.setattr(FakeIdler, "supported", True)
    monkeypatch.setattr(FakeIdler, "fail_to_open", None)
    mailbox = types.SimpleNamespace(
        name="support",
        host="imap.example.com",
        port=993,
        tls="ssl",
        username="support",
        folders=["INBOX"],
        idle=True,
        after_fetch="keep",
        password=lambda what: "secret",
    )
    return sync.MailboxSource(mailbox, sync_worker.SyncContext(settings=None, engine=engine))


def test_a_dropped_idle_connection_is_reported_and_reopened(mailbox_source):
    mailbox_source.wait(60)  # opens IDLE and returns at once: the poll after it sees what came meanwhile
    FakeIdler.script = ["lost"]
    with pytest.raises(SourceError, match="the IDLE connection broke"):
        mailbox_source.wait(60)
    assert FakeIdler.made[0].closed
    mailbox_source.wait(60)  # after the worker's pause and poll: a new IDLE connection
    assert len(FakeIdler.made) == 2
    mailbox_source.wait(60)  # and IDLE on it
    assert not FakeIdler.made[1].closed


def test_a_server_without_idle_is_polled(mailbox_source):
    FakeIdler.supported = False
    mailbox_source.wait(60)
    started = time.monotonic()
    for _ in range(3):
        mailbox_source.wait(0.01)  # sleeps the interval; never raises, never reconnects
    assert time.monotonic() - started >= 0.03
    assert len(FakeIdler.made) == 1 and FakeIdler.made[0].closed


@pytest.mark.parametrize("failure", ["login refused", "IDLE refused"])
def test_idle_refused_falls_back_to_polling(mailbox_source, failure):
    if failure == "login refused":
        FakeIdler.fail_to_open = imap.ImapError("mailbox support: IDLE connection failed: LOGIN refused")
    else:
        mailbox_source.wait(60)
        FakeIdler.script = ["refused"]
    mailbox_source.wait(0.01)  # no error: polled instead, IDLE tried again after a few intervals
    assert time.monotonic() < mailbox_source._idle_broken_until


def test_connection_refused_on_opening_idle_is_a_lost_connection(mailbox_source):
    FakeIdler.fail_to_open = imap.Idler.ConnectionLost("mailbox support: IDLE connection failed: refused")
    with pytest.raises(SourceError, match="refused"):
        mailbox_source.wait(60)


def test_interrupt_ends_a_wait_quietly(mailbox_source):
    mailbox_source.wait(60)
    FakeIdler.script = ["lost"]  # what shutting the socket down looks like from the waiting thread
    mailbox_source.interrupt()
    mailbox_source.wait(60)  # returns at once, no error
    assert FakeIdler.made[0].interrupted


def test_a_poll_that_cannot_connect_fails_at_once(mailbox_source, monkeypatch):
    tries = []

    def refuse(server, password):
        tries.append(time.monotonic())
        raise imap.ImapError("mailbox support: cannot connect to imap.example.com:993 (ssl): refused")

    monkeypatch.setattr(imap, "BulkConnection", refuse)
    started = time.monotonic()
    with pytest.raises(SourceError, match="cannot connect"):
        mailbox_source.poll()
    assert len(tries) == 1 and time.monotonic() - started < 0.5  # the worker's backoff retries it


def test_a_stale_connection_gets_one_fresh_try_at_once(mailbox_source, monkeypatch):
    class Stale:
        def select(self, folder, readonly):
            raise OSError("broken pipe")

        def close(self):
            pass

    tries = []

    def refuse(server, password):
        tries.append(1)
        raise imap.ImapError("mailbox support: cannot connect to imap.example.com:993 (ssl): refused")

    mailbox_source._bulk = Stale()  # left from an earlier poll; the server restarted since
    monkeypatch.setattr(imap, "BulkConnection", refuse)
    started = time.monotonic()
    with pytest.raises(SourceError, match="cannot connect"):
        mailbox_source.poll()
    assert len(tries) == 1 and time.monotonic() - started < 0.5


@pytest.mark.parametrize(
    "answer",
    [
        imap.ServerBusy("mailbox support: listing new messages failed: [THROTTLED] Request is throttled"),
        imaplib.IMAP4.abort("Server Unavailable. 15"),  # Exchange's BYE
    ],
)
def test_a_throttled_poll_is_not_retried_at_once_and_says_so(mailbox_source, monkeypatch, engine, answer):
    class Throttled:
        def select(self, folder, readonly):
            raise answer

        def close(self):
            pass

    made = []

    def connect(server, password):
        made.append(1)
        return Throttled()

    monkeypatch.setattr(imap, "BulkConnection", connect)
    waits = []
    monkeypatch.setattr(mailbox_source._stopping, "wait", lambda delay=None: waits.append(delay))
    with pytest.raises(SourceError, match="throttled by the server"):
        mailbox_source.poll()
    # One connection and no pause within the poll: reconnecting would prolong the throttling; the
    # worker's retry schedule (worker.Backoff) waits longer each time instead.
    assert len(made) == 1 and waits == []
    from sqlalchemy import text

    with engine.connect() as connection:
        recorded = connection.execute(text("SELECT last_error FROM syncstate")).scalar()
    assert recorded.startswith("throttled by the server")


class FakeGmail:
    """An imaplib connection to a Gmail-like server (X-GM-EXT-1): one message with two labels
    shows in INBOX and in [Gmail]/All Mail under different UIDs, with one X-GM-MSGID."""

    capabilities = ("IMAP4REV1", "IDLE", "X-GM-EXT-1", "AUTH=XOAUTH2")
    RAW = (
        b"From: Ann <ann@example.org>\r\nTo: support@example.com\r\nSubject: Two labels\r\n"
        b"Message-ID: <labels@example.org>\r\n\r\nHello\r\n"
    )
    FOLDERS = {"INBOX": {7: 1001}, "[Gmail]/All Mail": {3: 1000, 9: 1001}}  # uid -> X-GM-MSGID

    def __init__(self):
        self.folder = None
        self.fetched: list[tuple[str, str]] = []

    def select(self, folder, readonly=False):
        self.folder = folder.strip('"')
        return "OK", [str(len(self.FOLDERS[self.folder])).encode()]

    def response(self, code):
        return {"UIDVALIDITY": (code, [b"42"]), "UIDNEXT": (code, [b"10"])}.get(code, (code, [None]))

    def uid(self, command, uids, items):
        assert command == "FETCH"
        messages = self.FOLDERS[self.folder]
        if "RFC822.SIZE" in items:
            assert "X-GM-MSGID" in items
            return "OK", [
                b"%d (UID %d RFC822.SIZE %d X-GM-MSGID %d)" % (n, uid, len(self.RAW), gm)
                for n, (uid, gm) in enumerate(sorted(messages.items()), start=1)
            ]
        self.fetched.append((self.folder, uids))
        wanted = [int(u) for u in uids.split(",")]
        raw = self.RAW if self.folder == "INBOX" else self.RAW.replace(b"labels@", b"older@")
        return "OK", [
            (b'1 (UID %d INTERNALDATE "05-Jan-2026 08:00:00 +0000" BODY[] {%d}' % (uid, len(raw)), raw)
            for uid in wanted
            if uid in messages
        ]

    def logout(self):
        pass


def test_on_gmail_a_message_already_taken_from_inbox_is_not_fetched_again_from_all_mail(engine, monkeypatch):
    import threading

    fake = FakeGmail()
    real = imap.BulkConnection

    def connect(server, password):
        # The real BulkConnection's commands and parsing over the fake server's answers.
        connection = real.__new__(real)
        connection.server, connection.conn, connection.selected = server, fake, None
        connection._command_lock = threading.Lock()
        connection._capabilities = set(FakeGmail.capabilities)
        connection.gmail_ids = {}
        return connection

    monkeypatch.setattr(imap, "BulkConnection", connect)
    mailbox = types.SimpleNamespace(
        name="support",
        host="imap.gmail.com",
        port=993,
        tls="ssl",
        username="support",
        idle=False,
        folders=["INBOX", "[Gmail]/All Mail"],
        after_fetch="keep",
        password=lambda what: "token",
    )
    from agentdesk import config
    from agentdesk.domain import clocks

    settings = config.Settings()
    context = sync_worker.SyncContext(
        settings=settings, engine=engine, policies=clocks.Policies.from_settings(settings)
    )
    report = sync.MailboxSource(mailbox, context, parallel_parse=False).poll()
    # INBOX's message once; All Mail's copy of it (uid 9, same X-GM-MSGID) never fetched; its other message is.
    assert fake.fetched == [("INBOX", "7"), ("[Gmail]/All Mail", "3")]
    assert (report.stored, report.duplicates) == (2, 0)
    from sqlalchemy import text

    with engine.connect() as connection:
        checkpoints = dict(connection.execute(text("SELECT folder, last_uid FROM syncstate")).all())
    assert checkpoints == {"INBOX": 7, "[Gmail]/All Mail": 9}
