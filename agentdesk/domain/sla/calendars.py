"""Business calendars (opening hours in one time zone, minus holidays) and the 24/7 calendar.

Business-time arithmetic (`add`, `subtract`, `between`) lives here alone: the rest of the
package counts time only through a `Calendar`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from agentdesk.domain.sla.durations import format_duration
from agentdesk.domain.sla.errors import SlaConfigError
from agentdesk.domain.sla.instants import UTC, _as_utc

if TYPE_CHECKING:
    from dateutil.rrule import rrule, rruleset


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
                raise SlaConfigError(f"{where}: hours has unknown weekday {day_key!r}; use {', '.join(WEEKDAYS)}")
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
        if self.holiday_rules:
            from dateutil.rrule import rrulestr  # most calendars have no rules; every command loads this module
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
        # Replaying a conversation's clocks asks again for the dues it asked for last time, and
        # the warnings of many conversations fall on the same few instants.
        self._added = lru_cache(maxsize=4096)(self._compute_add)
        self._subtracted = lru_cache(maxsize=4096)(self._compute_subtract)

    @classmethod
    def from_config(cls, table: Mapping[str, Any]) -> BusinessCalendar:
        """Build a calendar from one `[[calendar]]` table of the config."""
        allowed = {"name", "timezone", "hours", "holidays", "holiday_rules"}
        name = table.get("name")
        unknown = sorted(set(table) - allowed)
        if unknown:
            raise SlaConfigError(
                f"calendar {name!r}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(allowed))}"
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
        return any(start <= at < end for start, end in self._windows_around(at))

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
        return self._added(_as_utc(start, "start"), duration)

    def _compute_add(self, start: datetime, duration: timedelta) -> datetime:
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
        return self._subtracted(_as_utc(end, "end"), duration)

    def _compute_subtract(self, end: datetime, duration: timedelta) -> datetime:
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
        return (
            self._clipped(first_day, inner_first - timedelta(days=1), start, end)
            + timedelta(microseconds=self._open_microseconds(inner_first, inner_last))
            + self._clipped(inner_last + timedelta(days=1), last_day, start, end)
        )

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
