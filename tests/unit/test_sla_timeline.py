"""The clock timeline: which events start, pause, resume and stop each target, and what they do.

Each scenario walks a conversation through its life by handing `advance` the facts after every
change, with an explicit `now`, exactly as `clocks.refresh` does; nothing sleeps.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agentdesk.domain.sla import (
    BusinessCalendar,
    ClockEvent,
    ClockFacts,
    Policy,
    advance,
    clock_states,
    overall_state,
    replay,
    stored_fields,
)

UTC = timezone.utc
H = timedelta(hours=1)
M = timedelta(minutes=1)
T0 = datetime(2026, 11, 17, 9, 0, tzinfo=UTC)  # a Tuesday

ALL_TARGETS = {"first_reply": H, "next_reply": 2 * H, "periodic_update": 4 * H, "resolution": 8 * H}
ROUND_THE_CLOCK = Policy("round-the-clock", targets=ALL_TARGETS)
OFFICE = BusinessCalendar(
    "office", "Europe/Amsterdam", {day: ["09:00-17:00"] for day in ("mon", "tue", "wed", "thu", "fri")}
)
OFFICE_POLICY = Policy("office", calendar=OFFICE, targets=ALL_TARGETS)


class Life:
    """A conversation whose facts change step by step; records every clock event."""

    def __init__(self, policy: Policy = ROUND_THE_CLOCK, *, at: datetime = T0, priority: str = "normal"):
        self.policy = policy
        self.facts = ClockFacts(status="new", priority=priority, created_at=at, waiting_since=at)
        self.clocks: dict = {}
        self.events: list[ClockEvent] = []
        self.now = at
        self.step(at)

    def step(self, now: datetime, **changes) -> list[tuple[str, str]]:
        self.now = now
        self.facts = replace(self.facts, **changes)
        new, self.clocks = advance(self.clocks, self.facts, policy=self.policy, now=now)
        self.events.extend(event for event, _ in new)
        return [(event.target, event.event) for event, _ in new]

    # What the domain does on each action (replies.reply, ingest, queue.change).
    def reply(self, at: datetime, status: str | None = None) -> list[tuple[str, str]]:
        first = self.facts.first_responded_at or at
        new_status = status or ("open" if self.facts.status == "new" else self.facts.status)
        changes = dict(first_responded_at=first, last_agent_reply_at=at, waiting_since=None, status=new_status)
        if new_status in ("solved", "closed"):
            changes["solved_at"] = at
        return self.step(at, **changes)

    def customer_writes(self, at: datetime) -> list[tuple[str, str]]:
        changes = dict(waiting_since=self.facts.waiting_since or at)
        if self.facts.status in ("solved", "closed"):
            changes.update(status="open", solved_at=None)
        return self.step(at, **changes)

    def status(self, at: datetime, status: str) -> list[tuple[str, str]]:
        changes = dict(status=status)
        if status in ("solved", "closed") and self.facts.status not in ("solved", "closed"):
            changes["solved_at"] = at
        elif status not in ("solved", "closed"):
            changes["solved_at"] = None
        return self.step(at, **changes)

    def state(self, target: str, now: datetime | None = None):
        states = clock_states(self.clocks, policy=self.policy, priority=self.facts.priority, now=now or self.now)
        return next((s for s in states if s.target == target), None)

    def states(self, now: datetime | None = None):
        return clock_states(self.clocks, policy=self.policy, priority=self.facts.priority, now=now or self.now)

    def replayed(self) -> dict:
        return replay(self.events, policy=self.policy, priority=self.facts.priority)


def test_a_new_conversation_activates_every_clock_at_its_creation():
    life = Life()
    assert [(e.target, e.event, e.at) for e in life.events] == [
        ("first_reply", "activate", T0),
        ("periodic_update", "activate", T0),
        ("resolution", "activate", T0),
    ]
    assert {s.target: s.due for s in life.states()} == {
        "first_reply": T0 + H,
        "periodic_update": T0 + 4 * H,
        "resolution": T0 + 8 * H,
    }


def test_nothing_is_recorded_when_nothing_happened():
    life = Life()
    assert life.step(T0 + 10 * M) == []
    assert life.step(T0 + 10 * M) == []


# --- first reply ------------------------------------------------------------------------------


def test_first_reply_is_fulfilled_by_the_first_reply_and_stays_met():
    life = Life()
    assert ("first_reply", "fulfil") in life.reply(T0 + 40 * M)
    state = life.state("first_reply")
    assert (state.state, state.fulfilled_at, state.remaining) == ("met", T0 + 40 * M, 20 * M)
    life.reply(T0 + 5 * H)
    assert life.state("first_reply").fulfilled_at == T0 + 40 * M


def test_first_reply_breach_is_recorded_at_the_due_instant_and_the_late_reply_misses():
    life = Life()
    assert life.step(T0 + 30 * M) == []
    assert life.step(T0 + 61 * M) == [("first_reply", "breach")]
    assert life.events[-1].at == T0 + H
    assert life.state("first_reply").state == "breached"
    assert life.state("first_reply").overdue == M
    events = life.reply(T0 + 90 * M)
    assert ("first_reply", "breach") not in events  # recorded once per cycle
    state = life.state("first_reply")
    assert (state.state, state.overdue) == ("missed", 30 * M)


def test_a_reply_after_due_records_the_breach_before_the_fulfilment():
    life = Life()
    assert life.reply(T0 + 2 * H)[:2] == [("first_reply", "breach"), ("first_reply", "fulfil")]


@pytest.mark.parametrize("status", ["pending", "on_hold"])
def test_first_reply_pauses_while_pending_or_on_hold_and_the_pause_is_credited(status):
    life = Life()
    assert ("first_reply", "pause") in life.status(T0 + 20 * M, status)
    paused = life.state("first_reply")
    assert (paused.state, paused.due, paused.remaining, paused.reason) == ("paused", None, 40 * M, status)
    assert ("first_reply", "resume") in life.status(T0 + 3 * H, "open")
    # 20 minutes used before the pause; 40 left from the resume.
    assert life.state("first_reply").due == T0 + 3 * H + 40 * M
    assert life.state("first_reply").state == "ok"


def test_first_reply_paused_over_a_night_moves_by_business_time():
    # 16:30 local (15:30 UTC) Tuesday: 30 business minutes used by 17:00, then pending overnight.
    start = datetime(2026, 11, 17, 15, 30, tzinfo=UTC)
    life = Life(OFFICE_POLICY, at=start)
    life.status(datetime(2026, 11, 17, 15, 50, tzinfo=UTC), "pending")  # 20 min used
    life.status(datetime(2026, 11, 18, 7, 0, tzinfo=UTC), "open")  # 08:00 local: closed until 09:00
    assert life.state("first_reply").due == datetime(2026, 11, 18, 8, 40, tzinfo=UTC)


def test_first_reply_is_dropped_while_solved_unanswered_and_resumes_on_reopening():
    life = Life()
    life.status(T0 + 10 * M, "solved")
    assert life.state("first_reply") is None  # nothing expected while solved
    assert overall_state(life.states()) == "met"
    life.customer_writes(T0 + 5 * H)  # reopens
    assert life.state("first_reply").due == T0 + 5 * H + 50 * M


# --- next reply -------------------------------------------------------------------------------


def test_next_reply_starts_with_the_customers_message_after_the_first_reply():
    life = Life()
    life.reply(T0 + 30 * M)
    assert life.state("next_reply") is None
    assert life.customer_writes(T0 + 2 * H) == [("next_reply", "activate")]
    assert life.state("next_reply").due == T0 + 4 * H
    # A second message while waiting changes nothing: the clock runs from the oldest.
    assert life.customer_writes(T0 + 3 * H) == []
    assert life.state("next_reply").due == T0 + 4 * H


def test_a_customer_reply_restarts_next_reply_as_a_new_cycle():
    life = Life()
    life.reply(T0 + 30 * M)
    life.customer_writes(T0 + H)
    assert ("next_reply", "fulfil") in life.reply(T0 + 2 * H)
    assert life.state("next_reply").state == "met"
    life.customer_writes(T0 + 5 * H)
    clock = life.clocks["next_reply"]
    assert (clock.cycle, clock.started_at, clock.due) == (2, T0 + 5 * H, T0 + 7 * H)


def test_next_reply_pauses_while_pending_and_is_credited():
    life = Life()
    life.reply(T0 + 10 * M)
    life.customer_writes(T0 + H)
    life.status(T0 + 90 * M, "pending")  # 30 minutes used
    assert life.state("next_reply").state == "paused"
    life.status(T0 + 5 * H, "open")
    assert life.state("next_reply").due == T0 + 5 * H + 90 * M


def test_answered_and_written_again_between_two_looks_is_two_cycles():
    life = Life()
    life.reply(T0 + 10 * M)
    life.customer_writes(T0 + H)
    life.step(T0 + 3 * H, last_agent_reply_at=T0 + 2 * H, waiting_since=T0 + 150 * M)
    assert life.clocks["next_reply"].cycle == 2
    assert life.clocks["next_reply"].started_at == T0 + 150 * M


# --- an internal note or a receipt is not a reply ----------------------------------------------


def test_facts_that_a_note_or_receipt_leaves_unchanged_record_nothing():
    # A note and a receipt change no reply field (replies.py); the clocks see no reply.
    life = Life()
    assert life.step(T0 + 5 * M) == []
    assert life.state("first_reply").state == "ok"


# --- periodic update --------------------------------------------------------------------------


def test_every_reply_fulfils_the_periodic_update_and_starts_the_next():
    life = Life()
    events = life.reply(T0 + 3 * H)
    assert [e for e in events if e[0] == "periodic_update"] == [
        ("periodic_update", "fulfil"),
        ("periodic_update", "activate"),
    ]
    assert life.state("periodic_update").due == T0 + 7 * H
    life.reply(T0 + 12 * H)
    assert life.clocks["periodic_update"].cycle == 3


def test_periodic_update_pauses_on_hold_and_while_solved():
    life = Life()
    life.reply(T0 + H)
    life.status(T0 + 2 * H, "on_hold")
    assert life.state("periodic_update").state == "paused"
    life.status(T0 + 4 * H, "open")
    assert life.state("periodic_update").due == T0 + 7 * H
    life.status(T0 + 5 * H, "solved")
    assert life.state("periodic_update") is None
    life.customer_writes(T0 + 9 * H)
    assert life.state("periodic_update").due == T0 + 9 * H + 2 * H


# --- resolution -------------------------------------------------------------------------------


def test_resolution_runs_on_hold_pauses_pending_and_is_fulfilled_by_solving():
    life = Life()
    life.status(T0 + H, "on_hold")
    assert life.state("resolution").state == "ok"
    life.status(T0 + 2 * H, "pending")
    assert life.state("resolution").state == "paused"
    life.status(T0 + 5 * H, "open")  # 3 hours credited
    assert life.state("resolution").due == T0 + 11 * H
    life.status(T0 + 10 * H, "solved")
    state = life.state("resolution")
    assert (state.state, state.fulfilled_at, state.remaining) == ("met", T0 + 10 * H, H)


def test_reopening_resumes_resolution_with_the_solved_time_credited():
    life = Life()
    life.status(T0 + 6 * H, "solved")
    assert ("resolution", "resume") in life.customer_writes(T0 + 30 * H)
    state = life.state("resolution")
    assert (state.state, state.due) == ("ok", T0 + 32 * H)
    life.status(T0 + 33 * H, "closed")
    assert life.state("resolution").state == "missed"
    assert life.state("resolution").overdue == H


def test_solving_from_pending_fulfils_with_only_the_running_time_counted():
    life = Life()
    life.status(T0 + H, "pending")
    life.status(T0 + 20 * H, "solved")
    assert life.state("resolution").state == "met"


def test_solving_stops_the_reply_clocks_at_solved_at():
    life = Life()
    life.status(T0 + 30 * M, "solved")
    pauses = [e for e in life.events if e.event == "pause"]
    assert {e.at for e in pauses} == {T0 + 30 * M}
    assert {e.reason for e in pauses} == {"solved"}


# --- replay and policy changes --------------------------------------------------------------


def test_replaying_the_recorded_events_gives_the_same_clocks():
    life = Life()
    life.status(T0 + 20 * M, "pending")
    life.status(T0 + 2 * H, "open")
    life.reply(T0 + 3 * H)
    life.customer_writes(T0 + 4 * H)
    life.status(T0 + 5 * H, "solved")
    life.customer_writes(T0 + 7 * H)
    assert life.replayed() == life.clocks


def test_a_policy_change_retargets_the_whole_timeline():
    life = Life()
    life.status(T0 + 20 * M, "pending")
    life.status(T0 + 2 * H, "open")
    longer = Policy("longer", targets={**ALL_TARGETS, "first_reply": 3 * H})
    clocks = replay(life.events, policy=longer, priority="normal")
    # 20 minutes used before the pause; 2h40m left from the resume at 2h.
    assert clocks["first_reply"].due == T0 + 4 * H + 40 * M


def test_a_priority_override_applies_to_running_clocks():
    urgent = Policy("p", targets=ALL_TARGETS, priority_overrides={"urgent": {"first_reply": 15 * M}})
    life = Life(urgent)
    life.step(T0 + 5 * M, priority="urgent")
    clocks = replay(life.events, policy=urgent, priority="urgent")
    assert clocks["first_reply"].due == T0 + 15 * M


def test_targets_the_policy_does_not_set_have_no_clock():
    life = Life(Policy("short", targets={"first_reply": H}))
    assert {e.target for e in life.events} == {"first_reply"}


def test_backfill_from_fields_alone():
    # A conversation from before clocks were recorded: derived from its fields at once.
    facts = ClockFacts(
        status="pending",
        priority="normal",
        created_at=T0,
        first_responded_at=T0 + 30 * M,
        last_agent_reply_at=T0 + 2 * H,
        waiting_since=T0 + 3 * H,
    )
    new, clocks = advance({}, facts, policy=ROUND_THE_CLOCK, now=T0 + 4 * H)
    summary = [(e.target, e.event, e.at) for e, _ in new]
    assert ("first_reply", "fulfil", T0 + 30 * M) in summary
    assert ("next_reply", "activate", T0 + 3 * H) in summary
    assert ("next_reply", "pause", T0 + 4 * H) in summary
    assert ("periodic_update", "activate", T0 + 2 * H) in summary
    assert clocks["resolution"].phase == "paused"


def test_a_solved_conversation_backfills_without_breaching_after_it_was_solved():
    facts = ClockFacts(status="solved", priority="normal", created_at=T0, solved_at=T0 + 20 * M, waiting_since=T0)
    new, clocks = advance({}, facts, policy=ROUND_THE_CLOCK, now=T0 + 30 * H)
    assert not [e for e, _ in new if e.event == "breach"]
    assert clocks["resolution"].met is True


def test_events_are_never_in_the_future_or_before_the_previous_one():
    life = Life()
    # A customer message stamped before our reply reached us after it (clock skew, slow relay).
    life.reply(T0 + 2 * H)
    life.step(T0 + 3 * H, waiting_since=T0 + 90 * M)
    assert life.clocks["next_reply"].started_at == T0 + 2 * H
    # A message stamped in the future counts from when we saw it.
    life.reply(T0 + 4 * H)
    life.step(T0 + 5 * H, waiting_since=T0 + 9 * H)
    assert life.clocks["next_reply"].started_at == T0 + 5 * H


# --- properties -------------------------------------------------------------------------------

ACTIONS = st.lists(
    st.tuples(
        st.sampled_from(["reply", "write", "pending", "on_hold", "open", "solved", "closed", "look"]),
        st.integers(min_value=1, max_value=600),  # minutes later
    ),
    max_size=25,
)


def _run(policy: Policy, actions) -> Life:
    life = Life(policy)
    now = T0
    for action, minutes in actions:
        now += timedelta(minutes=minutes)
        if action == "reply":
            life.reply(now)
        elif action == "write":
            life.customer_writes(now)
        elif action == "look":
            life.step(now)
        else:
            life.status(now, action)
    return life


@settings(max_examples=150, deadline=None)
@given(actions=ACTIONS, office=st.booleans())
def test_replay_reproduces_the_clocks_and_looking_again_records_nothing(actions, office):
    life = _run(OFFICE_POLICY if office else ROUND_THE_CLOCK, actions)
    assert life.replayed() == life.clocks
    assert life.step(life.now) == []


@settings(max_examples=150, deadline=None)
@given(actions=ACTIONS)
def test_per_target_event_times_never_go_back_and_used_time_never_exceeds_running_time(actions):
    life = _run(ROUND_THE_CLOCK, actions)
    for target in ALL_TARGETS:
        times = [e.at for e in life.events if e.target == target]
        assert times == sorted(times)
        assert all(at <= life.now for at in times)
        clock = life.clocks.get(target)
        if clock is not None:
            assert timedelta(0) <= clock.used_at(ROUND_THE_CLOCK.calendar, life.now) <= life.now - clock.started_at


@settings(max_examples=150, deadline=None)
@given(actions=ACTIONS)
def test_a_paused_clock_never_breaches_and_states_are_known(actions):
    life = _run(ROUND_THE_CLOCK, actions)
    later = life.now + timedelta(days=30)
    for state in life.states(later):
        assert state.state in ("ok", "warning", "breached", "paused", "met", "missed")
        if life.clocks[state.target].phase == "paused":
            assert state.state == "paused"


@settings(max_examples=150, deadline=None)
@given(actions=ACTIONS, office=st.booleans(), days_later=st.integers(min_value=0, max_value=200))
def test_states_without_usage_store_the_same_fields_and_only_lack_the_used_time(actions, office, days_later):
    # Ingest and the sync's parsers ask for states only to store a conversation's SLA fields.
    policy = OFFICE_POLICY if office else ROUND_THE_CLOCK
    life = _run(policy, actions)
    now = life.now + timedelta(days=days_later)
    full = clock_states(life.clocks, policy=policy, priority=life.facts.priority, now=now)
    bare = clock_states(life.clocks, policy=policy, priority=life.facts.priority, now=now, usage=False)
    assert [vars(state) | {"used": None} for state in bare] == [vars(state) | {"used": None} for state in full]
    assert stored_fields(bare, life.facts.waiting_since) == stored_fields(full, life.facts.waiting_since)
    for state in bare:
        if life.clocks[state.target].phase == "running":
            assert state.used is None
        else:
            assert state.used == next(f.used for f in full if f.target == state.target)


# --- fixed cases across DST in two zones, holidays and multi-window days ------------------------

NEW_YORK = BusinessCalendar(
    "ny", "America/New_York", {day: ["08:00-20:00"] for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
)
AMSTERDAM = BusinessCalendar(
    "ams",
    "Europe/Amsterdam",
    {
        "mon": ["09:00-12:30", "13:30-17:30"],
        "tue": ["09:00-17:30"],
        "wed": ["09:00-17:30"],
        "thu": ["09:00-17:30"],
        "fri": ["09:00-17:00"],
    },
    holidays=["2026-12-25"],
)


def _paused_and_resumed(calendar, length, start, pause, resume):
    policy = Policy("p", calendar=calendar, targets={"first_reply": length})
    life = Life(policy, at=start)
    life.status(pause, "pending")
    life.status(resume, "open")
    return life.state("first_reply").due


@pytest.mark.parametrize(
    "calendar, length, start, pause, resume, due",
    [
        # New York, the night clocks go back (1 Nov 2026): 1h used Saturday 18:00-19:00 EDT; resumed
        # Sunday 07:00 EST; 3h left from the 08:00 EST opening.
        (
            NEW_YORK,
            4 * H,
            datetime(2026, 10, 31, 22, 0, tzinfo=UTC),
            datetime(2026, 10, 31, 23, 0, tzinfo=UTC),
            datetime(2026, 11, 1, 12, 0, tzinfo=UTC),
            datetime(2026, 11, 1, 16, 0, tzinfo=UTC),
        ),
        # New York, spring forward (8 Mar 2026): resumed Sunday 07:00 EDT.
        (
            NEW_YORK,
            4 * H,
            datetime(2026, 3, 7, 23, 0, tzinfo=UTC),
            datetime(2026, 3, 8, 0, 0, tzinfo=UTC),
            datetime(2026, 3, 8, 11, 0, tzinfo=UTC),
            datetime(2026, 3, 8, 15, 0, tzinfo=UTC),
        ),
        # Amsterdam, the weekend clocks go back (25 Oct 2026): 30 min used Friday 16:00-16:30 CEST;
        # resumed Monday 08:00 CET; 3h30 left from 09:00 CET, across nothing.
        (
            AMSTERDAM,
            4 * H,
            datetime(2026, 10, 23, 14, 0, tzinfo=UTC),
            datetime(2026, 10, 23, 14, 30, tzinfo=UTC),
            datetime(2026, 10, 26, 7, 0, tzinfo=UTC),
            datetime(2026, 10, 26, 11, 30, tzinfo=UTC),
        ),
        # Amsterdam, Christmas: 15 min used Thursday 24 Dec 17:00-17:15 CET; resumed on the holiday;
        # 4h45 left from Monday 09:00: 3h30 before lunch, 1h15 after it -> 14:45 CET.
        (
            AMSTERDAM,
            5 * H,
            datetime(2026, 12, 24, 16, 0, tzinfo=UTC),
            datetime(2026, 12, 24, 16, 15, tzinfo=UTC),
            datetime(2026, 12, 25, 9, 0, tzinfo=UTC),
            datetime(2026, 12, 28, 13, 45, tzinfo=UTC),
        ),
    ],
)
def test_paused_time_is_credited_across_dst_holidays_and_lunch(calendar, length, start, pause, resume, due):
    assert _paused_and_resumed(calendar, length, start, pause, resume) == due


def test_a_pause_over_lunch_credits_only_business_time():
    # Monday 12:00 CET activate (11:00 UTC), pending 12:20-14:00: 20 min used, lunch is closed anyway.
    start = datetime(2026, 11, 16, 11, 0, tzinfo=UTC)
    due = _paused_and_resumed(AMSTERDAM, H, start, start + 20 * M, datetime(2026, 11, 16, 13, 0, tzinfo=UTC))
    assert due == datetime(2026, 11, 16, 13, 40, tzinfo=UTC)  # 14:40 CET
