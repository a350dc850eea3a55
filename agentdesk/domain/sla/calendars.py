"""SLA arithmetic: durations, business calendars, policies and the state of each target.

Pure functions over plain values; nothing here reads the clock, the database or the config
file. Every instant going in must be timezone-aware (any zone is accepted and converted); every
instant coming out is UTC. The rules are written up for users in docs/sla.md.

Two ways to a target's state:

- the clock timeline (`replay`, `advance`, `clock_states`): each target has a clock that is
  activated, paused, resumed, fulfilled and breached by recorded events; a clock counts the
  business time it has used, so paused time is credited and a resumed clock's due moves later.
  `advance` compares the clocks with the conversation's current facts and returns the events
  that happened since; it is what writes the due times stored on a conversation.
- `evaluate`, the snapshot model: states from the conversation's current fields, optionally with
  the stored due times (`dues`) that the timeline computed. Cheap; used for reads of many rows.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from functools import lru_cache
from types import MappingProxyType
from typing import Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dateutil.rrule import rrule, rruleset, rrulestr

from agentdesk.errors import ConfigError, InvalidInput

UTC = timezone.utc

__all__ = [
    "ALWAYS_OPEN",
    "CLOCK_EVENTS",
    "Clock",
    "ClockEvent",
    "ClockFacts",
    "advance",
    "clock_states",
    "replay",
    "replay_steps",
    "AlwaysOpen",
    "BusinessCalendar",
    "Calendar",
    "InvalidDuration",
    "PRIORITIES",
    "Policy",
    "SlaConfigError",
    "STATUSES",
    "TARGETS",
    "TargetState",
    "evaluate",
    "format_duration",
    "hold_time",
    "next_due",
    "overall_state",
    "parse_duration",
    "parse_warning",
    "warning_starts_at",
]


# Both errors are ValueErrors (what callers of a parser expect) and AgentdeskErrors (so the CLI
# prints them on one line with the right exit status instead of a traceback).
class InvalidDuration(InvalidInput, ValueError):
    """A duration string that is not in the accepted "1d 4h" form."""


class SlaConfigError(ConfigError, ValueError):
    """A calendar or SLA policy whose settings cannot work."""


# --------------------------------------------------------------------------------------------
# Durations

_DURATION_UNITS = (("d", 86400), ("h", 3600), ("m", 60), ("s", 1))
_DURATION_FORMS = '"90s", "45m", "4h", "2d", "1d 4h" or "1h30m"'
# Units in this order, each at most once, optionally separated by spaces; an optional leading
# minus so that format_duration's output for overdue times parses back.
_DURATION_PATTERN = re.compile(
    r"^(?P<sign>-)?\s*"
    r"(?:(?P<d>\d+)\s*d\s*)?(?:(?P<h>\d+)\s*h\s*)?(?:(?P<m>\d+)\s*m\s*)?(?:(?P<s>\d+)\s*s\s*)?$"
)


def parse_duration(text: str) -> timedelta:
    """Parse "90s", "45m", "4h", "2d", "1d 4h", "1h30m" into a timedelta.

    A day is 24 hours: "1d" of business time is 24 business hours, not one working day.
    """
    if not isinstance(text, str):
        raise InvalidDuration(f"duration {text!r} is not text; write it as {_DURATION_FORMS}")
    match = _DURATION_PATTERN.match(text.strip())
    if not text.strip() or match is None or not any(match.group(unit) for unit, _ in _DURATION_UNITS):
        raise InvalidDuration(
            f"duration {text!r} is not understood; write whole numbers with units d, h, m, s "
            f"in that order, e.g. {_DURATION_FORMS}"
        )
    seconds = sum(int(match.group(unit) or 0) * size for unit, size in _DURATION_UNITS)
    try:
        duration = timedelta(seconds=seconds)
    except OverflowError:
        raise InvalidDuration(f"duration {text!r} is too long") from None
    return -duration if match.group("sign") else duration


def format_duration(duration: timedelta) -> str:
    """The compact form parse_duration reads: "1d 4h", "1h 30m", "-25m"; "0m" for nothing.

    Sub-second parts are dropped; seconds appear only when there are some.
    """
    total = int(abs(duration).total_seconds())
    parts = []
    for unit, size in _DURATION_UNITS:
        count, total = divmod(total, size)
        if count:
            parts.append(f"{count}{unit}")
    if not parts:
        return "0m"
    return ("-" if duration < timedelta(0) else "") + " ".join(parts)


def format_short(duration: timedelta, units: int = 2) -> str:
    """At most `units` of the largest units, for badges and hold times: "1d 4h", "-19h 41m", "42m", "30s"."""
    total = int(abs(duration).total_seconds())
    parts = []
    for unit, size in _DURATION_UNITS:
        count, total = divmod(total, size)
        if count or parts:
            parts.append(f"{count}{unit}")
    parts = [part for part in parts[:units] if not part.startswith("0")] or ["0m"]
    return ("-" if duration < timedelta(0) and parts != ["0m"] else "") + " ".join(parts)


# --------------------------------------------------------------------------------------------
# Calendars


def _as_utc(at: datetime, what: str) -> datetime:
    if at.__class__ is datetime and at.tzinfo is UTC:  # nearly every call: already UTC
        return at
    if not isinstance(at, datetime):
        raise TypeError(f"{what} must be a datetime, got {at!r}")
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"{what} {at.isoformat()} has no time zone; pass an aware UTC datetime")
    return at.astimezone(UTC)


def _optional_utc(at: datetime | None, what: str) -> datetime | None:
    return None if at is None else _as_utc(at, what)


def _check_duration(duration: timedelta) -> None:
    if not isinstance(duration, timedelta):
        raise TypeError(f"duration must be a timedelta, got {duration!r}")
    if duration < timedelta(0):
        raise ValueError(f"cannot add a negative duration ({format_duration(duration)})")


class Calendar(Protocol):
    """What SLA arithmetic needs from a calendar; BusinessCalendar and ALWAYS_OPEN provide it."""

    name: str

    def is_open(self, at: datetime) -> bool: ...

    def add(self, start: datetime, duration: timedelta) -> datetime: ...

    def between(self, start: datetime, end: datetime) -> timedelta: ...

    def next_open(self, at: datetime) -> datetime: ...

    def subtract(self, end: datetime, duration: timedelta) -> datetime: ...


class AlwaysOpen:
    """Calendar time: open around the clock, so business time is elapsed time."""

    name = "24/7"

    def __reduce__(self) -> str:
        return "ALWAYS_OPEN"  # one instance: unpickled as the module's own

    def is_open(self, at: datetime) -> bool:
        _as_utc(at, "at")
        return True

    def add(self, start: datetime, duration: timedelta) -> datetime:
        _check_duration(duration)
        return _as_utc(start, "start") + duration

    def between(self, start: datetime, end: datetime) -> timedelta:
        return max(_as_utc(end, "end") - _as_utc(start, "start"), timedelta(0))

    def next_open(self, at: datetime) -> datetime:
        return _as_utc(at, "at")

    def subtract(self, end: datetime, duration: timedelta) -> datetime:
        _check_duration(duration)
        return _as_utc(end, "end") - duration

    def __repr__(self) -> str:
        return "ALWAYS_OPEN"


ALWAYS_OPEN = AlwaysOpen()

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_MINUTES_PER_DAY = 24 * 60
_WINDOW_PATTERN = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")
# The longest run of closed days `add` and `next_open` will walk through before concluding the
# calendar never opens again (holiday rules that cover every day, say). A year of holidays plus a
# week is already nonsense for a help desk; an honest error beats an endless loop.
MAX_CLOSED_DAYS = 366 + 7
_RULE_DTSTART = datetime(2000, 1, 1)
# `between` clips this many local days at either end window by window and takes the days in
# between whole; two would do for any real zone (offsets jump by at most a day), three is safe.
_INNER_MARGIN_DAYS = 3


def _parse_window(text: object, where: str) -> tuple[int, int]:
    """Parse "09:00-12:30" into (540, 750), minutes since local midnight; "24:00" only ends."""
    match = _WINDOW_PATTERN.match(text) if isinstance(text, str) else None
    if match is None:
        raise SlaConfigError(f'{where}: window {text!r} is not of the form "09:00-17:30"')
    start_hour, start_minute, end_hour, end_minute = map(int, match.groups())
    if start_hour > 23 or start_minute > 59:
        raise SlaConfigError(f"{where}: window {text!r} starts at an impossible time")
    if end_minute > 59 or end_hour > 24 or (end_hour == 24 and end_minute != 0):
        raise SlaConfigError(f"{where}: window {text!r} ends at an impossible time (latest 24:00)")
    start, end = start_hour * 60 + start_minute, end_hour * 60 + end_minute
    if end <= start:
        raise SlaConfigError(
            f"{where}: window {text!r} ends before it starts; windows cannot cross midnight, "
            f'split them ("22:00-24:00" and "00:00-06:00" on the next day)'
        )
    return start, end


def _format_window(start: int, end: int) -> str:
    return f"{start // 60:02}:{start % 60:02}-{end // 60:02}:{end % 60:02}"


def _parse_holiday(value: object, where: str) -> date:
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            pass
    raise SlaConfigError(f"{where}: holiday {value!r} is not a date like 2026-12-25")


class BusinessCalendar:
    """Opening hours in one time zone, minus holidays.

    Windows are local wall-clock times. An instant is open when it lies in [start, end) of a
    window of its local day. Window edges become instants like this:
    - a wall time that does not exist (skipped when clocks go forward) is the instant the clocks
      jump, so the window simply loses the skipped part;
    - a wall time that occurs twice (clocks go back) is its first occurrence, so a window that
      spans the repeat gains the repeated part.
    A window is therefore as long as the time that really passes between its edges.
    """

    def __init__(
        self,
        name: str,
        timezone: str,
        hours: Mapping[str, Sequence[str]],
        holidays: Sequence[str | date] = (),
        holiday_rules: Sequence[str] = (),
    ) -> None:
        where = f"calendar {name!r}"
        if not isinstance(name, str) or not name.strip():
            raise SlaConfigError(f"calendar name {name!r} must be a non-empty string")
        self.name = name
        self.timezone = timezone
        try:
            if not isinstance(timezone, str):
                raise ValueError
            self._zone = ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise SlaConfigError(
                f'{where}: timezone {timezone!r} is not a known IANA zone such as "Europe/Amsterdam"'
            ) from None

        if not isinstance(hours, Mapping):
            raise SlaConfigError(f"{where}: hours must map weekdays (mon..sun) to lists of windows")
        weekly: list[tuple[tuple[int, int], ...]] = [()] * 7
        for day_key, windows in hours.items():
            if day_key not in WEEKDAYS:
                raise SlaConfigError(
                    f"{where}: hours has unknown weekday {day_key!r}; use {', '.join(WEEKDAYS)}"
                )
            if isinstance(windows, str):  # `mon = "09:00-17:00"` is a forgivable shorthand
                windows = [windows]
            day_where = f"{where}: hours.{day_key}"
            parsed = sorted(_parse_window(window, day_where) for window in windows)
            for (_, earlier_end), (later_start, _) in zip(parsed, parsed[1:]):
                if later_start < earlier_end:
                    raise SlaConfigError(f"{day_where}: windows {list(windows)!r} overlap")
            weekly[WEEKDAYS.index(day_key)] = tuple(parsed)
        if not any(weekly):
            raise SlaConfigError(f"{where}: hours has no open window on any day of the week")
        self._weekly = tuple(weekly)
        self.hours = MappingProxyType(
            {
                WEEKDAYS[weekday]: tuple(_format_window(start, end) for start, end in windows)
                for weekday, windows in enumerate(weekly)
                if windows
            }
        )

        if isinstance(holidays, (str, date)):
            raise SlaConfigError(f"{where}: holidays must be a list of dates")
        self.holidays = frozenset(_parse_holiday(value, where) for value in holidays)

        if isinstance(holiday_rules, str):
            raise SlaConfigError(f"{where}: holiday_rules must be a list of RRULE strings")
        self.holiday_rules = tuple(holiday_rules)
        self._rules = []
        for rule_text in self.holiday_rules:
            try:
                if not isinstance(rule_text, str):
                    raise TypeError
                rule = rrulestr(rule_text, dtstart=_RULE_DTSTART)
                _rule_dates_in_year(rule, _RULE_DTSTART.year)  # surfaces rules that cannot be evaluated
            except (ValueError, TypeError, OverflowError) as error:
                raise SlaConfigError(
                    f"{where}: holiday rule {rule_text!r} is not an RFC 5545 RRULE such as "
                    f'"FREQ=YEARLY;BYMONTH=1;BYMONTHDAY=1" ({error or "not text"})'
                ) from None
            self._rules.append(rule)

        self._make_caches()

    def __reduce__(self):
        # Rebuilt from its configuration (the caches hold bound methods, which do not pickle):
        # the sync sends the policy to its parser processes.
        hours = {day: list(windows) for day, windows in self.hours.items()}
        return (BusinessCalendar, (self.name, self.timezone, hours, sorted(self.holidays), list(self.holiday_rules)))

    def _make_caches(self) -> None:
        # Per-instance caches: the queue asks the same few weeks over and over.
        self._rule_holidays_in_year = lru_cache(maxsize=64)(self._compute_rule_holidays_in_year)
        self._windows_on = lru_cache(maxsize=4096)(self._compute_windows_on)
        self._running_totals = lru_cache(maxsize=64)(self._compute_running_totals)

    @classmethod
    def from_config(cls, table: Mapping[str, object]) -> BusinessCalendar:
        """Build a calendar from one `[[calendar]]` table of the config."""
        allowed = {"name", "timezone", "hours", "holidays", "holiday_rules"}
        name = table.get("name")
        unknown = sorted(set(table) - allowed)
        if unknown:
            raise SlaConfigError(
                f"calendar {name!r}: unknown key(s) {', '.join(unknown)}; "
                f"known: {', '.join(sorted(allowed))}"
            )
        for required in ("name", "timezone", "hours"):
            if required not in table:
                raise SlaConfigError(f"calendar {name!r}: missing required key {required!r}")
        return cls(
            name=table["name"],
            timezone=table["timezone"],
            hours=table["hours"],
            holidays=table.get("holidays", ()),
            holiday_rules=table.get("holiday_rules", ()),
        )

    def __repr__(self) -> str:
        return f"BusinessCalendar(name={self.name!r}, timezone={self.timezone!r})"

    # -- public arithmetic ------------------------------------------------------------------

    def is_open(self, at: datetime) -> bool:
        at = _as_utc(at, "at")
        for start, end in self._windows_around(at):
            if start <= at < end:
                return True
        return False

    def next_open(self, at: datetime) -> datetime:
        """`at` itself when open, else the start of the next window."""
        at = _as_utc(at, "at")
        start, _ = next(self._windows_from(at))
        return max(start, at)

    def add(self, start: datetime, duration: timedelta) -> datetime:
        """The instant at which `duration` of business time has passed since `start`.

        The clock starts at the next opening when `start` is closed. When the time runs out
        exactly at a window's end, the answer is that end, not the next opening.
        """
        _check_duration(duration)
        start = _as_utc(start, "start")
        remaining = duration
        for window_start, window_end in self._windows_from(start):
            counted_from = max(window_start, start)
            available = window_end - counted_from
            if remaining <= available:
                return counted_from + remaining
            remaining -= available
        raise AssertionError("unreachable: _windows_from never ends")

    def subtract(self, end: datetime, duration: timedelta) -> datetime:
        """The earliest instant from which at most `duration` of business time is left until `end`.

        The mirror of `add`, used for "when does this target turn to warning": closed time just
        before the answer counts as nothing, so the answer is a window's end rather than the
        following window's start when the time runs out exactly at an opening.
        """
        _check_duration(duration)
        end = _as_utc(end, "end")
        remaining = duration
        for window_start, window_end in self._windows_before(end):
            counted_to = min(window_end, end)
            available = counted_to - window_start
            if remaining < available:
                return counted_to - remaining
            remaining -= available
        raise AssertionError("unreachable: _windows_before never ends")

    def between(self, start: datetime, end: datetime) -> timedelta:
        """Business time in [start, end); zero when end <= start."""
        start, end = _as_utc(start, "start"), _as_utc(end, "end")
        total = timedelta(0)
        if end <= start:
            return total
        first_day = self._local_date(start) - timedelta(days=1)
        last_day = self._local_date(end)
        # Days well inside the interval count whole: their open time comes from running totals
        # per year (months-old mail asks for months of business time). Only the days at either
        # end are clipped window by window; the margin covers any UTC offset jump (at most a day).
        inner_first = first_day + timedelta(days=_INNER_MARGIN_DAYS)
        inner_last = last_day - timedelta(days=_INNER_MARGIN_DAYS)
        if inner_first > inner_last:
            return self._clipped(first_day, last_day, start, end)
        return (self._clipped(first_day, inner_first - timedelta(days=1), start, end)
                + timedelta(microseconds=self._open_microseconds(inner_first, inner_last))
                + self._clipped(inner_last + timedelta(days=1), last_day, start, end))

    def _clipped(self, day: date, last_day: date, start: datetime, end: datetime) -> timedelta:
        """Business time in [start, end) of the windows of local days `day`..`last_day`."""
        total = timedelta(0)
        while day <= last_day:
            for window_start, window_end in self._windows_on(day):
                overlap = min(window_end, end) - max(window_start, start)
                if overlap > timedelta(0):
                    total += overlap
            day += timedelta(days=1)
        return total

    def _open_microseconds(self, first: date, last: date) -> int:
        """Open time of the whole local days `first`..`last` (inclusive), in microseconds."""
        if first.year == last.year:
            running = self._running_totals(first.year)
            return running[last.timetuple().tm_yday] - running[first.timetuple().tm_yday - 1]
        total = self._open_microseconds(first, date(first.year, 12, 31))
        for year in range(first.year + 1, last.year):
            total += self._running_totals(year)[-1]
        return total + self._open_microseconds(date(last.year, 1, 1), last)

    def _compute_running_totals(self, year: int) -> tuple[int, ...]:
        """[0, open time of Jan 1, … of Jan 1 to Dec 31] in microseconds: a day's total is exactly
        what `_clipped` sums for it, DST-shortened windows and holidays included."""
        running = [0]
        day = date(year, 1, 1)
        one_day = timedelta(days=1)
        while day.year == year:
            open_time = sum((end - start for start, end in self._compute_windows_on(day)), timedelta(0))
            running.append(running[-1] + open_time // timedelta(microseconds=1))
            day += one_day
        return tuple(running)

    # -- windows as UTC intervals --------------------------------------------------------------

    def _local_date(self, at: datetime) -> date:
        return at.astimezone(self._zone).date()

    def _windows_around(self, at: datetime) -> Iterator[tuple[datetime, datetime]]:
        # A window ends by its day's "24:00", so only the previous local day's windows could
        # still matter; looking at them costs a cache hit and spares reasoning about odd zones.
        day = self._local_date(at)
        yield from self._windows_on(day - timedelta(days=1))
        yield from self._windows_on(day)

    def _windows_from(self, at: datetime) -> Iterator[tuple[datetime, datetime]]:
        """Every window that ends after `at`, in order, for ever (or SlaConfigError)."""
        day = self._local_date(at) - timedelta(days=1)
        closed_days = 0
        while True:
            windows = self._windows_on(day)
            closed_days = 0 if windows else closed_days + 1
            if closed_days > MAX_CLOSED_DAYS:
                raise self._closed_too_long(day)
            for window in windows:
                if window[1] > at:
                    yield window
            day += timedelta(days=1)

    def _windows_before(self, at: datetime) -> Iterator[tuple[datetime, datetime]]:
        """Every window that starts before `at`, latest first, for ever (or SlaConfigError)."""
        day = self._local_date(at) + timedelta(days=1)
        closed_days = 0
        while True:
            windows = self._windows_on(day)
            closed_days = 0 if windows else closed_days + 1
            if closed_days > MAX_CLOSED_DAYS:
                raise self._closed_too_long(day)
            for window in reversed(windows):
                if window[0] < at:
                    yield window
            day -= timedelta(days=1)

    def _closed_too_long(self, day: date) -> SlaConfigError:
        return SlaConfigError(
            f"calendar {self.name!r} is closed for more than {MAX_CLOSED_DAYS} days in a row "
            f"around {day}; check its holidays and holiday_rules"
        )

    def _compute_windows_on(self, day: date) -> tuple[tuple[datetime, datetime], ...]:
        if self.is_holiday(day):
            return ()
        intervals = []
        for start_minute, end_minute in self._weekly[day.weekday()]:
            start, end = self._instant_of(day, start_minute), self._instant_of(day, end_minute)
            if end > start:  # a window inside a skipped hour has no real time in it
                intervals.append((start, end))
        return tuple(intervals)

    def _instant_of(self, day: date, minute_of_day: int) -> datetime:
        """The UTC instant of a local wall time (see the class docstring for gaps and repeats)."""
        wall = datetime.combine(day, time()) + timedelta(minutes=minute_of_day)  # 24:00 = next day
        first_occurrence = wall.replace(tzinfo=self._zone)  # fold=0: earlier of a repeated time
        instant = first_occurrence.astimezone(UTC)
        if instant.astimezone(self._zone).replace(tzinfo=None) == wall:
            return instant
        # `wall` was skipped. fold=0 applied the offset from before the jump, which lands after
        # the jump; fold=1 applied the offset from after it, which lands before. The jump is the
        # first second in between that already has the new offset.
        new_offset = instant.astimezone(self._zone).utcoffset()
        before = wall.replace(tzinfo=self._zone, fold=1).astimezone(UTC)
        low, high = 0, int((instant - before).total_seconds())
        while high - low > 1:
            middle = (low + high) // 2
            if (before + timedelta(seconds=middle)).astimezone(self._zone).utcoffset() == new_offset:
                high = middle
            else:
                low = middle
        return before + timedelta(seconds=high)

    # -- holidays -----------------------------------------------------------------------------

    def is_holiday(self, day: date) -> bool:
        """Whether the local calendar date `day` is a holiday (listed or by rule)."""
        return day in self.holidays or day in self._rule_holidays_in_year(day.year)

    def _compute_rule_holidays_in_year(self, year: int) -> frozenset[date]:
        days: set[date] = set()
        for rule in self._rules:
            days.update(_rule_dates_in_year(rule, year))
        return frozenset(days)


def _rule_dates_in_year(rule: rrule | rruleset, year: int) -> set[date]:
    first, last = datetime(year, 1, 1), datetime(year, 12, 31, 23, 59, 59)
    try:
        occurrences = rule.between(first, last, inc=True)
    except TypeError:  # the rule carries its own zone-aware DTSTART
        occurrences = rule.between(first.replace(tzinfo=UTC), last.replace(tzinfo=UTC), inc=True)
    return {occurrence.date() for occurrence in occurrences}


# --------------------------------------------------------------------------------------------
# Policies and target states

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
            raise SlaConfigError(
                f'warning {text!r} must be a percentage above 0 and at most 100, e.g. "25%"'
            )
        return fraction, None
    try:
        before = parse_duration(text)
    except InvalidDuration:
        raise SlaConfigError(
            f'warning {text!r} must be a percentage like "25%" or a duration like "1h"'
        ) from None
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
            raise SlaConfigError(
                f"{where}: {target} must be a duration longer than zero, got {duration!r}"
            )
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
                raise SlaConfigError(
                    f"{where}: unknown priority {priority!r}; priorities are {', '.join(PRIORITIES)}"
                )
            overrides[priority] = _freeze_targets(targets, f"{where}: priority.{priority}")
        object.__setattr__(self, "priority_overrides", MappingProxyType(overrides))
        if self.warning_fraction is not None and not 0 < self.warning_fraction <= 1:
            raise SlaConfigError(
                f"{where}: warning fraction {self.warning_fraction!r} must be in (0, 1]"
            )
        if self.warning_before is not None and self.warning_before <= timedelta(0):
            raise SlaConfigError(f"{where}: warning {self.warning_before!r} must be longer than zero")

    def __reduce__(self):
        # Its mappings are read-only proxies, which do not pickle: rebuilt from plain dicts.
        overrides = {priority: dict(targets) for priority, targets in self.priority_overrides.items()}
        return (Policy, (self.name, self.calendar, dict(self.targets), self.warning_fraction, self.warning_before,
                         overrides))

    @classmethod
    def from_config(cls, table: Mapping[str, object], calendars: Mapping[str, Calendar]) -> Policy:
        """Build a policy from one `[[sla_policy]]` table; `match` is the config loader's business."""
        name = table.get("name")
        where = f"sla_policy {name!r}"
        allowed = {"name", "calendar", "match", "warning", "priority", *TARGETS}
        unknown = sorted(set(table) - allowed)
        if unknown:
            raise SlaConfigError(
                f"{where}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(allowed))}"
            )
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

        def durations(section: Mapping[str, object], section_where: str) -> dict[str, timedelta]:
            parsed = {}
            for target in TARGETS:
                if target in section:
                    try:
                        parsed[target] = parse_duration(section[target])
                    except InvalidDuration as error:
                        raise SlaConfigError(f"{section_where}: {target}: {error}") from None
            return parsed

        warning_fraction, warning_before = DEFAULT_WARNING_FRACTION, DEFAULT_WARNING_BEFORE
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
        return TargetState(
            target, due, state, _margin(policy.calendar, fulfilled_at, due), fulfilled_at, length=length
        )
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
    return TargetState(
        target=target, due=due, state=state, remaining=remaining, warning_at=warning_at, length=length
    )


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
    solved_at = _as_utc(solved_at, "solved_at") if done else None

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
    customer_waits_after_first_reply = first_responded_at is not None and waiting_since is not None
    if "next_reply" in targets and not done and customer_waits_after_first_reply:
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
            f"{state.target} under policy {policy.name!r} is {state.state}, not running; "
            f"it has no warning time"
        )
    return state.warning_at if state.warning_at is not None else state.due


