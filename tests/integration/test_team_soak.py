"""Eight agents and a sync on the same conversations for a minute, on SQLite and PostgreSQL.

Afterwards: no lost update, no duplicate reply, every action in the audit log, no "database is
locked" reaching an agent. AGENTDESK_SOAK_SECONDS shortens the run while developing.

A lost update is checked two ways. Two agents' writes from the same version is what an agent
sees, but it takes a stale write landing between two agents' commits, so it is rare even when
writes are being lost. The version count catches every one: each write raises its conversation's
version by exactly one, so a write computed from a row read before another writer's commit
leaves the final version short.
"""

from __future__ import annotations

import os
from collections import Counter, defaultdict

from sqlalchemy import func
from sqlmodel import col, select
from teamsim import run_team

from agentdesk.store import db
from agentdesk.store.models import Conversation, Event, Message

SECONDS = float(os.environ.get("AGENTDESK_SOAK_SECONDS", "60"))
OPTIMISTIC = {"reply", "tag", "status", "priority"}


def test_a_team_of_eight_agents_and_a_sync_for_a_minute(any_database_url, tmp_path):
    result = run_team(any_database_url, agents=8, seconds=SECONDS, conversations=12, workdir=tmp_path)
    logs, ingest = result["agents"], result["ingest"]
    successes = [(log["agent"], *success) for log in logs for success in log["successes"]]

    # The simulation did real work, with real contention.
    assert len(successes) > 8 * SECONDS * 0.5
    assert sum(log["conflicts"] for log in logs) > 0
    assert Counter(action for _, action, *_ in successes).keys() >= {"claim", "reply", "tag", "status", "priority"}

    # No "database is locked" ever reached an agent or the sync.
    assert sum(log["locked"] for log in logs) == 0 and ingest["locked"] == 0

    # No lost update: two successful writes never started from the same version of a conversation.
    bases = defaultdict(list)
    for _agent, action, conversation_id, base_version in successes:
        if action in OPTIMISTIC:
            bases[conversation_id].append(base_version)
    for conversation_id, versions in bases.items():
        duplicates = [v for v, n in Counter(versions).items() if n > 1]
        assert duplicates == [], f"AD-{conversation_id}: writes from the same version {duplicates}"

    # Every write raised the version by one: an agent's claim, reply or change, a customer's follow-up.
    writes = Counter(c for _agent, action, c, _ in successes if not action.endswith("-noop"))
    writes.update(c for _, c in ingest["stored"] if c in result["seed_versions"])
    expected_versions = {c: version + writes[c] for c, version in result["seed_versions"].items()}

    engine = db.open_database(any_database_url)
    with db.read_session(engine) as session:
        versions = dict(
            session.exec(
                select(Conversation.id, Conversation.version).where(col(Conversation.id).in_(list(expected_versions)))
            ).all()
        )
        lost = {
            f"AD-{c}": expected - versions[c] for c, expected in expected_versions.items() if versions[c] != expected
        }
        assert lost == {}, f"version bumps lost (a write from a stale row) per conversation: {lost}"

        # No duplicate reply, and no reply lost or invented: the database holds exactly the logged replies.
        replies = session.exec(
            select(Message.conversation_id, Message.author_login).where(Message.direction == "outbound")
        ).all()
        logged_replies = [(c, a) for a, action, c, _ in successes if action == "reply"]
        assert Counter(replies) == Counter(logged_replies)

        # Every action is in the audit log, by the agent who did it, on the conversation it touched.
        events = Counter(
            session.exec(select(Event.agent, Event.action, Event.conversation_id).where(Event.agent != "system")).all()
        )
        logged = Counter((a, action, c) for a, action, c, _ in successes if not action.endswith("-noop"))
        for (agent, action, conversation_id), count in logged.items():
            if action == "status":
                continue  # a reply on a new conversation also records a status event; checked below
            assert events[(agent, action, conversation_id)] == count, (agent, action, conversation_id)
        status_events = sum(n for (a, action, c), n in events.items() if action == "status")
        logged_status = sum(n for (a, action, c), n in logged.items() if action == "status")
        assert logged_status <= status_events <= logged_status + len(logged_replies)

        # The sync stored every message exactly once.
        stored = ingest["stored"]
        assert len(stored) > SECONDS
        live = session.exec(
            select(func.count()).select_from(Message).where(col(Message.external_id).like("live-%"))
        ).one()
        assert live == len(stored) == len({external_id for external_id, _ in stored})
    engine.dispose()
