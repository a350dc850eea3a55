"""The sync's fetch pipeline: the next UID batch is fetched in a thread while one is stored."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timezone

import pytest

from agentdesk.channels.email import imap
from agentdesk.sync.sources import email as sync

WHEN = datetime(2026, 1, 5, 8, 0, tzinfo=timezone.utc)


class FakeConnection:
    """Records fetches; `slow` makes each one take a while; `broken_at` fails that batch."""

    def __init__(self, slow: float = 0.0, broken_at: int | None = None):
        self.fetched: list[list[int]] = []
        self.slow = slow
        self.broken_at = broken_at
        self.running = threading.Event()
        self.finished = 0

    def fetch(self, uids):
        self.running.set()
        time.sleep(self.slow)
        self.fetched.append(list(uids))
        self.finished += 1
        if self.broken_at is not None and len(self.fetched) - 1 == self.broken_at:
            raise OSError("connection reset")
        return [imap.FetchedMessage(uid, WHEN, b"raw %d" % uid) for uid in uids]


def _listing(count: int) -> list[tuple[int, int]]:
    return [(uid, 100) for uid in range(1, count + 1)]


def test_batches_come_in_order_with_their_messages():
    connection = FakeConnection()
    listing = _listing(3 * imap.FETCH_BATCH_MESSAGES + 7)
    seen = [(uids, [m.uid for m in fetched]) for uids, fetched in sync._fetched_batches(connection, listing)]
    assert [uids for uids, _ in seen] == list(sync._batches(listing))
    assert all(uids == fetched for uids, fetched in seen)


def test_the_next_batch_is_fetched_while_the_caller_works():
    connection = FakeConnection()
    batches = sync._fetched_batches(connection, _listing(2 * imap.FETCH_BATCH_MESSAGES))
    next(batches)
    deadline = time.monotonic() + 5
    while len(connection.fetched) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(connection.fetched) == 2  # fetched before the caller asked for it
    batches.close()


def test_closing_early_waits_for_the_fetch_in_flight():
    """The connection must not be used (closed, reconnected) while a response is half read."""
    connection = FakeConnection(slow=0.2)
    batches = sync._fetched_batches(connection, _listing(3 * imap.FETCH_BATCH_MESSAGES))
    next(batches)
    connection.running.wait(5)
    batches.close()
    assert connection.finished == len(connection.fetched) == 2


def test_a_failed_fetch_reaches_the_caller():
    connection = FakeConnection(broken_at=1)
    batches = sync._fetched_batches(connection, _listing(3 * imap.FETCH_BATCH_MESSAGES))
    next(batches)
    with pytest.raises(OSError, match="connection reset"):
        next(batches)


def test_one_batch_is_fetched_without_a_thread():
    connection = FakeConnection()
    before = set(threading.enumerate())  # other tests' idle threads may end meanwhile: none may start
    assert [len(fetched) for _, fetched in sync._fetched_batches(connection, _listing(3))] == [3]
    assert set(threading.enumerate()) <= before


def test_the_bulk_connection_runs_one_command_at_a_time():
    """A chunk's after-fetch STORE waits for the fetch in flight instead of interleaving with it."""

    class Wire:
        def __init__(self):
            self.active = 0
            self.most = 0
            self.lock = threading.Lock()

        def uid(self, *args):
            with self.lock:
                self.active += 1
                self.most = max(self.most, self.active)
            time.sleep(0.02)
            with self.lock:
                self.active -= 1
            return "OK", []

    connection = object.__new__(imap.BulkConnection)
    connection._command_lock = threading.Lock()
    connection.server = imap.ServerSettings(name="support", host="h", port=1, tls="none", username="u")
    connection.conn = Wire()
    threads = [
        threading.Thread(target=connection.fetch, args=([1, 2],)),
        threading.Thread(target=connection.mark_seen, args=([1],)),
        threading.Thread(target=connection.fetch, args=([3],)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert connection.conn.most == 1


def test_background_checkpoints_copy_the_wal_into_the_database(tmp_path):
    """A big sync's commits leave the WAL to a checkpointing thread instead of copying it inline."""
    import sqlite3

    from agentdesk.store import wal

    path = tmp_path / "desk.db"
    writer = sqlite3.connect(path, isolation_level=None)
    writer.execute("PRAGMA journal_mode = WAL")
    writer.execute("PRAGMA wal_autocheckpoint = 0")  # only the background thread checkpoints
    writer.execute("CREATE TABLE raw (data BLOB)")
    checkpoints = wal.BackgroundCheckpoints(path)
    try:
        before = path.stat().st_size
        writer.execute("BEGIN IMMEDIATE")
        writer.executemany("INSERT INTO raw VALUES (?)", [(b"x" * 4000,) for _ in range(200)])
        writer.execute("COMMIT")
        checkpoints.commit_done()
        deadline = time.monotonic() + 5
        while path.stat().st_size < before + 200 * 4000 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert path.stat().st_size >= before + 200 * 4000
    finally:
        checkpoints.stop()
        writer.close()
    assert not any(thread.name == "sqlite-checkpoint" for thread in threading.enumerate())
