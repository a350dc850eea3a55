"""Two writers on one conversation at the same moment, on a real PostgreSQL, in explicit steps.

An agent's write holds the conversation's row (its transaction is open); meanwhile a second
writer (the sync storing the customer's follow-up, an SLA recompute) starts on the same
conversation. The test waits until PostgreSQL reports that second writer waiting for the row,
then commits the agent. Whatever the second writer then writes must start from the agent's
committed row: the version only ever rises (else two agents can both write from the same
version: a lost update, the soak test's "writes from the same version"), and nothing the agent
did is undone by a row read before it. SQLite needs no such test: a write transaction holds the
whole database from its BEGIN.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import text
from sqlmodel import col, select

from agentdesk import config
from agentdesk.channels.base import InboundMessage
from agentdesk.domain import clocks, csat, queue, replies
from agentdesk.ingest import ingest_message
from agentdesk.store import conversations as conversation_store
from agentdesk.store import db
from agentdesk.store.models import Conversation, Event, Message

pytestmark = pytest.mark.integration

NOW = datetime(2026, 3, 2, 10, 0, tzinfo=timezone.utc)


@pytest.fixture
def engine(postgres_server):
    engine = db.open_database(postgres_server.create_database("concurrent_writes"))
    yield engine
    engine.dispose()


def _policies() -> clocks.Policies:
    return clocks.Policies.from_settings(config.Settings())


def _mail(external_id: str, at: datetime, *, in_reply_to: str = "") -> InboundMessage:
    return InboundMessage(
        source="support",
        channel="email",
        external_id=external_id,
        sender_address="ada@customers.example",
        sender_name="Ada",
        received_at=at,
        subject="My order",
        body_text="Where is my order?" if not in_reply_to else "And one more thing.",
        in_reply_to=in_reply_to,
    )


def _seed(engine) -> int:
    with db.write_session(engine) as session:
        stored = ingest_message(session, _mail("first@customers.example", NOW), policies=_policies(), now=NOW)
        session.commit()
    return stored.conversation_id


def _conversation(engine, conversation_id: int) -> Conversation:
    with db.read_session(engine) as session:
        found = session.get(Conversation, conversation_id)
        assert found is not None
        return found


def _someone_waits_for_a_lock(engine) -> bool:
    # A transaction of its own each time: PostgreSQL keeps one snapshot of pg_stat_activity per transaction.
    with engine.connect() as observer:
        return bool(
            observer.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND wait_event_type = 'Lock'"
                )
            ).scalar()
        )


def _while_the_agent_holds_the_row(
    engine, agent_write: Callable, other_write: Callable, meanwhile: Callable[[], None] = lambda: None
) -> None:
    """Run `agent_write(session)` and leave it uncommitted; start `other_write()` in a thread;
    once PostgreSQL shows that thread's transaction waiting for a lock, call `meanwhile()` and
    commit the agent's."""
    with db.write_session(engine) as agent_session:
        agent_write(agent_session)
        agent_session.flush()
        failures: list[BaseException] = []

        def run_other() -> None:
            try:
                other_write()
            except BaseException as error:  # handed to the test's thread
                failures.append(error)

        other = threading.Thread(target=run_other)
        other.start()
        deadline = time.monotonic() + 20
        while not _someone_waits_for_a_lock(engine):
            assert other.is_alive(), f"the second writer finished without waiting for the row: {failures}"
            assert time.monotonic() < deadline, "the second writer never waited for the agent's row"
            time.sleep(0.01)
        meanwhile()
        agent_session.commit()
    other.join(timeout=20)
    assert not other.is_alive()
    if failures:
        raise failures[0]