def hold_time(waiting_since: datetime | None, now: datetime) -> timedelta | None:
    """Calendar time the customer has waited since their oldest unanswered message."""
    if waiting_since is None:
        return None
    return max(_as_utc(now, "now") - _as_utc(waiting_since, "waiting_since"), timedelta(0))


# --------------------------------------------------------------------------------------------
# The clock timeline

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
            target=event.target, length=length, phase="running", started_at=at, since=at,
            used=timedelta(0), due=calendar.add(at, length), last_at=at,
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
        return _clock_with(clock, phase="paused", since=at, used=clock.used_at(calendar, at),
                       reason=event.reason, last_at=last_at)
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


def replay_steps(
    events: Sequence[ClockEvent], *, policy: Policy, priority: str
) -> Iterator[tuple[ClockEvent, Clock]]:
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
        if current and waiting_since is None:
            answered = last_reply_at if last_reply_at is not None and last_reply_at >= clock.started_at else now
            emit("next_reply", "fulfil", answered)
            current = False
        elif current and last_reply_at is not None and clock.started_at < last_reply_at < waiting_since:
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
        if target in lengths and clock is not None and clock.phase == "running" and not clock.breached \
                and clock.due < now:
            record(target, "breach", max(clock.due, clock.last_at))
    return recorded, clocks


