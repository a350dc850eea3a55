"""A reply taken back in its undo window takes back what it did to the SLA clocks: the clocks, the
queue row and the reports are what they would be had the reply never been written, while what
happened meanwhile (a customer's message, a status change) still counts. Each scenario is run on
two conversations of one database, one with the withdrawn reply and one without it, and their
recorded clock events compared; on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pytest
from conftest import FIXED_NOW
from factories import inbound, ingest
from sqlmodel import select

from agentdesk import config
from agentdesk.app import conversations, queue, reports
from agentdesk.app.desk import Desk
from agentdesk.store import db
from agentdesk.store.models import Conversation, SlaClockEvent

# Always open, so each due time is plain arithmetic: first reply 1 h, next 4 h, updates 2 h.
POLICY = """
[[sla_policy]]
name = "email"
first_reply = "1h"
next_reply = "4h"
periodic_update = "2h"
resolution = "3d"
"""

START = FIXED_NOW - timedelta(minutes=10)  # the customer's first message


class Clock:
    def __init__(self) -> None:
        self.now = FIXED_NOW

    def at(self, minutes: float) -> Clock:
        self.now = FIXED_NOW + timedelta(minutes=minutes)
        return self


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def desk(any_database_url, tmp_path, clock):
    (tmp_path / "templates").mkdir()
    path = tmp_path / "team.toml"
    path.write_text(
        f'[database]\nurl = "{any_database_url}"\n[templates]\ndir = "{tmp_path / "templates"}"\n'
        '[agents.tester]\nname = "Terry Tester"\n' + POLICY,
        encoding="utf-8",
    )
    desk = Desk(config.load(path), agent="tester", now=lambda: clock.now)
    yield desk
    desk.engine.dispose()


def _conversation(desk: Desk, name: str) -> str:
    stored = ingest(desk.engine, desk.policies, inbound(at=START, external_id=f"{name}@velo.example"), now=START)
    return f"AD-{stored.conversation_id}"


def _customer_writes(desk: Desk, ref: str, name: str, minutes: float) -> None:
    at = FIXED_NOW + timedelta(minutes=minutes)
    ingest(
        desk.engine,
        desk.policies,
        inbound(at=at, external_id=f"{name}@velo.example", in_reply_to=f"{ref}-thread", conversation_hint=ref),
        now=at,
    )


def _clock_history(desk: Desk, ref: str) -> list[tuple]:
    with db.read_session(desk.engine) as session:
        rows = session.exec(
            select(SlaClockEvent).where(SlaClockEvent.conversation_id == int(ref[3:])).order_by(SlaClockEvent.id)
        ).all()
        return [(row.target, row.event, row.at, row.detail) for row in rows]


SLA_FIELDS = (
    "status",
    "first_responded_at",
    "last_agent_reply_at",
    "waiting_since",
    "first_response_due",
    "next_response_due",
    "periodic_update_due",
    "resolution_due",
    "warning_at",
    "queue_due",
    "queue_wait",
)


def _fields(desk: Desk, ref: str) -> dict:
    with db.read_session(desk.engine) as session:
        conversation = session.get(Conversation, int(ref[3:]))
        assert conversation is not None
        return {name: getattr(conversation, name) for name in SLA_FIELDS}


def _row(desk: Desk, ref: str) -> tuple:
    rows = queue.window(desk, queue.Filter("all"), offset=0, limit=50).rows
    row = next(row for row in rows if row.ref == ref)
    return (row.status, row.waiting_since, row.queue_due, row.warning_at)


def _clocks(desk: Desk, ref: str) -> dict[str, tuple]:
    explained, _ = reports.sla_explanation(desk, ref)
    return {clock["target"]: (clock["state"], clock["due"]) for clock in explained["clocks"]}


def _report(desk: Desk) -> dict:
    """The team report of the test's day (to its end: a reply at `now` is in it)."""
    return reports.report(desk, since=FIXED_NOW - timedelta(hours=12), until=FIXED_NOW + timedelta(hours=12))


