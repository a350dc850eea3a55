"""The public face of the SLA package: durations, business calendars, policies, target states, clocks.

Pure functions over plain values; nothing here reads the clock, the database or the config
file. Every instant going in must be timezone-aware (any zone is accepted and converted); every
instant coming out is UTC. The rules are written up for users in docs/sla.md.
"""

from agentdesk.domain.sla.calendars import (
    ALWAYS_OPEN,
    MAX_CLOSED_DAYS,
    WEEKDAYS,
    AlwaysOpen,
    BusinessCalendar,
    Calendar,
)
from agentdesk.domain.sla.durations import format_duration, format_short, parse_duration
from agentdesk.domain.sla.errors import InvalidDuration, SlaConfigError
from agentdesk.domain.sla.policies import (
    DEFAULT_WARNING_BEFORE,
    DEFAULT_WARNING_FRACTION,
    PRIORITIES,
    STATUSES,
    TARGET_STATES,
    TARGETS,
    Policy,
    parse_warning,
)
from agentdesk.domain.sla.stored import NEVER, Opening, event_detail, opening, stored_fields
from agentdesk.domain.sla.target_states import (
    TargetState,
    evaluate,
    hold_time,
    next_due,
    overall_state,
    warning_starts_at,
)
from agentdesk.domain.sla.timeline import (
    CLOCK_EVENTS,
    CLOCK_PHASES,
    Clock,
    ClockEvent,
    ClockFacts,
    advance,
    clock_states,
    replay,
    replay_steps,
)

__all__ = [
    "ALWAYS_OPEN",
    "CLOCK_EVENTS",
    "CLOCK_PHASES",
    "DEFAULT_WARNING_BEFORE",
    "DEFAULT_WARNING_FRACTION",
    "MAX_CLOSED_DAYS",
    "NEVER",
    "PRIORITIES",
    "STATUSES",
    "TARGET_STATES",
    "TARGETS",
    "WEEKDAYS",
    "AlwaysOpen",
    "BusinessCalendar",
    "Calendar",
    "Clock",
    "ClockEvent",
    "ClockFacts",
    "InvalidDuration",
    "Opening",
    "Policy",
    "SlaConfigError",
    "TargetState",
    "advance",
    "clock_states",
    "evaluate",
    "event_detail",
    "format_duration",
    "format_short",
    "hold_time",
    "next_due",
    "opening",
    "overall_state",
    "parse_duration",
    "parse_warning",
    "replay",
    "replay_steps",
    "stored_fields",
    "warning_starts_at",
]