def clock_states(clocks: Mapping[str, Clock], *, policy: Policy, priority: str, now: datetime) -> list[TargetState]:
    """The state of every clock the policy sets, in TARGETS order.

    A reply clock paused because the conversation is solved or closed is left out (nothing is
    expected of anyone until it reopens); a fulfilled clock shows whether its last cycle was met.
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
            states.append(TargetState(target=target, due=None, state="paused", remaining=length - clock.used,
                                      length=length, used=clock.used, reason=clock.reason))
        elif clock.phase == "fulfilled":
            if clock.met:
                remaining = length - clock.used
            elif clock.since > clock.due:
                remaining = -(clock.since - clock.due)
            else:
                remaining = -(clock.used - length)
            states.append(TargetState(target=target, due=clock.due, state="met" if clock.met else "missed",
                                      remaining=remaining, fulfilled_at=clock.since, length=length,
                                      used=clock.used))
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
            states.append(TargetState(target=target, due=due, state=state, remaining=remaining,
                                      warning_at=warning_at, length=length, used=clock.used_at(calendar, now)))
    return states


# --------------------------------------------------------------------------------------------
# What a conversation stores of its clocks (clocks.py writes it; the sync's parser processes
# compute it ahead for conversations a message would open)

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
        "queue_due": min((s.due for s in running), default=None) or NEVER,
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


def opening(policy: Policy, *, priority: str, created_at: datetime, waiting_since: datetime | None,
            now: datetime) -> Opening:
    facts = ClockFacts(status="new", priority=priority, created_at=created_at, waiting_since=waiting_since)
    recorded, clocks = advance({}, facts, policy=policy, now=now)
    states = clock_states(clocks, policy=policy, priority=priority, now=now)
    return Opening(policy.name, priority, created_at, waiting_since, now, stored_fields(states, waiting_since),
                   tuple((event.target, event.event, event.at, event_detail(policy, event, clock))
                         for event, clock in recorded))
