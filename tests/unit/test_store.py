"""The store: every table round-trips, full-text search, the queue's keyset windows."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from conftest import FIXED_NOW
from sqlmodel import select

from agentdesk.store import db, queries, search
from agentdesk.store.models import (
    NEVER,
    Agent,
    Attachment,
    Conversation,
    ConversationTag,
    Customer,
    Draft,
    Event,
    Identity,
    Message,
    MessageRaw,
    Outbox,
    Presence,
    SlaClockEvent,
    SyncState,
)

T = FIXED_NOW


@pytest.fixture
def engine(any_database_url):
    """These store tests run on SQLite and on a real PostgreSQL."""
    engine = db.open_database(any_database_url)
    yield engine
    engine.dispose()


def _seed(session):
    customer = Customer(
        name="Greta Lindqvist", organization="Velo Couriers", tier="gold", notes="prefers email", created_at=T
    )
    session.add(customer)
    session.flush()
    session.add(Identity(customer_id=customer.id, kind="email", address="greta@velo.example", created_at=T))
    conversation = Conversation(
        channel="email",
        source="support",
        subject="Spokes",
        customer_id=customer.id,
        created_at=T,
        updated_at=T,
        waiting_since=T,
        queue_wait=T,
    )
    session.add(conversation)
    session.flush()
    message = Message(
        conversation_id=conversation.id,
        direction="inbound",
        author="Greta",
        subject="Spokes",
        body_text="three spokes broke",
        at=T,
        ingested_at=T,
        external_id="a@b",
        content_hash="h1",
    )
    session.add(message)
    session.flush()
    return customer, conversation, message


def test_every_table_round_trips(engine):
    later = T + timedelta(hours=1)
    with db.write_session(engine) as session:
        customer, conversation, message = _seed(session)
        rows = [
            Agent(login="dana", name="Dana", signature="Dana, Support", created_at=T),
            ConversationTag(conversation_id=conversation.id, tag="billing"),
            MessageRaw(message_id=message.id, raw=b"From: x\r\n\r\n\xff\x00binary"),
            Attachment(
                message_id=message.id, filename="photo.jpg", content_type="image/jpeg", size=3, storage_key="abc"
            ),
            Event(
                at=T, agent="dana", action="status", conversation_id=conversation.id, detail=json.dumps({"new": "open"})
            ),
            Outbox(
                message_id=message.id,
                channel="email",
                source="support",
                state="failed",
                attempts=2,
                last_error="550 no such user",
                created_at=T,
                next_attempt_at=later,
            ),
            SyncState(source="support", folder="INBOX", uidvalidity=42, last_uid=1000, last_sync_at=later),
            Presence(agent="dana", conversation_id=conversation.id, activity="replying", heartbeat_at=later),
            SlaClockEvent(conversation_id=conversation.id, target="first_reply", event="activate", at=T),
            Draft(conversation_id=conversation.id, agent="dana", body="Hi Greta,", base_version=1, updated_at=later),
        ]
        session.add_all(rows)
        session.commit()
        ids = {type(row): row for row in rows}

    with db.read_session(engine) as session:
        stored_customer = session.get(Customer, customer.id)
        assert (stored_customer.name, stored_customer.tier, stored_customer.notes) == (
            "Greta Lindqvist",
            "gold",
            "prefers email",
        )
        assert stored_customer.created_at == T and stored_customer.created_at.tzinfo is not None
        identity = session.exec(select(Identity)).one()
        assert (identity.kind, identity.address, identity.customer_id) == ("email", "greta@velo.example", customer.id)
        stored = session.get(Conversation, conversation.id)
        assert stored.waiting_since == T and stored.queue_due == NEVER and stored.version == 1
        assert session.get(Message, message.id).body_text == "three spokes broke"
        assert session.get(Agent, "dana").signature == "Dana, Support"
        assert session.exec(select(ConversationTag.tag)).one() == "billing"
        assert session.get(MessageRaw, message.id).raw == b"From: x\r\n\r\n\xff\x00binary"
        assert session.exec(select(Attachment)).one().filename == "photo.jpg"
        assert json.loads(session.exec(select(Event)).one().detail) == {"new": "open"}
        outbox = session.exec(select(Outbox)).one()
        assert (outbox.state, outbox.attempts, outbox.last_error, outbox.next_attempt_at) == (
            "failed",
            2,
            "550 no such user",
            later,
        )
        sync = session.exec(select(SyncState)).one()
        assert (sync.uidvalidity, sync.last_uid, sync.last_sync_at) == (42, 1000, later)
        assert session.get(Presence, "dana").activity == "replying"
        assert session.exec(select(SlaClockEvent)).one().event == "activate"
        assert session.get(Draft, (conversation.id, "dana")).body == "Hi Greta,"
    assert len(ids) == 10


@pytest.mark.parametrize(
    "stored, read",
    [
        # What UTCDateTime and sqlite_text write: naive UTC text with microseconds.
        ("2026-03-01 09:30:00.250000", datetime(2026, 3, 1, 9, 30, 0, 250000, tzinfo=timezone.utc)),
        # Written by hand or by an older tool: no fraction, a bare date, an offset of its own.
        ("2026-03-01 09:30:00", datetime(2026, 3, 1, 9, 30, tzinfo=timezone.utc)),
        ("2026-03-01", datetime(2026, 3, 1, tzinfo=timezone.utc)),
        ("2026-03-01 11:30:00+02:00", datetime(2026, 3, 1, 9, 30, tzinfo=timezone.utc)),
    ],
)
def test_sqlite_times_read_back_aware_in_utc_whatever_text_holds_them(engine, stored, read):
    if engine.dialect.name != "sqlite":
        pytest.skip("SQLite keeps times as text; PostgreSQL as timestamptz")
    with db.write_session(engine) as session:
        customer, conversation, _ = _seed(session)
        session.commit()
        conversation_id = conversation.id
    with db.write_session(engine) as session:
        session.connection().exec_driver_sql(
            "UPDATE conversation SET snoozed_until = ? WHERE id = ?", (stored, conversation_id)
        )
        session.commit()
    with db.read_session(engine) as session:
        found = session.get(Conversation, conversation_id)
        assert found.snoozed_until == read and found.snoozed_until.tzinfo is timezone.utc
        assert found.created_at == T  # what the store wrote itself
        column = session.exec(select(Conversation.snoozed_until).where(Conversation.id == conversation_id)).one()
        assert column == read and column.tzinfo is timezone.utc


def test_the_database_runs_in_wal_with_foreign_keys(settings):
    engine = db.open_database(settings.database_url)
    with engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() == db.BUSY_TIMEOUT_MS
        assert connection.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL


def test_a_message_must_belong_to_a_conversation(engine):
    from sqlalchemy.exc import IntegrityError

    with db.write_session(engine) as session:
        session.add(Message(conversation_id=999, direction="inbound", at=T, ingested_at=T))
        with pytest.raises(IntegrityError):
            session.commit()


def test_full_text_finds_a_message_by_a_word_in_its_body_and_a_customer_by_address(engine):
    with db.write_session(engine) as session:
        _, conversation, message = _seed(session)
        session.commit()
    with engine.connect() as connection:
        assert search.search_message_ids(connection, "spokes") == [message.id]
        assert search.search_message_ids(connection, "SPOKE*") == [message.id]
        assert search.search_message_ids(connection, "bicycle") == []
        assert search.search_customer_ids(connection, "greta@velo.example") != []
        assert search.search_customer_ids(connection, "velo.example") != []
        assert search.search_customer_ids(connection, "nobody@velo.example") == []


def test_full_text_follows_updates_and_deletes(engine):
    with db.write_session(engine) as session:
        customer, _, message = _seed(session)
        session.commit()
        message.body_text = "the chain snapped"
        session.add(message)
        session.add(Identity(customer_id=customer.id, kind="phone", address="+31612345678", created_at=T))
        customer.name = "Greta Berg"
        session.add(customer)
        session.commit()
    with engine.connect() as connection:
        assert search.search_message_ids(connection, "three") == []  # the old body is gone from the index
        assert search.search_message_ids(connection, "chain") == [message.id]
        assert search.search_customer_ids(connection, "+31612345678") == [customer.id]
        assert search.search_customer_ids(connection, "Berg") == [customer.id]
        assert search.search_customer_ids(connection, "Lindqvist") == []
    with db.write_session(engine) as session:
        session.delete(session.get(Identity, 2))
        session.commit()
    with engine.connect() as connection:
        assert search.search_customer_ids(connection, "+31612345678") == []
        assert search.search_customer_ids(connection, "greta@velo.example") == [customer.id]


@pytest.mark.parametrize("typed", ['"unbalanced', "re: AND OR NOT", "col:x", "*", "a(b)", "NEAR(x y)"])
def test_search_syntax_typed_by_a_person_never_raises(engine, typed):
    with engine.connect() as connection:
        assert isinstance(search.search_message_ids(connection, typed), list)


def _queue(session, count: int):
    customer = Customer(name="C", created_at=T)
    session.add(customer)
    session.flush()
    for index in range(count):
        due = T + timedelta(minutes=(index * 37) % 101) if index % 5 else NEVER
        session.add(
            Conversation(
                channel="chat",
                subject=f"c{index}",
                customer_id=customer.id,
                status="open",
                created_at=T,
                updated_at=T,
                queue_due=due,
                queue_wait=T - timedelta(minutes=index % 13),
            )
        )
    session.commit()


def test_keyset_windows_walk_the_whole_view_in_order_without_gaps(engine):
    with db.write_session(engine) as session:
        _queue(session, 230)
    with db.read_session(engine) as session:
        everything = queries.queue_window(session=session, view="open", agent="tester", now=T, limit=1000)
        assert len(everything) == 230
        keys = [queries.sort_key("open", c) for c in everything]
        assert keys == sorted(keys)
        walked, after = [], None
        while True:
            window = queries.queue_window(session=session, view="open", agent="tester", now=T, limit=50, after=after)
            if not window:
                break
            walked.extend(c.id for c in window)
            after = queries.sort_key("open", window[-1])
        assert walked == [c.id for c in everything]
        assert queries.queue_count(session=session, view="open", agent="tester", now=T) == 230
        by_offset = queries.queue_window(session=session, view="open", agent="tester", now=T, limit=10, offset=100)
        assert [c.id for c in by_offset] == walked[100:110]


@pytest.mark.parametrize("rows", [False, True], ids=["conversations", "queue-rows"])
@pytest.mark.parametrize("view", list(queries.VIEWS))
def test_every_view_window_is_an_index_walk_not_a_sort(settings, view, rows):
    """A window reads rows in index order and stops at the limit; it never sorts the whole view,
    whether it loads conversations (`queue_window`) or the queue's columns (`queue_rows`).

    (A search sorts its matches, which is the right plan for a set the search already narrowed.)
    """
    query = ""
    engine = db.open_database(settings.database_url)
    with db.write_session(engine) as session:
        _queue(session, 50)
    from sqlalchemy.dialects import sqlite as sqlite_dialect

    with db.read_session(engine) as session:
        statement = queries.queue_statement(
            session=session,
            view=view,
            agent="tester",
            now=T,
            query=query,
            after=None,
            columns=queries.row_columns("tester") if rows else None,
        )
        compiled = str(
            statement.limit(50).compile(dialect=sqlite_dialect.dialect(), compile_kwargs={"literal_binds": True})
        )
        plan = " | ".join(row[-1] for row in session.connection().exec_driver_sql("EXPLAIN QUERY PLAN " + compiled))
    assert "TEMP B-TREE FOR ORDER BY" not in plan, plan


def test_views_split_the_queue_as_their_names_say(engine):
    with db.write_session(engine) as session:
        customer = Customer(name="C", created_at=T)
        session.add(customer)
        session.flush()

        def add(**fields):
            conversation = Conversation(
                channel="email", subject="s", customer_id=customer.id, created_at=T, updated_at=T, **fields
            )
            session.add(conversation)
            session.flush()
            return conversation.id

        mine = add(status="open", assignee="tester")
        theirs = add(status="open", assignee="dana")
        unassigned = add(status="new")
        pending = add(status="pending", assignee="tester")
        snoozed = add(status="open", snoozed_until=T + timedelta(hours=2))
        solved = add(status="solved", solved_at=T)
        breaching = add(status="open", warning_at=T - timedelta(minutes=1))
        spam = add(status="open", assignee="tester", aside="spam")
        bulk = add(status="new", aside="bulk")
        system = add(status="new", aside="system")
        session.commit()
    with db.read_session(engine) as session:

        def ids(view):
            return {c.id for c in queries.queue_window(session=session, view=view, agent="tester", now=T, limit=100)}

        assert ids("mine") == {mine, pending}
        assert ids("unassigned") == {unassigned, breaching}
        assert ids("open") == {mine, theirs, unassigned, breaching}
        assert ids("pending") == {pending}
        assert ids("snoozed") == {snoozed}
        assert ids("solved") == {solved}
        assert ids("breaching") == {breaching}
        assert len(ids("all")) == 7
        # Set aside: in its own view and in no other.
        assert (ids("spam"), ids("bulk"), ids("system")) == ({spam}, {bulk}, {system})
        with pytest.raises(Exception, match="unknown view"):
            queries.queue_window(session=session, view="nope", agent="tester", now=T)


@pytest.mark.parametrize("walk", [False, True], ids=["few-matches", "many-matches"])
def test_a_search_resolved_once_reads_the_same_rows_as_the_query(engine, monkeypatch, walk):
    """Windows, counts and positions given `matches` (the full text resolved to ids once) equal the
    ones that match the query themselves, on both databases and with either window plan."""
    if walk:
        monkeypatch.setattr(queries, "_WALK_MATCHES", 0)  # the order-index walk, as for a big match set
    with db.write_session(engine) as session:
        greta = Customer(name="Greta Battery", created_at=T)
        other = Customer(name="Otto", created_at=T)
        session.add_all([greta, other])
        session.flush()
        for index in range(60):
            customer = greta if index % 7 == 0 else other
            conversation = Conversation(
                channel="email",
                subject=f"s{index}",
                customer_id=customer.id,
                created_at=T,
                updated_at=T,
                status=("open", "pending", "solved")[index // 3 % 3],
                solved_at=T + timedelta(minutes=index),
                queue_due=T + timedelta(minutes=(index * 37) % 23),
                queue_wait=T - timedelta(minutes=index),
            )
            session.add(conversation)
            session.flush()
            body = "the battery drains" if index % 3 == 0 else "the chain snapped"
            session.add(
                Message(
                    conversation_id=conversation.id,
                    direction="inbound",
                    subject="s",
                    body_text=body,
                    at=T,
                    ingested_at=T,
                )
            )
        session.commit()
    with db.read_session(engine) as session:
        matches = queries.matching_conversation_ids(session=session, query="battery")
        assert 20 <= len(matches) < 60 and matches == sorted(set(matches))
        assert queries.matching_conversation_ids(session=session, query="nothingmatches") == []
        for view in ("open", "pending", "solved", "all"):
            common = dict(session=session, view=view, agent="tester", now=T)
            by_query = queries.queue_window(**common, limit=100, query="battery")
            by_ids = queries.queue_window(**common, limit=100, matches=matches)
            assert [c.id for c in by_ids] == [c.id for c in by_query] and len(by_query) >= 6
            after = queries.sort_key(view, by_query[2])
            assert [c.id for c in queries.queue_window(**common, limit=3, matches=matches, after=after)] == [
                c.id for c in by_query[3:6]
            ]
            assert [c.id for c in queries.queue_window(**common, limit=3, matches=matches, from_end=1)] == [
                c.id for c in by_query[-4:-1]
            ]
            assert (
                queries.queue_size(**common, matches=matches)
                == queries.queue_size(**common, query="battery")
                == len(by_query)
            )
            assert queries.queue_position(**common, conversation_id=by_query[4].id, matches=matches) == 4
            assert queries.queue_window(**common, limit=10, matches=[]) == []
            assert queries.queue_size(**common, matches=[]) == 0


@pytest.mark.parametrize("view", ["open", "unassigned", "pending", "all", "solved"])
def test_the_last_window_read_status_by_status_is_the_same_as_the_walk(engine, monkeypatch, view):
    """`from_end` of a few-status view merges each status's last rows; it must equal the plain walk."""
    with db.write_session(engine) as session:
        customer = Customer(name="C", created_at=T)
        session.add(customer)
        session.flush()
        for index in range(90):
            session.add(
                Conversation(
                    channel="chat",
                    subject=f"c{index}",
                    customer_id=customer.id,
                    created_at=T,
                    updated_at=T,
                    status=("new", "open", "pending", "on_hold", "solved")[index % 5],
                    solved_at=T,
                    queue_due=T + timedelta(minutes=(index * 37) % 11) if index % 4 else NEVER,
                    queue_wait=T - timedelta(minutes=index % 7),
                )
            )
        session.commit()
    with db.read_session(engine) as session:

        def last(from_end: int, limit: int) -> list[int]:
            return [
                c.id
                for c in queries.queue_window(
                    session=session, view=view, agent="tester", now=T, limit=limit, from_end=from_end
                )
            ]

        merged = [last(from_end, limit) for from_end in (0, 3, 10) for limit in (1, 5, 20)]
        assert merged == [
            [
                row.id
                for row in queries.queue_rows(
                    session=session, view=view, agent="tester", now=T, limit=limit, from_end=from_end
                )
            ]
            for from_end in (0, 3, 10)
            for limit in (1, 5, 20)
        ]
        monkeypatch.setattr(queries, "_MERGE_FROM_END", 0)
        assert merged == [last(from_end, limit) for from_end in (0, 3, 10) for limit in (1, 5, 20)]
        everything = [c.id for c in queries.queue_window(session=session, view=view, agent="tester", now=T, limit=500)]
        assert merged[2] == everything[-20:]


