"""`agentdesk report` figures on a small, hand-checked queue built through the real services."""

from __future__ import annotations

from datetime import timedelta

import factories
import pytest
from conftest import FIXED_NOW

from agentdesk.domain import queue, replies, reports
from agentdesk.store import db
from agentdesk.store.models import Conversation

T = FIXED_NOW  # Tuesday 10:30 in Amsterdam
M = timedelta(minutes=1)
H = timedelta(hours=1)
WINDOW = reports.Window(since=T - 24 * H, until=T + 72 * H)


def _new(engine, policies, at, *, channel="email", sender="greta@velo.example", subject="Spokes"):
    message = factories.inbound(at=at, channel=channel, sender=sender, subject=subject)
    return factories.ingest(engine, policies, message, now=at).conversation_id


def _write(engine, policies, conversation_id, at, sender="greta@velo.example", channel="email"):
    factories.ingest(
        engine,
        policies,
        factories.inbound(at=at, channel=channel, sender=sender, conversation_hint=f"AD-{conversation_id}"),
        now=at,
    )


def _reply(engine, policies, conversation_id, at, *, status=None, agent="dana"):
    with db.write_session(engine) as session:
        conversation = session.get(Conversation, conversation_id)
        if conversation.assignee is None:
            queue.change(session, conversation=conversation, agent=agent, now=at, policies=policies, assignee=agent)
        replies.reply(
            session,
            conversation=conversation,
            body="Answer",
            agent=agent,
            agent_name=agent,
            now=at,
            policies=policies,
            status=status,
        )
        session.commit()


@pytest.fixture
def queue_of_four(engine, policies):
    # A: first reply after 30 min (met), customer writes again, answered 2h later (met), solved at 5h.
    a = _new(engine, policies, T, subject="A")
    _reply(engine, policies, a, T + 30 * M)
    _write(engine, policies, a, T + H)
    _reply(engine, policies, a, T + 3 * H)
    _reply(engine, policies, a, T + 5 * H, status="solved")
    # B: first reply after 2h: missed (1h target, office hours all along).
    b = _new(engine, policies, T + M, sender="ana@velo.example", subject="B")
    _reply(engine, policies, b, T + M + 2 * H, agent="lee")
    # C: sms, unanswered, 24/7 20-minute target: breached and still open.
    _new(engine, policies, T + 2 * M, channel="sms", sender="+31612345678", subject="C")
    # D: created before the window: counts in the backlog, not in the window's figures.
    _new(engine, policies, T - 30 * H, sender="old@velo.example", subject="D")
    return a, b


def test_reply_times_median_and_p90(engine, policies, queue_of_four):
    with db.read_session(engine) as session:
        times = reports.reply_times(session, WINDOW)
    assert times["first_reply"] == {"count": 2, "mean_seconds": 4500, "median_seconds": 1800, "p90_seconds": 7200}
    assert times["next_reply"]["count"] == 1 and times["next_reply"]["median_seconds"] == 2 * 3600
    assert times["resolution"] == {
        "count": 1,
        "mean_seconds": 5 * 3600,
        "median_seconds": 5 * 3600,
        "p90_seconds": 5 * 3600,
    }


def test_compliance_per_target_policy_and_agent(engine, policies, queue_of_four):
    with db.read_session(engine) as session:
        figures = reports.compliance(session, WINDOW, now=T + 4 * H)
    targets = figures["targets"]
    # A met, B missed, C (sms, 20 min, unanswered at +4h) missed.
    assert targets["first_reply"] == {"met": 1, "missed": 2, "percent": 33.3}
    assert targets["next_reply"] == {"met": 1, "missed": 0, "percent": 100.0}
    assert targets["resolution"] == {"met": 1, "missed": 0, "percent": 100.0}
    assert targets["periodic_update"] == {"met": 0, "missed": 0, "percent": None}
    by_policy = {row["policy"]: row for row in figures["policies"]}
    assert by_policy["email"]["first_reply"] == {"met": 1, "missed": 1, "percent": 50.0}
    assert by_policy["messaging"]["first_reply"] == {"met": 0, "missed": 1, "percent": 0.0}
    by_agent = {row["agent"]: row for row in figures["agents"]}
    assert by_agent["dana"]["first_reply"]["met"] == 1 and by_agent["lee"]["first_reply"]["missed"] == 1
    assert by_agent[None]["first_reply"]["missed"] == 1  # C: nobody took it


def test_backlog_by_age_and_state(engine, policies, queue_of_four):
    with db.read_session(engine) as session:
        backlog = reports.backlog(session, now=T + 4 * H)
    ages = {row["age"]: row["count"] for row in backlog["by_age"]}
    assert backlog["open"] == 3  # A is solved
    assert ages == {"<1h": 0, "1-4h": 2, "4-24h": 0, "1-3d": 1, "3-7d": 0, ">7d": 0}
    assert backlog["breached"] >= 1  # C
    assert backlog["waiting_on_us"] == 2  # C and D; B was answered
    assert backlog["longest_wait_seconds"] == 34 * 3600  # D


