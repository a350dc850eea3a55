"""What the screen shows for clocks, bodies and typed values: pure functions with a fixed `now`."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from agentdesk.domain import templates
from agentdesk.errors import InvalidInput
from agentdesk.store.models import NEVER
from agentdesk.tui import actions, format

NOW = datetime(2026, 11, 24, 9, 30, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    ("status", "due", "warning", "text", "state"),
    [
        ("open", NOW + timedelta(hours=2), NOW + timedelta(hours=1), "2h", "ok"),
        ("open", NOW + timedelta(minutes=20), NOW - timedelta(minutes=5), "20m", "warning"),
        ("new", NOW - timedelta(hours=1, minutes=5), NOW - timedelta(hours=2), "-1h 5m", "breached"),
        ("pending", NEVER, None, "paused", "paused"),
        ("on_hold", NOW + timedelta(days=1), None, "1d", "ok"),  # on hold: resolution still runs
        ("solved", NEVER, None, "done", "met"),
        ("open", NEVER, None, "—", "none"),
    ],
)
def test_sla_badge(status, due, warning, text, state):
    assert format.sla_badge(status=status, queue_due=due, warning_at=warning, now=NOW) == format.Badge(text, state)


def test_hold():
    assert format.hold(NOW - timedelta(hours=3, minutes=2), NOW) == "3h 2m"
    assert format.hold(None, NOW) == ""


def test_split_body_collapses_quotes_and_signature():
    body = format.split_body("Thanks!\n\nOn Mon, Dana wrote:\n> old\n> older\n-- \nAnke\n+31 6")
    assert body.main == "Thanks!"
    assert body.quoted.startswith("On Mon, Dana wrote:")
    assert body.signature == "Anke\n+31 6"
    inline = format.split_body("> you said\nI disagree\n> more")
    assert inline.main.startswith("> you said") and inline.quoted == "> more"
    assert format.split_body("only > quote").main == "only > quote"


def test_parse_until():
    assert format.parse_until("4h", NOW) == NOW + timedelta(hours=4)
    assert format.parse_until("none", NOW) is None
    assert format.parse_until("2026-12-01 09:00", NOW, timezone.utc) == datetime(2026, 12, 1, 9, tzinfo=timezone.utc)
    assert format.parse_until("tomorrow", NOW, timezone.utc) == datetime(2026, 11, 25, 9, tzinfo=timezone.utc)
    with pytest.raises(InvalidInput, match="past"):
        format.parse_until("2020-01-01", NOW, timezone.utc)
    with pytest.raises(InvalidInput, match="expected"):
        format.parse_until("soonish", NOW)


def test_parse_tags():
    assert format.parse_tags("+billing -refund vip, b2b") == (["billing", "vip", "b2b"], ["refund"])


def test_template_fuzzy_find_and_suggest():
    ts = [
        templates.Template("battery-firmware", "Update the firmware and check the battery", "fw", "battery drain"),
        templates.Template("shipping-delay", "Your order is leaving the warehouse", "ship", "order delayed"),
        templates.Template("refund-issued", "I've issued the refund", "ref", "refund sent"),
    ]
    assert [t.name for t in templates.find(ts, "fw")][0] == "battery-firmware"
    assert [t.name for t in templates.find(ts, "shp")][0] == "shipping-delay"
    assert [t.name for t in templates.find(ts, "")] == ["battery-firmware", "refund-issued", "shipping-delay"]
    assert templates.find(ts, "zzz") == []
    suggested = templates.suggest(ts, "My battery drains overnight, is there a firmware fix?")
    assert suggested[0][0].name == "battery-firmware" and 0 < suggested[0][1] <= 1
    assert templates.suggest(ts, "") == []
    assert templates.unfilled("Hi [[due?]] and [[due?]] [[ref?]]") == ["due", "ref"]


def test_action_table_is_consistent():
    ids = [a.id for a in actions.ACTIONS]
    assert len(ids) == len(set(ids))
    keymap, unknown = actions.keymap({"reply": "f2 , r", "bogus": "x"})
    assert keymap == {"reply": "f2,r"} and unknown == ["bogus"]
    for scope in ("main", "composer"):
        assert [b.id for b in actions.bindings(scope)]
