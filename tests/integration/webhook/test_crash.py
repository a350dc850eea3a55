"""Real process deaths during spool ingest: the replay neither loses nor doubles a message."""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import BASIC_CONFIG
from sqlmodel import select

from agentdesk import config
from agentdesk.channels.webhook import spool as spooling
from agentdesk.domain import clocks
from agentdesk.store import db
from agentdesk.store.models import Message
from agentdesk.sync.sources import spool as spool_source

pytestmark = pytest.mark.integration

CHILD = """
import os, sys
from pathlib import Path
from agentdesk import config
from agentdesk.channels.webhook import spool as spooling
from agentdesk.sync.sources import spool as spool_source
from agentdesk.domain import clocks
from agentdesk.store import db
settings = config.load(Path(sys.argv[1]))
engine = db.open_database(settings.database_url)
source = spool_source.SpoolSource(settings.spool[0], engine=engine, policies=clocks.Policies.from_settings(settings),
                              batch=int(sys.argv[3]))
if sys.argv[2] == "die-before-rename":
    source._move = lambda *a, **k: os._exit(137)   # the commit is done; the process dies before any rename
source.poll()
"""


def setup(tmp_path: Path, count: int) -> tuple[Path, Path]:
    path = tmp_path / "config.toml"
    path.write_text(
        f'[database]\nurl = "sqlite:///{tmp_path / "agentdesk.db"}"\n'
        + BASIC_CONFIG
        + f'[[spool]]\nname = "chat"\npath = "{tmp_path / "chat"}"\nadapter = "generic"\nkind = "chat"\n'
    )
    spool_dir = tmp_path / "chat"
    spooling.ensure_spool(spool_dir)
    for i in range(count):
        spooling.write_payload(
            spool_dir,
            json.dumps({"id": f"e{i}", "sender": {"handle": f"h{i % 13}"}, "text": f"text {i}"}).encode(),
            "application/json",
            durable=False,
        )
    return path, spool_dir


def replay_and_count(config_path: Path, spool_dir: Path) -> tuple[spool_source.SpoolPollReport, list[str]]:
    settings = config.load(config_path)
    engine = db.open_database(settings.database_url)
    result = spool_source.SpoolSource(
        settings.spool[0], engine=engine, policies=clocks.Policies.from_settings(settings)
    ).poll()
    with db.read_session(engine) as session:
        ids = list(session.exec(select(Message.external_id)).all())
    engine.dispose()
    return result, ids


def test_process_killed_after_the_commit_before_the_rename(tmp_path):
    config_path, spool_dir = setup(tmp_path, 30)
    child = subprocess.run([sys.executable, "-c", CHILD, str(config_path), "die-before-rename", "200"], timeout=120)
    assert child.returncode == 137
    assert len(os.listdir(spool_dir / "new")) == 30 and os.listdir(spool_dir / "cur") == []
    result, ids = replay_and_count(config_path, spool_dir)
    assert (result.stored, result.duplicates, result.files) == (0, 30, 30)
    assert sorted(ids) == sorted(f"e{i}" for i in range(30))


def test_sigkill_at_a_random_moment_then_replay_is_exactly_once(tmp_path):
    count = 600
    config_path, spool_dir = setup(tmp_path, count)
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(config_path), "run", "50"])
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(os.listdir(spool_dir / "cur")) < 120:
        time.sleep(0.01)
    child.send_signal(signal.SIGKILL)
    child.wait(30)
    moved = len(os.listdir(spool_dir / "cur"))
    assert 0 < moved < count, "the kill should land in the middle of the run"
    result, ids = replay_and_count(config_path, spool_dir)
    assert len(ids) == len(set(ids)) == count  # nothing doubled, nothing lost
    assert result.stored + result.duplicates == count - moved
    assert os.listdir(spool_dir / "new") == [] and len(os.listdir(spool_dir / "cur")) == count


RECEIVER_DIES_BEFORE_RENAME = """
import os, sys
from pathlib import Path
from agentdesk import config
from agentdesk.channels.webhook import receiver
settings = config.load(Path(sys.argv[1]))
server = receiver.make_server(receiver.endpoints_from_settings(settings), host="127.0.0.1", port=0)
os.rename = lambda *a, **k: os._exit(137)  # the body is written and fsynced; the process dies before its rename
print(server.server_address[1], flush=True)
server.serve_forever()
"""


def test_receiver_killed_after_the_write_before_the_rename_leaves_nothing_the_reader_takes(tmp_path):
    """The whole, verified, fsynced body of a post whose receiver died before the rename stays in
    tmp/: never answered, never read by sync (nor is a complete payload under a dot name in new/,
    a name readers skip), and removed by `spool clean` once an hour old."""
    config_path, spool_dir = setup(tmp_path, 0)
    with config_path.open("a") as text:
        text.write('secret_command = "echo crash-secret"\n')
    child = subprocess.Popen(
        [sys.executable, "-c", RECEIVER_DIES_BEFORE_RENAME, str(config_path)], stdout=subprocess.PIPE, text=True
    )
    port = int(child.stdout.readline())
    body = json.dumps({"id": "unacknowledged-1", "sender": {"handle": "h1"}, "text": "never acknowledged"}).encode()
    signature = "sha256=" + hmac.new(b"crash-secret", body, hashlib.sha256).hexdigest()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    with pytest.raises((http.client.HTTPException, OSError)):  # no answer at all: the process died
        connection.request(
            "POST",
            "/hooks/chat",
            body=body,
            headers={"Content-Type": "application/json", "X-Agentdesk-Signature": signature},
        )
        connection.getresponse()
    connection.close()
    assert child.wait(30) == 137
    (left,) = os.listdir(spool_dir / "tmp")
    assert (spool_dir / "tmp" / left).read_bytes() == body  # complete, and still never taken
    dotted = json.dumps({"id": "dotted-1", "sender": {"handle": "h2"}, "text": "being written"}).encode()
    (spool_dir / "new" / ".1700000000.P1Q1.host.json").write_bytes(dotted)
    result, ids = replay_and_count(config_path, spool_dir)
    assert (result.files, result.stored) == (0, 0) and ids == []
    assert os.listdir(spool_dir / "new") == [".1700000000.P1Q1.host.json"] and os.listdir(spool_dir / "cur") == []
    assert spooling.stale_tmp_files(spool_dir) == []  # a writer may still be at work: left alone for an hour
    removed, kept = spooling.remove_stale_tmp_files(spool_dir, now=time.time() + spooling.STALE_TMP_SECONDS)
    assert [(item.name, item.size) for item in removed] == [(left, len(body))] and kept == []
    assert os.listdir(spool_dir / "tmp") == []