def test_the_plain_first_window_reads_what_the_queue_window_reads(any_database_url):
    """The TUI's rows come from `first_window_sqlite` / `first_window_postgresql` (the driver alone,
    for the first paint) and then `queue_rows`: every built-in view, with ties, snoozes, merges,
    assignees and drafts, must read the same rows, in the same order, with the same fields as
    `queue_window` + the customer's name + the agent's drafts."""
    from agentdesk.store import first_window, migrations

    engine = db.open_database(any_database_url)
    with db.write_session(engine) as session:
        customers = [Customer(name=name, created_at=T) for name in ("Ana", "Bo", "Cy")]
        session.add_all(customers)
        session.flush()
        conversations = []
        for index in range(120):
            conversation = Conversation(
                channel=("email", "chat")[index % 2],
                subject=f"c{index}",
                customer_id=customers[index % 3].id,
                created_at=T,
                updated_at=T,
                status=("new", "open", "pending", "on_hold", "solved", "closed")[index % 6],
                priority=("low", "normal", "high", "urgent")[index % 4],
                assignee=(None, "tester", "dana")[index % 3],
                solved_at=T - timedelta(minutes=index % 9) if index % 6 >= 4 else None,
                snoozed_until=(T + timedelta(hours=1), T - timedelta(hours=1), None, None)[index % 4]
                if index % 5 == 0
                else None,
                warning_at=T - timedelta(minutes=index % 3) if index % 7 == 0 else None,
                waiting_since=T - timedelta(minutes=index),
                queue_due=T + timedelta(minutes=(index * 37) % 11) if index % 4 else NEVER,
                queue_wait=T - timedelta(minutes=index % 7),
            )
            session.add(conversation)
            conversations.append(conversation)
        session.flush()
        conversations[3].merged_into_id = conversations[4].id
        for conversation, aside in zip(conversations[6::9], ("spam", "bulk", "system") * 10):
            conversation.aside = aside
        for conversation in conversations[2::11]:
            conversation.bounced_at = T
        for conversation in conversations[::5]:
            session.add(Draft(conversation_id=conversation.id, agent="tester", body="Hi", base_version=1, updated_at=T))
        session.add(Draft(conversation_id=conversations[1].id, agent="dana", body="Hi", base_version=1, updated_at=T))
        session.commit()
    path = db.sqlite_path(any_database_url)
    server = None if path is not None else first_window.connect_postgresql(any_database_url)
    if server is not None:
        # JSON gives times in the session's zone (a server set to local time, here a half-hour one).
        server.execute("SET TimeZone = 'Asia/Kolkata'")

    def plain_read(view: str, limit: int, revision: int = migrations.HEAD) -> list[dict] | None:
        if server is not None:
            return first_window.first_window_postgresql(
                server, view=view, agent="tester", now=T, limit=limit, revision=revision
            )
        return queries.first_window_sqlite(path, view=view, agent="tester", now=T, limit=limit, revision=revision)

    for view in [name for name in queries.VIEWS if name != "all"]:
        for limit in (1, 7, 48):
            plain = plain_read(view, limit)
            with db.read_session(engine) as session:
                window = queries.queue_window(session=session, view=view, agent="tester", now=T, limit=limit)
                names = {c.id: c.name for c in session.exec(select(Customer))}
                drafts = {d.conversation_id for d in session.exec(select(Draft).where(Draft.agent == "tester"))}
            expected = [
                dict(
                    id=c.id,
                    customer=names[c.customer_id],
                    subject=c.subject,
                    channel=c.channel,
                    status=c.status,
                    priority=c.priority,
                    assignee=c.assignee,
                    waiting_since=c.waiting_since,
                    queue_due=c.queue_due,
                    warning_at=c.warning_at,
                    version=c.version,
                    queue_wait=c.queue_wait,
                    solved_at=c.solved_at,
                    has_draft=int(c.id in drafts),
                    bounced=int(c.bounced_at is not None),
                )
                for c in window
            ]
            assert plain == expected, (view, limit)
            with db.read_session(engine) as session:
                light = queries.queue_rows(session=session, view=view, agent="tester", now=T, limit=limit)
            assert [dict(row._mapping, has_draft=int(row.has_draft)) for row in light] == expected, (view, limit)
            assert window or view in ("breaching",), view  # the data exercises every view
    assert plain_read("all", 5) is None
    # A database at another schema revision is the engine's to open (and perhaps upgrade) first.
    assert plain_read("open", 5, revision=migrations.HEAD + 1) is None
    engine.dispose()
    if server is not None:
        assert first_window.schema_revision_postgresql(server) == migrations.HEAD
        server.close()
        return
    # No database yet, or a file that is not one: the engine opens (creates, explains) it instead.
    assert (
        queries.first_window_sqlite(
            path.parent / "missing.db", view="open", agent="tester", now=T, limit=5, revision=migrations.HEAD
        )
        is None
    )
    assert not (path.parent / "missing.db").exists()
    (path.parent / "garbage.db").write_bytes(b"not a database" * 100)
    assert (
        queries.first_window_sqlite(
            path.parent / "garbage.db", view="open", agent="tester", now=T, limit=5, revision=migrations.HEAD
        )
        is None
    )


