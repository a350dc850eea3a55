"""A full disk under the database and under a spool, made real with a small tmpfs.

Run through the real program: `sync --once` (a real Dovecot mailbox of 1 200 messages, and a
spool of 1 200 files), `note`/`set`/`reply`, `doctor`, and `webhook serve` writing into a full
spool. Each says one line naming the path and the free space, counts what was stored, exits 1,
and leaves nothing half-written behind. Mounting needs root (or CAP_SYS_ADMIN): elsewhere these
tests skip with that reason.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import BASIC_CONFIG

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
SECRET = "disk-full-secret"


def _mount_tmpfs(directory: Path, size: str) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip(
            "mounting a small tmpfs needs root (or CAP_SYS_ADMIN) and mount(8); run as root to test a full disk"
        )
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(directory)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(
            f"cannot mount a tmpfs here ({done.stderr.strip() or done.returncode}); "
            f"a container needs CAP_SYS_ADMIN to test a full disk"
        )


@pytest.fixture
def small_disk(tmp_path):
    """small_disk(name, size) -> a directory on its own tmpfs of `size` (e.g. "4m"), unmounted after."""
    mounted: list[Path] = []

    def mount(name: str, size: str) -> Path:
        directory = tmp_path / name
        _mount_tmpfs(directory, size)
        mounted.append(directory)
        return directory

    yield mount
    for directory in mounted:
        subprocess.run(["umount", "-l", str(directory)], capture_output=True)


def _grow(directory: Path, size: str) -> None:
    subprocess.run(["mount", "-o", f"remount,size={size}", str(directory)], check=True)


def _fill(directory: Path) -> None:
    """Take every byte left on the file system of `directory`."""
    fd = os.open(directory / "filler", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        for block in (65536, 4096, 1):
            try:
                while True:
                    os.write(fd, b"\0" * block)
            except OSError:
                pass
    finally:
        os.close(fd)


def _agentdesk(config: Path, *args: str, stdin: str | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "agentdesk", *args, "--config", str(config)],
        cwd=REPO,
        capture_output=True,
        text=True,
        input=stdin,
        timeout=timeout,
        env={**os.environ, "AGENTDESK_AGENT": "tester"},
    )


def _problems(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("agentdesk:")]


def _summary_stored(stderr: str) -> int:
    match = re.search(r"^sync: (\d+) new message\(s\), (\d+) already stored", stderr, re.M)
    assert match, stderr
    return int(match.group(1))


def _assert_one_disk_full_line(stderr: str, path: Path) -> str:
    assert "Traceback" not in stderr, stderr[-3000:]
    assert "savepoint" not in stderr, stderr[-3000:]
    (line,) = _problems(stderr)
    assert str(path) in line and "is full" in line, line
    assert re.search(r"\d+(\.\d)? (bytes|KiB|MiB) free in ", line), line
    return line


def _count(database: Path, sql: str) -> int:
    with sqlite3.connect(database) as connection:
        return connection.execute(sql).fetchone()[0]


# --- the database's disk full under sync ------------------------------------------------------


def test_mail_sync_on_a_full_disk_says_so_counts_what_was_stored_and_resumes(tmp_path, small_disk):
    from integration.email import mailgen
    from integration.email.servers import Dovecot, mailbox_config

    disk = small_disk("db", "4m")
    dovecot = Dovecot()
    dovecot.start()
    try:
        user = dovecot.add_user()
        dovecot.write_maildir(user, mailgen.corpus(1200, seed=7))
        config = mailbox_config(tmp_path / "desk", dovecot, user, 1)
        database = disk / "agentdesk.db"
        config.write_text(config.read_text().replace(str(tmp_path / "desk" / "agentdesk.db"), str(database)))

        first = _agentdesk(config, "sync", "--once")
        assert first.returncode == 1, first.stderr[-3000:]
        _assert_one_disk_full_line(first.stderr, database)
        stored = _count(database, "SELECT count(*) FROM message")
        assert 0 < stored < 1200
        assert _summary_stored(first.stderr) == stored
        # The checkpoint moved with what was committed, no further.
        last_uid = _count(database, "SELECT last_uid FROM syncstate WHERE folder='INBOX'")
        assert last_uid == stored

        _grow(disk, "64m")
        second = _agentdesk(config, "sync", "--once")
        assert second.returncode == 0, second.stderr[-3000:]
        assert _summary_stored(second.stderr) == 1200 - stored
        assert _count(database, "SELECT count(DISTINCT external_id) FROM message") == 1200
        assert _count(database, "SELECT count(*) FROM message") == 1200
    finally:
        dovecot.cleanup()


def _spool_config(root: Path, database: Path, spool: Path) -> Path:
    config = root / "config.toml"
    root.mkdir(parents=True, exist_ok=True)
    config.write_text(
        f'[database]\nurl = "sqlite:///{database}"\n'
        '[agents.tester]\nname = "Terry Tester"\nsignature = "Terry"\n'
        + BASIC_CONFIG
        + f"""
