"""SLA policies applied to stored conversations.

`agentdesk.domain.sla` is the pure arithmetic (business calendars, the clock timeline, target
states); this module chooses the policy for a conversation, records its clock events
(`SlaClockEvent` rows) and writes the results on it: the due times that the queue sorts by, the
instant the earliest target turns to warning (the "breaching" view), and the queue's sort keys.

Call `refresh` after anything that changes a clock: a message, a status or priority change. With
a `session` it replays the conversation's recorded clock events, records what happened since, and
stores due times that credit paused time. Without one (the demo's bulk builder, which works on
plain namespaces) it falls back to the snapshot model and records nothing.

Reads never replay: `evaluate` without events uses the stored due times. A policy change reaches
open conversations through `recompute` (`agentdesk sla recompute`, and `apply_policy_change` for
the sync worker, which runs it when the policies' fingerprint differs from the last one applied).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from agentdesk.config import Settings
from agentdesk.domain import sla
from agentdesk.store.models import Conversation, SlaClockEvent


@dataclass(frozen=True)
class PolicyRule:
    policy: sla.Policy
    channels: frozenset[str]
    priorities: frozenset[str]
    tags: frozenset[str]
    tiers: frozenset[str]

    def matches(self, *, channel: str, priority: str, tags: set[str], tier: str) -> bool:
        return (
            (not self.channels or channel in self.channels)
            and (not self.priorities or priority in self.priorities)
            and (not self.tags or bool(self.tags & tags))
            and (not self.tiers or tier in self.tiers)
        )


class Policies:
    """The configured SLA policies, in order; the first that matches a conversation applies."""

    def __init__(self, rules: list[PolicyRule]):
        self.rules = rules

    @property
    def fingerprint(self) -> str:
        """A digest of everything that decides due times: order, matches, targets, calendars.

        Two configs with the same fingerprint give every conversation the same clocks, so a
        stored fingerprint tells whether open conversations need `recompute`.
        """
        return hashlib.sha256(
            json.dumps([_rule_description(rule) for rule in self.rules], sort_keys=True).encode()
        ).hexdigest()[:16]

    @classmethod
    def from_settings(cls, settings: Settings) -> Policies:
        calendars = {
            cal.name: sla.BusinessCalendar(cal.name, cal.timezone, cal.hours, cal.holidays, cal.holiday_rules)
            for cal in settings.calendar
        }
        rules = []
        for configured in settings.sla_policy:
            targets = {
                target: sla.parse_duration(getattr(configured, target))
                for target in sla.TARGETS
                if getattr(configured, target)
            }
            overrides = {
                priority: {
                    target: sla.parse_duration(getattr(values, target))
                    for target in sla.TARGETS
                    if getattr(values, target)
                }
                for priority, values in configured.priority.items()
            }
            warning_fraction, warning_before = sla.parse_warning(configured.warning)
            policy = sla.Policy(
                name=configured.name,
                calendar=calendars[configured.calendar] if configured.calendar else sla.ALWAYS_OPEN,
                targets=targets,
                warning_fraction=warning_fraction,
                warning_before=warning_before,
                priority_overrides=overrides,
            )
            match = configured.match
            rules.append(
                PolicyRule(
                    policy,
                    frozenset(match.channel),
                    frozenset(match.priority),
                    frozenset(match.tags),
                    frozenset(match.tier),
                )
            )
        return cls(rules)

    def select(self, *, channel: str, priority: str, tags: set[str], tier: str = "") -> sla.Policy | None:
        for rule in self.rules:
            if rule.matches(channel=channel, priority=priority, tags=tags, tier=tier):
                return rule.policy
        return None

    def by_name(self, name: str) -> sla.Policy | None:
        for rule in self.rules:
            if rule.policy.name == name:
                return rule.policy
        return None


def _rule_description(rule: PolicyRule) -> dict[str, Any]:
    policy = rule.policy
    calendar = policy.calendar
    if isinstance(calendar, sla.BusinessCalendar):
        calendar_description: Any = {
            "name": calendar.name,
            "timezone": calendar.timezone,
            "hours": dict(calendar.hours),
            "holidays": sorted(day.isoformat() for day in calendar.holidays),
            "holiday_rules": list(calendar.holiday_rules),
        }
    else:
        calendar_description = calendar.name
    seconds = lambda targets: {target: length.total_seconds() for target, length in targets.items()}  # noqa: E731
    return {
        "name": policy.name,
        "calendar": calendar_description,
        "targets": seconds(policy.targets),
        "overrides": {priority: seconds(targets) for priority, targets in policy.priority_overrides.items()},
        "warning": [
            policy.warning_fraction,
            policy.warning_before.total_seconds() if policy.warning_before is not None else None,
        ],
        "match": [sorted(rule.channels), sorted(rule.priorities), sorted(rule.tags), sorted(rule.tiers)],
    }


# --- reading and recording clock events ---------------------------------------------------------


def clock_event(row: SlaClockEvent) -> sla.ClockEvent:
    """The pure event of a stored row (the row's detail JSON carries the reason)."""
    return _event(row.target, row.event, row.at, row.detail)


def _event(target: str, event: str, at: datetime, detail: str | None) -> sla.ClockEvent:
    reason = ""
    if detail and '"reason"' in detail:  # most events have none: spare the JSON parse
        try:
            parsed = json.loads(detail)
        except ValueError:
            parsed = {}
        reason = parsed.get("reason", "") if isinstance(parsed, dict) else ""
    return sla.ClockEvent(target, event, at, reason)


def load_events(session, conversation_ids: Sequence[int]) -> dict[int, list[sla.ClockEvent]]:
    """The recorded clock events of several conversations, each in recorded order (one query;
    plain columns, not ORM objects: ingest loads them for every conversation a chunk touches)."""
    from agentdesk.store import conversations

    found: dict[int, list[sla.ClockEvent]] = {conversation_id: [] for conversation_id in conversation_ids}
    if not conversation_ids:
        return found
    rows = conversations.clock_event_columns(session=session, conversation_ids=conversation_ids)
    for conversation_id, target, event, at, detail in rows:
        found[conversation_id].append(_event(target, event, at, detail))
    return found


def _unflushed(session: Any, conversation_id: int) -> list[sla.ClockEvent]:
    """Events an earlier refresh of this transaction added but nobody flushed yet.

    Ingest works with autoflush off and refreshes twice when a message reopens a conversation;
    without these the second refresh would not see the first one's events and record them again.
    `session.new` keeps insertion order, which is recorded order.
    """
    return [
        clock_event(row)
        for row in getattr(session, "new", ())
        if isinstance(row, SlaClockEvent) and row.conversation_id == conversation_id
    ]


def facts_of(conversation: Any) -> sla.ClockFacts:
    return sla.ClockFacts(
        status=conversation.status,
        priority=conversation.priority,
        created_at=conversation.created_at,
        first_responded_at=conversation.first_responded_at,
        last_agent_reply_at=conversation.last_agent_reply_at,
        waiting_since=conversation.waiting_since,
        solved_at=conversation.solved_at,
    )


_detail = sla.event_detail


def policy_for(session: Any, conversation: Conversation, policies: Policies) -> sla.Policy | None:
    """The policy that applies to the conversation now (its tags and customer tier included)."""
    from agentdesk.store import conversations
    from agentdesk.store.models import Customer

    assert conversation.id is not None, "a stored conversation"
    tags = conversations.tag_names(session=session, conversation_id=conversation.id)
    customer = session.get(Customer, conversation.customer_id)
    return _policy_of(conversation, policies, tags, customer.tier if customer else "")


# --- evaluating and refreshing ---------------------------------------------------------------------


def _stored_dues(conversation: Any) -> dict[str, datetime | None]:
    return {
        "first_reply": conversation.first_response_due,
        "next_reply": conversation.next_response_due,
        "periodic_update": conversation.periodic_update_due,
        "resolution": conversation.resolution_due,
    }


def evaluate(
    conversation: Any,
    policy: sla.Policy | None,
    *,
    now: datetime,
    events: Sequence[sla.ClockEvent] | None = None,
) -> list[sla.TargetState]:
    """Every target's state. Without `events`: from the stored fields and due times (cheap, for
    lists). With the conversation's recorded events: from the replayed timeline, which also knows
    a paused target's time left and whether the last next-reply and update cycles were met."""
    if policy is None:
        return []
    if events is not None:
        clocks, _ = timeline(conversation, policy, events=events, now=now)
        return sla.clock_states(clocks, policy=policy, priority=conversation.priority, now=now)
    return sla.evaluate(
        policy=policy,
        priority=conversation.priority,
        status=conversation.status,
        created_at=conversation.created_at,
        first_responded_at=conversation.first_responded_at,
        waiting_since=conversation.waiting_since,
        last_agent_reply_at=conversation.last_agent_reply_at,
        solved_at=conversation.solved_at,
        now=now,
        dues=_stored_dues(conversation),
    )


def timeline(
    conversation: Any, policy: sla.Policy, *, events: Sequence[sla.ClockEvent], now: datetime
) -> tuple[dict[str, sla.Clock], list[tuple[sla.ClockEvent, sla.Clock]]]:
    """The clocks after the recorded `events` and whatever has happened since (not recorded).

    For a conversation with no events yet (built before clocks were recorded, or by the demo
    builder) this derives the timeline from its fields alone.
    """
    clocks = sla.replay(events, policy=policy, priority=conversation.priority)
    pending, clocks = sla.advance(clocks, facts_of(conversation), policy=policy, now=now)
    return clocks, pending


_UNLOADED = object()


def _set(conversation: Any, name: str, value: Any) -> None:
    """setattr, skipped when a loaded ORM attribute already holds that value: most refreshes
    change few of the stored fields, and an instrumented set costs several times the compare.
    (Only the instance's own dict is read: an expired attribute is set, not loaded to compare.)"""
    if getattr(conversation, "__dict__", {}).get(name, _UNLOADED) == value:
        return
    setattr(conversation, name, value)


def _write_fields(conversation: Any, states: Iterable[sla.TargetState]) -> None:
    for name, value in sla.stored_fields(list(states), conversation.waiting_since).items():
        _set(conversation, name, value)


def _policy_of(conversation: Any, policies: Policies, tags: set[str], tier: str) -> sla.Policy | None:
    """The policy whose clocks run for `conversation`: none while it is set aside (spam, bulk,
    system) — no one owes a reply there; moved back, its clocks start from its facts again."""
    if getattr(conversation, "aside", ""):
        return None
    return policies.select(channel=conversation.channel, priority=conversation.priority, tags=tags, tier=tier)


def refresh(
    conversation: Any,
    *,
    policies: Policies,
    tags: set[str],
    tier: str = "",
    now: datetime,
    session: Any = None,
    events: Sequence[sla.ClockEvent] | None = None,
) -> list[sla.ClockEvent]:
    """Recompute the stored SLA fields of `conversation` (in memory; the caller commits).

    With `session`: replay the recorded clock events (or the `events` given, already loaded),
    add the events that happened since to the session, and return them. Without: the snapshot
    model, nothing recorded.
    """
    policy = _policy_of(conversation, policies, tags, tier)
    conversation.sla_policy = policy.name if policy else ""
    conversation_id = getattr(conversation, "id", None)
    if policy is None:
        _write_fields(conversation, [])
        return []
    if session is None or conversation_id is None:
        states = sla.evaluate(
            policy=policy,
            priority=conversation.priority,
            status=conversation.status,
            created_at=conversation.created_at,
            first_responded_at=conversation.first_responded_at,
            waiting_since=conversation.waiting_since,
            last_agent_reply_at=conversation.last_agent_reply_at,
            solved_at=conversation.solved_at,
            now=now,
        )
        _write_fields(conversation, states)
        return []
    if events is None:
        events = load_events(session, [conversation_id])[conversation_id] + _unflushed(session, conversation_id)
    recorded = _advance_and_write(conversation, policy, events=events, now=now)
    for event, detail in recorded:
        session.add(
            SlaClockEvent(
                conversation_id=conversation_id, target=event.target, event=event.event, at=event.at, detail=detail
            )
        )
    return [event for event, _ in recorded]


def _advance_and_write(
    conversation: Any, policy: sla.Policy, *, events: Sequence[sla.ClockEvent], now: datetime
) -> list[tuple[sla.ClockEvent, str]]:
    clocks, new = timeline(conversation, policy, events=events, now=now)
    states = sla.clock_states(clocks, policy=policy, priority=conversation.priority, now=now, usage=False)
    _write_fields(conversation, states)
    return [(event, _detail(policy, event, clock)) for event, clock in new]


def refresh_rows(
    conversation: Any,
    *,
    policies: Policies,
    tags: set[str],
    tier: str = "",
    now: datetime,
    events: Sequence[sla.ClockEvent] = (),
) -> list[dict[str, Any]]:
    """`refresh` for ingest's batches: the same fields written on `conversation`, the events that
    happened since `events` returned as `SlaClockEvent` column values (without conversation_id)
    instead of added to a session, so a batch inserts the events of many conversations in one
    statement — and a conversation not stored yet (no id, `events` empty) gets its clocks too."""
    policy = _policy_of(conversation, policies, tags, tier)
    _set(conversation, "sla_policy", policy.name if policy else "")
    if policy is None:
        _write_fields(conversation, [])
        return []
    return [
        {"target": event.target, "event": event.event, "at": event.at, "detail": detail}
        for event, detail in _advance_and_write(conversation, policy, events=events, now=now)
    ]


# --- taking back what recorded clock events -------------------------------------------------------


def rewind(
    session: Any,
    conversation: Conversation,
    *,
    policies: Policies,
    after_id: int,
    status_changes: Sequence[tuple[datetime, str]] = (),
) -> None:
    """Forget the conversation's clock events recorded after event `after_id`, then record again
    what each later status change `(when, new status)` did to the clocks, from the conversation's
    facts as they are now: the clocks as they would be had whatever the forgotten events followed
    (a withdrawn reply) never been recorded, its pauses still credited. The caller then refreshes
    (`queue.touch` or `queue.change`), which records what the facts say since the last change.

    The facts at each change are read off the conversation as it is now: its replies and the
    customer's wait are counted from the change on only if they came before it."""
    from types import SimpleNamespace

    from agentdesk.store import conversations
    from agentdesk.store.models import Customer
    from agentdesk.store.queries import DONE_STATUSES

    conversation_id = conversation.id
    assert conversation_id is not None, "a stored conversation"
    conversations.delete_clock_events_after(session=session, conversation_ids=[conversation_id], after_id=after_id)
    if not status_changes:
        return
    tags = conversations.tag_names(session=session, conversation_id=conversation_id)
    customer = session.get(Customer, conversation.customer_id)
    tier = customer.tier if customer else ""
    events = load_events(session, [conversation_id])[conversation_id]

    def before(at: datetime, value: datetime | None) -> datetime | None:
        return value if value is not None and value <= at else None

    for at, status in status_changes:
        first = before(at, conversation.first_responded_at)
        then = SimpleNamespace(
            id=conversation_id,
            aside=getattr(conversation, "aside", ""),
            channel=conversation.channel,
            priority=conversation.priority,
            status=status,
            created_at=conversation.created_at,
            first_responded_at=first,
            last_agent_reply_at=before(at, conversation.last_agent_reply_at) or first,
            waiting_since=before(at, conversation.waiting_since),
            solved_at=at if status in DONE_STATUSES else None,
        )
        events = events + refresh(then, policies=policies, tags=tags, tier=tier, now=at, session=session, events=events)


# --- applying a policy change to open conversations -------------------------------------------------

_STORED_FIELDS = (
    "sla_policy",
    "first_response_due",
    "next_response_due",
    "periodic_update_due",
    "resolution_due",
    "warning_at",
    "queue_due",
    "queue_wait",
)
RECOMPUTE_ACTION = "sla_recompute"  # the audit event that records which policies were applied


@dataclass
class RecomputeProgress:
    checked: int = 0  # open conversations looked at
    changed: int = 0  # whose stored SLA fields changed
    events: int = 0  # clock events recorded (most of them: timelines started for old conversations)
    last_id: int = 0  # keyset cursor: continue after this conversation id


def recompute_page(
    session: Any,
    *,
    policies: Policies,
    now: datetime,
    after_id: int = 0,
    limit: int = 500,
    progress: RecomputeProgress | None = None,
) -> RecomputeProgress:
    """Re-apply the policies to the next `limit` open conversations after `after_id`.

    Open means not solved, closed or merged away: finished conversations keep the verdicts they
    were given. Each conversation's timeline is replayed under the current policies (starting it
    from its fields if it has none yet); those whose stored fields change get a new version, so
    an agent editing one is told to reload. One page per transaction keeps the write lock short;
    `progress.last_id` is 0 after the last page. Three queries a page, not three per row.
    """
    from agentdesk.store import conversations, queries

    progress = progress or RecomputeProgress()
    rows = conversations.open_conversations_page(session=session, after_id=after_id, limit=limit)
    if not rows:
        progress.last_id = 0
        return progress
    ids = [conversation.id for conversation in rows if conversation.id is not None]  # loaded rows: all
    tags = queries.tags_of(session=session, conversation_ids=ids)
    customers = queries.customers_by_id(session=session, customer_ids=[c.customer_id for c in rows])
    events = load_events(session, ids)
    for conversation in rows:
        before = tuple(getattr(conversation, name) for name in _STORED_FIELDS)
        customer = customers.get(conversation.customer_id)
        assert conversation.id is not None, "a loaded conversation"
        recorded = refresh(
            conversation,
            policies=policies,
            tags=set(tags[conversation.id]),
            tier=customer.tier if customer else "",
            now=now,
            session=session,
            events=events[conversation.id],
        )
        progress.events += len(recorded)
        if tuple(getattr(conversation, name) for name in _STORED_FIELDS) != before:
            conversation.version += 1
            progress.changed += 1
        session.add(conversation)
        progress.checked += 1
    progress.last_id = ids[-1]
    return progress


def last_applied_fingerprint(session: Any) -> str | None:
    """The policies' fingerprint of the last recompute (from the audit log), or None."""
    from agentdesk.store import threads

    row = threads.latest_event_detail(session=session, conversation_id=None, action=RECOMPUTE_ACTION)
    if row is None:
        return None
    try:
        return json.loads(row).get("fingerprint")
    except (ValueError, AttributeError):
        return None


def record_applied(session: Any, *, policies: Policies, agent: str, now: datetime, progress: RecomputeProgress) -> None:
    from agentdesk.domain import audit

    audit.record(
        session,
        agent=agent,
        action=RECOMPUTE_ACTION,
        now=now,
        fingerprint=policies.fingerprint,
        policies=[rule.policy.name for rule in policies.rules],
        checked=progress.checked,
        changed=progress.changed,
        events=progress.events,
    )


def recompute(
    session_factory,
    *,
    policies: Policies,
    now: datetime,
    agent: str,
    limit: int = 500,
    on_page=None,
) -> RecomputeProgress:
    """Re-apply the policies to every open conversation, a page per transaction, then record the
    policies' fingerprint in the audit log. `session_factory()` opens a write session."""
    progress = RecomputeProgress()
    after_id = 0
    while True:
        with session_factory() as session:
            recompute_page(session, policies=policies, now=now, after_id=after_id, limit=limit, progress=progress)
            if progress.last_id == 0:
                record_applied(session, policies=policies, agent=agent, now=now, progress=progress)
                session.commit()
                return progress
            session.commit()
        after_id = progress.last_id
        if on_page is not None:
            on_page(progress)


def apply_policy_change(
    session_factory, *, policies: Policies, now: datetime, agent: str = "system", on_page=None
) -> RecomputeProgress | None:
    """`recompute` when the policies differ from the last ones applied; None when they do not.

    For the long-running worker (`agentdesk sync`) at start: an edited policy reaches open
    conversations without anyone remembering to run `agentdesk sla recompute`. On a database
    never recomputed the first run also starts the timelines of older open conversations.
    """
    with session_factory() as session:
        applied = last_applied_fingerprint(session)
    if applied == policies.fingerprint:
        return None
    return recompute(session_factory, policies=policies, now=now, agent=agent, on_page=on_page)