def test_the_first_window_module_agrees_with_the_models_and_the_url_parser(tmp_path):
    """What the first frame reads without SQLAlchemy (`store.first_window`) is written there once;
    these are the facts it must share with the ORM side."""
    from sqlalchemy.engine import make_url

    from agentdesk.store import first_window, migrations
    from agentdesk.store.models import Conversation, UTCDateTime

    columns = Conversation.__table__.c  # type: ignore[attr-defined]  # set by SQLModel
    times = {
        name for name in first_window.ROW_COLUMNS if name in columns and isinstance(columns[name].type, UTCDateTime)
    }
    assert times == first_window.ROW_TIMES
    assert max(migrations.STEPS) == migrations.HEAD
    for view in ("open", "solved"):
        assert set(first_window.sort_columns(view)) <= set(first_window.ROW_COLUMNS)
    for url in (
        "sqlite:///relative.db",
        f"sqlite:///{tmp_path}/a b.db",
        f"sqlite:///{tmp_path}/a%20b.db",
        "sqlite+pysqlite:///x/y.db?timeout=3",
        "sqlite://",
        "sqlite:///:memory:",
        "postgresql://agent@localhost/desk",
    ):
        parsed = make_url(url)
        plain = (
            parsed.database
            if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:")
            else None
        )
        found = first_window.sqlite_path(url)
        assert (str(found) if found is not None else None) == (str(Path(plain)) if plain else None), url
    # PostgreSQL: the plain read connects with what the engine's driver is given (libpq's reading of
    # the URL against SQLAlchemy's), and leaves other drivers and databases to the engine.
    from psycopg.conninfo import conninfo_to_dict, make_conninfo
    from sqlalchemy.dialects.postgresql.psycopg import PGDialect_psycopg

    for url in (
        "postgresql://agent@localhost/desk",
        "postgresql+psycopg://agent:s3cret%40pw%2F@db.example:5433/desk",
        "postgresql://agent:pw@127.0.0.1:5432/desk?sslmode=require&application_name=agentdesk",
        "postgresql:///desk?host=/var/run/postgresql",
        "postgresql://agent@[::1]:5432/desk",
        "postgresql://agent@localhost/my%20desk?connect_timeout=3",
        "postgresql://localhost",
    ):
        arguments, options = PGDialect_psycopg().create_connect_args(make_url(url))
        expected = conninfo_to_dict(make_conninfo(*arguments, **{k: str(v) for k, v in options.items()}))
        assert conninfo_to_dict(first_window.postgresql_conninfo(url)) == expected, url
    for url in ("sqlite:///x.db", "postgresql+psycopg2://agent@localhost/desk", "mysql://agent@localhost/desk"):
        assert first_window.postgresql_conninfo(url) is None, url
    # The plain revision read: the engine's database, nothing for a missing file (never created).
    engine = db.open_database(f"sqlite:///{tmp_path / 'at-head.db'}")
    engine.dispose()
    assert first_window.schema_revision_sqlite(tmp_path / "at-head.db") == migrations.HEAD
    assert first_window.schema_revision_sqlite(tmp_path / "missing.db") is None
    assert not (tmp_path / "missing.db").exists()


