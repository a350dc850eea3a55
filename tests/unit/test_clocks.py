"""Clock events recorded on a real database through the domain services that change conversations."""

from __future__ import annotations

import json
from datetime import timedelta
from types import SimpleNamespace

import factories
import pytest
from conftest import BASIC_CONFIG, FIXED_NOW
from sqlmodel import col, select

from agentdesk import config
from agentdesk.domain import clocks, queue, replies, sla
from agentdesk.store import db
from agentdesk.store.models import NEVER, Conversation, Event, SlaClockEvent

T = FIXED_NOW  # Tuesday 10:30 in Amsterdam: the office calendar is open
M = timedelta(minutes=1)
H = timedelta(hours=1)


def _events(engine, conversation_id):
    with db.read_session(engine) as session:
        rows = session.exec(
            select(SlaClockEvent)
            .where(SlaClockEvent.conversation_id == conversation_id)
            .order_by(col(SlaClockEvent.id))
        ).all()
        return [(row.target, row.event, row.at, json.loads(row.detail)) for row in rows]


def _new(engine, policies, *, channel="email", at=T):
    sender = "+31612345678" if channel == "sms" else "greta@velo.example"
    return factories.ingest(
        engine, policies, factories.inbound(at=at, channel=channel, sender=sender), now=at
    ).conversation_id


def _act(engine, conversation_id, action):
    with db.write_session(engine) as session:
        conversation = session.get(Conversation, conversation_id)
        result = action(session, conversation)
        session.commit()
        return result


def _reply(engine, policies, conversation_id, now, **kwargs):
    return _act(
        engine,
        conversation_id,
        lambda session, conversation: replies.reply(
            session,
            conversation=conversation,
            body="On it.",
            agent="tester",
            agent_name="Terry",
            now=now,
            policies=policies,
            **kwargs,
        ),
    )


def _status(engine, policies, conversation_id, now, status):
    return _act(
        engine,
        conversation_id,
        lambda session, conversation: queue.change(
            session, conversation=conversation, agent="tester", now=now, policies=policies, status=status
        ),
    )


def _conversation(engine, conversation_id) -> Conversation:
    with db.read_session(engine) as session:
        return session.get(Conversation, conversation_id)


def test_a_new_conversation_records_its_clocks_and_stores_their_due_times(engine, policies):
    conversation_id = _new(engine, policies)
    assert [(target, event, at) for target, event, at, _ in _events(engine, conversation_id)] == [
        ("first_reply", "activate", T),
        ("resolution", "activate", T),
    ]
    _, _, _, detail = _events(engine, conversation_id)[0]
    assert detail["policy"] == "email" and detail["due"] == (T + H).isoformat()
    conversation = _conversation(engine, conversation_id)
    assert (conversation.sla_policy, conversation.first_response_due, conversation.queue_due) == ("email", T + H, T + H)


def test_touching_again_records_nothing_new(engine, policies):
    conversation_id = _new(engine, policies)
    before = len(_events(engine, conversation_id))
    _act(
        engine,
        conversation_id,
        lambda session, conversation: queue.touch(session, conversation=conversation, policies=policies, now=T + 5 * M),
    )
    assert len(_events(engine, conversation_id)) == before


def test_an_internal_note_is_not_a_reply(engine, policies):
    conversation_id = _new(engine, policies)
    _act(
        engine,
        conversation_id,
        lambda session, conversation: replies.add_note(
            session,
            conversation=conversation,
            body="Asked the warehouse.",
            agent="tester",
            agent_name="Terry",
            now=T + 10 * M,
            policies=policies,
        ),
    )
    assert not [e for e in _events(engine, conversation_id) if e[1] == "fulfil"]
    assert _conversation(engine, conversation_id).first_response_due == T + H


def test_an_automatic_receipt_is_not_a_reply(engine, policies):
    conversation_id = _new(engine, policies)
    _reply(engine, policies, conversation_id, T + M, kind="receipt")
    assert not [e for e in _events(engine, conversation_id) if e[1] == "fulfil"]
    conversation = _conversation(engine, conversation_id)
    assert (conversation.first_responded_at, conversation.first_response_due) == (None, T + H)


def test_a_reply_fulfils_first_reply_and_a_customer_reply_starts_next_reply(engine, policies):
    conversation_id = _new(engine, policies)
    _reply(engine, policies, conversation_id, T + 20 * M)
    fulfil = [e for e in _events(engine, conversation_id) if e[1] == "fulfil"]
    assert [(target, at, detail["met"]) for target, _, at, detail in fulfil] == [("first_reply", T + 20 * M, True)]
    factories.ingest(
        engine,
        policies,
        factories.inbound(at=T + H, subject="Re: Spokes keep breaking", conversation_hint=f"AD-{conversation_id}"),
        now=T + H,
    )
    assert ("next_reply", "activate", T + H) in [e[:3] for e in _events(engine, conversation_id)]
    assert _conversation(engine, conversation_id).next_response_due == T + 5 * H