def _compliance(desk: Desk) -> dict[str, tuple[int, int]]:
    targets = _report(desk)["compliance"]["targets"]
    return {target: (counts["met"], counts["missed"]) for target, counts in targets.items()}


def test_a_withdrawn_first_reply_leaves_the_clock_running_to_its_first_due(desk, clock):
    ref = _conversation(desk, "a")
    before = (_clock_history(desk, ref), _fields(desk, ref), _row(desk, ref))
    assert before[1]["first_response_due"] == START + timedelta(hours=1)

    clock.at(5)
    sent = conversations.reply(desk, ref, "We are on it.", delay=30)
    assert _clocks(desk, ref)["first_reply"][0] == "met"
    clock.at(5.2)
    conversations.withdraw(desk, ref, sent.message_id)

    # The first reply clock runs on from the customer's message, due when it was before the reply;
    # the queue row waits and sorts as before; nothing of the reply is left in the timeline.
    assert _clocks(desk, ref)["first_reply"] == ("ok", (START + timedelta(hours=1)).isoformat())
    assert _row(desk, ref) == before[2]
    assert _fields(desk, ref) == before[1]
    assert _clock_history(desk, ref) == before[0]
    assert _compliance(desk)["first_reply"] == (0, 0)
    assert _compliance(desk)["periodic_update"] == (0, 0)

    # A real reply later fulfils the clock at its own time.
    clock.at(20)
    conversations.reply(desk, ref, "Here is the answer.")
    fields = _fields(desk, ref)
    assert fields["first_responded_at"] == FIXED_NOW + timedelta(minutes=20)
    history = _clock_history(desk, ref)
    assert [(t, e, at) for t, e, at, _ in history if e == "fulfil"] == [
        ("first_reply", "fulfil", FIXED_NOW + timedelta(minutes=20)),
        ("periodic_update", "fulfil", FIXED_NOW + timedelta(minutes=20)),
    ]
    assert _compliance(desk)["first_reply"] == (1, 0)
    assert _report(desk)["reply_times"]["first_reply"]["median_seconds"] == 30 * 60


def test_a_customer_message_between_the_reply_and_its_withdrawal_still_counts(desk, clock):
    """Compared with a conversation where the same happened without the reply."""
    taken, plain = _conversation(desk, "t1"), _conversation(desk, "p1")
    clock.at(5)
    sent = conversations.reply(desk, taken, "We are on it.", delay=60)
    _customer_writes(desk, taken, "t2", 6)
    _customer_writes(desk, plain, "p2", 6)
    clock.at(6.5)
    conversations.withdraw(desk, taken, sent.message_id)

    fields = _fields(desk, taken)
    assert fields["waiting_since"] == START  # the oldest message the customer waits on, not the newer
    assert fields == _fields(desk, plain)
    assert _row(desk, taken)[1:] == _row(desk, plain)[1:]
    assert _clock_history(desk, taken) == _clock_history(desk, plain)
    assert _clocks(desk, taken)["next_reply"][0] == "not started"

    clock.at(30)
    conversations.reply(desk, taken, "Answer.")
    conversations.reply(desk, plain, "Answer.")
    assert _fields(desk, taken) == _fields(desk, plain)
    assert _clock_history(desk, taken) == _clock_history(desk, plain)


def test_a_withdrawn_next_reply_is_not_counted_as_met(desk, clock):
    ref = _conversation(desk, "n1")
    clock.at(0)
    conversations.reply(desk, ref, "First answer.")
    _customer_writes(desk, ref, "n2", 10)
    before = (_clock_history(desk, ref), _fields(desk, ref), _row(desk, ref))
    assert before[1]["next_response_due"] == FIXED_NOW + timedelta(minutes=10, hours=4)

    clock.at(15)
    sent = conversations.reply(desk, ref, "Second answer.", delay=30)
    assert _compliance(desk)["next_reply"] == (1, 0)
    clock.at(15.3)
    conversations.withdraw(desk, ref, sent.message_id)

    assert _compliance(desk)["next_reply"] == (0, 0)
    assert _compliance(desk)["periodic_update"] == (1, 0)  # the first answer's, kept
    assert _clocks(desk, ref)["next_reply"] == ("ok", (FIXED_NOW + timedelta(minutes=10, hours=4)).isoformat())
    assert _row(desk, ref) == before[2]
    assert _fields(desk, ref) == before[1]
    assert _clock_history(desk, ref) == before[0]