_PLAN_STATUSES = ["new", "open", "pending", "on_hold", "solved", "closed", "solved", "solved"]


@pytest.mark.parametrize("view", ["open", "unassigned", "mine", "pending"])
def test_a_postgresql_window_of_a_big_view_walks_an_index_not_a_sort(postgres_server, view):
    """On PostgreSQL too a window reads one window's rows in the view's order instead of sorting
    the whole view (a third of 100 000 conversations for each key press). Its planner chooses by
    the columns' statistics, so the table is big enough for the choice to matter and analyzed, as
    autovacuum does after a load."""
    from sqlalchemy import text
    from sqlalchemy.dialects import postgresql

    engine = db.open_database(postgres_server.create_database(f"plan_{view}"))
    with db.write_session(engine) as session:
        customer = Customer(name="C", created_at=T)
        session.add(customer)
        session.flush()
        session.connection().execute(
            text(
                "INSERT INTO conversation (channel, source, subject, customer_id, status, priority, assignee,"
                " created_at, updated_at, sla_policy, queue_due, queue_wait, aside, version)"
                " SELECT 'email', '', 'c' || n, :customer, (CAST(:statuses AS text[]))[1 + n % 8], 'normal',"
                " CASE WHEN n % 3 = 0 THEN NULL WHEN n % 3 = 1 THEN 'tester' ELSE 'other' END,"
                " :t, :t, '', CAST(:t AS timestamptz) + n * interval '1 minute', :t, CASE WHEN n % 50 = 0 THEN 'spam' ELSE '' END, 1"
                " FROM generate_series(1, 30000) AS n"
            ),
            {"customer": customer.id, "statuses": _PLAN_STATUSES, "t": T},
        )
        session.commit()
    with engine.connect() as connection:
        connection.execute(text("ANALYZE conversation"))
        connection.commit()
    with db.read_session(engine) as session:
        statement = queries.queue_statement(
            session=session, view=view, agent="tester", now=T, columns=queries.row_columns("tester")
        )
        compiled = str(
            statement.limit(100).compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True})
        )
        plan = "\n".join(row[0] for row in session.connection().exec_driver_sql("EXPLAIN " + compiled))
        rows = session.exec(statement.limit(100)).all()
    engine.dispose()
    assert "Sort" not in plan, plan
    assert rows and [row.queue_due for row in rows] == sorted(row.queue_due for row in rows)


