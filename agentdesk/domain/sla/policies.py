"""SLA policies: targets per priority, measured on a calendar, and when a target starts to warn.

Also the words the whole package shares: the targets, priorities and statuses, and which
statuses stop which clock.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from types import MappingProxyType
from typing import Any

from agentdesk.domain.sla.calendars import ALWAYS_OPEN, Calendar
from agentdesk.domain.sla.durations import parse_duration
from agentdesk.domain.sla.errors import InvalidDuration, SlaConfigError

TARGETS = ("first_reply", "next_reply", "periodic_update", "resolution")
PRIORITIES = ("low", "normal", "high", "urgent")
STATUSES = ("new", "open", "pending", "on_hold", "solved", "closed")
TARGET_STATES = ("ok", "warning", "breached", "paused", "met", "missed")

_RUNNING_STATUSES = frozenset({"new", "open"})
_DONE_STATUSES = frozenset({"solved", "closed"})
# Which statuses stop which clock. Pending is the customer's turn: nothing runs against us.
# On hold is waiting on a third party we chose to depend on: the conversation is still ours to
# resolve, so resolution keeps running while the reply clocks rest.
_PAUSING_STATUSES = {
    "first_reply": frozenset({"pending", "on_hold"}),
    "next_reply": frozenset({"pending", "on_hold"}),
    "periodic_update": frozenset({"pending", "on_hold"}),
    "resolution": frozenset({"pending"}),
}

DEFAULT_WARNING_FRACTION = 0.25
DEFAULT_WARNING_BEFORE = timedelta(hours=1)


def parse_warning(text: str) -> tuple[float | None, timedelta | None]:
    """The config's `warning`: "25%" -> (0.25, None); "1h" -> (None, 1h)."""
    if isinstance(text, str) and text.strip().endswith("%"):
        number = text.strip()[:-1].strip()
        try:
            fraction = float(number) / 100
        except ValueError:
            fraction = -1.0
        if not 0 < fraction <= 1:
            raise SlaConfigError(f'warning {text!r} must be a percentage above 0 and at most 100, e.g. "25%"')
        return fraction, None
    try:
        before = parse_duration(text)
    except InvalidDuration:
        raise SlaConfigError(f'warning {text!r} must be a percentage like "25%" or a duration like "1h"') from None
    if before <= timedelta(0):
        raise SlaConfigError(f"warning {text!r} must be longer than zero")
    return None, before


def _freeze_targets(targets: Mapping[str, timedelta], where: str) -> Mapping[str, timedelta]:
    if not isinstance(targets, Mapping):
        raise SlaConfigError(f"{where}: targets must map target names to durations")
    for target, duration in targets.items():
        if target not in TARGETS:
            raise SlaConfigError(f"{where}: unknown target {target!r}; targets are {', '.join(TARGETS)}")
        if not isinstance(duration, timedelta) or duration <= timedelta(0):
            raise SlaConfigError(f"{where}: {target} must be a duration longer than zero, got {duration!r}")
    return MappingProxyType(dict(targets))