def test_status_changes_between_the_reply_and_its_withdrawal_still_pause_the_clocks(desk, clock):
    taken, plain = _conversation(desk, "s1"), _conversation(desk, "s2")
    clock.at(5)
    sent = conversations.reply(desk, taken, "We are on it.", delay=600)
    clock.at(6)
    conversations.update(desk, taken, status="pending")
    conversations.update(desk, plain, status="pending")
    clock.at(16)
    conversations.update(desk, taken, status="open")
    conversations.update(desk, plain, status="open")
    clock.at(17)
    conversations.withdraw(desk, taken, sent.message_id)

    # Paused ten minutes while pending: the first reply is due ten minutes later than it was.
    assert _clocks(desk, taken)["first_reply"] == ("ok", (START + timedelta(hours=1, minutes=10)).isoformat())
    assert _clock_history(desk, taken) == _clock_history(desk, plain)
    assert _fields(desk, taken) == _fields(desk, plain)


@pytest.mark.parametrize("status, resolution", [("pending", "paused"), ("solved", "met")])
def test_the_status_a_withdrawn_reply_set_goes_back_and_its_clocks_run(desk, clock, status, resolution):
    """Send+pending and send+solved: taken back, the conversation is new again, not solved (no
    survey will follow) and its resolution clock runs."""
    taken, plain = _conversation(desk, "r1"), _conversation(desk, "r2")
    clock.at(5)
    sent = conversations.reply(desk, taken, "Could you send a photo?", status=status, delay=30)
    assert _clocks(desk, taken)["resolution"][0] == resolution
    clock.at(5.5)
    conversations.withdraw(desk, taken, sent.message_id)

    assert _fields(desk, taken)["status"] == "new"
    with db.read_session(desk.engine) as session:
        assert session.get(Conversation, int(taken[3:])).solved_at is None
    assert _fields(desk, taken) == _fields(desk, plain)
    assert _clock_history(desk, taken) == _clock_history(desk, plain)
    assert _clocks(desk, taken)["resolution"][0] == "ok"


def test_the_bounce_flag_a_withdrawn_reply_cleared_comes_back(desk, clock):
    ref = _conversation(desk, "b1")
    bounced = FIXED_NOW - timedelta(minutes=1)
    with db.write_session(desk.engine) as session:
        conversation = session.get(Conversation, int(ref[3:]))
        assert conversation is not None
        conversation.bounced_at = bounced
        session.add(conversation)
        session.commit()
    clock.at(5)
    sent = conversations.reply(desk, ref, "Trying again.", delay=30)
    rows = queue.window(desk, queue.Filter("all"), offset=0, limit=50).rows
    assert not next(row for row in rows if row.ref == ref).bounced
    conversations.withdraw(desk, ref, sent.message_id)
    rows = queue.window(desk, queue.Filter("all"), offset=0, limit=50).rows
    assert next(row for row in rows if row.ref == ref).bounced


def test_taking_back_a_reply_a_later_one_followed_leaves_the_later_one_counted(desk, clock):
    taken, plain = _conversation(desk, "l1"), _conversation(desk, "l2")
    clock.at(5)
    sent = conversations.reply(desk, taken, "Wrong text.", delay=60)
    clock.at(6)
    conversations.reply(desk, taken, "The answer.")
    conversations.reply(desk, plain, "The answer.")
    clock.at(7)
    conversations.withdraw(desk, taken, sent.message_id)

    fields = _fields(desk, taken)
    assert fields["status"] == "open" and fields["first_responded_at"] == FIXED_NOW + timedelta(minutes=6)
    assert fields == _fields(desk, plain)
    assert _clock_history(desk, taken) == _clock_history(desk, plain)