@pytest.mark.parametrize(
    "typed",
    [
        "brouw",
        "Ine",
        "Brouwe",
        "ine brou",
        "Ines Brouwer",
        "pedal",
        "ines.brouw",
        "pedalpower",
        "+316000",
        "3160000000",
    ],
)
def test_a_customer_is_found_by_the_start_of_each_word_typed(any_database_url, typed):
    engine = db.open_database(any_database_url)
    try:
        with db.write_session(engine) as session:
            ines = Customer(name="Ines Brouwer", created_at=T)
            other = Customer(name="Inge Bakker", created_at=T)
            session.add_all([ines, other])
            session.flush()
            session.add(
                Identity(
                    customer_id=ines.id, kind="email", address="ines.brouwer9@pedalpowerclub.example", created_at=T
                )
            )
            session.add(Identity(customer_id=ines.id, kind="phone", address="+31600000009", created_at=T))
            session.add(Identity(customer_id=other.id, kind="email", address="inge@bakker.example", created_at=T))
            session.commit()
            ines_id = ines.id
        with engine.connect() as connection:
            assert search.search_customer_ids(connection, typed) == [ines_id]
            assert search.search_customer_ids(connection, "brouwers") == []  # a prefix, not a fuzzy match
            assert search.search_customer_ids(connection, '"brouw"') == []  # quoted: the exact word
    finally:
        engine.dispose()
