"""What the screen shows for times and clocks: pure functions, no textual, tested with a fixed `now`."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from agentdesk.app.queue import NEVER
from agentdesk.domain import sla

PAUSED_STATUSES = ("pending", "on_hold")
DONE_STATUSES = ("solved", "closed")


@dataclass(frozen=True)
class Badge:
    text: str
    state: str  # ok | warning | breached | paused | met | none


def sla_badge(*, status: str, queue_due: datetime, warning_at: datetime | None, now: datetime) -> Badge:
    """Time left to the next due target; negative after a breach; "paused" while waiting on the customer."""
    if status in DONE_STATUSES:
        return Badge("done", "met")
    if status in PAUSED_STATUSES and queue_due >= NEVER:
        return Badge("paused", "paused")
    if queue_due >= NEVER:
        return Badge("—", "none")
    left = queue_due - now
    text = sla.format_short(left)
    if left < timedelta(0):
        return Badge(text, "breached")
    if warning_at is not None and warning_at <= now:
        return Badge(text, "warning")
    return Badge(text, "ok")


def hold(waiting_since: datetime | None, now: datetime) -> str:
    waited = sla.hold_time(waiting_since, now)
    return sla.format_short(waited) if waited is not None else ""


def local_time(at: datetime | None, now: datetime | None = None) -> str:
    """A short local time: "14:05" today, "Mon 14:05" this week, "2026-11-03" before."""
    if at is None:
        return "—"
    local = at.astimezone()
    if now is not None:
        today = now.astimezone().date()
        if local.date() == today:
            return local.strftime("%H:%M")
        if timedelta(0) <= (today - local.date()) < timedelta(days=6):
            return local.strftime("%a %H:%M")
    return local.strftime("%Y-%m-%d")


_QUOTE_HEADER = re.compile(r"^(On .{4,200} wrote:|-{2,} ?Original Message ?-{2,}|From: .+)$", re.IGNORECASE)


@dataclass(frozen=True)
class Body:
    main: str
    quoted: str = ""
    signature: str = ""


def split_body(text: str) -> Body:
    """The new text of a message apart from the quoted history and the signature (shown collapsed)."""
    lines = text.replace("\r\n", "\n").split("\n")
    signature_at = None
    for index, line in enumerate(lines):
        if line in ("-- ", "--") and index > 0:
            signature_at = index
            break
    quote_at = None
    for index, line in enumerate(lines[: signature_at if signature_at is not None else len(lines)]):
        if _QUOTE_HEADER.match(line.strip()) or (line.startswith(">") and _rest_quoted(lines, index, signature_at)):
            quote_at = index
            break
    end = signature_at if signature_at is not None else len(lines)
    main_end = quote_at if quote_at is not None else end
    main = "\n".join(lines[:main_end]).rstrip()
    quoted = "\n".join(lines[quote_at:end]).strip("\n") if quote_at is not None else ""
    signature = "\n".join(lines[signature_at + 1 :]).strip("\n") if signature_at is not None else ""
    if not main.strip():
        # Nothing but a quote: show it rather than an empty message.
        return Body(quoted or main, "", signature)
    return Body(main, quoted, signature)


def _rest_quoted(lines: list[str], start: int, stop: int | None) -> bool:
    """A `>` line starts the quoted history only if everything after it is quote or blank."""
    for line in lines[start : stop if stop is not None else len(lines)]:
        if line.strip() and not line.startswith(">"):
            return False
    return True


def size(count: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if count < 1024 or unit == "GB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return str(count)


def ref(conversation_id: int) -> str:
    return f"AD-{conversation_id}"


def parse_until(text: str, now: datetime, local_zone=None) -> datetime | None:
    """A snooze end: a duration from now (4h, 2d), a date or time (2026-12-01 09:00), or none.

    Raises InvalidInput with the accepted forms when the text is none of them.
    """
    from datetime import timezone

    from agentdesk.errors import InvalidInput

    cleaned = text.strip()
    if cleaned.lower() in ("", "none", "off", "no", "0"):
        return None
    try:
        duration = sla.parse_duration(cleaned)
    except ValueError:
        pass
    else:
        if duration <= timedelta(0):
            raise InvalidInput(f"snooze {text!r}: give a time in the future")
        return now + duration
    zone = local_zone or now.astimezone().tzinfo
    lowered = cleaned.lower()
    if lowered.startswith("tomorrow"):
        rest = lowered.removeprefix("tomorrow").strip() or "09:00"
        day = (now.astimezone(zone) + timedelta(days=1)).date()
        cleaned = f"{day.isoformat()} {rest}"
    try:
        moment = datetime.fromisoformat(cleaned.replace(" ", "T", 1) if " " in cleaned else cleaned)
    except ValueError:
        raise InvalidInput(
            f"snooze {text!r}: expected a duration (4h, 2d), tomorrow [09:00], a date or time "
            f"(2026-12-01 09:00), or none"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone)
    moment = moment.astimezone(timezone.utc)
    if moment <= now:
        raise InvalidInput(f"snooze {text!r}: that is in the past; give a time in the future")
    return moment


def parse_tags(text: str) -> tuple[list[str], list[str]]:
    """`+billing -refund vip` -> (add [billing, vip], remove [refund]); commas work as spaces."""
    add, remove = [], []
    for word in text.replace(",", " ").split():
        if word.startswith("-") and len(word) > 1:
            remove.append(word[1:])
        elif word.startswith("+") and len(word) > 1:
            add.append(word[1:])
        elif word not in "+-":
            add.append(word)
    return add, remove


def stars(rating: int) -> str:
    """A satisfaction rating 1-5 as five stars: ★★★★☆."""
    rating = max(0, min(5, int(rating)))
    return "★" * rating + "☆" * (5 - rating)


def rating_style(rating: int) -> str:
    """Green for satisfied (4-5), red for a bad rating (1-2), plain for 3."""
    return "bold green" if rating >= 4 else "bold red" if rating <= 2 else "bold"
