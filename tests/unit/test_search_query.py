"""The search language: parsing is pure and takes `now`; the SQL it becomes is checked on a demo database."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlmodel import Session, select

from agentdesk.domain import search_query
from agentdesk.errors import InvalidInput
from agentdesk.store import queries
from agentdesk.store.models import Conversation, ConversationTag

NOW = datetime(2026, 11, 24, 9, 30, tzinfo=timezone.utc)


def parse(text: str) -> search_query.SearchQuery:
    return search_query.parse(text, now=NOW, local_zone=timezone.utc)


@pytest.mark.parametrize(
    ("text", "words", "fields"),
    [
        ("", "", []),
        ("battery drain", "battery drain", []),
        ("tag:billing", "", [("tag", ("billing",), False)]),
        (
            "tag:billing,refund -status:solved",
            "",
            [("tag", ("billing", "refund"), False), ("status", ("solved",), True)],
        ),
        ('from:"anke bakker" rack', "rack", [("from", ("anke bakker",), False)]),
        ("re: order http://x.example/a", "re: order http://x.example/a", []),
        ("STATUS:Open", "", [("status", ("open",), False)]),
        ("status:on-hold", "", [("status", ("on_hold",), False)]),
        ("assignee:me,none", "", [("assignee", ("me", "none"), False)]),
        ("sla:breached,warning", "", [("sla", ("breached", "warning"), False)]),
        ("AD-174", "", [("ref", ("174",), False)]),
        ("ad-0174 brakes", "brakes", [("ref", ("174",), False)]),
        ("-AD-9", "", [("ref", ("9",), True)]),
        ("ref:AD-3,7", "", [("ref", ("3", "7"), False)]),
        ("AD-12x", "AD-12x", []),
    ],
)
def test_parse(text, words, fields):
    parsed = parse(text)
    assert parsed.text == words
    assert [(f.field, f.values, f.negated) for f in parsed.filters] == fields


@pytest.mark.parametrize(
    ("text", "op", "duration"),
    [
        ("waiting:>2h", ">", timedelta(hours=2)),
        ("waiting:<30m", "<", timedelta(minutes=30)),
        ("waiting:1d 4h", ">", timedelta(days=1)),
        ("waiting:>=90m", ">", timedelta(minutes=90)),
    ],
)
def test_waiting(text, op, duration):
    (item,) = parse(text).filters
    assert (item.op, item.duration) == (op, duration)


@pytest.mark.parametrize(
    ("text", "at"),
    [
        ("before:2026-11-01", datetime(2026, 11, 1, tzinfo=timezone.utc)),
        ("after:2d", NOW - timedelta(days=2)),
        ("after:today", datetime(2026, 11, 24, tzinfo=timezone.utc)),
        ("after:yesterday", datetime(2026, 11, 23, tzinfo=timezone.utc)),
        ("before:2026-11-01T09:00", datetime(2026, 11, 1, 9, tzinfo=timezone.utc)),
    ],
)
def test_dates(text, at):
    (item,) = parse(text).filters
    assert item.at == at


def test_dates_in_local_zone():
    from zoneinfo import ZoneInfo

    parsed = search_query.parse("before:2026-11-01", now=NOW, local_zone=ZoneInfo("Europe/Amsterdam"))
    assert parsed.filters[0].at == datetime(2026, 10, 31, 23, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("status:nope", "status:nope"),
        ("sla:late", "sla:late"),
        ("channel:fax", "channel:fax"),
        ("waiting:>soon", "waiting:>soon"),
        ("before:someday", "before:someday"),
        ("tag:", "tag:"),
        ("before:2026-13-40", "2026-13-40"),
        ("ref:AD-x", "ref:AD-x"),
    ],
)
def test_errors_name_the_filter(text, says):
    with pytest.raises(InvalidInput, match=says.replace("?", r"\?")):
        parse(text)


def test_empty():
    assert parse("  ").empty
    assert not parse("tag:x").empty


# --- the SQL a search becomes, against a small demo database ----------------------------------


@pytest.fixture
def demo(settings):
    from agentdesk.demo import build
    from agentdesk.store import db

    build.build_database(settings, conversations=200, now=NOW)
    engine = db.open_database(settings.database_url)
    yield engine
    engine.dispose()


def count(engine, text: str, agent: str = "tester") -> int:
    parsed = parse(text)
    with Session(engine) as session:
        return queries.queue_size(
            session=session,
            view="all",
            agent=agent,
            now=NOW,
            query=parsed.text,
            extra_filter=queries.search_condition(search=parsed, agent=agent, now=NOW),
        )


def brute(engine, predicate) -> int:
    with Session(engine) as session:
        conversations = session.exec(select(Conversation).where(Conversation.merged_into_id.is_(None))).all()
        tags: dict[int, set[str]] = {}
        for row in session.exec(select(ConversationTag)):
            tags.setdefault(row.conversation_id, set()).add(row.tag)
        return sum(1 for c in conversations if predicate(c, tags.get(c.id, set())))


def test_filters_match_a_brute_force_count(demo):
    from agentdesk.store.models import NEVER

    assert count(demo, "status:new,open") == brute(demo, lambda c, t: c.status in ("new", "open"))
    assert count(demo, "-status:solved,closed") == brute(demo, lambda c, t: c.status not in ("solved", "closed"))
    assert count(demo, "tag:battery channel:email") == brute(demo, lambda c, t: "battery" in t and c.channel == "email")
    assert count(demo, "assignee:none") == brute(demo, lambda c, t: c.assignee is None)
    assert count(demo, "assignee:me,dana") == brute(demo, lambda c, t: c.assignee in ("tester", "dana"))
    assert count(demo, "priority:urgent") == brute(demo, lambda c, t: c.priority == "urgent")
    assert count(demo, "sla:breached") == brute(demo, lambda c, t: c.queue_due < NOW)
    assert count(demo, "sla:paused") == brute(demo, lambda c, t: c.status in ("pending", "on_hold"))
    two_hours = NOW - timedelta(hours=2)
    assert count(demo, "waiting:>2h") == brute(
        demo, lambda c, t: c.waiting_since is not None and c.waiting_since <= two_hours
    )
    assert count(demo, "waiting:<2h") == brute(
        demo, lambda c, t: c.waiting_since is not None and c.waiting_since > two_hours
    )
    cut = NOW - timedelta(days=7)
    assert count(demo, "after:7d") == brute(demo, lambda c, t: c.created_at >= cut)
    assert count(demo, "before:7d") == brute(demo, lambda c, t: c.created_at < cut)
    assert 0 < count(demo, "status:new,open") < count(demo, "")
    assert NEVER


def test_from_and_full_text(demo):
    with Session(demo) as session:
        conversation = session.get(Conversation, 1)
        from agentdesk.store.models import Customer

        name = session.get(Customer, conversation.customer_id).name
    first = name.split()[0].lower()
    assert count(demo, f"from:{first}") >= 1
    assert count(demo, f"from:{first} status:{conversation.status}") >= 1
    assert count(demo, "from:nobody-has-this-name") == 0
    assert count(demo, "battery") >= count(demo, "battery tag:battery") > 0


@pytest.mark.parametrize("typed", ["from:an", "from:ANKE,example", "from:a_b", "-from:e"])
def test_from_on_sqlite_finds_what_lower_like_finds(demo, typed):
    """On SQLite `from:` compares with LIKE alone (it ignores ASCII case as `lower()` does)."""
    parsed = parse(typed)

    def size(dialect: str) -> int:
        with Session(demo) as session:
            return queries.queue_size(
                session=session,
                view="all",
                agent="tester",
                now=NOW,
                extra_filter=queries.search_condition(search=parsed, agent="tester", now=NOW, dialect=dialect),
            )

    assert size("sqlite") == size("")


def test_a_reference_finds_its_conversation(demo):
    """An agent types the reference a colleague or the customer quoted; the subject never holds it."""
    assert count(demo, "AD-174") == 1
    assert count(demo, "AD-174 AD-3") == 0  # two filters must both hold
    assert count(demo, "ref:AD-174,AD-3") == 2
    assert count(demo, "-AD-174") == count(demo, "") - 1
