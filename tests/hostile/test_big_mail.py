"""A sender chooses a message's size: `agentdesk sync --once` against a real Dovecot holding a
40 MB message among ordinary ones stays under 200 MB of peak RSS (the storing process and its
parser processes together), stores every message once, keeps the big one's raw source whole
and shows its subject and body capped."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from hostile.big_mail import MB, attachment_and_html, text_body
from integration.email import mailgen

# The email integration tests' fixtures (a session Dovecot, a fresh user per test).
from integration.email.conftest import dovecot, mail_user  # noqa: F401
from integration.email.servers import mailbox_config
from process_memory import run_measured

ROOT = Path(__file__).resolve().parents[2]
LIMIT_KIB = 200 * 1024


def _server_copy(dovecot, user: str, uid: int) -> bytes:
    connection = dovecot.imap(user)
    try:
        connection.select("INBOX", readonly=True)
        typ, data = connection.uid("FETCH", str(uid), "(BODY.PEEK[])")
        assert typ == "OK"
        return next(item[1] for item in data if isinstance(item, tuple))
    finally:
        connection.logout()


@pytest.mark.integration
@pytest.mark.parametrize("ordinary", [60, 450], ids=["in-process-parse", "parser-processes"])
def test_a_40_mb_message_is_stored_whole_within_200_mb(dovecot, tmp_path, ordinary):  # noqa: F811
    user = dovecot.add_user()
    mail = mailgen.corpus(ordinary, seed=5)
    at = mail[len(mail) // 2][0]
    subject = "Huge " + "subject " * 200_000  # a 1.6 MB subject line
    big = attachment_and_html(40 * MB, n=ordinary, subject=subject)
    mail.insert(len(mail) // 2, (at, big))
    dovecot.write_maildir(user, mail)
    del mail, big
    config = mailbox_config(tmp_path, dovecot, user, 1)

    run = run_measured([sys.executable, "-m", "agentdesk", "--config", str(config), "sync", "--once"], cwd=ROOT)

    assert run.status == 0, run.stderr
    assert run.largest_kib() < LIMIT_KIB, f"a process of sync --once peaked at {run.summary()}"
    assert run.tree_kib < LIMIT_KIB, f"sync --once and its parsers peaked at {run.tree_kib // 1024} MiB together"
    with sqlite3.connect(tmp_path / "agentdesk.db") as db:
        assert db.execute("SELECT count(*) FROM message").fetchone()[0] == ordinary + 1
        assert db.execute("SELECT count(DISTINCT external_id) FROM message").fetchone()[0] == ordinary + 1
        message_id, stored_subject, body, parse_error = db.execute(
            "SELECT id, subject, body_text, parse_error FROM message WHERE external_id = ?",
            (f"big{ordinary}@sender.example",),
        ).fetchone()
        raw = db.execute("SELECT raw FROM messageraw WHERE message_id = ?", (message_id,)).fetchone()[0]
        attachment = db.execute("SELECT filename, size FROM attachment WHERE message_id = ?", (message_id,)).fetchall()
    uid = dovecot.uids(user)[len(dovecot.uids(user)) // 2]
    assert raw == _server_copy(dovecot, user, uid), "the raw source must be kept whole"
    assert len(stored_subject) <= 1_000 and stored_subject.endswith("…")
    assert len(body) < 2_200_000
    assert "the original is kept in full" in parse_error
    assert attachment and attachment[0][0] == "scan.bin" and attachment[0][1] > 25 * MB


@pytest.mark.integration
def test_show_prints_the_big_message_capped(dovecot, tmp_path):  # noqa: F811
    user = dovecot.add_user()
    dovecot.write_maildir(user, [(mailgen.corpus(1)[0][0], text_body(40 * MB, subject="Long " * 300_000))])
    config = mailbox_config(tmp_path, dovecot, user, 1)
    run = run_measured([sys.executable, "-m", "agentdesk", "--config", str(config), "sync", "--once"], cwd=ROOT)
    assert run.status == 0, run.stderr
    assert run.largest_kib() < LIMIT_KIB, run.summary()
    shown = subprocess.run(
        [sys.executable, "-m", "agentdesk", "--config", str(config), "list", "--json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert shown.returncode == 0, shown.stderr
    assert max(len(line) for line in shown.stdout.splitlines()) < 10_000
    with sqlite3.connect(tmp_path / "agentdesk.db") as db:
        raw_length, body_length = db.execute(
            "SELECT length(r.raw), length(m.body_text) FROM message m JOIN messageraw r ON r.message_id = m.id"
        ).fetchone()
    assert raw_length == 40 * MB
    assert body_length < 2_200_000
