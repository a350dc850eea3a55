"""What a conversation stores of its clocks: its SLA columns and each clock event's detail.

clocks.py writes them; the sync's parser processes compute them ahead (`opening`) for the
conversations a message would open.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from agentdesk.domain.sla.instants import UTC
from agentdesk.domain.sla.policies import Policy
from agentdesk.domain.sla.target_states import TargetState
from agentdesk.domain.sla.timeline import Clock, ClockEvent, ClockFacts, advance, clock_states

# Sorts after every due time (the queue's keyset needs a NOT NULL column); equal to store.models.NEVER.
NEVER = datetime(9999, 1, 1, tzinfo=UTC)

# What json.dumps does with a str (ensure_ascii), without its dispatch.
_json_string = __import__("json").encoder.encode_basestring_ascii


def event_detail(policy: Policy, event: ClockEvent, clock: Clock) -> str:
    """A clock event's stored detail: what `sla explain` and reports want without replaying.

    The JSON of the dict with sorted keys, written out by hand: ingest records a few of these per
    new conversation, and `json.dumps(..., sort_keys=True)` was a tenth of storing one.
    """
    parts = [f'"cycle": {clock.cycle}']
    if clock.phase == "running" or event.event in ("fulfil", "breach"):
        parts.append(f'"due": "{clock.due.isoformat()}"')
    parts.append(f'"length_seconds": {int(clock.length.total_seconds())}')
    if event.event == "fulfil":
        parts.append(f'"met": {"true" if clock.met else "false"}')
    parts.append(f'"policy": {_json_string(policy.name)}')
    if event.reason:
        parts.append(f'"reason": {_json_string(event.reason)}')
    parts.append(f'"used_seconds": {int(clock.used.total_seconds())}')
    return "{" + ", ".join(parts) + "}"


def stored_fields(states: Sequence[TargetState], waiting_since: datetime | None) -> dict[str, datetime | None]:
    """The conversation's SLA columns for these target states (the queue sorts and filters by them)."""
    by_target = {state.target: state for state in states}

    def due(target: str, keep_fulfilled: bool) -> datetime | None:
        state = by_target.get(target)
        if state is None or state.state == "paused":
            return None
        if state.state in ("met", "missed") and not keep_fulfilled:
            return None
        return state.due

    # first reply and resolution keep the due they were fulfilled against (met/missed is read
    # from it); next reply and periodic update are "when is the next one due", so none once met.
    running = [s for s in by_target.values() if s.state in ("ok", "warning", "breached") and s.due is not None]
    return {
        "first_response_due": due("first_reply", True),
        "next_response_due": due("next_reply", False),
        "periodic_update_due": due("periodic_update", False),
        "resolution_due": due("resolution", True),
        "warning_at": min((s.warning_at for s in running if s.warning_at is not None), default=None),
        "queue_due": min((s.due for s in running if s.due is not None), default=None) or NEVER,
        "queue_wait": waiting_since or NEVER,
    }


@dataclass(frozen=True)
class Opening:
    """The clocks a conversation opened by one message starts with, computed ahead of storing.

    Valid for a conversation whose facts and `now` are exactly these (status new, no reply, no
    tags, a customer without a tier: the policy was chosen for that); ingest checks and otherwise
    refreshes as usual.
    """

    policy: str
    priority: str
    created_at: datetime
    waiting_since: datetime | None
    now: datetime
    fields: dict[str, datetime | None]
    events: tuple[tuple[str, str, datetime, str], ...]  # (target, event, at, detail)


def opening(
    policy: Policy, *, priority: str, created_at: datetime, waiting_since: datetime | None, now: datetime
) -> Opening:
    facts = ClockFacts(status="new", priority=priority, created_at=created_at, waiting_since=waiting_since)
    recorded, clocks = advance({}, facts, policy=policy, now=now)
    states = clock_states(clocks, policy=policy, priority=priority, now=now, usage=False)
    return Opening(
        policy.name,
        priority,
        created_at,
        waiting_since,
        now,
        stored_fields(states, waiting_since),
        tuple((event.target, event.event, event.at, event_detail(policy, event, clock)) for event, clock in recorded),
    )
