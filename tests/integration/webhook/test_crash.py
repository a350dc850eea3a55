"""Real process deaths during spool ingest: the replay neither loses nor doubles a message."""

from __future__ import annotations

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