def test_volume_by_channel(engine, policies, queue_of_four):
    with db.read_session(engine) as session:
        volume = reports.volume(session, WINDOW)
    by_channel = {row["channel"]: row for row in volume["channels"]}
    assert by_channel["email"]["conversations"] == 2
    assert by_channel["email"]["messages"]["inbound"] == 3
    assert by_channel["email"]["messages"]["outbound"] == 4
    assert by_channel["sms"] == {
        "channel": "sms",
        "conversations": 1,
        "messages": {"inbound": 1, "outbound": 0, "note": 0, "receipt": 0, "survey": 0, "automatic_inbound": 0},
    }


def test_an_empty_window_reports_nothing_without_failing(engine, policies, queue_of_four):
    empty = reports.Window(since=T + 100 * H, until=T + 200 * H)
    with db.read_session(engine) as session:
        document = reports.report(session, window=empty, now=T + 200 * H)
    assert document["reply_times"]["first_reply"] == {
        "count": 0,
        "mean_seconds": None,
        "median_seconds": None,
        "p90_seconds": None,
    }
    assert document["compliance"]["targets"]["first_reply"]["percent"] is None
    assert document["volume"]["channels"] == []


# --- the CLI handlers (agentdesk/cli/sla.py) ------------------------------------------------------

import argparse  # noqa: E402
import json  # noqa: E402

from agentdesk.cli import sla as commands_sla  # noqa: E402


def test_report_handler_prints_json_and_text(engine, policies, queue_of_four, config_file, capsys):
    args = argparse.Namespace(config=config_file, since="2026-11-16", until="2026-11-20", json=True)
    assert commands_sla.cmd_report(args) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["reply_times"]["first_reply"]["count"] == 2
    assert {"reply_times", "compliance", "backlog", "volume", "since", "until"} <= set(document)
    args.json = False
    assert commands_sla.cmd_report(args) == 0
    text = capsys.readouterr().out
    assert "first_reply" in text and "backlog:" in text and "volume by channel" in text


def test_report_refuses_a_window_that_ends_before_it_starts(config_file):
    from agentdesk.errors import InvalidInput

    with pytest.raises(InvalidInput, match="--since"):
        commands_sla.cmd_report(
            argparse.Namespace(config=config_file, since="2026-11-20", until="2026-11-10", json=True)
        )


def test_explain_prints_every_clock_with_business_time_used(engine, policies, queue_of_four, config_file, capsys):
    a, _ = queue_of_four
    assert commands_sla.cmd_sla_explain(argparse.Namespace(config=config_file, ref=f"AD-{a}", json=True)) == 0
    document = json.loads(capsys.readouterr().out)
    clocks_by_target = {clock["target"]: clock for clock in document["clocks"]}
    assert document["policy"] == "email" and document["timezone"] == "Europe/Amsterdam"
    first = clocks_by_target["first_reply"]
    assert first["state"] == "met"
    assert [(e["event"], e["used_seconds"], e["recorded"]) for e in first["events"]] == [
        ("activate", 0, True),
        ("fulfil", 1800, True),
    ]
    assert [e["event"] for e in clocks_by_target["next_reply"]["events"]] == ["activate", "fulfil"]
    assert clocks_by_target["resolution"]["state"] == "met"
    assert commands_sla.cmd_sla_explain(argparse.Namespace(config=config_file, ref=f"AD-{a}", json=False)) == 0
    text = capsys.readouterr().out
    assert "first_reply  target 1h  now: met" in text
    assert "Tue 2026-11-17 10:30 CET" in text  # local time of the calendar


def test_explain_shows_a_breach_that_is_not_recorded_yet(engine, policies, config_file, capsys, monkeypatch):
    conversation_id = _new(engine, policies, T)
    monkeypatch.setattr("agentdesk.cli.common._now", lambda: T + 3 * H)
    assert (
        commands_sla.cmd_sla_explain(argparse.Namespace(config=config_file, ref=f"AD-{conversation_id}", json=True))
        == 0
    )
    first = json.loads(capsys.readouterr().out)["clocks"][0]
    assert first["state"] == "breached" and first["remaining_seconds"] == -2 * 3600
    assert first["events"][-1] == {
        "event": "breach",
        "at": (T + H).isoformat(),
        "reason": None,
        "cycle": 1,
        "used_seconds": 3600,
        "due": (T + H).isoformat(),
        "met": None,
        "recorded": False,
    }


def test_recompute_handler_applies_only_when_changed(engine, policies, config_file, capsys):
    _new(engine, policies, T)
    args = argparse.Namespace(config=config_file, if_changed=True)
    assert commands_sla.cmd_sla_recompute(args) == 0
    assert "1 open conversations checked" in capsys.readouterr().err
    assert commands_sla.cmd_sla_recompute(args) == 0
    assert "nothing to do" in capsys.readouterr().err