@dataclass(frozen=True)
class Policy:
    """One `[[sla_policy]]`: targets measured on a calendar, with per-priority overrides.

    Warning rule: a running target is in warning once its remaining business time is at or
    below the smaller of the thresholds the policy sets (`warning_fraction` of the target,
    `warning_before`); with neither set, targets never warn. The default sets both (25 % and 1 h),
    so short targets warn in their last quarter and long ones in their last hour.
    """

    name: str
    calendar: Calendar = ALWAYS_OPEN
    targets: Mapping[str, timedelta] = field(default_factory=dict)
    warning_fraction: float | None = DEFAULT_WARNING_FRACTION
    warning_before: timedelta | None = DEFAULT_WARNING_BEFORE
    priority_overrides: Mapping[str, Mapping[str, timedelta]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        where = f"sla_policy {self.name!r}"
        object.__setattr__(self, "targets", _freeze_targets(self.targets, where))
        overrides = {}
        for priority, targets in dict(self.priority_overrides).items():
            if priority not in PRIORITIES:
                raise SlaConfigError(f"{where}: unknown priority {priority!r}; priorities are {', '.join(PRIORITIES)}")
            overrides[priority] = _freeze_targets(targets, f"{where}: priority.{priority}")
        object.__setattr__(self, "priority_overrides", MappingProxyType(overrides))
        if self.warning_fraction is not None and not 0 < self.warning_fraction <= 1:
            raise SlaConfigError(f"{where}: warning fraction {self.warning_fraction!r} must be in (0, 1]")
        if self.warning_before is not None and self.warning_before <= timedelta(0):
            raise SlaConfigError(f"{where}: warning {self.warning_before!r} must be longer than zero")

    def __reduce__(self):
        # Its mappings are read-only proxies, which do not pickle: rebuilt from plain dicts.
        overrides = {priority: dict(targets) for priority, targets in self.priority_overrides.items()}
        return (
            Policy,
            (self.name, self.calendar, dict(self.targets), self.warning_fraction, self.warning_before, overrides),
        )

    @classmethod
    def from_config(cls, table: Mapping[str, Any], calendars: Mapping[str, Calendar]) -> Policy:
        """Build a policy from one `[[sla_policy]]` table; `match` is the config loader's business."""
        name = table.get("name")
        where = f"sla_policy {name!r}"
        allowed = {"name", "calendar", "match", "warning", "priority", *TARGETS}
        unknown = sorted(set(table) - allowed)
        if unknown:
            raise SlaConfigError(f"{where}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(allowed))}")
        if not isinstance(name, str) or not name:
            raise SlaConfigError(f"sla_policy {name!r}: needs a name")

        calendar: Calendar = ALWAYS_OPEN
        if "calendar" in table:
            try:
                calendar = calendars[table["calendar"]]
            except (KeyError, TypeError):
                raise SlaConfigError(
                    f"{where}: calendar {table['calendar']!r} is not defined; defined: "
                    f"{', '.join(sorted(calendars)) or 'none'} (omit `calendar` for 24/7 time)"
                ) from None

        def durations(section: Mapping[str, Any], section_where: str) -> dict[str, timedelta]:
            parsed = {}
            for target in TARGETS:
                if target in section:
                    try:
                        parsed[target] = parse_duration(section[target])
                    except InvalidDuration as error:
                        raise SlaConfigError(f"{section_where}: {target}: {error}") from None
            return parsed

        warning_fraction: float | None = DEFAULT_WARNING_FRACTION
        warning_before: timedelta | None = DEFAULT_WARNING_BEFORE
        if "warning" in table:
            try:
                warning_fraction, warning_before = parse_warning(table["warning"])
            except SlaConfigError as error:
                raise SlaConfigError(f"{where}: {error}") from None

        overrides = {}
        priority_tables = table.get("priority", {})
        if not isinstance(priority_tables, Mapping):
            raise SlaConfigError(f"{where}: priority must be a table of per-priority targets")
        for priority, section in priority_tables.items():
            section_where = f"{where}: priority.{priority}"
            if not isinstance(section, Mapping):
                raise SlaConfigError(f"{section_where} must be a table of targets")
            extra = sorted(set(section) - set(TARGETS))
            if extra:
                raise SlaConfigError(f"{section_where}: unknown target(s) {', '.join(extra)}")
            overrides[priority] = durations(section, section_where)

        return cls(
            name=name,
            calendar=calendar,
            targets=durations(table, where),
            warning_fraction=warning_fraction,
            warning_before=warning_before,
            priority_overrides=overrides,
        )

    def targets_for(self, priority: str) -> dict[str, timedelta]:
        """The policy's targets with the overrides for `priority` applied."""
        if priority not in PRIORITIES:
            raise ValueError(f"unknown priority {priority!r}; priorities are {', '.join(PRIORITIES)}")
        return {**self.targets, **self.priority_overrides.get(priority, {})}

    def warning_threshold(self, target: timedelta) -> timedelta | None:
        """Remaining business time at or below which a target of this length is in warning."""
        thresholds = []
        if self.warning_fraction is not None:
            thresholds.append(target * self.warning_fraction)
        if self.warning_before is not None:
            thresholds.append(self.warning_before)
        return min(thresholds) if thresholds else None