def test_a_follow_up_stored_while_an_agent_solves_reopens_the_conversation(engine):
    conversation_id = _seed(engine)
    before = _conversation(engine, conversation_id).version
    policies = _policies()
    replied_at, follow_up_at = NOW + timedelta(minutes=5), NOW + timedelta(minutes=5, seconds=1)

    def agent_replies_and_solves(session) -> None:
        conversation = queue.load_for_update(session, f"AD-{conversation_id}")
        replies.reply(
            session,
            conversation=conversation,
            body="It ships today.",
            agent="ana",
            agent_name="Ana",
            now=replied_at,
            policies=policies,
            status="solved",
            expected_version=before,
        )

    def sync_stores_the_follow_up() -> None:
        follow_up = _mail("second@customers.example", follow_up_at, in_reply_to="first@customers.example")
        with db.write_session(engine) as session:
            stored = ingest_message(session, follow_up, policies=policies, now=follow_up_at)
            assert stored.conversation_id == conversation_id
            session.commit()

    _while_the_agent_holds_the_row(engine, agent_replies_and_solves, sync_stores_the_follow_up)

    after = _conversation(engine, conversation_id)
    # The agent's reply and solve are one version, the customer's message and the reopening two more.
    assert after.version == before + 3
    # The customer wrote after the agent solved it: it is open again, the customer waiting since then.
    assert after.status == "open"
    assert after.waiting_since == follow_up_at
    assert after.last_customer_message_at == follow_up_at
    assert after.last_agent_reply_at == replied_at
    with db.read_session(engine) as session:
        statuses = session.exec(
            select(Event.agent, Event.detail)
            .where(Event.conversation_id == conversation_id, Event.action == "status")
            .order_by(col(Event.id))
        ).all()
    assert [agent for agent, _ in statuses][-2:] == ["ana", "system"]
    assert '"new": "open"' in statuses[-1][1] and '"old": "solved"' in statuses[-1][1]


def _sla(first_reply: str, urgent_first_reply: str) -> clocks.Policies:
    return clocks.Policies.from_settings(
        config.parse(
            f'[[sla_policy]]\nname = "email"\nfirst_reply = "{first_reply}"\n'
            f'[sla_policy.priority.urgent]\nfirst_reply = "{urgent_first_reply}"\n'
        )
    )


def test_an_sla_recompute_while_an_agent_makes_it_urgent_keeps_the_urgent_target(engine):
    before_edit, after_edit = _sla("4h", "30m"), _sla("2h", "15m")
    with db.write_session(engine) as session:
        stored = ingest_message(session, _mail("first@customers.example", NOW), policies=before_edit, now=NOW)
        session.commit()
    conversation_id = stored.conversation_id
    before = _conversation(engine, conversation_id)
    assert before.first_response_due == NOW + timedelta(hours=4)
    changed_at = NOW + timedelta(minutes=1)

    def agent_makes_it_urgent(session) -> None:
        conversation = queue.load_for_update(session, f"AD-{conversation_id}")
        queue.change(
            session,
            conversation=conversation,
            agent="ana",
            now=changed_at,
            policies=before_edit,
            priority="urgent",
            expected_version=before.version,
        )

    def sync_applies_the_edited_policy() -> None:
        clocks.recompute(lambda: db.write_session(engine), policies=after_edit, now=changed_at, agent="system")

    _while_the_agent_holds_the_row(engine, agent_makes_it_urgent, sync_applies_the_edited_policy)

    after = _conversation(engine, conversation_id)
    assert after.priority == "urgent"
    # The edited policy's urgent target, not its normal one computed from the row before the agent's change.
    assert after.first_response_due == NOW + timedelta(minutes=15)
    # One version for the agent's change, one for the recompute's.
    assert after.version == before.version + 2


