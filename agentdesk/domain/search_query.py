"""The search box's small language: free text plus field filters, like notmuch and neomutt.

    battery from:anke tag:warranty,refund status:open -assignee:me waiting:>2h sla:breached

Words without a known `field:` prefix are full-text terms (so `re:` or a URL stay text). Values of
one filter separated by commas are alternatives; separate filters must all hold; a leading `-`
negates a filter. Quoted values may hold spaces: `from:"anke bakker"`.

`parse` is pure: it takes `now` for relative dates and returns a `SearchQuery` whose `text` goes to
the full-text index and whose `filters` become SQL in `store.queries.search_condition`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone, tzinfo

from agentdesk.errors import InvalidInput

STATUSES = ("new", "open", "pending", "on_hold", "solved", "closed")
PRIORITIES = ("low", "normal", "high", "urgent")
CHANNELS = ("email", "sms", "chat", "webform", "social")
SLA_STATES = ("breached", "warning", "ok", "paused")

FIELDS = {
    "from": "customer name or address contains the text",
    "status": "one of " + ", ".join(STATUSES),
    "priority": "one of " + ", ".join(PRIORITIES),
    "channel": "one of " + ", ".join(CHANNELS),
    "tag": "carries the tag",
    "assignee": "an agent's login, me or none",
    "before": "created before a date (2026-11-01) or an age (2d)",
    "after": "created on or after a date (2026-11-01) or an age (2d)",
    "sla": "one of " + ", ".join(SLA_STATES),
    "waiting": "the customer has waited longer (>2h) or shorter (<30m)",
    "ref": "the conversation AD-1042 (AD-1042 alone says the same)",
}

_TOKEN = re.compile(r'-?[A-Za-z]+:"[^"]*"|"[^"]*"|\S+')
_FILTER = re.compile(r"^(?P<neg>-?)(?P<field>[A-Za-z]+):(?P<value>.*)$")
# A conversation's reference typed alone: agents quote it from mail and from each other.
_REF = re.compile(r"^(?P<neg>-?)AD-(?P<id>\d+)$", re.IGNORECASE)


@dataclass(frozen=True)
class Filter:
    field: str
    values: tuple[str, ...] = ()
    negated: bool = False
    op: str = ""  # waiting: ">" or "<"
    at: datetime | None = None  # before/after
    duration: timedelta | None = None  # waiting

    def __str__(self) -> str:
        return f"{'-' if self.negated else ''}{self.field}:{self.op}{','.join(self.values)}"


@dataclass(frozen=True)
class SearchQuery:
    text: str = ""
    filters: tuple[Filter, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.text and not self.filters


def parse(query: str, *, now: datetime, local_zone: tzinfo | None = None) -> SearchQuery:
    """Split what the agent typed into full text and validated filters; InvalidInput names a bad one."""
    words: list[str] = []
    filters: list[Filter] = []
    for token in _TOKEN.findall(query):
        ref = _REF.match(token)
        if ref:
            filters.append(Filter("ref", (str(int(ref.group("id"))),), bool(ref.group("neg"))))
            continue
        match = _FILTER.match(token)
        field = match.group("field").lower() if match else ""
        if not match or field not in FIELDS:
            words.append(token)
            continue
        raw = match.group("value").strip('"').strip()
        if not raw:
            raise InvalidInput(f"{token!r}: give a value after {field}: ({FIELDS[field]})")
        filters.append(_filter(field, raw, negated=bool(match.group("neg")), now=now, local_zone=local_zone))
    return SearchQuery(text=" ".join(words), filters=tuple(filters))


def _values(field: str, raw: str, allowed: tuple[str, ...] | None = None) -> tuple[str, ...]:
    values = tuple(dict.fromkeys(v.strip().lower() for v in raw.split(",") if v.strip()))
    if allowed is not None:
        for value in values:
            if value not in allowed:
                raise InvalidInput(f"{field}:{value} is not known; {field} is {FIELDS[field]}")
    return values


def _filter(field: str, raw: str, *, negated: bool, now: datetime, local_zone: tzinfo | None) -> Filter:
    if field in ("status", "priority", "channel", "sla"):
        allowed = {"status": STATUSES, "priority": PRIORITIES, "channel": CHANNELS, "sla": SLA_STATES}[field]
        aliases = {"on-hold": "on_hold", "onhold": "on_hold", "hold": "on_hold"}
        raw = ",".join(aliases.get(v.strip().lower(), v) for v in raw.split(","))
        return Filter(field, _values(field, raw, allowed), negated)
    if field in ("from", "tag", "assignee"):
        return Filter(field, _values(field, raw), negated)
    if field == "ref":
        ids = [value.upper().removeprefix("AD-") for value in _values(field, raw)]
        if not all(each.isdigit() for each in ids):
            raise InvalidInput(f"ref:{raw}: expected references like AD-1042 (or AD-1042,AD-7)")
        return Filter(field, tuple(str(int(each)) for each in ids), negated)
    if field in ("before", "after"):
        return Filter(field, (raw,), negated, at=parse_when(raw, now=now, local_zone=local_zone, field=field))
    if field == "waiting":
        op, typed = ">", raw
        if raw[0] in "<>":
            op, raw = raw[0], raw[1:].lstrip("=")
        return Filter(field, (raw,), negated, op=op, duration=_duration(raw, field, typed=typed))
    raise InvalidInput(f"unknown search filter {field!r}")  # pragma: no cover - FIELDS guards it


def _duration(text: str, field: str, *, typed: str | None = None) -> timedelta:
    """`typed`: the filter's value as the agent typed it (`>abc`), which the error quotes."""
    from agentdesk.domain import sla

    try:
        duration = sla.parse_duration(text)
    except ValueError:
        example = ">2h, <30m" if field == "waiting" else "2h, 30m or 1d 4h"
        raise InvalidInput(f"search filter {field}:{typed or text}: expected a duration like {example}") from None
    return abs(duration)


def parse_when(text: str, *, now: datetime, local_zone: tzinfo | None = None, field: str = "date") -> datetime:
    """`2026-11-01` (local midnight), `2026-11-01T09:00`, `today`, `yesterday`, or an age `2d` (= now - 2d)."""
    zone = local_zone or now.astimezone().tzinfo or timezone.utc
    lowered = text.lower()
    if lowered in ("today", "yesterday"):
        day = now.astimezone(zone).date() - timedelta(days=1 if lowered == "yesterday" else 0)
        return datetime.combine(day, time(0), zone).astimezone(timezone.utc)
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        try:
            day = date.fromisoformat(text)
        except ValueError:
            raise InvalidInput(f"{field}:{text} is not a date") from None
        return datetime.combine(day, time(0), zone).astimezone(timezone.utc)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        pass
    else:
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=zone)
        return moment.astimezone(timezone.utc)
    try:
        return now - _duration(text, field)
    except InvalidInput:
        raise InvalidInput(
            f"{field}:{text}: expected a date (2026-11-01), a time (2026-11-01T09:00), today, yesterday "
            f"or an age like 2d"
        ) from None
