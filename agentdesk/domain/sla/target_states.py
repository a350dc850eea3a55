"""Where each target stands, read from the conversation's current fields (`evaluate`).

The snapshot model: states from the conversation's current fields, optionally with the stored
due times (`dues`) that the clock timeline (timeline.py) computed. Cheap; used for reads of
many rows. Also what the queue shows of a list of states: the overall state, the next due.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from agentdesk.domain.sla.calendars import Calendar
from agentdesk.domain.sla.instants import _as_utc, _optional_utc
from agentdesk.domain.sla.policies import _DONE_STATUSES, _PAUSING_STATUSES, STATUSES, Policy


@dataclass(frozen=True)
class TargetState:
    """Where one SLA target stands.

    `remaining` is business time left when the clock stopped or now, whichever came first:
    positive while on time, negative calendar time overdue once past due (for met/missed, the
    margin at fulfilment). Paused targets have no `due`: it moves later by however long the pause
    lasts. From the clock timeline a paused target's `remaining` is the business time it had
    left when it stopped (frozen); from stored fields alone it is None.

    `warning_at` (running targets only) is the instant the target turns to warning, so a store
    can find "about to breach" conversations with a plain comparison; None when the policy
    never warns.
    """

    target: str
    due: datetime | None
    state: str  # ok | warning | breached | paused | met | missed
    remaining: timedelta | None
    fulfilled_at: datetime | None = None
    warning_at: datetime | None = None
    # The target's length under the policy and priority, and (timeline only) the business time
    # its clock has used so far and why it is paused.
    # Extra facts, not part of a state's identity (two states compare by what they promise).
    length: timedelta | None = field(default=None, compare=False)
    used: timedelta | None = field(default=None, compare=False)
    reason: str = field(default="", compare=False)

    @property
    def overdue(self) -> timedelta | None:
        """By how much a breached or missed target is late (calendar time); None otherwise."""
        if self.state in ("breached", "missed") and self.remaining is not None:
            return -self.remaining
        return None


def _margin(calendar: Calendar, at: datetime, due: datetime) -> timedelta:
    return calendar.between(at, due) if at <= due else -(at - due)


def _target_state(
    *,
    policy: Policy,
    target: str,
    length: timedelta,
    started_at: datetime,
    fulfilled_at: datetime | None,
    paused: bool,
    now: datetime,
    due: datetime | None = None,
) -> TargetState:
    if fulfilled_at is None and paused:
        return TargetState(target=target, due=None, state="paused", remaining=None, length=length)
    if due is None:
        due = policy.calendar.add(started_at, length)
    if fulfilled_at is not None:
        state = "met" if fulfilled_at <= due else "missed"
        return TargetState(target, due, state, _margin(policy.calendar, fulfilled_at, due), fulfilled_at, length=length)
    remaining = _margin(policy.calendar, now, due)
    threshold = policy.warning_threshold(length)
    warning_at = None
    if threshold is not None:
        # A threshold as long as the target itself means warning from the start.
        if threshold >= length:
            warning_at = started_at
        else:
            warning_at = max(started_at, policy.calendar.subtract(due, threshold))
    if now > due:
        state = "breached"
    else:
        state = "warning" if threshold is not None and remaining <= threshold else "ok"
    return TargetState(target=target, due=due, state=state, remaining=remaining, warning_at=warning_at, length=length)


def evaluate(
    *,
    policy: Policy,
    priority: str,
    status: str,
    created_at: datetime,
    first_responded_at: datetime | None,
    waiting_since: datetime | None,
    last_agent_reply_at: datetime | None,
    solved_at: datetime | None,
    now: datetime,
    dues: Mapping[str, datetime | None] | None = None,
) -> list[TargetState]:
    """The state of every target of `policy` that applies to the conversation, in TARGETS order.

    `dues`, when given, are the due times stored on the conversation by the clock timeline
    (`advance`), which already credit paused time; a target with a stored due uses it instead of
    the due counted from its start. This is how reads stay cheap: no timeline replay per row.

    - first_reply: from created_at; fulfilled by the first reply. Dropped once solved unanswered.
    - next_reply: from waiting_since, only after a first reply and while the customer waits.
    - periodic_update: from the last agent reply (or created_at) while new or open.
    - resolution: from created_at; fulfilled by solved_at once the status is solved or closed.
    Pending pauses every unfulfilled target; on_hold pauses all but resolution.
    """
    if status not in STATUSES:
        raise ValueError(f"unknown status {status!r}; statuses are {', '.join(STATUSES)}")
    targets = policy.targets_for(priority)
    now = _as_utc(now, "now")
    created_at = _as_utc(created_at, "created_at")
    first_responded_at = _optional_utc(first_responded_at, "first_responded_at")
    waiting_since = _optional_utc(waiting_since, "waiting_since")
    last_agent_reply_at = _optional_utc(last_agent_reply_at, "last_agent_reply_at")
    done = status in _DONE_STATUSES
    if done and solved_at is None:
        raise ValueError(f"a {status} conversation needs solved_at to evaluate its resolution target")
    # A reopened conversation's old solved_at no longer fulfils anything.
    solved_at = _as_utc(solved_at, "solved_at") if done and solved_at is not None else None

    def state(target: str, started_at: datetime, fulfilled_at: datetime | None) -> TargetState:
        return _target_state(
            policy=policy,
            target=target,
            length=targets[target],
            started_at=started_at,
            fulfilled_at=fulfilled_at,
            paused=status in _PAUSING_STATUSES[target],
            now=now,
            due=_optional_utc((dues or {}).get(target), f"dues[{target!r}]"),
        )

    states = []
    if "first_reply" in targets and (first_responded_at is not None or not done):
        states.append(state("first_reply", created_at, first_responded_at))
    if "next_reply" in targets and not done and first_responded_at is not None and waiting_since is not None:
        states.append(state("next_reply", waiting_since, None))
    if "periodic_update" in targets and not done:
        states.append(state("periodic_update", last_agent_reply_at or created_at, None))
    if "resolution" in targets:
        states.append(state("resolution", created_at, solved_at))
    return states


# Worst first; what the queue's single `sla.state` shows while anything is still running.
_OVERALL_SEVERITY = ("breached", "warning", "ok", "paused")


def overall_state(states: Sequence[TargetState]) -> str:
    """The contract's `sla.state`: the worst unfulfilled target, or "met" when none is left.

    Missed targets are history (they stay visible per target); the overall state says what
    needs attention now.
    """
    unfulfilled = {state.state for state in states if state.state in _OVERALL_SEVERITY}
    for severity in _OVERALL_SEVERITY:
        if severity in unfulfilled:
            return severity
    return "met"


def next_due(states: Sequence[TargetState]) -> datetime | None:
    """The earliest due time among running (unfulfilled, unpaused) targets; sorts the queue."""
    dues = [state.due for state in states if state.state in ("ok", "warning", "breached") and state.due]
    return min(dues, default=None)


def warning_starts_at(policy: Policy, state: TargetState) -> datetime:
    """When a running target needs attention: its `warning_at`, or its due when it never warns.

    `state` must come from `evaluate` with `policy`, which already placed the warning instant.
    """
    if state.state not in ("ok", "warning", "breached") or state.due is None:
        raise ValueError(
            f"{state.target} under policy {policy.name!r} is {state.state}, not running; it has no warning time"
        )
    return state.warning_at if state.warning_at is not None else state.due


def hold_time(waiting_since: datetime | None, now: datetime) -> timedelta | None:
    """Calendar time the customer has waited since their oldest unanswered message."""
    if waiting_since is None:
        return None
    return max(_as_utc(now, "now") - _as_utc(waiting_since, "waiting_since"), timedelta(0))
