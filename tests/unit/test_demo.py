"""The embedded demo is realistic enough to work in, and built once."""

from __future__ import annotations

import json
from collections import Counter
from datetime import datetime, timedelta

import pytest
from sqlalchemy import func
from sqlmodel import select

from agentdesk import cli, config
from agentdesk.demo import build
from agentdesk.domain import templates
from agentdesk.store import db, demo_load
from agentdesk.store.models import Conversation, Customer, Message


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    directory = tmp_path_factory.mktemp("demo")
    config_path = build.ensure_demo(directory)
    return directory, config_path


def _documents(config_path, capsys) -> list[dict]:
    assert cli.main(["--config", str(config_path), "list", "--view", "all", "--limit", "1000", "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_the_demo_has_the_promised_breadth(demo, capsys):
    _, config_path = demo
    documents = _documents(config_path, capsys)
    assert len(documents) >= 200
    assert {d["status"] for d in documents} == {"new", "open", "pending", "on_hold", "solved", "closed"}
    assert {d["priority"] for d in documents} == {"low", "normal", "high", "urgent"}
    assert {d["channel"] for d in documents} == {"email", "sms", "chat", "webform"}
    states = Counter(d["sla"]["state"] for d in documents)
    assert states["ok"] and states["warning"] and states["breached"], states
    assert len({d["customer"]["id"] for d in documents}) >= 55


def test_many_customers_have_history_on_two_or_more_channels(demo):
    _, config_path = demo
    settings = config.load(config_path)
    engine = db.open_database(settings.database_url)
    with db.read_session(engine) as session:
        assert session.exec(select(func.count()).select_from(Customer)).one() == 60
        channels: dict[int, set] = {}
        for customer_id, channel in session.exec(select(Conversation.customer_id, Conversation.channel)):
            channels.setdefault(customer_id, set()).add(channel)
        multi = [c for c in channels.values() if len(c) >= 2]
        assert len(multi) >= 20
        notes = session.exec(select(func.count()).select_from(Message).where(Message.direction == "note")).one()
        assert notes >= 10
    engine.dispose()


def test_the_demo_ships_templates_that_render(demo):
    directory, config_path = demo
    settings = config.load(config_path)
    found = templates.load_all(settings.templates_dir)
    assert len(found) >= 6 and any(t.name == "receipt" for t in found)
    values = {name: "x" for name in templates.VARIABLES}
    for template in found:
        assert templates.render(template, values).undefined == (), template.name


def test_the_demo_is_built_once(demo):
    directory, config_path = demo
    database = directory / "agentdesk.db"
    before = database.stat().st_mtime_ns
    assert build.ensure_demo(directory) == config_path
    assert database.stat().st_mtime_ns == before


def test_a_sized_demo_has_about_ten_messages_per_conversation(tmp_path):
    config_path = build.ensure_demo(tmp_path, conversations=600)
    engine = db.open_database(config.load(config_path).database_url)
    with db.read_session(engine) as session:
        conversations = session.exec(select(func.count()).select_from(Conversation)).one()
        messages = session.exec(select(func.count()).select_from(Message)).one()
    engine.dispose()
    assert conversations == 600
    assert 7 <= messages / conversations <= 13


def test_an_old_demo_is_brought_up_to_date_when_opened_again(tmp_path, capsys):
    config_path = build.ensure_demo(tmp_path)
    before = Counter(d["sla"]["state"] for d in _documents(config_path, capsys))
    engine = db.open_database(config.load(config_path).database_url)
    with db.read_session(engine) as session:
        created_before = session.get(Conversation, 1).created_at
    engine.dispose()
    # Make it a demo built two days ago: every clock would have broken since.
    demo_load.shift_times(tmp_path / "agentdesk.db", -2 * 86400)
    marker = tmp_path / build.MARKER
    built = json.loads(marker.read_text())
    built["built_at"] = (datetime.fromisoformat(built["built_at"]) - timedelta(days=2)).isoformat()
    marker.write_text(json.dumps(built))

    build.ensure_demo(tmp_path)
    engine = db.open_database(config.load(config_path).database_url)
    with db.read_session(engine) as session:
        shift = session.get(Conversation, 1).created_at - created_before
    engine.dispose()
    assert timedelta(0) <= shift <= timedelta(minutes=1)  # back where it was, plus the test's run time
    after = Counter(d["sla"]["state"] for d in _documents(config_path, capsys))
    assert after == before
