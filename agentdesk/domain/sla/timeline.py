"""The clock timeline: each target's clock, activated, paused, resumed, fulfilled and breached by events.

A clock counts the business time it has used, so paused time is credited and a resumed clock's
due moves later. `replay` rebuilds the clocks from recorded events; `advance` compares them
with the conversation's current facts and returns the events that happened since (it is what
writes the due times stored on a conversation); `clock_states` reads target states off them.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from agentdesk.domain.sla.calendars import Calendar
from agentdesk.domain.sla.instants import _as_utc, _optional_utc
from agentdesk.domain.sla.policies import _DONE_STATUSES, _PAUSING_STATUSES, STATUSES, TARGETS, Policy
from agentdesk.domain.sla.target_states import TargetState, _margin

CLOCK_EVENTS = ("activate", "pause", "resume", "fulfil", "breach")
CLOCK_PHASES = ("running", "paused", "fulfilled")


@dataclass(frozen=True)
class ClockEvent:
    """One thing that happened to one target's clock. `reason` says why (a pause's status)."""

    target: str
    event: str
    at: datetime
    reason: str = ""

    def __post_init__(self) -> None:
        if self.target not in TARGETS:
            raise ValueError(f"unknown target {self.target!r}; targets are {', '.join(TARGETS)}")
        if self.event not in CLOCK_EVENTS:
            raise ValueError(f"unknown clock event {self.event!r}; events are {', '.join(CLOCK_EVENTS)}")
        object.__setattr__(self, "at", _as_utc(self.at, "at"))


@dataclass(frozen=True)
class ClockFacts:
    """The conversation fields the clocks follow (what `advance` compares its clocks with)."""

    status: str
    priority: str
    created_at: datetime
    first_responded_at: datetime | None = None
    last_agent_reply_at: datetime | None = None
    waiting_since: datetime | None = None
    solved_at: datetime | None = None


@dataclass(frozen=True)
class Clock:
    """One target's clock, as replayed from its events.

    A clock runs in segments: `used` is the business time consumed before `since`, the start of
    the current phase. Only running time counts, so a pause is credited: resuming computes the due
    time from the resume instant and the time still left. A new cycle (`activate` again: the next
    customer message, the next periodic update) starts from nothing.
    """

    target: str
    length: timedelta
    phase: str  # running | paused | fulfilled
    started_at: datetime  # when the current cycle was activated
    since: datetime  # when the current phase began (a running clock's current segment)
    used: timedelta  # business time used before `since`
    due: datetime  # running: when it falls due; otherwise when it was due as it stopped
    last_at: datetime  # the latest event: later events are never placed before it
    reason: str = ""  # why it is paused
    breached: bool = False  # a breach was recorded in the current cycle
    met: bool | None = None  # fulfilled clocks: in time or not
    cycle: int = 1

    def used_at(self, calendar: Calendar, at: datetime) -> timedelta:
        """Business time used by the current cycle up to `at`."""
        if self.phase == "running":
            return self.used + calendar.between(self.since, at)
        return self.used


def _clock_with(clock: Clock, **changes) -> Clock:
    """`dataclasses.replace` for a Clock, without its per-call field introspection (replays and
    ingest step through tens of thousands of clocks)."""
    return Clock(**{**clock.__dict__, **changes})


def _step(clock: Clock | None, event: ClockEvent, *, calendar: Calendar, length: timedelta) -> Clock | None:
    """The clock after `event`. Events that make no sense in the clock's phase change nothing,
    so a timeline written by an older version (or by hand) replays without failing."""
    at = event.at
    if event.event == "activate":
        return Clock(
            target=event.target,
            length=length,
            phase="running",
            started_at=at,
            since=at,
            used=timedelta(0),
            due=calendar.add(at, length),
            last_at=at,
            cycle=clock.cycle + 1 if clock is not None else 1,
        )
    if clock is None:
        return None
    last_at = max(clock.last_at, at)
    if event.event == "breach":
        return _clock_with(clock, breached=True, last_at=last_at)
    if event.event == "pause":
        if clock.phase != "running":
            return _clock_with(clock, last_at=last_at)
        return _clock_with(
            clock, phase="paused", since=at, used=clock.used_at(calendar, at), reason=event.reason, last_at=last_at
        )
    if event.event == "resume":
        if clock.phase == "running":
            return _clock_with(clock, last_at=last_at)
        # Time left: the due moves later by the paused time. A clock that had already run out
        # keeps the due it passed; it is breached either way.
        due = calendar.add(at, clock.length - clock.used) if clock.used < clock.length else clock.due
        return _clock_with(clock, phase="running", since=at, due=due, reason="", met=None, last_at=last_at)
    # fulfil
    if clock.phase == "fulfilled":
        return _clock_with(clock, last_at=last_at)
    if clock.phase == "running":
        used, met = clock.used_at(calendar, at), at <= clock.due
    else:  # answered while paused: only the time it ran counts
        used = clock.used
        met = used <= clock.length and not clock.breached
    return _clock_with(clock, phase="fulfilled", since=at, used=used, met=met, reason="", last_at=last_at)


def replay(events: Sequence[ClockEvent], *, policy: Policy, priority: str) -> dict[str, Clock]:
    """Every clock of a conversation from its events, in the order they were recorded.

    Lengths and the calendar come from `policy` and `priority` as they are now, so a policy
    or priority change re-targets the whole timeline (that is how a change applies to open
    conversations). Events of targets the policy does not set are skipped.
    """
    clocks: dict[str, Clock] = {}
    for event, clock in replay_steps(events, policy=policy, priority=priority):
        clocks[event.target] = clock
    return clocks


def replay_steps(events: Sequence[ClockEvent], *, policy: Policy, priority: str) -> Iterator[tuple[ClockEvent, Clock]]:
    """Each event with its clock right after it (what `sla explain` prints); see `replay`."""
    lengths = policy.targets_for(priority)
    clocks: dict[str, Clock] = {}
    for event in events:
        length = lengths.get(event.target)
        if length is None:
            continue
        clock = _step(clocks.get(event.target), event, calendar=policy.calendar, length=length)
        if clock is not None:
            clocks[event.target] = clock
            yield event, clock


def advance(
    clocks: Mapping[str, Clock], facts: ClockFacts, *, policy: Policy, now: datetime
) -> tuple[list[tuple[ClockEvent, Clock]], dict[str, Clock]]:
    """The events that bring `clocks` in line with `facts` at `now`, each with the clock after it,
    and the clocks after all of them. An empty list when nothing happened (call it freely).

    Rules (docs/sla.md, "Clock events"):
    - first_reply: activated at creation; fulfilled by the first agent reply.
    - next_reply: activated when a customer message waits after the first reply (from the
      oldest unanswered message); fulfilled by the next agent reply. The customer's next message
      activates a new cycle.
    - periodic_update: activated at creation and again at every agent reply, which fulfils the
      previous cycle.
    - resolution: activated at creation; fulfilled when solved or closed; resumed on reopening.
    - pending pauses every clock, on_hold all but resolution; solving pauses the reply clocks
      (they resume on reopening, with the solved time credited).
    - a running clock past its due records a breach at its due instant.
    Event times come from the facts where they have one (a message's time, solved_at) and are
    `now` otherwise; they are never before the clock's previous event nor after `now`.
    """
    now = _as_utc(now, "now")
    if facts.status not in STATUSES:
        raise ValueError(f"unknown status {facts.status!r}; statuses are {', '.join(STATUSES)}")
    lengths = policy.targets_for(facts.priority)
    calendar = policy.calendar
    clocks = dict(clocks)
    recorded: list[tuple[ClockEvent, Clock]] = []
    done = facts.status in _DONE_STATUSES
    created_at = _as_utc(facts.created_at, "created_at")
    first_responded_at = _optional_utc(facts.first_responded_at, "first_responded_at")
    last_reply_at = _optional_utc(facts.last_agent_reply_at, "last_agent_reply_at")
    waiting_since = _optional_utc(facts.waiting_since, "waiting_since")
    solved_at = _optional_utc(facts.solved_at, "solved_at")

    def record(target: str, kind: str, at: datetime, reason: str = "") -> None:
        event = ClockEvent(target, kind, at, reason)
        clock = _step(clocks.get(target), event, calendar=calendar, length=lengths[target])
        assert clock is not None
        clocks[target] = clock
        recorded.append((event, clock))

    def emit(target: str, kind: str, at: datetime, reason: str = "") -> None:
        at = min(at, now)
        clock = clocks.get(target)
        if clock is not None:
            at = max(at, clock.last_at)
            if kind in ("pause", "fulfil") and clock.phase == "running" and not clock.breached and clock.due < at:
                # A clock resumed with no time left breaches as it resumes, not at its old due.
                record(target, "breach", max(clock.due, clock.last_at))
        record(target, kind, at, reason)

    def stopped_by(target: str) -> str:
        """The status that should keep this target's clock stopped, or "" when it should run."""
        if done or facts.status in _PAUSING_STATUSES[target]:
            return facts.status
        return ""

    def hold(target: str) -> None:
        clock = clocks[target]
        reason = stopped_by(target)
        if reason and clock.phase == "running":
            # Solving stops the clocks when it happened, not when we noticed.
            emit(target, "pause", solved_at if done and solved_at else now, reason)
        elif not reason and clock.phase == "paused":
            emit(target, "resume", now, facts.status)

    if "first_reply" in lengths:
        if "first_reply" not in clocks:
            emit("first_reply", "activate", created_at)
        if first_responded_at is not None:
            if clocks["first_reply"].phase != "fulfilled":
                emit("first_reply", "fulfil", first_responded_at)
        elif clocks["first_reply"].phase != "fulfilled":
            hold("first_reply")

    if "next_reply" in lengths:
        clock = clocks.get("next_reply")
        current = clock is not None and clock.phase != "fulfilled"
        if current and clock is not None and waiting_since is None:
            answered = last_reply_at if last_reply_at is not None and last_reply_at >= clock.started_at else now
            emit("next_reply", "fulfil", answered)
            current = False
        elif (
            current
            and clock is not None
            and waiting_since is not None
            and last_reply_at is not None
            and clock.started_at < last_reply_at < waiting_since
        ):
            # Answered, and the customer wrote again, since the clocks last looked.
            emit("next_reply", "fulfil", last_reply_at)
            current = False
        if not current and not done and first_responded_at is not None and waiting_since is not None:
            emit("next_reply", "activate", max(waiting_since, first_responded_at))
            current = True
        if current:
            hold("next_reply")

    if "periodic_update" in lengths:
        clock = clocks.get("periodic_update")
        if clock is None:
            if not done:
                emit("periodic_update", "activate", last_reply_at or created_at)
        elif last_reply_at is not None and last_reply_at > clock.started_at:
            emit("periodic_update", "fulfil", last_reply_at)
            emit("periodic_update", "activate", last_reply_at)
        if "periodic_update" in clocks:
            hold("periodic_update")

    if "resolution" in lengths:
        if "resolution" not in clocks:
            emit("resolution", "activate", created_at)
        if done:
            if clocks["resolution"].phase != "fulfilled":
                emit("resolution", "fulfil", solved_at or now)
        else:
            if clocks["resolution"].phase == "fulfilled":
                emit("resolution", "resume", now, "reopened")
            hold("resolution")

    for target in TARGETS:
        clock = clocks.get(target)
        if (
            target in lengths
            and clock is not None
            and clock.phase == "running"
            and not clock.breached
            and clock.due < now
        ):
            record(target, "breach", max(clock.due, clock.last_at))
    return recorded, clocks


def clock_states(
    clocks: Mapping[str, Clock], *, policy: Policy, priority: str, now: datetime, usage: bool = True
) -> list[TargetState]:
    """The state of every clock the policy sets, in TARGETS order.

    A reply clock paused because the conversation is solved or closed is left out (nothing is
    expected of anyone until it reopens); a fulfilled clock shows whether its last cycle was met.

    `usage=False` leaves a running clock's `used` unset (None), for callers that only store a
    conversation's SLA fields (`stored_fields` reads due, state and warning_at): it is the business
    time since the clock's segment began, which for months-old mail sums months of the calendar.
    """
    now = _as_utc(now, "now")
    lengths = policy.targets_for(priority)
    calendar = policy.calendar
    states = []
    for target in TARGETS:
        clock = clocks.get(target)
        if clock is None or target not in lengths:
            continue
        length = lengths[target]
        if clock.phase == "paused":
            if clock.reason in _DONE_STATUSES:
                continue
            states.append(
                TargetState(
                    target=target,
                    due=None,
                    state="paused",
                    remaining=length - clock.used,
                    length=length,
                    used=clock.used,
                    reason=clock.reason,
                )
            )
        elif clock.phase == "fulfilled":
            if clock.met:
                remaining = length - clock.used
            elif clock.since > clock.due:
                remaining = -(clock.since - clock.due)
            else:
                remaining = -(clock.used - length)
            states.append(
                TargetState(
                    target=target,
                    due=clock.due,
                    state="met" if clock.met else "missed",
                    remaining=remaining,
                    fulfilled_at=clock.since,
                    length=length,
                    used=clock.used,
                )
            )
        else:
            due = clock.due
            remaining = _margin(calendar, now, due)
            threshold = policy.warning_threshold(length)
            warning_at = None
            if threshold is not None:
                warning_at = clock.since if due <= clock.since else max(clock.since, calendar.subtract(due, threshold))
            if now > due:
                state = "breached"
            else:
                state = "warning" if threshold is not None and remaining <= threshold else "ok"
            states.append(
                TargetState(
                    target=target,
                    due=due,
                    state=state,
                    remaining=remaining,
                    warning_at=warning_at,
                    length=length,
                    used=clock.used_at(calendar, now) if usage else None,
                )
            )
    return states
