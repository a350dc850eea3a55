"""Alerts: which events concern an agent, and never more than one per conversation a minute
(a frozen clock moved by hand)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

from conftest import FIXED_NOW
from factories import inbound, ingest

from agentdesk import config
from agentdesk.app import conversations
from agentdesk.app.alerts import AlertFeed
from agentdesk.app.desk import Desk
from agentdesk.domain.alerts import Alert, RateLimit, from_events
from agentdesk.store.models import Event

T0 = datetime(2026, 11, 24, 9, 30, tzinfo=timezone.utc)


def test_one_alert_per_conversation_per_minute_on_a_frozen_clock():
    limit = RateLimit(timedelta(minutes=1))
    assert limit.allow(7, T0)
    assert not limit.allow(7, T0 + timedelta(seconds=59))
    assert limit.allow(8, T0 + timedelta(seconds=59)), "another conversation is not held back"
    assert limit.allow(7, T0 + timedelta(seconds=60))
    assert not limit.allow(7, T0 + timedelta(seconds=61))
    burst = [Alert("answered", 9, "a"), Alert("bounced", 9, "b"), Alert("assigned", 10, "c")]
    assert [a.text for a in limit.passed(burst, T0 + timedelta(minutes=5))] == ["a", "c"]


def _event(action, agent="dana", conversation_id=1, **detail):
    return Event(id=1, at=T0, agent=agent, action=action, conversation_id=conversation_id, detail=json.dumps(detail))


def test_which_events_alert_whom():
    events = [
        _event("assign", new="tester", old=None),
        _event("assign", new="sam"),
        _event("assign", agent="tester", new="tester"),  # their own doing
        _event("csat_alert", agent="system", conversation_id=2, rating=1, assignee="tester"),
        _event("bounced", agent="system", conversation_id=3, reason="bounced: 550 no such user"),
        _event("bounced", agent="system", conversation_id=4, reason="x"),
    ]
    found = from_events(events, agent="tester", assignees={1: "tester", 2: "tester", 3: "tester", 4: "sam"})
    assert [(a.kind, a.conversation_id) for a in found] == [("assigned", 1), ("bad_rating", 2), ("bounced", 3)]


def test_the_feed_reports_new_work_and_answers_once_a_minute(config_file, engine, policies):
    now = [FIXED_NOW]
    settings = config.load(config_file)
    me = Desk(settings, agent="tester", now=lambda: now[0])
    dana = Desk(settings, agent="dana", now=lambda: now[0])
    first = ingest(engine, policies, inbound(at=FIXED_NOW - timedelta(hours=1), external_id="m1@velo.example"))
    feed = AlertFeed(me)
    assert feed.check() == []  # the first check marks where news starts
    conversations.update(dana, first.conversation_id, assignee="tester")
    assert [a.kind for a in feed.check()] == ["assigned"]
    ingest(
        engine,
        policies,
        inbound(
            at=FIXED_NOW,
            body="Any news?",
            subject="Re: Spokes keep breaking",
            in_reply_to="m1@velo.example",
            external_id="m2@velo.example",
        ),
    )
    assert feed.check() == [], "within the minute of the last alert on that conversation"
    now[0] += timedelta(minutes=2)
    ingest(
        engine,
        policies,
        inbound(
            at=FIXED_NOW + timedelta(minutes=1),
            body="Hello?",
            subject="Re: Spokes keep breaking",
            in_reply_to="m1@velo.example",
            external_id="m3@velo.example",
        ),
    )
    assert [a.kind for a in feed.check()] == ["answered"]


def test_a_desktop_notification_carries_no_control_sequence_from_a_subject():
    from agentdesk.tui.alerts import desktop_escape

    hostile = "AD-7: Greta answered — \x1b]0;pwned\x07 refund\x1b[2J"
    escape = desktop_escape(hostile, environ={"VTE_VERSION": "7000"})
    assert escape.startswith("\x1b]777;notify;agentdesk;") and escape.endswith("\x1b\\")
    inner = escape[len("\x1b]777;notify;agentdesk;") : -2]
    assert "\x1b" not in inner and "\x07" not in inner
    assert desktop_escape("x", environ={"TERM_PROGRAM": "WezTerm"}).startswith("\x1b]9;")
    assert desktop_escape("x", environ={}) == ""