[[spool]]
name = "chat"
path = "{spool}"
adapter = "generic"
kind = "chat"
secret_command = "echo {SECRET}"
""",
        encoding="utf-8",
    )
    return config


def _chat_event(i: int, text: str = "") -> bytes:
    return json.dumps(
        {
            "id": f"evt-{i}",
            "sender": {"name": f"Visitor {i}", "handle": f"widget:{i}"},
            "text": text or f"message number {i} " + "about my order " * 20,
            "timestamp": "2026-11-24T09:00:00Z",
        }
    ).encode()


def _write_spool(spool: Path, count: int, start: int = 0) -> None:
    from agentdesk.channels.webhook import spool as spooling

    spooling.ensure_spool(spool)
    for i in range(start, start + count):
        spooling.write_payload(spool, _chat_event(i), "application/json", durable=False)


def test_spool_sync_on_a_full_disk_says_so_once_and_keeps_the_rest_in_new(tmp_path, small_disk):
    disk = small_disk("db", "3m")
    database, spool = disk / "agentdesk.db", tmp_path / "chat"
    config = _spool_config(tmp_path, database, spool)
    _write_spool(spool, 1200)

    done = _agentdesk(config, "sync", "--once")
    assert done.returncode == 1, done.stderr[-3000:]
    _assert_one_disk_full_line(done.stderr, database)
    stored = _count(database, "SELECT count(*) FROM message")
    assert 0 < stored < 1200
    assert _summary_stored(done.stderr) == stored
    assert len(list((spool / "cur").iterdir())) == stored
    assert len(list((spool / "new").iterdir())) == 1200 - stored
    assert list((spool / "rejected").iterdir()) == []

    _grow(disk, "64m")
    again = _agentdesk(config, "sync", "--once")
    assert again.returncode == 0, again.stderr[-3000:]
    assert _summary_stored(again.stderr) == 1200 - stored
    assert _count(database, "SELECT count(*) FROM message") == 1200


# --- actions and doctor on a full disk --------------------------------------------------------


def test_note_set_reply_and_doctor_on_a_full_disk(tmp_path, small_disk):
    disk = small_disk("db", "2m")
    database, spool = disk / "agentdesk.db", tmp_path / "chat"
    config = _spool_config(tmp_path, database, spool)
    _write_spool(spool, 3)
    assert _agentdesk(config, "sync", "--once").returncode == 0
    _fill(disk)

    for args in (("note", "1", "-"), ("set", "1", "--status", "pending"), ("reply", "1", "--body-file", "-")):
        done = _agentdesk(config, *args, stdin="We are looking into it. " * 400)
        assert done.returncode != 0, (args, done.stdout, done.stderr)
        assert done.stderr.count("\n") == 1, (args, done.stderr)
        _assert_one_disk_full_line(done.stderr, database)

    doctor = _agentdesk(config, "doctor")
    assert doctor.returncode == 1, doctor.stdout
    (line,) = [line for line in doctor.stdout.splitlines() if "database disk" in line]
    assert line.startswith("[FAIL]") and str(disk) in line and "free" in line, line
    (spool_line,) = [line for line in doctor.stdout.splitlines() if "(chat) disk" in line]
    assert not spool_line.startswith("[FAIL]"), spool_line  # the spool's own disk has room


def test_doctor_warns_of_a_spool_disk_running_low(tmp_path, small_disk):
    disk = small_disk("spool", "300m")
    config = _spool_config(tmp_path, tmp_path / "agentdesk.db", disk / "chat")
    _write_spool(disk / "chat", 1)
    doctor = _agentdesk(config, "doctor")
    (line,) = [line for line in doctor.stdout.splitlines() if "(chat) disk" in line]
    assert line.startswith("[warn]") and str(disk / "chat") in line and "MiB free" in line, line


# --- a full spool under the receiver ----------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _serve(config: Path, port: int) -> subprocess.Popen:
    process = subprocess.Popen(
        [sys.executable, "-m", "agentdesk", "webhook", "serve", "--port", str(port), "--config", str(config)],
        cwd=REPO,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return process
        time.sleep(0.05)
    process.kill()
    raise AssertionError(f"webhook serve did not listen: {process.stderr.read()}")


def _post(port: int, body: bytes) -> http.client.HTTPResponse:
    import hashlib
    import hmac

    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    signature = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    connection.request(
        "POST",
        "/hooks/chat",
        body=body,
        headers={"Content-Type": "application/json", "X-Agentdesk-Signature": signature},
    )
    response = connection.getresponse()
    response.read()
    connection.close()
    return response


def test_a_full_spool_answers_503_with_retry_after_and_leaves_nothing(tmp_path, small_disk):
    disk = small_disk("spool", "1m")
    spool = disk / "chat"
    config = _spool_config(tmp_path, tmp_path / "agentdesk.db", spool)
    _write_spool(spool, 1)
    port = _free_port()
    process = _serve(config, port)
    try:
        assert _post(port, _chat_event(1)).status == 200
        _fill(disk)
        # A body that does not fit (the write fails part-way) and a small one (the first block fails).
        for body in (_chat_event(2, "x" * 60_000), _chat_event(3)):
            response = _post(port, body)
            assert response.status == 503, response.status
            assert int(response.getheader("Retry-After")) > 0
            assert os.listdir(spool / "tmp") == []
        assert len(os.listdir(spool / "new")) == 2  # the one written before, the one accepted
    finally:
        process.terminate()
        process.wait(10)
    assert "Traceback" not in process.stderr.read()


def test_a_rejected_file_on_a_full_spool_disk_leaves_no_sidecar_behind(tmp_path, small_disk):
    disk = small_disk("spool", "1m")
    spool = disk / "chat"
    config = _spool_config(tmp_path, tmp_path / "agentdesk.db", spool)
    _write_spool(spool, 1)
    (spool / "new" / "broken.json").write_bytes(b"{not json")
    _fill(disk)
    done = _agentdesk(config, "sync", "--once")
    assert "Traceback" not in done.stderr, done.stderr
    leftovers = [name for name in os.listdir(spool / "tmp")]
    assert leftovers == [], leftovers
    sidecars = [name for name in os.listdir(spool / "rejected") if name.endswith(".error")]
    rejected = [name for name in os.listdir(spool / "rejected") if not name.endswith(".error")]
    assert len(sidecars) == len(rejected)  # a rejected file always has its reason, never an empty one
    for name in sidecars:
        assert (spool / "rejected" / name).stat().st_size > 0
