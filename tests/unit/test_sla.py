"""SLA arithmetic: durations, business calendars across DST and holidays, target states.

Expected instants in the fixed cases are worked out by hand from the local wall clock and
written in UTC; the property tests check the calendar against its own laws and against a
minute-by-minute oracle that never touches the calendar's window arithmetic.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agentdesk.domain.sla import (
    ALWAYS_OPEN,
    TARGETS,
    BusinessCalendar,
    InvalidDuration,
    Policy,
    SlaConfigError,
    TargetState,
    evaluate,
    format_duration,
    hold_time,
    next_due,
    overall_state,
    parse_duration,
    parse_warning,
    warning_starts_at,
)
from agentdesk.errors import AgentdeskError

UTC = timezone.utc
H = timedelta(hours=1)
M = timedelta(minutes=1)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


OFFICE_HOURS = {
    "mon": ["09:00-12:30", "13:30-17:30"],
    "tue": ["09:00-17:30"],
    "wed": ["09:00-17:30"],
    "thu": ["09:00-17:30"],
    "fri": ["09:00-17:00"],
}
# The config contract's example calendar: 41 business hours a week.
OFFICE = BusinessCalendar(
    "office",
    "Europe/Amsterdam",
    OFFICE_HOURS,
    holidays=["2026-12-25", date(2026, 12, 26)],
    holiday_rules=["FREQ=YEARLY;BYMONTH=1;BYMONTHDAY=1"],
)
# Every day 08:00-20:00 in New York, closed on Thanksgiving.
NEW_YORK = BusinessCalendar(
    "us-desk",
    "America/New_York",
    {day: ["08:00-20:00"] for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")},
    holiday_rules=["RRULE:FREQ=YEARLY;BYMONTH=11;BYDAY=4TH"],
)
# Sundays only, with windows whose edges fall into the hour skipped or repeated by EU DST.
DST_EDGES = BusinessCalendar(
    "night-shift",
    "Europe/Amsterdam",
    {"sun": ["00:00-02:30", "02:30-05:00"], "sat": ["00:00-24:00"]},
)


# --------------------------------------------------------------------------------------------
# Durations


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90s", timedelta(seconds=90)),
        ("45m", timedelta(minutes=45)),
        ("4h", timedelta(hours=4)),
        ("2d", timedelta(days=2)),
        ("1d 4h", timedelta(days=1, hours=4)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("1h 30m", timedelta(hours=1, minutes=30)),
        ("  2h  ", timedelta(hours=2)),
        ("0m", timedelta(0)),
        ("-25m", timedelta(minutes=-25)),
        ("1d 2h 3m 4s", timedelta(days=1, hours=2, minutes=3, seconds=4)),
    ],
)
def test_parse_duration_accepts_the_documented_forms(text, expected):
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    "text", ["", "   ", "90", "h", "1.5h", "4 hours", "1w", "30m 1h", "1h 1h", "-", "1h-", "4H", "d4"]
)
def test_parse_duration_rejects_anything_else_naming_the_text_and_the_forms(text):
    with pytest.raises(ValueError) as raised:
        parse_duration(text)
    assert repr(text) in str(raised.value)
    assert '"1d 4h"' in str(raised.value)
    assert isinstance(raised.value, (InvalidDuration, AgentdeskError))


def test_parse_duration_rejects_non_text():
    with pytest.raises(ValueError):
        parse_duration(3600)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("duration", "expected"),
    [
        (timedelta(days=1, hours=4), "1d 4h"),
        (timedelta(minutes=-25), "-25m"),
        (timedelta(0), "0m"),
        (timedelta(seconds=90), "1m 30s"),
        (timedelta(hours=1, minutes=30), "1h 30m"),
        (timedelta(days=3), "3d"),
        (timedelta(milliseconds=400), "0m"),
    ],
)
def test_format_duration(duration, expected):
    assert format_duration(duration) == expected


@given(st.integers(min_value=-(10**8), max_value=10**8))
def test_format_duration_parses_back(seconds):
    duration = timedelta(seconds=seconds)
    assert parse_duration(format_duration(duration)) == duration


# --------------------------------------------------------------------------------------------
# Calendar validation


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"timezone": "Europe/Amsterdm"}, "Europe/Amsterdm"),
        ({"timezone": "../etc/passwd"}, "../etc/passwd"),
        ({"hours": {"monday": ["09:00-17:00"]}}, "monday"),
        ({"hours": {"mon": ["9-17"]}}, "9-17"),
        ({"hours": {"mon": ["17:00-09:00"]}}, "17:00-09:00"),
        ({"hours": {"mon": ["09:00-09:00"]}}, "09:00-09:00"),
        ({"hours": {"mon": ["09:00-24:30"]}}, "09:00-24:30"),
        ({"hours": {"mon": ["24:00-24:00"]}}, "24:00-24:00"),
        ({"hours": {"mon": ["09:60-10:00"]}}, "09:60-10:00"),
        ({"hours": {"mon": ["09:00-12:30", "12:00-17:00"]}}, "overlap"),
        ({"hours": {}}, "no open window"),
        ({"hours": {"mon": [], "sat": []}}, "no open window"),
        ({"holidays": ["2026-13-01"]}, "2026-13-01"),
        ({"holidays": [datetime(2026, 12, 25)]}, "2026"),
        ({"holiday_rules": ["FREQ=SOMETIMES"]}, "FREQ=SOMETIMES"),
        ({"holiday_rules": "FREQ=YEARLY"}, "holiday_rules"),
    ],
)
def test_calendar_constructor_rejects_bad_settings_naming_them(kwargs, named):
    settings = {"name": "office", "timezone": "Europe/Amsterdam", "hours": OFFICE_HOURS} | kwargs
    with pytest.raises(ValueError) as raised:
        BusinessCalendar(**settings)
    assert named in str(raised.value)
    assert "office" in str(raised.value)
    assert isinstance(raised.value, SlaConfigError)


def test_calendar_accepts_touching_windows_and_24_00():
    calendar = BusinessCalendar("c", "UTC", {"mon": ["00:00-12:00", "12:00-24:00"], "tue": "08:00-09:00"})
    assert calendar.hours == {"mon": ("00:00-12:00", "12:00-24:00"), "tue": ("08:00-09:00",)}
    # Monday 2026-03-02 all day, then Tuesday 08:00.
    assert calendar.between(utc(2026, 3, 2), utc(2026, 3, 4)) == 25 * H


def test_calendar_from_config_table():
    calendar = BusinessCalendar.from_config(
        {"name": "office", "timezone": "Europe/Amsterdam", "hours": OFFICE_HOURS, "holidays": ["2026-12-25"]}
    )
    assert not calendar.is_open(utc(2026, 12, 25, 10))
    with pytest.raises(SlaConfigError, match="holiday_rule"):
        BusinessCalendar.from_config({"name": "x", "timezone": "UTC", "hours": OFFICE_HOURS, "holiday_rule": []})
    with pytest.raises(SlaConfigError, match="timezone"):
        BusinessCalendar.from_config({"name": "x", "hours": OFFICE_HOURS})


def test_naive_datetimes_are_refused():
    with pytest.raises(ValueError, match="no time zone"):
        OFFICE.add(datetime(2026, 3, 2, 9), H)
    with pytest.raises(ValueError, match="no time zone"):
        ALWAYS_OPEN.between(datetime(2026, 3, 2, 9), utc(2026, 3, 2))


def test_other_zones_are_accepted_and_answers_are_utc():
    amsterdam = ZoneInfo("Europe/Amsterdam")
    due = OFFICE.add(datetime(2026, 3, 2, 12, 0, tzinfo=amsterdam), H)
    assert due == utc(2026, 3, 2, 13) and due.tzinfo is UTC


def test_negative_durations_are_refused():
    with pytest.raises(ValueError, match="negative"):
        OFFICE.add(utc(2026, 3, 2, 9), -M)
    with pytest.raises(ValueError, match="negative"):
        ALWAYS_OPEN.add(utc(2026, 3, 2, 9), -M)


def test_a_year_of_holidays_is_a_clear_error_not_an_endless_loop():
    closed = BusinessCalendar("closed", "UTC", OFFICE_HOURS, holiday_rules=["FREQ=DAILY"])
    with pytest.raises(SlaConfigError, match="closed for more than"):
        closed.add(utc(2026, 3, 2), H)
    with pytest.raises(SlaConfigError, match="closed for more than"):
        closed.next_open(utc(2026, 3, 2))
    assert closed.between(utc(2026, 3, 2), utc(2027, 3, 2)) == timedelta(0)


# --------------------------------------------------------------------------------------------
# Fixed cases (Amsterdam is UTC+1 in winter, UTC+2 in summer; New York UTC-5 / UTC-4)


@pytest.mark.parametrize(
    ("calendar", "start", "duration", "expected"),
    [
        # Monday 12:00 CET, one hour: 30 min before lunch, 30 min after it (13:30-14:00 CET).
        (OFFICE, utc(2026, 3, 2, 11), H, utc(2026, 3, 2, 13)),
        # Running out exactly at lunch lands on 12:30, not on 13:30.
        (OFFICE, utc(2026, 3, 2, 11), 30 * M, utc(2026, 3, 2, 11, 30)),
        # Started during lunch: the clock starts at 13:30 CET.
        (OFFICE, utc(2026, 3, 2, 11, 45), 15 * M, utc(2026, 3, 2, 12, 45)),
        # Started at night (Tuesday 02:00 CET): the clock starts at 09:00 CET.
        (OFFICE, utc(2026, 3, 3, 1), 2 * H, utc(2026, 3, 3, 10)),
        # Weekend: Friday 16:30 CET -> 30 min Friday, 30 min from Monday 09:00 CET.
        (OFFICE, utc(2026, 3, 6, 15, 30), H, utc(2026, 3, 9, 8, 30)),
        # Spring forward (Sun 2026-03-29): Fri 16:00 CET + 2h -> Mon 10:00 CEST.
        (OFFICE, utc(2026, 3, 27, 15), 2 * H, utc(2026, 3, 30, 8)),
        # Fall back (Sun 2026-10-25): Fri 16:00 CEST + 2h -> Mon 10:00 CET.
        (OFFICE, utc(2026, 10, 23, 14), 2 * H, utc(2026, 10, 26, 9)),
        # Christmas (Fri) and Boxing Day (Sat) listed: Thu 17:00 CET + 1h -> Mon 28th 09:30 CET.
        (OFFICE, utc(2026, 12, 24, 16), H, utc(2026, 12, 28, 8, 30)),
        # New Year by rule (Fri 2027-01-01): Thu 17:00 CET + 1h -> Mon 4th 09:30 CET.
        (OFFICE, utc(2026, 12, 31, 16), H, utc(2027, 1, 4, 8, 30)),
        # 72 business hours from Mon 2026-03-02 09:00 CET: 41h that week, then Mon 7.5h,
        # Tue 8.5h, Wed 8.5h, and the last 6.5h end Thu 2026-03-12 15:30 CET.
        (OFFICE, utc(2026, 3, 2, 8), 72 * H, utc(2026, 3, 12, 14, 30)),
        # New York spring forward (Sun 2026-03-08): Sat 19:00 EST + 2h -> Sun 09:00 EDT.
        (NEW_YORK, utc(2026, 3, 8, 0), 2 * H, utc(2026, 3, 8, 13)),
        # New York fall back (Sun 2026-11-01): Sat 19:00 EDT + 2h -> Sun 09:00 EST.
        (NEW_YORK, utc(2026, 10, 31, 23), 2 * H, utc(2026, 11, 1, 14)),
        # Thanksgiving (Thu 2026-11-26) by rule: Wed 19:00 EST + 2h -> Fri 09:00 EST.
        (NEW_YORK, utc(2026, 11, 26, 0), 2 * H, utc(2026, 11, 27, 14)),
        # Zero time from a closed instant is the next opening.
        (OFFICE, utc(2026, 3, 7, 12), timedelta(0), utc(2026, 3, 9, 8)),
    ],
)
def test_add_fixed_cases(calendar, start, duration, expected):
    assert calendar.add(start, duration) == expected
    assert calendar.between(start, expected) == duration


@pytest.mark.parametrize(
    ("calendar", "at", "is_open", "next_open"),
    [
        (OFFICE, utc(2026, 3, 2, 8), True, utc(2026, 3, 2, 8)),  # Mon 09:00 CET, opening instant
        (OFFICE, utc(2026, 3, 2, 11, 30), False, utc(2026, 3, 2, 12, 30)),  # 12:30 CET: lunch starts
        (OFFICE, utc(2026, 3, 2, 16, 29), True, utc(2026, 3, 2, 16, 29)),
        (OFFICE, utc(2026, 3, 2, 16, 30), False, utc(2026, 3, 3, 8)),  # 17:30 CET: closed
        (OFFICE, utc(2026, 3, 28, 10), False, utc(2026, 3, 30, 7)),  # Sat -> Mon 09:00 CEST
        (OFFICE, utc(2026, 12, 25, 10), False, utc(2026, 12, 28, 8)),
        (OFFICE, utc(2027, 1, 1, 10), False, utc(2027, 1, 4, 8)),
        (NEW_YORK, utc(2026, 11, 26, 15), False, utc(2026, 11, 27, 13)),  # Thanksgiving 10:00 EST
        (NEW_YORK, utc(2026, 3, 8, 12), True, utc(2026, 3, 8, 12)),  # Sun 08:00 EDT
        (NEW_YORK, utc(2026, 3, 8, 11, 59), False, utc(2026, 3, 8, 12)),
    ],
)
def test_is_open_and_next_open(calendar, at, is_open, next_open):
    assert calendar.is_open(at) is is_open
    assert calendar.next_open(at) == next_open


def test_a_full_day_lasts_as_long_as_the_wall_clock_says():
    around_the_clock = BusinessCalendar("always", "Europe/Amsterdam", {"sun": ["00:00-24:00"]})
    # Sun 2026-03-29 00:00 CET (Sat 23:00 UTC) to Mon 00:00 CEST (Sun 22:00 UTC): 23 hours.
    assert around_the_clock.between(utc(2026, 3, 28), utc(2026, 3, 31)) == 23 * H
    assert around_the_clock.add(utc(2026, 3, 28, 23), 23 * H) == utc(2026, 3, 29, 22)
    # Sun 2026-10-25 00:00 CEST (Sat 22:00 UTC) to Mon 00:00 CET (Sun 23:00 UTC): 25 hours.
    assert around_the_clock.between(utc(2026, 10, 24), utc(2026, 10, 27)) == 25 * H
    new_york = BusinessCalendar("ny", "America/New_York", {"sun": ["00:00-24:00"]})
    # Sun 2026-03-08 00:00 EST (05:00 UTC) to Mon 00:00 EDT (04:00 UTC): 23 hours.
    assert new_york.between(utc(2026, 3, 7), utc(2026, 3, 10)) == 23 * H
    assert new_york.next_open(utc(2026, 3, 7)) == utc(2026, 3, 8, 5)
    # Sun 2026-11-01 00:00 EDT (04:00 UTC) to Mon 00:00 EST (05:00 UTC): 25 hours.
    assert new_york.between(utc(2026, 10, 31), utc(2026, 11, 3)) == 25 * H


def test_window_edges_inside_the_skipped_hour_move_to_the_jump():
    # 2026-03-29: at 02:00 CET (01:00 UTC) clocks jump to 03:00 CEST; 02:30 never happens.
    # "00:00-02:30" is 23:00 UTC .. 01:00 UTC, "02:30-05:00" is 01:00 UTC .. 03:00 UTC.
    assert DST_EDGES.is_open(utc(2026, 3, 29, 0, 59))
    assert DST_EDGES.is_open(utc(2026, 3, 29, 1, 0))
    assert DST_EDGES.is_open(utc(2026, 3, 29, 2, 59))
    assert not DST_EDGES.is_open(utc(2026, 3, 29, 3, 0))
    sunday = DST_EDGES.between(utc(2026, 3, 28, 23), utc(2026, 3, 30))
    assert sunday == 4 * H
    only_late = BusinessCalendar("late", "Europe/Amsterdam", {"sun": ["02:30-05:00"]})
    assert only_late.next_open(utc(2026, 3, 28, 12)) == utc(2026, 3, 29, 1)
    assert only_late.add(utc(2026, 3, 28, 12), H) == utc(2026, 3, 29, 2)
    gone = BusinessCalendar("gone", "Europe/Amsterdam", {"sun": ["02:10-02:50"], "mon": ["09:00-10:00"]})
    # The whole window is skipped on the spring-forward Sunday.
    assert gone.next_open(utc(2026, 3, 28, 12)) == utc(2026, 3, 30, 7)
    # A week later it is an ordinary 40 minutes: 02:10 CEST = 00:10 UTC.
    assert gone.next_open(utc(2026, 4, 4, 12)) == utc(2026, 4, 5, 0, 10)


def test_window_edges_inside_the_repeated_hour_take_its_first_occurrence():
    # 2026-10-25: at 03:00 CEST (01:00 UTC) clocks go back to 02:00 CET; 02:30 happens at
    # 00:30 UTC and again at 01:30 UTC. The first one counts, for starts and ends alike.
    assert DST_EDGES.is_open(utc(2026, 10, 25, 0, 29))  # still "00:00-02:30"
    assert DST_EDGES.is_open(utc(2026, 10, 25, 0, 30))  # "02:30-05:00" from the first 02:30
    assert DST_EDGES.is_open(utc(2026, 10, 25, 3, 59))  # 04:59 CET
    assert not DST_EDGES.is_open(utc(2026, 10, 25, 4, 0))
    # 00:00 CEST (22:00 UTC Sat) to 05:00 CET (04:00 UTC): six real hours on five wall hours.
    assert DST_EDGES.between(utc(2026, 10, 24, 22), utc(2026, 10, 26)) == 6 * H


def test_subtract_mirrors_add():
    # One hour before Monday 2026-03-09 09:30 CET is Friday 16:30 CET.
    assert OFFICE.subtract(utc(2026, 3, 9, 8, 30), H) == utc(2026, 3, 6, 15, 30)
    # Exactly at an opening: the earliest instant with 30 min left is Friday's close.
    assert OFFICE.subtract(utc(2026, 3, 9, 8, 30), 30 * M) == utc(2026, 3, 6, 16)
    assert OFFICE.subtract(utc(2026, 3, 2, 13), H) == utc(2026, 3, 2, 11)  # across lunch
    assert ALWAYS_OPEN.subtract(utc(2026, 3, 2, 13), H) == utc(2026, 3, 2, 12)


def test_always_open_is_calendar_time():
    start = utc(2026, 3, 29, 0, 30)
    assert ALWAYS_OPEN.add(start, 3 * H) == utc(2026, 3, 29, 3, 30)
    assert ALWAYS_OPEN.between(start, utc(2026, 3, 30, 0, 30)) == 24 * H
    assert ALWAYS_OPEN.between(utc(2026, 3, 30), start) == timedelta(0)
    assert ALWAYS_OPEN.is_open(start) and ALWAYS_OPEN.next_open(start) == start


def test_between_is_zero_when_end_is_not_after_start():
    assert OFFICE.between(utc(2026, 3, 2, 10), utc(2026, 3, 2, 10)) == timedelta(0)
    assert OFFICE.between(utc(2026, 3, 2, 11), utc(2026, 3, 2, 10)) == timedelta(0)


def test_long_additions_walk_windows_not_minutes():
    # Ten years of business time; a minute-by-minute walk would take minutes, windows take ms.
    start = utc(2026, 3, 2, 8)
    ten_years = 10 * 52 * 41 * H
    due = OFFICE.add(start, ten_years)
    assert due.year in (2035, 2036)
    assert OFFICE.between(start, due) == ten_years


# --------------------------------------------------------------------------------------------
# Properties

CALENDARS = st.sampled_from([OFFICE, NEW_YORK, DST_EDGES, ALWAYS_OPEN])
INSTANTS = st.datetimes(min_value=datetime(2025, 1, 1), max_value=datetime(2028, 12, 31), timezones=st.just(UTC))
DURATIONS = st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=40))


@settings(max_examples=300, deadline=None)
@given(CALENDARS, INSTANTS, DURATIONS)
def test_between_undoes_add(calendar, start, duration):
    assert calendar.between(start, calendar.add(start, duration)) == duration


@settings(max_examples=300, deadline=None)
@given(CALENDARS, INSTANTS, DURATIONS)
def test_add_lands_in_business_hours_or_exactly_at_a_window_end(calendar, start, duration):
    due = calendar.add(start, duration)
    assert due >= start
    just_before = due - timedelta(microseconds=1)
    assert calendar.is_open(due) or (calendar.is_open(just_before) and duration > timedelta(0))


@settings(max_examples=200, deadline=None)
@given(CALENDARS, INSTANTS, DURATIONS, DURATIONS)
def test_add_is_monotonic_in_duration(calendar, start, first, second):
    shorter, longer = sorted((first, second))
    assert calendar.add(start, shorter) <= calendar.add(start, longer)


@settings(max_examples=200, deadline=None)
@given(CALENDARS, INSTANTS, INSTANTS, DURATIONS)
def test_add_is_monotonic_in_start(calendar, first, second, duration):
    earlier, later = sorted((first, second))
    assert calendar.add(earlier, duration) <= calendar.add(later, duration)


@settings(max_examples=200, deadline=None)
@given(CALENDARS, INSTANTS, INSTANTS, INSTANTS)
def test_between_adds_up_and_never_exceeds_elapsed_time(calendar, a, b, c):
    a, b, c = sorted((a, b, c))
    assert calendar.between(a, b) + calendar.between(b, c) == calendar.between(a, c)
    assert calendar.between(a, c) <= c - a


@settings(max_examples=200, deadline=None)
@given(CALENDARS, INSTANTS, DURATIONS)
def test_subtract_is_the_earliest_instant_with_that_much_left(calendar, end, duration):
    begin = calendar.subtract(end, duration)
    assert begin <= end
    assert calendar.between(begin, end) <= duration
    assert calendar.between(begin - timedelta(microseconds=1), end) > duration


def _open_by_wall_clock(local: datetime, hours, holidays) -> bool:
    """The oracle: read the wall clock and the timetable, as a person would."""
    if local.date() in holidays:
        return False
    day_key = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")[local.weekday()]
    reading = local.strftime("%H:%M")
    for window in hours.get(day_key, ()):
        opens, closes = window.split("-")
        if opens <= reading < closes:
            return True
    return False


# Windows away from 02:00-03:00, where the wall clock is unambiguous, so the oracle is exact.
@settings(max_examples=40, deadline=None)
@given(
    st.sampled_from(
        [
            (OFFICE, OFFICE_HOURS, {date(2026, 12, 25), date(2026, 12, 26), date(2027, 1, 1)}),
            (NEW_YORK, {day: ["08:00-20:00"] for day in NEW_YORK.hours}, {date(2026, 11, 26)}),
        ]
    ),
    st.sampled_from([utc(2026, 3, 5), utc(2026, 3, 26), utc(2026, 10, 22), utc(2026, 10, 29), utc(2026, 12, 23)]),
    st.integers(min_value=0, max_value=5 * 24 * 60),
    st.integers(min_value=0, max_value=3 * 24 * 60),
)
def test_between_matches_a_minute_by_minute_reading_of_the_wall_clock(case, base, offset, length):
    calendar, hours, holidays = case
    start = base + offset * M
    end = start + length * M
    zone = ZoneInfo(calendar.timezone)
    open_minutes = sum(
        _open_by_wall_clock((start + minute * M).astimezone(zone), hours, holidays) for minute in range(length)
    )
    assert calendar.between(start, end) == open_minutes * M


# --------------------------------------------------------------------------------------------
# Policies

STANDARD = Policy(
    name="standard",
    targets={
        "first_reply": H,
        "next_reply": 4 * H,
        "periodic_update": timedelta(days=1),
        "resolution": timedelta(days=3),
    },
    priority_overrides={"urgent": {"first_reply": 15 * M}},
)
CREATED = utc(2026, 3, 2, 9)  # a Monday


def states_of(policy=STANDARD, **fields) -> dict[str, TargetState]:
    conversation = {
        "priority": "normal",
        "status": "open",
        "created_at": CREATED,
        "first_responded_at": None,
        "waiting_since": CREATED,
        "last_agent_reply_at": None,
        "solved_at": None,
    } | fields
    return {state.target: state for state in evaluate(policy=policy, **conversation)}


def test_policy_targets_for_applies_priority_overrides():
    assert STANDARD.targets_for("urgent")["first_reply"] == 15 * M
    assert STANDARD.targets_for("urgent")["resolution"] == timedelta(days=3)
    assert STANDARD.targets_for("low")["first_reply"] == H
    with pytest.raises(ValueError, match="priority"):
        STANDARD.targets_for("critical")


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"targets": {"first_response": H}}, "first_response"),
        ({"targets": {"first_reply": timedelta(0)}}, "first_reply"),
        ({"targets": {"first_reply": -H}}, "first_reply"),
        ({"priority_overrides": {"critical": {"first_reply": H}}}, "critical"),
        ({"priority_overrides": {"urgent": {"reply": H}}}, "reply"),
        ({"warning_fraction": 1.5}, "1.5"),
        ({"warning_before": timedelta(0)}, "warning"),
    ],
)
def test_policy_rejects_bad_settings(kwargs, named):
    with pytest.raises(SlaConfigError) as raised:
        Policy(name="standard", **kwargs)
    assert named in str(raised.value) and "standard" in str(raised.value)


def test_policy_from_config_table():
    policy = Policy.from_config(
        {
            "name": "standard",
            "calendar": "office",
            "match": {"channel": ["email"]},
            "first_reply": "1h",
            "resolution": "3d",
            "warning": "25%",
            "priority": {"urgent": {"first_reply": "15m"}},
        },
        {"office": OFFICE},
    )
    assert policy.calendar is OFFICE
    assert policy.targets == {"first_reply": H, "resolution": timedelta(days=3)}
    assert (policy.warning_fraction, policy.warning_before) == (0.25, None)
    assert policy.targets_for("urgent")["first_reply"] == 15 * M
    default = Policy.from_config({"name": "d", "first_reply": "1h"}, {})
    assert default.calendar is ALWAYS_OPEN and (default.warning_fraction, default.warning_before) == (0.25, H)
    with pytest.raises(SlaConfigError, match="holidays"):
        Policy.from_config({"name": "x", "calendar": "holidays"}, {"office": OFFICE})
    with pytest.raises(SlaConfigError, match="first_reply.*1 hour"):
        Policy.from_config({"name": "x", "first_reply": "1 hour"}, {})
    with pytest.raises(SlaConfigError, match="resolve"):
        Policy.from_config({"name": "x", "resolve": "1h"}, {})


@pytest.mark.parametrize(
    ("text", "expected"),
    [("25%", (0.25, None)), ("100%", (1.0, None)), ("1h", (None, H)), ("90m", (None, 90 * M))],
)
def test_parse_warning(text, expected):
    assert parse_warning(text) == expected


@pytest.mark.parametrize("text", ["0%", "150%", "x%", "soon", "0m"])
def test_parse_warning_rejects(text):
    with pytest.raises(ValueError, match="warning"):
        parse_warning(text)


@pytest.mark.parametrize(
    ("target", "fraction", "before", "expected"),
    [
        (15 * M, 0.25, H, timedelta(seconds=225)),  # short target: its last quarter
        (H, 0.25, H, 15 * M),
        (4 * H, 0.25, H, H),  # 25 % and 1 h agree
        (timedelta(days=3), 0.25, H, H),  # long target: its last hour
        (4 * H, 0.25, None, H),
        (timedelta(days=3), None, H, H),
        (15 * M, None, H, H),  # an explicit duration is taken at its word
        (H, None, None, None),
    ],
)
def test_warning_threshold_is_the_later_of_the_rules_set(target, fraction, before, expected):
    policy = Policy(name="p", targets={"resolution": target}, warning_fraction=fraction, warning_before=before)
    assert policy.warning_threshold(target) == expected


# --------------------------------------------------------------------------------------------
# evaluate: every state, with fixed instants


def test_first_reply_ok_then_warning_then_breached():
    ok = states_of(now=CREATED + 10 * M)["first_reply"]
    assert ok == TargetState("first_reply", utc(2026, 3, 2, 10), "ok", 50 * M, None, utc(2026, 3, 2, 9, 45))
    assert states_of(now=utc(2026, 3, 2, 9, 44, 59))["first_reply"].state == "ok"
    at_threshold = states_of(now=utc(2026, 3, 2, 9, 45))["first_reply"]
    assert (at_threshold.state, at_threshold.remaining) == ("warning", 15 * M)
    at_due = states_of(now=utc(2026, 3, 2, 10))["first_reply"]
    assert (at_due.state, at_due.remaining) == ("warning", timedelta(0))
    breached = states_of(now=utc(2026, 3, 2, 10, 5))["first_reply"]
    assert (breached.state, breached.due, breached.remaining) == ("breached", utc(2026, 3, 2, 10), -5 * M)


def test_first_reply_met_and_missed():
    met = states_of(first_responded_at=utc(2026, 3, 2, 9, 30), now=utc(2026, 3, 2, 12))["first_reply"]
    assert met == TargetState("first_reply", utc(2026, 3, 2, 10), "met", 30 * M, utc(2026, 3, 2, 9, 30))
    missed = states_of(first_responded_at=utc(2026, 3, 2, 10, 30), now=utc(2026, 3, 2, 12))["first_reply"]
    assert (missed.state, missed.remaining, missed.fulfilled_at) == ("missed", -30 * M, utc(2026, 3, 2, 10, 30))


def test_urgent_priority_uses_its_override():
    state = states_of(priority="urgent", now=CREATED + 5 * M)["first_reply"]
    # 15 min target: warning below min(25 % = 3m45s, 1h).
    assert (state.due, state.state, state.warning_at) == (utc(2026, 3, 2, 9, 15), "ok", utc(2026, 3, 2, 9, 11, 15))
    assert states_of(priority="urgent", now=utc(2026, 3, 2, 9, 12))["first_reply"].state == "warning"


def test_next_reply_needs_a_first_reply_and_a_waiting_customer():
    assert "next_reply" not in states_of(now=CREATED + M)  # first reply not given yet
    replied = {"first_responded_at": utc(2026, 3, 2, 9, 30), "last_agent_reply_at": utc(2026, 3, 2, 9, 30)}
    assert "next_reply" not in states_of(**replied, waiting_since=None, now=utc(2026, 3, 2, 11))
    waiting = replied | {"waiting_since": utc(2026, 3, 2, 12)}
    ok = states_of(**waiting, now=utc(2026, 3, 2, 14))["next_reply"]
    assert (ok.due, ok.state, ok.remaining) == (utc(2026, 3, 2, 16), "ok", 2 * H)
    warning = states_of(**waiting, now=utc(2026, 3, 2, 15))["next_reply"]
    assert (warning.state, warning.remaining) == ("warning", H)  # 25 % of 4h = 1h
    breached = states_of(**waiting, now=utc(2026, 3, 2, 17))["next_reply"]
    assert (breached.state, breached.remaining) == ("breached", -H)


def test_periodic_update_runs_from_the_last_agent_reply():
    fields = {"first_responded_at": utc(2026, 3, 2, 9, 30), "last_agent_reply_at": utc(2026, 3, 2, 9, 30)}
    ok = states_of(**fields, waiting_since=None, now=utc(2026, 3, 2, 20))["periodic_update"]
    assert (ok.due, ok.state, ok.remaining) == (utc(2026, 3, 3, 9, 30), "ok", 13 * H + 30 * M)
    warning = states_of(**fields, waiting_since=None, now=utc(2026, 3, 3, 9))["periodic_update"]
    assert warning.state == "warning"
    breached = states_of(**fields, waiting_since=None, now=utc(2026, 3, 3, 10))["periodic_update"]
    assert (breached.state, breached.remaining) == ("breached", -30 * M)
    never_replied = states_of(now=CREATED + H)["periodic_update"]
    assert never_replied.due == CREATED + timedelta(days=1)


def test_resolution_met_missed_and_solved_conversations_drop_open_clocks():
    solved = states_of(status="solved", solved_at=utc(2026, 3, 4, 9), now=utc(2026, 3, 6))
    assert list(solved) == ["resolution"]  # never answered: first reply no longer applies
    assert (solved["resolution"].state, solved["resolution"].remaining) == ("met", 24 * H)
    late = states_of(
        status="closed",
        first_responded_at=utc(2026, 3, 2, 9, 30),
        solved_at=utc(2026, 3, 5, 11),
        now=utc(2026, 3, 9),
    )
    assert {target: state.state for target, state in late.items()} == {"first_reply": "met", "resolution": "missed"}
    assert late["resolution"].remaining == -2 * H
    assert overall_state(list(late.values())) == "met"
    assert next_due(list(late.values())) is None


def test_a_reopened_conversation_ignores_its_old_solved_at():
    reopened = states_of(status="open", solved_at=utc(2026, 3, 3, 9), now=utc(2026, 3, 4))["resolution"]
    assert (reopened.state, reopened.fulfilled_at) == ("ok", None)


def test_solved_without_solved_at_is_an_error():
    with pytest.raises(ValueError, match="solved_at"):
        states_of(status="solved", now=utc(2026, 3, 4))


def test_pending_pauses_everything_on_hold_all_but_resolution():
    pending = states_of(status="pending", now=utc(2026, 3, 9))
    assert {target: state.state for target, state in pending.items()} == {
        "first_reply": "paused",
        "periodic_update": "paused",
        "resolution": "paused",
    }
    assert all(state.due is None and state.remaining is None for state in pending.values())
    assert overall_state(list(pending.values())) == "paused"
    assert next_due(list(pending.values())) is None

    on_hold = states_of(status="on_hold", now=utc(2026, 3, 3))
    assert on_hold["first_reply"].state == "paused"
    assert (on_hold["resolution"].state, on_hold["resolution"].due) == ("ok", utc(2026, 3, 5, 9))
    assert overall_state(list(on_hold.values())) == "ok"


def test_fulfilled_targets_stay_met_while_paused():
    pending = states_of(status="pending", first_responded_at=utc(2026, 3, 2, 9, 30), now=utc(2026, 3, 3))
    assert pending["first_reply"].state == "met"


def test_business_calendar_policy_counts_only_office_hours():
    office = Policy(name="office", calendar=OFFICE, targets={"first_reply": H})
    friday_evening = utc(2026, 3, 6, 15, 30)  # 16:30 CET
    saturday = states_of(office, created_at=friday_evening, now=utc(2026, 3, 7, 12))["first_reply"]
    # 30 min counted on Friday, 30 left for Monday 09:00-09:30 CET.
    assert (saturday.due, saturday.state, saturday.remaining) == (utc(2026, 3, 9, 8, 30), "ok", 30 * M)
    # Warning at 15 min left: Monday 09:15 CET.
    assert saturday.warning_at == utc(2026, 3, 9, 8, 15)
    monday = states_of(office, created_at=friday_evening, now=utc(2026, 3, 9, 8, 20))["first_reply"]
    assert (monday.state, monday.remaining) == ("warning", 10 * M)
    late = states_of(office, created_at=friday_evening, now=utc(2026, 3, 9, 9))["first_reply"]
    assert (late.state, late.remaining) == ("breached", -30 * M)  # overdue in calendar time


def test_a_policy_without_a_warning_rule_goes_straight_from_ok_to_breached():
    quiet = Policy(name="quiet", targets={"first_reply": H}, warning_fraction=None, warning_before=None)
    state = states_of(quiet, now=utc(2026, 3, 2, 9, 59))["first_reply"]
    assert (state.state, state.warning_at) == ("ok", None)
    assert warning_starts_at(quiet, state) == utc(2026, 3, 2, 10)


def test_a_warning_as_long_as_the_target_warns_from_the_start():
    eager = Policy(name="eager", targets={"first_reply": 30 * M}, warning_fraction=None, warning_before=H)
    state = states_of(eager, now=CREATED)["first_reply"]
    assert (state.state, state.warning_at) == ("warning", CREATED)
    assert warning_starts_at(eager, state) == CREATED


def test_only_the_targets_a_policy_sets_are_evaluated():
    policy = Policy(name="reply-only", targets={"first_reply": H})
    assert list(states_of(policy, now=CREATED)) == ["first_reply"]
    assert list(states_of(Policy(name="none"), now=CREATED)) == []
    assert TARGETS == ("first_reply", "next_reply", "periodic_update", "resolution")


def test_unknown_status_is_refused():
    with pytest.raises(ValueError, match="status"):
        states_of(status="waiting", now=CREATED)


# --------------------------------------------------------------------------------------------
# Summaries


def _state(state: str, due: datetime | None = None) -> TargetState:
    return TargetState("resolution", due, state, None)


@pytest.mark.parametrize(
    ("states", "expected"),
    [
        (["ok", "warning", "breached", "paused", "met"], "breached"),
        (["ok", "warning", "paused", "missed"], "warning"),
        (["paused", "ok", "met"], "ok"),
        (["paused", "met"], "paused"),
        (["met", "missed"], "met"),
        ([], "met"),
    ],
)
def test_overall_state_is_the_worst_unfulfilled_target(states, expected):
    assert overall_state([_state(state) for state in states]) == expected


def test_next_due_is_the_earliest_running_due():
    states = [
        _state("ok", utc(2026, 3, 3)),
        _state("breached", utc(2026, 3, 2, 12)),
        _state("met", utc(2026, 3, 1)),
        _state("paused"),
        _state("warning", utc(2026, 3, 2, 18)),
    ]
    assert next_due(states) == utc(2026, 3, 2, 12)
    assert next_due([_state("met", utc(2026, 3, 1))]) is None


def test_hold_time_is_calendar_time_since_the_oldest_unanswered_message():
    assert hold_time(None, utc(2026, 3, 2)) is None
    # Over a weekend: calendar time, not business time.
    assert hold_time(utc(2026, 3, 6, 16), utc(2026, 3, 9, 8)) == 64 * H
    assert hold_time(utc(2026, 3, 2, 12), utc(2026, 3, 2, 11)) == timedelta(0)  # clock skew


def test_warning_starts_at_refuses_targets_that_are_not_running():
    with pytest.raises(ValueError, match="paused"):
        warning_starts_at(STANDARD, _state("paused"))


WITH_HOLIDAYS = BusinessCalendar(
    "holidays",
    "Europe/Amsterdam",
    {"mon": ["09:00-12:00", "13:00-17:00"], "sat": ["10:00-14:00"]},
    holidays=["2026-12-28", "2027-01-04"],
    holiday_rules=["FREQ=YEARLY;BYMONTH=12;BYMONTHDAY=25,26"],
)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from([OFFICE, NEW_YORK, DST_EDGES, WITH_HOLIDAYS]), INSTANTS, INSTANTS)
def test_between_over_months_equals_the_day_by_day_sum(calendar, a, b):
    """`between` takes whole days from per-year running totals; the day-by-day reading is the truth."""
    start, end = min(a, b), max(a, b)
    first = start.astimezone(calendar._zone).date() - timedelta(days=1)
    last = end.astimezone(calendar._zone).date()
    assert calendar.between(start, end) == calendar._clipped(first, last, start, end)


def test_remembered_sums_answer_as_the_first_asking_did_in_any_zone():
    """`add` and `subtract` remember their answers per calendar: the same instant asked again,
    in another zone or after a pickle round trip, gets the same UTC answer as when it was summed."""
    import pickle

    calendar = BusinessCalendar(name="office-remembered", timezone="Europe/Amsterdam", hours={"mon": ["09:00-17:00"]})
    start = datetime(2026, 3, 2, 16, 30, tzinfo=timezone.utc)  # Monday 17:30 in Amsterdam: closed
    due = calendar.add(start, timedelta(hours=2))
    assert due == datetime(2026, 3, 9, 10, 0, tzinfo=timezone.utc) and due.utcoffset() == timedelta(0)
    local = start.astimezone(ZoneInfo("America/New_York"))
    assert calendar.add(local, timedelta(hours=2)) == due
    assert calendar.add(start, timedelta(hours=3)) == datetime(2026, 3, 9, 11, 0, tzinfo=timezone.utc)
    warning = calendar.subtract(due, timedelta(hours=1))
    assert warning == datetime(2026, 3, 9, 9, 0, tzinfo=timezone.utc)
    assert calendar.subtract(due.astimezone(ZoneInfo("Asia/Kolkata")), timedelta(hours=1)) == warning
    copy = pickle.loads(pickle.dumps(calendar))
    assert copy.add(start, timedelta(hours=2)) == due and copy.subtract(due, timedelta(hours=1)) == warning
