"""IMAP sync against a real Dovecot: exactly once, whatever happens to the server or to us. The tests
taking `imap_server` run against Cyrus IMAP as well (conftest.py): intake, IDLE, UIDVALIDITY, exactly
once, the server left untouched."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from integration.email import mailgen
from integration.email.servers import mailbox_config

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[3]


def _desk(tmp_path, dovecot, user, desk_factory, smtp_port=1, **kwargs):
    return desk_factory(mailbox_config(tmp_path, dovecot, user, smtp_port, **kwargs))


def _threads(messages) -> int:
    return sum(1 for _, raw in messages if b"In-Reply-To:" not in raw)


def test_initial_then_incremental_sync(imap_server, imap_user, tmp_path, desk_factory):
    messages = mailgen.corpus(40, seed=1)
    imap_server.append(imap_user, messages[:30])
    desk = _desk(tmp_path, imap_server, imap_user, desk_factory)

    report = desk.sync_once()
    assert report.ok, report.errors
    assert report.stored == 30
    assert desk.count("SELECT count(*) FROM message") == 30
    assert desk.count("SELECT count(*) FROM conversation") == _threads(messages[:30])
    assert desk.count("SELECT last_uid FROM syncstate WHERE source='support' AND folder='INBOX'") == 30
    # The channel's time, not ours: INTERNALDATE of the first message.
    first_at = desk.rows("SELECT at FROM message ORDER BY id LIMIT 1")[0][0]
    assert first_at.startswith(messages[0][0].strftime("%Y-%m-%d %H:%M"))

    imap_server.append(imap_user, messages[30:])
    report = desk.sync_once()
    assert (report.stored, report.ok) == (10, True)
    assert desk.count("SELECT count(*) FROM message") == 40
    assert desk.count("SELECT count(*) FROM conversation") == _threads(messages)
    assert desk.count("SELECT count(DISTINCT external_id) FROM message") == 40
    assert desk.sync_once().stored == 0
    # keep (the default) never changes the server: nothing was marked read.
    assert len(imap_server.uids(imap_user, criteria="UNSEEN")) == 40


def test_uidvalidity_reset_rescans_without_duplicates(imap_server, imap_user, tmp_path, desk_factory):
    messages = mailgen.corpus(12, seed=2)
    imap_server.append(imap_user, messages[:10])
    desk = _desk(tmp_path, imap_server, imap_user, desk_factory)
    assert desk.sync_once().stored == 10
    old = desk.count("SELECT uidvalidity FROM syncstate")

    new = imap_server.change_uidvalidity(imap_user, "INBOX", keep=messages[:10])
    assert new != old
    imap_server.append(imap_user, messages[10:])
    report = desk.sync_once()
    assert report.ok, report.errors
    assert (report.stored, sum(p.duplicates for p in report.polls)) == (2, 10)
    assert desk.count("SELECT count(*) FROM message") == 12
    assert desk.count("SELECT uidvalidity FROM syncstate") == new


def test_same_message_in_two_mailboxes_is_one_message(dovecot, tmp_path, desk_factory):
    first, second = dovecot.add_user("twin-a"), dovecot.add_user("twin-b")
    when, raw = mailgen.corpus(1, seed=3)[0]
    dovecot.append(first, [(when, b"Delivered-To: sales@example.com\r\nReceived: by mx1\r\n" + raw)])
    dovecot.append(second, [(when, b"Delivered-To: support@example.com\r\nReceived: by mx2\r\n" + raw)])
    extra = f"""
