"""The check every instant passes on its way in: aware, in any zone, and converted to UTC."""

from __future__ import annotations

from datetime import datetime, timezone

UTC = timezone.utc


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