def test_a_survey_due_while_an_agent_reopens_the_conversation_is_not_sent(engine, tmp_path):
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "csat.md").write_text("How did we do with {{ ref }}? Reply 1-5.\n", encoding="utf-8")
    settings = config.parse(
        f'[templates]\ndir = "{templates}"\n'
        '[[mailbox]]\nname = "support"\naddress = "support@northwind.example"\nhost = "imap.example"\n'
        'csat = "csat"\ncsat_delay = "2h"\n',
        source=tmp_path / "config.toml",
    )
    policies = clocks.Policies.from_settings(settings)
    conversation_id = _seed(engine)
    with db.write_session(engine) as session:
        queue.change(
            session,
            conversation=queue.load_for_update(session, f"AD-{conversation_id}"),
            agent="ana",
            now=NOW,
            policies=policies,
            status="solved",
        )
        session.commit()
    before = _conversation(engine, conversation_id).version
    due = NOW + timedelta(hours=2)

    def agent_reopens(session) -> None:
        conversation = queue.load_for_update(session, f"AD-{conversation_id}")
        queue.change(
            session,
            conversation=conversation,
            agent="ana",
            now=due,
            policies=policies,
            status="open",
            expected_version=before,
        )

    def sync_queues_the_due_surveys() -> None:
        with db.write_session(engine) as session:
            assert csat.queue_due_surveys(session, settings=settings, policies=policies, now=due) == []
            session.commit()

    _while_the_agent_holds_the_row(engine, agent_reopens, sync_queues_the_due_surveys)

    after = _conversation(engine, conversation_id)
    assert after.status == "open" and after.version == before + 1
    with db.read_session(engine) as session:
        assert session.exec(select(Message).where(Message.kind == "survey")).all() == []


def _second(engine) -> int:
    other = dataclasses.replace(
        _mail("other@customers.example", NOW), sender_address="bo@customers.example", subject="Another thing"
    )
    with db.write_session(engine) as session:
        stored = ingest_message(session, other, policies=_policies(), now=NOW)
        session.commit()
    return stored.conversation_id


def _row_is_free(engine, conversation_id: int) -> bool:
    """Whether another transaction could lock the row now (NOWAIT: fails at once when it is held)."""
    with engine.connect() as observer:
        try:
            observer.execute(
                text("SELECT id FROM conversation WHERE id = :id FOR UPDATE NOWAIT"), {"id": conversation_id}
            )
        except Exception:
            return False
        finally:
            observer.rollback()
    return True


@pytest.mark.parametrize("action", ["change", "claim", "macro", "spam", "merge"])
def test_a_bulk_action_holds_no_row_while_it_waits_for_a_lower_one(engine, action, tmp_path):
    """Two agents act on overlapping marked rows, each marked in their own order. Locking row by
    row in that order, each could hold a row the other waits for: PostgreSQL then fails one of
    them ("deadlock detected"). Locked in id order instead, the second waits on the lowest row
    holding none, and both go through."""
    from agentdesk.app import conversations, macros, spam
    from agentdesk.app.desk import Desk

    low, high = sorted((_seed(engine), _second(engine)))
    settings = config.parse('[[macro]]\nname = "vip"\nadd_tags = ["vip"]\n')
    desk = Desk(settings=settings, agent="bo", engine_given=engine)
    # The agent marked the higher row first.
    run = {
        "change": lambda: conversations.change(desk, [high, low], priority="high"),
        "claim": lambda: conversations.claim(desk, [high, low]),
        "macro": lambda: macros.run(desk, "vip", [high, low]),
        "spam": lambda: spam.mark_spam(desk, [high, low]),
        "merge": lambda: conversations.merge(desk, [low], f"AD-{high}"),  # the kept one is locked first
    }[action]

    def the_higher_row_is_free() -> None:
        # Waiting for the lower row, the bulk action holds the higher one free for others.
        assert _row_is_free(engine, high)

    _while_the_agent_holds_the_row(
        engine,
        lambda session: queue.load_for_update(session, f"AD-{low}"),  # another agent's change holds the lower row
        run,
        the_higher_row_is_free,
    )
    changed = [_conversation(engine, each) for each in (low, high)]
    if action == "change":
        assert [c.priority for c in changed] == ["high", "high"]
    elif action == "claim":
        assert [c.assignee for c in changed] == ["bo", "bo"]
    elif action == "spam":
        assert [c.aside for c in changed] == ["spam", "spam"]
    elif action == "merge":
        assert changed[0].merged_into_id == high
    else:
        with db.read_session(engine) as session:
            for each in (low, high):
                assert "vip" in conversation_store.tag_names(session=session, conversation_id=each)