def test_pending_pauses_and_the_paused_time_is_credited_to_the_stored_due(engine, policies):
    conversation_id = _new(engine, policies)
    _status(engine, policies, conversation_id, T + 15 * M, "pending")
    conversation = _conversation(engine, conversation_id)
    assert (conversation.first_response_due, conversation.resolution_due, conversation.queue_due) == (None, None, NEVER)
    _status(engine, policies, conversation_id, T + 2 * H, "open")
    conversation = _conversation(engine, conversation_id)
    assert conversation.first_response_due == T + 2 * H + 45 * M
    kinds = [(target, event) for target, event, _, _ in _events(engine, conversation_id)]
    assert ("first_reply", "pause") in kinds and ("first_reply", "resume") in kinds


def test_on_hold_keeps_resolution_running(engine, policies):
    conversation_id = _new(engine, policies)
    _status(engine, policies, conversation_id, T + 15 * M, "on_hold")
    conversation = _conversation(engine, conversation_id)
    assert conversation.first_response_due is None and conversation.resolution_due is not None


def test_solving_and_reopening_resume_resolution(engine, policies):
    conversation_id = _new(engine, policies, channel="sms")  # 24/7 messaging policy, resolution 2d
    _reply(engine, policies, conversation_id, T + 10 * M, status="solved")
    assert _conversation(engine, conversation_id).queue_due == NEVER
    factories.ingest(
        engine,
        policies,
        factories.inbound(
            at=T + 24 * H, channel="sms", sender="+31612345678", conversation_hint=f"AD-{conversation_id}"
        ),
        now=T + 24 * H,
    )
    conversation = _conversation(engine, conversation_id)
    assert conversation.status == "open"
    # 10 minutes used before solving; the solved day is credited.
    assert conversation.resolution_due == T + 24 * H + 48 * H - 10 * M
    assert ("resolution", "resume") in [e[:2] for e in _events(engine, conversation_id)]


def test_show_states_from_the_timeline_and_from_stored_fields_agree_on_due_times(engine, policies):
    conversation_id = _new(engine, policies)
    _status(engine, policies, conversation_id, T + 15 * M, "pending")
    _status(engine, policies, conversation_id, T + 2 * H, "open")
    now = T + 150 * M
    with db.read_session(engine) as session:
        conversation = session.get(Conversation, conversation_id)
        policy = policies.by_name(conversation.sla_policy)
        events = clocks.load_events(session, [conversation_id])[conversation_id]
        stored = clocks.evaluate(conversation, policy, now=now)
        timeline = clocks.evaluate(conversation, policy, now=now, events=events)
    assert [(s.target, s.state, s.due) for s in stored] == [(s.target, s.state, s.due) for s in timeline]


def test_the_timeline_shows_a_paused_targets_time_left(engine, policies):
    conversation_id = _new(engine, policies)
    _status(engine, policies, conversation_id, T + 15 * M, "pending")
    with db.read_session(engine) as session:
        conversation = session.get(Conversation, conversation_id)
        events = clocks.load_events(session, [conversation_id])[conversation_id]
        states = clocks.evaluate(conversation, policies.by_name("email"), now=T + 3 * H, events=events)
    first = next(s for s in states if s.target == "first_reply")
    assert (first.state, first.remaining, first.reason) == ("paused", 45 * M, "pending")


def test_refresh_without_a_session_still_serves_plain_namespaces(policies):
    conversation = SimpleNamespace(
        id=1,
        channel="email",
        priority="normal",
        status="new",
        created_at=T,
        first_responded_at=None,
        last_agent_reply_at=None,
        waiting_since=T,
        solved_at=None,
    )
    assert clocks.refresh(conversation, policies=policies, tags=set(), now=T) == []
    assert (conversation.sla_policy, conversation.first_response_due, conversation.queue_due) == ("email", T + H, T + H)


def _policies_with(text: str) -> clocks.Policies:
    return clocks.Policies.from_settings(config.parse(text))


def test_the_fingerprint_changes_with_anything_that_decides_due_times(policies):
    same = _policies_with(BASIC_CONFIG)
    assert same.fingerprint == policies.fingerprint
    assert (
        _policies_with(BASIC_CONFIG.replace('first_reply = "1h"', 'first_reply = "2h"')).fingerprint
        != policies.fingerprint
    )
    assert (
        _policies_with(BASIC_CONFIG.replace('"09:00-17:00"]', '"08:00-17:00"]', 1)).fingerprint != policies.fingerprint
    )