[[mailbox]]
name = "sales"
address = "sales@example.com"
host = "127.0.0.1"
port = {dovecot.port}
tls = "none"
username = "{second}"
password_command = "echo secret"
"""
    desk = _desk(tmp_path, dovecot, first, desk_factory, extra_mailboxes=extra)
    report = desk.sync_once()
    assert report.ok, report.errors
    assert (report.stored, sum(p.duplicates for p in report.polls)) == (1, 1)
    assert desk.count("SELECT count(*) FROM message") == 1
    assert desk.count("SELECT count(*) FROM conversation") == 1


def test_after_fetch_seen_and_move(imap_server, tmp_path, desk_factory):
    seen_user, move_user = imap_server.add_user("after-seen"), imap_server.add_user("after-move")
    messages = mailgen.corpus(5, seed=4)
    imap_server.append(seen_user, messages)
    imap_server.append(move_user, messages)
    seen = _desk(tmp_path / "seen", imap_server, seen_user, desk_factory, after_fetch="seen")
    assert seen.sync_once().stored == 5
    assert imap_server.uids(seen_user, criteria="UNSEEN") == []

    conn = imap_server.imap(move_user)
    conn.create("Archive")
    conn.logout()
    moved = _desk(tmp_path / "move", imap_server, move_user, desk_factory, after_fetch="move:Archive")
    assert moved.sync_once().stored == 5
    assert imap_server.uids(move_user) == []
    assert len(imap_server.uids(move_user, folder="Archive")) == 5
    assert moved.sync_once().stored == 0


def _run_cli_sync(config: Path, *extra: str, **popen) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "agentdesk", "sync", "--config", str(config), *extra],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        **popen,
    )


def _kill_once_stored(process: subprocess.Popen, desk, *, at_least: int) -> int:
    """SIGKILL a running sync once it has stored `at_least` messages (or ended); how many it had."""
    deadline = time.monotonic() + 60
    stored = 0
    while time.monotonic() < deadline:
        stored = desk.count("SELECT count(*) FROM message")
        if stored >= at_least or process.poll() is not None:
            break
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    process.stdout.close()
    process.stderr.close()
    return stored


def test_sigkill_mid_batch_then_resume(imap_server, imap_user, tmp_path, desk_factory):
    total = 700
    imap_server.write_maildir(imap_user, mailgen.corpus(total, seed=5))
    config = mailbox_config(tmp_path, imap_server, imap_user, 1)
    desk = desk_factory(config)
    stored = _kill_once_stored(_run_cli_sync(config, "--once"), desk, at_least=150)
    assert 0 < stored < total, f"killed too late to test anything ({stored} stored)"
    checkpoint = desk.count("SELECT last_uid FROM syncstate")
    # Exactly the messages up to the checkpoint are stored: the batch in flight was rolled back.
    assert desk.count("SELECT count(*) FROM message") == checkpoint

    result = subprocess.run(
        [sys.executable, "-m", "agentdesk", "sync", "--config", str(config), "--once"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert desk.count("SELECT count(*) FROM message") == total
    assert desk.count("SELECT count(DISTINCT external_id) FROM message") == total
    assert desk.count("SELECT last_uid FROM syncstate") == total
    assert desk.count("SELECT count(*) FROM messageraw") == total


def test_dovecot_restarted_mid_sync(own_dovecot, tmp_path, desk_factory):
    total = 600
    user = own_dovecot.add_user("restarted")
    own_dovecot.write_maildir(user, mailgen.corpus(total, seed=6))
    desk = _desk(tmp_path, own_dovecot, user, desk_factory)
    result = {}
    thread = threading.Thread(target=lambda: result.setdefault("report", desk.sync_once()))
    thread.start()
    deadline = time.monotonic() + 60
    while desk.count("SELECT count(*) FROM message") < 50 and time.monotonic() < deadline:
        time.sleep(0.02)
    own_dovecot.stop()
    time.sleep(0.3)
    own_dovecot.start()
    thread.join(120)
    report = result["report"]
    assert report.ok, report.errors
    assert desk.count("SELECT count(*) FROM message") == total
    assert desk.count("SELECT count(DISTINCT external_id) FROM message") == total


def test_once_exit_status_when_the_server_is_down(dovecot, tmp_path):
    from integration.email.servers import free_port

    class Closed:
        port = free_port()

    config = mailbox_config(tmp_path, Closed, "nobody", 1)
    process = _run_cli_sync(config, "--once")
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 1
    assert b"cannot connect to 127.0.0.1" in stderr


def _processes_with(marker: str) -> list[int]:
    """The pids of live processes whose environment holds `marker` (a program's children inherit it)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker.encode() in (entry / "environ").read_bytes():
                    found.append(int(entry.name))
            except OSError:  # ended meanwhile, or not ours to read
                pass
    return found


def test_program_sync_once_ends_with_everything_stored_and_reaped(dovecot, mail_user, tmp_path, desk_factory):
    # `agentdesk sync --once` as a program: its exit status, output and data, and no parser
    # process outlives it.
    from agentdesk.sync.sources import email as sync

    total = sync.PARALLEL_PARSE_MIN + 50  # big enough for the parser processes
    dovecot.write_maildir(mail_user, mailgen.corpus(total, seed=11))
    config = mailbox_config(tmp_path, dovecot, mail_user, 1)
    marker = f"AGENTDESK_TEST_RUN={os.getpid()}-{time.monotonic_ns()}"
    name, value = marker.split("=")
    result = subprocess.run(
        [sys.executable, "-m", "agentdesk", "--config", str(config), "sync", "--once"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, name: value},
    )
    assert result.returncode == 0, result.stderr
    assert f"support/INBOX: {total}/{total} messages" in result.stderr
    assert f"sync: {total} new message(s), 0 already stored" in result.stderr
    # No parser process outlived the program (multiprocessing's resource tracker ends on its own
    # when the program's end closes its pipe: a moment later).
    deadline = time.monotonic() + 2
    while _processes_with(marker) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert _processes_with(marker) == []
    assert not (tmp_path / "agentdesk.db-wal").exists()  # the database was closed, its WAL checkpointed
    desk = desk_factory(config)
    assert desk.count("SELECT count(*) FROM message") == total
    assert desk.count("SELECT count(*) FROM messageraw") == total
    assert desk.count("SELECT last_uid FROM syncstate") == total
    # The parser processes send messages back without their raw mail; what is stored is still
    # the server's copy, byte for byte.
    stored = {row[0] for row in desk.rows("SELECT raw FROM messageraw")}
    assert stored == set(_server_copies(dovecot, mail_user))


def _server_copies(dovecot, user: str) -> list[bytes]:
    connection = dovecot.imap(user)
    try:
        connection.select("INBOX", readonly=True)
        typ, data = connection.uid("FETCH", "1:*", "(BODY.PEEK[])")
        assert typ == "OK"
        return [item[1] for item in data if isinstance(item, tuple)]
    finally:
        connection.logout()


def test_program_sync_once_exit_status_when_the_server_is_down(tmp_path):
    from integration.email.servers import free_port

    class Closed:
        port = free_port()

    config = mailbox_config(tmp_path, Closed, "nobody", 1)
    result = subprocess.run(
        [sys.executable, "-m", "agentdesk", "--config", str(config), "sync", "--once"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "cannot connect to 127.0.0.1" in result.stderr
    assert "sync: 0 new message(s)" in result.stderr


def test_no_new_mail_sync_once_returns_without_waiting(dovecot, mail_user, tmp_path, desk_factory):
    dovecot.append(mail_user, mailgen.corpus(20, seed=8))
    config = mailbox_config(tmp_path, dovecot, mail_user, 1)
    desk_factory(config).sync_once()
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "agentdesk", "sync", "--config", str(config), "--once"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    assert "0 new message(s)" in result.stderr
    # It neither waits for IDLE nor for a poll interval (either would take 30 s or more); how fast it
    # is belongs to bench/bench_imap.py, not to a test on a shared machine.
    assert elapsed < 15


def test_idle_push_lands_within_five_seconds(imap_server, imap_user, tmp_path, desk_factory):
    desk = _desk(tmp_path, imap_server, imap_user, desk_factory)
    worker = desk.worker(poll_interval=120)  # so only IDLE can be what brings the mail in time
    thread = threading.Thread(target=worker.run_forever, daemon=True)
    thread.start()
    try:
        time.sleep(1.5)  # the first poll has run and IDLE is open
        latencies = []
        for n, (when, raw) in enumerate(mailgen.corpus(3, seed=9)):
            started = time.monotonic()
            imap_server.append(imap_user, [(when, raw)])
            while desk.count("SELECT count(*) FROM message") < n + 1:
                assert time.monotonic() - started < 5, "new mail not in the database within 5 s"
                time.sleep(0.02)
            latencies.append(time.monotonic() - started)
        print("IDLE delivery->DB latencies:", [f"{latency:.2f}s" for latency in latencies])
    finally:
        worker.stop.set()
        thread.join(15)
    assert not thread.is_alive()


# --- the program as users run it: same data, whatever happens meanwhile ---


def _program_sync(config: Path, **popen) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "agentdesk", "--config", str(config), "sync", "--once"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        **popen,
    )


def test_program_initial_then_incremental_sync(dovecot, mail_user, tmp_path, desk_factory):
    from agentdesk.sync.sources import email as sync

    messages = mailgen.corpus(sync.PARALLEL_PARSE_MIN + 1_100, seed=21)  # three batches, parsers
    first = sync.PARALLEL_PARSE_MIN + 1_060
    dovecot.write_maildir(mail_user, messages[:first])
    config = mailbox_config(tmp_path, dovecot, mail_user, 1)
    result = _program_sync(config)  # no database yet
    assert result.returncode == 0, result.stderr
    assert f"sync: {first} new message(s), 0 already stored" in result.stderr
    desk = desk_factory(config)
    assert desk.count("SELECT count(*) FROM message") == first
    assert desk.count("SELECT count(DISTINCT external_id) FROM message") == first
    assert desk.count("SELECT count(*) FROM conversation") == _threads(messages[:first])
    assert desk.count("SELECT last_uid FROM syncstate") == first

    dovecot.append(mail_user, messages[first:])
    result = _program_sync(config)  # from the checkpoint
    assert result.returncode == 0, result.stderr
    assert "sync: 40 new message(s), 0 already stored" in result.stderr
    assert desk.count("SELECT count(*) FROM message") == len(messages)
    assert desk.count("SELECT count(DISTINCT external_id) FROM message") == len(messages)
    assert desk.count("SELECT count(*) FROM conversation") == _threads(messages)
    assert desk.count("SELECT last_uid FROM syncstate") == len(messages)
    result = _program_sync(config)
    assert (result.returncode, "sync: 0 new message(s), 0 already stored" in result.stderr) == (0, True)
    assert len(dovecot.uids(mail_user, criteria="UNSEEN")) == len(messages)  # keep: read-only


def test_program_sigkill_mid_batch_then_resume(dovecot, mail_user, tmp_path, desk_factory):
    total = 1_200
    dovecot.write_maildir(mail_user, mailgen.corpus(total, seed=25))
    config = mailbox_config(tmp_path, dovecot, mail_user, 1)
    desk = desk_factory(config)
    # The program alone is killed, as the OOM killer would: its parser processes end by themselves.
    process = subprocess.Popen(
        [sys.executable, "-m", "agentdesk", "--config", str(config), "sync", "--once"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    stored = _kill_once_stored(process, desk, at_least=300)
    assert 0 < stored < total, f"killed too late to test anything ({stored} stored)"
    checkpoint = desk.count("SELECT last_uid FROM syncstate")
    assert desk.count("SELECT count(*) FROM message") == checkpoint

    result = _program_sync(config)  # resumes from that checkpoint
    assert result.returncode == 0, result.stderr
    assert f"sync: {total - checkpoint} new message(s), 0 already stored" in result.stderr
    assert desk.count("SELECT count(*) FROM message") == total
    assert desk.count("SELECT count(DISTINCT external_id) FROM message") == total
    assert desk.count("SELECT last_uid FROM syncstate") == total


def test_program_uidvalidity_reset_rescans_without_duplicates(dovecot, mail_user, tmp_path, desk_factory):
    messages = mailgen.corpus(12, seed=22)
    dovecot.append(mail_user, messages[:10])
    config = mailbox_config(tmp_path, dovecot, mail_user, 1)
    assert _program_sync(config).returncode == 0
    desk = desk_factory(config)
    old = desk.count("SELECT uidvalidity FROM syncstate")

    dovecot.doveadm_run("mailbox", "update", "-u", mail_user, "--uid-validity", str(old + 1000), "INBOX")
    dovecot.append(mail_user, messages[10:])
    result = _program_sync(config)
    assert result.returncode == 0, result.stderr
    assert "sync: 2 new message(s), 10 already stored" in result.stderr
    assert desk.count("SELECT count(*) FROM message") == 12
    assert desk.count("SELECT uidvalidity FROM syncstate") == old + 1000
