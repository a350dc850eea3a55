"""Durations as the config writes them and the screen shows them: "45m", "1d 4h", "-25m"."""

from __future__ import annotations

import re
from datetime import timedelta

from agentdesk.domain.sla.errors import InvalidDuration

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
    parts: list[str] = []
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
    parts: list[str] = []
    for unit, size in _DURATION_UNITS:
        count, total = divmod(total, size)
        if count or parts:
            parts.append(f"{count}{unit}")
    parts = [part for part in parts[:units] if not part.startswith("0")] or ["0m"]
    return ("-" if duration < timedelta(0) and parts != ["0m"] else "") + " ".join(parts)