def test_a_policy_change_applies_to_open_conversations_once(engine, policies):
    open_id = _new(engine, policies)
    solved_id = _new(engine, policies, at=T + M)
    _status(engine, policies, solved_id, T + 2 * M, "solved")
    changed = _policies_with(BASIC_CONFIG.replace('first_reply = "1h"', 'first_reply = "2h"'))
    version = _conversation(engine, open_id).version
    factory = lambda: db.write_session(engine)  # noqa: E731
    progress = clocks.apply_policy_change(factory, policies=changed, now=T + 5 * M)
    assert (progress.checked, progress.changed) == (1, 1)
    conversation = _conversation(engine, open_id)
    assert (conversation.first_response_due, conversation.version) == (T + 2 * H, version + 1)
    assert _conversation(engine, solved_id).resolution_due is not None  # finished ones keep their verdicts
    assert clocks.apply_policy_change(factory, policies=changed, now=T + 6 * M) is None
    with db.read_session(engine) as session:
        assert clocks.last_applied_fingerprint(session) == changed.fingerprint
        recorded = session.exec(select(Event).where(Event.action == clocks.RECOMPUTE_ACTION)).all()
    assert len(recorded) == 1


def test_recompute_starts_the_timeline_of_conversations_that_have_none(engine, policies):
    conversation_id = _new(engine, policies)
    with db.write_session(engine) as session:
        for row in session.exec(select(SlaClockEvent)).all():
            session.delete(row)
        session.commit()
    progress = clocks.recompute(lambda: db.write_session(engine), policies=policies, now=T + 10 * M, agent="tester")
    assert progress.events == 2
    assert [e[:2] for e in _events(engine, conversation_id)] == [
        ("first_reply", "activate"),
        ("resolution", "activate"),
    ]


@pytest.mark.parametrize("limit", [1, 2, 500])
def test_recompute_pages_through_every_open_conversation(engine, policies, limit):
    ids = [_new(engine, policies, at=T + n * M) for n in range(3)]
    changed = _policies_with(BASIC_CONFIG.replace('first_reply = "1h"', 'first_reply = "3h"'))
    pages = []
    progress = clocks.recompute(
        lambda: db.write_session(engine),
        policies=changed,
        now=T + 10 * M,
        agent="tester",
        limit=limit,
        on_page=lambda p: pages.append(p.checked),
    )
    assert progress.checked == 3 and progress.changed == 3
    assert all(_conversation(engine, i).first_response_due == T + n * M + 3 * H for n, i in enumerate(ids))
    assert len(pages) == -(-3 // limit)


def test_a_clock_breach_is_recorded_when_the_conversation_is_next_touched(engine, policies):
    conversation_id = _new(engine, policies)
    _act(
        engine,
        conversation_id,
        lambda session, conversation: queue.touch(session, conversation=conversation, policies=policies, now=T + 2 * H),
    )
    assert ("first_reply", "breach", T + H) in [e[:3] for e in _events(engine, conversation_id)]


def test_hold_time_is_calendar_time_since_the_oldest_unanswered_message(engine, policies):
    conversation_id = _new(engine, policies)
    assert sla.hold_time(_conversation(engine, conversation_id).waiting_since, T + 3 * H) == 3 * H


def test_two_refreshes_in_one_transaction_without_autoflush_record_each_event_once(engine, policies):
    # Ingest reopens (queue.change -> touch) and then touches again, with autoflush off.
    conversation_id = _new(engine, policies, channel="sms")
    _reply(engine, policies, conversation_id, T + 10 * M, status="solved")
    factories.ingest(
        engine,
        policies,
        factories.inbound(
            at=T + 24 * H, channel="sms", sender="+31612345678", conversation_hint=f"AD-{conversation_id}"
        ),
        now=T + 24 * H,
    )
    events = [e[:3] for e in _events(engine, conversation_id)]
    assert len(events) == len(set(events)), events
    with db.write_session(engine) as session:
        conversation = session.get(Conversation, conversation_id)
        with session.no_autoflush:
            queue.change(
                session, conversation=conversation, agent="tester", now=T + 25 * H, policies=policies, status="pending"
            )
            queue.touch(session, conversation=conversation, policies=policies, now=T + 25 * H)
        session.commit()
    pauses = [e[0] for e in _events(engine, conversation_id) if e[1] == "pause" and e[2] == T + 25 * H]
    assert sorted(pauses) == ["next_reply", "resolution"]  # messaging sets no periodic update
