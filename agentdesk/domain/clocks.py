"""SLA policies applied to stored conversations.

`agentdesk.domain.sla` is the pure arithmetic (business calendars, target states); this module
chooses the policy for a conversation and writes the results on it: the due times that the queue
sorts by, the instant the earliest target turns to warning (the "breaching" view), and the queue's
sort keys. Call `refresh` after anything that changes a clock: a message, a status or priority
change, a policy change.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from agentdesk.config import Settings
from agentdesk.domain import sla
from agentdesk.store.models import NEVER, Conversation


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
                    policy, frozenset(match.channel), frozenset(match.priority),
                    frozenset(match.tags), frozenset(match.tier),
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


def evaluate(conversation: Conversation, policy: sla.Policy | None, *, now: datetime) -> list[sla.TargetState]:
    if policy is None:
        return []
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
    )


def refresh(conversation: Conversation, *, policies: Policies, tags: set[str], tier: str = "", now: datetime) -> None:
    """Recompute the stored SLA fields of `conversation` (in memory; the caller commits)."""
    policy = policies.select(channel=conversation.channel, priority=conversation.priority, tags=tags, tier=tier)
    conversation.sla_policy = policy.name if policy else ""
    states = {state.target: state for state in evaluate(conversation, policy, now=now)}

    def due(target: str) -> datetime | None:
        state = states.get(target)
        return state.due if state else None

    conversation.first_response_due = due("first_reply")
    conversation.next_response_due = due("next_reply")
    conversation.periodic_update_due = due("periodic_update")
    conversation.resolution_due = due("resolution")
    running = [s for s in states.values() if s.state in ("ok", "warning", "breached") and s.due is not None]
    next_due = min((s.due for s in running), default=None)
    conversation.warning_at = min((s.warning_at for s in running if s.warning_at is not None), default=None)
    conversation.queue_due = next_due or NEVER
    conversation.queue_wait = conversation.waiting_since or NEVER

