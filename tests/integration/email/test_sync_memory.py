"""What a sync holds does not follow what a mailbox holds.

- A big message costs `agentdesk sync --once` (the program, against a real Dovecot) less than one
  whole copy of itself over the same mailbox without it: it is fetched into a file in pieces,
  parsed through a bounded view and stored from the file, and never travels to a parser process.
  Each process's peak is its VmHWM in /proc (tests/process_memory.py).
- New mail is listed a window at a time (`imap.LIST_WINDOW`) into a listing of 8 bytes a message:
  every message is listed once, in UID order, with its size, whatever the gaps in the UIDs, and
  a sync through windows stores every message once.
"""

from __future__ import annotations

import sqlite3
import sys
from pathlib import Path

import pytest
from hostile.big_mail import MB, attachment_and_html
from integration.email import mailgen
from integration.email.servers import PASSWORD, mailbox_config
from process_memory import run_measured

from agentdesk.channels.email import imap

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]
BIG = 32 * MB
ORDINARY = 450  # enough for the parser processes, as in a first sync


def _sync(dovecot, user: str, directory: Path):
    config = mailbox_config(directory, dovecot, user, 1)
    run = run_measured([sys.executable, "-m", "agentdesk", "--config", str(config), "sync", "--once"], cwd=ROOT)
    assert run.status == 0, run.stderr
    return run


def test_a_big_message_costs_its_sync_less_than_one_copy_of_itself(dovecot, tmp_path):
    ordinary = mailgen.corpus(ORDINARY, seed=31)
    anchor_user, big_user = dovecot.add_user(), dovecot.add_user()
    dovecot.write_maildir(anchor_user, ordinary)
    big = attachment_and_html(BIG, n=31)
    dovecot.write_maildir(
        big_user, [*ordinary[: ORDINARY // 2], (ordinary[ORDINARY // 2][0], big), *ordinary[ORDINARY // 2 :]]
    )

    anchor = _sync(dovecot, anchor_user, tmp_path / "anchor")
    with_big = _sync(dovecot, big_user, tmp_path / "big")

    extra_kib = with_big.main_kib - anchor.main_kib
    assert extra_kib * 1024 < len(big), (
        f"the sync held {extra_kib // 1024} MiB more for one {len(big) // MB} MB message "
        f"(anchor: {anchor.summary()}; with it: {with_big.summary()})"
    )
    parsers, anchor_parsers = with_big.by_role().get("parser", []), anchor.by_role().get("parser", [])
    assert parsers and anchor_parsers, "the parser processes ran"
    assert (max(parsers) - max(anchor_parsers)) * 1024 < len(big) // 4, "the big message went to a parser process"
    with sqlite3.connect(tmp_path / "big" / "agentdesk.db") as db:
        assert db.execute("SELECT count(*) FROM message").fetchone()[0] == ORDINARY + 1
        assert db.execute("SELECT max(length(raw)) FROM messageraw").fetchone()[0] == len(big)


def _listing(dovecot, user: str, after: int) -> imap.Listing:
    server = imap.ServerSettings(name="test", host="127.0.0.1", port=dovecot.port, tls="none", username=user)
    connection = imap.BulkConnection(server, PASSWORD)
    try:
        connection.select("INBOX", readonly=True)
        return connection.list_after(after)
    finally:
        connection.close()


def _sizes(dovecot, user: str) -> dict[int, int]:
    connection = dovecot.imap(user)
    try:
        connection.select("INBOX", readonly=True)
        typ, data = connection.uid("FETCH", "1:*", "(UID RFC822.SIZE)")
        assert typ == "OK"
    finally:
        connection.logout()
    sizes = {}
    for line in data:
        words = line.decode().replace("(", " ").replace(")", " ").split()
        sizes[int(words[words.index("UID") + 1])] = int(words[words.index("RFC822.SIZE") + 1])
    return sizes


@pytest.mark.parametrize("window", [1, 7, 40, 10_000])
def test_new_mail_is_listed_window_by_window_once_in_uid_order(dovecot, monkeypatch, window):
    user = dovecot.add_user()
    dovecot.append(user, mailgen.corpus(130, seed=32))
    # Gaps in the UIDs, as deleted mail leaves them: windows go by UID range, not by position.
    connection = dovecot.imap(user)
    connection.select("INBOX")
    connection.uid("STORE", "3:20,41,77:90,129", "+FLAGS.SILENT", r"(\Deleted)")
    connection.expunge()
    connection.logout()
    sizes = _sizes(dovecot, user)
    assert len(sizes) == 130 - 18 - 1 - 14 - 1
    monkeypatch.setattr(imap, "LIST_WINDOW", window)

    for after in (0, 2, 45, 128, 130):
        listing = _listing(dovecot, user, after)
        expected = sorted((uid, size) for uid, size in sizes.items() if uid > after)
        assert list(listing) == expected, f"after UID {after}, windows of {window}"
        assert listing.uids.itemsize + listing.sizes.itemsize == 8


def test_a_sync_listed_in_windows_stores_every_message_once(dovecot, tmp_path, desk_factory, monkeypatch):
    from agentdesk.sync.sources import email as sync

    user = dovecot.add_user()
    total = sync.PARALLEL_PARSE_MIN + 30
    dovecot.write_maildir(user, mailgen.corpus(total, seed=33))
    monkeypatch.setattr(imap, "LIST_WINDOW", 100)
    desk = desk_factory(mailbox_config(tmp_path, dovecot, user, 1))
    report = desk.sync_once()
    assert report.ok, report.errors
    assert desk.count("SELECT count(*) FROM message") == total
    assert desk.count("SELECT count(DISTINCT external_id) FROM message") == total
    assert desk.count("SELECT last_uid FROM syncstate") == total


def test_a_big_sync_walks_its_chunks_rarely_and_leaves_the_collector_as_found(dovecot, tmp_path, desk_factory):
    # A chunk's records and rows live until it is stored and then go by reference counting: the
    # cycle collector, at Python's default threshold, walked them over and over for nothing. A
    # big sync raises the threshold while it runs and gives the process (a TUI's, say) back its own.
    import gc

    from agentdesk.sync.sources import email as sync

    user = dovecot.add_user()
    total = sync.PARALLEL_PARSE_MIN + 30  # parser processes: a big sync
    messages = mailgen.corpus(total + 1, seed=34)
    dovecot.write_maildir(user, messages[:1])
    desk = desk_factory(mailbox_config(tmp_path, dovecot, user, 1))
    assert desk.sync_once().ok  # a first, small sync: the imports and the ORM's set-up are done
    dovecot.append(user, messages[1:])
    collections: list[int] = []

    def count(phase: str, info: dict) -> None:
        if phase == "start":
            collections.append(info["generation"])

    found = gc.get_threshold()
    gc.set_threshold(700, 10, 10)  # Python's default, whatever pytest or a plugin set
    gc.callbacks.append(count)
    try:
        report = desk.sync_once()
        assert gc.get_threshold() == (700, 10, 10)
    finally:
        gc.callbacks.remove(count)
        gc.set_threshold(*found)
    assert report.ok, report.errors
    assert desk.count("SELECT count(*) FROM message") == total + 1
    assert len(collections) < 5, f"{len(collections)} collections while storing {total} messages"
