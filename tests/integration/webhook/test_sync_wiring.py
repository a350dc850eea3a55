"""The spool channel inside the sync worker: sources and senders registered, one worker pass."""

from __future__ import annotations

import json

import pytest
from conftest import BASIC_CONFIG, FIXED_NOW
from sqlmodel import select

from agentdesk import config
from agentdesk.channels.webhook import spool as spooling
from agentdesk.domain import clocks, replies
from agentdesk.store import db
from agentdesk.store.models import Conversation, Outbox
from agentdesk.sync import worker as sync

pytestmark = pytest.mark.integration


def test_one_sync_pass_ingests_spools_and_delivers_spool_replies(tmp_path, caplog):
    path = tmp_path / "config.toml"
    path.write_text(
        f'[database]\nurl = "sqlite:///{tmp_path / "agentdesk.db"}"\n'
        + BASIC_CONFIG
        + f"""
[[spool]]
name = "chat"
path = "{tmp_path / "chat"}"
adapter = "generic"
kind = "chat"
outbound = {{ spool = "{tmp_path / "chat-out"}" }}
"""
    )
    settings = config.load(path)
    engine = db.open_database(settings.database_url)
    policies = clocks.Policies.from_settings(settings)
    ctx = sync.SyncContext(settings=settings, engine=engine, policies=policies)
    sources = sync.build_sources(ctx)
    assert [s.name for s in sources] == ["chat"]
    chat_dir = tmp_path / "chat"
    spooling.write_payload(
        chat_dir, json.dumps({"id": "c1", "sender": {"handle": "w:1"}, "text": "hi"}).encode(), "application/json"
    )
    spooling.write_payload(chat_dir, b"{not json", "application/json")
    worker = sync.SyncWorker(ctx, sources, sync.build_senders(ctx))
    with caplog.at_level("WARNING", logger="agentdesk.sync"):
        report = worker.run_once()
    assert report.ok and report.stored == 1  # a rejected file is handled input
    assert "rejected" in caplog.text and "invalid JSON" in caplog.text
    with db.write_session(engine) as session:
        conversation = session.exec(select(Conversation)).one()
        replies.reply(
            session,
            conversation=conversation,
            body="Hello!",
            agent="tester",
            agent_name="Terry",
            now=FIXED_NOW,
            policies=policies,
        )
        session.commit()
    report = worker.run_once()
    assert report.delivery.sent == 1
    (written,) = list((tmp_path / "chat-out" / "new").iterdir())
    assert json.loads(written.read_text())["recipient"] == {"handle": "w:1"}
    with db.read_session(engine) as session:
        assert session.exec(select(Outbox)).one().state == "sent"
    for source in sources:
        source.close()
    engine.dispose()
